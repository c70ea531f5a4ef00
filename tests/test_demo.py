"""`fluo demo`: the README's first command runs the runtime, shows signals and exits by itself."""

from __future__ import annotations

import json
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from serve_support import ServeProcess

from fluo_run.cli import main


def test_demo_shows_the_signals_and_exits_0(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    done = subprocess.run(
        [sys.executable, "-m", "fluo_run.cli", "demo", "--db", str(db)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Traceback" not in done.stderr
    signals_part = out.split("Signals (")[1].split("\n\n")[0]
    fired = sorted(line.split()[1] for line in signals_part.splitlines()[1:] if not line.startswith("           "))
    assert fired == ["auth_retry_storm", "auth_span_budget", "charge_needs_fraud_check"]
    assert "3 signals on 2 of 8 traces" in out
    assert f"fluo signals --db {db}" in out
    stored = sorted(r[0] for r in sqlite3.connect(db).execute("SELECT rule FROM signals"))
    assert stored == fired
    # QA new-user tour: the demo printed `trace 44392ef1ac52…`, which `fluo signals --trace` does not take
    shown = re.findall(r"\(trace (\S+)\)", signals_part)
    assert len(shown) == 3
    for trace in shown:
        listed = CliRunner().invoke(main, ["signals", "--db", str(db), "--trace", trace, "--format", "jsonl"])
        assert listed.exit_code == 0, listed.output
        assert {json.loads(line)["trace_id"] for line in listed.stdout.splitlines()} == {trace}
    (next_step,) = [line.strip() for line in out.splitlines() if line.strip().startswith("fluo serve --rules ")]
    # Smalls: the header named the rules through the package's `fluo_run/examples` link, `Next:` by the real path
    (header,) = [line for line in out.splitlines() if line.startswith("  runtime ")]
    assert header.endswith(f" rules from {shlex.split(next_step)[-1]}")
    elsewhere = tmp_path / "elsewhere"  # QA L3: the printed step works from any folder, not only the repository's
    elsewhere.mkdir()
    args = [*shlex.split(next_step.removeprefix("fluo serve ")), "--http", "127.0.0.1:0", "--grpc", "off", "--no-db"]
    with ServeProcess(args, cwd=elsewhere) as proc:
        proc.started()
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0


def test_demo_whose_reader_goes_away_stops_quietly_with_141(tmp_path: Path) -> None:
    """QA newuser r01: `fluo demo | head -14` exited 141, but the demo's sink failed printing the signals
    (BrokenPipeError) and the runtime's stop said so on stderr, three lines ending "exit 3"."""
    p = subprocess.Popen(
        [sys.executable, "-m", "fluo_run.cli", "demo", "--db", str(tmp_path / "d.db")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None and p.stderr is not None
    for line in p.stdout:  # as `| head` reads up to the signals' heading, then goes away
        if line.startswith("Signals ("):
            break
    p.stdout.close()  # the next write is a signal's, by the demo's sink
    err = p.stderr.read()
    p.stderr.close()
    assert p.wait(timeout=120) == 141, err
    assert err == ""
    stored = sorted(r[0] for r in sqlite3.connect(tmp_path / "d.db").execute("SELECT rule FROM signals"))
    assert stored == ["auth_retry_storm", "auth_span_budget", "charge_needs_fraud_check"]


def test_demo_counts_one_rule_as_one_rule(tmp_path: Path) -> None:
    """QA docs r07: `fluo demo --rules` with one rule said "1 rules from ..."."""
    rules = tmp_path / "one.fluo"
    rules.write_text("rule only { detect trace.spans.count() > 0 }\n")
    done = subprocess.run(
        [sys.executable, "-m", "fluo_run.cli", "demo", "--rules", str(rules), "--db", str(tmp_path / "d.db")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"(OTLP/HTTP), 1 rule from {rules.resolve()}\n" in done.stdout


def test_demo_rules_that_cannot_be_read_are_a_usage_error_as_for_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA errors r11: `--rules EMPTY-FOLDER` exited 1 (serve says it with 2), naming the folder twice ("EMPTY: no
    .fluo files in this folder in EMPTY"); a symbolic link loop was a path that "does not exist" (click's check)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    Path("loop.fluo").symlink_to("loop.fluo")
    said = {
        "empty": f"fluo: --rules: {tmp_path / 'empty'}: no .fluo files in this folder\n",
        "loop.fluo": "fluo: --rules: cannot read loop.fluo: Too many levels of symbolic links\n",
        "missing": "fluo: --rules: missing: no such file or folder\n",
    }
    for rules, line in said.items():
        result = CliRunner().invoke(main, ["demo", "--rules", rules, "--db", str(tmp_path / "d.db")])
        assert (result.exit_code, result.stderr) == (2, line), rules
    assert not (tmp_path / "d.db").exists()
