"""`audit verify`: the hash chain, then every row that decides a deadline, a scope or a
score, checked against the chain or re-derived from audited rows. The first row that
disagrees is named."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlmodel import Session, col, select

from monitor.audit.service import Audited, VerifyResult, verify_chain
from monitor.breaches.models import Breach, BreachReview
from monitor.breaches.service import held_corrections
from monitor.core.timeutil import show, utc
from monitor.sla.timer import current_severity, ticket_status
from monitor.sla.vocab import Review
from monitor.tickets.models import Event, Ticket
from monitor.tickets.service import effective_timeline

Problem = tuple[int, str]  # (audit seq concerned, 0 when the row has none; what is wrong)


def verify(
    session: Session, checkpoint: tuple[int, str] | None = None, tz: tzinfo = UTC
) -> VerifyResult:
    """The chain, then the rows; times in messages are shown in `tz`, with their offset."""
    result, audited = verify_chain(session, checkpoint)
    if not result.ok:
        return result
    events = _events_by_ticket(session)
    problem = (
        _check_tickets(session, audited, events, tz)
        or _check_events(events, audited, tz)
        or _check_reviews(session, audited)
        or _check_breaches(session, audited)
    )
    if problem is not None:
        return VerifyResult(result.checked, problem[0], problem[1])
    return result


def _events_by_ticket(session: Session) -> dict[int, list[Event]]:
    out: dict[int, list[Event]] = defaultdict(list)
    for e in session.exec(select(Event).order_by(col(Event.ticket_id), col(Event.seq))).all():
        out[e.ticket_id].append(e)
    return out


def _differs(claimed: Any, value: Any) -> bool:
    if isinstance(value, datetime) and isinstance(claimed, str):
        return datetime.fromisoformat(claimed) != value
    if isinstance(value, datetime) and isinstance(claimed, datetime):
        return utc(claimed) != value
    return bool(claimed != value)


def _shown(value: Any, tz: tzinfo) -> str:
    """A value as a person reads it: times in the configured zone, with their offset."""
    return show(value, tz) if isinstance(value, datetime) else str(value)


def _claimed(claimed: Any, value: Any, tz: tzinfo) -> str:
    """What the audit record says, a time shown like the table's."""
    if isinstance(value, datetime) and isinstance(claimed, str):
        return show(datetime.fromisoformat(claimed), tz)
    return _shown(claimed, tz) if isinstance(claimed, datetime) else repr(claimed)


def _check_tickets(
    session: Session, audited: Audited, events: dict[int, list[Event]], tz: tzinfo
) -> Problem | None:
    """A ticket's facts are as created; its derived fields follow from its events."""
    held = held_corrections(session, sorted(events))
    for t in session.exec(select(Ticket).order_by(col(Ticket.id))).all():
        entry = audited.tickets.get(str(t.id))
        if entry is None:
            return 0, f"ticket {t.id} is not in the audit log"
        seq, actor, at, payload = entry
        facts: dict[str, Any] = {
            "pool": t.pool,
            "external_id": t.external_id,
            "severity": t.severity,
            "title": t.title,
            "source": t.source,
            "policy_version": t.policy_version,
            "units": t.units,
            "systems": t.systems,
        }
        facts = {k: v for k, v in facts.items() if k in payload}
        facts |= {"created_at": (at, t.created_at), "created_by": (actor, t.created_by)}
        for name, value in facts.items():
            claimed, stored = value if isinstance(value, tuple) else (payload[name], value)
            if _differs(claimed, stored):
                return seq, (
                    f"ticket {t.id} was changed after it was created ({name}: audit says "
                    f"{_claimed(claimed, stored, tz)}, table has {_shown(stored, tz)})"
                )
        timeline = effective_timeline(events.get(t.id or 0, []), held.get(t.id or 0, set()))
        reported = next((x.at for x in timeline if x.type == "reported"), None)
        derived: dict[str, Any] = {
            "current_severity": current_severity(t.severity, timeline)[0],
            "status": ticket_status(timeline),
            "reported_at": reported,
        }
        stored_now: dict[str, Any] = {
            "current_severity": t.current_severity,
            "status": t.status,
            "reported_at": t.reported_at,
        }
        for name, value in derived.items():
            if value is not None and _differs(value, stored_now[name]):
                return seq, (
                    f"ticket {t.id} disagrees with its own events ({name}: the events give "
                    f"{_shown(value, tz)}, table has {_shown(stored_now[name], tz)})"
                )
    return None


