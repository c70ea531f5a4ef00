"""`fluo fmt`: rewrite rule files in the canonical layout, or with `--check` only report."""

from __future__ import annotations

import codecs
import sys

import click

from .api import (
    STDIN_NAME,
    RuleSourceError,
    read_rule_bytes,
    read_rule_stream,
    rule_files,
    source_of,
    stdin_filename_problem,
)
from .diagnostics import Diagnostic, plural
from .files import HalfWritten, StdinClosed, standard_input, write_replacing
from .format import FormatResult, format_source
from .one_value import OneValueCommand
from .values import one_line


@click.command(name="fmt", cls=OneValueCommand)
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False))
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if any file is not formatted.")
@click.option(
    "--stdin-filename",
    metavar="PATH",
    help="With -: the .fluo path the rules read from stdin are shown by, as `fluo check --stdin-filename`.",
)
def command(paths: tuple[str, ...], check: bool, stdin_filename: str | None) -> None:
    """Format rule files in place; folders are searched for *.fluo, - reads stdin and writes stdout.

    A file with syntax errors, or one that cannot be written, is left as it is and the
    reason is printed. The new text is written whole beside a file before it takes the
    file's place, so a failed write loses no text. Files are UTF-8; a leading byte
    order mark is kept, as the line endings are.
    A file named must be a .fluo file (a test file's YAML is not formatted).

    Exit status: 0 formatted (or already so), 1 `--check` found files to change,
    2 usage error, a file that cannot be read or written, or syntax errors.

    \b
    Examples:
      fluo fmt rules/
      fluo fmt --check rules/      # in CI
      fluo fmt - --stdin-filename rules/auth.fluo < rules/auth.fluo   # an editor's buffer
    """
    refused = stdin_filename_problem(stdin_filename, paths, any_name=False)  # fmt formats .fluo files only
    if refused is not None:
        _fail(refused)
    if "-" in paths:
        if len(paths) > 1:
            _fail("give - alone, or files and folders")
        try:
            stream = standard_input()
        except StdinClosed as exc:
            _fail(str(exc))
            raise AssertionError from exc  # unreachable: _fail exits
        name = stdin_filename or STDIN_NAME
        data = read_rule_stream(stream)  # at most a byte past the limit, as `fluo check -` reads it
        text, problem = source_of(data, name)
        if problem is not None:
            click.echo(problem.format(), err=True)
            sys.exit(2)
        result = format_source(text, name)
        if result.text is None:
            for d in result.diagnostics:
                click.echo(d.format_with_notes(), err=True)
            sys.exit(2)
        if check:
            if result.text != text:
                click.echo(f"would reformat {one_line(name)}")  # as for a file: a CI log says why the step failed
            sys.exit(0 if result.text == text else 1)
        # the bytes themselves: click.echo would drop escape sequences when stdout is not a terminal,
        # and a text stream would encode in the locale's encoding (and translate line ends on Windows)
        # (a reader gone, `> /dev/full`, a closed stdout: `fluo_run.cli.LazyGroup` says so, as for every command)
        sys.stdout.buffer.write((_bom(data) + result.text).encode("utf-8"))
        sys.stdout.buffer.flush()
        sys.exit(0)
    if "" in paths and not check:  # most likely an unset shell variable: it would rewrite the current folder's files
        _fail("an empty path names no file or folder to rewrite; give `.` for the current folder")
    try:
        files = rule_files(paths, any_name=False)  # fmt rewrites what it is given: no oddly named file
    except RuleSourceError as exc:
        _fail(exc.for_command_line())
    changed = broken = unread = 0
    for f in files:
        name = one_line(str(f))  # as `fluo check` prints it: a newline or ESC in a name is escaped
        try:  # as `fluo check` reads it: a regular file only, at most a byte past the limit
            data = read_rule_bytes(f)
        except OSError as exc:
            click.echo(f"fluo: cannot read {name}: {exc.strerror or exc}", err=True)
            broken += 1
            unread += 1
            continue
        text, problem = source_of(data, str(f))
        result = format_source(text, str(f)) if problem is None else FormatResult(None, [problem])
        if result.text is None:
            for d in result.diagnostics:
                click.echo(d.format_with_notes(), err=True)
            click.echo(f"fluo: {name} {_unformattable(result.diagnostics)}; left unchanged", err=True)
            broken += 1
        elif check:
            if result.text != text:
                changed += 1
                click.echo(f"would reformat {name}")
        elif result.text != text:
            try:
                write_replacing(f, (_bom(data) + result.text).encode("utf-8"))
            except OSError as exc:
                click.echo(f"fluo: cannot rewrite {name}: {one_line(_why(exc))}", err=True)
                broken += 1
                continue
            changed += 1
            click.echo(f"reformatted {name}", err=True)
    verb = "would be reformatted" if check else "reformatted"
    not_read = f"; {unread} could not be read" if unread else ""  # not counted among those that would not change
    click.echo(f"{changed} of {plural(len(files), 'file')} {verb}{not_read}", err=True)
    if broken:
        sys.exit(2)
    sys.exit(1 if check and changed else 0)


def _bom(data: bytes) -> str:
    """The byte order mark `data` starts with, to write back: the formatter changes whitespace only, and
    the server's Format Document keeps it too (its edits start after it)."""
    return "\ufeff" if data.startswith(codecs.BOM_UTF8) else ""


def _unformattable(diags: list[Diagnostic]) -> str:
    """Why a file with these errors is not formatted, said after its name (the errors are printed above it)."""
    codes = sorted({d.code for d in diags})
    if not codes or any(c not in UNFORMATTABLE for c in codes):
        return "has syntax errors"
    return " and ".join(UNFORMATTABLE[c] for c in codes)


UNFORMATTABLE = {
    "FLUO106": "is not UTF-8",
    "FLUO400": "is nested too deeply to format",
    "FLUO401": "has a rule too large to format",
    "FLUO402": "is too large to format",
}
"""What keeps a file from being formatted that is no syntax error, as the line saying it is left unchanged says it."""


def _why(exc: OSError) -> str:
    """Why a file could not be rewritten, and what became of it."""
    if isinstance(exc, HalfWritten):
        return str(exc.strerror)
    why = exc.strerror or str(exc)
    if isinstance(exc, PermissionError):
        return f"{why}; left unchanged (make it writable to format it, or see what would change with --check)"
    return f"{why}; left unchanged"


def _fail(message: str) -> None:
    click.echo(f"fluo: {one_line(message)}", err=True)
    sys.exit(2)
