"""Reading test files: YAML with line numbers (document) and checked cases (spec)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fluo_lang import folders
from fluo_run.testing import document, spec
from fluo_run.testing.document import LineDict, LineList, YamlError, load
from fluo_run.testing.report import json_report, junit_report, text_report
from fluo_run.testing.runner import Runner
from fluo_run.testing.spec import RuleLoader, default_rules, find_test_files, load_test_file
from fluo_run.testing.watch import changed, stamps

RULES = "rule slow { detect trace.spans.where(duration > 100ms).exists() }\nrule quiet { expect true }\n"


def test_lines_of_keys_and_items() -> None:
    doc = load("a: 1\nlist:\n  - x\n  - {k: v,\n     j: w}\nnested:\n  deep: {z: 2}\n")
    assert isinstance(doc, LineDict) and doc == {
        "a": 1,
        "list": ["x", {"k": "v", "j": "w"}],
        "nested": {"deep": {"z": 2}},
    }
    assert (doc.line, doc.line_of("a"), doc.line_of("list"), doc.line_of("nested")) == (1, 1, 2, 6)
    items = doc["list"]
    assert isinstance(items, LineList) and items.item_lines == [3, 4]
    assert items[1].line_of("j") == 5
    assert doc["nested"]["deep"].line == 7


@pytest.mark.parametrize("brk", ["\x85", "\u2028", "\u2029"])
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_lines_are_counted_as_editors_count_them(brk: str, newline: str) -> None:
    """QA: PyYAML's marks count U+0085, U+2028 and U+2029 as line breaks, which editors, git and CI annotations
    do not: every line after one was off by one. Lines count only `\\n`, `\\r\\n` and `\\r`."""
    text = newline.join(["\ufeffa: 1", f'b: "x{brk}y"', "c:", f"  - {{k: 1{brk}, j: 2}}", "  - z", "d: 2", ""])
    doc = load(text)
    assert (doc.line_of("b"), doc.line_of("c"), doc.line_of("d")) == (2, 3, 6)
    assert doc["c"].item_lines == [4, 5]
    assert doc["c"][0].line_of("j") == 4
    with pytest.raises(YamlError) as info:
        load(text + "d: 3" + newline)
    assert (info.value.line, str(info.value)) == (7, "duplicate key `d` (first on line 6)")


def test_dates_and_timestamps_are_the_text_written() -> None:
    """They were Python dates, which no span attribute holds: `release == "2026-01-01"` was silently false."""
    doc = load("a: 2026-01-01\nb: 2026-01-01T10:00:00Z\nc: [2026-1-1 10:00:00.5]\nd: !!timestamp 2026-01-01\n")
    assert doc == {"a": "2026-01-01", "b": "2026-01-01T10:00:00Z", "c": ["2026-1-1 10:00:00.5"], "d": "2026-01-01"}
    with pytest.raises(YamlError) as info:
        load("x: 1\ny: !!binary aGVsbG8=\n")
    assert (info.value.line, str(info.value)) == (
        2,
        "invalid YAML value: !!binary (bytes) is not a value a test file can hold",
    )


def test_keys_stay_text_and_merges_work() -> None:
    doc = load("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n  200: ok\n  true: yes\n")
    assert doc["m"] == {"x": 1, "y": 3, "200": "ok", "true": True}
    assert load("a: &a {x: 1}\nb: &b {y: 2}\nm:\n  <<: [*a, *b]\n")["m"] == {"x": 1, "y": 2}


@pytest.mark.parametrize("value", ["abc", "[1, 2]", "[{x: 1}, 2]", "", "\n    - 1"])
def test_a_merge_key_with_no_mapping_is_an_error_at_its_value(value: str) -> None:
    """QA: `<<: abc` and `<<: [1, 2]` were left out silently, so the keys meant to be merged were missing."""
    with pytest.raises(YamlError) as info:
        load("a: 1\nm:\n  <<: " + value + "\n  y: 3\n")
    assert (info.value.line, str(info.value)) == (
        4 if value.startswith("\n") else 3,
        "`<<:` (a merge key) takes a mapping or a list of mappings, like `<<: *base`",
    )


def test_a_merge_key_naming_an_anchor_that_is_no_mapping_is_an_error_at_the_merge() -> None:
    """Review: `<<: *a` with `a: &a 5` was reported at line 1, the anchor's, where no `<<:` is written."""
    with pytest.raises(YamlError) as info:
        load("a: &a 5\nb: 2\nm:\n  <<: *a\n")
    assert info.value.line == 4


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a: 1\na: 2\n", 2, "duplicate key `a` (first on line 1)"),
        ("a: [1\nb: 2\n", 2, "invalid YAML: did not find expected ',' or ']'"),
        ("a:\n  - b\n c: 1\n", 3, "invalid YAML:"),
        ("? [1, 2]\n: x\n", 1, "a mapping key must be plain text"),
        ("a: !!int nope\n", 1, "invalid YAML value"),
        # QA: a tab said "found character that cannot start any token" (libyaml does not say which)
        ("cases:\n\t- name: c\n", 2, "invalid YAML: a tab at column 1: YAML indents with spaces only"),
        ("\ufeff\tb: 1\n", 1, "invalid YAML: a tab at column 1: YAML indents with spaces only"),  # the BOM: no column
        ("a:\n  - b\n  - @x\n", 3, "invalid YAML: found character '@' that cannot start any token"),
        # YAML breaks the line at U+2028; editors and CI do not: the error is on the file's line 1
        ("a: 1\u2028b: `x\n", 1, "invalid YAML: found character '`' that cannot start any token"),
        ("a:\n  - 1 # c\x85\t- 2\n", 2, "invalid YAML: a tab at column 11: YAML indents with spaces only"),
        # was a RecursionError; PyYAML 6.0.4 stops it itself ("exceeded maximum nesting depth"), older ones recurse
        ("a: " + "[" * 3000 + "]" * 3000 + "\n", 1, "nest"),
    ],
)
def test_yaml_errors_have_lines(text: str, line: int, message: str) -> None:
    with pytest.raises(YamlError) as info:
        load(text)
    assert info.value.line == line
    assert message in str(info.value)


