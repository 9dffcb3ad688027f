"""The Slack adapter in HTTP mode: real slack-bolt behind a real aiohttp server, signed requests, a fake Web API."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest

from bot.events import CardAction, CommandInvoked, InboundMessage, ReactionAdded
from tests.slack_fakes import (
    BOT_ID,
    BOT_USER,
    FakeSlack,
    Served,
    block_actions,
    command_form,
    event_body,
    interactivity_form,
    mention,
    message,
    reaction,
    serve_http,
    signed_post,
)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with FakeSlack() as slack, serve_http(slack) as s:
        yield s


async def test_health_and_url_verification(served: Served) -> None:
    async with served.http.get(f"http://127.0.0.1:{served.adapter.port}/healthz") as r:
        assert r.status == 200
        assert (await r.json())["ok"] is True
    body = json.dumps({"type": "url_verification", "challenge": "abc123", "token": "x"})
    r = await signed_post(served.http, served.url, body)
    assert r.status == 200
    assert served.adapter.bot_user_id == BOT_USER and served.adapter.bot_id == BOT_ID


async def test_wrongly_signed_and_stale_requests_get_401_and_reach_nothing(served: Served) -> None:
    body = json.dumps(event_body(mention("tuition?", ts="1.1")))
    bad = await signed_post(served.http, served.url, body, secret="not-the-secret")
    stale = await signed_post(served.http, served.url, body, timestamp=int(time.time()) - 600)
    async with served.http.post(served.url, data=body, headers={"Content-Type": "application/json"}) as unsigned:
        assert unsigned.status == 401
    assert (bad.status, stale.status) == (401, 401)
    garbage = await signed_post(served.http, served.url, "{not json", secret="wrong")
    assert garbage.status == 401
    assert served.events == []


async def test_signed_requests_become_core_events(served: Served) -> None:
    r = await served.post_event(mention("How much is tuition?", ts="1.1"))
    assert r.status == 200
    await served.post_event(message("a question", channel="D1", channel_type="im", ts="1.2"))
    await served.post_event(reaction("triangular_flag_on_post", user="UREP", channel="CGENERAL", ts="1.1"))
    press = block_actions(
        user="UMOD", action_id="scopebot:case:5:dismiss", value="5:dismiss", channel="CREV", message_ts="8.8"
    )
    assert (await served.post_form(interactivity_form(press))).status == 200
    r = await served.post_form(urlencode(command_form("cases", user="UMOD")))
    assert r.status == 200
    events = await served.wait_events(5)
    by_type = {type(e): e for e in events}
    questions = sorted((e for e in events if isinstance(e, InboundMessage)), key=lambda e: e.ref.message_id)
    q, dm = questions
    assert q.mentions_bot and q.text == "How much is tuition?" and q.ref.place.workspace == "T0TEAM"
    assert not q.ref.place.is_direct
    assert dm.ref.place.is_direct and dm.text == "a question"
    flag = by_type[ReactionAdded]
    assert isinstance(flag, ReactionAdded) and flag.emoji == "flag"
    action = by_type[CardAction]
    assert isinstance(action, CardAction) and (action.case_id, action.action) == (5, "dismiss")
    cmd = by_type[CommandInvoked]
    assert isinstance(cmd, CommandInvoked) and cmd.text == "cases"


async def test_duplicates_bots_and_edits_reach_nothing(served: Served) -> None:
    await served.post_event(mention("tuition?", ts="2.1"), event_id="EvSAME")
    await served.post_event(mention("tuition?", ts="2.1"), event_id="EvSAME")  # Slack's redelivery
    await served.post_event(message(f"<@{BOT_USER}> tuition?", ts="2.1"))  # the same mention, as a message
    await served.post_event(message("I am a bot", ts="2.2", bot_id="BOTHER"))
    await served.post_event(message("my own answer", ts="2.3", user=BOT_USER, bot_id=BOT_ID))
    await served.post_event(message("edited", ts="2.4", subtype="message_changed"))
    r = await served.post_event({"type": "member_joined_channel", "user": "U1", "channel": "C1"})
    assert r.status == 200  # acknowledged, so Slack does not redeliver it
    await served.post_event(mention("last", ts="2.5"))
    events = await served.wait_events(2)
    assert [e.ref.message_id for e in events if isinstance(e, InboundMessage)] == ["2.1", "2.5"]


async def test_malformed_payloads_are_rejected_once_and_cleanly(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="adapters.slack")
    r = await served.post_event({"type": "app_mention", "text": "no channel", "ts": "3.1", "user": "U1"})
    assert r.status == 200
    r = await signed_post(served.http, served.url, "{not json")
    assert r.status == 400
    await served.post_event(mention("still serving", ts="3.2"))
    events = await served.wait_events(1)
    assert [e.ref.message_id for e in events if isinstance(e, InboundMessage)] == ["3.2"]
    rejected = [rec for rec in caplog.records if "malformed" in rec.getMessage()]
    assert len(rejected) == 1 and "`channel`" in rejected[0].getMessage()


async def test_slack_bolt_logs_follow_the_levels_set_for_them_after_start(caplog: pytest.LogCaptureFixture) -> None:
    # `setup_logging` quiets "slack_bolt" to WARNING. slack-bolt copied the root's level into its own loggers when an
    # app was built, so its INFO lines (a rejected signature, with the request's body) came through anyway; with a
    # logger of its own they follow "slack_bolt" at each line, and an operator who turns it up later sees them.
    bolt = logging.getLogger("slack_bolt")
    before = bolt.level
    bolt.setLevel(logging.WARNING)
    body = json.dumps(event_body(mention("tuition?", ts="1.1")))

    def rejected() -> list[logging.LogRecord]:
        return [rec for rec in caplog.records if "Invalid request signature" in rec.getMessage()]

    try:
        with caplog.at_level(logging.INFO):
            async with FakeSlack() as slack, serve_http(slack) as s:
                r = await signed_post(s.http, s.url, body, secret="not-the-secret")
                assert r.status == 401 and rejected() == []
                bolt.setLevel(logging.INFO)
                r = await signed_post(s.http, s.url, body, secret="not-the-secret")
                assert r.status == 401 and len(rejected()) == 1
    finally:
        bolt.setLevel(before)
