"""Choosing the engine: `[model] engine` in scopebot.toml reaches the worker process, which answers with it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import ConfigError, load_config
from bot.llm.client import ModelWorker, WorkerSettings
from bot.llm.engine import ModelLoadError, SamplingParams
from bot.llm.prompt import Passage, PromptParts
from tests.engine_params import ENGINES

PARTS = PromptParts(
    system="Answer college questions only.",
    question="How much is tuition? 😀 学费",
    passages=(Passage("costs.md", "Tuition is $42,300."),),
)


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_engine_defaults_to_ctransformers(write_config: Callable[..., Path]) -> None:
    assert load_config(write_config()).model.engine == "ctransformers"


def test_engine_llama_cpp_is_accepted(write_config: Callable[..., Path]) -> None:
    path = write_config()
    text = path.read_text(encoding="utf-8").replace("[model]\n", '[model]\nengine = "llama.cpp"\n', 1)
    path.write_text(text, encoding="utf-8")
    assert load_config(path).model.engine == "llama.cpp"


def test_unknown_engine_names_the_key(write_config: Callable[..., Path]) -> None:
    path = write_config()
    text = path.read_text(encoding="utf-8").replace("[model]\n", '[model]\nengine = "vllm"\n', 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"engine"):
        load_config(path)


async def test_worker_answers_with_the_configured_engine(engine_name: str, chatty_gguf: Path) -> None:
    worker = ModelWorker(
        WorkerSettings(
            model_path=chatty_gguf,
            context_length=512,
            threads=1,
            batch_size=8,
            max_new_tokens=64,
            engine=engine_name,
            timeout_seconds=60,
        )
    )
    await worker.start()
    try:
        assert worker.info["description"].startswith(f"{engine_name} llama chatty.gguf")
        first = worker.submit(PARTS, SamplingParams(max_new_tokens=10))
        text = "".join([c async for c in first.stream()])
        second = worker.submit(
            PromptParts(system=PARTS.system, question="Where is the library?"), SamplingParams(max_new_tokens=10)
        )
        _ = [c async for c in second.stream()]
    finally:
        await worker.stop()
    assert text
    assert first.stats["completion_tokens"] == 10
    assert first.stats["stop_reason"] == "length"
    # The scope's instructions stayed cached from the first question to the second, across the process boundary.
    assert second.stats["reused_tokens"] > 10


async def test_worker_with_a_missing_engine_fails_to_start_with_the_reason(
    tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A `llama_cpp` that cannot be imported, found first on the worker's path, as where the extra is absent.
    shadow = tmp_path / "shadow" / "llama_cpp"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not built here')\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))
    worker = ModelWorker(
        WorkerSettings(
            model_path=tiny_gguf, context_length=512, threads=1, batch_size=8, max_new_tokens=8, engine="llama.cpp"
        )
    )
    with pytest.raises(ModelLoadError, match=r"pip install 'scopebot\[llamacpp\]'"):
        await worker.start()
    await worker.stop()
