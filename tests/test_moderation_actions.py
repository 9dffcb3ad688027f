"""Reviewer actions on members' messages: warn, time out (platform or bot-kept), phrases, claim, escalate."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select

from bot.db import create_engine
from bot.events import Place, PlatformError
from bot.gate.overlay import ScopeAdmin
from bot.scopes import ScopeRegistry
from moderation.actions import parse_duration
from moderation.audit import entries
from moderation.models import Case, CaseAction, Mute
from moderation.router import route_until_idle
from moderation.wiring import build_moderation
from moderation.wordlist import OverlayPhrases
from tests.fakes import MemoryPlatform
from tests.moderation_support import Harness, harness


class NoTimeoutPlatform(MemoryPlatform):
    """A platform without member time-outs (like Slack and the console)."""

    async def timeout_member(self, place: Place, user_id: str, *, until: datetime, reason: str) -> bool:
        return False


async def _flagged(h: Harness, text: str = "some bad words") -> int:
    msg = h.platform.post_as(h.member("alice"), h.platform.place("general"), text)
    await h.runtime.service.on_reaction(h.platform, h.flag(msg, "bob"))
    await route_until_idle(h.runtime.router)
    async with h.sessions() as session:
        return int((await session.execute(select(Case.id).where(Case.message_key == msg.key))).scalars().one() or 0)


async def _act(h: Harness, who: str, case_id: int, action: str, argument: str = "") -> str:
    return await h.runtime.service.act(
        platform=h.platform, actor=h.member(who), place=None, case_id=case_id, action=action, argument=argument
    )


async def test_warn_messages_the_author_privately_once(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        case_id = await _flagged(h)
        h.platform.private.clear()
        first = await _act(h, "mod", case_id, "warn", "Please keep it civil.")
        second = await _act(h, "mod2", case_id, "warn")
        warnings = [r for r in h.platform.private if r.user_id == "alice"]
        assert len(warnings) == 1 and warnings[0].text.endswith("Please keep it civil.")
        assert "Warned the author" in first
        assert second.startswith("mod already did warn")
        card = next(iter(h.platform.cards.values()))
        assert ("Done", "warn by mod") in card.fields and card.buttons  # warning does not close the case


async def test_timeout_uses_the_platform_when_it_can(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        case_id = await _flagged(h)
        text = await _act(h, "mod", case_id, "timeout", "2h")
        assert "Timed out" in text
        assert [u for u, _ in h.platform.timeouts] == ["alice"]
        assert not await h.runtime.service.is_muted(h.member("alice"), h.platform.place("general"))


async def test_timeout_without_platform_support_mutes_the_member_for_the_bot(tmp_path: Path, db_url: str) -> None:
    platform = NoTimeoutPlatform(moderators={"mod"})
    async with harness(tmp_path, db_url, platform=platform) as h:
        case_id = await _flagged(h)
        text = await _act(h, "mod", case_id, "timeout", "30m")
        assert "the bot will not answer them" in text
        assert await h.runtime.service.is_muted(h.member("alice"), h.platform.place("admissions"))
        assert not await h.runtime.service.is_muted(h.member("bob"), h.platform.place("admissions"))
        # Another workspace of the same platform is not covered.
        other = Place("memory", "w2", "general")
        assert not await h.runtime.service.is_muted(h.member("alice"), other)
        async with h.sessions() as session:
            mute = (await session.execute(select(Mute))).scalars().one()
            await session.execute(update(Mute).values(until=mute.created_at))
            await session.commit()
            trail = [e.action for e in await entries(session, case_id=case_id)]
        assert not await h.runtime.service.is_muted(h.member("alice"), h.platform.place("admissions"))
        assert trail[-2:] == ["case.timeout", "member.muted"]


async def test_time_outs_known_before_a_database_outage_hold_during_it(tmp_path: Path, db_url: str) -> None:
    platform = NoTimeoutPlatform(moderators={"mod"})
    async with harness(tmp_path, db_url, platform=platform) as h:
        case_id = await _flagged(h)
        await _act(h, "mod", case_id, "timeout", "30m")
        svc = h.runtime.service
        admissions = h.platform.place("admissions")
        # bob is asked about first: the bot has read every active time-out, alice's included.
        assert not await svc.is_muted(h.member("bob"), admissions)
        # The database goes away (a server nobody listens on: connections are refused).
        dead = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
        svc._sessions = async_sessionmaker(dead, expire_on_commit=False)
        try:
            assert await svc.is_muted(h.member("alice"), admissions)
            assert svc._watch.down
            assert await svc.is_muted(h.member("alice"), admissions)  # known down: no new attempt needed
            assert not await svc.is_muted(h.member("bob"), admissions)
            assert not await svc.is_muted(h.member("alice"), Place("memory", "w2", "general"))
        finally:
            await dead.dispose()


async def test_bad_timeout_and_missing_phrase_are_explained(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        case_id = await _flagged(h)
        assert "use e.g. 30m" in await _act(h, "mod", case_id, "timeout", "forever")
        assert "Say which phrase" in await _act(h, "mod", case_id, "add_word")
        assert "Unknown action" in await _act(h, "mod", case_id, "explode")
        assert "no case #999" in await _act(h, "mod", 999, "dismiss")
        async with h.sessions() as session:
            assert not list((await session.execute(select(CaseAction))).scalars())


async def test_add_word_blocks_the_phrase_in_the_scope(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        case_id = await _flagged(h, "cheap essays here")
        scopes = h.runtime.service.effects._phrases._scopes  # type: ignore[attr-defined]
        assert "cheap essays" not in scopes.get("college").blocked_words
        text = await _act(h, "mod", case_id, "add_word", "cheap essays")
        assert "Added 'cheap essays'" in text
        assert "cheap essays" in scopes.get("college").blocked_words
        again = await _act(h, "mod2", case_id, "add_word", "Cheap  Essays")
        assert "already did add_word" in again
        async with h.sessions() as session:
            trail = await entries(session, case_id=case_id)
        assert trail[-1].action == "case.add_word" and trail[-1].detail["argument"] == "cheap essays"


async def test_add_word_goes_to_the_gate_overlay_and_survives_a_restart(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        registry = ScopeRegistry(h.config)
        admin = ScopeAdmin(config=h.config, registry=registry, sessions=h.sessions)
        runtime = build_moderation(
            config=h.config,
            sessions=h.sessions,
            scopes=registry,
            platforms=[h.platform],
            phrases=OverlayPhrases(admin),
        )
        msg = h.platform.post_as(h.member("alice"), h.platform.place("admissions"), "buy essays here")
        await runtime.service.on_reaction(h.platform, h.flag(msg, "bob"))
        async with h.sessions() as session:
            case_id = (await session.execute(select(Case.id))).scalars().one() or 0
        text = await runtime.service.act(
            platform=h.platform,
            actor=h.member("mod"),
            place=None,
            case_id=case_id,
            action="add_word",
            argument="buy essays",
        )
        assert "Added 'buy essays'" in text
        assert "buy essays" in registry.get("college").blocked_words

        # After a restart the overlay puts the phrase in force again.
        fresh = ScopeRegistry(h.config)
        assert "buy essays" not in fresh.get("college").blocked_words
        await ScopeAdmin(config=h.config, registry=fresh, sessions=h.sessions).load()
        assert "buy essays" in fresh.get("college").blocked_words
        async with h.sessions() as session:
            actions = [e.action for e in await entries(session)]
        assert "case.add_word" in actions and "scope.add_word" in actions


async def test_claim_and_escalate(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        case_id = await _flagged(h)
        assert "You claimed" in await _act(h, "mod", case_id, "claim")
        assert "already claimed by mod" in await _act(h, "mod2", case_id, "claim")
        card = next(iter(h.platform.cards.values()))
        assert card.status == "claimed by mod"

        await _act(h, "mod2", case_id, "escalate")
        card_ref = next(iter(h.platform.cards))
        pings = [m.text for m in h.platform.messages.values() if m.reply_to and m.reply_to.message_id == card_ref]
        assert pings == [f"@mods case #{case_id} needs a moderator (escalated by mod2)."]
        assert "already escalated" in await _act(h, "mod", case_id, "escalate")
        await route_until_idle(h.runtime.router)
        assert len([m for m in h.platform.messages.values() if m.reply_to]) == 1  # pinged once
        card = next(iter(h.platform.cards.values()))
        assert card.urgent and card.mention == "@mods"


async def test_many_reporters_escalate_and_overdue_cases_escalate(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url, escalate_reporters=3) as h:
        msg = h.platform.post_as(h.member("alice"), h.platform.place("general"), "x")
        for who in ("b1", "b2", "b3"):
            await h.runtime.service.on_reaction(h.platform, h.flag(msg, who))
        await route_until_idle(h.runtime.router)
        card = next(iter(h.platform.cards.values()))
        assert card.urgent and ("Escalated", "3 reporters") in card.fields

        quiet = h.platform.post_as(h.member("alice"), h.platform.place("general"), "y")
        await h.runtime.service.on_reaction(h.platform, h.flag(quiet, "b1"))
        await route_until_idle(h.runtime.router)
        async with h.sessions() as session:
            # As if the case had waited longer than escalate_after_minutes.
            await session.execute(
                update(Case).where(col(Case.message_key) == quiet.key).values(routed_at=datetime(2020, 1, 1))
            )
            await session.commit()
        run = await route_until_idle(h.runtime.router)
        assert run.escalated == 1
        async with h.sessions() as session:
            case = (await session.execute(select(Case).where(Case.message_key == quiet.key))).scalars().one()
        assert case.escalated and case.escalation_reason == "unreviewed for 60 min"


def test_parse_duration() -> None:
    assert parse_duration("", default_minutes=60).total_seconds() == 3600
    assert parse_duration("90", default_minutes=60).total_seconds() == 5400
    assert parse_duration("2h", default_minutes=60).total_seconds() == 7200
    assert parse_duration("1.5d", default_minutes=60).total_seconds() == 129600
    for bad in ("0m", "29d", "soon", "-5m"):
        try:
            parse_duration(bad, default_minutes=60)
        except ValueError:
            continue
        raise AssertionError(bad)


async def test_a_failed_removal_reopens_the_case_and_a_flaky_one_is_retried(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        case_id = await _flagged(h, "first")
        h.platform.fail_next = [PlatformError("cant_delete_message", retryable=False, status=403)]
        text = await _act(h, "mod", case_id, "remove")
        assert f"remove on case #{case_id} failed: cant_delete_message" in text and "open again" in text
        async with h.sessions() as session:
            case = await session.get(Case, case_id)
            trail = [e.action for e in await entries(session, case_id=case_id)]
        assert case is not None and case.state == "routed" and case.resolution is None
        assert trail[-3:] == ["case.remove", "case.remove.failed", "case.reopened"]
        assert "dismissed" in await _act(h, "mod2", case_id, "dismiss")  # someone can resolve it now

        other = await _flagged(h, "second")
        h.platform.fail_next = [PlatformError("server error", retryable=True, status=500)]
        text = await _act(h, "mod", other, "remove")
        assert "failed for now" in text and "retrying" in text
        msg = next(m for m in h.platform.messages.values() if m.text == "second")
        assert not msg.deleted
        async with h.sessions() as session:
            await session.execute(update(CaseAction).values(next_attempt_at=datetime(2020, 1, 1)))
            await session.commit()
        run = await route_until_idle(h.runtime.router)
        assert run.effects == 1 and msg.deleted
        async with h.sessions() as session:
            row = (await session.execute(select(CaseAction).where(CaseAction.case_id == other))).scalars().one()
        assert (row.status, row.attempts) == ("done", 1)
