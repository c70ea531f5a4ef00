"""Unit tables for the language server's conversions, settings and incremental analysis."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lsprotocol import types as lsp

from fluo_lang import api, parser, regex
from fluo_lang import builtins as b
from fluo_lang.ast import Span
from fluo_lang.diagnostics import Diagnostic
from fluo_lang.parser import MAX_RULE_NODES
from fluo_lsp.actions import _new_errors, code_actions
from fluo_lsp.actions import test_file_actions as quick_fixes_of_test_file
from fluo_lsp.completion import complete, signature_help
from fluo_lsp.completion import test_file_rule_ids as rule_ids_in_test_file
from fluo_lsp.document import RuleDocument, split
from fluo_lsp.hover import hover_at
from fluo_lsp.outline import folding_ranges, semantic_tokens, symbols
from fluo_lsp.positions import LineIndex, span_range
from fluo_lsp.reporting import document_diagnostics
from fluo_lsp.settings import Settings
from fluo_lsp.testfiles import read_test_file
from fluo_lsp.workspace import TestProblem as Problem
from fluo_lsp.workspace import Workspace, _may_define

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples" / "rules").glob("*.fluo"))

TEXT = 'ab\nx𝄞é = "q"\n\nlast'


@pytest.mark.parametrize(
    ("offset", "line", "character"),
    [
        (0, 0, 0),
        (2, 0, 2),  # end of the first line
        (3, 1, 0),
        (4, 1, 1),  # before the G clef
        (5, 1, 3),  # after it: two UTF-16 code units
        (6, 1, 4),  # after é: one
        (13, 2, 0),  # the empty line
        (18, 3, 4),  # end of text
        (99, 3, 4),  # clamped
    ],
)
def test_offsets_to_utf16_positions_and_back(offset: int, line: int, character: int) -> None:
    index = LineIndex(TEXT)
    pos = index.position(offset)
    assert (pos.line, pos.character) == (line, character)
    assert index.offset(pos) == min(offset, len(TEXT))


def test_positions_past_a_line_end_mean_its_end() -> None:
    index = LineIndex(TEXT)
    assert index.offset(lsp.Position(line=0, character=40)) == 2
    assert index.offset(lsp.Position(line=1, character=40)) == 12
    assert index.offset(lsp.Position(line=9, character=0)) == len(TEXT)


def test_span_range_shifts_by_the_chunk_base() -> None:
    index = LineIndex(TEXT)
    span = Span(1, 3, 0, 1, 0, 3)
    assert span_range(index, span, base=3) == lsp.Range(
        start=lsp.Position(line=1, character=1), end=lsp.Position(line=1, character=4)
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, Settings()),
        ({}, Settings()),
        ({"fluo": {"strictness": "strict"}}, Settings(strict=True)),
        ({"strictness": "strict", "attributeKeys": ["a", 3, "", "b"]}, Settings(("a", "b"), True)),
        ({"fluo": {"diagnostics": {"debounceMs": 0}}}, Settings(debounce_ms=0.0)),
        ({"fluo": {"diagnostics": {"debounceMs": "fast"}, "strictness": "loud"}}, Settings()),
        ({"fluo": {"diagnostics": {"debounceMs": True}}}, Settings()),
        ({"fluo": {"completion": {"ruleSkeletons": False}}}, Settings(rule_skeletons=False)),
        ({"fluo": {"completion": {"ruleSkeletons": "no"}}}, Settings()),
        ({"fluo": {"completion": False}}, Settings()),
    ],
)
def test_settings_from_client_json(raw: object, expected: Settings) -> None:
    assert Settings().merged(raw) == expected


def test_settings_update_keeps_what_is_not_given() -> None:
    first = Settings().merged({"fluo": {"attributeKeys": ["k"], "strictness": "strict"}})
    assert first.merged({"fluo": {"diagnostics": {"debounceMs": 10}}}) == Settings(("k",), True, 10.0)


# -- incremental analysis ----------------------------------------------------------


def whole(text: str) -> list[tuple[str, str, int, int]]:
    """What `fluo check` reports: the analysis, plus the cost bounds (FLUO404) of a file without errors."""
    analysis = api.analyze([("x.fluo", text)])
    found = analysis.diagnostics if analysis.has_errors else analysis.diagnostics + api.cost_diagnostics(analysis)
    return sorted((d.code, d.message, d.span.start, d.span.end) for d in found)


def chunked(text: str) -> list[tuple[str, str, int, int]]:
    doc = RuleDocument("x.fluo", text)
    return sorted((d.code, d.message, d.span.start + base, d.span.end + base) for d, base in doc.diagnostics())


ALL_EXAMPLES = "\n".join(p.read_text() for p in EXAMPLES if p.name != "auth_span_budget.fluo")


def test_chunks_start_at_rule_lines() -> None:
    text = "// c\nrule a { expect true } rule b { expect true }\n  rule c {\n}\nx rule d"
    assert split(text) == [0, text.index("  rule c")]
    assert split("trace.spans.count() < 5") == [0]


def test_chunked_analysis_agrees_with_the_whole_file() -> None:
    assert chunked(ALL_EXAMPLES) == whole(ALL_EXAMPLES)
    broken = ALL_EXAMPLES.replace("count() > 50\n}", "count() > 50\n") + "\nrule auth_retry_storm { expect true }\n"
    assert chunked(broken) == whole(broken)
    not_closed = "expected `}` here, to close the rule before the next `rule`"
    assert ("FLUO100", not_closed) in [x[:2] for x in chunked(broken)]
    assert "FLUO213" in [x[0] for x in chunked(broken)]
    costly = "rule costly {\n  expect trace.spans.all(descendants.all(children.all(descendants.count() > 0)))\n}\n"
    for text in (costly + ALL_EXAMPLES, ALL_EXAMPLES + costly):  # QA H1: only a last rule was costed
        assert chunked(text) == whole(text)
        assert "FLUO404" in [x[0] for x in whole(text)]


def read_into_the_rule_above(text: str, server: list[tuple[str, str, int, int]]) -> list[tuple[int, int]]:
    """The rules the whole-file parse reads as part of an unclosed rule above them, as [start, end) ranges.

    The server sees such a rule on its own and reports the open rule above at its `rule`
    (FLUO1xx there); `fluo check` reads on into it and may report the merged text's cascade
    (a duplicate `tags`, `detect` and `when` in one rule), which no one wrote.
    """
    starts = split(text)
    ends = [*starts[1:], len(text)]
    out = []
    for start, end in zip(starts[1:], ends[1:], strict=True):
        keyword = start + len(text[start:]) - len(text[start:].lstrip(" \t"))
        if any(code.startswith("FLUO1") and start <= at <= keyword for code, _, at, _ in server):
            out.append((start, end))
    return out


@example(cuts=[(999, 8)] * 3)  # leaves `upstream_5xx_under_checkout` open: FLUO211 and FLUO214 on the next rule
@example(cuts=[(429, 3), (462, 8)])  # `window` without its duration read the next rule into its own (seed 1607)
@example(cuts=[(431, 4), (461, 8)])  # `window 1expect window.spans`: the second `window` has no duration (seed 1607)
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(ALL_EXAMPLES)), st.integers(1, 8)), min_size=1, max_size=3))
def test_damage_never_hides_what_the_whole_file_reports(cuts: list[tuple[int, int]]) -> None:
    """Whatever `fluo check` reports, the server does, except the cascade of reading one rule into another."""
    text = ALL_EXAMPLES
    for at, length in cuts:
        at = min(at, len(text))
        text = text[:at] + text[at + length :]
    server = chunked(text)
    merged = read_into_the_rule_above(text, server)
    hidden = [d for d in set(whole(text)) - set(server) if not any(s <= d[2] < e for s, e in merged)]
    assert hidden == []


def test_a_broken_rule_does_not_hide_errors_in_later_rules() -> None:
    # A mangled first `rule` makes the whole-file parse read a bare expression and give up;
    # each later rule is still checked on its own.
    text = "ru_a {\n  expect true\n}\n\nrule b {\n  expect true\n}\n\nrule c {\n  expect trace.spans.cuont() > 1\n}\n"
    assert "FLUO201" in [x[0] for x in chunked(text)]
    assert "FLUO201" not in [x[0] for x in whole(text)]


def test_an_edit_reanalyses_only_its_rule() -> None:
    before = RuleDocument("x.fluo", ALL_EXAMPLES)
    edited = ALL_EXAMPLES.replace("count() > 50", "count() > 51")
    after = RuleDocument("x.fluo", edited)
    same = [a.analysis is b.analysis for a, b in zip(before.chunks, after.chunks, strict=True)]
    assert same.count(False) == 1


@pytest.mark.parametrize("opened", ["file", "untitled"])
def test_an_edit_reanalyses_only_its_rule_whatever_the_size_of_the_cache(
    opened: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Editor tour (QA r05): the cache of rule analyses (5,000) was smaller than a file of 6,000 rules, which
    evicted its own rules as it was checked: each keystroke checked every rule again (7 s). An open document
    keeps its rules' analyses for its next text, whatever the cache holds."""
    from fluo_lsp import document
    from fluo_lsp.server import FluoServer

    monkeypatch.setattr(document, "_CACHE_SIZE", 3)
    checked: list[str] = []
    analyze = api.analyze

    def counted(sources: list[tuple[str, str]], *args: Any) -> api.Analysis:
        checked.extend(text for _, text in sources)
        return analyze(sources, *args)

    monkeypatch.setattr(document.api, "analyze", counted)
    text = "".join(f"rule r{i} {{\n  expect trace.spans.count() > {i}\n}}\n" for i in range(10))
    index = Workspace(lambda path: None)
    server = FluoServer()
    texts: dict[str, str] = {}
    monkeypatch.setattr(server, "open_document", lambda uri: None)
    monkeypatch.setattr(server, "text", texts.get)

    def open_text(text: str) -> RuleDocument | None:
        if opened == "file":
            return index.open_document(tmp_path / "many.fluo", text)
        texts["untitled:Untitled-1"] = text
        return server.rule_document("untitled:Untitled-1")

    first = open_text(text)
    assert first is not None and len(first.rules()) == 10 and len(checked) == 10
    checked.clear()
    second = open_text(text.replace("count() > 4", "count() > 44"))
    assert second is not None and len(checked) == 1 and "count() > 44" in checked[0]
    assert [d.code for d, _ in second.diagnostics()] == [d.code for d, _ in first.diagnostics()]


