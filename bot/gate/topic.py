"""The topic classifier: is a question about this scope? Calibrated, with a threshold an operator can move.

Each scope gets an index of *positives* (its description and the topics it lists, its examples, and the
lines of its knowledge files) and *negatives* (generic questions about anything else, minus those that look
like this scope, plus every other scope's positives). A question is scored by a logistic model over
scope-independent features (`FEATURES`): its five best similarities to the positives, to the generic
negatives and to other scopes, the margins between them, the share of its nearest texts that are positives,
how much of its rarer vocabulary the scope, another scope or only the service vocabulary uses, whether it is
asked of "you", and how close it is to generic service questions. The model was fitted on training scopes
that are not the ones it is evaluated on (bot/gate/training/), so it transfers to new scopes without
retraining.

`strictness` (0..1) shifts the decision threshold in logit space: 0.5 is the calibrated point, each 0.1
moves it by `STRICTNESS_LOGITS / 5` logits (0 answers more, 1 refuses more). A safety question (`asks_about_safety`:
a theft, an injury, a threat or a danger to report) needs `SAFETY_LOGITS` fewer; general advice not asked of the
organisation (`asks_for_general_advice`: the best product, doing it yourself, how a thing works) `ADVICE_LOGITS` more.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from bot.config import ScopeConfig
from bot.gate.embed import DIM, Vectors
from bot.gate.normalize import clean_text
from bot.gate.tasks import SERVICE_WORDS
from bot.knowledge import Chunk, terms

#: Generic negatives at least this similar to one of a scope's positives are dropped for that scope.
NEGATIVE_FILTER = 0.75
#: Logits the threshold moves between strictness 0.5 and 0 or 1.
STRICTNESS_LOGITS = 2.0
#: Logits a safety question's threshold is below the scope's (at strictness 0.5: P ≥ 0.50 instead of 0.73).
SAFETY_LOGITS = 1.0
#: Someone asking what to do about a theft, an injury, a threat or a danger, or whom to report it to ("someone took
#: our cooler from our campsite overnight, who do we report theft to?"). The scope's files rarely cover incidents, so
#: the classifier underrates these questions, and refusing a victim costs more than another scope's safety question
#: answered ("I have nothing on that"). The screens before the classifier still apply: this only moves its threshold.
_SAFETY = re.compile(
    r"\b(?:who|where|how|whom)\s+(?:do|should|can|could|would)\s+(?:i|we)\s+(?:report|tell|contact|call|talk\s+to|speak\s+to)\b"
    r"|\breport\s+(?:it|this|that|a|an|the|them|him|her|someone)\b|\blost\s+and\s+found\b|\bcall\s+(?:the\s+)?(?:police|security|911)\b"
    r"|\b(?:stolen|stole|broke\s+into|broken\s+into|harassed|threatened|threatening|vandali[sz]ed|scammed|unsafe|evacuat\w*|"
    r"injured|injury|injuries|first\s+aid)\b"
    r"|\b(?:someone|somebody|a\s+man|a\s+woman|a\s+guy|he|she|they)\s+(?:took|stole|hit|grabbed|followed|yelled|threatened|"
    r"attacked|harassed)\b"
    r"|\b(?:is|was|are)\s+(?:it|this|that|they)\s+(?:safe|dangerous|toxic|poisonous|a\s+scam|legit)\b"
    r"|\bmade\s+(?:me|us|him|her|them|my\s+\w+|our\s+\w+)\s+sick\b"
)


def asks_about_safety(lowered: str) -> bool:
    """Whether a lower-cased question asks about a theft, an injury, a threat or a danger (see `_SAFETY`)."""
    return _SAFETY.search(lowered) is not None


#: Logits a question in the form of general advice needs more: as if the scope's strictness were 0.5 higher.
ADVICE_LOGITS = STRICTNESS_LOGITS
#: How many of the nearest positives, generic negatives and other scopes' texts the classifier looks at.
TOP_K = 5
_WORD = re.compile(r"\w+")
FEATURES = (
    *(f"pos_{i}" for i in range(1, TOP_K + 1)),
    *(f"generic_{i}" for i in range(1, TOP_K + 1)),
    *(f"other_{i}" for i in range(1, TOP_K + 1)),
    "pos_top3",
    "lex_in",
    "lex_other",
    "lex_service",
    "margin_generic",
    "margin_other",
    "knn_pos",
    "you",
    "you_x_generic",
    "lex_x_pos",
    "service_max",
    "you_x_service",
)
#: A question asked of "you": service questions ("can I come in today?") count for the scope they are asked in.
_SECOND_PERSON = re.compile(r"\b(you|your|yours|yourselves|u|ur|y'?all|ya)\b", re.I)

_INTRO = re.compile(r"^(answers|handles|helps with|covers)\s+(\w+\s+)?questions\s+(for [^:]*?\s)?(about|on)\s+", re.I)


#: Words this long or longer also match the scope's words one typo away.
FUZZY_MIN_LENGTH = 5


def _deletions(word: str) -> set[str]:
    """`word` with one letter left out, each way: two words share one iff they are one edit apart (mostly)."""
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _top(sims: np.ndarray, k: int) -> np.ndarray:
    """Each row's `k` largest values, largest first (padded with zeros when a row has fewer)."""
    out = np.zeros((sims.shape[0], k), dtype=np.float64)
    if sims.shape[1]:
        top = np.sort(sims, axis=1)[:, ::-1][:, :k]
        out[:, : top.shape[1]] = top
    return out


