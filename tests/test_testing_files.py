"""`fluo test` end to end on the files it is given: which test files it finds, how it reads them, and where it says
a file is wrong."""

from __future__ import annotations

import gzip
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fluo_run.cli import main
from fluo_run.testing.spec import read_test_file

RULE = "rule has_error {\n  severity: error\n  detect trace.spans.where(status == error).exists()\n}\n"
PASSING = "cases:\n  - name: x\n    spans: [{name: a, status: error}]\n    expect: [has_error]\n"


@pytest.fixture(autouse=True)
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: str | Path, text: str | bytes) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def fluo_test(*args: str) -> Result:
    return CliRunner().invoke(main, ["test", *args])


def ran(result: Result) -> list[str]:
    """The test files a run reported, as it named them."""
    report = json.loads(result.stdout)
    return [f["path"] for f in report["files"]]


def test_a_test_file_with_a_byte_order_mark_is_found_in_a_folder() -> None:
    write("r.fluo", RULE)
    write("r_test.yaml", b"\xef\xbb\xbf" + PASSING.replace("\n", "\r\n").encode())
    result = fluo_test(".", "--format", "json")
    assert result.exit_code == 0, result.stdout
    assert ran(result) == ["r_test.yaml"]


def test_hidden_files_and_dangling_links_are_passed_over_in_a_folder_but_not_when_named() -> None:
    """An editor's lock (Emacs: `.#r_test.yaml`, a link to `user@host.pid`) or backup is no test file."""
    write("r.fluo", RULE)
    write("r_test.yaml", PASSING)
    write(".r_test.yaml", "cases: [broken\n")
    os.symlink("user@host.12345:1700000000", ".#r_test.yaml")
    os.symlink("gone.yaml", "gone_test.yaml")
    result = fluo_test(".", "--format", "json")
    assert result.exit_code == 0, result.output
    assert ran(result) == ["r_test.yaml"]
    named = fluo_test(".#r_test.yaml")
    assert named.exit_code == 2
    assert named.stderr == "fluo: .#r_test.yaml: a symbolic link to user@host.12345:1700000000, which does not exist\n"


def test_a_rule_file_runs_the_test_files_that_test_it() -> None:
    """Next to it by its stem, or in its folder or below with `rules:` naming it or a folder holding it."""
    write("rules/svc.fluo", RULE)
    write("rules/other.fluo", RULE.replace("has_error", "other_error"))
    write("rules/svc_test.yaml", PASSING)
    write("rules/other_test.yaml", PASSING.replace("has_error", "other_error"))
    write("rules/sub/deep_test.yaml", "rules: ../svc.fluo\n" + PASSING)
    write("rules/all.fluotest.yaml", "rules: [.]\ncases:\n  - {name: y, spans: [{name: a}], expect: []}\n")
    write("rules/notes_test.yaml", "suite: another tool's\n")
    result = fluo_test("rules/svc.fluo", "--format", "json")
    assert result.exit_code == 0, result.output
    assert ran(result) == ["rules/all.fluotest.yaml", "rules/sub/deep_test.yaml", "rules/svc_test.yaml"]  # path order
    other = fluo_test("rules/other.fluo", "--format", "json")
    assert ran(other) == ["rules/all.fluotest.yaml", "rules/other_test.yaml"]


def test_a_rule_files_own_test_file_runs_even_when_it_does_not_load() -> None:
    write("svc.fluo", RULE)
    write("svc_test.yaml", "cases: [\n")
    write("x_test.yaml", "cases: [\n")  # not known to test svc.fluo
    result = fluo_test("svc.fluo")
    assert result.exit_code == 2
    assert "svc_test.yaml:2: invalid YAML" in result.stdout and "x_test.yaml" not in result.stdout


