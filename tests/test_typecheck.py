"""The typechecker's diagnostics on rules newcomers write (QA tour of the error experience)."""

from __future__ import annotations

import pytest

from fluo_lang import ast
from fluo_lang.api import analyze, analyze_expression, compile_program
from fluo_lang.diagnostics import Diagnostic
from fluo_lang.evaluate import Signal
from fluo_lang.trace import Span, assemble
from fluo_lang.typecheck import EnumRef
from fluo_lsp.syntax import expressions


def _diags(text: str) -> list[Diagnostic]:
    return analyze([("r.fluo", text)]).diagnostics


def _only(text: str) -> Diagnostic:
    diags = _diags(text)
    assert len(diags) == 1, [d.format() for d in diags]
    return diags[0]


def _where(pred: str) -> str:
    return f"trace.spans.where({pred}).exists()"


# -- names that read as an attribute nobody meant (FLUO207) -------------------


@pytest.mark.parametrize(
    ("pred", "reads", "fix"),
    [
        ('x-request-id == "abc"', "`x-request-id` reads as `x - request - id`", 'attributes["x-request-id"]'),
        ('resource.k8s-pod == "p1"', "`resource.k8s-pod` reads as `resource.k8s - pod`", 'resource["k8s-pod"]'),
        ("total-discount > 0", "`total-discount` reads as `total - discount`", 'attributes["total-discount"]'),
        ("parent.x-y == 1", "`parent.x-y` reads as `parent.x - y`", 'parent.attributes["x-y"]'),
        ('x-knd-id == "abc"', "`x-knd-id` reads as `x - knd - id`", 'attributes["x-knd-id"]'),  # not `end`
        ('it.resource.a.b-c == "p1"', "`it.resource.a.b-c` reads as `it.resource.a.b - c`", 'it.resource["a.b-c"]'),
    ],
)
def test_a_key_with_dashes_warns_with_its_bracketed_form(pred: str, reads: str, fix: str) -> None:
    d = _only(_where(pred))
    assert (d.code, d.is_error, d.suggestion) == ("FLUO207", False, fix)
    assert d.message.startswith(f"{reads}; for a key with dashes write `{fix}`")
    assert "put spaces around `-`" in d.message


@pytest.mark.parametrize("pred", ["total - discount > 0", "end-start > 1s", "duration-1s > 0s"])
def test_a_subtraction_written_as_one_is_quiet(pred: str) -> None:
    assert _diags(_where(pred)) == []


@pytest.mark.parametrize(
    ("pred", "fix", "says"),
    [
        ("http.route != null", "http.route not in []", "that `http.route` is present"),
        ("http.route != nil", "http.route not in []", "that `http.route` is present"),
        ("None != http.route", "http.route not in []", "that `http.route` is present"),
        ("http.route == undefined", "not (http.route not in [])", "that `http.route` is missing"),
        # a dashed key and null: one warning for both (there were two at the same place), whose fix mends both
        (
            "x-request-id.route != null",
            'attributes["x-request-id.route"] not in []',
            'that `attributes["x-request-id.route"]` is present',
        ),
        ("null == x-request-id", 'not (attributes["x-request-id"] not in [])', 'that `attributes["x-request-id"]`'),
        ("parent.x-y != null", 'parent.attributes["x-y"] not in []', 'that `parent.attributes["x-y"]` is present'),
    ],
)
def test_null_warns_and_says_how_to_test_presence(pred: str, fix: str, says: str) -> None:
    d = _only(_where(pred))
    assert (d.code, d.is_error, d.suggestion) == ("FLUO207", False, fix)
    assert "FLUO has no null" in d.message and f"{says}" in d.message and f"write `{fix}`" in d.message
    if "-" in pred:
        assert "reads as `" in d.message, d.message
    fixed = _apply(_where(pred), d)
    assert _diags(fixed) == [], fixed


def test_a_null_alone_warns_too() -> None:
    d = _only(_where("null"))
    assert d.code == "FLUO207" and "x not in []" in d.message


@pytest.mark.parametrize("word", ["True", "TRUE", "False"])
def test_a_capitalised_boolean_suggests_the_literal(word: str) -> None:
    d = _only(_where(f"retry == {word}"))
    assert (d.code, d.is_error, d.suggestion) == ("FLUO207", False, word.lower())
    assert d.message.endswith(f"did you mean `{word.lower()}`?")


def test_a_capitalised_boolean_outside_a_predicate_suggests_the_literal() -> None:
    d = _only("True")
    assert (d.code, d.suggestion) == ("FLUO200", "true")


def test_traceql_span_scope_warns_once_for_the_whole_key() -> None:
    d = _only(_where("span.http.response.status_code == 500"))
    assert (d.code, d.is_error, d.suggestion) == ("FLUO207", False, "http.response.status_code")
    assert "`span.` is TraceQL's scope" in d.message
    assert 'attributes["span.http.response.status_code"]' in d.message  # a key that does start with `span.`


def test_ottl_resource_attributes_suggests_fluos_form() -> None:
    d = _only(_where('resource.attributes["service.name"] == "api"'))
    assert (d.code, d.is_error, d.suggestion) == ("FLUO207", False, 'resource["service.name"]')
    assert "the intrinsic `service`" in d.message


def test_the_meant_forms_are_quiet() -> None:
    for pred in (
        'attributes["x-request-id"] == "abc"',
        'resource["k8s-pod"] == "p1"',
        "http.route not in []",
        "retry == true",
        'attributes["span.kind"] == "server"',
        'resource.k8s.pod == "p1"',
    ):
        assert _diags(_where(pred)) == [], pred


# -- an attribute's number against a duration ---------------------------------


@pytest.mark.parametrize(
    ("pred", "example"),
    [
        ("latency_s > 5s", "latency_s * 1s"),
        ("5s < queue.wait_ms", "queue.wait_ms * 1ms"),
        # review: an indexed key was named by a placeholder (`amount`); it is the attribute as written now
        ('attributes["t"] == 1s', 'attributes["t"] * 1ms'),
        ('attributes["wait s"] > 1s', 'attributes["wait s"] * 1s'),
        ('parent.attributes["t_us"] > 1s', 'parent.attributes["t_us"] * 1us'),
        ("x in [1s, 2s]", "x * 1ms"),
        # QA: `contains`, `in` turned round, let the attribute's number through
        ("[1s, 2s] contains x", "x * 1ms"),
        ('[1s] contains attributes["t"]', 'attributes["t"] * 1ms'),
        # QA lang r05: inside arithmetic or an aggregate the hint named `amount`, a key the rule never mentions
        ("lat * 1 == 1s", "lat * 1ms"),
        ("children.sum(wait_s) > 1s", "wait_s * 1s"),
        ("2 * parent.attributes['t us'] > 1s", 'parent.attributes["t us"] * 1us'),
        ("waits_ms[0] - 0 > 1s", "waits_ms[0] * 1ms"),
    ],
)
def test_an_attribute_compared_with_a_duration_needs_a_unit(pred: str, example: str) -> None:
    d = _only(_where(pred))
    assert (d.code, d.is_error) == ("FLUO300", True)
    assert d.message.endswith(f"an attribute's number has no unit: give it one, e.g. `{example}`")


