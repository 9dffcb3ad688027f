"""Word lists: whole-word and phrase matching on the normalized (folded) text, naming the entry that hit."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.gate.normalize import clean_text, fold_text


@dataclass(frozen=True, slots=True)
class WordHit:
    """Which list and which entry (as the operator wrote it) matched."""

    list_name: str
    entry: str

    @property
    def rule(self) -> str:
        """The audit-trail form: `wordlist:<list>:<entry>`."""
        return f"wordlist:{self.list_name}:{self.entry}"


def entry_pattern(entry: str) -> re.Pattern[str] | None:
    """A pattern for one entry on folded text: whole words, any spacing between the words of a phrase."""
    words = fold_text(clean_text(entry))[0].split()
    if not words:
        return None
    # `\s*` between words: "pipe bomb" also catches "pipebomb" and "pipe-bomb" (folded to "pipe bomb").
    return re.compile(r"(?<!\w)" + r"\s*".join(re.escape(w) for w in words) + r"(?!\w)")


class WordLists:
    """Named lists compiled once; `find` reports the first entry found in a folded text."""

    def __init__(self, lists: Mapping[str, Sequence[str]]) -> None:
        self._compiled: list[tuple[str, str, re.Pattern[str]]] = []
        for name, entries in lists.items():
            for entry in entries:
                pattern = entry_pattern(entry)
                if pattern is not None:
                    self._compiled.append((name, entry, pattern))

    def __len__(self) -> int:
        return len(self._compiled)

    def find(self, folded: str) -> WordHit | None:
        """The first entry whose words occur in `folded` (the normalizer's rules view), or None."""
        for name, entry, pattern in self._compiled:
            if pattern.search(folded):
                return WordHit(name, entry)
        return None
