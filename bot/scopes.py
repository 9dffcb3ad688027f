"""The scopes in force: the file's scopes, with run-time changes laid over them, and channel bindings."""

from __future__ import annotations

from dataclasses import replace

from bot.config import Config, ScopeConfig
from bot.events import Place


def _norm_channel(channel: str) -> str:
    return channel.strip().lstrip("#").lower()


def binds(entry: str, place: Place) -> bool:
    """Whether a `channels` entry (`platform:channel` or a bare channel) names `place`'s channel."""
    platform, sep, channel = entry.partition(":")
    if not sep:
        platform, channel = "", entry
    if platform and platform.lower() != place.platform:
        return False
    return _norm_channel(channel) == _norm_channel(place.channel)


class ScopeRegistry:
    """Looks scopes up by name and by channel; `replace` swaps in a changed scope without a restart."""

    def __init__(self, config: Config) -> None:
        self._scopes: dict[str, ScopeConfig] = {s.name: s for s in config.scopes}
        self._default = config.default_scope.name
        #: Counts changes put in force, so that whoever derives state from the scopes (the gate's indexes)
        #: knows when to rebuild it.
        self.version = 0

    def names(self) -> list[str]:
        """Scope names in file order."""
        return list(self._scopes)

    def all(self) -> list[ScopeConfig]:
        """Every scope in force."""
        return list(self._scopes.values())

    def get(self, name: str) -> ScopeConfig:
        """The scope called `name`; KeyError when there is none."""
        return self._scopes[name]

    @property
    def default(self) -> ScopeConfig:
        """The scope for mentions and direct messages outside bound channels."""
        return self._scopes[self._default]

    def bound_to(self, place: Place) -> ScopeConfig | None:
        """The scope whose `channels` include `place`'s channel (or the channel its thread belongs to), if any."""
        candidates = [place]
        if place.parent and place.parent != place.channel:
            candidates.append(replace(place, channel=place.parent, parent=None))
        for where in candidates:
            for scope in self._scopes.values():
                if any(binds(entry, where) for entry in scope.channels):
                    return scope
        return None

    def replace(self, scope: ScopeConfig) -> None:
        """Put a changed scope in force."""
        if scope.name not in self._scopes:
            raise KeyError(scope.name)
        if self._scopes[scope.name] != scope:
            self._scopes[scope.name] = scope
            self.version += 1
