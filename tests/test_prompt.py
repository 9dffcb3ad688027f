"""The scope's fixed instructions to the model, and the answer quoted from sources when there is no model."""

from __future__ import annotations

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


def test_quoted_sources_skip_passages_that_match_only_by_their_heading() -> None:
    admissions = Passage(
        "admissions.md",
        "Admissions at Northgate College\n- Application deadlines: Early Action November 1.\n- The fee is $60.",
    )
    # Only the heading shares the question's words: there is nothing to quote.
    assert quote_passages([admissions], "when does the Northgate College bookstore close") == NO_PASSAGES_TEXT
    text = quote_passages([admissions, admissions], "when is the application deadline")
    assert text == "From my sources:\n> - Application deadlines: Early Action November 1.\n— admissions.md"
