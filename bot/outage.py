"""Telling a database outage from a real failure, and logging an outage once when it starts and once when it ends."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from bot.db import DatabaseUnavailable

log = logging.getLogger(__name__)

#: SQLSTATEs that mean "the server is not there right now": connection exceptions (class 08), the server
#: shutting down or starting up (57P01–57P03), too many connections (53300).
_UNREACHABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")
#: SQLite errors that pass (a lock held too long, a full or failing disk); any other OperationalError
#: from SQLite ("no such table", a syntax error) is a bug, not an outage.
_SQLITE_PASSING = ("database is locked", "unable to open database", "disk i/o error", "disk is full")


def unreachable(error: BaseException) -> bool:
    """Whether `error` means the database cannot be reached now (trying later may work), not a bug or bad data."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        # OSError covers refused and reset connections and timeouts (TimeoutError is an OSError).
        if isinstance(e, DatabaseUnavailable | OSError):
            return True
        if isinstance(e, DBAPIError):
            if e.connection_invalidated or isinstance(e, InterfaceError):
                return True
            if isinstance(e, OperationalError):
                if not type(e.orig).__module__.startswith("sqlite3"):
                    return True
                return any(s in str(e.orig).lower() for s in _SQLITE_PASSING)
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(state, str) and state.startswith(_UNREACHABLE_STATES):
            return True
        e = getattr(e, "orig", None) or e.__cause__
    return False


class DatabaseWatch:
    """Whether the database is reachable, as the last attempt found it; each change is logged once.

    Several parts notice an outage (the spool, the router, APScheduler's thread reading its job table), so
    the state is shared and guarded by a lock: the first to notice logs it, the first to succeed again
    logs the recovery, and nobody logs once per failed attempt.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_since: float | None = None
        #: Outages seen since start (for tests and metrics).
        self.outages = 0

    @property
    def down(self) -> bool:
        """Whether the last attempt found the database unreachable."""
        return self._down_since is not None

    def lost(self, error: BaseException, *, during: str) -> bool:
        """Note `error` if it means the database is unreachable (logged at the first one); False for any other error."""
        if not unreachable(error):
            return False
        with self._lock:
            if self._down_since is not None:
                return True
            self._down_since = time.monotonic()
            self.outages += 1
        log.warning(
            "the database is unreachable (noticed while %s: %s); answers and reports are kept until it returns, "
            "and the review queue waits",
            during,
            _describe(error),
        )
        return True

    def ok(self) -> None:
        """A database call just worked: log the recovery if the database was down."""
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            log.info("the database is reachable again after %.0f s", time.monotonic() - since)


def _describe(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
