"""The composition root: builds every service once, wires them together, starts and stops them."""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import db
from bot.answers import ANSWER_RECORD, ConversationMemory, replay_answer
from bot.commands import CommandRouter
from bot.config import Config
from bot.dispatcher import Dispatcher
from bot.events import Actor, Place, Platform
from bot.gate import Gate
from bot.gate.overlay import ScopeAdmin
from bot.gate.service import GateService, register_scope_command
from bot.knowledge import KnowledgeIndex
from bot.llm.client import ModelWorker, WorkerSettings
from bot.llm.engine import ModelLoadError, resolve_model_file
from bot.metrics import Metrics
from bot.ops import Ops, OpsSettings, ServesHealth
from bot.outage import DatabaseWatch
from bot.pipeline import Pipeline
from bot.scopes import ScopeRegistry
from bot.spool import Spool, spool_folder
from moderation.rights import is_moderator
from moderation.wiring import ModerationRuntime, build_moderation
from moderation.wordlist import OverlayPhrases

log = logging.getLogger(__name__)

NO_MODEL_HELP = (
    "No model is configured, so the bot answers from its knowledge files only. To use LLaMA-2, download a "
    "GGUF build (e.g. llama-2-7b-chat.Q4_K_M.gguf) and set `path` under [model] in {config}, or pass --model FILE."
)
#: Seconds in-flight answers get to finish at shutdown before they are cancelled.
DRAIN_SECONDS = 10.0


@dataclass
class App:
    """Every long-lived service of one bot process."""

    config: Config
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    scopes: ScopeRegistry
    knowledge: dict[str, KnowledgeIndex]
    gate: Gate
    pipeline: Pipeline
    commands: CommandRouter
    dispatcher: Dispatcher
    platforms: list[Platform] = field(default_factory=list)
    #: The scope gate's model loader and the run-time scope changes (loaded at start).
    gate_service: GateService | None = None
    scope_admin: ScopeAdmin | None = None
    model: ModelWorker | None = None
    model_problem: str = ""
    moderation: ModerationRuntime | None = None
    #: Reports and answer records kept while the database is unreachable (`bot.spool`).
    spool: Spool | None = None
    #: Health and metrics, and their listener (`bot.ops`).
    ops: Ops | None = None
    _started: list[Platform] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def is_moderator(self, platform: Platform, actor: Actor, place: Place) -> bool:
        """Rights check shared by commands and card actions."""
        return await is_moderator(self.config.moderation.moderators, platform, actor, place)

    async def start_model(self) -> None:
        """Load the model in its worker; on failure, keep running on knowledge passages and say why once."""
        m = self.config.model
        if not m.configured:
            self.model_problem = NO_MODEL_HELP.format(config=self.config.source)
            log.warning("%s", self.model_problem)
            return
        try:
            path = await asyncio.to_thread(resolve_model_file, path=m.path, repo=m.repo, model_file=m.model_file)
            worker = ModelWorker(
                WorkerSettings(
                    model_path=path,
                    context_length=m.context_length,
                    threads=m.threads,
                    batch_size=m.batch_size,
                    max_new_tokens=m.max_new_tokens,
                    lib=m.lib,
                    engine=m.engine,
                    timeout_seconds=m.timeout_seconds,
                    queue_size=m.queue_size,
                )
            )
            await worker.start()
        except ModelLoadError as e:
            self.model_problem = f"The model could not be loaded: {e}. Answering from the knowledge files only."
            log.error("%s", self.model_problem)
            return
        self.model = worker
        self.pipeline.model = worker

    async def start(self) -> None:
        """Migrate the database, load the model, connect the platforms."""
        await db.upgrade(self.engine)
        if self.ops is not None:
            # Early, so /healthz answers (503 until every platform is connected) while the models load.
            await self.ops.start()
        for platform in self.platforms:
            # Before the models load (seconds to minutes): a wrong token is reported at once.
            check = getattr(platform, "check_credentials", None)
            if check is not None:
                await check()
        if self.scope_admin is not None:
            await self.scope_admin.load()
            self._tasks.append(asyncio.create_task(self.scope_admin.watch(self.config.gate.scope_reload_seconds)))
        if self.gate_service is not None:
            await self.gate_service.start()
        if self.spool is not None:
            # Before the platforms connect: what was kept during an outage is written first.
            await self.spool.start()
        await self.start_model()
        for platform in self.platforms:
            await platform.start(self.dispatcher.sink_for(platform))
            self._started.append(platform)
            log.info("%s connected", platform.name)
        if self.moderation is not None:
            await self.moderation.start()

    async def stop(self) -> None:
        """Stop taking events, let in-flight answers finish (or cancel them), close everything."""
        if self.moderation is not None:
            # First, so no router pass starts posting cards to a platform that is going away.
            await self.moderation.stop()
        for platform in reversed(self._started):
            try:
                await platform.stop()
            except Exception:
                log.exception("error while stopping %s", platform.name)
        self._started.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.dispatcher.drain(DRAIN_SECONDS)
        if self.spool is not None:
            await self.spool.stop(grace=self.config.database.spool_drain_seconds)
        if self.model is not None:
            await self.model.stop()
        if self.gate_service is not None:
            await self.gate_service.stop()
        if self.ops is not None:
            await self.ops.stop()
        await self.engine.dispose()


