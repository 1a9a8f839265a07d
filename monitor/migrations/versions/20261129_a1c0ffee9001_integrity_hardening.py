"""integrity hardening: immutable ticket facts, no TRUNCATE, per-upload evidence, token expiry

Revision ID: a1c0ffee9001
Revises: 772844edd8e3
Create Date: 2026-11-29 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import monitor.core.db


revision: str = 'a1c0ffee9001'
down_revision: str | None = '772844edd8e3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What a ticket was created with decides its deadlines, scope and score: never updated.
TICKET_FACTS = (
    "pool", "external_id", "severity", "title", "description", "source", "units", "systems",
    "policy_version", "created_at", "created_by",
)
# Rows that are never updated or deleted (events, reviews and the audit log already are).
IMMUTABLE = ("evidence", "evidence_links", "calendar_loads", "correction_decisions")
# Tables whose rows may change but never vanish.
NO_DELETE = ("tickets", "breaches")
NO_TRUNCATE = (
    "audit_log", "events", "breach_reviews", "tickets", "breaches", "evidence",
    "evidence_links", "calendar_loads", "policy_versions", "api_tokens", "users",
    "correction_decisions",
)


def upgrade() -> None:
    op.create_table('correction_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('correction_seq', sa.Integer(), nullable=False),
    sa.Column('decision', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('decided_at', monitor.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_correction_decisions_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_correction_decisions'))
    )
    with op.batch_alter_table('correction_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_correction_decisions_ticket_id'), ['ticket_id'], unique=False)
    with op.batch_alter_table('evidence_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('media_type', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('size', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('uploaded_by', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False, server_default=''))
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', monitor.core.db.UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE evidence_links SET media_type = (SELECT media_type FROM evidence WHERE evidence.sha256 = evidence_links.sha256), size = (SELECT size FROM evidence WHERE evidence.sha256 = evidence_links.sha256), uploaded_by = (SELECT uploaded_by FROM evidence WHERE evidence.sha256 = evidence_links.sha256)")
    with op.batch_alter_table('evidence_links', schema=None) as batch_op:
        batch_op.alter_column('media_type', server_default=None)
        batch_op.alter_column('size', server_default=None)
        batch_op.alter_column('uploaded_by', server_default=None)

    facts = ", ".join(TICKET_FACTS)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE TRIGGER tickets_facts_fixed BEFORE UPDATE OF {facts} ON tickets FOR EACH ROW EXECUTE FUNCTION slamon_refuse_change()")
        for table in IMMUTABLE:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION slamon_refuse_change()")
        for table in NO_DELETE:
            op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION slamon_refuse_change()")
        for table in NO_TRUNCATE:
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION slamon_refuse_change()")
    else:
        op.execute(f"CREATE TRIGGER tickets_facts_fixed BEFORE UPDATE OF {facts} ON tickets BEGIN SELECT RAISE(ABORT, 'UPDATE of a ticket''s facts is refused: what a ticket was created with is append-only'); END")
        for table in IMMUTABLE:
            for action in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} BEGIN SELECT RAISE(ABORT, '{action} on {table} is refused: this table is append-only'); END")
        for table in NO_DELETE:
            op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} BEGIN SELECT RAISE(ABORT, 'DELETE on {table} is refused'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS tickets_facts_fixed ON tickets")
        for table in IMMUTABLE:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        for table in NO_DELETE:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete ON {table}")
        for table in NO_TRUNCATE:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    else:
        op.execute("DROP TRIGGER IF EXISTS tickets_facts_fixed")
        for table in IMMUTABLE:
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
        for table in NO_DELETE:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
    op.drop_table('correction_decisions')
    with op.batch_alter_table('evidence_links', schema=None) as batch_op:
        batch_op.drop_column('uploaded_by')
        batch_op.drop_column('size')
        batch_op.drop_column('media_type')
