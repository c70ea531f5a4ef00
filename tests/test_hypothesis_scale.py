"""`--hypothesis-scale`: property tests run with more examples when asked, and a bad value is a usage error."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

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


PROBE = """
import pytest
from hypothesis import given, settings, strategies as st


class TestProbe:
    @pytest.mark.parametrize("p", [1, 2, 3])
    @settings(max_examples=2, database=None)
    @given(st.integers(0, 10**9))
    def test_prop(self, p, x):
        pass


@pytest.mark.parametrize("p", [1, 2])
@settings(max_examples=3, database=None)
@given(st.integers())
def test_plain(p, x):
    pass


def test_report():
    print("MAX", TestProbe.test_prop._hypothesis_internal_use_settings.max_examples,
          test_plain._hypothesis_internal_use_settings.max_examples)
    print("KEPT", test_plain._hypothesis_internal_use_settings.database is not None)
    current = settings.default
    print("SETTINGS", current.deadline, current.suppress_health_check, current.derandomize, current.database is None)


@pytest.mark.hypothesis
def test_nested():
    from hypothesis_scale import for_this_run

    seen = []

    @settings(for_this_run(settings(max_examples=4, database=None)))
    @given(st.integers(0, 10**9))
    def run(x):
        seen.append(x)

    run()
    print("NESTED", len(seen), run._hypothesis_internal_use_settings.database is not None)
"""


_CI_VARIABLES = frozenset(  # what Hypothesis takes for a CI machine (hypothesis/_settings.py, 6.155)
    ("CI", "__TOX_ENVIRONMENT_VARIABLE_ORIGINAL_CI", "TF_BUILD", "bamboo.buildKey", "BUILDKITE", "CIRCLECI",
     "CIRRUS_CI", "CODEBUILD_BUILD_ID", "GITHUB_ACTIONS", "GITLAB_CI", "HEROKU_TEST_RUN_ID", "TEAMCITY_VERSION")
)  # fmt: skip


def _probe(tmp_path: Path, *options: str, on_ci: bool = False) -> str:
    """The probe run through pytest itself, with the suite's conftest and `options`: what it printed. `on_ci`: with
    the `CI` variable set, which makes Hypothesis load a profile of its own, and without any when False."""
    env = {name: value for name, value in os.environ.items() if name not in _CI_VARIABLES}
    if on_ci:
        env["CI"] = "true"
    for name in ("conftest.py", "hypothesis_scale.py"):
        shutil.copy(ROOT / "tests" / name, tmp_path / name)
    (tmp_path / "test_probe.py").write_text(PROBE, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         *options, "test_probe.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_option_scales_each_test_once_however_many_items_it_has(tmp_path: Path) -> None:
    """Review: a parametrized test method is a new bound method per item, and was scaled once per parameter
    (max_examples 2 became 2000 at --hypothesis-scale=10 with three parameters). QA explore: a `@given` made as a
    test runs was never scaled; `for_this_run` scales it."""
    out = _probe(tmp_path, "--hypothesis-scale=10")
    assert "MAX 20 30" in out and "NESTED 40 False" in out
    assert "MAX 2 3" in _probe(tmp_path)  # no option: as pinned


def test_explore_keeps_the_failing_examples_of_tests_pinned_to_keep_none(tmp_path: Path) -> None:
    """QA explore: 12 of 42 property tests (the fuzz ones among them) pin `database=None`, so a failure the nightly
    explore run found was not replayed first the next night, as conftest.py says. Under `explore` they keep one."""
    for on_ci in (False, True):  # CI itself failed this where a workstation passed: Hypothesis's own `ci` profile
        out = _probe(tmp_path, "--hypothesis-profile=explore", on_ci=on_ci)  # was explore's parent there
        assert "KEPT True" in out and "NESTED 4 True" in out, (on_ci, out)
        assert "KEPT False" in _probe(tmp_path, on_ci=on_ci)  # ci: none, as before


def test_the_profiles_are_the_same_with_and_without_a_ci_variable(tmp_path: Path) -> None:
    """What a run checks must not depend on whether the machine says it is CI: the deadline and health checks
    Hypothesis's own CI profile changes are pinned by ours."""
    for profile in ("ci", "explore"):
        seen = {_probe(tmp_path, f"--hypothesis-profile={profile}", on_ci=on_ci).split("SETTINGS", 1)[1].split("\n")[0]
                for on_ci in (False, True)}  # fmt: skip
        assert len(seen) == 1, (profile, seen)
