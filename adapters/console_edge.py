"""Pure translation of console input lines into core events (no I/O)."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from bot.events import FLAG, Actor, CardAction, CommandInvoked, InboundMessage, MessageRef, Place, ReactionAdded
from bot.sanitize import MAX_CASE_ID

PLATFORM = "console"
#: The console's workspace, one per run. Message numbers start at 1 again every run, and the records an earlier
#: run left in the same database (answers, cases) are keyed by workspace and number: without it, the second
#: run's first answer collided with the first run's ("UNIQUE constraint failed: bot_answer_part.message_key").
WORKSPACE = f"local-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
DIRECT = "dm"

HELP = """\
Type a message and press Enter: in `dm` (where you start) it goes to the bot; in a #channel it is posted
there, and `@bot …` asks the bot. Commands:
  /as NAME              speak as another member (e.g. /as mod to act as a moderator)
  /in CHANNEL           move to a channel: dm, #general, #reviewers, …
  /flag N               flag message [N] with 🚩 (files a report)
  /react N EMOJI        add any reaction to message [N]
  /press CASE ACTION [TEXT]   press a button on a review card (dismiss, remove, warn, …)
  /scopebot ARGS        the bot's slash command (/scopebot help)
  /wait SECONDS         pause (let the moderation router run)
  /help                 this text
  /quit                 leave"""


@dataclass(frozen=True, slots=True)
class Session:
    """Who is typing and where."""

    user: str = "you"
    channel: str = DIRECT

    @property
    def place(self) -> Place:
        """The place the session is in."""
        return channel_place(self.channel)

    @property
    def actor(self) -> Actor:
        """The member typing."""
        return Actor(PLATFORM, self.user, self.user)


@dataclass(frozen=True, slots=True)
class SwitchUser:
    """`/as NAME`."""

    user: str


@dataclass(frozen=True, slots=True)
class SwitchChannel:
    """`/in CHANNEL`."""

    channel: str


@dataclass(frozen=True, slots=True)
class Wait:
    """`/wait SECONDS`."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Post:
    """A message to post; the adapter assigns its number, then it becomes an `InboundMessage`."""

    place: Place
    author: Actor
    text: str
    mentions_bot: bool


@dataclass(frozen=True, slots=True)
class Help:
    """`/help`."""


@dataclass(frozen=True, slots=True)
class Quit:
    """`/quit`."""


@dataclass(frozen=True, slots=True)
class Problem:
    """A line that could not be understood; `text` says what to type instead."""

    text: str


Parsed = SwitchUser | SwitchChannel | Wait | Post | Help | Quit | Problem | ReactionAdded | CardAction | CommandInvoked


def channel_place(channel: str) -> Place:
    """The console place for a channel name (`dm` is the direct conversation with the bot)."""
    name = channel.strip().lstrip("#").lower() or DIRECT
    return Place(PLATFORM, WORKSPACE, name, None, is_direct=name == DIRECT)


def number(text: str) -> int | None:
    """A message or case number as typed (`3`, `[3]`, `#3`); None unless plain ASCII digits in range."""
    # Not `str.isdigit`: it takes "²" and "١", which int() then refuses.
    m = re.fullmatch(r"[#\[]?([0-9]{1,10})\]?", text)
    n = int(m.group(1)) if m else 0
    return n if 0 < n <= MAX_CASE_ID else None


def message_ref(place: Place, number: int) -> MessageRef:
    """The reference of console message number `number`."""
    return MessageRef(place, str(number))


def parse_line(line: str, session: Session, *, bot_name: str, lookup: dict[int, MessageRef]) -> Parsed | None:
    """Turn one input line into what it means; None for a blank line."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    if not text.startswith("/"):
        first, _, after = text.partition(" ")
        if first.lower() in ("@bot", f"@{bot_name.lower()}"):
            return Post(session.place, session.actor, after.strip(), True)
        return Post(session.place, session.actor, text, False)
    cmd, _, rest = text[1:].partition(" ")
    cmd = cmd.lower()
    rest = rest.strip()
    if cmd in ("help", "?"):
        return Help()
    if cmd in ("quit", "exit"):
        return Quit()
    if cmd == "as":
        return SwitchUser(rest.split()[0]) if rest else Problem("usage: /as NAME")
    if cmd in ("in", "join"):
        return SwitchChannel(rest.split()[0]) if rest else Problem("usage: /in CHANNEL")
    if cmd == "wait":
        try:
            return Wait(min(3600.0, max(0.0, float(rest or "1"))))
        except ValueError:
            return Problem("usage: /wait SECONDS")
    if cmd in ("flag", "react"):
        bits = rest.split()
        n = number(bits[0]) if bits else None
        if n is None:
            return Problem(f"usage: /{cmd} N" + (" EMOJI" if cmd == "react" else ""))
        ref = lookup.get(n)
        if ref is None:
            return Problem(f"there is no message [{n}]")
        emoji = FLAG if cmd == "flag" else canonical_emoji(bits[1] if len(bits) > 1 else "")
        if not emoji:
            return Problem("usage: /react N EMOJI")
        return ReactionAdded(target=ref, reactor=session.actor, emoji=emoji)
    if cmd == "press":
        bits = rest.split(None, 2)
        case_id = number(bits[0]) if bits else None
        if len(bits) < 2 or case_id is None:
            return Problem("usage: /press CASE ACTION [TEXT]")
        return CardAction(
            actor=session.actor,
            case_id=case_id,
            action=bits[1].lower(),
            card=None,
            argument=bits[2] if len(bits) > 2 else "",
        )
    if cmd == "scopebot":
        return CommandInvoked(actor=session.actor, place=session.place, text=rest)
    return Problem(f"unknown command /{cmd}; type /help")


def canonical_emoji(name: str) -> str:
    """Map console spellings of a reaction onto canonical names (`🚩`, `:flag:` → `flag`)."""
    n = name.strip().strip(":").lower()
    if n in ("🚩", "flag", "triangular_flag_on_post", "red_flag"):
        return FLAG
    return n


def to_inbound(post: Post, number: int) -> InboundMessage:
    """The core event for a numbered console post."""
    return InboundMessage(
        ref=message_ref(post.place, number), author=post.author, text=post.text, mentions_bot=post.mentions_bot
    )
