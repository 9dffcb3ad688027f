"""Both engines on a generated tiny LLaMA GGUF: safe tokenization, generation, stopping, caching.

Every test taking `engine_name` runs on ctransformers and on llama.cpp (skipped, with the reason, where
the optional llama-cpp-python extra is not installed).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.llm.engine import Engine, GenerationStats, ModelLoadError, SamplingParams, _split_utf8, load_engine
from bot.llm.prompt import Passage, PromptParts, pack
from tests.engine_params import ENGINES, needs_llama_cpp


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(engine_name: str) -> Callable[..., Engine]:
    def make(path: Path, *, context_length: int = 512) -> Engine:
        return load_engine(engine_name, path, context_length=context_length, threads=1, batch_size=8)

    return make


def run(e: Engine, text: str, params: SamplingParams, **kw: object) -> tuple[str, GenerationStats]:
    stats = GenerationStats()
    ids = e.tokenize(text, True)
    out = "".join(e.generate(ids, params, should_stop=kw.get("should_stop", lambda: False), stats=stats))  # type: ignore[arg-type]
    return out, stats


@pytest.mark.parametrize(
    "text",
    [
        "😀" * 300,  # four bytes and four byte-fallback tokens per character
        "中文字符" * 1250,  # 5,000 CJK characters, three tokens each
        "🏳️‍🌈 " * 200,  # ZWJ sequences and spaces, which the tokenizer turns into "▁"
        "a" * 10,
    ],
)
def test_tokenize_never_overflows_and_round_trips(engine: Callable[..., Engine], tiny_gguf: Path, text: str) -> None:
    e = engine(tiny_gguf)
    ids = e.tokenize(text, True)
    assert ids[0] == 1  # BOS
    if not text.isascii():
        # The library's own LLM.tokenize would have allocated len(text) + 1 slots for these.
        assert len(ids) > len(text) + 1
    assert e.detokenize(ids).strip() == text.strip()


def test_tokenize_text_with_nul_and_lone_surrogates(engine: Callable[..., Engine], tiny_gguf: Path) -> None:
    e = engine(tiny_gguf)
    ids = e.tokenize("tuition\x00 fee \ud800 ok", False)
    assert ids and 1 not in ids


def test_generation_stops_at_eos(engine: Callable[..., Engine], eos_gguf: Path) -> None:
    e = engine(eos_gguf)
    text, stats = run(e, "What is the tuition?", SamplingParams(max_new_tokens=50))
    assert text == ""
    assert stats.stop_reason == "eos"
    assert stats.completion_tokens == 0


def test_generation_stops_at_the_token_limit(engine: Callable[..., Engine], chatty_gguf: Path) -> None:
    e = engine(chatty_gguf)
    text, stats = run(e, "What is the tuition?", SamplingParams(max_new_tokens=17))
    assert stats.stop_reason == "length"
    assert stats.completion_tokens == 17
    assert text


def test_generation_stops_when_asked(engine: Callable[..., Engine], chatty_gguf: Path) -> None:
    e = engine(chatty_gguf)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    _, stats = run(e, "hello", SamplingParams(max_new_tokens=100), should_stop=stop)
    assert stats.stop_reason == "cancelled"
    assert stats.completion_tokens == 5


def test_fixed_prefix_is_reused_between_questions(engine: Callable[..., Engine], chatty_gguf: Path) -> None:
    e = engine(chatty_gguf)
    params = SamplingParams(max_new_tokens=4)
    parts = [PromptParts(system="You answer college questions only.", question=q) for q in ("tuition?", "deadline?")]
    packed = [pack(p, tokenize=e.tokenize, context_length=e.context_length, max_new_tokens=4) for p in parts]
    first, second = GenerationStats(), GenerationStats()
    list(e.generate(packed[0].tokens, params, should_stop=lambda: False, stats=first))
    list(e.generate(packed[1].tokens, params, should_stop=lambda: False, stats=second))
    assert first.reused_tokens == 0
    assert second.reused_tokens >= packed[1].prefix_len


def test_prompt_over_the_window_is_refused_not_degraded(engine: Callable[..., Engine], tiny_gguf: Path) -> None:
    e = engine(tiny_gguf, context_length=128)
    ids = e.tokenize("college " * 200, True)
    with pytest.raises(ValueError, match="exceeds the context window"):
        list(e.generate(ids, SamplingParams(max_new_tokens=8), should_stop=lambda: False, stats=GenerationStats()))


def test_pack_truncates_long_questions_and_drops_passages_that_do_not_fit(
    engine: Callable[..., Engine], tiny_gguf: Path
) -> None:
    e = engine(tiny_gguf, context_length=256)
    passages = tuple(Passage(f"doc{i}.md", "tuition fees " * 40) for i in range(3))
    parts = PromptParts(system="Answer college questions.", question="why " * 100_000, passages=passages)
    packed = pack(parts, tokenize=e.tokenize, context_length=256, max_new_tokens=32)
    assert packed.question_truncated
    assert len(packed.tokens) <= 256 - 32
    assert packed.passages_used == ()
    # The prompt still ends with the closing [/INST] so the model answers rather than continues.
    assert packed.tokens[-len(e.tokenize(" [/INST]", False)) :] == e.tokenize(" [/INST]", False)


def test_pack_keeps_the_best_passages_that_fit(engine: Callable[..., Engine], tiny_gguf: Path) -> None:
    e = engine(tiny_gguf, context_length=512)
    passages = (
        Passage("short.md", "Tuition is $42,300."),
        Passage("long.md", "fees " * 2000),
        Passage("b.md", "Aid by Feb 15."),
    )
    parts = PromptParts(system="Answer.", question="How much is tuition?", passages=passages)
    packed = pack(parts, tokenize=e.tokenize, context_length=512, max_new_tokens=32)
    assert packed.passages_used == (0, 2)
    assert not packed.question_truncated


def test_pack_says_clearly_when_the_window_is_too_small(engine: Callable[..., Engine], tiny_gguf: Path) -> None:
    e = engine(tiny_gguf, context_length=128)
    parts = PromptParts(system="rules " * 200, question="hi")
    with pytest.raises(ValueError, match="raise context_length"):
        pack(parts, tokenize=e.tokenize, context_length=128, max_new_tokens=32)


def test_not_a_gguf_file_is_a_clear_load_error(engine: Callable[..., Engine], tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        engine(bad)


def test_missing_file_is_a_clear_load_error(engine: Callable[..., Engine], tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        engine(tmp_path / "nope.gguf")


@pytest.mark.parametrize(
    ("data", "text", "rest"),
    [
        (b"abc", "abc", b""),
        ("é".encode()[:1], "", "é".encode()[:1]),
        ("a😀".encode()[:3], "a", "😀".encode()[:2]),
        ("😀".encode(), "😀", b""),
    ],
)
def test_split_utf8_keeps_unfinished_characters_for_later(data: bytes, text: str, rest: bytes) -> None:
    assert _split_utf8(data) == (text, rest)


def test_control_token_spellings_in_user_text_stay_text(engine: Callable[..., Engine], tiny_gguf: Path) -> None:
    e = engine(tiny_gguf)
    ids = e.tokenize("</s> <s> [INST] <<SYS>> <unk>", False)
    # A member typing "</s>" must not end the prompt or start a new one.
    assert not {0, 1, 2} & set(ids)
    assert "</s>" in e.detokenize(ids)


def _count_evaluated(e: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many tokens each call to the library's own `eval` hands to the model."""
    llm = e._llm  # type: ignore[attr-defined]
    real = llm.eval
    calls: list[int] = []

    def spy(tokens: list[int], *args: object, **kwargs: object) -> object:
        calls.append(len(tokens))
        return real(tokens, *args, **kwargs)

    monkeypatch.setattr(llm, "eval", spy)
    return calls


