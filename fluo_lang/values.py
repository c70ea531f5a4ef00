"""Rendering runtime values for people and JSON: durations, timestamps, lists."""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from math import isfinite
from typing import Any

_UNITS = (
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
)


ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


NS_LIMIT = 1 << 63
"""Integers and durations are 64-bit, as in OTLP (durations count nanoseconds): a result beyond one is missing."""
TIMESTAMP_LIMIT = 1 << 64
"""Timestamps reach OTLP's unsigned 64 bits of nanoseconds since the Unix epoch (to the year 2554): a time
computed at or past this limit is missing. One computed before the epoch is kept down to -2^63 ns, as a duration
is (`start - 1s` of a span of a hand-written trace that starts at 0 still compares)."""


MAX_STRING_CHARS = 65_536
"""The longest string `+` makes: a longer join is missing, so neither memory nor the time to copy grows with
how often a rule joins strings that senders choose (a balanced tree of `name + name` doubles them each level)."""


def join(a: str, b: str) -> str | None:
    """`a + b`, or None (missing) when it would be longer than `MAX_STRING_CHARS` (nothing is copied then)."""
    return a + b if len(a) + len(b) <= MAX_STRING_CHARS else None


def in_int64(v: int) -> bool:
    """Whether an integer result fits 64 bits; one that does not is missing, as an overflowing float is."""
    return -NS_LIMIT <= v < NS_LIMIT


def negate(v: Any) -> Any:
    """`-v` for a number, None (missing) for anything else and for `-(-2**63)`, which is past 64 bits."""
    if isinstance(v, float):
        return -v
    return -v if isinstance(v, int) and not isinstance(v, bool) and v != -NS_LIMIT else None


def arith(op: Callable[[Any, Any], Any], to_int: bool, a: Any, b: Any, timestamp: bool = False) -> Any:
    """`a op b`, or None (missing) for a missing operand, a division by zero, or a result that is no number.

    A float result that overflows or is not a number (`1e308 * 10`, `0.0 * x` for
    an infinite `x`) is missing, as a division by zero is; so is an integer past 64
    bits, a duration past 64 bits of nanoseconds (about 292 years), a `timestamp`
    past OTLP's unsigned 64 bits of them (`TIMESTAMP_LIMIT`) or before -2^63, and a string past
    `MAX_STRING_CHARS` characters.
    """
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return None
    if not (isinstance(a, int | float) and isinstance(b, int | float)):
        # only numbers, and strings joined by `+`: an attribute's string or list times a duration
        # would be Python's repetition (a string a billion times long), not missing
        return join(a, b) if op is operator.add and isinstance(a, str) and isinstance(b, str) else None
    try:
        v = op(a, b)
    except (ZeroDivisionError, OverflowError):  # numbers only by now: no TypeError
        return None
    if isinstance(v, float):
        if not isfinite(v):
            return None
        if not to_int:
            return v
        v = round(v)
    if timestamp:
        return v if -NS_LIMIT <= v < TIMESTAMP_LIMIT else None
    return v if -NS_LIMIT <= v < NS_LIMIT else None


class HexBytes(str):
    """An OTLP bytes attribute value (`bytesValue`, base64 in OTLP/JSON), which rules read as its lowercase hex
    text (`'deadbeef'`); what writes OTLP again (`otlp.spans_to_json`, the fixtures `fluo discover --tests`
    writes) writes it as bytes, not as a string."""

    __slots__ = ()


_PAST_C0 = r"\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
"""DEL, the C1 controls, the line separators and the bidirectional controls, as a character class's inside."""
_CONTROL = re.compile(rf"[\x00-\x1f{_PAST_C0}\ud800-\udfff]")
"""Control characters, line separators, and the bidirectional controls that reorder how a line shows
(a U+202E in a span name would make a signal's text read backwards: "Trojan Source"); and half a surrogate pair,
the byte of a file name that is not UTF-8 (`n\\xff.fluo` is read as `n\\udcff.fluo`), which a UTF-8 stream
writes raw, or not at all, by its error handler (stderr's `\\udcff`, stdout's raw byte or an exception)."""
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """`text` printable as one line: control characters, line separators, bidirectional controls and halves of
    surrogate pairs escaped (`\\n`, `\\t`, `\\u001b`, `\\u202e`, `\\udcff`)."""
    return _CONTROL.sub(lambda m: _escape(m[0]), text)


