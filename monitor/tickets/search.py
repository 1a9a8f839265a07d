"""Ticket search: the filters, words through the gram index, and a total counted to a cap.

Counting every match of a common word among a million tickets costs seconds and tells a
reader nothing that "1000+" does not, so the total stops at `COUNT_CAP`. Words narrow the
candidates through `ticket_grams` (every character and character pair, migration
c3a1f0e5d2b7) and the exact LIKE decides, so the answer is the plain LIKE answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

import sqlalchemy as sa
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from monitor.core.grams import fts_query
from monitor.sla.models import TargetState
from monitor.sla.vocab import TargetStatus
from monitor.tickets.models import Ticket

COUNT_CAP = 1000
# More tickets than this holding the words (estimated from the newest ones) make them
# common: reading every candidate to apply selective filters costs more than letting the
# filters lead.
COMMON = 5000
# The newest tickets looked at first: when more than COUNT_CAP of them match, the count is
# capped without touching the index, and how many hold the words tells a common word.
SAMPLE = 20_000
# The index is the database's own (a trigger fills it), so it is no model: a bare table.
_GRAMS = sa.table("ticket_grams", sa.column("ticket_id"), sa.column("grams"), sa.column("rowid"))


@dataclass(frozen=True)
class Found:
    rows: list[tuple[Ticket, list[TargetState]]]
    total: int
    exact: bool  # False: at least `total` tickets match; counting stopped there


def search_tickets(
    session: Session,
    *,
    pool: str | None = None,
    severity: str | None = None,
    status: str | None = None,
    breached: bool | None = None,
    reported_from: datetime | None = None,
    reported_to: datetime | None = None,
    q: str | None = None,
    source: str | None = None,
    page: int = 1,
    per_page: int = 50,
    tz: tzinfo = UTC,
) -> Found:
    """One page of tickets matching every filter given, newest report first, with a total
    that is exact up to `COUNT_CAP`."""
    if session.get_bind().dialect.name == "postgresql":
        # These are short lookups: PostgreSQL's estimates for a subplan per row (the breached
        # test) reach its JIT threshold, and compiling cost 5–170 ms; parallel workers cost
        # 20–40 ms of start-up on two cores for a 20 ms query. Both for this transaction only.
        connection = session.connection()
        connection.exec_driver_sql("SET LOCAL jit = off")
        connection.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
    where: list[sa.ColumnElement[bool]] = []
    if pool:
        where.append(col(Ticket.pool) == pool)
    if severity:
        where.append(col(Ticket.current_severity) == severity)
    if status:
        where.append(col(Ticket.status) == status)
    if source:
        where.append(col(Ticket.source) == source)
    if reported_from is not None:
        start = reported_from if reported_from.tzinfo else reported_from.replace(tzinfo=tz)
        where.append(col(Ticket.reported_at) >= start)
    if reported_to is not None:
        end = reported_to if reported_to.tzinfo else reported_to.replace(tzinfo=tz)
        where.append(col(Ticket.reported_at) <= end)
    if breached is not None:
        exists = (
            select(TargetState.ticket_id)
            .where(TargetState.ticket_id == Ticket.id, TargetState.status == TargetStatus.BREACHED)
            .exists()
        )
        where.append(exists if breached else ~exists)
    words = (q or "").strip()
    listing: SelectOfScalar[Ticket]
    if not words:
        matching = select(Ticket.id).where(*where).limit(COUNT_CAP + 1).subquery()
        count = session.exec(select(sa.func.count()).select_from(matching)).one()
        total, exact = min(count, COUNT_CAP), count <= COUNT_CAP
        listing = select(Ticket).where(*where)
    else:
        like = _like(session, words)
        number = int(words) if words.isdigit() and len(words) <= 9 else None
        ids: list[int | None] = []
        holding, passing = _sample(session, like, where)
        if passing <= COUNT_CAP:
            if where and holding > COMMON:
                # A common word with filters: the filters' indexes narrow better than grams.
                found = select(col(Ticket.id)).where(*where, like).limit(COUNT_CAP + 1)
            else:
                found = _matching(session, words, [*where, like]).limit(COUNT_CAP + 1)
            ids = list(session.exec(found))
            by_number = select(Ticket.id).where(col(Ticket.id) == number, *where)
            if number is not None and number not in ids and session.exec(by_number).first():
                ids.append(number)
        if passing <= COUNT_CAP and len(ids) <= COUNT_CAP:
            # Few enough to read them all: sort the matches themselves.
            total, exact = len(ids), True
            listing = select(Ticket).where(col(Ticket.id).in_(ids))
        else:
            # Many match: walking the newest tickets finds a page of them soon.
            total, exact = COUNT_CAP, False
            either = like if number is None else sa.or_(like, col(Ticket.id) == number)
            listing = select(Ticket).where(*where, either)
    tickets = (
        session.exec(
            listing.order_by(col(Ticket.reported_at).desc(), col(Ticket.id).desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
        if total
        else []
    )
    states: dict[int, list[TargetState]] = {}
    if tickets:
        of_page = col(TargetState.ticket_id).in_([t.id for t in tickets])
        for s in session.exec(select(TargetState).where(of_page)):
            states.setdefault(s.ticket_id, []).append(s)
    return Found([(t, states.get(t.id or 0, [])) for t in tickets], total, exact)


def _like(session: Session, words: str) -> sa.ColumnElement[bool]:
    """The exact test: the words in the external id, title or description, ignoring case.

    SQLite's LIKE already ignores the case of ASCII letters (and only of those, like its
    lower()); on PostgreSQL ILIKE is needed only when the words have cased letters, and
    Chinese has none."""
    escaped = words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    cased = words.lower() != words.upper()
    fold = cased and session.get_bind().dialect.name == "postgresql"
    columns = (col(Ticket.title), col(Ticket.external_id), col(Ticket.description))
    return sa.or_(
        *(c.ilike(pattern, escape="\\") if fold else c.like(pattern, escape="\\") for c in columns)
    )


def _sample(
    session: Session, like: sa.ColumnElement[bool], where: list[sa.ColumnElement[bool]]
) -> tuple[float, int]:
    """Of the newest `SAMPLE` tickets, how many match the words and the filters; and how
    many tickets in all the words alone would match at the rate they do there."""
    # The edge as a value, not a subquery: PostgreSQL then plans for SAMPLE rows, not a third
    # of the table (which set its JIT compiler going, 170 ms).
    newest = session.exec(select(sa.func.max(Ticket.id))).one() or 0
    counts = select(
        sa.func.count(),
        sa.func.count().filter(like),
        sa.func.count().filter(sa.and_(like, *where)),
    )
    looked, holding, passing = session.exec(counts.where(col(Ticket.id) > newest - SAMPLE)).one()
    return holding * newest / max(looked, 1), passing


def _matching(
    session: Session, words: str, where: list[sa.ColumnElement[bool]]
) -> SelectOfScalar[int | None]:
    """Ticket ids that hold every gram of the words (a superset of the LIKE's matches) and
    pass `where`, read in the index's order so a LIMIT stops early."""
    if session.get_bind().dialect.name == "postgresql":
        # The planner, seeing good LIKE statistics, would rather scan every ticket; OFFSET 0
        # keeps the test a per-candidate subplan, so the gram index always leads.
        test = (
            select(sa.literal(1))
            .select_from(Ticket)
            .where(col(Ticket.id) == _GRAMS.c.ticket_id, *where)
            .offset(0)
        )
        grams = _GRAMS.c.grams.op("@>")(sa.func.slamon_query_grams(words))
        return select(_GRAMS.c.ticket_id).where(grams, test.exists())
    return (
        select(col(Ticket.id))
        .select_from(_GRAMS)
        .join(Ticket, col(Ticket.id) == _GRAMS.c.rowid)
        .where(sa.literal_column("ticket_grams").op("MATCH")(fts_query(words)), *where)
    )
