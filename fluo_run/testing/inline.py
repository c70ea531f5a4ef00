"""The compact inline form of a trace that rule tests write under `spans:`.

Each item is a mapping with these keys (only `name` is required):

  name        the span name
  service     resource `service.name` (`resource` naming another one too is an error); default:
              `resource`'s `service.name`, else the parent's service, else `unknown_service`
  duration    a FLUO duration (`20ms`, `1.5s`), a whole number of nanoseconds; default `1ms`
  start       offset of the span's start from the case's time origin; default: the parent's start, else `0s`
  parent      another span of the same trace, by its `id` or, if unique, its `name`;
              16 hex digits naming no span here are a parent that never arrived
  id          a label other spans name as `parent`; 16 hex digits are used as the span id itself
  status      `ok`, `error` or `unset` (default)
  kind        `internal`, `server`, `client`, `producer`, `consumer` or `unspecified` (default)
  attributes  span attributes (a mapping; dotted keys stay as written; integers fit 64 bits)
  resource    resource attributes (a mapping)
  trace       a label putting the span in its own trace; 32 hex digits are used as the trace id itself

Ids are derived from a seed (the case name), the trace label and the span's
`id` or name, so the same text always yields the same trace and span ids.
The time origin is 2026-01-01T00:00:00Z (`fluo test` moves a case's inline spans to its
fixture's earliest start when it has one). `to_inline` writes spans back in
this form, so a trace captured elsewhere can be pasted into a test.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fluo_lang.diagnostics import nearest
from fluo_lang.parser import DURATION_UNITS, exponent_duration, number_ns
from fluo_lang.trace import KIND_VALUES, STATUS_VALUES, Span
from fluo_lang.values import NS_LIMIT, in_int64, quoted

from .document import LineDict, LineList, not_text

ORIGIN_NS = 1_767_225_600 * 10**9
"""2026-01-01T00:00:00Z: the instant `start: 0s` means."""
DEFAULT_DURATION_NS = 1_000_000
DEFAULT_SERVICE = "unknown_service"
KEYS = ("name", "service", "duration", "start", "parent", "id", "status", "kind", "attributes", "resource", "trace")

_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zµ]+)\s*")
_EXPONENT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?[eE][+-]?[0-9]+)\s*([^\s0-9]+)\s*")
_HEX_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")
_HEX_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")


class InlineSpanError(ValueError):
    """An inline span that cannot be built: which item (0-based), which key, and why, in one line.

    `line`: the 1-based line of the value at fault inside the key's value (an attribute of `attributes:`
    written over several lines), when the items are loaded YAML that knows it; None otherwise.
    """

    def __init__(self, message: str, index: int, key: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.index = index
        self.key = key
        self.line = line


def parse_duration(value: Any) -> int | None:
    """Nanoseconds of a duration written as FLUO writes it (`20ms`, `1.5s`, `0`), exactly, as the rule language
    reads a duration literal (`number_ns`); None for anything else, and for one that is no whole number of
    nanoseconds (`1.5ns`)."""
    if _zero(value):
        return 0
    parts = _duration_parts(value)
    return None if parts is None else number_ns(*parts)


def _zero(value: Any) -> bool:
    """Whether `value` is the one duration written with no unit: `0`."""
    return not isinstance(value, bool) and (value == 0 or value == "0")


def _duration_parts(value: Any) -> tuple[str, int] | None:
    """The number as written and the unit's nanoseconds of a duration's text (`1.5`, 10**9 for `1.5s`), else None."""
    m = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if m is None or m.group(2) not in DURATION_UNITS:
        return None
    return m.group(1), DURATION_UNITS[m.group(2)]


def _digest(text: str, size: int) -> bytes:
    return hashlib.sha256(text.encode()).digest()[:size]


def trace_id_for(seed: str, label: str) -> bytes:
    """The trace id of an inline trace: the label itself if it is 32 hex digits, else derived."""
    if _HEX_TRACE_ID.fullmatch(label):
        return bytes.fromhex(label)
    return _digest(f"fluo-inline-trace\0{seed}\0{label}", 16)


class _Item:
    __slots__ = (
        "attributes",
        "duration",
        "index",
        "kind",
        "label",
        "name",
        "parent",
        "raw",
        "resource",
        "service",
        "span_id",
        "start",
        "status",
        "trace",
    )

    def __init__(self, index: int, raw: Mapping[str, Any], where: str) -> None:
        self.index = index
        self.raw = raw
        name = raw.get("name")
        self.name = name if isinstance(name, str) else ""
        if name is not None and not self.name and (why := not_text(name, _written(raw, "name"), "name")):
            raise self.fail(where, "name", why)
        self.trace = self._text("trace", where, default="")
        self.label = self._text("id", where, default="")
        self.parent = self._text("parent", where, default="")
        self.service = self._text("service", where, default="")
        self.status = self._choice("status", STATUS_VALUES, "unset", where)
        self.kind = self._choice("kind", KIND_VALUES, "unspecified", where)
        self.duration = self._duration("duration", where)
        self.start = self._duration("start", where)
        self.attributes = self._mapping("attributes", where)
        self.resource = self._mapping("resource", where)
        named = self.resource.get("service.name")
        if self.service and named is not None and str(named) != self.service:
            given = f"{self.service!r} and `resource`'s `service.name` {_show(named)}"
            raise self.fail(where, "service", f"both `service` {given} are given: give one")
        self.span_id = b""

    def fail(self, where: str, key: str | None, message: str, line: int | None = None) -> InlineSpanError:
        what = f"span {self.index + 1}" + (f" ({quoted(self.name)})" if self.name else "")
        at = f", `{key}`" if key else ""
        return InlineSpanError(f"{where}: {what}{at}: {message}", self.index, key, line)

    def _text(self, key: str, where: str, default: str) -> str:
        value = self.raw.get(key)
        if value is None:
            return default
        text = text_value(self.raw, key)
        if text is None:
            why = not_text(value, _written(self.raw, key), key)
            raise self.fail(where, key, why or f"expected text, got {_show(value)}")
        return text

    def _choice(self, key: str, allowed: tuple[str, ...], default: str, where: str) -> str:
        value = self.raw.get(key)
        if value is None:
            return default
        if isinstance(value, str) and value.lower() in allowed:
            return value.lower()
        hint = nearest(str(value).lower(), allowed)
        tip = f"; did you mean `{hint}`?" if hint else ""
        raise self.fail(where, key, f"expected one of {', '.join(allowed)}, got {_show(value)}{tip}")

    def _duration(self, key: str, where: str) -> int | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if _zero(value):
            return 0
        parts = _duration_parts(value)
        if parts is None:
            if isinstance(value, str) and value[:1] == "-" and _duration_parts(value[1:]):
                raise self.fail(where, key, f"{_show(value)} is negative: a span's {key} is 0 or more")
            got = f"expected a duration with a unit, like 20ms or 1.5s, got {_show(value)}"
            exponent = _EXPONENT.fullmatch(value) if isinstance(value, str) else None
            if exponent is not None:  # `1e3ms`: as `fluo check` says it of a duration literal
                got += "; " + exponent_duration(exponent[1], exponent[2])[0]
            raise self.fail(where, key, got)
        ns = number_ns(*parts)
        if ns is None:  # `1.5ns`: the rule language's FLUO109
            nearest = number_ns(*parts, nearest=True)
            fix = f"; the nearest is {exact_duration(nearest)}" if nearest is not None and nearest < NS_LIMIT else ""
            raise self.fail(where, key, f"{_show(value)} is no whole number of nanoseconds, which durations count{fix}")
        if ns >= NS_LIMIT:
            raise self.fail(where, key, f"{_show(value)} is past what a span's time can hold (about 292 years)")
        return ns

    def _mapping(self, key: str, where: str) -> dict[str, Any]:
        value = self.raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(where, key, f"expected a mapping of names to values, got {_show(value)}")
        past = _past_int64(value, self.raw.line_of(key) if isinstance(self.raw, LineDict) else None)
        if past is not None:
            path, n, line = past
            why = f"`{path}`: {n} is out of range for a 64-bit integer (OTLP's intValue); quote it to keep it as text"
            raise self.fail(where, key, why, line)
        return {str(k): v for k, v in value.items()}


def _written(raw: Mapping[str, Any], key: str) -> str | None:
    return raw.text_of(key) if isinstance(raw, LineDict) else None


def _past_int64(value: Mapping[str, Any], line: int | None) -> tuple[str, int, int | None] | None:
    """The first integer in attribute values (lists and mappings at any depth) that no 64-bit integer holds, as
    no OTLP trace can carry one: its path (`big`, `sizes[2]`, `limits.max`), the integer and its line if known."""
    todo: list[tuple[str, Any, int | None]] = [(str(k), v, _line_in(value, k, line)) for k, v in value.items()]
    todo.reverse()  # popped from the end: the first one written is found first
    while todo:
        path, v, n = todo.pop()
        if isinstance(v, int) and not isinstance(v, bool) and not in_int64(v):
            return path, v, n
        if isinstance(v, Mapping):
            todo.extend(reversed([(f"{path}.{k}", x, _line_in(v, k, n)) for k, x in v.items()]))
        elif isinstance(v, list):
            todo.extend(reversed([(f"{path}[{i}]", x, _line_in(v, i, n)) for i, x in enumerate(v)]))
    return None


def _line_in(container: Any, at: Any, line: int | None) -> int | None:
    """The line of the key or item `at` of a loaded mapping or list, else `line` (that of the container)."""
    if isinstance(container, LineDict):
        return container.line_of(at)
    if isinstance(container, LineList):
        return container.line_of(at)
    return line


def text_value(raw: Mapping[str, Any], key: str) -> str | None:
    """The value of `key` as a label or id: text as it is, a number as written (an id `0000000000000010`
    is 16 hex digits, not the octal 8 YAML reads; a label `0x1F` is not 31); None for anything else."""
    value = raw.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    written = raw.text_of(key) if isinstance(raw, LineDict) else None
    return written if written is not None else str(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def build_spans(items: Sequence[Mapping[str, Any]], *, where: str, seed: str | None = None) -> list[Span]:
    """Spans from the compact inline form; `where` prefixes error messages, `seed` (default `where`) the ids.

    Raises `InlineSpanError` naming the offending item and key.
    """
    seed = where if seed is None else seed
    parsed: list[_Item] = []
    for i, raw in enumerate(items):
        if not isinstance(raw, Mapping):
            message = f"{where}: span {i + 1}: expected a mapping like {{name: login}}, got {_show(raw)}"
            raise InlineSpanError(message, i)
        for key in raw:
            if key not in KEYS:
                hint = nearest(str(key), KEYS)
                tip = f"; did you mean `{hint}`?" if hint else f"; known keys: {', '.join(KEYS)}"
                raise InlineSpanError(f"{where}: span {i + 1}: unknown key `{key}`{tip}", i, str(key))
        item = _Item(i, raw, where)
        if not item.name:
            raise item.fail(where, "name", "every span needs a `name` (text)")
        parsed.append(item)

    by_trace: dict[str, list[_Item]] = {}
    for item in parsed:
        by_trace.setdefault(item.trace, []).append(item)
    trace_ids = {label: trace_id_for(seed, label) for label in by_trace}
    for label, group in by_trace.items():
        _assign_ids(group, seed, label, where)
    lookups = {label: _Lookup(group) for label, group in by_trace.items()}
    parents = {id(item): _parent_of(item, lookups[item.trace], where) for item in parsed}
    inherited = _inherit(parsed, parents, where)

    out: list[Span] = []
    for item in parsed:
        start, service = inherited[id(item)]
        service = service or DEFAULT_SERVICE
        resource = {**item.resource, "service.name": service}
        duration = item.duration if item.duration is not None else DEFAULT_DURATION_NS
        parent = parents[id(item)]
        parent_id = parent if isinstance(parent, bytes) else parent.span_id if parent is not None else b""
        out.append(
            Span(
                trace_id=trace_ids[item.trace],
                span_id=item.span_id,
                parent_id=parent_id,
                name=item.name,
                service=service,
                start=ORIGIN_NS + start,
                end=ORIGIN_NS + start + duration,
                status=item.status,
                kind=item.kind,
                attributes=item.attributes,
                resource=resource,
            )
        )
    return out


def _service_of(item: _Item) -> str:
    """The service a span states itself: `service`, else its resource's `service.name`."""
    return item.service or str(item.resource.get("service.name") or "")


