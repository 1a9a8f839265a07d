"""Loading YAML configuration into pydantic models, with the path of any bad field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TextIO, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from monitor.core.errors import ConfigError, InvalidInput, Problem

M = TypeVar("M", bound=BaseModel)


def loc_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as people write a path: events[0].at."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


FIELD_PREFIX = re.compile(r"^([a-z_]+): (.+)$", re.S)


def pin_field(loc: str, msg: str) -> tuple[str, str]:
    """A whole-model check says which field it means as "field: message": move it to loc."""
    match = FIELD_PREFIX.match(msg)
    if match is None:
        return loc, msg
    field, rest = match.groups()
    return (f"{loc}.{field}" if loc else field), rest


def problems_of(exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"].startswith(("datetime", "date")) and isinstance(err.get("input"), str):
            msg = f"time {err['input']!r} does not parse: {msg}"
        if err["type"] in ("enum", "literal_error") and isinstance(err.get("input"), str):
            msg = f"{err['input']!r} is not known: {msg}"  # (what was sent, beside the list)
        problems.append(Problem(*pin_field(loc_path(loc), msg)))
    return problems


def validate(model: type[M], data: Any) -> M:
    """Validate or raise InvalidInput naming every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(problems_of(exc)) from None


# libyaml's parser when PyYAML was built with it (its wheels are): the same safe subset as
# `yaml.safe_load`, about eight times faster. Every server, CLI command and test reads the
# config files; the catalog alone took 10 ms in pure Python.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Brackets and braces inside one another, at most (the shipped files nest 3 deep). Each
# level is a call deeper in the loader: 50,000 of them (`[[[…`, 100 KB) crashed the process
# with libyaml's loader, and 1,000 raised RecursionError in the pure-Python one.
MAX_NESTING = 64
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class TooDeep(yaml.YAMLError):
    """A YAML text nested deeper than `MAX_NESTING`."""


def parse_yaml(text: str | TextIO) -> Any:
    """`yaml.safe_load`, by libyaml where there is one; a text nested deeper than
    `MAX_NESTING` is refused (`TooDeep`) before it is loaded."""
    text = text if isinstance(text, str) else text.read()
    depth = deepest = 0
    for mark in _NOT_BRACKET.sub("", text):  # (a bracket inside a quoted text counts too)
        depth = depth + 1 if mark in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    if deepest > MAX_NESTING:
        raise TooDeep(f"nested more than {MAX_NESTING} levels deep")
    try:
        return yaml.load(text, Loader=SafeLoader)  # a safe loader: plain data only
    except RecursionError:  # (indentation nests too: the pure-Python loader's limit)
        raise TooDeep("nested too deeply") from None


def read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return parse_yaml(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def load_config(model: type[M], path: Path) -> M:
    """A config file as a model, or ConfigError naming the file and each bad field."""
    try:
        return validate(model, read_yaml(path))
    except InvalidInput as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        raise ConfigError(f"{path}: invalid\n{lines}") from None
