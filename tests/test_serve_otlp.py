"""The runtime end to end: real OpenTelemetry SDK exporters sending to a real `fluo serve` on loopback."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import logging
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from serve_support import (
    EXAMPLE_RULES,
    EXAMPLE_TRACES,
    ROOT,
    LoopbackServer,
    Sender,
    config,
    metric,
    post,
    retry_delay,
    self_signed,
    settled,
    wait_for,
)

from fluo_lang.otlp import load_trace_file, spans_to_request
from fluo_run.serve.runtime import RuntimeThread
from fluo_run.serve.sinks import CallbackSink


def by_rule(signals: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in signals:
        out.setdefault(s["rule"], set()).add(s.get("trace_id") or "window")
    return out


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sdk_exporters_deliver_and_signals_reach_every_sink(tmp_path: Path, protocol: str) -> None:
    db = tmp_path / "signals.db"
    jsonl = tmp_path / "signals.jsonl"
    with LoopbackServer() as webhook, LoopbackServer() as logs:
        cfg = config(
            tmp_path, db=db, jsonl=str(jsonl), webhook=f"{webhook.url}/hook", otlp_logs=logs.url, trace_idle=0.5
        )
        with RuntimeThread(cfg) as rt:
            endpoint = f"127.0.0.1:{rt.runtime.grpc_port}" if protocol == "grpc" else rt.http_url
            if protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression
            else:
                from opentelemetry.exporter.otlp.proto.http import Compression  # type: ignore[assignment]
            sender = Sender(protocol, endpoint, compression=Compression.Gzip)
            storm = sender.storm()
            bad = sender.payment(2500, fraud_check=False)
            good = sender.payment(2500, fraud_check=True)
            quiet = sender.healthy()
            sender.flush()
            sender.close()
            wait_for(lambda: metric(rt, "fluo_spans_received_total", transport=protocol) == sender.sent, what="spans")
            wait_for(lambda: metric(rt, "fluo_traces_evaluated_total") == 4, what="4 traces evaluated")
            wait_for(lambda: metric(rt, "fluo_sink_signals_written_total", sink="otlp_logs") == 3, what="log export")
            wait_for(lambda: metric(rt, "fluo_sink_signals_written_total", sink="webhook") == 3, what="webhook")
            assert metric(rt, "fluo_signals_total", rule="auth_retry_storm", severity="critical") == 1
        expected = {"auth_retry_storm": {storm}, "auth_span_budget": {storm}, "charge_needs_fraud_check": {bad}}
        assert good not in str(expected) and quiet not in str(expected)

        rows = sqlite3.connect(db).execute("SELECT json FROM signals").fetchall()
        assert by_rule([json.loads(r[0]) for r in rows]) == expected
        lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
        assert by_rule(lines) == expected
        assert lines[0]["span_ids"] and lines[0]["observed"]

        hooked = [s for r in webhook.requests for s in json.loads(r.body)["signals"]]
        assert by_rule(hooked) == expected
        assert {r.path for r in webhook.requests} == {"/hook"}
        assert webhook.requests[0].headers["Content-Type"] == "application/json"

        records = []
        for r in logs.requests:
            assert r.path == "/v1/logs"
            req = ExportLogsServiceRequest.FromString(r.body)
            for rl in req.resource_logs:
                resource = {kv.key: kv.value.string_value for kv in rl.resource.attributes}
                assert resource["service.name"] == "fluo"
                records.extend(lr for sl in rl.scope_logs for lr in sl.log_records)
        got = {}
        for lr in records:
            attrs = {kv.key: kv.value for kv in lr.attributes}
            got.setdefault(attrs["fluo.rule"].string_value, set()).add(lr.trace_id.hex())
            assert lr.event_name == "fluo.signal"
            assert lr.body.string_value
        assert got == expected
        storm_record = next(lr for lr in records if lr.severity_text == "CRITICAL")
        assert storm_record.severity_number == 21
        assert storm_record.span_id  # linked to a span of the trace that fired


def test_json_bodies_gzip_and_spec_responses(tmp_path: Path) -> None:
    got: list[dict[str, Any]] = []
    with RuntimeThread(config(tmp_path, grpc=None), [CallbackSink(got.extend)]) as rt:
        url = f"{rt.http_url}/v1/traces"
        storm = (EXAMPLE_TRACES / "auth_retry_storm.json").read_bytes()
        status, headers, body = post(url, storm, "application/json")
        assert (status, json.loads(body)) == (200, {})
        assert headers["Content-Type"].startswith("application/json")

        payment = spans_to_request(load_trace_file(EXAMPLE_TRACES / "payment_no_fraud_check.json"))
        status, headers, body = post(
            url, gzip.compress(payment.SerializeToString()), "application/x-protobuf", **{"Content-Encoding": "gzip"}
        )
        assert status == 200 and headers["Content-Type"] == "application/x-protobuf"
        assert not ExportTraceServiceResponse.FromString(body).HasField("partial_success")

        status, _, body = post(
            url,
            gzip.compress((EXAMPLE_TRACES / "checkout_error.json").read_bytes()),
            "application/json",
            **{"Content-Encoding": "gzip"},
        )
        assert status == 200
        wait_for(lambda: len({s["rule"] for s in got}) == 5, what="signals of the three traces")
    assert by_rule(got) == {
        "auth_retry_storm": {"e6da075228a4b9d515f246469b1b1141"},
        "auth_span_budget": {"e6da075228a4b9d515f246469b1b1141"},
        "charge_needs_fraud_check": {"78254e9eb29e2d15981d6b9c45ee1766"},
        "checkout_has_no_failed_descendants": {"7d82ed461982de1245298cfcb1746ec1"},
        "upstream_5xx_under_checkout": {"7d82ed461982de1245298cfcb1746ec1"},
    }


def test_malformed_bodies_get_400_with_a_message(tmp_path: Path) -> None:
    with RuntimeThread(config(tmp_path)) as rt:
        import grpc

        with grpc.insecure_channel(f"127.0.0.1:{rt.runtime.grpc_port}") as channel:
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            with pytest.raises(grpc.RpcError) as refused:
                export(b"\xff\x01garbage", timeout=5)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not an OTLP ExportTraceServiceRequest" in str(refused.value.details())

        url = f"{rt.http_url}/v1/traces"
        status, _, body = post(url, b'{"resourceSpans": [', "application/json")
        assert status == 400
        assert "invalid JSON" in json.loads(body)["message"]

        status, _, body = post(url, b"\xff\x01garbage", "application/x-protobuf")
        assert status == 400
        from google.rpc.status_pb2 import Status

        assert "not an OTLP protobuf" in Status.FromString(body).message

        status, _, body = post(url, b"not gzip", "application/json", **{"Content-Encoding": "gzip"})
        assert (status, json.loads(body)) == (
            400,
            {"message": "request body: Content-Encoding is gzip but the body is not gzip data"},
        )

        status, _, body = post(url, b"{}", "text/plain")
        assert status == 415

        status, _, body = post(url, json.dumps({"resourceSpans": 3}).encode(), "application/json")
        assert status == 400 and "resourceSpans" in json.loads(body)["message"]
        assert metric(rt, "fluo_export_requests_total", transport="http", outcome="malformed") == 5
        assert metric(rt, "fluo_export_requests_total", transport="grpc", outcome="malformed") == 1
        assert metric(rt, "fluo_spans_received_total", transport="http") == 0


def test_an_otlp_json_body_is_one_object_not_the_forms_of_a_trace_file(tmp_path: Path) -> None:
    """QA receiver r03: a top-level array (`[]`, or requests in one) or two objects one after the other, forms a
    trace file may take, were taken as requests (200); an OTLP/HTTP body is one object, so they are refused 400
    as `null` is."""
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "x", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
    request = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    refused = {
        b"null": "request body: expected an object, got null",
        b"[]": "request body: expected an object, got an array",
        f"[{request}]".encode(): "request body: expected an object, got an array",
        f"{request}{request}".encode(): f"request body:1:{len(request) + 1}: expected one object, got more after it",
        f"{request}\n {request}\n".encode(): "request body:2:2: expected one object, got more after it",
    }
    with RuntimeThread(config(tmp_path, grpc=None)) as rt:
        url = f"{rt.http_url}/v1/traces"
        for body, message in refused.items():
            status, _, answer = post(url, body, "application/json")
            assert (status, json.loads(answer)) == (400, {"message": message}), body
        assert post(url, f"\n{request}\n\n".encode(), "application/json")[0] == 200
        assert metric(rt, "fluo_export_requests_total", transport="http", outcome="malformed") == len(refused)
        assert metric(rt, "fluo_spans_received_total", transport="http") == 1


def test_partial_success_rejects_only_the_bad_spans(tmp_path: Path) -> None:
    """QA receiver: the message named the protobuf body `<request>:` where a JSON one's says `request body:`; now
    both say `request body:`, and a gRPC message's `request message:`, as their other errors do."""
    got: list[dict[str, Any]] = []
    with RuntimeThread(config(tmp_path), [CallbackSink(got.extend)]) as rt:
        url = f"{rt.http_url}/v1/traces"
        req = spans_to_request(load_trace_file(EXAMPLE_TRACES / "auth_retry_storm.json"))
        req.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01\x02\x03"  # 3 bytes, not 8
        status, _, body = post(url, req.SerializeToString(), "application/x-protobuf")
        assert status == 200
        resp = ExportTraceServiceResponse.FromString(body)
        assert resp.partial_success.rejected_spans == 1
        why = "resource_spans[0].scope_spans[0].spans[0].span_id: 3 bytes, expected an 8-byte span id"
        assert resp.partial_success.error_message == f"request body: {why}"
        with grpc.insecure_channel(f"127.0.0.1:{rt.runtime.grpc_port}") as channel:
            answer = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")(
                req.SerializeToString(), timeout=10
            )
        assert ExportTraceServiceResponse.FromString(answer).partial_success.error_message == f"request message: {why}"
        zero = spans_to_request(load_trace_file(EXAMPLE_TRACES / "auth_retry_storm.json"))
        zero.resource_spans[0].scope_spans[0].spans[0].trace_id = bytes(16)  # all zero: invalid, as OTLP says
        status, _, body = post(url, zero.SerializeToString(), "application/x-protobuf")
        assert status == 200
        assert ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans == 1

        doc = json.loads((EXAMPLE_TRACES / "healthy_login.json").read_text())
        doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "not-hex"
        status, _, body = post(url, json.dumps(doc).encode(), "application/json")
        answer = json.loads(body)
        assert status == 200 and answer["partialSuccess"]["rejectedSpans"] == "1"
        assert answer["partialSuccess"]["errorMessage"].startswith("request body: resourceSpans[0].scopeSpans[0]")
        assert "traceId" in answer["partialSuccess"]["errorMessage"]
        total = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
        wait_for(lambda: settled(rt))
        assert metric(rt, "fluo_spans_rejected_total", reason="malformed") == 4
        assert metric(rt, "fluo_spans_received_total", transport="http") == total - 1 + total - 1 + 3
        assert metric(rt, "fluo_spans_received_total", transport="grpc") == total - 1
    assert {s["rule"] for s in got} == {"auth_retry_storm", "auth_span_budget"}