def test_a_rule_file_with_no_tests_is_no_test_file() -> None:
    write("svc.fluo", RULE)
    write("other_test.yaml", PASSING)  # tests other.fluo
    none = fluo_test("svc.fluo")
    assert none.exit_code == 2
    assert (
        none.stderr == "fluo: no test files for svc.fluo: none in its folder or below has it in `rules:`"
        " or is named after it (like NAME_test.yaml)\n"
    )
    write("notes.txt", "")
    result = fluo_test("notes.txt")
    assert result.exit_code == 2
    assert "notes.txt is not a test file: name a *_test.yaml file, a .fluo file to run its tests" in result.stderr


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_files_through_a_linked_folder_keep_the_path_they_were_reached_by(work: Path) -> None:
    write("shared/rules/r.fluo", RULE)
    write("shared/rules/r_test.yaml", PASSING)
    (work / "ws").mkdir()
    os.symlink("../shared/rules", "ws/rules")
    os.chdir("ws")
    result = fluo_test("rules", "rules/r_test.yaml", "--junit-xml", "j.xml")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "rules/r_test.yaml: 1 passed"  # once, though named twice
    (case,) = ET.parse("j.xml").getroot().iter("testcase")
    assert (case.get("classname"), case.get("file")) == ("rules.r_test", "rules/r_test.yaml")


def test_a_yml_test_file_named_tests_the_rule_file_of_its_stem() -> None:
    write("r.fluo", RULE)
    write("r_test.yml", PASSING)
    write("s.fluotest.yml", PASSING.replace("has_error", "s_error"))
    write("s.fluo", RULE.replace("has_error", "s_error"))
    result = fluo_test("r_test.yml", "s.fluotest.yml")
    assert result.exit_code == 0, result.output


def test_a_test_file_that_is_not_utf8_is_reported_at_its_bad_byte_as_rule_files_are() -> None:
    write("r.fluo", RULE)
    write("r_test.yaml", PASSING.encode() + b"  - name: caf\xe9\n    spans: [{name: a}]\n    expect: []\n")
    result = fluo_test("r_test.yaml")
    assert result.exit_code == 2
    message = "not UTF-8: byte 0xe9 at line 5, column 14; save it as UTF-8"
    assert f"r_test.yaml:5: cannot read the test file: {message}" in result.stdout
    write("bad.fluo", b"rule caf\xe9 { detect true }\n")  # the same words as for a rule file
    write("x_test.yaml", "rules: bad.fluo\n" + PASSING)
    rule_message = "not UTF-8: byte 0xe9 at line 1, column 9; save it as UTF-8"
    assert f"x_test.yaml:1: cannot read bad.fluo: {rule_message}" in fluo_test("x_test.yaml").stdout


def test_trace_labels_are_read_as_written_by_spans_and_expectations_alike() -> None:
    """`trace: 0` read as the number 0 was no label (`str(0 or "")`), and `trace: 0x1F` was 31 in `expect:`."""
    write("r.fluo", RULE)
    write(
        "r_test.yaml",
        "cases:\n"
        "  - name: label zero\n    spans: [{name: a, status: error, trace: 0}, {name: b, trace: 1}]\n"
        "    expect: [{rule: has_error, trace: 0}]\n"
        "  - name: label hex-looking\n    spans: [{name: a, status: error, trace: 0x1F}, {name: b, trace: x}]\n"
        "    expect: [{rule: has_error, trace: 0x1F}]\n"
        "  - name: label float-looking\n    spans: [{name: a, status: error, trace: 1.50}, {name: b, trace: 1.5}]\n"
        "    expect: [{rule: has_error, trace: 1.50}]\n"
        "  - name: decimal trace id\n"
        "    spans: [{name: a, status: error, trace: 12345678901234567890123456789012}, {name: b}]\n"
        "    expect: [{rule: has_error, trace_id: 12345678901234567890123456789012}]\n",
    )
    result = fluo_test("r_test.yaml")
    assert result.exit_code == 0, result.stdout


