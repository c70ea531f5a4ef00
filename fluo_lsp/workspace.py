"""What the server knows of the workspace beyond the open document.

- attribute keys seen in the trace fixtures under the workspace folders (OTLP JSON,
  JSON lines or protobuf, read with `fluo_lang.otlp`), for completion;
- rule files and rule test files, for test-file checks, go to definition and find references.

Every walk is bounded (files looked at, files read, bytes per file), skips hidden
folders and dependency folders, and caches what it read by `stamp` (modification and
change times, size, inode).
Open documents win over the files on disk.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from stat import S_ISREG
from typing import Any

from fluo_lang import ast
from fluo_lang.api import RULE_SUFFIX, Analysis, RuleSourceError, Stamp, decode_source, read_file, rule_files, stamp
from fluo_lang.diagnostics import Diagnostic, Related, error, nearest, one_based
from fluo_lang.files import real_path
from fluo_lang.folders import SKIPPED_DIRS, hidden, searched, virtualenv, walk
from fluo_lang.otlp import TraceInputError, UnknownKeys, is_trace_file_name, parse_trace_bytes
from fluo_lang.parser import without_accents
from fluo_lang.typecheck import duplicate_ids
from fluo_run.testing.document import LINE_BREAK, YamlError, load
from fluo_run.testing.spec import RuleLoader, is_rule_test, load_test_file

from .document import RuleDocument, read_rule_source, shift_span
from .testfiles import TestFile, is_test_file, read_test_file

MAX_WALK_ENTRIES = 20_000
MAX_TRACE_FILES = 200
MAX_TRACE_BYTES = 4 * 1024 * 1024
MAX_RULE_BYTES = 4 * 1024 * 1024
MAX_TEST_BYTES = 4 * 1024 * 1024
MAX_SIBLING_BYTES = 4 * 1024 * 1024
"""Bytes of the rule files beside an open one read to find the ids they define first (FLUO213), per check; and of
the rule files of the workspace folder that may define the new id of a rename analysed to find it, per rename."""
MAX_SEARCH_BYTES = 64 * 1024 * 1024
"""Bytes of the rule files of the workspace folder read to find those that may define the new id of a rename."""
MAX_KEYS = 2_000
RESCAN_SECONDS = 5.0
FIRST_SCAN_WAIT = 0.2
"""Seconds a request waits for the first scan of the workspace's traces before answering without their keys."""
log = logging.getLogger("fluo.lsp")
_SKIP_DIRS = SKIPPED_DIRS | {"venv", "build", "dist"}


def _entered(folder: str) -> bool:
    """Whether a walk of the workspace goes into a (not hidden) folder of this name: not one of tools and
    builds (`node_modules`, `dist`), where the command line's searches go but a workspace holds too much."""
    return folder not in _SKIP_DIRS


EXACT_CODES = frozenset({"unknown-rule", "missing-rules-file", "missing-fixture", "yaml"})
"""Problems the server finds in a test file with exact ranges; `fluo test`'s reader finds the rest (`test-file`)."""


@dataclass(frozen=True, slots=True)
class TestProblem:
    """A problem in a rule test file: `code` is one of `EXACT_CODES`, or `test-file` for any other."""

    code: str
    message: str
    start: int
    end: int
    suggestion: str | None = None  # the did-you-mean its quick fix writes in its place


@dataclass(frozen=True, slots=True)
class RuleSite:
    """Where a rule is defined: its file, the rule, and the offset its spans count from."""

    path: Path
    document: RuleDocument
    rule: ast.Rule
    base: int


@dataclass(frozen=True, slots=True)
class FolderSearch:
    """What `Workspace.folder_search` found: where a rule has the id searched for (None if none of the files looked
    at has it), and what could not be looked at, each in words for the user (`rules/locked: Permission denied`)."""

    site: RuleSite | None
    unchecked: tuple[str, ...]


@dataclass(slots=True)
class _Spent:
    """What a search of rule files on disk has spent: bytes read and analysed, and once past a budget, what
    it leaves unsearched (`Workspace._analysed_if_may_define`)."""

    read: int = 0
    analysed: int = 0
    over: str | None = None


