"""Hostile input to one running bot, through every door: the memory platform, Slack over signed HTTP and
the Discord gateway, each against its fake on loopback. After each hostile input the bot must still
answer a normal question, nothing may fail with an error or a traceback, and a refused input is logged
exactly once.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Container, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters import slack_cards as cards
from adapters import slack_edge as edge
from adapters.discord_client import CUSTOM_ID_TEMPLATE
from adapters.discord_screen import gateway_problem
from adapters.slack import SlackAdapter
from adapters.slack_screen import screen_body
from adapters.slack_settings import SlackSettings
from bot.events import CardAction, MessageRef, ReactionAdded
from bot.sanitize import MAX_CASE_ID, MalformedEvent, clean_event
from tests import discord_fakes as dfakes
from tests import slack_fakes as sfakes
from tests.conftest import BASE_TOML, COLLEGE_KNOWLEDGE
from tests.fuzz_strategies import (
    MEGABYTE,
    deeply_nested,
    hostile_case_ids,
    hostile_ids,
    hostile_text,
    mutated,
    slack_ids,
    wild_text,
)
from tests.fuzz_world import ADDRESSING, World, ask_memory, rejections, running, unexpected, until, world_config

#: Failing examples with a megabyte of text are printed whole; hypothesis warns about that, which is fine here.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Generating overly large repr")]

CI = settings.get_current_profile_name() == "ci"
#: Each example is a round trip to the running bot: a small budget in CI, a large one when deep.
PER_APP = settings(
    max_examples=15 if CI else 400,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One bot for the whole module: memory, Slack (HTTP) and Discord, SQLite, answers from the knowledge files."""
    folder = tmp_path_factory.mktemp("fuzz_world")
    config = folder / "scopebot.toml"
    config.write_text(
        BASE_TOML.format(
            db_url=f"sqlite+aiosqlite:///{folder / 'scopebot.db'}", knowledge=COLLEGE_KNOWLEDGE.as_posix()
        ),
        encoding="utf-8",
    )
    with running(world_config(config), slack=True, discord=True) as started:
        yield started


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Callable[[], list[logging.LogRecord]]:
    """What was logged (INFO and up) since the example began; each example starts by clearing it."""
    caplog.set_level(logging.INFO)
    return lambda: caplog.records


# The memory platform: the core on its own -------------------------------------------------------------


@example(text="How much is tuition?\x00", how="mention", name="\ud800" * 300, bad_id=None)
@example(text="a" * MEGABYTE, how="direct", name="x", bad_id=None)
@example(text="How much is tuition?", how="mention", name="x", bad_id="C" * 129)
@PER_APP
@given(
    text=hostile_text(),
    how=st.sampled_from(ADDRESSING),
    name=wild_text,
    bad_id=st.one_of(st.none(), st.none(), st.none(), hostile_ids),
)
def test_hostile_messages_get_one_reply_and_a_clean_record(
    world: World,
    caplog: pytest.LogCaptureFixture,
    records: Callable[[], list[logging.LogRecord]],
    text: str,
    how: str,
    name: str,
    bad_id: str | None,
) -> None:
    caplog.clear()
    ask_memory(world, records, text, how, name, bad_id)


def _case_action(world: World, user: str, case: int, action: str) -> list[str]:
    """Press a card button on the memory platform; the private replies it got."""
    place = world.mem.place("reviewers")

    async def press() -> list[str]:
        before = len(world.mem.private)
        card = MessageRef(place, "card-1")
        await world.mem.emit(CardAction(world.mem.actor(user), case, action, card=card, argument="\x00note\ud800"))
        return [r.text for r in world.mem.private[before:]]

    return world.run(press())


@PER_APP
@given(case=st.integers(-(2**63), 2**63) | st.sampled_from([0, MAX_CASE_ID, MAX_CASE_ID + 1, 10**30]))
def test_card_presses_with_hostile_case_ids_are_refused_cleanly(
    world: World, caplog: pytest.LogCaptureFixture, records: Callable[[], list[logging.LogRecord]], case: int
) -> None:
    caplog.clear()
    replies = _case_action(world, "mod", case, "dismiss") + _case_action(world, "eve", case, "dismiss")
    assert unexpected(records()) == []
    if 0 < case <= MAX_CASE_ID:
        # An unknown case: the moderator is told so, the member is refused; both privately, nothing logged as refused.
        assert replies[0] == f"There is no case #{case}." and len(replies) == 2 and "moderator" in replies[1]
        assert rejections(records()) == []
    else:
        assert replies == []
        assert len(rejections(records())) == 2  # once per press


