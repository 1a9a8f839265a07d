"""Local stand-ins for the people's channels: an HTTP receiver for Apprise's json:// and an
SMTP server, both on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.test_durability import free_port


@dataclass
class Receiver:
    """Answers each POST with the next status of `script` (then 200), and keeps what it
    answered 200 to: a notice counts as received only when it was acknowledged."""

    script: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # time.time() of each acknowledgement
    refused: int = 0
    # When set, a request whose title contains `hold_title` waits here before answering 503.
    hold_title: str | None = None
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/notify"

    def titles(self) -> list[str]:
        return [m["title"] for m in self.received]

    def wait_for(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
        return self.received


@contextmanager
def http_receiver(script: list[int] | None = None) -> Iterator[Receiver]:
    receiver = Receiver(script=list(script or []))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if receiver.hold_title and receiver.hold_title in str(body.get("title", "")):
                receiver.hold_title = None
                receiver.held.set()
                receiver.release.wait(60)
                self._answer(503)
                return
            with lock:
                status = receiver.script.pop(0) if receiver.script else 200
            if status != 200:
                receiver.refused += 1
            self._answer(status)
            if status == 200:
                with receiver.arrived:
                    receiver.paths.append(self.path)
                    receiver.times.append(time.time())
                    receiver.received.append(body)
                    receiver.arrived.notify_all()

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    # serve_forever looks for shutdown() every poll_interval: at its 0.5 s, the end of every
    # test with a receiver waited a quarter of a second on average.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()


@contextmanager
def smtp_server() -> Iterator[tuple[int, list[bytes]]]:
    """An aiosmtpd server on loopback; yields its port and the raw messages it accepted."""
    from aiosmtpd.controller import Controller

    messages: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            messages.append(envelope.content)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, messages
    finally:
        controller.stop()