class Workspace:
    def __init__(self, open_text: Callable[[Path], str | None]) -> None:
        self.folders: list[Path] = []
        self.extra_keys: tuple[str, ...] = ()
        self._open_text = open_text
        self._traces: dict[Path, tuple[Stamp, set[str], set[str]]] = {}
        self._keys: tuple[list[str], list[str]] | None = None
        self._keys_at = -RESCAN_SECONDS
        self._scan: threading.Thread | None = None
        self._scan_lock = threading.Lock()
        self._rule_docs: dict[Path, tuple[Stamp, RuleDocument | None]] = {}
        """The rule files read from disk, by `stamp`: None for one that could not be read."""
        self._open_docs: dict[Path, RuleDocument] = {}
        self._runner: OrderedDict[tuple[Path, str], tuple[Hashable, list[TestProblem]]] = OrderedDict()
        """The documents of the open rule files, as last analysed."""
        self._rules = _EditorRules(self)
        self._reader: ThreadPoolExecutor | None = None
        self._reading: dict[Path, Future[RuleDocument | None]] = {}
        """The rule files being read in the background (`_document_if_read`)."""
        self._waiting: dict[Path, set[Path]] = {}
        """For each file whose last check went on without files still being read beside it: those files."""
        self._read_lock = threading.Lock()
        """Guards `_reading` and `_waiting`, which the reading thread changes as each read ends."""
        self._closed = False
        self.open_paths: Callable[[], Iterable[Path]] = lambda: ()
        """The paths of the documents open in the editor (saved or not)."""
        self.on_read: Callable[[list[Path]], None] = lambda paths: None
        """Called from the reading thread with the files whose last check went on without files beside them,
        once those are read: each file once, however often it was checked while they were read."""

    def set_folders(self, folders: list[Path]) -> None:
        self.folders = [f for f in folders if f.is_dir()]
        self._keys_at = -RESCAN_SECONDS
        self._start_scan()

    def shown(self, path: Path) -> str:
        """How `fluo check` prints `path` run from the workspace folder holding it (`rules/a.fluo`);
        the whole path for a file in no workspace folder."""
        inside = [path.relative_to(f) for f in self.folders if path.is_relative_to(f)]
        return str(min(inside, key=lambda p: len(p.parts))) if inside else str(path)

    def passes_over(self, path: Path) -> bool:
        """Whether `path` is hidden or in a hidden or skipped folder (`node_modules`, a virtualenv, ...) of a
        workspace folder, where `walk` never goes."""
        for folder in self.folders:
            try:
                parts = path.relative_to(folder).parts
            except ValueError:
                continue
            if any(hidden(p) for p in parts) or not all(_entered(p) for p in parts[:-1]):
                return True
            return any(virtualenv(folder.joinpath(*parts[: i + 1])) for i in range(len(parts) - 1))
        return False

    def walk(self, accept: Callable[[str], bool]) -> Iterator[Path]:
        """Files under the workspace folders whose name passes `accept`, within the walk budget, in path order
        (`folders.walk`: hidden files and folders passed over, and folders that cannot be read)."""
        seen = 0
        for folder in self.folders:
            for path in walk(folder, lambda name: True, enter=_entered, unreadable=None):
                seen += 1
                if seen > MAX_WALK_ENTRIES:
                    return
                if accept(path.name):
                    yield path

    # -- attribute keys ----------------------------------------------------------

    def attribute_keys(self) -> tuple[list[str], list[str]]:
        """(span attribute keys, resource attribute keys): the workspace's traces plus the configured keys.

        The traces are read in a background thread, never on the request path:
        large fixtures would stall every request behind the one that asked. A
        request gets the keys of the last scan (waiting a moment for the first).
        """
        self._start_scan()
        scan = self._scan
        if self._keys is None and scan is not None:
            scan.join(FIRST_SCAN_WAIT)
        span_keys, resource_keys = self._keys or ([], [])
        return sorted({*span_keys, *self.extra_keys}), resource_keys

    def rescan_traces(self) -> None:
        """Read the traces' keys again now (a fixture changed on disk), not at the next `RESCAN_SECONDS`."""
        with self._scan_lock:
            self._keys_at = -RESCAN_SECONDS
        self._start_scan()

    def _start_scan(self) -> None:
        """Scan the traces again in the background, if the last scan is older than `RESCAN_SECONDS` and done."""
        with self._scan_lock:
            now = time.monotonic()
            if now - self._keys_at <= RESCAN_SECONDS or (self._scan is not None and self._scan.is_alive()):
                return
            self._keys_at = now
            self._scan = threading.Thread(target=self._run_scan, name="fluo-lsp-trace-keys", daemon=True)
            self._scan.start()

    def _run_scan(self) -> None:
        try:
            self._keys = self._scan_traces()
        except Exception:  # a bug here must not take completion down: keep the keys we had
            log.exception("reading attribute keys from the workspace's traces failed")

    def _scan_traces(self) -> tuple[list[str], list[str]]:
        span_keys: set[str] = set()
        resource_keys: set[str] = set()
        count = 0
        for path in self.walk(is_trace_file_name):  # as the command line takes them: `.gz`, any case
            if count >= MAX_TRACE_FILES:
                break
            count += 1
            try:
                stat = path.stat()
            except OSError:
                continue
            cached = self._traces.get(path)
            if cached is None or cached[0] != stamp(stat):
                cached = (stamp(stat), *_keys_of(path))
                self._traces[path] = cached
            span_keys |= cached[1]
            resource_keys |= cached[2]
        return sorted(span_keys)[:MAX_KEYS], sorted(resource_keys)[:MAX_KEYS]

    # -- rule files ---------------------------------------------------------------

    def rule_document(self, path: Path) -> RuleDocument | None:
        """The analysed rule file at `path` (its open text if it is open), or None if unreadable."""
        text = self._open_text(path)
        if text is None:
            self._open_docs.pop(path, None)
            return self._disk_document(path)
        return self.open_document(path, text)

    def closed(self, path: Path) -> None:
        """The document at `path` is no longer open: its analysis is let go."""
        self._open_docs.pop(path, None)

    def open_document(self, path: Path, text: str) -> RuleDocument:
        """The analysed rule file at `path` open with `text`: the same object while the text is the same,
        for the server's checks of it and for the test files and rule files that read it."""
        name = self.shown(path)
        doc = self._open_docs.get(path)
        if doc is None or doc.source != text or doc.name != name:
            doc = self._open_docs[path] = RuleDocument(str(path), text, name, previous=doc)
        return doc

    def _disk_document(self, path: Path) -> RuleDocument | None:
        """The analysed rule file on disk (cached by `stamp`); safe to call from the reading thread."""
        try:
            stat = path.stat()
        except OSError:
            return None
        known = self._known(path, stat)
        if known is not None:
            return known[0]
        read = read_rule_source(path, MAX_RULE_BYTES)
        doc = None if read is None else RuleDocument(str(path), read[0], self.shown(path), unreadable=read[1])
        self._rule_docs[path] = (stamp(stat), doc)
        return doc

    def _known(self, path: Path, stat: os.stat_result) -> tuple[RuleDocument | None] | None:
        """What was read of the file at `path` (in a tuple: None if it could not be read), if it has not changed
        since; None if it is to be read."""
        cached = self._rule_docs.get(path)
        if cached is None or cached[0] != stamp(stat):
            return None
        doc = cached[1]
        return None if doc is not None and doc.name != self.shown(path) else (doc,)

    def changed_on_disk(self, paths: Iterable[Path]) -> None:
        """The client says these files changed on disk: what was read of them is read again, whatever their
        `stamp` (a coarse clock, or a change within one tick of it, can leave it the same)."""
        for path in paths:
            self._rule_docs.pop(path, None)
            self._traces.pop(path, None)
            with self._read_lock:  # a read under way may have begun before the change: read it again
                self._reading.pop(path, None)
        self.forget_disk()

    def sibling_duplicates(self, path: Path, doc: RuleDocument) -> list[tuple[Diagnostic, int]]:
        """FLUO213 for the rules of `doc` whose id a `.fluo` file beside it defines first.

        `fluo check FOLDER` and `fluo serve --rules FOLDER` load a folder's files
        together, in name order, and report the later definition; the editor does
        the same for the files of one folder (with their base offsets, as `doc.diagnostics()`).
        """
        beside = self.beside(path)
        pending: set[Path] = set()
        first = self.rule_ids(self._within_budget(sorted(p for p in beside if p.name < path.name)), pending)
        self._wait(path, pending)
        out: list[tuple[Diagnostic, int]] = []
        for rule, base in doc.rules():
            site = first.get(rule.id) if rule.id else None
            if site is None:
                continue
            at = shift_span(site.rule.id_span, site.base, site.document.index)
            message = f"rule id `{rule.id}` is already defined at {self.located(site)}"
            related = (Related("first defined here", at, str(site.path)),)
            out.append((error("FLUO213", message, rule.id_span, path=str(path), related=related), base))
        return out

    def located(self, site: RuleSite) -> str:
        """Where a rule's id is, as FLUO213 names it (`rules/a.fluo:2:6`)."""
        line, col = one_based(shift_span(site.rule.id_span, site.base, site.document.index))
        return f"{self.shown(site.path)}:{line}:{col}"

    def beside(self, path: Path) -> set[Path]:
        """The rule files of `path`'s folder (on disk or open, not hidden), `path` among them if it is one:
        those `fluo check FOLDER` loads together with it."""
        try:
            found = {p for p in path.parent.iterdir() if p.suffix == RULE_SUFFIX and p.is_file()}
        except OSError:
            found = set()
        found |= {p for p in self.open_paths() if p.parent == path.parent and p.suffix == RULE_SUFFIX}
        return {p for p in found if not hidden(p.name)}  # as a folder's search passes them over

    def clash(self, rule_path: Path, rule_id: str) -> tuple[RuleSite, str] | None:
        """Where a rule loaded together with those of `rule_path` by name already has the id `rule_id`, and which
        load that is (`fluo check rules`, `fluo test x_test.yaml`): None if none does.

        A rule of `rule_path` given that id would be FLUO213 in its own file, in its folder (`fluo check FOLDER`,
        and the editor's own diagnostics) and in each test file that loads it with other rule files (`fluo test`).
        The rest of the workspace folder, which `fluo check .` loads with it too, is `folder_search`'s.
        """
        loads: list[tuple[list[Path], str]] = [([rule_path], "the same file")]
        loads.append((sorted(self.beside(rule_path) - {rule_path}), f"`fluo check {self.shown(rule_path.parent)}`"))
        for test in self.test_files():
            if self.loads(test, rule_path):
                loads.append(([p for p, _ in test.rule_paths()], f"`fluo test {self.shown(test.path)}`"))
        for paths, how in loads:
            site = self.rule_ids(paths).get(rule_id)
            if site is not None:
                return site, how
        return None

    def folder_search(self, rule_path: Path, rule_id: str) -> Callable[[], FolderSearch] | None:
        """The search for a rule with the id `rule_id` among the rule files `fluo check .` loads with `rule_path`
        run in a workspace folder holding it, as CI runs it: the folder searched whole, sibling folders and all.
        None if no workspace folder holds it, or if that search passes it over (hidden, in `node_modules`).

        Made on the server's thread, which it takes the open documents from as they are now; run on any other
        (`_search`): it reads the files on disk, which a folder of thousands would hold every request up with.
        """
        holding = [f for f in self.folders if rule_path.is_relative_to(f) and _checked_below(f, rule_path)]
        roots = [f for f in holding if not any(f != g and f.is_relative_to(g) for g in holding)]  # each file once
        if not roots:
            return None
        opened = {
            p: doc
            for p in self.open_paths()
            if p.suffix == RULE_SUFFIX and any(p.is_relative_to(f) for f in roots)
            and (doc := self.rule_document(p)) is not None
        }  # fmt: skip
        return lambda: self._search(roots, rule_id, opened)

    def _search(self, roots: list[Path], rule_id: str, opened: dict[Path, RuleDocument]) -> FolderSearch:
        """`folder_search`'s search, in path order: within `MAX_WALK_ENTRIES` files looked at and `MAX_SEARCH_BYTES`
        read; only a file whose text may define `rule_id` (`_may_define`) is analysed, within `MAX_SIBLING_BYTES`
        (one analysed before, and unchanged, is not analysed again). What it could not look at is said, never
        passed over silently: a folder or file that cannot be read, a link `fluo check` refuses, the budgets."""
        unchecked: list[str] = []

        def unreadable(exc: OSError) -> None:
            where = self.shown(Path(exc.filename)) if exc.filename else "a folder"
            unchecked.append(f"{where}: {exc.strerror or exc}")

        seen = 0
        spent = _Spent()
        for root in roots:
            for path in walk(root, lambda name: True, unreadable=unreadable):  # `fluo check .`'s folders
                seen += 1
                if seen > MAX_WALK_ENTRIES:
                    unchecked.append(
                        f"{self.shown(path)} and the files after it (more than {MAX_WALK_ENTRIES:,} files)"
                    )
                    return FolderSearch(None, tuple(unchecked))
                if not path.name.endswith(RULE_SUFFIX):
                    continue
                doc = opened.pop(path, None)
                if doc is None:
                    try:
                        st = path.stat()
                    except OSError:  # a link to nothing: no file, which `fluo check` passes over too
                        continue
                    if not S_ISREG(st.st_mode):
                        continue
                    if path.is_symlink() and not real_path(path).name.endswith(RULE_SUFFIX):
                        why = f"a link to a file not named {RULE_SUFFIX}, which `fluo check` refuses to read"
                        unchecked.append(f"{self.shown(path)}: {why}")
                        continue
                    known = self._known(path, st)
                    doc = known[0] if known is not None else None
                if doc is None:
                    try:
                        doc = self._analysed_if_may_define(path, rule_id, spent)
                    except OSError as exc:
                        unchecked.append(f"{self.shown(path)}: {exc.strerror or exc}")
                        continue
                    if spent.over is not None:
                        unchecked.append(spent.over)
                        return FolderSearch(None, tuple(unchecked))
                    if doc is None:
                        continue
                    self._rule_docs[path] = (stamp(st), doc)
                site = _site_of(path, doc, rule_id)
                if site is not None:
                    return FolderSearch(site, tuple(unchecked))
        for path, doc in opened.items():  # open and not saved yet: `fluo check .` loads them once saved
            if not path.exists() and not self.passes_over(path) and (site := _site_of(path, doc, rule_id)):
                return FolderSearch(site, tuple(unchecked))
        return FolderSearch(None, tuple(unchecked))

    def _analysed_if_may_define(self, path: Path, rule_id: str, spent: _Spent) -> RuleDocument | None:
        """The rule file on disk at `path` analysed, if its text may define `rule_id` (`_may_define`) and the search
        has not spent its budgets (`spent`: `MAX_SEARCH_BYTES` read, `MAX_SIBLING_BYTES` analysed). None if it
        cannot define it, if `fluo check` reads none of its rules (FLUO402), or past a budget: `spent.over` then
        says, for the user, what is left unsearched. OSError if it cannot be read."""
        data = read_file(path, MAX_RULE_BYTES)
        if len(data) > MAX_RULE_BYTES:
            return None
        spent.read += len(data)
        if spent.read > MAX_SEARCH_BYTES:
            why = f"more than {MAX_SEARCH_BYTES // 1024 // 1024} MiB of rule files"
            spent.over = f"{self.shown(path)} and the files after it ({why})"
            return None
        text, bad = decode_source(data, str(path))
        if not _may_define(path.name, text, rule_id):
            return None
        spent.analysed += len(data)
        if spent.analysed > MAX_SIBLING_BYTES:
            why = f"more than {MAX_SIBLING_BYTES // 1024 // 1024} MiB of them to analyse"
            spent.over = f"{self.shown(path)} and the files after it holding `{rule_id}` ({why})"
            return None
        return RuleDocument(str(path), text, self.shown(path), unreadable=bad)

    def _within_budget(self, paths: list[Path]) -> list[Path]:
        """The first of `paths` whose files on disk hold at most `MAX_SIBLING_BYTES` together (open ones are free).

        They are read in the background (`_document_if_read`), but kept once read: without a bound, a
        folder of large rule files beside an open one would be held in memory whole.
        """
        out: list[Path] = []
        total = 0
        for p in paths:
            if self._open_text(p) is None:
                try:
                    total += p.stat().st_size
                except OSError:
                    continue
                if total > MAX_SIBLING_BYTES:
                    break
            out.append(p)
        return out

    def _document_if_read(self, path: Path, pending: set[Path]) -> RuleDocument | None:
        """`rule_document`, but a file on disk not read yet (or changed since) is read in the background: None for
        now, and `path` joins `pending`.

        Checks run on the server's main thread, which never waits for a read: a folder of many
        rule files would hold every request up while they are parsed.
        """
        if self._open_text(path) is not None:
            return self.rule_document(path)
        try:
            known = self._known(path, path.stat())
        except OSError:
            return None
        if known is not None:
            return known[0]
        with self._read_lock:
            if self._closed:
                return None
            if path not in self._reading:
                if self._reader is None:
                    self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fluo-lsp-rule-files")
                self._reading[path] = future = self._reader.submit(self._read_in_background, path)
            else:
                future = None
        if future is not None:  # outside the lock: a read already done calls back at once
            future.add_done_callback(lambda done: self._read(path, done))
        pending.add(path)
        return None

    def _read_in_background(self, path: Path) -> RuleDocument | None:
        """`_disk_document` in the reading thread. A read that raises (a bug met analysing the file) is logged
        and kept by `stamp` as one that could not be read: left to raise, it would be read again at each
        check, and each read end with a check again, for good."""
        try:
            before = stamp(path.stat())
        except OSError:
            return None
        try:
            return self._disk_document(path)
        except Exception:
            log.exception("fluo lsp: reading %s failed; it is left out until it changes", path)
            self._rule_docs[path] = (before, None)
            return None

    def _wait(self, checked: Path, pending: set[Path]) -> None:
        """The last check of `checked` went on without the files `pending`: call `on_read` once they are read (the
        sets of earlier checks are let go: their diagnostics are published over)."""
        with self._read_lock:
            left = {p for p in pending if p in self._reading}
            if left:
                self._waiting[checked] = left
            else:
                self._waiting.pop(checked, None)
        if pending and not left:  # read between the check and now
            self.on_read([checked])

    def _read(self, path: Path, future: Future[RuleDocument | None]) -> None:
        """A read of `_document_if_read` has ended (in the reading thread, or cancelled by `close`)."""
        ready: list[Path] = []
        with self._read_lock:
            if self._reading.get(path) is future:
                del self._reading[path]
            for checked, left in list(self._waiting.items()):
                left.discard(path)
                if not left:
                    del self._waiting[checked]
                    ready.append(checked)
            if self._closed:
                return
        if ready:
            self.on_read(ready)

    def close(self) -> None:
        """Stop reading: the reads not begun are dropped and no check hears of the one under way, so that the
        process can end (the client is gone)."""
        with self._read_lock:
            self._closed = True
            self._waiting.clear()
        if self._reader is not None:
            self._reader.shutdown(wait=False, cancel_futures=True)

    def rule_ids(
        self, paths: list[Path], pending: set[Path] | None = None, opened: Mapping[Path, RuleDocument] | None = None
    ) -> dict[str, RuleSite]:
        """The rules defined in these files and folders (searched as `fluo check` searches them).

        With `pending`, files on disk not read yet are read in the background and left out, and
        their paths added to `pending` (see `_document_if_read`). With `opened`, the open documents are those
        and the rest is read from disk, as any thread but the server's may (`definition_search`).
        """
        out: dict[str, RuleSite] = {}
        for path in _files_in(paths):
            if opened is not None:
                doc = opened[path] if path in opened else self._disk_document(path)
            else:
                doc = self.rule_document(path) if pending is None else self._document_if_read(path, pending)
            if doc is None:
                continue
            for rule, base in doc.rules():
                if rule.id:
                    out.setdefault(rule.id, RuleSite(path, doc, rule, base))
        return out

    def ids_in(self, paths: list[Path]) -> set[str]:
        """The ids of `rule_ids(paths)`, without locating each rule."""
        return {i for f in _files_in(paths) if (doc := self.rule_document(f)) is not None for i in doc.ids()}

    def definitions(
        self, rule_id: str, near: list[Path] | None = None, opened: Mapping[Path, RuleDocument] | None = None
    ) -> list[RuleSite]:
        """Where `rule_id` is defined: in the files `near` if it is there, else in the first rule file of the
        workspace that defines it (`_first_definition`; `opened` as `rule_ids` takes it)."""
        if near:
            site = self.rule_ids(near, opened=opened).get(rule_id)
            if site is not None:
                return [site]
        site = self._first_definition(rule_id, opened)
        return [site] if site is not None else []

    def _first_definition(self, rule_id: str, opened: Mapping[Path, RuleDocument] | None) -> RuleSite | None:
        """The first rule of the workspace's rule files (`walk`, in path order) with the id `rule_id`.

        Open documents are taken as they are (from `opened` if given, else `rule_document`). A file on
        disk is analysed only if its text may define the id, within the budgets of `_search`, and kept
        only if it does: a search of thousands of files stops at the first that defines it, and holds
        no more in memory than that one. What is past the budgets is left out (logged)."""
        spent = _Spent()
        for path in self.walk(lambda name: name.endswith(RULE_SUFFIX)):
            if opened is not None:
                doc = opened.get(path)
            else:
                doc = self.rule_document(path) if self._open_text(path) is not None else None
            read_at: Stamp | None = None  # of a file read here, kept if it defines the id
            if doc is None:
                try:
                    st = path.stat()
                    if not S_ISREG(st.st_mode):
                        continue
                    known = self._known(path, st)
                    if known is None:
                        read_at = stamp(st)
                        doc = self._analysed_if_may_define(path, rule_id, spent)
                    else:
                        doc = known[0]
                except OSError:
                    continue
                if spent.over is not None:
                    log.info("fluo lsp: the definition of `%s` was not looked for in %s", rule_id, spent.over)
                    return None
            site = _site_of(path, doc, rule_id) if doc is not None else None
            if site is not None:
                if read_at is not None:
                    self._rule_docs[path] = (read_at, site.document)
                return site
        return None

    def definition_search(self, rule_id: str, near: list[Path]) -> Callable[[], list[RuleSite]]:
        """`definitions`, to run on any thread but the server's: it reads the rule files of `near` on disk, and
        the workspace's until one defines the rule if it is not there, which would hold every request up.

        Made on the server's thread, which it takes the open rule documents (`.fluo`, or named in `near`) from as
        they are now."""
        opened = {
            p: doc
            for p in self.open_paths()
            if (p.suffix == RULE_SUFFIX or p in near) and (doc := self.rule_document(p)) is not None
        }
        return lambda: self.definitions(rule_id, near, opened)

    # -- test files ---------------------------------------------------------------

    def test_file(self, path: Path) -> TestFile | None:
        text = self._open_text(path)
        if text is None:
            try:
                data = read_file(path, MAX_TEST_BYTES)
                if len(data) > MAX_TEST_BYTES:
                    return None
                text = data.decode("utf-8")
            except (OSError, UnicodeDecodeError):
                return None
        return read_test_file(path, text) if is_rule_test(path, text) else None

    def test_files(self) -> list[TestFile]:
        return [t for p in self.walk(is_test_file) if (t := self.test_file(p)) is not None]

    def references(self, rule_id: str, rule_path: Path) -> list[tuple[Path, int, int]]:
        """Where test files that load `rule_path` expect `rule_id`: (test file, start, end)."""
        out: list[tuple[Path, int, int]] = []
        for test in self.test_files():
            if self.loads(test, rule_path):
                out.extend((test.path, n.start, n.end) for n in test.rule_ids if n.value == rule_id)
        return out

    @staticmethod
    def loads(test: TestFile, rule_path: Path) -> bool:
        """Whether `test` loads the rule file at `rule_path` (names it, or a folder above it)."""
        target = real_path(rule_path)  # a symbolic link loop is compared as named, where `resolve` raises
        return any(p == target or p in target.parents for p in (real_path(p) for p, _ in test.rule_paths()))

    def test_problems(self, test: TestFile) -> list[TestProblem]:
        """Unknown rule ids, missing rule files and missing trace fixtures of a test file."""
        if test.error is not None:
            message, start, end = test.error
            return [TestProblem("yaml", message, start, end)]
        problems: list[TestProblem] = []
        present: list[Path] = []
        for path, named in test.rule_paths():
            if os.path.exists(path) or self._open_text(path) is not None:  # os.path: False past a folder not searched
                present.append(path)
                continue
            start, end = (named.start, named.end) if named is not None else (0, 0)
            where = "" if named is not None else " (the default for this test file; name others with `rules:`)"
            problems.append(TestProblem("missing-rules-file", f"rule file `{path.name}` not found{where}", start, end))
        if len(present) == len(test.rule_paths()) and not self._unreadable(present):
            known = self.ids_in(present)
            for n in test.rule_ids:
                if n.value in known:
                    continue
                guess = nearest(n.value, known)
                hint = f"; did you mean `{guess}`?" if guess else ""
                files = ", ".join(p.name for p in present)
                message = f"no rule `{n.value}` in {files}{hint}"
                problems.append(TestProblem("unknown-rule", message, n.start, n.end, guess))
        for n in test.traces:
            if not os.path.exists(test.folder / n.value):
                problems.append(TestProblem("missing-fixture", f"trace file `{n.value}` not found", n.start, n.end))
        return problems

    def _unreadable(self, paths: list[Path]) -> bool:
        """Whether a rule file among `paths` is one `fluo test` cannot read (not UTF-8, too large): it then
        says only that (`runner_problems`), not which rule ids it lacks."""
        try:
            files = rule_files(paths)
        except RuleSourceError:
            return False
        return any((doc := self.rule_document(f)) is not None and doc.unreadable is not None for f in files)

    def runner_problems(self, path: Path, text: str) -> list[TestProblem]:
        """What `fluo test` would reject in this test file (as `text`), but for the problems of `EXACT_CODES`.

        `fluo test`'s own reader reads it, with open rule files as they are in the
        editor: unknown keys, cases without traces, inline spans that do not build,
        bad `count:` or `trace_id:`, rules that do not check, and the rest. Its
        problems have lines, not columns: each covers its line's text.

        Kept for the same text while what the reader takes from the rule files is the same
        (`_loaded`), until `forget_disk` (a file changed on disk, or a document was saved).
        """
        loaded = self._loaded(read_test_file(path, text))
        kept = self._runner.get((path, text))
        if kept is not None and kept[0] == loaded:
            self._runner.move_to_end((path, text))
            return kept[1]
        problems = self._runner_problems(path, text)
        self._runner[(path, text)] = (loaded, problems)
        if len(self._runner) > _ANALYSES_KEPT:
            self._runner.popitem(last=False)
        return problems

    def forget_disk(self) -> None:
        """Files changed on disk: test files are read again (their fixtures, their rule folders)."""
        self._runner.clear()

    def _loaded(self, test: TestFile) -> Hashable:
        """What `fluo test`'s reader takes from the rule files `test` loads: whether each is on disk, then why they
        cannot be read, or their errors as it prints them and each rule's id, whether it is on and its window."""
        paths = [p for p, _ in test.rule_paths()]
        present = tuple(os.path.exists(p) for p in paths)
        if not all(present):
            return present
        try:
            analysis = self._rules.analysis(paths)
        except RuleSourceError as exc:
            return present, str(exc)
        errors = tuple(d.format() for d in analysis.diagnostics if d.is_error)
        return present, errors, tuple((r.id, r.enabled, r.window_ns) for r in analysis.rules)

    def _runner_problems(self, path: Path, text: str) -> list[TestProblem]:
        read = load_test_file(path, self._rules, text=text, read_yaml=_read_yaml)
        found = [*read.problems, *(p for case in read.cases for p in case.problems)]
        starts = [0, *(m.end() for m in LINE_BREAK.finditer(text))]  # lines as `fluo test` counts them
        if starts[-1] < len(text):
            starts.append(len(text))
        out: list[TestProblem] = []
        for p in sorted(found, key=lambda p: p.line):
            if p.code in EXACT_CODES:
                continue
            i = min(max(p.line, 1), len(starts) - 1) - 1
            line_text = text[starts[i] : starts[i + 1]].rstrip("\r\n")
            start = starts[i] + len(line_text) - len(line_text.lstrip())
            out.append(TestProblem(p.code, p.message, start, starts[i] + len(line_text)))
        return out


