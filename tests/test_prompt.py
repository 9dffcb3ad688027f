"""The scope's fixed instructions to the model."""

from __future__ import annotations

from bot.llm.prompt import system_prompt


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
