"""`fluo test`: the click command."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from fluo_lang.api import RuleSourceError, is_rule_file_name, rule_files
from fluo_lang.diagnostics import plural
from fluo_lang.files import NewFile, make_folder, one_of, write_all, write_replacing
from fluo_lang.folders import walk
from fluo_lang.one_value import OneValueCommand
from fluo_lang.otlp import is_trace_file_name
from fluo_lang.values import printable, quoted
from fluo_run.cli import EXIT_INTERRUPTED, FiniteFloatRange, NonEmptyPath, eval_budget_option, fail

from .coverage import measure
from .document import YamlError
from .progress import Progress
from .report import json_report, json_text, junit_report, text_report
from .runner import UPDATED, CaseResult, FileResult, Runner, RunResult, read_document
from .spec import TestFile, default_rules, display_path, find_test_files, passed_over, short_path
from .update import ChangedSinceRun, Rewrite, comment_notes, guard_notes, needs_update, plan_update
from .watch import Ran, watch


class UsageProblem(Exception):
    """A problem with the command line itself (exit status 2), said in one line; `ran` is what a run that got
    as far as reading test files read, which `--watch` goes on watching."""

    def __init__(self, message: str, ran: Ran | None = None) -> None:
        super().__init__(message)
        self.ran = ran or Ran()


def _read(files: Sequence[TestFile]) -> dict[Path, str]:
    """What a run of `files` reads, each with what it is for `_refuse_input`: test files, rule files and
    fixtures, those found in `rules:` and `traces:` folders too (searched as the run searched them, a folder
    that cannot be read passed over: the run says why), and those folders and the folders below them, whose
    mtime `--watch` needs (it changes when a file is added or removed; an in-place edit changes the file's)."""
    kinds: dict[Path, str] = {}
    for f in files:
        kinds.setdefault(f.path, "a test file")
        for p in f.rule_paths:
            for rule_file in walk(p, is_rule_file_name, unreadable=None, folders=True) if os.path.isdir(p) else [p]:
                kinds.setdefault(rule_file, "a rule file")
        for case in f.cases:
            for p, _ in case.traces:
                kinds.setdefault(p, "a fixture")
            for folder in case.folders:
                for p in walk(folder, is_trace_file_name, unreadable=None, folders=True):
                    kinds.setdefault(p, "a fixture")
    return kinds


def _dependencies(files: Sequence[TestFile], read: Iterable[Path]) -> set[Path]:
    """The files a run read (`read`, from `_read`) or looked for, for `--watch`."""
    out = set(read)
    for f in files:
        out.update(_missing_inputs(f))
    return out


def _shown(path: str | None) -> str | None:
    """A rule file's path as `fluo test` prints it."""
    return display_path(Path(os.path.normpath(path))) if path else path


def _warned(cases: Sequence[CaseResult]) -> dict[str, list[CaseResult]]:
    """Each warning of `cases`, once, with the cases it is about: none for a fixture's own (it names the file),
    those that had it for one about a case's spans taken together (`CaseResult.spans_warnings`)."""
    out: dict[str, list[CaseResult]] = {}
    for c in cases:
        for w in c.warnings:
            about = out.setdefault(w, [])
            if w in c.spans_warnings:
                about.append(c)
    return out


def _naming(cases: Sequence[CaseResult], most: int = 3) -> str:
    """` (case 'a' of t_test.yaml)`, ` (cases 'a', 'b' of t_test.yaml and 'c' of u_test.yaml, and 2 more)`."""
    if not cases:
        return ""
    by_file: dict[str, list[str]] = {}
    for c in cases[:most]:
        by_file.setdefault(c.file.display, []).append(quoted(c.case.name))
    named = " and ".join(f"{', '.join(names)} of {printable(display)}" for display, names in by_file.items())
    more = f", and {len(cases) - most} more" if len(cases) > most else ""
    return f" ({'case' if len(cases) == 1 else 'cases'} {named}{more})"


def _rule_warnings(files: Sequence[TestFile]) -> list[str]:
    """The warnings of the rule files the test files load (FLUO2xx: `servce` for `service`), once each, as
    `fluo check` and `fluo eval` print them. They change no exit status."""
    out: dict[tuple[str, int, str, str], str] = {}
    for f in files:
        for d in f.analysis.diagnostics if f.analysis is not None else ():
            if d.is_error:
                continue
            path = _shown(d.path)
            related = tuple(replace(r, path=_shown(r.path)) for r in d.related)
            key = (path or "", d.span.start, d.code, d.message)
            out.setdefault(key, replace(d, path=path, related=related).format_with_notes())
    return list(out.values())


def _missing_inputs(f: TestFile) -> set[Path]:
    """Rule files and fixtures the test file names that did not exist when it was read: `--watch` runs
    again when one appears. Read from the file's text again, only when it had such a problem."""
    codes = {p.code for p in f.problems} | {p.code for c in f.cases for p in c.problems}
    if not codes & {"missing-rules-file", "missing-fixture"}:
        return set()
    doc = read_document(f.path)
    if not isinstance(doc, dict):
        return set()
    rules = doc.get("rules", default_rules(f.path).name)
    named = list(rules) if isinstance(rules, list) else [rules]
    cases = doc.get("cases")
    for case in cases if isinstance(cases, list) else []:
        traces = case.get("traces") if isinstance(case, dict) else None
        named.extend(traces if isinstance(traces, list) else [traces])
    found = (f.path.parent / n for n in named if isinstance(n, str) and n)
    return {p for p in found if not os.path.exists(p)}  # one that cannot be looked up too: watched


def _refuse_input(output: Path, files: Sequence[TestFile], read: dict[Path, str], folders: Sequence[str]) -> None:
    """A usage error when `output` is one of the files the run reads (`read`, from `_read`): a test file, a rule
    file, a fixture, or (`folders`, with `--coverage`) a rule file below the folders given; by its name, through
    a link, or as a hard link. `fluo test --junit-xml r_test.yaml` is the likely slip: the test file typed after
    the option."""
    kinds = dict(read)
    for given in (p for p in folders if os.path.isdir(p)):
        with contextlib.suppress(RuleSourceError, OSError):  # the run says why it could not read it
            kinds.update((p, "a rule file") for p in rule_files([given]) if p not in kinds)
    found = one_of(output, (p for p in kinds if not os.path.isdir(p)))
    if found is not None:
        raise UsageProblem(
            f"refusing to write the --junit-xml report over {output}: it is {kinds[found]} this run reads "
            "(give the report a file of its own, e.g. --junit-xml junit.xml)",
            Ran(_dependencies(files, read)),
        )


@dataclass
class Updates:
    """What `--update` did: a note per file written, a problem per file it could not write, the files written."""

    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


def _apply_updates(result: RunResult) -> Updates:
    """Write the observed signals as the `expect:` of the cases that need it.

    Every file's new text is made, and the file found writable, before any is written: when
    one cannot be updated, none is. A write that still fails leaves the others written, and
    says which. Cases written are `updated` (they pass as written now); the others keep their status.
    """
    out = Updates()
    plans: list[tuple[FileResult, Rewrite]] = []
    for fr in result.files:
        todo = [c for c in fr.cases if needs_update(c)]
        if not todo:
            continue
        try:
            plans.append((fr, plan_update(fr.file.path, todo, fr.file.digest)))
        except (OSError, YamlError, ChangedSinceRun) as exc:
            out.problems.append(f"cannot update {fr.file.display}: {_reason(exc)}")
    if out.problems:
        if plans:
            total = len(plans) + len(out.problems)
            out.problems.append(f"--update wrote nothing: {len(out.problems)} of {total} test files cannot be updated")
        return out
    for fr, plan in plans:
        try:
            write_replacing(plan.path, plan.data)
        except OSError as exc:
            out.problems.append(f"cannot update {fr.file.display}: {_reason(exc)}")
            continue
        for c in plan.cases:
            c.status = UPDATED
        out.written.append(fr.file.path)  # as the watch names it
        out.notes.append(f"updated {plural(len(plan.cases), 'case')} in {fr.file.display}")
        out.notes.extend(guard_notes(fr.file.display, plan.cases))
        out.notes.extend(comment_notes(fr.file.display, plan))
    return out


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]


