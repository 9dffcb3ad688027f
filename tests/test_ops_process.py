"""`scopebot run` as a real process: JSON logs with a request id per question, /healthz and /metrics, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing, suppress
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.pipeline import RETRY_TEXT, SHUTDOWN_TEXT
from tests.conftest import ROOT
from tests.gguf_factory import write_llama_gguf
from tests.ops_support import write_slow_gguf

#: Upper bound for anything to happen, start-up included (not a timing assertion: it only fails a hang).
WAIT = 240.0
OPS_LINE = re.compile(r"^ops: health at http://127\.0\.0\.1:(\d+)/healthz")


class Bot:
    """A `scopebot --json-logs run` process with the console on a pipe; stdout and stderr collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._collect(proc.stdout, self.out)),
            asyncio.create_task(self._collect(proc.stderr, self.err)),
        ]
        self.port = 0

    @staticmethod
    async def _collect(stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            into.append(line.decode("utf-8", errors="replace").rstrip("\n"))

    def logs(self) -> list[dict[str, Any]]:
        """Every stderr line, parsed (each must be one JSON object)."""
        return [json.loads(line) for line in self.err]

    async def until(self, check: Callable[[], Any], what: str) -> None:
        async with asyncio.timeout(WAIT):
            while True:
                result = check()
                if asyncio.iscoroutine(result):
                    result = await result
                if result:
                    return
                if self.proc.returncode is not None:
                    raise AssertionError(
                        f"scopebot exited ({self.proc.returncode}) before {what}:\n" + "\n".join(self.err[-20:])
                    )
                await asyncio.sleep(0.02)

    async def started(self) -> None:
        """Wait for the ops listener's port, then until /healthz says every component is up."""

        def port() -> bool:
            for line in self.err:
                m = OPS_LINE.match(json.loads(line)["msg"]) if line.startswith("{") else None
                if m:
                    self.port = int(m.group(1))
                    return True
            return False

        await self.until(port, "the ops listener started")

        async def healthy() -> bool:
            return (await self.health())[0] == 200

        await self.until(healthy, "it became healthy")

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{self.port}{path}") as r:
            return r.status, await r.text()

    async def health(self) -> tuple[int, dict[str, Any]]:
        status, text = await self.get("/healthz")
        return status, json.loads(text)

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = await self.get("/metrics")
        assert status == 200
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode("utf-8"))

    def replies_to(self, n: int) -> list[str]:
        return [line for line in self.out if f" scopebot ↳[{n}]: " in line]

    async def exit_code(self) -> int:
        async with asyncio.timeout(WAIT):
            code = await self.proc.wait()
            await asyncio.gather(*self._readers)
        return code


@asynccontextmanager
async def running(config: Path, cwd: Path) -> AsyncIterator[Bot]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCOPEBOT_OPS_PORT": "0"}
    for var in (
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_SIGNING_SECRET",
        "DISCORD_TOKEN",
        "SCOPEBOT_DATABASE_URL",
        "SCOPEBOT_OPS_HOST",
    ):
        env.pop(var, None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--json-logs",
        "run",
        "--config",
        str(config),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
    )
    bot = Bot(proc)
    try:
        await bot.started()
        yield bot
    finally:
        if proc.returncode is None:
            with suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        for task in bot._readers:
            task.cancel()
        await asyncio.gather(*bot._readers, return_exceptions=True)


