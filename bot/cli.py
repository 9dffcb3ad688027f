"""The `scopebot` command line: run the bot, migrate the database, and the operator tools."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from bot import __version__, db
from bot.config import DATABASE_URL_ENV as db_env
from bot.config import Config, ConfigError, load_config
from bot.events import Platform, PlatformError
from bot.logs import setup_logging

log = logging.getLogger(__name__)

#: Modules that add subcommands: each has `add_commands(subparsers)`; each command sets `func`.
COMMAND_MODULES = ("bot.gate.cli", "moderation.cli")

EXIT_CONFIG = 2
EXIT_RUNTIME = 1


class CredentialsError(Exception):
    """A platform token is missing or rejected; the message names the environment variable."""


def add_config_args(p: argparse.ArgumentParser) -> None:
    """`--config`, shared by every subcommand that reads the operator file."""
    p.add_argument("--config", type=Path, default=Path("scopebot.toml"), help="operator file (default: scopebot.toml)")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(prog="scopebot", description="A moderated, scoped LLaMA-2 chat bot.")
    parser.add_argument("--version", action="version", version=f"scopebot {__version__}")
    parser.add_argument("--log-level", default=os.environ.get("SCOPEBOT_LOG_LEVEL", "INFO"))
    parser.add_argument("--json-logs", action="store_true", help="log JSON lines (for log shippers)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the bot on every platform whose credentials are set (else the console)")
    add_config_args(run)
    run.add_argument("--model", type=Path, help="a LLaMA-2 .gguf file (overrides [model] in the config)")
    run.add_argument("--console", action="store_true", help="also start the console, even with platform credentials")
    run.set_defaults(func=cmd_run)

    dbp = sub.add_parser("db", help="database migrations")
    dbsub = dbp.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="apply migrations up to the newest")
    add_config_args(up)
    up.set_defaults(func=cmd_db_upgrade)
    cur = dbsub.add_parser("current", help="show the database's migration revision")
    add_config_args(cur)
    cur.set_defaults(func=cmd_db_current)

    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `scopebot` console script."""
    args = build_parser().parse_args(argv)
    setup_logging(level=args.log_level, json_lines=args.json_logs)
    func: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.func
    try:
        return asyncio.run(func(args))
    except ConfigError as e:
        print(f"scopebot: error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except CredentialsError as e:
        print(f"scopebot: error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except db.DatabaseUnavailable as e:
        print(
            f"scopebot: error: {e}. Check [database] url (or {db_env}) and that the server is running.", file=sys.stderr
        )
        return EXIT_RUNTIME
    except PlatformError as e:
        # A platform that cannot start (unreachable, port taken): one line, not a traceback.
        print(f"scopebot: error: {e}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return 130


def load(args: argparse.Namespace) -> Config:
    """The configuration named on the command line."""
    return load_config(args.config, model_path=getattr(args, "model", None))


async def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """`scopebot db upgrade`."""
    config = load(args)
    engine = db.create_engine(config.database.url)
    try:
        await db.upgrade(engine)
        print(f"database {db.safe_url(engine)} is at revision {await db.current_revision(engine)}")
    finally:
        await engine.dispose()
    return 0


async def cmd_db_current(args: argparse.Namespace) -> int:
    """`scopebot db current`."""
    config = load(args)
    engine = db.create_engine(config.database.url)
    try:
        with db.reraise_unavailable(engine):
            rev = await db.current_revision(engine)
        head = db.head_revision()
        state = "up to date" if rev == head else f"behind (newest is {head}; run `scopebot db upgrade`)"
        print(f"database {db.safe_url(engine)} is at revision {rev or 'none'}: {state}")
    finally:
        await engine.dispose()
    return 0


def select_platforms(env: Mapping[str, str], config: Config, *, console: bool) -> list[Platform]:
    """Every platform whose credentials are set; the console when none are (or when asked)."""
    platforms: list[Platform] = []
    if env.get("SLACK_BOT_TOKEN") or env.get("SLACK_APP_TOKEN") or env.get("SLACK_SIGNING_SECRET"):
        from adapters.slack import SlackAdapter

        platforms.append(SlackAdapter.from_env(env, config))
    if env.get("DISCORD_TOKEN"):
        from adapters.discord import DiscordAdapter

        platforms.append(DiscordAdapter.from_env(env, config))
    if console or not platforms:
        from adapters.console import ConsoleAdapter

        platforms.append(
            ConsoleAdapter(stdin=sys.stdin, stdout=sys.stdout, interactive=sys.stdin.isatty(), bot_name=config.bot.name)
        )
    return platforms


async def cmd_run(args: argparse.Namespace) -> int:
    """`scopebot run`: serve until end of console input, Ctrl-C or SIGTERM."""
    from adapters.console import ConsoleAdapter
    from bot.app import build_app
    from bot.ops import ops_settings_from_env

    config = load(args)
    platforms = select_platforms(os.environ, config, console=args.console)
    app = build_app(config, platforms=platforms, ops=ops_settings_from_env(os.environ))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    waiters: list[asyncio.Task[Any]] = []
    try:
        await app.start()
        console = next((p for p in platforms if isinstance(p, ConsoleAdapter)), None)
        waiters.append(asyncio.create_task(stop.wait(), name="stop-signal"))
        if console is not None:
            waiters.append(asyncio.create_task(console.run(), name="console"))
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Not cancelled first: stopping the console ends its reading after the line in hand, and that
        # line's answer gets the app's drain time to finish like any other platform's.
        await app.stop()
        for t in waiters:
            t.cancel()
        outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome
    return 0
