"""Small database helpers shared by the moderation services: row counts, leases, backoff, places."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Config
from bot.events import Place
from moderation.models import Case

#: A platform call is cut off at this share of the lease, well before the lease runs out.
CALL_SHARE_OF_LEASE = 1 / 3
#: Longest wait between retries of a failed post or effect.
MAX_BACKOFF_SECONDS = 600.0


def rowcount(result: Any) -> int:
    """Rows touched by an UPDATE or DELETE run through `AsyncSession.execute`."""
    return int(cast(CursorResult[Any], result).rowcount)


def new_token() -> str:
    """A lease token: who holds a case (or an action) right now."""
    return uuid.uuid4().hex


def is_postgres(session: AsyncSession) -> bool:
    """Whether the session talks to PostgreSQL (row locks with SKIP LOCKED are available)."""
    return session.get_bind().dialect.name == "postgresql"


def backoff(attempts: int, *, base: float, now: datetime) -> datetime:
    """When to try again after `attempts` failures: doubling from `base`, capped."""
    delay = min(MAX_BACKOFF_SECONDS, base * 2 ** max(0, attempts - 1))
    return now + timedelta(seconds=delay)


def reviewer_channel(config: Config, *, platform: str, workspace: str, scope: str | None) -> str | None:
    """The reviewer channel for a case: the scope's override, else `[moderation]`, per workspace first."""
    tables: list[dict[str, str]] = []
    if scope is not None:
        for s in config.scopes:
            if s.name == scope:
                tables.append(s.reviewer_channels)
    tables.append(config.moderation.reviewer_channels)
    for table in tables:
        for key in (f"{platform}:{workspace}", platform):
            channel = table.get(key)
            if channel:
                return channel
    return None


def reviewer_place(config: Config, case: Case) -> Place | None:
    """Where a case's card goes, or None when no reviewer channel is configured for its platform."""
    channel = reviewer_channel(config, platform=case.platform, workspace=case.workspace, scope=case.scope)
    if channel is None:
        return None
    return Place(case.platform, case.workspace, channel)


def is_reviewer_channel(config: Config, place: Place) -> bool:
    """Whether `place` is a reviewer channel (flags on review cards are not reports)."""
    scopes: list[str | None] = [None, *(s.name for s in config.scopes)]
    return any(
        reviewer_channel(config, platform=place.platform, workspace=place.workspace, scope=s) == place.channel
        for s in scopes
    )
