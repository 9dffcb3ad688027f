"""The llama.cpp LLaMA-2 engine (llama-cpp-python, the optional `llamacpp` extra), driven from token ids.

It reads the same GGUF files as the ctransformers engine and keeps the same promises: tokenization
cannot overrun a buffer (llama.cpp reports the size it needs instead of writing past it), user text is
never parsed for control tokens, the context length is passed explicitly, one thread owns the model,
and the prompt's fixed head stays in the KV cache between questions (`Llama.generate` matches the new
prompt against what it evaluated last and only evaluates the rest).
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bot.llm.engine import GenerationStats, ModelLoadError, SamplingParams, _split_utf8, check_gguf, check_room

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'scopebot[llamacpp]'"


class LlamaCppEngine:
    """LLaMA-2 GGUF through llama-cpp-python, with prefix reuse through llama.cpp's KV cache."""

    def __init__(self, model_path: Path, *, context_length: int, threads: int, batch_size: int) -> None:
        try:
            import llama_cpp
        except ImportError as e:
            raise ModelLoadError(
                f'[model] engine = "llama.cpp" needs llama-cpp-python, which is not installed ({e}); '
                f'install it with {INSTALL_HINT}, or set engine = "ctransformers"'
            ) from e
        check_gguf(model_path)
        self._lib: Any = llama_cpp
        started = time.perf_counter()
        try:
            self._llm: Any = llama_cpp.Llama(
                model_path=str(model_path),
                n_ctx=context_length,
                n_batch=batch_size,
                n_ubatch=batch_size,
                n_threads=threads,
                n_threads_batch=threads,
                # On AVX2/AVX-512 CPUs llama.cpp repacks Q4_0 weights into its own layout at load; with mmap
                # the file's pages stay mapped besides the copy and the resident size doubles (9.0 against
                # 5.6 GiB on LLaMA-2-7B's shape, bench/RESULTS.md), so read the file instead.
                use_mmap=False,
                verbose=False,
            )
        except (RuntimeError, OSError, ValueError) as e:
            raise ModelLoadError(f"llama.cpp could not load {model_path}: {e}") from e
        self.load_ms = (time.perf_counter() - started) * 1000
        # llama.cpp may pad the window; never promise more than was asked for.
        self.context_length = min(context_length, int(self._llm.n_ctx()))
        self.threads = threads
        self.batch_size = batch_size
        self.description = f"llama.cpp llama {model_path.name} ctx={self.context_length}"
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        # Token id -> (text bytes, ends generation): two foreign calls per token saved on every answer.
        self._pieces: dict[int, tuple[bytes, bool]] = {}

    def tokenize(self, text: str, bos: bool) -> list[int]:
        """Token ids for `text`; control-token spellings in it (`</s>`, `<s>`) stay plain text."""
        data = text.encode("utf-8", errors="replace").replace(b"\x00", b"")
        # llama.cpp returns the size it needs when the buffer is short and the binding retries with it.
        return [int(t) for t in self._llm.tokenize(data, add_bos=bos, special=False)]

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of `tokens`, control tokens left out."""
        return b"".join(self._piece(t) for t in tokens).decode("utf-8", errors="replace")

    def _piece(self, token: int) -> bytes:
        return self._lookup(token)[0]

    def _lookup(self, token: int) -> tuple[bytes, bool]:
        known = self._pieces.get(token)
        if known is None:
            known = self._pieces[token] = (self._spell(token), bool(self._lib.llama_vocab_is_eog(self._vocab, token)))
        return known

    def _spell(self, token: int) -> bytes:
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = int(self._lib.llama_token_to_piece(self._vocab, token, buf, size, 0, False))
            if n >= 0:
                return buf.raw[:n]
            size = -n  # llama.cpp says how much room the piece needs

    def _reusable_prefix(self, tokens: list[int]) -> int:
        """How many leading `tokens` are already in the KV cache, by the rule `Llama.generate` applies."""
        cached = self._llm.n_tokens
        same = 0
        for a, b in zip(self._llm.input_ids[:cached].tolist(), tokens, strict=False):
            if a != b:
                break
            same += 1
        # With nothing left to evaluate, llama-cpp-python replays the last prompt token for fresh logits.
        return same - 1 if same == len(tokens) else same

    def generate(
        self, tokens: list[int], params: SamplingParams, *, should_stop: Callable[[], bool], stats: GenerationStats
    ) -> Iterator[str]:
        """Evaluate the prompt (reusing the cached common prefix) and sample until EOS or a limit."""
        llm, lib = self._llm, self._lib
        check_room(tokens, params, self.context_length)
        started = time.perf_counter()
        stats.prompt_tokens = len(tokens)
        stats.reused_tokens = max(0, self._reusable_prefix(tokens))
        llm.set_seed(params.seed if params.seed >= 0 else lib.LLAMA_DEFAULT_SEED)
        llm.last_n_tokens_size = params.last_n_tokens
        # min_p off and the rest as ctransformers samples, so both engines answer alike.
        steps = llm.generate(
            tokens,
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=0.0,
            temp=params.temperature,
            repeat_penalty=params.repetition_penalty,
            reset=True,
        )
        pending = b""
        stats.stop_reason = "length"
        try:
            # The generator evaluates the prompt on its first step and each token on the step after it is
            # yielded, so a token is shown before its forward pass, as in the ctransformers engine.
            while stats.completion_tokens < params.max_new_tokens:
                if should_stop():
                    stats.stop_reason = "cancelled"
                    break
                token = int(next(steps))
                if stats.completion_tokens == 0:
                    stats.prompt_ms = (time.perf_counter() - started) * 1000
                piece, eog = self._lookup(token)
                if eog:
                    stats.stop_reason = "eos"
                    break
                stats.completion_tokens += 1
                if stats.completion_tokens == 1:
                    stats.first_token_ms = (time.perf_counter() - started) * 1000
                pending += piece
                text, pending = _split_utf8(pending)
                if text:
                    yield text
        finally:
            steps.close()
        if pending:
            yield pending.decode("utf-8", errors="replace")
        stats.total_ms = (time.perf_counter() - started) * 1000