@pytest.mark.parametrize(
    ("pred", "example"),
    [
        ("children.max(lat) + 1s > 0s", "lat * 1ms"),
        ("end - 1s < wait.ms * 2 + 1s", "wait.ms * 1ms"),
    ],
)
def test_an_attribute_added_to_a_duration_is_named_in_the_hint(pred: str, example: str) -> None:
    d = _only(_where(pred))
    assert d.code == "FLUO302" and d.message.endswith(f"give it one, e.g. `{example}`"), d.message


def test_an_attribute_looked_for_among_durations_is_told_alike_either_way_round() -> None:
    """`x in [1s]` and `[1s] contains x`: the same code, at the same place, naming the same types."""
    by_in, by_contains = _only(_where("x in [1s, 2s]")), _only(_where("[1s, 2s] contains x"))
    assert by_in.code == by_contains.code == "FLUO300"
    text = _where("x in [1s, 2s]"), _where("[1s, 2s] contains x")
    assert [t[d.span.start : d.span.end] for t, d in zip(text, (by_in, by_contains), strict=True)] == ["in", "contains"]
    assert by_in.message.startswith("`in`: cannot look for any in list<duration>;"), by_in.message
    assert by_contains.message.startswith("`contains`: list<duration> cannot contain any;"), by_contains.message


@pytest.mark.parametrize(
    ("pred", "says"),
    [
        # QA: a number among durations, or an attribute's list against a duration, was read as nanoseconds
        (
            "[1s, 500] contains duration",
            "a number among durations would be read as nanoseconds; a duration takes a unit",
        ),
        ("duration in [1s, 500]", "a number among durations would be read as nanoseconds; a duration takes a unit"),
        ("duration in [1s, 0]", "a number among durations would be read as nanoseconds; a duration takes a unit"),
        (
            "duration in [1s, trace.spans.count()]",
            "a number among durations would be read as nanoseconds; give it a unit:",
        ),
        ("l contains 1s", "`contains`: an attribute's list holds no durations (its numbers have no unit)"),
        ("1s in l", "`in`: an attribute's list holds no durations (its numbers have no unit)"),
        ("duration not in l", "`not in`: an attribute's list holds no durations (its numbers have no unit)"),
        ("l == [1s]", "cannot compare any with list<duration> using `==`: an attribute's list holds no durations"),
        ("[1s, 'a'] != l", "cannot compare list<any> with any using `!=`: an attribute's list holds no durations"),
        ("x in [1s, 'a']", "`in`: an attribute never equals a duration; an attribute's number has no unit"),
        ("[x] contains duration", "`contains`: an attribute never equals a duration; an attribute's number"),
    ],
)
def test_no_number_without_a_unit_meets_a_duration_in_a_list(pred: str, says: str) -> None:
    d = _only(_where(pred))
    assert (d.code, d.is_error) == ("FLUO300", True)
    assert d.message.startswith(says), d.message


def test_a_number_among_durations_is_refused_either_way_round_and_after_an_attribute() -> None:
    """`x in [1s, 500]`: both mistakes told (the attribute and the number), `in` and `contains` alike."""
    for pred in ("x in [1s, 500]", "[1s, 500] contains x"):
        diags = _diags(_where(pred))
        text = _where(pred)
        op = text.index(" in ") + 1 if " in " in pred else text.index("contains")  # said at the operator
        assert sorted(d.span.start for d in diags) == sorted([op, text.index("500")]), [d.format() for d in diags]
        assert all(d.code == "FLUO300" for d in diags)


def test_a_number_among_durations_is_told_once() -> None:
    """The list refuses the number; the membership does not tell it again (`a duration never equals an int`)."""
    pred = "duration in [1s, 500, 'a']"
    diags = _diags(_where(pred))
    assert [(d.span.col, d.message[:29]) for d in diags] == [
        (_where(pred).index("500"), "a number among durations woul"),
        (_where(pred).index("'a'"), "`in`: a duration never equals"),
    ]


@pytest.mark.parametrize(
    ("pred", "col"),
    [
        ("name in ['a', 1]", 32),
        ("['a', 1] contains name", 24),
        ("status in ['error', 1]", 38),
        ("[1, 'error'] contains status", 19),
        ("duration not in [1s, 'a']", 39),
        ("['a', 1s] contains duration", 19),
        ("name in ['a', trace.spans.count()]", 32),
        ("[trace.spans.count(), 'a'] contains name", 19),
    ],
)
def test_a_mixed_literal_list_is_checked_alike_by_in_and_contains(pred: str, col: int) -> None:
    """QA: `name in ['a', 1]` was FLUO300 and `['a', 1] contains name` checked clean."""
    d = _only(_where(pred))
    assert (d.code, d.span.col) == ("FLUO300", col), d.format()
    assert " never equals " in d.message, d.message


def test_an_attribute_in_a_list_without_durations_stays_allowed() -> None:
    for pred in ("l contains 'a'", "x in [200, 'x']", "['a', 1] contains x", "start in [x]", "l == [1, 'a']"):
        assert _diags(_where(pred)) == [], pred


@pytest.mark.parametrize(
    ("pred", "at", "says"),
    [
        # QA lang r01: a list literal let an attribute's number meet a duration, read as nanoseconds
        ("[lat] == [1s]", "lat", "cannot compare list<any> with list<duration> using `==`: item by item, an attribute"),
        ("[lat] == [duration]", "lat", "cannot compare list<any> with list<duration> using `==`: item by item"),
        ("[1s] != [lat]", "lat", "cannot compare list<duration> with list<any> using `!=`: item by item"),
        ("[lat, 'x'] == [1s, 'x']", "lat", "cannot compare list<any> with list<any> using `==`: item by item"),
        ("[[lat]] contains [1s]", "lat", "`contains`: a list<list<any>> cannot contain a list<duration>: item by"),
        ("[lat] in [[1s], [2s]]", "lat", "`in`: cannot look for a list<any> in a list<list<duration>>: item by item"),
        ("[lat] in [[1s], ['a']]", "lat", "`in`: cannot look for a list<any> in a list<any>: item by item"),
        ("l in [[1s]]", "in", "`in`: cannot look for any in list<list<duration>>: an attribute's list holds no"),
        ("[[1s]] contains l", "contains", "`contains`: list<list<duration>> cannot contain any: an attribute's"),
        ("l in [[1s], 'a']", "in", "`in`: cannot look for any in list<any>: an attribute's list holds no durations"),
        ("[l] == [[1s]]", "l", "cannot compare list<any> with list<list<duration>> using `==`: item by item"),
    ],
)
def test_an_attribute_meets_no_duration_through_list_items(pred: str, at: str, says: str) -> None:
    """`latency_s > 5s` is FLUO300, and so is the same comparison made item by item: `[lat] == [1s]`."""
    d = _only(_where(pred))
    assert (d.code, d.is_error) == ("FLUO300", True)
    assert d.message.startswith(says), d.message
    text = _where(pred)
    assert text[d.span.start : d.span.end] == at, d.format()


def test_an_attributes_item_gets_its_keys_unit_hint_and_both_places_noted() -> None:
    d = _only(_where("[latency_ms] == [1s]"))
    assert d.message.endswith("give it one, e.g. `latency_ms * 1ms`"), d.message
    text = _where("[latency_ms] == [1s]")
    assert [(text[r.span.start : r.span.end], r.message) for r in d.related] == [
        ("latency_ms", "this has no declared type (any)"),
        ("1s", "this is a duration"),
    ]


