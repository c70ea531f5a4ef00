"""The runtime: receivers, trace assembly, the evaluator and the sinks, started and stopped together.

`Runtime` lives on an asyncio loop (both receivers share it, so assembly needs
no locks); evaluation and each sink have threads of their own. `serve` runs one
until SIGTERM/SIGINT, reloading rules on SIGHUP and when the files change.
`RuntimeThread` runs one in the background, for the demo and for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import ipaddress
import json
import logging
import math
import os
import resource
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from aiohttp import web

from fluo_lang.otlp import NO_NATIVE_READER, native_reader
from fluo_lang.trace import Span

from .assembly import EVICTIONS, Completed, TraceBuffer
from .config import ServeConfig, tls_context
from .evaluator import Evaluator
from .metrics import Metrics
from .receivers import (
    GRPC_MAX_CONCURRENT_RPCS,
    Admission,
    ConnectionCap,
    Intake,
    ProtocolLog,
    add_trace_service,
    grpc_interceptors,
    http_routes,
    metrics_handler,
)
from .rules import RuleSet, RuleSetError, RuleWatcher, load_rule_set
from .sinks import JsonlSink, OtlpLogsSink, Sink, SinkSet, SinkWorker, SqliteSink, WebhookSink, overall
from .state import StateError, load_remembered, remembered_path, save_remembered

log = logging.getLogger("fluo.serve")

EVICTION_LOG_INTERVAL = 10.0
RECEIVER_DRAIN = 1.0
"""Seconds at shutdown in which exports begun before it may finish arriving and being decoded (their traces
are then evaluated), and connections already open stay open (a request sent on one is answered 503); an
export still arriving or being decoded then is answered 503/UNAVAILABLE."""
ANSWER_MARGIN = 0.25
"""Seconds gRPC's stop gives its calls in progress, for the answers given to go out, before it cancels them."""
GRPC_CALLS_BACKSTOP = 8 * GRPC_MAX_CONCURRENT_RPCS
"""OTLP/gRPC calls gRPC itself lets in at once (its `maximum_concurrent_rpcs`): past it gRPC answers
`RESOURCE_EXHAUSTED` with no `RetryInfo`, which the Collector drops. FLUO handles `GRPC_MAX_CONCURRENT_RPCS`
and refuses the others itself, retryably and at once, without reading their message; this only bounds a
flood of calls that come faster than they are refused."""
HTTP_IDLE_TIMEOUT = 15.0
"""Seconds an OTLP/HTTP connection may sit without a whole request head: a new connection that sends
nothing or half a request line (a slowloris), or a kept-alive one between exports, is closed then.
Exporters reconnect as needed; before, such connections stayed an hour and a few thousand took every
file descriptor. Also how long a TLS handshake may take, and how long an answer may wait unread before
it is cut (`ConnectionCap`)."""
GRPC_IDLE_TIMEOUT = 15.0
"""Seconds an OTLP/gRPC connection may have no call in progress (a new one that never calls, or one
between exports) before gRPC closes it (`grpc.max_connection_idle_ms`: a GOAWAY, then the close;
exporters reconnect for their next call), and a TLS handshake may take (`grpc.server_handshake_timeout_ms`,
120 s by default). gRPC has no connection limit; before, idle connections stayed open for ever."""
ACCEPT_BACKLOG = 100
"""The HTTP listeners' `listen()` backlog, asyncio's default; asyncio also accepts up to this many
connections at a time before any of them is handed to aiohttp (and counted by `ConnectionCap`)."""
SINK_FLOOR = 0.05
"""Seconds the sinks get to close at the least, even when evaluation used the whole shutdown deadline."""
SAME_SIGNAL_WINDOW = 1.0
"""Seconds after the SIGTERM or SIGINT that began a stop in which the same signal again is the same request,
delivered twice (a wrapper such as `timeout` sends it to serve and to its process group), not "stop now"."""
EXIT_LOST = 3
"""`fluo serve`'s exit status when it stopped but lost something (see `StopReport.lost`)."""

# The cyclic collector's generation thresholds while `fluo serve` runs. Spans and
# traces form no reference cycles (reference counting frees them), yet every
# collection traverses each live one it finds, and at the default (700, 10, 10)
# a burst of buffered spans and evaluation backlog is traversed over and over:
# a quarter to a third of the server's time in `bench_serve.py`, under 5% at
# these. The young generation is collected every 10,000 net allocations instead
# of 700, the middle one every 100 young collections instead of 10: cycles (a
# few per request, from the HTTP stack) are freed a little later, nothing more;
# resident memory under sustained load is unchanged.
GC_THRESHOLDS = (10_000, 100, 10)


def _grpc_core() -> Any:
    """grpcio's own module, read as grpcio-channelz reads channelz (`grpc_server_ids`); None in another grpcio
    layout: then channelz cannot be read, and queued calls may end CANCELLED at the stop (docs/runtime.md)."""
    try:
        return importlib.import_module("grpc._cython.cygrpc")
    except ImportError:
        return None


cygrpc: Any = _grpc_core()


def log_rule_problems(exc: RuleSetError) -> None:
    for d in exc.diagnostics:
        (log.error if d.is_error else log.warning)("%s", d.format())


def configured_sinks(config: ServeConfig) -> list[Sink]:
    sinks: list[Sink] = []
    if config.db is not None:
        sinks.append(SqliteSink(config.db))
    if config.jsonl is not None:
        sinks.append(JsonlSink(config.jsonl))
    if config.webhook is not None:
        sinks.append(WebhookSink(config.webhook, config.webhook_headers))
    if config.otlp_logs is not None:
        sinks.append(OtlpLogsSink(config.otlp_logs, config.otlp_logs_protocol))
    return sinks


