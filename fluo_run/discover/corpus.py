"""A corpus of traces reduced to what discovery needs: one compact summary per trace.

Discovery reads every span once. Each trace becomes a `TraceSummary`: for each
operation (a `(service, name)` pair, numbered in the order of service, then
name, so no choice among operations depends on the order spans were read in)
how many spans it had, the earliest end and latest start (what `before`
compares), the longest duration, whether any span failed, the operations of
its parents, and per attribute key what values it took. Facts are then mined
from these summaries, never from the spans again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fluo_lang.otlp import UnknownKeys, load_trace_files, read_warnings
from fluo_lang.trace import Span, Trace, assemble, collector_paused, dropped_copies

ROOT = -1
"""Parent key of a span with no parent id."""
ORPHAN = -2
"""Parent key of a span whose parent never arrived."""
MAX_DISTINCT = 64
"""Distinct attribute values kept per operation and key over the corpus."""
MAX_VALUE_LENGTH = 256
"""A string attribute value longer than this makes no value set: a rule would carry it whole."""
TIMELINE = 200
"""Numeric values kept per operation and key with the time they were seen, to tell ids and timestamps."""


@dataclass(frozen=True, slots=True)
class Op:
    """An operation: a span name within one service."""

    service: str
    name: str


_KIND_OF_TYPE = {str: "str", int: "num", bool: "bool"}


def value_kind(v: Any) -> str:
    """The kind of an attribute value as the evaluator compares it: str, num, bool, or other."""
    kind = _KIND_OF_TYPE.get(type(v))
    if kind is not None:
        return kind
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "num"
    if isinstance(v, float):
        return "num" if math.isfinite(v) else "other"
    if isinstance(v, str):
        return "str"
    return "other"


def kind_of(values: list[Any]) -> str:
    """The one value kind of a list of attribute values, or "mixed"."""
    kinds = {value_kind(v) for v in values}
    return kinds.pop() if len(kinds) == 1 else "mixed"


class OpStat:
    """The spans of one operation in one trace."""

    __slots__ = ("attrs", "count", "errors", "first_end", "last_start", "max_duration", "parents")

    def __init__(self, start: int, end: int) -> None:
        self.count = 0
        self.first_end = end
        self.last_start = start
        self.max_duration = 0
        self.errors = 0
        self.parents: set[int] = set()
        self.attrs: dict[str, list[Any]] = {}


@dataclass(slots=True)
class TraceSummary:
    index: int
    trace_id: str
    total: int
    ops: dict[int, OpStat]


class KeyStats:
    """One attribute key of one operation over the whole corpus.

    Only traces where every span of the operation carries the key count
    (`full`): on any other trace an attribute fact about the key fails anyway.
    `values` is the union of their values, each with the number of those
    traces that carry it, while it stays small and no string in it is longer than `MAX_VALUE_LENGTH`
    (else None);
    `trace_values` keeps each full trace's own values for choosing a set that
    allows exceptions, when asked for and while `values` is kept. `timeline`
    keeps the first `TIMELINE` traces' numeric values beside the latest start
    of the operation's spans in that trace.
    """

    __slots__ = ("empty", "full", "hi", "kinds", "lo", "timeline", "trace_values", "values")

    def __init__(self, keep_trace_values: bool) -> None:
        self.full: list[int] = []
        self.kinds: set[str] = set()
        self.values: dict[Any, int] | None = {}
        self.trace_values: list[tuple[int, frozenset[Any]]] | None = [] if keep_trace_values else None
        self.lo: float | None = None
        self.hi: float | None = None
        self.empty: list[int] = []
        self.timeline: list[tuple[int, Any]] = []

    def add_one(self, index: int, v: Any, at: int) -> None:
        """`add` for the usual case of one span per operation and trace."""
        kind = _KIND_OF_TYPE.get(type(v)) or value_kind(v)
        self.kinds.add(kind)
        known = self.values
        if known is not None:
            if kind == "other" or (kind == "str" and len(v) > MAX_VALUE_LENGTH):
                self.values = self.trace_values = None
            else:
                known[v] = known.get(v, 0) + 1
                if len(known) > MAX_DISTINCT:
                    self.values = self.trace_values = None
                elif self.trace_values is not None:
                    self.trace_values.append((index, frozenset((v,))))
        if kind == "str":
            if not v:
                self.empty.append(index)
        elif kind == "num":
            if self.lo is None or v < self.lo:
                self.lo = v
            if self.hi is None or v > self.hi:
                self.hi = v
            if len(self.timeline) < TIMELINE:
                self.timeline.append((at, v))

    def add(self, index: int, values: list[Any], at: int) -> None:
        """The values one trace's spans of the operation carry, one per span; `at` is their latest start."""
        self.full.append(index)
        if len(values) == 1:
            self.add_one(index, values[0], at)
            return
        kind = kind_of(values)
        try:
            distinct = set(values) if kind != "other" else None
        except TypeError:
            distinct = None
        self.kinds.add(kind)
        known = self.values
        if known is not None:
            if distinct is None or (kind == "str" and any(len(v) > MAX_VALUE_LENGTH for v in distinct)):
                self.values = self.trace_values = None
            else:
                for v in distinct:
                    known[v] = known.get(v, 0) + 1
                if len(known) > MAX_DISTINCT:
                    self.values = self.trace_values = None
                elif self.trace_values is not None:
                    self.trace_values.append((index, frozenset(distinct)))
        if kind == "str":
            if "" in values:
                self.empty.append(index)
        elif kind == "num":
            lo, hi = min(values), max(values)
            if self.lo is None or lo < self.lo:
                self.lo = lo
            if self.hi is None or hi > self.hi:
                self.hi = hi
            if len(self.timeline) < TIMELINE:
                self.timeline.append((at, hi))


