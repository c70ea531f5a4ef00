"""What `--update` writes (fluo_run.testing.update.expectations_from), and that it changes nothing else of the file."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from fluo_lang.values import HexBytes
from fluo_run.cli import main
from fluo_run.testing.document import load
from fluo_run.testing.matching import match_signals
from fluo_run.testing.spec import Expectation
from fluo_run.testing.update import _same, expectations_from, rewrite, write_replacing

A = "a" * 32
B = "b" * 32


def sig(rule: str, trace_id: str | None, **observed: Any) -> dict[str, Any]:
    return {"rule": rule, "trace_id": trace_id, "observed": observed, "severity": "warning", "span_ids": []}


def test_identical_signals_are_grouped_with_a_count_in_order() -> None:
    signals = [sig("r", A, n=1), sig("s", A), sig("r", A, n=1), sig("r", A, n=2)]
    assert expectations_from(signals, pin_traces=False) == [
        {"rule": "r", "count": 2, "observed": {"n": 1}},
        {"rule": "s"},
        {"rule": "r", "observed": {"n": 2}},
    ]


def test_traces_are_pinned_by_label_or_id() -> None:
    signals = [sig("r", A), sig("r", B), sig("w", None)]
    assert expectations_from(signals, {"first": A}) == [
        {"rule": "r", "trace": "first"},
        {"rule": "r", "trace_id": B},
        {"rule": "w"},  # a windowed signal has no trace
    ]


_signals = st.lists(
    st.builds(
        sig,
        st.sampled_from(["r", "s"]),
        st.sampled_from([A, B, None]),
        n=st.integers(0, 2),
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(_signals, st.booleans(), st.booleans())
def test_what_update_writes_always_passes(signals: list[dict[str, Any]], pin: bool, labelled: bool) -> None:
    labels = {"a": A} if labelled else {}
    written = expectations_from(signals, labels, pin_traces=pin)
    expectations = [Expectation(line=1, **e) for e in written]
    assert match_signals(expectations, signals, labels).ok


RULES = "rule err { detect trace.count(status == error) > 0 }\n"
ERR = "{rule: err, observed: {count: 1, bound: 0}}"


def updated(tmp_path: Path, text: str) -> str:
    """The test file `text` after `fluo test --update`, which must then pass and be left alone by a second update."""
    (tmp_path / "rules.fluo").write_text(RULES, encoding="utf-8")
    path = tmp_path / "t_test.yaml"
    path.write_bytes(text.encode("utf-8"))
    first = CliRunner().invoke(main, ["test", str(path), "--update"])
    assert first.exit_code == 0, first.output
    after = path.read_bytes().decode("utf-8")
    second = CliRunner().invoke(main, ["test", str(path), "--update"])
    assert second.exit_code == 0, second.output
    assert "updated" not in second.output
    assert path.read_bytes().decode("utf-8") == after
    return after


def test_an_added_expect_goes_before_the_blank_line_that_ends_the_case(tmp_path: Path) -> None:
    text = (
        "rules: rules.fluo\n"
        "cases:\n"
        "  - name: no expect yet\n"
        "    spans: [{name: checkout, service: checkout}, {name: db, parent: checkout, status: error}]\n"
        "\n"
        "  - name: quiet\n"
        "    spans: [{name: checkout}]\n"
        "    expect: []\n"
    )
    assert updated(tmp_path, text) == text.replace("error}]\n", f"error}}]\n    expect:\n      - {ERR}\n")


def test_a_replaced_expect_keeps_its_comment_and_the_blank_line_after_it(tmp_path: Path) -> None:
    text = (
        "rules: rules.fluo\n"
        "cases:\n"
        "  - name: failing, expect with trailing comment\n"
        "    spans: [{name: checkout}, {name: db, parent: checkout, status: error}]\n"
        "    expect: []   # TODO\n"
        "\n"
        "  - name: quiet\n"
        "    spans: [{name: checkout}]\n"
        "    expect: []\n"
    )
    assert updated(tmp_path, text) == text.replace("expect: []   # TODO\n", f"expect:   # TODO\n      - {ERR}\n")


def test_the_qa_report_only_gains_the_two_expectations(tmp_path: Path) -> None:
    text = (
        "rules: rules.fluo\n"
        "cases:\n"
        "  - name: no expect yet\n"
        "    spans: [{name: checkout, service: checkout}, {name: db, parent: checkout, status: error}]\n"
        "\n"
        "  - name: failing, expect with trailing comment\n"
        "    spans: [{name: checkout}, {name: db, parent: checkout, status: error}]\n"
        "    expect: []   # TODO\n"
        "\n"
        "  - name: untouched\n"
        "    spans: [{name: checkout, service: checkout, duration: 10ms},"
        " {name: db, parent: checkout, status: ok, kind: client, attributes: {a: 1}}]\n"
        "    expect: []\n"
    )
    assert updated(tmp_path, text) == (
        "rules: rules.fluo\n"
        "cases:\n"
        "  - name: no expect yet\n"
        "    spans: [{name: checkout, service: checkout}, {name: db, parent: checkout, status: error}]\n"
        "    expect:\n"
        f"      - {ERR}\n"
        "\n"
        "  - name: failing, expect with trailing comment\n"
        "    spans: [{name: checkout}, {name: db, parent: checkout, status: error}]\n"
        "    expect:   # TODO\n"
        f"      - {ERR}\n"
        "\n"
        "  - name: untouched\n"
        "    spans: [{name: checkout, service: checkout, duration: 10ms},"
        " {name: db, parent: checkout, status: ok, kind: client, attributes: {a: 1}}]\n"
        "    expect: []\n"
    )


UNTOUCHED = (
    "  - name: long flow list\n"
    "    spans: [{name: checkout, service: checkout, duration: 10ms},"
    " {name: db, parent: checkout, status: ok, kind: client, attributes: {a: 1}}, {name: cache, parent: checkout}]\n"
    "    expect: [ ]\n"
    "  - name: odd indentation\n"
    "    spans:\n"
    "    -   name: checkout\n"
    "        service: checkout\n"
    "    -   {name: db, parent: checkout, status: error}\n"
    "    expect: [ {rule: err} ]\n"
    "  - name: '\"quoted\" # not a comment'  # a comment\n"
    '    spans: [{name: "a"}]   # a comment\n'
    "    expect: [ ]  # nothing\n"
)


def test_cases_that_pass_are_left_as_written(tmp_path: Path) -> None:
    text = (
        "rules: rules.fluo\ncases:\n  - name: fails\n    spans: [{name: a, status: error}]\n    expect: []\n"
        + UNTOUCHED
    )
    assert updated(tmp_path, text) == text.replace("    expect: []\n", f"    expect:\n      - {ERR}\n", 1)


def test_a_new_list_is_indented_as_the_file_indents_its_lists(tmp_path: Path) -> None:
    text = (
        "rules: rules.fluo\n"
        "cases:\n"
        "- name: indentless\n"
        "  spans:\n"
        "  - {name: a, status: error}\n"
        "- name: wide\n"
        "  spans:\n"
        "      -   {name: a, status: error}\n"
        "  expect: []\n"
    )
    assert updated(tmp_path, text) == (
        "rules: rules.fluo\n"
        "cases:\n"
        "- name: indentless\n"
        "  spans:\n"
        "  - {name: a, status: error}\n"
        "  expect:\n"
        f"  - {ERR}\n"
        "- name: wide\n"
        "  spans:\n"
        "      -   {name: a, status: error}\n"
        "  expect:\n"
        f"      - {ERR}\n"
    )


def test_a_block_expect_is_replaced_with_its_items_and_its_comments_stay(tmp_path: Path) -> None:
    text = (
        "rules: rules.fluo\n"
        "cases:\n"
        "  - name: a\n"
        "    spans: [{name: a, status: error}]\n"
        "    expect:  # was wrong\n"
        "      - {rule: err, count: 2}  # it took the one signal: it stays as its entry\n"
        "      # about an entry that is gone: this stays where it stood\n"
        "      - err\n"
        "    # this one stays\n"
        "\n"
        "  # about b\n"
        "  - name: b\n"
        "    spans: [{name: a}]\n"
        "    expect:\n"
        "      - err\n"
        "# the end"
    )
    assert updated(tmp_path, text) == (
        "rules: rules.fluo\n"
        "cases:\n"
        "  - name: a\n"
        "    spans: [{name: a, status: error}]\n"
        "    expect:  # was wrong\n"
        f"      - {ERR}  # it took the one signal: it stays as its entry\n"
        "      # about an entry that is gone: this stays where it stood\n"
        "    # this one stays\n"
        "\n"
        "  # about b\n"
        "  - name: b\n"
        "    spans: [{name: a}]\n"
        "    expect: []\n"
        "# the end"
    )


def test_an_added_expect_follows_commented_out_lines_of_the_case(tmp_path: Path) -> None:
    text = (
        "rules: rules.fluo\n"
        "cases:\n"
        "  - name: a\n"
        "    spans:\n"
        "      - {name: a, status: error}\n"
        "      # - {name: b}\n"
        "  # about the next case\n"
        "  - name: b\n"
        "    spans: [{name: a}]"
    )
    assert updated(tmp_path, text) == (
        "rules: rules.fluo\n"
        "cases:\n"
        "  - name: a\n"
        "    spans:\n"
        "      - {name: a, status: error}\n"
        "      # - {name: b}\n"
        "    expect:\n"
        f"      - {ERR}\n"
        "  # about the next case\n"
        "  - name: b\n"
        "    spans: [{name: a}]\n"
        "    expect: []\n"
    )


def test_crlf_line_endings_and_a_byte_order_mark_are_kept(tmp_path: Path) -> None:
    text = "\ufeffrules: rules.fluo\r\ncases:\r\n  - name: a\r\n    spans: [{name: a, status: error}]\r\n\r\n"
    assert updated(tmp_path, text) == text.replace("}]\r\n", f"}}]\r\n    expect:\r\n      - {ERR}\r\n")


def test_cases_written_as_flow_mappings(tmp_path: Path) -> None:
    text = (
        "rules: rules.fluo\n"
        "cases:\n"
        "  - {name: a, spans: [{name: a, status: error}]}\n"
        "  - {name: b, spans: [{name: a}], expect: [err]}  # wrong\n"
    )
    assert updated(tmp_path, text) == (
        "rules: rules.fluo\n"
        "cases:\n"
        f"  - {{name: a, spans: [{{name: a, status: error}}], expect: [{ERR}]}}\n"
        "  - {name: b, spans: [{name: a}], expect: []}  # wrong\n"
    )


def test_an_expect_shared_through_an_alias_is_replaced_at_the_alias(tmp_path: Path) -> None:
    text = (
        "rules: rules.fluo\n"
        "cases:\n"
        "  - name: quiet\n"
        "    spans: [{name: a}]\n"
        "    expect: &none []\n"
        "  - name: fires\n"
        "    spans: [{name: a, status: error}]\n"
        "    expect: *none  # shared\n"
    )
    assert updated(tmp_path, text) == text.replace(" *none  # shared\n", f"  # shared\n      - {ERR}\n")


def test_an_anchor_in_a_replaced_expect_moves_to_its_first_alias(tmp_path: Path) -> None:
    text = (
        "rules: rules.fluo\n"
        "cases:\n"
        "  - name: fires\n"
        "    spans: [{name: a, status: error}]\n"
        "    expect: &none []\n"
        "  - name: quiet\n"
        "    spans: [{name: a}]\n"
        "    expect: *none\n"
        "  - name: quiet too\n"
        "    spans: [{name: b}]\n"
        "    expect: *none\n"
    )
    assert updated(tmp_path, text) == (
        "rules: rules.fluo\n"
        "cases:\n"
        "  - name: fires\n"
        "    spans: [{name: a, status: error}]\n"
        "    expect:\n"
        f"      - {ERR}\n"
        "  - name: quiet\n"
        "    spans: [{name: a}]\n"
        "    expect: &none []\n"
        "  - name: quiet too\n"
        "    spans: [{name: b}]\n"
        "    expect: *none\n"
    )


def test_a_case_that_merges_an_updated_case_keeps_the_expect_it_had(tmp_path: Path) -> None:
    text = (
        "rules: rules.fluo\n"
        "cases:\n"
        "  - &base\n"
        "    name: fires\n"
        "    spans: [{name: a, status: error}]\n"
        "    expect: []\n"
        "  - <<: *base\n"
        "    name: quiet\n"
        "    spans: [{name: a}]\n"
    )
    assert updated(tmp_path, text) == (
        "rules: rules.fluo\n"
        "cases:\n"
        "  - &base\n"
        "    name: fires\n"
        "    spans: [{name: a, status: error}]\n"
        "    expect:\n"
        f"      - {ERR}\n"
        "  - <<: *base\n"
        "    name: quiet\n"
        "    spans: [{name: a}]\n"
        "    expect: []\n"
    )


@pytest.mark.parametrize(
    ("written", "line"),
    [
        ({"s": "two\nlines"}, '{rule: r, observed: {s: "two\\nlines"}}'),
        ({"s": "on", "n": "1.0", "d": "20ms"}, "{rule: r, observed: {s: 'on', n: '1.0', d: 20ms}}"),
        ({"f": 1.0, "l": [1, 2], "u": "é"}, "{rule: r, observed: {f: 1.0, l: [1, 2], u: é}}"),
        # QA: PyYAML wrote `4.0e-07`; docs/testing.md says floats are written as signals write them
        (
            {"f": 4e-07, "g": 1e16, "h": -0.0, "i": 0.1 + 0.2},
            "{rule: r, observed: {f: 4e-07, g: 1e+16, h: -0.0, i: 0.30000000000000004}}",
        ),
    ],
)
def test_observed_values_are_written_on_one_line_to_read_back_the_same(written: dict[str, Any], line: str) -> None:
    text = "cases:\n  - name: a\n    expect:   # c\n"
    out = rewrite(text, {0: [{"rule": "r", "observed": written}]})
    assert out == f"cases:\n  - name: a\n    expect:   # c\n      - {line}\n"


def test_rewrite_sets_the_expect_of_the_cases_named_only() -> None:
    text = "cases:\n  - name: a\n    expect: [x]\n  - name: b\n    expect: [y]\n"
    assert (
        rewrite(text, {1: [{"rule": "z"}]})
        == "cases:\n  - name: a\n    expect: [x]\n  - name: b\n    expect:\n      - {rule: z}\n"
    )
    assert rewrite(text, {}) == text


def test_an_added_expect_goes_before_a_text_block_that_ends_the_case() -> None:
    text = (
        "cases:\n  - name: a\n    description: |+\n      kept as it is\n\n  - name: b\n    description: |\n      last"
    )
    assert rewrite(text, {0: [], 1: []}) == (
        "cases:\n  - name: a\n    expect: []\n    description: |+\n      kept as it is\n\n"
        "  - name: b\n    expect: []\n    description: |\n      last"
    )


_EXPECTS = [
    "",
    "expect: []  # todo",
    "expect:",
    "expect: &e{i} [err]",
    "expect: *e0  # shared",
    "expect: [\n{in}  {{rule: err}},\n{in}]  # m",
    "expect:  # b\n{in}{seq}- {{rule: err}}  # it\n{in}{seq}# about err\n{in}{seq}- err",
]
_REST = [
    "",
    "description: |\n{in}  text",
    "description: |+\n{in}  text\n",
    "traces:\n{in}{seq}- t.json\n{in}{seq}# - u.json",
]


@st.composite
def _test_files(draw: st.DrawFn) -> tuple[str, dict[int, Any]]:
    offset, gap, nl = (
        draw(st.sampled_from([0, 2])),
        draw(st.sampled_from([1, 3])),
        draw(st.sampled_from(["\n", "\r\n"])),
    )
    lines = ["rules: rules.fluo  # c", "cases:"]
    writes: dict[int, Any] = {}
    anchored = False  # `*e0` needs case 0's `&e0`
    for i in range(draw(st.integers(1, 4))):
        key = " " * (offset + 1 + gap)
        fill = {"in": key, "seq": " " * draw(st.sampled_from([0, 2])), "i": i}
        expect = draw(st.sampled_from([e for e in _EXPECTS if anchored or "*e0" not in e]))
        anchored = anchored or "&e0" in expect.format(**fill)
        lines += [" " * offset + "-" + " " * gap + f"name: c{i}", key + "spans: [{name: a}]   # s"]
        lines += [key + part.format(**fill) for part in (expect, draw(st.sampled_from(_REST))) if part]
        lines += draw(st.sampled_from([[], [""], [" " * offset + "# next"]]))
        if draw(st.booleans()):
            writes[i] = draw(st.sampled_from([[], [{"rule": "err", "observed": {"count": 1}}], ["a", "b"]]))
    return nl.join(lines) + draw(st.sampled_from([nl, ""])), writes


@settings(max_examples=300, deadline=None)
@given(_test_files())
def test_rewrite_changes_only_the_expectations_it_writes(file: tuple[str, dict[int, Any]]) -> None:
    text, writes = file
    out = rewrite(text, writes)  # reads the result back and raises if anything but those expectations changed
    assert rewrite(out, writes) == out


def test_an_updated_truncation_signal_is_an_expectation_the_next_run_accepts(tmp_path: Path) -> None:
    (tmp_path / "w.fluo").write_text("rule quiet { window 1ms expect window.traces.count() > 0 }\n")
    test = tmp_path / "w_test.yaml"
    test.write_text(
        "rules: w.fluo\ncases:\n  - name: far apart\n    spans:\n"
        "      - {name: a, trace: one}\n      - {name: b, trace: two, start: 1m}\n"
    )
    first = CliRunner().invoke(main, ["test", str(test), "--update"])
    assert first.exit_code == 0, first.output
    assert "{rule: fluo.evaluation_truncated, observed: {empty_windows: 59999," in test.read_text()
    again = CliRunner().invoke(main, ["test", str(test)])
    assert again.exit_code == 0, again.output
    assert "1 passed" in again.output


# text that YAML (or the loader's YAML 1.2 exponent floats) would read as something else
AMBIGUOUS = [
    *["1e5", "1E5", "-1e-5", "+1.5e3", ".5e2", "1.e5", "4.0e-07", "00000000000001e5", "1.0", "1", "-0", "1_000"],
    *["007", "0o17", "0x1F", "0b101", "1:30", ".inf", "-.inf", ".Inf", ".NAN", ".nan", "inf", "NaN", "Infinity"],
    *["true", "False", "yes", "No", "on", "OFF", "y", "N", "null", "Null", "~", "", "2001-12-14", "<<", "="],
    *[" lead", "trail ", "#x", "a: b", "- x", "@x", "*x", "&x", "!x", "%x", "[x]", "{x}", "? x", "|", "'q'", '"q"'],
]


@pytest.mark.parametrize("value", AMBIGUOUS)
def test_text_that_reads_as_something_else_is_quoted_and_reads_back_as_text(value: str) -> None:
    text = "cases:\n  - name: a\n    expect: []\n"
    written = [{"rule": "r", "observed": {"v": value, value: 1}}]
    assert load(rewrite(text, {0: written}))["cases"][0]["expect"] == written


@pytest.mark.parametrize("brk", ["\n", "\r", "\r\n", "\x85", "\u2028", "\u2029"])
def test_text_with_a_line_break_is_written_escaped_on_its_line_and_reads_back(brk: str) -> None:
    """QA: U+0085 (NEL) was written as it is in single quotes, which YAML folds (to a space), so `--update`
    stopped on its own check with a traceback; U+2028 and U+2029 were written as they are, lines no editor
    counts. Every character YAML reads as a line break is escaped in double quotes, in values and keys."""
    text = "cases:\n  - name: a\n    expect: []\n"
    value = f"{brk}x{brk}"
    written = [{"rule": "r", "observed": {"v": value, value: 1}}]
    out = rewrite(text, {0: written})
    assert out.splitlines() == out.split("\n")[:-1]
    assert load(out)["cases"][0]["expect"] == written


def test_update_records_an_observed_text_with_a_next_line_character(tmp_path: Path) -> None:
    (tmp_path / "r.fluo").write_text('rule v { expect trace.root.attributes["v"] == "zzz" }\n')
    test = tmp_path / "r_test.yaml"
    test.write_text('rules: r.fluo\ncases:\n  - name: one\n    spans: [{name: a, attributes: {v: "\\u0085nel"}}]\n')
    result = CliRunner().invoke(main, ["test", str(test), "--update"])
    assert result.exit_code == 0, result.output
    assert '"\\Nnel"' in test.read_text(encoding="utf-8")
    again = CliRunner().invoke(main, ["test", str(test)])
    assert again.exit_code == 0, again.output


def test_update_writes_a_bidi_or_c1_control_escaped_and_it_reads_back(tmp_path: Path) -> None:
    """Security r04: a span value holding U+202E ("Trojan Source") was written raw into the test file under
    review, where it turns the rest of the line around; PyYAML writes it raw even in double quotes. Such text is
    double-quoted with the character escaped (`\\u202e`), in values and keys, and reads back the same."""
    (tmp_path / "r.fluo").write_text('rule v { expect trace.root.attributes["v"] == "zzz" }\n')
    test = tmp_path / "r_test.yaml"
    test.write_text(
        'rules: r.fluo\ncases:\n  - name: one\n    spans: [{name: a, attributes: {v: "pay \\u202e5 \\u009b"}}]\n'
    )
    result = CliRunner().invoke(main, ["test", str(test), "--update"])
    assert result.exit_code == 0, result.output
    text = test.read_text(encoding="utf-8")
    assert '"pay \\u202e5 \\x9B"' in text
    assert not [c for c in text if c in "\u202e\u009b"]
    again = CliRunner().invoke(main, ["test", str(test)])
    assert again.exit_code == 0, again.output
    written = [{"rule": "r", "observed": {"v": "\u2066x\u200f", "\u202ekey": 1}}]
    out = rewrite("cases:\n  - name: a\n    expect: []\n", {0: written})
    assert out.isascii() and load(out)["cases"][0]["expect"] == written


def test_update_records_an_observed_text_that_looks_like_an_exponent(tmp_path: Path) -> None:
    (tmp_path / "r.fluo").write_text('rule v { detect trace.root.attributes["v"] == "1e5" }\n')
    test = tmp_path / "r_test.yaml"
    test.write_text('rules: r.fluo\ncases:\n  - name: one\n    spans: [{name: a, attributes: {v: "1e5"}}]\n')
    result = CliRunner().invoke(main, ["test", str(test), "--update"])
    assert result.exit_code == 0, result.output
    again = CliRunner().invoke(main, ["test", str(test)])
    assert again.exit_code == 0, again.output


FAILING = "rules: rules.fluo\ncases:\n  - name: c\n    spans: [{name: x, status: error}]\n    expect: []\n"


def test_update_replaces_the_file_keeping_its_mode_and_never_truncates_it(tmp_path: Path) -> None:
    """The file was truncated, then written: a reader (an editor, an interrupted run) could see it empty or half
    written. The new text goes to a file next to it that then takes its place, with the file's mode."""
    path = tmp_path / "t_test.yaml"
    path.write_text(FAILING, encoding="utf-8")
    path.chmod(0o640)
    with path.open(encoding="utf-8") as reader:  # holds the file as it was
        after = updated(tmp_path, FAILING)
        assert reader.read() == FAILING
    assert ERR in after
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rules.fluo", "t_test.yaml"]  # no temporary file left


