"""The runtime's speed and memory: `python benchmarks/bench_serve.py [--spans N] [--rules N]`.

1. Bare decode: the same OTLP/HTTP protobuf payloads through
   `ExportTraceServiceRequest.FromString` + `spans_from_request`, nothing else.
2. End to end: a `fluo serve` process pinned to one core (the 100 rules of
   `bench_core.py`, no sinks), fed those payloads over OTLP/HTTP by client
   threads on another core; timed from the first request until every trace has
   been evaluated, minus the `--trace-idle` wait the last trace must sit out.
3. Memory: resident bytes per buffered span (10 attributes each), spans held
   in the trace buffer exactly as the runtime holds them.

Figures are printed against the baseline measured in the same run; targets
(>= 100k spans/s end to end, <= 1 KiB per buffered span) are reported, not asserted.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_core import checks, make_spans  # the same 100 rules and spans as the core benchmark
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from fluo_lang.api import analyze, compile_program
from fluo_lang.otlp import spans_from_request, spans_to_request
from fluo_lang.trace import assemble
from fluo_run.serve.assembly import TraceBuffer

SPANS_PER_REQUEST = 500
SPANS_PER_TRACE = 10
TRACE_IDLE = 0.1


def payloads(spans: int) -> list[bytes]:
    """Export requests of SPANS_PER_REQUEST spans, traces of SPANS_PER_TRACE spans with 10 attributes each."""
    made = make_spans(max(1, spans // SPANS_PER_TRACE), SPANS_PER_TRACE)
    return [
        bytes(spans_to_request(made[i : i + SPANS_PER_REQUEST]).SerializeToString())
        for i in range(0, len(made), SPANS_PER_REQUEST)
    ]


def bare_decode(bodies: list[bytes]) -> tuple[float, int]:
    t = time.perf_counter()
    n = 0
    for b in bodies:
        n += len(spans_from_request(ExportTraceServiceRequest.FromString(b)))
    return time.perf_counter() - t, n


def evaluation_only(bodies: list[bytes], rules: str) -> float:
    """Seconds for `Program.evaluate_trace` alone over the payloads' traces: the evaluator's own ceiling."""
    program = compile_program(analyze([("bench.fluo", rules)]))
    traces = assemble([s for b in bodies for s in spans_from_request(ExportTraceServiceRequest.FromString(b))])
    t = time.perf_counter()
    for trace in traces:
        program.evaluate_trace(trace)
    return time.perf_counter() - t


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def buffered_bytes_per_span(bodies: list[bytes]) -> float:
    """Measured in a fresh process, so memory freed by building the payloads cannot hide the growth."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "payloads.bin"
        path.write_bytes(b"".join(len(b).to_bytes(4, "big") + b for b in bodies))
        done = subprocess.run(
            [sys.executable, __file__, "--measure-buffer", str(path)], capture_output=True, text=True, check=True
        )
    return float(done.stdout)


def measure_buffer(path: str) -> float:
    data = Path(path).read_bytes()
    bodies = []
    i = 0
    while i < len(data):
        n = int.from_bytes(data[i : i + 4], "big")
        bodies.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    del data
    buf = TraceBuffer(
        trace_idle=1e9, max_trace_age=1e9, max_spans_per_trace=10**6, max_buffered_spans=10**9, late_span_memory=1
    )
    gc.collect()
    before = rss()
    for b in bodies:
        buf.add(spans_from_request(ExportTraceServiceRequest.FromString(b)), 0.0)
    gc.collect()
    return (rss() - before) / buf.spans


def metric(port: int, name: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def end_to_end(bodies: list[bytes], rules: Path, spans: int, traces: int, clients: int) -> tuple[float, int]:
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpus = {cpus[0]}, set(cpus[1:]) or {cpus[0]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fluo_run.cli", "serve", "--rules", str(rules), "--http", "127.0.0.1:0",
         "--grpc", "off", "--no-db", "--trace-idle", f"{int(TRACE_IDLE * 1000)}ms", "--reload-interval", "off",
         "--max-pending-spans", str(spans)],
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.sched_setaffinity(0, server_cpu),
    )  # fmt: skip
    assert proc.stderr is not None
    port = 0
    for line in proc.stderr:
        m = re.search(r"OTLP/HTTP listening on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    os.sched_setaffinity(0, client_cpus)
    refused = 0
    lock = threading.Lock()

    def send(part: list[bytes]) -> None:
        nonlocal refused
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for body in part:
            while True:
                conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    break
                with lock:
                    refused += 1
                time.sleep(float(resp.getheader("Retry-After", "1")) / 10)
        conn.close()

    try:
        threads = [threading.Thread(target=send, args=(bodies[i::clients],)) for i in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        while metric(port, "fluo_traces_evaluated_total") < traces:
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0 - TRACE_IDLE
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()
    return elapsed, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--measure-buffer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_buffer:
        print(measure_buffer(args.measure_buffer))
        return
    bodies = payloads(args.spans)
    requests = len(bodies)
    spans = sum(len(spans_from_request(ExportTraceServiceRequest.FromString(b))) for b in bodies)
    traces = len({sp.trace_id for b in bodies for sp in spans_from_request(ExportTraceServiceRequest.FromString(b))})
    wire = sum(map(len, bodies))
    print(f"payloads: {requests} requests, {spans} spans in {traces} traces, {wire / spans:.0f} bytes/span on the wire")

    decode_s, _ = min((bare_decode(bodies) for _ in range(3)), key=lambda r: r[0])
    decode_rate = spans / decode_s
    print(f"bare decode (FromString + spans_from_request): {decode_rate:,.0f} spans/s")

    rule_texts = [text for text, _ in checks()]
    eval_rate = spans / evaluation_only(bodies, "\n".join(rule_texts))
    print(f"evaluation alone (Program.evaluate_trace, in-process, no I/O): {eval_rate:,.0f} spans/s")
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "bench.fluo"
        rules.write_text("\n".join(rule_texts) + "\n")
        e2e_s, refused = end_to_end(bodies, rules, spans, traces, args.clients)
    e2e_rate = spans / e2e_s
    print(
        f"end to end over OTLP/HTTP protobuf, {len(rule_texts)} rules, server on one core: {e2e_rate:,.0f} spans/s "
        f"({refused} retryable refusals)"
    )
    print(f"ratio end-to-end / bare decode: {e2e_rate / decode_rate:.3f}")
    print(f"ratio end-to-end / evaluation alone: {e2e_rate / eval_rate:.3f}  (the runtime's own overhead)")
    verdict = "met" if e2e_rate >= 100_000 else "NOT met"
    print(f"target >= 100,000 spans/s end to end: {verdict}")

    per_span = buffered_bytes_per_span(bodies[: min(len(bodies), 400)])
    verdict = "met" if per_span <= 1024 else "NOT met"
    print(f"resident bytes per buffered span (10 attributes): {per_span:,.0f}  (target <= 1024: {verdict})")


if __name__ == "__main__":
    main()
