"""Pure translation between Slack payloads and the core types, and core types into Web API arguments.

No I/O here, as in slack-bolt's own adapters: every function takes plain dicts (as bolt parsed them) and
returns core events, an `Ignored` with the reason, or keyword arguments for a Web API method. A payload
missing what it must have raises `SlackPayloadError`, which the adapter logs once and drops.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.events import (
    FLAG,
    Actor,
    CommandInvoked,
    FetchedMessage,
    InboundMessage,
    MessageRef,
    OutboundMessage,
    Place,
    ReactionAdded,
    Reply,
)

PLATFORM = "slack"
COMMAND = "/scopebot"
#: Event types the adapter turns into core events (the manifest subscribes to each; `message` as message.*).
EVENT_TYPES = ("app_mention", "message", "reaction_added")
#: Slack emoji names that mean 🚩 (skin-tone suffixes are stripped first).
FLAG_NAMES = frozenset({"triangular_flag_on_post", "red_flag", "flag"})
#: Message subtypes that still carry a member's words; every other subtype is an edit, join, bot post, ….
TEXT_SUBTYPES = frozenset({"thread_broadcast", "file_share"})


class SlackPayloadError(ValueError):
    """A payload that lacks what its type must carry; the message says what is wrong, never the payload."""


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed payload the bot deliberately does nothing with."""

    reason: str


# Inbound ------------------------------------------------------------------------------------------