def test_lists_of_attributes_and_units_given_stay_allowed() -> None:
    for pred in (
        "[lat * 1ms] == [1s]",
        "[lat] == [1]",
        "[lat, 'x'] == [2, 'x']",
        "[duration] == [1s]",
        "[lat] == [end]",
    ):
        assert _diags(_where(pred)) == [], pred


@pytest.mark.parametrize(
    "expr",
    [
        # QA lang r02: enum names in a list compared with `==` read as attributes, and never held
        "trace.root.status == error",
        "[trace.root.status] == [error]",
        "[error] == [trace.root.status]",
        "[trace.root.status, trace.root.kind] != [error, 'client']",
        "[trace.root.kind] == [server]",
        "[[trace.root.kind]] == [[server]]",
        "[trace.root.kind, trace.root.name] == [server, 'x']",
        "[trace.root.kind, trace.root.status] in [[server, ok], [client, error]]",
        "[[server, ok]] contains [trace.root.kind, trace.root.status]",
        "trace.has([status, kind] == [error, client])",
    ],
)
def test_enum_names_in_a_compared_list_are_values_position_by_position(expr: str) -> None:
    result = analyze_expression(expr)
    assert result.diagnostics == [], [d.format() for d in result.diagnostics]
    names = {"error", "ok", "server", "client"}
    refs = result.rules[0].refs
    read = [
        refs.get(id(e)) for e, _ in expressions(result.rules[0].rule) if isinstance(e, ast.Name) and e.ident in names
    ]
    assert read and all(isinstance(r, EnumRef) for r in read), read


@pytest.mark.parametrize(
    ("expr", "bad"),
    [
        ("trace.root.status == 'bogus'", "bogus"),
        ("[trace.root.status] == ['bogus']", "bogus"),
        ("[trace.root.kind, trace.root.status] == [server, srever]", "srever"),
        ("[trace.root.kind, trace.root.status] in [[server, sever]]", "sever"),
    ],
)
def test_a_wrong_enum_name_in_a_compared_list_is_fluo304(expr: str, bad: str) -> None:
    diags = analyze_expression(expr).diagnostics
    assert [d.code for d in diags] == ["FLUO304"], [d.format() for d in diags]
    assert diags[0].message.startswith(f"`{bad}` is not a "), diags[0].message


@pytest.mark.parametrize(
    ("pred", "found"),
    [
        ("[1s, 'a'][0] == x", "duration and string"),
        ("[1s, 'a'][0] == 'x'", "duration and string"),
        ("[1s, 'a'][0] == duration", "duration and string"),
        ("[[1s], ['a']][0][0] == 'x'", "list<duration> and list<string>"),
        ("[true, 1, 'a'][1] == x", "bool, int and string"),
    ],
)
def test_an_indexed_list_of_mixed_items_is_an_error_at_the_list(pred: str, found: str) -> None:
    """Smalls: `[1s, 'a'][0] == x` checked clean, its item a value of no known type (as an attribute's)."""
    d = _only(_where(pred))
    assert (d.code, d.span.col) == ("FLUO300", _where(pred).index("[", len("trace.spans.where("))), d.format()
    assert d.message.startswith(f"an indexed list holds items of one type, found {found};"), d.message


@pytest.mark.parametrize(
    "pred", ["[1, 2.5][0] < 3", "[x, 'a'][0] == 'b'", "['a', 'b'][-1] == name", "[1s, 2s][0] > 0s"]
)
def test_an_indexed_list_of_one_type_checks(pred: str) -> None:
    assert _diags(_where(pred)) == [], pred


def test_an_attribute_given_a_unit_compares_with_a_duration() -> None:
    assert _diags(_where("latency_s * 1s > 5s")) == []
    assert _diags(_where("ts > start")) == []  # an epoch-nanoseconds attribute against a timestamp stays allowed


# -- one mistake, one error ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("rule r {\n  when { trace.has(name == 'a') }\n  then { trace.has(name == 'b') }\n}", "FLUO107"),
        ("rule r {\n  window 60\n  expect window.spans.count() < 300\n}", "FLUO100"),
        ("rule r {\n  window 5min\n  expect window.spans.count() < 300\n}", "FLUO103"),
        ('rule r {\n  window "1m"\n  expect window.spans.count() < 300\n}', "FLUO100"),
    ],
)
def test_a_syntax_error_in_a_rule_hides_what_the_checker_says_of_its_shape(text: str, code: str) -> None:
    assert [d.code for d in _diags(text) if d.is_error] == [code]


def test_a_rule_without_a_syntax_error_still_gets_its_shape_errors() -> None:
    assert [d.code for d in _diags("rule r { severity: error }")] == ["FLUO214"]
    assert [d.code for d in _diags("rule r { window 0s expect window.spans.count() < 3 }")] == ["FLUO217"]


@pytest.mark.parametrize(
    "text",
    [
        "trace.spans.where(service == 'auth', duration > 1s).count() > 0",
        "trace.spans.exists(s, s.service == 'auth')",
        "rule r { window 1m expect window.traces.count(duration > 1s) < 5 }",
        "trace.spans.count(nosuch.x, servce == 'a') > 0",
    ],
)
def test_extra_arguments_give_the_arity_error_only(text: str) -> None:
    assert [d.code for d in _diags(text)] == ["FLUO203"]


# -- hints ---------------------------------------------------------------------


def test_a_span_field_outside_a_predicate_of_a_windowed_rule_suggests_window() -> None:
    d = _only("rule r {\n  window 1m\n  expect duration < 5s\n}")
    assert d.code == "FLUO204" and "`window.spans.where(duration ...)`" in d.message and "trace" not in d.message


def test_a_span_field_outside_a_predicate_of_a_trace_rule_suggests_trace() -> None:
    d = _only("duration < 5s")
    assert "`trace.spans.where(duration ...)`" in d.message and "`trace.root.duration`" in d.message


@pytest.mark.parametrize(
    ("text", "guess"),
    [
        (_where("status == 'ERROR'"), "error"),
        (_where("kind == SERVER"), "server"),
        ("rule r {\n  severity: ERROR\n  expect trace.spans.count() > 0\n}", "error"),
        (_where("Service == 'a'"), "service"),
        ("trace.spans.Where(name == 'a').exists()", "where"),
    ],
)
def test_a_word_in_the_wrong_case_gets_a_did_you_mean(text: str, guess: str) -> None:
    d = _only(text)
    assert d.message.endswith(f"`{guess}`?") and "did you mean" in d.message and d.suggestion == guess


@pytest.mark.parametrize(
    ("text", "call"),
    [
        ("trace.spans.where(service == 'auth').count(1, 2) > 0", "count(1, 2)"),
        ("trace.spans.where(service == 'auth', duration > 1s).count() > 0", "where(service == 'auth', duration > 1s)"),
        ("trace.spans.where(kind == server).sum() > 5s", "sum()"),
    ],
)
def test_an_arity_error_underlines_the_call_not_the_chain(text: str, call: str) -> None:
    d = next(d for d in analyze_expression(text).diagnostics if d.code == "FLUO203")
    start, end = text.index(call), text.index(call) + len(call)
    assert (d.span.start, d.span.end, d.span.col, d.span.end_col) == (start, end, start, end)


