"""The operator file: validation errors name file, line and key; the CLI exits 2 without a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import DATABASE_URL_ENV, ConfigError, load_config
from tests.cli_support import run_scopebot
from tests.conftest import ROOT


def test_shipped_example_is_valid() -> None:
    cfg = load_config(ROOT / "scopebot.example.toml")
    assert [s.name for s in cfg.scopes] == ["college"]
    assert cfg.default_scope.refusal.startswith("That's not a college data question.")
    assert all(p.exists() for p in cfg.scopes[0].knowledge)
    assert not cfg.model.configured
    assert len(cfg.version) == 12


def test_knowledge_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "a.md").write_text("# A\nfacts", encoding="utf-8")
    f = tmp_path / "conf" / "scopebot.toml"
    f.parent.mkdir()
    f.write_text(
        '[[scopes]]\nname = "s"\ndescription = "A scope about things."\nrefusal = "No."\nknowledge = ["../kb"]\n',
        encoding="utf-8",
    )
    cfg = load_config(f)
    assert cfg.scopes[0].knowledge == [f.parent / "../kb"]
    assert cfg.database.url == "sqlite+aiosqlite:///scopebot.db"


def test_aliases_are_trimmed_and_blank_ones_dropped(tmp_path: Path) -> None:
    f = tmp_path / "scopebot.toml"
    f.write_text(
        '[[scopes]]\nname = "s"\ndescription = "A scope about things."\nrefusal = "No."\n'
        'aliases = [" HVM ", "", "the Harrow museum"]\n',
        encoding="utf-8",
    )
    assert load_config(f).scopes[0].aliases == ["HVM", "the Harrow museum"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda t: t.replace("[model]\n", "[model]\ncontxt_length = 4\n"),
            r"scopebot.toml:\d+: model.contxt_length: unknown key",
        ),
        (
            lambda t: t.replace("threads = 1", 'threads = "two"'),
            r"scopebot.toml:\d+: model.threads: Input should be a valid integer",
        ),
        (
            lambda t: t.replace('refusal = "That\'s not a college data question."\n', ""),
            r"scopebot.toml:\d+: scopes\[0\].refusal: required key is missing",
        ),
        (
            lambda t: t.replace("max_new_tokens = 24", "max_new_tokens = 0"),
            r"model.max_new_tokens: Input should be greater than or equal to 1",
        ),
        (lambda t: t.replace('url = "sqlite', 'url = "mysql'), r"database.url: use an async driver"),
        (
            lambda t: t + '\n[[scopes]]\nname = "college"\ndescription = "Again the same name."\nrefusal = "No."\n',
            r"scope names must be unique; repeated: college",
        ),
        (
            lambda t: t.replace("router_interval_seconds = 1", "router_interval_seconds = -1"),
            r"moderation.router_interval_seconds: Input should be greater than 0",
        ),
        (
            lambda t: t + "\n[gate]\nscope_reload_seconds = 0\n",
            r"scopebot.toml:\d+: gate.scope_reload_seconds: Input should be greater than 0",
        ),
        (lambda t: t.replace("[bot]", "[bot\n"), r"scopebot.toml: not valid TOML: .*line 2"),
    ],
)
def test_bad_file_names_file_line_and_key(
    write_config: Callable[..., Path], mutate: Callable[[str], str], expected: str
) -> None:
    path = write_config()
    path.write_text(mutate(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_error_line_points_at_the_offending_key(write_config: Callable[..., Path]) -> None:
    path = write_config()
    text = path.read_text(encoding="utf-8").replace("threads = 1", 'threads = "two"')
    path.write_text(text, encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("threads"))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert f"scopebot.toml:{line}: model.threads" in str(e.value)


def test_missing_knowledge_folder_names_the_key(write_config: Callable[..., Path], tmp_path: Path) -> None:
    path = write_config(
        '\n[[scopes]]\nname = "other"\ndescription = "Another scope here."\nrefusal = "No."\nknowledge = ["nowhere/docs"]\n'
    )
    with pytest.raises(ConfigError, match=r"scopes\[1\].knowledge\[0\]: nowhere/docs does not exist"):
        load_config(path)


def test_missing_model_file_is_named(write_config: Callable[..., Path], tmp_path: Path) -> None:
    path = write_config(model=tmp_path / "missing.gguf")
    with pytest.raises(ConfigError, match=r"model.path: .*missing.gguf is not a file"):
        load_config(path)


def test_model_path_from_the_command_line_wins(write_config: Callable[..., Path], tiny_gguf: Path) -> None:
    cfg = load_config(write_config(), model_path=tiny_gguf)
    assert cfg.model.path == tiny_gguf
    assert cfg.model.label == "tiny.gguf"


def test_database_url_from_the_environment_wins(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql+asyncpg://bot:secret@db.example/scopebot")
    cfg = load_config(write_config())
    assert cfg.database.url == "postgresql+asyncpg://bot:secret@db.example/scopebot"


def test_missing_file_says_how_to_start() -> None:
    with pytest.raises(ConfigError, match=r"no such file; copy scopebot\.example\.toml"):
        load_config(Path("/nonexistent/scopebot.toml"))


@pytest.mark.parametrize("broken", ['[model]\nthreads = "x"\n', "[[scopes]]\nname = 'x'\n", "[bot\n"])
def test_cli_exits_2_with_one_line_and_no_traceback(tmp_path: Path, broken: str) -> None:
    path = tmp_path / "scopebot.toml"
    path.write_text(broken, encoding="utf-8")
    proc = run_scopebot("run", "--config", str(path), timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"scopebot: error: {path}")
    assert "Traceback" not in proc.stderr