def test_cached_prefix_is_not_evaluated_again(
    engine: Callable[..., Engine], chatty_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    e = engine(chatty_gguf)
    params = SamplingParams(max_new_tokens=3)
    system = "You answer questions about the college only: tuition, fees, admission and the library."
    packed = [
        pack(PromptParts(system=system, question=q), tokenize=e.tokenize, context_length=512, max_new_tokens=3)
        for q in ("what is the tuition?", "when is the application deadline?")
    ]
    list(e.generate(packed[0].tokens, params, should_stop=lambda: False, stats=GenerationStats()))
    evaluated = _count_evaluated(e, monkeypatch)
    second = GenerationStats()
    list(e.generate(packed[1].tokens, params, should_stop=lambda: False, stats=second))
    assert second.reused_tokens >= packed[1].prefix_len
    # The model really skipped the cached tokens: the first evaluation covers only the rest of the prompt.
    assert evaluated[0] == second.prompt_tokens - second.reused_tokens
    assert sum(evaluated) < second.prompt_tokens


def test_answer_after_a_cache_hit_equals_a_cold_answer(engine: Callable[..., Engine], chatty_gguf: Path) -> None:
    greedy = SamplingParams(max_new_tokens=12, top_k=1, repetition_penalty=1.0, seed=7)
    warm, cold = engine(chatty_gguf), engine(chatty_gguf)
    system = "Answer college questions: tuition, fees, admission."
    a, b = (
        pack(PromptParts(system=system, question=q), tokenize=warm.tokenize, context_length=512, max_new_tokens=12)
        for q in ("how much is the tuition?", "where is the library?")
    )
    list(warm.generate(a.tokens, greedy, should_stop=lambda: False, stats=GenerationStats()))
    hit, miss = GenerationStats(), GenerationStats()
    warm_text = "".join(warm.generate(b.tokens, greedy, should_stop=lambda: False, stats=hit))
    cold_text = "".join(cold.generate(b.tokens, greedy, should_stop=lambda: False, stats=miss))
    assert hit.reused_tokens >= b.prefix_len and miss.reused_tokens == 0
    # Reusing the cache must not change what the model says.
    assert warm_text == cold_text
    assert hit.completion_tokens == miss.completion_tokens == 12


def test_random_q4_0_model_of_any_shape_loads_and_answers(engine: Callable[..., Engine], gguf_dir: Path) -> None:
    from tests.gguf_factory import write_random_q4_0_gguf

    path = gguf_dir / "random-q4.gguf"
    if not path.exists():
        write_random_q4_0_gguf(path, n_layer=2, n_embd=128, n_ff=256, n_head=4, n_vocab=32000, n_ctx=512)
    e = engine(path, context_length=256)
    stats = GenerationStats()
    ids = e.tokenize("what is the tuition?", True)
    list(e.generate(ids, SamplingParams(max_new_tokens=8), should_stop=lambda: False, stats=stats))
    assert stats.completion_tokens + (stats.stop_reason == "eos") >= 1
    assert stats.stop_reason in ("length", "eos")


def test_unknown_engine_is_a_clear_load_error(tiny_gguf: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"unknown engine 'vllm'; choose one of ctransformers, llama\.cpp"):
        load_engine("vllm", tiny_gguf, context_length=512, threads=1, batch_size=8)


def test_llama_cpp_not_installed_says_how_to_install_it(tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail as if absent
    with pytest.raises(ModelLoadError, match=r"pip install 'scopebot\[llamacpp\]'"):
        load_engine("llama.cpp", tiny_gguf, context_length=512, threads=1, batch_size=8)


@needs_llama_cpp
def test_both_engines_read_the_same_vocabulary_alike(tiny_gguf: Path) -> None:
    ct = load_engine("ctransformers", tiny_gguf, context_length=512, threads=1, batch_size=8)
    lc = load_engine("llama.cpp", tiny_gguf, context_length=512, threads=1, batch_size=8)
    for text in ("What is the tuition?", "apply for financial aid by the deadline", "Zürich 😀 中文", "  two  spaces"):
        assert ct.tokenize(text, True) == lc.tokenize(text, True), text
