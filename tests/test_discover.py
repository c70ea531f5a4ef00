"""`fluo discover`: known invariants are recovered, noise is not, and the output round-trips."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conformance_cases import load_cases
from hypothesis import given, settings
from hypothesis import strategies as st
from syrupy.assertion import SnapshotAssertion

from fluo_lang.api import analyze, compile_program
from fluo_lang.otlp import load_trace_file, spans_to_json
from fluo_lang.trace import Span, Trace, assemble
from fluo_run.cli import main
from fluo_run.discover.corpus import load_corpus, summarize
from fluo_run.discover.facts import (
    MANY_NAMES,
    Fact,
    Ident,
    Miner,
    Options,
    _implications,
    _reachable,
    discover,
    id_named,
    ident,
    mine_within,
)
from fluo_run.discover.render import confidence_text, fluo_text, json_report, rules_of
from fluo_run.discover.synthetic import shop_corpus

MS = 10**6
T0 = 1_767_225_600 * 10**9


def run_discover(traces: list[Trace], **options: Any) -> tuple[str, list[Fact]]:
    opts = Options(**options)
    corpus = summarize(traces, attributes=opts.attributes)
    facts = discover(corpus, opts)
    return fluo_text(rules_of(facts, corpus), corpus, opts), facts


def fired_by_rule(text: str, traces: list[Trace]) -> dict[str, set[str]]:
    """Rule id -> ids of the traces it fires on, through the one evaluator."""
    analysis = analyze([("discovered.fluo", text)])
    assert not analysis.has_errors, [d.format() for d in analysis.diagnostics]
    assert not analysis.diagnostics, [d.format() for d in analysis.diagnostics]
    program = compile_program(analysis)
    out: dict[str, set[str]] = {r.id: set() for r in analysis.rules}
    for s in program.evaluate(traces):
        assert s.trace_id is not None
        out[s.rule].add(s.trace_id)
    assert not program.errors
    return out


def rule_ids(text: str) -> list[str]:
    return [line.split()[1] for line in text.splitlines() if line.startswith("rule ")]


def rule_body(text: str, rule_id: str) -> str:
    start = text.index(f"rule {rule_id} {{")
    return text[start : text.index("\n}", start)]


class Builder:
    """Hand-made traces: `span(...)` adds to the current trace, `trace()` starts the next one."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.n = 0
        self.k = 0

    def trace(self) -> Builder:
        self.n += 1
        return self

    def span(
        self,
        name: str,
        service: str = "svc",
        start: int = 0,
        dur: int = 10,
        parent: Span | None = None,
        status: str = "ok",
        **attributes: Any,
    ) -> Span:
        self.k += 1
        s = Span(
            trace_id=self.n.to_bytes(16, "big"),
            span_id=self.k.to_bytes(8, "big"),
            parent_id=parent.span_id if parent else b"",
            name=name,
            service=service,
            start=T0 + start * MS,
            end=T0 + (start + dur) * MS,
            status=status,
            attributes=attributes,
        )
        self.spans.append(s)
        return s

    def traces(self) -> list[Trace]:
        return assemble(self.spans)


@pytest.fixture(scope="module")
def shop() -> list[Trace]:
    return assemble(shop_corpus(120, noise=3))


def test_known_invariants_of_the_shop_are_recovered(shop: list[Trace]) -> None:
    text, _ = run_discover(shop)
    ids = set(rule_ids(text))
    expected = {
        # ordering: the charge needs an earlier fraud check
        "payment_charge_card_after_payment_fraud_check": "always { trace.has(name == 'payment.fraud_check')"
        ".before(trace.has(name == 'payment.charge_card')) }",
        # alternatives under one parent never meet: at most two payment spans, and a fraud check comes with a charge
        "payment_count_max": "expect trace.spans.where(service == 'payment').count() <= 2",
        "payment_charge_card_with_payment_fraud_check": "always { trace.has(name == 'payment.charge_card') and "
        "trace.has(name == 'payment.fraud_check') }",
        "auth_check_password_under_auth_login": "all(parent.name == 'login')",
        "payment_charge_card_under_checkout": "all(parent.name == 'checkout')",
        "payment_refund_under_checkout": "all(parent.name == 'checkout')",
        # kept although those place every payment operation seen under checkout: a new one may be called
        # from frontend (QA N6)
        "frontend_never_calls_payment": "none(parent.service == 'frontend')",
        "auth_login_count_max": "count() <= 3",
        "no_errors": "expect trace.spans.none(status == error)",
        "payment_charge_card_currency_values": "all(currency in ['EUR', 'USD'])",
        "payment_refund_currency_values": "all(currency == 'EUR')",
        "inventory_reserve_sku_count_range": "all(sku.count >= 1 and sku.count <= 9)",
    }
    for rule_id, clause in expected.items():
        assert rule_id in ids, f"{rule_id} not discovered; got {sorted(ids)}"
        assert clause in rule_body(text, rule_id)
    # implied by those on any trace (QA M6)
    assert "payment_fraud_check_excludes_payment_refund" not in ids
    assert "tags: [discovered, order]" in rule_body(text, "payment_charge_card_after_payment_fraud_check")
    charged = sum(1 for t in shop if any(s.name == "payment.charge_card" for s in t.spans))
    assert f"support {charged}, confidence 100%" in rule_body(text, "payment_charge_card_after_payment_fraud_check")


def test_round_trip_no_signal_on_the_corpus_it_came_from(shop: list[Trace]) -> None:
    text, facts = run_discover(shop)
    assert len(facts) > 20
    fired = fired_by_rule(text, shop)
    assert {r: ts for r, ts in fired.items() if ts} == {}


def test_noise_below_the_support_threshold_makes_no_rule(shop: list[Trace]) -> None:
    text, _ = run_discover(shop, min_support=5)
    assert "debug.dump" not in text
    lowered, _ = run_discover(shop, min_support=3)
    assert "debug.dump" in lowered  # the same noise is proposed once it reaches the threshold


def test_rare_exceptions_are_allowed_and_listed_exactly() -> None:
    traces = assemble(shop_corpus(200, exceptions=3))
    strict, _ = run_discover(traces)
    assert "payment_charge_card_after_payment_fraud_check" not in rule_ids(strict)
    text, facts = run_discover(traces, min_confidence=0.97)
    order = next(f for f in facts if f.key == "payment_charge_card_after_payment_fraud_check")
    assert len(order.exceptions) == 3
    assert "// exceptions (3): " in text
    # Every listed exception is a trace the rule fires on, and no other.
    fired = fired_by_rule(text, traces)
    corpus_ids = [t.id_hex for t in traces]
    for rule in rules_of(facts, summarize(traces)):
        listed = {corpus_ids[i] for i in rule.fact.exceptions}
        assert fired[rule.id] == listed, rule.id
        assert rule.fact.confidence >= 0.97


def test_below_full_confidence_a_service_that_never_errs_keeps_its_own_rule() -> None:
    """`inventory` never errs and `pay` rarely does: at 0.9 the corpus-wide rule (with exceptions) would hide that."""
    b = Builder()
    for i in range(30):
        root = b.trace().span("GET /", service="front")
        b.span("reserve", service="inventory", parent=root)
        b.span("charge", service="pay", parent=root, status="error" if i < 2 else "ok")
    traces = b.traces()
    text, facts = run_discover(traces, min_confidence=0.9)
    errs = {f.key: len(f.exceptions) for f in facts if f.kind == "error_free"}
    assert errs == {"front_no_errors": 0, "inventory_no_errors": 0, "pay_no_errors": 2}
    assert "no_errors" not in rule_ids(text)
    strict, _ = run_discover(traces)  # at 1.0, only the services that never err, as before
    assert {r for r in rule_ids(strict) if r.endswith("no_errors")} == {"front_no_errors", "inventory_no_errors"}
    clean = Builder()
    for _ in range(30):
        clean.trace().span("GET /", service="front")
    only, _ = run_discover(clean.traces(), min_confidence=0.9)
    assert [r for r in rule_ids(only) if r.endswith("no_errors")] == ["no_errors"]  # nothing errs: one rule


