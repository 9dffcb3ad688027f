"""A bot process for the crash and two-process tests: the moderation side of the bot, on the recorder platform.

`python -m tests.moderation_child CONFIG RECORDER_URL FLAGS_JSON` migrates the database, builds the
moderation services exactly as `bot/app.py` does (`build_moderation`: filing, APScheduler with its job
table, router, effects), delivers every flag of FLAGS_JSON (as a platform that redelivers unacknowledged
events would: repeats are no-ops), lets the scheduled router work, and exits 0 once nothing is left to
do — unless the recorder kills it first. The answering pipeline is left out: it plays no part in
routing, and loading its embedding model would make each of the many restarts take half a minute.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from sqlalchemy import func, or_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from bot import db
from bot.config import load_config
from bot.events import Actor, MessageRef, ReactionAdded
from bot.logs import setup_logging
from bot.scopes import ScopeRegistry
from moderation.models import ActionStatus, Case, CaseAction
from moderation.wiring import build_moderation
from tests.recorder_platform import NAME, RecorderPlatform


async def idle(sessions: async_sessionmaker[AsyncSession]) -> bool:
    """Whether every case's card is posted and current and no effect is pending."""
    async with sessions() as session:
        busy = await session.scalar(
            select(func.count())
            .select_from(Case)
            .where(or_(col(Case.dirty), col(Case.card_pending), col(Case.lease_token).is_not(None)))
        )
        pending = await session.scalar(
            select(func.count()).select_from(CaseAction).where(CaseAction.status == ActionStatus.PENDING)
        )
    return not busy and not pending


async def run(config_path: Path, recorder_url: str, flags: list[list[str]]) -> int:
    """Deliver `flags` (channel, message id, reporter), then serve until idle."""
    config = load_config(config_path)
    platform = RecorderPlatform(recorder_url)
    engine = db.create_engine(config.database.url)
    sessions = db.sessionmaker(engine)
    try:
        await db.upgrade(engine)
        runtime = build_moderation(config=config, sessions=sessions, scopes=ScopeRegistry(config), platforms=[platform])
        await platform.start(_no_events)
        await runtime.start()
        try:
            for channel, message_id, reporter in flags:
                target = MessageRef(platform.place(channel), message_id)
                await runtime.service.on_reaction(
                    platform, ReactionAdded(target, Actor(NAME, reporter, reporter), "flag")
                )
            while not await idle(sessions):  # noqa: ASYNC110 - polling the shared database is the point
                await asyncio.sleep(0.1)
        finally:
            await runtime.stop()
            await platform.stop()
    finally:
        await engine.dispose()
    return 0


async def _no_events(event: object) -> None:
    """Flags are delivered by `run` itself."""


if __name__ == "__main__":
    setup_logging(level="WARNING")
    flag_plan = json.loads(Path(sys.argv[3]).read_text(encoding="utf-8"))
    sys.exit(asyncio.run(run(Path(sys.argv[1]), sys.argv[2], flag_plan)))
