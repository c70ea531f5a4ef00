"""Properties: on any text, parsing, checking and compiling return diagnostics, never raise; and every
suggestion the typechecker gives, applied, removes its diagnostic and adds no error."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tests_paths import EXAMPLE_TRACES, ROOT

from fluo_lang import builtins as b
from fluo_lang import types as t
from fluo_lang.api import analyze, compile_program
from fluo_lang.diagnostics import Diagnostic
from fluo_lang.otlp import load_trace_files
from fluo_lang.parser import lex, parse
from fluo_lang.trace import assemble
from fluo_lang.typecheck import META_KEYS, SEVERITIES

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


# -- every suggestion the typechecker gives, applied (QA, fix-hints) ------------------------------------------

BUNDLED_RULES = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "fluo_run/examples/rules").glob("*.fluo"))]
_W = "rule r {{\n  window 1m\n  expect {}\n}}\n"
_SEVERITY = "rule r {{\n  severity: {}\n  expect trace.spans.count() > 0\n}}\n"
MISTAKES = [
    "trace.spans.size() > 5",
    "trace.size() > 5",
    "trace.SPANS.count() > 5",
    "TRACE.spans.count() > 5",
    "spans.count() > 5",
    "root.duration > 1s",
    "trace.spans().count() > 1",
    "trace.root().duration > 1s",
    "trace.spans.filter(service == 'a').count() > 0",
    "trace.spans.where(servce == 'auth').count() > 0",
    "trace.spans.where(stats == error).exists()",
    "trace.spans.where(status == STATUS_CODE_ERROR).exists()",
    "trace.spans.where(kind in [SPAN_KIND_CLIENT, producer]).exists()",
    "trace.spans.where(status == 'eror').exists()",
    "trace.spans.where(name.toLowerCase() == 'x').exists()",
    "trace.spans.where(x-request-id == 'abc').exists()",
    "trace.spans.where(parent.x-y == 1).exists()",
    "trace.spans.where(http.route != null).exists()",
    "trace.spans.where(span.http.route == '/x').exists()",
    "trace.spans.where(resource.attributes['service.name'] == 'a').exists()",
    "trace.spans.where(service.name == 'a').exists()",
    "trace.spans.where(True).exists()",
    "trace.spans.where(duration > 0).exists()",
    "trace.spans.where(duration > 500).exists()",
    "trace.root.duration.count() > 1",
    _W.format("trace.spans.count() < 5"),
    _W.format("traces.count() < 5"),
    _W.format("window.spans.where(name == 'a').cout() < 5"),
    _SEVERITY.format("warn"),
    _SEVERITY.format("ERROR"),
    "rule r {\n  severty: error\n  expect trace.spans.count() > 0\n}\n",
    "rule r {\n  descripton: 'x'\n  expect trace.spans.count() > 0\n}\n",
]
_NAMES = sorted(
    {m.name for m in b.MEMBERS}
    | {w for names in b.FOREIGN_NAMES.values() for w in names}
    | {"trace", "window", "traces", "it", "null", "True", "resource", "attributes", "x-request-id"}
    | {value for values in t.ENUMS.values() for value in values}
    | set(SEVERITIES)
    | set(META_KEYS)
)


@st.composite
def _misspelled(draw: st.DrawFn) -> str:
    """A bundled rule file with one name or duration changed (a typo, another case, another language's name, a
    member of another type, a duration without its unit), or a common mistake as it is: one mistake per text,
    so no error hides another that a fix would then uncover."""
    text = draw(st.sampled_from(BUNDLED_RULES + MISTAKES))
    if text in MISTAKES:
        return text
    w = draw(st.sampled_from([x for x in lex(text) if x.kind in ("IDENT", "DURATION")]))
    word = w.text
    if w.kind == "DURATION":
        new = draw(st.sampled_from([word.rstrip("nsuµmhd"), "0", word.upper()]))
    else:
        i = draw(st.integers(0, len(word) - 1))
        new = draw(
            st.sampled_from(
                [
                    word[:i] + word[i + 1 :],  # a letter dropped
                    word[:i] + word[i : i + 2][::-1] + word[i + 2 :],  # two swapped
                    word[:i] + word[i] + word[i:],  # one doubled
                    word.upper(),
                    word.capitalize(),
                    draw(st.sampled_from(_NAMES)),
                    word + "()",
                ]
            )
        )
    end = w.end + 2 if text.startswith("()", w.end) and draw(st.booleans()) else w.end  # `count()` -> `count`
    return text[: w.start] + (new or word) + text[end:]


def _moved(d: Diagnostic, start: int, end: int, shift: int) -> tuple[str, int]:
    """A diagnostic's code and place after text[start:end] is replaced by text `shift` longer."""
    return d.code, d.span.start if d.span.start < end else d.span.start + shift


def _assert_each_suggestion_fixes(text: str, *, parses: bool = False) -> None:
    """Each suggestion `text`'s analysis gives, applied alone: its diagnostic (code and place) is gone and no error
    comes that was not there (moved by the edit); with `parses`, the fixed text also has no syntax error."""
    before = analyze([("m.fluo", text)]).diagnostics
    for d in before:
        if d.suggestion is None:
            continue
        fixed = text[: d.span.start] + d.suggestion + text[d.span.end :]
        if parses:
            assert parse(fixed, "m.fluo").diagnostics == [], (d.format(), fixed)
        after = analyze([("m.fluo", fixed)]).diagnostics
        shift = len(d.suggestion) - (d.span.end - d.span.start)
        assert not [a for a in after if (a.code, a.span.start) == (d.code, d.span.start)], (d.format(), fixed)
        allowed = Counter(_moved(o, d.span.start, d.span.end, shift) for o in before if o.is_error and o is not d)
        new = [a.format() for a in after if a.is_error and not allowed[(a.code, a.span.start)]]
        assert not new, (d.format(), fixed, new)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(_misspelled())
