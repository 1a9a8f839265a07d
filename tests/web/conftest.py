"""A real server on a free port, people with passwords, and headless Chromium to drive it."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from monitor.auth import service as auth_service
from monitor.auth.service import create_user
from monitor.core.clock import FixedClock
from monitor.core.db import session_scope
from tests.conftest import unavailable

CHROMIUM = os.environ.get("SLAMON_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
PASSWORD = "correct horse battery"
PEOPLE = {
    "op2-zhang": ("operator", "pool2"),
    "op1-li": ("operator", "pool1"),
    "jianli-wang": ("supervisor", None),
    "admin-chen": ("admin", None),
    "pingjia-zhao": ("evaluator", None),
}


class _HashedOnce:
    """The password hasher with PASSWORD's hash made once: argon2id costs about 0.2 s a hash by
    design, and `people` made five before each of some forty tests. The hash is the real one
    (the library's defaults, as the product makes it), so logging in still verifies it."""

    def __init__(self) -> None:
        self.real = auth_service._hasher
        self.hashed = self.real.hash(PASSWORD)

    def hash(self, password: str) -> str:
        return self.hashed if password == PASSWORD else self.real.hash(password)


@pytest.fixture(scope="session")
def hashed_once() -> _HashedOnce:
    return _HashedOnce()


@pytest.fixture
def people(
    engine: Engine, clock: FixedClock, hashed_once: _HashedOnce, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """One account per role; name → password."""
    with session_scope(engine) as session, monkeypatch.context() as patched:
        patched.setattr(auth_service, "_hasher", hashed_once)  # only while they are made
        for name, (role, pool) in PEOPLE.items():
            create_user(
                session,
                name=name,
                password=PASSWORD,
                role=role,
                pool=pool,
                known_pools=["pool1", "pool2"],
                now=clock.now(),
            )
    return dict.fromkeys(PEOPLE, PASSWORD)


@pytest.fixture
def live(app: FastAPI) -> Iterator[str]:
    """The application served by uvicorn on a socket bound before it starts (requests queue in
    the backlog until the server is up), once its start-up has written what it writes: the
    test's own fixtures (`ctx`) store the same policy versions, and must not race it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - depends on the machine
        unavailable("the playwright package is not installed")
    if not Path(CHROMIUM).exists():
        unavailable(f"no Chromium at {CHROMIUM} (Debian package chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, live: str) -> Iterator[Any]:
    """A fresh browser context at a laptop's screen size, in Chinese, on Beijing time."""
    context = browser.new_context(
        base_url=live,
        viewport={"width": 1366, "height": 768},
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
    )
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    context.close()


def login(page: Any, name: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("form[action='/login'] button[type=submit]")
    assert "/login" not in page.url, page.inner_text("main")


def screenshot(page: Any, name: str) -> None:
    """Keep a full-page picture of what the user saw (not committed)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
