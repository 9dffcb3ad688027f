"""The moderation side when the platform misbehaves, through the real adapters against the fake servers.

The adapters' own tests cover single calls (429 retried after Retry-After, 5xx, hangs, missing channels);
here the router posts review cards while the reviewer channel answers 500, 429, hangs or is gone: the
case is retried with backoff, the problem is reported once, and every card is posted exactly once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import select

from adapters.discord import DiscordAdapter
from adapters.slack import SlackAdapter
from bot import db
from bot.config import load_config
from bot.events import Actor, MessageRef, Place, Platform, ReactionAdded
from bot.scopes import ScopeRegistry
from moderation.audit import entries
from moderation.models import Case, CaseState, ModerationNotice
from moderation.router import RouterRun
from moderation.wiring import ModerationRuntime, build_moderation
from tests.discord_fakes import ADMISSIONS, ALICE, GENERAL, GUILD_ID, REVIEWERS, FakeDiscord
from tests.faults_support import edit_config, logged
from tests.moderation_support import write_mod_config
from tests.slack_fakes import TEAM, Failure, FakeSlack, http_settings, serve_http
from tests.test_discord_e2e import answer_to, discord_config, replies, running
from tests.waiting import until

#: Router interval, and so the first backoff step (it doubles from here).
INTERVAL = 0.3


@dataclass
class Moderation:
    """The moderation services of a bot on one real adapter."""

    runtime: ModerationRuntime
    sessions: async_sessionmaker[AsyncSession]

    async def flag(self, platform: Platform, target: MessageRef, who: str) -> int:
        """A member's flag; returns the case id."""
        await self.runtime.service.on_reaction(
            platform, ReactionAdded(target=target, reactor=Actor(platform.name, who, who), emoji="flag")
        )
        async with self.sessions() as session:
            case_id = await session.scalar(select(Case.id).where(Case.message_key == target.key))
        assert isinstance(case_id, int)
        return case_id

    async def case(self, case_id: int) -> Case:
        async with self.sessions() as session:
            case = await session.get(Case, case_id)
        assert case is not None
        return case

    async def run(self) -> RouterRun:
        """One router run, as the scheduler would start it."""
        return await self.runtime.router.run_once()

    async def after_backoff(self, case_id: int) -> RouterRun:
        """Wait until the case is due again, then run the router."""
        wait = ((await self.case(case_id)).next_attempt_at - datetime.now(UTC)).total_seconds()
        await asyncio.sleep(max(0.0, wait) + 0.05)
        return await self.run()

    async def fails_and_backs_off(self, case_id: int, *, attempt: int) -> Case:
        """Run when due, check the case failed its `attempt`-th post and was put off by a doubling delay."""
        if attempt > 1:
            wait = ((await self.case(case_id)).next_attempt_at - datetime.now(UTC)).total_seconds()
            await asyncio.sleep(max(0.0, wait) + 0.05)
        before = datetime.now(UTC)
        run = await self.run()
        case = await self.case(case_id)
        assert (run.failed, case.state, case.attempts) == (1, CaseState.OPEN, attempt)
        assert case.next_attempt_at >= before + timedelta(seconds=INTERVAL * 2 ** (attempt - 1))
        return case

    async def problems(self) -> list[str]:
        async with self.sessions() as session:
            return [n.key for n in (await session.execute(select(ModerationNotice))).scalars()]

    async def audit(self, action: str) -> list[int | None]:
        async with self.sessions() as session:
            return [e.case_id for e in await entries(session) if e.action == action]


@asynccontextmanager
async def moderation(tmp_path: Path, db_url: str, platform: Platform, *, lease: float) -> AsyncIterator[Moderation]:
    """A migrated database and the moderation services serving `platform` (no scheduler: runs are driven here).

    The router gives each platform call a third of `lease` before it counts as failed, outcome unknown.
    """
    path = edit_config(
        write_mod_config(tmp_path, db_url, interval=INTERVAL, lease=lease),
        **{'recorder = "reviewers" }': f'recorder = "reviewers", slack = "CREV", discord = "{REVIEWERS}" }}'},
    )
    config = load_config(path)
    engine = db.create_engine(db_url)
    try:
        await db.upgrade(engine)
        sessions = db.sessionmaker(engine)
        runtime = build_moderation(config=config, sessions=sessions, scopes=ScopeRegistry(config), platforms=[platform])
        yield Moderation(runtime, sessions)
    finally:
        await engine.dispose()


