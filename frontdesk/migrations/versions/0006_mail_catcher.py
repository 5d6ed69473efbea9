"""the local mail catcher (outgoing e-mail kept when no SMTP relay is configured)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import frontdesk.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "caught_mails",
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("mail_from", sa.String(length=500), nullable=False),
        sa.Column("mail_to", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=1000), nullable=False),
        sa.Column("header_message_id", sa.String(length=500), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(length=500), nullable=False),
        sa.Column("created_at", frontdesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_caught_mails_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_caught_mails_message_id_messages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_caught_mails")),
        sa.UniqueConstraint("message_id", name=op.f("uq_caught_mails_message_id")),
    )
    op.create_index(op.f("ix_caught_mails_conversation_id"), "caught_mails", ["conversation_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_caught_mails_conversation_id"), table_name="caught_mails")
    op.drop_table("caught_mails")