@dataclass
class StopReport:
    """What a shutdown did and what it lost."""

    seconds: float = 0.0
    traces_at_shutdown: int = 0
    undelivered: int = 0
    """Signals the sinks did not deliver, over the whole run (`SinkSet.close`), or at least that many."""
    traces_lost: int = 0
    windows_lost: int = 0
    signals_lost: int = 0
    """Traces and windows not evaluated, and signals not handed to the sinks, when the stop was cut short."""
    cut_short: str = ""
    """Why the stop did not run to its end: "", "the shutdown deadline", "a second signal"."""
    sinks: dict[str, str] = field(default_factory=dict)

    @property
    def lost(self) -> bool:
        return bool(self.undelivered or self.traces_lost or self.windows_lost or self.signals_lost)

    @property
    def exit_code(self) -> int:
        return EXIT_LOST if self.lost or self.cut_short == "a second signal" else 0

    def line(self) -> str:
        head = f"stopped in {self.seconds:.1f}s"
        if self.cut_short:
            head += f" (cut short by {self.cut_short})"
        parts = [f"{self.traces_at_shutdown} trace(s) evaluated at shutdown"]
        if self.traces_lost or self.windows_lost:
            parts[0] = f"{self.traces_at_shutdown} trace(s) taken for evaluation at shutdown"
            parts.append(f"{self.traces_lost} trace(s) and {self.windows_lost} window(s) not evaluated")
        if self.signals_lost:
            parts.append(f"{self.signals_lost} signal(s) not handed to the sinks")
        if self.undelivered:
            sinks = ", ".join(f"{k} {v}" for k, v in self.sinks.items())
            parts.append(f"{self.undelivered} signal(s) not delivered ({sinks})")
        elif not self.lost:
            parts.append("every signal delivered" if self.sinks else "no sink")
        tail = f"; exit {self.exit_code}" if self.exit_code else ""
        return f"{head}: " + ", ".join(parts) + tail


class StartError(Exception):
    """The runtime could not start (a port in use, a sink that cannot open); one line."""


