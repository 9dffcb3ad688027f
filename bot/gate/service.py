"""The gate as the running bot holds it: built at start (off the event loop), knowledge kept fresh,
and the `/scopebot scope …` chat command for operators."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from bot.commands import CommandRouter, Subcommand
from bot.config import Config, ScopeConfig
from bot.events import Actor, Place, Platform
from bot.gate import GateResult
from bot.gate.embed import Embedder
from bot.gate.gate import ScopeGate
from bot.gate.overlay import USAGE, ScopeAdmin, ScopeChangeError
from bot.knowledge import KnowledgeIndex
from bot.scopes import ScopeRegistry

log = logging.getLogger(__name__)

#: Seconds between checks of the knowledge files for changes.
REFRESH_SECONDS = 30.0


class GateNotStarted(RuntimeError):
    """The gate was used before `GateService.start()` loaded its model."""


class GateService:
    """Implements the `Gate` protocol for the app; `start()` loads the embedding model once."""

    def __init__(
        self, *, config: Config, knowledge: Mapping[str, KnowledgeIndex], scopes: ScopeRegistry | None = None
    ) -> None:
        self._config = config
        self._knowledge = knowledge
        #: The scopes in force: run-time changes to their examples rebuild the topic indexes.
        self._scopes = scopes
        self._gate: ScopeGate | None = None
        self._embedder: Embedder | None = None
        self._checked = 0.0
        self._version = -1
        self._rebuilding = asyncio.Lock()

    def _build(self) -> ScopeGate:
        path = self._config.gate.model_path
        if path is not None and not path.is_absolute():
            path = Path(self._config.source.parent, path)
        # One thread by default: in the bot the LLM worker already keeps the cores busy, and one short
        # question gains little from more (`scopebot check` uses every core for its batches).
        self._embedder = Embedder.load(path, threads=self._config.gate.threads or 1)
        for index in self._knowledge.values():
            index.attach_encoder(self._embedder.encode)
        self._version = self._scopes.version if self._scopes is not None else 0
        return ScopeGate(
            embedder=self._embedder,
            scopes=self._scopes.all() if self._scopes is not None else self._config.scopes,
            knowledge=self._knowledge,
            global_blocked=self._config.bot.blocked_words,
        )

    async def start(self) -> None:
        """Load the model and index every scope (on a worker thread)."""
        if self._gate is None:
            started = time.perf_counter()
            self._gate = await asyncio.to_thread(self._build)
            self._checked = time.monotonic()
            log.info("scope gate ready in %.1f s", time.perf_counter() - started)

    async def stop(self) -> None:
        """Release the embedding threads."""
        if self._embedder is not None:
            await asyncio.to_thread(self._embedder.close)
            self._embedder = None
        self._gate = None

    async def _ready(self) -> ScopeGate:
        gate = self._gate
        if gate is None:
            raise GateNotStarted("the scope gate is not started; call GateService.start() first")
        if self._scopes is not None and self._scopes.version != self._version and not self._rebuilding.locked():
            # The first question after a change waits for the rebuild; others meanwhile use the indexes in force.
            async with self._rebuilding:
                version = self._scopes.version
                if version != self._version:
                    # Off the event loop: embedding a changed scope's texts takes a moment.
                    await asyncio.to_thread(gate.update_scopes, self._scopes.all())
                    self._version = version
        if time.monotonic() - self._checked >= REFRESH_SECONDS:
            self._checked = time.monotonic()
            # Stats the knowledge files; re-embeds a scope's texts only when one changed.
            await asyncio.to_thread(gate.refresh_knowledge)
        return gate

    async def screen_prompt(self, scope: ScopeConfig, text: str, *, history: Sequence[str] = ()) -> GateResult:
        """See `ScopeGate.screen_prompt`."""
        return await (await self._ready()).screen_prompt(scope, text, history=history)

    async def screen_answer(self, scope: ScopeConfig, text: str) -> GateResult:
        """See `ScopeGate.screen_answer`."""
        gate = self._gate
        if gate is None:
            raise GateNotStarted("the scope gate is not started; call GateService.start() first")
        return await gate.screen_answer(scope, text)


def register_scope_command(commands: CommandRouter, admin: ScopeAdmin) -> None:
    """Add `/scopebot scope …` (moderators only) to the command router."""

    async def handle(platform: Platform, actor: Actor, place: Place, args: list[str]) -> str:
        del platform
        if not args or args[0] == "show":
            try:
                return admin.show(args[1] if len(args) > 1 else None)
            except ScopeChangeError as e:
                return str(e)
        if len(args) < 3:
            return f"Usage: /scopebot {USAGE}"
        operation, name, values = args[0], args[1], args[2:]
        if operation in ("bind", "unbind") and values == ["here"]:
            values = [f"{place.platform}:{place.channel}"]
        try:
            return await admin.change(actor=actor, operation=operation, scope=name, args=values)
        except ScopeChangeError as e:
            return str(e)

    usage = (
        "scope show [NAME] | set NAME strictness 0..1 | add-word|remove-word NAME WORD… | "
        "add-example|remove-example NAME QUESTION | add-alias|remove-alias NAME ALIAS | bind|unbind NAME CHANNEL|here"
    )
    commands.register(Subcommand(name="scope", usage=usage, handler=handle, moderators_only=True))
