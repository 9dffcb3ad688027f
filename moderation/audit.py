"""The append-only audit log: every filing, routing, claim, action and scope change — who, what, when.

The database refuses UPDATE and DELETE on this table (triggers in migration 0002), so an entry, once
written, stays as it was. Entries never hold message text: evidence lives with the case and is purged
on schedule, the audit trail is kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col, select

from bot.db import UTCDateTime, utcnow
from bot.events import Actor

#: The actor recorded for what the bot does by itself (routing, auto-hiding, retention).
SYSTEM = Actor(platform="system", user_id="scopebot", display_name="scopebot")


class AuditEntry(SQLModel, table=True):
    """One thing that happened, by whom."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor_platform: str = Field(max_length=32)
    actor_id: str = Field(max_length=128, index=True)
    actor_name: str = Field(default="", max_length=256)
    #: Dotted verb: `report.filed`, `case.routed`, `case.dismiss`, `scope.add_word`, ….
    action: str = Field(max_length=64, index=True)
    case_id: int | None = Field(default=None, index=True)
    scope: str | None = Field(default=None, max_length=64)
    note: str = Field(default="", sa_column=Column(Text, nullable=False))
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def audit(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    case_id: int | None = None,
    scope: str | None = None,
    note: str = "",
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Add an entry to `session`; it is written when the caller's transaction commits."""
    entry = AuditEntry(
        at=at or utcnow(),
        actor_platform=actor.platform,
        actor_id=actor.user_id,
        actor_name=actor.display_name,
        action=action,
        case_id=case_id,
        scope=scope,
        note=note,
        detail=detail or {},
    )
    session.add(entry)
    return entry


async def entries(
    session: AsyncSession, *, case_id: int | None = None, since: datetime | None = None, limit: int | None = None
) -> list[AuditEntry]:
    """Entries, oldest first, optionally for one case and/or since a time."""
    q = select(AuditEntry).order_by(col(AuditEntry.at), col(AuditEntry.id))
    if case_id is not None:
        q = q.where(AuditEntry.case_id == case_id)
    if since is not None:
        q = q.where(col(AuditEntry.at) >= since)
    if limit is not None:
        q = q.limit(limit)
    return list((await session.execute(q)).scalars())
