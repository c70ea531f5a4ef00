"""The FLUO text discovery writes: literals mean exactly their value, bounds read back to the same nanoseconds."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluo_lang.api import analyze, compile_program
from fluo_lang.trace import Span, Trace
from fluo_run.discover.corpus import Op
from fluo_run.discover.syntax import (
    attribute,
    duration_text,
    literal,
    op_slug,
    quote,
    readable_ceiling,
    service_slug,
)

T0 = 1_767_225_600 * 10**9


def holds(expr: str, **span: Any) -> bool:
    analysis = analyze([("t.fluo", f"rule r {{ expect {expr} }}")])
    assert not analysis.diagnostics, [d.format() for d in analysis.diagnostics]
    fields: dict[str, Any] = {"trace_id": b"\1" * 16, "span_id": b"\2" * 8, "start": T0, "end": T0, **span}
    s = Span(**fields)
    return not compile_program(analysis).evaluate_trace(Trace(s.trace_id, [s]))


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=12))
def test_quoted_strings_mean_exactly_their_text(text: str) -> None:
    assert holds(f"trace.has(name == {quote(text)})", name=text)
    assert not holds(f"trace.has(name == {quote(text + 'x')})", name=text)
    assert holds(f"trace.has(name == {quote(text, chr(34))})", name=text)


@pytest.mark.parametrize("ch", ["\u202e", "\u2066", "\u200f", "\u061c", "\x9b", "\x85", "\u2028", "\u2029", "\x1b"])
def test_quoted_strings_write_controls_as_escapes(ch: str) -> None:
    """A bidirectional control, a C1 control or a line separator from a span name was written raw: a
    discovered rule read for review could show other than it says (Trojan Source)."""
    text = f"GET /{ch}users"
    for mark in ("'", '"'):
        written = quote(text, mark)
        assert written == f"{mark}GET /\\u{ord(ch):04x}users{mark}"
        assert holds(f"trace.has(name == {written})", name=text)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 10**13))
def test_duration_text_reads_back_exactly(ns: int) -> None:
    text = duration_text(ns)
    assert holds(f"trace.spans.all(duration <= {text})", end=T0 + ns)
    assert not holds(f"trace.spans.all(duration <= {text})", end=T0 + ns + 1)


@pytest.mark.parametrize(
    ("ns", "ceiling", "text"),
    [
        (237_000_000, 250_000_000, "250ms"),
        (1_700_000_000, 2_000_000_000, "2s"),
        (1_000, 1_000, "1us"),
        (1_001, 1_500, "1.5us"),
        (59_000_000_000, 60_000_000_000, "1m"),
        (7, 8, "8ns"),
        # past a minute, in minutes and hours: no compound durations (`2h13m`) in the language
        (61 * 10**9, 90 * 10**9, "1.5m"),
        (7 * 60 * 10**9, 8 * 60 * 10**9, "8m"),
        (500 * 10**9, 600 * 10**9, "10m"),
        (2 * 3600 * 10**9 + 1, 9000 * 10**9, "2.5h"),
        (26 * 3600 * 10**9, 30 * 3600 * 10**9, "30h"),
        # a week: LANGUAGE.md names no unit above `h`, so no `d` although the parser reads it
        (7 * 24 * 3600 * 10**9, 200 * 3600 * 10**9, "200h"),
        (2**63 - 5, 2**63 - 5, "9223372036854775803ns"),  # no round bound fits in a literal
    ],
)
def test_bounds_round_up_to_readable_durations(ns: int, ceiling: int, text: str) -> None:
    assert readable_ceiling(ns) == ceiling
    assert duration_text(ceiling) == text


@given(st.integers(1, 10**15))
def test_readable_ceiling_is_close_above(ns: int) -> None:
    c = readable_ceiling(ns)
    assert ns <= c <= 1.5 * ns


@pytest.mark.parametrize(
    ("key", "written"),
    [
        ("http.method", "http.method"),
        ("amount", "amount"),
        ("status", "attributes['status']"),
        ("servce", "attributes['servce']"),  # one typo from `service`: bare would warn
        ("in.x", "attributes['in.x']"),
        ("a-b", "attributes['a-b']"),
        ("resource.x", "attributes['resource.x']"),
        ("it's", "attributes['it\\'s']"),
        ("null", "attributes['null']"),  # FLUO207: read bare, another language's literal
        ("True", "attributes['True']"),
        ("span.kind", "attributes['span.kind']"),  # FLUO207: TraceQL's scope
    ],
)
def test_attribute_keys_are_read_safely(key: str, written: str) -> None:
    assert attribute(key) == written
    assert not analyze([("k.fluo", f"trace.spans.all({written} == 1)")]).diagnostics
    assert holds(f"trace.spans.all({written} == 1)", attributes={key: 1})
    assert not holds(f"trace.spans.all({written} == 1)", attributes={key: 2})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (-3, "-3"),
        (2.5, "2.5"),
        (1e-7, "1.0e-07"),
        (-1e20, "-1.0e+20"),
        ("a'b", "'a\\'b'"),
        (-(2**63), "-9223372036854775808"),  # QA: was FLUO108, read as `-(9223372036854775808)`
        (2**63 - 1, "9223372036854775807"),
    ],
)
def test_literals_compare_equal_to_their_value(value: Any, text: str) -> None:
    assert literal(value) == text
    assert holds(f"trace.spans.all(attributes['v'] == {text})", attributes={"v": value})


def test_op_slugs_do_not_repeat_the_service() -> None:
    assert op_slug(Op("payment", "payment.charge_card")) == "payment_charge_card"
    assert op_slug(Op("auth", "login")) == "auth_login"
    assert op_slug(Op("frontend", "GET /checkout")) == "frontend_get_checkout"
    assert op_slug(Op("", "!!")) == "op"


def test_rules_shown_in_the_docs_check() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "discover.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```fluo\n(.*?)```", doc, re.S)
    assert blocks
    for block in blocks:
        analysis = analyze([("doc.fluo", block)])
        assert not analysis.diagnostics, [d.format() for d in analysis.diagnostics]
    forms = re.findall(r"\| `((?:expect|when) [^`]+)` \|", doc)
    assert len(forms) == 11
    for i, form in enumerate(forms):
        text = form.replace("trace.has(A)", "trace.has(name == 'a')").replace("trace.has(B)", "trace.has(name == 'b')")
        mode, _, rest = text.partition(" ")
        rule = f"rule r{i} {{ {text} }}" if mode == "when" else f"rule r{i} {{ expect {rest} }}"
        analysis = analyze([("form.fluo", rule)])
        assert not analysis.diagnostics, (form, [d.format() for d in analysis.diagnostics])


def test_names_with_no_ascii_form_get_ids_of_their_own() -> None:
    """They were `service_count_max`, `service_count_max_2`, ... numbered in order, so one id named another
    rule once a service came or went. Now the name's own hash: stable, and distinct."""
    front, pay = service_slug("фронтенд"), service_slug("決済サービス")
    assert re.fullmatch(r"service_[0-9a-f]{6}", front) and re.fullmatch(r"service_[0-9a-f]{6}", pay)
    assert front != pay and service_slug("фронтенд") == front
    assert re.fullmatch(r"v2_[0-9a-f]{6}", service_slug("платёж v2"))
    assert re.fullmatch(r"service_[0-9a-f]{6}_op_[0-9a-f]{6}", op_slug(Op("決済サービス", "支払い")))
    assert op_slug(Op("api", "支払い")) != op_slug(Op("api", "ЗАПРОС"))
    assert service_slug("café") == "cafe" and service_slug("") == "unnamed_service"  # unchanged
