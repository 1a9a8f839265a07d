"""Error messages for people: every problem a form can meet, in Chinese, keyed by form field."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from pydantic import ValidationError

from monitor.core.errors import InvalidInput

TIME_HINT = "请按“2022-08-10 11:41”的格式填写北京时间"

# Domain messages (English in the services and the API) and their Chinese wording.
_DOMAIN: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"is in the future"), "时间晚于当前时间，不能登记将来的时间"),
    (
        re.compile(r"is before the ticket's"),
        "时间早于该工单的报障时间",
    ),
    (re.compile(r"would put"), "更正后的报障时间会晚于其他事件"),
    (re.compile(r"already has a ticket with external_id"), "该资源池已有此外部单号的工单"),
    (re.compile(r"cannot write tickets of"), "只能登记本资源池的工单"),
    (re.compile(r"unknown pool"), "未知的资源池"),
    (re.compile(r"unknown severity"), "未知的故障级别"),
    (re.compile(r"unknown unit"), "未知的使用单位"),
    (re.compile(r"unknown system"), "未知的业务系统"),
    (re.compile(r"no SLA policy is in force"), "该日期没有生效的 SLA 规则"),
    (re.compile(r"already reported"), "工单已有报障事件；要改报障时间请提交更正"),
    (re.compile(r"a correction cannot be corrected"), "不能更正一条更正，请再次更正原事件"),
    (re.compile(r"no event .* to correct"), "要更正的事件不存在"),
    (re.compile(r"needs a reason|waiving a breach needs"), "请填写理由"),
    (re.compile(r"is already used in this ticket"), "该事件编号已被使用"),
    (re.compile(r"has been uploaded to this ticket"), "该佐证文件尚未上传到本工单"),
    (re.compile(r"larger than|too large"), "文件过大"),
    (
        re.compile(r"type|content"),
        "文件类型不被接受（可上传 PDF、图片、文本、CSV、ZIP、xlsx、docx）",
    ),
    (re.compile(r"at least 12 characters"), "密码至少 12 个字符"),
    (re.compile(r"exists already"), "该用户名已存在"),
    (re.compile(r"an operator belongs to exactly one pool"), "运营单位账号须指定一个资源池"),
    (re.compile(r"only operators are limited to a pool"), "只有运营单位账号属于资源池"),
    (re.compile(r"needs a name"), "请填写名称"),
    (re.compile(r"does not parse|not a time of day|date without a time"), TIME_HINT),
]

_PYDANTIC = {
    "missing": "必填",
    "string_too_short": "不能为空",
    "literal_error": "请从列表中选择",
    "enum": "请从列表中选择",
    "datetime_parsing": TIME_HINT,
    "datetime_from_date_parsing": TIME_HINT,
    "int_parsing": "请填写数字",
}


def zh(message: str) -> str:
    """A domain or validation message in Chinese; unknown ones keep their words after a prefix."""
    for pattern, words in _DOMAIN:
        if pattern.search(message):
            return words
    return f"输入有误：{message}"


FieldMap = Callable[[str], str]


def field_errors(
    problems: Iterable[tuple[str, str]], to_field: FieldMap, known: Iterable[str]
) -> dict[str, str]:
    """Problems keyed by the form field they belong to; the rest under "" (shown at the top)."""
    fields = set(known)
    out: dict[str, str] = {}
    for loc, msg in problems:
        name = to_field(loc)
        key = name if name in fields else ""
        out.setdefault(key, msg)
    return out


def problems_of(exc: InvalidInput | ValidationError) -> list[tuple[str, str]]:
    """(location, Chinese message) for each problem of a refused input."""
    if isinstance(exc, InvalidInput):
        return [(p.loc, zh(p.msg)) for p in exc.problems]
    out = []
    for err in exc.errors():
        loc = ".".join(str(x) if not isinstance(x, int) else f"[{x}]" for x in err["loc"])
        loc = loc.replace(".[", "[")
        kind = err["type"]
        if kind == "string_too_long":
            msg = f"最多 {err.get('ctx', {}).get('max_length', '')} 个字"
        elif kind in _PYDANTIC:
            msg = _PYDANTIC[kind]
        else:
            text = str(err.get("msg", ""))
            msg = zh(text.removeprefix("Value error, "))
            field, sep, _ = text.removeprefix("Value error, ").partition(":")
            if sep and " " not in field:
                loc = f"{loc}.{field}" if loc else field
        out.append((loc, msg))
    return out
