"""Writing the files a command was told to write, or rewriting one the user named: afterwards each holds its
old text or its new one, whole. And reading standard input, which `-` names."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


class StdinClosed(OSError):
    """`-` named with standard input closed (`cmd <&-`, as some CI runners and daemons start jobs): Python leaves
    `sys.stdin` None, and there is nothing to read. Every command that reads `-` says so in one line, exit 2."""

    def __init__(self) -> None:
        super().__init__(errno.EBADF, "standard input is closed")

    def __str__(self) -> str:
        return "standard input is closed: - has nothing to read"


def standard_input() -> BinaryIO:
    """Standard input's bytes, what `-` reads; `StdinClosed` when the process was started without it."""
    if sys.stdin is None:
        raise StdinClosed
    return sys.stdin.buffer


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
        temp = _staged(folder, f".{name[:64]}.", data, stat.S_IMODE(before.st_mode))
        in_place = before.st_nlink > 1
    except PermissionError:  # the folder cannot be written, the file can
        temp = _staged(tempfile.gettempdir(), f"{name[:64]}.", data, 0o600)  # readable by its owner only
        in_place = True
    try:
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
    """Give `temp` the owner `target` had and put it in its place; False if either cannot be done."""
    try:
        now = os.stat(temp)
        if (now.st_uid, now.st_gid) != (before.st_uid, before.st_gid):
            os.chown(temp, before.st_uid, before.st_gid)
        os.replace(temp, target)
    except OSError:
        return False
    return True


def _staged(folder: str, prefix: str, data: bytes, mode: int | None) -> str:
    """A new file in `folder`, its name `prefix` and a random part, holding `data` flushed to the disk, with
    `mode` (without it, the mode the umask gives, as `open` gives a new file), which it has from the start (less
    the umask until the end): others cannot read a text meant for its owner only; nothing is left when it fails."""
    while True:
        temp = os.path.join(folder, f"{prefix}{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666 if mode is None else mode)
        except FileExistsError:
            continue
        break
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(temp, mode)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return temp


@dataclass(frozen=True)
class NewFile:
    """The text a file is to hold. Through a symbolic link the file it names is written, unless `replace_link`:
    then the link itself is replaced by the file."""

    path: Path
    data: bytes
    replace_link: bool = False


class PartlyWritten(OSError):
    """All the new files were written whole, but putting one in its place (or writing a device or a pipe)
    failed: `written` are in place, the others are as they were."""

    def __init__(self, cause: OSError, path: Path, written: Sequence[Path]) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))
        self.written = list(written)


class SameFile(ValueError):
    """Two of the files to write name one file (by their names, or through a link): the one written later would
    replace the other's text."""

    def __init__(self, first: Path, second: Path) -> None:
        super().__init__(f"{first} and {second} are the same file")
        self.paths = (first, second)


def write_all(files: Sequence[NewFile]) -> None:
    """Write `files`, each through a new file in its folder that then takes its place, keeping its mode (a file
    that is new gets the mode the umask gives), not its owner nor its other names (hard links). Every new file
    is written whole before the first takes its place, in the order given: a write that fails (disk full, a file
    size limit, Ctrl-C) leaves every file as it was, and no new file behind.

    A path that names something other than a file or a folder (a device such as /dev/null, a pipe such as
    /dev/stdout) is written, in its turn: it cannot be replaced, and cannot be written beforehand.

    Raises `SameFile` before writing anything (hard links of one file are not one, as each is replaced),
    `OSError` naming the path given (`filename`) with nothing changed, or, when a rename or a write fails after
    others were done (the folder changed under the run), `PartlyWritten`.
    """
    clash = same_file(files, hard_links=False)
    if clash is not None:
        raise SameFile(*clash)
    staged: list[tuple[NewFile, tuple[str, str] | None]] = []  # (file, (new file, its place) or None: written)
    done: list[Path] = []
    try:
        for f in files:
            try:
                target = _target(f)
                staged.append((f, None if target is None else (_new_beside(target, f.data), target)))
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror or str(exc), str(f.path)) from exc
        for f, place in staged:
            try:
                if place is None:
                    _write_as_it_is(f.path, f.data)
                else:
                    os.replace(*place)
            except OSError as exc:
                if done:
                    raise PartlyWritten(exc, f.path, done) from exc
                raise OSError(exc.errno, exc.strerror or str(exc), str(f.path)) from exc
            done.append(f.path)
    finally:
        for _, place in staged[len(done) :]:  # put in place in order: the rest are still new files
            if place is not None:
                with contextlib.suppress(OSError):
                    os.unlink(place[0])


def _target(f: NewFile) -> str | None:
    """The path `f`'s new file is to take, or None when what is there is not a file, a folder or (with
    `replace_link`) a link: a device or a pipe, written as it is; and None for a path naming one of fluo's
    descriptors (/dev/stdout redirected to a file), which is that file as fluo holds it open."""
    if _descriptor(f.path) is not None:
        return None
    try:
        st = os.lstat(f.path) if f.replace_link else os.stat(f.path)
        if stat.S_IFMT(st.st_mode) not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
            return None
    except FileNotFoundError:
        pass
    return os.path.abspath(f.path) if f.replace_link else os.path.realpath(f.path)


def _descriptor(path: Path) -> int | None:
    """The descriptor of fluo's that `path` names (/dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N, or a
    link to one of them), if it names one."""
    where = os.path.abspath(path)
    for _ in range(40):  # as many links as the system follows
        if os.path.realpath(os.path.dirname(where)) in ("/dev/fd", "/proc/self/fd", f"/proc/{os.getpid()}/fd"):
            name = os.path.basename(where)
            return int(name) if name.isdigit() else None
        if not os.path.islink(where):
            return None
        where = os.path.normpath(os.path.join(os.path.dirname(where), os.readlink(where)))
    return None


