"""End to end on Discord: the real pipeline and tiny GGUF model behind the real discord.py client, against the fake."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from adapters.discord import DiscordAdapter
from bot.app import App, build_app
from bot.config import load_config
from bot.models import BotAnswer
from moderation.audit import entries
from moderation.models import Case
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
    FakeDiscord,
    Json,
)
from tests.faults_support import edit_config

pytestmark = pytest.mark.slow

REFUSAL = "That's not a college data question."


def discord_config(write_config: Callable[..., Path], *, model: Path, db_url: str | None = None) -> Path:
    """The shared test config, plus Discord: a reviewer channel, a moderator role, a channel bound by id."""
    path = write_config(model=model, db_url=db_url)
    edits = {
        'reviewer_channels = { console = "reviewers", memory = "reviewers" }': (
            f'reviewer_channels = {{ console = "reviewers", memory = "reviewers", discord = "{REVIEWERS}" }}'
        ),
        'console = ["mod"]': f'console = ["mod"]\ndiscord_roles = ["{MOD_ROLE}"]',
        'channels = ["admissions"]': f'channels = ["admissions", "discord:{ADMISSIONS}"]',
        "router_interval_seconds = 1": f'router_interval_seconds = 1\nescalation_mentions = {{ discord = "<@&{MOD_ROLE}>" }}',
    }
    return edit_config(path, **edits)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """A fake Discord listening on loopback."""
    server = FakeDiscord()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@asynccontextmanager
async def running(config_path: Path, fake: FakeDiscord) -> AsyncIterator[tuple[App, DiscordAdapter]]:
    """The whole bot (as `scopebot run` builds it) with the Discord adapter pointed at the fake."""
    config = load_config(config_path)
    adapter = DiscordAdapter.from_env(fake.env(), config, guild_ready_timeout=0.05)
    app = build_app(config, platforms=[adapter])
    try:
        await app.start()
        yield app, adapter
    finally:
        await app.stop()


async def answers(app: App) -> list[BotAnswer]:
    async with app.sessions() as session:
        return list((await session.execute(select(BotAnswer).order_by(BotAnswer.id))).scalars())  # type: ignore[arg-type]


async def answer_to(app: App, question: Json, *, within: float = 90.0) -> BotAnswer:
    """The recorded answer to `question`, once it is recorded."""

    async def recorded() -> BotAnswer:
        while True:
            found = [a for a in await answers(app) if a.question_message_id == question["id"]]
            if found:
                return found[0]
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(recorded(), within)


def replies(fake: FakeDiscord, question: Json) -> list[Json]:
    """The bot's messages that reply to `question`."""
    channel = int(question["channel_id"])
    return [
        m
        for m in fake.bot_posts(channel)
        if (m.get("message_reference") or {}).get("message_id") == int(question["id"])
    ]


def shown(fake: FakeDiscord, question: Json) -> str:
    return "\n".join(m["content"] for m in replies(fake, question))


# Answers -------------------------------------------------------------------------------------------


async def test_mention_gets_a_scoped_model_answer_in_reply_and_off_topic_gets_the_refusal(
    write_config: Callable[..., Path], tiny_gguf: Path, db_url: str, fake: FakeDiscord
) -> None:
    async with running(discord_config(write_config, model=tiny_gguf, db_url=db_url), fake) as (app, _adapter):
        assert app.model is not None, app.model_problem
        q1 = await fake.say(ALICE, "How much is tuition at Northgate College?", mention_bot=True)
        q2 = await fake.say(ALICE, "Who won the football world cup in 1998?", mention_bot=True)
        answered = await answer_to(app, q1)
        refused = await answer_to(app, q2)
        await fake.say(OTHER_BOT, "What majors do you offer?", mention_bot=True)  # other bots are not answered
        # A last question: once it is answered, every earlier gateway event (the echoes of the bot's
        # own posts, the other bot's mention) has been handled too.
        q3 = await fake.say(ALICE, "What majors do you offer?", mention_bot=True)
        await answer_to(app, q3)
        rows = await answers(app)
    assert answered.verdict == "answer" and answered.model == "tiny.gguf" and answered.completion_tokens > 0
    assert (answered.platform, answered.workspace, answered.channel) == ("discord", str(GUILD_ID), str(GENERAL))
    assert answered.author_id == ALICE["id"]
    assert shown(fake, q1) == answered.answer
    assert refused.verdict == "refuse" and [m["content"] for m in replies(fake, q2)] == [REFUSAL]
    assert len(rows) == 3 and {r.author_id for r in rows} == {ALICE["id"]}
    # Every post of the bot is a reply to the question it answers.
    assert all(m.get("message_reference") for m in fake.bot_posts(GENERAL))