def nested(n: int, inner: str = "1") -> str:
    return "[" * n + inner + "]" * n


@pytest.mark.parametrize(
    ("text", "line"),
    [('a: é\nb: "x\x01"\n', 2), ('\ufeffa: é\r\nb: 1\x85\nc: "\x01"\n', 3), ("a: 1\rb: 2\x85\x01\n", 2)],
)
def test_a_character_yaml_forbids_is_one_line_at_its_line(text: str, line: int) -> None:
    """QA: the message went on to a literal `\\n  in "<unicode string>", position 25`, at line 1."""
    with pytest.raises(YamlError) as info:
        load(text)
    assert (info.value.line, str(info.value)) == (
        line,
        "invalid YAML: unacceptable character #x0001: control characters are not allowed; "
        "in double quotes, write `\\x01`",
    )


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a: 1\nb: " + nested(200) + "\n", 2, "nested too deeply (more than 200 levels)"),
        ("a: &a " + nested(100) + "\nb: &b " + nested(50, "*a") + "\nc: " + nested(50, "*b") + "\n", 2, "deeply"),
        ("a: &a {b: [1, *a]}\n", 1, "an alias inside the value it names"),
        ("a: &a {<<: *a}\n", 1, "an alias inside the value it names"),
    ],
)
def test_values_nest_at_most_max_depth_levels_counting_what_aliases_bring(text: str, line: int, message: str) -> None:
    with pytest.raises(YamlError) as info:
        load(text)
    assert (info.value.line, message in str(info.value)) == (line, True)


def test_an_integer_of_more_digits_than_python_reads_is_a_yaml_problem_at_its_line() -> None:
    """Security QA (r01): a 5,000-digit integer in a test file was a ValueError traceback, exit 1."""
    for number in ("9" * 5000, "+" + "9" * 5000, "-9_" + "9" * 5000):
        with pytest.raises(YamlError) as info:
            load("a: 1\nb: [" + number + "]\n")
        digits = 5000 + number.startswith("-")
        assert (info.value.line, str(info.value)) == (
            2,
            f"invalid YAML value: an integer of {digits:,} digits, more than the 4,300 Python reads",
        )
    assert load("a: 0x" + "f" * 5000 + "\n")["a"] == 16**5000 - 1  # hexadecimal: no limit in Python


def test_values_nested_to_the_limit_load() -> None:
    assert load("a: " + nested(198, "[]"))["a"] is not None  # the mapping, 198 lists and the innermost one: 200
    doc = load("a: &a " + nested(100) + "\nb: &b " + nested(49, "*a") + "\nc: " + nested(49, "*b") + "\n")
    assert doc["c"][0] is not None


