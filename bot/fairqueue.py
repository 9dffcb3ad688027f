"""A bounded waiting line that is fair: platforms take turns, and within one, members take turns.

One member sending ten questions, or one busy Slack workspace, cannot push everyone else to the back:
`get()` serves lanes (platforms) round-robin and, inside a lane, members round-robin, each member's own
questions in the order they asked them.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """The lane is full; `waiting` questions are already in it."""

    def __init__(self, lane: str, waiting: int) -> None:
        super().__init__(f"{waiting} questions are waiting on {lane or 'this platform'}")
        self.lane = lane
        self.waiting = waiting


class _Lane(Generic[T]):
    """One platform's members, each with their own line, served in turn."""

    def __init__(self) -> None:
        self.members: OrderedDict[str, deque[T]] = OrderedDict()
        self.size = 0

    def rotation(self) -> Iterator[T]:
        """Items in the order this lane would hand them out."""
        lines = [list(q) for q in self.members.values()]
        depth = max((len(line) for line in lines), default=0)
        for i in range(depth):
            for line in lines:
                if i < len(line):
                    yield line[i]

    def pop(self) -> T:
        user, line = next(iter(self.members.items()))
        item = line.popleft()
        del self.members[user]
        if line:
            self.members[user] = line  # to the back of the rotation
        self.size -= 1
        return item


class FairQueue(Generic[T]):
    """Round-robin over lanes, then over members; each lane holds at most `capacity` items."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._lanes: OrderedDict[str, _Lane[T]] = OrderedDict()
        self._ready = asyncio.Event()

    def qsize(self) -> int:
        """Items waiting in all lanes."""
        return sum(lane.size for lane in self._lanes.values())

    def lane_size(self, lane: str) -> int:
        """Items waiting in one lane."""
        found = self._lanes.get(lane)
        return found.size if found is not None else 0

    def put(self, item: T, *, lane: str, user: str) -> int:
        """Add `item`; return how many waiting items will be served before it. `QueueFull` when the lane is full."""
        found = self._lanes.get(lane)
        if found is not None and found.size >= self.capacity:
            raise QueueFull(lane, found.size)
        if found is None:
            found = self._lanes[lane] = _Lane()
        found.members.setdefault(user, deque()).append(item)
        found.size += 1
        self._ready.set()
        return self.position(item)

    def position(self, item: T) -> int:
        """How many waiting items are served before `item` (-1 when it is not waiting)."""
        for i, queued in enumerate(self._order()):
            if queued is item:
                return i
        return -1

    def _order(self) -> Iterator[T]:
        """Every waiting item in serving order, simulating the round-robin."""
        rotations = [lane.rotation() for lane in self._lanes.values()]
        while rotations:
            alive = []
            for it in rotations:
                item = next(it, None)
                if item is not None:
                    yield item
                    alive.append(it)
            rotations = alive

    def remove(self, item: T) -> bool:
        """Take a waiting item out of line (it was cancelled); False when it was not waiting."""
        for name, lane in self._lanes.items():
            for user, line in lane.members.items():
                for queued in line:
                    if queued is item:
                        line.remove(queued)
                        lane.size -= 1
                        if not line:
                            del lane.members[user]
                        if not lane.size:
                            del self._lanes[name]
                        return True
        return False

    async def get(self) -> T:
        """The next item in fair order, waiting for one if the line is empty."""
        while not self._lanes:
            self._ready.clear()
            await self._ready.wait()
        name, lane = next(iter(self._lanes.items()))
        item = lane.pop()
        del self._lanes[name]
        if lane.size:
            self._lanes[name] = lane  # the next lane goes first next time
        return item

    def drain(self) -> list[T]:
        """Take every waiting item out (at shutdown), in serving order."""
        items = list(self._order())
        self._lanes.clear()
        return items
