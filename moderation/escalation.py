"""Escalating cases that waited too long, and reporting operator problems once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import and_, delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from bot.db import utcnow
from moderation.audit import SYSTEM, audit
from moderation.models import Case, CaseState, ModerationNotice
from moderation.store import is_postgres, rowcount

log = logging.getLogger(__name__)


async def escalate_overdue(
    sessions: async_sessionmaker[AsyncSession], *, minutes: float, platforms: Sequence[str], limit: int = 100
) -> int:
    """Escalate routed cases that nobody claimed or resolved within `minutes`; returns how many."""
    now = utcnow()
    overdue = and_(
        col(Case.state) == CaseState.ROUTED,
        col(Case.claimed_by_id).is_(None),
        col(Case.escalated).is_(False),
        col(Case.routed_at) < now - timedelta(minutes=minutes),
        col(Case.platform).in_(list(platforms)),
    )
    count = 0
    async with sessions() as session, session.begin():
        pick = select(Case.id, Case.scope).where(overdue).limit(limit)
        if is_postgres(session):
            pick = pick.with_for_update(skip_locked=True)
        for case_id, scope in list((await session.execute(pick)).all()):
            res = await session.execute(
                update(Case)
                .where(col(Case.id) == case_id, overdue)
                .values(
                    escalated=True,
                    urgent=True,
                    ping_pending=True,
                    escalation_reason=f"unreviewed for {minutes:g} min",
                    revision=Case.revision + 1,
                    dirty=True,
                )
            )
            if rowcount(res):
                count += 1
                audit(
                    session,
                    actor=SYSTEM,
                    action="case.escalated",
                    case_id=case_id,
                    scope=scope,
                    note=f"unreviewed for {minutes:g} minutes",
                )
    return count


async def report_problem(sessions: async_sessionmaker[AsyncSession], *, key: str, message: str) -> bool:
    """Log and audit an operator problem once, until `clear_problem`; True when this call reported it."""
    try:
        async with sessions() as session, session.begin():
            session.add(ModerationNotice(key=key, message=message))
            await session.flush()
            audit(session, actor=SYSTEM, action="router.problem", note=message, detail={"key": key})
    except IntegrityError:
        return False
    log.error("moderation: %s", message)
    return True


async def clear_problem(session: AsyncSession, *, key: str) -> None:
    """The problem is fixed: a later one of the same kind is reported again."""
    await session.execute(delete(ModerationNotice).where(col(ModerationNotice.key) == key))
