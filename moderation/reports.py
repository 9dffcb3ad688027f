"""Filing reports: a flag becomes a `Report` and opens or updates the message's one `Case`, in one transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from bot.answers import answer_for_message
from bot.config import Config
from bot.db import utcnow
from bot.events import Actor, FetchedMessage, Platform, PlatformError, ReactionAdded, Reply
from bot.models import BotAnswer, BotAnswerPart
from bot.records import fetched_from_json, fetched_json, reaction_from_json, reaction_json, ref_from_json
from bot.sanitize import clean_fetched
from bot.scopes import ScopeRegistry
from bot.spool import Spool
from moderation.answer_refs import answer_refs, edit_all
from moderation.audit import SYSTEM, audit
from moderation.models import Case, CaseEvidence, CaseState, Report
from moderation.store import is_reviewer_channel, rowcount

log = logging.getLogger(__name__)

RATE_LIMITED_TEXT = "You have filed many reports in the last hour; please wait a while before flagging more."
#: Attempts at the filing transaction when another process opens the same case at the same moment.
FILING_ATTEMPTS = 3
#: Kind of the spool records holding reports kept while the database is unreachable.
REPORT_RECORD = "report"


@dataclass(frozen=True, slots=True)
class FilingResult:
    """What one flag did."""

    #: kept: the database is unreachable; the report waits in the spool and is filed when it returns.
    outcome: Literal["filed", "kept", "duplicate", "rate_limited", "ignored"]
    case_id: int | None = None
    reporters: int = 0
    #: Whether this flag took a bot answer over the hide threshold.
    hid_answer: bool = False


class _Duplicate(Exception):
    """This person already reported this message."""


def provenance(answer: BotAnswer) -> dict[str, Any]:
    """Everything needed to understand where a bot answer came from."""
    return {
        "answer_id": answer.id,
        "request_id": answer.request_id,
        "created_at": answer.created_at.isoformat(),
        "question": answer.question,
        "answer": answer.answer,
        "scope": answer.scope,
        "verdict": answer.verdict,
        "reason": answer.reason,
        "gate_rule": answer.gate_rule,
        "gate_score": answer.gate_score,
        "passages": answer.passages,
        "model": answer.model,
        "model_params": answer.model_params,
        "config_version": answer.config_version,
        "timings": answer.timings,
        "truncated": answer.truncated,
    }


async def reporter_weight(session: AsyncSession, reporter: Actor) -> float:
    """How much a reporter's flag counts: 1.0 for a newcomer, up to 2.0 for one whose reports are upheld."""
    q = (
        select(Case.resolution)
        .join(Report, col(Report.case_id) == col(Case.id))
        .where(
            Report.reporter_platform == reporter.platform,
            Report.reporter_id == reporter.user_id,
            Case.state == CaseState.RESOLVED,
        )
    )
    resolutions = list((await session.execute(q)).scalars())
    upheld = sum(1 for r in resolutions if r != "dismiss")
    return round(2.0 * (upheld + 1) / (len(resolutions) + 2), 3)