def test_transitive_co_occurrence_is_pruned() -> None:
    b = Builder()
    for _ in range(6):
        b.trace()
        for name in ("a", "b", "c"):
            b.span(name)
    for _ in range(6):
        b.trace()
        for name in ("b", "c"):
            b.span(name)
    for _ in range(6):
        b.trace()
        b.span("c")
    for _ in range(6):
        b.trace()
        b.span("e")
    text, facts = run_discover(b.traces(), attributes=False)
    pairs = {(f.clauses[0][1], f.clauses[1][1]) for f in facts if f.kind == "cooccurrence"}
    assert pairs == {
        ("trace.has(name == 'a')", "trace.has(name == 'b')"),
        ("trace.has(name == 'b')", "trace.has(name == 'c')"),
    }
    assert fired_by_rule(text, b.traces()) == {r: set() for r in rule_ids(text)}


def test_operations_that_always_meet_make_one_rule() -> None:
    b = Builder()
    for i in range(12):
        b.trace()
        if i < 6:
            b.span("x", start=0, dur=10)
            b.span("y", start=0, dur=10)
        b.span("z")
    _, facts = run_discover(b.traces(), attributes=False)
    together = [f for f in facts if f.kind == "together"]
    assert [f.key for f in together] == ["svc_x_with_svc_y"]
    assert not any(f.kind == "cooccurrence" and {0, 1} == set(f.ops) for f in facts)


def test_a_together_rules_id_stays_as_its_group_grows_or_shrinks() -> None:
    """A group's id was `x_with_2_others`, `x_with_3_others` once a member joined: an adopted id changed between
    runs. It is named by its first two members (by service, then name), whatever its size."""
    keys = []
    for members in (("x", "y"), ("x", "y", "z"), ("x", "y", "z", "zz")):
        b = Builder()
        for i in range(12):
            b.trace()
            if i < 6:
                for name in members:
                    b.span(name, start=0, dur=10)
            b.span("w")
        _, facts = run_discover(b.traces(), attributes=False)
        together = [f for f in facts if f.kind == "together"]
        assert [len(f.ops) for f in together] == [len(members)]
        keys.append(together[0].key)
    assert keys == ["svc_x_with_svc_y"] * 3


def test_order_descriptions_say_which_span_of_a_repeated_operation_they_order() -> None:
    """`A.before(B)` holds when some A ends before the last B starts: with retries, "has 'check' ending before
    it starts" read as before every 'charge', although a first 'charge' before any 'check' keeps to the rule."""
    b = Builder()
    for i in range(12):
        b.trace()
        if i % 3 == 0:
            b.span("charge", start=0, dur=5)  # a first attempt, before the check
        b.span("check", start=10, dur=10)
        b.span("charge", start=30, dur=10)
    text, facts = run_discover(b.traces(), attributes=False)
    orders = {f.summary for f in facts if f.kind == "order"}
    assert "Every trace with 'charge' has 'check' ending before the last 'charge' starts" in orders, orders
    assert {r: ts for r, ts in fired_by_rule(text, b.traces()).items() if ts} == {}


def test_bounds_implied_by_a_wider_bound_are_not_repeated() -> None:
    b = Builder()
    for i in range(6):
        b.trace()
        root = b.span("root", "front", dur=100)
        for _ in range(1 + i % 3):
            b.span("login", "auth", parent=root)
    _, facts = run_discover(b.traces(), attributes=False)
    counts = {f.key: f.detail["bound"] for f in facts if f.kind == "count"}
    # auth has one operation, so its bound is the login bound; front has one span per trace; the
    # trace's bound, 4, is theirs added up, yet kept: a new service would add spans neither counts (QA N6)
    assert counts == {"auth_count_max": 3, "front_count_max": 1, "trace_span_count_max": 4}


def test_orderings_through_parents_are_kept() -> None:
    """QA discover r13: `check before charge` was left out because `login before pay` was kept, check runs under
    login and charge under pay. No kept rule says a child runs within its parent (clock skew), nor that pay occurs
    once (a second pay, without charge, is the latest one `before` compares), so that did not hold on any trace."""
    b = Builder()
    for _ in range(6):
        b.trace()
        root = b.span("root", dur=100)
        login = b.span("login", start=0, dur=20, parent=root)
        b.span("check", start=5, dur=5, parent=login)
        pay = b.span("pay", start=30, dur=50, parent=root)
        b.span("charge", start=40, dur=10, parent=pay)
    _, facts = run_discover(b.traces(), attributes=False)
    orders = {f.key for f in facts if f.kind == "order"}
    assert orders == {
        "svc_pay_after_svc_login",
        "svc_pay_after_svc_check",
        "svc_charge_after_svc_login",
        "svc_charge_after_svc_check",
    }


def test_an_ordering_through_a_repeated_parent_is_not_left_out() -> None:
    """QA discover r13: P twice on some traces, B under the first; a new trace with A between B and the second P
    broke `A before B` (held on every trace of the corpus) and no discovered rule."""
    b = Builder()
    for i in range(40):
        b.trace()
        root = b.span("R", dur=100)
        b.span("A", start=0, dur=10, parent=root)
        p = b.span("P", start=20, dur=30, parent=root)
        b.span("B", start=25, dur=5, parent=p)
        if i % 2:
            b.span("P", start=60, dur=30, parent=root)
    text, _ = run_discover(b.traces(), attributes=False)
    new = Builder()
    new.n = 99
    new.trace()
    root = new.span("R", dur=100)
    p = new.span("P", start=0, dur=30, parent=root)
    new.span("B", start=5, dur=5, parent=p)
    new.span("A", start=15, dur=10, parent=root)
    new.span("P", start=60, dur=30, parent=root)
    fired = {rule for rule, traces in fired_by_rule(text, new.traces()).items() if traces}
    assert "svc_b_after_svc_a" in fired


def test_a_transitive_ordering_is_left_out_only_through_one_span() -> None:
    """`A before C` follows from `A before B` and `B before C` when B occurs once: with two B spans the latest B
    may start after C does (B [0, 1], A ending at 5, C starting at 3, B [10, 11])."""
    for twice in (False, True):
        b = Builder()
        for i in range(12):
            b.trace()
            b.span("a", start=0, dur=10)
            b.span("b", start=20, dur=10)
            if twice and i % 2:
                b.span("b", start=22, dur=5)
            b.span("c", start=40, dur=10)
        _, facts = run_discover(b.traces(), attributes=False)
        orders = {f.key for f in facts if f.kind == "order"}
        assert ("svc_c_after_svc_a" in orders) == twice, orders


def test_a_trace_without_an_operation_an_ordering_needs_breaks_a_kept_rule() -> None:
    """Orderings are left out only where kept rules bring their operations along: a new trace with
    login and pay but no check (which every pay came after) breaks a rule that is written."""
    b = Builder()
    for i in range(40):
        b.trace()
        root = b.span("root", dur=100)
        if i % 2:
            login = b.span("login", start=0, dur=20, parent=root)
            b.span("check", start=5, dur=5, parent=login)
            b.span("pay", start=30, dur=50, parent=root)
    text, facts = run_discover(b.traces(), attributes=False)
    assert "svc_pay_after_svc_login" in {f.key for f in facts if f.kind == "order"}
    new = Builder()
    new.n = 99
    new.trace()
    root = new.span("root", dur=100)
    new.span("login", start=0, dur=20, parent=root)
    new.span("pay", start=30, dur=50, parent=root)
    fired = {rule for rule, traces in fired_by_rule(text, new.traces()).items() if traces}
    assert fired, "a trace the corpus never showed breaks no discovered rule"


