"""Parser limits that the golden files do not reach."""

from __future__ import annotations

from fluo_lang.parser import MAX_ERRORS, parse


def test_too_many_syntax_errors_end_with_one_notice() -> None:
    text = "".join(f"rule r{i} {{ expect trace.spans.count() < 5 @ }}\n" for i in range(MAX_ERRORS + 40))
    diags = parse(text, "many.fluo").diagnostics
    assert len(diags) == MAX_ERRORS + 1
    assert {d.code for d in diags[:-1]} == {"FLUO101"}
    assert diags[-1].code == "FLUO403"
    assert diags[-1].span.line == MAX_ERRORS  # at the first error not reported


def test_errors_below_the_limit_are_all_reported() -> None:
    text = "".join(f"rule r{i} {{ expect trace.spans.count() < 5 @ }}\n" for i in range(10))
    diags = parse(text, "few.fluo").diagnostics
    assert [d.code for d in diags] == ["FLUO101"] * 10
