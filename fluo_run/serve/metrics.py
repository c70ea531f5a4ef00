"""The runtime's own Prometheus metrics, one registry per runtime (so several can share a process)."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from .assembly import COMPLETIONS, EVICTIONS, MAX_REMEMBERED

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_le: Callable[[float], str] = floatToGoString  # a bucket bound as prometheus_client writes it ("5e-05", "1.0")

TRANSPORTS = ("http", "grpc")
OUTCOMES = ("ok", "partial", "malformed", "refused", "unavailable", "unauthorized", "too_large", "cancelled")
"""`fluo_export_requests_total{outcome}`, for each transport. `cancelled`: a gRPC call its client cancelled, or
whose deadline passed, before it was answered; an HTTP body its client cut short (closing the connection)."""
SPAN_REJECTIONS = ("malformed",)
"""`fluo_spans_rejected_total{reason}`."""
RELOAD_RESULTS = ("loaded", "rejected")
RULE_KINDS = ("trace", "window")
SINK_DROPS = ("queue_full", "failed", "shutdown")
"""`fluo_sink_signals_dropped_total{reason}`."""
CONNECTION_ACTIONS = ("closed_idle", "refused")
"""`fluo_http_connections_over_limit_total{action}`."""
ANY_RULE = "*"
"""`fluo_rule_errors_total{rule}` for traces whose evaluation failed as a whole (not one rule's)."""


class BatchHistogram:
    """A histogram fed a batch of observations at a time, from one thread.

    Exposed exactly as a `prometheus_client.Histogram` is (`_bucket`, `_count`,
    `_sum`, `_created`), but an observation is a list append and a bisection
    instead of two locked increments: the evaluator observes every trace.
    A scrape reads the counts while they may be growing; each scrape is
    consistent in itself (`_count` is the `+Inf` bucket), `_sum` may be one batch behind.
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(float(b) for b in buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.sum = 0.0
        self.created = time.time()
        registry.register(self)

    def observe(self, amount: float) -> None:
        self.observe_all((amount,))

    def observe_all(self, amounts: Iterable[float]) -> None:
        counts, bounds = self.counts, self.bounds
        total = 0.0
        for amount in amounts:
            counts[bisect_left(bounds, amount)] += 1  # the first bucket whose bound is >= amount
            total += amount
        self.sum += total

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[Metric]:
        cumulative = list(accumulate(list(self.counts)))
        les = [_le(b) for b in self.bounds] + ["+Inf"]
        buckets = [(le, float(n)) for le, n in zip(les, cumulative, strict=True)]
        family = HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self.sum)
        family.add_sample(self.name + "_created", {}, self.created)
        yield family


class Metrics:
    """Every number `GET /metrics` shows; names start with `fluo_`.

    Each labelled series whose label values are known up front starts at 0 (the
    Prometheus client's convention), so `rate()` and alerts see it from the start
    instead of from its first increment: here those of the runtime's own label
    values (`transports`: the receivers running), `sink` for each sink, and `rule`
    for each rule as it loads (`rule_loaded`).
    """

    def __init__(self, transports: Sequence[str] = TRANSPORTS) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "fluo_export_requests",
            "OTLP export requests by transport and outcome",
            ["transport", "outcome"],
            registry=r,
        )
        self.spans_received = Counter("fluo_spans_received", "Spans accepted for evaluation", ["transport"], registry=r)
        self.spans_rejected = Counter(
            "fluo_spans_rejected",
            "Spans left out of an accepted request (a partial success): malformed (bad ids). Refused, unauthorized "
            "and oversize requests are not decoded; fluo_export_requests_total counts them by outcome",
            ["reason"],
            registry=r,
        )
        self.spans_clamped = Counter(
            "fluo_spans_clamped",
            "Spans that ended before they started, read with duration 0 (as the OpenTelemetry SDKs clamp them) "
            "and kept; the export's partial success says so too",
            registry=r,
        )
        self.spans_late = Counter(
            "fluo_spans_late", "Spans that arrived after their trace was evaluated (dropped)", registry=r
        )
        self.spans_duplicate = Counter(
            "fluo_spans_duplicate",
            "Spans whose span id their trace already had (a resent batch): counted once, the last copy kept",
            registry=r,
        )
        self.traces_assembled = Counter(
            "fluo_traces_assembled", "Traces completed and handed to evaluation", ["reason"], registry=r
        )
        self.traces_evicted = Counter(
            "fluo_traces_evicted",
            "Traces evaluated early because a cap was reached (also counted as assembled)",
            ["reason"],
            registry=r,
        )
        self.traces_evaluated = Counter("fluo_traces_evaluated", "Traces evaluated against the rules", registry=r)
        self.rule_evaluations = Counter(
            "fluo_rule_evaluations", "Rule evaluations (rules x traces, plus windowed rules x windows)", registry=r
        )
        self.rule_errors = Counter(
            "fluo_rule_errors", "Rule evaluations that raised (a FLUO bug)", ["rule"], registry=r
        )
        self.windows_closed = Counter("fluo_windows_closed", "Tumbling windows evaluated", registry=r)
        self.window_late_traces = Counter(
            "fluo_window_late_traces", "Traces completed after their window closed (left out of it)", registry=r
        )
        self.window_traces_left_out = Counter(
            "fluo_window_traces_left_out",
            "Traces counted in a window but not held, as open windows were at --max-window-spans",
            registry=r,
        )
        self.window_spans_left_out = Counter(
            "fluo_window_spans_left_out", "Spans of the traces in fluo_window_traces_left_out_total", registry=r
        )
        self.window_capacity = Gauge("fluo_window_capacity_spans", "--max-window-spans", registry=r)
        self.signals = Counter("fluo_signals", "Signals emitted by rule and severity", ["rule", "severity"], registry=r)
        self.sink_written = Counter("fluo_sink_signals_written", "Signals delivered by each sink", ["sink"], registry=r)
        self.sink_dropped = Counter(
            "fluo_sink_signals_dropped", "Signals a sink could not deliver, by reason", ["sink", "reason"], registry=r
        )
        self.reloads = Counter("fluo_rule_reloads", "Rule set loads by result", ["result"], registry=r)
        self.rules_loaded = Gauge("fluo_rules_loaded", "Rules in the running rule set", ["kind"], registry=r)
        self.rule_files_rejected = Gauge(
            "fluo_rule_files_rejected",
            "1 while the rule files were rejected at the last reload (the previous rules run), else 0",
            registry=r,
        )
        self.eval_latency = BatchHistogram(
            "fluo_trace_evaluation_seconds",
            "Time to evaluate one trace against every per-trace rule",
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
            registry=r,
        )
        self.buffered_spans = Gauge("fluo_buffered_spans", "Spans in traces still being assembled", registry=r)
        self.buffered_bytes = Gauge(
            "fluo_buffered_bytes",
            "Wire bytes the spans of traces still being assembled keep alive (--max-buffer-bytes)",
            registry=r,
        )
        self.buffered_traces = Gauge("fluo_buffered_traces", "Traces still being assembled", registry=r)
        self.inflight_bytes = Gauge(
            "fluo_inflight_bytes",
            "Request body bytes held now, OTLP/HTTP and OTLP/gRPC together, from their arrival until decoded "
            "(inflated bytes too): capped by --max-inflight-bytes",
            registry=r,
        )
        self.inflight_capacity = Gauge("fluo_inflight_capacity_bytes", "--max-inflight-bytes", registry=r)
        self.remembered_traces = Gauge(
            "fluo_remembered_traces",
            f"Ids of evaluated traces remembered to tell late spans (--late-span-memory, at most {MAX_REMEMBERED:,})",
            registry=r,
        )
        self.pending_spans = Gauge("fluo_pending_spans", "Spans of completed traces awaiting evaluation", registry=r)
        self.window_spans = Gauge("fluo_window_spans", "Spans held in open windows for windowed rules", registry=r)
        self.buffer_capacity = Gauge("fluo_buffer_capacity_spans", "--max-buffered-spans", registry=r)
        self.buffer_fill = Gauge("fluo_buffer_fill_ratio", "Buffered spans / --max-buffered-spans", registry=r)
        self.sink_queue = Gauge("fluo_sink_queue", "Signals queued per sink", ["sink"], registry=r)
        self.http_connections = Gauge(
            "fluo_http_connections", "Connections open to the HTTP listeners (--max-http-connections each)", registry=r
        )
        self.http_connections_over_limit = Counter(
            "fluo_http_connections_over_limit",
            "HTTP connections past --max-http-connections: closed_idle (the oldest idle one closed to make room), "
            "refused (every one busy: the new one closed)",
            ["action"],
            registry=r,
        )
        for transport in transports:
            self.spans_received.labels(transport)
            for outcome in OUTCOMES:
                self.requests.labels(transport, outcome)
        at_zero: tuple[tuple[Counter | Gauge, Iterable[str]], ...] = (
            (self.spans_rejected, SPAN_REJECTIONS),
            (self.traces_assembled, COMPLETIONS),
            (self.traces_evicted, EVICTIONS),
            (self.reloads, RELOAD_RESULTS),
            (self.http_connections_over_limit, CONNECTION_ACTIONS),
            (self.rules_loaded, RULE_KINDS),
            (self.rule_errors, (ANY_RULE,)),
        )
        for family, values in at_zero:  # one label each: every value known up front, its series at 0
            for value in values:
                family.labels(value)

    def sink_added(self, sink: str) -> None:
        """A sink's series, at 0."""
        self.sink_written.labels(sink)
        for reason in SINK_DROPS:
            self.sink_dropped.labels(sink, reason)

    def rule_loaded(self, rule: str, severity: str) -> None:
        """A rule's series, at 0 (those of a rule already loaded keep their counts)."""
        self.signals.labels(rule, severity)
        self.rule_errors.labels(rule)

    def watch(self, gauge: Gauge, read: Callable[[], float]) -> None:
        gauge.set_function(read)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
