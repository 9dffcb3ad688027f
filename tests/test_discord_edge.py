"""Pure translation at the Discord edge, on real discord.py objects built from gateway-shaped payloads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
import pytest
from discord.http import HTTPClient
from discord.state import ConnectionState

from adapters.discord_client import INTENTS
from adapters.discord_edge import (
    ANSWER_MENTIONS,
    DIRECT,
    INVITE_PERMISSIONS,
    MAX_TIMEOUT,
    Rejected,
    ReviewerPings,
    actor_of,
    allowed_mentions,
    canonical_emoji,
    card_buttons,
    card_custom_id,
    card_embed,
    command_text,
    invite_url,
    is_chat,
    parent_of,
    parse_custom_id,
    platform_error,
    reference_to,
    reviewer_pings,
    snowflake,
    strip_mentions,
    timeout_until,
    to_inbound,
    to_reaction,
)
from adapters.discord_screen import gateway_problem
from bot.config import Config, load_config
from bot.events import FLAG, CardButton, MessageRef, Place, PlatformError, ReviewCard
from bot.scopes import ScopeRegistry
from tests.discord_fakes import (
    ADMISSIONS,
    ALICE,
    BOB_MOD,
    BOT_ID,
    BOT_ROLE,
    BOT_USER,
    GENERAL,
    GUILD_ID,
    MOD_ROLE,
    FakeDiscord,
    thread_data,
)


@pytest.fixture
def fake() -> FakeDiscord:
    """Payload factories only; nothing listens."""
    return FakeDiscord()


@pytest.fixture
async def state(fake: FakeDiscord) -> ConnectionState[Any]:
    """A discord.py connection state holding the fake's guild, as after READY + GUILD_CREATE."""
    st: ConnectionState[Any] = ConnectionState(
        dispatch=lambda *a, **k: None,
        handlers={},
        hooks={},
        http=HTTPClient(asyncio.get_running_loop()),
        intents=INTENTS,
    )
    st.user = discord.ClientUser(state=st, data=BOT_USER)  # type: ignore[arg-type]
    st._add_guild(discord.Guild(data=fake.guild(), state=st))  # type: ignore[arg-type]
    return st


def message(state: ConnectionState[Any], payload: dict[str, Any]) -> discord.Message:
    """The discord.py message for a MESSAGE_CREATE payload."""
    guild = state._get_guild(int(payload["guild_id"])) if "guild_id" in payload else None
    channel: Any = guild.get_channel(int(payload["channel_id"])) if guild else None
    if channel is None:
        channel = discord.PartialMessageable(state=state, id=int(payload["channel_id"]))
    return discord.Message(state=state, channel=channel, data=payload)  # type: ignore[arg-type]


def gateway_message(fake: FakeDiscord, author: dict[str, Any], content: str, **kw: Any) -> dict[str, Any]:
    """A MESSAGE_CREATE payload as the fake would dispatch it."""
    dm = kw.pop("dm", False)
    payload = fake._message(kw.pop("channel_id", GENERAL), author, content, guild=not dm, **kw)
    if not dm:
        payload["member"] = {k: v for k, v in fake.members[author["id"]].items() if k != "user"}
    return payload


# Raw payload screening -----------------------------------------------------------------------------


def test_sound_payloads_pass_the_screen(fake: FakeDiscord) -> None:
    assert gateway_problem("MESSAGE_CREATE", gateway_message(fake, ALICE, "hi")) is None
    assert gateway_problem("GUILD_CREATE", fake.guild()) is None
    assert gateway_problem("TYPING_START", {"anything": "goes"}) is None


@pytest.mark.parametrize(
    ("event", "mutate", "reason"),
    [
        ("MESSAGE_CREATE", lambda p: p.pop("author"), "author"),
        ("MESSAGE_CREATE", lambda p: p.update(id="not-a-number"), "id"),
        ("MESSAGE_CREATE", lambda p: p.update(content=None), "content"),
        ("MESSAGE_CREATE", lambda p: p.update(channel_id=None), "channel_id"),
        ("MESSAGE_CREATE", lambda p: p["member"].update(roles="admin"), "member.roles"),
        ("MESSAGE_CREATE", lambda p: p.update(mentions=[{"name": "x"}]), "mentions"),
        ("MESSAGE_CREATE", lambda p: p.update(type="default"), "type"),
        (
            "MESSAGE_CREATE",
            lambda p: p.update(components=[{"type": 1, "components": [{"type": 2, "custom_id": {}}]}]),
            "custom_id",
        ),
        ("MESSAGE_CREATE", lambda p: p.update(components="buttons"), "components"),
    ],
)
def test_malformed_messages_are_rejected_with_a_reason(fake: FakeDiscord, event: str, mutate: Any, reason: str) -> None:
    payload = gateway_message(fake, ALICE, "hi")
    mutate(payload)
    problem = gateway_problem(event, payload)
    assert problem is not None and reason in problem


