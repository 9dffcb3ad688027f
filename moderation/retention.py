"""Retention: resolved cases lose their evidence (message text, snapshots) after `retention_days`.

The case row (who reported how many times, what was decided) and the audit log stay; neither holds
message text. Expired bot-side mutes are deleted too. `scopebot case export N` gives the full record
while it still exists.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from bot.db import utcnow
from moderation.audit import SYSTEM, audit
from moderation.models import Case, CaseEvidence, CaseState, Mute, Report

log = logging.getLogger(__name__)

#: Cases purged per transaction.
PURGE_BATCH = 200


async def purge_expired(
    sessions: async_sessionmaker[AsyncSession], *, retention_days: int, now: datetime | None = None
) -> int:
    """Purge the evidence of cases resolved more than `retention_days` ago; returns how many cases."""
    now = now or utcnow()
    cut = now - timedelta(days=retention_days)
    total = 0
    while True:
        async with sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(Case.id, Case.scope)
                    .where(
                        Case.state == CaseState.RESOLVED,
                        col(Case.resolved_at) < cut,
                        col(Case.evidence_purged_at).is_(None),
                    )
                    .order_by(col(Case.id))
                    .limit(PURGE_BATCH)
                )
            ).all()
            ids = [int(r[0]) for r in rows]
            if not ids:
                break
            await session.execute(sa.delete(CaseEvidence).where(col(CaseEvidence.case_id).in_(ids)))
            await session.execute(update(Report).where(col(Report.case_id).in_(ids)).values(snapshot=None))
            # The card in the reviewer channel is re-rendered without the text too.
            await session.execute(
                update(Case)
                .where(col(Case.id).in_(ids))
                .values(evidence_purged_at=now, revision=Case.revision + 1, dirty=True)
            )
            for case_id, scope in rows:
                audit(
                    session,
                    actor=SYSTEM,
                    action="case.evidence_purged",
                    case_id=case_id,
                    scope=scope,
                    note=f"evidence purged after {retention_days} days",
                    at=now,
                )
        total += len(ids)
    async with sessions() as session, session.begin():
        await session.execute(sa.delete(Mute).where(col(Mute.until) < now - timedelta(days=1)))
    if total:
        log.info("retention: purged the evidence of %d resolved case(s)", total)
    return total
