"""The model worker process: streaming, one question at a time, bounded queue, timeout, cancel, crash restart."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.llm.client import Generation, ModelBusy, ModelFailed, ModelWorker, WorkerSettings
from bot.llm.engine import ModelLoadError, SamplingParams
from bot.llm.prompt import Passage, PromptParts
from tests.waiting import LoopTicks

PARTS = PromptParts(
    system="Answer college questions only.",
    question="How much is tuition?",
    passages=(Passage("a.md", "Tuition is $42,300."),),
)


def settings(path: Path, **kw: object) -> WorkerSettings:
    base: dict[str, object] = {
        "model_path": path,
        "context_length": 2048,
        "threads": 1,
        "batch_size": 8,
        "max_new_tokens": 1500,
        "queue_size": 2,
        "timeout_seconds": 60.0,
    }
    base.update(kw)
    return WorkerSettings(**base)  # type: ignore[arg-type]


async def started(s: WorkerSettings) -> AsyncIterator[ModelWorker]:
    w = ModelWorker(s)
    await w.start()
    try:
        yield w
    finally:
        await w.stop()


@pytest.fixture
async def chatty_worker(chatty_gguf: Path) -> AsyncIterator[ModelWorker]:
    async for w in started(settings(chatty_gguf)):
        yield w


async def started_running(gen: Generation) -> None:
    """Wait until the worker has taken `gen` off the line."""
    while gen.started_at is None:  # noqa: ASYNC110 - the worker sets a timestamp, not an event
        await asyncio.sleep(0.01)


async def collect(w: ModelWorker, params: SamplingParams) -> tuple[list[str], dict[str, object]]:
    gen = w.submit(PARTS, params)
    chunks = [c async for c in gen.stream()]
    return chunks, gen.stats


async def test_answer_streams_and_reports_stats(chatty_worker: ModelWorker) -> None:
    chunks, stats = await collect(chatty_worker, SamplingParams(max_new_tokens=40))
    assert "".join(chunks)
    assert stats["completion_tokens"] == 40
    assert stats["stop_reason"] == "length"


async def test_second_question_waits_its_turn_and_the_loop_stays_free(chatty_worker: ModelWorker) -> None:
    params = SamplingParams(max_new_tokens=400)
    first = chatty_worker.submit(PARTS, params)
    second = chatty_worker.submit(PARTS, params)
    assert (first.ahead, second.ahead) == (0, 1)
    done_order: list[str] = []

    async def drain(name: str, gen: object) -> None:
        async for _ in gen.stream():  # type: ignore[attr-defined]
            pass
        done_order.append(name)

    async with LoopTicks(every=0.001) as ticks:
        await asyncio.gather(drain("second", second), drain("first", first))
    assert done_order == ["first", "second"]
    assert second.started_at is not None and first.started_at is not None and second.started_at > first.started_at
    assert ticks.count > 5  # the event loop kept running while the model worked


async def test_full_queue_says_busy(slow_gguf: Path) -> None:
    async for w in started(settings(slow_gguf, queue_size=1)):
        params = SamplingParams(max_new_tokens=1500)
        running = w.submit(PARTS, params)
        await started_running(running)
        waiting = w.submit(PARTS, params)
        with pytest.raises(ModelBusy) as busy:
            w.submit(PARTS, params)
        assert busy.value.waiting == 1
        w.cancel(running)
        w.cancel(waiting)
        with pytest.raises(ModelFailed):
            async for _ in waiting.stream():
                pass


async def test_timeout_cancels_and_the_worker_keeps_serving(slow_gguf: Path) -> None:
    async for w in started(settings(slow_gguf, timeout_seconds=0.3)):
        gen = w.submit(PARTS, SamplingParams(max_new_tokens=1500))
        with pytest.raises(ModelFailed, match="longer than"):
            async for _ in gen.stream():
                pass
        await gen.done.wait()
        assert w.restarts == 0  # cancelled cooperatively, not killed
        _, stats = await collect(w, SamplingParams(max_new_tokens=5))
        assert stats["completion_tokens"] == 5


async def test_cancel_stops_generation_early(slow_gguf: Path) -> None:
    async for w in started(settings(slow_gguf)):
        gen = w.submit(PARTS, SamplingParams(max_new_tokens=1500))
        async for _ in gen.stream():
            w.cancel(gen)
        assert gen.stats["stop_reason"] == "cancelled"
        assert int(gen.stats["completion_tokens"]) < 1500


async def test_worker_killed_mid_answer_fails_that_answer_and_restarts(slow_gguf: Path) -> None:
    async for w in started(settings(slow_gguf)):
        gen = w.submit(PARTS, SamplingParams(max_new_tokens=1500))
        pid = int(w.info["pid"])
        with pytest.raises(ModelFailed, match="stopped unexpectedly"):
            async for _ in gen.stream():
                os.kill(pid, signal.SIGKILL)
        _, stats = await collect(w, SamplingParams(max_new_tokens=3))
        assert stats["completion_tokens"] == 3
        assert w.restarts == 1
        assert int(w.info["pid"]) != pid


async def test_unloadable_model_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 100)
    w = ModelWorker(settings(bad))
    with pytest.raises(ModelLoadError, match="could not load"):
        await w.start()
    await w.stop()


async def test_stop_fails_waiting_questions_instead_of_dropping_them(slow_gguf: Path) -> None:
    w = ModelWorker(settings(slow_gguf))
    await w.start()
    running = w.submit(PARTS, SamplingParams(max_new_tokens=1500))
    waiting = w.submit(PARTS, SamplingParams(max_new_tokens=5))
    await started_running(running)
    await w.stop()
    for gen in (running, waiting):
        with pytest.raises(ModelFailed):
            async for _ in gen.stream():
                pass