def test_a_windowed_rules_expectation_may_not_name_a_trace() -> None:
    """Its signals have none: it was accepted, then failed with `(no match: trace_id is None)`."""
    write("w.fluo", "rule burst {\n  window 1m\n  expect window.spans.count() <= 2\n}\n")
    write(
        "w_test.yaml",
        "cases:\n  - name: w\n    spans: [{name: a, trace: one}, {name: a, trace: two}, {name: a, trace: three}]\n"
        "    expect:\n      - {rule: burst, trace: one}\n      - {rule: burst, trace_id: " + "a" * 32 + "}\n",
    )
    result = fluo_test("w_test.yaml")
    assert result.exit_code == 2
    where = "case 'w': rule `burst` is windowed (window 1m): its signals have no trace"
    assert f"w_test.yaml:5: {where}; drop `trace:`" in result.stdout
    assert f"w_test.yaml:6: {where}; drop `trace_id:`" in result.stdout
    assert "None" not in result.stdout


def test_a_date_in_an_inline_attribute_is_the_text_written() -> None:
    write("d.fluo", 'rule new_release {\n  detect trace.spans.where(release == "2026-01-01").exists()\n}\n')
    write("d_test.yaml", "cases:\n  - name: d\n    spans: [{name: deploy, attributes: {release: 2026-01-01}}]\n"
          "    expect: [new_release]\n")  # fmt: skip
    result = fluo_test("d_test.yaml")
    assert result.exit_code == 0, result.stdout


def test_coverage_passes_over_a_rule_file_it_cannot_read_and_says_so() -> None:
    """One rule file that is not UTF-8 dropped every rule of its folder from coverage, silently."""
    write("rules/r.fluo", RULE)
    write("rules/r_test.yaml", PASSING)
    write("rules/extra.fluo", "rule untested {\n  detect trace.spans.exists()\n}\n")
    write("rules/zlatin1.fluo", b"rule caf\xe9 {\n  detect trace.spans.exists()\n}\n")
    result = fluo_test("rules", "--coverage", "--format", "json")
    cov = json.loads(result.stdout)["coverage"]
    assert [r["rule"] for r in cov["never_ran"]] == ["untested"]
    message = "not UTF-8: byte 0xe9 at line 1, column 9; save it as UTF-8"
    assert cov["unread"] == [f"cannot read rules/zlatin1.fluo: {message}"]
    text = fluo_test("rules", "--coverage").stdout
    assert re.search(r"never ran: +untested +rules/extra.fluo:1", text)
    assert f"  not read:    cannot read rules/zlatin1.fluo: {message}\n" in text


def test_no_test_files_names_the_files_a_typo_kept_out() -> None:
    write("rules/r_test.yml", PASSING)
    write("rules/s_test.yaml", PASSING.replace("cases:", "case:"))
    write("rules/helm_test.yaml", "suite: x\ntests: []\n")  # another tool's: no near miss
    result = fluo_test("rules")
    assert result.exit_code == 2
    assert result.stderr == (
        "fluo: no test files (*.fluotest.yaml, or *_test.yaml with a top-level `cases:`) under rules; passed over:"
        " rules/r_test.yml (a test file's name ends in .yaml),"
        " rules/s_test.yaml (a top-level `case:`; did you mean `cases:`?)\n"
    )


@pytest.mark.parametrize(
    "name", ["orders-test.yaml", "test_orders.yaml", "orders.test.yaml", "orders_tests.yaml", "orders_Test.yml"]
)
def test_no_test_files_names_a_test_file_misnamed_otherwise(name: str) -> None:
    """QA newuser r02: a rule test with a top-level `cases:` named with a dash or pytest-style was neither run
    nor named ("no test files ... under rules", where docs/testing.md says the typo's file is named)."""
    write("rules/orders.fluo", RULE)
    write(f"rules/{name}", PASSING)
    write("rules/test-data.yaml", "spans: []\n")  # test in its name, but no `cases:`: no near miss
    result = fluo_test("rules")
    assert result.exit_code == 2
    assert result.stderr == (
        "fluo: no test files (*.fluotest.yaml, or *_test.yaml with a top-level `cases:`) under rules; passed over:"
        f" rules/{name} (a test file's name ends in _test.yaml; did you mean orders_test.yaml?)\n"
    )


