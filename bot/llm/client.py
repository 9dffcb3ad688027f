"""The bot's side of the model worker: a bounded queue, one generation at a time, timeouts, restarts."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.fairqueue import FairQueue, QueueFull
from bot.llm.engine import ModelLoadError, SamplingParams
from bot.llm.prompt import PromptParts

log = logging.getLogger(__name__)

#: Seconds the worker may take to load the model before we give up on it.
LOAD_TIMEOUT = 300.0
#: Seconds a cancelled generation may take to stop before the worker is killed and restarted.
CANCEL_GRACE = 5.0


class ModelUnavailable(Exception):
    """No model is loaded (none configured, or it failed to load)."""


class ModelBusy(Exception):
    """The question queue is full."""

    def __init__(self, waiting: int) -> None:
        super().__init__(f"{waiting} questions are waiting for the model")
        self.waiting = waiting


class ModelFailed(Exception):
    """The generation failed: the worker crashed, timed out or reported an error."""


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How to start the worker process."""

    model_path: Path
    context_length: int
    threads: int
    batch_size: int
    max_new_tokens: int
    lib: str = ""
    #: `ctransformers` or `llama.cpp` (see `bot.llm.engine.ENGINES`).
    engine: str = "ctransformers"
    timeout_seconds: float = 180.0
    queue_size: int = 32


@dataclass(slots=True)
class Generation:
    """One answer in the making: text arrives on `chunks`; stats fill in as the worker reports them."""

    id: str
    parts: PromptParts
    params: SamplingParams
    #: Questions ahead of this one when it was queued (0: next in line).
    ahead: int = 0
    chunks: asyncio.Queue[str | BaseException | None] = field(default_factory=asyncio.Queue)
    prompt_tokens: int = 0
    passages_used: tuple[int, ...] = ()
    question_truncated: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    cancelled: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def stream(self) -> AsyncIterator[str]:
        """Yield text as it arrives; raise `ModelFailed` if the worker fails."""
        while True:
            item = await self.chunks.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    @property
    def queue_ms(self) -> float:
        """Milliseconds spent waiting for the model."""
        if self.started_at is None:
            return 0.0
        return (self.started_at - self.queued_at) * 1000


