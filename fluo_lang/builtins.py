"""The one registry of roots, fields, methods and operators.

Each entry has its name, signature, documentation and implementation. The
typechecker, the compiler, the evaluator, hover, completion and the generated
language reference (`docs/language.md`) all read this table; adding a method
is one entry here and its tests.

Implementations work on the trace model's values: spans are lists of `Span`,
missing values are `None`. Field implementations take the receiver (never
`None`); method implementations take the evaluation context (the trace or
window being checked), the receiver and their arguments, where a predicate or
per-span argument arrives as a function `(ctx, span) -> value`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import copysign, fsum, isfinite
from typing import Any, Literal

from . import types as t
from .trace import Span, Trace, Window
from .values import MAX_STRING_CHARS, in_int64

ParamKind = Literal["pred", "per_span", "value"]
Impl = Callable[..., Any]
ResultFn = Callable[[Sequence[t.Type]], t.Type]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: ParamKind
    types: tuple[t.Type, ...] = ()  # accepted types for "value"/"per_span"; empty means any
    optional: bool = False


@dataclass(frozen=True, slots=True)
class Member:
    """A field (`span.name`) or method (`spans.where(P)`) of a receiver type."""

    receiver: t.Type
    name: str
    kind: Literal["field", "method"]
    result: t.Type | ResultFn
    doc: str
    impl: Impl
    params: tuple[Param, ...] = ()
    example: str = ""
    may_be_missing: bool = False
    """Whether the result can be missing with the receiver and every value argument present (`parent` of a
    root, `max` over no spans): what the typechecker knows when it judges a comparison no trace can change."""

    def result_type(self, arg_types: Sequence[t.Type]) -> t.Type:
        return self.result(arg_types) if callable(self.result) else self.result

    @property
    def signature(self) -> str:
        if self.kind == "field":
            res = self.result if isinstance(self.result, t.Type) else "T"
            return f"{self.receiver}.{self.name}: {res}"
        params = ", ".join(_param_text(p) for p in self.params)
        res = self.result if isinstance(self.result, t.Type) else _RESULT_TEXT.get(self.name, "T")
        return f"{self.receiver}.{self.name}({params}) -> {res}"


@dataclass(frozen=True, slots=True)
class Root:
    name: str
    type: t.Type
    doc: str


@dataclass(frozen=True, slots=True)
class Operator:
    symbol: str
    doc: str
    impl: Impl | None = None


def _param_text(p: Param) -> str:
    """`predicate: P` (a condition per span), `expr: E` (a value per span), or a value's own type."""
    if p.kind == "value":
        shown = [ty for ty in p.types if ty != t.ANY] or list(p.types)  # `any` there only admits attributes
        kind = " | ".join(str(ty) for ty in shown) if shown else "any"
    else:
        kind = {"pred": "P", "per_span": "E"}[p.kind]
    text = f"{p.name}: {kind}"
    return f"[{text}]" if p.optional else text


_RESULT_TEXT = {
    "sum": "type of E",
    "min": "type of E",
    "max": "type of E",
    "avg": "float | duration",
}

# ---------------------------------------------------------------------------
# Implementations


def _where(ctx: Any, spans: list[Span], pred: Impl) -> list[Span]:
    return [s for s in spans if pred(ctx, s) is True]


def _count(ctx: Any, spans: Sequence[Any], pred: Impl | None = None) -> int:
    if pred is None:
        return len(spans)
    return sum(1 for s in spans if pred(ctx, s) is True)


def _exists(ctx: Any, spans: list[Span], pred: Impl | None = None) -> bool:
    if pred is None:
        return bool(spans)
    return any(pred(ctx, s) is True for s in spans)


def _all(ctx: Any, spans: list[Span], pred: Impl) -> bool:
    return all(pred(ctx, s) is True for s in spans)


def _none(ctx: Any, spans: list[Span], pred: Impl) -> bool:
    return not any(pred(ctx, s) is True for s in spans)


