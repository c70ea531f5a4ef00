"""Hover: the type of the expression under the cursor, and the registry's documentation for what it names."""

from __future__ import annotations

import re

from fluo_lang import ast
from fluo_lang import builtins as b
from fluo_lang import types as t
from fluo_lang.diagnostics import Diagnostic
from fluo_lang.typecheck import META_KEYS, AttrRef, CheckedRule, EnumRef, ItRef, MemberRef, RootRef
from fluo_lang.values import format_duration

from .document import RuleDocument
from .syntax import Found, expression_at, expressions, name_span


def hover_at(doc: RuleDocument, offset: int) -> tuple[str, ast.Span, int] | None:
    """Markdown for what is at `offset`, with the range it describes and the offset that range counts from."""
    chunk = doc.chunk_at(offset)
    rel = offset - chunk.start
    for rule in chunk.analysis.rules:
        if not rule.span.contains(rel):
            continue
        checked = next((c for c in chunk.analysis.checked if c.rule is rule), None)
        if rule.id and rule.id_span.contains(rel) and not rule.bare:  # no id (`rule 9bad {`): its span is the `{`
            written = chunk.analysis.text[rule.id_span.start : rule.id_span.end]
            return _rule_text(rule, checked, written), rule.id_span, chunk.start
        slip = _slip_at(chunk.analysis.diagnostics, rel)
        if slip is not None:
            return _slip_text(slip), slip.span, chunk.start
        for m in rule.meta:
            if m.key_span.contains(rel) and m.key in META_KEYS:
                return f"**{m.key}**: {META_KEYS[m.key]}", m.key_span, chunk.start
        if checked is None:
            continue
        found = expression_at(rule, rel)
        if found is None:
            continue
        unknown = _unknown_at(chunk.analysis.diagnostics, found, rel)
        if unknown is not None:
            return _unknown_text(unknown, checked, found.expr), unknown.span, chunk.start
        expr = _whole_key(rule, checked, found.expr)
        text = _expression_text(checked, expr, found.on_name)
        if text:
            return text, expr.span, chunk.start
    return None


def _whole_key(rule: ast.Rule, checked: CheckedRule, e: ast.Expr) -> ast.Expr:
    """The whole dotted name an attribute read is the start of (`http.route` for its `http`): one key, read
    flat first, then through maps; else `e`."""
    ref = checked.refs.get(id(e))
    if not isinstance(ref, AttrRef):
        return e
    parents = {id(x): parent for x, parent in expressions(rule)}
    while isinstance(parent := parents.get(id(e)), ast.Field):
        outer = checked.refs.get(id(parent))
        if not (isinstance(outer, AttrRef) and outer.key == f"{ref.key}.{parent.name}"):
            break
        e, ref = parent, outer
    return e


def _slip_at(diagnostics: list[Diagnostic], rel: int) -> Diagnostic | None:
    """The syntax error whose text holds `rel`: what is there is the recovery's reading of it (`ownér` as no key,
    TraceQL's `>>` as `and`), not what was written, so the hover says the error, not the reading. Not an error of
    something missing before the text (`expected a name before `{``): that text is read as written."""
    return next(
        (
            d
            for d in diagnostics
            if d.is_error
            and d.code.startswith("FLUO1")
            and d.span.start <= rel < d.span.end
            and not _MISSING_BEFORE.match(d.message)
        ),
        None,
    )


_MISSING_BEFORE = re.compile(r"expected .* before ")
_INDEXED = re.compile(r"(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*)\[")


def _slip_text(d: Diagnostic) -> str:
    """A syntax error's message, and the documentation of the name its fix writes (`severity`, `name`)."""
    parts = [d.message]
    meant = d.suggestion or ""
    indexed = _INDEXED.match(meant)  # `attributes["usuário.id"]`, `parent.resource["ñ"]`: the map it indexes
    meant = indexed.group(1) if indexed else meant
    if meant in META_KEYS and "metadata key" in d.message:
        parts.append(f"**{meant}**: {META_KEYS[meant]}")
    elif meant in b.ROOTS:
        root = b.ROOTS[meant]
        parts.append(f"```fluo\n{root.name}: {root.type}\n```\n{root.doc}")
    else:
        field = b.lookup(t.SPAN, meant)
        if field is not None:
            parts.append(_member_text(field))
    return "\n\n".join(parts)


