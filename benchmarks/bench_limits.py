"""Rule files at the size limits: what `fluo check` costs on text it refuses, against a valid file of the same size.

SECURITY.md promises a diagnostic past the limits, never a crash; this keeps that diagnostic cheap. Each case is
one `fluo check` process (time and its own peak RSS), and each is printed as a ratio to a file of valid rules of
the same size measured in the same run (machines are noisy):
  - a list past 20,000 nodes (`1 in [1,1,...]`, FLUO401), a field chain past 100 levels (`a.a.a...`, FLUO400),
    each as a bare expression and as one rule among valid ones after a syntax error (lark reads the rest);
  - one string literal the size of the file (the lexer's memory);
  - a field chain in a rule ending in a syntax error (`detect a.a. ... a. }`, FLUO400 and the error),
    parentheses never closed (`detect ((( ... }`, the error), a list never closed (`[1, 1, ... }`, FLUO401), a run
    of `not` (`not not ... x $`, FLUO400) and of `-(` never closed: lark would build what comes before the error;
  - a field chain after a syntax error in its rule (`$ detect a.a. ... }`): lark reads from the error on.
Target: every ratio <= 1.0 (a refused expression costs no more than valid rules of its size), or for a list, no
more than valid rules as dense in tokens (lists of 10,000 items, under the limit) cost.

Run: python benchmarks/bench_limits.py [--mib N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAX_RULE_NODES = 20_000  # fluo_lang.parser's

VALID = "rule r{n} {{\n  severity: warning\n  expect trace.spans.where(name == 'checkout').count() <= {n}\n}}\n"


def valid_rules(size: int) -> str:
    out, n, total = [], 0, 0
    while total < size:
        out.append(VALID.format(n=n))
        total += len(out[-1])
        n += 1
    return "".join(out)[:size].rpartition("}\n")[0] + "}\n"


def cases(size: int) -> dict[str, str]:
    items = (size - 16) // 2
    chain = (size - 16) // 2
    broken = "rule broken { expect ) }\n"
    dense = "rule r{n} {{ expect 1 in [" + "1," * (MAX_RULE_NODES // 2) + "1] }}\n"
    return {
        "valid rules": valid_rules(size),
        "valid rules, long lists": "".join(dense.format(n=n) for n in range(size // len(dense))),
        "list, bare": "1 in [" + "1," * items + "1]\n",
        "chain, bare": "a" + ".a" * chain + " > 0\n",
        "list in a rule, error elsewhere": broken + "rule big { expect 1 in [" + "1," * (items - 30) + "1] }\n",
        "chain in a rule, error elsewhere": broken + "rule big { expect a" + ".a" * (chain - 30) + " > 0 }\n",
        "one string literal": "trace.root.name == '" + "a" * (size - 24) + "'\n",
        "chain ending in a syntax error": "rule r { detect " + "a." * ((size - 20) // 2) + " }\n",
        "parentheses never closed": "rule r { detect " + "(" * (size - 20) + " }\n",
        "list never closed": "rule r { expect 1 in [" + "1, " * ((size - 30) // 3) + "1 }\n",
        "a run of not": "rule r { expect " + "not " * ((size - 24) // 4) + "x $ }\n",
        "-( never closed": "rule r { detect " + "-(" * ((size - 20) // 2) + " }\n",
        "chain after a syntax error": "rule r { $ detect " + "a." * ((size - 24) // 2) + "a }\n",
    }


def check(path: Path) -> tuple[float, int, str]:
    """Seconds, peak RSS in MB and the first line of one `fluo check` process."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "fluo_run.cli", "check", str(path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        out = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)  # this process's own peak RSS, as `wait` would not say
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    return seconds, usage.ru_maxrss // 1024, (out.splitlines() or [""])[0][-60:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=float, default=1.0, help="file size in MiB (the limit is 4)")
    args = ap.parse_args()
    size = int(args.mib * 1024 * 1024)
    missed = False
    with tempfile.TemporaryDirectory() as tmp:
        base: tuple[float, int] | None = None
        dense = 1.0
        for name, text in cases(size).items():
            path = Path(tmp) / "rules.fluo"
            path.write_text(text, encoding="utf-8")
            seconds, mb, first = check(path)
            if base is None:
                base = seconds, mb
                print(f"{name:34} {len(text):>9} bytes {seconds:7.2f} s {mb:6d} MB")
                continue
            ratios = seconds / base[0], mb / base[1]
            if name.startswith("valid"):
                dense = max(ratios)
            else:
                missed |= max(ratios) > max(1.0, dense if name.startswith("list") else 1.0)
            print(
                f"{name:34} {len(text):>9} bytes {seconds:7.2f} s {mb:6d} MB"
                f"  ratio time {ratios[0]:.2f} rss {ratios[1]:.2f}  {first}"
            )
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
