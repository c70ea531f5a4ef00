"""A real `fluo serve` under fuzzed bodies, overload and `kill -9` (scenarios in `fuzz/scenarios.py`).

Each test starts its own process on loopback ports chosen by the OS and bounds
every wait. `benchmarks/bench_reliability.py` runs the same scenarios and prints
their figures.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))

from scenarios import EXAMPLE_RULES, JSON, Overload, ReceiverFuzz, Serve, crash, fuzz_receivers, heavy_rules, overload

MB = 1 << 20


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> ReceiverFuzz:
    folder = tmp_path_factory.mktemp("fuzz")
    args = ["--rules", str(EXAMPLE_RULES), "--db", str(folder / "fuzz.db"), "--trace-idle", "200ms"]
    with Serve(args, folder) as serve:
        return fuzz_receivers(serve, examples=150, random_seed=1)


def test_fuzzed_bodies_leave_the_server_up_with_bounded_memory(fuzzed: ReceiverFuzz) -> None:
    assert fuzzed.inputs == 150
    assert fuzzed.alive
    assert fuzzed.rss_max - fuzzed.rss_start < 100 * MB
    # both receivers saw both outcomes: the fuzzing reached the decoders, not just the front door
    assert {k.split()[0] for k in fuzzed.answers} == {"http", "grpc"}
    assert any(k.startswith("http 2") for k in fuzzed.answers) and any(k.startswith("http 4") for k in fuzzed.answers)
    assert [p for p in fuzzed.problems if p.startswith("HTTP")] == []


def test_fuzzed_bodies_get_2xx_or_4xx_on_both_receivers(fuzzed: ReceiverFuzz) -> None:
    assert fuzzed.problems == []
    assert any(k == "grpc INVALID_ARGUMENT" for k in fuzzed.answers)


def test_fuzzed_bodies_get_one_line_error_messages(fuzzed: ReceiverFuzz) -> None:
    assert fuzzed.message_problems == []


def test_oversized_bodies_stop_at_the_body_limit(tmp_path: Path) -> None:
    """A gzip bomb is cut off at 64 MiB decompressed (413); a gRPC message over it gets RESOURCE_EXHAUSTED."""
    with Serve(["--rules", str(EXAMPLE_RULES), "--no-db"], tmp_path) as serve:
        before = serve.rss()
        bomb = gzip.compress(b" " * (200 * MB), 9)
        assert len(bomb) < 1 * MB
        assert serve.post(bomb, JSON, {"Content-Encoding": "gzip"}).status == 413
        with serve.channel() as channel:
            assert serve.export(channel, b"\x0a" + b"\xff" * (65 * MB)) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert serve.alive() and serve.request("/healthz").status == 200
        assert serve.rss() - before < 150 * MB


CAPS = {"--max-pending-spans": 500, "--max-buffered-spans": 20_000}


@pytest.fixture(scope="module")
def overloaded(tmp_path_factory: pytest.TempPathFactory) -> Overload:
    folder = tmp_path_factory.mktemp("overload")
    rules = heavy_rules(folder / "rules", 1500)  # SDK senders can offer 10x its rate (1,000: 8.5x)
    db = folder / "overload.db"
    args = ["--rules", str(rules), "--db", str(db), "--trace-idle", "200ms"]
    args += [str(x) for kv in CAPS.items() for x in kv]
    with Serve(args, folder) as serve:
        # at least twice the pending cap is offered, or a slow machine's calibration may not fill it (seen once)
        return overload(serve, db, factor=10, seconds=1.5, min_spans=2 * CAPS["--max-pending-spans"])


def test_overload_is_refused_with_retryable_codes_in_bounded_memory(overloaded: Overload) -> None:
    result = overloaded
    # Ten times is asked; SDK senders on a loaded 2-core machine fall behind (8.5x and 8.9x seen), so the
    # setup is checked at five times, well past what the server evaluates: `refused` shows the overload.
    assert result.offered >= 5 * result.sustainable, result
    assert result.refused > 0  # and were told to back off with 429 / UNAVAILABLE + RetryInfo
    assert result.max_buffered <= CAPS["--max-buffered-spans"]
    # retried bodies are admitted up to 8 x the pending cap, and assembled traces join the backlog unrefused
    assert result.max_pending <= CAPS["--max-pending-spans"] + CAPS["--max-buffered-spans"]
    assert result.rss_max - result.rss_start < 200 * MB


def test_every_span_the_server_accepted_is_evaluated(overloaded: Overload) -> None:
    result = overloaded
    # whatever the SDK delivered arrived, and nothing else: the server itself loses nothing
    assert result.received == result.sent - result.sdk_dropped
    assert result.traces_with_signal == result.traces_delivered
    assert result.traces_evaluated_not_delivered == 0


def test_with_the_sdk_retries_no_span_is_lost(overloaded: Overload) -> None:
    assert overloaded.sdk_dropped == 0
    assert overloaded.lost == 0
    assert overloaded.traces_with_signal == overloaded.traces_sent


def test_kill_9_keeps_every_written_signal_and_restarts_cleanly(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "every.fluo").write_text("rule every_trace { detect trace.spans.count() > 0 }\n")
    result = crash(tmp_path, rules, load_seconds=1.0)
    assert result.reported_written >= 50
    assert result.rows_after_crash >= result.reported_written and result.lost == 0
    assert result.integrity == "ok"
    assert result.unreadable_rows == 0
    assert result.restarted_cleanly and result.exit_code_after_restart == 0
    assert result.rows_after_restart > result.rows_after_crash
