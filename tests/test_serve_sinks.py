"""Sinks under trouble: slow, locked, missing or failing; real threads, real SQLite files, a real local HTTP server."""

from __future__ import annotations

import threading
from typing import Any

from serve_support import wait_for

from fluo_run.serve.metrics import Metrics
from fluo_run.serve.sinks import Batch, CallbackSink, Sink, SinkSet, TransientSinkError


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


def test_publish_with_wait_blocks_for_room_instead_of_dropping() -> None:
    metrics = Metrics()
    gate = Gate()
    sinks = SinkSet([gate], metrics, capacity=10)
    assert sinks.start() == []
    sinks.publish(signals(1))
    wait_for(lambda: sinks.backlog() == 0.0, what="the first signal to be taken")
    sinks.publish(signals(10, 1))
    assert sinks.backlog() == 1.0
    threading.Timer(0.3, gate.release.set).start()
    sinks.publish(signals(30, 11), wait=10.0)  # room comes as the sink drains
    assert dropped(metrics, "gate", "queue_full") == 0
    assert sinks.close(10) == 0
    assert [s["n"] for s in gate.got] == list(range(41))


def test_publish_without_wait_drops_what_does_not_fit_and_close_counts_it(caplog: Any) -> None:
    metrics = Metrics()
    gate = Gate()
    sinks = SinkSet([gate], metrics, capacity=5)
    sinks.start()
    sinks.publish(signals(1))
    wait_for(lambda: sinks.backlog() == 0.0, what="the first signal to be taken")
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
    from fluo_run.serve.sinks import SinkWorker

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
    from fluo_run.serve.sinks import SinkWorker

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