def description_topics(description: str) -> list[str]:
    """The topics a description lists after its colon, each tied to the description's subject."""
    subject, sep, rest = description.partition(":")
    if not sep:
        return []
    subject = _INTRO.sub("", subject).strip()
    items = [i.strip(" .") for i in re.split(r",|;|\band\b", rest)]
    return [f"{i} at {subject}" for i in items if len(i) > 2]


def positive_texts(scope: ScopeConfig, chunks: Sequence[Chunk]) -> list[str]:
    """Everything that says what the scope is about, as short texts (de-duplicated, in order)."""
    texts = [scope.description, *scope.examples, *description_topics(scope.description)]
    if scope.aliases:
        texts.append(f"Also called {', '.join(scope.aliases)}")
    for chunk in chunks:
        lines = chunk.text.splitlines()
        head = lines[0].lstrip("# ").strip() if lines else ""
        for raw in lines[1:] or lines:
            line = raw.strip().lstrip("-*• ").strip()
            if len(line.split()) < 3:
                continue
            texts.append(f"{head}: {line}" if head else line)
            label, colon, body = line.partition(":")
            # Long "Services: a $75, b $220, …" lines: each item also stands alone.
            if colon and len(body) > 60:
                for piece in re.split(r"[;,]|\. ", body):
                    frag = piece.strip(" .")
                    if len(frag.split()) >= 2:
                        texts.append(f"{head} {label}: {frag}")
    return list(dict.fromkeys(t for t in texts if t.strip()))


def example_key(text: str, *, cleaned: bool = False) -> str:
    """How an example is matched: its words, in order, whatever the case, spacing and punctuation
    (`cleaned`: `text` already went through `clean_text`)."""
    return " ".join(_WORD.findall((text if cleaned else clean_text(text)).lower()))


def idf_from(documents: Sequence[str]) -> Callable[[str], float]:
    """Inverse document frequency of a word among `documents` (generic questions: common words weigh little)."""
    df = Counter(t for d in documents for t in set(terms(clean_text(d))))
    n = len(documents)
    return lambda w: math.log((n + 1) / (df.get(w, 0) + 1))


@dataclass
class ScopeIndex:
    """One scope's positives and negatives, embedded, and its vocabulary."""

    name: str
    positives: list[str]
    pos_vecs: Vectors
    generic_vecs: Vectors
    other_vecs: Vectors
    vocabulary: frozenset[str]
    other_vocabulary: frozenset[str]
    idf: Callable[[str], float] = field(repr=False)
    service_vecs: Vectors = field(default_factory=lambda: np.zeros((0, DIM), np.float32), repr=False)
    #: One-edit spellings of the scope's longer words ("temperment" for "temperament"): chat is typed fast.
    near_spellings: frozenset[str] = field(default=frozenset(), repr=False)
    #: The scope's example questions (`example_key`): an operator said these are answered.
    examples: frozenset[str] = field(default=frozenset(), repr=False)

    def uses(self, word: str) -> bool:
        """Whether the scope's texts use `word`, or a word one typo away from it (words of 5+ letters)."""
        if word in self.vocabulary:
            return True
        return len(word) >= FUZZY_MIN_LENGTH and not self.near_spellings.isdisjoint(_deletions(word) | {word})

    def is_example(self, clean: str) -> bool:
        """Whether a cleaned question (`clean_text`) is one of the scope's example questions (`example_key`)."""
        return bool(self.examples) and example_key(clean, cleaned=True) in self.examples

    def features(self, vecs: Vectors, texts: Sequence[str]) -> np.ndarray:
        """The classifier's feature rows (`FEATURES`) for questions (`vecs` embed the clean `texts`)."""
        n = len(texts)
        sims = [vecs @ m.T for m in (self.pos_vecs, self.generic_vecs, self.other_vecs)]
        sp, sg, so = (_top(s, TOP_K) for s in sims)
        labels = np.concatenate([np.ones(sims[0].shape[1]), np.zeros(sims[1].shape[1] + sims[2].shape[1])])
        joined = np.concatenate(sims, axis=1)
        k = min(TOP_K, joined.shape[1])
        knn = labels[np.argsort(-joined, axis=1)[:, :k]].mean(axis=1) if k else np.zeros(n)
        service = (vecs @ self.service_vecs.T).max(axis=1) if len(self.service_vecs) else np.zeros(n)
        lex_in = np.zeros(n)
        lex_other = np.zeros(n)
        lex_service = np.zeros(n)
        you = np.zeros(n)
        for i, text in enumerate(texts):
            words = terms(text)
            total = sum(self.idf(w) for w in words) or 1.0
            lex_in[i] = sum(self.idf(w) for w in words if self.uses(w)) / total
            lex_other[i] = sum(self.idf(w) for w in words if w in self.other_vocabulary) / total
            lex_service[i] = sum(self.idf(w) for w in words if w in SERVICE_WORDS and w not in self.vocabulary) / total
            you[i] = 1.0 if _SECOND_PERSON.search(text) else 0.0
        columns = [
            *sp.T, *sg.T, *so.T,
            sp[:, :3].mean(axis=1), lex_in, lex_other, lex_service, sp[:, 0] - sg[:, 0], sp[:, 0] - so[:, 0], knn,
            you, you * sg[:, 0], lex_in * sp[:, 0], service, you * service,
        ]  # fmt: skip
        return np.stack(columns, axis=1)

    def nearest(self, vec: Vectors) -> tuple[str, float]:
        """The positive closest to one question vector, and its cosine similarity."""
        sims = self.pos_vecs @ vec
        i = int(sims.argmax())
        return self.positives[i], float(sims[i])


