"""Loading and writing OpenTelemetry traces in OTLP form.

Readers turn OTLP protobuf (`ExportTraceServiceRequest` or `TracesData` bytes)
and OTLP/JSON (one object per file, or one per line as the Collector's file
exporter writes it) into `fluo_lang.trace.Span` objects. Writers produce
OTLP/JSON and protobuf from spans, for fixtures, `fluo discover` and demos.

`spans_from_request` is the live runtime's path and is tuned for speed: a
resource's attributes are converted once and shared by its spans, and span
attributes are converted only when a rule first reads them. The JSON path
converts everything eagerly so that every input error surfaces at load time,
as a `TraceInputError` naming the file, line and JSON path.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import os
import re
import sys
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain, filterfalse, repeat
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

from fluo_lang.diagnostics import article, nearest, plural
from fluo_lang.files import StdinClosed, identity, standard_input
from fluo_lang.folders import walk
from fluo_lang.trace import KIND_VALUES, STATUS_VALUES, Copies, Span, dotted_readings, read_in
from fluo_lang.values import HexBytes, lone_crs_as_lf, one_line

__all__ = [
    "FIELDS_BESIDE_SPAN",
    "JSON_CONTAINERS_PER_SPAN",
    "MAX_FIELDS_BESIDE_SPANS",
    "MAX_SPANS_PER_FILE",
    "MIN_SPAN_WIRE_BYTES",
    "NO_NATIVE_READER",
    "TRACE_FILE_NAMES",
    "NotAnExport",
    "TraceInputError",
    "UnknownKeys",
    "count_json_containers",
    "count_spans",
    "decode_traces",
    "detach_spans",
    "is_trace_file_name",
    "load_trace_file",
    "load_trace_files",
    "native_reader",
    "parse_json",
    "parse_protobuf",
    "parse_trace_bytes",
    "read_spans",
    "read_warnings",
    "replace_lone_surrogates",
    "request_share",
    "share_request",
    "shares_request",
    "span_bytes",
    "spans_from_json",
    "spans_from_request",
    "spans_to_json",
    "spans_to_request",
]

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
_ZERO_SPAN_ID = bytes(SPAN_ID_BYTES)
_ZERO_TRACE_ID = bytes(TRACE_ID_BYTES)
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1

_STATUS_BY_CODE: dict[int, str] = dict(enumerate(STATUS_VALUES))
_KIND_BY_NUMBER: dict[int, str] = dict(enumerate(KIND_VALUES))
_STATUS_CODE: dict[str, int] = {v: i for i, v in enumerate(STATUS_VALUES)}
_KIND_NUMBER: dict[str, int] = {v: i for i, v in enumerate(KIND_VALUES)}

PROTOBUF_SUFFIXES = frozenset({".pb", ".binpb", ".protobuf"})
JSON_SUFFIXES = frozenset({".json", ".jsonl", ".ndjson"})
STDIN_PATH = "-"
STDIN_SOURCE = "<stdin>"


class TraceInputError(Exception):
    """Trace input that cannot be read or is not valid OTLP.

    Its message is one line saying where (file, line for JSON lines, JSON path)
    and what was expected, e.g.
    `traces/a.json:3: resourceSpans[0].scopeSpans[0].spans[2].spanId: 'xyz' is not
    a hex span id (16 hex digits)`.
    """


def clamp_end(span: Span, clamped: list[Span] | None) -> None:
    """A span that ends before it starts ends when it starts: its duration is 0, never negative.

    OTLP expects `end >= start`, and the OpenTelemetry SDKs themselves (JavaScript's:
    "Inconsistent start and end time ... setting span duration to 0ms") clamp such
    a span. It is read, not refused, so one bad span never loses the others of its
    request in `fluo serve`; `clamped`, when given, collects it so a reader can say so
    (`fluo eval` warns on stderr).
    """
    span.end = span.start
    if clamped is not None:
        clamped.append(span)


def describe_clamped(clamped: Sequence[Span]) -> str:
    """What to say about spans read as ending when they start (`clamp_end`), naming the first.

    One wording for `fluo eval`'s warning and `fluo serve`'s partial-success message.
    """
    first = clamped[0]
    spans = "1 span ends before it starts" if len(clamped) == 1 else f"{len(clamped)} spans end before they start"
    return (
        f"{spans} (first: span {first.span_id.hex()} of trace {first.trace_id.hex()}); "
        "each is read as ending when it starts, with duration 0"
    )


def read_warnings(
    clamped: Mapping[str, Sequence[Span]],
    copies: Copies,
    spans: Sequence[Span] = (),
    sources: Mapping[str, int] | None = None,
) -> list[str]:
    """What reading traces changed or lost, one line each, in the words every command that reads trace files
    says it with (`fluo eval`, `fluo test`, `fluo discover`): spans read as ending when they start (`clamped`,
    `clamp_end`: by file, one line each naming it, as unknown keys are), spans dropped for the span id of a
    different span of their trace, and copies of a span dropped that differ from the copy kept in their
    resource attributes alone (`copies`, `trace.dropped_copies` of `spans`), each naming the first such span
    and the files it and its kept copy were read from (`sources`: each file's name and how many spans it gave,
    in the order `spans` holds them; spans past them name no file)."""
    out = [f"{source}: {describe_clamped(spans)}" for source, spans in clamped.items() if spans]
    if copies.clashing:
        first = _first_copy(copies.first_clashing, spans, sources)
        out.append(
            f"dropped {plural(copies.clashing, 'duplicate span')}{first}: each had the span id of a different span "
            "of the same trace (the last one read was kept); fix the id generator that sent them"
        )
    if copies.restamped:
        first = _first_copy(copies.first_restamped, spans, sources)
        out.append(
            f"dropped {plural(copies.restamped, 'copy', 'copies')} of spans{first} that differ from the copy kept "
            "(the last one read) in their resource attributes alone: is a trace exported through two pipelines or "
            "collectors that add different resource attributes?"
        )
    return out


def _first_copy(first: tuple[int, int] | None, spans: Sequence[Span], sources: Mapping[str, int] | None) -> str:
    """` (first: span S of trace T, in a.json; the copy kept in b.json)` for a dropped copy and the copy kept
    (indexes in `spans`), naming the files of `sources` they were read from; "" when `spans` is not given."""
    if first is None or not spans:
        return ""
    dropped, kept = first
    span = spans[dropped]
    text = f" (first: span {span.span_id.hex()} of trace {span.trace_id.hex()}"
    source, kept_source = _file_at(dropped, sources), _file_at(kept, sources)
    if source is not None:
        text += f", in {source}"
    if kept_source != source and kept_source is not None:
        text += f"; the copy kept in {kept_source}"
    return one_line(text + ")")


def _file_at(index: int, sources: Mapping[str, int] | None) -> str | None:
    """The file of `sources` (names and span counts, in order) the span at `index` was read from."""
    for source, count in (sources or {}).items():
        if index < count:
            return source
        index -= count
    return None


# ---------------------------------------------------------------------------
# protobuf -> spans


MAX_VALUE_DEPTH = 31
"""How deep lists and maps may nest in an attribute value (a list of strings is 1 deep, a list of them 2).

A value nested deeper reads as missing from OTLP/JSON and protobuf alike, and `fluo eval`,
`fluo test` and `fluo discover` warn: where the file is read for OTLP/JSON and resources
(`UnknownKeys.too_deep`), after the run for a protobuf span attribute, whose value is decoded
only when read and so is found only then (`too_deep_reads`): no value is looked at before it is read.

protobuf's decoder (upb) reads at most 100 messages
deep: a map level is 3 messages (AnyValue, KeyValueList, KeyValue), a list level 2, and a resource's
value sits 5 deep in a request, so 5 + 3 x 31 = 98 is as deep as every value reads in both encodings."""

_TOO_DEEP_READS = [0]
"""How many protobuf attribute values read so far nested past `MAX_VALUE_DEPTH` (`too_deep_reads`).

One count for the whole process, read as its difference before and after a run: it is meant for one
command at a time (`fluo eval`, `fluo test`, `fluo discover`). `fluo serve` reads values too, and so
moves it, but nobody reads it there; two runs at once in one process would each count the other's."""


class _TooDeep(Exception):
    """A value nested past `MAX_VALUE_DEPTH`: raised where found, caught where its attribute is read."""


def _pb_value(v: AnyValue, depth: int = 0) -> Any:
    """The Python value of an OTLP AnyValue message `depth` lists and maps deep (raises `_TooDeep` past the limit)."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which in ("array_value", "kvlist_value") and depth == MAX_VALUE_DEPTH:
        raise _TooDeep
    if which == "array_value":
        return [_pb_value(x, depth + 1) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value, depth + 1) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return HexBytes(v.bytes_value.hex())
    return None


def _pb_attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    """A repeated KeyValue field as a dict (a repeated key keeps its last value; one nested too deep is missing)."""
    out: dict[str, Any] = {}
    for kv in kvs:
        try:
            out[kv.key] = _pb_value(kv.value)
        except _TooDeep:
            out[kv.key] = None
            _note_too_deep(kv.key)
    return out


def too_deep_reads() -> int:
    """How many protobuf span attribute values read so far in this process nested past `MAX_VALUE_DEPTH`
    (read as missing); a command compares the count before and after its run (`too_deep_warning`)."""
    return _TOO_DEEP_READS[0]


def too_deep_warning(n: int) -> str | None:
    """The warning for `n` values read nested too deep (`too_deep_reads` counted during a run), if any."""
    if n <= 0:
        return None
    reads = "1 read" if n == 1 else f"{n:,} reads"
    return (
        f"{reads} of an attribute value from protobuf found lists and maps nested more than {MAX_VALUE_DEPTH} "
        "deep, read as missing"
    )


_VALUE_CACHE: dict[bytes, Any] = {}
_VALUE_CACHE_MAX = 1 << 16
_VALUE_CACHE_KEY_BYTES = 64
_MISS = object()


def _remember(cache: dict[bytes, Any], raw: bytes, value: Any, max_key_bytes: int, max_entries: int) -> None:
    """Keep what `raw` decodes to, if `raw` is short; a full cache starts over (common values come back at once)."""
    if len(raw) <= max_key_bytes:
        if len(cache) >= max_entries:
            cache.clear()
        cache[raw] = value


def _any_value(raw: bytes) -> Any:
    """The Python value of an `AnyValue` message's bytes; bytes that are not one read as missing.

    Attribute values repeat across spans (status codes, methods, hosts), so scalar
    values of short encodings are kept by their bytes, up to `_VALUE_CACHE_MAX` of them.
    """
    v = _VALUE_CACHE.get(raw, _MISS)
    if v is not _MISS:
        return v
    n = len(raw)
    if n >= 2 and raw[0] == 0x0A and raw[1] == n - 2:  # string_value shorter than 128 bytes, alone
        try:
            v = raw[2:].decode()
        except UnicodeDecodeError:
            return None
    else:
        try:
            v = _pb_value(AnyValue.FromString(raw))
        except _TooDeep:
            _TOO_DEEP_READS[0] += 1
            return None
        except DecodeError as e:
            if "MaxDepth" in str(e):  # upb's own limit, past ours: "Exceeded upb_DecodeOptions_MaxDepth"
                _TOO_DEEP_READS[0] += 1
            return None
        except (RuntimeError, ValueError):
            return None
        if isinstance(v, list | dict):
            return v  # mutable: each reader gets its own
    _remember(_VALUE_CACHE, raw, v, _VALUE_CACHE_KEY_BYTES, _VALUE_CACHE_MAX)
    return v


class SharedRequest:
    """An export request's wire bytes, shared by its spans once the decoded request is let go (`share_request`).

    `share`: the bytes each of its spans is counted for (`span_bytes`), the request's size
    divided by `sharing`, the number of its spans sharing it, so together they count it once.
    """

    __slots__ = ("data", "share", "sharing")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.share = len(data)
        self.sharing = 0

    def span(self, position: int) -> Any:
        """The span message at `position` (in `spans_from_request` order), from a re-decoding kept a while."""
        return self.spans()[position]

    def spans(self) -> list[Any]:
        """Every span message of the request (in `spans_from_request` order), from a re-decoding kept a while."""
        with _REDECODED_LOCK:
            spans = _REDECODED.get(self)
            if spans is not None:
                _REDECODED.move_to_end(self)
                return spans
        req: Any = _FastTraces.FromString(self.data)
        spans = [sp for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans]
        with _REDECODED_LOCK:
            _REDECODED[self] = spans
            while len(_REDECODED) > _REDECODED_MAX:
                _REDECODED.popitem(last=False)
        return spans


_REDECODED: OrderedDict[SharedRequest, list[Any]] = OrderedDict()  # by identity
_REDECODED_MAX = 8
"""Re-decoded requests kept for the next read: a trace's spans are read together, and often share requests."""
_REDECODED_LOCK = threading.Lock()