def test_a_deep_observed_value_is_a_yaml_problem_of_the_file(tmp_path: Path) -> None:
    write(tmp_path, "r.fluo", RULES)
    expect = "    expect: [{rule: slow, observed: {v: " + nested(500) + "}}]\n"
    f = load_test_file(
        write(tmp_path, "r_test.yaml", "rules: r.fluo\ncases:\n  - name: x\n    spans: [{name: a}]\n" + expect)
    )
    assert [(p.line, p.code, p.message) for p in f.problems] == [
        (5, "yaml", "invalid YAML: nested too deeply (more than 200 levels)")
    ]


LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{x}: &{x} [{', '.join([f'*{p}'] * 9)}]\n" for p, x in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_aliases_may_not_expand_past_a_bound() -> None:
    """Nine levels of nine aliases are 9**9 values once expanded (a kilobyte that hung `fluo test`); the
    error is at the line of the alias that crosses the bound, and it is the test file's, not the YAML's."""
    with pytest.raises(YamlError) as info:
        load(LAUGHS)
    assert (info.value.line, info.value.code) == (6, "test-file")  # f: 9**5 + ... values
    assert str(info.value) == "invalid test file: aliases expand to more than 300,000 values"
    block = "a: &a [" + ", ".join(["x"] * 1000) + "]\nb:\n" + "  - *a\n" * 400
    with pytest.raises(YamlError) as info:
        load(block)
    assert info.value.line == 3  # the list holding the aliases
    with pytest.raises(YamlError) as info:
        load("a: &a [" + ", ".join(["x"] * 1000) + "]\nm: &m {k: *a}\n" + "".join(f"k{i}: *m\n" for i in range(400)))
    assert info.value.line == 301  # a mapping value: the alias's own line


def test_a_file_writing_more_values_than_the_bound_is_refused_before_it_is_composed(tmp_path: Path) -> None:
    """Security QA (r08): a 16 MiB flow list of 8 million `a`s took 22 s and 2.7 GB to compose (160x its size)."""
    text = "rules: [r.fluo]\ndescription:\n  [" + "a," * document.MAX_NODES + "a]\ncases: []\n"
    with pytest.raises(YamlError) as info:
        load(text)
    assert (info.value.line, info.value.code, str(info.value)) == (
        3,
        "test-file",
        "invalid test file: more than 1,000,000 values (scalars, lists and mappings); split it into smaller files",
    )
    write(tmp_path, "r.fluo", RULES)
    f = load_test_file(write(tmp_path, "r_test.yaml", text))
    assert [(p.line, p.message) for p in f.problems] == [(3, str(info.value))]
    from fluo_lsp.testfiles import read_test_file

    error = read_test_file(tmp_path / "r_test.yaml", text).error
    assert error is not None and error[0] == str(info.value)
    assert (text.count("\n", 0, error[1]), text[error[1] : error[2]]) == (2, "a")  # the first value past, line 3


def test_values_up_to_the_bound_load_and_aliases_are_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document, "MAX_NODES", 9)
    at_limit = "a: [b, c, &d [e]]\nf: [*d, *d, *d, *d, *d, *d, *d, *d]\n" + "#" * 64  # 9 values, 8 aliases
    assert load(at_limit) == {"a": ["b", "c", ["e"]], "f": [["e"]] * 8}
    with pytest.raises(YamlError) as info:
        load(at_limit.replace("*d]", "*d, g]"))
    assert info.value.line == 2


def test_aliases_within_the_bound_share_their_value() -> None:
    doc = load("a: &a [" + ", ".join(["x"] * 1000) + "]\nb: [" + ", ".join(["*a"] * 250) + "]\n")
    assert len(doc["b"]) == 250 and all(x is doc["a"] for x in doc["b"])


def test_empty_document() -> None:
    assert load("") is None
    assert load("# only a comment\n") is None


def test_an_alias_bomb_is_a_problem_of_the_test_file_at_its_line(tmp_path: Path) -> None:
    """As the language server reads an unsaved buffer: `load_test_file(text=...)` returns, with the problem."""
    write(tmp_path, "r.fluo", RULES)
    body = "cases:\n  - name: x\n    spans: [{name: a}]\n    expect: []\n    description:\n"
    text = body + "".join("      " + line + "\n" for line in LAUGHS.splitlines())
    f = load_test_file(tmp_path / "r_test.yaml", text=text)
    assert [(p.line, p.code, p.message) for p in f.problems] == [
        (11, "test-file", "invalid test file: aliases expand to more than 300,000 values")
    ]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


RULE_TEST_SAMPLES = json.loads((Path(__file__).parent / "testing_fixtures" / "is_rule_test.json").read_text("utf-8"))


