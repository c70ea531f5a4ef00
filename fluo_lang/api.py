"""The calls every shell uses: `analyze` rule text, `compile_program` what checked.

The language server, the test runner, the runtime and the CLI all go through
these two functions, so they see the same diagnostics and run the same IR.
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from . import ast
from .compile import lower_rule, optimise
from .cost import DEFAULT_COST_LIMIT, DEFAULT_TRACE_SPANS, check_cost
from .diagnostics import Diagnostic, error, one_based, sort_key
from .evaluate import Program
from .files import real_path
from .folders import walk
from .ir import RuleIR
from .parser import MAX_FILE_BYTES, parse, parse_expression
from .regex import RegexBudget
from .typecheck import CheckedRule, check_files

RULE_SUFFIX = ".fluo"
NOT_RULE_SUFFIXES = (".yaml", ".yml")  # rule tests and `fluo serve --config` files: named, never read as rules


@dataclass
class Analysis:
    files: list[ast.RuleFile] = field(default_factory=list)
    rules: list[CheckedRule] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    hidden: list[Diagnostic] = field(default_factory=list)
    """What the checker said and `_without_cascades` dropped beside a syntax error: not reported, but the
    language server tells by it a quick fix's new errors from those the text has whatever the fix."""

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    def text_of(self, path: str) -> str:
        return next((f.text for f in self.files if f.path == path), "")


class RuleSourceError(Exception):
    """A rule path that cannot be read; its message is one line for the user. `advice` is said after it only
    where the path was named on the command line (`fluo check t.yaml`: run a rule test with `fluo test`), not
    in a file that names it (a rule test's `rules:`)."""

    def __init__(self, message: str, advice: str = "") -> None:
        super().__init__(message)
        self.advice = advice

    def for_command_line(self) -> str:
        """The message with its advice, for a command that was given the path."""
        return f"{self}{self.advice}"


def analyze(sources: Iterable[tuple[str, str]], regexes: dict[str, RegexBudget] | None = None) -> Analysis:
    """Parse and check (path, text) pairs together, so rule ids are unique across them; `regexes` as
    `typecheck.check_files` takes it."""
    files: list[ast.RuleFile] = []
    diags: list[Diagnostic] = []
    for path, text in sources:
        _parse_into(path, text, files, diags)
    return _check(files, diags, regexes)


def _parse_into(path: str, text: str, files: list[ast.RuleFile], diags: list[Diagnostic]) -> None:
    result = parse(text, path)
    files.append(result.file)
    diags.extend(result.diagnostics)


def analyze_expression(text: str, mode: str = "expect", rule_id: str = "cli") -> Analysis:
    """One expression from the command line, as an `expect` or `detect` rule."""
    result = parse_expression(text, f"<{mode}>")
    rules = [
        ast.Rule(r.span, rule_id, r.id_span, r.meta, (ast.Clause(c.span, mode, c.expr),), r.windows, True)  # type: ignore[arg-type]
        for r in result.file.rules
        for c in r.clauses[:1]
    ]
    if not rules and not result.diagnostics:
        result.diagnostics.append(error("FLUO104", "empty expression", ast.NO_SPAN, path=f"<{mode}>"))
    file = ast.RuleFile(result.file.path, text, tuple(rules))
    return _check([file], list(result.diagnostics))


def _check(
    files: list[ast.RuleFile], diags: list[Diagnostic], regexes: dict[str, RegexBudget] | None = None
) -> Analysis:
    checked, check_diags = check_files(files, regexes)
    kept = _without_cascades(files, diags, check_diags)
    diags.extend(kept)
    diags.sort(key=sort_key)
    shown = {id(d) for d in kept}
    return Analysis(files, checked, diags, [d for d in check_diags if id(d) not in shown])


