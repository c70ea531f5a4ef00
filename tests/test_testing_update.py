"""What `--update` writes: fluo_run.testing.update.expectations_from."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fluo_run.testing.matching import match_signals
from fluo_run.testing.spec import Expectation
from fluo_run.testing.update import expectations_from

A = "a" * 32
B = "b" * 32


def sig(rule: str, trace_id: str | None, **observed: Any) -> dict[str, Any]:
    return {"rule": rule, "trace_id": trace_id, "observed": observed, "severity": "warning", "span_ids": []}


def test_identical_signals_are_grouped_with_a_count_in_order() -> None:
    signals = [sig("r", A, n=1), sig("s", A), sig("r", A, n=1), sig("r", A, n=2)]
    assert expectations_from(signals, pin_traces=False) == [
        {"rule": "r", "count": 2, "observed": {"n": 1}},
        {"rule": "s"},
        {"rule": "r", "observed": {"n": 2}},
    ]


def test_traces_are_pinned_by_label_or_id() -> None:
    signals = [sig("r", A), sig("r", B), sig("w", None)]
    assert expectations_from(signals, {"first": A}) == [
        {"rule": "r", "trace": "first"},
        {"rule": "r", "trace_id": B},
        {"rule": "w"},  # a windowed signal has no trace
    ]


_signals = st.lists(
    st.builds(
        sig,
        st.sampled_from(["r", "s"]),
        st.sampled_from([A, B, None]),
        n=st.integers(0, 2),
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(_signals, st.booleans(), st.booleans())
def test_what_update_writes_always_passes(signals: list[dict[str, Any]], pin: bool, labelled: bool) -> None:
    labels = {"a": A} if labelled else {}
    written = expectations_from(signals, labels, pin_traces=pin)
    expectations = [Expectation(line=1, **e) for e in written]
    assert match_signals(expectations, signals, labels).ok
