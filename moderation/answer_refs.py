"""Finding a bot answer's messages again, and editing every one of them (to hide or retract it)."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from bot.answers import parts_of
from bot.events import MessageRef, Place, Platform, PlatformError
from bot.models import BotAnswer

log = logging.getLogger(__name__)


def answer_place(answer: BotAnswer) -> Place:
    """Where an answer was posted (its thread included)."""
    return Place(answer.platform, answer.workspace, answer.channel, answer.thread)


async def answer_refs(session: AsyncSession, answer: BotAnswer) -> list[MessageRef]:
    """Every platform message the answer was posted as, in order."""
    assert answer.id is not None
    place = answer_place(answer)
    # A part's key ends with its message id; the place (thread included) is the answer's.
    return [MessageRef(place, key.rsplit(":", 1)[1]) for key in await parts_of(session, answer.id)]


def question_ref(answer: BotAnswer) -> MessageRef:
    """The member's question, which the answer (and a correction) replies to."""
    return MessageRef(answer_place(answer), answer.question_message_id)


async def edit_all(platform: Platform, refs: list[MessageRef], text: str) -> None:
    """Replace the text of every part; a part that no longer exists needs no hiding."""
    for ref in refs:
        try:
            await platform.edit(ref, text)
        except PlatformError as e:
            if e.status == 404:
                log.info("answer part %s is already gone", ref.key)
                continue
            raise


async def delete_all(platform: Platform, refs: list[MessageRef]) -> None:
    """Delete every part; a part already gone counts as deleted."""
    for ref in refs:
        try:
            await platform.delete(ref)
        except PlatformError as e:
            if e.status == 404:
                continue
            raise
