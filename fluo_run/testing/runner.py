"""Running test files: each case's traces through the compiled program, signals matched against expectations.

Evaluation is `fluo_lang.api.compile_program(...).evaluate(traces)` and nothing
else: per-trace rules on every trace of the case, then windowed rules over the
case's traces, exactly as `fluo eval` runs them.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fluo_lang.api import Analysis, Stamp, compile_program, stamp
from fluo_lang.cost import DEFAULT_BUDGET
from fluo_lang.evaluate import TRUNCATED_RULE, CompiledRule, Program
from fluo_lang.files import real_path
from fluo_lang.ir import RuleIR
from fluo_lang.otlp import (
    TraceInputError,
    UnknownKeys,
    load_trace_file,
    read_warnings,
    too_deep_reads,
    too_deep_warning,
)
from fluo_lang.trace import Copies, Span, Trace, assemble, dropped_copies, windows_of
from fluo_lang.values import format_timestamp, quoted

from .document import YamlError, load
from .inline import ORIGIN_NS
from .matching import Match, match_signals
from .spec import Case, Problem, RuleLoader, TestFile, display_path, load_test_file, read_test_file

PASSED, FAILED, ERROR = "passed", "failed", "error"
UPDATED = "updated"
"""A case `--update` rewrote the `expect:` of (it had failed, or had none): it passes as written now."""
MAX_EXPLAINED = 3


@dataclass
class CaseResult:
    file: TestFile
    case: Case
    status: str
    signals: list[dict[str, Any]] = field(default_factory=list)
    match: Match | None = None
    problems: list[Problem] = field(default_factory=list)
    rules: dict[str, RuleIR] = field(default_factory=dict)
    why_not: dict[str, list[str]] = field(default_factory=dict)  # rule -> why it did not fire, a line a place
    ran: tuple[tuple[str, str], ...] = ()  # (resolved rule file, rule id) of every rule evaluated
    seconds: float = 0.0
    traces: int = 0  # how many traces the case ran on
    warnings: list[str] = field(default_factory=list)
    """What its trace files hold that was ignored: keys of OTLP/JSON objects no OTLP field has (`UnknownKeys`)."""
    spans_warnings: list[str] = field(default_factory=list)
    """Those of `warnings` about its spans taken together (copies dropped, `read_warnings`), not about one file:
    another case may share one, so stderr names the cases."""
    written_expect: list[Any] | None = None
    """For a case that could not run: its `expect:` as the file writes it, entries its rules do not know
    (a renamed rule) included, which `case.expect` leaves out."""

    @property
    def id(self) -> str:
        return f"{self.file.display}::{self.case.name}"


@dataclass
class FileResult:
    file: TestFile
    cases: list[CaseResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def status(self) -> str:
        if not self.file.loaded or any(c.status == ERROR for c in self.cases):
            return ERROR
        return FAILED if any(c.status == FAILED for c in self.cases) else PASSED


@dataclass
class RunResult:
    files: list[FileResult]
    seconds: float = 0.0
    selected: int = 0
    warnings: list[str] = field(default_factory=list)  # the run's own, of no one case (`too_deep_warning`)

    @property
    def cases(self) -> list[CaseResult]:
        return [c for f in self.files for c in f.cases]

    def count(self, status: str) -> int:
        return sum(1 for c in self.cases if c.status == status)

    @property
    def broken_files(self) -> list[FileResult]:
        return [f for f in self.files if not f.file.loaded]

    @property
    def exit_code(self) -> int:
        """0 all passed, 1 a case failed, 2 a test file, fixture or rule could not be loaded."""
        if self.broken_files or self.count(ERROR):
            return 2
        return 1 if self.count(FAILED) else 0


class TraceFiles:
    """Spans of fixture files, read once per run (and again when the file changes), with their warnings.

    A protobuf span's attribute values are decoded when a rule reads them, and counted then if nested too
    deep (`too_deep_reads`): the spans kept here are decoded already in a later run, so what cases reading
    the spans of some fixtures together counted is kept with them (`deep`), until one of those is read again.
    """

    def __init__(self) -> None:
        self.cache: dict[Path, tuple[Stamp, list[Span], list[str], dict[str, list[Span]]]] = {}
        self.deep: dict[tuple[Path, ...], int] = {}

    def spans(self, path: Path) -> tuple[list[Span], list[str], dict[str, list[Span]]]:
        """The file's spans, a line for each unknown key of its OTLP/JSON objects (`UnknownKeys`), and its spans
        read as ending when they start (`clamp_end`)."""
        now = stamp(os.stat(path))
        hit = self.cache.get(path)
        if hit is None or hit[0] != now:
            unknown = UnknownKeys()
            clamped: dict[str, list[Span]] = {}
            spans = load_trace_file(path, clamped=clamped, unknown=unknown)
            hit = (now, spans, unknown.warnings(), clamped)
            self.cache[path] = hit
            self.deep = {k: n for k, n in self.deep.items() if path not in k}
        return hit[1], hit[2], hit[3]

    def keep_only(self, paths: Collection[Path]) -> None:
        """Forget the fixtures not among `paths` (renamed, or no longer named): under `--watch` each would
        otherwise stay in memory for good."""
        self.cache = {p: hit for p, hit in self.cache.items() if p in paths}
        self.deep = {k: n for k, n in self.deep.items() if all(p in paths for p in k)}

    def read_too_deep(self, paths: tuple[Path, ...], reads: int) -> None:
        """`reads` more values nested too deep were decoded while a case read the spans of `paths`."""
        self.deep[paths] = self.deep.get(paths, 0) + reads

    def too_deep(self, read_together: Iterable[tuple[Path, ...]]) -> int:
        """The values nested too deep that cases reading these fixtures together decoded, in this run or before."""
        return sum(self.deep.get(paths, 0) for paths in set(read_together))


class Programs:
    """One compiled program per analysis and rule subset (`only:`), built on first use."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = budget
        # keyed by id(analysis); the analysis is kept in the value so its id is never reused meanwhile
        self.cache: dict[tuple[int, tuple[str, ...] | None], tuple[Analysis, Program]] = {}
        self.rules: dict[int, tuple[dict[str, RuleIR], tuple[tuple[str, str], ...]]] = {}  # by id(program)

    def program(self, analysis: Analysis, only: tuple[str, ...] | None) -> Program:
        key = (id(analysis), tuple(sorted(set(only))) if only is not None else None)
        found = self.cache.get(key)
        if found is None:
            subset = analysis
            if only is not None:
                keep = set(only)
                subset = Analysis(analysis.files, [r for r in analysis.rules if r.id in keep], analysis.diagnostics)
            found = (analysis, compile_program(subset, budget=self.budget))
            self.cache[key] = found
        return found[1]

    def keep_only(self, analyses: Collection[Analysis]) -> None:
        """Forget the programs of analyses not among `analyses` (rule files saved since, or no longer named)."""
        kept = {id(a) for a in analyses}
        self.cache = {k: found for k, found in self.cache.items() if k[0] in kept}
        programs = {id(program) for _, program in self.cache.values()}
        self.rules = {k: found for k, found in self.rules.items() if k in programs}

    def rules_of(self, program: Program) -> tuple[dict[str, RuleIR], tuple[tuple[str, str], ...]]:
        """A program's rules by id, and the (resolved file, id) keys coverage counts them by."""
        found = self.rules.get(id(program))
        if found is None:
            by_id = {r.id: r.ir for r in program.rules}
            keys = tuple((str(real_path(r.ir.path)), r.id) for r in program.rules)
            found = self.rules[id(program)] = (by_id, keys)
        return found


