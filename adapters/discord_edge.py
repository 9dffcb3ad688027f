"""Pure translation between discord.py objects (or raw gateway payloads) and the core types; no I/O.

Incoming: `gateway_problem` screens raw dispatch payloads before discord.py parses them, and the
`to_*` functions turn the library's objects into core events, raising `Rejected` for input that makes
no sense. Outgoing: message arguments, review-card embeds and button ids, timeouts, error wording.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import discord

from bot.config import Config
from bot.events import (
    FLAG,
    Actor,
    CardAction,
    CommandInvoked,
    InboundMessage,
    MessageRef,
    Place,
    PlatformError,
    ReactionAdded,
    ReviewCard,
)
from bot.sanitize import MAX_CASE_ID

PLATFORM = "discord"
#: The `workspace` of direct-message places (Discord's own URL segment for DMs).
DIRECT = "@me"
MAX_MESSAGE_CHARS = 2000
#: Discord refuses member timeouts longer than 28 days.
MAX_TIMEOUT = timedelta(days=28)
#: Review-card button ids: `scopebot:case:<case id>:<action>`; they carry everything a press needs.
CUSTOM_ID_TEMPLATE = r"scopebot:case:(?P<case>[0-9]{1,10}):(?P<action>[a-z][a-z0-9_-]{0,39})"
_CUSTOM_ID = re.compile(CUSTOM_ID_TEMPLATE)
#: Unicode emoji mapped onto canonical reaction names (variation selectors are stripped first).
EMOJI_NAMES: Mapping[str, str] = {"🚩": FLAG}
#: Card actions that need a line of text from the moderator, asked for in a modal (see moderation/cards.py).
ARGUMENT_ACTIONS = frozenset({"add_word"})

_SNOWFLAKE = re.compile(r"^[0-9]{1,20}$")
_MENTION = re.compile(r"<@[!&]?([0-9]{1,20})>")

# Embed limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
_EMBED_TITLE = 256
_EMBED_DESCRIPTION = 4096
_EMBED_FIELDS = 25
_FIELD_NAME = 256
_FIELD_VALUE = 1024
_EMBED_TOTAL = 6000
_BUTTON_LABEL = 80
_MAX_BUTTONS = 25

_COLOURS = {"urgent": 0xE74C3C, "open": 0xF1C40F, "routed": 0xF1C40F, "resolved": 0x95A5A6}


#: What the bot needs in a server: read and answer (also in threads, as replies), post embeds (review
#: cards), remove reported messages (Manage Messages) and time members out (Moderate Members).
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    read_message_history=True,
    manage_messages=True,
    moderate_members=True,
)


def invite_url(application_id: int) -> str:
    """The URL that adds the bot to a server with exactly the permissions it needs."""
    return discord.utils.oauth_url(
        application_id, permissions=INVITE_PERMISSIONS, scopes=("bot", "applications.commands")
    )


class Rejected(ValueError):
    """Input from Discord that cannot be turned into a core event; the message says why."""


# Discord → core ---------------------------------------------------------------------------------


def snowflake(value: str, what: str) -> int:
    """A core id as a Discord snowflake; PlatformError (not retryable) when it is not one."""
    if not _SNOWFLAKE.match(value):
        raise PlatformError(
            f"Discord {what} {value!r} is not a numeric id (turn on Developer Mode and use Copy ID)",
            retryable=False,
        )
    return int(value)


def place_of(guild_id: int | None, channel_id: int, parent_id: int | None = None) -> Place:
    """The core place for a channel; direct messages have no guild; a thread knows its parent channel."""
    if guild_id is None:
        return Place(PLATFORM, DIRECT, str(channel_id), None, is_direct=True)
    return Place(PLATFORM, str(guild_id), str(channel_id), parent=str(parent_id) if parent_id else None)


def parent_of(channel: object) -> int | None:
    """The parent channel of a thread (discord.py's `Thread.parent_id`), or None for any other channel."""
    parent = getattr(channel, "parent_id", None) if isinstance(channel, discord.Thread) else None
    return parent if isinstance(parent, int) else None


def actor_of(user: discord.abc.User) -> Actor:
    """The core actor for a user or member; a member's roles (without @everyone) come along."""
    roles: tuple[str, ...] = ()
    if isinstance(user, discord.Member):
        guild = getattr(user, "guild", None)  # None for a member of a server the client has not seen
        default = guild.id if guild is not None else None
        roles = tuple(str(r) for r in user._roles if r != default)  # ids only: no cache lookups needed
    # discord.py keeps names as the payload had them; one that is not text is no name at all.
    name = user.display_name if isinstance(user.display_name, str) else user.name
    name = name if isinstance(name, str) else str(user.id)
    return Actor(PLATFORM, str(user.id), name, is_bot=user.bot is True, roles=roles)


def strip_mentions(text: str, ids: Iterable[int]) -> str:
    """`text` without mentions of the given user or role ids, whitespace tidied."""
    wanted = {str(i) for i in ids}
    cleaned = _MENTION.sub(lambda m: "" if m.group(1) in wanted else m.group(0), text)
    return re.sub(r"[ \t]+", " ", cleaned).strip()


def is_chat(message: discord.Message) -> bool:
    """Whether a message is something someone said (not a join or pin notice, not an image without text)."""
    return message.type in (discord.MessageType.default, discord.MessageType.reply) and bool(message.content.strip())


def addresses_others(message: discord.Message, bot_user_id: int) -> bool:
    """Whether a message @-mentions a member who is not the bot, replies to someone else's message, or is posted in a
    thread another member opened.

    A thread (a forum post, or one opened on a message) belongs to whoever opened it: others posting there talk to
    them, as a reply in another member's Slack thread does. The opener's own follow-ups, and messages in a thread the
    bot opened, are still for the bot, and so is a reply to one of the bot's messages wherever it is."""
    if any(u.id != bot_user_id for u in message.mentions):
        return True
    resolved = message.reference.resolved if message.reference is not None else None
    if isinstance(resolved, discord.Message):
        return resolved.author.id != bot_user_id
    channel = message.channel
    return isinstance(channel, discord.Thread) and channel.owner_id not in (message.author.id, bot_user_id)


def to_inbound(message: discord.Message, *, bot_user_id: int, bot_role_ids: Iterable[int] = ()) -> InboundMessage:
    """A posted message as the core sees it; the bot's own mention is removed from the text."""
    role_ids = set(bot_role_ids)
    mentioned = any(u.id == bot_user_id for u in message.mentions) or bool(role_ids & set(message.raw_role_mentions))
    # A server the client has not cached yet leaves `guild` None; its id is still on the channel, and
    # without it a server message would pass for a direct one (answered without a mention).
    guild_id = message.guild.id if message.guild is not None else getattr(message.channel, "guild_id", None)
    place = place_of(guild_id, message.channel.id, parent_of(message.channel))
    text = strip_mentions(message.content, {bot_user_id, *role_ids}) if mentioned else message.content
    return InboundMessage(
        ref=MessageRef(place, str(message.id)),
        author=actor_of(message.author),
        text=text,
        mentions_bot=mentioned,
        mentions_others=addresses_others(message, bot_user_id),
        sent_at=message.created_at,
        permalink=message.jump_url,
        request_id=f"discord-{message.id}",
    )


def canonical_emoji(emoji: discord.PartialEmoji) -> str:
    """`flag` for 🚩; other unicode emoji as themselves; custom emoji as `custom:NAME`."""
    if emoji.id is not None:
        return f"custom:{(emoji.name or str(emoji.id)).lower()}"
    name = (emoji.name or "").replace("\ufe0f", "")
    return EMOJI_NAMES.get(name, name)


def to_reaction(payload: discord.RawReactionActionEvent, *, parent_id: int | None = None) -> ReactionAdded:
    """A reaction event (from `on_raw_reaction_add`, so uncached messages count too); `parent_id` of a thread."""
    place = place_of(payload.guild_id, payload.channel_id, parent_id)
    member = payload.member
    reactor = actor_of(member) if member is not None else Actor(PLATFORM, str(payload.user_id))
    emoji = canonical_emoji(payload.emoji)
    if not emoji:
        raise Rejected("reaction without an emoji")
    author = payload.message_author_id
    return ReactionAdded(
        target=MessageRef(place, str(payload.message_id)),
        reactor=reactor,
        emoji=emoji,
        target_author_id=str(author) if author is not None else None,
    )


def interaction_place(interaction: discord.Interaction[Any]) -> Place:
    """Where an interaction happened."""
    if interaction.channel_id is None:
        raise Rejected("interaction without a channel")
    return place_of(interaction.guild_id, interaction.channel_id, parent_of(interaction.channel))


def card_custom_id(case_id: int, action: str) -> str:
    """The `custom_id` of a review-card button."""
    custom_id = f"scopebot:case:{case_id}:{action}"
    if not _CUSTOM_ID.fullmatch(custom_id):
        raise ValueError(f"card action {action!r} of case {case_id} cannot be a Discord custom_id")
    return custom_id


def parse_custom_id(custom_id: str) -> tuple[int, str]:
    """Case id and action from a review-card button id; Rejected for any other id."""
    m = _CUSTOM_ID.fullmatch(custom_id)
    if m is None:
        raise Rejected(f"not a review-card button: {custom_id[:100]!r}")
    return _case_id(int(m["case"])), m["action"]


def _case_id(case_id: int) -> int:
    if not 0 < case_id <= MAX_CASE_ID:
        raise Rejected(f"button for case {case_id}, which cannot exist")
    return case_id


def to_card_action(
    interaction: discord.Interaction[Any], *, case_id: int, action: str, argument: str = ""
) -> CardAction:
    """A review-card button press (or the modal that followed it)."""
    _case_id(case_id)
    card = None
    if interaction.message is not None:
        card = MessageRef(interaction_place(interaction), str(interaction.message.id))
    return CardAction(
        actor=actor_of(interaction.user), case_id=case_id, action=action, card=card, argument=argument.strip()
    )


def command_text(subcommand: str, *args: object) -> str:
    """The text after `/scopebot` that an application subcommand and its options stand for."""
    parts = [subcommand, *(str(a).strip() for a in args if a is not None and str(a).strip())]
    return " ".join(parts)


def to_command(interaction: discord.Interaction[Any], text: str) -> CommandInvoked:
    """A `/scopebot …` application command."""
    return CommandInvoked(actor=actor_of(interaction.user), place=interaction_place(interaction), text=text)


# Core → Discord ---------------------------------------------------------------------------------


def reference_to(ref: MessageRef | None) -> discord.MessageReference | None:
    """A reply reference to `ref`, or None when it is not a Discord message (e.g. a slash command)."""
    if ref is None or not _SNOWFLAKE.match(ref.message_id) or not _SNOWFLAKE.match(ref.place.channel):
        return None
    guild = int(ref.place.workspace) if _SNOWFLAKE.match(ref.place.workspace) else None
    # If the question was deleted meanwhile, post the answer anyway rather than fail.
    return discord.MessageReference(
        message_id=int(ref.message_id), channel_id=int(ref.place.channel), guild_id=guild, fail_if_not_exists=False
    )


#: Answers never ping anyone but the person asked; model output must not reach @everyone.
ANSWER_MENTIONS = discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=True)
#: A card's `mention` may ping the moderators' role or users, never @everyone.
CARD_MENTIONS = discord.AllowedMentions(everyone=False, users=True, roles=True, replied_user=False)
_ROLE_MENTION = re.compile(r"<@&([0-9]{1,20})>")
_USER_MENTION = re.compile(r"<@!?([0-9]{1,20})>")


