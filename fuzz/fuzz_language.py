"""The long fuzzing run: the strategies of the test suite with many more examples, counted.

    python fuzz/fuzz_language.py                 # 500 inputs per target
    python fuzz/fuzz_language.py --examples 5000 --seed 7

Prints one line per target (inputs tried, how far they got, seconds) and a total;
exits 1 and prints the smallest failing input if any promise broke.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from strategies import (
    check_rule_text,
    check_trace_body,
    example_rule_texts,
    grammar_texts,
    json_bodies,
    mutated,
    protobuf_bodies,
    typed_rules,
)


@dataclass
class Tally:
    target: str
    inputs: int = 0
    passed_stage: int = 0  # rules that checked clean / bodies that were read
    seconds: float = 0.0
    failure: str | None = None


def _rule(text: str, tally: Tally) -> None:
    outcome = check_rule_text(text)
    assert outcome.problems == [], outcome.problems
    tally.passed_stage += outcome.checked


def _body(kind: str) -> Callable[[bytes, Tally], None]:
    def check(body: bytes, tally: Tally) -> None:
        tally.passed_stage += check_trace_body(kind, body) >= 0

    return check


TARGETS: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any, Tally], None]]] = {
    "typed rules": (typed_rules(), _rule),
    "mutated example rules": (mutated(st.sampled_from(example_rule_texts())), _rule),
    "mutated typed rules": (mutated(typed_rules(max_depth=3)), _rule),
    "grammar sentences": (grammar_texts(), _rule),
    "random text": (st.text(max_size=300), _rule),
    "OTLP/JSON bodies": (json_bodies(), _body("json")),
    "OTLP protobuf bodies": (protobuf_bodies(), _body("protobuf")),
}


def fuzz(target: str, examples: int, random_seed: int) -> Tally:
    strategy, check = TARGETS[target]
    tally = Tally(target)

    @seed(random_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
    )
    @given(strategy)
    def run(value: Any) -> None:
        tally.inputs += 1
        check(value, tally)

    started = time.perf_counter()
    try:
        run()
    except Exception as exc:  # the smallest failing input, as hypothesis reports it
        tally.failure = f"{type(exc).__name__}: {exc}"
    tally.seconds = time.perf_counter() - started
    return tally


def fuzz_all(examples: int, random_seed: int = 0) -> list[Tally]:
    return [fuzz(name, examples, random_seed) for name in TARGETS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=500, help="inputs per target (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tallies = fuzz_all(args.examples, args.seed)
    for t in tallies:
        status = "ok" if t.failure is None else "FAILED"
        print(f"{t.target:<24} {t.inputs:>7} inputs  {t.passed_stage:>7} checked/read  {t.seconds:7.1f}s  {status}")
    print(f"{'total':<24} {sum(t.inputs for t in tallies):>7} inputs")
    failures = [t for t in tallies if t.failure is not None]
    for t in failures:
        print(f"\n{t.target}: {t.failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