@pytest.mark.parametrize("sample", RULE_TEST_SAMPLES, ids=[s["why"] for s in RULE_TEST_SAMPLES])
def test_is_rule_test_agrees_with_the_shared_samples(sample: dict[str, Any]) -> None:
    """The VS Code extension's `isRuleTest` reads the same table (vscode-extension/test/unit/testing.test.ts)."""
    assert spec.is_rule_test(sample["file"], sample["text"]) is sample["rule_test"]


SKIPPED_FOLDERS = json.loads((Path(__file__).parent / "testing_fixtures" / "skipped_folders.json").read_text("utf-8"))


def test_discovery_skips_the_folders_the_editor_skips(tmp_path: Path) -> None:
    """The VS Code extension's searches read the same table (vscode-extension/test/unit/testing.test.ts): the same
    skipped names and virtualenv mark, and the same test files found in its tree."""
    assert sorted(folders.SKIPPED_DIRS) == sorted(SKIPPED_FOLDERS["skipped_dirs"])
    assert SKIPPED_FOLDERS["virtualenv_mark"] == folders.VIRTUALENV_MARK
    for name in SKIPPED_FOLDERS["tree"]:
        write(tmp_path, name, "" if name.endswith(folders.VIRTUALENV_MARK) else "cases: []\n")
    found = [p.relative_to(tmp_path).as_posix() for p in find_test_files([str(tmp_path)])]
    assert found == SKIPPED_FOLDERS["found"]


def test_discovery(tmp_path: Path) -> None:
    for name in ["b_test.yaml", "a.fluotest.yaml", "sub/c_test.yaml", "notes.yaml", ".hidden/d_test.yaml",
                 "node_modules/e_test.yaml", "x_test.yml"]:  # fmt: skip
        write(tmp_path, name, "cases: []\n")
    write(tmp_path, "sub/helm_test.yaml", "suite: x\ntests: []\n")  # another tool's: passed over in a folder
    write(tmp_path, "sub/empty_test.yaml", "")
    write(tmp_path, "sub/rules_test.yaml", "# comment\n'rules' : [a.fluo]\n")
    write(tmp_path, "sub/nested_test.yaml", "x:\n  cases: []\n")  # not top-level
    assert [str(p) for p in find_test_files(["."])] == [
        "a.fluotest.yaml",
        "b_test.yaml",
        "sub/c_test.yaml",
        "sub/rules_test.yaml",
    ]
    assert [str(p) for p in find_test_files(["notes.yaml", "b_test.yaml", "."])][:2] == ["notes.yaml", "b_test.yaml"]
    assert len(find_test_files(["b_test.yaml", "./b_test.yaml"])) == 1
    with pytest.raises(FileNotFoundError, match="nope: no such file or folder"):
        find_test_files(["nope"])


def test_default_rules() -> None:
    assert default_rules(Path("r/auth_test.yaml")) == Path("r/auth.fluo")
    assert default_rules(Path("r/auth.fluotest.yaml")) == Path("r/auth.fluo")
    assert default_rules(Path("r/auth_test.yml")) == Path("r/auth.fluo")  # was r/auth_test.fluo
    assert default_rules(Path("r/auth.fluotest.yml")) == Path("r/auth.fluo")


def test_a_well_formed_file(tmp_path: Path) -> None:
    write(tmp_path, "r.fluo", RULES)
    path = write(
        tmp_path,
        "r_test.yaml",
        "cases:\n"
        "  - name: one\n    spans: [{name: a, trace: x}, {name: b, trace: y},\n"
        "            {name: c, trace: 5b8efff798038103d269b633813fc60c}]\n"
        "    only: [slow, quiet]\n"
        "    expect:\n      - slow\n      - {rule: slow, trace: x, count: 2, observed: {matched: 1}}\n"
        "      - {rule: quiet, trace_id: 5B8EFFF798038103D269B633813FC60C}\n",
    )
    f = load_test_file(path)
    assert f.loaded and f.rule_paths == [tmp_path / "r.fluo"]
    (case,) = f.cases
    assert case.problems == []
    assert case.only == ("slow", "quiet")
    assert set(case.labels) == {"x", "y", "5b8efff798038103d269b633813fc60c"} and len(case.spans) == 3
    assert case.expect is not None
    assert [e.to_json() for e in case.expect] == [
        {"rule": "slow"},
        {"rule": "slow", "trace": "x", "count": 2, "observed": {"matched": 1}},
        {"rule": "quiet", "trace_id": "5b8efff798038103d269b633813fc60c"},
    ]
    assert [e.line for e in case.expect] == [7, 8, 9]


