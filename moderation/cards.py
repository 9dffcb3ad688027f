"""Review cards: what moderators see for a case, and which buttons it carries (case id + action only)."""

from __future__ import annotations

from typing import Any

from bot.events import CardButton, Place, ReviewCard
from bot.gate import learned_block
from moderation.models import Case, CaseEvidence, CaseState

#: Longest evidence text shown on a card; the full record is in `scopebot case export`.
CARD_TEXT_CHARS = 1500

MEMBER_BUTTONS = (
    CardButton("claim", "Claim"),
    CardButton("dismiss", "Dismiss"),
    CardButton("remove", "Remove message", "danger"),
    CardButton("warn", "Warn author"),
    CardButton("timeout", "Time out author", "danger"),
    CardButton("add_word", "Add phrase to word list"),
    CardButton("escalate", "Escalate"),
)
ANSWER_BUTTONS = (
    CardButton("claim", "Claim"),
    CardButton("dismiss", "Answer is fine"),
    CardButton("retract", "Retract: wrong", "danger"),
    CardButton("off_scope", "Retract: off-scope", "danger"),
    CardButton("unsafe", "Retract: unsafe", "danger"),
    CardButton("add_word", "Add phrase to word list"),
    CardButton("escalate", "Escalate"),
)
#: A flagged refusal: the member may be telling the moderators it should have been answered.
REFUSAL_BUTTONS = (
    CardButton("claim", "Claim"),
    CardButton("dismiss", "Refusal is right"),
    CardButton("missed", "Should have answered", "primary"),
    CardButton("escalate", "Escalate"),
)
#: A flagged block by the gate's learned screens, which an example overrules.
LEARNED_BLOCK_BUTTONS = (
    CardButton("claim", "Claim"),
    CardButton("dismiss", "Block is right"),
    CardButton("missed", "Should have answered", "primary"),
    CardButton("escalate", "Escalate"),
)
#: A flagged block by a rule or a word list.
BLOCK_BUTTONS = (
    CardButton("claim", "Claim"),
    CardButton("dismiss", "Block is right"),
    CardButton("escalate", "Escalate"),
)


def _short(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def status_line(case: Case) -> str:
    """The case's state as moderators read it."""
    if case.state == CaseState.RESOLVED and case.resolution == "merged":
        return "merged: these flags are on another card, the case of the whole answer"
    if case.state == CaseState.RESOLVED:
        return f"resolved: {case.resolution} by {case.resolved_by_name or case.resolved_by_id}"
    if case.claimed_by_id:
        return f"claimed by {case.claimed_by_name or case.claimed_by_id}"
    return case.state


def build_card(
    case: Case,
    evidence: CaseEvidence | None,
    *,
    place: Place,
    mention: str = "",
    done: tuple[str, ...] = (),
) -> ReviewCard:
    """The card for `case` in `place`; resolved cases keep their evidence but lose their buttons."""
    assert case.id is not None
    kind = "Bot answer" if case.answer_id is not None else "Message"
    where = "a direct message" if case.is_direct else f"#{case.channel}"
    fields: list[tuple[str, str]] = [
        ("Reporters", f"{case.reporters} (score {case.score:.1f})"),
        ("Channel", where),
    ]
    if case.scope:
        fields.append(("Scope", case.scope))
    body = ""
    if evidence is None:
        body = "(evidence purged after the retention period)" if case.evidence_purged_at else ""
    else:
        fields.append(("Author", evidence.author_name or case.author_id or "unknown"))
        if evidence.sent_at is not None:
            fields.append(("Posted", evidence.sent_at.strftime("%Y-%m-%d %H:%M UTC")))
        if evidence.permalink:
            fields.append(("Link", evidence.permalink))
        body = _evidence_body(evidence)
    if case.escalated:
        fields.append(("Escalated", case.escalation_reason or "yes"))
    if done:
        fields.append(("Done", ", ".join(done)))
    fields.append(("Status", status_line(case)))
    buttons: tuple[CardButton, ...] = ()
    if case.state != CaseState.RESOLVED:
        buttons = ANSWER_BUTTONS if case.answer_id is not None else MEMBER_BUTTONS
        prov = (evidence.provenance or {}) if evidence is not None else {}
        if case.answer_id is not None and prov.get("verdict") == "refuse":
            buttons = REFUSAL_BUTTONS
        elif case.answer_id is not None and prov.get("verdict") == "block":
            buttons = LEARNED_BLOCK_BUTTONS if learned_block(str(prov.get("gate_rule", ""))) else BLOCK_BUTTONS
    return ReviewCard(
        case_id=case.id,
        place=place,
        title=f"Case #{case.id}: {kind} reported in {where}",
        fields=tuple(fields),
        body=body,
        buttons=buttons,
        urgent=case.urgent and case.state != CaseState.RESOLVED,
        status=status_line(case),
        mention=mention if case.escalated and case.state != CaseState.RESOLVED else "",
    )


def _evidence_body(evidence: CaseEvidence) -> str:
    prov: dict[str, Any] | None = evidence.provenance
    text = _short(evidence.text, CARD_TEXT_CHARS) or "(no text)"
    if not evidence.fetched:
        text += "\n(the message was already gone when it was reported)"
    if prov is None:
        return text
    lines = [
        f"Question: {_short(str(prov.get('question', '')), 400)}",
        f"Answer: {_short(str(prov.get('answer', '')) or text, CARD_TEXT_CHARS)}",
        f"Gate: {prov.get('verdict', '')} ({_short(str(prov.get('reason', '')), 200)})",
        f"Model: {prov.get('model', '')}, config {prov.get('config_version', '')}",
    ]
    sources = sorted({str(p.get("source", "")) for p in prov.get("passages", []) if isinstance(p, dict)})
    if sources:
        lines.append(f"Sources: {', '.join(sources)}")
    return "\n".join(lines)
