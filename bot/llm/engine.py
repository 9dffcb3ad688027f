"""The engine protocol and the default engine, ctransformers, driven from token ids.

ctransformers 0.2.27's `LLM.tokenize` sizes its output buffer from the number of *characters* and so
writes past it for text with more tokens than characters (emoji, CJK, byte-fallback pieces). We never
call it: `tokenize` below calls the library's C function with a buffer sized from the UTF-8 bytes.
One engine must only ever be used from one thread; the worker process owns it.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


class ModelLoadError(Exception):
    """The model could not be loaded; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to sample one answer."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    repetition_penalty: float = 1.1
    last_n_tokens: int = 64
    seed: int = -1


@dataclass(slots=True)
class GenerationStats:
    """What one generation did."""

    prompt_tokens: int = 0
    reused_tokens: int = 0
    completion_tokens: int = 0
    stop_reason: str = ""
    prompt_ms: float = 0.0
    first_token_ms: float = 0.0
    total_ms: float = 0.0


#: The engines `[model] engine` can name; ctransformers is the default, llama.cpp an optional extra.
ENGINES = ("ctransformers", "llama.cpp")


class Engine(Protocol):
    """What the worker needs from an inference library."""

    context_length: int
    description: str
    load_ms: float

    def tokenize(self, text: str, bos: bool) -> list[int]:
        """Token ids for `text`, safe for any input."""

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of `tokens`, control tokens left out."""

    def generate(
        self, tokens: list[int], params: SamplingParams, *, should_stop: Callable[[], bool], stats: GenerationStats
    ) -> Iterator[str]:
        """Yield the answer as complete UTF-8 text pieces until EOS, the token limit or `should_stop()`."""


def load_engine(
    name: str, model_path: Path, *, context_length: int, threads: int, batch_size: int, lib: str = ""
) -> Engine:
    """Load `model_path` with the engine `name` (`ENGINES`); `ModelLoadError` says what went wrong."""
    if name == "ctransformers":
        return CTransformersEngine(
            model_path, context_length=context_length, threads=threads, batch_size=batch_size, lib=lib
        )
    if name == "llama.cpp":
        from bot.llm.llamacpp import LlamaCppEngine

        return LlamaCppEngine(model_path, context_length=context_length, threads=threads, batch_size=batch_size)
    raise ModelLoadError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")


def check_gguf(model_path: Path) -> None:
    """Refuse a missing file or one that is not GGUF, with what to do about it."""
    if not model_path.is_file():
        raise ModelLoadError(f"model file {model_path} does not exist")
    with model_path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelLoadError(f"{model_path} is not a GGUF file; convert it or download a .gguf build")


def check_room(tokens: list[int], params: SamplingParams, context_length: int) -> None:
    """Refuse a prompt that, with the answer, would overrun the window (the libraries degrade silently)."""
    if not tokens:
        raise ValueError("empty prompt")
    if len(tokens) + params.max_new_tokens > context_length:
        raise ValueError(
            f"prompt of {len(tokens)} tokens plus {params.max_new_tokens} new ones exceeds the context "
            f"window of {context_length}"
        )


def detect_native_lib() -> str | None:
    """Pick ctransformers' build for this CPU from /proc/cpuinfo, skipping its ~1 s py-cpuinfo probe."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            if "avx2" in flags:
                return "avx2"
            if "avx" in flags and "f16c" in flags:
                return "avx"
            return "basic"
    return None


def resolve_model_file(*, path: Path | None, repo: str | None, model_file: str | None) -> Path:
    """The local GGUF file: `path` as is, or `repo`/`model_file` fetched into the Hugging Face cache."""
    if path is not None:
        if not path.is_file():
            raise ModelLoadError(f"model file {path} does not exist; set [model] path to a .gguf file")
        return path
    if repo is None or model_file is None:
        raise ModelLoadError("no model configured; set [model] path to a LLaMA-2 .gguf file")
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as e:  # pragma: no cover - ctransformers depends on huggingface_hub
        raise ModelLoadError(f"huggingface_hub is not installed ({e}); set [model] path instead of repo") from e
    try:
        return Path(hf_hub_download(repo_id=repo, filename=model_file))
    except LocalEntryNotFoundError as e:
        raise ModelLoadError(
            f"could not download {model_file} from Hugging Face repo {repo}: no network connection to the hub "
            f"and no cached copy. Download the file on a connected machine and set [model] path to it."
        ) from e
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelLoadError(
            f"could not download {model_file} from Hugging Face repo {repo}: {first}. "
            f"Check the repo id and file name, or download it yourself and set [model] path."
        ) from e


