"""A bot process for the crash-during-an-outage test: the real app (`build_app`) on the in-memory platform.

`python -m tests.faults_child CONFIG outage` starts the app and prints `{"ready": …}`; after a line on
standard input (the test stops the database first) members ask, post and flag, and the process prints
what it kept, then idles until the test kills it. `python -m tests.faults_child CONFIG recover` starts the
app (which writes whatever an earlier process kept), waits until every case is routed, prints the cards
it posted and exits 0. One JSON object per line on standard output.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from sqlmodel import col, select

from bot.app import App, build_app
from bot.config import load_config
from bot.logs import setup_logging
from moderation.models import Case
from tests.faults_support import ask, cards_per_case, flag, post
from tests.moderation_support import FindingMemoryPlatform


def say(**data: object) -> None:
    """One line for the test."""
    print(json.dumps(data), flush=True)


async def outage(app: App, mem: FindingMemoryPlatform) -> None:
    """Ask, post and flag while the database is away; report what was kept; wait to be killed."""
    assert app.spool is not None
    say(ready=True)
    await asyncio.to_thread(sys.stdin.readline)
    question = await ask(mem, "alice", "How much is tuition?")
    [answer] = mem.replies_to(question)
    message = post(mem, "bob", "selling exam answers, DM me")
    await flag(mem, "carol", message)
    await flag(mem, "dave", message)
    await flag(mem, "erin", answer.ref)
    say(
        kept=app.spool.backlog,
        answer=answer.ref.key,
        answer_text=answer.text,
        message=message.key,
        acks=[r.user_id for r in mem.private],
    )
    await asyncio.Event().wait()


async def recover(app: App, mem: FindingMemoryPlatform) -> None:
    """Wait until what was kept is written and every case is routed; report the cards."""
    while True:
        async with app.sessions() as session:
            waiting = await session.scalar(
                select(Case.id).where(col(Case.dirty) | col(Case.card_pending) | col(Case.state).in_(["open"])).limit(1)
            )
            any_case = await session.scalar(select(Case.id).limit(1))
        if app.spool is not None and app.spool.backlog == 0 and any_case is not None and waiting is None:
            break
        await asyncio.sleep(0.1)
    say(cards={str(k): v for k, v in cards_per_case(mem).items()})


async def main(config_path: Path, mode: str) -> int:
    """Run the app in `mode` until done (or killed)."""
    mem = FindingMemoryPlatform()
    app = build_app(load_config(config_path), platforms=[mem])
    await app.start()
    try:
        await (outage(app, mem) if mode == "outage" else recover(app, mem))
    finally:
        await app.stop()
    return 0


if __name__ == "__main__":
    setup_logging(level="WARNING")
    sys.exit(asyncio.run(main(Path(sys.argv[1]), sys.argv[2])))
