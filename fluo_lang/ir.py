"""The compiled intermediate representation shared by every evaluation path.

An IR node is an operation, its static type, its operands and one constant
payload (a literal, a registry member, an attribute key, an operator), plus the
source range it came from. `fluo check --emit-ir` prints it with `format_rule`.

Operations:
  const          value                      a literal (durations in ns)
  list           -                          a list of its operands
  root           'trace' | 'window'         the trace or window being checked
  it             -                          the span in scope inside a predicate
  get            Member                     a registry field of operand 0
  call           Member                     a registry method: operand 0 is the receiver
  fn             -                          a predicate or per-span value: operand 0 under `it`
  attr           key                        span attribute of operand 0 (a span)
  map_get        key                        key of operand 0 (a map)
  index          -                          operand 0 [operand 1]
  exists         -                          a spans or span value read as a boolean
  and, or, not   -
  cmp            '==' '!=' '<' '<=' '>' '>='
  in, not_in, contains
  matches        pattern                    RE2 search
  arith          '+' '-' '*' '/'
  neg            -
  lookup         (field, value)             spans of operand 0 (a root) whose intrinsic equals value
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .ast import NO_SPAN, Span
from .builtins import Member
from .types import Type
from .values import format_duration


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    op: str
    type: Type
    args: tuple[Node, ...] = ()
    value: Any = None
    span: Span = NO_SPAN

    def replace(self, **changes: Any) -> Node:
        kw = {
            "op": self.op,
            "type": self.type,
            "args": self.args,
            "value": self.value,
            "span": self.span,
        }
        kw.update(changes)
        return Node(**kw)

    def walk(self) -> list[Node]:
        """This node and every node below it, parents first."""
        out: list[Node] = []
        stack = [self]
        while stack:
            n = stack.pop()
            out.append(n)
            stack.extend(reversed(n.args))
        return out


@dataclass(frozen=True, slots=True)
class RuleIR:
    """One compiled rule. `fires` says how the clauses combine into a signal:

    expect: `not condition`; detect: `condition`;
    when: `condition and (not always or never)`.
    """

    id: str
    path: str
    span: Span
    mode: str
    condition: Node
    always: Node | None = None
    never: Node | None = None
    severity: str = "warning"
    name: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    window_ns: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the rule's text, for messages and reports

    def clauses(self) -> list[tuple[str, Node]]:
        out = [(self.mode, self.condition)]
        if self.always is not None:
            out.append(("always", self.always))
        if self.never is not None:
            out.append(("never", self.never))
        return out


def payload_text(node: Node) -> str:
    v = node.value
    if isinstance(v, Member):
        return v.name
    if node.op == "const":
        return _const_text(v, node.type)
    if node.op == "lookup":
        fld, val = v
        return f"{fld} {val!r}"
    if isinstance(v, str):
        return v if node.op in ("cmp", "arith", "root") else repr(v)
    return "" if v is None else repr(v)


def _const_text(v: Any, ty: Type) -> str:
    if ty.name == "duration" and isinstance(v, int):
        return format_duration(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)


def format_node(node: Node, indent: int = 0) -> str:
    """S-expression text, one operation per line once it gets long."""
    head = node.op
    payload = payload_text(node)
    if payload:
        head += " " + payload
    head += f" :{node.type}"
    if not node.args:
        return f"({head})"
    children = [format_node(a, indent + 2) for a in node.args]
    one_line = f"({head} {' '.join(children)})"
    if len(one_line) + indent <= 100 and "\n" not in one_line:
        return one_line
    pad = " " * (indent + 2)
    return f"({head}\n" + "\n".join(pad + c for c in children) + ")"


def format_rule(rule: RuleIR) -> str:
    where = f"{rule.path}:{rule.span.line + 1}:{rule.span.col + 1}"
    meta = f"severity={rule.severity}"
    if rule.window_ns is not None:
        meta += f" window={format_duration(rule.window_ns)}"
    lines = [f"rule {rule.id} [{rule.mode}] {meta}  @ {where}"]
    for kind, node in rule.clauses():
        lines.append(f"  {kind}: " + format_node(node, 4))
    return "\n".join(lines)