def _assign_ids(group: list[_Item], seed: str, label: str, where: str) -> None:
    seen_labels: dict[str, _Item] = {}
    occurrences: dict[str, int] = {}
    used: set[bytes] = set()
    for item in group:
        if item.label:
            if item.label in seen_labels:
                other = seen_labels[item.label].index + 1
                raise item.fail(where, "id", f"id {item.label!r} is already used by span {other}")
            seen_labels[item.label] = item
            if _HEX_SPAN_ID.fullmatch(item.label):
                item.span_id = bytes.fromhex(item.label)
            else:
                item.span_id = _digest(f"fluo-inline-span\0{seed}\0{label}\0id:{item.label}", 8)
        else:
            n = occurrences.get(item.name, 0)
            occurrences[item.name] = n + 1
            item.span_id = _digest(f"fluo-inline-span\0{seed}\0{label}\0name:{item.name}#{n}", 8)
        if item.span_id in used:
            raise item.fail(where, "id", f"span id {item.span_id.hex()} is already used in this trace")
        used.add(item.span_id)


class _Lookup:
    """The spans of one inline trace by what `parent` may name: an `id` label, a hex span id, or a name."""

    def __init__(self, group: list[_Item]) -> None:
        self.group = group
        self.by_ref: dict[str, list[_Item]] = {}
        self.by_name: dict[str, list[_Item]] = {}
        for x in group:
            refs = {x.span_id.hex()} | ({x.label} if x.label else set())
            for ref in refs:
                self.by_ref.setdefault(ref, []).append(x)
            self.by_name.setdefault(x.name, []).append(x)

    def find(self, ref: str) -> list[_Item]:
        return self.by_ref.get(ref) or self.by_ref.get(ref.lower()) or self.by_name.get(ref, [])


