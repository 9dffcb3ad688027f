"""Knowledge retrieval: BM25 alone, hybrid with the gate's embeddings, re-indexed when files change."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.gate.embed import Embedder
from bot.knowledge import KnowledgeIndex


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
