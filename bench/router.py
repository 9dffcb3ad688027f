"""Moderation router benchmark: flag → review-card latency, and cases routed per second with 1 and 2 processes.

    python bench/router.py [--flags 200] [--intervals 1,5,30] [--cases 1000] [--postgres URL]

Latency: the whole bot (as `scopebot run` builds it, with the real APScheduler job) on an in-memory
platform; flags arrive at random moments and each card's first post is timed. The target is the
router interval plus 2 s. Throughput: N open cases in PostgreSQL, routed by 1 or 2 bot processes
(`tests/moderation_child.py`) to the loopback card recorder; timed from the first card post to the last.
Results are appended to bench/RESULTS.md with the machine and date.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import ROOT, CpuWatch, append_results, table
from sqlmodel import select

from bot import db
from bot.app import build_app
from bot.config import load_config
from bot.events import MessageRef, ReactionAdded, ReviewCard
from moderation.models import Case, CaseEvidence
from tests.card_recorder import RecorderServer
from tests.moderation_support import FindingMemoryPlatform, write_mod_config

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


class TimedPlatform(FindingMemoryPlatform):
    """The in-memory platform, noting when each case's card is first posted."""

    def __init__(self) -> None:
        super().__init__(moderators={"mod"})
        self.first_post: dict[int, float] = {}

    async def post_review_card(self, card: ReviewCard, *, existing: MessageRef | None = None) -> MessageRef:
        ref = await super().post_review_card(card, existing=existing)
        self.first_post.setdefault(card.case_id, time.monotonic())
        return ref


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def latency(db_url: str, *, interval: float, flags: int, folder: Path) -> dict[str, float]:
    """Flag `flags` messages at random moments; seconds from each flag to its card."""
    config = load_config(write_mod_config(folder, db_url, interval=interval, reports_per_hour=10_000))
    platform = TimedPlatform()
    app = build_app(config, platforms=[platform])
    await app.start()
    flagged: dict[str, float] = {}
    try:
        span = max(10.0, 4 * interval)
        rng = random.Random(7)
        moments = sorted(rng.uniform(0, span) for _ in range(flags))
        start = time.monotonic()
        for n, at in enumerate(moments):
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))
            ref = platform.post_as(platform.actor(f"author{n}"), platform.place("general"), f"message {n}")
            flagged[ref.key] = time.monotonic()
            await app.dispatcher.handle(platform, ReactionAdded(ref, platform.actor(f"reporter{n % 13}"), "flag"))
        deadline = time.monotonic() + interval * 3 + 30
        while len(platform.first_post) < flags and time.monotonic() < deadline:  # noqa: ASYNC110 - polling the fake
            await asyncio.sleep(0.05)
        async with app.sessions() as session:
            keys: dict[int, str] = dict((await session.execute(select(Case.id, Case.message_key))).all())
    finally:
        await app.stop()
    lat = [platform.first_post[cid] - flagged[key] for cid, key in keys.items() if cid in platform.first_post]
    return {
        "posted": len(lat),
        "p50": statistics.median(lat),
        "p99": _pct(lat, 0.99),
        "max": max(lat),
    }


async def _seed(url: str, cases: int) -> None:
    engine = db.create_engine(url)
    try:
        await db.upgrade(engine)
        async with db.sessionmaker(engine)() as session, session.begin():
            for i in range(cases):
                case = Case(
                    message_key=f"recorder:w1:general:{i}",
                    platform="recorder",
                    workspace="w1",
                    channel="general",
                    message_id=str(i),
                    author_id=f"a{i}",
                    reporters=1,
                    score=1.0,
                )
                session.add(case)
                await session.flush()
                assert case.id is not None
                session.add(CaseEvidence(case_id=case.id, text=f"message {i}", author_name=f"a{i}"))
    finally:
        await engine.dispose()