def test_half_a_surrogate_pair_in_a_json_body_reads_as_u_fffd_and_bad_utf8_in_protobuf_is_a_400(
    tmp_path: Path,
) -> None:
    """A JSON body escaping half a UTF-16 pair (`"\\ud83d"`) was a 500 (UnicodeEncodeError holding its spans as
    protobuf), with or without a bad span beside it; now read as U+FFFD, as `fluo eval` reads it. Protobuf bytes
    that are not UTF-8 in a string field protobuf checks (a key) are a 400 saying so; in a name, replaced."""
    rules = tmp_path / "r.fluo"
    rules.write_text("rule named { detect trace.spans.exists(name == 'bad\\uFFFD' and service == 's\\uFFFD') }\n")
    got: list[dict[str, Any]] = []
    with RuntimeThread(config(tmp_path, grpc=None, rules=[rules]), [CallbackSink(got.extend)]) as rt:
        url = f"{rt.http_url}/v1/traces"

        def body(trace: int, *extra: str) -> bytes:
            span = (
                f'{{"traceId":"{trace:032x}","spanId":"00000000000000aa","name":"bad\\ud83d",'
                '"startTimeUnixNano":"1767225600000000000","endTimeUnixNano":"1767225600100000000"}'
            )
            resource = '{"attributes":[{"key":"service.name","value":{"stringValue":"s\\udfff"}}]}'
            spans = ",".join([span, *extra])
            return f'{{"resourceSpans":[{{"resource":{resource},"scopeSpans":[{{"spans":[{spans}]}}]}}]}}'.encode()

        assert post(url, body(1), "application/json")[::2] == (200, b"{}")
        status, _, answer = post(
            url, body(2, '{"traceId":"zz","spanId":"00000000000000ab","name":"x\\udc00"}'), "application/json"
        )
        assert status == 200 and json.loads(answer)["partialSuccess"]["rejectedSpans"] == "1"

        req = spans_to_request(load_trace_file(EXAMPLE_TRACES / "healthy_login.json"))
        req.resource_spans[0].scope_spans[0].spans[0].attributes[0].key = "KEY"
        data = req.SerializeToString().replace(b"KEY", b"K\xffY")
        status, _, answer = post(url, data, "application/x-protobuf")
        from google.rpc.status_pb2 import Status

        assert status == 400 and "String field had bad UTF-8" in Status.FromString(answer).message
        wait_for(lambda: len(got) == 2, what="a signal for each JSON body")
    assert sorted(s["trace_id"] for s in got) == [f"{1:032x}", f"{2:032x}"]


