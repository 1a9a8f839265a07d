"""Notices go to a local HTTP receiver through Apprise's json:// in these tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.core.settings import Settings
from tests.conftest import CONFIG
from tests.notifications.receivers import Receiver, http_receiver

PUBLIC_URL = "https://sla.example.gov.cn"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as r:
        yield r


@pytest.fixture
def settings(db_url: str, tmp_path: Path, receiver: Receiver) -> Settings:
    return Settings(
        database_url=db_url,
        config_dir=CONFIG,
        evidence_dir=tmp_path / "evidence",
        notify_urls=receiver.url,
        public_url=PUBLIC_URL,
    )
