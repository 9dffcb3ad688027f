"""Kill the bot (SIGKILL) at each step of routing, restart it, and check no card is lost or posted twice.

Bots run as separate processes (`tests/moderation_child.py`: the real app, scheduler and router) against
a loopback card recorder that outlives them; the recorder kills the bot at a chosen moment of a chosen
platform call. Two-process test: two bots share one PostgreSQL database and route 500 cases.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot import db
from moderation.audit import entries
from moderation.models import Case, CaseState, Report
from tests.card_recorder import KillPlan, Recorder, RecorderServer
from tests.conftest import ROOT
from tests.moderation_support import write_mod_config

#: Platform calls to kill at, and when: before the platform stores anything, after it stored but before it
#: answers, and just after it answered (while the bot records the outcome in the database).
KILL_POINTS = [
    ("post_card", "before"),
    ("post_card", "stored"),
    # The restart after a kill mid-post looks for the card it may have posted: kill during that too.
    ("find_card", "replied"),
    ("post_card", "replied"),
    ("update_card", "before"),
    ("update_card", "stored"),
    ("update_card", "replied"),
    ("fetch", "replied"),  # while filing a report: after reading the message, before committing
    ("private", "replied"),  # after the report is committed, while acknowledging it
]
CHILD_TIMEOUT = 120.0

Flag = tuple[str, str, str]


def _spawn(config: Path, url: str, flags: list[Flag], folder: Path) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    plan = folder / "flags.json"
    plan.write_text(json.dumps(flags), encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.moderation_child", str(config), url, str(plan)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(proc: subprocess.Popen[bytes]) -> int:
    try:
        _out, err = proc.communicate(timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
        raise AssertionError(f"bot process hung:\n{err.decode(errors='replace')[-3000:]}") from None
    if proc.returncode not in (0, -9):
        raise AssertionError(f"bot process failed ({proc.returncode}):\n{err.decode(errors='replace')[-3000:]}")
    return proc.returncode


async def _migrate(url: str) -> None:
    engine = db.create_engine(url)
    try:
        await db.upgrade(engine)
    finally:
        await engine.dispose()


async def _check(url: str, rec: Recorder, flags: list[Flag]) -> dict[int, int]:
    """Every flag is one report; every case routed once, its card current; returns reporters per case."""
    engine = db.create_engine(url)
    try:
        async with db.sessionmaker(engine)() as session:
            cases = list((await session.execute(select(Case).order_by(col(Case.id)))).scalars())
            reports = list((await session.execute(select(Report))).scalars())
            log = await entries(session)
    finally:
        await engine.dispose()
    wanted: dict[str, set[str]] = defaultdict(set)
    for channel, message_id, reporter in flags:
        wanted[f"recorder:w1:{channel}:{message_id}"].add(reporter)
    got: dict[str, set[str]] = defaultdict(set)
    for r in reports:
        got[r.message_key].add(r.reporter_id)
    assert got == wanted, "a report was lost or invented"
    assert len(reports) == sum(len(v) for v in wanted.values())
    assert {c.message_key for c in cases} == set(wanted)
    posts = rec.posts_per_case()
    for case in cases:
        assert case.state == CaseState.ROUTED, case
        assert not (case.dirty or case.card_pending) and case.lease_token is None, case
        assert case.card_revision == case.revision, case
        assert case.reporters == len(wanted[case.message_key]), case
        assert posts.get(case.id or 0) == 1, f"case {case.id} card posted {posts.get(case.id or 0, 0)} times"
        card = rec.cards[case.card_message_id or ""]
        assert card["case_id"] == case.id
        assert card["fields"]["Reporters"].startswith(f"{case.reporters} "), (card, case.reporters)
    assert len(posts) == len(cases)
    routed = [e.case_id for e in log if e.action == "case.routed"]
    assert sorted(i or 0 for i in routed) == sorted(c.id or 0 for c in cases), "routing audited once per case"
    assert sum(e.action == "report.filed" for e in log) == len(reports)
    return {c.id or 0: c.reporters for c in cases}


@pytest.mark.slow
def test_sigkill_at_every_step_of_routing_loses_and_duplicates_nothing(tmp_path: Path, db_url: str) -> None:
    rng = random.Random(4)
    asyncio.run(_migrate(db_url))
    config = write_mod_config(
        tmp_path, db_url, interval=0.3, lease=3, hide_threshold=99, escalate_reporters=99, reports_per_hour=999
    )
    flags: list[Flag] = []
    rounds = [*KILL_POINTS, *[("random", "")] * 4]
    with RecorderServer() as server:
        rec = server.recorder
        messages: list[str] = []

        def run_round(n: int, kind: str, phase: str, nth: int) -> None:
            nonlocal flags
            # New cases, and new reporters on cases routed earlier (their cards must be updated in place).
            new = [rec.add_message("general", f"author{len(messages) + i}", f"message {n}.{i}") for i in range(3)]
            earlier = messages or new
            messages.extend(new)
            flags += [("general", mid, f"reporter{n}") for mid in new]
            flags += [("general", mid, f"late{n}") for mid in rng.sample(earlier, k=min(3, len(earlier)))]
            flags = list(dict.fromkeys(flags))
            rec.plan = None if kind == "random" else KillPlan(kind, phase, nth=nth)
            proc = _spawn(config, server.url, flags, tmp_path)
            if kind == "random":
                time.sleep(rng.uniform(1.0, 3.0))
                proc.kill()
            _finish(proc)

        for n, (kind, phase) in enumerate(rounds):
            run_round(n, kind, phase, nth=1 if kind == "find_card" else rng.randint(1, 2))
        # Each deterministic kill point must really kill a bot at least once. Whether a round makes the call a
        # point waits for (a card update needs the late reporter to arrive after the card was posted) depends on
        # timing, so a point that did not fire gets a few more rounds.
        for kind, phase in KILL_POINTS:
            for extra in range(3):
                if (kind, phase) in {(k, p) for k, p, _pid in rec.kills}:
                    break
                run_round(len(rounds) + 3 * KILL_POINTS.index((kind, phase)) + extra, kind, phase, nth=1)
        fired = {(k, p) for k, p, _pid in rec.kills}
        assert fired >= set(KILL_POINTS), set(KILL_POINTS) - fired
        rec.plan = None
        assert _finish(_spawn(config, server.url, flags, tmp_path)) == 0
        reporters = asyncio.run(_check(db_url, rec, flags))
    assert len(reporters) == len(messages) and rec.updates > 0


@pytest.mark.slow
def test_two_processes_on_one_postgres_route_500_cases_once_each(tmp_path: Path, postgres_url: str) -> None:
    asyncio.run(_migrate(postgres_url))
    config = write_mod_config(tmp_path, postgres_url, interval=0.3, lease=10, reports_per_hour=999)
    with RecorderServer() as server:
        rec = server.recorder
        rec.latency = 0.005  # each card post takes a moment, so the two processes overlap
        flags = [("general", rec.add_message("general", f"a{i}", f"m{i}"), f"r{i % 7}") for i in range(500)]
        # Each process files half the flags itself, then both route whatever is open.
        first = _spawn(config, server.url, flags[::2], tmp_path / "one")
        second = _spawn(config, server.url, flags[1::2], tmp_path / "two")
        assert _finish(first) == 0 and _finish(second) == 0
        reporters = asyncio.run(_check(postgres_url, rec, flags))
    assert len(reporters) == 500
    per_process: dict[int, int] = defaultdict(int)
    for _case, _card, pid in rec.posts:
        per_process[pid] += 1
    assert set(per_process) == {first.pid, second.pid}, dict(per_process)