def test_a_span_ending_before_it_starts_is_kept_with_duration_0_and_the_client_is_told(tmp_path: Path) -> None:
    got: list[dict[str, Any]] = []
    with RuntimeThread(config(tmp_path, grpc=None), [CallbackSink(got.extend)]) as rt:
        url = f"{rt.http_url}/v1/traces"
        req = spans_to_request(load_trace_file(EXAMPLE_TRACES / "auth_retry_storm.json"))
        bad = req.resource_spans[0].scope_spans[0].spans[0]
        bad.end_time_unix_nano = bad.start_time_unix_nano - 1_000_000
        status, _, body = post(url, req.SerializeToString(), "application/x-protobuf")
        assert status == 200
        resp = ExportTraceServiceResponse.FromString(body)
        assert resp.partial_success.rejected_spans == 0  # a warning, as OTLP allows: nothing was refused
        assert resp.partial_success.error_message == (  # in `fluo eval`'s words (test_cli)
            f"1 span ends before it starts (first: span {bad.span_id.hex()} of trace {bad.trace_id.hex()}); "
            "each is read as ending when it starts, with duration 0"
        )

        doc = json.loads((EXAMPLE_TRACES / "healthy_login.json").read_text())
        span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        span["endTimeUnixNano"] = str(int(span["startTimeUnixNano"]) - 1)
        status, _, body = post(url, json.dumps(doc).encode(), "application/json")
        answer = json.loads(body)
        assert status == 200 and answer["partialSuccess"]["rejectedSpans"] == "0"
        assert "1 span ends before it starts" in answer["partialSuccess"]["errorMessage"]
        wait_for(lambda: settled(rt))
        assert metric(rt, "fluo_spans_clamped_total") == 2
        assert metric(rt, "fluo_spans_rejected_total", reason="malformed") == 0
    assert {s["rule"] for s in got} == {"auth_retry_storm", "auth_span_budget"}  # the trace was evaluated whole


