"""A throwaway PostgreSQL server of the test's own, so a test can stop the database for real.

The shared server (`SCOPEBOT_TEST_POSTGRES_URL`) serves every other test, and other test runs on the same
machine: stopping it would break them, and a failed restart would break the rest of the run. So the
outage tests start their own cluster (`initdb` into a temporary folder, `pg_ctl start` on a free
loopback port, trust authentication), stop it with `pg_ctl stop -m fast` exactly as an operator or a
crash would take a server away (sessions terminated, new connections refused), and start it again.
As root (CI, this machine) the server runs as the `postgres` user, which PostgreSQL requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]


def _bindir() -> Path | None:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return versions[-1].parent if versions else None


def unavailable() -> str | None:
    """Why no private server can be started here, or None when it can."""
    if _bindir() is None:
        return "PostgreSQL's server programs (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no 'postgres' user to run PostgreSQL as"
        if _runuser() is None:
            return "running as root, and there is no 'runuser' to run PostgreSQL as the postgres user"
    return None


def _runuser() -> str | None:
    """util-linux's runuser, also when PATH leaves out the sbin folders (a minimal environment)."""
    return shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One private cluster: `start()`, `stop()`, databases created on demand; `close()` removes it all."""

    def __init__(self) -> None:
        bindir = _bindir()
        assert bindir is not None, unavailable()
        self._bin = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="scopebot-pg-"))
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            runuser = _runuser()
            assert runuser is not None, unavailable()
            self._as = [runuser, "-u", "postgres", "--"]
        self.port = _free_port()
        self.running = False
        self._run("initdb", "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self._as, str(self._bin / program), *args], capture_output=True, text=True, check=False, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.folder / "data"), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )
        self.running = True

    def stop(self) -> None:
        """Stop the server the way an operator does: open sessions are terminated, new connections refused."""
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")
        self.running = False

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of one of its databases."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    def close(self) -> None:
        """Stop the server if it runs and delete its files."""
        try:
            if self.running:
                self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


async def accepting(server: PostgresServer, *, within: float = 30.0) -> None:
    """Wait until the server answers a query (after `start()`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{server.port}/postgres", timeout=2)
            await conn.close()
            return
        if loop.time() > deadline:
            raise TimeoutError(f"PostgreSQL on port {server.port} did not come back within {within:g} s")
        await asyncio.sleep(0.1)
