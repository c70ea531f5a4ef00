"""`fluo signals`: listing and filtering what `fluo serve` stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fluo_run.cli import main
from fluo_run.serve.store import SignalStore


def signal(rule: str, severity: str, time: str, trace: str | None, message: str) -> dict[str, Any]:
    s: dict[str, Any] = {"rule": rule, "severity": severity, "message": message}
    if trace:
        s["trace_id"] = trace
    else:
        s["window_start"], s["window_end"] = "2026-01-01T00:00:00.000000Z", "2026-01-01T00:01:00.000000Z"
    s.update(span_ids=["00f067aa0ba902b7"], observed={"count": 7, "bound": 5}, time=time)
    return s


SIGNALS = [
    signal("auth_span_budget", "warning", "2026-01-01T00:00:10.000000Z", "a" * 32, "count = 7, bound = 5"),
    signal("auth_retry_storm", "critical", "2026-01-01T00:00:20.000000Z", "a" * 32, "count = 61, bound = 50"),
    signal("charge_needs_fraud_check", "error", "2026-01-01T00:00:30.000000Z", "b" * 32, "no fraud check"),
    signal("auth_login_rate", "warning", "2026-01-01T00:01:00.000000Z", None, "count = 301, bound = 300"),
]


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "fluo-signals.db"
    store = SignalStore(path)
    store.add(SIGNALS)
    store.close()
    return str(path)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["signals", *args])
    return result.exit_code, result.output


def rules_of(output: str) -> list[str]:
    return [json.loads(line)["rule"] for line in output.splitlines()]


def test_table(db: str, snapshot: Any) -> None:
    code, out = run("--db", db)
    assert code == 0
    assert out == snapshot


def test_jsonl_round_trips_the_signal(db: str) -> None:
    code, out = run("--db", db, "--format", "jsonl")
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == SIGNALS


def test_jsonl_lines_are_the_signals_as_fluo_eval_prints_them(tmp_path: Path) -> None:
    # Written straight from the store's text: it must be the same line `json.dumps` gives, non-ASCII kept.
    many = [signal("r", "info", f"2026-01-01T00:00:{i % 60:02d}.{i:06d}Z", "c" * 32, f"é {i}") for i in range(25_000)]
    store = SignalStore(tmp_path / "s.db")
    store.add(many)
    store.close()
    code, out = run("--db", str(tmp_path / "s.db"), "--format", "jsonl", "--limit", "100000")
    assert code == 0
    expected = sorted(many, key=lambda s: s["time"])
    assert out == "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in expected)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--rule", "auth_retry_storm"], ["auth_retry_storm"]),
        (["--rule", "auth_retry_storm", "--rule", "auth_login_rate"], ["auth_retry_storm", "auth_login_rate"]),
        (["--severity", "error"], ["auth_retry_storm", "charge_needs_fraud_check"]),
        (["--trace", "B" * 32], ["charge_needs_fraud_check"]),
        (["--since", "2026-01-01T00:00:20Z"], ["auth_retry_storm", "charge_needs_fraud_check", "auth_login_rate"]),
        (["--until", "2026-01-01T00:00:20Z"], ["auth_span_budget"]),
        (["--limit", "2"], ["charge_needs_fraud_check", "auth_login_rate"]),
        (["--since", "1h"], []),
    ],
)
def test_filters(db: str, args: list[str], expected: list[str]) -> None:
    result = CliRunner().invoke(main, ["signals", "--db", db, "--format", "jsonl", *args])
    assert result.exit_code == 0
    assert rules_of(result.stdout) == expected


@pytest.mark.parametrize(("limit", "more"), [(3, True), (4, False), (5, False)])
def test_a_limit_that_leaves_signals_out_says_so(db: str, limit: int, more: bool) -> None:
    """docs QA: a plain `fluo signals` showed the newest 100 of more without a word."""
    result = CliRunner().invoke(main, ["signals", "--db", db, "--format", "jsonl", "--limit", str(limit)])
    assert result.exit_code == 0
    assert rules_of(result.stdout) == [s["rule"] for s in SIGNALS][-limit:]
    note = f"fluo: the newest {limit} matching signals; there are more (--limit N shows N)\n"
    assert result.stderr == (note if more else "")


def test_missing_store_and_bad_time_are_one_line(tmp_path: Path, db: str) -> None:
    code, out = run("--db", str(tmp_path / "nope.db"))
    assert code == 2 and out.count("\n") == 1 and "run `fluo serve`" in out
    code, out = run("--db", db, "--since", "yesterday")
    assert code == 2 and out.count("\n") == 1 and "--since" in out
    code, out = run("--db", db, "--trace", "xyz")  # docs/runtime.md: a bad --trace is a usage error too
    assert code == 2 and out.count("\n") == 1 and "--trace" in out
    (tmp_path / "junk.db").write_text("not sqlite at all, just text" * 100)
    code, out = run("--db", str(tmp_path / "junk.db"))
    assert code == 2 and "not a FLUO signal store" in out
