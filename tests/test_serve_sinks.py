"""Sinks under trouble: slow, locked, missing or failing; real threads, real SQLite files, a real local HTTP server."""

from __future__ import annotations

import base64
import contextlib
import errno
import functools
import http.server
import io
import json
import logging
import math
import os
import shutil
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from limits_support import file_size_limit
from reader_support import as_reader
from serve_support import LoopbackServer, wait_for

from fluo_run.serve import sinks as sinks_module
from fluo_run.serve.config import ConfigError, check_url, redacted
from fluo_run.serve.metrics import Metrics
from fluo_run.serve.sinks import (
    Batch,
    CallbackSink,
    JsonlSink,
    OpenFile,
    OtlpLogsSink,
    Sink,
    SinkError,
    SinkSet,
    SinkWorker,
    SqliteSink,
    TransientSinkError,
    WebhookSink,
)
from fluo_run.serve.store import SignalFilter, SignalStore


def signals(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"n": i} for i in range(start, start + n)]


def dropped(metrics: Metrics, sink: str, reason: str) -> float:
    return metrics.registry.get_sample_value("fluo_sink_signals_dropped_total", {"sink": sink, "reason": reason}) or 0


class Gate(Sink):
    """Takes each batch only once `release` is set; records what it got."""

    def __init__(self, name: str = "gate") -> None:
        self.name = name
        self.release = threading.Event()
        self.got: list[dict[str, Any]] = []

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        self.release.wait(10)
        self.got.extend(batch)


def gate_holding_one(capacity: int) -> tuple[Metrics, Gate, SinkSet]:
    """A started gate sink whose worker holds one signal (waiting for `release`), its queue empty."""
    metrics = Metrics()
    gate = Gate()
    sinks = SinkSet([gate], metrics, capacity=capacity)
    assert sinks.start() == []
    sinks.publish(signals(1))
    wait_for(lambda: sinks.backlog() == 0.0, what="the first signal to be taken")
    return metrics, gate, sinks


def test_publish_with_wait_blocks_for_room_instead_of_dropping() -> None:
    metrics, gate, sinks = gate_holding_one(10)
    sinks.publish(signals(10, 1))
    assert sinks.backlog() == 1.0
    threading.Timer(0.3, gate.release.set).start()
    sinks.publish(signals(30, 11), wait=10.0)  # room comes as the sink drains
    assert dropped(metrics, "gate", "queue_full") == 0
    assert sinks.close(10) == 0
    assert [s["n"] for s in gate.got] == list(range(41))


def test_publish_without_wait_drops_what_does_not_fit_and_close_counts_it(caplog: Any) -> None:
    metrics, gate, sinks = gate_holding_one(5)
    sinks.publish(signals(8, 1))  # five fit
    sinks.publish(signals(2, 9), wait=0.05)  # no room comes: dropped after the wait
    assert dropped(metrics, "gate", "queue_full") == 5
    gate.release.set()
    assert sinks.close(10) == 5
    assert [s["n"] for s in gate.got] == list(range(6))
    assert "sink gate: 5 signal(s) not delivered in all (queue_full 5)" in caplog.text


def test_close_counts_what_a_stuck_sink_never_delivered() -> None:
    metrics = Metrics()
    gate = Gate()  # never released
    ok: list[dict[str, Any]] = []
    sinks = SinkSet([gate, CallbackSink(ok.extend, name="ok")], metrics, capacity=100)
    sinks.start()
    sinks.publish(signals(1))
    wait_for(lambda: gate.got == [] and sinks.workers[0].queue.empty(), what="the gate to hold a batch")
    sinks.publish(signals(4, 1))
    assert sinks.close(0.2) == 5  # one in the gate's hands, four queued
    assert dropped(metrics, "gate", "shutdown") == 5
    assert len(ok) == 5
    gate.release.set()


class Flaky(Sink):
    """Cannot open, then cannot write, for a while; then works."""

    name = "flaky"

    def __init__(self, open_failures: int, write_failures: int) -> None:
        self.open_failures = open_failures
        self.write_failures = write_failures
        self.got: list[dict[str, Any]] = []

    def open(self) -> None:
        if self.open_failures:
            self.open_failures -= 1
            raise TransientSinkError("locked")

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        if self.write_failures:
            self.write_failures -= 1
            raise TransientSinkError("locked")
        self.got.extend(batch)


def test_transient_failures_are_retried_keeping_every_signal(monkeypatch: Any) -> None:
    monkeypatch.setattr(SinkWorker, "FIRST_RETRY", 0.01)
    monkeypatch.setattr(SinkWorker, "MAX_RETRY", 0.05)
    metrics = Metrics()
    flaky = Flaky(open_failures=3, write_failures=3)
    sinks = SinkSet([flaky], metrics, capacity=100)
    assert sinks.start() == []  # retrying is not a reason to refuse to start
    sinks.publish(signals(10))
    wait_for(lambda: len(flaky.got) == 10, what="delivery after the retries")
    assert sinks.health() == {"flaky": "ok"}
    assert sinks.close(5) == 0


def test_health_says_retrying_while_a_sink_cannot_open(monkeypatch: Any) -> None:
    monkeypatch.setattr(SinkWorker, "FIRST_RETRY", 0.01)
    monkeypatch.setattr(SinkWorker, "MAX_RETRY", 0.02)
    flaky = Flaky(open_failures=10**9, write_failures=0)
    metrics = Metrics()
    sinks = SinkSet([flaky], metrics, capacity=4)
    assert sinks.start() == []
    assert sinks.health() == {"flaky": "retrying"}
    sinks.publish(signals(3))
    assert sinks.backlog() == 0.75
    assert sinks.close(0.3) == 3
    assert dropped(metrics, "flaky", "shutdown") == 3


class Broken(Sink):
    name = "broken"

    def open(self) -> None:
        raise OSError("no such folder")

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        raise AssertionError("never opened")


def test_a_sink_that_cannot_open_for_good_is_reported_by_start() -> None:
    sinks = SinkSet([Broken()], Metrics(), capacity=10)
    assert sinks.start() == ["cannot open sink broken: no such folder"]
    assert sinks.health() == {"broken": "failed"}
    assert sinks.close(1) == 0


class Down(Sink):
    """Refuses every batch for good until `up` is set (a webhook that is down)."""

    name = "down"

    def __init__(self) -> None:
        self.up = threading.Event()
        self.got: list[dict[str, Any]] = []

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        if not self.up.is_set():
            raise SinkError("refused")
        self.got.extend(batch)


def test_a_sink_down_for_good_drops_its_signals_instead_of_holding_back_the_others() -> None:
    metrics = Metrics()
    down = Down()
    ok: list[dict[str, Any]] = []
    sinks = SinkSet([down, CallbackSink(ok.extend, name="ok")], metrics, capacity=10)
    sinks.start()
    sinks.publish(signals(1))
    wait_for(lambda: sinks.health()["down"] == "failed", what="the first batch to fail")
    down_worker = sinks.workers[0]
    stuck = threading.Event()
    original = down.write

    def slow(batch: Batch, stopping: threading.Event) -> None:
        down.retrying = True  # as the webhook does between its attempts
        stuck.wait(10)
        down.retrying = False
        original(batch, stopping)

    down.write = slow  # type: ignore[method-assign]
    sinks.publish(signals(1, 1))
    wait_for(lambda: down_worker.queue.empty(), what="the down sink to take a batch")
    sinks.publish(signals(10, 2))  # fills the down sink's queue
    wait_for(lambda: len(ok) == 12, what="the working sink to take everything")
    assert down_worker.backlog() == 1.0 and sinks.health()["down"] == "failed"  # though trying its next batch
    assert sinks.backlog() == 0.0  # admission still takes traffic: the working sink keeps up
    down.up.set()
    stuck.set()
    wait_for(lambda: sinks.health()["down"] == "ok", what="the sink to come back")
    sinks.publish(signals(10, 12))
    assert sinks.close(10) == 1  # the batch refused while it was down
    assert len(down.got) == 21 and len(ok) == 22
    assert dropped(metrics, "down", "failed") == 1


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SinkWorker, "FIRST_RETRY", 0.02)
    monkeypatch.setattr(SinkWorker, "MAX_RETRY", 0.1)
    monkeypatch.setattr(SqliteSink, "BUSY_TIMEOUT", 0.05)
    monkeypatch.setattr(WebhookSink, "FIRST_BACKOFF", 0.02)
    monkeypatch.setattr(WebhookSink, "MAX_BACKOFF", 0.05)


def stored(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"rule": "r", "severity": "warning", "time": "2025-01-02T03:04:05Z", "message": f"m{i}", "n": i}
        for i in range(start, start + n)
    ]


def rows(path: Path) -> list[int]:
    """The signals stored in `path` (their "n"); none while the sink is still creating it."""
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(path)) as db:
        try:
            return sorted(int(r[0]) for r in db.execute("SELECT json_extract(json, '$.n') FROM signals"))
        except sqlite3.OperationalError:  # no such table yet
            return []


@contextlib.contextmanager
def locked(path: Path) -> Iterator[threading.Event]:
    """Another connection holds an exclusive lock on `path` until the event is set (or the block ends)."""
    release = threading.Event()
    held = threading.Event()

    def hold() -> None:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("BEGIN EXCLUSIVE")
        held.set()
        release.wait(30)
        db.execute("COMMIT")
        db.close()

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    try:
        yield release
    finally:
        release.set()
        thread.join(10)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: d / "missing" / "x.db", "/missing/x.db: the folder {d}/missing does not exist"),
        (lambda d: d, "{d} is a folder, not a file"),
        (
            lambda d: (d / "f.db").write_text("hello, this is not a database, not at all") and d / "f.db",
            "{d}/f.db is not an SQLite database",
        ),
        (
            lambda d: (
                sqlite3.connect(d / "o.db").execute("CREATE TABLE signals (a, b)").connection.commit() or d / "o.db"
            ),
            "{d}/o.db is not a FLUO signal store: its `signals` table has no time_ns column",
        ),
        # QA errors: a symbolic link loop was "the folder {d} is not writable"
        (lambda d: (d / "loop.db").symlink_to("loop.db") or d / "loop.db", "{d}/loop.db is a symbolic link loop"),
        (
            lambda d: (d / "loop").symlink_to("loop") or d / "loop" / "x.db",
            "{d}/loop/x.db: {d}/loop is a symbolic link loop",
        ),
    ],
    ids=["missing folder", "a folder", "not a database", "another signals table", "a link loop", "in a link loop"],
)
def test_a_store_that_cannot_open_for_good_is_named_and_explained(tmp_path: Path, make: Any, says: str) -> None:
    path = make(tmp_path)
    sinks = SinkSet([SqliteSink(path)], Metrics(), capacity=10)
    problems = sinks.start()
    assert len(problems) == 1 and problems[0].startswith("cannot open sink sqlite: ")
    assert says.format(d=tmp_path) in problems[0]
    assert sinks.health() == {"sqlite": "failed"}
    sinks.close(1)


