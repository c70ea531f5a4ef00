"""Expected signals against observed ones.

Each expectation stands for `count` distinct signals; a signal can satisfy one
expectation only. The pairing is a maximum bipartite matching, so a broad
expectation (`rule: X`) never steals the signal a narrow one (`rule: X,
trace: a`) needs. Expectations left short are missing signals; signals left
over are unexpected. An expectation of `count: 0` says no signal like it may
fire: any that does is forbidden, even one a broader expectation takes. Any of
these fails the case.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .inline import parse_duration
from .spec import Expectation

Signal = dict[str, Any]


@dataclass
class Row:
    """One expectation with the signals that satisfied it and, when short, the near misses."""

    expectation: Expectation
    signals: list[Signal] = field(default_factory=list)
    near: list[Signal] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    forbidden: list[Signal] = field(default_factory=list)
    """For `count: 0`: the signals like it that fired."""

    @property
    def missing(self) -> int:
        return self.expectation.count - len(self.signals)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and not self.forbidden


@dataclass
class Match:
    rows: list[Row]
    unexpected: list[Signal]

    @property
    def ok(self) -> bool:
        return not self.unexpected and all(r.ok for r in self.rows)

    @property
    def missing(self) -> int:
        return sum(r.missing for r in self.rows)

    @property
    def forbidden(self) -> int:
        return sum(len(r.forbidden) for r in self.rows)

    def summary(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"{self.missing} missing")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected")
        if self.forbidden:
            parts.append(f"{self.forbidden} forbidden")
        total = self.missing + len(self.unexpected) + self.forbidden
        return ", ".join(parts) + (" signal" if total == 1 else " signals")


def same_value(expected: Any, actual: Any) -> bool:
    """JSON values equal as a test author means them: 1 == 1.0, `0.02s` == `20ms`, never true == 1."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return expected == actual
    if isinstance(expected, str) and isinstance(actual, str):
        if expected == actual:
            return True
        a, b = parse_duration(expected), parse_duration(actual)
        return a is not None and a == b
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        return expected.keys() == actual.keys() and all(same_value(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(same_value(x, y) for x, y in zip(expected, actual, strict=True))
    return bool(expected is None and actual is None)


def mismatch(e: Expectation, signal: Signal, labels: Mapping[str, str]) -> str | None:
    """Why `signal` does not satisfy `e`, in a few words; None when it does."""
    if signal.get("rule") != e.rule:
        return f"rule is {signal.get('rule')}"
    trace_id = signal.get("trace_id")
    if e.trace_id is not None and trace_id != e.trace_id:
        return f"trace_id is {trace_id}"
    if e.trace is not None and trace_id != labels.get(e.trace):
        label = next((k for k, v in labels.items() if v == trace_id), None)
        return f"trace is {label!r}" if label is not None else f"trace_id is {trace_id}"
    if e.observed:
        observed = signal.get("observed") or {}
        for key, want in e.observed.items():
            if key not in observed:
                return f"observed has no `{key}`"
            if not same_value(want, observed[key]):
                return f"observed.{key} is {json.dumps(observed[key])}, not {json.dumps(want)}"
    return None


def match_signals(expectations: Sequence[Expectation], signals: Sequence[Signal], labels: Mapping[str, str]) -> Match:
    slots = [i for i, e in enumerate(expectations) for _ in range(e.count)]
    fits = [[j for j, s in enumerate(signals) if mismatch(expectations[i], s, labels) is None] for i in slots]
    owner: dict[int, int] = {}  # signal index -> slot index

    def augment(slot: int, seen: set[int]) -> bool:
        for j in fits[slot]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = slot
                return True
        return False

    for slot in range(len(slots)):
        augment(slot, set())
    rows = [Row(e) for e in expectations]
    for row in rows:
        if row.expectation.count == 0:
            row.forbidden = [s for s in signals if mismatch(row.expectation, s, labels) is None]
    for j in sorted(owner):
        rows[slots[owner[j]]].signals.append(signals[j])
    unexpected = [s for j, s in enumerate(signals) if j not in owner]
    for row in rows:
        if row.ok or row.forbidden:
            continue
        for s in unexpected:
            if s.get("rule") == row.expectation.rule:
                row.near.append(s)
                row.reasons.append(mismatch(row.expectation, s, labels) or "")
    return Match(rows, unexpected)
