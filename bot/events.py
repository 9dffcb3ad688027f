"""Platform-neutral event and message types, and the protocol every adapter implements.

Nothing here imports a platform library: adapters translate their platform's payloads into these
frozen dataclasses at the edge, and the core only ever sees these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

PlatformName = Literal["console", "slack", "discord", "memory"]

#: Canonical name of the flag reaction; adapters map platform emoji names onto it.
FLAG = "flag"


@dataclass(frozen=True, slots=True)
class Actor:
    """Someone who posts, reacts or presses a button."""

    platform: str
    user_id: str
    display_name: str = ""
    is_bot: bool = False
    #: Platform role or group ids the actor holds (Discord roles; Slack user groups when known).
    roles: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """A short human-readable name for logs and cards."""
        return self.display_name or self.user_id


@dataclass(frozen=True, slots=True)
class Place:
    """Where a message lives: platform, workspace (Slack team / Discord guild), channel and thread."""

    platform: str
    workspace: str
    channel: str
    thread: str | None = None
    is_direct: bool = False
    #: The channel a thread-channel belongs to (a Discord thread is a channel of its own), so a scope bound
    #: to a channel also answers in its threads. Not part of the place's identity.
    parent: str | None = field(default=None, compare=False)

    def in_thread(self, thread: str | None) -> Place:
        """This place, narrowed to a thread."""
        return Place(self.platform, self.workspace, self.channel, thread, self.is_direct, self.parent)


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message on a platform: a Slack `ts` or a Discord snowflake, with its place."""

    place: Place
    message_id: str

    @property
    def key(self) -> str:
        """A stable text key, unique across platforms, for database columns."""
        p = self.place
        return f"{p.platform}:{p.workspace}:{p.channel}:{self.message_id}"


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message posted by someone, as the core sees it."""

    ref: MessageRef
    author: Actor
    text: str
    #: True when the message mentions the bot (Slack app_mention, Discord @mention).
    mentions_bot: bool = False
    #: True when the message is addressed to another member: it @-mentions a user who is not the bot, replies to
    #: someone else's message (Discord), or is posted in a thread another member started (a Slack thread on their
    #: message, a Discord thread they opened). In a channel bound to a scope, such a message that does not also
    #: mention the bot is members talking among themselves.
    mentions_others: bool = False
    sent_at: datetime | None = None
    #: Whether the text came from a slash command (`/scopebot ask …`) rather than a plain message.
    via_command: bool = False
    permalink: str | None = None
    #: Correlates logs for one question; set by the adapter if the platform offers one.
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReactionAdded:
    """A reaction added to a message; `emoji` is canonical (`flag` for 🚩 on every platform)."""

    target: MessageRef
    reactor: Actor
    emoji: str
    #: Author of the reacted-to message when the platform says (Slack `item_user`).
    target_author_id: str | None = None


@dataclass(frozen=True, slots=True)
class CardAction:
    """A moderator (or anyone) pressed a button on a review card."""

    actor: Actor
    case_id: int
    action: str
    #: Where the card lives, so replies can go to the right channel.
    card: MessageRef | None = None
    #: Free text the moderator attached (a phrase for the word list, a correction).
    argument: str = ""


@dataclass(frozen=True, slots=True)
class CommandInvoked:
    """A `/scopebot …` command (Slack slash command, Discord application command, console `/…`)."""

    actor: Actor
    place: Place
    text: str


Event = InboundMessage | ReactionAdded | CardAction | CommandInvoked


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """Something the bot posts."""

    place: Place
    text: str
    #: Reply in the thread of this message (Slack thread_ts, Discord message reference).
    reply_to: MessageRef | None = None


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    """A message read back from the platform (for evidence snapshots)."""

    ref: MessageRef
    author: Actor
    text: str
    sent_at: datetime | None = None
    permalink: str | None = None


@dataclass(frozen=True, slots=True)
class CardButton:
    """One action button on a review card."""

    action: str
    label: str
    style: Literal["primary", "danger", "default"] = "default"


@dataclass(frozen=True, slots=True)
class ReviewCard:
    """What the router posts to a reviewer channel for one case."""

    case_id: int
    place: Place
    title: str
    fields: tuple[tuple[str, str], ...]
    body: str
    buttons: tuple[CardButton, ...]
    urgent: bool = False
    status: str = "open"
    #: Text to ping the moderators with (role or group mention), when escalating.
    mention: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """Private feedback to one actor (Slack ephemeral, Discord ephemeral or DM, console line)."""

    place: Place
    user_id: str
    text: str


class PlatformError(Exception):
    """A platform call failed; `retryable` tells whether trying later may help."""

    def __init__(self, message: str, *, retryable: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


EventSink = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PlatformLimits:
    """What a platform allows, so the core can stream and split within the rules."""

    max_message_chars: int = 4000
    #: Minimum seconds between edits of one message while streaming; 0 disables streaming edits.
    edit_interval: float = 1.0
    supports_edit: bool = True


@runtime_checkable
class Platform(Protocol):
    """What an adapter offers the core. Implementations translate, they do not decide."""

    name: str
    limits: PlatformLimits

    async def start(self, sink: EventSink) -> None:
        """Connect and begin delivering events to `sink`; returns once connected."""

    async def stop(self) -> None:
        """Disconnect cleanly."""

    async def send(self, message: OutboundMessage) -> MessageRef:
        """Post a message and return its reference."""

    async def edit(self, ref: MessageRef, text: str) -> None:
        """Replace the text of a message the bot posted."""

    async def delete(self, ref: MessageRef) -> None:
        """Delete a message (the bot's own, or a member's where permitted)."""

    async def fetch_message(self, ref: MessageRef) -> FetchedMessage | None:
        """Read a message back; None when it no longer exists."""

    async def post_review_card(self, card: ReviewCard, *, existing: MessageRef | None = None) -> MessageRef:
        """Post a review card, or update `existing` in place, and return its reference."""

    async def reply_privately(self, reply: Reply) -> None:
        """Tell one person something nobody else sees."""

    async def timeout_member(self, place: Place, user_id: str, *, until: datetime, reason: str) -> bool:
        """Time a member out until `until`; False when the platform has no such feature."""

    async def is_moderator(self, actor: Actor, *, place: Place) -> bool | None:
        """Platform-side moderator check (user groups, roles); None when the platform cannot tell."""
