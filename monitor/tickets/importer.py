"""Importing tickets from JSON, CSV or XLSX: all or nothing, every error naming row and field."""

from __future__ import annotations

import codecs
import csv
import ctypes
import io
import json
import multiprocessing
import os
import re
import signal
import threading
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple, overload

from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.core.batch import as_loaded, draw_ids, ids_free, on_sqlite
from monitor.core.config_files import problems_of
from monitor.core.db import release_ids, reserve_ids
from monitor.core.errors import InvalidInput, Problem
from monitor.judging import new_tickets
from monitor.judging.flow import WriteFlow
from monitor.notifications.service import routing_of
from monitor.sla.service import SlaContext
from monitor.sla.words import words
from monitor.tickets.lookup import BriefState
from monitor.tickets.models import Ticket
from monitor.tickets.schemas import TicketIn, checkable_without_bad_types
from monitor.tickets.service import Actor, id_problem, lock_creation, taken_ids

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": ("外部单号", "外部工单号", "工单号", "运营商工单号"),
    "pool": ("资源池", "云平台"),
    "severity": ("严重程度", "故障级别", "故障等级"),
    "title": ("标题", "故障标题", "故障名称"),
    "source": ("来源", "故障来源"),
    "description": ("描述", "故障描述"),
    "units": ("使用单位", "影响单位"),
    "systems": ("业务系统", "影响系统"),
}
EVENT_ALIASES: dict[str, tuple[str, ...]] = {
    "reported": ("报障时间", "发现时间", "reported_at"),
    "acknowledged": ("响应时间", "acknowledged_at"),
    "arrived": ("到场时间", "arrived_at"),
    "user_notified": ("反馈用户时间", "通知用户时间", "user_notified_at"),
    "resolved": ("解决时间", "恢复时间", "resolved_at"),
    "verified": ("用户确认时间", "确认恢复时间", "verified_at"),
    "report_submitted": ("报告提交时间", "分析报告提交时间", "report_submitted_at"),
}
LIST_SPLIT = re.compile(r"[,，、;；\n]+")
CHUNK = 500  # tickets written per batch: each table once per chunk


def _header_map() -> dict[str, tuple[str, str]]:
    """Normalised header -> (kind, name): kind is 'field' or 'event'."""
    out: dict[str, tuple[str, str]] = {}
    for name, aliases in FIELD_ALIASES.items():
        for alias in (name, *aliases):
            out[_norm(alias)] = ("field", name)
    for name, aliases in EVENT_ALIASES.items():
        for alias in (name, *aliases):
            out[_norm(alias)] = ("event", name)
    return out


def _norm(header: str) -> str:
    return re.sub(r"[\s_\-（）()]+", "", header).lower()


@dataclass
class SourceRow:
    """One ticket as read from a file, with where it came from for error messages."""

    label: str  # "tickets[3]" or "row 5"
    data: Any
    columns: dict[str, str] = field(default_factory=dict)  # field or events[k] -> header

    def where(self, loc: str) -> str:
        if not self.columns:
            return f"{self.label}.{loc}" if loc else self.label
        head = loc.split(".")[0]
        column = self.columns.get(head) or self.columns.get(loc)
        if column is None and head.startswith("events"):
            column = self.columns.get(head.split("[")[0])
        if column:
            return f"{self.label}, column {column}"
        return f"{self.label}, {loc}" if loc else self.label


def read_json(path: Path) -> Sequence[SourceRow]:
    """The file's tickets, each decoded when the import reaches it (`JsonTickets`)."""
    raw = path.read_bytes()
    spans = _ticket_spans(raw)
    if spans is not None:
        return JsonTickets(raw, spans)
    # Any other shape, or a fault: decoded whole, for the problems named as they always were.
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise InvalidInput([Problem(f"line {exc.lineno}", f"not valid JSON: {exc.msg}")]) from None
    except UnicodeDecodeError as exc:
        where = f"byte {exc.start + 1 + (3 if raw.startswith(codecs.BOM_UTF8) else 0)}"
        raise InvalidInput([Problem(path.name, f"not UTF-8 text ({where})")]) from None
    except RecursionError:
        raise InvalidInput([Problem(path.name, "not valid JSON: nested too deeply")]) from None
    except ValueError as exc:  # a number of more digits than Python converts
        raise InvalidInput([Problem(path.name, f"not valid JSON: {exc}")]) from None
    if not isinstance(data, dict) or not isinstance(data.get("tickets"), list):
        raise InvalidInput([Problem("tickets", 'the file must be an object {"tickets": [...]}')])
    extra = sorted(set(data) - {"tickets"})
    if extra:
        raise InvalidInput([Problem(k, "unknown field") for k in extra])
    return ticket_rows(data["tickets"])


