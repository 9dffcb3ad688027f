"""Helpers shared by the fault-injection tests (`tests/test_faults_*.py`)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from sqlmodel import col, select

from bot.app import App
from bot.events import Actor, InboundMessage, MessageRef, ReactionAdded
from bot.models import BotAnswer
from moderation.models import Case, Report
from tests.fakes import MemoryPlatform


def edit_config(path: Path, **replacements: str) -> Path:
    """Replace exact snippets of a written scopebot.toml (each must be present once)."""
    text = path.read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert text.count(old) == 1, f"tests/conftest.py BASE_TOML changed: {old!r} is not there once"
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return path


async def ask(platform: MemoryPlatform, who: str, text: str, *, channel: str = "general") -> MessageRef:
    """A member mentions the bot with a question; returns once the bot has handled it."""
    author = platform.actor(who)
    ref = platform.post_as(author, platform.place(channel), text)
    await platform.emit(InboundMessage(ref=ref, author=author, text=text, mentions_bot=True))
    return ref


async def flag(platform: MemoryPlatform, who: str, target: MessageRef) -> None:
    """A member adds 🚩 to a message; returns once the bot has handled it."""
    await platform.emit(ReactionAdded(target=target, reactor=platform.actor(who), emoji="flag"))


def post(platform: MemoryPlatform, who: str, text: str, *, channel: str = "general") -> MessageRef:
    """A member's message nobody addressed to the bot."""
    return platform.post_as(Actor(platform.name, who, who), platform.place(channel), text)


async def reports(app: App) -> Counter[tuple[str, str]]:
    """How many reports each (message key, reporter) has in the database."""
    async with app.sessions() as session:
        rows = (await session.execute(select(Report.message_key, Report.reporter_id))).all()
    return Counter((key, who) for key, who in rows)


async def cases(app: App) -> list[Case]:
    """Every case, oldest first."""
    async with app.sessions() as session:
        return list((await session.execute(select(Case).order_by(col(Case.id)))).scalars())


async def answers(app: App) -> list[BotAnswer]:
    """Every answer record, oldest first."""
    async with app.sessions() as session:
        return list((await session.execute(select(BotAnswer).order_by(col(BotAnswer.id)))).scalars())


def cards_per_case(platform: MemoryPlatform) -> Counter[int]:
    """How many distinct card messages each case has on the platform (1 = posted once, updates in place)."""
    return Counter(card.case_id for card in platform.cards.values())


def logged(records: list[logging.LogRecord], text: str, *, level: int = logging.DEBUG) -> list[str]:
    """Messages of captured records at `level` or above that contain `text`."""
    return [r.getMessage() for r in records if r.levelno >= level and text in r.getMessage()]