# -- comparisons no trace can change (FLUO307) ---------------------------------


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        ("trace.spans.count() >= 0", "always holds: a count"),
        ("trace.spans.count() < 0", "never holds: a count"),
        ("0 > trace.spans.count()", "never holds: a count"),
        ("0 <= trace.count(status == error)", "always holds: a count"),
        (_where("duration < 0s"), "never holds: a duration"),
        ("trace.duration >= 0s", "always holds: a duration"),
        # a negative bound (user tour: `count() > -1` and `count() == -1` were not flagged)
        ("trace.spans.count() > -1", "always holds: a count"),
        ("trace.spans.count() == -1", "never holds: a count"),
        ("trace.spans.count() != -1", "always holds: a count"),
        ("trace.spans.count() <= -2", "never holds: a count"),
        ("-1 < trace.spans.count()", "always holds: a count"),
        ("trace.spans.count() >= -0.5", "always holds: a count"),
        (_where("duration == -1s"), "never holds: a duration"),
        ("trace.duration > -(1s)", "always holds: a duration"),
    ],
)
def test_a_comparison_no_trace_can_change_warns(text: str, holds: str) -> None:
    d = _only(text)
    assert (d.code, d.is_error) == ("FLUO307", False)
    assert d.message.startswith(f"this comparison {holds} is never negative")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        # QA lang: `error` was read as an attribute without a word, and the comparison never held
        (_where("[status, kind] == [error]"), "never holds: lists of 2 items and 1 item are never equal"),
        (_where("[status, kind] != [error]"), "always holds: lists of 2 items and 1 item are never equal"),
        (_where("[x] == []"), "never holds: lists of 1 item and 0 items are never equal"),
        (_where("[[name], 1] == [[name, service], 1]"), "never holds: lists of 1 item and 2 items are never equal"),
        # QA lang: `error` was read against `kind`, an item it is not paired with, and was FLUO304 too
        (_where("[nosuch, kind] != [error]"), "always holds: lists of 2 items and 1 item are never equal"),
        (_where("[kind, nosuch] == [error]"), "never holds: lists of 2 items and 1 item are never equal"),
        (_where("[error] == [nosuch, kind]"), "never holds: lists of 1 item and 2 items are never equal"),
    ],
)
def test_list_literals_of_different_lengths_warn_they_are_never_equal(text: str, says: str) -> None:
    d = _only(text)
    assert (d.code, d.is_error, d.message) == ("FLUO307", False, f"this comparison {says}")
    # what it says is what a trace gives, a span missing the attribute `x` too
    rule = f"rule r {{ expect not {text} }}" if "==" in text else f"rule r {{ expect {text} }}"
    assert _fired(rule, _ROOTLESS) == []


def test_names_beside_a_longer_list_of_one_enum_are_its_values() -> None:
    """Every item of the other list a `status`: `eror` is read as one, a typo of `error`, as in `status == eror`."""
    codes = [(d.code, d.message) for d in _diags(_where("[status, status] != [eror]"))]
    assert codes[0][0] == "FLUO307" and codes[1] == (
        "FLUO304",
        "`eror` is not a status (one of ok, error, unset); did you mean `error`?",
    )
    assert len(codes) == 2


@pytest.mark.parametrize("text", [_where("[status] == [error]"), _where("[status, 1] != [error, x]"), "[1] < [1, 2]"])
def test_list_literals_of_one_length_or_ordered_are_no_fluo307(text: str) -> None:
    assert all(d.code != "FLUO307" for d in _diags(text))


@pytest.mark.parametrize(
    "text",
    [
        "trace.spans.count() > 0",
        "trace.spans.count() <= 0",
        "trace.spans.count() == 0",
        "trace.spans.count() > --1",
        "trace.root.duration > -1s",  # false with no root
        "trace.spans.all(parent.children.count() != -1)",
    ],
)
def test_a_comparison_a_trace_can_change_is_no_fluo307(text: str) -> None:
    assert _diags(text) == []


def test_always_holds_names_the_one_duration_that_fails_it() -> None:
    """A duration past 64 bits of nanoseconds (a span ending at OTLP's last nanosecond) is missing, so
    `trace.duration >= 0s` fires on it: the warning says so rather than "always" without exception."""
    d = _only("trace.duration >= 0s")
    assert d.message.endswith("(only bad input fails it: a span lasting past 64 bits of nanoseconds reads as missing)")
    wide = Span(trace_id=b"\x01" * 16, span_id=b"\x01" * 8, name="wide", start=0, end=2**64 - 1)
    [signal] = _fired("rule r { expect trace.duration >= 0s }", wide)
    assert signal.observed["duration"] is None


@pytest.mark.parametrize(
    "text",
    ["trace.spans.count() > 0", "trace.spans.count() <= 0", _where("duration <= 0s"), "trace.spans.count() == 0"],
)
def test_a_comparison_with_zero_that_can_go_either_way_is_quiet(text: str) -> None:
    assert _diags(text) == []


# A trace whose one span names a parent that never arrived: it has no root, its span no parent, no attribute.
_ROOTLESS = Span(trace_id=b"t" * 16, span_id=b"s" * 8, parent_id=b"p" * 8, name="s", service="svc", start=0, end=10)
_CAN_BE_MISSING = [
    "trace.root.duration >= 0s",
    "trace.root.children.count() >= 0",
    "trace.root.name.length() >= 0",
    "trace.spans.all(parent.duration >= 0s)",
    "trace.spans.all(parent.children.count() >= 0)",
    "trace.spans.all(parent.parent.descendants.count() >= 0)",
    "trace.spans.all(cart.length() >= 0)",
    "trace.spans.all(cart.count() >= 0)",
    "trace.spans.all(attributes['k'].length() >= 0)",
    "trace.spans.all(resource.host.lower().length() >= 0)",
    "trace.spans.all((name + x).length() >= 0)",
    "trace.spans.all(trace.services[3].length() >= 0)",
    "trace.spans.where(duration > 1s).max(duration) >= 0s",
]
_NEVER_MISSING = [
    "trace.spans.count() >= 0",
    "trace.count(status == error) >= 0",
    "trace.services.count() >= 0",
    "trace.duration >= 0s",
    "trace.spans.all(duration >= 0s)",
    "trace.spans.all(it.duration >= 0s)",
    "trace.spans.all(children.count() >= 0)",
    "trace.spans.all(ancestors.count() >= 0)",
    "trace.spans.all(name.length() >= 0)",
    "trace.spans.all(status_message.lower().length() >= 0)",
    "trace.spans.all((name + service).length() >= 0)",
]


@pytest.mark.parametrize("expect", _CAN_BE_MISSING)
def test_a_comparison_with_a_value_that_can_be_missing_is_no_fluo307(expect: str) -> None:
    """QA docs 01: `trace.root.duration >= 0s` "always holds", yet fired on a trace with no root (a comparison
    with a missing value is false): whatever reads through a value that can be missing can change."""
    rule = f"rule r {{ expect {expect} }}"
    assert _diags(rule) == []
    assert [s.rule for s in _fired(rule, _ROOTLESS)] == ["r"]


