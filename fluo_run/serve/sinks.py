"""Where signals go: SQLite, JSON lines, a webhook, OTLP logs, or a callback.

Each sink runs on its own thread behind a bounded queue, so a slow or failing
sink never holds up ingest or evaluation. A signal a sink cannot take (queue
full) or cannot deliver (after its retries) is counted in
`fluo_sink_signals_dropped{sink,reason}` and logged, never lost silently.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import logging
import math
import os
import re
import sqlite3
import stat
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

from fluo_lang.files import looping_link
from fluo_lang.values import dump_json

try:
    import resource
except ImportError:  # Windows: no file-size limit to name
    resource = None  # type: ignore[assignment]
try:
    import fcntl
except ImportError:  # Windows: no flock; a second serve on a store is not refused
    fcntl = None  # type: ignore[assignment]

from .config import LOCK_SUFFIX, PRIVATE_MODE, beside, redacted
from .metrics import Metrics
from .receivers import Throttled
from .store import QUICK_CHECK_SECONDS, NotAStore, SignalStore, error_code, is_corrupt, is_transient, recovery

log = logging.getLogger("fluo.serve")

Batch = list[dict[str, Any]]
MAX_BATCH = 5000  # signals taken from the queue at once; under load, bigger batches keep the writer ahead


def printable(text: str, limit: int = 300) -> str:
    """`text` from an endpoint, fit for a log line: control characters escaped (`\\x1b`), at most `limit` characters."""
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return out if len(out) <= limit else out[: limit - 3] + "..."


ANSWER_EXCERPT = 200
"""Characters of a refusing endpoint's answer shown in the log line (`answer_excerpt`)."""


def answer_excerpt(exc: urllib.error.HTTPError) -> str:
    """The start of an error answer's body for a log line: at most `ANSWER_EXCERPT` characters, whitespace runs
    made one space, control characters escaped; "" when it has none or it cannot be read. Only that much is
    read (a few bytes more for multi-byte characters), each read within the request's timeout."""
    try:
        data = exc.read(ANSWER_EXCERPT * 4)
    except Exception:  # a broken or slow answer: the status says enough
        return ""
    return printable(" ".join(data.decode("utf-8", "replace").split()), ANSWER_EXCERPT)


def file_size_limit() -> int | None:
    """The process's file-size limit in bytes (`ulimit -f`, RLIMIT_FSIZE), None when there is none."""
    if resource is None:
        return None
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if limit == resource.RLIM_INFINITY else limit


class SinkError(Exception):
    """A batch a sink could not deliver; the message says why, in one line."""


class TransientSinkError(SinkError):
    """A sink that cannot open or write for now (a locked database): the worker keeps the batch and retries."""


class SignalQueue:
    """A bounded FIFO of signals, taken in batches; `capacity` counts signals."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._items: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put(self, signals: Sequence[dict[str, Any]], deadline: float | None = None) -> int:
        """Queue `signals` in order while there is room, waiting for room until `deadline` (monotonic).

        Returns how many went in."""
        done, total = 0, len(signals)
        with self._cond:
            while not self._closed:
                room = self.capacity - len(self._items)
                if room > 0:
                    part = signals[done : done + room]
                    self._items.extend(part)
                    done += len(part)
                    self._cond.notify_all()
                if done >= total:
                    break
                left = 0.0 if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        return done

    def take(self, most: int, timeout: float) -> Batch:
        """Up to `most` signals, waiting up to `timeout` seconds for the first; [] if none came."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            n = min(most, len(self._items))
            batch = [self._items.popleft() for _ in range(n)]
            if batch:
                self._cond.notify_all()
            return batch

    def close(self) -> None:
        """Refuse further signals; what is queued stays to be taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class Sink:
    """Delivers batches of signals (LANGUAGE.md §7 JSON objects); raises SinkError when it cannot."""

    name = "sink"
    retrying = False  # set by a sink while it retries a delivery itself (the webhook) or waits for a lock (SQLite)
    progress = 0
    """Signals of the batch in hand delivered so far, by a sink that sends a batch in parts (the webhook):
    a batch cut short at shutdown, or failing part way, counts only the rest as not delivered."""
    on_progress: Callable[[int], None] | None = None
    """Set by the worker: told of each part delivered (`advance`), so it is counted written at once."""
    unreachable = False
    """The last attempt got no answer (refused, timed out), as opposed to an answer, if only 429/503."""
    reached_at: float | None = None
    """When the endpoint last answered (monotonic), whatever it said; None: never (`SinkWorker.hopeless`)."""
    keep_trying_until: threading.Event | None = None
    """Set by the worker when the stop begins, for a notification sink worth the deadline: its retries go on
    as while running until this event is set (the deadline). None: one more try at the stop, then give up."""
    max_batch = MAX_BATCH  # the most signals handed to `write` at once
    notifies = False
    """A notification (webhook, OTLP logs): best effort, it never holds back evaluation, ingest or shutdown;
    what it cannot take is dropped and counted. A store (SQLite, JSONL, a callback) keeps every signal:
    evaluation waits for room in its queue rather than drop one."""

    @property
    def label(self) -> str:
        """The sink and where it delivers, for the startup log."""
        return self.name

    def open(self) -> None:
        """Called on the sink's own thread before the first batch."""

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        raise NotImplementedError

    def advance(self, done: int) -> None:
        """`done` signals of the batch in hand are delivered now (a sink that sends a batch in parts)."""
        if self.on_progress is None:
            self.progress = done
        else:
            self.on_progress(done)

    def answered(self, yes: bool) -> None:
        """Whether the last attempt got an answer from the endpoint (any answer: a 503 is one)."""
        self.unreachable = not yes
        if yes:
            self.reached_at = time.monotonic()

    def close(self) -> None:
        """Called on the sink's own thread after the last batch."""

    def reopen(self) -> None:
        """Asked from another thread (SIGHUP): reopen the file written to before the next batch (log rotation)."""

    def idle(self) -> None:
        """Called on the sink's own thread, once open, when half a second passed without a batch."""


class OpenFile:
    """Whether a path is still the file a sink has open, by device and inode: a JSON-lines file rotated
    (renamed or deleted) under it. One fstat and one stat, before each batch: cheap next to the write, and a
    file deleted a moment after the last look still gets no batch. (The store keeps a descriptor of its
    file instead: `SqliteSink._gone`.)"""

    def __init__(self) -> None:
        self.identity: tuple[int, int] | None = None

    def remember(self, st: os.stat_result | None) -> None:
        """The file just opened (None: unknown, never reported replaced)."""
        self.identity = None if st is None else (st.st_dev, st.st_ino)

    def replaced(self, path: str | Path) -> bool:
        if self.identity is None:
            return False
        try:
            st = os.stat(path)
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != self.identity


