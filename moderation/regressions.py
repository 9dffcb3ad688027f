"""Regression prompts: questions whose replies moderators judged a bot fault, for `scopebot eval` to replay.

This is the boundary with the scope gate's evaluation: `regression_prompts()` lists them,
`regression_rows()` gives them in the shape `bot.gate.evaluate.regression_examples()` takes, and
`replay_regressions()` runs each through any `Gate`, saying whether the fault would recur.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from bot.config import ScopeConfig
from bot.gate import Gate
from moderation.models import RegressionExample

#: What the gate should now say, per fault kind; None: the gate answering is right, the answer must be checked.
EXPECTED = {"off_scope": "refuse", "unsafe": "block", "wrong": None, "missed": "answer"}


@dataclass(frozen=True, slots=True)
class RegressionPrompt:
    """One stored question and why it is there."""

    case_id: int
    scope: str
    kind: str
    question: str

    @property
    def expected(self) -> str | None:
        """The verdict the gate should give (`refuse`, `block`, `answer`), or None when only the answer was wrong."""
        return EXPECTED.get(self.kind)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """How the gate handles a regression prompt now."""

    prompt: RegressionPrompt
    verdict: str
    reason: str

    @property
    def passed(self) -> bool | None:
        """True when the gate no longer answers an off-scope or unsafe question, or now answers a question it
        wrongly refused; None for wrong answers."""
        if self.prompt.expected is None:
            return None
        if self.prompt.expected == "answer":
            return self.verdict == "answer"
        return self.verdict != "answer"


async def regression_prompts(
    sessions: async_sessionmaker[AsyncSession], *, scope: str | None = None
) -> list[RegressionPrompt]:
    """Every stored regression prompt, oldest first, optionally for one scope."""
    q = select(RegressionExample).order_by(col(RegressionExample.id))
    if scope is not None:
        q = q.where(RegressionExample.scope == scope)
    async with sessions() as session:
        rows = (await session.execute(q)).scalars().all()
    return [RegressionPrompt(r.case_id, r.scope, r.kind, r.question) for r in rows]


async def regression_rows(sessions: async_sessionmaker[AsyncSession], *, scope: str) -> list[tuple[str, str, str]]:
    """(id, question, expected verdict) rows for `bot.gate.evaluate.regression_examples`.

    A wrong answer to an in-scope question still expects `answer`: the gate was right to let it through.
    """
    return [
        (f"case-{p.case_id}", p.question, p.expected or "answer")
        for p in await regression_prompts(sessions, scope=scope)
    ]


async def replay_regressions(
    sessions: async_sessionmaker[AsyncSession],
    *,
    gate: Gate,
    scope_config: Callable[[str], ScopeConfig],
    scope: str | None = None,
) -> list[ReplayResult]:
    """Screen each regression prompt with `gate`; prompts of scopes no longer configured are skipped."""
    results = []
    for prompt in await regression_prompts(sessions, scope=scope):
        try:
            cfg = scope_config(prompt.scope)
        except KeyError:
            continue
        verdict = await gate.screen_prompt(cfg, prompt.question)
        results.append(ReplayResult(prompt, verdict.verdict, verdict.reason))
    return results
