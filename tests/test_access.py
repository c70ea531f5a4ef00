"""Access to a real `fluo serve`: bearer tokens on both receivers, TLS from certificate files,
`/metrics` on its own address, loopback by default (helpers in `fuzz/scenarios.py`)."""

from __future__ import annotations

import http.client
import sqlite3
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))

from scenarios import PROTOBUF, Serve, make_certificate, sdk_exporter, trace_request, wait_for

from fluo_run.serve.config import DEFAULT_GRPC, DEFAULT_HTTP, ServeConfig

TOKEN = "s3cret-token"
REFUSED_SALT = 0xBAD


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "every.fluo").write_text("rule every_trace { detect trace.spans.count() > 0 }\n")
    return folder


def stored_trace_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT trace_id FROM signals")}


def send_with_sdk(serve: Serve) -> tuple[set[str], int]:
    """Two traces over each receiver through the SDK exporters; their ids and span count."""
    from scenarios import SdkSender

    ids: set[str] = set()
    spans = 0
    for protocol in ("grpc", "http"):
        sender = SdkSender(sdk_exporter(serve, protocol, timeout=20), f"app-{protocol}")
        sender.trace(3)
        sender.trace(2)
        sender.close(30)
        assert sender.exporter.dropped == 0 and sender.exporter.delivered == 5, protocol
        ids.update(sender.traces)
        spans += sender.spans
    return ids, spans


def refused_attempts(serve: Serve) -> None:
    """Every way of arriving without the right token, at both receivers: all refused."""
    body = trace_request(1, 4, salt=REFUSED_SALT).SerializeToString()
    for answer in (
        serve.post(body, PROTOBUF, auth=False),
        serve.post(body, PROTOBUF, {"Authorization": "Bearer wrong"}, auth=False),
        serve.post(body, PROTOBUF, {"Authorization": TOKEN}, auth=False),
        serve.request("/metrics"),
    ):
        assert answer.status == 401
        assert answer.headers.get("WWW-Authenticate") == "Bearer"  # QA: RFC 7235 asks a 401 to say how
    with serve.channel() as channel:
        assert serve.export(channel, body, auth=False) == grpc.StatusCode.UNAUTHENTICATED
        wrong = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.RpcError) as refused:
            wrong(body, timeout=10, metadata=(("authorization", "Bearer wrong"),))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_requests_without_the_token_are_refused_and_never_evaluated(tmp_path: Path, rules: Path) -> None:
    db = tmp_path / "signals.db"
    args = ["--rules", str(rules), "--db", str(db), "--trace-idle", "100ms"]
    with Serve(args, tmp_path, token=TOKEN) as serve:
        refused_attempts(serve)
        ids, spans = send_with_sdk(serve)
        wait_for(lambda: serve.total("fluo_sink_signals_written_total") >= len(ids), 30, "the signals")
        wait_for(serve.settled, 30, "the runtime to settle")
        assert serve.total("fluo_spans_received_total") == spans
        assert serve.total("fluo_traces_evaluated_total") == len(ids)
        assert serve.total("fluo_export_requests_total", outcome="unauthorized") == 5
        assert serve.terminate() == 0
    assert stored_trace_ids(db) == ids
    assert not any(t.startswith(f"{REFUSED_SALT:016x}") for t in stored_trace_ids(db))


def test_the_bearer_scheme_is_matched_in_any_case(tmp_path: Path, rules: Path) -> None:
    """QA L2: the auth scheme is case-insensitive (RFC 7235 §2.1); some proxies and clients lower-case it."""
    body = trace_request(1, 2).SerializeToString()
    with Serve(["--rules", str(rules), "--no-db"], tmp_path, token=TOKEN) as serve:
        with serve.channel() as channel:
            call = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )
            for header in (f"bearer {TOKEN}", f"BEARER {TOKEN}", f"Bearer  {TOKEN}"):
                assert serve.post(body, PROTOBUF, {"Authorization": header}, auth=False).status == 200, header
                call(body, timeout=10, metadata=(("authorization", header),))
            for header in (f"Basic {TOKEN}", f"Bearer{TOKEN}", f"bearer {TOKEN.upper()}"):
                assert serve.post(body, PROTOBUF, {"Authorization": header}, auth=False).status == 401, header
                with pytest.raises(grpc.RpcError) as refused:
                    call(body, timeout=10, metadata=(("authorization", header),))
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert serve.terminate() == 0