def test_the_patterns_of_a_document_share_one_budget_as_in_fluo_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Smalls: the editor gave each rule the compile budget `fluo check` gives a file, so a document of many rules,
    each with a distinct pattern RE2 refuses as too large, compiled every one of them (~35 ms each) when opened,
    and had no FLUO405 where `fluo check` had. An edit charges the cached rules again without compiling them."""
    compiled: list[str] = []
    real = regex._re2_compile
    monkeypatch.setattr(regex, "_outcomes", type(regex._outcomes)())
    monkeypatch.setattr(regex, "_re2_compile", lambda p: compiled.append(p) or real(p))
    refusals = -(-regex.FILE_INSTRUCTIONS // regex.REFUSED_INSTRUCTIONS)

    def rule(i: int, pattern: str) -> str:
        return f'rule r{i} {{\n  detect trace.has(name matches "{pattern}")\n}}\n'

    text = "".join(rule(i, f"\\\\pL{{999}}x{i}") for i in range(refusals + 2))
    codes = [x[0] for x in chunked(text)]
    assert codes == ["FLUO303"] * refusals + ["FLUO405"] * 2
    assert len(compiled) == refusals
    assert chunked(text) == whole(text)
    smaller = text.replace("\\\\pL{999}x0", "^a$")  # room again for the next one: it is compiled, and only it
    compiled.clear()
    assert [x[0] for x in chunked(smaller)] == ["FLUO303"] * refusals + ["FLUO405"]
    assert compiled == ["^a$", f"\\pL{{999}}x{refusals}"]
    assert chunked(smaller) == whole(smaller)
    assert chunked(text) == whole(text)  # and back: its FLUO405s again, nothing compiled
    assert len(compiled) == 2


def test_duplicates_across_rules_point_at_both_definitions() -> None:
    text = "rule a {\n  expect true\n}\n\nrule b {\n  expect true\n}\n\n  rule a {\n  expect true\n}\n"
    doc = RuleDocument("x.fluo", text)
    [(d, base)] = [(d, base) for d, base in doc.diagnostics() if d.code == "FLUO213"]
    assert base == 0
    assert (d.span.line, d.span.col, d.span.end_col) == (8, 7, 8)
    assert d.format() == "x.fluo:9:8: error[FLUO213] rule id `a` is already defined at x.fluo:1:6"
    assert [(r.span.line, r.span.col) for r in d.related] == [(0, 5)]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(ALL_EXAMPLES)), st.integers(1, 12)), max_size=3),
    st.lists(st.floats(0, 1), min_size=3, max_size=3),
)
def test_every_feature_answers_on_damaged_text(cuts: list[tuple[int, int]], where: list[float]) -> None:
    text = ALL_EXAMPLES
    for at, length in cuts:
        at = min(at, len(text))
        text = text[:at] + text[at + length :]
    doc = RuleDocument("x.fluo", text)
    for fraction in where:
        offset = int(fraction * len(text))
        complete(doc, offset, ["http.route", "odd key"], ["host.name"])
        hover_at(doc, offset)
        signature_help(doc, offset)
        code_actions(doc, "file:///x.fluo", offset, offset, strict=False)
    symbols(doc)
    folding_ranges(doc)
    assert len(semantic_tokens(doc)) % 5 == 0
    document_diagnostics(doc, "file:///x.fluo", strict=True)


def test_every_feature_answers_on_metadata_nested_too_deeply() -> None:
    value = "[" * 5_000 + "a" + "]" * 5_000
    text = f"rule deep {{\n  tags: {value}\n  owner: {value}\n  expect trace.spans.count() > 0\n}}\n"
    doc = RuleDocument("x.fluo", text)
    assert [(d.code, d.span.line) for d, _ in doc.diagnostics()] == [("FLUO400", 1), ("FLUO400", 2)]
    for offset in (text.index("deep"), text.index("tags"), text.index("[a]"), text.index("owner"), text.index("count")):
        complete(doc, offset, [], [])
        hover_at(doc, offset)
        signature_help(doc, offset)
        code_actions(doc, "file:///x.fluo", offset, offset, strict=False)
    found = hover_at(doc, text.index("tags"))
    assert found is not None and found[0].startswith("**tags**")
    assert [s.name for s in symbols(doc)] == ["deep"]
    folding_ranges(doc)
    assert len(semantic_tokens(doc)) % 5 == 0
    assert [d.code for d in document_diagnostics(doc, "file:///x.fluo", strict=True)] == ["FLUO400", "FLUO400"]


def test_a_bare_rule_id_under_expect_is_checked_and_linked(tmp_path: Path) -> None:
    """`- auth_retry_storm` is short for `- {rule: auth_retry_storm}`: the editor reads it as `fluo test` does."""
    (tmp_path / "a.fluo").write_text("rule auth_retry_storm {\n  expect true\n}\n")
    text = "rules: [a.fluo]\ncases:\n  - name: c\n    spans: [{name: x}]\n    expect:\n      - auth_retry_strom\n"
    index = Workspace(lambda path: None)
    index.set_folders([tmp_path])
    test = read_test_file(tmp_path / "t_test.yaml", text)
    assert [n.value for n in test.rule_ids] == ["auth_retry_strom"]
    problems = index.test_problems(test)
    assert [(p.code, p.message, text[p.start : p.end]) for p in problems] == [
        ("unknown-rule", "no rule `auth_retry_strom` in a.fluo; did you mean `auth_retry_storm`?", "auth_retry_strom")
    ]


def test_test_files_may_name_rule_folders_and_restrict_with_only(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.fluo").write_text("rule x {\n  expect true\n}\n")
    text = "rules: [rules]\ncases:\n  - name: c\n    spans: []\n    only: [x, y]\n    expect: [{rule: x}]\n"
    (tmp_path / "t_test.yaml").write_text(text)
    index = Workspace(lambda path: None)
    index.set_folders([tmp_path])
    problems = index.test_problems(read_test_file(tmp_path / "t_test.yaml", text))
    assert [(p.code, p.message, text[p.start : p.end]) for p in problems] == [
        ("unknown-rule", "no rule `y` in rules; did you mean `x`?", "y")
    ]
    refs = index.references("x", tmp_path / "rules" / "a.fluo")
    assert [text[start:end] for _, start, end in refs] == ["x", "x"]
    assert [text[:start].count("\n") for _, start, _ in refs] == [4, 5]


def test_a_test_file_naming_an_empty_rule_folder_gets_problems_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    text = "rules: [empty]\ncases:\n  - name: c\n    spans: [{name: x}]\n    expect: [{rule: r}]\n"
    path = tmp_path / "t_test.yaml"
    index = Workspace(lambda path: None)
    index.set_folders([tmp_path])
    exact = index.test_problems(read_test_file(path, text))
    assert [(p.code, text[p.start : p.end]) for p in exact] == [("unknown-rule", "r")]
    [runner] = index.runner_problems(path, text)
    assert (runner.code, text[runner.start : runner.end]) == ("test-file", "rules: [empty]")
    assert runner.message == f"{tmp_path / 'empty'}: no .fluo files in this folder"


def test_rule_files_on_disk_are_read_as_fluo_check_reads_them(tmp_path: Path) -> None:
    """A byte order mark is skipped; a file that is not UTF-8 is FLUO106 alone, none of its rules loaded (as
    `fluo check` loads none: the editor once read it with the bytes replaced, finding clashes CI does not)."""
    (tmp_path / "bom.fluo").write_bytes(b"\xef\xbb\xbfrule x {\n  expect true\n}\n")
    (tmp_path / "latin.fluo").write_bytes(b"// caf\xe9\nrule y {\n  expect true\n}\n")
    index = Workspace(lambda path: None)
    index.set_folders([tmp_path])
    bom = index.rule_document(tmp_path / "bom.fluo")
    assert bom is not None and bom.text.startswith("rule x") and not list(bom.diagnostics())
    assert set(index.rule_ids([tmp_path])) == {"x"}


def test_hover_on_a_windowed_rule_and_on_a_coerced_set() -> None:
    text = "rule w {\n  window 1m\n  expect window.has(status == error)\n}\n"
    doc = RuleDocument("x.fluo", text)
    found = hover_at(doc, text.index("w {"))
    assert found is not None and found[0].splitlines()[:2] == ["rule `w` (expect, severity warning)", "window 1m"]
    found = hover_at(doc, text.index("has"))
    assert found is not None and "read as a boolean: whether there is any span" in found[0]
    assert "type `spans`" in found[0]


def test_hover_on_min_and_max_of_a_timestamp_names_its_type() -> None:
    text = "rule s {\n  expect trace.spans.max(end) - trace.spans.min(start) < 10m\n}\n"
    doc = RuleDocument("x.fluo", text)
    for method in ("max", "min"):
        found = hover_at(doc, text.index(method))
        assert found is not None and found[0].endswith("type `timestamp`"), found
        assert "durations or timestamps" in found[0]


@pytest.mark.parametrize(
    ("expr", "key", "says"),
    [
        ("http.route == '/a'", "http.route", "span attribute `http.route`"),
        ("k8s.pod.name == 'a'", "k8s.pod.name", "span attribute `k8s.pod.name`"),
        ("resource.host.name == 'a'", "host.name", "resource attribute `host.name`"),
        ("parent.http.route == '/a'", "http.route", "span attribute `http.route`"),
    ],
)
def test_hover_on_any_part_of_a_dotted_attribute_name_names_the_whole_key(expr: str, key: str, says: str) -> None:
    """Editor tour: on the `http` of `http.route` the hover said "span attribute `http`"; the dotted name is one
    key (read flat first, then through maps: docs/language.md), so every part of it says the whole key."""
    text = f"rule r {{\n  expect trace.spans.all({expr})\n}}\n"
    doc = RuleDocument("k.fluo", text)
    start = text.index(key)
    for i, part in enumerate(key.split(".")):
        found = hover_at(doc, start + key.index(part) + (1 if i else 0))
        assert found is not None
        markdown, span, base = found
        assert markdown.startswith(says + ":"), (part, markdown)
        assert text[base + span.start : base + span.end].endswith(key), part


def test_a_disabled_rule_says_so_in_the_outline_and_on_its_id() -> None:
    """Editor tour: the outline said "expect · warning" of a rule with `enabled: false`, as of one that runs."""
    text = "rule off {\n  enabled: false\n  expect true\n}\n\nrule on {\n  enabled: true\n  expect true\n}\n"
    doc = RuleDocument("d.fluo", text)
    assert [(s.name, s.detail) for s in symbols(doc)] == [
        ("off", "disabled · expect · warning"),
        ("on", "expect · warning"),
    ]
    hovers = [hover_at(doc, text.index(f"rule {name}") + 5) for name in ("off", "on")]
    assert [h[0] if h else None for h in hovers] == [
        "rule `off` (disabled; expect, severity warning)",
        "rule `on` (expect, severity warning)",
    ]


def test_trace_keys_are_read_in_the_background(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow scan of the workspace's traces never holds up a request: it gets the keys known so far."""
    import threading

    from fluo_lsp import workspace

    (tmp_path / "t.json").write_text("{}")
    release = threading.Event()

    def slow_keys(path: Path) -> tuple[set[str], set[str]]:
        release.wait(10)
        return {"from.trace"}, {"host.name"}

    monkeypatch.setattr(workspace, "_keys_of", slow_keys)
    monkeypatch.setattr(workspace, "FIRST_SCAN_WAIT", 0.01)
    index = Workspace(lambda path: None)
    index.extra_keys = ("from.settings",)
    index.set_folders([tmp_path])
    assert index.attribute_keys() == (["from.settings"], [])  # the scan is still reading
    release.set()
    assert index._scan is not None
    index._scan.join(10)
    assert index.attribute_keys() == (["from.settings", "from.trace"], ["host.name"])