def worker_running(logs: list[dict[str, Any]]) -> bool:
    """Whether the model worker process the bot started is still running."""
    pid = int(re.findall(r"worker pid (\d+)", next(e["msg"] for e in logs if e["msg"].startswith("model loaded")))[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def closed_cleanly(db: Path) -> bool:
    """Whether the bot closed the database: SQLite folds its write-ahead log back and deletes it when the last connection closes."""
    return db.exists() and not db.with_name(db.name + "-wal").exists()


def answers(db: Path) -> list[tuple[str, str, str]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("select request_id, verdict, question from bot_answer order by id").fetchall()


@pytest.fixture(scope="module")
def slow_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_slow_gguf(tmp_path_factory.mktemp("slow"))


async def test_json_logs_metrics_and_sigterm_letting_the_answer_in_flight_finish(
    tmp_path: Path, write_config: Callable[..., Path], slow_gguf: Path
) -> None:
    config = write_config(model=slow_gguf)
    # A fixed sampling seed: the random-weights model's word salad is otherwise, now and then, withheld by the
    # answer screen, and the third record reads "block" (seen once in CI).
    config.write_text(
        config.read_text(encoding="utf-8").replace("max_new_tokens = 24", "max_new_tokens = 48\nseed = 7"),
        encoding="utf-8",
    )
    async with running(config, tmp_path) as bot:
        status, doc = await bot.health()
        assert status == 200
        assert doc["model"]["state"] == "loaded" and doc["platforms"] == {"console": "connected"}
        assert doc["database"] == {"state": "ok"}

        bot.say("@scopebot How much is tuition?")
        bot.say("@scopebot Write me a poem about the sea")
        await bot.until(lambda: bot.replies_to(1) and bot.replies_to(3), "both questions were answered")
        assert bot.replies_to(3) == ["[4] dm scopebot ↳[3]: That's not a college data question."]
        labels = (("platform", "console"), ("scope", "college"))

        async def both_recorded() -> bool:
            # A reply is shown before its record is written; the verdict is counted once it is.
            return sum(v for (name, _), v in (await bot.metrics()).items() if name == "scopebot_verdicts_total") == 2

        await bot.until(both_recorded, "both answers were recorded")
        m = await bot.metrics()
        assert m[("scopebot_questions_total", labels)] == 2
        assert m[("scopebot_verdicts_total", (*labels, ("verdict", "answer")))] == 1
        assert m[("scopebot_verdicts_total", (*labels, ("verdict", "refuse")))] == 1
        assert m[("scopebot_question_stage_seconds_count", (("stage", "model_generation"),))] == 1

        # A third question; SIGTERM once the model is working on it. The answer finishes, then the bot exits.
        bot.say("@scopebot When is the Regular Decision deadline?")

        async def generating() -> bool:
            return (await bot.metrics())[("scopebot_model_generating", ())] == 1

        await bot.until(generating, "the model started on the third question")
        bot.proc.send_signal(signal.SIGTERM)
        assert await bot.exit_code() == 0, "\n".join(bot.err[-20:])

    assert closed_cleanly(tmp_path / "scopebot.db")
    [reply] = bot.replies_to(5)
    assert RETRY_TEXT not in reply
    rows = answers(tmp_path / "scopebot.db")
    assert [v for _, v, _ in rows] == ["answer", "refuse", "answer"]

    logs = bot.logs()
    assert all({"ts", "level", "logger", "request_id", "msg"} <= set(entry) for entry in logs)
    assert not worker_running(logs)
    assert not any("Traceback" in entry["msg"] or "exc" in entry for entry in logs)
    # Each question's log line carries its request id, which is also the id on its provenance record.
    finished = [e for e in logs if e["msg"].startswith("question ")]
    assert [e["msg"].split()[1].rstrip(":") for e in finished] == [e["request_id"] for e in finished]
    assert [e["request_id"] for e in finished] == [rid for rid, _, _ in rows]
    assert len({rid for rid, _, _ in rows}) == 3
    # Lines outside any question carry no request id.
    assert next(e for e in logs if OPS_LINE.match(e["msg"]))["request_id"] == "-"


async def test_sigterm_cancels_an_answer_that_cannot_finish_in_the_drain_time_and_exits_cleanly(
    tmp_path: Path, write_config: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A model that never stops by itself, asked for far more text than it can write in the 10 s drain time.
    endless = write_llama_gguf(
        tmp_path_factory.mktemp("endless") / "endless.gguf",
        n_layer=6,
        n_embd=384,
        n_ff=1024,
        n_head=6,
        n_ctx=8192,
        eos_bias=-60.0,
    )
    config = write_config(model=endless)
    text = config.read_text(encoding="utf-8")
    text = text.replace("max_new_tokens = 24", "max_new_tokens = 7000").replace(
        "context_length = 2048", "context_length = 8192"
    )
    config.write_text(text.replace("timeout_seconds = 60", "timeout_seconds = 600"), encoding="utf-8")
    async with running(config, tmp_path) as bot:
        bot.say("@scopebot How much is tuition?")

        async def generating() -> bool:
            return (await bot.metrics())[("scopebot_model_generating", ())] == 1

        await bot.until(generating, "the model started")
        bot.proc.send_signal(signal.SIGTERM)
        assert await bot.exit_code() == 0, "\n".join(bot.err[-20:])

    assert closed_cleanly(tmp_path / "scopebot.db")
    # The member is told the answer was cut short by the restart (the console shows no partial text).
    [notice] = bot.replies_to(1)
    assert notice.endswith(SHUTDOWN_TEXT)
    assert answers(tmp_path / "scopebot.db") == []
    logs = bot.logs()
    assert not any("exc" in e or e["level"] in ("ERROR", "CRITICAL") for e in logs)
    assert not worker_running(logs)


SECRETS_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from bot.logs import request_id, setup_logging
    setup_logging(json_lines=sys.argv[1] == "json")
    log = logging.getLogger("scopebot.check")
    request_id.set("q-42")
    try:
        raise ConnectionError("cannot reach postgresql+asyncpg://bot:pa55-word@db.internal/scopebot")
    except ConnectionError:
        log.exception("slack answered %s for %s", "invalid_auth", "xoxb-1111-2222-abcdEFGH")
    request_id.set("-")
    log.warning("discord rejected MTIzNDU2Nzg5MDEyMzQ1Njc4OTA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456 and xapp-1-A0-99-ff00")
    """
)


@pytest.mark.parametrize("mode", ["json", "text"])
def test_log_lines_hide_tokens_and_passwords_even_inside_tracebacks(mode: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SECRETS_SCRIPT, mode], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True
    )
    for secret in ("pa55-word", "xoxb-1111", "xapp-1-A0", "MTIzNDU2Nzg5"):
        assert secret not in proc.stderr
    assert "postgresql+asyncpg://***@db.internal/scopebot" in proc.stderr
    if mode == "text":
        assert "[q-42] slack answered invalid_auth for ***" in proc.stderr
        return
    first, second = (json.loads(line) for line in proc.stderr.splitlines())
    assert (first["request_id"], first["level"], first["msg"]) == (
        "q-42",
        "ERROR",
        "slack answered invalid_auth for ***",
    )
    assert "ConnectionError" in first["exc"]
    assert (second["request_id"], second["msg"]) == ("-", "discord rejected *** and ***")
