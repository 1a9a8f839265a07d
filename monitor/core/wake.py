"""In-process notice that a write created an earlier deadline, so the scheduler re-arms."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

Listener = Callable[[datetime], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def notify(instant: datetime | None) -> None:
    if instant is None:
        return
    for listener in list(_listeners):
        listener(instant)