def test_add_severity_edits_only_the_rule_it_names() -> None:
    """A rule missing its `{` gets no action (the next `{` is another rule's); a `severty:` typo counts as one."""
    text = "rule a\n  expect true\n}\nrule b {\n  severity: info\n  expect true\n}\nrule c {\n  severty: info\n}\n"
    doc = RuleDocument("x.fluo", text)
    titles = {
        a.title
        for offset in (text.index("rule a"), text.index("rule b"), text.index("rule c"), text.index("severty"))
        for a in code_actions(doc, "file:///x.fluo", offset, offset, strict=False)
    }
    assert not any(t.startswith("Add `severity") for t in titles), titles
    assert "Change to `severity`" in titles
    ok = "rule d {\n  expect true\n}\n"
    [add] = code_actions(RuleDocument("y.fluo", ok), "file:///y.fluo", 0, 0, strict=False)
    assert add.edit is not None and add.edit.changes is not None
    assert [e.range.start for e in add.edit.changes["file:///y.fluo"]] == [lsp.Position(line=0, character=8)]


def test_no_metadata_keys_where_no_name_can_come() -> None:
    text = 'rule a {\n  severity: info\n  expect trace.spans.where(name == "a" )\n}\n'
    inside = complete(RuleDocument("x.fluo", text), text.index('" )') + 2, [], [])
    assert not {"severity", "description", "tags", "owner"} & {i.label for i in inside}
    assert {"and", "or"} <= {i.label for i in inside}
    body = "rule a {\n  severity: info\n  \n  expect true\n}\n"
    at_item = {i.label for i in complete(RuleDocument("y.fluo", body), body.index("  \n") + 2, [], [])}
    assert {"description", "tags"} <= at_item and "severity" not in at_item  # given already


def _labels_at(text: str) -> set[str]:
    """The labels completion offers at the `|` of `text`."""
    doc = RuleDocument("x.fluo", text.replace("|", ""))
    return {i.label for i in complete(doc, text.index("|"), ["http.route"], [])}


@pytest.mark.parametrize(
    ("text", "offered", "not_offered"),
    [
        # after an operand: operators, never a root or an intrinsic
        ("rule a {\n  expect trace.spans.where(name |)\n}\n", {"contains", "matches", "not", "and"}, {"trace", "it"}),
        ("rule a {\n  expect trace.spans.where(http.route |)\n}\n", {"contains", "matches", "in", "and"}, {"trace"}),
        # `contains` and `matches` need a string (or a list) on their left
        ("rule a {\n  expect trace.spans.count() |\n}\n", {"in", "not", "and", "or"}, {"contains", "matches"}),
        ("rule a {\n  expect trace.spans.exists() |\n}\n", {"and", "or"}, {"contains", "matches"}),
        ("rule a {\n  expect trace.spans.count() + 1 |\n}\n", {"in"}, {"contains", "matches"}),
        ("rule a {\n  expect trace.services |\n}\n", {"contains", "in"}, {"matches"}),
        ("rule a {\n  expect trace.root.name |\n}\n", {"contains", "matches"}, set()),
        # no list item equals a spans, a trace or a window: `in` / `not in` never fit (QA editor r08)
        ('rule a {\n  detect trace.spans.where(name == "x") |\n}\n', {"and", "or"}, {"in", "not"}),
        ("rule a {\n  detect trace |\n}\n", {"and", "or"}, {"in", "not"}),
        ("rule a {\n  window 1m\n  detect window.spans |\n}\n", {"and", "or"}, {"in", "not"}),
        ("rule a {\n  expect trace.root |\n}\n", {"in", "not"}, set()),  # a span: `trace.root in [...]`
        ("rule a {\n  expect not trace.root.name |\n}\n", {"contains", "matches"}, set()),
        # `before` takes spans: no bool, though `trace` starts them
        ('rule a {\n  expect trace.has(name == "a").before(|)\n}\n', {"trace"}, {"true", "false", "not"}),
        ("rule a {\n  expect trace.spans.sum(|)\n}\n", {"duration", "it"}, {"true", "false", "not"}),
        ("rule a {\n  expect trace.spans.where(|)\n}\n", {"true", "not", "name", "it", "trace"}, set()),
        # an item of a list looked in, or what `contains` looks for, is compared with the other side: no bool
        # where a string is (`name in [true]`: FLUO300), as after `name ==`
        ("rule a {\n  expect trace.spans.where(name in [|])\n}\n", {"name", "it"}, {"true", "false", "not"}),
        ('rule a {\n  expect trace.spans.where(service not in ["a", |\n}\n', {"name"}, {"true", "false", "not"}),
        ("rule a {\n  expect trace.spans.count() in [|]\n}\n", {"trace"}, {"true", "false", "not"}),
        ("rule a {\n  expect trace.services == [|]\n}\n", {"trace"}, {"true", "false", "not"}),
        ("rule a {\n  expect trace.services contains |\n}\n", {"trace"}, {"true", "false"}),
        ("rule a {\n  expect trace.spans.where(name contains |)\n}\n", {"name"}, {"true", "false"}),
        ("rule a {\n  expect trace.spans.where(name matches |)\n}\n", set(), {"true", "false"}),
        ("rule a {\n  expect trace.spans.where(name in |)\n}\n", {"trace"}, {"true", "false"}),
        # an attribute may be a bool
        ("rule a {\n  expect trace.spans.where(http.route in [|])\n}\n", {"true", "false", "not"}, set()),
        ("rule a {\n  expect trace.spans.where(http.route contains |)\n}\n", {"true", "false"}, set()),
        ('rule a {\n  expect trace.has(name == "a").before(trace.spans.where(|))\n}\n', {"true", "not", "name"}, set()),
        # `always` and `never` go with a `when`, before or after it (review: they were held back until it came)
        ("rule a {\n  |\n}\n", {"when", "expect", "detect", "always", "never"}, set()),
        ("rule a {\n  always { true }\n  |\n}\n", {"when", "never"}, {"always", "expect", "detect"}),
        ("rule a {\n  expect true\n  |\n}\n", set(), {"always", "never", "when"}),
        ("rule a {\n  when { true }\n  |\n}\n", {"always", "never"}, {"when", "expect"}),
        ("rule a {\n  when { true }\n  always { true }\n  |\n}\n", {"never"}, {"always", "when"}),
        # right after a complete operand, no space: the clause is written, as after a space (QA docs r02)
        (
            "rule a {\n  expect trace.spans.count()|\n}\n",
            {"and", "in"},
            {"always", "never", "when", "expect", "detect"},
        ),
        ("rule a {\n  detect trace.has(name == 'a')|\n}\n", {"and", "or"}, {"always", "never", "when", "expect"}),
        ("rule a {\n  when { true }\n  always { trace.has(name == 'a') }|\n}\n", {"never"}, {"always", "when"}),
        ("rule a {\n  expect|\n}\n", {"expect"}, set()),  # the clause being typed is not taken
        # a rule that reads `trace` takes no `window` (FLUO220), wherever it is offered (QA editor r09)
        ("rule a {\n  expect true\n  |\n}\n", {"window"}, set()),
        ("rule a {\n  expect trace.spans.count() > 1 |\n}\n", {"and", "or"}, {"window"}),
        ("rule a {\n  expect trace.spans.count() > 1\n  |\n}\n", {"severity"}, {"window"}),
        ("rule a {\n  |\n  when { trace.has(name == 'a') }\n}\n", {"always"}, {"window"}),
        # metadata keys start a line (or follow the `{`), never right after an expression on its line (the grammar
        # takes `count() > 1 severity: info`, nobody means it)
        ("rule a {\n  expect trace.spans.count() > 1 |\n}\n", {"and", "or"}, {"severity", "description", "tags"}),
        ("rule a {\n  expect trace.spans.count() > 1 sev|\n}\n", {"and"}, {"severity", "owner"}),
        ("rule a { expect trace.spans.count() > 1 | }\n", {"and", "or"}, {"severity", "description"}),
        ("rule a {\n  expect trace.spans.count() > 1\n  |\n}\n", {"severity", "tags", "and"}, set()),
        ("rule a {\r\n  expect trace.spans.count() > 1\r\n  sev|\r\n}\r\n", {"severity"}, set()),
        ("rule a { |\n  expect true\n}\n", {"severity", "description"}, set()),
        # after a `.`, only a member's name
        ("rule a {\n  expect trace.spans.where(name and.|)\n}\n", set(), {"name", "trace", "it", "http.route"}),
        ("rule a {\n  expect trace.spans.count() > 1.|\n}\n", set(), {"trace", "and"}),
        ("rule a {\n  expect trace.spans.where(http.|)\n}\n", {"route", "length"}, {"trace", "name"}),
    ],
)
def test_completion_offers_nothing_that_cannot_be_valid_there(
    text: str, offered: set[str], not_offered: set[str]
) -> None:
    """Editor tour: `trace` after an operand, `contains` after an int, `true` inside `before(`, `always` beside
    `expect` and every intrinsic after `and.` were offered; each is a syntax or type error once taken."""
    labels = _labels_at(text)
    assert offered <= labels
    assert not labels & not_offered


