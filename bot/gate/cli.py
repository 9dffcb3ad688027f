"""Operator commands for the scope gate: `scopebot check`, `scopebot eval`, `scopebot scope …`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from bot.config import Config, ConfigError, load_config
from bot.events import Actor
from bot.gate.smalltalk import SMALL_TALK_RULE
from bot.gate.tasks import CUT_OFF_RULE


def add_commands(sub: Any) -> None:
    """Register the gate's subcommands on the `scopebot` parser."""
    from bot.cli import add_config_args

    check = sub.add_parser("check", help="screen questions with a scope's gate; one JSON line per question")
    add_config_args(check)
    check.add_argument("--scope", required=True, help="the scope to screen for")
    check.add_argument("--jsonl", type=Path, help='read {"id": …, "text": …} lines from this file ("-" = stdin)')
    check.add_argument("text", nargs="*", help="questions (each argument is one question)")
    check.set_defaults(func=cmd_check)

    ev = sub.add_parser("eval", help="measure a scope on a dataset of questions with expected verdicts")
    add_config_args(ev)
    ev.add_argument("--scope", required=True, help="scope for lines without their own `scope`")
    ev.add_argument("--dataset", type=Path, required=True, help='JSONL: {"id", "text", "expected"[, "scope", "kind"]}')
    ev.set_defaults(func=cmd_eval)

    scope = sub.add_parser("scope", help="show or change scopes at run time (stored in the database, audited)")
    ssub = scope.add_subparsers(dest="scope_command", required=True)
    show = ssub.add_parser("show", help="the scopes in force")
    add_config_args(show)
    show.add_argument("name", nargs="?")
    show.set_defaults(func=cmd_scope)
    refusals = ssub.add_parser(
        "refusals",
        help="questions the scope refused or blocked, newest first: to find what it should have answered",
    )
    add_config_args(refusals)
    refusals.add_argument("name")
    refusals.add_argument("--since", default="7d", help="ISO date/time or a span back from now (2h, 7d, 1w); 7d")
    refusals.add_argument("--limit", type=int, default=100, help="at most this many questions (100)")
    refusals.add_argument(
        "--jsonl", action="store_true", help="print `scopebot eval` dataset lines (expected = the gate's verdict)"
    )
    refusals.set_defaults(func=cmd_refusals)
    for op, helptext, value in (
        ("set", "set a scope's strictness: set NAME strictness 0..1", "KEY VALUE"),
        ("add-word", "block words or phrases in a scope", "WORD"),
        ("remove-word", "unblock words or phrases in a scope", "WORD"),
        ("add-example", "add a question the scope answers (it is answered, and the classifier learns)", "QUESTION"),
        ("remove-example", "remove one of the scope's example questions", "QUESTION"),
        ("add-alias", "add another name people use for the organisation (questions naming it are in scope)", "ALIAS"),
        ("remove-alias", "remove one of the scope's other names", "ALIAS"),
        ("bind", "bind a channel (platform:channel) to a scope", "CHANNEL"),
        ("unbind", "unbind a channel from a scope", "CHANNEL"),
    ):
        p = ssub.add_parser(op, help=helptext)
        add_config_args(p)
        p.add_argument("name")
        p.add_argument("values", nargs="+", metavar=value)
        p.set_defaults(func=cmd_scope)


def _scope_or_exit(config: Config, name: str) -> None:
    try:
        config.scope(name)
    except KeyError:
        raise ConfigError(
            f"{config.source}: no scope {name!r}; scopes: {', '.join(s.name for s in config.scopes)}"
        ) from None


def read_inputs(args: argparse.Namespace, stdin: TextIO) -> list[tuple[Any, str]]:
    """(id, text) pairs from `--jsonl` or the positional texts; ConfigError-style messages on bad lines."""
    if args.jsonl is None:
        if not args.text:
            raise InputError("give questions as arguments or --jsonl FILE")
        return list(enumerate(args.text, start=1))
    try:
        raw = stdin.read() if str(args.jsonl) == "-" else args.jsonl.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"{args.jsonl}: cannot read: {e.strerror}") from None
    from bot.gate.evaluate import DatasetError, text_rows

    try:
        return [(row.get("id", n), row["text"]) for n, row in text_rows(raw, name=str(args.jsonl))]
    except DatasetError as e:
        raise InputError(str(e)) from None


async def _no_database_file(url: str) -> bool:
    """Whether `url` is a SQLite file that does not exist yet: reading must not create an empty one."""
    return url.startswith("sqlite") and not await asyncio.to_thread(os.path.isfile, url.split(":///", 1)[-1])


class InputError(Exception):
    """Input to a command is unusable; the message names the file and line."""


async def _with_database(config: Config, *, regressions_for: str | None = None) -> tuple[Config, list[Any]]:
    """The file's scopes with the database's run-time changes, and (for `eval`) the scope's stored
    regression examples, when a database is there to read; the file alone otherwise."""
    from bot import db
    from bot.gate.evaluate import regression_examples
    from bot.gate.overlay import ScopeAdmin
    from bot.scopes import ScopeRegistry
    from moderation.regressions import regression_rows

    url = config.database.url
    if await _no_database_file(url):
        return config, []
    engine = db.create_engine(url)
    examples: list[Any] = []
    try:
        with db.reraise_unavailable(engine):
            if await db.current_revision(engine) != db.head_revision():
                return config, []
            registry = ScopeRegistry(config)
            sessions = db.sessionmaker(engine)
            await ScopeAdmin(config=config, registry=registry, sessions=sessions).load()
            if regressions_for is not None:
                rows = await regression_rows(sessions, scope=regressions_for)
                examples = regression_examples(rows, scope=regressions_for)
    except db.DatabaseUnavailable as e:
        print(f"scopebot: note: run-time scope changes not applied ({e})", file=sys.stderr)
        return config, []
    finally:
        await engine.dispose()
    return config.model_copy(update={"scopes": registry.all()}), examples


