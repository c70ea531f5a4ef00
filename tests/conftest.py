"""Hypothesis profiles: the suite's property tests draw the same examples on every run.

`ci` (the default) derandomizes Hypothesis, so a property that finds a new counterexample
fails the commit that changed its behaviour, never an unrelated later one (`--hypothesis-seed`
changes nothing there). To explore beyond those examples (a nightly job, or after changing the
parser or typechecker), run the property tests (`-m hypothesis`, a marker Hypothesis puts on
each) with the `explore` profile:

    python -m pytest -m hypothesis --hypothesis-profile=explore --hypothesis-scale=10
    python -m pytest -m hypothesis --hypothesis-profile=explore --hypothesis-seed=1234   # replay a run

`explore` draws fresh examples each run, keeps the failing ones in `.hypothesis/` (replayed
first on the next run; keep that folder between nightly runs), tests pinned to keep none
included, and prints a `@reproduce_failure(...)` line to paste onto the test. Most property
tests pin `max_examples` to what CI affords; `--hypothesis-scale N` runs each with N times as
many (with either profile; about 3.5 minutes at 10 on two cores).
"""

from __future__ import annotations

from typing import Any

import hypothesis_scale
import pytest
from hypothesis import settings
from hypothesis_scale import scale_examples, scale_factor

# Both are made from Hypothesis's own defaults, not from whatever profile is active: Hypothesis loads a `ci`
# profile of its own (no example database) when it sees a CI variable, and `explore` made from that kept no
# failing examples on a CI machine alone. No deadline under `ci`: a 2-core CI host under load is slow, not wrong
# (the speed targets are the benchmarks'); `explore` keeps Hypothesis's 200 ms.
_HYPOTHESIS_DEFAULTS = settings.get_profile("default")
settings.register_profile("ci", _HYPOTHESIS_DEFAULTS, derandomize=True, database=None, print_blob=True, deadline=None)
settings.register_profile("explore", _HYPOTHESIS_DEFAULTS, derandomize=False, print_blob=True)
settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--hypothesis-scale",
        type=scale_factor,
        default=1.0,
        metavar="N",
        help="run each Hypothesis test with N times its max_examples (N >= 1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    hypothesis_scale.FACTOR = config.getoption("--hypothesis-scale")  # for a `@given` made as a test runs


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    factor: float = config.getoption("--hypothesis-scale")
    if factor == 1 and settings.default.database is None:
        return
    scaled: set[int] = set()  # a parametrized test is one function under several items (each a bound method of
    for item in items:  # its own, for a test method: the function underneath is the one to scale once)
        test: Any = getattr(item, "obj", None)
        test = getattr(test, "__func__", test)
        if test is not None and id(test) not in scaled and scale_examples(test, factor):
            scaled.add(id(test))
