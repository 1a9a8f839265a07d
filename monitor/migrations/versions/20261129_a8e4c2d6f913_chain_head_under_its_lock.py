"""chain head under its lock: one statement takes the audit chain's lock, then reads its head

A write on PostgreSQL took the chain's advisory lock and read the chain's head in two
statements as it committed: two round trips while holding the chain. `slamon_chain_head`
does both in one. Being VOLATILE, its query takes a new snapshot after the lock is had, so
it reads the head as the last holder committed it (one statement doing both would read the
head as it was before the wait). SQLite's writers take turns: it has no such function.

Revision ID: a8e4c2d6f913
Revises: f7d3b9a2c461
Create Date: 2026-11-29 23:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = 'a8e4c2d6f913'
down_revision: str | None = 'f7d3b9a2c461'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """CREATE FUNCTION slamon_chain_head(lock_key bigint)
        RETURNS TABLE (seq integer, hash varchar) LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
          PERFORM pg_advisory_xact_lock(lock_key);
          RETURN QUERY SELECT a.seq, a.hash FROM audit_log AS a ORDER BY a.seq DESC LIMIT 1;
        END $$"""
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION slamon_chain_head(bigint)")
