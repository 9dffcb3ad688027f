"""Load: many members asking at once, and memory over a long run of messages.

    python bench/load.py [--members 200] [--messages 10000]

1. `--members` members ask one question each at the same moment through the memory platform, with the
   whole bot and a generated model: every question must end with an answer (or a screen's refusal or
   block), having been told its place in line if it had to wait; none may be dropped or told "busy"
   (the line per platform is sized for them: `queue_size` = members).
2. `--messages` questions from many members in many channels, answered from passages (no model, so the
   run measures the bot and not generation): resident memory of the bot process sampled every 1,000
   messages; it should stay flat once the bounded caches are full.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections import Counter
from pathlib import Path

from botkit import bench_model, question, running_bot
from common import CpuWatch, append_results, cache_dir, table

from bot.pipeline import BUSY_TEXT, QUEUED_TEXT

ASKS = [
    "How much is tuition?",
    "When is the Regular Decision deadline?",
    "What majors do you offer?",
    "Write me a poem about the sea",
]


def rss_mib() -> float:
    """Resident memory of this process now, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def crowd(model: Path, members: int) -> tuple[list[list[object]], str]:
    async with running_bot(model=model, max_new_tokens=16, queue_size=members, per_channel=100_000) as (app, mem):
        qs = [question(mem, user=f"member{i}", channel=f"c{i % 10}", text=ASKS[i % len(ASKS)]) for i in range(members)]
        started = time.perf_counter()
        await asyncio.gather(*(mem.emit(q) for q in qs))
        took = time.perf_counter() - started
        outcome: Counter[str] = Counter()
        told_place = 0
        for q in qs:
            replies = mem.replies_to(q.ref)
            if not replies:
                outcome["dropped (no reply)"] += 1
                continue
            final = replies[-1].text
            history = [*replies[0].edits, replies[0].text]
            told_place += any(h.startswith(QUEUED_TEXT.split("{")[0]) for h in history)
            if final.startswith(BUSY_TEXT.split("{")[0]):
                outcome["told busy"] += 1
            elif "Sources:" in final:
                outcome["answered by the model"] += 1
            elif final == app.config.scopes[0].refusal:
                outcome["refused (off-topic)"] += 1
            elif final == app.config.bot.blocked_reply:
                outcome["blocked by the output screen"] += 1
            else:
                outcome[f"other: {final[:40]!r}"] += 1
    rows = [[k, v] for k, v in sorted(outcome.items())]
    rows.append(["(of which first told their place in line)", told_place])
    return rows, f"{members} questions at once, all settled in {took:.1f} s"


async def long_run(messages: int) -> tuple[list[list[object]], str]:
    rows: list[list[object]] = []
    async with running_bot(model=None, per_user=10_000, per_channel=100_000) as (_app, mem):
        started = time.perf_counter()
        batch = 50
        for n in range(0, messages, batch):
            await asyncio.gather(
                *(
                    mem.emit(
                        question(mem, user=f"m{(n + i) % 3000}", channel=f"c{(n + i) % 97}", text=ASKS[(n + i) % 4])
                    )
                    for i in range(batch)
                )
            )
            # The memory platform itself keeps every message; forget them so only the bot is measured.
            mem.messages.clear()
            done = n + batch
            if done % 1000 == 0:
                gc.collect()
                rows.append([done, f"{rss_mib():.0f}", f"{done / (time.perf_counter() - started):.0f}"])
    return rows, f"{messages} questions from 3,000 members in 97 channels"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--model", type=Path, help="a GGUF to answer with (default: a generated tiny LLaMA)")
    args = parser.parse_args()
    model = args.model or bench_model(cache_dir("models"), shape="tiny")
    watch = CpuWatch()
    crowd_rows, crowd_note = asyncio.run(crowd(model, args.members))
    mem_rows, mem_note = asyncio.run(long_run(args.messages))
    first, last = float(mem_rows[1][1]), float(mem_rows[-1][1])
    body = (
        f"`python bench/load.py --members {args.members} --messages {args.messages}` (model: {model.name})\n\n"
        f"{crowd_note}:\n\n"
        + table(["outcome", "questions"], crowd_rows)
        + f"\n\nMemory over a long run ({mem_note}; bot process RSS):\n\n"
        + table(["messages", "RSS (MiB)", "messages/s so far"], mem_rows)
        + f"\n\nRSS from message {mem_rows[1][0]} to {mem_rows[-1][0]}: {first:.0f} → {last:.0f} MiB ({last - first:+.0f} MiB)."
    )
    print(body)
    append_results("Load", body, watch=watch)


if __name__ == "__main__":
    main()
