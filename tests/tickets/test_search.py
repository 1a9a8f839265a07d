"""Ticket search through the gram index: the same answer as a plain LIKE, on both databases."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlmodel import Session, col, select

from monitor.core.db import alembic_config, upgrade
from monitor.judging import new_tickets
from monitor.judging.flow import write_flow
from monitor.sla.service import SlaContext
from monitor.tickets import importer, search
from monitor.tickets import service as tickets_service
from monitor.tickets.importer import import_rows, read_rows
from monitor.tickets.models import Ticket
from monitor.tickets.schemas import TicketIn
from monitor.tickets.search import search_tickets
from tests.conftest import PG_URL
from tests.helpers import ADMIN, local, make_ticket, make_ticket_in

# (external id, pool, severity, title, description, late): late tickets breach arrival.
TICKETS = [
    ("GD-2024-001", "pool2", "major", "政务外网出口中断", "出口链路全部中断", True),
    ("GD-2024-002", "pool2", "general", "云主机批量宕机", "机房断电", False),
    ("GD-2024-003", "pool1", "major", "对象存储上传缓慢", "用户反映出口带宽告警", False),
    ("HZ-17", "pool1", "general", "VPN 连接间歇中断", "", True),
    ("HZ-18", "pool2", "major", "监控代理离线", "重装 vpn 客户端后恢复", False),
    ("HZ-19", "pool2", "major", "数据库主备切换失败", "100%_ready 标志未置位", True),
    (None, "pool1", "general", "负载均衡健康检查异常", "Health check 失败", False),
    ("GD-2024-008", "pool2", "major", "政务外网出口抖动", "", False),
]


@pytest.fixture(params=["one by one", "together"])
def tickets(session: Session, ctx: SlaContext, request: pytest.FixtureRequest) -> list[int]:
    """The tickets, created one at a time or in one batch (an import's chunk): the database
    indexes a batch's grams in one statement, a single ticket's by its trigger."""
    drafts = [_draft(i, *row) for i, row in enumerate(TICKETS)]
    if request.param == "together":
        with write_flow(session, ctx) as flow:
            ids = [t.id or 0 for t in flow.create_tickets(drafts, ADMIN)]
        session.commit()
        return ids
    ids = []
    for draft in drafts:
        with write_flow(session, ctx) as flow:
            ids.append(flow.create_ticket(draft, ADMIN).id or 0)
        session.commit()
    return ids


def _draft(
    i: int, ext: str | None, pool: str, severity: str, title: str, description: str, late: bool
) -> TicketIn:
    """Ticket `i` of TICKETS; late ones breach arrival."""
    at = local(2024, 3, 1, 9) + timedelta(days=i)
    arrived = at + timedelta(minutes=45 if late else 10)
    first = "arrived" if severity == "major" else "acknowledged"
    resolved = at + timedelta(hours=1)
    events = [
        ("reported", at.isoformat()),
        (first, arrived.isoformat()),
        ("resolved", resolved.isoformat()),
    ]
    if severity == "major":
        events.append(("report_submitted", (resolved + timedelta(days=1)).isoformat()))
    return make_ticket_in(
        events,
        external_id=ext,
        pool=pool,
        severity=severity,
        title=title,
        description=description,
    )


def plain_like(session: Session, words: str, **filters: str) -> list[int]:
    """The answer without the index: every ticket whose words contain these, ignoring case,
    and the ticket whose id they are."""
    escaped = words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    where = [getattr(Ticket, k) == v for k, v in filters.items()]
    columns = (col(Ticket.title), col(Ticket.external_id), col(Ticket.description))
    matches = [c.ilike(pattern, escape="\\") for c in columns]
    if words.isdigit():
        matches.append(col(Ticket.id) == int(words))
    query = select(Ticket.id).where(sa.or_(*matches), *where)
    return [i for i in session.exec(query.order_by(col(Ticket.reported_at).desc()))]


def ids(found: search.Found) -> list[int]:
    return [t.id or 0 for t, _ in found.rows]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("出口", [8, 3, 1]),  # two Chinese characters: title or description
        ("断", [4, 2, 1]),  # one character
        ("vpn", [5, 4]),  # Latin words whatever their case
        ("VPN", [5, 4]),
        ("health CHECK", [7]),
        ("2024-00", [8, 3, 2, 1]),  # part of an external id
        ("HZ-18", [5]),
        ("100%_", [6]),  # % and _ are the words, not wildcards
        ("%", [6]),
        ("出口中断", [1]),  # longer words: every pair, then the exact test
        ("口中", [1]),
        ("宕机断电", []),
    ],
)
def test_words_find_what_a_plain_like_finds(
    session: Session, tickets: list[int], words: str, expected: list[int]
) -> None:
    found = search_tickets(session, q=words)
    assert ids(found) == [tickets[i - 1] for i in expected]
    assert ids(found) == plain_like(session, words)
    assert (found.total, found.exact) == (len(expected), True)


# Each way of writing the index with one of the two plans (not every pair of them: four runs
# of every substring took 45 s of the suite on PostgreSQL).
@pytest.mark.parametrize(
    ("tickets", "common"),
    [("one by one", 0), ("together", 5000)],
    ids=["one by one-filters-lead", "together-grams-lead"],
    indirect=["tickets"],
)
def test_every_substring_of_every_ticket_finds_what_a_plain_like_finds(
    session: Session, tickets: list[int], monkeypatch: pytest.MonkeyPatch, common: int
) -> None:
    monkeypatch.setattr(search, "COMMON", common)
    words = set()
    for ext, _, _, title, description, _ in TICKETS:
        for text in (ext or "", title, description):
            for n in (1, 2, 3, 5):
                words.update(text[i : i + n] for i in range(len(text) - n + 1))
    for w in sorted(words):
        if w.strip():
            answer = plain_like(session, w.strip())  # the search trims the words
            assert ids(search_tickets(session, q=w, per_page=50)) == answer, w
            in_pool = plain_like(session, w.strip(), pool="pool2")
            assert ids(search_tickets(session, q=w, pool="pool2", per_page=50)) == in_pool, w


def test_an_imports_tickets_are_found_as_a_plain_like_finds_them(
    session: Session,
    ctx: SlaContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An import's worker processes make a chunk's search grams (on SQLite; PostgreSQL's
    trigger makes them): every pair of characters of every ticket finds what a plain LIKE
    finds."""
    drafts = [_draft(i, *row).model_dump(mode="json") for i, row in enumerate(TICKETS)]
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"tickets": drafts}, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setattr(importer, "CHUNK", 3)  # three chunks, made by two workers
    with write_flow(session, ctx) as flow:
        summary = import_rows(flow, read_rows(path), ADMIN, workers=2)
    session.commit()
    assert summary.tickets == len(TICKETS)
    pairs = set()
    for ext, _, _, title, description, _ in TICKETS:
        for text in (ext or "", title, description):
            pairs.update(text[i : i + 2] for i in range(len(text) - 1))
    for w in sorted(p for p in pairs if p.strip()):
        assert ids(search_tickets(session, q=w, per_page=50)) == plain_like(session, w.strip()), w


