"""The scheduler's job store connects to the bot's database with the options the bot's URL gives."""

from __future__ import annotations

import pytest
import sqlalchemy

from moderation.scheduling import job_store, sync_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite+aiosqlite:////var/lib/scopebot.db", "sqlite:////var/lib/scopebot.db"),
        ("postgresql+asyncpg://bot@db:5432/scopebot", "postgresql+psycopg://bot@db:5432/scopebot"),
        (
            "postgresql+asyncpg://bot:p%40ss@db/scopebot?ssl=require&timeout=5&command_timeout=30",
            "postgresql+psycopg://bot:p%40ss@db/scopebot?connect_timeout=5&sslmode=require",
        ),
        ("postgresql+asyncpg://bot@db/s?ssl=true", "postgresql+psycopg://bot@db/s?sslmode=require"),
        ("postgresql+asyncpg://bot@db/s?ssl=false", "postgresql+psycopg://bot@db/s?sslmode=disable"),
        (
            "postgresql+asyncpg://bot@db/s?prepared_statement_cache_size=0&application_name=scopebot",
            "postgresql+psycopg://bot@db/s?application_name=scopebot",
        ),
    ],
)
def test_asyncpg_options_become_libpq_options(url: str, expected: str) -> None:
    assert sync_url(url) == expected


def test_an_unknown_driver_is_named() -> None:
    with pytest.raises(ValueError, match="mysql"):
        sync_url("mysql+aiomysql://bot@db/s")


def test_the_job_store_connects_with_asyncpg_only_options_in_the_url(postgres_url: str) -> None:
    url = postgres_url + "?ssl=disable&timeout=7&command_timeout=30&prepared_statement_cache_size=0"
    store = job_store(url)
    with store.engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("select 1")).scalar() == 1
    store.engine.dispose()
