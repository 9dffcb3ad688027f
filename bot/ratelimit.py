"""Sliding-window rate limits (per member, per channel) that forget idle keys, so memory stays flat."""

from __future__ import annotations

import time
from collections import OrderedDict, deque


class RateLimiter:
    """At most `limit` hits per `window` seconds for each key."""

    def __init__(self, *, limit: int, window: float = 60.0, max_keys: int = 50_000) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be at least 1 and window positive")
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, key: str, *, now: float | None = None) -> float:
        """Count a hit; return 0 when allowed, else the seconds until the key may try again (not counted)."""
        now = time.monotonic() if now is None else now
        hits = self._hits.pop(key, None) or deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        self._forget_idle(now)
        wait = 0.0
        if len(hits) >= self.limit:
            wait = max(0.001, hits[0] + self.window - now)
        else:
            hits.append(now)
        self._hits[key] = hits
        return wait

    def _forget_idle(self, now: float) -> None:
        # Keys are kept most-recent-last: drop idle ones from the front, and the oldest beyond the cap.
        while self._hits:
            key, hits = next(iter(self._hits.items()))
            if len(self._hits) >= self._max_keys or not hits or hits[-1] <= now - self.window:
                del self._hits[key]
            else:
                break

    def __len__(self) -> int:
        return len(self._hits)
