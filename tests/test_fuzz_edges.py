"""Property tests of the pure edges: every hostile payload becomes a sound core event or a documented rejection.

The chain under test is the one a platform event takes: translator (adapters/*_edge.py, after
discord.py's own parsers for Discord) → `bot.sanitize.clean_event` at the dispatch boundary. Whatever
goes in, what comes out is an event whose fields have their declared types, whose text the database
and the model can take, and whose ids fit their columns — or the module's rejection error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import types
import typing
from collections.abc import Iterator
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import discord
import pytest
from discord.http import HTTPClient
from discord.state import ConnectionState
from hypothesis import given
from hypothesis import strategies as st

import bot.events as events_module
from adapters import console_edge
from adapters import discord_edge as dedge
from adapters import slack_cards as cards
from adapters import slack_edge as edge
from adapters.discord_client import CUSTOM_ID_TEMPLATE, INTENTS
from adapters.discord_screen import gateway_problem
from bot.events import Actor, CardAction, CommandInvoked, InboundMessage, MessageRef, Place, ReactionAdded
from bot.sanitize import MAX_CASE_ID, MAX_ID_CHARS, MAX_NAME_CHARS, MalformedEvent, clean_event, clean_text
from tests import discord_fakes as dfakes
from tests import slack_fakes as sfakes
from tests.fuzz_strategies import (
    hostile_case_ids,
    hostile_ids,
    hostile_text,
    mutated,
    slack_ids,
    slack_ts,
    snowflakes,
    wild_text,
)

#: Failing examples with a megabyte of text are printed whole; hypothesis warns about that, which is fine here.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
CORE_TYPES = (InboundMessage, ReactionAdded, CardAction, CommandInvoked)
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


# What a sound event is ---------------------------------------------------------------------------------


def _accepts(hint: Any, value: object) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(h, value) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is tuple:
        inner = typing.get_args(hint)
        return isinstance(value, tuple) and all(_accepts(inner[0], v) for v in value)
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def assert_typed(obj: object, where: str = "event") -> None:
    """Every field of a core dataclass (and of the dataclasses inside it) holds a value of its declared type."""
    hints = typing.get_type_hints(type(obj), vars(events_module) | {"datetime": datetime})
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        assert _accepts(hints[f.name], value), f"{where}.{f.name} = {value!r:.80} is not {hints[f.name]}"
        if dataclasses.is_dataclass(value):
            assert_typed(value, f"{where}.{f.name}")


def _ids(event: object) -> Iterator[str]:
    refs = [getattr(event, k) for k in ("ref", "target", "card") if getattr(event, k, None) is not None]
    places = [r.place for r in refs] + ([event.place] if isinstance(event, CommandInvoked) else [])
    for p in places:
        yield from (p.workspace, p.channel, *([p.thread] if p.thread else []))
    yield from (r.message_id for r in refs)
    for k in ("author", "reactor", "actor"):
        actor = getattr(event, k, None)
        if actor is not None:
            yield actor.user_id


def assert_storable(event: object) -> None:
    """What the boundary lets through fits the database: clean text, ids within their columns, real case ids."""
    assert isinstance(event, CORE_TYPES)
    assert_typed(event)
    for value in _ids(event):
        assert 0 < len(value) <= MAX_ID_CHARS or value == "", value[:80]
        assert not _UNSTORABLE.search(value)
    for text in (getattr(event, k, "") for k in ("text", "argument", "emoji", "action")):
        assert not _UNSTORABLE.search(text), repr(text[:80])
    for k in ("author", "reactor", "actor"):
        actor = getattr(event, k, None)
        if actor is not None:
            assert len(actor.display_name) <= MAX_NAME_CHARS and not _UNSTORABLE.search(actor.display_name)
    if isinstance(event, CardAction):
        assert 0 < event.case_id <= MAX_CASE_ID


def through_boundary(event: object) -> object | None:
    """The event as the dispatcher passes it on, or None when the boundary rejects it (with its error)."""
    assert isinstance(event, CORE_TYPES), f"not a core event: {event!r:.200}"
    assert_typed(event)
    try:
        cleaned = clean_event(event)
    except MalformedEvent:
        return None
    assert_storable(cleaned)
    return cleaned


# The cleaning step itself ------------------------------------------------------------------------------


@given(hostile_text())
def test_clean_text_leaves_nothing_a_database_or_terminal_refuses(text: str) -> None:
    out = clean_text(text)
    out.encode("utf-8")  # lone surrogates would raise here
    assert not _UNSTORABLE.search(out)
    assert clean_text(out) == out
    assert len(out) <= len(text)


def test_clean_text_keeps_what_people_write() -> None:
    kept = "Ünïcödé 中文 مرحبا \u200fRTL mark, emoji 👩‍👩‍👧‍👦, tab\tand\nlines"
    assert clean_text(kept) == kept
    assert clean_text("a\x00b\x1b[31mc\r\nd\re") == "ab[31mc\nd\ne"
    assert clean_text("\ud83d\ude00 and \ud800 alone") == "😀 and \ufffd alone"


# Slack ---------------------------------------------------------------------------------------------------


@st.composite
def slack_event_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A sound Events API body: a mention, a channel or direct message, a thread reply or a reaction."""
    user, channel, ts = draw(slack_ids), draw(slack_ids), draw(slack_ts)
    kind = draw(st.sampled_from(["mention", "message", "dm", "thread", "file_share", "reaction"]))
    text = draw(hostile_text())
    if kind == "mention":
        event = sfakes.mention(text, user=user, channel=channel, ts=ts)
    elif kind == "reaction":
        # Names as Slack makes them; hostile ones are the mutation tests' business.
        name = draw(st.from_regex(r"[a-z0-9_+'-]{1,60}(::skin-tone-[2-6])?", fullmatch=True))
        event = sfakes.reaction(name, user=user, channel=channel, ts=ts)
    elif kind == "dm":
        event = sfakes.message(text, user=user, channel="D" + channel[1:], ts=ts, channel_type="im")
    elif kind == "thread":
        event = sfakes.message(text, user=user, channel=channel, ts=ts, thread_ts=draw(slack_ts))
    else:
        extra = {"subtype": "file_share"} if kind == "file_share" else {}
        event = sfakes.message(text, user=user, channel=channel, ts=ts, **extra)
    return sfakes.event_body(event, team=draw(slack_ids))


