"""The trace buffer's byte cap (`--max-buffer-bytes`): what buffered spans keep alive is counted and capped.

Security QA: the buffer was capped by spans only, so a few spans with huge attributes (a 40 MiB value
each, one request each) held hundreds of MiB until their traces went idle. Counts and sizes here, no RSS.
"""

from __future__ import annotations

import json

import pytest

from fluo_lang.otlp import (
    decode_traces,
    detach_spans,
    parse_json,
    share_request,
    shares_request,
    span_bytes,
    spans_from_request,
    spans_to_json,
    spans_to_request,
)
from fluo_lang.trace import Span
from fluo_run.serve import receivers
from fluo_run.serve.assembly import TraceBuffer
from fluo_run.serve.config import DEFAULT_MAX_BUFFER_BYTES, ServeConfig

KIB = 1024


def tid(trace: int) -> bytes:
    return trace.to_bytes(16, "big")


def made(trace: int, n: int, *, value_bytes: int = 0, first: int = 0) -> list[Span]:
    out = []
    for i in range(first, first + n):
        s = Span(trace_id=tid(trace), span_id=(trace * 1000 + i + 1).to_bytes(8, "big"), name=f"s{i}")
        if value_bytes:
            s.attributes["blob"] = "x" * value_bytes
        out.append(s)
    return out


def shared(spans: list[Span]) -> tuple[list[Span], bytes]:
    """Spans as the receivers hand them over: decoded, then sharing their request's bytes."""
    body = spans_to_request(spans).SerializeToString()
    decoded = spans_from_request(decode_traces(body), prefetch=("amount",))
    share_request(decoded, body)
    return decoded, body


def buffer(max_bytes: int, **kw: float) -> TraceBuffer:
    settings: dict[str, float] = dict(trace_idle=5.0, max_trace_age=60.0, max_spans_per_trace=1000,
                                      max_buffered_spans=100_000, late_span_memory=300.0)  # fmt: skip
    settings.update(kw)
    return TraceBuffer(max_buffered_bytes=max_bytes, **settings)  # type: ignore[arg-type]


