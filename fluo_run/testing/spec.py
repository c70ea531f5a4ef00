"""Test files: finding them, and reading one into checked cases, with every problem at its line.

A file-level problem (YAML that does not parse, an unknown top-level key, rules
that cannot be read or do not typecheck) stops the file; a case-level problem
(a missing fixture, a bad inline span, an unknown rule in `expect`) stops that
case only, so the other cases and files still run.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fluo_lang.api import (
    RULE_SUFFIX,
    Analysis,
    RuleSourceError,
    Stamp,
    analyze,
    decode_source,
    read_file,
    read_sources,
    rule_files,
    stamp,
)
from fluo_lang.diagnostics import nearest, plural
from fluo_lang.evaluate import TRUNCATED_RULE
from fluo_lang.files import link_problem, real_path, unreachable
from fluo_lang.folders import walk
from fluo_lang.otlp import TRACE_FILE_NAMES, TraceInputError, is_trace_file_name, trace_files_in
from fluo_lang.trace import Span
from fluo_lang.values import quoted

from .document import LineDict, LineList, YamlError, line_of, load, not_text
from .inline import InlineSpanError, build_spans, exact_duration, text_value, trace_id_for

TEST_SUFFIXES = ("_test.yaml", ".fluotest.yaml")
FILE_KEYS = ("rules", "cases", "description")
CASE_KEYS = ("name", "description", "traces", "spans", "expect", "only")
EXPECT_KEYS = ("rule", "trace_id", "trace", "count", "observed")
MAX_COUNT = 1_000_000
"""The most signals one `expect:` entry may stand for: far past any case, and a typo past it is an error."""

MAX_TEST_FILE_BYTES = 256 << 20
"""The largest test file read (inline spans make big ones; a link to `/dev/zero` would be endless)."""


def read_test_file(path: str | Path) -> bytes:
    """A test file's bytes: a regular file (links followed) of at most `MAX_TEST_FILE_BYTES`; OSError otherwise,
    before anything endless (a device, a FIFO) is read."""
    data = read_file(path, MAX_TEST_FILE_BYTES)
    if len(data) > MAX_TEST_FILE_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_TEST_FILE_BYTES >> 20} MiB")
    return data


@dataclass(frozen=True)
class Problem:
    """Something wrong with a test file, at a 1-based line of it.

    `code` sorts problems for the language server, which finds some of them with
    exact ranges itself: `yaml`, `missing-rules-file`, `missing-fixture`,
    `unknown-rule`; every other problem is `test-file`.
    """

    path: str
    line: int
    message: str
    code: str = "test-file"

    def format(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "message": self.message}


@dataclass
class Expectation:
    """Signals a case expects: `count` (default 1) distinct signals of `rule` that also match the rest."""

    rule: str
    line: int
    count: int = 1
    trace_id: str | None = None
    trace: str | None = None
    observed: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule}
        if self.trace is not None:
            out["trace"] = self.trace
        if self.trace_id is not None:
            out["trace_id"] = self.trace_id
        if self.count != 1:
            out["count"] = self.count
        if self.observed is not None:
            out["observed"] = self.observed
        return out


@dataclass
class Case:
    name: str
    line: int
    index: int
    traces: list[tuple[Path, int]] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    """Folders `traces:` names (their files are in `traces`): `--watch` notices a file added to one."""
    spans: list[Span] = field(default_factory=list)
    expect: list[Expectation] | None = None
    only: tuple[str, ...] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class TestFile:
    __test__ = False  # not a pytest test class, despite the name

    path: Path
    display: str
    rule_paths: list[Path] = field(default_factory=list)
    analysis: Analysis | None = None
    cases: list[Case] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    digest: bytes | None = None
    """`source_digest` of the bytes the run read (None for text given, an editor's): `--update` writes only
    a file that still holds them, as its cases are rewritten by their place in it."""

    @property
    def loaded(self) -> bool:
        return not self.problems


def source_digest(data: bytes) -> bytes:
    """What tells a test file's text from another, kept in place of the text."""
    return hashlib.blake2b(data, digest_size=16).digest()


def display_path(path: Path) -> str:
    """The path as it was reached (named, or found below a folder named), its `.` and `..` parts resolved as
    text: an absolute path stays absolute, as `fluo check` and `fluo eval` keep it, so a JUnit `classname`
    does not depend on the working folder."""
    return os.path.normpath(path)


def short_path(path: Path) -> str:
    """An absolute path the command made itself (the watch keys files by one) as a person reads it: relative
    to the working folder when it is below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


_RULE_TEST_KEY = re.compile(r"""^["']?(?:cases|rules)["']?[ \t]*:""", re.MULTILINE)


def is_rule_test(path: Path | str, text: str | None = None) -> bool:
    """Whether a test-named file is FLUO's: `*.fluotest.yaml` always; `*_test.yaml` when it has a top-level
    `cases:` or `rules:` key, since other tools name their tests so too (helm-unittest's `tests/*_test.yaml`).

    `text` is the file's text if the caller has it; a file that cannot be read counts as FLUO's, so
    reading it again reports why. A byte order mark before the first key is no part of it.
    """
    name = Path(path).name
    if name.endswith(".fluotest.yaml"):
        return True
    if not name.endswith("_test.yaml"):
        return False
    if text is None:
        try:
            text = read_test_file(path).decode("utf-8", errors="replace")
        except OSError:
            return True
    text = text.removeprefix("\ufeff")
    if _RULE_TEST_KEY.search(text) is not None:
        return True
    # Flow style (JSON is YAML too): `{"rules": [...], "cases": [...]}` has no key at a line's start.
    if _FLOW_MAPPING.match(text) is None:
        return False
    try:
        doc = load(text)
    except (YamlError, RecursionError):
        return True  # reading it again reports why
    return isinstance(doc, dict) and ("cases" in doc or "rules" in doc)


_FLOW_MAPPING = re.compile(r"(?:[ \t\r\n]|#[^\n]*)*\{")
"""A document that opens with a flow mapping, after blank lines and comments (YAML's white space only, so the
VS Code extension's `isRuleTest` can keep the same rule: tests/testing_fixtures/is_rule_test.json)."""

NO_TEST_FILES = "no test files (*.fluotest.yaml, or *_test.yaml with a top-level `cases:`)"


def find_test_files(paths: Sequence[str | Path]) -> list[Path]:
    """Test files named (any YAML file), found below folders, or testing rule files named, in a stable order.

    Below a folder, hidden files and folders, `folders.SKIPPED_DIRS`, what is not a file (a dangling symbolic
    link, such as an editor's lock `.#x_test.yaml`) and a `*_test.yaml` file that is not FLUO's
    (`is_rule_test`) are passed over. A `.fluo` file stands for the test files that test it
    (`tests_of`). A folder's files come in path order. Each file comes once, by the path it was first reached
    by (through a linked folder, the link's path, not where the file really is).

    Raises FileNotFoundError, with a one-line message, for a missing path, a named file that is neither
    YAML nor a rule file, a named rule file that no test file tests (whatever else is named), or when no
    test file is found; the last two name the files that look like misnamed ones. A folder below that cannot
    be read raises the OSError reading it did (PermissionError), with a one-line message naming it.
    """
    out: list[Path] = []
    untested: list[Path] = []
    for p in paths:
        path = Path(p)
        if (exc := unreachable(path)) is not None:  # a folder on the way cannot be searched
            _unreadable(exc)
        if path.is_dir():
            out.extend(_search(path))
        elif path.is_file() and path.suffix in (".yaml", ".yml"):
            out.append(path)
        elif path.is_file() and path.name.endswith(RULE_SUFFIX):
            found = tests_of(path)
            out.extend(found)
            if not found:
                untested.append(path)
        elif path.is_file():
            message = "is not a test file: name a *_test.yaml file, a .fluo file to run its tests, or a folder"
            raise FileNotFoundError(f"{p} {message}")
        elif path.exists():  # a device, FIFO or socket (or a link to one): never read
            raise FileNotFoundError(f"{p}: not a regular file")
        else:
            raise FileNotFoundError(f"{p}: {link_problem(path) or 'no such file or folder'}")
    if untested:  # even next to tested ones: a new rule file without tests is what a pre-commit hook must catch
        named = ", ".join(map(str, untested))
        where = "its folder" if len(untested) == 1 else "their folders"
        why = f"none in {where} or below has it in `rules:` or is named after it (like NAME_test.yaml)"
        misses = [miss for r in untested for miss in _near_misses_of(r)]
        raise FileNotFoundError(f"no test files for {named}: {why}{_passed_over(misses)}")
    if not out:
        named = ", ".join(map(str, paths))
        raise FileNotFoundError(f"{NO_TEST_FILES} under {named}{_passed_over(list(_near_misses(paths)))}")
    seen: dict[Path, Path] = {}
    for f in out:
        seen.setdefault(real_path(f), f)
    return [Path(display_path(f)) for f in seen.values()]


def _walk(folder: Path, keep: Callable[[str], bool]) -> Iterator[Path]:
    """The files below `folder` whose name `keep` accepts (`folders.walk`), in path order; a name is looked at
    before the file is (a tree of 40,000 files is that many stat calls otherwise). A folder that cannot be read
    is an OSError of its kind naming it, as `fluo check` says it: not passed over."""
    return (f for f in walk(folder, keep, unreadable=_unreadable) if f.is_file())


def is_test_file_name(name: str) -> bool:
    """Whether a search of a folder looks at a file of this name as a test file."""
    return name.endswith(TEST_SUFFIXES)


def _unreadable(exc: OSError) -> None:
    """A listing's error raised again, of its own kind (a PermissionError, most often), with a one-line message."""
    raise type(exc)(f"cannot read {display_path(Path(exc.filename))}: {exc.strerror or exc}") from exc


def _search(folder: Path) -> list[Path]:
    """FLUO's test files below `folder`, by path, as `find_test_files` searches a folder."""
    return [f for f in _walk(folder, is_test_file_name) if is_rule_test(f)]


_TOP_KEY = re.compile(r"""^["']?([A-Za-z_]+)["']?[ \t]*:""", re.MULTILINE)


def _near_misses(paths: Sequence[str | Path], *, sure: bool = False) -> Iterator[tuple[Path, str]]:
    """Files below the folders that look like test files a typo keeps from being found, and the typo; and
    folders (the ones named too) named like test files.

    A YAML file otherwise named with `test` in its name (`orders-test.yaml`, `test_orders.yaml`) is one when
    it has a top-level `cases:`; only such names are read. With `sure`, a `*_test.yml` is one only so too
    (a warning beside test files that did run must not name another tool's tests).
    """
    for p in paths:
        if not Path(p).is_dir():
            continue
        for f in walk(Path(p), _near_miss_named, unreadable=_unreadable, folders=True):
            name = f.name
            if f.is_dir():
                if name.endswith((*TEST_SUFFIXES, "_test.yml", ".fluotest.yml")):
                    yield f, "a folder, not a file"
            elif not f.is_file():
                continue
            elif name.endswith(("_test.yml", ".fluotest.yml")):
                if not sure or "cases" in _top_keys(f):
                    yield f, "a test file's name ends in .yaml"
            elif name.endswith("_test.yaml"):
                keys = _top_keys(f)
                typo = next(((k, near) for k in keys if (near := nearest(k, ("cases", "rules")))), None)
                if typo is not None:
                    yield f, f"a top-level `{typo[0]}:`; did you mean `{typo[1]}:`?"
            elif _misnamed(name) and "cases" in _top_keys(f):
                yield f, f"a test file's name ends in _test.yaml; did you mean {_test_name(name)}?"


def _near_miss_named(name: str) -> bool:
    """A file name `_near_misses` looks at the file of: the rest cannot be one."""
    return name.endswith(("_test.yml", ".fluotest.yml", "_test.yaml")) or _misnamed(name)


_TEST_WORD = re.compile(r"(?i)(?:^|[-_.])tests?(?:[-_.]|$)")
"""`test` as a word of a file's name (`orders-test`, `test_orders`, `orders.tests`), not inside one (`latest`)."""


def _misnamed(name: str) -> bool:
    """A YAML file's name with the word `test` in it (any case) that is no test file's: `orders-test.yaml`,
    `test_a.yml`; not `latest.yaml` or `contest.yaml`."""
    stem, dot, suffix = name.rpartition(".")
    return (
        bool(dot)
        and suffix in ("yaml", "yml")
        and _TEST_WORD.search(stem) is not None
        and not name.endswith(".fluotest.yaml")
    )


def _test_name(name: str) -> str:
    """The name a misnamed test file (`_misnamed`) would be found by: `orders-test.yaml` is `orders_test.yaml`."""
    stem = name.rsplit(".", 1)[0]
    bare = re.sub(r"(?i)^tests?[-_.]+|[-_.]+tests?$", "", stem)
    return f"{bare or stem}_test.yaml"


def _top_keys(test_file: Path) -> list[str]:
    """The top-level keys written at a line's start in a file's text; none when it cannot be read."""
    try:
        text = read_test_file(test_file).decode("utf-8", errors="replace")
    except OSError:
        return []
    return _TOP_KEY.findall(text.removeprefix("\ufeff"))


def passed_over(paths: Sequence[str | Path], found: Sequence[Path]) -> list[str]:
    """Warnings naming the files below the folders named that look like misnamed test files (`_near_misses`,
    sure of it) and did not run, as `find_test_files` names them when it finds none; one per file."""
    ran = {real_path(f) for f in found}
    return [
        f"passed over {display_path(f)} ({why}); its cases did not run"
        for f, why in _near_misses(paths, sure=True)
        if real_path(f) not in ran
    ]


def _near_misses_of(rule_file: Path) -> Iterator[tuple[Path, str]]:
    """The near misses (`_near_misses`) below a rule file's folder that would test it: named after it, or naming it."""
    target = real_path(rule_file)
    for f, why in _near_misses([rule_file.parent]):
        if real_path(default_rules(f)) == target:
            yield f, why
            continue
        try:
            text = read_test_file(f).decode("utf-8", errors="replace")
        except OSError:
            continue
        if rule_file.name in text:
            yield f, why


def _passed_over(misses: Sequence[tuple[Path, str]]) -> str:
    """The usage error's hint naming near misses, at most three of them."""
    if not misses:
        return ""
    shown = [f"{display_path(f)} ({why})" for f, why in misses[:3]]
    return f"; passed over: {', '.join(shown)}" + (" ..." if len(misses) > 3 else "")


def tests_of(rule_file: Path) -> list[Path]:
    """The test files that test `rule_file`: those in its folder or below whose `rules:` names it or a
    folder holding it, and those without `rules:` named after it (`svc_test.yaml` tests `svc.fluo`).

    A test file named after it that cannot be read (not UTF-8, YAML that does not parse) counts
    too, so the run reports why; another one that cannot be read is not known to test it.
    """
    target = real_path(rule_file)
    folder = real_path(rule_file.parent)
    own = {rule_file.name[: -len(RULE_SUFFIX)] + suffix for suffix in TEST_SUFFIXES}
    out = []
    for f in _search(rule_file.parent):
        rules = _rules_named(f)
        if rules is None:
            if f.name in own and real_path(f.parent) == folder:
                out.append(f)
        elif any(r == target or r in target.parents for r in (real_path(x) for x in rules)):
            out.append(f)
    return out


def _rules_named(test_file: Path) -> list[Path] | None:
    """The rule files and folders a test file loads, as `_Reader.read_rules` finds them; None when unreadable."""
    try:
        text, bad = decode_source(read_test_file(test_file), str(test_file))
        doc = load(text) if bad is None else None
    except (OSError, YamlError):
        return None
    if not isinstance(doc, dict):
        return None
    raw = doc.get("rules")
    if raw is None:
        return [default_rules(test_file)]
    items = raw if isinstance(raw, list) else [raw]
    return [test_file.parent / x for x in items if isinstance(x, str) and x]


def default_rules(path: Path) -> Path:
    """`auth_test.yaml` and `auth.fluotest.yaml` (or `.yml`, named on the command line) test `auth.fluo`."""
    name = path.name
    for suffix in (*TEST_SUFFIXES, *(s.removesuffix("yaml") + "yml" for s in TEST_SUFFIXES)):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)] + RULE_SUFFIX)
    return path.with_suffix(RULE_SUFFIX)