def is_number(v: Any) -> bool:
    """Whether a per-span value takes part in `sum/avg/min/max`: a number, never a bool, string or missing value."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def _numbers(ctx: Any, spans: list[Span], fn: Impl) -> list[int | float]:
    out: list[int | float] = []
    for s in spans:
        v = fn(ctx, s)
        if is_number(v):
            out.append(v)
    return out


_FLOAT_EXACT = 1 << 53
"""Integers up to this size convert to a float exactly."""


def _float_total(values: Sequence[int | float]) -> tuple[int, int]:
    """The exact sum of finite `values` as a numerator and a denominator (a power of two)."""
    # Each number is n / d with d a power of two: one integer sum over the largest d, not a Fraction per value.
    ratios = [v.as_integer_ratio() for v in values]
    scale = max(d for _, d in ratios)
    return sum(n * (scale // d) for n, d in ratios), scale


def _rounded(numerator: int, denominator: int) -> float | None:
    """The float nearest to `numerator / denominator` (half to even), or missing past the float range."""
    try:
        return numerator / denominator  # Python divides integers correctly rounded
    except OverflowError:
        return None


def _as_floats(values: list[int | float], kinds: set[type]) -> bool:
    """Whether each of `values` (of the types `kinds`) is a float exactly (a float, or an integer no larger than
    `_FLOAT_EXACT`)."""
    return kinds == {float} or all(isinstance(v, float) or -_FLOAT_EXACT <= v <= _FLOAT_EXACT for v in values)


def _float_mean(values: list[int | float], kinds: set[type]) -> float | None:
    """The float nearest to the exact mean of finite `values`, a float among them (missing past the float range).

    The sum is written exactly as a few floats, each the rounded rest of the one before (`fsum` rounds
    correctly): with one, its float division by the count is the rounded mean; with two or three, their
    exact sum is divided; past that, or where `fsum` overflows on the way, every value's."""
    n = len(values)
    if _as_floats(values, kinds):
        rest, terms = list(values), list[float]()
        try:
            for _ in range(4):
                term = fsum(rest)
                if term == 0:  # `terms` add up to the sum exactly
                    if len(terms) < 2:
                        return terms[0] / n if terms else 0.0
                    total, scale = _float_total(terms)
                    return _rounded(total, scale * n)
                if not isfinite(term) or len(terms) == 3:
                    break
                terms.append(term)
                rest.append(-term)
        except OverflowError:  # a partial sum past the float range, though the whole may fit
            pass
    total, scale = _float_total(values)
    return _rounded(total, scale * n)


def _sum(ctx: Any, spans: list[Span], fn: Impl) -> int | float | None:
    """The exact sum, rounded once, so the order spans arrive in never changes it: integers add exactly
    (missing past 64 bits, as `+` is); with a float among them, the nearest float to the exact sum
    (missing past the float range, or if a value is NaN or infinite)."""
    values = _numbers(ctx, spans, fn)
    kinds = set(map(type, values))
    if float not in kinds:
        return total if in_int64(total := int(sum(values))) else None
    if not all(map(isfinite, values)):
        return None
    if _as_floats(values, kinds):
        try:
            fast = fsum(values)  # correctly rounded, and each value is a float exactly
            return fast if isfinite(fast) else None
        except OverflowError:  # a partial sum past the float range, though the whole may fit
            pass
    return _rounded(*_float_total(values))


def _avg(ctx: Any, spans: list[Span], fn: Impl) -> float | None:
    """The exact mean rounded once (so neither the order of the values nor a sum past the float range
    changes it); missing over no values, or when one is NaN or infinite."""
    values = _numbers(ctx, spans, fn)
    if not values:
        return None
    kinds = set(map(type, values))
    if float not in kinds:
        return _rounded(int(sum(values)), len(values))
    if not all(map(isfinite, values)):
        return None
    return _float_mean(values, kinds)


def _avg_duration(ctx: Any, spans: list[Span], fn: Impl) -> int | None:
    """The mean of durations, in whole nanoseconds (half to even), as every duration is: exact, where a
    float of nanoseconds loses precision past 2**53 (a timestamp minus it was off by up to 256 ns)."""
    values = _numbers(ctx, spans, fn)
    if not values:
        return None
    if float in set(map(type, values)):
        if not all(map(isfinite, values)):
            return None
        total, scale = _float_total(values)
    else:
        total, scale = int(sum(values)), 1
    q, r = divmod(total, scale * len(values))
    return q + 1 if 2 * r > scale * len(values) or (2 * r == scale * len(values) and q % 2) else q


