"""The `fluo` command line: a thin shell over `fluo_lang.api`.

Subcommands live in their own modules and are imported only when run, so
`fluo check` starts fast and never loads gRPC or the language server.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import importlib.metadata
import importlib.util
import io
import math
import os
import re
import select
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

import click

from fluo_lang.api import (
    STDIN_NAME,
    Analysis,
    RuleSourceError,
    analyze_expression,
    analyze_paths,
    analyze_stdin,
    compile_program,
    cost_diagnostics,
    lower,
    stdin_filename_problem,
)
from fluo_lang.ast import Span as SourceSpan
from fluo_lang.cost import DEFAULT_BUDGET, DEFAULT_COST_LIMIT
from fluo_lang.diagnostics import CODES, Diagnostic, nearest, plural, sort_key, strictly, utf16_columns
from fluo_lang.files import StdinClosed, standard_input
from fluo_lang.ir import RuleIR, format_rule
from fluo_lang.one_value import OneValueCommand
from fluo_lang.values import dump_json, one_line

from .console import EXIT_INTERRUPTED as EXIT_INTERRUPTED  # where it is kept: `fluo` starts there

if TYPE_CHECKING:
    from fluo_lang.trace import Span

# name -> "module:attribute" of a click command, loaded on first use.
LAZY_COMMANDS: dict[str, str] = {
    "test": "fluo_run.testing.cli:command",
    "fmt": "fluo_lang.format_cli:command",
    "lsp": "fluo_lsp.server:command",
    "serve": "fluo_run.serve.cli:command",
    "signals": "fluo_run.serve.cli:signals_command",
    "demo": "fluo_run.demo:command",
    "discover": "fluo_run.discover.cli:command",
}


EXIT_READER_GONE = 141
"""The reader of fluo's output went away (`fluo eval ... | head -1`): fluo stops quietly with the
status of a program ended by SIGPIPE (128 + 13), as `cat` or `grep` would, instead of click's 1,
which `fluo eval` uses for rule errors."""


EXIT_OUTPUT_FAILED = 2
"""The output cannot be written (`> /dev/full`, a full disk), as input that cannot be read is 2."""


class OutputError(OSError):
    """fluo's own output (stdout) could not be written: `> /dev/full`, a full disk, a closed stdout."""


