"""The README's console script, end to end: `scopebot run` reads it on stdin, `scopebot audit --json` checks it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli_support import run_scopebot
from tests.conftest import ROOT
from tests.moderation_support import write_mod_config


def readme_script() -> str:
    """The console script from the README's "## Moderation" section (so the documented one is the tested one)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Moderation") :]
    m = re.search(r"```text\n(/as alice\n.*?)```", section, re.DOTALL)
    assert m, "README's Moderation section has no console script"
    return m.group(1)


def test_console_plays_the_whole_moderation_flow(tmp_path: Path, db_url: str) -> None:
    config = write_mod_config(tmp_path, db_url, interval=1)
    run = run_scopebot("run", "--config", str(config), stdin=readme_script(), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = run.stdout

    # The flag was acknowledged to the reporter only, and a second flag by the same person did nothing.
    assert out.count("(only bob sees) scopebot: Thanks, your report was sent") == 1
    # The router posted exactly one card (later changes are edits in place), with the evidence.
    assert len(re.findall(r"^\[\d+\] #reviewers scopebot: Case #1: Message reported in #general", out, re.M)) == 1
    assert "Reporters: 2" in out and "| Anyone want cheap essays? DM me." in out
    # A member may not act; the moderator's button removed the message and closed the card.
    assert "(only eve sees) scopebot: Only moderators can act on review cards." in out
    assert "[1] (deleted)" in out
    assert "[resolved: remove by mod]" in out

    audit = run_scopebot("audit", "--json", "--config", str(config), cwd=tmp_path)
    assert audit.returncode == 0, audit.stderr
    log = json.loads(audit.stdout)
    # The router may have run between the two flags: only the routing's place among the filings varies.
    assert [(e["action"], e["who"]["id"]) for e in log if e["action"] == "report.filed"] == [
        ("report.filed", "bob"),
        ("report.filed", "carol"),
    ]
    assert [(e["action"], e["who"]["id"]) for e in log if e["action"] != "report.filed"] == [
        ("case.routed", "scopebot"),
        ("case.remove", "mod"),
    ]
    assert log[0]["action"] == "report.filed" and log[-1]["action"] == "case.remove"
    assert all(e["case_id"] == 1 and e["at"] for e in log)
    assert [e["at"] for e in log] == sorted(e["at"] for e in log)
