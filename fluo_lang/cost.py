"""What a rule costs to evaluate, before it runs and while it runs.

The unit is the *span visit*: a predicate or per-span value evaluated on one
span, or one span walked to build a set (`descendants`, `ancestors`) or a
summary of the trace (`trace.duration`, `trace.services`). Work that grows with
the strings a rule reads counts a visit per block of their characters (`+`,
`lower()`, `matches`, `contains`, comparisons of two strings: `string_work`).
Everything else a rule does is constant work per visit and is not counted.

`estimate` reads a rule's IR and gives its worst-case visits as a polynomial
in n, the number of spans of the trace (or window): every spans value may hold
all n spans, so `trace.spans.where(P)` costs n·(1 + cost(P)) and a span-set
method nested inside a predicate multiplies. Lookups through the per-trace
indexes (`where(name == "x")` after `use_indexes`) are free, since the index is
built once per trace and shared by every rule. `check_cost` turns a rule whose
estimate on a trace of `trace_spans` spans exceeds a limit into a FLUO404 error.

`Meter` counts the same visits at run time: `instrument` returns a rule whose
registry implementations charge the meter, and the meter raises
`BudgetExhausted` once the visits of one trace pass the budget. The evaluator
(`Program(rules, budget=...)`) catches it and reports the truncation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from . import types as t
from .builtins import Member
from .diagnostics import Diagnostic, Related, error
from .ir import Node, RuleIR
from .regex import RegexError, compile_regex, latin1_program_size, program_size
from .values import MAX_STRING_CHARS

# A quadratic rule (one span-set method inside another's predicate) passes on the
# reference trace; a cubic one does not.
DEFAULT_TRACE_SPANS = 1_000
DEFAULT_COST_LIMIT = 10_000_000
# Span visits one trace (or window) may spend at run time across all rules.
DEFAULT_BUDGET = 2_000_000

# Registry fields whose evaluation walks spans: "result" walks the spans it returns,
# "trace" every span of the trace it is read from. Methods need no entry: those
# taking a predicate or per-span value visit every span of their receiver.
FIELD_WALKS: dict[tuple[str, str], str] = {
    ("span", "descendants"): "result",
    ("span", "ancestors"): "result",
    ("trace", "start"): "trace",
    ("trace", "end"): "trace",
    ("trace", "duration"): "trace",
    ("trace", "services"): "trace",
}
# Methods that visit every span of their receiver and of their one argument.
PAIR_METHODS = frozenset({"before", "after"})

# `matches`: RE2 is linear in the input, but once a large pattern exhausts its DFA cache it
# steps every instruction of its program for every byte (about 36 ns per instruction per byte:
# 120 µs a byte for 3,300 instructions). Small programs run from the DFA at a few ns a byte.
# A Unicode class is large as a program (`\pL`: 1,200 instructions of UTF-8 byte ranges) but a
# search follows only the few its current byte selects: see `regex_weight`.
REGEX_FREE_PROGRAM = 128
"""Patterns weighing at most this much (`regex_weight`) are not counted (every pattern of the examples weighs
under 10)."""
MAX_UTF8_BYTES = 4
"""The most bytes a character takes in UTF-8: the steps a search may take for one character of a pattern."""
REGEX_STEPS_PER_VISIT = 8
"""Instruction-steps (program size times characters searched) that cost about one span visit."""
ASSUMED_STRING_CHARS = 100
"""The length the static estimate assumes of a string a pattern searches or `+` joins (a span name, a route)."""
JOIN_CHARS_PER_VISIT = 256
"""Characters a string `+` makes that cost about one span visit (copying them, with the allocation: about 0.3 ns
a character, where a span visit is 100-300 ns). A join makes at most `MAX_STRING_CHARS` (longer is missing)."""
SCAN_CHARS_PER_VISIT = 256
"""Characters `lower()`, `upper()`, `matches` and `contains` go through in about one span visit: on 2026-12-07,
2.1 ns a character for `lower()` of non-ASCII text (0.25 ASCII), 0.6-1.1 ns for a search, where a span visit costs
20-300 ns and the default budget allows 500. A string a sender sends has no length bound but its request's."""
COMPARE_CHARS_PER_VISIT = 8_192
"""Characters compared (`==`, `<`, `starts_with`, `ends_with` between strings neither of which is a literal) in
about one span visit: 0.04 ns a character. Against a literal, a comparison is bounded by the literal."""
SCANNING_METHODS = frozenset({"lower", "upper"})
COMPARING_METHODS = frozenset({"starts_with", "ends_with"})


