"""One running bot for many fuzz examples: the app and its platforms on an event loop in a thread of its own.

Hypothesis drives sync tests; each example hands its coroutines to the bot's loop and waits for them.
The loop keeps running between examples, as in production, so heartbeats, the moderation router and
the fake servers carry on; the model and the embedding runtime load once per world, not per example.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from sqlmodel import func, select

from adapters.discord import DiscordAdapter
from adapters.discord_edge import reviewer_pings
from adapters.slack import SlackAdapter
from bot.app import App, build_app
from bot.config import load_config
from bot.models import BotAnswer
from tests import discord_fakes as dfakes
from tests.fakes import MemoryPlatform
from tests.faults_support import edit_config
from tests.slack_fakes import FakeSlack, http_settings
from tests.waiting import until as _until

T = TypeVar("T")

#: Log lines that are the bot refusing input, as opposed to failing on it.
REJECTION_MARKS = ("rejected",)


class LoopThread:
    """An event loop running in a daemon thread; `run()` submits a coroutine and waits for its result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-bot-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300.0) -> T:
        """Run `coro` on the loop and return its result (re-raising its exception here)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Cancel what is left, stop the loop and join its thread."""

        async def cancel_rest() -> None:
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        with contextlib.suppress(Exception):
            self.run(cancel_rest(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


async def until(check: Callable[[], Any], *, within: float = 30.0, what: str = "condition") -> Any:
    """`tests.waiting.until`, polling often: the fuzz world waits on fast in-process state."""
    return await _until(check, within=within, what=what, every=0.01)


@dataclass(repr=False)
class World:
    """A started bot on the memory platform, Slack over HTTP and Discord, each against its fake."""

    loop: LoopThread
    app: App
    mem: MemoryPlatform
    slack: FakeSlack | None = None
    slack_adapter: SlackAdapter | None = None
    http: aiohttp.ClientSession | None = None
    discord: dfakes.FakeDiscord | None = None
    discord_adapter: DiscordAdapter | None = None
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("World(...)")  # hypothesis prints failing examples; the whole app is noise there

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one coroutine on the bot's loop."""
        return self.loop.run(coro)

    def call(self, fn: Callable[[], T]) -> T:
        """Read state owned by the loop, on the loop."""

        async def read() -> T:
            return fn()

        return self.run(read())

    async def count(self) -> int:
        """How many answers are recorded."""
        async with self.app.sessions() as s:
            return int((await s.execute(select(func.count()).select_from(BotAnswer))).scalar_one())

    async def last(self) -> BotAnswer:
        """The newest answer row."""
        async with self.app.sessions() as s:
            query = select(BotAnswer).order_by(BotAnswer.id.desc()).limit(1)  # type: ignore[union-attr]
            return (await s.execute(query)).scalar_one()

    async def settle(self) -> None:
        """Wait until no event is being handled anywhere (adapters' tasks and the dispatcher's)."""
        dispatcher = self.app.dispatcher

        def idle() -> bool:
            slack_busy = self.slack_adapter is not None and bool(self.slack_adapter._tasks)
            discord_busy = self.discord_adapter is not None and bool(self.discord_adapter._inflight)
            return not slack_busy and not discord_busy and not dispatcher._inflight

        await asyncio.sleep(0.02)
        await until(idle, within=60, what="the bot to finish handling events")


def world_config(path: Path) -> Path:
    """The shared test config, plus Slack and Discord moderators and reviewer channels."""
    edits = {
        'reviewer_channels = { console = "reviewers", memory = "reviewers" }': (
            'reviewer_channels = { console = "reviewers", memory = "reviewers", slack = "CREVIEW", '
            f'discord = "{dfakes.REVIEWERS}" }}'
        ),
        'console = ["mod"]': f'console = ["mod"]\nslack_users = ["UMOD"]\ndiscord_roles = ["{dfakes.MOD_ROLE}"]',
    }
    return edit_config(path, **edits)


@contextlib.contextmanager
def running(config_path: Path, *, slack: bool = False, discord: bool = False) -> Iterator[World]:
    """Start the bot (and the fakes it talks to) on a loop thread; stop everything afterwards."""
    loop = LoopThread()
    world: World | None = None
    closers: list[Callable[[], Awaitable[object]]] = []
    try:

        async def start() -> World:
            config = load_config(config_path)
            mem = MemoryPlatform(moderators={"mod"})
            platforms: list[Any] = [mem]
            parts: dict[str, Any] = {}
            if slack:
                fake_slack = parts["slack"] = FakeSlack()
                await fake_slack.__aenter__()
                closers.append(lambda: fake_slack.__aexit__(None, None, None))
                http = parts["http"] = aiohttp.ClientSession()
                closers.append(http.close)
                parts["slack_adapter"] = SlackAdapter(http_settings(fake_slack))
                platforms.append(parts["slack_adapter"])
            if discord:
                fake_discord = parts["discord"] = dfakes.FakeDiscord()
                await fake_discord.start()
                closers.append(fake_discord.close)
                parts["discord_adapter"] = DiscordAdapter(
                    token=dfakes.TOKEN,
                    api_url=fake_discord.api_url,
                    gateway_url=fake_discord.gateway_url,
                    guild_ready_timeout=0.05,
                    pings=reviewer_pings(config),
                )
                platforms.append(parts["discord_adapter"])
            app = build_app(config, platforms=platforms)
            closers.append(app.stop)
            await app.start()
            return World(loop, app, mem, **parts)

        world = loop.run(start())
        yield world
    finally:
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                loop.run(close(), timeout=60)  # type: ignore[arg-type]
        loop.close()
        logging.getLogger(__name__).debug("fuzz world stopped")


# Asking through the memory platform ------------------------------------------------------------------

#: How a message reaches the bot: a mention, a DM, a bound channel, or chatter and bots it must ignore.
ADDRESSING = ("mention", "direct", "bound", "chatter", "bot")
VERDICTS = {"answer", "refuse", "block", "busy", "error"}


def unexpected(records: list[logging.LogRecord]) -> list[str]:
    """Log lines that mean something failed: errors, and tracebacks at any level."""
    return [f"{r.name}: {r.getMessage()[:300]}" for r in records if r.levelno >= logging.ERROR or r.exc_info]


def rejections(records: list[logging.LogRecord]) -> list[str]:
    """Log lines that refuse an input."""
    return [r.getMessage()[:300] for r in records if any(m in r.getMessage() for m in REJECTION_MARKS)]


def ask_memory(
    world: World, records: Callable[[], list[logging.LogRecord]], text: str, how: str, name: str, bad_id: str | None
) -> None:
    """Ask once on the memory platform: an addressed question gets exactly one reply and one clean row,
    anything else silence; a message with an id no platform makes is refused, and logged, once."""
    from bot.dispatcher import MAX_QUESTION_CHARS
    from bot.events import Actor, InboundMessage
    from bot.gate import normalize
    from bot.gate.smalltalk import small_talk
    from bot.sanitize import clean_text

    before = world.run(world.count())
    n = next(world.ids)
    author = Actor(world.mem.name, bad_id if bad_id is not None else f"u{n}", name, is_bot=how == "bot")
    channel = "admissions" if how == "bound" else f"D{n}" if how == "direct" else f"c{n}"

    async def emit() -> InboundMessage:
        ref = world.mem.post_as(author, world.mem.place(channel, direct=how == "direct"), text)
        msg = InboundMessage(ref=ref, author=author, text=text, mentions_bot=how in ("mention", "bot"))
        await world.mem.emit(msg)
        return msg

    msg = world.run(emit())
    replies = world.call(lambda: [p.text for p in world.mem.replies_to(msg.ref)])
    assert unexpected(records()) == []
    refused = rejections(records())
    if bad_id is not None:
        assert len(refused) == 1 and "author id" in refused[0], refused
        assert replies == [] and world.run(world.count()) == before
        return
    assert refused == []
    said = normalize.clean_text(clean_text(text))
    chatter = how == "bound" and any(c.isalpha() for c in said) and small_talk(said) == "acknowledgement"
    if how not in ("mention", "direct", "bound") or chatter:
        # Not for the bot; nor is a bare "ok" in a bound channel that does not name it (bot/dispatcher.py).
        assert replies == [] and world.run(world.count()) == before
        return
    assert len(replies) == 1, [r[:80] for r in replies]
    assert replies[0].strip()
    row = world.run(world.last())
    assert world.run(world.count()) == before + 1
    assert row.question == clean_text(text)[:MAX_QUESTION_CHARS]
    assert row.verdict in VERDICTS and row.question_message_id == msg.ref.message_id
    assert clean_text(row.answer) == row.answer
