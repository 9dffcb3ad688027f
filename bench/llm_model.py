"""The model and machine side of bench/llm.py: LLaMA shapes, the cached GGUF, memory bandwidth, prompts."""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import ROOT, cache_dir

from bot.llm.prompt import prefix_text, system_prompt
from tests.gguf_factory import BOS, Q4_0_BLOCK_BYTES, llama_tensor_shapes, vocabulary, write_random_q4_0_gguf


@dataclass(frozen=True)
class Shape:
    """A LLaMA's dimensions."""

    name: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_vocab: int = 32000

    @property
    def file_name(self) -> str:
        """The cached GGUF's name; the shape is in it, so a changed shape builds a new file."""
        return f"llama-{self.n_layer}x{self.n_embd}-ff{self.n_ff}-h{self.n_head}-v{self.n_vocab}-q4_0.gguf"

    def bytes_per_token(self) -> int:
        """Weight bytes read to generate one token: every matrix but the embedding table (one row)."""
        total = 0
        for name, shape in llama_tensor_shapes(
            n_layer=self.n_layer, n_embd=self.n_embd, n_ff=self.n_ff, n_vocab=self.n_vocab
        ):
            if isinstance(shape, int):
                total += 4 * shape
            elif name == "token_embd.weight":
                total += shape[1] // 32 * Q4_0_BLOCK_BYTES
            else:
                total += shape[0] * shape[1] // 32 * Q4_0_BLOCK_BYTES
        return total


LLAMA2_7B = Shape("LLaMA-2-7B", 32, 4096, 11008, 32)
SMALL = Shape("small", 4, 512, 1376, 8)


def model_file(shape: Shape) -> Path:
    """The cached GGUF for `shape`, written on first use."""
    path = cache_dir() / shape.file_name
    if not path.exists():
        print(f"writing {path} (once) …", flush=True)
        started = time.perf_counter()
        write_random_q4_0_gguf(
            path,
            n_layer=shape.n_layer,
            n_embd=shape.n_embd,
            n_ff=shape.n_ff,
            n_head=shape.n_head,
            n_vocab=shape.n_vocab,
        )
        print(f"  {path.stat().st_size / 2**30:.2f} GiB in {time.perf_counter() - started:.0f} s", flush=True)
    return path


# --- memory bandwidth -------------------------------------------------------------------------------------


def _read_loop(gib: float, rounds: int, barrier: Any, out: Any) -> None:
    """In a child process: time reading `gib` of memory `rounds` times, in step with the other readers."""
    import numpy as np

    chunk = 256 * 1024  # the sink stays in L2, so only the reads go to memory
    n = int(gib * 2**30) // chunk * chunk
    src = np.ones(n, np.uint8)
    sink = np.empty(chunk, np.uint8)
    times = []
    for _ in range(rounds):
        barrier.wait()
        t = time.perf_counter()
        for i in range(0, n, chunk):
            np.copyto(sink, src[i : i + chunk])
        times.append(time.perf_counter() - t)
    out.put((n, times))


def read_bandwidth(processes: int, *, gib: float = 1.0, rounds: int = 3) -> float:
    """GB/s read by `processes` processes at once (processes, not threads: no lock between them)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_read_loop, args=(gib, rounds, barrier, out)) for _ in range(processes)]
    for proc in procs:
        proc.start()
    reports = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    total = sum(n for n, _ in reports)
    return max(total / max(times[r] for _, times in reports) / 1e9 for r in range(rounds))


def memory_bandwidth(gib: float = 1.0) -> dict[str, float]:
    """GB/s for a large copy (read + write, best of three), and for reading with 1 and 2 processes."""
    import numpy as np

    src = np.ones(int(gib * 2**30), np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch every page first
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    copy = 2 * src.nbytes / best / 1e9
    del src, dst
    return {"copy": copy, "read1": read_bandwidth(1, gib=gib), "read2": read_bandwidth(2, gib=gib / 2)}


# --- prompts ----------------------------------------------------------------------------------------------


def fixed_prefix_tokens() -> tuple[int, int]:
    """Characters of the example scope's fixed instructions, and about how many LLaMA-2 tokens that is."""
    with (ROOT / "scopebot.example.toml").open("rb") as f:
        scope = tomllib.load(f)["scopes"][0]
    text = prefix_text(
        system_prompt(
            bot_name="scopebot",
            scope_name=scope["name"],
            description=scope["description"],
            refusal=scope["refusal"],
            instructions=scope.get("instructions", ""),
        )
    )
    # English runs about four characters per LLaMA-2 token; the random test vocabulary would split it finer.
    return len(text), round(len(text) / 4)


def prompts(total: int, fixed: int) -> tuple[list[int], list[int], list[int]]:
    """Two prompts of `total` ids sharing their first `fixed` ids, and a third sharing nothing."""
    import numpy as np

    tokens, _, types = vocabulary()
    words = [i for i, (t, kind) in enumerate(zip(tokens, types, strict=True)) if kind == 1 and t.startswith("▁")]
    rng = np.random.default_rng(0)

    def ids(n: int) -> list[int]:
        return [int(x) for x in rng.choice(words, n)]

    head = [BOS, *ids(fixed - 1)]
    return head + ids(total - fixed), head + ids(total - fixed), [BOS, *ids(total - 1)]