@dataclass(frozen=True, slots=True)
class Poly:
    """A polynomial in n with non-negative integer coefficients, lowest degree first."""

    coefficients: tuple[int, ...] = ()

    @staticmethod
    def of(*coefficients: int) -> Poly:
        coeffs = list(coefficients)
        while coeffs and coeffs[-1] == 0:
            coeffs.pop()
        return Poly(tuple(coeffs))

    def plus(self, other: Poly) -> Poly:
        a, b = self.coefficients, other.coefficients
        return Poly.of(*((a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(max(len(a), len(b)))))

    def times_n(self) -> Poly:
        """This polynomial multiplied by n: one more level of iteration over spans."""
        return Poly.of(0, *self.coefficients) if self.coefficients else self

    @property
    def degree(self) -> int:
        return len(self.coefficients) - 1

    def at(self, n: int) -> int:
        return sum(c * n**i for i, c in enumerate(self.coefficients))

    def text(self) -> str:
        """Like `2n² + n`."""
        terms = []
        for i, c in reversed(list(enumerate(self.coefficients))):
            if c == 0:
                continue
            power = "n" + _superscript(i) if i > 1 else "n" * i
            terms.append(power if c == 1 and power else f"{c}{power}")
        return " + ".join(terms) or "0"


ZERO = Poly()
ONE = Poly.of(1)
N = Poly.of(0, 1)


def _superscript(i: int) -> str:
    return str(i).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def growth(p: Poly) -> str:
    """Big-O text of a cost: `O(1)`, `O(n)`, `O(n²)`."""
    if p.degree <= 0:
        return "O(1)"
    return "O(n)" if p.degree == 1 else f"O(n{_superscript(p.degree)})"


def approx(count: int) -> str:
    """A count of visits for a message: exact when small, `3.2e9` when large (and huge ints)."""
    if count < 100_000:
        return str(count)
    digits = str(count)
    return f"{digits[0]}.{digits[1]}e{len(digits) - 1}"


def walks(node: Node) -> str | None:
    """How an IR node visits spans: "receiver", "pair", "result", "trace", or None when it does not."""
    member = node.value
    if not isinstance(member, Member):
        return None
    if node.op == "call":
        if member.name in PAIR_METHODS and member.receiver == t.SPANS:
            return "pair"
        if any(a.op == "fn" for a in node.args[1:]):  # a predicate or per-span value
            return "receiver"
        return None
    if node.op == "get":
        return FIELD_WALKS.get((member.receiver.name, member.name))
    return None


_UNICODE_CLASS = re.compile(
    r"\\(?:([pP])(\{[^}]*\}|.)|.)", re.S
)  # escapes read left to right: `\\pL`, an escaped backslash, is none


def _one_byte_classes(pattern: str) -> str:
    """`pattern` with each Unicode class (`\\pL`, `\\p{Greek}`, `\\PN`, `\\p{^L}`) written `\\w`, or `\\W` when
    negated: a class in the same place of the pattern's structure, one byte wide."""

    def one_byte(m: re.Match[str]) -> str:
        if not m[1]:
            return m[0]
        negated = (m[1] == "P") != m[2].startswith("{^")
        return "\\W" if negated else "\\w"

    return _UNICODE_CLASS.sub(one_byte, pattern)


@lru_cache(maxsize=1024)
def regex_weight(pattern: str) -> int:
    """A pattern's cost per character searched, in instruction-steps, or 0 up to `REGEX_FREE_PROGRAM`
    (and for a pattern RE2 rejects, which the typechecker reports).

    Its RE2 program size, but at most `MAX_UTF8_BYTES` times the size of its structure: the
    program of the pattern in Latin-1 with each Unicode class one byte wide (`_one_byte_classes`).
    A search, from the DFA or stepping the program once the DFA cache runs out, tracks the
    positions the structure allows, a few steps each per character, not every byte range a
    class compiles to. Measured with google-re2 on 100-character strings (ASCII, Cyrillic, CJK,
    emoji): `\\pL` (1,200 instructions, weight 28) costs 36-39 ns a character, as `.` does;
    `\\pL{60}$` (71,764 instructions, weight 736) 5.5 µs on CJK; `(\\pL|\\pN)*` x 300
    (403,503, weight 7,212) 96 µs on CJK; `(a|.)*` x 300 (3,303, weight 3,303) 52-74 µs. Each
    costs less than its weight times 36 ns.
    """
    try:
        size = program_size(pattern)
    except RegexError:
        return 0
    structure = latin1_program_size(_one_byte_classes(pattern))
    if structure is not None:
        size = min(size, MAX_UTF8_BYTES * structure)
    return size if size > REGEX_FREE_PROGRAM else 0


def match_visits(pattern: str, chars: int = ASSUMED_STRING_CHARS) -> int:
    """Span visits one search of `chars` characters with `pattern` is worth (0 for all but large patterns)."""
    return -(-regex_weight(pattern) * chars // REGEX_STEPS_PER_VISIT)


def joins_strings(node: Node) -> bool:
    """Whether `node` is a `+` that may join strings (its work grows with their length)."""
    return node.op == "arith" and node.value == "+" and node.type in (t.STRING, t.ANY)


def joined_chars(node: Node, chars: int = ASSUMED_STRING_CHARS) -> int:
    """The length of the string `node` gives, taking each string read from a span (or attribute) as `chars`
    long: a join is as long as its operands together, at most `MAX_STRING_CHARS`."""
    if joins_strings(node):
        return min(sum(joined_chars(a, chars) for a in node.args), MAX_STRING_CHARS)
    if node.op == "const":
        return len(node.value) if isinstance(node.value, str) else 0
    return chars


def join_visits(chars: int) -> int:
    """Span visits a `+` making a string of `chars` characters is worth (0 for everyday strings)."""
    return min(chars, MAX_STRING_CHARS) // JOIN_CHARS_PER_VISIT


def _may_be_string(node: Node) -> bool:
    return node.op != "const" and node.type in (t.STRING, t.ANY)


def string_work(node: Node) -> int:
    """Characters per span visit of the strings `node` goes through, when its work grows with their length
    and no literal bounds it (0 when none does): `SCAN_CHARS_PER_VISIT` for `lower()`, `upper()`, `matches`
    and `contains`, `COMPARE_CHARS_PER_VISIT` for a comparison or `starts_with`/`ends_with` of two strings
    neither of which is a literal. The static estimate takes these strings as `ASSUMED_STRING_CHARS` long
    (no visits); the meter charges their length."""
    if node.op == "matches":
        return SCAN_CHARS_PER_VISIT
    if node.op == "contains":
        return SCAN_CHARS_PER_VISIT if node.args[0].op != "const" else 0  # the haystack
    if node.op == "cmp":
        return COMPARE_CHARS_PER_VISIT if all(_may_be_string(a) for a in node.args) else 0
    member = node.value
    if node.op == "call" and isinstance(member, Member) and member.receiver == t.STRING:
        if member.name in SCANNING_METHODS:
            return SCAN_CHARS_PER_VISIT
        if member.name in COMPARING_METHODS and len(node.args) == 2 and node.args[1].op != "const":
            return COMPARE_CHARS_PER_VISIT
    return 0


def works_on_strings(rule: RuleIR) -> bool:
    """Whether the rule has an operation whose work grows with the length of strings it reads (`string_work`)."""
    return any(string_work(n) for _kind, root in rule.clauses() for n in _nodes(root))


def weighs_regexes(rule: RuleIR) -> bool:
    """Whether the rule has a `matches` whose cost is counted: its work grows with the strings searched
    as well as with the spans, so no number of spans bounds it (the evaluator always meters it)."""
    return any(match_visits(n.value) for _kind, root in rule.clauses() for n in _nodes(root) if n.op == "matches")


def _nodes(root: Node) -> list[Node]:
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.args)
    return out


def visits(node: Node, chars: int = ASSUMED_STRING_CHARS) -> Poly:
    """Worst-case span visits of evaluating `node` once (a `matches` on a string of `ASSUMED_STRING_CHARS`;
    a string `+` of operands read from spans `chars` long each: `joined_chars`)."""
    if node.op == "matches":
        return Poly.of(match_visits(node.value)).plus(visits(node.args[0], chars))
    kind = walks(node)
    if kind == "receiver" and node.op == "call":
        inner = ZERO
        for arg in node.args[1:]:
            inner = inner.plus(visits(arg.args[0], chars) if arg.op == "fn" else visits(arg, chars))
        return visits(node.args[0], chars).plus(ONE.plus(inner).times_n())
    total = Poly.of(0, 2) if kind == "pair" else N if kind in ("result", "trace") else ZERO
    if joins_strings(node):
        total = Poly.of(join_visits(joined_chars(node, chars)))
    for arg in node.args:
        total = total.plus(visits(arg, chars))
    return total


def estimate(rule: RuleIR, chars: int = ASSUMED_STRING_CHARS) -> Poly:
    """Worst-case span visits of evaluating every clause of a rule on one trace of n spans, with each string
    a `+` joins `chars` long (`MAX_STRING_CHARS`: the most any join can cost, whatever senders send)."""
    total = ZERO
    for _kind, node in rule.clauses():
        total = total.plus(visits(node, chars))
    return total


def _loops(node: Node) -> list[Node]:
    """The iterating nodes along the most expensive path from `node`, outermost first."""
    out: list[Node] = []
    cur: Node | None = node
    while cur is not None:
        if walks(cur) is not None:
            out.append(cur)
        # on a tie, follow the predicate: that is where the nesting is
        ranked = [
            (visits(a).degree, visits(a).at(DEFAULT_TRACE_SPANS), a.op == "fn", i) for i, a in enumerate(cur.args)
        ]
        best = max(ranked, default=None)
        if best is None or best[0] < 1:
            break
        nxt = cur.args[best[3]]
        cur = nxt.args[0] if nxt.op == "fn" else nxt
    return out


def check_cost(
    rules: list[RuleIR],
    limit: int = DEFAULT_COST_LIMIT,
    trace_spans: int = DEFAULT_TRACE_SPANS,
) -> list[Diagnostic]:
    """FLUO404 for every rule whose estimate on a trace of `trace_spans` spans exceeds `limit` visits."""
    out: list[Diagnostic] = []
    for rule in rules:
        cost = estimate(rule)
        total = cost.at(trace_spans)
        if total <= limit:
            continue
        worst = max((node for _kind, node in rule.clauses()), key=lambda n: visits(n).at(trace_spans))
        loops = _loops(worst)
        where = loops[0] if loops else worst
        related = tuple(Related("and for each of those spans, this visits spans again", n.span) for n in loops[1:4])
        regexes = [n for n in _nodes(worst) if n.op == "matches" and match_visits(n.value)]
        related += tuple(
            Related(f"this pattern costs about {approx(match_visits(n.value))} span visits a search", n.span)
            for n in regexes[:3]
        )
        hint = "; or use smaller regular expressions" if regexes else ""
        if any(joins_strings(n) and join_visits(joined_chars(n)) for n in _nodes(worst)):
            hint += "; or join fewer strings with `+`"
        out.append(
            error(
                "FLUO404",
                f"rule `{rule.id}` is too expensive: about {approx(total)} span visits on a trace of "
                f"{trace_spans} spans ({growth(cost)}: {cost.text()}), over the limit of {approx(limit)}; "
                "avoid nesting span-set methods inside predicates, or filter by name or service first" + hint,
                where.span,
                path=rule.path,
                related=related,
            )
        )
    return out


class BudgetExhausted(Exception):
    """Raised inside evaluation when one trace's span visits pass the meter's budget."""


class Meter:
    """Counts span visits of instrumented rules against a per-trace (or per-window) budget.

    Not shared between threads: one meter belongs to one `Program`.
    """

    __slots__ = ("budget", "left")

    def __init__(self, budget: int) -> None:
        if budget <= 0:
            raise ValueError("an evaluation budget must be a positive number of span visits")
        self.budget = budget
        self.left = budget

    def start(self) -> None:
        self.left = self.budget

    @property
    def spent(self) -> int:
        return self.budget - self.left

    def charge(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise BudgetExhausted

    def instrument(self, rule: RuleIR, strings_only: bool = False) -> RuleIR:
        """The same rule, with every span-visiting implementation charging this meter (and every
        pattern: `MeteredPattern`, string `+`: `MeteredJoin`, and other work on strings: `string_work`).

        `strings_only`: only the work on strings other than `+` is charged, the work the static
        estimate cannot bound (see `Program`)."""

        def meter_node(node: Node) -> Node:
            args = tuple(meter_node(a) for a in node.args)
            chars = string_work(node)
            if node.op == "matches":
                return node.replace(args=args, value=self._metered_pattern(node.value))
            if chars and node.op in ("contains", "cmp"):
                symbol = node.value if node.op == "cmp" else "contains"
                return node.replace(args=args, value=MeteredOperands(symbol, self._charging(chars)))
            if chars:
                member: Member = node.value
                return node.replace(args=args, value=replace(member, impl=self._metered_method(member.impl, chars)))
            if strings_only:
                return node if args == node.args else node.replace(args=args)
            if joins_strings(node):
                return node.replace(args=args, value=MeteredJoin(node.value, self._charging(JOIN_CHARS_PER_VISIT)))
            kind = walks(node)
            if kind is None:
                return node if args == node.args else node.replace(args=args)
            member = node.value
            on_root = member.receiver in (t.TRACE, t.WINDOW)
            return node.replace(args=args, value=replace(member, impl=self._metered(member.impl, kind, on_root)))

        return replace(
            rule,
            condition=meter_node(rule.condition),
            always=meter_node(rule.always) if rule.always is not None else None,
            never=meter_node(rule.never) if rule.never is not None else None,
        )

    def _metered_pattern(self, pattern: str) -> MeteredPattern:
        meter = self
        # per character: its instruction-steps (`regex_weight`) and the scan itself, in 1/256 of a visit
        weight = regex_weight(pattern) * (256 // REGEX_STEPS_PER_VISIT) + 256 // SCAN_CHARS_PER_VISIT
        search = compile_regex(pattern).search

        def metered_search(text: str) -> Any:
            meter.left -= len(text) * weight >> 8
            if meter.left < 0:
                raise BudgetExhausted
            return search(text)

        return MeteredPattern(pattern, metered_search)

    def _charging(self, chars: int) -> Callable[[Any], Any]:
        """A function giving back its argument once a string's length is charged: a visit per `chars`."""
        meter = self

        def charge(value: Any) -> Any:
            if isinstance(value, str):
                meter.left -= len(value) // chars
                if meter.left < 0:
                    raise BudgetExhausted
            return value

        return charge

    def _metered_method(self, impl: Callable[..., Any], chars: int) -> Callable[..., Any]:
        """A string method's `impl` (`string_work`) charging its receiver's length first, or for a prefix
        or suffix test the shorter of the receiver and the argument (all it compares)."""
        meter = self

        def method(ctx: Any, recv: Any, *args: Any) -> Any:
            if isinstance(recv, str):
                size = len(recv)
                if args and isinstance(args[0], str):
                    size = min(size, len(args[0]))
                meter.left -= size // chars
                if meter.left < 0:
                    raise BudgetExhausted
            return impl(ctx, recv, *args)

        return method

    def _metered(self, impl: Callable[..., Any], kind: str, on_root: bool) -> Callable[..., Any]:
        """`impl` charging this meter first (after, for "result": its size is known only then).

        The accounting is inlined rather than a call to `charge`: these run once per method
        call of every metered rule, so one call fewer is a measurable share of a small trace.
        """
        meter = self
        if kind == "result":

            def result(receiver: Any) -> Any:
                value = impl(receiver)
                meter.left -= len(value)
                if meter.left < 0:
                    raise BudgetExhausted
                return value

            return result
        if kind == "trace":

            def trace_field(root: Any) -> Any:
                meter.left -= len(root.spans)
                if meter.left < 0:
                    raise BudgetExhausted
                return impl(root)

            return trace_field
        if kind == "receiver" and on_root:  # `trace.has(P)`, `window.count(P)`

            def root_method(ctx: Any, root: Any, fn: Any) -> Any:
                meter.left -= len(root.spans)
                if meter.left < 0:
                    raise BudgetExhausted
                return impl(ctx, root, fn)

            return root_method
        if kind == "receiver":  # every such method takes one predicate or per-span value

            def receiver(ctx: Any, recv: Any, fn: Any) -> Any:
                meter.left -= len(recv)
                if meter.left < 0:
                    raise BudgetExhausted
                return impl(ctx, recv, fn)

            return receiver

        def pair(ctx: Any, recv: Any, other: Any) -> Any:
            meter.left -= len(recv) + len(other)
            if meter.left < 0:
                raise BudgetExhausted
            return impl(ctx, recv, other)

        return pair


class MeteredPattern(str):
    """The pattern of a `matches` (the same string) whose `search` charges a meter before searching:
    `match_visits` of the text's length, and a visit per `SCAN_CHARS_PER_VISIT` characters. The evaluator
    searches with it in place of the compiled pattern."""

    search: Callable[[str], Any]

    def __new__(cls, pattern: str, search: Callable[[str], Any]) -> MeteredPattern:
        self = super().__new__(cls, pattern)
        self.search = search
        return self


class MeteredJoin(str):
    """The operator of a `+` that may join strings (the same string, `"+"`) whose `charge` the evaluator applies
    to the result: `join_visits` of its length, after the join, which `MAX_STRING_CHARS` bounds."""

    charge: Callable[[Any], Any]

    def __new__(cls, symbol: str, charge: Callable[[Any], Any]) -> MeteredJoin:
        self = super().__new__(cls, symbol)
        self.charge = charge
        return self


class MeteredOperands(str):
    """The operator of a comparison or a `contains` whose work grows with its strings (`string_work`), the same
    string (`"=="`, or `"contains"`), whose `charge` the evaluator applies to each operand that may be a long
    string (a `contains`: the haystack) before the operation, giving the operand back."""

    charge: Callable[[Any], Any]

    def __new__(cls, symbol: str, charge: Callable[[Any], Any]) -> MeteredOperands:
        self = super().__new__(cls, symbol)
        self.charge = charge
        return self