class _DecodedSpan(Span):
    """A span from `spans_from_request`: its attributes stay in its protobuf message until read.

    `_attrs_source` is the span message in FLUO's own schema (see `_fast_schema`),
    whose attributes are a map looked up by key in C; or its serialized bytes once
    `detach_spans` let the request go (parsed again on first read); or, after
    `share_request`, the request's wire bytes shared by all its spans, with the
    span's position in `_pos` (the request is decoded again on first read).
    """

    __slots__ = ("_pos",)
    _pos: int

    def _map(self) -> Any:
        source = self._attrs_source
        if isinstance(source, bytes):
            source = self._attrs_source = _FastSpan.FromString(source)
        elif isinstance(source, SharedRequest):
            return source.span(self._pos).attributes
        return source.attributes

    def _lookup(self, key: str) -> Any:
        v = self._map().get(key)
        return None if v is None else _any_value(v)

    def _convert(self) -> dict[str, Any]:
        m = self._map()
        # A map has no order on the wire; keys are sorted so every reader sees the same dict.
        return {k: _any_value(m[k]) for k in sorted(m)}


_STATUS_CACHE: dict[bytes, tuple[str, str]] = {b"": ("unset", "")}
_STATUS_CACHE_MAX = 1 << 12


def _status(raw: bytes) -> tuple[str, str]:
    """(status, message) from a `Status` message's bytes; bytes that are not one read as unset.

    The message is kept only with an error status, the only status OTLP gives one; its
    invalid UTF-8 is replaced (as in names), so a bad byte there does not lose the status.
    """
    got = _STATUS_CACHE.get(raw)
    if got is not None:
        return got
    try:
        st: Any = _FastStatus.FromString(raw)
    except (DecodeError, RuntimeError, ValueError):
        return "unset", ""
    code = st.code
    got = ("error", st.message.decode(errors="replace")) if code == 2 else (_STATUS_BY_CODE.get(code, "unset"), "")
    _remember(_STATUS_CACHE, raw, got, _VALUE_CACHE_KEY_BYTES, _STATUS_CACHE_MAX)
    return got


_NAMES: dict[bytes, str] = {}
_NAMES_MAX = 1 << 14
_NAME_KEY_BYTES = 256


def _name(raw: bytes) -> str:
    """A span name from its UTF-8 bytes (invalid bytes replaced), one shared string per distinct name.

    Names repeat across spans: sharing them saves a string per span, and the name
    index hashes a string once, not once per span.
    """
    name = _NAMES.get(raw)
    if name is None:
        name = raw.decode(errors="replace")
        _remember(_NAMES, raw, name, _NAME_KEY_BYTES, _NAMES_MAX)
    return name


def _fast_schema() -> tuple[type[Message], type[Message], type[Message]]:
    """OTLP's trace messages with `Span.attributes` read as `map<string, bytes>`, `Span.status` and `name` as bytes.

    A map entry is, on the wire, exactly a `KeyValue` (key = 1, value = 2, the value
    length-delimited like bytes), so the same bytes decode either way. As a map, upb
    indexes the attributes by key in C and a rule's read is one hash lookup instead
    of a pass over every pair in Python; as bytes, a value costs no message object
    (`_any_value` reads it, and remembers common ones). A repeated key keeps its last
    value, as everywhere else in FLUO. `status` as bytes costs no message object either
    (`_status` reads it, and remembers common ones); `name` as bytes is read by `_name`,
    which shares one string per name. Span events and links, which no rule reads,
    stay bytes instead of being parsed into messages. `Status.message` is bytes too, read by
    `_status`. Built from the generated descriptor at import,
    so it follows the installed opentelemetry-proto. An attribute value that is not
    a valid `AnyValue` reads as missing, and a status that is not a valid `Status`
    as unset, instead of failing the whole request.
    """
    proto = descriptor_pb2.FileDescriptorProto()
    trace_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = "." + proto.package + ".", ".fluo.otlp.fast."
    proto.name = "fluo/otlp_fast.proto"
    proto.package = "fluo.otlp.fast"

    def retarget(message: descriptor_pb2.DescriptorProto) -> None:
        for f in message.field:
            if f.type_name.startswith(old):
                f.type_name = new + f.type_name[len(old) :]
        for nested in message.nested_type:
            retarget(nested)

    for message in proto.message_type:
        retarget(message)
        if message.name == "Span":
            entry = message.nested_type.add(name="AttributesEntry")
            entry.options.map_entry = True
            F = descriptor_pb2.FieldDescriptorProto
            entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
            entry.field.add(name="value", number=2, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
            (attributes,) = (f for f in message.field if f.name == "attributes")
            attributes.type_name = new + "Span.AttributesEntry"
            (status,) = (f for f in message.field if f.name == "status")
            status.type = F.TYPE_BYTES
            status.ClearField("type_name")
            (name,) = (f for f in message.field if f.name == "name")
            name.type = F.TYPE_BYTES
            for unread in (f for f in message.field if f.name in ("events", "links")):
                unread.type = F.TYPE_BYTES  # never read: kept as bytes, not parsed into messages
                unread.ClearField("type_name")
        if message.name == "Status":
            (text,) = (f for f in message.field if f.name == "message")
            text.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(proto.name)
    except KeyError:
        pool.Add(proto)
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName("fluo.otlp.fast.TracesData")),
        get(pool.FindMessageTypeByName("fluo.otlp.fast.Span")),
        get(pool.FindMessageTypeByName("fluo.otlp.fast.Status")),
    )


_FastTraces, _FastSpan, _FastStatus = _fast_schema()


def decode_traces(data: bytes) -> Message:
    """OTLP protobuf bytes (`ExportTraceServiceRequest` or `TracesData`) decoded for `spans_from_request`.

    Faster to read spans from than `ExportTraceServiceRequest.FromString`: span
    attributes come out as a map (see `_fast_schema`). Raises what protobuf raises
    for bytes that are not such a message (`DecodeError`, sometimes `RuntimeError`),
    saying what protobuf found wrong, without the name of FLUO's own schema.
    """
    try:
        return _FastTraces.FromString(data)
    except DecodeError as exc:
        _, _, why = str(exc).rpartition("': ")  # "Error parsing message with type 'fluo.otlp.fast...': <why>"
        raise DecodeError(why or "cannot parse") from None


def detach_spans(spans: Iterable[Span], *, shared_too: bool = True) -> None:
    """Let spans from `spans_from_request` outlive their request at a fraction of its memory.

    A decoded request holds every span's attributes in one block of memory that
    lives as long as any span still points into it, several times the wire size.
    After this, each span whose attributes were not yet read keeps just its own
    serialized bytes, parsed again on first read. For spans held a while, as the
    runtime holds spans until their trace is complete. Spans sharing their
    request's bytes (`share_request`) get their own bytes too, so they no longer
    keep the whole request alive (unless `shared_too` is false: those stay as they are).
    Those are grouped by request first, so each request is decoded at most once per
    call, however its spans are spread over traces: pass all the spans at hand at once.
    """
    shared: dict[SharedRequest, list[_DecodedSpan]] = {}  # by identity
    for s in spans:
        if isinstance(s, _DecodedSpan):
            source = s._attrs_source
            if isinstance(source, SharedRequest):
                if shared_too:
                    group = shared.get(source)
                    if group is None:
                        shared[source] = [s]
                    else:
                        group.append(s)
            elif source is not None and not isinstance(source, bytes):
                s._attrs_source = source.SerializeToString()
    for request, group in shared.items():
        messages = request.spans()
        for s in group:
            s._attrs_source = messages[s._pos].SerializeToString()


