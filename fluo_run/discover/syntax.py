"""FLUO source text for discovered facts: literals, span predicates, readable bounds.

Everything written here must parse with `fluo_lang/fluo.lark` and mean exactly
what the miner measured, so literals are escaped, attribute keys that are not
plain dotted names are read through `attributes["..."]`, and durations are
written in a unit that the parser reads back to the same nanoseconds.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from typing import Any

from fluo_lang.api import analyze
from fluo_lang.builtins import ROOTS, SPAN_FIELD_NAMES
from fluo_lang.parser import DURATION_UNITS, keywords, without_accents
from fluo_lang.values import escape_string

from .corpus import Op

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SURROGATE = re.compile("[\ud800-\udfff]")
"""Half a surrogate pair: JSON text can hold one, a FLUO string (FLUO102) or a YAML file cannot."""
_UNITS = ("h", "m", "s", "ms", "us", "ns")
_STEPS = (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8)
_MINUTE, _HOUR = DURATION_UNITS["m"], DURATION_UNITS["h"]
_NS_LIMIT = 1 << 63
"""A duration literal is at most 2^63 - 1 nanoseconds."""


def writable(text: str) -> bool:
    """Whether a FLUO string can hold `text`: not when it has half a surrogate pair (JSON text can, FLUO102)."""
    return SURROGATE.search(text) is None


def quote(text: str, mark: str = "'") -> str:
    """A FLUO string literal (quoted with `mark`, ' or ") whose value is exactly `text`, when `writable(text)`:
    control characters, line separators and bidirectional controls as escapes (`escape_string`), so a span name
    cannot make a discovered rule show other than it says."""
    return mark + escape_string(text, mark) + mark


def literal(value: Any) -> str:
    """A FLUO literal for an attribute value (string, number or bool)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, int):
        return str(value) if value >= 0 else f"-{-value}"
    text = repr(abs(value))
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exp = text.split("e")
        text = f"{mantissa}.0e{exp}"
    return text if value >= 0 else f"-{text}"


def op_pred(op: Op, unique_name: bool, prefix: str = "") -> str:
    """The predicate selecting an operation's spans (`prefix` is e.g. `parent.`)."""
    if unique_name:
        return f"{prefix}name == {quote(op.name)}"
    return f"{prefix}service == {quote(op.service)} and {prefix}name == {quote(op.name)}"


def service_pred(service: str, prefix: str = "") -> str:
    return f"{prefix}service == {quote(service)}"


@cache
def attribute(key: str) -> str:
    """How a predicate reads a span attribute: bare `http.method` when that is safe.

    Safe: plain dotted names that are not a field, root or keyword, and that the
    checker reads without a warning (`servce`, one typo from `service`: FLUO205;
    `null`, `True`, `span.kind`: FLUO207), so a discovered rule checks clean.
    """
    parts = key.split(".")
    kws = keywords()
    plain = all(_IDENT.fullmatch(p) and p not in kws for p in parts)
    head = parts[0]
    reserved = head in SPAN_FIELD_NAMES or head in ROOTS or head in ("attributes", "resource")
    if plain and not reserved and _reads_clean(key):
        return key
    return f"attributes[{quote(key)}]"


@cache
def _reads_clean(key: str) -> bool:
    """Whether the checker reads `key` bare in a predicate with no diagnostic at all.

    Alone, not compared: FLUO205 keeps quiet about `servce` compared with what `service` could never
    equal (`servce == 1`), and a discovered rule may compare it with a string."""
    return not analyze([("<key>", f"trace.spans.all({key})")]).diagnostics


