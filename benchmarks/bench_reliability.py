"""Reliability figures, to compare run to run: inputs fuzzed, overload rate held, spans and signals lost.

Runs the scenarios of `fuzz/` (the same ones the tests assert on) and prints:
  - fuzzing: inputs tried per target, through the language and at a real `fluo serve`'s
    two receivers, and how many broke a promise (exception, 5xx / UNKNOWN, multi-line message);
  - evaluation budget: seconds to evaluate one huge trace with and without a budget, as a
    ratio, and the cost of metering on ordinary traces (ratio to the unmetered run);
  - overload: the sustainable rate, the rate offered (target 10x), requests refused, spans
    sent / received / lost inside the server / given up by the SDK after its retries;
  - crash: signals reported written before `kill -9` and found after it (lost = 0),
    `PRAGMA integrity_check`, traces in flight that the crash lost, clean restart.

Run: python benchmarks/bench_reliability.py [--examples N] [--receiver-examples N] [--overload-seconds S]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))

from fuzz_language import fuzz_all  # noqa: E402
from scenarios import EXAMPLE_RULES, Serve, crash, fuzz_receivers, heavy_rules, overload  # noqa: E402

from fluo_lang.api import analyze, lower  # noqa: E402
from fluo_lang.cost import DEFAULT_BUDGET  # noqa: E402
from fluo_lang.evaluate import Program  # noqa: E402
from fluo_lang.otlp import load_trace_files  # noqa: E402
from fluo_lang.trace import Span, Trace, assemble  # noqa: E402


def line(label: str, value: object, note: str = "") -> None:
    print(f"  {label:<42} {value!s:>14}  {note}")


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def chain(n: int) -> Trace:
    tid = b"\x42" * 16
    spans, parent = [], b""
    for i in range(n):
        sid = (i + 1).to_bytes(8, "big")
        spans.append(Span(trace_id=tid, span_id=sid, parent_id=parent, name="checkout", start=i, end=2 * n - i))
        parent = sid
    (trace,) = assemble(spans)
    return trace


def budget_figures() -> None:
    print("evaluation budget")
    rules = lower(analyze([(str(p), p.read_text()) for p in sorted(EXAMPLE_RULES.glob("*.fluo"))]))
    huge = chain(3_000)
    plain = Program(rules)
    budgeted = Program(rules, budget=DEFAULT_BUDGET)
    t_plain = best_of(1, lambda: plain.evaluate_trace(chain(3_000)))
    t_budget = best_of(1, lambda: budgeted.evaluate_trace(chain(3_000)))
    truncated = [s.rule for s in budgeted.evaluate_trace(huge)]
    line("3,000-span chain, no budget (s)", f"{t_plain:.3f}")
    line(f"same, budget {DEFAULT_BUDGET:,} visits (s)", f"{t_budget:.3f}", f"ratio {t_budget / t_plain:.3f}")
    line("truncation signalled", "fluo.evaluation_truncated" in truncated)
    ordinary = assemble(load_trace_files(sorted((ROOT / "examples" / "traces").iterdir()))) * 200
    metered = Program(rules, budget=10**12)
    t_off = t_on = float("inf")
    for _ in range(5):  # interleaved, so both see the same machine
        t_off = min(t_off, best_of(1, lambda: [plain.evaluate_trace(t) for t in ordinary]))
        t_on = min(t_on, best_of(1, lambda: [metered.evaluate_trace(t) for t in ordinary]))
    line("ordinary traces, metered / unmetered", f"{t_on / t_off:.2f}", f"({len(ordinary)} traces)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200, help="language fuzzing inputs per target")
    parser.add_argument("--receiver-examples", type=int, default=300, help="bodies sent to the receivers")
    parser.add_argument("--overload-seconds", type=float, default=1.5)
    args = parser.parse_args(argv)
    broken = 0

    print("fuzzing the language")
    tallies = fuzz_all(args.examples)
    for t in tallies:
        line(t.target, t.inputs, "ok" if t.failure is None else f"FAILED: {t.failure[:80]}")
    broken += sum(t.failure is not None for t in tallies)

    with tempfile.TemporaryDirectory(prefix="fluo-bench-") as tmp:
        folder = Path(tmp)
        print("fuzzing the receivers of fluo serve")
        with Serve(["--rules", str(EXAMPLE_RULES), "--no-db", "--trace-idle", "200ms"], folder) as serve:
            fuzzed = fuzz_receivers(serve, args.receiver_examples)
        line("bodies sent (HTTP and gRPC)", fuzzed.inputs)
        line("answers outside 2xx/4xx", len(fuzzed.problems), "; ".join(sorted({p[:40] for p in fuzzed.problems}))[:80])
        line("multi-line error messages", len(fuzzed.message_problems))
        line("server up afterwards", fuzzed.alive)
        line("RSS growth (MiB)", f"{(fuzzed.rss_max - fuzzed.rss_start) / 2**20:.1f}")
        line("total inputs fuzzed", sum(t.inputs for t in tallies) + fuzzed.inputs)

        budget_figures()

        print("overload (OpenTelemetry SDK senders, 2 gRPC + 2 HTTP, retries on)")
        db = folder / "overload.db"
        overload_args = ["--rules", str(heavy_rules(folder / "rules", 1500)), "--db", str(db), "--trace-idle", "200ms"]
        overload_args += ["--max-pending-spans", "500", "--max-buffered-spans", "20000"]
        with Serve(overload_args, folder) as serve:
            o = overload(serve, db, factor=10, seconds=args.overload_seconds)
        line("sustainable rate (spans/s)", f"{o.sustainable:.0f}")
        line("offered rate (spans/s)", f"{o.offered:.0f}", f"{o.offered / o.sustainable:.1f}x sustainable")
        line("requests refused (429 / RESOURCE_EXHAUSTED)", o.refused)
        line("spans sent / received", f"{o.sent} / {o.received}")
        line("spans lost inside the server", o.sent - o.sdk_dropped - o.received)
        line("spans the SDK gave up on (retries spent)", o.sdk_dropped)
        line("spans lost end to end", o.lost)
        line("traces delivered / evaluated and stored", f"{o.traces_delivered} / {o.traces_with_signal}")
        line("max buffered / pending spans", f"{o.max_buffered:.0f} / {o.max_pending:.0f}", "caps 20000 / 500")
        line("RSS growth (MiB)", f"{(o.rss_max - o.rss_start) / 2**20:.1f}")
        line("drain after the burst (s)", f"{o.drain_seconds:.1f}")

        print("crash (kill -9 under load, then restart)")
        crash_rules = folder / "crash-rules"
        crash_rules.mkdir()
        (crash_rules / "every.fluo").write_text("rule every_trace { detect trace.spans.count() > 0 }\n")
        c = crash(folder, crash_rules)
        line("signals reported written before the kill", c.reported_written)
        line("signals in SQLite after the kill", c.rows_after_crash)
        line("signals lost", c.lost)
        line("PRAGMA integrity_check", c.integrity)
        line("traces in flight lost with the process", c.accepted_not_evaluated)
        line("restarted cleanly / exit code", f"{c.restarted_cleanly} / {c.exit_code_after_restart}")

    broken += bool(fuzzed.problems) + (o.sent - o.sdk_dropped != o.received) + bool(c.lost) + (c.integrity != "ok")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