Listener = Callable[[CaseResult], None]


class Runner:
    """Loads test files and runs their cases; reusable across `--watch` rounds, which keeps its caches warm."""

    def __init__(
        self, select: re.Pattern[str] | None = None, *, recording: bool = False, budget: int | None = DEFAULT_BUDGET
    ) -> None:
        self.select = select
        self.recording = recording  # --update: a case without `expect:` runs as if it expected nothing
        self.rules = RuleLoader()
        self.traces = TraceFiles()
        self.programs = Programs(budget)  # span visits one trace (or window) may spend; None: unbounded

    def selected(self, file: TestFile, case: Case) -> bool:
        if self.select is None:
            return True
        return bool(self.select.search(case.name) or self.select.search(f"{file.display}::{case.name}"))

    def load(self, paths: Sequence[Path]) -> list[TestFile]:
        return [self.load_one(p) for p in paths]

    def load_one(self, path: Path) -> TestFile:
        return load_test_file(path, self.rules)

    def keep_only(self, files: Sequence[TestFile]) -> None:
        """Forget the fixtures, analyses and programs that none of `files` (a run's, once loaded) names: what
        a `--watch` round no longer reads (a fixture renamed, a rule file saved) is not kept for good, nor
        beside what replaces it; what it reads is kept for the next round."""
        analyses = [f.analysis for f in files if f.analysis is not None]
        self.rules.keep_only(analyses)
        self.programs.keep_only(analyses)
        self.traces.keep_only({p for f in files for c in f.cases for p, _ in c.traces})

    def run(self, files: Sequence[TestFile], on_case: Listener | None = None) -> RunResult:
        started = time.perf_counter()
        results = []
        selected = 0
        for file in files:
            fr = FileResult(file)
            t0 = time.perf_counter()
            document: list[Any] = []  # the file's YAML, read again for the first case that could not run
            for case in file.cases if file.loaded else []:
                if not self.selected(file, case):
                    continue
                selected += 1
                result = self.run_case(file, case)
                if result.status == ERROR and case.problems:
                    if not document:
                        document.append(read_document(file.path))
                    result.written_expect = _written_expect(document[0], case.index)
                fr.cases.append(result)
                if on_case is not None:
                    on_case(result)
            fr.seconds = time.perf_counter() - t0
            if file.loaded and not fr.cases and self.select is not None:
                continue  # nothing selected here: leave the file out of the report
            results.append(fr)
        run = RunResult(results, time.perf_counter() - started, selected)
        deep = too_deep_warning(self.traces.too_deep(_fixtures(c.case) for c in run.cases))
        run.warnings.extend([deep] if deep is not None else [])
        return run

    def run_case(self, file: TestFile, case: Case) -> CaseResult:
        t0 = time.perf_counter()
        result = CaseResult(file, case, ERROR, problems=list(case.problems))
        if case.expect is None and not case.problems and not self.recording:
            result.problems.append(
                Problem(
                    file.display,
                    case.line,
                    f"case {quoted(case.name)} has no `expect:`; write `expect: []` if no rule should fire,"
                    " or run `fluo test --update` to record what fires",
                )
            )
        spans: list[Span] = []
        clamped: dict[str, list[Span]] = {}
        sources: dict[str, int] = {}
        empty: list[tuple[Path, int]] = []
        named: set[Path] = set()
        for path, line in case.traces:
            if path in named:  # a fixture named twice is read once: its spans again would only be dropped as copies
                continue
            named.add(path)
            try:
                found, warnings, found_clamped = self.traces.spans(path)
            except (TraceInputError, OSError) as exc:
                result.problems.append(
                    Problem(file.display, line, f"case {quoted(case.name)}: cannot load trace file: {exc}")
                )
                continue
            spans.extend(found)
            sources[str(path)] = len(found)
            clamped.update(found_clamped)
            result.warnings.extend(warnings)
            if not found:
                empty.append((path, line))
        if not spans and not case.spans and not result.problems:
            result.problems.append(_no_spans(file, case, empty))
        if result.problems or file.analysis is None:
            result.problems.sort(key=lambda p: p.line)
            result.seconds = time.perf_counter() - t0
            return result
        deep_before = too_deep_reads()
        spans.extend(_placed(case.spans, spans))
        traces = assemble(spans)
        result.spans_warnings = read_warnings({}, dropped_copies(spans, traces), spans, sources)
        result.warnings.extend(read_warnings(clamped, Copies(0, 0)) + result.spans_warnings)
        result.traces = len(traces)
        program = self.programs.program(file.analysis, case.only)
        before = len(program.errors)
        signals = program.evaluate(traces)
        errors = program.errors[before:]
        del program.errors[before:]
        result.rules, result.ran = self.programs.rules_of(program)
        result.signals = [s.to_json() for s in signals]
        for e in errors:
            message = f"internal error evaluating {e.rule} on trace {e.trace_id}: {e.message}"
            result.problems.append(Problem(file.display, case.line, message))
        if not result.problems:
            result.match = match_signals(case.expect or [], result.signals, case.labels)
            result.status = PASSED if result.match.ok else FAILED
            if not result.match.ok:
                short = {r.expectation.rule for r in result.match.rows if not r.ok and not r.near}
                by_id = {r.id: r for r in program.rules}
                result.why_not = {
                    r: explain_quiet(by_id[r], traces, case.labels, result.signals) for r in sorted(short) if r in by_id
                }
        self.traces.read_too_deep(_fixtures(case), too_deep_reads() - deep_before)
        result.problems.sort(key=lambda p: p.line)
        result.seconds = time.perf_counter() - t0
        return result


