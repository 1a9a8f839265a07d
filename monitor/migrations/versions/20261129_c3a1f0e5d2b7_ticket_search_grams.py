"""ticket search grams: an index of every character and character pair of a ticket's words

Revision ID: c3a1f0e5d2b7
Revises: d4b2e6f1a8c3
Create Date: 2026-11-29 04:00:00.000000

Chinese search words are often one or two characters (出口, 宕机), which trigram indexes
cannot serve, so `ticket_grams` holds each ticket's characters and character pairs (external
id, title and description, lower-cased): a text[] with a GIN index on PostgreSQL, a
contentless FTS5 table on SQLite. The database fills it on every ticket insert (a ticket's
words never change afterwards), so the write flow, imports and bulk loads need not know it.
Search narrows by it and then checks the exact LIKE. On SQLite the trigger calls
`slamon_grams`, which `core/db.make_engine` registers on every connection. Also an index on
the external id alone, for the search box's jump to a ticket.
"""

from collections.abc import Sequence

from alembic import op

revision: str = 'c3a1f0e5d2b7'
down_revision: str | None = 'd4b2e6f1a8c3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_UP = [
    # Every character and every pair of characters of the parts, lower-cased as ILIKE does.
    """CREATE FUNCTION slamon_grams(VARIADIC parts text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT coalesce(array_agg(DISTINCT g), '{}')
      FROM unnest(parts) AS p(t)
      CROSS JOIN LATERAL generate_series(1, char_length(t)) AS i
      CROSS JOIN LATERAL (VALUES (substr(lower(t), i, 1)), (substr(lower(t), i, 2))) AS v(g)
    $$""",
    # The grams every text holding `words` has: its pairs, or its one character.
    """CREATE FUNCTION slamon_query_grams(words text) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT CASE WHEN char_length(words) = 1 THEN ARRAY[lower(words)]
      ELSE ARRAY(SELECT DISTINCT substr(lower(words), i, 2)
                 FROM generate_series(1, char_length(words) - 1) AS i) END
    $$""",
    """CREATE TABLE ticket_grams (
      ticket_id integer NOT NULL,
      grams text[] NOT NULL,
      CONSTRAINT pk_ticket_grams PRIMARY KEY (ticket_id),
      CONSTRAINT fk_ticket_grams_ticket_id_tickets FOREIGN KEY (ticket_id)
        REFERENCES tickets (id) ON DELETE CASCADE
    )""",
    """CREATE FUNCTION slamon_index_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO ticket_grams (ticket_id, grams)
      VALUES (NEW.id, slamon_grams(NEW.external_id, NEW.title, NEW.description));
      RETURN NULL;
    END $$""",
    "INSERT INTO ticket_grams (ticket_id, grams) "
    "SELECT id, slamon_grams(external_id, title, description) FROM tickets",
    "CREATE INDEX ix_ticket_grams_grams ON ticket_grams USING gin (grams)",
    "CREATE TRIGGER tickets_search_grams AFTER INSERT ON tickets "
    "FOR EACH ROW EXECUTE FUNCTION slamon_index_ticket()",
    # A role that may read or add tickets (the app role, see core/grants.py) may read or add
    # their grams at once, so the serving replicas keep working before `db grant` runs again.
    """DO $$ DECLARE r record; BEGIN
      FOR r IN SELECT DISTINCT grantee, privilege_type FROM information_schema.role_table_grants
               WHERE table_schema = current_schema() AND table_name = 'tickets'
                 AND privilege_type IN ('SELECT', 'INSERT')
                 AND grantee NOT IN (current_user, 'PUBLIC')
      LOOP
        EXECUTE format('GRANT %s ON ticket_grams TO %I', r.privilege_type, r.grantee);
      END LOOP;
    END $$""",
    "ANALYZE ticket_grams",
]
PG_DOWN = [
    "DROP TRIGGER IF EXISTS tickets_search_grams ON tickets",
    "DROP FUNCTION IF EXISTS slamon_index_ticket()",
    "DROP TABLE IF EXISTS ticket_grams",
    "DROP FUNCTION IF EXISTS slamon_query_grams(text)",
    "DROP FUNCTION IF EXISTS slamon_grams(text[])",
]
SQLITE_UP = [
    "CREATE VIRTUAL TABLE ticket_grams USING fts5(grams, content='', detail='none', "
    "tokenize='ascii')",
    "INSERT INTO ticket_grams (rowid, grams) "
    "SELECT id, slamon_grams(external_id, title, description) FROM tickets",
    "CREATE TRIGGER tickets_search_grams AFTER INSERT ON tickets BEGIN "
    "INSERT INTO ticket_grams (rowid, grams) "
    "VALUES (new.id, slamon_grams(new.external_id, new.title, new.description)); END",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS tickets_search_grams",
    "DROP TABLE IF EXISTS ticket_grams",
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in PG_UP if postgres else SQLITE_UP:
        op.execute(statement)
    # The search box's jump to an external id does not know its pool: (pool, external_id)
    # could not serve it, and PostgreSQL read the whole index (20 ms at 1 M tickets).
    op.create_index(op.f("ix_tickets_external_id"), "tickets", ["external_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_tickets_external_id"), table_name="tickets")
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in PG_DOWN if postgres else SQLITE_DOWN:
        op.execute(statement)