def test_a_store_in_a_read_only_folder_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root in CI, and root writes to a read-only folder anyway: the refusal SQLite gives
    # a user who may not write there is made to happen here instead.
    from fluo_run.serve import sinks as sinks_module

    def refused(path: Path, **_: Any) -> None:
        exc = sqlite3.OperationalError("unable to open database file")
        exc.sqlite_errorcode = sqlite3.SQLITE_CANTOPEN  # as SQLite's own refusal carries it
        raise exc

    monkeypatch.setattr(sinks_module, "SignalStore", refused)
    folder = tmp_path / "ro"
    folder.mkdir()
    sinks = SinkSet([SqliteSink(folder / "x.db")], Metrics(), capacity=10)
    problems = sinks.start()
    sinks.close(1)
    assert problems == [
        f"cannot open sink sqlite: {folder / 'x.db'}: the folder {folder} is not writable "
        "(unable to open database file)"
    ]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc, a folder that takes no new file")
def test_a_jsonl_file_in_a_folder_that_takes_no_new_file_is_explained_as_the_store_is() -> None:
    """QA receiver: `--jsonl /proc/x.jsonl` said a bare 'No such file or directory' (the folder exists: it refuses
    the new file with ENOENT) where `--db /proc/x.db` says 'the folder /proc is not writable'."""
    sinks = SinkSet([JsonlSink("/proc/x.jsonl")], Metrics(), capacity=10)
    problems = sinks.start()
    sinks.close(1)
    assert problems == [
        "cannot open sink jsonl: /proc/x.jsonl: the folder /proc is not writable (No such file or directory)"
    ]


def test_a_store_locked_at_start_is_retried_until_it_opens(tmp_path: Path, quick_retries: None) -> None:
    path = tmp_path / "s.db"
    with contextlib.closing(sqlite3.connect(path)) as db:  # a new database, not yet in WAL mode (as in QA's repro)
        db.execute("CREATE TABLE t (x)")
        db.execute("DROP TABLE t")  # a table of its own would make it another program's database
    with locked(path) as release:
        sinks = SinkSet([SqliteSink(path)], Metrics(), capacity=100)
        assert sinks.start() == []  # not a reason to refuse to start
        assert sinks.health() == {"sqlite": "retrying"}
        sinks.publish(stored(5))
        assert sinks.backlog() == 0.05
        release.set()
        wait_for(lambda: sinks.health() == {"sqlite": "ok"}, what="the store to open")
    wait_for(lambda: rows(path) == list(range(5)), what="the queued signals to be stored")
    assert sinks.close(5) == 0


def _started_with_two(path: Path, metrics: Metrics | None = None) -> SinkSet:
    """An SQLite sink at `path`, started, once its first two signals (0 and 1) are in the store."""
    sinks = SinkSet([SqliteSink(path)], metrics or Metrics(), capacity=100)
    assert sinks.start() == []
    sinks.publish(stored(2))
    wait_for(lambda: rows(path) == [0, 1], what="the first signals")
    return sinks


def test_a_store_locked_while_running_keeps_the_batch_and_retries(
    tmp_path: Path, quick_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "fluo")
    path = tmp_path / "s.db"
    metrics = Metrics()
    sinks = _started_with_two(path, metrics)
    with locked(path) as release:
        sinks.publish(stored(3, 2))
        wait_for(lambda: sinks.health() == {"sqlite": "retrying"}, what="the sink to notice the lock")
        wait_for(lambda: "; retrying in " in caplog.text, what="the worker to retry the batch after SQLite's wait")
        release.set()
    wait_for(lambda: rows(path) == list(range(5)), what="the batch to be written after the lock")
    wait_for(lambda: sinks.health() == {"sqlite": "ok"}, what="health to recover")
    assert sinks.close(5) == 0
    assert dropped(metrics, "sqlite", "failed") == 0
    assert "cannot write" in caplog.text and "is locked" in caplog.text
    # QA: the retry line said "cannot write: cannot write to s.db", and the recovery was a warning
    assert f"sink sqlite: cannot write to {path}: database is locked; retrying in " in caplog.text
    assert [r.levelname for r in caplog.records if r.getMessage() == "sink sqlite: delivering again"] == ["INFO"]


def test_a_store_locked_while_running_says_retrying_while_sqlite_waits_for_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA serve r2: a write meeting another connection's lock waited in SQLite's busy wait (2 s) before the worker
    heard of it, and /healthz said `ok` all that time, while the queue filled behind the lock and admission
    already refused exports. Now the write is tried without waiting first: `retrying` from when the lock is met,
    through the wait (here long enough that only that can say it), and `ok` once the batch is in."""
    monkeypatch.setattr(SqliteSink, "BUSY_TIMEOUT", 60.0)
    path = tmp_path / "s.db"
    sinks = _started_with_two(path)
    with locked(path) as release:
        sinks.publish(stored(3, 2))
        wait_for(lambda: sinks.health() == {"sqlite": "retrying"}, what="the sink to say it met the lock")
        release.set()
    wait_for(lambda: rows(path) == list(range(5)), what="the batch written in the same wait, once the lock went")
    wait_for(lambda: sinks.health() == {"sqlite": "ok"}, what="health to recover")
    assert sinks.close(5) == 0


def test_a_store_still_locked_at_the_shutdown_deadline_counts_what_it_kept(tmp_path: Path, quick_retries: None) -> None:
    path = tmp_path / "s.db"
    metrics = Metrics()
    sinks = SinkSet([SqliteSink(path)], metrics, capacity=100)
    assert sinks.start() == []
    with locked(path):
        sinks.publish(stored(4))
        wait_for(lambda: sinks.health() == {"sqlite": "retrying"}, what="the sink to notice the lock")
        assert sinks.close(0.3) == 4
    assert dropped(metrics, "sqlite", "shutdown") == 4


def test_a_store_deleted_while_running_is_noticed_and_made_anew(
    tmp_path: Path, quick_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.db"
    sinks = _started_with_two(path)
    for p in tmp_path.glob("s.db*"):
        p.unlink()
    with caplog.at_level(logging.WARNING, logger="fluo.serve"):
        sinks.publish(stored(3, 2))
        wait_for(lambda: rows(path) == [2, 3, 4], what="a new store with the later signals")
    assert f"signal store {path} was deleted while serve runs" in caplog.text
    assert sinks.close(5) == 0


def test_a_store_moved_aside_keeps_what_was_written_to_it(
    tmp_path: Path, quick_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    """QA: after `mv s.db s.db.1` while serve ran, the signals still in s.db-wal (all since the last checkpoint)
    were in neither file: the -wal keeps the path's name and was never checkpointed into the moved file."""
    path, moved = tmp_path / "s.db", tmp_path / "s.db.1"
    sinks = _started_with_two(path)
    path.rename(moved)
    with caplog.at_level(logging.WARNING, logger="fluo.serve"):
        sinks.publish(stored(3, 2))
        wait_for(lambda: rows(path) == [2, 3, 4], what="a new store with the later signals")
    assert f"signal store {path} was moved or replaced while serve runs" in caplog.text
    assert rows(moved) == [0, 1]
    assert sinks.close(5) == 0
    assert rows(moved) == [0, 1] and rows(path) == [2, 3, 4]


def test_a_store_moved_aside_is_whole_within_a_second_with_no_signal_since(tmp_path: Path) -> None:
    """The moved file lacked what its -wal held until a next batch came, however long that took."""
    path, moved = tmp_path / "s.db", tmp_path / "s.db.1"
    sinks = _started_with_two(path)
    path.rename(moved)
    wait_for(lambda: rows(moved) == [0, 1], timeout=3, what="the moved file to hold them")
    assert not path.exists()  # the new store is made with the next batch
    assert sinks.close(5) == 0


def test_a_store_moved_aside_while_a_reader_holds_it_is_said_moved_once_and_only_when_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Review: with a reader in a read transaction on the store, `mv s.db s.db.1` logged "was moved or replaced"
    before the checkpoint, which the reader held up; the checkpoint failing (at debug level on the idle path),
    the warning came again every half second, while the moved file lacked the last signals. Now a throttled
    warning says a reader holds it up, and the move is logged once, when the moved file holds every signal."""
    path, moved = tmp_path / "s.db", tmp_path / "s.db.1"
    rows_when_said: list[list[int]] = []

    class WhenSaid(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "was moved or replaced" in record.getMessage():
                rows_when_said.append(rows(moved))

    said = WhenSaid()
    logging.getLogger("fluo.serve").addHandler(said)
    try:
        sinks = _started_with_two(path)
        with caplog.at_level(logging.WARNING, logger="fluo.serve"), contextlib.closing(sqlite3.connect(path)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM signals").fetchone()
            sinks.publish(stored(1, 2))  # a frame past the reader's snapshot: the checkpoint waits for it
            wait_for(lambda: rows(path) == [0, 1, 2], what="the third signal")
            path.rename(moved)
            wait_for(lambda: "a reader of it" in caplog.text, timeout=10, what="the warning about the reader")
            time.sleep(3)  # idle ticks, each one held up by the reader
            assert rows_when_said == []
            reader.rollback()
        wait_for(lambda: rows_when_said != [], timeout=10, what="the warning about the move")
        assert sinks.close(5) == 0
    finally:
        logging.getLogger("fluo.serve").removeHandler(said)
    assert rows_when_said == [[0, 1, 2]]
    held_up = [r for r in caplog.records if "a reader of it" in r.getMessage()]
    assert len(held_up) == 1 and held_up[0].levelno == logging.WARNING


def test_a_store_moved_aside_just_before_the_stop_is_whole_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite skips its checkpoint at close for a file no longer at its path: the signals in the -wal stayed
    in s.db-wal, and the next start's new store at the path took the moved one's pages as its own."""
    monkeypatch.setattr(SqliteSink, "idle", lambda self: None)  # the stop, not an idle moment, lets go of it
    path, moved = tmp_path / "s.db", tmp_path / "s.db.1"
    sinks = _started_with_two(path)
    path.rename(moved)
    assert sinks.close(5) == 0
    assert rows(moved) == [0, 1]
    again = SinkSet([SqliteSink(path)], Metrics(), capacity=100)
    assert again.start() == []
    again.publish(stored(1, 2))
    wait_for(lambda: rows(path) != [], what="the new store")
    assert again.close(5) == 0
    assert rows(path) == [2]


