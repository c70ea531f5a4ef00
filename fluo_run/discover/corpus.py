"""A corpus of traces reduced to what discovery needs: one compact summary per trace.

Discovery reads every span once. Each trace becomes a `TraceSummary`: for each
operation (a `(service, name)` pair, numbered in order of first appearance)
how many spans it had, the earliest end and latest start (what `before`
compares), the longest duration, whether any span failed, the operations of
its parents, and per attribute key what values it took. Facts are then mined
from these summaries, never from the spans again.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fluo_lang.otlp import load_trace_files
from fluo_lang.trace import Trace, assemble

ROOT = -1
"""Parent key of a span with no parent id."""
ORPHAN = -2
"""Parent key of a span whose parent never arrived."""
MAX_VALUES_TRACKED = 16
"""Distinct attribute values kept per trace and operation; beyond this the key is open-ended."""


@dataclass(frozen=True, slots=True)
class Op:
    """An operation: a span name within one service."""

    service: str
    name: str


def value_kind(v: Any) -> str:
    """The kind of an attribute value as the evaluator compares it: str, num, bool, or other."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "num"
    if isinstance(v, float):
        return "num" if math.isfinite(v) else "other"
    if isinstance(v, str):
        return "str"
    return "other"


class AttrSeen:
    """One attribute key on the spans of one operation in one trace."""

    __slots__ = ("empty", "hi", "kinds", "lo", "spans", "values")

    def __init__(self) -> None:
        self.spans = 0
        self.empty = False
        self.kinds: set[str] = set()
        self.values: set[Any] | None = set()
        self.lo: float | None = None
        self.hi: float | None = None

    def add(self, v: Any) -> None:
        self.spans += 1
        kind = value_kind(v)
        self.kinds.add(kind)
        if kind == "other":
            self.values = None
            return
        values = self.values
        if values is not None:
            values.add(v)
            if len(values) > MAX_VALUES_TRACKED:
                self.values = None
        if kind == "str" and not v:
            self.empty = True
        elif kind == "num":
            if self.lo is None or v < self.lo:
                self.lo = v
            if self.hi is None or v > self.hi:
                self.hi = v


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
        self.attrs: dict[str, AttrSeen] = {}


@dataclass(slots=True)
class TraceSummary:
    index: int
    trace_id: str
    total: int
    ops: dict[int, OpStat]


@dataclass
class Corpus:
    """Every trace's summary plus the table of operations they refer to."""

    ops: list[Op] = field(default_factory=list)
    op_index: dict[Op, int] = field(default_factory=dict)
    traces: list[TraceSummary] = field(default_factory=list)
    spans: int = 0

    def op_id(self, service: str, name: str) -> int:
        key = Op(service, name)
        i = self.op_index.get(key)
        if i is None:
            i = len(self.ops)
            self.ops.append(key)
            self.op_index[key] = i
        return i

    @property
    def services(self) -> list[str]:
        return sorted({o.service for o in self.ops})

    def ops_of(self, service: str) -> list[int]:
        return [i for i, o in enumerate(self.ops) if o.service == service]

    def name_is_unique(self, op: int) -> bool:
        """Whether no other service has an operation of the same name."""
        name = self.ops[op].name
        return sum(1 for o in self.ops if o.name == name) == 1


def summarize(traces: Iterable[Trace], *, attributes: bool = True) -> Corpus:
    """One pass over every span of every trace."""
    corpus = Corpus()
    op_id = corpus.op_id
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
            st.parents.add(span_op.get(pid, ORPHAN) if pid else ROOT)
            if attributes:
                attrs = st.attrs
                for k, v in s.attributes.items():
                    seen = attrs.get(k)
                    if seen is None:
                        seen = attrs[k] = AttrSeen()
                    seen.add(v)
        corpus.traces.append(TraceSummary(len(corpus.traces), trace.id_hex, len(spans), ops))
        corpus.spans += len(spans)
    return corpus


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a corpus is built.

    Loading and summarising allocate millions of small objects and no cycles
    worth collecting; left on, the collector rescans the growing heap again and
    again and takes most of the time (about 3x on 100k spans).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_corpus(paths: Sequence[str | Path], *, attributes: bool = True) -> tuple[list[Trace], Corpus]:
    """Read trace files (raises `TraceInputError`), assemble traces and summarise them."""
    with collector_paused():
        traces = assemble(load_trace_files(paths))
        return traces, summarize(traces, attributes=attributes)
