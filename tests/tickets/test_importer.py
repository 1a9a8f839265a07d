"""Importing JSON, CSV and XLSX: all or nothing, errors naming the row and field."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa
from sqlmodel import Session

from monitor.core.db import make_engine
from monitor.core.errors import InvalidInput
from monitor.judging.flow import write_flow
from monitor.sla.service import SlaContext
from monitor.tickets import importer
from monitor.tickets.importer import JsonTickets, TableRows, import_rows, read_rows
from monitor.tickets.service import Actor, find_ticket, ticket_out
from tests.helpers import SPEC_TICKET, counts, local

IMPORTER = Actor("import", "admin", "import")
SPEC_EXAMPLE = {"tickets": [SPEC_TICKET]}
HEADER = (
    "外部单号,资源池,严重程度,标题,来源,"
    "报障时间,响应时间,到场时间,解决时间,用户确认时间,报告提交时间\n"
)


def run(session: Session, ctx: SlaContext, path: Path) -> object:
    with write_flow(session, ctx) as flow:
        summary = import_rows(flow, read_rows(path), IMPORTER)
    session.commit()
    return summary


def refused(session: Session, ctx: SlaContext, path: Path, workers: int = 0) -> list[str]:
    before = counts(session)
    with pytest.raises(InvalidInput) as exc, write_flow(session, ctx) as flow:
        import_rows(flow, read_rows(path), IMPORTER, workers=workers)
    session.rollback()
    assert counts(session) == before, "a refused import wrote something"
    return [str(p) for p in exc.value.problems]


def test_the_specification_example_imports(
    session: Session, ctx: SlaContext, tmp_path: Path
) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(SPEC_EXAMPLE, ensure_ascii=False), encoding="utf-8")
    summary = run(session, ctx, path)
    # What the import says it did: the targets it judged, counted by their status.
    assert summary.lines()[-1] == "targets: breached 2, met 1"
    out = ticket_out(session, ctx, find_ticket(session, "EX-0001"))
    assert {t.id: t.status for t in out.targets} == {
        "arrival": "met",
        "resolution": "breached",
        "report": "breached",
    }
    assert all(e.source == "import" for e in out.events)


def test_a_csv_with_chinese_headers_and_names_imports(
    session: Session, ctx: SlaContext, tmp_path: Path
) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        HEADER + "YY-1,政务一云,一般故障,云硬盘挂载失败,用户报障,2022-05-06 09:00,"
        "2022-05-06 09:10,,2022-05-06 12:00,,\n"
        + "DX-2,pool2,major,核心交换机故障,monitoring,2022-05-07 09:00,,"
        "2022-05-07 09:20,2022-05-07 10:30,2022-05-07 11:00,2022-05-09 10:00\n",
        encoding="utf-8-sig",
    )
    run(session, ctx, path)
    general = ticket_out(session, ctx, find_ticket(session, "YY-1"))
    assert general.pool == "pool1" and general.severity == "general"
    assert general.source == "user_report"
    assert {t.id: t.status for t in general.targets} == {"response": "met", "resolution": "met"}
    major = ticket_out(session, ctx, find_ticket(session, "DX-2"))
    assert [e.type for e in major.events] == [
        "reported",
        "arrived",
        "resolved",
        "verified",
        "report_submitted",
    ]
    assert major.status == "closed"


@pytest.mark.parametrize(
    ("pool", "severity", "expected"),
    [
        ("第一资源池", "较大故障", ("pool1", "significant")),
        ("二云", "设备异常", ("pool2", "anomaly")),
        ("中国电信股份有限公司广东分公司", "major", ("pool2", "major")),
    ],
)
def test_pools_and_severities_by_the_names_people_use(
    session: Session,
    ctx: SlaContext,
    tmp_path: Path,
    pool: str,
    severity: str,
    expected: tuple[str, str],
) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        HEADER + f"N-1,{pool},{severity},t,其他,2022-05-06 09:00,,,,,\n", encoding="utf-8"
    )
    run(session, ctx, path)
    ticket = find_ticket(session, "N-1")
    assert (ticket.pool, ticket.severity) == expected


def test_a_csv_saved_by_excel_in_gb18030_imports(
    session: Session, ctx: SlaContext, tmp_path: Path
) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(
        (HEADER + "YY-9,政务一云,设备异常,硬盘预警,巡检,2022-05-06 09:00,,,,,\n").encode("gb18030")
    )
    run(session, ctx, path)
    assert find_ticket(session, "YY-9").severity == "anomaly"


def test_an_xlsx_with_real_date_cells_imports(
    session: Session, ctx: SlaContext, tmp_path: Path
) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["external_id", "pool", "severity", "title", "reported", "arrived", "解决时间"])
    sheet.append(
        [
            "X-1",
            "pool2",
            "重大故障",
            "存储故障",
            datetime(2022, 8, 10, 11, 41),  # noqa: DTZ001
            datetime(2022, 8, 10, 12, 5),  # noqa: DTZ001
            "2022-08-10 13:00",
        ]
    )
    path = tmp_path / "t.xlsx"
    book.save(path)
    run(session, ctx, path)
    ticket = find_ticket(session, "X-1")
    assert ticket.reported_at == local(2022, 8, 10, 11, 41)
    out = ticket_out(session, ctx, ticket)
    assert {t.id: t.status for t in out.targets}["resolution"] == "met"


def test_one_bad_row_refuses_the_whole_file_naming_row_and_column(
    session: Session, ctx: SlaContext, tmp_path: Path
) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        HEADER
        + "A-1,pool1,general,好的,other,2022-05-06 09:00,,,,,\n"
        + "A-2,pool1,general,坏的,other,2022-05-06 09:00,,2022-13-45 10:00,,,\n"
        + "A-3,pool7,general,坏的,other,2022-05-06 09:00,,,,,\n"
        + "A-1,pool1,general,重复,other,2022-05-06 09:00,,,,,\n",
        encoding="utf-8",
    )
    problems = refused(session, ctx, path)
    assert any(p.startswith("row 3, column 到场时间") for p in problems), problems
    assert any(p.startswith("row 4, column 资源池") and "pool7" in p for p in problems), problems
    assert any(p.startswith("row 5, column 外部单号") and "twice" in p for p in problems), problems


def test_a_tables_rows_are_made_as_the_import_reaches_them(tmp_path: Path) -> None:
    # Held as their cells (a province's history as SourceRows took gigabytes), each row made
    # when asked for, named by its row in the file; blank rows are skipped.
    path = tmp_path / "t.csv"
    path.write_text(
        HEADER + "A-1,pool1,general,好的,other,2022-05-06 09:00,,,,,\n,,,,,,,,,,\n"
        "A-2,pool1,general,也好,other,2022-05-07 09:00,,2022-05-07 10:00,,,\n",
        encoding="utf-8",
    )
    rows = read_rows(path)
    assert isinstance(rows, TableRows) and len(rows) == 2
    assert [r.label for r in rows] == ["row 2", "row 4"]
    last = rows[-1]
    assert last.data["external_id"] == "A-2"
    assert last.data["events"] == [
        {"type": "reported", "at": "2022-05-07 09:00"},
        {"type": "arrived", "at": "2022-05-07 10:00"},
    ]
    assert last.where("events[1].at") == "row 4, column 到场时间"


def test_unknown_columns_are_left_out_and_listed_or_refused_when_strict(
    session: Session, ctx: SlaContext, tmp_path: Path
) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "外部单号,资源池,严重程度,标题,描述,报障时间,备注,处理人\n"
        "A,政务一云,一般故障,t,机房空调故障,2022-05-06 09:00,夜班处理,张三\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidInput) as refusal, write_flow(session, ctx) as flow:
        import_rows(flow, read_rows(path), IMPORTER, strict=True)
    assert [p.loc for p in refusal.value.problems] == ["row 1, column 备注", "row 1, column 处理人"]
    session.rollback()
    summary = run(session, ctx, path)
    assert "ignored columns (not imported; --strict refuses them): 备注, 处理人" in str(
        summary.lines()  # type: ignore[attr-defined]
    )
    out = ticket_out(session, ctx, find_ticket(session, "A"))
    assert out.description == "机房空调故障" and "夜班" not in out.model_dump_json()


def test_json_errors_name_the_ticket_and_field(
    session: Session, ctx: SlaContext, tmp_path: Path
) -> None:
    bad = json.loads(json.dumps(SPEC_EXAMPLE))
    bad["tickets"].append(json.loads(json.dumps(bad["tickets"][0])))
    bad["tickets"][1]["external_id"] = "EX-0002"
    bad["tickets"][1]["events"][1]["at"] = "yesterday"
    bad["tickets"][1]["events"][2]["type"] = "fixed"
    bad["tickets"][1]["recorded_at"] = "2022-01-01T00:00:00Z"
    path = tmp_path / "t.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    problems = refused(session, ctx, path)
    assert any(p.startswith("tickets[1].events[1].at") for p in problems), problems
    assert any(p.startswith("tickets[1].events[2].type") for p in problems), problems
    assert any(p.startswith("tickets[1].recorded_at") for p in problems), problems


def test_a_refused_json_names_only_its_bad_rows_when_good_ones_use_chinese_names(
    session: Session, ctx: SlaContext, tmp_path: Path
) -> None:
    """A good row naming its pool and severity in Chinese is checked by those names' codes
    once another row has refused the file (it was reported as an unknown pool)."""
    good = {**SPEC_TICKET, "external_id": "EX-7", "pool": "政务二云", "severity": "重大故障"}
    bad = {**SPEC_TICKET, "external_id": "EX-8", "title": ""}
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"tickets": [bad, good]}, ensure_ascii=False), encoding="utf-8")
    problems = refused(session, ctx, path)
    assert [p.split(":")[0] for p in problems] == ["tickets[0].title"], problems


@pytest.mark.parametrize("workers", [0, 2])
def test_the_summary_counts_the_targets_the_import_wrote_in_every_chunk(
    session: Session,
    ctx: SlaContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
) -> None:
    """The summary's last line counts the imported tickets' targets by status, over every
    chunk (made in this process or by the workers), and none of the tickets stored before."""
    monkeypatch.setattr(importer, "CHUNK", 2)
    before = tmp_path / "before.json"
    before.write_text(json.dumps(SPEC_EXAMPLE, ensure_ascii=False), encoding="utf-8")
    run(session, ctx, before)
    rows = [
        {**SPEC_TICKET, "external_id": f"EX-{i}", "events": SPEC_TICKET["events"][: 1 + i % 4]}
        for i in range(7)
    ]
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"tickets": rows}, ensure_ascii=False), encoding="utf-8")
    with write_flow(session, ctx) as flow:
        summary = import_rows(flow, read_rows(path), IMPORTER, workers=workers)
    session.commit()
    stored = session.connection().execute(
        sa.text(
            "SELECT s.status, count(*) FROM target_states s JOIN tickets t ON t.id = s.ticket_id"
            " WHERE t.external_id != 'EX-0001' GROUP BY s.status"
        )
    )
    assert dict(summary.targets) == dict(stored.all())
    assert len(set(summary.targets)) >= 3, summary.targets  # (several statuses met)
    assert sum(summary.targets.values()) == 7 * 3


@pytest.mark.parametrize("workers", [0, 2])
def test_problems_in_a_later_chunk_refuse_what_the_earlier_ones_wrote(
    session: Session,
    ctx: SlaContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
) -> None:
    """Rows are parsed a chunk at a time while earlier chunks are written (by this process,
    or made by worker processes): a bad row, or a repeat of an earlier row's id, in the
    fourth chunk still refuses the whole file, names every problem in row order as if the
    file had been checked whole (a row's own in the order of its fields, its id's among
    them), and writes nothing."""
    from monitor.tickets import importer

    monkeypatch.setattr(importer, "CHUNK", 2)
    rows = [{**SPEC_TICKET, "external_id": f"EX-{i}"} for i in range(9)]
    rows[5] = {**rows[5], "external_id": "EX-1"}  # a repeat of a row written before
    rows[6] = {**rows[6], "title": ""}  # found parsing, in the fourth chunk
    # Problems the checks find and a repeat the writer finds, in one row: in field order.
    rows[7] = {**rows[7], "external_id": "EX-7", "pool": "pool3", "units": ["无此单位"]}
    rows[8] = {**rows[8], "external_id": "EX-7", "pool": "pool3", "units": ["无此单位"]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"tickets": rows}, ensure_ascii=False), encoding="utf-8")
    problems = refused(session, ctx, path, workers)
    assert [p.split(":")[0] for p in problems] == [
        "tickets[5].external_id",
        "tickets[6].title",
        "tickets[7].pool",
        "tickets[7].units[0]",
        "tickets[8].pool",
        "tickets[8].external_id",
        "tickets[8].units[0]",
    ], problems
    assert "appears twice" in problems[0] and "appears twice" in problems[-2]


@pytest.mark.parametrize("workers", [0, 2])
def test_the_workers_end_with_the_import_and_their_errors_reach_the_caller(
    session: Session,
    ctx: SlaContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
) -> None:
    """An error while a worker parses a later chunk is the import's error, and when the
    writer fails mid-import the worker processes stop with it instead of running on."""
    import multiprocessing

    monkeypatch.setattr(importer, "CHUNK", 2)
    rows = [{**SPEC_TICKET, "external_id": f"EX-{i}"} for i in range(9)]
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"tickets": rows}, ensure_ascii=False), encoding="utf-8")
    parse = importer.parse_rows
    before = counts(session)

    def parse_failing_late(part: list[Any], context: SlaContext) -> Any:
        if part[0].label == "tickets[6]":
            raise RuntimeError("disk read error")
        return parse(part, context)

    monkeypatch.setattr(importer, "parse_rows", parse_failing_late)  # (forked workers too)
    with pytest.raises(RuntimeError, match="disk read error"), write_flow(session, ctx) as flow:
        import_rows(flow, read_rows(path), IMPORTER, workers=workers)
    session.rollback()
    assert not multiprocessing.active_children()
    monkeypatch.setattr(importer, "parse_rows", parse)

    def write_failing(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(importer.WriteFlow, "store", write_failing)
    with pytest.raises(RuntimeError, match="went away") as raised, write_flow(session, ctx) as f:
        import_rows(f, read_rows(path), IMPORTER, workers=workers)
    session.rollback()
    assert not multiprocessing.active_children(), "workers ran on after the import failed"
    assert raised.value is not None
    assert counts(session) == before, "a failed import wrote something"


_STUCK_WRITER = """
import multiprocessing, sys, time
from pathlib import Path
from monitor.core.clock import SystemClock
from monitor.core.db import make_engine, session_scope
from monitor.core.settings import Settings
from monitor.judging.flow import WriteFlow, write_flow
from monitor.sla.service import load_context
from monitor.tickets import importer
from monitor.tickets.service import Actor

