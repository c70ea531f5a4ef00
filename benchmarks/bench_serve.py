"""The runtime's speed and memory: `python benchmarks/bench_serve.py [--spans N] [--clients N] [--profile [FILE]]`.

1. Bare decode: the same OTLP/HTTP protobuf payloads through the receivers'
   decode path (`decode_traces` + `spans_from_request`), nothing else.
2. Evaluation alone: `Program.evaluate_trace` over those payloads' traces,
   decoded the same way, in-process with the cyclic collector paused (as
   `fluo eval` runs): the evaluator's own ceiling.
3. End to end: a `fluo serve` process pinned to one core (the 100 rules of
   `bench_core.py`, no sinks), fed those payloads over OTLP/HTTP by client
   threads on another core; timed from the first request until every trace has
   been evaluated, minus the `--trace-idle` wait the last trace must sit out.
   Completion is watched through `/healthz` (cheap), not by scraping `/metrics`
   in a loop, which would itself cost the server time. Where the server's time
   went is read from its threads' CPU time (`/proc`): the event loop thread
   (HTTP, admission, decoding, assembly), the evaluator thread, and how long
   its core did not run it. `--profile` also samples the server with py-spy, if
   installed (the thread holding the GIL, as the process's Python time), and
   splits that time by what the code was doing.
4. Memory: resident bytes per buffered span (10 attributes each), spans held
   in the trace buffer exactly as the runtime holds them.

Figures are printed against the baseline measured in the same run; targets
(>= 100k spans/s end to end, <= 1 KiB per buffered span) are reported, not asserted.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_core import checks, make_spans  # the same 100 rules and spans as the core benchmark

from fluo_lang.api import analyze, compile_program
from fluo_lang.otlp import decode_traces, share_request, spans_from_request, spans_to_request
from fluo_lang.trace import assemble, collector_paused
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
        n += len(spans_from_request(decode_traces(b)))
    return time.perf_counter() - t, n


def evaluation_only(bodies: list[bytes], rules: str) -> float:
    """Seconds for `Program.evaluate_trace` alone over the payloads' traces: the evaluator's own ceiling."""
    program = compile_program(analyze([("bench.fluo", rules)]))
    with collector_paused():
        # Decoded as the runtime decodes: with the rules' attribute keys converted ahead.
        traces = assemble([s for b in bodies for s in spans_from_request(decode_traces(b), prefetch=program.prefetch)])
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
    # Spans are decoded as the runtime decodes them: with the 100 rules' attribute keys converted ahead.
    prefetch = compile_program(analyze([("bench.fluo", "\n".join(text for text, _ in checks()))])).prefetch
    gc.collect()
    before = rss()
    for b in bodies:  # as the receivers hand them over: sharing their request's bytes
        decoded = spans_from_request(decode_traces(b), prefetch=prefetch)
        share_request(decoded, b)
        buf.add(decoded, 0.0)
    gc.collect()
    return (rss() - before) / buf.spans


def get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    text = conn.getresponse().read().decode()
    conn.close()
    return text


def metric(port: int, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", get(port, "/metrics"), re.M)
    return float(m.group(1)) if m else 0.0


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of a process, from /proc (clock-tick resolution)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


@dataclass
class ServerTime:
    """Where the server's one core went between the first request and the last evaluation."""

    wall: float = 0.0
    loop: float = 0.0  # the event loop thread: HTTP, admission, decoding, assembly
    evaluator: float = 0.0  # every other thread: the evaluator (and any executor thread)
    clients: float = 0.0  # CPU seconds the sending (and polling) process used meanwhile, on the other core(s)
    profile: dict[str, int] = field(default_factory=dict)  # py-spy samples by category (--profile)
    hot: list[tuple[str, int]] = field(default_factory=list)  # py-spy samples by innermost function (--profile)

    def report(self) -> str:
        busy = self.loop + self.evaluator
        idle = max(0.0, self.wall - busy)
        lines = [
            f"server time over {self.wall:.2f} s on its core: event loop thread {self.loop:.2f} s "
            f"({self.loop / self.wall:.0%}: HTTP, admission, decode, assembly), "
            f"evaluator thread {self.evaluator:.2f} s ({self.evaluator / self.wall:.0%}), "
            f"not running {idle:.2f} s ({idle / self.wall:.0%}: idle, as while the last trace sits out --trace-idle, "
            f"or preempted by other processes); "
            f"the clients used {self.clients:.2f} s of CPU",
        ]
        total = sum(self.profile.values())
        if total:
            parts = sorted(self.profile.items(), key=lambda kv: -kv[1])
            lines.append("  py-spy, share of the time a thread held the GIL: " + ", ".join(
                f"{k} {n / total:.0%}" for k, n in parts
            ))  # fmt: skip
            lines.append("  innermost functions: " + ", ".join(f"{k} {n / total:.0%}" for k, n in self.hot[:10]))
        return "\n".join(lines)


