"""Fuzzing the trace readers: random and mutated OTLP/JSON and protobuf bodies are read
or refused with one `TraceInputError` line, never another exception (see `fuzz/strategies.py`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))

from strategies import check_trace_body, example_bodies, json_bodies, protobuf_bodies

FAST = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(json_bodies())
def test_json_bodies_are_read_or_refused(body: bytes) -> None:
    check_trace_body("json", body)


@FAST
@given(protobuf_bodies())
def test_protobuf_bodies_are_read_or_refused(body: bytes) -> None:
    check_trace_body("protobuf", body)


def test_the_unmutated_examples_are_read() -> None:
    counts = [check_trace_body(kind, body) for kind, body in example_bodies()]
    assert all(c > 0 for c in counts)
    # JSON and protobuf forms of one file hold the same spans
    assert counts[0::2] == counts[1::2]


def test_garbage_is_refused() -> None:
    assert check_trace_body("json", b"{not json") == -1
    assert check_trace_body("json", b'{"resourceSpans": 5}') == -1
    assert check_trace_body("protobuf", b"\xff\xff\xff\xff") == -1
