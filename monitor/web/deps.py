"""What every page needs: the signed-in person, role checks, CSRF, and Chinese error pages."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from monitor.api.deps import AppState, pool_scope, state
from monitor.api.errors import busy, lost
from monitor.core.db import limit_lock_waits, read_scope, session_scope
from monitor.core.errors import Forbidden, NotFound
from monitor.judging.flow import WriteFlow, write_flow
from monitor.web.render import render
from monitor.web.sessions import SESSION_COOKIE, SignedIn, signed_in


class LoginRequired(Exception):
    """No current session: the page redirects to the login form and comes back afterwards."""


class PageRoute(APIRoute):
    """Turns a page's refusals into Chinese pages instead of the API's JSON errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            except Forbidden:
                return error_page(
                    request, 403, "没有权限", "您的账号角色不能访问此页面或执行此操作。"
                )
            except NotFound:
                return error_page(
                    request, 404, "未找到", "没有找到该记录，或它不在您可查看的范围内。"
                )
            except CsrfRefused:
                return error_page(
                    request,
                    403,
                    "表单已失效",
                    "表单缺少有效的安全令牌，请返回上一页刷新后重新提交。",
                )
            except (sa.exc.OperationalError, sa.exc.TimeoutError) as exc:
                if busy(request, exc):
                    page = error_page(
                        request,
                        503,
                        "系统繁忙",
                        "另一项写入（例如批量导入）正在进行，本次操作没有保存。请稍候片刻，"
                        "返回上一页后重新提交。",
                    )
                elif lost(exc):
                    page = error_page(
                        request,
                        503,
                        "数据库连接中断",
                        "与数据库的连接中断（例如数据库正在重启）。如果这是一次提交，"
                        "它可能已经保存，也可能没有：请稍候片刻，先打开相关页面查看，"
                        "再决定是否重新提交。",
                    )
                else:
                    raise
                page.headers["Retry-After"] = "5"
                return page

        return page


class CsrfRefused(Exception):
    """A form posted without this session's token: possibly from another site."""


def error_page(request: Request, status: int, title: str, text: str) -> HTMLResponse:
    return render(request, "error.html", {"title": title, "text": text}, status_code=status)


def _signed_in(request: Request) -> SignedIn:
    cached: SignedIn | None = getattr(request.state, "signed_in", None)
    if cached is not None:
        return cached
    app: AppState = state(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    with read_scope(app.engine) as session:
        found = signed_in(session, token, app.clock.now()) if token else None
    if found is None:
        raise LoginRequired()
    request.state.signed_in = found
    return found


def page_user(*roles: str) -> Callable[[Request], SignedIn]:
    """A dependency admitting a signed-in person of these roles (all roles when none named)."""

    def check(request: Request) -> SignedIn:
        who = _signed_in(request)
        if roles and who.principal.role not in roles:
            raise Forbidden(f"the {who.principal.role} role may not do this")
        return who

    return check


async def csrf_checked(request: Request) -> None:
    """Every form posts the session's token; one without it changes nothing."""
    who = _signed_in(request)
    form = await request.form()
    given = form.get("csrf_token")
    if not isinstance(given, str) or not hmac.compare_digest(given, who.csrf):
        raise CsrfRefused()


Anyone = Annotated[SignedIn, Depends(page_user())]
Writer = Annotated[SignedIn, Depends(page_user("operator", "supervisor", "admin"))]
TicketWriter = Annotated[SignedIn, Depends(page_user("operator", "admin"))]
Reviewer = Annotated[SignedIn, Depends(page_user("supervisor", "admin"))]
FindingReader = Annotated[SignedIn, Depends(page_user("operator", "supervisor", "admin"))]
ScoreReader = Annotated[SignedIn, Depends(page_user("supervisor", "admin", "evaluator"))]
Admin = Annotated[SignedIn, Depends(page_user("admin"))]
Csrf = Depends(csrf_checked)


@contextmanager
def writing(request: Request) -> Iterator[WriteFlow]:
    """One write transaction with the write flow, its waits for a lock bounded as the API's
    are; a page's refused input raises inside the block, so nothing of it is committed."""
    app: AppState = state(request)
    with session_scope(app.engine) as session:
        limit_lock_waits(session)
        with write_flow(session, app.contexts.get(session)) as flow:
            yield flow


def scope_of(who: SignedIn) -> str | None:
    """The one pool an operator sees; None for everyone else."""
    return pool_scope(who.principal)