def test_max_rules_keeps_the_first_kinds(shop: list[Trace]) -> None:
    _, facts = run_discover(shop, max_rules=3)
    assert [f.kind for f in facts] == ["count", "count", "count"]
    _, none = run_discover(shop, max_rules=0)
    assert none == []


def idents(facts: list[Fact]) -> set[Ident]:
    return {ident(f) for f in facts}


def test_max_rules_cutting_a_rule_finds_what_it_implied() -> None:
    """A presence rule left out because a cut rule implied it was lost without a word."""
    b = Builder()
    for _ in range(10):
        b.trace()
        b.span("pay", "billing", 5, 20, parent=b.span("checkout", "web", 0, 50))
    corpus = summarize(b.traces(), attributes=True)
    found, chosen = mine_within(Miner(corpus, Options()), 100)
    keys = {f.key for f in chosen}
    # pay in every trace, and under checkout: checkout is in every trace too, said by those two
    assert {"billing_pay_in_every_trace", "billing_pay_under_web_checkout"} <= keys
    assert "web_checkout_in_every_trace" not in keys
    found, chosen = mine_within(Miner(corpus, Options(max_rules=4)), 4)
    assert "billing_pay_under_web_checkout" not in {f.key for f in chosen}
    assert "web_checkout_in_every_trace" in {f.key for f in found}  # counted as left out, not lost


def test_max_rules_loses_nothing_silently(shop: list[Trace]) -> None:
    """Under any --max-rules, every rule found without a cut is written, counted as left out, or
    (an operation in every trace) implied by the written ones."""
    corpus = summarize(shop, attributes=True)
    everything, _ = mine_within(Miner(corpus, Options()), 10**6)
    for max_rules in range(len(everything) + 2):
        found, chosen = mine_within(Miner(corpus, Options(max_rules=max_rules)), max_rules)
        assert len(chosen) == min(max_rules, len(found))
        assert idents(chosen) <= idents(found)
        implies = _implications(chosen)
        present = {f.ops[0] for f in chosen if f.kind == "presence"}
        present.update(*(_reachable(op, implies) for op in list(present)))
        for f in everything:
            assert ident(f) in idents(found) or (f.kind == "presence" and f.ops[0] in present), (max_rules, f.key)


def test_one_service_still_bounds_each_operation() -> None:
    """A service bound equal to the trace's is left out, and its operations' lower bounds went with it."""
    b = Builder()
    for i in range(10):
        b.trace()
        root = b.span("checkout", "web", 0, 50)
        for _ in range(i % 4 + 1):
            b.span("query", "web", 5, 20, parent=root)
    _, facts = run_discover(b.traces())
    counts = {f.key: f.detail["bound"] for f in facts if f.kind == "count"}
    assert counts == {"trace_span_count_max": 5, "web_checkout_count_max": 1, "web_query_count_max": 4}


def test_example_traces_round_trip() -> None:
    root = Path(__file__).resolve().parent.parent / "examples" / "traces"
    spans = [s for p in sorted(root.glob("*.json*")) for s in load_trace_file(p)]
    traces = assemble(spans)
    text, facts = run_discover(traces, min_support=1)
    assert facts
    assert {r: ts for r, ts in fired_by_rule(text, traces).items() if ts} == {}


# "\ud800" is half a surrogate pair, which JSON text can hold but a FLUO string cannot (QA M1)
NAMES = [
    "a",
    "it's",
    'say "hi"',
    "back\\slash",
    "new\nline",
    "tab\there",
    "ünï",
    "GET /x",
    "in",
    "when",
    "😀",
    "s\ud800",
]
KEYS = ["k", "http.method", "status", "a-b", "in.x", "servce", "name", "x y", "k\udc00"]
VALUES = st.one_of(
    st.integers(-5, 5),
    st.sampled_from(["x", "", "y'z", 'q"', "\\", "v\udfff"]),
    st.booleans(),
    st.floats(-2, 2, allow_nan=False, width=32),
    st.just(1e-7),
)
SPANS = st.tuples(
    st.sampled_from(NAMES),
    st.sampled_from(["svc", "o'svc", "s2", "\ud83d"]),
    st.integers(0, 5),
    st.integers(0, 40),
    st.integers(0, 30),
    st.sampled_from(["ok", "error", "unset"]),
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=2),
)
CORPORA = st.lists(st.lists(SPANS, min_size=1, max_size=6), min_size=3, max_size=10)


def build(corpus: Sequence[Sequence[tuple[Any, ...]]]) -> list[Trace]:
    spans: list[Span] = []
    for ti, trace in enumerate(corpus):
        mine: list[Span] = []
        for name, service, parent, start, dur, status, attrs in trace:
            up = mine[parent % len(mine)] if mine and parent else None
            s = Span(
                trace_id=(ti + 1).to_bytes(16, "big"),
                span_id=(len(spans) + 1).to_bytes(8, "big"),
                parent_id=up.span_id if up else b"",
                name=name,
                service=service,
                start=T0 + start * MS,
                end=T0 + (start + dur) * MS,
                status=status,
                attributes=attrs,
            )
            mine.append(s)
            spans.append(s)
    return assemble(spans)


@settings(max_examples=40, deadline=None)
@given(CORPORA, st.sampled_from([1.0, 0.8]))
def test_any_corpus_round_trips(corpus: list[list[tuple[Any, ...]]], confidence: float) -> None:
    """Odd names, keys and values; whatever is proposed checks, and fires exactly on its listed exceptions."""
    traces = build(corpus)
    summary = summarize(traces)
    opts = Options(min_support=1, min_confidence=confidence)
    facts = discover(summary, opts)
    rules = rules_of(facts, summary)
    text = fluo_text(rules, summary, opts)
    fired = fired_by_rule(text, traces)
    for rule in rules:
        assert fired[rule.id] == {summary.traces[i].trace_id for i in rule.fact.exceptions}, rule.text


def test_fluo_output_snapshot(snapshot: SnapshotAssertion) -> None:
    traces = assemble(shop_corpus(40, exceptions=2))
    text, _ = run_discover(traces, min_confidence=0.9)
    assert text == snapshot


def test_json_output_snapshot(snapshot: SnapshotAssertion) -> None:
    traces = assemble(shop_corpus(40, exceptions=2))
    opts = Options(min_confidence=0.9, attributes=False)
    corpus = summarize(traces)
    report = json_report(rules_of(discover(corpus, opts), corpus), corpus, opts)
    assert report == snapshot
    with_exceptions = [r for r in report["rules"] if r["exceptions"]]
    assert with_exceptions
    for r in report["rules"]:
        assert r["confidence"] >= 0.9
        assert r["confidence"] == round(1 - len(r["exceptions"]) / r["support"], 6)


# -- the command ----------------------------------------------------------------


@pytest.fixture
def shop_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.json"
    path.write_text(json.dumps(spans_to_json(shop_corpus(60, exceptions=2, noise=1))), encoding="utf-8")
    return path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, ["discover", *args])


