"""Hostile messages through the real app (gate, knowledge, tiny model, database) on the memory platform.

One app per test, many messages per app: hypothesis drives a sync test, and every example runs its
coroutines on the app's own event loop (an `asyncio.Runner` kept open for the whole test), so the
model and the embedding runtime load once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from bot import db
from bot.app import App, build_app
from bot.config import load_config
from bot.dispatcher import MAX_QUESTION_CHARS
from bot.events import Actor, InboundMessage
from bot.gate.lexical import LexicalGate
from bot.knowledge import KnowledgeIndex
from bot.llm.client import Generation
from bot.llm.engine import SamplingParams
from bot.llm.prompt import PromptParts
from bot.models import BotAnswer
from bot.pipeline import Pipeline
from bot.sanitize import clean_text
from tests.fakes import MemoryPlatform
from tests.fuzz_strategies import MEGABYTE, hostile_ids, hostile_text, wild_text

T = TypeVar("T")
CI = settings.get_current_profile_name() == "ci"
#: Each example is a question through the whole app: a small budget in CI, a large one when deep.
PER_APP = settings(
    max_examples=20 if CI else 500,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
VERDICTS = {"answer", "refuse", "block", "busy", "error"}


@dataclass(repr=False)
class Live:
    """A started app on a memory platform, and the loop it runs on."""

    runner: asyncio.Runner
    app: App
    mem: MemoryPlatform
    ids: Iterator[int]

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("Live(...)")  # hypothesis prints failing examples; the whole app is noise there

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one coroutine on the app's loop."""
        return self.runner.run(coro)

    async def last(self) -> BotAnswer:
        """The newest answer row."""
        async with self.app.sessions() as s:
            return (await s.execute(select(BotAnswer).order_by(BotAnswer.id.desc()).limit(1))).scalar_one()  # type: ignore[union-attr]

    async def count(self) -> int:
        async with self.app.sessions() as s:
            return int((await s.execute(select(func.count()).select_from(BotAnswer))).scalar_one())


@contextmanager
def live_app(config: Path) -> Iterator[Live]:
    """Start the app once; stop it and close its loop at the end."""
    runner = asyncio.Runner()
    mem = MemoryPlatform()
    app = build_app(load_config(config), platforms=[mem])
    try:
        runner.run(app.start())
        yield Live(runner, app, mem, itertools.count(1))
    finally:
        try:
            runner.run(app.stop())
        finally:
            runner.close()


@pytest.fixture
def live(write_config: Callable[..., Path]) -> Iterator[Live]:
    """The app on SQLite without a model (answers quote the knowledge files)."""
    with live_app(write_config()) as running:
        yield running


@pytest.fixture
def live_pg(write_config: Callable[..., Path], postgres_url: str, tiny_gguf: Path) -> Iterator[Live]:
    """The app on PostgreSQL with the tiny GGUF model answering."""
    with live_app(write_config(db_url=postgres_url, model=tiny_gguf)) as running:
        assert running.app.model is not None, running.app.model_problem
        yield running


#: How a message reaches the bot: a mention, a DM, a bound channel, or chatter and bots it must ignore.
ADDRESSING = ("mention", "direct", "bound", "chatter", "bot")


def hostile_message(live: Live, text: str, how: str, name: str, bad_id: str | None) -> InboundMessage:
    """A member's message, posted on the memory platform, with a fresh author and channel."""
    n = next(live.ids)
    author = Actor(live.mem.name, bad_id if bad_id is not None else f"u{n}", name, is_bot=how == "bot")
    channel = "admissions" if how == "bound" else f"D{n}" if how == "direct" else f"c{n}"
    ref = live.mem.post_as(author, live.mem.place(channel, direct=how == "direct"), text)
    return InboundMessage(ref=ref, author=author, text=text, mentions_bot=how in ("mention", "bot"))


def check_one(
    live: Live, caplog: pytest.LogCaptureFixture, text: str, how: str, name: str, bad_id: str | None = None
) -> None:
    """Ask once: an addressed question gets exactly one reply and one clean row; anything else silence."""
    caplog.clear()
    before = live.run(live.count())
    msg = hostile_message(live, text, how, name, bad_id)
    live.run(live.mem.emit(msg))
    replies = live.mem.replies_to(msg.ref)
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    rejected = [line for line in logged if "rejected a malformed" in line]
    assert [line for line in logged if line not in rejected] == [], "an exception or failure was logged"
    if bad_id is not None:
        assert len(rejected) == 1 and "author id" in rejected[0]
        assert replies == [] and live.run(live.count()) == before
        return
    assert rejected == []
    if how not in ("mention", "direct", "bound"):
        assert replies == [] and live.run(live.count()) == before
        return
    assert len(replies) == 1, [r.text[:80] for r in replies]
    assert replies[0].text.strip()
    row = live.run(live.last())
    assert live.run(live.count()) == before + 1
    assert row.question == clean_text(text)[:MAX_QUESTION_CHARS]
    assert row.verdict in VERDICTS and row.question_message_id == msg.ref.message_id
    assert clean_text(row.answer) == row.answer