def test_a_misnamed_test_file_beside_test_files_that_run_is_a_warning() -> None:
    """QA newuser r02: beside a test file that ran, `orders-test.yaml` was passed over without a word and the run
    said all passed. It still passes (a warning, not an error), naming it; another tool's tests are not named."""
    write("rules/r.fluo", RULE)
    write("rules/r_test.yaml", PASSING)
    write("rules/orders-test.yaml", "rules: [r.fluo]\n" + PASSING)
    write("rules/old_test.yml", PASSING)
    write("rules/helm_test.yml", "suite: x\ntests: []\n")
    write("rules/test-data.yaml", "spans: []\n")
    write("rules/latest.yaml", PASSING)  # review: `test` inside a word is no misnamed test file
    write("rules/contest.yml", PASSING)
    result = fluo_test("rules")
    assert result.exit_code == 0, result.output
    assert "rules/r_test.yaml: 1 passed" in result.stdout
    assert (warned := result.stderr.splitlines()[-2:]) == [
        "fluo: warning: passed over rules/old_test.yml (a test file's name ends in .yaml); its cases did not run",
        "fluo: warning: passed over rules/orders-test.yaml (a test file's name ends in _test.yaml;"
        " did you mean orders_test.yaml?); its cases did not run",
    ]
    assert "latest" not in result.stderr and "contest" not in result.stderr
    as_json = fluo_test("rules", "--format", "json")  # last session's note: they were on stderr only
    assert json.loads(as_json.stdout)["warnings"] == [line.removeprefix("fluo: warning: ") for line in warned]
    named = fluo_test("rules", "rules/orders-test.yaml")  # named, it runs: no warning
    assert named.exit_code == 0 and "orders-test.yaml" not in named.stderr
    assert "rules/orders-test.yaml: 1 passed" in named.stdout


def test_a_test_file_that_is_a_device_or_fifo_is_refused_not_read() -> None:
    """Security QA: a `*_test.yaml` linked to /dev/zero was read without end (and a FIFO blocked)."""
    Path("zero_test.yaml").symlink_to("/dev/zero")
    os.mkfifo("fifo_test.yaml")
    for name in ("zero_test.yaml", "fifo_test.yaml"):
        result = fluo_test(name)
        assert result.exit_code == 2, result.output
        assert "not a regular file" in result.output
        with pytest.raises(OSError, match="not a regular file"):  # every reader of test files: never blocks
            read_test_file(name)
    assert fluo_test(".").exit_code == 2  # a folder search passes over them: no test files


def test_a_flow_style_test_file_is_found_in_a_folder() -> None:
    """Differential QA: `{"rules": [...], "cases": [...]}` (JSON is YAML) ran when named, but a folder search
    passed over it ("no test files")."""
    write("r.fluo", RULE)
    case = {"name": "x", "spans": [{"name": "a", "status": "error"}], "expect": ["has_error"]}
    write("flow_test.yaml", json.dumps({"rules": ["r.fluo"], "cases": [case]}))
    write("other_test.yaml", '# a comment\n{"name": "not ours"}\n')
    result = fluo_test(".")
    assert result.exit_code == 0, result.output
    assert "flow_test.yaml: 1 passed" in result.stdout and "other_test.yaml" not in result.stdout


def test_a_rule_file_with_no_tests_is_a_usage_error_next_to_tested_ones() -> None:
    """QA: `fluo test r.fluo new.fluo` (a pre-commit hook's call) ran r's tests and dropped new.fluo without a word."""
    write("r.fluo", RULE)
    write("r_test.yaml", PASSING)
    write("new.fluo", "rule broken {\n")
    write("other.fluo", RULE)
    result = fluo_test("r.fluo", "new.fluo", "other.fluo")
    assert result.exit_code == 2
    assert result.stdout == ""  # before any test runs, as for a missing path
    assert result.stderr == (
        "fluo: no test files for new.fluo, other.fluo: none in their folders or below has it in `rules:`"
        " or is named after it (like NAME_test.yaml)\n"
    )
    assert fluo_test("r.fluo").exit_code == 0


