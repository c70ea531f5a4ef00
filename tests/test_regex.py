"""What compiling the patterns of `matches` may cost: RE2's outcomes kept by pattern, and a budget per file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import re2

from fluo_lang import regex
from fluo_lang.api import analyze
from fluo_lang.regex import FILE_INSTRUCTIONS, REFUSED_INSTRUCTIONS, RegexError, compile_regex

TOO_LARGE = "\\\\pL{999}"  # as written in a FLUO string: RE2 refuses `\pL{999}` after building ~0.5M instructions
REFUSALS_IN_BUDGET = -(-FILE_INSTRUCTIONS // REFUSED_INSTRUCTIONS)


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The patterns RE2 compiles (UTF-8), with nothing kept from earlier tests."""
    monkeypatch.setattr(regex, "_outcomes", type(regex._outcomes)())
    seen: list[str] = []
    real = re2.compile

    def counting(pattern: Any, options: Any = None) -> Any:
        if isinstance(pattern, str):
            seen.append(pattern)
        return real(pattern, options)

    monkeypatch.setattr(re2, "compile", counting)
    re2.purge()  # RE2's own cache of programs
    yield seen


def matching(patterns: list[str], rule: str = "r") -> str:
    return f"rule {rule} {{ detect trace.has(" + " or ".join(f'name matches "{p}"' for p in patterns) + ") }\n"


def codes(text: str, path: str = "re.fluo") -> list[str]:
    return [d.code for d in analyze([(path, text)]).diagnostics]


def test_a_refused_pattern_is_compiled_once(compiles: list[str]) -> None:
    """QA: 300 `name matches "\\\\pL{999}"` took 11 s to check (37 ms each for RE2 to refuse), on every edit in
    the language server too."""
    text = matching([TOO_LARGE] * 300)
    assert codes(text) == ["FLUO303"] * 300
    assert compiles == ["\\pL{999}"]
    assert codes(text) == ["FLUO303"] * 300  # checked again (an edit): nothing compiled
    assert compiles == ["\\pL{999}"]
    with pytest.raises(RegexError, match="too large"):
        compile_regex("\\pL{999}")
    assert len(compiles) == 1


def test_a_valid_pattern_is_compiled_once(compiles: list[str]) -> None:
    text = matching(["^GET /api/[a-z]+$"] * 50)
    assert codes(text) == []
    assert codes(text) == []
    assert compiles == ["^GET /api/[a-z]+$"]


def test_the_patterns_of_one_file_have_a_budget(compiles: list[str]) -> None:
    """Distinct patterns cannot share a kept outcome: past the file's budget they are not compiled, and each rule
    holding one has a FLUO405 (once)."""
    many = [f"{TOO_LARGE}x{i}" for i in range(40)]
    text = matching(many, "a") + matching(many[:5], "b") + matching(["^x$"], "c")
    first = codes(text)
    # rule b's patterns were compiled for rule a: refused again, at no cost; rule c's small one is not compiled
    assert first == ["FLUO303"] * REFUSALS_IN_BUDGET + ["FLUO405"] + ["FLUO303"] * 5 + ["FLUO405"]
    assert len(compiles) == REFUSALS_IN_BUDGET
    assert codes(text) == first  # the same with the outcomes kept: a file's diagnostics depend on it alone


def test_each_file_has_a_budget_of_its_own(compiles: list[str]) -> None:
    one_file = matching([f"{TOO_LARGE}x{i}" for i in range(REFUSALS_IN_BUDGET)])
    analysis = analyze([("a.fluo", one_file), ("b.fluo", one_file.replace("rule r", "rule s"))])
    assert [d.code for d in analysis.diagnostics] == ["FLUO303"] * 2 * REFUSALS_IN_BUDGET


def test_the_kept_outcomes_are_bounded(compiles: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(regex, "OUTCOMES_KEPT", 3)
    for i in range(5):
        regex.program_size(f"^a{i}$")
    assert list(regex._outcomes) == ["^a2$", "^a3$", "^a4$"]
    regex.program_size("^a0$")  # dropped: compiled again
    assert compiles.count("^a0$") == 2


def test_a_budget_replays_what_was_asked_only_when_it_would_go_the_same(compiles: list[str]) -> None:
    """What the editor charges for a rule it checked before (`RegexBudget.replay`): the same charges, nothing
    compiled; refused when the budget left would give another outcome (a FLUO405 more or less)."""
    first = regex.RegexBudget(5)
    assert first.check("^abcdef$") > 0
    with pytest.raises(regex.RegexBudgetExhausted):
        first.check("^xy$")
    asked = list(first.consulted)
    assert [outcome is None for _, outcome in asked] == [False, True]
    again = regex.RegexBudget(5)
    assert again.replay(asked) and (again.left, again.consulted) == (first.left, asked)
    roomy = regex.RegexBudget(1000)  # `^xy$` would now be compiled: not a replay
    assert not roomy.replay(asked) and (roomy.left, roomy.seen, roomy.consulted) == (1000, {}, [])
    spent = regex.RegexBudget(0)  # `^abcdef$` would now be past the budget
    assert not spent.replay(asked)
    assert compiles == ["^abcdef$"]
