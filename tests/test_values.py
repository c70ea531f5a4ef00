"""Rendering values for people and JSON (`fluo_lang.values`)."""

from __future__ import annotations

import json

import pytest

from fluo_lang.values import dump_json, escape_json_text

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
    so `tail -f` of them obeyed them: valid JSON, yet an escape sequence or a line that reads backwards."""
    value = {"name\u202e": ["".join(TERMINAL_CONTROLS), "\x9b31mred é 中 \U0001f600 \x1b \n", "\udce9"]}
    text = dump_json(value, indent=indent)
    assert not any(c in text for c in [*TERMINAL_CONTROLS, "\udce9", "\x1b"]), ascii(text)
    assert "\\u009b" in text and "\\u202e" in text and "é 中 \U0001f600" in text  # the rest as it is
    assert json.loads(text) == value
    assert ("\n" in text) == (indent is not None)


def test_json_text_already_written_is_escaped_alike() -> None:
    raw = json.dumps({"m": "\x9b\u202e\u2066x"}, ensure_ascii=False)
    assert escape_json_text(raw) == '{"m": "\\u009b\\u202e\\u2066x"}' == dump_json({"m": "\x9b\u202e\u2066x"})
    assert escape_json_text(escape_json_text(raw)) == escape_json_text(raw)
