"""Fuzzing the rule language: every text goes through parse, check, lower, cost, compile and
evaluate, and only diagnostics come back (strategies and checks in `fuzz/strategies.py`).

Bounded to a few dozen examples each so the suite stays fast; `fuzz/fuzz_language.py`
runs the same strategies for longer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_scale import for_this_run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))

from strategies import (
    RuleOutcome,
    check_rule_text,
    example_rule_texts,
    expressions,
    grammar_texts,
    mutated,
    tokens,
    typed_rules,
)

from fluo_lang import ast
from fluo_lang import types as t
from fluo_lang.api import analyze, analyze_expression, lower
from fluo_lang.evaluate import Program
from fluo_lang.parser import MAX_DEPTH
from fluo_lang.typecheck import _meta_text

FAST = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def survives(text: str) -> RuleOutcome:
    outcome = check_rule_text(text)
    assert outcome.problems == [], (text, outcome.problems)
    return outcome


@pytest.mark.hypothesis  # as Hypothesis marks a test it runs itself: `-m hypothesis` selects this one too
def test_typed_rules_check_and_reach_the_evaluator() -> None:
    outcomes: list[RuleOutcome] = []

    @settings(for_this_run(FAST))  # made as the test runs: scaled here, never collected
    @given(typed_rules())
    def run(text: str) -> None:
        outcomes.append(survives(text))

    run()
    # the generator is worth running only if most of what it writes gets past the checker
    assert sum(o.checked for o in outcomes) >= len(outcomes) // 2
    assert sum(o.evaluated for o in outcomes) > 0


@FAST
@given(mutated(st.sampled_from(example_rule_texts())))
def test_mutated_example_rules_give_only_diagnostics(text: str) -> None:
    survives(text)


@FAST
@given(mutated(typed_rules(max_depth=3)))
def test_mutated_typed_rules_give_only_diagnostics(text: str) -> None:
    survives(text)


@settings(
    FAST,
    # from_lark discards sentences that grow too deep for its budget; on some seeds that trips the
    # generator's own health checks, which say nothing about the code under test.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
@given(grammar_texts())
def test_grammar_sentences_give_only_diagnostics(text: str) -> None:
    survives(text)


@settings(max_examples=30, deadline=None, database=None)
@given(st.text(max_size=120))
def test_arbitrary_text_gives_only_diagnostics(text: str) -> None:
    survives(text)


@FAST
@given(st.sampled_from(["expect", "detect"]), mutated(expressions(t.BOOL, False, 3)))
def test_command_line_expressions_give_only_diagnostics(mode: str, text: str) -> None:
    analysis = analyze_expression(text, mode)
    if not analysis.has_errors:
        Program(lower(analysis)).evaluate([])


def test_mutation_cuts_at_tokens() -> None:
    text = "rule r { expect trace.spans.where(service == 'a b').count() <= 5 } // done"
    assert "".join(tokens(text)) == text
    assert "'a b'" in tokens(text) and "<=" in tokens(text) and "// done" in tokens(text)


def test_deep_and_long_inputs_are_limits_not_crashes() -> None:
    deep = [
        "rule r { expect " + "not " * 5_000 + "true }",
        "rule r { expect " + "[" * 3_000 + "]" * 3_000 + " }",
        "rule r { expect trace" + ".spans.where(true)" * 1_000 + ".count() > 1 }",
        "rule r { expect " + "-" * 5_000 + "1 > 0 }",
        "rule r { tags: " + "[" * 5_000 + "]" * 5_000 + " expect trace.spans.count() > 0 }",
        "rule r { owner: " + "[" * 5_000 + "'a'" + "]" * 5_000 + " expect trace.spans.count() > 0 }",
    ]
    for text in deep:
        analysis = analyze([("deep.fluo", text)])
        assert "FLUO400" in {d.code for d in analysis.diagnostics}, text[:40]
    assert "FLUO402" in {d.code for d in analyze([("big.fluo", "x" * (4 * 1024 * 1024 + 1))]).diagnostics}


def test_metadata_too_deep_is_one_diagnostic_and_no_rule() -> None:
    for key in ("tags", "severity", "owner", "enabled"):
        text = f"rule r {{ {key}: " + "[" * 5_000 + "a" + "]" * 5_000 + " expect trace.spans.count() > 0 }"
        analysis = analyze([("deep.fluo", text)])
        assert [d.code for d in analysis.diagnostics] == ["FLUO400"], key  # no FLUO212 about the refused value
        assert [r.ok for r in analysis.rules] == [False] and lower(analysis) == []
    # Up to the limit the value is read, and a wrong one reported whole: the list's one item, which is no word.
    value = "[" * MAX_DEPTH + "a" + "]" * MAX_DEPTH
    [d] = analyze([("t.fluo", f"rule r {{ tags: {value} expect trace.spans.count() > 0 }}")]).diagnostics
    assert d.code == "FLUO212" and d.message.endswith(f", found `{value[1:-1]}` in the list")


def test_metadata_text_does_not_recurse() -> None:
    item = ast.MetaItem(ast.NO_SPAN, "a", "ident")
    for _ in range(5_000):
        item = ast.MetaItem(ast.NO_SPAN, [item, ast.MetaItem(ast.NO_SPAN, "b", "string")], "list")
    assert _meta_text(item) == "[" * 5_000 + "a" + ", 'b']" * 5_000