class Runtime:
    def __init__(self, config: ServeConfig, extra_sinks: Sequence[Sink] = ()) -> None:
        config.check()
        self.config = config
        # The files' state before they are read: an edit while the rest starts is a change the watch sees.
        self.watcher = RuleWatcher(config.rules)
        self.rule_set: RuleSet = load_rule_set(config.rules, cost_limit=config.cost_limit, budget=config.eval_budget)
        self.metrics = Metrics(("http", "grpc") if config.grpc is not None else ("http",))
        self.buffer = TraceBuffer(
            trace_idle=config.trace_idle,
            max_trace_age=config.max_trace_age,
            max_spans_per_trace=config.max_spans_per_trace,
            max_buffered_spans=config.max_buffered_spans,
            max_buffered_bytes=config.max_buffer_bytes,
            late_span_memory=config.late_span_memory,
        )
        self._remembered_path = remembered_path(config.db) if config.db is not None else None
        self._restore_remembered()
        self.sinks = SinkSet([*configured_sinks(config), *extra_sinks], self.metrics, config.sink_queue)
        self.evaluator = Evaluator(
            self.rule_set.program,
            self.metrics,
            self._publish if self.sinks.workers else None,
            trace_idle=config.trace_idle,
            grace=config.grace,
            max_trace_age=config.max_trace_age,
            max_window_spans=config.max_window_spans,
        )
        self._handover_deadline: float | None = None
        self.rules_rejected = False
        """The last reload was rejected: the rule files on disk are not the rules running."""
        self.stopping = False
        self._reloading = asyncio.Lock()
        self.hup_reload: asyncio.Future[bool] | None = None
        self._abort: asyncio.Event | None = None
        self.report: StopReport | None = None
        self.admission = Admission(
            lambda: self.evaluator.pending_spans,
            config.max_pending_spans,
            self.sinks.backlog,
            fullest_sink=self.sinks.fullest,
        )
        self.intake = Intake(
            self.metrics,
            self._accept,
            self.admission,
            config.auth_token,
            config.max_body_bytes,
            prefetch=lambda: self.evaluator.program.prefetch,
            share=lambda: self.evaluator.program.prefetch_complete,
            max_inflight_bytes=config.max_inflight_bytes,
        )
        self.http_port = 0
        self.grpc_port = 0
        self.metrics_port = 0
        self._runners: list[web.AppRunner] = []
        self._listeners: list[asyncio.Server] = []
        self._caps: list[ConnectionCap] = []
        self.http_connection_limit = http_connection_limit(config.max_http_connections, http_listeners(config))
        self._closing: list[web.AppRunner] = []  # the runners `_stop_receivers` is cleaning up
        self._grpc: grpc.aio.Server | None = None
        self._grpc_stop: asyncio.Task[None] | None = None  # gRPC's stop, begun once (`_stop_grpc`)
        self._grpc_channelz: int | None = None  # the gRPC server's channelz id, when known (`grpc_calls`)
        self._grpc_calls_at_stop: int | None = None  # the calls gRPC had begun when the stop began, when known
        self._tasks: list[asyncio.Task[None]] = []
        self._late_reported = 0
        self._evicted: dict[str, int] = {}
        self._evictions_logged = 0.0
        self.started = time.monotonic()
        m = self.metrics
        m.buffered_spans.set_function(lambda: self.buffer.spans)
        m.buffered_bytes.set_function(lambda: self.buffer.bytes)
        m.buffered_traces.set_function(lambda: len(self.buffer))
        m.remembered_traces.set_function(lambda: len(self.buffer.done))
        m.pending_spans.set_function(lambda: self.evaluator.pending_spans)
        m.window_spans.set_function(lambda: self.evaluator.window_spans)
        m.buffer_capacity.set(config.max_buffered_spans)
        m.buffer_fill.set_function(lambda: self.buffer.spans / config.max_buffered_spans)
        m.window_capacity.set(config.max_window_spans)
        m.http_connections.set_function(lambda: sum(cap.open() for cap in self._caps))
        m.inflight_bytes.set_function(lambda: self.intake.bodies.held)
        m.inflight_capacity.set(config.max_inflight_bytes)
        m.reloads.labels("loaded").inc()
        m.rule_files_rejected.set_function(lambda: float(self.rules_rejected))

    def _restore_remembered(self) -> None:
        """Remember the trace ids the previous run evaluated (saved at its clean stop beside the store)."""
        path = self._remembered_path
        if path is None:
            return
        try:
            batches = load_remembered(path, time.monotonic(), self.config.late_span_memory, self.buffer.max_remembered)
        except (OSError, StateError) as exc:
            log.warning("late spans: cannot read the trace ids of the last run (%s); not remembered", exc)
            return
        self.buffer.done.restore(batches)
        if batches:
            log.info("late spans: %d trace id(s) evaluated before the restart remembered", len(self.buffer.done))

    def _save_remembered(self) -> None:
        path = self._remembered_path
        if path is None:
            return
        try:
            save_remembered(path, self.buffer.done, time.monotonic())
        except OSError as exc:
            log.warning("late spans: cannot keep the evaluated trace ids for the next start (%s)", exc)

    # -- ingest ------------------------------------------------------------------

    def _accept(self, spans: list[Span]) -> None:
        completed = self.buffer.add(spans, time.monotonic())
        late = self.buffer.late - self._late_reported
        if late:
            self.metrics.spans_late.inc(late)
            self._late_reported = self.buffer.late
        self._hand_over(completed)

    def _hand_over(self, completed: list[Completed]) -> None:
        if not completed:
            return
        m = self.metrics
        reasons: dict[str, int] = {}
        for c in completed:
            reasons[c.reason] = reasons.get(c.reason, 0) + 1
        for reason, n in reasons.items():
            m.traces_assembled.labels(reason).inc(n)
            if reason in EVICTIONS:
                m.traces_evicted.labels(reason).inc(n)
                self._evicted[reason] = self._evicted.get(reason, 0) + n
        if self._evicted and time.monotonic() - self._evictions_logged >= EVICTION_LOG_INTERVAL:
            caps = {"trace_span_cap": "--max-spans-per-trace", "buffer_full": "--max-buffered-spans/--max-buffer-bytes"}
            log.warning(
                "evaluated traces early: %s",
                ", ".join(f"{n} at {caps.get(reason, reason)}" for reason, n in sorted(self._evicted.items())),
            )
            self._evicted.clear()
            self._evictions_logged = time.monotonic()
        self.evaluator.submit(completed)

    def _publish(self, signals: Sequence[dict[str, Any]]) -> None:
        """Signals to the sinks, on the evaluator's thread. A store with no room makes evaluation wait
        (then admission refuses new data) rather than drop a signal; at shutdown the wait ends at the
        hand-over deadline (`SinkSet.cut_short`). Notification sinks never make anything wait."""
        self.sinks.publish(signals, wait=math.inf)

    def health(self) -> dict[str, Any]:
        """`GET /healthz`: "status" is "stopping", else the sinks' in one word (`sinks.overall`); "rule_files"
        is "rejected" while the last reload was (the previous rules run), else "loaded"."""
        sinks = self.sinks.health()
        return {
            "status": "stopping" if self.intake.stopping else overall(sinks),
            "rules": len(self.evaluator.in_force.rules),
            "rule_files": "rejected" if self.rules_rejected else "loaded",
            "buffered_spans": self.buffer.spans,
            "pending_spans": self.evaluator.pending_spans,
            "sinks": sinks,
            "uptime_seconds": round(time.monotonic() - self.started, 3),
        }

    # -- lifecycle ----------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext | None:
        if self.config.tls_cert is None or self.config.tls_key is None:
            return None
        return tls_context(self.config.tls_cert, self.config.tls_key)  # checked by `ServeConfig.check`

    async def _site(self, routes: list[web.RouteDef], address: tuple[str, int], flag: str) -> int:
        """Serve `routes` on `address`, the setting `flag`; the port bound."""
        cap = ConnectionCap(self.http_connection_limit, self.metrics, stall=HTTP_IDLE_TIMEOUT)
        self._caps.append(cap)
        app = web.Application(client_max_size=self.config.max_body_bytes, middlewares=[cap.track])
        app.add_routes(routes)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            auto_decompress=False,
            shutdown_timeout=RECEIVER_DRAIN,
            keepalive_timeout=HTTP_IDLE_TIMEOUT,  # aiohttp arms it at connect too: a head not sent in time closes
            logger=ProtocolLog(),
        )
        await runner.setup()
        self._runners.append(runner)
        cap.server = runner.server
        cap.start()
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            problem = f"cannot listen on {host_port(host, port)} ({flag}): {exc.strerror or exc}"
            raise StartError(problem + self._same_port(flag, port)) from None
        # aiohttp's server as the protocol factory, as its low-level API has it, counted by the cap (a
        # `web.SockSite` would pass the server itself); closed first by `_stop_receivers`, as a site is.
        tls = self._ssl()
        self._listeners.append(
            await asyncio.get_running_loop().create_server(
                cap,
                sock=sock,
                ssl=tls,
                backlog=ACCEPT_BACKLOG,
                # a TLS connection is the cap's only once its handshake is done: one silent in it is closed
                # after the idle timeout, not asyncio's 60 s
                ssl_handshake_timeout=HTTP_IDLE_TIMEOUT if tls is not None else None,
            )
        )
        return int(sock.getsockname()[1])

    def _same_port(self, flag: str, port: int) -> str:
        """For a listener that could not bind: the others of this serve given the same port, which may well be
        what holds it (`0.0.0.0:4318` takes `127.0.0.1:4318` too: the addresses differ, so the settings'
        check, `ServeConfig.check`, does not see it); "" when there are none."""
        given = (("--http", self.config.http), ("--grpc", self.config.grpc), ("--metrics", self.config.metrics))
        others = [
            f"{other} {host_port(*address)}"
            for other, address in given
            if other != flag and address is not None and port and address[1] == port
        ]
        if not others:
            return ""
        return (
            f"; {' and '.join(others)} is given that port too (0.0.0.0 or :: takes it on every address): "
            "give each its own port"
        )

    async def start(self) -> None:
        problems = self.sinks.start()
        if problems:
            self.sinks.close(1.0)
            raise StartError(problems[0])
        self.evaluator.start()
        try:
            await self._start_receivers()
        except BaseException:
            await self._stop_receivers()
            self.evaluator.stop()
            self.sinks.close(1.0)
            raise
        scheme = "https" if self.config.tls_cert else "http"
        log.info("rules: %s", self.rule_set.summary)
        sinks = ", ".join(w.sink.label for w in self.sinks.workers)
        log.info("signals to: %s", sinks or f"no sink ({self.config.store_off} and no other sink given)")
        if not native_reader():
            log.warning("%s", NO_NATIVE_READER)
        self.rule_set.log_warnings(log)
        http = host_port(self.config.http[0], self.http_port)
        log.info("OTLP/HTTP listening on %s://%s (POST /v1/traces, GET /metrics, GET /healthz)", scheme, http)
        if self.config.grpc is not None:
            log.info("OTLP/gRPC listening on %s", host_port(self.config.grpc[0], self.grpc_port))
        else:
            log.info("OTLP/gRPC off (--grpc off): exports over gRPC are not received")
        if self.config.metrics is not None:
            log.info("metrics on %s://%s/metrics", scheme, host_port(self.config.metrics[0], self.metrics_port))
        warn_exposed(self.config, self.http_port, self.grpc_port, self.metrics_port)
        self._tasks.append(asyncio.create_task(self._sweep()))
        if self.config.reload_interval > 0:
            self._tasks.append(asyncio.create_task(self._watch_rules()))

    async def _start_receivers(self) -> None:
        handler = metrics_handler(self.intake, self.metrics)
        self.http_port = await self._site(http_routes(self.intake, handler, self.health), self.config.http, "--http")
        if self.config.metrics is not None:
            self.metrics_port = await self._site([web.get("/metrics", handler)], self.config.metrics, "--metrics")
        if self.config.grpc is not None:
            known = grpc_server_ids()
            server = grpc.aio.server(
                interceptors=grpc_interceptors(self.intake),
                maximum_concurrent_rpcs=GRPC_CALLS_BACKSTOP,
                options=[
                    # gRPC refuses a larger message from its length prefix, before reading it: a limit
                    # above ours, to let FLUO count the refusal, would hold such messages in memory first.
                    ("grpc.max_receive_message_length", self.config.max_body_bytes),
                    ("grpc.so_reuseport", 0),
                    # A gzip or deflate message is handed over as sent and inflated by FLUO (`grpc_compression`):
                    # one that does not inflate is malformed, one too large once inflated too large, counted so.
                    ("grpc.per_message_decompression", 0),
                    ("grpc.max_connection_idle_ms", round(GRPC_IDLE_TIMEOUT * 1000)),
                    ("grpc.server_handshake_timeout_ms", round(GRPC_IDLE_TIMEOUT * 1000)),
                ],
            )
            add_trace_service(server, self.intake)
            self._grpc_channelz = the_new_one(known, grpc_server_ids())
            host, port = self.config.grpc
            target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            creds = None
            if self.config.tls_cert is not None and self.config.tls_key is not None:
                creds = grpc.ssl_server_credentials(
                    [(self.config.tls_key.read_bytes(), self.config.tls_cert.read_bytes())]
                )
            same_port = self._same_port("--grpc", port)
            if port:  # a port taken by another listener: say so before gRPC's core logs its own error line
                try:
                    _check_free(host, port, "--grpc")
                except StartError as exc:
                    raise StartError(f"{exc}{same_port}") from None
            try:
                bound = server.add_secure_port(target, creds) if creds else server.add_insecure_port(target)
            except RuntimeError as exc:
                raise StartError(f"cannot listen on {target} (--grpc): {exc}{same_port}") from None
            if bound == 0:
                raise StartError(f"cannot listen on {target} (--grpc): address in use or not available{same_port}")
            self.grpc_port = bound
            self._grpc = server
            await server.start()

    async def _sweep(self) -> None:
        tick = min(0.1, self.config.trace_idle / 4)
        while True:
            await asyncio.sleep(tick)
            self._hand_over(self.buffer.sweep(time.monotonic()))
            self.admission.notice_caught_up()
            self._log_held()

    def _log_held(self, at_end: bool = False) -> None:
        """Refusals whose throttled lines were held back, said in a line of their own (`Throttled.log_held`)."""
        self.intake.log_held(at_end)
        for cap in self._caps:
            cap.refused.log_held(at_end)

    async def _watch_rules(self) -> None:
        while True:
            await asyncio.sleep(self.config.reload_interval)
            if self.watcher.changed():
                log.info("rule files changed; reloading")
                await self.reload()

    async def reload(self) -> bool:
        """Load the rules again; keep the running set if the new one has errors.

        The files are read, checked and compiled in a thread: a large (or mangled) rule set takes
        seconds, during which the receivers and `/healthz` keep answering. One reload at a time.
        """
        async with self._reloading:
            self.watcher.accept_current()  # this content is being tried now; only a later edit triggers another
            return self._swap_in(await asyncio.to_thread(self._load_rules))

    def _load_rules(self) -> RuleSet | RuleSetError:
        try:
            return load_rule_set(self.config.rules, cost_limit=self.config.cost_limit, budget=self.config.eval_budget)
        except RuleSetError as exc:
            return exc

    def _swap_in(self, loaded: RuleSet | RuleSetError) -> bool:
        if self.stopping:  # loaded while the stop began: the stop runs the rules it started with
            log.warning("rule reload finished while shutting down: not used")
            return False
        if isinstance(loaded, RuleSetError):
            exc = loaded
            log_rule_problems(exc)
            log.error(
                "rule reload rejected: %s; still running the previous %d rule(s)", exc, len(self.rule_set.program.rules)
            )
            self.metrics.reloads.labels("rejected").inc()
            self.rules_rejected = True
            return False
        rule_set = loaded
        self.rule_set = rule_set
        self.evaluator.swap(rule_set.program)
        self.rules_rejected = False
        rule_set.log_warnings(log)
        log.info("rules reloaded: %s", rule_set.summary)
        self.metrics.reloads.labels("loaded").inc()
        return True

    def _close_listeners(self) -> None:
        """New connections to the HTTP listeners are refused from now on. gRPC's server keeps serving until
        `_stop_grpc`: a call it hands over from now on is refused by FLUO (`UNAVAILABLE` + `RetryInfo`)."""
        listeners, self._listeners = list(self._listeners), []
        for listener in listeners:
            listener.close()

    def _stop_grpc(self, grace: float) -> None:
        """Begin gRPC's stop, once (a later call does nothing): new calls `UNAVAILABLE` from gRPC itself, and
        those in progress given `grace` before gRPC cancels them and closes their connections.

        Never a second `stop` over a pending one: with the first pending and a peer holding its connection,
        grpcio's C core crashed (SIGSEGV) in a third of the runs of
        test_a_stop_that_cuts_grpc_at_its_deadline_still_ends_with_its_last_line. And not at the start of a
        stop: gRPC's stop drops the calls it has taken in but not handed to a handler (queued while the event
        loop was busy), which then end `CANCELLED`, unanswered and uncounted (`_grpc_handed_over`)."""
        if self._grpc is not None:
            server, self._grpc = self._grpc, None
            self._grpc_stop = asyncio.create_task(server.stop(grace=grace))

    def _grpc_handed_over(self) -> bool:
        """Whether gRPC has handed to FLUO every call it had begun when the stop began (each is then answered by
        its handler: taken, or refused `UNAVAILABLE` + `RetryInfo`), as far as gRPC's count says (channelz).

        gRPC hands calls over in the order they came: one begun after the stop handed over means those before
        it were. Or gRPC has no call in progress. Unknown (channelz off): true."""
        at_stop = self._grpc_calls_at_stop
        if at_stop is None or self.intake.grpc_calls_handed > at_stop or self._grpc_channelz is None:
            return True
        calls = grpc_calls(self._grpc_channelz)
        return calls is None or calls[0] == calls[1]

    async def _stop_receivers(self, drained_by: float | None = None, deadline: float = math.inf) -> None:
        """Close the receivers; at a stop, connections already open stay until `drained_by` (or until their
        clients close them), so a request sent on one is answered (503) rather than met by a closed socket,
        and exports begun before the stop are answered (until `deadline`) before their connections go.

        gRPC's stop begins once no export begun before the stop is in flight (each answered, or refused at the
        seal) and gRPC has handed over every call it had begun by then (`_grpc_handed_over`), with
        `ANSWER_MARGIN` for the answers given to go out; then it cancels what is left: a connection whose peer
        does not end it, as a stalled sender's, which does not answer the ping of gRPC's GOAWAY."""
        self._close_listeners()
        if drained_by is None:
            self._stop_grpc(RECEIVER_DRAIN + ANSWER_MARGIN)
        else:
            await self._until(lambda: not any(cap.open() for cap in self._caps), drained_by)
            await self._until(lambda: not self.intake.in_flight and self._grpc_handed_over(), deadline)
            self._stop_grpc(ANSWER_MARGIN)
        if self._grpc_stop is not None:
            # shielded: cancelled at the deadline, this wait would cancel gRPC's own wait for its end, which
            # `_abort_connections` awaits (it then raised CancelledError out of the stop)
            await asyncio.shield(self._grpc_stop)
        runners, self._runners = list(self._runners), []
        self._closing = runners
        for cap in self._caps:  # aiohttp's cleanup closes with `transport.close()`, which waits for the client
            cap.cut_unsent()
        for runner in runners:
            await runner.cleanup()
        self._closing = []
        for cap in self._caps:  # and what the drain answered since
            cap.close()
        await asyncio.sleep(0)  # the aborted transports close their sockets on the next turn
        self.intake.close()

    async def _abort_connections(self) -> None:
        """After the receivers' stop was cut short at the deadline: close the connections still open
        (a sender mid-body), whose handlers aiohttp's cleanup was still waiting for, rather than leave
        their sockets to the garbage collector when the loop ends. Those of the runners not handed to cleanup yet
        too: the receivers' stop was still waiting for an export in flight (being decoded), whose connection
        was left open without an answer, to the client's own timeout."""
        for cap in self._caps:
            cap.close()
        self._stop_grpc(0.0)  # its calls cancelled at once, unless its stop has begun (never a second stop)
        if self._grpc_stop is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._grpc_stop), ANSWER_MARGIN)
        for runner in [*self._closing, *self._runners]:
            server = runner.server
            for handler in list(server.connections) if server is not None else ():
                handler.force_close()
        self._closing = []
        for _ in range(3):  # connection_lost runs on the next turns of the loop and ends the handlers
            await asyncio.sleep(0)

    def abort(self) -> None:
        """Cut a stop in progress short: what is not evaluated or delivered yet is lost (and reported)."""
        self.sinks.cut_short(time.monotonic())  # an evaluator waiting for room in a store stops waiting
        if self._abort is not None:
            self._abort.set()

    async def _until(self, done: Callable[[], bool], deadline: float) -> bool:
        """Wait until `done()` (polled), the deadline or an abort; whether `done()` came true."""
        assert self._abort is not None
        while not done():
            left = deadline - time.monotonic()
            if left <= 0 or self._abort.is_set():
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._abort.wait(), min(0.05, left))
        return True

    async def _sink_threads_end(self, until: float) -> None:
        """Wait until every sink thread has ended, or `until` (monotonic); not cut short by `abort`."""
        while any(w.thread.is_alive() for w in self.sinks.workers) and time.monotonic() < until:
            await asyncio.sleep(0.01)

    async def stop(self) -> StopReport:
        """Stop accepting, evaluate every buffered trace, close the windows, hand the signals to the sinks
        and let them deliver, all within `--shutdown-timeout`; a second signal (`abort`) cuts it short.

        Buffered traces are evaluated while the receivers drain (in-flight requests get
        `RECEIVER_DRAIN` seconds), not after. The evaluator has until the deadline less a
        reserve for the sinks (a quarter, at most 5 s); its signals wait for queue room
        until then instead of being dropped. Whatever is left at the deadline is lost,
        counted and logged: the returned report says what (and the exit status).
        """
        t0 = time.monotonic()
        timeout = self.config.shutdown_timeout
        deadline = t0 + timeout
        self._abort = self._abort or asyncio.Event()
        self.stopping = True
        self.intake.stopping = True
        if self._grpc_channelz is not None and (calls := grpc_calls(self._grpc_channelz)) is not None:
            self._grpc_calls_at_stop = calls[0]
        self._close_listeners()
        report = StopReport()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._handover_deadline = deadline - min(5.0, timeout / 4)
        # Exports begun before the stop (a body still arriving, or being decoded in a decode thread) get
        # `RECEIVER_DRAIN`: their spans are evaluated with the rest. One still arriving or decoded later is
        # refused (503/UNAVAILABLE, retryable), not answered OK into a buffer nobody reads any more.
        drained_by = min(t0 + RECEIVER_DRAIN, self._handover_deadline)
        await self._until(lambda: not self.intake.in_flight, drained_by)
        self.intake.seal()
        sealed_after = time.monotonic() - t0  # RECEIVER_DRAIN, or less: the decodes done, or a short deadline
        drained = self.buffer.drain()
        # the traces assembled before the stop and still waiting for the evaluator are evaluated in it too
        report.traces_at_shutdown = self.evaluator.backlog + sum(1 for c in drained if c.spans)
        self.sinks.cut_short(self._handover_deadline)
        self._hand_over(drained)
        self._save_remembered()  # every trace is completed now: late spans after the restart are known
        self.evaluator.request_stop()
        receivers = asyncio.create_task(self._stop_receivers(drained_by, deadline))
        if not await self._until(self.evaluator.done, self._handover_deadline):
            report.cut_short = "a second signal" if self._abort.is_set() else "the shutdown deadline"
            self.evaluator.abort()
            # its last chunk, unless aborted: at most half a second, and never past the deadline
            await self._until(self.evaluator.done, min(time.monotonic() + 0.5, deadline - SINK_FLOOR))
        # A chunk still being evaluated now gives its signals to no one: its traces are not evaluated, as
        # far as this report goes (one that finished is counted in `lost_signals` instead, not twice).
        report.traces_lost = self.evaluator.lost_traces + (0 if self.evaluator.done() else self.evaluator.chunk_in_hand)
        report.windows_lost = self.evaluator.lost_windows
        report.signals_lost = self.evaluator.lost_signals
        if report.traces_lost or report.windows_lost:
            log.error(
                "shutdown: %d trace(s) and %d open window(s) not evaluated (%s)",
                report.traces_lost,
                report.windows_lost,
                report.cut_short,
            )
        closed: list[int] = []
        allowed = max(SINK_FLOOR, deadline - time.monotonic())
        closer = threading.Thread(
            target=lambda: closed.append(self.sinks.close(allowed)),
            name="fluo-sinks-close",
            daemon=True,
        )
        closer.start()
        if not await self._until(lambda: not closer.is_alive(), deadline):
            report.cut_short = report.cut_short or (
                "a second signal" if self._abort.is_set() else "the shutdown deadline"
            )
        # `close` ends by the deadline, give or take: the accounting is done here if it is not done yet (a
        # sink call stuck past the deadline, as a locked store's busy wait, made it lose that race).
        cut_short_after = time.monotonic() - t0 if self._abort.is_set() else None
        report.undelivered = closed[0] if closed else self.sinks.give_up(allowed, cut_short_after)
        report.sinks = self.sinks.outcome()
        if self._abort.is_set():
            # The sink threads are daemons, not waited for at exit: each given up gets its moment to close its
            # sink (a store's -wal checkpointed into the file), as at the deadline.
            await self._sink_threads_end(time.monotonic() + SinkWorker.GIVE_UP_GRACE)
        if not await self._until(receivers.done, deadline):
            receivers.cancel()
            await self._abort_connections()
        self._log_held(at_end=True)  # the receivers are closed: no refusal comes after these lines
        if self.intake.refused_in_flight:
            log.warning(
                "shutdown: %d export(s) still being received or decoded %.2fs into the stop refused "
                "(503/UNAVAILABLE; their senders retry)",
                self.intake.refused_in_flight,
                sealed_after,
            )
        if after := self.intake.refused_after_stop:
            answers = {
                "http": "OTLP/HTTP, on connections already open: 503",
                "grpc": "OTLP/gRPC, calls gRPC still held for a handler at the stop too: UNAVAILABLE",
            }
            log.info(
                "shutdown: %d export(s) that came after the stop began refused (%s; their senders retry)",
                sum(after.values()),
                ", ".join(f"{n} over {answers[transport]}" for transport, n in sorted(after.items())),
            )
        report.seconds = time.monotonic() - t0
        (log.error if report.exit_code else log.info)("%s", report.line())
        self.report = report
        return report