def run_once(
    paths: Sequence[str],
    runner: Runner,
    *,
    fmt: str,
    junit_xml: str | None,
    update: bool,
    coverage: bool,
    select_text: str | None,
) -> tuple[int, Ran]:
    """One run: find, load, run, report. Returns the exit status, and the files the run read and wrote."""
    try:
        found = find_test_files(paths)
    except OSError as exc:  # FileNotFoundError, or the PermissionError of a folder below
        raise UsageProblem(str(exc)) from exc
    progress = Progress(sys.stderr)  # never on stdout: `--format json` there must be one JSON document
    started = time.perf_counter()
    try:
        files = []
        loading: dict[int, float] = {}  # seconds spent reading each file (YAML, rules, inline spans)
        for i, path in enumerate(found):
            progress.loading(i, len(found), str(path))
            t0 = time.perf_counter()
            files.append(runner.load_one(path))
            loading[id(files[-1])] = time.perf_counter() - t0
        read = _read(files)
        if junit_xml is not None:  # before anything is run or written
            _refuse_input(Path(junit_xml), files, read, paths if coverage else ())
        progress.total = sum(1 for f in files for c in f.cases if runner.selected(f, c))
        runner.keep_only(files)  # under --watch, what the last round read and this one does not is let go first
        result = runner.run(files, progress)
    finally:
        progress.close()
    if select_text is not None and result.selected == 0 and result.broken_files:  # with none broken: a usage error
        broken, loaded = len(result.broken_files), len(files) - len(result.broken_files)
        unknown = f"could not be loaded, so {'its' if broken == 1 else 'their'} cases are unknown"
        result.warnings.append(
            f"--run {select_text!r} matches no case in {plural(loaded, 'test file')} that loaded"
            f" ({plural(broken, 'other')} {unknown})"
            if loaded
            else f"--run {select_text!r} matches no case: {plural(broken, 'test file')} {unknown}"
        )
    result.warnings.extend(passed_over(paths, found))  # in --format json's `warnings` too
    for warning in _rule_warnings(files):
        click.echo(warning, err=True)
    for warning, cases in _warned(result.cases).items():  # a fixture's once, not per case
        click.echo(f"fluo: warning: {warning}{_naming(cases)}", err=True)
    for warning in result.warnings:
        click.echo(f"fluo: warning: {warning}", err=True)
    # The times reported (text summary, JUnit) are the whole run's: reading the files is most of a large one.
    result.seconds = time.perf_counter() - started
    for fr in result.files:
        fr.seconds += loading.get(id(fr.file), 0.0)
    if select_text is not None and result.selected == 0 and not result.broken_files:
        message = f"--run {select_text!r} matches no case in {plural(len(files), 'test file')}"
        raise UsageProblem(message, Ran(_dependencies(files, read)))
    updates = _apply_updates(result) if update else Updates()
    code = 2 if updates.problems else result.exit_code
    ran = Ran(_dependencies(files, read), updates.written)
    junit_problem = None
    if junit_xml is not None:  # before the report, whose exit_code says whether it was written
        try:
            make_folder(Path(junit_xml).parent)
            write_all([NewFile(Path(junit_xml), junit_report(result))])
        except OSError as exc:
            junit_problem = f"cannot write --junit-xml {junit_xml}: {exc.strerror or exc}"
            code = 2
    cov = measure(result, [Path(p) for p in paths]) if coverage else None
    if fmt == "json":
        report = json_report(result, cov)
        report["summary"]["exit_code"] = code
        if update:
            report["updated"] = updates.notes
            if updates.problems:
                report["update_errors"] = updates.problems
        if junit_problem is not None:
            report["junit_error"] = junit_problem
        click.echo(json_text(report))
    else:
        click.echo(text_report(result, cov), nl=False)
    for note in updates.notes:
        click.echo(note, err=True)
    for problem in updates.problems:
        click.echo(f"fluo: {problem}", err=True)
    if junit_problem is not None:
        click.echo(f"fluo: {junit_problem}", err=True)
    return code, ran