def _escape(ch: str) -> str:
    code = ord(ch)
    return _NAMED_ESCAPES.get(ch) or (f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")


def printable(text: str) -> str:
    """`text` with each character `str.isprintable` rejects escaped as `one_line` escapes (`\\n`, `\\u001b`,
    `\\u0085`, `\\u200b`): a name (a test case's, a file's) as the reports print it bare, never a raw control."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


_REPR_ESCAPE = re.compile(r"\\(\\|x([0-9a-f]{2}))")


def quoted(text: str) -> str:
    """`text` quoted as `repr` quotes it, but its `\\xHH` escapes written `\\u00HH`, as `printable` and `one_line`
    write them: a name in a message (`case 'a\\u001bb'`)."""
    return _REPR_ESCAPE.sub(lambda m: "\\\\" if m[1] == "\\" else f"\\u00{m[2]}", repr(text))


_JSON_UNSAFE = re.compile(rf"[{_PAST_C0}\ud800-\udfff]")
"""What JSON text may hold raw but a terminal acts on or a reader is fooled by: DEL and the C1 controls (U+009B
starts an escape sequence, as ESC `[` does), the line separators and the bidirectional controls (`one_line`'s
set, less the C0 controls, which `json.dumps` escapes itself), and half a surrogate pair, which UTF-8 cannot hold."""


_SURROGATE = re.compile("[\ud800-\udfff]")
"""Half a surrogate pair: in FLUO's text, the byte of a file name that is not UTF-8 (`n\\xff.fluo` is read as
`n\\udcff.fluo`); no Unicode text (UTF-8, a JSON reader's) can hold it."""


def escape_surrogates(text: str) -> str:
    """`text` with each half of a surrogate pair written as its escape, the six characters `\\udcff`, as `one_line`
    shows it: a file name's byte that is not UTF-8, in text that must stay Unicode (a report, XML, YAML)."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def dump_json(value: Any, *, indent: int | None = None) -> str:
    """`value` as the JSON FLUO writes for people and programs alike (`fluo check --format json` and `sarif`,
    `fluo eval --format jsonl`, the `--jsonl` sink, `fluo signals`, `fluo test` and `fluo discover`'s JSON):
    other non-ASCII characters as they are, the characters of `_JSON_UNSAFE` as `\\uXXXX` escapes
    (`escape_json_text`), so a `tail -f` shows what a span name holds rather than obeying it; but half a surrogate
    pair (a file name's byte that is not UTF-8) as the text of its escape (`escape_surrogates`: the string holds
    `\\udcff`, written `"\\\\udcff"`), as a lone `"\\udcff"` is no Unicode: a strict reader refuses it, others make
    it U+FFFD."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    text = _SURROGATE.sub(lambda m: f"\\\\u{ord(m[0]):04x}", text)  # in a JSON string: a backslash, `u`, digits
    return escape_json_text(text)


def escape_json_text(text: str) -> str:
    """JSON text with each character of `_JSON_UNSAFE` written as its `\\uXXXX` escape: still JSON, and of the
    same value, as such a character can only be inside a string."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


_STRING_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}
INVISIBLE = "\u00ad\u180e\u200b-\u200d\u2060-\u2064\ufeff"
"""Characters that show as nothing, as a character class's inside: the soft hyphen, the Mongolian vowel separator,
the zero-width space, non-joiner and joiner, the word joiner and invisible operators, the zero-width no-break space
(`'ad\u200bmin'` shows as `'admin'` and is not equal to it)."""
_MUST_ESCAPE = re.compile(r"[\\" + _CONTROL.pattern[1:-1] + INVISIBLE + r"]")
"""The backslash, `_CONTROL`'s characters (a string literal in a rule file read for review must not show
other than it says: "Trojan Source"; half a surrogate pair, which UTF-8 cannot hold, FLUO102 names), and the
`INVISIBLE` ones."""


def escape_string(value: str, quote: str) -> str:
    """`value` as the inside of a string literal in `quote`s: the backslash, the quote and line breaks
    escaped (a string ends at a line break), and the other characters of `_MUST_ESCAPE` too, so it reads
    as what it holds (`\\u202e`, not a U+202E that turns the rest of the line around)."""
    escaped = _MUST_ESCAPE.sub(lambda m: _STRING_ESCAPES.get(m.group(0), f"\\u{ord(m.group(0)):04x}"), value)
    return escaped.replace(quote, "\\" + quote)


def string_literal(value: str) -> str:
    """A double-quoted string literal whose value is `value` (an attribute key in a fix: `attributes["k"]`)."""
    return '"' + escape_string(value, '"') + '"'


_LONE_CR = re.compile(r"\r(?!\n)")


def lone_crs_as_lf(text: str) -> str:
    """`text` with each CR not followed by LF (old Mac line ends) as LF: one line end for another,
    so lines count as an editor shows them and every offset stays where it was."""
    return _LONE_CR.sub("\n", text) if "\r" in text else text


def format_duration(ns: int | float) -> str:
    """The shortest exact form in FLUO syntax: 250ms, 1.5s, 2m, 61s, 1234.567us, 17ns.

    The largest unit up to `h` (the parser reads `d`, but the spec names no unit
    above `h`: a day is `24h`) that states a whole number of nanoseconds exactly with at
    most three decimals, so a signal never shows a bound and a value that differ
    as equal (100.0004ms is not `100ms`). A fractional count (an `avg`) is
    rounded to three decimals of its largest unit.
    """
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if isinstance(ns, float) and ns.is_integer():
        ns = int(ns)
    for unit, size in _UNITS:
        if isinstance(ns, int):
            step = max(size // 1000, 1)
            if ns >= size and ns % step == 0:  # integer arithmetic: exact past 2**53 too
                whole, part = divmod(ns, size)
                text = f"{whole}.{part // step:03d}".rstrip("0").rstrip(".") if size >= 1000 else str(whole)
                return f"{sign}{text}{unit}"
        elif ns >= size:
            text = f"{ns / size:.3f}".rstrip("0").rstrip(".")
            return f"{sign}{text}{unit}"
    return f"{sign}{round(ns)}ns"


def format_timestamp(ns: int) -> str:
    """RFC 3339 in UTC, exact and always to the nanosecond (`2026-01-01T00:00:00.250000000Z`): one
    width, so a time 1ns past another never reads as equal to it and times sort as text as they do in time."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return f"{_format_second(seconds)}.{rest:09d}Z"


@lru_cache(maxsize=4096)
def _format_second(seconds: int) -> str:
    """The date and time of one second (kept: signals come in bursts from the same seconds).

    The date comes from a cache of days and the time of day by arithmetic: a third of
    the cost of `strftime` for a second not seen before.
    """
    days, second_of_day = divmod(seconds, 86_400)
    hours, rest = divmod(second_of_day, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{_format_day(days)}T{hours:02d}:{minutes:02d}:{secs:02d}"


@lru_cache(maxsize=1024)
def _format_day(days: int) -> str:
    """The date of a day since the Unix epoch; signals of a stream mostly fall on few days."""
    return datetime.fromtimestamp(days * 86_400, tz=UTC).strftime("%Y-%m-%d")


def to_json(value: Any, type_name: str | None = None) -> Any:
    """A JSON-friendly value; durations and timestamps become their readable text.

    A float stays the float it is: JSON writes the shortest text that reads back as
    it (`4e-07`, `0.30000000000000004`), so a value and a bound that differ never
    read as equal.
    """
    if value is None:
        return None
    if type_name == "duration" and isinstance(value, int | float) and not isinstance(value, bool) and isfinite(value):
        return format_duration(value)
    if type_name == "timestamp" and isinstance(value, int) and not isinstance(value, bool):
        return format_timestamp(value)
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not isfinite(value):  # JSON has no NaN or infinity: their names, as protobuf's JSON mapping writes them
            return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
        return value
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return str(value)