SLACK_EXTRA = [
    ("event", "subtype"),
    ("event", "hidden"),
    ("event", "bot_id"),
    ("event", "bot_profile"),
    ("event", "channel_type"),
    ("event", "thread_ts"),
    ("event", "item_user"),
    ("event", "team"),
    ("event", "blocks"),
    ("team",),
    ("event_id",),
]


@given(mutated(slack_event_bodies(), SLACK_EXTRA))
def test_slack_events_translate_or_are_rejected(body: dict[str, Any]) -> None:
    try:
        out = edge.event_to_core(body, bot_user_id=sfakes.BOT_USER, bot_id=sfakes.BOT_ID)
    except edge.SlackPayloadError as e:
        assert str(e)
        return
    if isinstance(out, edge.Ignored):
        assert isinstance(out.reason, str)
        return
    through_boundary(out)


@given(slack_event_bodies())
def test_sound_slack_events_with_hostile_text_are_never_lost(body: dict[str, Any]) -> None:
    # Via JSON, as bolt receives it: `\ud800` escapes decode to lone surrogates on the way in.
    body = json.loads(json.dumps(body))
    out = edge.event_to_core(body, bot_user_id=sfakes.BOT_USER, bot_id=sfakes.BOT_ID)
    if isinstance(out, edge.Ignored):
        assert out.reason == "mention handled by app_mention"
        return
    cleaned = through_boundary(out)
    assert cleaned is not None, "a sound event was rejected for its text"


def test_lone_surrogates_from_json_escapes_are_cleaned() -> None:
    raw = json.dumps(sfakes.event_body(sfakes.mention("x", ts="1.1"))).replace('> x"', '> tuition \\ud800\\u0000?"')
    body = json.loads(raw)
    out = edge.event_to_core(body, bot_user_id=sfakes.BOT_USER)
    assert isinstance(out, InboundMessage) and out.text == "tuition \ud800\x00?"
    cleaned = clean_event(out)
    assert isinstance(cleaned, InboundMessage) and cleaned.text == "tuition \ufffd?"


@given(mutated(lambda: sfakes.command_form("ask How much is tuition?", response_url="https://x.test/h")))
def test_slack_slash_commands_translate_or_are_rejected(body: dict[str, Any]) -> None:
    try:
        out = edge.command_to_event(body)
    except edge.SlackPayloadError:
        return
    through_boundary(out)


