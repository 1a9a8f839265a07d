"""The leader lease and the record of each job run."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from monitor.core.models_base import instant


class Lease(SQLModel, table=True):
    """Who runs the jobs: the holder renews before `expires_at` or another takes over."""

    __tablename__ = "leases"

    name: str = Field(max_length=64, primary_key=True)
    holder: str = Field(max_length=128)
    expires_at: datetime = instant()
    acquired_at: datetime = instant()


class JobRun(SQLModel, table=True):
    """The last success of each job, for freshness checks and metrics."""

    __tablename__ = "job_runs"

    job: str = Field(max_length=64, primary_key=True)
    last_success: datetime = instant()
    holder: str = Field(max_length=128)
    changed: int = 0
