"""Spreadsheets that open well in Excel on Chinese Windows: real date-times in local time
with a display format, bold frozen headers, auto-filters, widths that fit; CSV with a BOM."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import quote

DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"
MAX_WIDTH = 60
CSV_ENCODINGS = ("utf-8-sig", "utf-8", "gb18030")


def local(value: str | datetime | None, tz: tzinfo) -> datetime | None:
    """An instant as the wall-clock time Excel shows (Excel cells carry no offset)."""
    if value is None or value == "":
        return None
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.astimezone(tz).replace(tzinfo=None)


def offset_label(tz: tzinfo, at: datetime) -> str:
    """The offset a sheet's times are in at `at`, e.g. UTC+08:00, for its headers."""
    offset = at.astimezone(tz).strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}"


def _width(value: Any) -> int:
    """Characters of the longest line, a CJK character counting two."""
    if isinstance(value, datetime):
        return 19
    text = "" if value is None else str(value)
    if text.isascii():
        return max((len(line) for line in text.splitlines()), default=0)
    return max(
        (len(line) + sum(ch > "\u2e80" for ch in line) for line in text.splitlines()),
        default=0,
    )


def add_sheet(book: Any, title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> Any:
    """A sheet with a bold frozen header row, an auto-filter, fitted widths and date cells.

    The book is write-only (`new_book`): rows go straight to the file as they are added, so
    the widths are measured over the rows first and only date-times and long texts get a
    styled cell."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    sheet = book.create_sheet(title)
    rows = [list(row) for row in rows]
    widths = [_width(h) for h in headers]
    full = MAX_WIDTH - 2  # a column this wide is shown at MAX_WIDTH whatever follows
    for values in rows:
        for i, value in enumerate(values[: len(widths)]):
            if widths[i] < full:
                widths[i] = max(widths[i], _width(value))
    for i, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = min(MAX_WIDTH, width + 2)
    sheet.freeze_panes = "A2"
    last = max([len(headers), *(len(values) for values in rows)])
    sheet.auto_filter.ref = f"A1:{get_column_letter(last)}{len(rows) + 1}"
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")

    def cell(value: Any) -> Any:
        if isinstance(value, datetime):
            out = WriteOnlyCell(sheet, value)
            out.number_format = DATE_FORMAT
            return out
        if isinstance(value, str) and len(value) > MAX_WIDTH:
            out = WriteOnlyCell(sheet, value)
            out.alignment = wrap
            return out
        return value

    header = []
    for value in headers:
        out = WriteOnlyCell(sheet, value)
        out.font = bold
        header.append(out)
    sheet.append(header)
    for values in rows:
        sheet.append([cell(value) for value in values])
    return sheet


def new_book() -> Any:
    from openpyxl import Workbook

    return Workbook(write_only=True)


def book_bytes(book: Any) -> bytes:
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def csv_bytes(headers: Sequence[str], rows: Iterable[Sequence[Any]], encoding: str) -> bytes:
    """CSV as Excel opens it: UTF-8 with a BOM unless another encoding is asked for."""
    if encoding not in CSV_ENCODINGS:
        raise ValueError(f"encoding {encoding!r}: use one of {', '.join(CSV_ENCODINGS)}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow(
            [
                "" if v is None else v.isoformat(sep=" ") if isinstance(v, datetime) else v
                for v in row
            ]
        )
    return buf.getvalue().encode(encoding)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MEDIA_TYPES = {
    "xlsx": XLSX,
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "md": "text/markdown; charset=utf-8",
}


@dataclass(frozen=True)
class Download:
    """A file for a person: its bytes, its Chinese name and its media type."""

    content: bytes
    filename: str
    media_type: str

    def disposition(self) -> str:
        """RFC 6266: an ASCII fallback name, and the real name as UTF-8 in filename*."""
        ascii_name = self.filename.encode("ascii", "ignore").decode() or "download"
        ascii_name = ascii_name.replace('"', "")
        if ascii_name.startswith("."):
            ascii_name = "download" + ascii_name
        return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(self.filename)}"