_UNKNOWN = frozenset({"FLUO200", "FLUO201", "FLUO202"})
"""Unknown name, method, field: nothing there to document, so the hover says the checker's error."""


def _unknown_at(diagnostics: list[Diagnostic], found: Found, rel: int) -> Diagnostic | None:
    """The unknown-name error on the name at `rel` (a method's or field's own name, or a bare name)."""
    at = name_span(found.expr) if found.on_name else found.expr.span if isinstance(found.expr, ast.Name) else None
    if at is None:
        return None
    return next((d for d in diagnostics if d.code in _UNKNOWN and d.span == at and d.span.contains(rel)), None)


def _unknown_text(d: Diagnostic, checked: CheckedRule, e: ast.Expr) -> str:
    """An unknown name's error, which says its did-you-mean or what the receiver has, and the documentation of
    the member the did-you-mean names (`count` for `trace.spans.cuont()`), as a slip's hover has its fix's."""
    meant = d.suggestion or d.guess
    receiver = checked.types.get(id(e.target)) if isinstance(e, ast.Field | ast.Call) else None
    member = b.lookup(receiver, meant) if receiver is not None and meant else None
    return f"{d.message}\n\n{_member_text(member)}" if member is not None else d.message


def _rule_text(rule: ast.Rule, checked: CheckedRule | None, written: str) -> str:
    """What a rule id's hover says; `written` is the id's text, which recovery may have read as another
    (`my-rule` as `my_rule`)."""
    read_as = "" if written == rule.id else f"`{written}` is no rule id; read as "
    if checked is None:
        return f"{read_as}rule `{rule.id}`"
    disabled = "" if checked.enabled else "disabled; "
    lines = [f"{read_as}rule `{rule.id}` ({disabled}{checked.mode}, severity {checked.severity})"]
    if checked.window_ns is not None:
        lines.append(f"window {format_duration(checked.window_ns)}")
    if checked.description:
        lines += ["", checked.description]
    return "\n".join(lines)


def _member_text(m: b.Member) -> str:
    text = f"```fluo\n{m.signature}\n```\n{m.doc}"
    return text + (f"\n\nExample: `{m.example}`" if m.example else "")


def _expression_text(checked: CheckedRule, e: ast.Expr, on_name: bool) -> str:
    ty = checked.types.get(id(e))
    ref = checked.refs.get(id(e))
    type_line = f"type `{ty}`" if ty is not None and ty != t.ERROR else ""
    parts: list[str] = []
    if isinstance(ref, MemberRef) and (on_name or isinstance(e, ast.Name)):
        parts.append(_member_text(ref.member))
    elif isinstance(ref, RootRef):
        root = b.ROOTS[ref.name]
        parts.append(f"```fluo\n{root.name}: {root.type}\n```\n{root.doc}")
    elif isinstance(ref, ItRef):
        parts.append(f"```fluo\nit: span\n```\n{b.ROOTS['it'].doc}")
    elif isinstance(ref, AttrRef):
        where = "resource attribute" if ref.source == "map" else "span attribute"
        parts.append(f"{where} `{ref.key}`: its type is known only at run time; missing values compare false")
    elif isinstance(ref, EnumRef):
        parts.append(f"`{ref.value}`: a value of `{ty}` (one of {', '.join(t.ENUMS.get(ty or t.ANY, ()))})")
    elif isinstance(e, ast.Binary | ast.Logic | ast.Unary):
        op = b.OPERATOR_BY_SYMBOL.get(e.op)
        if op is not None:
            parts.append(f"`{e.op}`: {op.doc}")
    if type_line:
        parts.append(type_line)
    if id(e) in checked.coerced:
        parts.append("read as a boolean: whether there is any span")
    return "\n\n".join(parts)
