"""Recording what the bot answered, and finding an answer again from one of its messages."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import select

from bot.events import MessageRef
from bot.models import BotAnswer, BotAnswerPart


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
