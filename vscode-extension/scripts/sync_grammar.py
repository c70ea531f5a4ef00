"""Writes the extension's TextMate grammar from the language's own lists.

The words a highlighter must know (keywords, roots, methods, fields,
intrinsics, enum values, metadata keys, severities, duration units, operators)
come from `grammar/fluo.lark` through `fluo_lang.parser.keywords()` and from
the builtin registry, never from a copy kept here. Only how each kind of word
is scoped lives in this file. `tests/test_vscode_grammar_sync.py` fails when
`syntaxes/fluo.tmLanguage.json` differs from what this script writes.

    python vscode-extension/scripts/sync_grammar.py          # rewrite the grammar
    python vscode-extension/scripts/sync_grammar.py --check  # exit 1 if stale
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fluo_lang import builtins, parser, types
from fluo_lang.typecheck import META_KEYS, SEVERITIES

GRAMMAR_PATH = Path(__file__).resolve().parent.parent / "syntaxes" / "fluo.tmLanguage.json"

# How each keyword of the grammar is scoped. Operator words (`and`, `in`, ...)
# come from the registry's operators; every other keyword must be named here,
# so a keyword added to fluo.lark fails the sync test until it gets a scope.
KEYWORD_SCOPES: Mapping[str, frozenset[str]] = {
    "storage.type.rule.fluo": frozenset({"rule"}),
    "keyword.control.clause.fluo": frozenset({"expect", "detect", "when", "always", "never", "window"}),
    "constant.language.boolean.fluo": frozenset({"true", "false"}),
}
OPERATOR_WORD_SCOPE = "keyword.operator.word.fluo"

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
# Characters that may continue a word, a number or a duration (`µs` is a unit; `μs`, with the Greek
# letter mu, is an error the language names, so it is scoped as a bad duration).
UNIT_CHAR = r"[A-Za-zµμ]"
WORD_CHAR = r"[A-Za-z0-9_µμ]"
REGEX_SPECIAL = frozenset(".^$|?*+()[]{}\\")


class GrammarDrift(Exception):
    """The language gained or lost a word this script does not know how to scope."""


@dataclass(frozen=True)
class Vocabulary:
    """Every word list the grammar is made from."""

    keywords: frozenset[str]
    operator_words: frozenset[str]
    operator_symbols: frozenset[str]
    roots: frozenset[str]
    methods: frozenset[str]
    fields: frozenset[str]
    intrinsics: frozenset[str]
    enum_values: frozenset[str]
    meta_keys: frozenset[str]
    severities: frozenset[str]
    duration_units: frozenset[str]
    foreign_operators: frozenset[str]

    @classmethod
    def of_language(cls) -> Vocabulary:
        """The vocabulary of the installed `fluo_lang`."""
        symbols = [op.symbol for op in builtins.OPERATORS]
        return cls(
            keywords=parser.keywords(),
            operator_words=frozenset(w for s in symbols for w in s.split() if w.isalpha()),
            operator_symbols=frozenset(s for s in symbols if not any(c.isalpha() for c in s)),
            roots=frozenset(builtins.ROOTS),
            methods=frozenset(m.name for m in builtins.MEMBERS if m.kind == "method"),
            fields=frozenset(m.name for m in builtins.MEMBERS if m.kind == "field"),
            intrinsics=frozenset(builtins.SPAN_FIELD_NAMES),
            enum_values=frozenset(v for values in types.ENUMS.values() for v in values),
            meta_keys=frozenset(META_KEYS),
            severities=frozenset(SEVERITIES),
            duration_units=frozenset(parser.DURATION_UNITS),
            foreign_operators=frozenset(parser._OTHER_LANGUAGES),
        )


def keyword_scopes(vocab: Vocabulary) -> dict[str, frozenset[str]]:
    """Scope name -> the keywords it colours; every keyword lands in exactly one."""
    scopes = dict(KEYWORD_SCOPES)
    scopes[OPERATOR_WORD_SCOPE] = vocab.operator_words & vocab.keywords
    placed = frozenset().union(*scopes.values())
    unscoped = sorted(vocab.keywords - placed)
    if unscoped:
        raise GrammarDrift(
            f"keyword(s) {', '.join(unscoped)} in grammar/fluo.lark have no scope: "
            "add them to KEYWORD_SCOPES in vscode-extension/scripts/sync_grammar.py"
        )
    gone = sorted(placed - vocab.keywords)
    if gone:
        raise GrammarDrift(
            f"keyword(s) {', '.join(gone)} are no longer in grammar/fluo.lark: "
            "remove them from KEYWORD_SCOPES in vscode-extension/scripts/sync_grammar.py"
        )
    return scopes


def words(names: Iterable[str]) -> str:
    """A non-capturing alternation of `names`, longest first so a prefix never wins."""
    ordered = sorted(set(names), key=lambda n: (-len(n), n))
    return "(?:" + "|".join(ordered) + ")"


def symbols(names: Iterable[str]) -> str:
    """A non-capturing alternation of operator symbols, longest first, regex characters escaped."""
    ordered = sorted(set(names), key=lambda n: (-len(n), n))
    return "(?:" + "|".join("".join("\\" + c if c in REGEX_SPECIAL else c for c in n) for n in ordered) + ")"


def grammar(vocab: Vocabulary) -> dict[str, Any]:
    """The TextMate grammar for `source.fluo`, as JSON-ready data."""
    kw = keyword_scopes(vocab)
    comparison = {s for s in vocab.operator_symbols if any(c in s for c in "=<>")}
    arithmetic = vocab.operator_symbols - comparison
    free_roots = vocab.roots - vocab.keywords
    tags_end_words = kw["storage.type.rule.fluo"] | kw["keyword.control.clause.fluo"]
    not_member = r"(?<![\w.])"
    # Names that start a member chain (`trace.spans`, `parent.name`), not an attribute name (`db.name`).
    path_starts = vocab.roots | vocab.intrinsics | vocab.keywords | vocab.operator_words
    # One more `.part` of an attribute name: a name not called as a method.
    attribute_part = rf"\s*\.\s*{IDENT}\b(?!\s*\()"
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "name": "FLUO",
        "scopeName": "source.fluo",
        "fileTypes": ["fluo"],
        "comment": "Generated by vscode-extension/scripts/sync_grammar.py from grammar/fluo.lark and "
        "fluo_lang.builtins; edit that script, not this file.",
        "patterns": [
            {"include": f"#{name}"}
            for name in (
                "comments",
                "strings",
                "rule-declaration",
                "metadata",
                "durations",
                "numbers",
                "attribute-paths",
                "roots",
                "keywords",
                "members",
                "intrinsics",
                "enum-values",
                "operators",
                "punctuation",
                "identifiers",
            )
        ],
        "repository": {
            "comments": {
                "patterns": [
                    {
                        "name": "comment.line.double-slash.fluo",
                        "match": "(//).*$",
                        "captures": {"1": {"name": "punctuation.definition.comment.fluo"}},
                    }
                ]
            },
            "strings": {
                "patterns": [
                    _string("double", '"'),
                    _string("single", "'"),
                ]
            },
            "rule-declaration": {
                "patterns": [
                    {
                        "match": rf"\b({words(kw['storage.type.rule.fluo'])})\s+({IDENT})",
                        "name": "meta.rule.declaration.fluo",
                        "captures": {
                            "1": {"name": "storage.type.rule.fluo"},
                            "2": {"name": "entity.name.function.rule.fluo"},
                        },
                    }
                ]
            },
            "metadata": {
                "patterns": [
                    {
                        "comment": "severity: <level>",
                        "match": rf"\b(severity)\s*(:)\s*({words(vocab.severities)})(?!{WORD_CHAR})",
                        "captures": {
                            "1": {"name": "support.type.property-name.metadata.fluo"},
                            "2": {"name": "punctuation.separator.key-value.fluo"},
                            "3": {"name": "constant.language.severity.fluo"},
                        },
                    },
                    {
                        "comment": "tags: [word, ...], on one line or several; a list left open ends before a `}`, "
                        "a clause, `rule` or a `key:` starting a line, so it does not colour the rules after it",
                        "begin": r"\b(tags)\s*(:)\s*(\[)",
                        "beginCaptures": {
                            "1": {"name": "support.type.property-name.metadata.fluo"},
                            "2": {"name": "punctuation.separator.key-value.fluo"},
                            "3": {"name": "punctuation.section.brackets.begin.fluo"},
                        },
                        "end": rf"(\])|(?=\}}|\b{words(tags_end_words)}\b|^\s*{IDENT}\s*:)",
                        "endCaptures": {"1": {"name": "punctuation.section.brackets.end.fluo"}},
                        "patterns": [
                            {"include": "#comments"},
                            {"include": "#strings"},
                            {"match": IDENT, "name": "entity.name.tag.fluo"},
                            {"match": ",", "name": "punctuation.separator.comma.fluo"},
                        ],
                    },
                    {
                        "match": rf"\b({words(vocab.meta_keys)})\s*(:)",
                        "captures": {
                            "1": {"name": "support.type.property-name.metadata.fluo"},
                            "2": {"name": "punctuation.separator.key-value.fluo"},
                        },
                    },
                    {
                        "comment": "an unknown metadata key: the server says which keys exist",
                        "match": rf"\b({IDENT})\s*(:)",
                        "captures": {
                            "1": {"name": "variable.other.key.metadata.fluo"},
                            "2": {"name": "punctuation.separator.key-value.fluo"},
                        },
                    },
                ]
            },
            "durations": {
                "patterns": [
                    {
                        "match": rf"{not_member}([0-9]+(?:\.[0-9]+)?)({words(vocab.duration_units)})(?!{WORD_CHAR})",
                        "name": "constant.numeric.duration.fluo",
                        "captures": {"2": {"name": "keyword.other.unit.fluo"}},
                    },
                    {
                        "comment": "a number with an exponent glued to letters, like 1e3s: durations take no exponent",
                        "match": rf"{not_member}[0-9]+(?:\.[0-9]+)?[eE][+-]?[0-9]+{UNIT_CHAR}{WORD_CHAR}*",
                        "name": "invalid.illegal.duration.fluo",
                    },
                    {
                        "comment": "a number glued to letters that are not a unit, like 10min or 500μs (Greek mu)",
                        "match": rf"{not_member}[0-9]+(?:\.[0-9]+)?(?![eE][+-]?[0-9]){UNIT_CHAR}{WORD_CHAR}*",
                        "name": "invalid.illegal.duration.fluo",
                    },
                ]
            },
            "numbers": {
                "patterns": [
                    {
                        "match": rf"{not_member}[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?!{WORD_CHAR})",
                        "name": "constant.numeric.fluo",
                    }
                ]
            },
            "attribute-paths": {
                "comment": "a dotted attribute name, like db.name or http.response.status_code: it starts with a name "
                "that is no root, intrinsic or keyword, and its parts are attribute parts, not builtin fields "
                "(a method call after it, as in user.id.starts_with(...), is not a part)",
                "begin": rf"{not_member}(?!{words(path_starts)}\b)({IDENT})(?={attribute_part})",
                "beginCaptures": {"1": {"name": "variable.other.attribute.fluo"}},
                # Tried only right after a name (the begin's or a part's): from inside a run of spaces the
                # lookahead would rescan the rest of the run at every space, quadratic on a long line.
                "end": rf"(?<!\s)(?!{attribute_part})",
                "patterns": [
                    {
                        "match": rf"(\.)\s*({IDENT})\b",
                        "captures": {
                            "1": {"name": "punctuation.accessor.fluo"},
                            "2": {"name": "variable.other.property.fluo"},
                        },
                    }
                ],
            },
            "roots": {
                "patterns": [
                    {
                        "comment": "a root followed by a member: `window.spans` (where `window` is also a clause)",
                        "match": rf"{not_member}{words(vocab.roots)}(?=\s*\.)",
                        "name": "variable.language.root.fluo",
                    },
                    {
                        "match": rf"{not_member}{words(free_roots)}\b",
                        "name": "variable.language.root.fluo",
                    },
                ]
            },
            "keywords": {
                "patterns": [
                    {"match": rf"\b{words(kw[scope])}\b", "name": scope}
                    for scope in sorted(kw)  # one regex per scope, in a stable order
                ]
            },
            "members": {
                "patterns": [
                    {
                        "match": rf"(\.)\s*({words(vocab.methods)})\b(?=\s*\()",
                        "captures": {
                            "1": {"name": "punctuation.accessor.fluo"},
                            "2": {"name": "support.function.method.fluo"},
                        },
                    },
                    {
                        "comment": "an unknown method: the server suggests the nearest known one",
                        "match": rf"(\.)\s*({IDENT})(?=\s*\()",
                        "captures": {
                            "1": {"name": "punctuation.accessor.fluo"},
                            "2": {"name": "entity.name.function.method.fluo"},
                        },
                    },
                    {
                        "match": rf"(\.)\s*({words(vocab.fields)})\b",
                        "captures": {
                            "1": {"name": "punctuation.accessor.fluo"},
                            "2": {"name": "support.variable.property.fluo"},
                        },
                    },
                    {
                        "comment": "one part of a dotted attribute name, like http.response.status_code",
                        "match": rf"(\.)\s*({IDENT})",
                        "captures": {
                            "1": {"name": "punctuation.accessor.fluo"},
                            "2": {"name": "variable.other.property.fluo"},
                        },
                    },
                ]
            },
            "intrinsics": {
                "patterns": [
                    {
                        "match": rf"{not_member}{words(vocab.intrinsics)}\b(?!\s*\()",
                        "name": "support.variable.intrinsic.fluo",
                    }
                ]
            },
            "enum-values": {
                "patterns": [
                    {
                        "match": rf"{not_member}{words(vocab.enum_values)}\b(?!\s*[.(:])",
                        "name": "constant.language.enum.fluo",
                    }
                ]
            },
            "operators": {
                "patterns": [
                    {"match": symbols(comparison), "name": "keyword.operator.comparison.fluo"},
                    {"match": symbols(arithmetic), "name": "keyword.operator.arithmetic.fluo"},
                    {
                        "comment": "an operator of another language (&&, =~, =>, ...): an error that suggests FLUO's; "
                        "after FLUO's own, so `==` is not read as a stray `=`",
                        "match": symbols(vocab.foreign_operators),
                        "name": "invalid.illegal.operator.fluo",
                    },
                ]
            },
            "punctuation": {
                "patterns": [
                    {"match": r"\{", "name": "punctuation.section.block.begin.fluo"},
                    {"match": r"\}", "name": "punctuation.section.block.end.fluo"},
                    {"match": r"\(", "name": "punctuation.section.parens.begin.fluo"},
                    {"match": r"\)", "name": "punctuation.section.parens.end.fluo"},
                    {"match": r"\[", "name": "punctuation.section.brackets.begin.fluo"},
                    {"match": r"\]", "name": "punctuation.section.brackets.end.fluo"},
                    {"match": ",", "name": "punctuation.separator.comma.fluo"},
                    {"match": r"\.", "name": "punctuation.accessor.fluo"},
                ]
            },
            "identifiers": {
                "patterns": [
                    {
                        "comment": "any other bare name inside a predicate is a span attribute",
                        "match": rf"\b{IDENT}\b",
                        "name": "variable.other.attribute.fluo",
                    }
                ]
            },
        },
    }


def _string(kind: str, quote: str) -> dict[str, Any]:
    """A quoted string with backslash escapes that ends at its quote or, unterminated, at the line's end.

    The one-character escapes are the parser's own (`\\n`, `\\t`, ...); any other is invalid, as FLUO102 says.
    """
    simple_escapes = "".join("\\" + c if c in "\\]^-" else c for c in sorted(parser._ESCAPES))
    return {
        "name": f"string.quoted.{kind}.fluo",
        "begin": quote,
        "beginCaptures": {"0": {"name": "punctuation.definition.string.begin.fluo"}},
        "end": f"({quote})|$",
        "endCaptures": {"1": {"name": "punctuation.definition.string.end.fluo"}},
        "patterns": [
            {
                "comment": "a surrogate pair, one character",
                "match": r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}",
                "name": "constant.character.escape.fluo",
            },
            {
                "comment": "half a surrogate pair alone is no character (FLUO102)",
                "match": r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}",
                "name": "invalid.illegal.escape.fluo",
            },
            {"match": r"\\u[0-9a-fA-F]{4}", "name": "constant.character.escape.fluo"},
            {"match": rf"\\[{simple_escapes}]", "name": "constant.character.escape.fluo"},
            {
                "comment": "any other escape, \\q or \\u without four hex digits, is FLUO102",
                "match": r"\\.",
                "name": "invalid.illegal.escape.fluo",
            },
        ],
    }


def render(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    try:
        text = render(grammar(Vocabulary.of_language()))
    except GrammarDrift as exc:
        print(f"sync_grammar: {exc}", file=sys.stderr)
        return 1
    current = GRAMMAR_PATH.read_text(encoding="utf-8") if GRAMMAR_PATH.exists() else ""
    if "--check" in argv:
        if current != text:
            print(
                f"sync_grammar: {GRAMMAR_PATH.name} is stale: run python vscode-extension/scripts/sync_grammar.py",
                file=sys.stderr,
            )
            return 1
        return 0
    if current != text:
        GRAMMAR_PATH.write_text(text, encoding="utf-8")
        print(f"sync_grammar: wrote {GRAMMAR_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