# The first of these found anywhere in a sample's stack names what the server was doing.
CATEGORIES = [
    ("Program.evaluate_trace ", "evaluate_trace"),
    ("Metrics.exposition", "metrics scrape"),
    ("decode_traces ", "decode"),
    ("decode_request ", "decode"),
    ("decode_json ", "decode"),
    ("Runtime._accept ", "assembly"),
    ("Runtime._hand_over ", "assembly"),
    ("TraceBuffer.", "assembly"),
    ("Evaluator.", "evaluator thread, other"),
]


def categorize(raw: str) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """py-spy's raw (collapsed) stacks, one `frame;frame;... count` a line: samples by category and by innermost
    function (`name (file:line)` frames; the file shortened to its last two parts)."""
    out: dict[str, int] = {}
    innermost: dict[str, int] = {}
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        name = "HTTP and event loop" if "MainThread" in frames[0] else "other threads"
        name = next((label for marker, label in CATEGORIES if any(f.startswith(marker) for f in frames)), name)
        out[name] = out.get(name, 0) + int(count)
        m = re.fullmatch(r"(.*) \((?:.*/)?([^/]+/[^/:]+)(?::\d+)?\)", frames[-1])
        function = f"{m.group(1)} ({m.group(2)})" if m else frames[-1]
        innermost[function] = innermost.get(function, 0) + int(count)
    return out, sorted(innermost.items(), key=lambda kv: -kv[1])


