"""The typed syntax tree: frozen nodes, each carrying the source range it came from.

Nothing here knows about lark; `parser.py` builds these nodes and every later
stage reads only them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal as L


@dataclass(frozen=True, slots=True)
class Span:
    """A source range. Offsets and line/column numbers are 0-based; `end` is exclusive."""

    start: int
    end: int
    line: int
    col: int
    end_line: int
    end_col: int

    def contains(self, offset: int) -> bool:
        return self.start <= offset <= self.end


NO_SPAN = Span(0, 0, 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Expr:
    span: Span


@dataclass(frozen=True, slots=True)
class Literal(Expr):
    """A constant. Durations are integer nanoseconds."""

    value: object
    kind: L["int", "float", "string", "bool", "duration"]


@dataclass(frozen=True, slots=True)
class ListLit(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Name(Expr):
    """A bare identifier: a root (`trace`, `window`, `it`), an intrinsic, or an attribute."""

    ident: str


@dataclass(frozen=True, slots=True)
class Field(Expr):
    """`target.name`, not called."""

    target: Expr
    name: str
    name_span: Span


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """`target.method(args)`."""

    target: Expr
    method: str
    method_span: Span
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Index(Expr):
    """`target[key]`, e.g. `attributes["odd key"]`."""

    target: Expr
    key: Expr


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    op: L["not", "-"]
    operand: Expr


BinaryOp = L[
    "==", "!=", "<", "<=", ">", ">=", "in", "not in", "contains", "matches",
    "+", "-", "*", "/",
]  # fmt: skip

COMPARISONS: frozenset[str] = frozenset({"==", "!=", "<", "<=", ">", ">="})
"""The binary operators that compare two values (a `cmp` node in the IR)."""


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    op: BinaryOp
    left: Expr
    right: Expr
    op_span: Span
    """The operator (`not in` whole): where a type error of the operator is said, its operands related."""


@dataclass(frozen=True, slots=True)
class Logic(Expr):
    """`a and b and ...` or `a or b or ...`: two or more operands, evaluated left to right."""

    op: L["and", "or"]
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Missing(Expr):
    """Where the parser recovered from a syntax error; already reported, checks stay quiet."""


def children(e: Expr) -> tuple[Expr, ...]:
    """The expressions `e` is made of, left to right."""
    if isinstance(e, Binary):
        return (e.left, e.right)
    if isinstance(e, Logic):
        return e.operands
    if isinstance(e, Unary):
        return (e.operand,)
    if isinstance(e, Field):
        return (e.target,)
    if isinstance(e, Call):
        return (e.target, *e.args)
    if isinstance(e, Index):
        return (e.target, e.key)
    if isinstance(e, ListLit):
        return e.items
    return ()


MetaValue = str | int | float | bool | list["MetaItem"]


@dataclass(frozen=True, slots=True)
class MetaItem:
    """One metadata value; `kind` tells a quoted string from a bare word. A duration is the text written
    (`1s`): no key takes one, so it is only ever quoted back.

    `missing`: a value the parser refused (a list nested too deeply) and already reported; checks stay quiet.
    """

    span: Span
    value: MetaValue
    kind: L["string", "ident", "int", "float", "duration", "bool", "list", "missing"]


@dataclass(frozen=True, slots=True)
class Meta:
    span: Span
    key: str
    key_span: Span
    value: MetaItem


# The metadata keys a rule takes, and what each holds: the parser names them for a key it cannot read
# (`usuário:`), the typechecker checks keys and values against them.
META_KEYS = {
    "severity": "one of info, warning, error, critical (default warning)",
    "description": "a string shown in every signal",
    "name": "a display name (default: the rule id)",
    "tags": "a list of words, e.g. [auth, reliability]",
    "owner": "a team or person, as a string",
    "runbook": "a link, as a string",
    "enabled": "true or false (default true)",
}

SEVERITIES = ("info", "warning", "error", "critical")


def meta_fits(key: str, v: MetaItem) -> bool:
    """Whether `v` is a value the metadata key `key` takes (what the typechecker accepts): a guess for a
    misspelled key (`lower: critical`, `ownér: error`) must be one its value fits (`owner` takes a string)."""
    if key == "severity":
        return v.kind in ("ident", "string") and v.value in SEVERITIES
    if key == "tags":
        return isinstance(v.value, list) and all(i.kind in ("ident", "string") for i in v.value)
    return v.kind == ("bool" if key == "enabled" else "string")


ClauseKind = L["expect", "detect", "when", "always", "never"]


@dataclass(frozen=True, slots=True)
class Clause:
    span: Span
    kind: ClauseKind
    expr: Expr


@dataclass(frozen=True, slots=True)
class WindowClause:
    span: Span
    length_ns: int


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule as written. `bare` marks a file holding one bare expression."""

    span: Span
    id: str
    id_span: Span
    meta: tuple[Meta, ...]
    clauses: tuple[Clause, ...]
    windows: tuple[WindowClause, ...] = ()
    bare: bool = False


@dataclass(frozen=True, slots=True)
class RuleFile:
    path: str
    text: str
    rules: tuple[Rule, ...] = field(default=())
