"""credential_changes (sign-outs, password changes, disabled users, revoked tokens)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import frontdesk.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credential_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("changed_at", frontdesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("token_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credential_changes")),
    )
    with op.batch_alter_table("credential_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credential_changes_changed_at"), ["changed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("credential_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credential_changes_changed_at"))
    op.drop_table("credential_changes")
