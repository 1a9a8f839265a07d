"""Evidence files: content-addressed under SLAMON_EVIDENCE_DIR, never overwritten."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import event
from sqlmodel import Session, col, select

from monitor.core.errors import DomainError, InvalidInput, NotFound, Problem
from monitor.evidence.models import Evidence, EvidenceLink

MAX_BYTES = 50 * 1024 * 1024
HEAD = 64  # bytes kept to check the content against the declared type
ZIP = (b"PK\x03\x04", b"PK\x05\x06")


def _text(head: bytes) -> bool:
    """Text, not a binary in disguise: no NUL, and decodable as UTF-8 or GB18030."""
    if b"\x00" in head:
        return False
    for codec in ("utf-8", "gb18030"):
        try:
            head.decode(codec)
            return True
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 4:  # a character cut by the end of the sample
                return True
    return False


def _zip(head: bytes) -> bool:
    return head.startswith(ZIP)


# Every accepted type and how its content is recognised.
ALLOWED = {
    "application/pdf": lambda h: h.startswith(b"%PDF-"),
    "image/png": lambda h: h.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": lambda h: h.startswith(b"\xff\xd8\xff"),
    "image/webp": lambda h: h.startswith(b"RIFF") and h[8:12] == b"WEBP",
    "text/plain": _text,
    "text/csv": _text,
    "application/zip": lambda h: h.startswith(ZIP),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": lambda h: h.startswith(
        ZIP
    ),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": lambda h: (
        h.startswith(ZIP)
    ),
}


class TooLarge(DomainError):
    status = 413


def path_of(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256[2:4] / sha256


def store(
    session: Session,
    root: Path,
    stream: BinaryIO,
    *,
    media_type: str,
    filename: str,
    ticket_id: int,
    uploader: str,
    now: datetime,
    max_bytes: int = MAX_BYTES,
) -> EvidenceLink:
    """Store a file (or find it stored already) and link it to the ticket; returns this
    upload's own record. A file this call placed is removed again if the transaction
    rolls back, so a refused upload leaves nothing on disk."""
    media_type = media_type.split(";")[0].strip().lower()
    if problem := text_problem(filename, "file.filename", 255):
        raise InvalidInput([problem])
    if media_type not in ALLOWED:
        raise InvalidInput(
            [
                Problem(
                    "file",
                    f"media type {media_type!r} is not accepted "
                    f"(accepted: {', '.join(sorted(ALLOWED))})",
                )
            ]
        )
    root.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    head = b""
    fd, tmp_name = tempfile.mkstemp(dir=root, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(1024 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"file: larger than the limit of {max_bytes} bytes")
                if len(head) < HEAD:
                    head += chunk[: HEAD - len(head)]
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0 or not ALLOWED[media_type](head):
            raise InvalidInput([Problem("file", f"the content is not {media_type}")])
        sha = digest.hexdigest()
        target = path_of(root, sha)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, target)  # content-addressed: same name, same bytes
            _remove_on_rollback(session, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    row = session.get(Evidence, sha)
    if row is None:
        row = Evidence(
            sha256=sha, size=size, media_type=media_type, uploaded_by=uploader, uploaded_at=now
        )
        session.add(row)
    link = EvidenceLink(
        ticket_id=ticket_id,
        sha256=sha,
        filename=filename,
        media_type=media_type,
        size=size,
        uploaded_by=uploader,
        linked_at=now,
    )
    session.add(link)
    session.flush()
    return link


def text_problem(value: str, loc: str, limit: int) -> Problem | None:
    """A name or note a person typed: bounded, no NUL, no lone surrogate."""
    if len(value) > limit:
        return Problem(loc, f"at most {limit} characters")
    if "\x00" in value:
        return Problem(loc, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return Problem(loc, "is not valid text (a lone surrogate)")
    return None


def _remove_on_rollback(session: Session, path: Path) -> None:
    def remove(*_: object) -> None:
        path.unlink(missing_ok=True)
        event.remove(session, "after_commit", keep)

    def keep(*_: object) -> None:
        event.remove(session, "after_rollback", remove)

    event.listen(session, "after_rollback", remove, once=True)
    event.listen(session, "after_commit", keep, once=True)


def linked(session: Session, ticket_id: int, sha256: str) -> EvidenceLink:
    """This ticket's first upload of the file; another ticket's uploads are not found."""
    link = session.exec(
        select(EvidenceLink)
        .where(EvidenceLink.ticket_id == ticket_id, EvidenceLink.sha256 == sha256)
        .order_by(col(EvidenceLink.id))
    ).first()
    if link is None:
        raise NotFound(f"no evidence {sha256} on this ticket")
    return link


def read_chunks(root: Path, sha256: str) -> Iterator[bytes]:
    with path_of(root, sha256).open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            yield chunk
