"""Helpers for the moderation tests: a config, a migrated database, the services, a card-finding fake."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import db
from bot.config import Config, load_config
from bot.events import Actor, MessageRef, Place, Platform, ReactionAdded
from bot.scopes import ScopeRegistry
from moderation.wiring import ModerationRuntime, build_moderation
from tests.conftest import COLLEGE_KNOWLEDGE
from tests.fakes import MemoryPlatform

MOD_TOML = """
[bot]
name = "scopebot"
default_scope = "college"

[database]
url = "{db_url}"

[moderation]
reviewer_channels = {{ console = "reviewers", memory = "reviewers", recorder = "reviewers" }}
router_interval_seconds = {interval}
router_lease_seconds = {lease}
hide_threshold = {hide_threshold}
escalate_reporters = {escalate_reporters}
escalate_after_minutes = {escalate_after_minutes}
reports_per_hour = {reports_per_hour}
retention_days = 30
escalation_mentions = {{ memory = "@mods", console = "@moderators", recorder = "@mods" }}

[moderation.moderators]
console = ["mod", "mod2"]

[[scopes]]
name = "college"
description = "Answers questions about Northgate College: admissions and application deadlines, tuition and fees, financial aid, majors, campus life and tours."
refusal = "That's not a college data question."
examples = ["When is the Regular Decision deadline?", "How much is tuition?", "What majors do you offer?"]
knowledge = ["{knowledge}"]
channels = ["admissions"]
"""


def write_mod_config(
    folder: Path,
    db_url: str,
    *,
    interval: float = 1.0,
    lease: float = 60.0,
    hide_threshold: int = 2,
    escalate_reporters: int = 5,
    escalate_after_minutes: float = 60.0,
    reports_per_hour: int = 20,
    extra: str = "",
) -> Path:
    """A scopebot.toml for moderation tests; returns its path."""
    text = MOD_TOML.format(
        db_url=db_url,
        interval=interval,
        lease=lease,
        hide_threshold=hide_threshold,
        escalate_reporters=escalate_reporters,
        escalate_after_minutes=escalate_after_minutes,
        reports_per_hour=reports_per_hour,
        knowledge=COLLEGE_KNOWLEDGE.as_posix(),
    )
    path = folder / "scopebot.toml"
    path.write_text(text + textwrap.dedent(extra), encoding="utf-8")
    return path


class FindingMemoryPlatform(MemoryPlatform):
    """The in-memory platform, plus the optional capability of finding a card already posted for a case."""

    async def find_review_card(self, place: Place, case_id: int) -> MessageRef | None:
        """The card posted for `case_id` in `place`, if any (as a platform search by the card's marker would)."""
        for message_id, card in self.cards.items():
            if card.case_id == case_id and card.place.channel == place.channel:
                return MessageRef(card.place, message_id)
        return None


@dataclass
class Harness:
    """A migrated database, the moderation services and one in-memory platform."""

    config: Config
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    platform: MemoryPlatform
    runtime: ModerationRuntime

    def rebuild(self, platform: Platform | None = None) -> ModerationRuntime:
        """Fresh services on the same database, as after a restart."""
        return build_moderation(
            config=self.config,
            sessions=self.sessions,
            scopes=ScopeRegistry(self.config),
            platforms=[platform or self.platform],
        )

    def flag(self, ref: MessageRef, who: str) -> ReactionAdded:
        """A flag reaction by `who` on `ref`."""
        return ReactionAdded(target=ref, reactor=self.platform.actor(who), emoji="flag")

    def member(self, who: str) -> Actor:
        """A member of the platform."""
        return self.platform.actor(who)


@asynccontextmanager
async def harness(
    tmp_path: Path, db_url: str, *, platform: MemoryPlatform | None = None, **config: object
) -> AsyncIterator[Harness]:
    """Migrate `db_url`, build the services for one in-memory platform, dispose everything afterwards."""
    cfg = load_config(write_mod_config(tmp_path, db_url, **config))  # type: ignore[arg-type]
    engine = db.create_engine(db_url)
    try:
        await db.upgrade(engine)
        sessions = db.sessionmaker(engine)
        plat = platform or FindingMemoryPlatform(moderators={"mod", "mod2"})
        runtime = build_moderation(config=cfg, sessions=sessions, scopes=ScopeRegistry(cfg), platforms=[plat])
        await plat.start(_no_events)
        yield Harness(cfg, engine, sessions, plat, runtime)
    finally:
        await engine.dispose()


async def _no_events(event: object) -> None:
    """Tests call the services directly; nothing is delivered through a sink."""
