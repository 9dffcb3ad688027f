"""End to end on Slack: the real pipeline and tiny GGUF model behind real slack-bolt, against the fake Slack."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from sqlmodel import select

from adapters.slack import SlackAdapter
from adapters.slack_settings import SlackSettings
from bot.app import App, build_app
from bot.config import load_config
from bot.models import BotAnswer
from tests.slack_fakes import (
    APP_TOKEN,
    BOT_TOKEN,
    Failure,
    FakeSlack,
    command_form,
    event_body,
    http_settings,
    mention,
    message,
    signed_post,
)

pytestmark = pytest.mark.slow

REFUSAL = "That's not a college data question."


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@asynccontextmanager
async def running(config_path: Path, settings: SlackSettings) -> AsyncIterator[tuple[App, SlackAdapter]]:
    adapter = SlackAdapter(settings)
    app = build_app(load_config(config_path), platforms=[adapter])
    try:
        await app.start()
        yield app, adapter
    finally:
        await app.stop()


async def answers(app: App) -> list[BotAnswer]:
    async with app.sessions() as session:
        return list((await session.execute(select(BotAnswer).order_by(BotAnswer.id))).scalars())  # type: ignore[arg-type]


def thread_replies(slack: FakeSlack, channel: str, ts: str) -> list[dict[str, Any]]:
    return [m for m in slack.bot_messages(channel) if m.get("thread_ts") == ts]


async def ask(slack: FakeSlack, adapter: SlackAdapter, http: Any, text: str, *, channel: str = "CGENERAL") -> str:
    ts = slack.add_message(channel, "UMEMBER", f"<@UBOT> {text}")
    url = f"http://127.0.0.1:{adapter.port}/slack/events"
    r = await signed_post(http, url, json.dumps(event_body(mention(text, ts=ts, channel=channel))))
    assert r.status == 200
    return ts


async def test_mention_gets_a_scoped_model_answer_in_thread_and_off_topic_gets_the_refusal(
    write_config: Callable[..., Path], tiny_gguf: Path, db_url: str
) -> None:
    async with FakeSlack() as slack, aiohttp.ClientSession() as http:
        async with running(write_config(model=tiny_gguf, db_url=db_url), http_settings(slack)) as (app, adapter):
            assert app.model is not None, app.model_problem
            q1 = await ask(slack, adapter, http, "How much is tuition at Northgate College?")
            q2 = await ask(slack, adapter, http, "Who won the football world cup in 1998?")
            await _wait_answers(app, 2)
            by_question = {a.question_message_id: a for a in await answers(app)}
            answered, refused = by_question[q1], by_question[q2]
        assert answered.verdict == "answer" and answered.model == "tiny.gguf" and answered.completion_tokens > 0
        assert answered.platform == "slack" and answered.workspace == "T0TEAM" and answered.channel == "CGENERAL"
        shown = "\n".join(unescape(m["text"]) for m in thread_replies(slack, "CGENERAL", q1))
        assert shown == answered.answer
        assert refused.verdict == "refuse"
        [refusal] = thread_replies(slack, "CGENERAL", q2)
        assert unescape(refusal["text"]) == REFUSAL
        # Every post of the bot went into a thread; none went to the channel itself.
        assert all(m.get("thread_ts") for m in slack.bot_messages())


async def test_in_a_bound_channel_members_talking_in_each_others_threads_are_left_alone(
    write_config: Callable[..., Path], tiny_gguf: Path
) -> None:
    # #admissions is bound to the college scope: every message there is for the bot, but not a member's reply in the
    # thread of another member's message (Slack's counterpart of a Discord reply to them).
    path = write_config(model=tiny_gguf)
    path.write_text(path.read_text("utf-8").replace('"admissions"]', '"admissions", "slack:CADMISSIONS"]'), "utf-8")
    async with (
        FakeSlack() as slack,
        aiohttp.ClientSession() as http,
        running(path, http_settings(slack)) as (app, adapter),
    ):
        url = f"http://127.0.0.1:{adapter.port}/slack/events"

        async def say(user: str, text: str, thread: str | None = None) -> str:
            ts = slack.add_message("CADMISSIONS", user, text, thread_ts=thread)
            extra = {"thread_ts": thread, "parent_user_id": "UALEX"} if thread else {}
            event = message(text, user=user, channel="CADMISSIONS", ts=ts, **extra)
            assert (await signed_post(http, url, json.dumps(event_body(event)))).status == 200
            return ts

        question = await say("UALEX", "When is the Regular Decision deadline?")
        await _wait_answers(app, 1)
        chat = await say("USAM", "I think it moved this year, check the portal", thread=question)
        follow_up = await say("UALEX", "How much is tuition?", thread=question)
        await _wait_answers(app, 2)
        await asyncio.sleep(0.5)  # time for a third answer, were there one
        rows = await answers(app)
    assert [r.question_message_id for r in rows] == [question, follow_up]
    assert all(m.get("thread_ts") == question for m in slack.bot_messages("CADMISSIONS"))
    assert chat not in {r.question_message_id for r in rows}


async def _wait_answers(app: App, n: int, *, within: float = 90.0) -> list[BotAnswer]:
    deadline = time.monotonic() + within
    while True:
        rows = await answers(app)
        if len(rows) >= n:
            return rows
        assert time.monotonic() < deadline, f"only {len(rows)} answers recorded"
        await asyncio.sleep(0.1)


async def test_rate_limits_server_errors_and_malformed_events_are_survived(
    write_config: Callable[..., Path], tiny_gguf: Path
) -> None:
    async with FakeSlack() as slack, aiohttp.ClientSession() as http:
        async with running(write_config(model=tiny_gguf), http_settings(slack)) as (app, adapter):
            url = f"http://127.0.0.1:{adapter.port}/slack/events"
            # A malformed event is acknowledged and dropped; nothing else happens.
            bad = {"type": "app_mention", "user": "UMEMBER", "text": "<@UBOT> tuition?", "ts": "1.1"}
            assert (await signed_post(http, url, json.dumps(event_body(bad)))).status == 200
            # A 429 with Retry-After is waited out, and the answer arrives.
            slack.fail("chat.postMessage", Failure(status=429, error="ratelimited", retry_after=1))
            q1 = await ask(slack, adapter, http, "How much is tuition?")
            await _wait_answers(app, 1)
            assert thread_replies(slack, "CGENERAL", q1)
            # Slack failing for good (500 after the retries): the apology follows once Slack is back.
            slack.fail("chat.postMessage", Failure(status=500), times=3)
            q2 = await ask(slack, adapter, http, "When is the Regular Decision deadline?")
            apology = app.config.bot.apology
            await slack.wait_for(lambda: thread_replies(slack, "CGENERAL", q2), what="the apology")
            assert [unescape(m["text"]) for m in thread_replies(slack, "CGENERAL", q2)] == [apology]
            # And the bot keeps serving.
            q3 = await ask(slack, adapter, http, "What majors do you offer?")
            await slack.wait_for(lambda: thread_replies(slack, "CGENERAL", q3), what="the next answer")
        posts = slack.calls_to("chat.postMessage")
        assert sum(1 for p in posts if p.get("thread_ts") == q1) >= 2  # the 429'd try and its retry
        assert sum(1 for p in posts if p.get("thread_ts") == q2) == 4  # three 500s, then the apology


async def test_socket_mode_answers_end_to_end(write_config: Callable[..., Path], tiny_gguf: Path) -> None:
    async with FakeSlack() as slack:
        settings = SlackSettings(bot_token=BOT_TOKEN, app_token=APP_TOKEN, api_url=slack.api_url)
        async with running(write_config(model=tiny_gguf), settings) as (app, _adapter):
            ts = slack.add_message("D0DM", "UMEMBER", "what majors do you offer")
            dm = {
                "type": "message",
                "channel": "D0DM",
                "channel_type": "im",
                "user": "UMEMBER",
                "text": "What majors do you offer?",
                "ts": ts,
            }
            ack = await slack.deliver("events_api", event_body(dm))
            assert "envelope_id" in ack
            [row] = await _wait_answers(app, 1)
        assert row.verdict == "answer" and row.channel == "D0DM"
        assert "\n".join(unescape(m["text"]) for m in thread_replies(slack, "D0DM", ts)) == row.answer


async def test_slash_command_ask_answers_in_the_channel_and_help_is_private(
    write_config: Callable[..., Path], tiny_gguf: Path
) -> None:
    async with FakeSlack() as slack, aiohttp.ClientSession() as http:
        async with running(write_config(model=tiny_gguf), http_settings(slack)) as (app, adapter):
            url = f"http://127.0.0.1:{adapter.port}/slack/events"
            ask_form = command_form("ask How much is tuition?", user="UASK", response_url=slack.hook_url("ask"))
            assert (await signed_post(http, url, urlencode(ask_form), form=True)).status == 200
            [row] = await _wait_answers(app, 1)
            cases = command_form("cases", user="UMEMBER", response_url=slack.hook_url("cases"))
            await signed_post(http, url, urlencode(cases), form=True)
            await slack.wait_for(lambda: [h for h in slack.hooks if h["hook"] == "cases"], what="the refusal")
        [post] = [m for m in slack.bot_messages("CGENERAL")]
        assert "thread_ts" not in post  # no question message to thread under: the answer quotes it instead
        assert unescape(post["text"]).startswith("> How much is tuition?\n(asked by uask)")
        assert row.verdict == "answer" and row.question == "How much is tuition?"
        [refusal] = [h for h in slack.hooks if h["hook"] == "cases"]
        assert refusal["text"] == "Only moderators can use that command." and refusal["response_type"] == "ephemeral"
