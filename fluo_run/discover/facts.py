"""Mining facts from a summarised corpus, and pruning them to a list a person reads.

A `Fact` is one candidate rule: its FLUO clauses, the traces it was tested on
(`support`: the traces where its subject occurs, or where its `when` held) and
the traces where it did not hold (`exceptions`). A fact is kept when its
support reaches `min_support` and at most `(1 - min_confidence) * support`
traces are exceptions. Every predicate is written so that it holds on a trace
exactly when the measured fact does, with the evaluator's semantics: `before`
compares the earliest end of the first set with the latest start of the second,
a missing attribute makes a comparison false, and `all` over no spans is true.

Pruning drops what the kept facts imply on any trace, not only on the corpus's
(a new operation of a service must still break what it broke): a bound at or
above the bound of the enclosing service or trace, co-occurrences implied transitively, by a
structure rule or by an ordering rule, orderings implied transitively through
a span a kept count rule makes the only one of its operation, and error-free, duration and attribute facts that every
operation of a service (or of the corpus) shares, which are written once for
the service (or for all spans); below 100% confidence, an error-free fact for
the corpus that has exceptions gives way to the per-service ones when some of
those have none.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from typing import Any

from fluo_lang.diagnostics import plural
from fluo_lang.values import NS_LIMIT

from .corpus import ROOT, Corpus, KeyStats, TraceSummary
from .syntax import (
    UNNAMED,
    article,
    attribute,
    duration_text,
    literal,
    name_slug,
    op_pred,
    op_slug,
    readable_ceiling,
    service_label,
    service_pred,
    service_slug,
    service_spans,
    slug,
    writable,
)

KINDS = (
    "count",
    "presence",
    "together",
    "cooccurrence",
    "order",
    "parent",
    "no_call",
    "error_free",
    "exclusion",
    "duration",
    "attribute",
)
"""Fact kinds, in the order they appear in the output and rank under `--max-rules`."""


MAX_SIBLINGS = 32
"""Exclusions are sought among the child operations of a parent that has at most this many."""
MIN_EXPECTED = 3
"""Two operations never meeting is a fact only if, were they independent, they would meet this often;
A always coming with B only if, were they independent, A would come without B this often."""
MIN_TRACES_PER_VALUE = 3
"""A value set is closed only if each of its values was seen on this many traces."""
MIN_TIMELINE = 5
"""Numbers seen on fewer traces are never taken for ids or timestamps."""
TRACE_COUNT_KEY = "trace_span_count_max"
MAX_ORDER_OPS = 200
"""Orders are counted on traces with at most this many distinct operations (pairs grow as its square)."""
MANY_NAMES = 100
"""A service with more distinct operation names than this is warned about: span names should be low-cardinality."""
ID_NAMES = 20
"""Operation names of one service that differ only in their ids (numbers, hex or UUIDs) are unnormalized, an id
in each span name, when there are at least this many of them."""
_ID_PART = re.compile(r"\b(?=[0-9a-fA-F-]*[0-9])[0-9a-fA-F-]{8,}\b|[0-9]+")
"""What reads as an id inside a name: a run of digits, or a word of 8 or more hex digits and dashes with a digit."""


@dataclass(frozen=True)
class Options:
    """The command line's knobs; `docs/discover.md` says what each means."""

    min_support: int = 5
    min_confidence: float = 1.0
    max_values: int = 5
    duration_quantile: float | None = None
    max_rules: int = 100
    attributes: bool = True

    def allowed(self, support: int) -> int:
        """How many exceptions a fact tested on `support` traces may have."""
        return math.floor((1.0 - self.min_confidence) * support + 1e-9)

    def accepts(self, support: int, exceptions: int) -> bool:
        return support >= self.min_support and exceptions <= self.allowed(support)


@dataclass
class Fact:
    """One proposed rule and the evidence for it; `exceptions` are trace indexes in the corpus."""

    kind: str
    key: str
    """Rule id stem, before uniqueness suffixes."""
    clauses: tuple[tuple[str, str], ...]
    """(`expect` | `when` | `always` | `never`, expression text)."""
    summary: str
    support: int
    exceptions: list[int]
    ops: tuple[int, ...] = ()
    services: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)
    """Kind-specific values (bounds, the value set, ...): for JSON output and test mutations."""

    @property
    def confidence(self) -> float:
        return 1.0 - len(self.exceptions) / self.support if self.support else 1.0


Ident = tuple[str, str, tuple[int, ...], tuple[str, ...]]
"""What tells facts apart within one mining: kind, key stem, operations and services."""


def ident(fact: Fact) -> Ident:
    return fact.kind, fact.key, fact.ops, fact.services


@dataclass
class Bounds:
    """The most spans of the whole trace and of each service that the count rules allow."""

    trace: int = 0
    services: dict[str, int] = field(default_factory=dict)


