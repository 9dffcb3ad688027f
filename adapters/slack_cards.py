"""Review cards on Slack: Block Kit with buttons whose ids carry the case, and button presses read back.

Pure, like `adapters.slack_edge`: a `ReviewCard` in, Web API arguments out; a `block_actions` payload in,
a `CardAction` out. Every button's `action_id` is `scopebot:case:<id>:<action>`, so a card keeps working
after a restart with nothing kept in memory.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from adapters.slack_edge import (
    PLATFORM,
    Ignored,
    SlackPayloadError,
    escape,
    mention_markup,
    need_dict,
    need_str,
    opt_str,
    team_of,
)
from bot.events import Actor, CardAction, MessageRef, Place, ReviewCard
from bot.sanitize import MAX_CASE_ID

#: Prefix of every button `action_id` on a review card: `scopebot:case:<id>:<action>`.
ACTION_PREFIX = "scopebot:case:"
#: `block_id` prefix of the card's optional note field, read back from `state.values` on a press.
NOTE_PREFIX = "scopebot:note:"
NOTE_ACTION = "note"
#: `block_id` prefix of the card's header, `scopebot:card:<id>:<version>`: finds a card again by its case.
CARD_PREFIX = "scopebot:card:"

# Block Kit limits (https://docs.slack.dev/reference/block-kit): header 150, section text 3000,
# field 2000, 10 fields per section, 25 elements per actions block, button label 75, 50 blocks per message.
HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_PER_SECTION = 10
BUTTONS_PER_BLOCK = 25
BUTTON_LABEL_MAX = 75
NOTIFICATION_MAX = 300


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
    # ASCII digits only (`str.isdigit` also takes "²"), and no more than a case id column holds.
    if not sep or not re.fullmatch(r"[0-9]{1,10}", case) or not re.fullmatch(r"[a-z][a-z0-9_-]{0,40}", action):
        return None
    if not 0 < int(case) <= MAX_CASE_ID:
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
    user = need_dict(body, "user", what)
    user_id = need_str(user, "id", what + " user")
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
        channel = opt_str(container, "channel_id")
        ts = opt_str(container, "message_ts")
        if channel and ts:
            card = MessageRef(Place(PLATFORM, team, channel, None, is_direct=channel.startswith("D")), ts)
    name = opt_str(user, "name") or opt_str(user, "username") or user_id
    return CardAction(
        actor=Actor(PLATFORM, user_id, name),
        case_id=parsed[0],
        action=parsed[1],
        card=card,
        argument=_note(body),
    )


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