class SqliteSink(Sink):
    """The signal store. A lock held by another connection is waited out (retried, the batch kept);
    a store deleted or replaced while serve runs is noticed at the next batch and opened anew at the path,
    once what it holds is all in the file (its -wal checkpointed into it); `FILE.lock` beside the real file
    (symlinks resolved) is held locked from the first open to the last close, and made and locked anew when
    it is gone (`rm s.db*`), and the store file itself is held locked (flock) while it is open, so a second
    serve on the store, under any name (a symlink, a hard link), is refused at its start."""

    name = "sqlite"
    BUSY_TIMEOUT = 2.0  # how long one statement waits for a lock before the worker's backoff takes over

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store: SignalStore | None = None
        self._held: int | None = None
        """A descriptor of the store file open now: whether the path still names it, and whether it was
        deleted (no name left); held open, its inode number cannot go to a new file at the path."""
        self._lock: StoreLock | None = None

    @property
    def label(self) -> str:
        return f"sqlite ({self.path})"

    def open(self) -> None:
        """Take the store's lock (at the first open), then open the store: a second serve on a live store is
        refused before it reads a page of it (quick_check, schema)."""
        took = self._lock is None
        if took:
            self._lock = self._take_lock()
        else:
            self._keep_lock()
        try:
            self._open_store()
        except BaseException:
            if took and self._lock is not None:  # held from the first open that succeeds to the last close
                lock, self._lock = self._lock, None
                lock.release()
            raise

    def _take_lock(self) -> StoreLock | None:
        try:
            return StoreLock.take(self.path)
        except NoLockFile as no_lock:
            try:  # the store's own problem (no such folder, one not writable, a folder at the path) says it better
                SignalStore(self.path, timeout=self.BUSY_TIMEOUT).close()
            except Exception as exc:
                raise self._open_problem(exc) from exc
            raise no_lock from None

    def _keep_lock(self) -> None:
        """Make and lock `FILE.lock` anew when the one held is no longer at its path (`rm s.db*`, the folder
        removed and made again): else a second serve would make its own and write the new store too.
        TransientSinkError when it cannot be (another serve took it meanwhile): the batch waits."""
        if self._lock is None or self._lock.at_its_path():
            return
        try:
            lock = StoreLock.take(self.path)
        except SinkError as exc:
            raise TransientSinkError(str(exc)) from None
        old, self._lock = self._lock, lock
        old.release()

    def _open_store(self) -> None:
        held = self._claim()
        try:
            store = SignalStore(self.path, timeout=self.BUSY_TIMEOUT, check_seconds=QUICK_CHECK_SECONDS)
        except Exception as exc:
            if held is not None:
                os.close(held)
            raise self._open_problem(exc) from exc
        if held is None:  # the store was just made
            try:
                # SQLite opens a file it may not write read only, and says so only at the first write
                held = os.open(self.path, os.O_RDWR)
            except OSError as exc:
                store.close()
                raise SinkError(f"{self.path}: the file {self.path} is not writable ({exc.strerror})") from None
            try:
                _lock_store_file(held, self.path)
            except SinkError:
                store.close()
                os.close(held)
                raise
        self.store, self._held = store, held
        if store.unchecked:
            log.warning(
                "signal store %s: its pages were checked for %gs (PRAGMA quick_check) and not all of them; "
                "`sqlite3 %s 'PRAGMA quick_check'` checks it whole",
                self.path,
                QUICK_CHECK_SECONDS,
                self.path,
            )

    def _claim(self) -> int | None:
        """A descriptor of the store file, open for writing and locked (flock) before SQLite reads a page of
        it; None when there is no file yet, or it cannot be opened so (SignalStore then says why)."""
        try:
            held = os.open(self.path, os.O_RDWR)
        except OSError:
            return None
        try:
            _lock_store_file(held, self.path)
        except SinkError:
            os.close(held)
            raise
        return held

    def _open_problem(self, exc: Exception) -> SinkError:
        """Why the store did not open, in words: retryable (locked, busy, full) or not."""
        if is_transient(exc):
            if error_code(exc) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return TransientSinkError(f"{self.path} is locked by another program ({exc})")
            return TransientSinkError(f"cannot write to {self.path}: {self._write_problem(exc)}")
        folder = self.path.parent
        if isinstance(exc, NotAStore):
            return SinkError(f"{self.path} is not a FLUO signal store: {exc}")
        if is_corrupt(exc):
            return SinkError(f"{self.path} is corrupt ({exc}): {recovery(self.path)}")
        code = error_code(exc)
        if code == sqlite3.SQLITE_NOTADB:
            return SinkError(f"{self.path} is not an SQLite database (not a FLUO signal store)")
        place = _place_problem(self.path)
        if place is not None:
            return SinkError(place)
        if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM) or isinstance(
            exc, PermissionError
        ):
            if self.path.exists() and os.access(self.path, os.W_OK) and not os.access(folder, os.W_OK):
                return SinkError(
                    f"{self.path}: the folder {folder} is not writable, and SQLite makes {self.path.name}-wal and "
                    f"{self.path.name}-shm beside the store ({exc})"
                )
            what = f"the file {self.path}" if self.path.exists() else f"the folder {folder}"
            return SinkError(f"{self.path}: {what} is not writable ({exc})")
        return SinkError(f"{self.path}: {exc}")

    def _write_problem(self, exc: Exception) -> str:
        """`exc` from a write, with the likely cause of a failed write: the file-size limit, if one is set."""
        if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_IOERR_WRITE:
            return str(exc)
        limit = file_size_limit()
        if limit is None:
            return f"{exc} (a write failed: the disk may be full or failing)"
        return f"{exc} (a write failed: the file-size limit, ulimit -f, is {limit} bytes; or the disk is failing)"

    def _gone(self) -> str:
        """What became of the open store file: "" (still at the path), "deleted", "replaced" (deleted, another file
        at the path), or "moved or replaced" (renamed, or another file put at the path). One fstat and one stat: it
        runs before each batch."""
        if self._held is None:
            return ""
        st = self._held_stat()
        if st.st_nlink == 0:
            return self._deleted_or_replaced()
        try:
            now = os.stat(self.path)
        except OSError:
            return "moved or replaced"
        return "" if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino) else "moved or replaced"

    def _deleted_or_replaced(self) -> str:
        """Of an open store file with no name left: "replaced" when another file is at the path, else "deleted"."""
        return "replaced" if os.path.lexists(self.path) else "deleted"

    def _held_stat(self) -> os.stat_result:
        """fstat of the open store file; TransientSinkError when it fails (ESTALE on NFS), the batch kept."""
        assert self._held is not None
        try:
            return os.fstat(self._held)
        except OSError as exc:
            raise TransientSinkError(
                f"cannot tell whether {self.path} is still the store written to (fstat: {exc.strerror or exc}); the"
                " batch is kept and written again"
            ) from exc

    def _let_go(self, gone: str = "moved or replaced") -> None:
        """Close the store file that is no longer at the path, once its -wal is all in it; TransientSinkError
        while a reader of it keeps the checkpoint from finishing.

        The -wal (and -shm) keep the path's name: left with frames in it, its signals would be missing from
        the moved file, and a new store made at the path would take the old one's pages as its own."""
        assert self.store is not None and self._held is not None
        try:
            busy = self.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.Error as exc:
            raise TransientSinkError(
                f"cannot move the last signals into the old store {self.path} ({gone}): {exc}"
            ) from exc
        if busy:
            raise TransientSinkError(
                f"cannot move the last signals into the old store {self.path} ({gone}) yet: a reader of it (a"
                " connection opened before) is still open; the new store waits for it, signals queue meanwhile"
            )
        self._close_store()

    def idle(self) -> None:
        """A store moved aside with no batch since is let go of (its -wal checkpointed into it) all the same, so
        the moved file is whole within a second; the new store is made with the next batch. A lock file that
        is gone is made again at once."""
        self._let_go_if_gone()
        self._keep_lock()

    def _let_go_if_gone(self) -> None:
        """Let go of the store file when it is no longer at the path; the warning says so once it is let go of,
        so that a moved file is whole once it is logged (TransientSinkError until then: `_let_go`)."""
        gone = "" if self.store is None else self._gone()
        if gone:
            self._let_go(gone)
            there = os.path.lexists(self.path)
            then = "the file now there is opened as the store" if there else "a new one is made there"
            log.warning("signal store %s was %s while serve runs; %s", self.path, gone, then)

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        self._let_go_if_gone()
        self._keep_lock()
        self._add(batch)
        # deleted between the look above and the commit: the batch went nowhere (one fstat: the batch is in)
        if self._held is not None and self._held_stat().st_nlink == 0:
            gone = self._deleted_or_replaced()
            log.warning("signal store %s was %s while serve wrote to it; writing the last batch anew", self.path, gone)
            self._let_go(gone)
            self._add(batch)

    def _add(self, batch: Batch) -> None:
        if self.store is None:
            try:
                self.open()
            except SinkError as exc:  # while running, wait for the path to come back rather than drop
                raise TransientSinkError(self._no_longer(exc)) from None
        assert self.store is not None
        try:
            self._add_waiting(self.store, batch)
        except Exception as exc:
            if is_transient(exc):
                raise TransientSinkError(f"cannot write to {self.path}: {self._write_problem(exc)}") from exc
            if is_corrupt(exc):
                raise SinkError(f"cannot write to {self.path}: it is corrupt ({exc}): {recovery(self.path)}") from exc
            raise SinkError(f"cannot write to {self.path}: {exc}") from exc

    def _no_longer(self, exc: SinkError) -> str:
        """Why the store did not open again while serve runs: a file that is not a store, put at the path while
        serve ran, is said to be that, and what would set it right (its signals are kept meanwhile)."""
        cause = exc.__cause__
        if isinstance(cause, NotAStore):
            what = "a FLUO signal store"
        elif cause is not None and error_code(cause) == sqlite3.SQLITE_NOTADB:
            what = "an SQLite database"
        else:
            return str(exc)
        return (
            f"{self.path} is no longer {what} ({cause}): another file was put at its path while serve ran; its"
            " signals are kept, and go to a new store once that file is moved away"
        )

    def _add_waiting(self, store: SignalStore, batch: Batch) -> None:
        """`store.add(batch)`, a lock held by another connection waited out for `BUSY_TIMEOUT`, "retrying" in
        /healthz from when the lock is met: it is tried first without waiting. (Said only once SQLite's wait was
        over, /healthz said "ok" for its 2 s while the queue filled behind the lock and admission refused exports.)"""
        db = store.db
        db.execute("PRAGMA busy_timeout = 0")
        try:
            store.add(batch)
        except sqlite3.OperationalError as exc:
            if error_code(exc) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            self.retrying = True  # until a batch goes through; the worker's retrying takes over if this wait fails
            db.execute(f"PRAGMA busy_timeout = {round(self.BUSY_TIMEOUT * 1000)}")
            store.add(batch)
        finally:
            db.execute(f"PRAGMA busy_timeout = {round(self.BUSY_TIMEOUT * 1000)}")
        self.retrying = False

    def _close_store(self) -> None:
        store, held, self.store, self._held = self.store, self._held, None, None
        if store is not None:  # first: closing another descriptor of the file drops the locks SQLite holds on it
            store.close()
        if held is not None:
            os.close(held)

    def close(self) -> None:
        try:
            try:
                self._let_go_if_gone()  # SQLite does not checkpoint at close a file that is no longer at its path
            except TransientSinkError as exc:
                log.warning("%s", exc)
            self._close_store()
        finally:
            if self._lock is not None:
                lock, self._lock = self._lock, None
                lock.release()


