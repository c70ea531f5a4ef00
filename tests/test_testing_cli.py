"""`fluo test` end to end: reports, exit codes, --run, --update, --coverage, --junit-xml."""

from __future__ import annotations

import errno
import importlib
import json
import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from limits_support import file_size_limit
from reader_support import as_reader
from syrupy.assertion import SnapshotAssertion
from tests_paths import ROOT

from fluo_lang.otlp import load_trace_file, spans_to_json, spans_to_request
from fluo_lang.trace import Span
from fluo_run.cli import main
from fluo_run.testing.report import junit_classname

FIXTURES = ROOT / "tests" / "testing_fixtures"
KINDS = ("passing", "failing", "broken_yaml", "broken_keys", "broken_rules", "broken_cases")


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixtures copied into a temporary folder (which becomes the working folder), as `*_test.yaml` files."""
    for item in FIXTURES.iterdir():
        if item.is_dir():
            shutil.copytree(item, tmp_path / item.name)
        elif item.suffix == ".yaml":
            shutil.copy(item, tmp_path / f"{item.stem}_test.yaml")
        else:
            shutil.copy(item, tmp_path / item.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fluo_test(*args: str) -> Result:
    return CliRunner().invoke(main, ["test", *args])


def timeless(text: str) -> str:
    return re.sub(r"in \d+\.\d\ds", "in 0.00s", text)


@pytest.mark.parametrize(
    ("kind", "code"),
    [("passing", 0), ("failing", 1), ("broken_yaml", 2), ("broken_keys", 2), ("broken_rules", 2), ("broken_cases", 2)],
)
def test_text_report_and_exit_code(work: Path, kind: str, code: int, snapshot: SnapshotAssertion) -> None:
    result = fluo_test(f"{kind}_test.yaml")
    assert result.exit_code == code, result.output
    assert timeless(result.stdout) == snapshot


@pytest.mark.parametrize("kind", KINDS)
def test_json_report(work: Path, kind: str, snapshot: SnapshotAssertion) -> None:
    result = fluo_test(f"{kind}_test.yaml", "--format", "json")
    report = json.loads(result.stdout)
    assert report["summary"]["exit_code"] == result.exit_code
    assert report == snapshot


@pytest.mark.parametrize("kind", KINDS)
def test_junit_report(work: Path, kind: str, snapshot: SnapshotAssertion) -> None:
    fluo_test(f"{kind}_test.yaml", "--junit-xml", "out/junit.xml")
    text = (work / "out" / "junit.xml").read_text(encoding="utf-8")
    assert re.sub(r'time="[0-9.]+"', 'time="0"', text) == snapshot


def _int(e: ET.Element, name: str) -> int:
    return int(e.attrib[name])


def test_junit_is_structurally_valid_and_counts_agree(work: Path) -> None:
    result = fluo_test(".", "--junit-xml", "junit.xml", "--format", "json")
    report = json.loads(result.stdout)
    root = ET.parse(work / "junit.xml").getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.attrib["name"] for s in suites] == [f["path"] for f in report["files"]]
    for suite in suites:
        cases = suite.findall("testcase")
        assert _int(suite, "tests") == len(cases)
        assert _int(suite, "failures") == sum(1 for c in cases if c.find("failure") is not None)
        assert _int(suite, "errors") == sum(1 for c in cases if c.find("error") is not None)
        assert _int(suite, "skipped") == 0
        float(suite.attrib["time"])
        for case in cases:
            assert case.attrib["name"] and case.attrib["classname"]
            assert int(case.attrib["line"]) >= 1
            outcomes = [c.tag for c in case]
            assert len(outcomes) <= 1 and set(outcomes) <= {"failure", "error"}
            for child in case:
                assert child.attrib["message"] and child.text
    for key in ("tests", "failures", "errors", "skipped"):
        assert _int(root, key) == sum(_int(s, key) for s in suites)
    summary = report["summary"]
    assert _int(root, "failures") == summary["failed"]
    assert _int(root, "errors") == summary["errors"] + summary["broken_files"]
    assert _int(root, "tests") == summary["cases"] + summary["broken_files"]


def test_broken_files_do_not_stop_the_others(work: Path) -> None:
    result = fluo_test(".")
    assert result.exit_code == 2
    lines = result.stdout.splitlines()
    assert "passing_test.yaml: 4 passed" in lines
    assert "failing_test.yaml: 3 failed, 1 passed" in lines
    assert "broken_cases_test.yaml: 1 passed, 3 errors" in lines
    for kind in ("broken_yaml", "broken_keys", "broken_rules"):
        assert f"{kind}_test.yaml: error" in lines
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("broken_yaml_test.yaml:5: invalid YAML: did not find expected ',' or ']'", "the YAML error, at its line"),
        ("broken_keys_test.yaml:2: unknown key `casses` in the test file; did you mean `cases`?", "unknown key"),
        (
            "broken_rules_test.yaml:1: the rules do not check (1 error: FLUO201; run `fluo check`): bad.fluo:2:22:",
            "bad rule",
        ),
        (
            "broken_cases_test.yaml:9: case 'missing fixture': trace file traces/nowhere.json does not exist",
            "missing fixture",
        ),
        ("broken_cases_test.yaml:15: case 'bad inline span': span 2 ('check'), `duration`:", "bad inline span"),
        (
            "broken_cases_test.yaml:21: case 'unknown rule and key': no rule `slow_logn` in rules.fluo;"
            " did you mean `slow_login`?",
            "unknown rule",
        ),
        ("broken_cases_test.yaml:22: unknown key `cuont` in an expected signal; did you mean `count`?", "typo"),
    ],
)
def test_errors_point_at_their_line(work: Path, fragment: str, expected: str) -> None:
    result = fluo_test(".")
    assert fragment in result.stdout, expected


def test_a_fraction_of_a_nanosecond_in_a_fixture_is_a_case_error_at_its_line(work: Path) -> None:
    """`duration: 1.5ns` was read as 2ns, silently: durations count whole nanoseconds (a literal's FLUO109)."""
    (work / "frac_test.yaml").write_text(
        "rules: rules.fluo\ncases:\n  - name: frac\n    spans:\n      - {name: login}\n"
        "      - {name: login, duration: 1.5ns}\n    expect: []\n",
        encoding="utf-8",
    )
    result = fluo_test("frac_test.yaml")
    assert result.exit_code == 2, result.output
    told = (
        "frac_test.yaml:6: case 'frac': span 2 ('login'), `duration`: '1.5ns' is no whole number of nanoseconds,"
        " which durations count; the nearest is 2ns"
    )
    assert told in result.stdout.splitlines()[2]
    [case] = json.loads(fluo_test("frac_test.yaml", "--format", "json").stdout)["files"][0]["cases"]
    assert case["status"] == "error"
    assert case["errors"] == [{"path": "frac_test.yaml", "line": 6, "message": told.split(":6: ", 1)[1]}]


def test_run_selects_cases_by_name_or_file(work: Path) -> None:
    by_name = json.loads(fluo_test(".", "--run", "slow login", "--format", "json").stdout)
    names = [c["name"] for f in by_name["files"] for c in f["cases"]]
    assert names == ["a slow login fires"]
    by_file = json.loads(fluo_test(".", "--run", r"^passing_test\.yaml::", "--format", "json").stdout)
    assert [f["path"] for f in by_file["files"] if f["cases"]] == ["passing_test.yaml"]
    assert by_file["summary"]["passed"] == 4


def test_run_with_a_bad_or_unmatched_regex_is_a_usage_error(work: Path) -> None:
    bad = fluo_test("passing_test.yaml", "--run", "(")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("fluo: --run '(' is not a valid regular expression")
    none = fluo_test("passing_test.yaml", "--run", "no such case")
    assert none.exit_code == 2
    assert none.stderr == "fluo: --run 'no such case' matches no case in 1 test file\n"


def test_run_matching_nothing_next_to_broken_files_says_so(work: Path) -> None:
    """QA: with a broken file the run is reported (its error) with no word that `--run` matched no case."""
    Path("broken_test.yaml").write_text("cases: [\n")
    some = fluo_test("passing_test.yaml", "broken_test.yaml", "--run", "no such case")
    assert some.exit_code == 2 and "broken_test.yaml:2: invalid YAML" in some.stdout
    assert some.stderr == (
        "fluo: warning: --run 'no such case' matches no case in 1 test file that loaded"
        " (1 other could not be loaded, so its cases are unknown)\n"
    )
    Path("also_broken_test.yaml").write_text("cases: [\n")
    only = fluo_test("broken_test.yaml", "also_broken_test.yaml", "--run", "x", "--format", "json")
    assert json.loads(only.stdout)["warnings"] == [
        "--run 'x' matches no case: 2 test files could not be loaded, so their cases are unknown"
    ]


def test_no_test_files_and_missing_paths(work: Path) -> None:
    (work / "empty").mkdir()
    result = fluo_test("empty")
    assert result.exit_code == 2
    assert result.stderr == (
        "fluo: no test files (*.fluotest.yaml, or *_test.yaml with a top-level `cases:`) under empty\n"
    )
    missing = fluo_test("nowhere")
    assert missing.exit_code == 2
    assert missing.stderr == "fluo: nowhere: no such file or folder\n"
    notes = fluo_test("traces/two_errors.json")
    assert notes.exit_code == 2
    assert "is not a test file: name a *_test.yaml file, a .fluo file to run its tests, or a folder" in notes.stderr


def test_update_writes_observed_signals_and_keeps_comments(work: Path, snapshot: SnapshotAssertion) -> None:
    path = work / "failing_test.yaml"
    before = path.read_text(encoding="utf-8")
    result = fluo_test("failing_test.yaml", "--update")
    assert result.exit_code == 0, result.output
    assert result.stderr == "updated 3 cases in failing_test.yaml\n"
    assert "3 updated" in result.stdout
    after = path.read_text(encoding="utf-8")
    assert after.splitlines()[:8] == before.splitlines()[:8]  # header comment and the passing case untouched
    assert after == snapshot
    again = fluo_test("failing_test.yaml")
    assert again.exit_code == 0, again.stdout
    assert "failing_test.yaml: 4 passed" in again.stdout


def test_update_fills_a_case_written_without_expect(work: Path) -> None:
    path = work / "new_test.yaml"
    path.write_text(
        "rules: rules.fluo  # the rules under test\ncases:\n"
        "  - name: slow\n    spans: [{name: login, duration: 2s}]\n"
        "  - name: quick\n    spans: [{name: login, duration: 2ms}]\n",
        encoding="utf-8",
    )
    first = fluo_test("new_test.yaml")
    assert first.exit_code == 2
    assert "new_test.yaml:3: case 'slow' has no `expect:`" in first.stdout
    assert "cases written without expect:" in " ".join(fluo_test("--help").output.split())  # --help says so too
    assert fluo_test("new_test.yaml", "--update").exit_code == 0
    assert path.read_text(encoding="utf-8") == (
        "rules: rules.fluo  # the rules under test\ncases:\n"
        "  - name: slow\n    spans: [{name: login, duration: 2s}]\n"
        "    expect:\n      - {rule: slow_login, observed: {matched: 1}}\n"
        "  - name: quick\n    spans: [{name: login, duration: 2ms}]\n"
        "    expect: []\n"
    )
    assert fluo_test("new_test.yaml").exit_code == 0


def test_update_leaves_broken_cases_alone(work: Path) -> None:
    before = (work / "broken_cases_test.yaml").read_text(encoding="utf-8")
    result = fluo_test("broken_cases_test.yaml", "--update")
    assert result.exit_code == 2
    assert (work / "broken_cases_test.yaml").read_text(encoding="utf-8") == before


def test_update_writes_trace_labels_for_several_traces(work: Path) -> None:
    path = work / "multi_test.yaml"
    path.write_text(
        "rules: rules.fluo\ncases:\n  - name: two traces\n    spans:\n"
        "      - {trace: fast, name: login, duration: 5ms}\n"
        "      - {trace: slow, name: login, duration: 500ms}\n"
        "      - {trace: slow2, name: login, duration: 700ms}\n"
        "    expect: []\n",
        encoding="utf-8",
    )
    assert fluo_test("multi_test.yaml", "--update").exit_code == 0
    text = path.read_text(encoding="utf-8")
    assert "{rule: slow_login, trace: slow, observed: {matched: 1}}" in text
    assert "{rule: slow_login, trace: slow2, observed: {matched: 1}}" in text
    assert fluo_test("multi_test.yaml").exit_code == 0


def test_cases_update_rewrote_are_updated_not_passed(work: Path) -> None:
    """QA: a case `--update` rewrote was reported `passed`, in JSON with its `missing` and `unexpected` lists
    not empty and an undocumented `updated: true`. Its status is `updated`, counted apart in the summary."""
    result = fluo_test("failing_test.yaml", "--update", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    summary = report["summary"]
    assert (summary["passed"], summary["updated"], summary["failed"], summary["cases"]) == (1, 3, 0, 4)
    statuses = [c["status"] for c in report["files"][0]["cases"]]
    assert statuses == ["passed", "updated", "updated", "updated"]
    assert not any("updated" in c for c in report["files"][0]["cases"])
    shutil.copy(FIXTURES / "failing.yaml", work / "failing_test.yaml")
    text = fluo_test("failing_test.yaml", "--update").stdout
    assert "failing_test.yaml: 1 passed, 3 updated\n" in text
    assert re.search(r"= 1 passed, 3 updated in [0-9.]+s =", text)


def test_coverage_lists_rules_never_fired_and_never_run(work: Path) -> None:
    rules = work / "rules"
    rules.mkdir()
    (rules / "extra.fluo").write_text("rule untested { detect trace.spans.count() > 100 }\n", encoding="utf-8")
    (work / "only_test.yaml").write_text(
        "rules: rules.fluo\ncases:\n  - name: only the budget runs\n    only: [error_budget]\n"
        "    spans: [{name: login}]\n    expect: []\n",
        encoding="utf-8",
    )
    result = fluo_test("only_test.yaml", "rules", "--coverage", "--format", "json")
    cov = json.loads(result.stdout)["coverage"]
    assert cov["rules"] == 4
    assert [r["rule"] for r in cov["never_fired"]] == ["error_budget"]
    assert [r["rule"] for r in cov["never_ran"]] == ["slow_login", "login_rate", "untested"]
    assert cov["never_ran"][2] == {"rule": "untested", "path": "rules/extra.fluo", "line": 1}
    text = fluo_test("only_test.yaml", "rules", "--coverage").stdout
    assert "coverage: 4 rules, 0 fired in some case" in text
    assert "  never fired: error_budget  rules.fluo:9" in text
    assert "  never ran:   untested      rules/extra.fluo:1" in text


def test_coverage_lists_the_rules_that_do_not_typecheck_apart(work: Path) -> None:
    """QA: a rule below the folders given that does not typecheck was left out of `--coverage` with no word,
    so the list looked complete. It is listed apart, in no count, as a rule file that cannot be read is."""
    rules = work / "rules"
    rules.mkdir()
    (rules / "extra.fluo").write_text(
        "rule untested_ok { detect trace.spans.count() > 100 }\n"
        "rule untested_typo { detect trace.spans.cuont() > 100 }\n",
        encoding="utf-8",
    )
    cov = json.loads(fluo_test("passing_test.yaml", "rules", "--coverage", "--format", "json").stdout)["coverage"]
    assert (cov["rules"], [r["rule"] for r in cov["never_ran"]]) == (4, ["untested_ok"])
    assert cov["invalid"] == [{"rule": "untested_typo", "path": "rules/extra.fluo", "line": 2}]
    text = fluo_test("passing_test.yaml", "rules", "--coverage").stdout
    assert "\ncoverage: 4 rules, 3 fired in some case; 1 more that does not typecheck\n" in text
    assert "  invalid:     untested_typo  rules/extra.fluo:2  (does not typecheck: run `fluo check`)\n" in text


def test_coverage_of_passing_cases(work: Path) -> None:
    cov = json.loads(fluo_test("passing_test.yaml", "--coverage", "--format", "json").stdout)["coverage"]
    assert cov == {"rules": 3, "ran": 3, "fired": 3, "never_fired": [], "never_ran": []}
    text = fluo_test("passing_test.yaml", "--coverage").stdout
    assert "\ncoverage: 3 rules, 3 fired in some case\n" in text


def test_rules_default_to_the_file_with_the_same_stem(work: Path) -> None:
    (work / "rules.fluotest.yaml").write_text(
        "cases:\n  - name: quick\n    spans: [{name: login}]\n    expect: []\n", encoding="utf-8"
    )
    assert fluo_test("rules.fluotest.yaml").exit_code == 0
    (work / "orphan_test.yaml").write_text("cases:\n  - name: x\n    spans: [{name: a}]\n    expect: []\n")
    result = fluo_test("orphan_test.yaml")
    assert result.exit_code == 2
    assert "orphan_test.yaml:1: no `rules:` given and orphan.fluo does not exist next to the test file" in result.stdout


def test_protobuf_fixtures(work: Path) -> None:
    spans = load_trace_file(work / "traces" / "two_errors.json")
    (work / "traces" / "two_errors.binpb").write_bytes(spans_to_request(spans).SerializeToString())
    (work / "pb_test.yaml").write_text(
        "rules: rules.fluo\ncases:\n  - name: from protobuf\n    traces: [traces/two_errors.binpb]\n"
        "    expect: [{rule: error_budget, observed: {count: 2}}]\n",
        encoding="utf-8",
    )
    result = fluo_test("pb_test.yaml")
    assert result.exit_code == 0, result.stdout


def test_an_unreadable_fixture_is_a_case_error(work: Path) -> None:
    (work / "traces" / "junk.json").write_text('{"resourceSpans": 7}', encoding="utf-8")
    (work / "junk_test.yaml").write_text(
        "rules: rules.fluo\ncases:\n  - name: junk\n    traces:\n      - traces/junk.json\n    expect: []\n",
        encoding="utf-8",
    )
    result = fluo_test("junk_test.yaml")
    assert result.exit_code == 2
    assert "junk_test.yaml:5: case 'junk': cannot load trace file: " in result.stdout


def test_bundled_examples_pass_with_full_coverage() -> None:
    result = CliRunner().invoke(main, ["test", str(ROOT / "examples" / "rules"), "--coverage", "--format", "json"])
    assert result.exit_code == 0, result.stdout
    report: dict[str, Any] = json.loads(result.stdout)
    tested = {Path(f["path"]).name.removesuffix("_test.yaml") for f in report["files"]}
    bundled = {p.stem for p in (ROOT / "examples" / "rules").glob("*.fluo")}
    assert tested == bundled
    assert report["coverage"]["never_fired"] == [] and report["coverage"]["never_ran"] == []
    assert report["summary"]["failed"] == report["summary"]["errors"] == 0


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(main, ["test", "--help"])
    assert result.exit_code == 0
    assert "fluo test examples/rules" in result.stdout


def test_update_keeps_comments_and_blank_lines_around_replaced_expectations(work: Path) -> None:
    path = work / "layout_test.yaml"
    path.write_text(
        "rules: [rules.fluo]\ncases:\n"
        "  - name: a\n    spans: [{name: login, duration: 2s}]\n    expect:\n"
        "      - {rule: error_budget}  # wrong\n\n      # a comment about b\n"
        "  - name: b\n    spans: [{name: login, duration: 2s}]\n    expect:\n      - {rule: error_budget}\n\n"
        "  - name: c\n    spans: [{name: login, duration: 2ms}]\n    expect:\n      - {rule: slow_login}\n"
        "  # end comment\n",
        encoding="utf-8",
    )
    result = fluo_test("layout_test.yaml", "--update")
    assert result.exit_code == 0
    # the comment of the entry that is gone stays where it stood (it was dropped with it), and stderr says so
    assert "kept the comment on line 6 of an entry that is gone (line 6) where it stood" in result.stderr
    assert path.read_text(encoding="utf-8") == (
        "rules: [rules.fluo]\ncases:\n"
        "  - name: a\n    spans: [{name: login, duration: 2s}]\n    expect:\n"
        "      - {rule: slow_login, observed: {matched: 1}}\n      # wrong\n\n      # a comment about b\n"
        "  - name: b\n    spans: [{name: login, duration: 2s}]\n    expect:\n"
        "      - {rule: slow_login, observed: {matched: 1}}\n\n"
        "  - name: c\n    spans: [{name: login, duration: 2ms}]\n    expect: []\n"
        "  # end comment\n"
    )


def test_a_rule_that_did_not_fire_shows_what_it_observed(work: Path) -> None:
    (work / "when.fluo").write_text(
        'rule guarded {\n  when { trace.has(name == "charge") }\n  always { trace.has(name == "check") }\n}\n',
        encoding="utf-8",
    )
    (work / "quiet_test.yaml").write_text(
        "rules: [rules.fluo, when.fluo]\ncases:\n"
        "  - name: window too quiet\n    spans: [{name: login, start: 30s}]\n    expect: [login_rate]\n"
        "  - name: no charge\n    spans: [{trace: a, name: browse}]\n    expect: [{rule: guarded, trace: a}]\n"
        "  - name: checked charge\n    spans: [{name: check}, {name: charge, start: 5ms}]\n    expect: [guarded]\n",
        encoding="utf-8",
    )
    out = fluo_test("quiet_test.yaml").stdout
    assert (
        "    did not fire on window 2026-01-01T00:00:00.000000000Z..2026-01-01T00:01:00.000000000Z:"
        " count = 1, bound = 3\n" in out
    )
    assert "    did not fire on trace 'a': when { trace.has(name == \"charge\") } did not hold\n" in out
    assert "    did not fire on trace " in out and ": when = true, always = true\n" in out


def _eager_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """The progress line drawn at once and for every case, as on a terminal in a long run."""
    from fluo_run.testing import cli

    class Eager(cli.Progress):
        def __init__(self, stream: Any, total: int = 0) -> None:
            super().__init__(stream, total, enabled=True, delay=0.0, every=0.0)

    monkeypatch.setattr(cli, "Progress", Eager)


def test_the_progress_line_is_erased_before_the_report(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _eager_progress(monkeypatch)
    result = fluo_test("passing_test.yaml")
    head, _, rest = result.stderr.rpartition("\r")
    assert head.startswith("\r[loading 1/1] passing_test.yaml\r[1/4] passing_test.yaml::a quick login is quiet")
    assert "\r[4/4] passing_test.yaml::four logins in one minute trip the rate" in head
    assert rest == ""
    assert result.stdout.startswith("passing_test.yaml: 4 passed\n")


def test_the_progress_line_is_never_on_stdout(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA 4: on a terminal, `--format json` began with `\\r[1/30] file::case` and was not JSON."""
    _eager_progress(monkeypatch)
    result = fluo_test("passing_test.yaml", "failing_test.yaml", "--format", "json")
    assert "\r" not in result.stdout
    assert json.loads(result.stdout)["summary"]["cases"] == 8
    assert "\r[8/8] " in result.stderr


def _two_failing_files(work: Path) -> tuple[Path, Path]:
    shutil.copy(work / "failing_test.yaml", work / "b_test.yaml")
    return work / "failing_test.yaml", work / "b_test.yaml"


def test_an_update_that_cannot_be_written_writes_nothing_and_still_reports(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA 8: the first file was rewritten, then the second failed with one line: no report, no note of
    what was written, no JUnit file. Now every file's new text is made before any is written."""
    from fluo_run.testing import cli

    first, second = _two_failing_files(work)
    before = first.read_text(encoding="utf-8")
    real = cli.plan_update

    def refuse(path: Path, cases: Any, read: bytes | None = None) -> Any:
        if path.name == second.name:
            raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
        return real(path, cases, read)

    monkeypatch.setattr(cli, "plan_update", refuse)
    result = fluo_test("failing_test.yaml", "b_test.yaml", "--update", "--junit-xml", "j.xml")
    assert result.exit_code == 2
    assert first.read_text(encoding="utf-8") == before
    assert result.stderr == (
        "fluo: cannot update b_test.yaml: Operation not permitted\n"
        "fluo: --update wrote nothing: 1 of 2 test files cannot be updated\n"
    )
    assert "b_test.yaml: 3 failed, 1 passed" in result.stdout and "6 failed, 2 passed" in result.stdout
    assert (work / "j.xml").exists()


def test_an_update_whose_write_fails_says_what_was_written_and_what_was_not(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fluo_run.testing import cli

    _, second = _two_failing_files(work)
    real = cli.write_replacing

    def full(path: Path, data: bytes) -> None:
        if path.name == second.name:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(cli, "write_replacing", full)
    result = fluo_test("failing_test.yaml", "b_test.yaml", "--update", "--format", "json", "--junit-xml", "j.xml")
    assert result.exit_code == 2
    assert result.stderr == (
        "updated 3 cases in failing_test.yaml\nfluo: cannot update b_test.yaml: No space left on device\n"
    )
    report = json.loads(result.stdout)
    assert report["summary"]["exit_code"] == 2
    assert report["updated"] == ["updated 3 cases in failing_test.yaml"]
    assert report["update_errors"] == ["cannot update b_test.yaml: No space left on device"]
    assert [f["status"] for f in report["files"]] == ["passed", "failed"]
    assert fluo_test("failing_test.yaml").exit_code == 0
    assert (work / "j.xml").exists()


def test_a_read_only_test_file_is_not_updated(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _two_failing_files(work)
    second.chmod(0o444)
    if os.geteuid() == 0:  # root may write it anyway: what opening it for writing says to anyone else
        real_open = Path.open

        def denying(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if self.name == second.name and mode != "r" and "r" in mode and "+" in mode:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real_open(self, mode, *args, **kwargs)

        monkeypatch.setattr(Path, "open", denying)
    before = first.read_text(encoding="utf-8")
    result = fluo_test("failing_test.yaml", "b_test.yaml", "--update")
    assert result.exit_code == 2
    assert "fluo: cannot update b_test.yaml: Permission denied\n" in result.stderr
    assert first.read_text(encoding="utf-8") == before


def test_count_zero_fails_when_a_signal_like_it_fires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when a broader entry takes the signal; the report explains only the traces the rule did not fire on."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "e.fluo").write_text("rule err { detect trace.count(status == error) > 0 }\n")
    (tmp_path / "e_test.yaml").write_text(
        "rules: [e.fluo]\ncases:\n  - name: quiet on a\n"
        "    spans: [{name: x, trace: a, status: error}, {name: y, trace: b}]\n"
        "    expect:\n      - {rule: err, count: 1}\n      - {rule: err, trace: a, count: 0}\n"
    )
    r = fluo_test(".")
    assert r.exit_code == 1
    assert "e_test.yaml:3: case 'quiet on a': 1 forbidden signal" in r.output
    assert "    FORBIDDEN  no err trace 'a'  | err trace 'a': count = 1, bound = 0" in r.output
    assert "did not fire on trace 'b': count = 0, bound = 0" in r.output
    assert "did not fire on trace 'a'" not in r.output
    report = json.loads(fluo_test(".", "--format", "json").output)
    (case,) = report["files"][0]["cases"]
    assert [(f["rule"], f["trace"], f["count"], len(f["signals"])) for f in case["forbidden"]] == [("err", "a", 0, 1)]


def test_a_forbidden_signal_no_entry_took_is_counted_and_shown_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One signal read `1 unexpected, 1 forbidden signals`, in two rows of the table, and `count: 0` read `x0`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "e.fluo").write_text("rule err { detect trace.count(status == error) > 0 }\n")
    (tmp_path / "e_test.yaml").write_text(
        "cases:\n  - name: quiet\n    spans: [{name: x, status: error}]\n    expect: [{rule: err, count: 0}]\n"
        "  - name: two\n    spans: [{name: x, trace: a, status: error}, {name: y, trace: b, status: error}]\n"
        "    expect: [{rule: err, trace: a, count: 2}, {rule: err, trace: b, count: 0}]\n"
    )
    r = fluo_test(".", "--junit-xml", "j.xml")
    assert "e_test.yaml:2: case 'quiet': 1 forbidden signal\n" in r.stdout
    assert "e_test.yaml:5: case 'two': 1 missing, 1 forbidden signal\n" in r.stdout
    assert "x0" not in r.stdout and "UNEXPECTED" not in r.stdout
    assert "    FORBIDDEN  no err    | err trace " in r.stdout
    assert "    FORBIDDEN  no err trace 'b'  | err trace 'b': count = 1, bound = 0\n" in r.stdout
    failures = [f.get("message") for f in ET.parse(tmp_path / "j.xml").iter("failure")]
    assert failures == ["1 forbidden signal", "1 missing, 1 forbidden signal"]
    report = json.loads(fluo_test(".", "--format", "json").stdout)
    assert [len(c["unexpected"]) for c in report["files"][0]["cases"]] == [1, 1]  # the JSON lists it in both


def test_reported_times_include_reading_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading YAML and building inline spans is most of a large run: the summary and JUnit count it."""
    import time

    from fluo_run.testing.runner import Runner

    real = Runner.load_one

    def slow(self: Runner, path: Path) -> Any:
        time.sleep(0.3)
        return real(self, path)

    monkeypatch.setattr(Runner, "load_one", slow)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "e.fluo").write_text("rule quiet { expect true }\n")
    (tmp_path / "e_test.yaml").write_text("rules: [e.fluo]\ncases:\n  - {name: a, spans: [{name: x}], expect: []}\n")
    r = fluo_test(".", "--junit-xml", "j.xml")
    assert r.exit_code == 0, r.output
    summary = re.search(r"1 passed in ([0-9.]+)s", r.output)
    assert summary is not None and float(summary[1]) >= 0.3
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite is not None and float(suite.get("time", "0")) >= 0.3


HELM_TEST = """\
suite: deployment
templates:
  - deployment.yaml
tests:
  - it: sets the image
    asserts:
      - equal:
          path: spec.template.spec.containers[0].image
          value: nginx
"""


def test_another_tools_test_yaml_below_a_folder_is_passed_over(work: Path) -> None:
    charts = work / "charts" / "tests"
    charts.mkdir(parents=True)
    (charts / "deployment_test.yaml").write_text(HELM_TEST)
    (charts / "empty_test.yaml").write_text("")
    alone = fluo_test("charts")
    assert alone.exit_code == 2
    assert "no test files" in alone.stderr
    named = fluo_test("charts/tests/deployment_test.yaml")  # named, it is read as a rule test, and refused
    assert named.exit_code == 2 and "unknown key `suite`" in named.output


def test_float_observed_values_are_exact_and_update_writes_what_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA M1: `observed: {max: 0.0000004}` failed against a value rounded to 0.0, and --update wrote 0.0."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "o.fluo").write_text(
        "rule rate { expect trace.spans.max(error_rate) <= 0.0000001 }\n"
        "rule ratio { expect trace.spans.max(r) <= 0.3 }\n"
    )
    spans = "spans: [{name: a, attributes: {error_rate: 0.0000004, r: 0.30000000000000004}}]"
    (tmp_path / "o_test.yaml").write_text(
        f"cases:\n  - name: as written\n    {spans}\n"
        "    expect: [{rule: rate, observed: {max: 0.0000004, bound: 0.0000001}},\n"
        "             {rule: ratio, observed: {max: 0.30000000000000004, bound: 0.3}}]\n"
        f"  - name: as the report prints them\n    {spans}\n"
        "    expect: [{rule: rate, observed: {max: 4e-07, bound: 1e-07}}, {rule: ratio}]\n"
        f"  - name: updated\n    {spans}\n"
    )
    r = fluo_test(".", "--update")
    assert r.exit_code == 0, r.output
    text = (tmp_path / "o_test.yaml").read_text()
    assert "{rule: rate, observed: {max: 4e-07, bound: 1e-07}}" in text
    assert "{rule: ratio, observed: {max: 0.30000000000000004, bound: 0.3}}" in text
    r = fluo_test(".")
    assert (r.exit_code, "3 passed" in r.output) == (0, True), r.output


def test_control_characters_in_a_case_name_are_escaped_on_every_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA L6: the `FAILED` line and the `___ file::name ___` header printed a NUL and an ESC sequence raw. They
    are escaped as every line of the report escapes them (`\\u001b`; once `\\x1b` in names, `\\u001b` elsewhere)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.fluo").write_text("rule slow { detect trace.spans.where(duration > 50ms).exists() }\n")
    (tmp_path / "c_test.yaml").write_text(
        'rules: [r.fluo]\ncases:\n  - name: "red \\x1b[31mALERT\\x1b[0m \\x00 end"\n'
        "    spans: [{name: a, duration: 100ms}]\n    expect: []\n"
        '  - name: "no\\tspans"\n    expect: []\n'
    )
    r = fluo_test(".")
    assert r.exit_code == 2
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", r.output)
    escaped = r"red \u001b[31mALERT\u001b[0m \u0000 end"
    assert f"  FAILED {escaped} (line 3)" in r.output
    assert f" c_test.yaml::{escaped} _" in r.output
    assert f"c_test.yaml:3: case '{escaped}': 1 unexpected signal" in r.output
    assert r"  ERROR no\tspans (line 6)" in r.output


def test_ctrl_c_exits_130_quietly(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA 14: Ctrl-C printed click's `Aborted!` and exited 1, the status of a failed case."""
    from fluo_run.testing.runner import Runner

    def interrupted(self: Runner, *args: Any) -> Any:
        raise KeyboardInterrupt

    _eager_progress(monkeypatch)
    monkeypatch.setattr(Runner, "run", interrupted)
    result = fluo_test("passing_test.yaml", "--junit-xml", "j.xml")
    assert result.exit_code == 130
    assert result.stdout == "" and "Aborted" not in result.stderr
    assert result.stderr.endswith("\r" + " " * len("[loading 1/1] passing_test.yaml") + "\r")  # counter erased
    assert not (work / "j.xml").exists()


def settled() -> None:
    """The poll that finds the files as they were at the one before: the watch runs."""


def _watch_until(monkeypatch: pytest.MonkeyPatch, steps: list[Any]) -> None:
    """`fluo test --watch` polls: step `i` runs at poll `i` (a callable, or KeyboardInterrupt to raise). A change
    is run for at the poll after it (`settled`), once the files held still."""
    from fluo_run.testing import cli

    real = cli.watch
    polls = iter(steps)

    def sleep(seconds: float) -> None:
        step = next(polls)
        if step is KeyboardInterrupt:
            raise KeyboardInterrupt
        step()

    monkeypatch.setattr(cli, "watch", lambda *args, **kwargs: real(*args, **{**kwargs, "sleep": sleep}))


@pytest.mark.parametrize(("kind", "code"), [("passing", 0), ("failing", 1), ("broken_rules", 2)])
def test_ctrl_c_ends_a_watch_with_the_last_runs_status(
    work: Path, monkeypatch: pytest.MonkeyPatch, kind: str, code: int
) -> None:
    """It exited 0 whatever the last run found."""
    _watch_until(monkeypatch, [lambda: None, KeyboardInterrupt])
    result = fluo_test(f"{kind}_test.yaml", "--watch")
    assert result.exit_code == code
    assert result.stderr.count("watching for changes") == 1 and "Aborted" not in result.stderr


def test_ctrl_c_during_a_watched_run_exits_130(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fluo_run.testing.runner import Runner

    real = Runner.run
    calls: list[int] = []

    def second_interrupted(self: Runner, *args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(Runner, "run", second_interrupted)
    test = work / "passing_test.yaml"
    _watch_until(monkeypatch, [lambda: os.utime(test, ns=(1, 1)), settled])
    result = fluo_test("passing_test.yaml", "--watch")
    assert result.exit_code == 130 and len(calls) == 2


def test_a_watch_after_a_usage_error_still_watches_rules_outside_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After `--run` matched nothing, the rule files and fixtures outside the root were no longer watched."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules").mkdir()
    rule = tmp_path / "rules" / "r.fluo"
    rule.write_text("rule quiet { expect true }\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "r_test.yaml").write_text(
        "rules: ../rules/r.fluo\ncases:\n  - {name: a, spans: [{name: x}], expect: []}\n"
    )
    _watch_until(monkeypatch, [lambda: os.utime(rule, ns=(1, 1)), settled, KeyboardInterrupt])
    result = fluo_test("tests", "--run", "nomatch", "--watch")
    assert result.exit_code == 2
    assert result.stderr.count("fluo: --run 'nomatch' matches no case in 1 test file") == 2
    assert "changed: rules/r.fluo; running again" in result.stderr


def test_the_rule_files_warnings_are_shown_once_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule reading `servce` just read MISSING with `matched = 0`, while `fluo check` says `did you mean`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.fluo").write_text('rule r {\n  detect trace.spans.where(servce == "auth").exists()\n}\n')
    case = "cases:\n  - {name: fires, spans: [{name: a, service: auth}], expect: [r]}\n"
    (tmp_path / "r_test.yaml").write_text(case)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "s_test.yaml").write_text("rules: ../r.fluo\n" + case)
    warning = "r.fluo:2:28: warning[FLUO205] `servce` reads as a span attribute; did you mean the intrinsic `service`?"
    for fmt in ("text", "json"):
        result = fluo_test(".", "--format", fmt)
        assert result.exit_code == 1
        assert result.stderr == warning + "\n"
        assert "warning" not in result.stdout


def test_an_expected_rule_the_evaluation_skipped_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When --eval-budget (or a run of empty windows) skipped an expected rule, the report said nothing about it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.fluo").write_text("rule deep { detect trace.spans.where(name == 'c').max(ancestors.count()) > 0 }\n")
    chain = ["{name: c, id: s0}"] + [f"{{name: c, id: s{i}, parent: s{i - 1}}}" for i in range(1, 400)]
    (tmp_path / "d_test.yaml").write_text(
        f"cases:\n  - name: chain\n    spans: [{', '.join(chain)}]\n    expect: [deep]\n"
    )
    out = fluo_test(".", "--eval-budget", "5000").stdout
    assert re.search(
        r"\n    not evaluated on trace [0-9a-f]{32}: the evaluation budget of 5,000 span visits \(--eval-budget\)"
        r" ran out; see its fluo.evaluation_truncated signal\n",
        out,
    ), out
    assert "did not fire" not in out

    (tmp_path / "d_test.yaml").unlink()
    (tmp_path / "w.fluo").write_text("rule quiet { window 1ms expect window.traces.count() > 0 }\n")
    (tmp_path / "w_test.yaml").write_text(
        "cases:\n  - name: far apart\n    spans: [{name: a, trace: one}, {name: b, trace: two, start: 1m}]\n"
        "    expect: [quiet]\n"
    )
    out = fluo_test(".").stdout
    assert (
        "    not evaluated on window 2026-01-01T00:00:00.002000000Z..2026-01-01T00:01:00.001000000Z:"
        " a run of 59,999 empty windows is skipped (at most 10,000 are evaluated);"
        " see its fluo.evaluation_truncated signal\n"
        "    did not fire on window 2026-01-01T00:00:00.001000000Z..2026-01-01T00:00:00.002000000Z:"
        " count = 1, bound = 0\n"
    ) in out, out


def test_a_truncation_the_only_rules_cause_may_be_expected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: with `only: [w_ms]`, the run of empty windows between two traces gave a fluo.evaluation_truncated
    signal that failed the case as unexpected, while expecting it was refused: the rule "does not run in this case"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.fluo").write_text(
        "rule w_ms { window 1ms detect window.spans.count() >= 1 }\n"
        "rule err { detect trace.count(status == error) > 0 }\n"
    )
    (tmp_path / "r_test.yaml").write_text(
        "cases:\n  - name: ms gap\n    only: [w_ms]\n"
        "    spans: [{name: a, trace: a}, {name: b, trace: b, start: 299s}]\n"
        "    expect: [{rule: w_ms, count: 2}, fluo.evaluation_truncated]\n"
    )
    result = fluo_test("r_test.yaml", "--format", "json")
    assert result.exit_code == 0, result.stdout
    signals = json.loads(result.stdout)["files"][0]["cases"][0]["signals"]
    assert [s["rule"] for s in signals] == ["w_ms", "w_ms", "fluo.evaluation_truncated"]
    assert signals[2]["observed"]["rules_skipped"] == ["w_ms"]


def test_why_a_rule_did_not_fire_reads_as_sentences(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It read `did not fire on no trace to evaluate`, `did not fire on no window: ...` and
    `did not fire on ... and 2 more`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.fluo").write_text(
        "rule err { detect trace.count(status == error) > 0 }\n"
        "rule rate { window 1m detect window.traces.count() > 9 }\n"
    )
    five = ", ".join(f"{{name: a, trace: t{i}}}" for i in range(5))
    (tmp_path / "r_test.yaml").write_text(f"cases:\n  - {{name: five, spans: [{five}], expect: [err]}}\n")
    out = fluo_test(".").stdout
    assert re.search(r"    did not fire on trace 't\d': count = 0, bound = 0\n    did not fire on 2 more traces\n", out)
    assert "did not fire on no" not in out and "... and" not in out


def test_the_json_report_shows_an_expectation_of_a_renamed_rule_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It showed `"expected": []`, as if the case expected nothing, when its one entry named no rule."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.fluo").write_text("rule err { detect trace.count(status == error) > 0 }\n")
    (tmp_path / "r_test.yaml").write_text(
        "cases:\n"
        "  - {name: renamed, spans: [{name: a}], expect: [old_err]}\n"
        "  - {name: partly, spans: [{name: a}], expect: [err, {rule: old_err, count: 2, when: 2026-01-01}]}\n"
        "  - {name: fine, spans: [{name: a, status: error}], expect: [err]}\n"
    )
    result = fluo_test(".", "--format", "json")
    assert result.exit_code == 2
    cases = json.loads(result.stdout)["files"][0]["cases"]
    assert [c["expected"] for c in cases] == [
        [{"rule": "old_err"}],
        [{"rule": "err"}, {"rule": "old_err", "count": 2, "when": "2026-01-01"}],
        [{"rule": "err"}],
    ]


@pytest.mark.parametrize(
    ("source", "line", "why"),
    [
        ("traces: zero.json", 3, "zero.json holds no spans"),
        ("traces: nospans.json", 3, "nospans.json holds no spans"),
        ("traces: [zero.json, nospans.json]", 3, "zero.json, nospans.json hold no spans"),
        ("traces: []\n    spans: []", 2, "its `traces:` and `spans:` are empty"),
    ],
)
def test_a_case_with_no_spans_is_an_error_not_a_vacuous_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, line: int, why: str
) -> None:
    """A zero-byte fixture or `{"resourceSpans": []}` passed `expect: []` without testing anything."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.fluo").write_text("rule r { detect trace.spans.where(status == error) }\n")
    (tmp_path / "zero.json").write_text("")
    (tmp_path / "nospans.json").write_text('{"resourceSpans": []}')
    (tmp_path / "r_test.yaml").write_text(f"cases:\n  - name: quiet\n    {source}\n    expect: []\n")
    result = fluo_test("r_test.yaml")
    assert result.exit_code == 2, result.stdout
    assert f"r_test.yaml:{line}: case 'quiet' has no spans to run the rules on: {why}\n" in result.stdout


def test_an_empty_fixture_next_to_inline_spans_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.fluo").write_text("rule r { detect trace.spans.where(status == error) }\n")
    (tmp_path / "zero.json").write_text("")
    (tmp_path / "r_test.yaml").write_text("cases:\n  - {name: q, traces: zero.json, spans: [{name: x}], expect: []}\n")
    assert fluo_test("r_test.yaml").exit_code == 0


def test_inline_spans_are_placed_at_the_fixtures_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: inline spans were pinned to 2026-01-01 next to a fixture recorded months later, so a windowed rule saw
    ~489k empty windows between them and the case failed on `fluo.evaluation_truncated`."""
    monkeypatch.chdir(tmp_path)
    recorded = 1_780_000_000 * 10**9 + 123_456_789  # 2026-05-28, a fixture recorded that day
    span = Span(
        trace_id=b"\1" * 16, span_id=b"\2" * 8, name="GET /", service="gw", start=recorded, end=recorded + 10**6
    )
    (tmp_path / "recorded.json").write_text(json.dumps(spans_to_json([span])))
    (tmp_path / "r.fluo").write_text("rule pair { window 1m detect window.spans.count() >= 2 }\n")
    (tmp_path / "r_test.yaml").write_text(
        "cases:\n  - name: both\n    traces: recorded.json\n"
        "    spans: [{name: ok, start: 10s}]\n    expect: [{rule: pair, observed: {count: 2}}]\n"
    )
    result = fluo_test("r_test.yaml", "--format", "json")
    assert result.exit_code == 0, result.stdout
    case = json.loads(result.stdout)["files"][0]["cases"][0]
    assert [s["rule"] for s in case["signals"]] == ["pair"]


@pytest.mark.parametrize(
    ("display", "classname"),
    [
        ("rules/a_test.yaml", "rules.a_test"),
        ("../repo/rules/a_test.yaml", "repo.rules.a_test"),
        ("/abs/x/a.fluotest.yaml", "abs.x.a"),
        ("./.hidden/a_test.yml", "hidden.a_test"),
        ("C:\\ci\\a_test.yaml", "C:.ci.a_test"),
    ],
)
def test_junit_classnames_have_no_empty_package(display: str, classname: str) -> None:
    """QA: `../repo/rules` gave `...repo.rules.r_test` and an absolute path a leading `.`: empty Jenkins packages."""
    assert junit_classname(display) == classname


def test_junit_classname_of_a_test_file_outside_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "ci").mkdir()
    (tmp_path / "repo" / "r.fluo").write_text("rule r { detect trace.spans.where(status == error) }\n")
    (tmp_path / "repo" / "r_test.yaml").write_text("cases:\n  - {name: a, spans: [{name: x}], expect: []}\n")
    monkeypatch.chdir(tmp_path / "ci")
    assert fluo_test("../repo", "--junit-xml", "j.xml").exit_code == 0
    assert [t.get("classname") for t in ET.parse("j.xml").iter("testcase")] == ["repo.r_test"]


@pytest.mark.parametrize("named", ["abs", "rules/r_test.yaml", "rules", "./rules/../rules/r_test.yaml"])
def test_a_test_file_is_reported_by_the_path_it_was_reached_by(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named: str
) -> None:
    """QA docs 09: `fluo test /abs/dir/rules/r_test.yaml` run from /abs/dir reported `rules/r_test.yaml` (text,
    JSON, JUnit), so a JUnit classname depended on the working folder; `fluo check` keeps an absolute path."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.fluo").write_text("rule r { expect trace.spans.count() < 100 }\n")
    (tmp_path / "rules" / "r_test.yaml").write_text("cases:\n  - {name: quiet, spans: [{name: a}], expect: []}\n")
    monkeypatch.chdir(tmp_path)
    shown = str(tmp_path / "rules" / "r_test.yaml") if named == "abs" else "rules/r_test.yaml"
    given = shown if named == "abs" else named
    text = fluo_test(given, "--junit-xml", "j.xml")
    assert text.stdout.splitlines()[0] == f"{shown}: 1 passed", text.output
    assert json.loads(fluo_test(given, "--format", "json").stdout)["files"][0]["path"] == shown
    (suite,) = ET.parse("j.xml").iter("testsuite")
    (case,) = suite.iter("testcase")
    assert (suite.get("name"), suite.get("file"), case.get("file")) == (shown, shown, shown)
    package = ".".join(tmp_path.parts[1:]) + "." if named == "abs" else ""  # `/tmp/x/rules/...`: `tmp.x.rules`
    assert case.get("classname") == f"{package}rules.r_test"


def test_a_misspelt_key_in_a_fixture_is_told_beside_the_case_and_on_stderr(work: Path) -> None:
    """QA docs repro 05: a fixture's `atributes` made a case fail with "did not fire" and nothing pointing at
    the fixture. The failure says so first (text and JUnit), the JSON case has `warnings`, and stderr has it
    once however many cases read the file."""
    fixture = json.loads((work / "traces" / "two_errors.json").read_text(encoding="utf-8"))
    span = fixture["resourceSpans"][1]["scopeSpans"][0]["spans"][0]  # one of the two errors
    span["stauts"] = span.pop("status")
    (work / "traces" / "typo.json").write_text(json.dumps(fixture), encoding="utf-8")
    case = "  - name: {}\n    traces: [traces/typo.json]\n    expect: [{{rule: error_budget}}]\n"
    (work / "typo_test.yaml").write_text(
        "rules: rules.fluo\ncases:\n" + case.format("first") + case.format("second"), encoding="utf-8"
    )
    warning = (
        "traces/typo.json: resourceSpans[1].scopeSpans[0].spans[0]: unknown key `stauts`"
        " (no field of an OTLP Span), ignored; did you mean `status`?"
    )
    result = fluo_test("typo_test.yaml", "--junit-xml", "junit.xml")
    assert result.exit_code == 1, result.output
    assert result.stderr == f"fluo: warning: {warning}\n"
    block = "typo_test.yaml:3: case 'first': 1 missing signal\n\nwarning: " + warning + "\n\n"
    assert block in result.stdout
    assert f"warning: {warning}" in (work / "junit.xml").read_text(encoding="utf-8")
    report = json.loads(fluo_test("typo_test.yaml", "--format", "json").stdout)
    assert [c["warnings"] for c in report["files"][0]["cases"]] == [[warning], [warning]]
    assert (
        "warnings" not in json.loads(fluo_test("passing_test.yaml", "--format", "json").stdout)["files"][0]["cases"][0]
    )


def test_a_yaml_file_in_rules_is_refused_without_pointing_at_fluo_test(tmp_path: Path) -> None:
    """Review: `rules: other_test.yaml` was refused '(a rule test runs with `fluo test other_test.yaml`)', odd
    inside `fluo test`, which was running one; the advice is for commands given the path (`fluo check t.yaml`)."""
    (tmp_path / "other_test.yaml").write_text("cases: []\n", encoding="utf-8")
    test = tmp_path / "a_test.yaml"
    test.write_text("rules: other_test.yaml\ncases:\n  - name: a\n    traces: t.json\n    expect: []\n")
    result = fluo_test(str(test))
    assert result.exit_code == 2
    assert f"`rules:` names .fluo files or folders: {tmp_path / 'other_test.yaml'} is neither\n" in result.output
    assert "fluo test" not in result.output


def test_a_folder_below_that_cannot_be_read_stops_the_run(tmp_path: Path) -> None:
    """As `fluo check` (QA cli r01): a test folder its user may not read was passed over, and the run passed
    on the tests it found elsewhere. As root, the run is `nobody`'s."""
    folder = Path(tempfile.mkdtemp(prefix="fluo-locked-"))
    (folder / "sub").mkdir()
    (folder / "r.fluo").write_text("rule r {\n  expect trace.spans.count() < 5\n}\n")
    case = "rules: r.fluo\ncases:\n  - name: one\n    spans: [{name: a}]\n    expect: []\n"
    (folder / "r_test.yaml").write_text(case)
    (folder / "sub" / "r.fluo").write_text("rule s {\n  expect trace.spans.count() < 5\n}\n")
    (folder / "sub" / "r_test.yaml").write_text(case)
    assert CliRunner().invoke(main, ["test", str(folder)]).exit_code == 0  # and imports what the run needs
    try:
        folder.chmod(0o755)
        (folder / "sub").chmod(0)

        def outcome() -> str:
            r = CliRunner().invoke(main, ["test", str(folder)])
            return json.dumps([r.exit_code, r.stderr])

        assert json.loads(as_reader(outcome)) == [2, f"fluo: cannot read {folder / 'sub'}: Permission denied\n"]
    finally:
        (folder / "sub").chmod(0o755)
        shutil.rmtree(folder)


def test_a_junit_write_that_fails_leaves_the_last_report_whole(work: Path) -> None:
    """QA citest r02: `--junit-xml` was written in place: past a file size limit (or on a full disk) the last
    good report was left cut off, no XML."""
    (work / "j.xml").write_text("<testsuites/>\n", encoding="utf-8")
    cases = "".join(f"  - name: c{i}{'L' * 20_000}\n    spans: [{{name: a}}]\n    expect: []\n" for i in range(3))
    (work / "long_test.yaml").write_text(f"rules: [rules.fluo]\ncases:\n{cases}", encoding="utf-8")
    with file_size_limit(50_000):
        result = fluo_test("long_test.yaml", "--junit-xml", "j.xml", "--format", "json")
    assert (work / "j.xml").read_text(encoding="utf-8") == "<testsuites/>\n"
    assert result.exit_code == 2
    assert result.stderr == "fluo: cannot write --junit-xml j.xml: File too large\n"
    assert json.loads(result.stdout)["junit_error"] == "cannot write --junit-xml j.xml: File too large"
    assert not [p.name for p in work.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("given", "kind"),
    [
        ("passing_test.yaml", "a test file"),
        ("rules.fluo", "a rule file"),
        ("traces/two_errors.json", "a fixture"),
        ("link.xml", "a test file"),
        ("hard.xml", "a rule file"),
    ],
)
def test_junit_xml_naming_a_file_the_run_reads_is_refused(work: Path, given: str, kind: str) -> None:
    """QA citest r03: `fluo test --junit-xml passing_test.yaml` (the path typed after the option) replaced the
    test file with the report, and exited 0; so for a rule file or a fixture."""
    (work / "link.xml").symlink_to("passing_test.yaml")
    (work / "hard.xml").hardlink_to(work / "rules.fluo")
    before = {p: p.read_bytes() for p in work.rglob("*") if p.is_file()}
    result = fluo_test("passing_test.yaml", "--junit-xml", given)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"fluo: refusing to write the --junit-xml report over {given}: it is {kind} this run reads "
        "(give the report a file of its own, e.g. --junit-xml junit.xml)\n"
    )
    assert {p: p.read_bytes() for p in work.rglob("*") if p.is_file()} == before


def test_junit_xml_over_a_rule_file_only_coverage_reads_is_refused_with_coverage(work: Path) -> None:
    (work / "extra").mkdir()
    (work / "extra" / "more.fluo").write_text("rule more { detect trace.count() > 100 }\n", encoding="utf-8")
    assert fluo_test("passing_test.yaml", "extra", "--coverage", "--junit-xml", "extra/more.fluo").exit_code == 2
    assert (work / "extra" / "more.fluo").read_text(encoding="utf-8").startswith("rule more")


def test_a_junit_xml_in_a_fixture_folder_is_refused_only_over_a_trace_file(work: Path) -> None:
    """A `traces:` folder's other files are never read (`fluo eval --traces` passes them over), so a report there is
    written: every file in the folder counted as a fixture, so the run refused the report its last run wrote."""
    (work / "folder_test.yaml").write_text(
        "rules: rules.fluo\ncases:\n  - name: all\n    traces: traces\n    expect: []\n", encoding="utf-8"
    )
    first = fluo_test("folder_test.yaml", "--junit-xml", "traces/junit.xml")
    assert first.exit_code in (0, 1) and (work / "traces" / "junit.xml").is_file()
    again = fluo_test("folder_test.yaml", "--junit-xml", "traces/junit.xml")
    assert (again.exit_code, "refusing" in again.output) == (first.exit_code, False)
    refused = fluo_test("folder_test.yaml", "--junit-xml", "traces/two_errors.json")
    assert refused.exit_code == 2
    assert "over traces/two_errors.json: it is a fixture this run reads" in refused.stderr


def test_a_junit_xml_that_cannot_be_written_makes_the_json_exit_code_2(work: Path) -> None:
    """QA citest r06: the JSON report said `exit_code: 0`, then the --junit-xml write failed and the process
    exited 2; and a file in the way of its folder was said as `File exists`."""
    (work / "afile").write_text("", encoding="utf-8")
    result = fluo_test("passing_test.yaml", "--format", "json", "--junit-xml", "afile/j.xml")
    assert result.exit_code == 2
    problem = "cannot write --junit-xml afile/j.xml: afile is not a folder"
    assert result.stderr == f"fluo: {problem}\n"
    report = json.loads(result.stdout)
    assert report["summary"]["exit_code"] == 2 and report["junit_error"] == problem
    assert report["summary"]["passed"] == 4


def test_a_file_name_that_is_not_utf8_leaves_the_junit_and_json_reports_valid(work: Path) -> None:
    """QA citest r08: `caf\\xe9_test.yaml` (a Latin-1 name) put a lone surrogate in the JUnit XML (`&#56553;`, no
    XML) and a raw 0xE9 byte in the JSON report (no UTF-8). Both show it as the text report does: `\\udce9`."""
    name = os.fsdecode(b"caf\xe9_test.yaml")
    shutil.copy(work / "failing_test.yaml", work / name)
    result = fluo_test(name, "--junit-xml", "j.xml", "--format", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout_bytes.decode("utf-8"))
    assert report["files"][0]["path"] == "caf\\udce9_test.yaml"
    root = ET.parse(work / "j.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.attrib["name"] == suite.attrib["file"] == "caf\\udce9_test.yaml"
    assert {c.attrib["classname"] for c in suite.iter("testcase")} == {"caf\\udce9_test"}
    assert "caf\\udce9_test.yaml::an unexpected signal" in fluo_test(name).stdout


def test_the_text_report_escapes_terminal_controls_from_rules_and_traces(tmp_path: Path) -> None:
    """Security QA (r03): rule source lines and observed values reached the terminal raw (an ESC sequence setting
    its title, a C1 CSI U+009B, a bidi override U+202E), while `fluo eval --format text` escapes them."""
    (tmp_path / "ok.fluo").write_text(
        'rule r {\n  description: "a\x1b]0;TITLE\x07"\n\tdetect trace.has(name != "\u009b31m\u202e")\n}\n'
        'rule q { expect trace.root.name == "ok" }\n',
        encoding="utf-8",
    )
    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "x\u009b31m\u202egnp.exe",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001000000000",
    }
    (tmp_path / "t.json").write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}))
    test = tmp_path / "ok_test.yaml"
    test.write_text("rules: [ok.fluo]\ncases:\n  - name: x\n    traces: t.json\n    expect: []\n", encoding="utf-8")
    result = fluo_test(str(test))
    assert result.exit_code == 1
    assert not [c for c in result.output if c in "\x1b\x07\u009b\u202e\t"]
    lines = result.output.splitlines()
    assert '    2 |   description: "a\\u001b]0;TITLE\\u0007"' in lines
    assert '    3 |     detect trace.has(name != "\\u009b31m\\u202e")' in lines  # a tab shown as indentation
    obs = 'q trace 0af7651916cd43dd8448eb211c80319c: name = "x\\u009b31m\\u202egnp.exe", bound = "ok"'
    assert f"    UNEXPECTED            | {obs}" in lines
    as_json = fluo_test(str(test), "--format", "json")  # smalls: the JSON report held them raw
    assert as_json.exit_code == 1 and not [c for c in as_json.stdout if c in "\x1b\x07\u009b\u202e\t"]
    assert "\\u009b31m\\u202egnp.exe" in as_json.stdout and "x\u009b31m\u202egnp.exe" in json.dumps(
        json.loads(as_json.stdout), ensure_ascii=False
    )
    # Security r05: the JUnit <failure> text (shown by CI log viewers and annotations) held them raw
    assert fluo_test(str(test), "--junit-xml", str(tmp_path / "j.xml")).exit_code == 1
    junit = (tmp_path / "j.xml").read_text(encoding="utf-8")
    assert not [c for c in junit if c in "\x1b\x07\u009b\u202e"]
    (failure,) = ET.parse(tmp_path / "j.xml").iter("failure")
    assert failure.text is not None and obs in failure.text