def test_flags_on_messages_that_do_not_exist_and_unknown_actions_are_handled(
    world: World, caplog: pytest.LogCaptureFixture, records: Callable[[], list[logging.LogRecord]]
) -> None:
    caplog.clear()
    replies = _case_action(world, "mod", 1, "x" * 100) + _case_action(world, "mod", 1, "DROP TABLE")
    assert all(r.startswith("Unknown action") for r in replies) and len(replies) == 2
    assert _case_action(world, "mod", 1, "x" * 200) == []  # refused at the boundary, and logged

    async def flag(message_id: str) -> None:
        target = MessageRef(world.mem.place("general"), message_id)
        await world.mem.emit(ReactionAdded(target, world.mem.actor("alice"), "flag"))

    world.run(flag("no-such-message"))
    world.run(flag("x" * 500))  # refused at the boundary: longer than any id column
    assert unexpected(records()) == []
    assert len(rejections(records())) == 2


# Slack over signed HTTP ----------------------------------------------------------------------------------


def _raw_bodies() -> st.SearchStrategy[tuple[str, bool]]:
    """Request bodies that are not even a sound payload: deep nesting, other JSON values, broken JSON."""
    return st.sampled_from(
        [
            ("[" * 50_000 + "]" * 50_000, False),
            ('{"type":"event_callback","event":' + '{"a":' * 3000 + "1" + "}" * 3001, False),
            ("[]", False),
            ("null", False),
            ('"text"', False),
            ("12", False),
            ("{not json", False),
            ("payload=%5B%5D", True),
            ("payload=not-json", True),
            ("payload=" + "%7B" * 10, True),
        ]
    )


def _json_body(base: Any) -> st.SearchStrategy[tuple[str, bool]]:
    return mutated(base, [("event", "subtype"), ("event", "bot_id"), ("authorizations",), ("view",)]).map(
        lambda b: (json.dumps(b), False)
    )


def _urlencode(fields: dict[str, Any]) -> str:
    # A hostile sender can percent-encode the UTF-8 bytes of a lone surrogate; the form parser replaces them.
    return urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}, errors="surrogatepass")


def _form(payload: Any) -> str:
    return _urlencode({"payload": json.dumps(payload)})


def _mention() -> dict[str, Any]:
    return sfakes.event_body(sfakes.mention("How much is tuition?", ts=f"{next(_ts)}.000100"))


_ts = iter(range(1_600_000_000, 1_700_000_000))


def _press(case: str = "5") -> dict[str, Any]:
    return sfakes.block_actions(
        user="UMOD",
        action_id=f"scopebot:case:{case}:dismiss",
        value=f"{case}:dismiss",
        channel="CREVIEW",
        message_ts="9.9",
    )


slack_requests = st.one_of(
    _raw_bodies(),
    _json_body(_mention),
    _json_body(lambda: sfakes.event_body(sfakes.reaction("flag", user="UREP", channel="CGENERAL", ts="1.1"))),
    mutated(_press, [("view",), ("state",), ("actions", 0, "block_id")]).map(lambda b: (_form(b), True)),
    mutated(lambda: sfakes.command_form("ask How much is tuition?")).map(lambda f: (_urlencode(f), True)),
    hostile_text(big=False).map(lambda t: (_urlencode(sfakes.command_form(f"ask {t} payload")), True)),
    hostile_case_ids.map(lambda c: (_form(_press(c)), True)),
)


def _expected_slack_rejections(body: str, form: bool, seen: Container[str]) -> int | None:
    """How many rejections our code must log for this request: the screen's, the translators' and the
    dispatch boundary's. None when bolt's own routing decides and the test does not predict it."""
    payload, _problem = screen_body(body, "application/x-www-form-urlencoded" if form else "application/json")
    if payload is None:
        return 1
    out: object = None
    try:
        if payload.get("type") == "event_callback":
            event_id, event = payload.get("event_id"), payload.get("event")
            if not isinstance(event, dict):
                return None  # bolt answers it as unhandled
            if event.get("type") not in edge.EVENT_TYPES or (isinstance(event_id, str) and event_id in seen):
                return 0
            out = edge.event_to_core(payload, bot_user_id=sfakes.BOT_USER, bot_id=sfakes.BOT_ID)
        elif payload.get("command") == edge.COMMAND:
            out = edge.command_to_event(payload)
        elif payload.get("type") == "block_actions":
            if not str(payload["actions"][0]["action_id"]).startswith(cards.ACTION_PREFIX):
                return 0
            out = cards.block_action_to_event(payload)
        else:
            return None
    except edge.SlackPayloadError:
        return 1
    if isinstance(out, edge.Ignored):
        return 0
    try:
        clean_event(out)  # type: ignore[arg-type]
    except MalformedEvent:
        return 1
    return 0


