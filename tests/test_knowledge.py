"""Knowledge files: chunking along lines and headings, retrieval, re-indexing when files change."""

from __future__ import annotations

import os
from pathlib import Path

from bot.knowledge import KnowledgeIndex, chunk_text, iter_files, terms
from tests.conftest import COLLEGE_KNOWLEDGE


def test_terms_fold_case_plurals_and_stopwords() -> None:
    assert terms("What are the Fees for Libraries?") == ["fee", "library"]


def test_chunks_keep_their_heading_and_never_split_mid_line() -> None:
    doc = "# Hours\n" + "\n".join(f"- Branch {i} opens at {i}am and closes at {i + 8}pm." for i in range(40))
    chunks = chunk_text(doc, source="hours.md", size=300)
    assert len(chunks) > 3
    for c in chunks:
        assert c.text.startswith("Hours\n")
        assert all(line.startswith(("Hours", "- Branch")) for line in c.text.splitlines())
        assert len(c.text) <= 300 + len("Hours\n") + 60


def test_very_long_lines_are_cut_at_words() -> None:
    chunks = chunk_text("word " * 1000, source="x.md", size=200)
    assert all(len(c.text) <= 200 for c in chunks)
    assert "".join(c.text.replace(" ", "") for c in chunks) == "word" * 1000


def test_search_finds_the_passage_with_the_answer() -> None:
    index = KnowledgeIndex([COLLEGE_KNOWLEDGE])
    best = index.search("When is the regular decision deadline?", k=2)
    assert best[0].source == "admissions.md"
    assert "January 15" in best[0].text
    assert index.search("xylophone quantum", k=3) == []


def test_folders_are_searched_for_text_files_only(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("alpha", encoding="utf-8")
    (tmp_path / "sub" / "b.txt").write_text("beta", encoding="utf-8")
    (tmp_path / "c.png").write_bytes(b"\x89PNG")
    assert [p.name for p in iter_files([tmp_path])] == ["a.md", "b.txt"]


def test_changed_files_are_reindexed(tmp_path: Path) -> None:
    f = tmp_path / "faq.md"
    f.write_text("# FAQ\n- Parking costs $5 per day.\n", encoding="utf-8")
    index = KnowledgeIndex([tmp_path], root=tmp_path)
    assert index.search("parking")[0].source == "faq.md"
    assert not index.refresh()
    f.write_text("# FAQ\n- Shuttle buses run every 10 minutes.\n", encoding="utf-8")
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1_000_000_000))
    assert index.refresh()
    assert index.search("parking") == []
    assert "10 minutes" in index.search("shuttle bus")[0].text
