"""Carrying out decided actions on the platform (delete, warn, time out, retract, add a phrase), from the outbox.

Each pending `CaseAction` is leased like a case, run, and marked done or failed. A retryable failure backs
off; a permanent one is audited and, for a resolving action, reopens the case so nobody believes the
message is gone when it is not. Effects are at least once: deletes, edits and time-outs repeat safely; a
warning or correction may repeat only if the process dies between sending it and recording it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy import and_, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from bot.config import Config
from bot.db import utcnow
from bot.events import Actor, MessageRef, OutboundMessage, Platform, PlatformError, Reply
from bot.models import BotAnswer
from moderation.actions import FAULTS, MISSED, RESOLVING, parse_duration
from moderation.answer_refs import answer_place, answer_refs, delete_all, edit_all, question_ref
from moderation.audit import SYSTEM, audit
from moderation.models import ActionStatus, Case, CaseAction, CaseState, Mute
from moderation.store import CALL_SHARE_OF_LEASE, backoff, is_postgres, new_token, rowcount

log = logging.getLogger(__name__)

MAX_EFFECT_ATTEMPTS = 5
#: Actions carried out without the case's platform.
PLATFORM_FREE = ("add_word",)


class PhraseRejected(Exception):
    """The word list refused the phrase (e.g. its scope is gone); the message says why."""


class PhraseSink(Protocol):
    """Where `add_word` puts a phrase and `missed` a question: the scope gate's word lists and examples (see
    `moderation.wordlist`)."""

    async def add_blocked_phrase(self, *, scope: str, phrase: str, actor: Actor, case_id: int | None) -> None:
        """Block `phrase` in `scope` from now on."""

    async def add_example(self, *, scope: str, question: str, actor: Actor, case_id: int | None) -> None:
        """Make `question` one of `scope`'s examples: answered from now on (if it passes the harm screens)."""


@dataclass(frozen=True, slots=True)
class EffectResult:
    """How an effect went, in words for the moderator."""

    ok: bool
    text: str


async def done_actions(session: AsyncSession, case_ids: list[int]) -> dict[int, tuple[str, ...]]:
    """Non-resolving actions taken per case, for the cards (`warn by mod`, `timeout by mod (failed)`)."""
    rows = await session.execute(
        select(CaseAction)
        .where(col(CaseAction.case_id).in_(case_ids), col(CaseAction.action).in_(["warn", "timeout", "add_word"]))
        .order_by(col(CaseAction.id))
    )
    out: dict[int, list[str]] = {}
    for row in rows.scalars():
        state = {"pending": " (in progress)", "failed": " (failed)"}.get(row.status, "")
        what = f"add_word {row.argument!r}" if row.action == "add_word" else row.action
        out.setdefault(row.case_id, []).append(f"{what} by {row.actor_name or row.actor_id}{state}")
    return {case_id: tuple(done) for case_id, done in out.items()}


