"""Slack credentials from the environment: the transport they select, and one clear line when they are wrong."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.slack import SlackAdapter
from adapters.slack_settings import settings_from_env
from bot.cli import CredentialsError, select_platforms
from bot.config import Config, ConfigError, ModeratorsConfig
from tests.slack_fakes import FakeSlack

ROOT = Path(__file__).resolve().parent.parent
BOT = "xoxb-123-456-s3cr3tvalue"
APP = "xapp-1-A1-s3cr3tapp"


@pytest.fixture
def cfg(config: Config) -> Config:
    moderation = config.moderation.model_copy(
        update={
            "moderators": ModeratorsConfig(slack_usergroups=["S0MODS"]),
            "reviewer_channels": {"console": "reviewers", "slack": "CREV", "slack:T2": "CREV2", "discord": "1"},
            "escalation_mentions": {"slack": "S0MODS", "discord": "<@&1>"},
        }
    )
    scopes = [config.scopes[0].model_copy(update={"reviewer_channels": {"slack": "CCOLLEGE"}})]
    return config.model_copy(update={"moderation": moderation, "scopes": scopes})


def test_app_token_selects_socket_mode_and_signing_secret_http(cfg: Config) -> None:
    socket = settings_from_env({"SLACK_BOT_TOKEN": BOT, "SLACK_APP_TOKEN": APP, "SLACK_SIGNING_SECRET": "s"}, cfg)
    assert socket.mode == "socket"
    http = settings_from_env({"SLACK_BOT_TOKEN": BOT, "SLACK_SIGNING_SECRET": "s", "SCOPEBOT_PORT": "8080"}, cfg)
    assert (http.mode, http.port, http.host) == ("http", 8080, "0.0.0.0")
    assert settings_from_env({"SLACK_BOT_TOKEN": BOT, "SLACK_SIGNING_SECRET": "s"}, cfg).port == 3000
    assert http.moderator_groups == ("S0MODS",)
    assert http.reviewer_channels == {"CREV", "CREV2", "CCOLLEGE"} and http.escalation_mention == "S0MODS"
    assert BOT not in repr(http) and "s3cr3t" not in repr(socket)


def test_slack_api_url_reaches_the_web_client(cfg: Config) -> None:
    env = {"SLACK_BOT_TOKEN": BOT, "SLACK_APP_TOKEN": APP, "SLACK_API_URL": "http://127.0.0.1:9/api"}
    adapter = SlackAdapter.from_env(env, cfg)
    assert adapter.client.base_url == "http://127.0.0.1:9/api/"
    assert {type(h).__name__ for h in adapter.client.retry_handlers} >= {
        "AsyncRateLimitErrorRetryHandler",
        "AsyncServerErrorRetryHandler",
    }
    [platform] = select_platforms(env, cfg, console=False)
    assert isinstance(platform, SlackAdapter)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SLACK_APP_TOKEN": APP}, "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xoxp-user-s3cr3t", "SLACK_APP_TOKEN": APP}, "SLACK_BOT_TOKEN is not a bot token"),
        ({"SLACK_BOT_TOKEN": BOT, "SLACK_APP_TOKEN": "xoxb-s3cr3t"}, "SLACK_APP_TOKEN is not an app-level token"),
        ({"SLACK_BOT_TOKEN": BOT}, "SLACK_APP_TOKEN (Socket Mode"),
    ],
)
def test_bad_credentials_name_the_variable_not_the_value(cfg: Config, env: dict[str, str], variable: str) -> None:
    with pytest.raises(CredentialsError) as e:
        settings_from_env(env, cfg)
    assert variable in str(e.value)
    assert "s3cr3t" not in str(e.value)


@pytest.mark.parametrize(
    ("env", "problem"),
    [({"SCOPEBOT_PORT": "http"}, "SCOPEBOT_PORT"), ({"SLACK_API_URL": "slack.com/api"}, "SLACK_API_URL")],
)
def test_bad_port_or_api_url_is_a_config_error(cfg: Config, env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        settings_from_env({"SLACK_BOT_TOKEN": BOT, "SLACK_SIGNING_SECRET": "s"} | env, cfg)


async def _run_cli(config: Path, env: dict[str, str]) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DISCORD_", "SCOPEBOT_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "--config",
        str(config),
        cwd=ROOT,
        env=clean | env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.slow
async def test_rejected_bot_token_stops_the_cli_with_one_line(write_config: Callable[..., Path]) -> None:
    config = write_config()
    async with FakeSlack() as slack:
        env = {
            "SLACK_BOT_TOKEN": BOT,
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_API_URL": slack.api_url,
            "SCOPEBOT_PORT": "0",
        }
        code, err = await _run_cli(config, env)
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("scopebot: error:")]
    assert errors == ["scopebot: error: SLACK_BOT_TOKEN was rejected by Slack (invalid_auth); set a valid bot token"]
    assert "s3cr3t" not in err and "Traceback" not in err
    # Reported before the models load: with a real LLaMA that is minutes earlier.
    assert "embedding model loaded" not in err and "scope gate ready" not in err


async def test_missing_bot_token_stops_the_cli_before_starting(write_config: Callable[..., Path]) -> None:
    code, err = await _run_cli(write_config(), {"SLACK_APP_TOKEN": APP})
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("scopebot: error: SLACK_BOT_TOKEN is not set")
    assert "s3cr3t" not in err


@pytest.mark.slow
async def test_taken_port_stops_the_cli_with_one_line(write_config: Callable[..., Path]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with FakeSlack() as slack:
            env = {
                "SLACK_BOT_TOKEN": "xoxb-1-fake-bot-token",
                "SLACK_SIGNING_SECRET": "s",
                "SLACK_API_URL": slack.api_url,
                "SCOPEBOT_HOST": "127.0.0.1",
                "SCOPEBOT_PORT": str(port),
            }
            code, err = await _run_cli(write_config(), env)
    assert code == 1, err
    [line] = [line for line in err.splitlines() if line.startswith("scopebot: error:")]
    assert f"127.0.0.1:{port}" in line and "SCOPEBOT_PORT" in line
    assert "Traceback" not in err
