"""The compact inline trace form: fluo_run.testing.inline."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluo_lang.api import analyze
from fluo_lang.trace import Span, assemble
from fluo_run.testing.document import load
from fluo_run.testing.inline import (
    DEFAULT_DURATION_NS,
    ORIGIN_NS,
    InlineSpanError,
    build_spans,
    exact_duration,
    parse_duration,
    to_inline,
)

MS = 1_000_000


def by_name(spans: list[Span]) -> dict[str, Span]:
    return {s.name: s for s in spans}


def test_defaults_and_inheritance() -> None:
    spans = by_name(
        build_spans(
            [
                {"name": "POST /login", "service": "frontend", "kind": "server", "duration": "120ms", "start": "1s"},
                {"name": "login", "parent": "POST /login", "duration": "20ms", "attributes": {"user.id": 42}},
                {"name": "orphan"},
            ],
            where="t",
        )
    )
    root, login, orphan = spans["POST /login"], spans["login"], spans["orphan"]
    assert root.start == ORIGIN_NS + 1000 * MS and root.duration == 120 * MS and root.kind == "server"
    assert login.parent_id == root.span_id and login.service == "frontend" and login.start == root.start
    assert login.attributes == {"user.id": 42} and login.status == "unset" and login.kind == "unspecified"
    assert orphan.service == "unknown_service" and orphan.duration == DEFAULT_DURATION_NS and orphan.start == ORIGIN_NS
    assert login.resource == {"service.name": "frontend"}
    assert len({s.trace_id for s in spans.values()}) == 1


def test_resource_and_service() -> None:
    a, b, c = build_spans(
        [
            {"name": "a", "resource": {"service.name": "billing", "host.name": "h1"}},
            {"name": "b", "service": "auth", "resource": {"k8s.pod.name": "p"}},
            {"name": "c", "service": "auth", "resource": {"service.name": "auth"}},
        ],
        where="t",
    )
    assert a.service == "billing" and a.resource == {"service.name": "billing", "host.name": "h1"}
    assert b.service == "auth" and b.resource == {"service.name": "auth", "k8s.pod.name": "p"}
    assert c.service == "auth" and c.resource == {"service.name": "auth"}


def test_a_service_and_another_resource_service_name_are_an_error_not_one_silently_taken() -> None:
    with pytest.raises(InlineSpanError) as caught:
        build_spans([{"name": "b", "service": "auth", "resource": {"service.name": "billing"}}], where="t")
    assert str(caught.value) == (
        "t: span 1 ('b'), `service`: both `service` 'auth' and `resource`'s `service.name` 'billing' are given:"
        " give one"
    )
    assert caught.value.key == "service"


def test_parents_by_id_and_traces_by_label() -> None:
    spans = build_spans(
        [
            {"id": "l1", "name": "login", "trace": "one"},
            {"id": "l2", "name": "login", "trace": "one"},
            {"name": "check", "parent": "l2", "trace": "one"},
            {"name": "login", "trace": "two"},
            {"name": "check", "parent": "login", "trace": "two"},
        ],
        where="t",
    )
    traces = assemble(spans)
    assert [len(t) for t in traces] == [3, 2]
    assert spans[2].parent_id == spans[1].span_id
    assert spans[4].parent_id == spans[3].span_id
    assert traces[0].root is spans[0] or traces[0].root is spans[1]


def test_hex_ids_are_used_as_given_and_a_dangling_parent_is_kept() -> None:
    tid = "5b8efff798038103d269b633813fc60c"
    (span,) = build_spans(
        [{"name": "x", "id": "eee19b7ec3c1b174", "parent": "00f067aa0ba902b7", "trace": tid}], where="t"
    )
    assert span.trace_id.hex() == tid and span.span_id.hex() == "eee19b7ec3c1b174"
    assert span.parent_id.hex() == "00f067aa0ba902b7"
    assert assemble([span])[0].root is None  # its parent never arrived, so it is not a root


def test_ids_are_deterministic_and_depend_on_the_seed() -> None:
    items: list[dict[str, Any]] = [{"name": "a"}, {"name": "a"}, {"name": "b", "parent": "a", "id": "x"}]
    with pytest.raises(InlineSpanError):
        build_spans(items, where="t")  # `a` is ambiguous as a parent
    items[2]["parent"] = "x"
    items[2]["id"] = "y"
    items[1]["id"] = "x"
    first = build_spans(items, where="t", seed="case one")
    again = build_spans(items, where="other message", seed="case one")
    other = build_spans(items, where="t", seed="case two")
    assert [s.span_id for s in first] == [s.span_id for s in again]
    assert first[0].trace_id == again[0].trace_id != other[0].trace_id
    assert len({s.span_id for s in first}) == 3


@pytest.mark.parametrize(
    ("items", "index", "key", "message"),
    [
        ([{"name": "a", "duraton": "1ms"}], 0, "duraton", "t: span 1: unknown key `duraton`; did you mean `duration`?"),
        ([{"service": "x"}], 0, "name", "t: span 1, `name`: every span needs a `name` (text)"),
        ([{"name": "a"}, "b"], 1, None, "t: span 2: expected a mapping like {name: login}, got 'b'"),
        ([{"name": "a", "duration": 20}], 0, "duration", "expected a duration with a unit, like 20ms or 1.5s, got 20"),
        (
            [{"name": "a", "start": "soon"}],
            0,
            "start",
            "expected a duration with a unit, like 20ms or 1.5s, got 'soon'",
        ),
        (
            [{"name": "a", "duration": "99999999999999999999h"}],
            0,
            "duration",
            "'99999999999999999999h' is past what a span's time can hold (about 292 years)",
        ),
        ([{"name": "a", "start": "106752d"}], 0, "start", "past what a span's time can hold"),
        # QA: was "expected a duration with a unit, like 20ms or 1.5s, got '-5ms'", which it has
        ([{"name": "a", "start": "-5ms"}], 0, "start", "'-5ms' is negative: a span's start is 0 or more"),
        ([{"name": "a", "duration": "-1.5s"}], 0, "duration", "'-1.5s' is negative: a span's duration is 0 or more"),
        ([{"name": "a", "duration": "-x"}], 0, "duration", "expected a duration with a unit, like 20ms or 1.5s"),
        ([{"name": "a", "start": "1" * 5000 + "s"}], 0, "start", "past what a span's time can hold"),
        (
            [{"name": "a", "duration": "1.5ns"}],
            0,
            "duration",
            "'1.5ns' is no whole number of nanoseconds, which durations count; the nearest is 2ns",
        ),
        (
            [{"name": "a", "start": "1.0000000004s"}],
            0,
            "start",
            "'1.0000000004s' is no whole number of nanoseconds, which durations count; the nearest is 1s",
        ),
        ([{"name": "a", "status": "eror"}], 0, "status", "expected one of unset, ok, error, got 'eror'; did you mean"),
        ([{"name": "a", "kind": "sever"}], 0, "kind", "did you mean `server`?"),
        ([{"name": "a", "attributes": [1]}], 0, "attributes", "expected a mapping of names to values, got [1]"),
        ([{"name": "a"}, {"name": "b", "parent": "c"}], 1, "parent", "no span with id or name 'c'"),
        ([{"name": "login"}, {"name": "b", "parent": "logn"}], 1, "parent", "did you mean `login`?"),
        ([{"name": "a", "parent": "a"}], 0, "parent", "a span cannot be its own parent"),
        ([{"name": "a", "parent": "b"}, {"name": "b", "parent": "a"}], 0, "parent", "parents form a cycle"),
        ([{"name": "a", "id": "x"}, {"name": "b", "id": "x"}], 1, "id", "id 'x' is already used by span 1"),
        ([{"name": "a", "trace": ["x"]}], 0, "trace", "expected text, got ['x']"),
    ],
)
def test_errors_name_the_item_and_key(items: list[Any], index: int, key: str | None, message: str) -> None:
    with pytest.raises(InlineSpanError) as info:
        build_spans(items, where="t")
    assert info.value.index == index
    assert info.value.key == key
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("written", ["1e3ms", "1.5E-3s", "1e3\u03bcs", "1e-1ns", "1e30s", "2e3x"])
def test_a_duration_with_an_exponent_gets_what_fluo_check_says_of_one(written: str) -> None:
    """QA: `1e3ms` got no hint here, where `fluo check` says to write `1000ms`."""
    [d] = analyze([("r.fluo", f"rule r {{ detect trace.duration > {written} }}\n")]).diagnostics
    assert d.code == "FLUO100" and d.message.startswith("a duration takes no exponent")
    with pytest.raises(InlineSpanError) as info:
        build_spans([{"name": "a", "duration": written}], where="t")
    assert str(info.value).endswith(f"got {written!r}; {d.message}")


def test_a_parent_naming_no_span_is_never_told_the_span_itself() -> None:
    """QA: `{name: b, parent: bb}` was asked "did you mean `b`?", itself, which cannot be its own parent."""
    with pytest.raises(InlineSpanError) as info:
        build_spans([{"name": "b", "id": "bx", "parent": "bb"}, {"name": "zzz"}], where="t")
    assert str(info.value) == "t: span 1 ('b'), `parent`: no span with id or name 'bb'"
    with pytest.raises(InlineSpanError) as info:
        build_spans([{"name": "b", "parent": "bb"}, {"name": "b", "id": "other"}], where="t")
    assert str(info.value).endswith("no span with id or name 'bb'; did you mean `b`?")  # the other b


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("20ms", 20 * MS),
        ("1.5s", 1500 * MS),
        ("0", 0),
        (0, 0),
        ("2m", 120_000 * MS),
        ("250us", 250_000),
        ("7ns", 7),
        ("0.000000001s", 1),
        ("9007199.254740993s", 9_007_199_254_740_993),  # past a float's 53 bits: exact, as a duration literal
        ("1.5d", 129_600 * 10**9),
    ],
)
def test_parse_duration(text: Any, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["20", 20, "fast", "1.5 parsecs", True, None, "-1ms", "1.5ns", "0.0000000015s"])
def test_parse_duration_rejects(text: Any) -> None:
    assert parse_duration(text) is None


@given(st.integers(min_value=0, max_value=10**15))
def test_exact_duration_round_trips(ns: int) -> None:
    assert parse_duration(exact_duration(ns)) == ns


_names = st.text(alphabet="abcdefgh./_ ", min_size=1, max_size=8)
_attr_values = st.one_of(st.integers(-(2**40), 2**40), st.booleans(), _names, st.floats(allow_nan=False, width=32))


@st.composite
def _spans(draw: st.DrawFn) -> list[Span]:
    n = draw(st.integers(1, 8))
    trace_ids = draw(st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=2, unique=True))
    span_ids = draw(st.lists(st.binary(min_size=8, max_size=8), min_size=n, max_size=n, unique=True))
    out: list[Span] = []
    for i in range(n):
        start = ORIGIN_NS + draw(st.integers(0, 10**12))
        parent = draw(st.one_of(st.none(), st.integers(0, n - 1)))
        out.append(
            Span(
                trace_id=trace_ids[i % len(trace_ids)],
                span_id=span_ids[i],
                parent_id=span_ids[parent] if parent is not None and parent != i else b"",
                name=draw(_names),
                service=draw(_names),
                start=start,
                end=start + draw(st.integers(0, 10**10)),
                status=draw(st.sampled_from(["unset", "ok", "error"])),
                kind=draw(st.sampled_from(["unspecified", "internal", "server", "client", "producer", "consumer"])),
                attributes=draw(st.dictionaries(_names, _attr_values, max_size=3)),
            )
        )
    return out


@settings(max_examples=60, deadline=None)
@given(_spans())
def test_to_inline_round_trips(spans: list[Span]) -> None:
    origin = min(s.start for s in spans)
    try:
        back = build_spans(to_inline(spans), where="t")
    except InlineSpanError as exc:
        assert "cycle" in str(exc)  # random parent links may loop; the builder refuses them
        return
    several = len({s.trace_id for s in spans}) > 1
    for a, b in zip(spans, back, strict=True):
        assert (b.span_id, b.parent_id) == (a.span_id, a.parent_id)
        assert (b.trace_id == a.trace_id) is several
        assert (b.name, b.service, b.status, b.kind) == (a.name, a.service, a.status, a.kind)
        assert (b.start - ORIGIN_NS, b.duration) == (a.start - origin, a.duration)
        assert b.attributes == a.attributes


def test_a_span_inherits_its_service_unless_it_states_one() -> None:
    spans = by_name(
        build_spans(
            [
                {"name": "root", "service": "frontend"},
                {"name": "own", "parent": "root", "resource": {"service.name": "billing"}},
                {"name": "inherited", "parent": "own"},
            ],
            where="t",
        )
    )
    assert [spans[n].service for n in ("root", "own", "inherited")] == ["frontend", "billing", "billing"]


def test_a_deep_chain_inherits_start_and_service_from_the_top() -> None:
    items: list[Any] = [{"name": "root", "id": "n0", "service": "edge", "start": "5ms"}]
    items += [{"name": f"s{i}", "id": f"n{i}", "parent": f"n{i - 1}"} for i in range(1, 3000)]
    items[1500]["service"] = "core"
    spans = build_spans(items, where="t")
    assert {s.start for s in spans} == {spans[0].start}
    assert [s.service for s in spans[1499:1502]] == ["edge", "core", "core"] and spans[-1].service == "core"
    assert all(s.parent_id == p.span_id for p, s in itertools.pairwise(spans))


def test_hex_ids_yaml_reads_as_numbers_are_used_as_written() -> None:
    """`0000000000000010` is octal 8 and `00000000000001e5` a float to YAML: the id is what the file says."""
    doc = load(
        "spans:\n"
        "  - {name: root, id: 0000000000000010}\n"
        "  - {name: child, parent: 0000000000000010}\n"
        "  - {name: other, id: 00000000000001e5, parent: 0000000000000010}\n"
    )
    spans = by_name(build_spans(doc["spans"], where="t"))
    assert spans["root"].span_id.hex() == "0000000000000010"
    assert spans["child"].parent_id == spans["other"].parent_id == bytes.fromhex("0000000000000010")
    assert spans["other"].span_id.hex() == "00000000000001e5"