class NoLockFile(SinkError):
    """The lock file beside a store cannot be made (its folder missing or not writable)."""


class StoreLock:
    """`FILE.lock` beside a store (the real file, symlinks resolved), held locked (flock) by the one `fluo serve`
    that writes the store; it holds that serve's process id. The kernel lets go of the lock when the process
    ends, however it ends. A hard link to the store has a lock file of its own: the store file's own flock
    (`_lock_store_file`) refuses a second serve on it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def take(cls, store: Path) -> StoreLock | None:
        """The lock of `store`; SinkError when another process holds it (NoLockFile when the lock file cannot be
        made). None where locks are not to be had (no flock on this system, or on this file system): a warning
        says the store is not guarded."""
        if fcntl is None:
            return None
        real = Path(os.path.realpath(store))
        path = beside(store if real == Path(os.path.abspath(store)) else real, LOCK_SUFFIX)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), PRIVATE_MODE)
        except OSError as exc:
            if os.path.islink(path):  # ELOOP: written through, the link would have the file it names overwritten
                raise SinkError(_not_written_through(store, path, "a symbolic link")) from None
            raise NoLockFile(f"{store}: cannot make its lock file {path} ({exc.strerror})") from None
        held = os.fstat(fd)
        if not stat.S_ISREG(held.st_mode) or held.st_nlink > 1:
            os.close(fd)
            what = "not a plain file" if not stat.S_ISREG(held.st_mode) else "a file with other names (hard links)"
            raise SinkError(_not_written_through(store, path, what))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = _read_pid(fd)
            except OSError:
                holder = None
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise SinkError(
                f"{store} is in use by another fluo serve ({who} holds {path} locked); give each instance its own --db"
            ) from None
        except OSError as exc:
            os.close(fd)
            log.warning(
                "signal store %s: cannot lock %s (%s); a second serve on it would not be refused",
                store,
                path,
                exc.strerror,
            )
            return None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:  # a full disk, a quota: the descriptor (and the lock) go with it
            os.close(fd)
            raise SinkError(
                f"{store}: cannot write this process's id into its lock file {path} ({exc.strerror})"
            ) from None
        return cls(path, fd)

    def at_its_path(self) -> bool:
        """Whether the lock file held is still the one at its path (not deleted, nor its folder)."""
        try:
            held, there = os.fstat(self.fd), os.stat(self.path)
        except OSError:
            return False
        return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)

    def release(self) -> None:
        """Let go of the lock (the file stays: removing it would let two processes hold a lock each)."""
        os.close(self.fd)


def _not_written_through(store: Path, lock: Path, what: str) -> str:
    """Why serve does not write its process id into the lock file `lock`: it is `what`, which another user who
    may write the folder can plant there to have a file of theirs choosing overwritten."""
    return (
        f"{store}: its lock file {lock} is {what}; fluo serve writes its process id only into a file of its own "
        "there: remove it (serve makes it anew)"
    )


def _lock_store_file(fd: int, path: Path) -> None:
    """Lock the open store file itself (flock, which SQLite's own locks leave alone): a second serve that
    reaches it under another name (a hard link, another mount of its folder) has a lock file of its own
    beside that name, but not this lock. SinkError when another process holds it; nothing where flock is
    not to be had (the lock file still guards the store by its name)."""
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SinkError(
            f"{path} is in use by another fluo serve, which holds the file locked under another name (a hard "
            "link, or another mount of its folder); give each instance its own --db"
        ) from None
    except OSError:
        return


def _read_pid(fd: int) -> int | None:
    """The process id written in a lock file, None when it holds none (yet)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _place_problem(path: Path) -> str | None:
    """What keeps a file from being made at `path` by its place (its folder missing or no folder, a folder
    on the way that this user may not search, `path` a folder, or a symbolic link loop), in words; None when the
    place is fine."""
    loop = looping_link(path)
    if loop is not None:
        return f"{path} is a symbolic link loop" if loop == path else f"{path}: {loop} is a symbolic link loop"
    folder = path.parent
    try:
        if not folder.exists():
            return f"{path}: the folder {folder} does not exist"
        if not folder.is_dir():
            return f"{path}: {folder} is not a folder"
        if path.is_dir():
            return f"{path} is a folder, not a file"
    except PermissionError as exc:  # pathlib passes EACCES on: no `x` on a folder on the way
        blocked = next((p for p in reversed(path.parents) if not os.access(p, os.X_OK)), folder)
        return f"{path}: the folder {blocked} cannot be searched ({exc.strerror})"
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    return None


class JsonlSink(Sink):
    """One signal per line, to a file (appended) or `-` for standard output.

    A file renamed or deleted under it (logrotate's default `create` mode) is noticed before the
    next batch, as the SQLite store notices, and a new file is opened at the path; a batch written as
    the file was deleted is written again there. SIGHUP (`reopen`) reopens it before the next batch
    whatever happened to it.
    """

    name = "jsonl"

    def __init__(self, target: str) -> None:
        self.target = target
        self.out: TextIO | None = None
        self._file = OpenFile()
        self._reopen = threading.Event()
        self._reader_gone: str | None = None  # why stdout's reader is known gone (`fluo serve --jsonl - | head`)

    @property
    def label(self) -> str:
        return f"jsonl ({'stdout' if self.target == '-' else self.target})"

    def open(self) -> None:
        if self.target == "-":
            self.out = sys.stdout
            return
        try:
            self._open_file()
        except OSError as exc:
            raise SinkError(self._open_problem(exc)) from exc

    def _open_problem(self, exc: OSError) -> str:
        """Why the file did not open, in words, as the SQLite store says it: what, and where."""
        path = Path(self.target)
        place = _place_problem(path)
        if place is not None:
            return place
        # A folder that takes no new file may say so with ENOENT (/proc) or EROFS rather than EACCES: said as
        # the SQLite store says it.
        absent = isinstance(exc, FileNotFoundError) and not path.exists() and not path.is_symlink()
        if isinstance(exc, PermissionError) or absent or exc.errno == errno.EROFS:
            what = f"the file {path}" if path.exists() else f"the folder {path.parent}"
            return f"{path}: {what} is not writable ({exc.strerror})"
        return f"{path}: {exc.strerror or exc}"

    def _open_file(self) -> None:
        fd = os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_MODE)
        self.out = open(fd, "a", encoding="utf-8")  # noqa: SIM115 - held for the sink's life
        self._file.remember(os.fstat(self.out.fileno()))
        self._after_cut_off_line()

    def _after_cut_off_line(self) -> None:
        """A file that ends in a cut-off line (a write cut short by `kill -9`, a crash, or a stop at its
        deadline while the disk refused the write) gets a line break first, so the next signal starts a
        line of its own instead of being glued to the fragment; the fragment stays, as anything in a file
        FLUO did not just write, and the warning says where it is."""
        assert self.out is not None
        try:
            size = os.fstat(self.out.fileno()).st_size
            if size == 0 or not stat.S_ISREG(os.fstat(self.out.fileno()).st_mode):
                return
            with open(self.target, "rb") as f:
                f.seek(size - 1)
                if f.read(1) == b"\n":
                    return
            self.out.write("\n")
            self.out.flush()
        except OSError:
            return  # the first write says what is wrong with the file
        log.warning(
            "jsonl file %s ended in a cut-off line (byte %d: a write cut short before?); it is kept, and the "
            "signals from now on start on the next line",
            self.target,
            size,
        )

    def reopen(self) -> None:
        self._reopen.set()

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        if self.target != "-" and (self._reopen.is_set() or self._file.replaced(self.target)):
            if not self._reopen.is_set():
                log.info("jsonl file %s was renamed or deleted (rotated?); writing to a new one there", self.target)
            self._open_again()
        if self.out is None:
            self._reopen.set()  # the last reopen failed: try again
            raise TransientSinkError(f"{self.target} is not open")
        if self._reader_gone is not None:
            raise SinkError(self._reader_gone)
        self._append(self.out, batch)
        if self._deleted():  # between the look above and the write: the batch went nowhere
            log.warning("jsonl file %s was deleted while serve wrote to it; writing the last batch anew", self.target)
            self._open_again()
            assert self.out is not None
            self._append(self.out, batch)

    def _open_again(self) -> None:
        """Close the file and open the path anew; TransientSinkError when it cannot be (its folder gone for now)."""
        self._reopen.clear()
        with contextlib.suppress(OSError):
            self.close()
        try:
            self._open_file()
        except OSError as exc:  # keep the batch and try again
            self.out = None
            raise TransientSinkError(f"cannot reopen {self.target}: {exc.strerror or exc}") from exc

    def _deleted(self) -> bool:
        """Whether the regular file written to has no name left (one fstat)."""
        if self.out is None or self.out is sys.stdout:
            return False
        try:
            st = os.fstat(self.out.fileno())
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_nlink == 0

    def _append(self, out: TextIO, batch: Batch) -> None:
        try:  # standard output is not cut back: it has no path to truncate or open again
            start = out.tell() if self.target != "-" and out.seekable() else None
        except OSError:
            start = None
        try:
            out.write("".join(dump_json(s) + "\n" for s in batch))
            out.flush()
        except OSError as exc:
            where = "stdout" if self.target == "-" else self.target
            problem = f"cannot write to {where}: {exc.strerror or exc}"
            if exc.errno == errno.EFBIG and (limit := file_size_limit()) is not None:
                problem += f" (the file-size limit, ulimit -f, is {limit} bytes)"
            self._cut_back(start)  # whatever failed, no line of a batch not delivered stays, nor half a line
            if exc.errno == errno.EPIPE and self.target == "-":
                self._stdout_gone(out, problem)
            if exc.errno in self.ROOM_MAY_COME:  # keep the batch and retry
                raise TransientSinkError(problem) from exc
            raise SinkError(problem) from exc

    def _stdout_gone(self, out: TextIO, problem: str) -> None:
        """Standard output's reader went away: a pipe's reader never comes back, so every batch from now on fails
        as this one did, and what stdout still buffers goes to the null device, so that fluo's last flush at exit
        does not fail again and turn serve's exit status (3: signals not delivered) into 141."""
        self._reader_gone = problem
        try:
            fd = out.fileno()
        except (OSError, ValueError):  # no descriptor of its own (a test's capture)
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)

    ROOM_MAY_COME = (errno.ENOSPC, errno.EDQUOT, errno.EAGAIN, errno.EFBIG)
    """Write errors that room made on the disk, or a raised file-size limit (EFBIG, `ulimit -f`), end."""

    def _cut_back(self, start: int | None) -> None:
        """After a failed write to a file: drop what it buffered and cut the file back to where the
        batch began, so that no line of the batch stays (counted as not delivered, or written twice
        when it is retried), nor a line cut off, which the next line would be glued to."""
        if self.out is None or start is None:
            return
        target = self.target
        with contextlib.suppress(OSError, ValueError):
            self.out.close()  # flushing again fails the same way; the buffer goes with the file object
        self.out = None
        with contextlib.suppress(OSError):
            os.truncate(target, start)
        with contextlib.suppress(OSError):  # not reopened: the next write tries again (`write`)
            self._open_file()

    def close(self) -> None:
        if self.out is not None and self.out is not sys.stdout:
            out, self.out = self.out, None
            out.close()