class ReportService:
    """Turns flags into reports and cases, hides answers past the threshold, acknowledges the reporter."""

    def __init__(
        self,
        *,
        config: Config,
        sessions: async_sessionmaker[AsyncSession],
        scopes: ScopeRegistry,
        spool: Spool | None = None,
    ) -> None:
        self._config = config
        self._sessions = sessions
        self._scopes = scopes
        self._spool = spool
        if spool is not None:
            spool.register(REPORT_RECORD, self.replay)

    async def file(self, *, platform: Platform, event: ReactionAdded) -> FilingResult:
        """File `event` as a report; a repeat by the same person, or a flood, files nothing.

        While the database is unreachable (or reports kept earlier still wait) the report is kept in the
        spool, with the message as it reads now, and filed when the database returns; the reporter is
        acknowledged as usual.
        """
        if event.reactor.is_bot or is_reviewer_channel(self._config, event.target.place):
            return FilingResult("ignored")
        fetched: list[FetchedMessage | None] = []  # the message is read once, whichever way the report goes
        spool = self._spool
        if spool is None or not spool.holding:
            try:
                return await self._file_now(platform, event, fetched)
            except Exception as e:
                if spool is None or not spool.lost(e, during=f"filing a report on {event.target.key}"):
                    raise
        return await self._keep(platform, event, fetched)

    async def _file_now(
        self, platform: Platform, event: ReactionAdded, fetched_once: list[FetchedMessage | None]
    ) -> FilingResult:
        reporter = event.reactor
        async with self._sessions() as session:
            key, duplicate = await self._key(session, event)
            if duplicate:
                return FilingResult("duplicate")
            since = utcnow() - timedelta(hours=1)
            recent = await session.scalar(
                select(func.count())
                .select_from(Report)
                .where(
                    Report.reporter_platform == reporter.platform,
                    Report.reporter_id == reporter.user_id,
                    col(Report.created_at) >= since,
                )
            )
        if (recent or 0) >= self._config.moderation.reports_per_hour:
            log.info(
                "report by %s not filed: over %d per hour", reporter.user_id, self._config.moderation.reports_per_hour
            )
            await self._tell(platform, event, RATE_LIMITED_TEXT)
            return FilingResult("rate_limited")
        fetched = await self._fetch(platform, event)
        fetched_once.append(fetched)
        result = await self._file_retrying(event, key, fetched)
        if result.hid_answer and result.case_id is not None:
            await self.hide_answer(platform, case_id=result.case_id)
        if self._config.moderation.acknowledge_reporter and result.outcome == "filed":
            await self._tell(platform, event, self._config.moderation.acknowledgement)
        return result

    async def _keep(
        self, platform: Platform, event: ReactionAdded, fetched_once: list[FetchedMessage | None]
    ) -> FilingResult:
        """Keep a report in the spool until the database returns; duplicates and floods are judged by what waits."""
        assert self._spool is not None
        reporter = event.reactor
        mine = [
            d
            for d in self._spool.pending(REPORT_RECORD)
            if (d["reactor"]["platform"], d["reactor"]["user_id"]) == (reporter.platform, reporter.user_id)
        ]
        if any(ref_from_json(d["target"]).key == event.target.key for d in mine):
            return FilingResult("duplicate")
        if len(mine) >= self._config.moderation.reports_per_hour:
            await self._tell(platform, event, RATE_LIMITED_TEXT)
            return FilingResult("rate_limited")
        fetched = fetched_once[0] if fetched_once else await self._fetch(platform, event)
        record = reaction_json(event) | {
            "fetched": fetched_json(fetched) if fetched is not None else None,
            "filed_at": utcnow().isoformat(),
        }
        await self._spool.keep(REPORT_RECORD, record)
        if self._config.moderation.acknowledge_reporter:
            await self._tell(platform, event, self._config.moderation.acknowledgement)
        return FilingResult("kept")

    async def replay(self, data: dict[str, Any]) -> None:
        """File a report kept during a database outage, dated when it was made; a repeat files nothing."""
        event = reaction_from_json(data)
        fetched = fetched_from_json(data["fetched"]) if data.get("fetched") else None
        at = datetime.fromisoformat(data["filed_at"])
        async with self._sessions() as session:
            key, duplicate = await self._key(session, event)
        if duplicate:
            return
        result = await self._file_retrying(event, key, fetched, at=at)
        log.info(
            "kept flag on %s by %s: %s (case %s)",
            event.target.key,
            event.reactor.user_id,
            result.outcome,
            result.case_id,
        )

    async def _key(self, session: AsyncSession, event: ReactionAdded) -> tuple[str, bool]:
        """The case key of the flagged message, and whether this reporter already reported it."""
        answer = await answer_for_message(session, event.target)
        # Every part of a split answer is one message to report: the case is keyed by the answer.
        key = answer.answer_key if answer is not None and answer.answer_key else event.target.key
        return key, await self._already_reported(session, key, event.reactor)

    async def _file_retrying(
        self, event: ReactionAdded, key: str, fetched: FetchedMessage | None, *, at: datetime | None = None
    ) -> FilingResult:
        for attempt in range(FILING_ATTEMPTS):
            try:
                return await self._file_once(event, key, fetched, at=at)
            except _Duplicate:
                return FilingResult("duplicate")
            except IntegrityError:
                # Another handler or process opened this message's case between our read and insert.
                if attempt == FILING_ATTEMPTS - 1:
                    raise
        return FilingResult("duplicate")

    async def _already_reported(self, session: AsyncSession, key: str, reporter: Actor) -> bool:
        found = await session.scalar(
            select(Report.id).where(
                Report.message_key == key,
                Report.reporter_platform == reporter.platform,
                Report.reporter_id == reporter.user_id,
            )
        )
        return found is not None

    async def _fetch(self, platform: Platform, event: ReactionAdded) -> FetchedMessage | None:
        try:
            # Platforms hand back text as members wrote it: NUL and lone surrogates would fail the insert.
            return clean_fetched(await platform.fetch_message(event.target))
        except (PlatformError, OSError) as e:
            # The report still counts: the evidence then comes from what the bot itself knows.
            log.warning("could not read flagged message %s: %s", event.target.key, e)
            return None

    async def _file_once(
        self, event: ReactionAdded, key: str, fetched: FetchedMessage | None, *, at: datetime | None = None
    ) -> FilingResult:
        reporter = event.reactor
        at = at or utcnow()
        async with self._sessions() as session, session.begin():
            answer = await answer_for_message(session, event.target)
            case = await session.scalar(select(Case).where(Case.message_key == key))
            if case is None:
                case = self._new_case(event, key, fetched, answer)
                case.opened_at = at
                session.add(case)
                await session.flush()
                assert case.id is not None
                session.add(self._evidence(case.id, fetched, answer))
            case_id = case.id
            assert case_id is not None
            weight = await reporter_weight(session, reporter)
            report = Report(
                case_id=case_id,
                message_key=key,
                reporter_platform=reporter.platform,
                reporter_id=reporter.user_id,
                reporter_name=reporter.display_name,
                weight=weight,
                snapshot=fetched.text if fetched is not None else None,
                created_at=at,
            )
            session.add(report)
            try:
                await session.flush()
            except IntegrityError:
                raise _Duplicate from None
            await session.execute(
                update(Case)
                .where(col(Case.id) == case_id)
                .values(
                    reporters=Case.reporters + 1,
                    score=Case.score + weight,
                    revision=Case.revision + 1,
                    dirty=True,
                )
            )
            await session.refresh(case)
            hid = await self._thresholds(session, case, answer)
            audit(
                session,
                actor=reporter,
                action="report.filed",
                case_id=case_id,
                scope=case.scope,
                note=f"report #{report.id}; {case.reporters} reporter(s)",
                detail={"report_id": report.id, "message_key": key, "reporters": case.reporters},
                at=at,
            )
            return FilingResult("filed", case_id, case.reporters, hid)

    def _new_case(
        self, event: ReactionAdded, key: str, fetched: FetchedMessage | None, answer: BotAnswer | None
    ) -> Case:
        place = event.target.place
        scope: str | None = answer.scope if answer is not None else None
        if scope is None:
            bound = self._scopes.bound_to(place)
            scope = bound.name if bound is not None else None
        author_id = fetched.author.user_id if fetched is not None else (event.target_author_id or "")
        return Case(
            message_key=key,
            platform=place.platform,
            workspace=place.workspace,
            channel=place.channel,
            thread=place.thread,
            message_id=key.rsplit(":", 1)[1],
            is_direct=place.is_direct,
            author_id=author_id,
            author_is_bot=answer is not None or (fetched is not None and fetched.author.is_bot),
            scope=scope,
            answer_id=answer.id if answer is not None else None,
            revision=0,
        )

    @staticmethod
    def _evidence(case_id: int, fetched: FetchedMessage | None, answer: BotAnswer | None) -> CaseEvidence:
        text = fetched.text if fetched is not None else (answer.answer if answer is not None else "")
        return CaseEvidence(
            case_id=case_id,
            fetched=fetched is not None,
            text=text,
            author_name=fetched.author.label if fetched is not None else "",
            sent_at=fetched.sent_at if fetched is not None else (answer.created_at if answer is not None else None),
            permalink=(fetched.permalink or "") if fetched is not None else "",
            provenance=provenance(answer) if answer is not None else None,
        )

    async def _thresholds(self, session: AsyncSession, case: Case, answer: BotAnswer | None) -> bool:
        """Hide a bot answer at the hide threshold and escalate at the reporter threshold; True if hidden now."""
        cfg = self._config.moderation
        hid = False
        if answer is not None and case.reporters >= cfg.hide_threshold:
            flipped = await session.execute(
                update(BotAnswer)
                .where(col(BotAnswer.id) == answer.id, col(BotAnswer.hidden).is_(False))
                .values(hidden=True)
            )
            if rowcount(flipped):
                hid = True
                await session.execute(
                    update(Case).where(col(Case.id) == case.id).values(urgent=True, hide_pending=True, dirty=True)
                )
                audit(
                    session,
                    actor=SYSTEM,
                    action="answer.hidden",
                    case_id=case.id,
                    scope=case.scope,
                    note=f"{case.reporters} reporters reached the hide threshold ({cfg.hide_threshold})",
                    detail={"answer_id": answer.id},
                )
        if case.reporters >= cfg.escalate_reporters and case.state != CaseState.RESOLVED:
            escalated = await session.execute(
                update(Case)
                .where(col(Case.id) == case.id, col(Case.escalated).is_(False))
                .values(
                    escalated=True,
                    urgent=True,
                    ping_pending=True,
                    escalation_reason=f"{case.reporters} reporters",
                    dirty=True,
                )
            )
            if rowcount(escalated):
                audit(
                    session,
                    actor=SYSTEM,
                    action="case.escalated",
                    case_id=case.id,
                    scope=case.scope,
                    note=f"{case.reporters} reporters reached the escalation threshold ({cfg.escalate_reporters})",
                )
        return hid

    async def link_late_answers(self, *, limit: int = 100) -> int:
        """Give cases filed on a bot answer while it was still streaming the answer's provenance.

        An answer is recorded when it finishes; a flag on its first message before then opens a case that
        knows only the message. Once the answer is recorded, the case learns it (question, scope, passages,
        model) and its card is brought up to date on the next routing run. Flags that reached the hide
        threshold while the answer streamed hide it now (the router edits every part). Idempotent across
        processes.
        """
        linked = 0
        async with self._sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(Case.id, BotAnswerPart.answer_id)
                    .join(BotAnswerPart, col(BotAnswerPart.message_key) == col(Case.message_key))
                    .where(col(Case.answer_id).is_(None), col(Case.author_is_bot).is_(True))
                    .order_by(col(Case.id))
                    .limit(limit)
                )
            ).all()
            for case_id, answer_id in rows:
                answer = await session.get(BotAnswer, answer_id)
                if answer is None:
                    continue
                changed = await session.execute(
                    update(Case)
                    .where(col(Case.id) == case_id, col(Case.answer_id).is_(None))
                    .values(
                        answer_id=answer.id,
                        scope=func.coalesce(Case.scope, answer.scope),
                        revision=Case.revision + 1,
                        dirty=True,
                    )
                )
                if not rowcount(changed):
                    continue
                evidence = await session.get(CaseEvidence, case_id)
                if evidence is not None:
                    evidence.provenance = provenance(answer)
                    evidence.text = evidence.text or answer.answer
                case = await session.get(Case, case_id)
                if case is not None:
                    await session.refresh(case)
                    if answer.answer_key and case.message_key != answer.answer_key:
                        # Flagged on a later part: the answer's other flags must find this case.
                        case = await self._onto_answer_key(session, case, answer.answer_key)
                    await self._thresholds(session, case, answer)
                linked += 1
                log.info("case %s: linked to answer %s, recorded after the flag", case_id, answer.id)
        return linked

    async def _onto_answer_key(self, session: AsyncSession, case: Case, answer_key: str) -> Case:
        """Key a case filed on a later part of an answer by the answer, as if the flag had come after it.

        With no case on the answer yet, the case is re-keyed. With one (the first part was flagged too while
        the answer streamed), this case's reports move to it, one per reporter, and this case is closed as
        merged: the moderator sees one card for the answer. Returns the case that now holds the reports.
        """
        assert case.id is not None
        target = await session.scalar(select(Case).where(Case.message_key == answer_key))
        if target is None:
            await session.execute(update(Report).where(col(Report.case_id) == case.id).values(message_key=answer_key))
            await session.execute(
                update(Case)
                .where(col(Case.id) == case.id)
                .values(message_key=answer_key, message_id=answer_key.rsplit(":", 1)[1])
            )
            await session.refresh(case)
            return case
        assert target.id is not None
        reports = (await session.scalars(select(Report).where(Report.case_id == case.id))).all()
        moved = 0
        for report in reports:
            reporter = Actor(platform=report.reporter_platform, user_id=report.reporter_id)
            if await self._already_reported(session, answer_key, reporter):
                await session.delete(report)
            else:
                report.case_id, report.message_key = target.id, answer_key
                moved += 1
        await session.flush()
        totals = (
            await session.execute(
                select(func.count(col(Report.id)), func.coalesce(func.sum(Report.weight), 0.0)).where(
                    Report.case_id == target.id
                )
            )
        ).one()
        await session.execute(
            update(Case)
            .where(col(Case.id) == target.id)
            .values(reporters=totals[0], score=totals[1], revision=Case.revision + 1, dirty=True)
        )
        now = utcnow()
        await session.execute(
            update(Case)
            .where(col(Case.id) == case.id)
            .values(
                state=CaseState.RESOLVED,
                resolution="merged",
                resolved_by_id=SYSTEM.user_id,
                resolved_by_name=SYSTEM.display_name,
                resolved_at=now,
                reporters=0,
                score=0.0,
                urgent=False,
                hide_pending=False,
                ping_pending=False,
                revision=Case.revision + 1,
                dirty=True,
            )
        )
        audit(
            session,
            actor=SYSTEM,
            action="case.merged",
            case_id=case.id,
            scope=case.scope,
            note=f"flags on a later part of answer merged into case {target.id} ({moved} report(s) moved)",
            detail={"into": target.id, "moved": moved},
            at=now,
        )
        await session.refresh(target)
        log.info("case %s: merged into case %s, which holds the answer's flags", case.id, target.id)
        return target

    async def hide_answer(self, platform: Platform, *, case_id: int) -> bool:
        """Edit every part of a hidden answer to the hidden note; True when done (else the router retries)."""
        async with self._sessions() as session:
            case = await session.get(Case, case_id)
            if case is None or case.answer_id is None or not case.hide_pending:
                return True
            answer = await session.get(BotAnswer, case.answer_id)
            if answer is None:
                return True
            refs = await answer_refs(session, answer)
        try:
            await edit_all(platform, refs, self._config.moderation.hidden_note)
        except (PlatformError, OSError) as e:
            log.warning("could not hide answer %s of case %s yet: %s", case.answer_id, case_id, e)
            return False
        async with self._sessions() as session, session.begin():
            await session.execute(update(Case).where(col(Case.id) == case_id).values(hide_pending=False))
        return True

    async def _tell(self, platform: Platform, event: ReactionAdded, text: str) -> None:
        try:
            await platform.reply_privately(Reply(event.target.place, event.reactor.user_id, text))
        except (PlatformError, OSError) as e:
            log.warning("could not tell %s about their report: %s", event.reactor.user_id, e)
