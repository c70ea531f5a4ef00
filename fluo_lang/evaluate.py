"""The one evaluator: IR to Python closures, run over traces and windows, giving signals.

Every IR node becomes a closure `(ctx, it) -> value`, where `ctx` is the trace or
window being checked and `it` the span in scope. No source code is generated:
literals are captured as constants, never spliced into text that is executed.

Missing values are `None`. A comparison with a missing value is false, and so
is one between values of different runtime types (an attribute holding "42"
is not equal to 42). A fired rule is evaluated once more, clause by clause,
to explain itself: the `observed` values and the spans that decided it.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import types as t
from .builtins import Member
from .cost import BudgetExhausted, Meter
from .ir import Node, RuleIR
from .regex import compile_regex
from .trace import Span, Trace, Window, windows_of
from .values import format_timestamp, to_json

Fn = Callable[[Any, Any], Any]
MAX_CULPRITS = 20
TRUNCATED_RULE = "fluo.evaluation_truncated"  # the signal of a trace whose evaluation budget ran out

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}
_EMPTY: list[Span] = []


def _kind(v: Any) -> str:
    """Runtime kind for comparisons: numbers compare with numbers, never with bools."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "num"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "list"
    return type(v).__name__


def _loose_compare(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        if a is None or b is None or _kind(a) != _kind(b):
            return False
        try:
            return bool(op(a, b))
        except TypeError:
            return False

    return compare


def _member(needle: Any, haystack: Any) -> bool:
    """`needle` is a substring of a string haystack, or an item of the same kind in a list."""
    if needle is None or haystack is None:
        return False
    if isinstance(haystack, str):
        return isinstance(needle, str) and needle in haystack
    if isinstance(haystack, list):
        k = _kind(needle)
        return any(_kind(x) == k and x == needle for x in haystack)
    return False


def _nested(m: Any, key: str) -> Any:
    """`a.b.c` through nested maps, for attributes sent as key-value lists."""
    cur = m
    for part in key.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _read(m: Any, key: str) -> Any:
    if not isinstance(m, dict):
        return None
    v = m.get(key)
    if v is None and "." in key:
        return _nested(m, key)
    return v


class Compiler:
    """Turns IR nodes into closures; keeps them by node so `explain` reuses the same ones."""

    def __init__(self, attribute_keys: frozenset[str] = frozenset()) -> None:
        self.fns: dict[int, Fn] = {}
        self.attribute_keys = attribute_keys

    def fn(self, node: Node) -> Fn:
        f = self.fns.get(id(node))
        if f is None:
            f = getattr(self, "op_" + node.op)(node)
            self.fns[id(node)] = f
        return f

    def op_const(self, n: Node) -> Fn:
        v = n.value
        return lambda ctx, it: v

    def op_list(self, n: Node) -> Fn:
        items = [self.fn(a) for a in n.args]
        if all(a.op == "const" for a in n.args):
            values = [a.value for a in n.args]
            return lambda ctx, it: values
        return lambda ctx, it: [f(ctx, it) for f in items]

    def op_root(self, n: Node) -> Fn:
        return lambda ctx, it: ctx

    def op_it(self, n: Node) -> Fn:
        return lambda ctx, it: it

    def op_fn(self, n: Node) -> Fn:
        return self.fn(n.args[0])

    def op_get(self, n: Node) -> Fn:
        impl = n.value.impl
        target = n.args[0]
        if target.op == "it":
            return lambda ctx, it: impl(it) if it is not None else None
        if target.op == "root":
            return lambda ctx, it: impl(ctx)
        tf = self.fn(target)

        def get(ctx: Any, it: Any) -> Any:
            x = tf(ctx, it)
            return None if x is None else impl(x)

        return get

    def op_attr(self, n: Node) -> Fn:
        key: str = n.value
        target = n.args[0]
        head, dot, rest = key.partition(".")
        wanted = self.attribute_keys

        def read(s: Span) -> Any:
            # A flat dotted key as OpenTelemetry writes it, else a path through nested maps.
            v = s.attr(key, wanted)
            if v is None and dot:
                inner = s.attr(head, wanted)
                if isinstance(inner, dict):
                    return _read(inner, rest)
            return v

        if target.op == "it":
            return lambda ctx, it: read(it) if it is not None else None
        tf = self.fn(target)

        def attr(ctx: Any, it: Any) -> Any:
            s = tf(ctx, it)
            return read(s) if isinstance(s, Span) else None

        return attr

    def op_map_get(self, n: Node) -> Fn:
        key: str = n.value
        tf = self.fn(n.args[0])
        return lambda ctx, it: _read(tf(ctx, it), key)

    def op_index(self, n: Node) -> Fn:
        tf, kf = self.fn(n.args[0]), self.fn(n.args[1])

        def index(ctx: Any, it: Any) -> Any:
            m, k = tf(ctx, it), kf(ctx, it)
            if isinstance(m, dict) and isinstance(k, str):
                return m.get(k)
            if isinstance(m, list) and isinstance(k, int) and not isinstance(k, bool) and -len(m) <= k < len(m):
                return m[k]
            return None

        return index

    def op_call(self, n: Node) -> Fn:
        member: Member = n.value
        impl = member.impl
        rf = self.fn(n.args[0])
        params = member.params
        fixed: list[Fn] = []
        values: list[Fn] = []
        for arg, param in zip(n.args[1:], params, strict=False):
            (fixed if param.kind != "value" else values).append(self.fn(arg))
        if not values:
            if not fixed:
                return lambda ctx, it: None if (r := rf(ctx, it)) is None else impl(ctx, r)
            if len(fixed) == 1:
                p = fixed[0]
                return lambda ctx, it: None if (r := rf(ctx, it)) is None else impl(ctx, r, p)
            return lambda ctx, it: None if (r := rf(ctx, it)) is None else impl(ctx, r, *fixed)

        def call(ctx: Any, it: Any) -> Any:
            r = rf(ctx, it)
            if r is None:
                return None
            args = [f(ctx, it) for f in values]
            if any(a is None for a in args):
                return None
            return impl(ctx, r, *args)

        return call

    def op_exists(self, n: Node) -> Fn:
        f = self.fn(n.args[0])
        if n.args[0].type == t.SPAN:
            return lambda ctx, it: f(ctx, it) is not None
        return lambda ctx, it: bool(f(ctx, it))

    def op_and(self, n: Node) -> Fn:
        a, b = self.fn(n.args[0]), self.fn(n.args[1])
        return lambda ctx, it: a(ctx, it) is True and b(ctx, it) is True

    def op_or(self, n: Node) -> Fn:
        a, b = self.fn(n.args[0]), self.fn(n.args[1])
        return lambda ctx, it: a(ctx, it) is True or b(ctx, it) is True

    def op_not(self, n: Node) -> Fn:
        a = self.fn(n.args[0])
        return lambda ctx, it: a(ctx, it) is not True

    def op_cmp(self, n: Node) -> Fn:
        left, right = n.args
        strict = left.type not in (t.ANY, t.ERROR) and right.type not in (t.ANY, t.ERROR)
        op = _CMP[n.value] if strict else _loose_compare(_CMP[n.value])
        lf = self.fn(left)
        if right.op == "const" and strict:
            c = right.value
            return lambda ctx, it: (a := lf(ctx, it)) is not None and op(a, c)
        if right.op == "const" and right.value is not None:
            # An attribute against a literal: only values of the literal's own kind compare.
            c = right.value
            exact = _CMP[n.value]
            kinds = (bool,) if isinstance(c, bool) else (int, float) if isinstance(c, int | float) else (type(c),)
            is_bool = isinstance(c, bool)
            return lambda ctx, it: (
                isinstance(a := lf(ctx, it), kinds) and (is_bool or not isinstance(a, bool)) and exact(a, c)
            )
        rf = self.fn(right)
        if strict:
            return lambda ctx, it: (a := lf(ctx, it)) is not None and (b := rf(ctx, it)) is not None and op(a, b)
        return lambda ctx, it: op(lf(ctx, it), rf(ctx, it))

    def op_in(self, n: Node) -> Fn:
        lf, rf = self.fn(n.args[0]), self.fn(n.args[1])
        right = n.args[1]
        if right.op == "list" and all(a.op == "const" for a in right.args):
            kinds = {(_kind(a.value), a.value) for a in right.args}
            return lambda ctx, it: (a := lf(ctx, it)) is not None and (_kind(a), a) in kinds

        return lambda ctx, it: _member(lf(ctx, it), rf(ctx, it))

    def op_not_in(self, n: Node) -> Fn:
        inner = self.op_in(n)
        lf, rf = self.fn(n.args[0]), self.fn(n.args[1])
        return lambda ctx, it: lf(ctx, it) is not None and rf(ctx, it) is not None and not inner(ctx, it)

    def op_contains(self, n: Node) -> Fn:
        lf, rf = self.fn(n.args[0]), self.fn(n.args[1])
        return lambda ctx, it: _member(rf(ctx, it), lf(ctx, it))

    def op_matches(self, n: Node) -> Fn:
        pattern = compile_regex(n.value)
        lf = self.fn(n.args[0])
        search = pattern.search
        return lambda ctx, it: isinstance(s := lf(ctx, it), str) and search(s) is not None

    def op_arith(self, n: Node) -> Fn:
        op = _ARITH[n.value]
        lf, rf = self.fn(n.args[0]), self.fn(n.args[1])
        to_int = n.type in (t.DURATION, t.TIMESTAMP)

        def arith(ctx: Any, it: Any) -> Any:
            a, b = lf(ctx, it), rf(ctx, it)
            if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
                return None
            try:
                v = op(a, b)
            except (TypeError, ZeroDivisionError, OverflowError):
                return None
            return round(v) if to_int and isinstance(v, float) else v

        return arith

    def op_neg(self, n: Node) -> Fn:
        f = self.fn(n.args[0])

        def neg(ctx: Any, it: Any) -> Any:
            v = f(ctx, it)
            return -v if isinstance(v, int | float) and not isinstance(v, bool) else None

        return neg

    def op_lookup(self, n: Node) -> Fn:
        fld, value = n.value
        rf = self.fn(n.args[0])
        return lambda ctx, it: rf(ctx, it).index(fld).get(value, _EMPTY)


@dataclass
class Signal:
    """One rule firing on one trace (or window), as LANGUAGE.md §7 describes."""

    rule: str
    severity: str
    message: str
    trace_id: str | None
    span_ids: list[str]
    observed: dict[str, Any]
    time: str
    window_start: str | None = None
    window_end: str | None = None
    name: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
        }
        if self.window_start is not None:
            out["window_start"] = self.window_start
            out["window_end"] = self.window_end
        else:
            out["trace_id"] = self.trace_id
        out["span_ids"] = self.span_ids
        out["observed"] = self.observed
        out["time"] = self.time
        if self.name and self.name != self.rule:
            out["name"] = self.name
        if self.description:
            out["description"] = self.description
        if self.tags:
            out["tags"] = list(self.tags)
        if self.source:
            out["source"] = self.source
        return out