class _WholeWrites(io.FileIO):
    """A descriptor written whole or not at all: when the reader of a pipe goes away in the middle of a large
    write, the kernel takes part of it and Python's buffered writer drops the rest without an error (so `fluo
    check --format json | head -c 10` ended 0); writing the rest here fails (BrokenPipeError), and fluo stops
    with `EXIT_READER_GONE` as `cat` would. A descriptor set non-blocking (by whatever shares it) that is full
    is waited on until it takes more, as a blocking one waits in `write`."""

    def write(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        done = 0
        while done < len(view):
            try:
                wrote = super().write(view[done:])
                if wrote is None:  # EAGAIN: full and non-blocking
                    select.select([], [self.fileno()], [])
                done += wrote or 0
            except BrokenPipeError:
                raise
            except OSError as exc:  # told apart from a file a command fails to read or write
                raise OutputError(exc.errno, exc.strerror) from None
        return done


def _output_problem(exc: OSError) -> str:
    """Why fluo's output could not be written, in words: a closed stdout (EBADF) as such."""
    return "standard output is closed" if exc.errno == errno.EBADF else str(exc.strerror or exc)


def _stdout_to_nowhere() -> None:
    """What is still buffered for stdout goes nowhere, silently, instead of failing again at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _stdout_whole_writes() -> None:
    """stdout as it was (encoding, errors, line buffering) over `_WholeWrites`."""
    out = sys.stdout
    out.flush()
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(_WholeWrites(out.fileno(), "w", closefd=False)),
        encoding=out.encoding,
        errors=out.errors,
        line_buffering=bool(out.line_buffering),
    )


class _QuietWrites(_WholeWrites):
    """fluo's stderr: what cannot be written (`2> /dev/full`, a reader gone) is dropped, as there is nowhere left
    to say why, so that the exit status a command documents survives it; an unhandled OSError there ended the run
    with 1, which for `fluo check` and `fluo eval` means rule errors."""

    def write(self, b: Any) -> int:
        try:
            return super().write(b)
        except OSError:
            return len(memoryview(b).cast("B"))


def _stderr_quiet() -> None:
    """stderr over `_QuietWrites`, as it was otherwise (encoding, errors, line buffering). Started without one
    (`2>&-`), descriptor 2 is held on the null device, so that no file opened later takes it."""
    err = sys.stderr
    if err is None:
        nowhere = os.open(os.devnull, os.O_WRONLY)
        if nowhere != 2:
            os.dup2(nowhere, 2)
            os.close(nowhere)
        encoding, errors, line_buffering = "utf-8", "backslashreplace", True
    else:
        with contextlib.suppress(OSError):
            err.flush()
        encoding, errors, line_buffering = err.encoding, err.errors or "strict", bool(err.line_buffering)
    sys.stderr = io.TextIOWrapper(
        io.BufferedWriter(_QuietWrites(2, "w", closefd=False)),
        encoding=encoding,
        errors=errors,
        line_buffering=line_buffering,
    )


def _standard_streams() -> None:
    """stdout written whole (`_WholeWrites`) and stderr quietly (`_QuietWrites`), before the command line is read,
    so that `fluo --help` and `fluo --version` write as every command does; a test's capture is left alone."""
    if sys.stdout is None:  # started with stdout closed (`>&-`): Python leaves None, and a traceback later
        _stdout_closed()
    elif sys.stdout is sys.__stdout__:
        _stdout_whole_writes()
    if sys.stderr is None or sys.stderr is sys.__stderr__:
        _stderr_quiet()


@contextlib.contextmanager
def _output_written() -> Iterator[None]:
    """Runs the block, then writes what it left buffered for stdout; stdout that cannot be written stops fluo with
    `EXIT_READER_GONE` (the reader went away) or one line and `EXIT_OUTPUT_FAILED` (`> /dev/full`, a full disk,
    a closed stdout), not a traceback and 1, which means rule errors."""
    try:
        try:
            yield
        finally:
            sys.stdout.flush()  # here, not at exit, so a closed pipe is seen while it can be handled
    except BrokenPipeError:
        _stdout_to_nowhere()
        raise click.exceptions.Exit(EXIT_READER_GONE) from None
    except OutputError as exc:
        _stdout_to_nowhere()
        click.echo(f"fluo: cannot write the output: {_output_problem(exc)}", err=True)
        raise click.exceptions.Exit(EXIT_OUTPUT_FAILED) from None


def _stdout_closed() -> None:
    """Started without a stdout (`>&-`): descriptor 1 is held on the null device opened read-only, so that no
    file opened later (a store, a report) takes it, and writing to it fails as writing to a closed one does
    (EBADF): a command that prints says it cannot write its output, one that prints nothing (`fluo serve`,
    logging to stderr) runs."""
    nothing = os.open(os.devnull, os.O_RDONLY)
    if nothing != 1:
        os.dup2(nothing, 1)
        os.close(nothing)
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(_WholeWrites(1, "w", closefd=False)), encoding="utf-8")


class OneLineUsageError(click.UsageError):
    """A usage error said in one line, as every other error about user input is, after the same `fluo: `:
    what is wrong, and where the options are listed (click's own takes four: usage, a hint, a blank line,
    the error)."""

    def show(self, file: IO[Any] | None = None) -> None:
        command = self.ctx.command_path if self.ctx is not None else "fluo"
        message = self.format_message()
        message = message[:1].lower() + message[1:] if message[1:2].islower() else message
        message = message.removesuffix(".")  # click's sentences end in one; the hint follows: "... 'x' (see ...)"
        click.echo(f"fluo: {message} (see `{command} --help`)", file=file, err=file is None)


def one_line_usage(exc: click.UsageError) -> click.UsageError:
    """`exc` said in one line; bare `fluo`'s help (click's NoArgsIsHelpError) stays whole."""
    if isinstance(exc, (OneLineUsageError, click.exceptions.NoArgsIsHelpError)):
        return exc
    return OneLineUsageError(exc.format_message(), exc.ctx)