def _fixtures(case: Case) -> tuple[Path, ...]:
    """The fixture files whose spans a case reads together."""
    return tuple(path for path, _ in case.traces)


def _placed(inline: Sequence[Span], fixture: Sequence[Span]) -> Sequence[Span]:
    """A case's inline spans placed in time: `start: 0s` is the earliest start of its fixture spans when it has
    some (a fixture recorded today and inline spans share time, so windowed rules see no months of empty
    windows between them), else `ORIGIN_NS`. Copies: the case's own spans are kept for the next run."""
    if not inline or not fixture:
        return inline
    shift = min(s.start for s in fixture) - ORIGIN_NS
    if shift == 0:
        return inline
    return [
        Span(
            trace_id=s.trace_id,
            span_id=s.span_id,
            parent_id=s.parent_id,
            name=s.name,
            service=s.service,
            start=s.start + shift,
            end=s.end + shift,
            status=s.status,
            status_message=s.status_message,
            kind=s.kind,
            attributes=s.attributes,
            resource=s.resource,
        )
        for s in inline
    ]


def _no_spans(file: TestFile, case: Case, empty: Sequence[tuple[Path, int]]) -> Problem:
    """A case with no span to run the rules on, which would pass `expect: []` without testing anything."""
    if empty:
        names = ", ".join(display_path(p) for p, _ in empty)
        holds = "holds" if len(empty) == 1 else "hold"
        why = f"{names} {holds} no spans"
        line = empty[0][1]
    else:
        why = "its `traces:` and `spans:` are empty"
        line = case.line
    return Problem(file.display, line, f"case {quoted(case.name)} has no spans to run the rules on: {why}")