def test_update_through_a_symlink_rewrites_the_file_it_names(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "t_test.yaml"
    real.write_text(FAILING, encoding="utf-8")
    (tmp_path / "rules.fluo").write_text(RULES, encoding="utf-8")
    (tmp_path / "real" / "rules.fluo").write_text(RULES, encoding="utf-8")
    link = tmp_path / "t_test.yaml"
    link.symlink_to(real)
    result = CliRunner().invoke(main, ["test", str(link), "--update"])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and ERR in real.read_text(encoding="utf-8")


def test_an_interrupted_write_leaves_the_file_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t_test.yaml"
    path.write_text(FAILING, encoding="utf-8")

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_replacing(path, b"new")
    assert path.read_text(encoding="utf-8") == FAILING
    assert [p.name for p in tmp_path.iterdir()] == ["t_test.yaml"]


def test_update_keeps_count_zero_entries_that_held_and_says_what_it_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA: `--update` replaced `expect:` whole, dropping a `count: 0` guard that still held, and its comment."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules.fluo").write_text(RULES + 'rule quiet { detect trace.count(name == "never") > 0 }\n')
    path = tmp_path / "t_test.yaml"
    path.write_text(
        "rules: rules.fluo\ncases:\n  - name: a\n    spans: [{name: a, status: error}]\n    expect:\n"
        "      # quiet must stay quiet here\n"
        "      - {rule: quiet, count: 0}  # a guard\n"
        "      - {rule: err, count: 0}  # a guard that broke\n"
    )
    result = CliRunner().invoke(main, ["test", "t_test.yaml", "--update"])
    assert result.exit_code == 0, result.output
    assert path.read_text() == (
        "rules: rules.fluo\ncases:\n  - name: a\n    spans: [{name: a, status: error}]\n    expect:\n"
        "      # quiet must stay quiet here\n"
        "      - {rule: quiet, count: 0}  # a guard\n"
        f"      - {ERR}\n"
        "      # a guard that broke\n"
    )
    assert "kept 1 `count: 0` entry that held in t_test.yaml::a\n" in result.stderr
    assert "dropped {rule: err, count: 0} (line 8) in t_test.yaml::a: a signal like it fired" in result.stderr
    assert "kept the comment on line 8 of an entry that is gone (line 8) where it stood in t_test.yaml::a" in (
        result.stderr
    )
    assert CliRunner().invoke(main, ["test", "t_test.yaml"]).exit_code == 0


