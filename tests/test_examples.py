"""The bundled examples: clean, canonically formatted, and each rule both fires and stays quiet."""

from __future__ import annotations

from tests_paths import EXAMPLE_RULES, EXAMPLE_TRACES

from fluo_lang.api import analyze_paths, compile_program
from fluo_lang.format import format_text
from fluo_lang.otlp import load_trace_file
from fluo_lang.trace import assemble


def test_examples_check_clean() -> None:
    analysis = analyze_paths([EXAMPLE_RULES])
    assert analysis.diagnostics == []
    assert len(analysis.rules) >= 5
    assert {r.mode for r in analysis.rules} == {"expect", "detect", "when"}
    assert any(r.window_ns for r in analysis.rules)
    assert any(r.rule.bare for r in analysis.rules)


def test_examples_are_formatted() -> None:
    for f in sorted(EXAMPLE_RULES.glob("*.fluo")):
        text = f.read_text(encoding="utf-8")
        assert format_text(text, str(f)) == text, f"{f.name}: run `fluo fmt examples/rules`"


def test_every_example_rule_fires_somewhere_and_stays_quiet_somewhere() -> None:
    program = compile_program(analyze_paths([EXAMPLE_RULES]))
    fired_in: dict[str, set[str]] = {r.id: set() for r in program.rules}
    for path in EXAMPLE_TRACES:
        for signal in program.evaluate(assemble(load_trace_file(path))):
            fired_in[signal.rule].add(path.name)
    names = {p.name for p in EXAMPLE_TRACES}
    for rule, files in fired_in.items():
        assert files, f"{rule} fires on no example trace"
        assert files != names, f"{rule} fires on every example trace"
