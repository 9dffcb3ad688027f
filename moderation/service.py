"""The moderation side the dispatcher talks to: flags, card buttons, mutes, and the `/scopebot` commands."""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from bot.commands import CommandRouter, Subcommand
from bot.config import Config
from bot.db import utcnow
from bot.events import Actor, CardAction, Place, Platform, ReactionAdded, Reply
from bot.outage import DatabaseWatch
from moderation.actions import ACTIONS, ActionService
from moderation.audit import entries
from moderation.effects import EffectRunner
from moderation.models import Case, Mute
from moderation.reports import ReportService
from moderation.router import Router
from moderation.store import reviewer_place
from moderation.views import audit_line, case_line, case_record, case_text, list_cases

log = logging.getLogger(__name__)

#: How often every active time-out is re-read (so that they hold through a database outage).
MUTE_SNAPSHOT_SECONDS = 30.0


class ModerationService:
    """Implements the dispatcher's `Moderation` protocol over the report, action and router services."""

    def __init__(
        self,
        *,
        config: Config,
        sessions: async_sessionmaker[AsyncSession],
        reports: ReportService,
        actions: ActionService,
        effects: EffectRunner,
        router: Router,
        watch: DatabaseWatch | None = None,
    ) -> None:
        self._config = config
        self._sessions = sessions
        self._watch = watch or DatabaseWatch()
        #: Every active time-out as last read, for questions asked while the database is unreachable.
        self._mutes: dict[tuple[str, str, str], datetime] = {}
        self._mutes_read_at = -math.inf
        self.reports = reports
        self.actions = actions
        self.effects = effects
        self.router = router

    async def on_reaction(self, platform: Platform, event: ReactionAdded) -> None:
        """A flag: file it."""
        result = await self.reports.file(platform=platform, event=event)
        log.info(
            "flag on %s by %s: %s (case %s)", event.target.key, event.reactor.user_id, result.outcome, result.case_id
        )

    async def on_card_action(self, platform: Platform, event: CardAction) -> None:
        """A card button: act, then tell the presser privately what happened."""
        place = event.card.place if event.card is not None else await self._card_place(event.case_id, platform)
        text = await self.act(
            platform=platform,
            actor=event.actor,
            place=place,
            case_id=event.case_id,
            action=event.action,
            argument=event.argument,
        )
        await platform.reply_privately(Reply(place, event.actor.user_id, text))

    async def act(
        self,
        *,
        platform: Platform | None,
        actor: Actor,
        place: Place | None,
        case_id: int,
        action: str,
        argument: str = "",
    ) -> str:
        """Decide an action, carry out its effect if this process can, and refresh the card."""
        outcome = await self.actions.decide(
            actor=actor, case_id=case_id, action=action, argument=argument, platform=platform, place=place
        )
        if not outcome.ok:
            return outcome.text
        lines = [outcome.text]
        if outcome.action_id is not None:
            result = await self.effects.run_now(outcome.action_id)
            if result is not None:
                lines.append(result.text)
            else:
                lines.append("The bot process connected to the case's platform will carry it out on its next run.")
        await self.router.sync_now(case_id)
        return " ".join(lines)

    async def is_muted(self, actor: Actor, place: Place) -> bool:
        """Whether a moderator's time-out, kept by the bot itself, covers `actor` now.

        Read from the database on every question, so a time-out set by any process holds at once. While the
        database is unreachable the time-outs it held when last read still hold (every active one is
        re-read at most every `MUTE_SNAPSHOT_SECONDS`); one set during the outage cannot be known.
        """
        key = (actor.platform, place.workspace, actor.user_id)
        if self._watch.down:
            return self._remembered(key)
        now = utcnow()
        try:
            async with self._sessions() as session:
                if time.monotonic() - self._mutes_read_at >= MUTE_SNAPSHOT_SECONDS:
                    rows = (
                        await session.execute(
                            select(Mute.platform, Mute.workspace, Mute.user_id, Mute.until).where(col(Mute.until) > now)
                        )
                    ).all()
                    snapshot: dict[tuple[str, str, str], datetime] = {}
                    for platform, workspace, user_id, ends in rows:
                        who = (platform, workspace, user_id)
                        snapshot[who] = max(ends, snapshot.get(who, ends))
                    self._mutes, self._mutes_read_at = snapshot, time.monotonic()
                    until = snapshot.get(key)  # the snapshot just read holds this member's time-out too
                else:
                    until = await session.scalar(
                        select(Mute.until)
                        .where(
                            Mute.platform == actor.platform,
                            Mute.workspace == place.workspace,
                            Mute.user_id == actor.user_id,
                            col(Mute.until) > now,
                        )
                        .order_by(col(Mute.until).desc())
                        .limit(1)
                    )
        except Exception as e:
            if not self._watch.lost(e, during="checking time-outs"):
                raise
            return self._remembered(key)
        if until is None:
            self._mutes.pop(key, None)
        else:
            self._mutes[key] = until
        return until is not None

    def _remembered(self, key: tuple[str, str, str]) -> bool:
        until = self._mutes.get(key)
        return until is not None and until > utcnow()

    async def _card_place(self, case_id: int, platform: Platform) -> Place:
        async with self._sessions() as session:
            case = await session.get(Case, case_id)
        if case is not None:
            where = reviewer_place(self._config, case)
            if where is not None:
                return where
        return Place(platform.name, "", "")

    # /scopebot subcommands (moderators only) ----------------------------------------------------

    def register_commands(self, commands: CommandRouter) -> None:
        """Add `/scopebot cases`, `/scopebot case N [ACTION [TEXT]]` and `/scopebot audit [N]`."""
        commands.register(
            Subcommand("cases", "cases [open|routed|resolved|all]", self._cmd_cases, moderators_only=True)
        )
        commands.register(
            Subcommand("case", f"case N [{'|'.join(ACTIONS)} [TEXT]]", self._cmd_case, moderators_only=True)
        )
        commands.register(Subcommand("audit", "audit [CASE]", self._cmd_audit, moderators_only=True))

    async def _cmd_cases(self, platform: Platform, actor: Actor, place: Place, args: list[str]) -> str:
        state = args[0].lower() if args else "unresolved"
        if state not in ("open", "routed", "resolved", "all", "unresolved"):
            return "Usage: /scopebot cases [open|routed|resolved|all]"
        async with self._sessions() as session:
            cases = await list_cases(session, state=state, limit=20)
        if not cases:
            return "No cases." if state == "all" else f"No {state} cases."
        return "\n".join(case_line(c) for c in cases)

    async def _cmd_case(self, platform: Platform, actor: Actor, place: Place, args: list[str]) -> str:
        if not args or not args[0].lstrip("#").isdigit():
            return f"Usage: /scopebot case N [{'|'.join(ACTIONS)} [TEXT]]"
        case_id = int(args[0].lstrip("#"))
        if len(args) == 1:
            async with self._sessions() as session:
                record = await case_record(session, case_id)
            return case_text(record) if record is not None else f"There is no case #{case_id}."
        return await self.act(
            platform=platform, actor=actor, place=place, case_id=case_id, action=args[1], argument=" ".join(args[2:])
        )

    async def _cmd_audit(self, platform: Platform, actor: Actor, place: Place, args: list[str]) -> str:
        case_id = int(args[0].lstrip("#")) if args and args[0].lstrip("#").isdigit() else None
        async with self._sessions() as session:
            found = await entries(session, case_id=case_id)
        if not found:
            return "The audit log is empty." if case_id is None else f"No audit entries for case #{case_id}."
        return "\n".join(audit_line(e) for e in found[-20:])