class AcceptErrors:
    """The event loop's error handler, but for `accept()` failing at the open-file limit: one log line at
    most every `LOG_EVERY` seconds, with how many, instead of asyncio's traceback for each attempt (a few
    thousand idle connections made ~146,000 of them in 30 s). Everything else goes to asyncio's default."""

    LOG_EVERY = 10.0
    MESSAGE = "socket.accept() out of system resource"

    def __init__(self) -> None:
        self.last = -self.LOG_EVERY
        self.unlogged = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not str(context.get("message", "")).startswith(self.MESSAGE):
            loop.default_exception_handler(context)
            return
        self.unlogged += 1
        now = time.monotonic()
        if now - self.last < self.LOG_EVERY:
            return
        self.last, n, self.unlogged = now, self.unlogged, 0
        log.error(
            "cannot accept connections: %s (%d time(s) since the last line); raise the open-file limit "
            "(ulimit -n), or put a proxy that limits connections in front",
            context.get("exception"),
            n,
        )


def grpc_server_ids() -> set[int]:
    """The channelz ids of this process's gRPC servers; empty when channelz cannot say (off, or not this API).

    channelz is gRPC's own account of its servers and calls (on by default), read as grpcio-channelz's
    service reads it; grpcio's API has no other count of the calls a server has taken in."""
    ids: set[int] = set()
    start = 0
    try:
        while True:
            page = json.loads(cygrpc.channelz_get_servers(start))
            found = [int(server["ref"]["serverId"]) for server in page.get("server", ())]
            ids.update(found)
            if page.get("end", True) or not found:
                return ids
            start = max(found) + 1
    except (AttributeError, KeyError, TypeError, ValueError):
        return set()