def _write_as_it_is(path: Path, data: bytes) -> None:
    """Write `data` to a device, a pipe or one of fluo's descriptors. A descriptor is written through, not
    opened anew: opening /dev/stdout when it is a file would empty it (`>>`), or write where fluo's own output
    then goes over it (`>`)."""
    fd = _descriptor(path)
    if fd is None:
        with open(path, "wb") as out:
            out.write(data)
        return
    for stream in (sys.stdout, sys.stderr):  # what fluo printed before comes first
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def same_file(files: Sequence[NewFile], *, hard_links: bool = True) -> tuple[Path, Path] | None:
    """The first two of `files` that name one file, if two do: by their names once links are followed (those of
    the folders only, with `replace_link`), or, for files that are there, as one file (`identity`). Without
    `hard_links`, a file with other names is taken by its name only: each name is replaced by a new file
    (`write_all`), so its hard links can be written each."""
    seen: dict[object, Path] = {}
    for f in files:
        if f.replace_link:
            where = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(f.path))), f.path.name)
        else:
            where = os.path.realpath(f.path)
        keys: list[object] = [where]
        with contextlib.suppress(OSError):
            st = os.lstat(f.path) if f.replace_link else os.stat(f.path)
            if hard_links or st.st_nlink == 1:
                keys.append((st.st_dev, st.st_ino))
        for key in keys:
            if key in seen:
                return seen[key], f.path
        seen.update(dict.fromkeys(keys, f.path))
    return None


def _new_beside(target: str, data: bytes) -> str:
    """A new file in `target`'s folder holding `data`, flushed to the disk, with `target`'s mode if it is a file."""
    try:
        before: os.stat_result | None = os.lstat(target)
    except FileNotFoundError:
        before = None
    if before is not None and stat.S_ISDIR(before.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    folder, name = os.path.split(target)
    mode = stat.S_IMODE(before.st_mode) if before is not None and stat.S_ISREG(before.st_mode) else None
    return _staged(folder, f".{name[:64]}.", data, mode)


def real_path(path: str | Path) -> Path:
    """Where `path` leads through symbolic links, made absolute, to compare paths by: `Path.resolve()`, except that
    a symbolic link loop on the way is left as it is named, where `resolve` raises RuntimeError ("Symlink loop")."""
    return Path(os.path.realpath(path))


def link_problem(path: str | Path) -> str | None:
    """Why `path` leads nowhere when a symbolic link is the cause, in words to follow it (`X: ...`): `a symbolic
    link loop` (`looping_link`), or `a symbolic link to T, which does not exist`; None otherwise (it leads
    somewhere, or is missing, or cannot be looked at for another reason)."""
    loop = looping_link(path)
    if loop is not None:
        return "a symbolic link loop" if loop == Path(path) else f"in {loop}, a symbolic link loop"
    try:
        os.stat(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            if exc.errno in (errno.ENOENT, errno.ENOTDIR) and os.path.islink(path):
                return f"a symbolic link to {os.readlink(path)}, which does not exist"
    return None


def looping_link(path: str | Path) -> Path | None:
    """The symbolic link on the way to `path` (a folder on the way, or `path` itself) that the system gives up
    following (ELOOP): a loop, or a chain of links longer than the system follows; None when there is none."""
    if not _loops(path):
        return None
    where = Path(path)
    return next((step for step in (*reversed(where.parents), where) if _loops(step)), where)


def _loops(path: str | Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})
"""The errors of looking a path up that pathlib's `exists()` and `is_dir()` take for a path that is not there."""


def unreachable(path: str | Path) -> OSError | None:
    """The error looking `path` up gives when it is neither there nor missing: a folder on the way that cannot be
    searched (`chmod 000`, EACCES) most often, which pathlib's `exists()`, `is_dir()` and `is_file()` raise where
    they answer False for a missing path. None when it is there, or missing (a symbolic link to nothing, or a
    loop, are missing: `link_problem` says why)."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno not in _MISSING:
            return exc
    except ValueError:  # a NUL in it (`"a\0.json"` in YAML), which no path can hold
        return OSError(errno.EINVAL, "a file name cannot hold a NUL character", str(path))
    return None


def unusable_folder(folder: Path) -> str | None:
    """Why `folder` cannot be made, or written into, if the first of it and its parents that is there says so:
    a symbolic link to a missing path or a symbolic link loop (`link_problem`), or a file."""
    for path in (folder, *folder.parents):
        if path.is_symlink() and (problem := link_problem(path)) is not None:
            return f"{path} is {problem}"
        if path.exists():
            return None if path.is_dir() else f"{path} is not a folder"
    return None


def make_folder(folder: Path) -> None:
    """Make `folder` and its missing parents; `NotADirectoryError` says why when a file or a broken link is in
    the way (`afile is not a folder`), where `mkdir` would say `File exists`."""
    problem = unusable_folder(folder)
    if problem is not None:
        raise NotADirectoryError(errno.ENOTDIR, problem)
    folder.mkdir(parents=True, exist_ok=True)


def identity(path: Path) -> tuple[int, int]:
    """The file a path names, through links: (device, inode)."""
    st = path.stat()
    return st.st_dev, st.st_ino


def one_of(path: Path, files: Iterable[Path]) -> Path | None:
    """The one of `files` that `path` names, if it names one: by its name, through a symbolic link, or as a hard
    link to it. None when `path` is not there."""
    try:
        wanted = identity(path)
    except OSError:
        return None
    for f in files:
        with contextlib.suppress(OSError):
            if identity(f) == wanted:
                return f
    return None