@click.command(name="test", cls=OneValueCommand)
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--run", "select_text", metavar="REGEX", help="Run only cases whose name (or FILE::name) matches.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--junit-xml", type=NonEmptyPath(dir_okay=False), help="Also write a JUnit XML report to this file.")
@click.option(
    "--update",
    is_flag=True,
    help="Write the observed signals as the expect: of failing cases and of cases written without expect:.",
)
@click.option("--coverage", is_flag=True, help="List rules that no case ran and rules that no case made fire.")
@click.option("--watch", "watch_mode", is_flag=True, help="Run again whenever a test, rule or fixture file changes.")
@click.option(
    "--watch-interval",
    type=FiniteFloatRange(0.05, 10.0),
    default=0.5,
    show_default=True,
    help="Seconds between checks for changes with --watch.",
)
@eval_budget_option
def command(**options: Any) -> None:
    """Find and run rule tests: *_test.yaml and *.fluotest.yaml files under PATHS (default: .).

    Exit status: 0 all passed, 1 a case failed, 2 a test file, fixture or
    rule could not be loaded (or a usage error), 130 stopped by Ctrl-C. With
    --watch, Ctrl-C ends the watch with the last run's status (130 when it cut
    a run short).

    A trace whose evaluation passes --eval-budget span visits is cut short and
    reported by a fluo.evaluation_truncated signal, which fails the case unless
    it is expected.

    \b
    Examples:
      fluo test examples/rules
      fluo test rules/ --run 'retry' --junit-xml fluo-tests.xml
      fluo test rules/auth_test.yaml --update
      fluo test rules/ --watch
    """
    given = click.get_current_context().get_parameter_source("watch_interval") is not ParameterSource.DEFAULT
    if given and not options["watch_mode"]:  # as `fluo check --no-optimise` without --emit-ir
        fail("--watch-interval only sets how often --watch looks for changes; give --watch too")
    sys.exit(_test(**options))  # Ctrl-C during a run: 130, as for every command (`fluo_run.cli.LazyGroup`)


def _test(
    paths: tuple[str, ...],
    select_text: str | None,
    fmt: str,
    junit_xml: str | None,
    update: bool,
    coverage: bool,
    watch_mode: bool,
    watch_interval: float,
    eval_budget: int,
) -> int:
    """`fluo test`'s exit status (the command's options, as click gives them); KeyboardInterrupt on Ctrl-C."""
    if update and "" in paths:  # most likely an unset shell variable: it would rewrite the current folder's tests
        click.echo(
            "fluo: an empty path names no test file or folder to --update; give `.` for the current folder", err=True
        )
        return 2
    select = None
    if select_text is not None:
        try:
            select = re.compile(select_text)
        except re.error as exc:
            click.echo(f"fluo: --run {select_text!r} is not a valid regular expression: {exc}", err=True)
            return 2
    roots = list(paths) or ["."]
    runner = Runner(select, recording=update, budget=eval_budget or None)

    def once() -> tuple[int, Ran]:
        try:
            return run_once(
                roots, runner, fmt=fmt, junit_xml=junit_xml, update=update, coverage=coverage, select_text=select_text
            )
        except UsageProblem as exc:
            click.echo(f"fluo: {exc}", err=True)
            return 2, exc.ran

    if not watch_mode:
        return once()[0]

    last: int | None = None  # the last run's status; None while a run is under way

    def watched_run() -> Ran:
        nonlocal last
        last = None
        last, ran = once()
        click.echo("watching for changes (Ctrl-C to stop)", err=True)
        return ran

    def announce(files: list[str]) -> None:
        shown = ", ".join(printable(short_path(Path(f))) for f in files[:3]) + (" ..." if len(files) > 3 else "")
        click.echo(f"\nchanged: {shown}; running again", err=True)

    watch(watched_run, [Path(p) for p in roots], interval=watch_interval, on_change=announce)
    return EXIT_INTERRUPTED if last is None else last
