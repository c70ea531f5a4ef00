"""The language core's cost in CPU instructions, which a noisy machine does not change.

Wall-clock figures on shared machines swing by 2x within minutes; instruction
counts from valgrind's callgrind are the same run after run. This runs the
pipeline of `bench_core.py` (100 rules over OTLP protobuf requests of 50-span
traces) under callgrind, one stage at a time, and prints instructions per span
for each stage and for bare protobuf decoding of the same bytes, with their ratio.

Each figure is the difference between two runs of a child process: one that
builds everything and runs the stage three times, and one that only builds.

Instructions are not time: upb's decoder retires about twice as many
instructions per cycle as the interpreter, so the wall-clock ratio is about half
the instruction ratio. Use this to compare two versions of the code (A/B), and
`bench_core.py` for the targets.

Run: python benchmarks/bench_instructions.py [--traces N] [--stages decode,fluo,...]
Needs valgrind (Debian: apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from bench_core import bare_decode, checks, export_requests, fluo, make_spans

from fluo_lang.api import analyze, compile_program
from fluo_lang.otlp import decode_traces, parse_protobuf, spans_from_request
from fluo_lang.trace import assemble

SPANS_PER_TRACE = 50
RUNS = 3
STAGES = {
    "decode": "bare protobuf decode (ExportTraceServiceRequest)",
    "fluo": "FLUO end to end (reading spans, assembly, rules, signals)",
    "native": "  spans read by the native reader (where compiled)",
    "fluo_decode": "  or: decode with FLUO's schema",
    "spans": "  and spans from protobuf (with prefetch)",
    "assembly": "  assembly into traces",
    "rules": "  the rule set's function (with indexes)",
    "signals": "  signals, explained",
}


def child(stage: str, traces: int) -> None:
    """Build everything, then run `stage` RUNS times (or nothing, for the baseline)."""
    data = export_requests(make_spans(traces, SPANS_PER_TRACE))
    program = compile_program(analyze([("bench.fluo", "\n".join(text for text, _ in checks()))]))
    together = program.program(program.trace_rules)
    gc.disable()
    fluo(data, program)  # warm: caches filled, code specialised
    requests = [decode_traces(d) for d in data]
    spans = [s for r in requests for s in spans_from_request(r, prefetch=program.prefetch)]
    traces_ = list(assemble(spans))
    fired = [(t, together(t)) for t in traces_]

    def rules() -> None:
        for t in traces_:
            t._index.clear()
            together(t)

    def signals() -> None:
        for t, positions in fired:
            for i in positions:
                program._signal(program.trace_rules[i], t)

    runs: dict[str, Callable[[], Any]] = {
        "decode": lambda: bare_decode(data),
        "fluo": lambda: fluo(data, program),
        "native": lambda: [parse_protobuf(d, source="", prefetch=program.prefetch) for d in data],
        "fluo_decode": lambda: [decode_traces(d) for d in data],
        "spans": lambda: [spans_from_request(r, prefetch=program.prefetch) for r in requests],
        "assembly": lambda: list(assemble(spans)),
        "rules": rules,
        "signals": signals,
    }
    run = runs.get(stage)
    if run is not None:  # else the baseline: built, nothing run
        for _ in range(RUNS):
            run()


def instructions(stage: str, traces: int) -> int:
    """Instructions callgrind counts for a child process running `stage`."""
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
    cmd += ["--child", stage, "--traces", str(traces)]
    env = dict(os.environ, PYTHONHASHSEED="0")  # the same dict layouts every run
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run of {stage!r} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=int, default=200, help="traces of 50 spans (default 200: 10,000 spans)")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated, from: " + ", ".join(STAGES))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, args.traces)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    stages = [s for s in args.stages.split(",") if s]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise SystemExit(f"unknown stage(s): {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    spans = args.traces * SPANS_PER_TRACE * RUNS
    base = instructions("none", args.traces)
    per_span = {s: (instructions(s, args.traces) - base) / spans for s in stages}
    print(f"instructions per span, {args.traces * SPANS_PER_TRACE:,} spans in {args.traces} traces, 100 rules:")
    for s, n in per_span.items():
        print(f"  {STAGES[s]:<60} {n:>9,.0f}")
    if "decode" in per_span and "fluo" in per_span:
        ratio = per_span["decode"] / per_span["fluo"]
        print(f"  {'ratio bare decode / fluo, in instructions':<60} {ratio:>9.3f}")


if __name__ == "__main__":
    main()
