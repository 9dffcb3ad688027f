"""Run-time scope changes: stored as an overlay in the database, audited, in force without a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import db
from bot.commands import CommandRouter
from bot.config import Config, load_config
from bot.events import Actor, Place, Platform
from bot.gate.overlay import ScopeAdmin, ScopeChangeError, ScopeOverlay, apply_overlay
from bot.gate.service import register_scope_command
from bot.scopes import ScopeRegistry
from moderation.audit import entries
from tests.fakes import MemoryPlatform
from tests.waiting import until

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


@asynccontextmanager
async def _database(config: Config) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The migrated database of `config`, disposed of afterwards."""
    engine = db.create_engine(config.database.url)
    try:
        await db.upgrade(engine)
        yield db.sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def config_factory(write_config: Callable[..., Path]) -> Callable[..., Path]:
    return write_config


async def test_changes_persist_apply_at_once_and_are_audited(write_config: Callable[..., Path], db_url: str) -> None:
    config = load_config(write_config(db_url=db_url))
    async with _database(config) as sessions:
        registry = ScopeRegistry(config)
        admin = ScopeAdmin(config=config, registry=registry, sessions=sessions)
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
        assert await ScopeAdmin(config=config, registry=fresh, sessions=sessions).load() == 1
        assert fresh.get("college") == live

        async with sessions() as session:
            log = await entries(session)
        assert [e.action for e in log] == ["scope.add_word", "scope.set", "scope.bind", "scope.remove_word"]
        assert all(e.scope == "college" and e.actor_id == "mod" for e in log)
        assert log[0].note == "added blocked word(s): keg party"


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


async def test_examples_are_added_and_removed_at_run_time(write_config: Callable[..., Path], db_url: str) -> None:
    config = load_config(write_config(db_url=db_url))
    async with _database(config) as sessions:
        registry = ScopeRegistry(config)
        admin = ScopeAdmin(config=config, registry=registry, sessions=sessions)
        version = registry.version
        note = await admin.change(
            actor=OPERATOR, operation="add-example", scope="college", args=["Is there a shuttle", "on move-in day?"]
        )
        # Chat splits a question into words; the example is the whole question again.
        assert note.startswith("added example 'Is there a shuttle on move-in day?'")
        assert "added at run time: 'Is there a shuttle on move-in day?'" in note
        assert registry.get("college").examples[-1] == "Is there a shuttle on move-in day?"
        assert registry.version == version + 1
        # The same question again, in other case and spacing, is not a second example.
        await admin.change(
            actor=OPERATOR, operation="add-example", scope="college", args=["is there a  SHUTTLE on move-in day?"]
        )
        assert sum("shuttle" in e.lower() for e in registry.get("college").examples) == 1
        assert admin.has_example("college", "IS THERE A SHUTTLE ON MOVE-IN DAY?")

        # A file example can be removed too, and the removal survives a restart.
        file_example = config.scope("college").examples[0]
        await admin.change(actor=OPERATOR, operation="remove-example", scope="college", args=[file_example])
        fresh = ScopeRegistry(config)
        await ScopeAdmin(config=config, registry=fresh, sessions=sessions).load()
        assert file_example not in fresh.get("college").examples
        assert "Is there a shuttle on move-in day?" in fresh.get("college").examples

        with pytest.raises(ScopeChangeError, match="has no example"):
            await admin.change(actor=OPERATOR, operation="remove-example", scope="college", args=["What is love?"])
        with pytest.raises(ScopeChangeError, match="needs words"):
            await admin.change(actor=OPERATOR, operation="add-example", scope="college", args=["?!", "🙂"])
        with pytest.raises(ScopeChangeError, match="at most 500"):
            await admin.change(actor=OPERATOR, operation="add-example", scope="college", args=["why " * 200])
        async with sessions() as session:
            log = [e.action for e in await entries(session)]
        assert log == ["scope.add_example", "scope.add_example", "scope.remove_example"]
        for k in range(11):
            await admin.change(actor=OPERATOR, operation="add-example", scope="college", args=[f"Question {k}?"])
        shown = admin.show("college")
        assert "'Question 10?'" in shown and "'Question 0?'" not in shown and "(and 2 earlier)" in shown


async def test_aliases_are_added_and_removed_at_run_time(write_config: Callable[..., Path], db_url: str) -> None:
    config = load_config(write_config(db_url=db_url))
    async with _database(config) as sessions:
        registry = ScopeRegistry(config)
        admin = ScopeAdmin(config=config, registry=registry, sessions=sessions)
        version = registry.version
        # Chat splits the name into words; the alias is the whole name again.
        note = await admin.change(
            actor=OPERATOR, operation="add-alias", scope="college", args=["the", "Kessler  Library"]
        )
        assert note.startswith("added alias 'the Kessler Library'") and "also called: the Kessler Library" in note
        assert registry.get("college").aliases == ["the Kessler Library"]
        assert registry.version == version + 1
        # The same name in other case and spacing is not a second alias.
        await admin.change(actor=OPERATOR, operation="add-alias", scope="college", args=["THE KESSLER library"])
        await admin.change(actor=OPERATOR, operation="add-alias", scope="college", args=["NGC"])
        assert registry.get("college").aliases == ["the Kessler Library", "NGC"]

        with pytest.raises(ScopeChangeError, match="has no alias"):
            await admin.change(actor=OPERATOR, operation="remove-alias", scope="college", args=["Hilltop"])
        with pytest.raises(ScopeChangeError, match="needs letters or digits"):
            await admin.change(actor=OPERATOR, operation="add-alias", scope="college", args=["🙂", "!"])
        with pytest.raises(ScopeChangeError, match="at most 100"):
            await admin.change(actor=OPERATOR, operation="add-alias", scope="college", args=["x" * 101])
        await admin.change(actor=OPERATOR, operation="remove-alias", scope="college", args=["ngc"])

        # A restarted process loads what holds now.
        fresh = ScopeRegistry(config)
        await ScopeAdmin(config=config, registry=fresh, sessions=sessions).load()
        assert fresh.get("college").aliases == ["the Kessler Library"]
        async with sessions() as session:
            log = [e.action for e in await entries(session)]
        assert log == ["scope.add_alias", "scope.add_alias", "scope.add_alias", "scope.remove_alias"]


async def test_a_change_made_by_another_process_applies_here(write_config: Callable[..., Path], db_url: str) -> None:
    config = load_config(write_config(db_url=db_url))
    async with _database(config) as sessions:
        here = ScopeRegistry(config)
        watcher = asyncio.create_task(ScopeAdmin(config=config, registry=here, sessions=sessions).watch(0.05))
        try:
            other = ScopeAdmin(config=config, registry=ScopeRegistry(config), sessions=sessions)
            await other.change(actor=OPERATOR, operation="add-word", scope="college", args=["keg party"])
            await other.change(actor=OPERATOR, operation="add-example", scope="college", args=["Any dorm curfew?"])
            await until(lambda: "Any dorm curfew?" in here.get("college").examples, what="the other change")
            assert "keg party" in here.get("college").blocked_words
            # Re-reading an unchanged overlay changes nothing: the gate is not rebuilt for nothing.
            version = here.version
            await asyncio.sleep(0.3)
            assert here.version == version
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
