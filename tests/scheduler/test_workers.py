"""`serve --workers 2` on one database (SQLite and PostgreSQL) behaves as one server: both
processes answer on the one port, one of them runs the scheduler, and every deadline that runs
out is recorded once and in time, whichever process wrote its ticket."""

from __future__ import annotations

import pytest

from bench.replicas import workers_run
from tests.test_durability import free_port

DETECTION_TARGET = 2.0  # seconds from a deadline to its breach being recorded


@pytest.mark.slow
def test_two_workers_on_one_port_miss_no_breach(db_url: str) -> None:
    o = workers_run(db_url, port=free_port(), workers=2, write_seconds=2.5)

    # Both processes answered; exactly one of them leads, before and after the load.
    assert len(o.leaders_before) == 2 and o.leaders_before.count(True) == 1, o.leaders_before
    assert len(o.leaders_after) == 2 and o.leaders_after.count(True) == 1, o.leaders_after
    # Every acknowledged write is stored, from each of the four clients.
    assert o.acknowledged and set(o.acknowledged) <= set(o.stored)
    assert {ref.split("-")[0] for ref in o.stored} == {"R0", "R1", "R2", "R3", "F"}
    # The breaches of a one-process replay, each detected once, each in time: the writes of
    # the process that does not lead re-arm the leader's wake (SQLite: by the file).
    assert o.breaches and o.breaches == o.replayed
    assert o.detected_records == o.distinct_detected == o.breach_rows
    assert o.latency and max(o.latency.values()) <= DETECTION_TARGET, sorted(o.latency.values())
    # Among them, clocks that only the process not leading wrote, with nothing else due.
    assert len(o.planted_latencies()) == len(o.planted) == 2
