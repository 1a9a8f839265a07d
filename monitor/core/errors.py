"""Domain errors carry their meaning; adapters translate them in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (a field path or row) and what."""

    loc: str
    msg: str

    def __str__(self) -> str:
        return f"{self.loc}: {self.msg}" if self.loc else self.msg


class DomainError(Exception):
    """Base of every error a user can cause; `status` is the HTTP status it maps to."""

    status = 400

    def __init__(self, message: str, loc: str = "") -> None:
        super().__init__(f"{loc}: {message}" if loc else message)
        self.message = message
        self.loc = loc


class InvalidInput(DomainError):
    """One or more problems with an input; nothing was written."""

    status = 422

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))

    def __reduce__(self) -> tuple[Any, ...]:  # pickled whole (from an import's worker)
        return (type(self), (self.problems,))

    def prefixed(self, prefix: str) -> InvalidInput:
        return InvalidInput(
            [Problem(f"{prefix}.{p.loc}" if p.loc else prefix, p.msg) for p in self.problems]
        )


class NotFound(DomainError):
    status = 404


class TicketNotFound(NotFound):
    pass


class Conflict(DomainError):
    status = 409


class ConfigError(Exception):
    """A configuration file is wrong; the product refuses to start."""


class UnknownCalendarYear(Exception):
    """A working-day computation needs a year the calendar does not know."""

    def __init__(self, year: int) -> None:
        super().__init__(f"the working-day calendar of {year} is not loaded")
        self.year = year


class Unauthorized(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class PreconditionFailed(DomainError):
    status = 412


class PreconditionRequired(DomainError):
    status = 428


class IdempotencyInFlight(Conflict):
    """The same Idempotency-Key is still being processed."""


class IdempotencyMismatch(DomainError):
    """The Idempotency-Key was used before with a different request."""

    status = 422
