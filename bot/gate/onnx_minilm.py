"""all-MiniLM-L6-v2 on ONNX Runtime: the packaged PyTorch weights, exported once, then run without torch.

The export (PyTorch's ONNX exporter, mean pooling and L2 normalization inside the graph) happens the first
time a given model folder is used and is cached under `SCOPEBOT_CACHE_DIR` (default `~/.cache/scopebot`),
keyed by a hash of the weights; every later start loads the cached file in well under a second. Vectors
match sentence-transformers' `encode(..., normalize_embeddings=True)` to float precision, so classifiers
trained on either agree. On this project's 2-core machine ONNX Runtime is about twice as fast per message
as PyTorch eager (bench/RESULTS.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
#: Bump when the exported graph changes, so old cached files are not reused.
EXPORT_VERSION = "1"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def cache_dir() -> Path:
    """Where exported models are kept (`SCOPEBOT_CACHE_DIR`, else `$XDG_CACHE_HOME/scopebot`, else ~/.cache)."""
    explicit = os.environ.get("SCOPEBOT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scopebot"


def _weights_digest(model_dir: Path) -> str:
    h = hashlib.sha256(EXPORT_VERSION.encode())
    for name in ("model.safetensors", "pytorch_model.bin", "config.json", "tokenizer.json"):
        f = model_dir / name
        if f.is_file():
            h.update(name.encode())
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:16]


def exported_model(model_dir: Path) -> Path:
    """The ONNX file for `model_dir`, exporting it (once, atomically) if the cache does not have it."""
    target = cache_dir() / "embeddings" / f"minilm-{_weights_digest(model_dir)}.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting the embedding model to ONNX once (cached at %s)", target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.part")
    os.close(fd)
    try:
        _export(model_dir, Path(tmp))
        # Another process may have finished first; both files are equivalent, the rename is atomic.
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _export(model_dir: Path, out: Path) -> None:
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    # Eager attention traces the padding mask as a real input (the fused kernels bake the traced shape in).
    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager", local_files_only=True).eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return mean_pooled(self.bert, input_ids, attention_mask, token_type_ids)

    export_graph(Pooled(), out, "embedding")


def mean_pooled(bert: Any, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
    """sentence-transformers' embedding in torch: the unit-length mean of the token vectors the mask keeps."""
    import torch

    hidden = bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, p=2, dim=1)


def export_graph(module: Any, out: Path, output: str) -> None:
    """Trace `module` (token ids, attention mask, token types to one `output`) into an ONNX graph at `out`, with any
    batch size and length."""
    import warnings

    import torch

    example = (torch.tensor([[101, 7592, 102, 0]]), torch.tensor([[1, 1, 1, 0]]), torch.zeros((1, 4), dtype=torch.long))
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS} | {output: {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow in transformers
        torch.onnx.export(
            module,
            example,
            str(out),
            input_names=list(INPUTS),
            output_names=[output],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


class OnnxMiniLM:
    """Tokenizer (Hugging Face `tokenizers`) and the exported graph on ONNX Runtime; not thread-safe.

    `threads`: ONNX Runtime's threads for one forward pass, 0 for every core. `graph`: another graph over the same
    tokenizer's inputs instead of the exported embedding model (the intent screen's fine-tuned copy,
    bot/gate/harm.py), whose `output` is read: one row of `width` numbers per text, or one number per text when
    `width` is 0."""

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int,
        max_tokens: int,
        graph: Path | None = None,
        output: str = "embedding",
        width: int = 384,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = graph or exported_model(model_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads or os.cpu_count() or 1)  # 0: every core
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.no_padding()
        self.threads = options.intra_op_num_threads
        self._output = output
        self._width = width

    def encode(self, texts: list[str], *, batch_size: int) -> Vectors:
        """Unit vectors for `texts` (the graph's output rows); batches are made of similar lengths so little time
        goes on padding."""
        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(texts), self._width) if self._width else len(texts), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            out[rows] = self._session.run([self._output], feeds)[0]
        return out