@dataclass
class Corpus:
    """Every trace's summary plus the table of operations they refer to."""

    ops: list[Op] = field(default_factory=list)
    op_index: dict[tuple[str, str], int] = field(default_factory=dict)
    """Operation numbers by (service, name)."""
    traces: list[TraceSummary] = field(default_factory=list)
    spans: int = 0
    keys: dict[tuple[int, str], KeyStats] = field(default_factory=dict)
    """Attribute keys by operation and key."""
    resent: int = 0
    """Spans dropped as identical copies of another with their span id (read by `load_corpus`)."""
    clashing: int = 0
    """Spans dropped for sharing a span id with a different span of their trace, or with the same span but other
    resource attributes (`trace.Copies`)."""
    warnings: list[str] = field(default_factory=list)
    """What reading the files changed or lost (`read_warnings`), for the command to say (read by `load_corpus`)."""
    _by_service: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _indexed: int = field(default=0, repr=False)

    def op_id(self, service: str, name: str) -> int:
        key = (service, name)
        i = self.op_index.get(key)
        if i is None:
            i = len(self.ops)
            self.ops.append(Op(service, name))
            self.op_index[key] = i
        return i

    @property
    def services(self) -> list[str]:
        return sorted({o.service for o in self.ops})

    def ops_of(self, service: str) -> list[int]:
        """The operations of a service (the table is complete once the corpus is summarised)."""
        if self._indexed != len(self.ops):
            self._by_service.clear()
            for i, o in enumerate(self.ops):
                self._by_service.setdefault(o.service, []).append(i)
            self._indexed = len(self.ops)
        return self._by_service.get(service, [])


def summarize(traces: Iterable[Trace], *, attributes: bool = True, trace_values: bool = True) -> Corpus:
    """One pass over every span of every trace.

    `trace_values` keeps per-trace attribute values, which choosing a value set
    that allows exceptions needs; without exceptions the union suffices.
    """
    corpus = Corpus()
    op_id = corpus.op_id
    keys = corpus.keys
    for trace in traces:
        spans = trace.spans
        if not spans:
            continue
        ops: dict[int, OpStat] = {}
        span_op: dict[bytes, int] = {}
        span_ops: list[int] = []
        for s in spans:
            o = op_id(s.service, s.name)
            span_op[s.span_id] = o
            span_ops.append(o)
        for s, o in zip(spans, span_ops, strict=True):
            st = ops.get(o)
            start, end = s.start, s.end
            if st is None:
                st = ops[o] = OpStat(start, end)
            st.count += 1
            if end < st.first_end:
                st.first_end = end
            if start > st.last_start:
                st.last_start = start
            if end - start > st.max_duration:
                st.max_duration = end - start
            if s.status == "error":
                st.errors += 1
            pid = s.parent_id
            if not pid:
                st.parents.add(ROOT)
            else:  # a span naming itself has no parent (`Trace.parent_of`), as an orphan has none
                st.parents.add(span_op.get(pid, ORPHAN) if pid != s.span_id else ORPHAN)
            if attributes:
                attrs = st.attrs
                flat = s.attributes
                nested = False
                for k, v in flat.items():
                    values = attrs.get(k)
                    if values is None:
                        attrs[k] = [v]
                    else:
                        values.append(v)
                    if v.__class__ is dict:
                        nested = True
                if nested:
                    _add_nested(s, flat, attrs)
        index = len(corpus.traces)
        if attributes:
            for o, st in ops.items():
                n = st.count
                for k, values in st.attrs.items():
                    if len(values) == n:
                        ks = keys.get((o, k))
                        if ks is None:
                            ks = keys[o, k] = KeyStats(trace_values)
                        ks.add(index, values, st.last_start)
                st.attrs = {}
        corpus.traces.append(TraceSummary(index, trace.id_hex, len(spans), ops))
        corpus.spans += len(spans)
    _renumber(corpus)
    return corpus