def test_a_case_may_name_a_folder_of_traces(tmp_path: Path) -> None:
    """`traces: folder` loads its trace files, as `fluo eval --traces folder` does; an empty folder is a problem."""
    write(tmp_path, "r.fluo", RULES)
    write(tmp_path, "fixtures/b.json", "{}")
    write(tmp_path, "fixtures/sub/a.json.gz", "")
    write(tmp_path, "fixtures/notes.txt", "")
    (tmp_path / "empty").mkdir()
    body = "cases:\n  - name: all\n    traces: fixtures\n    expect: []\n  - name: none\n    traces: [empty]\n"
    write(tmp_path, "r_test.yaml", body)
    f = load_test_file(Path("r_test.yaml"))
    full, empty = f.cases
    assert full.traces == [(Path("fixtures/b.json"), 3), (Path("fixtures/sub/a.json.gz"), 3)]
    assert full.folders == [Path("fixtures")]  # watched too: a file added to it starts a run
    os.utime(tmp_path / "fixtures", ns=(1, 1))
    before = stamps([], full.folders)
    write(tmp_path, "fixtures/c.json", "{}")
    assert changed(before, stamps([], full.folders)) == [str(tmp_path / "fixtures")]
    assert [(p.line, p.message, p.code) for p in empty.problems] == [
        (6, "case 'none': no trace files (OTLP JSON or protobuf) in folder empty", "test-file")
    ]


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (
            "- name: a\n  spans: [{name: a}]\n  expect:\n    - {rule: slow, count: -1}\n",
            6,
            "`count:` must be a whole number",
        ),
        (
            "- name: a\n  spans: [{name: a}]\n  expect:\n    - {rule: slow, count: 1000000000}\n",
            6,
            "`count:` may be at most 1,000,000, got 1000000000",
        ),
        ("- name: a\n  spans: [{name: a}]\n  expect: [{rule: slow, trace_id: xyz}]\n", 5, "must be 32 hex digits"),
        ("- name: a\n  spans: [{name: a}]\n  expect: [{rule: slow, trace: t}]\n", 5, "no inline trace labelled 't'"),
        (
            "- name: a\n  spans: [{name: a, trace: t}]\n  expect: [{rule: slow, trace_id: " + "a" * 32 + "}]\n",
            5,
            f"no trace of this case has trace_id {'a' * 32}; its inline traces are labelled 't': say `trace:`",
        ),
        ("- name: a\n  spans: [{name: a}]\n  expect: [{rule: slow, trace: [t]}]\n", 5, "`trace:` must be a label"),
        (
            "- name: a\n  spans: [{name: a}]\n  expect: [{rule: slow, observed: 3}]\n",
            5,
            "`observed:` must be a mapping",
        ),
        ("- name: a\n  spans: [{name: a}]\n  expect: [{count: 2}]\n", 5, "an expected signal needs `rule:`"),
        ("- name: a\n  spans: [{name: a}]\n  expect: {rule: slow}\n", 5, "`expect:` must be a list"),
        ("- name: a\n  spans: [{name: a}]\n  expect: [7]\n", 5, "an expected signal is a mapping"),
        (
            "- name: a\n  spans: [{name: a}]\n  only: [slo]\n  expect: []\n",
            5,
            "no rule `slo` in r.fluo; did you mean `slow`?",
        ),
        ("- name: a\n  spans: {name: a}\n  expect: []\n", 4, "`spans:` must be a list"),
        (
            "- name: a\n  spans: [{name: a}]\n  only: quiet\n  expect: [slow]\n",
            6,
            "rule `slow` does not run in this case",
        ),
        ("- name: a\n  traces: [3]\n  expect: []\n", 4, "`traces:` must be a trace file"),
        ("- name: a\n  expect: []\n", 3, "case 'a' has no `traces:` or `spans:`"),
        ("- spans: [{name: a}]\n  expect: []\n", 3, "every case needs a `name:`"),
        # QA: an empty name was told it "needs a `name:` (text)", which it has
        ("- name: ''\n  spans: [{name: a}]\n  expect: []\n", 3, "the case's `name:` is empty: every case needs a name"),
        ("- name: ' '\n  spans: [{name: a}]\n  expect: []\n", 3, "the case's `name:` is only spaces"),
        # QA: `only: []` ran no rule and passed `expect: []`, testing nothing
        (
            "- name: a\n  spans: [{name: a}]\n  only: []\n  expect: []\n",
            5,
            "case 'a': `only: []` names no rule, so no rule would run; name the rules to run, or leave `only:` out",
        ),
        (
            "- name: no\n  spans: [{name: a}]\n  expect: []\n",
            3,
            "`name: no` is read by YAML as a boolean (False), not text: quote it, like `name: 'no'`",
        ),
        (
            "- {spans: [{name: a}], name: 404, expect: []}\n",
            3,
            "`name: 404` is read by YAML as a number (404), not text: quote it, like `name: '404'`",
        ),
        ("- name: 1.5 # why\n  spans: [{name: a}]\n  expect: []\n", 3, "`name: 1.5` is read by YAML as a number"),
        ("- just text\n", 3, "a case is a mapping"),
        (
            "- name: a\n  spans:\n  - name: a\n    attributes:\n      ok: 1\n"
            "      big: 99999999999999999999\n  expect: []\n",
            8,
            "case 'a': span 1 ('a'), `attributes`: `big`: 99999999999999999999 is out of range for a 64-bit integer",
        ),
        (
            "- name: a\n  spans: [{name: a, resource: {sizes: [1, -9223372036854775809]}}]\n  expect: []\n",
            4,
            "`resource`: `sizes[1]`: -9223372036854775809 is out of range for a 64-bit integer",
        ),
        (
            "- name: a\n  spans: [{name: a, trace: t}]\n  expect: [{rule: slow, trace: on}]\n",
            5,
            "`trace: on` is read by YAML as a boolean (True), not text: quote it, like `trace: 'on'`",
        ),
        (
            "- name: a\n  spans: [{name: a, trace: off}]\n  expect: []\n",
            4,
            "case 'a': span 1 ('a'), `trace`: `trace: off` is read by YAML as a boolean (False), not text: quote it",
        ),
        (
            "- name: a\n  spans: [{name: a}]\n  expect: [{rule: yes}]\n",
            5,
            "`rule: yes` is read by YAML as a boolean (True), not text: quote it, like `rule: 'yes'`",
        ),
        (
            "- name: a\n  spans: [{name: a}]\n  only: on\n  expect: []\n",
            5,
            "`only: on` is read by YAML as a boolean (True), not text: quote it, like `only: 'on'`",
        ),
        (
            "- name: a\n  spans: [{name: a}]\n  only: [slow, no]\n  expect: []\n",
            5,
            "`no` is read by YAML as a boolean (False), not text: quote it, like `'no'`",
        ),
        ("- name: a\n  spans: [{name: a}]\n  expect: [null]\n", 5, "`null` is read by YAML as null (None)"),
        ("- name: a\n  spans: [{name: a}]\n  expect: [slo]\n", 5, "case 'a': no rule `slo` in r.fluo"),
        (
            "- {name: a, spans: [{name: a}], expect: []}\n- {name: a, spans: [{name: a}], expect: []}\n",
            4,
            "another case is named 'a' (line 3)",
        ),
    ],
)
def test_case_problems_point_at_their_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    write(tmp_path, "r.fluo", RULES)
    write(tmp_path, "r_test.yaml", "# comment\ncases:\n" + body)
    f = load_test_file(Path("r_test.yaml"))  # named from its folder: reported so
    assert f.loaded
    problems = [p for c in f.cases for p in c.problems]
    assert problems, "expected a problem"
    assert problems[0].line == line
    assert message in problems[0].message
    assert problems[0].format() == f"r_test.yaml:{line}: {problems[0].message}"


