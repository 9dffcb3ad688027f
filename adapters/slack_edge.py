"""Pure translation between Slack payloads and the core types, and core types into Web API arguments.

No I/O here, as in slack-bolt's own adapters: every function takes plain dicts (as bolt parsed them) and
returns core events, an `Ignored` with the reason, or keyword arguments for a Web API method. A payload
missing what it must have raises `SlackPayloadError`, which the adapter logs once and drops.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.events import (
    FLAG,
    Actor,
    CardAction,
    CommandInvoked,
    FetchedMessage,
    InboundMessage,
    MessageRef,
    OutboundMessage,
    Place,
    ReactionAdded,
    Reply,
    ReviewCard,
)

PLATFORM = "slack"
COMMAND = "/scopebot"
#: Event types the adapter turns into core events (the manifest subscribes to each; `message` as message.*).
EVENT_TYPES = ("app_mention", "message", "reaction_added")
#: Prefix of every button `action_id` on a review card: `scopebot:case:<id>:<action>`.
ACTION_PREFIX = "scopebot:case:"
#: `block_id` prefix of the card's optional note field, read back from `state.values` on a press.
NOTE_PREFIX = "scopebot:note:"
NOTE_ACTION = "note"
#: `block_id` prefix of the card's header, `scopebot:card:<id>:<version>`: finds a card again by its case.
CARD_PREFIX = "scopebot:card:"

#: Slack emoji names that mean 🚩 (skin-tone suffixes are stripped first).
FLAG_NAMES = frozenset({"triangular_flag_on_post", "red_flag", "flag"})
#: Message subtypes that still carry a member's words; every other subtype is an edit, join, bot post, ….
TEXT_SUBTYPES = frozenset({"thread_broadcast", "file_share"})

# Block Kit limits (https://docs.slack.dev/reference/block-kit): header 150, section text 3000,
# field 2000, 10 fields per section, 25 elements per actions block, button label 75, 50 blocks per message.
HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_PER_SECTION = 10
BUTTONS_PER_BLOCK = 25
BUTTON_LABEL_MAX = 75
NOTIFICATION_MAX = 300


class SlackPayloadError(ValueError):
    """A payload that lacks what its type must carry; the message says what is wrong, never the payload."""


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed payload the bot deliberately does nothing with."""

    reason: str


# Inbound ------------------------------------------------------------------------------------------


