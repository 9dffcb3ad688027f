"""A first, dependency-free gate: word lists and lexical overlap with the scope's own words."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from bot.config import ScopeConfig
from bot.gate import GateResult
from bot.gate.language import LANGUAGE_RULE, other_language
from bot.gate.normalize import clean_text
from bot.gate.smalltalk import SMALL_TALK_RULE, small_talk
from bot.gate.tasks import CUT_OFF_RULE, cut_off
from bot.knowledge import KnowledgeIndex, terms


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in phrase.lower().split()]
    return re.compile(r"(?<![a-z0-9])" + r"\s+".join(words) + r"(?![a-z0-9])")


def find_blocked(text: str, lists: Mapping[str, Sequence[str]]) -> tuple[str, str] | None:
    """The first (list name, entry) whose whole word or phrase occurs in `text`, or None."""
    low = text.lower()
    for name, entries in lists.items():
        for entry in entries:
            if entry.strip() and _phrase_pattern(entry).search(low):
                return name, entry
    return None


class LexicalGate:
    """Answers when enough of the question's content words belong to the scope's vocabulary."""

    def __init__(self, *, global_blocked: Sequence[str], knowledge: Mapping[str, KnowledgeIndex]) -> None:
        self._global = list(global_blocked)
        self._knowledge = knowledge

    def _vocabulary(self, scope: ScopeConfig) -> set[str]:
        vocab = set(terms(scope.description))
        for e in scope.examples:
            vocab.update(terms(e))
        index = self._knowledge.get(scope.name)
        if index is not None:
            vocab |= index.vocabulary()
        return vocab

    def _check(self, scope: ScopeConfig, text: str) -> GateResult:
        hit = find_blocked(text, {"global": self._global, scope.name: scope.blocked_words})
        if hit:
            return GateResult(
                "block", scope.name, f"blocked word ({hit[0]} list): {hit[1]}", 1.0, rule=f"wordlist:{hit[0]}:{hit[1]}"
            )
        clean = clean_text(text)
        talk = small_talk(clean)
        if talk is not None:
            return GateResult("refuse", scope.name, f"small talk ({talk})", 0.0, rule=f"{SMALL_TALK_RULE}:{talk}")
        language = other_language(clean)
        if language is not None:
            reason = f"written in {language}, which the gate cannot read"
            return GateResult("refuse", scope.name, reason, 0.0, rule=f"{LANGUAGE_RULE}:{language}")
        last = cut_off(clean)
        if last is not None:
            reason = f"the message stops mid-sentence (on {last!r})"
            return GateResult("refuse", scope.name, reason, 0.0, rule=CUT_OFF_RULE)
        words = terms(text)
        if not words:
            return GateResult("refuse", scope.name, "no question to answer", 0.0, rule="topic")
        vocab = self._vocabulary(scope)
        known = [w for w in words if w in vocab]
        score = len(known) / len(words)
        threshold = 0.25 + 0.5 * scope.strictness
        if score >= threshold:
            return GateResult("answer", scope.name, f"in scope: {', '.join(known[:5])}", score, rule="topic")
        return GateResult(
            "refuse", scope.name, f"out of scope (overlap {score:.2f} < {threshold:.2f})", score, rule="topic"
        )

    async def screen_prompt(self, scope: ScopeConfig, text: str, *, history: Sequence[str] = ()) -> GateResult:
        """Word lists on the whole recent conversation, topic on the question itself."""
        joined = " \n".join([*history, text])
        block = self._check(scope, joined)
        if block.verdict == "block":
            return block
        return self._check(scope, text)

    async def screen_answer(self, scope: ScopeConfig, text: str) -> GateResult:
        """Only word lists apply to answers."""
        hit = find_blocked(text, {"global": self._global, scope.name: scope.blocked_words})
        if hit:
            return GateResult(
                "block",
                scope.name,
                f"answer contained a blocked word ({hit[0]} list): {hit[1]}",
                1.0,
                rule=f"wordlist:{hit[0]}:{hit[1]}",
            )
        return GateResult("answer", scope.name, "answer passed the screens", 0.0)
