"""The dispatch boundary: every platform event enters here, and any failure is caught here, once."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.commands import CommandRouter
from bot.config import Config, ScopeConfig
from bot.events import (
    Actor,
    CardAction,
    CommandInvoked,
    Event,
    InboundMessage,
    MessageRef,
    OutboundMessage,
    Place,
    Platform,
    PlatformError,
    ReactionAdded,
    Reply,
)
from bot.gate.normalize import clean_text
from bot.gate.smalltalk import small_talk
from bot.logs import request_id
from bot.pipeline import Pipeline
from bot.ratelimit import RateLimiter
from bot.sanitize import MalformedEvent, clean_event
from bot.scopes import ScopeRegistry

log = logging.getLogger(__name__)

#: Longest question accepted at all; longer text is cut here (the model's window cuts it further).
MAX_QUESTION_CHARS = 100_000
SLOW_DOWN_TEXT = "You're asking faster than I can answer. Please wait about {wait} s before your next question."
CHANNEL_BUSY_TEXT = "I'm getting a lot of questions in this channel right now. Please try again in about {wait} s."


class Moderation(Protocol):
    """What the dispatcher hands to the moderation side."""

    async def on_reaction(self, platform: Platform, event: ReactionAdded) -> None:
        """A reaction was added (it may be a flag)."""

    async def on_card_action(self, platform: Platform, event: CardAction) -> None:
        """A review-card button was pressed."""

    async def is_muted(self, actor: Actor, place: Place) -> bool:
        """Whether the bot must not answer this person now (a Slack-side timeout)."""


class Dispatcher:
    """Decides what an event is for, runs it, and keeps serving whatever happens inside."""

    def __init__(
        self,
        *,
        config: Config,
        scopes: ScopeRegistry,
        pipeline: Pipeline,
        commands: CommandRouter,
        moderation: Moderation | None = None,
    ) -> None:
        self._config = config
        self._scopes = scopes
        self._pipeline = pipeline
        self._commands = commands
        self._moderation = moderation
        self._inflight: set[asyncio.Task[object]] = set()
        self._per_user = RateLimiter(limit=config.bot.user_questions_per_minute)
        self._per_channel = RateLimiter(limit=config.bot.channel_questions_per_minute)
        # Each member or channel is told about a limit once a minute, not once per message.
        self._told = RateLimiter(limit=1)

    def sink_for(self, platform: Platform) -> Callable[[Event], Awaitable[None]]:
        """The callback a platform delivers its events to."""

        async def sink(event: Event) -> None:
            await self.handle(platform, event)

        return sink

    def scope_for(self, msg: InboundMessage) -> ScopeConfig | None:
        """The scope a message is addressed to, or None when it is not for the bot."""
        if msg.author.is_bot:
            return None
        addressed = msg.mentions_bot or msg.ref.place.is_direct or msg.via_command
        bound = self._scopes.bound_to(msg.ref.place)
        if bound is not None:
            # In a channel bound to a scope every message is for the bot, but a bare "ok" or "lol" that does not
            # name it is members talking among themselves: answering each one would only add noise. (A message of
            # only emoji still gets its reply: a member who sent it should not wonder whether the bot is there.)
            clean = clean_text(msg.text)
            if not addressed and any(c.isalpha() for c in clean) and small_talk(clean) == "acknowledgement":
                return None
            # "@sam you coming tonight?", or a reply to another member's message: addressed to them, not to the bot.
            if not addressed and msg.mentions_others:
                return None
            return bound
        if addressed:
            return self._scopes.default
        return None

    async def handle(self, platform: Platform, event: Event) -> None:
        """Handle one event; a failure is logged with its traceback and answered with an apology."""
        try:
            # Once, here, so nothing deeper meets text the database refuses or ids longer than its columns.
            event = clean_event(event)
        except MalformedEvent as e:
            log.warning("rejected a malformed %s from %s: %s", type(event).__name__, platform.name, e)
            return
        rid = uuid.uuid4().hex[:12]
        if isinstance(event, InboundMessage) and event.request_id:
            rid = event.request_id[:64]
        token = request_id.set(rid)
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self._route(platform, event, rid)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("failed to handle %s from %s", type(event).__name__, platform.name)
            await self._apologize(platform, event)
        finally:
            request_id.reset(token)
            if task is not None:
                self._inflight.discard(task)

    async def _route(self, platform: Platform, event: Event, rid: str) -> None:
        if isinstance(event, InboundMessage):
            scope = self.scope_for(event)
            if scope is None:
                return
            if self._moderation is not None and await self._moderation.is_muted(event.author, event.ref.place):
                log.info("not answering %s: timed out by a moderator", event.author.user_id)
                return
            if await self._over_limit(platform, event):
                return
            if len(event.text) > MAX_QUESTION_CHARS:
                event = dataclasses.replace(event, text=event.text[:MAX_QUESTION_CHARS])
            await self._pipeline.answer(event, scope, platform, request_id=rid)
        elif isinstance(event, ReactionAdded):
            if self._moderation is not None and event.emoji in self._config.moderation.flag_emojis:
                await self._moderation.on_reaction(platform, event)
        elif isinstance(event, CardAction):
            if self._moderation is not None:
                await self._moderation.on_card_action(platform, event)
        elif isinstance(event, CommandInvoked):
            await self._command(platform, event, rid)

    async def _over_limit(self, platform: Platform, msg: InboundMessage) -> bool:
        """Apply the per-member and per-channel limits; tell the asker once per minute when over."""
        place = msg.ref.place
        user_key = f"{place.platform}:{place.workspace}:{msg.author.user_id}"
        channel_key = f"{place.platform}:{place.workspace}:{place.channel}"
        wait, text, key = self._per_user.hit(user_key), SLOW_DOWN_TEXT, user_key
        if not wait:
            wait, text, key = self._per_channel.hit(channel_key), CHANNEL_BUSY_TEXT, channel_key
        if not wait:
            return False
        log.info("not answering %s: rate limit on %s, retry in %.0f s", msg.author.user_id, key, wait)
        if not self._told.hit(key):
            reply_to = None if msg.via_command else msg.ref
            await platform.send(OutboundMessage(place, text.format(wait=max(1, round(wait))), reply_to=reply_to))
        return True

    async def _command(self, platform: Platform, event: CommandInvoked, rid: str) -> None:
        name, _, rest = event.text.strip().partition(" ")
        if name.lower() == "ask":
            if not rest.strip():
                await platform.reply_privately(Reply(event.place, event.actor.user_id, "Usage: /scopebot ask QUESTION"))
                return
            msg = InboundMessage(
                ref=MessageRef(event.place, f"cmd-{rid}"),
                author=event.actor,
                text=rest.strip(),
                via_command=True,
            )
            await self._route(platform, msg, rid)
            return
        reply = await self._commands.run(platform, event.actor, event.place, event.text)
        await platform.reply_privately(Reply(event.place, event.actor.user_id, reply))

    async def _apologize(self, platform: Platform, event: Event) -> None:
        text = self._config.bot.apology
        try:
            if isinstance(event, InboundMessage):
                if self.scope_for(event) is not None:
                    await platform.send(OutboundMessage(event.ref.place, text, reply_to=event.ref))
            elif isinstance(event, CommandInvoked):
                await platform.reply_privately(Reply(event.place, event.actor.user_id, text))
            elif isinstance(event, CardAction) and event.card is not None:
                await platform.reply_privately(Reply(event.card.place, event.actor.user_id, text))
        except (PlatformError, OSError) as e:
            log.warning("could not send the apology either: %s", e)

    async def drain(self, grace: float) -> None:
        """Wait up to `grace` seconds for events being handled, then cancel the rest."""
        tasks = [t for t in self._inflight if t is not asyncio.current_task()]
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