def slack_cards(slack: FakeSlack, case_id: int) -> list[str]:
    """Card messages in the reviewer channel for one case."""
    marker = f"scopebot:case:{case_id}:"
    return [ts for ts, m in slack.messages.get("CREV", {}).items() if marker in json.dumps(m.get("blocks", []))]


async def test_slack_reviewer_channel_500_429_hang_and_deletion_delay_cards_but_never_lose_or_double_them(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with FakeSlack() as slack:
        slack.messages["CREV"] = {}
        adapter = SlackAdapter(http_settings(slack, reviewer_channels=frozenset({"CREV"}), api_timeout=1))
        async with serve_http(slack, adapter=adapter), moderation(tmp_path, db_url, adapter, lease=30) as mod:
            general = Place("slack", TEAM, "CGENERAL")
            faults = {
                "500": (Failure(status=500), 3),  # outlasts the adapter's two retries
                "429": (Failure(status=429, error="ratelimited", retry_after=0), 4),  # outlasts its three
                "hang": (Failure(delay=3.0, error="fatal_error"), 1),  # cut off after api_timeout, not retried
            }
            for name, (failure, times) in faults.items():
                target = MessageRef(general, slack.add_message("CGENERAL", "UMEMBER", f"spam, {name} edition"))
                case_id = await mod.flag(adapter, target, "UREPORTER")
                slack.fail("chat.postMessage", failure, times=times)
                await mod.fails_and_backs_off(case_id, attempt=1)
                assert not slack_cards(slack, case_id), name
                assert (await mod.after_backoff(case_id)).posted == 1, name
                assert len(slack_cards(slack, case_id)) == 1, name
                assert (await mod.case(case_id)).state == CaseState.ROUTED

            # The reviewer channel is deleted: the case waits, the operator is told once, the card comes later.
            target = MessageRef(general, slack.add_message("CGENERAL", "UMEMBER", "spam while the channel is gone"))
            case_id = await mod.flag(adapter, target, "UREPORTER")
            slack.fail("chat.postMessage", Failure(error="channel_not_found", channel="CREV"), times=3)
            await mod.fails_and_backs_off(case_id, attempt=1)
            await mod.fails_and_backs_off(case_id, attempt=2)
            case = await mod.fails_and_backs_off(case_id, attempt=3)
            assert "CREV" in case.last_error and "channel_not_found" in case.last_error
            assert await mod.problems() == ["channel:slack:T0TEAM:CREV"]
            assert len(logged(caplog.records, "moderation: cannot post review cards to channel CREV")) == 1
            told = logged(caplog.records, "cannot post review cards to channel CREV", level=logging.ERROR)
            assert len(told) == 1, "the operator is told once, by the router"
            assert (await mod.after_backoff(case_id)).posted == 1, "posted once the channel is back"
            assert len(slack_cards(slack, case_id)) == 1
            assert await mod.problems() == [], "fixed: a later problem is reported again"

            routed = await mod.audit("case.routed")
            problems = await mod.audit("router.problem")
    assert len(set(routed)) == len(routed) == 4, "each case routed, and audited, once"
    assert len(problems) == 1


async def test_discord_card_post_that_times_out_but_lands_is_found_not_posted_again(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fake = FakeDiscord()
    await fake.start()
    adapter = DiscordAdapter(
        token=fake.token, api_url=fake.api_url, gateway_url=fake.gateway_url, guild_ready_timeout=0.05
    )
    try:
        async with moderation(tmp_path, db_url, adapter, lease=3) as mod:
            await adapter.start(_no_events)
            general = Place("discord", str(GUILD_ID), str(GENERAL))
            spam = await fake.say(ALICE, "buy followers cheap")
            case_id = await mod.flag(adapter, MessageRef(general, spam["id"]), "700000000000000009")
            # The post hangs past the router's limit (a third of the 3 s lease), then Discord stores it anyway.
            fake.stall("POST", rf"/channels/{REVIEWERS}/messages", 2.5)
            assert (await mod.fails_and_backs_off(case_id, attempt=1)).card_pending, "outcome unknown"
            await fake.wait_for(lambda: fake.bot_posts(REVIEWERS), seconds=10)  # it landed after all
            again = await mod.after_backoff(case_id)
            assert (again.posted, again.updated) == (0, 1), "found and updated in place, not posted again"
            case = await mod.case(case_id)
            assert case.state == CaseState.ROUTED and not case.card_pending
            assert [int(case.card_message_id or 0)] == [int(m["id"]) for m in fake.bot_posts(REVIEWERS)]

            # The reviewer channel is deleted (404, Unknown Channel): reported once, the card waits.
            other = await fake.say(ALICE, "more spam")
            second = await mod.flag(adapter, MessageRef(general, other["id"]), "700000000000000009")
            fake.fail("POST", rf"/channels/{REVIEWERS}/messages", 404, times=2, code=10003)
            await mod.fails_and_backs_off(second, attempt=1)
            await mod.fails_and_backs_off(second, attempt=2)
            assert await mod.problems() == [f"channel:discord:{GUILD_ID}:{REVIEWERS}"]
            assert (await mod.after_backoff(second)).posted == 1
            assert len(fake.calls_to("POST", rf"/channels/{REVIEWERS}/messages")) == 4
            assert len(fake.bot_posts(REVIEWERS)) == 2, "one card per case"
    finally:
        await adapter.stop()
        await fake.close()
    assert len(logged(caplog.records, f"cannot post review cards to channel {REVIEWERS}", level=logging.ERROR)) == 1


async def _no_events(event: object) -> None:
    """The test calls the services itself."""


@pytest.mark.slow
async def test_an_answer_whose_channel_is_deleted_mid_stream_is_logged_with_context_and_serving_goes_on(
    write_config: Callable[..., Path], slow_gguf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = edit_config(
        discord_config(write_config, model=slow_gguf), **{"max_new_tokens = 24": "max_new_tokens = 1200"}
    )
    fake = FakeDiscord()
    await fake.start()
    try:
        async with running(path, fake) as (app, _adapter):
            assert app.model is not None
            question = await fake.say(ALICE, "How much is tuition?", mention_bot=True)
            [partial] = await fake.wait_for(lambda: replies(fake, question), seconds=120)
            assert partial["content"].endswith(" …"), "the answer is still streaming"
            # The channel is deleted: Discord answers everything in it with 404 Unknown Channel.
            fake.fail("PATCH", rf"/channels/{GENERAL}/messages/\d+", 404, times=10_000, code=10003)
            fake.fail("POST", rf"/channels/{GENERAL}/messages", 404, times=10_000, code=10003)
            edits_before = len(fake.calls_to("PATCH", rf"/channels/{GENERAL}/messages/\d+"))
            failure = await until(
                lambda: [r for r in caplog.records if "failed to handle InboundMessage" in r.getMessage()],
                within=60,
                what="the failure to be logged",
            )
            model = app.model
            await until(lambda: not model.running, within=30, what="the generation to stop")

            # Serving goes on: a question in another channel gets a whole answer from the same worker.
            other = await fake.say(ALICE, "What majors do you offer?", channel_id=ADMISSIONS)
            record = await answer_to(app, other, within=120)
            assert record.verdict in ("answer", "block") and record.answer.strip(), "the model generated it"
            assert replies(fake, other) and not replies(fake, other)[-1]["content"].endswith(" …")
            assert app.model.restarts == 0
            edits_after = len(fake.calls_to("PATCH", rf"/channels/{GENERAL}/messages/\d+"))
    finally:
        await fake.close()
    # Logged once, with what failed and where; the cut-off answer was not edited again.
    [record] = failure
    assert record.exc_info is not None
    text = f"{record.getMessage()} {record.exc_info[1]}"
    assert "discord" in text and partial["id"] in text and "no longer exists" in text
    assert edits_after == edits_before + 1, "one refused edit, then the generation stopped"
    assert logged(caplog.records, "could not send the apology either")
