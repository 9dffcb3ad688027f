"""Screening Slack request bodies before slack-bolt reads them (pure; no I/O).

slack-bolt indexes payloads directly while it builds its request (team, user, channel, authorizations) and
while it matches listeners (event type, action ids, views), so a body of another shape raises inside it:
a 500 with a traceback, and Slack delivers the request again. `request_problem` names what is wrong
instead, so the transport can refuse it once. Slack itself never sends such bodies; a hostile or broken
sender that knows the signing secret (or a Socket Mode envelope gone wrong) could.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

#: Deepest nesting of objects and lists accepted; Slack's own payloads (Block Kit state included) stay far below.
MAX_DEPTH = 64

#: Fields that are always text in Slack's payloads, wherever they appear (ids, timestamps, kinds, names).
_TEXT = frozenset(
    {
        "type",
        "subtype",
        "id",
        "team_id",
        "user_id",
        "channel_id",
        "enterprise_id",
        "api_app_id",
        "token",
        "command",
        "callback_id",
        "trigger_id",
        "response_url",
        "action_id",
        "block_id",
        "ts",
        "thread_ts",
        "message_ts",
        "event_ts",
        "event_id",
        "user_team",
        "source_team",
        "context_team_id",
        "context_enterprise_id",
        "function_execution_id",
        "execution_id",
        "bot_access_token",
        "bot_id",
        "reaction",
        "item_user",
        "channel_type",
    }
)
#: Fields that are text in events and objects in interactivity payloads.
_TEXT_OR_OBJECT = frozenset({"user", "channel", "team", "enterprise"})
#: Fields that are always objects.
_OBJECTS = frozenset(
    {"event", "message", "previous_message", "item", "assistant_thread", "view", "container", "state", "function_data"}
)
#: Fields that are always lists of objects.
_OBJECT_LISTS = frozenset({"authorizations", "actions", "response_urls"})
#: Fields that are always true or false.
_FLAGS = frozenset({"is_enterprise_install", "is_ext_shared_channel"})


def parse(body: str, content_type: str | None) -> object:
    """The payload of a request body as slack-bolt would parse it (JSON, or a form with or without `payload=`).

    Raises ValueError when it cannot be parsed (nesting too deep for the parser included).
    """
    if not body:
        return {}
    try:
        if content_type == "application/json" or body.startswith("{"):
            return json.loads(body)
        form = dict(parse_qsl(body, keep_blank_values=True))
        if "payload" in form:
            return json.loads(form["payload"])
        return form
    except RecursionError:
        raise ValueError("nested too deeply to parse") from None


def screen_body(body: str, content_type: str | None) -> tuple[dict[str, Any], None] | tuple[None, str]:
    """An HTTP request's payload, or (None, why) when it cannot be parsed or slack-bolt could not read it."""
    try:
        payload = parse(body, content_type)
    except ValueError:
        return None, "its body is not valid JSON or form data"
    problem = request_problem(payload)
    if problem is not None:
        return None, problem
    assert isinstance(payload, dict)  # json and forms give dicts; request_problem refused anything else
    return payload, None


def _field_problem(key: str, value: Any) -> str | None:
    if key in _TEXT:
        ok = value is None or isinstance(value, str)
        return None if ok else "text"
    if key in _TEXT_OR_OBJECT:
        return None if value is None or isinstance(value, str | Mapping) else "text or an object"
    if key in _OBJECTS:
        return None if isinstance(value, Mapping) else "an object"
    if key in _OBJECT_LISTS:
        ok = isinstance(value, list) and all(isinstance(v, Mapping) for v in value)
        return None if ok else "a list of objects"
    if key in _FLAGS:
        return None if value is None or isinstance(value, bool) else "true or false"
    return None


def request_problem(payload: object) -> str | None:
    """Why slack-bolt could not read `payload` safely, or None when it has Slack's shape."""
    if not isinstance(payload, Mapping):
        return f"the payload is a {type(payload).__name__}, not an object"
    stack: list[tuple[Any, int, str]] = [(payload, 1, "")]
    while stack:
        node, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(node, Mapping):
            for key, value in node.items():
                if not isinstance(key, str):
                    return f"{where or 'payload'} has a key that is not text"
                expected = _field_problem(key, value)
                if expected is not None:
                    return f"`{(where + '.' + key).lstrip('.')[:80]}` is not {expected}"
                if isinstance(value, Mapping | list):
                    stack.append((value, depth + 1, f"{where}.{key}"))
        elif isinstance(node, list):
            stack.extend((value, depth + 1, f"{where}[]") for value in node if isinstance(value, Mapping | list))
    view = payload.get("view")
    if view is not None and not isinstance(view.get("type"), str):
        return "a view without a type"
    if payload.get("type") == "block_actions":
        actions = payload.get("actions")
        if not actions or not all(isinstance(a.get("action_id"), str) for a in actions):
            return "a block_actions payload without action ids"
    return None
