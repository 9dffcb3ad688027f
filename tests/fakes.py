"""In-memory fakes of our own protocols, for unit tests. Real parts are tested for real elsewhere."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime

from bot.events import (
    Actor,
    Event,
    EventSink,
    FetchedMessage,
    MessageRef,
    OutboundMessage,
    Place,
    PlatformError,
    PlatformLimits,
    Reply,
    ReviewCard,
)


@dataclass
class Posted:
    """A message as the fake platform holds it."""

    ref: MessageRef
    author: Actor
    text: str
    reply_to: MessageRef | None = None
    deleted: bool = False
    edits: list[str] = field(default_factory=list)


class MemoryPlatform:
    """A `Platform` that keeps everything in lists; tests emit events and read what the bot did."""

    def __init__(
        self,
        name: str = "memory",
        *,
        limits: PlatformLimits | None = None,
        moderators: set[str] | None = None,
        workspace: str = "w1",
    ) -> None:
        self.name = name
        self.limits = limits or PlatformLimits(max_message_chars=2000, edit_interval=0.0)
        self.workspace = workspace
        self.bot = Actor(name, "bot", "scopebot", is_bot=True)
        self.messages: dict[str, Posted] = {}
        self.cards: dict[str, ReviewCard] = {}
        self.card_posts: list[ReviewCard] = []
        self.private: list[Reply] = []
        self.timeouts: list[tuple[str, datetime]] = []
        self.moderators = moderators
        self.fail_next: list[PlatformError] = []
        self._ids = itertools.count(1000)
        self._sink: EventSink | None = None
        self.started = False
        #: Whether the platform is connected; tests set it False to play a lost connection.
        self.connected = False

    # Test helpers -----------------------------------------------------------------------------

    def place(self, channel: str = "general", *, direct: bool = False, thread: str | None = None) -> Place:
        """A place on this platform."""
        return Place(self.name, self.workspace, channel, thread, is_direct=direct)

    def actor(self, user_id: str, *, roles: tuple[str, ...] = ()) -> Actor:
        """A member on this platform."""
        return Actor(self.name, user_id, user_id, roles=roles)

    def post_as(self, actor: Actor, place: Place, text: str) -> MessageRef:
        """Record a member's message (as if they had posted it) and return its reference."""
        ref = MessageRef(place, str(next(self._ids)))
        self.messages[ref.message_id] = Posted(ref, actor, text)
        return ref

    async def emit(self, event: Event) -> None:
        """Deliver an event to the bot and wait until it is handled."""
        assert self._sink is not None, "start() first"
        await self._sink(event)

    def replies_to(self, ref: MessageRef) -> list[Posted]:
        """The bot's messages in the thread of `ref`, in order."""
        return [m for m in self.messages.values() if m.reply_to == ref and m.author.is_bot]

    def bot_messages(self) -> list[Posted]:
        """Every message the bot posted, in order."""
        return [m for m in self.messages.values() if m.author.is_bot]

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    # Platform protocol ------------------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        self._sink = sink
        self.started = True
        self.connected = True

    async def stop(self) -> None:
        self.started = False
        self.connected = False

    async def send(self, message: OutboundMessage) -> MessageRef:
        self._maybe_fail()
        ref = MessageRef(message.place, str(next(self._ids)))
        self.messages[ref.message_id] = Posted(ref, self.bot, message.text, reply_to=message.reply_to)
        return ref

    async def edit(self, ref: MessageRef, text: str) -> None:
        self._maybe_fail()
        m = self.messages.get(ref.message_id)
        if m is None or m.deleted:
            raise PlatformError("message not found", retryable=False, status=404)
        m.edits.append(m.text)
        m.text = text

    async def delete(self, ref: MessageRef) -> None:
        self._maybe_fail()
        m = self.messages.get(ref.message_id)
        if m is None or m.deleted:
            raise PlatformError("message not found", retryable=False, status=404)
        m.deleted = True

    async def fetch_message(self, ref: MessageRef) -> FetchedMessage | None:
        m = self.messages.get(ref.message_id)
        if m is None or m.deleted:
            return None
        return FetchedMessage(ref=m.ref, author=m.author, text=m.text, permalink=f"memory://{ref.message_id}")

    async def post_review_card(self, card: ReviewCard, *, existing: MessageRef | None = None) -> MessageRef:
        self._maybe_fail()
        self.card_posts.append(card)
        if existing is not None and existing.message_id in self.cards:
            self.cards[existing.message_id] = card
            return existing
        ref = MessageRef(card.place, str(next(self._ids)))
        self.cards[ref.message_id] = card
        return ref

    async def reply_privately(self, reply: Reply) -> None:
        self.private.append(reply)

    async def timeout_member(self, place: Place, user_id: str, *, until: datetime, reason: str) -> bool:
        self.timeouts.append((user_id, until))
        return True

    async def is_moderator(self, actor: Actor, *, place: Place) -> bool | None:
        if self.moderators is None:
            return None
        return actor.user_id in self.moderators
