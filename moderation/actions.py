"""Reviewer actions: rights first, then one transaction decides who wins; effects follow from the outbox.

Deciding is a database matter, so two moderators pressing at once cannot both act: resolving actions
(dismiss, remove, retract, off_scope, unsafe) are a conditional UPDATE on the case's state; once-per-case
actions (warn, timeout, escalate) and phrases insert a row unique per case; a claim is a conditional
UPDATE on the claimer. The loser is told who got there first. The platform effect (delete, edit, private
message, time-out) is written as a pending `CaseAction` in the same transaction and carried out by
`moderation.effects`, at once when this process has the platform, otherwise by the next router run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from bot.config import Config
from bot.db import utcnow
from bot.events import Actor, Place, Platform
from bot.gate import learned_block
from bot.models import BotAnswer
from moderation.audit import audit
from moderation.models import ActionStatus, Case, CaseAction, CaseState, RegressionExample
from moderation.rights import is_moderator
from moderation.store import rowcount

log = logging.getLogger(__name__)

RESOLVING = ("dismiss", "remove", "retract", "off_scope", "unsafe", "missed")
ONCE = ("warn", "timeout", "escalate")
ACTIONS = ("claim", *RESOLVING, *ONCE, "add_word")
#: Actions whose resolution says the bot's answer was at fault, and the regression kind each records.
FAULTS = {"retract": "wrong", "off_scope": "off_scope", "unsafe": "unsafe"}
#: A refusal a moderator judged wrong ("should have answered"): the question becomes one of the scope's
#: examples, the refusal is edited to ask the member to ask again, and a regression example expects `answer`.
#: Also for a block by the gate's learned screens, which do not overrule an example; not for a rule's block.
MISSED = "missed"
#: Actions that change nothing on the platform: done as soon as decided.
NO_EFFECT = ("claim", "dismiss", "escalate")
ALIASES = {
    "offscope": "off_scope",
    "wrong": "retract",
    "time_out": "timeout",
    "mute": "timeout",
    "add_phrase": "add_word",
    "word": "add_word",
    "delete": "remove",
    "should_answer": "missed",
    "should_have_answered": "missed",
    "wrong_refusal": "missed",
    "answer_it": "missed",
}
REFUSAL = "Only moderators can act on review cards. Nothing was changed."
MAX_PHRASE_CHARS = 200
MAX_TIMEOUT = timedelta(days=28)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What pressing a button did; `text` is the private reply to the presser."""

    ok: bool
    text: str
    case_id: int
    #: The pending effect to carry out now, when there is one.
    action_id: int | None = None


def normalize_action(name: str) -> str:
    """The canonical action name for what someone typed or pressed."""
    n = name.strip().lower().replace(" ", "_").replace("-", "_")
    return ALIASES.get(n, n)


def parse_duration(text: str, *, default_minutes: float) -> timedelta:
    """`30m`, `2h`, `1d`, `45` (minutes); empty gives the default. ValueError with a usable message."""
    if not text.strip():
        return timedelta(minutes=default_minutes)
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"cannot read {text!r} as a duration; use e.g. 30m, 2h or 1d")
    value = float(m.group(1))
    unit = (m.group(2) or "m").lower()
    span = timedelta(seconds=value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])
    if span <= timedelta(0) or span > MAX_TIMEOUT:
        raise ValueError("a time-out lasts more than 0 and at most 28 days")
    return span


def _who(name: str | None, user_id: str | None) -> str:
    return name or user_id or "someone"


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at is not None else "earlier"


