"""Rule coverage: which rules some case ran, and which some case made fire.

The rules counted are those of every test file's `rules:` plus the `.fluo`
files found under the folders given to `fluo test`, so a rule file that no
test file names shows up as never run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fluo_lang.api import RuleSourceError, analyze, read_sources, rule_files
from fluo_lang.files import real_path
from fluo_lang.typecheck import CheckedRule

from .runner import ERROR, RunResult
from .spec import display_path

RuleKey = tuple[str, str]
"""A rule as coverage counts it: (resolved path of its file, id)."""


def rule_key(path: str, rule_id: str) -> RuleKey:
    return (str(real_path(path)), rule_id)


@dataclass(frozen=True)
class RuleRef:
    id: str
    path: str
    line: int
    key: RuleKey

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.id, "path": self.path, "line": self.line}


@dataclass
class Coverage:
    rules: list[RuleRef] = field(default_factory=list)
    ran: set[RuleKey] = field(default_factory=set)
    fired: set[RuleKey] = field(default_factory=set)
    unread: list[str] = field(default_factory=list)
    """Rule files below the folders given that could not be read, each as `cannot read FILE: why`:
    their rules are not counted."""
    invalid: list[RuleRef] = field(default_factory=list)
    """Rules below the folders given that do not typecheck, so cannot run: not counted either."""

    @property
    def never_ran(self) -> list[RuleRef]:
        return [r for r in self.rules if r.key not in self.ran]

    @property
    def never_fired(self) -> list[RuleRef]:
        return [r for r in self.rules if r.key in self.ran and r.key not in self.fired]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rules": len(self.rules),
            "ran": sum(1 for r in self.rules if r.key in self.ran),
            "fired": sum(1 for r in self.rules if r.key in self.fired),
            "never_fired": [r.to_json() for r in self.never_fired],
            "never_ran": [r.to_json() for r in self.never_ran],
        }
        if self.invalid:
            out["invalid"] = [r.to_json() for r in self.invalid]
        if self.unread:
            out["unread"] = self.unread
        return out


def _ref(rule: CheckedRule) -> RuleRef:
    return RuleRef(rule.id, display_path(Path(rule.path)), rule.rule.span.line + 1, rule_key(rule.path, rule.id))


def measure(result: RunResult, folders: Sequence[Path]) -> Coverage:
    """Coverage of one run. Rule files under `folders` that no test file names are checked one by one; their
    rules that do not typecheck are listed apart (`invalid`), as the files that cannot be read are."""
    cov = Coverage()
    known: dict[RuleKey, RuleRef] = {}
    invalid: dict[RuleKey, RuleRef] = {}
    analyses = [f.file.analysis for f in result.files if f.file.analysis is not None]
    for analysis in analyses:
        for rule in analysis.rules:
            if rule.enabled:
                ref = _ref(rule)
                known.setdefault(ref.key, ref)
    tested = {str(real_path(f.path)) for a in analyses for f in a.files}
    for folder in folders:
        if not folder.is_dir():
            continue
        try:
            found = [f for f in rule_files([folder]) if str(real_path(f)) not in tested]
        except RuleSourceError:  # no rule files in it
            continue
        for f in found:
            try:
                source = read_sources([f])[0]
            except RuleSourceError as exc:  # that file only: the folder's other rules still count
                cov.unread.append(str(exc))
                continue
            for rule in analyze([source]).rules:
                if rule.enabled:
                    ref = _ref(rule)
                    (known if rule.ok else invalid).setdefault(ref.key, ref)
    cov.rules = sorted(known.values(), key=lambda r: (r.path, r.line, r.id))
    cov.invalid = sorted(invalid.values(), key=lambda r: (r.path, r.line, r.id))
    for case in result.cases:
        if case.status == ERROR:
            continue
        cov.ran.update(case.ran)
        cov.fired.update(rule_key(str((s.get("source") or {}).get("path", "")), str(s["rule"])) for s in case.signals)
    return cov
