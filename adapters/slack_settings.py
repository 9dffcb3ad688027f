"""Slack credentials and transport settings, read from the environment (never from the config file)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from bot.cli import CredentialsError
from bot.config import Config, ConfigError

BOT_TOKEN_ENV = "SLACK_BOT_TOKEN"
APP_TOKEN_ENV = "SLACK_APP_TOKEN"
SIGNING_SECRET_ENV = "SLACK_SIGNING_SECRET"
API_URL_ENV = "SLACK_API_URL"
PORT_ENV = "SCOPEBOT_PORT"
HOST_ENV = "SCOPEBOT_HOST"
DEFAULT_PORT = 3000
DEFAULT_HOST = "0.0.0.0"
#: Where Slack sends events and interactivity in HTTP mode (bolt's default path).
EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"


@dataclass(frozen=True, slots=True)
class SlackSettings:
    """Everything the Slack adapter needs to connect; secrets are kept out of `repr`."""

    bot_token: str = field(repr=False)
    app_token: str | None = field(default=None, repr=False)
    signing_secret: str | None = field(default=None, repr=False)
    #: Web API base (`SLACK_API_URL`), e.g. a test server; None means https://slack.com/api/.
    api_url: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: User group ids whose members are moderators (`moderation.moderators.slack_usergroups`).
    moderator_groups: tuple[str, ...] = ()
    #: Reviewer channel ids, where the escalation mention may really ping (it is escaped everywhere else).
    reviewer_channels: frozenset[str] = frozenset()
    #: `moderation.escalation_mentions.slack`: a user group `S…`, a user `U…`, or Slack markup.
    escalation_mention: str = ""
    #: Seconds one Web API call may take before it fails (and is reported, never waited on forever).
    api_timeout: int = 20

    @property
    def mode(self) -> Literal["socket", "http"]:
        """Socket Mode when an app-level token is set, else the HTTP Events API."""
        return "socket" if self.app_token else "http"


def settings_from_env(env: Mapping[str, str], config: Config) -> SlackSettings:
    """Read and check the Slack variables; a problem raises an error that names the variable (not its value)."""
    bot = env.get(BOT_TOKEN_ENV, "").strip()
    app = env.get(APP_TOKEN_ENV, "").strip() or None
    secret = env.get(SIGNING_SECRET_ENV, "").strip() or None
    if not bot:
        raise CredentialsError(
            f"{BOT_TOKEN_ENV} is not set: copy the Bot User OAuth Token (xoxb-…) from your Slack app's "
            "OAuth & Permissions page"
        )
    if not bot.startswith("xoxb-"):
        raise CredentialsError(
            f"{BOT_TOKEN_ENV} is not a bot token (it should start with xoxb-; see OAuth & Permissions)"
        )
    if app is not None and not app.startswith("xapp-"):
        raise CredentialsError(
            f"{APP_TOKEN_ENV} is not an app-level token (it should start with xapp-; see Basic Information → "
            "App-Level Tokens, scope connections:write)"
        )
    if app is None and secret is None:
        raise CredentialsError(
            f"set {APP_TOKEN_ENV} (Socket Mode, recommended) or {SIGNING_SECRET_ENV} (HTTP Events API) "
            f"next to {BOT_TOKEN_ENV}"
        )
    api_url = env.get(API_URL_ENV, "").strip() or None
    if api_url is not None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{API_URL_ENV}: {api_url!r} is not an http(s) URL (e.g. https://slack.com/api/)")
    raw_port = env.get(PORT_ENV, "").strip() or str(DEFAULT_PORT)
    if not raw_port.isdigit() or int(raw_port) > 65535:
        raise ConfigError(f"{PORT_ENV}: {raw_port!r} is not a port number (0-65535)")
    moderators = config.moderation.moderators
    return SlackSettings(
        bot_token=bot,
        app_token=app,
        signing_secret=secret,
        api_url=api_url,
        host=env.get(HOST_ENV, "").strip() or DEFAULT_HOST,
        port=int(raw_port),
        moderator_groups=tuple(moderators.slack_usergroups),
        reviewer_channels=reviewer_channels(config),
        escalation_mention=config.moderation.escalation_mentions.get("slack", ""),
    )


def reviewer_channels(config: Config) -> frozenset[str]:
    """Every Slack reviewer channel the configuration names (`slack` and `slack:TEAM` keys, scopes too)."""
    tables = [config.moderation.reviewer_channels, *(s.reviewer_channels for s in config.scopes)]
    return frozenset(
        channel for table in tables for key, channel in table.items() if key == "slack" or key.startswith("slack:")
    )
