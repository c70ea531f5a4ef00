"""The conformance table through `fluo test`: it must agree with `fluo eval` on every case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conformance_cases import RULE_FILE_NAME, Case, load_cases

from fluo_run.cli import main

CASES = load_cases()


EVAL_ONLY_KEYS = ("span_ids", "trace_ids", "window_start", "window_end")
"""What the table may expect of a signal and a test file cannot: `fluo test` is held to `fluo eval`'s signals."""


def _write_test(folder: Path, case: Case, expect: list[dict[str, Any]]) -> Path:
    expect = [{k: v for k, v in e.items() if k not in EVAL_ONLY_KEYS} for e in expect]
    (folder / RULE_FILE_NAME).write_text(case.rules_text, encoding="utf-8")
    path = folder / "case_test.yaml"
    spec = {
        "rules": [RULE_FILE_NAME],
        "cases": [{"name": case.name, "traces": [str(p) for p in case.trace_files()], "expect": expect}],
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _fluo_eval(folder: Path, case: Case) -> tuple[int, list[dict[str, Any]], str]:
    args = ["eval", str(folder / RULE_FILE_NAME)]
    for t in case.trace_files():
        args += ["--traces", str(t)]
    result = CliRunner().invoke(main, args)
    return result.exit_code, [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def _fluo_test(path: Path) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["test", str(path), "--format", "json"])
    return result.exit_code, json.loads(result.stdout)


def test_the_table_is_there() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fluo_test_agrees_with_fluo_eval(case: Case, tmp_path: Path) -> None:
    path = _write_test(tmp_path, case, case.expected_signals)
    code, report = _fluo_test(path)
    eval_code, eval_signals, eval_stderr = _fluo_eval(tmp_path, case)
    if case.error_code:
        assert (code, eval_code) == (2, 1)
        (problem,) = report["files"][0]["errors"]
        assert f"[{case.error_code}]" in eval_stderr
        assert case.error_code in problem["message"]
        assert problem["line"] == 1  # the `rules:` line of the test file
        return
    assert eval_code == 0, eval_stderr
    (result,) = report["files"][0]["cases"]
    assert (code, result["status"]) == (0, "passed"), result
    assert result["signals"] == eval_signals

    # With nothing expected, every signal `fluo eval` printed is reported as unexpected.
    path = _write_test(tmp_path, case, [])
    code, report = _fluo_test(path)
    (result,) = report["files"][0]["cases"]
    assert code == (1 if eval_signals else 0)
    assert result.get("unexpected", []) == eval_signals
