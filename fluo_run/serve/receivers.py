"""OTLP trace receivers: HTTP (`POST /v1/traces`, aiohttp) and gRPC (`TraceService/Export`, grpc.aio).

Both answer as the OTLP specification says: success, or partial success with
the number of rejected spans (spans whose ids have the wrong length) and why,
or with 0 rejected and a warning (spans that ended before they started, kept
with duration 0);
HTTP 400 / INVALID_ARGUMENT with a message for a body that is not OTLP; and the
retryable HTTP 429 / RESOURCE_EXHAUSTED (over capacity) or 503 / UNAVAILABLE
(shutting down) with `Retry-After` / `RetryInfo` so exporters back off and resend.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from google.protobuf.message import DecodeError
from google.rpc.error_details_pb2 import RetryInfo  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from fluo_lang.otlp import (
    TraceInputError,
    decode_traces,
    id_problem,
    parse_json,
    share_request,
    spans_from_json,
    spans_from_request,
)
from fluo_lang.trace import Span

from .metrics import Metrics

log = logging.getLogger("fluo.serve")

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
RETRY_AFTER_SECONDS = 1


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
    clamped: int = 0
    """Spans that ended before they started, kept with duration 0 (`fluo_lang.otlp.clamp_end`)."""
    first_clamped: str = ""
    """The span id (hex) of the first of them, for the warning."""

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
            parts.append(
                f"{self.clamped} span(s) ended before they started (the first: span {self.first_clamped}); "
                "kept with duration 0"
            )
        return "; ".join(parts)


def _with_clamped(decoded: Decoded, clamped: list[Span]) -> Decoded:
    if clamped:
        decoded.clamped = len(clamped)
        decoded.first_clamped = clamped[0].span_id.hex()
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

    Every request is refused (retryable) while the fullest sink queue is at least
    `max_sink_backlog` full (`SinkSet.backlog()`, 0 to 1): the signals of more
    traces would be dropped there, while clients can hold the traces and resend.
    """

    REMEMBER_SECONDS = 30.0
    MAX_REMEMBERED = 10_000
    MAX_FACTOR = 8
    MAX_RETRY_AFTER = 16
    MAX_SINK_BACKLOG = 0.8

    def __init__(
        self,
        pending: Callable[[], int],
        max_pending: int,
        sink_backlog: Callable[[], float] = lambda: 0.0,
        max_sink_backlog: float = MAX_SINK_BACKLOG,
    ) -> None:
        self.pending = pending
        self.max_pending = max_pending
        self.sink_backlog = sink_backlog
        self.max_sink_backlog = max_sink_backlog
        self.sinks_behind = False
        self.refused: OrderedDict[bytes, tuple[int, float]] = OrderedDict()  # digest -> (times refused, last)

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
        behind = backlog >= self.max_sink_backlog
        if behind != self.sinks_behind:
            self.sinks_behind = behind
            if behind:
                log.warning(
                    "signal sinks are behind (a sink queue is %.0f%% full): refusing exports (429/RESOURCE_EXHAUSTED, "
                    "retryable) until it is under %.0f%%",
                    backlog * 100,
                    self.max_sink_backlog * 100,
                )
            else:
                log.info("signal sinks caught up: accepting exports again")
        if behind:
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
        return f"over capacity: {pending} spans await evaluation (--max-pending-spans {self.max_pending}); retry later"

    def retry_after(self, body: bytes) -> int:
        """Seconds to ask a refused body to wait: 1, 2, 4, ... up to 16 as it is refused again.

        Exporters take the server's hint instead of their own exponential backoff, and
        give up after a fixed number of attempts (six in the OpenTelemetry SDKs); a
        growing hint spreads those attempts over about half a minute of overload.
        """
        times = self.refused.get(hashlib.blake2b(body, digest_size=16).digest(), (1, 0.0))[0]
        return min(int(2 ** max(times - 1, 0)), self.MAX_RETRY_AFTER)


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
        self.stopping = False
        self._too_large_since_log = 0
        self._too_large_logged = -self.TOO_LARGE_LOG_EVERY

    def authorized(self, header: str | None) -> bool:
        """`Authorization: Bearer TOKEN`: the scheme in any case (RFC 7235 §2.1), the token exactly (constant time)."""
        if self.auth_token is None:
            return True
        if header is None:
            return False
        scheme, _, token = header.strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.auth_token.encode())

    def admit(self, transport: str, body: bytes) -> None:
        if self.stopping:
            self.metrics.requests.labels(transport, "unavailable").inc()
            raise Refusal(503, grpc.StatusCode.UNAVAILABLE, "fluo is shutting down; retry", retryable=True)
        reason = self.admission.refusal(body, time.monotonic())
        if reason is not None:
            self.metrics.requests.labels(transport, "refused").inc()
            delay = self.admission.retry_after(body)
            raise Refusal(429, grpc.StatusCode.RESOURCE_EXHAUSTED, reason, retryable=True, retry_after=delay)

    def take(self, decoded: Decoded, transport: str) -> None:
        if decoded.clamped:
            self.metrics.spans_clamped.inc(decoded.clamped)
        if decoded.rejected:
            self.metrics.spans_rejected.labels("malformed").inc(decoded.rejected)
            self.metrics.requests.labels(transport, "partial").inc()
        else:
            self.metrics.requests.labels(transport, "ok").inc()
        self.metrics.spans_received.labels(transport).inc(len(decoded.spans))
        if decoded.spans:
            self.accept(decoded.spans)

    TOO_LARGE_LOG_EVERY = 10.0

    def too_large(self, transport: str, peer: str | None, why: str) -> None:
        """Count a body refused for its size (413 / RESOURCE_EXHAUSTED) and log it, at most every 10 seconds."""
        self.metrics.requests.labels(transport, "too_large").inc()
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

    def log_unlogged(self) -> None:
        """At shutdown: oversize refusals counted since the last line, said now rather than never."""
        if self._too_large_since_log:
            log.warning(
                "refused %d more export(s) over the %d-byte limit", self._too_large_since_log, self.max_body_bytes
            )
            self._too_large_since_log = 0

    def refuse_unauthorized(self, transport: str) -> Refusal:
        self.metrics.requests.labels(transport, "unauthorized").inc()
        return Refusal(401, grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")


# ---------------------------------------------------------------------------
# decoding with salvage: a request with some bad spans keeps the good ones


def decode_request(req: Any, prefetch: tuple[str, ...] = (), body: bytes | None = None) -> Decoded:
    """Spans of a decoded request (`decode_traces(body)`); a request with bad ids keeps its good spans.

    With `body`, the bytes `req` was decoded from, the spans share those bytes once the
    decoded request is let go (`share_request`): nothing is serialized per span.
    """
    clamped: list[Span] = []
    try:
        spans = spans_from_request(req, prefetch=prefetch, clamped=clamped)
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
            kept = [sp.SerializeToString() for sp in keep]
            del ss.spans[:]
            for data in kept:
                ss.spans.add().ParseFromString(data)
    clamped = []
    kept = spans_from_request(req, prefetch=prefetch, clamped=clamped)
    return _with_clamped(Decoded(kept, rejected, problem), clamped)


def decode_json(body: bytes) -> Decoded:
    clamped: list[Span] = []
    try:
        return _with_clamped(Decoded(parse_json(body, source="request body", clamped=clamped)), clamped)
    except TraceInputError as exc:
        problem = str(exc)
    clamped = []
    try:
        obj = json.loads(body)
    except ValueError:
        raise TraceInputError(problem) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("resourceSpans"), list):
        raise TraceInputError(problem)
    spans: list[Span] = []
    rejected = 0
    for block in obj["resourceSpans"]:
        if not isinstance(block, dict) or not isinstance(block.get("scopeSpans"), list):
            raise TraceInputError(problem)
        resource = {"resource": block["resource"]} if "resource" in block else {}
        for scope in block["scopeSpans"]:
            if not isinstance(scope, dict):
                raise TraceInputError(problem)
            for span in scope.get("spans") or []:
                one = {"resourceSpans": [{**resource, "scopeSpans": [{"spans": [span]}]}]}
                try:
                    spans.extend(spans_from_json(one, source="request body", clamped=clamped))
                except TraceInputError:
                    rejected += 1
    return _with_clamped(Decoded(spans, rejected, problem), clamped)