@pytest.mark.parametrize(
    "expect",
    [*_NEVER_MISSING, *(e.replace(">= 0", "< 0") for e in _NEVER_MISSING + _CAN_BE_MISSING if "max(" not in e)],
)
def test_fluo307_holds_on_a_trace_missing_all_it_can(expect: str) -> None:
    """What FLUO307 says is true of that trace too: a value missing there makes `< 0` false, as it always is."""
    rule = f"rule r {{ expect {expect} }}"
    d = _only(rule)
    holds = "always holds" if ">=" in expect else "never holds"
    assert (d.code, d.message.split(":")[0]) == ("FLUO307", f"this comparison {holds}")
    assert [s.rule for s in _fired(rule, _ROOTLESS)] == ([] if ">=" in expect else ["r"])


def _fired(rule: str, *spans: Span) -> list[Signal]:
    (tr,) = assemble(list(spans))
    return compile_program(analyze([("r.fluo", rule)])).evaluate_trace(tr)


@pytest.mark.parametrize("meta", ["severity: : info", "owner: : x\n  runbook: : y"])
def test_a_metadata_key_the_recovery_inserted_is_not_checked(meta: str) -> None:
    """Editor QA 11: `severity: : info` also said "unknown metadata key `\\u0000`" (the recovery's placeholder)."""
    text = f"rule a {{\n  {meta}\n  expect trace.spans.count() > 1\n}}\n"
    diags = analyze([("m.fluo", text)]).diagnostics
    assert [d.code for d in diags] == ["FLUO100"] * meta.count(": :")
    assert not any("\x00" in d.message for d in diags)


@pytest.mark.parametrize(
    "pred",
    [
        "http.status_code == 500",
        "attributes.service_name == 'a'",
        "attributes['status_code'] == 500",
        "rpc.service == 'a'",
    ],
)
def test_a_spelling_of_an_intrinsic_that_is_an_attribute_here_is_not_flagged(pred: str) -> None:
    """`http.status_code` is OpenTelemetry's (older) attribute; a key written in `attributes[...]` is meant."""
    assert _diags(f"rule r {{ detect {_where(pred)} }}") == []


@pytest.mark.parametrize(
    ("pred", "name"),
    [
        ("status_code == 500", "status_code"),
        ("statusCode in [500, 503]", "statusCode"),
        ("it.status_code >= 500", "status_code"),
    ],
)
def test_a_bare_status_code_compared_with_a_number_names_the_http_attribute(pred: str, name: str) -> None:
    """`status_code == 500` could be no span status, and said nothing: it most likely means OpenTelemetry's
    `http.response.status_code`. A warning names it, with no fix (the spans may have that key)."""
    [d] = _diags(f"rule r {{ detect {_where(pred)} }}")
    assert (d.code, d.suggestion, d.guess) == ("FLUO205", None, None)
    assert d.message.startswith(f"`{name}` reads as a span attribute, and the span `status`")
    assert "`http.response.status_code`" in d.message and f'`attributes["{name}"]`' in d.message


@pytest.mark.parametrize(
    "pred", ["statusCode == 'auth'", "stats == 'auth'", "status_code == auth", "stats in ['auth', error]"]
)
def test_an_intrinsic_whose_comparison_would_be_an_error_is_a_guess_not_a_fix(pred: str) -> None:
    """Property test: `statusCode == 'auth'` was fixed as `status == 'auth'`, FLUO304 (and `stats == 'auth'` too).
    The name may be the slip or the value: the warning still names `status`, as a guess an editor offers."""
    [d] = _diags(f"rule r {{ detect {_where(pred)} }}")
    assert (d.code, d.suggestion, d.guess) == ("FLUO205", None, "status")


@pytest.mark.parametrize(
    ("expr", "fix"),
    [("trace.has(status.code == error)", "status"), ("trace.root.status.code == 2", None)],
)
def test_otels_status_code_is_pointed_at_comparing_the_status(expr: str, fix: str | None) -> None:
    """User tour: `status.code` said only "status has no field `code`"."""
    d = _diags(f"rule r {{ detect {expr} }}")[0]
    says = "`status` already is the status code: drop the `.code` and compare it, like `status == error`"
    assert (d.code, d.message, d.suggestion) == ("FLUO202", says, fix)


@pytest.mark.parametrize(
    ("meta", "found"),
    [
        ("runbook: 1s", "runbook must be a link, as a string, found `1s`"),  # was `1000000000`, in nanoseconds
        ("owner: 1500ms", "owner must be a team or person, as a string, found `1500ms`"),
        ("tags: [auth, 1m]", "tags must be a list of words, e.g. [auth, reliability], found `1m` in the list"),
    ],
)
def test_a_duration_as_a_metadata_value_is_quoted_as_written(meta: str, found: str) -> None:
    d = _only(f"rule a {{ {meta} expect true }}")
    assert (d.code, d.message) == ("FLUO212", found)


def test_a_tags_item_that_is_no_word_is_flagged_at_itself_not_at_the_list() -> None:
    text = "rule a { tags: [auth, 5, 'ok', [x]] expect true }"
    diags = _diags(text)
    assert [(d.code, text[d.span.start : d.span.end]) for d in diags] == [("FLUO212", "5"), ("FLUO212", "[x]")]
    assert diags[0].message == "tags must be a list of words, e.g. [auth, reliability], found `5` in the list"
    whole = _only("rule a { tags: auth expect true }")
    assert whole.message == "tags must be a list of words, e.g. [auth, reliability], found `auth`"


# -- suggestions that check where they go (QA: every suggestion applied) --------

_WINDOWED = "rule r {{\n  window 1m\n  expect {}\n}}\n"
_SEVERITY = "rule r {{\n  severity: {}\n  expect trace.spans.count() > 0\n}}\n"


def _apply(text: str, d: Diagnostic) -> str:
    assert d.suggestion is not None, d.format()
    return text[: d.span.start] + d.suggestion + text[d.span.end :]


