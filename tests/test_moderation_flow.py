"""End to end on the in-memory platform: flag → case → router → card → moderator action → audit log."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlmodel import col, select

from bot.events import CardAction, MessageRef
from moderation.actions import REFUSAL
from moderation.audit import entries
from moderation.models import Case, CaseEvidence, CaseState, Report
from moderation.router import route_until_idle
from tests.moderation_support import Harness, harness


async def _case(h: Harness, case_id: int) -> Case:
    async with h.sessions() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        return case


async def _actions(h: Harness, case_id: int | None = None) -> list[str]:
    async with h.sessions() as session:
        return [e.action for e in await entries(session, case_id=case_id)]


def _press(h: Harness, who: str, case_id: int, action: str, argument: str = "") -> CardAction:
    card = next(iter(h.platform.cards))
    return CardAction(
        actor=h.member(who),
        case_id=case_id,
        action=action,
        card=MessageRef(h.platform.place("reviewers"), card),
        argument=argument,
    )


async def test_flag_files_one_case_and_the_router_posts_one_card(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        svc = h.runtime.service
        msg = h.platform.post_as(h.member("alice"), h.platform.place("general"), "buy cheap essays at example.com")

        await svc.on_reaction(h.platform, h.flag(msg, "bob"))
        await svc.on_reaction(h.platform, h.flag(msg, "bob"))  # the same person again: nothing

        async with h.sessions() as session:
            cases = list((await session.execute(select(Case))).scalars())
            reports = list((await session.execute(select(Report))).scalars())
            evidence = await session.get(CaseEvidence, cases[0].id)
        assert len(cases) == 1 and len(reports) == 1
        assert cases[0].reporters == 1 and cases[0].state == CaseState.OPEN
        assert evidence is not None and evidence.text == "buy cheap essays at example.com"
        assert evidence.permalink == f"memory://{msg.message_id}"
        # One private acknowledgement, to the reporter only.
        assert [(r.user_id, "moderators" in r.text) for r in h.platform.private] == [("bob", True)]

        first = await route_until_idle(h.runtime.router)
        again = await route_until_idle(h.runtime.router)
        assert first.posted == 1 and again.posted == 0
        assert len(h.platform.cards) == 1
        card = next(iter(h.platform.cards.values()))
        assert card.case_id == cases[0].id and card.place.channel == "reviewers"
        assert "buy cheap essays" in card.body
        assert {b.action for b in card.buttons} >= {"dismiss", "remove", "warn", "timeout", "claim"}
        # The reporter stays anonymous: the card names no reporter.
        assert "bob" not in repr(card)
        assert (await _case(h, cases[0].id or 0)).state == CaseState.ROUTED

        # Another person's flag updates the same card in place.
        await svc.on_reaction(h.platform, h.flag(msg, "carol"))
        run = await route_until_idle(h.runtime.router)
        assert run.posted == 0 and run.updated == 1
        assert len(h.platform.cards) == 1
        assert dict(next(iter(h.platform.cards.values())).fields)["Reporters"].startswith("2")
        assert await _actions(h) == ["report.filed", "case.routed", "report.filed"]


async def test_moderator_button_resolves_and_audits_non_moderator_refused(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        svc = h.runtime.service
        msg = h.platform.post_as(h.member("alice"), h.platform.place("general"), "rude words")
        await svc.on_reaction(h.platform, h.flag(msg, "bob"))
        await route_until_idle(h.runtime.router)
        case_id = next(iter(h.platform.cards.values())).case_id
        h.platform.private.clear()

        await svc.on_card_action(h.platform, _press(h, "mallory", case_id, "remove"))
        assert [(r.user_id, r.text) for r in h.platform.private] == [("mallory", REFUSAL)]
        assert not h.platform.messages[msg.message_id].deleted
        assert (await _case(h, case_id)).state == CaseState.ROUTED
        assert "case.remove" not in await _actions(h)

        await svc.on_card_action(h.platform, _press(h, "mod", case_id, "remove"))
        assert h.platform.messages[msg.message_id].deleted
        case = await _case(h, case_id)
        assert (case.state, case.resolution, case.resolved_by_id) == (CaseState.RESOLVED, "remove", "mod")
        assert h.platform.private[-1].user_id == "mod" and "Removed" in h.platform.private[-1].text
        # The card now shows the outcome and has no buttons left.
        card = next(iter(h.platform.cards.values()))
        assert card.buttons == () and "remove by mod" in card.status
        async with h.sessions() as session:
            trail = await entries(session, case_id=case_id)
        assert [(e.action, e.actor_id) for e in trail] == [
            ("report.filed", "bob"),
            ("case.routed", "scopebot"),
            ("case.remove", "mod"),
        ]
        # The audit log never holds the message text.
        assert all("rude" not in (e.note + repr(e.detail)) for e in trail)


async def test_two_concurrent_presses_resolve_once(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        svc = h.runtime.service
        msg = h.platform.post_as(h.member("alice"), h.platform.place("general"), "spam spam")
        await svc.on_reaction(h.platform, h.flag(msg, "bob"))
        await route_until_idle(h.runtime.router)
        case_id = next(iter(h.platform.cards.values())).case_id
        h.platform.private.clear()

        await asyncio.gather(
            svc.on_card_action(h.platform, _press(h, "mod", case_id, "dismiss")),
            svc.on_card_action(h.platform, _press(h, "mod2", case_id, "remove")),
        )
        case = await _case(h, case_id)
        assert case.state == CaseState.RESOLVED
        winner, loser = ("mod", "mod2") if case.resolved_by_id == "mod" else ("mod2", "mod")
        replies = {r.user_id: r.text for r in h.platform.private}
        assert "already resolved by " + winner in replies[loser]
        assert (await _actions(h, case_id)).count(f"case.{case.resolution}") == 1
        assert [a for a in await _actions(h, case_id) if a in ("case.dismiss", "case.remove")] == [
            f"case.{case.resolution}"
        ]
        # Only the winner's action took effect.
        assert h.platform.messages[msg.message_id].deleted == (case.resolution == "remove")


async def test_buttons_work_after_a_restart(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        msg = h.platform.post_as(h.member("alice"), h.platform.place("general"), "off topic")
        await h.runtime.service.on_reaction(h.platform, h.flag(msg, "bob"))
        await route_until_idle(h.runtime.router)
        case_id = next(iter(h.platform.cards.values())).case_id

        restarted = h.rebuild()
        await restarted.service.on_card_action(h.platform, _press(h, "mod", case_id, "dismiss"))
        assert (await _case(h, case_id)).resolution == "dismiss"
        assert not h.platform.messages[msg.message_id].deleted


async def test_evidence_survives_edit_and_delete(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        svc = h.runtime.service
        msg = h.platform.post_as(h.member("alice"), h.platform.place("general"), "the original words")
        await svc.on_reaction(h.platform, h.flag(msg, "bob"))
        await h.platform.edit(msg, "innocent now")
        await svc.on_reaction(h.platform, h.flag(msg, "carol"))
        await h.platform.delete(msg)
        await svc.on_reaction(h.platform, h.flag(msg, "dave"))
        await route_until_idle(h.runtime.router)

        card = next(iter(h.platform.cards.values()))
        assert "the original words" in card.body and card.fields[0][1].startswith("3")
        async with h.sessions() as session:
            reports = list((await session.execute(select(Report).order_by(col(Report.id)))).scalars())
        assert [r.snapshot for r in reports] == ["the original words", "innocent now", None]
