"""Recording what the bot answered, and finding an answer again from one of its messages."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import select

from bot.events import MessageRef
from bot.models import BotAnswer, BotAnswerPart
from bot.records import ref_from_json, ref_json
from bot.spool import Spool

#: Kind of the spool records holding answers kept while the database is unreachable.
ANSWER_RECORD = "answer"


async def record_answer(
    sessions: async_sessionmaker[AsyncSession], *, answer: BotAnswer, parts: Sequence[MessageRef]
) -> BotAnswer:
    """Store an answer and the messages it was posted as, in one transaction."""
    if parts:
        answer.answer_key = parts[0].key
    async with sessions() as session, session.begin():
        session.add(answer)
        await session.flush()
        assert answer.id is not None
        for i, ref in enumerate(parts):
            session.add(BotAnswerPart(message_key=ref.key, answer_id=answer.id, part=i))
    return answer


async def save_answer(
    sessions: async_sessionmaker[AsyncSession],
    *,
    answer: BotAnswer,
    parts: Sequence[MessageRef],
    spool: Spool | None = None,
) -> int | None:
    """Record an answer now, or keep it in `spool` while the database is unreachable; its id, or None when kept."""
    if spool is None:
        return (await record_answer(sessions, answer=answer, parts=parts)).id
    # Taken before the attempt: a failed transaction may leave the object expired and unreadable.
    record = answer.model_dump(mode="json", exclude={"id", "answer_key"}) | {"parts": [ref_json(r) for r in parts]}
    if not spool.holding:
        try:
            return (await record_answer(sessions, answer=answer, parts=parts)).id
        except Exception as e:
            if not spool.lost(e, during=f"recording answer {answer.request_id}"):
                raise
    await spool.keep(ANSWER_RECORD, record)
    return None


async def replay_answer(sessions: async_sessionmaker[AsyncSession], data: dict[str, Any]) -> None:
    """Write a kept answer, unless it is written already (its messages' keys are unique)."""
    parts = [ref_from_json(r) for r in data.get("parts", [])]
    answer = BotAnswer.model_validate({k: v for k, v in data.items() if k != "parts"})
    async with sessions() as session:
        if parts:
            written = await session.get(BotAnswerPart, parts[0].key) is not None
        else:
            found = await session.scalar(
                select(BotAnswer.id).where(
                    BotAnswer.request_id == answer.request_id,
                    BotAnswer.question_message_id == answer.question_message_id,
                    BotAnswer.created_at == answer.created_at,
                )
            )
            written = found is not None
    if written:
        return
    # Written meanwhile by another replay of the same record: the parts' unique keys refuse a second copy.
    with contextlib.suppress(IntegrityError):
        await record_answer(sessions, answer=answer, parts=parts)


async def answer_for_message(session: AsyncSession, ref: MessageRef) -> BotAnswer | None:
    """The bot answer that `ref` is (a part of), or None for any other message."""
    part = await session.get(BotAnswerPart, ref.key)
    if part is None:
        return None
    return await session.get(BotAnswer, part.answer_id)


async def parts_of(session: AsyncSession, answer_id: int) -> list[str]:
    """Message keys of every part of an answer, in order."""
    rows = await session.execute(
        select(BotAnswerPart.message_key).where(BotAnswerPart.answer_id == answer_id).order_by(BotAnswerPart.part)  # type: ignore[arg-type]
    )
    return list(rows.scalars())


@dataclass(slots=True)
class ConversationMemory:
    """Each person's recent questions per thread, so a request split over messages is screened whole."""

    turns: int = 4
    max_threads: int = 10_000
    _threads: dict[tuple[str, ...], deque[str]] = field(default_factory=dict)

    @staticmethod
    def _key(ref: MessageRef, author_id: str) -> tuple[str, ...]:
        p = ref.place
        return (p.platform, p.workspace, p.channel, p.thread or "", author_id)

    def recent(self, ref: MessageRef, author_id: str) -> list[str]:
        """Earlier questions by this person in this thread, oldest first."""
        return list(self._threads.get(self._key(ref, author_id), ()))

    def remember(self, ref: MessageRef, author_id: str, text: str) -> None:
        """Add a question; forget the oldest threads beyond `max_threads` so memory stays flat."""
        key = self._key(ref, author_id)
        q = self._threads.pop(key, None) or deque(maxlen=self.turns)
        q.append(text[:2000])
        self._threads[key] = q
        while len(self._threads) > self.max_threads:
            self._threads.pop(next(iter(self._threads)))
