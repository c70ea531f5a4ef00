"""Expected signals against observed ones.

Each expectation stands for `count` distinct signals; a signal can satisfy one
expectation only. The pairing is a maximum bipartite matching, so a broad
expectation (`rule: X`) never steals the signal a narrow one (`rule: X,
trace: a`) needs. Expectations left short are missing signals; signals left
over are unexpected. An expectation of `count: 0` says no signal like it may
fire: any that does is forbidden, even one a broader expectation takes. Any of
these fails the case.

The matching is a maximum flow over pools, not signals: expectations that ask
the same are one pool, and signals that fit the same pools one class, so an
entry of `count: 5000` over 5,000 alike signals is one edge, and nothing is
built per counted signal.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fluo_lang.diagnostics import plural
from fluo_lang.values import to_json

from .inline import parse_duration
from .spec import Expectation

Signal = dict[str, Any]


@dataclass
class Row:
    """One expectation with the signals that satisfied it and, when short, the near misses."""

    expectation: Expectation
    signals: list[Signal] = field(default_factory=list)
    near: list[Signal] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    forbidden: list[Signal] = field(default_factory=list)
    """For `count: 0`: the signals like it that fired."""

    @property
    def missing(self) -> int:
        return self.expectation.count - len(self.signals)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and not self.forbidden


@dataclass
class Match:
    rows: list[Row]
    unexpected: list[Signal]

    @property
    def ok(self) -> bool:
        return not self.unexpected and all(r.ok for r in self.rows)

    @property
    def missing(self) -> int:
        return sum(r.missing for r in self.rows)

    @property
    def forbidden(self) -> int:
        return sum(len(r.forbidden) for r in self.rows)

    def forbidden_signals(self) -> dict[int, Signal]:
        """The signals a `count: 0` entry forbids, by `id`, each once however many entries forbid it."""
        out: dict[int, Signal] = {}
        for row in self.rows:
            out.update((id(s), s) for s in row.forbidden)
        return out

    def summary(self) -> str:
        """`2 missing, 1 unexpected signal`: each signal counted once, a forbidden one as forbidden only, though
        the JSON report also lists it as unexpected when no other entry took it."""
        forbidden = self.forbidden_signals()
        unexpected = [s for s in self.unexpected if id(s) not in forbidden]
        counts = ((self.missing, "missing"), (len(unexpected), "unexpected"), (len(forbidden), "forbidden"))
        shown = [(n, what) for n, what in counts if n]  # the noun agrees with the count next to it
        words = [f"{n} {what}" for n, what in shown[:-1]] + [plural(n, f"{what} signal") for n, what in shown[-1:]]
        return ", ".join(words)


def same_value(expected: Any, actual: Any) -> bool:
    """JSON values equal as a test author means them: 1 == 1.0, `0.02s` == `20ms`, never true == 1."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return expected == actual
    if isinstance(expected, float) and not math.isfinite(expected) and isinstance(actual, str):
        return bool(to_json(expected) == actual)  # YAML's `.inf`, `.nan`: a signal says "Infinity", "NaN"
    if isinstance(expected, str) and isinstance(actual, str):
        if expected == actual:
            return True
        a, b = parse_duration(expected), parse_duration(actual)
        return a is not None and a == b
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        return expected.keys() == actual.keys() and all(same_value(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(same_value(x, y) for x, y in zip(expected, actual, strict=True))
    return bool(expected is None and actual is None)


def mismatch(e: Expectation, signal: Signal, labels: Mapping[str, str]) -> str | None:
    """Why `signal` does not satisfy `e`, in a few words; None when it does."""
    if signal.get("rule") != e.rule:
        return f"rule is {signal.get('rule')}"
    trace_id = signal.get("trace_id")
    if e.trace_id is not None and trace_id != e.trace_id:
        return f"trace_id is {trace_id}"
    if e.trace is not None and trace_id != labels.get(e.trace):
        label = next((k for k, v in labels.items() if v == trace_id), None)
        return f"trace is {label!r}" if label is not None else f"trace_id is {trace_id}"
    if e.observed:
        observed = signal.get("observed") or {}
        for key, want in e.observed.items():
            if key not in observed:
                return f"observed has no `{key}`"
            if not same_value(want, observed[key]):
                return f"observed.{key} is {json.dumps(observed[key])}, not {json.dumps(want)}"
    return None


def match_signals(expectations: Sequence[Expectation], signals: Sequence[Signal], labels: Mapping[str, str]) -> Match:
    by_rule: dict[Any, list[int]] = {}
    by_trace: dict[tuple[Any, Any], list[int]] = {}
    for j, s in enumerate(signals):
        by_rule.setdefault(s.get("rule"), []).append(j)
        by_trace.setdefault((s.get("rule"), s.get("trace_id")), []).append(j)

    def fitting(e: Expectation) -> list[int]:
        if e.trace_id is not None:
            near = by_trace.get((e.rule, e.trace_id), [])
        elif e.trace is not None:
            near = by_trace.get((e.rule, labels.get(e.trace)), [])
        else:
            near = by_rule.get(e.rule, [])
        return [j for j in near if mismatch(e, signals[j], labels) is None]

    # Entries that say the same thing share one pool of signals; so do signals that fit the same entries.
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(expectations):
        if e.count > 0:
            groups.setdefault(_criteria(e), []).append(i)
    pools = list(groups.values())
    fits_of: dict[int, list[int]] = {}  # signal -> the pools it fits
    for p, members in enumerate(pools):
        for j in fitting(expectations[members[0]]):
            fits_of.setdefault(j, []).append(p)
    classes: dict[tuple[int, ...], list[int]] = {}
    for j in sorted(fits_of):
        classes.setdefault(tuple(fits_of[j]), []).append(j)
    kinds = list(classes.items())
    flow = _max_flow(
        [sum(expectations[i].count for i in members) for members in pools],
        [len(js) for _, js in kinds],
        [(p, k) for k, (fits, _) in enumerate(kinds) for p in fits],
    )
    taken: list[list[int]] = [[] for _ in pools]
    for k, (fits, js) in enumerate(kinds):
        at = 0
        for p in fits:
            n = flow.get((p, k), 0)
            taken[p].extend(js[at : at + n])
            at += n
    rows = [Row(e) for e in expectations]
    owned: set[int] = set()
    for p, members in enumerate(pools):
        js = sorted(taken[p])
        owned.update(js)
        for i in members:
            n = expectations[i].count
            rows[i].signals = [signals[j] for j in js[:n]]
            js = js[n:]
    for row in rows:
        if row.expectation.count == 0:
            row.forbidden = [signals[j] for j in fitting(row.expectation)]
    unexpected = [s for j, s in enumerate(signals) if j not in owned]
    for row in rows:
        if row.ok or row.forbidden:
            continue
        for s in unexpected:
            if s.get("rule") == row.expectation.rule:
                row.near.append(s)
                row.reasons.append(mismatch(row.expectation, s, labels) or "")
    return Match(rows, unexpected)


def _criteria(e: Expectation) -> str:
    """What an entry asks of a signal, as text: entries with the same text fit the same signals."""
    return json.dumps([e.rule, e.trace, e.trace_id, e.observed], sort_keys=True, default=repr)


def _max_flow(left: list[int], right: list[int], edges: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """A maximum flow from `left` nodes (each supplying up to its capacity) to `right` nodes (each taking up to
    its capacity) along `edges`, as the amount on each edge: Dinic's algorithm, without recursion.

    Its cost depends on the number of nodes and edges, not on the capacities, so an entry of
    `count: 1000` over 1,000 alike signals is one pool, one class and one edge.
    """
    n_left = len(left)
    source, sink = n_left + len(right), n_left + len(right) + 1
    graph: list[list[int]] = [[] for _ in range(sink + 1)]
    to: list[int] = []
    cap: list[int] = []

    def arc(a: int, b: int, c: int) -> int:
        graph[a].append(len(to))
        to.append(b)
        cap.append(c)
        graph[b].append(len(to))
        to.append(a)
        cap.append(0)
        return len(to) - 2

    for p, c in enumerate(left):
        arc(source, p, c)
    for k, c in enumerate(right):
        arc(n_left + k, sink, c)
    middle = {(p, k): arc(p, n_left + k, right[k]) for p, k in edges}
    while True:
        level = [-1] * len(graph)
        level[source] = 0
        queue = deque([source])
        while queue:
            a = queue.popleft()
            for e in graph[a]:
                if cap[e] and level[to[e]] < 0:
                    level[to[e]] = level[a] + 1
                    queue.append(to[e])
        if level[sink] < 0:
            break
        next_arc = [0] * len(graph)
        while True:  # one augmenting path per round, found depth first along the levels
            path: list[int] = []
            a = source
            while a != sink:
                arcs = graph[a]
                while next_arc[a] < len(arcs):
                    e = arcs[next_arc[a]]
                    if cap[e] and level[to[e]] == level[a] + 1:
                        break
                    next_arc[a] += 1
                if next_arc[a] == len(arcs):  # a dead end: no path through `a` in this phase
                    if not path:
                        break
                    level[a] = -1
                    a = to[path.pop() ^ 1]
                    continue
                e = arcs[next_arc[a]]
                path.append(e)
                a = to[e]
            if a != sink:
                break
            pushed = min(cap[e] for e in path)
            for e in path:
                cap[e] -= pushed
                cap[e ^ 1] += pushed
    return {pk: cap[e ^ 1] for pk, e in middle.items() if cap[e ^ 1]}
