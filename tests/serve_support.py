"""What the runtime tests share: an in-process runtime, SDK senders, loopback receivers, a `fluo serve` process."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from fluo_run.serve.config import ServeConfig
from fluo_run.serve.runtime import RuntimeThread

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_RULES = ROOT / "examples" / "rules"
EXAMPLE_TRACES = ROOT / "examples" / "traces"
MS = 1_000_000


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key: (cert.pem, key.pem) in `tmp_path`."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until `condition()` is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def config(tmp_path: Path, **overrides: Any) -> ServeConfig:
    """A loopback runtime on free ports with short assembly times and only the sinks asked for."""
    base: dict[str, Any] = dict(
        grpc=("127.0.0.1", 0),
        http=("127.0.0.1", 0),
        rules=[EXAMPLE_RULES],
        trace_idle=0.2,
        reload_interval=0,
        db=None,
    )
    base.update(overrides)
    return ServeConfig(**base)


def retry_delay(error: Any) -> int:
    """The seconds a retryable gRPC refusal (a `grpc.RpcError`) asks its sender to wait: from the `RetryInfo` in
    the `google.rpc.Status` of `grpc-status-details-bin` (whose code and message must be the call's), where the
    OTLP specification and the Collector read it; the Python SDK's trailer (`google.rpc.retryinfo-bin`) must agree."""
    from google.rpc.error_details_pb2 import RetryInfo  # type: ignore[import-untyped]
    from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]

    trailers = dict(error.trailing_metadata() or ())
    assert "grpc-status-details-bin" in trailers, f"no status details in {sorted(trailers)}"
    status = Status.FromString(trailers["grpc-status-details-bin"])
    assert (status.code, status.message) == (error.code().value[0], error.details())
    (detail,) = status.details
    info = RetryInfo()
    assert detail.Unpack(info), detail.type_url
    assert RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]) == info
    assert info.retry_delay.nanos == 0
    return int(info.retry_delay.seconds)


def settled(rt: RuntimeThread) -> bool:
    """Nothing buffered and nothing awaiting evaluation."""
    return bool(rt.call(lambda: len(rt.runtime.buffer)) == 0 and rt.runtime.evaluator.idle())


def metric(rt: RuntimeThread, name: str, **labels: str) -> float:
    value = rt.runtime.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else float(value)


