"""Writes LLaMA-architecture GGUF files with random weights, for tests and benchmarks.

The vocabulary is SentencePiece-style: `<unk>`, `<s>`, `</s>`, the 256 byte-fallback tokens `<0x00>`…,
`▁`, single characters, and word pieces with every prefix (so the SPM merger can build whole words).
Random weights give gibberish; `eos_bias` steers whether the model ends answers at once (> 0) or never (< 0).
"""

from __future__ import annotations

import string
from pathlib import Path

import gguf
import numpy as np

WORDS = [
    "the",
    "a",
    "an",
    "is",
    "are",
    "was",
    "be",
    "to",
    "of",
    "and",
    "in",
    "on",
    "for",
    "with",
    "at",
    "by",
    "from",
    "what",
    "when",
    "where",
    "how",
    "why",
    "who",
    "which",
    "can",
    "do",
    "does",
    "i",
    "you",
    "we",
    "they",
    "it",
    "my",
    "your",
    "our",
    "this",
    "that",
    "college",
    "tuition",
    "cost",
    "fee",
    "fees",
    "admission",
    "apply",
    "application",
    "deadline",
    "library",
    "book",
    "open",
    "hours",
    "card",
    "study",
    "room",
    "bike",
    "repair",
    "tune",
    "up",
    "price",
    "rent",
    "question",
    "answer",
    "yes",
    "no",
    "please",
    "thank",
    "hello",
    "help",
    "student",
    "campus",
    "essay",
    "program",
    "course",
    "class",
    "financial",
    "aid",
    "scholarship",
    "degree",
    "major",
    "minor",
    "tour",
    "visit",
]

BOS, EOS, UNK = 1, 2, 0


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types of the test vocabulary."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [2, 3, 3]  # unknown, control, control
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(6)  # byte
    seen = set(tokens)

    def add(piece: str) -> None:
        if piece not in seen:
            seen.add(piece)
            tokens.append(piece)
            types.append(1)  # normal

    add("▁")
    for c in string.ascii_letters + string.digits + string.punctuation:
        add(c)
        add("▁" + c)
    for w in WORDS:
        piece = "▁" + w
        for i in range(2, len(piece) + 1):
            add(piece[:i])
    # Longer pieces score higher, so the tokenizer merges towards whole words.
    scores = [(-1000.0 + len(t)) if kind == 1 else 0.0 for t, kind in zip(tokens, types, strict=True)]
    return tokens, scores, types