def test_malformed_reactions_and_interactions_are_rejected() -> None:
    assert gateway_problem("MESSAGE_REACTION_ADD", "nonsense") == "payload is not an object"
    reaction: dict[str, Any] = {
        "user_id": "1",
        "channel_id": "2",
        "message_id": "3",
        "type": 0,
        "emoji": {"id": None, "name": None},
    }
    assert "emoji" in (gateway_problem("MESSAGE_REACTION_ADD", reaction) or "")
    reaction["emoji"] = {"id": None, "name": "🚩"}
    assert gateway_problem("MESSAGE_REACTION_ADD", reaction) is None
    assert "type" in (gateway_problem("MESSAGE_REACTION_ADD", dict(reaction, type=None)) or "")
    interaction = {"id": "1", "application_id": "2", "type": 3, "version": 1, "member": {"roles": []}, "data": {}}
    assert "token" in (gateway_problem("INTERACTION_CREATE", interaction) or "")
    interaction["token"] = "t"
    assert "custom_id" in (gateway_problem("INTERACTION_CREATE", interaction) or "")
    interaction["data"] = {"custom_id": "scopebot:case:1:dismiss", "component_type": 2}
    assert gateway_problem("INTERACTION_CREATE", interaction) is None
    del interaction["member"]
    assert "member nor user" in (gateway_problem("INTERACTION_CREATE", interaction) or "")


# Discord → core ------------------------------------------------------------------------------------


async def test_a_mention_becomes_an_addressed_question_without_the_mention(
    fake: FakeDiscord, state: ConnectionState[Any]
) -> None:
    payload = gateway_message(fake, BOB_MOD, f"<@{BOT_ID}>  When is the deadline?", mentions=[BOT_USER])
    event = to_inbound(message(state, payload), bot_user_id=BOT_ID)
    assert event.mentions_bot and event.text == "When is the deadline?"
    assert event.ref == MessageRef(Place("discord", str(GUILD_ID), str(GENERAL)), payload["id"])
    assert event.author.user_id == BOB_MOD["id"] and not event.author.is_bot
    assert event.author.roles == (str(MOD_ROLE),)  # the moderator role, without @everyone
    assert event.permalink == f"https://discord.com/channels/{GUILD_ID}/{GENERAL}/{payload['id']}"


async def test_plain_messages_dms_and_role_mentions(fake: FakeDiscord, state: ConnectionState[Any]) -> None:
    plain = to_inbound(
        message(state, gateway_message(fake, ALICE, "hello <@123>", channel_id=ADMISSIONS)), bot_user_id=BOT_ID
    )
    assert not plain.mentions_bot and plain.text == "hello <@123>"  # other people's mentions stay
    dm = to_inbound(message(state, gateway_message(fake, ALICE, "hi", dm=True, channel_id=42)), bot_user_id=BOT_ID)
    assert dm.ref.place == Place("discord", DIRECT, "42", None, is_direct=True)
    role = gateway_message(fake, ALICE, f"<@&{BOT_ROLE}> tuition?", mention_roles=[str(BOT_ROLE)])
    by_role = to_inbound(message(state, role), bot_user_id=BOT_ID, bot_role_ids=[BOT_ROLE])
    assert by_role.mentions_bot and by_role.text == "tuition?"


async def test_a_message_to_another_member_is_marked_so(fake: FakeDiscord, state: ConnectionState[Any]) -> None:
    to_alice = gateway_message(fake, BOB_MOD, f"<@{ALICE['id']}> you coming tonight?", mentions=[ALICE])
    assert to_inbound(message(state, to_alice), bot_user_id=BOT_ID).mentions_others
    # A reply to Alice's message, without pinging her, is for her too; a reply to the bot's is not.
    hers = gateway_message(fake, ALICE, "anyone up for the tour?")
    ref = {"message_id": hers["id"], "channel_id": hers["channel_id"], "guild_id": hers["guild_id"]}
    reply = gateway_message(fake, BOB_MOD, "me!", type=19, message_reference=ref, referenced_message=hers)
    assert to_inbound(message(state, reply), bot_user_id=BOT_ID).mentions_others
    answer = gateway_message(fake, BOT_USER, "The tour is at 10.")
    ref = {"message_id": answer["id"], "channel_id": answer["channel_id"], "guild_id": answer["guild_id"]}
    follow_up = gateway_message(fake, BOB_MOD, "and at 2?", type=19, message_reference=ref, referenced_message=answer)
    assert not to_inbound(message(state, follow_up), bot_user_id=BOT_ID).mentions_others
    to_bot = gateway_message(fake, ALICE, f"<@{BOT_ID}> tuition?", mentions=[BOT_USER])
    assert not to_inbound(message(state, to_bot), bot_user_id=BOT_ID).mentions_others