def duration_text(ns: int) -> str:
    """`ns` in the largest unit that writes it exactly with at most one decimal (`250ms`, `1.5s`, `17ns`)."""
    for unit in _UNITS:
        size = DURATION_UNITS[unit]
        if ns < size:
            continue
        if ns % size == 0:
            return f"{ns // size}{unit}"
        if (ns * 10) % size == 0:
            whole, frac = divmod(ns * 10 // size, 10)
            return f"{whole}.{frac}{unit}"
    return f"{ns}ns"


def readable_ceiling(ns: int) -> int:
    """The smallest round duration at or above `ns`: 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten
    of nanoseconds up to a minute, of minutes up to an hour, of hours beyond (`7m` becomes `8m`, `26h` `30h`:
    the language has no compound durations such as `2h13m`, and `8000s` is not read at a glance). A week is
    `200h`: the parser reads `d`, but the language's required surface (its `h` is the largest unit) does not."""
    if ns <= 1:
        return max(ns, 0)
    unit = 1 if ns <= _MINUTE else _MINUTE if ns <= _HOUR else _HOUR
    scale = unit
    while True:
        for step in _STEPS:
            v = round(step * scale)
            if v >= ns and v == step * scale:
                return v if v < _NS_LIMIT else ns
        scale *= 10


def _folded(text: str) -> str:
    """`text` lowercased, its accents dropped (`Règles` is `regles`); letters with no ASCII form stay."""
    return without_accents(text.lower())


def slug(text: str) -> str:
    """Lowercase ASCII words joined by `_`, usable inside a rule id (`café-Ünï` is `cafe_uni`)."""
    return re.sub(r"[^a-z0-9]+", "_", _folded(text)).strip("_")


def id_prefix(stem: str) -> str:
    """The word every rule id in the file `<stem>.fluo` starts with: its slug (`my_shop`, `regles` for
    `règles`), followed by a short hash of the stem when letters with no ASCII form were lost
    (`shop_日本` is `shop_<hash>`), or `rules_<hash>` when nothing is left (`прод`, `日本`, `_`), so
    that differently named files get different ids; `rules_` also goes before a slug that starts with a digit
    (`rules_123` for `123.fluo`: an id cannot start with one). Rule ids are ASCII identifiers (`IDENT`)."""
    if not stem:
        return ""
    word = slug(stem)
    if not word:
        return f"rules_{digest(stem)}"
    if _lost(stem):
        word = f"{word}_{digest(stem)}"
    return f"rules_{word}" if word[0].isdigit() else word


def _lost(text: str) -> bool:
    """Whether `slug(text)` lost letters or digits that have no ASCII form."""
    return any(ch.isalnum() and not ch.isascii() for ch in _folded(text))


def digest(text: str) -> str:
    """Six hex digits of the SHA-256 of `text`: the short hash ids carry where a name alone cannot tell."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:6]


def name_slug(text: str, noun: str) -> str:
    """A service or operation name in a rule id: its slug, followed by a short hash of the name when letters
    with no ASCII form were lost (`платёж_v2` is `v2_<hash>`), or `<noun>_<hash>` when nothing is left
    (`фронтенд` is `service_<hash>`): an id derived from the name alone, so that it names the same
    rule whatever else the corpus holds (numbering such names in order moved ids between runs)."""
    word = slug(text)
    if not _lost(text):
        return word
    return f"{word}_{digest(text)}" if word else f"{noun}_{digest(text)}"


UNNAMED = "spans without service.name"
"""How descriptions name the spans of no service: their service is '' (not `'' span`)."""


def service_label(service: str) -> str:
    """A service as descriptions name it: `'auth'`, or what spans without `service.name` are."""
    return repr(service) if service else UNNAMED


def service_spans(service: str, n: int = 1) -> str:
    """`'auth' span` (`spans` past one), or `span without service.name` for service ''."""
    noun = "span" if n == 1 else "spans"
    return f"{service!r} {noun}" if service else f"{noun} without service.name"


def service_slug(service: str) -> str:
    """A service in a rule id: `auth`; `unnamed_service` for spans without `service.name`."""
    return name_slug(service, "service") or ("service" if service else "unnamed_service")


def op_slug(op: Op) -> str:
    """`auth_login` for login in auth; the service is not repeated when the name starts with it."""
    service, name = name_slug(op.service, "service"), name_slug(op.name, "op")
    if not service or name == service or name.startswith(service + "_"):
        return name or service or "op"
    return f"{service}_{name}" if name else service


def article(name: str) -> str:
    """`a` or `an` before a name, by its first letter (`an 'inventory.reserve' span`, `a 'cart.get' span`)."""
    first = next((ch for ch in name if ch.isalnum()), "")
    return "an" if first.lower() in ("a", "e", "i", "o", "u") else "a"
