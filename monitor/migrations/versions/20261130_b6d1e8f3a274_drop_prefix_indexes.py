"""drop the indexes that are prefixes of others: fewer pages written for each new ticket

`ix_tickets_pool` (pool) is the start of the unique index on (pool, external_id),
`ix_tickets_status` (status) of `ix_tickets_metrics_open` (status, pool, current_severity),
`ix_breaches_ticket_id` (ticket_id) of the unique index on (ticket_id, target), and
`ix_notice_deliveries_notice_id` (notice_id) of the unique index on (notice_id, channel,
endpoint): each database finds the same rows by the longer index, so each of these only
cost a page written with every row (a new ticket wrote 39 pages to SQLite's journal, 37
without them).

Revision ID: b6d1e8f3a274
Revises: a8e4c2d6f913
Create Date: 2026-11-30 06:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = 'b6d1e8f3a274'
down_revision: str | None = 'a8e4c2d6f913'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIXES = (
    ("ix_tickets_pool", "tickets", "pool"),
    ("ix_tickets_status", "tickets", "status"),
    ("ix_breaches_ticket_id", "breaches", "ticket_id"),
    ("ix_notice_deliveries_notice_id", "notice_deliveries", "notice_id"),
)


def upgrade() -> None:
    for name, table, _ in PREFIXES:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for name, table, column in PREFIXES:
        op.create_index(name, table, [column], unique=False)