@pytest.mark.parametrize(
    ("text", "code", "fixed"),
    [
        # the rule's own root: `window`-rooted in a windowed rule, `trace`-rooted otherwise
        (_WINDOWED.format("traces.count() < 5"), "FLUO200", _WINDOWED.format("window.traces.count() < 5")),
        (_WINDOWED.format("TRACE.spans.count() < 5"), "FLUO200", _WINDOWED.format("window.spans.count() < 5")),
        (_WINDOWED.format("trace.spans.count() < 5"), "FLUO220", _WINDOWED.format("window.spans.count() < 5")),
        (
            _WINDOWED.format("trace.count(status == error) < 5"),
            "FLUO220",
            _WINDOWED.format("window.count(status == error) < 5"),
        ),
        (_WINDOWED.format("trace.root.duration < 5s"), "FLUO220", None),  # a window has no root
        ("TRACE.spans.count() > 5", "FLUO200", "trace.spans.count() > 5"),
        ("spans.count() > 5", "FLUO200", "trace.spans.count() > 5"),
        ("root.duration > 1s", "FLUO200", "trace.root.duration > 1s"),
        # fields in another case
        ("trace.SPANS.count() > 5", "FLUO202", "trace.spans.count() > 5"),
        ("trace.ROOT.name == 'x'", "FLUO202", "trace.root.name == 'x'"),
        # other languages' method names (builtins.FOREIGN_NAMES)
        ("trace.spans.size() > 5", "FLUO201", "trace.spans.count() > 5"),
        ("trace.spans.length() > 5", "FLUO201", "trace.spans.count() > 5"),
        ("trace.spans.len() > 5", "FLUO201", "trace.spans.count() > 5"),
        ("trace.spans.filter(service == 'a').count() > 0", "FLUO201", "trace.spans.where(service == 'a').count() > 0"),
        ("trace.size() > 5", "FLUO201", "trace.spans.count() > 5"),
        ("trace.services.size() > 5", "FLUO201", "trace.services.count() > 5"),
        (_where("name.len() > 3"), "FLUO201", _where("name.length() > 3")),
        (_where("name.toLowerCase() == 'x'"), "FLUO201", _where("name.lower() == 'x'")),
        (_where("http.url.toUpperCase() == 'X'"), "FLUO201", _where("http.url.upper() == 'X'")),
        # severities and OpenTelemetry's constant names
        (_SEVERITY.format("warn"), "FLUO212", _SEVERITY.format("warning")),
        (_SEVERITY.format("crit"), "FLUO212", _SEVERITY.format("critical")),
        (_SEVERITY.format("fatal"), "FLUO212", _SEVERITY.format("critical")),
        (_where("status == STATUS_CODE_ERROR"), "FLUO304", _where("status == error")),
        (_where("status != STATUS_CODE_OK"), "FLUO304", _where("status != ok")),
        (_where("kind == SPAN_KIND_SERVER"), "FLUO304", _where("kind == server")),
        (_where("kind in [SPAN_KIND_CLIENT, producer]"), "FLUO304", _where("kind in [client, producer]")),
        (_where("status == 'STATUS_CODE_ERROR'"), "FLUO304", _where("status == error")),
        # another tool's spelling of an intrinsic, bare: an attribute nobody sends (`service.name` is a resource's)
        (_where("service_name == 'api'"), "FLUO205", _where("service == 'api'")),
        (_where("serviceName == 'api'"), "FLUO205", _where("service == 'api'")),
        (_where("it.status_code == error"), "FLUO205", _where("it.status == error")),
        (_where("spanKind == server"), "FLUO205", _where("kind == server")),
        (_where("statusCode in [error, 'ok']"), "FLUO205", _where("status in [error, 'ok']")),
        # a method read as a field, misspelled: the fix calls it
        ("trace.spans.cont > 5", "FLUO202", "trace.spans.count() > 5"),
        # a field called like a method
        ("trace.spans()", "FLUO206", "trace.spans"),
        ("trace.root().duration > 1s", "FLUO206", "trace.root.duration > 1s"),
    ],
)
def test_a_suggestion_checks_where_it_goes(text: str, code: str, fixed: str | None) -> None:
    """Applied, the suggestion makes the diagnostic go and adds no error (`fixed` None: no suggestion fits)."""
    before = _diags(text)
    [d] = [d for d in before if d.code == code]
    if fixed is None:
        assert d.suggestion is None
        return
    assert _apply(text, d) == fixed
    after = _diags(fixed)
    assert not [a for a in after if a.code == code], [a.format() for a in after]
    assert sum(a.is_error for a in after) <= sum(b.is_error for b in before) - d.is_error, [a.format() for a in after]


@pytest.mark.parametrize(
    "text",
    [
        "traces.count() < 5",  # `trace.count()` takes a predicate: no fix for a per-trace rule
        "trace.count() > 5",  # `size`-like, but with no predicate
        "TRACE",  # a bare root is no value: `expect trace` would not check either
        _WINDOWED.format("trace"),
        _WINDOWED.format("traces"),  # nor are the window's traces, but counted
        # found by applying every suggestion (tests/test_properties.py): each of these gave one whose text
        # had a new error, a fix that fit its name but not its place
        "trace.spans.len(service == 'auth').count() > 50",  # `count(P)` is an int: it has no `.count()`
        "trace.spans.where(name == 'c').len(descendants.count() == 0)",  # an int where a boolean goes
        "trace.has(name == 'a').before(trace.size(name == 'b'))",  # `before` takes spans, not a count
        "True.spans.count() > 5",  # `true.spans`: a boolean has no fields
        _where("True == 'auth'"),  # `true == 'auth'` compares a boolean with a string
        "trace.has.where(service == 'auth').count() <= 5",  # `has()` takes a predicate
        "trace.it.where(service == 'auth').count() <= 5",  # `trace.id` is a string, with no `where`
        _SEVERITY.format("error").replace("severity", "lower"),  # `owner` takes a string
    ],
)
def test_no_suggestion_where_none_checks(text: str) -> None:
    assert all(d.suggestion is None for d in _diags(text))


@pytest.mark.parametrize(
    "pred",
    [
        'state == "x"',  # `start` is a timestamp: never a string
        'state != "x"',
        "state in ['a', 'b']",
        "state matches '^a'",
        "servce > 5",  # no string is `> 5`
        "stat contains 'x'",  # `start` holds no text
    ],
)
def test_an_intrinsic_that_could_not_stand_there_is_not_guessed(pred: str) -> None:
    """QA 6c: `state == "x"` was told "did you mean the intrinsic `start`?", whose fix compared a timestamp
    with a string; an attribute `state` is likely what was meant."""
    assert _diags(_where(pred)) == []


@pytest.mark.parametrize(
    ("pred", "typo"),
    [("servce == 'a'", "service"), ("stats == error", "status"), ("durtion > 1s", "duration"), ("stat < end", "start")],
)
def test_an_intrinsic_that_could_stand_there_is_guessed(pred: str, typo: str) -> None:
    [d] = [d for d in _diags(_where(pred)) if d.code == "FLUO205"]
    assert d.suggestion == typo


def test_every_name_from_another_language_leads_to_a_fluo_name() -> None:
    """`builtins.FOREIGN_NAMES` names nothing the registry lacks, and shadows no FLUO name."""
    from fluo_lang import builtins as b
    from fluo_lang import types as t
    from fluo_lang.typecheck import SEVERITIES

    receivers = {"spans": t.SPANS, "trace": t.TRACE, "window": t.WINDOW, "traces": t.TRACES}
    receivers |= {"list": t.list_of(t.ANY), "string": t.STRING}
    for where, names in b.FOREIGN_NAMES.items():
        for written, fix in names.items():
            if where == "severity":
                assert fix in SEVERITIES and written not in SEVERITIES
            elif where in ("status", "kind"):
                enum = t.STATUS if where == "status" else t.KIND
                assert fix in t.ENUMS[enum] and written.lower() not in t.ENUMS[enum]
            elif where == "span":  # a bare name: a span's intrinsic, in place of an attribute no intrinsic shadows
                assert fix in b.SPAN_FIELD_NAMES and b.lookup(t.SPAN, written) is None, written
            else:
                ty = receivers[where]
                assert b.lookup(ty, written) is None, (where, written)
                *path, method = fix.split(".")
                for step in path:
                    member = b.lookup(ty, step)
                    assert member is not None and member.kind == "field", (where, fix)
                    ty = member.result_type(())
                member = b.lookup(ty, method)
                assert member is not None and member.kind == "method", (where, fix)


