"""a conversation outlives its team, queue and assignee (ON DELETE SET NULL)

Deleting a team that had conversations failed (the foreign key refused it) although the
conversations are meant to stay, without a team. The same holds for the queue (deleting one
already cleared it by hand) and the assignee.

SQLite cannot change a foreign key in place: the table is rebuilt (batch mode). ``env.py`` turns
SQLite's foreign keys off around the migration run — with them on, dropping the old table would
cascade to every message — and checks them all before it commits.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (column, referred table) of conversations whose foreign key gets ON DELETE SET NULL
KEYS = [("team_id", "teams"), ("queue_id", "queues"), ("assignee_id", "users")]


def _recreate(ondelete: str | None) -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        for column, table in KEYS:
            name = f"fk_conversations_{column}_{table}"
            batch_op.drop_constraint(name, type_="foreignkey")
            batch_op.create_foreign_key(name, table, [column], ["id"], ondelete=ondelete)


def upgrade() -> None:
    _recreate("SET NULL")


def downgrade() -> None:
    _recreate(None)
