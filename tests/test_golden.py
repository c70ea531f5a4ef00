"""Golden files per stage: diagnostics (.diag), IR (.ir) and signals (.signals).

Set FLUO_UPDATE_GOLDEN=1 to rewrite the expected files, then review the diff like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fluo_lang.api import analyze, compile_program, lower
from fluo_lang.ir import format_rule
from fluo_lang.otlp import load_trace_files
from fluo_lang.trace import assemble

GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).parent.parent
UPDATE = os.environ.get("FLUO_UPDATE_GOLDEN") == "1"


def _sources(stage: str) -> list[Path]:
    return sorted((GOLDEN / stage).glob("*.fluo"))


def _check(actual: str, expected_file: Path) -> None:
    if UPDATE:
        expected_file.write_text(actual, encoding="utf-8")
    assert expected_file.exists(), f"{expected_file} is missing: run with FLUO_UPDATE_GOLDEN=1 and review it"
    assert actual == expected_file.read_text(encoding="utf-8")


def _analyze(src: Path):  # type: ignore[no-untyped-def]
    return analyze([(src.relative_to(ROOT).as_posix(), src.read_text(encoding="utf-8"))])


@pytest.mark.parametrize("src", _sources("diagnostics"), ids=lambda p: p.stem)
def test_diagnostics(src: Path) -> None:
    analysis = _analyze(src)
    assert analysis.diagnostics, "a diagnostics golden file must produce diagnostics"
    _check("".join(d.format() + "\n" for d in analysis.diagnostics), src.with_suffix(".diag"))


@pytest.mark.parametrize("src", _sources("ir"), ids=lambda p: p.stem)
def test_ir(src: Path) -> None:
    analysis = _analyze(src)
    assert not analysis.has_errors, [d.format() for d in analysis.diagnostics]
    text = "".join(format_rule(ir) + "\n" for ir in lower(analysis))
    _check(text, src.with_suffix(".ir"))


@pytest.mark.parametrize("src", _sources("signals"), ids=lambda p: p.stem)
def test_signals(src: Path) -> None:
    analysis = _analyze(src)
    assert not analysis.has_errors, [d.format() for d in analysis.diagnostics]
    traces = [ROOT / line for line in src.with_suffix(".traces").read_text().split()]
    signals = compile_program(analysis).evaluate(assemble(load_trace_files(traces)))
    _check("".join(json.dumps(s.to_json(), sort_keys=True) + "\n" for s in signals), src.with_suffix(".signals"))
