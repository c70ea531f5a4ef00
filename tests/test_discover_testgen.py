"""`fluo discover --tests`: the written rule test passes, and every violating case really fires its rule."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from limits_support import file_size_limit

from fluo_lang.api import analyze_paths, compile_program
from fluo_lang.otlp import load_trace_file, spans_to_json, spans_to_request
from fluo_lang.trace import Span, assemble
from fluo_run.cli import main
from fluo_run.discover import testgen
from fluo_run.discover.synthetic import shop_corpus

T0 = 1_767_225_600 * 10**9


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("discover")
    traces = root / "shop.json"
    traces.write_text(json.dumps(spans_to_json(shop_corpus(60, exceptions=2))), encoding="utf-8")
    rules = root / "rules" / "shop.fluo"
    rules.parent.mkdir()
    result = CliRunner().invoke(
        main, ["discover", str(traces), "-o", str(rules), "--tests", str(root / "rules"), "--min-confidence", "0.95"]
    )
    assert result.exit_code == 0, result.output
    test_file = root / "rules" / "shop_test.yaml"
    assert f"wrote {test_file} with " in result.stderr
    return rules, yaml.safe_load(test_file.read_text(encoding="utf-8"))


def fired(rules: Path, fixture: Path) -> list[str]:
    program = compile_program(analyze_paths([rules]))
    signals = program.evaluate(assemble(load_trace_file(fixture)))
    return sorted({s.rule for s in signals})


def test_every_rule_has_a_violating_case_that_fires_it(written: tuple[Path, dict[str, Any]]) -> None:
    rules, doc = written
    assert doc["rules"] == ["shop.fluo"]
    ids = {r.id for r in analyze_paths([rules]).rules}
    violating = [c for c in doc["cases"] if c["expect"]]
    assert {c["name"].split(" fires")[0] for c in violating} == ids
    for case in violating:
        rule_id = case["name"].split(" fires")[0]
        observed = fired(rules, rules.parent / case["traces"])
        assert rule_id in observed, case["name"]
        assert [e["rule"] for e in case["expect"]] == observed, case["name"]


def test_the_passing_case_is_a_quiet_real_trace(written: tuple[Path, dict[str, Any]]) -> None:
    rules, doc = written
    passing = [c for c in doc["cases"] if c["expect"] == []]
    assert len(passing) == 1
    assert fired(rules, rules.parent / passing[0]["traces"]) == []


def test_exceptions_become_real_counterexamples(written: tuple[Path, dict[str, Any]]) -> None:
    _, doc = written
    order = "shop_payment_charge_card_after_payment_fraud_check"
    case = next(c for c in doc["cases"] if c["name"].startswith(f"{order} fires"))
    assert "a real counterexample" in case["name"]


def test_mutations_are_minimal_and_named(written: tuple[Path, dict[str, Any]]) -> None:
    _, doc = written
    names = {c["name"].split(" fires")[0]: c["name"] for c in doc["cases"] if c["expect"]}
    copies = r'with [123] cop(y|ies) of a "login" span \(4 "login" spans\)$'
    assert re.search(copies, names["shop_auth_login_count_max"])
    assert "stretched just past the bound" in names["shop_checkout_duration_max"]
    assert names["shop_no_errors"].endswith("with one span failed (status error)")
    assert "detached from its parent" in names["shop_inventory_reserve_under_checkout"]
    solo = [c for c in doc["cases"] if len(c["expect"]) == 1]
    assert len(solo) >= len(names) // 2  # most changes break only the rule they target


def test_fluo_test_runs_the_written_file(written: tuple[Path, dict[str, Any]]) -> None:
    rules, doc = written
    result = CliRunner().invoke(main, ["test", str(rules.parent), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    statuses = [c["status"] for f in report["files"] for c in f["cases"]]
    assert statuses == ["passed"] * len(doc["cases"])


def test_rules_about_every_span_get_violating_cases_too(tmp_path: Path) -> None:
    """Service- and corpus-wide rules (one duration, one attribute for all spans) are broken on some span in scope."""
    spans = []
    for i in range(8):
        tid = (i + 1).to_bytes(16, "big")
        for k, (name, service) in enumerate([("root", "front"), ("login", "auth"), ("check", "auth")]):
            start = T0 + k * 1_000_000
            spans.append(
                Span(
                    trace_id=tid,
                    span_id=bytes([i, k, 0, 0, 0, 0, 0, 1]),
                    name=name,
                    service=service,
                    parent_id=b"" if k == 0 else bytes([i, 0, 0, 0, 0, 0, 0, 1]),
                    start=start,
                    end=start + 10**7,
                    attributes={"region": "eu", "tries": i % 3},
                )
            )
    traces = tmp_path / "t.json"
    traces.write_text(json.dumps(spans_to_json(spans)), encoding="utf-8")
    rules = tmp_path / "all.fluo"
    result = CliRunner().invoke(main, ["discover", str(traces), "-o", str(rules), "--tests", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = rules.read_text(encoding="utf-8")
    assert "expect trace.spans.all(duration <= 10ms)" in text
    assert "expect trace.spans.all(region == 'eu')" in text
    doc = yaml.safe_load((tmp_path / "all_test.yaml").read_text(encoding="utf-8"))
    ids = {r.id for r in analyze_paths([rules]).rules}
    violating = {c["name"].split(" fires")[0]: c for c in doc["cases"] if c["expect"]}
    assert set(violating) == ids
    for rule_id, case in violating.items():
        assert rule_id in fired(rules, tmp_path / case["traces"])
    run = CliRunner().invoke(main, ["test", str(tmp_path)])
    assert run.exit_code == 0, run.output


def write_spans(path: Path, spans: list[Span]) -> Path:
    path.write_text(json.dumps(spans_to_json(spans)), encoding="utf-8")
    return path


def lone_span(i: int, name: str = "ping", service: str = "api", parent: Span | None = None, **attributes: Any) -> Span:
    """A span of trace `i`: its root, or a child of `parent` (one level below it in its id's first byte)."""
    start = T0 + i * 10**9
    return Span(
        trace_id=(i + 1).to_bytes(16, "big"),
        span_id=(i + 1).to_bytes(8, "big") if parent is None else bytes([parent.span_id[0] + 1]) + parent.span_id[1:],
        parent_id=b"" if parent is None else parent.span_id,
        name=name,
        service=service,
        start=start,
        end=start + 10**6,
        attributes=attributes,
    )


def test_single_span_traces_get_a_violating_case_for_presence(tmp_path: Path) -> None:
    """H1: removing the one operation of a one-span trace would leave no trace at all; the case renames it instead."""
    traces = write_spans(tmp_path / "t.json", [lone_span(i) for i in range(8)])
    rules = tmp_path / "out" / "r.fluo"
    result = CliRunner().invoke(main, ["discover", str(traces), "-o", str(rules), "--tests", str(rules.parent)])
    assert result.exit_code == 0, result.output
    assert "expect trace.has(name == 'ping')" in rules.read_text(encoding="utf-8")
    doc = yaml.safe_load((rules.parent / "r_test.yaml").read_text(encoding="utf-8"))
    names = {c["name"].split(" fires")[0]: c["name"] for c in doc["cases"]}
    # QA L10: not "spans spans"
    assert names["r_trace_span_count_max"].endswith('with 1 copy of a "ping" span (2 spans)')
    case = next(c for c in doc["cases"] if c["name"].startswith("r_api_ping_in_every_trace fires"))
    assert "r_api_ping_in_every_trace" in fired(rules, rules.parent / case["traces"])
    run = CliRunner().invoke(main, ["test", str(rules.parent)])
    assert run.exit_code == 0, run.output


def test_a_bytes_attribute_stays_bytes_in_the_fixtures(tmp_path: Path) -> None:
    """QA docs 02: a `bytesValue` attribute (read as its hex text, `'deadbeef'`) was written back into the fixtures
    as a `stringValue`, so a fixture no longer held what the trace did."""
    traces = tmp_path / "t.json"
    write_spans(traces, [lone_span(i, body_hash=b"\xde\xad\xbe\xef", note="deadbeef") for i in range(8)])
    assert "3q2+7w==" in traces.read_text(encoding="utf-8")
    rules = tmp_path / "out" / "r.fluo"
    result = CliRunner().invoke(main, ["discover", str(traces), "-o", str(rules), "--tests", str(rules.parent)])
    assert result.exit_code == 0, result.output
    fixtures = sorted(rules.parent.rglob("*.json"))
    assert fixtures
    for fixture in fixtures:
        doc = json.loads(fixture.read_text(encoding="utf-8"))
        values = {
            a["key"]: a["value"]
            for rs in doc["resourceSpans"]
            for ss in rs["scopeSpans"]
            for sp in ss["spans"]
            for a in sp.get("attributes", [])
        }
        # the cases setting a value outside the set: of the value's own kind
        outside = {"body_hash": {"bytesValue": base64.b64encode(b"unexpected-deadbeef").decode()}}
        if fixture.name.endswith("note_values.json"):
            outside = {"note": {"stringValue": "unexpected-deadbeef"}}
        kept = {"body_hash": {"bytesValue": "3q2+7w=="}, "note": {"stringValue": "deadbeef"}}
        assert values == kept | (outside if fixture.name.endswith("_values.json") else {}), fixture
    (span,) = load_trace_file(rules.parent / "fixtures" / "r" / "r_no_errors.json")
    assert span.attributes["body_hash"] == "deadbeef" == span.attributes["note"]  # read back as it was
    run = CliRunner().invoke(main, ["test", str(rules.parent)])
    assert run.exit_code == 0, run.output


def test_half_surrogate_names_in_a_trace_file_are_read_as_u_fffd_and_make_rules_that_check(tmp_path: Path) -> None:
    """M1: JSON escapes half a surrogate pair (`"cut\\ud800"`), which FLUO reads as U+FFFD: the rules name
    `cut\ufffd`, check, and their test passes. (Spans holding half a pair in memory are skipped: test_discover.)"""
    spans = [lone_span(i, name="cut\ud800") for i in range(8)]
    traces = write_spans(tmp_path / "t.json", spans)
    assert "cut\\ud800" in traces.read_text(encoding="utf-8")
    rules = tmp_path / "out" / "r.fluo"
    result = CliRunner().invoke(main, ["discover", str(traces), "-o", str(rules), "--tests", str(rules.parent)])
    assert result.exit_code == 0, result.output
    check = CliRunner().invoke(main, ["check", str(rules)])
    assert check.exit_code == 0, check.output
    text = rules.read_text(encoding="utf-8")
    assert "expect trace.spans.count() <= 1" in text and "name == 'cut\ufffd'" in text, text
    test_yaml = (rules.parent / "r_test.yaml").read_text(encoding="utf-8")
    names = [c["name"] for c in yaml.safe_load(test_yaml)["cases"]]
    assert any('"cut\ufffd"' in name for name in names), names
    run = CliRunner().invoke(main, ["test", str(rules.parent)])
    assert run.exit_code == 0, run.output


def test_bidi_and_c1_controls_in_span_names_are_escaped_in_the_test_file(tmp_path: Path) -> None:
    """Security r04: a span name holding U+202E ("Trojan Source") or a C1 control went raw into the case names
    of the test file `--tests` writes for review. They are written double-quoted as `\\u202e` (PyYAML itself
    escapes a C1 control, `\\x9B`), and read back as they were."""
    spans = [lone_span(i, name="pay \u202e1 \u009b") for i in range(8)]
    traces = write_spans(tmp_path / "t.json", spans)
    rules = tmp_path / "out" / "r.fluo"
    result = CliRunner().invoke(main, ["discover", str(traces), "-o", str(rules), "--tests", str(rules.parent)])
    assert result.exit_code == 0, result.output
    test_yaml = (rules.parent / "r_test.yaml").read_text(encoding="utf-8")
    assert not [c for c in test_yaml if c in "\u202e\u009b"], test_yaml
    assert "pay \\u202e1 \\x9B" in test_yaml
    names = [c["name"] for c in yaml.safe_load(test_yaml)["cases"]]
    assert any("pay \u202e1 \u009b" in name for name in names), names
    run = CliRunner().invoke(main, ["test", str(rules.parent)])
    assert run.exit_code == 0, run.output


def test_two_rule_files_tested_in_one_folder_keep_their_own_fixtures(tmp_path: Path) -> None:
    """M3: rule ids such as no_errors recur; each rule file's fixtures live in a folder of its own."""
    shop = write_spans(tmp_path / "shop.json", shop_corpus(30))
    ping = write_spans(tmp_path / "ping.json", [lone_span(i) for i in range(8)])
    folder = tmp_path / "rules"
    for corpus in (shop, ping):
        result = CliRunner().invoke(
            main, ["discover", str(corpus), "-o", str(folder / f"{corpus.stem}.fluo"), "--tests", str(folder)]
        )
        assert result.exit_code == 0, result.output
    assert (folder / "fixtures" / "shop" / "shop_no_errors.json").exists()
    assert (folder / "fixtures" / "ping" / "ping_no_errors.json").exists()
    run = CliRunner().invoke(main, ["test", str(folder / "shop_test.yaml")])
    assert run.exit_code == 0, run.output
    # ids start with their file's stem, so the two files load together (no FLUO213 duplicate id)
    check = CliRunner().invoke(main, ["check", str(folder)])
    assert check.exit_code == 0, check.output
    run = CliRunner().invoke(main, ["test", str(folder)])
    assert run.exit_code == 0, run.output


def test_a_new_run_removes_the_fixtures_only_its_last_run_used(tmp_path: Path) -> None:
    """Old fixtures stayed: a rule gone from the corpus left its fixture beside the new test file."""
    folder = tmp_path / "rules"
    rules = folder / "shop.fluo"
    shop = write_spans(tmp_path / "shop.json", shop_corpus(30))
    result = CliRunner().invoke(main, ["discover", str(shop), "-o", str(rules), "--tests", str(folder)])
    assert result.exit_code == 0, result.output
    fixtures = folder / "fixtures" / "shop"
    first = {p.name for p in fixtures.iterdir()}
    mine = fixtures / "my_own.json"  # a file of the user's, which no generated case names
    mine.write_text("{}", encoding="utf-8")
    ping = write_spans(tmp_path / "ping.json", [lone_span(i) for i in range(8)])
    result = CliRunner().invoke(main, ["discover", str(ping), "-o", str(rules), "--tests", str(folder)])
    assert result.exit_code == 0, result.output
    second = {p.name for p in fixtures.iterdir()} - {"my_own.json"}
    used = {Path(c["traces"]).name for c in yaml.safe_load((folder / "shop_test.yaml").read_text("utf-8"))["cases"]}
    assert second == used
    gone = first - second
    assert gone and f"removed {len(gone)} fixtures of the last run no case uses now" in result.stderr
    assert mine.read_text(encoding="utf-8") == "{}"
    run = CliRunner().invoke(main, ["test", str(folder / "shop_test.yaml")])
    assert run.exit_code == 0, run.output


@pytest.mark.parametrize("linked", ["fixtures/shop", "fixtures", "shop_test.yaml"])
def test_tests_never_write_or_remove_through_a_symbolic_link(tmp_path: Path, linked: str) -> None:
    """Security QA: a repository shipping tests/fixtures/shop -> elsewhere had discover delete and write
    files there (old fixtures removed, new ones written through the link)."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "notes.json").write_text("precious", encoding="utf-8")
    folder = tmp_path / "tests"
    link = folder / linked
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim / "notes.json" if linked.endswith(".yaml") else victim)
    if linked != "shop_test.yaml":
        (folder / "shop_test.yaml").write_text(
            "cases:\n  - {name: old, traces: fixtures/shop/notes.json, expect: []}\n"
        )
    shop = write_spans(tmp_path / "shop.json", shop_corpus(30))
    result = CliRunner().invoke(main, ["discover", str(shop), "-o", str(folder / "shop.fluo"), "--tests", str(folder)])
    assert result.exit_code == 2
    assert "is a symbolic link" in result.stderr and "does not follow links" in result.stderr
    assert [p.name for p in victim.iterdir()] == ["notes.json"]
    assert (victim / "notes.json").read_text(encoding="utf-8") == "precious"
    assert not (folder / "shop.fluo").exists()


def test_a_call_that_no_parent_rule_forbids_gets_a_violating_case(tmp_path: Path) -> None:
    """`no_call` kept (charge is called from checkout or from orders, so no parent rule pins it) and broken."""
    spans = []
    for i in range(10):
        front = lone_span(i, name="GET /buy", service="frontend")
        middle = lone_span(i, name="place", service="checkout" if i % 2 else "orders", parent=front)
        charge = lone_span(i, name="charge", service="payment", parent=middle)
        spans += [front, middle, charge]
    traces = write_spans(tmp_path / "t.json", spans)
    rules = tmp_path / "r.fluo"
    result = CliRunner().invoke(main, ["discover", str(traces), "-o", str(rules), "--tests", str(tmp_path)])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load((tmp_path / "r_test.yaml").read_text(encoding="utf-8"))
    case = next(c for c in doc["cases"] if c["name"].startswith("r_frontend_never_calls_payment fires"))
    assert 'with one "payment" span called directly from "frontend"' in case["name"]
    run = CliRunner().invoke(main, ["test", str(tmp_path)])
    assert run.exit_code == 0, run.output


def test_spans_without_a_service_name_are_named_so(tmp_path: Path) -> None:
    """QA L11: service '' read `At most 2 '' spans`; the rules still select it with `service == ''`."""
    spans = []
    for i in range(10):
        front = lone_span(i, name="GET /", service="frontend")
        if i == 3:
            front.status = "error"
        spans += [front, *(lone_span(i, name="job", service="", parent=front) for _ in range(1 + i % 2))]
    for k, s in enumerate(spans):  # the jobs of one trace need ids of their own
        s.span_id = s.span_id[:7] + bytes([k % 256]) if s.parent_id else s.span_id
    traces = write_spans(tmp_path / "t.json", spans)
    rules = tmp_path / "r.fluo"
    result = CliRunner().invoke(main, ["discover", str(traces), "-o", str(rules), "--tests", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = rules.read_text(encoding="utf-8")
    descriptions = [line for line in text.splitlines() if "description:" in line]
    assert not [d for d in descriptions if "''" in d], descriptions
    assert "At most 2 spans without service.name in one trace" in text
    assert "No span without service.name ends with status error" in text
    assert "expect trace.spans.where(service == '').count() <= 2" in text
    assert "rule r_unnamed_service_count_max {" in text
    doc = yaml.safe_load((tmp_path / "r_test.yaml").read_text(encoding="utf-8"))
    names = [c["name"] for c in doc["cases"]]
    assert any(n.endswith("(3 spans without service.name)") for n in names), names
    assert any("with one span without service.name failed" in n for n in names), names
    run = CliRunner().invoke(main, ["test", str(tmp_path)])
    assert run.exit_code == 0, run.output


def test_no_rule_no_test_and_the_last_runs_test_is_removed(tmp_path: Path) -> None:
    """With no rule proposed, `--tests` wrote a test file `fluo test` could not load ("no rules in ...")."""
    folder = tmp_path / "rules"
    rules = folder / "shop.fluo"
    shop = write_spans(tmp_path / "shop.json", shop_corpus(30))
    result = CliRunner().invoke(main, ["discover", str(shop), "-o", str(rules), "--tests", str(folder)])
    assert result.exit_code == 0, result.output
    assert (folder / "shop_test.yaml").is_file() and any((folder / "fixtures" / "shop").iterdir())
    (folder / "fixtures" / "other").mkdir()
    (folder / "fixtures" / "other" / "t.json").write_text("{}", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["discover", str(shop), "-o", str(rules), "--tests", str(folder), "--max-rules", "0"]
    )
    assert result.exit_code == 0, result.output
    assert not (folder / "shop_test.yaml").exists()
    # its fixture folder goes once empty (it was left behind, empty); another test's stays
    assert not (folder / "fixtures" / "shop").exists() and (folder / "fixtures" / "other" / "t.json").is_file()
    assert "no test written" in result.stderr and "removed the last run's" in result.stderr
    # QA discover: "no rule was proposed" beside "N more left out by --max-rules 0" said two things
    assert f"no test written into {folder}: the output holds no rule, and a test needs rules" in result.stderr
    few = write_spans(tmp_path / "few.json", shop_corpus(3))
    result = CliRunner().invoke(main, ["discover", str(few), "-o", str(folder / "few.fluo"), "--tests", str(folder)])
    assert result.exit_code == 0, result.output
    assert f"no test written into {folder}: the output holds no rule" in result.stderr
    assert not (folder / "few_test.yaml").exists()


def test_json_into_the_rule_file_the_tests_need_is_refused_before_writing(tmp_path: Path) -> None:
    """`--format json -o rules/shop.fluo --tests rules/` wrote JSON into shop.fluo, then failed on it."""
    shop = write_spans(tmp_path / "shop.json", shop_corpus(30))
    folder = tmp_path / "rules"
    args = ["discover", str(shop), "--format", "json", "--tests", str(folder)]
    result = CliRunner().invoke(main, [*args, "-o", str(folder / "shop.fluo")])
    assert result.exit_code == 2
    assert "--format json" in result.stderr and result.stderr.count("\n") == 1
    assert not folder.exists()
    result = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "shop.json.out.json")])
    assert result.exit_code == 0, result.output
    json.loads((tmp_path / "shop.json.out.json").read_text(encoding="utf-8"))
    assert CliRunner().invoke(main, ["test", str(folder)]).exit_code == 0


@pytest.mark.parametrize("how", ["named", "linked", "hard-linked"])
def test_inputs_among_the_fixtures_are_refused_before_anything_is_written(tmp_path: Path, how: str) -> None:
    """QA r12: `fluo discover tests/fixtures/r/*.json -o tests/r.fluo --tests tests` (the last run's fixtures given
    one by one) exited 0, removed 10 of the 23 inputs and rewrote the rest; given as a folder it was refused."""
    folder = tmp_path / "tests"
    shop = write_spans(tmp_path / "shop.json", shop_corpus(30))
    result = CliRunner().invoke(main, ["discover", str(shop), "-o", str(folder / "r.fluo"), "--tests", str(folder)])
    assert result.exit_code == 0, result.output
    fixtures = sorted((folder / "fixtures" / "r").iterdir())
    inputs = {
        "named": fixtures,
        "linked": [tmp_path / "link.json"],
        "hard-linked": [tmp_path / "hard.json"],
    }[how]
    if how == "linked":
        inputs[0].symlink_to(fixtures[0])
    elif how == "hard-linked":
        inputs[0].hardlink_to(fixtures[0])
    before = {p: p.read_bytes() for p in [*fixtures, folder / "r.fluo", folder / "r_test.yaml"]}
    args = ["discover", *map(str, inputs), "--min-support", "1", "-o", str(folder / "r.fluo"), "--tests", str(folder)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"fluo: refusing to write test fixtures into {folder / 'fixtures' / 'r'}: ")
    assert f"the input {inputs[0]} " in result.stderr and result.stderr.count("\n") == 1
    assert {p: p.read_bytes() for p in before} == before


@pytest.mark.parametrize("blocked", ["tests", "tests/fixtures", "loop"])
def test_a_tests_folder_that_cannot_be_made_refuses_before_the_rules_are_written(tmp_path: Path, blocked: str) -> None:
    """QA r05: with `--tests tests` a link to nothing, the run exited 2 ("File exists") after replacing -o.
    QA errors r07: with `--tests` a symbolic link loop, a traceback (Path.resolve's RuntimeError "Symlink loop")."""
    shop = write_spans(tmp_path / "shop.json", shop_corpus(30))
    rules = tmp_path / "r.fluo"
    rules.write_text("// my reviewed rules\n", encoding="utf-8")
    in_the_way = tmp_path / blocked
    in_the_way.parent.mkdir(exist_ok=True)
    if blocked == "tests":
        in_the_way.symlink_to("nowhere")
        why = f"{in_the_way} is a symbolic link to nowhere, which does not exist"
    elif blocked == "loop":
        in_the_way.symlink_to("loop")
        why = f"{in_the_way} is a symbolic link loop"
    else:
        in_the_way.write_text("a file", encoding="utf-8")
        why = f"{in_the_way} is not a folder"
    tests = tmp_path / ("loop" if blocked == "loop" else "tests")
    result = CliRunner().invoke(main, ["discover", str(shop), "-o", str(rules), "--tests", str(tests)])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"fluo: cannot write the tests into {tests}: {why}\n"
    assert rules.read_text(encoding="utf-8") == "// my reviewed rules\n"


def retry_corpus(n: int, failing: int) -> list[Span]:
    """`n` traces of a handle span calling one `call`; in `failing` of them every tenth) the call fails and a
    `retry` follows: those have more operations than the others."""
    spans = []
    for i in range(n):
        root = lone_span(i, name="handle", service="s")
        call = lone_span(i, name="call", service="s", parent=root)
        call.status = "error" if i % 10 < failing else "unset"
        spans += [root, call]
        if i % 10 < failing:
            retry = lone_span(i, name="retry", service="s", parent=call)
            retry.parent_id = root.span_id
            spans.append(retry)
    return spans


def test_the_passing_case_is_looked_for_among_all_traces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA r11: only the `MAX_PASSING_TRIES` traces with the most operations were looked at: when those all broke
    a rule (failing traces carrying a retry), no passing case was written although clean traces abounded."""
    monkeypatch.setattr(testgen, "MAX_PASSING_TRIES", 5)
    traces = write_spans(tmp_path / "t.json", retry_corpus(40, failing=3))  # 12 failing traces, 28 clean ones
    rules = tmp_path / "r.fluo"
    args = ["discover", str(traces), "--min-confidence", "0.6", "-o", str(rules), "--tests", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "// exceptions (12)" in rules.read_text(encoding="utf-8")
    doc = yaml.safe_load((tmp_path / "r_test.yaml").read_text(encoding="utf-8"))
    (passing,) = [c for c in doc["cases"] if c["expect"] == []]
    assert fired(rules, tmp_path / passing["traces"]) == []
    assert CliRunner().invoke(main, ["test", str(tmp_path)]).exit_code == 0


def test_no_passing_case_is_said_on_stderr(tmp_path: Path) -> None:
    """QA r10: below --min-confidence 1 every trace can break a kept rule; the test file then had no passing case,
    which the docs promise, and nothing said so."""
    spans = []
    for i in range(40):  # even traces: one span more than the rest; odd ones: a failed root
        root = lone_span(i, name="root", service="s")
        root.status = "error" if i % 2 else "unset"
        children = [lone_span(i, name="child", service="s", parent=root) for _ in range(2 - i % 2)]
        children[-1].span_id = children[-1].span_id[:7] + b"\xff"
        spans += [root, *children]
    traces = write_spans(tmp_path / "t.json", spans)
    args = [
        "discover",
        str(traces),
        "--min-confidence",
        "0.5",
        "-o",
        str(tmp_path / "r.fluo"),
        "--tests",
        str(tmp_path),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load((tmp_path / "r_test.yaml").read_text(encoding="utf-8"))
    assert doc["cases"] and all(c["expect"] for c in doc["cases"])
    note = "fluo: no passing case: each of the 40 traces breaks a rule (is among its exceptions, which "
    assert note + "--min-confidence below 1 allows)\n" in result.stderr
    assert CliRunner().invoke(main, ["test", str(tmp_path)]).exit_code == 0


def noisy_shop(n: int) -> list[Span]:
    """Shop traces over three services with a few skewed, failing or missing spans, and attributes."""
    spans = []
    for i in range(n):
        front = lone_span(i, name="GET /pay", service="frontend", user="u1", region="eu")
        place = lone_span(i, name="place", service="checkout", parent=front)
        spans += [front, place]
        if i % 17 != 3:
            spans.append(lone_span(i, name="fraud", service="payment", parent=place))
        charge = lone_span(i, name="charge", service="payment", parent=place, currency="EUR", amount=5 + i % 90)
        charge.span_id = charge.span_id[:7] + b"\xff"
        charge.start += 10**7 - (5 * 10**8 if i % 5 == 0 else 0)
        charge.end = charge.start + 2 * 10**7
        charge.status = "error" if i % 23 == 5 else "unset"
        spans.append(charge)
    return spans


def test_the_tests_do_not_depend_on_the_order_or_encoding_of_the_files(tmp_path: Path) -> None:
    """QA r01: case names, the span copied and the order of spans and attributes in the fixtures changed with
    the order the files were given in (or JSON against protobuf), while the rules did not."""
    spans = noisy_shop(120)
    parts = [spans[k::5] for k in range(5)]
    json_files = [write_spans(tmp_path / f"part{k}.json", part) for k, part in enumerate(parts)]
    pb_files = []
    for k, part in enumerate(parts):  # the same spans as protobuf, their attributes in the reverse order
        flipped = [_with_attributes(s, dict(reversed(s.attributes.items()))) for s in reversed(part)]
        pb_files.append(tmp_path / f"part{k}.pb")
        pb_files[-1].write_bytes(spans_to_request(flipped).SerializeToString())
    outputs = []
    for name, files in [
        ("given", json_files),
        ("reversed", json_files[::-1]),
        ("protobuf", pb_files[2:] + pb_files[:2]),
    ]:
        out = tmp_path / name
        args = ["discover", *map(str, files), "--min-confidence", "0.9", "-o", str(out / "r.fluo"), "--tests", str(out)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        outputs.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert any(b"a real counterexample" in text for text in outputs[0].values())
    assert outputs[0] == outputs[1] == outputs[2]
    fixture = json.loads(outputs[0][Path("fixtures/r/no-rule-fires.json")])
    blocks = [[s for ss in rs["scopeSpans"] for s in ss["spans"]] for rs in fixture["resourceSpans"]]
    for block in blocks:  # a block per service, each in the order of start, then span id
        order = [(int(s["startTimeUnixNano"]), s["spanId"]) for s in block]
        assert order == sorted(order)
    listed = [s for block in blocks for s in block]
    assert len(listed) == 4
    keys = [[a["key"] for a in s.get("attributes", [])] for s in listed]
    assert keys == [sorted(k) for k in keys] and ["region", "user"] in keys


def _with_attributes(s: Span, attributes: dict[str, Any]) -> Span:
    return Span(
        trace_id=s.trace_id,
        span_id=s.span_id,
        parent_id=s.parent_id,
        name=s.name,
        service=s.service,
        start=s.start,
        end=s.end,
        status=s.status,
        attributes=attributes,
    )


def _files(folder: Path) -> dict[Path, bytes]:
    """The files below `folder`, by their path in it, with their bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _tests_for(traces: Path, folder: Path) -> Result:
    return CliRunner().invoke(main, ["discover", str(traces), "-o", str(folder / "r.fluo"), "--tests", str(folder)])


@pytest.mark.parametrize("fails", ["a fixture", "the rule file, last"])
def test_a_regeneration_that_cannot_write_a_file_changes_none(tmp_path: Path, fails: str) -> None:
    """QA citest r04: `-o` and `--tests` wrote in place, one file after another: past a file size limit (or on a
    full disk) the rule file was cut short, or new rules stood beside the old tests and a cut fixture, and
    `fluo test` failed. Every file is written whole beside its place before any takes it."""
    small = write_spans(tmp_path / "small.json", shop_corpus(30))
    large = write_spans(tmp_path / "large.json", shop_corpus(60))
    assert _tests_for(large, tmp_path / "unlimited").exit_code == 0  # what the regeneration writes
    new = _files(tmp_path / "unlimited")
    others = max(len(data) for path, data in new.items() if path.name != "r.fluo")
    assert others < len(new[Path("r.fluo")])  # the rule file is the largest, and written last
    limit = 4000 if fails == "a fixture" else (others + len(new[Path("r.fluo")])) // 2
    folder = tmp_path / "rules"
    assert _tests_for(small, folder).exit_code == 0
    before = _files(folder)
    assert before != new
    with file_size_limit(limit):
        result = _tests_for(large, folder)
    assert result.exit_code == 2, result.output
    named = folder / "fixtures" / "r" if fails == "a fixture" else folder / "r.fluo"
    assert result.stderr.startswith(f"fluo: cannot write {named}") and result.stderr.endswith(": File too large\n")
    assert result.stderr.count("\n") == 1
    assert _files(folder) == before  # and no new file left beside them
    assert CliRunner().invoke(main, ["test", str(folder)]).exit_code == 0


def test_an_output_cut_short_leaves_the_last_one_whole(tmp_path: Path) -> None:
    shop = write_spans(tmp_path / "shop.json", shop_corpus(30))
    rules = tmp_path / "r.fluo"
    rules.write_text("// my reviewed rules\n", encoding="utf-8")
    with file_size_limit(1000):
        result = CliRunner().invoke(main, ["discover", str(shop), "-o", str(rules)])
    assert result.exit_code == 2
    assert result.stderr == f"fluo: cannot write {rules}: File too large\n"
    assert rules.read_text(encoding="utf-8") == "// my reviewed rules\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.fluo", "shop.json"]


@pytest.mark.parametrize("how", ["named", "linked"])
def test_an_output_that_is_a_fixture_of_the_same_run_is_refused_before_writing(tmp_path: Path, how: str) -> None:
    """QA rev r03: `-o T/fixtures/no-rule-fires/no-rule-fires.json --tests T` wrote the passing case's fixture,
    then the rules over it, and exited 0 with a test `fluo test` could not load."""
    shop = write_spans(tmp_path / "shop.json", shop_corpus(30))
    folder = tmp_path / "tests"
    folder.mkdir()
    if how == "named":
        output, args = folder / "fixtures" / "no-rule-fires" / "no-rule-fires.json", ["--format", "json"]
        said = f"fluo: refusing to write {output}: --tests writes it too; give -o another path\n"
    else:
        output, args = folder / "out.json", ["--format", "json"]
        output.symlink_to(Path("fixtures", "out", "no-rule-fires.json"))
        fixture = folder / "fixtures" / "out" / "no-rule-fires.json"
        said = f"fluo: refusing to write {output}: it is {fixture}, which --tests writes; give -o another path\n"
    result = CliRunner().invoke(main, ["discover", str(shop), *args, "-o", str(output), "--tests", str(folder)])
    assert result.exit_code == 2, result.output
    assert result.stderr == said
    assert sorted(p.name for p in folder.iterdir()) == (["out.json"] if how == "linked" else [])


def test_fixtures_that_are_hard_links_of_one_file_are_written_again(tmp_path: Path) -> None:
    """QA rev2 r13: after `cp -al` (or a dedup tool) made two fixtures one file, the re-run stopped, telling the
    user to give -o another path; each is replaced by a new file, so both are written whole."""
    shop = write_spans(tmp_path / "shop.json", shop_corpus(30))
    folder = tmp_path / "tests"
    args = ["discover", str(shop), "-o", str(folder / "r.fluo"), "--tests", str(folder)]
    assert CliRunner().invoke(main, args).exit_code == 0
    before = _files(folder)
    first, second = sorted((folder / "fixtures" / "r").iterdir())[:2]
    second.unlink()
    second.hardlink_to(first)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert _files(folder) == before and first.stat().st_ino != second.stat().st_ino


@pytest.mark.parametrize("output", ["/dev/stdout", "rules.txt"])
def test_tests_refuse_an_output_that_is_no_rule_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    """QA rev2 r15: `-o /dev/stdout --tests T` exited 0, writing a test whose `rules:` named /dev/stdout, which
    `fluo test` cannot read; the test needs the rules in a .fluo file."""
    monkeypatch.chdir(tmp_path)
    shop = write_spans(tmp_path / "shop.json", shop_corpus(30))
    folder = tmp_path / "tests"
    result = CliRunner().invoke(main, ["discover", str(shop), "-o", output, "--tests", str(folder)])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"fluo: --tests writes a test whose `rules:` names -o, and {output} is not a .fluo file that `fluo test` "
        f"reads: give -o a .fluo name, or drop -o (the rules then go to {folder / 'discovered.fluo'})\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.json"]


def test_an_output_through_a_link_to_a_fixture_the_run_removes_is_refused(tmp_path: Path) -> None:
    """The rules written through a link into a fixture of the last run would be removed with that fixture."""
    shop = write_spans(tmp_path / "shop.json", shop_corpus(30))
    folder = tmp_path / "tests"
    args = ["discover", str(shop), "--format", "json", "-o", str(folder / "r.json"), "--tests", str(folder)]
    assert CliRunner().invoke(main, args).exit_code == 0
    fixture = sorted((folder / "fixtures" / "r").iterdir())[0]
    (folder / "r.json").unlink()
    (folder / "r.json").symlink_to(fixture.relative_to(folder))
    before = _files(folder)
    result = CliRunner().invoke(main, [*args, "--max-rules", "0"])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"fluo: refusing to write {folder / 'r.json'}: it is {fixture}, a fixture of the last run that --tests "
        "removes\n"
    )
    assert _files(folder) == before
