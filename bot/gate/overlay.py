"""Run-time scope changes: word lists, examples, aliases, strictness and channel bindings, kept in the
database over the file.

The file stays the operator's source; the overlay records only differences (words, examples, aliases and
channels added or removed, a strictness set), so later edits to the file still show through. An example is a
question the scope answers: the question itself is answered, and the topic classifier takes it as a positive.
An alias is another name people use for the organisation ("HVM", "the Smith Memorial"): a question naming it
is about this scope, not about another place. Every
change is audited and put in force at once through `ScopeRegistry.replace`; other bot processes on the same
database apply it at their next `ScopeAdmin.watch` read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import Field, SQLModel, select

from bot.config import Config, ScopeConfig
from bot.db import UTCDateTime, utcnow
from bot.events import Actor
from bot.scopes import ScopeRegistry
from moderation.audit import audit

log = logging.getLogger(__name__)

OPERATIONS = (
    "set", "add-word", "remove-word", "add-example", "remove-example", "add-alias", "remove-alias", "bind", "unbind"
)  # fmt: skip
USAGE = (
    "scope show [NAME] | scope set NAME strictness 0..1 | scope add-word NAME WORD… | "
    "scope remove-word NAME WORD… | scope add-example NAME QUESTION | scope remove-example NAME QUESTION | "
    "scope add-alias NAME ALIAS | scope remove-alias NAME ALIAS | scope bind NAME CHANNEL | scope unbind NAME CHANNEL"
)
#: Longest example question an operator may add (a chat question, not a document).
MAX_EXAMPLE_CHARS = 500
#: Longest alias (a name, not a sentence).
MAX_ALIAS_CHARS = 100
#: Scope lists edited one whole phrase at a time, by the noun of their commands (`add-example`, `remove-alias`):
#: the field, what a phrase needs, and its longest length.
_PHRASES = {
    "example": ("examples", "an example is a question the scope answers; it needs words", MAX_EXAMPLE_CHARS),
    "alias": (
        "aliases",
        "an alias is a name people use for the organisation; it needs letters or digits",
        MAX_ALIAS_CHARS,
    ),
}
#: Run-time examples `scope show` lists, newest last (a chat reply stays readable).
SHOW_EXAMPLES = 10


class ScopeChangeError(Exception):
    """A scope change cannot be made; the message says why, for the operator."""


class ScopeOverlay(SQLModel, table=True):
    """What run-time commands changed in one scope, relative to the configuration file."""

    __tablename__ = "scope_overlay"

    scope: str = Field(primary_key=True, max_length=64)
    added_words: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    removed_words: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    added_examples: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    removed_examples: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    added_aliases: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    removed_aliases: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    added_channels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    removed_channels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    strictness: float | None = None
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str = Field(default="", max_length=256)


def _fold(word: str) -> str:
    return " ".join(word.lower().split())


def _merged(base: list[str], added: list[str], removed: list[str], *, key: Callable[[str], str]) -> list[str]:
    """`base` without the `removed` entries, then the `added` ones it does not hold (compared by `key`)."""
    gone = {key(r) for r in removed}
    kept = [b for b in base if key(b) not in gone]
    held = {key(k) for k in kept}
    return kept + [a for a in added if key(a) not in held]


def apply_overlay(scope: ScopeConfig, overlay: ScopeOverlay | None) -> ScopeConfig:
    """The scope in force: the file's scope with the overlay's differences applied."""
    if overlay is None:
        return scope
    update: dict[str, Any] = {
        "blocked_words": _merged(scope.blocked_words, overlay.added_words, overlay.removed_words, key=_fold),
        "channels": _merged(scope.channels, overlay.added_channels, overlay.removed_channels, key=str.lower),
        "examples": _merged(scope.examples, overlay.added_examples, overlay.removed_examples, key=_fold),
        "aliases": _merged(scope.aliases, overlay.added_aliases, overlay.removed_aliases, key=_fold),
    }
    if overlay.strictness is not None:
        update["strictness"] = overlay.strictness
    return scope.model_copy(update=update)


def _toggle(add: list[str], remove: list[str], items: list[str], *, adding: bool) -> tuple[list[str], list[str]]:
    """New (added, removed) lists after adding or removing `items` (case-insensitive, no repeats)."""
    keys = {_fold(i) for i in items}
    if adding:
        return [*add, *(i for i in items if _fold(i) not in {_fold(a) for a in add})], [
            r for r in remove if _fold(r) not in keys
        ]
    return [a for a in add if _fold(a) not in keys], [
        *remove,
        *(i for i in items if _fold(i) not in {_fold(r) for r in remove}),
    ]


class ScopeAdmin:
    """Loads the overlay at start and applies operators' changes, from chat or the CLI."""

    def __init__(self, *, config: Config, registry: ScopeRegistry, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._file = {s.name: s for s in config.scopes}
        self._registry = registry
        self._sessions = sessions
        self._ignored: set[str] = set()

    async def load(self) -> int:
        """Put every stored overlay in force; the number of scopes that changed.

        Called at start, then now and then (`watch`), so that changes another bot process made apply here too.
        """
        async with self._sessions() as session:
            rows = list((await session.execute(select(ScopeOverlay))).scalars())
        count = 0
        for row in rows:
            if row.scope not in self._file:
                if row.scope not in self._ignored:
                    self._ignored.add(row.scope)
                    log.warning("stored changes for scope %r ignored: it is no longer in the configuration", row.scope)
                continue
            updated = apply_overlay(self._file[row.scope], row)
            if updated != self._registry.get(row.scope):
                self._registry.replace(updated)
                count += 1
        return count

    async def watch(self, interval: float) -> None:
        """Re-read the overlay every `interval` seconds until cancelled: several bot processes sharing one
        database all apply a change made in any of them. A database outage only delays it."""
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                changed = await self.load()
            except Exception as e:  # noqa: BLE001 - any database error: keep the scopes in force, try again later
                if not failing:
                    log.warning("could not re-read run-time scope changes (%s); retrying every %.0f s", e, interval)
                failing = True
                continue
            if failing:
                log.info("run-time scope changes readable again")
            failing = False
            if changed:
                log.info("run-time scope changes from another process applied to %d scope(s)", changed)

    def show(self, name: str | None = None) -> str:
        """The scopes in force (or one), as an operator reads them."""
        scopes = [self._scope(name)] if name else self._registry.all()
        out = []
        for s in scopes:
            line = (
                f"{s.name}: strictness {s.strictness:.2f}; channels: {', '.join(s.channels) or '(none)'}; "
                f"blocked words: {', '.join(s.blocked_words) or '(none)'}"
            )
            if s.aliases:
                line += f"; also called: {', '.join(s.aliases)}"
            in_file = {_fold(f) for f in self._file[s.name].examples}
            added = [e for e in s.examples if _fold(e) not in in_file]
            line += f"; {len(s.examples)} example(s)"
            if added:
                shown = "; ".join(repr(e) for e in added[-SHOW_EXAMPLES:])
                more = f" (and {len(added) - SHOW_EXAMPLES} earlier)" if len(added) > SHOW_EXAMPLES else ""
                line += f", added at run time: {shown}{more}"
            out.append(line)
        return "\n".join(out)

    def has_example(self, name: str, question: str) -> bool:
        """Whether scope `name` already lists `question` among its examples (any case or spacing)."""
        return self._holds(name, "examples", question)

    def _holds(self, name: str, field_name: str, phrase: str) -> bool:
        key = _fold(phrase)
        return any(_fold(e) == key for e in getattr(self._scope(name), field_name))

    def _scope(self, name: str) -> ScopeConfig:
        try:
            return self._registry.get(name)
        except KeyError:
            raise ScopeChangeError(f"no scope {name!r}; scopes: {', '.join(self._registry.names())}") from None

    async def change(self, *, actor: Actor, operation: str, scope: str, args: list[str]) -> str:
        """Apply one change, audit it and put it in force; returns what now holds."""
        current = self._scope(scope)
        if operation not in OPERATIONS:
            raise ScopeChangeError(f"unknown scope command {operation!r}; use: {USAGE}")
        if not args:
            raise ScopeChangeError(f"`scope {operation} {scope}` needs a value; use: {USAGE}")
        async with self._sessions() as session, session.begin():
            row = await session.get(ScopeOverlay, scope) or ScopeOverlay(scope=scope)
            note = self._edit(row, current, operation, args)
            row.updated_at = utcnow()
            row.updated_by = f"{actor.platform}:{actor.user_id}"
            session.add(row)
            audit(session, actor=actor, action=f"scope.{operation.replace('-', '_')}", scope=scope, note=note)
        updated = apply_overlay(self._file[scope], row)
        self._registry.replace(updated)
        log.info("scope %s changed by %s: %s", scope, actor.label, note)
        return f"{note}. " + self.show(scope)

    def _edit(self, row: ScopeOverlay, current: ScopeConfig, operation: str, args: list[str]) -> str:
        if operation == "set":
            if len(args) != 2 or args[0] != "strictness":
                raise ScopeChangeError("use: scope set NAME strictness 0..1")
            try:
                value = float(args[1])
            except ValueError:
                raise ScopeChangeError(f"strictness must be a number from 0 to 1, not {args[1]!r}") from None
            if not 0.0 <= value <= 1.0:
                raise ScopeChangeError(f"strictness must be from 0 to 1, not {value}")
            row.strictness = value
            return f"strictness set to {value:.2f}"
        if operation in ("add-word", "remove-word"):
            words = [w.strip() for w in args if w.strip()]
            adding = operation == "add-word"
            row.added_words, row.removed_words = _toggle(row.added_words, row.removed_words, words, adding=adding)
            return f"{'added' if adding else 'removed'} blocked word(s): {', '.join(words)}"
        verb, _, noun = operation.partition("-")
        if noun in _PHRASES:
            # One whole phrase (chat splits it into words): an example question or an alias.
            field_name, needs, limit = _PHRASES[noun]
            phrase = " ".join(" ".join(args).split())
            if not any(c.isalnum() for c in phrase):
                raise ScopeChangeError(needs)
            if len(phrase) > limit:
                raise ScopeChangeError(f"an {noun} may have at most {limit} characters")
            adding = verb == "add"
            if not adding and not self._holds(current.name, field_name, phrase):
                raise ScopeChangeError(f"scope {current.name} has no {noun} {phrase!r}")
            added, removed = _toggle(
                getattr(row, f"added_{field_name}"), getattr(row, f"removed_{field_name}"), [phrase], adding=adding
            )
            setattr(row, f"added_{field_name}", added)
            setattr(row, f"removed_{field_name}", removed)
            return f"{'added' if adding else 'removed'} {noun} {phrase!r}"
        channel = args[0]
        if operation == "bind":
            owner = next(
                (s.name for s in self._registry.all() if s.name != current.name and channel in s.channels), None
            )
            if owner is not None:
                raise ScopeChangeError(f"channel {channel} is bound to scope {owner}; unbind it there first")
        row.added_channels, row.removed_channels = _toggle(
            row.added_channels, row.removed_channels, [channel], adding=operation == "bind"
        )
        return f"{'bound' if operation == 'bind' else 'unbound'} channel {channel}"


__all__ = ["OPERATIONS", "USAGE", "ScopeAdmin", "ScopeChangeError", "ScopeOverlay", "apply_overlay"]
