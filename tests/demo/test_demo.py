"""The demo year is realistic, deterministic and holds the evaluation's 2022-08-10 incident."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlmodel import Session, select

from monitor.audit.verify import verify
from monitor.demo.data import drafts, load_demo
from monitor.judging.flow import write_flow
from monitor.scoring.feed import scoring_feed
from monitor.sla.models import TargetState
from monitor.sla.service import SlaContext
from monitor.tickets.models import Event, Ticket
from monitor.tickets.service import find_ticket


def test_the_demo_year_loads_once_with_what_the_supervision_report_recorded(
    session: Session, ctx: SlaContext
) -> None:
    count = demo(session, ctx)
    session.commit()
    assert 250 <= count <= 400
    tickets = session.exec(select(Ticket)).all()
    assert {t.pool for t in tickets} == {"pool1", "pool2"}
    assert set(Counter(t.severity for t in tickets)) == {
        "major",
        "significant",
        "general",
        "anomaly",
    }
    assert all(t.reported_at.year == 2022 for t in tickets)
    majors = [t for t in tickets if t.severity == "major"]
    late = {
        t.external_id
        for t in majors
        if any(
            s.status == "breached"
            for s in session.exec(select(TargetState).where(TargetState.ticket_id == t.id)).all()
        )
    }
    # Six major faults, one handled too late: the seed report's 2022 figures.
    assert len(majors) == 6 and late == {"DX-2022-0810"}
    incident = find_ticket(session, "DX-2022-0810")
    assert incident.pool == "pool2"
    statuses = Counter(s.status for s in session.exec(select(TargetState)).all())
    assert statuses["met"] > 5 * statuses["breached"] > 0
    corrections = session.exec(select(Event).where(Event.type == "correction")).all()
    assert corrections
    late_entries = [
        e
        for e in session.exec(select(Event)).all()
        if (e.recorded_at - e.occurred_at).days >= 3 and e.type != "correction"
    ]
    assert late_entries
    assert verify(session).ok
    # The README's example: the score as it stood on 31 March 2023 sees the whole demo year.
    as_of = datetime(2023, 3, 31, 18, 0, tzinfo=ctx.tz)
    assert all(t.created_at <= as_of for t in tickets)
    indicator = scoring_feed(session, ctx, 2022, as_of).indicators[0]
    assert indicator.comment == "本年度共发生6次重大故障，其中1次故障处理超时。"
    assert (indicator.score, indicator.final) == (2.0, False)  # its breaches await review
    assert demo(session, ctx) == 0


def test_the_demo_is_the_same_every_time(ctx: SlaContext) -> None:
    assert [d.ticket for d in drafts(ctx)] == [d.ticket for d in drafts(ctx)]


def demo(session: Session, ctx: SlaContext) -> int:
    with write_flow(session, ctx) as flow:
        return load_demo(flow)
