"""Where `add_word` puts a phrase and `missed` a question: the scope gate's run-time overlay, or (without one)
the live registry."""

from __future__ import annotations

import logging

from bot.events import Actor
from bot.gate.overlay import ScopeAdmin, ScopeChangeError
from bot.scopes import ScopeRegistry
from moderation.effects import PhraseRejected

log = logging.getLogger(__name__)


class OverlayPhrases:
    """A `PhraseSink` over the gate's `ScopeAdmin`: stored in the database, in force at once, audited."""

    def __init__(self, admin: ScopeAdmin) -> None:
        self._admin = admin

    async def add_blocked_phrase(self, *, scope: str, phrase: str, actor: Actor, case_id: int | None) -> None:
        """Add `phrase` to the scope's blocked words through the overlay (`scope.add_word` in the audit log)."""
        try:
            await self._admin.change(actor=actor, operation="add-word", scope=scope, args=[phrase])
        except ScopeChangeError as e:
            raise PhraseRejected(str(e)) from e
        log.info("scope %s: %s added a blocked phrase (case %s)", scope, actor.user_id, case_id)

    async def add_example(self, *, scope: str, question: str, actor: Actor, case_id: int | None) -> None:
        """Add `question` to the scope's examples through the overlay (`scope.add_example` in the audit log);
        nothing is written when it is one already (an effect retried after a failed edit)."""
        if self._admin.has_example(scope, question):
            return
        try:
            await self._admin.change(actor=actor, operation="add-example", scope=scope, args=[question])
        except ScopeChangeError as e:
            raise PhraseRejected(str(e)) from e
        log.info("scope %s: %s added an example question (case %s)", scope, actor.user_id, case_id)


class RegistryPhrases:
    """A `PhraseSink` that extends the in-memory scope only (this process, until restart): for tests and tools."""

    def __init__(self, scopes: ScopeRegistry) -> None:
        self._scopes = scopes

    async def add_blocked_phrase(self, *, scope: str, phrase: str, actor: Actor, case_id: int | None) -> None:
        """Block `phrase` in `scope` in this process from now on."""
        try:
            current = self._scopes.get(scope)
        except KeyError:
            raise PhraseRejected(f"no scope {scope!r}") from None
        words = list(current.blocked_words)
        if phrase.lower() not in (w.lower() for w in words):
            words.append(phrase)
            self._scopes.replace(current.model_copy(update={"blocked_words": words}))
        log.info("scope %s: %s added a blocked phrase (case %s)", scope, actor.user_id, case_id)

    async def add_example(self, *, scope: str, question: str, actor: Actor, case_id: int | None) -> None:
        """Make `question` one of the scope's examples in this process from now on."""
        try:
            current = self._scopes.get(scope)
        except KeyError:
            raise PhraseRejected(f"no scope {scope!r}") from None
        if question.lower() not in (e.lower() for e in current.examples):
            self._scopes.replace(current.model_copy(update={"examples": [*current.examples, question]}))
        log.info("scope %s: %s added an example question (case %s)", scope, actor.user_id, case_id)