class Miner:
    """Every kind of fact over one corpus, with the indexes the kinds share."""

    def __init__(self, corpus: Corpus, options: Options) -> None:
        self.cut: frozenset[Ident] = frozenset()
        """Facts `--max-rules` leaves out (see `mine`): they cannot be why another fact is left out."""
        self.c = corpus
        self.o = options
        self.n = len(corpus.traces)
        self.op_traces: list[list[TraceSummary]] = [[] for _ in corpus.ops]
        for t in corpus.traces:
            for op in t.ops:
                self.op_traces[op].append(t)
        names = Counter(o.name for o in corpus.ops)
        self.unique = [names[o.name] == 1 for o in corpus.ops]
        self.service_traces: dict[str, set[int]] = defaultdict(set)
        for i, ts in enumerate(self.op_traces):
            self.service_traces[corpus.ops[i].service].update(t.index for t in ts)
        self.id_named, self.naming = id_named(corpus)
        """Operations whose names carry an id (`GET /product/1234`), and a warning per service that has such
        names or very many: rules about those operations rank after all others under `--max-rules`."""
        self.supported = [len(ts) >= options.min_support for ts in self.op_traces]
        self.need = [len(ts) - options.allowed(len(ts)) for ts in self.op_traces]
        """Per operation, the traces a fact about it must hold on."""
        # traces of each operation as the bits of one integer: co-occurrence counts are popcounts
        self.masks = [
            sum(1 << t.index for t in ts) if ok else 0 for ts, ok in zip(self.op_traces, self.supported, strict=True)
        ]
        self._together: dict[tuple[int, int], int] = {}
        self._unpruned: list[Fact] | None = None
        self._by_service: dict[str, tuple[list[int], int, int, list[int]]] | None = None
        self._op_bounds: dict[int, tuple[int, list[int]]] = {}
        self._parents: list[Fact] | None = None
        self._orders: tuple[set[tuple[int, int]], set[tuple[int, int]], set[tuple[int, int]]] | None = None
        self._with: dict[int, set[int]] | None = None
        self._merged: list[Fact] = []
        """Operations' duration bounds written as one of their service's or of all spans (`wider_durations`)."""
        self.implied: list[Fact] = []
        """Count and duration bounds and exclusions left out because the kept ones imply them (or say them for
        more spans): `--compare` names one where it contradicts a rule (the rule bounds the very value, and the
        corpus broke its bound; or it needs an operation the exclusion keeps from its traces)."""

    # -- text helpers ---------------------------------------------------------

    def pred(self, op: int, prefix: str = "") -> str:
        return op_pred(self.c.ops[op], self.unique[op], prefix)

    def spans(self, op: int) -> str:
        return f"trace.spans.where({self.pred(op)})"

    def has(self, op: int) -> str:
        return f"trace.has({self.pred(op)})"

    def label(self, op: int) -> str:
        o = self.c.ops[op]
        if self.unique[op]:
            return f"{o.name!r}"
        return f"{o.name!r} in {o.service!r}" if o.service else f"{o.name!r} (no service.name)"

    def slug(self, op: int) -> str:
        return op_slug(self.c.ops[op])

    def support(self, op: int) -> int:
        return len(self.op_traces[op])

    def together(self, a: int, b: int) -> int:
        """Traces with both operations (0 unless both reach the minimum support)."""
        key = (a, b) if a < b else (b, a)
        n = self._together.get(key)
        if n is None:
            n = self._together[key] = (self.masks[a] & self.masks[b]).bit_count()
        return n

    # -- the kinds --------------------------------------------------------------

    def mine(self, cut: Iterable[Ident] = ()) -> list[Fact]:
        """Every fact, without those the others imply; none is left out because of a fact in `cut`
        (the ones `--max-rules` leaves out, which cannot stand in for it: see `discover`)."""
        self.cut = frozenset(cut)
        self.implied = []
        facts: list[Fact] = []
        counts, bounds = self.counts()
        facts += counts
        # facts that prune others must be written themselves
        presence = self.written(self.presence())
        if self._parents is None:  # no other kind leaves a parent out
            self._parents = self.written(self.parents())
        parents = self._parents
        orders = self.written(self.orders(self.usable(counts)))
        needs = self.written(self.cooccurrences(self.usable(presence), self.usable(parents), self.usable(orders)))
        implied = _implications(self.usable([*parents, *orders, *needs]))
        facts += _under_present(presence, self.usable(presence), implied)
        facts += parents
        facts += orders
        facts += needs
        facts += self.exclusions(implied, bounds)
        if self._unpruned is None:  # these kinds prune only among themselves: mined once
            self._unpruned = self.no_calls() + self.error_free() + self.durations()
            if self.o.attributes:
                self._unpruned += self.attribute_facts()
        facts += self._unpruned
        self.implied += self._merged
        self.implied = self.written(self.implied)
        return self.written(facts)

    def usable(self, facts: list[Fact]) -> list[Fact]:
        """The facts that may be why another is left out: those not in `cut`."""
        return [f for f in facts if ident(f) not in self.cut] if self.cut else facts

    def written(self, facts: list[Fact]) -> list[Fact]:
        return [f for f in facts if self.writable(f)]

    def writable(self, fact: Fact) -> bool:
        """Whether every name, key and value the fact's rule would spell out fits in a FLUO string."""
        texts = [*fact.services, fact.detail.get("key", ""), *fact.detail.get("values", ())]
        for op in fact.ops:
            texts += (self.c.ops[op].service, self.c.ops[op].name)
        return all(writable(t) for t in texts if isinstance(t, str))

    def _bound(self, values: list[tuple[int, int]]) -> tuple[int, list[int]]:
        """The smallest bound that at most `allowed` values exceed, and the traces above it."""
        ordered = sorted(values, reverse=True)
        allowed = self.o.allowed(len(values))
        bound = ordered[min(allowed, len(ordered) - 1)][0]
        return bound, sorted(i for v, i in ordered if v > bound)

    def counts(self) -> tuple[list[Fact], Bounds]:
        """Count bounds, without those a wider kept bound implies on any trace: a service's at or above
        the trace's, an operation's at or above its service's. Narrower bounds adding up to a wider one
        do not imply it (a new operation or service adds spans none of them counts), so it is kept.
        Also returns the bounds the rules keep."""
        out: list[Fact] = []
        bounds = Bounds()
        if self.n < self.o.min_support:
            return out, bounds
        trace_bound, fails = self._bound([(t.total, t.index) for t in self.c.traces])
        by_service = self._service_bounds()
        trace_kept = ("count", TRACE_COUNT_KEY, (), ()) not in self.cut
        if trace_kept:
            bounds.trace = trace_bound
        for service, (ops, support, bound, fails) in by_service.items():
            fact = Fact(
                "count",
                f"{service_slug(service)}_count_max",
                (("expect", f"trace.spans.where({service_pred(service)}).count() <= {bound}"),),
                f"At most {bound} {service_spans(service, bound)} in one trace",
                support,
                fails,
                services=(service,),
                detail={"bound": bound, "scope": "service"},
            )
            # the kept bound an operation's count must be below to say more than it
            enclosing: int | None = bound
            implied = bound >= trace_bound and trace_kept
            if implied:
                self.implied.append(fact)
                enclosing = trace_bound
            elif ident(fact) in self.cut or not writable(service):  # not kept
                enclosing = trace_bound if trace_kept else None
            else:
                bounds.services[service] = bound
            for op in ops:
                op_fact = self.op_count(op)
                if op_fact is None:
                    continue
                # one operation's bound is its service's; one at or above the enclosing bound says no more
                if len(ops) == 1 or (enclosing is not None and op_fact.detail["bound"] >= enclosing):
                    self.implied.append(op_fact)
                else:
                    out += self.written([op_fact])
            if not implied:
                out.append(fact)
        fails = [t.index for t in self.c.traces if t.total > trace_bound]
        trace_fact = Fact(
            "count",
            TRACE_COUNT_KEY,
            (("expect", f"trace.spans.count() <= {trace_bound}"),),
            f"At most {_spans(trace_bound)} in one trace",
            self.n,
            fails,
            detail={"bound": trace_bound, "scope": "trace"},
        )
        return [trace_fact, *out], bounds

    def _service_bounds(self) -> dict[str, tuple[list[int], int, int, list[int]]]:
        """Service -> (its operations, traces with it, its count bound, the traces above it); computed once."""
        if self._by_service is None:
            self._by_service = {}
            for service in self.c.services:
                ops = self.c.ops_of(service)
                per_trace: dict[int, int] = defaultdict(int)
                for op in ops:
                    for t in self.op_traces[op]:
                        per_trace[t.index] += t.ops[op].count
                if len(per_trace) >= self.o.min_support:
                    bound, fails = self._bound([(v, i) for i, v in per_trace.items()])
                    self._by_service[service] = (ops, len(per_trace), bound, fails)
        return self._by_service

    def op_count(self, op: int) -> Fact | None:
        """The bound on an operation's spans in one trace (`counts` keeps it when below its service's)."""
        if self.support(op) < self.o.min_support:
            return None
        got = self._op_bounds.get(op)
        if got is None:
            got = self._op_bounds[op] = self._bound([(t.ops[op].count, t.index) for t in self.op_traces[op]])
        bound, fails = got
        service = self.c.ops[op].service
        return Fact(
            "count",
            f"{self.slug(op)}{'_op' if self.slug(op) == slug(service) else ''}_count_max",
            (("expect", f"{self.spans(op)}.count() <= {bound}"),),
            f"At most {_spans(bound, self.label(op))} in one trace",
            self.support(op),
            fails,
            ops=(op,),
            detail={"bound": bound, "scope": "op"},
        )

    def presence(self) -> list[Fact]:
        out = []
        for op in range(len(self.c.ops)):
            if self.n - self.support(op) > self.o.allowed(self.n):
                continue
            have = {t.index for t in self.op_traces[op]}
            fails = [t.index for t in self.c.traces if t.index not in have]
            if self.o.accepts(self.n, len(fails)):
                out.append(
                    Fact(
                        "presence",
                        f"{self.slug(op)}_in_every_trace",
                        (("expect", self.has(op)),),
                        f"Every trace has {article(self.c.ops[op].name)} {self.label(op)} span",
                        self.n,
                        fails,
                        ops=(op,),
                    )
                )
        return out

    def parents(self) -> list[Fact]:
        out: list[Fact] = []
        ops = self.c.ops
        for op in range(len(ops)):
            traces = self.op_traces[op]
            if len(traces) < self.o.min_support:
                continue
            shapes = Counter(frozenset(t.ops[op].parents) for t in traces)
            single = Counter({next(iter(ps)): n for ps, n in shapes.items() if len(ps) == 1})
            parent, held = single.most_common(1)[0] if single else (ROOT, 0)
            if parent >= 0 and self.o.accepts(len(traces), len(traces) - held):
                fails = [t.index for t in traces if len(ps := t.ops[op].parents) != 1 or parent not in ps]
                out.append(
                    Fact(
                        "parent",
                        f"{self.slug(op)}_under_{self.slug(parent)}",
                        (("expect", f"{self.spans(op)}.all({self.pred(parent, 'parent.')})"),),
                        f"Every {self.label(op)} span runs directly under {self.label(parent)}",
                        len(traces),
                        fails,
                        ops=(op, parent),
                        detail={"parent": parent},
                    )
                )
                continue
            by_service: Counter[str | None] = Counter()
            service_sets = {shape: frozenset(ops[p].service if p >= 0 else None for p in shape) for shape in shapes}
            for shape, n in shapes.items():
                if len(service_sets[shape]) == 1:
                    by_service[next(iter(service_sets[shape]))] += n
            if not by_service:
                continue
            svc, held = by_service.most_common(1)[0]
            if svc is None or svc == ops[op].service or not self.o.accepts(len(traces), len(traces) - held):
                continue
            fails = [t.index for t in traces if service_sets[frozenset(t.ops[op].parents)] != {svc}]
            out.append(
                Fact(
                    "parent",
                    f"{self.slug(op)}_under_{service_slug(svc)}",
                    (("expect", f"{self.spans(op)}.all({service_pred(svc, 'parent.')})"),),
                    f"Every {self.label(op)} span is called directly from {f'service {svc!r}' if svc else UNNAMED}",
                    len(traces),
                    sorted(fails),
                    ops=(op,),
                    services=(svc,),
                    detail={"parent_service": svc},
                )
            )
        return out

    def orders(self, counts: list[Fact]) -> list[Fact]:
        """`A.before(B)`, required whenever B occurs (`precede`) or whenever A does (`follow`).

        An ordering is left out only when kept ones give it on any trace: `A before C` from `A before B` and
        `B before C` (each required where the one left out is) when a kept count rule allows at most one B
        span, whose start is then before its end. With more B spans the latest may start after C does. Orderings
        through parents are kept: `A before P` gives nothing about B under P (P may occur twice, B under the
        earlier; a child's clock may put it before its parent), nor `A before B` about A2 under A.
        """
        meet, precede, follow = self._order_pairs()
        # an ordering left out by --max-rules cannot stand in for another
        cut_precede = {(a, b) for a, b in precede if self._order_ident(a, b, b) in self.cut}
        cut_follow = {(a, b) for a, b in follow if self._order_ident(a, b, a) in self.cut}
        single = self._single(counts)
        precede = _reduce(precede, cut_precede, single)
        follow = _reduce(follow, cut_follow, single)
        out: list[Fact] = []
        for a, b in sorted(meet):
            both_traces = [t for t in self.op_traces[a] if b in t.ops]
            fails = [t.index for t in both_traces if not _before(t, a, b)]
            out.append(
                Fact(
                    "order",
                    f"{self.slug(a)}_before_{self.slug(b)}",
                    (("when", f"{self.has(a)} and {self.has(b)}"), ("always", f"{self.has(a)}.before({self.has(b)})")),
                    f"Every trace with both {self.label(a)} and {self.label(b)} has {self.label(a)} ending before "
                    f"the last {self.label(b)} starts",
                    len(both_traces),
                    fails,
                    ops=(a, b),
                    detail={"first": a, "then": b, "guard": None},
                )
            )
        for a, b in sorted(precede):
            fails = [t.index for t in self.op_traces[b] if not _before(t, a, b)]
            out.append(
                Fact(
                    "order",
                    self._order_ident(a, b, b)[1],
                    (("when", self.has(b)), ("always", f"{self.has(a)}.before({self.has(b)})")),
                    f"Every trace with {self.label(b)} has {self.label(a)} ending before the last {self.label(b)} "
                    "starts",
                    self.support(b),
                    fails,
                    ops=(a, b),
                    detail={"first": a, "then": b, "guard": b},
                )
            )
        for a, b in sorted(follow):
            fails = [t.index for t in self.op_traces[a] if not _before(t, a, b)]
            out.append(
                Fact(
                    "order",
                    self._order_ident(a, b, a)[1],
                    (("when", self.has(a)), ("always", f"{self.has(a)}.before({self.has(b)})")),
                    f"Every trace with {self.label(a)} has {self.label(b)} starting after the first {self.label(a)} "
                    "ends",
                    self.support(a),
                    fails,
                    ops=(a, b),
                    detail={"first": a, "then": b, "guard": a},
                )
            )
        return out

    def _order_pairs(self) -> tuple[set[tuple[int, int]], set[tuple[int, int]], set[tuple[int, int]]]:
        """(meet, precede, follow): every ordering the corpus holds, before any is left out; computed once."""
        if self._orders is not None:
            return self._orders
        # Traces whose operations' earliest ends and latest starts fall in the same order
        # share every `before` outcome, so the pairs are counted once per such pattern.
        patterns: Counter[tuple[tuple[int, int], ...]] = Counter()
        supported = self.supported
        for t in self.c.traces:
            present = [(o, st) for o, st in t.ops.items() if supported[o]]
            if not 2 <= len(present) <= MAX_ORDER_OPS:
                continue
            events = [(st.first_end, 0, o) for o, st in present]
            events += [(st.last_start, 1, o) for o, st in present]
            events.sort()
            patterns[tuple((flag, o) for _, flag, o in events)] += 1
        width = len(self.c.ops)
        before: dict[int, int] = {}  # a * width + b -> traces where a ends before b starts
        get = before.get
        for pattern, n in patterns.items():
            ended: list[int] = []
            for flag, o in pattern:
                if flag == 0:
                    ended.append(o * width)
                else:
                    same = o * width + o
                    for aw in ended:
                        k = aw + o
                        if k != same:
                            before[k] = get(k, 0) + n
        min_support = self.o.min_support
        precede: set[tuple[int, int]] = set()
        follow: set[tuple[int, int]] = set()
        meet: set[tuple[int, int]] = set()  # ordered when both occur, which meet by chance
        need = self.need
        for k, n in before.items():
            a, b = divmod(k, width)
            if n < need[b] and n < need[a]:
                continue  # holds too rarely to be either kind of order
            both = self.together(a, b)
            if both < min_support or get(b * width + a, 0) * 2 > both:
                continue
            if self.o.accepts(self.support(b), self.support(b) - n):
                (meet if self.by_chance(b, a) else precede).add((a, b))
            elif self.o.accepts(self.support(a), self.support(a) - n):
                (meet if self.by_chance(a, b) else follow).add((a, b))
        self._orders = meet, precede, follow
        return self._orders

    def _order_ident(self, first: int, then: int, guard: int) -> Ident:
        """The ident of the ordering `first` before `then`, required whenever `guard` occurs."""
        a, b = self.slug(first), self.slug(then)
        return "order", f"{b}_after_{a}" if guard == then else f"{a}_then_{b}", (first, then), ()

    def _single(self, counts: list[Fact]) -> set[int]:
        """The operations kept count rules allow at most one span of in a trace (of the operation or its service)."""
        single: set[int] = set()
        for f in counts:
            if f.detail["bound"] != 1:
                continue
            if f.detail["scope"] == "op":
                single.update(f.ops)
            elif f.detail["scope"] == "service":
                single.update(self.c.ops_of(f.services[0]))
        return single

    def by_chance(self, a: int, b: int) -> bool:
        """Whether B occurring with A says nothing: were they independent, fewer than `MIN_EXPECTED` traces
        with A would lack B (B is in nearly every trace, or A in few). B in every trace is a presence fact."""
        missing = self.n - self.support(b)
        return missing > 0 and self.support(a) * missing < MIN_EXPECTED * self.n

    def cooccurrences(self, presence: list[Fact], parents: list[Fact], orders: list[Fact]) -> list[Fact]:
        everywhere = {f.ops[0] for f in presence}
        covered: set[tuple[int, int]] = set()
        for f in parents:
            if "parent" in f.detail:
                covered.add((f.ops[0], f.detail["parent"]))
        for f in orders:
            first, then, guard = f.detail["first"], f.detail["then"], f.detail["guard"]
            if guard is not None:
                covered.add((then, first) if guard == then else (first, then))
        nodes = [op for op in range(len(self.c.ops)) if self.support(op) >= self.o.min_support]
        edges = {a: {b for b in comes if b not in everywhere} for a, comes in self._comes_with(nodes).items()}
        out: list[Fact] = []
        groups = _components(nodes, edges)
        group_of = {op: gi for gi, g in enumerate(groups) for op in g}
        for g in groups:
            if len(g) < 2 or _connected(g, {a: {b for b in edges[a] if (a, b) in covered} for a in g}):
                continue
            members = sorted(g, key=lambda op: (self.c.ops[op].service, self.c.ops[op].name))
            traces = {t.index for op in members for t in self.op_traces[op]}
            fails = sorted(i for i in traces if any(op not in self.c.traces[i].ops for op in members))
            if not self.o.accepts(len(traces), len(fails)):
                continue
            names = " and ".join(self.label(op) for op in members)
            # named by its first two members, not its size: the id stays as members after them come and go
            out.append(
                Fact(
                    "together",
                    f"{self.slug(members[0])}_with_{self.slug(members[1])}",
                    (
                        ("when", " or ".join(self.has(op) for op in members)),
                        ("always", " and ".join(self.has(op) for op in members)),
                    ),
                    f"{names} always appear together",
                    len(traces),
                    fails,
                    ops=tuple(members),
                )
            )
        # Between groups: one edge per pair of groups, then the transitive reduction.
        best: dict[tuple[int, int], tuple[int, int]] = {}
        for a in nodes:
            for b in edges[a]:
                ga, gb = group_of[a], group_of[b]
                if ga == gb:
                    continue
                cur = best.get((ga, gb))
                if cur is None or (self.support(a), -a, -b) > (self.support(cur[0]), -cur[0], -cur[1]):
                    best[ga, gb] = (a, b)
        covered_groups = {(group_of[a], group_of[b]) for a, b in covered if a in group_of and b in group_of}
        for ga, gb in sorted(_reduce(set(best))):
            if (ga, gb) in covered_groups:
                continue
            a, b = best[ga, gb]
            fails = [t.index for t in self.op_traces[a] if b not in t.ops]
            out.append(
                Fact(
                    "cooccurrence",
                    f"{self.slug(a)}_needs_{self.slug(b)}",
                    (("when", self.has(a)), ("always", self.has(b))),
                    f"Every trace with {self.label(a)} also has {self.label(b)}",
                    self.support(a),
                    fails,
                    ops=(a, b),
                )
            )
        return out

    def _comes_with(self, nodes: list[int]) -> dict[int, set[int]]:
        """Operation A -> the operations nearly every trace with A has (not by chance); computed once."""
        if self._with is None:
            self._with = {a: set() for a in nodes}
            for a in nodes:
                shared: Counter[int] = Counter()
                for t in self.op_traces[a]:
                    shared.update(t.ops.keys())
                need = self.support(a) - self.o.allowed(self.support(a))
                self._with[a] = {
                    b
                    for b, n in shared.items()
                    if n >= need and b != a and b in self._with and not self.by_chance(a, b)
                }
        return self._with

    def exclusions(self, implied: dict[int, set[int]], bounds: Bounds) -> list[Fact]:
        """Operations under the same parent operation that never share a trace.

        Left out when the count rules already forbid it: the two, with the operations kept rules say
        come with them, are more spans than the trace or one service may have.
        """
        reach: dict[int, set[int]] = {}

        def brings(x: int) -> set[int]:
            if x not in reach:
                reach[x] = _reachable(x, implied) | {x}
            return reach[x]

        def forbidden(a: int, b: int) -> bool:
            ops = brings(a) | brings(b)
            per_service = Counter(self.c.ops[op].service for op in ops)
            if bounds.trace and len(ops) > bounds.trace:
                return True
            return any(n > bounds.services.get(s, n) for s, n in per_service.items())

        children: dict[int, set[int]] = defaultdict(set)
        for op, traces in enumerate(self.op_traces):
            if len(traces) < self.o.min_support:
                continue
            for t in traces:
                for p in t.ops[op].parents:
                    if p >= 0:
                        children[p].add(op)
        pairs = {(a, b) for sibs in children.values() if len(sibs) <= MAX_SIBLINGS for a in sibs for b in sibs if a < b}
        out: list[Fact] = []
        kept: dict[int, set[int]] = defaultdict(set)
        for a, b in sorted(pairs, key=lambda p: (-self.support(p[0]) - self.support(p[1]), p)):
            both = self.together(a, b)
            support = self.support(a) + self.support(b) - both
            if not self.o.accepts(support, both) or self.support(a) * self.support(b) < MIN_EXPECTED * self.n:
                continue
            fails = sorted(t.index for t in self.op_traces[a] if b in t.ops)
            fact = Fact(
                "exclusion",
                f"{self.slug(a)}_excludes_{self.slug(b)}",
                (("expect", f"not ({self.has(a)} and {self.has(b)})"),),
                f"{self.label(a)} and {self.label(b)} never appear in the same trace",
                support,
                fails,
                ops=(a, b),
            )
            # covered by a kept exclusion (kept rules bring one of its operations with b, or a), or by the counts:
            # left out, and still named by `--compare` where it contradicts a rule
            if kept[a] & brings(b) or kept[b] & brings(a) or forbidden(a, b):
                self.implied.append(fact)
                continue
            if ident(fact) not in self.cut:
                kept[a].add(b)
                kept[b].add(a)
            out.append(fact)
        return out

    def no_calls(self) -> list[Fact]:
        """Service S never directly calls T, although T is reached from S through others.

        Kept even when `parent` rules place every operation of T seen under other services: those say
        nothing of an operation of T not seen yet, which S may call.
        """
        ops = self.c.ops
        edge_traces: dict[tuple[str, str], set[int]] = defaultdict(set)
        for op, traces in enumerate(self.op_traces):
            child = ops[op].service
            for t in traces:
                for p in t.ops[op].parents:
                    if p >= 0 and ops[p].service != child:
                        edge_traces[ops[p].service, child].add(t.index)
        succ: dict[str, set[str]] = defaultdict(set)
        for s, t_ in edge_traces:
            succ[s].add(t_)
        reach = {s: _reachable(s, succ) for s in self.c.services}
        out = []
        for s in self.c.services:
            for target in self.c.services:
                if target == s or not any(target in reach[x] for x in succ[s] if x != target):
                    continue
                support = len(self.service_traces[s] & self.service_traces[target])
                fails = sorted(edge_traces.get((s, target), set()))
                if not self.o.accepts(support, len(fails)):
                    continue
                out.append(
                    Fact(
                        "no_call",
                        f"{service_slug(s)}_never_calls_{service_slug(target)}",
                        (("expect", f"trace.spans.where({service_pred(target)}).none({service_pred(s, 'parent.')})"),),
                        f"{f'Service {s!r} never calls' if s else UNNAMED.capitalize() + ' never call'} "
                        f"{service_label(target)} directly, only through other services",
                        support,
                        fails,
                        services=(s, target),
                        detail={"caller": s, "callee": target},
                    )
                )
        return out

    def error_free(self) -> list[Fact]:
        """Error-free facts for the whole corpus, else per service, else per operation.

        Below 100% confidence, a corpus-wide fact with exceptions gives way to the
        per-service ones when some of those hold without exception: "inventory
        never errors" says more than "almost nothing errors".
        """
        failing = sorted(t.index for t in self.c.traces if any(st.errors for st in t.ops.values()))
        everywhere = Fact(
            "error_free",
            "no_errors",
            (("expect", "trace.spans.none(status == error)"),),
            "No span ends with status error",
            self.n,
            failing,
        )
        if self.o.accepts(self.n, len(failing)) and not failing:
            return [everywhere]
        narrower = self._error_free_narrower()
        if self.o.accepts(self.n, len(failing)) and not any(not f.exceptions for f in narrower):
            return [everywhere]
        return narrower

    def _error_free_narrower(self) -> list[Fact]:
        out = []
        for service in self.c.services:
            ops = [op for op in self.c.ops_of(service) if self.support(op)]
            fails = sorted({t.index for op in ops for t in self.op_traces[op] if t.ops[op].errors})
            support = len(self.service_traces[service])
            if self.o.accepts(support, len(fails)):
                out.append(
                    Fact(
                        "error_free",
                        f"{service_slug(service)}_no_errors",
                        (("expect", f"trace.spans.where({service_pred(service)}).none(status == error)"),),
                        f"No {service_spans(service)} ends with status error",
                        support,
                        fails,
                        services=(service,),
                    )
                )
                continue
            for op in ops:
                op_fails = [t.index for t in self.op_traces[op] if t.ops[op].errors]
                if self.o.accepts(self.support(op), len(op_fails)):
                    out.append(
                        Fact(
                            "error_free",
                            f"{self.slug(op)}_no_errors",
                            (("expect", f"{self.spans(op)}.none(status == error)"),),
                            f"No {self.label(op)} span ends with status error",
                            self.support(op),
                            op_fails,
                            ops=(op,),
                        )
                    )
        return out

    def durations(self) -> list[Fact]:
        q = self.o.duration_quantile if self.o.duration_quantile is not None else self.o.min_confidence
        out = []
        for op, traces in enumerate(self.op_traces):
            if len(traces) < self.o.min_support:
                continue
            values = sorted(((t.ops[op].max_duration, t.index) for t in traces), reverse=True)
            k = min(math.floor((1.0 - q) * len(values) + 1e-9), len(values) - 1)
            bound = readable_ceiling(values[k][0])
            if bound <= 0 or bound >= NS_LIMIT:  # a duration past 64 bits is missing: no bound holds it
                continue
            fails = sorted(i for v, i in values if v > bound)
            if not self.o.accepts(len(traces), len(fails)):
                continue
            text = duration_text(bound)
            out.append(
                Fact(
                    "duration",
                    f"{self.slug(op)}_duration_max",
                    (("expect", f"{self.spans(op)}.all(duration <= {text})"),),
                    f"Every {self.label(op)} span takes at most {text}",
                    len(traces),
                    fails,
                    ops=(op,),
                    detail={"bound_ns": bound},
                )
            )
        return self.wider_durations(out)

    def wider_durations(self, facts: list[Fact]) -> list[Fact]:
        """Operations of a service, or of the corpus, with the same bound share one rule; theirs are kept
        in `_merged`, for `--compare` to set beside a rule about one of them."""
        bounds = {f.ops[0]: int(f.detail["bound_ns"]) for f in facts}
        everything = self.wider_duration(range(len(self.c.ops)), bounds, None)
        if everything is not None:
            self._merged = facts
            return [everything]
        out = []
        covered: set[int] = set()
        for service in self.c.services:
            mine = self.c.ops_of(service)
            fact = self.wider_duration(mine, bounds, service)
            if fact is not None:
                out.append(fact)
                covered.update(mine)
        self._merged = [f for f in facts if f.ops[0] in covered]
        return out + [f for f in facts if f.ops[0] not in covered]

    def wider_duration(self, ops: Iterable[int], bounds: dict[int, int], service: str | None) -> Fact | None:
        ops = list(ops)
        mine = {bounds[op] for op in ops if op in bounds}
        if len(mine) != 1 or sum(1 for op in ops if op in bounds) < 2:
            return None
        (bound,) = mine
        traces = {t.index for op in ops for t in self.op_traces[op]}
        fails = sorted({t.index for op in ops for t in self.op_traces[op] if t.ops[op].max_duration > bound})
        if not self.o.accepts(len(traces), len(fails)):
            return None
        text = duration_text(bound)
        scope = "trace.spans" if service is None else f"trace.spans.where({service_pred(service)})"
        return Fact(
            "duration",
            "all_duration_max" if service is None else f"{service_slug(service)}_duration_max",
            (("expect", f"{scope}.all(duration <= {text})"),),
            f"Every {'span' if service is None else service_spans(service)} takes at most {text}",
            len(traces),
            fails,
            services=(service,) if service is not None else (),
            detail={"bound_ns": bound},
        )

    def attribute_facts(self) -> list[Fact]:
        """Per operation and key; a fact that holds on every operation of a service, or of the
        corpus, is written once for the service or for all spans instead."""
        per_op: dict[AttrForm, dict[int, list[int]]] = defaultdict(dict)
        ranges: dict[str, dict[int, AttrForm]] = defaultdict(dict)
        for (op, key), ks in sorted(self.c.keys.items()):
            traces = self.op_traces[op]
            if len(traces) >= self.o.min_support and len(ks.full) >= len(traces) - self.o.allowed(len(traces)):
                mined = self.attribute_form(op, key, ks)
                if mined is None:
                    continue
                form, fails = mined
                if form.kind == "range":
                    # ranges of one key are tried together, as the range that holds them all
                    ranges[key][op] = form
                per_op[form][op] = fails
        per_op = _union_ranges(per_op, ranges)
        out = []
        all_ops = range(len(self.c.ops))
        with_key: dict[str, set[int]] = defaultdict(set)
        for op, key in self.c.keys:
            with_key[key].add(op)
        for form, found in per_op.items():
            carriers = with_key[form.key]
            covered: set[int] = set()
            if len(found) > 1 and len(carriers) == len(all_ops):
                everywhere = {op: self.form_exceptions(op, form) for op in all_ops}
                fact = self.wider_attribute_fact(form, everywhere, None)
                if fact is not None:
                    out.append(fact)
                    covered.update(all_ops)
            for service in sorted({self.c.ops[op].service for op in found}):
                mine = self.c.ops_of(service)
                if not covered and len(mine) > 1 and len(found.keys() & set(mine)) > 1 and carriers.issuperset(mine):
                    exceptions = {op: self.form_exceptions(op, form) for op in mine}
                    fact = self.wider_attribute_fact(form, exceptions, service)
                    if fact is not None:
                        out.append(fact)
                        covered.update(mine)
            for op, fails in found.items():
                own = ranges[form.key].get(op) if form.kind == "range" else None
                if op not in covered or own is not None:
                    out.append(self.op_attribute_fact(op, own or form, fails))
        return _without_loose_ranges(out)

    def attribute_form(self, op: int, key: str, ks: KeyStats) -> tuple[AttrForm, list[int]] | None:
        """The strongest form the key of this operation keeps to, and the traces where it does not."""
        traces = self.op_traces[op]
        allowed = self.o.allowed(len(traces))
        if len(ks.kinds) != 1 or ks.kinds & {"other", "mixed"}:
            return None
        (kind,) = ks.kinds
        missing = _missing(traces, ks)
        values = _closed_set(ks, allowed - len(missing), self.o.max_values)
        if values is not None and kind == "bool" and len(values[0]) == 2:
            return None  # "is true or false" says only that it is a boolean
        if values is not None:
            return AttrForm(key, "values", tuple(values[0])), sorted([*missing, *values[1]])
        if kind == "num" and ks.lo is not None and ks.hi is not None and ks.lo < ks.hi:
            if _ID_KEY.search(key) or _id_or_time(ks.timeline):
                return None  # an id is a label, not a quantity; tomorrow's values lie outside today's range
            return AttrForm(key, "range", _outward(ks.lo, ks.hi)), missing
        if kind == "str" and len(missing) + len(ks.empty) <= allowed:
            return AttrForm(key, "present"), sorted([*missing, *ks.empty])
        return None

    def form_exceptions(self, op: int, form: AttrForm) -> list[int] | None:
        """Traces where some span of `op` breaks `form`; None when the summaries cannot tell."""
        traces = self.op_traces[op]
        ks = self.c.keys.get((op, form.key))
        if ks is None:
            return [t.index for t in traces]
        if not ks.full:
            return [t.index for t in traces]
        missing = _missing(traces, ks)
        if form.kind == "values" and ks.kinds <= {"str", "num", "bool"} and ks.values is not None:
            allowed_values = set(form.values)
            if ks.values.keys() <= allowed_values and len(ks.kinds) == 1:
                return missing
            if ks.trace_values is None or len(ks.kinds) != 1:
                return None
            return sorted([*missing, *(i for i, vs in ks.trace_values if not allowed_values.issuperset(vs))])
        if form.kind == "range" and ks.kinds == {"num"} and ks.lo is not None and ks.hi is not None:
            return missing if form.values[0] <= ks.lo and ks.hi <= form.values[1] else None
        if form.kind == "present" and ks.kinds == {"str"}:
            return sorted([*missing, *ks.empty])
        return None

    def wider_attribute_fact(
        self, form: AttrForm, exceptions: dict[int, list[int] | None], service: str | None
    ) -> Fact | None:
        if any(e is None for e in exceptions.values()):
            return None
        traces = {t.index for op in exceptions for t in self.op_traces[op]}
        fails = sorted({i for e in exceptions.values() if e is not None for i in e})
        if not self.o.accepts(len(traces), len(fails)):
            return None
        scope = "trace.spans" if service is None else f"trace.spans.where({service_pred(service)})"
        where = "every span" if service is None else f"every {service_spans(service)}"
        stem = "all" if service is None else service_slug(service)
        return Fact(
            "attribute",
            f"{stem}_{name_slug(form.key, 'attribute') or 'attribute'}_{form.kind}",
            (("expect", f"{scope}.all({form.pred})"),),
            f"Attribute {form.key!r} of {where} {form.phrase}",
            len(traces),
            fails,
            services=(service,) if service is not None else (),
            detail=form.detail,
        )

    def op_attribute_fact(self, op: int, form: AttrForm, fails: list[int]) -> Fact:
        return Fact(
            "attribute",
            f"{self.slug(op)}_{name_slug(form.key, 'attribute') or 'attribute'}_{form.kind}",
            (("expect", f"{self.spans(op)}.all({form.pred})"),),
            f"Attribute {form.key!r} of {self.label(op)} {form.phrase}",
            self.support(op),
            fails,
            ops=(op,),
            services=(self.c.ops[op].service,),
            detail=form.detail,
        )