def build_gate(config: Config) -> Any:
    """The full gate for `config`, models loaded once."""
    from bot.gate.embed import Embedder
    from bot.gate.gate import ScopeGate
    from bot.knowledge import KnowledgeIndex

    root = config.source.parent
    knowledge = {s.name: KnowledgeIndex(s.knowledge, root=root) for s in config.scopes}
    path = config.gate.model_path
    if path is not None and not path.is_absolute():
        path = root / path
    embedder = Embedder.load(path, threads=config.gate.threads)
    return ScopeGate(
        embedder=embedder, scopes=config.scopes, knowledge=knowledge, global_blocked=config.bot.blocked_words
    )


async def cmd_check(args: argparse.Namespace) -> int:
    """`scopebot check`: one JSON object per question on standard output."""
    config, _ = await _with_database(load_config(args.config))
    _scope_or_exit(config, args.scope)
    try:
        inputs = read_inputs(args, sys.stdin)
    except InputError as e:
        print(f"scopebot: error: {e}", file=sys.stderr)
        return 2
    gate = build_gate(config)
    results = gate.check(config.scope(args.scope), [text for _, text in inputs])
    for (ident, _), r in zip(inputs, results, strict=True):
        print(json.dumps({"id": ident, "verdict": r.verdict, "reason": r.reason, "score": round(r.score, 4)}))
    return 0


async def cmd_eval(args: argparse.Namespace) -> int:
    """`scopebot eval`: rates per expected verdict and the misclassified questions, stored regressions included."""
    from bot.gate.evaluate import DatasetError, evaluate, load_dataset

    config, stored = await _with_database(load_config(args.config), regressions_for=args.scope)
    _scope_or_exit(config, args.scope)
    try:
        # Questions moderators stored as the bot's faults are replayed with the dataset (kind "regression").
        examples = load_dataset(args.dataset) + stored
        gate = build_gate(config)
        report = evaluate(gate, config, scope=args.scope, examples=examples)
    except DatasetError as e:
        print(f"scopebot: error: {e}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0


async def cmd_scope(args: argparse.Namespace) -> int:
    """`scopebot scope show|set|add-word|remove-word|add-example|remove-example|add-alias|remove-alias|bind|unbind`."""
    from bot import db
    from bot.gate.overlay import ScopeAdmin, ScopeChangeError
    from bot.scopes import ScopeRegistry

    config = load_config(args.config)
    engine = db.create_engine(config.database.url)
    try:
        await db.upgrade(engine)
        registry = ScopeRegistry(config)
        admin = ScopeAdmin(config=config, registry=registry, sessions=db.sessionmaker(engine))
        await admin.load()
        if args.scope_command == "show":
            print(admin.show(args.name))
            return 0
        actor = Actor(platform="cli", user_id=getpass.getuser())
        print(await admin.change(actor=actor, operation=args.scope_command, scope=args.name, args=args.values))
        return 0
    except ScopeChangeError as e:
        print(f"scopebot: error: {e}", file=sys.stderr)
        return 2
    finally:
        await engine.dispose()


async def cmd_refusals(args: argparse.Namespace) -> int:
    """`scopebot scope refusals NAME [--since 7d] [--limit N] [--jsonl]`: what the gate did not answer.

    The operator's view of the gate at work: every question the scope refused or blocked, with the reason,
    so that the questions it should have answered are found (and fixed with knowledge, examples, `aliases`
    or `strictness`). `--jsonl` lines are a `scopebot eval` dataset once "expected" is corrected.
    """
    from sqlmodel import col, select

    from bot.models import BotAnswer
    from moderation.cli import open_database, parse_since

    config = load_config(args.config)
    _scope_or_exit(config, args.name)
    if args.limit < 1:
        print("scopebot: error: --limit must be at least 1", file=sys.stderr)
        return 2
    since = parse_since(args.since)
    if await _no_database_file(config.database.url):
        print("No refused or blocked questions (no database yet).")
        return 0
    query = (
        select(BotAnswer)
        .where(
            col(BotAnswer.scope) == args.name,
            col(BotAnswer.verdict).in_(("refuse", "block")),
            # "hi" and "thanks" are answered with the scope's introduction, and a message cut off mid-sentence is
            # asked for again: nothing for the operator to fix.
            col(BotAnswer.gate_rule).not_like(f"{SMALL_TALK_RULE}%"),
            col(BotAnswer.gate_rule) != CUT_OFF_RULE,
            col(BotAnswer.created_at) >= since,
        )
        .order_by(col(BotAnswer.created_at).desc(), col(BotAnswer.id).desc())
        .limit(args.limit)
    )
    async with open_database(config) as sessions, sessions() as session:
        rows = (await session.execute(query)).scalars().all()
    if args.jsonl:
        for r in rows:
            line = {"id": f"answer-{r.id}", "text": r.question, "expected": r.verdict, "kind": "production"}
            print(json.dumps(line | {"reason": r.reason, "at": r.created_at.isoformat()}, ensure_ascii=False))
        return 0
    if not rows:
        print(f"No refused or blocked questions in scope {args.name} since {since:%Y-%m-%d %H:%M} UTC.")
        return 0
    for r in rows:
        question = " ".join(r.question.split())
        question = question if len(question) <= 200 else question[:199] + "…"
        print(f"{r.created_at:%Y-%m-%d %H:%M} {r.verdict:<6} {question}\n    why: {r.reason}")
    return 0