async def test_only_chat_messages_with_text_count(fake: FakeDiscord, state: ConnectionState[Any]) -> None:
    assert is_chat(message(state, gateway_message(fake, ALICE, "a question")))
    assert is_chat(message(state, gateway_message(fake, ALICE, "a reply", type=19)))
    assert not is_chat(message(state, gateway_message(fake, ALICE, "", type=7)))  # "alice joined the server"
    assert not is_chat(message(state, gateway_message(fake, ALICE, "  ")))  # an image without text


def test_strip_mentions_only_removes_the_given_ids() -> None:
    assert strip_mentions("<@!5> hi <@6>  there <@&7>", [5, 7]) == "hi <@6> there"


async def test_a_flag_reaction_is_canonical_and_carries_the_reactor_roles(
    fake: FakeDiscord, state: ConnectionState[Any]
) -> None:
    data = {
        "user_id": BOB_MOD["id"],
        "channel_id": str(GENERAL),
        "message_id": "55",
        "guild_id": str(GUILD_ID),
        "emoji": {"id": None, "name": "🚩\ufe0f"},
        "member": fake.members[BOB_MOD["id"]],
        "message_author_id": ALICE["id"],
        "type": 0,
    }
    payload = discord.RawReactionActionEvent(data, discord.PartialEmoji.from_dict(data["emoji"]), "REACTION_ADD")  # type: ignore[arg-type]
    payload.member = discord.Member(data=data["member"], guild=state._get_guild(GUILD_ID), state=state)  # type: ignore[arg-type]
    event = to_reaction(payload)
    assert event.emoji == FLAG
    assert event.target.message_id == "55" and event.target_author_id == ALICE["id"]
    assert event.reactor.roles == (str(MOD_ROLE),)


def test_only_the_unicode_flag_is_a_flag() -> None:
    assert canonical_emoji(discord.PartialEmoji(name="🚩")) == FLAG
    assert canonical_emoji(discord.PartialEmoji(name="👍")) == "👍"
    assert canonical_emoji(discord.PartialEmoji(name="flag", id=99)) == "custom:flag"


def test_button_ids_carry_case_and_action_both_ways() -> None:
    cid = card_custom_id(12345, "timeout")
    assert cid == "scopebot:case:12345:timeout" and len(cid) <= 100
    assert parse_custom_id(cid) == (12345, "timeout")
    with pytest.raises(Rejected):
        parse_custom_id("someone-elses-button")
    with pytest.raises(ValueError, match="custom_id"):
        card_custom_id(1, "Bad Action!")


def test_command_text_mirrors_the_slash_command() -> None:
    assert command_text("ask", " When is it? ") == "ask When is it?"
    assert command_text("case", 12, "dismiss", None) == "case 12 dismiss"
    assert command_text("audit", "") == "audit"


# Core → Discord ------------------------------------------------------------------------------------


def card(**kw: Any) -> ReviewCard:
    base: dict[str, Any] = {
        "case_id": 7,
        "place": Place("discord", str(GUILD_ID), "1"),
        "title": "Flagged answer",
        "fields": (("Reporter", "alice"), ("Scope", "college")),
        "body": "The flagged text",
        "buttons": (
            CardButton("dismiss", "Dismiss"),
            CardButton("remove", "Remove", "danger"),
            CardButton("escalate", "Escalate", "primary"),
        ),
    }
    base.update(kw)
    return ReviewCard(**base)


def test_cards_become_embeds_within_discord_limits() -> None:
    embed = card_embed(card())
    assert embed.title == "Flagged answer" and embed.description == "The flagged text"
    assert embed.footer.text == "Case 7 · open"
    assert [(f.name, f.value) for f in embed.fields] == [("Reporter", "alice"), ("Scope", "college")]
    huge = card_embed(
        card(title="T" * 500, body="B" * 9000, fields=tuple((f"n{i}", "v" * 2000) for i in range(40)), urgent=True)
    )
    assert len(huge) <= 6000 and 0 < len(huge.fields) <= 25
    assert huge.description is not None and huge.description.startswith("BBB") and huge.description.endswith("…")
    many = card_embed(card(fields=tuple((f"n{i}", "v") for i in range(40))))
    assert len(many.fields) == 25
    assert huge.title is not None and huge.title.startswith("🔴") and len(huge.title) <= 256
    assert all(len(f.value or "") <= 1024 for f in huge.fields)
    assert huge.colour is not None and huge.colour.value == 0xE74C3C


