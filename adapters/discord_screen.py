"""Screening raw Discord gateway payloads before discord.py parses them (pure; no I/O).

discord.py's parsers index payloads directly, so a malformed event would raise inside its gateway loop
and end the connection. `gateway_problem` names what is wrong instead, so the event can be dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_SNOWFLAKE = re.compile(r"^[0-9]{1,20}$")


def _is_snowflake(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and bool(_SNOWFLAKE.match(str(value)))


def _user_problem(user: object, where: str) -> str | None:
    if not isinstance(user, Mapping):
        return f"{where} is not an object"
    if not _is_snowflake(user.get("id")):
        return f"{where}.id is not a snowflake"
    # discord.py indexes these; inside a message its KeyError is swallowed and leaves no `author` at all.
    if not isinstance(user.get("username"), str) or "discriminator" not in user or "avatar" not in user:
        return f"{where} lacks a username, discriminator or avatar"
    return None


def _member_problem(member: object, where: str) -> str | None:
    if member is None:
        return None
    if not isinstance(member, Mapping):
        return f"{where} is not an object"
    roles = member.get("roles", [])
    if not isinstance(roles, list) or not all(_is_snowflake(r) for r in roles):
        return f"{where}.roles is not a list of snowflakes"
    if "user" in member:
        return _user_problem(member["user"], f"{where}.user")
    return None


def gateway_problem(event: str, data: object) -> str | None:
    """Why a raw dispatch payload of type `event` cannot be used, or None when it looks sound."""
    checks = _CHECKS.get(event)
    if checks is None:
        return None
    if not isinstance(data, Mapping):
        return "payload is not an object"
    for key in checks.snowflakes:
        if not _is_snowflake(data.get(key)):
            return f"{key} is missing or not a snowflake"
    for key in checks.optional_snowflakes:
        if data.get(key) is not None and not _is_snowflake(data.get(key)):
            return f"{key} is not a snowflake"
    return checks.extra(data) if checks.extra is not None else None


def _message_extra(data: Mapping[str, Any]) -> str | None:
    if not isinstance(data.get("content"), str):
        return "content is missing or not text"
    if not isinstance(data.get("type"), int):
        return "type is missing or not a number"
    problem = _user_problem(data.get("author"), "author")
    if problem:
        return problem
    # Required: discord.py leaves `Message.mentions` unset without it, and reading it then raises.
    mentions = data.get("mentions")
    if not isinstance(mentions, list) or any(_user_problem(m, "mentions[]") for m in mentions):
        return "mentions is missing or not a list of users"
    problem = _components_problem(data.get("components", []), "components")
    if problem:
        return problem
    return _member_problem(data.get("member"), "member")


def _components_problem(components: object, where: str, depth: int = 0) -> str | None:
    """Why a message's components cannot be read (discord.py rebuilds them, in a task of its own, on every
    button press), or None. Each is an object with a numeric type and, if it has one, a text custom_id."""
    if depth > 5:
        return f"{where} is nested too deeply"
    if not isinstance(components, list):
        return f"{where} is not a list"
    for c in components:
        if not isinstance(c, Mapping) or not isinstance(c.get("type"), int):
            return f"{where}[] is not a component with a type"
        if "custom_id" in c and not isinstance(c["custom_id"], str):
            return f"{where}[].custom_id is not text"
        for key in ("components", "accessory"):
            if key in c:
                inner = c[key] if key == "components" else [c[key]]
                problem = _components_problem(inner, f"{where}[].{key}", depth + 1)
                if problem:
                    return problem
    return None


def _reaction_extra(data: Mapping[str, Any]) -> str | None:
    if not isinstance(data.get("type"), int):
        return "type is missing or not a number"
    emoji = data.get("emoji")
    if not isinstance(emoji, Mapping) or not (isinstance(emoji.get("name"), str) or _is_snowflake(emoji.get("id"))):
        return "emoji is missing or has neither a name nor an id"
    return _member_problem(data.get("member"), "member")


def _interaction_extra(data: Mapping[str, Any]) -> str | None:
    if not isinstance(data.get("type"), int):
        return "type is missing or not a number"
    if not isinstance(data.get("token"), str) or not data.get("token"):
        return "token is missing"
    if not isinstance(data.get("version"), int):
        return "version is missing"
    if not isinstance(data.get("attachment_size_limit", 0), int):
        return "attachment_size_limit is not a number"
    if "member" in data:
        problem = _member_problem(data["member"], "member")
        if problem:
            return problem
    elif "user" in data:
        problem = _user_problem(data["user"], "user")
        if problem:
            return problem
    else:
        return "neither member nor user is present"
    inner = data.get("data")
    if data["type"] in (2, 3, 4, 5) and not isinstance(inner, Mapping):
        return "data is missing"
    if isinstance(inner, Mapping) and data["type"] in (3, 5):
        second = "component_type" if data["type"] == 3 else "components"
        kind = int if data["type"] == 3 else list
        if not isinstance(inner.get("custom_id"), str) or not isinstance(inner.get(second), kind):
            return f"data.custom_id or data.{second} is missing"
    message = data.get("message")
    if message is not None:
        if not isinstance(message, Mapping):
            return "message is not an object"
        return _message_extra(message) if _is_snowflake(message.get("id")) else "message.id is not a snowflake"
    return None


def _guild_extra(data: Mapping[str, Any]) -> str | None:
    for key in ("channels", "roles", "members", "threads"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            return f"{key} is not a list of objects"
    return None


@dataclass(frozen=True, slots=True)
class _Check:
    snowflakes: tuple[str, ...]
    optional_snowflakes: tuple[str, ...] = ()
    extra: Any = None


_CHECKS: Mapping[str, _Check] = {
    "MESSAGE_CREATE": _Check(("id", "channel_id"), ("guild_id",), _message_extra),
    "MESSAGE_REACTION_ADD": _Check(("user_id", "channel_id", "message_id"), ("guild_id",), _reaction_extra),
    "INTERACTION_CREATE": _Check(("id", "application_id"), ("guild_id", "channel_id"), _interaction_extra),
    "GUILD_CREATE": _Check(("id",), (), _guild_extra),
}
