"""APScheduler 3 for the router and retention jobs, with the job state in the bot's own database.

APScheduler 3's `SQLAlchemyJobStore` is synchronous, so the scheduler runs on its own thread
(`BackgroundScheduler`) and its database calls never block the event loop; `LoopExecutor` hands each
due job to the loop as a coroutine. Stored jobs name a placeholder function (`scheduled_job`) and the
executor runs the live service registered under the job's id, so no service object is pickled into the
database and nothing is looked up through module globals. Several processes may share the job table:
APScheduler 3 may then start a run in more than one of them, which is harmless because the router claims
work with leases and row locks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.pool import NullPool

from bot.outage import DatabaseWatch

log = logging.getLogger(__name__)

ROUTER_JOB = "moderation-router"
RETENTION_JOB = "moderation-retention"
#: Seconds a running job gets to finish at shutdown before it is cancelled.
STOP_GRACE = 10.0

Handler = Callable[[], Awaitable[object]]


def scheduled_job() -> None:
    """Placeholder the job table refers to; `LoopExecutor` runs the live handler for the job's id instead."""
    raise RuntimeError("moderation jobs run through LoopExecutor, not directly")


#: asyncpg's connection options that libpq (psycopg) spells differently; asyncpg-only ones are dropped.
_LIBPQ_NAMES = {"ssl": "sslmode", "timeout": "connect_timeout"}
_ASYNCPG_ONLY = ("command_timeout", "prepared_statement_cache_size", "prepared_statement_name_func")
_SSL_FLAGS = {"true": "require", "1": "require", "false": "disable", "0": "disable"}


def sync_url(url: str) -> str:
    """The synchronous driver URL APScheduler's job store needs, for the bot's async URL.

    For PostgreSQL the options asyncpg reads from the URL are turned into libpq's: `ssl=require` becomes
    `sslmode=require` (`true`/`false` too), `timeout` becomes `connect_timeout`, and the options only
    asyncpg knows (`command_timeout`, statement cache settings) are left out, so the job store connects
    the same way the bot does.
    """
    if url.startswith("sqlite+aiosqlite:"):
        return "sqlite:" + url.removeprefix("sqlite+aiosqlite:")
    if url.startswith("postgresql+asyncpg:"):
        parsed = sqlalchemy.engine.make_url(url)
        query: dict[str, str | tuple[str, ...]] = {}
        for name, value in parsed.query.items():
            if name in _ASYNCPG_ONLY:
                continue
            ssl_flag = _SSL_FLAGS.get(value.lower()) if name == "ssl" and isinstance(value, str) else None
            query[_LIBPQ_NAMES.get(name, name)] = ssl_flag or value
        return parsed.set(drivername="postgresql+psycopg", query=query).render_as_string(hide_password=False)
    raise ValueError(f"no synchronous driver known for {url.split(':', 1)[0]}")


def job_store(url: str, *, watch: DatabaseWatch | None = None, retry: float = 10.0) -> BaseJobStore:
    """A job store in the bot's database (memory only for an in-memory SQLite database)."""
    if ":memory:" in url or url.rstrip("/").endswith("sqlite+aiosqlite:"):
        return MemoryJobStore()
    target = sync_url(url)
    # No pool: a connection per job-store call (a few per router run), closed on the scheduler thread
    # itself, so nothing is left open when the scheduler shuts down mid-call.
    if target.startswith("sqlite"):
        connect_args: dict[str, Any] = {"timeout": 30}
    else:
        connect_args = {} if "connect_timeout=" in target else {"connect_timeout": 10}
    engine = sqlalchemy.create_engine(target, connect_args=connect_args, poolclass=NullPool)
    return SteadyJobStore(engine=engine, watch=watch or DatabaseWatch(), retry=retry)


class SteadyJobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """APScheduler's job table, riding out database outages.

    APScheduler 3 logs a warning every `jobstore_retry_interval` while `get_due_jobs` fails, and its
    scheduler thread dies if a later call of the same round (`update_job`, `get_next_run_time`) raises.
    Here an unreachable database is noted once on the shared watch and the round is skipped: no job is
    due, and the scheduler looks again after `retry` seconds. Any other error is raised as before.
    """

    def __init__(self, *, engine: sqlalchemy.Engine, watch: DatabaseWatch, retry: float) -> None:
        super().__init__(engine=engine)
        self._watch = watch
        self._retry = retry

    def get_due_jobs(self, now: datetime) -> list[Any]:
        """Jobs due at `now`; none while the database is unreachable."""
        try:
            jobs: list[Any] = super().get_due_jobs(now)
        except Exception as e:
            if not self._watch.lost(e, during="reading the scheduler's job table"):
                raise
            return []
        self._watch.ok()
        return jobs

    def get_next_run_time(self) -> datetime | None:
        """When the next job is due; soon, to look again, while the database is unreachable."""
        try:
            found: datetime | None = super().get_next_run_time()
        except Exception as e:
            if not self._watch.lost(e, during="reading the scheduler's job table"):
                raise
            return datetime.now(UTC) + timedelta(seconds=self._retry)
        return found

    def update_job(self, job: Any) -> None:
        """Store a job's next run time; while the database is unreachable the job is simply due again later."""
        try:
            super().update_job(job)
        except Exception as e:
            if not self._watch.lost(e, during="updating the scheduler's job table"):
                raise


