"""Queue statistics for `scopebot stats`: open cases, time to resolution, actions per moderator, reporter accuracy."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from moderation.models import Case, CaseAction, CaseState, Report


async def queue_stats(session: AsyncSession) -> dict[str, Any]:
    """Everything `scopebot stats` shows, as plain data."""
    by_state = dict((await session.execute(select(Case.state, func.count()).group_by(col(Case.state)))).all())
    urgent = await session.scalar(
        select(func.count()).select_from(Case).where(Case.state != CaseState.RESOLVED, col(Case.urgent).is_(True))
    )
    spans = (
        await session.execute(
            select(Case.opened_at, Case.resolved_at).where(
                Case.state == CaseState.RESOLVED,
                col(Case.resolved_at).is_not(None),
                # A case merged into its answer's case was not reviewed: it would shorten the median.
                col(Case.resolution).is_distinct_from("merged"),
            )
        )
    ).all()
    minutes = [(done - opened).total_seconds() / 60 for opened, done in spans if done is not None]
    per_mod: dict[str, Counter[str]] = defaultdict(Counter)
    for actor, name, action in (
        await session.execute(select(CaseAction.actor_id, CaseAction.actor_name, CaseAction.action))
    ).all():
        per_mod[name or actor][action] += 1
    reporters: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    rows = (
        await session.execute(
            select(Report.reporter_id, Report.reporter_name, Case.resolution)
            .join(Case, col(Case.id) == col(Report.case_id))
            .where(Case.state == CaseState.RESOLVED)
        )
    ).all()
    for rid, name, resolution in rows:
        tally = reporters[name or rid]
        tally[0] += 1
        tally[1] += resolution != "dismiss"
    return {
        "open_cases": by_state.get(CaseState.OPEN.value, 0) + by_state.get(CaseState.ROUTED.value, 0),
        "by_state": {s.value: by_state.get(s.value, 0) for s in CaseState},
        "urgent_open": urgent or 0,
        "resolved": len(minutes),
        "median_minutes_to_resolution": round(statistics.median(minutes), 1) if minutes else None,
        "actions_per_moderator": {who: dict(c) for who, c in sorted(per_mod.items())},
        "reporter_accuracy": {
            who: {"resolved_reports": n, "upheld": up, "accuracy": round(up / n, 2)}
            for who, (n, up) in sorted(reporters.items(), key=lambda kv: (-kv[1][0], kv[0]))
        },
    }


def stats_text(stats: dict[str, Any]) -> str:
    """The statistics as readable text."""
    median = stats["median_minutes_to_resolution"]
    states = stats["by_state"]
    lines = [
        f"Open cases: {stats['open_cases']} ({states['open']} waiting for the router, {states['routed']} on "
        f"reviewer channels, {stats['urgent_open']} urgent)",
        f"Resolved cases: {stats['resolved']}; median time to resolution: "
        + (f"{median:g} min" if median is not None else "-"),
        "Actions per moderator:",
    ]
    for who, counts in stats["actions_per_moderator"].items():
        lines.append(f"  {who}: " + ", ".join(f"{a} {n}" for a, n in sorted(counts.items())))
    if not stats["actions_per_moderator"]:
        lines.append("  (none yet)")
    lines.append("Reporter accuracy (reports upheld / reports on resolved cases):")
    for who, r in stats["reporter_accuracy"].items():
        lines.append(f"  {who}: {r['upheld']}/{r['resolved_reports']} ({r['accuracy']:.0%})")
    if not stats["reporter_accuracy"]:
        lines.append("  (none yet)")
    return "\n".join(lines)
