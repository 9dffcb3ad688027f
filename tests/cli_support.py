"""Running the `scopebot` command line (`python -m bot`) as a user would, in a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

#: Settings a developer's shell may hold that would change what the command does.
_AMBIENT = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "DISCORD_TOKEN", "SCOPEBOT_DATABASE_URL")


def run_scopebot(
    *args: str, stdin: str | None = None, cwd: Path = ROOT, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` with `stdin` as its input (none: an empty, closed input); never raises on exit codes."""
    env = {k: v for k, v in os.environ.items() if k not in _AMBIENT} | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )
