"""`fluo discover`: propose rules that hold on a corpus of traces, or compare existing rules with it."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from fluo_lang.api import RuleSourceError, rule_files
from fluo_lang.diagnostics import plural
from fluo_lang.files import (
    NewFile,
    PartlyWritten,
    identity,
    make_folder,
    one_of,
    real_path,
    same_file,
    unusable_folder,
    write_all,
)
from fluo_lang.folders import hidden, searched
from fluo_lang.one_value import OneValueCommand
from fluo_lang.otlp import (
    STDIN_PATH,
    TraceInputError,
    UnknownKeys,
    is_trace_file_name,
    too_deep_reads,
    too_deep_warning,
    trace_files_in,
)
from fluo_lang.trace import Trace, collector_paused
from fluo_lang.values import dump_json, one_line

from ..cli import (
    FiniteFloatRange,
    NonEmptyPath,
    cost_limit_option,
    eval_budget_option,
    fail,
    stdin_once,
)
from .compare import compare, compare_text
from .corpus import MAX_DISTINCT, Corpus, load_corpus
from .facts import Miner, Options, mine_within
from .render import fluo_text, json_report, rules_of
from .syntax import id_prefix
from .testgen import TestsPlan, linked_output, plan_tests, test_outputs


def _load(paths: tuple[str, ...], options: Options) -> tuple[list[Trace], Corpus]:
    unknown = UnknownKeys()
    try:
        found = load_corpus(
            paths, attributes=options.attributes, trace_values=options.min_confidence < 1.0, unknown=unknown
        )
    except TraceInputError as exc:
        fail(str(exc))
        raise AssertionError from exc  # unreachable: fail exits
    for warning in unknown.warnings() + found[1].warnings:
        click.echo(f"fluo: warning: {warning}", err=True)
    return found


@click.command(name="discover", cls=OneValueCommand)
@click.argument("trace_paths", nargs=-1, type=click.Path())
@click.option(
    "-o", "--output", type=NonEmptyPath(dir_okay=False), help="Write the rules to FILE (default, or `-`: stdout)."
)
@click.option("--format", "fmt", type=click.Choice(["fluo", "json"]), default="fluo", show_default=True)
@click.option(
    "--min-support",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Traces a rule must have been tested on (where its subject occurs or its `when` held).",
)
@click.option(
    "--min-confidence",
    type=FiniteFloatRange(0.0, 1.0, min_open=True),
    default=1.0,
    show_default=True,
    help="Share of tested traces on which a rule must hold (above 0); below 1 the exceptions are listed.",
)
@click.option("--max-rules", type=click.IntRange(min=0), default=100, show_default=True, help="Keep the best N.")
@click.option(
    "--max-values",
    type=click.IntRange(min=1, max=MAX_DISTINCT),
    default=5,
    show_default=True,
    help="Largest set of attribute values proposed as a closed set.",
)
@click.option(
    "--duration-quantile",
    type=FiniteFloatRange(0.0, 1.0),
    default=None,
    help="Quantile of per-trace durations the bounds are taken at (default: --min-confidence).",
)
@click.option("--no-attributes", is_flag=True, help="Do not propose attribute facts (faster on large corpora).")
@click.option(
    "--compare",
    "compare_paths",
    multiple=True,
    type=click.Path(),
    help="Rule files or folders: report how each held on the traces instead of proposing rules.",
)
@click.option(
    "--tests",
    "tests_dir",
    metavar="DIR",
    type=NonEmptyPath(file_okay=False),
    help="Also write a rule test (<stem>_test.yaml + fixtures) for the proposed rules into DIR.",
)
@cost_limit_option
@eval_budget_option
@click.pass_context
def command(
    ctx: click.Context,
    trace_paths: tuple[str, ...],
    output: str | None,
    fmt: str,
    min_support: int,
    min_confidence: float,
    max_rules: int,
    max_values: int,
    duration_quantile: float | None,
    no_attributes: bool,
    compare_paths: tuple[str, ...],
    tests_dir: str | None,
    cost_limit: int,
    eval_budget: int,
) -> None:
    """Propose rules that hold on a corpus of traces (OTLP JSON or protobuf files, maybe gzipped;
    folders are searched for them; - reads standard input).

    Each rule carries its support (traces it was tested on) and confidence. With
    --compare, report instead how existing rules fared on the traces and which
    discovered facts contradict them; the rules run as `fluo eval` runs them
    (--cost-limit refuses a rule, FLUO404; --eval-budget cuts a trace short).
    Without --format, an -o ending .json takes JSON.

    \b
    Examples:
      fluo discover traces/*.json -o rules/discovered.fluo --tests rules/
      fluo discover traces/ --min-confidence 0.99 --format json
      fluo discover --compare rules/ traces/*.json
    """
    if not trace_paths:
        fail("no traces: give OTLP JSON or protobuf files, e.g. `fluo discover traces/*.json`")
    stdin_once(trace_paths)
    if tests_dir is not None and compare_paths:
        fail("--tests writes tests for discovered rules; it cannot be combined with --compare")
    if duration_quantile is not None and duration_quantile < min_confidence:
        fail(
            f"--duration-quantile {duration_quantile} is below --min-confidence {min_confidence}: more spans than "
            "allowed would exceed such bounds; lower --min-confidence too"
        )
    options = Options(
        min_support=min_support,
        min_confidence=min_confidence,
        max_values=max_values,
        duration_quantile=duration_quantile,
        max_rules=max_rules,
        attributes=not no_attributes,
    )
    if output == "-":  # stdout, as everywhere else in fluo
        output = None
    fmt = _output_format(ctx, fmt, output, bool(compare_paths))
    rules_path = _rules_file(fmt, output, tests_dir)
    if rules_path is not None and not _rule_file_name(rules_path):
        fail(
            f"--tests writes a test whose `rules:` names -o, and {output} is not a .fluo file that `fluo test` reads: "
            f"give -o a .fluo name, or drop -o (the rules then go to {Path(tests_dir or '') / 'discovered.fluo'})"
        )
    if rules_path is not None and tests_dir is not None:
        test_file, fixtures = test_outputs(Path(tests_dir), rules_path.stem)
        _refuse_inputs(trace_paths, compare_paths, [Path(p) for p in (output, rules_path, test_file) if p], fixtures)
        problem = linked_output(Path(tests_dir), rules_path.stem)
        if problem is not None:
            fail(problem)
        unusable = unusable_folder(fixtures)
        if unusable is not None:
            fail(f"cannot write the tests into {tests_dir}: {unusable}")
    elif output is not None:
        _refuse_inputs(trace_paths, compare_paths, [Path(output)], None)
    deep_before = too_deep_reads()
    traces, corpus = _load(trace_paths, options)
    if not traces:
        fail(f"no spans in {', '.join(trace_paths)}")
    miner = Miner(corpus, options)
    for warning in miner.naming:
        click.echo(one_line(f"fluo: warning: {warning}"), err=True)
    with collector_paused():
        found, facts = mine_within(miner, options.max_rules)
    deep = too_deep_warning(too_deep_reads() - deep_before)
    if deep is not None:
        click.echo(f"fluo: warning: {deep}", err=True)
    if compare_paths:
        report = compare(compare_paths, traces, corpus, facts, miner.implied, cost_limit, eval_budget)
        text = dump_json(report, indent=2) if fmt == "json" else compare_text(report)
        if text:  # no rule and no error: no blank line, nor an empty -o file, but the line below
            _emit(text, output)
        if not report["rules"] and not report.get("errors"):
            unwritten = f"; {output} not written" if output is not None and not text else ""
            click.echo(
                one_line(
                    f"fluo: no rules to compare in {', '.join(compare_paths)} (none defined, or all disabled)"
                    f"{unwritten}"
                ),
                err=True,
            )
        sys.exit(1 if report.get("errors") else 0)
    stem = Path(output).stem if output is not None else rules_path.stem if rules_path is not None else ""
    rules = rules_of(facts, corpus, id_prefix(stem))
    if fmt == "json":
        report = json_report(rules, corpus, options, len(found) - len(facts))
        text = dump_json(report, indent=2)
    else:
        text = fluo_text(rules, corpus, options)
    if tests_dir is not None:  # made before any output is written: a run that cannot write its tests writes nothing
        try:
            make_folder(Path(tests_dir))
        except OSError as exc:
            fail(f"cannot make the tests folder {tests_dir}: {exc.strerror or exc}")
    writes: list[NewFile] = []
    plan = TestsPlan()
    if tests_dir is not None and rules_path is not None:
        rules_text = fluo_text(rules, corpus, options)
        try:
            plan = plan_tests(Path(tests_dir), rules_path, rules_text, rules, traces, corpus)
        except OSError as exc:
            fail(f"cannot write the tests into {tests_dir}: {exc.strerror or exc}")
        except ValueError as exc:  # a bug, said in one line
            fail(f"cannot write the tests: {exc}")
        writes = plan.writes
        if output is None or rules_path != Path(output):
            writes.append(NewFile(rules_path, rules_text.encode("utf-8")))
    if output is not None:
        out = NewFile(Path(output), text.encode("utf-8"))
        _refuse_twice(out, writes, plan.removes)
        writes.append(out)
    _write(writes)  # the fixtures, the test file, then the rules: every one whole beside its place first
    for path in plan.removes:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            fail(f"cannot remove {path}, a fixture of the last run: {exc.strerror or exc}")
    for folder in plan.folders:
        with contextlib.suppress(OSError):  # not empty, or not there: it stays as it is
            folder.rmdir()
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    for line in plan.lines:
        click.echo(f"fluo: {line}", err=True)
    spans = plural(corpus.spans, "span")
    summary = f"fluo: {plural(len(rules), 'rule')} from {plural(len(corpus.traces), 'trace')} ({spans})"
    if corpus.resent:
        summary += f"; {plural(corpus.resent, 'identical copy', 'identical copies')} of spans merged"
    if len(found) > len(facts):
        left_out = len(found) - len(facts)
        last = "rules about names with ids, then the last kinds" if miner.id_named else "the last kinds"
        summary += f"; {left_out} more left out by --max-rules {options.max_rules} ({last} first)"
    if not rules and len(corpus.traces) < options.min_support:
        summary += f"; fewer traces than --min-support {options.min_support}, lower it to see rules"
    click.echo(summary, err=True)


_SUFFIX_FORMATS = {".fluo": "fluo", ".json": "json"}


def _output_format(ctx: click.Context, fmt: str, output: str | None, comparing: bool) -> str:
    """The format written: --format, else the one -o's suffix names (`-o report.json`: JSON). A --format that
    contradicts the suffix (`--format json -o rules.fluo`) is a usage error, not a file misnamed."""
    named = _SUFFIX_FORMATS.get(Path(output).suffix.lower()) if output is not None else None
    if ctx.get_parameter_source("fmt") == ParameterSource.DEFAULT:
        return named or fmt
    if named is not None and named != fmt:
        what = {"json": "the JSON report", "fluo": "the text report" if comparing else "the rules as FLUO text"}[fmt]
        suffix = Path(output or "").suffix
        fail(f"--format {fmt} would write {what} into {output}, a {suffix} file: drop --format {fmt}, or rename -o")
    return fmt


def _rules_file(fmt: str, output: str | None, tests_dir: str | None) -> Path | None:
    """The .fluo file `--tests` points its test at: `-o`, else one of its own in the tests folder."""
    if tests_dir is None:
        return None
    if fmt == "fluo" and output:
        return Path(output)
    return Path(tests_dir) / f"{Path(output).stem if output else 'discovered'}.fluo"


def _rule_file_name(path: Path) -> bool:
    """Whether `path` can be the rule file a test names: a .fluo name, and a file if something is there (not a
    device or a pipe such as /dev/stdout)."""
    try:
        there = path.stat()
    except OSError:
        return path.suffix == ".fluo"
    return path.suffix == ".fluo" and stat.S_ISREG(there.st_mode)


def _refuse_inputs(
    trace_paths: tuple[str, ...], compare_paths: tuple[str, ...], outputs: list[Path], fixtures: Path | None
) -> None:
    """Exit 2 before writing anything when an output would replace an input trace file or a rule file
    `--compare` reads, when an output named as a trace file is one an input folder's search would find, or when
    the fixture folder and an input folder overlap (either way the next run would read it as traces), or when an
    input file is in the fixture folder (where `--tests` replaces and removes files): by its name, through a
    link, or as a hard link to a file there."""
    inputs: list[Path] = []
    folders: list[Path] = []
    for p in trace_paths:
        path = Path(p)
        if p == STDIN_PATH or not os.path.exists(path):  # one that cannot be looked up is said when read
            continue
        if path.is_dir():
            folders.append(real_path(path))
        try:
            inputs.extend(trace_files_in(path) if path.is_dir() else [path])
        except TraceInputError as exc:
            fail(str(exc))
    compared: list[Path] = []
    for p in compare_paths:
        with contextlib.suppress(RuleSourceError, OSError):  # a path that is missing or unreadable is said later
            compared.extend(rule_files([p]) if Path(p).is_dir() else [Path(p)])
    for out in outputs:
        if one_of(out, inputs) is not None:
            fail(f"refusing to overwrite input {out}: it is one of the trace files read")
        if one_of(out, compared) is not None:
            fail(f"refusing to overwrite input {out}: it is one of the rule files --compare reads")
        if is_trace_file_name(out.name):
            where = real_path(out.parent) / out.name
            for folder in (f for f in folders if where.is_relative_to(f)):
                parts = where.relative_to(folder).parts  # as `trace_files_in` searches the folder
                if not any(hidden(part) for part in parts) and all(searched(part) for part in parts[:-1]):
                    fail(f"refusing to write {out}: the traces in {folder} would include it (the next run reads it)")
    if fixtures is None:
        return
    where = real_path(fixtures)
    for folder in folders:
        if where.is_relative_to(folder) or folder.is_relative_to(where):
            fail(f"refusing to write test fixtures into {fixtures}: the traces in {folder} would include them")
    listed = where.iterdir() if os.path.isdir(where) else iter(())
    there = {identity(f) for f in listed if f.is_file() and not f.is_symlink()}
    for f in inputs:
        if (real_path(f.parent) / f.name).is_relative_to(where):  # the name given, a link itself
            how = "is in that folder"
        elif real_path(f).is_relative_to(where):
            how = "is a link into that folder"
        elif identity(f) in there:
            how = "is a hard link to a file in that folder"
        else:
            continue
        fail(f"refusing to write test fixtures into {fixtures}: the input {f} {how}, where --tests replaces files")


def _refuse_twice(output: NewFile, writes: list[NewFile], removes: list[Path]) -> None:
    """Exit 2 before writing anything when `-o` is one of the files `--tests` writes (the rules, the test file,
    a fixture) or a fixture of the last run that it removes. Those of `--tests` are not compared with each other:
    fixtures that are hard links of one file (`cp -al`) are each replaced by a new file."""
    for f in writes:
        if same_file([f, output]) is not None:
            what = "--tests writes it too" if f.path == output.path else f"it is {f.path}, which --tests writes"
            fail(f"refusing to write {output.path}: {what}; give -o another path")
    gone = one_of(output.path, removes)
    if gone is not None:
        fail(f"refusing to write {output.path}: it is {gone}, a fixture of the last run that --tests removes")


def _emit(text: str, output: str | None) -> None:
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        _write([NewFile(Path(output), text.encode("utf-8"))])


def _write(files: list[NewFile]) -> None:
    """Write `files`, their folders made: each is written whole beside its place before any takes it, so a
    failure (disk full, a file size limit) leaves them all as they were."""
    for f in files:
        try:
            make_folder(f.path.parent)
        except OSError as exc:
            fail(f"cannot write {f.path}: {exc.strerror or exc}")
    try:
        write_all(files)
    except PartlyWritten as exc:
        done = ", ".join(str(p) for p in exc.written)
        fail(f"cannot write {exc.filename}: {exc.strerror or exc}; already replaced: {done}; the others as they were")
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"cannot write {where}{exc.strerror or exc}")
