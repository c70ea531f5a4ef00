"""Folders searched for input files: rule files (`fluo check`, `fluo fmt`), test files (`fluo test`), trace files
(`fluo eval`, `fluo discover`), and the workspace the language server scans. Every search is `walk` with the
caller's filter, so they agree on what a hidden name, a link and a folder that cannot be read are."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
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


def walk(
    folder: Path,
    keep: Callable[[str], bool],
    *,
    enter: Callable[[str], bool] = searched,
    unreadable: Callable[[OSError], None] | None = _stop,
    folders: bool = False,
) -> Iterator[Path]:
    """The files below `folder` whose name `keep` accepts, searching the folders whose name `enter` accepts,
    in path order (as `sorted` orders their paths), found as they are asked for. Hidden names are passed over,
    and so is a folder below `folder` holding a `VIRTUALENV_MARK` file (a virtualenv, whatever its name).
    With `folders`, each folder searched, `folder` first, comes before what it holds.

    A link to a folder is neither entered nor kept, so no link loop is ever walked; a link to a file, or to
    nothing (a loop too), is a name like any other, for the caller's `is_file`. A folder that cannot be listed
    (its permissions) goes to `unreadable`: by default its OSError is raised, as a file that cannot be read
    is, since a check would pass on files it never read; None passes it over (the editor, `--watch`).
    """
    top = _listing(folder, unreadable)
    if top is None:
        return
    if folders:
        yield folder
    stack = [(folder, iter(top))]
    while stack:
        parent, entries = stack[-1]
        for name, is_folder in entries:
            path = parent / name
            if is_folder is None:
                continue
            if not is_folder:
                if keep(name):
                    yield path
            elif enter(name) and (listing := _listing(path, unreadable)) is not None and not _marked(listing):
                if folders:
                    yield path
                stack.append((path, iter(listing)))
                break  # the folder's contents come before the names after it
        else:
            stack.pop()


def _marked(listing: list[tuple[str, bool | None]]) -> bool:
    """Whether a folder's listing holds a virtualenv's `VIRTUALENV_MARK` (a file, or a link that is no folder)."""
    return (VIRTUALENV_MARK, False) in listing


def _listing(folder: Path, unreadable: Callable[[OSError], None] | None) -> list[tuple[str, bool | None]] | None:
    """The names in `folder` that are not hidden, sorted, each with whether it is a folder to search (None for
    a link to a folder); None when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            found = [(e.name, _is_folder(e)) for e in entries if not hidden(e.name)]
    except OSError as exc:
        if unreadable is not None:
            unreadable(exc)
        return None
    return sorted(found, key=lambda entry: entry[0])


def _is_folder(entry: os.DirEntry[str]) -> bool | None:
    """True for a folder, None for a link to one, False for anything else (as `os.walk` tells them)."""
    try:
        if entry.is_dir():
            return None if entry.is_symlink() else True
    except OSError:  # a link loop: a name for the caller to find is no file
        pass
    return False
