"""`fluo discover --compare`: how existing rules fare on a corpus, and what contradicts them.

Each rule is run through the one evaluator on every trace, as `fluo eval` runs it (its cost limit
refuses a rule, FLUO404; its evaluation budget cuts a trace short, and the rules skipped there count
it as `truncated`):
how often it applied (its `when` held; always, for `expect`/`detect`), how
often it fired, and so on what share of traces it held. Then what the corpus
says against the rule's assumptions: every bound the rule compares a trace-level
value with (`count() <= 5`) is set beside the range that value actually took,
operation and service names the rule mentions that never occur are named, and
the discovered facts about the operations and services the rule mentions are
listed for rules that did not hold everywhere or never applied: first those
that contradict an assumption the corpus broke, matched with the rule by meaning
(both compiled, span sets compared by their filters), each once (`_outdone`), then
those about the same value, spans or operations. An `expect` or `always` assumes
what it says, a `never` its negation (`_signed`); `_claims` reads each assumption.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from fluo_lang.api import RuleSourceError, analyze, analyze_paths, lower
from fluo_lang.builtins import Member
from fluo_lang.cost import DEFAULT_BUDGET, DEFAULT_COST_LIMIT, check_cost
from fluo_lang.diagnostics import plural
from fluo_lang.evaluate import TRUNCATED_RULE, CompiledRule, Program, Signal
from fluo_lang.ir import Node, RuleIR, payload_text
from fluo_lang.parser import DURATION_UNITS
from fluo_lang.trace import Trace, windows_of
from fluo_lang.values import format_duration, one_line, to_json

from ..cli import fail, with_cost_limit
from .corpus import Corpus
from .facts import Fact
from .render import confidence_text, description, rule_text

MAX_RELATED = 3
_KIND_OF_MEMBER = {
    "count": "count",
    "before": "order",
    "after": "order",
    "duration": "duration",
    "status": "error_free",
    "parent": "parent",
    "ancestors": "parent",
    "children": "parent",
    "has": "cooccurrence",
}
_UNITS = tuple((unit, DURATION_UNITS[unit]) for unit in ("h", "m", "s", "ms", "us", "ns"))  # largest first
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}


def _signed(node: Node, assumed: bool = False, denied: bool = False) -> Iterator[tuple[Node, bool]]:
    """The trace-level nodes of a clause (not those inside a predicate, which are per span), in source order,
    each with whether an odd number of `not`s is around it: `not (count() > 4)` assumes `count() <= 4`.

    `assumed`: only the nodes the clause holding asserts, each by itself: not the parts of `A or B` (nor of
    `not (A and B)`), of which the rule assumes none alone. `denied`: the clause is asserted false, as a
    `never` clause is (`never { A or B }` assumes `not A` and `not B`)."""
    stack = [(node, denied)]
    while stack:
        n, negated = stack.pop()
        if n.op == "fn":
            continue
        if assumed and n.op == ("and" if negated else "or"):
            continue
        yield n, negated
        stack.extend((a, negated != (n.op == "not")) for a in reversed(n.args))


def _bounds(node: Node, assumed: bool = False, denied: bool = False) -> list[tuple[Node, str, Any]]:
    """Trace-level comparisons of a value with a constant: (value node, operator, constant), the operator
    as the clause means it (negated under `not`); `assumed`, `denied`: as `_signed` reads them."""
    return [(value, op, const) for _, _, value, op, const in _comparisons(node, assumed, denied)]


def _comparisons(node: Node, assumed: bool = False, denied: bool = False) -> list[tuple[Node, bool, Node, str, Any]]:
    """`_bounds`, each after its comparison node and whether the clause asserts that node false."""
    out = []
    for n, negated in _signed(node, assumed, denied):
        if n.op == "cmp" and n.value in _FLIP:
            left, right = n.args
            op = _NEGATE[n.value] if negated else n.value
            if right.op == "const" and left.op != "const":
                out.append((n, negated, left, op, right.value))
            elif left.op == "const" and right.op != "const":
                out.append((n, negated, right, _FLIP[op], left.value))
    return out


def _names(node: Node) -> list[tuple[str, str]]:
    """(`name` | `service`, constant) for every comparison of those fields with a string, and every string
    of a list they are tested to be `in`."""
    out = []
    for n in node.walk():
        if n.op == "lookup" and isinstance(n.value, tuple) and n.value[0] in ("name", "service"):
            out.append((n.value[0], str(n.value[1])))
        if n.op == "in" and len(n.args) == 2 and n.args[1].op == "list":
            field = n.args[0]
            if field.op == "get" and _member(field) in ("name", "service"):
                out += [(str(_member(field)), c.value) for c in n.args[1].args if _is_string(c)]
        if n.op != "cmp" or n.value != "==":
            continue
        for field, const in (n.args, n.args[::-1]):
            is_field = field.op == "get" and isinstance(field.value, Member) and field.value.name in ("name", "service")
            if is_field and _is_string(const):
                out.append((field.value.name, const.value))
    return out


def _is_string(n: Node) -> bool:
    return n.op == "const" and isinstance(n.value, str)


def _key(n: Node) -> str:
    """An IR node as text that equal meanings share: a span set is its root and its filters, in any
    order and however written (`trace.count(P)`, `trace.has(P).count()` and
    `trace.spans.where(P).count()` compile alike; `where(A and B)` is `where(B).where(A)`)."""
    if n.type.name == "spans":
        base, filters = n, []
        while True:
            if base.op == "lookup" and base.args:
                filters.append(f"{base.value[0]} == {base.value[1]!r}")
            elif _is_call(base, "where") and len(base.args) == 2 and base.args[1].op == "fn" and base.args[1].args:
                filters += _conjuncts(base.args[1].args[0])
            elif not (base.op == "get" and _member(base) == "spans" and base.args and base.args[0].op == "root"):
                break
            base = base.args[0]
        if base is not n:
            return f"{_key(base)}[{' and '.join(sorted(set(filters)))}]"
    return f"({n.op} {payload_text(n)} {' '.join(_key(a) for a in n.args)})"


def _conjuncts(p: Node) -> list[str]:
    """A span filter's `and`-ed parts as text; `field == constant` as a lookup writes it (and so `field in
    [constant]`), `field in [constants]` with its constants sorted, once each."""
    if p.op == "and":
        return [c for a in p.args for c in _conjuncts(a)]
    if p.op == "cmp" and p.value == "==" and len(p.args) == 2:
        for field, const in (p.args, p.args[::-1]):
            if const.op == "const" and _field_path(field) is not None:
                return [f"{_field_path(field)} == {const.value!r}"]
    listed = _listed(p)
    if listed is not None:
        path, consts = listed
        if len(consts) == 1:
            return [f"{path} == {next(iter(consts))!r}"]
        return [f"{path} in [{', '.join(sorted(map(repr, consts)))}]"]
    return [_key(p)]


def _listed(p: Node) -> tuple[str, frozenset[Any]] | None:
    """(field, constants) for a test `field in [constants]` of the span in scope; None for any other."""
    if p.op != "in" or len(p.args) != 2 or p.args[1].op != "list":
        return None
    path = _field_path(p.args[0])
    if not path or any(a.op != "const" for a in p.args[1].args):
        return None
    try:
        return path, frozenset(a.value for a in p.args[1].args)
    except TypeError:
        return None


def _member(n: Node) -> str | None:
    return n.value.name if isinstance(n.value, Member) else None


def _is_call(n: Node, name: str) -> bool:
    return n.op == "call" and _member(n) == name


def _field_path(n: Node) -> str | None:
    """`parent.name` for a field read from the span in scope (`it`); an attribute as `attr KEY`; else None."""
    if n.op == "it":
        return ""
    if n.op == "attr" and n.args and n.args[0].op == "it":
        return f"attr {n.value}"
    if n.op == "index" and len(n.args) == 2 and n.args[1].op == "const":
        holder = n.args[0]
        if holder.op == "get" and _member(holder) == "attributes" and holder.args and holder.args[0].op == "it":
            return f"attr {n.args[1].value}"
    if n.op == "get" and n.args and (inner := _field_path(n.args[0])) is not None and not inner.startswith("attr "):
        return f"{inner}.{_member(n)}" if inner else str(_member(n))
    return None


def _fields(p: Node) -> set[str]:
    """The fields of the span in scope a predicate reads (not those of spans of an inner predicate)."""
    path = _field_path(p)
    if path:
        return {path}
    if p.op == "fn":
        return set()
    return {f for a in p.args for f in _fields(a)}


Limit = tuple[str, Any]
"""What a value, or each span's field, keeps to: (`<`, `<=`, `>` or `>=`, a number), (`in` or `not in`, a set)."""


@dataclass(frozen=True)
class _Claim:
    """What a clause asserts about one thing, as comparable text.

    `subject`: the thing and the way it is bounded (`value <value>`, `each <spans> <field>`,
    `order <A> <B>`, `present <spans>`); `topic`: the same without a direction; `node`: what to evaluate
    to see whether the corpus broke it. `limit`: what the value (or each span's `field`) keeps to, when the
    clause says it plainly (a comparison with a constant, a set, or those `and`-ed), so that a fact
    contradicts the claim only by bounding the same thing on the same side and further out (`_beyond`);
    `reverse`: the subject of the opposite order, for an order; `spans`: the span set each span of is
    checked; `scope`: instead of `spans`, `root` (the trace's root span: `trace.root.duration`) or `all`
    (every span, each lasting at most the trace: `trace.duration <= D`).
    """

    subject: str
    topic: str
    node: Node
    op: str = ""
    bound: Any = None
    negated: bool = False
    """The claim is that `node` is false (`not spans.any(P)` claims every span keeps to `not P`)."""
    limit: Limit | None = None
    field: str = ""
    reverse: str = ""
    spans: Node | None = None
    scope: str = ""
    members: Node | None = None
    """The span set a value counts (`count()`), or whose presence is claimed."""
    present: bool | None = None
    """For `present <spans>`: whether the claim is that those spans occur (`trace.has(B)`) or that they do
    not (`never { trace.has(B) }`)."""
    given: tuple[frozenset[int], ...] | None = None
    """Where a presence claim is made: on every trace (None); else on a trace with spans of one of these sets of
    operations (a fact's `when { has(A) or has(B) }`; an exclusion's other side), or, for a rule's, with spans of
    each (its `when`)."""

    @property
    def per_span(self) -> bool:
        return self.spans is not None or bool(self.scope)


def _limit(op: str, value: Any) -> Limit | None:
    """A comparison with a constant as a limit: `== c` is `in {c}`, `!= c` is `not in {c}`."""
    if op == "==":
        return ("in", frozenset([value]))
    if op == "!=":
        return ("not in", frozenset([value]))
    return (op, value)


def _span_limits(p: Node, negated: bool) -> list[tuple[str, Limit]] | None:
    """What each span keeps to, by field, when a predicate (negated: its negation) is comparisons of the span's
    fields with constants `and`-ed together (negated: a single one); None when it says more or otherwise."""
    if p.op == "and" and not negated:
        parts = [_span_limits(a, False) for a in p.args]
        return None if any(x is None for x in parts) else [lim for x in parts if x for lim in x]
    if p.op == "not" and p.args:
        return _span_limits(p.args[0], not negated)
    if p.op == "cmp" and p.value in _FLIP and len(p.args) == 2:
        for field, const, op in ((p.args[0], p.args[1], p.value), (p.args[1], p.args[0], _FLIP[p.value])):
            path = _field_path(field)
            if path and const.op == "const":
                limit = _limit(_NEGATE[op] if negated else op, const.value)
                return [(path, limit)] if limit is not None else None
        return None
    listed = _listed(p)
    if listed is not None:
        path, values = listed
        return [(path, ("not in" if negated else "in", values))]
    return None


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _beyond(claim: Limit, fact: Limit) -> bool:
    """Whether a fact's limit, on the same value, says the corpus went where the claim forbids: a bound on the
    same side and further out (`<= 6` against `<= 4`; `<= 40ms` says nothing against `>= 35ms`), a set with a
    value outside the claim's (`in [EUR, USD]` against `in [EUR]`; a range's end past the claim's bound),
    or one the claim excludes (`parent.service in [checkout]` against `not in [checkout]`)."""
    (cop, cv), (fop, fv) = claim, fact
    if cop in ("<", "<=", ">", ">="):
        if fop == "in":
            return any(_holds(cop, v, cv) is False for v in fv)
        upper = cop in ("<", "<=")
        if fop not in (("<", "<=") if upper else (">", ">=")) or not (_number(cv) and _number(fv)):
            return False
        further = fv > cv if upper else fv < cv
        return bool(further or (fv == cv and len(cop) == 1 and len(fop) == 2))
    if cop == "in":
        if fop in ("<", "<=", ">", ">=") and len(cv) == 1 and _number(next(iter(cv))):  # `== c`: `<= c` and `>= c`
            c = next(iter(cv))
            return _beyond(("<=", c), fact) or _beyond((">=", c), fact)
        return fop == "in" and not fv <= cv
    if cop == "not in":
        return fop == "in" and bool(fv & cv)
    return False


def _claims(node: Node, assumed: bool = False, denied: bool = False) -> list[_Claim]:
    """Trace-level bounds with a constant, checks on every span of a set, presence of spans and orders in a
    clause; `assumed`, `denied`: as `_signed` reads them. A bound that bounds each span too is also claimed
    of each span: `spans.max(E) <= c` (`min(E) >= c`) bounds each span's E, `trace.duration <= D` each span's
    duration (none lasts longer than its trace), `trace.root.duration` the root span's."""
    out = []
    for cmp, cmp_negated, v, op, c in _comparisons(node, assumed, denied):
        limit = _limit(op, c)
        counted = v.args[0] if _is_call(v, "count") and v.args else None
        out.append(_Claim(f"value {_key(v)}", f"value {_key(v)}", v, op, c, limit=limit, members=counted))
        upper, lower = op in ("<", "<="), op in (">", ">=")
        if ((_is_call(v, "max") and upper) or (_is_call(v, "min") and lower)) and len(v.args) == 2:
            body = v.args[1].args[0] if v.args[1].op == "fn" and v.args[1].args else None
            field = _field_path(body) if body is not None else None
            if field:
                subject = f"each {_key(v.args[0])} {field}"
                out.append(
                    _Claim(subject, subject, cmp, negated=cmp_negated, limit=limit, field=field, spans=v.args[0])
                )
        elif v.op == "get" and _member(v) == "duration" and v.args:
            scope = "all" if v.args[0].op == "root" and upper else "root" if _is_root_span(v.args[0]) else ""
            if scope:
                subject = f"each {scope} duration"
                out.append(
                    _Claim(subject, subject, cmp, negated=cmp_negated, limit=limit, field="duration", scope=scope)
                )
    for n, negated in _signed(node, assumed, denied):
        each = _is_call(n, "any") if negated else _is_call(n, "all") or _is_call(n, "none")
        if each and len(n.args) == 2 and n.args[1].op == "fn":
            spans = _key(n.args[0])
            body = n.args[1].args[0] if n.args[1].args else None
            limits = _span_limits(body, negated or _is_call(n, "none")) if body is not None else None
            for f in sorted(_fields(body) if body is not None else ()):
                subject = f"each {spans} {f}"
                out.append(_Claim(subject, subject, n, negated=negated, field=f, spans=n.args[0]))
                for field, limit in limits or ():
                    if field == f:
                        out.append(_Claim(subject, subject, n, negated=negated, limit=limit, field=f, spans=n.args[0]))
        elif not negated and (_is_call(n, "before") or _is_call(n, "after")) and len(n.args) == 2:
            a, b = (_key(x) for x in (n.args if _is_call(n, "before") else n.args[::-1]))
            out.append(_Claim(f"order {a} {b}", f"order {min(a, b)} {max(a, b)}", n, reverse=f"order {b} {a}"))
            # an order holds only where both sets have spans
            out += [_presence(Node("exists", n.type, (x,), span=n.span), False) for x in n.args]
        elif n.op == "exists" and n.args:
            out.append(_presence(n, negated))
    return out


def _presence(exists: Node, negated: bool) -> _Claim:
    """That a span set has spans (`trace.has(B)`), or, `negated`, that it has none."""
    subject = f"present {_key(exists.args[0])}"
    return _Claim(subject, subject, exists, negated=negated, members=exists.args[0], present=not negated)


def _exclusive(node: Node, corpus: Corpus) -> list[_Claim]:
    """What a fact `not (trace.has(A) and trace.has(B))` asserts of each side, one way at a time: B has no
    spans on a trace with spans of A, and A none on a trace with B's (`given`, as a fact's `when` makes it)."""
    out = []
    for n, negated in _signed(node, assumed=True):
        if negated or n.op != "not" or not n.args or n.args[0].op != "and" or len(n.args[0].args) != 2:
            continue
        pair = n.args[0].args
        if any(p.op != "exists" or not p.args for p in pair):
            continue
        for absent, other in (pair, pair[::-1]):
            ops = _span_ops(other.args[0], corpus)
            if ops:
                out.append(replace(_presence(absent, True), given=(ops,)))
    return out


def _is_root_span(n: Node) -> bool:
    """Whether a node is `trace.root`."""
    return n.op == "get" and _member(n) == "root" and bool(n.args) and n.args[0].op == "root"


def _span_ops(spans: Node | None, corpus: Corpus, within: bool = False) -> frozenset[int] | None:
    """The operations a span set holds, when it is the trace's spans filtered by name and service only
    (`name == 'x'`, `service in ['a', 'b']`); `within`: those it holds at most, its other filters left out."""
    if spans is None:
        return None
    wanted: list[tuple[str, frozenset[Any]]] = []
    base = spans
    while True:
        if base.op == "lookup" and base.args and isinstance(base.value, tuple):
            wanted.append((str(base.value[0]), frozenset([base.value[1]])))
        elif _is_call(base, "where") and len(base.args) == 2 and base.args[1].op == "fn" and base.args[1].args:
            for part in _conjunct_nodes(base.args[1].args[0]):
                test = _name_test(part)
                if test is not None:
                    wanted.append(test)
                elif not within:
                    return None
        elif base.op == "get" and _member(base) == "spans" and base.args and base.args[0].op == "root":
            pass
        else:
            break
        base = base.args[0]
    if base.op != "root" or any(field not in ("name", "service") for field, _ in wanted):
        return None
    return frozenset(i for i, o in enumerate(corpus.ops) if all(getattr(o, field) in vs for field, vs in wanted))


def _conjunct_nodes(p: Node) -> list[Node]:
    return [c for a in p.args for c in _conjunct_nodes(a)] if p.op == "and" else [p]


def _name_test(p: Node) -> tuple[str, frozenset[Any]] | None:
    """(`name` | `service`, the values it may take) for a test `name == 'x'` or `name in ['x', 'y']` of the
    span in scope."""
    if p.op == "cmp" and p.value == "==" and len(p.args) == 2:
        for field, const in (p.args, p.args[::-1]):
            if const.op == "const" and _field_path(field) in ("name", "service"):
                return str(_field_path(field)), frozenset([const.value])
    listed = _listed(p)
    if listed is not None and listed[0] in ("name", "service"):
        return listed
    return None


@dataclass(frozen=True)
class _Broken:
    """A claim of a rule that the corpus broke, with what tells which facts contradict it: `ops`, the
    operations of the spans it is about (`_claim_ops`); `breakers`, those whose spans broke its limit on each
    span (`_breakers`); `tallies`, for a count, the spans it counted on each trace where the rule fired, by
    operation (`_tallies`)."""

    claim: _Claim
    ops: frozenset[int] | None
    breakers: frozenset[int] | None = None
    tallies: tuple[Counter[int], ...] | None = None
    met: frozenset[int] | None = None
    """For a claim that spans occur, the operations on the traces where the rule fired without them (`_met`)."""


def _contradicts(broken: _Broken, fact: _Claim, fact_ops: frozenset[int] | None) -> bool:
    """Whether a fact's claim says otherwise than a rule's claim the corpus broke: the reverse order; that
    spans the rule says never occur (where its `when` holds) do, or some of them do, wherever that holds
    (`_applies`); that spans the rule needs never occur on a trace with spans of A (an exclusion, read one
    way: `_exclusive`), where the traces that broke the rule had spans of A (`_Broken.met`); or a limit on
    the very value, or on the same field of the same spans (or of some of them: an operation's spans among a
    service's), further out than the rule's (`_beyond`).

    A fact's limit may be looser than what was measured (durations rounded up: `<= 150ms` for spans always
    110ms), so a fact about some spans contradicts only if those very spans broke the rule's limit: for a
    limit on each span, `breakers` (None: not known, the fact's limit is trusted); for a count, those spans
    alone counted past the rule's upper bound on a trace where it fired (a count of some of them says
    nothing against a lower bound: the others may make it up)."""
    claim, claim_ops = broken.claim, broken.ops
    if claim.reverse:
        return fact.subject == claim.reverse
    if claim.present is False:
        same = fact.subject == claim.subject or _within(fact_ops, claim_ops)
        return bool(fact.present) and same and _applies(claim.given, fact.given)
    if claim.present:
        same = fact.subject == claim.subject or _within(claim_ops, fact_ops)
        met = broken.met or frozenset()
        return fact.present is False and same and any(ops & met for ops in fact.given or ())
    if claim.limit is None or fact.limit is None or claim.field != fact.field or fact.present is not None:
        return False
    if not _beyond(claim.limit, fact.limit):
        return False
    breakers = broken.breakers
    if not claim.per_span:
        if fact.per_span:
            return False
        if fact.subject == claim.subject:
            return True
        tallies = broken.tallies
        if tallies is None or fact.members is None or fact_ops is None or not _within(fact_ops, claim_ops):
            return False
        return any(_past_upper(claim.limit, sum(t[o] for o in fact_ops)) for t in tallies)
    if fact.subject == claim.subject:
        return breakers is None or bool(breakers)
    return _within(fact_ops, claim_ops) and (breakers is None or bool(fact_ops and fact_ops & breakers))


def _within(some: frozenset[int] | None, ops: frozenset[int] | None) -> bool:
    """Whether `some` are known, not none, and all among `ops` (known)."""
    return some is not None and ops is not None and bool(some) and some <= ops


def _applies(where: tuple[frozenset[int], ...] | None, fact: tuple[frozenset[int], ...] | None) -> bool:
    """Whether a fact made where `fact` says (`_Claim.given`) speaks of traces a rule's claim made where `where`
    says covers: the rule's is made on every trace (a fact is made on some, its support); or the fact's is;
    or the rule's `when` asserts spans of operations all among those of a set of the fact's `when`."""
    if where is None or fact is None:
        return True
    return any(r and r <= f for r in where for f in fact)


def _past_upper(limit: Limit, n: Any) -> bool:
    """Whether a value is past the upper side of a limit (`<= 4`, `< 5`, `== 4`: 5 is)."""
    op, bound = limit
    if op == "in" and len(bound) == 1:
        op, bound = "<=", next(iter(bound))
    return op in ("<", "<=") and _holds(op, n, bound) is False


def _broken(claim: _Claim, rule: CompiledRule, fired: list[Trace]) -> bool:
    """Whether, on a trace where the rule fired, the corpus broke the claim."""
    fn = rule.compiler.fn(claim.node)
    if claim.op:
        return any(_holds(claim.op, fn(tr, None), claim.bound) is False for tr in fired)
    return any(fn(tr, None) is claim.negated for tr in fired)


def _met(claim: _Claim, rule: CompiledRule, fired: list[Trace], corpus: Corpus) -> frozenset[int] | None:
    """For a claim that spans occur, the operations of the traces where the rule fired and they did not: where a
    fact that they are absent (on traces with A) speaks of the traces that broke the rule; None for another claim."""
    if not claim.present:
        return None
    fn = rule.compiler.fn(claim.node)
    at = corpus.op_index
    return frozenset(
        at[sp.service, sp.name]
        for tr in fired
        if fn(tr, None) is False
        for sp in tr.spans
        if (sp.service, sp.name) in at
    )


def _members(claim: _Claim, rule: CompiledRule) -> Callable[[Trace], Iterable[Any]]:
    """The spans a claim about each span bounds, on a trace."""
    if claim.scope == "root":
        return lambda tr: [tr.root] if tr.root is not None else []
    if claim.scope == "all":
        return lambda tr: tr.spans
    assert claim.spans is not None
    fn = rule.compiler.fn(claim.spans)
    return lambda tr: fn(tr, None) or ()


def _breakers(claim: _Claim, rule: CompiledRule, fired: list[Trace], corpus: Corpus) -> frozenset[int] | None:
    """The operations whose spans, among those a claim about each span bounds, broke its limit on the traces
    where the rule fired (read from the spans, not from the clause, which may break for another field);
    None when that cannot be read (a field or limit this does not read)."""
    if not claim.per_span or claim.limit is None or not claim.field:
        return None
    members = _members(claim, rule)
    out = set()
    for tr in fired:
        for sp in members(tr):
            kept = _keeps(claim.limit, _read(tr, sp, claim.field))
            if kept is None:
                return None
            if not kept:
                op = corpus.op_index.get((sp.service, sp.name))
                if op is None:
                    return None
                out.add(op)
    return frozenset(out)


def _tallies(claim: _Claim, rule: CompiledRule, fired: list[Trace], corpus: Corpus) -> tuple[Counter[int], ...] | None:
    """For a count, the spans it counts on each trace where the rule fired, by operation; None for another claim."""
    if claim.members is None or claim.present is not None:
        return None
    members = rule.compiler.fn(claim.members)
    out = []
    for tr in fired:
        tally: Counter[int] = Counter()
        for sp in members(tr, None) or ():
            op = corpus.op_index.get((sp.service, sp.name))
            if op is None:
                return None
            tally[op] += 1
        out.append(tally)
    return tuple(out)


def _claim_ops(claim: _Claim, corpus: Corpus, roots: Callable[[], frozenset[int]]) -> frozenset[int] | None:
    """The operations of the spans a claim is about; `roots`: those of the traces' root spans."""
    if claim.scope == "all":
        return frozenset(range(len(corpus.ops)))
    if claim.scope == "root":
        return roots()
    return _span_ops(claim.spans if claim.spans is not None else claim.members, corpus)


_MISSING = object()


def _read(tr: Trace, sp: Any, field: str) -> Any:
    """A span's field as `_field_path` names it (`duration`, `parent.service`, `attr currency`); `_MISSING`
    when it is not one this reads."""
    if field.startswith("attr "):
        return sp.attributes.get(field[5:], _MISSING)
    *steps, last = field.split(".")
    for step in steps:
        if step != "parent":
            return _MISSING
        sp = tr.parent_of(sp)
        if sp is None:
            return None
    if last not in ("duration", "name", "service"):
        return _MISSING
    return getattr(sp, last)


def _keeps(limit: Limit, value: Any) -> bool | None:
    """Whether a value keeps to a limit (a missing one keeps to none); None when that cannot be told."""
    op, bound = limit
    if value is _MISSING:
        return None
    if value is None:
        return False
    if op in ("in", "not in"):
        try:
            return (value in bound) == (op == "in")
        except TypeError:
            return None
    return _holds(op, value, bound)


def _span_bounds(node: Node) -> list[tuple[Node, Node, str]]:
    """Bounds on every span's duration in a rule: `spans.all(duration OP constant)`, `spans.none(...)` or
    `not spans.any(...)`: (what holds when the spans keep to it, their set, the field bounded)."""
    out = []
    for n, negated in _signed(node, assumed=True):
        if negated:
            continue
        if n.op == "not" and n.args and _is_call(n.args[0], "any"):
            call = n.args[0]
        elif _is_call(n, "all") or _is_call(n, "none"):
            call = n
        else:
            continue
        if len(call.args) != 2:
            continue
        body = call.args[1].args[0] if call.args[1].op == "fn" and call.args[1].args else None
        if body is None or body.op != "cmp" or body.value not in _FLIP:
            continue
        for field, const in (body.args, body.args[::-1]):
            is_duration = field.op == "get" and isinstance(field.value, Member) and field.value.name == "duration"
            if is_duration and const.op == "const":
                out.append((n, call.args[0], "duration"))
    return out


def _kinds_of(nodes: list[Node]) -> set[str]:
    """The fact kinds a rule's clauses speak about, from the members they use."""
    kinds = set()
    for node in nodes:
        for n in node.walk():
            if isinstance(n.value, Member) and n.value.name in _KIND_OF_MEMBER:
                kinds.add(_KIND_OF_MEMBER[n.value.name])
            if n.op == "attr":
                kinds.add("attribute")
    if "cooccurrence" in kinds:
        kinds |= {"together", "presence", "exclusion"}
    return kinds


def _range(seen: list[Any], ty: str) -> tuple[Any, Any]:
    """The lowest and highest value seen, durations rounded outward to three significant digits."""
    if ty == "duration":
        return _duration(min(seen), up=False), _duration(max(seen), up=True)
    return to_json(min(seen), ty), to_json(max(seen), ty)


def _duration(ns: int | float, up: bool) -> str:
    """A duration as a person reads it: in the largest unit that is not more than it, as signals
    write it, to three significant digits, rounded down or up so that a range printed with it holds
    every value in it (`20199.424us` reads `20.1ms` or `20.2ms`)."""
    if ns <= 0:
        return format_duration(ns)
    i = next((k for k, (_, size) in enumerate(_UNITS) if ns >= size), len(_UNITS) - 1)
    unit, size = _UNITS[i]
    q = Decimal(ns) / size
    quantum = Decimal(1).scaleb(max(q.adjusted() - 2, 0 if unit == "ns" else -2))
    r = q.quantize(quantum, rounding=ROUND_CEILING if up else ROUND_FLOOR)
    if i and r * size >= _UNITS[i - 1][1]:  # rounded up into the next unit: 999.95ms is 1s
        return format_duration(int(r * size))
    return f"{r.normalize():f}{unit}"


def _ranged(lo: Any, hi: Any) -> str:
    return f"on the corpus it was always {lo}" if lo == hi else f"on the corpus it ranged {lo}..{hi}"


def _bound_finding(
    clause: str, text: str, value: Node, op: str, bound: Any, seen: list[Any], missing: int, where: str
) -> str:
    """What the corpus says about one comparison, read by the role of the clause it sits in.

    `seen` are the values on the traces `where` names (all, or those where the `when` held); on `missing`
    more there was no value, and the comparison, as the language makes it, was false there.
    """
    ty = value.type.name
    limit = to_json(bound, ty)
    total = len(seen) + missing
    held = sum(1 for v in seen if _holds(op, v, bound))
    none = f"no value on {_of(missing, total, where)}" if missing else ""
    if not seen:
        ranged = f"on the corpus it had {none}"
    else:
        ranged = _ranged(*_range(seen, ty)) + (f" and had {none}" if none else "")
    if clause in ("expect", "always"):
        if held == total:
            return f"assumes `{text} {op} {limit}`; {ranged}, so it always held"
        outside = total - held - missing
        said = _ranged(*_range(seen, ty)) if seen else "on the corpus it never had a value"
        if outside:
            said += f" ({_of(outside, total, where)} outside)"
        if missing and seen:
            said += f", and it had no value on {_of(missing, total, where)}, where the comparison is false"
        return f"assumes `{text} {op} {limit}`, but {said}"
    if clause == "when":
        return f"applies when `{text} {op} {limit}`; {ranged} ({_of(held, total, where)} matched)"
    return f"looks for `{text} {op} {limit}`; {ranged} ({_of(held, total, where)} matched)"


def _of(count: int, total: int, noun: str) -> str:
    """`2 of 5 traces`, `1 of 1 trace`: `noun` is singular, its first word agrees with `total`
    (`trace where it applied`)."""
    first, _, rest = noun.partition(" ")
    return f"{count} of {plural(total, first)}" + (f" {rest}" if rest else "")


def _holds(op: str, value: Any, bound: Any) -> bool | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(bound, bool) or not isinstance(bound, int | float):
        return None
    return {
        "<": value < bound,
        "<=": value <= bound,
        ">": value > bound,
        ">=": value >= bound,
        "==": value == bound,
        "!=": value != bound,
    }[op]


def _rule_report(
    rule: CompiledRule,
    fired_on: list[Trace],
    traces: list[Trace],
    corpus: Corpus,
    discovered: list[_Said],
    occurs: dict[tuple[str, str], int],
) -> dict[str, Any]:
    ir = rule.ir
    fired = len(fired_on)
    cond = rule.compiler.fn(ir.condition)
    n = len(traces)
    # a `when` rule is tested, and its `always`/`never` measured, only where its `when` held
    tested = traces if ir.mode != "when" else [tr for tr in traces if cond(tr, None) is True]
    applied = len(tested)
    findings: list[str] = []
    if n == 0:
        pass  # cut short on every trace by the evaluation budget, as `_with_truncated` says
    elif ir.mode == "when" and applied == 0:
        findings.append("never applied: its `when` held on no trace, so it was never tested")
    elif ir.mode == "detect" and fired == 0:
        findings.append("never fired")
    clauses = [("when" if ir.mode == "when" else ir.mode, ir.condition)]
    clauses += [(k, x) for k, x in (("always", ir.always), ("never", ir.never)) if x is not None]
    nodes = [node for _, node in clauses]
    for clause, node in clauses:
        over = tested if clause in ("always", "never") else traces
        where = "trace where it applied" if over is not traces else "trace"
        for value, op, bound in _bounds(node, assumed=clause in ("expect", "always")):
            fn = rule.compiler.fn(value)
            values = [fn(tr, None) for tr in over]
            seen = [v for v in values if v is not None and _holds(op, v, bound) is not None]
            missing = sum(1 for v in values if v is None)
            if seen or (missing and len(seen) + missing == len(values)):
                text = rule.clause_text(value)
                findings.append(_bound_finding(clause, text, value, op, bound, seen, missing, where))
        if clause in ("expect", "always"):  # a bound on its spans' durations that some trace breaks
            for call, spans, field in _span_bounds(node):
                holds, members = rule.compiler.fn(call), rule.compiler.fn(spans)
                outside = sum(1 for tr in over if holds(tr, None) is False)
                seen = [getattr(sp, field) for tr in over for sp in members(tr, None) or ()]
                if not seen:
                    continue
                lo, hi = _range(seen, "duration")
                ranged = f"were always {lo}" if lo == hi else f"ranged {lo}..{hi}"
                findings.append(
                    f"assumes `{rule.clause_text(call)}`; on the corpus those spans' {field}s {ranged}"
                    + (f" ({_of(outside, len(over), where)} outside)" if outside else ", so it always held")
                )
    given = _when_asserts(ir.condition, corpus) if ir.mode == "when" else None
    claims = [
        (clause, replace(c, given=given) if clause != "expect" else c)
        for clause, node in clauses
        for c in _claims(node, clause in ("expect", "always", "never"), denied=clause == "never")
    ]
    roots: list[frozenset[int]] = []

    def root_ops() -> frozenset[int]:
        if not roots:
            at = corpus.op_index
            roots.append(
                frozenset(at[r.service, r.name] for tr in traces if (r := tr.root) and (r.service, r.name) in at)
            )
        return roots[0]

    # what a fact must say to contradict the rule: the rule assumed it, and the corpus broke it
    broken = [
        _Broken(
            c,
            _claim_ops(c, corpus, root_ops),
            _breakers(c, rule, fired_on, corpus),
            _tallies(c, rule, fired_on, corpus),
            _met(c, rule, fired_on, corpus),
        )
        for clause, c in claims
        if clause in ("expect", "always", "never")
        and (c.limit is not None or c.reverse or c.present is not None)
        and _broken(c, rule, fired_on)
    ]
    each = [(c.field, ops) for _, c in claims if c.per_span and (ops := _claim_ops(c, corpus, root_ops))]
    topics = {c.topic for _, c in claims}
    ops_names = {o.name for o in corpus.ops}
    services = set(corpus.services)
    mentioned: set[tuple[str, str]] = set()  # (`name` | `service`, constant): an operation is not a service
    total = len(corpus.traces)
    for node in nodes:
        for field, const in _names(node):
            mentioned.add((field, const))
            known = ops_names if field == "name" else services
            what = "operation" if field == "name" else "service"
            if const not in known:
                note = f"the {what} {const!r} never occurs in the corpus"
            elif fired and 0 < occurs[field, const] < total:  # a rule that fired about what only some traces have
                note = f"the {what} {const!r} occurs in {_of(occurs[field, const], total, 'trace')}"
            else:
                continue
            if note not in findings:
                findings.append(note)
    related: list[tuple[tuple[bool, bool, bool, bool], Fact, bool]] = []
    never_applied = applied == 0 and n > 0  # a `when` whose condition held on no trace evaluated
    if fired or never_applied:  # it did not hold everywhere, or it never applied
        kinds = _kinds_of(nodes)
        against = {i: _against(broken, d) for i, d in enumerate(discovered)}
        for i, d in enumerate(discovered):
            f = d.fact
            names = {("name", corpus.ops[o].name) for o in f.ops} | {("service", corpus.ops[o].service) for o in f.ops}
            names |= {("service", s) for s in f.services}
            contradicts = bool(against[i]) and not _outdone(i, against, discovered)
            # the same value, or the same field of some of the spans the rule bounds each of
            same = bool(d.topics & topics) or any(
                fc.field == field and _within(fops, ops) for fc, fops in d.claims for field, ops in each
            )
            if contradicts or (not d.implied and not against[i] and (names & mentioned or same)):
                # contradictions first, then facts about the very thing the rule bounds or orders
                related.append(((contradicts, same, f.kind in kinds, names <= mentioned), f, contradicts))
    related.sort(key=lambda x: x[0], reverse=True)
    return {
        "rule": ir.id,
        "path": ir.path,
        "line": ir.span.line + 1,
        "mode": ir.mode,
        "traces": n,
        "applied": applied,
        "fired": fired,
        "held": round((applied - fired) / applied, 6) if applied else None,
        "findings": findings,
        "discovered": [
            {"kind": f.kind, "fact": description(f), "rule": f.clauses[-1][1], "contradicts": contradicts}
            for _, f, contradicts in related[:MAX_RELATED]
        ],
    }


def _when_asserts(condition: Node, corpus: Corpus) -> tuple[frozenset[int], ...]:
    """The operations a rule's `when` asserts spans of, one set per `trace.has(...)` it asserts (at most
    those its name and service filters allow: `has(name == 'charge').where(amount > 100)` is of `charge`)."""
    out = []
    for n, negated in _signed(condition, assumed=True):
        if n.op == "exists" and n.args and not negated:
            ops = _span_ops(n.args[0], corpus, within=True)
            if ops is not None:
                out.append(ops)
    return tuple(out)


def _when_any(condition: Node, corpus: Corpus) -> tuple[frozenset[int], ...]:
    """The operations a fact's `when { has(A) or has(B) }` is made on traces with spans of: one set per part."""
    if condition.op == "or":
        return tuple(ops for a in condition.args for ops in _when_any(a, corpus))
    ops = _span_ops(condition.args[0], corpus) if condition.op == "exists" and condition.args else None
    return (ops,) if ops else ()


Against = list[tuple[_Broken, _Claim, frozenset[int] | None]]
"""The claims of a fact that contradict a rule: (the rule's broken claim, the fact's claim, its operations)."""


def _against(broken: list[_Broken], said: _Said) -> Against:
    return [(b, fc, fops) for b in broken for fc, fops in said.claims if _contradicts(b, fc, fops)]


def _outdone(i: int, against: dict[int, Against], said: list[_Said]) -> bool:
    """Whether another fact says all that fact `i` says against a rule: for each claim of `i` that contradicts
    one of the rule's, a claim that contradicts it too and implies `i`'s (`_implies`), as a trace's bound
    implies the bound of a service it holds, left out as implied. Of two that imply each other, the kept
    fact (not one left out as implied) stands, else the first."""
    mine = against[i]
    for j, theirs in against.items():
        if j == i or not theirs:
            continue
        covers = all(any(b2 is b and _implies(fy, fyo, fx, fxo) for b2, fy, fyo in theirs) for b, fx, fxo in mine)
        if not covers:
            continue
        mutual = all(any(b2 is b and _implies(fx, fxo, fy, fyo) for b2, fx, fxo in mine) for b, fy, fyo in theirs)
        if not mutual or (said[j].implied, j) < (said[i].implied, i):
            return True
    return False


def _implies(y: _Claim, y_ops: frozenset[int] | None, x: _Claim, x_ops: frozenset[int] | None) -> bool:
    """Whether a fact's claim `y` implies another's `x`: a limit on the same field of each of at least x's spans
    (or on a count of at least them), at least as tight."""
    if y.limit is None or x.limit is None or y.field != x.field or y.per_span != x.per_span:
        return False
    if y.present is not None or x.present is not None:
        return False
    counts = x.members is not None and y.members is not None
    if y.subject != x.subject and not ((x.per_span or counts) and _within(x_ops, y_ops)):
        return False
    return _tighter(y.limit, x.limit)


def _tighter(y: Limit, x: Limit) -> bool:
    """Whether whatever keeps to limit `y` keeps to `x`."""
    (yop, yv), (xop, xv) = y, x
    if yop == "in":
        return all(_keeps(x, v) is True for v in yv)
    if yop == "not in" or xop in ("in", "not in") or (yop in ("<", "<=")) != (xop in ("<", "<=")):
        return False
    if not (_number(yv) and _number(xv)):
        return False
    if yv == xv:
        return len(yop) == 1 or len(xop) == 2
    return bool(yv < xv if xop in ("<", "<=") else yv > xv)


@dataclass(frozen=True)
class _Said:
    """A discovered fact and what it claims (`_Claim`s, each with the operations of its spans), from its
    compiled rule, and their topics.

    `implied`: a fact left out of the discovered rules because others imply it; it is set beside a
    rule only when it contradicts it.
    """

    fact: Fact
    claims: tuple[tuple[_Claim, frozenset[int] | None], ...]
    topics: frozenset[str]
    implied: bool = False


def _said(facts: Sequence[Fact], corpus: Corpus, implied: bool) -> list[_Said]:
    """What each fact claims, read from its rule compiled by the one compiler (not from its text).

    A `parent` fact naming an operation also says which service each span runs directly under (the
    operation's), which is what a rule that a service never calls another contradicts.
    """
    text = "\n".join(rule_text(f"fact_{i}", f, corpus) for i, f in enumerate(facts))
    compiled: dict[str, RuleIR] = {r.id: r for r in lower(analyze([("<discovered>", text)]))}
    out = []
    for i, f in enumerate(facts):
        ir = compiled.get(f"fact_{i}")
        given = _when_any(ir.condition, corpus) if ir and ir.mode == "when" else None
        claims = (
            [
                replace(c, given=given) if c.present is not None else c
                for kind, node in ir.clauses()
                if kind in ("expect", "always")
                for c in _claims(node, True)
            ]
            if ir
            else []
        )
        claims += [c for kind, node in ir.clauses() if kind == "expect" for c in _exclusive(node, corpus)] if ir else []
        parent = f.detail.get("parent") if f.kind == "parent" else None
        if isinstance(parent, int):
            claims += [
                replace(
                    c,
                    subject=c.subject.rsplit(" ", 1)[0] + " parent.service",
                    field="parent.service",
                    limit=("in", frozenset([corpus.ops[parent].service])),
                )
                for c in claims[:1]
                if c.spans is not None
            ]
        with_ops = tuple((c, _span_ops(c.spans if c.spans is not None else c.members, corpus)) for c in claims)
        out.append(_Said(f, with_ops, frozenset(c.topic for c in claims), implied))
    return out


def _occurrences(corpus: Corpus) -> dict[tuple[str, str], int]:
    """On how many traces each operation name and each service occurs."""
    out: Counter[tuple[str, str]] = Counter()
    for t in corpus.traces:
        ops = [corpus.ops[o] for o in t.ops]
        out.update({("name", o.name) for o in ops} | {("service", o.service) for o in ops})
    return out


def compare(
    paths: Sequence[str],
    traces: list[Trace],
    corpus: Corpus,
    facts: list[Fact],
    implied: Sequence[Fact] = (),
    cost_limit: int = DEFAULT_COST_LIMIT,
    eval_budget: int = DEFAULT_BUDGET,
) -> dict[str, Any]:
    """The report of `--compare`: one entry per rule that checked, plus diagnostics of those that did not.

    `facts` are the discovered rules; `implied`, facts left out because those imply them, which are
    named only where they contradict a rule (`auth` at most 6 spans, when its operations' bounds add up to 6).
    The rules are loaded and run as `fluo eval` runs them: a rule estimated to cost more than `cost_limit`
    is refused (FLUO404, among the errors), and a trace whose evaluation spends more than `eval_budget`
    span visits is cut short; the rules it skipped there count it as `truncated`, neither fired nor held.
    """
    try:
        analysis = with_cost_limit(analyze_paths(paths), cost_limit)
    except RuleSourceError as exc:
        fail(f"--compare {exc.for_command_line()}")
        raise AssertionError from exc  # unreachable: fail exits
    errors = [d.format() for d in analysis.diagnostics if d.is_error]
    rules = lower(analysis)
    refused = {r.id for r in rules if cost_limit > 0 and check_cost([r], cost_limit)}  # as FLUO404 above
    program = Program([r for r in rules if r.id not in refused], budget=eval_budget or None)
    fired: dict[str, list[Trace]] = defaultdict(list)
    cut: dict[str, set[int]] = defaultdict(set)  # rule: the traces (by index) its evaluation was cut short on
    for i, tr in enumerate(traces):
        signals = program.evaluate_trace(tr)
        for rule_id in {s.rule for s in signals if s.rule != TRUNCATED_RULE}:
            fired[rule_id].append(tr)
        for rule_id in _skipped(signals):
            cut[rule_id].add(i)
    discovered = _said(facts, corpus, False) + _said(implied, corpus, True)
    occurs = _occurrences(corpus)
    reports = []
    for r in program.trace_rules:
        evaluated = [tr for i, tr in enumerate(traces) if i not in cut[r.id]] if cut[r.id] else traces
        report = _rule_report(r, fired[r.id], evaluated, corpus, discovered, occurs)
        reports.append(_with_truncated(report, len(traces), len(cut[r.id]), eval_budget, "trace"))
    windows = []
    for r in program.window_rules:
        assert r.ir.window_ns is not None
        ws = windows_of(traces, r.ir.window_ns)
        fired_windows = truncated = 0
        for w in ws:
            signals = program.evaluate_window(w, [r])
            fired_windows += any(s.rule == r.ir.id for s in signals)
            truncated += r.ir.id in _skipped(signals)
        whole = len(ws) - truncated
        report = {
            "rule": r.ir.id,
            "path": r.ir.path,
            "line": r.ir.span.line + 1,
            "mode": r.ir.mode,
            "windows": len(ws),
            "fired": fired_windows,
            "held": round((whole - fired_windows) / whole, 6) if whole else None,
            "findings": [],
            "discovered": [],
        }
        windows.append(_with_truncated(report, len(ws), truncated, eval_budget, "window"))
    return {
        "traces": len(traces),
        "spans": corpus.spans,
        "rules": reports + windows,
        "errors": errors
        + [f"internal error evaluating {e.rule} on trace {e.trace_id}: {e.message}" for e in program.errors],
    }


def _skipped(signals: list[Signal]) -> set[str]:
    """The rules a `fluo.evaluation_truncated` signal among these says were not evaluated."""
    return {
        str(rule_id)
        for s in signals
        if s.rule == TRUNCATED_RULE and isinstance(s.observed, dict)
        for rule_id in s.observed.get("rules_skipped", ())
    }


def _with_truncated(report: dict[str, Any], total: int, truncated: int, budget: int, unit: str) -> dict[str, Any]:
    """A rule's report, told on how many traces (windows) its evaluation was cut short, as `fluo eval` cuts it:
    those are neither fired nor held (the held share is of the rest, None when there is no rest)."""
    if unit == "trace":
        report["traces"] = total
    report["truncated"] = truncated
    if truncated:
        visits = "span visit" if budget == 1 else "span visits"
        report["findings"].insert(
            0,
            f"not evaluated on {_of(truncated, total, unit)}: the evaluation budget of {budget:,} {visits} ran "
            "out (`fluo eval` reports fluo.evaluation_truncated there); they are counted neither fired nor held",
        )
    return report


def compare_text(report: dict[str, Any]) -> str:
    lines = []
    for e in report["errors"]:
        lines.append(e)
    for r in report["rules"]:
        where = f"{r['path']}:{r['line']}"
        total, unit = (r["windows"], "window") if "windows" in r else (r["traces"], "trace")
        evaluated = total - r["truncated"]
        # the share is of the traces (windows) evaluated: those cut short by --eval-budget count neither way
        of = (
            f"of {plural(total, unit)}"
            if evaluated == total
            else f"of the {plural(evaluated, unit)} evaluated, of {total}"
        )
        if evaluated == 0:
            lines.append(f"{r['rule']} ({where}): held on no {unit}: evaluated on none of {plural(total, unit)}")
        elif r["mode"] == "when":  # held: the share of the traces where it applied
            lines.append(
                f"{r['rule']} ({where}): applied on {r['applied']} {of}"
                + (f", held on {confidence_text(r['held'], r['fired'] > 0)} of them" if r["applied"] else "")
                + f" (fired on {r['fired']})"
            )
        else:
            held = confidence_text(r["held"], r["fired"] > 0)  # `held` is rounded: 100% only where none fired
            lines.append(f"{r['rule']} ({where}): held on {held} {of} (fired on {r['fired']})")
        for f in r["findings"]:
            lines.append(f"  - {f}")
        for d in r["discovered"]:
            lines.append(
                f"  - {'contradicted by what was discovered' if d['contradicts'] else 'discovered'}: {d['fact']}"
            )
            lines.append(f"      {d['rule']}")
    return "".join(one_line(line) + "\n" for line in lines)
