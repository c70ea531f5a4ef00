"""Static types of the rule language."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Type:
    name: str
    elem: Type | None = None

    def __str__(self) -> str:
        return f"list<{self.elem}>" if self.elem is not None else self.name

    @property
    def is_list(self) -> bool:
        return self.name == "list"


BOOL = Type("bool")
INT = Type("int")
FLOAT = Type("float")
STRING = Type("string")
DURATION = Type("duration")
TIMESTAMP = Type("timestamp")
SPAN = Type("span")
SPANS = Type("spans")
ANY = Type("any")
STATUS = Type("status")
KIND = Type("kind")
MAP = Type("map")
TRACE = Type("trace")
WINDOW = Type("window")
TRACES = Type("traces")
# The type of an expression that already failed to check; it silences further errors.
ERROR = Type("<error>")


def list_of(elem: Type) -> Type:
    return Type("list", elem)


NUMERIC = frozenset({INT, FLOAT})
ENUMS = {
    STATUS: ("ok", "error", "unset"),
    KIND: ("server", "client", "producer", "consumer", "internal", "unspecified"),
}


def is_numeric(t: Type) -> bool:
    return t in NUMERIC


def lenient(t: Type) -> bool:
    """Types that match anything: undeclared attribute values and already-reported errors."""
    return t in (ANY, ERROR)


def left_of(op: str, t: Type) -> bool:
    """Whether a value of type `t` can stand left of `op`: `contains` takes a string or a list, `matches` a
    string, any other operator anything (what else it needs is another rule's)."""
    if op == "contains":
        return t == STRING or t.is_list
    if op == "matches":
        return t == STRING
    return True


def comparable(a: Type, b: Type, *, ordering: bool) -> bool:
    """Whether `a OP b` is allowed statically; `ordering` for < <= > >=."""
    if lenient(a) or lenient(b):
        return True
    if is_numeric(a) and is_numeric(b):
        return True
    if a in ENUMS or b in ENUMS:
        if ordering:
            return False
        other = b if a in ENUMS else a
        return other == STRING or other == (a if a in ENUMS else b)
    if a.is_list and b.is_list and not ordering:  # item by item: `[]` is any list, `[1]` equals `[1.0]`
        return comparable(a.elem or ANY, b.elem or ANY, ordering=False)
    if a != b:
        return False
    if ordering:
        return a in (STRING, DURATION, TIMESTAMP)
    return a not in (SPANS, TRACE, WINDOW, TRACES)
