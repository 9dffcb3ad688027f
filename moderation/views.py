"""Reading cases and the audit log back, as text lines and as JSON-ready dicts (CLI and `/scopebot`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from moderation.audit import AuditEntry
from moderation.cards import status_line
from moderation.models import Case, CaseAction, CaseEvidence, CaseState, RegressionExample, Report


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def audit_dict(entry: AuditEntry) -> dict[str, Any]:
    """One audit entry: who, what, when, which case."""
    return {
        "id": entry.id,
        "at": _iso(entry.at),
        "who": {"platform": entry.actor_platform, "id": entry.actor_id, "name": entry.actor_name},
        "action": entry.action,
        "case_id": entry.case_id,
        "scope": entry.scope,
        "note": entry.note,
        "detail": entry.detail,
    }


def audit_line(entry: AuditEntry) -> str:
    """One audit entry as a line."""
    who = entry.actor_name or entry.actor_id
    case = f" case #{entry.case_id}" if entry.case_id is not None else ""
    return f"{entry.at:%Y-%m-%d %H:%M:%S} {entry.action:<20} {who} ({entry.actor_platform}){case}: {entry.note}"


def case_line(case: Case) -> str:
    """One case as a line for lists."""
    flag = "!" if case.urgent and case.state != CaseState.RESOLVED else " "
    kind = "answer " if case.answer_id is not None else "message"
    return (
        f"{flag}#{case.id:<5} {kind} {case.platform}/#{case.channel:<14} reporters={case.reporters:<3} "
        f"{status_line(case)} (opened {case.opened_at:%Y-%m-%d %H:%M})"
    )


async def list_cases(session: AsyncSession, *, state: str = "unresolved", limit: int = 50) -> list[Case]:
    """Cases, most urgent and newest first; `state` is open, routed, resolved, unresolved or all."""
    q = select(Case)
    if state == "unresolved":
        q = q.where(Case.state != CaseState.RESOLVED)
    elif state != "all":
        q = q.where(Case.state == state)
    q = q.order_by(col(Case.urgent).desc(), col(Case.id).desc()).limit(limit)
    return list((await session.execute(q)).scalars())


async def case_record(session: AsyncSession, case_id: int) -> dict[str, Any] | None:
    """Everything about a case: state, evidence and provenance, reporters, actions, audit trail."""
    case = await session.get(Case, case_id)
    if case is None:
        return None
    evidence = await session.get(CaseEvidence, case_id)
    reports = (
        await session.execute(select(Report).where(Report.case_id == case_id).order_by(col(Report.id)))
    ).scalars()
    actions = (
        await session.execute(select(CaseAction).where(CaseAction.case_id == case_id).order_by(col(CaseAction.id)))
    ).scalars()
    trail = (
        await session.execute(
            select(AuditEntry).where(AuditEntry.case_id == case_id).order_by(col(AuditEntry.at), col(AuditEntry.id))
        )
    ).scalars()
    regression = await session.scalar(select(RegressionExample).where(RegressionExample.case_id == case_id))
    card = case.card_ref
    return {
        "case": {
            "id": case.id,
            "state": case.state,
            "status": status_line(case),
            "message": case.message_key,
            "platform": case.platform,
            "workspace": case.workspace,
            "channel": case.channel,
            "thread": case.thread,
            "author_id": case.author_id,
            "scope": case.scope,
            "answer_id": case.answer_id,
            "urgent": case.urgent,
            "escalated": case.escalated,
            "escalation_reason": case.escalation_reason,
            "reporters": case.reporters,
            "score": case.score,
            "card": card.key if card is not None else None,
            "opened_at": _iso(case.opened_at),
            "routed_at": _iso(case.routed_at),
            "claimed_by": case.claimed_by_id,
            "resolution": case.resolution,
            "resolved_by": case.resolved_by_id,
            "resolved_at": _iso(case.resolved_at),
            "evidence_purged_at": _iso(case.evidence_purged_at),
        },
        "evidence": None
        if evidence is None
        else {
            "text": evidence.text,
            "fetched": evidence.fetched,
            "author_name": evidence.author_name,
            "sent_at": _iso(evidence.sent_at),
            "permalink": evidence.permalink,
            "captured_at": _iso(evidence.captured_at),
            "provenance": evidence.provenance,
        },
        "reports": [
            {
                "id": r.id,
                "reporter": {"platform": r.reporter_platform, "id": r.reporter_id, "name": r.reporter_name},
                "at": _iso(r.created_at),
                "weight": r.weight,
                "snapshot": r.snapshot,
            }
            for r in reports
        ],
        "actions": [
            {
                "id": a.id,
                "action": a.action,
                "by": {"platform": a.actor_platform, "id": a.actor_id, "name": a.actor_name},
                "argument": a.argument,
                "at": _iso(a.created_at),
                "status": a.status,
                "error": a.error,
                "done_at": _iso(a.done_at),
            }
            for a in actions
        ],
        "regression_example": None
        if regression is None
        else {"scope": regression.scope, "kind": regression.kind, "question": regression.question},
        "audit": [audit_dict(e) for e in trail],
    }


def case_text(record: dict[str, Any]) -> str:
    """A case record as readable text."""
    c = record["case"]
    lines = [
        f"Case #{c['id']} — {c['status']}",
        f"  message   {c['message']} (author {c['author_id'] or 'unknown'})",
        f"  scope     {c['scope'] or '-'}   reporters {c['reporters']} (score {c['score']:.1f})"
        + ("   URGENT" if c["urgent"] else ""),
        f"  opened    {c['opened_at']}   routed {c['routed_at'] or '-'}   card {c['card'] or '-'}",
    ]
    ev = record["evidence"]
    if ev is None:
        lines.append("  evidence  purged" if c["evidence_purged_at"] else "  evidence  none")
    else:
        lines.append(f"  evidence  by {ev['author_name'] or '?'} at {ev['sent_at'] or '?'} {ev['permalink']}")
        lines.extend(f"    | {t}" for t in (ev["text"] or "(no text)").splitlines())
        prov = ev["provenance"]
        if prov:
            lines.append(f"  question  {prov.get('question', '')}")
            lines.append(f"  gate      {prov.get('verdict')} — {prov.get('reason')}")
            lines.append(
                f"  model     {prov.get('model')} {prov.get('model_params')} config {prov.get('config_version')}"
            )
    lines.append("  reporters " + ", ".join(r["reporter"]["name"] or r["reporter"]["id"] for r in record["reports"]))
    for a in record["actions"]:
        lines.append(f"  action    {a['at']} {a['action']} by {a['by']['name'] or a['by']['id']} [{a['status']}]")
    return "\n".join(lines)
