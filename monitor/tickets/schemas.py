"""What clients send and receive: the import format's field names, for files and the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from monitor.core.schemas import MAX_EVIDENCE_ITEMS, MAX_REF, Input, bounded, visible
from monitor.sla.vocab import (
    EVENT_LABELS,
    SOURCE_ALIASES,
    SOURCE_LABELS,
    EventType,
    TargetStatus,
    TicketSource,
    TicketStatus,
    code_of,
)

# Events one request may carry; a ticket's whole history is bounded by a setting.
MAX_EVENTS_PER_REQUEST = 200
# Tickets in one `POST /tickets/batch`: a ticket system catching up sends many at once; more
# than this would hold the write lock (one SQLite writer) for long enough to delay others.
MAX_TICKETS_PER_BATCH = 100
# A list field's default: made afresh for each model by a factory (pydantic deep-copies a
# `default=[]` for every model it builds, five times a ticket), still shown as [] in the schema.
_EMPTY_LIST: dict[str, Any] = {"default": []}

# Accepts a time with or without an offset, so not JSON Schema's strict date-time format.
LocalTime = Annotated[
    datetime,
    AfterValidator(bounded),
    WithJsonSchema(
        {"type": "string", "examples": ["2022-08-10T11:41:00+08:00", "2022-08-10 11:41"]}
    ),
]


def _reject_bare_date(value: Any) -> Any:
    if isinstance(value, str) and len(value.strip()) <= 10:
        raise ValueError(f"{value!r} is not a time of day: write e.g. 2022-08-10T11:41:00+08:00")
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("write the time as ISO 8601 text, not a number")
    return value


def _not_a_seq(value: str | None) -> str | None:
    if value is not None and value.lstrip("#").isdigit():
        raise ValueError(
            f"{value!r} is reserved: #n names the ticket's n-th event; give an id with a letter"
        )
    return value


def _code(labels: dict[str, str], aliases: dict[str, str] | None = None) -> Any:
    """A validator that reads a Chinese label (e.g. 到场, 监控发现) as its code."""

    def to_code(value: Any) -> Any:
        return code_of(value, labels, aliases) if isinstance(value, str) else value

    return to_code


class EventIn(Input):
    """One timeline event as a client states it."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str | None, AfterValidator(visible), AfterValidator(_not_a_seq)] = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="the client's own id, unique within the ticket; #n and plain numbers are "
        "reserved for sequence numbers",
    )
    type: EventType
    at: LocalTime = Field(
        description="when it happened, ISO 8601; without an offset it is read in the configured "
        "zone (for a correction: the corrected time)"
    )
    note: str = Field(default="", max_length=10000)
    evidence: list[Annotated[str, Field(min_length=1, max_length=MAX_REF)]] = Field(
        default_factory=list,
        json_schema_extra=_EMPTY_LIST,
        max_length=MAX_EVIDENCE_ITEMS,
        description="links or uploaded evidence ids",
    )
    severity: str | None = Field(
        default=None, max_length=64, description="severity_changed: the new severity"
    )
    corrects: str | None = Field(
        default=None, max_length=128, description="correction: id of the corrected event"
    )
    reason: str | None = Field(default=None, max_length=2000, description="correction: why")

    _at_text = field_validator("at", mode="before")(_reject_bare_date)
    _type_code = field_validator("type", mode="before")(_code(EVENT_LABELS))

    @model_validator(mode="after")
    def _type_fields(self) -> EventIn:
        if self.type == "severity_changed" and not self.severity:
            raise ValueError("severity: a severity_changed event needs the new severity")
        if self.type != "severity_changed" and self.severity is not None:
            raise ValueError("severity: only a severity_changed event carries a severity")
        if self.type == "correction":
            if not self.corrects:
                raise ValueError("corrects: a correction names the id of the event it corrects")
            if not (self.reason and self.reason.strip()):
                raise ValueError("reason: a correction needs a reason")
        elif self.corrects is not None:
            raise ValueError("corrects: only a correction event names an event to correct")
        return self


