"""Alembic migrations: the same versions run on SQLite and PostgreSQL and match the SQLModel tables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from bot import db
from bot.schema import metadata
from moderation.audit import SYSTEM, audit
from tests.cli_support import run_scopebot


def _diff(conn: Connection) -> list[object]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
    diffs = compare_metadata(ctx, metadata)
    # APScheduler keeps its own job table; it is not part of our SQLModel schema.
    return [d for d in diffs if "apscheduler" not in str(d)]


async def test_migrations_match_the_models(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        await db.upgrade(engine)
        assert await db.current_revision(engine) == db.head_revision()
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        await db.upgrade(engine)

        def down(conn: Connection) -> None:
            cfg = db.alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")

        async with engine.begin() as conn:
            await conn.run_sync(down)
        assert await db.current_revision(engine) is None
        await db.upgrade(engine)
        await db.upgrade(engine)  # applying twice is harmless
        assert await db.current_revision(engine) == db.head_revision()
    finally:
        await engine.dispose()


async def test_audit_log_is_append_only_in_the_database(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        await db.upgrade(engine)
        sessions = db.sessionmaker(engine)
        async with sessions() as s, s.begin():
            audit(s, actor=SYSTEM, action="test.entry", note="kept")
        for sql in ("UPDATE audit_entry SET note = 'changed'", "DELETE FROM audit_entry"):
            with pytest.raises(DBAPIError, match="append-only"):
                async with engine.begin() as conn:
                    await conn.execute(text(sql))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT note FROM audit_entry"))).scalar_one() == "kept"
    finally:
        await engine.dispose()


async def test_unreachable_database_is_a_clear_error() -> None:
    engine = db.create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(
            db.DatabaseUnavailable, match=r"cannot open the database postgresql\+asyncpg://nobody@127.0.0.1:1/none"
        ):
            await db.upgrade(engine)
    finally:
        await engine.dispose()


def test_cli_db_upgrade_and_current(write_config: Callable[..., Path], tmp_path: Path) -> None:
    cfg = write_config()
    up = run_scopebot("db", "upgrade", "--config", str(cfg), timeout=120)
    assert up.returncode == 0, up.stderr
    assert f"is at revision {db.head_revision()}" in up.stdout
    cur = run_scopebot("db", "current", "--config", str(cfg), timeout=120)
    assert "up to date" in cur.stdout


def test_cli_reports_a_dead_database_in_one_line(write_config: Callable[..., Path]) -> None:
    cfg = write_config(db_url="postgresql+asyncpg://nobody:hunter2@127.0.0.1:1/none")
    proc = run_scopebot("db", "upgrade", "--config", str(cfg), timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("scopebot: error: cannot open the database")
    assert "hunter2" not in proc.stderr
    assert "Traceback" not in proc.stderr
