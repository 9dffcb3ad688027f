"""The Slack adapter's Web API side against the fake: posting, streaming edits, cards, private replies, failures."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from adapters.slack import SlackAdapter
from bot.events import (
    Actor,
    CardButton,
    MessageRef,
    OutboundMessage,
    Place,
    PlatformError,
    Reply,
    ReviewCard,
)
from tests.slack_fakes import TEAM, Failure, FakeSlack, Served, command_form, http_settings, serve_http

GENERAL = Place("slack", TEAM, "CGENERAL")
REVIEW = Place("slack", TEAM, "CREV")


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with FakeSlack(usergroups={"S0MODS": ["UMOD1", "UMOD2"]}) as slack:
        slack.messages["CREV"] = {}
        settings = http_settings(
            slack, moderator_groups=("S0MODS",), reviewer_channels=frozenset({"CREV"}), escalation_mention="S0MODS"
        )
        async with serve_http(slack, adapter=SlackAdapter(settings)) as s:
            yield s


def card(case_id: int = 3, **kw: object) -> ReviewCard:
    base: dict[str, object] = {
        "case_id": case_id,
        "place": REVIEW,
        "title": "Report on a bot answer",
        "fields": (("Reporters", "1"),),
        "body": "the reported text",
        "buttons": (CardButton("dismiss", "Dismiss"), CardButton("remove", "Remove", "danger")),
    }
    return ReviewCard(**(base | kw))  # type: ignore[arg-type]


async def test_answer_goes_in_the_thread_and_is_edited_in_place(served: Served) -> None:
    a, slack = served.adapter, served.slack
    question = MessageRef(GENERAL, slack.add_message("CGENERAL", "UMEMBER", "tuition?"))
    ref = await a.send(OutboundMessage(GENERAL, "Tuition is <b>$1</b> …", reply_to=question))
    post = slack.calls_to("chat.postMessage")[-1]
    assert post["thread_ts"] == question.message_id
    assert post["text"] == "Tuition is &lt;b&gt;$1&lt;/b&gt; …"
    assert ref.place.channel == "CGENERAL" and ref.place.thread == question.message_id
    await a.edit(ref, "Tuition is $1.")
    msg = slack.message("CGENERAL", ref.message_id)
    assert msg is not None and msg["text"] == "Tuition is $1." and msg["thread_ts"] == question.message_id
    await a.delete(ref)
    assert slack.message("CGENERAL", ref.message_id) is None
    assert a.limits.edit_interval >= 1.2 and a.limits.max_message_chars <= 4000


async def test_429_is_retried_after_retry_after_and_500_is_retried(served: Served) -> None:
    a, slack = served.adapter, served.slack
    slack.fail("chat.postMessage", Failure(status=429, error="ratelimited", retry_after=1))
    ref = await a.send(OutboundMessage(GENERAL, "first"))
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert slack.message("CGENERAL", ref.message_id) is not None
    slack.fail("chat.update", Failure(status=500))
    await a.edit(ref, "second")
    assert len(slack.calls_to("chat.update")) == 2
    assert slack.message("CGENERAL", ref.message_id)["text"] == "second"  # type: ignore[index]


async def test_lasting_failures_become_platform_errors_with_context(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    a, slack = served.adapter, served.slack
    caplog.set_level(logging.WARNING, logger="adapters.slack")
    slack.fail("chat.postMessage", Failure(status=500), times=3)
    with pytest.raises(PlatformError) as server:
        await a.send(OutboundMessage(GENERAL, "x"))
    assert server.value.retryable and server.value.status == 500
    slack.fail("chat.postMessage", Failure(error="channel_not_found", channel="CGONE"))
    with pytest.raises(PlatformError) as gone:
        await a.send(OutboundMessage(Place("slack", TEAM, "CGONE"), "x"))
    assert not gone.value.retryable and gone.value.status == 404 and "CGONE" in str(gone.value)
    slack.fail("chat.postMessage", Failure(error="missing_scope", extra={"needed": "chat:write"}))
    with pytest.raises(PlatformError, match="chat:write") as scope:
        await a.send(OutboundMessage(GENERAL, "x"))
    assert scope.value.status == 403
    member = MessageRef(GENERAL, slack.add_message("CGENERAL", "UMEMBER", "rude"))
    with pytest.raises(PlatformError, match="only its own messages"):
        await a.delete(member)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "CGONE" in logged and "channel_not_found" in logged and "chat:write" in logged


async def test_review_card_is_posted_then_updated_in_place(served: Served) -> None:
    a, slack = served.adapter, served.slack
    ref = await a.post_review_card(card())
    posted = slack.message("CREV", ref.message_id)
    assert posted is not None
    ids = [e["action_id"] for b in posted["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert ids == ["scopebot:case:3:dismiss", "scopebot:case:3:remove"]
    same = await a.post_review_card(card(fields=(("Reporters", "2"),)), existing=ref)
    assert same == ref
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert "2" in str(slack.message("CREV", ref.message_id)["blocks"])  # type: ignore[index]
    resolved = await a.post_review_card(card(buttons=(), status="resolved"), existing=ref)
    blocks = slack.message("CREV", resolved.message_id)["blocks"]  # type: ignore[index]
    assert not any(b["type"] == "actions" for b in blocks)
    # A card deleted by hand is posted again rather than lost.
    del slack.messages["CREV"][ref.message_id]
    again = await a.post_review_card(card(), existing=ref)
    assert again != ref and slack.message("CREV", again.message_id) is not None


async def test_unpostable_reviewer_channel_says_what_to_do(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    a, slack = served.adapter, served.slack
    caplog.set_level(logging.DEBUG, logger="adapters.slack")
    slack.fail("chat.postMessage", Failure(error="not_in_channel"), times=2)
    for case_id in (1, 2):
        with pytest.raises(PlatformError) as e:
            await a.post_review_card(card(case_id))
        # Not retryable, and the error names the fix; the router reports it to the operator once
        # (tests/test_faults_platform.py), so the adapter adds no ERROR of its own.
        assert not e.value.retryable and "/invite" in str(e.value)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_private_replies_use_response_url_then_ephemeral_then_dm(served: Served) -> None:
    a, slack = served.adapter, served.slack
    await a.reply_privately(Reply(GENERAL, "UMEMBER", "only <you>"))
    assert slack.calls_to("chat.postEphemeral")[-1] == {
        "channel": "CGENERAL",
        "user": "UMEMBER",
        "text": "only &lt;you&gt;",
    }
    # After a slash command, its response_url works even where the bot is not a member.
    await served.post_form(urlencode(command_form("help", user="UCMD", response_url=slack.hook_url("cmd"))))
    await served.wait_events(1)
    await a.reply_privately(Reply(GENERAL, "UCMD", "Commands: …"))
    assert slack.hooks[-1] == {
        "hook": "cmd",
        "text": "Commands: …",
        "response_type": "ephemeral",
        "replace_original": False,
    }
    assert len(slack.calls_to("chat.postEphemeral")) == 1
    # Not in the channel and no response_url: a direct message instead.
    slack.fail("chat.postEphemeral", Failure(error="not_in_channel"))
    await a.reply_privately(Reply(Place("slack", TEAM, "CPRIVATE"), "UOTHER", "refused"))
    assert slack.calls_to("chat.postMessage")[-1]["channel"] == "UOTHER"


async def test_fetch_message_reads_history_threads_and_permalinks(served: Served) -> None:
    a, slack = served.adapter, served.slack
    top = slack.add_message("CGENERAL", "UAUTH", "a &lt;reported&gt; message")
    reply = slack.add_message("CGENERAL", "UAUTH2", "in a thread", thread_ts=top)
    got = await a.fetch_message(MessageRef(GENERAL, top))
    assert got is not None and got.text == "a <reported> message" and got.author.user_id == "UAUTH"
    assert got.permalink is not None and top.replace(".", "") in got.permalink
    in_thread = await a.fetch_message(MessageRef(GENERAL.in_thread(top), reply))
    assert in_thread is not None and in_thread.text == "in a thread"
    unknown_thread = await a.fetch_message(MessageRef(GENERAL, reply))
    assert unknown_thread is not None and unknown_thread.author.user_id == "UAUTH2"
    assert await a.fetch_message(MessageRef(GENERAL, "1.0")) is None
    assert await a.fetch_message(MessageRef(Place("slack", TEAM, "CNONE"), top)) is None


async def test_moderators_by_user_group_are_cached_and_timeouts_are_unsupported(served: Served) -> None:
    a, slack = served.adapter, served.slack
    assert await a.is_moderator(Actor("slack", "UMOD1"), place=REVIEW) is True
    assert await a.is_moderator(Actor("slack", "UMEMBER"), place=REVIEW) is False
    assert len(slack.calls_to("usergroups.users.list")) == 1
    until = datetime(2030, 1, 1, tzinfo=UTC)
    assert await a.timeout_member(GENERAL, "UMEMBER", until=until, reason="spam") is False
    slack.usergroups.clear()
    no_groups = SlackAdapter(http_settings(slack))
    assert await no_groups.is_moderator(Actor("slack", "UMOD1"), place=REVIEW) is None


async def test_a_posted_card_can_be_found_again_by_its_case(served: Served) -> None:
    a, slack = served.adapter, served.slack
    assert await a.find_review_card(REVIEW, 3) is None
    ref = await a.post_review_card(card(3))
    await a.post_review_card(card(4))
    slack.add_message("CREV", "UMOD1", "a moderator's note about case 3")
    found = await a.find_review_card(REVIEW, 3)
    assert found is not None and found.message_id == ref.message_id
    resolved = await a.post_review_card(card(3, buttons=(), status="resolved"), existing=ref)
    assert await a.find_review_card(REVIEW, 3) == resolved
    assert await a.find_review_card(REVIEW, 5) is None
    assert await a.find_review_card(Place("slack", TEAM, "CNOWHERE"), 3) is None


async def test_escalation_ping_is_a_real_mention_only_in_reviewer_channels(served: Served) -> None:
    a, slack = served.adapter, served.slack
    card_ref = await a.post_review_card(card(8, urgent=True, mention="S0MODS"))
    await a.send(OutboundMessage(REVIEW, "S0MODS case #8 needs a moderator (5 reporters).", reply_to=card_ref))
    ping = slack.calls_to("chat.postMessage")[-1]
    assert ping["text"].startswith("<!subteam^S0MODS> case #8") and ping["thread_ts"] == card_ref.message_id
    assert slack.calls_to("chat.postMessage")[-2]["blocks"][0]["text"]["text"] == "<!subteam^S0MODS>"
    await a.send(OutboundMessage(GENERAL, "S0MODS look"))
    assert slack.calls_to("chat.postMessage")[-1]["text"] == "S0MODS look"


async def test_long_answers_are_split_into_thread_replies_within_slack_limits(served: Served) -> None:
    from bot.replier import StreamingReply

    a, slack = served.adapter, served.slack
    question = MessageRef(GENERAL, slack.add_message("CGENERAL", "UMEMBER", "tell me everything"))
    reply = StreamingReply(a, OutboundMessage(GENERAL, "", reply_to=question))
    paragraph = ("Tuition & fees <2026> are listed per term. " * 20).strip()
    text = "\n\n".join([paragraph] * 12)
    await reply.update(text[:5000])
    refs = await reply.finish(text)
    assert len(refs) == len(text) // a.limits.max_message_chars + 1
    parts = [slack.message("CGENERAL", r.message_id) for r in refs]
    assert all(p is not None and p["thread_ts"] == question.message_id for p in parts)
    assert all(len(p["text"]) <= 40_000 for p in parts if p)  # Slack's hard limit, escapes included
    shown = "\n\n".join(p["text"] for p in parts if p).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert shown.split() == text.split()


async def test_a_hung_web_api_call_times_out_as_a_retryable_error() -> None:
    async with FakeSlack() as slack, serve_http(slack, api_timeout=1) as s:
        slack.fail("chat.postMessage", Failure(delay=3, error="late"))
        with pytest.raises(PlatformError) as e:
            await s.adapter.send(OutboundMessage(GENERAL, "hello"))
        assert e.value.retryable and "chat.postMessage" in str(e.value) and "CGENERAL" in str(e.value)
        ref = await s.adapter.send(OutboundMessage(GENERAL, "hello again"))
        assert slack.message("CGENERAL", ref.message_id) is not None