async def signed_post(world: World, body: str, *, form: bool = False) -> int:
    """POST a signed request to the Slack endpoint (as a stream: megabyte bodies are in the mix); its status."""
    assert world.http is not None and world.slack_adapter is not None
    ts = str(int(time.time()))
    headers = {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sfakes.signature(body, timestamp=ts),
        "Content-Type": "application/x-www-form-urlencoded" if form else "application/json",
    }
    url = f"http://127.0.0.1:{world.slack_adapter.port}/slack/events"
    async with world.http.post(url, data=io.BytesIO(body.encode()), headers=headers) as resp:
        await resp.read()
        return resp.status


async def _slack_still_answers(world: World) -> None:
    """A member's mention gets its answer in the thread."""
    assert world.slack is not None and world.http is not None and world.slack_adapter is not None
    # A fresh member: the gate screens a member's recent questions in a channel together, hostile ones included.
    user = f"UOK{next(world.ids)}"
    ts = world.slack.add_message("CGENERAL", user, f"<@{sfakes.BOT_USER}> How much is tuition?")
    body = json.dumps(sfakes.event_body(sfakes.mention("How much is tuition?", user=user, ts=ts)))
    assert await signed_post(world, body) == 200
    slack = world.slack
    try:
        await until(
            lambda: [m for m in slack.bot_messages("CGENERAL") if m.get("thread_ts") == ts and "42,300" in m["text"]],
            what="the answer to a normal mention on Slack",
        )
    except AssertionError as e:
        recent = [(m.get("thread_ts"), m["text"][:80]) for m in slack.bot_messages()[-3:]]
        raise AssertionError(f"{e}; question {ts}; the bot's last posts: {recent}") from None


@example(request=("[" * 50_000 + "]" * 50_000, False))
@example(request=(urlencode(sfakes.command_form("ask what is the payload limit?")), True))
@example(request=(json.dumps(sfakes.event_body(sfakes.mention("tuition \\ud800", ts="1.1"))), False))
@example(request=(_form(_press("2147483648")), True))
@PER_APP
@given(request=slack_requests)
def test_hostile_slack_requests_are_refused_once_and_the_bot_keeps_answering(
    world: World,
    caplog: pytest.LogCaptureFixture,
    records: Callable[[], list[logging.LogRecord]],
    request: tuple[str, bool],
) -> None:
    assert world.http is not None and world.slack_adapter is not None
    body, form = request
    caplog.clear()
    expected = _expected_slack_rejections(body, form, world.call(lambda: set(world.slack_adapter._seen)))  # type: ignore[union-attr]

    async def post() -> int:
        status = await signed_post(world, body, form=form)
        await world.settle()
        return status

    status = world.run(post())
    assert status in (200, 400, 404, 413), status
    assert unexpected(records()) == []
    refused = rejections(records())
    if status == 413:
        # aiohttp refuses bodies over 1 MiB before anyone reads them (Slack's own stay far below): not worth a log line.
        assert len(body.encode("utf-8", "surrogatepass")) > 1024**2 and refused == []
    elif expected is not None:
        assert len(refused) == expected, refused
    assert len(refused) <= 1, refused
    assert (status == 400) == any("rejected a signed request" in r for r in refused)
    world.run(_slack_still_answers(world))
    world.run(world.settle())
    assert unexpected(records()) == []


# Discord over the gateway --------------------------------------------------------------------------------


_FAKE = dfakes.FakeDiscord()  # payload builders only


def _message() -> dict[str, Any]:
    payload = dict(_FAKE._message(dfakes.GENERAL, dfakes.ALICE, "How much is tuition?", mentions=[dfakes.BOT_USER]))
    payload["content"] = f"<@{dfakes.BOT_ID}> How much is tuition?"
    payload["member"] = {"roles": [], "joined_at": "2024-01-01T00:00:00+00:00", "deaf": False, "mute": False}
    return payload


def _reaction() -> dict[str, Any]:
    return {
        "user_id": dfakes.ALICE["id"],
        "channel_id": str(dfakes.GENERAL),
        "message_id": "1100000000000000001",
        "emoji": {"id": None, "name": "👍"},
        "burst": False,
        "type": 0,
        "guild_id": str(dfakes.GUILD_ID),
        "member": dfakes.member(dfakes.ALICE),
    }