def test_bearer_token_guards_both_receivers(tmp_path: Path) -> None:
    with RuntimeThread(config(tmp_path, auth_token="s3cret")) as rt:
        url = f"{rt.http_url}/v1/traces"
        body = (EXAMPLE_TRACES / "healthy_login.json").read_bytes()
        assert post(url, body, "application/json")[0] == 401
        assert post(url, body, "application/json", Authorization="Bearer wrong")[0] == 401
        assert post(url, body, "application/json", Authorization="Bearer s3cret")[0] == 200

        import grpc
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

        req = ExportTraceServiceRequest.FromString(
            spans_to_request(load_trace_file(EXAMPLE_TRACES / "payment_ok.json")).SerializeToString()
        )
        with grpc.insecure_channel(f"127.0.0.1:{rt.runtime.grpc_port}") as channel:
            stub = TraceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.Export(req, timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            stub.Export(req, timeout=5, metadata=(("authorization", "Bearer s3cret"),))
        wait_for(lambda: settled(rt))
        assert metric(rt, "fluo_export_requests_total", transport="http", outcome="unauthorized") == 2
        assert metric(rt, "fluo_export_requests_total", transport="grpc", outcome="unauthorized") == 1
        assert metric(rt, "fluo_traces_evaluated_total") == 2
        assert post(f"{rt.http_url}/metrics", b"", "text/plain")[0] in (401, 405)


def test_metrics_and_healthz(tmp_path: Path) -> None:
    with RuntimeThread(config(tmp_path, grpc=None)) as rt:
        health = json.loads(urllib.request.urlopen(f"{rt.http_url}/healthz", timeout=5).read())
        assert health["status"] == "ok" and health["rules"] == 6
        # SECURITY.md and docs/runtime.md list every key /healthz shows, to anyone who can reach it
        assert set(health) == {
            "status",
            "rules",
            "rule_files",
            "buffered_spans",
            "pending_spans",
            "sinks",
            "uptime_seconds",
        }
        assert health["sinks"] == {}  # no sink configured here; each sink by name: "ok", "retrying" or "failed"
        post(f"{rt.http_url}/v1/traces", (EXAMPLE_TRACES / "auth_retry_storm.json").read_bytes(), "application/json")
        wait_for(lambda: metric(rt, "fluo_traces_evaluated_total") == 1)
        text = urllib.request.urlopen(f"{rt.http_url}/metrics", timeout=5).read().decode()
    for line in (
        'fluo_spans_received_total{transport="http"} 61.0',
        'fluo_traces_assembled_total{reason="idle"} 1.0',
        "fluo_rule_evaluations_total 5.0",
        'fluo_signals_total{rule="auth_retry_storm",severity="critical"} 1.0',
        "fluo_trace_evaluation_seconds_count 1.0",
        "fluo_buffer_capacity_spans 1e+06",
    ):
        assert line in text
    assert "fluo_buffer_fill_ratio" in text and "fluo_pending_spans" in text


def _chain_request(spans: int, trace_byte: int) -> ExportTraceServiceRequest:
    """One trace whose spans form a chain `spans` deep (slow for a rule that walks ancestors)."""
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    tid = bytes([trace_byte]) * 16
    for i in range(spans):
        sp = ss.spans.add()
        sp.trace_id = tid
        sp.span_id = (i + 1).to_bytes(8, "big")
        if i:
            sp.parent_span_id = i.to_bytes(8, "big")
        sp.name = "step"
        sp.start_time_unix_nano = 1_767_225_600_000_000_000 + i
        sp.end_time_unix_nano = 1_767_225_600_000_000_000 + i + 1
    return req


def test_overload_returns_retryable_codes_and_sdk_retries_deliver_everything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """QA gRPC soak (r04): the refusals at --max-pending-spans were counted and never logged; now logged as the
    other limits are (one line every 10 s, the rest counted), every one accounted for by the stop."""
    caplog.set_level(logging.WARNING, logger="fluo.serve")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "load.fluo").write_text(
        "rule deep { expect trace.spans.all(ancestors.count() < 100000) }\n"
        "rule every_trace { detect trace.spans.count() > 0 }\n"
    )
    got: list[dict[str, Any]] = []
    cfg = config(tmp_path, rules=[rules], max_pending_spans=100, eval_budget=0)  # a slow trace, on purpose
    with RuntimeThread(cfg, [CallbackSink(got.extend)]) as rt:
        status, _, _ = post(
            f"{rt.http_url}/v1/traces", _chain_request(2200, 7).SerializeToString(), "application/x-protobuf"
        )
        assert status == 200
        wait_for(lambda: rt.runtime.evaluator.pending_spans > 100, what="the deep trace to await evaluation")
        status, headers, _ = post(
            f"{rt.http_url}/v1/traces", _chain_request(3, 8).SerializeToString(), "application/x-protobuf"
        )
        assert status == 429 and headers["Retry-After"] == "1"
        with (  # over gRPC: UNAVAILABLE with its RetryInfo in the status details, as the OTLP spec says (QA r01)
            grpc.insecure_channel(f"127.0.0.1:{rt.runtime.grpc_port}") as channel,
            pytest.raises(grpc.RpcError) as refused,
        ):
            channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")(
                _chain_request(3, 9).SerializeToString(), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert retry_delay(refused.value) == 1
        assert refused.value.details().startswith("over capacity")

        senders = [
            Sender("grpc", f"127.0.0.1:{rt.runtime.grpc_port}", timeout=30),
            Sender("http", rt.http_url, timeout=30),
        ]
        ids: list[str] = []

        def send(sender: Sender) -> None:
            for _ in range(5):
                ids.append(sender.healthy())
            sender.flush()

        threads = [threading.Thread(target=send, args=(s,)) for s in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for s in senders:
            s.close()
        wait_for(lambda: settled(rt) and metric(rt, "fluo_traces_evaluated_total") == 11, timeout=30)
        assert metric(rt, "fluo_export_requests_total", transport="grpc", outcome="refused") >= 1
        # the 429 above; the SDK sender's exports are refused too only while the deep trace still awaits
        # evaluation, which on an idle machine may be over before they come (the test alone failed so)
        assert metric(rt, "fluo_export_requests_total", transport="http", outcome="refused") >= 1
        assert metric(rt, "fluo_spans_received_total", transport="grpc") == 10
        assert metric(rt, "fluo_spans_received_total", transport="http") == 2200 + 10
        refused = sum(
            metric(rt, "fluo_export_requests_total", transport=t, outcome="refused") for t in ("grpc", "http")
        )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused an export")]
    assert lines[0].startswith("refused an export: ") and lines[0].endswith(
        "spans await evaluation (--max-pending-spans 100); retryable"
    )
    logged = sum(1 + sum(int(n) for n in re.findall(r"and (\d+) more like it", line)) for line in lines)
    held = [line for line in lines if ": and " in line]  # lines of their own, counting the ones held back
    assert logged - len(held) == refused
    assert all(
        re.fullmatch(
            r"refused an export over --max-pending-spans: and \d+ more like it since the last such line, held back "
            r"\(at most one such line every 10s\)",
            line,
        )
        for line in held
    )
    assert {s["trace_id"] for s in got if s["rule"] == "every_trace"} >= set(ids)
    assert len(ids) == 10


def test_caps_evict_and_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    got: list[dict[str, Any]] = []
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "size.fluo").write_text("rule size { detect trace.spans.count() > 0 }\n")
    cfg = config(
        tmp_path,
        grpc=None,
        rules=[rules],
        trace_idle=30.0,
        max_trace_age=30.0,
        max_spans_per_trace=1000,
        max_buffered_spans=2000,
    )
    with RuntimeThread(cfg, [CallbackSink(got.extend)]) as rt:
        url = f"{rt.http_url}/v1/traces"
        post(url, _chain_request(1500, 1).SerializeToString(), "application/x-protobuf")
        wait_for(lambda: metric(rt, "fluo_traces_evicted_total", reason="trace_span_cap") == 1)
        assert metric(rt, "fluo_spans_late_total") == 500
        assert "evaluated traces early: 1 at --max-spans-per-trace" in caplog.text
        post(url, _chain_request(900, 2).SerializeToString(), "application/x-protobuf")
        post(url, _chain_request(900, 3).SerializeToString(), "application/x-protobuf")
        post(url, _chain_request(900, 4).SerializeToString(), "application/x-protobuf")
        wait_for(lambda: metric(rt, "fluo_traces_evicted_total", reason="buffer_full") == 1)
        wait_for(lambda: len(got) == 2)
        assert [s["observed"]["count"] for s in got] == [1000, 900]
        assert [s["trace_id"][:2] for s in got] == ["01", "02"]  # the oldest trace went first
    # shutdown evaluates what was still buffered
    assert sorted(s["trace_id"][:2] for s in got) == ["01", "02", "03", "04"]


