"""`fluo discover` speed: analyse 100k spans of OTLP JSON (target: under 10 s on one core).

Two corpora of about 100k spans each, written as OTLP JSON files first:
  - shop: the structured checkout corpus of `fluo_run.discover.synthetic`;
  - random: 10 services x 20 operations, random parents and times, 9 attributes
    per span (many operations per trace, few shared patterns);
  - wide: 1,000 traces of 100 spans over 30 services, half of them named by a
    user id (`GET /users/123`): tens of thousands of operations, most rare.

For each, prints the time and spans/s of the whole discovery (read the file,
assemble, summarise, mine, prune, render), split into reading (the core's OTLP
loader, with the cycle collector paused as `fluo discover` runs it) and
analysis (everything after), and the ratio of the whole to a baseline measured
in the same run: bare `load_trace_files` + `assemble` of the same file, as
`fluo eval` reads it. The 10 s target is for the whole; the analysis alone is
what `fluo discover` adds to reading the files.

Run: python benchmarks/bench_discover.py [--spans N] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fluo_lang.otlp import load_trace_files, spans_to_json
from fluo_lang.trace import Span, assemble, collector_paused
from fluo_run.discover.corpus import summarize
from fluo_run.discover.facts import Options, discover
from fluo_run.discover.render import fluo_text, rules_of
from fluo_run.discover.synthetic import shop_corpus

TARGET_S = 10.0


def random_corpus(spans: int, per_trace: int = 10, seed: int = 7) -> list[Span]:
    rng = random.Random(seed)
    out: list[Span] = []
    base = 1_767_225_600 * 10**9
    for t in range(spans // per_trace):
        tid = rng.randbytes(16)
        ids = [rng.randbytes(8) for _ in range(per_trace)]
        for i in range(per_trace):
            start = base + t * 10**9 + rng.randrange(10**6)
            svc = rng.randrange(10)
            attrs: dict[str, Any] = {f"attr{k}": k for k in range(6)}
            attrs["http.status_code"] = rng.choice([200, 200, 200, 404, 503])
            attrs["amount"] = rng.randrange(5000)
            attrs["user.id"] = f"u{rng.randrange(1000)}"
            out.append(
                Span(
                    trace_id=tid,
                    span_id=ids[i],
                    parent_id=b"" if i == 0 else ids[rng.randrange(i)],
                    name=f"op{svc * 2 + rng.randrange(2)}",
                    service=f"svc{svc}",
                    start=start,
                    end=start + rng.randrange(10**7),
                    status=rng.choice(["ok", "ok", "ok", "error"]),
                    attributes=attrs,
                )
            )
    return out


def wide_corpus(spans: int, per_trace: int = 100, seed: int = 3) -> list[Span]:
    rng = random.Random(seed)
    out: list[Span] = []
    base = 1_767_225_600 * 10**9
    for _ in range(spans // per_trace):
        tid = rng.randbytes(16)
        ids = [rng.randbytes(8) for _ in range(per_trace)]
        for i in range(per_trace):
            start = base + rng.randrange(10**9)
            name = f"GET /users/{rng.randrange(5000)}" if i % 2 else f"op{rng.randrange(300)}"
            out.append(
                Span(
                    trace_id=tid,
                    span_id=ids[i],
                    parent_id=b"" if i == 0 else ids[rng.randrange(i)],
                    name=name,
                    service=f"svc{rng.randrange(30)}",
                    start=start,
                    end=start + rng.randrange(10**7),
                    attributes={"user": rng.randrange(100), f"k{rng.randrange(50)}": "x"},
                )
            )
    return out


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def run_discovery(path: Path) -> tuple[str, float]:
    """The rules text, and the seconds spent reading the file."""
    options = Options()
    t = time.perf_counter()
    with collector_paused():
        traces = assemble(load_trace_files([path]))
    read = time.perf_counter() - t
    with collector_paused():
        corpus = summarize(traces, trace_values=options.min_confidence < 1.0)
        facts = discover(corpus, options)
    return fluo_text(rules_of(facts, corpus), corpus, options), read


def bench(name: str, spans: list[Span], folder: Path, repeat: int) -> bool:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(spans_to_json(spans)), encoding="utf-8")
    n = len(spans)
    base_s, _ = best_of(repeat, lambda: assemble(load_trace_files([path])))
    disc_s, (text, read_s) = best_of(repeat, lambda: run_discovery(path))
    rules = text.count("\nrule ")
    analyse_s = disc_s - read_s
    ok = disc_s < TARGET_S * n / 100_000
    print(
        f"{name:>6}: {n} spans, {rules} rules | baseline load+assemble {base_s:.2f} s ({n / base_s:,.0f} spans/s) | "
        f"discover {disc_s:.2f} s ({n / disc_s:,.0f} spans/s) = read {read_s:.2f} s + analyse {analyse_s:.2f} s "
        f"({n / analyse_s:,.0f} spans/s) | ratio discover/baseline {disc_s / base_s:.2f} | "
        f"target < {TARGET_S * n / 100_000:.1f} s: {'ok' if ok else 'MISSED'}"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    shop = shop_corpus(round(args.spans / 8.67))
    with tempfile.TemporaryDirectory() as tmp:
        ok = bench("shop", shop, Path(tmp), args.repeat)
        ok = bench("random", random_corpus(args.spans), Path(tmp), args.repeat) and ok
        ok = bench("wide", wide_corpus(args.spans), Path(tmp), args.repeat) and ok
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