def the_new_one(before: set[int], after: set[int]) -> int | None:
    """The one id in `after` not in `before`, else None (none, or several servers made at once)."""
    new = after - before
    return next(iter(new)) if len(new) == 1 else None


def grpc_calls(server_id: int) -> tuple[int, int] | None:
    """The calls gRPC's server `server_id` (its channelz id) has begun, from their headers, those queued for a
    handler too, and how many of them have ended; None when channelz cannot say."""
    try:
        data = json.loads(cygrpc.channelz_get_server(server_id))["server"].get("data", {})
        ended = int(data.get("callsSucceeded", 0)) + int(data.get("callsFailed", 0))
        return int(data.get("callsStarted", 0)), ended
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def http_listeners(config: ServeConfig) -> int:
    """How many HTTP listeners `config` opens, each with its own `--max-http-connections`."""
    return 1 + (config.metrics is not None)


def open_files_needed(asked: int, listeners: int) -> int:
    """Open files `asked` connections to each of `listeners` HTTP listeners need, with the rest of the process.

    Each listener's connections need twice `ACCEPT_BACKLOG` files beyond them (a batch just accepted and not yet
    counted, and as many closed to make room for it, still open for a moment), and as many again for
    the rest (the store, the rule files, gRPC)."""
    return 2 * listeners * (asked + ACCEPT_BACKLOG)