def test_report_lines_count_no_break_yaml_alone_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: after a U+0085 (NEL) in a test file, its errors and JUnit lines were a line past where editors, git
    and CI annotations put them: PyYAML counts NEL (and U+2028, U+2029) as a line break (and folds one in quotes
    to a space: the case is named `a b`)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.fluo").write_text('rule slow { detect trace.count(name == "login") > 0 }\n', encoding="utf-8")
    (tmp_path / "nel_test.yaml").write_text(
        'rules: [r.fluo]\ndescription: "a\x85b\u2028c"\ncases:\n  - name: "a\x85b"\n    spans: [{name: x}]\n'
        "    expect: [slwo]\n  - name: c\n    spans: [{name: login}]\n    expect: []\n",
        encoding="utf-8",
    )
    result = fluo_test("nel_test.yaml", "--junit-xml", "junit.xml")
    assert "nel_test.yaml:6: case 'a b': no rule `slwo` in r.fluo" in result.output
    cases = ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")
    assert [c.get("line") for c in cases] == ["4", "7"]


def test_watch_interval_without_watch_is_a_usage_error() -> None:
    """QA (errors, minor): `fluo test --watch-interval 1` without --watch ran once and ignored it, where every other
    option that only changes another's work (`fluo check --no-optimise` without --emit-ir) is a usage error."""
    folder = str(ROOT / "examples" / "rules")
    r = fluo_test(folder, "--watch-interval", "1")
    assert (r.exit_code, r.stdout) == (2, "")
    assert r.stderr == "fluo: --watch-interval only sets how often --watch looks for changes; give --watch too\n"
    assert fluo_test(folder, "--watch-interval", "0.5").exit_code == 2  # given, though the default
    assert fluo_test(folder).exit_code == 0