def test_card_buttons_map_styles_and_ids() -> None:
    specs = card_buttons(card())
    assert [(s.custom_id, s.label, s.style) for s in specs] == [
        ("scopebot:case:7:dismiss", "Dismiss", discord.ButtonStyle.secondary),
        ("scopebot:case:7:remove", "Remove", discord.ButtonStyle.danger),
        ("scopebot:case:7:escalate", "Escalate", discord.ButtonStyle.primary),
    ]
    many = card(buttons=tuple(CardButton(f"a{i}", "x" * 100) for i in range(30)))
    assert len(card_buttons(many)) == 25 and all(len(s.label) <= 80 for s in card_buttons(many))


def test_replies_reference_discord_messages_only() -> None:
    place = Place("discord", str(GUILD_ID), str(GENERAL))
    ref = reference_to(MessageRef(place, "123"))
    assert ref is not None and (ref.message_id, ref.channel_id, ref.guild_id) == (123, GENERAL, GUILD_ID)
    assert ref.fail_if_not_exists is False  # a deleted question must not lose the answer
    assert reference_to(MessageRef(place, "cmd-abc")) is None
    assert reference_to(None) is None


def test_timeouts_are_clamped_to_28_days() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert timeout_until(now + timedelta(hours=1), now) == now + timedelta(hours=1)
    assert timeout_until(now + timedelta(days=60), now) < now + MAX_TIMEOUT
    with pytest.raises(ValueError, match="timezone"):
        timeout_until(datetime(2025, 1, 2), now)


def test_snowflakes_from_config_are_checked() -> None:
    assert snowflake("810000000000000001", "channel id") == 810000000000000001
    with pytest.raises(PlatformError, match="Copy ID") as e:
        snowflake("reviewers", "channel id")
    assert not e.value.retryable


def _http_error(cls: type[discord.HTTPException], status: int, code: int) -> discord.HTTPException:
    response = SimpleNamespace(status=status, reason="x")
    return cls(response, {"message": "nope", "code": code})  # type: ignore[arg-type]


def test_platform_errors_say_what_failed_and_whether_to_retry() -> None:
    forbidden = platform_error(_http_error(discord.Forbidden, 403, 50013), "post in channel 5")
    assert forbidden.status == 403 and not forbidden.retryable
    assert "post in channel 5" in str(forbidden) and "permission" in str(forbidden)
    gone = platform_error(_http_error(discord.NotFound, 404, 10008), "edit message 9")
    assert gone.status == 404 and not gone.retryable
    server = platform_error(_http_error(discord.DiscordServerError, 503, 0), "edit message 9")
    assert server.status == 503 and server.retryable
    net = platform_error(TimeoutError("slow"), "edit message 9")
    assert net.retryable and "could not reach Discord" in str(net)


def test_actor_of_a_plain_user_has_no_roles(state: ConnectionState[Any]) -> None:
    actor = actor_of(discord.User(state=state, data=ALICE))  # type: ignore[arg-type]
    assert actor == actor.__class__("discord", ALICE["id"], "alice", is_bot=False, roles=())


def test_the_readme_invite_asks_for_exactly_the_permissions_the_bot_uses() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Discord") :]
    assert f"permissions={INVITE_PERMISSIONS.value}" in section
    assert f"`{INVITE_PERMISSIONS.value}` is the sum" in section
    url = invite_url(123)
    assert url.startswith("https://discord.com/oauth2/authorize?client_id=123&")
    assert "scope=bot+applications.commands" in url and f"permissions={INVITE_PERMISSIONS.value}" in url
    # Everything the adapter does needs one of these; nothing more is asked for.
    granted = {name for name, on in INVITE_PERMISSIONS if on}
    assert granted == {
        "read_messages",  # discord.py's name for View Channel
        "send_messages",
        "send_messages_in_threads",
        "embed_links",
        "read_message_history",
        "manage_messages",
        "moderate_members",
    }


def test_only_the_configured_escalation_mention_pings_and_only_in_reviewer_channels(config: Config) -> None:
    moderation = config.moderation.model_copy(
        update={"reviewer_channels": {"discord": "55"}, "escalation_mentions": {"discord": "<@&7> <@8> @everyone"}}
    )
    pings = reviewer_pings(config.model_copy(update={"moderation": moderation}))
    assert pings == ReviewerPings(frozenset({"55"}), (7,), (8,))
    there = allowed_mentions(Place("discord", "1", "55"), pings).to_dict()
    assert there == {"parse": [], "roles": [7], "users": [8]}  # no @everyone, no reply ping
    assert allowed_mentions(Place("discord", "1", "56"), pings) is ANSWER_MENTIONS
    assert ANSWER_MENTIONS.to_dict() == {"parse": [], "replied_user": True}