class EffectRunner:
    """Runs pending action effects for the platforms this process has."""

    def __init__(
        self,
        *,
        config: Config,
        sessions: async_sessionmaker[AsyncSession],
        platforms: Mapping[str, Platform],
        phrases: PhraseSink,
    ) -> None:
        self._config = config
        self._sessions = sessions
        self._platforms = dict(platforms)
        self._phrases = phrases
        self._lease = config.moderation.router_lease_seconds

    def _runnable(self, now: object) -> sa.ColumnElement[bool]:
        return and_(
            col(CaseAction.status) == ActionStatus.PENDING,
            col(CaseAction.next_attempt_at) <= now,
            or_(col(CaseAction.lease_token).is_(None), col(CaseAction.lease_until) < now),
            or_(
                col(CaseAction.action).in_(PLATFORM_FREE),
                col(CaseAction.case_id).in_(select(Case.id).where(col(Case.platform).in_(list(self._platforms)))),
            ),
        )

    async def run_now(self, action_id: int) -> EffectResult | None:
        """Carry out one effect at once; None when another run holds it or its platform is not here."""
        token = new_token()
        now = utcnow()
        async with self._sessions() as session, session.begin():
            got = await session.execute(
                update(CaseAction)
                .where(col(CaseAction.id) == action_id, self._runnable(now))
                .values(lease_token=token, lease_until=now + timedelta(seconds=self._lease))
                .execution_options(synchronize_session=False)
            )
        if not rowcount(got):
            return None
        return await self._run(action_id, token)

    async def run_pending(self, *, batch: int = 50) -> int:
        """Carry out every runnable pending effect; returns how many were attempted."""
        count = 0
        while True:
            token = new_token()
            now = utcnow()
            async with self._sessions() as session, session.begin():
                pick = select(CaseAction.id).where(self._runnable(now)).order_by(col(CaseAction.id)).limit(batch)
                if is_postgres(session):
                    pick = pick.with_for_update(skip_locked=True)
                picked = [i for i in (await session.execute(pick)).scalars() if i is not None]
                await session.execute(
                    update(CaseAction)
                    .where(col(CaseAction.id).in_(picked), self._runnable(now))
                    .values(lease_token=token, lease_until=now + timedelta(seconds=self._lease))
                    .execution_options(synchronize_session=False)
                )
                ids = list(
                    (await session.execute(select(CaseAction.id).where(CaseAction.lease_token == token))).scalars()
                )
            for action_id in ids:
                assert action_id is not None
                await self._run(action_id, token)
            count += len(ids)
            if len(ids) < batch:
                return count

    async def _run(self, action_id: int, token: str) -> EffectResult:
        async with self._sessions() as session:
            row = await session.get(CaseAction, action_id, populate_existing=True)
            assert row is not None
            case = await session.get(Case, row.case_id, populate_existing=True)
            assert case is not None
            answer = await session.get(BotAnswer, case.answer_id) if case.answer_id is not None else None
            refs = await answer_refs(session, answer) if answer is not None else []
        mute_until = None
        try:
            mute_until = await asyncio.wait_for(
                self._effect(row, case, answer, refs), self._lease * CALL_SHARE_OF_LEASE
            )
        except (PlatformError, OSError, TimeoutError, PhraseRejected) as e:
            retryable = isinstance(e, OSError | TimeoutError) or (isinstance(e, PlatformError) and e.retryable)
            retry = retryable and row.attempts + 1 < MAX_EFFECT_ATTEMPTS
            return await self._failed(row, case, token, e, retry=retry)
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(CaseAction)
                .where(col(CaseAction.id) == action_id, col(CaseAction.lease_token) == token)
                .values(status=ActionStatus.DONE, done_at=utcnow(), lease_token=None, lease_until=None, error="")
            )
            await session.execute(
                update(Case).where(col(Case.id) == case.id).values(revision=Case.revision + 1, dirty=True)
            )
            if mute_until is not None:
                session.add(
                    Mute(
                        platform=case.platform,
                        workspace=case.workspace,
                        user_id=case.author_id,
                        until=mute_until,
                        case_id=case.id,
                        created_by_id=row.actor_id,
                    )
                )
                audit(
                    session,
                    actor=SYSTEM,
                    action="member.muted",
                    case_id=case.id,
                    scope=case.scope,
                    note=f"{case.platform} has no member time-outs: the bot ignores the author until "
                    f"{mute_until:%Y-%m-%d %H:%M} UTC",
                    detail={"user_id": case.author_id, "until": mute_until.isoformat()},
                )
        return EffectResult(True, _success_text(row, case, mute_until is not None))

    async def _effect(
        self, row: CaseAction, case: Case, answer: BotAnswer | None, refs: list[MessageRef]
    ) -> datetime | None:
        """Do it; returns the time until which the bot must ignore the author, for a time-out it keeps itself."""
        cfg = self._config.moderation
        if row.action == "add_word":
            scope = case.scope or self._config.default_scope.name
            actor = Actor(row.actor_platform, row.actor_id, row.actor_name)
            await self._phrases.add_blocked_phrase(scope=scope, phrase=row.argument, actor=actor, case_id=case.id)
            return None
        platform = self._platforms[case.platform]
        if row.action == MISSED and answer is not None:
            actor = Actor(row.actor_platform, row.actor_id, row.actor_name)
            await self._phrases.add_example(scope=answer.scope, question=answer.question, actor=actor, case_id=case.id)
            # The refusal is edited, not deleted: the thread keeps its shape and the member knows to ask again.
            await edit_all(platform, refs, cfg.reconsidered_note)
            return None
        if row.action == "remove":
            if answer is not None:
                await delete_all(platform, refs)
            else:
                await delete_all(platform, [case.message_ref])
        elif row.action == "warn":
            text = cfg.warning + (f"\n{row.argument}" if row.argument else "")
            await platform.reply_privately(Reply(case.place, case.author_id, text))
        elif row.action == "timeout":
            until = row.created_at + parse_duration(row.argument, default_minutes=cfg.timeout_minutes)
            reason = f"case #{case.id}: timed out by a moderator"
            if not await platform.timeout_member(case.place, case.author_id, until=until, reason=reason):
                return until
        elif row.action in FAULTS and answer is not None:
            await edit_all(platform, refs, cfg.retracted_note)
            target = question_ref(answer)
            if target.message_id.startswith("cmd-"):
                # Asked by slash command: there is no question message to reply to; follow the answer.
                target = refs[0] if refs else MessageRef(answer_place(answer), "")
            correction = row.argument or cfg.correction
            await platform.send(
                OutboundMessage(target.place, correction, reply_to=target if target.message_id else None)
            )
        return None

    async def _failed(
        self, row: CaseAction, case: Case, token: str, error: BaseException, *, retry: bool
    ) -> EffectResult:
        text = (str(error) or type(error).__name__)[:500]
        now = utcnow()
        log.warning("case %s: %s failed (attempt %d): %s", case.id, row.action, row.attempts + 1, text)
        async with self._sessions() as session, session.begin():
            values: dict[str, object] = {
                "attempts": CaseAction.attempts + 1,
                "error": text,
                "lease_token": None,
                "lease_until": None,
            }
            if retry:
                values["next_attempt_at"] = backoff(row.attempts + 1, base=5.0, now=now)
            else:
                values["status"] = ActionStatus.FAILED
            res = await session.execute(
                update(CaseAction)
                .where(col(CaseAction.id) == row.id, col(CaseAction.lease_token) == token)
                .values(**values)
            )
            if retry or not rowcount(res):
                return EffectResult(
                    False, f"{row.action} on case #{case.id} failed for now ({text}); retrying shortly."
                )
            audit(
                session,
                actor=SYSTEM,
                action=f"case.{row.action}.failed",
                case_id=case.id,
                scope=case.scope,
                note=f"{row.action} failed: {text}",
                detail={"action_id": row.id},
            )
            reopened = False
            if row.action in RESOLVING:
                reopen = await session.execute(
                    update(Case)
                    .where(
                        col(Case.id) == case.id,
                        col(Case.state) == CaseState.RESOLVED,
                        col(Case.resolution) == row.action,
                    )
                    .values(
                        state=sa.case(
                            (col(Case.card_message_id).is_(None), CaseState.OPEN.value), else_=CaseState.ROUTED.value
                        ),
                        resolution=None,
                        resolved_by_id=None,
                        resolved_by_name="",
                        resolved_at=None,
                    )
                )
                if rowcount(reopen):
                    reopened = True
                    audit(
                        session,
                        actor=SYSTEM,
                        action="case.reopened",
                        case_id=case.id,
                        scope=case.scope,
                        note=f"reopened because {row.action} failed",
                    )
            await session.execute(
                update(Case).where(col(Case.id) == case.id).values(revision=Case.revision + 1, dirty=True)
            )
        again = " The case is open again." if reopened else ""
        return EffectResult(False, f"{row.action} on case #{case.id} failed: {text}.{again}")


def _success_text(row: CaseAction, case: Case, muted_by_bot: bool) -> str:
    if row.action == "timeout" and muted_by_bot:
        return f"The author of case #{case.id} is timed out: the bot will not answer them for the period."
    texts = {
        "remove": "Removed the message of case #{id}.",
        "warn": "Warned the author of case #{id} privately.",
        "timeout": "Timed out the author of case #{id}.",
        "add_word": "Added {arg!r} to the word list.",
        "retract": "Retracted the answer of case #{id} and posted a correction.",
        "off_scope": "Retracted the answer of case #{id} (off-scope) and posted a correction.",
        "unsafe": "Retracted the answer of case #{id} (unsafe) and posted a correction.",
        "missed": "The question of case #{id} is now one of its scope's examples; the bot's reply asks the member "
        "to ask again.",
    }
    return texts.get(row.action, "Done: {action} on case #{id}.").format(
        id=case.id, arg=row.argument, action=row.action
    )