def test_every_typecheck_suggestion_applied_fixes_its_diagnostic_and_adds_no_error(text: str) -> None:
    assume(parse(text, "m.fluo").diagnostics == [])  # what is left is the typechecker's
    _assert_each_suggestion_fixes(text, parses=True)


# -- every suggestion the parser gives, applied (review of fix-hints: the typechecker's property skipped them) --

_OPERATOR_SLIPS = {"==": ["===", "=", "eq"], "!=": ["!==", "<>", "ne"], "and": ["&&", "AND"], "or": ["||", "OR"]}
_META = "rule r {{\n  {}\n  expect trace.spans.count() > 0\n}}\n"
SYNTAX_MISTAKES = [
    _META.format("own\u00e9r: error"),  # `owner` takes a string: no fix (it was fixed as `owner`, then FLUO212)
    _META.format("own\u00e9r: 'x'"),
    _META.format("sev\u00e9rity: error"),
    _META.format("sev\u00e9rity: 'x'"),
    _META.format("t\u00e1gs: 'a'"),
    _META.format("severity: cr\u00edtical"),
    _META.format("own\u00e9r: 'x'\n  sev\u00e9rity: error"),  # two keys, each one error (the second was hidden)
    _META.format("sev\u00e9rity: cr\u00edtical"),
    _META.format("tags: [usu\u00e1rio, n\u00f3mbre]"),
    _W.format("window.spans.count() < 5").replace("1m", "500\u03bcs"),
    _W.format("window.spans.count() < 5").replace("1m", "\uff15\uff10\uff10ms"),
    _W.format("window.spans.count() < 5").replace("1m", "500\u00a0ms"),
    _W.format("window.spans.count() < 5").replace("1m", "1e3s"),
    "rule 9bad {\n  expect trace.spans.where(duration > 1e3s).count() > 0\n}\n",
    # editor tour: a unit in Greek or full-width letters after an exponent (the fix wrote `1000s`), a space before
    # the unit, an id error right before another, TraceQL's `| count` without parentheses
    _W.format("window.spans.count() < 5").replace("1m", "1e3\u03bcs"),
    _W.format("window.spans.count() < 5").replace("1m", "1e3\uff4d\uff53"),
    _W.format("window.spans.count() < 5").replace("1m", "1e3 ms"),
    "trace.spans.where(duration > 1e3\u03bcs).count() > 0",
    "trace.spans.where(duration > 1e3\uff4d\uff53).count() > 0",
    "trace.duration < 1e3 s",
    "rule 9bad {\n  window 500\n  detect window.spans.count() > 0\n}\n",
    "rule my-rule {\n  window 500\n  detect window.spans.count() > 0\n}\n",
    "rule r {\n  expect trace.spans | count > 2\n}\n",
    "rule r {\n  expect trace.spans.where(duration > 1s) | count() > 2\n}\n",  # TraceQL's pipeline
    "rule r {\n  detect trace.spans.where(kind == server).any(descendants | count() > 9)\n}\n",
]
"""Slips the parser reads, from user tours: each fix given, applied alone, fixes its own error and adds none."""


@st.composite
def _syntax_slip(draw: st.DrawFn) -> str:
    """A bundled rule file with one slip the parser reads: a name in full-width letters, with an accent or a
    keyword for a part, an operator of another language, a string with a regular expression's backslash."""
    text = draw(st.sampled_from(BUNDLED_RULES + SYNTAX_MISTAKES))
    if text in SYNTAX_MISTAKES:
        return text
    lexemes = [x for x in lex(text) if x.kind in ("IDENT", "STRING") or x.text in _OPERATOR_SLIPS]
    w = draw(st.sampled_from(lexemes))
    word = w.text
    if w.text in _OPERATOR_SLIPS:
        new = draw(st.sampled_from(_OPERATOR_SLIPS[w.text]))
    elif w.kind == "STRING":
        new = word[0] + "\\d" + word[1:]
    else:
        slips = [
            "".join(chr(ord(c) + 0xFEE0) if c.isalpha() else c for c in word),  # full-width
            word.replace("a", "á", 1) if "a" in word else word + "é",
        ]
        if text[w.end : w.end + 1] not in (".", "("):  # a value's name (an attribute key): a keyword for a part
            slips += [f"{word}.rule.x", f"{word}.in.x"]
        new = draw(st.sampled_from(slips))
    return text[: w.start] + new + text[w.end :]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_syntax_slip())
def test_every_parser_suggestion_applied_parses_and_adds_no_error(text: str) -> None:
    _assert_each_suggestion_fixes(text)


@pytest.mark.parametrize("text", SYNTAX_MISTAKES)
def test_each_syntax_mistakes_suggestion_applied_fixes_it_and_adds_no_error(text: str) -> None:
    """The table above, every case run (the property samples it among the bundled rules)."""
    _assert_each_suggestion_fixes(text)
