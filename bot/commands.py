"""`/scopebot …` commands: a small registry that services add their subcommands to."""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.events import Actor, Place, Platform

Handler = Callable[[Platform, Actor, Place, list[str]], Awaitable[str]]
#: Decides whether an actor may run moderator-only commands.
RightsCheck = Callable[[Platform, Actor, Place], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Subcommand:
    """One `/scopebot NAME …` subcommand."""

    name: str
    usage: str
    handler: Handler
    moderators_only: bool = False


class CommandRouter:
    """Parses `/scopebot` text and runs the matching subcommand, checking rights first."""

    def __init__(self, *, is_moderator: RightsCheck) -> None:
        self._subs: dict[str, Subcommand] = {}
        self._is_moderator = is_moderator

    def register(self, sub: Subcommand) -> None:
        """Add a subcommand; a second one with the same name is a programming error."""
        if sub.name in self._subs:
            raise ValueError(f"subcommand {sub.name!r} registered twice")
        self._subs[sub.name] = sub

    def help_text(self, *, moderator: bool) -> str:
        """Usage lines of the subcommands this actor may run."""
        lines = [f"/scopebot {s.usage}" for s in self._subs.values() if moderator or not s.moderators_only]
        return "Commands:\n" + "\n".join(lines)

    async def run(self, platform: Platform, actor: Actor, place: Place, text: str) -> str:
        """Run `text` (what follows `/scopebot`) and return the private reply."""
        try:
            args = shlex.split(text)
        except ValueError:
            args = text.split()
        if not args or args[0] in ("help", "-h", "--help"):
            return self.help_text(moderator=await self._is_moderator(platform, actor, place))
        sub = self._subs.get(args[0].lower())
        if sub is None:
            return f"Unknown command {args[0]!r}. " + self.help_text(moderator=False)
        if sub.moderators_only and not await self._is_moderator(platform, actor, place):
            return "Only moderators can use that command."
        return await sub.handler(platform, actor, place, args[1:])
