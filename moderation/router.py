"""The review-queue router: posts each case's card to its reviewer channel exactly once, and keeps it current.

Exactly once, across crashes and processes, in three steps per case:

1. **Lease.** A run claims up to a batch of cases needing work with one conditional UPDATE (its subquery
   takes row locks with `FOR UPDATE SKIP LOCKED` on PostgreSQL), writing a random token and an expiry.
   Only the token's holder touches the case's card until the lease runs out; a killed process's lease
   simply expires.
2. **Intent before the post.** In the same claiming transaction, a case whose card was never posted is
   marked `card_pending`. The post is bounded by a timeout well inside the lease.
3. **Record after the post**, conditional on still holding the token: card reference, `routed`, the
   audit entry and the lease's release — one transaction.

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
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from bot.config import Config
from bot.db import utcnow
from bot.events import MessageRef, OutboundMessage, Place, Platform, PlatformError
from moderation.audit import SYSTEM, audit
from moderation.cards import build_card
from moderation.effects import EffectRunner, done_actions
from moderation.escalation import clear_problem, escalate_overdue, report_problem
from moderation.models import Case, CaseEvidence, CaseState
from moderation.reports import ReportService
from moderation.store import CALL_SHARE_OF_LEASE, backoff, is_postgres, new_token, reviewer_place, rowcount

log = logging.getLogger(__name__)

#: Cases claimed per database round trip.
BATCH = 50
PLATFORM_ERRORS = (PlatformError, OSError, TimeoutError)


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


@dataclass(frozen=True, slots=True)
class Work:
    """A leased case, as it was when claimed."""

    case: Case
    evidence: CaseEvidence | None
    done: tuple[str, ...]
    #: An earlier post may have landed without being recorded: look for the card before posting.
    look_first: bool


def wants_post(case: Case) -> bool:
    """Whether the case's card must be posted or brought up to date."""
    wants_card = case.state != CaseState.RESOLVED or case.card_message_id is not None or case.card_pending
    return wants_card and (case.card_revision < case.revision or case.card_pending)


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
        await self._reports.link_late_answers()
        run.escalated = await escalate_overdue(
            self._sessions, minutes=self._config.moderation.escalate_after_minutes, platforms=list(self._platforms)
        )
        while True:
            token = new_token()
            works = await self._claim(token)
            run.claimed += len(works)
            for work in works:
                await self._sync(work, token, run)
            if len(works) < self._batch:
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
        for work in await self._claim(token, case_id=case_id):
            await self._sync(work, token, RouterRun())

    async def _claim(self, token: str, *, case_id: int | None = None) -> list[Work]:
        """Lease a batch of cases (or one), read them, and mark never-posted cards as about to be posted."""
        now = utcnow()
        conditions = [
            col(Case.platform).in_(list(self._platforms)),
            or_(col(Case.lease_token).is_(None), col(Case.lease_until) < now),
        ]
        if case_id is None:
            conditions += [col(Case.dirty).is_(True), col(Case.next_attempt_at) <= now]
        else:
            conditions.append(col(Case.id) == case_id)
        due = and_(*conditions)
        async with self._sessions() as session, session.begin():
            pick = select(Case.id).where(due).order_by(col(Case.urgent).desc(), col(Case.id)).limit(self._batch)
            if is_postgres(session):
                # Row locks until commit; rows another process holds are skipped, not waited for.
                pick = pick.with_for_update(skip_locked=True)
            # Two statements, not UPDATE … IN (subquery): PostgreSQL may re-run such a subquery and so
            # ignore its LIMIT. The UPDATE repeats `due`, so a row taken meanwhile (SQLite) is not taken twice.
            picked = [i for i in (await session.execute(pick)).scalars() if i is not None]
            if not picked:
                return []
            await session.execute(
                update(Case)
                .where(col(Case.id).in_(picked), due)
                .values(lease_token=token, lease_until=now + timedelta(seconds=self._lease))
                .execution_options(synchronize_session=False)
            )
            cases = list(
                (
                    await session.execute(
                        select(Case)
                        .where(col(Case.lease_token) == token)
                        .order_by(col(Case.id))
                        .execution_options(populate_existing=True)
                    )
                ).scalars()
            )
            if not cases:
                return []
            ids = [c.id for c in cases if c.id is not None]
            evidence = {
                e.case_id: e
                for e in (
                    await session.execute(select(CaseEvidence).where(col(CaseEvidence.case_id).in_(ids)))
                ).scalars()
            }
            done = await done_actions(session, ids)
            works = [Work(c, evidence.get(c.id or 0), done.get(c.id or 0, ()), c.card_pending) for c in cases]
            first = [c.id for c in cases if c.card_message_id is None and not c.card_pending and wants_post(c)]
            if first:
                await session.execute(
                    update(Case)
                    .where(col(Case.id).in_(first))
                    .values(card_pending=True)
                    .execution_options(synchronize_session=False)
                )
        return works

    async def _sync(self, work: Work, token: str, run: RouterRun) -> None:
        case = work.case
        assert case.id is not None
        platform = self._platforms[case.platform]
        failed = False
        record: dict[str, object] = {}
        routed: tuple[MessageRef, Place] | None = None
        card_ref = case.card_ref
        if case.hide_pending and not await self._reports.hide_answer(platform, case_id=case.id):
            failed = True
        if wants_post(case):
            place = reviewer_place(self._config, case)
            if place is None:
                failed = True
                await report_problem(
                    self._sessions,
                    key=f"nochannel:{case.platform}:{case.workspace}:{case.scope or ''}",
                    message=f"no reviewer channel is configured for {case.platform} (workspace {case.workspace}); "
                    f"case #{case.id} waits until one is set under [moderation] reviewer_channels "
                    "(or the scope's reviewer_channels)",
                )
            else:
                try:
                    card_ref, new = await self._post(platform, work, place)
                except PLATFORM_ERRORS as e:
                    failed = True
                    run.failed += 1
                    record["last_error"] = await self._post_failed(case, e, place)
                else:
                    record.update(
                        card_workspace=card_ref.place.workspace,
                        card_channel=card_ref.place.channel,
                        card_message_id=card_ref.message_id,
                        card_pending=False,
                        card_revision=case.revision,
                        state=sa.case(
                            (col(Case.state) == CaseState.OPEN, CaseState.ROUTED.value), else_=col(Case.state)
                        ),
                        routed_at=sa.func.coalesce(col(Case.routed_at), utcnow()),
                        attempts=0,
                        last_error="",
                    )
                    if case.card_message_id is None:
                        routed = (card_ref, place)
                    if new:
                        run.posted += 1
                    else:
                        run.updated += 1
        elif case.card_revision < case.revision:
            record["card_revision"] = case.revision  # resolved before it was ever posted: no card needed
        if case.ping_pending and not failed:
            if card_ref is None or await self._ping(platform, case, card_ref):
                record["ping_pending"] = False
            else:
                failed = True
        await self._finish(case, token, record, failed=failed, routed=routed)

    async def _post(self, platform: Platform, work: Work, place: Place) -> tuple[MessageRef, bool]:
        case = work.case
        assert case.id is not None
        existing = case.card_ref
        if existing is None and work.look_first:
            existing = await self._find(platform, place, case.id)
        mention = self._config.moderation.escalation_mentions.get(case.platform, "")
        card = build_card(case, work.evidence, place=place, mention=mention, done=work.done)
        ref = await asyncio.wait_for(platform.post_review_card(card, existing=existing), self._call_timeout)
        return ref, existing is None

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

    async def _post_failed(self, case: Case, error: BaseException, place: Place) -> str:
        text = (str(error) or type(error).__name__)[:500]
        log.warning("case %s: posting its card failed (attempt %d): %s", case.id, case.attempts + 1, text)
        if isinstance(error, PlatformError) and not error.retryable:
            await report_problem(
                self._sessions,
                key=_channel_key(place),
                message=f"cannot post review cards to channel {place.channel} on {place.platform} ({text}). "
                "Add the bot to that channel, or fix [moderation] reviewer_channels; waiting cases are posted "
                "once it works",
            )
        return text

    async def _ping(self, platform: Platform, case: Case, card: MessageRef) -> bool:
        """Ping the moderators in the card's thread once a case escalates."""
        mention = self._config.moderation.escalation_mentions.get(case.platform, "")
        if not mention:
            return True
        text = f"{mention} case #{case.id} needs a moderator ({case.escalation_reason or 'escalated'})."
        try:
            await asyncio.wait_for(platform.send(OutboundMessage(card.place, text, reply_to=card)), self._call_timeout)
        except PLATFORM_ERRORS as e:
            log.warning("case %s: could not ping the moderators: %s", case.id, e)
            return False
        return True

    async def _finish(
        self,
        case: Case,
        token: str,
        record: dict[str, object],
        *,
        failed: bool,
        routed: tuple[MessageRef, Place] | None,
    ) -> None:
        """Record what happened and release the lease, in one transaction with the routing's audit entry."""
        new_revision = record.get("card_revision")
        card_revision = sa.literal(new_revision) if isinstance(new_revision, int) else col(Case.card_revision)
        ping_pending = sa.false() if record.get("ping_pending") is False else col(Case.ping_pending)
        values: dict[str, object] = {
            **record,
            "lease_token": None,
            "lease_until": None,
            # SET expressions see the row before this UPDATE: use the values being written.
            "dirty": or_(col(Case.revision) > card_revision, col(Case.hide_pending), ping_pending),
        }
        if failed:
            # Whatever failed (post, hide, ping) is retried by a later run, backing off each time.
            values["attempts"] = Case.attempts + 1
            values["next_attempt_at"] = backoff(case.attempts + 1, base=self.interval, now=utcnow())
        async with self._sessions() as session, session.begin():
            res = await session.execute(
                update(Case).where(col(Case.id) == case.id, col(Case.lease_token) == token).values(**values)
            )
            if not rowcount(res):
                log.warning("case %s: lease lost while posting its card; the next holder reconciles", case.id)
                return
            if routed is not None:
                ref, place = routed
                audit(
                    session,
                    actor=SYSTEM,
                    action="case.routed",
                    case_id=case.id,
                    scope=case.scope,
                    note=f"card posted to {place.platform} #{place.channel}",
                    detail={"card": ref.key, "reviewer_channel": place.channel, "reporters": case.reporters},
                )
                if case.attempts:
                    # Only a case whose post failed before can mean a reported channel problem is now fixed.
                    await clear_problem(session, key=_channel_key(place))


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
