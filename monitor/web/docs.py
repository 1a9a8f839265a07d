"""The API docs, served with the product's own copies of Swagger UI and Redoc (no CDN)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

router = APIRouter()
VENDOR = "/static/vendor"
# Nothing is fetched from elsewhere, not even Redoc's "powered by" logo from its CDN.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'"
)


def _offline(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = CSP
    return response


@router.get("/docs", response_class=HTMLResponse)
def swagger(request: Request) -> HTMLResponse:
    return _offline(
        get_swagger_ui_html(
            openapi_url=request.app.openapi_url or "/openapi.json",
            title=f"{request.app.title} — API",
            swagger_js_url=f"{VENDOR}/swagger-ui-5.35.0-bundle.js",
            swagger_css_url=f"{VENDOR}/swagger-ui-5.35.0.css",
            swagger_favicon_url="/static/favicon.svg",
            swagger_ui_parameters={"validatorUrl": None},
        )
    )


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    return _offline(
        get_redoc_html(
            openapi_url=request.app.openapi_url or "/openapi.json",
            title=f"{request.app.title} — API",
            redoc_js_url=f"{VENDOR}/redoc-2.5.4.standalone.js",
            redoc_favicon_url="/static/favicon.svg",
            with_google_fonts=False,
        )
    )
