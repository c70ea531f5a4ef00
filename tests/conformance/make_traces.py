"""Write the conformance table's own small traces (run it after changing it; commit the output)."""

from __future__ import annotations

import json
from pathlib import Path

from fluo_lang.otlp import spans_to_json
from fluo_lang.trace import Span

OUT = Path(__file__).resolve().parent / "traces"
BASE = 1_767_225_600 * 10**9
MS = 10**6


def span(tid: int, sid: int, parent: int, name: str, service: str, start: int, end: int, **kw: object) -> Span:
    return Span(
        trace_id=tid.to_bytes(16, "big"),
        span_id=sid.to_bytes(8, "big"),
        parent_id=parent.to_bytes(8, "big") if parent else b"",
        name=name,
        service=service,
        start=BASE + start * MS,
        end=BASE + end * MS,
        resource={"service.name": service},
        **kw,  # type: ignore[arg-type]
    )


def _ordered(tid: int, sid: int) -> Span:
    """Span `sid` of the arrival-order traces: 1 is the root; the others are errors starting at (7 * sid) mod
    13 ms, so starts tie and their order is not the ids', lasting 50 to 54 ms, so several share the longest."""
    if sid == 1:
        return span(tid, 1, 0, "root", "web", 0, 500)
    start = (7 * sid) % 13
    return span(tid, sid, 1, "op", "web", start, start + 50 + sid % 5, status="error")


