"""Hypothesis profiles: the suite's property tests draw the same examples on every run.

`ci` (the default) derandomizes Hypothesis, so a property that finds a new counterexample
fails the commit that changed its behaviour, never an unrelated later one. To explore
beyond those examples (a nightly job, or after changing the parser or typechecker):

    python -m pytest --hypothesis-profile=explore tests/test_properties.py
    python -m pytest --hypothesis-profile=explore --hypothesis-seed=1234 ...   # replay a run

`explore` draws fresh examples each run, keeps the failing ones in `.hypothesis/` (replayed
first on the next run) and prints a `@reproduce_failure(...)` line to paste onto the test.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("ci")
