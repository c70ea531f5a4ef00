"""The trace model: spans and assembled traces, as the language sees them.

A `Span` holds the intrinsics the language names (`name`, `service`,
`duration`, `status`, `kind`, `start`, `end`, ids) as plain Python values:
times are integer nanoseconds since the Unix epoch, durations integer
nanoseconds, ids raw bytes (hex on demand). Attributes are a dict built lazily
from whatever the loader handed over, so rules that never read attributes never
pay for converting them.

A `Trace` is every span that shares a trace id. Structure (parent, children,
root) and per-field indexes are computed on first use and cached, so a hundred
rules that all filter on `service == ...` share one pass over the spans.
"""

from __future__ import annotations

import functools
import gc
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, NamedTuple

STATUS_VALUES = ("unset", "ok", "error")
KIND_VALUES = ("unspecified", "internal", "server", "client", "producer", "consumer")

AttrSource = Callable[[], dict[str, Any]]
_START = attrgetter("start")
_END = attrgetter("end")

span_order: Callable[[Span], tuple[int, bytes, bytes]] = attrgetter("start", "trace_id", "span_id")
"""The one order of spans that does not depend on the order they arrived in: by start time, then
trace id, then span id. A trace's `root` is the first of its roots in it, a signal's `span_ids` follow it."""


@functools.cache
def dotted_readings(key: str) -> tuple[tuple[str, str], ...]:
    """The ways to read a dotted attribute key that is not one flat key: a flat key `head`
    holding a map, and `rest` read in that map (by the same rule), longest head first.

    `a.b.c` gives `("a.b", "c")`, then `("a", "b.c")`: a map under the flat key `a.b` wins
    over one under `a`, and inside `a` a flat key `b.c` over a map `b` (see docs/language.md).
    A key without a dot gives none. Cached: the keys are the rules' own.
    """
    out: list[tuple[str, str]] = []
    i = key.rfind(".")
    while i > 0:
        out.append((key[:i], key[i + 1 :]))
        i = key.rfind(".", 0, i)
    return tuple(out)


def read_in(m: Mapping[str, Any], key: str) -> Any:
    """`key` in the map `m` as a rule's name reads it: the flat key, else `read_dotted`."""
    v = m.get(key)
    if v is None and "." in key:
        return read_dotted(m.get, dotted_readings(key))
    return v


def read_dotted(get: Callable[[str], Any], readings: tuple[tuple[str, str], ...]) -> Any:
    """The first of `readings` (`dotted_readings`) that finds a value, each head's flat value
    got by `get` (a map's `get`, or a span's own lookup); None if none does."""
    for head, rest in readings:
        inner = get(head)
        if isinstance(inner, dict):
            v = read_in(inner, rest)
            if v is not None:
                return v
    return None