class RuleLoader:
    """Analyses of rule files, shared by the test files that name the same ones."""

    def __init__(self) -> None:
        self.cache: dict[tuple[tuple[str, Stamp], ...], Analysis] = {}

    def keep_only(self, analyses: Collection[Analysis]) -> None:
        """Forget the analyses not among `analyses` (of rule files saved since, or no longer named)."""
        kept = {id(a) for a in analyses}
        self.cache = {k: a for k, a in self.cache.items() if id(a) in kept}

    def analysis(self, paths: Sequence[Path]) -> Analysis:
        """The analysis of the rule files `paths` name, kept under their stamps taken before they are read: a
        file saved while it is read is read again by the next run. A test file names rule files only (`.fluo`,
        links leading to one): no token file is read and quoted."""
        files = rule_files(paths, any_name=False)
        try:
            key = tuple((str(f), stamp(os.stat(f))) for f in files)
        except OSError:  # gone or unreadable: said by reading it, and nothing kept
            return analyze(read_sources(files, any_name=False))
        found = self.cache.get(key)
        if found is None:
            found = analyze(read_sources(files, any_name=False))
            self.cache[key] = found
        return found


class _Reader:
    """Reads one test file; collects problems instead of stopping at the first."""

    def __init__(
        self, path: Path, rules: RuleLoader, text: str | None = None, read_yaml: Callable[[str], Any] = load
    ) -> None:
        self.file = TestFile(path, display_path(path))
        self.text = text
        self.read_yaml = read_yaml
        self.where = self.file.display
        self.rules = rules
        self.rule_ids: set[str] = set()
        self.disabled: set[str] = set()
        self.windowed: dict[str, int] = {}  # window of each windowed rule, whose signals have no trace
        self.said: set[tuple[int, Problem]] = set()  # the problems recorded, by the case (its id) they are of

    def problem(self, line: int, message: str, case: Case | None = None, code: str = "test-file") -> None:
        """Record a problem; the same one again (`expect: [on, on]`) is said once."""
        problem = Problem(self.where, line, message, code)
        if (id(case), problem) not in self.said:
            self.said.add((id(case), problem))
            (case.problems if case is not None else self.file.problems).append(problem)

    def unknown_keys(self, mapping: LineDict, known: tuple[str, ...], what: str, case: Case | None = None) -> bool:
        bad = False
        for key in mapping:
            if key not in known:
                hint = nearest(key, known)
                tip = f"did you mean `{hint}`?" if hint else f"known keys: {', '.join(known)}"
                self.problem(mapping.line_of(key), f"unknown key `{key}` in {what}; {tip}", case)
                bad = True
        return bad

    def read(self) -> TestFile:
        self._read()
        self.file.problems.sort(key=lambda p: p.line)
        return self.file

    def _read(self) -> TestFile:
        text = self.text
        if text is None:
            try:
                data = read_test_file(self.file.path)
            except OSError as exc:
                self.problem(1, f"cannot read the test file: {exc.strerror or exc}")
                return self.file
            self.file.digest = source_digest(data)
            text, bad = decode_source(data, self.where)  # as rule files are read: no BOM, UTF-8 or an error
            if bad is not None:
                self.problem(bad.span.line + 1, f"cannot read the test file: {bad.message}")
                return self.file
        try:
            doc = self.read_yaml(text)
        except YamlError as exc:
            self.problem(exc.line, str(exc), code=exc.code)
            return self.file
        if not isinstance(doc, LineDict):
            self.problem(line_of(doc), "a test file is a mapping with `rules:` and `cases:`")
            return self.file
        self.unknown_keys(doc, FILE_KEYS, "the test file")
        self.read_rules(doc)
        cases = doc.get("cases")
        if not isinstance(cases, LineList) or not cases:
            self.problem(doc.line_of("cases"), "`cases:` must be a non-empty list of cases")
        if self.file.problems:
            return self.file
        assert isinstance(cases, LineList)
        names: dict[str, int] = {}
        for i, raw in enumerate(cases):
            case = self.read_case(i, raw, cases.line_of(i))
            if case.name in names:
                self.problem(case.line, f"another case is named {quoted(case.name)} (line {names[case.name]})", case)
            names.setdefault(case.name, case.line)
            self.file.cases.append(case)
        return self.file

    def read_rules(self, doc: LineDict) -> None:
        base = self.file.path.parent
        raw = doc.get("rules")
        line = doc.line_of("rules")
        if raw is None:
            default = default_rules(self.file.path)
            if not default.exists():
                missing = f"no `rules:` given and {default.name} does not exist next to the test file"
                self.problem(1, f"{missing}; add `rules: [FILE.fluo]`", code="missing-rules-file")
                return
            entries = [(default, 1)]
        else:
            items = raw if isinstance(raw, list) else [raw]
            if not items or not all(isinstance(x, str) and x for x in items):
                self.problem(line, "`rules:` must be a rule file or folder, or a list of them")
                return
            lines = [raw.line_of(i) for i in range(len(items))] if isinstance(raw, LineList) else [line] * len(items)
            entries = [(base / x, n) for x, n in zip(items, lines, strict=True)]
        for path, n in entries:
            if (exc := unreachable(path)) is not None:  # a folder on the way cannot be searched
                self.problem(n, f"cannot read {display_path(path)}: {exc.strerror or exc}")
            elif not path.exists():
                why = link_problem(path)
                self.problem(
                    n,
                    f"rule file {display_path(path)} {f'is {why}' if why else 'does not exist'}",
                    code="missing-rules-file",
                )
            elif not path.is_dir() and not path.name.endswith(RULE_SUFFIX):
                self.problem(n, f"`rules:` names {RULE_SUFFIX} files or folders: {display_path(path)} is neither")
        if self.file.problems:
            return
        self.file.rule_paths = [p for p, _ in entries]
        try:
            analysis = self.rules.analysis(self.file.rule_paths)
        except RuleSourceError as exc:
            self.problem(line, str(exc))
            return
        if analysis.has_errors:
            errors = [d for d in analysis.diagnostics if d.is_error]
            shown = "; ".join(d.format() for d in errors[:3])
            if len(errors) > 3:
                shown += f"; and {len(errors) - 3} more"
            codes = ", ".join(sorted({d.code for d in errors}))
            summary = f"{plural(len(errors), 'error')}: {codes}"
            self.problem(line, f"the rules do not check ({summary}; run `fluo check`): {shown}")
            return
        if not analysis.rules:
            where = ", ".join(display_path(p) for p in self.file.rule_paths)
            self.problem(line, f"no rules in {where}: name .fluo files or folders that hold some")
            return
        self.file.analysis = analysis
        self.rule_ids = {r.id for r in analysis.rules if r.enabled}
        self.windowed = {r.id: r.window_ns for r in analysis.rules if r.window_ns is not None}
        self.disabled = {r.id for r in analysis.rules if not r.enabled}

    def read_case(self, index: int, raw: Any, line: int) -> Case:
        case = Case(name=f"case {index + 1}", line=line, index=index)
        if not isinstance(raw, LineDict):
            self.problem(line, "a case is a mapping with `name:`, `traces:` or `spans:`, and `expect:`", case)
            return case
        name = raw.get("name")
        if isinstance(name, bool | int | float):
            self.problem(raw.line_of("name"), str(not_text(name, raw.text_of("name"), "name")), case)
        elif isinstance(name, str) and not name.strip():
            what = "empty" if not name else "only spaces"
            self.problem(raw.line_of("name"), f"the case's `name:` is {what}: every case needs a name (text)", case)
        elif not isinstance(name, str):
            self.problem(raw.line_of("name"), "every case needs a `name:` (text)", case)
        else:
            case.name = name
        self.unknown_keys(raw, CASE_KEYS, f"case {quoted(case.name)}", case)
        self.read_traces(raw, case)
        self.read_spans(raw, case)
        if "traces" not in raw and "spans" not in raw:
            self.problem(line, f"case {quoted(case.name)} has no `traces:` or `spans:` to run the rules on", case)
        if raw.get("only") == []:
            why = "names no rule, so no rule would run; name the rules to run, or leave `only:` out"
            self.problem(raw.line_of("only"), f"case {quoted(case.name)}: `only: []` {why}", case)
        elif "only" in raw:
            case.only = tuple(self.rule_list(raw, "only", case))
        if raw.get("expect") is not None:  # `expect:` with nothing under it is not written yet, not `[]`
            case.expect = self.read_expect(raw, case)
        return case

    def read_traces(self, raw: LineDict, case: Case) -> None:
        value = raw.get("traces")
        if value is None:
            return
        items = value if isinstance(value, list) else [value]
        of = f"case {quoted(case.name)}: "  # a fixture's problem says whose, as the case's other problems do
        for i, item in enumerate(items):
            n = value.line_of(i) if isinstance(value, LineList) else raw.line_of("traces")
            if not isinstance(item, str) or not item:
                self.problem(n, of + "`traces:` must be a trace file or a list of them (OTLP JSON or protobuf)", case)
                continue
            path = self.file.path.parent / item
            if (exc := unreachable(path)) is not None:  # a folder on the way cannot be searched
                self.problem(n, f"{of}cannot read {display_path(path)}: {exc.strerror or exc}", case)
                continue
            if not path.is_dir() and not (is_trace_file_name(path.name) and is_trace_file_name(real_path(path).name)):
                what = "is not" if not is_trace_file_name(path.name) else "is a link to a file that is not"
                self.problem(
                    n, f"{of}`traces:` names trace files ({TRACE_FILE_NAMES}) or folders: {item} {what} one", case
                )
                continue
            if path.is_dir():  # a folder: its trace files, as `fluo eval --traces` reads one
                try:
                    found = trace_files_in(path)
                except TraceInputError as exc:
                    self.problem(n, of + str(exc), case)
                    continue
                if not found:
                    self.problem(n, f"{of}no trace files (OTLP JSON or protobuf) in folder {display_path(path)}", case)
                case.traces.extend((f, n) for f in found)
                case.folders.append(path)
                continue
            if not path.exists():
                why = link_problem(path)
                said = f"is {why}" if why else "does not exist"
                self.problem(n, f"{of}trace file {display_path(path)} {said}", case, code="missing-fixture")
                continue
            if not path.is_file():  # a device (/dev/zero, which never ends) or a pipe
                self.problem(n, f"{of}trace file {display_path(path)} is not a regular file; give an OTLP file", case)
                continue
            case.traces.append((path, n))

    def read_spans(self, raw: LineDict, case: Case) -> None:
        value = raw.get("spans")
        if value is None:
            return
        if not isinstance(value, LineList):
            self.problem(raw.line_of("spans"), "`spans:` must be a list like [{name: login, duration: 20ms}]", case)
            return
        try:
            case.spans = build_spans(value, where=f"case {quoted(case.name)}", seed=case.name)
        except InlineSpanError as exc:
            item = value[exc.index] if 0 <= exc.index < len(value) else None
            n = item.line_of(exc.key) if isinstance(item, LineDict) and exc.key else value.line_of(exc.index)
            n = exc.line or n
            self.problem(n, str(exc), case)
            return
        labels = {text_value(x, "trace") or "" for x in value if isinstance(x, dict)}  # as the spans read them
        case.labels = {label: trace_id_for(case.name, label).hex() for label in labels}

    def rule_list(self, raw: LineDict, key: str, case: Case) -> list[str]:
        value = raw.get(key)
        items = value if isinstance(value, list) else [value]
        out = []
        for i, item in enumerate(items):
            if isinstance(value, LineList):
                n, written, said = value.line_of(i), value.text_of(i), None
            else:
                n, written, said = raw.line_of(key), raw.text_of(key), key
            if self.check_rule(item, n, case, written, said):
                out.append(item)
        return out

    def check_rule(self, rule: Any, line: int, case: Case, written: str | None = None, key: str | None = None) -> bool:
        """Whether `rule` names a rule that runs; `written` is its text when YAML read it as something else
        (`rule: on` is True), `key` the key it is the value of (None for a list item)."""
        if not isinstance(rule, str) or not rule:
            why = _id_not_text(rule, written, key) or "a rule id is text, like auth_retry_storm"
            self.problem(line, why, case)
            return False
        if rule in self.disabled:
            self.problem(line, f"case {quoted(case.name)}: rule `{rule}` is disabled, so it never fires", case)
            return False
        if rule not in self.rule_ids and rule != TRUNCATED_RULE:  # the evaluator's own signal may be expected too
            hint = nearest(rule, sorted(self.rule_ids))
            tip = f"did you mean `{hint}`?" if hint else f"the rules here are {', '.join(sorted(self.rule_ids))}"
            files = ", ".join(display_path(p) for p in self.file.rule_paths)
            self.problem(
                line, f"case {quoted(case.name)}: no rule `{rule}` in {files}; {tip}", case, code="unknown-rule"
            )
            return False
        return True

    def read_expect(self, raw: LineDict, case: Case) -> list[Expectation]:
        value = raw.get("expect")
        if not isinstance(value, LineList):
            self.problem(raw.line_of("expect"), "`expect:` must be a list of signals like {rule: ID}, or []", case)
            return []
        out = []
        for i, item in enumerate(value):
            n = value.line_of(i)
            if isinstance(item, str):
                item_map = LineDict(rule=item)
                item_map.line, item_map.key_lines, item_map.written = n, {"rule": n}, {}
                item = item_map
            if not isinstance(item, LineDict):
                why = _id_not_text(item, value.text_of(i))
                self.problem(n, why or "an expected signal is a mapping like {rule: ID, count: 2}", case)
                continue
            expectation = self.read_expectation(item, case, inline_only="traces" not in raw)
            if expectation is not None:
                out.append(expectation)
        return out

    def read_expectation(self, item: LineDict, case: Case, *, inline_only: bool) -> Expectation | None:
        """One entry of `expect:`; `inline_only`: the case has no trace files, so its trace ids are all known."""
        if self.unknown_keys(item, EXPECT_KEYS, "an expected signal", case):
            return None
        if "rule" not in item:
            self.problem(item.line, "an expected signal needs `rule:`", case)
            return None
        if not self.check_rule(item["rule"], item.line_of("rule"), case, item.text_of("rule"), "rule"):
            return None
        # the evaluator's own signal comes of the rules that run, so `only:` need not name it
        if case.only is not None and item["rule"] not in case.only and item["rule"] != TRUNCATED_RULE:
            only = ", ".join(case.only) or "nothing"
            self.problem(item.line_of("rule"), f"rule `{item['rule']}` does not run in this case (only: {only})", case)
            return None
        e = Expectation(rule=item["rule"], line=item.line)
        count = item.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            self.problem(item.line_of("count"), f"`count:` must be a whole number 0 or more, got {count!r}", case)
            return None
        if count > MAX_COUNT:
            self.problem(item.line_of("count"), f"`count:` may be at most {MAX_COUNT:,}, got {count}", case)
            return None
        e.count = count
        window = self.windowed.get(e.rule)
        for key in ("trace", "trace_id"):
            if key in item and window is not None:
                where = f"case {quoted(case.name)}: rule `{e.rule}` is windowed (window {exact_duration(window)})"
                self.problem(item.line_of(key), f"{where}: its signals have no trace; drop `{key}:`", case)
                return None
        if item.get("trace_id") is not None:
            trace_id = text_value(item, "trace_id")  # 32 decimal digits are hex digits too, not a number
            if trace_id is None or len(trace_id) != 32 or not _is_hex(trace_id):
                shown = repr(trace_id if trace_id is not None else item["trace_id"])
                self.problem(item.line_of("trace_id"), f"`trace_id:` must be 32 hex digits, got {shown}", case)
                return None
            e.trace_id = trace_id.lower()
            if inline_only and e.trace_id not in {s.trace_id.hex() for s in case.spans}:
                labels = ", ".join(repr(x) for x in sorted(case.labels) if x)
                hint = f"; its inline traces are labelled {labels}: say `trace:`" if labels else ""
                self.problem(item.line_of("trace_id"), f"no trace of this case has trace_id {e.trace_id}{hint}", case)
                return None
        if item.get("trace") is not None:
            label = text_value(item, "trace")  # as written, as the spans' `trace:` labels are read
            if label is None:
                why = not_text(item["trace"], item.text_of("trace"), "trace")
                self.problem(item.line_of("trace"), why or f"`trace:` must be a label, got {item['trace']!r}", case)
                return None
            if label not in case.labels:
                known = ", ".join(repr(x) for x in sorted(case.labels) if x) or "none"
                message = f"no inline trace labelled {label!r} in this case (labels: {known})"
                self.problem(item.line_of("trace"), message, case)
                return None
            e.trace = label
        observed = item.get("observed")
        if observed is not None:
            if not isinstance(observed, dict):
                self.problem(item.line_of("observed"), "`observed:` must be a mapping like {count: 7}", case)
                return None
            e.observed = _plain(observed)
        return e


def _id_not_text(value: Any, written: str | None, key: str | None = None) -> str | None:
    """`not_text` for where a rule id belongs: a rule id YAML read as a boolean or null (`on`, `no`, `null`);
    a number is no rule id, so no quotes make it one."""
    return None if isinstance(value, int | float) and not isinstance(value, bool) else not_text(value, written, key)


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _plain(value: Any) -> Any:
    """Loaded YAML as plain dicts and lists (for JSON output and comparisons)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def load_test_file(
    path: Path, rules: RuleLoader | None = None, *, text: str | None = None, read_yaml: Callable[[str], Any] = load
) -> TestFile:
    """The test file at `path`, or `text` read as if it were there (an editor's unsaved buffer).

    `read_yaml` is `document.load`, or what gives the same values (the editor's cache of it); the values are only read.
    """
    return _Reader(path, rules or RuleLoader(), text, read_yaml).read()


def load_test_files(paths: Iterable[Path], rules: RuleLoader | None = None) -> list[TestFile]:
    loader = rules or RuleLoader()
    return [load_test_file(p, loader) for p in paths]