# -- a number where a duration goes (QA, fix-hints) ----------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        (_where("duration > 500"), "500"),
        ("trace.duration < 5", "5"),
        (_where("1.5 <= duration"), "1.5"),
        (_where("duration >= 1e3"), "1000"),
    ],
)
def test_a_number_against_a_duration_names_the_units_it_could_mean_and_guesses_none(text: str, number: str) -> None:
    d = _only(text)
    assert (d.code, d.suggestion) == ("FLUO300", None)
    assert f"`{number}ms` if it counts milliseconds, `{number}s` if seconds" in d.message
    assert text[d.span.start : d.span.end] in (number, "1e3")  # the error points at the number


@pytest.mark.parametrize(
    ("text", "fixed"),
    [
        (_where("duration > 0"), _where("duration > 0s")),
        (_where("0 != duration"), _where("0s != duration")),
        ("trace.duration > 0.0", "trace.duration > 0s"),
    ],
)
def test_zero_against_a_duration_is_fixed_as_zero_seconds(text: str, fixed: str) -> None:
    """Zero is the one number whose unit does not matter."""
    d = _only(text)
    assert d.code == "FLUO300" and _apply(text, d) == fixed
    assert _diags(fixed) == []


@pytest.mark.parametrize(
    ("text", "says", "fixed"),
    [
        (_where("duration + 500 > 1s"), "`500ms` if it counts milliseconds, `500s` if seconds", None),
        ("trace.duration - 5 > 1s", "`5ms` if it counts milliseconds, `5s` if seconds", None),
        (_where("end - 0 > start"), "write `0s`", _where("end - 0s > start")),
        (_where("duration in [100, 200]"), "`[100ms, 200ms]` if they count milliseconds, `[100s, 200s]` if", None),
        (_where("500 in [1s, 2s]"), "`500ms` if it counts milliseconds, `500s` if seconds", None),
        (_where("2.5 not in [1s]"), "`2.5ms` if it counts milliseconds, `2.5s` if seconds", None),
        (_where("0 in [1s, 2s]"), "write `0s`", _where("0s in [1s, 2s]")),
        # `contains` is `in` turned round: the same hints, the same fix
        (_where("[1s, 2s] contains 500"), "`500ms` if it counts milliseconds, `500s` if seconds", None),
        (_where("[1s, 2s] contains 0"), "write `0s`", _where("[1s, 2s] contains 0s")),
        (_where("[100, 200] contains duration"), "`[100ms, 200ms]` if they count milliseconds", None),
    ],
)
def test_a_number_added_to_or_looked_for_among_durations_names_the_units(
    text: str, says: str, fixed: str | None
) -> None:
    d = _only(text)
    assert says in d.message, d.message
    if fixed is None:
        assert d.suggestion is None
    else:
        assert _apply(text, d) == fixed and _diags(fixed) == []


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (_where("duration in ['a']"), "`in`: cannot look for a duration in a list<string>"),
        (_where("['a'] contains duration"), "`contains`: a list<string> cannot contain a duration"),
    ],
)
def test_a_duration_among_strings_gets_no_unit_hint(text: str, says: str) -> None:
    """Only numbers take a unit: no `[ams]` for a list of strings."""
    d = _only(text)
    assert d.message == says, d.message


@pytest.mark.parametrize(
    ("text", "suggestion", "says"),
    [
        ("trace.spans.where(service == 'auth').count <= 5", "count()", "call it: `count()`"),
        ("trace.spans.where(service == 'auth').exists", "exists()", "call it: `exists()`"),
        # `exists()` is a bool, which `<= 5` refuses: the signature, no fix that adds FLUO300 (a property test's find)
        ("trace.spans.where(service == 'auth').exists <= 5", None, "call it: spans.exists([predicate: P]) -> bool"),
    ],
)
def test_a_method_read_as_a_field_is_fixed_only_where_its_call_fits(
    text: str, suggestion: str | None, says: str
) -> None:
    [d] = analyze([("m.fluo", text)]).diagnostics
    assert d.code == "FLUO202" and d.suggestion == suggestion, d.format()
    assert d.message.endswith(says), d.message


@pytest.mark.parametrize(
    ("text", "says", "suggestion"),
    [
        # the near name that does not fit its place is still named (the rest may be the mistake), with no fix
        ("rule a { expect trace.spans.cont() }", "did you mean `count`?", None),
        ("rule a { expect trace.spans.cont() > 1 }", "did you mean `count`?", "count"),
        ("rule a { tag: payments\n expect trace.spans.count() > 1 }", "did you mean `tags`?", None),
        ("rule a { severty: error\n expect trace.spans.count() > 1 }", "did you mean `severity`?", "severity"),
        ("trace.it.where(name == 'x').exists()", "did you mean `id`?", None),
    ],
)
def test_a_guess_that_does_not_fit_is_named_without_a_fix(text: str, says: str, suggestion: str | None) -> None:
    [d] = analyze([("m.fluo", text)]).diagnostics
    assert says in d.message and d.suggestion == suggestion, d.format()
    if suggestion is None and d.code in ("FLUO201", "FLUO202", "FLUO210"):  # the editor offers it, not preferred
        assert d.guess == says.removeprefix("did you mean `").removesuffix("`?"), d
    else:
        assert d.guess is None


@pytest.mark.parametrize(
    ("text", "guess"),
    [
        ("trace.spans.whree(duration > 1s).cuont() > 0", "where"),  # what follows is no member of spans
        ("trace.spans.where(name == 'a').exits() <= 5", "exists"),  # a bool, which `<= 5` refuses
        ("trace.spans.where(name == 'a').exists <= 5", None),  # the signature is said, with no name to change to
        ("trace.spans.where(name == 'c').len(descendants.count() == 0)", "count"),  # an int where a bool goes
        ("trace.it.where(name == 'x').exists()", "id"),
    ],
)
def test_a_did_you_mean_with_no_fix_carries_its_name_as_a_guess(text: str, guess: str | None) -> None:
    [d] = [d for d in analyze([("m.fluo", text)]).diagnostics if d.code in ("FLUO201", "FLUO202")]
    assert d.suggestion is None and d.guess == guess, d


@pytest.mark.parametrize(
    ("number", "written"), [("1.5e-7", "0.00000015"), ("1e20", "100000000000000000000"), ("2.5e3", "2500")]
)
def test_the_unit_hint_writes_the_number_as_given(number: str, written: str) -> None:
    """Review: `1.5e-7` was hinted as `0.ms` (float formatting lost the digits and left the dot)."""
    [d] = analyze([("m.fluo", f"trace.duration > {number}")]).diagnostics
    assert f"`{written}ms` if it counts milliseconds, `{written}s` if seconds" in d.message, d.message


