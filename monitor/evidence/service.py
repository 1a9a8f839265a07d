"""Evidence files: content-addressed under SLAMON_EVIDENCE_DIR, never overwritten."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlmodel import Session, select

from monitor.core.errors import DomainError, InvalidInput, NotFound, Problem
from monitor.evidence.models import Evidence, EvidenceLink

MAX_BYTES = 50 * 1024 * 1024
ALLOWED = {
    "application/pdf": (b"%PDF",),
    "image/png": (b"\x89PNG",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/webp": (b"RIFF",),
    "text/plain": (),
    "text/csv": (),
    "application/zip": (b"PK",),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (b"PK",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (b"PK",),
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
) -> Evidence:
    """Store a file (or find it stored already) and link it to the ticket."""
    media_type = media_type.split(";")[0].strip().lower()
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
                if len(head) < 16:
                    head += chunk[:16]
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        magic = ALLOWED[media_type]
        if magic and not any(head.startswith(m) for m in magic):
            raise InvalidInput([Problem("file", f"the content is not {media_type}")])
        sha = digest.hexdigest()
        target = path_of(root, sha)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, target)  # content-addressed: same name, same bytes
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    row = session.get(Evidence, sha)
    if row is None:
        row = Evidence(
            sha256=sha, size=size, media_type=media_type, uploaded_by=uploader, uploaded_at=now
        )
        session.add(row)
    session.add(
        EvidenceLink(ticket_id=ticket_id, sha256=sha, filename=filename[:255], linked_at=now)
    )
    session.flush()
    return row


def linked(session: Session, ticket_id: int, sha256: str) -> tuple[Evidence, EvidenceLink]:
    link = session.exec(
        select(EvidenceLink).where(
            EvidenceLink.ticket_id == ticket_id, EvidenceLink.sha256 == sha256
        )
    ).first()
    row = session.get(Evidence, sha256) if link else None
    if link is None or row is None:
        raise NotFound(f"no evidence {sha256} on this ticket")
    return row, link


def read_chunks(root: Path, sha256: str) -> Iterator[bytes]:
    with path_of(root, sha256).open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            yield chunk