@dataclass(frozen=True)
class AttrForm:
    """What an attribute keeps to: one of a few `values`, a numeric `range` (low, high), or `present`."""

    key: str
    kind: str
    values: tuple[Any, ...] = ()

    @property
    def pred(self) -> str:
        ref = attribute(self.key)
        if self.kind == "values":
            if len(self.values) == 1:
                return f"{ref} == {literal(self.values[0])}"
            return f"{ref} in [{', '.join(literal(v) for v in self.values)}]"
        if self.kind == "range":
            return f"{ref} >= {literal(self.values[0])} and {ref} <= {literal(self.values[1])}"
        return f"{ref} != ''"

    @property
    def phrase(self) -> str:
        if self.kind == "values":
            shown = ", ".join(literal(v) for v in self.values)
            return f"is always {'one of ' if len(self.values) > 1 else ''}{shown}"
        if self.kind == "range":
            return f"is always between {literal(self.values[0])} and {literal(self.values[1])}"
        return "is always set (non-empty)"

    @property
    def detail(self) -> dict[str, Any]:
        if self.kind == "values":
            return {"key": self.key, "values": list(self.values)}
        if self.kind == "range":
            return {"key": self.key, "low": self.values[0], "high": self.values[1]}
        return {"key": self.key}


def _union_ranges(
    per_op: dict[AttrForm, dict[int, list[int]]], ranges: dict[str, dict[int, AttrForm]]
) -> dict[AttrForm, dict[int, list[int]]]:
    """One group per key for numeric ranges, under the range that covers every operation's own."""
    out: dict[AttrForm, dict[int, list[int]]] = {}
    merged: dict[str, dict[int, list[int]]] = defaultdict(dict)
    for form, found in per_op.items():
        if form.kind == "range":
            merged[form.key].update(found)
        else:
            out[form] = found
    for key, found in merged.items():
        own = ranges[key]
        low = min(own[op].values[0] for op in found)
        high = max(own[op].values[1] for op in found)
        out[AttrForm(key, "range", (low, high))] = found
    return out


