"""Where `add_word` puts a phrase when no persistent run-time word-list overlay is wired in.

The scope gate owns word lists (bot/gate/). Until its run-time overlay is wired into the app, this
default lays the phrase over the scope in the live `ScopeRegistry`, so this process blocks it at once;
the audit entry (`case.add_word`) keeps the phrase for an operator to copy into scopebot.toml.
"""

from __future__ import annotations

import logging

from bot.events import Actor
from bot.scopes import ScopeRegistry

log = logging.getLogger(__name__)


class RegistryPhrases:
    """A `PhraseSink` that extends the in-memory scope's `blocked_words` (not persisted across restarts)."""

    def __init__(self, scopes: ScopeRegistry) -> None:
        self._scopes = scopes

    async def add_blocked_phrase(self, *, scope: str, phrase: str, actor: Actor, case_id: int | None) -> None:
        """Block `phrase` in `scope` in this process from now on."""
        current = self._scopes.get(scope)
        words = list(current.blocked_words)
        if phrase.lower() not in (w.lower() for w in words):
            words.append(phrase)
            self._scopes.replace(current.model_copy(update={"blocked_words": words}))
        log.info("scope %s: %s added a blocked phrase (case %s)", scope, actor.user_id, case_id)
