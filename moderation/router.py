"""The review-queue router: posts each case's card to its reviewer channel exactly once, and keeps it current.

Exactly once, across crashes and processes, in three steps per case:

1. **Lease.** A run claims up to a batch of cases needing work with one conditional UPDATE (its subquery
   takes row locks with `FOR UPDATE SKIP LOCKED` on PostgreSQL), writing a random token and an expiry.
   Only the token's holder touches the case's card until the lease runs out; a killed process's lease
   simply expires.
2. **Intent before the post.** Before the first post the case is marked `card_pending` (committed). The
   post is bounded by a timeout well inside the lease.
3. **Record after the post**, conditional on still holding the token: card reference, `routed`, the
   audit entry — one transaction.

A crash between 2 and 3 leaves `card_pending` set with no card recorded. The next holder does not post
blindly: it asks the platform for a card it already posted for this case (`find_review_card`, matched
by the case id every card carries) and records that one. Updates to a recorded card are edits in place,
which are safe to repeat. Platforms that cannot look cards up fall back to posting again, with a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy import and_, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from bot.config import Config
from bot.db import utcnow
from bot.events import MessageRef, OutboundMessage, Place, Platform, PlatformError
from moderation.audit import SYSTEM, audit
from moderation.cards import build_card
from moderation.effects import EffectRunner, done_actions
from moderation.models import Case, CaseEvidence, CaseState, ModerationNotice
from moderation.reports import ReportService
from moderation.store import CALL_SHARE_OF_LEASE, backoff, is_postgres, new_token, reviewer_place, rowcount

log = logging.getLogger(__name__)

#: Cases claimed per database round trip.
BATCH = 50


@runtime_checkable
class FindsReviewCards(Protocol):
    """An optional platform capability: find the card this bot already posted for a case."""

    async def find_review_card(self, place: Place, case_id: int) -> MessageRef | None:
        """The card for `case_id` in `place`, or None when there is none."""


@dataclass(slots=True)
class RouterRun:
    """What one router run did."""

    claimed: int = 0
    posted: int = 0
    updated: int = 0
    failed: int = 0
    escalated: int = 0
    effects: int = 0


class Router:
    """Moves cases open → routed and keeps their cards current; one `run_once()` per scheduled tick."""

    def __init__(
        self,
        *,
        config: Config,
        sessions: async_sessionmaker[AsyncSession],
        platforms: Mapping[str, Platform],
        reports: ReportService,
        effects: EffectRunner,
        batch: int = BATCH,
    ) -> None:
        self._config = config
        self._sessions = sessions
        self._platforms = dict(platforms)
        self._reports = reports
        self._effects = effects
        self._batch = batch
        self._warned_no_find: set[str] = set()
        self._lease = config.moderation.router_lease_seconds
        #: A platform call may take this long before it counts as failed (its outcome then unknown).
        self._call_timeout = self._lease * CALL_SHARE_OF_LEASE

    @property
    def interval(self) -> float:
        """Seconds between scheduled runs."""
        return self._config.moderation.router_interval_seconds

    async def run_once(self) -> RouterRun:
        """Escalate overdue cases, then sync every case needing work that no one else holds."""
        run = RouterRun()
        if not self._platforms:
            return run
        run.escalated = await self._escalate_overdue()
        while True:
            token = new_token()
            ids = await self._claim(token)
            if not ids:
                break
            run.claimed += len(ids)
            for case_id in ids:
                await self._sync(case_id, token, run)
            if len(ids) < self._batch:
                break
        run.effects = await self._effects.run_pending()
        if run.claimed or run.escalated or run.effects:
            log.info(
                "router: %d claimed, %d posted, %d updated, %d failed, %d escalated, %d effects",
                run.claimed,
                run.posted,
                run.updated,
                run.failed,
                run.escalated,
                run.effects,
            )
        return run

    async def sync_now(self, case_id: int) -> None:
        """Bring one case's card up to date at once, unless another run holds it (then that run will)."""
        token = new_token()
        now = utcnow()
        async with self._sessions() as session, session.begin():
            got = await session.execute(
                update(Case)
                .where(col(Case.id) == case_id, col(Case.platform).in_(list(self._platforms)), self._free(now))
                .values(lease_token=token, lease_until=now + timedelta(seconds=self._lease))
            )
        if rowcount(got):
            await self._sync(case_id, token, RouterRun())

    @staticmethod
    def _free(now: object) -> sa.ColumnElement[bool]:
        return or_(col(Case.lease_token).is_(None), col(Case.lease_until) < now)

    async def _claim(self, token: str) -> list[int]:
        now = utcnow()
        due = and_(
            col(Case.dirty).is_(True),
            col(Case.platform).in_(list(self._platforms)),
            col(Case.next_attempt_at) <= now,
            self._free(now),
        )
        async with self._sessions() as session, session.begin():
            pick = select(Case.id).where(due).order_by(col(Case.urgent).desc(), col(Case.id)).limit(self._batch)
            if is_postgres(session):
                pick = pick.with_for_update(skip_locked=True)
            await session.execute(
                update(Case)
                .where(col(Case.id).in_(pick.scalar_subquery()), due)
                .values(lease_token=token, lease_until=now + timedelta(seconds=self._lease))
                .execution_options(synchronize_session=False)
            )
            ids = await session.execute(select(Case.id).where(Case.lease_token == token).order_by(col(Case.id)))
            return [int(i) for i in ids.scalars() if i is not None]

    async def _sync(self, case_id: int, token: str, run: RouterRun) -> None:
        async with self._sessions() as session:
            case = await session.get(Case, case_id, populate_existing=True)
            if case is None or case.lease_token != token:
                return
            evidence = await session.get(CaseEvidence, case_id)
            done = await done_actions(session, case_id)
        platform = self._platforms[case.platform]
        ok = True
        try:
            if case.hide_pending:
                ok = await self._reports.hide_answer(platform, case_id=case_id) and ok
            ok = (
                await self._sync_card(platform=platform, case=case, evidence=evidence, done=done, token=token, run=run)
                and ok
            )
            if ok and case.ping_pending:
                ok = await self._ping(platform, case, token)
        finally:
            await self._release(case, token, failed=not ok)

    async def _sync_card(
        self,
        *,
        platform: Platform,
        case: Case,
        evidence: CaseEvidence | None,
        done: tuple[str, ...],
        token: str,
        run: RouterRun,
    ) -> bool:
        assert case.id is not None
        wants_card = case.state != CaseState.RESOLVED or case.card_message_id is not None or case.card_pending
        if not wants_card or (case.card_revision >= case.revision and not case.card_pending):
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(Case)
                    .where(col(Case.id) == case.id, col(Case.lease_token) == token)
                    .values(card_revision=case.revision)
                )
            return True
        place = reviewer_place(self._config, case)
        if place is None:
            await self._notice(
                f"nochannel:{case.platform}:{case.workspace}:{case.scope or ''}",
                f"no reviewer channel is configured for {case.platform} (workspace {case.workspace}); case #{case.id} "
                f"waits until one is set under [moderation] reviewer_channels (or the scope's reviewer_channels)",
            )
            run.failed += 1
            return False
        existing = case.card_ref
        try:
            if existing is None and case.card_pending:
                existing = await self._find(platform, place, case.id)
            if existing is None and not case.card_pending:
                async with self._sessions() as session, session.begin():
                    marked = await session.execute(
                        update(Case)
                        .where(col(Case.id) == case.id, col(Case.lease_token) == token)
                        .values(card_pending=True)
                    )
                if not rowcount(marked):
                    return True
            mention = self._config.moderation.escalation_mentions.get(case.platform, "")
            card = build_card(case, evidence, place=place, mention=mention, done=done)
            ref = await asyncio.wait_for(platform.post_review_card(card, existing=existing), self._call_timeout)
        except (PlatformError, OSError, TimeoutError) as e:
            await self._failed(case, token, e, place)
            run.failed += 1
            return False
        await self._record(case, token, ref, place)
        if existing is None:
            run.posted += 1
        else:
            run.updated += 1
        return True

    async def _find(self, platform: Platform, place: Place, case_id: int) -> MessageRef | None:
        if isinstance(platform, FindsReviewCards):
            return await asyncio.wait_for(platform.find_review_card(place, case_id), self._call_timeout)
        if platform.name not in self._warned_no_find:
            self._warned_no_find.add(platform.name)
            log.warning(
                "%s cannot look up review cards: a card whose post was interrupted is posted again and may "
                "appear twice",
                platform.name,
            )
        return None

    async def _record(self, case: Case, token: str, ref: MessageRef, place: Place) -> None:
        now = utcnow()
        async with self._sessions() as session, session.begin():
            res = await session.execute(
                update(Case)
                .where(col(Case.id) == case.id, col(Case.lease_token) == token)
                .values(
                    card_workspace=ref.place.workspace,
                    card_channel=ref.place.channel,
                    card_message_id=ref.message_id,
                    card_pending=False,
                    card_revision=case.revision,
                    state=sa.case((col(Case.state) == CaseState.OPEN, CaseState.ROUTED.value), else_=col(Case.state)),
                    routed_at=sa.func.coalesce(col(Case.routed_at), now),
                    attempts=0,
                    last_error="",
                )
            )
            if not rowcount(res):
                log.warning("case %s: lease lost while posting its card; the next holder reconciles", case.id)
                return
            if case.card_message_id is None:
                audit(
                    session,
                    actor=SYSTEM,
                    action="case.routed",
                    case_id=case.id,
                    scope=case.scope,
                    note=f"card posted to {place.platform} #{place.channel}",
                    detail={"card": ref.key, "reviewer_channel": place.channel, "reporters": case.reporters},
                )
            await session.execute(sa.delete(ModerationNotice).where(col(ModerationNotice.key) == _channel_key(place)))

    async def _failed(self, case: Case, token: str, error: BaseException, place: Place) -> None:
        text = str(error) or type(error).__name__
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Case)
                .where(col(Case.id) == case.id, col(Case.lease_token) == token)
                .values(last_error=text[:500])
            )
        log.warning("case %s: posting its card failed (attempt %d): %s", case.id, case.attempts + 1, text)
        if isinstance(error, PlatformError) and not error.retryable:
            await self._notice(
                _channel_key(place),
                f"cannot post review cards to channel {place.channel} on {place.platform} ({text}). "
                "Add the bot to that channel, or fix [moderation] reviewer_channels; waiting cases are posted "
                "once it works",
            )

    async def _notice(self, key: str, message: str) -> None:
        """Report an operator problem once (log and audit), until it is fixed."""
        try:
            async with self._sessions() as session, session.begin():
                session.add(ModerationNotice(key=key, message=message))
                await session.flush()
                audit(session, actor=SYSTEM, action="router.problem", note=message, detail={"key": key})
        except IntegrityError:
            return
        log.error("moderation: %s", message)

    async def _ping(self, platform: Platform, case: Case, token: str) -> bool:
        """Ping the moderators in the card's thread once a case escalates."""
        mention = self._config.moderation.escalation_mentions.get(case.platform, "")
        async with self._sessions() as session:
            fresh = await session.get(Case, case.id, populate_existing=True)
        card = fresh.card_ref if fresh is not None else None
        if card is None:
            return False
        if mention:
            text = f"{mention} case #{case.id} needs a moderator ({case.escalation_reason or 'escalated'})."
            try:
                await asyncio.wait_for(
                    platform.send(OutboundMessage(card.place, text, reply_to=card)), self._call_timeout
                )
            except (PlatformError, OSError, TimeoutError) as e:
                log.warning("case %s: could not ping the moderators: %s", case.id, e)
                return False
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Case).where(col(Case.id) == case.id, col(Case.lease_token) == token).values(ping_pending=False)
            )
        return True

    async def _release(self, case: Case, token: str, *, failed: bool) -> None:
        values: dict[str, object] = {
            "lease_token": None,
            "lease_until": None,
            "dirty": or_(col(Case.revision) > col(Case.card_revision), col(Case.hide_pending), col(Case.ping_pending)),
        }
        if failed:
            # Whatever failed (post, hide, ping) is retried by a later run, backing off each time.
            values["attempts"] = Case.attempts + 1
            values["next_attempt_at"] = backoff(case.attempts + 1, base=self.interval, now=utcnow())
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Case).where(col(Case.id) == case.id, col(Case.lease_token) == token).values(**values)
            )

    async def _escalate_overdue(self) -> int:
        """Escalate routed cases nobody claimed or resolved within `escalate_after_minutes`."""
        now = utcnow()
        cut = now - timedelta(minutes=self._config.moderation.escalate_after_minutes)
        overdue = and_(
            col(Case.state) == CaseState.ROUTED,
            col(Case.claimed_by_id).is_(None),
            col(Case.escalated).is_(False),
            col(Case.routed_at) < cut,
            col(Case.platform).in_(list(self._platforms)),
        )
        count = 0
        async with self._sessions() as session, session.begin():
            pick = select(Case.id, Case.scope).where(overdue).limit(100)
            if is_postgres(session):
                pick = pick.with_for_update(skip_locked=True)
            rows = list((await session.execute(pick)).all())
            minutes = self._config.moderation.escalate_after_minutes
            for case_id, scope in rows:
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


def _channel_key(place: Place) -> str:
    return f"channel:{place.platform}:{place.workspace}:{place.channel}"


async def route_until_idle(router: Router, *, max_runs: int = 100) -> RouterRun:
    """Run the router until a run finds nothing to do (for tests, benchmarks and the CLI)."""
    total = RouterRun()
    for _ in range(max_runs):
        run = await router.run_once()
        for name in ("claimed", "posted", "updated", "failed", "escalated", "effects"):
            setattr(total, name, getattr(total, name) + getattr(run, name))
        if not (run.claimed or run.escalated or run.effects):
            break
    return total
