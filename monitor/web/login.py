"""The login form, logout, and the session cookie."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from monitor.api.deps import AppState, state
from monitor.core.db import session_scope
from monitor.core.timeutil import show
from monitor.web.deps import Anyone, Csrf, PageRoute
from monitor.web.render import render
from monitor.web.sessions import (
    LOGIN_COOKIE,
    MAX_NAME,
    MAX_PASSWORD,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    end_session,
    log_in,
    new_token,
    start_session,
)

router = APIRouter(route_class=PageRoute)


def _secure(request: Request) -> bool:
    """Secure cookies when the browser talks TLS, directly or through a proxy that says so."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _safe_next(target: str) -> str:
    """Only a path on this site, so the login form cannot send anyone elsewhere."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target[:2000]


def _form(
    request: Request, *, next_path: str, username: str = "", error: str = "", status: int = 200
) -> HTMLResponse:
    token = new_token()
    response = render(
        request,
        "login.html",
        {"login_csrf": token, "next": next_path, "username": username, "error": error},
        status_code=status,
    )
    response.set_cookie(
        LOGIN_COOKIE, token, httponly=True, samesite="lax", secure=_secure(request), path="/login"
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return _form(request, next_path=_safe_next(next))


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    username: Annotated[str, Form(max_length=MAX_NAME)] = "",
    password: Annotated[str, Form(max_length=MAX_PASSWORD)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    target = _safe_next(next)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf_token):
        return _form(
            request,
            next_path=target,
            username=username,
            error="登录表单已失效，请重新输入密码后登录。",
            status=403,
        )
    app: AppState = state(request)
    now = app.clock.now()
    with session_scope(app.engine) as session:
        result = log_in(session, username, password, now)
        token = start_session(session, result.principal.name, now) if result.principal else ""
    if result.principal is None:
        if result.locked_until is not None:
            error = (
                "登录失败次数过多，该账号已暂时锁定，请于 "
                f"{show(result.locked_until, app.settings.tz)} 之后再试。"
            )
        else:
            error = "用户名或密码不正确。"
        return _form(request, next_path=target, username=username, error=error, status=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout", dependencies=[Csrf])
def logout(request: Request, who: Anyone) -> Response:
    app: AppState = state(request)
    with session_scope(app.engine) as session:
        end_session(session, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