def _press(action_id: str = "scopebot:case:5:dismiss", value: str = "5:dismiss") -> dict[str, Any]:
    return sfakes.block_actions(
        user="UMOD", action_id=action_id, value=value, channel="CREV", message_ts="9.9", note="a phrase"
    )


@given(mutated(_press, [("state",), ("container",), ("actions", 0, "value"), ("user", "name")]))
def test_slack_button_presses_translate_or_are_rejected(body: dict[str, Any]) -> None:
    try:
        out = cards.block_action_to_event(body)
    except edge.SlackPayloadError:
        return
    if isinstance(out, edge.Ignored):
        return
    through_boundary(out)


@given(hostile_case_ids, st.sampled_from(["dismiss", "add_word", "x" * 41, "Dismiss", ""]), st.booleans())
def test_slack_card_buttons_with_hostile_case_ids_are_refused_cleanly(case: str, action: str, in_value: bool) -> None:
    action_id = f"{cards.ACTION_PREFIX}{case}" if in_value else f"{cards.ACTION_PREFIX}{case}:{action}"
    out = cards.block_action_to_event(_press(action_id, f"{case}:{action}"))
    if isinstance(out, edge.Ignored):
        return
    assert isinstance(out, CardAction)
    assert 0 < out.case_id <= MAX_CASE_ID and out.case_id == int(case)
    assert through_boundary(out) is not None


def test_slack_translators_refuse_what_they_cannot_read() -> None:
    body = sfakes.event_body(sfakes.message("hi", ts="1.1", subtype=["file_share"]))
    with pytest.raises(edge.SlackPayloadError, match="subtype"):
        edge.event_to_core(body, bot_user_id=sfakes.BOT_USER)
    for case in ("²", "9" * 5000, "0", "2147483648"):
        assert isinstance(cards.block_action_to_event(_press(f"scopebot:case:{case}:dismiss")), edge.Ignored)


# Discord -------------------------------------------------------------------------------------------------


_FAKE = dfakes.FakeDiscord()  # payload builders only; nothing listens


def _gateway_message() -> dict[str, Any]:
    return dict(_FAKE._message(dfakes.GENERAL, dfakes.ALICE, "hi", mentions=[dfakes.BOT_USER]))


@st.composite
def discord_messages(draw: st.DrawFn) -> dict[str, Any]:
    """A sound MESSAGE_CREATE: in a guild (with the member) or a DM, mentioning the bot or not."""
    author = dfakes.user(int(draw(snowflakes)), draw(st.sampled_from(["alice", "ålice", "a" * 32])))
    dm = draw(st.booleans())
    mention = draw(st.booleans())
    content = draw(hostile_text())
    payload = _FAKE._message(
        _FAKE.dm_channel_id if dm else dfakes.GENERAL,
        author,
        f"<@{dfakes.BOT_ID}> {content}" if mention else content,
        guild=not dm,
        mentions=[dfakes.BOT_USER] if mention else [],
    )
    if not dm:
        payload["member"] = {"roles": [], "joined_at": "2024-01-01T00:00:00+00:00", "deaf": False, "mute": False}
    return dict(payload)


@st.composite
def discord_reactions(draw: st.DrawFn) -> dict[str, Any]:
    """A sound MESSAGE_REACTION_ADD in a guild."""
    who = dfakes.user(int(draw(snowflakes)), "bob")
    return {
        "user_id": who["id"],
        "channel_id": str(dfakes.GENERAL),
        "message_id": draw(snowflakes),
        "emoji": {"id": None, "name": draw(st.sampled_from(["🚩", "🚩\ufe0f", "👍"]) | wild_text)},
        "message_author_id": draw(snowflakes),
        "burst": False,
        "type": 0,
        "guild_id": str(dfakes.GUILD_ID),
        "member": dfakes.member(who, [dfakes.MOD_ROLE]),
    }


