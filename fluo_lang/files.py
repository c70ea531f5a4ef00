"""Rewriting a file the user named: afterwards it holds its old text or its new one, whole."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tempfile
from pathlib import Path


class HalfWritten(OSError):
    """Rewriting a file in place failed part way: the file is damaged, and `kept` holds its new text whole."""

    def __init__(self, cause: OSError, kept: str) -> None:
        super().__init__(cause.errno, f"{cause.strerror or cause}; its new text is whole in {kept}")
        self.kept = kept


def write_replacing(path: Path, data: bytes) -> None:
    """Put `data` in the file `path` names, keeping its mode, its owner and, through a symlink, the link.

    The new text goes to a new file in the same folder, which then replaces the old one, so a write that
    fails (disk full, a file size limit) or a run that is stopped leaves the old text whole. A file that
    must stay the same file (it has other names: hard links; or the copy cannot take its owner or be put
    in its place) is rewritten in place instead, but only once the new text is written whole and flushed
    to a file beside it, or in the temporary folder when its own cannot be written: if the rewrite in
    place then fails, that file is kept and `HalfWritten` names it.

    Raises `OSError` with nothing changed (the file cannot be written, the disk is full, ...), or
    `HalfWritten`.
    """
    target = os.path.realpath(path)
    before = os.stat(target)
    os.close(os.open(target, os.O_WRONLY))  # writable? (read-only, immutable): opening it changes nothing
    folder, name = os.path.split(target)
    try:
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        in_place = before.st_nlink > 1
    except PermissionError:  # the folder cannot be written, the file can
        fd, temp = tempfile.mkstemp(prefix=f"{name}.", suffix=".tmp")
        in_place = True
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if not in_place:
            in_place = not _replace(temp, target, before)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if not in_place:
        return
    try:
        with open(target, "r+b") as f:
            f.write(data)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise HalfWritten(exc, temp) from exc
    with contextlib.suppress(OSError):
        os.unlink(temp)


def _replace(temp: str, target: str, before: os.stat_result) -> bool:
    """Give `temp` the mode and owner `target` had and put it in its place; False if either cannot be done."""
    try:
        os.chmod(temp, stat.S_IMODE(before.st_mode))
        now = os.stat(temp)
        if (now.st_uid, now.st_gid) != (before.st_uid, before.st_gid):
            os.chown(temp, before.st_uid, before.st_gid)
        os.replace(temp, target)
    except OSError:
        return False
    return True


def output_problem(exc: OSError) -> str:
    """Why fluo's output could not be written, in words: a closed stdout (EBADF) as such."""
    return "standard output is closed" if exc.errno == errno.EBADF else str(exc.strerror or exc)


def stdout_to_nowhere() -> None:
    """What is still buffered for stdout goes nowhere, silently, instead of failing again at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
