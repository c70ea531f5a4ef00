"""The formatter: golden layouts, idempotence, and that it never changes what a file means."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fluo_lang import api
from fluo_lang.format import FormatError, format_source, format_text
from fluo_lang.ir import Node, RuleIR
from fluo_lang.parser import MAX_DEPTH, lex

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "format"
EXAMPLES = sorted((ROOT / "examples" / "rules").glob("*.fluo"))
INPUTS = sorted(GOLDEN.glob("*.in.fluo"))


def node_shape(node: Node) -> Any:
    """An IR node without its source range."""
    value = node.value
    if hasattr(value, "name") and hasattr(value, "receiver"):
        value = ("member", str(value.receiver), value.name)
    return (node.op, str(node.type), repr(value), tuple(node_shape(a) for a in node.args))


def ir_shape(rules: list[RuleIR]) -> list[Any]:
    return [
        (
            r.id, r.mode, r.severity, r.name, r.description, r.tags, r.window_ns, sorted(r.extra.items()),
            [(kind, node_shape(n)) for kind, n in r.clauses()],
        )
        for r in rules
    ]  # fmt: skip


def meaning(text: str, path: str) -> tuple[list[Any], list[tuple[str, str]]]:
    """What a file means: its IR without spans, and its diagnostics without positions."""
    analysis = api.analyze([(path, text)])
    return ir_shape(api.lower(analysis)), [(d.code, d.message) for d in analysis.diagnostics]


def tokens(text: str) -> list[tuple[str, str]]:
    return [(x.kind, x.text.rstrip()) for x in lex(text) if x.kind != "WS"]


def assert_faithful(text: str, path: str = "rules.fluo") -> str:
    out = format_text(text, path)
    assert format_text(out, path) == out, "formatting twice changed the text"
    assert tokens(out) == tokens(text)
    assert meaning(out, path) == meaning(text, path)
    assert_rules_apart(out)
    return out


def assert_rules_apart(out: str) -> None:
    """Between a rule's closing `}` line and the next rule's `rule` line there is a blank line."""
    closed = None  # the lines since the last rule's `}`
    for line in out.splitlines():
        if line.startswith("rule "):
            assert closed is None or "" in closed, f"no blank line before {line!r}:\n{out}"
            closed = None
        elif line.startswith("}"):
            closed = []
        elif closed is not None:
            closed.append(line)


@pytest.mark.parametrize("source", INPUTS, ids=lambda p: p.name.removesuffix(".in.fluo"))
def test_golden_layout(source: Path) -> None:
    expected_file = source.with_name(source.name.replace(".in.fluo", ".out.fluo"))
    out = assert_faithful(source.read_text(encoding="utf-8"), source.name)
    if os.environ.get("FLUO_UPDATE_GOLDEN") == "1":
        expected_file.write_text(out, encoding="utf-8")
    assert out == expected_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("source", EXAMPLES, ids=lambda p: p.name)
def test_examples_format_faithfully(source: Path) -> None:
    assert_faithful(source.read_text(encoding="utf-8"), source.name)


def test_syntax_errors_are_reported_not_formatted() -> None:
    text = "rule a {\n  expect trace.spans.count( < 5\n}\n"
    result = format_source(text, "a.fluo")
    assert result.text is None
    assert [d.code for d in result.diagnostics] == ["FLUO100"]
    with pytest.raises(FormatError) as info:
        format_text(text, "a.fluo")
    assert info.value.diagnostics == result.diagnostics


def test_metadata_nested_too_deeply_is_reported_not_formatted() -> None:
    text = "rule a {tags: " + "[" * 5_000 + "]" * 5_000 + " expect trace.spans.count() > 0}\n"
    result = format_source(text, "a.fluo")
    assert result.text is None
    assert [d.code for d in result.diagnostics] == ["FLUO400"]
    lists = "[" * MAX_DEPTH + "]" * MAX_DEPTH  # at the limit: formatted as usual
    out = assert_faithful(f"rule a {{tags: {lists} expect trace.spans.count() > 0}}\n")
    assert out == f"rule a {{\n  tags: {lists}\n  expect trace.spans.count() > 0\n}}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a comment ending the first rule's last line: the blank line goes after it
        ("rule a { expect true } // c\nrule b { expect true }",
         "rule a {\n  expect true\n} // c\n\nrule b {\n  expect true\n}\n"),
        # comment lines right before a rule stay with it; the blank line goes before them
        ("rule a { expect true }\n// about b\n// more\nrule b { expect true }",
         "rule a {\n  expect true\n}\n\n// about b\n// more\nrule b {\n  expect true\n}\n"),
        ("rule a { expect true } // c\n// about b\nrule b { expect true }",
         "rule a {\n  expect true\n} // c\n\n// about b\nrule b {\n  expect true\n}\n"),
        # the author's blank line, wherever it is between the rules, is the one kept
        ("rule a { expect true }\n// after a\n\n// about b\nrule b { expect true }",
         "rule a {\n  expect true\n}\n// after a\n\n// about b\nrule b {\n  expect true\n}\n"),
        ("rule a { expect true }\n// after a\n\nrule b { expect true }",
         "rule a {\n  expect true\n}\n// after a\n\nrule b {\n  expect true\n}\n"),
        # after the last rule no blank line is added
        ("rule a { expect true } // c\n// tail\n", "rule a {\n  expect true\n} // c\n// tail\n"),
    ],
)  # fmt: skip
def test_rules_are_one_blank_line_apart_around_comments(text: str, expected: str) -> None:
    """QA r11: `} // c` followed by `rule b`, or a comment line right before a rule, left the rules glued."""
    assert assert_faithful(text) == expected
    assert assert_faithful(text.replace("\n", "\r\n")) == expected.replace("\n", "\r\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rule a {\n  when\n  {\n    true\n  }\n  never\n{ false }\n}\n",
         "rule a {\n  when {\n    true\n  }\n  never { false }\n}\n"),
        ("rule a {\n  always\n\n\n  {\n true }\n}\n", "rule a {\n  always {\n    true }\n}\n"),
        # after a comment the `{` starts a line, indented as its keyword, and the expression one step more
        ("rule a {\n  when // c\n// d\n  {\n    true\n  }\n  expect true\n}\n",
         "rule a {\n  when // c\n  // d\n  {\n    true\n  }\n  expect true\n}\n"),
    ],
)  # fmt: skip
def test_a_clause_braces_open_on_its_keyword_line(text: str, expected: str) -> None:
    """QA: `when` with its `{` on the next line put the `{` and the expression at one indent."""
    assert assert_faithful(text) == expected


def test_a_blank_line_inside_a_list_or_an_expression_is_kept_as_one() -> None:
    """As between clauses: it may group a long list's items."""
    text = "rule a {\n  tags: [a,\n\n\n  b]\n  expect true and\n\n  false\n}\n"
    assert assert_faithful(text) == "rule a {\n  tags: [a,\n\n    b]\n  expect true and\n\n    false\n}\n"