def test_a_store_replaced_by_another_file_is_said_so_and_its_signals_are_counted_as_queued(
    tmp_path: Path, quick_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    """QA: a store replaced by a file that is not one (`mv notes.txt s.db`) while serve ran was said "deleted",
    and `fluo_sink_queue` said 0 while the batch kept for it held 4 signals."""
    path = tmp_path / "s.db"
    metrics = Metrics()
    sinks = _started_with_two(path, metrics)
    junk = tmp_path / "notes.txt"
    junk.write_text("not a database\n" * 10)
    os.replace(junk, path)
    with caplog.at_level(logging.WARNING, logger="fluo.serve"):
        sinks.publish(stored(4, 2))
        queued = lambda: metrics.registry.get_sample_value("fluo_sink_queue", {"sink": "sqlite"})  # noqa: E731
        wait_for(lambda: "cannot write" in caplog.text, what="the retry's warning")
        assert queued() == 4  # the batch in hand, kept and retried
    assert "is no longer an SQLite database" in caplog.text
    assert f"signal store {path} was replaced while serve runs" in caplog.text
    assert "was deleted" not in caplog.text
    assert "another file was put at its path while serve ran" in caplog.text
    assert sinks.health() == {"sqlite": "retrying"}  # kept, not lost: the signals go to a new store
    path.unlink()
    wait_for(lambda: rows(path) == [2, 3, 4, 5], what="a new store once the file is moved away")
    wait_for(lambda: queued() == 0, what="the queue emptied")
    assert sinks.close(5) == 0


def test_a_store_deleted_without_its_wal_is_not_remade_from_it(tmp_path: Path, quick_retries: None) -> None:
    """`rm s.db` leaves s.db-wal with the deleted store's pages: a store made anew at the path took them as its own."""
    path = tmp_path / "s.db"
    sinks = _started_with_two(path)
    path.unlink()
    sinks.publish(stored(3, 2))
    wait_for(lambda: rows(path) != [], what="a new store")
    assert sinks.close(5) == 0
    assert rows(path) == [2, 3, 4]


def test_a_batch_written_as_its_store_is_deleted_is_written_to_the_new_store(
    tmp_path: Path, quick_retries: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store deleted after the sink looked at the path and before the batch was committed: the batch went to
    a file nobody can read; it is written again to a store made anew, not counted delivered where it is lost."""
    path = tmp_path / "s.db"
    add = SignalStore.add
    deleted: list[Path] = []

    def add_then_delete(store: SignalStore, signals: Any) -> int:
        n = add(store, signals)
        if not deleted:
            path.unlink()
            deleted.append(path)
        return n

    monkeypatch.setattr(SignalStore, "add", add_then_delete)
    metrics = Metrics()
    sinks = SinkSet([SqliteSink(path)], metrics, capacity=100)
    assert sinks.start() == []
    sinks.publish(stored(2))
    wait_for(lambda: rows(path) == [0, 1], what="the batch in a new store")
    assert sinks.close(5) == 0
    assert rows(path) == [0, 1]
    assert metrics.registry.get_sample_value("fluo_sink_signals_written_total", {"sink": "sqlite"}) == 2


def test_a_write_looks_at_the_store_file_with_one_fstat_before_and_one_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: each batch fstat'ed the open store file four times (twice in each of two `_gone` calls) and stat'ed
    the path twice; before the commit it needs one fstat and one stat, after it one fstat (is it deleted). The lock
    file is looked at as well, with one fstat and one stat (QA r03: is it still there)."""
    sink = SqliteSink(tmp_path / "s.db")
    sink.open()
    fstat, stat_ = os.fstat, os.stat
    calls: list[str] = []

    def counted_fstat(fd: int) -> os.stat_result:
        calls.append("fstat")
        return fstat(fd)

    def counted_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if Path(path) in (sink.path, Path(f"{sink.path}.lock")):
            calls.append("stat" if Path(path) == sink.path else "stat lock")
        return stat_(path, *args, **kwargs)

    monkeypatch.setattr(os, "fstat", counted_fstat)
    monkeypatch.setattr(os, "stat", counted_stat)
    try:
        sink.write(stored(2), threading.Event())
    finally:
        monkeypatch.undo()
        sink.close()
    assert calls == ["fstat", "stat", "fstat", "stat lock", "fstat"]
    assert rows(sink.path) == [0, 1]


@pytest.mark.parametrize("failing", [1, 2], ids=["before the commit", "after the commit"])
def test_a_stale_store_handle_is_retried_not_a_bug_that_drops_the_batch(
    tmp_path: Path, quick_retries: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, failing: int
) -> None:
    """Review: an OSError from fstat of the open store (ESTALE on NFS) escaped `write` as a sink bug, and the
    worker dropped the batch (`failed`, "OSError: ..."). It is a transient problem: the batch is kept, retried."""
    path = tmp_path / "s.db"
    sink = SqliteSink(path)
    fstat = os.fstat
    seen = [0]

    def stale_once(fd: int) -> os.stat_result:
        if fd == sink._held:
            seen[0] += 1
            if seen[0] == failing:
                raise OSError(errno.ESTALE, "Stale file handle")
        return fstat(fd)

    metrics = Metrics()
    sinks = SinkSet([sink], metrics, capacity=100)
    assert sinks.start() == []
    monkeypatch.setattr(os, "fstat", stale_once)
    with caplog.at_level(logging.WARNING, logger="fluo.serve"):
        sinks.publish(stored(2))
        wait_for(lambda: seen[0] > failing and rows(path) != [], what="the batch, retried")
        assert sinks.close(5) == 0
    assert dropped(metrics, "sqlite", "failed") == 0
    assert f"cannot tell whether {path} is still the store written to (fstat: Stale file handle)" in caplog.text
    assert rows(path) == ([0, 1] if failing == 1 else [0, 0, 1, 1])  # after the commit: at least once


def _start_problems(path: Path) -> str:
    """What an SQLite sink at `path` says when started (as JSON: `as_reader` runs it in a child as `nobody`)."""
    sinks = SinkSet([SqliteSink(path)], Metrics(), capacity=10)
    problems = sinks.start()
    sinks.close(1)
    return json.dumps(problems)


def test_a_read_only_store_file_is_refused_at_start() -> None:
    """QA: a store file left by a stopped run and made read only (chmod 444) was opened (SQLite opens such a
    file read only) and every signal then dropped: "attempt to write a readonly database". As root, serve is
    `nobody` (root may write any file)."""
    folder = Path(tempfile.mkdtemp(prefix="fluo-ro-"))
    try:
        folder.chmod(0o777)  # the folder writable for anyone (room for -wal and -shm): only the file is not
        path = folder / "s.db"
        SignalStore(path).close()
        path.chmod(0o444)

        assert json.loads(as_reader(functools.partial(_start_problems, path))) == [
            f"cannot open sink sqlite: {path}: the file {path} is not writable (Permission denied)"
        ]
    finally:
        shutil.rmtree(folder)


def test_a_second_sink_on_a_store_in_use_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    """QA: two `fluo serve` on one --db both wrote to it; the one that stopped last overwrote the other's
    remembered trace ids (s.db.trace-ids). The store's lock file names the process that holds it."""
    path = tmp_path / "s.db"
    first = SinkSet([SqliteSink(path)], Metrics(), capacity=10)
    assert first.start() == []
    second = SinkSet([SqliteSink(path)], Metrics(), capacity=10)
    problems = second.start()
    second.close(1)
    assert problems == [
        f"cannot open sink sqlite: {path} is in use by another fluo serve (process {os.getpid()} holds "
        f"{path}.lock locked); give each instance its own --db"
    ]
    assert first.close(5) == 0
    third = SinkSet([SqliteSink(path)], Metrics(), capacity=10)
    assert third.start() == []
    assert third.close(5) == 0


def test_a_second_sink_on_a_store_in_use_under_another_name_is_refused(tmp_path: Path) -> None:
    """QA r01: the lock file was made beside the path given, so a second serve on a symlink to the store
    (in its folder or another) or a hard link to it took a lock of its own and wrote the store too. The lock
    file is beside the real file; a hard link is refused by the store file's own lock."""
    path = tmp_path / "s.db"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = SqliteSink(path)
    first.open()
    try:
        (tmp_path / "link.db").symlink_to("s.db")
        (elsewhere / "link.db").symlink_to(path)
        os.link(path, tmp_path / "hard.db")
        for link in (tmp_path / "link.db", elsewhere / "link.db"):
            with pytest.raises(SinkError) as refused:
                SqliteSink(link).open()
            assert str(refused.value) == (
                f"{link} is in use by another fluo serve (process {os.getpid()} holds {path}.lock locked); give "
                "each instance its own --db"
            )
        with pytest.raises(SinkError) as refused:
            SqliteSink(tmp_path / "hard.db").open()
        assert str(refused.value) == (
            f"{tmp_path / 'hard.db'} is in use by another fluo serve, which holds the file locked under another "
            "name (a hard link, or another mount of its folder); give each instance its own --db"
        )
    finally:
        first.close()
    second = SqliteSink(tmp_path / "hard.db")
    second.open()
    second.close()


@pytest.mark.parametrize("removed", ["files", "folder"])
def test_the_lock_is_taken_again_when_the_store_files_are_removed(tmp_path: Path, removed: str) -> None:
    """QA r03: after `rm s.db*` (or the folder removed and made again) serve made a new store at the path
    but no new lock file, so a second serve on it started and wrote it too."""
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "s.db"
    first = SqliteSink(path)
    first.open()
    try:
        first.write(stored(1), threading.Event())
        if removed == "files":
            for name in os.listdir(folder):
                os.unlink(folder / name)
        else:
            shutil.rmtree(folder)
            folder.mkdir()
        first.idle()
        assert (folder / "s.db.lock").exists()
        with pytest.raises(SinkError, match="is in use by another fluo serve"):
            SqliteSink(path).open()
        first.write(stored(1, 1), threading.Event())
        with pytest.raises(SinkError, match="is in use by another fluo serve"):
            SqliteSink(path).open()
    finally:
        first.close()
    assert rows(path) == [1]


def test_a_store_whose_lock_another_serve_took_meanwhile_waits_for_it(tmp_path: Path) -> None:
    """After `rm s.db*` a second serve that took the new lock first keeps the store: the first one's batch
    waits (retried) rather than write the store the other writes."""
    path = tmp_path / "s.db"
    first = SqliteSink(path)
    first.open()
    try:
        for name in os.listdir(tmp_path):
            os.unlink(tmp_path / name)
        second = SqliteSink(path)
        second.open()
        with pytest.raises(TransientSinkError, match="is in use by another fluo serve"):
            first.write(stored(1), threading.Event())
        second.close()
        first.write(stored(1), threading.Event())
    finally:
        first.close()


def test_a_second_sink_on_a_store_in_use_is_refused_before_it_reads_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: the second serve opened the store (its quick_check and schema, on a live store) and only then
    found the lock held. The lock is taken first: the store is not opened at all."""
    path = tmp_path / "s.db"
    first = SqliteSink(path)
    first.open()
    opened: list[Path] = []

    class Recorded(SignalStore):
        def __init__(self, path: Path | str, **kwargs: Any) -> None:
            opened.append(Path(path))
            super().__init__(path, **kwargs)

    monkeypatch.setattr(sinks_module, "SignalStore", Recorded)
    try:
        with pytest.raises(SinkError, match="is in use by another fluo serve"):
            SqliteSink(path).open()
    finally:
        first.close()
    assert opened == []


def test_a_lock_file_that_cannot_be_written_leaves_no_descriptor_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: os.pwrite of the process id failing (a full disk, a quota) let a raw OSError out of StoreLock.take
    with the locked descriptor still open; the retry was refused as "in use by another fluo serve" naming this
    very process. The descriptor is closed and the error says what failed."""
    path = tmp_path / "s.db"
    sink = SqliteSink(path)

    def full(*args: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(os, "pwrite", full)
        with pytest.raises(SinkError) as failed:
            sink.open()
    assert str(failed.value) == (
        f"{path}: cannot write this process's id into its lock file {path}.lock (No space left on device)"
    )
    assert not path.exists()  # refused before the store was made
    sink.open()
    assert sink.store is not None
    sink.close()


def test_the_files_serve_makes_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    """Security r03: the store (and SQLite's -wal and -shm beside it), its lock file and the JSON lines were made
    0644 under the usual umask 022, though they hold span data (SECURITY.md). They are made 0600; a file already
    there keeps its mode."""
    path, jsonl = tmp_path / "s.db", tmp_path / "s.jsonl"
    kept = tmp_path / "kept.jsonl"
    kept.write_text("")
    kept.chmod(0o640)
    before = os.umask(0o022)
    try:
        sinks = SinkSet([SqliteSink(path), JsonlSink(str(jsonl)), JsonlSink(str(kept))], Metrics(), capacity=10)
        assert sinks.start() == []
        sinks.publish(stored(1))
        wait_for(lambda: jsonl.stat().st_size > 0 and kept.stat().st_size > 0, what="the signal written")
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
        assert sinks.close(5) == 0
    finally:
        os.umask(before)
    assert modes == {
        "s.db": 0o600,
        "s.db-wal": 0o600,
        "s.db-shm": 0o600,
        "s.db.lock": 0o600,
        "s.jsonl": 0o600,
        "kept.jsonl": 0o640,
    }


def test_a_store_named_by_a_symlink_to_no_file_yet_is_made_readable_by_its_owner_only(tmp_path: Path) -> None:
    """Last session's note: `--db` naming a symbolic link whose target did not exist yet (a volume's link made
    before its first start) had SQLite make the target 0644 under umask 022, where a store made at its own
    path is 0600: the O_EXCL create refused the link. The target is made 0600, and the store works."""
    target, link = tmp_path / "data" / "signals.db", tmp_path / "s.db"
    target.parent.mkdir()
    link.symlink_to(target)
    before = os.umask(0o022)
    try:
        sinks = SinkSet([SqliteSink(link)], Metrics(), capacity=10)
        assert sinks.start() == []
        sinks.publish(stored(1))
        wait_for(lambda: Path(f"{target}-wal").exists(), what="the signal written")
        modes = {p.name: p.stat().st_mode & 0o777 for p in target.parent.iterdir()}
        assert sinks.close(5) == 0
    finally:
        os.umask(before)
    assert modes == {"signals.db": 0o600, "signals.db-wal": 0o600, "signals.db-shm": 0o600, "signals.db.lock": 0o600}
    with contextlib.closing(SignalStore(link, create=False)) as store:
        assert link.is_symlink() and len(store.query(SignalFilter())) == 1


@pytest.mark.parametrize("planted", ["symlink", "hard link"])
def test_a_lock_file_planted_as_a_link_is_refused_and_its_target_left_alone(tmp_path: Path, planted: str) -> None:
    """Security r06: the lock file was opened following a symlink, then truncated and written with the process
    id: a link planted at `s.db.lock` by anyone who may write the folder had serve (often root) overwrite the
    file it names. A symlink or a file with other names there is refused, and nothing is written through it."""
    path = tmp_path / "s.db"
    victim = tmp_path / "victim"
    victim.write_text("important contents\n")
    if planted == "symlink":
        (tmp_path / "s.db.lock").symlink_to(victim)
    else:
        os.link(victim, tmp_path / "s.db.lock")
    what = "a symbolic link" if planted == "symlink" else "a file with other names (hard links)"
    with pytest.raises(SinkError) as refused:
        SqliteSink(path).open()
    assert str(refused.value) == (
        f"{path}: its lock file {path}.lock is {what}; fluo serve writes its process id only into a file of its "
        "own there: remove it (serve makes it anew)"
    )
    assert victim.read_text() == "important contents\n"
    assert not path.exists()


def test_a_store_can_be_pruned_while_it_is_written(tmp_path: Path, quick_retries: None) -> None:
    """What docs/runtime.md gives for retention: `DELETE FROM signals WHERE ...` then `VACUUM`, from another
    connection while the sink writes, keeps what was not deleted and what comes after."""
    path = tmp_path / "s.db"
    metrics = Metrics()
    sinks = SinkSet([SqliteSink(path)], metrics, capacity=1000)
    assert sinks.start() == []
    sinks.publish(stored(300))
    wait_for(lambda: len(rows(path)) == 300, what="the first signals")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("DELETE FROM signals WHERE json_extract(json, '$.n') < 200")
        sinks.publish(stored(50, 300))
        db.execute("VACUUM")
    sinks.publish(stored(50, 350))
    wait_for(lambda: len(rows(path)) == 200, what="the later signals")
    assert sinks.close(5) == 0
    assert rows(path) == list(range(200, 400))
    assert dropped(metrics, "sqlite", "failed") == 0


def through_a_failing_webhook(path: str, caplog: pytest.LogCaptureFixture) -> tuple[str, list[str]]:
    """One signal through a webhook sink to a loopback endpoint at `path` that answers 503 twice, then 400, with
    the serve log captured (its retry warnings and the error that drops the signal checked here): the sink's
    label, its port written `PORT`, and the paths the endpoint was sent."""
    with LoopbackServer(status_of=lambda n: 503 if n < 2 else 400) as hook:
        sink = WebhookSink(f"http://127.0.0.1:{hook.port}{path}")
        sinks = SinkSet([sink], Metrics(), capacity=10)
        with caplog.at_level(logging.INFO, logger="fluo.serve"):
            assert sinks.start() == []
            sinks.publish(stored(1))
            wait_for(lambda: sinks.health() == {"webhook": "failed"}, what="the 400 answer")
            assert sinks.close(5) == 1
        paths = [r.path for r in hook.requests]
        label = sink.label.replace(f":{hook.port}/", ":PORT/")
    assert "HTTP 503; retrying" in caplog.text and "refused the signals: HTTP 400" in caplog.text
    return label, paths


def test_the_secrets_of_a_webhook_or_otlp_logs_url_are_not_logged(
    quick_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    """QA: `--webhook http://user:s3cret@host/h?token=abc123` was logged as given: in the start line ("signals
    to: webhook (...)"), the retry warnings and the errors. The password and every query value show as ***."""
    label, paths = through_a_failing_webhook("/hook?token=abc123&room=s3cret", caplog)
    assert label == "webhook (http://127.0.0.1:PORT/hook?token=***&room=***)"
    assert paths == ["/hook"] * 3  # the URL sent is the one given
    assert "abc123" not in caplog.text and "s3cret" not in caplog.text
    logs = OtlpLogsSink("http://u:p4ss@127.0.0.1:9/x?key=k3y")
    assert logs.label == "otlp logs (http http://***@127.0.0.1:9/x?key=***)"
    hidden = WebhookSink("https://user:s3cret@example.com/h?a=1&b&c=2#f").label
    assert hidden == "webhook (https://***@example.com/h?a=***&b&c=***#***)"


def test_a_key_in_the_path_of_a_webhook_url_is_not_logged(
    quick_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Security r02: chat webhooks carry their key in the path (Slack `/services/T/B/KEY`, Discord
    `/api/webhooks/ID/TOKEN`) or the fragment, and those were logged whole: the start line, every retry
    warning, the error that drops the signals. The path past its first segment and the fragment show as ***."""
    label, paths = through_a_failing_webhook("/services/T0000/B0000/SLACKKEY#FRAGKEY", caplog)
    assert label == "webhook (http://127.0.0.1:PORT/services/***#***)"
    assert paths == ["/services/T0000/B0000/SLACKKEY"] * 3
    assert "SLACKKEY" not in caplog.text and "FRAGKEY" not in caplog.text
    discord = "failed: https://discord.com/api/webhooks/1234/T0KEN?wait=true: refused"
    assert redacted(discord) == "failed: https://discord.com/api/***?wait=***: refused"
    assert redacted("'http://h:9/hook' and http://h/a/ stay") == "'http://h:9/hook' and http://h/a/ stay"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("'https://h/x?t=K3Y'", "'https://h/x?t=***'"),  # a quoted URL (repr in errors) keeps its closing quote
        ("see (https://h/x?t=K3Y).", "see (https://h/x?t=***)."),
        ("https://h/x?t=K3Y, https://h/y?u=K3Y; done", "https://h/x?t=***, https://h/y?u=***; done"),
        ("https://h/x?t=K3Y:K3Y.K3Y)K3Y'K3Y end", "https://h/x?t=*** end"),  # inside a value: hidden with it
        ("https://h/x?t=K3Y!! sent", "https://h/x?t=*** sent"),  # review: the end of a secret, not a sentence's
        ("https://h/x?k=:) sent", "https://h/x?k=*** sent"),  # a value of punctuation alone: hidden whole
        ("https://h/x?t=K3Y) sent", "https://h/x?t=*** sent"),  # no `(` before it: the secret's own
        ("'https://h/x?t=K3Y'.", "'https://h/x?t=***'."),
        ("it's at https://h/x?t=K3Y' sent", "it's at https://h/x?t=*** sent"),  # review 2: no quote opened the URL
    ],
)
def test_punctuation_ending_a_query_value_shows(text: str, shown: str) -> None:
    """Last session's note: a query value took the character after it along (`?t=***` for `'…?t=KEY'` lost its
    closing quote, `?wait=true: refused` lost the colon). What ends the sentence, and the bracket or quote just
    before the URL, closed, show; any other punctuation is hidden with the value (review: `?t=s3cr3t!!` showed
    `!!`; review 2: the apostrophe of `it's` made a trailing `'` show)."""
    assert redacted(text) == shown
    assert "K3Y" not in redacted(text)


def test_a_bad_url_error_keeps_its_quotes() -> None:
    with pytest.raises(ConfigError) as e:
        check_url("ftp://h/x?token=K3Y", "--webhook", "https://hooks.example.com/x")
    assert str(e.value).startswith("--webhook: 'ftp://h/x?token=***' is not an http(s) URL with a host")


@pytest.mark.parametrize(
    ("url", "login"),
    [
        ("https://user:p@s3cret@hooks.example.com/x", "user:p@s3cret"),  # an unencoded `@` in the password
        ("https://s3cretkey@hooks.example.com/x", "s3cretkey:"),  # a key as the user name alone (a Sentry DSN)
    ],
)
def test_the_whole_user_info_of_a_url_is_hidden(url: str, login: str) -> None:
    """Review: `redacted` hid the password up to its first `@` only (`user:***@s3cret@host`), and a user name
    alone not at all; both are sent as Basic auth, both are secrets. Everything up to the last `@` of the
    authority shows as `***`."""
    sink = WebhookSink(url)
    assert sink.label == "webhook (https://***@hooks.example.com/x)"
    assert redacted(f"failed: {url}: refused") == "failed: https://***@hooks.example.com/x: refused"
    assert sink.headers["Authorization"] == "Basic " + base64.b64encode(login.encode()).decode()


def test_a_webhook_refusing_the_signals_is_logged_with_the_start_of_its_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """QA serve r2: a webhook's 4xx was logged as `HTTP 422` alone, though its answer usually says what it did not
    like. Now the answer's start is in the line: 200 characters at most, whitespace made one space, control
    characters escaped."""
    answer = b'{"error": "field \x1b[31msignals\x1b[0m:\n  missing"}' + b" and more" * 1000
    with LoopbackServer(status_of=lambda n: 422, body_of=lambda n: answer) as hook:
        sinks = SinkSet([WebhookSink(f"{hook.url}/hook")], Metrics(), capacity=10)
        with caplog.at_level(logging.ERROR, logger="fluo.serve"):
            assert sinks.start() == []
            sinks.publish(stored(1))
            wait_for(lambda: sinks.health() == {"webhook": "failed"}, what="the 422 answer")
            assert sinks.close(5) == 1
    line = next(r.getMessage() for r in caplog.records if "refused the signals" in r.getMessage())
    said = line.partition("refused the signals: HTTP 422, answering: ")[2]
    assert said.startswith('{"error": "field \\x1b[31msignals\\x1b[0m: missing"} and more and more')
    assert said.endswith("...") and len(said) == 200 and "\x1b" not in line


def test_a_webhook_url_with_a_login_sends_it_as_basic_auth() -> None:
    """QA (while checking that `user:s3cret@` is not logged): a webhook URL with user info never delivered,
    urllib took `user:s3cret@127.0.0.1` for the host name ("Name or service not known"). It is sent as HTTP
    Basic auth, as curl does; an Authorization header given with --webhook-header wins."""
    with LoopbackServer() as hook:
        sinks = SinkSet([WebhookSink(f"http://us%40er:s3c:ret@127.0.0.1:{hook.port}/hook?x=1")], Metrics(), 10)
        assert sinks.start() == []
        sinks.publish(stored(1))
        assert sinks.close(5) == 0
        given = WebhookSink(f"http://user:pw@127.0.0.1:{hook.port}/h", {"authorization": "Bearer t"})
        assert (given.url, given.headers["authorization"]) == (f"http://127.0.0.1:{hook.port}/h", "Bearer t")
        assert "Authorization" not in given.headers
    (request,) = hook.requests
    assert request.path == "/hook"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"us@er:s3c:ret").decode()


def test_a_webhook_answering_503_is_retrying_then_ok(quick_retries: None) -> None:
    with LoopbackServer(status_of=lambda n: 503 if n < 3 else 200) as hook:
        metrics = Metrics()
        sinks = SinkSet([WebhookSink(f"http://127.0.0.1:{hook.port}/hook")], metrics, capacity=100)
        assert sinks.start() == []
        health: set[str] = set()
        sinks.publish(stored(3))
        wait_for(lambda: health.add(sinks.health()["webhook"]) or len(hook.requests) == 4, what="the retries")
        wait_for(lambda: sinks.health() == {"webhook": "ok"}, what="health to recover")
        assert "retrying" in health
        assert sinks.close(5) == 0


def test_a_webhook_backing_off_after_one_429_at_shutdown_gets_the_deadline_not_a_moment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """QA: it answered (429), so it is not down: close delivers all it has queued, as the docs say."""
    monkeypatch.setattr(WebhookSink, "FIRST_BACKOFF", 5.0)  # the stop begins during this wait

    # 10 requests of 100 signals, 0.1 s each: 1 s, past the half second a down endpoint gets
    with LoopbackServer(status_of=lambda n: 429 if n == 0 else 200, delay_of=lambda n: 0.1) as hook:
        sinks = SinkSet([WebhookSink(f"http://127.0.0.1:{hook.port}/hook")], Metrics(), capacity=1000)
        assert sinks.start() == []
        sinks.publish(stored(1000))
        wait_for(lambda: sinks.health()["webhook"] == "retrying", what="the backoff after the 429")
        assert sinks.close(10) == 0
        assert sum(len(json.loads(r.body)["signals"]) for r in hook.requests[1:]) == 1000


def test_a_batch_cut_short_at_shutdown_counts_only_what_did_not_go_out() -> None:
    """QA: 300 of 1000 signals reached the webhook before the deadline, yet close said 1000 were not delivered."""

    def stuck_after_three(n: int) -> float:
        return 2.0 if n >= 3 else 0.0  # the fourth request is still in flight at the deadline

    with LoopbackServer(delay_of=stuck_after_three) as hook:
        metrics = Metrics()
        sinks = SinkSet([WebhookSink(f"http://127.0.0.1:{hook.port}/hook")], metrics, capacity=1000)
        assert sinks.start() == []
        sinks.publish(stored(1000))
        wait_for(lambda: len(hook.requests) == 4, what="three requests answered, the fourth in flight")
        assert sinks.close(0.2) == 700
        assert dropped(metrics, "webhook", "shutdown") == 700
        assert metrics.registry.get_sample_value("fluo_sink_signals_written_total", {"sink": "webhook"}) == 300


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_webhook_that_redirects_is_a_failure_not_a_delivery(code: int) -> None:
    """QA: urllib followed a 302/303 as a GET without the signals and counted them delivered (health ok, exit 0)."""
    seen: list[str] = []

    class Redirecting(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append("POST")
            self.send_response(code)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            seen.append("GET")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirecting) as endpoint:
        threading.Thread(target=endpoint.serve_forever, daemon=True).start()
        try:
            metrics = Metrics()
            url = f"http://127.0.0.1:{endpoint.server_address[1]}/hook"
            sinks = SinkSet([WebhookSink(url)], metrics, capacity=10)
            assert sinks.start() == []
            sinks.publish(stored(3))
            wait_for(lambda: sinks.health()["webhook"] == "failed", what="the redirect to count as a failure")
            assert sinks.close(5) == 3
            assert dropped(metrics, "webhook", "failed") == 3
            assert seen == ["POST"]  # not followed, not retried
        finally:
            endpoint.shutdown()


def test_slow_sinks_at_shutdown_are_given_up_together_within_the_timeout() -> None:
    """QA: each stuck sink got its half-second grace after the one before, so three overran the timeout
    by 1.5 s (7.0 s for --shutdown-timeout 6s)."""

    class Slow(Sink):
        notifies = True

        def __init__(self, name: str) -> None:
            self.name = name
            self.release = threading.Event()

        def write(self, batch: Batch, stopping: threading.Event) -> None:
            self.release.wait(10)  # a request that takes far longer than the stop has (stopping not heeded)

    slow = [Slow(f"slow{i}") for i in range(3)]
    sinks = SinkSet(slow, Metrics(), capacity=10)
    sinks.start()
    sinks.publish(signals(2))
    wait_for(lambda: all(w._in_flight for w in sinks.workers), what="every sink busy with its batch")
    given = joins_given(sinks)
    try:
        assert sinks.close(2.0) == 6
    finally:
        for s in slow:
            s.release.set()
    # Each wait runs out (the writes are stuck), so the waits follow one another: what they were given adds up to
    # what the close took, however slow the machine. One shared grace ending at the timeout: 2 s in all, not
    # 2 s + 3 x 0.5 s (a grace for each sink after the one before).
    assert given and sum(given) <= 2.0 + JOIN_SLACK, given


JOIN_SLACK = 0.001
"""What a join on a stuck thread may return ahead of its timeout, the clock's rounding (no time for slowness)."""


def joins_given(sinks: SinkSet) -> list[float]:
    """The seconds given to each wait for a sink's thread (`Thread.join`) from now on, in order."""
    given: list[float] = []
    for w in sinks.workers:

        def join(timeout: float | None = None, real: Any = w.thread.join) -> None:
            given.append(math.inf if timeout is None else timeout)
            real(timeout)

        w.thread.join = join  # type: ignore[method-assign]
    return given


def test_an_otlp_logs_endpoint_that_redirects_is_a_failure_not_a_delivery() -> None:
    """The SDK counts a 3xx as success: the signals would be lost with health `ok` (QA: http -> https)."""
    with LoopbackServer(status_of=lambda n: 308) as collector:
        metrics = Metrics()
        sinks = SinkSet([OtlpLogsSink(f"http://127.0.0.1:{collector.port}")], metrics, capacity=10)
        assert sinks.start() == []
        sinks.publish(stored(1))
        wait_for(lambda: sinks.health()["otlp_logs"] == "failed", what="the redirect to count as a failure")
        assert len(collector.requests) == 1  # not retried: pointing elsewhere is the operator's to fix
        assert sinks.close(5) == 1


def test_a_store_with_no_room_makes_publish_wait_instead_of_dropping() -> None:
    metrics = Metrics()
    gate = Gate()
    sinks = SinkSet([gate], metrics, capacity=5)
    sinks.start()
    publisher = threading.Thread(target=lambda: sinks.publish(signals(40), wait=math.inf))
    publisher.start()
    wait_for(lambda: sinks.backlog() == 1.0, what="the store's queue to fill")
    assert publisher.is_alive()  # evaluation waits for the store, nothing dropped
    gate.release.set()
    publisher.join(10)
    assert not publisher.is_alive()
    assert sinks.close(10) == 0 and [s["n"] for s in gate.got] == list(range(40))
    assert dropped(metrics, "gate", "queue_full") == 0


def test_cut_short_ends_a_wait_for_a_store_that_never_makes_room() -> None:
    metrics, gate, sinks = gate_holding_one(5)  # never released
    publisher = threading.Thread(target=lambda: sinks.publish(signals(40), wait=math.inf))
    publisher.start()
    wait_for(lambda: sinks.backlog() == 1.0, what="the store's queue to fill")
    sinks.cut_short(time.monotonic())  # the runtime is stopping
    publisher.join(5)
    assert not publisher.is_alive()
    assert dropped(metrics, "gate", "queue_full") == 40 - 5  # five queued behind the one in the gate's hands
    gate.release.set()
    sinks.close(5)


def test_a_notification_sink_never_makes_anything_wait_or_refuse() -> None:
    metrics = Metrics()
    hook = Gate("hook")  # a webhook that does not answer
    hook.notifies = True
    stored: list[dict[str, Any]] = []
    sinks = SinkSet([hook, CallbackSink(stored.extend, name="store")], metrics, capacity=5)
    sinks.start()
    sinks.publish(signals(1))
    wait_for(lambda: sinks.workers[0].backlog() == 0.0 and len(stored) == 1, what="the first signal to be taken")
    publisher = threading.Thread(target=lambda: sinks.publish(signals(40), wait=math.inf))
    publisher.start()
    publisher.join(5)
    assert not publisher.is_alive()  # did not wait for the notification sink
    wait_for(lambda: len(stored) == 41, what="the store to take every signal")
    assert sinks.workers[0].backlog() == 1.0 and sinks.backlog() == 0.0  # its full queue refuses nothing
    assert dropped(metrics, "hook", "queue_full") == 40 - 5
    hook.release.set()
    sinks.close(5)


def test_undelivered_counts_the_batch_a_sink_is_working_on() -> None:
    gate = Gate()
    sinks = SinkSet([gate], Metrics(), capacity=10)
    sinks.start()
    sinks.publish(signals(3))
    wait_for(lambda: sinks.backlog() == 0.0, what="the batch to be taken")
    sinks.publish(signals(2, 3))
    assert sinks.workers[0].undelivered() == 5  # three in the sink's hands, two queued
    gate.release.set()
    assert sinks.close(5) == 0
    assert sinks.workers[0].undelivered() == 0


def test_a_notification_endpoint_down_at_shutdown_is_not_tried_again_for_each_batch() -> None:
    class DeadHook(Sink):
        name = "hook"
        notifies = True

        def __init__(self) -> None:
            self.attempts = 0
            self.hold = threading.Event()

        def write(self, batch: Batch, stopping: threading.Event) -> None:
            self.attempts += 1
            if self.attempts > 1:
                self.hold.wait(10)  # a blackholed endpoint: each try waits out its timeout
            raise SinkError("no answer")

    metrics = Metrics()
    hook = DeadHook()
    sinks = SinkSet([hook], metrics, capacity=10)
    sinks.start()
    sinks.publish(signals(1))
    wait_for(lambda: sinks.health() == {"hook": "failed"}, what="the first batch to fail")
    sinks.publish(signals(1, 1))
    wait_for(lambda: hook.attempts == 2, what="the second try to start")
    sinks.publish(signals(3, 2))
    closing = threading.Thread(target=sinks.close, args=(10,))
    closing.start()
    wait_for(lambda: sinks.workers[0].stopping.is_set(), what="the stop to begin")
    hook.hold.set()
    closing.join(10)
    assert hook.attempts == 2  # the three queued signals were not tried again
    assert dropped(metrics, "hook", "failed") == 2 and dropped(metrics, "hook", "shutdown") == 3


def test_queue_full_drops_are_said_soon_after_they_stop(monkeypatch: Any, caplog: Any) -> None:
    monkeypatch.setattr(SinkWorker, "LOG_EVERY", 1.0)
    _, gate, sinks = gate_holding_one(5)
    for i in range(10):  # the first drop is logged at once, the rest are summed
        sinks.publish(signals(6, 1 + 6 * i))
    gate.release.set()
    wait_for(
        lambda: "sink gate dropped 54 signal(s)" in caplog.text or "dropped 53 signal(s)" in caplog.text,
        what="the summed drops to be logged while running",
    )
    sinks.close(5)


def test_a_full_disk_keeps_the_jsonl_batch_and_retries_without_writing_lines_twice(
    tmp_path: Path, quick_retries: None
) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(str(path))

    class HalfThenFull:
        """The file, except that the first write gets half its text onto the disk, then ENOSPC."""

        def __init__(self, real: Any) -> None:
            self.real = real
            self.failed = False

        def write(self, text: str) -> int:
            if not self.failed:
                self.failed = True
                self.real.write(text[: len(text) // 2])
                self.real.flush()
                raise OSError(errno.ENOSPC, "No space left on device")
            return int(self.real.write(text))

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

    original_open = sink.open

    def open_half_full() -> None:
        original_open()
        sink.out = HalfThenFull(sink.out)  # type: ignore[assignment]

    sink.open = open_half_full  # type: ignore[method-assign]
    metrics = Metrics()
    sinks = SinkSet([sink], metrics, capacity=100)
    sinks.start()
    sinks.publish(signals(10))
    assert sinks.close(10) == 0
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == list(range(10))
    assert dropped(metrics, "jsonl", "failed") == 0


def test_a_write_that_makes_no_progress_shows_as_stalled(monkeypatch: Any) -> None:
    monkeypatch.setattr(SinkWorker, "STALLED_AFTER", 0.2)
    gate = Gate()
    sinks = SinkSet([gate], Metrics(), capacity=10)
    sinks.start()
    sinks.publish(signals(1))
    wait_for(lambda: sinks.health() == {"gate": "stalled"}, what="the write to count as stalled")
    gate.release.set()
    wait_for(lambda: sinks.health() == {"gate": "ok"}, what="the write to finish")
    sinks.close(5)


def test_a_notification_endpoint_down_at_close_does_not_hold_the_stop_for_its_request() -> None:
    class Blackhole(Sink):
        name = "hook"
        notifies = True

        def __init__(self) -> None:
            self.hold = threading.Event()
            self.tries = 0

        def write(self, batch: Batch, stopping: threading.Event) -> None:
            self.tries += 1
            if self.tries > 1:
                self.hold.wait(30)  # an endpoint that never answers, until its timeout
            raise SinkError("no answer")

    hook = Blackhole()
    stored: list[dict[str, Any]] = []
    sinks = SinkSet([hook, CallbackSink(stored.extend, name="store")], Metrics(), capacity=10)
    sinks.start()
    sinks.publish(signals(1))
    wait_for(lambda: sinks.health()["hook"] == "failed", what="the endpoint to be down")
    sinks.publish(signals(2, 1))
    wait_for(lambda: hook.tries == 2, what="a request in flight")
    closing = threading.Thread(target=sinks.close, args=(20,))
    closing.start()
    closing.join(10)
    assert not closing.is_alive()  # it did not wait out the request in flight
    assert len(stored) == 3
    hook.hold.set()


def test_a_first_request_in_flight_at_the_stop_answered_in_its_moment_gets_the_rest_of_the_deadline() -> None:
    """A notification endpoint never reached, its first request in flight when the stop begins, gets one try
    and no retries, like one that never answers; once it answers, the sink is up: the deadline is its."""

    class Slow(Sink):
        name = "hook"
        notifies = True
        max_batch = 1

        def __init__(self) -> None:
            self.first = threading.Event()
            self.sent = 0

        def write(self, batch: Batch, stopping: threading.Event) -> None:
            if not self.sent:
                self.first.wait(10)  # in flight when the stop begins
            else:
                time.sleep(0.2)  # each later one takes a while: all of them, more than half a second
            self.answered(True)
            self.sent += len(batch)

    hook = Slow()
    sinks = SinkSet([hook], Metrics(), capacity=10)
    sinks.start()
    sinks.publish(signals(6))
    wait_for(lambda: sinks.workers[0]._writing_since is not None, what="the first request in flight")
    closed: list[int] = []
    closing = threading.Thread(target=lambda: closed.append(sinks.close(20)))
    closing.start()
    wait_for(lambda: sinks.workers[0].stopping.is_set(), what="the stop to begin")
    hook.first.set()
    closing.join(15)
    assert closed == [0] and hook.sent == 6
    assert hook.keep_trying_until is not None  # answered at the stop: its retries came back


def _stop_with_three_signals(hook: WebhookSink, in_flight: bool) -> tuple[SinkSet, int]:
    """Three signals for `hook`, one a batch, then the stop (10 s deadline) as the first request is in flight
    (else while all three are queued): the sinks and the signals lost."""
    hook.max_batch = 1
    sinks = SinkSet([hook], Metrics(), capacity=10)
    sinks.start()
    sinks.publish(signals(3))
    if in_flight:
        wait_for(lambda: sinks.workers[0]._writing_since is not None, what="the first request in flight")
    return sinks, sinks.close(10)


@pytest.mark.parametrize("in_flight", [True, False], ids=["in-flight", "queued"])
def test_a_slow_endpoint_never_heard_from_delivers_everything_at_the_stop(in_flight: bool) -> None:
    """Review: an endpoint answering each request in 0.8 s, never reached before, its first request in flight
    at the stop, was given up after half a second and 2 of its 3 signals lost, the last word `ok`."""
    with LoopbackServer(delay_of=lambda n: 0.8) as server:
        hook = WebhookSink(f"http://127.0.0.1:{server.port}/hook")
        sinks, lost = _stop_with_three_signals(hook, in_flight)
    sent = {r.headers["Idempotency-Key"] for r in server.requests}  # a request (at least once: perhaps resent)
    assert (lost, len(sent), sinks.outcome()) == (0, 3, {"webhook": "ok"})
    assert not sinks.workers[0]._give_up.is_set()  # done on its own (three answers of 0.8 s), not at the deadline


@pytest.mark.parametrize("in_flight", [True, False], ids=["in-flight", "queued"])
def test_an_endpoint_that_never_answers_gets_one_request_timeout_at_the_stop(in_flight: bool) -> None:
    """Review: the batch of an endpoint that takes the connection and never answers, still queued when the
    stop began (a trace evaluated at shutdown), held the stop for the whole deadline. One try, no retries:
    its request timeout (here 1 s), then the rest is given up."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        hook = WebhookSink(f"http://127.0.0.1:{hole.getsockname()[1]}/hook", timeout=1.0)
        sinks, lost = _stop_with_three_signals(hook, in_flight)
        tries = connections_made(hole)
    assert (lost, sinks.outcome()) == (3, {"webhook": "given up"})
    # one try, no retries, and given up for its lack of an answer (its request timeout), not at the 10 s deadline
    assert tries == 1 and not sinks.workers[0]._give_up.is_set()


def connections_made(listening: socket.socket) -> int:
    """How many connections were made to `listening` that it has not accepted (each waits in its backlog, answered
    or not, closed by the client or not)."""
    listening.setblocking(False)
    made = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            listening.accept()[0].close()
            made += 1
    return made


def test_a_sink_given_up_that_ends_its_request_in_the_grace_is_still_named_given_up() -> None:
    """Review: `given up` was said only of a thread still alive after the grace; one that ended its request
    in the grace and left the rest of its queue undelivered was `ok`."""
    release = threading.Event()

    class Stuck(Sink):
        name = "hook"
        notifies = True
        max_batch = 1

        def write(self, batch: Batch, stopping: threading.Event) -> None:
            release.wait(10)
            self.answered(True)

    sinks = SinkSet([Stuck()], Metrics(), capacity=10)
    sinks.start()
    sinks.publish(signals(3))
    wait_for(lambda: sinks.workers[0]._writing_since is not None, what="the first request in flight")
    worker = sinks.workers[0]
    original = worker.give_up

    def give_up() -> bool:  # the request answers the moment the sink is given up
        given = original()
        release.set()
        return given

    worker.give_up = give_up  # type: ignore[method-assign]
    lost = sinks.close(1)
    assert lost == 2 and sinks.outcome() == {"hook": "given up"}


def test_after_the_cut_off_a_store_with_room_still_takes_signals_and_one_without_drops_them_for_shutdown() -> None:
    metrics, gate, sinks = gate_holding_one(5)
    sinks.cut_short(time.monotonic() - 1)  # the hand-over deadline has passed
    sinks.publish(signals(3, 1), wait=math.inf)
    assert sinks.workers[0].queue.qsize() == 3 and dropped(metrics, "gate", "queue_full") == 0
    sinks.publish(signals(4, 4), wait=math.inf)
    assert dropped(metrics, "gate", "shutdown") == 2 and dropped(metrics, "gate", "queue_full") == 0
    gate.release.set()
    sinks.close(5)


def lines(path: Path) -> list[int]:
    return [json.loads(x)["n"] for x in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("rotation", ["renamed", "deleted"])
def test_a_jsonl_file_rotated_away_is_noticed_and_a_new_one_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any, rotation: str
) -> None:
    """QA L6: after logrotate's default `create` rotation the sink kept writing to the renamed file."""
    caplog.set_level(logging.INFO, "fluo")
    path, rotated = tmp_path / "out.jsonl", tmp_path / "out.jsonl.1"
    metrics = Metrics()
    sinks = SinkSet([JsonlSink(str(path))], metrics, capacity=100)
    assert sinks.start() == []
    sinks.publish(signals(2))
    wait_for(
        lambda: metrics.registry.get_sample_value("fluo_sink_signals_written_total", {"sink": "jsonl"}) == 2,
        what="the first lines written",  # a file deleted while they are being written gets them again
    )
    assert lines(path) == [0, 1]
    if rotation == "renamed":
        path.rename(rotated)
    else:
        path.unlink()
    sinks.publish(signals(1, 2))
    wait_for(lambda: lines(path) == [2], what="a new file at the path")
    assert sinks.close(5) == 0
    assert lines(rotated) == ([0, 1] if rotation == "renamed" else [])
    assert f"jsonl file {path} was renamed or deleted" in caplog.text


def test_the_jsonl_file_holds_no_raw_terminal_control(tmp_path: Path) -> None:
    """Smalls: a span name's U+009B (C1 CSI) or U+202E (bidi override) reached `tail -f` of the file raw."""
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(str(path))
    sink.open()
    signal = {"n": 0, "message": "span \x9b2J\u202egnp.exe\x85 é"}
    sink.write([signal], threading.Event())
    sink.close()
    assert path.read_text("utf-8") == '{"n": 0, "message": "span \\u009b2J\\u202egnp.exe\\u0085 é"}\n'
    assert json.loads(path.read_text("utf-8")) == signal


def test_the_webhook_body_holds_no_raw_terminal_control() -> None:
    """Smalls: as the JSON lines, the body a receiving end may log (`dump_json`)."""
    signal = {"n": 0, "message": "span \x9b2J\u202egnp.exe é"}
    with LoopbackServer(status_of=lambda n: 200) as hook:
        WebhookSink(f"http://127.0.0.1:{hook.port}/hook").write([signal], threading.Event())
    (request,) = hook.requests
    assert request.body.decode() == '{"signals": [{"n": 0, "message": "span \\u009b2J\\u202egnp.exe é"}]}'


def test_a_jsonl_file_deleted_just_after_a_batch_gets_none_of_the_next(tmp_path: Path) -> None:
    """QA r02: the path was looked at no more than once a second, so a file deleted (or rotated and
    compressed) less than a second after the last look got the next batch, counted as written: lost."""
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(str(path))
    sink.open()
    sink.write(signals(1), threading.Event())
    path.unlink()
    sink.write(signals(1, 1), threading.Event())
    sink.close()
    assert lines(path) == [1]


def test_a_batch_written_as_the_jsonl_file_is_deleted_is_written_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """The file deleted between the look at the path and the write: the batch is written anew at the path."""
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(str(path))
    sink.open()

    def deleted_after_the_look(self: OpenFile, target: str | Path) -> bool:
        Path(target).unlink()
        return False

    monkeypatch.setattr(OpenFile, "replaced", deleted_after_the_look)
    sink.write(signals(2), threading.Event())
    monkeypatch.undo()
    sink.close()
    assert lines(path) == [0, 1]
    assert f"jsonl file {path} was deleted while serve wrote to it; writing the last batch anew" in caplog.text


def test_a_failed_write_to_stdout_says_stdout_and_makes_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA: it said "cannot write to -"; and stdout redirected to a file (seekable) was cut back as a file named
    `-`: stdout closed, and a file `-` made in the working folder for the signals that followed."""

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(errno.EPIPE, "Broken pipe")

    monkeypatch.chdir(tmp_path)
    out = Full()
    monkeypatch.setattr(sys, "stdout", out)
    sink = JsonlSink("-")
    sink.open()
    with pytest.raises(SinkError) as failed:
        sink.write(signals(1), threading.Event())
    assert str(failed.value) == "cannot write to stdout: Broken pipe"
    assert not out.closed and sink.out is out
    assert list(tmp_path.iterdir()) == []


def test_reopen_opens_the_jsonl_file_again_before_the_next_batch(tmp_path: Path) -> None:
    """SIGHUP after rotation: the file is reopened at once, without waiting for the check."""
    path, rotated = tmp_path / "out.jsonl", tmp_path / "out.jsonl.1"
    sink = JsonlSink(str(path))
    sinks = SinkSet([sink], Metrics(), capacity=100)
    assert sinks.start() == []
    sinks.publish(signals(1))
    wait_for(lambda: lines(path) == [0], what="the first line")
    path.rename(rotated)
    path.write_text("")  # logrotate's `create`
    sinks.reopen()
    sinks.publish(signals(1, 1))
    wait_for(lambda: lines(path) == [1], what="the line in the new file")
    assert sinks.close(5) == 0
    assert lines(rotated) == [0]


def damage(path: Path, where: str) -> None:
    """Overwrite part of a page of the store, as a bad disk block would: an index's root, or page 1's b-tree."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        root = db.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'signals_time'").fetchone()[0]
    offset = (root - 1) * 4096 + 8 if where == "index root" else 100 + 8
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\xfe" * 2000)


@pytest.mark.parametrize("where", ["index root", "page 1"])
def test_a_corrupt_store_is_refused_at_start_with_what_to_do(tmp_path: Path, where: str) -> None:
    """QA: serve started on a damaged store and counted its signals as written (index root), or dropped
    every one as failed while /healthz said ok (page 1); `fluo signals` could not read it either way."""
    path = tmp_path / "s.db"
    with contextlib.closing(SignalStore(path)) as store:
        store.add(stored(2000))
    damage(path, where)
    sinks = SinkSet([SqliteSink(path)], Metrics(), capacity=10)
    problems = sinks.start()
    sinks.close(1)
    assert len(problems) == 1
    assert problems[0].startswith(f"cannot open sink sqlite: {path} is corrupt (")
    assert f"move it aside (mv {path} {path}.corrupt)" in problems[0] and ".recover" in problems[0]


def test_the_page_check_at_start_is_bounded_in_time(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s.db"
    with contextlib.closing(SignalStore(path)) as store:
        store.add(stored(20_000))
    with contextlib.closing(SignalStore(path, check_seconds=0)) as store:
        assert store.unchecked  # interrupted at once: the rest is not checked
    with contextlib.closing(SignalStore(path, check_seconds=60)) as store:
        assert not store.unchecked
    from fluo_run.serve import sinks as sinks_module

    sink = SqliteSink(path)
    with pytest.MonkeyPatch.context() as m, caplog.at_level(logging.WARNING, "fluo.serve"):
        m.setattr(sinks_module, "QUICK_CHECK_SECONDS", 0)
        sink.open()
        sink.close()
    assert f"signal store {path}: its pages were checked for 0s (PRAGMA quick_check) and not all of them" in caplog.text


def test_a_signals_table_without_the_window_columns_is_refused_at_start(tmp_path: Path) -> None:
    """QA: it was taken, then every batch failed on its missing window_start column (exit 3)."""
    path = tmp_path / "s.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TABLE signals (id INTEGER PRIMARY KEY, time_ns INT, received_ns INT, rule TEXT, severity TEXT,"
            " severity_rank INT, trace_id TEXT, message TEXT, json TEXT)"
        )
    sinks = SinkSet([SqliteSink(path)], Metrics(), capacity=10)
    problems = sinks.start()
    sinks.close(1)
    assert problems == [
        f"cannot open sink sqlite: {path} is not a FLUO signal store: its `signals` table has no window_start column"
    ]


def test_another_programs_database_is_refused_at_start_and_left_as_it_was(tmp_path: Path) -> None:
    """QA: `--db app.db`, an SQLite database of another program (its own tables, application_id 0 as most
    leave it), was taken over: switched to WAL, a `signals` table added, application_id stamped "FLUO"."""
    path = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE users (id, name)")
        db.execute("INSERT INTO users VALUES (1, 'a')")
        db.commit()
    sinks = SinkSet([SqliteSink(path)], Metrics(), capacity=10)
    problems = sinks.start()
    sinks.close(1)
    assert problems == [
        f"cannot open sink sqlite: {path} is not a FLUO signal store: it is another program's database (it holds users)"
    ]
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["users"]


def test_a_writable_store_in_a_read_only_folder_names_the_folder() -> None:
    """QA: file 666 in a folder 555 (no room for -wal and -shm) was blamed on the file. As root, serve is `nobody`."""
    folder = Path(tempfile.mkdtemp(prefix="fluo-ro-"))
    ro = folder / "ro"
    try:
        ro.mkdir()
        path = ro / "s.db"
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA journal_mode=WAL")
        path.chmod(0o666)
        ro.chmod(0o555)
        folder.chmod(0o755)

        assert json.loads(as_reader(functools.partial(_start_problems, path), folders=[ro])) == [
            f"cannot open sink sqlite: {path}: the folder {ro} is not writable, and SQLite makes s.db-wal and "
            "s.db-shm beside the store (attempt to write a readonly database)"
        ]
    finally:
        ro.chmod(0o755)
        shutil.rmtree(folder)


def test_a_path_below_a_folder_that_cannot_be_searched_is_named_and_retried_as_a_sink_error() -> None:
    """Review: `Path.exists()` on a path below a folder its user may not search raises EACCES, which escaped
    as a raw PermissionError: from `open`, and from the SQLite store's `write`, which retries only a
    SinkError, so the batch was marked failed. As root, the sinks run as `nobody`."""
    folder = Path(tempfile.mkdtemp(prefix="fluo-locked-"))
    locked = folder / "locked"
    try:
        locked.mkdir()
        locked.chmod(0)
        folder.chmod(0o755)
        jsonl, db = locked / "sub" / "s.jsonl", locked / "sub" / "s.db"

        def outcome(call: Any) -> str:
            try:
                call()
            except SinkError as exc:
                return f"{type(exc).__name__}: {exc}"
            return "no error"

        def open_and_write() -> str:
            sqlite = SqliteSink(db)
            return json.dumps(
                [
                    outcome(JsonlSink(str(jsonl)).open),
                    outcome(sqlite.open),
                    outcome(lambda: sqlite.write(signals(1), threading.Event())),
                ]
            )

        assert json.loads(as_reader(open_and_write)) == [
            f"SinkError: {jsonl}: the folder {locked} cannot be searched (Permission denied)",
            f"SinkError: {db}: the folder {locked} cannot be searched (Permission denied)",
            f"TransientSinkError: {db}: the folder {locked} cannot be searched (Permission denied)",
        ]
    finally:
        locked.chmod(0o755)
        shutil.rmtree(folder)


def test_a_jsonl_write_past_the_file_size_limit_is_cut_back_and_retried(tmp_path: Path) -> None:
    """QA: under `ulimit -f` the batch was dropped as failed, its first lines left in the file and the last cut off."""
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(str(path))
    sink.open()
    sink.write(signals(10), threading.Event())
    size = path.stat().st_size
    with file_size_limit(size + 1000):
        with pytest.raises(TransientSinkError, match=r"File too large \(the file-size limit, ulimit -f, is \d+ "):
            sink.write(signals(1000, 10), threading.Event())
        assert path.stat().st_size == size  # cut back to where the batch began
    sink.write(signals(1000, 10), threading.Event())  # room made: the same batch goes through whole
    sink.close()
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == list(range(1010))


def test_a_jsonl_write_that_fails_for_good_leaves_no_line_of_its_batch(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(str(path))
    sink.open()
    sink.write(signals(3), threading.Event())

    class HalfThenBroken:
        def __init__(self, real: Any) -> None:
            self.real = real

        def write(self, text: str) -> int:
            self.real.write(text[: len(text) // 2])
            self.real.flush()
            raise OSError(errno.EIO, "Input/output error")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

    sink.out = HalfThenBroken(sink.out)  # type: ignore[assignment]
    with pytest.raises(SinkError, match="Input/output error") as failed:
        sink.write(signals(100, 3), threading.Event())
    assert not isinstance(failed.value, TransientSinkError)
    sink.write(signals(1, 103), threading.Event())
    sink.close()
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [0, 1, 2, 103]


def test_a_store_write_past_the_file_size_limit_is_retried(tmp_path: Path, quick_retries: None) -> None:
    """SQLite reports EFBIG as SQLITE_IOERR_WRITE ("disk I/O error"): it was dropped as failed, not retried."""
    path = tmp_path / "s.db"
    sink = SqliteSink(path)
    sink.open()
    sink.write(stored(10), threading.Event())
    size = path.stat().st_size + Path(f"{path}-wal").stat().st_size
    limit = pytest.raises(TransientSinkError, match=r"disk I/O error \(a write failed: the file-size limit")
    with file_size_limit(size + 20_000), limit:
        sink.write(stored(5000, 10), threading.Event())
    sink.write(stored(5000, 10), threading.Event())
    sink.close()
    assert rows(path) == list(range(5010))


def test_a_webhook_request_answered_too_late_is_sent_again_with_the_same_idempotency_key(quick_retries: None) -> None:
    """QA: an endpoint answering after the 5 s timeout got 350 signals for 250, with nothing to dedupe on.

    Delivery is at least once: any request answered after the timeout is sent again, so on a loaded machine a
    request meant to be answered at once may be repeated too (with its key). What holds whatever the speed: each
    request's retries repeat its key, and the next request has its own."""
    keys: list[str] = []
    sizes: dict[str, int] = {}
    retried = threading.Event()
    lock = threading.Lock()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            key = self.headers["Idempotency-Key"]
            with lock:
                first = not keys
                if key in keys:
                    retried.set()
                keys.append(key)
                sizes[key] = len(body["signals"])
            if first:
                retried.wait(10)  # takes the request, answers only once the sink timed out and sent it again
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sink = WebhookSink(f"http://127.0.0.1:{server.server_address[1]}/hook", timeout=1.0)
        sink.write(signals(150), threading.Event())  # two requests: 100 and 50
    finally:
        server.shutdown()
        server.server_close()
    requests = list(dict.fromkeys(keys))  # each request once, in the order sent
    assert len(requests) == 2 and keys[:2] == [requests[0]] * 2  # the retry repeats the key, the next has its own
    assert [sizes[k] for k in requests] == [100, 50]
    assert all(len(k) == 32 and int(k, 16) >= 0 for k in keys)


def test_a_jsonl_file_ending_in_a_cut_off_line_gets_a_line_break_before_new_signals(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Serve QA 5: a write cut short (kill -9, or the stop's deadline while the disk refused it) left `{"` at the
    end, and the next run's first signal was glued to it. The fragment is kept; new lines start after it."""
    path = tmp_path / "out.jsonl"
    path.write_text('{"n": -1}\n{"ru', encoding="utf-8")
    sink = JsonlSink(str(path))
    sink.open()
    sink.write(signals(2), threading.Event())
    sink.close()
    assert path.read_text(encoding="utf-8").split("\n") == ['{"n": -1}', '{"ru', '{"n": 0}', '{"n": 1}', ""]
    assert "ended in a cut-off line (byte 14" in caplog.text
    caplog.clear()
    sink.open()  # a file that ends its last line: nothing added, nothing said
    sink.write(signals(1, 2), threading.Event())
    sink.close()
    assert path.read_text(encoding="utf-8").endswith('{"n": 1}\n{"n": 2}\n') and "cut-off" not in caplog.text


def written(metrics: Metrics, sink: str) -> float:
    return metrics.registry.get_sample_value("fluo_sink_signals_written_total", {"sink": sink}) or 0


def test_a_webhook_batch_counts_each_request_as_written_when_it_is_answered() -> None:
    """A batch of 300 is three requests: each counts as written (and leaves `fluo_sink_queue`) when answered,
    not all three once the last is (a slow endpoint's 5,000-signal batch lagged the metric for a minute)."""
    with LoopbackServer(delay_of=lambda n: 0.0 if n == 0 else 1.5) as hook:
        metrics = Metrics()
        sinks = SinkSet([WebhookSink(f"{hook.url}/hook")], metrics, capacity=1000)
        assert sinks.start() == []
        sinks.publish(stored(300))
        queue = lambda: metrics.registry.get_sample_value("fluo_sink_queue", {"sink": "webhook"})  # noqa: E731
        wait_for(
            lambda: written(metrics, "webhook") == 100 and queue() == 200,
            what="the first request to count while the others are in flight",
        )
        wait_for(lambda: written(metrics, "webhook") == 300, what="the whole batch")
        assert sinks.close(5) == 0
        assert queue() == 0


def test_a_slow_webhook_answering_every_request_is_not_stalled(monkeypatch: Any) -> None:
    """A write is "stalled" when it makes no progress; a batch of many requests, each answered, is making it."""
    monkeypatch.setattr(SinkWorker, "STALLED_AFTER", 1.5)
    with LoopbackServer(delay_of=lambda n: 0.4) as hook:
        metrics = Metrics()
        sinks = SinkSet([WebhookSink(f"{hook.url}/hook")], metrics, capacity=1000)
        assert sinks.start() == []
        words: set[str] = set()
        sinks.publish(stored(600))  # one batch, six requests: 2.4 s
        wait_for(
            lambda: words.add(sinks.health()["webhook"]) or written(metrics, "webhook") == 600,
            what="the batch to be delivered",
        )
        assert words == {"ok"}
        assert sinks.close(5) == 0


def test_queue_full_drops_are_said_while_the_sink_is_busy_with_one_batch(monkeypatch: Any, caplog: Any) -> None:
    """The summed line comes LOG_EVERY after the last one, not when the sink's thread next takes a batch."""
    monkeypatch.setattr(SinkWorker, "LOG_EVERY", 0.3)
    _, gate, sinks = gate_holding_one(5)
    with caplog.at_level(logging.ERROR, logger="fluo.serve"):
        sinks.publish(signals(6, 1))  # 5 queued, 1 dropped: said at once
        sinks.publish(signals(7, 7))  # 7 dropped, held back
        wait_for(lambda: "sink gate dropped 7 signal(s)" in caplog.text, timeout=5, what="the held-back drops")
        assert not gate.release.is_set()  # the gate still holds its first signal
    gate.release.set()
    sinks.close(5)


def test_a_sink_dropping_signals_for_a_full_queue_is_said_in_health(monkeypatch: Any) -> None:
    """/healthz's "ok" means nothing is lost yet: a sink whose full queue drops signals says "dropping",
    and the whole "degraded", for LOG_EVERY seconds after the last drop."""
    monkeypatch.setattr(SinkWorker, "LOG_EVERY", 0.3)
    _, gate, sinks = gate_holding_one(5)
    sinks.publish(signals(5, 1))
    assert sinks.health() == {"gate": "ok"}
    sinks.publish(signals(1, 6))
    assert sinks.health() == {"gate": "dropping"}
    assert sinks_module.overall(sinks.health()) == "degraded"
    gate.release.set()
    wait_for(lambda: sinks.health() == {"gate": "ok"}, what="the drops to be old")
    assert sinks_module.overall(sinks.health()) == "ok"
    sinks.close(5)
