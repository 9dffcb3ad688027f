"""Event-loop lag while the bot works: a 10 ms ticker measures how late the loop wakes it.

    python bench/loop.py [--model PATH] [--burst 1000]

Phases, each with the whole bot running (gate, knowledge, model worker, SQLite, moderation scheduler) on a
memory platform: idle; the model generating answers (streamed by edits) one after another; the scope gate
scoring a burst of N questions at once; and the same burst sent through the dispatcher as questions
(answers from passages: no model, so the model's queue does not turn them away). Target (issue 6): p99
lag ≤ 50 ms. Results go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from botkit import bench_model, question, running_bot
from common import CpuWatch, append_results, cache_dir, table

TICK = 0.010
QUESTIONS = [
    "How much is tuition?",
    "When is the Regular Decision deadline?",
    "What majors do you offer?",
    "Is the SAT required?",
    "Can I visit the campus?",
    "How do I apply for financial aid?",
    "Write me a poem about the sea",
    "What's the capital of Canada?",
]


class Ticker:
    """Sleeps TICK seconds in a loop and records how late each wake-up was."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(TICK)
            self.lags.append(max(0.0, loop.time() - t0 - TICK))

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def summary(self) -> tuple[str, str, str, int]:
        ms = sorted(x * 1000 for x in self.lags)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        return f"{statistics.median(ms):.1f}", f"{p99:.1f}", f"{ms[-1]:.1f}", len(ms)


def distinct(n: int) -> list[str]:
    """N questions, made distinct so no cache answers for the gate."""
    return [f"{QUESTIONS[i % len(QUESTIONS)]} (#{i})" for i in range(n)]


async def measure(model: Path, burst: int) -> list[list[object]]:
    rows: list[list[object]] = []
    async with running_bot(model=model, max_new_tokens=128, per_user=10_000, per_channel=100_000) as (app, mem):
        with Ticker() as t:
            await asyncio.sleep(3)
        rows.append(["idle", *t.summary()])

        with Ticker() as t:
            started = time.perf_counter()
            for i in range(6):
                await mem.emit(question(mem, user=f"m{i}", channel="general", text="How much is tuition?"))
            took = time.perf_counter() - started
        rows.append([f"model generating (6 answers × 128 tokens, {took:.1f} s)", *t.summary()])

        scope = app.scopes.get("college")
        with Ticker() as t:
            started = time.perf_counter()
            await asyncio.gather(*(app.gate.screen_prompt(scope, q) for q in distinct(burst)))
            took = time.perf_counter() - started
        rows.append([f"gate scoring {burst} questions at once ({burst / took:.0f}/s)", *t.summary()])

    async with running_bot(model=None, per_user=10_000, per_channel=100_000) as (app, mem):
        texts = distinct(burst)
        with Ticker() as t:
            started = time.perf_counter()
            await asyncio.gather(
                *(mem.emit(question(mem, user=f"u{i}", channel=f"c{i % 20}", text=q)) for i, q in enumerate(texts))
            )
            took = time.perf_counter() - started
        answered = sum(1 for m in mem.bot_messages())
        rows.append(
            [f"{burst} questions through the dispatcher ({answered} replies, {burst / took:.0f}/s)", *t.summary()]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a GGUF to generate with (default: a generated small LLaMA)")
    parser.add_argument("--burst", type=int, default=1000)
    args = parser.parse_args()
    model = args.model or bench_model(cache_dir("models"), shape="small")
    watch = CpuWatch()
    rows = asyncio.run(measure(model, args.burst))
    body = (
        f"`python bench/loop.py --burst {args.burst}` (model: {model.name}; 10 ms ticker on the bot's event loop)\n\n"
        + table(["while", "lag p50 (ms)", "lag p99 (ms)", "max (ms)", "ticks"], rows)
        + "\n\nTarget: p99 ≤ 50 ms."
    )
    print(body)
    append_results("Event-loop lag", body, watch=watch)


if __name__ == "__main__":
    main()