def test_type_errors_do_not_block_formatting() -> None:
    assert format_text("rule a {expect trace.spans.whree(x)}") == "rule a {\n  expect trace.spans.whree(x)\n}\n"


@pytest.mark.parametrize("eol", ["\r\n", "\r"], ids=["crlf", "cr"])
def test_lines_end_as_the_files_lines_do(eol: str) -> None:
    """A CRLF (or old Mac) file stays so, so `fluo fmt --check` passes on it (QA L6); a comment ends at a lone
    `\r` and one on a line of its own stays there (QA L7)."""
    tidy = (
        "// header\nrule a {\n  expect trace.spans.count() > 0 // why\n}\n// own line\n\nrule b {\n  detect true\n}\n"
    )
    assert format_text(tidy.replace("\n", eol)) == tidy.replace("\n", eol)
    assert (
        assert_faithful("rule a {expect true}" + eol + "// c" + eol)
        == f"rule a {{{eol}  expect true{eol}}}{eol}// c{eol}"
    )
    mostly = "rule a {\r\n  expect true\n}\r\n"  # mixed: the most common break wins
    assert format_text(mostly) == "rule a {\r\n  expect true\r\n}\r\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("\n\n  \n", ""),
        ("// only a comment   \n\n\n", "// only a comment\n"),
        ("trace.count(a - -1 > -2)", "trace.count(a - -1 > -2)\n"),
        ("- -1 == 1 and --1 == 1 and 1 - - -1 == 0", "- -1 == 1 and - -1 == 1 and 1 - - -1 == 0\n"),  # no `--`
        ("trace.spans[ 0 ]", "trace.spans[0]\n"),
        ("trace.services contains 'a' and not ('b' in trace.services)",
         "trace.services contains 'a' and not ('b' in trace.services)\n"),
        ("rule w { window 5m expect window.traces.count()>0 }",
         "rule w {\n  window 5m\n  expect window.traces.count() > 0\n}\n"),
        ("rule e {}", "rule e {\n}\n"),
        ("rule t { tags : [ a , b ] expect true }", "rule t {\n  tags: [a, b]\n  expect true\n}\n"),
    ],
)  # fmt: skip
def test_spacing(text: str, expected: str) -> None:
    assert assert_faithful(text) == expected


