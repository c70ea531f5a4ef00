"""The one evaluator: IR to generated Python functions, run over traces and windows, giving signals.

`Compiler` writes each IR node as a Python expression over the trace or window
being checked (`ctx`) and the span in scope, and a whole rule set as one function
that returns which rules fired, sharing the per-field indexes between rules.
No text from a rule reaches that source: literals, keys, patterns and registry
implementations are bound to generated names (see `Compiler`).

Missing values are `None`. A comparison with a missing value is false, and so
is one between values of different runtime types (an attribute holding "42"
is not equal to 42). A fired rule is evaluated once more, clause by clause,
to explain itself: the `observed` values and the spans that decided it.
"""

from __future__ import annotations

import heapq
import json
import operator
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import builtins as b
from . import types as t
from .builtins import Member
from .cost import (
    BudgetExhausted,
    Meter,
    MeteredJoin,
    MeteredOperands,
    MeteredPattern,
    Poly,
    estimate,
    weighs_regexes,
    works_on_strings,
)
from .ir import Node, RuleIR
from .otlp import native_reader
from .regex import compile_regex
from .trace import MAX_EMPTY_WINDOWS, Gap, Span, Trace, Window, read_in, span_order, tumbling
from .values import (
    ARITH,
    MAX_STRING_CHARS,
    NS_LIMIT,
    arith,
    format_duration,
    format_timestamp,
    in_int64,
    negate,
    to_json,
)

Fn = Callable[[Any, Any], Any]  # (ctx, it) -> value
MAX_CULPRITS = 20
TRUNCATED_RULE = "fluo.evaluation_truncated"  # the signal of a trace whose evaluation budget ran out
TRUNCATED_SEVERITY = "warning"

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_EMPTY: list[Span] = []
_UNSET = object()
"""A shared trace-level value not computed yet (see `_Gen.shared`)."""
_INDEX_FIELDS = frozenset({"name", "service", "status", "kind"})
"""The span fields a rule set's indexes group by (`compile.use_indexes`)."""
_NO_LIMIT = 1 << 62
"""A span count standing for "any": the bound of a rule set whose cost does not grow with spans."""


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


_DEEP = frozenset({"list", "dict"})
"""Kinds whose values hold others: equal item by item (`_equal`), and not ordered."""
_UNORDERED = _DEEP | {"bool"}
"""Kinds without an order: `<` between two of them is false, as their static types have none."""


def _match(a: Any, b: Any, missing_alike: bool = False) -> bool | None:
    """`a == b` as FLUO means it: True, False, or None where a missing value stands in the way.

    Of the same kind, and lists and maps pair by pair by this same rule: unequal where
    their lengths, keys or a pair differ, else undecided (None) where a pair holds a
    missing value, as a comparison with one is false both ways (`==` and `!=`);
    `missing_alike`: a missing value is the same as another instead (never None).
    Python's own `==` takes `True` for `1` inside a list (`[True] == [1]`); here `[true]`
    equals `[1]` no more than `true` equals `1`, while `[1]` equals `[1.0]` as `1` equals `1.0`.
    """
    if a is None or b is None:
        return a is b if missing_alike else None
    k = _kind(a)
    if k != _kind(b):
        return False
    if k == "list":
        return _pairs(_match(x, y, missing_alike) for x, y in zip(a, b, strict=True)) if len(a) == len(b) else False
    if k == "dict":
        return _pairs(_match(v, b[key], missing_alike) for key, v in a.items()) if a.keys() == b.keys() else False
    return bool(a == b)


def _pairs(matches: Iterable[bool | None]) -> bool | None:
    """Lists or maps whose pairs match so: False if one differs, else None if one is undecided, else True."""
    undecided = False
    for m in matches:
        if m is False:
            return False
        undecided = undecided or m is None
    return None if undecided else True


def _equal(a: Any, b: Any) -> bool:
    """`a == b` of present values (`_match`): a missing value, or one inside a list or map, equals nothing."""
    return _match(a, b) is True


def _unequal(a: Any, b: Any) -> bool:
    """`a != b` of present values (`_match`): false where a missing value, even inside a list or map, decides."""
    return _match(a, b) is False


def _identical(a: Any, b: Any) -> bool:
    """The same value, a missing one the same as another: for `observed` to show a value once, not for rules."""
    return _match(a, b, missing_alike=True) is True


