"""The signal store: one SQLite file (WAL) that `fluo serve` writes and `fluo signals` reads.

Each row is one signal: its JSON as LANGUAGE.md §7 gives it, plus the columns
`fluo signals` filters on. The signal's `time` is the trace's (or window's) end,
in nanoseconds since the epoch (held within 1677 to 2262, see `stored_time`);
`received` is when the runtime stored it.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def stored_time(ns: int) -> int:
    """`ns` as the store keeps it: a time outside what its columns hold becomes the nearest one they do."""
    return min(max(ns, TIME_NS_MIN), TIME_NS_MAX)


def parse_time(text: str) -> int:
    """An RFC 3339 timestamp as nanoseconds since the epoch; `t` and `z` in either case (RFC 3339 §5.6).

    A time without an offset, or a bare date (its midnight), is UTC, as `fluo signals` shows times.
    """
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def severity_rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else 0


_COLUMNS = ("time_ns", "received_ns", "rule", "severity", "severity_rank", "trace_id", "message", "json")

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
    """The file is a database, but its `signals` table is not one FLUO wrote."""


def is_transient(exc: BaseException) -> bool:
    """Whether an SQLite error may go away by itself (another connection holds a lock, the disk is full)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


class SignalStore:
    """A connection to the store; one per thread, as sqlite3 wants.

    `timeout` is how long a statement waits for another connection's lock before
    raising "database is locked" (see `is_transient`)."""

    def __init__(self, path: Path | str, *, create: bool = True, timeout: float = 10.0) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise FileNotFoundError(str(path))
        self.db = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
        self._rows_per_insert = min(_ROWS_PER_INSERT, self.db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 10)
        if create:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self._check_shape()
                self.db.executescript(_SCHEMA)
            except BaseException:
                self.db.close()
                raise

    def _check_shape(self) -> None:
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(signals)")}
        missing = [c for c in _COLUMNS if c not in columns]
        if columns and missing:
            raise NotAStore(f"its `signals` table has no {missing[0]} column")

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
                json.dumps(s, ensure_ascii=False),
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
            clauses.append("trace_id = ?")
            args.append(where.trace_id.lower())
        sql = "SELECT json FROM signals"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY time_ns DESC, id DESC LIMIT ?"
        args.append(where.limit)
        rows = self.db.execute(sql, args).fetchall()
        return [r[0] for r in reversed(rows)]

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