def _without_cascades(
    files: list[ast.RuleFile], syntax: list[Diagnostic], checks: list[Diagnostic]
) -> list[Diagnostic]:
    """Drop type errors inside a clause that already has a syntax error: the parser's
    recovery guessed there, and what the checker says of the guess is noise.

    An error right after a clause (nothing but space between) may have cut it short:
    `count() s > 5` is read as the clause `count()` and an unexpected `s`. Only the
    clause's own value not being a boolean (FLUO301) is then dropped, as the cut is
    why; the type errors inside it stand, as they do when a stray token follows a
    whole clause.

    In a rule with a syntax error anywhere in it, what the checker says of the rule's
    shape (FLUO214, FLUO215: no `expect`, `when` without `always`; FLUO217: no window
    length) is about what the recovery kept, and the syntax error already names the
    mistake (`assert E`, `when E` without braces, `window 60`)."""
    broken: dict[str | None, list[ast.Span]] = {}
    cut: dict[str | None, set[ast.Span]] = {}
    misshapen: dict[str | None, list[ast.Span]] = {}
    for f in files:
        bad = [d.span.start for d in syntax if d.path == f.path and d.is_error]
        if not bad:
            continue
        for rule in f.rules:
            if any(rule.span.start <= pos <= rule.span.end for pos in bad):
                misshapen.setdefault(f.path, []).append(rule.span)
            for clause in rule.clauses:
                if any(clause.span.start <= pos <= clause.span.end for pos in bad):
                    broken.setdefault(f.path, []).append(clause.span)
                elif any(clause.span.end < pos and not f.text[clause.span.end : pos].strip() for pos in bad):
                    cut.setdefault(f.path, set()).add(clause.expr.span)
    if not broken and not cut and not misshapen:
        return checks
    return [
        d
        for d in checks
        if not any(sp.start <= d.span.start <= sp.end for sp in broken.get(d.path, []))
        and not (d.code == "FLUO301" and d.span in cut.get(d.path, ()))
        and not (d.code in SHAPE_CODES and any(sp.start <= d.span.start <= sp.end for sp in misshapen.get(d.path, [])))
    ]


SHAPE_CODES = frozenset({"FLUO214", "FLUO215", "FLUO217"})
"""What the checker says of a rule's shape (no `expect`, `when` without `always`, no window length)."""


def rule_files(paths: Iterable[str | Path], *, any_name: bool = True) -> list[Path]:
    """The `.fluo` files named, with folders searched recursively, in a stable order.

    Each file comes once, where it is first named: a file named twice (by any of its names: a symbolic or hard
    link, `_identity`), or named and also found in a folder named, is one file. The search (`folders.walk`)
    skips hidden files and folders and `folders.SKIPPED_DIRS` below the folders named, as `fluo test` does; a
    folder named is searched.
    A file named is rules whatever its name (with `any_name` false, only a `.fluo` file), except
    a YAML file: RuleSourceError, before any file is read. A `.fluo` file found in a folder, or named with
    `any_name` false, that is a link must lead to a `.fluo` file too (`_leads_elsewhere`).
    """
    found: dict[object, Path] = {}  # _identity -> as first named
    for p in paths:
        path = Path(p)
        if os.path.isdir(path):  # False, as exists() below, for a folder on the way that cannot be searched: `_missing`
            inside = _search(path)
            if not inside:
                raise RuleSourceError(f"{p}: no {RULE_SUFFIX} files in this folder")
            for f in inside:
                found.setdefault(_identity(f), f)
        elif os.path.exists(path):
            refuse_rule_file_name(p, any_name=any_name)
            if not any_name:
                _refuse_leading_elsewhere(path)
            found.setdefault(_identity(path), path)
        else:
            raise RuleSourceError(_missing(p))
    return list(found.values())


def refuse_rule_file_name(name: str | Path, *, any_name: bool = True) -> None:
    """RuleSourceError for a file named as rules that no command reads as rules: a YAML file (a rule test, a
    `fluo serve --config`), and, with `any_name` false (`fluo fmt`, which rewrites it), any but a `.fluo` file.
    Said of paths named and of `--stdin-filename`, the name given to rules read from standard input."""
    path = Path(name)
    if path.suffix.lower() in NOT_RULE_SUFFIXES:
        raise RuleSourceError(
            f"{name} is YAML, not a {RULE_SUFFIX} file: name rule files, or folders to search",
            f" (a rule test runs with `fluo test {name}`)",
        )
    if not any_name and not path.name.endswith(RULE_SUFFIX):
        raise RuleSourceError(f"{name} is not a {RULE_SUFFIX} file: name rule files, or folders to search")


def stdin_filename_problem(name: str | None, paths: Sequence[str], *, any_name: bool = True) -> str | None:
    """Why `--stdin-filename NAME` cannot stand with `paths` (`fluo check`, `fluo fmt`), said as a usage error;
    None when it can (or is not given). NAME is refused as the path itself would be (`refuse_rule_file_name`)."""
    if name is None:
        return None
    if "-" not in paths:
        return "--stdin-filename names the rules - reads from stdin; give - too"
    if name == "":
        return "--stdin-filename: give a path, e.g. rules/auth.fluo"
    try:
        refuse_rule_file_name(name, any_name=any_name)
    except RuleSourceError as exc:
        return f"--stdin-filename {exc.for_command_line()}"
    return None


