"""Expected signals against observed ones: fluo_run.testing.matching."""

from __future__ import annotations

from typing import Any

import pytest
from conformance_cases import compare_signals
from hypothesis import given, settings
from hypothesis import strategies as st

from fluo_run.testing.matching import match_signals, mismatch, same_value
from fluo_run.testing.spec import Expectation

A = "a" * 32
B = "b" * 32
LABELS = {"first": A, "second": B}


def sig(rule: str, trace_id: str | None = A, **observed: Any) -> dict[str, Any]:
    return {"rule": rule, "trace_id": trace_id, "observed": observed}


def exp(rule: str, **kw: Any) -> Expectation:
    return Expectation(rule=rule, line=1, **kw)


def test_everything_expected_and_nothing_else() -> None:
    m = match_signals([exp("r"), exp("s", trace="second")], [sig("s", B), sig("r")], LABELS)
    assert m.ok and m.unexpected == [] and [len(r.signals) for r in m.rows] == [1, 1]


def test_an_entry_stands_for_one_signal_unless_counted() -> None:
    two = [sig("r"), sig("r", B)]
    one = match_signals([exp("r")], two, LABELS)
    assert not one.ok and one.unexpected == [two[1]] and one.summary() == "1 unexpected signal"
    assert match_signals([exp("r", count=2)], two, LABELS).ok
    three = match_signals([exp("r", count=3)], two, LABELS)
    assert three.missing == 1 and three.summary() == "1 missing signal"
    zero = match_signals([exp("r", count=0)], [], LABELS)
    assert zero.ok


def test_a_broad_expectation_does_not_steal_a_narrow_ones_signal() -> None:
    signals = [sig("r", A), sig("r", B)]
    m = match_signals([exp("r"), exp("r", trace="first")], signals, LABELS)
    assert m.ok, m
    assert m.rows[1].signals == [signals[0]] and m.rows[0].signals == [signals[1]]


def test_count_zero_forbids_every_signal_like_it_even_one_a_broader_entry_takes() -> None:
    """`{rule: r, count: 1}` with `{rule: r, trace: first, count: 0}`: r on `first` breaks the second."""
    on_first = sig("r", A)
    m = match_signals([exp("r"), exp("r", trace="first", count=0)], [on_first], LABELS)
    assert not m.ok and m.rows[1].forbidden == [on_first] and m.summary() == "1 forbidden signal"
    assert m.rows[0].ok and m.unexpected == []
    assert match_signals([exp("r"), exp("r", trace="first", count=0)], [sig("r", B)], LABELS).ok


def test_near_misses_say_why() -> None:
    m = match_signals(
        [exp("r", observed={"count": 3}), exp("s", trace="first"), exp("t")],
        [sig("r", count=2, bound=1), sig("s", B), sig("u")],
        LABELS,
    )
    assert [r.reasons for r in m.rows] == [["observed.count is 2, not 3"], ["trace is 'second'"], []]
    assert m.missing == 3 and len(m.unexpected) == 3
    assert m.summary() == "3 missing, 3 unexpected signals"


@pytest.mark.parametrize(
    ("e", "s", "reason"),
    [
        (exp("r", trace_id=B), sig("r", A), f"trace_id is {A}"),
        (exp("r", observed={"k": 1}), sig("r"), "observed has no `k`"),
        (exp("r", observed={"k": True}), sig("r", k=1), "observed.k is 1, not true"),
        (exp("r", trace="first"), sig("r", "c" * 32), f"trace_id is {'c' * 32}"),
        (exp("r"), sig("s"), "rule is s"),
        (exp("r", observed={"d": "0.02s"}), sig("r", d="20ms"), None),
        (exp("r", trace="second", observed={"n": 2.0}), sig("r", B, n=2, extra=1), None),
    ],
)
def test_mismatch(e: Expectation, s: dict[str, Any], reason: str | None) -> None:
    assert mismatch(e, s, LABELS) == reason


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (False, False, True),
        ("20ms", "0.02s", True),
        ("20ms", "21ms", False),
        ("1.5ns", "2ns", False),  # no duration: a fraction of a nanosecond is not rounded to one
        ("9007199.254740993s", "9007199254740993ns", True),  # exact past a float's 53 bits
        ("9007199.254740993s", "9007199254740992ns", False),
        ("abc", "abc", True),
        ([1, "2ms"], [1.0, "2000us"], True),
        ([1], [1, 2], False),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        (None, None, True),
        (None, 0, False),
        ("1", 1, False),
        # QA: YAML's `.inf` never matched a signal's "Infinity" (JSON has no infinity: its name)
        (float("inf"), "Infinity", True),
        (float("-inf"), "-Infinity", True),
        (float("nan"), "NaN", True),
        (float("inf"), "-Infinity", False),
        (float("inf"), "inf", False),
    ],
)
def test_same_value(a: Any, b: Any, same: bool) -> None:
    assert same_value(a, b) is same


