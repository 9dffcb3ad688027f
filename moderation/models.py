"""Moderation tables: reports, one case per message, its evidence, reviewer actions, mutes, regressions.

Idempotency lives here: a report is unique per (message, reporter), a case per message, an action per
(case, action[, phrase]), a regression example per case. Counters and state changes are made with
conditional UPDATEs, so concurrent handlers and processes cannot both win.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.db import UTCDateTime, utcnow
from bot.events import MessageRef, Place


class CaseState(StrEnum):
    """Where a case is in the review queue."""

    OPEN = "open"
    ROUTED = "routed"
    RESOLVED = "resolved"


class Case(SQLModel, table=True):
    """Every report on one message, merged: counts, thresholds, the review card and the outcome."""

    __tablename__ = "moderation_case"
    __table_args__ = (
        Index("ix_moderation_case_work", "dirty", "next_attempt_at"),
        Index("ix_moderation_case_state", "state", "platform"),
    )

    id: int | None = Field(default=None, primary_key=True)
    #: `MessageRef.key` of the reported message: one case per message.
    message_key: str = Field(max_length=512, unique=True)
    platform: str = Field(max_length=32)
    workspace: str = Field(max_length=128)
    channel: str = Field(max_length=128)
    thread: str | None = Field(default=None, max_length=128)
    message_id: str = Field(max_length=128)
    is_direct: bool = False
    author_id: str = Field(default="", max_length=128)
    author_is_bot: bool = False
    scope: str | None = Field(default=None, max_length=64)
    answer_id: int | None = Field(default=None, foreign_key="bot_answer.id")
    state: str = Field(default=CaseState.OPEN, max_length=16)
    urgent: bool = False
    escalated: bool = False
    escalation_reason: str = Field(default="", max_length=128)
    reporters: int = 0
    score: float = 0.0
    #: Bumped by every change a card should show; `card_revision` is the revision the card shows.
    revision: int = 1
    card_revision: int = 0
    #: Something for the router to do: post or update the card, hide an answer, ping moderators.
    dirty: bool = True
    card_workspace: str | None = Field(default=None, max_length=128)
    card_channel: str | None = Field(default=None, max_length=128)
    card_message_id: str | None = Field(default=None, max_length=128)
    #: A card post was attempted and its outcome is not recorded: look for it before posting again.
    card_pending: bool = False
    hide_pending: bool = False
    ping_pending: bool = False
    #: Router lease: whoever holds an unexpired token works on the card; others skip the case.
    lease_token: str | None = Field(default=None, max_length=32)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False))
    claimed_by_id: str | None = Field(default=None, max_length=128)
    claimed_by_name: str = Field(default="", max_length=256)
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: The resolving action (dismiss, remove, retract, off_scope, unsafe).
    resolution: str | None = Field(default=None, max_length=32)
    resolved_by_id: str | None = Field(default=None, max_length=128)
    resolved_by_name: str = Field(default="", max_length=256)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    routed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    evidence_purged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def place(self) -> Place:
        """Where the reported message lives."""
        return Place(self.platform, self.workspace, self.channel, self.thread, is_direct=self.is_direct)

    @property
    def message_ref(self) -> MessageRef:
        """The reported message."""
        return MessageRef(self.place, self.message_id)

    @property
    def card_ref(self) -> MessageRef | None:
        """The review card, once its post is recorded."""
        if self.card_message_id is None or self.card_channel is None:
            return None
        return MessageRef(Place(self.platform, self.card_workspace or "", self.card_channel), self.card_message_id)


class CaseEvidence(SQLModel, table=True):
    """What the message was when first reported, and a bot answer's provenance; purged after retention."""

    __tablename__ = "case_evidence"

    case_id: int = Field(primary_key=True, foreign_key="moderation_case.id")
    captured_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    #: False when the message was already gone at filing time (text then comes from the bot's records).
    fetched: bool = True
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    author_name: str = Field(default="", max_length=256)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    permalink: str = Field(default="", max_length=1024)
    #: For bot answers: question, answer, passages, verdict, reason, model, params, config version.
    provenance: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class Report(SQLModel, table=True):
    """One person's flag on one message."""

    __tablename__ = "moderation_report"
    __table_args__ = (
        UniqueConstraint("message_key", "reporter_platform", "reporter_id", name="uq_report_message_reporter"),
        Index("ix_report_reporter_time", "reporter_platform", "reporter_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="moderation_case.id", index=True)
    message_key: str = Field(max_length=512)
    reporter_platform: str = Field(max_length=32)
    reporter_id: str = Field(max_length=128)
    reporter_name: str = Field(default="", max_length=256)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    #: How much this reporter's flag counts, from their track record (1.0 for a newcomer).
    weight: float = 1.0
    #: The message text as this reporter saw it (it may have been edited between reports); purged.
    snapshot: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ActionStatus(StrEnum):
    """Progress of an action's effect on the platform."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class CaseAction(SQLModel, table=True):
    """A reviewer's action on a case; its platform effect is carried out from here (an outbox)."""

    __tablename__ = "case_action"
    __table_args__ = (
        UniqueConstraint("case_id", "dedupe", name="uq_case_action_once"),
        Index("ix_case_action_work", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="moderation_case.id", index=True)
    action: str = Field(max_length=32)
    #: The action, plus the phrase for `add_word`: a second identical press cannot insert a row.
    dedupe: str = Field(max_length=600)
    actor_platform: str = Field(max_length=32)
    actor_id: str = Field(max_length=128, index=True)
    actor_name: str = Field(default="", max_length=256)
    argument: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    status: str = Field(default=ActionStatus.PENDING, max_length=16)
    lease_token: str | None = Field(default=None, max_length=32)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    error: str = Field(default="", sa_column=Column(Text, nullable=False))
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Mute(SQLModel, table=True):
    """A time-out the platform cannot enforce (Slack, console): the bot does not answer the member."""

    __tablename__ = "member_mute"
    __table_args__ = (Index("ix_member_mute_who", "platform", "workspace", "user_id", "until"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)
    workspace: str = Field(max_length=128)
    user_id: str = Field(max_length=128)
    until: datetime = Field(sa_type=UTCDateTime)
    case_id: int | None = Field(default=None, foreign_key="moderation_case.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by_id: str = Field(default="", max_length=128)


class RegressionExample(SQLModel, table=True):
    """A question whose reply a moderator judged a bot fault, kept for `scopebot eval` to replay."""

    __tablename__ = "regression_example"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="moderation_case.id", unique=True)
    scope: str = Field(max_length=64, index=True)
    #: wrong | off_scope | unsafe (a wrong answer) | missed (a wrong refusal)
    kind: str = Field(max_length=16)
    question: str = Field(sa_column=Column(Text, nullable=False))
    answer_id: int | None = Field(default=None, foreign_key="bot_answer.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by_id: str = Field(default="", max_length=128)


class ModerationNotice(SQLModel, table=True):
    """A problem an operator must fix (a reviewer channel the bot cannot post to), reported once."""

    __tablename__ = "moderation_notice"

    key: str = Field(primary_key=True, max_length=300)
    first_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    message: str = Field(default="", sa_column=Column(Text, nullable=False))


#: APScheduler 3's job table, declared here so migrations own it (its job store only checks it exists).
apscheduler_jobs = sa.Table(
    "apscheduler_jobs",
    SQLModel.metadata,
    sa.Column("id", sa.Unicode(191), primary_key=True),
    sa.Column("next_run_time", sa.Float(25), index=True),
    sa.Column("job_state", sa.LargeBinary, nullable=False),
)
