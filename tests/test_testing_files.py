"""`fluo test` end to end on the files it is given: which test files it finds, how it reads them, and where it says
a file is wrong."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fluo_run.cli import main

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