# Generated rules: random expressions, laid out with random whitespace and comments.

PREDICATES = [
    ["service", "==", "'auth'"],
    ["duration", ">", "250ms"],
    ["status", "==", "error"],
    ["kind", "!=", "server"],
    ["http", ".", "response", ".", "status_code", ">=", "500"],
    ["name", "matches", '"^GET /"'],
    ["-", "1", "<", "amount", "*", "2"],
    ["attributes", "[", '"odd key"', "]", "in", "[", "1", ",", "2", "]"],
    ["kind", "in", "[", "server", ",", "client", "]"],
]
SEPARATORS = [
    " ", "  ", "\n", "\n\n", "\t", " // note\n", "\n// a line of its own\n", "\n\n// after a gap\n",
    " // note\n// and a line\n", "\n// before a gap\n\n",
]  # fmt: skip


def predicates() -> st.SearchStrategy[list[str]]:
    leaf = st.sampled_from(PREDICATES)

    def extend(inner: st.SearchStrategy[list[str]]) -> st.SearchStrategy[list[str]]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: [*t[0], t[1], *t[2]]),
            inner.map(lambda p: ["not", "(", *p, ")"]),
            inner.map(lambda p: ["descendants", ".", "where", "(", *p, ")", ".", "count", "(", ")", "==", "0"]),
        )

    return st.recursive(leaf, extend, max_leaves=4)


def conditions() -> st.SearchStrategy[list[str]]:
    spans = predicates().map(lambda p: ["trace", ".", "spans", ".", "where", "(", *p, ")"])
    return st.one_of(
        spans.map(lambda s: [*s, ".", "count", "(", ")", "<=", "5"]),
        spans.map(lambda s: [*s, ".", "exists", "(", ")"]),
        predicates().map(lambda p: ["trace", ".", "has", "(", *p, ")"]),
        st.tuples(spans, predicates()).map(lambda t: [*t[0], ".", "all", "(", *t[1], ")"]),
    )


@st.composite
def rule_files(draw: st.DrawFn) -> str:
    words: list[str] = []
    for i in range(draw(st.integers(1, 3))):
        words += ["rule", f"r{i}", "{"]
        if draw(st.booleans()):
            words += ["severity", ":", draw(st.sampled_from(["info", "warning", "error", "critical"]))]
        if draw(st.booleans()):
            words += ["tags", ":", "[", "a", ",", "b", "]"]
        if draw(st.booleans()):
            words += ["when", "{", *draw(conditions()), "}", "never", "{", *draw(conditions()), "}"]
        else:
            words += [draw(st.sampled_from(["expect", "detect"])), *draw(conditions())]
        words.append("}")
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(words), max_size=len(words)))
    return "".join(w + s for w, s in zip(words, seps, strict=True))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_files())
def test_generated_rules_format_faithfully(text: str) -> None:
    assert not api.analyze([("g.fluo", text)]).has_errors, text
    assert_faithful(text, "g.fluo")