def test_a_fixture_or_rule_file_in_a_folder_that_cannot_be_searched_is_a_problem_at_its_line() -> None:
    """QA watch r02: a `traces:` fixture or a `rules:` file inside a folder its user may not search (`chmod 000`)
    was a PermissionError traceback from pathlib's `is_dir()`/`exists()`, exit 1; `fluo eval -t`, `fluo check` and
    `fluo signals --db` naming such a file too. Now a one-line problem at the case's or the `rules:` line, as for a
    file that cannot be read, exit 2. As root, the commands run as `nobody`."""
    folder = Path(tempfile.mkdtemp(prefix="fluo-locked-"))
    fixtures, rules = folder / "fx", folder / "lk"
    fixtures.mkdir()
    rules.mkdir()
    rule = 'rule r {\n  severity: warning\n  description: "x"\n  detect trace.spans.where(name == "zz").exists()\n}\n'
    (folder / "r.fluo").write_text(rule)
    (rules / "r.fluo").write_text(rule)
    span = '{"traceId": "%s", "spanId": "%s", "name": "s", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}'
    trace = '{"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [SPAN]}]}]}'.replace("SPAN", span)
    (fixtures / "t.json").write_text(trace.replace("%s", "1" * 32, 1).replace("%s", "1" * 16, 1))
    (folder / "a_test.yaml").write_text("rules: [r.fluo]\ncases:\n  - name: q\n    traces: fx/t.json\n    expect: []\n")
    (folder / "b_test.yaml").write_text(
        "rules: [lk/r.fluo]\ncases:\n  - name: q\n    spans: [{name: a}]\n    expect: []\n"
    )
    runs = [
        ["test", str(folder / "a_test.yaml")],
        ["test", str(folder / "b_test.yaml")],
        ["test", str(rules / "r_test.yaml")],
        ["eval", str(folder / "r.fluo"), "-t", str(fixtures / "t.json")],
        ["check", str(rules / "r.fluo")],
        ["signals", "--db", str(rules / "signals.db")],
    ]
    for args in runs[:2]:  # what the commands import on first use, imported while the files can be read
        assert CliRunner().invoke(main, args).exit_code == 0
    "".encode("utf-8-sig")  # the codec a case that could not run reads its file again with
    importlib.import_module("sqlite3")  # what `fluo signals` imports once it has found the store
    try:
        folder.chmod(0o755)
        fixtures.chmod(0)
        rules.chmod(0)

        def outcomes() -> str:
            done = (CliRunner().invoke(main, args) for args in runs)
            return json.dumps([[r.exit_code, r.stdout, r.stderr] for r in done])

        (a, b, named, evaluated, checked, signals) = json.loads(as_reader(outcomes))
        assert a[0] == 2 and "Traceback" not in a[1] + a[2]
        assert f"a_test.yaml:4: case 'q': cannot read {fixtures / 't.json'}: Permission denied\n" in a[1]
        assert b[0] == 2 and "Traceback" not in b[1] + b[2]
        assert f"b_test.yaml:1: cannot read {rules / 'r.fluo'}: Permission denied\n" in b[1]
        assert named == [2, "", f"fluo: cannot read {rules / 'r_test.yaml'}: Permission denied\n"]
        assert evaluated[0] == 2 and evaluated[2] == f"fluo: cannot read {fixtures / 't.json'}: Permission denied\n"
        assert checked[0] == 2 and checked[2] == f"fluo: cannot read {rules / 'r.fluo'}: Permission denied\n"
        assert signals[0] == 2
        assert signals[2].startswith(f"fluo: {rules / 'signals.db'}: cannot read it: permission denied")
    finally:
        fixtures.chmod(0o755)
        rules.chmod(0o755)
        shutil.rmtree(folder)


def test_a_path_holding_a_nul_is_a_problem_at_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: a `traces:` or `rules:` path holding a NUL (`"a\\0.json"` in YAML) stopped `fluo test` with a
    ValueError traceback from `os.stat`, exit 1; it is a problem at its line, exit 2, as a file that cannot be read."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.fluo").write_text("rule r { expect trace.spans.count() > 0 }\n")
    (tmp_path / "t_test.yaml").write_text('rules: [r.fluo]\ncases:\n  - name: n\n    traces: ["a\\0.json"]\n')
    (tmp_path / "u_test.yaml").write_text('rules: ["r\\0.fluo"]\ncases:\n  - name: n\n    spans: [{name: a}]\n')
    fixture, rules = fluo_test("t_test.yaml"), fluo_test("u_test.yaml")
    assert (fixture.exit_code, rules.exit_code) == (2, 2)
    why = "a file name cannot hold a NUL character"
    assert f"t_test.yaml:4: case 'n': cannot read a\\u0000.json: {why}\n" in fixture.stdout
    assert f"u_test.yaml:1: cannot read r\\u0000.fluo: {why}\n" in rules.stdout
