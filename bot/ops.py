"""Operations: the health document (`GET /healthz`), Prometheus metrics (`GET /metrics`) and their HTTP listener."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler
from sqlalchemy import func, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.config import Config, ConfigError
from bot.events import Platform
from bot.llm.client import ModelWorker
from bot.logs import redact
from bot.metrics import Metrics, Snapshot, StateCollector
from bot.spool import Spool
from moderation.models import Case, CaseState

log = logging.getLogger(__name__)

OPS_PORT_ENV = "SCOPEBOT_OPS_PORT"
OPS_HOST_ENV = "SCOPEBOT_OPS_HOST"
#: The port of the OpenTelemetry Prometheus exporter; free on most hosts, unlike 9090 (Prometheus) or 9100.
DEFAULT_OPS_PORT = 9464
#: Loopback only by default: the health document names internals an operator may not want public.
DEFAULT_OPS_HOST = "127.0.0.1"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
#: Seconds the database gets to answer a health check or a scrape before it counts as down.
DB_CHECK_SECONDS = 3.0

HealthCheck = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class OpsSettings:
    """Where the ops listener listens."""

    host: str = DEFAULT_OPS_HOST
    port: int = DEFAULT_OPS_PORT
    #: The operator chose the port: a busy one stops the bot. A busy default port is skipped with a warning.
    explicit: bool = False


def ops_settings_from_env(env: Mapping[str, str]) -> OpsSettings | None:
    """`SCOPEBOT_OPS_PORT` (default 9464, `off` to disable) and `SCOPEBOT_OPS_HOST` (default 127.0.0.1)."""
    raw = env.get(OPS_PORT_ENV, "").strip()
    host = env.get(OPS_HOST_ENV, "").strip() or DEFAULT_OPS_HOST
    if raw.lower() in ("off", "none", "disabled"):
        return None
    if not raw:
        return OpsSettings(host=host)
    if not raw.isdigit() or int(raw) > 65535:
        raise ConfigError(f"{OPS_PORT_ENV}: {raw!r} is not a port number (0-65535) or `off`")
    return OpsSettings(host=host, port=int(raw), explicit=True)


@runtime_checkable
class ReportsConnection(Protocol):
    """A platform that can tell whether it is connected right now."""

    @property
    def connected(self) -> bool:
        """Whether events can arrive and calls can be made now."""


@runtime_checkable
class ServesHealth(Protocol):
    """A platform with its own HTTP listener that answers `GET /healthz` (Slack's HTTP mode)."""

    health: HealthCheck | None


class ModelHolder(Protocol):
    """Where the model worker lives once loaded, and why there is none (the app)."""

    config: Config
    model: ModelWorker | None
    model_problem: str


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """The model's state for the health document: loaded, loading, not configured, failed or restarting."""

    state: str
    reason: str = ""
    restarts: int = 0
    waiting: int = 0
    running: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The health document's `model` entry."""
        out: dict[str, Any] = {"state": self.state}
        if self.reason:
            out["reason"] = self.reason
        out |= {"restarts": self.restarts, "queue_depth": self.waiting, "generating": self.running}
        return out


def model_status(*, configured: bool, worker: ModelWorker | None, problem: str) -> ModelStatus:
    """What the model is doing; its absence is a state, not a fault (the bot then answers from passages)."""
    if not configured:
        return ModelStatus("not configured", problem or "no model is configured; answers quote the knowledge files")
    if worker is None:
        return ModelStatus("failed", problem) if problem else ModelStatus("loading")
    if worker.alive:
        state, reason = "loaded", ""
    else:
        state, reason = "restarting", "the model worker exited; it is restarted for the next question"
    return ModelStatus(state, reason, restarts=worker.restarts, waiting=worker.waiting, running=worker.running)


class Ops:
    """Health and metrics of one bot process, read from the services it is given."""

    def __init__(
        self,
        *,
        metrics: Metrics,
        engine: AsyncEngine,
        platforms: Sequence[Platform],
        models: ModelHolder,
        settings: OpsSettings | None = None,
        spool: Spool | None = None,
    ) -> None:
        self.metrics = metrics
        self.settings = settings
        self._spool = spool
        self._engine = engine
        self._platforms = platforms
        self._models = models
        self._db_error: str | None = "not checked yet"
        self._cases: dict[str, int] | None = None
        self._server: OpsServer | None = None
        metrics.registry.register(StateCollector(self.snapshot))

    @property
    def port(self) -> int | None:
        """The port the ops listener listens on, once started."""
        return self._server.port if self._server is not None else None

    def model(self) -> ModelStatus:
        """The model's current state."""
        m = self._models
        return model_status(configured=m.config.model.configured, worker=m.model, problem=m.model_problem)

    def platforms(self) -> dict[str, bool | None]:
        """Each platform's connection state; None when the adapter cannot tell."""
        return {p.name: (p.connected if isinstance(p, ReportsConnection) else None) for p in self._platforms}

    async def check_database(self) -> None:
        """Ask the database for the moderation cases by state; remember the answer, or the error without secrets."""
        query = select(Case.state, func.count()).group_by(col(Case.state))
        try:
            async with asyncio.timeout(DB_CHECK_SECONDS), self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                rows = (await conn.execute(query)).all()
        except TimeoutError:
            self._db_error, self._cases = f"no answer within {DB_CHECK_SECONDS:g} s", None
        except (SQLAlchemyError, OSError) as e:
            self._db_error, self._cases = _describe(e), None
        else:
            found = {str(state): int(n) for state, n in rows}
            self._db_error = None
            self._cases = {s.value: found.get(s.value, 0) for s in CaseState}
            # A state added later is still counted, under its own name.
            self._cases |= {k: v for k, v in found.items() if k not in self._cases}

    def spool_waiting(self) -> int:
        """Reports and answer records kept during a database outage and not yet written."""
        return self._spool.backlog if self._spool is not None else 0

    def snapshot(self) -> Snapshot:
        """Live state for the metrics collector (the database part as of the last check)."""
        m = self._models.model
        return Snapshot(
            model_loaded=m is not None and m.alive,
            model_configured=self._models.config.model.configured,
            model_waiting=m.waiting if m is not None else 0,
            model_running=m is not None and m.running,
            model_restarts=m.restarts if m is not None else 0,
            platforms=self.platforms(),
            database_up=self._db_error is None,
            cases=self._cases,
            spool_waiting=self.spool_waiting(),
        )

    async def health(self) -> tuple[int, dict[str, Any]]:
        """The health document and its HTTP status: 200 when the database answers and every platform is connected."""
        await self.check_database()
        platforms = self.platforms()
        database: dict[str, Any] = (
            {"state": "ok"} if self._db_error is None else {"state": "error", "error": self._db_error}
        )
        ok = self._db_error is None and all(up is not False for up in platforms.values())
        doc = {
            "ok": ok,
            "model": self.model().as_dict(),
            "database": database,
            # Reports and answer records kept during a database outage and not yet written.
            "spool": {"waiting": self.spool_waiting()},
            "platforms": {
                name: "unknown" if up is None else ("connected" if up else "disconnected")
                for name, up in platforms.items()
            },
        }
        return (200 if ok else 503), doc

    async def start(self) -> None:
        """Start the ops listener, when settings are given."""
        if self.settings is not None and self._server is None:
            server = OpsServer(self, self.settings)
            if await server.start():
                self._server = server

    async def stop(self) -> None:
        """Close the ops listener."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop()


def _describe(e: BaseException) -> str:
    """The first line of a database error, with any credentials removed."""
    detail = str(getattr(e, "orig", None) or e).strip()
    first = detail.splitlines()[0] if detail else ""
    return redact(f"{type(getattr(e, 'orig', None) or e).__name__}: {first}" if first else type(e).__name__)


class OpsServer:
    """An aiohttp listener serving `GET /healthz` and `GET /metrics`."""

    def __init__(self, ops: Ops, settings: OpsSettings) -> None:
        self._ops = ops
        self._settings = settings
        self._export = make_aiohttp_handler(ops.metrics.registry)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> bool:
        """Listen; False when the default port is taken (warned), `ConfigError` when a chosen one is."""
        app = web.Application()
        app.router.add_get(HEALTH_PATH, self._health)
        app.router.add_get(METRICS_PATH, self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, port = self._settings.host, self._settings.port
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            problem = f"cannot listen on {host}:{port} for /healthz and /metrics: {e.strerror or e}"
            if self._settings.explicit:
                raise ConfigError(f"{OPS_PORT_ENV}: {problem} (choose a free port, or `off`)") from None
            log.warning("ops: %s; running without them (set %s to a free port)", problem, OPS_PORT_ENV)
            return False
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        log.info("ops: health at http://%s:%s%s, metrics at %s", host, self.port, HEALTH_PATH, METRICS_PATH)
        return True

    async def stop(self) -> None:
        """Close the socket and finish open requests."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, request: web.Request) -> web.Response:
        status, doc = await self._ops.health()
        return web.json_response(doc, status=status)

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        # Cases by state and the database gauge come from the database, read now rather than cached.
        await self._ops.check_database()
        return await self._export(request)
