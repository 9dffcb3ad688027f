"""Posting an answer: streamed by edits no faster than the platform allows, split within its length limit."""

from __future__ import annotations

import logging
import time

from bot.events import MessageRef, OutboundMessage, Platform, PlatformError

log = logging.getLogger(__name__)


def split_text(text: str, limit: int) -> list[str]:
    """Split `text` into pieces of at most `limit` characters, preferring paragraph, line and word breaks."""
    if limit < 1:
        raise ValueError("limit must be positive")
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"))
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut < limit // 2:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    pieces.append(rest)
    return [p for p in pieces if p] or [""]


class StreamingReply:
    """One reply that grows as tokens arrive; owns the platform messages it is made of."""

    def __init__(self, platform: Platform, target: OutboundMessage, *, header: str = "") -> None:
        self._platform = platform
        self._header = header
        self._target = target
        self._limit = platform.limits.max_message_chars
        self._interval = platform.limits.edit_interval if platform.limits.supports_edit else 0.0
        self.refs: list[MessageRef] = []
        self._shown: list[str] = []
        self._last_edit = 0.0

    @property
    def streaming(self) -> bool:
        """Whether this platform gets partial text by edits."""
        return self._interval > 0

    async def show_placeholder(self, text: str) -> None:
        """Post a note (e.g. a place in line) that the answer will replace, so the member sees the bot is on it."""
        if not self.refs:
            await self._sync([text])

    def due(self) -> bool:
        """Whether enough time passed since the last edit to show more text."""
        return self.streaming and time.monotonic() - self._last_edit >= self._interval

    async def update(self, text: str) -> None:
        """Show partial `text` now (callers check `due()` first)."""
        if not text.strip():
            return
        self._last_edit = time.monotonic()
        await self._sync(split_text(self._header + text + " …", self._limit))

    async def finish(self, text: str) -> list[MessageRef]:
        """Show the final text, removing messages a shorter final text no longer needs."""
        await self._sync(split_text(self._header + text, self._limit))
        return list(self.refs)

    async def _sync(self, pieces: list[str]) -> None:
        for i, piece in enumerate(pieces):
            if i < len(self.refs):
                if self._shown[i] != piece:
                    await self._platform.edit(self.refs[i], piece)
                    self._shown[i] = piece
            else:
                reply_to = self._target.reply_to
                msg = OutboundMessage(self._target.place, piece, reply_to=reply_to)
                self.refs.append(await self._platform.send(msg))
                self._shown.append(piece)
        while len(self.refs) > len(pieces):
            ref = self.refs.pop()
            self._shown.pop()
            try:
                await self._platform.delete(ref)
            except PlatformError as e:
                log.warning("could not delete surplus reply part %s: %s", ref.key, e)
