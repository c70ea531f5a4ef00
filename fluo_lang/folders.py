"""Folders searched for input files: rule files (`fluo check`, `fluo fmt`), test files (`fluo test`), trace files
(`fluo eval`, `fluo discover`), and the workspace the language server scans. Every search is `walk` with the
caller's filter, so they agree on what a hidden name, a link and a folder that cannot be read are."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path

SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "site-packages"})
"""Folders below the folders named that no search goes into, as no search goes into hidden ones or virtualenvs."""

VIRTUALENV_MARK = "pyvenv.cfg"
"""The file that makes a folder a virtualenv (`python -m venv NAME`, whatever NAME is): below the folders named,
never searched, since `pip install` puts FLUO's own example rules and tests there as real files."""


def hidden(name: str) -> bool:
    """A hidden file or folder (`.git`, macOS's `._x.json`, an editor's lock `.#x_test.yaml`): never searched."""
    return name.startswith(".")


def searched(name: str) -> bool:
    """Whether the command line's searches go into a (not hidden) folder of this name below a folder named."""
    return name not in SKIPPED_DIRS


def virtualenv(folder: Path) -> bool:
    """Whether `folder` is a virtualenv (it holds `VIRTUALENV_MARK`): not searched below a folder named."""
    return (folder / VIRTUALENV_MARK).is_file()


def _stop(exc: OSError) -> None:
    raise exc


Listing = list[tuple[str, bool | None]]

RACY_NS = 2_000_000_000
"""How long after a folder's last change its listing is not kept: a file system whose clock is coarse (whole
seconds, two on FAT) gives a folder changed twice within a tick one time, so a listing taken in that tick
could miss the second change under the same stamp (as git's racily clean index entries)."""


class Listings:
    """The listings of the folders searched, kept between searches (`--watch`'s polls): a folder is listed
    again only when its `stamp` (its modification and change times, its inode) changed, which adding,
    removing or renaming a name in it, or changing its permissions, does; its files' own changes are not its.
    What one search (`searched`) did not reach is let go. A listing is kept as each search's `keep` takes it:
    its folders, and the files `keep` accepts (a poll goes through a folder's other files no more)."""

    def __init__(self, stamp: Callable[[os.stat_result], Hashable]) -> None:
        self.stamp = stamp
        self.kept: dict[str, tuple[Hashable, Listing, dict[Callable[[str], bool], Listing]]] = {}
        self.reached: set[str] = set()

    def listing(self, folder: str, keep: Callable[[str], bool]) -> Listing:
        """`folder`'s listing, kept or made, less the files `keep` refuses (`VIRTUALENV_MARK` stays, for
        `_marked`); OSError when it cannot be listed."""
        self.reached.add(folder)
        try:
            st = os.stat(folder)
        except OSError:
            return _list(folder)  # says why
        version = self.stamp(st)
        hit = self.kept.get(folder)
        if hit is None or hit[0] != version:
            listed_at = time.time_ns()
            hit = (version, _list(folder), {})
            if listed_at - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_NS:
                self.kept[folder] = hit
            else:
                self.kept.pop(folder, None)
        taken = hit[2].get(keep)
        if taken is None:
            taken = hit[2][keep] = [e for e in hit[1] if e[1] is not False or keep(e[0]) or e[0] == VIRTUALENV_MARK]
        return taken

    def searched(self) -> None:
        """A search is over: forget the folders it did not reach (gone, or no longer searched)."""
        self.kept = {f: hit for f, hit in self.kept.items() if f in self.reached}
        self.reached = set()


def walk(
    folder: Path,
    keep: Callable[[str], bool],
    *,
    enter: Callable[[str], bool] = searched,
    unreadable: Callable[[OSError], None] | None = _stop,
    folders: bool = False,
    listings: Listings | None = None,
) -> Iterator[Path]:
    """The files below `folder` whose name `keep` accepts, searching the folders whose name `enter` accepts,
    in path order (as `sorted` orders their paths), found as they are asked for. Hidden names are passed over,
    and so is a folder below `folder` holding a `VIRTUALENV_MARK` file (a virtualenv, whatever its name).
    With `folders`, each folder searched, `folder` first, comes before what it holds.

    A link to a folder is neither entered nor kept, so no link loop is ever walked; a link to a file, or to
    nothing (a loop too), is a name like any other, for the caller's `is_file`. A folder that cannot be listed
    (its permissions) goes to `unreadable`: by default its OSError is raised, as a file that cannot be read
    is, since a check would pass on files it never read; None passes it over (the editor, `--watch`).
    `listings` keeps the folders' listings from one search to the next of the same folders.
    """
    top = _listing(os.fspath(folder), unreadable, listings, keep)
    if top is None:
        return
    if folders:
        yield folder
    # Folders go by their text below `folder` (`a/b`, joined with "/"): a Path is made only for what is
    # yielded, where a search that keeps few files (a poll's) would make one for every folder.
    top_text = os.fspath(folder)
    stack: list[tuple[str, Iterator[tuple[str, bool | None]]]] = [("", iter(top))]
    while stack:
        parent, entries = stack[-1]
        for name, is_folder in entries:
            if is_folder is None:
                continue
            if not is_folder:
                if keep(name):
                    yield folder / parent / name
            elif enter(name):
                below = f"{parent}/{name}" if parent else name
                listing = _listing(os.path.join(top_text, below), unreadable, listings, keep)
                if listing is None or _marked(listing):
                    continue
                if folders:
                    yield folder / below
                stack.append((below, iter(listing)))
                break  # the folder's contents come before the names after it
        else:
            stack.pop()


def _marked(listing: Listing) -> bool:
    """Whether a folder's listing holds a virtualenv's `VIRTUALENV_MARK` (a file, or a link that is no folder)."""
    return (VIRTUALENV_MARK, False) in listing


def _listing(
    folder: str,
    unreadable: Callable[[OSError], None] | None,
    listings: Listings | None,
    keep: Callable[[str], bool],
) -> Listing | None:
    """The names in `folder` that are not hidden, sorted, each with whether it is a folder to search (None for
    a link to a folder), from `listings` when given (less the files `keep` refuses); None when it cannot be
    listed."""
    try:
        return _list(folder) if listings is None else listings.listing(folder, keep)
    except OSError as exc:
        if unreadable is not None:
            unreadable(exc)
        return None


def _list(folder: str) -> Listing:
    with os.scandir(folder) as entries:
        found = [(e.name, _is_folder(e)) for e in entries if not hidden(e.name)]
    return sorted(found, key=lambda entry: entry[0])


def _is_folder(entry: os.DirEntry[str]) -> bool | None:
    """True for a folder, None for a link to one, False for anything else (as `os.walk` tells them)."""
    try:
        if entry.is_dir():
            return None if entry.is_symlink() else True
    except OSError:  # a link loop: a name for the caller to find is no file
        pass
    return False
