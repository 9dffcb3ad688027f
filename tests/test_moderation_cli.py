"""`scopebot case …`, `scopebot audit`, `scopebot stats` against a real database, and retention."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.cli import main
from bot.db import utcnow
from bot.events import MessageRef
from moderation.audit import entries
from moderation.models import Case, CaseEvidence, Report
from moderation.retention import purge_expired
from moderation.router import route_until_idle
from tests.moderation_support import FindingMemoryPlatform, harness, write_mod_config


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_lists_shows_acts_and_audits(tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    platform = FindingMemoryPlatform(moderators={"mod"})
    refs: dict[str, MessageRef] = {}

    async def setup() -> None:
        async with harness(tmp_path, db_url, platform=platform) as h:
            for name, text in (("a", "first bad message"), ("b", "second bad message"), ("c", "third")):
                refs[name] = h.platform.post_as(h.member("alice"), h.platform.place("general"), text)
                await h.runtime.service.on_reaction(h.platform, h.flag(refs[name], "bob"))
            await h.runtime.service.on_reaction(h.platform, h.flag(refs["a"], "carol"))
            await route_until_idle(h.runtime.router)
            await h.runtime.service.act(
                platform=h.platform, actor=h.member("mod"), place=None, case_id=1, action="dismiss"
            )

    asyncio.run(setup())
    cfg = str(write_mod_config(tmp_path, db_url))

    code, out, _ = _run(capsys, "case", "list", "--config", cfg)
    assert code == 0 and "#2" in out and "#3" in out and "#1 " not in out
    code, out, _ = _run(capsys, "case", "list", "--state", "all", "--json", "--config", cfg)
    assert sorted(c["id"] for c in json.loads(out)) == [1, 2, 3]

    code, out, _ = _run(capsys, "case", "show", "2", "--config", cfg)
    assert code == 0 and "second bad message" in out and "bob" in out
    code, out, _ = _run(capsys, "case", "export", "1", "--config", cfg)
    record = json.loads(out)
    assert record["evidence"]["text"] == "first bad message"
    assert [r["reporter"]["id"] for r in record["reports"]] == ["bob", "carol"]
    assert [a["action"] for a in record["audit"]] == ["report.filed", "report.filed", "case.routed", "case.dismiss"]

    code, out, _ = _run(capsys, "case", "dismiss", "2", "--as", "olga", "--config", cfg)
    assert code == 0 and "dismissed" in out
    code, out, _ = _run(capsys, "case", "dismiss", "2", "--as", "pete", "--config", cfg)
    assert code == 1 and "already resolved by olga" in out
    code, out, _ = _run(capsys, "case", "remove", "3", "--as", "olga", "--config", cfg)
    assert code == 0 and "next router pass" in out

    code, out, _ = _run(capsys, "audit", "--json", "--config", cfg)
    log = json.loads(out)
    assert [(e["action"], e["who"]["id"], e["case_id"]) for e in log if e["action"].startswith("case.")] == [
        ("case.routed", "scopebot", 1),
        ("case.routed", "scopebot", 2),
        ("case.routed", "scopebot", 3),
        ("case.dismiss", "mod", 1),
        ("case.dismiss", "olga", 2),
        ("case.remove", "olga", 3),
    ]
    assert all(e["at"] for e in log) and not any("bad message" in json.dumps(e) for e in log)
    code, out, _ = _run(capsys, "audit", "--case", "2", "--config", cfg)
    assert "case.dismiss" in out and "olga (cli)" in out and "case #1" not in out
    code, out, _ = _run(capsys, "audit", "--since", "2999-01-01", "--config", cfg)
    assert out.strip() == "No audit entries."
    code, out, _ = _run(capsys, "audit", "--since", "1h", "--json", "--config", cfg)
    assert len(json.loads(out)) == len(log)

    # The running bot carries out the command line's removal on its next pass.
    async def bot_pass() -> None:
        async with harness(tmp_path, db_url, platform=platform) as h:
            run = await route_until_idle(h.runtime.router)
            assert run.effects == 1

    asyncio.run(bot_pass())
    assert platform.messages[refs["c"].message_id].deleted
    assert platform.cards[next(k for k, c in platform.cards.items() if c.case_id == 3)].buttons == ()

    code, out, _ = _run(capsys, "stats", "--json", "--config", cfg)
    stats = json.loads(out)
    assert stats["open_cases"] == 0 and stats["resolved"] == 3
    assert stats["median_minutes_to_resolution"] is not None
    assert stats["actions_per_moderator"] == {"mod": {"dismiss": 1}, "olga": {"dismiss": 1, "remove": 1}}
    assert stats["reporter_accuracy"]["bob"] == {"resolved_reports": 3, "upheld": 1, "accuracy": 0.33}
    code, out, _ = _run(capsys, "stats", "--config", cfg)
    assert "median time to resolution" in out and "olga: dismiss 1, remove 1" in out


def test_cli_errors_are_clear(tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_mod_config(tmp_path, sqlite_url))
    code, _, err = _run(capsys, "audit", "--config", cfg)
    assert code == 1 and "scopebot db upgrade" in err
    assert _run(capsys, "db", "upgrade", "--config", cfg)[0] == 0
    code, _, err = _run(capsys, "case", "show", "--config", cfg)
    assert code == 2 and "needs a case number" in err
    code, _, err = _run(capsys, "case", "show", "9", "--config", cfg)
    assert code == 1 and "no case #9" in err
    code, _, err = _run(capsys, "case", "frobnicate", "9", "--config", cfg)
    assert code == 2 and "unknown case command" in err
    with pytest.raises(SystemExit, match="ISO date"):
        main(["audit", "--since", "yesterday-ish", "--config", cfg])


async def test_retention_purges_evidence_but_keeps_the_audit_trail(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        msg = h.platform.post_as(h.member("alice"), h.platform.place("general"), "secret personal text")
        keep = h.platform.post_as(h.member("alice"), h.platform.place("general"), "still under review")
        await h.runtime.service.on_reaction(h.platform, h.flag(msg, "bob"))
        await h.runtime.service.on_reaction(h.platform, h.flag(keep, "bob"))
        await route_until_idle(h.runtime.router)
        await h.runtime.service.act(platform=h.platform, actor=h.member("mod"), place=None, case_id=1, action="dismiss")

        assert await purge_expired(h.sessions, retention_days=30) == 0  # too recent
        later = utcnow() + timedelta(days=31)
        assert await purge_expired(h.sessions, retention_days=30, now=later) == 1
        assert await purge_expired(h.sessions, retention_days=30, now=later) == 0
        await route_until_idle(h.runtime.router)

        async with h.sessions() as session:
            assert await session.get(CaseEvidence, 1) is None
            assert await session.get(CaseEvidence, 2) is not None  # unresolved cases keep theirs
            snaps = {r.case_id: r.snapshot for r in (await session.execute(select(Report))).scalars()}
            case = await session.get(Case, 1)
            trail = await entries(session, case_id=1)
        assert snaps == {1: None, 2: "still under review"}
        assert case is not None and case.evidence_purged_at is not None and case.resolution == "dismiss"
        assert [e.action for e in trail][-1] == "case.evidence_purged"
        assert not any("secret" in e.note + json.dumps(e.detail) for e in trail)
        card = next(c for c in h.platform.cards.values() if c.case_id == 1)
        assert "secret" not in card.body and "purged" in card.body