def _identity(path: Path) -> object:
    """What tells one file from another whatever its name: its device and inode (two hard links are one file,
    whose rules `fluo check` would otherwise read twice, a FLUO213 for each), or where it resolves to if it
    cannot be looked at."""
    try:
        st = path.stat()
    except OSError:
        return real_path(path)
    return st.st_dev, st.st_ino


def _missing(path: str | Path) -> str:
    """Why a path named is neither a file nor a folder: not there, or (a symbolic link loop, a folder on the way
    that cannot be searched) what the system says, as `fluo eval --traces` says it."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            return f"cannot read {path}: {exc.strerror or exc}"
    return f"{path}: no such file or folder"


def _search(folder: Path) -> list[Path]:
    """The rule files below `folder`; RuleSourceError for a folder or file in it that cannot be read."""
    try:
        found = [f for f in walk(folder, is_rule_file_name) if f.is_file()]
    except OSError as exc:
        raise RuleSourceError(f"cannot read {exc.filename or folder}: {exc.strerror or exc}") from exc
    for f in found:
        _refuse_leading_elsewhere(f)
    return found


def is_rule_file_name(name: str) -> bool:
    """Whether a search of a folder takes a file of this name as rules."""
    return name.endswith(RULE_SUFFIX)


def _refuse_leading_elsewhere(path: Path) -> None:
    """RuleSourceError for a `.fluo` name that is a link to a file of another name (a token file, `/proc/self/environ`):
    its text is never read, so no diagnostic quotes it. A folder of rules (or a test file's `rules:`) may come
    from a change under review; a link there is followed only to another rule file."""
    if path.is_symlink() and not real_path(path).name.endswith(RULE_SUFFIX):
        raise RuleSourceError(
            f"{path} is a link to a file not named {RULE_SUFFIX}: rule files are read through links only to rule files"
        )


def decode_source(data: bytes, path: str) -> tuple[str, Diagnostic | None]:
    """A rule file's text from its bytes: UTF-8, without a leading byte order mark.

    Bytes that are not UTF-8 give FLUO106 at the first bad one, and the text with
    U+FFFD in their place (so offsets still count characters up to it).
    """
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")
        line = before.count("\n")
        col = len(before) - (before.rfind("\n") + 1)
        at = ast.Span(len(before), len(before) + 1, line, col, line, col + 1)
        human_line, human_col = one_based(at)
        message = f"not UTF-8: byte 0x{data[exc.start]:02x} at line {human_line}, column {human_col}"
        return data.decode("utf-8", errors="replace"), error("FLUO106", f"{message}; save it as UTF-8", at, path=path)


def read_file(path: str | Path, limit: int, *, pipes: bool = False) -> bytes:
    """The bytes of a regular file (a symlink followed to one), of which at most `limit + 1` are read:
    longer than `limit` is for the caller to refuse.

    OSError for anything else, before reading a byte: a device (`/dev/zero`), FIFO or socket
    reads without end or blocks, whatever its size says (0). Workspace files may be links to them.
    With `pipes`, a pipe is read too, still at most `limit + 1` bytes (`--config <(envsubst < fluo.yaml)`,
    `--config /dev/stdin`): opened waiting for a writer, as `cat` does, and read to its end; a named pipe opened
    without waiting read as empty when its writer came after fluo.
    """
    waits = pipes and _is_pipe(path)
    fd = os.open(path, os.O_RDONLY | (0 if waits else getattr(os, "O_NONBLOCK", 0)) | getattr(os, "O_NOCTTY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if pipes and stat.S_ISFIFO(mode):
            os.set_blocking(fd, True)
        elif not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file")
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _is_pipe(path: str | Path) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False  # `os.open` says why


Stamp = tuple[int, int, int, int]


def stamp(st: os.stat_result) -> Stamp:
    """What tells one version of a file from another without reading it, for every cache and watch of files:
    not the modification time alone, which `rsync -t`, `cp -p`, `touch -r` and a save through rename keep
    (the change time and the inode they cannot)."""
    return st.st_mtime_ns, st.st_size, st.st_ctime_ns, st.st_ino


_MAX_SOURCE_BYTES = MAX_FILE_BYTES + len(codecs.BOM_UTF8)


def read_rule_bytes(f: str | Path) -> bytes:
    """A rule file's bytes as every command reads them (`read_file`): at most one more than a file may hold (a
    byte order mark beside), for `source_of` to refuse. OSError for a file that cannot be read or is not a
    regular file (a FIFO, a device), before reading a byte."""
    return read_file(f, _MAX_SOURCE_BYTES)


def read_rule_stream(stream: BinaryIO) -> bytes:
    """`read_rule_bytes` of a stream (standard input): at most one byte more than a file may hold is read."""
    return stream.read(_MAX_SOURCE_BYTES + 1)


def _read_source(f: Path) -> tuple[str, Diagnostic | None]:
    """`source_of` a rule file read with `read_rule_bytes`; RuleSourceError for one that cannot be read."""
    try:
        data = read_rule_bytes(f)
    except OSError as exc:
        raise RuleSourceError(f"cannot read {f}: {exc.strerror or exc}") from exc
    return source_of(data, str(f))


def source_of(data: bytes, path: str) -> tuple[str, Diagnostic | None]:
    """`decode_source` of bytes `read_rule_bytes` or `read_rule_stream` read; FLUO402 (and no text) for more
    than a rule file may hold."""
    if len(data) > _MAX_SOURCE_BYTES:
        at = ast.Span(0, 0, 0, 0, 0, 0)
        return "", error("FLUO402", f"file is larger than {MAX_FILE_BYTES} bytes", at, path=path)
    return decode_source(data, path)


def read_sources(paths: Iterable[str | Path], *, any_name: bool = True) -> list[tuple[str, str]]:
    """(path, text) of every rule file `rule_files` finds (`any_name` as it takes it); RuleSourceError for one
    unreadable, too large or not UTF-8."""
    sources = []
    for f in rule_files(paths, any_name=any_name):
        text, problem = _read_source(f)
        if problem is not None:
            raise RuleSourceError(f"cannot read {f}: {problem.message}")
        sources.append((str(f), text))
    return sources


def analyze_paths(paths: Iterable[str | Path]) -> Analysis:
    """`analyze` of the rule files `rule_files` finds. A file that is not UTF-8 is a FLUO106
    diagnostic and the others are still checked; RuleSourceError for a path that cannot be read."""
    files: list[ast.RuleFile] = []
    diags: list[Diagnostic] = []
    for f in rule_files(paths):
        _add_source(str(f), _read_source(f), files, diags)
    return _check(files, diags)


STDIN_NAME = "<stdin>"
"""The path of rules read from standard input (`fluo check -`, `fluo fmt -`) in diagnostics."""


def analyze_stdin(stream: BinaryIO, name: str = STDIN_NAME) -> Analysis:
    """`analyze_paths` of one rule file read from `stream` (standard input), named `name` (`fluo check
    --stdin-filename`, or `STDIN_NAME`): at most one byte more than a file may hold is read."""
    files: list[ast.RuleFile] = []
    diags: list[Diagnostic] = []
    _add_source(name, source_of(read_rule_stream(stream), name), files, diags)
    return _check(files, diags)


def _add_source(
    path: str, source: tuple[str, Diagnostic | None], files: list[ast.RuleFile], diags: list[Diagnostic]
) -> None:
    text, problem = source
    if problem is None:
        _parse_into(path, text, files, diags)
    else:
        files.append(ast.RuleFile(path, text))
        diags.append(problem)


def lower(analysis: Analysis, *, optimised: bool = True) -> list[RuleIR]:
    """IR for every rule that checked without errors and is enabled."""
    out = []
    for rule in analysis.rules:
        if not rule.ok or not rule.enabled:
            continue
        ir = lower_rule(rule, analysis.text_of(rule.path))
        out.append(optimise(ir) if optimised else ir)
    return out


def compile_program(analysis: Analysis, budget: int | None = None) -> Program:
    """The analysis' rules compiled; with `budget`, each trace (or window) may spend that many span visits."""
    return Program(lower(analysis), budget=budget)


def cost_diagnostics(
    analysis: Analysis,
    limit: int = DEFAULT_COST_LIMIT,
    trace_spans: int = DEFAULT_TRACE_SPANS,
) -> list[Diagnostic]:
    """FLUO404 for every rule whose estimated span visits on a trace of `trace_spans` spans pass `limit`.

    Estimated on the optimised IR, the form that runs. `fluo check` adds these to the analysis'.
    """
    return check_cost(lower(analysis), limit, trace_spans)
