"""e-mail confirmation links, one auto-opened conversation per customer and inbox,
and which existing identities count as proven

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 10:00:00

- ``email_confirmations``: the links e-mailed to prove an address a web-chat visitor gave (only
  the token's SHA-256 is stored).
- ``conversations.auto_open`` and two unique partial indexes: at most one conversation the
  inbound path opened is not resolved per customer, channel and inbox (NULL inboxes apart: a
  unique index treats NULLs as distinct). Existing rows are ``false``: nothing to deduplicate.
- ``identities.verified`` for rows made before this version. Until now only the web-chat pre-chat
  form (and a session's ``email``) attached an address nobody had proven to a customer: such an
  address is an e-mail identity added to a customer after it had a web-chat visitor. Every other
  identity came from an authenticated agent or token (API, imports), the signed API channel, the
  HMAC-verified widget, or inbound e-mail, which Frontdesk took at its word: those are marked
  proven, so customers that existed before the upgrade keep their history when a proof of their
  address arrives (the rule in docs/architecture/one-customer.md: a proof takes an identity away
  only from a holder who merely claimed it). The downgrade leaves the flags as they are.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import frontdesk.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTO_OPEN = "auto_open AND status <> 'resolved'"


def upgrade() -> None:
    op.create_table(
        "email_confirmations",
        sa.Column("visitor_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", frontdesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", frontdesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", frontdesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("used_at", frontdesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_email_confirmations_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["visitor_id"],
            ["webchat_visitors.id"],
            name=op.f("fk_email_confirmations_visitor_id_webchat_visitors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_confirmations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_email_confirmations_token_hash")),
    )
    op.create_index(
        op.f("ix_email_confirmations_customer_id"), "email_confirmations", ["customer_id"], unique=False
    )
    op.create_index(op.f("ix_email_confirmations_visitor_id"), "email_confirmations", ["visitor_id"], unique=False)
    op.create_index(
        "ix_email_confirmations_email_created", "email_confirmations", ["email", "created_at"], unique=False
    )

    # A plain ADD COLUMN (SQLite supports it with a default): no table rebuild, the search triggers stay.
    op.add_column("conversations", sa.Column("auto_open", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index(
        "uq_conversations_auto_open",
        "conversations",
        ["customer_id", "channel", "inbox_id"],
        unique=True,
        sqlite_where=sa.text(AUTO_OPEN + " AND inbox_id IS NOT NULL"),
        postgresql_where=sa.text(AUTO_OPEN + " AND inbox_id IS NOT NULL"),
    )
    op.create_index(
        "uq_conversations_auto_open_no_inbox",
        "conversations",
        ["customer_id", "channel"],
        unique=True,
        sqlite_where=sa.text(AUTO_OPEN + " AND inbox_id IS NULL"),
        postgresql_where=sa.text(AUTO_OPEN + " AND inbox_id IS NULL"),
    )

    identities = sa.table(
        "identities",
        sa.column("customer_id", sa.Uuid()),
        sa.column("kind", sa.String()),
        sa.column("verified", sa.Boolean()),
        sa.column("created_at", frontdesk.db.UTCDateTime(timezone=True)),
    )
    visitor = identities.alias("visitor")
    prechat_claim = sa.and_(
        identities.c.kind == "email",
        sa.exists().where(
            visitor.c.customer_id == identities.c.customer_id,
            visitor.c.kind == "webchat_visitor",
            visitor.c.created_at <= identities.c.created_at,
        ),
    )
    op.execute(
        identities.update()
        .where(identities.c.verified == sa.false(), sa.not_(prechat_claim))
        .values(verified=sa.true())
    )


def downgrade() -> None:
    op.drop_index("uq_conversations_auto_open_no_inbox", table_name="conversations")
    op.drop_index("uq_conversations_auto_open", table_name="conversations")
    # Not a batch rebuild on SQLite (it would lose the search triggers): SQLite >= 3.35 drops columns.
    op.execute("ALTER TABLE conversations DROP COLUMN auto_open")
    op.drop_index("ix_email_confirmations_email_created", table_name="email_confirmations")
    op.drop_index(op.f("ix_email_confirmations_visitor_id"), table_name="email_confirmations")
    op.drop_index(op.f("ix_email_confirmations_customer_id"), table_name="email_confirmations")
    op.drop_table("email_confirmations")