@dataclass
class EvalError:
    """A rule that raised while being evaluated: a bug to report, never a silent pass."""

    rule: str
    trace_id: str | None
    message: str


class CompiledRule:
    def __init__(self, ir: RuleIR, compiler: Compiler) -> None:
        self.ir = ir
        self.compiler = compiler
        cond = compiler.fn(ir.condition)
        if ir.mode == "expect":
            self.fires: Callable[[Any], bool] = lambda ctx: cond(ctx, None) is not True
        elif ir.mode == "detect":
            self.fires = lambda ctx: cond(ctx, None) is True
        else:
            always = compiler.fn(ir.always) if ir.always is not None else None
            never = compiler.fn(ir.never) if ir.never is not None else None

            def fires(ctx: Any) -> bool:
                if cond(ctx, None) is not True:
                    return False
                if always is not None and always(ctx, None) is not True:
                    return True
                return never is not None and never(ctx, None) is True

            self.fires = fires

    @property
    def id(self) -> str:
        return self.ir.id

    def clause_text(self, node: Node) -> str:
        rule = self.ir
        start = node.span.start - rule.span.start
        end = node.span.end - rule.span.start
        return " ".join(rule.source[start:end].split())

    # -- explanation -------------------------------------------------------

    def explain(self, ctx: Any) -> tuple[dict[str, Any], list[Span], str, str]:
        """The observed values, the culprit spans, a one-line summary and its short reason."""
        ir = self.ir
        obs: dict[str, Any] = {}
        culprits: list[Span] = []
        if ir.mode in ("expect", "detect"):
            self._explain(ir.condition, ctx, obs, culprits)
            verb = "expected" if ir.mode == "expect" else "detected"
            what = self.clause_text(ir.condition)
            reason = _observed_text(obs)
            summary = f"{verb} {what}" + (f": {reason}" if reason else "")
            return obs, culprits, summary, reason
        obs["when"] = True
        self._culprits_of(ir.condition, ctx, culprits)
        parts = []
        if ir.always is not None:
            held = self.compiler.fn(ir.always)(ctx, None) is True
            obs["always"] = held
            if not held:
                parts.append(f"always {{ {self.clause_text(ir.always)} }} did not hold")
        if ir.never is not None:
            held = self.compiler.fn(ir.never)(ctx, None) is True
            obs["never"] = held
            if held:
                self._culprits_of(ir.never, ctx, culprits)
                parts.append(f"never {{ {self.clause_text(ir.never)} }} held")
        reason = " and ".join(parts)
        summary = f"when {{ {self.clause_text(ir.condition)} }}: {reason}"
        return obs, culprits, summary, reason

    def _explain(self, n: Node, ctx: Any, obs: dict[str, Any], culprits: list[Span]) -> None:
        fn = self.compiler.fn
        if n.op in ("and", "or", "not"):
            for a in n.args:
                self._explain(a, ctx, obs, culprits)
            return
        if n.op == "cmp":
            left, right = n.args
            lname = _label(left)
            rname = "bound" if right.op == "const" else _label(right)
            if rname == lname:
                lname, rname = "left", "right"
            _put(obs, lname, to_json(fn(left)(ctx, None), left.type.name))
            _put(obs, rname, to_json(fn(right)(ctx, None), right.type.name))
            self._culprits_of(left, ctx, culprits)
            self._culprits_of(right, ctx, culprits)
            return
        if n.op == "call" and n.value.name in ("all", "none", "exists", "any") and len(n.args) > 1:
            spans = fn(n.args[0])(ctx, None) or []
            pred = fn(n.args[1])
            if n.value.name == "all":
                bad = [s for s in spans if pred(ctx, s) is not True]
                _put(obs, "violations", len(bad))
            else:
                bad = [s for s in spans if pred(ctx, s) is True]
                _put(obs, "matched", len(bad))
            _put(obs, "checked", len(spans))
            culprits.extend(bad)
            return
        if n.op == "call" and n.value.name == "exists":
            spans = fn(n.args[0])(ctx, None) or []
            _put(obs, "matched", len(spans))
            culprits.extend(spans)
            return
        if n.op == "call" and n.value.name in ("before", "after"):
            first: list[Span] = fn(n.args[0])(ctx, None) or []
            second: list[Span] = fn(n.args[1])(ctx, None) or []
            _put(obs, n.value.name, fn(n)(ctx, None))
            _put(obs, "left_spans", len(first))
            _put(obs, "right_spans", len(second))
            culprits.extend(first)
            culprits.extend(second)
            return
        if n.op == "exists" or n.type == t.SPANS:
            self._culprits_of(n, ctx, culprits)
            value = fn(n.args[0] if n.op == "exists" else n)(ctx, None)
            _put(obs, "matched", len(value) if isinstance(value, list) else int(value is not None))
            return
        _put(obs, _label(n), to_json(fn(n)(ctx, None), n.type.name))
        self._culprits_of(n, ctx, culprits)

    def _culprits_of(self, n: Node, ctx: Any, culprits: list[Span]) -> None:
        """The spans an expression was computed from: the set under a count, the root under a field."""
        cur: Node | None = n
        while cur is not None:
            if cur.op == "call" and cur.value.name in ("min", "max") and len(cur.args) == 2:
                best = self.compiler.fn(cur)(ctx, None)
                spans = self.compiler.fn(cur.args[0])(ctx, None) or []
                per_span = self.compiler.fn(cur.args[1])
                culprits.extend(s for s in spans if best is not None and per_span(ctx, s) == best)
                return
            if cur.type in (t.SPANS, t.SPAN) and cur.op != "it":
                v = self.compiler.fn(cur)(ctx, None)
                if isinstance(v, list):
                    culprits.extend(v)
                elif isinstance(v, Span):
                    culprits.append(v)
                return
            cur = cur.args[0] if cur.args and cur.op not in ("fn", "root") else None


