"""Shared by the bench scripts: percentiles and replacing one section of bench/RESULTS.md."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def write_section(lines: list[str]) -> None:
    """Replace the section headed by lines[0] (or append it), keeping the others."""
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n\n"
    head = lines[0]
    kept = old.split(head)[0].rstrip() + "\n\n" if head in old else old.rstrip() + "\n\n"
    after = old.split(head, 1)[1].split("\n### ", 1) if head in old else []
    tail = ("### " + after[1]) if len(after) > 1 else ""
    RESULTS.write_text(kept + "\n".join(lines) + "\n" + tail, encoding="utf-8")