async def test_bound_channels_and_direct_messages_need_no_mention(
    write_config: Callable[..., Path], tiny_gguf: Path, fake: FakeDiscord
) -> None:
    async with running(discord_config(write_config, model=tiny_gguf), fake) as (app, _adapter):
        chatter = await fake.say(ALICE, "When is the deadline?", channel_id=GENERAL)  # not addressed to the bot
        bound = await fake.say(ALICE, "When is the Regular Decision deadline?", channel_id=ADMISSIONS)
        dm = await fake.say(ALICE, "How much is tuition?", channel_id=fake.dm_channel_id, dm=True)
        in_channel = await answer_to(app, bound)
        direct = await answer_to(app, dm)
        rows = await answers(app)
    assert in_channel.channel == str(ADMISSIONS) and in_channel.scope == "college"
    assert shown(fake, bound) == in_channel.answer
    assert direct.workspace == "@me" and shown(fake, dm) == direct.answer
    assert chatter["id"] not in {r.question_message_id for r in rows}


async def test_in_a_thread_another_member_opened_the_bot_waits_to_be_asked(
    write_config: Callable[..., Path], tiny_gguf: Path, fake: FakeDiscord
) -> None:
    async with running(discord_config(write_config, model=tiny_gguf), fake) as (app, _adapter):
        thread = await fake.open_thread(ALICE, ADMISSIONS)  # e.g. a forum post of Alice's in the bound channel
        asked = await fake.say(ALICE, "When is the Regular Decision deadline?", channel_id=thread)
        answered = await answer_to(app, asked)
        # Bob, in Alice's thread, talks to her: even a question is left to them unless he names the bot.
        chatter = await fake.say(BOB_MOD, "When is the Early Decision deadline?", channel_id=thread)
        named = await fake.say(BOB_MOD, "When is the Early Decision deadline?", channel_id=thread, mention_bot=True)
        await answer_to(app, named)
        follow_up = await fake.say(ALICE, "What majors do you offer?", channel_id=thread)
        await answer_to(app, follow_up)
        rows = await answers(app)
        # A 🚩 in the thread files a case with the scope of the channel the thread belongs to.
        await fake.react(BOB_MOD, replies(fake, asked)[0])
        await fake.wait_for(lambda: cards(fake), seconds=30)
        async with app.sessions() as session:
            [case] = (await session.execute(select(Case))).scalars().all()
    assert (case.scope, case.channel) == ("college", str(thread))
    assert answered.channel == str(thread) and answered.scope == "college" and shown(fake, asked) == answered.answer
    assert chatter["id"] not in {r.question_message_id for r in rows} and not replies(fake, chatter)
    assert [r.question_message_id for r in rows] == [asked["id"], named["id"], follow_up["id"]]


