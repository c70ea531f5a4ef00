"""`--hypothesis-scale`: property tests run with more examples when asked, and a bad value is a usage error."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_scale import scale_examples, scale_factor
from tests_paths import ROOT


def _counting(max_examples: int) -> tuple[object, list[int]]:
    seen: list[int] = []

    @settings(max_examples=max_examples, database=None)
    @given(st.integers(0, 10**9))
    def prop(x: int) -> None:
        seen.append(x)

    return prop, seen


def test_scaled_test_runs_that_many_more_examples() -> None:
    prop, seen = _counting(5)
    assert scale_examples(prop, 3)
    prop()  # type: ignore[operator]
    assert len(seen) == 15


def test_scale_rounds_up_and_keeps_the_other_settings() -> None:
    prop, seen = _counting(3)
    assert scale_examples(prop, 1.5)
    kept = prop._hypothesis_internal_use_settings  # type: ignore[attr-defined]
    assert kept.max_examples == 5
    assert kept.database is None
    prop()  # type: ignore[operator]
    assert len(seen) == 5


def test_a_test_method_is_scaled_through_its_function() -> None:
    seen: list[int] = []

    class Props:
        @settings(max_examples=2, database=None)
        @given(st.integers(0, 10**9))
        def prop(self, x: int) -> None:
            seen.append(x)

    props = Props()
    assert scale_examples(props.prop, 4)  # the bound method, as pytest collects it
    props.prop()
    assert len(seen) == 8


def test_plain_tests_are_left_alone() -> None:
    def plain() -> None:
        pass

    assert not scale_examples(plain, 2)
    assert not hasattr(plain, "_hypothesis_internal_use_settings")


@pytest.mark.parametrize("text", ["0.5", "0", "-2", "nan", "inf", "ten", ""])
def test_bad_factors_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        scale_factor(text)


def test_bad_factor_on_the_command_line_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--hypothesis-scale=0.5", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert "--hypothesis-scale" in done.stderr and "at least 1" in done.stderr