def test_a_batch_sent_twice_counts_its_spans_once(tmp_path: Path) -> None:
    """An exporter that timed out resends a batch the runtime already took: each span id counts once."""
    got: list[dict[str, Any]] = []
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "size.fluo").write_text("rule size { detect trace.spans.count() > 0 }\n")
    with RuntimeThread(config(tmp_path, grpc=None, rules=[rules], trace_idle=1.0), [CallbackSink(got.extend)]) as rt:
        url = f"{rt.http_url}/v1/traces"
        body = _chain_request(4, 8).SerializeToString()
        assert post(url, body, "application/x-protobuf")[0] == 200
        assert post(url, body, "application/x-protobuf")[0] == 200
        wait_for(lambda: len(got) == 1)
        assert metric(rt, "fluo_spans_duplicate_total") == 4
    assert got[0]["observed"] == {"count": 4, "bound": 0}


@pytest.mark.parametrize("running", [True, False], ids=["while-running", "at-the-end"])
def test_each_export_is_logged_at_debug_and_each_signal_at_info_throttled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, running: bool
) -> None:
    """QA new-user tour: serve said nothing as traffic came and signals fired, even with --log-level debug. QA docs
    r01: a signal held back, with no signal line after it to count it, was never said: a line of its own does,
    once the second has passed or at the end, whichever comes first."""
    caplog.set_level(logging.DEBUG, logger="fluo")
    got: list[dict[str, Any]] = []
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "size.fluo").write_text("rule size { severity: error  detect trace.spans.count() > 0 }\n")
    with RuntimeThread(config(tmp_path, grpc=None, rules=[rules], trace_idle=1.0), [CallbackSink(got.extend)]) as rt:
        request = _chain_request(3, 5)
        request.MergeFrom(_chain_request(2, 6))
        assert post(f"{rt.http_url}/v1/traces", request.SerializeToString(), "application/x-protobuf")[0] == 200
        wait_for(lambda: len(got) == 2)
        if running:  # said once the second has passed, with serve still running
            wait_for(lambda: any("held back" in r.getMessage() for r in caplog.records), what="the held-back line")
    received = [r for r in caplog.records if r.getMessage().startswith("received an export")]
    assert [(r.levelno, r.getMessage()) for r in received] == [
        (logging.DEBUG, "received an export over http: 5 span(s) of 2 trace(s)")
    ]
    fired = [r for r in caplog.records if r.getMessage().startswith("signal ")]
    assert [r.levelno for r in fired] == [logging.INFO]  # the second is held back: at most one a second
    first = got[0]["trace_id"]
    assert fired[0].getMessage() == f"signal size (error) on trace {first}"
    held = [r.getMessage() for r in caplog.records if "held back" in r.getMessage()]
    assert held == ["1 more signal(s) fired, held back since the last signal line (at most one line a second)"]


def test_late_spans_are_counted_and_dropped(tmp_path: Path) -> None:
    got: list[dict[str, Any]] = []
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "size.fluo").write_text("rule size { detect trace.spans.count() > 0 }\n")
    with RuntimeThread(config(tmp_path, grpc=None, rules=[rules]), [CallbackSink(got.extend)]) as rt:
        url = f"{rt.http_url}/v1/traces"
        whole = _chain_request(4, 9)
        post(url, whole.SerializeToString(), "application/x-protobuf")
        wait_for(lambda: len(got) == 1)
        post(url, whole.SerializeToString(), "application/x-protobuf")
        wait_for(lambda: metric(rt, "fluo_spans_late_total") == 4)
        wait_for(lambda: settled(rt))
    assert len(got) == 1 and got[0]["observed"]["count"] == 4


def test_windowed_rule_fires_when_its_window_closes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fluo")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rate.fluo").write_text("rule busy { window 1m  detect window.traces.count() >= 2 }\n")
    got: list[dict[str, Any]] = []
    with RuntimeThread(config(tmp_path, grpc=None, rules=[rules]), [CallbackSink(got.extend)]) as rt:
        request = _chain_request(2, 1)
        for byte in (2, 3):
            request.MergeFrom(_chain_request(2, byte))
        post(f"{rt.http_url}/v1/traces", request.SerializeToString(), "application/x-protobuf")
        wait_for(lambda: got, what="the window to close")
        assert metric(rt, "fluo_windows_closed_total") == 1
    assert len(got) == 1
    assert got[0]["window_start"] == "2026-01-01T00:00:00.000000000Z"
    assert got[0]["observed"] == {"count": 3, "bound": 2}
    fired = [r.getMessage() for r in caplog.records if r.getMessage().startswith("signal ")]
    window = "2026-01-01T00:00:00.000000000Z to 2026-01-01T00:01:00.000000000Z"
    assert fired == [f"signal busy (warning) on the window {window}"]


