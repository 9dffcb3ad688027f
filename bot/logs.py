"""Logging setup: one line per record, with the request id of the question being handled."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from typing import Any

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

#: Patterns of secrets that must never reach a log line (Slack and Discord tokens, URL passwords).
_SECRETS = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|[MN][A-Za-z\d_-]{23,27}\.[\w-]{6}\.[\w-]{27,40}|(?<=://)[^/\s:@]+:[^/\s@]+(?=@))"
)


def redact(text: str) -> str:
    """`text` with anything that looks like a token or a URL password replaced by `***`."""
    return _SECRETS.sub("***", text)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(out, ensure_ascii=False))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record is emitted, not the stream it was when logging was set up:
    a stderr replaced later (a test's capture, an embedding program's redirect) is followed, and a closed one is
    never written to."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # emit runs under the handler's lock
        super().emit(record)


def setup_logging(*, level: str = "INFO", json_lines: bool = False) -> None:
    """Log to stderr; human-readable lines by default, JSON lines for log shippers."""
    handler = _StderrHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    if json_lines:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in (
        "alembic",
        "apscheduler",
        "aiosqlite",
        "sqlalchemy.engine",
        "discord",
        "slack_bolt",
        "slack_sdk",
        "httpx",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
