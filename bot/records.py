"""Core types as plain JSON data and back, for records kept on disk while the database is away (`bot/spool.py`)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from bot.events import Actor, FetchedMessage, MessageRef, Place, ReactionAdded


def ref_json(ref: MessageRef) -> dict[str, Any]:
    """A message reference as JSON data."""
    return asdict(ref)


def ref_from_json(data: dict[str, Any]) -> MessageRef:
    """The message reference `ref_json` described."""
    return MessageRef(Place(**data["place"]), str(data["message_id"]))


def actor_from_json(data: dict[str, Any]) -> Actor:
    """The actor `asdict(actor)` described (JSON turns its roles into a list)."""
    return Actor(**(data | {"roles": tuple(data.get("roles", ()))}))


def reaction_json(event: ReactionAdded) -> dict[str, Any]:
    """A reaction as JSON data."""
    return {
        "target": ref_json(event.target),
        "reactor": asdict(event.reactor),
        "emoji": event.emoji,
        "target_author_id": event.target_author_id,
    }


def reaction_from_json(data: dict[str, Any]) -> ReactionAdded:
    """The reaction `reaction_json` described."""
    return ReactionAdded(
        target=ref_from_json(data["target"]),
        reactor=actor_from_json(data["reactor"]),
        emoji=str(data["emoji"]),
        target_author_id=data.get("target_author_id"),
    )


def fetched_json(message: FetchedMessage) -> dict[str, Any]:
    """A message read back from the platform, as JSON data."""
    return {
        "ref": ref_json(message.ref),
        "author": asdict(message.author),
        "text": message.text,
        "sent_at": message.sent_at.isoformat() if message.sent_at is not None else None,
        "permalink": message.permalink,
    }


def fetched_from_json(data: dict[str, Any]) -> FetchedMessage:
    """The message `fetched_json` described."""
    return FetchedMessage(
        ref=ref_from_json(data["ref"]),
        author=actor_from_json(data["author"]),
        text=str(data["text"]),
        sent_at=datetime.fromisoformat(data["sent_at"]) if data.get("sent_at") else None,
        permalink=data.get("permalink"),
    )
