"""The database goes away while the bot runs: nothing filed meanwhile is lost, nothing is posted twice.

These tests stop a real PostgreSQL server (`tests/pg_server.py`: a private cluster, so the shared test
server and everyone using it are left alone) under the real app — the dispatcher, the pipeline with the
tiny model, moderation with its APScheduler job table in the same database — on the in-memory platform.
The long outage (30 s, as the issue asks) is one test; the crash during an outage uses a short one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from bot.app import build_app
from bot.config import load_config
from moderation.models import CaseState
from tests.conftest import ROOT
from tests.faults_support import (
    answers,
    ask,
    cards_per_case,
    cases,
    edit_config,
    flag,
    logged,
    post,
    reports,
)
from tests.moderation_support import FindingMemoryPlatform
from tests.pg_server import PostgresServer, accepting, unavailable
from tests.waiting import until

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 30.0


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL server this module may stop and start."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"cannot stop a PostgreSQL server for real here: {reason}")
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
async def outage_db(pg_server: PostgresServer) -> AsyncIterator[str]:
    """A fresh database on the private server; the server is running again after the test, whatever happened."""
    if not pg_server.running:
        pg_server.start()
    try:
        yield await pg_server.create_database(f"scopebot_f_{uuid.uuid4().hex[:10]}")
    finally:
        if not pg_server.running:
            pg_server.start()
            await accepting(pg_server)


def outage_config(write_config: Callable[..., Path], url: str, **model: Path) -> Path:
    """The shared test config on `url`, with a short router lease (a run cut off by the outage holds cases briefly)."""
    return edit_config(
        write_config(db_url=url, **model),
        **{"router_interval_seconds = 1": "router_interval_seconds = 1\nrouter_lease_seconds = 3"},
    )


async def test_reports_and_answers_made_while_postgresql_is_stopped_for_30_s_are_written_once_when_it_returns(
    write_config: Callable[..., Path],
    tiny_gguf: Path,
    pg_server: PostgresServer,
    outage_db: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    config = load_config(outage_config(write_config, outage_db, model=tiny_gguf))
    mem = FindingMemoryPlatform()
    app = build_app(config, platforms=[mem])
    await app.start()
    try:
        assert app.spool is not None
        # Before: an answer, a member's message with a routed card, one flag on the answer.
        q1 = await ask(mem, "alice", "How much is tuition?")
        [a1] = mem.replies_to(q1)
        m1 = post(mem, "bob", "selling exam answers, DM me")
        await flag(mem, "carol", m1)
        await until(lambda: cards_per_case(mem), what="the first card")
        await flag(mem, "dave", a1.ref)
        acks_before = len(mem.private)

        pg_server.stop()
        stopped = time.monotonic()
        caplog.clear()
        q2 = await ask(mem, "erin", "What majors do you offer?")
        [a2] = mem.replies_to(q2)  # questions are still answered
        m2 = post(mem, "bob", "another exam answers offer")
        await flag(mem, "frank", a1.ref)  # a second reporter: the answer is hidden once this is written
        await flag(mem, "frank", a1.ref)  # the same person again: nothing
        await flag(mem, "gina", m1)  # a late reporter on a routed case: its card is updated, not re-posted
        await flag(mem, "gina", m2)
        await flag(mem, "harry", a2.ref)  # a flag on an answer whose own record is still kept
        acks = [r.user_id for r in mem.private[acks_before:]]
        assert acks == ["frank", "gina", "gina", "harry"]
        assert app.spool.backlog == 5  # one answer record, four reports
        assert app.spool.path is not None and len(app.spool.path.read_text().splitlines()) >= 5
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        assert set(cards_per_case(mem)) == {1}, "nothing is routed while the database is away"
        during = list(caplog.records)

        pg_server.start()
        await until(lambda: app.spool is not None and app.spool.backlog == 0, within=30, what="the kept records")

        async def settled() -> bool:
            found = await cases(app)
            return len(found) == 4 and all(
                c.state == CaseState.ROUTED and not (c.dirty or c.card_pending or c.hide_pending) for c in found
            )

        await until(settled, within=30, what="every case routed and the hidden answer edited")
        after = list(caplog.records)
        records, got, found = await answers(app), await reports(app), {c.message_key: c for c in await cases(app)}
    finally:
        await app.stop()

    # Every flag is in the database exactly once, the answer made during the outage too.
    assert [(a.question_message_id, a.answer_key) for a in records] == [
        (q1.message_id, a1.ref.key),
        (q2.message_id, a2.ref.key),
    ]
    assert got == {
        (m1.key, "carol"): 1,
        (a1.ref.key, "dave"): 1,
        (a1.ref.key, "frank"): 1,
        (m1.key, "gina"): 1,
        (m2.key, "gina"): 1,
        (a2.ref.key, "harry"): 1,
    }
    assert found[m1.key].reporters == 2 and found[a1.ref.key].reporters == 2
    assert found[a2.ref.key].answer_id == records[1].id, "the flag on the kept answer traces back to it"
    # Each case's card was posted once; the routed one was updated in place.
    assert cards_per_case(mem) == {c.id: 1 for c in found.values()}
    card_of_m1 = next(card for card in mem.cards.values() if card.case_id == found[m1.key].id)
    assert dict(card_of_m1.fields)["Reporters"].startswith("2")
    assert mem.messages[a1.ref.message_id].text == config.moderation.hidden_note
    # The outage was logged once when noticed and once when over, with no tracebacks on the way.
    assert len(logged(during, "the database is unreachable")) == 1
    assert not [r.getMessage() for r in during if r.levelno >= logging.ERROR]
    assert not logged(during, "Error getting due jobs"), "APScheduler's own per-interval warning"
    assert len(logged(after, "the database is reachable again")) == 1
    assert not [r.getMessage() for r in after if r.levelno >= logging.ERROR]


async def _line(proc: asyncio.subprocess.Process, log: Path, *, within: float) -> dict[str, object]:
    """The next JSON line the child prints; its log on failure."""
    assert proc.stdout is not None
    try:
        raw = await asyncio.wait_for(proc.stdout.readline(), within)
    except TimeoutError:
        raw = b""
    if not raw:
        raise AssertionError(f"the bot process said nothing (status {proc.returncode}):\n{_tail(log)}")
    data: dict[str, object] = json.loads(raw)
    return data


def _tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-3000:]


def _spools(folder: Path) -> dict[str, list[str]]:
    """The lines of each spool file in `folder`."""
    return {p.name: p.read_text(encoding="utf-8").splitlines() for p in folder.glob("scopebot-spool-*.jsonl")}


async def _spawn(config: Path, mode: str, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as err:  # the child holds its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.faults_child",
            str(config),
            mode,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
        )


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()


async def test_a_bot_killed_during_an_outage_writes_what_it_kept_after_its_restart(
    write_config: Callable[..., Path], pg_server: PostgresServer, outage_db: str, tmp_path: Path
) -> None:
    path = outage_config(write_config, outage_db)
    log = tmp_path / "bot.log"
    first = await _spawn(path, "outage", log)
    try:
        await _line(first, log, within=300)
        pg_server.stop()
        assert first.stdin is not None
        first.stdin.write(b"go\n")
        await first.stdin.drain()
        kept = await _line(first, log, within=120)
    finally:
        await _kill(first)  # SIGKILL: no clean shutdown, nothing flushed by the app
    assert first.returncode == -signal.SIGKILL
    assert kept["kept"] == 4 and kept["acks"] == ["carol", "dave", "erin"]
    assert "Sources:" in str(kept["answer_text"]) or "From my sources" in str(kept["answer_text"])
    assert [len(lines) for lines in _spools(tmp_path).values()] == [4]

    pg_server.start()
    await accepting(pg_server)
    second = await _spawn(path, "recover", log)
    try:
        routed = await _line(second, log, within=300)
        assert await asyncio.wait_for(second.wait(), 60) == 0
    finally:
        await _kill(second)

    config = load_config(path)
    app = build_app(config)
    try:
        got, found, records = await reports(app), await cases(app), await answers(app)
    finally:
        await app.engine.dispose()
    answer, message = str(kept["answer"]), str(kept["message"])
    assert got == {(message, "carol"): 1, (message, "dave"): 1, (answer, "erin"): 1}
    assert [r.answer_key for r in records] == [answer]
    assert sorted(c.message_key for c in found) == sorted([answer, message])
    assert all(c.state == CaseState.ROUTED for c in found)
    assert routed["cards"] == {str(c.id): 1 for c in found}
    assert not _spools(tmp_path), "a spool with nothing waiting is removed"
    assert "cannot be written" not in _tail(log)
