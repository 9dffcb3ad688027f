"""The scope gate: decides whether a question is answered, refused with the scope's line, or blocked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from bot.config import ScopeConfig

Verdict = Literal["answer", "refuse", "block"]


@dataclass(frozen=True, slots=True)
class GateResult:
    """The gate's decision on one text, with a reason an operator can read."""

    verdict: Verdict
    scope: str
    reason: str
    score: float = 0.0
    #: What fired, for the audit trail: `wordlist:<list>:<entry>`, `harm:<category>`, `topic`, ….
    rule: str = ""
    #: The closest in-scope example and its similarity, shown when a question is refused.
    nearest: str = ""


def rule_detail(rule: str, prefix: str) -> str | None:
    """What a `GateResult.rule` of the form `<prefix>:<detail>` records (the kind of small talk, the language), or
    None when the rule is not of that form."""
    head = f"{prefix}:"
    return rule[len(head) :] if rule.startswith(head) else None


def learned_block(rule: str) -> bool:
    """Whether a `GateResult.rule` is a block by a learned screen (`harm:<category>:model` or `…:intent`), which a
    scope's example question overrules; the hand-written rules and the word lists it does not."""
    return rule.startswith("harm:") and rule.endswith((":model", ":intent"))


class Gate(Protocol):
    """Screens prompts (before the model) and answers (before they are sent)."""

    async def screen_prompt(self, scope: ScopeConfig, text: str, *, history: Sequence[str] = ()) -> GateResult:
        """Decide on a question; `history` holds the same person's recent turns in the thread, oldest first."""

    async def screen_answer(self, scope: ScopeConfig, text: str) -> GateResult:
        """Decide whether the model's answer may be sent (`answer`) or must be withheld (`block`)."""
