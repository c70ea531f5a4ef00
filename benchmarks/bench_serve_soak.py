"""Does `fluo serve`'s memory level off under steady load? `python benchmarks/bench_serve_soak.py [--seconds N]`.

A `fluo serve` process on 127.0.0.1 (the bundled example rules, an SQLite store
in a temporary folder) is fed traces with unique ids by two driver processes, one
exporting with the OpenTelemetry SDK's OTLP/gRPC exporter and one with its
OTLP/HTTP exporter, at a steady, modest rate (the measurement is about memory,
not saturation). Every `--sample` seconds the server's resident memory (VmRSS)
and its `/metrics` are read. The drivers stop by themselves after `--seconds`.

What the server holds, by design, grows with the traffic until its caps and
durations fill, then stays level:

- the ids of evaluated traces, for `--late-span-memory` (here 60 s by default,
  the server's own default is 5m) and at most `assembly.MAX_REMEMBERED` of them;
- the traces of each open tumbling window (the examples have a 1m window rule),
  for the window's length plus its grace, at most `--max-window-spans` spans;
- the traces being assembled, for `--trace-idle`.

So growth per trace is measured over each half of the run (a least-squares
slope of RSS against traces evaluated) and printed as a ratio, second half over
first half: near 1 is growth that does not level off (a leak), near 0 memory
that has levelled off. A run shorter than those durations shows growth in both
halves. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "examples" / "rules"


# ---------------------------------------------------------------------------
# the drivers: one process per exporter, so the SDK's work has the other core


def drive(protocol: str, endpoint: str, seconds: float, traces_per_second: float, spans_per_trace: int) -> None:
    """Make traces at a steady rate for `seconds`, exported by the SDK's OTLP exporter; print how many."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    def exporter() -> object:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

            return Grpc(endpoint=endpoint, insecure=True)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

        return Http(endpoint=f"{endpoint}/v1/traces")

    providers = []
    tracers = {}
    for service in ("frontend", "auth", "payment"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}), shutdown_on_exit=False)
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter(),  # type: ignore[arg-type]
                max_queue_size=200_000,
                schedule_delay_millis=200,
                max_export_batch_size=512,
            )
        )
        providers.append(provider)
        tracers[service] = provider.get_tracer("fluo.soak")
    made = 0
    t0 = time.monotonic()
    while (now := time.monotonic()) - t0 < seconds:
        due = int((now - t0) * traces_per_second) - made
        for _ in range(min(due, int(traces_per_second))):  # catch up at most a second's worth at once
            n = made
            with tracers["frontend"].start_as_current_span("checkout" if n % 4 == 0 else "GET /login"):
                for i in range(spans_per_trace - 1):
                    if n % 4 == 0 and i == 0:
                        with tracers["payment"].start_as_current_span("payment.charge_card") as span:
                            span.set_attribute("amount", 500 + n % 1000)
                    else:
                        with tracers["auth"].start_as_current_span("login") as span:
                            span.set_attribute("attempt", i)
                            span.set_attribute("http.response.status_code", 503 if n % 97 == 0 else 200)
                            if n % 50 == 0:
                                span.set_status(Status(StatusCode.ERROR, "failed"))
            made += 1
        time.sleep(0.02)
    for provider in providers:
        provider.force_flush(30_000)
        provider.shutdown()
    print(made, flush=True)