class Retrying(Protocol):
    """A notification sink that retries a delivery itself (the webhook, OTLP logs)."""

    ATTEMPTS: int
    FIRST_BACKOFF: float
    MAX_BACKOFF: float
    retrying: bool
    keep_trying_until: threading.Event | None


def with_retries(
    sink: Retrying, attempt: Callable[[], str | None], stopping: threading.Event, *, says: str, fails: str
) -> None:
    """`attempt()` until it succeeds (None) or `sink.ATTEMPTS` tries failed (each says why), the waits
    doubling from `FIRST_BACKOFF` to `MAX_BACKOFF`; `sink.retrying` meanwhile. A stop cuts the wait
    short for one more immediate try; then the sink gives up, unless it is to keep trying until the
    deadline (`Sink.keep_trying_until`), which ends a wait without another try. `attempt` raises
    SinkError for a failure not worth retrying.
    `says` starts the retry log line, `fails` the SinkError raised when every try failed."""
    backoff = sink.FIRST_BACKOFF
    problem = ""
    tried = 0
    try:
        for n in range(sink.ATTEMPTS):
            tried += 1
            failed = attempt()
            if failed is None:
                return
            problem = redacted(failed)  # an exception's text may hold the URL (`url: /hook?token=...`)
            until = sink.keep_trying_until if stopping.is_set() else stopping  # what ends the next wait early
            if n + 1 == sink.ATTEMPTS or until is None or until.is_set():
                break
            sink.retrying = True
            log.warning("%s: %s; retrying in %.2fs", says, problem, backoff)
            if until.wait(backoff):
                if until is not stopping:
                    break  # the deadline: what a try sent now would already be counted as not delivered
                continue  # the stop began: one more immediate attempt (the endpoint may be back)
            backoff = min(backoff * 2, sink.MAX_BACKOFF)
    finally:
        sink.retrying = False
    raise SinkError(f"{fails}: {problem} after {tried} attempt{'s' if tried > 1 else ''}")


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: urllib would resend a 301/302/303 as a GET without the body,
    and count the signals as delivered. The 3xx comes back as an HTTPError instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_KeepRedirects)


class WebhookSink(Sink):
    """POSTs `{"signals": [...]}` (at most 100 per request); retries 429, 5xx and network errors with backoff.

    Delivery is at least once: a request answered after `timeout` (or whose answer is lost) is sent again.
    Each request carries an `Idempotency-Key` header, the same on every retry of that request and new for
    the next one, so a receiver can drop a request it already took."""

    name = "webhook"
    notifies = True
    ATTEMPTS = 6  # the first and 5 retries, waiting 0.25, 0.5, 1, 2 and 4 s
    FIRST_BACKOFF = 0.25
    MAX_BACKOFF = 4.0
    PER_REQUEST = 100

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> None:
        self.url, login = _without_login(url)
        self.shown = redacted(url)
        """The URL for log lines and errors: its password and query values hidden."""
        self.headers = {"Content-Type": "application/json", "User-Agent": "fluo-serve", **(headers or {})}
        if login is not None and not any(name.lower() == "authorization" for name in self.headers):
            self.headers["Authorization"] = "Basic " + base64.b64encode(login.encode()).decode("ascii")
        self.timeout = timeout

    @property
    def label(self) -> str:
        return f"webhook ({self.shown})"

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        for i in range(0, len(batch), self.PER_REQUEST):
            part = batch[i : i + self.PER_REQUEST]
            self._post(part, stopping)
            self.advance(i + len(part))

    def _post(self, signals: Batch, stopping: threading.Event) -> None:
        body = dump_json({"signals": signals}).encode()
        headers = {**self.headers, "Idempotency-Key": uuid.uuid4().hex}  # kept for this body's retries

        def attempt() -> str | None:
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with _NO_REDIRECTS.open(request, timeout=self.timeout) as response:
                    response.read()
                self.answered(True)
                return None
            except urllib.error.HTTPError as exc:
                self.answered(True)
                problem = f"HTTP {exc.code}"
                location = exc.headers.get("Location") if exc.headers is not None else None
                said = answer_excerpt(exc) if 400 <= exc.code < 500 and exc.code != 429 else ""
                exc.close()
                if 300 <= exc.code < 400:  # followed, the POST would become a GET without the signals
                    where = printable(_absolute(self.url, location)) if location else "elsewhere"
                    message = (
                        f"{self.shown} redirected the signals ({problem}) to {redacted(where)}: point --webhook there"
                    )
                    raise SinkError(message) from None
                if exc.code != 429 and exc.code < 500:
                    answer = f", answering: {said}" if said else ""
                    raise SinkError(f"{self.shown} refused the signals: {problem}{answer}") from None
                return problem
            except (urllib.error.URLError, OSError) as exc:
                self.answered(False)
                return str(getattr(exc, "reason", exc))

        with_retries(self, attempt, stopping, says=f"webhook {self.shown}", fails=self.shown)


