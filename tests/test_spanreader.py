"""The native span reader (`fluo_lang/_spanreader.c`, through `otlp.read_spans`) against protobuf's path.

Where the native reader reads a request, its spans must equal, slot for slot, those of
`spans_from_request(decode_traces(data))`; anything else it must leave to that path (None),
never read what protobuf refuses. Built by the test command's `pip install -e .`.
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from wire_support import varint

from fluo_lang import otlp
from fluo_lang.otlp import SharedRequest, parse_protobuf, read_spans, spans_from_request, spans_to_request
from fluo_lang.trace import Span

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))

from strategies import example_bodies, protobuf_bodies

SLOTS = ("trace_id", "span_id", "parent_id", "name", "service", "start", "end", "status", "status_message", "kind")
KEYS = ("http.status_code", "user.id", "absent", "db.system", "a.b.c", "nested.deep")


def by_protobuf(data: bytes, keys: tuple[str, ...] = KEYS, clamped: list[Span] | None = None) -> list[Span] | None:
    try:
        req = otlp.decode_traces(data)
    except (DecodeError, RuntimeError, ValueError):
        return None
    try:
        return spans_from_request(req, prefetch=keys, clamped=clamped)
    except otlp.TraceInputError:
        return None


def assert_same(native: list[Span], standard: list[Span]) -> None:
    assert len(native) == len(standard)
    for a, b in zip(native, standard, strict=True):
        assert type(a) is type(b)
        for slot in SLOTS:
            assert getattr(a, slot) == getattr(b, slot), slot
            assert type(getattr(a, slot)) is type(getattr(b, slot)), slot
        assert a._attrs is None and a.trace_ref is None
        wide = a._read is None and b._read is not None  # not prefetched: a span of over 256 attributes
        assert {k: a.attr(k) for k in KEYS} == {k: b.attr(k) for k in KEYS}
        if wide:
            assert len(a.attributes) > 256
        else:
            assert a._read == b._read
        assert a.resource == b.resource
        assert a.attributes == b.attributes  # the unread attributes, from the bytes the span keeps


def check(data: bytes, keys: tuple[str, ...] = KEYS) -> list[Span] | None:
    """The native reader's spans of `data`, after checking them against protobuf's (both ways of keeping bytes)."""
    standard_clamped: list[Span] = []
    standard = by_protobuf(data, keys, standard_clamped)
    got = None
    for share in (False, True):
        clamped: list[Span] = []
        native = read_spans(data, prefetch=keys, clamped=clamped, share=share)
        if native is None:
            continue
        assert standard is not None, "the native reader read what protobuf refuses"
        assert_same(native, standard)
        assert [s.span_id for s in clamped] == [s.span_id for s in standard_clamped]
        got = native
    return got


def request(n: int = 3) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="auth"))
    rs.resource.attributes.add(key="host.name", value=AnyValue(string_value="h1"))
    ss = rs.scope_spans.add()
    ss.scope.name = "lib"
    for i in range(n):
        sp = ss.spans.add(
            trace_id=bytes(range(1, 17)),
            span_id=bytes([9, 9, 9, 9, 9, 9, 9, i + 1]),
            parent_span_id=b"" if i == 0 else bytes([9, 9, 9, 9, 9, 9, 9, 1]),
            name=f"op{i % 2}",
            kind=2,
            start_time_unix_nano=1_000 + i,
            end_time_unix_nano=2_000 + i,
        )
        sp.attributes.add(key="http.status_code", value=AnyValue(int_value=200 + i))
        sp.attributes.add(key="user.id", value=AnyValue(string_value=f"u{i}"))
        if i == 1:
            sp.status.code = 2  # type: ignore[assignment]
            sp.status.message = "boom"
    return req


def test_the_native_reader_is_compiled_where_the_tests_run() -> None:
    """`pip install -e .` compiles it wherever a C compiler is (the README's commands, CI): it must be there."""
    assert otlp.native_reader(), "fluo_lang/_spanreader.c was not compiled: install gcc and `pip install -e .` again"


def test_a_plain_request_is_read_natively_as_protobuf_reads_it() -> None:
    spans = check(request().SerializeToString())
    assert spans is not None and len(spans) == 3
    assert [s.status for s in spans] == ["unset", "error", "unset"]
    assert spans[1].status_message == "boom"
    assert spans[0].parent_id == b"" and spans[1].parent_id == bytes([9] * 7 + [1])
    assert spans[0]._read == {
        "http.status_code": 200, "user.id": "u0", "absent": None, "db.system": None, "a.b.c": None, "nested.deep": None,
    }  # fmt: skip
    assert spans[0].resource is spans[2].resource  # one dict per resource block, as protobuf's path shares it


def test_the_example_traces_are_read_natively() -> None:
    read = [check(body) for kind, body in example_bodies() if kind == "protobuf"]
    assert read and all(spans for spans in read)


def test_shared_spans_count_their_part_of_the_request_as_share_request_does() -> None:
    data = request(4).SerializeToString()
    spans = read_spans(data, share=True)
    assert spans is not None
    holder = spans[0]._attrs_source
    assert isinstance(holder, SharedRequest) and holder.sharing == 4 and holder.share == -(-len(data) // 4)
    assert [s._pos for s in spans] == [0, 1, 2, 3]  # type: ignore[attr-defined]
    assert otlp.request_share(spans) == holder.share
    alone = read_spans(data)
    assert alone is not None and all(isinstance(s._attrs_source, bytes) for s in alone)


def test_dotted_keys_read_through_maps_and_repeated_keys_keep_the_last_value() -> None:
    req = request(1)
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    nested = sp.attributes.add(key="a")
    inner = nested.value.kvlist_value.values.add(key="b")
    inner.value.kvlist_value.values.add(key="c", value=AnyValue(int_value=7))
    sp.attributes.add(key="user.id", value=AnyValue(string_value="last"))
    sp.attributes.add(key="nested", value=AnyValue(string_value="not a map"))
    spans = check(req.SerializeToString())
    assert spans is not None
    read = spans[0]._read
    assert read is not None
    assert read["a.b.c"] == 7 and read["user.id"] == "last" and read["nested.deep"] is None


def test_a_span_that_ends_before_it_starts_is_clamped_as_protobufs_path_clamps_it() -> None:
    req = request(2)
    req.resource_spans[0].scope_spans[0].spans[1].end_time_unix_nano = 5
    spans = check(req.SerializeToString())
    assert spans is not None and spans[1].end == spans[1].start


def test_a_resource_after_its_spans_and_no_resource_read_alike() -> None:
    req = request(2)
    rs = req.resource_spans[0]
    resource = b"\x0a" + varint(rs.resource.ByteSize()) + rs.resource.SerializeToString()
    rest = rs.SerializeToString()[len(resource) :]
    block = rest + resource  # scope_spans first, then the resource
    data = b"\x0a" + varint(len(block)) + block
    spans = check(data)
    assert spans is not None and spans[0].service == "auth"
    req.resource_spans[0].ClearField("resource")
    spans = check(req.SerializeToString())
    assert spans is not None and spans[0].service == "" and spans[0].resource == {}


def with_span_field(extra: bytes) -> bytes:
    """A request of one span with `extra` (tag and value) appended to the span's fields."""
    req = request(1)
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    span = sp.SerializeToString() + extra
    ss = req.resource_spans[0].scope_spans[0]
    ss.ClearField("spans")
    scope = ss.SerializeToString() + b"\x12" + varint(len(span)) + span
    rs = req.resource_spans[0]
    rs.ClearField("scope_spans")
    block = rs.SerializeToString() + b"\x12" + varint(len(scope)) + scope
    return b"\x0a" + varint(len(block)) + block


@pytest.mark.parametrize(
    ("why", "extra"),
    [
        ("an unknown field", b"\xa8\x01\x05"),  # field 21, varint
        ("a name given twice", b"\x2a\x02xy"),
        ("a trace state that is not UTF-8", b"\x1a\x02\xc3\x28"),
        ("an attribute key that is not UTF-8", b"\x4a\x06\x0a\x02\xff\xfe\x12\x00"),
        ("a map entry with an unknown field", b"\x4a\x05\x0a\x01k\x18\x01"),
        ("a wrong wire type", b"\x30\x01\x31" + bytes(8)),  # kind as a fixed64
    ],
)
def test_what_the_native_reader_does_not_read_is_left_to_protobuf(why: str, extra: bytes) -> None:
    data = with_span_field(extra)
    assert read_spans(data) is None, why
    check(data)  # and protobuf's path reads it or refuses it: both fine, never a native reading of it


def test_bad_ids_and_bad_bytes_are_left_to_protobuf_which_names_them() -> None:
    req = request(1)
    req.resource_spans[0].scope_spans[0].spans[0].span_id = bytes(8)
    data = req.SerializeToString()
    assert read_spans(data) is None
    with pytest.raises(otlp.TraceInputError, match=r"spans\[0\]\.span_id: all zero"):
        parse_protobuf(data, source="t.pb")
    good = request(2).SerializeToString()
    for cut in (1, 7, len(good) // 2, len(good) - 1):
        assert read_spans(good[:cut]) is None
        with pytest.raises(otlp.TraceInputError, match=r"^t\.pb: not an OTLP protobuf"):
            parse_protobuf(good[:cut], source="t.pb")


def test_a_resource_protobuf_refuses_is_refused_as_protobuf_refuses_it() -> None:
    req = request(1)
    req.resource_spans[0].resource.attributes.append(KeyValue(key="k", value=AnyValue(string_value="v")))
    data = req.SerializeToString().replace(b"\x0a\x01k", b"\x0a\x01\xff")  # the key is no longer UTF-8
    assert read_spans(data) is None
    with pytest.raises(otlp.TraceInputError, match=r"^t\.pb: not an OTLP protobuf"):
        parse_protobuf(data, source="t.pb")


def nested_value(levels: int) -> bytes:
    """An AnyValue's bytes: `levels` arrays, each holding the next, around an int (two messages a level)."""
    value = AnyValue(int_value=1).SerializeToString()
    for _ in range(levels):
        array = b"\x0a" + varint(len(value)) + value  # ArrayValue.values
        value = b"\x2a" + varint(len(array)) + array  # AnyValue.array_value
    return value


def test_a_resource_nested_to_protobufs_depth_limit_is_judged_at_the_requests_depth() -> None:
    """Protobuf's nesting limit counts from the request: a resource checked alone would pass 3 levels deeper."""
    outcomes = set()
    for levels in range(40, 54):
        value = nested_value(levels)
        pair = b"\x0a\x04deep\x12" + varint(len(value)) + value  # KeyValue
        resource = b"\x0a" + varint(len(pair)) + pair  # Resource.attributes
        req = request(1)
        rs = req.resource_spans[0]
        rs.ClearField("resource")
        block = b"\x0a" + varint(len(resource)) + resource + rs.SerializeToString()
        data = b"\x0a" + varint(len(block)) + block
        standard = by_protobuf(data)
        assert (read_spans(data) is None) == (standard is None), levels
        check(data)
        outcomes.add(standard is None)
    assert outcomes == {True, False}  # the limit lies inside the range tried


def test_too_deep_values_are_counted_once_whichever_reader_reads_them() -> None:
    value = nested_value(otlp.MAX_VALUE_DEPTH + 2)
    pair = b"\x0a\x07user.id\x12" + varint(len(value)) + value
    data = with_span_field(b"\x4a" + varint(len(pair)) + pair)
    before = otlp.too_deep_reads()
    assert read_spans(data, prefetch=("user.id",)) is not None
    assert otlp.too_deep_reads() == before + 1
    bad = with_span_field(b"\x4a" + varint(len(pair)) + pair + b"\xa8\x01\x05")  # and an unknown field
    before = otlp.too_deep_reads()
    assert read_spans(bad, prefetch=("user.id",)) is None
    assert otlp.too_deep_reads() == before  # not counted for a reading that was given up
    assert by_protobuf(bad, ("user.id",)) is not None
    assert otlp.too_deep_reads() == before + 1  # protobuf's path counts it


SLOW = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(protobuf_bodies())
def test_fuzzed_bodies_are_read_as_protobuf_reads_them_or_left_to_it(body: bytes) -> None:
    check(body)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """Requests of spans with random ids, names, times, kinds, statuses and attributes, each field in its place."""
    spans: list[Span] = []
    for b in range(draw(st.integers(1, 3))):
        service = draw(st.sampled_from(["", "auth", "pay", "é"]))
        for _ in range(draw(st.integers(0, 4))):
            start = draw(st.integers(0, 2**64 - 1))
            attributes: dict[str, Any] = draw(
                st.dictionaries(
                    st.sampled_from([*KEYS, "a", "a.b", "nested", "x"]),
                    st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=5), st.booleans(),
                              st.floats(allow_nan=False), st.lists(st.integers(0, 3), max_size=2),
                              st.dictionaries(st.sampled_from(["b", "c", "b.c"]), st.integers(0, 3), max_size=2)),
                    max_size=4,
                )
            )  # fmt: skip
            spans.append(
                Span(
                    trace_id=draw(st.binary(min_size=16, max_size=16)) or bytes(16),
                    span_id=draw(st.binary(min_size=8, max_size=8)),
                    parent_id=draw(st.sampled_from([b"", bytes(8), b"\x01" * 8])),
                    name=draw(st.text(max_size=6)),
                    service=service,
                    start=start,
                    end=draw(st.integers(0, 2**64 - 1)),
                    status=draw(st.sampled_from(["unset", "ok", "error"])),
                    status_message=draw(st.text(max_size=4)),
                    kind=draw(st.sampled_from(["unspecified", "internal", "server", "client", "producer", "consumer"])),
                    attributes=attributes,
                    resource={"service.name": service, "block": b} if service else {"block": b},
                )
            )
    return spans_to_request(spans).SerializeToString()


@SLOW
@given(requests())
def test_generated_requests_are_read_natively_as_protobuf_reads_them(data: bytes) -> None:
    spans = check(data)
    standard = by_protobuf(data)
    assert (spans is None) == (standard is None)  # read natively unless protobuf's path refuses them (bad ids)


def padded(n: int, size: int) -> bytes:
    """`n` as a varint of exactly `size` bytes (over-long: continuation bytes of zero bits)."""
    out = bytearray(varint(n))
    if size > len(out):
        out[-1] |= 0x80
        out += b"\x80" * (size - len(out) - 1) + b"\x00"
    return bytes(out)


def test_tags_and_lengths_of_more_than_five_bytes_are_left_to_protobuf_which_refuses_them() -> None:
    """Protobuf reads a tag or a length in at most 5 bytes (QA native r01: the reader took 10, then a span's
    attributes, decoded again by protobuf, failed mid-evaluation); 5 bytes, over-long but valid, read alike."""
    block = request(2).resource_spans[0].SerializeToString()
    for tag_size, length_size, readable in [(5, 1, True), (6, 1, False), (1, 5, True), (1, 6, False)]:
        wire = padded(0x0A, tag_size) + padded(len(block), length_size) + block  # resource_spans, field 1
        assert (by_protobuf(wire) is not None) == readable, (tag_size, length_size)
        assert (read_spans(wire) is not None) == readable, (tag_size, length_size)
        check(wire)
    pair = b"\x0a\x01k\x12\x02\x08\x01"  # a KeyValue: k = 1
    for tag_size, readable in [(5, True), (6, False)]:
        inner = with_span_field(padded(0x4A, tag_size) + varint(len(pair)) + pair)  # attributes, field 9
        assert (by_protobuf(inner) is not None) == readable
        assert (read_spans(inner) is not None) == readable
        check(inner)


def test_reading_with_no_planned_keys_keeps_no_memory() -> None:
    """QA native r02: every read with no planned key (rules reading no attribute) leaked 32 bytes in C."""
    data = request(3).SerializeToString()
    for keys in [(), KEYS]:
        read_spans(data, prefetch=keys)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(3000):
                read_spans(data, prefetch=keys)
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert grown < 16 * 1024, (keys, grown)


def test_a_span_of_many_attributes_reads_its_keys_when_used_not_by_scans() -> None:
    """QA native r03: planned keys were found by scanning a span's attributes, key after key: past 256 of
    them none is prefetched, and each is read through protobuf's map when first used, as without a plan."""
    req = request(1)
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    for i in range(300):
        sp.attributes.add(key=f"k{i}", value=AnyValue(int_value=i))
    data = req.SerializeToString()
    spans = read_spans(data, prefetch=KEYS)
    assert spans is not None and spans[0]._read is None
    assert spans[0].attr("http.status_code") == 200 and spans[0].attr("k99") == 99
    check(data)


def test_a_build_of_another_version_of_the_reader_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp, "_READER_VERSION", otlp._READER_VERSION + 1)
    assert otlp._native() is None
