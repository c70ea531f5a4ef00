"""The conformance table (tests/conformance/cases.yaml) and how to compare signals with it.

Every evaluation path (fluo eval, fluo test, the runtime) runs these cases; they must agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CASES_FILE = Path(__file__).resolve().parent / "conformance" / "cases.yaml"
RULE_FILE_NAME = "case.fluo"


@dataclass
class Case:
    name: str
    rules_text: str
    trace_paths: list[str]
    expected_signals: list[dict[str, Any]] = field(default_factory=list)
    error_code: str | None = None

    def trace_files(self) -> list[Path]:
        return [ROOT / p for p in self.trace_paths]

    @property
    def id(self) -> str:
        return self.name.replace(" ", "_").replace("/", "_")


def load_cases() -> list[Case]:
    raw = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
    return [
        Case(
            name=c["name"],
            rules_text=c["rules"],
            trace_paths=list(c["traces"]),
            expected_signals=list(c.get("signals") or []),
            error_code=c.get("error"),
        )
        for c in raw
    ]


def _expand(expected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in expected:
        n = int(e.get("count", 1))
        out.extend([{k: v for k, v in e.items() if k != "count"}] * n)
    return out


def _matches(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    if expected["rule"] != actual.get("rule"):
        return False
    if "trace_id" in expected and expected["trace_id"] != actual.get("trace_id"):
        return False
    for key in ("window_start", "window_end"):
        if key in expected and expected[key] != actual.get(key):
            return False
    for key in ("span_ids", "trace_ids"):  # in their one order, whatever order the spans came in
        if key in expected and expected[key] != actual.get(key, []):
            return False
    if "observed" in expected:
        observed = actual.get("observed") or {}
        return all(observed.get(k) == v for k, v in expected["observed"].items())
    return True


def compare_signals(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    """Differences between expected and actual signals (JSON dicts); empty when they agree.

    Each expected entry must match a distinct actual signal, and no actual signal may be left over;
    an entry with `count: 0` forbids every signal it matches.
    """
    problems: list[str] = []
    for e in expected:
        if int(e.get("count", 1)) == 0:
            plain = {k: v for k, v in e.items() if k != "count"}
            problems.extend(f"forbidden signal {a}" for a in actual if _matches(plain, a))
    left = list(actual)
    for e in _expand(expected):
        hit = next((a for a in left if _matches(e, a)), None)
        if hit is None:
            problems.append(f"missing signal {e}")
        else:
            left.remove(hit)
    for a in left:
        where = a.get("trace_id") or a.get("window_start")
        problems.append(f"unexpected signal rule={a.get('rule')} at {where} observed={a.get('observed')}")
    return problems
