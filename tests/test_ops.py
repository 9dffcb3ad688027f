"""/healthz and /metrics over real HTTP, served by the real app on the memory platform (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.discord import DiscordAdapter
from adapters.slack import SlackAdapter
from adapters.slack_settings import SlackSettings
from bot.app import App, build_app
from bot.config import Config, ConfigError, load_config
from bot.events import Actor, CardAction, InboundMessage, MessageRef, Platform, ReactionAdded
from bot.ops import OpsServer, OpsSettings, ops_settings_from_env
from bot.pipeline import RETRY_TEXT
from tests import waiting
from tests.discord_fakes import FakeDiscord
from tests.fakes import MemoryPlatform
from tests.moderation_support import FindingMemoryPlatform
from tests.ops_support import admin, write_slow_gguf
from tests.slack_fakes import APP_TOKEN, BOT_TOKEN, Failure, FakeSlack, http_settings

#: Upper bound for waiting on something to happen (not a timing assertion: it only fails a hang).
WAIT = 60.0

Labels = tuple[tuple[str, str], ...]


@dataclass
class Served:
    app: App
    mem: Any  # a MemoryPlatform, except in the Slack tests
    http: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.app.ops.port if self.app.ops else 0}"

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with self.http.get(self.base + "/healthz") as r:
            return r.status, await r.json()

    async def metrics(self) -> dict[tuple[str, Labels], float]:
        """Every sample of /metrics, by name and sorted labels."""
        async with self.http.get(self.base + "/metrics") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    async def ask(self, text: str, *, user: str = "alice") -> MessageRef:
        author = Actor(self.mem.name, user, user)
        ref: MessageRef = self.mem.post_as(author, self.mem.place("general"), text)
        await self.mem.emit(InboundMessage(ref=ref, author=author, text=text, mentions_bot=True))
        return ref


@pytest.fixture
def serve(write_config: Callable[..., Path]) -> Callable[..., Any]:
    """Start the app with its ops listener on a free loopback port; yields a `Served`."""

    @asynccontextmanager
    async def run(
        *,
        db_url: str | None = None,
        model: Path | None = None,
        mem: Platform | None = None,
        edit: Callable[[str], str] | None = None,
    ) -> AsyncIterator[Served]:
        path = write_config(db_url=db_url, model=model)
        if edit is not None:
            path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
        platform = mem or MemoryPlatform()
        app = build_app(
            load_config(path), platforms=[platform], ops=OpsSettings(host="127.0.0.1", port=0, explicit=True)
        )
        await app.start()
        try:
            async with aiohttp.ClientSession() as http:
                yield Served(app, platform, http)
        finally:
            await app.stop()

    return run


async def until(check: Callable[[], Any]) -> None:
    """Wait until `check()` (sync or async) is true, for at most `WAIT` seconds."""
    await waiting.until(check, within=WAIT)


@pytest.fixture(scope="module")
def slow_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_slow_gguf(tmp_path_factory.mktemp("slow"))


def q(platform: str = "memory", scope: str = "college", **extra: str) -> Labels:
    return tuple(sorted({"platform": platform, "scope": scope, **extra}.items()))


async def test_counters_and_histograms_move_as_questions_are_answered_refused_and_blocked(
    serve: Callable[..., Any], db_url: str
) -> None:
    async with serve(db_url=db_url) as s:
        before = await s.metrics()
        assert ("scopebot_questions_total", q()) not in before
        assert before[("scopebot_model_configured", ())] == 0
        assert before[("scopebot_platform_connected", (("platform", "memory"),))] == 1
        assert before[("scopebot_database_up", ())] == 1
        assert before[("process_resident_memory_bytes", ())] > 0

        await s.ask("How much is tuition?")
        await s.ask("What majors do you offer?")
        await s.ask("Write me a poem about the sea")
        await s.ask("How do I frobnicate the tuition office?")
        await s.ask("hello", user="bob")  # addressed to the bot, so counted whatever the gate says
        m = await s.metrics()
        assert m[("scopebot_questions_total", q())] == 5
        kinds = ("answer", "refuse", "block", "small_talk")
        verdicts = {v: m.get(("scopebot_verdicts_total", q(verdict=v)), 0) for v in kinds}
        assert verdicts["answer"] >= 2 and verdicts["refuse"] >= 1 and verdicts["block"] == 1
        assert verdicts["small_talk"] == 1  # "hello": answered with the introduction, not counted as a refusal
        assert sum(verdicts.values()) == 5
        # One latency observation per finished question, in the +Inf bucket of its verdict.
        for v, n in verdicts.items():
            if n:
                assert m[("scopebot_question_duration_seconds_count", (("verdict", v),))] == n
                assert m[("scopebot_question_duration_seconds_bucket", (("le", "+Inf"), ("verdict", v)))] == n
                assert m[("scopebot_question_duration_seconds_sum", (("verdict", v),))] > 0
        assert m[("scopebot_question_stage_seconds_count", (("stage", "gate"),))] == 5
        assert m[("scopebot_question_stage_seconds_count", (("stage", "retrieval"),))] == verdicts["answer"]
        # No model: nothing queued, nothing generated, nothing restarted.
        assert m[("scopebot_model_queue_depth", ())] == 0
        assert m[("scopebot_model_restarts_total", ())] == 0


async def test_health_reports_each_component_and_flips_when_a_platform_disconnects(serve: Callable[..., Any]) -> None:
    async with serve() as s:
        status, doc = await s.health()
        assert status == 200
        assert doc["ok"] is True
        assert doc["database"] == {"state": "ok"}
        assert doc["platforms"] == {"memory": "connected"}
        # No model is not a fault: the bot answers from its knowledge files and says how to add one.
        assert doc["model"]["state"] == "not configured"
        assert "set `path` under [model]" in doc["model"]["reason"]

        s.mem.connected = False
        status, doc = await s.health()
        assert status == 503
        assert doc["ok"] is False
        assert doc["platforms"] == {"memory": "disconnected"}
        assert doc["database"] == {"state": "ok"}
        m = await s.metrics()
        assert m[("scopebot_platform_connected", (("platform", "memory"),))] == 0

        s.mem.connected = True
        assert (await s.health())[0] == 200


async def test_cases_by_state_follow_a_flag_through_routing_and_resolution(
    serve: Callable[..., Any], db_url: str
) -> None:
    platform = FindingMemoryPlatform(moderators={"mod"})
    async with serve(db_url=db_url, mem=platform) as s:
        m = await s.metrics()
        assert [m[("scopebot_moderation_cases", (("state", st),))] for st in ("open", "routed", "resolved")] == [
            0,
            0,
            0,
        ]

        msg = platform.post_as(platform.actor("alice"), platform.place("general"), "buy cheap essays at spam.example")
        await platform.emit(ReactionAdded(msg, platform.actor("bob"), "flag"))
        m = await s.metrics()
        assert (
            m[("scopebot_moderation_cases", (("state", "open"),))]
            + m[("scopebot_moderation_cases", (("state", "routed"),))]
            == 1
        )

        await until(lambda: len(platform.cards) == 1)  # the scheduled router posted the card

        async def routed() -> bool:
            return bool((await s.metrics())[("scopebot_moderation_cases", (("state", "routed"),))] == 1)

        await until(routed)
        card_id, card = next(iter(platform.cards.items()))
        await platform.emit(
            CardAction(platform.actor("mod"), card.case_id, "dismiss", card=MessageRef(card.place, card_id))
        )
        m = await s.metrics()
        assert [m[("scopebot_moderation_cases", (("state", st),))] for st in ("open", "routed", "resolved")] == [
            0,
            0,
            1,
        ]


async def test_a_killed_model_worker_is_reported_restarting_then_counted_once_restarted(
    serve: Callable[..., Any], chatty_gguf: Path
) -> None:
    async with serve(model=chatty_gguf) as s:
        status, doc = await s.health()
        assert status == 200
        assert doc["model"] == {"state": "loaded", "restarts": 0, "queue_depth": 0, "generating": False}
        assert (await s.metrics())[("scopebot_model_loaded", ())] == 1

        assert s.app.model is not None
        os.kill(int(s.app.model.info["pid"]), signal.SIGKILL)

        async def restarting() -> bool:
            return bool((await s.health())[1]["model"]["state"] == "restarting")

        await until(restarting)
        status, doc = await s.health()
        # The bot still answers (the worker restarts with the next question): not a reason to pull it out.
        assert status == 200
        assert "restarted for the next question" in doc["model"]["reason"]
        assert (await s.metrics())[("scopebot_model_loaded", ())] == 0

        ref = await s.ask("How much is tuition?")
        assert s.mem.replies_to(ref)[0].text not in ("", RETRY_TEXT)
        m = await s.metrics()
        assert m[("scopebot_model_restarts_total", ())] == 1
        assert m[("scopebot_model_loaded", ())] == 1
        assert m[("scopebot_verdicts_total", q(verdict="answer"))] == 1
        assert m[("scopebot_question_stage_seconds_count", (("stage", "model_first_token"),))] == 1
        status, doc = await s.health()
        assert (status, doc["model"]["state"], doc["model"]["restarts"]) == (200, "loaded", 1)


async def test_queue_depth_and_generation_show_while_the_model_is_busy(
    serve: Callable[..., Any], slow_gguf: Path
) -> None:
    def long_answers(toml: str) -> str:
        # As long as the 2,048-token context allows after the instructions (about 560 of the test model's tokens).
        return toml.replace("max_new_tokens = 24", "max_new_tokens = 1400")

    async with serve(model=slow_gguf, edit=long_answers) as s:
        assert s.app.model is not None
        first = asyncio.create_task(s.ask("How much is tuition?", user="alice"))

        async def generating() -> bool:
            return bool((await s.metrics())[("scopebot_model_generating", ())] == 1)

        await until(generating)
        second = asyncio.create_task(s.ask("What majors do you offer?", user="bob"))

        async def queued() -> bool:
            return bool((await s.metrics())[("scopebot_model_queue_depth", ())] == 1)

        await until(queued)
        status, doc = await s.health()
        assert status == 200
        assert (doc["model"]["generating"], doc["model"]["queue_depth"]) == (True, 1)

        # Kill the worker under each answer: both members are told to try again, and both failures are counted.
        os.kill(int(s.app.model.info["pid"]), signal.SIGKILL)
        await first

        async def second_running() -> bool:
            model = s.app.model
            return model is not None and model.alive and model.running and model.restarts == 1

        await until(second_running)
        os.kill(int(s.app.model.info["pid"]), signal.SIGKILL)
        await second
        assert [m.text for m in s.mem.bot_messages()][-2:] == [RETRY_TEXT, RETRY_TEXT]
        m = await s.metrics()
        assert m[("scopebot_verdicts_total", q(verdict="error"))] == 2
        assert m[("scopebot_model_restarts_total", ())] == 1
        assert (m[("scopebot_model_queue_depth", ())], m[("scopebot_model_generating", ())]) == (0, 0)


@pytest.mark.postgres
async def test_health_flips_to_503_when_postgresql_refuses_connections_and_back(
    serve: Callable[..., Any], postgres_url: str
) -> None:
    # Trust authentication ignores the password; it is here to show it never reaches the health document.
    head, _, name = postgres_url.rpartition("/")
    with_password = head.replace("://postgres@", "://postgres:hunter2-not-shown@") + "/" + name
    assert "hunter2" in with_password

    # The router runs every second through the outage: its job table rides it out (SteadyJobStore), and it
    # routes the next flag once the database is back.
    platform = FindingMemoryPlatform(moderators={"mod"})
    async with serve(db_url=with_password, mem=platform) as s:
        assert (await s.health())[0] == 200
        await admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        try:
            status, doc = await s.health()
            assert status == 503
            assert doc["ok"] is False
            assert doc["database"]["state"] == "error"
            assert "not currently accepting connections" in doc["database"]["error"]
            assert doc["platforms"] == {"memory": "connected"}
            async with s.http.get(s.base + "/healthz") as r:
                assert "hunter2" not in await r.text()
            m = await s.metrics()
            assert m[("scopebot_database_up", ())] == 0
            assert not any(name == "scopebot_moderation_cases" for name, _ in m)
            await asyncio.sleep(3)  # the router's job comes due a few times while the database is away
        finally:
            await admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        status, doc = await s.health()
        assert (status, doc["database"]) == (200, {"state": "ok"})
        assert (await s.metrics())[("scopebot_database_up", ())] == 1
        msg = platform.post_as(platform.actor("alice"), platform.place("general"), "buy cheap essays at spam.example")
        await platform.emit(ReactionAdded(msg, platform.actor("bob"), "flag"))
        await until(lambda: len(platform.cards) == 1)  # the scheduled router is still alive


async def test_slack_http_mode_serves_the_same_health_document_on_its_own_port(serve: Callable[..., Any]) -> None:
    async with FakeSlack() as slack:
        adapter = SlackAdapter(http_settings(slack))
        async with serve(mem=adapter) as s:
            status, doc = await s.health()
            async with s.http.get(f"http://127.0.0.1:{adapter.port}/healthz") as r:
                assert (r.status, await r.json()) == (status, doc)
            assert status == 200 and doc["platforms"] == {"slack": "connected"}


async def test_slack_socket_mode_losing_its_connection_turns_health_to_503_until_it_reconnects(
    serve: Callable[..., Any],
) -> None:
    async with FakeSlack() as slack:
        adapter = SlackAdapter(SlackSettings(bot_token=BOT_TOKEN, app_token=APP_TOKEN, api_url=slack.api_url))
        async with serve(mem=adapter) as s:
            assert (await s.health())[1]["platforms"] == {"slack": "connected"}
            # Slack drops the WebSocket and, for a while, will not hand out a new one.
            slack.fail("apps.connections.open", Failure(status=500), times=1000)
            for ws in list(slack.sockets):
                await ws.close()

            async def down() -> bool:
                return bool((await s.health())[0] == 503)

            await until(down)
            doc = (await s.health())[1]
            assert doc["platforms"] == {"slack": "disconnected"} and doc["database"] == {"state": "ok"}
            assert (await s.metrics())[("scopebot_platform_connected", (("platform", "slack"),))] == 0

            slack.failures.clear()

            async def up() -> bool:
                return bool((await s.health())[0] == 200)

            await until(up)
            assert slack.connections_opened >= 2


def test_ops_listener_settings_come_from_the_environment_and_bad_ones_name_the_variable() -> None:
    assert ops_settings_from_env({}) == OpsSettings("127.0.0.1", 9464, explicit=False)
    chosen = ops_settings_from_env({"SCOPEBOT_OPS_PORT": " 9100 ", "SCOPEBOT_OPS_HOST": "0.0.0.0"})
    assert chosen == OpsSettings("0.0.0.0", 9100, explicit=True)
    assert ops_settings_from_env({"SCOPEBOT_OPS_PORT": "off"}) is None
    for bad in ("abc", "70000", "-1", "9464.0"):
        with pytest.raises(ConfigError, match=f"^SCOPEBOT_OPS_PORT: '{re.escape(bad)}' is not a port number"):
            ops_settings_from_env({"SCOPEBOT_OPS_PORT": bad})


async def test_a_taken_port_stops_the_bot_when_chosen_and_is_skipped_with_a_warning_by_default(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    app = build_app(config)
    assert app.ops is not None
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(
                ConfigError, match=f"^SCOPEBOT_OPS_PORT: cannot listen on 127.0.0.1:{port} .*choose a free port"
            ):
                await OpsServer(app.ops, OpsSettings(port=port, explicit=True)).start()
            server = OpsServer(app.ops, OpsSettings(port=port))
            assert await server.start() is False
            assert server.port is None
        assert f"cannot listen on 127.0.0.1:{port}" in caplog.text and "running without them" in caplog.text
    finally:
        await app.engine.dispose()


async def test_discord_gateway_closing_for_good_turns_health_to_503(serve: Callable[..., Any]) -> None:
    fake = FakeDiscord()
    await fake.start()
    try:
        adapter = DiscordAdapter(
            token=fake.token, api_url=fake.api_url, gateway_url=fake.gateway_url, guild_ready_timeout=0.05
        )
        async with serve(mem=adapter) as s:
            status, doc = await s.health()
            assert (status, doc["platforms"]) == (200, {"discord": "connected"})
            # The gateway rejects the session (as when the token is reset): discord.py does not reconnect.
            for ws in list(fake.sockets):
                await ws.close(code=4004, message=b"Authentication failed.")

            async def down() -> bool:
                return bool((await s.health())[0] == 503)

            await until(down)
            assert (await s.health())[1]["platforms"] == {"discord": "disconnected"}
            assert (await s.metrics())[("scopebot_platform_connected", (("platform", "discord"),))] == 0
    finally:
        await fake.close()


async def test_records_kept_during_an_outage_show_in_health_and_metrics(serve: Callable[..., Any]) -> None:
    async with serve() as s:
        spool = s.app.spool
        assert spool is not None
        away = True
        written: list[int] = []

        async def replay(data: dict[str, Any]) -> None:
            if away:
                raise ConnectionRefusedError(111, "the database is away (test)")
            written.append(data["n"])

        spool.register("probe", replay)
        assert spool.watch.lost(ConnectionRefusedError(111, "refused"), during="a test")
        for n in range(3):
            await spool.keep("probe", {"n": n})
        _status, doc = await s.health()
        assert doc["spool"] == {"waiting": 3}
        assert (await s.metrics())[("scopebot_spool_waiting", ())] == 3
        away = False
        assert await spool.flush(within=30)
        assert written == [0, 1, 2]
        assert (await s.health())[1]["spool"] == {"waiting": 0}
        assert (await s.metrics())[("scopebot_spool_waiting", ())] == 0