_ANALYSES_KEPT = 32
_TEXTS_KEPT = 8


class _EditorRules(RuleLoader):
    """`fluo test`'s rule loading for test files in the editor: open rule files are read as they are there."""

    def __init__(self, workspace: Workspace) -> None:
        super().__init__()
        self.workspace = workspace
        self._last: dict[tuple[Path, ...], tuple[tuple[tuple[Path, int], ...], list[RuleDocument], Analysis]] = {}
        """The last analysis of each set of paths, with the documents it was built from (`rule_document` reuses
        unchanged ones, so an unchanged set of documents is the same objects)."""

    def analysis(self, paths: Sequence[Path]) -> Analysis:
        """What `api.analyze` says of the rule files, built from the editor's per-rule analyses.

        Each rule's analysis is cached (see `document.analyze_chunk`), so a test file
        is re-checked after an edit to a 1,000-rule file without checking it whole.
        """
        docs: list[tuple[Path, RuleDocument]] = []
        for f in rule_files(paths, any_name=False):
            doc = self.workspace.rule_document(f)
            if doc is None:
                raise RuleSourceError(f"cannot read {self.workspace.shown(f)}")
            if doc.unreadable is not None:  # not UTF-8 or too large: `fluo test` reads none of its rules
                raise RuleSourceError(f"cannot read {self.workspace.shown(f)}: {doc.unreadable.message}")
            docs.append((f, doc))
        key = tuple((f, id(doc)) for f, doc in docs)
        last = self._last.get(tuple(paths))
        if last is not None and last[0] == key:  # the same documents (kept alive here, so their ids are theirs)
            return last[2]
        rules = [c for _, doc in docs for c, _ in doc.checked_rules()]
        # paths as `fluo test` run from the workspace folder prints them (`doc.name`), not whole
        diagnostics = [
            replace(d, span=shift_span(d.span, base, doc.index), path=doc.name)
            for _, doc in docs
            for d, base in doc.diagnostics()
        ]
        # rule ids are unique across the files loaded together; a file's own duplicates are in its diagnostics
        files_of = Counter(i for _, doc in docs for i in doc.ids()) if len(docs) > 1 else Counter[str]()
        everywhere = [
            (replace(r, id_span=shift_span(r.id_span, base, doc.index)), doc.name)
            for _, doc in docs
            for r, base in doc.rules()
            if files_of[r.id] > 1
        ]
        diagnostics += [d for _, d in duplicate_ids(everywhere) if d.related and d.related[0].path != d.path]
        analysis = Analysis(files=[], rules=rules, diagnostics=diagnostics)
        self._last[tuple(paths)] = (key, [doc for _, doc in docs], analysis)
        if len(self._last) > _ANALYSES_KEPT:
            del self._last[next(iter(self._last))]
        return analysis