def test_a_window_signal_names_the_trace_of_each_span_in_every_sink(tmp_path: Path) -> None:
    """QA: two traces of a window using the same span ids gave 3 span_ids for 4 spans, none saying whose;
    each span is now listed with its trace (`trace_ids`), in the store, JSON lines, webhook and OTLP logs."""
    (tmp_path / "w.fluo").write_text("rule w { window 1m  detect window.spans.count() == 4 }\n")
    db, jsonl = tmp_path / "s.db", tmp_path / "s.jsonl"
    with LoopbackServer() as webhook, LoopbackServer() as logs:
        cfg = config(tmp_path, grpc=None, rules=[tmp_path / "w.fluo"], db=db, jsonl=str(jsonl),
                     webhook=f"{webhook.url}/hook", otlp_logs=logs.url)  # fmt: skip
        with RuntimeThread(cfg) as rt:
            traces = ROOT / "tests" / "conformance" / "traces" / "same_span_ids.json"
            post(f"{rt.http_url}/v1/traces", traces.read_bytes(), "application/json")
            sinks = ("sqlite", "jsonl", "webhook", "otlp_logs")
            written = lambda: [metric(rt, "fluo_sink_signals_written_total", sink=sink) for sink in sinks]  # noqa: E731
            wait_for(lambda: written() == [1, 1, 1, 1], what="the signal in every sink")
    e5, e6 = "2a".rjust(32, "0"), "2b".rjust(32, "0")
    pairs = [("0000000000000001", e5), ("0000000000000001", e6), ("0000000000000002", e5), ("0000000000000003", e6)]
    ((stored,),) = sqlite3.connect(db).execute("SELECT json FROM signals").fetchall()
    [line] = jsonl.read_text().splitlines()
    [hooked] = [s for r in webhook.requests for s in json.loads(r.body)["signals"]]
    for signal in (json.loads(stored), json.loads(line), hooked):
        assert sorted(zip(signal["span_ids"], signal["trace_ids"], strict=True)) == pairs
    [record] = [
        lr
        for r in logs.requests
        for rl in ExportLogsServiceRequest.FromString(r.body).resource_logs
        for sl in rl.scope_logs
        for lr in sl.log_records
    ]
    attrs = {kv.key: [v.string_value for v in kv.value.array_value.values] for kv in record.attributes}
    assert sorted(zip(attrs["fluo.span_ids"], attrs["fluo.trace_ids"], strict=True)) == pairs