def _str(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise SlackPayloadError(f"{what}: `{key}` is missing or not a string")
    return value


def _dict(obj: Mapping[str, Any], key: str, what: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if not isinstance(value, Mapping):
        raise SlackPayloadError(f"{what}: `{key}` is missing or not an object")
    return value


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
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
    channel = _str(event, "channel", what)
    channel_type = event.get("channel_type")
    direct = channel_type == "im" or (channel_type is None and channel.startswith("D"))
    return Place(PLATFORM, team, channel, _opt_str(event, "thread_ts"), is_direct=direct)


def _mentions(text: str, bot_user_id: str) -> bool:
    return bool(bot_user_id) and (f"<@{bot_user_id}>" in text or f"<@{bot_user_id}|" in text)


def message_to_inbound(
    body: Mapping[str, Any], event: Mapping[str, Any], *, bot_user_id: str, bot_id: str = ""
) -> InboundMessage | Ignored:
    """An `app_mention` or `message` event as an `InboundMessage`, or why the bot ignores it."""
    kind = event.get("type")
    what = f"{kind} event"
    if event.get("hidden"):
        return Ignored("hidden message")
    subtype = event.get("subtype")
    if subtype is not None and subtype not in TEXT_SUBTYPES:
        return Ignored(f"message subtype {subtype}")
    if event.get("bot_id") or event.get("bot_profile") or subtype == "bot_message":
        return Ignored("posted by a bot" if event.get("bot_id") != bot_id else "posted by this bot")
    user = _str(event, "user", what)
    if user == bot_user_id:
        return Ignored("posted by this bot")
    ts = _str(event, "ts", what)
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
        sent_at=sent_at(ts),
        request_id=event_id if isinstance(event_id, str) and event_id else None,
    )


def reaction_to_event(body: Mapping[str, Any], event: Mapping[str, Any]) -> ReactionAdded | Ignored:
    """A `reaction_added` event as a `ReactionAdded` (with the canonical emoji name)."""
    what = "reaction_added event"
    user = _str(event, "user", what)
    reaction = _str(event, "reaction", what)
    item = _dict(event, "item", what)
    if item.get("type") != "message":
        return Ignored(f"reaction on a {item.get('type')!r}, not a message")
    channel = _str(item, "channel", what + " item")
    ts = _str(item, "ts", what + " item")
    team = team_of(body, event)
    place = Place(PLATFORM, team, channel, None, is_direct=channel.startswith("D"))
    return ReactionAdded(
        target=MessageRef(place, ts),
        reactor=Actor(PLATFORM, user, user),
        emoji=canonical_emoji(reaction),
        target_author_id=_opt_str(event, "item_user"),
    )


def event_to_core(
    body: Mapping[str, Any], *, bot_user_id: str, bot_id: str = ""
) -> InboundMessage | ReactionAdded | Ignored:
    """Any Events API `event_callback` body as a core event, or why it is ignored."""
    if body.get("type") != "event_callback":
        raise SlackPayloadError(f"expected an event_callback, got {str(body.get('type'))[:40]!r}")
    event = _dict(body, "event", "event_callback")
    kind = event.get("type")
    if kind in ("app_mention", "message"):
        return message_to_inbound(body, event, bot_user_id=bot_user_id, bot_id=bot_id)
    if kind == "reaction_added":
        return reaction_to_event(body, event)
    return Ignored(f"event type {str(kind)[:40]!r}")


def action_id_for(case_id: int, action: str) -> str:
    """The `action_id` of a card button; it carries the case and the action, so it works after a restart."""
    return f"{ACTION_PREFIX}{case_id}:{action}"


def action_value_for(case_id: int, action: str) -> str:
    """The button `value`: the same facts, for readers that look there."""
    return f"{case_id}:{action}"


def parse_action(action_id: str, value: str | None = None) -> tuple[int, str] | None:
    """(case id, action) from a card button's `action_id` (or its `value`); None for other buttons."""
    if not action_id.startswith(ACTION_PREFIX):
        return None
    case, sep, action = action_id[len(ACTION_PREFIX) :].partition(":")
    if not sep:
        if value is None:
            return None
        case, sep, action = value.partition(":")
    if not sep or not case.isdigit() or not re.fullmatch(r"[a-z][a-z0-9_-]{0,40}", action):
        return None
    return int(case), action


def _note(body: Mapping[str, Any]) -> str:
    state = body.get("state")
    values = state.get("values") if isinstance(state, Mapping) else None
    if not isinstance(values, Mapping):
        return ""
    for block_id, inputs in values.items():
        if isinstance(block_id, str) and block_id.startswith(NOTE_PREFIX) and isinstance(inputs, Mapping):
            field = inputs.get(NOTE_ACTION)
            if isinstance(field, Mapping) and isinstance(field.get("value"), str):
                return str(field["value"]).strip()
    return ""


def block_action_to_event(body: Mapping[str, Any]) -> CardAction | Ignored:
    """A `block_actions` payload from a review card as a `CardAction`."""
    what = "block_actions payload"
    if body.get("type") != "block_actions":
        raise SlackPayloadError(f"expected block_actions, got {str(body.get('type'))[:40]!r}")
    user = _dict(body, "user", what)
    user_id = _str(user, "id", what + " user")
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions:
        raise SlackPayloadError(f"{what}: `actions` is missing or empty")
    parsed: tuple[int, str] | None = None
    for action in actions:
        if isinstance(action, Mapping) and isinstance(action.get("action_id"), str):
            value = action.get("value")
            parsed = parse_action(action["action_id"], value if isinstance(value, str) else None)
            if parsed is not None:
                break
    if parsed is None:
        return Ignored("not a review-card button")
    team = team_of(body)
    container = body.get("container")
    card: MessageRef | None = None
    if isinstance(container, Mapping):
        channel = _opt_str(container, "channel_id")
        ts = _opt_str(container, "message_ts")
        if channel and ts:
            card = MessageRef(Place(PLATFORM, team, channel, None, is_direct=channel.startswith("D")), ts)
    name = _opt_str(user, "name") or _opt_str(user, "username") or user_id
    return CardAction(
        actor=Actor(PLATFORM, user_id, name),
        case_id=parsed[0],
        action=parsed[1],
        card=card,
        argument=_note(body),
    )


def command_to_event(body: Mapping[str, Any]) -> CommandInvoked:
    """A `/scopebot …` slash command as a `CommandInvoked`."""
    what = "slash command"
    user = _str(body, "user_id", what)
    channel = _str(body, "channel_id", what)
    text = body.get("text", "")
    if not isinstance(text, str):
        raise SlackPayloadError(f"{what}: `text` is not a string")
    team = team_of(body)
    direct = channel.startswith("D") or body.get("channel_name") == "directmessage"
    return CommandInvoked(
        actor=Actor(PLATFORM, user, _opt_str(body, "user_name") or user),
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
    user = _opt_str(message, "user") or _opt_str(message, "bot_id") or "unknown"
    profile = message.get("user_profile")
    name = ""
    if isinstance(profile, Mapping):
        name = _opt_str(profile, "display_name") or _opt_str(profile, "real_name") or ""
    is_bot = bool(message.get("bot_id")) or message.get("subtype") == "bot_message"
    raw = message.get("text")
    thread = _opt_str(message, "thread_ts")
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


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _button(case_id: int, action: str, label: str, style: str) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id_for(case_id, action),
        "value": action_value_for(case_id, action),
        "text": {"type": "plain_text", "text": _cut(label, BUTTON_LABEL_MAX), "emoji": True},
    }
    if style in ("primary", "danger"):
        button["style"] = style
    return button


def card_blocks(card: ReviewCard) -> list[dict[str, Any]]:
    """A review card as Block Kit: header, evidence fields, quoted body, note field and buttons."""
    # A fresh block_id per version of the card, as Slack asks, so an update never shows stale input.
    version = hashlib.sha1(repr(card).encode(), usedforsecurity=False).hexdigest()[:8]
    blocks: list[dict[str, Any]] = []
    if card.mention:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": mention_markup(card.mention)}})
    title = ("🔴 " if card.urgent else "") + card.title
    blocks.append(
        {
            "type": "header",
            "block_id": f"{CARD_PREFIX}{card.case_id}:{version}",
            "text": {"type": "plain_text", "text": _cut(title, HEADER_MAX), "emoji": True},
        }
    )
    fields = [
        {"type": "mrkdwn", "text": _cut(f"*{escape(k)}*\n{escape(v)}", FIELD_MAX)} for k, v in card.fields if k or v
    ]
    for i in range(0, len(fields), FIELDS_PER_SECTION):
        blocks.append({"type": "section", "fields": fields[i : i + FIELDS_PER_SECTION]})
    if card.body.strip():
        quoted = "\n".join("&gt; " + line for line in escape(card.body).splitlines())
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(quoted, SECTION_MAX)}})
    status = f"Case #{card.case_id} · {escape(card.status)}" + (" · urgent" if card.urgent else "")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": status}]})
    if card.buttons:
        blocks.append(
            {
                "type": "input",
                "block_id": f"{NOTE_PREFIX}{card.case_id}:{version}",
                "optional": True,
                "label": {"type": "plain_text", "text": "Note, phrase or correction (optional)"},
                "element": {"type": "plain_text_input", "action_id": NOTE_ACTION},
            }
        )
        buttons = [_button(card.case_id, b.action, b.label, b.style) for b in card.buttons]
        for i in range(0, len(buttons), BUTTONS_PER_BLOCK):
            blocks.append(
                {
                    "type": "actions",
                    "block_id": f"scopebot:actions:{card.case_id}:{i}:{version}",
                    "elements": buttons[i : i + BUTTONS_PER_BLOCK],
                }
            )
    return blocks