async def _admin(base: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def throughput(pg_base: str, *, processes: int, cases: int, folder: Path) -> dict[str, float]:
    """Route `cases` open cases with `processes` bot processes; cases per second, first post to last."""
    name = f"scopebot_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(pg_base, f'CREATE DATABASE "{name}"'))
    url = f"{pg_base.rpartition('/')[0]}/{name}"
    try:
        asyncio.run(_seed(url, cases))
        config = write_mod_config(folder, url, interval=0.5, lease=30)
        (folder / "flags.json").write_text("[]", encoding="utf-8")
        with RecorderServer() as server:
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.moderation_child",
                        str(config),
                        server.url,
                        str(folder / "flags.json"),
                    ],
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                )
                for _ in range(processes)
            ]
            for p in procs:
                if p.wait(timeout=600) != 0:
                    raise SystemExit(f"router process failed with {p.returncode}")
            rec = server.recorder
            times = sorted(rec.post_times)
            per_case = rec.posts_per_case()
        assert len(per_case) == cases and set(per_case.values()) == {1}, "a card was lost or posted twice"
        span = times[-1] - times[0]
        shares = sorted({pid for _c, _card, pid in rec.posts})
        return {"cases_per_s": cases / span if span > 0 else float("inf"), "span": span, "pids": len(shares)}
    finally:
        asyncio.run(_admin(pg_base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    """Run both measurements and append them to bench/RESULTS.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flags", type=int, default=200)
    ap.add_argument("--intervals", default="1,5,30", help="router intervals in seconds, comma-separated")
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--postgres", default=os.environ.get("SCOPEBOT_TEST_POSTGRES_URL") or DEFAULT_PG)
    ap.add_argument("--dry-run", action="store_true", help="print the results instead of appending them")
    args = ap.parse_args()
    watch = CpuWatch()
    rows_lat = []
    with tempfile.TemporaryDirectory() as tmp:
        for interval in [float(x) for x in args.intervals.split(",")]:
            for label in ("SQLite", "PostgreSQL"):
                name = ""
                if label == "SQLite":
                    url = f"sqlite+aiosqlite:///{tmp}/lat-{interval:g}.db"
                else:
                    if interval > 5:
                        continue  # the default interval is measured on SQLite only, to keep the run short
                    name = f"scopebot_bench_{uuid.uuid4().hex[:8]}"
                    asyncio.run(_admin(args.postgres, f'CREATE DATABASE "{name}"'))
                    url = f"{args.postgres.rpartition('/')[0]}/{name}"
                folder = Path(tmp) / f"lat-{label}-{interval:g}"
                folder.mkdir()
                try:
                    r = asyncio.run(latency(url, interval=interval, flags=args.flags, folder=folder))
                finally:
                    if name:
                        asyncio.run(_admin(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                ok = "yes" if r["max"] <= interval + 2 else "NO"
                rows_lat.append(
                    [
                        label,
                        f"{interval:g} s",
                        f"{r['posted']:.0f}/{args.flags}",
                        f"{r['p50']:.2f} s",
                        f"{r['p99']:.2f} s",
                        f"{r['max']:.2f} s",
                        f"{interval + 2:g} s",
                        ok,
                    ]
                )
                print(rows_lat[-1], flush=True)
        rows_tp = []
        for processes in (1, 2):
            folder = Path(tmp) / f"tp-{processes}"
            folder.mkdir()
            r = throughput(args.postgres, processes=processes, cases=args.cases, folder=folder)
            rows_tp.append([processes, args.cases, f"{r['span']:.2f} s", f"{r['cases_per_s']:.0f}", f"{r['pids']:.0f}"])
            print(rows_tp[-1], flush=True)
    body = (
        f"`python bench/router.py --flags {args.flags} --intervals {args.intervals} --cases {args.cases}`\n\n"
        "Flag → review card (whole bot, real APScheduler job, in-memory platform; flags at random moments):\n\n"
        + table(["database", "router interval", "cards", "p50", "p99", "max", "target", "max ≤ target"], rows_lat)
        + "\n\nCases routed per second on PostgreSQL (open cases pre-filed; bot processes post to the loopback card "
        "recorder, which runs in the benchmark process on the same 2 cores; first post to last; every card "
        "posted exactly once):\n\n"
        + table(["processes", "cases", "first→last post", "cases/s", "processes that posted"], rows_tp)
    )
    if args.dry_run:
        print(body)
    else:
        print(append_results("Moderation router", body, watch=watch))


if __name__ == "__main__":
    main()