def _loose_compare(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """`op` between values of any runtime kinds: false across kinds, as with a missing value.

    Lists and maps are equal item by item (`_equal`); they and booleans have no order, as their static
    types have none (`flag > false` is false, as `true > false` is FLUO300).
    """
    equality = op is operator.eq or op is operator.ne

    def compare(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False
        k = _kind(a)
        if k != _kind(b) or (k in _UNORDERED and not equality):
            return False
        if k in _DEEP:
            return _equal(a, b) if op is operator.eq else _unequal(a, b)
        try:
            return bool(op(a, b))
        except TypeError:
            return False

    return compare


def _has_item(haystack: list[Any], needle: Any) -> bool:
    """Whether an item of the list, of the needle's own kind, equals it (`_equal`)."""
    k = _kind(needle)
    if k in _DEEP:
        return any(_equal(x, needle) for x in haystack)
    return any(_kind(x) == k and x == needle for x in haystack)


def _member(needle: Any, haystack: Any) -> bool:
    """`needle` is a substring of a string haystack, or an item of the same kind in a list."""
    if needle is None or haystack is None:
        return False
    if isinstance(haystack, str):
        return isinstance(needle, str) and needle in haystack
    if isinstance(haystack, list):
        return _has_item(haystack, needle)
    return False


def _read(m: Any, key: str) -> Any:
    """`key` in a map as a rule's name reads it (`read_in`: flat, else through maps); None for no map."""
    return read_in(m, key) if isinstance(m, dict) else None


_PY_CMP = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
"""Comparison operators as Python writes them; the IR's operator must be one of these keys."""

_BOOL_OPS = frozenset({"cmp", "and", "or", "not", "exists", "in", "not_in", "contains", "matches"})
"""Operations whose value is always True or False (never missing)."""

_ROOT_SHAPES = {"has": "where", "root_count": "count", "has_exists": "exists"}
"""Inline quantifiers over the spans of a trace or window, and the shape they take over those spans."""

_EMPTY_RESULT = {"where": "[]", "count": "0", "exists": "False", "all": "True", "none": "True"}
"""An inline quantifier's value over no spans, as Python source."""

_DECIDED = {
    # shape: (value before the loop, value once the deciding span is found, whether `not` the test decides)
    "exists": ("False", "True", False),
    "has_exists": ("False", "True", False),
    "all": ("True", "False", True),
    "none": ("True", "False", False),
}
"""Quantifiers decided by one span, written as a loop statement before the rule's test (see `_Gen.leading`)."""

_COUNTED = frozenset({"count", "root_count"})
"""Counts with a predicate, written as a loop statement before the rule's test (see `_Gen.leading`)."""

_LEADING_OPS = frozenset({"and", "or", "not", "exists", "call", "cmp"})
"""Operations whose first-evaluated operand is evaluated whenever they are: the leading position passes to it."""

MAX_INLINE_DEPTH = 24
"""Deeper sub-expressions become functions of their own, keeping Python's parser within its nesting limit."""


def _attr_of(x: Any, key: str) -> Any:
    return x.attr(key) if isinstance(x, Span) else None


def _index(m: Any, k: Any) -> Any:
    if isinstance(m, dict) and isinstance(k, str):
        return m.get(k)
    if isinstance(m, list) and isinstance(k, int) and not isinstance(k, bool) and -len(m) <= k < len(m):
        return m[k]
    return None


def _in(needle: Any, haystack: Any) -> bool:
    """`needle in haystack`: an item of the list, of the needle's own kind, equals it.

    Like `==` (`x in [a, b]` is `x == a or x == b`). A string on the right is not
    searched: that is `contains`.
    """
    if needle is None or not isinstance(haystack, list):
        return False
    return _has_item(haystack, needle)


def _not_in(needle: Any, haystack: Any) -> bool:
    """`needle not in haystack`, false wherever `!=` is: a missing needle, no list, or no item of its kind.

    For an attribute holding "500", `x != 500` is false (no comparison across kinds),
    and so is `x not in [500]`. The items of other kinds are passed over, as `in`
    passes them over; an empty list holds no item equal to anything.
    """
    if needle is None or not isinstance(haystack, list):
        return False
    k = _kind(needle)
    compared = False
    for x in haystack:
        if _kind(x) == k:
            if not _unequal(x, needle):  # equal, or undecided: `!=` is false for a missing value inside lists
                return False
            compared = True
    return compared or not haystack


_RUNTIME: dict[str, Any] = {
    "__builtins__": {
        "all": all,
        "any": any,
        "bool": bool,
        "isinstance": isinstance,
        "len": len,
        "str": str,
        "sum": sum,
    },
    "_EMPTY": _EMPTY,
    "_UNSET": _UNSET,
    "_Span": Span,
    "_attr_of": _attr_of,
    "_arith": arith,
    "_equal": _equal,
    "_unequal": _unequal,
    "_index": _index,
    "_kind": _kind,
    "_in": _in,
    "_member": _member,
    "_neg": negate,
    "_not_in": _not_in,
    "_read": _read,
}
"""Everything generated code may name besides its own constants and temporaries."""


class Compiler:
    """Turns IR into Python functions: the one evaluator.

    Each IR node is written as a Python expression over `ctx` (the trace or window
    being checked) and the span in scope; `fn(node)` gives it as a function
    `(ctx, it) -> value`, and `program(rules)` gives one function that checks a
    whole rule set and returns which rules fired. Quantifiers (`all`, `where`,
    `count`, ...) become inline loops, span fields plain attribute reads, and a
    rule set's per-field indexes (`lookup`) are fetched once per trace.

    No text from a rule reaches the generated source: every literal, key, pattern
    and registry implementation is bound to a generated name (`_k12`) in the
    functions' namespace, and the source holds only generated names, Python
    operators from fixed tables and the names of `trace.Span` slots. `sources`
    keeps every unit compiled, for tests and debugging.
    """

    def __init__(self) -> None:
        self.fns: dict[int, Fn] = {}
        self._indexers: dict[tuple[str, ...], Callable[[Any], tuple[dict[Any, list[Span]], ...]]] = {}
        self.ns: dict[str, Any] = dict(_RUNTIME)
        self.sources: list[str] = []
        self._next = 0

    def name(self, prefix: str) -> str:
        self._next += 1
        return f"{prefix}{self._next}"

    def const(self, value: Any) -> str:
        """A generated name bound to `value` in the generated code's namespace."""
        name = self.name("_k")
        self.ns[name] = value
        return name

    def define(self, source: str, name: str) -> Any:
        self.sources.append(source)
        exec(compile(source, f"<fluo {name}>", "exec"), self.ns)  # generated source: see the class docstring
        return self.ns.pop(name)

    def indexer(self, fields: tuple[str, ...]) -> Callable[[Any], tuple[dict[Any, list[Span]], ...]]:
        """A function `ctx -> (index of fields[0], ...)` building the missing ones in one pass over the spans.

        What `ctx.index(f)` gives for each field, and kept there for the next reader
        (explanations); one loop reading span slots costs a fraction of one per field.
        """
        fn = self._indexers.get(fields)
        if fn is None:
            assert all(f in _INDEX_FIELDS for f in fields), fields  # span slot names, never rule text
            keys = [self.const(f) for f in fields]
            idx = [f"_i{i}" for i in range(len(fields))]
            lines = ["    got = ctx._index"]
            lines.append(f"    {', '.join(idx)}, = " + "".join(f"got.get({k}), " for k in keys))
            lines.append("    if " + " and ".join(f"{i} is not None" for i in idx) + ":")
            lines.append(f"        return {', '.join(idx)},")
            lines.append(f"    {', '.join(idx)}, = " + "{}, " * len(idx))
            lines.append("    for s in ctx.spans:")
            for i, f in zip(idx, fields, strict=True):
                lines += [
                    f"        b = {i}.get(s.{f})",
                    "        if b is None:",
                    f"            {i}[s.{f}] = [s]",
                    "        else:",
                    "            b.append(s)",
                ]
            lines += [f"    got[{k}] = {i}" for k, i in zip(keys, idx, strict=True)]
            lines.append(f"    return {', '.join(idx)},")
            name = self.name("_indexes")
            fn = self._indexers[fields] = self.define(f"def {name}(ctx):\n" + "\n".join(lines) + "\n", name)
        return fn

    def fn(self, node: Node) -> Fn:
        """The node as a function `(ctx, it) -> value`; `it` may be None outside any predicate."""
        f = self.fns.get(id(node))
        if f is None:
            gen = _Gen(self, None)
            body = gen.expr(node.args[0] if node.op == "fn" else node, "it", 0)
            name = self.name("_node")
            f = self.define(f"def {name}(ctx, it):\n    return {body}\n", name)
            self.fns[id(node)] = f
        return f

    def rule(self, rule: RuleIR) -> Callable[[Any], bool]:
        """One rule as a function `ctx -> fired`."""
        gen = _Gen(self, {})
        fired = gen.fires(rule)
        name = self.name("_rule")
        return self.define(gen.function(name, [f"return {fired}"]), name)  # type: ignore[no-any-return]

    def program(self, rules: list[RuleIR]) -> Callable[[Any], list[int]]:
        """A rule set as one function `ctx -> positions of the rules that fired`, sharing index reads."""
        gen = _Gen(self, {})
        gen.buckets = {}
        body = ["fired = []"]
        for i, rule in enumerate(rules):
            body += gen.fires_statements(rule, f"fired.append({i})")
        for bucket in gen.buckets.values():
            body += bucket.statements()
        if gen.buckets:
            body.append("fired.sort()")  # rules sharing a bucket ran together, out of order
        body.append("return fired")
        name = self.name("_program")
        return self.define(gen.function(name, body), name)  # type: ignore[no-any-return]


@dataclass
class _Bucket:
    """The rules of a rule set that loop over one index bucket (`where(name == 'x')`), run under one lookup."""

    local: str
    """The generated local holding the bucket's spans (None when no span has the value)."""
    lookup: str
    """Python source reading the bucket from its index."""
    loops: list[str] = field(default_factory=list)
    """Each rule's loop over `local`, when the bucket has spans."""
    empty: list[str] = field(default_factory=list)
    """What rules do when the bucket has no span (an `all` that holds fires nothing; an `exists` may)."""

    def statements(self) -> list[str]:
        out = [f"{self.local} = {self.lookup}", f"if {self.local} is not None:"]
        out += ["    " + line for line in self.loops]
        if self.empty:
            out += ["else:"] + ["    " + line for line in self.empty]
        return out


class _Gen:
    """Python source for IR expressions, for one compiled function.

    With `hoist`, an index lookup on the root reads a local fetched once at the top
    of the function (`_ix3 = ctx.index('name')`); without, it reads the index in place.
    """

    def __init__(self, compiler: Compiler, hoist: dict[str, str] | None) -> None:
        self.c = compiler
        self.hoist = hoist
        self.shared: dict[tuple[Any, str], str] = {}
        """With `hoist`: the locals holding trace-level values (`trace.duration`), computed on first use."""
        self.prelude: list[str] | None = None
        """While writing a rule as statements: loop statements to run before its test."""
        self.buckets: dict[tuple[str, str, Any], _Bucket] | None = None
        """Writing a rule set (`Compiler.program`): its loops over index buckets, by bucket (see `bucket`)."""
        self.leading = False
        """Whether the expression being written is the first thing its rule evaluates, unconditionally.

        A quantifier there (`trace.has(A).where(B)` in `when { ... }`) becomes a loop
        statement in `prelude` setting a local, instead of a generator expression
        inside the test: a generator costs about as much to start as a short loop
        costs to run. Only there: anything the test evaluates conditionally (after
        an `and`, inside a loop over spans) must stay where it is.
        """

    def function(self, name: str, body: list[str]) -> str:
        lines = [f"def {name}(ctx):", "    it = None"]
        if self.hoist:
            fields = tuple(self.hoist)
            locals_ = "".join(f"{self.hoist[f]}, " for f in fields)
            lines.append(f"    {locals_}= {self.c.const(self.c.indexer(fields))}(ctx)")
        for local in self.shared.values():
            lines.append(f"    {local} = _UNSET")
        lines += ["    " + line for chunk in body for line in chunk.split("\n")]
        return "\n".join(lines) + "\n"

    def fires_statements(self, rule: RuleIR, action: str) -> list[str]:
        """Statements running `action` when the rule fires.

        The commonest rule, a quantifier over a span list (`...where(...).all(P)`,
        `.none(P)`, `.exists(P)`), becomes a plain loop that stops at the deciding
        span: cheaper than a generator for the few spans a filter usually leaves.
        Any other rule is a test, after a loop for the quantifier it evaluates first.
        """
        n = rule.condition
        shape = self.inline_shape(n) if n.op == "call" else None
        if rule.mode not in ("expect", "detect") or shape not in ("all", "none", "exists") or len(n.args) != 2:
            return self.test_statements(rule, action)
        recv = n.args[0]
        if not self.never_none(recv):
            return self.test_statements(rule, action)
        s = self.c.name("_s")
        test = self.test(n.args[1].args[0], s, 1)
        bucket = self.bucket(recv)
        loop = [f"for {s} in {self.expr(recv, 'it', 1) if bucket is None else bucket.local}:"]
        # The span that decides: one failing `all`, one matching `none` or `exists`.
        decides = f"not {test}" if shape == "all" else test
        # Whether the quantifier is true once such a span is found.
        value_when_found = shape == "exists"
        fires_when_found = value_when_found if rule.mode == "detect" else not value_when_found
        if fires_when_found:
            lines = [*loop, f"    if {decides}:", f"        {action}", "        break"]
        else:
            lines = [*loop, f"    if {decides}:", "        break", "else:", f"    {action}"]
        if bucket is None:
            return lines
        bucket.loops += lines
        if not fires_when_found:  # no span, no deciding span: the rule fires
            bucket.empty.append(action)
        return []

    def bucket(self, recv: Node) -> _Bucket | None:
        """The shared bucket for a loop over an index lookup on the trace (`where(name == 'x')`), if any.

        With `buckets`, rules looping over the same bucket run together after one
        lookup, and not at all when no span has the value: at a few spans per trace,
        most of a rule set's buckets are empty.
        """
        if self.buckets is None or recv.op != "lookup" or recv.args[0].op != "root" or self.hoist is None:
            return None
        fld, value = recv.value
        key = (fld, type(value).__name__, value)
        found = self.buckets.get(key)
        if found is None:
            lookup = f"{self.index_local(fld)}.get({self.c.const(value)})"
            found = self.buckets[key] = _Bucket(self.c.name("_b"), lookup)
        return found

    def test_statements(self, rule: RuleIR, action: str) -> list[str]:
        """`if <the rule fires>: action`, after the loop statements of its leading quantifier (see `leading`)."""
        self.prelude = []
        try:
            test = self.fires(rule)
            return [*self.prelude, f"if {test}:", f"    {action}"]
        finally:
            self.prelude = None

    def fires(self, rule: RuleIR) -> str:
        self.leading = self.prelude is not None
        cond = self.test(rule.condition, "it", 0)
        self.leading = False
        if rule.mode == "expect":
            return f"not {cond}"
        if rule.mode == "detect":
            return cond
        always = f"not {self.test(rule.always, 'it', 0)}" if rule.always is not None else None
        never = self.test(rule.never, "it", 0) if rule.never is not None else None
        if always is None and never is None:
            return "False"
        if always is not None and never is not None:
            return f"({cond} and ({always} or {never}))"
        return f"({cond} and {always if always is not None else never})"

    # -- expressions -------------------------------------------------------

    def test(self, n: Node, it: str, depth: int) -> str:
        """The node as a Python truth value: True exactly when the node's value is `True`."""
        e = self.expr(n, it, depth)
        return e if self.is_bool(n) else f"({e} is True)"

    def is_bool(self, n: Node) -> bool:
        if n.op in _BOOL_OPS:
            return True
        if n.op == "const":
            return isinstance(n.value, bool)
        if n.op == "call" and self.inline_shape(n) in ("all", "none", "exists"):
            return self.never_none(n.args[0])
        return False

    def never_none(self, n: Node, it: str = "it") -> bool:
        """Whether the node's value can never be missing (so its generated code needs no guard)."""
        if n.op in ("lookup", "root", "list"):
            return True
        if n.op == "const":
            return n.value is not None
        if n.op == "get":
            target = n.args[0]
            if target.op == "root":
                return n.value.name == "spans" and self.pristine(n.value)
            return target.op == "it" and it != "it" and self.own_field(n.value)
        if n.op == "call":  # an inline quantifier is missing where the spans it runs over are
            return self.inline_shape(n) is not None and self.never_none(n.args[0], it)
        return False

    @staticmethod
    def pristine(member: Member) -> bool:
        return b.lookup(member.receiver, member.name) is member

    def own_field(self, member: Member) -> bool:
        """A span field stored on `trace.Span` itself, read without a call and never missing."""
        return member.receiver == t.SPAN and member.name in b.SPAN_SLOTS and self.pristine(member)

    def span_duration(self, n: Node, it: str) -> str | None:
        """`end - start` of the span in scope, for a pristine `duration` of it (inside a predicate), else None.

        Missing past 64 bits (`builtins._duration`): the reader of this must check that bound.
        Spans end no earlier than they start, as loaders read them, so only the upper one.
        """
        if n.op != "get" or n.args[0].op != "it" or it == "it":
            return None
        member: Member = n.value
        if member.receiver != t.SPAN or member.name != "duration" or not self.pristine(member):
            return None
        return f"({it}.end - {it}.start)"

    def inline_shape(self, n: Node) -> str | None:
        shape = b.INLINE_METHODS.get(n.value.impl)
        if shape is None or any(a.op != "fn" for a in n.args[1:]):
            return None
        return shape

    def expr(self, n: Node, it: str, depth: int) -> str:
        if n.op not in _LEADING_OPS or depth > MAX_INLINE_DEPTH:
            self.leading = False
        if depth > MAX_INLINE_DEPTH and n.op not in ("const", "root", "it"):
            return f"{self.c.const(self.c.fn(n))}(ctx, {it})"
        method: Callable[[Node, str, int], str] = getattr(self, "op_" + n.op)
        return method(n, it, depth + 1)

    def guarded(self, x: str, make: Callable[[str], str]) -> str:
        """`make(x)`, or missing when `x` is; `x` is evaluated once."""
        t = self.c.name("_t")
        return f"(None if ({t} := {x}) is None else {make(t)})"

    def op_const(self, n: Node, it: str, depth: int) -> str:
        v = n.value
        if v is None or v is True or v is False:
            return repr(v)
        return self.c.const(v)

    def op_list(self, n: Node, it: str, depth: int) -> str:
        if all(a.op == "const" for a in n.args):
            return self.c.const([a.value for a in n.args])
        return "[" + ", ".join(self.expr(a, it, depth) for a in n.args) + "]"

    def op_root(self, n: Node, it: str, depth: int) -> str:
        return "ctx"

    def op_it(self, n: Node, it: str, depth: int) -> str:
        return it

    def op_fn(self, n: Node, it: str, depth: int) -> str:
        return self.c.const(self.c.fn(n))

    def op_get(self, n: Node, it: str, depth: int) -> str:
        member: Member = n.value
        target = n.args[0]
        pristine = self.pristine(member)
        if target.op == "it":
            if pristine and member.receiver == t.SPAN and member.name in b.SPAN_SLOTS:
                read = f"{it}.{b.SPAN_SLOTS[member.name]}"
            elif pristine and member.receiver == t.SPAN and member.name == "duration":
                d = self.c.name("_t")
                read = f"({d} if ({d} := {it}.end - {it}.start) < {self.c.const(NS_LIMIT)} else None)"
            else:
                read = f"{self.c.const(member.impl)}({it})"
            return read if it != "it" else f"(None if it is None else {read})"
        if target.op == "root":
            if pristine and member.name == "spans":
                return "ctx.spans"
            if pristine and self.hoist is not None:
                # A value of the whole trace (window), shared by every rule that reads it.
                key = (member.receiver, member.name)
                local = self.shared.get(key)
                if local is None:
                    local = self.shared[key] = self.c.name("_tv")
                impl = self.c.const(member.impl)
                return f"({local} if {local} is not _UNSET else ({local} := {impl}(ctx)))"
            return f"{self.c.const(member.impl)}(ctx)"
        impl = self.c.const(member.impl)
        return self.guarded(self.expr(target, it, depth), lambda x: f"{impl}({x})")

    def op_attr(self, n: Node, it: str, depth: int) -> str:
        key = self.c.const(n.value)
        target = n.args[0]
        if target.op != "it":
            return f"_attr_of({self.expr(target, it, depth)}, {key})"
        r = self.c.name("_t")
        # A value read before (or converted as the span was decoded) without a call.
        read = f"({r}[{key}] if ({r} := {it}._read) is not None and {key} in {r} else {it}.attr({key}))"
        return read if it != "it" else f"(None if it is None else {read})"

    def op_map_get(self, n: Node, it: str, depth: int) -> str:
        return f"_read({self.expr(n.args[0], it, depth)}, {self.c.const(n.value)})"

    def op_index(self, n: Node, it: str, depth: int) -> str:
        return f"_index({self.expr(n.args[0], it, depth)}, {self.expr(n.args[1], it, depth)})"

    def op_call(self, n: Node, it: str, depth: int) -> str:
        shape = self.inline_shape(n)
        recv = n.args[0]
        if shape is not None:
            return self.quantify(shape, recv, n.args[1].args[0] if len(n.args) > 1 else None, it, depth)
        self.leading = False
        r = self.expr(recv, it, depth)
        member: Member = n.value
        impl = self.c.const(member.impl)
        tests: list[str] = []
        args: list[str] = []
        for arg, param in zip(n.args[1:], member.params, strict=False):
            if param.kind == "value":
                a = self.c.name("_t")
                tests.append(f"({a} := {self.expr(arg, it, depth)}) is None")
                args.append(a)
            else:
                args.append(self.expr(arg, it, depth))
        recv_t = self.c.name("_t")
        missing = " or ".join([f"({recv_t} := {r}) is None", *tests])
        return f"(None if {missing} else {impl}(ctx, {recv_t}{''.join(', ' + a for a in args)}))"

    def quantify(self, shape: str, recv: Node, body: Node | None, it: str, depth: int) -> str:
        """An inline quantifier (`loop`) over the spans `recv` gives, missing when `recv` is."""
        leading, self.leading = self.leading, False
        hoistable = shape in _DECIDED or shape in _COUNTED
        if leading and hoistable and self.prelude is not None and body is not None and self.never_none(recv):
            return self.hoisted(shape, recv, body, it, depth)
        r = self.expr(recv, it, depth)
        make = self.loop(shape, body, depth)
        if not self.never_none(recv):
            return self.guarded(r, make)  # a comprehension's iterable may not hold `:=`
        if body is None or shape in _ROOT_SHAPES:
            return make(r) if ":=" not in r else self.guarded(r, make)
        # Most rules filter down to few spans, often none: skip the loop's setup then.
        tmp = self.c.name("_t")
        return f"({_EMPTY_RESULT[shape]} if not ({tmp} := {r}) else {make(tmp)})"

    def hoisted(self, shape: str, recv: Node, body: Node, it: str, depth: int) -> str:
        """The quantifier as a loop statement in `prelude` that stops at the deciding span; a local holds its value."""
        assert self.prelude is not None
        r = self.expr(recv, it, depth)
        source = f"{r}.spans" if shape in _ROOT_SHAPES else r
        s = self.c.name("_s")
        test = self.test(body, s, depth)
        q = self.c.name("_q")
        if shape in _COUNTED:  # every span is visited
            zero, one = self.c.const(0), self.c.const(1)
            self.prelude += [f"{q} = {zero}", f"for {s} in {source}:", f"    if {test}:", f"        {q} += {one}"]
            return q
        before, found, negate = _DECIDED[shape]
        self.prelude += [
            f"{q} = {before}",
            f"for {s} in {source}:",
            f"    if {'not ' if negate else ''}{test}:",
            f"        {q} = {found}",
            "        break",
        ]
        return q

    def loop(self, shape: str, body: Node | None, depth: int) -> Callable[[str], str]:
        """An inline comprehension over a span list: the registry's quantifier, written out."""
        s = self.c.name("_s")
        cond = self.test(body, s, depth) if body is not None else None
        if shape in _ROOT_SHAPES:  # over a trace's or window's spans
            source = "{}.spans"
            shape = _ROOT_SHAPES[shape]
        else:
            source = "{}"
        if shape == "where":
            return lambda r: f"[{s} for {s} in {source.format(r)} if {cond}]"
        if shape == "count":
            if cond is None:
                return lambda r: f"len({source.format(r)})"
            return lambda r: f"sum(1 for {s} in {source.format(r)} if {cond})"
        if shape == "exists":
            if cond is None:
                return lambda r: f"bool({source.format(r)})"
            return lambda r: f"any({cond} for {s} in {source.format(r)})"
        if shape == "all":
            return lambda r: f"all({cond} for {s} in {source.format(r)})"
        if shape == "none":
            return lambda r: f"(not any({cond} for {s} in {source.format(r)}))"
        raise AssertionError(f"no inline form for {shape}")

    def index_local(self, fld: str) -> str:
        """The local holding the trace's index on `fld`, fetched once at the top of the function."""
        assert self.hoist is not None
        local = self.hoist.get(fld)
        if local is None:
            local = self.hoist[fld] = self.c.name("_ix")
        return local

    def op_exists(self, n: Node, it: str, depth: int) -> str:
        inner = n.args[0]
        shape = self.inline_shape(inner) if inner.op == "call" else None
        if shape in ("where", "has") and len(inner.args) == 2:
            # Whether any span matches, without building the list of those that do.
            recv = inner.args[0]
            e = self.quantify("exists" if shape == "where" else "has_exists", recv, inner.args[1].args[0], it, depth)
            return e if self.never_none(recv) else f"({e} is True)"
        x = self.expr(inner, it, depth)
        return f"({x} is not None)" if n.args[0].type == t.SPAN else f"bool({x})"

    def op_and(self, n: Node, it: str, depth: int) -> str:
        return self.logic(" and ", n, it, depth)

    def op_or(self, n: Node, it: str, depth: int) -> str:
        return self.logic(" or ", n, it, depth)

    def logic(self, joint: str, n: Node, it: str, depth: int) -> str:
        first = self.test(n.args[0], it, depth)
        self.leading = False
        return "(" + joint.join([first, *(self.test(a, it, depth) for a in n.args[1:])]) + ")"

    def op_not(self, n: Node, it: str, depth: int) -> str:
        return f"(not {self.test(n.args[0], it, depth)})"

    def op_cmp(self, n: Node, it: str, depth: int) -> str:
        left, right = n.args
        sym = _PY_CMP[n.value]
        strict = left.type not in (t.ANY, t.ERROR) and right.type not in (t.ANY, t.ERROR)
        lx = self.expr(left, it, depth)
        self.leading = False
        charge = self.c.const(n.value.charge) if isinstance(n.value, MeteredOperands) else None
        if charge is not None:  # neither operand is a literal (`cost.string_work`)
            lx = f"{charge}({lx})"
        a = self.c.name("_t")
        if right.op == "const" and strict:
            c = self.c.const(right.value)
            d = self.span_duration(left, it)
            if d is not None and type(right.value) is int and in_int64(right.value):
                # A duration past 64 bits is missing (`span_duration`): a bound within them holds
                # no such duration under it, so only `>`, `>=`, `!=` need the bound checked.
                limit = self.c.const(NS_LIMIT)
                if sym in ("<", "<=", "=="):
                    return f"({d} {sym} {c})"
                if sym == "!=":
                    return f"(({a} := {d}) != {c} and {a} < {limit})"
                return f"({c} {'<' if sym == '>' else '<='} {d} < {limit})"
            if self.never_none(left, it):
                return f"({lx} {sym} {c})"
            return f"(({a} := {lx}) is not None and {a} {sym} {c})"
        if right.op == "const" and right.value is not None:
            # An attribute against a literal: only values of the literal's own kind compare.
            v = right.value
            c = self.c.const(v)
            if isinstance(v, bool) and sym in ("==", "!="):
                return f"(isinstance({a} := {lx}, bool) and {a} {sym} {c})"
            if isinstance(v, bool):  # booleans have no order: false, as with any value (`_loose_compare`)
                return f"({lx} is None and False)"
            kinds = self.c.const((int, float) if isinstance(v, int | float) else (type(v),))
            return f"(isinstance({a} := {lx}, {kinds}) and not isinstance({a}, bool) and {a} {sym} {c})"
        rx = self.expr(right, it, depth)
        if charge is not None:
            rx = f"{charge}({rx})"
        if strict and sym in ("==", "!=") and (left.type.is_list or left.type == t.MAP):  # item by item (`_equal`)
            test = "_equal" if sym == "==" else "_unequal"
            bb = self.c.name("_t")
            return f"(({a} := {lx}) is not None and ({bb} := {rx}) is not None and {test}({a}, {bb}))"
        if strict:
            bb = self.c.name("_t")
            return f"(({a} := {lx}) is not None and ({bb} := {rx}) is not None and {a} {sym} {bb})"
        loose = self.c.const(_loose_compare(_CMP[n.value]))
        return f"{loose}({lx}, {rx})"

    def op_in(self, n: Node, it: str, depth: int) -> str:
        return self.membership(n, it, depth, negated=False)

    def op_not_in(self, n: Node, it: str, depth: int) -> str:
        return self.membership(n, it, depth, negated=True)

    def membership(self, n: Node, it: str, depth: int, negated: bool) -> str:
        """`in` / `not in`; against a list of literals, one set lookup of (kind, value) instead of a scan.

        The needle's kind is looked up first: a kind no literal has (a list, a map) is
        never hashed, and for `not in` it means no comparison, so false (see `_not_in`).
        """
        right = n.args[1]
        lx = self.expr(n.args[0], it, depth)
        if right.op == "list" and all(a.op == "const" for a in right.args):
            a = self.c.name("_t")
            if negated and not right.args:
                return f"({lx} is not None)"
            kinds = self.c.const(frozenset(_kind(a.value) for a in right.args))
            pairs = self.c.const(frozenset((_kind(a.value), a.value) for a in right.args))
            k = self.c.name("_t")
            test = "not in" if negated else "in"
            return f"(({a} := {lx}) is not None and ({k} := _kind({a})) in {kinds} and ({k}, {a}) {test} {pairs})"
        helper = "_not_in" if negated else "_in"
        return f"{helper}({lx}, {self.expr(right, it, depth)})"

    def op_contains(self, n: Node, it: str, depth: int) -> str:
        needle, haystack = self.expr(n.args[1], it, depth), self.expr(n.args[0], it, depth)
        if isinstance(n.value, MeteredOperands):
            haystack = f"{self.c.const(n.value.charge)}({haystack})"
        return f"_member({needle}, {haystack})"

    def op_matches(self, n: Node, it: str, depth: int) -> str:
        regex = n.value if isinstance(n.value, MeteredPattern) else compile_regex(n.value)
        search = self.c.const(regex.search)
        a = self.c.name("_t")
        return f"(isinstance({a} := {self.expr(n.args[0], it, depth)}, str) and {search}({a}) is not None)"

    def op_arith(self, n: Node, it: str, depth: int) -> str:
        op = self.c.const(ARITH[n.value])
        to_int = n.type in (t.DURATION, t.TIMESTAMP)
        left, right = self.expr(n.args[0], it, depth), self.expr(n.args[1], it, depth)
        code = f"_arith({op}, {to_int}, {left}, {right}, {n.type == t.TIMESTAMP})"
        return f"{self.c.const(n.value.charge)}({code})" if isinstance(n.value, MeteredJoin) else code

    def op_neg(self, n: Node, it: str, depth: int) -> str:
        return f"_neg({self.expr(n.args[0], it, depth)})"

    def op_lookup(self, n: Node, it: str, depth: int) -> str:
        fld, value = n.value
        v = self.c.const(value)
        if n.args[0].op == "root" and self.hoist is not None:
            return f"{self.index_local(fld)}.get({v}, _EMPTY)"
        return f"{self.expr(n.args[0], it, depth)}.index({self.c.const(fld)}).get({v}, _EMPTY)"


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
    trace_ids: list[str] = field(default_factory=list)
    """The trace of each of `span_ids`, in the same order: written for a windowed signal, whose spans come from
    several traces (span ids are unique only within a trace)."""
    name: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """The rule's other metadata (`owner`, `runbook`), for whoever the signal reaches."""

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
        if self.window_start is not None:
            out["trace_ids"] = self.trace_ids
        out["observed"] = self.observed
        out["time"] = self.time
        if self.name and self.name != self.rule:
            out["name"] = self.name
        if self.description:
            out["description"] = self.description
        if self.tags:
            out["tags"] = list(self.tags)
        for key, value in self.extra.items():
            out.setdefault(key, value)
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
        self._fires: Callable[[Any], bool] | None = None
        self.source = {"path": ir.path, "line": ir.span.line + 1, "column": ir.span.col + 1}
        """Where the rule is, as its signals' `source` (each signal gets a copy)."""
        self._clauses: dict[int, str] = {}

    @property
    def fires(self) -> Callable[[Any], bool]:
        """The rule alone as a function `ctx -> fired`, generated on first use."""
        f = self._fires
        if f is None:
            f = self._fires = self.compiler.rule(self.ir)
        return f

    @property
    def id(self) -> str:
        return self.ir.id

    def clause_text(self, node: Node) -> str:
        text = self._clauses.get(id(node))
        if text is None:
            rule = self.ir
            start = node.span.start - rule.span.start
            end = node.span.end - rule.span.start
            text = self._clauses[id(node)] = " ".join(rule.source[start:end].split())
        return text

    # -- explanation -------------------------------------------------------

    def explain(self, ctx: Any) -> tuple[dict[str, Any], list[Span], str, str]:
        """The observed values, the culprit spans, a one-line summary and its short reason."""
        ir = self.ir
        obs: dict[str, Any] = {}
        culprits: list[Span] = []
        if ir.mode in ("expect", "detect"):
            self._explain(ir.condition, ctx, _Observed(obs), culprits)
            verb = "expected" if ir.mode == "expect" else "detected"
            what = _brief(self.clause_text(ir.condition))
            reason = _observed_text(obs)
            summary = f"{verb} {what}" + (f": {reason}" if reason else "")
            return obs, culprits, summary, reason
        obs["when"] = True
        self._culprits_of(ir.condition, ctx, culprits)
        parts = []
        broken: dict[str, Any] = {}  # what broke `always`, as `expect` of it shows it
        if ir.always is not None:
            held = self.compiler.fn(ir.always)(ctx, None) is True
            obs["always"] = held
            if not held:
                self._explain(ir.always, ctx, _Observed(broken), culprits)
                why = f" ({_observed_text(broken)})" if broken else ""
                parts.append(f"always {{ {_brief(self.clause_text(ir.always))} }} did not hold{why}")
        if ir.never is not None:
            held = self.compiler.fn(ir.never)(ctx, None) is True
            obs["never"] = held
            if held:
                self._culprits_of(ir.never, ctx, culprits)
                parts.append(f"never {{ {_brief(self.clause_text(ir.never))} }} held")
        for key, value in broken.items():
            name, i = key, 2
            while name in obs:  # `attributes["when"]`
                name = f"{key}_{i}"
                i += 1
            obs[name] = value
        reason = " and ".join(parts)
        summary = f"when {{ {_brief(self.clause_text(ir.condition))} }}: {reason}"
        return obs, culprits, summary, reason

    def _explain(self, n: Node, ctx: Any, obs: _Observed, culprits: list[Span]) -> None:
        fn = self.compiler.fn
        if n.op in ("and", "or"):
            # Decided by the operands whose value is the result's: the true ones of a true `or`,
            # the false ones of a false `and`, and every one otherwise.
            held = [fn(a)(ctx, None) is True for a in n.args]
            result = all(held) if n.op == "and" else any(held)
            for a, h in zip(n.args, held, strict=True):
                if h is result:
                    self._explain(a, ctx, obs, culprits)
                else:  # not shown, but counted: a clause's number is its place as written
                    obs.clause += _clause_count(a)
            return
        if n.op == "not":
            self._explain(n.args[0], ctx, obs, culprits)
            return
        obs.clause += 1
        if n.op in ("cmp", "in", "not_in", "contains"):
            left, right = n.args
            lname = "bound" if _literal(left) else _label(left)
            rname = "bound" if _literal(right) else _label(right)
            if rname == lname:
                lname, rname = "left", "right"
            obs.put(lname, _shown(fn(left)(ctx, None), left), left)
            obs.put(rname, _shown(fn(right)(ctx, None), right), right)
            self._culprits_of(left, ctx, culprits)
            self._culprits_of(right, ctx, culprits)
            return
        if n.op == "matches":
            (left,) = n.args
            obs.put(_label(left), _shown(fn(left)(ctx, None), left), left)
            obs.put("pattern", str(n.value), None)
            self._culprits_of(left, ctx, culprits)
            return
        missing = self._missing(n, ctx) if n.op in ("call", "exists") or n.type == t.SPANS else None
        if missing is not None:  # `trace.root.children.all(P)` with no root: `root` is null, not 0 of 0 spans
            obs.put(_label(missing), None, missing)
            return
        if n.op == "call" and n.value.name in ("all", "none", "exists", "any") and len(n.args) > 1:
            spans = fn(n.args[0])(ctx, None) or []
            pred = fn(n.args[1])
            if n.value.name == "all":
                bad = [s for s in spans if pred(ctx, s) is not True]
                obs.put("violations", len(bad), n)
            else:
                bad = [s for s in spans if pred(ctx, s) is True]
                obs.put("matched", len(bad), n)
            obs.put("checked", len(spans), n.args[0])
            culprits.extend(bad)
            return
        if n.op == "call" and n.value.name == "exists":
            spans = fn(n.args[0])(ctx, None) or []
            obs.put("matched", len(spans), n)
            culprits.extend(spans)
            return
        if n.op == "call" and n.value.name in ("before", "after"):
            first: list[Span] = fn(n.args[0])(ctx, None) or []
            second: list[Span] = fn(n.args[1])(ctx, None) or []
            obs.put(n.value.name, fn(n)(ctx, None), n)
            obs.put("left_spans", len(first), n.args[0])
            obs.put("right_spans", len(second), n.args[1])
            culprits.extend(first)
            culprits.extend(second)
            return
        if n.op == "exists" or n.type == t.SPANS:
            self._culprits_of(n, ctx, culprits)
            value = fn(n.args[0] if n.op == "exists" else n)(ctx, None)
            obs.put("matched", len(value) if isinstance(value, list) else int(value is not None), n)
            return
        if n.op == "const":  # `... and true`: a literal explains nothing
            return
        obs.put(_label(n), _shown_as(fn(n)(ctx, None), n.type), n)
        self._culprits_of(n, ctx, culprits)

    def _missing(self, n: Node, ctx: Any) -> Node | None:
        """For a test of a set of spans (`all`, `exists`, ...) or a set itself, the set's expression or the one
        under it that is missing (`root` of `trace.root.children`), the innermost; None if the set is there."""
        if n.op in ("call", "exists"):
            if not n.args or n.args[0].type != t.SPANS:
                return None
            n = n.args[0]
        found = None
        cur: Node | None = n
        while cur is not None and cur.op not in ("fn", "root", "it") and self.compiler.fn(cur)(ctx, None) is None:
            found = cur
            cur = cur.args[0] if cur.args else None
        return found

    def _culprits_of(self, n: Node, ctx: Any, culprits: list[Span]) -> None:
        """The spans an expression was computed from: the set under a count, the root under a field."""
        cur: Node | None = n
        while cur is not None:
            if cur.op == "call" and cur.value.name in ("min", "max") and len(cur.args) == 2:
                best = self.compiler.fn(cur)(ctx, None)
                spans = self.compiler.fn(cur.args[0])(ctx, None) or []
                per_span = self.compiler.fn(cur.args[1])
                if best is not None:  # the spans whose value it is: NaN when one is (and no value equals NaN)
                    nan = best != best
                    culprits.extend(
                        s for s in spans if b.is_number(v := per_span(ctx, s)) and (v != v if nan else v == best)
                    )
                return
            if cur.op == "call" and cur.value.name in ("count", "sum", "avg") and len(cur.args) == 2:
                spans = self.compiler.fn(cur.args[0])(ctx, None) or []
                per_span = self.compiler.fn(cur.args[1])
                if cur.value.name == "count":  # the spans it counted, not the set it counted in
                    culprits.extend(s for s in spans if per_span(ctx, s) is True)
                else:  # the spans whose value was added: numbers, as `sum` and `avg` take them
                    culprits.extend(s for s in spans if b.is_number(per_span(ctx, s)))
                return
            if cur.op == "arith" and all(a.type == t.TIMESTAMP for a in cur.args):
                # `max(end) - min(start)`: a time between two instants is both spans'. Other arithmetic keeps the
                # left side's spans: `count(status == error) / spans.count()` is about the errors, not every span.
                self._culprits_of(cur.args[1], ctx, culprits)
            if cur.type in (t.SPANS, t.SPAN) and cur.op != "it":
                v = self.compiler.fn(cur)(ctx, None)
                if isinstance(v, list):
                    culprits.extend(v)
                elif isinstance(v, Span):
                    culprits.append(v)
                return
            cur = cur.args[0] if cur.args and cur.op not in ("fn", "root") else None


BRIEF_CLAUSE = 200
"""A clause quoted in a signal's message is cut to about this many characters (the signal's range has all of it)."""


def _brief(text: str) -> str:
    """`text`, or its start and end around an ellipsis when it is longer than `BRIEF_CLAUSE`."""
    if len(text) <= BRIEF_CLAUSE:
        return text
    return text[: BRIEF_CLAUSE - 60].rstrip() + " … " + text[-50:].lstrip()


def _skipped_text(skipped: list[str], where: str = "") -> str:
    """`3 rule(s) not evaluated: a, b, c`, the first ten named, for the truncation signals' messages."""
    more = ", ..." if len(skipped) > 10 else ""
    return f"{len(skipped)} rule(s) not evaluated{where}: {', '.join(skipped[:10])}{more}"


class _Observed:
    """A signal's `observed` as `_explain` fills it: each value under its name, and a name already taken
    numbered by the clause the value comes from (`clause`: the n-th of the parts `and`, `or` and `not` join,
    counted as written), so the values of one comparison share one number: `count() > 2 and max(duration) >
    1ms and count(P) >= 1` shows `count`, `bound`, `max`, `bound_2`, `count_3`, `bound_3`.

    Only the same expression read again (equal IR, wherever it is written) is shown once: in
    `count() > 2 and count() < 10`, one `count`. A literal is never that (`bound`, `bound_2` for
    two `2`s), nor is a value of another expression that happens to be equal: that one keeps a
    name of its own (`count_2: 2` beside its `bound_2`).
    """

    __slots__ = ("clause", "names", "sources", "values")

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.sources: dict[str, Node] = {}
        self.names: dict[str, list[str]] = {}  # the names each key is shown under
        self.clause = 0

    def put(self, key: str, value: Any, source: Node | None) -> None:
        """`value` of the expression `source` (None: a literal, never shown once for two) under `key`, or if
        that is taken `key_N` for clause N (the next number free, where that is taken too: an attribute may
        be named `bound_2`); not again if `source` is shown under `key` or a number of it with the same value."""
        if source is not None and _literal(source):
            source = None
        names = self.names.setdefault(key, [])
        if source is not None:
            for shown in names:
                # `==` tells the values apart (1 and true differ), as a rule's `==` does, but missing is missing
                if _same_expression(self.sources.get(shown), source) and _identical(self.values[shown], value):
                    return
        name, i = key, max(self.clause, 2)
        while name in self.values:
            name = f"{key}_{i}"
            i += 1
        self.values[name] = value
        names.append(name)
        if source is not None:
            self.sources[name] = source


def _clause_count(n: Node) -> int:
    """How many clauses `n` is: the parts `and`, `or` and `not` join (`_Observed.clause`)."""
    return sum(_clause_count(a) for a in n.args) if n.op in ("and", "or", "not") else 1


def _same_expression(a: Node | None, b: Node) -> bool:
    """The same expression, wherever written: equal but for source positions."""
    if a is None:
        return False
    if a is b:
        return True
    return (
        a.op == b.op
        and a.type == b.type
        and a.value == b.value
        and len(a.args) == len(b.args)
        and all(_same_expression(x, y) for x, y in zip(a.args, b.args, strict=True))
    )


def _literal(n: Node) -> bool:
    """A literal, or a list of them (of lists of them too): a comparison's `bound` in `observed`."""
    return n.op == "const" or (n.op == "list" and all(_literal(a) for a in n.args))


def _shown(value: Any, n: Node) -> Any:
    """The value of `n` as `observed` shows it (`_shown_as` its static type), and each item of a list written
    out by its own: `[trace.root.duration, 'x']` (a `list<any>`) as `["10ms", "x"]`."""
    if n.op == "list" and isinstance(value, list) and len(value) == len(n.args):
        return [_shown(v, item) for v, item in zip(value, n.args, strict=True)]
    return _shown_as(value, n.type)


def _shown_as(value: Any, ty: t.Type | None) -> Any:
    """A value of static type `ty` as `observed` shows it (`to_json`), a list's items by their own type;
    a span by its id, as `span_ids` names it (`trace.root != parent`)."""
    if isinstance(value, Span):
        return value.span_id_hex
    if ty is not None and ty.is_list and isinstance(value, list):
        return [_shown_as(v, ty.elem) for v in value]
    return to_json(value, None if ty is None else ty.name)


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


def _json_text(v: Any) -> str:
    if v is None or isinstance(v, bool):
        return "null" if v is None else "true" if v else "false"
    if type(v) is int:
        return str(v)
    return json.dumps(v, ensure_ascii=False)


def _observed_text(obs: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {_json_text(v)}" for k, v in obs.items())


def _culprit_ids(spans: list[Span]) -> tuple[list[str], list[str]]:
    """The span ids of the first `MAX_CULPRITS` distinct spans in `span_order`, and the trace id of each.

    Sorted before the cut, so the same spans give the same ids, and the same ones of more than
    `MAX_CULPRITS`, whatever order they arrived in (one file or two, one export or several).
    Spans are told apart by trace and span id: two traces of a window may use the same span id.
    Only the first few are sorted, for a rule that fired, never on every trace: the smallest
    2 x `MAX_CULPRITS` (a span is often there twice, once per operand), all of them only when
    those hold fewer distinct ids than wanted.
    """
    first = heapq.nsmallest(2 * MAX_CULPRITS, spans, key=span_order)
    chosen = _distinct_ids(map(span_order, first))
    if len(chosen) < MAX_CULPRITS and len(first) < len(spans):  # more copies than that of some
        keys = set(map(span_order, spans))
        chosen = _distinct_ids(heapq.nsmallest(MAX_CULPRITS, keys))
        if len(chosen) < min(MAX_CULPRITS, len(keys)):  # copies of one id with different starts (bad input)
            chosen = _distinct_ids(sorted(keys))
    return [sid.hex() for _, sid in chosen], [tid.hex() for tid, _ in chosen]


def _distinct_ids(keys: Iterable[tuple[int, bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """(trace id, span id) of each of `keys` (in `span_order`) not seen before, at most `MAX_CULPRITS`."""
    seen: dict[tuple[bytes, bytes], None] = {}
    for _, tid, sid in keys:
        seen.setdefault((tid, sid), None)
        if len(seen) >= MAX_CULPRITS:
            break
    return list(seen)


def attribute_keys(rules: list[RuleIR]) -> Counter[str]:
    """Every span attribute key the rules read by name, with how many rules read it.

    Not the flat heads of a dotted key: `a.b.c` is read through a map under `a.b` or `a`
    only where no attribute is named `a.b.c` (`Span.attr`), which the decoder does for
    the keys it converts ahead.
    """
    keys: Counter[str] = Counter()
    for rule in rules:
        keys.update({n.value for _, clause in rule.clauses() for n in clause.walk() if n.op == "attr"})
    return keys


def reads_attribute_map(rules: list[RuleIR]) -> bool:
    """Whether a rule reads a span's `attributes` map as a whole (`attributes[name]` with a computed
    `name`, or the map itself): it may read any key, which `attribute_keys` cannot count."""
    return any(
        n.op == "get" and isinstance(n.value, Member) and n.value.name == "attributes"
        for rule in rules
        for _, clause in rule.clauses()
        for n in clause.walk()
    )


PREFETCH_MAX_KEYS = 8
"""At most this many attribute keys are converted ahead (see `Program.prefetch`)."""
PREFETCH_MAX_KEYS_NATIVE = 32
"""With the native span reader (`otlp.native_reader`) a key converted ahead costs a scan of a span's attributes
in C, not a lookup through protobuf's Python API, and a key read later costs parsing the span again: more ahead."""


def prefetch_keys(counts: Counter[str], limit: int = PREFETCH_MAX_KEYS) -> tuple[str, ...]:
    """The attribute keys worth converting as spans are decoded: those read by the most rules (`attribute_keys`).

    Converting a key costs its lookup on every span, read or not, so a rule set
    reading many keys gets only the `limit` most widely read; the others are read
    on demand. Ties go to the key first in alphabetical order, so the choice is stable.
    """
    chosen = sorted(counts, key=lambda k: (-counts[k], k))[:limit]
    return tuple(sorted(chosen))


class Program:
    """A compiled rule set: evaluates traces (per-trace rules) and windows (windowed rules).

    With a `budget`, one trace (or window) may spend at most that many span visits
    (see `cost.py`); past it the rules not yet finished are skipped and a
    `fluo.evaluation_truncated` signal names them. Without one, nothing is counted.
    Counting costs time, so a trace whose worst case (the rules' static estimates at
    its number of spans) fits the budget runs uncounted: it cannot run out. Only the
    work on strings no estimate bounds (`cost.string_work`: `lower()` of a name a
    sender made 8 KiB long) is counted there, against what the worst case leaves of
    the budget (`strings`); past that the trace is evaluated again, counted.
    """

    def __init__(self, rules: list[RuleIR], budget: int | None = None) -> None:
        self.meter = Meter(budget) if budget is not None else None
        self.strings = Meter(budget) if budget is not None else None
        """With a budget: the meter of the uncounted runs' work on strings (see the class docstring)."""
        self.counts_strings = self.strings is not None and any(works_on_strings(r) for r in rules)
        self.compiler = compiler = Compiler()
        read = attribute_keys(rules)
        self.prefetch = prefetch_keys(read, PREFETCH_MAX_KEYS_NATIVE if native_reader() else PREFETCH_MAX_KEYS)
        """Attribute keys worth converting as spans are decoded (`spans_from_request(prefetch=...)`)."""
        self.prefetch_complete = len(read) <= len(self.prefetch) and not reads_attribute_map(rules)
        """Whether `prefetch` holds every key the rules read: then they rarely read spans' attributes later."""
        strings = self.strings
        self.rules = [CompiledRule(r if strings is None else strings.instrument(r, True), compiler) for r in rules]
        self.trace_rules = [r for r in self.rules if r.ir.window_ns is None]
        self.window_rules = [r for r in self.rules if r.ir.window_ns is not None]
        self.errors: list[EvalError] = []
        self._programs: dict[tuple[int, ...], Callable[[Any], list[int]]] = {}
        self._trace_program: Callable[[Any], list[int]] | None = None
        self._metered: dict[int, CompiledRule] = {}
        self._worst: dict[tuple[int, ...], Poly] = {}
        self._unmetered: dict[tuple[tuple[int, ...], int], int] = {}
        if self.meter is not None:
            counting = Compiler()
            for r, ir in zip(self.rules, rules, strict=True):
                self._metered[id(r)] = CompiledRule(self.meter.instrument(ir), counting)

    def worst_case(self, rules: list[CompiledRule], spans: int) -> int:
        """The most span visits `rules` can spend on a trace (or window) of `spans` spans."""
        key = (-1,) if rules is self.trace_rules else tuple(id(r) for r in rules)  # ids are never negative
        poly = self._worst.get(key)
        if poly is None:
            poly = Poly.of(0)
            for r in rules:
                poly = poly.plus(estimate(r.ir, MAX_STRING_CHARS))
            self._worst[key] = poly
        return poly.at(spans)

    def unmetered_spans(self, rules: list[CompiledRule], budget: int) -> int:
        """The most spans a trace (or window) may have for `rules` to fit `budget` in the worst case.

        Found once per rule set: the worst case never falls as spans are added (its
        polynomial has no negative coefficient), so a binary search finds the bound.
        """
        key = ((-1,) if rules is self.trace_rules else tuple(id(r) for r in rules), budget)
        limit = self._unmetered.get(key)
        if limit is None and any(weighs_regexes(r.ir) for r in rules):  # work grows with strings too: meter all
            limit = self._unmetered[key] = 0
        if limit is None:
            lo, hi = -1, 1
            while self.worst_case(rules, hi) <= budget:
                lo, hi = hi, hi * 2
                if hi > _NO_LIMIT:  # a cost that does not grow with the spans: never metered
                    lo = hi = _NO_LIMIT
                    break
            while hi - lo > 1:  # worst_case(lo) <= budget < worst_case(hi)
                mid = (lo + hi) // 2
                if self.worst_case(rules, mid) <= budget:
                    lo = mid
                else:
                    hi = mid
            limit = self._unmetered[key] = lo
        return limit

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
        span_ids, trace_ids = _culprit_ids(culprits)
        signal = Signal(
            rule=ir.id,
            severity=ir.severity,
            message=message,
            trace_id=None,
            span_ids=span_ids,
            trace_ids=trace_ids,
            observed=obs,
            time=format_timestamp(ctx.end),
            name=ir.name,
            description=ir.description,
            tags=ir.tags,
            extra=ir.extra,
            source=dict(rule.source),
        )
        if isinstance(ctx, Window):
            signal.window_start = format_timestamp(ctx.start)
            signal.window_end = signal.time
        else:
            signal.trace_id = ctx.id_hex
        return signal

    def program(self, rules: list[CompiledRule]) -> Callable[[Any], list[int]]:
        """One generated function checking `rules` together, built on first use and kept."""
        key = tuple(id(r) for r in rules)
        program = self._programs.get(key)
        if program is None:
            program = self._programs[key] = self.compiler.program([r.ir for r in rules])
        return program

    def _run(
        self,
        rules: list[CompiledRule],
        ctx: Any,
        trace_id: str | None,
        program: Callable[[Any], list[int]] | None = None,
    ) -> list[Signal]:
        meter = self.meter
        if meter is None:
            return self._run_uncounted(rules, ctx, trace_id, program)
        spans = len(ctx.spans)
        if spans > self.unmetered_spans(rules, meter.budget):
            return self._run_metered(meter, [self._metered[id(r)] for r in rules], ctx, trace_id)
        if not self.counts_strings:
            return self._run_uncounted(rules, ctx, trace_id, program)
        assert self.strings is not None
        self.strings.left = meter.budget - self.worst_case(rules, spans)
        errors = len(self.errors)
        try:
            return self._run_uncounted(rules, ctx, trace_id, program)
        except BudgetExhausted:  # long strings: what was done is discarded (its errors too), and done again counted
            del self.errors[errors:]
            return self._run_metered(meter, [self._metered[id(r)] for r in rules], ctx, trace_id)

    def _run_uncounted(
        self,
        rules: list[CompiledRule],
        ctx: Any,
        trace_id: str | None,
        program: Callable[[Any], list[int]] | None,
    ) -> list[Signal]:
        """`rules` on `ctx` with no span visit counted; `BudgetExhausted` (from `strings`) goes up."""
        out: list[Signal] = []
        if program is not None:
            try:
                fired = program(ctx)
            except BudgetExhausted:
                raise
            except Exception:  # a bug in FLUO: find the rule that raised, one rule at a time, below
                fired = None
            if fired is not None:
                for i in fired:
                    rule = rules[i]
                    try:
                        out.append(self._signal(rule, ctx))
                    except BudgetExhausted:
                        raise
                    except Exception as exc:  # a bug in FLUO, reported per rule, never a crash
                        self.errors.append(EvalError(rule.id, trace_id, f"{type(exc).__name__}: {exc}"))
                return out
        for rule in rules:
            try:
                if rule.fires(ctx):
                    out.append(self._signal(rule, ctx))
            except BudgetExhausted:
                raise
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
            + (
                _skipped_text(skipped)
                if skipped
                else "every rule was evaluated, but the last one that fired is not explained"
            )
        )
        end = format_timestamp(ctx.end)
        if isinstance(ctx, Window):
            start = format_timestamp(ctx.start)
            return Signal(TRUNCATED_RULE, TRUNCATED_SEVERITY, message, None, [], observed, end, start, end)
        return Signal(TRUNCATED_RULE, TRUNCATED_SEVERITY, message, ctx.id_hex, [], observed, end)

    def evaluate_trace(self, trace: Trace) -> list[Signal]:
        program = self._trace_program
        if program is None:
            program = self._trace_program = self.program(self.trace_rules)
        return self._run(self.trace_rules, trace, trace.id_hex, program)

    def evaluate_window(self, window: Window, rules: list[CompiledRule] | None = None) -> list[Signal]:
        rules = rules if rules is not None else self.window_rules
        return self._run(rules, window, None, self.program(rules))

    def evaluate_windows(self, traces: list[Trace]) -> list[Signal]:
        """Batch mode: every windowed rule over tumbling windows of its own length."""
        out: list[Signal] = []
        by_length: dict[int, list[CompiledRule]] = {}
        for r in self.window_rules:
            assert r.ir.window_ns is not None
            by_length.setdefault(r.ir.window_ns, []).append(r)
        for length, rules in sorted(by_length.items()):
            windows, gaps = tumbling(traces, length)
            for w in windows:
                out.extend(self.evaluate_window(w, rules))
            out.extend(self._gap_signal(gap, length, rules) for gap in gaps)
        return out

    @staticmethod
    def _gap_signal(gap: Gap, length: int, rules: list[CompiledRule]) -> Signal:
        """The signal that says a run of empty windows was not evaluated (see `trace.tumbling`)."""
        skipped = [r.id for r in rules]
        observed = {"empty_windows": gap.count, "max_empty_windows": MAX_EMPTY_WINDOWS, "rules_skipped": skipped}
        message = (
            f"{gap.count:,} empty {format_duration(length)} windows in a row were not evaluated (an evaluation "
            f"goes through at most {MAX_EMPTY_WINDOWS:,} empty windows of each length); "
            + _skipped_text(skipped, " on them")
        )
        start, end = format_timestamp(gap.start), format_timestamp(gap.end)
        return Signal(TRUNCATED_RULE, TRUNCATED_SEVERITY, message, None, [], observed, end, start, end)

    def evaluate(self, traces: list[Trace]) -> list[Signal]:
        """Per-trace rules on each trace in order, then windowed rules."""
        out: list[Signal] = []
        for tr in traces:
            out.extend(self.evaluate_trace(tr))
        out.extend(self.evaluate_windows(traces))
        return out
