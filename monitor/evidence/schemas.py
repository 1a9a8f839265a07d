"""What an evidence upload answers."""

from __future__ import annotations

from pydantic import BaseModel


class EvidenceOut(BaseModel):
    sha256: str
    size: int
    media_type: str
    filename: str
    ref: str
    url: str