def _put(obs: dict[str, Any], key: str, value: Any) -> None:
    if key in obs and obs[key] != value:
        i = 2
        while f"{key}_{i}" in obs:
            i += 1
        key = f"{key}_{i}"
    obs[key] = value


def _label(n: Node) -> str:
    if n.op in ("call", "get") and isinstance(n.value, Member):
        return n.value.name
    if n.op in ("attr", "map_get"):
        return str(n.value)
    if n.op == "const":
        return "bound"
    if n.op == "lookup":
        return "spans"
    return "value"


def _observed_text(obs: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in obs.items())


def _unique_ids(spans: Iterable[Span]) -> list[str]:
    seen: dict[bytes, None] = {}
    for s in spans:
        seen.setdefault(s.span_id, None)
        if len(seen) >= MAX_CULPRITS:
            break
    return [sid.hex() for sid in seen]


def attribute_keys(rules: list[RuleIR]) -> frozenset[str]:
    """Every span attribute key the rules read by name (and the first segment of dotted keys)."""
    keys: set[str] = set()
    for rule in rules:
        for _, clause in rule.clauses():
            for n in clause.walk():
                if n.op == "attr":
                    keys.add(n.value)
                    keys.add(n.value.partition(".")[0])
    return frozenset(keys)


class Program:
    """A compiled rule set: evaluates traces (per-trace rules) and windows (windowed rules).

    With a `budget`, one trace (or window) may spend at most that many span visits
    (see `cost.py`); past it the rules not yet finished are skipped and a
    `fluo.evaluation_truncated` signal names them. Without one, nothing is counted.
    """

    def __init__(self, rules: list[RuleIR], budget: int | None = None) -> None:
        self.meter = Meter(budget) if budget is not None else None
        if self.meter is not None:
            rules = [self.meter.instrument(r) for r in rules]
        compiler = Compiler(attribute_keys(rules))
        self.rules = [CompiledRule(r, compiler) for r in rules]
        self.trace_rules = [r for r in self.rules if r.ir.window_ns is None]
        self.window_rules = [r for r in self.rules if r.ir.window_ns is not None]
        self.errors: list[EvalError] = []

    def _signal(self, rule: CompiledRule, ctx: Any, explain: bool = True) -> Signal:
        ir = rule.ir
        if explain:
            obs, culprits, summary, reason = rule.explain(ctx)
        else:  # the evaluation budget ran out while explaining
            reason = "not explained: the evaluation budget ran out"
            obs, culprits, summary = {}, [], f"fired ({reason})"
        message = summary
        if ir.description:
            message = f"{ir.description} ({reason})" if reason else ir.description
        source = {"path": ir.path, "line": ir.span.line + 1, "column": ir.span.col + 1}
        common = dict(
            rule=ir.id,
            severity=ir.severity,
            message=message,
            span_ids=_unique_ids(culprits),
            observed=obs,
            name=ir.name,
            description=ir.description,
            tags=ir.tags,
            source=source,
        )
        if isinstance(ctx, Window):
            return Signal(
                trace_id=None,
                time=format_timestamp(ctx.end),
                window_start=format_timestamp(ctx.start),
                window_end=format_timestamp(ctx.end),
                **common,  # type: ignore[arg-type]
            )
        return Signal(trace_id=ctx.id_hex, time=format_timestamp(ctx.end), **common)  # type: ignore[arg-type]

    def _run(self, rules: list[CompiledRule], ctx: Any, trace_id: str | None) -> list[Signal]:
        if self.meter is not None:
            return self._run_metered(self.meter, rules, ctx, trace_id)
        out: list[Signal] = []
        for rule in rules:
            try:
                if rule.fires(ctx):
                    out.append(self._signal(rule, ctx))
            except Exception as exc:  # a bug in FLUO, reported per rule, never a crash
                self.errors.append(EvalError(rule.id, trace_id, f"{type(exc).__name__}: {exc}"))
        return out

    def _run_metered(self, meter: Meter, rules: list[CompiledRule], ctx: Any, trace_id: str | None) -> list[Signal]:
        out: list[Signal] = []
        meter.start()
        for i, rule in enumerate(rules):
            fired = False
            try:
                fired = rule.fires(ctx)
                if fired:
                    out.append(self._signal(rule, ctx))
            except BudgetExhausted:
                if fired:
                    out.append(self._signal(rule, ctx, explain=False))
                out.append(self._truncated(ctx, meter, [r.id for r in rules[i + 1 if fired else i :]]))
                break
            except Exception as exc:  # a bug in FLUO, reported per rule, never a crash
                self.errors.append(EvalError(rule.id, trace_id, f"{type(exc).__name__}: {exc}"))
        return out

    def _truncated(self, ctx: Any, meter: Meter, skipped: list[str]) -> Signal:
        """The signal that says a trace (or window) was not fully evaluated, and what was left out."""
        what = "window" if isinstance(ctx, Window) else f"trace {ctx.id_hex}"
        observed = {"spans": len(ctx.spans), "budget": meter.budget, "rules_skipped": skipped}
        message = (
            f"evaluation of {what} ({len(ctx.spans)} spans) stopped after its budget of {meter.budget} span visits; "
            f"{len(skipped)} rule(s) not evaluated: {', '.join(skipped[:10])}{', ...' if len(skipped) > 10 else ''}"
        )
        end = format_timestamp(ctx.end)
        if isinstance(ctx, Window):
            start = format_timestamp(ctx.start)
            return Signal(TRUNCATED_RULE, "warning", message, None, [], observed, end, start, end)
        return Signal(TRUNCATED_RULE, "warning", message, ctx.id_hex, [], observed, end)

    def evaluate_trace(self, trace: Trace) -> list[Signal]:
        return self._run(self.trace_rules, trace, trace.id_hex)

    def evaluate_window(self, window: Window, rules: list[CompiledRule] | None = None) -> list[Signal]:
        return self._run(rules if rules is not None else self.window_rules, window, None)

    def evaluate_windows(self, traces: list[Trace]) -> list[Signal]:
        """Batch mode: every windowed rule over tumbling windows of its own length."""
        out: list[Signal] = []
        by_length: dict[int, list[CompiledRule]] = {}
        for r in self.window_rules:
            assert r.ir.window_ns is not None
            by_length.setdefault(r.ir.window_ns, []).append(r)
        for length, rules in sorted(by_length.items()):
            for w in windows_of(traces, length):
                out.extend(self.evaluate_window(w, rules))
        return out

    def evaluate(self, traces: list[Trace]) -> list[Signal]:
        """Per-trace rules on each trace in order, then windowed rules."""
        out: list[Signal] = []
        for tr in traces:
            out.extend(self.evaluate_trace(tr))
        out.extend(self.evaluate_windows(traces))
        return out