def _extreme(values: list[int | float], largest: bool) -> int | float | None:
    """The largest (or smallest) of `values`, the same in any order: missing over none, NaN if one is, wherever
    it stands (as IEEE 754's `maximum`), and of equal values the integer (`5` over `5.0`), then `0.0` over
    `-0.0` for the largest and `-0.0` for the smallest."""
    if not values:
        return None
    if float not in set(map(type, values)):
        return max(values) if largest else min(values)
    if any(v != v for v in values):
        return float("nan")
    best = max(values) if largest else min(values)
    sign = 1.0 if largest else -1.0
    return max((v for v in values if v == best), key=lambda v: (type(v) is int, sign * copysign(1.0, v)))


def _min(ctx: Any, spans: list[Span], fn: Impl) -> int | float | None:
    return _extreme(_numbers(ctx, spans, fn), largest=False)


def _max(ctx: Any, spans: list[Span], fn: Impl) -> int | float | None:
    return _extreme(_numbers(ctx, spans, fn), largest=True)


def _min_duration(ctx: Any, spans: list[Span], fn: Impl) -> int | float | None:
    """`min` of durations or timestamps: integer nanoseconds, never NaN, so no tie or NaN to settle: Python's
    `min` as it is."""
    values = _numbers(ctx, spans, fn)
    return min(values) if values else None


def _max_duration(ctx: Any, spans: list[Span], fn: Impl) -> int | float | None:
    """`max` of durations or timestamps, as `_min_duration`."""
    values = _numbers(ctx, spans, fn)
    return max(values) if values else None


TYPED_IMPLS: dict[tuple[Impl, t.Type], Impl] = {
    (_avg, t.DURATION): _avg_duration,
    (_min, t.DURATION): _min_duration,
    (_max, t.DURATION): _max_duration,
    (_min, t.TIMESTAMP): _min_duration,
    (_max, t.TIMESTAMP): _max_duration,
}
"""A method whose implementation depends on its result type: the registry's one, and the one used for that type."""


def _before(ctx: Any, a: list[Span], b: list[Span]) -> bool:
    """Some span of `a` ends no later than some span of `b` starts."""
    if not a or not b:
        return False
    return min(s.end for s in a) <= max(s.start for s in b)


def _after(ctx: Any, a: list[Span], b: list[Span]) -> bool:
    """Some span of `a` starts no earlier than some span of `b` ends."""
    if not a or not b:
        return False
    return max(s.start for s in a) >= min(s.end for s in b)


def _has(ctx: Any, root: Trace | Window, pred: Impl) -> list[Span]:
    return [s for s in root.spans if pred(ctx, s) is True]


def _root_count(ctx: Any, root: Trace | Window, pred: Impl) -> int:
    return sum(1 for s in root.spans if pred(ctx, s) is True)


def _parent(span: Span) -> Span | None:
    return span.trace.parent_of(span) if span.trace is not None else None


def _children(span: Span) -> list[Span]:
    return span.trace.children_of(span) if span.trace is not None else []


def _descendants(span: Span) -> list[Span]:
    return span.trace.descendants_of(span) if span.trace is not None else []


def _ancestors(span: Span) -> list[Span]:
    return span.trace.ancestors_of(span) if span.trace is not None else []


def _str_method(fn: Callable[..., Any]) -> Impl:
    def impl(ctx: Any, recv: Any, *args: Any) -> Any:
        if not isinstance(recv, str) or any(not isinstance(a, str) for a in args):
            return None
        return fn(recv, *args)

    return impl


def _length(ctx: Any, recv: Any) -> int | None:
    """A string's characters; an attribute holding a list (an OTLP array), its items; missing for other kinds."""
    return len(recv) if isinstance(recv, str | list) else None


def _items(ctx: Any, recv: Any) -> int | None:
    """An attribute holding a list (an OTLP array): its items, as `_length`; missing for other kinds, a string
    too (a string has no `count()`: its characters are `length()`)."""
    return len(recv) if isinstance(recv, list) else None


def _sum_type(args: Sequence[t.Type]) -> t.Type:
    return args[0] if args and args[0] in (t.INT, t.FLOAT, t.DURATION) else t.ANY


def _extreme_type(args: Sequence[t.Type]) -> t.Type:
    return args[0] if args and args[0] in (t.INT, t.FLOAT, t.DURATION, t.TIMESTAMP) else t.ANY


def _avg_type(args: Sequence[t.Type]) -> t.Type:
    if args and args[0] == t.DURATION:
        return t.DURATION
    return t.FLOAT if args and t.is_numeric(args[0]) else t.ANY


