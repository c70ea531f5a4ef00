"""`fluo discover --compare`: how existing rules held on a corpus, and what the corpus says against them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from syrupy.assertion import SnapshotAssertion

from fluo_lang.api import analyze, lower
from fluo_lang.otlp import spans_to_json
from fluo_lang.trace import Span
from fluo_run.cli import main
from fluo_run.discover.compare import _duration, _key

MS = 10**6
T0 = 1_767_225_600 * 10**9
AUTH_SPANS = [1, 2, 3, 4, 5, 6, 2, 2, 3, 1]  # per trace; three traces are over 4

RULES = """\
rule auth_budget {
  expect trace.spans.where(service == "auth").count() <= 4
}
rule big_charge {
  when { trace.has(name == "charge").where(amount > 10000) }
  always { trace.has(name == "fraud_check") }
}
rule storm {
  detect trace.spans.where(service == 'auth').count() > 50
}
rule typo {
  detect trace.has(name == "chrage")
}
rule quick_logins {
  expect trace.spans.where(name == "login").all(duration < 1s)
}
"""


def span(tid: bytes, sid: bytes, name: str, service: str, start_ms: int, end_ms: int, parent: bytes = b"",
         **attrs: Any) -> Span:  # fmt: skip
    return Span(trace_id=tid, span_id=sid, parent_id=parent, name=name, service=service,
                start=T0 + start_ms * MS, end=T0 + end_ms * MS, attributes=attrs)  # fmt: skip


def corpus() -> list[Span]:
    spans: list[Span] = []
    for i, n in enumerate(AUTH_SPANS):
        tid = (i + 1).to_bytes(16, "big")
        root = span(tid, bytes([i, 0, 0, 0, 0, 0, 0, 1]), "GET /", "front", 0, 100)
        spans.append(root)
        spans += [span(tid, bytes([i, 1, 0, 0, 0, 0, 0, k]), "login", "auth", k, k + 5, root.span_id) for k in range(n)]
        spans.append(
            span(tid, bytes([i, 2, 0, 0, 0, 0, 0, 0]), "charge", "pay", 50, 60, root.span_id, amount=10 * (i + 1))
        )
    return spans


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    traces = tmp_path / "traces.json"
    traces.write_text(json.dumps(spans_to_json(corpus())), encoding="utf-8")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "mine.fluo").write_text(RULES, encoding="utf-8")
    return rules, traces


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["discover", *args])


def by_rule(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["rule"]: r for r in report["rules"]}


def compare(rules: Path, traces: Path) -> dict[str, dict[str, Any]]:
    """`discover --compare` (support 3) as JSON, by rule id."""
    result = run("--compare", str(rules), str(traces), "--format", "json", "--min-support", "3")
    return by_rule(json.loads(result.stdout))


def test_held_fraction_comes_from_the_evaluator(files: tuple[Path, Path]) -> None:
    rules, traces = files
    result = run("--compare", str(rules), str(traces), "--format", "json", "--min-support", "3")
    assert result.exit_code == 0, result.output
    report = by_rule(json.loads(result.stdout))
    over = sum(1 for n in AUTH_SPANS if n > 4)
    assert report["auth_budget"]["fired"] == over
    assert report["auth_budget"]["held"] == round(1 - over / len(AUTH_SPANS), 6)
    assert report["quick_logins"]["fired"] == 0 and report["quick_logins"]["held"] == 1.0
    assert report["big_charge"]["applied"] == 0
    assert report["big_charge"]["held"] is None  # a share of no trace: its `when` never held


def test_contradictions_are_named(files: tuple[Path, Path]) -> None:
    rules, traces = files
    report = compare(rules, traces)
    budget = report["auth_budget"]
    over = sum(1 for n in AUTH_SPANS if n > 4)
    assert budget["findings"] == [
        f'assumes `trace.spans.where(service == "auth").count() <= 4`, but on the corpus it ranged '
        f"{min(AUTH_SPANS)}..{max(AUTH_SPANS)} ({over} of {len(AUTH_SPANS)} traces outside)"
    ]
    # the discovered bound that contradicts the rule comes first, matched whatever the quotes
    assert budget["discovered"][0]["rule"] == f"trace.spans.where(service == 'auth').count() <= {max(AUTH_SPANS)}"
    assert [d["contradicts"] for d in budget["discovered"]] == [True] + [False] * (len(budget["discovered"]) - 1)
    assert "never applied" in report["big_charge"]["findings"][0]
    assert report["typo"]["findings"] == ["never fired", "the operation 'chrage' never occurs in the corpus"]
    assert report["storm"]["findings"][1].endswith(
        f"ranged {min(AUTH_SPANS)}..{max(AUTH_SPANS)} (0 of {len(AUTH_SPANS)} traces matched)"
    )
    assert report["quick_logins"]["discovered"] == []  # it held everywhere: nothing to set against it


def test_a_duration_bound_the_corpus_breaks_is_named_and_contradicted(files: tuple[Path, Path]) -> None:
    rules, traces = files
    fast = 'rule fast_logins {\n  expect trace.spans.where(name == "login").all(duration <= 2ms)\n}\n'
    (rules / "fast.fluo").write_text(fast, encoding="utf-8")
    result = run("--compare", str(rules), str(traces), "--format", "json", "--min-support", "3")
    report = by_rule(json.loads(result.stdout))["fast_logins"]
    assert report["fired"] == len(AUTH_SPANS)
    assert report["findings"] == [
        'assumes `trace.spans.where(name == "login").all(duration <= 2ms)`; on the corpus those spans\' durations '
        f"were always 5ms ({len(AUTH_SPANS)} of {len(AUTH_SPANS)} traces outside)"
    ]
    first = report["discovered"][0]
    assert (first["rule"], first["contradicts"]) == ("trace.spans.where(name == 'login').all(duration <= 5ms)", True)


def test_text_report(files: tuple[Path, Path], snapshot: SnapshotAssertion) -> None:
    rules, traces = files
    result = run("--compare", str(rules), str(traces), "--min-support", "3")
    assert result.exit_code == 0
    assert result.stdout.replace(str(rules), "RULES") == snapshot


def test_rules_that_do_not_check_are_reported(files: tuple[Path, Path]) -> None:
    rules, traces = files
    (rules / "bad.fluo").write_text("rule bad { expect trace.spans.whree(name == 'x') }\n", encoding="utf-8")
    result = run("--compare", str(rules), str(traces))
    assert result.exit_code == 1
    assert "error[" in result.stdout and "whree" in result.stdout
    assert "auth_budget" in result.stdout  # the others are still compared


def test_missing_rules_folder_is_one_line(files: tuple[Path, Path], tmp_path: Path) -> None:
    _, traces = files
    result = run("--compare", str(tmp_path / "nope"), str(traces))
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("no such file or folder")
    assert result.stderr.startswith("fluo: --compare ")  # the path is one of --compare's, not a trace file


@pytest.mark.parametrize("how", ["named", "in a folder", "linked", "hard-linked"])
def test_a_report_over_a_compared_rule_file_is_refused(files: tuple[Path, Path], tmp_path: Path, how: str) -> None:
    """QA citest r05: `fluo discover --compare auth.fluo t -o auth.fluo` replaced the rule file compared with the
    report, and exited 0."""
    rules, traces = files
    mine = rules / "mine.fluo"
    given, out = {
        "named": (mine, mine),
        "in a folder": (rules, mine),
        "linked": (mine, tmp_path / "link.fluo"),
        "hard-linked": (mine, tmp_path / "hard.fluo"),
    }[how]
    if how == "linked":
        out.symlink_to(mine)
    elif how == "hard-linked":
        out.hardlink_to(mine)
    result = run("--compare", str(given), str(traces), "-o", str(out))
    assert result.exit_code == 2
    assert result.stderr == f"fluo: refusing to overwrite input {out}: it is one of the rule files --compare reads\n"
    assert mine.read_text(encoding="utf-8") == RULES
    assert run("--compare", str(given), str(traces), "-o", str(tmp_path / "report.txt")).exit_code == 0
    assert "auth_budget" in (tmp_path / "report.txt").read_text(encoding="utf-8")


def test_durations_read_as_a_person_writes_them(tmp_path: Path) -> None:
    """Ranges of durations in three significant digits, rounded outward (they were `20199.424us`)."""
    spans = []
    for i, ns in enumerate([20_199_424, 89_614_848]):
        tid = (i + 1).to_bytes(16, "big")
        root = span(tid, bytes([i, 0, 0, 0, 0, 0, 0, 1]), "GET /", "front", 0, 0)
        spans.append(root)  # the trace lasts as long as its charge
        charge = Span(trace_id=tid, span_id=bytes([i, 1, 0, 0, 0, 0, 0, 1]), parent_id=root.span_id,
                      name="charge", service="pay", start=T0, end=T0 + ns)  # fmt: skip
        spans.append(charge)
    traces = tmp_path / "traces.json"
    traces.write_text(json.dumps(spans_to_json(spans)), encoding="utf-8")
    rules = tmp_path / "r.fluo"
    rules.write_text(
        "rule fast { expect trace.spans.where(name == 'charge').all(duration <= 50ms) }\n"
        "rule short { expect trace.duration < 50ms }\n",
        encoding="utf-8",
    )
    report = by_rule(json.loads(run("--compare", str(rules), str(traces), "--format", "json").stdout))
    assert "durations ranged 20.1ms..89.7ms (1 of 2 traces outside)" in report["fast"]["findings"][0]
    assert report["short"]["findings"] == [
        "assumes `trace.duration < 50ms`, but on the corpus it ranged 20.1ms..89.7ms (1 of 2 traces outside)"
    ]


@pytest.mark.parametrize(
    ("ns", "low", "high"),
    [
        (20_199_424, "20.1ms", "20.2ms"),
        (150_341_632, "150ms", "151ms"),
        (999_950_000, "999ms", "1s"),
        (61_749_000_000, "1.02m", "1.03m"),
        (3 * 3600 * 10**9 + 7, "3h", "3.01h"),
        (5 * 10**6, "5ms", "5ms"),
        (17, "17ns", "17ns"),
    ],
)
def test_duration_ranges_round_outward(ns: int, low: str, high: str) -> None:
    assert (_duration(ns, up=False), _duration(ns, up=True)) == (low, high)


def test_a_rule_is_contradicted_whatever_form_it_is_written_in(files: tuple[Path, Path]) -> None:
    """The discovered bound is matched by meaning (the compiled rule), not by text: `trace.count(P)`,
    `trace.has(P).count()` and a filter written the other way round bound the same value."""
    rules, traces = files
    (rules / "forms.fluo").write_text(
        "rule by_count { expect trace.count(service == 'auth') <= 4 }\n"
        "rule by_has { expect trace.has(service == 'auth').count() < 5 }\n"
        "rule by_where { expect trace.spans.where('auth' == service).count() <= 4 }\n",
        encoding="utf-8",
    )
    report = compare(rules, traces)
    for rule in ("by_count", "by_has", "by_where"):
        first = report[rule]["discovered"][0]
        assert (first["rule"], first["contradicts"]) == ("trace.spans.where(service == 'auth').count() <= 6", True)


def test_an_outer_not_is_read_as_the_rule_means_it(files: tuple[Path, Path]) -> None:
    """N7: `not (count() > 4)` was read as assuming `count() > 4` (with the traces inside counted as outside), and
    `not spans.any(duration > D)` got no contradiction, while the same rules written `<= 4` and `.all(...)` did."""
    rules, traces = files
    (rules / "negated.fluo").write_text(
        "rule neg { expect not (trace.count(service == 'auth') > 4) }\n"
        "rule neg_fast { expect not trace.spans.where(name == 'login').any(duration > 2ms) }\n"
        "rule none_fast { expect trace.spans.where(name == 'login').none(duration > 2ms) }\n"
        "rule neg_detect { detect not (trace.count(service == 'auth') <= 4) }\n",
        encoding="utf-8",
    )
    report = compare(rules, traces)
    over = sum(1 for n in AUTH_SPANS if n > 4)
    assert report["neg"]["findings"][0] == (
        "assumes `trace.count(service == 'auth') <= 4`, but on the corpus it ranged "
        f"{min(AUTH_SPANS)}..{max(AUTH_SPANS)} ({over} of {len(AUTH_SPANS)} traces outside)"
    )
    first = report["neg"]["discovered"][0]
    assert (first["rule"], first["contradicts"]) == ("trace.spans.where(service == 'auth').count() <= 6", True)
    assert report["neg_detect"]["findings"][0].startswith(
        f"looks for `trace.count(service == 'auth') > 4`; on the corpus it ranged {min(AUTH_SPANS)}"
    )
    for rule, text in (
        ("neg_fast", "not trace.spans.where(name == 'login').any(duration > 2ms)"),
        ("none_fast", "trace.spans.where(name == 'login').none(duration > 2ms)"),
    ):
        assert report[rule]["findings"] == [
            f"assumes `{text}`; on the corpus those spans' durations "
            f"were always 5ms ({len(AUTH_SPANS)} of {len(AUTH_SPANS)} traces outside)"
        ]
        first = report[rule]["discovered"][0]
        assert (first["rule"], first["contradicts"]) == (
            "trace.spans.where(name == 'login').all(duration <= 5ms)",
            True,
        )


def test_span_sets_compare_by_their_filters_in_any_order() -> None:
    forms = [
        "trace.spans.where(service == 'auth' and name == 'login').count()",
        "trace.spans.where(name == 'login' and service == 'auth').count()",
        "trace.has(name == 'login').where('auth' == service).count()",
        "trace.count(service == 'auth' and name == 'login')",
        "trace.spans.where(service in ['auth'] and name == 'login').count()",
    ]
    keys = set()
    for form in forms:
        (rule,) = lower(analyze([("t.fluo", f"rule r {{ expect {form} <= 4 }}")]))
        keys.add(_key(rule.condition.args[0]))
    assert len(keys) == 1
    (rule,) = lower(analyze([("t.fluo", "rule r { expect trace.count(service == 'auth') <= 4 }")]))
    assert _key(rule.condition.args[0]) not in keys
    sets = set()
    for names in ("'login', 'db'", "'db', 'login', 'db'"):
        (rule,) = lower(analyze([("t.fluo", f"rule r {{ expect trace.count(name in [{names}]) <= 4 }}")]))
        sets.add(_key(rule.condition.args[0]))
    assert len(sets) == 1 and not sets & keys


def auth_only(mail: bool = False) -> list[Span]:
    """6 traces of `auth` spans only, at most 7 in one; `mail`: the first also has a `send` span of `mail`."""
    spans = []
    for i, (logins, queries) in enumerate([(1, 1), (2, 1), (3, 3), (1, 2), (3, 2), (2, 2)]):
        tid = (i + 1).to_bytes(16, "big")
        root = span(tid, bytes([i, 0, 0, 0, 0, 0, 0, 1]), "GET /", "auth", 0, 100)
        spans.append(root)
        for k in range(logins):
            spans.append(span(tid, bytes([i, 1, 0, 0, 0, 0, 0, k]), "login", "auth", k, k + 5, root.span_id))
        for k in range(queries):
            spans.append(span(tid, bytes([i, 2, 0, 0, 0, 0, 0, k]), "db", "auth", 20 + k, 25 + k, root.span_id))
        if mail and i == 0:
            spans.append(span(tid, bytes([i, 3, 0, 0, 0, 0, 0, 0]), "send", "mail", 30, 35, root.span_id))
    return spans


def test_a_bound_left_out_as_implied_still_contradicts(tmp_path: Path) -> None:
    """`auth` at most 7 is not written when the trace's bound is as low, yet it is what contradicts a rule
    assuming at most 4 `auth` spans (the trace's bound does not: it counts a `mail` span too)."""
    traces = tmp_path / "traces.json"
    traces.write_text(json.dumps(spans_to_json(auth_only(mail=True))), encoding="utf-8")
    rules = tmp_path / "r.fluo"
    rules.write_text("rule budget { expect trace.count(service == 'auth') <= 4 }\n", encoding="utf-8")
    discovered = run(str(traces), "--min-support", "3").stdout
    assert "service == 'auth').count()" not in discovered and "trace.spans.count() <= 7" in discovered
    report = compare(rules, traces)
    assert contradicting(report["budget"]) == ["trace.spans.where(service == 'auth').count() <= 7"]


def test_what_contradicts_a_rule_comes_first(files: tuple[Path, Path]) -> None:
    """The reverse of an order a rule assumes, and the range of the attribute it bounds, come first and
    are marked (they came after other facts about the same operations)."""
    rules, traces = files
    (rules / "ranked.fluo").write_text(
        "rule charge_first {\n"
        "  when { trace.has(name == 'charge') }\n"
        "  always { trace.has(name == 'charge').before(trace.has(name == 'login')) }\n"
        "}\n"
        "rule small { expect trace.spans.where(name == 'charge').all(amount <= 50) }\n",
        encoding="utf-8",
    )
    report = compare(rules, traces)
    first = report["charge_first"]["discovered"][0]
    assert (first["kind"], first["contradicts"]) == ("order", True)
    assert first["rule"].endswith(".before(trace.has(name == 'charge'))")
    first = report["small"]["discovered"][0]
    assert (first["kind"], first["contradicts"]) == ("attribute", True)
    assert "amount" in first["rule"]


def test_a_fact_contradicts_only_a_bound_on_the_same_side_or_the_same_caller(files: tuple[Path, Path]) -> None:
    """An upper bound says nothing against a lower bound (`count() <= 6` against `>= 7`, `all(duration <= 5ms)`
    against `all(duration >= 6ms)`); a rule that `front` never calls `auth` is contradicted by `login` always
    running directly under front's `GET /`, not by a fact about another caller."""
    rules, traces = files
    (rules / "sides.fluo").write_text(
        "rule many { expect trace.count(service == 'auth') >= 7 }\n"
        "rule slow { expect trace.spans.where(name == 'login').all(duration >= 6ms) }\n"
        "rule no_front { expect trace.spans.where(service == 'auth').none(parent.service == 'front') }\n",
        encoding="utf-8",
    )
    report = compare(rules, traces)
    for rule in ("many", "slow"):
        assert report[rule]["fired"] == len(AUTH_SPANS)
        assert report[rule]["discovered"], rule
        assert not any(d["contradicts"] for d in report[rule]["discovered"]), report[rule]["discovered"]
    first = report["no_front"]["discovered"][0]
    assert (first["rule"], first["contradicts"]) == (
        "trace.spans.where(name == 'login').all(parent.name == 'GET /')",
        True,
    )


def sparse_corpus() -> list[Span]:
    """10 traces: no root in every third, a `quote` (service `ship`) in the even ones, 1 to 3 `inv` spans."""
    spans: list[Span] = []
    for i in range(10):
        tid = (i + 1).to_bytes(16, "big")
        root = span(tid, bytes([i, 0, 0, 0, 0, 0, 0, 1]), "GET /", "front", 0, 100)
        if i % 3:
            spans.append(root)
        for k in range(1 + i % 3):
            spans.append(span(tid, bytes([i, 1, 0, 0, 0, 0, 0, k]), "reserve", "inv", k, k + 5, root.span_id))
        if i % 2 == 0:
            spans.append(span(tid, bytes([i, 2, 0, 0, 0, 0, 0, 0]), "quote", "ship", 50, 60, root.span_id))
    return spans


def test_missing_values_when_scope_and_presence(tmp_path: Path) -> None:
    """A comparison with no value is false, so a rule on `trace.root` fires where there is no root: the
    finding says so, never "it always held". An `always` bound is measured on the traces where the `when`
    held, and `held` is their share. A rule about a service only some traces have says on how many."""
    traces = tmp_path / "traces.json"
    traces.write_text(json.dumps(spans_to_json(sparse_corpus())), encoding="utf-8")
    rules = tmp_path / "r.fluo"
    rules.write_text(
        "rule root_fast { expect trace.root.duration <= 1s }\n"
        "rule when_count {\n  when { trace.has(name == 'quote') }\n  always { trace.count(service == 'inv') <= 2 }\n}\n"
        "rule ship_always { expect trace.count(service == 'ship') >= 1 }\n",
        encoding="utf-8",
    )
    report = compare(rules, traces)
    root = report["root_fast"]
    assert root["fired"] == 4
    assert root["findings"] == [
        "assumes `trace.root.duration <= 1s`, but on the corpus it was always 100ms, "
        "and it had no value on 4 of 10 traces, where the comparison is false"
    ]
    when = report["when_count"]
    assert (when["applied"], when["fired"], when["held"]) == (5, 2, 0.6)
    assert when["findings"][0] == (
        "assumes `trace.count(service == 'inv') <= 2`, but on the corpus it ranged 1..3 "
        "(2 of 5 traces where it applied outside)"
    )
    ship = report["ship_always"]
    assert "the service 'ship' occurs in 5 of 10 traces" in ship["findings"]
    assert not any(d["contradicts"] for d in ship["discovered"])
    text = run("--compare", str(rules), str(traces), "--min-support", "3").stdout
    assert "when_count (" in text and "applied on 5 of 10 traces, held on 60% of them (fired on 2)" in text


QUADRATIC = "rule quad {\n  expect trace.spans.all(trace.spans.where(duration > 5ms).count() >= 1 and name != 'x')\n}\n"


def test_the_cost_limit_of_fluo_eval_refuses_a_rule(files: tuple[Path, Path], tmp_path: Path) -> None:
    _, traces = files
    rules = tmp_path / "quad.fluo"
    rules.write_text(QUADRATIC, encoding="utf-8")
    refused = run("--compare", str(rules), str(traces), "--format", "json", "--cost-limit", "1000")
    assert refused.exit_code == 1, refused.output
    report = json.loads(refused.stdout)
    assert report["rules"] == [] and "FLUO404" in report["errors"][0]
    ran = run("--compare", str(rules), str(traces), "--format", "json", "--cost-limit", "0")
    assert ran.exit_code == 0, ran.output
    assert [r["rule"] for r in json.loads(ran.stdout)["rules"]] == ["quad"]


def test_the_evaluation_budget_of_fluo_eval_cuts_traces_short(files: tuple[Path, Path], tmp_path: Path) -> None:
    _, traces = files
    rules = tmp_path / "quad.fluo"
    rules.write_text(QUADRATIC, encoding="utf-8")
    budget = "20"  # spans visited: the traces of more than 3 spans need more than 20
    evaluated = CliRunner().invoke(main, ["eval", str(rules), "--traces", str(traces), "--eval-budget", budget])
    signals = [json.loads(line)["rule"] for line in evaluated.stdout.splitlines()]
    truncated = signals.count("fluo.evaluation_truncated")
    assert 0 < truncated < len(AUTH_SPANS)
    result = run("--compare", str(rules), str(traces), "--format", "json", "--eval-budget", budget)
    assert result.exit_code == 0, result.output
    quad = by_rule(json.loads(result.stdout))["quad"]
    assert (quad["fired"], quad["truncated"], quad["traces"]) == (signals.count("quad"), truncated, len(AUTH_SPANS))
    assert quad["findings"][0].startswith(f"not evaluated on {truncated} of {len(AUTH_SPANS)} traces")


HEAVY = (
    QUADRATIC + "rule heavy_when {\n  when { trace.spans.any(trace.spans.where(duration > 500ms).count() == 0) }\n"
    "  always { trace.spans.count() <= 3 }\n}\n"
    "rule heavy_detect { detect trace.spans.any(trace.spans.where(name == 'login').count() > 5) }\n"
)


def test_a_rule_cut_short_on_every_trace_held_on_none(files: tuple[Path, Path], tmp_path: Path) -> None:
    """Every trace cut short by --eval-budget: the rule was evaluated on none, so it held on none (JSON `held`
    null), and nothing is said as though it had been tested (`never applied`, `never fired`, discovered facts)."""
    _, traces = files
    rules = tmp_path / "heavy.fluo"
    rules.write_text(HEAVY, encoding="utf-8")
    args = ("--compare", str(rules), str(traces), "--min-support", "3", "--eval-budget", "1")
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    report = by_rule(json.loads(result.stdout))
    n = len(AUTH_SPANS)
    assert list(report) == ["quad", "heavy_when", "heavy_detect"]
    for r in report.values():
        assert (r["truncated"], r["traces"], r["applied"], r["fired"], r["held"]) == (n, n, 0, 0, None), r
        assert r["findings"] == [
            f"not evaluated on {n} of {n} traces: the evaluation budget of 1 span visit ran out (`fluo eval` "
            "reports fluo.evaluation_truncated there); they are counted neither fired nor held"
        ]
        assert r["discovered"] == []
    text = run(*args).stdout
    assert f"quad ({rules}:1): held on no trace: evaluated on none of {n} traces\n" in text
    assert f"heavy_when ({rules}:4): held on no trace: evaluated on none of {n} traces\n" in text
    assert "held on 100%" not in text and "never" not in text


def test_the_held_share_of_a_rule_cut_short_on_some_traces_is_of_those_evaluated(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    _, traces = files
    rules = tmp_path / "quad.fluo"
    rules.write_text(QUADRATIC, encoding="utf-8")
    result = run("--compare", str(rules), str(traces), "--format", "json", "--eval-budget", "20")
    quad = by_rule(json.loads(result.stdout))["quad"]
    evaluated = quad["traces"] - quad["truncated"]
    assert 0 < evaluated < quad["traces"]
    assert quad["held"] == round((evaluated - quad["fired"]) / evaluated, 6)
    text = run("--compare", str(rules), str(traces), "--eval-budget", "20").stdout
    assert f"of the {evaluated} traces evaluated, of {quad['traces']} (fired on {quad['fired']})" in text


def test_one_trace_and_one_window_are_singular(tmp_path: Path) -> None:
    traces, rules = tmp_path / "t.json", tmp_path / "r.fluo"
    one = [s for s in corpus() if s.trace_id == (1).to_bytes(16, "big")]
    traces.write_text(json.dumps(spans_to_json(one)), encoding="utf-8")
    rules.write_text(
        QUADRATIC + "rule few { expect trace.spans.count() <= 9 }\n"
        "rule fast { expect trace.spans.where(name == 'login').all(duration <= 1ms) }\n"
        "rule w {\n  window 1m\n  expect window.spans.all(window.spans.where(duration > 5ms).count() >= 1)\n}\n",
        encoding="utf-8",
    )
    text = run("--compare", str(rules), str(traces), "--min-support", "1").stdout
    assert "few (" in text and "held on 100% of 1 trace (fired on 0)" in text
    assert "fast (" in text and "held on 0% of 1 trace (fired on 1)" in text
    assert "(1 of 1 trace outside)" in text
    assert "discovered: held on 1 of 1 trace," in text
    assert "held on 100% of 1 window (fired on 0)" in text
    assert " 1 traces" not in text and " 1 windows" not in text
    cut = run("--compare", str(rules), str(traces), "--eval-budget", "1").stdout
    assert "held on no window: evaluated on none of 1 window\n" in cut
    assert "quad (" in cut and "held on no trace: evaluated on none of 1 trace\n" in cut
    assert "not evaluated on 1 of 1 window:" in cut and "not evaluated on 1 of 1 trace:" in cut


def compare_spans(tmp_path: Path, spans: list[Span], rules: str) -> dict[str, dict[str, Any]]:
    traces, path = tmp_path / "t.json", tmp_path / "r.fluo"
    traces.write_text(json.dumps(spans_to_json(spans)), encoding="utf-8")
    path.write_text(rules, encoding="utf-8")
    return compare(path, traces)


def contradicting(report: dict[str, Any]) -> list[str]:
    return [d["rule"] for d in report["discovered"] if d["contradicts"]]


def test_a_loose_fact_contradicts_only_if_its_spans_broke_the_rule(tmp_path: Path) -> None:
    # `place` always takes 110ms; its fact is rounded up to `<= 150ms`: it is not what broke either rule
    spans: list[Span] = []
    for i in range(8):
        tid = (i + 1).to_bytes(16, "big")
        root = span(tid, bytes([i, 0, 0, 0, 0, 0, 0, 1]), "GET /", "front", 0, 130 + 10 * i)
        currency = ["EUR", "USD"][i % 2]
        spans += [root, span(tid, bytes([i, 1, 0, 0, 0, 0, 0, 1]), "place", "co", 2, 112, root.span_id,
                             currency=currency)]  # fmt: skip
    report = compare_spans(
        tmp_path,
        spans,
        "rule all_fast { expect trace.spans.all(duration <= 120ms) }\n"
        "rule place_eur { expect trace.spans.where(name == 'place').all(duration <= 120ms and currency == 'EUR') }\n",
    )
    assert contradicting(report["all_fast"]) == ["trace.spans.where(name == 'GET /').all(duration <= 200ms)"]
    assert contradicting(report["place_eur"]) == ["trace.spans.where(name == 'place').all(currency in ['EUR', 'USD'])"]
    assert "trace.spans.where(name == 'place').all(duration <= 150ms)" in [
        d["rule"] for d in report["place_eur"]["discovered"]
    ]


def test_the_parts_of_a_disjunction_are_not_assumptions(tmp_path: Path) -> None:
    # (auth, users) spans per trace; `auth <= 2 or users <= 2` fails only on the (3, 3) traces
    spans: list[Span] = []
    for i, (auth, users) in enumerate([(4, 1)] * 3 + [(1, 4)] * 3 + [(3, 3)] * 3):
        tid = (i + 1).to_bytes(16, "big")
        root = span(tid, bytes([i, 0, 0, 0, 0, 0, 0, 1]), "GET /", "front", 0, 100)
        spans.append(root)
        spans += [span(tid, bytes([i, 1, 0, 0, 0, 0, 0, k]), "login", "auth", k, k + 5, root.span_id)
                  for k in range(auth)]  # fmt: skip
        spans += [span(tid, bytes([i, 2, 0, 0, 0, 0, 0, k]), "lookup", "users", k, k + 5, root.span_id)
                  for k in range(users)]  # fmt: skip
    auth, users = "trace.count(service == 'auth')", "trace.count(service == 'users')"
    report = compare_spans(
        tmp_path,
        spans,
        f"rule either {{ expect {auth} <= 2 or {users} <= 2 }}\n"
        f"rule not_both {{ expect not ({auth} > 2 and {users} > 2) }}\n"
        f"rule both {{ expect {auth} <= 3 and {users} <= 3 }}\n",
    )
    for rule in ("either", "not_both"):
        assert report[rule]["fired"] == 3
        assert not [f for f in report[rule]["findings"] if f.startswith("assumes")]
        assert contradicting(report[rule]) == []
    # the parts of a conjunction are, in source order
    assert [f.split("`")[1] for f in report["both"]["findings"]] == [f"{auth} <= 3", f"{users} <= 3"]
    assert contradicting(report["both"]) == [
        "trace.spans.where(service == 'auth').count() <= 4",
        "trace.spans.where(service == 'users').count() <= 4",
    ]


def test_an_operation_is_not_matched_with_a_service_of_the_same_name(tmp_path: Path) -> None:
    # a client span `payment` of `checkout` calls `charge` of the service `payment`, 1 to 3 times
    spans: list[Span] = []
    for i in range(9):
        tid = (i + 1).to_bytes(16, "big")
        root = span(tid, bytes([i, 0, 0, 0, 0, 0, 0, 1]), "GET /", "front", 0, 100)
        client = span(tid, bytes([i, 1, 0, 0, 0, 0, 0, 1]), "payment", "checkout", 10, 60, root.span_id)
        spans += [root, client]
        spans += [span(tid, bytes([i, 2, 0, 0, 0, 0, 0, k]), "charge", "payment", 12 + k, 20 + k, client.span_id)
                  for k in range(1 + i % 3)]  # fmt: skip
    report = compare_spans(
        tmp_path,
        spans,
        "rule pay_svc { expect trace.count(service == 'payment') <= 1 }\n"
        "rule pay_op { expect trace.spans.where(name == 'payment').all(duration <= 20ms) }\n",
    )
    svc = [d["rule"] for d in report["pay_svc"]["discovered"]]
    op = [d["rule"] for d in report["pay_op"]["discovered"]]
    assert svc and not [r for r in svc if "where(name == 'payment')" in r], svc
    assert op and not [r for r in op if "service == 'payment'" in r], op


def test_a_bound_written_with_equals_is_contradicted(files: tuple[Path, Path], tmp_path: Path) -> None:
    _, traces = files
    rules = tmp_path / "eq.fluo"
    rules.write_text("rule eq { expect trace.count(service == 'auth') == 2 }\n", encoding="utf-8")
    report = compare(rules, traces)["eq"]
    assert contradicting(report) == [f"trace.spans.where(service == 'auth').count() <= {max(AUTH_SPANS)}"]


def checkout_corpus() -> list[Span]:
    """30 traces under `GET /` (front): `db` (auth) in all; `charge` (pay) in every third, `fraud_check`
    (risk) ending before each charge and in 5 traces more."""
    spans: list[Span] = []
    for i in range(30):
        tid = (i + 1).to_bytes(16, "big")
        root = span(tid, bytes([i, 0, 0, 0, 0, 0, 0, 1]), "GET /", "front", 0, 100)
        spans += [root, span(tid, bytes([i, 1, 0, 0, 0, 0, 0, 0]), "db", "auth", 20, 22, root.span_id)]
        if i % 3 == 0:
            spans.append(span(tid, bytes([i, 2, 0, 0, 0, 0, 0, 0]), "charge", "pay", 50, 60, root.span_id))
        if i % 3 == 0 or (i % 3 == 1 and i < 15):
            spans.append(span(tid, bytes([i, 3, 0, 0, 0, 0, 0, 0]), "fraud_check", "risk", 30, 40, root.span_id))
    return spans


def test_a_never_clause_is_contradicted_by_what_it_forbids(tmp_path: Path) -> None:
    """`when {A} never {B}` got no contradiction at all. A fact that B occurs whenever A does contradicts it
    (here the order "fraud_check ends before every charge", which holds only where both occur), as does B in
    every trace, or some of B's spans (a `risk` operation) occurring; a fact that A occurs whenever B does
    does not (on traces with B and without A the rule holds)."""
    report = compare_spans(
        tmp_path,
        checkout_corpus(),
        "rule never_fraud {\n  when { trace.has(name == 'charge') }\n  never { trace.has(name == 'fraud_check') }\n}\n"
        "rule never_charge {\n  when { trace.has(name == 'fraud_check') }\n  never { trace.has(name == 'charge') }\n}\n"
        "rule never_db {\n  when { trace.has(name == 'charge') }\n  never { trace.has(name == 'db') }\n}\n"
        "rule never_risk {\n  when { trace.has(name == 'charge').where(duration > 1ms) }\n"
        "  never { trace.has(service == 'risk') or trace.spans.count() > 100 }\n}\n",
    )
    order = "trace.has(name == 'fraud_check').before(trace.has(name == 'charge'))"
    assert (report["never_fraud"]["fired"], contradicting(report["never_fraud"])) == (10, [order])
    assert report["never_risk"]["fired"] == 10 and contradicting(report["never_risk"]) == [order]
    assert report["never_charge"]["fired"] == 10 and contradicting(report["never_charge"]) == []
    assert order in [d["rule"] for d in report["never_charge"]["discovered"]]  # about the same spans, not against
    assert contradicting(report["never_db"]) == ["trace.has(name == 'db')"]


def refund_corpus(charges: range, refunds: range, n: int) -> list[Span]:
    """`n` traces under `GET /` (front): `db` (auth) in all, 3 of them in every fifth trace (so the count bounds
    leave room for an exclusion), and `handle` (front); under it `charge` (pay) in the traces `charges` names,
    `refund` (refunds) in `refunds`."""
    spans: list[Span] = []
    for i in range(n):
        tid = (i + 1).to_bytes(16, "big")
        root = span(tid, bytes([i, 0, 0, 0, 0, 0, 0, 1]), "GET /", "front", 0, 100)
        handle = span(tid, bytes([i, 4, 0, 0, 0, 0, 0, 0]), "handle", "front", 40, 90, root.span_id)
        spans += [root, handle]
        spans += [span(tid, bytes([i, 1, 0, 0, 0, 0, 0, k]), "db", "auth", 20, 22, root.span_id)
                  for k in range(3 if i % 5 == 4 else 1)]  # fmt: skip
        if i in charges:
            spans.append(span(tid, bytes([i, 2, 0, 0, 0, 0, 0, 0]), "charge", "pay", 50, 60, handle.span_id))
        if i in refunds:
            spans.append(span(tid, bytes([i, 3, 0, 0, 0, 0, 0, 0]), "refund", "refunds", 50, 60, handle.span_id))
    return spans


EXCLUSION = "not (trace.has(name == 'charge') and trace.has(name == 'refund'))"
NEEDS = (
    "rule needs_refund {\n  when { trace.has(name == 'charge') }\n  always { trace.has(name == 'refund') }\n}\n"
    "rule needs_charge {\n  when { trace.has(name == 'refund') }\n  always { trace.has(name == 'charge') }\n}\n"
    "rule always_refund { expect trace.has(name == 'refund') }\n"
    "rule db_needs_refund {\n  when { trace.has(name == 'db') }\n  always { trace.has(service == 'refunds') }\n}\n"
    "rule refund_first {\n  when { trace.has(name == 'charge') }\n"
    "  always { trace.has(name == 'refund').before(trace.has(name == 'charge')) }\n}\n"
)


def test_an_always_clause_is_contradicted_by_an_exclusion(tmp_path: Path) -> None:
    """`when {A} always {trace.has(B)}` was contradicted by no exclusion: that A and B never share a trace says
    B is absent wherever A occurs, against the rule, which the traces with A broke. So is `expect
    trace.has(B)`, a `when` that held on the traces with A (every trace has `db`), or an order needing B there.
    The text report says what the JSON says."""
    traces, rules = tmp_path / "t.json", tmp_path / "r.fluo"
    traces.write_text(json.dumps(spans_to_json(refund_corpus(range(0, 30, 3), range(1, 30, 3), 30))), "utf-8")
    rules.write_text(NEEDS, encoding="utf-8")
    args = ["--compare", str(rules), str(traces), "--min-support", "3"]
    report = by_rule(json.loads(run(*args, "--format", "json").stdout))
    for rule, fired in [("needs_refund", 10), ("needs_charge", 10), ("always_refund", 20),
                        ("db_needs_refund", 20), ("refund_first", 10)]:  # fmt: skip
        assert (report[rule]["fired"], contradicting(report[rule])) == (fired, [EXCLUSION]), rule
        assert report[rule]["discovered"][0]["kind"] == "exclusion"
    text = run(*args).stdout.replace(str(rules), "RULES")
    said: dict[str, list[str]] = {}
    rule = ""
    for line in text.splitlines():
        if not line.startswith(" "):
            rule = line.split(" (")[0]
        elif line.startswith("  - contradicted by what was discovered: "):
            said.setdefault(rule, []).append(line.split(": ", 1)[1])
    assert said == {r: [d["fact"] for d in report[r]["discovered"] if d["contradicts"]] for r in report}


def test_an_exclusion_contradicts_only_where_the_traces_that_broke_the_rule_had_a(tmp_path: Path) -> None:
    """An exclusion allowed exceptions (`--min-confidence 0.85`): `charge` came with `refund` on all its 5 traces,
    and `refund` without `charge` on 30. The rule that `refund` needs `charge` is contradicted (it broke on
    traces with `refund`, which the fact says have no `charge`); that every trace has `refund` is not: the 5
    traces that broke it had no `charge`, so "no refund where charge" says nothing about them."""
    traces, rules = tmp_path / "t.json", tmp_path / "r.fluo"
    spans = refund_corpus(range(5), range(35), 40)
    traces.write_text(json.dumps(spans_to_json(spans)), "utf-8")
    rules.write_text(NEEDS, encoding="utf-8")
    args = ["--compare", str(rules), str(traces), "--min-confidence", "0.85", "--format", "json"]
    report = by_rule(json.loads(run(*args).stdout))
    assert (report["needs_charge"]["fired"], contradicting(report["needs_charge"])) == (30, [EXCLUSION])
    assert report["always_refund"]["fired"] == 5 and contradicting(report["always_refund"]) == []
    assert EXCLUSION in [d["rule"] for d in report["always_refund"]["discovered"]]  # about the same spans
    assert report["needs_refund"]["fired"] == 0 and report["needs_refund"]["discovered"] == []


def test_bounds_in_a_never_clause_are_contradicted_as_their_negation(files: tuple[Path, Path]) -> None:
    """`never { count() > 4 }` assumes `count() <= 4`, and `never { spans.any(duration > 2ms) }` that every
    span keeps to `duration <= 2ms`: contradicted as those written in `always` are."""
    rules, traces = files
    (rules / "never.fluo").write_text(
        "rule never_many {\n  when { trace.has(name == 'charge') }\n"
        "  never { trace.count(service == 'auth') > 4 }\n}\n"
        "rule never_slow {\n  when { trace.has(name == 'charge') }\n"
        "  never { trace.spans.where(name == 'login').any(duration > 2ms) }\n}\n"
        "rule never_few {\n  when { trace.has(name == 'charge') }\n  never { trace.count(service == 'auth') < 7 }\n}\n",
        encoding="utf-8",
    )
    report = compare(rules, traces)
    assert contradicting(report["never_many"]) == [f"trace.spans.where(service == 'auth').count() <= {max(AUTH_SPANS)}"]
    assert contradicting(report["never_slow"]) == ["trace.spans.where(name == 'login').all(duration <= 5ms)"]
    assert report["never_few"]["fired"] == len(AUTH_SPANS) and contradicting(report["never_few"]) == []


def shop_corpus() -> list[Span]:
    """The `files` corpus's traces with a `db` span (auth) each, lasting 2ms to 11ms, and `GET /` lasting 100ms
    to 190ms."""
    spans: list[Span] = []
    for i, n in enumerate(AUTH_SPANS):
        tid = (i + 1).to_bytes(16, "big")
        root = span(tid, bytes([i, 0, 0, 0, 0, 0, 0, 1]), "GET /", "front", 0, 100 + 10 * i)
        spans.append(root)
        spans += [span(tid, bytes([i, 1, 0, 0, 0, 0, 0, k]), "login", "auth", k, k + 5, root.span_id) for k in range(n)]
        spans.append(span(tid, bytes([i, 3, 0, 0, 0, 0, 0, 0]), "db", "auth", 20, 22 + i, root.span_id))
        spans.append(span(tid, bytes([i, 2, 0, 0, 0, 0, 0, 0]), "charge", "pay", 50, 60, root.span_id))
    return spans


def test_a_set_of_names_is_matched_with_facts_about_each(tmp_path: Path) -> None:
    """`where(name in [...])` got no fact at all. A fact about the spans of one of the names contradicts a
    limit on each span of the set when those spans broke it, and an upper bound on the set's count when they
    alone counted past it; a member's upper bound says nothing against a lower bound on the set's count."""
    report = compare_spans(
        tmp_path,
        shop_corpus(),
        "rule in_count { expect trace.spans.where(name in ['login', 'db']).count() <= 4 }\n"
        "rule in_many { expect trace.spans.where(name in ['login', 'db']).count() >= 8 }\n"
        "rule in_fast { expect trace.spans.where(name in ['login', 'charge']).all(duration <= 2ms) }\n"
        "rule in_services { expect trace.spans.where(service in ['auth', 'pay']).all(duration <= 8ms) }\n"
        "rule when_four {\n  when { trace.count(name == 'login') == 4 }\n"
        "  always { trace.spans.where(name in ['login', 'db']).count() <= 4 }\n}\n",
    )
    # the service's bound counts the same spans here (auth is login and db)
    assert contradicting(report["in_count"]) == [
        "trace.spans.where(service == 'auth').count() <= 7",
        "trace.spans.where(name == 'login').count() <= 6",
    ]
    # where it fired, 4 logins and a db: `login` at most 6 elsewhere is not what broke it
    assert contradicting(report["when_four"]) == ["trace.spans.where(service == 'auth').count() <= 7"]
    assert report["in_many"]["fired"] == len(AUTH_SPANS) and contradicting(report["in_many"]) == []
    assert "trace.spans.where(name == 'login').count() <= 6" in [d["rule"] for d in report["in_many"]["discovered"]]
    assert sorted(contradicting(report["in_fast"])) == [
        "trace.spans.where(name == 'charge').all(duration <= 10ms)",
        "trace.spans.where(name == 'login').all(duration <= 5ms)",
    ]
    # login (5ms) broke no 8ms bound; db (up to 11ms) and charge (10ms) did
    assert sorted(contradicting(report["in_services"])) == [
        "trace.spans.where(name == 'charge').all(duration <= 10ms)",
        "trace.spans.where(name == 'db').all(duration <= 15ms)",
    ]


def test_a_maximum_or_minimum_bounds_each_span(tmp_path: Path) -> None:
    """`spans.max(duration) <= 2ms` bounds each span as `spans.all(duration <= 2ms)` does and is contradicted
    alike (it got no contradiction); `min(duration) >= 9ms` is a lower bound, which an upper one never
    contradicts."""
    report = compare_spans(
        tmp_path,
        shop_corpus(),
        "rule max_fast { expect trace.spans.where(name == 'login').max(duration) <= 2ms }\n"
        "rule all_fast { expect trace.spans.where(name == 'login').all(duration <= 2ms) }\n"
        "rule never_max { never { trace.spans.where(name == 'login').max(duration) > 2ms } when { true } }\n"
        "rule min_slow { expect trace.spans.where(name == 'db').min(duration) >= 9ms }\n",
    )
    login = ["trace.spans.where(name == 'login').all(duration <= 5ms)"]
    assert contradicting(report["max_fast"]) == contradicting(report["all_fast"]) == login
    assert contradicting(report["never_max"]) == login
    assert report["min_slow"]["fired"] == 7 and contradicting(report["min_slow"]) == []


def test_trace_and_root_durations_are_matched_with_span_durations(tmp_path: Path) -> None:
    """`trace.duration` and `trace.root.duration` got no fact: discover proposes no bound on them, but the root
    is a span (of `GET /` here), and no span lasts longer than its trace, so the duration bound of the spans
    that broke such a rule contradicts it. A lower bound on the root's duration is about the same spans,
    never contradicted by an upper bound; one on the trace's is about no span (nothing is set beside it)."""
    report = compare_spans(
        tmp_path,
        shop_corpus(),
        "rule trace_short { expect trace.duration <= 120ms }\n"
        "rule root_short { expect trace.root.duration <= 120ms }\n"
        "rule root_long { expect trace.root.duration >= 150ms }\n"
        "rule trace_long { expect trace.duration >= 150ms }\n",
    )
    root = ["trace.spans.where(name == 'GET /').all(duration <= 200ms)"]
    assert report["trace_short"]["fired"] == 7 and contradicting(report["trace_short"]) == root
    assert contradicting(report["root_short"]) == root
    assert report["root_long"]["fired"] == 5 and contradicting(report["root_long"]) == []
    assert [d["rule"] for d in report["root_long"]["discovered"]] == root
    assert report["trace_long"]["fired"] == 5 and report["trace_long"]["discovered"] == []


def test_a_contradiction_is_listed_once_by_its_strongest_fact(tmp_path: Path) -> None:
    """A fact whose contradicting bound another contradicting fact implies is not listed again: the range of
    every `pay` span's amount, not also that of `charge`'s (the same upper end, on some of those spans); the
    trace's bound, not also the bound of `auth` (every span) left out as implied."""
    spans: list[Span] = []
    for i in range(12):
        tid = (i + 1).to_bytes(16, "big")
        root = span(tid, bytes([i, 0, 0, 0, 0, 0, 0, 1]), "GET /", "front", 0, 100)
        spans += [
            root,
            span(tid, bytes([i, 1, 0, 0, 0, 0, 0, 0]), "charge", "pay", 50, 60, root.span_id,
                 amount=800 + 200 * (i % 2) - i),
            span(tid, bytes([i, 2, 0, 0, 0, 0, 0, 0]), "refund", "pay", 60, 70, root.span_id, amount=5 + i % 6),
        ]  # fmt: skip
    report = compare_spans(
        tmp_path, spans, "rule small { expect trace.spans.where(service == 'pay').all(amount <= 500) }\n"
    )
    assert contradicting(report["small"]) == ["trace.spans.where(service == 'pay').all(amount >= 5 and amount <= 999)"]
    assert "trace.spans.where(name == 'charge').all(amount >= 790 and amount <= 999)" not in [
        d["rule"] for d in report["small"]["discovered"]
    ]
    report = compare_spans(tmp_path, auth_only(), "rule total { expect trace.spans.count() <= 4 }\n")
    assert contradicting(report["total"]) == ["trace.spans.count() <= 7"]


def test_a_yaml_file_named_to_compare_is_refused_naming_fluo_test(files: tuple[Path, Path]) -> None:
    """As `fluo check t.yaml`: the path was named on the command line, so the refusal says what runs a rule test."""
    _, traces = files
    test = traces.parent / "mine_test.yaml"
    test.write_text("rules: rules\ncases: []\n", encoding="utf-8")
    result = run("--compare", str(test), str(traces))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"fluo: --compare {test} is YAML, not a .fluo file: name rule files, or folders to search "
        f"(a rule test runs with `fluo test {test}`)\n"
    )


def test_the_text_report_writes_controls_from_trace_data_as_escapes(tmp_path: Path) -> None:
    """A U+202E in a span name reached the terminal raw through a discovered fact's rule text."""
    name = "GET /\u202eusers"
    spans = [span(bytes([i]) * 16, bytes([i, 1]) * 4, name, "api", 0, 5) for i in range(1, 7)]
    traces = tmp_path / "t.json"
    traces.write_text(json.dumps(spans_to_json(spans)), encoding="utf-8")
    rules = tmp_path / "r.fluo"
    rules.write_text("rule r {\n  expect trace.spans.where(name == 'GET /\\u202eusers').count() <= 0\n}\n")
    result = run("--compare", str(rules), str(traces))
    assert result.exit_code == 0, result.output
    assert "\u202e" not in result.stdout
    assert "trace.spans.where(name == 'GET /\\u202eusers')" in result.stdout


def test_bounds_left_out_as_implied_by_their_services_still_contradict(tmp_path: Path) -> None:
    """`reserve`'s count bound (its service's) and `hit`'s duration bound (written as its service's) were
    dropped unrecorded, so rules bounding them tighter were not contradicted (docs/discover.md says they are)."""
    spans: list[Span] = []
    for i in range(8):
        tid = (i + 1).to_bytes(16, "big")
        root = span(tid, bytes([i, 0, 0, 0, 0, 0, 0, 1]), "POST /checkout", "front", 0, 50)
        spans.append(root)
        name = "lookup" if i % 2 else "reserve"  # `reserve` reaches the service's bound, 5
        spans += [span(tid, bytes([i, 1, 0, 0, 0, 0, 0, k]), name, "inventory", 1, 6, root.span_id)
                  for k in range(1 + i % 5)]  # fmt: skip
        spans.append(
            span(tid, bytes([i, 2, 0, 0, 0, 0, 0, 1]), "hit" if i % 2 else "set", "cache", 10, 11, root.span_id)
        )
    report = compare_spans(
        tmp_path,
        spans,
        "rule few { expect trace.spans.where(name == 'reserve').count() <= 3 }\n"
        "rule fast { expect trace.spans.where(name == 'hit').all(duration <= 500us) }\n",
    )
    assert contradicting(report["few"]) == ["trace.spans.where(name == 'reserve').count() <= 5"]
    assert contradicting(report["fast"]) == ["trace.spans.where(name == 'hit').all(duration <= 1ms)"]


def test_a_rule_that_fired_once_did_not_hold_on_100_percent(tmp_path: Path) -> None:
    """One error span in 25,000 traces read "held on 100% of 25000 traces (fired on 1)"."""
    spans = [
        Span(trace_id=(i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="h", service="s",
             start=T0 + i * MS, end=T0 + i * MS + 1000, status="error" if i == 7 else "unset")
        for i in range(25_000)
    ]  # fmt: skip
    traces, rules = tmp_path / "t.json", tmp_path / "r.fluo"
    traces.write_text(json.dumps(spans_to_json(spans)), encoding="utf-8")
    rules.write_text("rule ok { expect trace.spans.none(status == error) }\n", encoding="utf-8")
    result = run("--compare", str(rules), str(traces))
    assert result.stdout.splitlines()[0].endswith(": held on 99.996% of 25000 traces (fired on 1)"), result.stdout


def test_an_empty_rule_file_says_there_is_nothing_to_compare(files: tuple[Path, Path], tmp_path: Path) -> None:
    """It printed one blank line and nothing else."""
    _, traces = files
    empty = tmp_path / "empty.fluo"
    empty.write_text("", encoding="utf-8")
    result = run("--compare", str(empty), str(traces))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == f"fluo: no rules to compare in {empty} (none defined, or all disabled)\n"


def test_nothing_to_compare_writes_no_empty_output(files: tuple[Path, Path], tmp_path: Path) -> None:
    """QA discover tour: `-o` was written empty when the rule files held no rule."""
    _, traces = files
    empty, out = tmp_path / "empty.fluo", tmp_path / "report.txt"
    empty.write_text("", encoding="utf-8")
    result = run("--compare", str(empty), str(traces), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert not out.exists()
    assert result.stderr == f"fluo: no rules to compare in {empty} (none defined, or all disabled); {out} not written\n"


def test_an_exclusion_left_out_as_implied_still_contradicts(tmp_path: Path) -> None:
    """QA discover r12: `charge` and `gift` never share a trace, left out because `fraud` and `gift` do not either
    and `charge` always comes with `fraud`; `when gift always charge`, held on no trace, was contradicted by
    nothing while the same rule about `fraud` was."""
    spans: list[Span] = []
    for i in range(40):
        tid = (i + 1).to_bytes(16, "big")
        root = span(tid, bytes([i, 0, 0, 0, 0, 0, 0, 1]), "pay", "shop", 0, 100)
        spans.append(root)
        spans += [span(tid, bytes([i, 1, 0, 0, 0, 0, 0, k]), "cache", "shop", 40 + k, 41 + k, root.span_id)
                  for k in range(i % 4)]  # fmt: skip
        if i % 2:
            spans.append(span(tid, bytes([i, 2, 0, 0, 0, 0, 0, 0]), "fraud", "shop", 1, 11, root.span_id))
            spans.append(span(tid, bytes([i, 3, 0, 0, 0, 0, 0, 0]), "charge", "shop", 20, 30, root.span_id))
        else:
            spans.append(span(tid, bytes([i, 4, 0, 0, 0, 0, 0, 0]), "gift", "shop", 1, 11, root.span_id))
    traces, rules = tmp_path / "t.json", tmp_path / "r.fluo"
    traces.write_text(json.dumps(spans_to_json(spans)), "utf-8")
    rules.write_text(
        "".join(
            f"rule gift_needs_{x} {{\n  when {{ trace.has(name == 'gift') }}\n"
            f"  always {{ trace.has(name == '{x}') }}\n}}\n"
            for x in ("fraud", "charge")
        ),
        encoding="utf-8",
    )
    report = compare(rules, traces)
    for x in ("fraud", "charge"):
        assert report[f"gift_needs_{x}"]["held"] == 0.0
        assert contradicting(report[f"gift_needs_{x}"]) == [
            f"not (trace.has(name == '{min(x, 'gift')}') and trace.has(name == '{max(x, 'gift')}'))"
        ], x


def test_an_exclusion_the_count_bounds_imply_still_contradicts(tmp_path: Path) -> None:
    """`x` and `y` never share a trace, left out because a trace has at most 2 spans: `GET /` and one of them.
    `when x always y` is still contradicted by it."""
    spans: list[Span] = []
    for i in range(20):
        tid = (i + 1).to_bytes(16, "big")
        root = span(tid, bytes([i, 0, 0, 0, 0, 0, 0, 1]), "GET /", "front", 0, 100)
        spans += [root, span(tid, bytes([i, 1, 0, 0, 0, 0, 0, 0]), "xy"[i % 2], "back", 1, 11, root.span_id)]
    traces, rules = tmp_path / "t.json", tmp_path / "r.fluo"
    traces.write_text(json.dumps(spans_to_json(spans)), "utf-8")
    rules.write_text("rule x_needs_y {\n  when { trace.has(name == 'x') }\n  always { trace.has(name == 'y') }\n}\n")
    discovered = run(str(traces)).stdout
    assert "expect trace.spans.count() <= 2" in discovered and "excludes" not in discovered
    assert contradicting(compare(rules, traces)["x_needs_y"]) == [
        "not (trace.has(name == 'x') and trace.has(name == 'y'))"
    ]
