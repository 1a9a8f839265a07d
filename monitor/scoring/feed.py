"""The year-end scoring feed: every ticket in scope re-judged from what was recorded by
`as_of`, the indicators' scores, and the evidence behind them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sqlmodel import Session, col, select

from monitor.breaches.models import Breach, BreachReview
from monitor.breaches.service import held_corrections
from monitor.core.batch import collector_paused
from monitor.core.timeutil import iso, year_bounds
from monitor.scoring.rules import (
    CountedBreach,
    IndicatorFile,
    ScopeTicket,
    Score,
    load_indicators,
    score_breach_count,
)
from monitor.scoring.schemas import (
    CountedBreachOut,
    IndicatorScore,
    NotFinal,
    ReviewRecord,
    ScoreFeed,
    TargetSnapshot,
    TicketEvidence,
)
from monitor.sla.service import SlaContext
from monitor.sla.timer import Judgement
from monitor.sla.vocab import Review, TargetStatus
from monitor.tickets.models import SEVERITY_CHANGED, Event, Ticket
from monitor.tickets.service import effective_timeline, events_out, judge_ticket


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


@dataclass(frozen=True)
class Judged:
    """A ticket of the year, judged from what was recorded by as_of."""

    ticket: Ticket
    events: list[Event]
    judgement: Judgement
    reported: datetime

    @property
    def id(self) -> int:
        assert self.ticket.id is not None
        return self.ticket.id


Reviews = dict[tuple[int, str], list[BreachReview]]


def _candidates(
    session: Session,
    as_of: datetime,
    begin: datetime,
    end: datetime,
    severities: Collection[str] | None,
) -> list[Ticket]:
    """Tickets created by as_of and reported between begin and end that can have one of the
    severities as of as_of: reported with one, or with a severity change at any time (the
    judgement decides). Two indexed reads, so the cost follows the scope, not all tickets."""
    window = (
        col(Ticket.created_at) <= as_of,
        col(Ticket.reported_at) >= begin,
        col(Ticket.reported_at) < end,
    )
    if severities is None:
        return list(session.exec(select(Ticket).where(*window).order_by(col(Ticket.id))).all())
    changed = select(Event.ticket_id).where(SEVERITY_CHANGED).distinct()
    found: dict[int | None, Ticket] = {}
    for query in (
        select(Ticket).where(col(Ticket.severity).in_(sorted(severities)), *window),
        select(Ticket).where(col(Ticket.id).in_(changed), *window),
    ):
        found.update((t.id, t) for t in session.exec(query).all())
    return [found[i] for i in sorted(i for i in found if i is not None)]


def judge_year(
    session: Session,
    ctx: SlaContext,
    year: int,
    as_of: datetime,
    progress: Callable[[int, int], None] | None = None,
    severities: Collection[str] | None = None,
) -> tuple[list[Judged], Reviews]:
    """Step 1: every ticket reported in the year (as recorded by as_of), re-judged at as_of;
    with `severities`, only those that may have one of them as of as_of (a superset of every
    rule's scope: the rules still pick by the judged severity)."""
    begin, end = year_bounds(year, ctx.tz)
    # A reported time corrected after as_of may move a ticket across the year boundary:
    # take a margin here and decide by the reported time as recorded by as_of below.
    margin = timedelta(days=62)
    candidates = _candidates(session, as_of, begin - margin, end + margin, severities)
    ids = [t.id for t in candidates if t.id is not None]
    events = _events_as_of(session, ids, as_of)
    held = held_corrections(session, ids, as_of)
    judged = []
    for i, ticket in enumerate(candidates):
        assert ticket.id is not None
        evs = events.get(ticket.id, [])
        kept = held.get(ticket.id, set())
        timeline = effective_timeline(evs, kept)
        reported = next((x.at for x in timeline if x.type == "reported"), None)
        if reported is not None and begin <= reported < end:
            judgement = judge_ticket(ctx, ticket, evs, as_of, kept)
            judged.append(Judged(ticket, evs, judgement, reported))
        if progress and (i % 200 == 0 or i == len(candidates) - 1):
            progress(i + 1, len(candidates))
    return judged, _reviews_as_of(session, ids, as_of)


def _review_of(reviews: Reviews, ticket_id: int, target: str) -> tuple[str, list[BreachReview]]:
    found = reviews.get((ticket_id, target), [])
    return (found[-1].decision if found else Review.PENDING), found


def count_scope(judged: list[Judged], reviews: Reviews) -> list[ScopeTicket]:
    """Step 2: each judged ticket's breaches with their review as of as_of (for the rules)."""
    return [
        ScopeTicket(
            j.id,
            j.judgement.severity,
            j.reported,
            tuple(
                CountedBreach(t.target, _review_of(reviews, j.id, t.target)[0])
                for t in j.judgement.targets
                if t.status == TargetStatus.BREACHED
            ),
            tuple((t.target, t.status) for t in j.judgement.targets if t.status in UNSETTLED),
        )
        for j in judged
    ]


# A target in one of these states can still change the score.
UNSETTLED = (
    TargetStatus.RUNNING,
    TargetStatus.AT_RISK,
    TargetStatus.PAUSED,
    TargetStatus.NOT_STARTED,
    TargetStatus.UNKNOWN_CALENDAR,
)
NOT_FINAL_TEXT = {
    "pending_review": "有超时尚待监理审核",
    "running": "有目标仍在计时",
    "at_risk": "有目标即将超时",
    "paused": "有目标暂停计时",
    "not_started": "有目标尚未开始计时",
    "unknown_calendar": "有目标所需年份的工作日历尚未载入",
    "year_open": "评价年度尚未结束，年内还可能发生新的故障",
}


def _not_final(score: Score, refs: dict[int, str], year_open: bool) -> list[NotFinal]:
    reasons = [
        NotFinal(
            reason=reason,
            text=f"{NOT_FINAL_TEXT.get(reason, reason)}（{len(ids)} 张工单）",
            tickets=[refs[i] for i in ids],
        )
        for reason, ids in score.not_final.items()
    ]
    if year_open:  # a fault reported before the year ends still counts
        reasons.append(NotFinal(reason="year_open", text=NOT_FINAL_TEXT["year_open"], tickets=[]))
    return reasons


def _severity_names(ctx: SlaContext, year: int, severities: list[str]) -> str:
    begin, _ = year_bounds(year, ctx.tz)
    policy = ctx.policies.in_force(begin.astimezone(ctx.tz).date()) or ctx.policies.policies[-1]
    return "、".join(policy.severities[s].name if s in policy.severities else s for s in severities)


def ticket_evidence(j: Judged, reviews: Reviews, occurrence: bool, tz: tzinfo) -> TicketEvidence:
    """Step 4: what an evaluator needs to check one ticket in scope."""
    breaches = []
    for t in j.judgement.targets:
        if t.status != TargetStatus.BREACHED:
            continue
        decision, found = _review_of(reviews, j.id, t.target)
        breaches.append(
            CountedBreachOut(
                target=t.target,
                name=t.name,
                deadline=iso(t.deadline, tz),
                stop=iso(t.stop, tz),
                overrun_seconds=t.overrun.total_seconds() if t.overrun else None,
                review=decision,
                counted=decision != Review.WAIVED,
                reviews=[
                    ReviewRecord(
                        decision=r.decision,
                        reason=r.reason,
                        reviewer=r.reviewer,
                        at=iso(r.reviewed_at, tz),
                    )
                    for r in found
                ],
                explain=t.explain,
            )
        )
    return TicketEvidence(
        ticket=j.id,
        external_id=j.ticket.external_id,
        pool=j.ticket.pool,
        severity=j.judgement.severity,
        title=j.ticket.title,
        reported_at=iso(j.reported, tz),
        status=j.judgement.status,
        occurrence=occurrence,
        targets=[
            TargetSnapshot(
                id=t.target,
                name=t.name,
                status=t.status,
                start=iso(t.start, tz),
                deadline=iso(t.deadline, tz),
                stop=iso(t.stop, tz),
            )
            for t in j.judgement.targets
        ],
        breaches=breaches,
        events=events_out(j.events, tz),
    )


def scoring_feed(
    session: Session,
    ctx: SlaContext,
    year: int,
    as_of: datetime | None = None,
    indicators: IndicatorFile | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScoreFeed:
    """The score JSON of the specification, judged only from what was recorded by `as_of`:
    judge the year → count each rule's scope → score and comment (pure) → evidence."""
    with collector_paused():
        return _scoring_feed(session, ctx, year, as_of or ctx.now(), indicators, progress)


def _scoring_feed(
    session: Session,
    ctx: SlaContext,
    year: int,
    as_of: datetime,
    indicators: IndicatorFile | None,
    progress: Callable[[int, int], None] | None,
) -> ScoreFeed:
    indicators = indicators or load_indicators(ctx.settings.config_dir)
    severities = {s for indicator in indicators.indicators for s in indicator.rule.severities}
    judged, reviews = judge_year(session, ctx, year, as_of, progress, severities)
    scope = count_scope(judged, reviews)
    year_open = as_of < year_bounds(year, ctx.tz)[1]
    out = []
    for indicator in indicators.indicators:
        rule = indicator.rule
        names = _severity_names(ctx, year, rule.severities)
        score = score_breach_count(rule, indicator.points, scope, names)
        wanted, late = set(score.in_scope), set(score.occurrence_tickets)
        out.append(
            IndicatorScore(
                id=indicator.id,
                name=indicator.name,
                level1=indicator.level1,
                level2=indicator.level2,
                criteria=indicator.criteria,
                points=indicator.points,
                score=score.score,
                final=score.final and not year_open,
                tickets_in_scope=score.tickets_in_scope,
                occurrences=score.occurrences,
                breaches=score.breaches,
                comment=score.comment,
                not_final=_not_final(
                    score, {j.id: j.ticket.external_id or str(j.id) for j in judged}, year_open
                ),
                evidence=[
                    ticket_evidence(j, reviews, j.id in late, ctx.tz)
                    for j in judged
                    if j.id in wanted
                ],
            )
        )
    return ScoreFeed(year=year, as_of=iso(as_of, ctx.tz), indicators=out)
