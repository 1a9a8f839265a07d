"""A benchmark run replaces its own section of bench/RESULTS.md and keeps every other."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def test_the_cpu_of_the_servers_tree_and_of_the_clients_is_told_apart(tmp_path: Path) -> None:
    """`CpuUse` counts a server's process and its children (a `serve --workers` worker)
    apart from the benchmark's own clients, so a throughput figure says where the machine's
    time went."""
    done = tmp_path / "burnt"
    burn = (
        "import pathlib, time\nend = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\n"
        f"pathlib.Path({str(done)!r}).touch()\ntime.sleep(30)"
    )
    # A parent that starts a child which burns, as `serve --workers` starts its workers.
    parent = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {burn!r}])"
    server = subprocess.Popen([sys.executable, "-c", parent], start_new_session=True)
    try:
        cpu = results.CpuUse([server.pid])
        end = time.process_time() + 0.2
        while time.process_time() < end:  # the clients' work
            pass
        deadline = time.monotonic() + 30
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        spent = cpu.spent()
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    assert spent is not None
    assert 0.19 <= spent["client"] < 0.5
    assert 0.29 <= spent["server"] < 0.6  # the child's, and none of the clients'
    assert 0 < spent["busy"] <= 1


def test_each_databases_write_figures_and_import_say_the_machines_speed_then(
    tmp_path: Path,
) -> None:
    """A database's part of a run may meet a slower moment than the run's start, which the
    section's heading gives: its write figures and its import each come after a reading of
    the machine's speed of their own."""
    from bench.run import Plan, bench_database

    found: list[results.Result] = []
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    bench_database(url, Plan("test", [20], 0.2, 10, 20), found, 8799, only={"raw", "import"})
    names = [r.name for r in found]
    assert names.index("speed.before_write") < names.index("raw_insert.1_client")
    assert names.index("raw_insert.4_clients") < names.index("speed.before_import")
    assert names.index("speed.before_import") < names.index("import.events_per_s")
    for name in ("speed.before_write", "speed.before_import"):
        (speed,) = [r for r in found if r.name == name]
        assert speed.unit == "s" and speed.database == "sqlite"
        assert speed.value is not None and 0 < speed.value < 30