def test_spans_sharing_a_request_count_it_once_between_them() -> None:
    decoded, body = shared([*made(1, 3, value_bytes=KIB), *made(2, 2, value_bytes=KIB)])
    share = decoded[0]._attrs_source.share
    assert share == -(-len(body) // 5)
    assert len(body) <= span_bytes(decoded) < len(body) + 5
    buf = buffer(1 << 30)
    buf.add(decoded, now=0.0)
    assert buf.bytes == span_bytes(decoded)
    assert buf.by_age[tid(1)].size == 3 * share and buf.by_age[tid(2)].size == 2 * share
    assert buf.sweep(4.9) == []
    assert [c.reason for c in buf.sweep(5.0)] == ["idle", "idle"]
    assert buf.bytes == 0 and buf.spans == 0


def test_a_detached_span_counts_its_own_bytes() -> None:
    decoded = spans_from_request(spans_to_request(made(1, 2, value_bytes=4 * KIB)))
    buf = buffer(1 << 30)
    buf.add(decoded, now=0.0)  # not shared: serialized on the way in
    assert not any(shares_request(s) for s in decoded)
    own = sum(len(s._attrs_source) for s in decoded)
    assert own > 8 * KIB and buf.bytes == own == buf.by_age[tid(1)].size


def test_past_the_byte_cap_the_oldest_traces_are_evaluated_early() -> None:
    buf = buffer(100 * KIB)
    for trace in range(1, 5):  # ~40 KiB a trace: the third goes past 100 KiB
        decoded, _ = shared(made(trace, 2, value_bytes=20 * KIB))
        done = buf.add(decoded, now=float(trace))
        assert buf.bytes <= 100 * KIB
        if trace < 3:
            assert done == []
    assert sorted(buf.by_age) == [tid(3), tid(4)]
    assert 80 * KIB < buf.bytes == sum(ot.size for ot in buf.by_age.values()) <= 100 * KIB
    assert buf.spans == 4


def test_evictions_for_bytes_say_buffer_full_oldest_first() -> None:
    buf = buffer(100 * KIB)
    out = []
    for trace in range(1, 6):
        decoded, _ = shared(made(trace, 1, value_bytes=30 * KIB))
        out += buf.add(decoded, now=float(trace))
    assert [(c.trace_id, c.reason, c.evicted, len(c.spans)) for c in out] == [
        (tid(1), "buffer_full", True, 1),
        (tid(2), "buffer_full", True, 1),
    ]
    assert len(buf) == 3 and buf.bytes <= 100 * KIB


def test_a_trace_larger_than_the_whole_cap_is_evaluated_at_once_alone() -> None:
    buf = buffer(100 * KIB)
    small, _ = shared(made(1, 2, value_bytes=KIB))
    buf.add(small, now=0.0)
    before = buf.bytes
    huge, _ = shared(made(2, 1, value_bytes=300 * KIB))
    done = buf.add(huge, now=1.0)
    assert [(c.trace_id, c.reason) for c in done] == [(tid(2), "buffer_full")]  # the small trace stays
    assert list(buf.by_age) == [tid(1)] and buf.bytes == before
    more, _ = shared(made(1, 1, value_bytes=KIB, first=5))
    assert buf.add(more, now=2.0) == []  # the buffer takes spans again
    assert buf.spans == 3


def test_spans_of_one_request_in_several_traces_each_count_their_share() -> None:
    """One request: a span with a 200 KiB attribute and two small ones, three traces. The request lives
    while any of them is buffered, so each counts a third of it; the oldest go until under the cap."""
    buf = buffer(100 * KIB)
    decoded, body = shared([*made(1, 1, value_bytes=200 * KIB), *made(2, 1), *made(3, 1)])
    done = buf.add(decoded, now=0.0)
    assert [(c.trace_id, c.reason) for c in done] == [(tid(1), "buffer_full"), (tid(2), "buffer_full")]
    assert list(buf.by_age) == [tid(3)] and buf.bytes == -(-len(body) // 3)


def test_detaching_a_long_open_trace_counts_it_again() -> None:
    buf = buffer(1 << 30, trace_idle=1.0, max_trace_age=100.0)
    decoded, _ = shared([*made(1, 1, value_bytes=KIB), *made(2, 9, value_bytes=KIB)])
    buf.add(decoded, now=0.0)
    share = decoded[0]._attrs_source.share
    assert buf.by_age[tid(1)].size == share
    for i, t in enumerate((0.5, 1.0, 1.5)):  # trace 2 goes idle; trace 1 keeps getting spans
        buf.sweep(t)
        buf.add(shared(made(1, 1, value_bytes=KIB, first=5 + i))[0], now=t)
    assert list(buf.by_age) == [tid(1)] and buf.bytes == share + 3 * buf.by_age[tid(1)].spans[1]._attrs_source.share
    buf.sweep(buf.share_for)  # trace 1 open `share_for` seconds: its spans get bytes of their own
    held = buf.by_age[tid(1)].spans
    assert not any(shares_request(s) for s in held)
    own = sum(len(s._attrs_source) for s in held)
    assert buf.by_age[tid(1)].size == own == buf.bytes
    assert KIB < own / 4 < 2 * KIB  # about one attribute each, not a share of a 10-span request
    late, _ = shared(made(1, 1, value_bytes=KIB, first=9))
    buf.add(late, now=buf.share_for + 0.1)  # joining such a trace: detached, counted as its own bytes
    assert buf.bytes == sum(len(s._attrs_source) for s in buf.by_age[tid(1)].spans)


def test_the_span_cap_still_applies_and_bytes_follow_what_is_kept() -> None:
    buf = buffer(1 << 30, max_spans_per_trace=3)
    decoded, _ = shared(made(1, 5, value_bytes=KIB))
    done = buf.add(decoded, now=0.0)
    assert [(c.reason, len(c.spans)) for c in done] == [("trace_span_cap", 3)]
    assert buf.late == 2 and buf.bytes == 0 and buf.spans == 0


def test_drain_and_detached_spans_leave_the_count_at_zero() -> None:
    buf = buffer(1 << 30)
    decoded, _ = shared([*made(1, 2, value_bytes=KIB), *made(2, 2, value_bytes=KIB)])
    buf.add(decoded, now=0.0)
    detach_spans(decoded)  # read elsewhere: the buffer's count is what it counted on the way in
    assert len(buf.drain()) == 2 and buf.bytes == 0


def test_the_default_cap_is_128_mib_in_the_buffer_and_the_settings() -> None:
    assert DEFAULT_MAX_BUFFER_BYTES == 128 * 1024 * 1024
    assert ServeConfig().max_buffer_bytes == DEFAULT_MAX_BUFFER_BYTES
    buf = TraceBuffer(
        trace_idle=5.0, max_trace_age=60.0, max_spans_per_trace=10, max_buffered_spans=10, late_span_memory=1.0
    )
    assert buf.max_buffered_bytes == DEFAULT_MAX_BUFFER_BYTES


def test_the_setting_flag_env_var_and_gauge(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from click.testing import CliRunner

    from fluo_run.cli import main
    from fluo_run.serve.metrics import Metrics

    fluo_log = logging.getLogger("fluo")  # `fluo serve` sets up logging: leave it as it was for the other tests
    monkeypatch.setattr(fluo_log, "handlers", list(fluo_log.handlers))
    monkeypatch.setattr(fluo_log, "propagate", fluo_log.propagate)
    monkeypatch.setattr(fluo_log, "level", fluo_log.level)
    result = CliRunner().invoke(main, ["serve", "--help"], prog_name="fluo")
    assert "--max-buffer-bytes" in result.output and "FLUO_MAX_BUFFER_BYTES" in result.output
    bad = CliRunner().invoke(main, ["serve", "--max-buffer-bytes", "0"], prog_name="fluo")
    assert bad.exit_code == 2 and bad.output == "fluo: --max-buffer-bytes: must be at least 1\n"
    assert b"fluo_buffered_bytes" in Metrics().exposition()


def fields(s: Span) -> tuple[object, ...]:
    return (s.trace_id, s.span_id, s.parent_id, s.name, s.service, s.start, s.end, s.status, s.status_message,
            s.kind, dict(s.resource), s.attributes)  # fmt: skip


def test_json_spans_are_held_and_counted_as_protobuf_spans_are() -> None:
    """OTLP/JSON spans held their attributes as Python objects, which the byte cap counted as 0 (last note):
    `decode_json` hands them over as protobuf spans, sharing a request's bytes, equal field for field."""
    spans = made(1, 3, value_bytes=20 * KIB)
    spans[0].attributes.update({"n": -(2**63), "f": 1.5, "b": True, "raw": b"\x00\xff", "none": None,
                                "list": [1, "a", [2.0, None]], "map": {"k": {"deep": "v"}}, "é": "🙂"})  # fmt: skip
    spans[1].status, spans[1].status_message, spans[1].kind = "error", "boom", "server"
    spans[2].end, spans[2].start = 10, 20  # ends before it starts: read as ending when it starts
    spans[2].resource = {"service.name": 7, "host.name": "h"}
    body = json.dumps(spans_to_json(spans)).encode()
    decoded = receivers.decode_json(body, ("n",), True)
    assert all(shares_request(s) for s in decoded.spans)
    assert [fields(s) for s in decoded.spans] == [fields(s) for s in parse_json(body, source="b")]
    assert [s.span_id for s in decoded.clamped] == [spans[2].span_id]
    buf = buffer(50 * KIB)
    done = buf.add(receivers.decode_json(body, (), True).spans, now=0.0)
    assert [(c.reason, len(c.spans)) for c in done] == [("buffer_full", 3)]  # 60 KiB of attributes: over 50 KiB
    kept = receivers.decode_json(body, (), False).spans  # rules read more than the prefetched keys: own bytes
    buf = buffer(1 << 30)
    buf.add(kept, now=0.0)
    assert 60 * KIB < buf.bytes < 62 * KIB and not any(shares_request(s) for s in kept)
