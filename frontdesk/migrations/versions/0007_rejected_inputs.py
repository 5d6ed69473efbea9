"""rejected inputs: sender, limits, link to a customer, replay; accent-folded search on PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import frontdesk.db
from frontdesk.search import ddl
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_DEFAULTS = ('anonymous', 'size', 'meta', 'replays')


def upgrade() -> None:
    with op.batch_alter_table('rejected_inputs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('anonymous', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('size', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('storage_key', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('meta', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('customer_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('identity_kind', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('identity_value', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('replays', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('replayed_at', frontdesk.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_rejected_inputs_anonymous_received', ['anonymous', 'received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_rejected_inputs_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_rejected_inputs_identity', ['identity_kind', 'identity_value'], unique=False)
        batch_op.create_index('ix_rejected_inputs_origin_received', ['origin', 'received_at'], unique=False)
        batch_op.create_index('ix_rejected_inputs_source_received', ['source', 'received_at'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_rejected_inputs_customer_id_customers'), 'customers', ['customer_id'], ['id'], ondelete='SET NULL')
    # Rows kept before this revision hold what they were given (at most the first megabyte).
    op.execute('UPDATE rejected_inputs SET size = length(body)')
    with op.batch_alter_table('rejected_inputs', schema=None) as batch_op:
        for column in NEW_DEFAULTS:
            batch_op.alter_column(column, server_default=None)

    if op.get_bind().dialect.name == 'postgresql':
        # Search folds accents on PostgreSQL too: the same indexes, on fd_unaccent(...) of the text.
        for statement in ddl.postgresql_drop() + ddl.postgresql_ddl():
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for statement in ddl.postgresql_drop() + ddl.postgresql_indexes(fold=False):
            op.execute(statement)
        op.execute(f'DROP FUNCTION IF EXISTS {ddl.PG_FOLD}(text)')
    with op.batch_alter_table('rejected_inputs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_rejected_inputs_customer_id_customers'), type_='foreignkey')
        batch_op.drop_index('ix_rejected_inputs_source_received')
        batch_op.drop_index('ix_rejected_inputs_origin_received')
        batch_op.drop_index('ix_rejected_inputs_identity')
        batch_op.drop_index(batch_op.f('ix_rejected_inputs_customer_id'))
        batch_op.drop_index('ix_rejected_inputs_anonymous_received')
        batch_op.drop_column('replayed_at')
        batch_op.drop_column('replays')
        batch_op.drop_column('identity_value')
        batch_op.drop_column('identity_kind')
        batch_op.drop_column('customer_id')
        batch_op.drop_column('meta')
        batch_op.drop_column('storage_key')
        batch_op.drop_column('size')
        batch_op.drop_column('anonymous')
        batch_op.drop_column('origin')