def _absolute(base: str, location: str) -> str:
    """A redirect's `Location` made absolute against the URL that answered, so `redacted` finds its path (a
    key may be in it, as in the webhook's own); as it is when it cannot be joined."""
    try:
        return urllib.parse.urljoin(base, location)
    except ValueError:
        return location


def _without_login(url: str) -> tuple[str, str | None]:
    """`url` without its user info, and that as `user:password` (percent-decoded) for HTTP Basic auth, as curl
    sends it; None when it has none. urllib would take `user:pw@host` for the host name."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    login, _, host = parts.netloc.rpartition("@")
    user, _, password = login.partition(":")
    plain = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), plain


_OTEL_SEVERITY = {"info": 9, "warning": 13, "error": 17, "critical": 21}
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
)


class _ExporterLines(logging.Filter):
    """The SDK exporter's own lines logged from the OTLP-logs sink's thread: the first error becomes the
    sink's `problem` (FLUO's log says it, with the retries) instead of a bare line on stderr."""

    def __init__(self, sink: OtlpLogsSink) -> None:
        super().__init__()
        self.sink = sink

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.sink.thread_id:
            return True  # another exporter in the process (the demo's span exporters)
        if record.levelno >= logging.ERROR and not self.sink.problem:
            text = record.getMessage()  # "Failed to export logs to H:P, error code: StatusCode.X, error details: …"
            text = text.partition(", error code: ")[2] or text
            self.sink.problem = text.removeprefix("StatusCode.").replace(", error details: ", ": ", 1)
        return False


class OtlpLogsSink(Sink):
    """Signals as OTLP log records (event `fluo.signal`), linked to their trace, through the OTel SDK's exporter.

    The exporter makes one request per export (its own retry loop, up to its timeout, would run out of the
    sink's sight: health `ok` while the endpoint is down, and a stop held for seconds); the sink retries
    failed exports itself as the webhook does, `retrying` meanwhile, with waits a stop cuts short.
    """

    name = "otlp_logs"
    notifies = True
    max_batch = 512  # as the SDK's batch processor: one export request stays small
    ATTEMPTS = 6  # the first and 5 retries, waiting 0.25, 0.5, 1, 2 and 4 s
    FIRST_BACKOFF = 0.25
    MAX_BACKOFF = 4.0
    TIMEOUT = 5.0  # one export request

    def __init__(self, endpoint: str, protocol: str = "http") -> None:
        self.endpoint = endpoint
        self.shown = redacted(endpoint)
        """The endpoint for log lines and errors: its password and query values hidden."""
        self.protocol = protocol
        self.exporter: Any = None
        self.logger: Any = None
        self.collected: list[Any] = []
        self.problem = ""
        """Why the last export failed ("" when it did not); `final`: not worth retrying (a 4xx over HTTP)."""
        self.final = False
        self.thread_id: int | None = None
        self._lines = _ExporterLines(self)

    @property
    def label(self) -> str:
        return f"otlp logs ({self.protocol} {self.shown})"

    def open(self) -> None:
        from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
        from opentelemetry.sdk.resources import Resource

        collected = self.collected

        class Collect(LogRecordProcessor):
            def on_emit(self, log_record: Any) -> None:
                collected.append(log_record)

            def shutdown(self) -> None:
                pass

            def force_flush(self, timeout_millis: int = 30000) -> bool:
                return True

        self.thread_id = threading.get_ident()
        for name in _EXPORTER_LOGGERS:  # ahead of the SDK's DuplicateFilter, which would hide repeats from it
            logging.getLogger(name).filters.insert(0, self._lines)
        if self.protocol == "grpc":
            import grpc
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter

            # user info is refused for gRPC at the start (`ServeConfig.check`); left in, gRPC would take it for
            # part of the host name, and say it, password and all, in every error
            target = urllib.parse.urlsplit(self.endpoint).netloc.rpartition("@")[2]
            self.exporter = GrpcExporter(
                endpoint=target,
                insecure=not self.endpoint.startswith("https://"),
                timeout=self.TIMEOUT,
                retryable_error_codes=[grpc.StatusCode.OK],  # no error is OK: the exporter never retries itself
            )
        else:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter

            url = self.endpoint
            if not url.rstrip("/").endswith("/v1/logs"):
                url = url.rstrip("/") + "/v1/logs"
            self.exporter = HttpExporter(endpoint=url, timeout=self.TIMEOUT, session=_one_try_session(self))
        provider = LoggerProvider(resource=Resource.create({"service.name": "fluo"}), shutdown_on_exit=False)
        provider.add_log_record_processor(Collect())
        self.logger = provider.get_logger("fluo.serve")

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        from opentelemetry.sdk._logs.export import LogRecordExportResult
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

        from .store import parse_time

        for s in batch:
            context = None
            trace_id = s.get("trace_id")
            if trace_id:
                span_ids = s.get("span_ids") or ["0" * 15 + "1"]
                ctx = SpanContext(int(trace_id, 16), int(span_ids[0], 16), is_remote=True, trace_flags=TraceFlags(1))
                context = set_span_in_context(NonRecordingSpan(ctx))
            attributes: dict[str, Any] = {
                "fluo.rule": s["rule"],
                "fluo.severity": s["severity"],
                "fluo.span_ids": list(s.get("span_ids") or []),
                "fluo.observed": dump_json(s.get("observed") or {}),
            }
            for key in ("trace_id", "window_start", "window_end", "name", "description"):
                if s.get(key):
                    attributes[f"fluo.{key}"] = s[key]
            if s.get("trace_ids"):  # a window's: the trace of each of its span ids
                attributes["fluo.trace_ids"] = list(s["trace_ids"])
            if s.get("tags"):
                attributes["fluo.tags"] = list(s["tags"])
            if s.get("partial"):  # a window serve did not see whole, marked as in the other sinks
                attributes["fluo.partial"] = True
                attributes["fluo.partial_reasons"] = list(s.get("partial_reasons") or [])
                attributes["fluo.observed_start"] = s.get("observed_start", "")
                attributes["fluo.observed_end"] = s.get("observed_end", "")
            source = s.get("source")
            if source:
                attributes["fluo.source"] = f"{source['path']}:{source['line']}:{source['column']}"
            self.logger.emit(
                timestamp=parse_time(s["time"]),
                context=context,
                severity_number=_severity_number(s["severity"]),
                severity_text=s["severity"].upper(),
                body=s["message"],
                attributes=attributes,
                event_name="fluo.signal",
            )
        records, self.collected[:] = list(self.collected), []

        def attempt() -> str | None:
            self.problem, self.final = "", False
            if self.exporter.export(records) == LogRecordExportResult.SUCCESS:
                self.answered(True)
                return None
            problem = self.problem or "export failed"
            if self.protocol == "grpc":  # no answer: the channel could not reach the endpoint, or it never replied
                self.answered(not problem.startswith(("UNAVAILABLE", "DEADLINE_EXCEEDED")))
            if self.final:
                raise SinkError(f"{self.shown} refused the signals: {redacted(problem)}")
            return problem

        with_retries(self, attempt, stopping, says=f"otlp logs {self.shown}", fails=f"OTLP logs export to {self.shown}")

    def close(self) -> None:
        if self.exporter is not None:
            self.exporter.shutdown()
        for name in _EXPORTER_LOGGERS:
            logging.getLogger(name).removeFilter(self._lines)


def _one_try_session(sink: OtlpLogsSink) -> Any:
    """A `requests` session for the SDK's HTTP exporter that makes each export one request.

    A refused connection, a timeout or a 429/5xx answer is raised as an error the exporter does not
    retry; `sink.problem` says what it was (and `sink.final`, a 4xx answer the sink does not retry either).
    """
    import requests

    class _Failed(Exception):
        pass

    class OneTry(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            try:
                response = super().request(*args, **kwargs)
            except requests.Timeout:
                sink.problem = f"no answer within {OtlpLogsSink.TIMEOUT:g}s"
                sink.answered(False)
                raise _Failed(sink.problem) from None
            except requests.RequestException as exc:
                errno_text = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(exc))  # "Connection refused"
                sink.problem = errno_text.group(1).lower() if errno_text else type(exc).__name__
                sink.answered(False)
                raise _Failed(sink.problem) from None
            sink.answered(True)
            if 300 <= response.status_code < 400:  # the SDK would count a redirect as written: nothing arrived
                where = printable(response.headers.get("Location") or "") or "elsewhere"
                sink.problem = f"HTTP {response.status_code}, redirected to {where}: point --otlp-logs there"
                sink.final = True
                raise _Failed(sink.problem)
            if response.status_code >= 400:
                sink.problem = f"HTTP {response.status_code}"
                sink.final = response.status_code != 429 and response.status_code < 500
                if not sink.final:
                    raise _Failed(sink.problem)
            return response

    return OneTry()


def _severity_number(severity: str) -> Any:
    from opentelemetry._logs import SeverityNumber

    return SeverityNumber(_OTEL_SEVERITY.get(severity, 9))


class CallbackSink(Sink):
    """Hands each batch to a function (the demo prints them as they arrive)."""

    name = "callback"

    def __init__(self, callback: Callable[[Batch], None], name: str = "callback") -> None:
        self.callback = callback
        self.name = name

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        self.callback(batch)


class SinkWorker:
    """One sink on its own thread, fed through a bounded queue.

    A sink that cannot open or write for now (`TransientSinkError`) is retried
    with backoff, keeping its batch, while signals queue behind it; only at
    shutdown, past the deadline `close` is given, is what remains dropped.
    Every drop is counted (`fluo_sink_signals_dropped{sink,reason}`) and logged.
    """

    LOG_EVERY = 10.0
    OPEN_WAIT = 15.0  # how long `start` waits for the first attempt to open
    FIRST_RETRY = 0.5
    MAX_RETRY = 10.0
    GIVE_UP_GRACE = 0.5  # past the deadline, how long the thread gets to notice and stop
    CUT_SHORT_CHECK = 0.25  # how often a waiting `put` looks whether its wait was cut short
    STALLED_AFTER = 10.0  # a write running longer than this shows as "stalled" in /healthz
    REACHED_WITHIN = 30.0
    """At the stop, a notification endpoint that answered within this many seconds keeps its retries until
    the deadline, even if its last attempt got no answer (it is restarting or flapping). One silent for
    longer, or never reached, gets one try per batch and no retries: a request in flight or queued runs to
    its own timeout (5 s), and the first that gets no answer gives up the rest (it would hold the stop for
    nothing); if it answers, the retries come back. One whose last attempt already failed gets half a second."""

    def __init__(self, sink: Sink, metrics: Metrics, capacity: int) -> None:
        self.sink = sink
        self.metrics = metrics
        self.queue = SignalQueue(capacity)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"fluo-sink-{sink.name}", daemon=True)
        self.opened = threading.Event()  # set once the first attempt to open is over, whatever its outcome
        self.open_error: str | None = None  # the sink cannot open, and retrying will not help
        self.is_open = False
        self.retrying = False
        self.last_failed = False
        self.hopeless_at_stop = False  # `hopeless` when the stop began: it gets a moment, not the deadline
        self.one_try_at_stop = False  # not heard from lately at the stop: one try a batch, no retries
        self.stop_began: float | None = None  # when `begin_close` ran (monotonic)
        self.cut_off = False  # given up at the stop with signals not delivered (a request with no answer)
        self.cut_short_after: float | None = None
        """Seconds into the stop when a second signal gave the sink up (`SinkSet.give_up`); None: the deadline did."""
        self.dropped = 0
        self.dropped_by: dict[str, int] = {}
        self._give_up = threading.Event()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._writing_since: float | None = None
        self._said_down_at_stop = False
        self._not_tried_at_stop = 0
        """Signals of the batches after the first given up at the stop for an endpoint down (`_said_down_at_stop`),
        said in one line with the total (`count_undelivered`) rather than a line each."""
        self._abandoned = False
        self._counted: int | None = None  # `count_undelivered`'s total, once counted
        self._counting = threading.Lock()
        self._last_drop_log = 0.0
        self._last_queue_full: float | None = None  # when a signal last found the queue full (monotonic)
        self._unlogged = 0
        self._retry_logged = 0.0
        self._idle_failed = Throttled(log, logging.WARNING, self.LOG_EVERY)
        """What an idle moment's work (`Sink.idle`) failed at, tried again at each: a warning, at most every
        LOG_EVERY seconds."""
        metrics.sink_queue.labels(sink.name).set_function(self.waiting)
        metrics.sink_added(sink.name)
        sink.on_progress = self._progressed

    def start(self) -> None:
        self.thread.start()
        if not self.opened.wait(self.OPEN_WAIT):  # e.g. a FIFO nobody reads yet
            log.warning(
                "sink %s: not open after %.0fs; starting without it (it keeps trying, signals queue meanwhile)",
                self.sink.name,
                self.OPEN_WAIT,
            )

    def put(
        self,
        signals: Sequence[dict[str, Any]],
        deadline: Callable[[], float] | None = None,
        *,
        late: bool = False,
    ) -> None:
        """Queue `signals`, waiting for room until `deadline()` (monotonic; asked again as time passes, so a
        wait can be cut short) if given; what does not fit is dropped (`late`: because the runtime is
        stopping, counted as `shutdown`)."""
        taken = self.queue.put(signals, None)
        while deadline is not None and taken < len(signals) and not self.queue.closed:
            end = deadline()
            now = time.monotonic()
            if now >= end:
                break
            taken += self.queue.put(signals[taken:], min(end, now + self.CUT_SHORT_CHECK))
        if taken < len(signals):
            if self.queue.closed or late:
                self._dropped(len(signals) - taken, "shutdown", "it is shutting down")
            else:
                self._dropped(len(signals) - taken, "queue_full", "its queue is full")

    def waiting(self) -> int:
        """Signals waiting for the sink (`fluo_sink_queue`): queued, and the batch it is writing or retrying."""
        return self.queue.qsize() + self._in_flight

    def backlog(self) -> float:
        return min(1.0, self.queue.qsize() / self.queue.capacity)

    def undelivered(self) -> int:
        """Signals not delivered so far: dropped, queued, and the batch the sink is working on."""
        with self._lock:
            return self.dropped + self.queue.qsize() + self._in_flight

    def down(self) -> bool:
        """Whether the last batch failed for good (or the sink never opened), even if it is retrying the next."""
        return self.open_error is not None or self.last_failed

    def health(self) -> str:
        """The sink's word in /healthz: "failed", "dropping", "stalled", "retrying" or "ok" (`SinkSet.health`).

        "dropping": signals found its queue full within the last LOG_EVERY seconds, and were dropped.
        A request in flight is "ok" until its own timeout (`OtlpLogsSink.TIMEOUT`, the webhook's): until
        then nothing says the endpoint is in trouble, and a busy one may take seconds to answer, so an
        earlier word would cry wolf. An endpoint that takes the connection and never answers is "retrying"
        from that timeout on, and "stalled" once the write (its retries included) has run STALLED_AFTER."""
        if self.open_error is not None or self.last_failed:  # failed for good, even while trying the next batch
            return "failed"
        full = self._last_queue_full
        if full is not None and time.monotonic() - full < self.LOG_EVERY:
            return "dropping"
        since = self._writing_since
        if since is not None and time.monotonic() - since > self.STALLED_AFTER:
            return "stalled"  # one write has made no progress for a while (a pipe nobody reads)
        if self.retrying or self.sink.retrying or not self.is_open:
            return "retrying"
        return "ok"

    def _dropped(self, n: int, reason: str, why: str) -> None:
        if n <= 0:
            return
        self.metrics.sink_dropped.labels(self.sink.name, reason).inc(n)
        with self._lock:
            self.dropped += n
            self.dropped_by[reason] = self.dropped_by.get(reason, 0) + n
            if reason == "queue_full":
                now = self._last_queue_full = time.monotonic()
                self._unlogged += n
                if now - self._last_drop_log < self.LOG_EVERY:
                    if self._unlogged == n:  # the first held back: said once LOG_EVERY has passed, come what may
                        due = self.LOG_EVERY - (now - self._last_drop_log) + 0.05
                        timer = threading.Timer(due, self._log_unlogged_drops)
                        timer.daemon = True
                        timer.start()
                    return
                self._last_drop_log = now
                n, self._unlogged = self._unlogged, 0
        if why:  # "": already said (the total comes at close)
            shown = redacted(why) if self.sink.notifies else why  # a notification sink's bug may name its URL
            log.error("sink %s dropped %d signal(s): %s", self.sink.name, n, shown)

    def _log_unlogged_drops(self) -> None:
        """Queue-full drops not logged yet (they are summed, a line at most every LOG_EVERY), once it has passed:
        drops that stop coming are still said within seconds, not only at shutdown. Run by a timer, not by the
        sink's thread, which may be busy with one batch for a minute (a slow webhook)."""
        with self._lock:
            if not self._unlogged or time.monotonic() - self._last_drop_log < self.LOG_EVERY:
                return
            self._last_drop_log = time.monotonic()
            n, self._unlogged = self._unlogged, 0
        log.error("sink %s dropped %d signal(s): its queue is full", self.sink.name, n)

    def _progressed(self, done: int) -> None:
        """`done` signals of the batch in hand are delivered (`Sink.advance`): counted written now, not when the
        whole batch is, and progress for "stalled"; unless `close` already counted the batch."""
        with self._lock:
            if self._abandoned:
                return
            sent, self.sink.progress = done - self.sink.progress, done
            self._in_flight -= sent
            self._writing_since = time.monotonic()
        if sent > 0:
            self.metrics.sink_written.labels(self.sink.name).inc(sent)

    def _settle(self, batch: Batch, reason: str = "", why: str = "") -> None:
        """The batch in hand is delivered (no reason) or dropped, but for the part the sink delivered
        (`Sink.progress`, counted as it went); unless `close` already counted it. Dropped for the shutdown once
        given up, the sink is named "given up" in the stop's last line (not "retrying", which it no longer is)."""
        with self._lock:
            abandoned, self._in_flight = self._abandoned, 0
            counted = min(self.sink.progress, len(batch))
        if abandoned:
            return
        sent = len(batch) if not reason else counted
        if reason == "shutdown" and len(batch) > sent and self._give_up.is_set():
            self.cut_off = True
        if sent > counted:
            self.metrics.sink_written.labels(self.sink.name).inc(sent - counted)
        if reason and len(batch) > sent:
            self._dropped(len(batch) - sent, reason, why)

    def _note_retry(self, what: str, problem: str, backoff: float) -> None:
        self.retrying = True
        now = time.monotonic()
        if now - self._retry_logged >= self.LOG_EVERY:
            self._retry_logged = now
            said = problem if problem.startswith(what) else f"{what}: {problem}"  # not "cannot write: cannot write to"
            log.warning("sink %s: %s; retrying in %.1fs (signals queue meanwhile)", self.sink.name, said, backoff)

    def _try_open(self) -> bool:
        backoff = self.FIRST_RETRY
        while True:
            try:
                self.sink.open()
            except TransientSinkError as exc:
                self.opened.set()  # `start` goes on: the sink is retrying, not broken
                self._note_retry("cannot open", str(exc), backoff)
                if self._give_up.wait(backoff) or (self.stopping.is_set() and self.queue.empty()):
                    return False
                backoff = min(backoff * 2, self.MAX_RETRY)
                continue
            except Exception as exc:
                self.open_error = f"cannot open sink {self.sink.name}: {exc}"
                self.opened.set()
                return False
            if self.retrying:
                log.info("sink %s: open now", self.sink.label)
            self.retrying = False
            self.is_open = True
            self.opened.set()
            return True

    def _write(self, batch: Batch) -> None:
        """The sink's write, timed: one that runs past STALLED_AFTER shows as "stalled"."""
        self._writing_since = time.monotonic()
        try:
            self.sink.write(batch, self.stopping)
        finally:
            self._writing_since = None

    def _deliver(self, batch: Batch) -> None:
        backoff = self.FIRST_RETRY
        while True:
            try:
                self._write(batch)
            except TransientSinkError as exc:
                if self._no_retry():
                    self._no_answer_at_stop(batch, str(exc))
                    return
                self._note_retry("cannot write", str(exc), backoff)
                if self._give_up.wait(backoff):
                    self._settle(batch, "shutdown", f"still failing {self._given_up_when()}: {exc}")
                    return
                backoff = min(backoff * 2, self.MAX_RETRY)
                continue
            except SinkError as exc:
                if self._no_retry() and self.sink.unreachable:
                    self._no_answer_at_stop(batch, str(exc))
                    return
                self.last_failed = True
                self._settle(batch, "failed", str(exc))
            except Exception as exc:  # a bug in a sink must not stop the others
                self.last_failed = True
                self._settle(batch, "failed", f"{type(exc).__name__}: {exc}")
            else:
                if self.retrying:
                    log.info("sink %s: delivering again", self.sink.name)
                self.retrying = self.last_failed = False
                self._settle(batch)
                if self._no_retry() and self.answered_since_stop():  # up after all: the deadline is its
                    self.one_try_at_stop = False
                    self.sink.keep_trying_until = self._give_up
            return

    def _no_retry(self) -> bool:
        """Stopping, and the endpoint was not heard from lately: a failed try is not tried again."""
        return self.stopping.is_set() and self.one_try_at_stop

    def _no_answer_at_stop(self, batch: Batch, problem: str) -> None:
        """An endpoint not heard from lately gave no answer at the stop: this batch and the rest are given up."""
        self.last_failed = self.cut_off = self._said_down_at_stop = True  # the rest is counted at the end
        self._settle(batch, "shutdown", f"no answer at the shutdown: {problem}")

    def _run(self) -> None:
        self._try_open()
        while True:
            if self._give_up.is_set():
                break
            batch = self.queue.take(self.sink.max_batch, 0.5)
            if not batch:
                if self.queue.closed:
                    break
                if self.is_open:
                    try:
                        self.sink.idle()
                    except Exception as exc:  # tried again at the next idle moment, or with the next batch
                        self._idle_failed("sink %s: %s (tried again in 0.5s)", self.sink.name, exc)
                continue
            with self._lock:
                if self._abandoned:
                    break
                self._in_flight = len(batch)
                self.sink.progress = 0
            if self.open_error is not None:
                self._settle(batch, "failed", self.open_error)
            elif (self.hopeless_at_stop or self.one_try_at_stop) and self.last_failed:
                # A notification endpoint that is down: another try per batch would hold the stop
                # for its timeout each (a blackholed webhook, 5 s a batch) and deliver nothing.
                said, self._said_down_at_stop = self._said_down_at_stop, True
                if said:
                    with self._lock:
                        self._not_tried_at_stop += len(batch)
                self._settle(batch, "shutdown", "" if said else "it was down when the shutdown began")
            elif not self.is_open and not self._try_open():
                reason = "failed" if self.open_error else "shutdown"
                self._settle(batch, reason, self.open_error or f"the sink had not opened {self._given_up_when()}")
            else:
                self._deliver(batch)
        if self.is_open:
            try:
                self.sink.close()
            except Exception as exc:
                log.warning("sink %s did not close cleanly: %s", self.sink.name, exc)

    def begin_close(self) -> None:
        """Take no more signals; deliver what is queued (retries cut short for a hopeless sink)."""
        self.stop_began = time.monotonic()
        self.hopeless_at_stop = self.hopeless()
        self.one_try_at_stop = not self.hopeless_at_stop and self.sink.notifies and not self.heard_from()
        if not self.hopeless_at_stop and not self.one_try_at_stop:
            self.sink.keep_trying_until = self._give_up  # before `stopping`, which wakes a retry wait
        self.stopping.set()
        self.queue.close()

    def hopeless(self) -> bool:
        """A notification sink that is down (its last attempt got no answer, or its last batch failed for good),
        whose endpoint has not answered within `REACHED_WITHIN`, or ever: at the stop it gets a moment, not the
        deadline (`answered_since_stop` gives it the rest back)."""
        if not self.sink.notifies or not (self.down() or self.sink.unreachable):
            return False
        return not self.heard_from()

    def heard_from(self) -> bool:
        """Whether the endpoint answered within the last `REACHED_WITHIN` seconds."""
        reached = self.sink.reached_at
        return reached is not None and time.monotonic() - reached <= self.REACHED_WITHIN

    def answered_since_stop(self) -> bool:
        """Whether the endpoint answered after the stop began: a sink found hopeless then is up after all."""
        reached, began = self.sink.reached_at, self.stop_began
        return reached is not None and began is not None and reached >= began

    def finish_close(self, deadline: float, timeout: float) -> int:
        """Wait for the thread until `deadline`, then give up; how many signals were not delivered, in all."""
        self.wait_until(deadline)
        if self.give_up():
            self.thread.join(self.GIVE_UP_GRACE)
        return self.count_undelivered(timeout)

    def wait_until(self, deadline: float) -> None:
        if self.thread.ident is not None:
            self.thread.join(max(0.0, deadline - time.monotonic()))

    def _given_up_when(self) -> str:
        """When the sink was given up, for the messages: at the deadline, or cut short by a second signal."""
        if self.cut_short_after is None:
            return "at the shutdown deadline"
        return f"when a second signal cut the stop short, {self.cut_short_after:.1f}s in"

    def give_up(self) -> bool:
        """Tell a thread still delivering to stop (its retries and the rest of its queue); whether it was."""
        if self.thread.ident is None or not self.thread.is_alive():
            return False
        self._give_up.set()
        return True

    def count_undelivered(self, allowed: float) -> int:
        """After the thread ended or was given up: what it never delivered, in all (`allowed`: the seconds
        it had at shutdown, for the message). Counted and logged once: a second call returns the total."""
        with self._counting:
            if self._counted is None:
                self._counted = self._count_undelivered(allowed)
            return self._counted

    def _count_undelivered(self, allowed: float) -> int:
        with self._lock:
            self._abandoned = True
            # the batch in hand less its parts delivered (counted as they went), and what is queued
            left = self._in_flight + len(self.queue.take(self.queue.qsize() or 1, 0))
            self._in_flight = 0
        if left and self._give_up.is_set():  # still delivering when given up, whether or not it stopped since
            self.cut_off = True
        if self.cut_short_after is None:
            why = f"not delivered within the {allowed:.1f}s it had at shutdown"
        else:
            why = f"not delivered {self._given_up_when()}"
        self._dropped(left, "shutdown", why)
        with self._lock:
            unlogged, self._unlogged = self._unlogged, 0
            not_tried, self._not_tried_at_stop = self._not_tried_at_stop, 0
            total, by = self.dropped, dict(self.dropped_by)
        if unlogged:
            log.error("sink %s dropped %d signal(s): its queue is full", self.sink.name, unlogged)
        if not_tried:
            log.error(
                "sink %s dropped %d more signal(s) at the shutdown, not tried: its endpoint was down",
                self.sink.name,
                not_tried,
            )
        if total:
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(by.items()))
            log.error("sink %s: %d signal(s) not delivered in all (%s)", self.sink.name, total, reasons)
        return total

    def close(self, timeout: float) -> int:
        """Deliver what is queued, then stop; give up after `timeout` seconds. How many signals were not delivered."""
        self.begin_close()
        return self.finish_close(time.monotonic() + timeout, timeout)


def overall(health: dict[str, str]) -> str:
    """The sinks' words (`SinkSet.health`) in one for /healthz: "failing" when every sink has failed (each
    signal is being lost), "degraded" when some have, or one is dropping signals for a full queue, else "ok".
    A sink retrying or stalled has lost nothing yet (its signals queue, and a store's full queue makes
    admission refuse exports): it leaves "ok" as is."""
    failed = sum(word == "failed" for word in health.values())
    if failed and failed == len(health):
        return "failing"
    return "degraded" if failed or "dropping" in health.values() else "ok"


class SinkSet:
    """Every configured sink, each on its own thread behind a bounded queue."""

    def __init__(self, sinks: Sequence[Sink], metrics: Metrics, capacity: int) -> None:
        self.workers = [SinkWorker(s, metrics, capacity) for s in sinks]
        self._cut_off = math.inf

    def start(self) -> list[str]:
        """Start every sink; the problems of those that cannot open and never will (each one line).

        A sink that cannot open for now (a locked database) is not a problem: it retries
        in the background, `health` says "retrying", and signals queue for it meanwhile.
        """
        for w in self.workers:
            w.thread.start()
        deadline = time.monotonic() + SinkWorker.OPEN_WAIT
        for w in self.workers:
            w.opened.wait(max(0.0, deadline - time.monotonic()))
        return [w.open_error for w in self.workers if w.open_error is not None]

    def publish(self, signals: Sequence[dict[str, Any]], *, wait: float = 0.0) -> None:
        """Queue `signals` for every sink.

        A store waits up to `wait` seconds (`math.inf`: as long as it takes) for room in its queue
        rather than drop a signal, so a slow or locked store slows evaluation down (and admission
        then refuses new data) instead of losing signals; `cut_short` ends such waits. With `wait` 0,
        or for a notification sink (`Sink.notifies`), it never blocks: what does not fit is dropped (counted).
        """
        if not signals:
            return
        end = time.monotonic() + wait

        def deadline() -> float:
            return min(end, self._cut_off)

        late = self._cut_off < math.inf  # stopping: what cannot wait any more is dropped for the shutdown
        for w in self.workers:
            w.put(signals, None if wait <= 0 or w.sink.notifies else deadline, late=late and not w.sink.notifies)

    def cut_short(self, at: float) -> None:
        """Waits of `publish` end by `at` (monotonic) at the latest: the runtime is stopping."""
        self._cut_off = min(self._cut_off, at)

    def backlog(self) -> float:
        """The fullest queue of a store that works or is being retried, as a fraction (0 to 1) of its capacity.

        Notification sinks (webhook, OTLP logs) are left out, and so is a store whose last batch
        failed for good: their signals are dropped and counted while they cannot keep up, instead of
        their full queue holding back every trace, and every other sink, through admission control.
        """
        return max((w.backlog() for w in self._stores()), default=0.0)

    def fullest(self) -> str:
        """The name of the sink whose queue `backlog` is, for the log."""
        return max(self._stores(), key=SinkWorker.backlog).sink.name if self._stores() else "none"

    def _stores(self) -> list[SinkWorker]:
        return [w for w in self.workers if not w.sink.notifies and not w.down()]

    def reopen(self) -> None:
        """Reopen the files written to before their next batch (SIGHUP, after log rotation)."""
        for w in self.workers:
            w.sink.reopen()

    def health(self) -> dict[str, str]:
        """Per sink: "ok", "retrying" (cannot open or write for now, being retried), "stalled" (one write
        has made no progress for STALLED_AFTER seconds), "dropping" (signals found its queue full lately)
        or "failed"."""
        return {w.sink.name: w.health() for w in self.workers}

    def outcome(self) -> dict[str, str]:
        """After `close`, per sink: its `health` word, or "given up" for one given up at the stop with signals not
        delivered (a request that got no answer in time: its health may still say "ok")."""
        return {w.sink.name: "given up" if w.cut_off else w.health() for w in self.workers}

    def give_up(self, allowed: float, cut_short_after: float | None = None) -> int:
        """At the shutdown deadline, whether or not `close` is done (a sink call stuck past it keeps `close`
        waiting), or `cut_short_after` seconds into the stop when a second signal cut it short: every sink
        still delivering is given up, and what each did not deliver counted and logged (at most once,
        `SinkWorker.count_undelivered`). How many signals were not delivered, in all."""
        for w in self.workers:
            if cut_short_after is not None and w.thread.is_alive():
                w.cut_short_after = cut_short_after  # before the give-up, which its messages then name
            w.give_up()
        return sum(w.count_undelivered(allowed) for w in self.workers)

    def close(self, timeout: float = 15.0) -> int:
        """Deliver what is queued and stop every sink, within `timeout` seconds in all.

        Returns how many signals were not delivered: dropped at any time during the run,
        plus those still queued at the deadline."""
        for w in self.workers:
            w.begin_close()
        now = time.monotonic()
        # Every sink still delivering at its deadline is given up at once and gets one shared grace to
        # stop, which ends by `timeout` (one after another, N stuck sinks overran it by N graces).
        grace = min(SinkWorker.GIVE_UP_GRACE, timeout / 4)
        deadline = now + timeout - grace
        # A notification endpoint down, and not lately up, gets a moment, not the whole deadline: its request in
        # flight would hold the stop for its timeout (5 s, a webhook or an OTLP logs export) and deliver nothing.
        down_deadline = min(deadline, now + SinkWorker.GIVE_UP_GRACE)
        allowed = [down_deadline if w.hopeless_at_stop else deadline for w in self.workers]
        for w, until in zip(self.workers, allowed, strict=True):
            w.wait_until(until)
        for i, w in enumerate(self.workers):  # its first request in flight at the stop, answered in that moment
            if w.hopeless_at_stop and w.answered_since_stop():
                allowed[i] = deadline
                w.wait_until(deadline)
        if [w for w in self.workers if w.give_up()]:
            end = time.monotonic() + grace
            for w in self.workers:
                w.thread.join(max(0.0, end - time.monotonic()))
        return sum(w.count_undelivered(until - now) for w, until in zip(self.workers, allowed, strict=True))
