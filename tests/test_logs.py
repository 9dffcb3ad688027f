"""Logging set up once follows stderr when it is replaced, and never writes to a closed one."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.logs import setup_logging


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_log_lines_follow_a_replaced_stderr(root_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    setup_logging()
    # Not a "scopebot.*" logger: slack-bolt names its app's logger after the app ("scopebot") and copies the root
    # level into it when an app is built, so in a process that built one earlier, its children keep that level.
    log = logging.getLogger("bot.test_logs")
    log.info("one token xoxb-123-secret")
    # The stream logging was set up with goes away (a test's capture ends, a daemon redirects its stderr).
    monkeypatch.setattr("sys.stderr", second)
    first.close()
    log.info("two")
    text = second.getvalue()
    assert "two" in text and "Logging error" not in text and "one" not in text
