"""Hostile messages through the real app with the tiny model on PostgreSQL, and the model's own output.

The app runs on a loop thread of its own (tests/fuzz_world.py), so the model and the embedding runtime
load once and every hypothesis example is one more message to the same running bot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot import db
from bot.config import load_config
from bot.events import InboundMessage
from bot.gate.lexical import LexicalGate
from bot.knowledge import KnowledgeIndex
from bot.llm.client import Generation
from bot.llm.engine import SamplingParams
from bot.llm.prompt import PromptParts
from bot.models import BotAnswer
from bot.pipeline import Pipeline
from tests.fakes import MemoryPlatform
from tests.fuzz_strategies import MEGABYTE, hostile_ids, hostile_text, wild_text
from tests.fuzz_world import ADDRESSING, World, ask_memory, running

#: Failing examples with a megabyte of text are printed whole; hypothesis warns about that, which is fine here.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
CI = settings.get_current_profile_name() == "ci"
#: Each example is a question through the whole app: a small budget in CI, a large one when deep.
PER_APP = settings(
    max_examples=12 if CI else 500,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: The named hostile cases, tried before any generated one.
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
MESSAGES = dict(
    text=hostile_text(),
    how=st.sampled_from(ADDRESSING),
    name=wild_text,
    bad_id=st.one_of(st.none(), st.none(), st.none(), hostile_ids),
)


def hostile_examples(f: Callable[..., None]) -> Callable[..., None]:
    """Decorate a `MESSAGES` test with the named hostile cases and an id too long for its column."""
    for text in HOSTILE:
        f = example(text=text, how="mention", name="\x00\ud800" + "n" * 300, bad_id=None)(f)
    return example(text="How much is tuition?", how="mention", name="x", bad_id="C" * 129)(f)


@pytest.fixture
def pg_world(write_config: Callable[..., Path], postgres_url: str, tiny_gguf: Path) -> Iterator[World]:
    """The app on PostgreSQL with the tiny GGUF model answering."""
    with running(write_config(db_url=postgres_url, model=tiny_gguf)) as world:
        assert world.app.model is not None, world.app.model_problem
        yield world


@hostile_examples
@PER_APP
@given(**MESSAGES)
def test_hostile_messages_with_the_model_on_postgres_get_one_reply_and_a_clean_record(
    pg_world: World, caplog: pytest.LogCaptureFixture, text: str, how: str, name: str, bad_id: str | None
) -> None:
    caplog.clear()
    caplog.set_level(logging.INFO)
    ask_memory(pg_world, lambda: caplog.records, text, how, name, bad_id)
    assert pg_world.app.model is not None and pg_world.app.model.restarts == 0


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
