"""Who may moderate: configured user ids and roles first, then the platform's own groups."""

from __future__ import annotations

from bot.config import ModeratorsConfig
from bot.events import Actor, Place, Platform


def configured_moderator(moderators: ModeratorsConfig, actor: Actor) -> bool:
    """Whether the configuration alone names `actor` a moderator (by id or role)."""
    if actor.is_bot:
        return False
    if actor.platform == "console":
        return actor.user_id in moderators.console
    if actor.platform == "slack":
        return actor.user_id in moderators.slack_users
    if actor.platform == "discord":
        return actor.user_id in moderators.discord_users or bool(set(actor.roles) & set(moderators.discord_roles))
    return False


async def is_moderator(moderators: ModeratorsConfig, platform: Platform, actor: Actor, place: Place) -> bool:
    """Whether `actor` may act on review cards and run moderator commands."""
    if configured_moderator(moderators, actor):
        return True
    if actor.is_bot:
        return False
    return bool(await platform.is_moderator(actor, place=place))
