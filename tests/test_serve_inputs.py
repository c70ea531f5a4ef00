"""Bad input to `fluo serve` and `fluo signals`: one clear line and the documented status, never a traceback."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import signal
import socket
import time
import zlib
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from serve_support import EXAMPLE_RULES, ServeProcess, config, metric, post, wait_for

from fluo_run.cli import main
from fluo_run.serve.runtime import RuntimeThread
from fluo_run.serve.store import SignalStore

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
        ("br", b"whatever", 400, "unsupported Content-Encoding 'br'; send gzip, deflate or none"),
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
        assert metric(rt, "fluo_export_requests_total", transport="http", outcome="malformed") == 2
    # The runtime has stopped: every connection is closed and anything aiohttp had to log is logged.
    noisy = [r for r in caplog.records if r.exc_info or (r.name != "fluo.serve" and r.levelno > logging.DEBUG)]
    assert noisy == []
    refusals = [r for r in caplog.records if " refused: " in r.getMessage()]
    assert [r.levelno for r in refusals] == [logging.DEBUG] * 3
    grpc_line, *http_lines = (r.getMessage() for r in refusals)
    assert "OTLP/gRPC export from" in grpc_line and "refused: not an OTLP ExportTraceServiceRequest" in grpc_line
    assert http_lines == [
        "OTLP/HTTP export from 127.0.0.1 refused: request body: Content-Encoding is gzip but the body is not gzip data",
        "OTLP/HTTP export from 127.0.0.1 refused: request body: Content-Encoding is deflate but the body is not deflate"
        " data",
    ]


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_an_http_body_its_client_cuts_short_is_counted_cancelled_not_malformed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, encoding: str
) -> None:
    """QA grpcsoak: a client that closes its connection halfway through a body was counted `malformed`, where a
    gRPC call its client abandons is `cancelled`. Now both are `cancelled`, logged at debug level."""
    caplog.set_level(logging.DEBUG, "fluo")
    with RuntimeThread(config(tmp_path)) as rt:
        with socket.create_connection(("127.0.0.1", rt.runtime.http_port), timeout=5) as sock:
            sock.sendall(
                b"POST /v1/traces HTTP/1.1\r\nHost: fluo\r\nContent-Type: application/x-protobuf\r\n"
                + f"Content-Encoding: {encoding}\r\nContent-Length: 1000\r\n\r\n".encode()
                + b"\x1f\x8b" * 250  # half the body, and the connection closed
            )
        cancelled = {"transport": "http", "outcome": "cancelled"}
        wait_for(lambda: metric(rt, "fluo_export_requests_total", **cancelled) == 1, timeout=5, what="the count")
        assert metric(rt, "fluo_export_requests_total", transport="http", outcome="malformed") == 0
    lines = [r.getMessage() for r in caplog.records if "cancelled" in r.getMessage()]
    assert lines == ["OTLP/HTTP export from 127.0.0.1 cancelled: its connection closed with the body cut short"]


# ---------------------------------------------------------------------------
# `fluo signals`


def signal_at(time: str, rule: str) -> dict[str, Any]:
    return {"rule": rule, "severity": "error", "message": "m", "trace_id": "a" * 32, "time": time}


@pytest.fixture
def store(tmp_path: Path) -> str:
    path = tmp_path / "fluo-signals.db"
    with contextlib.closing(SignalStore(path)) as s:
        s.add([signal_at("2026-01-01T00:00:00.000000Z", "now"), signal_at("2200-01-01T00:00:00.000000Z", "later")])
    return str(path)


def signals(*args: str) -> tuple[int, list[str]]:
    """`fluo signals` run in-process: its exit status and the lines it wrote (stdout and stderr)."""
    result = CliRunner().invoke(main, ["signals", *args])
    return result.exit_code, result.output.splitlines()


@pytest.mark.parametrize(
    ("bound", "expected"),
    [
        (["--since", "0001-01-01T00:00:00Z"], ["now", "later"]),
        (["--since", "9999-12-31T23:59:59Z"], []),
        (["--until", "0001-01-01T00:00:00Z"], []),
        (["--until", "9999-12-31T23:59:59Z"], ["now", "later"]),
        (["--since", "2100-01-01T00:00:00+01:00", "--until", "9999-12-31T23:59:59-01:00"], ["later"]),
        (["--since", "106000d"], ["now", "later"]),  # 290 years ago
    ],
)
def test_times_outside_what_the_store_holds_match_everything_or_nothing(
    store: str, bound: list[str], expected: list[str]
) -> None:
    code, lines = signals("--db", store, "--format", "jsonl", *bound)
    assert code == 0
    assert [json.loads(line)["rule"] for line in lines if line.startswith("{")] == expected


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Tokyo"])
@pytest.mark.parametrize(
    ("bound", "expected"),
    [
        (["--since", "2026-01-01T00:00:00"], ["now", "later"]),  # no offset: UTC, as the table shows times
        (["--since", "2026-01-01T00:00:01"], ["later"]),
        (["--until", "2026-01-01"], []),  # a bare date: its midnight, UTC
        (["--until", "2026-01-01T00:00:00.000001"], ["now"]),
        (["--since", "2026-01-01t00:00:00z", "--until", "2026-01-01t00:00:01z"], ["now"]),  # RFC 3339 §5.6
    ],
)
def test_times_without_an_offset_are_utc_whatever_the_machine_zone(
    store: str, bound: list[str], expected: list[str], zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA L1: a naive --since was read in the local zone (0 signals under America/New_York, 1 under UTC)."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        code, lines = signals("--db", store, "--format", "jsonl", *bound)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert code == 0
    assert [json.loads(line)["rule"] for line in lines if line.startswith("{")] == expected


@pytest.mark.parametrize("flag", ["--since", "--until"])
@pytest.mark.parametrize("ago", ["99999999999h", "106752d", pytest.param("9" * 400 + "s", id="infinite")])
def test_a_duration_ago_past_64_bits_of_nanoseconds_is_a_usage_error(store: str, flag: str, ago: str) -> None:
    assert signals("--db", store, flag, ago) == (
        2,
        [f"fluo: {flag}: {ago!r} is longer than a duration can be (about 292 years); give less or an RFC 3339 time"],
    )


def test_a_signal_past_2262_is_stored_at_the_last_time_the_store_holds(store: str) -> None:
    with contextlib.closing(SignalStore(store)) as s:
        s.add([signal_at("2500-01-01T00:00:00.000000Z", "far")])
    code, lines = signals("--db", store, "--format", "jsonl", "--since", "2262-01-01T00:00:00Z")
    assert code == 0
    assert [json.loads(line)["time"] for line in lines] == ["2500-01-01T00:00:00.000000Z"]


@pytest.mark.parametrize("trace", ["zz", "a" * 31, "a" * 33, "g" * 32, " " + "a" * 32])
def test_a_trace_id_that_is_not_32_hex_digits_is_a_usage_error(store: str, trace: str) -> None:
    assert signals("--db", store, "--trace", trace) == (
        2,
        [f"fluo: --trace: {trace!r} is not a trace id; give its 32 hex digits, e.g. 4bf92f3577b34da6a3ce929d0e0e4736"],
    )
    assert signals("--db", store, "--format", "jsonl", "--trace", "A" * 32)[1] != []


# ---------------------------------------------------------------------------
# `fluo serve` settings

LOOPBACK = ["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"]


def on_loopback(args: list[str]) -> list[str]:
    """`args` with LOOPBACK's listeners before them, each unless `args` gives its own (once: a flag given twice
    is a usage error)."""
    pairs = [LOOPBACK[i : i + 2] for i in range(0, len(LOOPBACK), 2)]
    return [*(part for pair in pairs if pair[0] not in args for part in pair), *args]


def exit_status(proc: ServeProcess, timeout: float = 15.0) -> int:
    """The exit status of a `fluo serve` that should stop by itself; killed if still running after `timeout`."""
    with proc:
        return proc.wait(timeout)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--webhook", "not-a-url"],
            "--webhook: 'not-a-url' is not an http(s) URL with a host; give e.g. https://alerts.example.com/fluo",
        ),
        (
            ["--webhook", "ftp://alerts/fluo"],
            "--webhook: 'ftp://alerts/fluo' is not an http(s) URL with a host; give e.g. https://alerts.example.com/fluo",
        ),
        (
            ["--otlp-logs", "also-bad"],
            "--otlp-logs: 'also-bad' is not an http(s) URL with a host; give e.g. http://collector:4318",
        ),
        (
            ["--otlp-logs", "http://collector:99999", "--otlp-logs-protocol", "grpc"],
            "--otlp-logs: 'http://collector:99999' is not an http(s) URL with a host; give e.g. http://collector:4317",
        ),
        (
            ["--webhook", "ftp://alerts/fluo?token=s3cret"],
            "--webhook: 'ftp://alerts/fluo?token=***' is not an http(s) URL with a host; give e.g."
            " https://alerts.example.com/fluo",
        ),
        (
            ["--otlp-logs", "http://user:s3cret@collector:4317", "--otlp-logs-protocol", "grpc"],
            "--otlp-logs http://***@collector:4317: user info (user:password@) is not sent over gRPC; give the"
            " credentials as gRPC metadata instead: OTEL_EXPORTER_OTLP_LOGS_HEADERS='authorization=Basic%20BASE64'"
            " (or use --otlp-logs-protocol http, which sends them as Basic auth)",
        ),
        (
            ["--trace-idle", "1.5m", "--no-db"],
            "--max-trace-age (1m; 60s unless given) must be at least --trace-idle (1.5m); give --max-trace-age too,"
            " e.g. --max-trace-age 3m",
        ),
        (["--db", "x.db", "--no-db"], "--db x.db and --no-db: give one or the other"),
        (
            ["--no-db", "--webhook", "http://h/first", "--webhook=http://h/second?key=k"],
            "--webhook http://h/first and --webhook http://h/second?key=***: serve posts to one webhook; give one",
        ),
        (
            ["--no-db", "--jsonl", "a", "--jsonl", "-"],
            "--jsonl a and --jsonl -: serve writes one JSON-lines file; give one",
        ),
        (["--db", "x.db", "--db", "y.db"], "--db x.db and --db y.db: serve writes one store; give one"),
        (["--no-db", "--reload-interval", "0s"], "--reload-interval: must be more than 0; `off` turns it off"),
        (
            ["--no-db", "--http", "127.0.0.1:4999", "--metrics", "127.0.0.1:4999"],
            "--metrics 127.0.0.1:4999 is the --http address: /metrics is served there already; leave --metrics out,"
            " or give another port",
        ),
        (
            ["--no-db", "--http", "127.0.0.1:4999", "--grpc", "127.0.0.1:4999"],
            "--grpc 127.0.0.1:4999 is the --http address too: give each its own port",
        ),
        (["--rules", "empty", "--no-db"], "--rules: empty: no .fluo files in this folder"),
        (["--rules", "nosuch", "--no-db"], "--rules: nosuch: no such file or folder"),
    ],
    ids=[
        "webhook",
        "webhook-scheme",
        "otlp-logs",
        "otlp-logs-port",
        "webhook-query-key",
        "otlp-logs-grpc-user-info",
        "trace-idle-past-max-age",
        "db-and-no-db",
        "webhook-twice",
        "jsonl-twice",
        "db-twice",
        "reload-interval-0s",
        "metrics-is-http",
        "grpc-is-http",
        "empty-rules",
        "no-rules",
    ],
)
def test_bad_settings_stop_serve_at_start_with_one_line_and_exit_2(tmp_path: Path, args: list[str], line: str) -> None:
    (tmp_path / "empty").mkdir()
    proc = ServeProcess(on_loopback(args), cwd=tmp_path)
    assert (exit_status(proc), proc.log) == (2, [f"fluo: {line}"])
    assert not (tmp_path / "x.db").exists()


def test_a_grpc_port_another_listener_holds_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """gRPC's own core logs an error line when it cannot bind: FLUO says it first, and alone."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["--http", "127.0.0.1:0", "--grpc", f"127.0.0.1:{port}", "--no-db", "--rules", str(EXAMPLE_RULES)]
        proc = ServeProcess(args, cwd=tmp_path)  # rules given: no line about running the bundled examples
        assert (exit_status(proc), proc.log) == (
            1,
            [f"fluo: cannot listen on 127.0.0.1:{port} (--grpc): Address already in use"],
        )


