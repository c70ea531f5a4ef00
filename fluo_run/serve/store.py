"""The signal store: one SQLite file (WAL) that `fluo serve` writes and `fluo signals` reads.

Each row is one signal: its JSON as LANGUAGE.md §7 gives it, plus the columns
`fluo signals` filters on. The signal's `time` is the trace's (or window's) end,
in nanoseconds since the epoch (held within 1677 to 2262, see `stored_time`);
`received` is when the runtime stored it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fluo_lang.values import dump_json

from .config import PRIVATE_MODE

SEVERITY_ORDER = ("info", "warning", "error", "critical")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS signals (
    id INTEGER PRIMARY KEY,
    time_ns INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    severity_rank INTEGER NOT NULL,
    trace_id TEXT,
    window_start TEXT,
    window_end TEXT,
    message TEXT NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS signals_time ON signals (time_ns);
CREATE INDEX IF NOT EXISTS signals_rule ON signals (rule, time_ns);
CREATE INDEX IF NOT EXISTS signals_trace ON signals (trace_id);
"""


TIME_NS_MIN, TIME_NS_MAX = -(2**63), 2**63 - 1
"""The times an INTEGER column holds (SQLite's are 64-bit): 1677-09-21 to 2262-04-11."""
SQLITE_INTEGER_MAX = TIME_NS_MAX
"""The largest integer SQLite takes: a larger `SignalFilter.limit` (`--limit 99999999999999999999`) is this one."""


def stored_time(ns: int) -> int:
    """`ns` as the store keeps it: a time outside what its columns hold becomes the nearest one they do."""
    return min(max(ns, TIME_NS_MIN), TIME_NS_MAX)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FRACTION = re.compile(r"(?<=\d\d:\d\d:\d\d)[.,](\d+)")
"""The fraction of a second after `hh:mm:ss`, read here to the nanosecond (`datetime` keeps microseconds)."""
_LEAP_SECOND = re.compile(r"(?<=\d\d:\d\d:)60(?!\d)")
"""Second 60 of `hh:mm:60`, a leap second (RFC 3339 §5.6, `time-second`), which `datetime` has no room for."""


def parse_time(text: str) -> int:
    """An RFC 3339 timestamp as nanoseconds since the epoch, exact; `t` and `z` in either case (RFC 3339 §5.6).

    A time without an offset, or a bare date (its midnight), is UTC, as `fluo signals` shows times.
    Digits of the second's fraction past the nanosecond are cut off (as signal times have none).
    A leap second (`23:59:60`, with any fraction) is the last nanosecond of the second before it, as POSIX
    time has no room for it: after every time in that second, before the next minute.
    """
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    nanos = 0
    fraction = _FRACTION.search(text)
    if fraction is not None:
        nanos = int(fraction[1][:9].ljust(9, "0"))
        text = text[: fraction.start()] + text[fraction.end() :]
    leap = _LEAP_SECOND.search(text)
    if leap is not None:
        nanos = 999_999_999
        text = text[: leap.start()] + "59" + text[leap.end() :]
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # timedelta arithmetic is exact where `timestamp()` is a float (off by a second before 1970, and by
    # microseconds past 2^53 ns)
    return (dt - _EPOCH) // timedelta(microseconds=1) * 1000 + nanos


def severity_rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else 0


_COLUMNS = (
    "time_ns",
    "received_ns",
    "rule",
    "severity",
    "severity_rank",
    "trace_id",
    "window_start",
    "window_end",
    "message",
    "json",
)
"""Every column `add` writes: a `signals` table without one of them is not a store FLUO wrote."""

APPLICATION_ID = 0x464C554F  # "FLUO": `PRAGMA application_id` of a store FLUO made (`file` names it too)
SCHEMA_VERSION = 1
"""`PRAGMA user_version` of the stores this FLUO writes. Stores made before it was set have 0 (and
application_id 0) and the same table: they are read and written as version 1 (and stamped when written)."""

QUICK_CHECK_SECONDS = 5.0
"""How long `fluo serve` checks a store's pages at start (`PRAGMA quick_check`, O(size): about 1.2 s for
a million signals, 600 MB, in the page cache; 13 s from a cold, slow disk). A larger store is checked for
this long, the rest with a warning; the ends of every b-tree (where writes go) are read whatever its size."""

_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL)


_ROWS_PER_INSERT = 2000  # 20,000 parameters, or fewer if the SQLite in use allows fewer (999 before 3.32)