def _parent_of(item: _Item, lookup: _Lookup, where: str) -> _Item | bytes | None:
    """The parent span, or for 16 hex digits naming no span here, that id (a parent that never arrived)."""
    ref = item.parent
    if not ref:
        return None
    found = lookup.find(ref)
    trace = f" in trace {item.trace!r}" if item.trace else ""
    if not found and _HEX_SPAN_ID.fullmatch(ref):
        return bytes.fromhex(ref)
    if not found:
        others = [x for x in lookup.group if x is not item]  # never itself: it cannot be its own parent
        names = sorted({x.label for x in others if x.label} | {x.name for x in others})
        hint = nearest(ref, names)
        tip = f"; did you mean `{hint}`?" if hint else ""
        raise item.fail(where, "parent", f"no span with id or name {ref!r}{trace}{tip}")
    if len(found) > 1:
        raise item.fail(where, "parent", f"{len(found)} spans are named {ref!r}{trace}; give the parent an `id`")
    if found[0] is item:
        raise item.fail(where, "parent", "a span cannot be its own parent")
    return found[0]


def _inherit(items: list[_Item], parents: dict[int, _Item | bytes | None], where: str) -> dict[int, tuple[int, str]]:
    """Each span's start and service: its own, else its nearest ancestor's (0 and "" at the top).

    Each span is resolved once, from its parent's result, so deep chains cost
    linear time; a cycle of parents is an error at the first span in it.
    """
    done: dict[int, tuple[int, str]] = {}
    for item in items:
        chain: list[_Item] = []
        on_chain: set[int] = set()
        cur: _Item | bytes | None = item
        while isinstance(cur, _Item) and id(cur) not in done:
            if id(cur) in on_chain:
                raise item.fail(where, "parent", "parents form a cycle")
            chain.append(cur)
            on_chain.add(id(cur))
            cur = parents[id(cur)]
        start, service = done[id(cur)] if isinstance(cur, _Item) else (0, "")
        for x in reversed(chain):
            start = x.start if x.start is not None else start
            service = _service_of(x) or service
            done[id(x)] = (start, service)
    return done