def test_a_heartbeat_rule_fires_on_windows_where_nothing_came(tmp_path: Path) -> None:
    """Windows after the runtime started close empty when no trace completes in them, and are evaluated."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "beat.fluo").write_text("rule beat { window 200ms  expect window.traces.count() > 0 }\n")
    got: list[dict[str, Any]] = []
    started = time.time_ns()
    with RuntimeThread(config(tmp_path, grpc=None, rules=[rules]), [CallbackSink(got.extend)]) as rt:
        wait_for(lambda: len(got) >= 3, what="three silent windows")
        assert metric(rt, "fluo_windows_closed_total") >= 3
    assert {(s["rule"], json.dumps(s["observed"])) for s in got} == {("beat", '{"count": 0, "bound": 0}')}
    starts = [datetime.fromisoformat(s["window_start"]).timestamp() for s in got]
    assert starts == sorted(starts) and starts[0] >= started / 1e9
    assert all(round(b - a, 3) == 0.2 for a, b in itertools.pairwise(starts))  # every window, none skipped


def test_tls_on_both_receivers_with_sdk_exporters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import grpc

    # requests lets these variables override the exporter's certificate_file
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)

    cert, key = self_signed(tmp_path)
    got: list[dict[str, Any]] = []
    cfg = config(tmp_path, tls_cert=cert, tls_key=key, auth_token="t0ken")
    with RuntimeThread(cfg, [CallbackSink(got.extend)]) as rt:
        assert rt.http_url.startswith("https://")
        creds = grpc.ssl_channel_credentials(cert.read_bytes())
        via_grpc = Sender(
            "grpc-tls", f"localhost:{rt.runtime.grpc_port}", headers={"authorization": "Bearer t0ken"},
            credentials=creds,
        )  # fmt: skip
        via_http = Sender("http", rt.http_url, headers={"Authorization": "Bearer t0ken"}, certificate_file=str(cert))
        storms = {via_grpc.storm(), via_http.storm()}
        for s in (via_grpc, via_http):
            s.flush()
            s.close()
        wait_for(lambda: metric(rt, "fluo_traces_evaluated_total") == 2)
        wait_for(lambda: settled(rt))
        assert metric(rt, "fluo_export_requests_total", transport="grpc", outcome="unauthorized") == 0
    assert {s["trace_id"] for s in got if s["rule"] == "auth_retry_storm"} == storms


def test_webhook_retries_until_delivered(tmp_path: Path) -> None:
    with LoopbackServer(status_of=lambda n: 503 if n < 2 else 200) as hook:
        with RuntimeThread(config(tmp_path, grpc=None, webhook=hook.url)) as rt:
            post(f"{rt.http_url}/v1/traces", (EXAMPLE_TRACES / "checkout_error.json").read_bytes(), "application/json")
            wait_for(lambda: metric(rt, "fluo_sink_signals_written_total", sink="webhook") == 2, what="delivery")
            assert metric(rt, "fluo_sink_signals_dropped_total", sink="webhook", reason="failed") == 0
        assert len(hook.requests) == 3
        assert len({r.body for r in hook.requests}) == 1  # the same batch, resent


def test_webhook_tries_once_and_retries_five_times_then_says_how_often(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fluo_run.serve.sinks import SinkError, WebhookSink

    monkeypatch.setattr(WebhookSink, "FIRST_BACKOFF", 0.001)
    monkeypatch.setattr(WebhookSink, "MAX_BACKOFF", 0.004)
    with LoopbackServer(status_of=lambda n: 503) as hook:
        with pytest.raises(SinkError, match=r"HTTP 503 after 6 attempts$"):
            WebhookSink(hook.url).write([{"rule": "r"}], threading.Event())
        assert len(hook.requests) == 6
        stopping = threading.Event()
        stopping.set()  # shutting down: one attempt, no retry, and the message says so
        with pytest.raises(SinkError, match=r"HTTP 503 after 1 attempt$"):
            WebhookSink(hook.url).write([{"rule": "r"}], stopping)
        assert len(hook.requests) == 7


def test_a_dead_sink_never_blocks_and_its_drops_are_counted(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"  # nothing listens once closed
    got: list[dict[str, Any]] = []
    with RuntimeThread(config(tmp_path, grpc=None, webhook=dead), [CallbackSink(got.extend)]) as rt:
        url = f"{rt.http_url}/v1/traces"
        for name in ("auth_retry_storm.json", "checkout_error.json", "payment_no_fraud_check.json"):
            post(url, (EXAMPLE_TRACES / name).read_bytes(), "application/json")
        wait_for(lambda: len(got) == 5, what="the working sink to get every signal")
        assert metric(rt, "fluo_sink_signals_written_total", sink="webhook") == 0  # still retrying
    # shutdown cut the retries short; every undelivered signal is counted: those the webhook tried as
    # failed, those still queued once it was known to be down as shutdown (how many of each is timing)
    failed = metric(rt, "fluo_sink_signals_dropped_total", sink="webhook", reason="failed")
    at_shutdown = metric(rt, "fluo_sink_signals_dropped_total", sink="webhook", reason="shutdown")
    assert failed >= 1 and failed + at_shutdown == 5
    assert metric(rt, "fluo_sink_signals_written_total", sink="webhook") == 0


def test_a_full_sink_queue_drops_and_counts() -> None:
    from fluo_run.serve.metrics import Metrics
    from fluo_run.serve.sinks import SinkWorker

    release = threading.Event()
    seen: list[dict[str, Any]] = []

    def slow(batch: list[dict[str, Any]]) -> None:
        release.wait(10)
        seen.extend(batch)

    metrics = Metrics()
    worker = SinkWorker(CallbackSink(slow, name="slow"), metrics, capacity=2)
    worker.start()
    worker.put([{"n": 0}])
    wait_for(lambda: worker.queue.empty(), what="the first signal to be taken")
    worker.put([{"n": i} for i in range(1, 6)])  # two fit in the queue, three do not
    sample = metrics.registry.get_sample_value
    assert sample("fluo_sink_signals_dropped_total", {"sink": "slow", "reason": "queue_full"}) == 3
    release.set()
    worker.close(10)
    assert [s["n"] for s in seen] == [0, 1, 2]
    assert sample("fluo_sink_signals_written_total", {"sink": "slow"}) == 3


def test_metrics_on_a_separate_address(tmp_path: Path) -> None:
    with RuntimeThread(config(tmp_path, grpc=None, metrics=("127.0.0.1", 0))) as rt:
        port = rt.runtime.metrics_port
        assert port and port != rt.runtime.http_port
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "fluo_rules_loaded" in text


def test_otlp_logs_over_grpc(tmp_path: Path) -> None:
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

    received: list[ExportLogsServiceRequest] = []

    def export(request: ExportLogsServiceRequest, context: Any) -> ExportLogsServiceResponse:
        received.append(request)
        return ExportLogsServiceResponse()

    handler = grpc.unary_unary_rpc_method_handler(
        export,
        request_deserializer=ExportLogsServiceRequest.FromString,
        response_serializer=ExportLogsServiceResponse.SerializeToString,
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "opentelemetry.proto.collector.logs.v1.LogsService", {"Export": handler}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        cfg = config(tmp_path, grpc=None, otlp_logs=f"http://127.0.0.1:{port}", otlp_logs_protocol="grpc")
        with RuntimeThread(cfg) as rt:
            post(f"{rt.http_url}/v1/traces", (EXAMPLE_TRACES / "payment_bypass.json").read_bytes(), "application/json")
            wait_for(lambda: metric(rt, "fluo_sink_signals_written_total", sink="otlp_logs") == 1)
    finally:
        server.stop(None).wait(5)
    (record,) = [lr for r in received for rl in r.resource_logs for sl in rl.scope_logs for lr in sl.log_records]
    attrs = {kv.key: kv.value for kv in record.attributes}
    assert attrs["fluo.rule"].string_value == "charge_needs_fraud_check"
    assert record.trace_id.hex() == attrs["fluo.trace_id"].string_value
    assert json.loads(attrs["fluo.observed"].string_value) == {"when": True, "always": True, "never": True}


def test_otlp_logs_retries_until_delivered_and_says_it_is_retrying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fluo_run.serve.sinks import OtlpLogsSink

    monkeypatch.setattr(OtlpLogsSink, "FIRST_BACKOFF", 0.3)
    collector = LoopbackServer(status_of=lambda n: 503 if n < 2 else 200)
    with collector, RuntimeThread(config(tmp_path, grpc=None, otlp_logs=collector.url)) as rt:
        post(f"{rt.http_url}/v1/traces", (EXAMPLE_TRACES / "payment_bypass.json").read_bytes(), "application/json")
        wait_for(lambda: rt.runtime.sinks.health()["otlp_logs"] == "retrying", what="the sink to be retrying")
        wait_for(lambda: metric(rt, "fluo_sink_signals_written_total", sink="otlp_logs") == 1, what="delivery")
        assert rt.runtime.sinks.health()["otlp_logs"] == "ok"
    assert len(collector.requests) == 3  # one request each time: the exporter does not retry behind the sink
    assert len({r.body for r in collector.requests}) == 1


def test_a_trace_past_the_evaluation_budget_is_cut_short_with_a_signal(tmp_path: Path) -> None:
    from fluo_lang.evaluate import TRUNCATED_RULE

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "deep.fluo").write_text("rule deep { expect trace.spans.all(descendants.count() < 100000) }\n")
    got: list[dict[str, Any]] = []
    with RuntimeThread(
        config(tmp_path, grpc=None, rules=[rules], eval_budget=20_000), [CallbackSink(got.extend)]
    ) as rt:
        post(f"{rt.http_url}/v1/traces", _chain_request(1500, 5).SerializeToString(), "application/x-protobuf")
        wait_for(lambda: got, what="the truncation signal")
    assert [s["rule"] for s in got] == [TRUNCATED_RULE]
    assert got[0]["observed"]["budget"] == 20_000


def _series(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Each sample of a Prometheus exposition: name -> sorted labels -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_every_labelled_series_known_up_front_is_exposed_at_0_from_the_start(tmp_path: Path) -> None:
    """Operator QA: labelled counters appeared only at their first increment, so `rate()` and alerts on
    `fluo_rule_reloads_total{result="rejected"}`, drops or refusals saw no series until the first one."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "payments.fluo").write_text((EXAMPLE_RULES / "payments.fluo").read_text())
    with RuntimeThread(config(tmp_path, rules=[rules], db=tmp_path / "s.db")) as rt:
        text = urllib.request.urlopen(f"{rt.http_url}/metrics", timeout=5).read().decode()
        series = _series(text)
        for transport in ("http", "grpc"):
            assert series["fluo_spans_received_total"][(("transport", transport),)] == 0
            for outcome in ("ok", "partial", "malformed", "refused", "unavailable", "unauthorized", "too_large"):
                assert series["fluo_export_requests_total"][(("outcome", outcome), ("transport", transport))] == 0
            for outcome in ("cancelled",):  # both transports, as an HTTP body cut short is cancelled too
                assert series["fluo_export_requests_total"][(("outcome", outcome), ("transport", transport))] == 0
        assert series["fluo_spans_rejected_total"] == {(("reason", "malformed"),): 0}
        completions = ("idle", "max_age", "trace_span_cap", "buffer_full", "shutdown")
        assert set(series["fluo_traces_assembled_total"]) == {(("reason", r),) for r in completions}
        assert set(series["fluo_traces_evicted_total"]) == {(("reason", r),) for r in ("trace_span_cap", "buffer_full")}
        assert series["fluo_rule_reloads_total"] == {(("result", "loaded"),): 1, (("result", "rejected"),): 0}
        assert series["fluo_sink_signals_written_total"] == {(("sink", "sqlite"),): 0}
        for reason in ("queue_full", "failed", "shutdown"):
            assert series["fluo_sink_signals_dropped_total"][(("reason", reason), ("sink", "sqlite"))] == 0
        assert series["fluo_signals_total"] == {
            (("rule", "charge_needs_fraud_check"), ("severity", "error")): 0,
            (("rule", "fluo.evaluation_truncated"), ("severity", "warning")): 0,
        }
        assert series["fluo_rule_errors_total"] == {(("rule", "*"),): 0, (("rule", "charge_needs_fraud_check"),): 0}
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(text):  # no counter left without a series
            if family.type == "counter" and family.name.startswith("fluo_"):
                assert family.samples, family.name

        (rules / "auth.fluo").write_text((EXAMPLE_RULES / "auth.fluo").read_text())
        assert asyncio.run_coroutine_threadsafe(rt.runtime.reload(), rt.loop).result(30)
        storm = {"rule": "auth_retry_storm", "severity": "critical"}
        registry = rt.runtime.metrics.registry
        wait_for(lambda: registry.get_sample_value("fluo_signals_total", storm) == 0, what="the new rule's series")
        assert metric(rt, "fluo_rule_errors_total", rule="auth_retry_storm") == 0


