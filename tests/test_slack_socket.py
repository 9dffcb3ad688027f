"""The Slack adapter in Socket Mode: real slack-bolt / slack_sdk against a fake Socket Mode server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from adapters.slack import SlackAdapter
from adapters.slack_settings import SlackSettings
from bot.cli import CredentialsError
from bot.events import CardAction, CommandInvoked, Event, InboundMessage, ReactionAdded
from tests.slack_fakes import (
    APP_TOKEN,
    BOT_TOKEN,
    FakeSlack,
    block_actions,
    command_form,
    event_body,
    mention,
    reaction,
)


@dataclass
class Connected:
    adapter: SlackAdapter
    slack: FakeSlack
    events: list[Event] = field(default_factory=list)


def socket_settings(slack: FakeSlack, *, app_token: str = APP_TOKEN) -> SlackSettings:
    return SlackSettings(bot_token=BOT_TOKEN, app_token=app_token, api_url=slack.api_url)


@pytest.fixture
async def connected() -> AsyncIterator[Connected]:
    async with FakeSlack() as slack:
        adapter = SlackAdapter(socket_settings(slack))
        c = Connected(adapter, slack)

        async def sink(event: Event) -> None:
            c.events.append(event)

        await adapter.start(sink)
        try:
            yield c
        finally:
            await adapter.stop()


async def test_connects_with_the_app_token_and_acks_every_envelope(connected: Connected) -> None:
    slack = connected.slack
    assert connected.adapter.mode == "socket" and connected.adapter.port is None
    assert slack.connections_opened == 1 and slack.connected.is_set()
    ack = await slack.deliver("events_api", event_body(mention("When is the deadline?", ts="1.1")))
    assert set(ack) == {"envelope_id"}
    await slack.deliver(
        "events_api", event_body(reaction("triangular_flag_on_post", user="U2", channel="C1", ts="1.1"))
    )
    press = block_actions(
        user="UMOD", action_id="scopebot:case:9:warn", value="9:warn", channel="CREV", message_ts="4.4"
    )
    await slack.deliver("interactive", press)
    cmd_ack = await slack.deliver("slash_commands", command_form("ask how much is tuition"))
    assert "envelope_id" in cmd_ack
    await slack.wait_for(lambda: len(connected.events) >= 4, what="4 events")
    kinds = [type(e) for e in connected.events]
    assert sorted(k.__name__ for k in kinds) == ["CardAction", "CommandInvoked", "InboundMessage", "ReactionAdded"]
    q = next(e for e in connected.events if isinstance(e, InboundMessage))
    assert q.text == "When is the deadline?" and q.mentions_bot
    flag = next(e for e in connected.events if isinstance(e, ReactionAdded))
    assert flag.emoji == "flag"
    action = next(e for e in connected.events if isinstance(e, CardAction))
    assert (action.case_id, action.action, action.actor.user_id) == (9, "warn", "UMOD")
    cmd = next(e for e in connected.events if isinstance(e, CommandInvoked))
    assert cmd.text == "ask how much is tuition"


async def test_malformed_envelope_payload_is_acked_and_dropped(connected: Connected) -> None:
    slack = connected.slack
    ack = await slack.deliver("events_api", event_body({"type": "reaction_added", "user": "U1", "reaction": "flag"}))
    assert "envelope_id" in ack
    await slack.deliver("events_api", event_body(mention("next", ts="2.2")))
    await slack.wait_for(lambda: connected.events, what="the next event")
    assert [type(e) for e in connected.events] == [InboundMessage]


async def test_stop_closes_the_socket() -> None:
    async with FakeSlack() as slack:
        adapter = SlackAdapter(socket_settings(slack))

        async def sink(event: Event) -> None:
            del event

        await adapter.start(sink)
        await adapter.stop()
        await slack.wait_for(lambda: all(ws.closed for ws in slack.sockets), what="socket closed")


async def test_rejected_app_token_names_the_variable_and_hides_the_token() -> None:
    async with FakeSlack() as slack:
        adapter = SlackAdapter(socket_settings(slack, app_token="xapp-1-wrong-secret"))

        async def sink(event: Event) -> None:
            del event

        with pytest.raises(CredentialsError) as e:
            await adapter.start(sink)
        assert "SLACK_APP_TOKEN" in str(e.value) and "wrong-secret" not in str(e.value)
        await adapter.stop()
        assert slack.sockets == []