@pytest.mark.parametrize("flag", ["--http", "--metrics"])
def test_an_http_port_another_listener_holds_names_its_flag(tmp_path: Path, flag: str) -> None:
    """QA: "cannot listen on 127.0.0.1:P" named no setting, and --metrics and --http both listen over HTTP."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = on_loopback([flag, f"127.0.0.1:{port}", "--no-db", "--rules", str(EXAMPLE_RULES)])
        proc = ServeProcess(args, cwd=tmp_path)
        assert (exit_status(proc), proc.log) == (
            1,
            [f"fluo: cannot listen on 127.0.0.1:{port} ({flag}): Address already in use"],
        )


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs a file that exists but cannot be read")
def test_an_unreadable_rule_file_is_a_usage_error(tmp_path: Path) -> None:
    proc = ServeProcess([*LOOPBACK, "--no-db", "--rules", "/proc/self/mem"], cwd=tmp_path)
    assert exit_status(proc) == 2
    assert len(proc.log) == 1 and proc.log[0].startswith("fluo: --rules: cannot read /proc/self/mem: ")


def test_db_and_no_db_from_different_sources_follow_the_precedence(tmp_path: Path) -> None:
    (tmp_path / "no-db.yaml").write_text("no-db: true\n")
    runs = [
        (["--no-db"], {"FLUO_DB": "env.db"}, "no sink"),  # the flag wins over the variable
        (["--config", "no-db.yaml", "--db", "flag.db"], {}, r"sqlite \(flag.db\)"),  # and over the file
        (["--db", "OFF"], {}, r"no sink \(--db OFF and no other sink given\)"),  # QA ops r03: it said --no-db
    ]
    for args, env, sinks in runs:
        proc = ServeProcess(on_loopback(args), cwd=tmp_path, env=env)
        with proc:
            proc.expect(rf"signals to: {sinks}")
            proc.started()
            proc.signal(signal.SIGTERM)
            assert proc.wait() == 0


def test_a_serve_without_the_native_reader_says_so_at_its_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a C compiler FLUO installs silently and reads protobuf at a little over half the speed: an operator
    hears it from the one place they look at start (review 3); with the reader, nothing is said."""
    from fluo_run.serve import runtime

    for compiled in (True, False):
        caplog.clear()
        monkeypatch.setattr(runtime, "native_reader", lambda compiled=compiled: compiled)
        with caplog.at_level(logging.INFO, logger="fluo.serve"), RuntimeThread(config(tmp_path, grpc=None)):
            pass
        said = [r for r in caplog.records if "native span reader" in r.getMessage()]
        assert [r.levelno for r in said] == ([] if compiled else [logging.WARNING]), compiled