@pytest.fixture(scope="module")
def state() -> Iterator[tuple[ConnectionState[Any], list[tuple[str, tuple[Any, ...]]]]]:
    """discord.py's connection state after READY and GUILD_CREATE, recording what its parsers dispatch."""
    loop = asyncio.new_event_loop()
    dispatched: list[tuple[str, tuple[Any, ...]]] = []
    st_: ConnectionState[Any] = ConnectionState(
        dispatch=lambda event, *args: dispatched.append((event, args)),
        handlers={},
        hooks={},
        http=HTTPClient(loop),
        intents=INTENTS,
        max_messages=None,
    )
    st_.user = discord.ClientUser(state=st_, data=dfakes.BOT_USER)  # type: ignore[arg-type]
    st_._add_guild(discord.Guild(data=_FAKE.guild(), state=st_))  # type: ignore[arg-type]
    try:
        yield st_, dispatched
    finally:
        loop.close()


def _translate_gateway(
    state: tuple[ConnectionState[Any], list[tuple[str, tuple[Any, ...]]]], event: str, payload: Any
) -> list[object]:
    """Screen, parse (as the guarded parser does) and translate one dispatch; the core events it gives."""
    st_, dispatched = state
    if gateway_problem(event, payload) is not None:
        return []
    dispatched.clear()
    try:
        st_.parsers[event](payload)
    except Exception:  # noqa: BLE001 -- what the parser guard catches and logs; the screen is a first line only
        return []
    out: list[object] = []
    for name, args in dispatched:
        try:
            if name == "message" and dedge.is_chat(args[0]):
                out.append(dedge.to_inbound(args[0], bot_user_id=dfakes.BOT_ID, bot_role_ids=[dfakes.BOT_ROLE]))
            elif name == "raw_reaction_add":
                out.append(dedge.to_reaction(args[0]))
        except dedge.Rejected:
            continue
    return out


MESSAGE_EXTRA = [
    ("guild_id",),
    ("member",),
    ("referenced_message",),
    ("message_reference",),
    ("thread",),
    ("webhook_id",),
    ("interaction",),
    ("sticker_items",),
    ("author", "global_name"),
]


@given(mutated(discord_messages(), MESSAGE_EXTRA))
def test_discord_messages_translate_or_are_rejected(state: Any, payload: dict[str, Any]) -> None:
    for event in _translate_gateway(state, "MESSAGE_CREATE", payload):
        cleaned = through_boundary(event)
        if isinstance(cleaned, InboundMessage) and "guild_id" in payload:
            assert not cleaned.ref.place.is_direct, "a server message was taken for a direct message"


@given(discord_messages())
def test_sound_discord_messages_with_hostile_text_are_never_lost(state: Any, payload: dict[str, Any]) -> None:
    payload = json.loads(json.dumps(payload))
    events = _translate_gateway(state, "MESSAGE_CREATE", payload)
    if not payload["content"].strip():
        return  # text-less messages are not chat
    assert len(events) == 1
    assert through_boundary(events[0]) is not None


@given(mutated(discord_reactions(), [("member", "nick"), ("member", "user", "global_name"), ("emoji", "id")]))
def test_discord_reactions_translate_or_are_rejected(state: Any, payload: dict[str, Any]) -> None:
    for event in _translate_gateway(state, "MESSAGE_REACTION_ADD", payload):
        through_boundary(event)


def test_a_message_from_a_server_not_in_the_cache_is_not_a_direct_message(state: Any) -> None:
    payload = _gateway_message()
    payload["guild_id"] = "5"  # a server the client has not (yet) seen
    [event] = _translate_gateway(state, "MESSAGE_CREATE", payload)
    assert isinstance(event, InboundMessage)
    assert event.ref.place == Place("discord", "5", str(dfakes.GENERAL)) and not event.ref.place.is_direct


def test_cleaning_keeps_a_threads_parent_channel_and_whom_a_message_is_for() -> None:
    # A Discord thread's parent channel carries its scope binding: once dropped here, no thread of a bound channel was
    # answered without a mention, and a 🚩 there filed a case without its scope.
    place = Place("discord", "1", "55", parent="2")
    alice = Actor("discord", "7", "alice")
    message = InboundMessage(ref=MessageRef(place, "9"), author=alice, text="deadline?", mentions_others=True)
    cleaned = clean_event(message)
    assert isinstance(cleaned, InboundMessage) and cleaned.ref.place.parent == "2" and cleaned.mentions_others
    flag = clean_event(ReactionAdded(target=MessageRef(place, "9"), reactor=alice, emoji="flag"))
    assert isinstance(flag, ReactionAdded) and flag.target.place.parent == "2"
    bad = dataclasses.replace(message, ref=MessageRef(Place("discord", "1", "55", parent="2\n"), "9"))
    with pytest.raises(MalformedEvent, match="parent channel"):
        clean_event(bad)


