"""Writes that must survive a database outage: kept in order, in memory and in an append-only file, then replayed.

While the database is unreachable, a caller that must not lose a write (a filed report, an answer's
provenance record) hands it to `Spool.keep()` instead. The record is appended to a JSON-lines file and
fsynced before `keep()` returns, so a crash during the outage loses nothing either; a background task
writes the records in order once the database answers again, backing off while it does not. Replaying
is idempotent (each kind's writer relies on the schema's unique keys), so a record written just before
a crash, whose "done" mark never reached the file, is harmlessly written again after the restart.

Each bot process holds one file (`scopebot-spool-N.jsonl`) under an exclusive `flock`; at start a
process also takes over the files of processes that died, so two bots sharing a folder never write to
the same file and nothing a dead one kept is left behind. A record that fails for a reason other than
the outage (a bug, bad data) is set aside in `scopebot-spool-rejected.jsonl` with the error, not dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bot.config import Config, ConfigError
from bot.db import utcnow
from bot.outage import DatabaseWatch

log = logging.getLogger(__name__)

FILE_PREFIX = "scopebot-spool-"
REJECTED_FILE = "scopebot-spool-rejected.jsonl"
#: Records kept at most; beyond this a write fails loudly rather than filling memory and disk.
MAX_ENTRIES = 10_000
#: Seconds between replay attempts while the database is away: doubling from the first, capped.
RETRY_FIRST = 0.25
RETRY_MAX = 5.0
#: Attempts at a record that fails for a reason other than the outage before it is set aside.
ATTEMPTS = 3

Replay = Callable[[dict[str, Any]], Awaitable[None]]
_NUMBERED = re.compile(rf"^{re.escape(FILE_PREFIX)}(\d+)\.jsonl$")


class SpoolFull(Exception):
    """The spool holds `MAX_ENTRIES` records already; the database has been away too long."""


@dataclass(frozen=True, slots=True)
class Kept:
    """One kept write: its order, kind (which replay writes it), when it was kept, and its data."""

    seq: int
    kind: str
    at: str
    data: dict[str, Any]


def spool_folder(config: Config) -> Path:
    """Where kept records go: `[database] spool_dir`, else next to the SQLite file, else next to the config file."""
    base = config.source.parent
    chosen = config.database.spool_dir
    if chosen is not None:
        return chosen if chosen.is_absolute() else base / chosen
    url = make_url(config.database.url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent
    return base.resolve()


class Spool:
    """Keeps writes while the database is unreachable and replays them, in order, when it returns."""

    def __init__(self, *, folder: Path, watch: DatabaseWatch, max_entries: int = MAX_ENTRIES) -> None:
        self.folder = folder
        self.watch = watch
        self._max = max_entries
        self._replays: dict[str, Replay] = {}
        self._pending: list[Kept] = []
        self._seq = itertools.count(1)
        self._fd: int | None = None
        self.path: Path | None = None
        self._io = asyncio.Lock()
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._task: asyncio.Task[None] | None = None

    def register(self, kind: str, replay: Replay) -> None:
        """Say how a record of `kind` is written to the database (idempotently) when replayed."""
        self._replays[kind] = replay

    @property
    def backlog(self) -> int:
        """Records kept and not yet written."""
        return len(self._pending)

    @property
    def holding(self) -> bool:
        """Whether new writes must be kept too: the database is known to be away, or earlier records still wait."""
        return bool(self._pending) or self.watch.down

    def lost(self, error: BaseException, *, during: str) -> bool:
        """Whether `error` means the database is unreachable (the outage is then noted, and logged once)."""
        return self.watch.lost(error, during=during)

    def pending(self, kind: str) -> list[dict[str, Any]]:
        """The data of every waiting record of `kind`, oldest first."""
        return [k.data for k in self._pending if k.kind == kind]

    async def keep(self, kind: str, data: dict[str, Any]) -> Kept:
        """Append a record to the file (fsynced) and to memory; it is written to the database once it answers."""
        if kind not in self._replays:
            raise LookupError(f"no replay is registered for kept records of kind {kind!r}")
        if self._fd is None:
            raise RuntimeError("the spool is not started")
        if len(self._pending) >= self._max:
            raise SpoolFull(f"{len(self._pending)} records already wait for the database in {self.path}")
        async with self._io:
            entry = Kept(next(self._seq), kind, utcnow().isoformat(), data)
            await asyncio.to_thread(self._append, _line(entry))
            self._pending.append(entry)
            self._empty.clear()
        log.info("kept %s record %d until the database returns (%d waiting)", kind, entry.seq, len(self._pending))
        self._wake.set()
        return entry

    async def start(self) -> None:
        """Take this process's file (and any a dead process left), then replay whatever waits."""
        if self._task is not None:
            return
        try:
            await asyncio.to_thread(self._claim)
        except OSError as e:
            raise ConfigError(
                f"cannot keep records for database outages in {self.folder} ({e.strerror or e}): make it writable, "
                "or set [database] spool_dir to a writable folder"
            ) from None
        if self._pending:
            self._empty.clear()
            log.warning("%d records kept during a database outage are written now (%s)", len(self._pending), self.path)
        self._task = asyncio.create_task(self._replay_loop(), name="spool-replay")

    async def flush(self, *, within: float) -> bool:
        """Wait up to `within` seconds for every kept record to be written; True when none waits."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._empty.wait()
        return not self._pending

    async def stop(self, *, grace: float = 5.0) -> None:
        """Give waiting records a moment if the database is up, stop replaying, release the file."""
        if self._task is None:
            return
        if self._pending and not self.watch.down:
            await self.flush(within=grace)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        async with self._io:
            await asyncio.to_thread(self._release)
        if self._pending:
            log.warning("%d kept records wait in %s; they are written after the next start", self.backlog, self.path)

    # Replaying ----------------------------------------------------------------------------------

    async def _replay_loop(self) -> None:
        delay = RETRY_FIRST
        failures = 0
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            entry = self._pending[0]
            replay = self._replays.get(entry.kind)
            try:
                if replay is None:
                    raise LookupError(f"no replay is registered for kept records of kind {entry.kind!r}")
                await replay(entry.data)
            except Exception as e:
                if self.watch.lost(e, during=f"writing kept {entry.kind} record {entry.seq}"):
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                failures += 1
                if failures < ATTEMPTS and replay is not None:
                    log.warning("kept %s record %d failed (attempt %d): %s", entry.kind, entry.seq, failures, e)
                    await asyncio.sleep(RETRY_FIRST)
                    continue
                log.exception(
                    "kept %s record %d cannot be written: set aside in %s", entry.kind, entry.seq, REJECTED_FILE
                )
                await asyncio.to_thread(self._set_aside, entry, e)
            else:
                self.watch.ok()
            delay = RETRY_FIRST
            failures = 0
            await self._done(entry)

    async def _done(self, entry: Kept) -> None:
        async with self._io:
            self._pending.remove(entry)
            await asyncio.to_thread(self._append, json.dumps({"done": entry.seq}), truncate=not self._pending)
        if not self._pending:
            self._empty.set()
            log.info("every kept record is written")

    # File work (on a worker thread) -------------------------------------------------------------

    def _append(self, line: str, *, truncate: bool = False) -> None:
        fd = self._fd
        if fd is None:
            raise RuntimeError("the spool is not started")
        if truncate:
            # Every record in the file is done: start it afresh rather than let it grow for ever.
            os.ftruncate(fd, 0)
        else:
            os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)

    def _claim(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        numbered = sorted(
            (int(m.group(1)), p) for p in self.folder.iterdir() if (m := _NUMBERED.match(p.name)) is not None
        )
        adopted: list[tuple[Path, int, list[Kept]]] = []
        for _n, path in numbered:
            fd = _lock(path)
            if fd is None:
                continue  # a live process holds it
            entries = _read(path)
            if self._fd is None:
                self._fd, self.path = fd, path
                self._pending.extend(entries)
                _terminate(fd)
            else:
                adopted.append((path, fd, entries))
        if self._fd is None:
            taken = {n for n, _ in numbered}
            for n in itertools.count():
                if n in taken:
                    continue
                path = self.folder / f"{FILE_PREFIX}{n}.jsonl"
                fd = _lock(path)
                if fd is not None:
                    self._fd, self.path = fd, path
                    break
        self._seq = itertools.count(max((k.seq for k in self._pending), default=0) + 1)
        for path, fd, entries in adopted:
            # Copied into this process's file before the dead process's file goes: a crash in between
            # writes some records twice, which replaying tolerates; it never loses one.
            for k in entries:
                moved = Kept(next(self._seq), k.kind, k.at, k.data)
                self._append(_line(moved))
                self._pending.append(moved)
            path.unlink(missing_ok=True)
            os.close(fd)
            if entries:
                log.warning("took over %d kept records from %s, left by a process that stopped", len(entries), path)

    def _release(self) -> None:
        fd, path = self._fd, self.path
        self._fd = None
        if fd is None:
            return
        if not self._pending and path is not None:
            path.unlink(missing_ok=True)  # nothing waits: leave no file behind
        os.close(fd)

    def _set_aside(self, entry: Kept, error: BaseException) -> None:
        record = {"seq": entry.seq, "kind": entry.kind, "at": entry.at, "data": entry.data, "error": repr(error)}
        fd = os.open(self.folder / REJECTED_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)


def _terminate(fd: int) -> None:
    """End a file a crash left mid-line with a newline, so the next record does not join the torn one."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        os.write(fd, b"\n")
        os.fsync(fd)


def _line(entry: Kept) -> str:
    return json.dumps({"seq": entry.seq, "kind": entry.kind, "at": entry.at, "data": entry.data}, ensure_ascii=False)


def _lock(path: Path) -> int | None:
    """Open `path` (creating it) under an exclusive lock; None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The holder may have removed the file between our open and our lock: then this is a stale inode.
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            raise BlockingIOError
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        return None
    return fd


def _read(path: Path) -> list[Kept]:
    """The records in `path` that have no "done" mark, in order; a torn last line (a crash mid-write) is skipped."""
    entries: dict[int, Kept] = {}
    with path.open("rb") as f:
        lines = f.read().split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
            if "done" in item:
                entries.pop(int(item["done"]), None)
            else:
                seq = int(item["seq"])
                entries[seq] = Kept(seq, str(item["kind"]), str(item["at"]), dict(item["data"]))
        except (ValueError, KeyError, TypeError) as e:
            # Written but never fsynced, so never acknowledged to anyone.
            log.warning("%s:%d: skipped an unreadable line (%s)", path, number, e)
    return [entries[seq] for seq in sorted(entries)]
