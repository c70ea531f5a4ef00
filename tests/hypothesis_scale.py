"""`--hypothesis-scale N`: run every property test with N times its examples (see `conftest.py`).

Most property tests pin `max_examples` to what CI can afford, so a profile alone cannot
ask for more; a nightly or after-a-change run scales them all at once instead.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from hypothesis import settings


def scale_factor(text: str) -> float:
    """The option's value: a finite number of at least 1 (fewer examples than CI's is not exploring)."""
    try:
        factor = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(factor) or factor < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {text!r}")
    return factor


def scale_examples(test: Any, factor: float) -> bool:
    """Give a Hypothesis test `factor` times its `max_examples` (rounded up); False if `test` is not one.

    The settings a test runs with are kept on it by `@given`/`@settings` and read when it
    runs, so replacing them after collection takes effect; the rest of them are kept.
    """
    test = getattr(test, "__func__", test)  # a test method: its function holds the settings
    current = getattr(test, "_hypothesis_internal_use_settings", None)
    if not isinstance(current, settings) or not hasattr(test, "hypothesis"):
        return False
    wanted = math.ceil(current.max_examples * factor)
    test._hypothesis_internal_use_settings = settings(current, max_examples=wanted)
    return True