class ActionService:
    """Checks rights and decides reviewer actions; `moderation.effects` carries out what they change."""

    def __init__(self, *, config: Config, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._config = config
        self._sessions = sessions

    def word_scope(self, case: Case) -> str:
        """The scope whose word list `add_word` extends: the case's, else the default scope."""
        return case.scope or self._config.default_scope.name

    async def may_act(self, platform: Platform, actor: Actor, place: Place) -> bool:
        """Whether `actor` is a moderator (configuration first, then the platform's roles or groups)."""
        return await is_moderator(self._config.moderation.moderators, platform, actor, place)

    async def decide(
        self,
        *,
        actor: Actor,
        case_id: int,
        action: str,
        argument: str = "",
        platform: Platform | None = None,
        place: Place | None = None,
    ) -> ActionOutcome:
        """Check rights (unless `platform` is None: the trusted command line) and record the action."""
        action = normalize_action(action)
        if platform is not None and not await self.may_act(platform, actor, place or _nowhere(actor)):
            log.info("refused %s on case %s by %s: not a moderator", action, case_id, actor.user_id)
            return ActionOutcome(False, REFUSAL, case_id)
        if action not in ACTIONS:
            return ActionOutcome(False, f"Unknown action {action!r}. Actions: {', '.join(ACTIONS)}.", case_id)
        async with self._sessions() as session:
            case = await session.get(Case, case_id)
        if case is None:
            return ActionOutcome(False, f"There is no case #{case_id}.", case_id)
        problem = self._invalid(case, action, argument) or await self._invalid_missed(case, action)
        if problem:
            return ActionOutcome(False, problem, case_id)
        try:
            async with self._sessions() as session, session.begin():
                return await self._decide(session, case, actor, action, argument.strip())
        except IntegrityError:
            return await self._explain_once(case_id, action, argument)

    def _invalid(self, case: Case, action: str, argument: str) -> str:
        if (action in FAULTS or action == MISSED) and case.answer_id is None:
            return f"Case #{case.id} is about a member's message, not a bot answer; use remove or dismiss."
        if action in ("warn", "timeout") and case.author_is_bot:
            return f"Case #{case.id} is about the bot's own answer; retract it instead."
        if action in ("warn", "timeout") and not case.author_id:
            return f"The author of case #{case.id}'s message is unknown."
        if action == "add_word":
            phrase = argument.strip()
            if not phrase:
                return "Say which phrase to add, e.g. `/press 12 add_word cheap essays`."
            if len(phrase) > MAX_PHRASE_CHARS:
                return f"A phrase may have at most {MAX_PHRASE_CHARS} characters."
        if action == "timeout":
            try:
                parse_duration(argument, default_minutes=self._config.moderation.timeout_minutes)
            except ValueError as e:
                return f"Time-out not set: {e}."
        return ""

    async def _invalid_missed(self, case: Case, action: str) -> str:
        """`missed` is for a refusal, or a block by a learned screen: an answer given is judged with the other
        actions, and an example does not lift a rule's or a word list's block."""
        if action != MISSED or case.answer_id is None:
            return ""
        async with self._sessions() as session:
            answer = await session.get(BotAnswer, case.answer_id)
        if answer is None:
            return f"The reply of case #{case.id} is no longer on record."
        if answer.verdict == "block" and not learned_block(answer.gate_rule):
            return (
                f"Case #{case.id}'s question was blocked by a rule or a word list ({answer.reason}); an example does "
                "not lift that. A blocked word is removed with `scope remove-word`."
            )
        if answer.verdict not in ("refuse", "block"):
            what = "was answered" if answer.verdict == "answer" else f"got the verdict {answer.verdict!r}"
            return (
                f"Case #{case.id}'s question {what}, not refused; `missed` is for a question the bot refused "
                "but should have answered."
            )
        return ""

    async def _decide(
        self, session: AsyncSession, case: Case, actor: Actor, action: str, argument: str
    ) -> ActionOutcome:
        assert case.id is not None
        now = utcnow()
        if action == "claim":
            res = await session.execute(
                update(Case)
                .where(
                    col(Case.id) == case.id, col(Case.claimed_by_id).is_(None), col(Case.state) != CaseState.RESOLVED
                )
                .values(
                    claimed_by_id=actor.user_id,
                    claimed_by_name=actor.label,
                    claimed_at=now,
                    revision=Case.revision + 1,
                    dirty=True,
                )
            )
            if not rowcount(res):
                return await self._explain_claim(session, case.id, actor)
        elif action in RESOLVING:
            res = await session.execute(
                update(Case)
                .where(col(Case.id) == case.id, col(Case.state) != CaseState.RESOLVED)
                .values(
                    state=CaseState.RESOLVED,
                    resolution=action,
                    resolved_by_id=actor.user_id,
                    resolved_by_name=actor.label,
                    resolved_at=now,
                    urgent=False,
                    revision=Case.revision + 1,
                    dirty=True,
                )
            )
            if not rowcount(res):
                return await self._explain_resolved(session, case.id)
            await self._fault(session, case, actor, action)
        elif action == "escalate":
            res = await session.execute(
                update(Case)
                .where(col(Case.id) == case.id, col(Case.escalated).is_(False), col(Case.state) != CaseState.RESOLVED)
                .values(
                    escalated=True,
                    urgent=True,
                    ping_pending=True,
                    escalation_reason=f"escalated by {actor.label}",
                    revision=Case.revision + 1,
                    dirty=True,
                )
            )
            if not rowcount(res):
                fresh = await session.get(Case, case.id, populate_existing=True)
                if fresh is not None and fresh.state == CaseState.RESOLVED:
                    return await self._explain_resolved(session, case.id)
                return ActionOutcome(False, f"Case #{case.id} is already escalated.", case.id)
        else:
            await session.execute(
                update(Case).where(col(Case.id) == case.id).values(revision=Case.revision + 1, dirty=True)
            )
        row = CaseAction(
            case_id=case.id,
            action=action,
            dedupe=self._dedupe(case, action, argument, actor, now),
            actor_platform=actor.platform,
            actor_id=actor.user_id,
            actor_name=actor.label,
            argument=argument,
            status=ActionStatus.DONE if action in NO_EFFECT else ActionStatus.PENDING,
            done_at=now if action in NO_EFFECT else None,
        )
        session.add(row)
        await session.flush()
        detail: dict[str, object] = {"action_id": row.id}
        if argument:
            detail["argument"] = argument[:500]
        audit(
            session,
            actor=actor,
            action=f"case.{action}",
            case_id=case.id,
            scope=case.scope,
            note=_note(case, action),
            detail=detail,
        )
        pending = row.id if action not in NO_EFFECT else None
        return ActionOutcome(True, _done_text(case, action, argument, self.word_scope(case)), case.id, pending)

    def _dedupe(self, case: Case, action: str, argument: str, actor: Actor, now: datetime) -> str:
        if action == "add_word":
            return f"add_word:{self.word_scope(case)}:{' '.join(argument.lower().split())}"[:600]
        if action == "claim":
            return f"claim:{actor.platform}:{actor.user_id}"
        if action in RESOLVING:
            # Resolution is decided by the state UPDATE; a case reopened after a failed effect may resolve again.
            return f"{action}@{now.isoformat()}"
        return action

    async def _fault(self, session: AsyncSession, case: Case, actor: Actor, action: str) -> None:
        """A bot reply judged at fault: hide an answer for good (a wrong refusal stays, to be edited), and keep
        its question as a regression example."""
        if case.answer_id is None or action not in (*FAULTS, "remove", MISSED):
            return
        answer = await session.get(BotAnswer, case.answer_id)
        if answer is None or case.id is None:
            return
        if action != MISSED:
            await session.execute(update(BotAnswer).where(col(BotAnswer.id) == answer.id).values(hidden=True))
        session.add(
            RegressionExample(
                case_id=case.id,
                scope=answer.scope,
                kind=MISSED if action == MISSED else FAULTS.get(action, "unsafe"),
                question=answer.question,
                answer_id=answer.id,
                created_by_id=actor.user_id,
            )
        )

    async def _explain_claim(self, session: AsyncSession, case_id: int, actor: Actor) -> ActionOutcome:
        fresh = await session.get(Case, case_id, populate_existing=True)
        assert fresh is not None
        if fresh.state == CaseState.RESOLVED:
            return await self._explain_resolved(session, case_id)
        if fresh.claimed_by_id == actor.user_id:
            return ActionOutcome(True, f"You already claimed case #{case_id}.", case_id)
        return ActionOutcome(
            False,
            f"Case #{case_id} is already claimed by {_who(fresh.claimed_by_name, fresh.claimed_by_id)} "
            f"({_when(fresh.claimed_at)}).",
            case_id,
        )

    async def _explain_resolved(self, session: AsyncSession, case_id: int) -> ActionOutcome:
        fresh = await session.get(Case, case_id, populate_existing=True)
        assert fresh is not None
        return ActionOutcome(
            False,
            f"Case #{case_id} was already resolved by {_who(fresh.resolved_by_name, fresh.resolved_by_id)} "
            f"({fresh.resolution}, {_when(fresh.resolved_at)}). Nothing was changed.",
            case_id,
        )

    async def _explain_once(self, case_id: int, action: str, argument: str) -> ActionOutcome:
        async with self._sessions() as session:
            case = await session.get(Case, case_id)
            assert case is not None
            dedupe = self._dedupe(case, action, argument.strip(), Actor("", ""), utcnow())
            prior = await session.scalar(
                select(CaseAction).where(CaseAction.case_id == case_id, CaseAction.dedupe == dedupe)
            )
        who = _who(prior.actor_name, prior.actor_id) if prior is not None else "another moderator"
        at = _when(prior.created_at) if prior is not None else "just now"
        return ActionOutcome(False, f"{who} already did {action} on case #{case_id} ({at}).", case_id)


def _nowhere(actor: Actor) -> Place:
    return Place(actor.platform, "", "")


def _note(case: Case, action: str) -> str:
    kind = "bot answer" if case.answer_id is not None else "message"
    return f"{action} on the {kind} ({case.platform} #{case.channel})"


def _done_text(case: Case, action: str, argument: str, scope: str) -> str:
    texts = {
        "claim": "You claimed case #{id}.",
        "dismiss": "Case #{id} dismissed: the message stays.",
        "remove": "Case #{id} resolved: removing the message.",
        "retract": "Case #{id} resolved: retracting the answer as wrong.",
        "off_scope": "Case #{id} resolved: retracting the answer as off-scope.",
        "unsafe": "Case #{id} resolved: retracting the answer as unsafe.",
        "warn": "Warning the author of case #{id}.",
        "timeout": "Timing out the author of case #{id}.",
        "escalate": "Case #{id} escalated.",
        "add_word": "Adding {arg!r} to the word list of scope {scope}.",
        "missed": "Case #{id} resolved: scope {scope} should have answered it.",
    }
    return texts[action].format(id=case.id, arg=argument, scope=scope)
