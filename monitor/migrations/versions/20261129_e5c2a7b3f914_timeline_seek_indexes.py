"""timeline seek indexes: events by ticket, type and time, and those with evidence

An append to a ticket without corrections reads the few events its judgement turns on by
these indexes instead of the whole timeline. The index on events.ticket_id alone goes: the
unique (ticket_id, seq) and the new index both begin with it.

Revision ID: e5c2a7b3f914
Revises: c3a1f0e5d2b7
Create Date: 2026-11-29 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'e5c2a7b3f914'
down_revision: str | None = 'c3a1f0e5d2b7'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WITH_EVIDENCE_SQLITE = sa.text("evidence != '[]'")
WITH_EVIDENCE_POSTGRES = sa.text("evidence::text != '[]'")


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(
            'ix_events_ticket_type_time',
            ['ticket_id', 'type', 'occurred_at', 'seq'],
            unique=False,
        )
        batch_op.create_index(
            'ix_events_with_evidence',
            ['ticket_id', 'occurred_at', 'seq'],
            unique=False,
            sqlite_where=WITH_EVIDENCE_SQLITE,
            postgresql_where=WITH_EVIDENCE_POSTGRES,
        )
        batch_op.drop_index('ix_events_ticket_id')


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_ticket_id', ['ticket_id'], unique=False)
        batch_op.drop_index('ix_events_with_evidence')
        batch_op.drop_index('ix_events_ticket_type_time')
