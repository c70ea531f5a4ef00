"""The conformance table through the library API and through `fluo eval`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conformance_cases import RULE_FILE_NAME, Case, compare_signals, load_cases

from fluo_lang.api import analyze, compile_program
from fluo_lang.otlp import load_trace_files
from fluo_lang.trace import assemble
from fluo_run.cli import main

CASES = load_cases()


def test_table_is_substantial() -> None:
    assert len(CASES) >= 40
    assert sum(1 for c in CASES if c.error_code) >= 10
    assert sum(1 for c in CASES if c.expected_signals) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_api(case: Case) -> None:
    analysis = analyze([(RULE_FILE_NAME, case.rules_text)])
    codes = {d.code for d in analysis.diagnostics if d.is_error}
    if case.error_code:
        assert case.error_code in codes, [d.format() for d in analysis.diagnostics]
        return
    assert not codes, [d.format() for d in analysis.diagnostics]
    program = compile_program(analysis)
    signals = [s.to_json() for s in program.evaluate(assemble(load_trace_files(case.trace_files())))]
    assert not program.errors
    assert compare_signals(case.expected_signals, signals) == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fluo_eval(case: Case, tmp_path: Path) -> None:
    rules = tmp_path / RULE_FILE_NAME
    rules.write_text(case.rules_text, encoding="utf-8")
    args = ["eval", str(rules)]
    for t in case.trace_files():
        args += ["--traces", str(t)]
    result = CliRunner().invoke(main, args)
    if case.error_code:
        assert result.exit_code == 1
        assert f"[{case.error_code}]" in result.stderr
        return
    assert result.exit_code == 0, result.stderr
    signals = [json.loads(line) for line in result.stdout.splitlines()]
    assert compare_signals(case.expected_signals, signals) == []
