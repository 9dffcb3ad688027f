"""Scope gate benchmark: model load, batch throughput, per-message latency in the running bot, `scopebot check`.

    python bench/gate.py [--messages 1000]

- load: the embedding model and every scope's index (the bot does this once, at start);
- batch: `ScopeGate.check` on N distinct questions (what `scopebot check --jsonl` runs), messages/s;
- running bot: `GateService.screen_prompt` as the pipeline calls it, one question at a time on the event
  loop (median and p95 ms), then 16 questions in flight at once; `screen_answer` on a streamed answer;
- `scopebot check --jsonl` on a 1,000-line file in a fresh process, wall time including model load.

Questions are the held-out set's texts, each made distinct (the embedder caches repeated texts). Targets
(issue 3): ≥ 200 messages/s in batch, ≤ 20 ms median per message, `check` on 1,000 lines < 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, CpuWatch, append_results, table

from bot.config import load_config
from bot.gate.embed import Embedder
from bot.gate.gate import ScopeGate
from bot.gate.service import GateService
from bot.knowledge import KnowledgeIndex

CONFIG = ROOT / "tests" / "data" / "gate" / "heldout.toml"
DATASET = ROOT / "tests" / "data" / "gate" / "heldout.jsonl"
ANSWER = (
    "The Harbor branch is open Monday to Saturday from 9am to 5pm and closes on Sundays. You can renew books "
    "online, by phone or at any branch, up to three times unless someone has placed a hold. E-books are lent "
    "for 14 days through the library app, and you can have up to ten loans at a time."
)


def questions(n: int) -> list[str]:
    """N distinct questions drawn from the held-out set."""
    texts = [json.loads(line)["text"] for line in DATASET.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [f"{texts[i % len(texts)]}" + (f" ({i // len(texts)})" if i >= len(texts) else "") for i in range(n)]


def pct(values: list[float], q: float) -> float:
    """The q-quantile of `values`."""
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] if len(values) > 1 else values[0]


async def running_bot(config_path: Path, texts: list[str]) -> dict[str, float]:
    """Latency of the gate as the bot holds it."""
    config = load_config(config_path)
    scope = config.scope("citylibrary")
    service = GateService(config=config, knowledge={s.name: KnowledgeIndex(s.knowledge) for s in config.scopes})
    started = time.perf_counter()
    await service.start()
    out = {"start_s": time.perf_counter() - started}
    try:
        lat = []
        cpu = time.process_time()
        for text in texts:
            t = time.perf_counter()
            await service.screen_prompt(scope, text)
            lat.append((time.perf_counter() - t) * 1000)
        out["cpu_ms"] = (time.process_time() - cpu) * 1000 / len(texts)
        out["median_ms"], out["p95_ms"] = statistics.median(lat), pct(lat, 0.95)

        async def timed(text: str) -> float:
            t = time.perf_counter()
            await service.screen_prompt(scope, text + " ?")
            return (time.perf_counter() - t) * 1000

        t0 = time.perf_counter()
        conc: list[float] = []
        for i in range(0, len(texts), 16):
            conc += await asyncio.gather(*(timed(x) for x in texts[i : i + 16]))
        out["conc_per_s"] = len(texts) / (time.perf_counter() - t0)
        out["conc_median_ms"] = statistics.median(conc)
        words = ANSWER.split()
        ans = []
        for i in range(4, len(words) + 1, 4):
            t = time.perf_counter()
            await service.screen_answer(scope, " ".join(words[:i]))
            ans.append((time.perf_counter() - t) * 1000)
        out["answer_median_ms"] = statistics.median(ans)
    finally:
        await service.stop()
    return out


def main() -> None:
    """Measure and append to bench/RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads for the batch part (0: all cores)")
    args = parser.parse_args()
    watch = CpuWatch()
    config = load_config(CONFIG)
    scope = config.scope("citylibrary")

    t = time.perf_counter()
    embedder = Embedder.load(threads=args.threads)
    gate = ScopeGate(
        embedder=embedder,
        scopes=config.scopes,
        knowledge={s.name: KnowledgeIndex(s.knowledge) for s in config.scopes},
        global_blocked=[],
    )
    load_s = time.perf_counter() - t

    batch = questions(args.messages)
    t, cpu = time.perf_counter(), time.process_time()
    gate.check(scope, batch)
    batch_s, batch_cpu = time.perf_counter() - t, time.process_time() - cpu
    embedder.close()

    live = asyncio.run(running_bot(CONFIG, [f"{q} [{i}]" for i, q in enumerate(questions(300))]))

    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "in.jsonl"
        lines.write_text(
            "\n".join(json.dumps({"id": i, "text": f"{q} #{i}"}) for i, q in enumerate(questions(1000))), "utf-8"
        )
        cmd = [sys.executable, "-m", "bot", "--log-level", "WARNING", "check", "--config", str(CONFIG)]
        cmd += ["--scope", "citylibrary", "--jsonl", str(lines)]
        t = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
        check_s = time.perf_counter() - t
        assert len(done.stdout.splitlines()) == 1000

    rows = [
        ["model load + index 4 scopes", f"{load_s:.1f} s", "excluded from the targets"],
        [
            f"batch (`ScopeGate.check`, {args.messages} questions)",
            f"{args.messages / batch_s:.0f} msgs/s",
            "≥ 200 msgs/s",
        ],
        ["batch: CPU time per question (all threads)", f"{batch_cpu * 1000 / args.messages:.1f} ms", ""],
        ["running bot, one at a time: median", f"{live['median_ms']:.1f} ms", "≤ 20 ms"],
        ["running bot, one at a time: p95", f"{live['p95_ms']:.1f} ms", ""],
        ["running bot, one at a time: CPU time per question", f"{live['cpu_ms']:.1f} ms", ""],
        ["running bot, 16 in flight", f"{live['conc_per_s']:.0f} msgs/s (median {live['conc_median_ms']:.0f} ms)", ""],
        ["answer screen while streaming: median", f"{live['answer_median_ms']:.1f} ms", ""],
        ["`scopebot check` on 1,000 lines, wall incl. load", f"{check_s:.1f} s", "< 30 s"],
    ]
    body = table(["what", "result", "target"], rows)
    body += "\n\nQuestions: tests/data/gate/heldout.jsonl texts made distinct; scope citylibrary of tests/data/gate/heldout.toml."
    print(body)
    print(append_results("Scope gate (bench/gate.py)", body, watch=watch))


if __name__ == "__main__":
    main()
