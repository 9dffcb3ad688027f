"""A scope's knowledge files: loaded, chunked into passages, indexed once, re-indexed when files change."""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bot.config import KNOWLEDGE_SUFFIXES
from bot.gate.normalize import clean_text
from bot.llm.prompt import Passage

log = logging.getLogger(__name__)

#: Target passage size in characters; bullets and paragraphs are packed up to it, never split mid-line.
CHUNK_CHARS = 600

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "please",
        "so",
        "tell",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "us",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "about",
        "any",
        "some",
        "just",
        "get",
        "got",
        "much",
        "many",
    ]
)

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def terms(text: str) -> list[str]:
    """Lower-cased content words with a light plural fold, for lexical matching."""
    out = []
    for word in _WORD.findall(text.lower()):
        w = word.replace("'", "")
        if w in STOPWORDS or len(w) < 2:
            continue
        if len(w) > 4 and w.endswith("ies"):
            out.append(w[:-3] + "y")
        elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            out.append(w[:-1])
        else:
            out.append(w)
    return out


@dataclass(frozen=True, slots=True)
class Chunk:
    """One passage of a knowledge file."""

    source: str
    text: str


def iter_files(paths: Iterable[Path]) -> list[Path]:
    """Every knowledge file under `paths` (files as given, folders searched for text files), sorted."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(f for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in KNOWLEDGE_SUFFIXES)
        elif p.is_file():
            found.append(p)
    return found


def chunk_text(text: str, *, source: str, size: int = CHUNK_CHARS) -> list[Chunk]:
    """Split a document into passages of about `size` characters along line and paragraph breaks.

    Each passage starts with the nearest heading above it, so a passage read alone keeps its topic.
    """
    chunks: list[Chunk] = []
    heading = ""
    buf: list[str] = []

    def flush() -> None:
        body = "\n".join(buf).strip()
        if body:
            chunks.append(
                Chunk(source, f"{heading}\n{body}".strip() if heading and not body.startswith(heading) else body)
            )
        buf.clear()

    for raw in text.splitlines():
        line = raw.rstrip()
        if line.lstrip().startswith("#"):
            flush()
            heading = line.lstrip("# ").strip()
            continue
        if not line.strip():
            if sum(len(b) for b in buf) >= size // 2:
                flush()
            continue
        while len(line) > size:
            cut = line.rfind(" ", 0, size)
            cut = cut if cut > size // 2 else size
            buf.append(line[:cut])
            flush()
            line = line[cut:].lstrip()
        if sum(len(b) + 1 for b in buf) + len(line) > size:
            flush()
        buf.append(line)
    flush()
    return chunks


#: Encodes texts into unit vectors (the scope gate's embedder), for hybrid retrieval.
Encoder = Callable[[Sequence[str]], npt.NDArray[np.float32]]
#: Weight of the embedding similarity against normalized BM25 in hybrid search.
SEMANTIC_WEIGHT = 0.6
#: Cosine similarity a passage without shared words needs to be offered at all.
MIN_SIMILARITY = 0.3
#: `KnowledgeIndex.restates` judges texts of at least this many content words.
RESTATE_MIN_WORDS = 3


class KnowledgeIndex:
    """BM25 over one scope's passages, hybrid with embeddings once an encoder is attached; rebuilt when
    any file's size or mtime changes (`refresh`)."""

    def __init__(self, paths: Sequence[Path], *, root: Path | None = None) -> None:
        self._paths = list(paths)
        self._root = root
        self._stamp: tuple[tuple[str, int, int], ...] = ()
        self.chunks: list[Chunk] = []
        self._tf: list[Counter[str]] = []
        self._df: Counter[str] = Counter()
        self._lengths: list[int] = []
        self._encode: Encoder | None = None
        self._vecs: npt.NDArray[np.float32] | None = None
        self._line_vecs: dict[str, npt.NDArray[np.float32]] = {}
        self.refresh()

    def attach_encoder(self, encode: Encoder) -> None:
        """Rank by meaning as well as by words from now on (embeds the passages; blocking)."""
        self._encode = encode
        self._vecs = encode([c.text for c in self.chunks]) if self.chunks else None
        self._line_vecs = {}

    def _current_stamp(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for f in iter_files(self._paths):
            try:
                st = f.stat()
            except OSError:
                continue
            out.append((str(f), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def refresh(self) -> bool:
        """Re-read the files if they changed since the last index; True when it re-indexed."""
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return False
        chunks: list[Chunk] = []
        for name, _, _ in stamp:
            f = Path(name)
            try:
                text = f.read_text(encoding="utf-8", errors="replace")
            except OSError as e:
                log.warning("cannot read knowledge file %s: %s", f, e)
                continue
            chunks.extend(chunk_text(text, source=self._source_name(f)))
        self.chunks = chunks
        self._tf = [Counter(terms(c.text)) for c in chunks]
        self._lengths = [sum(tf.values()) for tf in self._tf]
        self._df = Counter(t for tf in self._tf for t in tf)
        self._vecs = self._encode([c.text for c in chunks]) if self._encode is not None and chunks else None
        self._line_vecs = {}
        self._stamp = stamp
        log.info("indexed %d passages from %d knowledge files", len(chunks), len(stamp))
        return True

    def _source_name(self, f: Path) -> str:
        root = self._root
        if root is not None:
            try:
                return str(f.resolve().relative_to(root.resolve()))
            except ValueError:
                pass
        return f.name

    def search(self, query: str, *, k: int = 3, min_score: float = 0.0) -> list[Passage]:
        """The `k` best passages for `query`, best first (BM25, blended with embeddings when attached)."""
        if self._encode is not None and self._vecs is not None:
            return self._hybrid(query, k=k)
        return self._bm25(query, k=k, min_score=min_score)

    def _hybrid(self, query: str, *, k: int) -> list[Passage]:
        """Normalized BM25 and cosine similarity, blended; a passage needs some of either to count."""
        assert self._encode is not None and self._vecs is not None
        lexical = self._bm25_scores(query)
        top = max(lexical.values(), default=0.0) or 1.0
        sims = self._vecs @ self._encode([clean_text(query)])[0]
        scored = []
        for i, sim in enumerate(sims):
            if i in lexical or sim >= MIN_SIMILARITY:
                score = SEMANTIC_WEIGHT * float(sim) + (1 - SEMANTIC_WEIGHT) * lexical.get(i, 0.0) / top
                scored.append((score, i))
        scored.sort(key=lambda x: (-x[0], x[1]))
        return [Passage(self.chunks[i].source, self.chunks[i].text, s) for s, i in scored[:k]]

    def _bm25(self, query: str, *, k: int, min_score: float = 0.0) -> list[Passage]:
        scored = sorted(
            ((s, i) for i, s in self._bm25_scores(query).items() if s > min_score), key=lambda x: (-x[0], x[1])
        )
        return [Passage(self.chunks[i].source, self.chunks[i].text, s) for s, i in scored[:k]]

    def _bm25_scores(self, query: str) -> dict[int, float]:
        """BM25 score of every passage that shares a term with `query`."""
        q = set(terms(query))
        if not q or not self.chunks:
            return {}
        n = len(self.chunks)
        avg = sum(self._lengths) / n or 1.0
        out: dict[int, float] = {}
        for i, tf in enumerate(self._tf):
            s = 0.0
            for t in q:
                f = tf.get(t, 0)
                if not f:
                    continue
                idf = math.log(1 + (n - self._df[t] + 0.5) / (self._df[t] + 0.5))
                s += idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * self._lengths[i] / avg))
            if s > 0:
                out[i] = s
        return out

    def line_similarity(self, query: str, lines: Sequence[str]) -> npt.NDArray[np.float32] | None:
        """Cosine similarity of `query` to each of `lines` (lines of this index's passages), or None without an
        encoder. Line vectors are kept until the files change, so a question costs one embedding after the first."""
        if self._encode is None:
            return None
        cache = self._line_vecs  # `refresh` may swap in a new one meanwhile
        missing = list(dict.fromkeys(line for line in lines if line not in cache))
        if missing:
            cache.update(zip(missing, self._encode(missing), strict=True))
        query_vec = self._encode([clean_text(query)])[0]
        return np.array([float(cache[line] @ query_vec) for line in lines], dtype=np.float32)

    def vocabulary(self) -> set[str]:
        """Every term in the indexed passages."""
        return set(self._df)

    def restates(self, text: str) -> bool:
        """Whether `text` (three content words or more) takes nearly all its words from one passage: "Bring a
        photo ID and proof of address." restates the library's sign-up rules (at most one word in ten is new)."""
        words = set(terms(text))
        if len(words) < RESTATE_MIN_WORDS:
            return False
        allowed = len(words) // 10
        return any(len(words - tf.keys()) <= allowed for tf in self._tf)
