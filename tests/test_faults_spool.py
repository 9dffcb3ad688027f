"""The spool on its own: order, durability across a crash, one file per process, idempotent replays on real databases."""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import select

from bot import db
from bot.answers import ANSWER_RECORD, replay_answer, save_answer
from bot.config import ConfigError, load_config
from bot.events import Actor, MessageRef, ReactionAdded
from bot.models import BotAnswer, BotAnswerPart
from bot.outage import DatabaseWatch, unreachable
from bot.scopes import ScopeRegistry
from bot.spool import REJECTED_FILE, Replay, Spool, spool_folder
from moderation.audit import entries
from moderation.models import Case, Report
from moderation.reports import REPORT_RECORD, ReportService
from tests.conftest import ROOT
from tests.moderation_support import harness
from tests.waiting import until


def _files(folder: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        p.name: [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
        for p in sorted(folder.glob("scopebot-spool-*.jsonl"))
    }


class Flaky:
    """A replay target that is 'unreachable' for its first `down` calls, then records what it is given."""

    def __init__(self, down: int = 0, *, broken: set[int] | None = None) -> None:
        self.down = down
        self.broken = broken or set()
        self.written: list[int] = []
        self.calls = 0

    async def __call__(self, data: dict[str, Any]) -> None:
        self.calls += 1
        if self.calls <= self.down:
            raise ConnectionRefusedError(111, "Connect call failed")
        if data["n"] in self.broken:
            raise ValueError(f"record {data['n']} is malformed")
        self.written.append(int(data["n"]))


def test_outages_are_told_apart_from_bugs_and_bad_data() -> None:
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
    assert unreachable(refused) and unreachable(TimeoutError()) and unreachable(db.DatabaseUnavailable("x"))
    locked = OperationalError("INSERT …", {}, sqlite3.OperationalError("database is locked"))
    assert unreachable(locked)
    missing = OperationalError("SELECT …", {}, sqlite3.OperationalError("no such table: moderation_case"))
    assert not unreachable(missing), "a schema problem is a bug, not an outage"
    assert not unreachable(IntegrityError("INSERT …", {}, sqlite3.IntegrityError("UNIQUE constraint failed")))
    assert not unreachable(ValueError("bad data"))
    wrapped = RuntimeError("while filing")
    wrapped.__cause__ = refused
    assert unreachable(wrapped)


async def test_records_are_replayed_in_order_once_the_database_answers(tmp_path: Path) -> None:
    watch = DatabaseWatch()
    spool = Spool(folder=tmp_path, watch=watch)
    target = Flaky(down=3)
    spool.register("thing", target)
    await spool.start()
    try:
        assert not spool.holding
        assert watch.lost(ConnectionRefusedError(111, "refused"), during="a test")
        assert spool.holding, "while the database is known to be away, new writes queue behind"
        for n in range(5):
            await spool.keep("thing", {"n": n})
        assert [r["n"] for r in spool.pending("thing")] == [0, 1, 2, 3, 4]
        assert [e.get("seq") for e in _files(tmp_path)["scopebot-spool-0.jsonl"]] == [1, 2, 3, 4, 5]
        assert await spool.flush(within=30)
        assert target.written == [0, 1, 2, 3, 4] and target.calls == 8
        assert not watch.down and not spool.holding
        assert _files(tmp_path) == {"scopebot-spool-0.jsonl": []}, "emptied once everything is written"
    finally:
        await spool.stop()
    assert _files(tmp_path) == {}, "and removed at a clean stop"


async def test_a_record_that_fails_for_another_reason_is_set_aside_not_lost(tmp_path: Path) -> None:
    spool = Spool(folder=tmp_path, watch=DatabaseWatch())
    target = Flaky(broken={1})
    spool.register("thing", target)
    await spool.start()
    try:
        for n in range(3):
            await spool.keep("thing", {"n": n})
        assert await spool.flush(within=30)
    finally:
        await spool.stop()
    assert target.written == [0, 2]
    [aside] = [json.loads(line) for line in (tmp_path / REJECTED_FILE).read_text().splitlines()]
    assert aside["data"] == {"n": 1} and "malformed" in aside["error"]


CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from bot.outage import DatabaseWatch
    from bot.spool import Spool

    async def main() -> None:
        spool = Spool(folder=Path(sys.argv[1]), watch=DatabaseWatch())
        async def never(data: dict) -> None:
            raise ConnectionRefusedError(111, "the database is away")
        spool.register("thing", never)
        await spool.start()
        for n in range(3):
            await spool.keep("thing", {"n": n})
        # A fourth record torn by the crash: written in part, never fsynced, never acknowledged.
        with open(spool.path, "a") as f:
            f.write('{"seq": 4, "kind": "thing", "at": "2')
        print("kept", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


async def test_records_kept_before_a_crash_are_written_by_the_next_process(tmp_path: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(tmp_path), cwd=ROOT, stdout=subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(child.communicate(), 60)
    assert out.strip() == b"kept" and child.returncode == -9
    spool = Spool(folder=tmp_path, watch=DatabaseWatch())
    target = Flaky()
    spool.register("thing", target)
    await spool.start()
    try:
        assert await spool.flush(within=30)
    finally:
        await spool.stop()
    assert target.written == [0, 1, 2]
    assert _files(tmp_path) == {}


def _orphan(path: Path, *items: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in items), encoding="utf-8")
    return path


def _record(seq: int, n: int) -> dict[str, Any]:
    return {"seq": seq, "kind": "thing", "at": "2030-01-01T00:00:00+00:00", "data": {"n": n}}


async def test_each_live_process_has_its_own_file_and_takes_over_those_dead_ones_left(tmp_path: Path) -> None:
    # Two files left by processes that died during an outage (nobody holds their locks).
    three = _orphan(tmp_path / "scopebot-spool-3.jsonl", _record(1, 30), _record(2, 31), {"done": 1})
    seven = _orphan(tmp_path / "scopebot-spool-7.jsonl", _record(1, 70))
    first = Spool(folder=tmp_path, watch=DatabaseWatch())
    first.register("thing", Flaky(down=10**6))
    await first.start()
    second = Spool(folder=tmp_path, watch=DatabaseWatch())
    second.register("thing", Flaky(down=10**6))
    await second.start()
    try:
        assert first.path == three and not seven.exists(), "one file is continued, the other taken over"
        assert [r["n"] for r in first.pending("thing")] == [31, 70], "only what was not done, in order"
        assert second.path == tmp_path / "scopebot-spool-0.jsonl", "a live process's file is left alone"
        await second.keep("thing", {"n": 1})
        assert [r["n"] for r in second.pending("thing")] == [1]
        await until(lambda: second.watch.down, what="the second process to find its database away")
    finally:
        await second.stop()
        await first.stop()
    assert sorted(_files(tmp_path)) == ["scopebot-spool-0.jsonl", "scopebot-spool-3.jsonl"], "both still hold records"


def test_the_spool_lives_next_to_the_sqlite_file_or_the_config_or_where_configured(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "data"
    assert spool_folder(load_config(write_config(db_url=f"sqlite+aiosqlite:///{elsewhere}/bot.db"))) == elsewhere
    pg = load_config(write_config(db_url="postgresql+asyncpg://postgres@127.0.0.1/x"))
    assert spool_folder(pg) == tmp_path.resolve()
    chosen = write_config(db_url="postgresql+asyncpg://postgres@127.0.0.1/x")
    text = chosen.read_text().replace("[database]\n", '[database]\nspool_dir = "kept"\n', 1)
    chosen.write_text(text)
    assert spool_folder(load_config(chosen)) == tmp_path / "kept"
    monkeypatch.setenv("SCOPEBOT_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1/y")
    assert spool_folder(load_config(chosen)) == tmp_path / "kept", "the URL from the environment keeps the folder"


def test_the_drain_time_at_stop_is_configurable_and_bounded(write_config: Callable[..., Path]) -> None:
    path = write_config()
    assert load_config(path).database.spool_drain_seconds == 5.0
    path.write_text(path.read_text().replace("[database]\n", "[database]\nspool_drain_seconds = 30\n", 1))
    assert load_config(path).database.spool_drain_seconds == 30.0
    path.write_text(path.read_text().replace("spool_drain_seconds = 30", "spool_drain_seconds = -1", 1))
    with pytest.raises(ConfigError, match="spool_drain_seconds"):
        load_config(path)


class Outage:
    """Plays a database outage for the spool's replays: while `away`, every replay finds the database unreachable."""

    def __init__(self, spool: Spool, replays: dict[str, Replay]) -> None:
        self.away = True
        spool.watch.lost(ConnectionRefusedError(111, "refused"), during="a test")
        for kind, replay in replays.items():
            spool.register(kind, functools.partial(self._replay, replay))

    async def _replay(self, replay: Replay, data: dict[str, Any]) -> None:
        if self.away:
            raise ConnectionRefusedError(111, "the database is away (test)")
        await replay(data)


async def test_an_unwritable_spool_folder_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    spool = Spool(folder=blocker / "spool", watch=DatabaseWatch())
    with pytest.raises(ConfigError, match=r"not-a-folder/spool .*\[database\] spool_dir"):
        await spool.start()


async def test_replaying_an_answer_or_a_report_twice_writes_it_once(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        spool = Spool(folder=tmp_path / "spool", watch=DatabaseWatch())
        reports = ReportService(config=h.config, sessions=h.sessions, scopes=ScopeRegistry(h.config), spool=spool)
        outage = Outage(
            spool, {ANSWER_RECORD: functools.partial(replay_answer, h.sessions), REPORT_RECORD: reports.replay}
        )
        await spool.start()
        try:
            place = h.platform.place("general")
            part = MessageRef(place, "a1")
            answer = BotAnswer(
                request_id="r1",
                platform=place.platform,
                workspace=place.workspace,
                channel=place.channel,
                question_message_id="q1",
                author_id="alice",
                question="How much is tuition?",
                answer="$42,300",
                scope="college",
                verdict="answer",
                passages=[{"source": "tuition.md", "text": "Tuition is $42,300.", "score": 1.0}],
            )
            assert await save_answer(h.sessions, answer=answer, parts=[part], spool=spool) is None
            flag = ReactionAdded(target=part, reactor=Actor(place.platform, "bob", "Bob"), emoji="flag")
            assert (await reports.file(platform=h.platform, event=flag)).outcome == "kept"
            assert (await reports.file(platform=h.platform, event=flag)).outcome == "duplicate"
            [kept_answer] = spool.pending(ANSWER_RECORD)
            [kept_report] = spool.pending(REPORT_RECORD)
            filed_at = datetime.fromisoformat(kept_report["filed_at"])
            # Written by hand, twice (as after a crash between a write and its "done" mark), then by the spool.
            for _ in range(2):
                await replay_answer(h.sessions, kept_answer)
                await reports.replay(kept_report)
            outage.away = False
            assert await spool.flush(within=30)
            async with h.sessions() as session:
                answers = list((await session.execute(select(BotAnswer))).scalars())
                parts = list((await session.execute(select(BotAnswerPart))).scalars())
                filed = list((await session.execute(select(Report))).scalars())
                cases = list((await session.execute(select(Case))).scalars())
                log = await entries(session)
        finally:
            await spool.stop()
    assert [(a.question, a.answer, a.passages[0]["source"]) for a in answers] == [
        ("How much is tuition?", "$42,300", "tuition.md")
    ]
    assert [p.message_key for p in parts] == [part.key]
    assert [(r.reporter_id, r.message_key) for r in filed] == [("bob", part.key)]
    assert abs((filed[0].created_at - filed_at).total_seconds()) < 1, "dated when it was filed, not replayed"
    assert [(c.reporters, c.answer_id) for c in cases] == [(1, answers[0].id)]
    assert [e.action for e in log] == ["report.filed"]
    assert [r.user_id for r in h.platform.private] == ["bob"], "acknowledged once"


async def test_flags_kept_during_an_outage_count_against_the_hourly_limit(tmp_path: Path, sqlite_url: str) -> None:
    async with harness(tmp_path, sqlite_url, reports_per_hour=2) as h:
        spool = Spool(folder=tmp_path / "spool", watch=DatabaseWatch())
        reports = ReportService(config=h.config, sessions=h.sessions, scopes=ScopeRegistry(h.config), spool=spool)
        Outage(spool, {REPORT_RECORD: reports.replay})
        await spool.start()
        try:
            outcomes = []
            for n in range(3):
                ref = h.platform.post_as(h.member("alice"), h.platform.place("general"), f"spam {n}")
                outcomes.append((await reports.file(platform=h.platform, event=h.flag(ref, "bob"))).outcome)
        finally:
            await spool.stop()
    assert outcomes == ["kept", "kept", "rate_limited"]
    assert [r.user_id for r in h.platform.private] == ["bob", "bob", "bob"]
    assert "many reports" in h.platform.private[-1].text