def write_llama_gguf(
    path: Path,
    *,
    n_layer: int = 2,
    n_embd: int = 64,
    n_ff: int = 128,
    n_head: int = 4,
    n_ctx: int = 2048,
    n_vocab: int | None = None,
    eos_bias: float = 0.0,
    quantize: bool = False,
    seed: int = 0,
) -> Path:
    """Write a LLaMA GGUF to `path`. `n_vocab` pads the vocabulary (e.g. to LLaMA-2's 32,000)."""
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocabulary()
    if n_vocab is not None:
        for i in range(len(tokens), n_vocab):
            tokens.append(f"<extra_{i}>")
            scores.append(-10000.0)
            types.append(4)  # user-defined, never produced by the tokenizer from text
    vocab = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("scopebot test llama")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0 if quantize else gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(BOS)
    w.add_eos_token_id(EOS)
    w.add_unk_token_id(UNK)

    def matrix(rows: int, cols: int, scale: float) -> np.ndarray:
        m = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(scale)
        if quantize:
            return gguf.quants.quantize(m, gguf.GGMLQuantizationType.Q4_0)
        return m

    def add(name: str, data: np.ndarray, qtype: gguf.GGMLQuantizationType | None = None) -> None:
        if quantize and qtype is not None:
            w.add_tensor(name, data, raw_dtype=qtype)
        else:
            w.add_tensor(name, data)

    q4 = gguf.GGMLQuantizationType.Q4_0
    # Dimension 0 of every embedding is a constant 1, so the final hidden state always leans one way,
    # and the EOS row of the output matrix reads it: a positive bias ends answers, a negative one never.
    emb = rng.standard_normal((vocab, n_embd), dtype=np.float32) * np.float32(0.02)
    emb[:, 0] = 1.0
    add("token_embd.weight", gguf.quants.quantize(emb, q4) if quantize else emb, q4)
    add("output_norm.weight", np.ones(n_embd, np.float32))
    out = rng.standard_normal((vocab, n_embd), dtype=np.float32) * np.float32(0.5)
    out[:, 0] = 0.0
    out[EOS, 0] = eos_bias
    add("output.weight", gguf.quants.quantize(out, q4) if quantize else out, q4)
    for i in range(n_layer):
        add(f"blk.{i}.attn_norm.weight", np.ones(n_embd, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            add(f"blk.{i}.{name}.weight", matrix(n_embd, n_embd, 0.02), q4)
        add(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, np.float32))
        add(f"blk.{i}.ffn_gate.weight", matrix(n_ff, n_embd, 0.02), q4)
        add(f"blk.{i}.ffn_up.weight", matrix(n_ff, n_embd, 0.02), q4)
        add(f"blk.{i}.ffn_down.weight", matrix(n_embd, n_ff, 0.02), q4)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


#: Bytes of one Q4_0 block: an fp16 scale and 32 four-bit weights.
Q4_0_BLOCK_BYTES = 18


def random_q4_0(rng: np.random.Generator, rows: int, cols: int, *, std: float = 0.02) -> np.ndarray:
    """Raw Q4_0 blocks for a `rows` x `cols` matrix: random nibbles with finite fp16 scales near `std`."""
    if cols % 32:
        raise ValueError(f"Q4_0 needs a multiple of 32 columns, got {cols}")
    blocks = rows * cols // 32
    raw = np.frombuffer(rng.bytes(blocks * Q4_0_BLOCK_BYTES), dtype=np.uint8).reshape(blocks, Q4_0_BLOCK_BYTES).copy()
    # Uniform nibbles 0..15 minus 8 have a standard deviation of about 4.6; scale them to `std`.
    scales = (rng.uniform(0.5, 1.5, blocks) * (std / 4.6)).astype(np.float16)
    raw[:, :2] = scales.view(np.uint8).reshape(blocks, 2)
    return raw.reshape(rows, cols // 32 * Q4_0_BLOCK_BYTES)


def llama_tensor_shapes(
    *, n_layer: int, n_embd: int, n_ff: int, n_vocab: int
) -> list[tuple[str, tuple[int, int] | int]]:
    """Names and (rows, cols) of a LLaMA's weights in file order; an int is a 1-D norm vector."""
    shapes: list[tuple[str, tuple[int, int] | int]] = [("token_embd.weight", (n_vocab, n_embd))]
    for i in range(n_layer):
        shapes.append((f"blk.{i}.attn_norm.weight", n_embd))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            shapes.append((f"blk.{i}.{name}.weight", (n_embd, n_embd)))
        shapes.append((f"blk.{i}.ffn_norm.weight", n_embd))
        shapes.append((f"blk.{i}.ffn_gate.weight", (n_ff, n_embd)))
        shapes.append((f"blk.{i}.ffn_up.weight", (n_ff, n_embd)))
        shapes.append((f"blk.{i}.ffn_down.weight", (n_embd, n_ff)))
    shapes.append(("output_norm.weight", n_embd))
    shapes.append(("output.weight", (n_vocab, n_embd)))
    return shapes


def write_random_q4_0_gguf(
    path: Path,
    *,
    n_layer: int = 32,
    n_embd: int = 4096,
    n_ff: int = 11008,
    n_head: int = 32,
    n_vocab: int = 32000,
    n_ctx: int = 4096,
    seed: int = 0,
) -> Path:
    """Stream a Q4_0 LLaMA of any shape (LLaMA-2-7B's by default) straight from random bytes.

    Quantizing billions of random floats takes many minutes; random Q4_0 blocks with sane scales are as
    fast to run and take seconds to write. Written under a temporary name, so a partial file never counts.
    """
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocabulary()
    if n_vocab < len(tokens):
        raise ValueError(f"n_vocab must be at least {len(tokens)}")
    for i in range(len(tokens), n_vocab):
        tokens.append(f"<extra_{i}>")
        scores.append(-10000.0)
        types.append(4)
    tmp = path.with_name(path.name + ".part")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name("scopebot random llama")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(BOS)
    w.add_eos_token_id(EOS)
    w.add_unk_token_id(UNK)
    q4 = gguf.GGMLQuantizationType.Q4_0
    shapes = llama_tensor_shapes(n_layer=n_layer, n_embd=n_embd, n_ff=n_ff, n_vocab=n_vocab)
    for name, shape in shapes:
        if isinstance(shape, int):
            w.add_tensor_info(name, (shape,), np.dtype(np.float32), shape * 4)
        else:
            rows, cols = shape
            nbytes = rows * cols // 32 * Q4_0_BLOCK_BYTES
            w.add_tensor_info(name, (rows, nbytes // rows), np.dtype(np.uint8), nbytes, raw_dtype=q4)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for _name, shape in shapes:
        if isinstance(shape, int):
            w.write_tensor_data(np.ones(shape, np.float32))
        else:
            w.write_tensor_data(random_q4_0(rng, *shape))
    w.close()
    tmp.replace(path)
    return path