class CTransformersEngine:
    """LLaMA-2 GGUF through ctransformers, with safe tokenization and prefix reuse."""

    def __init__(
        self,
        model_path: Path,
        *,
        context_length: int,
        threads: int,
        batch_size: int,
        lib: str = "",
    ) -> None:
        from ctransformers.llm import LLM, Config

        check_gguf(model_path)
        # ctransformers ignores the file's context length for GGUF and defaults to 512: always pass ours.
        config = Config(context_length=context_length, threads=threads, batch_size=batch_size, reset=True)
        started = time.perf_counter()
        try:
            self._llm: Any = LLM(str(model_path), "llama", config=config, lib=lib or detect_native_lib())
        except (RuntimeError, OSError, ValueError) as e:
            raise ModelLoadError(f"ctransformers could not load {model_path}: {e}") from e
        self.load_ms = (time.perf_counter() - started) * 1000
        self.context_length = int(self._llm.context_length)
        self.threads = threads
        self.batch_size = batch_size
        self.description = f"ctransformers llama {model_path.name} ctx={self.context_length}"
        self._tokenize_c = self._llm.ctransformers_llm_tokenize

    def tokenize(self, text: str, bos: bool) -> list[int]:
        """Token ids for `text`, with a buffer no input can overrun."""
        data = text.encode("utf-8", errors="replace").replace(b"\x00", b"")
        # Worst case: every byte becomes a byte-fallback token, every space a three-byte "▁" spelled
        # out in bytes, plus the leading "▁" the tokenizer adds and the BOS token.
        capacity = 3 * len(data) + 8
        buf = (ctypes.c_int * capacity)()
        n = int(self._tokenize_c(data, bos, buf))
        if n < 0 or n > capacity:  # pragma: no cover - would mean the library changed its contract
            raise RuntimeError(f"tokenizer returned {n} tokens for a buffer of {capacity}")
        return list(buf[:n])

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of `tokens`, control tokens left out."""
        return str(self._llm.detokenize(list(tokens)))

    def generate(
        self, tokens: list[int], params: SamplingParams, *, should_stop: Callable[[], bool], stats: GenerationStats
    ) -> Iterator[str]:
        """Evaluate the prompt (reusing the cached common prefix) and sample until EOS or a limit."""
        llm = self._llm
        check_room(tokens, params, self.context_length)
        started = time.perf_counter()
        stats.prompt_tokens = len(tokens)
        todo = llm.prepare_inputs_for_generation(tokens, reset=True)
        stats.reused_tokens = len(tokens) - len(todo)
        llm.eval(todo, batch_size=self.batch_size, threads=self.threads)
        stats.prompt_ms = (time.perf_counter() - started) * 1000
        pending = b""
        stats.stop_reason = "length"
        last: int | None = None
        for _ in range(params.max_new_tokens):
            if should_stop():
                stats.stop_reason = "cancelled"
                break
            # Each token is shown before it is evaluated, so the first one is not held back by a forward pass.
            if last is not None:
                llm.eval([last], batch_size=self.batch_size, threads=self.threads)
            token = llm.sample(
                top_k=params.top_k,
                top_p=params.top_p,
                temperature=params.temperature,
                repetition_penalty=params.repetition_penalty,
                last_n_tokens=params.last_n_tokens,
                seed=params.seed,
            )
            if llm.is_eos_token(token):
                stats.stop_reason = "eos"
                break
            last = token
            stats.completion_tokens += 1
            if stats.completion_tokens == 1:
                stats.first_token_ms = (time.perf_counter() - started) * 1000
            pending += llm.detokenize([token], decode=False)
            text, pending = _split_utf8(pending)
            if text:
                yield text
        if pending:
            yield pending.decode("utf-8", errors="replace")
        stats.total_ms = (time.perf_counter() - started) * 1000


def _split_utf8(data: bytes) -> tuple[str, bytes]:
    """Decode the complete characters of `data`; keep an unfinished trailing sequence for later."""
    cut = len(data)
    # Walk back over at most three continuation bytes to the start of the last character.
    for back in range(1, min(4, len(data)) + 1):
        b = data[-back]
        if b & 0xC0 == 0x80:
            continue
        need = 1 if b < 0x80 else 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4 if b >> 3 == 0b11110 else 1
        if need > back:
            cut = len(data) - back
        break
    return data[:cut].decode("utf-8", errors="replace"), data[cut:]
