"""The pure Slack translation functions: payloads in, core events out; core types in, Web API arguments out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters import slack_cards as cards
from adapters import slack_edge as edge
from adapters import slack_errors as errors
from bot.events import (
    FLAG,
    CardAction,
    CardButton,
    InboundMessage,
    MessageRef,
    OutboundMessage,
    Place,
    ReactionAdded,
    Reply,
    ReviewCard,
)
from tests.slack_fakes import (
    BOT_ID,
    BOT_USER,
    TEAM,
    block_actions,
    command_form,
    event_body,
    mention,
    message,
    reaction,
)


def to_core(event: dict[str, Any]) -> Any:
    return edge.event_to_core(event_body(event), bot_user_id=BOT_USER, bot_id=BOT_ID)


def test_mention_becomes_a_question_without_the_bot_mention() -> None:
    got = to_core(mention("When is the deadline? See <https://x.test/a|the page> &amp; <#C9|admissions>", ts="1.5"))
    assert isinstance(got, InboundMessage)
    assert got.text == "When is the deadline? See the page (https://x.test/a) & #admissions"
    assert got.mentions_bot
    assert got.ref == MessageRef(Place("slack", TEAM, "CGENERAL"), "1.5")
    assert got.author.user_id == "UMEMBER"
    assert got.request_id is not None and got.request_id.startswith("Ev")
    assert got.sent_at is not None and got.sent_at.year == 1970


def test_thread_reply_keeps_its_thread() -> None:
    got = to_core(mention("more?", ts="2.0", thread_ts="1.0"))
    assert isinstance(got, InboundMessage)
    assert got.ref.place.thread == "1.0"
    assert edge.thread_of(got.ref) == "1.0"


def test_direct_message_is_direct_and_channel_mention_is_left_to_app_mention() -> None:
    dm = to_core(message("how much is tuition", channel="D1", channel_type="im", ts="1.1"))
    assert isinstance(dm, InboundMessage) and dm.ref.place.is_direct and not dm.mentions_bot
    twice = to_core(message(f"<@{BOT_USER}> tuition?", ts="1.2"))
    assert isinstance(twice, edge.Ignored) and "app_mention" in twice.reason
    plain = to_core(message("tuition?", ts="1.3"))
    assert isinstance(plain, InboundMessage) and not plain.mentions_bot and not plain.ref.place.is_direct


def test_a_message_naming_another_member_is_marked_so() -> None:
    to_sam = to_core(message("<@USAM> you coming to the tour tomorrow?", ts="1.4"))
    assert isinstance(to_sam, InboundMessage) and to_sam.mentions_others and not to_sam.mentions_bot
    assert to_sam.text == "@USAM you coming to the tour tomorrow?"
    labelled = to_core(message("<@USAM|sam> you coming?", ts="1.5"))
    assert isinstance(labelled, InboundMessage) and labelled.mentions_others
    # Naming the bot, everyone in the channel, or no one is not talking to another member.
    both = to_core(mention(f"<@{BOT_USER}> <@USAM> and I want to know the deadline", ts="1.6"))
    assert isinstance(both, InboundMessage) and both.mentions_bot and both.mentions_others
    for text in (f"<@{BOT_USER}> deadline?", "<!here> is the tour on?", "deadline?"):
        got = to_core(mention(text, ts="1.7"))
        assert isinstance(got, InboundMessage) and not got.mentions_others, text


def test_a_reply_in_a_thread_another_member_started_is_for_them() -> None:
    # Sam answers Alex's message in its thread: talk between members, as a Discord reply to Alex would be.
    to_alex = to_core(
        message("same here, try the portal", user="USAM", ts="2.1", thread_ts="2.0", parent_user_id="UALEX")
    )
    assert isinstance(to_alex, InboundMessage) and to_alex.mentions_others
    # Alex following up in the thread of their own question (where the bot answered), or anyone in a thread the
    # bot started, is still asking the bot; and a mention of the bot says so whatever the thread.
    own = to_core(message("and for transfers?", user="UALEX", ts="2.2", thread_ts="2.0", parent_user_id="UALEX"))
    bots = to_core(message("what about fees?", user="USAM", ts="3.1", thread_ts="3.0", parent_user_id=BOT_USER))
    top = to_core(message("deadline?", user="USAM", ts="4.0", thread_ts="4.0", parent_user_id="USAM"))
    unknown = to_core(message("and for transfers?", user="USAM", ts="2.3", thread_ts="2.0"))
    for got in (own, bots, top, unknown):
        assert isinstance(got, InboundMessage) and not got.mentions_others
    asked = to_core(mention("and for transfers?", user="USAM", ts="2.4", thread_ts="2.0", parent_user_id="UALEX"))
    assert isinstance(asked, InboundMessage) and asked.mentions_bot


@pytest.mark.parametrize(
    "extra",
    [
        {"bot_id": "B999"},
        {"bot_id": BOT_ID},
        {"subtype": "message_changed"},
        {"subtype": "channel_join"},
        {"subtype": "bot_message"},
        {"hidden": True},
        {"user": BOT_USER},
    ],
)
def test_bots_edits_and_joins_are_ignored(extra: dict[str, Any]) -> None:
    assert isinstance(to_core(message("hello", ts="1.1") | extra), edge.Ignored)


def test_thread_broadcast_and_file_share_still_carry_a_question() -> None:
    for subtype in ("thread_broadcast", "file_share"):
        assert isinstance(to_core(message("tuition?", ts="1.1", subtype=subtype)), InboundMessage)


@pytest.mark.parametrize("name", ["triangular_flag_on_post", ":triangular_flag_on_post:", "red_flag::skin-tone-3"])
def test_flag_reaction_is_canonical(name: str) -> None:
    got = to_core(reaction(name, user="UREP", channel="CGENERAL", ts="1.1", item_user="UAUTH"))
    assert isinstance(got, ReactionAdded)
    assert got.emoji == FLAG
    assert got.target == MessageRef(Place("slack", TEAM, "CGENERAL"), "1.1")
    assert got.target_author_id == "UAUTH"
    assert got.reactor.user_id == "UREP"


def test_other_reactions_keep_their_name_and_file_reactions_are_ignored() -> None:
    got = to_core(reaction("thumbsup", user="U1", channel="C1", ts="1.1"))
    assert isinstance(got, ReactionAdded) and got.emoji == "thumbsup"
    on_file = reaction("triangular_flag_on_post", user="U1", channel="C1", ts="1.1")
    on_file["item"] = {"type": "file", "file": "F1"}
    assert isinstance(to_core(on_file), edge.Ignored)


@pytest.mark.parametrize(
    ("event", "complaint"),
    [
        ({"type": "app_mention", "text": "hi", "ts": "1.1", "user": "U1"}, "`channel`"),
        ({"type": "app_mention", "text": "hi", "channel": "C1", "user": "U1"}, "`ts`"),
        ({"type": "message", "text": 5, "channel": "C1", "ts": "1.1", "user": "U1"}, "`text`"),
        ({"type": "app_mention", "text": "hi", "channel": "C1", "ts": "1.1"}, "`user`"),
        ({"type": "reaction_added", "user": "U1", "reaction": "flag"}, "`item`"),
        ({"type": "reaction_added", "user": "U1", "reaction": "flag", "item": {"type": "message"}}, "`channel`"),
    ],
)
def test_malformed_events_raise_a_clear_error(event: dict[str, Any], complaint: str) -> None:
    with pytest.raises(edge.SlackPayloadError, match=complaint):
        to_core(event)


def test_event_without_team_or_body_is_malformed() -> None:
    body = event_body(mention("x", ts="1.1"))
    del body["team_id"]
    del body["authorizations"]
    with pytest.raises(edge.SlackPayloadError, match="team"):
        edge.event_to_core(body, bot_user_id=BOT_USER)
    with pytest.raises(edge.SlackPayloadError, match="event"):
        edge.event_to_core({"type": "event_callback", "event": "nope"}, bot_user_id=BOT_USER)


def test_button_press_carries_case_action_card_and_note() -> None:
    body = block_actions(
        user="UMOD",
        action_id=cards.action_id_for(42, "add_word"),
        value=cards.action_value_for(42, "add_word"),
        channel="CREV",
        message_ts="9.9",
        note="  bad phrase ",
    )
    got = cards.block_action_to_event(body)
    assert isinstance(got, CardAction)
    assert (got.case_id, got.action, got.argument) == (42, "add_word", "bad phrase")
    assert got.card == MessageRef(Place("slack", TEAM, "CREV"), "9.9")
    assert got.actor.user_id == "UMOD"


def test_foreign_and_forged_buttons_are_not_card_actions() -> None:
    other = block_actions(user="U1", action_id="someone_else", value="x", channel="C", message_ts="1")
    assert isinstance(cards.block_action_to_event(other), edge.Ignored)
    for action_id in ("scopebot:case:abc:dismiss", "scopebot:case:1:DROP TABLE", "scopebot:case:1"):
        forged = block_actions(user="U1", action_id=action_id, value="zz", channel="C", message_ts="1")
        assert isinstance(cards.block_action_to_event(forged), edge.Ignored)
    with pytest.raises(edge.SlackPayloadError, match="actions"):
        cards.block_action_to_event(
            block_actions(user="U1", action_id="a", value="b", channel="C", message_ts="1") | {"actions": []}
        )


def test_slash_command_becomes_command_invoked() -> None:
    got = edge.command_to_event(command_form("case 3 dismiss", user="UMOD", channel="D77"))
    assert got.text == "case 3 dismiss"
    assert got.place == Place("slack", TEAM, "D77", None, is_direct=True)
    assert got.actor.user_id == "UMOD"
    with pytest.raises(edge.SlackPayloadError, match="user_id"):
        edge.command_to_event({"channel_id": "C1", "team_id": TEAM, "text": "x"})


def test_outgoing_text_is_escaped_so_the_model_cannot_ping_everyone() -> None:
    place = Place("slack", TEAM, "C1")
    args = edge.post_args(OutboundMessage(place, "<!channel> a & b <@U1>", reply_to=MessageRef(place, "5.5")))
    assert args["text"] == "&lt;!channel&gt; a &amp; b &lt;@U1&gt;"
    assert args["thread_ts"] == "5.5"
    assert args["channel"] == "C1"
    assert edge.post_args(OutboundMessage(place, "   "))["text"] == "…"
    assert "thread_ts" not in edge.post_args(OutboundMessage(place, "top level"))
    assert edge.update_args(MessageRef(place, "5.6"), "x>y") == {"channel": "C1", "ts": "5.6", "text": "x&gt;y"}
    eph = edge.ephemeral_args(Reply(place.in_thread("5.5"), "U2", "only you"))
    assert eph == {"channel": "C1", "user": "U2", "text": "only you", "thread_ts": "5.5"}


def _card(**kw: Any) -> ReviewCard:
    base: dict[str, Any] = {
        "case_id": 12,
        "place": Place("slack", TEAM, "CREV"),
        "title": "Report on a bot answer",
        "fields": (("Reporters", "2"), ("Author", "<@U1>")),
        "body": "line one\n<!here> line two",
        "buttons": (CardButton("dismiss", "Dismiss"), CardButton("remove", "Remove", "danger")),
    }
    return ReviewCard(**(base | kw))


def test_review_card_blocks_carry_the_case_in_every_button() -> None:
    args = cards.card_args(_card())
    assert args["channel"] == "CREV"
    assert "case #12" in args["text"]
    blocks = args["blocks"]
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("scopebot:case:12:dismiss", "12:dismiss"),
        ("scopebot:case:12:remove", "12:remove"),
    ]
    assert buttons[1]["style"] == "danger" and "style" not in buttons[0]
    for b in buttons:
        assert cards.parse_action(b["action_id"], b["value"]) == (12, b["value"].split(":")[1])
    text = json.dumps(blocks)
    assert "<!here>" not in text and "&lt;@U1&gt;" in text
    assert any(b["type"] == "input" and b["block_id"].startswith(cards.NOTE_PREFIX) for b in blocks)
    assert len(blocks) <= 50


def test_card_update_targets_the_existing_message_and_respects_limits() -> None:
    existing = MessageRef(Place("slack", TEAM, "CREV"), "7.7")
    many = tuple(CardButton(f"a{i}", "L" * 100) for i in range(30))
    card = _card(title="T" * 400, fields=tuple((f"k{i}", "v" * 3000) for i in range(12)), body="b" * 5000, buttons=many)
    args = cards.card_args(card, existing=existing)
    assert (args["channel"], args["ts"]) == ("CREV", "7.7")
    blocks = args["blocks"]
    header = next(b for b in blocks if b["type"] == "header")
    assert len(header["text"]["text"]) <= cards.HEADER_MAX
    for b in blocks:
        for f in b.get("fields", []):
            assert len(f["text"]) <= cards.FIELD_MAX
        assert len(b.get("fields", [])) <= cards.FIELDS_PER_SECTION
        if b["type"] == "section" and "text" in b:
            assert len(b["text"]["text"]) <= cards.SECTION_MAX
        if b["type"] == "actions":
            assert len(b["elements"]) <= cards.BUTTONS_PER_BLOCK
            assert all(len(e["text"]["text"]) <= cards.BUTTON_LABEL_MAX for e in b["elements"])
    assert sum(len(b["elements"]) for b in blocks if b["type"] == "actions") == 30


def test_resolved_card_has_no_buttons_and_escalation_pings_the_group() -> None:
    resolved = cards.card_blocks(_card(buttons=(), status="resolved: dismissed by UMOD"))
    assert not any(b["type"] in ("actions", "input") for b in resolved)
    urgent = cards.card_blocks(_card(urgent=True, mention="S0MODS"))
    assert urgent[0]["text"]["text"] == "<!subteam^S0MODS>"
    assert edge.mention_markup("U123") == "<@U123>"
    assert edge.mention_markup("@moderators <x>") == "@moderators &lt;x&gt;"


def test_api_errors_are_described_with_what_to_do() -> None:
    gone = errors.describe_api_error("chat.update", "channel C1", error="message_not_found", status=200)
    assert (gone.status, gone.retryable) == (404, False)
    scope = errors.describe_api_error(
        "chat.postMessage", "channel C1", error="missing_scope", status=200, needed="chat:write"
    )
    assert "chat:write" in scope.text and scope.status == 403 and not scope.retryable
    member = errors.describe_api_error("chat.postMessage", "channel C1", error="not_in_channel", status=200)
    assert "/invite" in member.text
    busy = errors.describe_api_error("chat.postMessage", "channel C1", error="", status=503)
    assert busy.retryable and busy.status == 503
    limited = errors.describe_api_error("chat.update", "x", error="ratelimited", status=429)
    assert limited.retryable and limited.status == 429


def test_fetched_message_is_plain_text_with_author() -> None:
    ref = MessageRef(Place("slack", TEAM, "C1"), "3.3")
    got = edge.fetched(
        ref,
        {"ts": "3.3", "user": "U5", "text": "a &lt;b&gt; <@U9>", "user_profile": {"display_name": "Ann"}},
        permalink="p",
    )
    assert (got.text, got.author.user_id, got.author.display_name, got.permalink) == ("a <b> @U9", "U5", "Ann", "p")
    bot = edge.fetched(ref, {"ts": "3.3", "bot_id": "B1", "text": "answer", "thread_ts": "1.0"}, permalink=None)
    assert bot.author.is_bot and bot.ref.place.thread == "1.0"


def test_cards_are_recognised_by_case_and_author() -> None:
    blocks = cards.card_blocks(_card(case_id=7))
    mine = {"ts": "1.1", "bot_id": BOT_ID, "blocks": blocks}
    assert cards.is_card_for(mine, 7, bot_id=BOT_ID, bot_user_id=BOT_USER)
    assert not cards.is_card_for(mine, 77, bot_id=BOT_ID, bot_user_id=BOT_USER)
    assert not cards.is_card_for(mine | {"bot_id": "BOTHER"}, 7, bot_id=BOT_ID, bot_user_id=BOT_USER)
    assert not cards.is_card_for({"ts": "1.1", "user": BOT_USER, "text": "x"}, 7, bot_id=BOT_ID, bot_user_id=BOT_USER)


def test_only_a_leading_trusted_ping_becomes_a_mention() -> None:
    place = Place("slack", TEAM, "CREV")
    ping = edge.post_args(OutboundMessage(place, "S0MODS case #3 needs a moderator <now>."), ping="S0MODS")
    assert ping["text"] == "<!subteam^S0MODS> case #3 needs a moderator &lt;now&gt;."
    raw = edge.post_args(OutboundMessage(place, "<!subteam^S0MODS> case #3"), ping="<!subteam^S0MODS>")
    assert raw["text"] == "<!subteam^S0MODS> case #3"
    inside = edge.post_args(OutboundMessage(place, "see <!subteam^S0MODS>"), ping="<!subteam^S0MODS>")
    assert inside["text"] == "see &lt;!subteam^S0MODS&gt;"
    assert edge.post_args(OutboundMessage(place, "<!subteam^S0MODS> hi"))["text"].startswith("&lt;!subteam")