@functools.lru_cache(maxsize=4)
def _insert(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
    return (
        "INSERT INTO signals (time_ns, received_ns, rule, severity, severity_rank, trace_id,"
        f" window_start, window_end, message, json) VALUES {values}"
    )


class NotAStore(Exception):
    """The file is a database, but its `signals` table is not one FLUO wrote (or it says it belongs to
    another application, or to a newer FLUO)."""


class CorruptStore(Exception):
    """The file is an SQLite database whose pages are damaged: `PRAGMA quick_check`, or SQLite reading it, said so."""


_ENDS = tuple(
    f"SELECT {column} FROM signals{index} ORDER BY {column}{order} LIMIT 1"
    for column, index in (
        ("rowid", ""),
        ("time_ns", " INDEXED BY signals_time"),
        ("rule", " INDEXED BY signals_rule"),
        ("trace_id", " INDEXED BY signals_trace"),
    )
    for order in ("", " DESC")
)
"""Read the first and last entry of the table and of each index: the root-to-leaf paths that writes take."""


def recovery(path: Path | str) -> str:
    """What to do with a corrupt store, for its error line."""
    return (
        f"move it aside (mv {path} {path}.corrupt) so that a new store is made there, and recover what it holds "
        f"with `sqlite3 {path}.corrupt .recover | sqlite3 {path}.recovered`"
    )


def error_code(exc: BaseException) -> int:
    """SQLite's primary result code of `exc` (SQLITE_CORRUPT, ...), 0 when it has none."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_corrupt(exc: BaseException) -> bool:
    return isinstance(exc, CorruptStore) or error_code(exc) == sqlite3.SQLITE_CORRUPT


def is_transient(exc: BaseException) -> bool:
    """Whether an SQLite error may go away by itself: another connection holds a lock, the disk is full
    (SQLITE_FULL), or a write failed (SQLITE_IOERR_WRITE, "disk I/O error"): what SQLite reports for a
    write past the file-size limit (EFBIG under `ulimit -f`), which room may be made for as on a full disk.
    A failing disk gives it too, and is retried (and logged) rather than its signals dropped."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY or code == sqlite3.SQLITE_IOERR_WRITE
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


class SignalStore:
    """A connection to the store; one per thread, as sqlite3 wants.

    `timeout` is how long a statement waits for another connection's lock before
    raising "database is locked" (see `is_transient`)."""

    def __init__(
        self,
        path: Path | str,
        *,
        create: bool = True,
        timeout: float = 10.0,
        check_seconds: float | None = None,
    ) -> None:
        """Open the store at `path`, made if missing when `create` (as `fluo serve` does); else read only.

        `check_seconds`: check its pages first for up to this long (`check`); raises CorruptStore."""
        self.path = Path(path)
        self.unchecked = False
        """`check` ran out of time before it had read every page."""
        if not create and not self.path.exists():
            raise FileNotFoundError(str(path))
        self.db = self._connect(timeout, read_only=not create)
        self._rows_per_insert = min(_ROWS_PER_INSERT, self.db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 10)
        try:
            if check_seconds is not None:
                self.check(check_seconds)
            made = self._check_shape()
            if made and not create:  # read only: nothing to make, and nothing to read
                raise NotAStore("it is an empty file" if self.path.stat().st_size == 0 else "it has no `signals` table")
            if create:  # only once it is known to be FLUO's: WAL mode stays with the file
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.executescript(_SCHEMA)
                if made or self._stamp() == (0, 0):
                    self.db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            self.db.close()
            raise

    def _connect(self, timeout: float, *, read_only: bool) -> sqlite3.Connection:
        """A connection; read only: `mode=ro`, so a user who may only read the file can list its signals.

        A store in WAL mode is read through its -wal and -shm files, which SQLite makes when missing (serve
        stopped cleanly removes them) and a read-only connection cannot remove again. If no -wal (or -journal)
        file is beside a store in WAL mode, no connection has it open (serve keeps one open while it runs) and
        every committed signal is in the file itself, so it is read as immutable: no -shm, no locks, nothing
        left beside the store, and nothing made in a folder the reader may not write to. `_read` reads again
        as `mode=ro` if a serve took the store meanwhile."""
        self._immutable_as: tuple[object, ...] | None = None
        if not read_only:
            # a new store is readable by its owner only (its -wal and -shm take its mode); O_EXCL: closing a
            # descriptor of a file open in SQLite would drop its locks. SQLite says what else is wrong. A symbolic
            # link to no file yet is made at its target, which SQLite opens (O_EXCL would refuse the link itself).
            with contextlib.suppress(OSError):
                os.close(os.open(os.path.realpath(self.path), os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
            return sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path))
        state = self._file_state()
        immutable = not state[1] and self._in_wal_mode()
        db = sqlite3.connect(
            f"{uri}?mode=ro{'&immutable=1' if immutable else ''}",
            timeout=timeout,
            isolation_level=None,
            check_same_thread=False,
            uri=True,
        )
        self._immutable_as = state if immutable else None
        return db

    def _file_state(self) -> tuple[object, ...]:
        """What changes when a writer takes the store: the file's identity, size and time; whether a -wal or
        -journal file is beside it."""
        st = os.stat(self.path)
        beside = any(os.path.exists(f"{self.path}{end}") for end in ("-wal", "-journal"))
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns), beside

    def _in_wal_mode(self) -> bool:
        """Whether the file's header says WAL mode (its read version, byte 18, is 2), as serve leaves it; a
        store in another mode takes locks in the file itself, which a reader must see."""
        with open(self.path, "rb") as f:
            header = f.read(20)
        return len(header) == 20 and header[18] == 2

    def _read(self, sql: str, args: list[Any]) -> list[Any]:
        """The rows of a query; read again through the -wal if the store, read as immutable, was taken by a
        writer meanwhile (a serve started): its pages may have changed under the read."""
        rows = self.db.execute(sql, args).fetchall()
        if self._immutable_as is not None and self._file_state() != self._immutable_as:
            timeout = self.db.execute("PRAGMA busy_timeout").fetchone()[0] / 1000
            self.db.close()
            uri = "file:" + urllib.parse.quote(os.path.abspath(self.path))
            self.db = sqlite3.connect(
                f"{uri}?mode=ro", timeout=timeout, isolation_level=None, check_same_thread=False, uri=True
            )
            self._immutable_as = None
            rows = self.db.execute(sql, args).fetchall()
        return rows

    def check(self, seconds: float) -> None:
        """Raise CorruptStore when the store's pages are damaged.

        The first and last entries of the `signals` table and of its indexes are read (the paths writes take),
        then `PRAGMA quick_check` runs for up to `seconds`: O(size), see QUICK_CHECK_SECONDS. Past that
        it stops, and `unchecked` says the rest was not checked."""
        for sql in _ENDS:
            try:
                self.db.execute(sql).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such" not in str(exc):  # no such table or index: a new store, or one check_shape refuses
                    raise
            except sqlite3.DatabaseError as exc:
                if is_corrupt(exc):
                    raise CorruptStore(str(exc)) from exc
                raise
        deadline = time.monotonic() + seconds
        self.db.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        try:
            found = [row[0] for row in self.db.execute("PRAGMA quick_check(5)")]
        except sqlite3.OperationalError as exc:
            if error_code(exc) != sqlite3.SQLITE_INTERRUPT:
                raise
            self.unchecked = True
            return
        except sqlite3.DatabaseError as exc:
            if is_corrupt(exc):
                raise CorruptStore(str(exc)) from exc
            raise
        finally:
            self.db.set_progress_handler(None, 0)
        if found != ["ok"]:
            raise CorruptStore("; ".join(found))

    def _stamp(self) -> tuple[int, int]:
        """The store's `application_id` and `user_version` (0 and 0 for a store made before FLUO set them)."""
        app = self.db.execute("PRAGMA application_id").fetchone()[0]
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        return int(app), int(version)

    def _check_shape(self) -> bool:
        """Raise NotAStore for a store FLUO did not write, or a newer FLUO wrote; whether it has no `signals` table.

        Most programs leave `application_id` 0, as FLUO did before it set its own: a database without the
        stamp that holds tables other than `signals` is another program's, and is not taken over."""
        app, version = self._stamp()
        if app not in (0, APPLICATION_ID):
            raise NotAStore(f"it belongs to another program (application_id {app:#x})")
        if app == 0:
            others = [
                row[0]
                for row in self.db.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
                    " AND name != 'signals' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
                )
            ]
            if others:
                shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
                has_signals = self.db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'signals'"
                ).fetchone()
                hint = (  # most likely FLUO's own older store, with a view or table a user added
                    f"; if it is a FLUO store you added them to, `PRAGMA application_id = {APPLICATION_ID}` marks it "
                    "as FLUO's"
                    if has_signals
                    else ""
                )
                raise NotAStore(f"it is another program's database (it holds {shown}){hint}")
        if app == APPLICATION_ID and version > SCHEMA_VERSION:
            raise NotAStore(f"a newer FLUO wrote it (store version {version}; this one knows up to {SCHEMA_VERSION})")
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(signals)")}
        missing = [c for c in _COLUMNS if c not in columns]
        if columns and missing:
            raise NotAStore(f"its `signals` table has no {missing[0]} column")
        return not columns

    def add(self, signals: Iterable[dict[str, Any]]) -> int:
        now = time.time_ns()
        rows = [
            (
                stored_time(parse_time(s["time"])),
                now,
                s["rule"],
                s["severity"],
                severity_rank(s["severity"]),
                s.get("trace_id"),
                s.get("window_start"),
                s.get("window_end"),
                s["message"],
                dump_json(s),
            )
            for s in signals
        ]
        # One multi-row INSERT per chunk rather than executemany: sqlite3 lets go of the GIL
        # around every statement step, and with other busy threads (the receivers, the
        # evaluator) getting it back costs up to a switch interval each time, so a step
        # per row starved the sink thread (about 1,200 rows/s against two busy threads).
        with self.db:
            self.db.execute("BEGIN")
            for i in range(0, len(rows), self._rows_per_insert):
                chunk = rows[i : i + self._rows_per_insert]
                self.db.execute(_insert(len(chunk)), [v for row in chunk for v in row])
        return len(rows)

    def query_texts(self, where: SignalFilter) -> list[str]:
        """The matching signals as stored: one JSON text each (as `fluo eval` prints them), oldest first."""
        clauses: list[str] = []
        args: list[Any] = []
        if where.rules:
            clauses.append(f"rule IN ({', '.join('?' for _ in where.rules)})")
            args.extend(where.rules)
        if where.min_severity is not None:
            clauses.append("severity_rank >= ?")
            args.append(severity_rank(where.min_severity))
        # A bound past the last time the store holds matches nothing (since) or everything (until).
        if where.since_ns is not None:
            if where.since_ns > TIME_NS_MAX:
                return []
            clauses.append("time_ns >= ?")
            args.append(stored_time(where.since_ns))
        if where.until_ns is not None and where.until_ns <= TIME_NS_MAX:
            clauses.append("time_ns < ?")
            args.append(stored_time(where.until_ns))
        if where.trace_id is not None:
            # A windowed signal has no `trace_id` but names the trace of each of its spans (`trace_ids`).
            # Both terms are searched in the trace_id index (`trace_id IS NULL` for the windowed ones), so only
            # windowed signals' JSON is read.
            clauses.append(
                "(trace_id = ? OR (trace_id IS NULL AND EXISTS"
                " (SELECT 1 FROM json_each(signals.json, '$.trace_ids') WHERE value = ?)))"
            )
            args.extend([where.trace_id.lower()] * 2)
        sql = "SELECT json FROM signals"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY time_ns DESC, id DESC LIMIT ?"
        args.append(min(where.limit, SQLITE_INTEGER_MAX))  # more is "all of them", which SQLite cannot be given
        rows = self._read(sql, args)
        return [r[0] for r in reversed(rows)]

    def count(self) -> int:
        """How many signals the store holds."""
        return int(self._read("SELECT count(*) FROM signals", [])[0][0])

    def rules_stored(self) -> list[str]:
        """The rules the store holds signals of, in order: one step of the `rule` index each, not a pass over
        every signal (a store of millions of one rule's)."""
        out: list[str] = []
        while row := self._read(
            "SELECT rule FROM signals WHERE rule > ? ORDER BY rule LIMIT 1", [out[-1] if out else ""]
        ):
            out.append(row[0][0])
        return out

    def query(self, where: SignalFilter) -> list[dict[str, Any]]:
        """The matching signals, oldest first."""
        return [json.loads(text) for text in self.query_texts(where)]

    def close(self) -> None:
        self.db.close()


@dataclass
class SignalFilter:
    """What `fluo signals` asks for; the newest `limit` matches are returned oldest first."""

    rules: Sequence[str] = ()
    min_severity: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    trace_id: str | None = None
    limit: int = 100