def _checked_below(root: Path, path: Path) -> bool:
    """Whether `fluo check ROOT` loads the rule file at `path` (saved or not): no name on its way from `root` is
    hidden, and no folder one that search passes over (`node_modules`, a virtualenv)."""
    base, target = real_path(root), real_path(path.parent) / path.name
    if not target.is_relative_to(base):
        return False
    parts = target.relative_to(base).parts
    if any(hidden(p) for p in parts) or not all(searched(p) for p in parts[:-1]):
        return False
    return not any(virtualenv(base.joinpath(*parts[: i + 1])) for i in range(len(parts) - 1))


_CODE_POINT_ID = re.compile(r"_u[0-9a-f]{4,}(_u[0-9a-f]{4,})*")
"""The id the parser gives a rule whose written id has no letter it can spell in ASCII (`rule 日本`)."""


def _may_define(name: str, text: str, rule_id: str) -> bool:
    """Whether a rule file named `name` holding `text` may define a rule `rule_id`, without parsing it: a rule's
    id is written in its text, or is its file's stem (a bare expression), or the parser made it of what was
    written (`rule frésh-id` is `fresh_id`, `rule 9x` is `_9x`): the id then still shows in the text with accents
    dropped and every character an id cannot hold read as `_`. False only where no rule can have that id."""
    core = rule_id[1:] if re.match(r"_[0-9]", rule_id) else rule_id
    if _CODE_POINT_ID.fullmatch(rule_id) and not text.isascii():
        return True
    return any(core in _id_chars(t) for t in (text, name))


