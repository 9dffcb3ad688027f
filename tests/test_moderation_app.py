"""The whole bot with moderation wired in: real APScheduler (jobs in the database), dispatcher, commands."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import select

from bot.app import build_app
from bot.config import load_config
from bot.events import CardAction, CommandInvoked, InboundMessage, MessageRef, ReactionAdded
from moderation.models import Case, CaseState
from moderation.scheduling import RETENTION_JOB, ROUTER_JOB
from tests.moderation_support import FindingMemoryPlatform, write_mod_config

#: Generous upper bound for waiting on the scheduled router (not a timing assertion: it only fails a hang).
WAIT = 30.0


async def _until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not check():  # noqa: ASYNC110 - the platform fake has no event to wait on
            await asyncio.sleep(0.05)


async def test_scheduled_router_posts_cards_and_buttons_resolve(tmp_path: Path, db_url: str) -> None:
    config = load_config(write_mod_config(tmp_path, db_url, interval=0.5))
    platform = FindingMemoryPlatform(moderators={"mod"})
    app = build_app(config, platforms=[platform])
    await app.start()
    try:
        msg = platform.post_as(platform.actor("alice"), platform.place("general"), "spam link")
        await platform.emit(ReactionAdded(msg, platform.actor("bob"), "flag"))
        await platform.emit(ReactionAdded(msg, platform.actor("eve"), "thumbsup"))  # not a flag: ignored
        await _until(lambda: len(platform.cards) == 1)
        card_id, card = next(iter(platform.cards.items()))

        await platform.emit(ReactionAdded(msg, platform.actor("carol"), "flag"))
        await _until(lambda: dict(platform.cards[card_id].fields)["Reporters"].startswith("2"))
        assert len(platform.cards) == 1

        await platform.emit(CommandInvoked(platform.actor("mod"), platform.place("reviewers"), "cases"))
        assert f"#{card.case_id}" in platform.private[-1].text
        await platform.emit(CommandInvoked(platform.actor("alice"), platform.place("general"), "cases"))
        assert platform.private[-1].text == "Only moderators can use that command."

        press = CardAction(platform.actor("mod"), card.case_id, "remove", card=MessageRef(card.place, card_id))
        await platform.emit(press)
        assert platform.messages[msg.message_id].deleted
        async with app.sessions() as session:
            case = await session.get(Case, card.case_id)
            jobs: dict[str, float | None] = dict(
                (await session.execute(sa.text("SELECT id, next_run_time FROM apscheduler_jobs"))).all()
            )
        assert case is not None and case.state == CaseState.RESOLVED
        # APScheduler keeps its job state in the bot's database.
        assert set(jobs) == {ROUTER_JOB, RETENTION_JOB} and all(v is not None for v in jobs.values())
    finally:
        await app.stop()
    assert not [t for t in threading.enumerate() if t.name == "APScheduler"]


async def test_a_timed_out_member_is_not_answered(tmp_path: Path, sqlite_url: str) -> None:
    config = load_config(write_mod_config(tmp_path, sqlite_url, interval=60))
    platform = FindingMemoryPlatform(moderators={"mod"})

    async def no_timeouts(*_args: object, **_kwargs: object) -> bool:
        return False

    platform.timeout_member = no_timeouts  # type: ignore[method-assign]
    app = build_app(config, platforms=[platform])
    await app.start()
    try:
        place = platform.place("admissions")
        first = platform.post_as(platform.actor("alice"), place, "How much is tuition?")
        await platform.emit(InboundMessage(first, platform.actor("alice"), "How much is tuition?"))
        assert platform.replies_to(first)
        await platform.emit(ReactionAdded(first, platform.actor("bob"), "flag"))
        async with app.sessions() as session:
            case_id = (await session.execute(select(Case.id))).scalars().one()
        assert case_id is not None
        await platform.emit(
            CommandInvoked(platform.actor("mod"), platform.place("reviewers"), f"case {case_id} timeout 1h")
        )
        assert "will not answer them" in platform.private[-1].text

        second = platform.post_as(platform.actor("alice"), place, "What majors do you offer?")
        await platform.emit(InboundMessage(second, platform.actor("alice"), "What majors do you offer?"))
        assert platform.replies_to(second) == []
        other = platform.post_as(platform.actor("bob"), place, "What majors do you offer?")
        await platform.emit(InboundMessage(other, platform.actor("bob"), "What majors do you offer?"))
        assert platform.replies_to(other)
    finally:
        await app.stop()
