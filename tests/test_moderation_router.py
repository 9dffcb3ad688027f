"""The router's guarantees in one process: retries with backoff, problems reported once, crash recovery."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import select

from bot.config import load_config
from bot.db import utcnow
from bot.events import Place, PlatformError, ReviewCard
from moderation.audit import entries
from moderation.cards import build_card
from moderation.models import Case, CaseState
from moderation.router import route_until_idle
from moderation.store import is_reviewer_channel, reviewer_channel, reviewer_place
from tests.fakes import MemoryPlatform
from tests.moderation_support import FindingMemoryPlatform, Harness, harness, write_mod_config


async def _file(h: Harness, text: str = "spam") -> int:
    msg = h.platform.post_as(h.member("alice"), h.platform.place("general"), text)
    await h.runtime.service.on_reaction(h.platform, h.flag(msg, "bob"))
    async with h.sessions() as session:
        return int((await session.execute(select(Case.id).where(Case.message_key == msg.key))).scalars().one() or 0)


async def _case(h: Harness, case_id: int) -> Case:
    async with h.sessions() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        return case


async def _time_passes(h: Harness) -> None:
    """Make every backed-off case due now, as if the wait had passed."""
    async with h.sessions() as session:
        await session.execute(update(Case).values(next_attempt_at=utcnow()))
        await session.commit()


async def test_failed_post_is_retried_with_backoff_and_posted_once(tmp_path: Path, db_url: str) -> None:
    # A long interval: the backoff (which starts at one interval) cannot run out during the test.
    async with harness(tmp_path, db_url, interval=60) as h:
        case_id = await _file(h)
        h.platform.fail_next = [PlatformError("rate limited", retryable=True, status=429)] * 2
        before = utcnow()
        run = await h.runtime.router.run_once()
        assert (run.posted, run.failed) == (0, 1)
        case = await _case(h, case_id)
        assert case.state == CaseState.OPEN and case.attempts == 1 and case.last_error == "rate limited"
        assert (case.next_attempt_at - before).total_seconds() >= 60  # backs off: not due again at once
        assert (await h.runtime.router.run_once()).claimed == 0

        await _time_passes(h)
        await h.runtime.router.run_once()
        second = await _case(h, case_id)
        assert second.attempts == 2
        assert second.next_attempt_at - utcnow() > case.next_attempt_at - before  # the wait doubles

        await _time_passes(h)
        run = await route_until_idle(h.runtime.router)
        assert run.posted == 1 and len(h.platform.cards) == 1
        case = await _case(h, case_id)
        assert case.state == CaseState.ROUTED and case.attempts == 0 and not case.card_pending


async def test_unusable_reviewer_channel_is_reported_once(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with harness(tmp_path, db_url) as h:
        await _file(h, "one")
        await _file(h, "two")
        caplog.set_level(logging.ERROR, logger="moderation.router")
        for _ in range(3):
            h.platform.fail_next = [PlatformError("not_in_channel", retryable=False, status=403)] * 2
            await h.runtime.router.run_once()
            await _time_passes(h)
        problems = [r for r in caplog.records if "cannot post review cards" in r.getMessage()]
        assert len(problems) == 1 and "reviewers" in problems[0].getMessage()
        async with h.sessions() as session:
            assert [e.action for e in await entries(session)].count("router.problem") == 1
        # Once the bot can post, both cases go out, and a later break would be reported again.
        run = await route_until_idle(h.runtime.router)
        assert run.posted == 2 and len(h.platform.cards) == 2


async def test_crash_after_post_before_record_reuses_the_posted_card(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        case_id = await _file(h)
        # What a process killed after the platform accepted the post, before recording it, leaves behind:
        # the intent (card_pending) in the database and a card on the platform.
        case = await _case(h, case_id)
        place = reviewer_place(h.config, case)
        assert place is not None
        await h.platform.post_review_card(build_card(case, None, place=place))
        async with h.sessions() as session:
            await session.execute(update(Case).values(card_pending=True))
            await session.commit()

        run = await route_until_idle(h.rebuild().router)
        assert run.claimed == 1 and len(h.platform.cards) == 1
        case = await _case(h, case_id)
        assert case.state == CaseState.ROUTED and case.card_message_id == next(iter(h.platform.cards))
        async with h.sessions() as session:
            assert [e.action for e in await entries(session, case_id=case_id)].count("case.routed") == 1


async def test_crash_after_intent_before_post_posts_exactly_once(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        case_id = await _file(h)
        async with h.sessions() as session:
            await session.execute(update(Case).values(card_pending=True))
            await session.commit()
        await route_until_idle(h.runtime.router)
        assert len(h.platform.cards) == 1 and (await _case(h, case_id)).state == CaseState.ROUTED


async def test_platform_without_card_lookup_warns_before_reposting(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with harness(tmp_path, db_url, platform=MemoryPlatform(moderators={"mod"})) as h:
        await _file(h)
        async with h.sessions() as session:
            await session.execute(update(Case).values(card_pending=True))
            await session.commit()
        caplog.set_level(logging.WARNING, logger="moderation.router")
        await route_until_idle(h.runtime.router)
        assert any("cannot look up review cards" in r.getMessage() for r in caplog.records)


async def test_lease_held_by_another_process_is_skipped_until_it_expires(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        case_id = await _file(h)
        async with h.sessions() as session:
            held = utcnow().replace(year=utcnow().year + 1)
            await session.execute(update(Case).values(lease_token="someone-else", lease_until=held))
            await session.commit()
        assert (await h.runtime.router.run_once()).claimed == 0
        async with h.sessions() as session:
            await session.execute(update(Case).values(lease_until=utcnow()))
            await session.commit()
        assert (await route_until_idle(h.runtime.router)).posted == 1
        assert (await _case(h, case_id)).lease_token is None


async def test_missing_reviewer_channel_keeps_the_case_and_says_why(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    platform = FindingMemoryPlatform("nowhere", moderators={"mod"})
    async with harness(tmp_path, db_url, platform=platform) as h:
        case_id = await _file(h)
        caplog.set_level(logging.ERROR, logger="moderation.router")
        await h.runtime.router.run_once()
        assert not h.platform.cards
        assert (await _case(h, case_id)).state == CaseState.OPEN
        assert any("no reviewer channel is configured for nowhere" in r.getMessage() for r in caplog.records)


def test_cards_offer_the_actions_that_fit_the_message() -> None:
    case = Case(id=7, message_key="m:w:c:1", platform="memory", workspace="w", channel="c", message_id="1")
    card = build_card(case, None, place=case.place)
    assert isinstance(card, ReviewCard) and card.case_id == 7
    assert {b.action for b in card.buttons} == {"claim", "dismiss", "remove", "warn", "timeout", "add_word", "escalate"}
    case.answer_id = 3
    answer_card = build_card(case, None, place=case.place)
    assert {b.action for b in answer_card.buttons} == {
        "claim",
        "dismiss",
        "retract",
        "off_scope",
        "unsafe",
        "add_word",
        "escalate",
    }
    case.state = CaseState.RESOLVED
    assert build_card(case, None, place=case.place).buttons == ()


def test_reviewer_channel_per_scope_and_per_workspace(tmp_path: Path) -> None:
    text = write_mod_config(tmp_path, "sqlite+aiosqlite:///x.db").read_text(encoding="utf-8")
    text = text.replace(
        'reviewer_channels = { console = "reviewers", memory = "reviewers", recorder = "reviewers" }',
        'reviewer_channels = { slack = "CREV", "slack:T2" = "CREV2" }',
    )
    text = text.replace(
        'channels = ["admissions"]', 'channels = ["admissions"]\nreviewer_channels = { slack = "CCOLLEGE" }'
    )
    (tmp_path / "scopebot.toml").write_text(text, encoding="utf-8")
    config = load_config(tmp_path / "scopebot.toml")
    assert reviewer_channel(config, platform="slack", workspace="T1", scope=None) == "CREV"
    assert reviewer_channel(config, platform="slack", workspace="T2", scope=None) == "CREV2"
    assert reviewer_channel(config, platform="slack", workspace="T2", scope="college") == "CCOLLEGE"
    assert reviewer_channel(config, platform="discord", workspace="G1", scope="college") is None
    # A flag on a review card is not a report.
    assert is_reviewer_channel(config, Place("slack", "T1", "CCOLLEGE"))
    assert not is_reviewer_channel(config, Place("slack", "T1", "CGENERAL"))
