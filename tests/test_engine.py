"""The ctransformers engine on a generated tiny LLaMA GGUF: safe tokenization, generation, stopping, caching."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.llm.engine import CTransformersEngine, GenerationStats, ModelLoadError, SamplingParams, _split_utf8
from bot.llm.prompt import Passage, PromptParts, pack


def engine(path: Path, *, context_length: int = 512) -> CTransformersEngine:
    return CTransformersEngine(path, context_length=context_length, threads=1, batch_size=8)


def run(e: CTransformersEngine, text: str, params: SamplingParams, **kw: object) -> tuple[str, GenerationStats]:
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
def test_tokenize_never_overflows_and_round_trips(tiny_gguf: Path, text: str) -> None:
    e = engine(tiny_gguf)
    ids = e.tokenize(text, True)
    assert ids[0] == 1  # BOS
    if not text.isascii():
        # The library's own LLM.tokenize would have allocated len(text) + 1 slots for these.
        assert len(ids) > len(text) + 1
    assert e._llm.detokenize(ids).strip() == text.strip()


def test_tokenize_text_with_nul_and_lone_surrogates(tiny_gguf: Path) -> None:
    e = engine(tiny_gguf)
    ids = e.tokenize("tuition\x00 fee \ud800 ok", False)
    assert ids and 1 not in ids


def test_generation_stops_at_eos(eos_gguf: Path) -> None:
    e = engine(eos_gguf)
    text, stats = run(e, "What is the tuition?", SamplingParams(max_new_tokens=50))
    assert text == ""
    assert stats.stop_reason == "eos"
    assert stats.completion_tokens == 0


def test_generation_stops_at_the_token_limit(chatty_gguf: Path) -> None:
    e = engine(chatty_gguf)
    text, stats = run(e, "What is the tuition?", SamplingParams(max_new_tokens=17))
    assert stats.stop_reason == "length"
    assert stats.completion_tokens == 17
    assert text


def test_generation_stops_when_asked(chatty_gguf: Path) -> None:
    e = engine(chatty_gguf)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    _, stats = run(e, "hello", SamplingParams(max_new_tokens=100), should_stop=stop)
    assert stats.stop_reason == "cancelled"
    assert stats.completion_tokens == 5


def test_fixed_prefix_is_reused_between_questions(chatty_gguf: Path) -> None:
    e = engine(chatty_gguf)
    params = SamplingParams(max_new_tokens=4)
    parts = [PromptParts(system="You answer college questions only.", question=q) for q in ("tuition?", "deadline?")]
    packed = [pack(p, tokenize=e.tokenize, context_length=e.context_length, max_new_tokens=4) for p in parts]
    first, second = GenerationStats(), GenerationStats()
    list(e.generate(packed[0].tokens, params, should_stop=lambda: False, stats=first))
    list(e.generate(packed[1].tokens, params, should_stop=lambda: False, stats=second))
    assert first.reused_tokens == 0
    assert second.reused_tokens >= packed[1].prefix_len


def test_prompt_over_the_window_is_refused_not_degraded(tiny_gguf: Path) -> None:
    e = engine(tiny_gguf, context_length=128)
    ids = e.tokenize("college " * 200, True)
    with pytest.raises(ValueError, match="exceeds the context window"):
        list(e.generate(ids, SamplingParams(max_new_tokens=8), should_stop=lambda: False, stats=GenerationStats()))


def test_pack_truncates_long_questions_and_drops_passages_that_do_not_fit(tiny_gguf: Path) -> None:
    e = engine(tiny_gguf, context_length=256)
    passages = tuple(Passage(f"doc{i}.md", "tuition fees " * 40) for i in range(3))
    parts = PromptParts(system="Answer college questions.", question="why " * 100_000, passages=passages)
    packed = pack(parts, tokenize=e.tokenize, context_length=256, max_new_tokens=32)
    assert packed.question_truncated
    assert len(packed.tokens) <= 256 - 32
    assert packed.passages_used == ()
    # The prompt still ends with the closing [/INST] so the model answers rather than continues.
    assert packed.tokens[-len(e.tokenize(" [/INST]", False)) :] == e.tokenize(" [/INST]", False)


def test_pack_keeps_the_best_passages_that_fit(tiny_gguf: Path) -> None:
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


def test_pack_says_clearly_when_the_window_is_too_small(tiny_gguf: Path) -> None:
    e = engine(tiny_gguf, context_length=128)
    parts = PromptParts(system="rules " * 200, question="hi")
    with pytest.raises(ValueError, match="raise context_length"):
        pack(parts, tokenize=e.tokenize, context_length=128, max_new_tokens=32)


def test_not_a_gguf_file_is_a_clear_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        engine(bad)


def test_missing_file_is_a_clear_load_error(tmp_path: Path) -> None:
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
