"""OTLP trace receivers: HTTP (`POST /v1/traces`, aiohttp) and gRPC (`TraceService/Export`, grpc.aio).

Both answer as the OTLP specification says: success, or partial success with
the number of rejected spans (spans whose ids have the wrong length) and why,
or with 0 rejected and a warning (spans that ended before they started, kept
with duration 0);
HTTP 400 / INVALID_ARGUMENT with a message for a body that is not OTLP; and the
retryable HTTP 429 (over capacity) or 503 (shutting down), both UNAVAILABLE over
gRPC (the code OTLP/gRPC gives backpressure), with `Retry-After` / `RetryInfo` so
exporters back off and resend.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from google.protobuf.message import DecodeError
from google.rpc.error_details_pb2 import RetryInfo  # type: ignore[import-untyped]
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from fluo_lang.otlp import (
    MIN_SPAN_WIRE_BYTES,
    NotAnExport,
    TraceInputError,
    count_json_containers,
    count_spans,
    decode_traces,
    describe_clamped,
    id_problem,
    parse_json,
    read_spans,
    replace_lone_surrogates,
    share_request,
    spans_from_json,
    spans_from_request,
    spans_to_request,
)
from fluo_lang.trace import Span

from .config import DEFAULT_MAX_INFLIGHT_BYTES
from .metrics import Metrics

log = logging.getLogger("fluo.serve")

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
RETRY_AFTER_SECONDS = 1
GRPC_MAX_CONCURRENT_RPCS = 32
"""OTLP/gRPC calls handled at once (each may hold a 64 MiB message); more are refused by `TraceService`, retryably."""
MAX_SPANS_PER_REQUEST = 200_000
"""Spans one export may hold: more is refused whole (413 / `RESOURCE_EXHAUSTED`), counted before decoding."""
EXPORT_JSON_CONTAINERS_PER_SPAN = 32
"""JSON objects and arrays (`{` and `[` bytes, those inside strings too) an OTLP/JSON export may hold per span
of `MAX_SPANS_PER_REQUEST`, on average: past it the body is refused (413) before it is parsed. A span with
a dozen attributes has about 30; a body of `{}` spans makes 22 million of them out of 64 MiB (1.6 GB parsed)."""
MAX_BAD_SPANS = 1_000
"""Bad spans a request may have and still be salvaged (a partial success); past it all is refused (400)."""
MAX_GZIP_MEMBERS = 1_024
"""Gzip members one body may hold (each costs an inflater); more is refused (400)."""
BODY_READ_TIMEOUT = 60.0
"""Seconds a request body may take to arrive (OTel SDK exporters give up after 10): a sender dripping one
byte at a time is answered 408 and the connection closed, instead of holding it for ever."""
GRPC_MESSAGE_TIMEOUT = 15.0
"""Seconds an OTLP/gRPC call's message may take to arrive, then `DEADLINE_EXCEEDED`. Shorter than an HTTP
body's: each waiting call holds one of the 32 places (`GRPC_MAX_CONCURRENT_RPCS`), so 32 silent
calls lock every exporter out for this long at a time, while the exporters that wait for the answer give up
sooner (the OTel SDKs after 10 s, the Collector after 5 s by default)."""
ANSWER_TIMEOUT = 60.0
"""Seconds an OTLP/HTTP answer still being sent keeps its connection in use for `--max-http-connections`,
from when its handler is done (`ConnectionCap`), as `BODY_READ_TIMEOUT` bounds a body: one still trickling
out after that counts as idle, and is cut if its connection is closed to make room."""
OVERSIZE_WAIT = 0.1
"""Seconds a gRPC call whose stream ended without a message waits to be cancelled by gRPC (`TraceService`)."""
DECODE_THREADS = 2
"""Threads decoding large bodies: one sender's big or slow body neither blocks the event loop nor takes every core."""
INLINE_DECODE_BYTES = 1 << 20
"""Bodies up to this size are decoded on the event loop (cheaper than a thread hop), larger ones in a decode thread."""


UNHEALTHY = ("stopping",)
"""/healthz statuses answered 503: shutting down. "failing" (every sink failed) stays 200: a sink's failure
clears only when a later batch goes through, which a load balancer that stopped sending on 503 would never let
happen (a 503 for good), and a liveness probe would restart it in a loop, losing the buffer each time; the
status word and the sink metrics are for alerts."""