def main() -> None:
    traces = {
        # Two traces ending in one minute that use the same span ids (ids are unique only within a trace).
        "same_span_ids.json": [
            span(0x2A, 1, 0, "root", "api", 0, 100),
            span(0x2A, 2, 1, "child", "api", 10, 90),
            span(0x2B, 1, 0, "root", "api", 200, 300),
            span(0x2B, 3, 1, "child", "api", 210, 290),
        ],
        # Half a UTF-16 surrogate pair in every string, which JSON escapes as `\ud83d` and OTLP (UTF-8) cannot
        # hold: read as U+FFFD. A signal printing the name died with UnicodeEncodeError, `matches` on it too.
        "half_surrogate.json": [
            span(0x1A, 1, 0, "bad\ud83d", "api\udfff", 0, 100, status="error", status_message="m\udbff",
                 attributes={"k\ud800": "v\udc00", "list": ["\ud83d\ude00", "x\ud83d"]}),
        ],
        # Every span names a parent that never arrived: the trace has no root.
        "no_root.json": [
            span(0xA1, 1, 99, "worker.run", "worker", 0, 40),
            span(0xA1, 2, 1, "db.query", "worker", 5, 30, attributes={"db.rows": 12}),
        ],
        # Two roots, a missing attribute on one span, and mixed attribute types.
        "mixed.json": [
            span(0xB2, 1, 0, "GET /items", "api", 10, 900, kind="server", status="ok"),
            span(0xB2, 2, 0, "cron.tick", "api", 0, 5, kind="internal"),
            span(0xB2, 3, 1, "db.query", "db", 20, 320, kind="client", attributes={"db.rows": 40, "retry": True}),
            span(0xB2, 4, 1, "db.query", "db", 330, 410, kind="client", attributes={"db.rows": "7"}),
            span(0xB2, 5, 1, "cache.get", "cache", 415, 420, kind="client", status="error",
                 attributes={"odd key": "x y", "tags": ["a", "b"]}),
        ],
        # A span that ends before it starts (QA L1): read as ending when it starts.
        "end_before_start.json": [
            span(0xC3, 1, 0, "root", "api", 0, 100),
            span(0xC3, 2, 1, "backwards", "api", 50, 40),
        ],
        # A span naming itself as its parent (bad input) beside the real root, which starts later; a
        # second trace holds only a self-parented span: it has no span without a parent id, so no root.
        "self_parented.json": [
            span(0xD4, 1, 1, "self_parented", "api", 0, 100),
            span(0xD4, 2, 0, "real_root", "api", 50, 90),
            span(0xD4, 3, 1, "child", "api", 10, 20),
            span(0xD5, 1, 1, "alone", "api", 0, 10),
        ],
        # One span from the epoch to the last OTLP nanosecond (2**64 - 1): its duration and the trace's
        # are past 64 bits of nanoseconds, so missing (QA semantics audit, item 4).
        "wide_duration.json": [
            Span(trace_id=(0xE5).to_bytes(16, "big"), span_id=(1).to_bytes(8, "big"), name="wide",
                 service="api", start=0, end=2**64 - 1, resource={"service.name": "api"}),
            span(0xE6, 1, 0, "narrow", "api", 0, 10),
        ],
        # Arrays and key-value lists of booleans, integers and floats: `true` is never `1` inside them.
        "arrays.json": [
            span(0xF7, 1, 0, "root", "api", 0, 10, attributes={
                "barr": [True], "iarr": [1], "farr": [1.0], "b": True, "nested": [[1], [2]],
                "kv1": {"a": True}, "kv2": {"a": 1}, "kv3": {"a": 1.0},
            }),
        ],
        # 30 fast spans and one slow error span: which operand of `or`/`and` decided, and its spans.
        "crowd.json": [
            span(0xA8, 0xAA, 0, "root", "api", 0, 200),
            *(span(0xA8, i + 1, 0xAA, "fast", "api", i, i + 1) for i in range(30)),
            span(0xA8, 0xEE, 0xAA, "boom", "api", 100, 160, status="error"),
        ],
        # A root lasting 100ms and 1ns: its end is 1ns past its start plus 100ms.
        "nanos.json": [
            Span(trace_id=(0xB9).to_bytes(16, "big"), span_id=(1).to_bytes(8, "big"), name="root",
                 service="api", start=BASE, end=BASE + 100 * MS + 1, resource={"service.name": "api"}),
        ],
        # Two services whose first spans start together, in the order their span ids do not give (QA author
        # tour: `trace.services` kept the order spans arrived in); the smallest 64-bit integer; a span lasting
        # 9007199254740993 ns, which a duration literal read through a float was 1 ns short of.
        "ties.json": [
            span(0xBC, 2, 0, "b.first", "bsvc", 0, 10),
            span(0xBC, 1, 0, "a.first", "asvc", 0, 10, attributes={"neg": -(2**63)}),
            Span(trace_id=(0xBD).to_bytes(16, "big"), span_id=(1).to_bytes(8, "big"), name="long",
                 service="api", start=BASE, end=BASE + 9_007_199_254_740_993, resource={"service.name": "api"}),
        ],
        # Maps under flat dotted keys, read by a dotted name at every split point, longest flat head first.
        "dotted_maps.json": [
            Span(trace_id=(0xCA).to_bytes(16, "big"), span_id=(1).to_bytes(8, "big"), name="root",
                 service="api", start=BASE, end=BASE + 10 * MS,
                 resource={"service.name": "api", "cloud.geo": {"region": "eu"}},
                 attributes={"client.geo": {"country": "DE"}, "a": {"b.c": "X"}}),
            span(0xCA, 2, 1, "several", "api", 1, 5, attributes={
                "x.y.z": "flat", "x.y": {"z": "mid"}, "x": {"y.z": "low"},
                "p.q": {"r": "mid"}, "p": {"q.r": "low", "q": {"r": "lowest"}},
                "u": {"v.w": "flat inside", "v": {"w": "nested inside"}},
                "m.n": {"other": 1}, "m": {"n.o": "found"},
            }),
        ],
        # Float values whose sum passes the float range part way when added in file order (1e308 + 1e308),
        # though the whole, 1e308, fits: the sum read missing or not by the order of the files (QA).
        "float_sum_big.json": [
            span(0xDB, 1, 0, "a", "api", 0, 10, attributes={"f": 1e308}),
            span(0xDB, 2, 1, "b", "api", 1, 9, attributes={"f": 1e308}),
        ],
        "float_sum_negative.json": [span(0xDB, 3, 1, "c", "api", 2, 8, attributes={"f": -1e308})],
        # One trace of 24 error spans (and a second trace beside it in the same minute), written in an order
        # that is not their start order, across two files: signals list spans by start, trace id, span id,
        # whatever order they came in (QA: `span_ids` followed arrival, and the first 20 of it).
        "arrival_order_late.json": [
            *(_ordered(0xC7, sid) for sid in range(25, 12, -1)),
            span(0xC8, 1, 0, "root", "web", 0, 300),
            *(span(0xC8, sid, 1, "op", "web", sid, sid + 40, status="error") for sid in (4, 3, 2)),
        ],
        "arrival_order_early.json": [_ordered(0xC7, sid) for sid in range(12, 0, -1)],
    }  # fmt: skip
    OUT.mkdir(exist_ok=True)
    for name, spans in traces.items():
        (OUT / name).write_text(json.dumps(spans_to_json(spans), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