async def test_rate_limits_server_errors_refusals_and_malformed_events_are_survived(
    write_config: Callable[..., Path], tiny_gguf: Path, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with running(discord_config(write_config, model=tiny_gguf), fake) as (app, _adapter):
        await fake.dispatch("MESSAGE_CREATE", {"id": "1", "channel_id": str(GENERAL), "content": "no author"})
        await fake.dispatch("INTERACTION_CREATE", {"id": "2", "application_id": str(APP_ID), "type": 2})
        # A 429 (with retry_after) on the first post and a 500 on the first edit are retried by the client.
        fake.fail("POST", rf"/channels/{GENERAL}/messages", 429, retry_after=0.3)
        fake.fail("PATCH", rf"/channels/{GENERAL}/messages/\d+", 500)
        q1 = await fake.say(ALICE, "How much is tuition?", mention_bot=True)
        first = await answer_to(app, q1)
        assert shown(fake, q1) == first.answer
        # Missing permissions for good: the answer is lost, the apology follows, the bot keeps serving.
        fake.fail("POST", rf"/channels/{GENERAL}/messages", 403, code=50013)
        q2 = await fake.say(ALICE, "When is the Regular Decision deadline?", mention_bot=True)
        await fake.wait_for(lambda: replies(fake, q2))
        assert [m["content"] for m in replies(fake, q2)] == [app.config.bot.apology]
        q3 = await fake.say(ALICE, "What majors do you offer?", mention_bot=True)
        third = await answer_to(app, q3)
        assert shown(fake, q3) == third.answer
    assert len(fake.calls_to("PATCH", rf"/channels/{GENERAL}/messages/\d+")) >= 2
    messages = caplog.text
    assert "rejected a malformed MESSAGE_CREATE" in messages and "rejected a malformed INTERACTION_CREATE" in messages
    assert "Discord refused to post in channel" in messages  # the lost answer, logged with its context


async def test_slash_command_ask_answers_in_the_channel(
    write_config: Callable[..., Path], tiny_gguf: Path, fake: FakeDiscord
) -> None:
    async with running(discord_config(write_config, model=tiny_gguf), fake) as (app, _adapter):
        invoked = await fake.command(ALICE, "ask", question="What majors do you offer?")
        await fake.wait_for(
            lambda: fake.calls_to("DELETE", rf"/webhooks/{APP_ID}/{invoked['token']}/messages/@original")
        )
        [row] = await answers(app)
    [post] = fake.bot_posts(GENERAL)
    assert post["content"].startswith("> What majors do you offer?\n(asked by alice)\n")
    assert row.answer is not None and post["content"].endswith(row.answer)


# Moderation ----------------------------------------------------------------------------------------


def cards(fake: FakeDiscord) -> list[Json]:
    return [m for m in fake.bot_posts(REVIEWERS) if m.get("embeds")]


def private_replies(fake: FakeDiscord, interaction: Json) -> list[str]:
    return [
        str(c.body.get("content"))
        for c in fake.calls_to("POST", rf"/webhooks/{APP_ID}/{interaction['token']}")
        if c.body and c.body.get("flags", 0) & 64
    ]


async def test_a_flag_files_a_case_and_its_card_works_across_a_restart(
    write_config: Callable[..., Path], tiny_gguf: Path, db_url: str, fake: FakeDiscord
) -> None:
    config = discord_config(write_config, model=tiny_gguf, db_url=db_url)
    async with running(config, fake) as (app, _adapter):
        q = await fake.say(ALICE, "How much is tuition?", mention_bot=True)
        await answer_to(app, q)
        [answer_post] = replies(fake, q)
        await fake.react(ALICE, answer_post)  # a member flags the bot's answer
        [card] = await fake.wait_for(lambda: cards(fake), seconds=30)
        assert card["embeds"][0]["footer"]["text"].startswith("Case ")
        case_id = int(card["embeds"][0]["footer"]["text"].split()[1])
        ids = {c["custom_id"] for row in card["components"] for c in row["components"]}
        assert f"scopebot:case:{case_id}:dismiss" in ids
        refused = await fake.press(ALICE, card, "dismiss")  # a member may not act
        await fake.wait_for(lambda: private_replies(fake, refused))
        assert "Only moderators" in private_replies(fake, refused)[0]

    # A restart: new client, new app, same database. The old card's buttons still work.
    async with running(config, fake) as (app, _adapter):
        pressed = await fake.press(BOB_MOD, fake.messages[int(card["id"])], "dismiss")
        await fake.wait_for(lambda: private_replies(fake, pressed), seconds=30)
        await fake.wait_for(
            lambda: "resolved" in fake.messages[int(card["id"])]["embeds"][0]["footer"]["text"], seconds=30
        )
        async with app.sessions() as session:
            log = await entries(session, case_id=case_id)
    assert len(cards(fake)) == 1  # one card, never posted twice
    assert fake.messages[int(card["id"])]["components"] == []  # resolved: no buttons left
    dismissed = [e for e in log if e.action.endswith("dismiss")]
    assert dismissed and dismissed[-1].actor_id == BOB_MOD["id"] and dismissed[-1].actor_platform == "discord"
    assert not [e for e in log if e.actor_id == ALICE["id"] and e.action.endswith("dismiss")]


async def test_a_moderator_times_a_member_out_from_the_card(
    write_config: Callable[..., Path], tiny_gguf: Path, fake: FakeDiscord
) -> None:
    async with running(discord_config(write_config, model=tiny_gguf), fake) as (app, _adapter):
        rude = await fake.say(ALICE, "something rude", channel_id=GENERAL)
        await fake.react(BOB_MOD, rude)
        [card] = await fake.wait_for(lambda: cards(fake), seconds=30)
        pressed = await fake.press(BOB_MOD, card, "timeout")
        await fake.wait_for(lambda: private_replies(fake, pressed), seconds=30)
        patch = await fake.wait_for(
            lambda: fake.calls_to("PATCH", rf"/guilds/{GUILD_ID}/members/{ALICE['id']}"), seconds=30
        )
        async with app.sessions() as session:
            log = await entries(session)
    until = datetime.fromisoformat(patch[0].body["communication_disabled_until"])
    minutes = app.config.moderation.timeout_minutes
    assert timedelta(minutes=minutes - 5) < until - datetime.now(UTC) <= timedelta(minutes=minutes)
    assert not fake.calls_to("PATCH", rf"/guilds/{GUILD_ID}/members/{BOT_ID}")
    assert any(e.action.endswith("timeout") and e.actor_id == BOB_MOD["id"] for e in log)


async def test_a_moderator_adds_a_phrase_to_the_word_list_through_the_card_modal(
    write_config: Callable[..., Path], tiny_gguf: Path, fake: FakeDiscord
) -> None:
    async with running(discord_config(write_config, model=tiny_gguf), fake) as (app, _adapter):
        spam = await fake.say(ALICE, "buy cheap essays here", channel_id=GENERAL)
        await fake.react(BOB_MOD, spam)
        [card] = await fake.wait_for(lambda: cards(fake), seconds=30)
        pressed = await fake.press(BOB_MOD, card, "add_word")
        [opened] = await fake.wait_for(lambda: fake.calls_to("POST", rf"/interactions/{pressed['id']}/.+/callback"))
        modal = opened.body["data"]
        [field_id] = [c["custom_id"] for row in modal["components"] for c in row["components"]]
        submitted = await fake.submit_modal(BOB_MOD, card, modal["custom_id"], field_id, "cheap essays")
        await fake.wait_for(lambda: private_replies(fake, submitted), seconds=30)
        async with app.sessions() as session:
            log = await entries(session)
        # The phrase is in force at once: a question with it is blocked.
        q = await fake.say(ALICE, "Where can I get cheap essays for my application?", mention_bot=True)
        blocked = await answer_to(app, q)
    assert opened.body["type"] == 9
    # The scope change itself is audited (by the run-time overlay) with who and which phrase.
    added = [e for e in log if e.action == "scope.add_word"]
    assert added and added[-1].actor_id == BOB_MOD["id"] and "cheap essays" in added[-1].note
    assert blocked.verdict == "block"


async def test_escalation_pings_the_moderator_role_in_the_reviewer_channel_only(
    write_config: Callable[..., Path], tiny_gguf: Path, fake: FakeDiscord
) -> None:
    async with running(discord_config(write_config, model=tiny_gguf), fake) as (_app, _adapter):
        odd = await fake.say(ALICE, f"<@&{MOD_ROLE}> look at this", channel_id=GENERAL)
        await fake.react(BOB_MOD, odd)
        [card] = await fake.wait_for(lambda: cards(fake), seconds=30)
        pressed = await fake.press(BOB_MOD, card, "escalate")
        await fake.wait_for(lambda: private_replies(fake, pressed), seconds=30)
        pings = await fake.wait_for(
            lambda: [m for m in fake.bot_posts(REVIEWERS) if m["content"].startswith(f"<@&{MOD_ROLE}> case #")],
            seconds=30,
        )
        # A question quoting the role mention is answered without pinging the role.
        q = await fake.say(ALICE, f"<@&{MOD_ROLE}> how much is tuition?", mention_bot=True)
        await fake.wait_for(lambda: replies(fake, q), seconds=60)
    [ping] = pings
    assert ping["message_reference"]["message_id"] == int(card["id"])  # in the card's thread of replies
    [ping_call] = [
        c for c in fake.calls_to("POST", rf"/channels/{REVIEWERS}/messages") if c.body["content"] == ping["content"]
    ]
    assert ping_call.body["allowed_mentions"]["roles"] == [MOD_ROLE]
    assert "everyone" not in ping_call.body["allowed_mentions"]["parse"]
    answer_calls = fake.calls_to("POST", rf"/channels/{GENERAL}/messages")
    assert answer_calls and all(c.body["allowed_mentions"] == {"parse": [], "replied_user": True} for c in answer_calls)