class LazyGroup(click.Group):
    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        _standard_streams()
        with _output_written():  # the group's own --help and --version print here
            return super().make_context(info_name, args, parent, **extra)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:  # the group's own options, before any command: `fluo --bogus`
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise one_line_usage(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with _output_written():
                return super().invoke(ctx)
        except click.UsageError as exc:
            # click's parser says an option "requires an argument" with no context: the command's is made here,
            # so the hint names its help (`fluo serve --help`), as every other usage error of the command does.
            name = ctx.invoked_subcommand
            if exc.ctx is None and name is not None and (cmd := self.get_command(ctx, name)) is not None:
                exc.ctx = click.Context(cmd, info_name=name, parent=ctx)
            raise one_line_usage(exc) from None
        except KeyboardInterrupt:
            # Ctrl-C: quietly, with a shell's status for SIGINT (click says "Aborted!" and exits 1,
            # which `fluo eval` and `fluo test` use for what they found).
            ctx.exit(EXIT_INTERRUPTED)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None and not ctx.resilient_parsing:
            near = nearest(name, self.list_commands(ctx))
            if near is not None:
                raise OneLineUsageError(f"no such command {name!r}; did you mean {near!r}?", ctx)
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.update(n for n in LAZY_COMMANDS if self._spec_available(n))
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is not None or name not in LAZY_COMMANDS:
            return cmd
        module, _, attr = LAZY_COMMANDS[name].partition(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                return None  # not built yet in this version
            raise
        command = getattr(mod, attr, None)
        return command if isinstance(command, click.Command) else None

    @staticmethod
    def _spec_available(name: str) -> bool:
        module = LAZY_COMMANDS[name].partition(":")[0]
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            return False


class SpreadCommand(OneValueCommand):
    """A command whose options named in `spread` take every argument after them up to the
    next option, as INTERFACES.md writes them (`--traces FILE...`).

    click gives an option one value per use, so the arguments are rewritten before click
    parses them: `--traces a.json b.json` becomes `--traces a.json --traces b.json` (the
    option is `multiple=True`). `-` (stdin) is a value; another option or `--` ends the
    values, and `--traces=a.json` takes only its own.
    """

    def __init__(self, *args: Any, spread: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spread = tuple(spread)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        flags = {o for p in self.params if p.name in self.spread for o in p.opts}
        return super().parse_args(ctx, spread_values(args, flags))


def spread_values(args: Sequence[str], flags: set[str]) -> list[str]:
    """`args` with each option of `flags` repeated before every further value that follows it."""
    out: list[str] = []
    flag: str | None = None
    takes_value = False
    for i, arg in enumerate(args):
        if takes_value:  # as click does, the option's first value is taken whatever it looks like
            out.append(arg)
            takes_value = False
        elif arg in flags:
            out.append(arg)
            flag, takes_value = arg, True
        elif arg == "--":
            return out + list(args[i:])
        elif flag is not None and (arg == "-" or not arg.startswith("-")):
            out += [flag, arg]
        else:
            flag = None
            out.append(arg)
    return out


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fluo")
def main() -> None:
    """FLUO: typed invariants over OpenTelemetry traces.

    \b
    Examples:
      fluo check rules/
      fluo eval rules/ --traces traces.json
      fluo eval --expect "trace.spans.where(service == 'auth').count() <= 5" --traces t.json
    """


def fail(message: str, code: int = 2) -> None:
    """One clear line on stderr (what it names escaped, `one_line`) and an exit status; never a traceback."""
    click.echo(f"fluo: {one_line(message)}", err=True)
    sys.exit(code)


def stdin_once(paths: Sequence[str]) -> None:
    """A usage error (exit 2) where `-` is named more than once: standard input can be read once, and the
    second `-` would read it empty, without a word."""
    if list(paths).count("-") > 1:
        fail("- (standard input) is given more than once: it can be read once")


def _summary(diags: Sequence[Diagnostic], files: int) -> str:
    errors = sum(1 for d in diags if d.is_error)
    return f"{plural(errors, 'error')}, {plural(len(diags) - errors, 'warning')} in {plural(files, 'file')}"


def _version() -> str:
    """FLUO's version as installed (a source tree run without installing: "unknown")."""
    try:
        return importlib.metadata.version("fluo")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


SARIF_ROOT = "%SRCROOT%"
"""The `uriBaseId` of a relative `artifactLocation`: the folder `fluo check` ran in, which relative paths name
files from (code scanning reads it as the repository's root, where a CI job runs)."""


def sarif_uri(path: str) -> dict[str, str]:
    """A file's `artifactLocation`: SARIF wants a URI reference, not a path, so a relative path is percent-encoded
    (`#`, `%`, a space, a `:` that would read as a scheme) and based on `SARIF_ROOT`, an absolute one a `file:` URI,
    as is a relative one outside `SARIF_ROOT` (`../x.fluo`): a URI based on it must name a file below it."""
    if os.path.isabs(path) or os.path.normpath(path).split(os.sep)[0] == os.pardir:
        return {"uri": Path(os.path.abspath(path)).as_uri()}
    return {"uri": quote(os.fsencode(Path(path).as_posix()), safe="/"), "uriBaseId": SARIF_ROOT}


def _folder_uri(folder: Path) -> str:
    """A folder's `file:` URI ending in one `/`, as a base URI must (`file:///` for `/`, not `file:////`)."""
    uri = folder.as_uri()
    return uri if uri.endswith("/") else uri + "/"


STDIN_ARTIFACT = {"uri": "stdin", "description": {"text": "standard input"}}
"""The `artifactLocation` of rules read from standard input without `--stdin-filename`: SARIF has no convention
for it, so a URI reference that names no file under `SARIF_ROOT` (no `uriBaseId`), and a description saying so."""


def _sarif_location(
    path: str | None, span: SourceSpan, text_of: Callable[[str], str], stdin: str | None
) -> dict[str, Any]:
    start, end = utf16_columns(span, text_of(path) if path else "")
    region = {"startLine": span.line + 1, "startColumn": start, "endLine": span.end_line + 1, "endColumn": end}
    where = STDIN_ARTIFACT if path is not None and path == stdin else sarif_uri(path or "<input>")
    return {"physicalLocation": {"artifactLocation": where, "region": region}}


SARIF_HELP = "Every FLUO diagnostic code is listed in FLUO's documentation, docs/diagnostics.md."
"""Where a SARIF rule's help points: FLUO has no public address (no `helpUri`), and docs/diagnostics.md is
written from `CODES`, as the rule's descriptions are."""


def sarif_rule(code: str) -> dict[str, Any]:
    """The `reportingDescriptor` of a diagnostic code, from `CODES` (the catalogue docs/diagnostics.md is written
    from): the short and full descriptions are its one text, the help says it again and where every code is
    listed. GitHub code scanning requires `fullDescription` and `help` and shows `help` on an alert's page."""
    text = CODES.get(code, code)
    return {
        "id": code,
        "shortDescription": {"text": text},
        "fullDescription": {"text": text},
        "help": {
            "text": f"{code}: {text}\n\n{SARIF_HELP}",
            "markdown": f"**{code}**: {text}\n\n{SARIF_HELP.replace('docs/diagnostics.md', '`docs/diagnostics.md`')}",
        },
    }


def sarif_fingerprint(d: Diagnostic, text_of: Callable[[str], str], seen: dict[tuple[str, ...], int]) -> str:
    """A result's `partialFingerprints` value (`fluo/v1`): a hash of its code, its file and the text of its line
    (spaces at either end left out), and how many results before it in the run had the same three: the result
    keeps it when lines are added or taken away above it, and is told from a like one on a like line. Not the line
    number, nor the message, which a new FLUO may word better."""
    lines = re.split(r"\r\n|\r|\n", text_of(d.path) if d.path else "")
    line = lines[d.span.line].strip() if d.span.line < len(lines) else ""
    key = (d.code, d.path or "", line)
    n = seen[key] = seen.get(key, -1) + 1
    return hashlib.sha256("\0".join((*key, str(n))).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def sarif(diags: Sequence[Diagnostic], text_of: Callable[[str], str], stdin: str | None = None) -> dict[str, Any]:
    """SARIF 2.1.0, as code-scanning services read it; `text_of(path)` is the text of a rule file, and `stdin`
    the path of rules read from standard input without a name (`STDIN_ARTIFACT`).

    Columns count UTF-16 code units, SARIF's default `columnKind`, declared all the same: GitHub code scanning
    and other viewers slice lines in UTF-16 (JavaScript strings), and a reader that ignores `columnKind` takes
    the default. Related locations (FLUO213's "first defined here") are `relatedLocations`."""
    used = sorted({d.code for d in diags})
    results = []
    seen: dict[tuple[str, ...], int] = {}
    for d in diags:
        result: dict[str, Any] = {
            "ruleId": d.code,
            "level": {"error": "error", "warning": "warning"}.get(d.severity.value, "note"),
            "message": {"text": d.message},
            "locations": [_sarif_location(d.path, d.span, text_of, stdin)],
            "partialFingerprints": {"fluo/v1": sarif_fingerprint(d, text_of, seen)},
        }
        if d.related:
            result["relatedLocations"] = [
                {"id": i, **_sarif_location(r.path or d.path, r.span, text_of, stdin), "message": {"text": r.message}}
                for i, r in enumerate(d.related, 1)
            ]
        results.append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "fluo",
                        "version": _version(),  # no informationUri: FLUO has no public address to give
                        "rules": [sarif_rule(c) for c in used],
                    }
                },
                "originalUriBaseIds": {SARIF_ROOT: {"uri": _folder_uri(Path.cwd())}},
                "columnKind": "utf16CodeUnits",
                "results": results,
            }
        ],
    }