def need_str(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise SlackPayloadError(f"{what}: `{key}` is missing or not a string")
    return value


def need_dict(obj: Mapping[str, Any], key: str, what: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if not isinstance(value, Mapping):
        raise SlackPayloadError(f"{what}: `{key}` is missing or not an object")
    return value


def opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


def team_of(body: Mapping[str, Any], event: Mapping[str, Any] | None = None) -> str:
    """The workspace (team id) a payload belongs to."""
    for source in (body, event or {}):
        for key in ("team_id", "team", "user_team"):
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, Mapping) and isinstance(value.get("id"), str) and value["id"]:
                return str(value["id"])
    user = body.get("user")
    if isinstance(user, Mapping) and isinstance(user.get("team_id"), str) and user["team_id"]:
        return str(user["team_id"])
    raise SlackPayloadError(f"{body.get('type', 'payload')}: no team id")


def sent_at(ts: str) -> datetime | None:
    """A Slack `ts` ("1700000000.000100") as an aware datetime; None when it is not one."""
    try:
        return datetime.fromtimestamp(float(ts), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def canonical_emoji(name: str) -> str:
    """Slack's emoji name mapped onto the core's canonical one (`triangular_flag_on_post` → `flag`)."""
    base = name.strip().strip(":").split("::", 1)[0].lower()
    return FLAG if base in FLAG_NAMES else base


_ANGLE = re.compile(r"<([^<>]*)>")


def plain_text(text: str, *, bot_user_id: str = "") -> str:
    """Slack message markup as plain text: the bot's own mention removed, links and mentions readable."""

    def one(m: re.Match[str]) -> str:
        inner = m.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            uid = target[1:]
            if bot_user_id and uid == bot_user_id:
                return ""
            return "@" + (label or uid)
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            special = target[1:]
            if special in ("here", "channel", "everyone"):
                return "@" + special
            return label or special.split("^", 1)[0]
        if label and label != target:
            return f"{label} ({target})"
        return target.removeprefix("mailto:")

    out = _ANGLE.sub(one, text)
    out = out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]{2,}", " ", out).strip()


def escape(text: str) -> str:
    """Text safe to send as Slack mrkdwn: `&`, `<` and `>` escaped, so nothing can ping or link by accident."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message_text(text: str) -> str:
    """Escaped message text; Slack refuses an empty message, so blank text becomes an ellipsis."""
    return escape(text) if text.strip() else "…"


def _place(team: str, event: Mapping[str, Any], *, what: str) -> Place:
    channel = need_str(event, "channel", what)
    channel_type = event.get("channel_type")
    direct = channel_type == "im" or (channel_type is None and channel.startswith("D"))
    return Place(PLATFORM, team, channel, opt_str(event, "thread_ts"), is_direct=direct)


_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def _mentions(text: str, bot_user_id: str) -> bool:
    """Whether the markup @-mentions the bot (`<@U…>` or `<@U…|name>`)."""
    return bool(bot_user_id) and bot_user_id in _USER_MENTION.findall(text)


def _mentions_others(text: str, bot_user_id: str) -> bool:
    """Whether the markup @-mentions a user who is not the bot (not @here or @channel: those are everyone)."""
    return any(uid != bot_user_id for uid in _USER_MENTION.findall(text))


def _in_another_members_thread(event: Mapping[str, Any], user: str, bot_user_id: str) -> bool:
    """Whether a message replies in a thread another member started: like a reply to their message, it is for them.

    The bot answers in the thread of the question, so the asker's own follow-ups there (`parent_user_id` is the
    asker) and replies in a thread the bot started are still for the bot. Slack leaves `parent_user_id` out of some
    events; then nothing is assumed."""
    parent = event.get("parent_user_id")
    thread = event.get("thread_ts")
    return (
        isinstance(parent, str)
        and bool(parent)
        and isinstance(thread, str)
        and thread != event.get("ts")
        and parent not in (user, bot_user_id)
    )


def message_to_inbound(
    body: Mapping[str, Any], event: Mapping[str, Any], *, bot_user_id: str, bot_id: str = ""
) -> InboundMessage | Ignored:
    """An `app_mention` or `message` event as an `InboundMessage`, or why the bot ignores it."""
    kind = event.get("type")
    what = f"{kind} event"
    if event.get("hidden"):
        return Ignored("hidden message")
    subtype = event.get("subtype")
    if subtype is not None and not isinstance(subtype, str):
        raise SlackPayloadError(f"{what}: `subtype` is not a string")
    if subtype is not None and subtype not in TEXT_SUBTYPES:
        return Ignored(f"message subtype {subtype[:40]!r}")
    if event.get("bot_id") or event.get("bot_profile") or subtype == "bot_message":
        return Ignored("posted by a bot" if event.get("bot_id") != bot_id else "posted by this bot")
    user = need_str(event, "user", what)
    if user == bot_user_id:
        return Ignored("posted by this bot")
    ts = need_str(event, "ts", what)
    raw = event.get("text", "")
    if not isinstance(raw, str):
        raise SlackPayloadError(f"{what}: `text` is not a string")
    team = team_of(body, event)
    place = _place(team, event, what=what)
    mentioned = kind == "app_mention" or _mentions(raw, bot_user_id)
    if kind == "message" and mentioned and not place.is_direct:
        # Slack also sends `app_mention` for this message; answering both would answer twice.
        return Ignored("mention handled by app_mention")
    event_id = body.get("event_id")
    return InboundMessage(
        ref=MessageRef(place, ts),
        author=Actor(PLATFORM, user, user),
        text=plain_text(raw, bot_user_id=bot_user_id),
        mentions_bot=mentioned,
        mentions_others=_mentions_others(raw, bot_user_id) or _in_another_members_thread(event, user, bot_user_id),
        sent_at=sent_at(ts),
        request_id=event_id if isinstance(event_id, str) and event_id else None,
    )


def reaction_to_event(body: Mapping[str, Any], event: Mapping[str, Any]) -> ReactionAdded | Ignored:
    """A `reaction_added` event as a `ReactionAdded` (with the canonical emoji name)."""
    what = "reaction_added event"
    user = need_str(event, "user", what)
    reaction = need_str(event, "reaction", what)
    item = need_dict(event, "item", what)
    if item.get("type") != "message":
        return Ignored(f"reaction on a {item.get('type')!r}, not a message")
    channel = need_str(item, "channel", what + " item")
    ts = need_str(item, "ts", what + " item")
    team = team_of(body, event)
    place = Place(PLATFORM, team, channel, None, is_direct=channel.startswith("D"))
    return ReactionAdded(
        target=MessageRef(place, ts),
        reactor=Actor(PLATFORM, user, user),
        emoji=canonical_emoji(reaction),
        target_author_id=opt_str(event, "item_user"),
    )


def event_to_core(
    body: Mapping[str, Any], *, bot_user_id: str, bot_id: str = ""
) -> InboundMessage | ReactionAdded | Ignored:
    """Any Events API `event_callback` body as a core event, or why it is ignored."""
    if body.get("type") != "event_callback":
        raise SlackPayloadError(f"expected an event_callback, got {str(body.get('type'))[:40]!r}")
    event = need_dict(body, "event", "event_callback")
    kind = event.get("type")
    if kind in ("app_mention", "message"):
        return message_to_inbound(body, event, bot_user_id=bot_user_id, bot_id=bot_id)
    if kind == "reaction_added":
        return reaction_to_event(body, event)
    return Ignored(f"event type {str(kind)[:40]!r}")


def command_to_event(body: Mapping[str, Any]) -> CommandInvoked:
    """A `/scopebot …` slash command as a `CommandInvoked`."""
    what = "slash command"
    user = need_str(body, "user_id", what)
    channel = need_str(body, "channel_id", what)
    text = body.get("text", "")
    if not isinstance(text, str):
        raise SlackPayloadError(f"{what}: `text` is not a string")
    team = team_of(body)
    direct = channel.startswith("D") or body.get("channel_name") == "directmessage"
    return CommandInvoked(
        actor=Actor(PLATFORM, user, opt_str(body, "user_name") or user),
        place=Place(PLATFORM, team, channel, None, is_direct=direct),
        text=plain_text(text),
    )


# Outbound -----------------------------------------------------------------------------------------


def thread_of(ref: MessageRef) -> str:
    """The `thread_ts` that puts a reply in `ref`'s thread (its own ts when it starts one)."""
    return ref.place.thread or ref.message_id