def _without_loose_ranges(facts: list[Fact]) -> list[Fact]:
    """Drop an operation's range that is not much narrower than its service's or the corpus's range."""
    wide: dict[tuple[str, str | None], tuple[Any, Any]] = {}
    for f in facts:
        if "low" in f.detail and not f.ops:
            wide[f.detail["key"], f.services[0] if f.services else None] = (f.detail["low"], f.detail["high"])
    out = []
    for f in facts:
        if "low" in f.detail and f.ops:
            width = f.detail["high"] - f.detail["low"]
            service = f.services[0] if f.services else None
            wider = [wide.get((f.detail["key"], s)) for s in (service, None)]
            if any(w is not None and width * 2 > w[1] - w[0] for w in wider):
                continue
        out.append(f)
    return out


def _missing(traces: list[TraceSummary], ks: KeyStats) -> list[int]:
    """Traces of the operation where some span lacks the key."""
    if len(ks.full) == len(traces):
        return []
    present = set(ks.full)
    return [t.index for t in traces if t.index not in present]


def _spans(n: int, what: str = "") -> str:
    return plural(n, f"{what} span" if what else "span")


def _implications(facts: list[Fact]) -> dict[int, set[int]]:
    """Operation A -> operations a trace with A has, by kept `parent`, `order`, `cooccurrence` and
    `together` rules."""
    out: dict[int, set[int]] = defaultdict(set)
    for f in facts:
        if f.kind == "parent" and "parent" in f.detail:
            out[f.ops[0]].add(f.detail["parent"])
        elif f.kind == "order":
            first, then = f.detail["first"], f.detail["then"]
            if f.detail["guard"] == then:
                out[then].add(first)
            elif f.detail["guard"] == first:
                out[first].add(then)
        elif f.kind == "cooccurrence":
            out[f.ops[0]].add(f.ops[1])
        elif f.kind == "together":
            for a in f.ops:
                out[a].update(b for b in f.ops if b != a)
    return out


