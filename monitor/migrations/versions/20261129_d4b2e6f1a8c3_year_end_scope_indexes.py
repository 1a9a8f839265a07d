"""year-end scope indexes: tickets by reported severity and time, severity changes

Revision ID: d4b2e6f1a8c3
Revises: 5e1b0c7a9d21
Create Date: 2026-11-29 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'd4b2e6f1a8c3'
down_revision: str | None = '5e1b0c7a9d21'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEVERITY_CHANGED = sa.text("type = 'severity_changed'")


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index(
            'ix_tickets_severity_reported_at', ['severity', 'reported_at'], unique=False
        )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(
            'ix_events_severity_changed',
            ['ticket_id'],
            unique=False,
            sqlite_where=SEVERITY_CHANGED,
            postgresql_where=SEVERITY_CHANGED,
        )


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_severity_changed')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_severity_reported_at')