def _id_chars(text: str) -> str:
    """`text` with accents dropped and each character but ASCII letters, digits, `_` and white space read as `_`
    (as the parser makes an id of a word that is none, `parser._ascii_id`)."""
    return _NOT_ID_CHAR.sub("_", text if text.isascii() else without_accents(text))


_NOT_ID_CHAR = re.compile(r"[^A-Za-z0-9_\s]")


def _site_of(path: Path, doc: RuleDocument, rule_id: str) -> RuleSite | None:
    """Where `doc` (the rule file at `path`) defines the rule `rule_id`, if it does."""
    return next((RuleSite(path, doc, r, base) for r, base in doc.rules() if r.id == rule_id), None)


def _files_in(paths: list[Path]) -> list[Path]:
    """The rule files named, with folders searched as `fluo check` searches them."""
    files: list[Path] = []
    for p in paths:
        try:
            files += rule_files([p]) if os.path.isdir(p) else [p]
        except RuleSourceError:  # a folder with no rule files: `fluo test`'s reader says so (`test-file`)
            continue
    return files


_yaml_read: OrderedDict[str, Any] = OrderedDict()


def _read_yaml(text: str) -> Any:
    """`fluo test`'s YAML reading (`document.load`), of the last few texts: a test file is read again after each
    edit to a rule file it loads, its own text unchanged."""
    if text in _yaml_read:
        _yaml_read.move_to_end(text)
        value = _yaml_read[text]
    else:
        try:
            value = load(text)
        except YamlError as exc:
            value = exc
        _yaml_read[text] = value
        if len(_yaml_read) > _TEXTS_KEPT:
            _yaml_read.popitem(last=False)
    if isinstance(value, YamlError):
        raise YamlError(str(value), value.line, value.code)
    return value


def _keys_of(path: Path) -> tuple[set[str], set[str]]:
    """The attribute keys of a trace file of at most `MAX_TRACE_BYTES`, gunzipped or not (none for a larger one,
    or not a regular file)."""
    try:
        data = read_file(path, MAX_TRACE_BYTES)
        if len(data) > MAX_TRACE_BYTES:
            return set(), set()
        # gunzipped too; with notes, spans with invalid ids are passed over as `fluo test` does, not the file
        spans = parse_trace_bytes(data, source=str(path), max_bytes=MAX_TRACE_BYTES, unknown=UnknownKeys())
    except (TraceInputError, OSError, ValueError):
        return set(), set()
    span_keys: set[str] = set()
    resource_keys: set[str] = set()
    for s in spans:
        span_keys.update(s.attributes)
        resource_keys.update(s.resource)
    return span_keys, resource_keys