def test_an_expect_with_nothing_under_it_is_not_written_yet(tmp_path: Path) -> None:
    """It read as `expect: []`, so a case whose `expect:` held only a comment passed when nothing fired."""
    write(tmp_path, "r.fluo", RULES)
    body = "cases:\n  - name: a\n    spans: [{name: a}]\n    expect:\n      # to do\n"
    (case,) = load_test_file(write(tmp_path, "r_test.yaml", body)).cases
    assert case.expect is None and case.problems == []
    runner = Runner()
    (result,) = runner.run(runner.load([tmp_path / "r_test.yaml"])).cases
    assert result.status == "error" and "has no `expect:`" in result.problems[0].message


def test_a_fixture_that_is_no_regular_file_is_said_to_be_so(tmp_path: Path) -> None:
    """`traces: /dev/zero` read "trace file /dev/zero does not exist"; reading it would never end."""
    write(tmp_path, "r.fluo", RULES)
    body = "cases:\n  - name: a\n    traces: /dev/zero\n    expect: []\n"
    (case,) = load_test_file(write(tmp_path, "r_test.yaml", body)).cases
    assert [p.message for p in case.problems] == [
        "case 'a': `traces:` names trace files (*.json, *.jsonl, *.ndjson, *.pb, *.binpb, *.protobuf, each maybe .gz) "
        "or folders: /dev/zero is not one"  # by its name, before it is opened
    ]
    os.mkfifo(tmp_path / "pipe.json")  # named as a trace file: reading it would block
    (case,) = load_test_file(write(tmp_path, "r_test.yaml", body.replace("/dev/zero", "pipe.json"))).cases
    assert [p.message for p in case.problems] == [
        f"case 'a': trace file {tmp_path / 'pipe.json'} is not a regular file; give an OTLP file"
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[1, 2]\n", 1, "a test file is a mapping"),
        ("rules: r.fluo\n", 1, "`cases:` must be a non-empty list"),
        ("rules: r.fluo\ncases: []\n", 2, "`cases:` must be a non-empty list"),
        ("rules: [missing.fluo]\ncases: [{name: a}]\n", 1, "rule file missing.fluo does not exist"),
        ("rules: [3]\ncases: [{name: a}]\n", 1, "`rules:` must be a rule file or folder"),
        ("rules: empty\ncases: [{name: a}]\n", 1, "empty: no .fluo files in this folder"),
        ("rules: blank.fluo\ncases: [{name: a}]\n", 1, "no rules in blank.fluo: name .fluo files or folders that hold"),
        ("rules: r.fluo\ncases: [{name: a}]\nexpect: []\n", 3, "unknown key `expect` in the test file"),
        ("rules: bad.fluo\ncases: [{name: a}]\n", 1, "the rules do not check (1 error: FLUO300; run `fluo check`): "),
    ],
)
def test_file_problems(tmp_path: Path, text: str, line: int, message: str) -> None:
    write(tmp_path, "r.fluo", RULES)
    write(tmp_path, "bad.fluo", "rule b { detect trace.spans.count() > 'x' }\n")
    (tmp_path / "empty").mkdir()
    write(tmp_path, "blank.fluo", "// nothing yet\n")
    write(tmp_path, "x_test.yaml", text)
    f = load_test_file(Path("x_test.yaml"))
    assert not f.loaded
    assert f.problems[0].line == line
    assert message in f.problems[0].message


