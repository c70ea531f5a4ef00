"""The running rule set: loaded through `fluo_lang.api`, reloaded only when the new set checks."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fluo_lang.api import RuleSourceError, Stamp, analyze_paths, lower, rule_files, stamp
from fluo_lang.cost import DEFAULT_BUDGET, DEFAULT_COST_LIMIT
from fluo_lang.diagnostics import Diagnostic, plural
from fluo_lang.evaluate import Program


class RuleSetError(Exception):
    """A rule set that cannot run: unreadable paths (`RulePathError`), or rules with errors (in `diagnostics`)."""

    def __init__(self, message: str, diagnostics: Sequence[Diagnostic] = ()) -> None:
        super().__init__(message)
        self.diagnostics = list(diagnostics)


class RulePathError(RuleSetError):
    """A rule path that is missing or cannot be read, or a folder without rule files; one line naming it."""


@dataclass
class RuleSet:
    program: Program
    files: list[str]
    warnings: list[Diagnostic]
    without_rules: list[str] = field(default_factory=list)
    """Files that define no rule (empty, or only comments): loaded as such, and said in a warning."""

    def log_warnings(self, log: logging.Logger) -> None:
        for d in self.warnings:
            log.warning("%s", d.format())
        for f in self.without_rules:
            log.warning("rules: %s defines no rule (it is empty or only comments); loaded so", f)

    @property
    def summary(self) -> str:
        n, w = len(self.program.trace_rules), len(self.program.window_rules)
        return f"{plural(n, 'per-trace rule')} and {w} windowed from {plural(len(self.files), 'file')}"


def load_rule_set(
    paths: Sequence[Path], *, cost_limit: int = DEFAULT_COST_LIMIT, budget: int = DEFAULT_BUDGET
) -> RuleSet:
    """Check and compile the rules under `paths`; any error rejects the whole set.

    A rule estimated to cost more than `cost_limit` span visits (FLUO404, as
    `fluo check --cost-limit` reports it) is an error; 0 means no limit. Each
    trace or window may spend `budget` span visits at run time (0: unbounded);
    past it, its evaluation stops with a `fluo.evaluation_truncated` signal.
    """
    from fluo_run.cli import with_cost_limit

    try:
        files = [str(f) for f in rule_files(paths)]
        analysis = with_cost_limit(analyze_paths(paths), cost_limit)
    except RuleSourceError as exc:
        raise RulePathError(exc.for_command_line()) from None
    if not files:
        raise RulePathError(f"no .fluo files under {', '.join(str(p) for p in paths)}")
    if analysis.has_errors:
        errors = sum(1 for d in analysis.diagnostics if d.is_error)
        raise RuleSetError(f"{plural(errors, 'error')} in the rules", analysis.diagnostics)
    warnings = [d for d in analysis.diagnostics if not d.is_error]
    with_rules = {r.path for r in analysis.rules}
    without = [f for f in files if f not in with_rules]
    return RuleSet(Program(lower(analysis), budget=budget or None), files, warnings, without)


class RuleWatcher:
    """Notices when the rule files change: a file added, removed, or with a new `stamp`.

    A change counts once the files have stayed the same for one more poll, so a file
    caught half-written (an editor truncating, then writing) is never loaded.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.state = self._scan()
        self.seen = self.state

    def _scan(self) -> dict[str, Stamp]:
        state: dict[str, Stamp] = {}
        try:
            files = rule_files(self.paths)
        except RuleSourceError:
            return {}
        for f in files:
            try:
                st = os.stat(f)
            except OSError:
                continue
            state[str(f)] = stamp(st)
        return state

    def changed(self) -> bool:
        state = self._scan()
        settled = state == self.seen
        self.seen = state
        if state == self.state or not settled:
            return False
        self.state = state
        return True

    def accept_current(self) -> None:
        """Take the files as they are now as loaded (after a reload by signal)."""
        self.state = self.seen = self._scan()