def share_request(spans: list[Span], data: bytes) -> None:
    """Let spans outlive their decoded request by sharing its wire bytes, instead of bytes of their own.

    `spans` must be exactly what `spans_from_request(decode_traces(data))` returned,
    in its order. Much cheaper than `detach_spans` (nothing is serialized), and the
    bytes are the wire size; but the request's bytes live as long as any of its
    spans does: `detach_spans` the ones held long after their siblings are gone.
    """
    shared = SharedRequest(data)
    positions = _POSITIONS if len(spans) <= len(_POSITIONS) else range(len(spans))
    sharing = 0
    for s, i in zip(spans, positions, strict=False):
        if isinstance(s, _DecodedSpan) and s._attrs_source is not None and not isinstance(s._attrs_source, bytes):
            s._attrs_source = shared
            s._pos = i
            sharing += 1
    if sharing:
        shared.sharing = sharing
        shared.share = -(-len(data) // sharing)  # rounded up: the spans together count at least the whole request


_POSITIONS = tuple(range(1 << 13))
"""Shared int objects for span positions: one each, not one per span."""


def span_bytes(spans: Iterable[Span]) -> int:
    """The wire bytes that `spans` keep alive: a span sharing its request (`share_request`) counts its
    part of the request (`SharedRequest.share`), a detached span (`detach_spans`) its own bytes. Spans
    whose attributes are Python objects (decoded, or from OTLP/JSON) count 0: only their number is capped.
    """
    total = 0
    for s in spans:
        source = s._attrs_source
        cls = source.__class__
        if cls is SharedRequest:
            total += source.share
        elif cls is bytes:
            total += len(source)
    return total


def request_share(spans: list[Span]) -> int | None:
    """`SharedRequest.share` when `spans` are the spans sharing one request, as `share_request` left them
    (the receivers hand a request's spans over so), else None: then `span_bytes(part)` is `len(part)`
    times it, for any part. Told in constant time: the first and last span share the request, and it
    has as many spans sharing it as there are spans (a list mixing requests' spans is not told apart
    from one request's if it also passes that: it is not what the receivers hand over).
    """
    if not spans:
        return None
    first = spans[0]._attrs_source
    if first.__class__ is not SharedRequest or first.sharing != len(spans) or spans[-1]._attrs_source is not first:
        return None
    share: int = first.share
    return share


def shares_request(span: Span) -> bool:
    """Whether a span keeps its request's bytes alive (see `share_request`)."""
    return isinstance(span._attrs_source, SharedRequest)


def _service_of(resource: Mapping[str, Any]) -> str:
    service = resource.get("service.name")
    if service is None:
        return ""
    return service if isinstance(service, str) else str(service)


def id_problem(trace_id: bytes, span_id: bytes, parent_id: bytes) -> tuple[str, str] | None:
    """(field, what is wrong) for ids OTLP says are invalid: a wrong length, or all zero (a parent may be)."""
    if len(trace_id) != TRACE_ID_BYTES:
        return "trace_id", f"{len(trace_id)} bytes, expected a {TRACE_ID_BYTES}-byte trace id"
    if len(span_id) != SPAN_ID_BYTES:
        return "span_id", f"{len(span_id)} bytes, expected an {SPAN_ID_BYTES}-byte span id"
    if trace_id == _ZERO_TRACE_ID:
        return "trace_id", "all zero, which OTLP says is not a valid trace id"
    if span_id == _ZERO_SPAN_ID:
        return "span_id", "all zero, which OTLP says is not a valid span id"
    if parent_id and len(parent_id) != SPAN_ID_BYTES:
        return (
            "parent_span_id",
            f"{len(parent_id)} bytes, expected an {SPAN_ID_BYTES}-byte span id or none",
        )
    return None


def _bad_ids(req: Any) -> Iterator[str]:
    """`path: what is wrong` for each span of `req` whose ids OTLP says are invalid (`id_problem`), in order."""
    for i, rs in enumerate(req.resource_spans):
        for j, ss in enumerate(rs.scope_spans):
            for k, sp in enumerate(ss.spans):
                problem = id_problem(sp.trace_id, sp.span_id, sp.parent_span_id)
                if problem is not None:
                    field, what = problem
                    yield f"resource_spans[{i}].scope_spans[{j}].spans[{k}].{field}: {what}"


def _raise_bad_ids(req: Any, source: str) -> None:
    for bad in _bad_ids(req):
        raise TraceInputError(f"{source}: {bad}")


def _dotted_in(m: Any, readings: tuple[tuple[str, str], ...]) -> Any:
    """`read_dotted` over a span message's attribute map (FLUO's schema: values as AnyValue bytes)."""
    for head, rest in readings:
        if head in m:
            inner = _any_value(m[head])
            if isinstance(inner, dict):
                v = read_in(inner, rest)
                if v is not None:
                    return v
    return None


def spans_from_request(
    request: Message,
    *,
    source: str = "<request>",
    prefetch: Iterable[str] = (),
    clamped: list[Span] | None = None,
    unknown: UnknownKeys | None = None,
) -> list[Span]:
    """The spans of an OTLP export request (or a `TracesData`, which has the same fields).

    Fastest with a message from `decode_traces`; a standard `ExportTraceServiceRequest`
    or `TracesData` is re-read through it. Every span of a resource block shares that
    block's resource dict, and its `service` is the resource's `service.name` ("" if
    absent). Span attributes are converted on first access, except the keys in
    `prefetch` (the keys a rule set reads, `Program.prefetch`), which are
    converted here while the span is in the CPU's cache: read later, each costs a
    few times more. A dotted key a span does not have is read there through the maps
    under its flat prefixes, as `Span.attr` reads it. An all-zero parent id means no parent;
    unknown status codes and kinds read as `unset` and `unspecified`; the status
    message is kept only with an error status (the only status OTLP gives one).
    Ids OTLP says are invalid (`id_problem`: the wrong length, an all-zero trace or span id) raise
    `TraceInputError` naming `source` and the span; with `unknown`, the span is skipped instead and noted
    there (`UnknownKeys.skip`), as `fluo serve` rejects it and keeps the rest of the request.
    A span that ends before it starts ends when it starts (see `clamp_end`).
    `unknown`, when given, gets the resource attributes nested past `MAX_VALUE_DEPTH` (read as
    missing); a span's are decoded only when read, and counted then (`too_deep_reads`).

    Spans are built by assigning every slot of `Span` directly, a third of the cost
    of calling `Span(...)` with keyword arguments; a test checks that every slot is
    set and that the spans equal those read from the same request as OTLP/JSON.
    """
    req: Any = request
    if not isinstance(req, _FastTraces):
        req = _FastTraces.FromString(req.SerializeToString())
    # `a.b.c` is read as a map under `a.b` or `a` where the span has no `a.b.c` (`Span.attr`):
    # then read so here too. Each key is paired with its readings: no lookup per miss.
    plan = tuple((k, dotted_readings(k)) for k in prefetch)
    value_of = _any_value
    cached = _VALUE_CACHE.get
    miss = _MISS
    out: list[Span] = []
    append = out.append
    status_cached = _STATUS_CACHE.get
    kind_of = _KIND_BY_NUMBER.get
    names = _NAMES.get
    zero = _ZERO_SPAN_ID
    zero_trace = _ZERO_TRACE_ID
    new = object.__new__
    span_cls = _DecodedSpan
    bad_ids: list[str] = []
    _telling_too_deep(unknown is not None)
    for rs in req.resource_spans:
        resource = _pb_attributes(rs.resource.attributes)
        service = _service_of(resource)
        _claim_too_deep(None, service)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                tid = sp.trace_id
                sid = sp.span_id
                pid = sp.parent_span_id
                if (
                    len(tid) != 16
                    or len(sid) != 8
                    or tid == zero_trace
                    or sid == zero
                    or (pid and (len(pid) != 8 or pid == zero))
                ):
                    if id_problem(tid, sid, pid) is not None:
                        if unknown is None:
                            _raise_bad_ids(req, source)
                        if not bad_ids:
                            bad_ids = list(_bad_ids(req))
                        continue
                    pid = b""
                st = sp.status
                status = status_cached(st)
                if status is None:
                    status = _status(st)
                s: Span = new(span_cls)
                s.trace_id = tid
                s.span_id = sid
                s.parent_id = pid
                raw_name = sp.name
                name = names(raw_name)
                s.name = _name(raw_name) if name is None else name
                s.service = service
                s.start = start = sp.start_time_unix_nano
                s.end = end = sp.end_time_unix_nano
                if end < start:
                    clamp_end(s, clamped)
                s.status, s.status_message = status
                s.kind = kind_of(sp.kind, "unspecified")
                s._attrs = None
                s._attrs_source = sp
                if plan:
                    m = sp.attributes
                    read: dict[str, Any] = {}
                    for k, readings in plan:
                        # `in`, then `[]` (which would add a missing key): cheaper in upb than `.get`.
                        if k in m:
                            v = m[k]
                            x = cached(v, miss)
                            read[k] = value_of(v) if x is miss else x
                        else:
                            read[k] = _dotted_in(m, readings) if readings else None
                    s._read = read
                else:
                    s._read = None
                s.resource = resource
                s.trace_ref = None
                append(s)
    _told_too_deep(unknown, source, None)
    if unknown is not None and bad_ids:
        unknown.skip(source, bad_ids)
    return out


def _wire_varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _resource_of(raw: bytes) -> tuple[dict[str, Any], str]:
    """The native reader's resource: (its attributes, its service), as `spans_from_request` reads them.

    Parsed inside a request of one block, so protobuf checks it at the depth a whole
    request's decode would (its nesting limit counts from the request); raises as that would.
    """
    block = b"\x0a" + _wire_varint(len(raw)) + raw  # ResourceSpans.resource
    req: Any = _FastTraces.FromString(b"\x0a" + _wire_varint(len(block)) + block)
    resource = _pb_attributes(req.resource_spans[0].resource.attributes)
    service = _service_of(resource)
    _claim_too_deep(None, service)
    return resource, service


def _scope_check(raw: bytes) -> None:
    """The native reader's check of an instrumentation scope (never read), as a whole request's decode checks it."""
    scope = b"\x0a" + _wire_varint(len(raw)) + raw  # ScopeSpans.scope
    block = b"\x12" + _wire_varint(len(scope)) + scope  # ResourceSpans.scope_spans
    _FastTraces.FromString(b"\x0a" + _wire_varint(len(block)) + block)


def _dotted_of(raw: bytes, rest: str) -> Any:
    """A dotted key's value under a flat head key holding `raw` (an AnyValue's bytes), as `_dotted_in` reads it."""
    inner = _any_value(raw)
    return read_in(inner, rest) if isinstance(inner, dict) else None


_READER_VERSION = 2
"""The version of `fluo_lang/_spanreader.c` this file calls (its `READER_VERSION`)."""


def _native() -> Any:
    """The native span reader, configured; None where it was not compiled (no C compiler at install), or is a
    build of another version of its source (an editable install not rebuilt after a pull: `pip install -e .`)."""
    try:
        from fluo_lang import _spanreader
    except ImportError:
        return None
    if getattr(_spanreader, "VERSION", None) != _READER_VERSION:
        return None
    _spanreader.configure(
        _DecodedSpan,
        {
            "resource_of": _resource_of,
            "scope_check": _scope_check,
            "value_cache": _VALUE_CACHE,
            "value_of": _any_value,
            "dotted_of": _dotted_of,
            "name_cache": _NAMES,
            "name_of": _name,
            "status_cache": _STATUS_CACHE,
            "status_of": _status,
            "clamp_end": clamp_end,
            "kinds": tuple(KIND_VALUES),
            "kind_default": "unspecified",
            "positions": _POSITIONS,
        },
    )
    return _spanreader


_spanreader: Any = _native()


NO_NATIVE_READER = (
    "FLUO's native span reader was not compiled where FLUO was installed (no C compiler or no Python headers): "
    "OTLP protobuf is read through protobuf alone, at a little over half the speed; with gcc (and python3-dev), "
    "`pip install` FLUO again"
)
"""What `fluo serve` says at its start where `native_reader()` is false."""


def native_reader() -> bool:
    """Whether FLUO's native span reader (`fluo_lang/_spanreader.c`) was compiled here and is used."""
    return _spanreader is not None


@functools.cache
def _native_plan(prefetch: tuple[str, ...]) -> tuple[tuple[str, bytes, tuple[tuple[bytes, str], ...]], ...]:
    return tuple((k, k.encode(), tuple((head.encode(), rest) for head, rest in dotted_readings(k))) for k in prefetch)


def read_spans(
    data: bytes,
    *,
    source: str = "<request>",
    prefetch: Iterable[str] = (),
    clamped: list[Span] | None = None,
    unknown: UnknownKeys | None = None,
    share: bool = False,
) -> list[Span] | None:
    """The spans `spans_from_request(decode_traces(data), ...)` gives, read by the native reader; None where it
    leaves `data` to protobuf (no native reader here, or anything but the plain encoding exporters write).

    Each span's unread attributes stay in `data`: with `share`, all of them share it (as after
    `share_request`), else each span holds its own bytes (as after `detach_spans`). A caller
    given None reads `data` as before, through `decode_traces` and `spans_from_request`, which
    say what is wrong with it, if anything.
    """
    if _spanreader is None:
        return None
    if not isinstance(data, bytes):
        data = bytes(data)  # the spans may keep it: never a buffer that can change
    keys = prefetch if isinstance(prefetch, tuple) else tuple(prefetch)
    deep = _TOO_DEEP_READS[0]
    _telling_too_deep(unknown is not None)
    holder = SharedRequest(data) if share else None
    seen_clamped: list[Span] | None = [] if clamped is not None else None
    try:
        spans: list[Span] | None = _spanreader.read(data, _native_plan(keys), holder, seen_clamped)
    except (DecodeError, RuntimeError, ValueError):  # a resource or scope protobuf refuses: said by protobuf's path
        spans = None
    if spans is None:
        _TOO_DEEP_READS[0] = deep  # counted again by protobuf's path
        _telling_too_deep(False)
        return None
    _told_too_deep(unknown, source, None)
    if holder is not None and spans:
        holder.sharing = len(spans)
        holder.share = -(-len(data) // len(spans))  # as `share_request` counts it
    if clamped is not None and seen_clamped:
        clamped.extend(seen_clamped)
    return spans


def parse_protobuf(
    data: bytes,
    *,
    source: str,
    prefetch: Iterable[str] = (),
    clamped: list[Span] | None = None,
    unknown: UnknownKeys | None = None,
) -> list[Span]:
    """Spans from OTLP protobuf bytes: an `ExportTraceServiceRequest` or a `TracesData`.

    Read by the native span reader where it was compiled (`read_spans`: each span keeps its own
    bytes), else, and for anything it leaves to protobuf, by `decode_traces` and `spans_from_request`.
    `prefetch`: attribute keys to convert while decoding; `unknown`: gets values nested too deep
    (see `spans_from_request`).
    """
    spans = read_spans(data, source=source, prefetch=prefetch, clamped=clamped, unknown=unknown)
    if spans is not None:
        return spans
    try:
        req = decode_traces(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise _not_protobuf(source, e) from None
    return spans_from_request(req, source=source, prefetch=prefetch, clamped=clamped, unknown=unknown)


def _not_protobuf(source: str, e: Exception) -> TraceInputError:
    detail = str(e) or type(e).__name__
    return TraceInputError(f"{source}: not an OTLP protobuf trace message (ExportTraceServiceRequest): {detail}")


# ---------------------------------------------------------------------------
# OTLP/JSON -> spans


def _field_names(message: Descriptor) -> dict[str, Descriptor | None]:
    """A message's fields by both the names protobuf's JSON mapping accepts (lowerCamelCase and the
    proto name), each with its message type (None for a scalar)."""
    out: dict[str, Descriptor | None] = {}
    for f in message.fields:
        out[f.json_name] = out[f.name] = f.message_type
    return out


_CHECKED_MESSAGES = (
    trace_pb2.TracesData,
    trace_pb2.ResourceSpans,
    Resource,
    trace_pb2.ScopeSpans,
    InstrumentationScope,
    trace_pb2.Span,
    trace_pb2.Span.Event,
    trace_pb2.Span.Link,
    trace_pb2.Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
)
"""The OTLP messages whose unknown keys the JSON reader tells: those it reads fields of, and the scope, events
and links it does not read (looked at for their keys only, and their attributes')."""

_FIELDS: dict[str, dict[str, Descriptor | None]] = {
    m.DESCRIPTOR.full_name: _field_names(m.DESCRIPTOR) for m in _CHECKED_MESSAGES
}
# Keys read as fields though no longer (or never) in the message: the deprecated names of scope spans,
# and other signals beside a trace's (a file of logs is no error, and has no spans).
_SCOPE_SPANS = trace_pb2.ScopeSpans.DESCRIPTOR
_FIELDS[trace_pb2.ResourceSpans.DESCRIPTOR.full_name].update(
    instrumentationLibrarySpans=_SCOPE_SPANS, instrumentation_library_spans=_SCOPE_SPANS
)
_FIELDS[_SCOPE_SPANS.full_name].update(
    instrumentationLibrary=InstrumentationScope.DESCRIPTOR, instrumentation_library=InstrumentationScope.DESCRIPTOR
)  # the deprecated InstrumentationLibrary: `name` and `version`, as a scope has
_FIELDS[trace_pb2.TracesData.DESCRIPTOR.full_name].update(
    {k: None for name in ("logs", "metrics", "profiles") for k in (f"resource{name.title()}", f"resource_{name}")}
)


def _known(message: Any) -> frozenset[str]:
    return frozenset(_FIELDS[message.DESCRIPTOR.full_name])


_KNOWN_REQUEST = _known(trace_pb2.TracesData)
_KNOWN_RESOURCE_SPANS = _known(trace_pb2.ResourceSpans)
_KNOWN_RESOURCE = _known(Resource)
_KNOWN_SCOPE_SPANS = _known(trace_pb2.ScopeSpans)
_KNOWN_SPAN = _known(trace_pb2.Span)
_KNOWN_STATUS = _known(trace_pb2.Status)
_KNOWN_KEY_VALUE = _known(KeyValue)
_KNOWN_VALUES = _known(ArrayValue)  # and KeyValueList's: `values`
_SCOPE = InstrumentationScope.DESCRIPTOR.full_name
_EVENT = trace_pb2.Span.Event.DESCRIPTOR.full_name
_LINK = trace_pb2.Span.Link.DESCRIPTOR.full_name
_ANY_VALUE = AnyValue.DESCRIPTOR.full_name
_KNOWN_OF = {name: frozenset(_FIELDS[name]) for name in (_SCOPE, _EVENT, _LINK)}
_SCALAR_VALUE = frozenset(k for k, inner in _FIELDS[_ANY_VALUE].items() if inner is None)
"""AnyValue's keys but `arrayValue` and `kvlistValue`: a value holding none of those holds no object."""
_SEEN = threading.local()
"""`unknown` is set by the reader when an object has a key its message does not (and from the start when nobody
collects them: then the objects it does not read are not looked at): see `spans_from_json`."""


def _noticed() -> None:
    _SEEN.unknown = True


def _unknown_in_skipped(spans: list[dict[str, Any]]) -> bool:
    """Whether the events or links of these spans (objects the reader does not read) have an unknown key."""
    return any(_unknown_among(_gets(spans, key), message) for key, message in (("events", _EVENT), ("links", _LINK)))


def _gets(objects: list[Any], key: str) -> list[Any]:
    """The values under `key` of these objects, but empty ones (raises TypeError for one not an object)."""
    return list(filter(None, map(dict.get, objects, repeat(key))))


def _unknown_among(groups: list[Any], message: str) -> bool:
    """`_has_unknown(groups, message)` for lists of objects of `message` (events, links, scopes), whose one message
    field is `attributes`: the same answer, from passes that iterate in C over all of a big file's events (links)
    at once, one level of nesting a pass. A pass looks at the keys of all the objects of its level together; one
    of a shape OTLP does not have (not an object where one goes) may answer true or raise, and is then walked."""
    try:
        items = list(chain.from_iterable(groups))
        if not _KNOWN_OF[message].issuperset(chain.from_iterable(items)):
            return _has_unknown(groups, message)
        pairs = list(chain.from_iterable(_gets(items, "attributes")))  # KeyValue objects
        values: list[Any] = []  # AnyValue objects
        while pairs or values:
            if not _KNOWN_KEY_VALUE.issuperset(chain.from_iterable(pairs)):
                return _has_unknown(groups, message)
            values += _gets(pairs, "value")
            nested = list(filterfalse(_SCALAR_VALUE.issuperset, values))  # arrays and key-value lists
            if not nested:
                return False
            arrays = _gets(nested, "arrayValue") + _gets(nested, "array_value")
            kvlists = _gets(nested, "kvlistValue") + _gets(nested, "kvlist_value")
            if not _KNOWN_ANY_VALUE.issuperset(chain.from_iterable(nested)) or not _KNOWN_VALUES.issuperset(
                chain.from_iterable(arrays + kvlists)
            ):
                return _has_unknown(groups, message)
            values = list(chain.from_iterable(_gets(arrays, "values")))
            pairs = list(chain.from_iterable(_gets(kvlists, "values")))
        return False
    except TypeError:  # not an object (or a list of them) where OTLP has one
        return _has_unknown(groups, message)


def _has_unknown(value: Any, message: str) -> bool:
    """Whether a JSON value of `message` (its full name) the reader does not read (a scope, events, links) has a
    key no field of its message has, at any depth: what `UnknownKeys` would find in it, found as it walks (with a
    stack of its own, so that no depth the decoder reads is too deep for it)."""
    stack = [(value, message)]
    while stack:
        value, message = stack.pop()
        if isinstance(value, list):
            stack.extend(zip(value, repeat(message)))
        elif isinstance(value, dict):
            fields = _FIELDS[message]
            for key, item in value.items():
                if key not in fields:
                    return True
                inner = fields[key]
                if inner is not None and inner.full_name in _FIELDS:
                    stack.append((item, inner.full_name))
    return False


def _note_too_deep(key: str) -> None:
    """An attribute whose value nested past `MAX_VALUE_DEPTH` was read as missing: kept for `_claim_too_deep`,
    when the reader was asked to tell (`_SEEN.deep` is a list, else None or unset)."""
    pending = getattr(_SEEN, "deep", None)
    if pending is not None:
        pending.append(key)


def _claim_too_deep(span: Span | None, service: str) -> None:
    """The attributes `_note_too_deep` kept, as those of `span` (None: of the resource of `service`)."""
    pending = getattr(_SEEN, "deep", None)
    if pending:
        _SEEN.deep_found.extend((span, service, key) for key in pending)
        pending.clear()


def _telling_too_deep(tell: bool) -> None:
    """Start keeping (or not) the attributes a reader reads as missing for nesting too deep."""
    _SEEN.deep = [] if tell else None
    _SEEN.deep_found = []


def _told_too_deep(notes: UnknownKeys | None, source: str, line: int | None) -> None:
    """Hand what was kept since `_telling_too_deep` to `notes`."""
    if notes is not None:
        for span, service, key in _SEEN.deep_found:
            notes.too_deep(source, line, span, service, key)
    _SEEN.deep = None
    _SEEN.deep_found = []


class UnknownKeys:
    """Keys of OTLP/JSON objects that name no field of their message, and attribute values (OTLP/JSON or
    protobuf) nested past `MAX_VALUE_DEPTH`, found while reading files: both are read as missing. And the
    spans skipped for ids OTLP says are invalid (`skip`): a reader given this skips them rather than refusing
    the file, as `fluo serve` rejects them from a request and keeps the rest.

    The reader ignores them, as OTLP/JSON receivers must (unknown fields are how the
    protocol grows), but in a file a person wrote one is most likely a misspelt field
    (`atributes`) whose data is then silently missing: `warnings` says so, once per file,
    place (the JSON path without its indexes) and key, naming the first such object and
    how many more there are. Looking costs a set comparison per object the reader reads,
    and the scope, events and links it does not read are looked at for their keys only,
    each level of all of a scope's events (links) in one pass (`_unknown_among`); only
    a file that has such a key is walked again to find where.
    """

    def __init__(self) -> None:
        self.found: dict[tuple[str, str, str], list[Any]] = {}
        """(source, path without indexes, key) -> [first place (`source[:line]: path`), message, suggestion, count]."""
        self.deep: dict[tuple[str, bool, str], list[Any]] = {}
        """(source, of a resource, attribute key) -> [first place, count]: values nested too deep (`too_deep`)."""
        self.skipped: dict[str, list[Any]] = {}
        """source -> [first span's `path: what is wrong`, count]: spans skipped for invalid ids (`skip`)."""

    def skip(self, source: str, bad: Sequence[str]) -> None:
        """Note spans of `source` skipped for ids OTLP says are invalid, each as `[line N: ]path: what is wrong`."""
        entry = self.skipped.setdefault(source, [bad[0], 0])
        entry[1] += len(bad)

    def too_deep(self, source: str, line: int | None, span: Span | None, service: str, key: str) -> None:
        """Note an attribute of `span` (None: of the resource of `service`) read as missing for nesting too deep."""
        entry = self.deep.get((source, span is None, key))
        if entry is not None:
            entry[1] += 1
            return
        if span is None:
            place = f"{_where(source, line)}: resource of service {service!r}"
        else:
            place = f"{_where(source, line)}: span {span.span_id.hex()} of trace {span.trace_id.hex()}"
        self.deep[(source, span is None, key)] = [place, 1]

    def walk(self, obj: Any, source: str, line: int | None) -> None:
        """Note the unknown keys of one decoded OTLP/JSON value (a request, or an array of them)."""
        if isinstance(obj, list):
            for i, item in enumerate(obj):
                self._walk(item, trace_pb2.TracesData.DESCRIPTOR, [i], source, line)
        else:
            self._walk(obj, trace_pb2.TracesData.DESCRIPTOR, [], source, line)

    def _walk(self, value: Any, message: Descriptor, path: list[str | int], source: str, line: int | None) -> None:
        """Note the unknown keys in `value` (of `message`, at `path`) in document order, depth first, with a
        stack of its own: no depth the decoder reads is too deep for it."""
        # (value, its message, its path, None) to walk, or (None, message, path, key) to note `key` there
        stack: list[tuple[Any, Descriptor, list[str | int], str | None]] = [(value, message, path, None)]
        while stack:
            value, message, path, unknown = stack.pop()
            if unknown is not None:
                self._note(unknown, message, path, source, line)
            elif isinstance(value, list):
                stack.extend((value[i], message, [*path, i], None) for i in range(len(value) - 1, -1, -1))
            elif isinstance(value, dict):
                fields = _FIELDS[message.full_name]
                todo: list[tuple[Any, Descriptor, list[str | int], str | None]] = []
                for key, item in value.items():
                    if key not in fields:
                        todo.append((None, message, path, key))
                    elif (inner := fields[key]) is not None and inner.full_name in _FIELDS:
                        todo.append((item, inner, [*path, key], None))
                stack.extend(reversed(todo))

    def _note(self, key: str, message: Descriptor, path: list[str | int], source: str, line: int | None) -> None:
        """Note `key`, no field of `message`, in the object at `path`."""
        where = _format_path(path)
        general = _format_path([seg if isinstance(seg, str) else -1 for seg in path]).replace("[-1]", "[]")
        entry = self.found.get((source, general, key))
        if entry is None:
            place = f"{_where(source, line)}: {where}" if where else _where(source, line)
            name = message.full_name.removeprefix(message.file.package + ".")  # `Span.Event`
            self.found[(source, general, key)] = [place, name, _suggest(key, message), 1]
        else:
            entry[3] += 1

    def warnings(self) -> list[str]:
        """One line per file, place and key, in the order found (control characters escaped: `one_line`)."""
        out = []
        for (_, _, key), (place, message, suggestion, count) in self.found.items():
            text = f"{place}: unknown key `{key}` (no field of an OTLP {message}), ignored"
            if suggestion is not None:
                text += f"; did you mean `{suggestion}`?"
            if count > 1:
                text += f" (and in {count - 1:,} more like it)"
            out.append(one_line(text))
        for (_, _, key), (place, count) in self.deep.items():
            text = f"{place}: attribute `{key}` nests lists and maps more than {MAX_VALUE_DEPTH} deep, read as missing"
            if count > 1:
                text += f" (and in {count - 1:,} more like it)"
            out.append(one_line(text))
        for source, (first, count) in self.skipped.items():
            spans = "1 span with an invalid id" if count == 1 else f"{count:,} spans with invalid ids"
            out.append(one_line(f"{source}: skipped {spans} (first: {first}); `fluo serve` rejects such spans too"))
        return out


def _suggest(key: str, message: Descriptor) -> str | None:
    """The field of `message` a key is a typo of, written in the key's own style (proto name or camelCase)."""
    camel = [f.json_name for f in message.fields]
    snake = [f.name for f in message.fields]
    first, then = (snake, camel) if "_" in key else (camel, snake)
    return nearest(key, first) or nearest(key, then)


class _Bad(Exception):
    """An input error deep inside a JSON object; each level adds its path segment."""

    def __init__(self, message: str, key: str | int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str | int] = [] if key is None else [key]

    def at(self, key: str | int) -> _Bad:
        self.path.insert(0, key)
        return self


class _BadId(_Bad):
    """A span's trace, span or parent span id that is no valid OTLP id: the span alone is bad, not the file."""


def _format_path(path: Sequence[str | int]) -> str:
    parts: list[str] = []
    for seg in path:
        if isinstance(seg, int):
            parts.append(f"[{seg}]")
        elif parts:
            parts.append(f".{seg}")
        else:
            parts.append(seg)
    return "".join(parts)


def _where(source: str, line: int | None) -> str:
    return source if line is None else f"{source}:{line}"


def _kind_of_json(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value)[:60]
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(what: str, value: Any) -> _Bad:
    return _Bad(f"expected {what}, got {_kind_of_json(value)}")


def _get(obj: dict[str, Any], camel: str, snake: str) -> tuple[str, Any]:
    """The value under the proto3 JSON name or, failing that, the proto field name."""
    value = obj.get(camel)
    if value is None and snake in obj:
        return snake, obj[snake]
    return camel, value


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _expected("an object", value)
    return value


def _array(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _expected("an array", value)
    return value


def _string(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _expected("a string", value)
    return value


_INT_TEXT = re.compile(r"-?[0-9]+")
_FLOAT_TEXT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_INT64_DIGITS = 20  # digits of the longest 64-bit integer, unsigned or not


def _int_text(text: str) -> int | None:
    """The value of integer `text` (`_INT_TEXT`); None past the digits of a 64-bit integer, leading zeros aside:
    no such integer, and perhaps more digits than Python reads (`sys.get_int_max_str_digits`)."""
    if len(text) <= _INT64_DIGITS:
        return int(text)
    digits = text.lstrip("-").lstrip("0")
    if len(digits) > _INT64_DIGITS:
        return None
    n = int(digits or "0")
    return -n if text.startswith("-") else n


def _integer(value: Any, lo: int, hi: int, what: str) -> int:
    if isinstance(value, bool):
        raise _expected(what, value)
    if isinstance(value, int):
        n = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise _Bad(f"{_show(value)} is not {what}")
        n = int(value)
    elif isinstance(value, str):
        if not _INT_TEXT.fullmatch(value):
            raise _Bad(f"{_show(value)} is not {what}")
        read = _int_text(value)
        if read is None:
            raise _Bad(f"{_show(value)} is out of range for {what}")
        n = read
    else:
        raise _expected(what, value)
    if not lo <= n <= hi:
        raise _Bad(f"{_show(value)} is out of range for {what}")
    return n


def _time(value: Any) -> int:
    if value is None:
        return 0
    return _integer(value, 0, _UINT64_MAX, "an unsigned 64-bit integer (nanoseconds)")


def _double(value: Any) -> float:
    if isinstance(value, bool):
        raise _expected("a number", value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        word = _FLOAT_WORDS.get(value)
        if word is not None:
            return word
        if _FLOAT_TEXT.fullmatch(value):
            return float(value)
        raise _Bad(f"{_show(value)} is not a number")
    raise _expected("a number", value)


def _bytes_b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _expected("a base64 string", value)
    text = value.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad(f"{_show(value)} is not base64") from None


def _json_id(value: Any, size: int, what: str) -> bytes:
    """An id in OTLP/JSON: hex of either case, or base64 of exactly `size` bytes."""
    if isinstance(value, str):
        if len(value) == 2 * size:
            try:
                return bytes.fromhex(value)
            except ValueError:
                pass
        elif len(value) == 4 * ((size + 2) // 3) and value.isascii():
            text = value.replace("-", "+").replace("_", "/")
            try:
                raw = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) == size:
                return raw
        raise _BadId(f"{_show(value)} is not a hex {what} ({2 * size} hex digits)")
    if value is None:
        raise _BadId(f"missing, expected a hex {what} ({2 * size} hex digits)")
    raise _BadId(f"expected a hex {what} ({2 * size} hex digits), got {_kind_of_json(value)}")


def _nonzero(raw: bytes, what: str) -> bytes:
    if not any(raw):
        raise _BadId(f"all zero, which OTLP says is not a valid {what}")
    return raw


def _json_value(value: Any, depth: int = 0) -> Any:
    """The Python value of an AnyValue in OTLP/JSON form (`{}` or null is None), `depth` lists and maps deep
    (raises `_TooDeep` past `MAX_VALUE_DEPTH`, as `_pb_value` does). A member that is null is not set, as
    protobuf's JSON mapping reads null for any field (`{"stringValue": null}` is None, as `{}` is)."""
    if value is None:
        return None
    obj = _object(value)
    if len(obj) == 1:  # one value: found by its key, not by trying each
        [key] = obj
        convert = _VALUE_READERS.get(key)
        if convert is None and key not in _KNOWN_ANY_VALUE:
            _noticed()
    else:
        if not _KNOWN_ANY_VALUE.issuperset(obj):
            _noticed()
        key, convert = next(((k, c) for k, c in _VALUE_KEYS if obj.get(k) is not None), ("", None))
    if convert is None or obj[key] is None:
        return None
    try:
        return _json_read(convert, obj[key], depth)
    except _Bad as e:
        raise e.at(key) from None


def _json_read(convert: Any, value: Any, depth: int) -> Any:
    """`convert(value)`, a list or map one level deeper than `depth`."""
    if convert is _json_array_value or convert is _json_kvlist_value:
        if depth == MAX_VALUE_DEPTH:
            raise _TooDeep
        return convert(value, depth + 1)
    return convert(value)


def _json_int_value(value: Any) -> int:
    return _integer(value, _INT64_MIN, _INT64_MAX, "a 64-bit integer")


def _json_bool_value(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _expected("true or false", value)
    return value


def _json_string_value(value: Any) -> str:
    if not isinstance(value, str):
        raise _expected("a string", value)
    return value


def _json_array_value(value: Any, depth: int) -> list[Any]:
    obj = _object(value)
    if not _KNOWN_VALUES.issuperset(obj):
        _noticed()
    values = obj.get("values")
    try:
        items = _array(values)
    except _Bad as e:
        raise e.at("values") from None
    out: list[Any] = []
    for i, item in enumerate(items):
        try:
            out.append(_json_value(item, depth))
        except _Bad as e:
            raise e.at(i).at("values") from None
    return out


def _json_kvlist_value(value: Any, depth: int) -> dict[str, Any]:
    obj = _object(value)
    if not _KNOWN_VALUES.issuperset(obj):
        _noticed()
    try:
        return _json_attributes(obj.get("values"), depth)
    except _Bad as e:
        raise e.at("values") from None


def _json_bytes_value(value: Any) -> str:
    return HexBytes(_bytes_b64(value).hex())


_VALUE_KEYS: tuple[tuple[str, Any], ...] = (
    ("stringValue", _json_string_value),
    ("string_value", _json_string_value),
    ("intValue", _json_int_value),
    ("int_value", _json_int_value),
    ("boolValue", _json_bool_value),
    ("bool_value", _json_bool_value),
    ("doubleValue", _double),
    ("double_value", _double),
    ("arrayValue", _json_array_value),
    ("array_value", _json_array_value),
    ("kvlistValue", _json_kvlist_value),
    ("kvlist_value", _json_kvlist_value),
    ("bytesValue", _json_bytes_value),
    ("bytes_value", _json_bytes_value),
)
_VALUE_READERS = dict(_VALUE_KEYS)
_KNOWN_ANY_VALUE = _known(AnyValue)


def _json_attributes(value: Any, depth: int = 0) -> dict[str, Any]:
    """A JSON array of KeyValue objects as a dict (a repeated key keeps its last value), `depth` lists and
    maps deep: at the top (0), a value nested too deep is missing (`_note_too_deep`), else it is raised."""
    out: dict[str, Any] = {}
    for i, kv in enumerate(_array(value)):
        try:
            kv = _object(kv)
            key = kv.get("key")
            v = kv.get("value")
            if (key is None or v is None or len(kv) != 2) and not _KNOWN_KEY_VALUE.issuperset(kv):
                _noticed()
            try:
                key = _string(key)
            except _Bad as e:
                raise e.at("key") from None
            try:
                out[key] = _json_value(v, depth)
            except _Bad as e:
                raise e.at("value") from None
            except _TooDeep:
                if depth:
                    raise
                out[key] = None
                _note_too_deep(key)
        except _Bad as e:
            raise e.at(i) from None
    return out


def _enum(value: Any, names: dict[str, int], prefix: str, what: str) -> int:
    if isinstance(value, bool):
        raise _expected(what, value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        key = value.upper()
        if key.startswith(prefix):
            key = key[len(prefix) :]
        number = names.get(key)
        if number is not None:
            return number
        read = _int_text(value) if _INT_TEXT.fullmatch(value) else None
        if read is not None:
            return read
        raise _Bad(f"{_show(value)} is not {what}")
    raise _expected(what, value)


_KIND_NAMES = {v.upper(): i for i, v in enumerate(KIND_VALUES)}
_STATUS_NAMES = {v.upper(): i for i, v in enumerate(STATUS_VALUES)}
_KIND_WHAT = "a span kind (SPAN_KIND_SERVER, 2, ...)"
_STATUS_WHAT = "a status code (STATUS_CODE_ERROR, 2, ...)"


def _json_status(value: Any) -> tuple[str, str]:
    if value is None:
        return "unset", ""
    obj = _object(value)
    if not _KNOWN_STATUS.issuperset(obj):
        _noticed()
    code = obj.get("code")
    try:
        status = (
            "unset"
            if code is None
            else _STATUS_BY_CODE.get(_enum(code, _STATUS_NAMES, "STATUS_CODE_", _STATUS_WHAT), "unset")
        )
    except _Bad as e:
        raise e.at("code") from None
    try:
        message = _string(obj.get("message"))
    except _Bad as e:
        raise e.at("message") from None
    return status, message if status == "error" else ""


def _json_span(obj: dict[str, Any], resource: dict[str, Any], service: str) -> Span:
    if not _KNOWN_SPAN.issuperset(obj):
        _noticed()
    key, value = _get(obj, "traceId", "trace_id")
    try:
        trace_id = _nonzero(_json_id(value, TRACE_ID_BYTES, "trace id"), "trace id")
        key, value = _get(obj, "spanId", "span_id")
        span_id = _nonzero(_json_id(value, SPAN_ID_BYTES, "span id"), "span id")
        key, value = _get(obj, "parentSpanId", "parent_span_id")
        parent_id = _json_id(value, SPAN_ID_BYTES, "span id") if value else b""
        if parent_id == _ZERO_SPAN_ID:
            parent_id = b""
        key = "name"
        name = sys.intern(_string(obj.get("name")))  # one string per name, as protobuf names are (`_name`)
        key, value = _get(obj, "kind", "kind")
        kind = (
            "unspecified"
            if value is None
            else _KIND_BY_NUMBER.get(_enum(value, _KIND_NAMES, "SPAN_KIND_", _KIND_WHAT), "unspecified")
        )
        key, value = _get(obj, "startTimeUnixNano", "start_time_unix_nano")
        start = _time(value)
        key, value = _get(obj, "endTimeUnixNano", "end_time_unix_nano")
        end = _time(value)
        key = "status"
        status, status_message = _json_status(obj.get("status"))
        key = "attributes"
        attributes = _json_attributes(obj.get("attributes"))
    except _Bad as e:
        raise e.at(key) from None
    span = Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        name=name,
        service=service,
        start=start,
        end=end,
        status=status,
        status_message=status_message,
        kind=kind,
        attributes=attributes,
        resource=resource,
    )
    _claim_too_deep(span, service)
    return span


_OTHER_SIGNALS = ("resourceLogs", "resourceMetrics", "resourceProfiles")

CONSOLE_FORMAT = (
    "this is the OpenTelemetry SDK's console format (ConsoleSpanExporter, one span per object), not OTLP JSON; "
    'write OTLP instead: docs/testing.md, "Fixtures from your own traffic"'
)
"""What a span as the SDK's `ConsoleSpanExporter` prints it is told: its `context` object holds the `trace_id`."""


def _console_span(obj: dict[str, Any]) -> bool:
    context = obj.get("context")
    return isinstance(context, dict) and "trace_id" in context


def _json_request(
    obj: Any, out: list[Span], clamped: list[Span] | None, skipped: list[str] | None, at: tuple[int, ...] = ()
) -> None:
    """The spans of one OTLP/JSON request (at index `at` of an array) into `out`; a span whose ids are not
    valid OTLP ids is skipped and noted in `skipped` as `path: what is wrong`, or with None refuses the file."""
    obj = _object(obj)
    if not _KNOWN_REQUEST.issuperset(obj):
        _noticed()
    key, blocks = _get(obj, "resourceSpans", "resource_spans")
    if blocks is None and key not in obj:
        if _console_span(obj):
            raise _Bad(CONSOLE_FORMAT)
        if obj and not any(k in obj for k in _OTHER_SIGNALS):
            raise _Bad("expected an OTLP trace object with a resourceSpans array")
        return
    try:
        blocks = _array(blocks)
    except _Bad as e:
        raise e.at(key) from None
    for i, block in enumerate(blocks):
        try:
            _json_resource_spans(block, out, clamped, skipped, (*at, key, i))
        except _Bad as e:
            raise e.at(i).at(key) from None


_SCOPE_KEYS = ("scope", "instrumentationLibrary", "instrumentation_library")


def _json_resource_spans(
    block: Any, out: list[Span], clamped: list[Span] | None, skipped: list[str] | None, at: tuple[str | int, ...]
) -> None:
    block = _object(block)
    if not _KNOWN_RESOURCE_SPANS.issuperset(block):
        _noticed()
    res = block.get("resource")
    resource: dict[str, Any] = {}
    if res is not None:
        try:
            res = _object(res)
            if not _KNOWN_RESOURCE.issuperset(res):
                _noticed()
            try:
                resource = _json_attributes(res.get("attributes"))
            except _Bad as e:
                raise e.at("attributes") from None
        except _Bad as e:
            raise e.at("resource") from None
    service = _service_of(resource)
    _claim_too_deep(None, service)
    for scope_key in (
        "scopeSpans",
        "scope_spans",
        "instrumentationLibrarySpans",
        "instrumentation_library_spans",
    ):
        if scope_key not in block:
            continue
        try:
            scopes = _array(block[scope_key])
        except _Bad as e:
            raise e.at(scope_key) from None
        for j, scope in enumerate(scopes):
            try:
                scope = _object(scope)
                if not _KNOWN_SCOPE_SPANS.issuperset(scope):
                    _noticed()
                if not _SEEN.unknown and any(_unknown_among([[scope[k]]], _SCOPE) for k in _SCOPE_KEYS if k in scope):
                    _noticed()
                try:
                    spans = _array(scope.get("spans"))
                except _Bad as e:
                    raise e.at("spans") from None
                for k, span in enumerate(spans):
                    try:
                        sp = _json_span(_object(span), resource, service)
                        if sp.end < sp.start:
                            clamp_end(sp, clamped)
                        out.append(sp)
                    except _BadId as e:
                        if skipped is None:
                            raise e.at(k).at("spans") from None
                        skipped.append(f"{_format_path([*at, scope_key, j, 'spans', k, *e.path])}: {e.message}")
                    except _Bad as e:
                        raise e.at(k).at("spans") from None
                if not _SEEN.unknown and _unknown_in_skipped(spans):
                    _noticed()
            except _Bad as e:
                raise e.at(j).at(scope_key) from None


def spans_from_json(
    obj: Any,
    *,
    source: str,
    line: int | None = None,
    clamped: list[Span] | None = None,
    unknown: UnknownKeys | None = None,
) -> list[Span]:
    """The spans of one decoded OTLP/JSON object (or a JSON array of such objects).

    `source` and `line` only label error messages. Ids are hex (base64 of the
    exact byte length is tolerated), 64-bit integers are strings or numbers,
    enums numbers or names; unknown keys are ignored, and noted in `unknown` if given
    (see `UnknownKeys`). Values are read as
    `spans_from_request` reads them (all-zero parent id, status message). Bad input raises
    `TraceInputError` naming source, line and the JSON path; with `unknown`, a span whose ids are not
    valid OTLP ids is skipped instead and noted there (`UnknownKeys.skip`), as `fluo serve` rejects it.
    A span that ends before it starts ends when it starts (see `clamp_end`).
    """
    out: list[Span] = []
    skipped: list[str] | None = None if unknown is None else []
    # with nobody to tell, as if one were found already: what is read only to find them is then not read
    _SEEN.unknown = unknown is None
    _telling_too_deep(unknown is not None)
    try:
        if isinstance(obj, list):
            for i, item in enumerate(obj):
                try:
                    _json_request(item, out, clamped, skipped, (i,))
                except _Bad as e:
                    raise e.at(i) from None
        else:
            _json_request(obj, out, clamped, skipped)
        if unknown is not None and _SEEN.unknown:
            unknown.walk(obj, source, line)
        _told_too_deep(unknown, source, line)
        if unknown is not None and skipped:
            unknown.skip(source, [f"line {line}: {bad}" for bad in skipped] if line is not None else skipped)
    except _Bad as e:
        path = _format_path(e.path)
        where = _where(source, line)
        raise TraceInputError(f"{where}: {path}: {e.message}" if path else f"{where}: {e.message}") from None
    except RecursionError:
        raise TraceInputError(f"{_where(source, line)}: values nested too deeply") from None
    return out


_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _skip_space(text: str, pos: int) -> int:
    m = _JSON_SPACE.match(text, pos)
    return m.end() if m else pos


_JSON_PROBLEMS = {
    "Expecting value": "expected a value",
    "Expecting property name enclosed in double quotes": "expected a key in double quotes",
    "Expecting ',' delimiter": "expected `,` or the end of the list or object",
    "Expecting ':' delimiter": "expected `:` after the key",
    "Invalid control character at": "a control character inside a string (JSON writes it as a \\u escape)",
    "Invalid \\escape": "an invalid backslash escape in a string",
    "Invalid \\uXXXX escape": "an invalid \\uXXXX escape in a string",
}


_CUT_STRING = "Unterminated string starting at"
_CUT_STRING_LINE = "Line ends inside the string starting at"
_CUT_LINE = "Line ends inside an open object or list at"


def _whole_line_next(doc: str, pos: int, blank: bool = True) -> int | None:
    """Where the JSON value ends that is the next non-blank line from `pos` on and nothing else (if `blank`
    and there is no such line: the end of `doc`); None if that line is something else."""
    pos = _skip_space(doc, pos)
    if pos >= len(doc):
        return len(doc) if blank else None
    try:
        _, after = _DECODER.raw_decode(doc, pos)
    except (ValueError, RecursionError):  # ValueError: JSONDecodeError, or a number too long for Python
        return None
    end = doc.find("\n", after)
    return None if doc[after : len(doc) if end < 0 else end].strip() else after


def _cut_short(e: json.JSONDecodeError, start: int) -> json.JSONDecodeError:
    """An error that a line cut short explains, said at that line: a JSON-lines writer that died mid-line,
    `head -n` of a pretty file. `start`: where the object being read starts.

    Python reads on past the cut. Cut inside a string, it stops at the line break (a
    control character): the error is the string's, when only space or whole JSON
    lines follow. Cut elsewhere, it reads the next lines' objects into the cut one and
    fails somewhere after: when the object's first line opens an object, the next
    line is a whole JSON value (never so in a pretty-printed object, whose second line
    is a key) and the error is no further on than what follows that value, the error is
    the end of that first line.
    """
    doc = e.doc
    first_end = doc.find("\n", start)
    if 0 <= first_end < e.pos and doc.startswith("{", start) and e.msg != _CUT_STRING:
        value_end = _whole_line_next(doc, first_end, blank=False)
        if value_end is not None and e.pos <= _skip_space(doc, value_end):
            return json.JSONDecodeError(_CUT_LINE, doc, start + len(doc[start:first_end].rstrip()))
    if e.msg != "Invalid control character at" or doc[e.pos] not in "\r\n" or _whole_line_next(doc, e.pos) is None:
        return e
    msg = _CUT_STRING if _skip_space(doc, e.pos) >= len(doc) else _CUT_STRING_LINE
    start = e.pos
    while True:  # back to the opening quote: the string holds no `"` but escaped ones
        start = e.doc.rindex('"', 0, start)
        before = start
        while before and e.doc[before - 1] == "\\":
            before -= 1
        if (start - before) % 2 == 0:
            return json.JSONDecodeError(msg, e.doc, start)


_LONG_NUMBER = re.compile(rf"-?[0-9]{{{_INT64_DIGITS + 1},}}")


def _long_number(text: str, pos: int, source: str, line: int, e: ValueError) -> str:
    """The error for the JSON value at `text[pos]` that Python's decoder refused (`e`) for an integer of more digits
    than it reads, at the first such number from `pos` on."""
    limit = sys.get_int_max_str_digits()
    for found in _LONG_NUMBER.finditer(text, pos):
        digits = len(found[0].lstrip("-"))
        if digits > limit:
            at = found.start()
            row, column = 1 + text.count("\n", 0, at), at - text.rfind("\n", 0, at)
            return (
                f"{source}:{row}:{column}: invalid JSON: a number of {digits:,} digits, more than the {limit:,} "
                "Python reads"
            )
    return f"{source}:{line}: invalid JSON: {e}"


def _json_problem(e: json.JSONDecodeError) -> str:
    """Python's message for a JSON syntax error as a whole sentence about the position it names.

    Its own text is written to be followed by the position (`Unterminated string
    starting at`); a file cut short is said as such.
    """
    if e.msg == _CUT_STRING:  # no closing quote before the end of the text
        return "the text ends inside the string that starts here; is the file cut short?"
    if e.msg == _CUT_STRING_LINE:  # no closing quote before the line break, and whole lines after
        return "the line ends inside the string that starts here; is the line cut short?"
    if e.msg == _CUT_LINE:  # the next line starts a whole value where this line's object goes on
        return "the line ends here with an object or list still open; is the line cut short?"
    what = _JSON_PROBLEMS.get(e.msg) or e.msg.removesuffix(" at").removesuffix(" starting").lower()
    if e.msg.startswith("Expecting") and _skip_space(e.doc, e.pos) >= len(e.doc):
        return f"the text ends here, where it {what.replace('expected', 'expects', 1)}; is the file cut short?"
    if e.msg.startswith("Expecting"):
        found = e.doc[e.pos]
        return f"{what}, found `{found}`" if found.isprintable() else f"{what}, found {found!a}"
    return what


_MAYBE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_ESCAPE = re.compile(
    r"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a whole pair
    r"|u[dD][89a-fA-F][0-9a-fA-F]{2}"  # half of one: the only match 6 characters long that starts `\u`
    r"|.)",  # any other escape, read past so that its backslash starts nothing
    re.S,
)


def _escape_kept(m: re.Match[str]) -> str:
    escape = m[0]
    return "\\ufffd" if len(escape) == 6 and escape[1] == "u" else escape


def replace_lone_surrogates(text: str) -> str:
    """JSON text with each `\\uXXXX` escape of half a surrogate pair written `\\ufffd` (U+FFFD), the same length.

    JSON syntax allows such an escape, but it is no character: OTLP strings are
    protobuf strings, which must be valid UTF-8, so half a pair is read as the
    replacement character, as Go's `encoding/json` (the Collector's) reads it. A
    pair (`\\uD83D\\uDE00`) stays. Only text holding such an escape is rewritten;
    other text is returned as is after one search. Escapes are read left to right,
    so `\\\\ud83d` (an escaped backslash, then letters) is left alone.
    """
    if _MAYBE_SURROGATE.search(text) is None:
        return text
    return _ESCAPE.sub(_escape_kept, text)


def parse_json(
    data: bytes | str,
    *,
    source: str,
    clamped: list[Span] | None = None,
    unknown: UnknownKeys | None = None,
    one: bool = False,
) -> list[Span]:
    """Spans from OTLP/JSON text: one object, or several (one per line, as JSON lines), or arrays of them.

    With `one`, the text must be a single object, as an OTLP/HTTP request body is: an array, or more
    after the object, is refused (the forms of a trace file are not requests).
    Blank lines are skipped and an empty text has no spans. Errors name the file, and the line (and column for
    syntax errors) where the offending object starts. Unknown keys are noted in `unknown` (see `UnknownKeys`).
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            lone_crs = data.count(b"\r", 0, e.start) - data.count(b"\r\n", 0, e.start)
            line = data.count(b"\n", 0, e.start) + lone_crs + 1
            raise TraceInputError(f"{source}:{line}: not UTF-8 text") from None
    else:
        text = data
    if text.startswith("\ufeff"):
        text = text[1:]
    text = lone_crs_as_lf(text)  # a lone CR ends a line too; as LF it means the same to JSON
    text = replace_lone_surrogates(text)
    out: list[Span] = []
    pos = _skip_space(text, 0)
    line = 1 + text.count("\n", 0, pos)
    end = len(text)
    first = True
    while pos < end:
        try:
            obj, after = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            e = _cut_short(e, pos)
            raise TraceInputError(f"{source}:{e.lineno}:{e.colno}: invalid JSON: {_json_problem(e)}") from None
        except RecursionError:
            raise TraceInputError(f"{source}:{line}: invalid JSON: nested too deeply") from None
        except ValueError as e:  # an integer of more digits than Python reads (`sys.get_int_max_str_digits`)
            raise TraceInputError(_long_number(text, pos, source, line, e)) from None
        nxt = _skip_space(text, after)
        if one and isinstance(obj, list):
            raise TraceInputError(f"{source}: expected an object, got an array")
        if one and nxt < end:
            row, column = 1 + text.count("\n", 0, nxt), nxt - text.rfind("\n", 0, nxt)
            raise TraceInputError(f"{source}:{row}:{column}: expected one object, got more after it")
        single = first and nxt >= end  # one object: its errors name no line
        # Each object becomes spans before the next is read: a JSON lines file is never held whole as dicts.
        out.extend(spans_from_json(obj, source=source, line=None if single else line, clamped=clamped, unknown=unknown))
        del obj
        first = False
        line += text.count("\n", pos, nxt)
        pos = nxt
    return out


# ---------------------------------------------------------------------------
# counting before parsing: what a file or request would cost, without building it

MIN_SPAN_WIRE_BYTES = 2
"""The fewest bytes a span takes in protobuf (an empty one): a body under the cap times this needs no count."""
MAX_FIELDS_BESIDE_SPANS = 100_000
"""Protobuf fields an OTLP trace body may hold besides its spans, plus `FIELDS_BESIDE_SPAN` per span, where
`count_spans` walks (the request, its `resource_spans`, their `scope_spans`, and inside each `resource` and
`scope`: their fields, an attribute with a scalar value as one, one holding a list or map with every field of
it): past that it is refused before decoding, as no export. An exporter sends some three per resource or scope
group (the group, its `resource` or `scope`, its `schema_url`), at worst a group of each per span: 6 per span,
and the attributes of each resource, some tens. Unbounded, the walk cost 10 s of pure Python on 64 MiB of one
2-byte unknown field repeated, 32 million empty `resource_spans` took upb 2.2 GB to decode, and a resource of
30 million empty attributes 60 s and 1.7 GB to read."""
FIELDS_BESIDE_SPAN = 8
"""Protobuf fields an OTLP trace body may hold per span besides `MAX_FIELDS_BESIDE_SPANS` (see there)."""


class NotAnExport(Exception):
    """Protobuf bytes holding more fields besides their spans than an OTLP export does (`count_spans`)."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """The protobuf varint at `data[pos]`, and the position after it (IndexError past the end)."""
    value = 0
    shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(key, start, end) of each field of the protobuf message in `data[start:end]`: its key (field number << 3
    | wire type) and where the bytes of a length-delimited one are (for others, an empty range after the field).

    Bytes that are not protobuf raise IndexError or ValueError, field number 0 at once. This walks
    the wire format by hand, which FLUO otherwise leaves to the protobuf library, for one reason:
    counting spans before decoding (`count_spans`) must cost nothing per span, and the library
    cannot count without building every element (upb: +234 MiB to count the 8M empty spans of a
    15 MiB body, the very attack the count is there to stop). Decoding itself stays the library's.
    One-byte keys and lengths, nearly all of them, are read without a call.
    """
    pos = start
    while pos < end:
        key = data[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(data, pos)
        if key < 8:
            raise ValueError("field number 0")
        wire = key & 7
        if wire == 2:
            n = data[pos]
            if n < 0x80:
                pos += 1
            else:
                n, pos = _varint(data, pos)
            if pos + n > end:
                raise ValueError("field runs past its message")
            yield key, pos, pos + n
            pos += n
            continue
        if wire == 0:
            if data[pos] < 0x80:
                pos += 1
            else:
                _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire}")
        yield key, pos, pos


_RESOURCE_SPANS_KEY = 1 << 3 | 2  # field 1, length-delimited, of ExportTraceServiceRequest
_SCOPE_SPANS_KEY = 2 << 3 | 2  # field 2 of ResourceSpans
_SPANS_KEY = 2 << 3 | 2  # field 2 of ScopeSpans


_RESOURCE_KEY = 1 << 3 | 2  # field 1 of ResourceSpans: its Resource
_SCOPE_KEY = 1 << 3 | 2  # field 1 of ScopeSpans: its InstrumentationScope
_KEY_VALUE = 2 << 3 | 2  # field 2 of KeyValue: its AnyValue
_NESTED: dict[str, dict[int, str]] = {
    "Resource": {1 << 3 | 2: "KeyValue"},  # attributes
    "InstrumentationScope": {3 << 3 | 2: "KeyValue"},  # attributes
    "KeyValue": {_KEY_VALUE: "AnyValue"},
    "AnyValue": {5 << 3 | 2: "ArrayValue", 6 << 3 | 2: "KeyValueList"},
    "ArrayValue": {1 << 3 | 2: "AnyValue"},
    "KeyValueList": {1 << 3 | 2: "KeyValue"},
}
"""The messages inside a resource or scope that hold attributes, by the keys of their fields that nest them."""


def _plain_attribute(data: bytes, start: int, end: int) -> bool:
    """Whether the `KeyValue` in `data[start:end]` is a key and one scalar value, each shorter than 128 bytes:
    what nearly every resource attribute is, read without a walk."""
    if end - start < 4 or data[start] != 0x0A or data[start + 1] >= 0x80:
        return False
    p = start + 2 + data[start + 1]
    if p + 2 > end or data[p] != _KEY_VALUE or p + 2 + data[p + 1] != end:
        return False
    v = p + 2
    if v == end:
        return True
    kind = data[v]
    if kind == 0x0A or kind == 0x3A:  # string_value, bytes_value
        return v + 1 < end and v + 2 + data[v + 1] == end
    if kind == 0x21:  # double_value
        return end - v == 9
    if kind == 0x10 or kind == 0x18:  # bool_value, int_value: one varint
        return end - v <= 11 and data[end - 1] < 0x80 and all(b >= 0x80 for b in data[v + 1 : end - 1])
    return False


def _fields_inside(data: bytes, start: int, end: int, message: str, budget: int) -> int:
    """Fields of the `Resource` or `InstrumentationScope` in `data[start:end]` as `count_spans` counts them (see
    `MAX_FIELDS_BESIDE_SPANS`), counted up to one past `budget`. Bytes that are not protobuf raise as `_fields` does."""
    n = 0
    todo = [(start, end, message)]
    while todo:
        start, end, message = todo.pop()
        nested = _NESTED[message]
        for key, inner_start, inner_end in _fields(data, start, end):
            n += 1
            if n > budget:
                return n
            inner = nested.get(key)
            if inner is not None and not (inner == "KeyValue" and _plain_attribute(data, inner_start, inner_end)):
                todo.append((inner_start, inner_end, inner))
    return n


def count_spans(data: bytes, stop_after: int) -> int:
    """Spans in OTLP protobuf bytes (`ExportTraceServiceRequest`), counted on the wire without decoding them.

    Stops counting past `stop_after`. Bytes that are not protobuf count what came before
    (decoding them then says what is wrong). More fields besides the spans than an export has
    (`MAX_FIELDS_BESIDE_SPANS`) raise `NotAnExport`.
    """
    n = 0
    beside = 0
    limit = MAX_FIELDS_BESIDE_SPANS
    try:
        for key, start, end in _fields(data, 0, len(data)):
            beside += 1
            if beside > limit:
                raise _not_an_export(limit, n)
            if key != _RESOURCE_SPANS_KEY:
                continue
            for key2, start2, end2 in _fields(data, start, end):
                beside += 1
                if beside > limit:
                    raise _not_an_export(limit, n)
                if key2 != _SCOPE_SPANS_KEY:
                    if key2 == _RESOURCE_KEY:
                        beside += _fields_inside(data, start2, end2, "Resource", limit - beside)
                        if beside > limit:
                            raise _not_an_export(limit, n)
                    continue
                for key3, start3, end3 in _fields(data, start2, end2):
                    if key3 == _SPANS_KEY:
                        n += 1
                        if n > stop_after:
                            return n
                        limit += FIELDS_BESIDE_SPAN
                        continue
                    beside += 1
                    if key3 == _SCOPE_KEY:
                        beside += _fields_inside(data, start3, end3, "InstrumentationScope", limit - beside)
                    if beside > limit:
                        raise _not_an_export(limit, n)
    except (IndexError, ValueError):
        pass
    return n


def _not_an_export(limit: int, spans: int) -> NotAnExport:
    """The refusal once more than `limit` fields were counted beside the first `spans` spans: the count stops
    there, so whether spans come after is not known."""
    where = f"beside its first {plural(spans, 'span')}" if spans else "before any span"
    return NotAnExport(
        f"more than {limit:,} protobuf fields {where} (resource and scope attributes count), over the limit of "
        f"{MAX_FIELDS_BESIDE_SPANS:,} plus {FIELDS_BESIDE_SPAN} per span: more than an OTLP exporter sends"
    )


def count_json_containers(data: bytes) -> int:
    """JSON objects and arrays in `data` at most: its `{` and `[` bytes (those inside strings too), what `json.loads`
    would build, counted at memory speed (50 ms for 44 MB) before it runs."""
    return data.count(b"{") + data.count(b"[")


# ---------------------------------------------------------------------------
# files


def _read(path: str | Path) -> tuple[bytes, str]:
    if str(path) == STDIN_PATH:
        try:
            return standard_input().read(), STDIN_SOURCE
        except StdinClosed as e:
            raise TraceInputError(str(e)) from None
        except OSError as e:
            raise TraceInputError(f"cannot read {STDIN_SOURCE}: {e.strerror or e}") from None
    source = str(path)
    try:
        return Path(path).read_bytes(), source
    except OSError as e:
        raise TraceInputError(f"cannot read {source}: {e.strerror or e}") from None


MAX_DECOMPRESSED_BYTES = 256 << 20
"""The most bytes a gzipped trace file may inflate to, unless the caller says otherwise (`max_bytes`).

Gzip inflates up to ~1000 times (1 MiB of zeros is 1 GiB), so without a limit a small file could
take all the memory; 256 MiB of OTLP/JSON is some 300,000 spans, more than a trace file holds.
"""
MAX_SPANS_PER_FILE = 1_000_000
"""The most spans a trace file may hold: more is refused whole, counted before protobuf is decoded. A million
minimal spans take some 0.8 GB once read; real ones come to the byte limit well before that."""
JSON_CONTAINERS_PER_SPAN = 16
"""JSON objects and arrays (`{` and `[` bytes) an OTLP/JSON trace file may hold per span of `MAX_SPANS_PER_FILE`,
on average: past it the file is refused before it is parsed. A span with a dozen attributes has about 30, but
256 MiB of them is 250,000 spans; 16 million empty objects `{}` (48 MB) take 1.2 GB to parse, 70 million 5.4 GB."""
_GUNZIP_CHUNK = 1 << 20


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
"""How a zstd frame starts: the OpenTelemetry Collector's file exporter compresses with zstd only."""


def _gunzip(data: bytes, source: str, limit: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """`data` gunzipped (every member, as `gzip.decompress`), a chunk at a time, stopping past `limit` bytes."""
    out: list[bytes] = []
    size = 0
    rest = data
    if data and data[:2] != b"\x1f\x8b":  # named .gz, but no gzip at all: not "data after the end" of none
        raise TraceInputError(f"{source}: not gzip data: it does not start with gzip's magic bytes (1f 8b)")
    try:
        while rest:
            if rest[:2] != b"\x1f\x8b":
                raise TraceInputError(f"{source}: not a valid gzip file: data after the end of the compressed data")
            d = zlib.decompressobj(wbits=31)
            tail = rest
            while not d.eof:
                chunk = d.decompress(tail, _GUNZIP_CHUNK)
                tail = d.unconsumed_tail
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise TraceInputError(
                            f"{source}: more than {limit:,} bytes once gunzipped, the limit for a trace file"
                        )
                    out.append(chunk)
                elif not tail:
                    raise TraceInputError(f"{source}: not a valid gzip file: cut short")
            rest = d.unused_data
    except zlib.error as e:
        raise TraceInputError(f"{source}: not a valid gzip file: {e}") from None
    return b"".join(out)


_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def _wide_text(data: bytes) -> str | None:
    """The encoding of text in UTF-16 or UTF-32 (by its byte order mark, or JSON's first `{`/`[` beside a NUL:
    `UTF-16LE`, `UTF-16BE`), which is neither UTF-8 JSON nor an OTLP protobuf message (whose first byte is a
    field's key, 0x0a); else None."""
    for bom, name in _WIDE_BOMS:
        if data.startswith(bom):
            return name
    lead = len(data) - len(data.lstrip(b" \t\r\n\x00"))
    if data[lead : lead + 1] in (b"{", b"["):  # an ASCII character: its NULs after it (LE) or before it (BE)
        if lead % 4 == 0 and data[lead + 1 : lead + 4] == b"\x00\x00\x00":
            return "UTF-32LE"
        if lead % 4 == 3 and data[lead - 3 : lead] == b"\x00\x00\x00":
            return "UTF-32BE"
        if lead % 2 == 0 and data[lead + 1 : lead + 2] == b"\x00":
            return "UTF-16LE"
        if lead % 2 == 1 and data[lead - 1 : lead] == b"\x00":
            return "UTF-16BE"
    return None


def _looks_like_json(data: bytes) -> bool:
    """Text starting with `{` or `[`, or blank text (a blank line on standard input reads as a blank `.json` file
    does: no spans, not corrupt protobuf)."""
    stripped = data.lstrip(b" \t\r\n")
    if stripped.startswith(b"\xef\xbb\xbf"):
        stripped = stripped[3:].lstrip(b" \t\r\n")
    return stripped[:1] in (b"{", b"[", b"")


def parse_trace_bytes(
    data: bytes,
    *,
    source: str,
    name: str | None = None,
    prefetch: Iterable[str] = (),
    clamped: list[Span] | None = None,
    max_bytes: int = MAX_DECOMPRESSED_BYTES,
    unknown: UnknownKeys | None = None,
) -> list[Span]:
    """Spans from file contents, the format chosen by `name`'s extension or by sniffing.

    `.gz` is decompressed first and the inner extension decides; gzip data is also
    recognised by its magic bytes. Unknown extensions are sniffed: text starting
    with `{` or `[`, or blank, is JSON, anything else protobuf. `prefetch`: attribute keys that
    protobuf spans convert while decoding (JSON spans convert all of theirs anyway).
    `clamped` gets the spans that ended before they started (see `clamp_end`). Gzipped
    data inflating past `max_bytes` is a `TraceInputError` naming `source` and the limit.
    `unknown` gets the unknown keys of OTLP/JSON objects (see `UnknownKeys`). zstd data, whatever its name,
    is a `TraceInputError` saying how to decompress it: fluo does not read zstd.
    """
    if data[:4] == ZSTD_MAGIC:
        raise TraceInputError(
            f"{source}: zstd-compressed (it starts with zstd's magic bytes 28 b5 2f fd), which fluo does not read: "
            "decompress it first (`zstd -d FILE`), or have it written uncompressed or gzipped"
        )
    suffixes = [s.lower() for s in Path(name if name is not None else source).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        data = _gunzip(data, source, max_bytes)
        suffixes.pop()
    elif data[:2] == b"\x1f\x8b":
        data = _gunzip(data, source, max_bytes)
    suffix = suffixes[-1] if suffixes else ""
    if suffix not in PROTOBUF_SUFFIXES and (wide := _wide_text(data)) is not None:
        shell = ", as Windows PowerShell's `>` writes it" if wide in ("UTF-16", "UTF-16LE") else ""
        raise TraceInputError(
            f"{source}: {wide} text{shell}; fluo reads OTLP/JSON as UTF-8: convert it first "
            f"(`iconv -f {wide} -t UTF-8 FILE`, or PowerShell's `Out-File -Encoding utf8`)"
        )
    if suffix not in PROTOBUF_SUFFIXES and (suffix in JSON_SUFFIXES or _looks_like_json(data)):
        _refuse_many_containers(data, source)
        spans = parse_json(data, source=source, clamped=clamped, unknown=unknown)
        if len(spans) > MAX_SPANS_PER_FILE:
            raise _too_many_spans(source, len(spans))
        return spans
    if len(data) > MAX_SPANS_PER_FILE * MIN_SPAN_WIRE_BYTES:
        try:
            n = count_spans(data, MAX_SPANS_PER_FILE)
        except NotAnExport as e:  # well-formed or not, the body is over a limit: said as such, as serve says it
            raise TraceInputError(f"{source}: {e}") from None
        if n > MAX_SPANS_PER_FILE:
            raise _too_many_spans(source, n, at_least=True)
    return parse_protobuf(data, source=source, prefetch=prefetch, clamped=clamped, unknown=unknown)


def _too_many_spans(source: str, n: int, at_least: bool = False) -> TraceInputError:
    more = " or more" if at_least else ""
    return TraceInputError(
        f"{source}: {n:,} spans{more}, over the limit of {MAX_SPANS_PER_FILE:,} spans per trace file; "
        "split it into smaller files"
    )


def _refuse_many_containers(data: bytes, source: str) -> None:
    """Refuse OTLP/JSON holding more objects and arrays than `MAX_SPANS_PER_FILE` spans may, before parsing it."""
    limit = MAX_SPANS_PER_FILE * JSON_CONTAINERS_PER_SPAN
    if len(data) <= limit:
        return
    n = count_json_containers(data)
    if n > limit:
        raise TraceInputError(
            f"{source}: {n:,} JSON objects and arrays, over the limit of {limit:,} per trace file "
            f"({JSON_CONTAINERS_PER_SPAN} per span of the {MAX_SPANS_PER_FILE:,} spans a file may hold); "
            "split it into smaller files"
        )


def load_trace_file(
    path: str | Path,
    prefetch: Iterable[str] = (),
    clamped: dict[str, list[Span]] | None = None,
    max_bytes: int = MAX_DECOMPRESSED_BYTES,
    unknown: UnknownKeys | None = None,
    sources: dict[str, int] | None = None,
) -> list[Span]:
    """Spans from one trace file (`-` is standard input), OTLP/JSON or protobuf, maybe gzipped
    (to at most `max_bytes` once gunzipped); `unknown` gets the unknown keys of OTLP/JSON objects, `clamped`
    under the file's name its spans read as ending when they start (`clamp_end`), once however often it is read,
    and `sources` under its name how many spans it gave (`read_warnings` names files from it).

    A file the memory cannot hold (or one that never ends, `/dev/zero`) is a `TraceInputError` naming it."""
    source = STDIN_SOURCE if str(path) == STDIN_PATH else str(path)
    try:
        data, source = _read(path)
        name = "" if source == STDIN_SOURCE else source
        found: list[Span] = []
        spans = parse_trace_bytes(
            data, source=source, name=name, prefetch=prefetch, clamped=found, max_bytes=max_bytes, unknown=unknown
        )
        if clamped is not None and found:
            clamped[source] = found
        if sources is not None:
            sources[source] = len(spans)
        return spans
    except MemoryError:
        raise TraceInputError(f"{source}: out of memory reading it: too large for the memory fluo may use") from None


TRACE_FILE_NAMES = "*.json, *.jsonl, *.ndjson, *.pb, *.binpb, *.protobuf, each maybe .gz"
"""The names of trace files, as `is_trace_file_name` takes them, for messages."""


def is_trace_file_name(name: str) -> bool:
    """Whether a file of this name is an OTLP trace file by its suffix (`.gz` included), as folders are searched;
    in any case (`TRACE.JSON`), as `parse_trace_bytes` reads the suffix."""
    suffixes = [s.lower() for s in Path(name).suffixes]
    if suffixes[-1:] == [".gz"]:
        suffixes.pop()
    return bool(suffixes) and suffixes[-1] in PROTOBUF_SUFFIXES | JSON_SUFFIXES


def trace_files_in(folder: Path) -> list[Path]:
    """OTLP files below a folder (by suffix, `.gz` included), in path order; hidden files and folders
    (macOS `._x.json`, a `.old/` copy) and `node_modules` are passed over, as for rule and test files
    (`folders.walk`). A folder below that cannot be read is a TraceInputError naming it, and so is a trace
    file's name that is a link to a file not named as one (a token file): what the folder holds may come from
    a change under review, and errors quote data."""
    try:
        found = [p for p in walk(folder, is_trace_file_name) if p.is_file()]
    except OSError as exc:
        raise TraceInputError(f"cannot read {exc.filename or folder}: {exc.strerror or exc}") from exc
    for p in found:
        if p.is_symlink() and not is_trace_file_name(p.resolve().name):
            raise TraceInputError(f"{p} is a link to a file not named as a trace file ({TRACE_FILE_NAMES})")
    return found


def load_trace_files(
    paths: Iterable[str | Path],
    prefetch: Iterable[str] = (),
    clamped: dict[str, list[Span]] | None = None,
    unknown: UnknownKeys | None = None,
    sources: dict[str, int] | None = None,
) -> list[Span]:
    """The spans of every file in order (folders searched for OTLP files); group them with `trace.assemble`.

    `prefetch`: attribute keys the rules will read (`Program.prefetch`), converted
    while protobuf files are decoded (see `spans_from_request`). `unknown` gets the
    unknown keys of OTLP/JSON objects (see `UnknownKeys`), `sources` each file's name and how many spans it gave.

    A file named twice (`a.json a.json`, a folder and a file in it, a link to it) is read once: its spans again
    would only be dropped as copies, and counted twice in what reading them changed (`read_warnings`).
    """
    prefetch = tuple(prefetch)
    out: list[Span] = []
    read: set[tuple[int, int]] = set()
    for path in paths:
        if str(path) != STDIN_PATH and os.path.isdir(path):  # a path that cannot be looked up: reading it says why
            files: list[str | Path] = list(trace_files_in(Path(path)))
            if not files:
                raise TraceInputError(f"{path}: no trace files (*.json, *.jsonl, *.pb, ...) in this folder")
        else:
            files = [path]
        for f in files:
            if _first_reading(f, read):
                out.extend(load_trace_file(f, prefetch, clamped, unknown=unknown, sources=sources))
    return out


def _first_reading(path: str | Path, read: set[tuple[int, int]]) -> bool:
    """Whether the file `path` names is not among those `read` (by device and inode), noting it there."""
    if str(path) == STDIN_PATH:
        return True
    try:
        file = identity(Path(path))
    except OSError:
        return True  # not there or not readable: reading it says why
    if file in read:
        return False
    read.add(file)
    return True


# ---------------------------------------------------------------------------
# spans -> OTLP


def _effective_resource(span: Span) -> Mapping[str, Any]:
    """The span's resource, with `service.name` made to agree with `span.service`."""
    resource = span.resource
    if resource.get("service.name") == span.service or (not span.service and "service.name" not in resource):
        return resource
    fixed = dict(resource)
    if span.service:
        fixed["service.name"] = span.service
    else:
        del fixed["service.name"]
    return fixed


def _group_by_resource(spans: Iterable[Span]) -> list[tuple[Mapping[str, Any], list[Span]]]:
    groups: list[tuple[Mapping[str, Any], list[Span]]] = []
    seen: dict[tuple[int, str], int] = {}
    for span in spans:
        ident = (id(span.resource), span.service)
        index = seen.get(ident)
        if index is None:
            resource = _effective_resource(span)
            for i, (other, _) in enumerate(groups):
                if other == resource:
                    index = i
                    break
            else:
                index = len(groups)
                groups.append((resource, []))
            seen[ident] = index
        groups[index][1].append(span)
    return groups


def _json_any(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, HexBytes):  # read from bytes: written back as them
        return {"bytesValue": base64.b64encode(bytes.fromhex(value)).decode("ascii")}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{where}: {value} does not fit in a 64-bit integer")
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        return {"doubleValue": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, bytes | bytearray):
        return {"bytesValue": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": _json_kvs(value, where)}}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [_json_any(v, where) for v in value]}}
    raise TypeError(f"{where}: cannot write {article(type(value).__name__)} as an OTLP attribute value")


def _json_kvs(attrs: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    return [{"key": k, "value": _json_any(v, f"{where}.{k}")} for k, v in attrs.items()]


def _span_to_json(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": span.trace_id.hex(),
        "spanId": span.span_id.hex(),
    }
    if span.parent_id:
        out["parentSpanId"] = span.parent_id.hex()
    out["name"] = span.name
    out["kind"] = _KIND_NUMBER[span.kind]
    out["startTimeUnixNano"] = str(span.start)
    out["endTimeUnixNano"] = str(span.end)
    attributes = span.attributes
    if attributes:
        out["attributes"] = _json_kvs(attributes, f"span {span.name!r} attribute")
    status: dict[str, Any] = {}
    code = _STATUS_CODE[span.status]
    if code:
        status["code"] = code
    if span.status_message:
        status["message"] = span.status_message
    out["status"] = status
    return out


def spans_to_json(spans: Iterable[Span]) -> dict[str, Any]:
    """OTLP/JSON (`{"resourceSpans": [...]}`) for the spans.

    Spans with equal resources (after setting `service.name` to the span's
    `service`) share one resource block, in order of first appearance. Ids are
    lowercase hex, times decimal strings, enums numbers, as the OTLP spec writes
    them. Attribute values must be None, str, bool, int (64-bit), float, bytes,
    or lists and mappings of those.
    """
    blocks: list[dict[str, Any]] = []
    for resource, group in _group_by_resource(spans):
        blocks.append(
            {
                "resource": {"attributes": _json_kvs(resource, "resource attribute")},
                "scopeSpans": [{"scope": {}, "spans": [_span_to_json(s) for s in group]}],
            }
        )
    return {"resourceSpans": blocks}


def _set_any(target: AnyValue, value: Any, where: str) -> None:
    if value is None:
        return
    if isinstance(value, HexBytes):
        target.bytes_value = bytes.fromhex(value)
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{where}: {value} does not fit in a 64-bit integer")
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, bytes | bytearray):
        target.bytes_value = bytes(value)
    elif isinstance(value, Mapping):
        kvlist = target.kvlist_value
        kvlist.SetInParent()
        _set_kvs(kvlist.values, value, where)
    elif isinstance(value, list | tuple):
        array = target.array_value
        array.SetInParent()
        for item in value:
            _set_any(array.values.add(), item, where)
    else:
        raise TypeError(f"{where}: cannot write {article(type(value).__name__)} as an OTLP attribute value")


def _set_kvs(target: Any, attrs: Mapping[str, Any], where: str) -> None:
    for k, v in attrs.items():
        kv = target.add()
        kv.key = k
        _set_any(kv.value, v, f"{where}.{k}")


def spans_to_request(spans: Iterable[Span]) -> ExportTraceServiceRequest:
    """An OTLP export request holding the spans, grouped as `spans_to_json` groups them."""
    req = ExportTraceServiceRequest()
    for resource, group in _group_by_resource(spans):
        rs = req.resource_spans.add()
        rs.resource.SetInParent()
        _set_kvs(rs.resource.attributes, resource, "resource attribute")
        ss = rs.scope_spans.add()
        ss.scope.SetInParent()
        for span in group:
            sp = ss.spans.add()
            sp.trace_id = span.trace_id
            sp.span_id = span.span_id
            sp.parent_span_id = span.parent_id
            sp.name = span.name
            sp.kind = _KIND_NUMBER[span.kind]  # type: ignore[assignment]
            sp.start_time_unix_nano = span.start
            sp.end_time_unix_nano = span.end
            _set_kvs(sp.attributes, span.attributes, f"span {span.name!r} attribute")
            sp.status.code = _STATUS_CODE[span.status]  # type: ignore[assignment]
            sp.status.message = span.status_message
    return req
