"""The model and machine side of bench/llm.py: LLaMA shapes, the cached GGUF, memory bandwidth, prompts."""

from __future__ import annotations

import threading
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


def memory_bandwidth(gib: float = 1.0) -> dict[str, float]:
    """GB/s for a large copy and for reading a large array with 1 and 2 threads (best of three each)."""
    import numpy as np

    n = int(gib * 2**30)
    src = np.ones(n, np.uint8)
    dst = np.empty_like(src)
    chunk = 256 * 1024  # the sink stays in L2, so only the reads go to memory

    def best(run: Any) -> float:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        return min(times)

    def read(lo: int, hi: int) -> None:
        sink = np.empty(chunk, np.uint8)
        for i in range(lo, hi, chunk):
            np.copyto(sink[: min(chunk, hi - i)], src[i : min(i + chunk, hi)])

    def read_threads(k: int) -> None:
        part = n // k
        threads = [threading.Thread(target=read, args=(j * part, (j + 1) * part)) for j in range(k)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    np.copyto(dst, src)  # touch every page first
    copy = 2 * n / best(lambda: np.copyto(dst, src)) / 1e9
    read1 = n / best(lambda: read_threads(1)) / 1e9
    read2 = n / best(lambda: read_threads(2)) / 1e9
    return {"copy": copy, "read1": read1, "read2": read2}


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