def _inflate(data: bytes, encoding: str, limit: int) -> bytes:
    """`data` with its gzip or deflate Content-Encoding undone; at most `limit` bytes once inflated.

    Gzip bodies may hold several members, as `gzip.decompress` reads them. Deflate is
    zlib-wrapped as HTTP says, or raw as some clients send it (told by the first byte).
    """
    if encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    else:
        wbits = zlib.MAX_WBITS if data[:1] and data[0] & 0x0F == 8 else -zlib.MAX_WBITS
    parts: list[bytes] = []
    size = 0
    while data:
        inflater = zlib.decompressobj(wbits)
        try:
            part = inflater.decompress(data, limit + 1 - size)
        except zlib.error:
            raise TraceInputError(
                f"request body: Content-Encoding is {encoding} but the body is not {encoding} data"
            ) from None
        size += len(part)
        if size > limit:
            raise Refusal(
                413, grpc.StatusCode.RESOURCE_EXHAUSTED, f"request body over {limit} bytes once {encoding} is undone"
            )
        if not inflater.eof:
            raise TraceInputError(f"request body: the {encoding} data is cut short")
        parts.append(part)
        data = inflater.unused_data if encoding == "gzip" else b""
    return b"".join(parts)


async def _body(request: web.Request, limit: int) -> bytes:
    """The request body with a gzip or deflate Content-Encoding undone, at most `limit` bytes.

    The HTTP site reads bodies as sent (`auto_decompress=False`): when aiohttp undoes
    the encoding, a body that is not what its header says fails inside aiohttp, which
    logs a traceback for every such request, and a cut-short gzip body goes unnoticed.
    """
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "deflate"):
        raise TraceInputError(f"unsupported Content-Encoding {encoding!r}; send gzip or none")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Refusal(413, grpc.StatusCode.RESOURCE_EXHAUSTED, f"request body over {limit} bytes") from None
    except (web.HTTPException, RequestPayloadError, OSError):
        raise TraceInputError("request body: the connection broke while reading it") from None
    return _inflate(body, encoding, limit) if encoding in ("gzip", "deflate") else body


