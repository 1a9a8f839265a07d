"""A benchmark run replaces its own section of bench/RESULTS.md and keeps every other."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import results


def sections(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")]


def test_a_run_replaces_only_the_section_of_its_own_heading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "RESULTS.md"
    monkeypatch.setattr(results, "RESULTS", path)
    path.write_text(
        "# Benchmark results\n\n"
        "### Import instructions — after: c85909a\n\n- 5.34 M\n\n"
        "### Import instructions — before\n\n- 7.06 M\n\n"
        "### Later\n\n- kept\n",
        encoding="utf-8",
    )
    # A heading that begins an older one is a section of its own, added at the end.
    results.write_section(["### Import instructions — after", "", "- 4.31 M"])
    # A heading already there is replaced where it stands.
    results.write_section(["### Import instructions — before", "", "- 4.47 M"])

    assert sections(path) == [
        "# Benchmark results",
        "### Import instructions — after: c85909a",
        "### Import instructions — before",
        "### Later",
        "### Import instructions — after",
    ]
    text = path.read_text(encoding="utf-8")
    assert "- 5.34 M" in text and "- kept" in text and "- 4.31 M" in text
    assert "- 4.47 M" in text and "- 7.06 M" not in text
    assert "- 4.47 M\n\n### Later" in text  # a blank line before the next heading
