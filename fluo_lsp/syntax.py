"""Walking the typed syntax tree of a rule: every expression with its parent, and what lies at an offset."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fluo_lang import ast
from fluo_lang.ast import children


def expressions(rule: ast.Rule) -> Iterator[tuple[ast.Expr, ast.Expr | None]]:
    """Every expression of a rule's clauses with its parent expression, parents first."""
    for clause in rule.clauses:
        stack: list[tuple[ast.Expr, ast.Expr | None]] = [(clause.expr, None)]
        while stack:
            node, parent = stack.pop()
            yield node, parent
            stack.extend((c, node) for c in reversed(children(node)))


@dataclass(frozen=True, slots=True)
class Found:
    """The innermost expression at an offset, and whether the offset is on its member name."""

    expr: ast.Expr
    parent: ast.Expr | None
    on_name: bool


def name_span(e: ast.Expr) -> ast.Span | None:
    """The range of a field's or method's own name."""
    if isinstance(e, ast.Field):
        return e.name_span
    if isinstance(e, ast.Call):
        return e.method_span
    return None


def expression_at(rule: ast.Rule, offset: int) -> Found | None:
    """The innermost expression at `offset` (relative to the rule's text); a member name wins."""
    best: Found | None = None
    for e, parent in expressions(rule):
        if isinstance(e, ast.Missing) or not e.span.contains(offset):
            continue
        ns = name_span(e)
        found = Found(e, parent, ns is not None and ns.contains(offset))
        if best is None or (found.on_name, -_size(e)) >= (best.on_name, -_size(best.expr)):
            best = found
    return best


def _size(e: ast.Expr) -> int:
    return e.span.end - e.span.start
