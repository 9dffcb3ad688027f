"""The shipped Slack app manifest asks for exactly what the adapter uses: events, scopes, command, interactivity."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from adapters import slack_edge as edge

ADAPTERS = Path(__file__).resolve().parent.parent / "adapters"

#: Bot scopes each Web API method needs (https://docs.slack.dev/reference/methods).
METHOD_SCOPES: dict[str, set[str]] = {
    "auth_test": set(),
    "chat_postMessage": {"chat:write"},
    "chat_update": {"chat:write"},
    "chat_delete": {"chat:write"},
    "chat_postEphemeral": {"chat:write"},
    "chat_getPermalink": set(),
    "conversations_history": {"channels:history", "groups:history", "im:history", "mpim:history"},
    "conversations_replies": {"channels:history", "groups:history", "im:history", "mpim:history"},
    "usergroups_users_list": {"usergroups:read"},
}
#: Bot scopes each event subscription needs.
EVENT_SCOPES = {
    "app_mention": {"app_mentions:read"},
    "message.channels": {"channels:history"},
    "message.groups": {"groups:history"},
    "message.im": {"im:history"},
    "message.mpim": {"mpim:history"},
    "reaction_added": {"reactions:read"},
}


def manifest() -> dict[str, Any]:
    data = yaml.safe_load((ADAPTERS / "slack_manifest.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_manifest_subscribes_to_every_event_the_adapter_handles() -> None:
    events = set(manifest()["settings"]["event_subscriptions"]["bot_events"])
    wanted = set()
    for kind in edge.EVENT_TYPES:
        wanted |= {f"message.{c}" for c in ("channels", "groups", "im", "mpim")} if kind == "message" else {kind}
    assert events == wanted


def test_manifest_has_the_slash_command_interactivity_and_socket_mode() -> None:
    m = manifest()
    assert [c["command"] for c in m["features"]["slash_commands"]] == [edge.COMMAND]
    assert m["settings"]["interactivity"]["is_enabled"] is True
    assert m["settings"]["socket_mode_enabled"] is True
    assert m["features"]["app_home"]["messages_tab_enabled"] is True


def test_manifest_scopes_are_exactly_what_the_calls_and_events_need() -> None:
    used = set()
    for source in ("slack.py", "slack_transport.py"):
        used |= set(re.findall(r"self\.client\.(\w+)\(", (ADAPTERS / source).read_text(encoding="utf-8")))
    unknown = used - set(METHOD_SCOPES)
    assert not unknown, f"add the scopes of {sorted(unknown)} to METHOD_SCOPES and the manifest"
    m = manifest()
    needed = {"commands"} | set().union(*(METHOD_SCOPES[u] for u in used))
    needed |= set().union(*(EVENT_SCOPES[e] for e in m["settings"]["event_subscriptions"]["bot_events"]))
    assert set(m["oauth_config"]["scopes"]["bot"]) == needed
