"""Bad input to `fluo serve` and `fluo signals`: one clear line and the documented status, never a traceback."""

from __future__ import annotations

import gzip
import json
import logging
import socket
import zlib
from pathlib import Path

import grpc
import pytest
from serve_support import config, metric, post, wait_for

from fluo_run.serve.runtime import RuntimeThread

EMPTY = b'{"resourceSpans": []}'


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def test_a_body_not_in_its_content_encoding_gets_a_status_saying_so(tmp_path: Path) -> None:
    limit = 64 * 1024
    refused = [
        ("gzip", b"not gzip", 400, "request body: Content-Encoding is gzip but the body is not gzip data"),
        ("deflate", b"not deflate", 400, "request body: Content-Encoding is deflate but the body is not deflate data"),
        ("gzip", gzip.compress(EMPTY * 50)[:30], 400, "request body: the gzip data is cut short"),
        ("deflate", zlib.compress(EMPTY * 50)[:20], 400, "request body: the deflate data is cut short"),
        ("br", b"whatever", 400, "unsupported Content-Encoding 'br'; send gzip or none"),
        ("gzip", gzip.compress(b" " * (limit + 1)), 413, f"request body over {limit} bytes once gzip is undone"),
        ("identity", b" " * (limit + 1), 413, f"request body over {limit} bytes"),
    ]
    accepted = [
        ("gzip", gzip.compress(EMPTY[:10]) + gzip.compress(EMPTY[10:])),  # two gzip members
        ("deflate", zlib.compress(EMPTY)),
        ("deflate", raw_deflate(EMPTY)),
    ]
    with RuntimeThread(config(tmp_path, grpc=None, max_body_bytes=limit)) as rt:
        url = f"{rt.http_url}/v1/traces"
        for encoding, body, status, message in refused:
            got = post(url, body, "application/json", **{"Content-Encoding": encoding})
            assert (got[0], json.loads(got[2])) == (status, {"message": message}), encoding
        for encoding, body in accepted:
            got = post(url, body, "application/json", **{"Content-Encoding": encoding})
            assert (got[0], json.loads(got[2])) == (200, {}), encoding


def test_a_refused_body_is_one_debug_line_not_a_traceback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with RuntimeThread(config(tmp_path)) as rt:
        with grpc.insecure_channel(f"127.0.0.1:{rt.runtime.grpc_port}") as channel:
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            with pytest.raises(grpc.RpcError):
                export(b"\xff\x01garbage", timeout=5)
        url = f"{rt.http_url}/v1/traces"
        for encoding in ("gzip", "deflate"):
            assert post(url, b"not compressed", "application/json", **{"Content-Encoding": encoding})[0] == 400
        with socket.create_connection(("127.0.0.1", rt.runtime.http_port), timeout=5) as sock:
            sock.sendall(
                b"POST /v1/traces HTTP/1.1\r\nHost: fluo\r\nContent-Type: application/json\r\n"
                b"Content-Encoding: gzip\r\nContent-Length: 1000\r\n\r\n\x1f\x8b"
            )
        malformed = {"transport": "http", "outcome": "malformed"}
        wait_for(lambda: metric(rt, "fluo_export_requests_total", **malformed) == 3, timeout=5, what="3 refusals")
    # The runtime has stopped: every connection is closed and anything aiohttp had to log is logged.
    noisy = [r for r in caplog.records if r.exc_info or (r.name != "fluo.serve" and r.levelno > logging.DEBUG)]
    assert noisy == []
    refusals = [r for r in caplog.records if " refused: " in r.getMessage()]
    assert [r.levelno for r in refusals] == [logging.DEBUG] * 4
    grpc_line, *http_lines = (r.getMessage() for r in refusals)
    assert "OTLP/gRPC export from" in grpc_line and "refused: not an OTLP ExportTraceServiceRequest" in grpc_line
    assert http_lines == [
        "OTLP/HTTP export from 127.0.0.1 refused: request body: Content-Encoding is gzip but the body is not gzip data",
        "OTLP/HTTP export from 127.0.0.1 refused: request body: Content-Encoding is deflate but the body is not deflate"
        " data",
        "OTLP/HTTP export from 127.0.0.1 refused: request body: the connection broke while reading it",
    ]