# ---------------------------------------------------------------------------
# the server and the samples


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def metrics(port: int) -> dict[str, float]:
    """`/metrics` samples, by name with their labels and by name alone (summed over the labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^(fluo_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+|NaN)$", line)
        if m and m.group(3) != "NaN":
            for key in {m.group(1), m.group(1) + (m.group(2) or "")}:
                out[key] = out.get(key, 0.0) + float(m.group(3))
    return out


COLUMNS = (  # (heading, what /metrics sample): the server's own counts next to its RSS
    ("evaluated", "fluo_traces_evaluated_total"),
    ("buffered", "fluo_buffered_traces"),
    ("remembered", "fluo_remembered_traces"),
    ("window", "fluo_window_spans"),
    ("pending", "fluo_pending_spans"),
    ("late", "fluo_spans_late_total"),
    ("refused", "fluo_export_requests_total"),  # its outcome="refused" samples only (see `soak`)
)


@dataclass
class Sample:
    seconds: float
    rss: int
    counts: dict[str, float]

    @property
    def evaluated(self) -> float:
        return self.counts["evaluated"]

    def line(self) -> str:
        return f"{self.seconds:5.0f} {self.rss / 2**20:8.1f} " + " ".join(
            f"{self.counts[h]:>{max(8, len(h))}.0f}" for h, _ in COLUMNS
        )


def slope(points: list[Sample]) -> float:
    """Least-squares bytes of RSS per trace evaluated over `points`."""
    xs = [p.evaluated for p in points]
    ys = [float(p.rss) for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def start_server(tmp: Path, args: argparse.Namespace) -> tuple[subprocess.Popen[str], int, int, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fluo_run.cli", "serve", "--rules", str(RULES), "--http", "127.0.0.1:0",
         "--grpc", "127.0.0.1:0", "--db", str(tmp / "signals.db"), "--trace-idle", args.trace_idle,
         "--late-span-memory", args.late_span_memory, "--reload-interval", "off"],
        stderr=subprocess.PIPE, text=True, cwd=tmp,
    )  # fmt: skip
    assert proc.stderr is not None
    log: list[str] = []
    http = grpc = 0
    for line in proc.stderr:
        log.append(line)
        if m := re.search(r"OTLP/HTTP listening on http://[^:]+:(\d+)", line):
            http = int(m.group(1))
        if m := re.search(r"OTLP/gRPC listening on [^:]+:(\d+)", line):
            grpc = int(m.group(1))
        if http and grpc:
            break
    if not (http and grpc):
        proc.kill()
        raise SystemExit("fluo serve did not start:\n" + "".join(log))
    threading.Thread(target=lambda: log.extend(proc.stderr or ()), daemon=True).start()  # never a full pipe
    return proc, http, grpc, log


def soak(args: argparse.Namespace) -> None:
    rate = args.traces_per_second / 2  # per driver
    print(
        f"fluo serve soak: {args.seconds:g} s, {args.traces_per_second:g} traces/s of {args.spans_per_trace} spans "
        f"(half over OTLP/gRPC, half over OTLP/HTTP), --trace-idle {args.trace_idle}, "
        f"--late-span-memory {args.late_span_memory}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        proc, http, grpc, log = start_server(Path(tmp), args)
        drivers = []
        try:
            idle = rss_bytes(proc.pid)
            print(f"idle server: RSS {idle / 2**20:.1f} MiB")
            for protocol, endpoint in (("grpc", f"127.0.0.1:{grpc}"), ("http", f"http://127.0.0.1:{http}")):
                command = [sys.executable, __file__, "--drive", protocol, endpoint]
                command += ["--seconds", str(args.seconds), "--traces-per-second", str(rate)]
                command += ["--spans-per-trace", str(args.spans_per_trace)]
                drivers.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
            samples: list[Sample] = []
            t0 = time.monotonic()
            print(f"{'s':>5} {'RSS MiB':>8} " + " ".join(f"{h:>{max(8, len(h))}}" for h, _ in COLUMNS))
            while any(d.poll() is None for d in drivers) or not samples or samples[-1].counts["buffered"]:
                time.sleep(args.sample)
                if proc.poll() is not None:
                    raise SystemExit("fluo serve stopped:\n" + "".join(log[-20:]))
                m = metrics(http)
                refused = sum(v for k, v in m.items() if k.startswith("fluo_export_requests_total{") and "refused" in k)
                counts = {h: m.get(name, 0.0) for h, name in COLUMNS} | {"refused": refused}
                samples.append(Sample(time.monotonic() - t0, rss_bytes(proc.pid), counts))
                print(samples[-1].line(), flush=True)
                if time.monotonic() - t0 > args.seconds + 120:
                    print("the drivers did not stop in time; stopping them")
                    break
            made = sum(int((d.communicate(timeout=60)[0] or "0").split()[-1]) for d in drivers)
        finally:
            for d in drivers:
                if d.poll() is None:
                    d.kill()
            proc.terminate()
            proc.wait(60)
    report(samples, made, idle)


def report(samples: list[Sample], made: int, idle: int) -> None:
    active = [s for s in samples if s.evaluated > 0]
    evaluated = int(active[-1].evaluated) if active else 0
    print(f"traces made by the drivers: {made}; evaluated by the server: {evaluated}")
    if len(active) < 6:
        print("too few samples with traffic to compare the halves; give more --seconds")
        return
    half = len(active) // 2
    first, second = active[: half + 1], active[half:]
    a, b = slope(first), slope(second)
    peak = max(s.rss for s in samples)
    print(
        f"RSS: idle {idle / 2**20:.1f} MiB, at the first sample with traffic {active[0].rss / 2**20:.1f} MiB, "
        f"at mid-run {active[half].rss / 2**20:.1f} MiB, at the end {active[-1].rss / 2**20:.1f} MiB, "
        f"peak {peak / 2**20:.1f} MiB"
    )
    print(
        f"growth per trace: first half {a:.1f} bytes (to {first[-1].evaluated:.0f} traces), "
        f"second half {b:.1f} bytes (to {second[-1].evaluated:.0f} traces)"
    )
    ratio = b / a if a > 0 else float("nan")
    print(f"ratio second half / first half: {ratio:.3f}  (near 1: still growing; near 0: levelled off)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=240.0, help="how long the drivers send (default 240)")
    parser.add_argument("--traces-per-second", type=float, default=1000.0, help="both drivers together")
    parser.add_argument("--spans-per-trace", type=int, default=5)
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--trace-idle", default="1s")
    parser.add_argument("--late-span-memory", default="60s", help="the server's own default is 5m")
    parser.add_argument("--drive", nargs=2, metavar=("PROTOCOL", "ENDPOINT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.drive[0], args.drive[1], args.seconds, args.traces_per_second, args.spans_per_trace)
    else:
        soak(args)


if __name__ == "__main__":
    main()