def is_card_for(message: Mapping[str, Any], case_id: int, *, bot_id: str, bot_user_id: str) -> bool:
    """Whether `message` (from conversations.history) is this bot's review card for `case_id`."""
    own = (bot_id and message.get("bot_id") == bot_id) or (bot_user_id and message.get("user") == bot_user_id)
    blocks = message.get("blocks")
    if not own or not isinstance(blocks, list):
        return False
    marker = f"{CARD_PREFIX}{case_id}:"
    return any(isinstance(b, Mapping) and str(b.get("block_id", "")).startswith(marker) for b in blocks)


def card_args(card: ReviewCard, *, existing: MessageRef | None = None) -> dict[str, Any]:
    """`chat.postMessage` (or, with `existing`, `chat.update`) arguments for a review card."""
    notification = _cut(("URGENT: " if card.urgent else "") + f"{card.title} (case #{card.case_id})", NOTIFICATION_MAX)
    args: dict[str, Any] = {"text": escape(notification), "blocks": card_blocks(card)}
    if existing is not None:
        args.update(channel=existing.place.channel, ts=existing.message_id)
    else:
        args.update(channel=card.place.channel, unfurl_links=False, unfurl_media=False)
    return args


# Errors -------------------------------------------------------------------------------------------

#: Web API error codes that mean the target is gone (the core treats these like a 404).
GONE = frozenset({"channel_not_found", "message_not_found", "thread_not_found", "is_archived", "channel_is_archived"})
#: Codes that mean the app may not do this (a 403): membership, scopes, or Slack's own rules.
FORBIDDEN = frozenset(
    {
        "not_in_channel",
        "missing_scope",
        "cant_update_message",
        "cant_delete_message",
        "restricted_action",
        "user_not_in_channel",
        "edit_window_closed",
        "not_allowed_token_type",
        "ekm_access_denied",
    }
)
#: Codes that mean the token itself is bad; the operator must act.
AUTH = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"})
#: Codes worth trying again later.
TRANSIENT = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})

