"""Properties: on any text, parsing, checking and compiling return diagnostics, never raise."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests_paths import EXAMPLE_TRACES

from fluo_lang.api import analyze, compile_program
from fluo_lang.otlp import load_trace_files
from fluo_lang.trace import assemble

TRACES = assemble(load_trace_files(EXAMPLE_TRACES))

# Fragments of the language, so generated text reaches deep into the grammar.
FRAGMENTS = [
    "rule", "r", "{", "}", "(", ")", "[", "]", ".", ",", ":", "expect", "detect", "when", "always",
    "never", "window", "1m", "trace", "spans", "where", "count", "all", "none", "exists", "sum",
    "avg", "max", "before", "has", "root", "parent", "descendants", "it", "name", "service",
    "status", "error", "kind", "server", "duration", "==", "!=", "<", "<=", ">", ">=", "and",
    "or", "not", "in", "contains", "matches", "+", "-", "*", "/", "5", "2.5", "250ms", "'auth'",
    '"a\\"b"', '"(', "severity", "tags", "[a, b]", "//c\n", "\n", " ", "true", "false", "amount",
    "http.route", 'attributes["k"]', "10min", "@", "'", "window.spans", "trace.spans", ":",
]  # fmt: skip
fragment_text = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(" ".join)


def _run(text: str) -> None:
    analysis = analyze([("p.fluo", text)])
    for d in analysis.diagnostics:
        assert d.code.startswith("FLUO") and d.message
        assert 0 <= d.span.start <= d.span.end <= len(text)
        assert "\x00" not in d.message or "\x00" in text  # the recovery's placeholder never shows
    program = compile_program(analysis)
    program.evaluate(TRACES)
    assert program.errors == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_any_text(text: str) -> None:
    _run(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fragment_text)
def test_language_fragments(text: str) -> None:
    _run(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fragment_text)
def test_fragments_inside_a_rule(text: str) -> None:
    _run("rule r { expect " + text + " }")