QUIET = 'rule quiet { detect trace.count(name == "never") > 0 }\nrule slow { detect trace.duration > 1h }\n'


def test_a_comment_stays_beside_the_entry_it_annotates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: `--update` kept the comments of `expect:` but put them all at the top of the new list, away from the
    entries they were about, and dropped the comment after any entry but a `count: 0` one. Now the comments on
    the lines above an entry, inside it and after it go with it when it stays (a held guard, or an entry that
    matched a signal, which the new list states); those of an entry that is gone stay where it stood, and
    stderr says which lines they are on."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules.fluo").write_text(RULES + QUIET, encoding="utf-8")
    path = tmp_path / "t_test.yaml"
    path.write_text(
        "rules: rules.fluo\ncases:\n  - name: a\n    spans: [{name: a, status: error}]\n    expect:\n"
        "      # quiet must stay quiet here\n"
        "      - {rule: quiet, count: 0}  # a guard\n"
        "      # slow does not fire here any more\n"
        "      - slow  # it was slow\n"
        "      # the error of span a\n"
        "      - rule: err  # the rule\n"
        "        # any trace\n"
        "        count: 1  # once\n"
        "    # after the list\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["test", "t_test.yaml", "--update"])
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == (
        "rules: rules.fluo\ncases:\n  - name: a\n    spans: [{name: a, status: error}]\n    expect:\n"
        "      # quiet must stay quiet here\n"
        "      - {rule: quiet, count: 0}  # a guard\n"
        "      # slow does not fire here any more\n"
        "      # it was slow\n"
        "      # the error of span a\n"
        "      # the rule\n"
        "      # any trace\n"
        f"      - {ERR}  # once\n"
        "    # after the list\n"
    )
    assert (
        "kept the comments on lines 8, 9 of an entry that is gone (line 9) where it stood in t_test.yaml::a\n"
        in result.stderr
    )
    assert CliRunner().invoke(main, ["test", "t_test.yaml"]).exit_code == 0


def test_comments_follow_their_entries_when_the_new_list_orders_them_otherwise(tmp_path: Path) -> None:
    """The new list is in the order the signals fired (`b` first: it comes first in the rules); each entry's
    comments move with it."""
    rules = 'rule b { detect trace.count(name == "b") > 0 }\nrule a { detect trace.count(name == "a") > 0 }\n'
    (tmp_path / "rules.fluo").write_text(rules, encoding="utf-8")
    path = tmp_path / "t_test.yaml"
    path.write_text(
        "rules: rules.fluo\ncases:\n  - name: two\n"
        "    spans: [{name: a, trace: one}, {name: b, trace: one}, {name: a, trace: two}]\n"
        "    expect:\n"
        "      # a in two\n"
        "      - {rule: a, trace: two}  # the second a\n"
        "      - {rule: a, trace: one}  # a in one\n"
        "      # b: twice?\n"
        "      - {rule: b, count: 2}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["test", str(path), "--update"])
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8").split("    expect:\n", 1)[1] == (
        "      # b: twice?\n"
        "      - {rule: b, trace: one, observed: {count: 1, bound: 0}}\n"
        "      - {rule: a, trace: one, observed: {count: 1, bound: 0}}  # a in one\n"
        "      # a in two\n"
        "      - {rule: a, trace: two, observed: {count: 1, bound: 0}}  # the second a\n"
    )
    assert "kept the comment" not in result.stderr  # no entry is gone


def test_entries_that_stay_as_one_give_it_their_comments() -> None:
    """Two old entries stated by one new entry (`stays`: both stay as entry 0): the first one's comment after
    it stays after it, the other's goes above it, after their comments above; with no `stays` (`rewrite` told
    nothing of the old entries) every comment is kept, in order, at the top."""
    text = (
        "cases:\n  - name: a\n    expect:\n"
        "      # first\n      - r  # one\n"
        "      # second\n      - r  # two\n"
        "      - {rule: s}  # gone\n"
    )
    writes = {0: [{"rule": "r", "count": 2}]}
    assert rewrite(text, writes, {0: [0, 0, None]}) == (
        "cases:\n  - name: a\n    expect:\n"
        "      # first\n      # second\n      # two\n      - {rule: r, count: 2}  # one\n"
        "      # gone\n"
    )
    assert rewrite(text, writes) == (
        "cases:\n  - name: a\n    expect:\n"
        "      # first\n      # one\n      # second\n      # two\n      # gone\n      - {rule: r, count: 2}\n"
    )


def test_the_comments_of_a_flow_list_on_several_lines_stay_beside_their_entries(tmp_path: Path) -> None:
    """QA: the comments inside an `expect: [...]` written on several lines were dropped, with no note: a flow
    list's comments are placed as a block list's are, and those above its `]` stay at the end of the list."""
    (tmp_path / "rules.fluo").write_text(RULES + QUIET, encoding="utf-8")
    path = tmp_path / "t_test.yaml"
    path.write_text(
        "rules: rules.fluo\ncases:\n  - name: b\n    spans: [{name: a, status: error}]\n    expect: [\n"
        "      err,  # this one fires\n      slow,  # wrong\n      # the end\n    ]  # after\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["test", str(path), "--update"])
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8").split("  - name: b\n", 1)[1] == (
        "    spans: [{name: a, status: error}]\n    expect:  # after\n"
        f"      - {ERR}  # this one fires\n      # wrong\n      # the end\n"
    )
    assert "kept the comment on line 7 of an entry that is gone (line 7)" in result.stderr
    text = (
        "cases:\n  - name: a\n    expect: [  # the list\n      # above x\n      x,  # after x\n"
        '      {rule: y,  # in y\n       count: 2}, "#z",\n    ]\n'
    )
    assert rewrite(text, {0: [{"rule": "x"}, {"rule": "y"}]}, {0: [0, 1, None]}) == (
        "cases:\n  - name: a\n    expect:\n"
        "      # the list\n      # above x\n      - {rule: x}  # after x\n      # in y\n      - {rule: y}\n"
    )


def test_update_with_an_empty_path_rewrites_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: `fluo test --update "$TESTS"` with the variable unset rewrote the expectations of every failing case
    under the current folder, as `fluo fmt ''` once rewrote its rule files. Refused; without --update, '' still
    reads the current folder, as `.`."""
    (tmp_path / "rules.fluo").write_text("rule r { detect trace.spans.count() > 0 }\n", encoding="utf-8")
    test = tmp_path / "r_test.yaml"
    text = "rules: rules.fluo\ncases:\n  - name: c\n    spans: [{name: a}]\n    expect: []\n"
    test.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["test", "--update", ""])
    assert result.exit_code == 2
    assert result.stderr == (
        "fluo: an empty path names no test file or folder to --update; give `.` for the current folder\n"
    )
    assert test.read_text(encoding="utf-8") == text
    assert CliRunner().invoke(main, ["test", ""]).exit_code == 1  # the case fails: read, not refused
    assert CliRunner().invoke(main, ["test", "--update", "."]).exit_code == 0
    assert test.read_text(encoding="utf-8") != text


def _otlp_attr(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


def _bytes_value(hex_text: str) -> dict[str, Any]:
    return {"bytesValue": base64.b64encode(bytes.fromhex(hex_text)).decode()}


def _every_kind_of_value() -> dict[str, Any]:
    """OTLP/JSON of a trace whose values are of each kind `observed` holds: bytes (alone, in a list, in a map;
    `1234` and `1e50` read back as numbers unless quoted), lists, maps, NaN, infinity and missing values."""
    t0 = 1767225600_000_000_000
    tid = "0abc0000000000000000000000000001"
    items = [_bytes_value("1234"), _bytes_value("1e50"), {"intValue": "1"}, {"stringValue": "x"}]
    items += [{"doubleValue": 2.5}, {"boolValue": True}, {}]
    inside = [_otlp_attr("in", {"kvlistValue": {"values": [_otlp_attr("j", {"intValue": "3"})]}})]
    root = {
        **{"traceId": tid, "spanId": "0000000100000001", "name": "root", "kind": 2},
        **{"startTimeUnixNano": str(t0), "endTimeUnixNano": str(t0 + 5_000_000)},
        "attributes": [
            _otlp_attr("b", _bytes_value("deadbeef")),
            _otlp_attr("arr", {"arrayValue": {"values": items}}),
            _otlp_attr("m", {"kvlistValue": {"values": [_otlp_attr("k", _bytes_value("0001")), *inside]}}),
        ],
    }
    child = {
        **{"traceId": tid, "spanId": "0000000100000002", "parentSpanId": "0000000100000001", "name": "c"},
        **{"kind": 1, "startTimeUnixNano": str(t0 + 1_000_000), "endTimeUnixNano": str(t0 + 2_000_000)},
        "attributes": [_otlp_attr("z", {"doubleValue": "NaN"}), _otlp_attr("i", {"doubleValue": "Infinity"})],
    }
    service = _otlp_attr("service.name", {"stringValue": "s"})
    return {"resourceSpans": [{"resource": {"attributes": [service]}, "scopeSpans": [{"spans": [root, child]}]}]}


EVERY_KIND_RULES = """\
rule v_bytes { expect trace.root.b == "nomatch" }
rule v_list { expect trace.root.arr == [9] }
rule v_map { expect trace.root.m == "x" }
rule v_span { expect trace.root == trace.root.parent }
rule v_time { expect trace.root.end < trace.root.start }
rule v_duration { expect trace.root.duration > 1h }
rule v_nan { expect trace.spans.max(z) < 0 }
rule v_inf { expect trace.spans.max(i) < 0 }
rule v_times { expect [trace.root.end, 1] == [trace.root.start, 2] }
"""


def test_update_records_observed_values_of_every_kind_and_the_next_run_passes(tmp_path: Path) -> None:
    """Conformance tour r01: a bytes attribute (read as hex text, a `HexBytes`) made `--update` stop with
    PyYAML's "cannot represent an object" traceback. Each kind of value `observed` holds is written and
    read back as the signal has it."""
    (tmp_path / "r.fluo").write_text(EVERY_KIND_RULES)
    (tmp_path / "t.json").write_text(json.dumps(_every_kind_of_value()))
    test = tmp_path / "r_test.yaml"
    test.write_text("rules: [r.fluo]\ncases:\n  - name: every kind\n    traces: t.json\n")
    first = CliRunner().invoke(main, ["test", str(test), "--update"])
    assert first.exit_code == 0, first.output
    text = test.read_text()
    assert "{rule: v_bytes, observed: {b: deadbeef, bound: nomatch}}" in text
    assert "arr: ['1234', '1e50', 1, x, 2.5, true, null]" in text
    assert "m: {k: '0001', in: {j: 3}}" in text
    assert "{rule: v_span, observed: {root: '0000000100000001', parent: null}}" in text
    assert "{rule: v_nan, observed: {max: NaN, bound: 0}}" in text
    assert len(load(text)["cases"][0]["expect"]) == EVERY_KIND_RULES.count("rule ")
    again = CliRunner().invoke(main, ["test", str(test)])
    assert again.exit_code == 0, again.output
    assert "1 passed" in again.output


_observed_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=6)
    | st.binary(max_size=4).map(lambda b: HexBytes(b.hex()))
    | st.sampled_from(["NaN", "Infinity", "-Infinity", "250ms", "2026-01-01T00:00:00.000000000Z"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=4), _observed_values, max_size=4))
def test_observed_values_of_any_kind_are_written_to_read_back_the_same(observed: dict[str, Any]) -> None:
    """`rewrite` reads what it writes back and raises if it differs: every kind of value `to_json` gives
    `observed` (text of its own class too: `HexBytes`) is written and read back as it was."""
    written = [{"rule": "r", "observed": observed}]
    out = rewrite("cases:\n  - name: a\n    expect: []\n", {0: written})
    assert _same(load(out)["cases"][0]["expect"], written)