@dataclass(frozen=True, slots=True)
class ReviewerPings:
    """The reviewer channels, and whom the configured escalation mention may ping there."""

    channels: frozenset[str] = frozenset()
    roles: tuple[int, ...] = ()
    users: tuple[int, ...] = ()


def reviewer_pings(config: Config) -> ReviewerPings:
    """Reviewer channels and escalation mention for Discord, from `[moderation]` and the scopes."""
    mod = config.moderation
    found = [mod.reviewer_channels.get(PLATFORM), *(s.reviewer_channels.get(PLATFORM) for s in config.scopes)]
    mention = mod.escalation_mentions.get(PLATFORM, "")
    return ReviewerPings(
        channels=frozenset(c for c in found if c),
        roles=tuple(int(r) for r in _ROLE_MENTION.findall(mention)),
        users=tuple(int(u) for u in _USER_MENTION.findall(mention)),
    )


def allowed_mentions(place: Place, pings: ReviewerPings) -> discord.AllowedMentions:
    """Plain posts ping nobody but the person answered; in reviewer channels the escalation mention works."""
    if place.channel not in pings.channels:
        return ANSWER_MENTIONS
    return discord.AllowedMentions(
        everyone=False,
        users=[discord.Object(u) for u in pings.users],
        roles=[discord.Object(r) for r in pings.roles],
        replied_user=False,
    )


