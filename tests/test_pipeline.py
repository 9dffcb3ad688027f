"""The flow of a question through the real app (gate, knowledge, model worker, database) on the memory platform."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import select

from bot.answers import answer_for_message, parts_of
from bot.app import App
from bot.events import Actor, InboundMessage, MessageRef, PlatformLimits
from bot.models import BotAnswer
from bot.pipeline import RETRY_TEXT
from tests.fakes import MemoryPlatform
from tests.memory_app import AppOnMemory, memory_app

Start = Callable[..., AppOnMemory]


@pytest.fixture
def start(write_config: Callable[..., Path]) -> Start:
    """Start the app on a memory platform; yields (app, platform) and stops the app afterwards."""

    def run(
        *, model: Path | None = None, limits: PlatformLimits | None = None, extra: str = "", db_url: str | None = None
    ) -> AppOnMemory:
        return memory_app(write_config(extra, model=model, db_url=db_url), limits=limits)

    return run


async def ask(
    mem: MemoryPlatform,
    text: str,
    *,
    channel: str = "general",
    direct: bool = False,
    mention: bool = True,
    user: str = "alice",
    bot: bool = False,
    others: bool = False,
) -> MessageRef:
    author = Actor(mem.name, user, user, is_bot=bot)
    ref = mem.post_as(author, mem.place(channel, direct=direct), text)
    await mem.emit(InboundMessage(ref=ref, author=author, text=text, mentions_bot=mention, mentions_others=others))
    return ref


async def rows(app: App) -> list[BotAnswer]:
    async with app.sessions() as s:
        return list((await s.execute(select(BotAnswer).order_by(BotAnswer.id))).scalars())  # type: ignore[arg-type]


async def test_who_the_bot_answers(
    start: Callable[..., contextlib.AbstractAsyncContextManager[tuple[App, MemoryPlatform]]],
) -> None:
    async with start() as (app, mem):
        mention = await ask(mem, "How much is tuition?")
        chatter = await ask(mem, "How much is tuition?", mention=False)
        bound = await ask(mem, "What majors do you offer?", channel="admissions", mention=False)
        dm = await ask(mem, "When is the Regular Decision deadline?", channel="D1", direct=True, mention=False)
        other_bot = await ask(mem, "How much is tuition?", bot=True)
        assert [len(mem.replies_to(r)) for r in (mention, chatter, bound, dm, other_bot)] == [1, 0, 1, 1, 0]
        assert "$42,300" in mem.replies_to(mention)[0].text
        assert len(await rows(app)) == 3


async def test_without_a_model_answers_quote_sources_and_refusals_use_the_scope_line(
    start: Callable[..., contextlib.AbstractAsyncContextManager[tuple[App, MemoryPlatform]]],
) -> None:
    async with start() as (app, mem):
        assert "knowledge files only" in app.model_problem
        q = await ask(mem, "When is the Regular Decision deadline?")
        reply = mem.replies_to(q)[0].text
        assert reply.startswith("From my sources:")
        assert "January 15" in reply and "admissions.md" in reply
        off = await ask(mem, "Write me a poem about the sea")
        assert mem.replies_to(off)[0].text == "That's not a college data question."
        blocked = await ask(mem, "How do I frobnicate the tuition office?")
        assert mem.replies_to(blocked)[0].text == app.config.bot.blocked_reply
        verdicts = [(r.verdict, r.question) for r in await rows(app)]
        assert [v for v, _ in verdicts] == ["answer", "refuse", "block"]


async def test_small_talk_gets_the_scopes_introduction_not_its_refusal(
    start: Callable[..., contextlib.AbstractAsyncContextManager[tuple[App, MemoryPlatform]]],
) -> None:
    # A newcomer's first words. Without the small-talk screen "hi" got the refusal line and "what can you help me
    # with?" was blocked as a jailbreak ("I can't help with that.").
    async with start() as (app, mem):
        intro = (
            "I answer questions about Northgate College: admissions and application deadlines, tuition and fees, "
            "financial aid, majors, campus life and tours. For example: “When is the Regular Decision deadline?”"
        )
        replies = {}
        for text in ("hey there 👋", "what can you help me with?", "thanks so much!", "ok", "bye!"):
            replies[text] = mem.replies_to(await ask(mem, text, user=f"u{len(replies)}"))[0].text
        assert replies["hey there 👋"] == f"Hi! {intro}"
        assert replies["what can you help me with?"] == intro
        assert replies["thanks so much!"].startswith("You're welcome!")
        assert replies["ok"] == "Anything else? Just ask."
        assert replies["bye!"].startswith("Bye!")
        # Recorded as refusals (the model answered nothing), with the kind of small talk for the audit trail.
        recorded = {r.question: (r.verdict, r.gate_rule) for r in await rows(app)}
        assert recorded["what can you help me with?"] == ("refuse", "topic:small-talk:about-the-bot")
        assert recorded["ok"] == ("refuse", "topic:small-talk:acknowledgement")
        # In a channel bound to the scope, a bare "ok" that does not name the bot is left alone (members talking
        # among themselves); named, or a greeting or thanks there, it is answered.
        chatter = await ask(mem, "lol ok", channel="admissions", mention=False, user="u7")
        named = await ask(mem, "lol ok", channel="admissions", user="u8")
        thanks = await ask(mem, "thanks!", channel="admissions", mention=False, user="u8")
        assert [len(mem.replies_to(r)) for r in (chatter, named, thanks)] == [0, 1, 1]
        # Anything more than small talk is a question again.
        q = await ask(mem, "hi! how much is tuition?", user="u9")
        assert "$42,300" in mem.replies_to(q)[0].text


async def test_a_message_to_another_member_in_a_bound_channel_is_left_to_them(
    start: Callable[..., contextlib.AbstractAsyncContextManager[tuple[App, MemoryPlatform]]],
) -> None:
    # "@sam you coming to the campus tour tomorrow?" in the admissions channel is for Sam; the same words naming the
    # bot too, or with no one named, are for the bot.
    async with start() as (app, mem):
        text = "you coming to the campus tour tomorrow? how much is tuition btw"
        to_sam = await ask(mem, text, channel="admissions", mention=False, others=True, user="u1")
        to_both = await ask(mem, text, channel="admissions", others=True, user="u2")
        to_all = await ask(mem, text, channel="admissions", mention=False, user="u3")
        assert [len(mem.replies_to(r)) for r in (to_sam, to_both, to_all)] == [0, 1, 1]
        assert [r.question_message_id for r in await rows(app)] == [to_both.message_id, to_all.message_id]


async def test_model_answer_is_streamed_recorded_and_traceable(
    start: Callable[..., contextlib.AbstractAsyncContextManager[tuple[App, MemoryPlatform]]], chatty_gguf: Path
) -> None:
    limits = PlatformLimits(max_message_chars=4000, edit_interval=0.0001)
    async with start(model=chatty_gguf, limits=limits) as (app, mem):
        q = await ask(mem, "How much is tuition?")
        [reply] = mem.replies_to(q)
        assert reply.edits, "the answer should have been shown growing by edits"
        assert reply.edits[0].endswith(" …")
        assert "\n\nSources: " in reply.text and "costs-and-aid.md" in reply.text.rsplit("Sources: ", 1)[1]
        [row] = await rows(app)
        assert row.verdict == "answer"
        assert row.model == "chatty.gguf"
        assert row.model_params["context_length"] == 2048 and row.model_params["stop_reason"] == "length"
        assert row.completion_tokens == app.config.model.max_new_tokens
        assert row.prompt_tokens > 0
        assert row.passages and row.passages[0]["source"].endswith(".md")
        assert {"gate", "retrieval", "queue", "total"} <= set(row.timings)
        assert row.config_version == app.config.version
        assert row.question_message_id == q.message_id
        async with app.sessions() as s:
            found = await answer_for_message(s, reply.ref)
        assert found is not None and found.id == row.id


async def test_long_answers_are_split_and_every_part_traces_back(
    start: Callable[..., contextlib.AbstractAsyncContextManager[tuple[App, MemoryPlatform]]], chatty_gguf: Path
) -> None:
    limits = PlatformLimits(max_message_chars=40, edit_interval=0.0)
    async with start(model=chatty_gguf, limits=limits) as (app, mem):
        q = await ask(mem, "How much is tuition?")
        parts = mem.replies_to(q)
        assert len(parts) >= 2
        assert all(len(p.text) <= 40 for p in parts)
        [row] = await rows(app)
        async with app.sessions() as s:
            keys = await parts_of(s, row.id or 0)
            assert keys == [p.ref.key for p in parts]
            for p in parts:
                assert (await answer_for_message(s, p.ref)) is not None


@pytest.mark.parametrize("text", ["😀🎉🔥" * 50, "中文字符" * 1250, "tuition " * 12_500])
async def test_hostile_sizes_get_a_reply_and_the_bot_keeps_serving(
    start: Callable[..., contextlib.AbstractAsyncContextManager[tuple[App, MemoryPlatform]]], tiny_gguf: Path, text: str
) -> None:
    async with start(model=tiny_gguf) as (app, mem):
        q = await ask(mem, text)
        assert len(mem.replies_to(q)) >= 1
        after = await ask(mem, "How much is tuition?")
        assert mem.replies_to(after)
        assert app.model is not None and app.model.restarts == 0


async def test_a_failing_handler_is_apologised_for_and_the_bot_keeps_serving(
    start: Callable[..., contextlib.AbstractAsyncContextManager[tuple[App, MemoryPlatform]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with start() as (app, mem):
        mem.fail_next.append(RuntimeError("platform exploded"))  # type: ignore[arg-type]
        with caplog.at_level(logging.ERROR):
            q = await ask(mem, "How much is tuition?")
        assert [m.text for m in mem.replies_to(q)] == [app.config.bot.apology]
        assert any("failed to handle InboundMessage" in r.message and r.exc_info for r in caplog.records)
        again = await ask(mem, "How much is tuition?")
        assert "$42,300" in mem.replies_to(again)[0].text


async def test_a_crashed_model_gets_a_try_again_reply(
    start: Callable[..., contextlib.AbstractAsyncContextManager[tuple[App, MemoryPlatform]]], chatty_gguf: Path
) -> None:
    import os
    import signal

    async with start(model=chatty_gguf) as (app, mem):
        assert app.model is not None
        os.kill(int(app.model.info["pid"]), signal.SIGKILL)
        q = await ask(mem, "How much is tuition?")
        texts = [m.text for m in mem.replies_to(q)]
        # Either the crash was noticed before the question (restart, then a normal answer) or during it.
        assert texts == [RETRY_TEXT] or "Sources:" in texts[-1]
        again = await ask(mem, "What majors do you offer?")
        assert "Sources:" in mem.replies_to(again)[-1].text


async def test_unloadable_model_falls_back_to_passages(
    start: Callable[..., contextlib.AbstractAsyncContextManager[tuple[App, MemoryPlatform]]], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    async with start(model=bad) as (app, mem):
        assert app.model is None
        assert "could not be loaded" in app.model_problem
        q = await ask(mem, "How much is tuition?")
        assert mem.replies_to(q)[0].text.startswith("From my sources:")


async def test_the_flow_records_on_postgres_too(
    start: Callable[..., contextlib.AbstractAsyncContextManager[tuple[App, MemoryPlatform]]],
    postgres_url: str,
    tiny_gguf: Path,
) -> None:
    async with start(model=tiny_gguf, db_url=postgres_url) as (app, mem):
        q = await ask(mem, "How much is tuition?")
        assert mem.replies_to(q)
        [row] = await rows(app)
        assert row.platform == "memory" and row.verdict == "answer" and row.created_at.tzinfo is not None