def _check_events(events: dict[int, list[Event]], audited: Audited, tz: tzinfo) -> Problem | None:
    """Every stored event is exactly as its audit record says, and none is missing."""
    by_id = {e.id: e for evs in events.values() for e in evs}
    found = set()
    for evs in events.values():
        for e in evs:
            key = (str(e.ticket_id), e.seq)
            if key not in audited.events:
                return 0, f"event #{e.seq} of ticket {e.ticket_id} is not in the audit log"
            seq, actor, _, payload = audited.events[key]
            found.add(key)
            corrected = by_id.get(e.corrects_id) if e.corrects_id else None
            stored: dict[str, Any] = {
                "type": e.type,
                "at": e.occurred_at,
                "recorded_at": e.recorded_at,
                "severity": e.severity,
                "corrects": corrected.seq if corrected else None,
                "reason": e.reason,
                "note": e.note,
                "evidence": e.evidence,
                "source": e.source,
                "role": e.actor_role,
                "event_id": e.client_id,
            }
            checks = [(n, payload[n], v) for n, v in stored.items() if n in payload]
            checks.append(("actor", actor, e.actor))
            for name, claimed, value in checks:
                if _differs(claimed, value):
                    return seq, (
                        f"event #{e.seq} of ticket {e.ticket_id} was changed after it was "
                        f"recorded ({name}: audit says {_claimed(claimed, value, tz)}, "
                        f"table has {_shown(value, tz)})"
                    )
    for key, (seq, *_) in audited.events.items():
        if key not in found:
            return seq, f"event #{key[1]} of ticket {key[0]} was deleted"
    return None


def _check_reviews(session: Session, audited: Audited) -> Problem | None:
    rows = {r.id or 0: r for r in session.exec(select(BreachReview)).all()}
    for review_id, (seq, actor, _, payload) in audited.reviews.items():
        row = rows.get(review_id)
        if row is None:
            return seq, f"review {review_id} was deleted"
        if (row.decision, row.reason, row.reviewer) != (
            payload["decision"],
            payload["reason"],
            actor,
        ):
            return seq, f"review {review_id} was changed after it was recorded"
    for review_id in rows:
        if review_id not in audited.reviews:
            return 0, f"review {review_id} is not in the audit log"
    return None


def _check_breaches(session: Session, audited: Audited) -> Problem | None:
    """Every breach was detected on the record, and its review state is its latest review's."""
    seen: set[str] = set()
    latest: dict[int, BreachReview] = {}
    for r in session.exec(select(BreachReview).order_by(col(BreachReview.id))).all():
        latest[r.breach_id] = r
    for b in session.exec(select(Breach).order_by(col(Breach.id))).all():
        entry = audited.breaches.get(str(b.id))
        if entry is None:
            return 0, f"breach {b.id} is not in the audit log"
        seen.add(str(b.id))
        seq, _, _, payload = entry
        if (payload.get("ticket"), payload.get("target")) != (b.ticket_id, b.target):
            return seq, f"breach {b.id} was moved to another ticket or target"
        review = latest.get(b.id or 0)
        should = Review(review.decision) if review else Review.PENDING
        if b.review != should:
            return seq, f"breach {b.id} shows review {b.review!s} but its reviews say {should!s}"
    for breach_id, (seq, *_) in audited.breaches.items():
        if breach_id not in seen:
            return seq, f"breach {breach_id} was deleted"
    return None
