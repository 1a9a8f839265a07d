"""Evidence files, stored by content, and the tickets they belong to."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from monitor.core.models_base import instant


class Evidence(SQLModel, table=True):
    """A stored file, addressed by its content; never overwritten."""

    __tablename__ = "evidence"

    sha256: str = Field(max_length=64, primary_key=True)
    size: int
    media_type: str = Field(max_length=128)
    uploaded_by: str = Field(max_length=128)
    uploaded_at: datetime = instant()


class EvidenceLink(SQLModel, table=True):
    """Which ticket a stored file belongs to; the file is only served with the ticket's rights."""

    __tablename__ = "evidence_links"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    sha256: str = Field(foreign_key="evidence.sha256", max_length=64, index=True)
    filename: str = Field(max_length=255)
    # Per upload: what this uploader declared, so nobody learns of another's upload.
    media_type: str = Field(max_length=128)
    size: int
    uploaded_by: str = Field(max_length=128)
    linked_at: datetime = instant()