url, config, source, pids = sys.argv[1:5]
importer.CHUNK = 2
store = WriteFlow.store

def stuck(self, *args):  # the first chunk written, then the writer hangs: to be killed
    store(self, *args)
    Path(pids).write_text(" ".join(str(p.pid) for p in multiprocessing.active_children()))
    time.sleep(600)

WriteFlow.store = stuck
engine = make_engine(url)
settings = Settings(database_url=url, config_dir=Path(config))
with session_scope(engine) as session:
    with write_flow(session, load_context(session, settings, SystemClock())) as flow:
        rows = importer.read_rows(Path(source))
        importer.import_rows(flow, rows, Actor("import", "admin", "import"), workers=2)
"""


def _gone(pid: int) -> bool:
    """The process has ended (a zombie no init has reaped yet counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] in "ZX"
    except FileNotFoundError:
        return True


@pytest.mark.slow
def test_the_workers_end_with_a_writer_killed_outright(db_url: str, tmp_path: Path) -> None:
    """A writer killed outright (SIGKILL, the kernel out of memory) takes its worker processes
    with it: left behind, they held its database connection, and on PostgreSQL its open
    transaction and the lock on creating tickets, so every new ticket waited on."""
    import subprocess
    import sys
    import time

    from tests.conftest import CONFIG, ROOT

    rows = [{**SPEC_TICKET, "external_id": f"EX-{i}"} for i in range(9)]
    source, pids = tmp_path / "t.json", tmp_path / "pids"
    source.write_text(json.dumps({"tickets": rows}, ensure_ascii=False), encoding="utf-8")
    script = tmp_path / "stuck.py"
    script.write_text(_STUCK_WRITER, encoding="utf-8")
    args = [sys.executable, str(script), db_url, str(CONFIG), str(source), str(pids)]
    writer = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while not (pids.exists() and pids.read_text()) and time.monotonic() < deadline:
            assert writer.poll() is None, "the writer ended before its first chunk"
            time.sleep(0.1)
        workers = [int(pid) for pid in pids.read_text().split()]
        assert len(workers) == 2
    finally:
        writer.kill()
        writer.wait()
    deadline = time.monotonic() + 5
    while not all(_gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(pid) for pid in workers), "workers outlived the writer"
    if db_url.startswith("postgresql"):  # its transaction ended: ticket creation is free
        engine = make_engine(db_url)
        deadline = time.monotonic() + 5
        with engine.connect() as conn:
            free = False
            while not free and time.monotonic() < deadline:
                free = conn.execute(sa.text("SELECT pg_try_advisory_lock(1319, 0)")).scalar()
                time.sleep(0.1)
            assert free, "the killed writer's lock on creating tickets is held"
            conn.execute(sa.text("SELECT pg_advisory_unlock(1319, 0)"))
        engine.dispose()