def read_document(path: Path) -> Any:
    """A test file's YAML read again after the run, for what `TestFile` does not keep; None if it cannot be."""
    try:
        return load(read_test_file(path).decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, YamlError):
        return None


def _written_expect(document: Any, index: int) -> list[Any] | None:
    """Case `index`'s `expect:` in `document` as JSON values, a bare rule id as `{"rule": ID}`."""
    cases = document.get("cases") if isinstance(document, dict) else None
    case = cases[index] if isinstance(cases, list) and index < len(cases) else None
    expect = case.get("expect") if isinstance(case, dict) else None
    if not isinstance(expect, list):
        return None
    return [{"rule": e} if isinstance(e, str) else _json_value(e) for e in expect]


def _json_value(value: Any) -> Any:
    """A YAML value as JSON can write it: dates and other scalars JSON has not, as text."""
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if value is None or isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return str(value)


def observed_text(obs: dict[str, Any]) -> str:
    """Observed values as the reports print them: `count = 7, bound = 5`."""
    return ", ".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in obs.items())


def explain_quiet(
    rule: CompiledRule, traces: list[Trace], labels: dict[str, str], signals: Sequence[dict[str, Any]] = ()
) -> list[str]:
    """Why a rule did not fire on the case's traces (or windows), one line each: what it observed there, or,
    from the case's `fluo.evaluation_truncated` `signals`, that it was not evaluated there."""
    names = {v: k for k, v in labels.items()}
    ir = rule.ir
    skipped = _not_evaluated(rule.id, signals, names)
    contexts: list[tuple[str, Any]]
    if ir.window_ns is not None:
        contexts = [
            (_window_name(format_timestamp(w.start), format_timestamp(w.end)), w)
            for w in windows_of(traces, ir.window_ns)
        ]
    else:
        contexts = [(_trace_name(t.id_hex, names), t) for t in traces]
    if not contexts and not skipped:
        return ["did not fire: the case has no spans to evaluate"]
    out = [f"not evaluated on {where}: {why}; see its {TRUNCATED_RULE} signal" for where, why in skipped.items()]
    # Those it fired on are signals; those it was not evaluated on are not evaluated now, unbounded, either.
    contexts = [(where, ctx) for where, ctx in contexts if where not in skipped and not rule.fires(ctx)]
    for where, ctx in contexts[:MAX_EXPLAINED]:
        if ir.mode == "when" and rule.compiler.fn(ir.condition)(ctx, None) is not True:
            out.append(f"did not fire on {where}: when {{ {rule.clause_text(ir.condition)} }} did not hold")
            continue
        try:
            obs = rule.explain(ctx)[0]
        except Exception as exc:  # a bug in the evaluator: say so, keep the report
            out.append(f"did not fire on {where}: cannot explain ({type(exc).__name__}: {exc})")
            continue
        out.append(f"did not fire on {where}: {observed_text(obs)}")
    if len(contexts) > MAX_EXPLAINED:
        more = len(contexts) - MAX_EXPLAINED
        out.append(f"did not fire on {more} more {'window' if ir.window_ns is not None else 'trace'}{'s' * (more > 1)}")
    return out


def _not_evaluated(rule: str, signals: Sequence[dict[str, Any]], names: dict[str, str]) -> dict[str, str]:
    """Where the evaluator's `fluo.evaluation_truncated` signals say `rule` was skipped, and why."""
    out: dict[str, str] = {}
    for s in signals:
        observed = s.get("observed") or {}
        if s.get("rule") != TRUNCATED_RULE or rule not in (observed.get("rules_skipped") or ()):
            continue
        if s.get("window_start") is not None:
            where = _window_name(str(s["window_start"]), str(s.get("window_end")))
        else:
            where = _trace_name(str(s.get("trace_id")), names)
        if "empty_windows" in observed:
            more = observed.get("max_empty_windows")
            out[where] = (
                f"a run of {observed['empty_windows']:,} empty windows is skipped (at most {more:,} are evaluated)"
            )
        else:
            out[where] = f"the evaluation budget of {observed.get('budget'):,} span visits (--eval-budget) ran out"
    return out


def _window_name(start: str, end: str) -> str:
    return f"window {start}..{end}"


def _trace_name(trace_id: str, names: dict[str, str]) -> str:
    label = names.get(trace_id)
    if label:
        return f"trace {label!r}"
    return f"trace {trace_id}"