def test_rule_ids_yaml_reads_as_booleans_say_so_once_each(tmp_path: Path) -> None:
    """`expect: [on, off]` names rules `on` and `off` as YAML 1.1 reads them: True and False. Each gets the
    hint to quote it, as `name: yes` does; the same slip twice on a line is said once."""
    write(tmp_path, "r.fluo", "rule on { detect true }\nrule off { detect true }\n")
    write(tmp_path, "r_test.yaml", "rules: r.fluo\ncases:\n  - {name: c, spans: [{name: a}], expect: [on, off, on]}\n")
    (case,) = load_test_file(tmp_path / "r_test.yaml").cases
    assert [(p.line, p.message) for p in case.problems] == [
        (3, "`on` is read by YAML as a boolean (True), not text: quote it, like `'on'`"),
        (3, "`off` is read by YAML as a boolean (False), not text: quote it, like `'off'`"),
    ]
    write(tmp_path, "r_test.yaml", "rules: r.fluo\ncases:\n  - {name: c, spans: [{name: a}], expect: ['on', 'off']}\n")
    (case,) = load_test_file(tmp_path / "r_test.yaml").cases
    assert case.problems == [] and [e.rule for e in case.expect or []] == ["on", "off"]


def test_rules_may_be_a_folder_and_disabled_rules_cannot_be_expected(tmp_path: Path) -> None:
    write(tmp_path, "rules/a.fluo", RULES)
    write(tmp_path, "rules/b.fluo", "rule disabled_rule { enabled: false\n detect true }\n")
    f = load_test_file(
        write(
            tmp_path,
            "t_test.yaml",
            "rules: rules\ncases:\n  - {name: a, spans: [{name: a}], expect: [disabled_rule]}\n",
        )
    )
    assert f.loaded, f.problems
    (case,) = f.cases
    assert [p.message for p in case.problems] == ["case 'a': rule `disabled_rule` is disabled, so it never fires"]