def _under_present(presence: list[Fact], usable: list[Fact], implied: dict[int, set[int]]) -> list[Fact]:
    """Presence facts not implied by another (one of `usable`): A in every trace and a rule "with A
    comes B" say B is too. Of operations that imply each other, the first is kept."""
    everywhere = [f.ops[0] for f in usable]
    reach = {a: _reachable(a, implied) for a in everywhere}
    out = []
    for f in presence:
        b = f.ops[0]
        if any(b in reach[a] and (a not in reach.get(b, ()) or a < b) for a in everywhere if a != b):
            continue
        out.append(f)
    return out


def _before(t: TraceSummary, a: int, b: int) -> bool:
    sa, sb = t.ops.get(a), t.ops.get(b)
    return sa is not None and sb is not None and sa.first_end <= sb.last_start


def _outward(lo: Any, hi: Any) -> tuple[Any, Any]:
    """A float range widened to two significant digits of its width (`0.1150..0.8973` is `0.11..0.9`);
    integers are kept as they are."""
    if isinstance(lo, int) and isinstance(hi, int):
        return lo, hi
    width = float(hi) - float(lo)
    if not math.isfinite(width) or width <= 0:
        return lo, hi
    step = Decimal(1).scaleb(math.floor(math.log10(width)) - 1)
    # a double has 17 significant digits and the width is at least its last one's size, so the
    # quantized values need few more; the default 28 digits were too few only past 1e28
    with localcontext(prec=60):
        low = float(Decimal(repr(float(lo))).quantize(step, rounding=ROUND_FLOOR))
        high = float(Decimal(repr(float(hi))).quantize(step, rounding=ROUND_CEILING))
    if not math.isfinite(high):
        high = hi  # rounded up past the largest double
    return min(low, lo), max(high, hi)