_NUM = (t.INT, t.FLOAT, t.DURATION, t.ANY)
PRED = Param("predicate", "pred")
OPT_PRED = Param("predicate", "pred", optional=True)
PER_SPAN = Param("value", "per_span", _NUM)
PER_SPAN_ORDERED = Param("value", "per_span", (t.INT, t.FLOAT, t.DURATION, t.TIMESTAMP, t.ANY))
"""What `min` and `max` take: what `sum` does, and timestamps (the earliest start, the latest end)."""

# ---------------------------------------------------------------------------
# The table

ROOTS: dict[str, Root] = {
    r.name: r
    for r in (
        Root("trace", t.TRACE, "The trace being checked: every span that shares one trace id."),
        Root(
            "window",
            t.WINDOW,
            "In a rule with `window D`: the spans of every trace completed in one tumbling window.",
        ),
        Root("it", t.SPAN, "Inside a predicate: the span being tested (bare names are its fields)."),
    )
}


def _field(
    recv: t.Type, name: str, result: t.Type, doc: str, impl: Impl, example: str = "", *, may_be_missing: bool = False
) -> Member:
    return Member(recv, name, "field", result, doc, impl, example=example, may_be_missing=may_be_missing)


def _method(
    recv: t.Type,
    name: str,
    params: tuple[Param, ...],
    result: t.Type | ResultFn,
    doc: str,
    impl: Impl,
    example: str = "",
    *,
    may_be_missing: bool = False,
) -> Member:
    return Member(recv, name, "method", result, doc, impl, params, example, may_be_missing)


_g = operator.attrgetter


def _duration(x: Span | Trace | Window) -> int | None:
    """A span's or trace's `duration`: missing past 64 bits of nanoseconds, as any duration is (an OTLP
    span may run from 0 to 2**64 - 1 ns); `Compiler` reads a span's inline, by the same rule."""
    d = x.duration
    return d if in_int64(d) else None


SPAN_FIELDS = (
    _field(
        t.SPAN,
        "name",
        t.STRING,
        "The span's operation name.",
        _g("name"),
        'name == "payment.charge_card"',
    ),
    _field(
        t.SPAN,
        "service",
        t.STRING,
        "The resource attribute `service.name` (`''` when the resource has none).",
        _g("service"),
        "service == 'auth'",
    ),
    _field(
        t.SPAN,
        "duration",
        t.DURATION,
        "End time minus start time; missing past 64 bits of nanoseconds (about 292 years).",
        _duration,
        "duration > 250ms",
    ),
    _field(
        t.SPAN,
        "status",
        t.STATUS,
        "Status code: `ok`, `error` or `unset`.",
        _g("status"),
        "status == error",
    ),
    _field(
        t.SPAN,
        "status_message",
        t.STRING,
        "The status description, kept only with an `error` status (OTLP gives no other status one); `''` otherwise.",
        _g("status_message"),
    ),
    _field(
        t.SPAN,
        "kind",
        t.KIND,
        "Span kind: `server`, `client`, `producer`, `consumer`, `internal` (or `unspecified`).",
        _g("kind"),
        "kind == server",
    ),
    _field(t.SPAN, "start", t.TIMESTAMP, "Start time.", _g("start")),
    _field(t.SPAN, "end", t.TIMESTAMP, "End time.", _g("end")),
    _field(t.SPAN, "trace_id", t.STRING, "The trace id, 32 lowercase hex digits.", _g("trace_id_hex")),
    _field(t.SPAN, "span_id", t.STRING, "The span id, 16 lowercase hex digits.", _g("span_id_hex")),
    _field(t.SPAN, "parent_id", t.STRING, "The parent span id (empty for a root).", _g("parent_id_hex")),
    _field(
        t.SPAN,
        "parent",
        t.SPAN,
        "The parent span; missing for a root or when it never arrived.",
        _parent,
        may_be_missing=True,
    ),
    _field(t.SPAN, "children", t.SPANS, "The spans whose parent is this span.", _children),
    _field(t.SPAN, "descendants", t.SPANS, "Every span below this one.", _descendants),
    _field(
        t.SPAN,
        "ancestors",
        t.SPANS,
        "The parent, its parent, and so on up to the root.",
        _ancestors,
    ),
    _field(
        t.SPAN,
        "attributes",
        t.MAP,
        'Span attributes by key: `attributes["odd key"]`.',
        _g("attributes"),
    ),
    _field(t.SPAN, "resource", t.MAP, "Resource attributes: `resource.host.name`.", _g("resource")),
)