def raise_open_file_limit(asked: int, listeners: int = 1) -> None:
    """At `fluo serve`'s start, not when a `Runtime` is made: a soft open-file limit (`ulimit -n`) below what
    `asked` connections need is raised toward the hard one, as Go's runtime does at start (systemd and most
    shells start services at a soft 1024 under a far higher hard limit). What the hard limit still leaves
    short lowers `--max-http-connections` (`http_connection_limit`)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = open_files_needed(asked, listeners)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if wanted <= soft:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as exc:
        log.info("cannot raise the open-file limit from %d to %d: %s", soft, wanted, exc)
    else:
        log.info("raised the open-file limit (ulimit -n) from %d to %d for the connections", soft, wanted)


def http_connection_limit(asked: int, listeners: int = 1) -> int:
    """`--max-http-connections` for each of `listeners` HTTP listeners, within what the open-file limit
    (`ulimit -n`) allows now: when it is short of `open_files_needed`, half what it leaves after twice
    `ACCEPT_BACKLOG` for each listener, with a warning."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= open_files_needed(asked, listeners):
        return asked
    most = max(1, (soft // listeners - 2 * ACCEPT_BACKLOG) // 2)
    if asked <= most:
        return asked
    log.warning(
        "--max-http-connections %d lowered to %d for the open-file limit (ulimit -n %d, hard limit %s); "
        "raise that to allow more",
        asked,
        most,
        soft,
        "unlimited" if hard == resource.RLIM_INFINITY else hard,
    )
    return most


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to


def warn_exposed(config: ServeConfig, http_port: int = 0, grpc_port: int = 0, metrics_port: int = 0) -> None:
    """A log line when a receiver, or `--metrics`, binds beyond loopback without --auth-token (one for the
    receivers, one for the metrics), or one for all of them with it but without TLS; each named by the port it
    was bound to (`http_port`, `grpc_port`, `metrics_port`), when given, rather than the one asked for (0 picks
    one)."""

    def beyond_loopback(listeners: tuple[tuple[str, tuple[str, int] | None, int], ...]) -> list[str]:
        return [
            f"{name} on {host_port(address[0], bound or address[1])}"
            for name, address, bound in listeners
            if address is not None and not _loopback(address[0])
        ]

    receivers = beyond_loopback((("OTLP/HTTP", config.http, http_port), ("OTLP/gRPC", config.grpc, grpc_port)))
    metrics = beyond_loopback((("metrics", config.metrics, metrics_port),))
    if config.auth_token is None:
        if receivers:
            log.warning(
                "%s: not loopback and no --auth-token: anyone who can reach it may send spans", " and ".join(receivers)
            )
        if metrics:
            log.warning(
                "%s: not loopback and no --auth-token: anyone who can reach it may read /metrics (rule names, "
                "signal and span counts)",
                metrics[0],
            )
    elif config.tls_cert is None and receivers + metrics:
        log.warning(
            "%s: not loopback and no --tls-cert: the bearer token crosses the network in clear text",
            " and ".join(receivers + metrics),
        )


def host_port(host: str, port: int) -> str:
    """HOST:PORT as a URL or an exporter endpoint takes it: an IPv6 host in brackets (`[::1]:4318`)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class StopSignals:
    """What each SIGTERM or SIGINT asks: the first, to stop; the same signal again within `SAME_SIGNAL_WINDOW`
    of it, nothing more (one request delivered twice); any other, to stop now (`Runtime.abort`)."""

    def __init__(self) -> None:
        self.first: tuple[str, float] | None = None

    def receive(self, name: str, now: float) -> str:
        """ "stop", "same" or "now", for signal `name` received at `now` (monotonic)."""
        if self.first is None:
            self.first = (name, now)
            return "stop"
        first, at = self.first
        return "same" if name == first and now - at < SAME_SIGNAL_WINDOW else "now"


async def serve(config: ServeConfig, *, exit_process: bool = False) -> int:
    """Run until SIGTERM or SIGINT; 0 after a clean shutdown, `EXIT_LOST` (3) when something was lost.
    `exit_process` (`fluo serve` itself): end the process with that status once stopped (`leave`).

    Signal handlers are installed before starting: SIGHUP then reloads the rules once started
    (the files may have changed since they were read). They stay installed while stopping:
    SIGHUP then is logged and ignored, and a second SIGTERM or SIGINT cuts the stop short
    (`Runtime.abort`), but for the same signal again within `SAME_SIGNAL_WINDOW` (`StopSignals`).
    """
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(AcceptErrors())
    stop = asyncio.Event()
    received: list[str] = []
    started = False
    hup_while_starting = False

    requests = StopSignals()

    def on_stop(name: str) -> None:
        asked = requests.receive(name, time.monotonic())
        if asked == "stop":
            received.append(name)
            stop.set()
        elif asked == "same":
            log.info("%s again within %gs: the same stop request, delivered twice", name, SAME_SIGNAL_WINDOW)
        elif started:
            log.warning("%s while shutting down: stopping now; what is not done yet is lost", name)
            runtime.abort()

    def on_hup() -> None:
        nonlocal hup_while_starting
        if not started:
            hup_while_starting = True
            log.warning("SIGHUP while starting: the rules are reloaded once started")
        elif runtime.stopping:
            log.warning("SIGHUP while shutting down: ignored (rules are not reloaded)")
        else:
            log.info("SIGHUP; reloading the rules")  # as a file change says it, before the reload's own lines
            runtime.sinks.reopen()
            runtime.hup_reload = asyncio.ensure_future(runtime.reload())  # kept: a task needs a reference

    # Installed before starting: a signal while the ports open or the sinks open is handled, not fatal.
    loop.add_signal_handler(signal.SIGTERM, on_stop, "SIGTERM")
    loop.add_signal_handler(signal.SIGINT, on_stop, "SIGINT")
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    thresholds = gc.get_threshold()
    raise_open_file_limit(config.max_http_connections, http_listeners(config))
    try:
        runtime = Runtime(config)  # loads the rules
        await runtime.start()
        started = True
        gc.set_threshold(*GC_THRESHOLDS)
        log.info("ready; SIGHUP reloads the rules, SIGTERM or Ctrl-C stops")
        if hup_while_starting and not stop.is_set():  # the files may have changed after they were read
            on_hup()
        await stop.wait()
        log.info(
            "%s: shutting down (within %gs; a second SIGTERM or Ctrl-C stops now, but for the same signal "
            "again within %gs)",
            received[0] if received else "stop",
            config.shutdown_timeout,
            SAME_SIGNAL_WINDOW,
        )
        report = await runtime.stop()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        gc.set_threshold(*thresholds)
    if exit_process:
        leave(report.exit_code)
    return report.exit_code


def leave(code: int) -> NoReturn:
    """End the process with `code` now: the stop is over, its last line logged, every sink closed (the store,
    the files) or given up. The log and stdout are flushed first. Python's own exit would then free every
    object still alive, and a stop cut short with a big buffer (170,000 traces not evaluated) spent seconds
    of CPU on that past `--shutdown-timeout`; the decode threads would be waited for too."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone (`| head`), or a stream closed
            stream.flush()
    os._exit(code)


class RuntimeThread:
    """A runtime on a background thread with its own event loop: `start()` returns once it listens."""

    def __init__(self, config: ServeConfig, extra_sinks: Sequence[Sink] = ()) -> None:
        self.runtime = Runtime(config, extra_sinks)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="fluo-runtime", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            await self.runtime.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.runtime.stop()

    def start(self, timeout: float = 30.0) -> RuntimeThread:
        self.thread.start()
        if not self._ready.wait(timeout):
            raise StartError("the runtime did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def call(self, fn: Any, *args: Any) -> Any:
        """Run `fn(*args)` on the runtime's loop and return its result."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def stop(self, timeout: float = 60.0) -> None:
        if self.thread.is_alive() and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout)

    @property
    def http_url(self) -> str:
        scheme = "https" if self.runtime.config.tls_cert else "http"
        return f"{scheme}://127.0.0.1:{self.runtime.http_port}"

    def __enter__(self) -> RuntimeThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _check_free(host: str, port: int, what: str) -> None:
    """StartError if something already listens on host:port (a port in TIME_WAIT is free, as for the server)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return  # the server's own bind reports an address it cannot resolve
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise StartError(f"cannot listen on {host}:{port} ({what}): {exc.strerror or exc}") from None