def _press_payload(custom_id: str, who: dict[str, Any] = dfakes.BOB_MOD) -> dict[str, Any]:
    """A press of a card's button (discord.py routes a press only to a button its message carries)."""
    button = {"type": 2, "style": 2, "label": "Dismiss", "custom_id": custom_id}
    card = _FAKE._message(dfakes.REVIEWERS, dfakes.BOT_USER, "", components=[{"type": 1, "components": [button]}])
    data = {"custom_id": custom_id, "component_type": 2}
    return _FAKE._interaction(3, who, dfakes.REVIEWERS, data, message=card)


discord_events = st.one_of(
    st.tuples(st.just("MESSAGE_CREATE"), mutated(_message, [("guild_id",), ("referenced_message",), ("thread",)])),
    st.tuples(st.just("MESSAGE_REACTION_ADD"), mutated(_reaction, [("member", "nick"), ("emoji", "id")])),
    st.tuples(st.just("INTERACTION_CREATE"), mutated(lambda: _press_payload("scopebot:case:7:dismiss"))),
    st.tuples(st.just("INTERACTION_CREATE"), hostile_case_ids.map(lambda c: _press_payload(f"scopebot:case:{c}:x"))),
    st.tuples(st.sampled_from(["MESSAGE_CREATE", "INTERACTION_CREATE", "GUILD_CREATE", "NOT_AN_EVENT"]), st.none()),
    st.tuples(
        st.just("MESSAGE_CREATE"), st.integers(100, 300).map(lambda d: _message() | {"embeds": deeply_nested(d)})
    ),
    st.tuples(st.just("MESSAGE_CREATE"), hostile_text().map(lambda t: _message() | {"content": t})),
    st.tuples(st.just("MESSAGE_CREATE"), hostile_ids.map(lambda i: _message() | {"channel_id": i})),
)


async def _discord_still_answers(world: World) -> None:
    """A member's mention gets its answer, as a reply."""
    fake = world.discord
    assert fake is not None
    # A fresh member: the gate screens a member's recent questions in a channel together, hostile ones included.
    member = dfakes.user(700000000000100000 + next(world.ids), "carol")
    fake.members[member["id"]] = dfakes.member(member)
    question = await fake.say(member, "How much is tuition?", mention_bot=True)
    await until(
        lambda: [
            m
            for m in fake.bot_posts(dfakes.GENERAL)
            if (m.get("message_reference") or {}).get("message_id") == int(question["id"]) and "42,300" in m["content"]
        ],
        what="the answer to a normal mention on Discord",
    )


def _press_with_unreadable_card() -> dict[str, Any]:
    """A press whose card's button has an object for its custom_id (discord.py rebuilds the card in a task)."""
    payload = _press_payload("scopebot:case:7:dismiss")
    payload["message"]["components"][0]["components"][0]["custom_id"] = deeply_nested(50)
    return payload


@example(event=("INTERACTION_CREATE", _press_with_unreadable_card()))
@example(event=("INTERACTION_CREATE", _press_payload("scopebot:case:2147483648:dismiss")))
@example(event=("INTERACTION_CREATE", _press_payload("scopebot:case:4242:dismiss", dfakes.ALICE)))
@example(event=("MESSAGE_CREATE", _message() | {"content": "tuition \ud800\x00?"}))
@example(event=("MESSAGE_CREATE", _message() | {"guild_id": "5"}))
@PER_APP
@given(event=discord_events)
def test_hostile_discord_events_are_refused_once_and_the_bot_keeps_answering(
    world: World,
    caplog: pytest.LogCaptureFixture,
    records: Callable[[], list[logging.LogRecord]],
    event: tuple[str, Any],
) -> None:
    assert world.discord is not None
    name, payload = event
    caplog.clear()

    async def dispatch() -> None:
        await world.discord.dispatch(name, payload)  # type: ignore[union-attr]
        await world.settle()

    world.run(dispatch())
    world.run(_discord_still_answers(world))
    world.run(world.settle())
    assert unexpected(records()) == []
    refused = rejections(records())
    assert len(refused) <= 1, refused
    if gateway_problem(name, payload) is not None:
        assert len(refused) == 1 and name in refused[0], refused


