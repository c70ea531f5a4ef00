"""What the runtime holds per trace stays within its caps, counted (never timed, never RSS)."""

from __future__ import annotations

import gc
import socket
from pathlib import Path

from serve_support import Sender, config, metric, settled, wait_for

from fluo_lang import otlp
from fluo_lang.trace import Span, collector_paused
from fluo_run.serve.assembly import TraceBuffer
from fluo_run.serve.runtime import RuntimeThread

T0 = 1_767_225_600_000_000_000


def trace(n: int, spans: int = 2) -> list[Span]:
    tid = (n + 1).to_bytes(16, "big")
    return [
        Span(trace_id=tid, span_id=(n * 100 + i + 1).to_bytes(8, "big"), name=f"s{i}", start=T0, end=T0 + 1)
        for i in range(spans)
    ]


def buffer(**kw: float) -> TraceBuffer:
    settings: dict[str, float] = dict(
        trace_idle=1.0, max_trace_age=10.0, max_spans_per_trace=100, max_buffered_spans=10_000, late_span_memory=300.0
    )
    settings.update(kw)
    return TraceBuffer(**settings)  # type: ignore[arg-type]


def batched(buf: TraceBuffer) -> int:
    """The ids in the remembered ids' batches: each remembered id is in exactly one."""
    return sum(len(ids) for _, ids in buf.done._batches) + len(buf.done._fresh)


def test_remembered_ids_stay_at_the_cap() -> None:
    buf = buffer(max_remembered=100)
    now = 0.0
    for n in range(5000):  # ten new traces a tick, each completed (idle) a second later
        buf.add(trace(n), now)
        if n % 10 == 9:
            now += 0.1
            buf.sweep(now)
            assert len(buf.done) <= 100
            assert batched(buf) == len(buf.done)
    buf.sweep(now + 2.0)
    assert 90 <= len(buf.done) <= 100 and batched(buf) == len(buf.done)
    assert trace(4999)[0].trace_id in buf.done  # the newest are the ones kept
    assert trace(0)[0].trace_id not in buf.done
    assert len(buf) == 0 and not buf.by_activity and buf.spans == 0


def test_remembered_ids_are_forgotten_after_the_late_span_memory() -> None:
    buf = buffer(late_span_memory=10.0)
    for n in range(10_000):  # a trace every 0.1 s for 1,000 s
        now = n / 10
        buf.add(trace(n), now)
        buf.sweep(now)
        assert len(buf.done) <= 102  # 10 s of traces, give or take one at each end
        assert len(buf.done._batches) <= 102
    assert trace(9980)[0].trace_id in buf.done and trace(9800)[0].trace_id not in buf.done


def test_a_remembered_id_makes_spans_late_and_a_forgotten_one_starts_a_new_trace() -> None:
    buf = buffer(max_remembered=5)
    buf.add(trace(0), 0.0)
    buf.sweep(1.0)  # trace 0 completes
    buf.add(trace(0, 1), 1.5)
    assert buf.late == 1 and len(buf) == 0
    for n in range(1, 11):
        buf.add(trace(n), 2.0)
    buf.sweep(3.0)  # ten more complete: past the cap, trace 0 is forgotten with its batch
    buf.sweep(3.1)
    assert len(buf.done) <= 5 and trace(0)[0].trace_id not in buf.done
    buf.add(trace(0, 1), 3.2)
    assert len(buf) == 1 and buf.late == 1


def test_traces_sharing_their_requests_are_let_go() -> None:
    buf = buffer()
    for n in range(3000):
        now = n / 100
        buf.add(trace(n), now)
        buf.sweep(now)
        assert len(buf._sharing) <= 201  # share_for (2 s) of new traces, 100 a second, and this one
    assert len(buf.by_age) <= 101 and len(buf.by_activity) == len(buf.by_age)


def test_the_runtime_keeps_no_more_than_its_caps_after_many_traces(tmp_path: Path) -> None:
    cfg = config(tmp_path, trace_idle=0.2, late_span_memory=300.0, db=tmp_path / "signals.db")
    with RuntimeThread(cfg) as rt:
        rt.runtime.buffer.max_remembered = 25
        senders = [Sender("grpc", f"127.0.0.1:{rt.runtime.grpc_port}"), Sender("http", rt.http_url)]
        for sender in senders:
            for _ in range(100):
                sender.healthy()
            sender.payment(2500, fraud_check=False)  # fires charge_needs_fraud_check
            sender.flush()
            sender.close()
        wait_for(lambda: metric(rt, "fluo_traces_evaluated_total") == 202, what="202 traces evaluated")
        wait_for(lambda: settled(rt), what="nothing buffered")
        buf = rt.runtime.buffer
        wait_for(lambda: rt.call(lambda: len(buf._sharing)) == 0, what="requests let go")
        wait_for(lambda: rt.call(lambda: len(buf.done)) <= 25, what="remembered ids at the cap")
        assert rt.call(lambda: len(buf.done) == batched(buf))
        assert metric(rt, "fluo_remembered_traces") <= 25
        assert rt.call(lambda: (len(buf.by_age), len(buf.by_activity), buf.spans)) == (0, 0, 0)
        evaluator = rt.runtime.evaluator
        assert all(len(ws.open) <= 2 and ws.spans <= 404 for ws in evaluator.windows.values())
        assert not evaluator._full_logged and not rt.runtime.intake.admission.refused
        assert len(otlp._REDECODED) <= otlp._REDECODED_MAX
        assert metric(rt, "fluo_spans_late_total") == 0
        wait_for(lambda: metric(rt, "fluo_sink_signals_written_total", sink="sqlite") >= 2, what="signals stored")


MIB = 1 << 20


def bytes_left_to_the_cyclic_gc() -> int:
    """The bytes held only by unreachable cycles, in bytes and bytearray objects (each counted once)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        held = {id(o): len(o) for g in gc.garbage for o in gc.get_referents(g) if isinstance(o, (bytes, bytearray))}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return sum(held.values())


def abandon_upload(port: int, size: int) -> None:
    """A `POST /v1/traces` of `size` bytes whose sender closes the connection one byte short."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: %d\r\n\r\n" % size
        )
        s.sendall(b"\x0a" * (size - 1))


def test_an_upload_its_sender_abandons_leaves_no_bytes_behind(tmp_path: Path) -> None:
    """Security QA r04: a body cut short by its sender's disconnect stayed in memory (6 of 32 MiB: +192 MiB of RSS,
    still there a minute later). aiohttp keeps the stream's exception on the request, and its traceback held
    `request.read()`'s frame, the request and the bytes read so far: a cycle that only the cyclic GC frees, and
    an idle server hardly runs it. Now nothing of an abandoned body is left for it to find."""
    # the cycle collector paused: what only it would free stays, as in a server that allocates little
    with RuntimeThread(config(tmp_path, grpc=None)) as rt, collector_paused():
        bytes_left_to_the_cyclic_gc()  # what earlier tests left
        for _ in range(3):
            abandon_upload(rt.runtime.http_port, 2 * MIB)
        broke = {"transport": "http", "outcome": "cancelled"}
        wait_for(lambda: metric(rt, "fluo_export_requests_total", **broke) == 3, what="3 bodies cut short")
        wait_for(lambda: metric(rt, "fluo_http_connections") == 0, what="their connections gone")
        assert bytes_left_to_the_cyclic_gc() < MIB  # 6 MiB before
