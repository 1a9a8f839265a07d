"""日历 and 账号: the admin's pages — the working-day calendar and who may sign in or call."""

from __future__ import annotations

import calendar as months
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from monitor.api.deps import AppState, state
from monitor.auth.service import (
    ROLES,
    create_token,
    create_user,
    list_tokens,
    list_users,
    revoke_token,
    set_user_disabled,
)
from monitor.calendars.loader import arrangements_from
from monitor.core.config_files import MAX_NESTING, TooDeep, parse_yaml
from monitor.core.db import read_scope, session_scope
from monitor.core.errors import InvalidInput
from monitor.judging import jobs
from monitor.sla.vocab import ROLE_LABELS
from monitor.web.deps import Admin, Csrf, PageRoute, SignedIn, writing
from monitor.web.messages import field_errors, problems_of, zh
from monitor.web.render import names_for, render
from monitor.web.sessions import end_sessions_of

router = APIRouter(route_class=PageRoute)
MAX_CALENDAR_BYTES = 256 * 1024
WEEKDAYS = "一二三四五六日"

# --- 日历 ---------------------------------------------------------------------------------


def _calendar_page(
    request: Request,
    who: SignedIn,
    year: int,
    *,
    errors: dict[str, str] | None = None,
    done: str = "",
) -> HTMLResponse:
    app: AppState = state(request)
    with read_scope(app.engine) as session:
        cal = app.contexts.get(session).calendar
    known = cal.knows(year)
    grid: list[dict[str, Any]] = []
    if known:
        for month in range(1, 13):
            weeks = [
                [cal.day(d) if d.month == month else None for d in week]
                for week in months.Calendar().monthdatescalendar(year, month)
            ]
            grid.append({"month": month, "weeks": weeks})
    return render(
        request,
        "calendar.html",
        {
            "title": f"{year} 年工作日历",
            "year": year,
            "known": known,
            "known_years": cal.known_years,
            "arrangement": cal.arrangement(year) if known else None,
            "workdays": cal.workday_count(year) if known else None,
            "special": cal.special_days(year) if known else [],
            "grid": grid,
            "weekdays": WEEKDAYS,
            "errors": errors or {},
            "done": done,
        },
        status_code=422 if errors else 200,
    )


@router.get("/calendar", response_class=HTMLResponse)
def calendar_page(
    request: Request,
    who: Admin,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    done: Annotated[str, Query(max_length=40)] = "",
) -> HTMLResponse:
    app: AppState = state(request)
    return _calendar_page(
        request, who, year or app.clock.now().astimezone(app.settings.tz).year, done=done
    )


@router.post("/calendar", dependencies=[Csrf])
async def load_calendar(request: Request, who: Admin) -> Response:
    """Load an official arrangement (the calendar YAML); affected tickets are re-judged."""
    form = await request.form()
    return await run_in_threadpool(_load_calendar, request, who, form)


def _load_calendar(request: Request, who: SignedIn, form: FormData) -> Response:
    app: AppState = state(request)
    upload = form.get("file")
    year = app.clock.now().astimezone(app.settings.tz).year
    if upload is None or isinstance(upload, str) or not upload.filename:
        return _calendar_page(request, who, year, errors={"file": "请选择日历文件（YAML）"})
    body = upload.file.read(MAX_CALENDAR_BYTES + 1)
    if len(body) > MAX_CALENDAR_BYTES:
        return _calendar_page(request, who, year, errors={"file": "文件超过 256 KB"})
    try:
        data = parse_yaml(body.decode("utf-8"))
        arrangements = arrangements_from(data, default_source=upload.filename[:200])
    except TooDeep:
        message = f"文件嵌套过深（括号套括号超过 {MAX_NESTING} 层），不是日历文件"
        return _calendar_page(request, who, year, errors={"file": message})
    except (UnicodeDecodeError, yaml.YAMLError):
        return _calendar_page(request, who, year, errors={"file": "不是 UTF-8 编码的 YAML 文件"})
    except InvalidInput as exc:
        details = "；".join(
            f"{p.loc}：{zh(p.msg).removeprefix('输入有误：')}" for p in exc.problems
        )
        return _calendar_page(request, who, year, errors={"file": f"文件内容有误：{details}"})
    if not arrangements:
        return _calendar_page(request, who, year, errors={"file": "文件中没有任何年度"})
    with writing(request) as flow:
        changed = jobs.load_calendar(
            flow, arrangements, actor=who.principal.name, file_name=upload.filename[:200]
        )
    first = arrangements[0].year
    return RedirectResponse(f"/calendar?year={first}&done={changed}", status_code=303)


# --- 账号 ---------------------------------------------------------------------------------

USER_FIELDS = ["name", "role", "pool", "password", "password2"]
TOKEN_FIELDS = ["token_name", "token_role", "token_pool"]