def test_a_rule_file_with_no_tests_names_the_files_a_typo_kept_out() -> None:
    write("rules/http.fluo", RULE)
    write("rules/http_test.yml", PASSING)
    write("rules/sub/x_test.yaml", "case: []\n# tests ../http.fluo\n")
    write("rules/other_test.yml", PASSING)  # tests other.fluo: not named
    result = fluo_test("rules/http.fluo")
    assert result.exit_code == 2
    assert result.stderr == (
        "fluo: no test files for rules/http.fluo: none in its folder or below has it in `rules:` or is named after it"
        " (like NAME_test.yaml); passed over: rules/http_test.yml (a test file's name ends in .yaml),"
        " rules/sub/x_test.yaml (a top-level `case:`; did you mean `cases:`?)\n"
    )


def test_a_folder_named_like_a_test_file_is_said_to_be_a_folder() -> None:
    """QA: a folder `auth_test.yaml` next to `auth.fluo` got "none ... is named after it", which it is."""
    write("rules/auth.fluo", RULE)
    os.makedirs("rules/auth_test.yaml")
    os.makedirs("rules/sub/other.fluotest.yaml")
    result = fluo_test("rules/auth.fluo")
    assert result.exit_code == 2
    assert result.stderr == (
        "fluo: no test files for rules/auth.fluo: none in its folder or below has it in `rules:` or is named after it"
        " (like NAME_test.yaml); passed over: rules/auth_test.yaml (a folder, not a file)\n"
    )
    assert fluo_test("rules").stderr.endswith(
        "; passed over: rules/auth_test.yaml (a folder, not a file),"
        " rules/sub/other.fluotest.yaml (a folder, not a file)\n"
    )
    assert fluo_test("rules/auth_test.yaml").stderr.endswith(
        "under rules/auth_test.yaml; passed over: rules/auth_test.yaml (a folder, not a file)\n"
    )


CASE_A = "cases:\n  - name: a\n    spans: [{name: a}]\n    expect: []\n"


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_rules_and_traces_name_only_files_of_their_kind_so_no_other_file_is_read_and_quoted(work: Path) -> None:
    """Security QA (r06): a test file from a change under review named a token file (by `../`, an absolute path
    or a committed link) as `rules:`, and `fluo test` quoted it: "unknown name `ghp_...`"."""
    secret = "ghp_TopSecretToken123456"
    write("outside/token", secret + "\n")
    write("repo/r.fluo", RULE)
    write("shared/s.fluo", RULE.replace("has_error", "shared_error"))  # outside the tree, but a rule file: read
    (work / "repo/sub").mkdir()
    (work / "repo/tr").mkdir()
    os.symlink(work / "outside/token", "repo/sub/link.fluo")
    os.symlink(work / "outside/token", "repo/tr/t.json")
    write("repo/abs_test.yaml", f"rules: [{work / 'outside/token'}]\n" + CASE_A)
    write("repo/rel_test.yaml", "rules: [../outside/token]\n" + CASE_A)
    write("repo/link_test.yaml", "rules: [sub/link.fluo]\n" + CASE_A)
    write("repo/folder_test.yaml", "rules: [sub]\n" + CASE_A)
    write("repo/up_test.yaml", "rules: [../shared/s.fluo, r.fluo]\n" + CASE_A)
    write("repo/tr_test.yaml", "rules: r.fluo\ncases:\n  - name: t\n    traces: [../outside/token, tr/t.json, tr]\n")
    os.chdir("repo")
    result = fluo_test(".")
    assert secret not in result.output and result.exit_code == 2
    neither = "`rules:` names .fluo files or folders"
    link = "sub/link.fluo is a link to a file not named .fluo: rule files are read through links only to rule files"
    traces = "`traces:` names trace files (*.json, *.jsonl, *.ndjson, *.pb, *.binpb, *.protobuf, each maybe .gz)"
    assert result.stdout.splitlines()[:-1] == [
        "abs_test.yaml: error",
        f"  abs_test.yaml:1: {neither}: {work / 'outside/token'} is neither",
        "folder_test.yaml: error",
        f"  folder_test.yaml:1: {link}",
        "link_test.yaml: error",
        f"  link_test.yaml:1: {link}",
        "rel_test.yaml: error",
        f"  rel_test.yaml:1: {neither}: ../outside/token is neither",
        "tr_test.yaml: 1 error",
        "  ERROR t (line 3)",
        f"    tr_test.yaml:4: case 't': {traces} or folders: ../outside/token is not one",
        f"    tr_test.yaml:4: case 't': {traces} or folders: tr/t.json is a link to a file that is not one",
        "    tr_test.yaml:4: case 't': tr/t.json is a link to a file not named as a trace file "
        "(*.json, *.jsonl, *.ndjson, *.pb, *.binpb, *.protobuf, each maybe .gz)",
        "up_test.yaml: 1 passed",
    ]