def print_diagnostics(
    analysis: Analysis,
    fmt: str,
    *,
    err: bool = False,
    ir: Sequence[RuleIR] | None = None,
    stdin: str | None = None,
) -> None:
    """The diagnostics in `fmt`; with `ir` (JSON only), the rules' IR as an `ir` member beside them; `stdin` as
    `sarif` takes it."""
    diags = analysis.diagnostics
    if fmt == "json":
        out: dict[str, Any] = {"diagnostics": [d.to_json() for d in diags]}
        if ir is not None:
            out["ir"] = [{"rule": r.id, "path": r.path, "text": format_rule(r)} for r in ir]
        click.echo(dump_json(out, indent=2), err=err)
    elif fmt == "sarif":
        click.echo(dump_json(sarif(diags, analysis.text_of, stdin), indent=2), err=err)
    else:
        for d in diags:
            click.echo(d.format_with_notes(), err=err)


def _not_checked(fmt: str, message: str) -> dict[str, Any]:
    """The `--format json|sarif` document of a check that could not read its input (exit 2): no diagnostics, and
    why (JSON's `error`; SARIF's failed invocation with its notification, which code scanning shows)."""
    if fmt == "json":
        return {"diagnostics": [], "error": message}
    document = sarif([], lambda path: "")
    document["runs"][0]["invocations"] = [
        {
            "executionSuccessful": False,
            "exitCode": 2,
            "toolExecutionNotifications": [{"level": "error", "message": {"text": message}}],
        }
    ]
    return document