@pytest.mark.parametrize(
    ("text", "fixed"),
    [
        (_where("service.size() > 3"), _where("service.length() > 3")),
        (_where("3 < service.size()"), _where("3 < service.length()")),
        # `length()` is an int: each of these would refuse it (FLUO300, FLUO302), so it is named with no fix
        (_where("service.size() == 'a'"), None),
        (_where("'a' == service.size()"), None),
        (_where("service.size() in ['a']"), None),
        (_where("service.size() matches 'a'"), None),
        (_where("service.size() contains 'a'"), None),
        (_where("service.size() + 1s > 0s"), None),
        ("trace.spans.size() == 'a'", None),
    ],
)
def test_an_unknown_method_is_fixed_only_where_what_the_fix_gives_fits(text: str, fixed: str | None) -> None:
    d = _only(text)
    assert d.code == "FLUO201" and d.message.startswith("unknown method `size`"), d.format()
    assert d.message.endswith(("did you mean `length`?", "did you mean `count`?")), d.format()
    if fixed is None:
        assert d.suggestion is None, d.format()
    else:
        assert _apply(text, d) == fixed and _diags(fixed) == []


@pytest.mark.parametrize(
    ("text", "fixed"),
    [
        (_where("srvice + 'x' == 'ax'"), _where("service + 'x' == 'ax'")),
        # `duration + 1` is FLUO302 (a number without a unit): the attribute `durtion` is no typo of it here
        (_where("durtion + 1 > 2"), None),
        # `service + 'x'` is a string, which `> 3` refuses (FLUO300)
        (_where("srvice + 'x' > 3"), None),
        (_where("-(srvice + 'x') * 2 > 3"), None),
    ],
)
def test_an_intrinsic_is_guessed_in_arithmetic_only_where_the_operator_takes_it(text: str, fixed: str | None) -> None:
    diags = _diags(text)
    if fixed is None:
        assert diags == [], [d.format() for d in diags]
    else:
        [d] = diags
        assert d.code == "FLUO205" and _apply(text, d) == fixed and _diags(fixed) == []


# -- attribute values (`any`) ---------------------------------------------------


def test_count_on_a_string_suggests_length() -> None:
    """QA docs 03: a string's size is `length()`; `count()` there says so."""
    d = _only(_where("name.count() <= 10"))
    assert (d.code, d.suggestion) == ("FLUO201", "length")
    assert "did you mean `length`?" in d.message


_ITEMS = {"list": ["a", "b", "c"], "text": "abcd", "number": 7, "empty": [], "map": {"k": "v"}}


@pytest.mark.parametrize(
    ("key", "length", "count"),
    [("list", 3, 3), ("empty", 0, 0), ("text", 4, None), ("number", None, None), ("map", None, None)],
)
def test_count_on_an_attribute_counts_a_list_as_length_does(key: str, length: int | None, count: int | None) -> None:
    """Closing note: `count()` on a list attribute was FLUO201 ("did you mean `length`?") while a typed list
    (`trace.services`) takes both: now an attribute's `count()` is its list's items, as `length()` is, and
    missing for any other kind, a string too (a string's characters are `length()`; it has no `count()`)."""
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="op", service="svc", start=0, end=1,
                attributes=_ITEMS)  # fmt: skip
    for method, want in (("length", length), ("count", count)):
        rule = f"rule r {{ detect trace.root.{key}.{method}() >= 0 }}"
        assert _diags(rule) == [], method
        fired = _fired(rule, span)
        assert [s.observed.get(method) for s in fired] == ([] if want is None else [want]), method
        missing = f"rule r {{ expect trace.root.{key}.{method}() >= 0 }}"  # a missing value compares false
        assert [s.rule for s in _fired(missing, span)] == ([] if want is not None else ["r"]), method


def test_a_typed_list_takes_length_as_a_list_attribute_does() -> None:
    """Review: `trace.services.length()` was FLUO201 ("did you mean `count`?") while a list attribute's size is
    `length()` (and `count()` there is FLUO201): a typed list now takes both, and they agree."""
    assert _diags("rule r { expect trace.services.length() == trace.services.count() }") == []
    spans = [
        Span(trace_id=b"\x01" * 16, span_id=bytes([i]) * 8, name="op", service=svc, start=0, end=1)
        for i, svc in enumerate(["a", "b", "a", "c"], start=1)
    ]
    [signal] = _fired("rule r { expect trace.services.length() < 3 }", *spans)
    assert signal.observed["length"] == 3


# -- no cascade after an argument of the wrong type ----------------------------


@pytest.mark.parametrize(
    "text",
    [
        "trace.spans.min(status) == ok",
        "ok == trace.spans.min(status)",
        "trace.spans.max(kind) != server",
        "trace.spans.min(status) in [ok, error]",
        "[ok] contains trace.spans.min(status)",
        "trace.spans.sum(name) > 1",
    ],
)
def test_an_argument_of_the_wrong_type_is_the_one_error(text: str) -> None:
    """`min(status)` is FLUO305; its result was `any`, so the `ok` beside it was also an unknown name (FLUO200)."""
    assert _only(text).code == "FLUO305"


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("trace.spans.max(end) - trace.spans.min(start) < 10m", None),
        ("trace.spans.max(end) > trace.root.start + 1s", None),
        ("rule w { window 1m\n  detect window.spans.max(end) - window.spans.min(start) > 1s }", None),
        ("trace.spans.min(start) == 1s", "cannot compare timestamp with duration"),
    ],
)
def test_min_and_max_take_a_timestamp_and_give_one(text: str, result: str | None) -> None:
    """A user's first rule on a trace's span (`max(end) - min(start)`) was FLUO305: `max` took no timestamp."""
    diags = _diags(text)
    assert [d.message.split(" using")[0] for d in diags] == ([result] if result else [])


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("trace.spans.sum(start) > 0s", "`sum(start - trace.start)`"),
        ("trace.spans.avg(end) > trace.start", "`avg(end - trace.start)`"),
        ("rule w { window 1m\n  detect window.spans.avg(it.end) > window.start }", "`avg(it.end - window.start)`"),
    ],
)
def test_sum_and_avg_of_a_timestamp_say_why_not_and_what_to_write(text: str, fix: str) -> None:
    d = _only(text)
    assert d.code == "FLUO305"
    assert "found timestamp: a timestamp is an instant, and a sum of instants means nothing" in d.message
    assert fix in d.message and "`min(" in d.message


def test_a_name_beside_an_error_that_is_no_enum_value_is_still_unknown() -> None:
    codes = [d.code for d in _diags("trace.spans.min(status) == okk")]
    assert codes == ["FLUO305", "FLUO200"]


# -- a binary operator's type error is said at the operator --------------------


@pytest.mark.parametrize(
    ("text", "op", "left", "right"),
    [
        ("trace.spans\n  .where(service == 'x')\n  .count() == '5'", "==", "an int", "a string"),
        ("(trace.spans.count()) >= // c\n  (true)", ">=", "an int", "a bool"),
        ("trace.has(name + 1s > 0s)", "+", "a string", "a duration"),
        ("trace.services not\n  in [1]", "not\n  in", "a list<string>", "a list<int>"),
    ],
)
def test_a_binary_operators_type_error_is_at_the_operator(text: str, op: str, left: str, right: str) -> None:
    """FLUO300 for a comparison over lines pointed at its first line (`trace.spans`), not at the `==` lines below:
    the error is said at the operator, and each operand is a related place naming its type."""
    d = _only(text)
    assert d.code in ("FLUO300", "FLUO302")
    assert text[d.span.start : d.span.end] == op
    assert [r.message for r in d.related] == [f"this is {left}", f"this is {right}"]
    assert all(r.span.end <= d.span.start or r.span.start >= d.span.end for r in d.related)
