"""Lowering checked rules to IR, then the optimisation passes, in order.

`lower_rule` turns the typed AST into IR using the typechecker's tables.
`PASSES` lists the pure IR-to-IR functions run after it; each says why it
stands where it does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from . import ast
from . import builtins as b
from . import types as t
from .ir import Node, RuleIR
from .typecheck import AttrRef, CheckedRule, EnumRef, ItRef, MemberRef, RootRef
from .values import ARITH, arith, negate


class _Lowering:
    def __init__(self, checked: CheckedRule) -> None:
        self.c = checked
        self.types = checked.types
        self.refs = checked.refs
        self.coerced = checked.coerced

    def lower(self, e: ast.Expr) -> Node:
        node = self._lower(e)
        if id(e) in self.coerced:
            return Node("exists", t.BOOL, (node,), span=e.span)
        return node

    def _span_base(self, base: ast.Expr | None, span: ast.Span) -> Node:
        return Node("it", t.SPAN, span=span) if base is None else self.lower(base)

    def _lower(self, e: ast.Expr) -> Node:
        ty = self.types.get(id(e), t.ERROR)
        ref = self.refs.get(id(e))
        sp = e.span
        if isinstance(e, ast.Literal):
            if isinstance(ref, EnumRef):
                return Node("const", ty, value=ref.value, span=sp)
            return Node("const", ty, value=e.value, span=sp)
        if ref is not None:  # what the checker resolved a name, field or call to
            if isinstance(ref, RootRef):
                return Node("root", ty, value=ref.name, span=sp)
            if isinstance(ref, ItRef):
                return Node("it", t.SPAN, span=sp)
            if isinstance(ref, EnumRef):
                return Node("const", ty, value=ref.value, span=sp)
            if isinstance(ref, AttrRef):
                op = "attr" if ref.source == "span" else "map_get"
                return Node(op, t.ANY, (self._span_base(ref.base, sp),), ref.key, sp)
            if isinstance(e, ast.Name | ast.Field) and isinstance(ref, MemberRef):
                return Node("get", ty, (self._span_base(ref.base, sp),), ref.member, sp)
            if isinstance(e, ast.Call) and isinstance(ref, MemberRef):
                return self._call(e, ref.member, ty)
        if isinstance(e, ast.Index):
            return Node("index", ty, (self.lower(e.target), self.lower(e.key)), span=sp)
        if isinstance(e, ast.ListLit):
            return Node("list", ty, tuple(self.lower(i) for i in e.items), span=sp)
        if isinstance(e, ast.Unary):
            return Node("not" if e.op == "not" else "neg", ty, (self.lower(e.operand),), span=sp)
        if isinstance(e, ast.Binary):
            return self._binary(e, ty)
        if isinstance(e, ast.Logic):
            return Node(e.op, ty, tuple(self.lower(o) for o in e.operands), span=sp)
        raise AssertionError(f"cannot lower {type(e).__name__} at {sp}: the checker let it through")

    def _call(self, e: ast.Call, member: b.Member, ty: t.Type) -> Node:
        args: list[Node] = [self.lower(e.target)]
        for arg, param in zip(e.args, member.params, strict=False):
            lowered = self.lower(arg)
            if param.kind in ("pred", "per_span"):
                lowered = Node("fn", lowered.type, (lowered,), span=arg.span)
            args.append(lowered)
        typed = b.TYPED_IMPLS.get((member.impl, ty))
        if typed is not None:
            member = replace(member, impl=typed)
        return Node("call", ty, tuple(args), member, e.span)

    def _binary(self, e: ast.Binary, ty: t.Type) -> Node:
        left, right = self.lower(e.left), self.lower(e.right)
        sp = e.span
        if e.op in ast.COMPARISONS:
            return Node("cmp", ty, (left, right), e.op, sp)
        if e.op == "matches":
            return Node("matches", ty, (left,), right.value, sp)
        if e.op in ("in", "not in", "contains"):
            return Node(e.op.replace(" ", "_"), ty, (left, right), span=sp)
        return Node("arith", ty, (left, right), e.op, sp)


def lower_rule(checked: CheckedRule, text: str) -> RuleIR:
    """The IR of one rule that checked without errors."""
    rule = checked.rule
    lowering = _Lowering(checked)
    mode = checked.mode
    head = checked.clause(mode)
    assert head is not None, "a checked rule has its head clause"
    always = checked.clause("always")
    never = checked.clause("never")
    return RuleIR(
        id=rule.id,
        path=checked.path,
        span=rule.span,
        mode=mode,
        condition=lowering.lower(head.expr),
        always=lowering.lower(always.expr) if always else None,
        never=lowering.lower(never.expr) if never else None,
        severity=checked.severity,
        name=checked.name,
        description=checked.description,
        tags=checked.tags,
        window_ns=checked.window_ns,
        extra=dict(checked.extra),
        source=text[rule.span.start : rule.span.end],
    )


# ---------------------------------------------------------------------------
# Passes

Pass = Callable[[Node], Node]


def _rewrite(node: Node, fn: Callable[[Node], Node | None]) -> Node:
    """Bottom-up rewrite: children first, then `fn` on the rebuilt node (None keeps it)."""
    old = node.args
    if old:
        args: list[Node] = []
        changed = False
        for a in old:
            new = _rewrite(a, fn) if a.args else fn(a)  # a leaf: `fn` without the call to recurse
            if new is None:
                new = a
            elif new is not a:
                changed = True
            args.append(new)
        if changed:
            node = Node(node.op, node.type, tuple(args), node.value, node.span)
    out = fn(node)
    return node if out is None else out


_FOLDABLE_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def fold_constants(root: Node) -> Node:
    """Arithmetic and negation over literals become one literal (`2 * 1s` is `2s`)."""

    def fold(n: Node) -> Node | None:
        if n.op == "neg" and n.args[0].op == "const":
            value = negate(n.args[0].value)
            return None if value is None else Node("const", n.type, value=value, span=n.span)
        if n.op == "arith" and all(a.op == "const" for a in n.args):
            to_int = n.type in (t.DURATION, t.TIMESTAMP)
            value = arith(ARITH[n.value], to_int, n.args[0].value, n.args[1].value, n.type == t.TIMESTAMP)
            if value is None:  # missing at run time (a division by zero, an overflow): left to the evaluator
                return None
            return Node("const", n.type, value=value, span=n.span)
        return None

    return _rewrite(root, fold)


def desugar_root_methods(root: Node) -> Node:
    """`trace.has(P)` is `trace.spans.where(P)`; `trace.count(P)` is `...where(P).count()`.

    Runs before `use_indexes`, which only recognises the `spans.where` form.
    """
    where = b.lookup(t.SPANS, "where")
    count = b.lookup(t.SPANS, "count")
    assert where is not None and count is not None

    def desugar(n: Node) -> Node | None:
        if n.op != "call" or n.args[0].type not in (t.TRACE, t.WINDOW):
            return None
        member: b.Member = n.value
        if member.name not in ("has", "count"):
            return None
        spans_field = b.lookup(n.args[0].type, "spans")
        spans = Node("get", t.SPANS, (n.args[0],), spans_field, n.args[0].span)
        filtered = Node("call", t.SPANS, (spans, n.args[1]), where, n.span)
        if member.name == "has":
            return filtered
        return Node("call", t.INT, (filtered,), count, n.span)

    return _rewrite(root, desugar)


_INDEXED = ("name", "service", "status", "kind")


def use_indexes(root: Node) -> Node:
    """`root.spans.where(F == c and ...)` over an intrinsic F reads the trace's index for F.

    The index is built once per trace and shared by every rule, so a hundred rules
    filtering on `service == ...` cost one pass over the spans, not a hundred.
    """

    def indexed(n: Node) -> Node | None:
        if n.op != "call" or n.value.name != "where":
            return None
        spans, fn = n.args
        if not (spans.op == "get" and spans.value.name == "spans" and spans.args[0].op == "root"):
            return None
        conjuncts = _conjuncts(fn.args[0])
        for i, c in enumerate(conjuncts):
            key = _index_key(c)
            if key is None:
                continue
            lookup = Node("lookup", t.SPANS, (spans.args[0],), key, n.span)
            rest = conjuncts[:i] + conjuncts[i + 1 :]
            if not rest:
                return lookup
            body = rest[0] if len(rest) == 1 else Node("and", t.BOOL, tuple(rest), span=rest[0].span)
            return n.replace(args=(lookup, fn.replace(args=(body,))))
        return None

    return _rewrite(root, indexed)


def _conjuncts(n: Node) -> list[Node]:
    if n.op == "and":
        return [c for a in n.args for c in _conjuncts(a)]
    return [n]


def _index_key(c: Node) -> tuple[str, Any] | None:
    if c.op != "cmp" or c.value != "==":
        return None
    for a, k in ((c.args[0], c.args[1]), (c.args[1], c.args[0])):
        if (
            a.op == "get"
            and a.args[0].op == "it"
            and a.value.name in _INDEXED
            and k.op == "const"
            and isinstance(k.value, str)
        ):
            return (a.value.name, k.value)
    return None


# In order. fold_constants first so later passes see literals; desugar_root_methods
# before use_indexes, which matches only the canonical `spans.where` form.
PASSES: tuple[tuple[str, Pass], ...] = (
    ("fold_constants", fold_constants),
    ("desugar_root_methods", desugar_root_methods),
    ("use_indexes", use_indexes),
)


def optimise(rule: RuleIR, passes: tuple[tuple[str, Pass], ...] = PASSES) -> RuleIR:
    if not passes:
        return rule
    condition, always, never = rule.condition, rule.always, rule.never
    for _name, fn in passes:
        condition = fn(condition)
        always = fn(always) if always is not None else None
        never = fn(never) if never is not None else None
    return replace(rule, condition=condition, always=always, never=never)
