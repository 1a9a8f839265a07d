"""The year-end scoring feed: every ticket in scope re-judged from what was recorded by
`as_of`, the indicators' scores, and the evidence behind them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from monitor.breaches.models import Breach, BreachReview
from monitor.core.timeutil import iso, year_bounds
from monitor.scoring.rules import (
    CountedBreach,
    IndicatorFile,
    ScopeTicket,
    load_indicators,
    score_breach_count,
)
from monitor.sla.service import SlaContext, judge_ticket, timeline_of
from monitor.sla.timer import Judgement, apply_corrections
from monitor.tickets.models import Event, Ticket


def _reviews_as_of(
    session: Session, ticket_ids: list[int], as_of: datetime
) -> dict[tuple[int, str], list[BreachReview]]:
    out: dict[tuple[int, str], list[BreachReview]] = defaultdict(list)
    for chunk in range(0, len(ticket_ids), 500):
        ids = ticket_ids[chunk : chunk + 500]
        rows = session.exec(
            select(Breach, BreachReview)
            .join(BreachReview, col(BreachReview.breach_id) == Breach.id)
            .where(col(Breach.ticket_id).in_(ids), col(BreachReview.reviewed_at) <= as_of)
            .order_by(col(BreachReview.id))
        ).all()
        for breach, review in rows:
            out[(breach.ticket_id, breach.target)].append(review)
    return out


def _events_as_of(
    session: Session, ticket_ids: list[int], as_of: datetime
) -> dict[int, list[Event]]:
    out: dict[int, list[Event]] = defaultdict(list)
    for chunk in range(0, len(ticket_ids), 500):
        rows = session.exec(
            select(Event)
            .where(
                col(Event.ticket_id).in_(ticket_ids[chunk : chunk + 500]),
                col(Event.recorded_at) <= as_of,
            )
            .order_by(col(Event.ticket_id), col(Event.seq))
        ).all()
        for e in rows:
            out[e.ticket_id].append(e)
    return out


def _event_json(events: list[Event], ctx: SlaContext) -> list[dict[str, Any]]:
    effective = {x.event.seq: x.at for x in apply_corrections(timeline_of(events))}
    by_id = {e.id: e for e in events}
    return [
        {
            "id": e.client_id or str(e.seq),
            "seq": e.seq,
            "type": e.type,
            "at": iso(e.occurred_at, ctx.tz),
            "corrected_at": iso(effective[e.seq], ctx.tz)
            if e.seq in effective and effective[e.seq] != e.occurred_at
            else None,
            "recorded_at": iso(e.recorded_at, ctx.tz),
            "actor": e.actor,
            "role": e.actor_role,
            "source": e.source,
            "note": e.note,
            "evidence": e.evidence,
            "corrects": (by_id[e.corrects_id].client_id or str(by_id[e.corrects_id].seq))
            if e.corrects_id in by_id
            else None,
            "reason": e.reason,
        }
        for e in events
    ]


def scoring_feed(
    session: Session,
    ctx: SlaContext,
    year: int,
    as_of: datetime | None = None,
    indicators: IndicatorFile | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The score JSON of the specification, judged only from what was recorded by `as_of`."""
    as_of = as_of or ctx.now()
    indicators = indicators or load_indicators(ctx.settings.config_dir)
    begin, end = year_bounds(year, ctx.tz)
    # A reported time corrected after as_of may move a ticket across the year boundary:
    # take a margin here and decide by the reported time as recorded by as_of below.
    margin = timedelta(days=62)
    tickets = session.exec(
        select(Ticket)
        .where(
            col(Ticket.created_at) <= as_of,
            col(Ticket.reported_at) >= begin - margin,
            col(Ticket.reported_at) < end + margin,
        )
        .order_by(col(Ticket.id))
    ).all()
    candidates = [t for t in tickets if t.id is not None]
    events = _events_as_of(session, [t.id for t in candidates if t.id], as_of)
    reviews = _reviews_as_of(session, [t.id for t in candidates if t.id], as_of)

    judged: list[tuple[Ticket, list[Event], Judgement, datetime]] = []
    for i, ticket in enumerate(candidates):
        assert ticket.id is not None
        evs = events.get(ticket.id, [])
        reported = next(
            (x.at for x in apply_corrections(timeline_of(evs)) if x.type == "reported"), None
        )
        if reported is not None and begin <= reported < end:
            judged.append((ticket, evs, judge_ticket(ctx, ticket, evs, as_of), reported))
        if progress and (i % 200 == 0 or i == len(candidates) - 1):
            progress(i + 1, len(candidates))

    def review_of(ticket_id: int, target: str) -> tuple[str, list[BreachReview]]:
        found = reviews.get((ticket_id, target), [])
        return (found[-1].decision if found else "pending"), found

    scope = []
    for ticket, _, judgement, reported in judged:
        assert ticket.id is not None
        breaches = tuple(
            CountedBreach(t.target, review_of(ticket.id, t.target)[0])
            for t in judgement.targets
            if t.status == "breached"
        )
        scope.append(ScopeTicket(ticket.id, judgement.severity, reported, breaches))

    out = []
    for indicator in indicators.indicators:
        rule = indicator.rule
        names = []
        for severity in rule.severities:
            policy = (
                ctx.policies.in_force(begin.astimezone(ctx.tz).date()) or ctx.policies.policies[-1]
            )
            names.append(
                policy.severities[severity].name if severity in policy.severities else severity
            )
        score = score_breach_count(rule, indicator.points, scope, "、".join(names))
        wanted = set(score.in_scope)
        evidence = []
        for ticket, evs, judgement, reported in judged:
            if ticket.id not in wanted:
                continue
            assert ticket.id is not None
            listed: list[dict[str, Any]] = []
            for t in judgement.targets:
                if t.status != "breached":
                    continue
                decision, revs = review_of(ticket.id, t.target)
                listed.append(
                    {
                        "target": t.target,
                        "name": t.name,
                        "deadline": iso(t.deadline, ctx.tz),
                        "stop": iso(t.stop, ctx.tz),
                        "overrun_seconds": t.overrun.total_seconds() if t.overrun else None,
                        "review": decision,
                        "counted": decision != "waived",
                        "reviews": [
                            {
                                "decision": r.decision,
                                "reason": r.reason,
                                "reviewer": r.reviewer,
                                "at": iso(r.reviewed_at, ctx.tz),
                            }
                            for r in revs
                        ],
                        "explain": t.explain,
                    }
                )
            evidence.append(
                {
                    "ticket": ticket.id,
                    "external_id": ticket.external_id,
                    "pool": ticket.pool,
                    "severity": judgement.severity,
                    "title": ticket.title,
                    "reported_at": iso(reported, ctx.tz),
                    "status": judgement.status,
                    "occurrence": ticket.id in score.occurrence_tickets,
                    "targets": [
                        {
                            "id": t.target,
                            "name": t.name,
                            "status": t.status,
                            "start": iso(t.start, ctx.tz),
                            "deadline": iso(t.deadline, ctx.tz),
                            "stop": iso(t.stop, ctx.tz),
                        }
                        for t in judgement.targets
                    ],
                    "breaches": listed,
                    "events": _event_json(evs, ctx),
                }
            )
        out.append(
            {
                "id": indicator.id,
                "name": indicator.name,
                "level1": indicator.level1,
                "level2": indicator.level2,
                "criteria": indicator.criteria,
                "points": indicator.points,
                "score": score.score,
                "final": score.final,
                "tickets_in_scope": score.tickets_in_scope,
                "occurrences": score.occurrences,
                "breaches": score.breaches,
                "comment": score.comment,
                "evidence": evidence,
            }
        )
    return {"year": year, "as_of": iso(as_of, ctx.tz), "indicators": out}