def fit(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, marked with an ellipsis when cut."""
    if limit < 1:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def card_embed(card: ReviewCard) -> discord.Embed:
    """A review card as an embed, within Discord's limits (the body first, then as many fields as fit)."""
    state = "resolved" if card.status.startswith("resolved") else card.status
    colour = _COLOURS["urgent"] if card.urgent else _COLOURS.get(state, _COLOURS["open"])
    title = fit(("🔴 " if card.urgent else "") + card.title, _EMBED_TITLE)
    footer = fit(f"{card_marker(card.case_id)}{card.status}", 2048)
    budget = _EMBED_TOTAL - len(title) - len(footer)
    description = fit(card.body, min(_EMBED_DESCRIPTION, budget // 2)) if card.body else ""
    budget -= len(description)
    embed = discord.Embed(title=title, description=description or None, colour=colour)
    for raw_name, raw_value in card.fields[:_EMBED_FIELDS]:
        name = fit(raw_name or "-", min(_FIELD_NAME, budget - 2))
        value = fit(raw_value or "-", min(_FIELD_VALUE, budget - len(name)))
        if not name or not value:
            break
        budget -= len(name) + len(value)
        embed.add_field(name=name, value=value, inline=len(value) <= 40)
    embed.set_footer(text=footer)
    return embed


def card_marker(case_id: int) -> str:
    """How a card's footer starts; it identifies the card of a case, buttons or not."""
    return f"Case {case_id} · "


def is_card_for(message: discord.Message, case_id: int, *, bot_user_id: int) -> bool:
    """Whether `message` is the review card this bot posted for `case_id`."""
    if message.author.id != bot_user_id:
        return False
    marker = card_marker(case_id)
    return any((e.footer.text or "").startswith(marker) for e in message.embeds)


@dataclass(frozen=True, slots=True)
class ButtonSpec:
    """What one review-card button looks like on Discord."""

    custom_id: str
    label: str
    style: discord.ButtonStyle
    case_id: int
    action: str


_STYLES: Mapping[Literal["primary", "danger", "default"], discord.ButtonStyle] = {
    "primary": discord.ButtonStyle.primary,
    "danger": discord.ButtonStyle.danger,
    "default": discord.ButtonStyle.secondary,
}


def card_buttons(card: ReviewCard) -> list[ButtonSpec]:
    """The card's buttons (at most 25, five to a row, as Discord allows)."""
    return [
        ButtonSpec(
            card_custom_id(card.case_id, b.action),
            fit(b.label or b.action, _BUTTON_LABEL),
            _STYLES[b.style],
            card.case_id,
            b.action,
        )
        for b in card.buttons[:_MAX_BUTTONS]
    ]


def timeout_until(until: datetime, now: datetime) -> datetime:
    """`until`, clamped to Discord's 28-day limit; naive datetimes are taken as UTC."""
    if until.tzinfo is None:
        raise ValueError("timeout end must be timezone-aware")
    return min(until, now + MAX_TIMEOUT - timedelta(minutes=1))


def platform_error(exc: Exception, action: str) -> PlatformError:
    """A discord.py or network failure as a PlatformError whose message says what failed and what to do."""
    if isinstance(exc, discord.Forbidden):
        hint = {
            50001: "the bot cannot see that channel (check the channel's permissions for the bot's role)",
            50007: "the member does not accept direct messages from the bot",
            50013: "the bot lacks a permission for this (see the README's invite permissions)",
        }.get(exc.code, "missing access or permissions")
        return PlatformError(f"Discord refused to {action}: {hint} (403, code {exc.code})", retryable=False, status=403)
    if isinstance(exc, discord.NotFound):
        return PlatformError(
            f"Discord could not {action}: it no longer exists (404, code {exc.code})", retryable=False, status=404
        )
    if isinstance(exc, discord.RateLimited):
        return PlatformError(f"Discord rate-limited {action} for {exc.retry_after:.0f} s", retryable=True, status=429)
    if isinstance(exc, discord.HTTPException):
        retryable = exc.status >= 500 or exc.status == 429
        return PlatformError(
            f"Discord failed to {action}: HTTP {exc.status} {exc.text[:200]}".rstrip(),
            retryable=retryable,
            status=exc.status,
        )
    return PlatformError(f"could not reach Discord to {action}: {type(exc).__name__}: {exc}", retryable=True)