_HINTS = {
    "not_in_channel": "invite the bot to the channel (/invite @scopebot)",
    "channel_not_found": "the channel does not exist or the bot cannot see it",
    "cant_delete_message": "Slack lets a bot delete only its own messages; ask a workspace admin to remove it",
    "cant_update_message": "Slack lets a bot edit only its own messages",
    "is_archived": "the channel is archived",
    "ratelimited": "Slack's rate limit was still exceeded after retrying",
}


@dataclass(frozen=True, slots=True)
class ApiProblem:
    """What a failed Web API call means, for a `PlatformError`."""

    text: str
    retryable: bool
    status: int | None


def describe_api_error(method: str, where: str, *, error: str, status: int, needed: str = "") -> ApiProblem:
    """A clear description of a failed call: which method, where, Slack's error code and what to do."""
    hint = _HINTS.get(error, "")
    if error == "missing_scope" and needed:
        hint = f"add the {needed} scope to the Slack app and reinstall it"
    elif error in AUTH:
        hint = "the bot token was revoked or is invalid; set a fresh SLACK_BOT_TOKEN"
    text = f"Slack {method} failed ({where}): {error or f'HTTP {status}'}" + (f" — {hint}" if hint else "")
    if error in GONE:
        return ApiProblem(text, False, 404)
    if error in FORBIDDEN or error in AUTH:
        return ApiProblem(text, False, 403)
    if error == "ratelimited" or status == 429:
        return ApiProblem(text, True, 429)
    if error in TRANSIENT or status >= 500:
        return ApiProblem(text, True, status if status >= 500 else 503)
    return ApiProblem(text, False, status if status >= 400 else 400)