def test_discord_presses_on_unknown_and_impossible_cases_are_refused_privately(
    world: World, caplog: pytest.LogCaptureFixture, records: Callable[[], list[logging.LogRecord]]
) -> None:
    fake = world.discord
    assert fake is not None
    caplog.clear()

    async def press(custom_id: str, who: dict[str, Any], *, answered: bool) -> list[str]:
        """Press a button; the private texts the presser got (waiting for them, or for the refusal's log line)."""
        payload = _press_payload(custom_id, who)
        refused = len(rejections(records()))
        await fake.dispatch("INTERACTION_CREATE", payload)

        def texts() -> list[str]:
            calls = [c for c in fake.calls if payload["token"] in c.path and c.method in ("POST", "PATCH")]
            return [
                str((c.body or {}).get("content") or ((c.body or {}).get("data") or {}).get("content")) for c in calls
            ]

        if answered:
            await until(lambda: [t for t in texts() if t != "None"], what="a private reply")
        else:
            await until(lambda: len(rejections(records())) > refused, what="the press to be refused")
        await world.settle()
        return [t for t in texts() if t != "None"]

    told = world.run(press("scopebot:case:4242:dismiss", dfakes.BOB_MOD, answered=True))
    assert told == ["There is no case #4242."]
    told = world.run(press("scopebot:case:4242:dismiss", dfakes.ALICE, answered=True))
    assert len(told) == 1 and "moderator" in told[0]
    assert world.run(press("scopebot:case:2147483648:dismiss", dfakes.BOB_MOD, answered=False)) == []
    assert world.run(press("scopebot:case:0:dismiss", dfakes.BOB_MOD, answered=False)) == []
    assert unexpected(records()) == []
    assert len(rejections(records())) == 2
    assert CUSTOM_ID_TEMPLATE.count("{1,10}") == 1  # the template cannot match an id with more digits


@PER_APP
@given(team=slack_ids, user=hostile_ids.filter(bool))
def test_slack_events_with_ids_no_platform_makes_are_refused_once(
    world: World, caplog: pytest.LogCaptureFixture, records: Callable[[], list[logging.LogRecord]], team: str, user: str
) -> None:
    assert world.http is not None and world.slack_adapter is not None
    caplog.clear()
    body = sfakes.event_body(sfakes.mention("How much is tuition?", user=user, ts="1.1"), team=team)

    async def post() -> int:
        status = await signed_post(world, json.dumps(body))
        await world.settle()
        return status

    assert world.run(post()) == 200
    assert unexpected(records()) == []
    assert len(rejections(records())) == 1


# Slack over Socket Mode ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "event_callback", "event": ["not", "an", "object"]},
        sfakes.event_body({"type": ["app_mention"], "text": "x"}),
        {"type": "block_actions", "actions": [{"action_id": 5}], "user": {"id": "UMOD"}, "team": {"id": "T1"}},
        {"type": "view_submission", "view": None},
        sfakes.event_body(sfakes.mention("x", ts="1.1")) | {"authorizations": [None]},
    ],
)
async def test_malformed_socket_mode_envelopes_are_acknowledged_refused_once_and_serving_goes_on(
    caplog: pytest.LogCaptureFixture, payload: dict[str, Any]
) -> None:
    caplog.set_level(logging.INFO)
    events: list[object] = []
    async with sfakes.FakeSlack() as slack:
        adapter = SlackAdapter(
            SlackSettings(bot_token=sfakes.BOT_TOKEN, app_token=sfakes.APP_TOKEN, api_url=slack.api_url)
        )

        async def sink(event: object) -> None:
            events.append(event)

        await adapter.start(sink)  # type: ignore[arg-type]
        try:
            ack = await slack.deliver(
                "interactive" if "actions" in payload or "view" in payload else "events_api", payload
            )
            assert set(ack) == {"envelope_id"}  # acknowledged: Slack will not deliver it again
            await slack.deliver("events_api", sfakes.event_body(sfakes.mention("How much is tuition?", ts="2.2")))
            await until(lambda: events, what="the next event")
        finally:
            await adapter.stop()
    assert unexpected(caplog.records) == []
    refused = rejections(caplog.records)
    assert len(refused) == 1 and "Socket Mode" in refused[0], refused


def test_a_gateway_frame_too_deep_to_decode_costs_a_reconnect_not_the_connection(
    world: World, caplog: pytest.LogCaptureFixture, records: Callable[[], list[logging.LogRecord]]
) -> None:
    fake = world.discord
    assert fake is not None
    caplog.clear()

    async def send_deep_frame() -> int:
        connected = len(fake.identifies)
        fake._seq += 1
        deep = "[" * 100_000 + "]" * 100_000
        frame = f'{{"op":0,"t":"MESSAGE_CREATE","s":{fake._seq},"d":{deep}}}'
        for ws in list(fake.sockets):
            await ws.send_str(frame)
        # discord.py's JSON decoder raises RecursionError, which it does not handle: the adapter connects again.
        await until(lambda: len(fake.identifies) > connected, what="the bot to connect again")
        return len(fake.identifies) - connected

    assert world.run(send_deep_frame()) == 1
    world.run(_discord_still_answers(world))
    assert unexpected(records()) == []
    refused = rejections(records())
    assert len(refused) == 1 and "RecursionError" in refused[0], refused
