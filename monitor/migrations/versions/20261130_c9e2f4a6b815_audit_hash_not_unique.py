"""audit log: the record hash is no longer a unique index

A record's hash is random, so its unique index took a page of its own for nearly every new
record: 5 of the 39 pages a POST /tickets appended to SQLite's journal (a ticket with 5
events writes 6 records), and on PostgreSQL a leaf touched at random for each. The index
proved nothing: the chain is checked by recomputing each hash from the record and the one
before it (`audit/verify.py`), and two records cannot share a place in it (`seq` is the
primary key). SQLite cannot drop a constraint: the table is copied without it, and its
append-only triggers are made again (copying a large log takes a while: run `db upgrade`
outside working hours).

Revision ID: c9e2f4a6b815
Revises: b6d1e8f3a274
Create Date: 2026-11-30 06:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = 'c9e2f4a6b815'
down_revision: str | None = 'b6d1e8f3a274'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNIQUE = "uq_audit_log_hash"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(UNIQUE, "audit_log", type_="unique")
        return
    with op.batch_alter_table("audit_log", recreate="always") as batch_op:
        batch_op.drop_constraint(UNIQUE, type_="unique")
    _append_only_on_sqlite()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_unique_constraint(UNIQUE, "audit_log", ["hash"])
        return
    with op.batch_alter_table("audit_log", recreate="always") as batch_op:
        batch_op.create_unique_constraint(UNIQUE, ["hash"])
    _append_only_on_sqlite()


def _append_only_on_sqlite() -> None:
    """The triggers of migration fc56bc3efc66, gone with the table SQLite copied."""
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_log_no_{action.lower()} BEFORE {action} ON audit_log "
            f"BEGIN SELECT RAISE(ABORT, '{action} on audit_log is refused: this table is "
            "append-only'); END"
        )