_ID_KEY = re.compile(r"(?:^|[._\-])[iI][dD]$|[a-z0-9]I[dD]$")
"""Keys named as ids (`customer.id`, `user_id`, `id`, `orderId`): their numbers name things, and a range of
them says only which ids the corpus happened to hold (random ids fill any range tomorrow)."""


def _id_or_time(timeline: list[tuple[int, Any]]) -> bool:
    """Whether numbers seen over time look like ids or timestamps: nearly all distinct, at nearly all
    distinct times, and growing (or shrinking) with time (Spearman's rank correlation at least 0.9)."""
    n = len(timeline)
    if n < MIN_TIMELINE or len({v for _, v in timeline}) < 0.9 * n or len({t for t, _ in timeline}) < 0.9 * n:
        return False
    by_value = sorted(range(n), key=lambda i: timeline[i][1])
    value_rank = [0] * n
    for r, i in enumerate(by_value):
        value_rank[i] = r
    by_time = sorted(range(n), key=lambda i: timeline[i][0])
    d2 = sum((r - value_rank[i]) ** 2 for r, i in enumerate(by_time))
    return abs(1 - 6 * d2 / (n * (n * n - 1))) >= 0.9


def _closed_set(ks: KeyStats, allowed: int, max_values: int) -> tuple[list[Any], list[int]] | None:
    """The fewest values (at most `max_values`) that all but `allowed` of the key's full traces keep to,
    each seen on at least `MIN_TRACES_PER_VALUE` traces (a value seen once says the set is open)."""
    if allowed < 0 or ks.values is None or not ks.values:
        return None
    common = [v for v, n in sorted(ks.values.items(), key=lambda vn: -vn[1]) if n >= MIN_TRACES_PER_VALUE]
    if len(common) == len(ks.values) <= max_values:
        return sorted(common), []
    if allowed == 0 or ks.trace_values is None or not common:
        return None
    per_trace = ks.trace_values

    def failing(keep: list[Any]) -> list[int]:
        kept = set(keep)
        return [i for i, vs in per_trace if not kept.issuperset(vs)]

    chosen = common[:max_values]
    fails = failing(chosen)
    if len(fails) > allowed:
        return None
    while len(chosen) > 1:
        shorter = failing(chosen[:-1])
        if len(shorter) > allowed:
            break
        chosen, fails = chosen[:-1], shorter
    return sorted(chosen), fails