class TicketIn(Input):
    """A ticket with its events, as imported or posted."""

    model_config = ConfigDict(extra="forbid")

    external_id: Annotated[str | None, AfterValidator(visible)] = Field(
        default=None, min_length=1, max_length=128, description="the operator's own ticket number"
    )
    pool: str = Field(max_length=64)
    severity: str = Field(max_length=64, description="the severity the ticket was reported with")
    title: Annotated[str, AfterValidator(visible)] = Field(min_length=1, max_length=500)
    description: str = Field(default="", max_length=20000)
    source: TicketSource = "other"
    units: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list,
        json_schema_extra=_EMPTY_LIST,
        max_length=50,
        description="affected user units (id or name)",
    )
    systems: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list,
        json_schema_extra=_EMPTY_LIST,
        max_length=50,
        description="affected business systems (id or name)",
    )
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)

    _source_code = field_validator("source", mode="before")(_code(SOURCE_LABELS, SOURCE_ALIASES))


Checkable = TypeVar("Checkable", TicketIn, EventIn)


def checkable_without_bad_types(
    model: type[Checkable], data: Any, exc: ValidationError
) -> Checkable | None:
    """The ticket (or event) with every event of an unknown type read as a comment, if that
    is all that was wrong with it: so a bad event type does not hide the other problems
    (unknown pool, a time in the future, …). Only for finding problems: the input is refused
    anyway."""
    errors = exc.errors()
    if not errors or not isinstance(data, dict):
        return None
    if model is EventIn:
        if any(e["loc"] != ("type",) for e in errors):
            return None
        fixed = {**data, "type": "comment"}
    else:
        bad = [
            e["loc"] for e in errors if len(e["loc"]) == 3 and e["loc"][::2] == ("events", "type")
        ]
        if len(bad) != len(errors):
            return None
        events = list(data.get("events") or [])
        for _, i, _ in bad:
            assert isinstance(i, int)
            events[i] = {**events[i], "type": "comment"}
        fixed = {**data, "events": events}
    try:
        return model.model_validate(fixed)
    except ValidationError:
        return None


class ImportFile(Input):
    """The JSON import file."""

    model_config = ConfigDict(extra="forbid")
    tickets: list[TicketIn]


class EventOut(BaseModel):
    id: str
    seq: int
    type: str
    at: str
    recorded_at: str
    actor: str
    role: str
    source: str
    note: str
    evidence: list[Any]
    severity: str | None = None
    corrects: str | None = None
    reason: str | None = None
    corrected_at: str | None = Field(default=None, description="the time after corrections")


class TargetOut(BaseModel):
    id: str
    name: str
    status: TargetStatus
    start: str | None
    deadline: str | None
    stop: str | None
    elapsed_seconds: float | None
    overrun_seconds: float | None
    paused_seconds: float
    calendar: str
    duration: str
    explain: str


class TicketOut(BaseModel):
    id: int
    external_id: str | None
    pool: str
    severity: str
    current_severity: str
    title: str
    description: str
    source: str
    units: list[str]
    systems: list[str]
    status: TicketStatus
    policy_version: str
    reported_at: str
    created_at: str
    updated_at: str
    events: list[EventOut]
    targets: list[TargetOut]


class TargetBrief(BaseModel):
    id: str
    status: TargetStatus
    deadline: str | None


class TicketSummary(BaseModel):
    id: int
    external_id: str | None
    pool: str
    severity: str
    title: str
    source: str
    status: TicketStatus
    reported_at: str
    breached: bool
    targets: list[TargetBrief]


class TicketPage(BaseModel):
    items: list[TicketSummary]
    total: int = Field(
        description="how many tickets match; counting stops at 1000 (see total_exact)"
    )
    total_exact: bool = Field(
        default=True,
        description="false when more than `total` tickets match: counting stopped at 1000",
    )
    page: int
    per_page: int


class TicketBatchIn(Input):
    """Several new tickets in one request, in the import file's shape: all are written, or
    none (every problem named `tickets[i].field`)."""

    tickets: list[TicketIn] = Field(min_length=1, max_length=MAX_TICKETS_PER_BATCH)


class TicketBatchOut(BaseModel):
    tickets: list[TicketSummary] = Field(description="the tickets created, in the order sent")
    events: int = Field(description="how many events they hold")