def _raw_request(serve: Serve, path: str, headers: list[tuple[str, str]], body: bytes | None = None) -> int:
    """The status of a request sent with exactly `headers` (latin-1 on the wire: `\xff` is the byte 0xff)."""
    conn = http.client.HTTPConnection("127.0.0.1", int(serve.ports["HTTP"]), timeout=15)
    try:
        conn.putrequest("POST" if body is not None else "GET", path)
        sent = [("Content-Type", PROTOBUF), ("Content-Length", str(len(body)))] if body is not None else []
        for name, value in [*headers, *sent]:
            conn.putheader(name, value)
        conn.endheaders(body)
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_token_not_utf8_or_given_twice_is_refused(tmp_path: Path, rules: Path) -> None:
    """Security QA (r05): `Bearer TOKEN\\xff` (bytes that are not UTF-8) was a 500 and a logged traceback on
    /v1/traces and /metrics instead of 401. And HTTP read the first of several Authorization headers, gRPC the
    last `authorization` value: a request giving more than one is refused by both."""
    body = trace_request(1, 2).SerializeToString()
    good = ("Authorization", f"Bearer {TOKEN}")
    with Serve(["--rules", str(rules), "--no-db"], tmp_path, token=TOKEN) as serve:
        assert _raw_request(serve, "/v1/traces", [good], body) == 200
        for headers in ([("Authorization", f"Bearer {TOKEN}\xff")], [("Authorization", "Bearer \xff")]):
            assert _raw_request(serve, "/v1/traces", headers, body) == 401
            assert _raw_request(serve, "/metrics", headers) == 401
        for headers in ([good, good], [good, ("Authorization", "Bearer wrong")], [("Authorization", "x"), good]):
            assert _raw_request(serve, "/v1/traces", headers, body) == 401, headers
        with serve.channel() as channel:
            call = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )
            call(body, timeout=10, metadata=(("authorization", f"Bearer {TOKEN}"),))
            for wrong in ("Bearer wrong", f"Bearer {TOKEN}"):
                with pytest.raises(grpc.RpcError) as refused:
                    call(body, timeout=10, metadata=(("authorization", wrong), ("authorization", f"Bearer {TOKEN}")))
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert serve.total("fluo_export_requests_total", outcome="unauthorized") == 7
        assert serve.terminate() == 0


def test_tls_on_both_receivers_with_certificates_from_files(
    tmp_path: Path, rules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `requests` lets these override the HTTP exporter's own `certificate_file`
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    tls = make_certificate(tmp_path / "tls")
    db = tmp_path / "signals.db"
    args = ["--rules", str(rules), "--db", str(db), "--trace-idle", "100ms"]
    with Serve(args, tmp_path, token=TOKEN, tls=tls) as serve:
        assert any("https://127.0.0.1" in line for line in serve.log)
        ids, _spans = send_with_sdk(serve)
        refused_attempts(serve)
        # plain text to the TLS ports gets nowhere
        plain = urllib.request.Request(f"http://127.0.0.1:{serve.ports['HTTP']}/healthz")
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(plain, timeout=5)
        with grpc.insecure_channel(f"127.0.0.1:{serve.ports['gRPC']}") as channel:
            assert serve.export(channel, b"") == grpc.StatusCode.UNAVAILABLE
        # a client that does not trust the certificate refuses the server
        untrusting = ssl.create_default_context()
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(serve.url("/healthz"), timeout=5, context=untrusting)
        wait_for(lambda: serve.total("fluo_sink_signals_written_total") >= len(ids), 30, "the signals")
        assert serve.terminate() == 0
    assert stored_trace_ids(db) == ids


def test_metrics_on_their_own_address_behind_the_token(tmp_path: Path, rules: Path) -> None:
    args = ["--rules", str(rules), "--no-db", "--metrics", "127.0.0.1:0"]
    with Serve(args, tmp_path, token=TOKEN) as serve:
        assert serve.ports["metrics"] not in (serve.ports["HTTP"], serve.ports["gRPC"])
        assert serve.request("/metrics", port="metrics").status == 401
        answer = serve.request("/metrics", headers=serve.auth(), port="metrics")
        assert answer.status == 200 and b"fluo_spans_received_total" in answer.body


def test_receivers_bind_loopback_unless_told_otherwise() -> None:
    config = ServeConfig()
    assert config.http[0] == "127.0.0.1" and config.grpc is not None and config.grpc[0] == "127.0.0.1"
    assert DEFAULT_HTTP.startswith("127.0.0.1:") and DEFAULT_GRPC.startswith("127.0.0.1:")
    assert config.auth_token is None and config.tls_cert is None  # opt-in, documented in SECURITY.md