def _reachable(start: Any, succ: dict[Any, set[Any]]) -> set[Any]:
    """Nodes reachable from `start` by one step or more."""
    seen: set[Any] = set()
    stack = list(succ.get(start, ()))
    while stack:
        x = stack.pop()
        if x in seen:
            continue
        seen.add(x)
        stack.extend(succ.get(x, ()))
    return seen


def _reduce(
    edges: set[tuple[int, int]], cut: Iterable[tuple[int, int]] = (), through: set[int] | None = None
) -> set[tuple[int, int]]:
    """Drop every edge a -> c that a longer path a -> b -> ... -> c also gives, a path of edges not in `cut`
    (and, given `through`, whose every node between a and c is in it)."""
    succ: dict[int, set[int]] = defaultdict(set)
    for a, b in edges.difference(cut):
        succ[a].add(b)
    inner = succ if through is None else {x: succ[x] for x in through if x in succ}
    reach = {a: _reachable(a, inner) for a in list(inner)}
    kept = set()
    for a, c in edges:
        if not any(c in reach.get(b, ()) for b in succ[a] if b != c and b != a):
            kept.add((a, c))
    return kept


def _components(nodes: list[int], edges: dict[int, set[int]]) -> list[list[int]]:
    """Strongly connected components: operations that imply each other."""
    reach = {a: _reachable(a, edges) for a in nodes}
    seen: set[int] = set()
    groups = []
    for a in nodes:
        if a in seen:
            continue
        group = sorted({a} | {b for b in reach[a] if a in reach[b]})
        seen.update(group)
        groups.append(group)
    return groups


