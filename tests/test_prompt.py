"""The scope's fixed instructions to the model, and the answer quoted from sources when there is no model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bot.llm.prompt import Passage, system_prompt
from bot.pipeline import NO_PASSAGES_TEXT, quote_passages


def test_the_system_prompt_names_the_scope_and_its_other_names() -> None:
    text = system_prompt(
        bot_name="scopebot",
        scope_name="museum",
        description="Answers questions about the Harrow Valley Museum.",
        refusal="I can only answer questions about the museum.",
        aliases=["HVM", " the Harrow museum "],
    )
    assert "Answers questions about the Harrow Valley Museum." in text
    assert "People also call it: HVM, the Harrow museum." in text
    assert 'reply exactly: "I can only answer questions about the museum."' in text
    plain = system_prompt(
        bot_name="scopebot", scope_name="museum", description="Answers questions.", refusal="No.", aliases=[" "]
    )
    assert "also call it" not in plain
    # Told the bot's blocked reply, the model is asked to decline requests for help to harm with it.
    guarded = system_prompt(
        bot_name="scopebot", scope_name="museum", description="Answers questions.", refusal="No.", declined="Can't."
    )
    assert 'to break the law or its rules, reply exactly: "Can\'t."' in guarded
    assert "staying safe or reporting a problem" in guarded
    assert "reply exactly" in plain and "hurt" not in plain


def test_quoted_sources_skip_passages_that_match_only_by_their_heading() -> None:
    admissions = Passage(
        "admissions.md",
        "Admissions at Northgate College\n- Application deadlines: Early Action November 1.\n- The fee is $60.",
    )
    # Only the heading shares the question's words: there is nothing to quote.
    assert quote_passages([admissions], "when does the Northgate College bookstore close") == NO_PASSAGES_TEXT
    text = quote_passages([admissions, admissions], "when is the application deadline")
    assert text == "From my sources:\n> - Application deadlines: Early Action November 1.\n— admissions.md"


def test_quoted_lines_rank_by_similarity_and_weak_ones_are_left_out() -> None:
    costs = Passage(
        "costs.md", "Costs\n- Tuition is $42,300.\n- Housing and meals cost $14,600 a year.\n- Parking is $90."
    )
    campus = Passage("campus.md", "Campus\n- First-year students live on campus.\n- The library opens at 8am.")
    similar = {"Housing": 0.7, "Tuition": 0.6, "First-year": 0.55, "Parking": 0.2, "library": 0.1}

    def similarity(question: str, lines: Sequence[str]) -> np.ndarray:
        return np.array([next(v for k, v in similar.items() if k in line) for line in lines], dtype=np.float32)

    # The passage retrieval ranked first (a shared word, "live") comes second: the line that means the question
    # leads, the rest of its passage by similarity; "Parking" (0.2, no shared word) is not quoted.
    text = quote_passages([campus, costs], "how much is it to live in the dorms", similarity)
    assert text == (
        "From my sources:\n> - Housing and meals cost $14,600 a year.\n> - Tuition is $42,300.\n— costs.md\n\n"
        "> - First-year students live on campus.\n— campus.md"
    )
    # A line far less like the question than the best one is left out, and with it a passage.
    similar["First-year"] = 0.3
    assert "campus.md" not in quote_passages([campus, costs], "how much is it to live in the dorms", similarity)
    # A line that shares a word is quoted even when the model finds it unlike the question.
    similar.update({"Housing": -0.1, "Tuition": -0.2, "First-year": -0.3})
    assert "Housing and meals" in quote_passages([costs], "housing?", similarity)
    # Without similarity, lines rank by the words they share.
    assert quote_passages([campus, costs], "how much is it to live in the dorms").endswith(
        "live on campus.\n— campus.md"
    )