def test_a_duplicate_of_a_stored_ticket_is_refused(
    session: Session, ctx: SlaContext, tmp_path: Path
) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(SPEC_EXAMPLE), encoding="utf-8")
    run(session, ctx, path)
    problems = refused(session, ctx, path)
    assert problems == [
        "tickets[0].external_id: pool2 already has a ticket with external_id 'EX-0001'"
    ]


def test_unsupported_and_broken_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unsupported file type"):
        read_rows(tmp_path / "t.txt")
    broken = tmp_path / "t.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        read_rows(broken)


def _tickets(n: int) -> list[dict[str, Any]]:
    return [
        {**SPEC_TICKET, "external_id": f"EX-{i}", "title": f'存储故障 {i}\n"引号" \\ 𝄞'}
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "layout",
    [
        lambda d: json.dumps(d, ensure_ascii=False),
        lambda d: json.dumps(d, ensure_ascii=True, indent=2),  # pretty, \u escapes
        lambda d: "\ufeff\r\n " + json.dumps(d, indent="\t").replace("\n", "\r\n") + "\n\n",
        lambda d: json.dumps(d, separators=(",", ":")),
    ],
)
@pytest.mark.parametrize("count", [0, 1, 3])
@pytest.mark.parametrize("piece", [1, 7, 64, importer.PIECE])
def test_a_json_files_tickets_are_read_one_at_a_time_as_written(
    tmp_path: Path, layout: Any, count: int, piece: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each ticket is decoded when the import reaches it (a province's history decoded whole
    # held gigabytes before the first was written), and the file is decoded a piece at a
    # time to find them (here pieces that cut tickets, characters and white space apart):
    # whatever the file's layout, it reads the very tickets json.loads reads, each named by
    # its place.
    monkeypatch.setattr(importer, "PIECE", piece)
    path = tmp_path / "t.json"
    data = {"tickets": _tickets(count)}
    path.write_text(layout(data), encoding="utf-8")
    rows = read_rows(path)
    assert isinstance(rows, JsonTickets), "an import file of the usual shape was decoded whole"
    assert len(rows) == count
    assert [(r.label, r.data) for r in rows[:]] == [
        (f"tickets[{i}]", t) for i, t in enumerate(data["tickets"])
    ]
    if count:
        assert rows[-1].data == data["tickets"][-1] and rows[0].label == "tickets[0]"


def test_tickets_that_are_not_objects_are_read_as_written_whatever_the_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (Refused when checked, as before.) A number cut after its "." or "e+" by a piece's end
    # is read whole, not as the digits before the cut.
    text = '{"tickets": [1.5, -2E+10, 3e-2, true, null, "x", [0.25]]}'
    path = tmp_path / "t.json"
    path.write_text(text, encoding="utf-8")
    for piece in range(1, len(text) + 2):
        monkeypatch.setattr(importer, "PIECE", piece)
        rows = read_rows(path)
        assert isinstance(rows, JsonTickets), piece
        assert [r.data for r in rows] == json.loads(text)["tickets"], piece


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"tickets": [{"a": 1},]}', "line 1: not valid JSON"),
        ('{"tickets": [{"a": 1}]} x', "line 1: not valid JSON"),
        ('{"tickets": [{"a": 1}]\n\n', "line 3: not valid JSON"),
        ('{"tickets": [], "extra": 1}', "extra: unknown field"),
        ('{"other": 2, "tickets": []}', "other: unknown field"),
        ('[{"a": 1}]', "tickets: the file must be an object"),
        ('{"tickets": {"a": 1}}', "tickets: the file must be an object"),
        ('{"tickets": [{"a": ' + "9" * 5000 + "}]}", "t.json: not valid JSON"),
        ('{"tickets": [' + "[" * 100_000 + "]" * 100_000 + "]}", "t.json: not valid JSON"),
        ('{"tickets": [{"a": "\udcff"}]}', "t.json: not UTF-8 text (byte 21)"),
        ('\ufeff{"tickets": [{"a": "\udcff"}]}', "t.json: not UTF-8 text (byte 24)"),
    ],
)
def test_a_json_file_of_another_shape_is_refused_naming_where(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))  # (\udcff: the byte 0xff)
    with pytest.raises(InvalidInput) as exc:
        read_rows(path)
    assert str(exc.value.problems[0]).startswith(problem)


def test_a_bad_event_type_does_not_hide_the_rows_other_problems(
    session: Session, ctx: SlaContext, tmp_path: Path
) -> None:
    ticket = {
        **SPEC_TICKET,
        "pool": "pool9",
        "events": [
            *SPEC_TICKET["events"][:2],
            {"type": "fixed", "at": "2022-08-17T18:00:00+08:00"},
            {"type": "resolved", "at": "2099-01-01T00:00:00+08:00"},
        ],
    }
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"tickets": [ticket]}), encoding="utf-8")
    problems = refused(session, ctx, path)
    assert any(p.startswith("tickets[0].events[2].type") for p in problems), problems
    assert any(p.startswith("tickets[0].pool") and "pool9" in p for p in problems), problems