_KEYS = [
    "rules",
    "cases",
    "name",
    "traces",
    "spans",
    "expect",
    "only",
    "rule",
    "count",
    "observed",
    "trace",
    "trace_id",
    "parent",
    "id",
    "duration",
    "start",
    "status",
    "kind",
    "attributes",
    "service",
    "resource",
]
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from(["r.fluo", "slow", "quiet", "20ms", "a", "x", "0", ""]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(_KEYS), _values, max_size=4))
def test_any_yaml_shape_loads_runs_and_reports_without_a_traceback(tmp_path_factory: Any, doc: dict[str, Any]) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    write(folder, "r.fluo", RULES)
    path = write(folder, "r_test.yaml", yaml.safe_dump(doc))
    runner = Runner()
    result = runner.run(runner.load([path]))
    assert result.exit_code in (0, 1, 2)
    text_report(result)
    json.dumps(json_report(result))
    junit_report(result)
    for problem in [p for f in result.files for p in f.file.problems] + [p for c in result.cases for p in c.problems]:
        assert "\n" not in problem.message and problem.line >= 1


def _replace_keeping_mtime(path: Path, text: str) -> None:
    """`path` replaced by a new file of `text` with the old one's modification time (an editor's save
    through rename, `cp -p`, `rsync -t`): the same mtime, another inode and change time."""
    st = os.stat(path)
    new = path.with_name(path.name + ".new")
    new.write_text(text)
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(new, path)
    assert os.stat(path).st_mtime_ns == st.st_mtime_ns


def test_a_fixture_replaced_with_its_mtime_kept_is_read_again(tmp_path: Path) -> None:
    """The fixture cache kept a fixture by its mtime alone: replaced by a file with the same mtime (and
    size), the next run of a `--watch` read the old spans."""
    write(tmp_path, "r.fluo", "rule failed { detect trace.spans.where(status == error).exists() }\n")
    trace = '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"%s","spanId":"%s","name":"a",'
    trace += '"startTimeUnixNano":"1","endTimeUnixNano":"2","status":{"code":%d}}]}]}]}\n'
    ids = ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
    write(tmp_path, "t.json", trace % (*ids, 1))
    write(tmp_path, "r_test.yaml", "cases:\n  - name: a\n    traces: t.json\n    expect: []\n")
    runner = Runner()
    (first,) = runner.run(runner.load([tmp_path / "r_test.yaml"])).cases
    assert first.status == "passed"
    _replace_keeping_mtime(tmp_path / "t.json", trace % (*ids, 2))  # the same size: ok (1) became error (2)
    (second,) = runner.run(runner.load([tmp_path / "r_test.yaml"])).cases
    assert second.status == "failed" and [s["rule"] for s in second.signals] == ["failed"]


def test_a_rule_file_replaced_with_its_mtime_kept_is_analysed_again(tmp_path: Path) -> None:
    """The rule cache of `fluo test` kept an analysis by the files' mtimes alone."""
    write(tmp_path, "r.fluo", "rule aaa { expect true }\n")
    loader = RuleLoader()
    assert [r.id for r in loader.analysis([tmp_path / "r.fluo"]).rules] == ["aaa"]
    _replace_keeping_mtime(tmp_path / "r.fluo", "rule bbb { expect true }\n")
    assert [r.id for r in loader.analysis([tmp_path / "r.fluo"]).rules] == ["bbb"]


def test_a_rule_file_saved_while_it_is_read_is_read_again_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA rev r06: the rule cache stamped the files after reading them, so a save landing in between kept the old
    text's analysis under the new file's stamp, and `fluo test --watch` ran the old rules until the next edit."""
    rules = write(tmp_path, "r.fluo", "rule old { expect true }\n")
    real = spec.read_sources

    def read_then_saved(paths: Any, **options: Any) -> Any:
        sources = real(paths, **options)
        rules.write_text("rule saved { expect true }\n", encoding="utf-8")
        return sources

    loader = RuleLoader()
    monkeypatch.setattr(spec, "read_sources", read_then_saved)
    assert [r.id for r in loader.analysis([rules]).rules] == ["old"]
    monkeypatch.setattr(spec, "read_sources", real)
    assert [r.id for r in loader.analysis([rules]).rules] == ["saved"]


def test_a_folder_below_that_cannot_be_read_raises_the_error_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Smalls: a folder the user may not read was a FileNotFoundError (its message said "Permission denied");
    `fluo test` still exits 2 with that message (test_testing_cli)."""
    locked = tmp_path / "sub"
    locked.mkdir()

    listed = folders.os.scandir

    def scandir(path: Any) -> Any:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(locked))
        return listed(path)

    monkeypatch.setattr(folders.os, "scandir", scandir)
    with pytest.raises(PermissionError) as caught:
        find_test_files([str(tmp_path)])
    assert str(caught.value) == f"cannot read {locked}: Permission denied"