# ---------------------------------------------------------------------------
# HTTP


def _status_body(message: str, content_type: str) -> bytes:
    from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]

    if content_type == JSON:
        return json.dumps({"message": message}).encode()
    return bytes(Status(message=message).SerializeToString())


def _http_error(status: int, message: str, content_type: str, *, retry_after: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
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
        ctype = request.content_type
        reply_type = JSON if ctype == JSON else PROTOBUF
        if not intake.authorized(request.headers.get("Authorization")):
            r = intake.refuse_unauthorized("http")
            return _http_error(r.status, r.message, reply_type)
        if ctype not in (PROTOBUF, JSON):
            intake.metrics.requests.labels("http", "malformed").inc()
            return _http_error(415, f"unsupported Content-Type {ctype!r}; send {PROTOBUF} or {JSON}", PROTOBUF)
        try:
            body = await _body(request, intake.max_body_bytes)
            intake.admit("http", body)
            if ctype == JSON:
                decoded = decode_json(body)
            else:
                try:
                    req = decode_traces(body)
                except (DecodeError, RuntimeError, ValueError) as exc:
                    raise TraceInputError(
                        f"request body: not an OTLP protobuf ExportTraceServiceRequest: {exc or 'cannot parse'}"
                    ) from None
                decoded = decode_request(req, intake.prefetch(), body if intake.share() else None)
        except Refusal as r:
            if r.status == 413:
                intake.too_large("http", request.remote, r.message)
            return _http_error(r.status, r.message, reply_type, retry_after=r.retry_after if r.retryable else None)
        except TraceInputError as exc:
            intake.metrics.requests.labels("http", "malformed").inc()
            log.debug("OTLP/HTTP export from %s refused: %s", request.remote, exc)
            return _http_error(400, str(exc), reply_type)
        intake.take(decoded, "http")
        return _export_response(decoded, reply_type)

    async def healthz(request: web.Request) -> web.Response:
        status = health()
        return web.json_response(status, status=200 if status["status"] == "ok" else 503)

    return [
        web.post("/v1/traces", export),
        web.get("/healthz", healthz),
        web.get("/metrics", metrics_handler),
    ]


def metrics_handler(intake: Intake, metrics: Metrics) -> Any:
    from .metrics import CONTENT_TYPE

    async def handler(request: web.Request) -> web.Response:
        if not intake.authorized(request.headers.get("Authorization")):
            return web.Response(status=401, text="missing or wrong bearer token\n")
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    return handler


# ---------------------------------------------------------------------------
# gRPC


def _retry_metadata(seconds: int) -> tuple[tuple[str, bytes], ...]:
    info = RetryInfo()
    info.retry_delay.seconds = seconds
    return (("google.rpc.retryinfo-bin", info.SerializeToString()),)


SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class TraceService:
    """`TraceService/Export`, taking the request as bytes so a malformed one gets INVALID_ARGUMENT."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    async def export(self, body: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> ExportTraceServiceResponse:
        intake = self.intake
        metadata = dict(context.invocation_metadata() or ())
        if not intake.authorized(metadata.get("authorization")):
            r = intake.refuse_unauthorized("grpc")
            await context.abort(r.code, r.message)
        try:
            intake.admit("grpc", body)
        except Refusal as r:
            context.set_trailing_metadata(_retry_metadata(r.retry_after))
            await context.abort(r.code, r.message)
        try:
            request = decode_traces(body)
        except (DecodeError, RuntimeError, ValueError) as exc:
            intake.metrics.requests.labels("grpc", "malformed").inc()
            message = f"not an OTLP ExportTraceServiceRequest: {exc or 'cannot parse'}"
            log.debug("OTLP/gRPC export from %s refused: %s", context.peer(), message)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
        decoded = decode_request(request, intake.prefetch(), body if intake.share() else None)
        intake.take(decoded, "grpc")
        return decoded.response()


def add_trace_service(server: grpc.aio.Server, intake: Intake) -> None:
    handler = grpc.unary_unary_rpc_method_handler(
        TraceService(intake).export, response_serializer=ExportTraceServiceResponse.SerializeToString
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),))
