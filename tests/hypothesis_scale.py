"""`--hypothesis-scale N`: run every property test with N times its examples (see `conftest.py`).

Most property tests pin `max_examples` to what CI can afford, so a profile alone cannot
ask for more; a nightly or after-a-change run scales them all at once instead. Under a
profile that keeps failing examples (`explore`), a test pinned to keep none keeps them too.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from hypothesis import settings

FACTOR = 1.0
"""The run's `--hypothesis-scale` (set by `conftest.py` before any test module is imported), for `for_this_run`."""


def scale_factor(text: str) -> float:
    """The option's value: a finite number of at least 1 (fewer examples than CI's is not exploring)."""
    try:
        factor = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(factor) or factor < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {text!r}")
    return factor


def for_this_run(current: settings, factor: float | None = None) -> settings:
    """`current` as this run wants it: `factor` (default `FACTOR`) times its `max_examples` (rounded up), and the
    profile's example database where `current` pins none (`database=None`) but the profile keeps one (`explore`:
    a failure found one night is replayed first the next). For a `@given` made while a test runs (nested in it),
    which collection never sees: `@settings(for_this_run(FAST))`."""
    factor = FACTOR if factor is None else factor
    changes: dict[str, Any] = {}
    if factor != 1:
        changes["max_examples"] = math.ceil(current.max_examples * factor)
    kept = settings.default.database
    if current.database is None and kept is not None:
        changes["database"] = kept
    return settings(current, **changes) if changes else current


def scale_examples(test: Any, factor: float) -> bool:
    """Give a Hypothesis test its settings `for_this_run` with `factor`; False if `test` is not one.

    The settings a test runs with are kept on it by `@given`/`@settings` and read when it
    runs, so replacing them after collection takes effect; the rest of them are kept.
    """
    test = getattr(test, "__func__", test)  # a test method: its function holds the settings
    current = getattr(test, "_hypothesis_internal_use_settings", None)
    if not isinstance(current, settings) or not hasattr(test, "hypothesis"):
        return False
    test._hypothesis_internal_use_settings = for_this_run(current, factor)
    return True