def _renumber(corpus: Corpus) -> None:
    """Number the operations by service, then name: they were numbered as first seen, which depends on the
    order of the files (the spans of one trace may come from several), and mining breaks ties by number."""
    order = sorted(range(len(corpus.ops)), key=lambda i: (corpus.ops[i].service, corpus.ops[i].name))
    if all(i == o for i, o in enumerate(order)):
        return
    new = [0] * len(order)
    for n, o in enumerate(order):
        new[o] = n
    corpus.ops = [corpus.ops[o] for o in order]
    corpus.op_index = {(o.service, o.name): i for i, o in enumerate(corpus.ops)}
    for t in corpus.traces:
        ops = {}
        for o, st in t.ops.items():
            st.parents = {p if p < 0 else new[p] for p in st.parents}
            ops[new[o]] = st
        t.ops = ops
    corpus.keys = {(new[o], k): ks for (o, k), ks in corpus.keys.items()}


def _add_nested(s: Span, flat: dict[str, Any], attrs: dict[str, list[Any]]) -> None:
    """The dotted keys under the span's map-valued attributes (`http` = `{method: GET}` gives `http.method`),
    each with the value a rule's name reads (`Span.attr`): a flat key of the span wins, as it does in
    `fluo eval`, so a rule mined from these fires on the traces its exceptions name. Each key once, and only a
    key a rule can name bare: `attributes['headers.x-id']` reads the flat key alone, never through the map."""
    from .syntax import attribute  # which imports this module

    seen: set[str] = set()
    pending = [(k, v) for k, v in flat.items() if v.__class__ is dict]
    while pending:
        prefix, inner = pending.pop()
        for sub, v in inner.items():
            dotted = f"{prefix}.{sub}"
            if v.__class__ is dict:
                pending.append((dotted, v))
            elif dotted not in flat and dotted not in seen and attribute(dotted) == dotted:
                seen.add(dotted)
                got = s.attr(dotted)
                if got is not None:
                    values = attrs.get(dotted)
                    if values is None:
                        attrs[dotted] = [got]
                    else:
                        values.append(got)


def load_corpus(
    paths: Sequence[str | Path],
    *,
    attributes: bool = True,
    trace_values: bool = True,
    unknown: UnknownKeys | None = None,
) -> tuple[list[Trace], Corpus]:
    """Read trace files (raises `TraceInputError`; unknown keys of OTLP/JSON objects go to `unknown`),
    assemble traces and summarise them.

    Traces are taken in the order of their ids, not of the files: exceptions, and the traces `--tests`
    builds its cases from, do not depend on the order the files were given in.
    """
    with collector_paused():
        clamped: dict[str, list[Span]] = {}
        sources: dict[str, int] = {}
        spans = load_trace_files(paths, clamped=clamped, unknown=unknown, sources=sources)
        traces = sorted(assemble(spans), key=lambda t: t.trace_id)
        corpus = summarize(traces, attributes=attributes, trace_values=trace_values)
        copies = dropped_copies(spans, traces)
        corpus.resent, corpus.clashing = copies.resent, copies.clashing + copies.restamped
        corpus.warnings = read_warnings(clamped, copies, spans, sources)
        return traces, corpus