class Refusal(Exception):
    """A request not taken: `retryable` ones are over capacity or shutting down."""

    def __init__(
        self,
        status: int,
        code: grpc.StatusCode,
        message: str,
        *,
        retryable: bool = False,
        retry_after: int = RETRY_AFTER_SECONDS,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass
class Decoded:
    spans: list[Span]
    rejected: int = 0
    problem: str = ""
    clamped: list[Span] = field(default_factory=list)
    """Spans that ended before they started, kept with duration 0 (`fluo_lang.otlp.clamp_end`)."""

    @property
    def partial(self) -> bool:
        """Whether the answer is a partial success: spans rejected, or a warning about clamped ones."""
        return bool(self.rejected or self.clamped)

    def response(self) -> ExportTraceServiceResponse:
        """The protobuf answer, as OTLP/gRPC and OTLP/HTTP with protobuf send it."""
        resp = ExportTraceServiceResponse()
        if self.partial:
            resp.partial_success.rejected_spans = self.rejected
            resp.partial_success.error_message = self.message()
        return resp

    def message(self) -> str:
        """The partial success's error message: why spans were rejected, and a warning for clamped ones."""
        parts = [self.problem] if self.rejected else []
        if self.clamped:
            parts.append(describe_clamped(self.clamped))
        return "; ".join(parts)


class Throttled:
    """Log lines of one kind at most once every `every` seconds, saying how many were held back since the last
    one logged: in the next such line when one comes within `every`, else in a line of their own, `held` (a
    format of one `%d`), once `every` has passed (`log_held`, called by a periodic sweep) and at the stop."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        every: float = 10.0,
        held: str = "%d more line(s) like the last, held back since it",
    ) -> None:
        self.logger = logger
        self.level = level
        self.every = every
        self.held_line = held
        self.held = 0
        self.last = -every - 1.0

    def __call__(self, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            self.held += 1
            return
        held, self.held, self.last = self.held, 0, now
        suffix = f" (and {held} more like it since the last such line)" if held else ""
        self.logger.log(self.level, msg + suffix, *args)

    def log_held(self, at_end: bool = False) -> None:
        """The lines held back, counted in a line of their own once `every` has passed with no line to count
        them, or now `at_end`: the next such line may never come."""
        now = time.monotonic()
        if self.held and (at_end or now - self.last >= self.every):
            held, self.held, self.last = self.held, 0, now
            self.logger.log(self.level, self.held_line, held)


def held_back(kind: str, every: float = 10.0) -> str:
    """The `Throttled.held` line of refusals of one `kind` ("refused an OTLP/gRPC call over ...")."""
    return f"{kind}: and %d more like it since the last such line, held back (at most one such line every {every:g}s)"


class TooManySpans(Refusal):
    """An export over `MAX_SPANS_PER_REQUEST` spans."""


def too_many_spans(at_least: int, limit: int) -> TooManySpans:
    return TooManySpans(
        413,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"request body: {at_least} spans or more, over the limit of {limit} spans per export; send smaller batches",
    )


def too_many_containers(body: bytes, limit: int) -> TooManySpans | None:
    """The refusal of an OTLP/JSON body holding more than `limit` objects and arrays (`{`/`[` bytes), else None.

    A bound on what `json.loads` would build, checked before it runs: the span cap is only checked once the
    spans are parsed. `bytes.count` reads the body twice at memory speed (50 ms for 44 MB, 2% of decoding
    it); a body of at most `limit` bytes cannot hold more, so it is not read at all (a 1,000-span body).
    Strings are not counted: 64 MiB of short ones still parse to about 1 GB (real spans: 0.7 GB)."""
    if len(body) <= limit:
        return None
    n = count_json_containers(body)
    if n <= limit:
        return None
    return TooManySpans(
        413,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"request body: {n} JSON objects and arrays ('{{' and '[' bytes), over the limit of {limit} per export "
        f"({EXPORT_JSON_CONTAINERS_PER_SPAN} per span of the {MAX_SPANS_PER_REQUEST} spans per export); "
        "send smaller batches",
    )


def _with_clamped(decoded: Decoded, clamped: list[Span]) -> Decoded:
    if clamped:
        decoded.clamped = clamped
    return decoded


class Admission:
    """Whether a request may add spans while evaluation or sinks are behind; the longer refused, the sooner admitted.

    A request is admitted while the spans awaiting evaluation are at most
    `max_pending`. Past that it is refused (retryable) and its body remembered
    (a digest). When the same body comes again, as an exporter's retry does,
    having been refused `n` times, it is admitted while the backlog is at most
    `(n + 1) * max_pending` (at most `MAX_FACTOR` times). So under sustained
    overload older batches go before fresh ones instead of competing with them
    on every attempt until the exporter gives up, and the backlog stays bounded.

    Every request is refused (retryable) from when the fullest sink queue is at least
    `max_sink_backlog` full (`SinkSet.backlog()`, 0 to 1) until it is under
    `RESUME_SINK_BACKLOG`: the signals of more traces would be dropped there, while
    clients can hold the traces and resend. One warning says when the sinks fall
    behind and one info line when they caught up, having stayed under the mark for
    `CALM_SECONDS`: falling behind again before then is the same episode, not
    another pair of lines (a steady overload made a pair a second).
    """

    REMEMBER_SECONDS = 30.0
    MAX_REMEMBERED = 10_000
    MAX_FACTOR = 8
    MAX_RETRY_AFTER = 16
    MAX_SINK_BACKLOG = 0.8
    RESUME_SINK_BACKLOG = 0.5
    CALM_SECONDS = 5.0

    def __init__(
        self,
        pending: Callable[[], int],
        max_pending: int,
        sink_backlog: Callable[[], float] = lambda: 0.0,
        max_sink_backlog: float = MAX_SINK_BACKLOG,
        fullest_sink: Callable[[], str] = lambda: "a sink",
    ) -> None:
        self.pending = pending
        self.max_pending = max_pending
        self.sink_backlog = sink_backlog
        self.max_sink_backlog = max_sink_backlog
        self.fullest_sink = fullest_sink
        self.sinks_behind = False  # refusing every export for the sinks now
        self._behind_since: float | None = None  # when the episode the warning said began; None: none
        self._refused_behind = 0  # exports refused for the sinks in that episode
        self._under_since = 0.0  # when the sinks last went under the resume mark
        self.refused: OrderedDict[bytes, tuple[int, float]] = OrderedDict()  # digest -> (times refused, last)
        self.over_pending = Throttled(
            log, logging.WARNING, held=held_back("refused an export over --max-pending-spans")
        )

    def _times_refused(self, body: bytes, now: float) -> tuple[bytes, int]:
        refused = self.refused
        forget_before = now - self.REMEMBER_SECONDS
        while refused and (len(refused) > self.MAX_REMEMBERED or next(iter(refused.values()))[1] < forget_before):
            refused.popitem(last=False)
        key = hashlib.blake2b(body, digest_size=16).digest()
        return key, refused.pop(key, (0, now))[0]

    def refusal(self, body: bytes, now: float) -> str | None:
        """None to admit the body, else why it is refused."""
        backlog = self.sink_backlog()
        behind = backlog >= (self.RESUME_SINK_BACKLOG if self.sinks_behind else self.max_sink_backlog)
        if behind and self._behind_since is None:
            log.warning(
                "signal sinks are behind (the queue of sink %s is %.0f%% full): refusing exports "
                "(429/UNAVAILABLE, retryable) until it is under %.0f%%",
                self.fullest_sink(),
                backlog * 100,
                self.RESUME_SINK_BACKLOG * 100,
            )
            self._behind_since, self._refused_behind = now, 0
        if behind != self.sinks_behind:
            self.sinks_behind = behind
            self._under_since = now
        if not behind:
            self.notice_caught_up(now)
        else:
            self._refused_behind += 1
            key, times = self._times_refused(body, now)
            self.refused[key] = (times + 1, now)
            return f"over capacity: the signal sinks are behind (a sink queue is {backlog:.0%} full); retry later"
        pending = self.pending()
        if pending <= self.max_pending:
            return None
        refused = self.refused
        key, times = self._times_refused(body, now)
        if pending <= min(times + 1, self.MAX_FACTOR) * self.max_pending:
            return None
        refused[key] = (times + 1, now)
        self.over_pending(
            "refused an export: %d spans await evaluation (--max-pending-spans %d); retryable",
            pending,
            self.max_pending,
        )
        return f"over capacity: {pending} spans await evaluation (--max-pending-spans {self.max_pending}); retry later"

    def notice_caught_up(self, now: float | None = None) -> None:
        """Also between requests (the runtime's sweep): sinks found behind that are no longer accept exports,
        and are logged as caught up once they stayed so for CALM_SECONDS, not at the next export, which may
        never come."""
        now = time.monotonic() if now is None else now
        if self.sinks_behind and self.sink_backlog() < self.RESUME_SINK_BACKLOG:
            self.sinks_behind, self._under_since = False, now
        began = self._behind_since
        if began is None or self.sinks_behind or now - self._under_since < self.CALM_SECONDS:
            return
        self._behind_since = None
        log.info(
            "signal sinks caught up: accepting exports again (for %.1fs now; %d export(s) refused in the %.1fs "
            "since they fell behind)",
            now - self._under_since,
            self._refused_behind,
            now - began,
        )

    def retry_after(self, body: bytes) -> int:
        """Seconds to ask a refused body to wait: 1, 2, 4, ... up to 16 as it is refused again.

        Exporters take the server's hint instead of their own exponential backoff, and
        give up after a fixed number of attempts (six in the OpenTelemetry SDKs); a
        growing hint spreads those attempts over about half a minute of overload.
        """
        times = self.refused.get(hashlib.blake2b(body, digest_size=16).digest(), (1, 0.0))[0]
        return min(int(2 ** max(times - 1, 0)), self.MAX_RETRY_AFTER)


class OverBudget(Refusal):
    """A body refused for the bytes other bodies hold (`BodyBudget`)."""


class BodyBudget:
    """Request body bytes held at once, by every connection of both receivers: at most `limit`
    (`--max-inflight-bytes`).

    An OTLP/HTTP body claims its bytes as they arrive, an OTLP/gRPC message its whole size once gRPC hands
    it over (gRPC reads a message whole first), and each holds them, its inflated bytes too, until its
    handler is done with it (read, inflated, decoded). One that would take the total past `limit` while
    others hold bytes is refused (429 / `UNAVAILABLE` with `RetryInfo`, retryable): without this,
    `--max-http-connections` bodies of `ServeConfig.max_body_bytes` each could be held at once (1024 x 64
    MiB), and 32 gRPC messages decoded at once. Bytes are claimed as received, not as declared: a
    Content-Length costs a sender nothing, so claiming it ahead would let a few silent requests lock every
    exporter out until `BODY_READ_TIMEOUT`.

    The refusal asks for a retry after `RETRY_AFTER_SECONDS` (1 s), always: the bytes come back as each body
    held is decoded, and an HTTP body is refused before it is whole, so it cannot be known again on its
    retry to be asked to wait longer, as `Admission` does.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.refused = Throttled(log, logging.WARNING, held=held_back("refused an export over --max-inflight-bytes"))

    @contextmanager
    def claim(self, what: str) -> Iterator[BodyClaim]:
        """The bytes one request holds, given back when done; `what` it is, for the log ("OTLP/HTTP body")."""
        claim = BodyClaim(self, what)
        try:
            yield claim
        finally:
            self.held -= claim.bytes


class BodyClaim:
    """The bytes of `BodyBudget` one request holds."""

    def __init__(self, budget: BodyBudget, what: str) -> None:
        self.budget = budget
        self.what = what
        self.bytes = 0

    def grow(self, n: int) -> None:
        """Hold `n` more bytes, or refuse the request (429) when others hold so many that it would pass the limit."""
        budget = self.budget
        if budget.held + n > budget.limit and budget.held > self.bytes:
            budget.refused(
                "refused an %s: %d bytes of request bodies held (--max-inflight-bytes %d)",
                self.what,
                budget.held,
                budget.limit,
            )
            raise OverBudget(
                429,
                grpc.StatusCode.UNAVAILABLE,
                f"over capacity: {budget.held} bytes of request bodies being received or decoded "
                f"(--max-inflight-bytes {budget.limit}); retry later",
                retryable=True,
            )
        budget.held += n
        self.bytes += n


class Intake:
    """What both receivers share: access, admission, and handing spans to assembly."""

    def __init__(
        self,
        metrics: Metrics,
        accept: Callable[[list[Span]], None],
        admission: Admission,
        auth_token: str | None,
        max_body_bytes: int,
        prefetch: Callable[[], tuple[str, ...]] = tuple,
        share: Callable[[], bool] = lambda: True,
        max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES,
    ) -> None:
        self.metrics = metrics
        self.prefetch = prefetch  # the attribute keys the running rules read, converted while decoding
        # Whether spans may share their request's bytes (`share_request`): when the running rules read no
        # attribute beyond `prefetch`, which would decode requests again, one read at a time.
        self.share = share
        self.accept = accept
        self.admission = admission
        self.auth_token = auth_token
        self.max_body_bytes = max_body_bytes
        self.bodies = BodyBudget(max_inflight_bytes)
        self.stopping = False
        self.in_flight = 0
        """Exports begun before the stop (their head or call had come) and not yet taken or refused: their body
        still arriving, or being decoded. The stop waits a moment for them (`export`)."""
        self.sealed = False
        """The stop has taken the buffered traces for evaluation: spans decoded from now on would reach no one."""
        self.refused_in_flight = 0
        """Exports begun before the stop and refused at it: their body or message still arriving when the stop
        sealed the buffer (`seal`), or decoded after it (`take`)."""
        self.refused_after_stop: dict[str, int] = {}
        """Exports begun after the stop began, by transport: "http" on a connection already open (answered 503),
        "grpc" a call gRPC handed over after it, begun before it (held by gRPC, its handler not begun) or after
        (answered `UNAVAILABLE`), both retryable."""
        self.grpc_calls_handed = 0
        """OTLP/gRPC calls gRPC has handed to FLUO since the start (`HandOver`), whatever their method."""
        self._reads: set[asyncio.Timeout] = set()
        self._too_large_since_log = 0
        self._too_large_logged = -self.TOO_LARGE_LOG_EVERY
        self._too_many_spans = Throttled(
            log,
            logging.WARNING,
            self.TOO_LARGE_LOG_EVERY,
            held_back(f"refused an export over {MAX_SPANS_PER_REQUEST} spans", self.TOO_LARGE_LOG_EVERY),
        )
        self.throttled = [self.bodies.refused, self._too_many_spans, admission.over_pending]
        """The throttled refusal lines of both receivers, whose held-back counts `log_held` says."""
        self._pool: ThreadPoolExecutor | None = None

    async def off_loop(self, size: int, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)`: on the event loop for a body of `size` up to `INLINE_DECODE_BYTES`, else in a decode thread.

        Cancelled (a gRPC call its client cancelled, or whose deadline passed), it returns only once the work
        has let go of `args`: dropped from the queue if it has not begun, else when it ends. So the request's
        place among the calls and its `--max-inflight-bytes` claim, given back as the handler returns, bound
        the bodies held by decodes too. At the stop it returns at once (the stop's deadline bounds the rest)."""
        if size <= INLINE_DECODE_BYTES:
            return fn(*args)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="fluo-decode")
        job = [fn, *args]  # emptied when the job is dropped: its queue entry holds it until a thread is free
        work = self._pool.submit(_run, job)
        done = asyncio.wrap_future(work)
        try:
            await asyncio.wait((done,))
        except asyncio.CancelledError:
            if work.cancel():
                job.clear()
            done.add_done_callback(_retrieved)
            while not done.done() and not self.stopping:
                with suppress(asyncio.CancelledError):
                    await asyncio.wait((done,))
            raise
        return done.result()

    @contextmanager
    def export(self) -> Iterator[bool]:
        """An export from its head (or call) to its answer: whether it began before the stop, and then counted
        in `in_flight` meanwhile. One begun after is to be refused at once (`shutting_down`)."""
        before = not self.stopping
        self.in_flight += before
        try:
            yield before
        finally:
            self.in_flight -= before

    @asynccontextmanager
    async def read_within(self, seconds: float) -> AsyncIterator[None]:
        """`asyncio.timeout(seconds)` around reading a body or message, ended at once by `seal` (TimeoutError
        then, which the caller answers as `shutting_down` when `sealed`): a sender still sending at the
        stop's seal gets its 503 / `UNAVAILABLE` then, rather than a connection closed without an answer."""
        async with asyncio.timeout(seconds) as timeout:
            if self.sealed:
                timeout.reschedule(asyncio.get_running_loop().time())
            self._reads.add(timeout)
            try:
                yield
            finally:
                self._reads.discard(timeout)

    def seal(self) -> None:
        """The stop takes the buffered traces: reads still in progress end now, and what comes later is refused."""
        self.sealed = True
        now = asyncio.get_running_loop().time()
        for timeout in self._reads:
            timeout.reschedule(now)

    def shutting_down(self, transport: str, *, in_flight: bool) -> Refusal:
        """The retryable refusal of an export at the stop (503 / `UNAVAILABLE`), counted as `unavailable`;
        `in_flight`: one begun before the stop, else one sent after it began."""
        self.metrics.requests.labels(transport, "unavailable").inc()
        if in_flight:
            self.refused_in_flight += 1
        else:
            self.refused_after_stop[transport] = self.refused_after_stop.get(transport, 0) + 1
        return Refusal(503, grpc.StatusCode.UNAVAILABLE, "fluo is shutting down; retry", retryable=True)

    def close(self) -> None:
        """Let the decode threads go (once the receivers are closed)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def authorized(self, headers: Sequence[str]) -> bool:
        """`Authorization: Bearer TOKEN`: the scheme in any case (RFC 7235 §2.1), the token exactly (constant time).

        `headers`: every `Authorization` header (HTTP) or `authorization` metadata value (gRPC) of the request:
        exactly one is taken, as both transports would not agree on which of several to read. A value that is not
        UTF-8 (aiohttp keeps its bytes as surrogate escapes) is compared as its bytes: it is never the token.
        """
        if self.auth_token is None:
            return True
        if len(headers) != 1:
            return False
        scheme, _, token = headers[0].strip().partition(" ")
        given = token.strip().encode("utf-8", "surrogateescape")
        return scheme.lower() == "bearer" and hmac.compare_digest(given, self.auth_token.encode())

    def admit(self, transport: str, body: bytes) -> None:
        if self.sealed:
            raise self.shutting_down(transport, in_flight=True)
        reason = self.admission.refusal(body, time.monotonic())
        if reason is not None:
            self.metrics.requests.labels(transport, "refused").inc()
            delay = self.admission.retry_after(body)
            raise Refusal(429, grpc.StatusCode.UNAVAILABLE, reason, retryable=True, retry_after=delay)

    def take(self, decoded: Decoded, transport: str) -> None:
        """Hand a decoded export's spans to assembly; refused (retryable) if the stop has sealed the buffer:
        answered OK, its spans would never be evaluated and its sender would not send them again."""
        if self.sealed:
            raise self.shutting_down(transport, in_flight=True)
        if decoded.clamped:
            self.metrics.spans_clamped.inc(len(decoded.clamped))
        if decoded.rejected:
            self.metrics.spans_rejected.labels("malformed").inc(decoded.rejected)
            self.metrics.requests.labels(transport, "partial").inc()
        else:
            self.metrics.requests.labels(transport, "ok").inc()
        self.metrics.spans_received.labels(transport).inc(len(decoded.spans))
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "received an export over %s: %d span(s) of %d trace(s)%s",
                transport,
                len(decoded.spans),
                len({s.trace_id for s in decoded.spans}),
                f", {decoded.rejected} rejected" if decoded.rejected else "",
            )
        if decoded.spans:
            self.accept(decoded.spans)

    TOO_LARGE_LOG_EVERY = 10.0

    def too_large(self, transport: str, peer: str | None, why: str, *, spans: bool = False) -> None:
        """Count a body refused for its size (413 / RESOURCE_EXHAUSTED) and log it, at most every 10 seconds.

        `spans`: refused for its number of spans (`MAX_SPANS_PER_REQUEST`) rather than its bytes."""
        self.metrics.requests.labels(transport, "too_large").inc()
        if spans:
            self._too_many_spans("refused an export from %s over %s: %s", peer or "an unknown peer", transport, why)
            return
        self._too_large_since_log += 1
        now = time.monotonic()
        if now - self._too_large_logged >= self.TOO_LARGE_LOG_EVERY:
            log.warning(
                "refused %d export(s) over the %d-byte limit; the last from %s over %s: %s",
                self._too_large_since_log,
                self.max_body_bytes,
                peer or "an unknown peer",
                transport,
                why,
            )
            self._too_large_since_log = 0
            self._too_large_logged = now

    def log_held(self, at_end: bool = False) -> None:
        """Refusals whose lines were held back (`Throttled`), said in a line of their own once their interval
        passed with no such line to count them, or now `at_end`."""
        for throttled in self.throttled:
            throttled.log_held(at_end)
        now = time.monotonic()
        if self._too_large_since_log and (at_end or now - self._too_large_logged >= self.TOO_LARGE_LOG_EVERY):
            log.warning(
                "refused %d more export(s) over the %d-byte limit", self._too_large_since_log, self.max_body_bytes
            )
            self._too_large_since_log = 0
            self._too_large_logged = now

    def refuse_unauthorized(self, transport: str) -> Refusal:
        self.metrics.requests.labels(transport, "unauthorized").inc()
        return Refusal(401, grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")


# ---------------------------------------------------------------------------
# decoding with salvage: a request with some bad spans keeps the good ones


def decode_request(
    req: Any, prefetch: tuple[str, ...] = (), body: bytes | None = None, source: str = "request body"
) -> Decoded:
    """Spans of a decoded request (`decode_traces(body)`); a request with bad ids keeps its good spans.

    With `body`, the bytes `req` was decoded from, the spans share those bytes once the
    decoded request is let go (`share_request`): nothing is serialized per span. `source` begins the
    messages about bad spans, as it does an OTLP/JSON body's ("request body", "request message" for gRPC).
    """
    clamped: list[Span] = []
    try:
        spans = spans_from_request(req, source=source, prefetch=prefetch, clamped=clamped)
    except TraceInputError as exc:
        problem = str(exc)
    else:
        if body is not None:
            share_request(spans, body)
        return _with_clamped(Decoded(spans), clamped)
    rejected = 0
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            keep = [sp for sp in ss.spans if id_problem(sp.trace_id, sp.span_id, sp.parent_span_id) is None]
            rejected += len(ss.spans) - len(keep)
            if rejected > MAX_BAD_SPANS:
                raise TraceInputError(_too_many_bad(problem))
            kept = [sp.SerializeToString() for sp in keep]
            del ss.spans[:]
            for data in kept:
                ss.spans.add().ParseFromString(data)
    clamped = []
    kept = spans_from_request(req, source=source, prefetch=prefetch, clamped=clamped)
    return _with_clamped(Decoded(kept, rejected, problem), clamped)


def _too_many_bad(problem: str) -> str:
    return f"{problem}; over {MAX_BAD_SPANS} spans are bad, so the whole request is refused"


def decode_json(body: bytes, prefetch: tuple[str, ...] = (), share: bool = True) -> Decoded:
    """Spans of an OTLP/JSON body; one with bad spans keeps its good ones, up to `MAX_BAD_SPANS` bad ones."""
    max_spans = MAX_SPANS_PER_REQUEST
    refusal = too_many_containers(body, max_spans * EXPORT_JSON_CONTAINERS_PER_SPAN)
    if refusal is not None:
        raise refusal
    clamped: list[Span] = []
    try:
        spans = parse_json(body, source="request body", clamped=clamped, one=True)
    except TraceInputError as exc:
        problem = str(exc)
    except RecursionError:
        raise TraceInputError("request body: values nested too deeply") from None
    else:
        if len(spans) > max_spans:
            raise too_many_spans(len(spans), max_spans)
        return _as_protobuf(_with_clamped(Decoded(spans), clamped), prefetch, share)
    clamped = []
    try:
        obj = json.loads(replace_lone_surrogates(body.decode("utf-8-sig")))  # as parse_json read it
    except (ValueError, RecursionError):
        raise TraceInputError(problem) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("resourceSpans"), list):
        raise TraceInputError(problem)
    blocks: list[tuple[dict[str, Any], list[Any]]] = []
    total = 0
    for block in obj["resourceSpans"]:
        if not isinstance(block, dict) or not isinstance(block.get("scopeSpans"), list):
            raise TraceInputError(problem)
        resource = {"resource": block["resource"]} if "resource" in block else {}
        for scope in block["scopeSpans"]:
            if not isinstance(scope, dict):
                raise TraceInputError(problem)
            group = scope.get("spans") or []
            if not isinstance(group, list):
                raise TraceInputError(problem)
            total += len(group)
            blocks.append((resource, group))
    if total > max_spans:
        raise too_many_spans(total, max_spans)
    spans = []
    rejected = 0
    for resource, group in blocks:
        for span in group:
            one = {"resourceSpans": [{**resource, "scopeSpans": [{"spans": [span]}]}]}
            try:
                spans.extend(spans_from_json(one, source="request body", clamped=clamped))
            except TraceInputError:
                rejected += 1
                if rejected > MAX_BAD_SPANS:
                    raise TraceInputError(_too_many_bad(problem)) from None
    return _as_protobuf(_with_clamped(Decoded(spans, rejected, problem), clamped), prefetch, share)


def _as_protobuf(decoded: Decoded, prefetch: tuple[str, ...], share: bool) -> Decoded:
    """JSON spans held as protobuf spans are: their attributes as wire bytes, read on demand.

    Spans read from OTLP/JSON hold their attributes as Python objects, several times
    the bytes of the JSON, which `--max-buffer-bytes` could not count. Written once
    as a protobuf request and read back (as `decode_protobuf` reads one), they are
    held, counted and detached exactly as protobuf spans are, and equal the JSON
    spans field for field (a test checks). Costs about half again the JSON parse (73 ms for
    1,000 spans of 750 KB, against 50 ms); such a span, ten attributes, is then held in
    0.9 KB instead of 1.3 KB.
    """
    if not decoded.spans:
        return decoded
    data = spans_to_request(decoded.spans).SerializeToString()
    spans = read_spans(data, prefetch=prefetch, share=share)  # the native reader, where compiled
    decoded.spans = (
        spans if spans is not None else decode_request(decode_traces(data), prefetch, data if share else None).spans
    )
    return decoded


def decode_protobuf(
    body: bytes,
    prefetch: tuple[str, ...],
    share: bool,
    what: str = "request body: not an OTLP protobuf",
    source: str = "request body",
) -> Decoded:
    """Spans of an OTLP protobuf body, refused whole past `MAX_SPANS_PER_REQUEST` (counted before decoding)."""
    cap = MAX_SPANS_PER_REQUEST
    try:
        if len(body) > cap * MIN_SPAN_WIRE_BYTES:
            n = count_spans(body, cap)
            if n > cap:
                raise too_many_spans(n, cap)
        clamped: list[Span] = []
        spans = read_spans(body, source=source, prefetch=prefetch, clamped=clamped, share=share)
        if spans is not None:  # the native reader's: else protobuf's, which says what is wrong, if anything
            return _with_clamped(Decoded(spans), clamped)
        req = decode_traces(body)
    except NotAnExport as exc:  # over a limit, not malformed: said as `load_trace_file` says it
        raise TraceInputError(f"{source}: {exc}") from None
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise TraceInputError(f"{what} ExportTraceServiceRequest: {exc or 'cannot parse'}") from None
    return decode_request(req, prefetch, body if share else None, source)


def _run(job: list[Any]) -> Any:
    """A decode thread's job (`Intake.off_loop`): its function and arguments, in a list dropped when cancelled."""
    fn, *args = job
    return fn(*args)


def _retrieved(done: asyncio.Future[Any]) -> None:
    """Take the outcome of work whose request is gone, so asyncio does not log an exception nobody read."""
    if not done.cancelled():
        done.exception()


INFLATE_CHUNK = 64 * 1024


def _inflate(data: bytes, encoding: str, limit: int, what: str = "request body") -> bytes:
    """`data` with its gzip or deflate Content-Encoding (or grpc-encoding) undone; at most `limit` bytes once
    inflated. `what` the data is, for the errors ("request body", "request message").

    Gzip bodies may hold several members, as `gzip.decompress` reads them, at most
    `MAX_GZIP_MEMBERS`. Deflate is zlib-wrapped as HTTP says, or raw as some clients
    send it (told by the first byte). The input is fed in chunks of a view, so what a
    member leaves over (`unused_data`) is at most a chunk: linear in the body, however
    many members it has.
    """
    if encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    else:
        wbits = zlib.MAX_WBITS if data[:1] and data[0] & 0x0F == 8 else -zlib.MAX_WBITS
    view = memoryview(data)
    parts: list[bytes] = []
    size = 0
    pos = 0
    members = 0
    while pos < len(view):
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise TraceInputError(f"{what}: over {MAX_GZIP_MEMBERS} {encoding} members")
        inflater = zlib.decompressobj(wbits)
        while not inflater.eof:
            if pos >= len(view):
                raise TraceInputError(f"{what}: the {encoding} data is cut short")
            chunk = view[pos : pos + INFLATE_CHUNK]
            pos += len(chunk)
            try:
                part = inflater.decompress(chunk, limit + 1 - size)
            except zlib.error:
                if what == "request body":
                    problem = f"Content-Encoding is {encoding} but the body is not {encoding} data"
                else:  # gRPC does not say the message's grpc-encoding: it was told from its first bytes
                    problem = f"neither {encoding} data nor an OTLP protobuf message (it begins as {encoding} does)"
                raise TraceInputError(f"{what}: {problem}") from None
            size += len(part)
            if size > limit:
                raise Refusal(
                    413,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{what} over {limit} bytes once {encoding} is undone",
                )
            parts.append(part)
        if encoding != "gzip":
            break
        pos -= len(inflater.unused_data)
    return b"".join(parts)


def grpc_compression(message: bytes) -> str | None:
    """How an OTLP/gRPC message as gRPC hands it over is compressed: "gzip", "deflate" or None (as is).

    gRPC's own decompression is off (`grpc.per_message_decompression`), so that a message whose
    compression is broken is FLUO's to answer and count, as a body's is; but gRPC does not tell the
    handler the call's `grpc-encoding`, so it is told from the bytes. gzip's magic `1f 8b` cannot begin
    a protobuf message (there is no wire type 7), and a zlib header (`78`, with its check bits) cannot
    begin an OTLP request: its one field is 1 (`0a`), written first."""
    if message[:2] == b"\x1f\x8b":
        return "gzip"
    if len(message) >= 2 and message[0] == 0x78 and int.from_bytes(message[:2], "big") % 31 == 0:
        return "deflate"
    return None


async def _body(request: web.Request, intake: Intake, limit: int, claim: BodyClaim) -> bytes:
    """The request body with a gzip or deflate Content-Encoding undone, at most `limit` bytes, held in `claim`.

    The HTTP site reads bodies as sent (`auto_decompress=False`): when aiohttp undoes
    the encoding, a body that is not what its header says fails inside aiohttp, which
    logs a traceback for every such request, and a cut-short gzip body goes unnoticed.
    """
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "deflate"):
        raise TraceInputError(f"unsupported Content-Encoding {encoding!r}; send gzip, deflate or none")
    try:
        async with intake.read_within(BODY_READ_TIMEOUT):
            body = await _read(request, limit, claim)
    except TimeoutError:
        if intake.sealed:
            raise intake.shutting_down("http", in_flight=True) from None
        raise Refusal(
            408, grpc.StatusCode.DEADLINE_EXCEEDED, f"request body: not received within {BODY_READ_TIMEOUT:g} s"
        ) from None
    except (RequestPayloadError, OSError) as exc:
        # aiohttp keeps a broken stream's exception on the request (`StreamReader.set_exception`), and its
        # traceback holds `_read`'s frame, which holds the request and the bytes read so far: a cycle
        # only the cyclic GC frees, which an idle server may not run for minutes. Cut here.
        exc.__traceback__ = None
        if isinstance(exc, OSError):  # aiohttp's "Connection lost": the client closed it
            raise BodyCut() from None
        raise TraceInputError("request body: its Content-Length or chunked framing is broken") from None
    if encoding in ("gzip", "deflate"):
        inflated = bytes(await intake.off_loop(len(body), _inflate, body, encoding, limit))
        del body
        claim.grow(len(inflated))
        return inflated
    return body


class BodyCut(Exception):
    """An OTLP/HTTP body cut short by its client: the connection closed before the whole body came. Counted
    `cancelled`, as a gRPC call its client cancels is: the sender gave up, the body was not malformed."""


def _over_limit(limit: int) -> Refusal:
    return Refusal(413, grpc.StatusCode.RESOURCE_EXHAUSTED, f"request body over {limit} bytes")


async def _read(request: web.Request, limit: int, claim: BodyClaim) -> bytes:
    """The body as sent, each chunk claimed as it arrives: over `limit` bytes is refused (413)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _over_limit(limit)
    parts: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise _over_limit(limit)
        claim.grow(len(chunk))
        parts.append(chunk)
    return b"".join(parts)


# ---------------------------------------------------------------------------
# HTTP


def _status_body(message: str, content_type: str) -> bytes:
    if content_type == JSON:
        return json.dumps({"message": message}).encode()
    return bytes(Status(message=message).SerializeToString())


CHALLENGE = {"WWW-Authenticate": "Bearer"}
"""What a 401 carries (RFC 7235, with the scheme of RFC 6750): how to authenticate, with a bearer token."""


def _http_error(status: int, message: str, content_type: str, *, retry_after: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if status == 401:
        headers = CHALLENGE
    return web.Response(
        status=status, body=_status_body(message, content_type), content_type=content_type, headers=headers
    )


def _export_response(decoded: Decoded, content_type: str) -> web.Response:
    if content_type == JSON:
        out: dict[str, Any] = {}
        if decoded.partial:
            out["partialSuccess"] = {"rejectedSpans": str(decoded.rejected), "errorMessage": decoded.message()}
        return web.Response(body=json.dumps(out).encode(), content_type=JSON)
    return web.Response(body=decoded.response().SerializeToString(), content_type=PROTOBUF)


def http_routes(intake: Intake, metrics_handler: Any, health: Callable[[], dict[str, Any]]) -> list[web.RouteDef]:
    async def export(request: web.Request) -> web.Response:
        with intake.export() as before_stop:
            response = await answer(request, before_stop)
        if intake.stopping:  # the listener is closed: the connection ends with this answer
            response.force_close()
        return response

    async def answer(request: web.Request, before_stop: bool) -> web.Response:
        ctype = request.content_type
        reply_type = JSON if ctype == JSON else PROTOBUF
        if not intake.authorized(request.headers.getall("Authorization", ())):
            r = intake.refuse_unauthorized("http")
            return _http_error(r.status, r.message, reply_type)
        if ctype not in (PROTOBUF, JSON):
            intake.metrics.requests.labels("http", "malformed").inc()
            return _http_error(415, f"unsupported Content-Type {ctype!r}; send {PROTOBUF} or {JSON}", PROTOBUF)
        try:
            if not before_stop:  # on a connection open at the stop: refused without reading the body
                raise intake.shutting_down("http", in_flight=False)
            with intake.bodies.claim("OTLP/HTTP body") as claim:
                body = await _body(request, intake, intake.max_body_bytes, claim)
                intake.admit("http", body)
                decode = decode_json if ctype == JSON else decode_protobuf
                decoded: Decoded = await intake.off_loop(len(body), decode, body, intake.prefetch(), intake.share())
                del body
            intake.take(decoded, "http")
        except Refusal as r:
            if isinstance(r, OverBudget):
                intake.metrics.requests.labels("http", "refused").inc()
            if r.status == 413:
                intake.too_large("http", request.remote, r.message, spans=isinstance(r, TooManySpans))
            return _http_error(r.status, r.message, reply_type, retry_after=r.retry_after if r.retryable else None)
        except TraceInputError as exc:
            intake.metrics.requests.labels("http", "malformed").inc()
            log.debug("OTLP/HTTP export from %s refused: %s", request.remote, exc)
            return _http_error(400, str(exc), reply_type)
        except BodyCut:
            intake.metrics.requests.labels("http", "cancelled").inc()
            log.debug(
                "OTLP/HTTP export from %s cancelled: its connection closed with the body cut short", request.remote
            )
            return _http_error(400, "request body: cut short", reply_type)  # to no one: the connection is gone
        return _export_response(decoded, reply_type)

    async def healthz(request: web.Request) -> web.Response:
        status = health()
        return web.json_response(status, status=503 if status["status"] in UNHEALTHY else 200)

    return [
        web.post("/v1/traces", export),
        web.get("/healthz", healthz),
        web.get("/metrics", metrics_handler),
    ]


@dataclass(slots=True)
class _Answer:
    """An answer handed to its connection's transport, and how much of it the transport still holds."""

    transport: asyncio.Transport
    done: float
    """When its handler returned (`time.monotonic`): aiohttp writes it from then on."""
    left: int = -1
    """Bytes left unsent when last looked at (-1: not yet looked at)."""
    moved: float = 0.0
    """When `left` was last seen to change, or `done` until then."""


class ConnectionCap:
    """The protocol factory of an HTTP listener: aiohttp's (`web.Server`), with at most `limit` connections open.

    aiohttp accepts every connection (its maintainers leave a cap to the application or a proxy,
    aio-libs/aiohttp#675), each an open file until its idle timeout. Here each new connection first
    closes the oldest idle ones (between exports, or still sending a request head) until, with it, at
    most `limit` are open; when all the others are in use, the new one is closed at once. So idle
    connections, however many, lock no exporter out.

    A connection is in use while its request is handled, and after that while its answer is still
    being sent, for at most `answer_timeout` seconds from when the handler returned: bytes wait in its
    transport for a client reading slowly (a large `/metrics` page), and aiohttp is done with them long
    before (it waits only until fewer than 64 KiB are left, then may close the connection with
    `transport.close()` when its keep-alive timer fires, which holds the socket until the client
    has read it all). Such a connection stays counted until its socket is closed. `watch` looks at
    every answer each `tick` seconds: one that has not moved for `stall` seconds (its client stopped
    reading) is cut (`transport.abort()`, the rest discarded), whether aiohttp has closed its
    connection or not, or the client would hold the file for as long as it does not read.

    Connections are counted once aiohttp has them: those accepted in one go (asyncio takes up to its
    backlog at a time) or still in a TLS handshake are not yet, so the count may pass the limit by
    that much until the next connection comes. One in its handshake could be counted (this factory
    makes its protocol at the accept) but not closed, as asyncio keeps its transport until the
    handshake is done: counted, the limit's worth of silent handshakes would refuse everyone; they
    have the idle timeout instead.
    """

    def __init__(self, limit: int, metrics: Metrics, stall: float, answer_timeout: float = ANSWER_TIMEOUT) -> None:
        self.server: web.Server | None = None  # the runner's, once set up
        self.limit = limit
        self.metrics = metrics
        self.stall = stall
        self.answer_timeout = answer_timeout
        self.busy: set[web.RequestHandler] = set()  # connections whose request is being handled
        self.answers: dict[web.RequestHandler, _Answer] = {}  # each connection's last answer, until it is gone
        self._watcher: asyncio.Task[None] | None = None
        self.refused = Throttled(
            log, logging.WARNING, held=held_back("refused an HTTP connection over --max-http-connections")
        )

    @web.middleware
    async def track(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Middleware: the request's connection is busy until it is answered, then its answer is watched."""
        protocol = request.protocol
        transport = protocol.transport
        self.busy.add(protocol)
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            self.busy.discard(protocol)
            if transport is not None:
                now = time.monotonic()
                self.answers[protocol] = _Answer(transport, now, moved=now)

    @property
    def tick(self) -> float:
        """Seconds between two looks at the answers: a stalled one is cut at most this long after `stall`."""
        return min(1.0, self.stall / 4)

    def start(self) -> None:
        """Watch the answers (on the running loop) until `close`."""
        self._watcher = asyncio.create_task(self.watch())

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            self.look(time.monotonic())

    def look(self, now: float) -> None:
        """Note which answers moved; forget those whose connection is gone; cut those stalled."""
        alive = set(self.server.connections) if self.server is not None else set()
        for h, answer in list(self.answers.items()):
            if h not in alive:
                del self.answers[h]
            elif self._left(answer, now) and now - answer.moved >= self.stall:
                log.debug("cut an HTTP answer unread for %gs: %d bytes not sent", self.stall, answer.left)
                answer.transport.abort()

    def _left(self, answer: _Answer, now: float) -> int:
        left = answer.transport.get_write_buffer_size()
        if left != answer.left:
            if answer.left >= 0:
                answer.moved = now
            answer.left = left
        return left

    def _sending(self, h: web.RequestHandler, now: float) -> bool:
        """Whether `h`'s answer keeps it in use: bytes unsent, moved within `stall`, for under `answer_timeout`."""
        answer = self.answers.get(h)
        return (
            answer is not None
            and self._left(answer, now) > 0
            and now - answer.moved < self.stall
            and now - answer.done < self.answer_timeout
        )

    def _held(self, h: web.RequestHandler) -> bool:
        """Whether `h`'s socket is open: aiohttp has not closed it, or closed it with an answer still unsent."""
        if h.connected:
            return True
        answer = self.answers.get(h)
        return answer is not None and answer.transport.get_write_buffer_size() > 0

    def connections(self) -> list[web.RequestHandler]:
        """The connections open, oldest first (aiohttp's list also has closed ones for a moment)."""
        return [] if self.server is None else [h for h in self.server.connections if self._held(h)]

    def open(self) -> int:
        return len(self.connections())

    def cut_unsent(self) -> None:
        """Discard every answer not yet sent (at shutdown): a client that does not read would keep its socket
        open past the event loop, which aiohttp's cleanup closes with `transport.close()`, waiting for it."""
        handlers = self.server.connections if self.server is not None else ()
        transports = {a.transport for a in self.answers.values()} | {h.transport for h in handlers if h.transport}
        for transport in transports:
            if transport.get_write_buffer_size():
                transport.abort()

    def close(self) -> None:
        """Stop watching, and cut what is left unsent."""
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        self.cut_unsent()

    def __call__(self) -> asyncio.BaseProtocol:
        assert self.server is not None
        live = self.connections()
        excess = len(live) + 1 - self.limit
        if excess > 0:
            now = time.monotonic()
            idle = [h for h in live if h not in self.busy and not self._sending(h, now)][:excess]
            for h in idle:
                answer = self.answers.get(h)
                if answer is not None and answer.transport.get_write_buffer_size():
                    answer.transport.abort()  # an answer stalled or overdue: close() would wait for its client
                h.force_close()
            self.metrics.http_connections_over_limit.labels("closed_idle").inc(len(idle))
            if len(idle) < excess:
                self.metrics.http_connections_over_limit.labels("refused").inc()
                self.refused(
                    "refused an HTTP connection: %d open, each with a request in progress or an answer being sent "
                    "(--max-http-connections)",
                    len(live) - len(idle),
                )
                return _Refused()
        return self.server()


class _Refused(asyncio.Protocol):
    """A connection over `ConnectionCap`'s limit: closed as soon as it is accepted."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class ProtocolLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server log (`AppRunner(logger=...)`): a request that is not HTTP is the sender's problem, not FLUO's.

    aiohttp logs every malformed request (a bad Content-Length, a control character in
    the path) at ERROR with a traceback, before any token is checked. Here it is one
    line at debug with the traceback, and one info line at most every 10 seconds;
    other errors are logged as aiohttp logs them.
    """

    def __init__(self) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self.malformed = Throttled(log, logging.INFO)

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self.logger.debug(msg, *args, exc_info=exc_info)
            peer = args[0] if args else None
            self.malformed("malformed HTTP request from %s: %s", peer or "an unknown peer", _one_line(exc_info))
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


def _one_line(exc: HttpProcessingError) -> str:
    text = f"{exc.code}, message: {exc.message}" if exc.message else str(exc.code)
    return " ".join(text.split())[:200]


def metrics_handler(intake: Intake, metrics: Metrics) -> Any:
    from .metrics import CONTENT_TYPE

    async def handler(request: web.Request) -> web.Response:
        if not intake.authorized(request.headers.getall("Authorization", ())):
            return web.Response(status=401, text="missing or wrong bearer token\n", headers=CHALLENGE)
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    return handler


# ---------------------------------------------------------------------------
# gRPC


def retry_trailers(r: Refusal) -> tuple[tuple[str, bytes], ...]:
    """The trailers of a retryable refusal: its `RetryInfo` (`retry_after`) twice.

    In `grpc-status-details-bin`, as the details of a `google.rpc.Status` with the call's code and message:
    where the OTLP specification puts it, and the Collector's and the Go, Java and .NET exporters read it.
    And alone in `google.rpc.retryinfo-bin`, the only place the Python SDK's exporter (1.45) reads it."""
    info = RetryInfo()
    info.retry_delay.seconds = r.retry_after
    status = Status(code=r.code.value[0], message=r.message)
    status.details.add().Pack(info)
    return (
        ("grpc-status-details-bin", status.SerializeToString()),
        ("google.rpc.retryinfo-bin", info.SerializeToString()),
    )


SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class TraceService:
    """`TraceService/Export`, taking the request as bytes so a malformed one gets INVALID_ARGUMENT.

    At most `max_calls` calls are handled at once; one more is refused at once, before its message is read,
    with the retryable UNAVAILABLE and a `RetryInfo` of 1 s. gRPC's own limit (`maximum_concurrent_rpcs`)
    answers RESOURCE_EXHAUSTED with no `RetryInfo`, which the Collector's exporter drops as permanent; it is
    left as a backstop, far above this one."""

    def __init__(self, intake: Intake, max_calls: int = GRPC_MAX_CONCURRENT_RPCS) -> None:
        self.intake = intake
        self.max_calls = max_calls
        self.calls = 0
        self._busy = Throttled(
            log, logging.WARNING, held=held_back("refused an OTLP/gRPC call over the calls handled at once")
        )
        intake.throttled.append(self._busy)

    async def receive(self, requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> ExportTraceServiceResponse:
        """`handle` the call, or refuse it when `max_calls` are being handled."""
        if self.calls >= self.max_calls:
            self.intake.metrics.requests.labels("grpc", "refused").inc()
            self._busy("refused an OTLP/gRPC call: %d calls in progress, the most handled at once", self.calls)
            message = f"over capacity: {self.calls} OTLP/gRPC calls in progress, the most handled at once; retry later"
            await self.refuse(Refusal(429, grpc.StatusCode.UNAVAILABLE, message, retryable=True), context)
        self.calls += 1
        try:
            return await self.handle(requests, context)
        finally:
            self.calls -= 1

    async def handle(self, requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> ExportTraceServiceResponse:
        """The call's message, read within `GRPC_MESSAGE_TIMEOUT`, then `export`.

        A unary handler is only called once gRPC has the whole message, and the call holds one of the
        32 places from its first frame: 32 calls whose message never ends held
        them all, for ever, and every exporter was refused. Served as a stream (the same on the
        wire: one message, then the end), the wait for it is timed, as an HTTP body's is.
        """
        peer = context.peer()  # unknown once gRPC has ended the call itself (`ended`)
        body: Any = grpc.aio.EOF  # until the message comes
        with self.intake.export() as before_stop:
            try:
                if not before_stop:  # gRPC's stop refuses new calls itself; one just begun meanwhile, here
                    await self.refuse(self.intake.shutting_down("grpc", in_flight=False), context)
                try:
                    async with self.intake.read_within(GRPC_MESSAGE_TIMEOUT):
                        body = await context.read()
                except TimeoutError:
                    if self.intake.sealed:
                        await self.refuse(self.intake.shutting_down("grpc", in_flight=True), context)
                    await context.abort(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"request message: not received within {GRPC_MESSAGE_TIMEOUT:g} s",
                    )
                if body is grpc.aio.EOF:
                    await self.no_message(context)
                return await self.export(body, context)
            except asyncio.CancelledError:
                if not self.intake.stopping:  # else the server's stop cancelled it
                    self.ended(context, peer, message=body is not grpc.aio.EOF)
                raise

    @staticmethod
    async def refuse(r: Refusal, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Abort the call with `r`, and its `RetryInfo` when it is retryable (`retry_trailers`)."""
        await context.abort(r.code, r.message, retry_trailers(r) if r.retryable else ())

    async def no_message(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """A stream that ended without a message: sent so (malformed), cut by its client (cancelled), or a message
        over `--max-body-bytes` (too_large).

        gRPC refuses such a message from its length prefix, before reading it, and answers the caller
        RESOURCE_EXHAUSTED itself; a call its client cancels, or whose deadline passes, ends so too. The
        handler then reads the end of the stream, as for a stream sent empty, and gRPC cancels it on the
        loop's next turn. So the handler waits a moment (`OVERSIZE_WAIT`) for that cancellation (counted by
        `ended`) before taking the call as malformed. (A receive limit above ours, to read the message's size
        here, would still leave larger messages to gRPC.)
        """
        await asyncio.sleep(OVERSIZE_WAIT)
        self.intake.metrics.requests.labels("grpc", "malformed").inc()
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no request message")

    def ended(self, context: grpc.aio.ServicerContext[Any, Any], peer: str, *, message: bool) -> None:
        """Count a call cancelled before it was answered: its message refused by gRPC (`too_large`), else
        cancelled by its client or at its deadline (`cancelled`), with or without its `message`.

        gRPC does not tell the handler why: a refused message and a client's cancel both end the stream, then
        cancel the call. But when gRPC ends a call itself (a message over its limit, or the deadline passing,
        which gRPC's server keeps too) the call's peer is gone, while a client's cancel (or its connection
        closing) leaves it (grpcio 1.85; `test_serve_limits` checks both). So a call cancelled with no message,
        time left and no peer is one gRPC refused."""
        left = context.time_remaining()
        if not message and not context.peer() and (left is None or left > 0):
            self.intake.too_large("grpc", peer, "refused by gRPC from its length prefix")
            return
        self.intake.metrics.requests.labels("grpc", "cancelled").inc()
        log.debug(
            "OTLP/gRPC call from %s cancelled %s",
            peer or "an unknown peer",
            "at its deadline" if left is not None and left <= 0 else "by its client",
        )

    async def export(self, body: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> ExportTraceServiceResponse:
        """The message held in `--max-inflight-bytes` with the HTTP bodies (and inflated, if compressed) until
        it is decoded; then its spans taken, as an HTTP body's are."""
        intake = self.intake
        if not intake.authorized(_authorization(context.invocation_metadata())):
            r = intake.refuse_unauthorized("grpc")
            await context.abort(r.code, r.message)
        limit = intake.max_body_bytes
        try:
            with intake.bodies.claim("OTLP/gRPC message") as claim:
                claim.grow(len(body))
                encoding = grpc_compression(body)
                if encoding is not None:
                    body = bytes(await intake.off_loop(len(body), _inflate, body, encoding, limit, "request message"))
                    claim.grow(len(body))
                intake.admit("grpc", body)
                decoded: Decoded = await intake.off_loop(
                    len(body),
                    decode_protobuf,
                    body,
                    intake.prefetch(),
                    intake.share(),
                    "not an OTLP",
                    "request message",
                )
                del body
            intake.take(decoded, "grpc")
        except Refusal as r:
            if isinstance(r, OverBudget):
                intake.metrics.requests.labels("grpc", "refused").inc()
            if r.status == 413:
                intake.too_large("grpc", context.peer(), r.message, spans=isinstance(r, TooManySpans))
            await self.refuse(r, context)
        except TraceInputError as exc:
            intake.metrics.requests.labels("grpc", "malformed").inc()
            log.debug("OTLP/gRPC export from %s refused: %s", context.peer(), exc)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return decoded.response()


class TokenCheck(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """With `--auth-token`, a call without the token is refused from its metadata, before its message is read.

    The refusal is a stream-unary handler that never reads its request stream: gRPC
    does not take in (nor hold) the message of a caller that has not authenticated.
    """

    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self.refuse = grpc.stream_unary_rpc_method_handler(self._unauthenticated)

    async def _unauthenticated(self, requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        r = self.intake.refuse_unauthorized("grpc")
        await context.abort(r.code, r.message)

    async def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        if self.intake.authorized(_authorization(details.invocation_metadata)):
            return await continuation(details)
        return self.refuse


def _authorization(metadata: Iterable[tuple[str, str | bytes]] | None) -> list[str]:
    """Every `authorization` value of a gRPC call's metadata (`Intake.authorized` takes exactly one)."""
    return [
        v if isinstance(v, str) else v.decode("utf-8", "surrogateescape")
        for k, v in metadata or ()
        if k == "authorization"
    ]


class HandOver(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts each call gRPC hands to FLUO (`Intake.grpc_calls_handed`), before any other interceptor or handler
    runs: the stop compares it with the calls gRPC itself had taken in (`Runtime._grpc_handed_over`)."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    async def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        self.intake.grpc_calls_handed += 1
        return await continuation(details)


def grpc_interceptors(intake: Intake) -> list[grpc.aio.ServerInterceptor]:
    """What the gRPC server runs before a handler: the count of calls handed over, then the token check, when a
    token is set."""
    return [HandOver(intake), *([TokenCheck(intake)] if intake.auth_token is not None else [])]


def add_trace_service(server: grpc.aio.Server, intake: Intake) -> None:
    handler = grpc.stream_unary_rpc_method_handler(
        TraceService(intake).receive, response_serializer=ExportTraceServiceResponse.SerializeToString
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),))
