"""The README's two commands stay the ones CI and newcomers run."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.+?)\n```", text, flags=re.S)


def test_readme_opens_with_install_and_run_then_install_and_test() -> None:
    run, test = _commands()[:2]
    assert run.startswith("python3 -m venv .venv && .venv/bin/pip install -e . && ")
    assert run.endswith("scopebot run --config scopebot.example.toml")
    assert "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test = _commands()[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test in ci.splitlines()