def build_app(config: Config, *, platforms: list[Platform] | None = None, ops: OpsSettings | None = None) -> App:
    """Build every service for `config`; nothing connects until `App.start()` (`ops`: where /healthz listens)."""
    engine = db.create_engine(config.database.url)
    sessions = db.sessionmaker(engine)
    # Reports and answer records wait here while the database is unreachable; written when it returns.
    spool = Spool(folder=spool_folder(config), watch=DatabaseWatch())
    spool.register(ANSWER_RECORD, functools.partial(replay_answer, sessions))
    scopes = ScopeRegistry(config)
    root = config.source.parent
    knowledge = {s.name: KnowledgeIndex(s.knowledge, root=root) for s in config.scopes}
    # The embedding model loads in `App.start()`, not here: building the app stays instant.
    gate = GateService(config=config, knowledge=knowledge, scopes=scopes)
    metrics = Metrics()
    pipeline = Pipeline(
        config=config,
        gate=gate,
        knowledge=knowledge,
        sessions=sessions,
        model=None,
        spool=spool,
        memory=ConversationMemory(),
        metrics=metrics,
    )
    moderators = config.moderation.moderators

    async def rights(platform: Platform, actor: Actor, place: Place) -> bool:
        return await is_moderator(moderators, platform, actor, place)

    commands = CommandRouter(is_moderator=rights)
    scope_admin = ScopeAdmin(config=config, registry=scopes, sessions=sessions)
    register_scope_command(commands, scope_admin)
    moderation = build_moderation(
        config=config,
        sessions=sessions,
        scopes=scopes,
        platforms=list(platforms or []),
        phrases=OverlayPhrases(scope_admin),
        spool=spool,
    )
    moderation.service.register_commands(commands)
    dispatcher = Dispatcher(
        config=config, scopes=scopes, pipeline=pipeline, commands=commands, moderation=moderation.service
    )
    app = App(
        config=config,
        engine=engine,
        sessions=sessions,
        scopes=scopes,
        knowledge=knowledge,
        gate=gate,
        gate_service=gate,
        scope_admin=scope_admin,
        pipeline=pipeline,
        commands=commands,
        dispatcher=dispatcher,
        platforms=list(platforms or []),
        moderation=moderation,
        spool=spool,
    )
    app.ops = Ops(metrics=metrics, engine=engine, platforms=app.platforms, models=app, settings=ops, spool=app.spool)
    for platform in app.platforms:
        if isinstance(platform, ServesHealth):
            # Slack's HTTP mode serves /healthz on its own port too: the same document.
            platform.health = app.ops.health
    return app
