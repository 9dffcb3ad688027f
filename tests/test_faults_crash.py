"""Crash isolation: the model worker is killed mid-answer while the bot serves two platforms at once.

The real app (gate, pipeline, model worker on the slow tiny GGUF, moderation with its scheduled router)
serves two in-memory platforms. The worker process is SIGKILLed while it streams an answer on one: that
member gets the short "try again" reply, a flag filed on the other platform meanwhile reaches its reviewer
channel through the scheduled router, the worker restarts, and the next question is answered.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import build_app
from bot.config import load_config
from bot.events import MessageRef, PlatformLimits
from bot.pipeline import RETRY_TEXT
from tests.faults_support import answers, ask, cards_per_case, edit_config, flag, post
from tests.moderation_support import FindingMemoryPlatform
from tests.waiting import until

pytestmark = pytest.mark.slow

#: Questions asked until one's answer streams (see the test).
ASK_TRIES = 5


async def ask_until_streaming(
    platform: FindingMemoryPlatform, who: str, text: str
) -> tuple[asyncio.Task[MessageRef], MessageRef]:
    """Ask a question and wait until its answer streams (more than a few words shown, not finished) or the question
    is over; returns the asking task and the question."""
    asked = [m.ref for m in platform.messages.values() if m.author.user_id == who]
    asking = asyncio.create_task(ask(platform, who, text))
    [question] = await until(
        lambda: [m.ref for m in platform.messages.values() if m.author.user_id == who and m.ref not in asked],
        what="the question",
    )

    def streaming_or_over() -> bool:
        shown = platform.replies_to(question)
        return asking.done() or (bool(shown) and shown[0].text.endswith(" …") and len(shown[0].text) > 20)

    await until(streaming_or_over, what="the answer to stream")
    return asking, question


async def test_killing_the_model_worker_mid_answer_costs_one_retry_reply_and_nothing_else(
    write_config: Callable[..., Path], slow_gguf: Path
) -> None:
    path = edit_config(
        write_config(model=slow_gguf),
        **{
            # Long answers, so there is time to kill the worker in the middle of one.
            "max_new_tokens = 24": "max_new_tokens = 1200",
            'memory = "reviewers" }': 'memory = "reviewers", other = "reviewers" }',
        },
    )
    # Streaming by edits, so the test sees the answer under way.
    streaming = PlatformLimits(max_message_chars=4000, edit_interval=0.05)
    mem = FindingMemoryPlatform("memory", limits=streaming)
    other = FindingMemoryPlatform("other", limits=streaming)
    app = build_app(load_config(path), platforms=[mem, other])
    await app.start()
    try:
        assert app.model is not None
        pid = int(app.model.info["pid"])
        # The random tiny model's word salad is now and then withheld by the answer screen before it gets going
        # (seen once in CI): that question is over, and the member asks again.
        for _ in range(ASK_TRIES):
            asking, question = await ask_until_streaming(mem, "alice", "How much is tuition?")
            if not asking.done():
                break
            await asking
        else:
            raise AssertionError(f"no answer got going in {ASK_TRIES} questions")
        os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(asking, 60)
        assert [m.text for m in mem.replies_to(question)] == [RETRY_TEXT]

        # The worker is down (it restarts with the next question): moderation on the other platform works.
        assert not app.model.alive
        spam = post(other, "bob", "cheap essays at spam.example")
        await flag(other, "carol", spam)
        assert [r.user_id for r in other.private] == ["carol"], "the reporter is acknowledged"
        await until(lambda: cards_per_case(other), within=30, what="the scheduled router to post the card")
        assert [card.place.channel for card in other.cards.values()] == ["reviewers"]
        assert not mem.cards

        # The next question, on the other platform, restarts the worker and is answered in full.
        again = await ask(other, "dave", "What majors do you offer?")
        [answer] = other.replies_to(again)
        assert answer.text not in ("", RETRY_TEXT) and not answer.text.endswith(" …")
        assert app.model.restarts == 1 and app.model.alive
        assert int(app.model.info["pid"]) != pid
        records = await answers(app)
    finally:
        await app.stop()
    # Both questions are on record: the killed one as an error, the next one generated in full (the
    # random tiny model's text may then be held back by the answer screen; that is the gate working).
    *withheld, killed, next_one = records
    assert all(r.verdict == "block" for r in withheld), "a question asked again was withheld, not lost"
    assert (killed.platform, killed.verdict) == ("memory", "error")
    assert next_one.platform == "other" and next_one.verdict in ("answer", "block")
    assert next_one.answer.strip(), "the model generated it"
