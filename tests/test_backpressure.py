"""Backpressure: a fair, bounded line per platform, places in line, busy replies, per-member and per-channel limits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.dispatcher import CHANNEL_BUSY_TEXT, SLOW_DOWN_TEXT
from bot.events import Actor, InboundMessage, MessageRef
from bot.fairqueue import FairQueue, QueueFull
from bot.pipeline import BUSY_TEXT, QUEUED_TEXT
from bot.ratelimit import RateLimiter
from tests.fakes import MemoryPlatform
from tests.memory_app import AppOnMemory, memory_app


async def test_members_take_turns_within_a_platform_and_platforms_take_turns() -> None:
    q: FairQueue[str] = FairQueue(capacity=10)
    for item, lane, user in [
        ("a1", "slack", "alice"),
        ("a2", "slack", "alice"),
        ("a3", "slack", "alice"),
        ("b1", "slack", "bob"),
        ("d1", "discord", "dave"),
    ]:
        q.put(item, lane=lane, user=user)
    assert [q.position(x) for x in ("a1", "d1", "b1", "a2", "a3")] == [0, 1, 2, 3, 4]
    served = [await q.get() for _ in range(5)]
    assert served == ["a1", "d1", "b1", "a2", "a3"]


def test_each_platform_has_its_own_bound() -> None:
    q: FairQueue[str] = FairQueue(capacity=2)
    q.put("s1", lane="slack", user="u1")
    q.put("s2", lane="slack", user="u2")
    with pytest.raises(QueueFull) as full:
        q.put("s3", lane="slack", user="u3")
    assert full.value.waiting == 2
    assert q.put("d1", lane="discord", user="u1") == 1  # Discord is not blocked by a full Slack line
    assert q.remove("s1") and not q.remove("s1")
    assert q.drain() == ["s2", "d1"]
    assert q.qsize() == 0


def test_rate_limiter_counts_a_sliding_window_and_forgets_idle_keys() -> None:
    rl = RateLimiter(limit=2, window=60, max_keys=1000)
    assert rl.hit("alice", now=0) == 0
    assert rl.hit("alice", now=10) == 0
    assert rl.hit("alice", now=20) == pytest.approx(40)
    assert rl.hit("alice", now=61) == 0  # the first hit left the window
    for i in range(5000):
        rl.hit(f"member{i}", now=100 + i * 0.001)
    assert len(rl) <= 1000
    rl.hit("late", now=10_000)
    assert len(rl) == 1  # everyone else has been idle for longer than the window


Start = Callable[..., AppOnMemory]


@pytest.fixture
def start(write_config: Callable[..., Path]) -> Start:
    def run(*, model: Path | None = None, bot: str = "", queue_size: int = 8) -> AppOnMemory:
        path = write_config(model=model)
        text = (
            path.read_text(encoding="utf-8")
            .replace("queue_size = 8", f"queue_size = {queue_size}")
            .replace("max_new_tokens = 24", "max_new_tokens = 200")
        )
        if bot:
            text = text.replace("user_questions_per_minute = 10000\nchannel_questions_per_minute = 10000\n", bot)
        path.write_text(text, encoding="utf-8")
        return memory_app(path)

    return run


def question(
    mem: MemoryPlatform, user: str, text: str = "How much is tuition?", channel: str = "general"
) -> InboundMessage:
    author = Actor(mem.name, user, user)
    ref = mem.post_as(author, mem.place(channel), text)
    return InboundMessage(ref=ref, author=author, text=text, mentions_bot=True)


def replies(mem: MemoryPlatform, ref: MessageRef) -> list[str]:
    return [m.text for m in mem.replies_to(ref)]


async def test_a_member_over_the_limit_is_told_once_then_ignored(start: Start) -> None:
    async with start(bot="user_questions_per_minute = 2\nchannel_questions_per_minute = 100\n") as (_app, mem):
        qs = [question(mem, "alice") for _ in range(4)]
        for q in qs:
            await mem.emit(q)
        assert all("From my sources" in replies(mem, q.ref)[0] for q in qs[:2])
        told = replies(mem, qs[2].ref)
        assert len(told) == 1 and told[0].startswith(SLOW_DOWN_TEXT.split("{")[0])
        assert replies(mem, qs[3].ref) == []
        bob = question(mem, "bob")
        await mem.emit(bob)
        assert "From my sources" in replies(mem, bob.ref)[0]


async def test_a_busy_channel_is_capped_for_everyone(start: Start) -> None:
    async with start(bot="user_questions_per_minute = 100\nchannel_questions_per_minute = 3\n") as (_app, mem):
        qs = [question(mem, f"member{i}") for i in range(5)]
        for q in qs:
            await mem.emit(q)
        assert [len(replies(mem, q.ref)) for q in qs] == [1, 1, 1, 1, 0]
        assert replies(mem, qs[3].ref)[0].startswith(CHANNEL_BUSY_TEXT.split("{")[0])
        elsewhere = question(mem, "member9", channel="other")
        await mem.emit(elsewhere)
        assert replies(mem, elsewhere.ref)


async def test_waiting_members_are_told_their_place_and_a_full_line_says_busy(start: Start, slow_gguf: Path) -> None:
    async with start(model=slow_gguf, queue_size=2) as (app, mem):
        assert app.model is not None
        first = question(mem, "alice")
        running = asyncio.create_task(mem.emit(first))
        while not app.model.running:  # noqa: ASYNC110 - polling the worker's state
            await asyncio.sleep(0.01)
        waiting = [question(mem, u) for u in ("bob", "carol")]
        tasks = [asyncio.create_task(mem.emit(q)) for q in waiting]
        while not all(mem.replies_to(q.ref) for q in waiting):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        # Both wait behind the running answer; which of them asked first is up to the scheduler.
        assert sorted(replies(mem, q.ref)[0] for q in waiting) == [QUEUED_TEXT.format(n=1), QUEUED_TEXT.format(n=2)]
        overflow = question(mem, "dave")
        await mem.emit(overflow)
        assert replies(mem, overflow.ref) == [BUSY_TEXT.format(waiting=2)]
        await asyncio.gather(running, *tasks)
        # Everyone in line got their answer in the end, replacing the place-in-line note.
        for q in (first, *waiting):
            [final] = replies(mem, q.ref)
            # The output screen may still withhold the tiny model's gibberish; either way it is final.
            assert "Sources:" in final or final == app.config.bot.blocked_reply


async def test_a_member_asking_many_questions_does_not_hold_up_others(start: Start, slow_gguf: Path) -> None:
    async with start(model=slow_gguf, queue_size=8) as (app, mem):
        assert app.model is not None
        done: list[str] = []

        async def ask(q: InboundMessage, name: str) -> None:
            await mem.emit(q)
            done.append(name)

        tasks = [asyncio.create_task(ask(question(mem, "alice"), f"alice{i}")) for i in range(3)]
        # Bob asks once alice's three questions are with the model: one running, two waiting.
        while not (app.model.running and app.model.waiting == 2):  # noqa: ASYNC110 - polling the worker's state
            await asyncio.sleep(0.01)
        tasks.append(asyncio.create_task(ask(question(mem, "bob"), "bob")))
        await asyncio.gather(*tasks)
        # In a first-come line bob would be last; taking turns, he goes right after alice's next question.
        assert done.index("bob") == 2
        assert done[-1].startswith("alice")