SPANS_METHODS = (
    _method(t.SPANS, "where", (PRED,), t.SPANS, "The spans for which the predicate holds.", _where,
            "trace.spans.where(service == 'auth')"),
    _method(t.SPANS, "count", (OPT_PRED,), t.INT, "How many spans (that match the predicate). 0 over none.",
            _count, "trace.spans.count() < 500"),
    _method(t.SPANS, "exists", (OPT_PRED,), t.BOOL, "Whether there is any span (matching the predicate).",
            _exists),
    _method(t.SPANS, "any", (PRED,), t.BOOL, "Whether some span matches the predicate.", _exists),
    _method(t.SPANS, "all", (PRED,), t.BOOL, "Whether every span matches the predicate; true over none.",
            _all, "trace.spans.where(kind == server).all(duration < 2s)"),
    _method(t.SPANS, "none", (PRED,), t.BOOL, "Whether no span matches the predicate.", _none),
    _method(t.SPANS, "sum", (PER_SPAN,), _sum_type,
            "Sum of a numeric or duration value per span, exact and rounded once (any span order gives the same); "
            "0 over none; missing past what a number holds.",
            _sum, "trace.spans.where(name == 'db.query').sum(duration) < 1s", may_be_missing=True),
    _method(t.SPANS, "avg", (PER_SPAN,), _avg_type,
            "Mean of a value per span, the exact mean rounded once; missing over none; of durations, in whole "
            "nanoseconds (half to even).", _avg,
            may_be_missing=True),
    _method(t.SPANS, "min", (PER_SPAN_ORDERED,), _extreme_type,
            "Smallest value per span, of numbers, durations or timestamps (the earliest); missing over none.", _min,
            "trace.spans.max(end) - trace.spans.min(start) < 10m", may_be_missing=True),
    _method(t.SPANS, "max", (PER_SPAN_ORDERED,), _extreme_type,
            "Largest value per span, of numbers, durations or timestamps (the latest); missing over none.", _max,
            "trace.spans.max(duration) < 5s", may_be_missing=True),
    _method(t.SPANS, "before", (Param("other", "value", (t.SPANS,)),), t.BOOL,
            "Whether some span of these ends before (or as) some span of `other` starts.", _before,
            'trace.has(name == "fraud_check").before(trace.has(name == "charge"))'),
    _method(t.SPANS, "after", (Param("other", "value", (t.SPANS,)),), t.BOOL,
            "Whether some span of these starts after (or as) some span of `other` ends.", _after),
)  # fmt: skip

_ROOT_COMMON = (
    ("spans", t.SPANS, "Every span.", _g("spans")),
    ("duration", t.DURATION, "From the earliest start to the latest end.", _duration),
    ("start", t.TIMESTAMP, "The earliest span start.", _g("start")),
    ("end", t.TIMESTAMP, "The latest span end.", _g("end")),
)
_WINDOW_BOUNDS = {  # a window's own bounds, as its signals' `window_start`/`window_end`, spans or not
    "duration": "The window's length (`window D`).",
    "start": "The window's start (its signals' `window_start`).",
    "end": "The window's end (its signals' `window_end`).",
}

TRACE_MEMBERS = (
    *(_field(t.TRACE, n, ty, doc, impl) for n, ty, doc, impl in _ROOT_COMMON),
    _field(t.TRACE, "root", t.SPAN,
           "The span with no parent id (the earliest if several, ties by span id); missing if none. A span whose "
           "parent id names a span that never arrived, or itself, is not a root.",
           _g("root"), may_be_missing=True),
    _field(t.TRACE, "id", t.STRING, "The trace id, 32 lowercase hex digits.", _g("id_hex")),
    _field(t.TRACE, "services", t.list_of(t.STRING),
           "Service names, in order of first appearance (by start time, then span id).", _g("services")),
    _method(t.TRACE, "has", (PRED,), t.SPANS,
            "The spans matching the predicate (`trace.spans.where(P)`); in boolean position, whether any does.",
            _has, 'trace.has(name == "payment.fraud_check")'),
    _method(t.TRACE, "count", (PRED,), t.INT, "How many spans match: `trace.spans.where(P).count()`.",
            _root_count, "trace.count(status == error) == 0"),
)  # fmt: skip