def post(url: str, body: bytes, content_type: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """POST `body`; the status, headers and body of the answer, whatever the status."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type, **headers}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


# ---------------------------------------------------------------------------
# OpenTelemetry SDK senders


class Sender:
    """One TracerProvider per service, exporting with the SDK's OTLP exporter (gRPC or HTTP/protobuf)."""

    def __init__(self, protocol: str, endpoint: str, headers: dict[str, str] | None = None, **exporter: Any) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.protocol = protocol
        self.endpoint = endpoint
        self.headers = headers
        self.exporter_args = exporter
        self.providers: dict[str, Any] = {}
        self._tp = TracerProvider
        self._resource = Resource
        self._processor = BatchSpanProcessor
        self._direct: Any = None
        self.sent = 0

    def _exporter(self) -> Any:
        if self.protocol in ("grpc", "grpc-tls"):
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

            insecure = self.protocol == "grpc"
            return Grpc(endpoint=self.endpoint, insecure=insecure, headers=self.headers, **self.exporter_args)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

        return Http(endpoint=f"{self.endpoint}/v1/traces", headers=self.headers, **self.exporter_args)

    def provider(self, service: str) -> Any:
        p = self.providers.get(service)
        if p is None:
            p = self._tp(resource=self._resource.create({"service.name": service}), shutdown_on_exit=False)
            p.add_span_processor(self._processor(self._exporter(), schedule_delay_millis=50, max_export_batch_size=256))
            self.providers[service] = p
        return p

    @contextmanager
    def span(self, service: str, name: str, *, error: bool = False, **attributes: Any) -> Iterator[Any]:
        from opentelemetry.trace import Status, StatusCode

        tracer = self.provider(service).get_tracer("fluo.tests")
        with tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span
            if error:
                span.set_status(Status(StatusCode.ERROR, "failed"))
        self.sent += 1

    def storm(self, attempts: int = 55) -> str:
        """A login that retries auth `attempts` times: fires auth_retry_storm and auth_span_budget."""
        with self.span("frontend", "POST /login") as root:
            for i in range(attempts):
                with self.span("auth", "login", error=True, attempt=i):
                    pass
        return f"{root.get_span_context().trace_id:032x}"

    def payment(self, amount: int, *, fraud_check: bool) -> str:
        with self.span("checkout", "checkout") as root:
            if fraud_check:
                with self.span("fraud", "payment.fraud_check"):
                    pass
            with self.span("payment", "payment.charge_card", amount=amount):
                pass
        return f"{root.get_span_context().trace_id:032x}"

    def healthy(self) -> str:
        with self.span("frontend", "GET /login") as root, self.span("auth", "login"):
            pass
        return f"{root.get_span_context().trace_id:032x}"

    def export(self, spans: Sequence[Any]) -> None:
        """Finished SDK spans (of any services and traces) sent in one export request, as a span processor sends
        a batch: a test chooses which spans go together and in what order."""
        from opentelemetry.sdk.trace.export import SpanExportResult

        if self._direct is None:
            self._direct = self._exporter()
        result = self._direct.export(spans)
        assert result is SpanExportResult.SUCCESS, f"{self.protocol} export of {len(spans)} span(s): {result}"
        self.sent += len(spans)

    def flush(self) -> None:
        for p in self.providers.values():
            assert p.force_flush(30_000)

    def close(self) -> None:
        for p in self.providers.values():
            p.shutdown()
        if self._direct is not None:
            self._direct.shutdown()


# ---------------------------------------------------------------------------
# loopback HTTP receivers (webhook, OTLP logs)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class LoopbackServer:
    """An aiohttp server on 127.0.0.1 in a thread; records POSTs and answers with `status_of(n)` (n from 0) and
    the body `body_of(n)`,
    after `delay_of(n)` seconds spent awaiting, so that the server's loop goes on (a `time.sleep` in
    `status_of` would stop it: connections arriving then reached it only after its shutdown)."""

    status_of: Callable[[int], int] = lambda n: 200
    delay_of: Callable[[int], float] = lambda n: 0.0
    body_of: Callable[[int], bytes] = lambda n: b""
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        n = len(self.requests)
        self.requests.append(Recorded(request.path, dict(request.headers), body))
        if delay := self.delay_of(n):
            await asyncio.sleep(delay)
        return web.Response(status=self.status_of(n), body=self.body_of(n), content_type="application/x-protobuf")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _stop(self, runner: web.AppRunner) -> None:
        """The runner cleaned up, then any connection it left: one accepted as the listener closed (a sink
        cut short at its shutdown deadline reconnecting) got its protocol only after the runner's shutdown
        had closed the others, and was left to the garbage collector, an unclosed-transport ResourceWarning
        in whichever test ran next (a webhook redirect test failed so, about 1 run of 20)."""
        server = runner.server
        await runner.cleanup()
        # an accept in flight reaches the server in two loop turns (its task makes the transport, which then
        # calls connection_made): a few turns, each closing what has arrived
        for _ in range(3):
            await asyncio.sleep(0.01)
            for handler in [] if server is None else list(server.connections):
                handler.force_close()

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self._stop(self.runner), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# ---------------------------------------------------------------------------
# `fluo serve` as a process


class ServeProcess:
    """`python -m fluo_run.cli serve ...` with its stderr read line by line on a thread."""

    PORTS = re.compile(r"OTLP/(HTTP|gRPC) listening on (?:https?://)?[^ ]*:(\d+)")

    def __init__(
        self,
        args: Sequence[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        open_files: tuple[int, int] | None = None,
    ) -> None:
        """`open_files`: the process's soft and hard open-file limits (`ulimit -n`), set in the child alone."""
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fluo_run.cli", "serve", *args],
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=None if open_files is None else lambda: resource.setrlimit(resource.RLIMIT_NOFILE, open_files),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self.ports: dict[str, int] = {}
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))

    def expect(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """The next log line matching `pattern`; lines before it are kept in `log`."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no log line matching {pattern!r}; got:\n" + "\n".join(self.log))
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    raise AssertionError(
                        f"fluo serve exited {self.proc.returncode} before {pattern!r}:\n" + "\n".join(self.log)
                    ) from None
                continue
            self.log.append(line)
            for kind, port in self.PORTS.findall(line):
                self.ports[kind] = int(port)
            m = rx.search(line)
            if m:
                return m

    def started(self) -> ServeProcess:
        self.expect(r"ready;")
        return self

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['HTTP']}"

    def metric(self, sample: str) -> float | None:
        """A sample of its `/metrics` page, named as the page writes it (`fluo_x_total{reason="idle"}`); None if
        the page has none."""
        text = urllib.request.urlopen(f"{self.http_url}/metrics", timeout=5).read().decode()
        values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(sample + " ")]
        return values[0] if values else None

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(5)
        while not self.lines.empty():
            self.log.append(self.lines.get())
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()
        self.proc.stdout.close()
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        """Kill a server the test left running (it failed, or timed out waiting); bounded, as every test is."""
        if self.proc.poll() is None:
            self.kill()


# ---------------------------------------------------------------------------
# a gRPC call as raw HTTP/2 frames, for what gRPC's own client will not send (a grpc-encoding with broken data)


def _h2_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _hpack_literal(name: str, value: str) -> bytes:
    """A header as HPACK's literal without indexing, new name, no Huffman (RFC 7541 §6.2.2); short strings only."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def raw_grpc_call(port: int, path: str, message: bytes, *, encoding: str, compressed: bool = True) -> None:
    """Send one gRPC call over a fresh HTTP/2 connection, its message framed as given (the compressed flag
    set or not) under `grpc-encoding: ENCODING`, and read until the call is answered or reset (or 10 s)."""
    headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
               ("content-type", "application/grpc"), ("te", "trailers"), ("grpc-encoding", encoding)]  # fmt: skip
    block = b"".join(_hpack_literal(k, v) for k, v in headers)
    data = bytes([int(compressed)]) + len(message).to_bytes(4, "big") + message
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            + _h2_frame(0x4, 0, 0, b"")  # SETTINGS
            + _h2_frame(0x1, 0x4, 1, block)  # HEADERS, END_HEADERS
            + _h2_frame(0x0, 0x1, 1, data)  # DATA, END_STREAM
        )
        got = b""
        while True:
            while len(got) >= 9 and len(got) >= 9 + int.from_bytes(got[:3], "big"):
                size, kind, flags, stream = int.from_bytes(got[:3], "big"), got[3], got[4], got[5:9]
                got = got[9 + size :]
                if int.from_bytes(stream, "big") == 1 and (kind == 0x3 or (kind == 0x1 and flags & 0x1)):
                    return  # RST_STREAM, or the trailers (HEADERS with END_STREAM)
            chunk = sock.recv(65536)
            if not chunk:
                return
            got += chunk