class LazyRows(Sequence[SourceRow]):
    """A file's rows, each made when the import reaches it (`row`), never all at once."""

    def row(self, index: int) -> SourceRow:  # 0 <= index < len(self)
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> SourceRow: ...

    @overload
    def __getitem__(self, index: slice) -> list[SourceRow]: ...

    def __getitem__(self, index: int | slice) -> SourceRow | list[SourceRow]:
        if isinstance(index, slice):
            return [self.row(i) for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.row(index % len(self))


class JsonTickets(LazyRows):
    """The tickets of a JSON file, each decoded from the file's bytes when asked for: the
    bytes and where each ticket lies in them are held, neither every ticket decoded at once
    (a file of 100,000 tickets, 48 MB, decoded whole held 334 MB of objects; a province's
    history of a million, more than 3 GB, all of it before the first ticket was written) nor
    the file's text (twice its bytes, or more, for Chinese). Each ticket is decoded twice,
    once to find where it ends."""

    def __init__(self, raw: bytes, spans: array[int]) -> None:
        self.raw, self.spans = raw, spans  # spans: start, end, start, end, … (bytes)

    def __len__(self) -> int:
        return len(self.spans) // 2

    def row(self, index: int) -> SourceRow:
        start, end = self.spans[2 * index], self.spans[2 * index + 1]
        try:
            return SourceRow(f"tickets[{index}]", json.loads(self.raw[start:end]))
        except RecursionError:  # (a few frames deeper than the scan that found it)
            raise InvalidInput([Problem(f"tickets[{index}]", "nested too deeply")]) from None


# One JSON value at an offset: (the value, where it ends); as `json.loads` decodes it.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_SPACE = re.compile(r"[ \t\n\r]*")
PIECE = 8 * 1024 * 1024  # bytes of a JSON file decoded at a time while its tickets are found


class _Window:
    """A UTF-8 file's text, decoded a piece at a time for one scan from left to right: a
    file of a million tickets decoded whole took 2.3 GB at once (its bytes, its text, and a
    copy as the text widened to hold Chinese). Positions are in `text`, which `forget` moves
    on; each ticket's span is kept in bytes of the file."""

    def __init__(self, raw: bytes) -> None:
        self.raw, self.fed = raw, 3 if raw.startswith(codecs.BOM_UTF8) else 0
        self.decode = codecs.getincrementaldecoder("utf-8")().decode
        self.text = ""
        self.mark, self.mark_byte = 0, self.fed  # a position in `text`, and its byte
        self.spans: array[int] = array("q")

    def fill(self) -> bool:
        """The next piece decoded onto the text; False when there is none left."""
        if self.fed >= len(self.raw):
            return False
        piece = self.raw[self.fed : self.fed + PIECE]
        self.fed += len(piece)
        self.text += self.decode(piece, self.fed >= len(self.raw))
        return True

    def forget(self, at: int) -> int:
        """Drop the text before `at` once it is long (the scan is past it); `at` after."""
        if at < PIECE:
            return at
        self.mark_byte += len(self.text[self.mark : at].encode())
        self.text, self.mark = self.text[at:], 0
        return 0

    def char(self, at: int) -> str:
        while at >= len(self.text) and self.fill():
            pass
        return self.text[at : at + 1]

    def skip(self, at: int) -> int:
        """Past the JSON white space at `at`."""
        while True:
            match = _SPACE.match(self.text, at)
            assert match is not None  # (it matches the empty string)
            if match.end() < len(self.text) or not self.fill():
                return match.end()

    def scan(self, at: int) -> tuple[Any, int]:
        """The value at `at`, decoding more of the file while it runs past the text."""
        while True:
            try:
                value, end = _SCAN(self.text, at)
            except StopIteration as stop:  # no value begins there
                if self._cut(stop.value) and self.fill():
                    continue
                raise
            except json.JSONDecodeError as exc:
                if (self._cut(exc.pos) or exc.msg.startswith("Unterminated")) and self.fill():
                    continue
                raise
            # A number may go on past the text ("1." of "1.5", "1e" of "1e+5").
            if end + 2 < len(self.text) or not self.fill():
                return value, end

    def _cut(self, at: int) -> bool:
        """Whether a fault at `at` may be the text's end cutting a token ("tr" of "true", an
        escape): then more is decoded; any other fault ends the scan at once, where
        decoding the rest of a large file first cost seconds."""
        return at + 10 >= len(self.text)

    def span(self, start: int, end: int) -> None:
        """Keep where the value at `start`…`end` of the text lies in the file."""
        first = self.mark_byte + len(self.text[self.mark : start].encode())
        last = first + len(self.text[start:end].encode())
        self.spans.extend((first, last))
        self.mark, self.mark_byte = end, last


def _ticket_spans(raw: bytes) -> array[int] | None:
    """Where each ticket of `{"tickets": [...]}` starts and ends in the file's bytes, or None
    for any other shape or any fault (then the whole file is decoded, and refused as it
    says). Each ticket is decoded to find its end and dropped at once."""
    w = _Window(raw)
    try:
        at = w.skip(0)
        if w.char(at) != "{":
            return None
        key, at = w.scan(w.skip(at + 1))
        at = w.skip(at)
        if key != "tickets" or w.char(at) != ":":
            return None
        at = w.skip(at + 1)
        if w.char(at) != "[":
            return None
        at = w.skip(at + 1)
        if w.char(at) == "]":
            at += 1
        else:
            while True:
                at = w.forget(at)
                _, end = w.scan(at)
                w.span(at, end)
                at = w.skip(end)
                if w.char(at) == "]":
                    at += 1
                    break
                if w.char(at) != ",":
                    return None
                at = w.skip(at + 1)
        at = w.skip(at)
        if w.char(at) != "}" or w.skip(at + 1) != len(w.text):
            return None
    except (StopIteration, ValueError, RecursionError):  # (JSONDecodeError is a ValueError)
        return None
    return w.spans


def ticket_rows(tickets: Sequence[Any]) -> list[SourceRow]:
    """The tickets of a JSON file (or of a POST /tickets/batch), each named `tickets[i]`."""
    return [SourceRow(f"tickets[{i}]", t) for i, t in enumerate(tickets)]


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


KNOWN_COLUMNS = ", ".join([*FIELD_ALIASES, *EVENT_ALIASES])

# A table's column: (kind, name, header) for a column the import knows, None for another.
Column = tuple[str, str, str] | None


class TableRows(LazyRows):
    """The rows of a table (CSV, XLSX) as their cells, each made a `SourceRow` when the import
    reaches it: reading 100,000 rows peaked at 340 MB with every SourceRow made, 191 MB. Also
    the columns the table has that mean nothing to the import."""

    def __init__(
        self, cells: list[tuple[int, list[Any]]], columns: list[Column], ignored: list[str]
    ) -> None:
        self.cells, self.columns, self.ignored_columns = cells, columns, ignored
        self.reported = next((c[2] for c in columns if c and c[1] == "reported"), "reported")

    def __len__(self) -> int:
        return len(self.cells)

    def row(self, index: int) -> SourceRow:
        number, values = self.cells[index]
        return _table_row(number, values, self.columns, self.reported)


def _table_rows(header: list[Any], rows: Iterator[tuple[int, list[Any]]]) -> TableRows:
    """Rows of a table; columns it does not know (备注, 处理人, …) are left out and named."""
    known = _header_map()
    columns: list[Column] = []
    problems = []
    ignored = []
    for raw in header:
        name = _cell_text(raw)
        if not name:
            columns.append(None)
            continue
        meaning = known.get(_norm(name))
        if meaning is None:
            ignored.append(name)
            columns.append(None)
        else:
            columns.append((meaning[0], meaning[1], name))
    names = [c[1] for c in columns if c]
    for dup in sorted(n for n, k in Counter(names).items() if k > 1):
        problems.append(Problem("row 1", f"two columns mean {dup}"))
    if "reported" not in names:
        problems.append(Problem("row 1", "no reported-time column (reported / 报障时间)"))
    if problems:
        raise InvalidInput(problems)
    cells = [(n, values) for n, values in rows if any(_cell_text(v) != "" for v in values)]
    return TableRows(cells, columns, ignored)


def _table_row(number: int, values: list[Any], columns: list[Column], reported: str) -> SourceRow:
    """One row of a table as the import reads it, each field named by its column."""
    data: dict[str, Any] = {"events": []}
    where: dict[str, str] = {}
    for col, value in zip(columns, values, strict=False):
        if col is None:
            continue
        kind, name, header_name = col
        if kind == "event":
            if isinstance(value, datetime) or _cell_text(value):
                if isinstance(value, date) and not isinstance(value, datetime):
                    value = value.isoformat()
                where[f"events[{len(data['events'])}]"] = header_name
                data["events"].append(
                    {
                        "type": name,
                        "at": value if isinstance(value, datetime) else _cell_text(value),
                    }
                )
            continue
        text = _cell_text(value)
        where[name] = header_name
        if name in ("units", "systems"):
            data[name] = [p.strip() for p in LIST_SPLIT.split(text) if p.strip()]
        elif text or name in ("pool", "severity", "title"):
            data[name] = text
    where["events"] = reported
    return SourceRow(f"row {number}", data, where)


def read_csv(path: Path) -> Sequence[SourceRow]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030")  # what Excel writes on Chinese Windows
    reader = list(csv.reader(io.StringIO(text)))
    if not reader:
        raise InvalidInput([Problem("row 1", "the file is empty")])
    return _table_rows(reader[0], ((n, r) for n, r in enumerate(reader[1:], start=2)))


def read_xlsx(path: Path) -> Sequence[SourceRow]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise InvalidInput([Problem(path.name, f"not a readable .xlsx file: {exc}")]) from None
    sheet = book.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    header = next(rows, None)
    if header is None:
        raise InvalidInput([Problem("row 1", "the sheet is empty")])
    result = _table_rows(list(header), ((n, list(r)) for n, r in enumerate(rows, start=2)))
    book.close()
    return result


READERS: dict[str, Callable[[Path], Sequence[SourceRow]]] = {
    ".json": read_json,
    ".csv": read_csv,
    ".xlsx": read_xlsx,
}


def read_rows(path: Path) -> Sequence[SourceRow]:
    """The file's tickets; for a table, `ignored_columns` names the columns left out."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise InvalidInput(
            [Problem(str(path.name), "unsupported file type; use .json, .csv or .xlsx")]
        )
    if not path.exists():
        raise InvalidInput([Problem(str(path), "file not found")])
    return reader(path)


def parse_rows(
    rows: list[SourceRow], ctx: SlaContext
) -> tuple[list[tuple[SourceRow, TicketIn]], list[Problem]]:
    """The rows whose shape is valid, and every problem of the others."""
    vocabulary = words(ctx)
    parsed, problems = [], []
    for row in rows:
        data = row.data
        if row.columns and isinstance(data, dict):
            data = dict(data)
            for key, to_code in (
                ("pool", vocabulary.pool),
                ("severity", vocabulary.severity),
                ("source", vocabulary.source),
            ):
                if isinstance(data.get(key), str):
                    data[key] = to_code(data[key])
        try:
            parsed.append((row, TicketIn.model_validate(data)))
        except ValidationError as exc:
            problems += [Problem(row.where(p.loc), p.msg) for p in problems_of(exc)]
            # A bad event type must not hide the row's other problems (unknown pool, a time
            # in the future, …): check the rest with those events read as comments. The
            # import is refused anyway, so nothing of it is kept.
            checkable = checkable_without_bad_types(TicketIn, data, exc)
            if checkable is not None:
                parsed.append((row, checkable))
    return parsed, problems


@dataclass
class ImportSummary:
    tickets: int = 0
    events: int = 0
    by_pool: Counter[str] = field(default_factory=Counter)
    by_severity: Counter[str] = field(default_factory=Counter)
    targets: Counter[str] = field(default_factory=Counter)
    ids: list[int] = field(default_factory=list)
    # The rows a request's batch wrote (not kept by `import_rows`), made into `created` and
    # `states` only when its answer asks, after the commit: made as the rows went in, they
    # held the write lock 3 ms a batch of 100 longer (a twentieth of its hold).
    kept: list[new_tickets.Prepared] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    @cached_property
    def created(self) -> list[Ticket]:
        """The tickets created, as loaded from their rows (no session: it has ended)."""
        return [t for p in self.kept for t in as_loaded(None, Ticket, p.ticket_rows())]

    @cached_property
    def states(self) -> dict[int, list[BriefState]]:
        """Each created ticket's target states as a list shows them."""
        out: dict[int, list[BriefState]] = {}
        for p in self.kept:
            for ticket_id, _, _ in p.created:
                out[ticket_id] = []
            for row in p.state_rows():
                out[row["ticket_id"]].append(Brief(row["target"], row["status"], row["deadline"]))
        return out

    def lines(self) -> list[str]:
        out = [f"{self.tickets} tickets with {self.events} events"]
        if self.ignored_columns:
            out.append(
                "ignored columns (not imported; --strict refuses them): "
                + ", ".join(self.ignored_columns)
            )
        out.append("by pool: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_pool.items())))
        out.append(
            "by severity: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_severity.items()))
        )
        out.append("targets: " + ", ".join(f"{k} {v}" for k, v in sorted(self.targets.items())))
        return out


def import_rows(
    flow: WriteFlow,
    rows: Sequence[SourceRow],
    actor: Actor,
    progress: Callable[[int], None] | None = None,
    *,
    strict: bool = False,
    workers: int = 0,
) -> ImportSummary:
    """Create every ticket, or raise InvalidInput naming every bad row (the caller rolls back).
    Unknown columns are left out and listed, or with `strict` refused. With `workers`, that
    many processes parse, check and judge the rows (`_in_workers`) while this one writes."""
    session, ctx = flow.session, flow.ctx
    ignored = list(getattr(rows, "ignored_columns", []))
    if strict and ignored:
        raise InvalidInput(
            [
                Problem(f"row 1, column {c}", f"unknown column (known: {KNOWN_COLUMNS})")
                for c in ignored
            ]
        )
    lock_creation(session)  # before anything: no other writer creates a ticket meanwhile
    job = _Job(rows, ctx, actor, _TicketIds(session), not on_sqlite(session))
    if workers and len(rows) > CHUNK and "fork" in multiprocessing.get_all_start_methods():
        chunks: Generator[ChunkDone, None, None] = _in_workers(job, workers)
    else:
        chunks = _in_process(job)
    with closing(chunks):  # (its workers stop with the import)
        summary = _create_chunks(flow, chunks, actor, job, progress)
    summary.ignored_columns = ignored
    return summary


def create_parsed(
    flow: WriteFlow,
    parsed: list[tuple[SourceRow, TicketIn]],
    problems: list[Problem],
    actor: Actor,
    ahead: Ahead | None = None,
) -> ImportSummary:
    """Create the parsed tickets (a request's batch: one chunk), or raise InvalidInput naming
    every problem of every row (`problems`: those found while parsing; then nothing is
    created, the rows are only checked). `created` holds the tickets in the order of
    `parsed`. `ahead`: the same tickets made before the write lock (`make_ahead`), written as
    they are when the context they were judged in is the write's and their ids are still
    free, else made again here (`Ahead.ids_again`)."""
    session = flow.session
    postgres = not on_sqlite(session)
    ids = _TicketIds(session)
    job = _Job([row for row, _ in parsed], flow.ctx, actor, ids, postgres)
    if problems:
        job.refused.set()
    if ahead is None:
        done = _prepare_chunk(job, parsed, problems, ids.draw, flow.ctx.now())
    elif (free := ahead.ids_free(flow)) and ahead.judged_in(flow):
        done = ahead.done
    else:
        done = _prepare_chunk(
            job, parsed, problems, ahead.ids_again(free, ids.draw), now=flow.ctx.now()
        )
    return _create_chunks(flow, iter([done]), actor, job, keep=True)


@dataclass
class Ahead:
    """New tickets checked, judged and made into rows before the write that stores them
    takes SQLite's write lock (`make_ahead`): the context they were judged in, the calendar
    it held, and the ids handed out for them (none when a ticket had a problem)."""

    done: ChunkDone
    ctx: SlaContext
    calendar: Any
    ids: list[int]
    engine: Engine

    def judged_in(self, flow: WriteFlow) -> bool:
        """Whether these rows were judged in the write's context (no calendar loaded
        meanwhile, and not a context a read was given before the process's first write)."""
        ctx = flow.ctx
        return ctx is self.ctx and ctx.calendar is self.calendar

    def ids_free(self, flow: WriteFlow) -> bool:
        """Whether no row took these rows' ids meanwhile, as the write lock now keeps them
        (a writer that knows nothing of ranges, an import or a single `POST /tickets`,
        draws the largest id plus one)."""
        return ids_free(flow.session, new_tickets.TICKETS, self.ids)

    def ids_again(
        self, free: bool, draw: Callable[[int], list[int]]
    ) -> list[int] | Callable[[int], list[int]]:
        """The ids for these tickets judged again under the lock: those handed out for
        them, if still free; else a range handed out anew past every range in use (this one
        given back), or by `draw` (the largest id plus one) where there are no ranges.
        Never the largest id plus one while ranges are in use: that took the range of
        another process's batch, which was then judged again and took the next one's — with
        4 clients on two processes, a batch whose process had not written yet (its context
        a read's) set off 66 such in a row, and 30 % less was written."""
        if free and self.ids:
            return self.ids

        def again(count: int) -> list[int]:
            release_ids(self.engine, new_tickets.TICKETS, self.ids)
            self.ids = reserve_ids(self.engine, new_tickets.TICKETS, count) or []
            return self.ids or draw(count)

        return again

    def release(self) -> None:
        """Its ids given back once the write's transaction has ended (`release_ids`)."""
        release_ids(self.engine, new_tickets.TICKETS, self.ids)


def make_ahead(
    engine: Engine, ctx: SlaContext, parsed: list[tuple[SourceRow, TicketIn]], actor: Actor
) -> Ahead | None:
    """The tickets of a request made before its write takes SQLite's write lock, with ids
    handed out for them (`reserve_ids`): while one server process writes, another judges
    its next batch. None on PostgreSQL, whose writers do not wait for one another's lock."""
    calendar = ctx.calendar
    job = _Job([row for row, _ in parsed], ctx, actor, None, postgres=False)
    ids: list[int] = []

    def draw(count: int) -> list[int]:
        reserved = reserve_ids(engine, new_tickets.TICKETS, count)
        if reserved is None:
            raise _NoRanges
        ids[:] = reserved
        return reserved

    try:
        done = _prepare_chunk(job, parsed, [], draw, ctx.now())
    except _NoRanges:
        return None
    if done.prepared is not None:
        # Bound here, not under the lock: binding a batch of 100's events, target states and
        # findings held it 3.5 ms of its 40 ms of CPU.
        done.prepared.bind(postgres=False, keep_plain=True)
    return Ahead(done, ctx, calendar, ids, engine)


class _NoRanges(Exception):
    """The database hands out no ids ahead (`reserve_ids`)."""


@dataclass
class _Job:
    """What making a chunk takes besides its place in the rows: a worker process has it
    from its parent (forked, nothing of it copied until touched)."""

    rows: Sequence[SourceRow]
    ctx: SlaContext
    actor: Actor
    ids: _TicketIds | None  # (the writer's: drawn before a chunk is made; none ahead)
    postgres: bool  # the database's, which the rows are bound for
    refused: Any = field(default_factory=threading.Event)  # once set, chunks are only checked


class _TicketIds:
    """New tickets' ids, drawn by the writer for chunks not yet written: PostgreSQL's from
    the sequence; SQLite's after the largest (what SQLite itself would give, the write lock
    held since BEGIN IMMEDIATE), counted on from there."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.next: int | None = None

    def draw(self, count: int) -> list[int]:
        if not on_sqlite(self.session):
            return draw_ids(self.session, new_tickets.TICKETS, count)
        if self.next is None:
            (self.next,) = draw_ids(self.session, new_tickets.TICKETS, 1)
        first, self.next = self.next, self.next + count
        return list(range(first, self.next))


@dataclass
class ChunkDone:
    """A chunk of rows parsed, checked and, without a problem, made into the rows its
    creation writes; all but the external ids' problems, which the writer finds (it holds
    the ids met so far and reads those the database has)."""

    found: list[Problem]  # found parsing, located in the rows
    keys: list[tuple[str, str | None]]  # each parsed ticket's (pool, external id)
    each: list[list[Problem]]  # each parsed ticket's, located, but its external id's
    id_at: list[int]  # where a ticket's external id problem goes among its own
    id_where: list[str]  # that problem's location
    prepared: new_tickets.Prepared | None  # None: a problem, or the import refused already
    now: datetime
    size: int  # rows


_JOB: _Job | None = None  # a worker process's


def _set_job(job: _Job, writer: int) -> None:
    """A worker process's start: its job, and its end with the writer's. A worker left
    behind by a writer killed outright (SIGKILL, the kernel out of memory, a plain `kill`)
    would hold the writer's database connection, inherited, and with it its transaction
    and locks: on PostgreSQL the creation of every ticket would wait on until the worker
    was killed by hand."""
    global _JOB
    _JOB = job
    try:  # Linux: the kernel kills it as the writer's thread that forked it ends
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # elsewhere: it looks for itself, twice a second
        threading.Thread(target=_watch, args=(writer,), name="writer-watch", daemon=True).start()
    if os.getppid() != writer:  # (gone already, before the kernel was told)
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _watch(writer: int) -> None:
    while os.getppid() == writer:
        time.sleep(0.5)
    os._exit(1)


def _make_chunk(start: int, ticket_ids: list[int], now: datetime) -> ChunkDone:
    """The chunk of rows from `start` made in a worker process, its rows bound for the
    database."""
    assert _JOB is not None
    done = _parse_chunk(_JOB, start, ticket_ids, now)
    if done.prepared is not None:
        done.prepared.bind(postgres=_JOB.postgres)
    return done


def _parse_chunk(job: _Job, start: int, ticket_ids: list[int], now: datetime) -> ChunkDone:
    rows = list(job.rows[start : start + CHUNK])
    parsed, found = parse_rows(rows, job.ctx)
    done = _prepare_chunk(job, parsed, found, ticket_ids, now)
    done.size = len(rows)
    return done


def _prepare_chunk(
    job: _Job,
    parsed: list[tuple[SourceRow, TicketIn]],
    found: list[Problem],
    ticket_ids: list[int] | Callable[[int], list[int]],
    now: datetime,
) -> ChunkDone:
    """The chunk checked and, without a problem, made into rows; `ticket_ids` drawn for it
    already (an import's), or drawn by the callable once no problem was found (a request's
    batch, whose ids are not spent on a refusal)."""
    ctx, actor = job.ctx, job.actor
    to_codes = words(ctx).ticket_in
    batch = [to_codes(ticket_in) for _, ticket_in in parsed]  # as the write names them
    checks = new_tickets.check(ctx, batch, actor)
    each = [
        [Problem(row.where(p.loc), p.msg) for p in checked.problems]
        for (row, _), checked in zip(parsed, checks, strict=True)
    ]
    prepared = None
    if not found and not any(each) and not job.refused.is_set():
        grams = not job.postgres
        ids = ticket_ids(len(batch)) if callable(ticket_ids) else ticket_ids
        prepared = new_tickets.prepare(ctx, batch, checks, actor, ids, now, grams=grams)
    return ChunkDone(
        found,
        [(t.pool, t.external_id) for t in batch],
        each,
        [checked.id_at for checked in checks],
        [row.where("external_id") for row, _ in parsed],
        prepared,
        now,
        len(parsed),
    )


def _in_process(job: _Job) -> Generator[ChunkDone, None, None]:
    for start in range(0, len(job.rows), CHUNK):
        count = min(CHUNK, len(job.rows) - start)
        assert job.ids is not None
        yield _parse_chunk(job, start, job.ids.draw(count), job.ctx.now())


def _in_workers(job: _Job, workers: int) -> Generator[ChunkDone, None, None]:
    """The chunks made by `workers` processes, a few ahead of the writer, in order. Forked:
    each has the rows, the context and the job from this process as they are (a JSON file's
    bytes, not its tickets decoded), and hands back only a chunk's plain rows. Its ticket ids
    are drawn here, before it is made (the rows' ids and audit records name them)."""
    fork = multiprocessing.get_context("fork")
    job.refused = fork.Event()
    routing_of(job.ctx)  # read here, once: each worker has it (and its warnings are said once)
    pool = ProcessPoolExecutor(
        workers, mp_context=fork, initializer=_set_job, initargs=(job, os.getpid())
    )
    ahead: deque[Future[ChunkDone]] = deque()
    starts = iter(range(0, len(job.rows), CHUNK))
    try:
        while True:
            while len(ahead) < workers + 1 and (start := next(starts, None)) is not None:
                count = min(CHUNK, len(job.rows) - start)
                assert job.ids is not None
                ids = job.ids.draw(count)
                ahead.append(pool.submit(_make_chunk, start, ids, job.ctx.now()))
            if not ahead:
                return
            yield ahead.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _create_chunks(
    flow: WriteFlow,
    chunks: Iterator[ChunkDone],
    actor: Actor,
    job: _Job,
    progress: Callable[[int], None] | None = None,
    *,
    keep: bool = False,
) -> ImportSummary:
    """Write each chunk's rows, or once any row has a problem only gather the rest's, and
    raise InvalidInput naming every problem of every row. `ids` holds the tickets' ids in
    the order of the chunks, and with `keep` `created` the tickets (an import keeps none: a
    province's history is a million)."""
    session = flow.session
    taken: set[tuple[str, str]] = set()  # the ids met so far: a second one is refused
    summary = ImportSummary()
    problems: list[Problem] = []
    for done in chunks:
        problems += done.found
        existing = taken_ids(session, done.keys)
        for k, key in enumerate(done.keys):
            found = done.each[k]
            if (problem := id_problem(None, key, actor, taken, existing)) is not None:
                found.insert(done.id_at[k], Problem(done.id_where[k], problem.msg))
            problems += found
        if problems or done.prepared is None:
            job.refused.set()
        else:
            prepared = done.prepared
            flow.store(prepared, done.now)
            summary.tickets += len(prepared.created)
            summary.events += len(prepared.events)
            # Counted as they go in, not read back: a read of the states of 500 tickets at a
            # time let SQLite's planner, its statistics taken at a smaller size, scan every
            # target state for each (20,000 tickets into a file of 38,000: 11.8 s, not 7).
            summary.targets.update(prepared.statuses())
            for ticket_id, pool, severity in prepared.created:
                summary.by_pool[pool] += 1
                summary.by_severity[severity] += 1
                summary.ids.append(ticket_id)
            if keep:
                summary.kept.append(prepared)
        if progress:
            progress(done.size)
    if problems:  # in the rows' order: by the number in "tickets[i]" or "row N"
        problems.sort(key=lambda p: int(m.group()) if (m := _NUMBER.search(p.loc)) else 0)
        raise InvalidInput(problems)
    return summary


class Brief(NamedTuple):
    """A new target state as a list shows it (`lookup.BriefState`)."""

    target: str
    status: str
    deadline: datetime | None


_NUMBER = re.compile(r"\d+")
