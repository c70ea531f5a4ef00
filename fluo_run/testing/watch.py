"""`--watch`: poll the files' `stamp`s and run again when a test file, rule file or fixture changes.

Below the folders watched, only test files and rule files count (a new test file
starts being run), and so do test files below the folder of a rule file watched (one
made later for it is run, as `fluo test RULE.fluo` finds it); outside them, what the
runs read counts: rule files (those in a `rules:` folder too), fixtures, and those a
test file names that do not exist yet. Anything else there (a JUnit report,
redirected output, notes) changes without starting a run: a report the run itself
writes would otherwise start the next run, forever.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fluo_lang.api import RULE_SUFFIX, Stamp, stamp
from fluo_lang.folders import Listings, walk

from .spec import is_test_file_name

MIN_INTERVAL = 0.05
MAX_INTERVAL = 10.0

Stamps = dict[str, Stamp]


@dataclass(frozen=True)
class Ran:
    """What a run tells the watch: the files it read outside the folders watched (rule files and fixtures
    named by relative paths), watched too from then on, and the files it wrote itself (`--update`), whose
    new text is not a change to run again for."""

    inputs: Collection[Path] = ()
    wrote: Collection[Path] = ()


def watched(name: str) -> bool:
    """Whether a file below the folders watched counts: a test file or a rule file."""
    return is_test_file_name(name) or name.endswith(RULE_SUFFIX)


def stamps(roots: Sequence[Path], extra: Iterable[Path] = (), listings: Listings | None = None) -> Stamps:
    """The `stamp` of the test and rule files below `roots` (searched as `fluo test` searches them, a folder
    that cannot be read passed over: the run says why), of the test files below the folder of a rule file
    named (where `tests_of` looks for its tests: one made later is run too), and of `extra`. `listings`
    keeps the folders' listings from one poll to the next: only a folder that changed is listed again."""
    out: Stamps = {}
    for root in roots:
        if os.path.isfile(root):
            _stat(root, out)
            if root.name.endswith(RULE_SUFFIX):
                for path in walk(root.parent, is_test_file_name, unreadable=None, listings=listings):
                    _stat(path, out)
            continue
        for path in walk(root, watched, unreadable=None, listings=listings):
            _stat(path, out)
    if listings is not None and roots:
        listings.searched()
    for path in extra:
        _stat(path, out)
    return out


def _stat(path: Path, out: Stamps) -> None:
    """The file's `stamp`, under its absolute path: a rule file reached through a folder
    given as `/abs/w` and through a test file's `rules: [r.fluo]` (relative) is one file."""
    with contextlib.suppress(OSError):  # a file removed between listing and stat
        out[os.path.abspath(path)] = stamp(os.stat(path))


def changed(before: Stamps, after: Stamps) -> list[str]:
    """Files added, removed or modified between two polls, sorted."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def watch(
    run: Callable[[], Ran],
    roots: Sequence[Path],
    *,
    interval: float = 0.5,
    max_runs: int | None = None,
    on_change: Callable[[list[str]], None] = lambda files: None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run, then run again after each change until interrupted (or `max_runs` runs); returns the number of runs.

    A change is run for once the stamps hold still for one interval: a run never reads a file half saved."""
    interval = min(max(interval, MIN_INTERVAL), MAX_INTERVAL)
    runs = 0
    extra: list[Path] = []
    listings = Listings(stamp)

    def run_and_stamp() -> Stamps:
        # Stamped before the run, so an edit made while it runs still counts as a change; files the
        # run read for the first time are stamped after it, and files it no longer read (their test
        # file gone) are no longer watched, not a change; what the run wrote itself is stamped after it.
        nonlocal extra, runs
        before = stamps(roots, listings=listings)
        before_extra = stamps([], extra)
        ran = run()
        extra = list(ran.inputs)
        runs += 1
        still_read = {os.path.abspath(p) for p in extra}
        state = stamps([], extra)
        state.update((k, v) for k, v in before_extra.items() if k in still_read)
        state.update(before)
        state.update((k, v) for k, v in stamps([], ran.wrote).items() if k in state)
        return state

    try:
        state = run_and_stamp()
        while max_runs is None or runs < max_runs:
            sleep(interval)
            now = stamps(roots, extra, listings)
            if now == state:
                continue
            while True:  # settled: a save slower than one interval (written in parts, many files) is one change
                sleep(interval)
                later = stamps(roots, extra, listings)
                if later == now:
                    break
                now = later
            diff = changed(state, now)
            if diff:  # none when what changed is back as it was
                on_change(diff)
                state = run_and_stamp()
    except KeyboardInterrupt:
        pass
    return runs
