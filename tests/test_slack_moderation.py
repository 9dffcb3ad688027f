"""Moderation end to end on Slack: 🚩 files a case, one card reaches the reviewers, buttons act, also after a restart."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from sqlmodel import select

from adapters.slack import SlackAdapter
from bot.app import App, build_app
from bot.config import load_config
from bot.events import Actor, Place
from bot.models import BotAnswer
from moderation.actions import REFUSAL
from moderation.audit import entries
from tests.slack_fakes import (
    BOT_USER,
    FakeSlack,
    block_actions,
    command_form,
    event_body,
    http_settings,
    interactivity_form,
    mention,
    reaction,
    signed_post,
)

pytestmark = pytest.mark.slow

REVIEWERS = "CREV"
MODERATOR = "UMOD"


def moderated_config(path: Path) -> Path:
    """The test config with a Slack reviewer channel and a Slack moderator."""
    text = path.read_text(encoding="utf-8")
    text = text.replace('memory = "reviewers" }', f'memory = "reviewers", slack = "{REVIEWERS}" }}', 1)
    text = text.replace('console = ["mod"]', f'console = ["mod"]\nslack_users = ["{MODERATOR}"]', 1)
    assert REVIEWERS in text and MODERATOR in text
    path.write_text(text, encoding="utf-8")
    return path


@asynccontextmanager
async def running(config: Path, slack: FakeSlack) -> AsyncIterator[tuple[App, str]]:
    """A whole bot process (pipeline, moderation, scheduler) on Slack over HTTP; yields it and its events URL."""
    adapter = SlackAdapter(http_settings(slack))
    app = build_app(load_config(config), platforms=[adapter])
    try:
        await app.start()
        yield app, f"http://127.0.0.1:{adapter.port}/slack/events"
    finally:
        await app.stop()


def cards(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in slack.bot_messages(REVIEWERS) if m.get("blocks")]


def button(card: dict[str, Any], action: str) -> dict[str, Any]:
    for block in card["blocks"]:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element["action_id"].endswith(f":{action}"):
                return dict(element)
    raise AssertionError(f"no {action} button on the card")


async def press(
    http: aiohttp.ClientSession, url: str, card: dict[str, Any], action: str, *, user: str, **kw: Any
) -> None:
    b = button(card, action)
    body = block_actions(
        user=user, action_id=b["action_id"], value=b["value"], channel=REVIEWERS, message_ts=card["ts"], **kw
    )
    r = await signed_post(http, url, interactivity_form(body), form=True)
    assert r.status == 200


async def flag(http: aiohttp.ClientSession, url: str, *, user: str, ts: str) -> None:
    event = reaction("triangular_flag_on_post", user=user, channel="CGENERAL", ts=ts, item_user=BOT_USER)
    r = await signed_post(http, url, json.dumps(event_body(event)))
    assert r.status == 200


async def test_flag_card_buttons_and_restart(write_config: Callable[..., Path], tiny_gguf: Path, db_url: str) -> None:
    config = moderated_config(write_config(model=tiny_gguf, db_url=db_url))
    async with FakeSlack() as slack, aiohttp.ClientSession() as http:
        slack.messages[REVIEWERS] = {}
        async with running(config, slack) as (app, url):
            q = slack.add_message("CGENERAL", "UASKER", f"<@{BOT_USER}> How much is tuition?")
            await signed_post(http, url, json.dumps(event_body(mention("How much is tuition?", user="UASKER", ts=q))))
            answer = await slack.wait_for(
                lambda: [m for m in slack.bot_messages("CGENERAL") if m.get("thread_ts") == q], what="the answer"
            )
            answer_ts = answer[0]["ts"]
            # Flag once the answer is recorded (a flag during streaming is a report on a plain message).
            await wait_until(lambda: _answered(app), what="the answer recorded")

            # A member's 🚩 files a case; the reporter is thanked privately; the router posts one card.
            await flag(http, url, user="UREP1", ts=answer_ts)
            [card] = await slack.wait_for(lambda: cards(slack), what="the review card")
            acks = [c for c in slack.calls_to("chat.postEphemeral") if c["user"] == "UREP1"]
            assert acks and acks[0]["channel"] == "CGENERAL"
            case_id = int(button(card, "dismiss")["value"].split(":")[0])
            assert f"Case #{case_id}" in json.dumps(card["blocks"])

            # A second reporter reaches the hide threshold: the answer is hidden, the same card is updated.
            await flag(http, url, user="UREP2", ts=answer_ts)
            hidden = app.config.moderation.hidden_note
            await slack.wait_for(
                lambda: slack.message("CGENERAL", answer_ts)["text"] == hidden,  # type: ignore[index]
                what="the answer hidden",
            )
            await slack.wait_for(lambda: "2 (score" in json.dumps(cards(slack)[0]["blocks"]), what="card updated")

            # A member pressing a button is refused privately, and nothing changes.
            await press(http, url, cards(slack)[0], "dismiss", user="UREP1", response_url=slack.hook_url("member"))
            await slack.wait_for(lambda: [h for h in slack.hooks if h["hook"] == "member"], what="the refusal")
            [refusal] = [h for h in slack.hooks if h["hook"] == "member"]
            assert refusal["text"] == REFUSAL and refusal["response_type"] == "ephemeral"
            assert button(cards(slack)[0], "retract")

        # The process restarts: a new adapter, bolt app and port; the card's buttons still work.
        async with running(config, slack) as (app2, url2):
            card = cards(slack)[0]
            await press(http, url2, card, "retract", user=MODERATOR, note="Tuition is listed in costs-and-aid.md.")
            await slack.wait_for(
                lambda: not any(b["type"] == "actions" for b in cards(slack)[0]["blocks"]), what="card resolved"
            )
            await slack.wait_for(
                lambda: any("costs-and-aid.md" in m["text"] for m in slack.bot_messages("CGENERAL")),
                what="the correction",
            )
            done = await slack.wait_for(
                lambda: [c for c in slack.calls_to("chat.postEphemeral") if c["user"] == MODERATOR],
                what="the moderator's private confirmation",
            )
            assert done[0]["channel"] == REVIEWERS and "resolved" in done[0]["text"]
            async with app2.sessions() as session:
                log = await entries(session, case_id=case_id)
            # The moderator's own /scopebot command shows the same audit trail, privately.
            form = command_form(
                f"audit {case_id}", user=MODERATOR, channel=REVIEWERS, response_url=slack.hook_url("audit")
            )
            await signed_post(http, url2, urlencode(form), form=True)
            await slack.wait_for(lambda: [h for h in slack.hooks if h["hook"] == "audit"], what="the audit reply")

    actions = [(e.action, e.actor_id) for e in log]
    assert ("report.filed", "UREP1") in actions and ("report.filed", "UREP2") in actions
    assert ("case.routed", "scopebot") in actions
    assert ("case.retract", MODERATOR) in actions
    assert not any(a == "case.dismiss" for a, _ in actions)
    correction = [m for m in slack.bot_messages("CGENERAL") if "costs-and-aid.md" in m["text"]]
    assert correction[0]["thread_ts"] == q
    assert slack.message("CGENERAL", answer_ts)["text"] == app2.config.moderation.retracted_note  # type: ignore[index]
    # Exactly one card was ever posted to the reviewer channel; every later change was an edit in place.
    assert len([c for c in slack.calls_to("chat.postMessage") if c["channel"] == REVIEWERS]) == 1
    [audit_reply] = [h for h in slack.hooks if h["hook"] == "audit"]
    assert "retract" in audit_reply["text"] and audit_reply["response_type"] == "ephemeral"


async def test_member_message_timeout_mutes_and_remove_explains_slack_limits(
    write_config: Callable[..., Path], tiny_gguf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.dispatcher")
    config = moderated_config(write_config(model=tiny_gguf))
    async with FakeSlack() as slack, aiohttp.ClientSession() as http:
        slack.messages[REVIEWERS] = {}
        async with running(config, slack) as (app, url):
            rude = slack.add_message("CGENERAL", "UAUTH", "buy cheap essays, DM me")
            event = reaction("triangular_flag_on_post", user="UREP1", channel="CGENERAL", ts=rude, item_user="UAUTH")
            await signed_post(http, url, json.dumps(event_body(event)))
            [card] = await slack.wait_for(lambda: cards(slack), what="the review card")
            assert "buy cheap essays" in json.dumps(card["blocks"])

            # Slack has no member timeouts: the bot itself stops answering the author.
            await press(http, url, card, "timeout", user=MODERATOR, note="2h")
            author, place = Actor("slack", "UAUTH"), Place("slack", "T0TEAM", "CGENERAL")
            await wait_until(lambda: app.moderation.service.is_muted(author, place), what="the mute")  # type: ignore[union-attr]
            assert await slack.wait_for(
                lambda: [c for c in slack.calls_to("chat.postEphemeral") if c["user"] == MODERATOR],
                what="the moderator's private confirmation",
            )
            q = slack.add_message("CGENERAL", "UAUTH", f"<@{BOT_USER}> How much is tuition?")
            await signed_post(http, url, json.dumps(event_body(mention("How much is tuition?", user="UAUTH", ts=q))))
            await slack.wait_for(
                lambda: any("not answering UAUTH" in r.getMessage() for r in caplog.records), what="not answering"
            )
            assert not [m for m in slack.bot_messages("CGENERAL") if m.get("thread_ts") == q]

            # A bot token cannot delete a member's message: the failure says why and the case reopens.
            await press(http, url, cards(slack)[0], "remove", user=MODERATOR)

            async def failed() -> list[str]:
                async with app.sessions() as session:
                    return [e.note for e in await entries(session) if e.action == "case.remove.failed"]

            [note] = await wait_until(failed, what="the failed removal")
            assert "only its own messages" in note
            await wait_until(lambda: _has(app, "case.reopened"), what="the case reopened")
            assert slack.message("CGENERAL", rude) is not None


async def _has(app: App, action: str) -> bool:
    async with app.sessions() as session:
        return any(e.action == action for e in await entries(session))


async def wait_until(check: Callable[[], Awaitable[Any]], *, what: str, within: float = 30.0) -> Any:
    """Poll an async check until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _answered(app: App) -> bool:
    async with app.sessions() as session:
        return (await session.scalar(select(BotAnswer.id).limit(1))) is not None
