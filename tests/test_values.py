"""Rendering values for people and JSON (`fluo_lang.values`)."""

from __future__ import annotations

import json

import pytest

from fluo_lang.values import dump_json, escape_json_text, escape_string, one_line, printable, quoted

TERMINAL_CONTROLS = [chr(c) for c in range(0x7F, 0xA0)] + [
    "\u2028",
    "\u2029",
    "\u061c",
    "\u200e",
    "\u200f",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
]


@pytest.mark.parametrize("indent", [None, 2])
def test_json_holds_no_raw_terminal_control_and_keeps_its_value(indent: int | None) -> None:
    """Smalls: U+009B (C1 CSI) and U+202E (bidi override) in a span name were written raw to the JSON lines,
    so `tail -f` of them obeyed them: valid JSON, yet an escape sequence or a line that reads backwards. Half a
    surrogate pair (a file name's byte that is not UTF-8) is the text of its escape: a lone `"\\udce9"` is no
    Unicode (QA docs r05)."""
    value = {"name\u202e": ["".join(TERMINAL_CONTROLS), "\x9b31mred é 中 \U0001f600 \x1b \n", "\udce9"]}
    text = dump_json(value, indent=indent)
    assert not any(c in text for c in [*TERMINAL_CONTROLS, "\udce9", "\x1b"]), ascii(text)
    assert "\\u009b" in text and "\\u202e" in text and "é 中 \U0001f600" in text  # the rest as it is
    assert json.loads(text) == {**value, "name\u202e": [*value["name\u202e"][:2], "\\udce9"]}
    assert ("\n" in text) == (indent is not None)


def test_json_of_a_lone_surrogate_is_unicode() -> None:
    text = dump_json({"path": "r/n\udcff.fluo"})
    assert text == '{"path": "r/n\\\\udcff.fluo"}'
    assert json.dumps(json.loads(text), ensure_ascii=False).encode("utf-8")  # no lone surrogate to refuse


def test_json_text_already_written_is_escaped_alike() -> None:
    raw = json.dumps({"m": "\x9b\u202e\u2066x"}, ensure_ascii=False)
    assert escape_json_text(raw) == '{"m": "\\u009b\\u202e\\u2066x"}' == dump_json({"m": "\x9b\u202e\u2066x"})
    assert escape_json_text(escape_json_text(raw)) == escape_json_text(raw)


@pytest.mark.parametrize(
    ("text", "shown", "in_quotes"),
    [
        ("a\x1bb\x00", "a\\u001bb\\u0000", "'a\\u001bb\\u0000'"),
        ("\x85\u2028\u202e\u200b", "\\u0085\\u2028\\u202e\\u200b", "'\\u0085\\u2028\\u202e\\u200b'"),
        ("t\tn\n", "t\\tn\\n", "'t\\tn\\n'"),
        ("\U000e0001", "\\U000e0001", "'\\U000e0001'"),
        ("it's", "it's", '"it\'s"'),
        ("a\\x1b", "a\\x1b", "'a\\\\x1b'"),  # a backslash in the text, not an escape
        ("é", "é", "'é'"),
    ],
)
def test_names_are_escaped_one_way(text: str, shown: str, in_quotes: str) -> None:
    """QA: `fluo test` printed case names Python's way (`\\x1b`, `\\x85`) beside file lines and docs writing
    `\\u001b`: `printable` and `quoted` escape as `one_line` does."""
    assert printable(text) == shown
    assert quoted(text) == in_quotes


def test_printable_escapes_what_one_line_escapes_the_same_way() -> None:
    text = "".join(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, 0x202E, 0x2066])
    assert printable(text) == one_line(text)


def test_one_line_escapes_half_a_surrogate_pair() -> None:
    """A file name that is not UTF-8 (`n\\xff.fluo`, read as `n\\udcff.fluo`) was written raw: a raw byte on a
    stdout whose error handler is surrogateescape, a UnicodeEncodeError traceback on a strict one, `\\udcff` on
    stderr. It reads `\\udcff` everywhere now, as `fluo test`'s reports write it; a whole pair is a character."""
    assert one_line("n\udcff.fluo\x1b[2J\n") == "n\\udcff.fluo\\u001b[2J\\n"
    assert one_line("\ud800 \U0001f600") == "\\ud800 \U0001f600"


@pytest.mark.parametrize("ch", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e"])
def test_a_string_literal_escapes_characters_that_show_as_nothing(ch: str) -> None:
    """Security QA (r06): `fluo discover` wrote `'ad<U+200B>min'`, which reads as 'admin'. Escaped, the parser
    reads the literal back as the very text."""
    from fluo_lang.parser import parse

    written = escape_string(f"ad{ch}min", "'")
    assert written == f"ad\\u{ord(ch):04x}min"
    tree = parse(f"rule r {{ detect trace.has(name == '{written}') }}\n", "r.fluo")
    assert not tree.diagnostics
    assert repr(f"ad{ch}min") in repr(tree.file)