WINDOW_MEMBERS = (
    *(_field(t.WINDOW, n, ty, _WINDOW_BOUNDS.get(n, doc), impl) for n, ty, doc, impl in _ROOT_COMMON),
    _field(t.WINDOW, "traces", t.TRACES, "The traces completed in the window.", _g("traces")),
    _method(t.WINDOW, "has", (PRED,), t.SPANS, "The window's spans matching the predicate.", _has),
    _method(t.WINDOW, "count", (PRED,), t.INT, "How many of the window's spans match.", _root_count),
)  # fmt: skip

OTHER_MEMBERS = (
    _method(t.TRACES, "count", (), t.INT, "How many traces.", _count, "window.traces.count() > 0"),
    _method(t.list_of(t.ANY), "count", (), t.INT, "How many items.", _count, "trace.services.count() <= 8"),
    _method(t.list_of(t.ANY), "length", (), t.INT, "How many items, as `count()`.",
            _count, "trace.services.length() <= 8"),
    _method(t.STRING, "starts_with", (Param("prefix", "value", (t.STRING, t.ANY)),), t.BOOL,
            "Whether the string starts with `prefix`.", _str_method(str.startswith)),
    _method(t.STRING, "ends_with", (Param("suffix", "value", (t.STRING, t.ANY)),), t.BOOL,
            "Whether the string ends with `suffix`.", _str_method(str.endswith)),
    _method(t.STRING, "lower", (), t.STRING,
            "The string in lower case (Unicode's full mapping).", _str_method(str.lower)),
    _method(t.STRING, "upper", (), t.STRING,
            "The string in upper case (Unicode's full mapping: `'ß'.upper()` is `'SS'`).", _str_method(str.upper)),
    _method(t.STRING, "length", (), t.INT,
            "Number of characters; of an attribute holding a list (an OTLP array), its number of items.", _length,
            "cart.items.length() <= 10"),
    _method(t.ANY, "count", (), t.INT,
            "Of an attribute holding a list (an OTLP array), its number of items, as `length()`; missing for any "
            "other kind, a string too (its characters are `length()`).", _items, "cart.items.count() <= 10",
            may_be_missing=True),
)  # fmt: skip

MEMBERS: tuple[Member, ...] = (
    *SPAN_FIELDS,
    *SPANS_METHODS,
    *TRACE_MEMBERS,
    *WINDOW_MEMBERS,
    *OTHER_MEMBERS,
)

_BY_RECEIVER: dict[str, dict[str, Member]] = {}
for _m in MEMBERS:
    _BY_RECEIVER.setdefault(_m.receiver.name, {})[_m.name] = _m
_BY_RECEIVER[t.ANY.name] = {**_BY_RECEIVER[t.STRING.name], **_BY_RECEIVER[t.ANY.name]}


def members_of(receiver: t.Type) -> dict[str, Member]:
    """Fields and methods of a type. `any` values offer the string methods, and `count()` of a list."""
    return _BY_RECEIVER.get(receiver.name, {})


def lookup(receiver: t.Type, name: str) -> Member | None:
    return members_of(receiver).get(name)


INLINE_METHODS: dict[Impl, str] = {
    _where: "where",
    _count: "count",
    _exists: "exists",
    _all: "all",
    _none: "none",
    _has: "has",
    _root_count: "root_count",
}
"""Implementations the evaluator may write out as inline loops instead of calling.

Keyed by the function itself: a wrapped implementation (the evaluation budget's
metering wraps them) is not in this table and is called as it is.
"""

SPAN_SLOTS: dict[str, str] = {
    m.name: m.name
    for m in SPAN_FIELDS
    if m.name in ("name", "service", "status", "status_message", "kind", "start", "end")
}
"""Span fields that are plain attributes of `trace.Span`, which the evaluator may read directly."""

SPAN_FIELD_NAMES = tuple(m.name for m in SPAN_FIELDS)

