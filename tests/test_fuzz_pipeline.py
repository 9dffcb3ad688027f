"""Hostile messages through the real app with the tiny model on PostgreSQL, and the model's own output.

The app runs on a loop thread of its own (tests/fuzz_world.py), so the model and the embedding runtime
load once and every hypothesis example is one more message to the same running bot.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from bot import db
from bot.config import load_config
from bot.events import Actor, InboundMessage, ReactionAdded
from bot.gate.lexical import LexicalGate
from bot.knowledge import KnowledgeIndex
from bot.llm.client import Generation
from bot.llm.engine import SamplingParams
from bot.llm.prompt import PromptParts
from bot.models import BotAnswer
from bot.pipeline import Outcome, Pipeline
from bot.sanitize import clean_text
from moderation.models import Report
from tests.conftest import BASE_TOML, COLLEGE_KNOWLEDGE, POSTGRES_ENV, _pg_admin, _postgres_url
from tests.fakes import MemoryPlatform
from tests.fuzz_strategies import MEGABYTE, hostile_ids, hostile_text, wild_text
from tests.fuzz_world import ADDRESSING, World, ask_memory, running, unexpected

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


@pytest.fixture(scope="module")
def pg_world(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[World]:
    """One app for the module, on a fresh PostgreSQL database, with the tiny GGUF model answering."""
    base = _postgres_url()
    if base is None:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    name = f"scopebot_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(base, f'CREATE DATABASE "{name}"'))
    config = tmp_path_factory.mktemp("fuzz_pg") / "scopebot.toml"
    text = BASE_TOML.format(db_url=f"{base.rpartition('/')[0]}/{name}", knowledge=COLLEGE_KNOWLEDGE.as_posix())
    config.write_text(text.replace("[model]\n", f'[model]\npath = "{tiny_gguf.as_posix()}"\n', 1), encoding="utf-8")
    try:
        with running(config) as world:
            assert world.app.model is not None, world.app.model_problem
            yield world
    finally:
        asyncio.run(_pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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


@example(text="bad \x00 text \ud800", name="evil\x00name\ud800" + "n" * 300)
@PER_APP
@given(text=hostile_text(), name=wild_text)
def test_flags_on_hostile_messages_file_a_report_with_clean_evidence(
    pg_world: World, caplog: pytest.LogCaptureFixture, text: str, name: str
) -> None:
    caplog.clear()
    caplog.set_level(logging.INFO)
    n = next(pg_world.ids)
    author = Actor(pg_world.mem.name, f"m{n}", name)

    async def flag() -> list[Report]:
        ref = pg_world.mem.post_as(author, pg_world.mem.place(f"f{n}"), text)
        await pg_world.mem.emit(ReactionAdded(ref, pg_world.mem.actor(f"r{n}"), "flag"))
        async with pg_world.app.sessions() as s:
            return list((await s.execute(select(Report).where(Report.message_key == ref.key))).scalars())

    reports = pg_world.run(flag())
    assert unexpected(caplog.records) == []
    assert len(reports) == 1 and reports[0].snapshot == clean_text(text)


class ScriptedModel:
    """Stands in for the model worker in one unit test: 'generates' the given pieces, as byte tokens can."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.parts: PromptParts | None = None

    def submit(self, parts: PromptParts, params: SamplingParams, *, lane: str = "", user: str = "") -> Generation:
        self.parts = parts
        gen = Generation(id="g1", parts=parts, params=params)
        for piece in [*self.pieces, None]:
            gen.chunks.put_nowait(piece)
        return gen

    def cancel(self, gen: Generation) -> None:
        gen.cancelled = True


async def _ask_scripted(
    write_config: Callable[..., Path], db_url: str, pieces: list[str], model: ScriptedModel | None = None
) -> tuple[Outcome, str, str | None]:
    """Ask "How much is tuition?" of a pipeline whose model streams `pieces`: the outcome, the reply shown
    and the answer stored."""
    config = load_config(write_config(db_url=db_url))
    engine = db.create_engine(db_url)
    try:
        await db.upgrade(engine)
        knowledge = {s.name: KnowledgeIndex(s.knowledge, root=config.source.parent) for s in config.scopes}
        pipeline = Pipeline(
            config=config,
            gate=LexicalGate(global_blocked=config.bot.blocked_words, knowledge=knowledge),
            knowledge=knowledge,
            sessions=db.sessionmaker(engine),
            model=model or ScriptedModel(pieces),  # type: ignore[arg-type]
        )
        mem = MemoryPlatform()
        author = mem.actor("alice")
        ref = mem.post_as(author, mem.place(), "How much is tuition?")
        msg = InboundMessage(ref=ref, author=author, text="How much is tuition?", mentions_bot=True)
        outcome = await pipeline.answer(msg, config.scopes[0], mem, request_id="r1")
        [reply] = mem.replies_to(ref)
        stored = None
        if outcome.answer_id is not None:
            async with db.sessionmaker(engine)() as s:
                row = await s.get(BotAnswer, outcome.answer_id)
            stored = row.answer if row is not None else None
        return outcome, reply.text, stored
    finally:
        await engine.dispose()


async def test_a_model_replying_the_refusal_or_the_blocked_line_is_recorded_so(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    # The model is told to reply the scope's refusal outside the use case and the bot's blocked reply to a request
    # for help to harm: a last screen behind the gate. Such a reply is recorded as a refusal or a block (so
    # `scope refusals` lists it) and shown without a sources line.
    config = load_config(write_config())
    refusal, blocked = config.scopes[0].refusal, config.bot.blocked_reply
    model = ScriptedModel([])
    cases = [([f'"{blocked[:5]}', f'{blocked[5:]}"'], "block", blocked), ([f" {refusal.upper()}\n"], "refuse", refusal)]
    for n, (pieces, verdict, line) in enumerate(cases):
        model.pieces = pieces
        outcome, shown, stored = await _ask_scripted(
            write_config, f"sqlite+aiosqlite:///{tmp_path / f'{n}.db'}", pieces, model
        )
        assert (outcome.verdict, shown, stored) == (verdict, line, line)
    assert model.parts is not None and f'reply exactly: "{blocked}"' in model.parts.system
    # An answer that only starts with the line is an answer.
    outcome, shown, _ = await _ask_scripted(
        write_config, f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", [f"{blocked} But tuition is $42,300."]
    )
    assert outcome.verdict == "answer" and shown == f"{blocked} But tuition is $42,300."


async def test_model_output_with_nul_and_controls_is_stored_and_shown_clean(
    write_config: Callable[..., Path], postgres_url: str
) -> None:
    pieces = ["Tuition is ", "\x00", "$42,300", "\x1b[2J", " a year.\x07"]
    outcome, shown, stored = await _ask_scripted(write_config, postgres_url, pieces)
    assert outcome.verdict == "answer" and outcome.answer_id is not None
    assert shown.startswith("Tuition is $42,300[2J a year.")
    assert stored == shown


async def test_model_output_cannot_display_other_words_than_the_screen_read(
    write_config: Callable[..., Path], postgres_url: str
) -> None:
    # Shown with its right-to-left override, "etacinborf" reads as the blocked word "frobnicate".
    pieces = ["Tuition: ", "\u202e", "etacinborf", "\u202c", " \u2067x\u2069 \u200fשלום"]
    _outcome, shown, _stored = await _ask_scripted(write_config, postgres_url, pieces)
    # The overrides and isolates are gone; a right-to-left mark and Hebrew letters are left as written.
    assert shown.startswith("Tuition: etacinborf x \u200fשלום")