def test_cli_writes_rules_that_check(shop_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "rules" / "shop.fluo"
    out.parent.mkdir()
    result = invoke(str(shop_file), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "rules from 60 traces" in result.stderr
    check = CliRunner().invoke(main, ["check", str(out)])
    assert check.exit_code == 0, check.output
    evaluated = CliRunner().invoke(main, ["eval", str(out), "--traces", str(shop_file)])
    assert evaluated.exit_code == 0
    assert evaluated.stdout == ""


def test_cli_output_dash_is_stdout(shop_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    dashed, plain = invoke(str(shop_file), "-o", "-"), invoke(str(shop_file))
    assert dashed.exit_code == 0 and dashed.stdout == plain.stdout and "rule " in dashed.stdout
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize(("fmt", "name"), [("json", "rules.fluo"), ("fluo", "rules.json")])
def test_cli_a_format_the_outputs_suffix_contradicts_is_a_usage_error(
    shop_file: Path, tmp_path: Path, fmt: str, name: str
) -> None:
    """`--format json -o rules.fluo` wrote JSON into a .fluo name (and `--format fluo -o rules.json` the rules
    into a .json one) without a word."""
    out = tmp_path / name
    result = invoke(str(shop_file), "--format", fmt, "-o", str(out))
    assert result.exit_code == 2
    assert f"--format {fmt}" in result.stderr and str(out) in result.stderr
    assert not out.exists()


def test_cli_without_a_format_a_json_output_takes_json(shop_file: Path, tmp_path: Path) -> None:
    """`-o report.json` wrote the rules as FLUO text into it; the suffix says JSON, as --format json does."""
    out, explicit = tmp_path / "report.json", tmp_path / "explicit" / "report.json"
    explicit.parent.mkdir()
    assert invoke(str(shop_file), "-o", str(out)).exit_code == 0
    assert invoke(str(shop_file), "--format", "json", "-o", str(explicit)).exit_code == 0
    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(explicit.read_text(encoding="utf-8"))
    assert invoke(str(shop_file), "-o", str(tmp_path / "rules.txt")).exit_code == 0  # no suffix says otherwise
    upper = tmp_path / "report.JSON"  # review: a suffix in capitals was FLUO text, and not refused with --format fluo
    assert invoke(str(shop_file), "-o", str(upper)).exit_code == 0
    assert json.loads(upper.read_text(encoding="utf-8")) == json.loads(out.read_text(encoding="utf-8"))
    assert invoke(str(shop_file), "--format", "fluo", "-o", str(upper)).exit_code == 2
    assert "\nrule rules_auth_" in (tmp_path / "rules.txt").read_text(encoding="utf-8")


def test_cli_json_lists_support_confidence_and_exceptions(shop_file: Path) -> None:
    result = invoke(str(shop_file), "--format", "json", "--min-confidence", "0.95")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["traces"] == 60
    rule = next(r for r in report["rules"] if r["id"] == "payment_charge_card_after_payment_fraud_check")
    assert rule["kind"] == "order"
    assert len(rule["exceptions"]) == 2
    assert rule["confidence"] == round(1 - 2 / rule["support"], 6)
    assert rule["text"].startswith("rule payment_charge_card_after_payment_fraud_check {")
    strict = json.loads(invoke(str(shop_file), "--format", "json").stdout)
    assert all("exceptions" not in r for r in strict["rules"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "fluo: no traces: give OTLP JSON or protobuf files"),
        (("missing.json",), "missing.json"),
        (("--min-confidence", "2", "x.json"), "invalid value for '--min-confidence'"),
        (("--min-confidence", "0", "x.json"), "invalid value for '--min-confidence'"),  # rules that always fire
        (("--min-confidence", "nan", "x.json"), "invalid value for '--min-confidence': nan is not a number"),
        (("--duration-quantile", "nan", "x.json"), "invalid value for '--duration-quantile': nan is not a number"),
    ],
)
def test_cli_usage_errors_are_one_line(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_cli_bad_trace_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceSpans": 5}', encoding="utf-8")
    result = invoke(str(bad))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "bad.json" in result.stderr


def test_facts_shared_by_every_operation_are_written_once() -> None:
    b = Builder()
    for i in range(8):
        b.trace()
        root = b.span("root", "front", dur=10, k=1, level=i * 10)
        b.span("login", "auth", dur=10, parent=root, k=1, level=i * 9)
        b.span("check", "auth", dur=10, parent=root, k=1, level=40 + i % 3)
    text, facts = run_discover(b.traces())
    attrs = sorted(f.clauses[0][1] for f in facts if f.kind == "attribute")
    assert attrs == [
        "trace.spans.all(k == 1)",
        "trace.spans.all(level >= 0 and level <= 70)",
        # much narrower than the corpus-wide range, so kept
        "trace.spans.where(name == 'check').all(level >= 40 and level <= 42)",
    ]
    durations = [f.clauses[0][1] for f in facts if f.kind == "duration"]
    assert durations == ["trace.spans.all(duration <= 10ms)"]
    assert fired_by_rule(text, b.traces()) == {r: set() for r in rule_ids(text)}


def test_conformance_traces_round_trip() -> None:
    """Each of the conformance table's trace files as a corpus of its own (odd ids, orphans, many roots)."""
    paths = sorted({p for case in load_cases() for p in case.trace_files()})
    assert paths
    for path in paths:
        traces = assemble(load_trace_file(path))
        text, _ = run_discover(traces, min_support=1)
        assert {r: ts for r, ts in fired_by_rule(text, traces).items() if ts} == {}, path


def test_duration_bounds_at_a_quantile_list_the_slow_traces() -> None:
    b = Builder()
    for i in range(20):
        b.trace()
        b.span("work", dur=10 + 5 * i)  # 10ms .. 105ms
    traces = b.traces()
    _, strict = run_discover(traces, attributes=False)
    assert next(f for f in strict if f.kind == "duration").detail["bound_ns"] == 150 * MS  # 105ms rounded up
    text, facts = run_discover(traces, attributes=False, min_confidence=0.8, duration_quantile=0.9)
    duration = next(f for f in facts if f.kind == "duration")
    assert duration.detail["bound_ns"] == 100 * MS  # the 90% quantile (100ms) is already round
    assert [traces[i].spans[0].duration for i in duration.exceptions] == [105 * MS]
    assert fired_by_rule(text, traces)["svc_work_duration_max"] == {traces[duration.exceptions[0]].id_hex}


def test_value_sets_are_small_or_nothing(shop: list[Trace]) -> None:
    _, facts = run_discover(shop, max_values=1)
    currency = {f.key: f.clauses[0][1] for f in facts if f.detail.get("key") == "currency"}
    # charges use two currencies: only that the attribute is set is left; refunds use one
    assert currency == {
        "payment_charge_card_currency_present": "trace.spans.where(name == 'payment.charge_card').all(currency != '')",
        "payment_refund_currency_values": "trace.spans.where(name == 'payment.refund').all(currency == 'EUR')",
    }


def test_rare_operations_are_not_called_exclusive() -> None:
    b = Builder()
    for i in range(40):
        b.trace()
        root = b.span("root")
        b.span("common", parent=root)
        if i < 6:
            b.span("rare_a", parent=root)
        elif i < 12:
            b.span("rare_b", parent=root)
    _, facts = run_discover(b.traces(), attributes=False)
    # 6 x 6 / 40 < 1 expected meeting by chance: never meeting says nothing
    assert not [f for f in facts if f.kind == "exclusion"]


@pytest.mark.parametrize("how", ["file", "link", "folder"])
def test_cli_refuses_to_overwrite_an_input(shop_file: Path, tmp_path: Path, how: str) -> None:
    """M2: `-o` naming a trace file that is read (itself, through a link, or inside an input folder) exits 2."""
    before = shop_file.read_bytes()
    target, inputs = shop_file, [str(shop_file)]
    if how == "link":
        target = tmp_path / "link.json"
        target.symlink_to(shop_file)
    if how == "folder":
        inputs = [str(tmp_path)]
    result = invoke(*inputs, "-o", str(target))
    assert result.exit_code == 2
    assert result.stderr == f"fluo: refusing to overwrite input {target}: it is one of the trace files read\n"
    assert shop_file.read_bytes() == before


def test_cli_refuses_fixtures_inside_an_input_folder(shop_file: Path, tmp_path: Path) -> None:
    """M2: fixtures written under an input folder would be read as traces by the next run."""
    result = invoke(str(tmp_path), "-o", str(tmp_path / "rules.fluo"), "--tests", str(tmp_path))
    assert result.exit_code == 2
    assert "refusing to write test fixtures into" in result.stderr and result.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.json"]


@pytest.mark.parametrize("name", ["report.json", "sub/report.jsonl.gz"])
def test_cli_refuses_a_report_the_next_run_would_read_as_a_trace(shop_file: Path, tmp_path: Path, name: str) -> None:
    """QA docs r04: `fluo discover traces/ -o traces/report.json` wrote its report where the next run read it as a
    trace, and stopped there. Refused as fixtures inside an input folder are, before anything is written."""
    out = tmp_path / name
    result = invoke(str(tmp_path), "-o", str(out))
    assert result.exit_code == 2
    folder = tmp_path.resolve()
    assert (
        result.stderr
        == f"fluo: refusing to write {out}: the traces in {folder} would include it (the next run reads it)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.json"]


@pytest.mark.parametrize("name", ["rules.fluo", ".hidden/report.json", "node_modules/report.json", ".report.json"])
def test_cli_writes_beside_the_traces_what_the_next_run_does_not_read(
    shop_file: Path, tmp_path: Path, name: str
) -> None:
    result = invoke(str(tmp_path), "-o", str(tmp_path / name))
    assert result.exit_code == 0, result.output
    assert invoke(str(tmp_path), "-o", str(tmp_path / name)).exit_code == 0  # the next run, as it was


def test_cli_output_replaces_an_existing_rule_file(shop_file: Path, tmp_path: Path) -> None:
    """-o replaces a file that is not an input, as compilers' -o do (documented)."""
    out = tmp_path / "rules.fluo"
    out.write_text("// old\n", encoding="utf-8")
    result = invoke(str(shop_file), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith("// Discovered by `fluo discover`")


def test_ids_and_timestamps_make_no_range() -> None:
    """M4: numbers that are nearly all distinct and grow with time are ids or timestamps; their range says nothing
    about tomorrow's traces. A measured number of the same spread keeps its range."""
    b = Builder()

    def day(first: int, n: int) -> None:
        for i in range(first, first + n):
            b.trace()
            b.span(
                "order",
                start=i * 60_000,
                seq=100_000 + i,
                at_ms=1_767_225_600_000 + i * 60_000,
                left=10**6 - i,
                amount=(i * 7919) % 1000,
            )

    day(0, 40)
    today = b.traces()
    text, facts = run_discover(today)
    ranged = {f.detail["key"] for f in facts if "low" in f.detail}
    assert ranged == {"amount"}
    day(2000, 10)
    tomorrow = [t for t in b.traces() if t.id_hex not in {x.id_hex for x in today}]
    fired = fired_by_rule(text, tomorrow)
    assert {r: ts for r, ts in fired.items() if ts and "amount" not in r} == {}


def test_keys_named_as_ids_make_no_range() -> None:
    """QA (r03): random customer ids (all distinct, not growing with time) got a range, which tomorrow's ids of
    the same distribution broke. A key named as an id gets none; a number named otherwise keeps its range."""
    b = Builder()
    rng = random.Random(1)
    for i in range(40):
        b.trace()
        ids = {"customer.id": rng.randrange(1, 10**12), "order_id": rng.randrange(10**6), "cartId": rng.randrange(99)}
        b.span("order", start=i * 60_000, **ids, paid=rng.randrange(1, 1000))
    _, facts = run_discover(b.traces())
    assert {f.detail["key"] for f in facts if "low" in f.detail} == {"paid"}


def test_a_value_seen_on_one_trace_opens_the_set() -> None:
    """M5: a closed set needs three traces per value; at 1.0 a rare value leaves no set, below it is an exception."""
    b = Builder()
    for i in range(30):
        b.trace()
        code = {3: 404, 17: 503}.get(i, 200)
        b.span("get", code=code, region="us" if i == 9 else "eu", tier=("a", "b", "c")[i % 3])
    traces = b.traces()
    _, strict = run_discover(traces)
    sets = {f.detail["key"]: f.detail["values"] for f in strict if "values" in f.detail}
    assert sets == {"tier": ["a", "b", "c"]}
    _, loose = run_discover(traces, min_confidence=0.9)
    sets = {f.detail["key"]: (f.detail["values"], len(f.exceptions)) for f in loose if "values" in f.detail}
    assert sets == {"code": ([200], 2), "region": (["eu"], 1), "tier": (["a", "b", "c"], 0)}


def test_presence_that_other_rules_bring_along_is_pruned() -> None:
    """M6: an operation's presence that an order rule brings along with another operation present everywhere is
    left out. N6: a service's bound equal to its operations' bounds added up is kept (a new operation adds spans
    neither operation bound counts)."""
    b = Builder()
    for i in range(8):
        b.trace()
        root = b.span("root", "front", dur=100)
        b.span("a", "back", start=0, dur=5, parent=root)
        for k in range(1 + i % 2):
            b.span("b", "back", start=10 + k, dur=5, parent=root)
    text, facts = run_discover(b.traces(), attributes=False)
    counts = {f.key: f.detail["bound"] for f in facts if f.kind == "count"}
    assert counts == {
        "back_a_count_max": 1,
        "back_b_count_max": 2,
        "back_count_max": 3,
        "front_count_max": 1,
        "trace_span_count_max": 4,
    }
    assert [f.key for f in facts if f.kind == "presence"] == ["back_b_in_every_trace"]
    assert "always { trace.has(name == 'a').before(trace.has(name == 'b')) }" in rule_body(text, "back_b_after_back_a")


def test_a_new_operation_breaks_a_kept_rule_where_it_broke_a_pruned_one() -> None:
    """N6: "front never calls pay" and the bounds of pay and of the trace were pruned because the parent rules and
    the operations' bounds, over the operations seen, add up to them; a new pay operation called from front then
    fired no kept rule. A rule is left out only when the kept ones imply it on any trace."""
    b = Builder()
    for i in range(8):
        b.trace()
        root = b.span("GET /", "front", dur=100)
        order = b.span("order", "shop", start=1, dur=50, parent=root)
        b.span("charge", "pay", start=2, dur=5, parent=order)
        if i % 2:
            b.span("fraud", "pay", start=10, dur=5, parent=order)
    text, _ = run_discover(b.traces(), attributes=False)
    ids = rule_ids(text)
    assert {"front_never_calls_pay", "pay_count_max", "trace_span_count_max"} <= set(ids)
    b.trace()
    root = b.span("GET /", "front", dur=100)
    order = b.span("order", "shop", start=1, dur=50, parent=root)
    b.span("charge", "pay", start=2, dur=5, parent=order)
    b.span("fraud", "pay", start=10, dur=5, parent=order)
    b.span("refund", "pay", start=60, dur=5, parent=root)  # new, and called from front
    fired = {r for r, ts in fired_by_rule(text, b.traces()).items() if ts}
    assert {"front_never_calls_pay", "pay_count_max", "trace_span_count_max"} <= fired


def test_meeting_a_nearly_ubiquitous_operation_is_chance() -> None:
    """M7: a rare operation always seen with one in 97% of traces says nothing about them occurring together; only
    their order when both occur is kept. An operation that truly needs a common one keeps its co-occurrence."""
    b = Builder()
    for i in range(100):
        b.trace()
        root = b.span("get", dur=100)
        if i % 33 != 5:
            b.span("warm", start=1, dur=5, parent=root)
        if i % 16 == 3:
            b.span("dump", start=50, dur=5, parent=root)
        if i % 2:
            b.span("auth", start=10, dur=5, parent=root)
            b.span("pay", start=20, dur=5, parent=root)
    traces = b.traces()
    text, facts = run_discover(traces, attributes=False)
    orders = {f.key: f.clauses[0][1] for f in facts if f.kind == "order"}
    assert orders["svc_warm_before_svc_dump"] == "trace.has(name == 'warm') and trace.has(name == 'dump')"
    assert orders["svc_pay_after_svc_auth"] == "trace.has(name == 'pay')"
    assert not [f for f in facts if f.kind == "cooccurrence" and "warm" in f.key]
    assert {r: ts for r, ts in fired_by_rule(text, traces).items() if ts} == {}


def test_rule_ids_do_not_depend_on_the_order_spans_are_read_in(shop: list[Trace]) -> None:
    """L9: members of a `together` rule are named by service and name, not by first appearance."""
    spans = [s for t in shop for s in t.spans]
    forward, _ = run_discover(assemble(spans))
    backward, _ = run_discover(assemble(spans[::-1]))
    assert "rule payment_charge_card_with_payment_fraud_check {" in forward
    assert rule_ids(forward) == rule_ids(backward)


def test_booleans_get_no_set_and_float_ranges_are_round() -> None:
    """L3: `in [false, true]` only says "a boolean"; L4: float bounds are widened to two significant digits."""
    b = Builder()
    for i in range(12):
        b.trace()
        b.span("get", hit=i % 2 == 0, latency=0.11507254020110641 + i * 0.071, on=True)
    text, facts = run_discover(b.traces())
    attrs = {f.detail["key"]: f.clauses[0][1] for f in facts if f.kind == "attribute"}
    assert "hit" not in attrs
    assert attrs["on"] == "trace.spans.where(name == 'get').all(on == true)"
    assert attrs["latency"] == "trace.spans.where(name == 'get').all(latency >= 0.11 and latency <= 0.9)"
    assert {r: ts for r, ts in fired_by_rule(text, b.traces()).items() if ts} == {}


def test_float_ranges_of_any_magnitude_are_round() -> None:
    """N9: past about 1e28 the rounding needed more digits than the decimal context had, and crashed."""
    b = Builder()
    for i in range(12):
        b.trace()
        b.span("get", energy=1.2345e28 + i * 1.5e27, mass=1.01e300 + i * 4e298, tiny=1e-300 * (1 + i))
    text, facts = run_discover(b.traces())
    attrs = {f.detail["key"]: (f.detail["low"], f.detail["high"]) for f in facts if f.kind == "attribute"}
    assert attrs["energy"] == (1.2e28, 2.9e28)
    assert attrs["mass"] == (1.01e300, 1.45e300)
    assert attrs["tiny"] == (1e-300, 1.2e-299)
    assert {r: ts for r, ts in fired_by_rule(text, b.traces()).items() if ts} == {}


def test_cli_output_under_a_file_says_so(shop_file: Path) -> None:
    """L12: not "File exists" from mkdir."""
    result = invoke(str(shop_file), "-o", str(shop_file / "rules.fluo"))
    assert result.exit_code == 2
    assert result.stderr == f"fluo: cannot write {shop_file / 'rules.fluo'}: {shop_file} is not a folder\n"


def test_cli_says_how_many_rules_max_rules_left_out(shop_file: Path) -> None:
    """L8: the cut is not silent."""
    everything = invoke(str(shop_file))
    total = int(everything.stderr.split("fluo: ")[1].split(" rules")[0])
    result = invoke(str(shop_file), "--max-rules", "3")
    assert result.exit_code == 0
    assert "fluo: 3 rules from 60 traces" in result.stderr
    _, corpus = load_corpus([str(shop_file)], attributes=True, trace_values=False)
    found, chosen = mine_within(Miner(corpus, Options(max_rules=3)), 3)
    assert len(chosen) == 3
    # more than `total - 3`: rules the cut ones implied are found, and left out too, instead of lost
    assert len(found) > total
    assert f"; {len(found) - 3} more left out by --max-rules 3 (the last kinds first)" in result.stderr
    # QA discover tour: the count was on stderr only, where a script reading --format json never saw it
    report = json.loads(invoke(str(shop_file), "--max-rules", "3", "--format", "json").stdout)
    assert (len(report["rules"]), report["rules_left_out"]) == (3, len(found) - 3)
    assert json.loads(invoke(str(shop_file), "--format", "json").stdout)["rules_left_out"] == 0


def test_cli_duration_quantile_below_confidence_is_a_usage_error(shop_file: Path) -> None:
    """L2: such bounds were dropped without a word."""
    result = invoke(str(shop_file), "--min-confidence", "0.9", "--duration-quantile", "0.5")
    assert result.exit_code == 2
    assert result.stderr.startswith("fluo: --duration-quantile 0.5 is below --min-confidence 0.9")


def test_cli_ids_start_with_the_output_files_stem(shop_file: Path, tmp_path: Path) -> None:
    """Ids such as `no_errors` recurred in every discovered file, so two of them in one folder were a
    FLUO213 duplicate id; each id now starts with its file's stem (once), so they check together."""
    texts = {}
    for stem in ("my-shop", "payment"):
        out = tmp_path / "rules" / f"{stem}.fluo"
        result = invoke(str(shop_file), "-o", str(out))
        assert result.exit_code == 0, result.output
        texts[stem] = out.read_text(encoding="utf-8")
    assert all(i.startswith("my_shop_") for i in rule_ids(texts["my-shop"]))
    assert {"my_shop_no_errors", "my_shop_payment_count_max"} <= set(rule_ids(texts["my-shop"]))
    ids = set(rule_ids(texts["payment"]))
    assert {"payment_no_errors", "payment_count_max", "payment_trace_span_count_max"} <= ids  # not payment_payment_
    assert all(i.startswith("payment_") and not i.startswith("payment_payment_") for i in ids)
    check = CliRunner().invoke(main, ["check", str(tmp_path / "rules")])
    assert check.exit_code == 0, check.output
    # to stdout there is no file, and no stem
    assert {"no_errors", "payment_count_max"} <= set(rule_ids(invoke(str(shop_file)).stdout))


def test_cli_ids_of_a_file_not_named_in_ascii_start_with_a_prefix_of_their_own(shop_file: Path, tmp_path: Path) -> None:
    """N5: stems with no ASCII letter or digit got no prefix (FLUO213 between `прод.fluo` and `日本.fluo`), and
    accented ones lost letters (`règles` was `r_gles`): accents are dropped, and what has no ASCII form is a
    short hash of the stem."""
    stems = ("прод", "тест", "日本", "_", "-", "règles", "shop_日本")
    ids: dict[str, list[str]] = {}
    for stem in stems:
        out = tmp_path / "rules" / f"{stem}.fluo"
        result = invoke(str(shop_file), "-o", str(out))
        assert result.exit_code == 0, result.output
        ids[stem] = rule_ids(out.read_text(encoding="utf-8"))
    prefixes = {
        stem: next(i.removesuffix("_no_errors") for i in ids[stem] if i.endswith("_no_errors")) for stem in stems
    }
    assert prefixes["règles"] == "regles"
    assert all(p.startswith("rules_") for s, p in prefixes.items() if s not in ("règles", "shop_日本"))
    assert prefixes["shop_日本"].startswith("shop_") and prefixes["shop_日本"] != "shop"
    assert len(set(prefixes.values())) == len(stems)
    assert all(i.startswith(prefixes[s] + "_") and i.isascii() for s in stems for i in ids[s])
    check = CliRunner().invoke(main, ["check", str(tmp_path / "rules")])
    assert check.exit_code == 0, check.output


def test_cli_ids_of_a_file_whose_stem_starts_with_a_digit_start_with_rules(shop_file: Path, tmp_path: Path) -> None:
    """`-o 123.fluo` gave ids `op_123_...`, where `op` read as "operation": such a stem is written after `rules_`."""
    for stem, prefix in (("123", "rules_123_"), ("2026-q1", "rules_2026_q1_"), ("1_日本", "rules_1_")):
        out = tmp_path / "rules" / f"{stem}.fluo"
        result = invoke(str(shop_file), "-o", str(out))
        assert result.exit_code == 0, result.output
        ids = rule_ids(out.read_text(encoding="utf-8"))
        assert ids and all(i.startswith(prefix) for i in ids), ids
    check = CliRunner().invoke(main, ["check", str(tmp_path / "rules")])
    assert check.exit_code == 0, check.output


def test_long_values_make_no_set_and_fixtures_carry_them_cut(tmp_path: Path) -> None:
    """A 200 kB value of three seen on every trace became a set written whole (a 600 kB line, twice a rule),
    and every fixture carried it whole too."""
    b = Builder()
    for i in range(30):
        b.trace()
        b.span("get", blob="x" * 6000 + str(i % 3), tier=("a", "b", "c")[i % 3], short="y" * 256 + str(i % 3))
    traces = b.traces()
    text, facts = run_discover(traces)
    sets = {f.detail["key"]: f.detail["values"] for f in facts if "values" in f.detail}
    assert set(sets) == {"tier"}  # 'short' has 257 characters: no set either
    assert max(map(len, text.splitlines())) < 400
    spans = [s for t in traces for s in t.spans]
    (tmp_path / "t.json").write_text(json.dumps(spans_to_json(spans)), encoding="utf-8")
    result = invoke(str(tmp_path / "t.json"), "-o", str(tmp_path / "r" / "r.fluo"), "--tests", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    fixtures = list((tmp_path / "r" / "fixtures" / "r").iterdir())
    assert fixtures and all(p.stat().st_size < 5000 for p in fixtures)
    assert CliRunner().invoke(main, ["test", str(tmp_path / "r")]).exit_code == 0


def test_output_and_tests_do_not_depend_on_the_order_files_are_given_in(tmp_path: Path) -> None:
    """The `// exceptions` list (the first ten by read order) and the fixtures' traces changed with the glob order."""
    spans = shop_corpus(60, exceptions=2)
    ids = sorted({s.trace_id for s in spans})
    # the traces of the second half first, so read order and id order differ
    halves = [[s for s in spans if s.trace_id in set(ids[30:])], [s for s in spans if s.trace_id in set(ids[:30])]]
    files = []
    for i, half in enumerate(halves):
        files.append(tmp_path / f"part{i}.json")
        files[-1].write_text(json.dumps(spans_to_json(half)), encoding="utf-8")
    outputs = []
    for name, order in (("a", files), ("b", files[::-1])):
        folder = tmp_path / name
        result = invoke(
            *map(str, order), "--min-confidence", "0.95", "-o", str(folder / "shop.fluo"), "--tests", str(folder)
        )
        assert result.exit_code == 0, result.output
        assert "// exceptions (" in (folder / "shop.fluo").read_text(encoding="utf-8")
        outputs.append({p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()})
    assert outputs[0] == outputs[1]


def test_output_does_not_depend_on_the_order_a_traces_spans_are_read_in(tmp_path: Path) -> None:
    """QA discover r11: operations were numbered as first seen, and a tie among operations (which member of a group
    always together speaks for it in a co-occurrence) went by that number, so with each trace's spans split over
    files, the order the files were given in changed rule ids. Spans are split here by service, and by name."""
    b = Builder()
    for i in range(30):
        b.trace()
        root = b.span("root", "edge", dur=100)
        if i < 10:  # alpha and beta always together, always with gamma
            b.span("alpha", "one", start=1, parent=root)
            b.span("beta", "two", start=1, parent=root)
        if i < 20:
            b.span("gamma", "two", start=1, parent=root)
    spans = [*b.spans, *shop_corpus(120, noise=3)]
    for split in (lambda s: s.service, lambda s: s.name):
        parts: dict[str, list[Span]] = {}
        for s in spans:
            parts.setdefault(split(s), []).append(s)
        files = []
        for i, part in enumerate(parts.values()):
            files.append(tmp_path / f"part{i}.json")
            files[-1].write_text(json.dumps(spans_to_json(part)), encoding="utf-8")
        outputs = []
        for name, order in (("a", files), ("b", files[::-1])):
            folder = tmp_path / name
            result = invoke(*map(str, order), "-o", str(folder / "shop.fluo"), "--tests", str(folder))
            assert result.exit_code == 0, result.output
            outputs.append({p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()})
        assert outputs[0] == outputs[1]
        assert b"rule shop_one_alpha_needs_two_gamma {" in outputs[0][Path("shop.fluo")]


def test_spans_dropped_for_a_shared_span_id_are_counted(tmp_path: Path) -> None:
    """Different spans sharing a span id were merged silently (378 spans read as 328); identical resent copies
    are merged as documented, and counted apart."""
    b = Builder()
    for _ in range(6):
        b.trace()
        root = b.span("GET /")
        b.span("charge", parent=root)
    spans = list(b.spans)
    resent = [spans[1], spans[3]]  # the same spans again
    clash = Span(trace_id=spans[5].trace_id, span_id=spans[5].span_id, name="other", service="svc",
                 start=spans[5].start, end=spans[5].end)  # fmt: skip
    path = tmp_path / "t.json"
    path.write_text(json.dumps(spans_to_json([*spans, *resent, clash])), encoding="utf-8")
    result = invoke(str(path), "--min-support", "3")
    assert result.exit_code == 0, result.output
    first = f"(first: span {spans[5].span_id.hex()} of trace {spans[5].trace_id.hex()}, in {path})"
    assert f"fluo: warning: dropped 1 duplicate span {first}: each had the span id of a different span" in (
        result.stderr
    )
    assert "; 2 identical copies of spans merged" in result.stderr
    report = json.loads(invoke(str(path), "--min-support", "3", "--format", "json").stdout)
    assert (report["spans_merged"], report["spans_dropped"]) == (2, 1)  # in the report too, for scripts
    path.write_text(json.dumps(spans_to_json([*spans, *resent])), encoding="utf-8")
    result = invoke(str(path), "--min-support", "3")
    assert "dropped" not in result.stderr and "2 identical copies of spans merged" in result.stderr


def test_presence_reads_with_the_right_article() -> None:
    """It read "Every trace has a 'inventory.reserve' span"."""
    b = Builder()
    for _ in range(6):
        b.trace()
        root = b.span("GET /")
        b.span("inventory.reserve", "inventory", parent=root)
        b.span("cart", "cart", parent=root)
    _, facts = run_discover(b.traces())
    summaries = {f.summary for f in facts if f.kind == "presence"}
    assert summaries == {"Every trace has a 'cart' span", "Every trace has an 'inventory.reserve' span"}


def test_an_attribute_sent_as_a_map_is_mined_as_a_rule_reads_it() -> None:
    """QA r06: `http` = `{method: GET}` on some traces and a flat `http.method` on the rest. Discover saw only the
    flat key, so the map's traces were exceptions of `http.method` values where `fluo eval` reads GET through the
    map and fires on none. Now the map's dotted keys are mined with the value a rule reads (a flat key wins)."""
    b = Builder()
    for i in range(30):
        b.trace()
        if i % 6 == 0:
            attrs: dict[str, Any] = {"http": {"method": "GET", "req": {"size": 5}}}
        elif i % 6 == 1:  # a flat key beside a map that says otherwise: the flat key is what a rule reads
            attrs = {"http.method": "GET", "http": {"method": "POST"}, "http.req.size": 5}
        else:
            attrs = {"http.method": "GET", "http.req.size": 5}
        b.span("op", **attrs)
    traces = b.traces()
    text, facts = run_discover(traces, min_confidence=0.8)
    method = next(f for f in facts if f.detail.get("key") == "http.method")
    assert method.detail["values"] == ["GET"] and method.exceptions == [], rule_body(text, method.key)
    size = next(f for f in facts if f.detail.get("key") == "http.req.size")
    assert size.exceptions == []
    assert all(not fired for fired in fired_by_rule(text, traces).values())
    # An exception is still one where the rule fires: a map saying POST where no flat key hides it.
    b.trace()
    b.span("op", http={"method": "POST", "req": {"size": 5}})
    traces = b.traces()
    text, facts = run_discover(traces, min_confidence=0.8)
    method = next(f for f in facts if f.detail.get("key") == "http.method")
    fired = fired_by_rule(text, traces)[method.key]
    assert [traces[i].id_hex for i in method.exceptions] == sorted(fired) and len(fired) == 1


def test_a_key_in_a_map_a_rule_cannot_name_bare_is_not_mined() -> None:
    """Review: `headers` = `{x-request-id: A}` was mined as `headers.x-request-id`, written
    `attributes['headers.x-request-id']`, which reads the flat key only: the rule "held on 20 of 20" fired on all 20.
    Such keys (a dash, a keyword part, a map under a span field) are left out; bare ones are still mined."""
    b = Builder()
    for _ in range(20):
        b.trace()
        b.span("op", headers={"x-request-id": "A", "method": "A", "in": {"b": "A"}}, kind={"x": "A"})
    traces = b.traces()
    text, facts = run_discover(traces)
    keys = {f.detail.get("key") for f in facts} - {None}
    assert "headers.method" in keys
    assert not keys & {"headers.x-request-id", "headers.in.b", "kind.x"}, keys
    assert all(not fired for fired in fired_by_rule(text, traces).values())


@pytest.mark.parametrize(
    ("share", "exceptions", "text"),
    [
        (1.0, None, "100%"),
        (0.995, None, "99.5%"),
        (24_999 / 25_000, None, "99.996%"),  # read "100%" although one trace broke the rule
        (0.999999, None, "99.9999%"),
        (1 - 1e-9, None, ">99.9999%"),
        (1.0, True, ">99.9999%"),  # a share rounded to 1 where a rule fired (`--compare`'s `held`)
        (0.5, None, "50%"),
    ],
)
def test_a_confidence_with_exceptions_never_reads_100_percent(share: float, exceptions: bool | None, text: str) -> None:
    assert confidence_text(share, exceptions) == text


def test_rule_ids_do_not_depend_on_what_else_the_corpus_holds(tmp_path: Path) -> None:
    """QA (r05): with services `pay_ments` and `pay-ments`, `pay_ments_count_max` went to whichever came first;
    in `payment.fluo`, service `auth`'s rule and `payment_auth`'s were both `payment_auth_count_max`."""

    def count_ids(services: list[str], stem: str) -> dict[str, str]:
        spans = []
        for i in range(6):
            tid = (i + 1).to_bytes(16, "big")
            root = Span(trace_id=tid, span_id=bytes([i, 0, 0, 0, 0, 0, 0, 1]), name="root", service="api",
                        start=T0, end=T0 + 50 * MS)  # fmt: skip
            spans.append(root)
            spans += [Span(trace_id=tid, span_id=bytes([i, k + 1, 0, 0, 0, 0, 0, j]), parent_id=root.span_id,
                           name="charge", service=s, start=T0, end=T0 + MS)
                      for k, s in enumerate(services) for j in range(2)]  # fmt: skip
        traces = tmp_path / "t.json"
        traces.write_text(json.dumps(spans_to_json(spans)), encoding="utf-8")
        out = tmp_path / f"{stem}.fluo"
        assert invoke(str(traces), "-o", str(out)).exit_code == 0
        blocks = out.read_text(encoding="utf-8").split("\nrule ")[1:]
        return {b.split(" ", 1)[0]: b for b in blocks if "count() <=" in b and "where(service ==" in b}

    def id_of(ids: dict[str, str], service: str) -> str:
        (rule_id,) = [i for i, text in ids.items() if f"where(service == '{service}')" in text]
        return rule_id

    # Readable alone; together each carries a hash of its own, so the id either had alone names no other rule.
    for name in ("pay_ments", "pay-ments"):
        alone = count_ids([name], "shop")
        assert id_of(alone, name) == "shop_pay_ments_count_max"
    both = count_ids(["pay_ments", "pay-ments"], "shop")
    assert "shop_pay_ments_count_max" not in both
    assert all(
        re.fullmatch(r"shop_pay_ments_count_max_[0-9a-f]{6}", id_of(both, s)) for s in ("pay_ments", "pay-ments")
    )
    assert id_of(both, "pay_ments") != id_of(both, "pay-ments")
    assert id_of(both, "pay-ments") == id_of(count_ids(["pay-ments", "pay_ments"], "shop"), "pay-ments")
    one = count_ids(["payment_auth"], "payment")
    assert id_of(one, "payment_auth") == "payment_auth_count_max"  # the stem is not written twice
    two = count_ids(["payment_auth", "auth"], "payment")
    assert "payment_auth_count_max" not in two and id_of(two, "payment_auth") != id_of(two, "auth")


def test_subjects_whose_names_join_alike_get_ids_by_their_subjects() -> None:
    """Operation `b` of service `a` and service `a_b` both make `a_b_count_max`: they were numbered in the
    order found (`a_b_count_max`, `a_b_count_max_2`); each now carries a hash of its own subject."""

    def ids(services_first: bool) -> dict[str, str]:
        b = Builder()
        for _ in range(6):
            b.trace()
            root = b.span("root", service="api", dur=50)
            spans = [("a", "b")] + [("a", "x")] * 3 + [("a_b", "y")]
            for service, name in reversed(spans) if services_first else spans:
                b.span(name, service=service, parent=root)
        text, _ = run_discover(b.traces())
        return {i: rule_body(text, i).splitlines()[-1] for i in rule_ids(text) if i.startswith("a_b_count_max")}

    one, other = ids(False), ids(True)
    assert one == other and len(one) == 2, one
    assert all(re.fullmatch(r"a_b_count_max_[0-9a-f]{6}", i) for i in one)


def product_pages(tmp_path: Path) -> Path:
    """600 traces of `GET /product/<id>` (60 ids, 10 traces each) calling `catalog.get`, which may query `db`."""
    b = Builder()
    for i in range(600):
        root = b.trace().span(f"GET /product/{i % 60}", "frontend", dur=50)
        get = b.span("catalog.get", "catalog", start=5, dur=20, parent=root)
        if i % 2:
            b.span("SELECT products", "db", start=8, dur=5, parent=get)
    path = tmp_path / "pages.json"
    path.write_text(json.dumps(spans_to_json(b.spans)), encoding="utf-8")
    return path


def test_names_with_ids_are_warned_about_and_rank_last(tmp_path: Path) -> None:
    """QA discover tour: with an id in each span name, rules about single URLs (each passing --min-support)
    filled --max-rules ahead of every parent, error-free and duration rule, and nothing said why."""
    path = product_pages(tmp_path)
    result = invoke(str(path), "--max-rules", "15")
    assert result.exit_code == 0, result.output
    warning, summary = result.stderr.splitlines()
    assert warning == (
        "fluo: warning: the service 'frontend' has 60 operation names that differ only in ids ('GET /product/0', "
        "'GET /product/1', ...): span names should be low-cardinality (OpenTelemetry's semantic conventions), e.g. "
        "'GET /product/{id}' with the id in an attribute; rules about those names come last under --max-rules"
    )
    assert "(rules about names with ids, then the last kinds first)" in summary
    kinds = set(re.findall(r"tags: \[discovered, (\w+)\]", result.stdout))
    assert {"parent", "error_free", "duration"} <= kinds
    everything = invoke(str(path), "--max-rules", "100000").stdout
    about_ids = [r for r in rule_ids(everything) if "get_product_" in r]
    assert about_ids, everything
    kept = rule_ids(result.stdout)
    assert all(r in kept for r in rule_ids(everything) if r not in about_ids)


def test_many_operation_names_in_a_service_are_warned_about() -> None:
    b = Builder()
    for i in range(MANY_NAMES + 1):
        b.trace().span(f"query {chr(0x4E00 + i)}", "search")
    assert id_named(summarize(b.traces(), attributes=True)) == (
        frozenset(),
        [
            f"the service 'search' has {MANY_NAMES + 1} operation names ('query 一', 'query 丁', ...): span names "
            "should be low-cardinality (OpenTelemetry's semantic conventions), with ids and parameters in attributes"
        ],
    )