def _accounts_page(
    request: Request,
    who: SignedIn,
    *,
    form: str = "",
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    new_token: str = "",
    status: int = 200,
) -> HTMLResponse:
    app: AppState = state(request)
    with read_scope(app.engine) as session:
        users, tokens = list_users(session), list_tokens(session)
    return render(
        request,
        "accounts.html",
        {
            "title": "账号",
            "users": users,
            "tokens": tokens,
            "roles": [(r, ROLE_LABELS[r]) for r in ROLES],
            "pools": list(names_for(request).pools.items()),
            "form": form,
            "values": values or {},
            "errors": errors or {},
            "new_token": new_token,
        },
        status_code=status,
    )


@router.get("/accounts", response_class=HTMLResponse)
def accounts(request: Request, who: Admin) -> HTMLResponse:
    return _accounts_page(request, who)


def _role_pool(role: str, pool: str) -> str | None:
    return pool or None if role == "operator" else None


@router.post("/accounts/users", dependencies=[Csrf])
async def new_user(request: Request, who: Admin) -> Response:
    form = await request.form()
    return await run_in_threadpool(_new_user, request, who, form)


def _new_user(request: Request, who: SignedIn, form: FormData) -> Response:
    app: AppState = state(request)
    values = {k: str(form.get(k, ""))[:1025] for k in USER_FIELDS}
    problems: list[tuple[str, str]] = []
    if len(values["name"]) > 128:
        problems.append(("name", "最多 128 个字"))
    if values["password"] != values["password2"]:
        problems.append(("password2", "两次输入的密码不一致"))
    if len(values["password"]) > 1024:
        problems.append(("password", "最多 1024 个字符"))
    if not problems:
        try:
            with session_scope(app.engine) as session:
                create_user(
                    session,
                    name=values["name"].strip(),
                    password=values["password"],
                    role=values["role"],
                    pool=_role_pool(values["role"], values["pool"]),
                    known_pools=list(names_for(request).pools),
                    now=app.clock.now(),
                    actor=who.principal.name,
                )
        except InvalidInput as exc:
            problems += problems_of(exc)
    if problems:
        values["password"] = values["password2"] = ""  # never sent back to the browser
        errors = field_errors(problems, lambda loc: loc, USER_FIELDS)
        return _accounts_page(request, who, form="user", values=values, errors=errors, status=422)
    return RedirectResponse("/accounts?done=user", status_code=303)


@router.post("/accounts/users/{name}/disabled", dependencies=[Csrf])
async def disable_user(request: Request, who: Admin, name: str) -> Response:
    """Disable (or enable again) an account; a disabled one is logged out at once."""
    form = await request.form()
    disabled = form.get("disabled") == "1"
    app: AppState = state(request)

    def work() -> None:
        with session_scope(app.engine) as session:
            set_user_disabled(
                session,
                name[:128],
                disabled=disabled,
                now=app.clock.now(),
                actor=who.principal.name,
            )
            if disabled:
                end_sessions_of(session, name[:128])

    await run_in_threadpool(work)
    return RedirectResponse("/accounts", status_code=303)


@router.post("/accounts/tokens", dependencies=[Csrf])
async def new_token(request: Request, who: Admin) -> Response:
    form = await request.form()
    return await run_in_threadpool(_new_token, request, who, form)


def _new_token(request: Request, who: SignedIn, form: FormData) -> Response:
    app: AppState = state(request)
    values = {k: str(form.get(k, ""))[:129] for k in TOKEN_FIELDS}
    problems: list[tuple[str, str]] = []
    if not values["token_name"].strip():
        problems.append(("token_name", "请填写令牌名称，例如调用它的系统"))
    elif len(values["token_name"]) > 128:
        problems.append(("token_name", "最多 128 个字"))
    secret = ""
    if not problems:
        try:
            with session_scope(app.engine) as session:
                _, secret = create_token(
                    session,
                    name=values["token_name"].strip(),
                    role=values["token_role"],
                    pool=_role_pool(values["token_role"], values["token_pool"]),
                    known_pools=list(names_for(request).pools),
                    now=app.clock.now(),
                    actor=who.principal.name,
                )
        except InvalidInput as exc:
            problems += [(f"token_{loc}", msg) for loc, msg in problems_of(exc)]
    if problems:
        errors = field_errors(problems, lambda loc: loc, TOKEN_FIELDS)
        return _accounts_page(request, who, form="token", values=values, errors=errors, status=422)
    return _accounts_page(request, who, new_token=secret)


@router.post("/accounts/tokens/{prefix}/revoke", dependencies=[Csrf])
async def revoke(request: Request, who: Admin, prefix: str) -> Response:
    app: AppState = state(request)

    def work() -> None:
        with session_scope(app.engine) as session:
            revoke_token(session, prefix[:16], now=app.clock.now(), actor=who.principal.name)

    await run_in_threadpool(work)
    return RedirectResponse("/accounts", status_code=303)
