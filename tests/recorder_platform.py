"""A `Platform` over HTTP to the card recorder (`tests/card_recorder.py`), for bots in other processes."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import aiohttp

from bot.events import (
    Actor,
    EventSink,
    FetchedMessage,
    MessageRef,
    OutboundMessage,
    Place,
    PlatformError,
    PlatformLimits,
    Reply,
    ReviewCard,
)

NAME = "recorder"
WORKSPACE = "w1"


class RecorderPlatform:
    """Cards, messages and private replies live in the recorder; every request names this process."""

    name = NAME

    def __init__(self, base_url: str) -> None:
        self.limits = PlatformLimits(max_message_chars=4000, edit_interval=0.0)
        self._base = base_url.rstrip("/")
        self._http: aiohttp.ClientSession | None = None

    def place(self, channel: str) -> Place:
        """A channel on this platform."""
        return Place(NAME, WORKSPACE, channel)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        if self._http is None:
            self._http = aiohttp.ClientSession(headers={"X-Pid": str(os.getpid())})
        try:
            async with self._http.request(method, self._base + path, json=body) as resp:
                data = await resp.json()
        except (aiohttp.ClientError, OSError) as e:
            raise PlatformError(f"recorder unreachable: {e}", retryable=True) from e
        if resp.status >= 500:
            raise PlatformError(f"recorder error {resp.status}", retryable=True, status=resp.status)
        return resp.status, data

    async def start(self, sink: EventSink) -> None:
        """Nothing to connect: events are delivered by the test driver."""

    async def stop(self) -> None:
        """Close the HTTP session."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def send(self, message: OutboundMessage) -> MessageRef:
        _status, data = await self._call(
            "POST",
            "/messages",
            {
                "channel": message.place.channel,
                "author": "bot",
                "text": message.text,
                "reply_to": _id(message.reply_to),
            },
        )
        return MessageRef(message.place, str(data["id"]))

    async def edit(self, ref: MessageRef, text: str) -> None:
        status, _ = await self._call("PUT", f"/messages/{ref.message_id}", {"text": text})
        if status == 404:
            raise PlatformError("message not found", retryable=False, status=404)

    async def delete(self, ref: MessageRef) -> None:
        status, _ = await self._call("DELETE", f"/messages/{ref.message_id}")
        if status == 404:
            raise PlatformError("message not found", retryable=False, status=404)

    async def fetch_message(self, ref: MessageRef) -> FetchedMessage | None:
        status, data = await self._call("GET", f"/messages/{ref.message_id}")
        if status == 404:
            return None
        return FetchedMessage(ref=ref, author=Actor(NAME, data["author"], data["author"]), text=data["text"])

    async def post_review_card(self, card: ReviewCard, *, existing: MessageRef | None = None) -> MessageRef:
        body = {
            "case_id": card.case_id,
            "channel": card.place.channel,
            "title": card.title,
            "fields": dict(card.fields),
            "status": card.status,
            "buttons": [b.action for b in card.buttons],
        }
        if existing is not None:
            status, data = await self._call("PUT", f"/cards/{existing.message_id}", body)
            if status != 404:
                return existing
        status, data = await self._call("POST", "/cards", body)
        return MessageRef(card.place, str(data["id"]))

    async def find_review_card(self, place: Place, case_id: int) -> MessageRef | None:
        """The card already posted for a case, as a real adapter finds it by the case id it carries."""
        _, data = await self._call("GET", f"/cards?channel={place.channel}&case_id={case_id}")
        return MessageRef(place, str(data["id"])) if data.get("id") else None

    async def reply_privately(self, reply: Reply) -> None:
        await self._call("POST", "/private", {"user": reply.user_id, "text": reply.text})

    async def timeout_member(self, place: Place, user_id: str, *, until: datetime, reason: str) -> bool:
        return False

    async def is_moderator(self, actor: Actor, *, place: Place) -> bool | None:
        return None


def _id(ref: MessageRef | None) -> str | None:
    return ref.message_id if ref is not None else None
