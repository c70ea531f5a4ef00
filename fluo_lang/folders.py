"""Folders searched for input files: rule files (`fluo check`, `fluo fmt`) and trace files (`fluo eval`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def files_below(folder: Path, enter: Callable[[str], bool]) -> list[Path]:
    """The names of the files below `folder`, sorted, searching the folders whose name `enter` accepts.

    Folders linked to are not entered. A folder that cannot be listed (its permissions) is an OSError
    naming it, as a file that cannot be read is: passed over, a check would pass on files it never read.
    """
    found: list[Path] = []
    for root, dirs, names in os.walk(folder, onerror=_stop):
        dirs[:] = [d for d in dirs if enter(d)]
        found.extend(Path(root, name) for name in names)
    return sorted(found)


def _stop(exc: OSError) -> None:
    raise exc