def post_args(message: OutboundMessage, *, ping: str = "") -> dict[str, Any]:
    """`chat.postMessage` arguments for an outbound message (a thread reply when `reply_to` is set).

    Everything is escaped, except a leading `ping` (the operator's escalation mention, trusted only in
    reviewer channels by the caller), which becomes a real mention.
    """
    text = message_text(message.text)
    if ping and message.text.startswith(ping):
        text = mention_markup(ping) + escape(message.text[len(ping) :])
    args: dict[str, Any] = {
        "channel": message.place.channel,
        "text": text,
        "unfurl_links": False,
        "unfurl_media": False,
    }
    thread = thread_of(message.reply_to) if message.reply_to is not None else message.place.thread
    if thread:
        args["thread_ts"] = thread
    return args


def update_args(ref: MessageRef, text: str) -> dict[str, Any]:
    """`chat.update` arguments replacing a message's text."""
    return {"channel": ref.place.channel, "ts": ref.message_id, "text": message_text(text)}


def ephemeral_args(reply: Reply) -> dict[str, Any]:
    """`chat.postEphemeral` arguments for a private reply."""
    args: dict[str, Any] = {"channel": reply.place.channel, "user": reply.user_id, "text": message_text(reply.text)}
    if reply.place.thread:
        args["thread_ts"] = reply.place.thread
    return args


def sent_ref(place: Place, data: Mapping[str, Any], *, thread: str | None) -> MessageRef:
    """The reference of a message Slack just accepted (`chat.postMessage` response)."""
    ts = data.get("ts")
    if not isinstance(ts, str) or not ts:
        raise SlackPayloadError("chat.postMessage response has no `ts`")
    channel = data.get("channel")
    channel = channel if isinstance(channel, str) and channel else place.channel
    return MessageRef(Place(PLATFORM, place.workspace, channel, thread, is_direct=place.is_direct), ts)


def fetched(ref: MessageRef, message: Mapping[str, Any], *, permalink: str | None) -> FetchedMessage:
    """A message read back from `conversations.history`/`replies`, as evidence."""
    user = opt_str(message, "user") or opt_str(message, "bot_id") or "unknown"
    profile = message.get("user_profile")
    name = ""
    if isinstance(profile, Mapping):
        name = opt_str(profile, "display_name") or opt_str(profile, "real_name") or ""
    is_bot = bool(message.get("bot_id")) or message.get("subtype") == "bot_message"
    raw = message.get("text")
    thread = opt_str(message, "thread_ts")
    place = ref.place if thread is None or thread == ref.message_id else ref.place.in_thread(thread)
    return FetchedMessage(
        ref=MessageRef(place, ref.message_id),
        author=Actor(PLATFORM, user, name or user, is_bot=is_bot),
        text=plain_text(raw) if isinstance(raw, str) else "",
        sent_at=sent_at(ref.message_id),
        permalink=permalink,
    )


def mention_markup(mention: str) -> str:
    """Moderator ping text: Slack ids become real mentions (`S…` user group, `U…`/`W…` user)."""
    m = mention.strip()
    if re.fullmatch(r"S[A-Z0-9]{2,}", m):
        return f"<!subteam^{m}>"
    if re.fullmatch(r"[UW][A-Z0-9]{2,}", m):
        return f"<@{m}>"
    if m in ("@here", "@channel"):
        return f"<!{m[1:]}>"
    if re.fullmatch(r"<(!subteam\^S[A-Z0-9]+|@[UW][A-Z0-9]+|!here|!channel)>", m):
        return m
    return escape(m)
