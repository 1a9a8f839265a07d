"""Templates and the words and times they show: one vocabulary, Beijing time with its offset."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from monitor.api.deps import AppState, state
from monitor.core.db import read_scope
from monitor.core.timeutil import human_duration, show
from monitor.sla.words import Words

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

# Pages run only the product's own scripts and load nothing from elsewhere.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
)

# The main menu: (path, label, roles that see it).
MENU = [
    ("/", "总览", ("operator", "supervisor", "admin", "evaluator")),
    ("/tickets", "工单", ("operator", "supervisor", "admin", "evaluator")),
    ("/breaches", "违约审核", ("operator", "supervisor", "admin", "evaluator")),
    ("/findings", "数据质量", ("operator", "supervisor", "admin")),
    ("/scoring", "年度评分", ("supervisor", "admin", "evaluator")),
    ("/notifications", "通知", ("supervisor", "admin")),
    ("/calendar", "日历", ("admin",)),
    ("/accounts", "账号", ("admin",)),
]


def _tz(request: Request) -> ZoneInfo:
    app: AppState = state(request)
    return ZoneInfo(app.settings.timezone)


def local_time(value: datetime | str | None, tz: ZoneInfo) -> str:
    """An instant (or ISO text) as Beijing time with its offset, e.g. 2022-08-10 11:41:00+08:00."""
    if value is None or value == "":
        return "—"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return show(at, tz)


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return human_duration(timedelta(seconds=value))


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    who = getattr(request.state, "signed_in", None)
    tz = _tz(request)
    base: dict[str, Any] = {
        "who": who,
        "menu": [m for m in MENU if who is not None and who.principal.role in m[2]],
        "path": request.url.path,
        "q": request.query_params.get("q", ""),
        "tm": lambda v: local_time(v, tz),
        "dur": seconds,
        "w": Words,  # the one vocabulary's names for codes (sla/words.py)
        "names": names_for(request),
    }
    response = templates.TemplateResponse(
        request, name, {**base, **context}, status_code=status_code
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["X-Frame-Options"] = "DENY"
    return response


class Names:
    """Catalog and policy names (pools, severities, units, systems) with the code as fallback."""

    def __init__(
        self,
        pools: dict[str, str],
        severities: dict[str, str],
        units: dict[str, str],
        systems: dict[str, str],
    ) -> None:
        self.pools, self.severities, self.units, self.systems = pools, severities, units, systems

    def pool(self, code: str | None) -> str:
        return self.pools.get(code or "", code or "—")

    def severity(self, code: str | None) -> str:
        return self.severities.get(code or "", code or "—")

    def unit(self, code: str) -> str:
        return self.units.get(code, code)

    def system(self, code: str) -> str:
        return self.systems.get(code, code)


def names_for(request: Request) -> Names:
    """Built once per server from the catalog and every policy version's severity names."""
    app: AppState = state(request)
    cached: Names | None = getattr(app, "web_names", None)
    if cached is None:
        with read_scope(app.engine) as session:
            ctx = app.contexts.get(session)
        severities: dict[str, str] = {}
        for policy in ctx.policies.policies:
            severities.update({k: v.name for k, v in policy.severities.items()})
        cached = Names(
            {p.id: p.name for p in ctx.catalog.pools},
            severities,
            {u.id: u.name for u in ctx.catalog.units},
            {s.id: s.name for s in ctx.catalog.systems},
        )
        app.web_names = cached  # type: ignore[attr-defined]
    return cached
