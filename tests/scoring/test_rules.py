"""The fault_timeliness rule on hand-built facts (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from monitor.scoring.rules import BreachCountRule, CountedBreach, ScopeTicket, score_breach_count

AT = datetime(2022, 5, 1, tzinfo=UTC)
RULE = BreachCountRule(kind="breach_count")


def ticket(n: int, severity: str = "major", *reviews: str) -> ScopeTicket:
    return ScopeTicket(
        n, severity, AT, tuple(CountedBreach(f"t{i}", r) for i, r in enumerate(reviews))
    )


def test_the_2022_evaluation_six_majors_one_late_scores_two() -> None:
    tickets = [
        ticket(1, "major", "confirmed", "confirmed"),
        *[ticket(i) for i in range(2, 7)],
        ticket(7, "general", "confirmed"),
    ]
    score = score_breach_count(RULE, 3, tickets, "重大故障")
    assert (score.score, score.occurrences, score.tickets_in_scope) == (2.0, 1, 6)
    assert score.comment == "本年度共发生6次重大故障，其中1次故障处理超时。"
    assert score.final and score.breaches == {"pending": 0, "confirmed": 2, "waived": 0}


def test_waived_breaches_do_not_count_and_pending_ones_keep_it_provisional() -> None:
    tickets = [ticket(1, "major", "waived"), ticket(2, "major", "pending", "waived")]
    score = score_breach_count(RULE, 3, tickets, "重大故障")
    assert score.occurrences == 1 and score.score == 2.0 and not score.final
    per_breach = BreachCountRule(kind="breach_count", count="per_breach")
    three = [ticket(1, "major", "confirmed", "pending", "waived")]
    assert score_breach_count(per_breach, 3, three, "重大故障").occurrences == 2


def test_comments_for_a_clean_year_and_an_empty_one() -> None:
    assert (
        score_breach_count(RULE, 3, [ticket(1)], "重大故障").comment
        == "本年度共发生1次重大故障，均在约定时间内处理完成。"
    )
    assert score_breach_count(RULE, 3, [], "重大故障").comment == "本年度未发生重大故障。"


@given(
    st.lists(st.lists(st.sampled_from(["pending", "confirmed", "waived"]), max_size=3), max_size=12)
)
def test_the_score_never_drops_below_zero_and_counts_per_ticket(reviews: list[list[str]]) -> None:
    tickets = [ticket(i, "major", *r) for i, r in enumerate(reviews)]
    score = score_breach_count(RULE, 3, tickets, "重大故障")
    late = sum(1 for r in reviews if any(x != "waived" for x in r))
    assert score.occurrences == late
    assert score.score == max(0, 3 - late)
    assert score.final == all(x != "pending" for r in reviews for x in r)
