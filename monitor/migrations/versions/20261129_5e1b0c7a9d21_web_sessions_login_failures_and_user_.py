"""web sessions, login failures and disabled users

Revision ID: 5e1b0c7a9d21
Revises: a0bd67a58bab
Create Date: 2026-11-29 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import monitor.core.db

revision: str = '5e1b0c7a9d21'
down_revision: str | None = 'a0bd67a58bab'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('login_failures',
    sa.Column('user_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failed_at', monitor.core.db.UTCDateTime(), nullable=False),
    sa.Column('locked_until', monitor.core.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('user_name', name=op.f('pk_login_failures'))
    )
    op.create_table('web_sessions',
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('csrf', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', monitor.core.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', monitor.core.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_web_sessions'))
    )
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_sessions_user_name'), ['user_name'], unique=False)
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disabled_at', monitor.core.db.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('disabled_at')
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_sessions_user_name'))
    op.drop_table('web_sessions')
    op.drop_table('login_failures')