def test_a_display_name_that_is_not_text_falls_back_to_the_username(state: Any) -> None:
    payload = _gateway_message()
    payload["author"] = dict(payload["author"], global_name=["not", "a", "name"])
    payload["member"] = {"roles": [], "nick": {"not": "a nick"}, "joined_at": "2024-01-01T00:00:00+00:00"}
    [event] = _translate_gateway(state, "MESSAGE_CREATE", payload)
    assert isinstance(event, InboundMessage) and event.author.display_name == dfakes.ALICE["username"]


@given(hostile_case_ids, st.sampled_from(["dismiss", "add_word", "x" * 40, "Dismiss", ""]))
def test_discord_card_buttons_with_hostile_case_ids_are_refused_cleanly(case: str, action: str) -> None:
    custom_id = f"scopebot:case:{case}:{action}"
    try:
        case_id, parsed_action = dedge.parse_custom_id(custom_id)
    except dedge.Rejected:
        matched = re.fullmatch(CUSTOM_ID_TEMPLATE, custom_id)
        if matched is not None:
            # discord.py still routes the press to the button by its template; the edge must refuse it there.
            interaction = SimpleNamespace(user=SimpleNamespace(), message=None)
            with pytest.raises(dedge.Rejected):
                dedge.to_card_action(interaction, case_id=int(matched["case"]), action=matched["action"])  # type: ignore[arg-type]
        return
    assert 0 < case_id <= MAX_CASE_ID and parsed_action == action


@given(st.text(max_size=120) | hostile_ids)
def test_snowflakes_from_config_are_numbers_or_a_clear_error(value: str) -> None:
    try:
        out = dedge.snowflake(value, "channel id")
    except events_module.PlatformError as e:
        assert not e.retryable and "channel id" in str(e)
        return
    assert out == int(value) and 0 <= out < 10**20


# Console -------------------------------------------------------------------------------------------------


_LOOKUP = {1: MessageRef(Place("console", console_edge.WORKSPACE, "dm"), "1")}


@given(
    st.sampled_from(["", "@bot ", "/flag ", "/react 1 ", "/react ", "/press ", "/wait ", "/as ", "/in ", "/scopebot "]),
    hostile_text() | hostile_case_ids,
)
def test_console_lines_parse_or_explain_never_raise(prefix: str, rest: str) -> None:
    parsed = console_edge.parse_line(prefix + rest, console_edge.Session(), bot_name="scopebot", lookup=_LOOKUP)
    if isinstance(parsed, console_edge.Post):
        parsed = console_edge.to_inbound(parsed, 2)
    if isinstance(parsed, CORE_TYPES):
        through_boundary(parsed)


@pytest.mark.parametrize(
    "line", ["/flag ²", "/react ¹ x", "/press ² dismiss", "/press " + "9" * 5000 + " x", "/flag 1e3"]
)
def test_console_numbers_must_be_plain_digits(line: str) -> None:
    parsed = console_edge.parse_line(line, console_edge.Session(), bot_name="scopebot", lookup=_LOOKUP)
    assert isinstance(parsed, console_edge.Problem) and parsed.text.startswith("usage:")


def test_a_message_without_its_mentions_list_is_refused_by_the_screen(state: Any) -> None:
    payload = _gateway_message()
    del payload["mentions"]
    assert gateway_problem("MESSAGE_CREATE", payload) == "mentions is missing or not a list of users"
    assert _translate_gateway(state, "MESSAGE_CREATE", payload) == []


@pytest.mark.parametrize("key", ["username", "discriminator", "avatar"])
def test_an_author_discord_py_cannot_build_is_refused_by_the_screen(state: Any, key: str) -> None:
    # discord.py swallows the KeyError inside Message and leaves it without `author`; reading it then raises.
    payload = _gateway_message()
    payload["author"] = {k: v for k, v in payload["author"].items() if k != key}
    assert gateway_problem("MESSAGE_CREATE", payload) == "author lacks a username, discriminator or avatar"
    assert _translate_gateway(state, "MESSAGE_CREATE", payload) == []
