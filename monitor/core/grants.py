"""The rights of the role the product serves as: migrate as the owner, serve as this role.

It may read every table and add rows, change only the rows the product itself keeps up to
date, and never truncate, never change or delete what is append-only, never own a table (so
it cannot switch triggers off) and never be a superuser (so it cannot skip them with
`session_replication_role`).
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

# What the running product updates in place: derived views, bookkeeping, revocations.
UPDATABLE = {
    "tickets",  # derived status, current severity, reported time (facts are trigger-guarded)
    "target_states",
    "breaches",
    "findings",
    "metric_totals",
    "idempotency_keys",
    "leases",
    "job_runs",
    "api_tokens",  # revoked_at
    "users",
    "policy_versions",  # only a version no ticket uses yet may be edited
    "notice_deliveries",  # a delivery's state as it is tried (notices and attempts are kept)
    "login_failures",  # the web login's failure counter
}
# What the running product deletes: states of a target the severity no longer has, and the
# totals the daily reconcile rewrites; a web session at logout or expiry, a login failure
# counter after a successful login.
DELETABLE = {
    "target_states",
    "metric_totals",
    "idempotency_keys",
    "web_sessions",
    "login_failures",
}
# Tables outside the models that the database keeps itself: the search grams, filled by a
# trigger on `tickets` that runs with the inserting role's rights (migration c3a1f0e5d2b7).
KEPT_BY_TRIGGERS = ["ticket_grams"]
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grant_statements(role: str, tables: list[str]) -> list[str]:
    """The GRANTs that give `role` exactly what the product needs, and nothing more."""
    if not ROLE_NAME.match(role):
        raise ValueError(f"{role!r} is not a plain PostgreSQL role name (a-z, 0-9, _)")
    out = [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
    ]
    for table in sorted(tables):
        rights = ["SELECT", "INSERT"]
        rights += ["UPDATE"] if table in UPDATABLE else []
        rights += ["DELETE"] if table in DELETABLE else []
        out.append(f"GRANT {', '.join(rights)} ON {table} TO {role}")
    out.append(f"GRANT SELECT ON alembic_version TO {role}")
    return out


def grant(engine: Engine, role: str) -> list[str]:
    """Apply the grants to an existing role (run as the owner, after `db upgrade`)."""
    import monitor.models  # noqa: F401  (every table in the metadata)

    if engine.dialect.name != "postgresql":
        raise ValueError("roles and grants exist on PostgreSQL only; SQLite has one file owner")
    tables = [t.name for t in SQLModel.metadata.sorted_tables] + KEPT_BY_TRIGGERS
    statements = grant_statements(role, tables)
    with engine.begin() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
        if exists.first() is None:
            raise ValueError(f"role {role!r} does not exist: CREATE ROLE {role} LOGIN first")
        for statement in statements:
            conn.execute(sa.text(statement))
    return statements
