"""Shared fixtures: tiny LLaMA GGUF files, databases (SQLite always, PostgreSQL when configured), configs."""

from __future__ import annotations

import asyncio
import os
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from bot.config import Config, load_config
from tests.gguf_factory import write_llama_gguf

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
COLLEGE_KNOWLEDGE = ROOT / "examples" / "knowledge" / "college"
POSTGRES_ENV = "SCOPEBOT_TEST_POSTGRES_URL"

# Fuzz budgets (tests/test_fuzz_*.py): small in CI, large with HYPOTHESIS_PROFILE=deep. No deadline: a
# megabyte of text legitimately takes a while. The example database lives in .hypothesis/ (gitignored).
# The CI profile draws the same examples every run (derandomize): a commit that passed keeps passing, and
# new ground is explored by the deep profile, whose finds become explicit @example cases.
_FUZZ_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=_FUZZ_HEALTH, print_blob=True, derandomize=True
)
settings.register_profile("deep", max_examples=3000, deadline=None, suppress_health_check=_FUZZ_HEALTH)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def gguf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for generated model files, shared by the whole run."""
    return tmp_path_factory.mktemp("gguf")


@pytest.fixture(scope="session")
def tiny_gguf(gguf_dir: Path) -> Path:
    """A tiny LLaMA whose answers end at random (EOS is an ordinary token)."""
    return write_llama_gguf(gguf_dir / "tiny.gguf", seed=1)


@pytest.fixture(scope="session")
def chatty_gguf(gguf_dir: Path) -> Path:
    """A tiny LLaMA that never emits EOS, so answers run to `max_new_tokens`."""
    return write_llama_gguf(gguf_dir / "chatty.gguf", eos_bias=-60.0, seed=2)


@pytest.fixture(scope="session")
def eos_gguf(gguf_dir: Path) -> Path:
    """A tiny LLaMA that emits EOS first, so answers are empty."""
    return write_llama_gguf(gguf_dir / "eos.gguf", eos_bias=60.0, seed=3)


@pytest.fixture(scope="session")
def slow_gguf(gguf_dir: Path) -> Path:
    """A larger model that never stops by itself (a few ms a token), for queues, timeouts and kills mid-answer."""
    return write_llama_gguf(gguf_dir / "slow.gguf", n_layer=6, n_embd=384, n_ff=1024, n_head=6, eos_bias=-60.0)


def _postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


async def _pg_admin(base_url: str, sql: str) -> None:
    import asyncpg

    dsn = base_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test (skipped when the server is not configured)."""
    base = _postgres_url()
    if base is None:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    name = f"scopebot_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(base, f'CREATE DATABASE "{name}"'))
    head, _, _ = base.rpartition("/")
    try:
        yield f"{head}/{name}"
    finally:
        asyncio.run(_pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'scopebot.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file in this test's folder."""
    return f"sqlite+aiosqlite:///{tmp_path / 'scopebot.db'}"


BASE_TOML = """
[bot]
name = "scopebot"
blocked_words = ["frobnicate"]
default_scope = "college"
# Tests ask many questions quickly; the limits themselves are tested with their own settings.
user_questions_per_minute = 10000
channel_questions_per_minute = 10000

[model]
context_length = 2048
threads = 1
max_new_tokens = 24
temperature = 0.8
timeout_seconds = 60
queue_size = 8

[database]
url = "{db_url}"

[moderation]
reviewer_channels = {{ console = "reviewers", memory = "reviewers" }}
router_interval_seconds = 1

[moderation.moderators]
console = ["mod"]

[[scopes]]
name = "college"
description = "Answers questions about Northgate College: admissions and application deadlines, tuition and fees, financial aid, majors, campus life and tours."
refusal = "That's not a college data question."
examples = ["When is the Regular Decision deadline?", "How much is tuition?", "What majors do you offer?"]
knowledge = ["{knowledge}"]
blocked_words = ["hazing"]
channels = ["admissions"]
"""


@pytest.fixture
def write_config(tmp_path: Path, sqlite_url: str) -> Callable[..., Path]:
    """Write a scopebot.toml into the test folder; `extra` is appended, `db_url` overrides the database."""

    def write(extra: str = "", *, db_url: str | None = None, model: Path | None = None) -> Path:
        text = BASE_TOML.format(db_url=db_url or sqlite_url, knowledge=COLLEGE_KNOWLEDGE.as_posix())
        if model is not None:
            text = text.replace("[model]\n", f'[model]\npath = "{model.as_posix()}"\n', 1)
        path = tmp_path / "scopebot.toml"
        path.write_text(text + textwrap.dedent(extra), encoding="utf-8")
        return path

    return write


@pytest.fixture
def config(write_config: Callable[..., Path]) -> Config:
    """The test configuration on SQLite, without a model."""
    return load_config(write_config())