def end_to_end(
    bodies: list[bytes], rules: Path, spans: int, traces: int, clients: int, profile: bool, profile_out: str = ""
) -> tuple[float, int, ServerTime]:
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
    log: list[str] = []
    for line in proc.stderr:
        log.append(line)
        m = re.search(r"OTLP/HTTP listening on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if not port:
        raise SystemExit("fluo serve did not start:\n" + "".join(log))
    # Keep reading the server's log, so a chatty server never blocks on a full pipe.
    threading.Thread(target=lambda: log.extend(proc.stderr or ()), daemon=True).start()
    os.sched_setaffinity(0, client_cpus)
    spy = None
    spy_out = Path(tempfile.mkdtemp()) / "profile.txt"
    if profile:
        if shutil.which("py-spy") is None:
            print("--profile: py-spy is not installed (pip install py-spy); no profile")
        else:
            spy = subprocess.Popen(
                ["py-spy", "record", "--pid", str(proc.pid), "--threads", "--gil", "--rate", "250",
                 "--format", "raw", "--output", str(spy_out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)  # let it attach
    refused = 0
    lock = threading.Lock()

    # Each request is written out in full beforehand and sent with one call, so the
    # clients spend next to nothing per request and never hold the server back.
    head = f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-protobuf\r\n"
    requests = [head.encode() + f"Content-Length: {len(b)}\r\n\r\n".encode() + b for b in bodies]

    def send(part: list[bytes]) -> None:
        nonlocal refused
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for request in part:
            while True:
                sock.sendall(request)
                resp = http.client.HTTPResponse(sock)
                resp.begin()
                resp.read()
                if resp.status == 200:
                    break
                with lock:
                    refused += 1
                time.sleep(float(resp.getheader("Retry-After", "1")) / 10)
        sock.close()

    def backlog() -> int:
        """Spans buffered or awaiting evaluation; polled less often while there are many (each poll costs the
        server a little)."""
        health = json.loads(get(port, "/healthz"))
        return int(health["buffered_spans"]) + int(health["pending_spans"])

    server = ServerTime()
    try:
        threads = [threading.Thread(target=send, args=(requests[i::clients],)) for i in range(clients)]
        cpu0 = thread_cpu(proc.pid)
        client0 = time.process_time()
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        while True:
            while left := backlog():
                time.sleep(min(0.05, 0.005 + left / 2e6))
            done = time.perf_counter()
            if metric(port, "fluo_traces_evaluated_total") >= traces:
                break
        cpu1 = thread_cpu(proc.pid)
        server.clients = time.process_time() - client0
        elapsed = done - t0 - TRACE_IDLE
        server.wall = done - t0
        for tid, seconds in cpu1.items():
            used = seconds - cpu0.get(tid, 0.0)
            if tid == proc.pid:
                server.loop += used
            else:
                server.evaluator += used
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
            if spy_out.exists():
                server.profile, server.hot = categorize(spy_out.read_text())
                if profile_out:
                    shutil.copy(spy_out, profile_out)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(spy_out.parent, ignore_errors=True)
    return elapsed, refused, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--profile",
        nargs="?",
        const="",
        metavar="RAW_FILE",
        help="also sample the server with py-spy (if installed); keep its raw stacks in RAW_FILE if given",
    )
    parser.add_argument("--measure-buffer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_buffer:
        print(measure_buffer(args.measure_buffer))
        return
    bodies = payloads(args.spans)
    requests = len(bodies)
    spans = sum(len(spans_from_request(decode_traces(b))) for b in bodies)
    traces = len({sp.trace_id for b in bodies for sp in spans_from_request(decode_traces(b))})
    wire = sum(map(len, bodies))
    print(f"payloads: {requests} requests, {spans} spans in {traces} traces, {wire / spans:.0f} bytes/span on the wire")

    decode_s, _ = min((bare_decode(bodies) for _ in range(3)), key=lambda r: r[0])
    decode_rate = spans / decode_s
    print(f"bare decode (decode_traces + spans_from_request): {decode_rate:,.0f} spans/s")

    rule_texts = [text for text, _ in checks()]
    eval_rate = spans / evaluation_only(bodies, "\n".join(rule_texts))
    print(f"evaluation alone (Program.evaluate_trace, in-process, no I/O): {eval_rate:,.0f} spans/s")
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "bench.fluo"
        rules.write_text("\n".join(rule_texts) + "\n")
        e2e_s, refused, server = end_to_end(
            bodies, rules, spans, traces, args.clients, args.profile is not None, args.profile or ""
        )
    e2e_rate = spans / e2e_s
    print(
        f"end to end over OTLP/HTTP protobuf, {len(rule_texts)} rules, server on one core: {e2e_rate:,.0f} spans/s "
        f"({refused} retryable refusals)"
    )
    print(f"ratio end-to-end / bare decode: {e2e_rate / decode_rate:.3f}")
    print(f"ratio end-to-end / evaluation alone: {e2e_rate / eval_rate:.3f}  (the runtime's own overhead)")
    print(server.report())
    verdict = "met" if e2e_rate >= 100_000 else "NOT met"
    print(f"target >= 100,000 spans/s end to end: {verdict}")

    per_span = buffered_bytes_per_span(bodies[: min(len(bodies), 400)])
    verdict = "met" if per_span <= 1024 else "NOT met"
    print(f"resident bytes per buffered span (10 attributes): {per_span:,.0f}  (target <= 1024: {verdict})")


if __name__ == "__main__":
    main()
