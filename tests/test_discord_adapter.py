"""The Discord adapter on the real discord.py client, against the fake Discord on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord import DiscordAdapter
from bot.cli import CredentialsError, main
from bot.config import Config, ConfigError
from bot.events import (
    FLAG,
    CardAction,
    CardButton,
    CommandInvoked,
    Event,
    InboundMessage,
    MessageRef,
    OutboundMessage,
    Place,
    PlatformError,
    ReactionAdded,
    Reply,
    ReviewCard,
)
from bot.replier import StreamingReply
from tests import waiting
from tests.discord_fakes import (
    ADMISSIONS,
    ALICE,
    APP_ID,
    BOB_MOD,
    BOT_ID,
    GENERAL,
    GUILD_ID,
    MOD_ROLE,
    OTHER_BOT,
    REVIEWERS,
    TOKEN,
    FakeDiscord,
)

GENERAL_PLACE = Place("discord", str(GUILD_ID), str(GENERAL))
REVIEW_PLACE = Place("discord", str(GUILD_ID), str(REVIEWERS))
DEFAULT_ENDPOINTS = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """A fake Discord listening on loopback."""
    server = FakeDiscord()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@dataclass
class Bot:
    """A started adapter and what it delivered."""

    adapter: DiscordAdapter
    events: list[Event] = field(default_factory=list)
    #: Called with each event before it is recorded (plays the core's part).
    react: Callable[[Event], Awaitable[None]] | None = None
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def sink(self, event: Event) -> None:
        if self.react is not None:
            await self.react(event)
        async with self.arrived:
            self.events.append(event)
            self.arrived.notify_all()

    async def next_event(self, kind: type[Any], seconds: float = 10.0) -> Any:
        """The first delivered event of type `kind` (removed from `events`), waiting for it if need be."""

        def first() -> Any:
            found = next((e for e in self.events if isinstance(e, kind)), None)
            if found is not None:
                self.events.remove(found)
            return found

        async def waiting() -> Any:
            async with self.arrived:
                while (found := first()) is None:
                    await self.arrived.wait()
                return found

        return await asyncio.wait_for(waiting(), seconds)


async def until(check: Callable[[], Any], seconds: float = 10.0) -> None:
    """Wait until `check()` is truthy (for adapter state that nothing signals)."""
    await waiting.until(check, within=seconds, every=0.01)


def make_adapter(fake: FakeDiscord, *, token: str = TOKEN, **kw: Any) -> DiscordAdapter:
    return DiscordAdapter(
        token=token, api_url=fake.api_url, gateway_url=fake.gateway_url, guild_ready_timeout=0.05, **kw
    )


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[Bot]:
    """The adapter, connected to the fake, recording events."""
    b = Bot(make_adapter(fake))
    await b.adapter.start(b.sink)
    try:
        yield b
    finally:
        await b.adapter.stop()


# Connecting ----------------------------------------------------------------------------------------


async def test_connects_with_the_needed_intents_and_registers_the_command(fake: FakeDiscord, bot: Bot) -> None:
    identify = fake.identifies[0]
    assert identify["token"] == TOKEN
    # guilds, guild messages, guild reactions, DMs, DM reactions, message content; nothing else.
    assert identify["intents"] == (1 << 0) | (1 << 9) | (1 << 10) | (1 << 12) | (1 << 13) | (1 << 15)
    assert fake.heartbeats >= 1  # the client's first heartbeat was acknowledged
    [sync] = fake.calls_to("PUT", rf"/applications/{APP_ID}/commands")
    [command] = sync.body
    assert command["name"] == "scopebot"
    assert {o["name"] for o in command["options"]} == {"ask", "help", "cases", "audit", "case"}
    assert fake.api_url == Route.BASE


async def test_the_token_never_reaches_the_logs(fake: FakeDiscord, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    b = Bot(make_adapter(fake))
    await b.adapter.start(b.sink)
    try:
        await fake.say(ALICE, "hello", mention_bot=True)
        await b.next_event(InboundMessage)
        await b.adapter.send(OutboundMessage(GENERAL_PLACE, "hi"))
    finally:
        await b.adapter.stop()
    assert fake.identifies[0]["token"] == TOKEN  # it was used …
    assert "discord: connected as scopebot" in caplog.text
    assert TOKEN not in caplog.text  # … and never logged, even at DEBUG


async def test_endpoints_are_restored_after_stop(fake: FakeDiscord) -> None:
    adapter = make_adapter(fake)
    await adapter.start(Bot(adapter).sink)
    await adapter.stop()
    assert (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY) == DEFAULT_ENDPOINTS


def test_a_missing_token_names_the_variable(config: Config) -> None:
    with pytest.raises(CredentialsError, match="DISCORD_TOKEN is not set"):
        DiscordAdapter.from_env({"DISCORD_TOKEN": "  "}, config)
    with pytest.raises(ConfigError, match="DISCORD_API_URL"):
        DiscordAdapter.from_env({"DISCORD_TOKEN": "x", "DISCORD_API_URL": "discord.com/api"}, config)
    with pytest.raises(ConfigError, match="DISCORD_GATEWAY_URL"):
        DiscordAdapter.from_env({"DISCORD_TOKEN": "x", "DISCORD_GATEWAY_URL": "https://gateway"}, config)


async def test_a_rejected_token_names_the_variable_and_is_never_logged(
    fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "not-the-right-token-9f8e7d"
    adapter = make_adapter(fake, token=secret)
    with pytest.raises(CredentialsError, match="DISCORD_TOKEN was rejected"):
        await adapter.start(Bot(adapter).sink)
    assert secret not in caplog.text
    assert (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY) == DEFAULT_ENDPOINTS
    assert not fake.identifies


async def test_the_token_is_checked_without_connecting_the_gateway(fake: FakeDiscord) -> None:
    with pytest.raises(CredentialsError, match="DISCORD_TOKEN was rejected"):
        await make_adapter(fake, token="not-the-right-token").check_credentials()
    await make_adapter(fake).check_credentials()
    assert not fake.identifies
    assert (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY) == DEFAULT_ENDPOINTS


async def test_scopebot_run_exits_2_with_one_line_naming_the_variable(
    fake: FakeDiscord,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "wrong-token-1a2b3c"
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DISCORD_API_URL", fake.api_url)
    monkeypatch.setenv("DISCORD_GATEWAY_URL", fake.gateway_url)
    monkeypatch.setenv("DISCORD_TOKEN", secret)
    # `scopebot run` runs its own event loop; the fake keeps serving on this one.
    code = await asyncio.to_thread(main, ["run", "--config", str(write_config())])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("scopebot: error: DISCORD_TOKEN was rejected by Discord")
    assert secret not in err
    # Reported before the models load (with a real LLaMA, minutes earlier) and before any gateway connection.
    assert "embedding model loaded" not in err and "scope gate ready" not in err
    assert not fake.identifies
    monkeypatch.setenv("DISCORD_TOKEN", "  ")
    assert await asyncio.to_thread(main, ["run", "--config", str(write_config())]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "scopebot: error: DISCORD_TOKEN is not set: copy the bot token from the Discord developer portal"
    )


async def test_a_missing_message_content_intent_is_explained() -> None:
    server = FakeDiscord(identify_close_code=4014)
    await server.start()
    try:
        adapter = make_adapter(server)
        with pytest.raises(CredentialsError, match="Message Content intent"):
            await adapter.start(Bot(adapter).sink)
    finally:
        await server.close()


async def test_an_unreachable_gateway_is_a_clear_error(fake: FakeDiscord) -> None:
    adapter = DiscordAdapter(
        token=TOKEN, api_url=fake.api_url, gateway_url=fake.gateway_url + "-nowhere", guild_ready_timeout=0.05
    )
    with pytest.raises(PlatformError, match="could not connect to the Discord gateway"):
        await adapter.start(Bot(adapter).sink)


# Events in -----------------------------------------------------------------------------------------


async def test_messages_become_core_events_and_its_own_are_ignored(fake: FakeDiscord, bot: Bot) -> None:
    asked = await fake.say(ALICE, "When is the deadline?", mention_bot=True)
    event: InboundMessage = await bot.next_event(InboundMessage)
    assert event.mentions_bot and event.text == "When is the deadline?" and event.ref.message_id == asked["id"]
    assert event.ref.place == GENERAL_PLACE

    ref = await bot.adapter.send(OutboundMessage(GENERAL_PLACE, "It is January 5.", reply_to=event.ref))
    await fake.say(OTHER_BOT, "beep", channel_id=ADMISSIONS)
    other: InboundMessage = await bot.next_event(InboundMessage)
    # The echo of the bot's own post came first on the gateway and was not delivered.
    assert other.author.user_id == OTHER_BOT["id"] and other.author.is_bot
    assert not any(isinstance(e, InboundMessage) and e.ref.message_id == ref.message_id for e in bot.events)

    dm = await fake.say(ALICE, "hi", channel_id=fake.dm_channel_id, dm=True)
    direct: InboundMessage = await bot.next_event(InboundMessage)
    assert direct.ref.place.is_direct and direct.ref.message_id == dm["id"]


async def test_a_flag_reaction_is_delivered_even_for_uncached_messages(fake: FakeDiscord, bot: Bot) -> None:
    old = fake._message(GENERAL, ALICE, "a message from before the bot started")  # never dispatched: not cached
    await fake.react(BOB_MOD, old)
    event: ReactionAdded = await bot.next_event(ReactionAdded)
    assert event.emoji == FLAG and event.target.message_id == old["id"] and event.target.place == GENERAL_PLACE
    assert event.reactor.user_id == BOB_MOD["id"] and event.reactor.roles == (str(MOD_ROLE),)
    assert event.target_author_id == ALICE["id"]


async def test_malformed_gateway_events_are_rejected_once_and_serving_goes_on(
    fake: FakeDiscord, bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    good = fake._message(GENERAL, ALICE, "fine")
    await fake.dispatch("MESSAGE_CREATE", {k: v for k, v in good.items() if k != "author"})
    await fake.dispatch("MESSAGE_CREATE", "not even an object")
    await fake.dispatch("MESSAGE_REACTION_ADD", {"user_id": "x", "channel_id": "1", "message_id": "2"})
    await fake.dispatch("INTERACTION_CREATE", {"id": "1", "application_id": str(APP_ID), "type": 3})
    # Passes our screen but not discord.py's own parser (attachments need an id).
    await fake.dispatch("MESSAGE_CREATE", dict(good, attachments=[{}]))
    await fake.say(ALICE, "still there?", mention_bot=True)
    event: InboundMessage = await bot.next_event(InboundMessage)
    assert event.text == "still there?"
    rejected = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == 5, [r.getMessage() for r in rejected]
    assert "author" in rejected[0].getMessage() and "MESSAGE_CREATE" in rejected[0].getMessage()
    assert "could not read" in rejected[4].getMessage()


# Posting -------------------------------------------------------------------------------------------


async def test_answers_reply_to_the_question_and_never_ping_everyone(fake: FakeDiscord, bot: Bot) -> None:
    question = MessageRef(GENERAL_PLACE, "1234")
    ref = await bot.adapter.send(OutboundMessage(GENERAL_PLACE, "@everyone hello", reply_to=question))
    [post] = fake.calls_to("POST", rf"/channels/{GENERAL}/messages")
    assert post.body["message_reference"]["message_id"] == 1234
    assert post.body["message_reference"]["fail_if_not_exists"] is False
    assert post.body["allowed_mentions"] == {"parse": [], "replied_user": True}
    await bot.adapter.edit(ref, "edited")
    assert fake.messages[int(ref.message_id)]["content"] == "edited"
    fetched = await bot.adapter.fetch_message(ref)
    assert fetched is not None and fetched.text == "edited" and fetched.author.user_id == str(BOT_ID)
    await bot.adapter.delete(ref)
    assert await bot.adapter.fetch_message(ref) is None
    with pytest.raises(PlatformError) as gone:
        await bot.adapter.edit(ref, "again")
    assert gone.value.status == 404 and not gone.value.retryable and f"edit message {ref.message_id}" in str(gone.value)


async def test_rate_limits_and_server_errors_are_retried(fake: FakeDiscord, bot: Bot) -> None:
    fake.fail("POST", rf"/channels/{GENERAL}/messages", 429, retry_after=0.2)
    fake.fail("PATCH", rf"/channels/{GENERAL}/messages/\d+", 500)
    ref = await bot.adapter.send(OutboundMessage(GENERAL_PLACE, "first try is refused"))
    await bot.adapter.edit(ref, "and the edit hits a 500 first")
    assert len(fake.calls_to("POST", rf"/channels/{GENERAL}/messages")) == 2
    assert len(fake.calls_to("PATCH", rf"/channels/{GENERAL}/messages/\d+")) == 2
    assert fake.messages[int(ref.message_id)]["content"] == "and the edit hits a 500 first"


async def test_missing_permissions_and_bad_channel_ids_are_clear_errors(fake: FakeDiscord, bot: Bot) -> None:
    fake.fail("POST", rf"/channels/{REVIEWERS}/messages", 403, code=50013)
    with pytest.raises(PlatformError, match=f"post in channel {REVIEWERS}.*permission") as e:
        await bot.adapter.send(OutboundMessage(REVIEW_PLACE, "x"))
    assert e.value.status == 403 and not e.value.retryable
    with pytest.raises(PlatformError, match="Copy ID"):
        await bot.adapter.send(OutboundMessage(Place("discord", str(GUILD_ID), "reviewers"), "x"))
    fake.fail("POST", rf"/channels/{ADMISSIONS}/messages", 404, code=10003)  # the channel was deleted
    with pytest.raises(PlatformError, match="no longer exists") as gone:
        await bot.adapter.send(OutboundMessage(Place("discord", str(GUILD_ID), str(ADMISSIONS)), "x"))
    assert gone.value.status == 404 and not gone.value.retryable


async def test_a_rest_call_that_hangs_times_out_as_a_retryable_error(fake: FakeDiscord) -> None:
    b = Bot(make_adapter(fake, sync_commands=False, rest_timeout=0.5))
    await b.adapter.start(b.sink)
    try:
        fake.stall("POST", rf"/channels/{GENERAL}/messages", 3.0)
        with pytest.raises(PlatformError, match="did not answer within") as e:
            await b.adapter.send(OutboundMessage(GENERAL_PLACE, "x"))
        assert e.value.retryable
        ref = await b.adapter.send(OutboundMessage(GENERAL_PLACE, "the next call works"))
        assert fake.messages[int(ref.message_id)]["content"] == "the next call works"
    finally:
        await b.adapter.stop()


async def test_long_answers_stream_by_edits_and_split_at_2000_characters(fake: FakeDiscord, bot: Bot) -> None:
    question = MessageRef(GENERAL_PLACE, "4321")
    reply = StreamingReply(bot.adapter, OutboundMessage(GENERAL_PLACE, "", reply_to=question))
    assert reply.streaming and bot.adapter.limits.edit_interval == 1.0
    await reply.update("The first words")
    await reply.update("The first words and more")
    text = " ".join(f"word{i}" for i in range(900))  # about 7,000 characters
    refs = await reply.finish(text)
    posts = [fake.messages[int(r.message_id)] for r in refs]
    assert len(posts) == 4 and all(len(p["content"]) <= 2000 for p in posts)
    assert " ".join(p["content"] for p in posts) == text
    assert all(p["message_reference"]["message_id"] == 4321 for p in posts)
    assert fake.calls_to("PATCH", rf"/channels/{GENERAL}/messages/{refs[0].message_id}")  # the first part grew by edits


def review_card(case_id: int = 41, **kw: Any) -> ReviewCard:
    base: dict[str, Any] = {
        "case_id": case_id,
        "place": REVIEW_PLACE,
        "title": "Flagged answer",
        "fields": (("Reporter", "alice"),),
        "body": "What was flagged",
        "buttons": (CardButton("dismiss", "Dismiss"), CardButton("remove", "Remove", "danger")),
    }
    base.update(kw)
    return ReviewCard(**base)


async def test_review_cards_are_embeds_with_persistent_buttons(fake: FakeDiscord, bot: Bot) -> None:
    ref = await bot.adapter.post_review_card(review_card(mention=f"<@&{MOD_ROLE}>"))
    [post] = fake.calls_to("POST", rf"/channels/{REVIEWERS}/messages")
    assert post.body["embeds"][0]["title"] == "Flagged answer"
    assert post.body["content"] == f"<@&{MOD_ROLE}>"
    assert post.body["allowed_mentions"]["parse"] == ["users", "roles"]  # never everyone
    ids = [c["custom_id"] for row in post.body["components"] for c in row["components"]]
    assert ids == ["scopebot:case:41:dismiss", "scopebot:case:41:remove"]

    same = await bot.adapter.post_review_card(review_card(status="resolved", buttons=()), existing=ref)
    assert same == ref
    card = fake.messages[int(ref.message_id)]
    assert card["embeds"][0]["footer"]["text"] == "Case 41 · resolved" and card["components"] == []

    card["deleted"] = True
    again = await bot.adapter.post_review_card(review_card(), existing=ref)
    assert again != ref and len(fake.calls_to("POST", rf"/channels/{REVIEWERS}/messages")) == 2


async def test_a_posted_card_can_be_found_again_by_case(fake: FakeDiscord, bot: Bot) -> None:
    await bot.adapter.post_review_card(review_card(case_id=5))
    ref = await bot.adapter.post_review_card(review_card(case_id=6))
    await bot.adapter.send(OutboundMessage(REVIEW_PLACE, "Case 6 · looks like a card but is plain text"))
    await fake.say(ALICE, "chatter", channel_id=REVIEWERS)
    assert await bot.adapter.find_review_card(REVIEW_PLACE, 6) == ref
    assert await bot.adapter.find_review_card(REVIEW_PLACE, 7) is None
    await bot.adapter.post_review_card(
        review_card(case_id=6, status="resolved: dismissed by bob", buttons=()), existing=ref
    )
    assert await bot.adapter.find_review_card(REVIEW_PLACE, 6) == ref  # resolved cards have no buttons, still found


# Interactions --------------------------------------------------------------------------------------


async def test_button_presses_are_acknowledged_and_refusals_are_ephemeral(fake: FakeDiscord, bot: Bot) -> None:
    async def refuse(event: Event) -> None:
        if isinstance(event, CardAction):
            await bot.adapter.reply_privately(Reply(REVIEW_PLACE, event.actor.user_id, "Only moderators can do that."))

    bot.react = refuse
    ref = await bot.adapter.post_review_card(review_card())
    press = await fake.press(ALICE, fake.messages[int(ref.message_id)], "remove")
    action: CardAction = await bot.next_event(CardAction)
    assert (action.case_id, action.action, action.actor.user_id, action.card) == (41, "remove", ALICE["id"], ref)
    token = press["token"]
    [ack] = fake.calls_to("POST", rf"/interactions/{press['id']}/{token}/callback")
    assert ack.body["type"] == 6  # deferred update: the button stops spinning, nothing is posted
    [followup] = fake.calls_to("POST", rf"/webhooks/{APP_ID}/{token}")
    assert followup.body["content"] == "Only moderators can do that." and followup.body["flags"] & 64


async def test_buttons_of_cards_posted_before_a_restart_still_work(fake: FakeDiscord) -> None:
    first = Bot(make_adapter(fake))
    await first.adapter.start(first.sink)
    ref = await first.adapter.post_review_card(review_card(case_id=77))
    await first.adapter.stop()

    second = Bot(make_adapter(fake, sync_commands=False))
    await second.adapter.start(second.sink)
    try:
        await fake.press(BOB_MOD, fake.messages[int(ref.message_id)], "dismiss")
        action: CardAction = await second.next_event(CardAction)
        assert (action.case_id, action.action, action.actor.roles) == (77, "dismiss", (str(MOD_ROLE),))
    finally:
        await second.adapter.stop()
    assert not first.events


async def test_actions_that_need_text_ask_for_it_in_a_modal(fake: FakeDiscord, bot: Bot) -> None:
    ref = await bot.adapter.post_review_card(review_card(buttons=(CardButton("add_word", "Add phrase to word list"),)))
    card = fake.messages[int(ref.message_id)]
    press = await fake.press(BOB_MOD, card, "add_word")
    ack = await fake.wait_for(lambda: fake.calls_to("POST", rf"/interactions/{press['id']}/.+/callback"))
    assert ack[0].body["type"] == 9  # a modal
    modal = ack[0].body["data"]
    [field_id] = [c["custom_id"] for row in modal["components"] for c in row["components"]]
    submitted = await fake.submit_modal(BOB_MOD, card, modal["custom_id"], field_id, "  free essays  ")
    action: CardAction = await bot.next_event(CardAction)
    assert (action.action, action.argument, action.case_id) == ("add_word", "free essays", 41)
    [done] = fake.calls_to("POST", rf"/interactions/{submitted['id']}/.+/callback")
    assert done.body["type"] == 6  # the submission is acknowledged like a press


async def test_slash_commands_reply_privately_or_clear_their_note(fake: FakeDiscord, bot: Bot) -> None:
    async def answer(event: Event) -> None:
        if isinstance(event, CommandInvoked) and event.text == "cases":
            await bot.adapter.reply_privately(Reply(event.place, event.actor.user_id, "Open cases:\n#41"))

    bot.react = answer
    cases = await fake.command(BOB_MOD, "cases")
    event: CommandInvoked = await bot.next_event(CommandInvoked)
    assert event.text == "cases" and event.actor.roles == (str(MOD_ROLE),) and event.place == GENERAL_PLACE
    [ack] = fake.calls_to("POST", rf"/interactions/{cases['id']}/.+/callback")
    assert ack.body == {"type": 5, "data": {"flags": 64}}  # "thinking…", visible to the caller only
    [reply] = fake.calls_to("POST", rf"/webhooks/{APP_ID}/{cases['token']}")
    assert reply.body["content"] == "Open cases:\n#41" and reply.body["flags"] & 64

    ask = await fake.command(ALICE, "case", case_id=41, action="dismiss", text="spam")
    event = await bot.next_event(CommandInvoked)
    assert event.text == "case 41 dismiss spam"
    await fake.wait_for(lambda: fake.calls_to("DELETE", rf"/webhooks/{APP_ID}/{ask['token']}/messages/@original"))


async def test_slash_commands_work_in_direct_messages(fake: FakeDiscord, bot: Bot) -> None:
    async def answer(event: Event) -> None:
        if isinstance(event, CommandInvoked):
            await bot.adapter.reply_privately(Reply(event.place, event.actor.user_id, "Commands: …"))

    bot.react = answer
    invoked = await fake.command(ALICE, "help", channel_id=fake.dm_channel_id)
    event: CommandInvoked = await bot.next_event(CommandInvoked)
    assert event.place == Place("discord", "@me", str(fake.dm_channel_id), None, is_direct=True)
    assert event.actor.user_id == ALICE["id"] and event.actor.roles == ()
    [reply] = fake.calls_to("POST", rf"/webhooks/{APP_ID}/{invoked['token']}")
    assert reply.body["content"] == "Commands: …"


async def test_private_replies_outside_interactions_go_by_dm(fake: FakeDiscord, bot: Bot) -> None:
    await bot.adapter.reply_privately(Reply(GENERAL_PLACE, ALICE["id"], "Thanks, your report was sent."))
    [opened] = fake.calls_to("POST", r"/users/@me/channels")
    assert opened.body == {"recipient_id": ALICE["id"]} or opened.body == {"recipient_id": int(ALICE["id"])}
    dm = fake.bot_posts(fake.dm_channel_id)
    assert [m["content"] for m in dm] == ["Thanks, your report was sent."]
    fake.fail("POST", rf"/channels/{fake.dm_channel_id}/messages", 403, code=50007)
    await bot.adapter.reply_privately(Reply(GENERAL_PLACE, ALICE["id"], "refused, and that is fine"))


async def test_member_timeouts_use_discord_timeouts(fake: FakeDiscord, bot: Bot) -> None:
    until = datetime.now(UTC) + timedelta(hours=1)
    assert await bot.adapter.timeout_member(GENERAL_PLACE, ALICE["id"], until=until, reason="spam")
    [patch] = fake.calls_to("PATCH", rf"/guilds/{GUILD_ID}/members/{ALICE['id']}")
    assert datetime.fromisoformat(patch.body["communication_disabled_until"]) == until
    far = await bot.adapter.timeout_member(GENERAL_PLACE, ALICE["id"], until=until + timedelta(days=90), reason="x")
    assert far and datetime.fromisoformat(fake.calls[-1].body["communication_disabled_until"]) < until + timedelta(
        days=28
    )
    assert not await bot.adapter.timeout_member(
        Place("discord", "@me", "5", None, True), ALICE["id"], until=until, reason="x"
    )
    fake.fail("PATCH", rf"/guilds/{GUILD_ID}/members/\d+", 403, code=50013)
    with pytest.raises(PlatformError, match="time out member") as e:
        await bot.adapter.timeout_member(GENERAL_PLACE, ALICE["id"], until=until, reason="x")
    assert not e.value.retryable


async def test_stop_lets_events_in_flight_finish(fake: FakeDiscord) -> None:
    b = Bot(make_adapter(fake, sync_commands=False))
    release = asyncio.Event()
    finished: list[str] = []

    async def slow(event: Event) -> None:
        if isinstance(event, InboundMessage):
            await release.wait()
            await b.adapter.send(OutboundMessage(event.ref.place, "late answer", reply_to=event.ref))
            finished.append(event.text)

    b.react = slow
    await b.adapter.start(b.sink)
    try:
        await fake.say(ALICE, "slow one", mention_bot=True)
        await until(lambda: b.adapter._inflight)
        stopping = asyncio.create_task(b.adapter.stop())
        await until(lambda: b.adapter._stopping)
        await fake.say(ALICE, "too late", mention_bot=True)  # arrives while stopping: not taken
        release.set()
        await stopping
    finally:
        await b.adapter.stop()
    assert finished == ["slow one"]
    assert [m["content"] for m in fake.bot_posts(GENERAL)] == ["late answer"]
