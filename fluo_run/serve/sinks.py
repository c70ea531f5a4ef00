"""Where signals go: SQLite, JSON lines, a webhook, OTLP logs, or a callback.

Each sink runs on its own thread behind a bounded queue, so a slow or failing
sink never holds up ingest or evaluation. A signal a sink cannot take (queue
full) or cannot deliver (after its retries) is counted in
`fluo_sink_signals_dropped{sink,reason}` and logged, never lost silently.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from .metrics import Metrics
from .store import SignalStore

log = logging.getLogger("fluo.serve")

Batch = list[dict[str, Any]]
MAX_BATCH = 500


class SinkError(Exception):
    """A batch a sink could not deliver; the message says why, in one line."""


class Sink:
    """Delivers batches of signals (LANGUAGE.md §7 JSON objects); raises SinkError when it cannot."""

    name = "sink"

    @property
    def label(self) -> str:
        """The sink and where it delivers, for the startup log."""
        return self.name

    def open(self) -> None:
        """Called on the sink's own thread before the first batch."""

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Called on the sink's own thread after the last batch."""


class SqliteSink(Sink):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store: SignalStore | None = None

    @property
    def label(self) -> str:
        return f"sqlite ({self.path})"

    def open(self) -> None:
        self.store = SignalStore(self.path)

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        assert self.store is not None
        try:
            self.store.add(batch)
        except Exception as exc:
            raise SinkError(f"cannot write to {self.path}: {exc}") from exc

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