class ModelWorker:
    """Owns the worker process: starts it, feeds it one generation at a time, restarts it when it dies."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.info: dict[str, Any] = {}
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        # Per-platform bounded lines, served fairly across platforms and members.
        self._queue: FairQueue[Generation] = FairQueue(settings.queue_size)
        self._current: Generation | None = None
        self._ids = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._reader: asyncio.Task[None] | None = None
        self._stderr: asyncio.Task[None] | None = None
        self._stopping = False
        self._ready = asyncio.Event()

    @property
    def waiting(self) -> int:
        """Questions queued behind the one being answered."""
        return self._queue.qsize()

    @property
    def running(self) -> bool:
        """Whether a generation is being worked on right now."""
        return self._current is not None

    @property
    def alive(self) -> bool:
        """Whether the worker process is running and has loaded the model."""
        return self._proc is not None and self._proc.returncode is None and self._ready.is_set()

    async def start(self) -> None:
        """Start the worker and wait for the model to load; `ModelLoadError` if it cannot."""
        await self._spawn()
        self._tasks.append(asyncio.create_task(self._serve(), name="model-worker-queue"))

    async def _spawn(self) -> None:
        s = self.settings
        payload = json.dumps(
            {
                "model_path": str(s.model_path),
                "context_length": s.context_length,
                "threads": s.threads,
                "batch_size": s.batch_size,
                "max_new_tokens": s.max_new_tokens,
                "lib": s.lib,
                "engine": s.engine,
            }
        )
        self._ready.clear()
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.llm.worker",
            payload,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 22,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        proc = self._proc
        assert proc.stdout is not None and proc.stderr is not None
        self._stderr = asyncio.create_task(self._drain_stderr(proc.stderr), name="model-worker-stderr")
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), LOAD_TIMEOUT)
        except TimeoutError:
            await self._kill()
            raise ModelLoadError(f"the model took longer than {LOAD_TIMEOUT:.0f} s to load") from None
        msg = _parse(line)
        if msg is None or msg.get("ev") != "ready":
            await proc.wait()
            error = msg.get("error") if msg else None
            raise ModelLoadError(str(error or f"the model worker exited with status {proc.returncode} while loading"))
        self.info = dict(msg.get("info", {}))
        self._ready.set()
        self._reader = asyncio.create_task(self._read(proc.stdout), name="model-worker-reader")
        log.info(
            "model loaded: %s in %.0f ms (worker pid %s)",
            self.info.get("description"),
            self.info.get("load_ms", 0),
            proc.pid,
        )

    def submit(self, parts: PromptParts, params: SamplingParams, *, lane: str = "", user: str = "") -> Generation:
        """Queue a generation in `lane` (a platform) for `user`; `ModelBusy` when that lane is full."""
        if self._stopping:
            raise ModelUnavailable("the model is shutting down")
        gen = Generation(id=f"g{next(self._ids)}", parts=parts, params=params)
        try:
            position = self._queue.put(gen, lane=lane, user=user)
        except QueueFull as e:
            raise ModelBusy(e.waiting) from None
        gen.ahead = position + (1 if self._current is not None else 0)
        return gen

    def position(self, gen: Generation) -> int:
        """Questions that will be answered before `gen` (0 when it is next or running)."""
        waiting = self._queue.position(gen)
        if waiting < 0:
            return 0
        return waiting + (1 if self._current is not None else 0)

    def cancel(self, gen: Generation) -> None:
        """Stop `gen`: drop it from the line, or tell the worker to stop generating it."""
        gen.cancelled = True
        if self._queue.remove(gen):
            gen.chunks.put_nowait(ModelFailed("cancelled"))
            return
        if self._current is gen and self._proc is not None and self._proc.stdin is not None:
            self._send({"op": "cancel", "id": gen.id})

    async def _serve(self) -> None:
        while True:
            gen = await self._queue.get()
            if gen.cancelled:
                gen.chunks.put_nowait(ModelFailed("cancelled"))
                continue
            self._current = gen
            gen.started_at = time.monotonic()
            try:
                await self._run(gen)
            finally:
                self._current = None

    async def _run(self, gen: Generation) -> None:
        if not self.alive:
            try:
                await self._restart()
            except ModelLoadError as e:
                gen.chunks.put_nowait(ModelFailed(f"the model could not be restarted: {e}"))
                return
        self._send({"op": "generate", "id": gen.id, "parts": gen.parts.as_dict(), "params": asdict(gen.params)})
        # asyncio.timeout, not wait_for: on 3.11, wait_for can swallow a cancellation that arrives as
        # the awaited event fires, which would leave this task running after stop() cancelled it.
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                await gen.done.wait()
            return
        except TimeoutError:
            log.warning("generation %s exceeded %.1f s; cancelling it", gen.id, self.settings.timeout_seconds)
            self.cancel(gen)
            gen.chunks.put_nowait(ModelFailed(f"the answer took longer than {self.settings.timeout_seconds:g} s"))
        try:
            async with asyncio.timeout(CANCEL_GRACE):
                await gen.done.wait()
        except TimeoutError:
            log.error("model worker did not stop generation %s within %.0f s; restarting it", gen.id, CANCEL_GRACE)
            await self._kill()

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        while line := await stdout.readline():
            msg = _parse(line)
            gen = self._current
            if msg is None or gen is None or msg.get("id") != gen.id:
                continue
            ev = msg.get("ev")
            if ev == "text":
                gen.chunks.put_nowait(str(msg.get("text", "")))
            elif ev == "start":
                gen.prompt_tokens = int(msg.get("prompt_tokens", 0))
                gen.passages_used = tuple(int(i) for i in msg.get("passages_used", ()))
                gen.question_truncated = bool(msg.get("question_truncated"))
            elif ev == "done":
                gen.stats = dict(msg.get("stats", {}))
                gen.chunks.put_nowait(None)
                gen.done.set()
            elif ev == "error":
                gen.chunks.put_nowait(ModelFailed(str(msg.get("error"))))
                gen.done.set()
        # EOF: the worker died (or was stopped).
        self._ready.clear()
        gen = self._current
        if gen is not None and not gen.done.is_set():
            gen.chunks.put_nowait(ModelFailed("the model worker stopped unexpectedly"))
            gen.done.set()
        if not self._stopping:
            code = await self._proc.wait() if self._proc is not None else None
            log.error("model worker exited unexpectedly (status %s); it restarts with the next question", code)

    async def _restart(self) -> None:
        await self._kill()
        self.restarts += 1
        delay = min(30.0, 0.5 * 2 ** min(self.restarts - 1, 6))
        log.warning("restarting the model worker (restart %d) in %.1f s", self.restarts, delay)
        await asyncio.sleep(delay)
        await self._spawn()

    async def _drain_stderr(self, stderr: asyncio.StreamReader) -> None:
        while line := await stderr.readline():
            text = line.decode("utf-8", errors="replace").rstrip()
            if text:
                log.debug("model worker: %s", text)

    def _send(self, msg: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            proc.stdin.write((json.dumps(msg, ensure_ascii=False) + "\n").encode("utf-8"))

    async def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await self._join_io()

    async def _join_io(self) -> None:
        for task in (self._reader, self._stderr):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 5)
        self._reader = self._stderr = None

    async def stop(self) -> None:
        """Cancel what is waiting, let the worker finish or stop, and end the process."""
        self._stopping = True
        current = self._current
        if current is not None:
            self.cancel(current)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for waiting in self._queue.drain():
            waiting.chunks.put_nowait(ModelFailed("the bot is shutting down"))
        if current is not None and not current.done.is_set():
            current.chunks.put_nowait(ModelFailed("the bot is shutting down"))
            current.done.set()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            self._send({"op": "shutdown"})
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), CANCEL_GRACE)
            except TimeoutError:
                await self._kill()
        await self._join_io()


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        msg = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return msg if isinstance(msg, dict) else None