def _thread(state: ConnectionState[Any], thread_id: int, parent_id: int, owner: Any = ALICE) -> discord.Thread:
    """A public thread under `parent_id` opened by `owner`, as discord.py holds one after THREAD_CREATE."""
    guild = state._get_guild(GUILD_ID)
    assert guild is not None
    data = thread_data(thread_id, parent_id, owner, "about deadlines")
    return discord.Thread(guild=guild, state=state, data=data)  # type: ignore[arg-type]


async def test_a_message_in_a_thread_answers_for_the_scope_bound_to_its_channel(
    fake: FakeDiscord, state: ConnectionState[Any], write_config: Any
) -> None:
    thread = _thread(state, 555_000_111, ADMISSIONS)
    payload = gateway_message(fake, ALICE, "When is the deadline?", channel_id=thread.id)
    event = to_inbound(discord.Message(state=state, channel=thread, data=payload), bot_user_id=BOT_ID)  # type: ignore[arg-type]
    # Replies go to the thread itself; the binding comes from the channel it belongs to.
    assert event.ref.place.channel == str(thread.id) and event.ref.place.parent == str(ADMISSIONS)
    assert event.ref == MessageRef(Place("discord", str(GUILD_ID), str(thread.id)), payload["id"])

    extra = f"""
    [[scopes]]
    name = "admissions"
    description = "Answers questions about admissions deadlines."
    refusal = "Admissions only."
    channels = ["discord:{ADMISSIONS}"]
    """
    registry = ScopeRegistry(load_config(write_config(extra)))
    bound = registry.bound_to(event.ref.place)
    assert bound is not None and bound.name == "admissions"
    # A thread under another channel is not bound.
    other = to_inbound(
        discord.Message(state=state, channel=_thread(state, 555_000_222, GENERAL), data=payload),  # type: ignore[arg-type]
        bot_user_id=BOT_ID,
    )
    assert registry.bound_to(other.ref.place) is None

    # A 🚩 in the thread carries the parent too, so its case gets the scope.
    raw = discord.RawReactionActionEvent(
        {
            "user_id": BOB_MOD["id"],
            "channel_id": str(thread.id),
            "message_id": payload["id"],
            "guild_id": str(GUILD_ID),
            "emoji": {"id": None, "name": "🚩"},
            "type": 0,
            "burst": False,
        },  # type: ignore[arg-type]
        discord.PartialEmoji(name="🚩"),
        "REACTION_ADD",
    )
    flag = to_reaction(raw, parent_id=parent_of(thread))
    assert flag.target.place.parent == str(ADMISSIONS) and registry.bound_to(flag.target.place) is bound


async def test_a_message_in_a_thread_another_member_opened_is_for_them(
    fake: FakeDiscord, state: ConnectionState[Any]
) -> None:
    alices = _thread(state, 555_000_333, ADMISSIONS)

    def inbound(author: Any, text: str, thread: discord.Thread, **extra: Any) -> Any:
        payload = gateway_message(fake, author, text, channel_id=thread.id, **extra)
        return to_inbound(discord.Message(state=state, channel=thread, data=payload), bot_user_id=BOT_ID)  # type: ignore[arg-type]

    # Bob posting in the thread Alice opened (a forum post of hers, say) talks to her, even with a question.
    assert inbound(BOB_MOD, "I think it's January 5, check the site", alices).mentions_others
    assert inbound(BOB_MOD, "When is the Early Decision deadline?", alices).mentions_others
    # Alice's own follow-ups in her thread, and a thread the bot opened, are for the bot.
    assert not inbound(ALICE, "and for transfer students?", alices).mentions_others
    bots = _thread(state, 555_000_444, ADMISSIONS, owner=BOT_USER)
    assert not inbound(BOB_MOD, "When is the Early Decision deadline?", bots).mentions_others
    # A reply to the bot's answer is for the bot, in anyone's thread.
    answer = gateway_message(fake, BOT_USER, "Regular Decision closes on January 5.", channel_id=alices.id)
    ref = {"message_id": answer["id"], "channel_id": answer["channel_id"], "guild_id": answer["guild_id"]}
    follow_up = inbound(
        BOB_MOD, "and Early Decision?", alices, type=19, message_reference=ref, referenced_message=answer
    )
    assert not follow_up.mentions_others