def test_a_trace_file_suffix_in_capitals_is_a_trace_file() -> None:
    """QA rev2 r14: `traces: TRACE.JSON` (as Windows tools name files), which `fluo eval` reads, was "not one";
    a folder's `OTHER.JSON.GZ` was passed over. Rule files stay `.fluo` only, as `fluo check DIR` finds them."""
    trace = Path(__file__).parent.parent / "examples" / "traces" / "healthy_login.json"
    write("r.fluo", RULE)
    write("TRACE.JSON", trace.read_bytes())
    write("more/OTHER.JSON.GZ", gzip.compress(trace.read_bytes()))
    write("r_test.yaml", "cases:\n  - name: upper\n    traces: [TRACE.JSON, more]\n    expect: []\n")
    result = fluo_test("r_test.yaml")
    assert result.exit_code == 0, result.output
    write("R.FLUO", RULE)
    write("R_test.yaml", "rules: R.FLUO\n" + PASSING)
    assert "`rules:` names .fluo files or folders: R.FLUO is neither" in fluo_test("R_test.yaml").output


def test_symbolic_link_loops_are_errors_at_their_lines_not_tracebacks() -> None:
    """QA errors r06, r08: a case's `traces:` or a `rules:` entry (of another test file below a rule file's folder,
    which `fluo test RULE.fluo` reads to see what it tests) that is a symbolic link loop crashed `fluo test`:
    Path.resolve raises RuntimeError on a loop. A loop named on the command line said "which does not exist"."""
    write("r.fluo", RULE)
    write("r_test.yaml", "cases:\n  - name: x\n    traces: loop.json\n    expect: []\n")
    write("other/o_test.yaml", "rules: [l.fluo]\n" + PASSING)
    os.symlink("loop.json", "loop.json")
    os.symlink("l.fluo", "other/l.fluo")
    os.symlink("self.fluo", "self.fluo")
    result = fluo_test(".")
    assert result.exit_code == 2, result.output
    assert "r_test.yaml:3: case 'x': trace file loop.json is a symbolic link loop\n" in result.stdout
    assert "other/o_test.yaml:1: rule file other/l.fluo is a symbolic link loop\n" in result.stdout
    by_rule = fluo_test("r.fluo")  # other/o_test.yaml is read to see whether it tests r.fluo: it does not
    assert by_rule.exit_code == 2, by_rule.output
    assert "r_test.yaml:3: case 'x': trace file loop.json is a symbolic link loop\n" in by_rule.stdout
    assert "o_test.yaml" not in by_rule.stdout
    named = fluo_test("self.fluo")
    assert (named.exit_code, named.stderr) == (2, "fluo: self.fluo: a symbolic link loop\n")
