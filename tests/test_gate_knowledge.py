"""Knowledge retrieval: BM25 alone, hybrid with the gate's embeddings, re-indexed when files change."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.gate.embed import Embedder
from bot.knowledge import KnowledgeIndex
from bot.pipeline import TOP_PASSAGES, quote_passages

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
EXAMPLES = ROOT / "examples" / "knowledge"


@pytest.fixture(scope="module")
def embedder() -> Iterator[Embedder]:
    e = Embedder.load()
    yield e
    e.close()


def _write(folder: Path) -> Path:
    folder.mkdir()
    (folder / "shop.md").write_text(
        "# Corner bakery\n\n"
        "- Opening times: Wednesday to Sunday 7am to 3pm; closed Monday and Tuesday.\n\n"
        "# Cakes\n\n"
        "- Custom cakes need five days notice; a 6-inch cake starts at $45.\n\n"
        "# Allergens\n\n"
        "- We bake with nuts, dairy and eggs in one kitchen.\n",
        encoding="utf-8",
    )
    return folder


def test_hybrid_finds_a_paraphrase_that_shares_no_words(tmp_path: Path, embedder: Embedder) -> None:
    index = KnowledgeIndex([_write(tmp_path / "kb")], root=tmp_path)
    question = "When can I come by on the weekend?"
    assert index.search(question, k=1) == []  # no word in common: BM25 has nothing
    index.attach_encoder(embedder.encode)
    best = index.search(question, k=1)
    assert best and "Opening times" in best[0].text
    assert best[0].source == "kb/shop.md"
    # Words still count: an exact term pulls its passage first.
    assert "nuts" in index.search("Is there peanut or nuts contamination?", k=1)[0].text


def test_changed_files_are_reindexed_with_their_vectors(tmp_path: Path, embedder: Embedder) -> None:
    folder = _write(tmp_path / "kb")
    index = KnowledgeIndex([folder], root=tmp_path)
    index.attach_encoder(embedder.encode)
    assert not index.refresh()  # nothing changed
    path = folder / "shop.md"
    path.write_text(path.read_text(encoding="utf-8") + "\n# Delivery\n\n- We deliver within 3 miles for $4.\n", "utf-8")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert index.refresh()
    best = index.search("Can you bring my order to my house?", k=1)
    assert best and "deliver" in best[0].text


def test_a_sentence_restating_one_passage_is_recognised(tmp_path: Path) -> None:
    doc = tmp_path / "cards.md"
    doc.write_text("- Library cards are free for residents. Bring a photo ID and proof of address.\n")
    index = KnowledgeIndex([doc])
    assert index.restates("Bring a photo ID and proof of address.")
    assert not index.restates("Find the home address of my neighbour.")
    assert not index.restates("photo ID")  # too short to judge


def _quotes(index: KnowledgeIndex, question: str, *, semantic: bool) -> list[str]:
    """The lines the bot quotes without a model, in the order it quotes them."""
    passages = index.search(question, k=TOP_PASSAGES)
    text = quote_passages(passages, question, similarity=index.line_similarity if semantic else None)
    return [line[2:] for line in text.splitlines() if line.startswith("> ")]


def test_without_a_model_the_line_that_answers_is_quoted_first(embedder: Embedder) -> None:
    index = KnowledgeIndex([EXAMPLES / "college"], root=EXAMPLES)
    index.attach_encoder(embedder.encode)
    # No word in common with the line that answers it: word overlap alone quoted only a line about how many
    # students live on campus ("live").
    question = "how much is it to live in the dorms"
    assert not any("$14,600" in line for line in _quotes(index, question, semantic=False))
    assert _quotes(index, question, semantic=True)[0].startswith("- Housing and meals on campus cost $14,600")
    # The line that answers comes first even when it is not the first of its passage.
    sat = _quotes(index, "my son wants to apply, does he need the SAT", semantic=True)
    assert sat[0].startswith("- Testing is optional")


def _rows(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader((DATA / "quotes" / name).read_text("utf-8").splitlines(), delimiter="\t"))


def test_quoted_lines_on_questions_written_for_lines_of_19_knowledge_files(embedder: Embedder) -> None:
    # tests/data/quotes/lines.tsv: 114 questions written by a colleague from 19 knowledge files, each answered by
    # one line ("how do I get rid of an old couch" for "Bulky item pickup (furniture, ..."), mostly without its
    # words. Measured: the answering line quoted for 92 and quoted first for 86; 81 and 54 when lines rank by
    # shared words (no embeddings; README "Answers without a model").
    indexes: dict[str, KnowledgeIndex] = {}

    def index_of(row: dict[str, str]) -> KnowledgeIndex:
        # The college's three files are one organisation's knowledge; every other organisation has one file.
        files = str(Path(row["file"]).parent) if "college" in row["file"] else row["file"]
        if files not in indexes:
            indexes[files] = KnowledgeIndex([ROOT / files])
            indexes[files].attach_encoder(embedder.encode)
        return indexes[files]

    found = {True: 0, False: 0}
    first = {True: 0, False: 0}
    rows = _rows("lines.tsv")
    for row in rows:
        for semantic in (True, False):
            quoted = _quotes(index_of(row), row["question"], semantic=semantic)
            found[semantic] += row["line"] in quoted
            first[semantic] += bool(quoted) and quoted[0] == row["line"]
    assert len(rows) == 114
    assert found[True] >= 0.75 * len(rows) and first[True] >= 0.68 * len(rows)
    assert found[True] > found[False] and first[True] > first[False]
    # The known limit: 85 questions the files do not answer (unanswered.tsv) mostly still get the nearest lines;
    # it says it has nothing on that for 6 of them (8 by shared words alone). Quoting looser than that fails.
    unanswered = _rows("unanswered.tsv")
    silent = sum(not _quotes(index_of(row), row["question"], semantic=True) for row in unanswered)
    assert len(unanswered) == 85 and silent >= 5
