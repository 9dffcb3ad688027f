"""Moderator commands: `scopebot case …`, `scopebot audit`, `scopebot stats`.

The command line is trusted like the database it opens: actions taken here are recorded under the
operator's name (`--as`, default the login name). This process has no platform connection, so an
action's platform effect (delete, warn, time-out, edit) and the card update are carried out by the
running bot's next router pass.
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import db
from bot.config import Config
from bot.events import Actor
from moderation.actions import ACTIONS, ActionService, normalize_action
from moderation.audit import entries
from moderation.stats import queue_stats, stats_text
from moderation.views import audit_dict, audit_line, case_line, case_record, case_text, list_cases

CASE_STATES = ("unresolved", "open", "routed", "resolved", "all")
_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")


def add_commands(sub: Any) -> None:
    """Register the moderation subcommands on the `scopebot` parser."""
    from bot.cli import add_config_args

    case = sub.add_parser(
        "case",
        help="list, show, export or act on moderation cases",
        description=f"scopebot case list | show N | export N | ACTION N [TEXT]   (ACTION: {', '.join(ACTIONS)})",
    )
    add_config_args(case)
    case.add_argument("what", help="list, show, export, or an action")
    case.add_argument("rest", nargs="*", help="the case number, then any text for the action")
    case.add_argument("--state", choices=CASE_STATES, default="unresolved", help="for `list` (default: unresolved)")
    case.add_argument("--json", action="store_true", help="print JSON")
    case.add_argument("--as", dest="as_user", default=None, help="your name in the audit log (default: login name)")
    case.set_defaults(func=cmd_case)

    aud = sub.add_parser("audit", help="print the moderation audit log")
    add_config_args(aud)
    aud.add_argument("--case", type=int, default=None, help="only entries about this case")
    aud.add_argument("--since", default=None, help="ISO date/time (2026-11-01, 2026-11-01T09:00) or 2h, 7d, 1w ago")
    aud.add_argument("--json", action="store_true", help="print JSON (one list)")
    aud.set_defaults(func=cmd_audit)

    st = sub.add_parser("stats", help="review-queue statistics")
    add_config_args(st)
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=cmd_stats)


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO date/time (UTC if no zone) or a span back from now (`90m`, `2h`, `7d`, `1w`)."""
    now = now or datetime.now(UTC)
    m = _RELATIVE.match(text.strip().lower())
    if m:
        units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
        return now - timedelta(**{units[m.group(2)]: int(m.group(1))})
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SystemExit(
            f"scopebot: error: --since {text!r}: use an ISO date/time like 2026-11-01 or a span like 2h or 7d"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@asynccontextmanager
async def open_database(config: Config) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on `config`'s database for a command that reads it; DatabaseUnavailable when it cannot be
    reached or is not at the newest revision (the command does not migrate it)."""
    engine = db.create_engine(config.database.url)
    try:
        with db.reraise_unavailable(engine):
            rev = await db.current_revision(engine)
        if rev != db.head_revision():
            raise db.DatabaseUnavailable(
                f"the database {db.safe_url(engine)} is at revision {rev or 'none'}, not the newest; "
                "run `scopebot db upgrade` first"
            )
        yield db.sessionmaker(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def _database(args: argparse.Namespace) -> AsyncIterator[tuple[Config, async_sessionmaker[AsyncSession]]]:
    from bot.cli import load

    config = load(args)
    async with open_database(config) as sessions:
        yield config, sessions


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


async def cmd_case(args: argparse.Namespace) -> int:
    """`scopebot case …`."""
    what = args.what.lower()
    if what == "list":
        async with _database(args) as (_config, sessions), sessions() as session:
            cases = await list_cases(session, state=args.state, limit=500)
        if args.json:
            _print_json([{"id": c.id, "state": c.state, "line": case_line(c)} for c in cases])
        else:
            print("\n".join(case_line(c) for c in cases) if cases else f"No {args.state} cases.")
        return 0
    if not args.rest or not args.rest[0].lstrip("#").isdigit():
        print(
            f"scopebot: error: `scopebot case {what}` needs a case number, e.g. `scopebot case {what} 12`",
            file=sys.stderr,
        )
        return 2
    case_id = int(args.rest[0].lstrip("#"))
    if what in ("show", "export"):
        async with _database(args) as (_config, sessions), sessions() as session:
            record = await case_record(session, case_id)
        if record is None:
            print(f"scopebot: error: there is no case #{case_id}", file=sys.stderr)
            return 1
        if what == "export" or args.json:
            _print_json(record)
        else:
            print(case_text(record))
        return 0
    action = normalize_action(what)
    if action not in ACTIONS:
        print(
            f"scopebot: error: unknown case command {what!r}; use list, show, export or one of: {', '.join(ACTIONS)}",
            file=sys.stderr,
        )
        return 2
    user = args.as_user or getpass.getuser()
    actor = Actor("cli", user, user)
    async with _database(args) as (config, sessions):
        outcome = await ActionService(config=config, sessions=sessions).decide(
            actor=actor, case_id=case_id, action=action, argument=" ".join(args.rest[1:])
        )
    print(outcome.text)
    if outcome.ok and outcome.action_id is not None:
        print("The running bot carries it out, and updates the card, on its next router pass.")
    return 0 if outcome.ok else 1


async def cmd_audit(args: argparse.Namespace) -> int:
    """`scopebot audit [--case N] [--since …] [--json]`."""
    since = parse_since(args.since) if args.since else None
    async with _database(args) as (_config, sessions), sessions() as session:
        found = await entries(session, case_id=args.case, since=since)
    if args.json:
        _print_json([audit_dict(e) for e in found])
    elif found:
        print("\n".join(audit_line(e) for e in found))
    else:
        print("No audit entries.")
    return 0


async def cmd_stats(args: argparse.Namespace) -> int:
    """`scopebot stats [--json]`."""
    async with _database(args) as (_config, sessions), sessions() as session:
        stats = await queue_stats(session)
    if args.json:
        _print_json(stats)
    else:
        print(stats_text(stats))
    return 0