def _connected(group: list[int], edges: dict[int, set[int]]) -> bool:
    """Whether `edges` alone make the group strongly connected."""
    first = group[0]
    forward = _reachable(first, edges) | {first}
    back: dict[int, set[int]] = defaultdict(set)
    for a, bs in edges.items():
        for b in bs:
            back[b].add(a)
    backward = _reachable(first, back) | {first}
    return all(g in forward and g in backward for g in group)


def id_named(corpus: Corpus) -> tuple[frozenset[int], list[str]]:
    """The operations named with an id (at least `ID_NAMES` names of one service alike once their ids are
    read as `{id}`), and one warning for each service with such names or more than `MANY_NAMES` names."""
    found: set[int] = set()
    warnings: list[str] = []
    for service in corpus.services:
        ops = corpus.ops_of(service)
        shapes: dict[str, list[int]] = defaultdict(list)
        for op in ops:
            shapes[_ID_PART.sub("{id}", corpus.ops[op].name)].append(op)
        alike = [(shape, group) for shape, group in shapes.items() if len(group) >= ID_NAMES]
        where = f"the service {service_label(service)}" if service else "spans without service.name"
        if alike:
            shape = max(alike, key=lambda sg: (len(sg[1]), sg[0]))[0]
            names = sorted(corpus.ops[op].name for _, g in alike for op in g)
            found.update(op for _, g in alike for op in g)
            warnings.append(
                f"{where} has {len(names)} operation names that differ only in ids ({names[0]!r}, {names[1]!r}, "
                f"...): span names should be low-cardinality (OpenTelemetry's semantic conventions), e.g. "
                f"{shape!r} with the id in an attribute; rules about those names come last under --max-rules"
            )
        elif len(ops) > MANY_NAMES:
            names = sorted(corpus.ops[op].name for op in ops)
            warnings.append(
                f"{where} has {len(ops)} operation names ({names[0]!r}, {names[1]!r}, ...): span names should be "
                "low-cardinality (OpenTelemetry's semantic conventions), with ids and parameters in attributes"
            )
    return frozenset(found), warnings


def rank(fact: Fact, id_named: frozenset[int] = frozenset()) -> tuple[Any, ...]:
    """Rules about no operation named with an id first (see `id_named`), then kinds in `KINDS` order, then the
    most trustworthy: confidence, then traces tested on."""
    noisy = any(op in id_named for op in fact.ops)
    return (noisy, KINDS.index(fact.kind), -round(fact.confidence, 6), -fact.support, fact.key)


def select(facts: list[Fact], max_rules: int, id_named: frozenset[int] = frozenset()) -> list[Fact]:
    """At most `max_rules` facts, the best ranked, listed by kind then id."""
    best = sorted(facts, key=lambda f: rank(f, id_named))[: max(max_rules, 0)]
    return sorted(best, key=lambda f: (KINDS.index(f.kind), f.key))


def mine_within(miner: Miner, max_rules: int) -> tuple[list[Fact], list[Fact]]:
    """(every fact found, the at most `max_rules` of them to write), so that no fact is left out of
    both: one the kept rules would imply is found after all when `max_rules` cuts one of those rules.

    Mines again, without the cut facts as reasons to leave others out, until the facts it cuts are
    all ones it was told of (the told set grows each round, so this ends; usually after one round).
    """
    found = miner.mine()
    cut: set[Ident] = set()
    while True:
        chosen = select(found, max_rules, miner.id_named)
        left_out = {ident(f) for f in found}.difference(map(ident, chosen))
        if left_out <= cut:
            return found, chosen
        cut |= left_out
        found = miner.mine(cut)


def discover(corpus: Corpus, options: Options) -> list[Fact]:
    return mine_within(Miner(corpus, options), options.max_rules)[1]
