"""SQLModel tables of the core: every answer the bot gives, with where it came from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from bot.db import UTCDateTime, utcnow


class BotAnswer(SQLModel, table=True):
    """One question the bot handled and what it did, so a later flag can trace it."""

    __tablename__ = "bot_answer"
    __table_args__ = (Index("ix_bot_answer_thread", "platform", "channel", "thread", "author_id"),)

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    request_id: str = Field(max_length=64, index=True)
    platform: str = Field(max_length=32)
    workspace: str = Field(max_length=128)
    channel: str = Field(max_length=128)
    thread: str | None = Field(default=None, max_length=128)
    question_message_id: str = Field(max_length=128)
    #: Key (see `MessageRef.key`) of the first message of the reply; parts live in `bot_answer_part`.
    answer_key: str | None = Field(default=None, max_length=512, index=True)
    author_id: str = Field(max_length=128)
    question: str = Field(sa_column=Column(Text, nullable=False))
    answer: str = Field(default="", sa_column=Column(Text, nullable=False))
    scope: str = Field(max_length=64)
    #: answer | refuse | block | busy | error
    verdict: str = Field(max_length=16)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    #: Which layer of the gate decided (`GateResult.rule`): `topic`, `wordlist:<list>:<entry>`,
    #: `harm:<category>:<rule name, model or intent>`, …; empty for answers recorded before it was kept.
    gate_rule: str = Field(default="", max_length=256)
    gate_score: float = 0.0
    #: [{"source": …, "text": …, "score": …}]
    passages: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    model: str = Field(default="", max_length=512)
    model_params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    config_version: str = Field(default="", max_length=64)
    #: Milliseconds per stage: gate, retrieval, queue, first_token, generation, total.
    timings: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False
    #: Whether a moderator or the hide threshold has hidden or retracted it.
    hidden: bool = False


class BotAnswerPart(SQLModel, table=True):
    """Each platform message a (possibly split) answer was posted as, for tracing flags back."""

    __tablename__ = "bot_answer_part"

    message_key: str = Field(primary_key=True, max_length=512)
    answer_id: int = Field(foreign_key="bot_answer.id", index=True)
    part: int = 0