class Span:
    """One span, with the intrinsics of LANGUAGE.md §3 and lazily built attributes."""

    __slots__ = (
        "_attrs",
        "_attrs_source",
        "_read",
        "end",
        "kind",
        "name",
        "parent_id",
        "resource",
        "service",
        "span_id",
        "start",
        "status",
        "status_message",
        "trace_id",
        "trace_ref",
    )

    def __init__(
        self,
        *,
        trace_id: bytes,
        span_id: bytes,
        parent_id: bytes = b"",
        name: str = "",
        service: str = "",
        start: int = 0,
        end: int = 0,
        status: str = "unset",
        status_message: str = "",
        kind: str = "unspecified",
        attributes: Mapping[str, Any] | None = None,
        attributes_source: AttrSource | None = None,
        resource: Mapping[str, Any] | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.name = name
        self.service = service
        self.start = start
        self.end = end
        self.status = status
        self.status_message = status_message
        self.kind = kind
        self._attrs: dict[str, Any] | None = dict(attributes) if attributes is not None else None
        self._attrs_source: Any = attributes_source
        self._read: dict[str, Any] | None = None
        self.resource: Mapping[str, Any] = resource if resource is not None else {}
        self.trace_ref: weakref.ref[Trace] | None = None

    @property
    def trace(self) -> Trace | None:
        """The trace this span was assembled into, while that trace is alive.

        A weak reference: spans and their trace form no cycle, so a trace is freed
        as soon as its last user lets go, without waiting for the cyclic collector.
        """
        ref = self.trace_ref
        return ref() if ref is not None else None

    @property
    def attributes(self) -> dict[str, Any]:
        attrs = self._attrs
        if attrs is None:
            attrs = self._convert() if self._attrs_source is not None else {}
            self._attrs = attrs
            self._attrs_source = None
        return attrs

    def attr(self, key: str) -> Any:
        """One attribute's value as a rule's name reads it (None if absent), without converting the others.

        The flat key, or for a dotted key that is not one, a map under a flat prefix of
        it (`read_dotted`). A loader may pass an `attributes_source` that also has
        `lookup(key)` (or subclass `Span` and override `_lookup`); then reading a key
        never builds the whole dict. Values read that way are kept (a loader may fill
        them ahead too, read the same way), so each key is converted once per span.
        """
        read = self._read
        if read is not None and key in read:
            return read[key]
        attrs = self._attrs
        if attrs is not None:
            v = attrs.get(key)
            if v is None and "." in key:
                return read_dotted(attrs.get, dotted_readings(key))
            return v
        if self._attrs_source is None:
            return None
        value = self._lookup(key)
        if value is None and "." in key:
            value = read_dotted(self._lookup, dotted_readings(key))
        if read is None:
            self._read = read = {}
        read[key] = value
        return value

    def _lookup(self, key: str) -> Any:
        """One key from the attribute source (set): through its `lookup`, or the whole dict."""
        lookup = getattr(self._attrs_source, "lookup", None)
        return lookup(key) if lookup is not None else self.attributes.get(key)

    def _convert(self) -> dict[str, Any]:
        """Every attribute from the attribute source (set), as a new dict."""
        source: AttrSource = self._attrs_source
        return source()

    @property
    def duration(self) -> int:
        return self.end - self.start

    @property
    def span_id_hex(self) -> str:
        return self.span_id.hex()

    @property
    def trace_id_hex(self) -> str:
        return self.trace_id.hex()

    @property
    def parent_id_hex(self) -> str:
        return self.parent_id.hex()

    def __repr__(self) -> str:
        return f"Span({self.name!r}, service={self.service!r}, id={self.span_id.hex()})"


class _Indexed:
    """Spans with per-field indexes built on first use."""

    __slots__ = ()
    spans: list[Span]
    _index: dict[str, dict[Any, list[Span]]]

    def index(self, field: str) -> dict[Any, list[Span]]:
        """Spans grouped by an intrinsic field, built once per field and shared by every rule."""
        idx = self._index.get(field)
        if idx is None:
            idx = {}
            bucket_of = idx.get
            spans = self.spans
            for s, k in zip(spans, map(attrgetter(field), spans), strict=True):
                bucket = bucket_of(k)
                if bucket is None:
                    idx[k] = [s]
                else:
                    bucket.append(s)
            self._index[field] = idx
        return idx


class Trace(_Indexed):
    """All spans sharing one trace id, with structure and indexes computed on demand.

    A span id given more than once (an exporter resending a batch the receiver
    already took, or one file read twice) is one span: the last copy is kept, in
    the place of the first, and `duplicates` counts the copies dropped.
    """

    __slots__ = (
        "__weakref__",
        "_bounds",
        "_by_id",
        "_children",
        "_index",
        "_root",
        "_root_done",
        "duplicates",
        "spans",
        "trace_id",
    )

    def __init__(self, trace_id: bytes, spans: Iterable[Span]) -> None:
        self.trace_id = trace_id
        self.spans: list[Span] = list(spans)
        self.duplicates = 0
        if len({s.span_id for s in self.spans}) != len(self.spans):
            unique = {s.span_id: s for s in self.spans}
            self.duplicates = len(self.spans) - len(unique)
            self.spans = list(unique.values())
        ref = weakref.ref(self)
        for span in self.spans:
            span.trace_ref = ref
        self._by_id: dict[bytes, Span] | None = None
        self._children: dict[bytes, list[Span]] | None = None
        self._index: dict[str, dict[Any, list[Span]]] = {}
        self._root: Span | None = None
        self._root_done = False
        self._bounds: tuple[int, int] | None = None

    @property
    def id_hex(self) -> str:
        return self.trace_id.hex()

    @property
    def by_id(self) -> dict[bytes, Span]:
        by_id = self._by_id
        if by_id is None:
            by_id = {s.span_id: s for s in self.spans}
            self._by_id = by_id
        return by_id

    @property
    def root(self) -> Span | None:
        """The span with no parent id, the first of several in `span_order`; None if there is none.

        A span whose parent id names a span that never arrived is the root of its
        own fragment, not of the trace. So is a span that names itself as its parent
        (bad input): it has no parent and is neither its own child nor ancestor, but
        it has a parent id, so it is not the trace's root, as an orphan is not.
        """
        if not self._root_done:
            roots = [s for s in self.spans if not s.parent_id]
            self._root = min(roots, key=span_order) if roots else None
            self._root_done = True
        return self._root

    @property
    def bounds(self) -> tuple[int, int]:
        """(earliest start, latest end), computed once; (0, 0) for no spans."""
        b = self._bounds
        if b is None:
            spans = self.spans
            b = (min(map(_START, spans)), max(map(_END, spans))) if spans else (0, 0)
            self._bounds = b
        return b

    @property
    def start(self) -> int:
        return self.bounds[0]

    @property
    def end(self) -> int:
        return self.bounds[1]

    @property
    def duration(self) -> int:
        start, end = self.bounds
        return end - start

    @property
    def services(self) -> list[str]:
        """Service names in order of first appearance: by start time, then span id (as `root` breaks ties), then
        name, so the order is the trace's own, never the order its spans arrived in."""
        seen: dict[str, None] = {}
        for s in sorted(self.spans, key=lambda s: (s.start, s.span_id, s.service)):
            seen.setdefault(s.service, None)
        return list(seen)

    def parent_of(self, span: Span) -> Span | None:
        if not span.parent_id or span.parent_id == span.span_id:
            return None
        return self.by_id.get(span.parent_id)

    def children_of(self, span: Span) -> list[Span]:
        children = self._children
        if children is None:
            children = {}
            for s in self.spans:
                if s.parent_id and s.parent_id != s.span_id:
                    children.setdefault(s.parent_id, []).append(s)
            self._children = children
        return children.get(span.span_id, [])

    def descendants_of(self, span: Span) -> list[Span]:
        out: list[Span] = []
        stack = list(reversed(self.children_of(span)))
        seen = {span.span_id}
        while stack:
            s = stack.pop()
            if s.span_id in seen:  # a cycle of parent ids in bad input
                continue
            seen.add(s.span_id)
            out.append(s)
            stack.extend(reversed(self.children_of(s)))
        return out

    def ancestors_of(self, span: Span) -> list[Span]:
        out: list[Span] = []
        seen = {span.span_id}
        cur = self.parent_of(span)
        while cur is not None and cur.span_id not in seen:
            seen.add(cur.span_id)
            out.append(cur)
            cur = self.parent_of(cur)
        return out

    def __iter__(self) -> Iterator[Span]:
        return iter(self.spans)

    def __len__(self) -> int:
        return len(self.spans)

    def __repr__(self) -> str:
        return f"Trace({self.trace_id.hex()}, {len(self.spans)} spans)"


def assemble(spans: Iterable[Span]) -> list[Trace]:
    """Group spans by trace id, keeping the order in which trace ids first appear."""
    groups: dict[bytes, list[Span]] = {}
    for s in spans:
        groups.setdefault(s.trace_id, []).append(s)
    return [Trace(tid, group) for tid, group in groups.items()]


def _content(s: Span) -> tuple[Any, ...]:
    """What tells two spans apart, but for their resource attributes."""
    return (s.parent_id, s.name, s.service, s.start, s.end, s.status, s.status_message, s.kind, s.attributes)


class Copies(NamedTuple):
    """What `dropped_copies` counts: spans dropped for repeating the span id of another in their trace."""

    resent: int
    """Identical copies (a batch resent, a file read twice): nothing lost."""
    clashing: int
    """Different spans (an id generator's bug): data lost."""
    restamped: int = 0
    """The same span with other resource attributes (one trace exported through two pipelines or collectors that
    add different ones, such as `service.instance.id`): those attributes lost, the span kept."""
    first_clashing: tuple[int, int] | None = None
    """The first span dropped as `clashing`, in the order read, and the copy kept of it: their indexes there."""
    first_restamped: tuple[int, int] | None = None
    """The first span dropped as `restamped`, and the copy kept of it, as `first_clashing`."""


def dropped_copies(spans: Iterable[Span], traces: Iterable[Trace]) -> Copies:
    """The spans `traces` (assembled from `spans`) dropped for repeating the span id of another in their trace
    (`Trace.duplicates`), each compared with the copy kept (the last): see `Copies`."""
    dropped = {t.trace_id for t in traces if t.duplicates}
    if not dropped:
        return Copies(0, 0)
    groups: dict[tuple[bytes, bytes], list[tuple[int, Span]]] = {}
    for i, s in enumerate(spans):
        if s.trace_id in dropped:
            groups.setdefault((s.trace_id, s.span_id), []).append((i, s))
    resent = clashing = restamped = 0
    first_clashing: tuple[int, int] | None = None
    first_restamped: tuple[int, int] | None = None
    for group in groups.values():
        at, last = group[-1]  # the last copy is the one kept
        kept = _content(last)
        for i, s in group[:-1]:
            if _content(s) != kept:
                clashing += 1
                if first_clashing is None or i < first_clashing[0]:
                    first_clashing = (i, at)
            elif s.resource != last.resource:
                restamped += 1
                if first_restamped is None or i < first_restamped[0]:
                    first_restamped = (i, at)
            else:
                resent += 1
    return Copies(resent, clashing, restamped, first_clashing, first_restamped)


class Window(_Indexed):
    """The spans of every trace completed within one tumbling window [start, end)."""

    __slots__ = ("_index", "end", "spans", "start", "traces")

    def __init__(self, start: int, end: int, traces: list[Trace]) -> None:
        self.start = start
        self.end = end
        self.traces = traces
        self.spans: list[Span] = [s for t in traces for s in t.spans]
        self._index: dict[str, dict[Any, list[Span]]] = {}

    @property
    def duration(self) -> int:
        return self.end - self.start


MAX_EMPTY_WINDOWS = 10_000
"""The most windows with no trace that one evaluation goes through, of each window length, between windows with
traces (see `tumbling`); the live runtime's own bound is the same number of empty windows in a row."""


@dataclass(frozen=True)
class Gap:
    """A run of `count` empty windows, from `start` to `end`, too long to evaluate one by one."""

    start: int
    end: int
    count: int


def tumbling(
    traces: Iterable[Trace], length_ns: int, max_empty: int = MAX_EMPTY_WINDOWS
) -> tuple[list[Window], list[Gap]]:
    """Tumbling windows of `length_ns`, each trace placed by its completion (latest span end), and the gaps left out.

    Every window from the first with a trace to the last is evaluated, empty ones
    too: a rule such as `window.traces.count() > 0` is about the windows where
    nothing came; but at most `max_empty` empty ones in all (30 spans 10,001
    windows apart made 290,000 signals from a 5 KB file). A run of empty windows
    past what is left of that is returned as a `Gap` instead of one window each.
    Each window length has its bound of its own: the rules decide how many
    lengths there are, the traces only how far apart they are.
    """
    buckets: dict[int, list[Trace]] = {}
    for t in traces:
        if not t.spans:
            continue
        k = t.end // length_ns
        buckets.setdefault(k, []).append(t)
    windows: list[Window] = []
    gaps: list[Gap] = []
    previous: int | None = None
    left = max_empty
    for k in sorted(buckets):
        if previous is not None and k - previous > 1:
            empty = k - previous - 1
            if empty <= left:
                windows.extend(Window(j * length_ns, (j + 1) * length_ns, []) for j in range(previous + 1, k))
                left -= empty
            else:
                gaps.append(Gap((previous + 1) * length_ns, k * length_ns, empty))
        windows.append(Window(k * length_ns, (k + 1) * length_ns, buckets[k]))
        previous = k
    return windows, gaps


def windows_of(traces: Iterable[Trace], length_ns: int) -> list[Window]:
    """The windows of `tumbling`, without the gaps it left out."""
    return tumbling(traces, length_ns)[0]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while many spans are loaded and evaluated.

    Spans and traces form no reference cycles (a span points to its trace weakly),
    so reference counting frees them; left on, the collector rescans the growing
    heap again and again and takes most of the time of a large load.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