def test_a_rule_id_defined_first_in_a_file_beside_it_is_fluo213(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `fluo check FOLDER` run from the workspace folder reports it: on the later file in name order,
    naming the first definition by its path from the workspace folder (the whole path outside any)."""
    (tmp_path / "a.fluo").write_text("// first\nrule dup {\n  expect true\n}\n")
    (tmp_path / "b.fluo").write_text("rule dup {\n  expect true\n}\nrule own {\n  expect true\n}\n")
    outside = Workspace(lambda path: None)
    b = outside.rule_document(tmp_path / "b.fluo")
    assert b is not None
    [(d, _)] = read_beside(outside, tmp_path / "b.fluo", b)
    assert d.message == f"rule id `dup` is already defined at {tmp_path / 'a.fluo'}:2:6"
    index = Workspace(lambda path: None)
    index.folders = [tmp_path]
    b = index.rule_document(tmp_path / "b.fluo")
    a = index.rule_document(tmp_path / "a.fluo")
    assert a is not None and b is not None
    assert index.sibling_duplicates(tmp_path / "a.fluo", a) == []
    [(d, base)] = index.sibling_duplicates(tmp_path / "b.fluo", b)
    assert (d.code, d.message, base + d.span.start) == ("FLUO213", "rule id `dup` is already defined at a.fluo:2:6", 5)
    assert d.related[0].path == str(tmp_path / "a.fluo") and (d.related[0].span.line, d.related[0].span.col) == (1, 5)
    monkeypatch.chdir(tmp_path)
    assert [x.message for x in api.analyze_paths(["."]).diagnostics] == [d.message]  # what CI says


def test_a_rule_file_on_disk_that_is_not_utf8_is_fluo106_alone_as_fluo_check_and_fluo_test_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA (editor tour r05): the editor read such a file with its bad bytes replaced, so an open file beside it
    got a FLUO213 `fluo check .` does not report, and a test file naming it got FLUO101/FLUO200 noise instead
    of `fluo test`'s "cannot read bad.fluo: not UTF-8"."""
    (tmp_path / "0bad.fluo").write_bytes(b"rule x { expect true } // caf\xe9\n")
    (tmp_path / "a.fluo").write_text("rule x { expect true }\n")
    text = "rules: [0bad.fluo]\ncases:\n  - name: one\n    spans: [{name: a}]\n    expect: [x]\n"
    (tmp_path / "t_test.yaml").write_text(text)
    index = Workspace(lambda path: None)
    index.folders = [tmp_path]
    bad = index.rule_document(tmp_path / "0bad.fluo")
    assert bad is not None and not bad.rules()
    assert [(d.code, d.message) for d, _ in bad.diagnostics()] == [
        ("FLUO106", "not UTF-8: byte 0xe9 at line 1, column 30; save it as UTF-8")
    ]
    a = index.rule_document(tmp_path / "a.fluo")
    assert a is not None and index.sibling_duplicates(tmp_path / "a.fluo", a) == []
    monkeypatch.chdir(tmp_path)
    assert [d.code for d in api.analyze_paths(["."]).diagnostics] == ["FLUO106"]  # what CI says
    path = tmp_path / "t_test.yaml"
    assert index.test_problems(read_test_file(path, text)) == []  # no "no rule `x` in 0bad.fluo"
    [p] = index.runner_problems(path, text)
    assert (p.code, p.message) == ("test-file", "cannot read 0bad.fluo: " + bad.diagnostics()[0][0].message)


def test_test_file_problem_lines_count_line_breaks_as_editors_do(tmp_path: Path) -> None:
    """YAML breaks lines at U+0085, U+2028 and U+2029 too; `fluo test` (its lines), LSP and editors do not: a
    problem's line is found in the text as they count them."""
    (tmp_path / "a.fluo").write_text("rule r {\n  expect true\n}\n")
    text = 'rules: [a.fluo]\ndescription: "one\u2028two\x85three"\rcases:\n  - name: c\n    spans: [{name: x}]\n'
    text += "    expcet: []\n"
    index = Workspace(lambda path: None)
    [p] = index.runner_problems(tmp_path / "t_test.yaml", text)
    assert (p.message, text[p.start : p.end]) == (
        "unknown key `expcet` in case 'c'; did you mean `expect`?",
        "expcet: []",
    )


def test_semantic_tokens_of_a_cached_rule_follow_it_when_it_moves() -> None:
    """A rule's tokens are kept with its cached analysis, relative to its first line: an edit above moves them."""
    rules = 'rule a {\n  expect trace.spans.where(name == "é😀").count() > 1\n}\nrule b {\n  detect true // b\n}\n'
    before = semantic_tokens(RuleDocument("x.fluo", rules))
    after = semantic_tokens(RuleDocument("x.fluo", "// new\n\n" + rules))
    assert after[:5] == [0, 0, 6, 1, 0]  # the new comment
    assert after[5] == before[0] + 2 and after[6:10] == before[1:5]  # `rule`, two lines further down
    assert after[10:] == before[5:]  # the rest is relative to the token before
    crlf = semantic_tokens(RuleDocument("y.fluo", rules.replace("\n", "\r\n")))
    assert crlf == before


def test_a_first_definition_in_another_file_is_located_as_lsp_counts_lines(tmp_path: Path) -> None:
    """The related location of a FLUO213 across files: a CR-only file's lines, which the checker does not count."""
    from fluo_lsp.reporting import lsp_diagnostic

    (tmp_path / "a.fluo").write_bytes(b"rule x {\r  expect true\r}\rrule dup {\r  expect true\r}\r")
    (tmp_path / "b.fluo").write_text("rule dup {\n  expect true\n}\n")
    index = Workspace(lambda path: None)
    b = index.rule_document(tmp_path / "b.fluo")
    assert b is not None
    [(d, base)] = read_beside(index, tmp_path / "b.fluo", b)
    diag = lsp_diagnostic(d, base, b, (tmp_path / "b.fluo").as_uri(), strict=False)
    assert diag.related_information is not None
    assert diag.related_information[0].location.range == lsp.Range(
        start=lsp.Position(line=3, character=5), end=lsp.Position(line=3, character=8)
    )


def _special_files(folder: Path) -> list[str]:
    """Links to /dev/zero under trace, rule and test file names, and a FIFO: none is a regular file."""
    import os

    folder.mkdir(exist_ok=True)
    names = ["zero.json", "zero.fluo", "zero_test.yaml"]
    for name in names:
        (folder / name).symlink_to("/dev/zero")
    os.mkfifo(folder / "fifo.json")
    return [*names, "fifo.json"]


def test_the_workspace_reads_no_special_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/dev/zero has size 0 and never ends; a FIFO blocks. Neither is read (nor opened to wait on)."""
    from fluo_lsp import workspace

    names = _special_files(tmp_path)
    (tmp_path / "t.json").write_text(
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "'
        + "ab" * 16
        + '", "spanId": "'
        + "cd" * 8
        + '", "name": "s", "startTimeUnixNano": "1", "endTimeUnixNano": "2", '
        '"attributes": [{"key": "k", "value": {"stringValue": "v"}}]}]}]}]}'
    )
    (tmp_path / "r.fluo").write_text("rule r {\n  expect true\n}\n")
    monkeypatch.setattr(workspace, "FIRST_SCAN_WAIT", 10)
    index = Workspace(lambda path: None)
    index.set_folders([tmp_path])
    assert index.attribute_keys()[0] == ["k"]  # the scan ended, having read t.json
    assert index.rule_document(tmp_path / "zero.fluo") is None
    assert index.test_file(tmp_path / "zero_test.yaml") is None
    assert list(index.rule_ids([tmp_path])) == ["r"]
    assert index.definitions("r") and index.references("r", tmp_path / "r.fluo") == []
    for name in names:
        with pytest.raises(OSError, match="not a regular file"):
            api.read_file(tmp_path / name, 10)


def test_reads_stop_one_byte_past_the_limit(tmp_path: Path) -> None:
    from fluo_lsp import document

    (tmp_path / "big.fluo").write_text("rule r {\n  expect true\n}\n" + " " * 100)
    assert len(api.read_file(tmp_path / "big.fluo", 10)) == 11
    assert document.read_rule_text(tmp_path / "big.fluo", 10) is None
    assert document.read_rule_text(tmp_path / "big.fluo") is not None


def test_fluo_check_refuses_special_files(tmp_path: Path) -> None:
    (tmp_path / "zero.fluo").symlink_to("/dev/zero")
    with pytest.raises(api.RuleSourceError, match="not a regular file"):
        api.analyze_paths([tmp_path / "zero.fluo"])
    with pytest.raises(api.RuleSourceError, match="not a regular file"):
        api.read_sources([tmp_path / "zero.fluo"])


def test_a_file_past_the_size_limit_is_fluo402_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "_MAX_SOURCE_BYTES", 20)
    (tmp_path / "big.fluo").write_text("rule r {\n  expect true\n}\n")
    assert [d.code for d in api.analyze_paths([tmp_path]).diagnostics] == ["FLUO402"]


def read_beside(index: Workspace, path: Path, doc: RuleDocument) -> list[tuple[Diagnostic, int]]:
    """`sibling_duplicates` once the files beside `path` it goes on without are read (a bounded wait)."""
    read = threading.Event()
    index.on_read = lambda paths: read.set()
    if index.sibling_duplicates(path, doc) == [] and index._reading:
        assert read.wait(30)
    return index.sibling_duplicates(path, doc)


def test_sibling_files_are_read_within_a_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FLUO213 looks at the files before this one (name order) until `MAX_SIBLING_BYTES` of them are read."""
    from fluo_lsp import workspace

    rule = "rule dup {\n  expect true\n}\n"
    (tmp_path / "a.fluo").write_text(rule + "//" + "x" * 100 + "\n")
    (tmp_path / "b.fluo").write_text("{" * 16_000)
    (tmp_path / "c.fluo").write_text(rule)
    monkeypatch.setattr(workspace, "MAX_SIBLING_BYTES", 1_000)
    index = Workspace(lambda path: None)
    read: list[Path] = []
    disk_document = index._disk_document

    def counted(path: Path) -> RuleDocument | None:
        read.append(path)
        return disk_document(path)

    monkeypatch.setattr(index, "_disk_document", counted)
    c = disk_document(tmp_path / "c.fluo")
    assert c is not None
    [(d, _)] = read_beside(index, tmp_path / "c.fluo", c)
    assert d.code == "FLUO213"
    assert read == [tmp_path / "a.fluo"]  # b.fluo would pass the budget


def test_the_workspace_wide_definition_search_keeps_to_its_budgets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA lsp213 r04: `definitions` past the files `near` analysed every rule file of the workspace and kept them
    all. It analyses, in path order, only the files whose text may define the id, keeps only the one that does,
    stops there, and leaves out what is past `MAX_SEARCH_BYTES` read or `MAX_SIBLING_BYTES` analysed."""
    from fluo_lsp import workspace

    rule = "rule want {\n  expect true\n}\n"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.fluo").write_text("rule x {\n  expect true\n}\n")
    (tmp_path / "a" / "y.fluo").write_text("// not `want` here\nrule y {\n  expect true\n}\n" + "//" * 200 + "\n")
    (tmp_path / "b.fluo").write_text(rule)
    (tmp_path / "c.fluo").write_text(rule)
    analysed: list[str] = []

    def counted(path: str, *args: Any, **kwargs: Any) -> RuleDocument:
        analysed.append(Path(path).name)
        return RuleDocument(path, *args, **kwargs)

    monkeypatch.setattr(workspace, "RuleDocument", counted)
    index = Workspace(lambda path: None)
    index.set_folders([tmp_path])
    [site] = index.definitions("want")
    assert (site.path, analysed, list(index._rule_docs)) == (tmp_path / "b.fluo", ["y.fluo", "b.fluo"], [site.path])
    assert index.definitions("want") == [site] and analysed == ["y.fluo", "b.fluo", "y.fluo"]  # b.fluo kept
    index._rule_docs.clear()
    monkeypatch.setattr(workspace, "MAX_SIBLING_BYTES", 460)  # y.fluo (447 bytes), then b.fluo past it
    assert index.definitions("want") == []
    monkeypatch.setattr(workspace, "MAX_SIBLING_BYTES", 4_000)
    monkeypatch.setattr(workspace, "MAX_SEARCH_BYTES", 490)  # x.fluo and y.fluo (474 bytes), then b.fluo past it
    assert index.definitions("want") == []
    monkeypatch.setattr(workspace, "MAX_SEARCH_BYTES", 510)
    [again] = index.definitions("want")
    assert (again.path, again.base, again.rule.id_span) == (site.path, site.base, site.rule.id_span)


def gated(index: Workspace, monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[Path]]:
    """Reads of the files beside an open one that wait for the event returned (at most 30 s), and the files read."""
    release = threading.Event()
    read: list[Path] = []
    disk_document = index._disk_document

    def slow(path: Path) -> RuleDocument | None:
        release.wait(30)
        read.append(path)
        return disk_document(path)

    monkeypatch.setattr(index, "_disk_document", slow)
    return release, read


def test_a_check_waits_for_no_file_beside_it_and_hears_once_when_they_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Editor tour (QA r04): each check waited half a second for the files beside it, then asked to hear of
    every one still being read, and each read checked the file again, so a folder of 400 files had the open
    one checked thousands of times, each waiting again, and requests went unanswered for minutes. A check
    goes on without the files not read yet, and the file is checked again once when the reads it went
    without are done, however often it was checked meanwhile."""
    for i in range(30):
        (tmp_path / f"f{i:02d}.fluo").write_text(f"rule r{i} {{\n  expect true\n}}\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.fluo").write_text("rule q {\n  expect true\n}\n")
    index = Workspace(lambda path: None)
    release, read = gated(index, monkeypatch)
    heard: list[list[Path]] = []
    done = threading.Event()

    def hear(paths: list[Path]) -> None:
        heard.append(paths)
        done.set()

    index.on_read = hear
    z = tmp_path / "z.fluo"
    z.write_text("rule r29 {\n  expect true\n}\n")
    doc = RuleDocument(str(z), z.read_text())
    for _ in range(5):  # returns while every read waits: a check waits for none
        assert index.sibling_duplicates(z, doc) == []
    q = RuleDocument(str(tmp_path / "other" / "b.fluo"), "rule q {\n  expect true\n}\n")
    assert index.sibling_duplicates(tmp_path / "other" / "b.fluo", q) == []
    release.set()
    assert done.wait(30)
    assert index._reader is not None
    index._reader.shutdown(wait=True)  # every read is over
    assert sorted(map(sorted, heard)) == [[tmp_path / "other" / "b.fluo"], [z]]  # each once
    assert len(read) == 31  # each file once
    [(d, _)] = index.sibling_duplicates(z, doc)
    assert d.code == "FLUO213"
    assert len(heard) == 2  # read already: nothing to hear of


def test_closing_the_workspace_drops_the_reads_not_begun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Editor tour (QA r04): a server whose client was gone went on reading the files queued beside an open one
    before it could end. `close` (the server stops) drops those not begun."""
    for i in range(10):
        (tmp_path / f"f{i}.fluo").write_text(f"rule r{i} {{\n  expect true\n}}\n")
    index = Workspace(lambda path: None)
    release, read = gated(index, monkeypatch)
    heard: list[list[Path]] = []
    index.on_read = heard.append
    z = tmp_path / "z.fluo"
    assert index.sibling_duplicates(z, RuleDocument(str(z), "rule r {\n  expect true\n}\n")) == []
    index.close()
    release.set()
    assert index._reader is not None
    index._reader.shutdown(wait=True)
    assert len(read) <= 1 and heard == []  # the read under way at most; the file is not checked again


def test_a_gzipped_trace_is_read_for_keys_only_up_to_the_limit(tmp_path: Path) -> None:
    import gzip

    from fluo_lsp import workspace

    span = '{"traceId": "' + "ab" * 16 + '", "spanId": "' + "cd" * 8 + '", "name": "s", "startTimeUnixNano": "1", '
    span += '"endTimeUnixNano": "2", "attributes": [{"key": "k", "value": {"stringValue": "v"}}]}'
    text = '{"resourceSpans": [{"scopeSpans": [{"spans": [' + span + "]}]}]}"
    (tmp_path / "small.json").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "bomb.json").write_bytes(gzip.compress((text + " " * workspace.MAX_TRACE_BYTES).encode()))
    assert workspace._keys_of(tmp_path / "small.json") == ({"k"}, set())
    assert workspace._keys_of(tmp_path / "bomb.json") == (set(), set())


@given(st.text(alphabet="ab\r\n é𝄞", max_size=40), st.lists(st.integers(0, 45), max_size=12), st.booleans())
def test_positions_in_one_pass_are_position_of_each(text: str, offsets: list[int], bom: bool) -> None:
    index = LineIndex(text, lead=1 if bom else 0)
    expected = [index.position(o) for o in sorted(offsets)]
    assert [lsp.Position(line=a, character=b) for a, b in index.positions(sorted(offsets))] == expected


LONG_RULE = "rule l { expect " + " or ".join(f'trace.has(name == "n{i}")' for i in range(3000)) + " }\n"
"""One rule of 3,000 terms on one ~85 KB line (QA 9: each request took most of a second)."""


def test_on_a_long_line_completion_and_signature_help_check_only_the_term_at_the_cursor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What is parsed and checked for a request does not grow with the terms before the cursor."""
    doc = RuleDocument("long.fluo", LONG_RULE)
    middle = LONG_RULE.index("trace.has(", len(LONG_RULE) // 2)
    unfinished = RuleDocument("long.fluo", LONG_RULE[: middle + len("trace.has(name == ")])
    checked: list[int] = []  # the length of each text parsed for a request
    analyze = api.analyze
    monkeypatch.setattr(api, "analyze", lambda sources: checked.extend(len(t) for _, t in sources) or analyze(sources))
    monkeypatch.setattr("fluo_lsp.completion.expected_at", _counting_expected_at(checked))
    assert {"spans", "has"} <= {i.label for i in complete(doc, middle + len("trace."), [], [])}
    assert {"name", "service"} <= {i.label for i in complete(doc, middle + len("trace.has("), [], [])}
    help_ = signature_help(doc, middle + len("trace.has("))
    assert help_ is not None and help_.signatures[0].label.startswith("trace.has(")
    assert signature_help(unfinished, len(unfinished.text)) is not None
    assert checked and max(checked) < 200, checked


def _counting_expected_at(checked: list[int]) -> Any:
    from fluo_lang.parser import expected_at

    def counting(text: str) -> set[str] | None:
        checked.append(len(text))
        return expected_at(text)

    return counting


def test_semantic_tokens_convert_positions_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not `LineIndex.position` per token, which slices the line up to it: quadratic on a long line."""
    doc = RuleDocument("long.fluo", LONG_RULE)

    def refuse(self: LineIndex, offset: int) -> lsp.Position:
        raise AssertionError("position() per token")

    monkeypatch.setattr(LineIndex, "position", refuse)
    data = semantic_tokens(doc)
    assert len(data) // 5 > 3000 * 5


def test_a_fix_that_does_not_fix_or_swaps_an_error_for_another_of_its_code_adds_an_error() -> None:
    """Quick-fix QA 1: errors were compared by code only, so a preferred fix could leave a FLUO100 where it
    removed one (`status is not error` -> `== not error`), or bring the same diagnostic back."""
    text = "rule a {\n  expect trace.spans.count() > > 5\n}\n"
    doc = RuleDocument("x.fluo", text)
    [(d, base)] = doc.diagnostics()
    assert d.code == "FLUO100" and text[base + d.span.start : base + d.span.end] == ">"
    assert _new_errors(doc, dataclasses.replace(d, suggestion=""), base, strict=False) == []  # deletes the stray `>`
    [again] = _new_errors(doc, dataclasses.replace(d, suggestion=">"), base, strict=False)  # changes nothing
    assert (again.code, again.message) == (d.code, d.message)
    [other] = _new_errors(doc, dataclasses.replace(d, suggestion=">="), base, strict=False)  # `> >= 5`: another
    assert other.code == "FLUO100" and ">=" in other.message


@pytest.mark.parametrize("key", ["sev\u00e9rity", "\uff53\uff45\uff56\uff45\uff52\uff49\uff54\uff59"])
def test_add_severity_is_not_offered_beside_a_key_the_parser_could_not_read(key: str) -> None:
    """Editor QA: `sevérity: critical` (kept as no key) got "Add `severity: warning`": applied with the key's
    own fix, the rule had severity twice (FLUO211) and `warning` beside the user's `critical`."""
    text = f"rule a {{\n  {key}: critical\n  expect trace.spans.count() > 1\n}}\n"
    doc = RuleDocument("x.fluo", text)
    titles = {a.title for a in code_actions(doc, "file:///x.fluo", 0, len(text), strict=False)}
    assert not any(t.startswith("Add `severity") for t in titles), titles


@pytest.mark.parametrize(
    ("cursor", "active"),
    [("(|", 0), ("('a'|", 0), ("('a', |", 1), ("('a', ['x', |]", 1), ("('a', 'b', |", None)],
    ids=["first", "in-the-first", "second", "list-in-the-second", "past-the-last"],
)
@pytest.mark.parametrize("none_active", [True, False], ids=["null-client", "3.17-client"])
def test_signature_help_of_a_method_of_two_parameters(
    monkeypatch: pytest.MonkeyPatch, cursor: str, active: int | None, none_active: bool
) -> None:
    """The registry has no method of two parameters yet: one made up here, as the typechecker would resolve it."""
    [starts_with] = [m for m in b.MEMBERS if m.name == "starts_with"]
    two = dataclasses.replace(starts_with, name="between", params=(*starts_with.params, *starts_with.params))
    assert two.signature == "string.between(prefix: string, prefix: string) -> bool"
    monkeypatch.setattr("fluo_lsp.completion._called_in", lambda rules, start: [two])
    text = "rule a {\n  expect trace.has(name.between" + cursor
    doc = RuleDocument("two.fluo", text.replace("|", ""))
    help_ = signature_help(doc, text.index("|"), none_active=none_active)
    if active is None and not none_active:
        assert help_ is None  # no LSP 3.17 value says "no parameter": none rather than a wrong one
        return
    assert help_ is not None and [s.label for s in help_.signatures] == [two.signature]
    assert help_.active_parameter == help_.signatures[0].active_parameter == active


def test_a_severity_past_ascii_is_one_diagnostic_with_one_fix() -> None:
    """User tour: `severity: crítical` was two diagnostics on the same word (the parser's "quote it", then the
    typechecker's FLUO212 on the quoted string), two quick fixes; now one, to `critical`, preferred."""
    text = "rule a {\n  severity: cr\u00edtical\n  expect trace.spans.count() > 1\n}\n"
    doc = RuleDocument("x.fluo", text)
    [(d, _)] = doc.diagnostics()
    assert d.suggestion == "critical", d.format()
    [action] = code_actions(doc, "file:///x.fluo", 0, len(text), strict=False)
    assert action.title == "Change to `critical`" and action.is_preferred


@pytest.mark.parametrize(
    ("slip", "fix"),
    [
        ("trace.duration > 1e3s", "1000s"),
        ("trace.spans.all(\uff4e\uff41\uff4d\uff45 == 'x')", "name"),
        ("trace.spans | count() > 1", "."),
    ],
)
def test_a_fix_is_not_blamed_for_an_error_the_text_has_whatever_the_fix(slip: str, fix: str) -> None:
    """Editor tour: a clause with a syntax slip is not typechecked, so `trace.spans.cnt()` beside it (FLUO201)
    showed only once the slip was fixed, and the slip's exact fix was titled "(then FLUO201: ...)" and not
    preferred. The checker found the FLUO201 all along, away from the edit: it is not the fix's."""
    text = f"rule r {{\n  severity: warning\n  expect {slip} and trace.spans.cnt() > 1\n}}\n"
    doc = RuleDocument("x.fluo", text)
    [action] = code_actions(doc, "file:///x.fluo", 0, len(text), strict=False)
    assert (action.title, action.is_preferred) == (f"Change to `{fix}`", True)


@pytest.mark.parametrize(
    ("slip", "fix"),
    [
        # the checker read `(a or b) in [...]`, and found FLUO301 and FLUO300 on a tree the text does not parse to
        ("trace.spans.count() > 1 or trace.root.name IN ['a']", "in"),
        ("trace.root.duration < 500\u03bc s", "500us"),  # FLUO103, FLUO210 `s`, unexpected `}`
        ("trace.root.duration < 500\u03bcsx", None),  # a fix to `us` left `usx`; the `x` was a metadata key
        ("trace.root.duration < 1.5nsec", "2ns"),  # FLUO103 and FLUO109, and two fixes
    ],
)
def test_a_slip_is_one_diagnostic_and_nothing_hidden_is_found_on_a_tree_read_wrong(slip: str, fix: str | None) -> None:
    text = f"rule r {{\n  severity: warning\n  expect {slip}\n}}\n"
    doc = RuleDocument("x.fluo", text)
    [(d, _)] = doc.diagnostics()
    assert d.suggestion == fix, d.format()
    assert doc.chunks[0].analysis.hidden == []
    actions = code_actions(doc, "file:///x.fluo", 0, len(text), strict=False)
    assert [(a.title, a.is_preferred) for a in actions] == ([] if fix is None else [(f"Change to `{fix}`", True)])


def test_a_metadata_key_named_but_not_fitting_is_offered_not_preferred() -> None:
    """Left by the editor fixer: `tag: payments` says "did you mean `tags`?" but `tags` takes a list, so there
    was no fix at all; as for a method, the name is offered, not preferred, with the error it leads to."""
    text = "rule r {\n  tag: payments\n  expect trace.spans.count() > 1\n}\n"
    doc = RuleDocument("x.fluo", text)
    [(d, _)] = doc.diagnostics()
    assert (d.code, d.suggestion, d.guess) == ("FLUO210", None, "tags")
    action, severity = code_actions(doc, "file:///x.fluo", 0, len(text), strict=False)
    assert action.title.startswith("Change to `tags` (then FLUO212: tags must be a list") and not action.is_preferred
    assert severity.title == "Add `severity: warning` to rule `r`"


def test_a_fix_is_still_blamed_for_an_error_at_its_edit() -> None:
    """An error the checker found where the fix edits depends on how the slip was read: it still counts."""
    text = "rule r {\n  severity: warning\n  expect trace.spans | count() > 'x'\n}\n"
    doc = RuleDocument("x.fluo", text)
    [(d, base)] = doc.diagnostics()
    assert [h.code for h in doc.chunks[0].analysis.hidden] == ["FLUO300"]  # the comparison, the edit within it
    [new] = _new_errors(doc, d, base, strict=False)
    assert new.code == "FLUO300"


def _token_types(text: str) -> dict[str, tuple[str, int]]:
    """The type and modifiers of each semantic token of a one-chunk text, by the token's text (BMP only)."""
    from fluo_lsp.outline import TOKEN_TYPES

    data = semantic_tokens(RuleDocument("t.fluo", text))
    lines = text.split("\n")
    out: dict[str, tuple[str, int]] = {}
    line = col = 0
    for i in range(0, len(data), 5):
        line += data[i]
        col = data[i + 1] if data[i] else col + data[i + 1]
        out[lines[line][col : col + data[i + 2]]] = (TOKEN_TYPES[data[i + 3]], data[i + 4])
    return out


def test_a_name_of_one_letter_past_ascii_is_a_token() -> None:
    """Editor tour: `ñ`, `İ`, the `語` of `日本.語` got no semantic token (only runs of two lexemes or more were
    joined into a name), where `ña` and `日本` did."""
    names = "\u00f1 > 1 and \u65e5\u672c.\u8a9e == 1 and \u0130 > 1 and \u00f1a > 1"
    text = f"rule r {{\n  expect trace.spans.all({names})\n}}\n"
    types = _token_types(text)
    for word in ("\u00f1", "\u8a9e", "\u0130", "\u65e5\u672c", "\u00f1a"):
        assert types.get(word) == ("variable", 0), (word, types)


def test_an_enabled_value_is_a_keyword_token_as_true_and_false_in_expressions() -> None:
    """Editor tour point 2 (not reproduced: the token was there already; pinned here)."""
    tokens = _token_types("rule r {\n  enabled: false\n  severity: critical\n  expect true\n}\n")
    assert tokens["false"] == tokens["true"] == ("keyword", 0)
    assert tokens["critical"] == ("enumMember", 0)


@pytest.mark.parametrize(
    ("written", "ascii"),
    [("\uff4e\uff41\uff4d\uff45", "name"), ("s\u00e9rvice", "service"), ("dur\u00e1tion", "duration")],
)
def test_a_name_past_ascii_the_parser_fixes_as_fluos_gets_that_names_token(written: str, ascii: str) -> None:
    """Editor tour: a full-width `name` (fixed as the intrinsic `name`) was typed `variable`, an attribute;
    docs/editor.md promises the type its ASCII spelling gets: `property`, defaultLibrary."""
    text = "rule r {\n  expect trace.spans.all(%s == 'x')\n}\n"
    assert _token_types(text % written)[written] == _token_types(text % ascii)[ascii] == ("property", 2)


@pytest.mark.parametrize(
    ("text", "word", "says"),
    [
        ("rule r {\n  sev\u00e9rity: error\n  expect trace.spans.count() > 1\n}\n", "sev\u00e9rity", "**severity**:"),
        ("rule r {\n  own\u00e9r: 'x'\n  expect trace.spans.count() > 1\n}\n", "own\u00e9r", "**owner**:"),
        (
            "rule r {\n  expect trace.spans.all(usu\u00e1rio.id == 'x')\n}\n",
            "usu\u00e1rio.id",
            "cannot be written bare",
        ),
        (  # the fix writes `attributes["usuário.id"]`: the doc of `attributes`, as `ownér` gets `owner`'s
            "rule r {\n  expect trace.spans.all(usu\u00e1rio.id == 'x')\n}\n",
            "usu\u00e1rio.id",
            "span.attributes: map",
        ),
        (
            "rule r {\n  expect trace.spans.all(parent.resource.usu\u00e1rio == 'x')\n}\n",
            "parent.resource.usu\u00e1rio",
            "span.resource: map",
        ),
        (
            "rule r {\n  expect trace.spans.all(\uff4e\uff41\uff4d\uff45 == 'x')\n}\n",
            "\uff4e\uff41\uff4d\uff45",
            "span.name",
        ),
        ("rule r {\n  expect trace.has(name == 'a') >> trace.has(name == 'b')\n}\n", ">>", "FLUO has no `>>`"),
    ],
)
def test_hover_on_a_syntax_slip_says_the_slip_over_its_own_text(text: str, word: str, says: str) -> None:
    """Editor tour: on `sevérity`/`ownér` (read as no key) no hover; on `usuário`/a full-width `name` the hover
    covered the whole comparison and gave `==`'s doc; on TraceQL's `>>` it said "`and`: Both hold", the recovery's
    reading shown as the meaning. Now the slip's error, over its text, and the doc of the name its fix writes."""
    doc = RuleDocument("h.fluo", text)
    found = hover_at(doc, text.index(word) + 1)
    assert found is not None
    markdown, span, base = found
    assert text[base + span.start : base + span.end] == word
    assert says in markdown and "Both hold" not in markdown and "`==`" not in markdown, markdown


@pytest.mark.parametrize(
    "clause",
    [
        "expect trace.spans.where\u00e9(name == 'a').exists()",
        "expect trace.spans.where\u00e9(name == 'a').count() > 1",
        "expect trace.spans.count() > 1 bands trace.x",
        "expect trace.duration > 500\u00b5 sx",
        "expect trace.duration > 500\u03bc ms",
    ],
)
def test_a_slip_read_whole_is_one_diagnostic_in_the_editor(clause: str) -> None:
    """QA docs tour and parser leftovers: each was one error and a cascade (FLUO210 on the word after it)."""
    text = f"rule a {{\n  {clause}\n}}\nrule b {{\n  expect trace.spans.count() > 1\n}}\n"
    [(d, _)] = RuleDocument("x.fluo", text).diagnostics()
    assert d.code in ("FLUO100", "FLUO103") and d.suggestion is None, d.format()


def test_where_the_parser_stops_reading_the_editor_says_what_it_does_not_read() -> None:
    """Past `MAX_RECOVERIES` in one rule the server reads on at the next rule, where `fluo check` stops for good:
    each FLUO403 says which, at the place reading stopped."""
    garbage = "rule a {\n  expect " + "$ " * 1001 + "\n}\n"
    after = "rule b {\n  expect trace.spans.count() > 1 bands trace.x\n}\n"
    got = [
        (d.code, d.span.start + base, d.message) for d, base in RuleDocument("x.fluo", garbage + after).diagnostics()
    ]
    stop = len("rule a {\n  expect ") + 2000
    assert [(code, at) for code, at, _ in got] == [
        ("FLUO101", stop - 2000),
        ("FLUO403", stop),
        ("FLUO100", len(garbage) + after.index("bands")),
    ]
    assert got[1][2].endswith(
        "from here, the rest of this rule (up to the next line that starts with `rule`) is not read"
    )
    assert [x for x in chunked(garbage) if x[0] == "FLUO403"] == [x for x in whole(garbage) if x[0] == "FLUO403"]
    assert whole(garbage + after)[-1][1].endswith("from here, the rest of the file is not read")


def test_a_tab_in_a_test_file_is_named_as_fluo_test_names_it(tmp_path: Path) -> None:
    """A tab indenting a test file: the editor said what PyYAML says ("found character '\\t' that cannot start any
    token"), `fluo test` named no character at all; both now say it is a tab, at the tab."""
    text = "cases:\n\t- name: c\n"
    test = read_test_file(tmp_path / "t_test.yaml", text)
    assert test.error is not None
    message, start, end = test.error
    assert message == "not valid YAML: a tab at column 1: YAML indents with spaces only"
    assert text[start:end] == "\t"


@pytest.mark.parametrize(
    "text",
    [
        "rules: [a.fluo]\ncases:\n  - name: 'caf\u00e9 \U0001d11e'\n    traces: [t.json]\n    expect: [x, {rule: y}]",
        'rules: a.fluo\r\ncases:\r\n  - name: "\U0001f600"\r\n    only: [z]\r\n    expect:\r\n      - rule: y\r\n',
        "rules: [a.fluo]\rcases:\r  - name: a\r    expect: [x]\r",
        '# \u00e9\u00e9\nrules: [a.fluo]\ndescription: "one\u2028two"\ncases:\n- name: "c\x85d"\n  expect: [r]\n',
        "\ufeffrules: [a.fluo]\ncases:\n  - name: a\n    expect: [x]\n",
    ],
    ids=["astral", "crlf", "cr", "yaml-line-breaks", "bom"],
)
def test_test_files_read_with_libyaml_name_what_pyyaml_names_where_it_does(text: str) -> None:
    """Test files are read with libyaml (QA editor tour r03: pure-Python PyYAML took ~60 ms on a 100-case file,
    on every check of a rule file it loads); its offsets are the same as PyYAML's (a BOM aside: PyYAML is used then)."""
    from fluo_lsp import testfiles

    fast = testfiles._read(Path("t_test.yaml"), text)
    pure = testfiles._read(Path("t_test.yaml"), text.replace("\ufeff", "\u200b")) if "\ufeff" in text else None
    assert fast.error is None and fast.rules and fast.rule_ids
    for names in (fast.rules, fast.traces, fast.rule_ids):
        assert all(text[n.start : n.end] == n.value for n in names)
    if pure is not None:  # the BOM read by PyYAML: the same names where the text has them
        assert [(n.value, n.start) for n in pure.rule_ids] == [(n.value, n.start) for n in fast.rule_ids]


def test_a_tab_libyaml_reads_in_a_test_file_is_no_yaml_error_in_the_editor(tmp_path: Path) -> None:
    """`fluo test` (libyaml) reads a tab before `}` in a flow mapping; the editor (PyYAML) said "not valid YAML"."""
    text = "rules: [a.fluo]\ncases:\n  - name: one\n    spans: [{name: a, service: b\t}]\n    expect: [r]\n"
    test = read_test_file(tmp_path / "t_test.yaml", text)
    assert test.error is None and [n.value for n in test.rule_ids] == ["r"]


def test_a_test_file_is_read_again_only_when_what_it_takes_from_its_rules_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA (editor tour r03): every check of a 1,000-rule file read every open test file twice, whole, on the server's
    thread. The test file's YAML is read once per text, and `fluo test`'s reader runs again only when the rule
    files give it something else (ids, errors) or files changed on disk."""
    from fluo_lsp import testfiles, workspace

    rules = "rule a {\n  expect trace.spans.count() > 1\n}\nrule b {\n  expect trace.spans.count() > 'x'\n}\n"
    (tmp_path / "a.fluo").write_text(rules)
    opened = {tmp_path / "a.fluo": rules}
    text = "rules: [a.fluo]\ncases:\n  - name: one\n    spans: [{name: x}]\n    expect: [a]\n"
    index = Workspace(opened.get)
    readings: list[str] = []
    real_load, real_compose = workspace.load_test_file, testfiles._compose
    monkeypatch.setattr(workspace, "load_test_file", lambda *a, **k: readings.append("runner") or real_load(*a, **k))
    monkeypatch.setattr(testfiles, "_compose", lambda t: readings.append("names") or real_compose(t))
    path = tmp_path / "a_test.yaml"

    def problems() -> list[str]:
        test = read_test_file(path, text)
        return [p.message for p in index.test_problems(test) + index.runner_problems(path, text)]

    [broken] = problems()
    assert broken.startswith("the rules do not check (1 error: FLUO300;")
    assert readings == ["names", "runner"]
    opened[tmp_path / "a.fluo"] = rules.replace("> 1", "> 2")  # an edit that changes no id and no error
    assert problems() == [broken]
    assert readings == ["names", "runner"]
    opened[tmp_path / "a.fluo"] = rules.replace("'x'", "2")
    assert problems() == []
    assert readings == ["names", "runner", "runner"]
    index.forget_disk()  # a file changed on disk: a fixture folder may hold other files now
    assert problems() == [] and readings == ["names", "runner", "runner", "runner"]


def test_a_rule_file_refreshes_only_the_test_files_that_load_it(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    by_name = read_test_file(tmp_path / "a_test.yaml", "rules: [a.fluo]\ncases: []\n")
    by_default = read_test_file(tmp_path / "b_test.yaml", "cases: []\n")
    by_folder = read_test_file(tmp_path / "c_test.yaml", "rules: [sub]\ncases: []\n")
    loaded = {
        name: [t.path.name for t in (by_name, by_default, by_folder) if Workspace.loads(t, tmp_path / name)]
        for name in ("a.fluo", "b.fluo", "sub/new.fluo", "other.fluo")
    }
    assert loaded == {
        "a.fluo": ["a_test.yaml"],
        "b.fluo": ["b_test.yaml"],
        "sub/new.fluo": ["c_test.yaml"],
        "other.fluo": [],
    }


def test_a_symbolic_link_loop_among_a_test_files_rules_is_loaded_by_nothing(tmp_path: Path) -> None:
    """A `rules:` entry (or the rule file asked about) that is a symbolic link loop raised RuntimeError
    ("Symlink loop", `Path.resolve`) out of references and the refresh of test files (fixer errs1's note)."""
    (tmp_path / "loop.fluo").symlink_to("loop.fluo")
    looping = read_test_file(tmp_path / "a_test.yaml", "rules: [loop.fluo, a.fluo]\ncases: []\n")
    assert Workspace.loads(looping, tmp_path / "a.fluo")
    assert not Workspace.loads(looping, tmp_path / "b.fluo")
    assert Workspace.loads(looping, tmp_path / "loop.fluo")  # named as it is: the same loop


def test_a_file_rewritten_with_its_modification_time_kept_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA (editor tour r02): `rsync -t`, `cp -p` and `tar x` rewrite a file and set its modification time back;
    rule files and trace fixtures were cached by that time alone, so the editor kept the old content for good."""
    import json
    import os

    from fluo_lsp import workspace

    monkeypatch.setattr(workspace, "FIRST_SCAN_WAIT", 10)
    rules, trace = tmp_path / "a.fluo", tmp_path / "t.json"

    def otlp(key: str) -> str:
        span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "s", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
        span["attributes"] = [{"key": key, "value": {"stringValue": "v"}}]
        return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span]}]}]})

    def rewrite(path: Path, text: str) -> None:
        before = path.stat()
        path.write_text(text)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as `rsync -t` leaves it
        assert path.stat().st_mtime_ns == before.st_mtime_ns and path.stat().st_size == before.st_size

    rules.write_text("rule gale {\n  expect true\n}\n")
    trace.write_text(otlp("k1"))
    index = Workspace(lambda path: None)
    index.set_folders([tmp_path])
    assert list(index.rule_ids([rules])) == ["gale"] and index.attribute_keys()[0] == ["k1"]
    rewrite(rules, "rule wind {\n  expect true\n}\n")
    rewrite(trace, otlp("k2"))
    assert list(index.rule_ids([rules])) == ["wind"] and index._scan_traces()[0] == ["k2"]  # what a rescan finds


def test_a_change_on_disk_the_client_reports_drops_what_was_read_of_the_file(tmp_path: Path) -> None:
    """Whatever the file's stamp says (a filesystem whose times do not move within a tick)."""
    from fluo_lsp import workspace

    rules = tmp_path / "a.fluo"
    rules.write_text("rule gale {\n  expect true\n}\n")
    index = Workspace(lambda path: None)
    assert list(index.rule_ids([rules])) == ["gale"]
    rules.write_text("rule wind {\n  expect true\n}\n")
    index._rule_docs[rules] = (workspace.stamp(rules.stat()), index._rule_docs[rules][1])  # the stamp unchanged
    assert list(index.rule_ids([rules])) == ["gale"]
    index.changed_on_disk([rules])
    assert list(index.rule_ids([rules])) == ["wind"]


def test_a_check_made_now_cancels_the_debounced_one_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    """QA (editor tour): `publish` (on a save, or for a change elsewhere) dropped the pending timer of the
    document without cancelling it, so the document was checked again when it fired."""
    import asyncio

    from fluo_lsp.server import FluoServer

    server = FluoServer()
    monkeypatch.setattr(server, "open_document", lambda uri: None)
    loop = asyncio.new_event_loop()
    try:
        handle = loop.call_later(3600, lambda: None)
        server.pending["file:///x.fluo"] = handle
        server.publish("file:///x.fluo", others=False)  # a change elsewhere: the edit's own check is still due
        assert not handle.cancelled() and server.pending == {"file:///x.fluo": handle}
        server.publish("file:///x.fluo")
        assert handle.cancelled() and server.pending == {}
    finally:
        loop.close()


def test_a_test_file_names_the_rule_files_that_do_not_check_as_fluo_test_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA (editor tour): "the rules do not check (...)" named them by their whole paths; `fluo test` run from the
    workspace folder names them from there, and so does the editor now (a clash across files too)."""
    from fluo_run.testing.spec import load_test_file

    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.fluo").write_text("rule a {\n  expect trace.spans.count() > 'x'\n}\n")
    (tmp_path / "rules" / "b.fluo").write_text("rule a {\n  expect true\n}\n")
    text = "rules: [a.fluo, b.fluo]\ncases:\n  - name: one\n    spans: [{name: x}]\n    expect: []\n"
    (tmp_path / "rules" / "t_test.yaml").write_text(text)
    index = Workspace(lambda path: None)
    index.folders = [tmp_path]
    [p] = index.runner_problems(tmp_path / "rules" / "t_test.yaml", text)
    monkeypatch.chdir(tmp_path)
    [cli] = load_test_file(Path("rules/t_test.yaml")).problems
    assert p.message == cli.message and "rules/a.fluo:2:" in p.message and "at rules/a.fluo:1:6" in p.message


@pytest.mark.parametrize(
    "expr",
    ["1 in [" + "1, " * MAX_RULE_NODES + "1]", "trace.root" + ".parent" * 150 + " == trace.root"],
    ids=["nodes", "depth"],
)
def test_an_expression_past_the_size_limits_is_refused_as_fluo_check_refuses_it_without_lark(
    monkeypatch: pytest.MonkeyPatch, expr: str
) -> None:
    """The editor parses rule by rule; a rule past the limits is measured, not handed to lark (148 s for 4 MiB)."""
    text = f"rule broken {{ expect ) }}\nrule big {{\n  expect {expr}\n}}\nrule c {{ expect 1 m > 2 }}\n"
    read: list[str] = []
    lark_parse = parser.Lark.parse

    def counted(self: Any, source: str, *args: Any, **kwargs: Any) -> Any:
        read.append(source)
        return lark_parse(self, source, *args, **kwargs)

    monkeypatch.setattr(parser.Lark, "parse", counted)
    got = chunked(text)
    assert all(expr[:12] not in source for source in read)  # the other rules' chunks may be cached already
    assert sorted(code for code, *_ in got) in (["FLUO100", "FLUO100", "FLUO401"], ["FLUO100", "FLUO100", "FLUO400"])
    assert got == whole(text)


def test_completion_reads_attribute_keys_of_every_trace_file_the_command_line_reads(tmp_path: Path) -> None:
    """The editor scanned fixtures by a suffix list of its own (lower case, no `.gz`), where `fluo eval` and
    `traces:` read `TRACE.JSON` and `t.json.gz`: their attribute keys were never offered."""
    import gzip
    import json

    def otlp(key: str) -> bytes:
        span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "s", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
        span["attributes"] = [{"key": key, "value": {"stringValue": "v"}}]
        return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span]}]}]}).encode()

    (tmp_path / "UPPER.JSON").write_bytes(otlp("from_upper"))
    (tmp_path / "zipped.json.gz").write_bytes(gzip.compress(otlp("from_gzip")))
    (tmp_path / "lines.ndjson").write_bytes(otlp("from_ndjson"))
    (tmp_path / "notes.txt").write_bytes(otlp("from_text"))  # not a trace file by its name: not read
    index = Workspace(lambda path: None)
    index.set_folders([tmp_path])
    assert index.attribute_keys()[0] == ["from_gzip", "from_ndjson", "from_upper"]


def test_a_read_beside_that_raises_is_logged_once_and_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Review (r03): a file beside an open one whose background read raised (a bug met analysing it) was not
    kept as read, so each check read it again and each failed read checked the open file again, for good. It
    is kept by stamp as a file that could not be read, and logged once."""
    (tmp_path / "a.fluo").write_text("rule a {\n  expect true\n}\n")
    index = Workspace(lambda path: None)
    read: list[Path] = []

    def failing(path: Path) -> RuleDocument | None:
        read.append(path)
        raise RuntimeError("a bug met analysing it")

    monkeypatch.setattr(index, "_disk_document", failing)
    b = tmp_path / "b.fluo"
    doc = RuleDocument(str(b), "rule b {\n  expect true\n}\n")
    assert read_beside(index, b, doc) == []
    assert index._reader is not None
    index._reader.shutdown(wait=True)
    heard: list[list[Path]] = []
    index.on_read = heard.append
    assert index.sibling_duplicates(b, doc) == []
    assert read == [tmp_path / "a.fluo"] and heard == [] and not index._reading
    assert [r.getMessage() for r in caplog.records] == [
        f"fluo lsp: reading {tmp_path / 'a.fluo'} failed; it is left out until it changes"
    ]


TEST_HEAD = "rules: [r.fluo]\ncases:\n  - name: c\n    traces: [t.json]\n    expect:\n"


@pytest.mark.parametrize(
    ("line", "written"),
    [
        ("      - rule: ", ["'off'", "ok_id", "'yes'"]),
        ("      - rule: ye", ["'off'", "ok_id", "'yes'"]),
        ("      - rule: 'ye", ["off", "ok_id", "yes"]),  # the quote is the user's
        ("      - {rule: ", ["'off'", "ok_id", "'yes'"]),
        ("      # rule: ", []),
        ("      - rule: a  # rule: ", []),
        ("      - rule:x", []),
        ("      - rule:", []),
    ],
)
def test_rule_ids_completed_in_a_test_file_are_written_as_yaml_reads_them(line: str, written: list[str]) -> None:
    """Review (r04): after `rule:` an id YAML reads as no string (`yes`, `off`) was written bare, which `fluo test`
    rejects; it is quoted as `fluo test --update` quotes it. Nothing is offered in a comment, nor after `rule:`
    with no space (`rule:x` is a plain value, no key)."""
    text = TEST_HEAD + line
    items = rule_ids_in_test_file(text, len(text), ["off", "ok_id", "yes"])
    assert [i.text_edit.new_text for i in items if isinstance(i.text_edit, lsp.TextEdit)] == written


def test_the_did_you_mean_of_an_unknown_rule_in_a_test_file_is_quoted_as_yaml_needs(tmp_path: Path) -> None:
    """Review (r04): the quick fix wrote `rule: yes`, a boolean to YAML, which `fluo test` rejects."""
    (tmp_path / "r.fluo").write_text("rule yes {\n  expect true\n}\n")
    (tmp_path / "t.json").write_text("{}")
    text = TEST_HEAD + "      - rule: yess\n"
    index = Workspace(lambda path: None)
    index.set_folders([tmp_path])
    test = read_test_file(tmp_path / "r_test.yaml", text)
    uri = (tmp_path / "r_test.yaml").as_uri()
    [fix] = quick_fixes_of_test_file(index.test_problems(test), text, uri, 0, len(text))
    assert fix.edit is not None and fix.edit.changes is not None
    assert [e.new_text for e in fix.edit.changes[uri]] == ["'yes'"]


@pytest.mark.parametrize(
    ("line", "message", "fixed"),
    [
        ("  - {name: servce, servce: a}", "span 1: unknown key `servce`; did you mean `service`?",
         "  - {name: servce, service: a}"),  # the key, not the value of that name
        ("  status: 'eror'  # typo", "`status`: expected one of ok, error, got 'eror'; did you mean `error`?",
         "  status: 'error'  # typo"),
        ("  - {name: y, parent: yes_}", "`parent`: no span with id or name 'yes_'; did you mean `yes`?",
         "  - {name: y, parent: 'yes'}"),  # a name YAML would read as a bool, quoted
        ('  status: "e\\x72or"', "`status`: expected one of ok, error, got 'erxor'; did you mean `error`?", None),
        ("  a: servce", "unknown key `servce` in case 'c'; did you mean `service`?", None),  # no such key here
    ],
)  # fmt: skip
def test_a_test_file_slip_is_found_in_its_line_as_written(line: str, message: str, fixed: str | None) -> None:
    text = f"x: 1\n{line}\n"
    problem = Problem("test-file", message, 5, 5 + len(line))
    found = quick_fixes_of_test_file([problem], text, "file:///t_test.yaml", 0, len(text))
    if fixed is None:
        assert found == []
        return
    [fix] = found
    assert fix.edit is not None and fix.edit.changes is not None
    [edit] = fix.edit.changes["file:///t_test.yaml"]
    index = LineIndex(text)
    start, end = index.offset(edit.range.start), index.offset(edit.range.end)
    assert text[:start] + edit.new_text + text[end:] == f"x: 1\n{fixed}\n"


def test_the_workspace_walk_passes_over_what_the_command_line_passes_over(tmp_path: Path) -> None:
    """Hidden files too (macOS's `._t.json` was read for attribute keys, `._a.fluo` for references), and the
    folders of builds and tools; in path order, as `fluo check` and `fluo test` take a folder's files."""
    for name in ("b/t.json", "a-c.json", "._t.json", ".git/x.json", "dist/d.json", "node_modules/m.json", "a/z.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    (tmp_path / "py" / "lib").mkdir(parents=True)  # a virtualenv, whatever its name (QA newuser r04)
    (tmp_path / "py" / "pyvenv.cfg").write_text("")
    (tmp_path / "py" / "lib" / "v.json").write_text("{}")
    index = Workspace(lambda path: None)
    index.set_folders([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in index.walk(lambda n: True)] == [
        "a/z.json",
        "a-c.json",
        "b/t.json",
    ]
    skipped = ("._t.json", ".git/x.json", "dist/d.json", "py/lib/v.json", "b/t.json")
    assert [index.passes_over(tmp_path / n) for n in skipped] == [True, True, True, True, False]


def test_a_hidden_rule_file_beside_one_defines_no_id_first(tmp_path: Path) -> None:
    """`fluo check FOLDER` passes over `._a.fluo` (an AppleDouble copy), so the editor's FLUO213 does too."""
    index = Workspace(lambda path: None)
    index.folders = [tmp_path]
    found = []
    for first in (".a.fluo", "a.fluo"):
        folder = tmp_path / ("hidden" if first.startswith(".") else "shown")
        folder.mkdir()
        (folder / first).write_text("rule x {\n  expect true\n}\n")
        (folder / "b.fluo").write_text("rule x {\n  expect true\n}\n")
        b = index.rule_document(folder / "b.fluo")
        assert b is not None
        found.append([d.code for d, _ in read_beside(index, folder / "b.fluo", b)])
    assert found == [[], ["FLUO213"]]


def test_a_trace_with_a_span_of_invalid_ids_still_gives_its_keys(tmp_path: Path) -> None:
    """Conformance fixer's note: `fluo test` passes over a span with invalid ids (all-zero span id) and reads the
    rest of its file, but the editor's key lookup read such a file as no keys at all."""
    from fluo_lsp import workspace

    def span(span_id: str, key: str) -> str:
        return (
            '{"traceId": "' + "ab" * 16 + '", "spanId": "' + span_id + '", "name": "s", "startTimeUnixNano": "1",'
            ' "endTimeUnixNano": "2", "attributes": [{"key": "' + key + '", "value": {"stringValue": "v"}}]}'
        )

    spans = ", ".join([span("cd" * 8, "good"), span("00" * 8, "bad")])
    (tmp_path / "t.json").write_text('{"resourceSpans": [{"scopeSpans": [{"spans": [' + spans + "]}]}]}")
    assert workspace._keys_of(tmp_path / "t.json") == ({"good"}, set())


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("a.fluo", "rule fresh_id {\n  expect true\n}\n"),
        ("a.fluo", "rule fresh_id{expect true}"),
        ("a.fluo", "rule fresh-id {\n  expect true\n}\n"),
        ("a.fluo", "rule frésh_id {\n  expect true\n}\n"),
        ("a.fluo", "rule fre\u0301sh_id {\n  expect true\n}\n"),
        ("a.fluo", "rule \uff46resh_id {\n  expect true\n}\n"),
        ("a.fluo", "rule fresh.id {\n  expect true\n}\n"),
        ("a.fluo", "rule 9fresh-id {\n  expect true\n}\n"),
        ("a.fluo", "rule 日本 {\n  expect true\n}\n"),
        ("a.fluo", "rule\n  // the id\n  fresh_id {\n  expect true\n}\n"),
        ("fresh-id.fluo", "trace.spans.count() > 1\n"),
        ("frésh.v2.fluo", "trace.spans.count() > 1\n"),
    ],
)
def test_a_rename_parses_every_workspace_file_that_may_define_the_new_id(name: str, text: str) -> None:
    """A rename searches the workspace folder for its new id in the text of each rule file and analyses only the
    files that may define it (QA review1 r06: it analysed every one). Whatever id the parser gives a rule, as
    written or made of what was written (`rule frésh-id`, a bare expression named after its file), the file
    is among those; and one that holds no rule of the id searched for is not."""
    ids = {r.rule.id for r in api.analyze([(name, text)]).rules} | {
        r.id for f in api.analyze([(name, text)]).files for r in f.rules
    }
    assert ids
    for rule_id in ids:
        assert _may_define(name, text, rule_id), rule_id
    assert not _may_define(name, text, "other_id")