def _healthz(rt: RuntimeThread) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{rt.http_url}/healthz", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("with_store", [False, True], ids=["the only sink", "beside a working store"])
def test_healthz_says_failing_when_every_sink_failed_and_degraded_when_some_did(
    tmp_path: Path, with_store: bool
) -> None:
    """Operator QA: /healthz answered 200 "ok" while the only sink had failed and every signal was lost."""
    with LoopbackServer(status_of=lambda n: 400) as hook:  # a 4xx is final: the batch fails for good
        cfg = config(tmp_path, grpc=None, webhook=hook.url, db=tmp_path / "s.db" if with_store else None)
        with RuntimeThread(cfg) as rt:
            assert _healthz(rt)[0] == 200 and _healthz(rt)[1]["status"] == "ok"
            post(f"{rt.http_url}/v1/traces", (EXAMPLE_TRACES / "checkout_error.json").read_bytes(), "application/json")
            wait_for(
                lambda: metric(rt, "fluo_sink_signals_dropped_total", sink="webhook", reason="failed"), what="drop"
            )
            code, health = _healthz(rt)
            if with_store:
                assert (code, health["status"]) == (200, "degraded")
                assert health["sinks"] == {"sqlite": "ok", "webhook": "failed"}
            else:
                assert (code, health["status"]) == (200, "failing")  # said, not 503: a probe would make it stick
                assert health["sinks"] == {"webhook": "failed"}
