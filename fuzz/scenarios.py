"""Fault scenarios against a real `fluo serve` process on loopback: fuzzed bodies, overload, crash.

Each scenario returns a small result with the figures it measured; the tests in
`tests/test_reliability.py` assert on them and `benchmarks/bench_reliability.py`
prints them. Servers bind 127.0.0.1 with port 0; every wait is bounded.
"""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import json
import os
import queue
import re
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from strategies import json_bodies, protobuf_bodies

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_RULES = ROOT / "examples" / "rules"
EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PROTOBUF = "application/x-protobuf"
_TRANSIENT = (OSError, TimeoutError, urllib.error.URLError)  # a scrape or send that may fail while the server is busy
JSON = "application/json"


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


# -- certificates ------------------------------------------------------------------


@dataclass
class Certificate:
    cert: Path
    key: Path

    @property
    def pem(self) -> bytes:
        return self.cert.read_bytes()


def make_certificate(folder: Path) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, valid for a day.

    Made with the `cryptography` package when it is installed, else with the `openssl` command.
    """
    folder.mkdir(parents=True, exist_ok=True)
    out = Certificate(folder / "server.crt", folder / "server.key")
    try:
        _certificate_with_cryptography(out)
    except ImportError:
        request = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"]
        names = ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
        files = ["-keyout", str(out.key), "-out", str(out.cert)]
        subprocess.run(["openssl", *request, *names, *files], check=True, capture_output=True)
    return out


def _certificate_with_cryptography(out: Certificate) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


# -- a `fluo serve` process -----------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Serve:
    """`fluo serve` as a child process on loopback ports chosen by the OS."""

    PORTS = re.compile(r"OTLP/(HTTP|gRPC) listening on (?:https?://)?[^ ]*:(\d+)")
    METRICS_PORT = re.compile(r"metrics on https?://[^ ]*:(\d+)/metrics")

    def __init__(
        self,
        args: Sequence[str],
        cwd: Path,
        *,
        token: str | None = None,
        tls: Certificate | None = None,
    ) -> None:
        self.args = list(args)
        self.cwd = cwd
        self.token = token
        self.tls = tls
        self.log: list[str] = []
        self.ports: dict[str, int] = {}
        self._lines: queue.Queue[str] = queue.Queue()
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> Serve:
        cmd = [sys.executable, "-m", "fluo_run.cli", "serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"]
        cmd += ["--reload-interval", "off", *self.args]
        if self.token is not None:
            cmd += ["--auth-token", self.token]
        if self.tls is not None:
            cmd += ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLUO_")}
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        self.expect("ready;", timeout)
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self._lines.put(line.rstrip("\n"))
        proc.stderr.close()

    def expect(self, pattern: str, timeout: float = 15.0) -> str:
        """The next log line containing `pattern`; fails if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc is not None and self.proc.poll() is not None and self._lines.empty():
                    raise RuntimeError(f"fluo serve exited {self.proc.returncode}:\n" + "\n".join(self.log)) from None
                continue
            self.log.append(line)
            for kind, port in self.PORTS.findall(line):
                self.ports[kind] = int(port)
            if m := self.METRICS_PORT.search(line):
                self.ports["metrics"] = int(m.group(1))
            if pattern in line:
                return line
        raise TimeoutError(f"no log line with {pattern!r} in {timeout}s:\n" + "\n".join(self.log))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int:
        """Resident memory of the process in bytes (Linux /proc)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    # -- talking to it

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def url(self, path: str = "/v1/traces", port: str = "HTTP") -> str:
        return f"{self.scheme}://127.0.0.1:{self.ports[port]}{path}"

    def _ssl(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.tls.cert)) if self.tls is not None else None

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token is not None else {}

    def request(
        self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None, port: str = "HTTP"
    ) -> Answer:
        req = urllib.request.Request(
            self.url(path, port), data=body, headers=headers or {}, method="POST" if body is not None else "GET"
        )
        try:
            with urllib.request.urlopen(req, timeout=15, context=self._ssl()) as resp:
                return Answer(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, dict(exc.headers), exc.read())

    def post(
        self, body: bytes, content_type: str, headers: dict[str, str] | None = None, *, auth: bool = True
    ) -> Answer:
        return self.request(
            "/v1/traces", body, {"Content-Type": content_type, **(self.auth() if auth else {}), **(headers or {})}
        )

    def metrics(self) -> dict[str, float]:
        """Every sample of GET /metrics, keyed `name{label="v",...}` (labels sorted)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = self.request("/metrics", headers=self.auth()).body.decode()
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return out

    def total(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples whose labels include `labels`."""
        want = [f'{k}="{v}"' for k, v in labels.items()]
        return sum(v for k, v in self.metrics().items() if k.split("{")[0] == name and all(w in k for w in want))

    def channel(self) -> grpc.Channel:
        target = f"127.0.0.1:{self.ports['gRPC']}"
        if self.tls is not None:
            return grpc.secure_channel(target, grpc.ssl_channel_credentials(self.tls.pem))
        return grpc.insecure_channel(target)

    def export(self, channel: grpc.Channel, body: bytes, *, auth: bool = True) -> grpc.StatusCode:
        """One raw gRPC Export call (the body need not be a valid request); its status code."""
        call = channel.unary_unary(EXPORT_METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        metadata = (("authorization", f"Bearer {self.token}"),) if auth and self.token is not None else None
        try:
            call(body, timeout=15, metadata=metadata)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    def settled(self) -> bool:
        m = self.metrics()
        return m.get("fluo_buffered_spans", 1) == 0 and m.get("fluo_pending_spans", 1) == 0

    # -- stopping it

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def __enter__(self) -> Serve:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.kill9()


# -- traces to send ---------------------------------------------------------------------


def trace_request(trace_number: int, spans: int, *, name: str = "step", salt: int = 0) -> ExportTraceServiceRequest:
    """One trace of `spans` spans (a root and its children) with a trace id made from its number."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    attr = rs.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", "load"
    ss = rs.scope_spans.add()
    tid = (salt << 64 | trace_number + 1).to_bytes(16, "big")
    start = time.time_ns()
    for i in range(spans):
        sp = ss.spans.add()
        sp.trace_id = tid
        sp.span_id = (i + 1).to_bytes(8, "big")
        if i:
            sp.parent_span_id = (1).to_bytes(8, "big")
        sp.name = name
        sp.start_time_unix_nano = start + i
        sp.end_time_unix_nano = start + i + 1000
    return req


# -- fuzzing the receivers ------------------------------------------------------------------


@dataclass
class ReceiverFuzz:
    inputs: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # answers outside 2xx/4xx (OK/INVALID_ARGUMENT for gRPC)
    message_problems: list[str] = field(default_factory=list)  # error messages that are not one line
    rss_start: int = 0
    rss_max: int = 0
    alive: bool = True


_HTTP_VARIANTS = ("as sent", "gzip", "claims gzip", "wrong type")


def fuzz_receivers(serve: Serve, examples: int, random_seed: int = 0) -> ReceiverFuzz:
    """Random and mutated OTLP bodies at both receivers: every answer must be 2xx/4xx (OK/INVALID_ARGUMENT)."""
    out = ReceiverFuzz(rss_start=serve.rss())
    out.rss_max = out.rss_start
    channel = serve.channel()
    bodies = st.one_of(json_bodies().map(lambda b: (JSON, b)), protobuf_bodies().map(lambda b: (PROTOBUF, b)))

    @seed(random_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    @given(bodies, st.sampled_from(["http", "grpc"]), st.sampled_from(_HTTP_VARIANTS))
    def send(body: tuple[str, bytes], transport: str, variant: str) -> None:
        ctype, data = body
        out.inputs += 1
        if transport == "grpc":
            code = serve.export(channel, data)
            out.answers[f"grpc {code.name}"] += 1
            if code not in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT):
                out.problems.append(f"gRPC {code.name} for {data[:60]!r}")
        else:
            headers: dict[str, str] = {}
            if variant == "gzip":
                data, headers = gzip.compress(data), {"Content-Encoding": "gzip"}
            elif variant == "claims gzip":
                headers = {"Content-Encoding": "gzip"}
            elif variant == "wrong type":
                ctype = "text/plain"
            answer = serve.post(data, ctype, headers)
            out.answers[f"http {answer.status}"] += 1
            if not (200 <= answer.status < 300 or 400 <= answer.status < 500):
                out.problems.append(f"HTTP {answer.status} for {variant} {data[:60]!r}")
            elif answer.status >= 400 and answer.headers.get("Content-Type", "").startswith(JSON):
                message = json.loads(answer.body).get("message", "")
                if not message or "\n" in message:
                    out.message_problems.append(f"HTTP {answer.status} message is not one line: {message!r}")
        if out.inputs % 25 == 0:
            out.rss_max = max(out.rss_max, serve.rss())

    try:
        send()
    finally:
        channel.close()
    out.alive = serve.alive() and serve.request("/healthz").status == 200
    out.rss_max = max(out.rss_max, serve.rss())
    return out


# -- overload with the OpenTelemetry SDK --------------------------------------------------


class CountingExporter(SpanExporter):
    """Wraps an SDK span exporter and counts the spans it delivered and gave up on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.delivered = 0
        self.dropped = 0
        self.delivered_traces: set[str] = set()  # trace ids with at least one span delivered
        self.lock = threading.Lock()

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        result: SpanExportResult = self.inner.export(spans)
        with self.lock:
            if result == SpanExportResult.SUCCESS:
                self.delivered += len(spans)
                self.delivered_traces.update(f"{s.context.trace_id:032x}" for s in spans)
            else:
                self.dropped += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


def sdk_exporter(serve: Serve, protocol: str, timeout: float = 120.0) -> CountingExporter:
    headers = {"authorization": f"Bearer {serve.token}"} if serve.token is not None else None
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        creds = grpc.ssl_channel_credentials(serve.tls.pem) if serve.tls is not None else None
        inner: Any = GrpcExporter(
            endpoint=f"127.0.0.1:{serve.ports['gRPC']}",
            insecure=serve.tls is None,
            credentials=creds,
            headers=headers,
            timeout=timeout,
        )
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        inner = HttpExporter(
            endpoint=serve.url("/v1/traces"),
            headers=headers,
            timeout=timeout,
            certificate_file=str(serve.tls.cert) if serve.tls is not None else None,
        )
    return CountingExporter(inner)


@dataclass
class SdkSender:
    """One service sending traces through a TracerProvider and a batching processor, counted."""

    exporter: CountingExporter
    service: str
    traces: list[str] = field(default_factory=list)
    spans: int = 0

    def __post_init__(self) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.provider = TracerProvider(resource=Resource.create({"service.name": self.service}), shutdown_on_exit=False)
        # a queue that never overflows: every span the SDK takes is either delivered or counted as dropped
        self.provider.add_span_processor(
            BatchSpanProcessor(
                self.exporter, max_queue_size=1_000_000, schedule_delay_millis=50, max_export_batch_size=128
            )
        )
        self.tracer = self.provider.get_tracer("fluo.reliability")

    def trace(self, spans: int) -> None:
        with self.tracer.start_as_current_span("request") as root:
            for _ in range(spans - 1):
                with self.tracer.start_as_current_span("step"):
                    pass
        self.spans += spans
        self.traces.append(f"{root.get_span_context().trace_id:032x}")

    def close(self, timeout: float) -> None:
        self.provider.force_flush(int(timeout * 1000))
        self.provider.shutdown()


def heavy_rules(folder: Path, count: int) -> Path:
    """`count` quadratic rules (each within the default cost limit) and one that fires on every trace."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["rule every_trace { detect trace.spans.count() > 0 }"]
    lines += [
        f"rule heavy_{i} {{ expect trace.spans.all(trace.spans.where(duration >= {i}ns).count() < 1000000) }}"
        for i in range(count)
    ]
    (folder / "load.fluo").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


CALIBRATION_SALT = 0xCA1


@dataclass
class Overload:
    sustainable: float = 0.0  # spans per second the evaluator keeps up with
    offered: float = 0.0  # spans per second the senders produced
    seconds: float = 0.0
    sent: int = 0
    received: int = 0
    sdk_dropped: int = 0
    refused: int = 0  # requests answered 429 / UNAVAILABLE (with RetryInfo)
    traces_sent: int = 0
    traces_delivered: int = 0  # traces with at least one span the SDK delivered
    traces_with_signal: int = 0  # of those, traces whose `every_trace` signal is in SQLite
    traces_evaluated_not_delivered: int = 0  # signals for traces the SDK never delivered: must be 0
    max_buffered: float = 0.0
    max_pending: float = 0.0
    rss_start: int = 0
    rss_max: int = 0
    drain_seconds: float = 0.0

    @property
    def lost(self) -> int:
        return self.sent - self.received


def _calibration_ids(ids: set[str]) -> set[str]:
    return {t for t in ids if t.startswith(f"{CALIBRATION_SALT:016x}")}


def calibrate(serve: Serve, spans_per_trace: int, traces: int = 20) -> float:
    """Spans per second of evaluation time, from a batch of traces sent at once."""
    before = serve.total("fluo_trace_evaluation_seconds_sum")
    evaluated = serve.total("fluo_traces_evaluated_total")
    for i in range(traces):
        body = trace_request(i, spans_per_trace, salt=CALIBRATION_SALT).SerializeToString()
        assert serve.post(body, PROTOBUF).status == 200
    wait_for(lambda: serve.total("fluo_traces_evaluated_total") >= evaluated + traces, 60, "calibration traces")
    busy = serve.total("fluo_trace_evaluation_seconds_sum") - before
    return traces * spans_per_trace / max(busy, 1e-6)


def overload(
    serve: Serve,
    db: Path,
    *,
    factor: float = 10.0,
    seconds: float = 2.0,
    senders: int = 4,
    spans_per_trace: int = 20,
    drain_timeout: float = 180.0,
    min_spans: int = 0,
    max_seconds: float = 20.0,
) -> Overload:
    """`factor` times the sustainable rate from several SDK senders (half gRPC, half HTTP) for `seconds`, and on
    until `min_spans` are sent (at most `max_seconds` in all): on a loaded machine the calibrated rate is low, and
    `seconds` of it may not even fill the server's pending cap, which is then never shown refusing."""
    out = Overload(seconds=seconds, rss_start=serve.rss())
    out.sustainable = calibrate(serve, spans_per_trace)
    received_before = serve.total("fluo_spans_received_total")
    refused_before = serve.total("fluo_export_requests_total", outcome="refused")
    group = [SdkSender(sdk_exporter(serve, "grpc" if i % 2 == 0 else "http"), f"sender-{i}") for i in range(senders)]
    per_sender = factor * out.sustainable / senders
    stop = threading.Event()

    def produce(sender: SdkSender) -> None:
        started = time.monotonic()
        while not stop.is_set():
            due = started + sender.spans / per_sender
            if (left := due - time.monotonic()) > 0:
                time.sleep(min(left, 0.05))
                continue
            sender.trace(spans_per_trace)

    def watch() -> None:
        while not stop.is_set():
            with suppress(*_TRANSIENT):
                m = serve.metrics()
                out.max_buffered = max(out.max_buffered, m.get("fluo_buffered_spans", 0))
                out.max_pending = max(out.max_pending, m.get("fluo_pending_spans", 0))
                out.rss_max = max(out.rss_max, serve.rss())
            time.sleep(0.1)

    threads = [threading.Thread(target=produce, args=(s,)) for s in group]
    watcher = threading.Thread(target=watch)
    started = time.monotonic()
    for t in [*threads, watcher]:
        t.start()
    time.sleep(seconds)
    while sum(s.spans for s in group) < min_spans and time.monotonic() - started < max_seconds:
        time.sleep(0.05)
    stop.set()
    produced = time.monotonic() - started  # the offered rate is over the time asked to produce, not the joins
    for t in threads:
        t.join(30)
    out.sent = sum(s.spans for s in group)
    out.traces_sent = sum(len(s.traces) for s in group)
    out.offered = out.sent / produced
    stop.clear()
    watcher = threading.Thread(target=watch)
    watcher.start()
    closers = [threading.Thread(target=s.close, args=(drain_timeout,)) for s in group]
    for t in closers:
        t.start()
    for t in closers:
        t.join(drain_timeout + 10)
    out.sdk_dropped = sum(s.exporter.dropped for s in group)
    with suppress(*_TRANSIENT):
        wait_for(
            lambda: (
                serve.total("fluo_spans_received_total") - received_before >= out.sent - out.sdk_dropped
                and serve.settled()
            ),
            drain_timeout,
            "the backlog to drain",
        )
    stop.set()
    watcher.join(10)
    out.drain_seconds = time.monotonic() - started - produced
    out.received = int(serve.total("fluo_spans_received_total") - received_before)
    out.refused = int(serve.total("fluo_export_requests_total", outcome="refused") - refused_before)
    wait_for(lambda: serve.total("fluo_sink_queue") == 0, 30, "the sinks to drain")
    delivered = {t for s in group for t in s.exporter.delivered_traces}
    with sqlite3.connect(db) as conn:
        stored = {r[0] for r in conn.execute("SELECT trace_id FROM signals WHERE rule = 'every_trace'")}
    stored -= _calibration_ids(stored)
    out.traces_delivered = len(delivered)
    out.traces_with_signal = len(delivered & stored)
    out.traces_evaluated_not_delivered = len(stored - delivered)
    return out


# -- crash ------------------------------------------------------------------------------------


@dataclass
class Crash:
    reported_written: int = 0  # signals the runtime said it had written to SQLite before the kill
    rows_after_crash: int = 0
    integrity: str = ""
    unreadable_rows: int = 0
    accepted_not_evaluated: int = 0  # traces received but not evaluated when killed: what a crash loses
    restarted_cleanly: bool = False
    rows_after_restart: int = 0
    exit_code_after_restart: int | None = None

    @property
    def lost(self) -> int:
        return max(0, self.reported_written - self.rows_after_crash)


def crash(folder: Path, rules: Path, load_seconds: float = 2.0) -> Crash:
    """Send load, `kill -9` the runtime mid-stream, check the SQLite file, restart on it."""
    db = folder / "signals.db"
    out = Crash()
    args = ["--rules", str(rules), "--db", str(db), "--trace-idle", "100ms"]
    serve = Serve(args, folder).start()
    stop = threading.Event()
    sent = [0]

    def load() -> None:
        while not stop.is_set():
            with suppress(*_TRANSIENT):
                serve.post(trace_request(sent[0], 5, salt=0xC4A5).SerializeToString(), PROTOBUF)
                sent[0] += 1

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: serve.total("fluo_sink_signals_written_total", sink="sqlite") >= 50, 60, "signals written")
        time.sleep(load_seconds)
        m = serve.metrics()
        out.reported_written = int(m.get('fluo_sink_signals_written_total{sink="sqlite"}', 0))
        assembled = sum(v for k, v in m.items() if k.startswith("fluo_traces_assembled_total"))
        out.accepted_not_evaluated = int(
            assembled - m.get("fluo_traces_evaluated_total", 0) + m.get("fluo_buffered_traces", 0)
        )
        serve.kill9()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        if serve.alive():
            serve.kill9()
    with sqlite3.connect(db) as conn:
        out.integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        rows = conn.execute("SELECT json FROM signals").fetchall()
    out.rows_after_crash = len(rows)
    for (text,) in rows:
        try:
            json.loads(text)["rule"]
        except (ValueError, KeyError, TypeError):
            out.unreadable_rows += 1
    again = Serve(args, folder)
    try:
        again.start()
        out.restarted_cleanly = True
        assert again.post(trace_request(0, 3, salt=0xAF7E).SerializeToString(), PROTOBUF).status == 200
        wait_for(
            lambda: again.total("fluo_sink_signals_written_total", sink="sqlite") >= 1, 30, "a signal after restart"
        )
        out.exit_code_after_restart = again.terminate()
    finally:
        if again.alive():
            again.kill9()
    with sqlite3.connect(db) as conn:
        out.rows_after_restart = conn.execute("SELECT count(*) FROM signals").fetchone()[0]
    return out