OPERATORS: tuple[Operator, ...] = (
    Operator("==", "Equal. A comparison with a missing value is false.", operator.eq),
    Operator("!=", "Not equal. A comparison with a missing value is false.", operator.ne),
    Operator("<", "Less than (numbers, durations, timestamps, strings).", operator.lt),
    Operator("<=", "Less than or equal.", operator.le),
    Operator(">", "Greater than.", operator.gt),
    Operator(">=", "Greater than or equal.", operator.ge),
    Operator("and", "Both hold. Binds tighter than `or`."),
    Operator("or", "Either holds."),
    Operator("not", "Negation. Binds tighter than `and`; `not x in L` is `not (x in L)`."),
    Operator(
        "in",
        "Membership in a list: `http.response.status_code in [500, 503]`, as `==` with each item (of the value's own "
        "kind). Not for text in a string: that is `contains`.",
    ),
    Operator(
        "not in",
        "Not a member of a list, as `!=` with each item: false for a missing value, and for a value "
        'none of whose kind the list holds (an attribute holding "500" is not `not in [500]`).',
    ),
    Operator("contains", "Substring of a string, or member of a list: `trace.services contains 'auth'`."),
    Operator("matches", "Regular expression search (RE2 syntax, linear time): `name matches '^GET /'`."),
    Operator(
        "+",
        f"Add numbers or durations; join strings (missing past {MAX_STRING_CHARS:,} characters); timestamp + duration.",
        operator.add,
    ),
    Operator("-", "Subtract numbers or durations; timestamp - timestamp is a duration.", operator.sub),
    Operator("*", "Multiply numbers; duration * number.", operator.mul),
    Operator("/", "Divide; int / int is a float; division by zero is missing.", operator.truediv),
)
OPERATOR_BY_SYMBOL = {o.symbol: o for o in OPERATORS}

# ---------------------------------------------------------------------------
# Other languages' names
#
# What a rule author brings from elsewhere (JavaScript, Python, SQL, OpenTelemetry's
# constants) and FLUO writes otherwise: the typechecker offers the FLUO name as the
# fix when it checks at that place. Keyed by what the name is looked up on: a receiver
# type's name (`spans`, `string`, `list`, ...), an enum's (`status`, `kind`), or
# `severity`. Keys are matched in any case; a value may be a path (`spans.count`).

FOREIGN_NAMES: dict[str, dict[str, str]] = {
    "spans": {
        "size": "count",
        "length": "count",
        "len": "count",
        "filter": "where",
        "select": "where",
        "findAll": "where",
        "some": "any",
        "every": "all",
    },
    "trace": {"size": "spans.count", "length": "spans.count", "len": "spans.count", "filter": "has"},
    "window": {"size": "spans.count", "length": "spans.count", "len": "spans.count", "filter": "has"},
    "traces": {"size": "count", "length": "count", "len": "count"},
    "list": {"size": "count", "len": "count"},
    "string": {
        "count": "length",
        "len": "length",
        "size": "length",
        "toLowerCase": "lower",
        "toLower": "lower",
        "lowercase": "lower",
        "toUpperCase": "upper",
        "toUpper": "upper",
        "uppercase": "upper",
        "startsWith": "starts_with",
        "hasPrefix": "starts_with",
        "endsWith": "ends_with",
        "hasSuffix": "ends_with",
    },
    "span": {  # bare names that read as attributes; spelled with a dot (`http.status_code`) they are attributes
        "service_name": "service",
        "serviceName": "service",
        "status_code": "status",
        "statusCode": "status",
        "span_name": "name",
        "spanName": "name",
        "span_kind": "kind",
        "spanKind": "kind",
    },
    "status": {
        "STATUS_CODE_OK": "ok",
        "STATUS_CODE_ERROR": "error",
        "STATUS_CODE_UNSET": "unset",
    },
    "kind": {
        "SPAN_KIND_SERVER": "server",
        "SPAN_KIND_CLIENT": "client",
        "SPAN_KIND_PRODUCER": "producer",
        "SPAN_KIND_CONSUMER": "consumer",
        "SPAN_KIND_INTERNAL": "internal",
        "SPAN_KIND_UNSPECIFIED": "unspecified",
    },
    "severity": {"warn": "warning", "crit": "critical", "fatal": "critical", "err": "error"},
}


def foreign_name(where: str, name: str) -> str | None:
    """FLUO's name for another language's `name` on `where` (a key of `FOREIGN_NAMES`), if it has one."""
    return next((v for k, v in FOREIGN_NAMES.get(where, {}).items() if k.lower() == name.lower()), None)