class JsonlSink(Sink):
    """One signal per line, to a file (appended) or `-` for standard output."""

    name = "jsonl"

    def __init__(self, target: str) -> None:
        self.target = target
        self.out: TextIO | None = None

    @property
    def label(self) -> str:
        return f"jsonl ({'stdout' if self.target == '-' else self.target})"

    def open(self) -> None:
        if self.target == "-":
            self.out = sys.stdout
        else:
            self.out = open(self.target, "a", encoding="utf-8")  # noqa: SIM115 - held for the sink's life

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        assert self.out is not None
        try:
            self.out.write("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in batch))
            self.out.flush()
        except OSError as exc:
            raise SinkError(f"cannot write to {self.target}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self.out is not None and self.out is not sys.stdout:
            self.out.close()


class WebhookSink(Sink):
    """POSTs `{"signals": [...]}` (at most 100 per request); retries 429, 5xx and network errors with backoff."""

    name = "webhook"
    ATTEMPTS = 6  # the first and 5 retries, waiting 0.25, 0.5, 1, 2 and 4 s
    FIRST_BACKOFF = 0.25
    MAX_BACKOFF = 4.0
    PER_REQUEST = 100

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> None:
        self.url = url
        self.headers = {"Content-Type": "application/json", "User-Agent": "fluo-serve", **(headers or {})}
        self.timeout = timeout

    @property
    def label(self) -> str:
        return f"webhook ({self.url})"

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        for i in range(0, len(batch), self.PER_REQUEST):
            self._post(batch[i : i + self.PER_REQUEST], stopping)

    def _post(self, signals: Batch, stopping: threading.Event) -> None:
        body = json.dumps({"signals": signals}, ensure_ascii=False).encode()
        backoff = self.FIRST_BACKOFF
        problem = ""
        tried = 0
        for attempt in range(self.ATTEMPTS):
            tried += 1
            request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
                exc.close()
                if exc.code != 429 and exc.code < 500:
                    raise SinkError(f"{self.url} refused the signals: {problem}") from None
            except (urllib.error.URLError, OSError) as exc:
                problem = str(getattr(exc, "reason", exc))
            if attempt + 1 < self.ATTEMPTS and not stopping.is_set():
                log.warning("webhook %s: %s; retrying in %.2fs", self.url, problem, backoff)
                if stopping.wait(backoff):
                    continue  # shutting down: one more immediate attempt, then give up
                backoff = min(backoff * 2, self.MAX_BACKOFF)
            elif stopping.is_set():
                break
        raise SinkError(f"{self.url}: {problem} after {tried} attempt{'s' if tried > 1 else ''}")


_OTEL_SEVERITY = {"info": 9, "warning": 13, "error": 17, "critical": 21}


class OtlpLogsSink(Sink):
    """Signals as OTLP log records (event `fluo.signal`), linked to their trace, through the OTel SDK's exporter."""

    name = "otlp_logs"

    def __init__(self, endpoint: str, protocol: str = "http") -> None:
        self.endpoint = endpoint
        self.protocol = protocol
        self.exporter: Any = None
        self.logger: Any = None
        self.collected: list[Any] = []

    @property
    def label(self) -> str:
        return f"otlp logs ({self.protocol} {self.endpoint})"

    def open(self) -> None:
        from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
        from opentelemetry.sdk.resources import Resource

        collected = self.collected

        class Collect(LogRecordProcessor):
            def on_emit(self, log_record: Any) -> None:
                collected.append(log_record)

            def shutdown(self) -> None:
                pass

            def force_flush(self, timeout_millis: int = 30000) -> bool:
                return True

        if self.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter

            target = self.endpoint.removeprefix("http://").removeprefix("https://")
            self.exporter = GrpcExporter(endpoint=target, insecure=not self.endpoint.startswith("https://"))
        else:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter

            url = self.endpoint
            if not url.rstrip("/").endswith("/v1/logs"):
                url = url.rstrip("/") + "/v1/logs"
            self.exporter = HttpExporter(endpoint=url)
        provider = LoggerProvider(resource=Resource.create({"service.name": "fluo"}), shutdown_on_exit=False)
        provider.add_log_record_processor(Collect())
        self.logger = provider.get_logger("fluo.serve")

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        from opentelemetry.sdk._logs.export import LogRecordExportResult
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

        from .store import parse_time

        for s in batch:
            context = None
            trace_id = s.get("trace_id")
            if trace_id:
                span_ids = s.get("span_ids") or ["0" * 15 + "1"]
                ctx = SpanContext(int(trace_id, 16), int(span_ids[0], 16), is_remote=True, trace_flags=TraceFlags(1))
                context = set_span_in_context(NonRecordingSpan(ctx))
            attributes: dict[str, Any] = {
                "fluo.rule": s["rule"],
                "fluo.severity": s["severity"],
                "fluo.span_ids": list(s.get("span_ids") or []),
                "fluo.observed": json.dumps(s.get("observed") or {}, ensure_ascii=False),
            }
            for key in ("trace_id", "window_start", "window_end", "description"):
                if s.get(key):
                    attributes[f"fluo.{key}"] = s[key]
            if s.get("tags"):
                attributes["fluo.tags"] = list(s["tags"])
            self.logger.emit(
                timestamp=parse_time(s["time"]),
                context=context,
                severity_number=_severity_number(s["severity"]),
                severity_text=s["severity"].upper(),
                body=s["message"],
                attributes=attributes,
                event_name="fluo.signal",
            )
        records, self.collected[:] = list(self.collected), []
        if self.exporter.export(records) != LogRecordExportResult.SUCCESS:
            raise SinkError(f"OTLP logs export to {self.endpoint} failed")

    def close(self) -> None:
        if self.exporter is not None:
            self.exporter.shutdown()


def _severity_number(severity: str) -> Any:
    from opentelemetry._logs import SeverityNumber

    return SeverityNumber(_OTEL_SEVERITY.get(severity, 9))


class CallbackSink(Sink):
    """Hands each batch to a function (the demo prints them as they arrive)."""

    name = "callback"

    def __init__(self, callback: Callable[[Batch], None], name: str = "callback") -> None:
        self.callback = callback
        self.name = name

    def write(self, batch: Batch, stopping: threading.Event) -> None:
        self.callback(batch)


class SinkWorker:
    """One sink on its own thread, fed through a bounded queue."""

    LOG_EVERY = 10.0

    def __init__(self, sink: Sink, metrics: Metrics, capacity: int) -> None:
        self.sink = sink
        self.metrics = metrics
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=capacity)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"fluo-sink-{sink.name}", daemon=True)
        self.opened = threading.Event()
        self.open_error: str | None = None
        self._last_drop_log = 0.0
        self._dropped_since_log = 0
        metrics.sink_queue.labels(sink.name).set_function(self.queue.qsize)

    def start(self) -> None:
        self.thread.start()
        self.opened.wait(10)

    def put(self, signals: Sequence[dict[str, Any]]) -> None:
        for s in signals:
            try:
                self.queue.put_nowait(s)
            except queue.Full:
                self._dropped(1, "queue_full", "its queue is full")

    def _dropped(self, n: int, reason: str, why: str) -> None:
        self.metrics.sink_dropped.labels(self.sink.name, reason).inc(n)
        self._dropped_since_log += n
        now = time.monotonic()
        if now - self._last_drop_log >= self.LOG_EVERY or reason != "queue_full":
            log.error("sink %s dropped %d signal(s): %s", self.sink.name, self._dropped_since_log, why)
            self._dropped_since_log = 0
            self._last_drop_log = now

    def _run(self) -> None:
        try:
            self.sink.open()
        except Exception as exc:
            self.open_error = f"cannot open sink {self.sink.name}: {exc}"
        finally:
            self.opened.set()
        done = False
        while not done:
            item = self.queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < MAX_BATCH:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    done = True
                    break
                batch.append(more)
            if self.open_error is not None:
                self._dropped(len(batch), "failed", self.open_error)
                continue
            try:
                self.sink.write(batch, self.stopping)
                self.metrics.sink_written.labels(self.sink.name).inc(len(batch))
            except SinkError as exc:
                self._dropped(len(batch), "failed", str(exc))
            except Exception as exc:  # a bug in a sink must not stop the others
                self._dropped(len(batch), "failed", f"{type(exc).__name__}: {exc}")
        try:
            self.sink.close()
        except Exception as exc:
            log.warning("sink %s did not close cleanly: %s", self.sink.name, exc)

    def close(self, timeout: float) -> None:
        """Deliver what is queued (retries cut short), then stop; give up after `timeout` seconds."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.queue.put(None, timeout=0.1)
                break
            except queue.Full:
                if time.monotonic() > deadline:
                    break
        self.thread.join(max(0.0, deadline - time.monotonic()))
        if self.thread.is_alive():
            log.error(
                "sink %s did not finish within %.0fs; %d signal(s) undelivered",
                self.sink.name,
                timeout,
                self.queue.qsize(),
            )


class SinkSet:
    """Every configured sink; `publish` never blocks."""

    def __init__(self, sinks: Sequence[Sink], metrics: Metrics, capacity: int) -> None:
        self.workers = [SinkWorker(s, metrics, capacity) for s in sinks]

    def start(self) -> list[str]:
        """Start every sink; the problems of those that could not open (each one line)."""
        for w in self.workers:
            w.start()
        return [w.open_error for w in self.workers if w.open_error is not None]

    def publish(self, signals: Sequence[dict[str, Any]]) -> None:
        if signals:
            for w in self.workers:
                w.put(signals)

    def close(self, timeout: float = 15.0) -> None:
        for w in self.workers:
            w.close(timeout)
