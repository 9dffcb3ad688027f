"""The console adapter: a terminal chat in which one person can play every role.

Reads lines from standard input (a terminal, or a script when piped) and prints what members, the bot
and the reviewer channel post. Interactive sessions see answers stream in; scripts see final text only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from adapters.console_edge import (
    HELP,
    PLATFORM,
    WORKSPACE,
    Help,
    Post,
    Problem,
    Quit,
    Session,
    SwitchChannel,
    SwitchUser,
    Wait,
    channel_place,
    message_ref,
    parse_line,
    to_inbound,
)
from bot.events import (
    Actor,
    CardAction,
    CommandInvoked,
    EventSink,
    FetchedMessage,
    MessageRef,
    OutboundMessage,
    Place,
    PlatformError,
    PlatformLimits,
    ReactionAdded,
    Reply,
    ReviewCard,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Line:
    ref: MessageRef
    author: Actor
    text: str
    sent_at: datetime
    deleted: bool = False


class ConsoleAdapter:
    """A `Platform` on standard input and output."""

    name = PLATFORM

    def __init__(self, *, stdin: TextIO, stdout: TextIO, interactive: bool, bot_name: str = "scopebot") -> None:
        self._in = stdin
        self._out = stdout
        self.interactive = interactive
        self.bot_name = bot_name
        self.bot = Actor(PLATFORM, bot_name, bot_name, is_bot=True)
        self.limits = PlatformLimits(max_message_chars=4000, edit_interval=0.2 if interactive else 0.0)
        self.session = Session()
        self._sink: EventSink | None = None
        self._lines: dict[int, _Line] = {}
        self._refs: dict[int, MessageRef] = {}
        self._next = 1
        #: The message being streamed on the current terminal line, and what of it is printed.
        self._streaming: tuple[int, str] | None = None
        self._inbox: asyncio.Queue[str | None] | None = None
        self._stopped = False

    @property
    def connected(self) -> bool:
        """Whether the console is taking input (between `start()` and `stop()`)."""
        return self._sink is not None and not self._stopped

    async def start(self, sink: EventSink) -> None:
        """Remember where events go; reading starts with `run()`."""
        self._sink = sink
        self._stopped = False
        if self.interactive:
            self._print(f"{self.bot_name} console — type /help for commands, /quit to leave.")

    async def stop(self) -> None:
        """Finish any half-printed line; `run()` returns once the line in hand is handled."""
        self._stopped = True
        if self._inbox is not None:
            self._inbox.put_nowait(None)
        self._end_stream()

    async def run(self) -> None:
        """Read and act on lines until end of input or `/quit`; each line is handled before the next."""
        assert self._sink is not None, "start() first"
        lines = self._inbox = self._read_lines()
        while not self._stopped:
            if self.interactive:
                self._write(f"{self.session.user}@{self._channel_label(self.session.place)}> ")
            line = await lines.get()
            if line is None or self._stopped:
                return
            parsed = parse_line(line, self.session, bot_name=self.bot_name, lookup=self._refs)
            if parsed is None:
                continue
            if isinstance(parsed, Quit):
                return
            await self._act(parsed)

    def _read_lines(self) -> asyncio.Queue[str | None]:
        """Read input on a daemon thread, so a blocked read never holds up shutdown."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def pump() -> None:
            try:
                for line in self._in:
                    if loop.is_closed() or self._stopped:
                        return
                    loop.call_soon_threadsafe(queue.put_nowait, line)
            except (OSError, ValueError) as e:
                log.debug("console input closed: %s", e)
            except RuntimeError:
                # The bot stopped (its event loop closed) while this thread still had input to hand over.
                return
            finally:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(queue.put_nowait, None)

        threading.Thread(target=pump, name="console-input", daemon=True).start()
        return queue

    async def _act(self, parsed: object) -> None:
        assert self._sink is not None
        if isinstance(parsed, Help):
            self._print(HELP)
        elif isinstance(parsed, Problem):
            self._print(f"  ! {parsed.text}")
        elif isinstance(parsed, SwitchUser):
            self.session = Session(parsed.user, self.session.channel)
            self._print(f"  (you are now {parsed.user})")
        elif isinstance(parsed, SwitchChannel):
            self.session = Session(self.session.user, channel_place(parsed.channel).channel)
            self._print(f"  (you are now in {self._channel_label(self.session.place)})")
        elif isinstance(parsed, Wait):
            await asyncio.sleep(parsed.seconds)
        elif isinstance(parsed, Post):
            n = self._store(
                parsed.place,
                parsed.author,
                parsed.text if not parsed.mentions_bot else f"@{self.bot_name} {parsed.text}",
            )
            await self._sink(to_inbound(parsed, n))
        elif isinstance(parsed, ReactionAdded | CardAction | CommandInvoked):
            if isinstance(parsed, ReactionAdded):
                self._print(f"  ({parsed.reactor.user_id} reacted :{parsed.emoji}: to [{parsed.target.message_id}])")
            await self._sink(parsed)

    # Platform protocol -------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> MessageRef:
        """Print a bot message and number it."""
        n = self._store(message.place, self.bot, message.text, reply_to=message.reply_to, echo=False)
        line = self._lines[n]
        if self.interactive and message.place == self.session.place:
            self._end_stream()
            self._write(self._format(n, line, message.reply_to).removesuffix(" …"))
            self._streaming = (n, message.text.removesuffix(" …"))
        else:
            self._print(self._format(n, line, message.reply_to))
        return line.ref

    def _line(self, ref: MessageRef) -> _Line | None:
        """This run's message `ref` (a message of an earlier run, whatever its number, is not one of them)."""
        if ref.place.workspace != WORKSPACE or not ref.message_id.isdigit():
            return None
        return self._lines.get(int(ref.message_id))

    async def edit(self, ref: MessageRef, text: str) -> None:
        """Show the new text: appended in place while streaming, otherwise as an edited line."""
        line = self._line(ref)
        if line is None or line.deleted:
            raise PlatformError(f"message [{ref.message_id}] does not exist", retryable=False, status=404)
        n = int(ref.message_id)
        line.text = text
        if self._streaming is not None and self._streaming[0] == n:
            shown, new = self._streaming[1], text.removesuffix(" …")
            if new.startswith(shown):
                self._write(new[len(shown) :])
                self._streaming = (n, new)
                return
        self._end_stream()
        self._print(f"[{n}] (edited) {self._who(line)}: {text}")

    async def delete(self, ref: MessageRef) -> None:
        """Mark a message deleted."""
        line = self._line(ref)
        if line is None or line.deleted:
            raise PlatformError(f"message [{ref.message_id}] does not exist", retryable=False, status=404)
        n = int(ref.message_id)
        line.deleted = True
        self._end_stream()
        self._print(f"[{n}] (deleted)")

    async def fetch_message(self, ref: MessageRef) -> FetchedMessage | None:
        """A printed message, unless deleted."""
        line = self._line(ref)
        if line is None or line.deleted:
            return None
        return FetchedMessage(
            ref=line.ref,
            author=line.author,
            text=line.text,
            sent_at=line.sent_at,
            permalink=f"console:[{ref.message_id}]",
        )

    async def post_review_card(self, card: ReviewCard, *, existing: MessageRef | None = None) -> MessageRef:
        """Print a review card (again, when updated) with the commands for its buttons."""
        text = render_card(card)
        if existing is not None and self._line(existing) is not None:
            await self.edit(existing, text)
            return existing
        return await self.send(OutboundMessage(card.place, text))

    async def reply_privately(self, reply: Reply) -> None:
        """Print a line only `reply.user_id` is meant to see."""
        self._end_stream()
        self._print(f"  (only {reply.user_id} sees) {self.bot_name}: {reply.text}")

    async def timeout_member(self, place: Place, user_id: str, *, until: datetime, reason: str) -> bool:
        """The console has no member timeouts; the bot stops answering instead."""
        return False

    async def is_moderator(self, actor: Actor, *, place: Place) -> bool | None:
        """The console cannot tell; the configuration decides."""
        return None

    # Output ------------------------------------------------------------------------------------

    def _store(
        self, place: Place, author: Actor, text: str, *, reply_to: MessageRef | None = None, echo: bool = True
    ) -> int:
        n = self._next
        self._next += 1
        ref = message_ref(place, n)
        self._lines[n] = _Line(ref, author, text, datetime.now().astimezone())
        self._refs[n] = ref
        if echo:
            self._end_stream()
            self._print(self._format(n, self._lines[n], reply_to))
        return n

    def _format(self, n: int, line: _Line, reply_to: MessageRef | None) -> str:
        thread = f" ↳[{reply_to.message_id}]" if reply_to is not None else ""
        return f"[{n}] {self._channel_label(line.ref.place)} {self._who(line)}{thread}: {line.text}"

    @staticmethod
    def _who(line: _Line) -> str:
        return line.author.label

    @staticmethod
    def _channel_label(place: Place) -> str:
        return "dm" if place.is_direct else f"#{place.channel}"

    def _end_stream(self) -> None:
        if self._streaming is not None:
            self._streaming = None
            self._write("\n")

    def _print(self, text: str) -> None:
        self._write(text + "\n")

    def _write(self, text: str) -> None:
        try:
            self._out.write(text)
            self._out.flush()
        except (BrokenPipeError, ValueError):
            log.debug("console output closed")


def render_card(card: ReviewCard) -> str:
    """A review card as console text."""
    head = f"{'🔴 URGENT ' if card.urgent else ''}{card.title} [{card.status}]"
    if card.mention:
        head = f"{card.mention} {head}"
    lines = [head]
    lines.extend(f"    {k}: {v}" for k, v in card.fields)
    if card.body:
        lines.extend(f"    | {b}" for b in card.body.splitlines())
    if card.buttons:
        lines.append("    actions: " + " · ".join(f"/press {card.case_id} {b.action}" for b in card.buttons))
    return "\n".join(lines)
