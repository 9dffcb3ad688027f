"""Builds the moderation services once, for the composition root (`bot/app.py`), and starts and stops them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Config
from bot.events import Platform
from bot.outage import DatabaseWatch
from bot.scopes import ScopeRegistry
from bot.spool import Spool
from moderation.actions import ActionService
from moderation.effects import EffectRunner, PhraseSink
from moderation.reports import ReportService
from moderation.retention import purge_expired
from moderation.router import Router
from moderation.scheduling import ModerationScheduler
from moderation.service import ModerationService
from moderation.wordlist import RegistryPhrases

log = logging.getLogger(__name__)


@dataclass
class ModerationRuntime:
    """The moderation services of one bot process and their scheduler."""

    service: ModerationService
    router: Router
    scheduler: ModerationScheduler

    async def start(self) -> None:
        """Start the scheduled router and retention jobs."""
        await self.scheduler.start()

    async def stop(self) -> None:
        """Stop them, letting a running router pass finish briefly."""
        await self.scheduler.stop()


def build_moderation(
    *,
    config: Config,
    sessions: async_sessionmaker[AsyncSession],
    scopes: ScopeRegistry,
    platforms: Sequence[Platform],
    phrases: PhraseSink | None = None,
    spool: Spool | None = None,
) -> ModerationRuntime:
    """Every moderation service for `config`, serving `platforms`; nothing runs until `start()`.

    `phrases` is where `add_word` puts a phrase: the app passes the scope gate's overlay
    (`OverlayPhrases`); without it a phrase holds in this process only. `spool` keeps reports filed
    while the database is unreachable (the app passes its one spool); without it such a flag fails.
    """
    by_name = {p.name: p for p in platforms}
    watch = spool.watch if spool is not None else DatabaseWatch()
    reports = ReportService(config=config, sessions=sessions, scopes=scopes, spool=spool)
    actions = ActionService(config=config, sessions=sessions)
    effects = EffectRunner(
        config=config, sessions=sessions, platforms=by_name, phrases=phrases or RegistryPhrases(scopes)
    )
    router = Router(config=config, sessions=sessions, platforms=by_name, reports=reports, effects=effects)
    service = ModerationService(
        config=config, sessions=sessions, reports=reports, actions=actions, effects=effects, router=router, watch=watch
    )

    async def retention() -> None:
        await purge_expired(sessions, retention_days=config.moderation.retention_days)

    scheduler = ModerationScheduler(
        database_url=config.database.url,
        router=router.run_once,
        retention=retention,
        router_interval=config.moderation.router_interval_seconds,
        watch=watch,
    )
    return ModerationRuntime(service=service, router=router, scheduler=scheduler)
