"""Measuring a scope before deploying it: datasets of questions with expected verdicts, and their rates.

A dataset is JSON Lines, one object per question: `{"id": …, "text": …, "expected": "answer"|"refuse"|
"block"}` with optional `"scope"` (overrides `--scope`) and `"kind"` (a free label the report groups by,
e.g. `off_topic`, `wrapped`). An expected `block` is met by `block` or `refuse`: what matters for a
harmful prompt is that it is not answered.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config import Config
from bot.gate import GateResult
from bot.gate.gate import ScopeGate

VERDICTS = ("answer", "refuse", "block")


class DatasetError(Exception):
    """A dataset line is unusable; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Example:
    """One question with the verdict it should get."""

    id: str
    text: str
    expected: str
    scope: str | None = None
    kind: str = ""


@dataclass
class Report:
    """Rates per expected verdict and per kind, and what went wrong."""

    total: int = 0
    correct: int = 0
    by_expected: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    by_kind: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    misses: list[tuple[Example, GateResult]] = field(default_factory=list)

    def add(self, example: Example, result: GateResult) -> None:
        """Count one outcome."""
        ok = passes(example.expected, result.verdict)
        self.total += 1
        self.correct += ok
        for table, key in ((self.by_expected, example.expected), (self.by_kind, example.kind or example.expected)):
            table[key][0] += ok
            table[key][1] += 1
        if not ok:
            self.misses.append((example, result))

    def lines(self) -> list[str]:
        """The human-readable report."""
        out = [f"overall: {self.correct}/{self.total} = {_pct(self.correct, self.total)}"]
        out += [f"expected {k}: {ok}/{n} = {_pct(ok, n)}" for k, (ok, n) in sorted(self.by_expected.items())]
        if any(k not in VERDICTS for k in self.by_kind):
            out += [f"  kind {k}: {ok}/{n} = {_pct(ok, n)}" for k, (ok, n) in sorted(self.by_kind.items())]
        if self.misses:
            out.append(f"misclassified ({len(self.misses)}):")
            for ex, res in self.misses:
                scope = f" [{res.scope}]"
                out.append(f"  {ex.id}{scope} expected {ex.expected}, got {res.verdict}: {ex.text!r} — {res.reason}")
        return out


def passes(expected: str, verdict: str) -> bool:
    """Whether a verdict meets the expectation (`block` is also met by `refuse`)."""
    return verdict == expected or (expected == "block" and verdict == "refuse")


def _pct(ok: int, n: int) -> str:
    return f"{100 * ok / n:.1f} %" if n else "n/a"


def text_rows(raw: str, *, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank JSONL line whose object has a "text" string.

    Raises `DatasetError` naming `name` and the line for anything else.
    """
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{name}:{n}: not valid JSON: {e.msg}") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise DatasetError(f'{name}:{n}: each line must be an object with a "text" string')
        yield n, row


def load_dataset(path: Path) -> list[Example]:
    """Read a JSONL dataset; raise `DatasetError` naming the line on a bad one."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror}") from None
    out = []
    for n, row in text_rows(raw, name=str(path)):
        expected = row.get("expected")
        if expected not in VERDICTS:
            raise DatasetError(f'{path}:{n}: "expected" must be one of {", ".join(VERDICTS)}, not {expected!r}')
        out.append(Example(str(row.get("id", n)), row["text"], expected, row.get("scope"), str(row.get("kind", ""))))
    return out


def evaluate(gate: ScopeGate, config: Config, *, scope: str, examples: Iterable[Example]) -> Report:
    """Run every example through the gate (batched per scope) and count.

    `examples` may mix a dataset with a scope's stored regression examples (see `regression_examples`).
    """
    by_scope: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_scope[ex.scope or scope].append(ex)
    report = Report()
    for name, group in by_scope.items():
        try:
            scope_config = config.scope(name)
        except KeyError:
            raise DatasetError(f"scope {name!r} is not in {config.source}") from None
        for ex, result in zip(group, gate.check(scope_config, [e.text for e in group]), strict=True):
            report.add(ex, result)
    return report


def regression_examples(rows: Sequence[tuple[str, str, str]], *, scope: str) -> list[Example]:
    """Examples from stored (id, text, expected) rows, e.g. moderators' regression cases for a scope."""
    return [Example(f"stored:{i}", text, expected, scope, "regression") for i, text, expected in rows]