HOSTILE = (
    "How much is tuition?\x00",
    "tuition \ud800\udfff \udc00",
    "\u202eHow much is tuition?\u202c \u2066x\u2069",
    "😀🎉🔥" * 30,
    "",
    " \t\n ",
    "\x1b[2J\x07\x08\x7f\x85",
    "a" * MEGABYTE,
    "tuition\x00 " * 120_000,
)


def hostile_examples(f: Callable[..., None]) -> Callable[..., None]:
    """The named hostile cases, always tried before the generated ones."""
    for text in HOSTILE:
        f = example(text=text, how="mention", name="\x00\ud800" + "n" * 300, bad_id=None)(f)
    return example(text="How much is tuition?", how="mention", name="x", bad_id="C" * 129)(f)


MESSAGES = dict(
    text=hostile_text(),
    how=st.sampled_from(ADDRESSING),
    name=wild_text,
    bad_id=st.one_of(st.none(), st.none(), st.none(), hostile_ids),
)


@hostile_examples
@PER_APP
@given(**MESSAGES)
def test_hostile_messages_without_a_model_get_one_reply_and_a_clean_record(
    live: Live, caplog: pytest.LogCaptureFixture, text: str, how: str, name: str, bad_id: str | None
) -> None:
    check_one(live, caplog, text, how, name, bad_id)
    # Still serving normally afterwards.
    check_one(live, caplog, "How much is tuition?", "mention", "alice")
    assert "$42,300" in live.mem.bot_messages()[-1].text


@hostile_examples
@PER_APP
@given(**MESSAGES)
def test_hostile_messages_with_the_model_on_postgres_get_one_reply_and_a_clean_record(
    live_pg: Live, caplog: pytest.LogCaptureFixture, text: str, how: str, name: str, bad_id: str | None
) -> None:
    check_one(live_pg, caplog, text, how, name, bad_id)
    assert live_pg.app.model is not None and live_pg.app.model.restarts == 0


class ScriptedModel:
    """Stands in for the model worker in one unit test: 'generates' the given pieces, as byte tokens can."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def submit(self, parts: PromptParts, params: SamplingParams, *, lane: str = "", user: str = "") -> Generation:
        gen = Generation(id="g1", parts=parts, params=params)
        for piece in [*self.pieces, None]:
            gen.chunks.put_nowait(piece)
        return gen

    def cancel(self, gen: Generation) -> None:
        gen.cancelled = True


async def test_model_output_with_nul_and_controls_is_stored_and_shown_clean(
    write_config: Callable[..., Path], postgres_url: str
) -> None:
    config = load_config(write_config(db_url=postgres_url))
    engine = db.create_engine(postgres_url)
    try:
        await db.upgrade(engine)
        knowledge = {s.name: KnowledgeIndex(s.knowledge, root=config.source.parent) for s in config.scopes}
        pipeline = Pipeline(
            config=config,
            gate=LexicalGate(global_blocked=config.bot.blocked_words, knowledge=knowledge),
            knowledge=knowledge,
            sessions=db.sessionmaker(engine),
            model=ScriptedModel(["Tuition is ", "\x00", "$42,300", "\x1b[2J", " a year.\x07"]),  # type: ignore[arg-type]
        )
        mem = MemoryPlatform()
        author = mem.actor("alice")
        ref = mem.post_as(author, mem.place(), "How much is tuition?")
        msg = InboundMessage(ref=ref, author=author, text="How much is tuition?", mentions_bot=True)
        outcome = await pipeline.answer(msg, config.scopes[0], mem, request_id="r1")
        assert outcome.verdict == "answer" and outcome.answer_id is not None
        [reply] = mem.replies_to(ref)
        assert reply.text.startswith("Tuition is $42,300[2J a year.")
        async with db.sessionmaker(engine)() as s:
            row = await s.get(BotAnswer, outcome.answer_id)
        assert row is not None and row.answer == reply.text
    finally:
        await engine.dispose()