def test_an_id_is_found_though_no_words_hold_it(session: Session, tickets: list[int]) -> None:
    found = search_tickets(session, q=str(tickets[1]))
    assert tickets[1] in ids(found)
    assert tickets[1] not in ids(search_tickets(session, q=str(tickets[1]), pool="pool1"))


@pytest.mark.parametrize("common", [0, 5000], ids=["filters-lead", "grams-lead"])
def test_words_and_filters_combine(
    session: Session, tickets: list[int], monkeypatch: pytest.MonkeyPatch, common: int
) -> None:
    monkeypatch.setattr(search, "COMMON", common)
    found = search_tickets(session, q="出口", pool="pool2", severity="major", breached=True)
    assert ids(found) == [tickets[0]]
    assert ids(search_tickets(session, q="出口", breached=False)) == [tickets[7], tickets[2]]
    assert ids(search_tickets(session, q="中断", pool="pool1")) == [tickets[3]]
    window = search_tickets(
        session, q="出口", reported_from=local(2024, 3, 2), reported_to=local(2024, 3, 5)
    )
    assert ids(window) == [tickets[2]]


def test_pages_follow_one_another(session: Session, tickets: list[int]) -> None:
    everything = plain_like(session, "")
    pages = [ids(search_tickets(session, page=p, per_page=3)) for p in (1, 2, 3, 4)]
    assert [i for p in pages for i in p] == everything
    assert pages[3] == []
    worded = [ids(search_tickets(session, q="中", page=p, per_page=2)) for p in (1, 2, 3)]
    assert [i for p in worded for i in p] == plain_like(session, "中")