class LoopExecutor(BaseExecutor):  # type: ignore[misc]
    """Runs each due job's registered coroutine on the bot's event loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, handlers: Mapping[str, Handler], *, watch: DatabaseWatch | None = None
    ) -> None:
        super().__init__()
        self._loop = loop
        self._handlers = dict(handlers)
        self._watch = watch or DatabaseWatch()
        self._futures: set[concurrent.futures.Future[list[JobExecutionEvent]]] = set()

    def submit_job(self, job: Any, run_times: list[datetime]) -> None:
        """Start a run unless the previous one is still going (a long router pass is normal, not a warning)."""
        assert self._lock is not None, "the scheduler starts the executor first"
        with self._lock:
            if self._instances[job.id] >= job.max_instances:
                log.debug("scheduled job %s is still running; this run is skipped", job.id)
                return
        super().submit_job(job, run_times)

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        handler = self._handlers.get(job.id)
        if handler is None:
            raise LookupError(f"no handler for scheduled job {job.id!r}")
        fut = asyncio.run_coroutine_threadsafe(self._run(job.id, job._jobstore_alias, run_times, handler), self._loop)
        self._futures.add(fut)

        def finished(f: concurrent.futures.Future[list[JobExecutionEvent]]) -> None:
            self._futures.discard(f)
            if f.cancelled():
                self._run_job_error(job.id, asyncio.CancelledError(), None)
                return
            self._run_job_success(job.id, f.result())

        fut.add_done_callback(finished)

    async def _run(
        self, job_id: str, alias: str, run_times: list[datetime], handler: Handler
    ) -> list[JobExecutionEvent]:
        # Coalesced: one run stands for every missed one.
        run_time = run_times[-1]
        try:
            await handler()
        except Exception as e:
            # The job boundary: log once with the traceback; the next run tries again. A database
            # outage is no bug: the watch logs it once for all, and runs are skipped until it ends.
            if not self._watch.lost(e, during=f"running {job_id}"):
                log.exception("scheduled job %s failed", job_id)
            return [JobExecutionEvent(EVENT_JOB_ERROR, job_id, alias, run_time, exception=e)]
        self._watch.ok()
        return [JobExecutionEvent(EVENT_JOB_EXECUTED, job_id, alias, run_time)]

    def pending(self) -> list[concurrent.futures.Future[list[JobExecutionEvent]]]:
        """Runs still in flight."""
        return list(self._futures)


class ModerationScheduler:
    """Schedules the router every `router_interval_seconds` and retention every few hours."""

    def __init__(
        self,
        *,
        database_url: str,
        router: Handler,
        retention: Handler,
        router_interval: float,
        retention_interval: float = 6 * 3600.0,
        watch: DatabaseWatch | None = None,
    ) -> None:
        self._url = database_url
        #: Shared with the spool and the services: a database outage is logged once, not once per run.
        self._watch = watch or DatabaseWatch()
        self._handlers = {ROUTER_JOB: router, RETENTION_JOB: retention}
        self._router_interval = router_interval
        self._retention_interval = retention_interval
        self._scheduler: BackgroundScheduler | None = None
        self._executor: LoopExecutor | None = None

    @property
    def running(self) -> bool:
        """Whether the scheduler thread is running."""
        return self._scheduler is not None

    async def start(self) -> None:
        """Store (or refresh) the jobs in the database and start the scheduler thread."""
        if self._scheduler is not None:
            return
        self._executor = LoopExecutor(asyncio.get_running_loop(), self._handlers, watch=self._watch)
        retry = min(self._router_interval, 10.0)
        scheduler = BackgroundScheduler(
            jobstores={"default": job_store(self._url, watch=self._watch, retry=retry)},
            executors={"default": self._executor},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        now = datetime.now(UTC)
        # replace_existing: a changed interval in the config takes effect; the first router run is now,
        # so work left by a crashed process is picked up at once.
        scheduler.add_job(
            scheduled_job,
            "interval",
            seconds=self._router_interval,
            id=ROUTER_JOB,
            name="moderation router",
            replace_existing=True,
            next_run_time=now,
        )
        scheduler.add_job(
            scheduled_job,
            "interval",
            seconds=self._retention_interval,
            id=RETENTION_JOB,
            name="moderation retention",
            replace_existing=True,
            next_run_time=now,
        )
        await asyncio.to_thread(scheduler.start)
        self._scheduler = scheduler
        log.info("moderation router scheduled every %.1f s", self._router_interval)

    async def stop(self) -> None:
        """Stop scheduling, let a running job finish briefly, then cancel it."""
        scheduler, executor = self._scheduler, self._executor
        self._scheduler = None
        if scheduler is None or executor is None:
            return
        await asyncio.to_thread(scheduler.shutdown, False)
        waiting = [asyncio.wrap_future(f) for f in executor.pending()]
        if waiting:
            _done, late = await asyncio.wait(waiting, timeout=STOP_GRACE)
            for f in late:
                f.cancel()
            if late:
                await asyncio.wait(late, timeout=5)
