"""The VS Code extension knows exactly the words the language has.

Keywords come from `grammar/fluo.lark` (through `parser.keywords()`); methods,
fields, intrinsics, enum values, metadata keys, severities and units come from
the builtin registry. The grammar is written by
`vscode-extension/scripts/sync_grammar.py`; these tests fail when the file is
stale or when the language gains a word the script cannot place. The snippets
are checked by expanding them and running the real checker on the result.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fluo_lang import builtins, parser, types
from fluo_lang.api import analyze
from fluo_lang.typecheck import META_KEYS, SEVERITIES

EXTENSION = Path(__file__).resolve().parent.parent / "vscode-extension"
GRAMMAR_FILE = EXTENSION / "syntaxes" / "fluo.tmLanguage.json"
SNIPPETS_FILE = EXTENSION / "snippets" / "fluo.code-snippets"


def _load_sync_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_grammar", EXTENSION / "scripts" / "sync_grammar.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


sync = _load_sync_script()


def committed_grammar() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GRAMMAR_FILE.read_text(encoding="utf-8"))
    return data


def patterns_with(scope: str, grammar: dict[str, Any]) -> list[str]:
    """Every `match` regex in the grammar whose pattern or capture is named `scope`."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            names = {node.get("name")} | {c.get("name") for c in node.get("captures", {}).values()}
            if scope in names and "match" in node:
                found.append(node["match"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(grammar)
    return found


def alternation_words(regex: str) -> set[str]:
    """The words of the first `(?:a|b|c)` group of plain words in `regex`."""
    for group in re.findall(r"\(\?:([^()]*)\)", regex):
        options = group.split("|")
        if all(re.fullmatch(r"[A-Za-z_µ]+", o) for o in options):
            return set(options)
    raise AssertionError(f"no word alternation in {regex!r}")


def test_committed_grammar_is_what_the_script_writes() -> None:
    expected = sync.render(sync.grammar(sync.Vocabulary.of_language()))
    assert GRAMMAR_FILE.read_text(encoding="utf-8") == expected, (
        "vscode-extension/syntaxes/fluo.tmLanguage.json is stale: run python vscode-extension/scripts/sync_grammar.py"
    )


def test_every_keyword_of_the_lark_grammar_is_highlighted_once() -> None:
    grammar = committed_grammar()
    scopes = [
        "storage.type.rule.fluo",
        "keyword.control.clause.fluo",
        "keyword.operator.word.fluo",
        "constant.language.boolean.fluo",
    ]
    seen: list[str] = []
    for scope in scopes:
        regexes = [r for r in patterns_with(scope, grammar) if r.startswith(r"\b(?:")]
        assert len(regexes) == 1, scope
        seen.extend(alternation_words(regexes[0]))
    assert sorted(seen) == sorted(parser.keywords())


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("support.function.method.fluo", {m.name for m in builtins.MEMBERS if m.kind == "method"}),
        ("support.variable.property.fluo", {m.name for m in builtins.MEMBERS if m.kind == "field"}),
        ("support.variable.intrinsic.fluo", set(builtins.SPAN_FIELD_NAMES)),
        ("constant.language.enum.fluo", {v for values in types.ENUMS.values() for v in values}),
        ("constant.language.severity.fluo", set(SEVERITIES)),
        ("keyword.other.unit.fluo", set(parser.DURATION_UNITS)),
    ],
)
def test_registry_words_are_highlighted(scope: str, expected: set[str]) -> None:
    regexes = patterns_with(scope, committed_grammar())
    assert regexes, f"no pattern has scope {scope}"
    assert alternation_words(regexes[-1]) == expected


def test_metadata_keys_and_roots_come_from_the_checker() -> None:
    grammar = committed_grammar()
    keys = [alternation_words(r) for r in patterns_with("support.type.property-name.metadata.fluo", grammar)]
    assert set(META_KEYS) in keys
    roots = patterns_with("variable.language.root.fluo", grammar)
    assert set(builtins.ROOTS) in [alternation_words(r) for r in roots]


def test_a_new_keyword_without_a_scope_is_drift() -> None:
    vocab = replace(sync.Vocabulary.of_language(), keywords=parser.keywords() | {"import"})
    with pytest.raises(sync.GrammarDrift, match="import"):
        sync.grammar(vocab)


def test_a_removed_keyword_is_drift() -> None:
    vocab = replace(sync.Vocabulary.of_language(), keywords=parser.keywords() - {"never"})
    with pytest.raises(sync.GrammarDrift, match="never"):
        sync.grammar(vocab)


def test_a_new_method_reaches_the_grammar() -> None:
    vocab = sync.Vocabulary.of_language()
    grown = replace(vocab, methods=vocab.methods | {"percentile"})
    regexes = patterns_with("support.function.method.fluo", sync.grammar(grown))
    assert "percentile" in alternation_words(regexes[0])
    assert sync.render(sync.grammar(grown)) != GRAMMAR_FILE.read_text(encoding="utf-8")


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "fluo.tmLanguage.json"
    stale.write_text("{}\n", encoding="utf-8")
    monkeypatch.setattr(sync, "GRAMMAR_PATH", stale)
    assert sync.main(["--check"]) == 1
    assert sync.main([]) == 0
    assert sync.main(["--check"]) == 0
    assert stale.read_text(encoding="utf-8") == GRAMMAR_FILE.read_text(encoding="utf-8")