@pytest.mark.parametrize("words", ["", "中", "政务"])
@pytest.mark.parametrize("sample", [1, 20_000], ids=["index-counts", "newest-count"])
def test_the_total_stops_at_the_cap_and_the_pages_go_on(
    session: Session,
    tickets: list[int],
    monkeypatch: pytest.MonkeyPatch,
    words: str,
    sample: int,
) -> None:
    monkeypatch.setattr(search, "SAMPLE", sample)
    monkeypatch.setattr(search, "COUNT_CAP", 2)
    answer = plain_like(session, words)
    first = search_tickets(session, q=words, per_page=2)
    assert (first.total, first.exact) == (2, len(answer) <= 2)
    pages = [ids(search_tickets(session, q=words, page=p, per_page=2)) for p in range(1, 6)]
    assert [i for p in pages for i in p] == answer
    monkeypatch.setattr(search, "COUNT_CAP", 1000)
    assert search_tickets(session, q=words).total == len(answer)


def test_the_migration_indexes_tickets_written_before_it(
    session: Session, ctx: SlaContext, tickets: list[int], db_url: str
) -> None:
    session.rollback()
    owner = db_url if db_url.startswith("sqlite") else PG_URL
    command.downgrade(alembic_config(owner), "5e1b0c7a9d21")
    upgrade(owner)
    assert ids(search_tickets(session, q="出口")) == [tickets[7], tickets[2], tickets[0]]
    # The serving role may add tickets (and so their grams) before `db grant` runs again.
    later = make_ticket(
        session,
        ctx,
        [("reported", local(2024, 4, 1, 9).isoformat())],
        external_id="NEW-1",
        title="出口新故障",
    )
    assert ids(search_tickets(session, q="出口"))[0] == later.id


def test_a_ticket_written_after_a_failed_batch_is_still_indexed(
    session: Session, ctx: SlaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a batch turns the trigger off for its connection while it inserts; a batch
    that fails there leaves it on for the next writer of that connection. (PostgreSQL's
    trigger is never turned off: there the batch fails just after the statement that
    inserted its tickets and indexed them, and its grams go with its rollback.)"""

    def failing(*args: object) -> list[int]:
        raise RuntimeError("the database went away")

    if session.get_bind().dialect.name == "sqlite":
        monkeypatch.setattr(tickets_service, "insert_rows", failing)
    else:
        together = new_tickets.insert_together

        def failing_after(*args: Any) -> list[list[int]]:
            together(*args)
            raise RuntimeError("the database went away")

        monkeypatch.setattr(new_tickets, "insert_together", failing_after)
    with pytest.raises(RuntimeError), write_flow(session, ctx) as flow:
        flow.create_tickets([_draft(0, *TICKETS[0]), _draft(1, *TICKETS[1])], ADMIN)
    session.rollback()
    monkeypatch.undo()
    alone = make_ticket(session, ctx, [("reported", local(2024, 4, 1, 9).isoformat())])
    assert ids(search_tickets(session, q="重要业务")) == [alone.id]


def test_a_batch_the_size_of_an_imports_chunk_is_found_ticket_by_ticket(
    session: Session, ctx: SlaContext
) -> None:
    """25 tickets in one batch: on PostgreSQL they go in by COPY (20 or more), whose one
    statement indexes them all; on SQLite by one statement after the insert."""
    at = local(2024, 5, 1, 9).isoformat()
    drafts = [
        make_ticket_in([("reported", at)], external_id=f"BULK-{k:02d}", title=f"批量{k:02d}号故障")
        for k in range(25)
    ]
    with write_flow(session, ctx) as flow:
        written = [t.id for t in flow.create_tickets(drafts, ADMIN)]
    session.commit()
    for k, ticket_id in enumerate(written):
        assert ids(search_tickets(session, q=f"批量{k:02d}号")) == [ticket_id]
        assert ids(search_tickets(session, q=f"bulk-{k:02d}")) == [ticket_id]
    assert search_tickets(session, q="批量").total == 25