_rules = st.sampled_from(["r", "s"])
_traces = st.sampled_from([A, B])
_obs = st.fixed_dictionaries({}, optional={"count": st.integers(0, 2), "bound": st.integers(0, 1)})


@st.composite
def _signal(draw: st.DrawFn) -> dict[str, Any]:
    return {"rule": draw(_rules), "trace_id": draw(_traces), "observed": draw(_obs)}


@st.composite
def _expected(draw: st.DrawFn) -> dict[str, Any]:
    e: dict[str, Any] = {"rule": draw(_rules)}
    if draw(st.booleans()):
        e["trace_id"] = draw(_traces)
    if draw(st.booleans()):
        e["observed"] = draw(_obs)
    if draw(st.booleans()):
        e["count"] = draw(st.integers(0, 2))
    return e


@settings(max_examples=300, deadline=None)
@given(st.lists(_expected(), max_size=4), st.lists(_signal(), max_size=5))
def test_agrees_with_the_conformance_tables_comparison(expected: list[dict[str, Any]], signals: list[Any]) -> None:
    """Where the table's first-fit comparison finds agreement, so does the maximum matching; and a
    full matching leaves nothing over, which first-fit may miss only by pairing greedily."""
    m = match_signals([exp(**e) for e in expected], signals, LABELS)
    if not compare_signals(expected, signals):
        assert m.ok
    if m.ok:
        assert sum(e.get("count", 1) for e in expected) == len(signals)
        assert not m.forbidden
    else:
        assert compare_signals(expected, signals)


def _reference_size(expected: list[Expectation], signals: list[dict[str, Any]]) -> int:
    """The size of a maximum matching, by augmenting paths over one slot per counted signal (small inputs only)."""
    slots = [e for e in expected for _ in range(e.count)]
    owner: dict[int, int] = {}

    def augment(slot: int, seen: set[int]) -> bool:
        for j, s in enumerate(signals):
            if j in seen or mismatch(slots[slot], s, LABELS) is not None:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = slot
                return True
        return False

    return sum(augment(i, set()) for i in range(len(slots)))


@settings(max_examples=300, deadline=None)
@given(st.lists(_expected(), max_size=6), st.lists(_signal(), max_size=8))
def test_pairs_as_many_signals_as_a_maximum_matching_does(expected: list[dict[str, Any]], signals: list[Any]) -> None:
    entries = [exp(**e) for e in expected]
    m = match_signals(entries, signals, LABELS)
    taken = [s for r in m.rows for s in r.signals]
    assert len(taken) == _reference_size(entries, signals)
    assert sorted(map(id, taken + m.unexpected)) == sorted(map(id, signals))  # each signal once
    for r in m.rows:
        assert len(r.signals) <= r.expectation.count
        assert all(mismatch(r.expectation, s, LABELS) is None for s in r.signals)


def test_thousands_of_signals_pair_without_recursion_or_a_slot_per_count() -> None:
    """One entry of `count: 5000` (was one recursive call per signal already paired: RecursionError past ~1,000),
    entries per trace beside a broad one, and a count far past the signals (was a list of that many slots)."""
    ids = [f"{i:032x}" for i in range(5000)]
    signals = [sig("r", t) for t in ids]
    assert match_signals([exp("r", count=5000)], signals, LABELS).ok
    labels = {f"t{i}": t for i, t in enumerate(ids[:2000])}
    narrow = [exp("r", trace=f"t{i}") for i in range(2000)]
    m = match_signals([exp("r", count=3000), *narrow], signals, labels)
    assert m.ok and all(r.signals == [signals[i]] for i, r in enumerate(m.rows[1:]))
    huge = match_signals([exp("r", count=10**9)], signals[:3], LABELS)
    assert huge.missing == 10**9 - 3 and huge.unexpected == []


def test_alike_entries_share_signals_in_order() -> None:
    signals = [sig("r"), sig("r", B), sig("r")]
    m = match_signals([exp("r"), exp("r", count=2)], signals, LABELS)
    assert m.ok and m.rows[0].signals == [signals[0]] and m.rows[1].signals == signals[1:]


def test_the_signal_noun_agrees_with_the_count_next_to_it() -> None:
    """QA docs r07: one missing and one unexpected signal read `1 missing, 1 unexpected signals`."""
    one_each = match_signals([exp("r")], [sig("u")], LABELS)
    assert one_each.summary() == "1 missing, 1 unexpected signal"
    assert match_signals([exp("r"), exp("s")], [sig("u")], LABELS).summary() == "2 missing, 1 unexpected signal"
    assert match_signals([exp("r")], [sig("u"), sig("v")], LABELS).summary() == "1 missing, 2 unexpected signals"
