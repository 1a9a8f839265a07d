"""What an import costs in CPU instructions, counted by valgrind: a figure that does not move
with the machine's load, for comparing two versions of the write path on a shared machine
(wall-clock figures there moved by ±25 % between identical runs).

    .venv/bin/python -m bench.instructions [--tickets 500] [--code DIR] [--label TEXT]
    .venv/bin/python -m bench.instructions --writes [--requests 60] [--code DIR]
    .venv/bin/python -m bench.instructions --writes --batch 100 [--requests 20] [--code DIR]

`--writes` counts an HTTP write instead: `bench/write_cost.py` (a `POST /tickets` of four
events, then one event `POST`, through the whole FastAPI application in the process, on
SQLite) run with `--requests` pairs and with a few, the difference divided by the pairs.
With `--batch N`, its `POST /tickets/batch` of N generated tickets instead, the difference
divided by the tickets.

Runs `sla-monitor import` of generated tickets on a fresh SQLite file under
`valgrind --tool=callgrind`, and again with one ticket; the difference, divided by the
tickets, is the import's own cost per ticket (start-up and one ticket's first-use costs
excluded). `--code DIR` measures another checkout of the project (e.g. a `git worktree` at
an older commit) with this one's generator, so both import the very same file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.history import SEED, write_import_file  # noqa: E402
from bench.results import machine, write_section  # noqa: E402


def instructions(code: Path, source: Path, work: Path) -> int:
    """Instructions of one import of `source` into a new SQLite file, by the code in `code`."""
    database = work / f"{source.stem}.db"
    env = {
        **os.environ,
        "SLAMON_DATABASE_URL": f"sqlite:///{database}",
        "SLAMON_CONFIG_DIR": str(code / "config"),
    }
    python = [sys.executable, "-m", "monitor"]
    subprocess.run([*python, "db", "upgrade"], cwd=code, env=env, check=True, capture_output=True)
    # `python -m monitor` imports the package of the working directory
    return _counted([*python, "import", str(source)], code, env, work / f"{source.stem}.cg")


FEW = 10  # the writes' baseline run: start-up and first-use costs, subtracted


def write_instructions(code: Path, requests: int, work: Path, batch: int = 0, made: int = 0) -> int:
    """Instructions of `bench/write_cost.py` with this many requests of each kind (`batch`:
    of its batches, the bodies of `made` requests made in both runs)."""
    script = ROOT / "bench" / "write_cost.py"
    command = [sys.executable, str(script), "--requests", str(requests), "--code", str(code)]
    if batch:
        command += ["--batch", str(batch), "--made", str(made)]
    return _counted(command, code, dict(os.environ), work / f"writes-{requests}.cg")


def _counted(command: list[str], cwd: Path, env: dict[str, str], out: Path) -> int:
    """The instructions `command` runs, counted by callgrind."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{command} under valgrind failed:\n{done.stdout}\n{done.stderr}")
    return int(found.group(1))


def batches(code: Path, requests: int, batch: int, label: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="slamon-instructions-"))
    began = time.perf_counter()
    total = write_instructions(code, requests, work, batch, requests)
    base = write_instructions(code, FEW, work, batch, requests)
    took = time.perf_counter() - began
    per_ticket = (total - base) / ((requests - FEW) * batch)
    _print_figure(f"http.batch_of_{batch}.instructions_per_ticket", per_ticket, requests * batch)
    write_section(
        [
            f"### HTTP batch instructions (sqlite, {requests} batches of {batch}){_label(label)}",
            "",
            f"- machine: {machine()}; counted by valgrind (callgrind), {took:.0f} s",
            f"- code: commit {_commit(code) or 'unknown'}",
            f"- `bench/write_cost.py --batch {batch}`, {requests} `POST /tickets/batch`: "
            f"{total:,} instructions; with {FEW}: {base:,}",
            f"- one ticket written in a batch of {batch}: {per_ticket / 1e6:.2f} M instructions",
        ]
    )


def writes(code: Path, requests: int, label: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="slamon-instructions-"))
    began = time.perf_counter()
    total = write_instructions(code, requests, work)
    base = write_instructions(code, FEW, work)
    took = time.perf_counter() - began
    per_pair = (total - base) / (requests - FEW)
    _print_figure("http.instructions_per_ticket_and_event", per_pair, requests)
    write_section(
        [
            f"### HTTP write instructions (sqlite, {requests} pairs){_label(label)}",
            "",
            f"- machine: {machine()}; counted by valgrind (callgrind), {took:.0f} s",
            f"- code: commit {_commit(code) or 'unknown'}",
            f"- `bench/write_cost.py`, {requests} `POST /tickets` (4 events) and as many event "
            f"`POST`s: {total:,} instructions; with {FEW} of each: {base:,}",
            f"- one ticket and one event written over HTTP: {per_pair / 1e6:.2f} M instructions",
        ]
    )


def _print_figure(name: str, instructions: float, n: int) -> None:
    """The figure as every benchmark prints it: one JSON line (bench/run.py `Result`)."""
    figure = {
        "name": name,
        "value": round(instructions / 1e6, 3),
        "unit": "M instructions",
        "baseline": None,
        "ratio": None,
        "n": n,
        "database": "sqlite",
    }
    print(json.dumps(figure), flush=True)


def _commit(code: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(code), "log", "-1", "--format=%h"], capture_output=True, text=True
    ).stdout.strip()


def _label(label: str) -> str:
    return f" — {label}" if label else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=500)
    parser.add_argument("--writes", action="store_true", help="an HTTP write, not an import")
    parser.add_argument("--requests", type=int, default=60, help="with --writes")
    parser.add_argument("--batch", type=int, default=0, help="with --writes: tickets a batch")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout to measure")
    parser.add_argument("--label", default="", help="added to the RESULTS.md heading")
    args = parser.parse_args()
    if args.tickets < 2:
        parser.error("--tickets: at least 2 (one ticket's import is the baseline)")
    if args.requests <= FEW:
        parser.error(f"--requests: more than {FEW} (that many are the baseline)")
    if shutil.which("valgrind") is None:
        parser.error("valgrind is needed (Debian package valgrind)")
    if args.writes and args.batch:
        batches(args.code.resolve(), args.requests, args.batch, args.label)
        return
    if args.writes:
        writes(args.code.resolve(), args.requests, args.label)
        return
    work = Path(tempfile.mkdtemp(prefix="slamon-instructions-"))
    many, one = work / "many.json", work / "one.json"
    events = write_import_file(many, SEED, args.tickets)
    events_of_one = write_import_file(one, SEED, 1)
    code = args.code.resolve()
    began = time.perf_counter()
    total = instructions(code, many, work)
    base = instructions(code, one, work)
    took = time.perf_counter() - began
    per_ticket = (total - base) / (args.tickets - 1)
    _print_figure("import.instructions_per_ticket", per_ticket, args.tickets)
    write_section(
        [
            f"### Import instructions (sqlite, {args.tickets} tickets){_label(args.label)}",
            "",
            f"- machine: {machine()}; counted by valgrind (callgrind), {took:.0f} s",
            f"- code: commit {_commit(code) or 'unknown'}",
            f"- `sla-monitor import` of {args.tickets} generated tickets ({events:,} events): "
            f"{total:,} instructions; of 1 ticket: {base:,}",
            f"- the import's own cost: {per_ticket / 1e6:.2f} M instructions a ticket "
            f"({(total - base) / (events - events_of_one) / 1e6:.2f} M an event)",
        ]
    )


if __name__ == "__main__":
    main()
