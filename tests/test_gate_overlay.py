"""Run-time scope changes: stored as an overlay in the database, audited, in force without a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot import db
from bot.commands import CommandRouter
from bot.config import load_config
from bot.events import Actor, Place, Platform
from bot.gate.overlay import ScopeAdmin, ScopeChangeError, ScopeOverlay, apply_overlay
from bot.gate.service import register_scope_command
from bot.scopes import ScopeRegistry
from moderation.audit import entries
from tests.fakes import MemoryPlatform

OPERATOR = Actor("console", "mod", "Mod")


def test_overlay_applies_differences_to_the_file_scope(config_factory: Callable[..., Path]) -> None:
    scope = load_config(config_factory()).scope("college")
    overlay = ScopeOverlay(
        scope="college",
        added_words=["keg party", "HAZING"],
        added_channels=["slack:C42"],
        removed_channels=["admissions"],
        strictness=0.8,
    )
    changed = apply_overlay(scope, overlay)
    # Adding an entry the file already has (in any case) does not repeat it.
    assert changed.blocked_words == ["hazing", "keg party"]
    assert changed.channels == ["slack:C42"]
    assert changed.strictness == 0.8
    removed = apply_overlay(scope, ScopeOverlay(scope="college", removed_words=["HAZING"]))
    assert removed.blocked_words == []
    assert removed.strictness == scope.strictness
    assert apply_overlay(scope, None) is scope


@pytest.fixture
def config_factory(write_config: Callable[..., Path]) -> Callable[..., Path]:
    return write_config


async def test_changes_persist_apply_at_once_and_are_audited(write_config: Callable[..., Path], db_url: str) -> None:
    config = load_config(write_config(db_url=db_url))
    engine = db.create_engine(config.database.url)
    try:
        await db.upgrade(engine)
        registry = ScopeRegistry(config)
        admin = ScopeAdmin(config=config, registry=registry, sessions=db.sessionmaker(engine))
        await admin.change(actor=OPERATOR, operation="add-word", scope="college", args=["keg party"])
        await admin.change(actor=OPERATOR, operation="set", scope="college", args=["strictness", "0.9"])
        await admin.change(actor=OPERATOR, operation="bind", scope="college", args=["slack:C42"])
        await admin.change(actor=OPERATOR, operation="remove-word", scope="college", args=["hazing"])
        # In force at once, without rebuilding anything.
        live = registry.get("college")
        assert live.blocked_words == ["keg party"]
        assert live.strictness == 0.9
        assert "slack:C42" in live.channels
        assert registry.bound_to(Place("slack", "T1", "C42")) is live

        # A new process (new registry) gets the same scopes from the file plus the database.
        fresh = ScopeRegistry(config)
        assert await ScopeAdmin(config=config, registry=fresh, sessions=db.sessionmaker(engine)).load() == 1
        assert fresh.get("college") == live

        async with db.sessionmaker(engine)() as session:
            log = await entries(session)
        assert [e.action for e in log] == ["scope.add_word", "scope.set", "scope.bind", "scope.remove_word"]
        assert all(e.scope == "college" and e.actor_id == "mod" for e in log)
        assert log[0].note == "added blocked word(s): keg party"
    finally:
        await engine.dispose()


async def test_bad_changes_are_refused_with_a_reason(write_config: Callable[..., Path], sqlite_url: str) -> None:
    config = load_config(
        write_config(
            """
            [[scopes]]
            name = "housing"
            description = "Answers questions about Northgate College housing and dorms."
            refusal = "Housing questions only."
            channels = ["dorms"]
            """
        )
    )
    engine = db.create_engine(sqlite_url)
    try:
        await db.upgrade(engine)
        admin = ScopeAdmin(config=config, registry=ScopeRegistry(config), sessions=db.sessionmaker(engine))
        with pytest.raises(ScopeChangeError, match="from 0 to 1"):
            await admin.change(actor=OPERATOR, operation="set", scope="college", args=["strictness", "7"])
        with pytest.raises(ScopeChangeError, match="a number"):
            await admin.change(actor=OPERATOR, operation="set", scope="college", args=["strictness", "high"])
        with pytest.raises(ScopeChangeError, match="no scope 'nope'"):
            await admin.change(actor=OPERATOR, operation="add-word", scope="nope", args=["x"])
        with pytest.raises(ScopeChangeError, match="bound to scope housing"):
            await admin.change(actor=OPERATOR, operation="bind", scope="college", args=["dorms"])
        async with db.sessionmaker(engine)() as session:
            assert await entries(session) == []
            assert await session.get(ScopeOverlay, "college") is None
    finally:
        await engine.dispose()


async def test_chat_command_is_for_moderators_only(write_config: Callable[..., Path], sqlite_url: str) -> None:
    config = load_config(write_config())
    engine = db.create_engine(sqlite_url)
    platform = MemoryPlatform(moderators={"mod"})

    async def rights(p: Platform, actor: Actor, place: Place) -> bool:
        return bool(await p.is_moderator(actor, place=place))

    try:
        await db.upgrade(engine)
        registry = ScopeRegistry(config)
        router = CommandRouter(is_moderator=rights)
        register_scope_command(router, ScopeAdmin(config=config, registry=registry, sessions=db.sessionmaker(engine)))
        place = platform.place("general")
        denied = await router.run(platform, platform.actor("alice"), place, "scope add-word college beer")
        assert denied == "Only moderators can use that command."
        reply = await router.run(platform, platform.actor("mod"), place, 'scope add-word college "keg party"')
        assert "keg party" in reply and "keg party" in registry.get("college").blocked_words
        reply = await router.run(platform, platform.actor("mod"), place, "scope bind college here")
        assert "memory:general" in registry.get("college").channels
        assert "strictness must be" in await router.run(
            platform, platform.actor("mod"), place, "scope set college strictness 2"
        )
        assert "college: strictness 0.50" in await router.run(
            platform, platform.actor("mod"), place, "scope show college"
        )
    finally:
        await engine.dispose()