def load_rules(paths: Sequence[str], cost_limit: int) -> Analysis:
    try:
        analysis = analyze_paths(paths)
    except RuleSourceError as exc:
        fail(exc.for_command_line())
        raise AssertionError from exc  # unreachable: fail exits
    return with_cost_limit(analysis, cost_limit)


def with_cost_limit(analysis: Analysis, cost_limit: int) -> Analysis:
    """The analysis plus FLUO404 for rules estimated to cost more than `cost_limit` (0: no limit)."""
    if cost_limit > 0:  # only rules that checked clean are estimated
        analysis.diagnostics.extend(cost_diagnostics(analysis, cost_limit))
        analysis.diagnostics.sort(key=sort_key)
    return analysis


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange that also refuses `nan` (which every comparison lets through, so every range check) and
    `inf`/`-inf`: every float option of `fluo` is a plain number, refused as any value out of its range is."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a number in the range {self._describe_range()}", param, ctx)
        return super().convert(number, param, ctx)


class NonEmptyPath(click.Path):
    """click's Path refusing `''`, for a file or folder a command writes (or, `fluo signals --db`, the one file it
    reads): an empty name, most likely an unset shell variable (`--junit-xml "$REPORT"`), would otherwise mean the
    current folder, found only when the write fails after the run, or (a folder to write into) taken at its word.
    Paths a command only reads keep `''` as the current folder, as `.`."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value:
            what = "file" if self.file_okay else "folder"
            self.fail(f"an empty path names no {what}; give a {what} name", param, ctx)
        return super().convert(value, param, ctx)


cost_limit_option = click.option(
    "--cost-limit",
    type=click.IntRange(min=0),
    default=DEFAULT_COST_LIMIT,
    show_default=True,
    help="Estimated span visits a rule may cost on a 1,000-span trace (0: no limit); past it, FLUO404.",
)

eval_budget_option = click.option(
    "--eval-budget",
    type=click.IntRange(min=0),
    default=DEFAULT_BUDGET,
    show_default=True,
    help="Span visits one trace or window may spend; past it, a fluo.evaluation_truncated signal. 0: unbounded.",
)
"""The per-trace evaluation budget, as `fluo serve --eval-budget` has it (SECURITY.md): same name and default."""


@main.command(cls=OneValueCommand)
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    show_default=True,
)
@click.option(
    "--emit-ir",
    is_flag=True,
    help="Print the compiled IR of every rule that checked (text, or an `ir` member with --format json).",
)
@click.option("--no-optimise", is_flag=True, help="With --emit-ir: the IR before the optimisation passes.")
@click.option(
    "--stdin-filename",
    metavar="PATH",
    help="With -: the path the rules read from stdin are shown by (diagnostics, SARIF), as if read from it.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Report warnings as errors (exit 1), as the editor's fluo.strictness: strict shows them.",
)
@cost_limit_option
def check(
    paths: tuple[str, ...],
    fmt: str,
    emit_ir: bool,
    no_optimise: bool,
    stdin_filename: str | None,
    strict: bool,
    cost_limit: int,
) -> None:
    """Parse and typecheck rule files; folders are searched for *.fluo, - reads stdin.

    The search skips hidden folders, node_modules, __pycache__, site-packages
    and virtualenvs (a folder holding pyvenv.cfg); a file named twice is read
    once. A file named is checked whatever its name, except YAML
    (a rule test: run it with fluo test), which is a usage error.

    Exit status: 0 clean (warnings allowed, unless --strict), 1 any error,
    2 usage error or unreadable input.

    \b
    Example:
      fluo check examples/rules/ --format sarif > fluo.sarif
    """
    if emit_ir and fmt == "sarif":
        fail("--emit-ir does not go with --format sarif; use --format text or json")
    if no_optimise and not emit_ir:
        fail("--no-optimise only changes what --emit-ir prints; give --emit-ir too")
    refused = stdin_filename_problem(stdin_filename, paths)  # YAML is a rule test
    if refused is not None:
        fail(refused)
    stdin_once(paths)
    stdin = None
    if "-" in paths:
        if len(paths) > 1:
            fail("give - alone, or files and folders")
        stdin = None if stdin_filename is not None else STDIN_NAME
        try:
            analysis = with_cost_limit(analyze_stdin(standard_input(), stdin_filename or STDIN_NAME), cost_limit)
        except StdinClosed as exc:
            fail(str(exc))
            raise AssertionError from exc  # unreachable: fail exits
    else:
        try:
            analysis = with_cost_limit(analyze_paths(paths), cost_limit)
        except RuleSourceError as exc:
            message = exc.for_command_line()
            if fmt != "text":  # a CI step's `> fluo.sarif` gets a document saying why, not an empty file
                click.echo(dump_json(_not_checked(fmt, message), indent=2))
            fail(message)
            raise AssertionError from exc  # unreachable: fail exits
    ir = lower(analysis, optimised=not no_optimise) if emit_ir else None
    if strict:
        analysis.diagnostics = [strictly(d) for d in analysis.diagnostics]
    print_diagnostics(analysis, fmt, ir=ir, stdin=stdin)
    if fmt == "text":
        click.echo(_summary(analysis.diagnostics, len(analysis.files)), err=True)
        for rule in ir or ():
            click.echo(format_rule(rule))
    sys.exit(1 if analysis.has_errors else 0)


@main.command(name="eval", cls=SpreadCommand, spread=("trace_paths",))
@click.argument("paths", nargs=-1, type=click.Path(readable=False))
@click.option(
    "--traces",
    "-t",
    "trace_paths",
    multiple=True,
    required=True,
    metavar="FILE...",
    help="OTLP JSON or protobuf files or folders, every argument up to the next option; - for stdin.",
)
@click.option(
    "--expect",
    "expect_expr",
    help="Check this one expression as an `expect` rule (once: more rules go in a .fluo file).",
)
@click.option(
    "--detect",
    "detect_expr",
    help="Check this one expression as a `detect` rule (once: more rules go in a .fluo file).",
)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "text"]), default="jsonl", show_default=True)
@click.option("--fail-on-signal", is_flag=True, help="Exit 3 when any rule fires.")
@click.option(
    "--require-spans",
    is_flag=True,
    help="Exit 2 when the trace input holds no spans (a gate must not pass on an empty capture).",
)
@cost_limit_option
@eval_budget_option
def eval_command(
    paths: tuple[str, ...],
    trace_paths: tuple[str, ...],
    expect_expr: str | None,
    detect_expr: str | None,
    fmt: str,
    fail_on_signal: bool,
    require_spans: bool,
    cost_limit: int,
    eval_budget: int,
) -> None:
    """Run rules over trace files and print one signal per line.

    Exit status: 0 ran, 1 rule errors, 2 usage error or unreadable input
    (with --require-spans: input holding no spans), 3 a rule fired and
    --fail-on-signal was given.

    A trace whose evaluation passes --eval-budget span visits is cut short and
    reported by a fluo.evaluation_truncated signal naming the rules skipped.

    \b
    Examples:
      fluo eval examples/rules/ --traces examples/traces/*.json
      cat t.json | fluo eval --detect "trace.count(status == error) > 0" --traces -
    """
    from fluo_lang.otlp import (
        TraceInputError,
        UnknownKeys,
        load_trace_files,
        read_warnings,
        too_deep_reads,
        too_deep_warning,
    )
    from fluo_lang.trace import assemble, collector_paused, dropped_copies

    given = [x for x in (expect_expr, detect_expr) if x is not None]
    stdin_once(trace_paths)
    if len(given) > 1:
        fail("give --expect or --detect, not both")
    if given and paths:
        fail("give rule files or --expect/--detect, not both")
    if not given and not paths:
        fail("no rules: give rule files or folders before --traces, or --expect/--detect EXPR")
    if given:
        mode = "expect" if expect_expr is not None else "detect"
        analysis = with_cost_limit(analyze_expression(given[0], mode), cost_limit)
    else:
        analysis = load_rules(paths, cost_limit)
    if analysis.has_errors:
        print_diagnostics(analysis, "text", err=True)
        sys.exit(1)
    for d in analysis.diagnostics:
        click.echo(d.format_with_notes(), err=True)
    program = compile_program(analysis, budget=eval_budget or None)
    if not program.rules:  # ran, and said so: an empty or all-disabled rule set checks nothing
        click.echo(
            one_line(f"fluo: no rules to evaluate in {', '.join(paths)} (none defined, or all disabled)"), err=True
        )
    with collector_paused():
        clamped: dict[str, list[Span]] = {}
        sources: dict[str, int] = {}
        unknown = UnknownKeys()
        deep_before = too_deep_reads()
        try:
            spans = load_trace_files(trace_paths, program.prefetch, clamped, unknown, sources)
        except TraceInputError as exc:
            fail(str(exc))
        traces = assemble(spans)
        for warning in unknown.warnings() + read_warnings(clamped, dropped_copies(spans, traces), spans, sources):
            click.echo(f"fluo: warning: {warning}", err=True)
        if not spans:
            # every span skipped for its ids (warned of above) is not an empty file
            what = "no spans with valid ids" if unknown.skipped else "no spans"
            if require_spans:  # an empty capture (a failed upstream step) is not a passing gate
                fail(f"{what} in {', '.join(trace_paths)}, and --require-spans was given")
            click.echo(one_line(f"fluo: {what} in {', '.join(trace_paths)}"), err=True)
        signals = program.evaluate(traces)
    deep = too_deep_warning(too_deep_reads() - deep_before)
    if deep is not None:
        click.echo(f"fluo: warning: {deep}", err=True)
    for s in signals:
        if fmt == "jsonl":
            click.echo(dump_json(s.to_json()))
        else:
            where = s.trace_id if s.trace_id else f"window {s.window_start}..{s.window_end}"
            click.echo(one_line(f"[{s.severity}] {s.rule} {where}: {s.message}"))
    for e in program.errors:
        click.echo(f"fluo: internal error evaluating {e.rule} on trace {e.trace_id}: {e.message}", err=True)
    if program.errors:
        sys.exit(1)
    if signals and fail_on_signal:
        sys.exit(3)
    sys.exit(0)


if __name__ == "__main__":
    main()
