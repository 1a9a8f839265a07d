"""target states: open clocks' indexes only, none for the metrics

Every target state written updated six b-trees. Two of them, (status, deadline) and
(status, risk_at), serve only the scheduler's wake, its breach sweep and the overview's
nearest deadlines, which look at clocks with no stop yet; they also held every stopped
clock, most of the table, whose deadlines lie anywhere in years of history. They now hold
the rows with `stop IS NULL`, and the queries that use them say so. Two more covered the
metrics' GROUP BY over every state, which a scrape no longer runs (it reads the running
totals); only the daily correction of those totals did, and it now reads in a snapshot that
holds no write lock. Of the 778 pages a batch of 100 tickets wrote to SQLite's journal, the
four made 419.

Revision ID: a3f8c1d2e905
Revises: c9e2f4a6b815
Create Date: 2026-12-02 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'a3f8c1d2e905'
down_revision: str | None = 'c9e2f4a6b815'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_CLOCK = sa.text("stop IS NULL")
WHOLE = {
    "ix_target_states_status_deadline": ["status", "deadline"],
    "ix_target_states_status_risk_at": ["status", "risk_at"],
    "ix_target_states_metrics": ["pool", "severity", "target", "status"],
    "ix_target_states_durations": ["target", "pool", "severity", "elapsed_seconds", "stop"],
}
OPEN = {
    "ix_target_states_open_deadline": ["status", "deadline"],
    "ix_target_states_open_risk_at": ["status", "risk_at"],
}


def upgrade() -> None:
    for name in WHOLE:
        op.drop_index(name, table_name="target_states")
    for name, columns in OPEN.items():
        op.create_index(
            name,
            "target_states",
            columns,
            unique=False,
            sqlite_where=OPEN_CLOCK,
            postgresql_where=OPEN_CLOCK,
        )


def downgrade() -> None:
    for name in OPEN:
        op.drop_index(name, table_name="target_states")
    for name, columns in WHOLE.items():
        op.create_index(name, "target_states", columns, unique=False)