def snippets() -> dict[str, str]:
    data: dict[str, dict[str, Any]] = json.loads(SNIPPETS_FILE.read_text(encoding="utf-8"))
    return {name: "\n".join(entry["body"]) for name, entry in data.items()}


def expand(body: str) -> str:
    """The text a snippet inserts when every placeholder keeps its default (the first choice)."""
    previous = None
    while previous != body:
        previous = body
        body = re.sub(r"\$\{\d+:([^${}]*)\}", r"\1", body)
    body = re.sub(r"\$\{\d+\|([^|,]*)[^|]*\|\}", r"\1", body)
    return re.sub(r"\$\d+", "", body)


def test_expand_fills_nested_placeholders() -> None:
    assert expand("a ${1:b ${2:c}} ${3|x,y|}$0") == "a b c x"


@pytest.mark.parametrize("name", sorted(snippets()))
def test_snippet_expands_to_a_rule_the_checker_accepts(name: str) -> None:
    text = expand(snippets()[name])
    analysis = analyze([("snippet.fluo", text)])
    assert not analysis.has_errors, [d.format() for d in analysis.diagnostics]
    assert analysis.rules


def test_snippet_severity_choices_are_the_checkers_severities() -> None:
    choices = [c for body in snippets().values() for c in re.findall(r"\$\{\d+\|([^|]*)\|\}", body)]
    assert choices
    for choice in choices:
        assert set(choice.split(",")) == set(SEVERITIES)


def _escape_scope(escape: str) -> str | None:
    """The scope the grammar's string patterns give `escape` (a backslash and what follows), first match wins."""
    patterns = committed_grammar()["repository"]["strings"]["patterns"][0]["patterns"]
    for p in patterns:
        m = re.match(p["match"], escape)
        if m is not None and m.end() == len(escape):
            return str(p["name"])
    return None


@pytest.mark.parametrize("char", [chr(c) for c in range(0x21, 0x7F)])
def test_an_escape_is_coloured_valid_exactly_when_the_parser_accepts_it(char: str) -> None:
    escape = "\\" + char + ("00e9" if char == "u" else "")
    _, bad = parser._unescape(escape)
    expected = "invalid.illegal.escape.fluo" if bad else "constant.character.escape.fluo"
    assert _escape_scope(escape) == expected, escape


@pytest.mark.parametrize("escape", ["\\u00e", "\\uD83D", "\\uDE00"])
def test_a_short_or_half_unicode_escape_is_invalid(escape: str) -> None:
    assert parser._unescape(escape)[1]
    assert _escape_scope(escape[:6] if len(escape) >= 6 else escape[:2]) == "invalid.illegal.escape.fluo"


@pytest.mark.parametrize("token", ["1e3s", "1.5e3ms", "2E-1m"])
def test_an_exponent_glued_to_a_unit_is_an_invalid_duration(token: str) -> None:
    [regex] = [
        p["match"]
        for p in committed_grammar()["repository"]["durations"]["patterns"]
        if p["name"] == "invalid.illegal.duration.fluo" and "exponent" in p.get("comment", "")
    ]
    assert re.fullmatch(regex.replace("(?<![\\w.])", ""), token)
    assert analyze([("d.fluo", f"rule a {{\n  window {token}\n  expect window.spans.count() < 5\n}}\n")]).has_errors


def test_the_word_pattern_keeps_member_chains_from_the_roots_apart() -> None:
    """language-configuration.json joins a dotted attribute name into one word, except after a root."""
    config = json.loads((EXTENSION / "language-configuration.json").read_text(encoding="utf-8"))
    assert alternation_words(config["wordPattern"]) == set(builtins.ROOTS)


def test_an_attribute_path_ends_only_where_a_name_ended() -> None:
    """The end of `db.name` looks past spaces for another `.part` only right after a name, never from inside the
    spaces: tried at every space of a long run, that lookahead made `x<16,000 spaces>.y` take seconds (quadratic)."""
    end = re.compile(committed_grammar()["repository"]["attribute-paths"]["end"])
    line = "x" + " " * 8 + "== 1"
    assert [pos for pos in range(len(line) + 1) if end.match(line, pos) and line[pos - 1].isspace()] == []
    assert end.match(line, 1)
    assert not end.match("x   .y", 1)
    assert not end.match("x   .y", 3)
    assert end.match("user.id .starts_with('u')", 7)


@pytest.mark.parametrize("operator", sorted(parser._OTHER_LANGUAGES))
def test_an_operator_of_another_language_is_marked_invalid(operator: str) -> None:
    """`&&`, `=~`, `=>`, ...: the checker refuses each (suggesting FLUO's), and the grammar marks each."""
    [regex] = patterns_with("invalid.illegal.operator.fluo", committed_grammar())
    assert re.fullmatch(regex, operator)
    source = f'rule a {{\n  expect trace.spans.any(name {operator} "x")\n}}\n'
    assert analyze([("o.fluo", source)]).has_errors