def build_indexes(
    *,
    scopes: Sequence[ScopeConfig],
    chunks: Mapping[str, Sequence[Chunk]],
    generic: Sequence[str],
    generic_vecs: Vectors,
    encode: Callable[[Sequence[str]], Vectors],
    service_vecs: Vectors | None = None,
) -> dict[str, ScopeIndex]:
    """A `ScopeIndex` per scope; every scope's positives are the others' negatives."""
    positives = {s.name: positive_texts(s, chunks.get(s.name, ())) for s in scopes}
    examples = {s.name: frozenset(k for k in map(example_key, s.examples) if k) for s in scopes}
    vecs = {name: encode([clean_text(t) for t in texts]) for name, texts in positives.items()}
    vocab = {name: frozenset(t for text in texts for t in terms(clean_text(text))) for name, texts in positives.items()}
    idf = idf_from(generic)
    out: dict[str, ScopeIndex] = {}
    for name, pos in vecs.items():
        keep = (generic_vecs @ pos.T).max(axis=1) < NEGATIVE_FILTER if len(generic_vecs) else np.zeros(0, bool)
        others = [v for k, v in vecs.items() if k != name]
        other_vocab = frozenset().union(*[v for k, v in vocab.items() if k != name]) - vocab[name]
        out[name] = ScopeIndex(
            name=name,
            positives=positives[name],
            pos_vecs=pos,
            generic_vecs=generic_vecs[keep] if len(generic_vecs) else generic_vecs,
            other_vecs=np.concatenate(others) if others else np.zeros((0, DIM), np.float32),
            vocabulary=vocab[name],
            near_spellings=frozenset(d for w in vocab[name] if len(w) >= FUZZY_MIN_LENGTH for d in _deletions(w) | {w}),
            other_vocabulary=other_vocab,
            idf=idf,
            service_vecs=service_vecs if service_vecs is not None else np.zeros((0, DIM), np.float32),
            examples=examples[name],
        )
    return out


@dataclass(frozen=True)
class TopicModel:
    """Logistic weights over `FEATURES` and the calibrated threshold (probability at strictness 0.5)."""

    coef: np.ndarray
    intercept: float
    threshold: float

    def probability(self, features: np.ndarray) -> np.ndarray:
        """P(in scope) per feature row."""
        z = features @ self.coef + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-z)))

    def threshold_for(self, strictness: float, *, safety: bool = False, advice: bool = False) -> float:
        """The probability a question needs at this strictness (`safety`: a safety question, `SAFETY_LOGITS` less;
        `advice`: general advice, `ADVICE_LOGITS` more)."""
        t = min(max(self.threshold, 1e-6), 1 - 1e-6)
        logit = math.log(t / (1 - t)) + (strictness - 0.5) * 2 * STRICTNESS_LOGITS - (SAFETY_LOGITS if safety else 0.0)
        logit += ADVICE_LOGITS if advice else 0.0
        return 1.0 / (1.0 + math.exp(-logit))
