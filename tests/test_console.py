"""The console adapter: the embedded default, driven by a script on standard input."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.console import ConsoleAdapter
from adapters.console_edge import WORKSPACE, Post, Problem, Session, parse_line
from bot.events import FLAG, CardAction, CommandInvoked, Event, MessageRef, OutboundMessage, Place, ReactionAdded
from tests.cli_support import run_scopebot
from tests.conftest import ROOT


def test_readme_acceptance_answers_from_passages_and_refuses(tmp_path: Path) -> None:
    proc = run_scopebot(
        "run",
        "--config",
        str(ROOT / "scopebot.example.toml"),
        stdin="What is the tuition?\nWrite me a poem about the sea\n",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "[1] dm you: What is the tuition?"
    answer = "\n".join(out[1 : out.index("[3] dm you: Write me a poem about the sea")])
    assert answer.startswith("[2] dm scopebot ↳[1]: From my sources:")
    assert "$42,300" in answer and "costs-and-aid.md" in answer
    assert (
        out[-1]
        == "[4] dm scopebot ↳[3]: That's not a college data question. I can only answer questions about Northgate College."
    )
    # Said once, clearly, how to configure a model.
    assert proc.stderr.count("No model is configured") == 1
    assert "set `path` under [model]" in proc.stderr
    # The default database is a SQLite file in the working directory, holding the provenance.
    with sqlite3.connect(tmp_path / "scopebot.db") as db:
        rows = db.execute("select verdict, scope, model from bot_answer order by id").fetchall()
    assert rows == [("answer", "college", "none"), ("refuse", "college", "none")]


def test_a_second_run_on_the_same_database_answers(tmp_path: Path) -> None:
    # Message numbers start at 1 again every run; the second run's first answer used to collide with the
    # first run's record ("UNIQUE constraint failed: bot_answer_part.message_key") and the member got the
    # apology. Each run is its own console workspace, so its records (answers, and cases of flags on them)
    # never meet an earlier run's.
    config = str(ROOT / "scopebot.example.toml")
    for _ in range(2):
        proc = run_scopebot("run", "--config", config, stdin="What is the tuition?\n", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "[2] dm scopebot ↳[1]: From my sources:" in proc.stdout, proc.stdout
        assert "Traceback" not in proc.stderr and "IntegrityError" not in proc.stderr
    with sqlite3.connect(tmp_path / "scopebot.db") as db:
        rows = db.execute("select workspace, verdict from bot_answer order by id").fetchall()
    assert [v for _, v in rows] == ["answer", "answer"] and rows[0][0] != rows[1][0]


def test_hostile_messages_with_the_tiny_model_get_replies_and_no_crash(tmp_path: Path, tiny_gguf: Path) -> None:
    script = "".join(
        ["😀🎉🔥👍" * 40 + "\n", "中" * 5000 + "\n", ("tuition " * 12_500)[:100_000] + "\n", "What is the tuition?\n"]
    )
    proc = run_scopebot(
        "run", "--config", str(ROOT / "scopebot.example.toml"), "--model", str(tiny_gguf), stdin=script, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    replies = [line for line in proc.stdout.splitlines() if line.startswith("[") and " dm scopebot ↳[" in line]
    assert [r.split("↳[")[1].split("]")[0] for r in replies] == ["1", "3", "5", "7"]
    assert "Traceback" not in proc.stderr
    with sqlite3.connect(tmp_path / "scopebot.db") as db:
        rows = db.execute("select verdict, model, length(question) from bot_answer order by id").fetchall()
    assert len(rows) == 4
    assert rows[2][2] == 100_000
    assert all(v in ("answer", "refuse", "block") for v, _, _ in rows)
    assert rows[3][:2] == ("answer", "tiny.gguf")


def test_console_commands_parse_into_events() -> None:
    session = Session(user="alice", channel="general")
    ref = MessageRef(Place("console", WORKSPACE, "general"), "3")
    lookup = {3: ref}
    post = parse_line("@scopebot how much is tuition?", session, bot_name="scopebot", lookup=lookup)
    assert isinstance(post, Post) and post.mentions_bot and post.text == "how much is tuition?"
    flag = parse_line("/flag 3", session, bot_name="scopebot", lookup=lookup)
    assert (
        isinstance(flag, ReactionAdded)
        and flag.emoji == FLAG
        and flag.target == ref
        and flag.reactor.user_id == "alice"
    )
    press = parse_line("/press 7 add_word free money", session, bot_name="scopebot", lookup=lookup)
    assert isinstance(press, CardAction) and (press.case_id, press.action, press.argument) == (
        7,
        "add_word",
        "free money",
    )
    cmd = parse_line("/scopebot cases", session, bot_name="scopebot", lookup=lookup)
    assert isinstance(cmd, CommandInvoked) and cmd.text == "cases"
    assert isinstance(parse_line("/flag 99", session, bot_name="scopebot", lookup=lookup), Problem)
    assert isinstance(parse_line("/nonsense", session, bot_name="scopebot", lookup=lookup), Problem)
    assert parse_line("   ", session, bot_name="scopebot", lookup=lookup) is None


async def test_console_numbers_messages_and_streams_edits_in_place() -> None:
    out = io.StringIO()
    console = ConsoleAdapter(
        stdin=io.StringIO("hello\n/in #general\nnot for the bot\n/quit\nnever read\n"), stdout=out, interactive=False
    )
    seen: list[Event] = []

    async def sink(event: Event) -> None:
        seen.append(event)

    await console.start(sink)
    await console.run()
    assert [getattr(e, "text", None) for e in seen] == ["hello", "not for the bot"]
    ref = await console.send(OutboundMessage(Place("console", WORKSPACE, "general"), "partial …"))
    await console.edit(ref, "partial answer")
    assert "[3] #general scopebot: partial …" in out.getvalue()
    assert "[3] (edited) scopebot: partial answer" in out.getvalue()
    fetched = await console.fetch_message(ref)
    assert fetched is not None and fetched.text == "partial answer"
    await console.delete(ref)
    assert await console.fetch_message(ref) is None


@pytest.mark.parametrize("line", ["/wait abc", "/as", "/press x y", "/react 1"])
def test_console_explains_bad_commands(line: str) -> None:
    parsed = parse_line(
        line, Session(), bot_name="scopebot", lookup={1: MessageRef(Place("console", WORKSPACE, "dm"), "1")}
    )
    assert isinstance(parsed, Problem) and parsed.text.startswith("usage:")


def test_input_arriving_after_the_bot_stopped_is_dropped_quietly() -> None:
    # A line typed (or piped) after shutdown reaches the input thread when the event loop is already
    # closed; the thread must end quietly, not die with "Event loop is closed".
    release = threading.Event()
    done = threading.Event()
    errors: list[BaseException] = []

    class SlowInput:
        def __iter__(self) -> Iterator[str]:
            release.wait(5)
            try:
                yield "hello\n"
                yield "again\n"
            finally:
                done.set()

    console = ConsoleAdapter(stdin=SlowInput(), stdout=io.StringIO(), interactive=False)  # type: ignore[arg-type]

    async def start_reading() -> None:
        console._read_lines()

    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value or RuntimeError("?"))
    try:
        asyncio.run(start_reading())  # the loop is closed when this returns
        release.set()
        assert done.wait(5)
    finally:
        threading.excepthook = previous
    assert errors == []