def exact_duration(ns: int) -> str:
    """A duration in the largest unit that states `ns` exactly: 20ms, 1500us, 17ns."""
    if ns == 0:
        return "0s"
    for unit in ("h", "m", "s", "ms", "us"):
        size = DURATION_UNITS[unit]
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def to_inline(spans: Sequence[Span]) -> list[dict[str, Any]]:
    """The compact inline form of spans, times as offsets from the earliest start.

    Span ids are written as hex, and so are trace ids (as `trace:` labels) when
    there are several traces, so `build_spans(to_inline(spans))` keeps them, along
    with structure, names, services, durations, relative starts, status, kind and
    attributes. A single trace gets no label and so a derived trace id.
    """
    origin = min((s.start for s in spans), default=0)
    several = len({s.trace_id for s in spans}) > 1
    out: list[dict[str, Any]] = []
    for s in spans:
        item: dict[str, Any] = {"name": s.name, "id": s.span_id.hex()}
        if s.parent_id:
            item["parent"] = s.parent_id.hex()
        item["service"] = s.service or DEFAULT_SERVICE
        item["start"] = exact_duration(s.start - origin)
        item["duration"] = exact_duration(s.duration)
        if s.status != "unset":
            item["status"] = s.status
        if s.kind != "unspecified":
            item["kind"] = s.kind
        if s.attributes:
            item["attributes"] = dict(s.attributes)
        resource = {k: v for k, v in s.resource.items() if k != "service.name"}
        if resource:
            item["resource"] = resource
        if several:
            item["trace"] = s.trace_id.hex()
        out.append(item)
    return out
