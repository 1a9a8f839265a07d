"""ticket grams by statement: a batch of new tickets gets its search grams in one statement

The trigger of c3a1f0e5d2b7 indexed each ticket by itself. A 20,000-ticket import spent
2.6 s of PostgreSQL's time in it (1.6 s once per statement, measured with the tickets'
COPY) and 1.9 s of SQLite's: FTS5 writes its pending grams out at every trigger's
savepoint, one small segment a ticket.

- PostgreSQL: the trigger runs once per statement over the statement's new rows (a
  transition table), so a COPY of 500 tickets is one `INSERT … SELECT`. A single ticket
  costs what it did.
- SQLite has no statement triggers. Its trigger now runs only while
  `slamon_grams_by_trigger()` is true, which `core/db.make_engine` registers on every
  connection (true unless the connection's writer says otherwise, see
  `tickets/service._insert_tickets`): a batch of tickets turns it off, inserts, indexes its
  tickets in one statement and turns it on again.

Revision ID: f7d3b9a2c461
Revises: e5c2a7b3f914
Create Date: 2026-11-29 23:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = 'f7d3b9a2c461'
down_revision: str | None = 'e5c2a7b3f914'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_UP = [
    "DROP TRIGGER tickets_search_grams ON tickets",
    """CREATE FUNCTION slamon_index_tickets() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO ticket_grams (ticket_id, grams)
      SELECT id, slamon_grams(external_id, title, description) FROM added;
      RETURN NULL;
    END $$""",
    "CREATE TRIGGER tickets_search_grams AFTER INSERT ON tickets "
    "REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION slamon_index_tickets()",
    "DROP FUNCTION slamon_index_ticket()",
]
PG_DOWN = [
    "DROP TRIGGER tickets_search_grams ON tickets",
    """CREATE FUNCTION slamon_index_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO ticket_grams (ticket_id, grams)
      VALUES (NEW.id, slamon_grams(NEW.external_id, NEW.title, NEW.description));
      RETURN NULL;
    END $$""",
    "CREATE TRIGGER tickets_search_grams AFTER INSERT ON tickets "
    "FOR EACH ROW EXECUTE FUNCTION slamon_index_ticket()",
    "DROP FUNCTION slamon_index_tickets()",
]
SQLITE_UP = [
    "DROP TRIGGER tickets_search_grams",
    "CREATE TRIGGER tickets_search_grams AFTER INSERT ON tickets "
    "WHEN slamon_grams_by_trigger() BEGIN "
    "INSERT INTO ticket_grams (rowid, grams) "
    "VALUES (new.id, slamon_grams(new.external_id, new.title, new.description)); END",
]
SQLITE_DOWN = [
    "DROP TRIGGER tickets_search_grams",
    "CREATE TRIGGER tickets_search_grams AFTER INSERT ON tickets BEGIN "
    "INSERT INTO ticket_grams (rowid, grams) "
    "VALUES (new.id, slamon_grams(new.external_id, new.title, new.description)); END",
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in PG_UP if postgres else SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in PG_DOWN if postgres else SQLITE_DOWN:
        op.execute(statement)
