"""`fluo test` speed: 1,000 cases over small fixtures (target: under 3 s on one core).

Writes 10 test files of 100 cases each into a temporary folder: half the cases
name small OTLP JSON fixtures (the bundled example traces), half carry compact
inline spans (4 to 9 spans, several traces in some). Then times, in this process:

  - the runner: find files, read YAML, build inline spans, load fixtures (each
    once), evaluate every case, match signals, render the text and JUnit reports;
  - baseline 1: bare `Program.evaluate` over the same traces, one call per case,
    with the traces already built and the program already compiled;
  - baseline 2: baseline 1 plus PyYAML's own libyaml loader (`yaml.load` with
    `CSafeLoader`) reading the same files, the floor for any YAML-based runner.

Prints cases/s and the ratios runner / baseline (what the runner costs on top of
evaluation, and on top of evaluation plus reading YAML). Exits 1 if the run takes
3 s or more.

Run: python benchmarks/bench_test_runner.py [--files N] [--cases-per-file N] [--repeat N]
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from fluo_lang.api import compile_program
from fluo_lang.trace import Trace, assemble
from fluo_run.testing.report import junit_report, text_report
from fluo_run.testing.runner import PASSED, Runner, RunResult
from fluo_run.testing.spec import find_test_files

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "examples" / "rules"
TRACES = ROOT / "examples" / "traces"
FIXTURES = {
    "healthy_login.json": [],
    "payment_ok.json": [],
    "payment_bypass.json": [{"rule": "charge_needs_fraud_check", "observed": {"never": True}}],
    "payment_no_fraud_check.json": [{"rule": "charge_needs_fraud_check", "observed": {"always": False}}],
    "checkout_error.json": [
        {"rule": "checkout_has_no_failed_descendants", "observed": {"violations": 1}},
        {"rule": "upstream_5xx_under_checkout"},
    ],
}
TARGET_SECONDS = 3.0


def _inline_case(rng: random.Random, i: int) -> dict[str, Any]:
    traces = rng.choice([1, 1, 2, 3])
    spans: list[dict[str, Any]] = []
    expect: list[dict[str, Any]] = []
    for t in range(traces):
        label = f"t{t}"
        failing = rng.random() < 0.3
        spans.append({"trace": label, "id": "root", "name": "checkout", "service": "checkout", "duration": "300ms"})
        for k in range(rng.randrange(3, 8)):
            span: dict[str, Any] = {
                "trace": label,
                "name": f"step{k}",
                "service": rng.choice(["inventory", "payment", "auth"]),
                "parent": "root",
                "start": f"{10 + 20 * k}ms",
                "duration": "15ms",
                "attributes": {"http.response.status_code": 200, "amount": rng.randrange(100)},
            }
            spans.append(span)
        if failing:
            spans[-1]["status"] = "error"
            expect.append({"rule": "checkout_has_no_failed_descendants", "observed": {"violations": 1}})
            if traces > 1:
                expect[-1]["trace"] = label
    return {"name": f"inline case {i}", "spans": spans, "expect": expect}


def write_suite(folder: Path, files: int, per_file: int, seed: int = 11) -> int:
    rng = random.Random(seed)
    for name in [*FIXTURES, "auth_retry_storm.json"]:
        shutil.copy(TRACES / name, folder / name)
    for rule_file in RULES.glob("*.fluo"):
        shutil.copy(rule_file, folder / rule_file.name)
    total = 0
    for f in range(files):
        cases = []
        for i in range(per_file):
            if i % 2:
                cases.append(_inline_case(rng, i))
            else:
                fixture = rng.choice(list(FIXTURES))
                cases.append({"name": f"fixture case {i}", "traces": fixture, "expect": FIXTURES[fixture]})
        spec = {"rules": ["checkout.fluo", "payments.fluo", "auth.fluo"], "cases": cases}
        text = yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=200)
        (folder / f"suite{f:02d}_test.yaml").write_text(text, encoding="utf-8")
        total += len(cases)
    return total


def run_runner(folder: Path) -> RunResult:
    runner = Runner()
    files = runner.load(find_test_files([folder]))
    result = runner.run(files)
    text_report(result)
    junit_report(result)
    return result


def baseline_inputs(folder: Path) -> tuple[Any, list[list[Trace]]]:
    """The compiled program and every case's traces, built outside the timed region."""
    runner = Runner()
    files = runner.load(find_test_files([folder]))
    analysis = files[0].analysis
    assert analysis is not None
    per_case = []
    for f in files:
        for case in f.cases:
            spans = [s for path, _ in case.traces for s in runner.traces.spans(path)[0]] + case.spans
            per_case.append(spans)
    return compile_program(analysis), [assemble(spans) for spans in per_case]


def best_of(repeat: int, fn: Any) -> tuple[float, Any]:
    best = float("inf")
    out = None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--cases-per-file", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fluo-bench-test-") as tmp:
        folder = Path(tmp)
        total = write_suite(folder, args.files, args.cases_per_file)
        runner_s, result = best_of(args.repeat, lambda: run_runner(folder))
        passed = result.count(PASSED)
        assert passed == total, f"{passed} of {total} cases passed; the benchmark suite is wrong"
        program, traces = baseline_inputs(folder)
        base_s, _ = best_of(args.repeat, lambda: [program.evaluate(t) for t in traces])
        texts = [p.read_text(encoding="utf-8") for p in find_test_files([folder])]
        yaml_s, _ = best_of(args.repeat, lambda: [yaml.load(t, Loader=yaml.CSafeLoader) for t in texts])
    print(f"cases: {total} in {args.files} files ({sum(len(t) for t in traces)} traces)")
    print(f"fluo test (load, evaluate, match, report): {runner_s:.3f} s = {total / runner_s:,.0f} cases/s")
    print(f"baseline 1 (bare Program.evaluate per case): {base_s:.3f} s = {total / base_s:,.0f} cases/s")
    print(f"baseline 2 (the same plus yaml.load of the test files): {base_s + yaml_s:.3f} s")
    print(f"ratio fluo test / baseline 1: {runner_s / base_s:.1f}x")
    print(f"ratio fluo test / baseline 2: {runner_s / (base_s + yaml_s):.2f}x")
    ok = runner_s < TARGET_SECONDS
    print(f"target: {total} cases under {TARGET_SECONDS:.0f} s -> {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
