"""`fluo lsp` end to end: a real server process over stdio, driven by pytest-lsp's client."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from fluo_lang import api
from fluo_lang.otlp import is_trace_file_name
from fluo_lang.parser import DURATION_UNITS
from fluo_lsp.outline import TOKEN_TYPES

pytestmark = pytest.mark.asyncio(loop_scope="module")

AUTH = """\
// Authentication behaviour.
rule auth_retry_storm {
  severity: critical
  description: "A client retrying in a loop"
  detect trace.spans.where(service == 'auth').count() > 50
}

rule auth_slow_login {
  expect trace.spans.where(name == "login").all(duration < 2s)
}
"""

TEST_FILE = """\
rules: [auth.fluo]
cases:
  - name: storm
    traces: ../traces/storm.json
    expect:
      - rule: auth_retry_storm
      - {rule: auth_retry_strom}
  - name: quiet
    traces: fixtures/missing.json
    expect: []
"""


def otlp_trace() -> dict[str, Any]:
    def attr(key: str, value: Any) -> dict[str, Any]:
        return {"key": key, "value": {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}}

    span = {
        "traceId": "0f3c7af1386df9aca33e540cdd8d60cf",
        "spanId": "d85b866ad3165f52",
        "name": "POST /login",
        "kind": 2,
        "startTimeUnixNano": "1767225840000000000",
        "endTimeUnixNano": "1767225840420000000",
        "attributes": [attr("http.response.status_code", 200), attr("payment.amount", 12), attr("odd key", "x")],
    }
    resource = {"attributes": [attr("service.name", "auth"), attr("host.name", "h1")]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {}, "spans": [span]}]}]}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ws")
    (root / "rules").mkdir()
    (root / "traces").mkdir()
    (root / "rules" / "auth.fluo").write_text(AUTH)
    (root / "rules" / "auth_test.yaml").write_text(TEST_FILE)
    (root / "traces" / "storm.json").write_text(json.dumps(otlp_trace()))
    return root


@pytest_lsp.fixture(
    scope="module",
    config=ClientServerConfig(server_command=[sys.executable, "-m", "fluo_run.cli", "lsp"]),
)
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest) -> AsyncIterator[None]:
    root: Path = request.getfixturevalue("workspace")

    @lsp_client.feature(lsp.CLIENT_REGISTER_CAPABILITY)
    def register(params: lsp.RegistrationParams) -> None:
        REGISTERED.extend(params.registrations)

    params = lsp.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=root.as_uri(),
        workspace_folders=[lsp.WorkspaceFolder(uri=root.as_uri(), name="ws")],
        initialization_options={"fluo": {"attributeKeys": ["from.settings"], "diagnostics": {"debounceMs": 30}}},
    )
    await lsp_client.initialize_session(params)
    yield
    await lsp_client.shutdown_session()


REGISTERED: list[lsp.Registration] = []
"""What the server asked the client to register (`client/registerCapability`)."""


async def initialized(client: LanguageClient, folder: lsp.WorkspaceFolder) -> None:
    """A session begun as VS Code begins one, on the workspace folder `folder`; the file watchers the server asks
    to register are taken and not acted on (the tests say themselves what changed on disk, if anything)."""

    @client.feature(lsp.CLIENT_REGISTER_CAPABILITY)
    def register(params: lsp.RegistrationParams) -> None:
        pass

    await client.initialize_session(
        lsp.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"), root_uri=folder.uri, workspace_folders=[folder]
        )
    )


# -- helpers ------------------------------------------------------------------------


def open_doc(client: LanguageClient, path: Path, text: str, language: str = "fluo") -> str:
    uri = path.as_uri()
    client.diagnostics.pop(uri, None)
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
        )
    )
    return uri


async def diagnostics(
    client: LanguageClient, uri: str, until: Callable[[Sequence[lsp.Diagnostic]], bool] = lambda d: True
) -> Sequence[lsp.Diagnostic]:
    """The diagnostics published for `uri` once they satisfy `until` (bounded wait)."""
    for _ in range(500):
        got = client.diagnostics.get(uri)
        if got is not None and until(got):
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"no diagnostics for {uri} matching the condition; last: {client.diagnostics.get(uri)}")


def at(text: str, marker: str = "|") -> tuple[str, lsp.Position]:
    """The text without its cursor marker, and the marker's position."""
    offset = text.index(marker)
    before = text[:offset]
    line = before.count("\n")
    col = len(before) - (before.rfind("\n") + 1)
    return text.replace(marker, "", 1), lsp.Position(line=line, character=col)


async def complete(client: LanguageClient, path: Path, text_with_cursor: str, trigger: str | None = None) -> list[str]:
    """Labels offered at the cursor; `trigger`: asked because that character was typed."""
    text, pos = at(text_with_cursor)
    uri = open_doc(client, path, text)
    context = None
    if trigger is not None:
        context = lsp.CompletionContext(lsp.CompletionTriggerKind.TriggerCharacter, trigger_character=trigger)
    result = await client.text_document_completion_async(
        lsp.CompletionParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=pos, context=context)
    )
    assert isinstance(result, lsp.CompletionList)
    return [item.label for item in result.items]


def rng(line: int, col: int, end_line: int, end_col: int) -> lsp.Range:
    return lsp.Range(start=lsp.Position(line=line, character=col), end=lsp.Position(line=end_line, character=end_col))


# -- diagnostics ---------------------------------------------------------------------

BROKEN = """\
rule a {
  expect trace.spans.where(service == 'auth'.count() > 5
}

rule b {
  severity: critcal
  expect trace.spans.whree(status == error).count() == 0
}

rule a {
  expect trace.spans.count() < "five"
}
"""


async def test_diagnostics_on_open_report_every_error_with_exact_ranges(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "broken.fluo", BROKEN)
    diags = await diagnostics(client, uri)
    got = sorted((d.code, d.range.start.line, d.range.start.character, d.range.end.character) for d in diags)
    assert got == [
        ("FLUO100", 1, 53, 54),  # the missing `)`, reported where the parser noticed it
        ("FLUO201", 6, 21, 26),  # .whree(
        ("FLUO212", 5, 12, 19),  # critcal
        ("FLUO213", 9, 5, 6),  # the second `rule a`
        ("FLUO300", 10, 29, 30),  # int < string, at the `<`
    ]
    by_code = {d.code: d for d in diags}
    assert all(d.source == "fluo" for d in diags)
    assert "did you mean `where`?" in by_code["FLUO201"].message
    related = by_code["FLUO213"].related_information
    assert related is not None and related[0].location.range == rng(0, 5, 0, 6)
    assert related[0].location.uri == uri
    operands = by_code["FLUO300"].related_information  # the whole comparison, operand by operand
    assert operands is not None and [(r.message, r.location.range) for r in operands] == [
        ("this is an int", rng(10, 9, 10, 28)),
        ("this is a string", rng(10, 31, 10, 37)),
    ]
    # outside the workspace folder: the whole path, as `fluo check` prints the path it is given
    assert by_code["FLUO213"].message == f"rule id `a` is already defined at {tmp_path / 'broken.fluo'}:1:6"
    assert by_code["FLUO212"].severity == lsp.DiagnosticSeverity.Error


def fluo_check(cwd: Path, *paths: str) -> list[tuple[str, str, int, int, str]]:
    """(path, code, line, column, message) of what `fluo check --format json PATHS` run in `cwd` prints."""
    out = subprocess.run(
        [sys.executable, "-m", "fluo_run.cli", "check", "--format", "json", *paths],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    found = json.loads(out.stdout)["diagnostics"]
    return sorted((d["path"], d["code"], d["line"], d["column"], d["message"]) for d in found)


def as_checked(root: Path, uri: str, diags: Sequence[lsp.Diagnostic]) -> list[tuple[str, str, int, int, str]]:
    """LSP diagnostics of an ASCII file in the form of `fluo_check`'s, its path relative to `root`."""
    path = str(Path(uri.removeprefix("file://")).relative_to(root))
    return [(path, str(d.code), d.range.start.line + 1, d.range.start.character + 1, d.message) for d in diags]


async def test_fluo213_is_reported_once_and_as_fluo_check_says_it_from_the_workspace_root(
    client: LanguageClient, workspace: Path
) -> None:
    """QA 1 and 5: a duplicate on a line shared with its first definition, below line 1, was reported twice
    (once at a line counted from the rule's own start); messages named the file by its base name or by its
    whole path. Now: once, naming the file as `fluo check` run from the workspace folder does, within a file
    and between the files of a folder."""
    folder = workspace / "dup"
    folder.mkdir()
    texts = {
        "one.fluo": "rule dup_a { expect true }\nrule dup_b { expect true } rule dup_b { expect false }\n",
        "two.fluo": "rule dup_a {\n  expect true\n}\n",
    }
    got = []
    for name, text in texts.items():
        (folder / name).write_text(text)
        uri = open_doc(client, folder / name, text)
        got += as_checked(workspace, uri, await diagnostics(client, uri, lambda d: len(d) == 1))
    assert sorted(got) == fluo_check(workspace, "dup")
    assert [m for *_, m in sorted(got)] == [
        "rule id `dup_b` is already defined at dup/one.fluo:2:6",
        "rule id `dup_a` is already defined at dup/one.fluo:1:6",
    ]


async def test_diagnostics_follow_incremental_edits(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "edit.fluo", "rule a {\n  expect trace.spans.count() < 5\n}\n")
    assert list(await diagnostics(client, uri)) == []
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[lsp.TextDocumentContentChangePartial(range=rng(1, 21, 1, 26), text="cuont")],
        )
    )
    diags = await diagnostics(client, uri, lambda d: len(d) == 1)
    assert (diags[0].code, diags[0].range) == ("FLUO201", rng(1, 21, 1, 26))
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=3),
            content_changes=[lsp.TextDocumentContentChangePartial(range=rng(1, 21, 1, 26), text="count")],
        )
    )
    assert list(await diagnostics(client, uri, lambda d: len(d) == 0)) == []


async def test_diagnostic_columns_are_utf16(client: LanguageClient, tmp_path: Path) -> None:
    text = 'rule u {\n  expect trace.has(name == "𝄞é") and trace.spans.cuont() > 1\n}\n'
    uri = open_doc(client, tmp_path / "utf16.fluo", text)
    [d] = await diagnostics(client, uri)
    # `cuont` starts at code point 49; the G clef before it is two UTF-16 code units.
    assert d.code == "FLUO201"
    assert d.range == rng(1, 50, 1, 55)


COSTLY = "rule costly {\n  expect trace.spans.all(descendants.all(children.all(descendants.count() > 0)))\n}\n"
CHEAP = "rule cheap {\n  expect trace.spans.count() > 0\n}\n"


@pytest.mark.parametrize("order", ["costly-first", "costly-last"])
async def test_the_cost_estimate_is_reported_on_every_rule_as_fluo_check_does(
    client: LanguageClient, tmp_path: Path, order: str
) -> None:
    """FLUO404 on a rule that checks, wherever it is in the file (QA H1: only the last rule had it)."""
    text = COSTLY + CHEAP if order == "costly-first" else CHEAP + COSTLY
    uri = open_doc(client, tmp_path / "cost.fluo", text)
    line = text.splitlines().index("rule costly {") + 1
    pushed = await diagnostics(client, uri)
    assert [(d.code, d.range.start.line) for d in pushed] == [("FLUO404", line)]


async def test_the_cost_estimate_stands_beside_an_error_on_its_line(client: LanguageClient, tmp_path: Path) -> None:
    """QA 6: FLUO404 was dropped when another rule of its line (its chunk) had an error; `fluo check` adds it."""
    text = 'rule a { expect trace.spans.count() > "x" } ' + COSTLY.replace("\n", " ").replace("costly", "b") + "\n"
    uri = open_doc(client, tmp_path / "cost_beside.fluo", text)
    got = sorted((str(d.code), d.range.start.character) for d in await diagnostics(client, uri))
    expected = api.analyze([("x.fluo", text)])
    expected.diagnostics += api.cost_diagnostics(expected)
    assert got == sorted((d.code, d.span.col) for d in expected.diagnostics)
    assert [code for code, _ in got] == ["FLUO300", "FLUO404"]


async def test_past_100_syntax_errors_a_file_reports_fluo403_as_fluo_check_does(
    client: LanguageClient, tmp_path: Path
) -> None:
    """QA 8: each rule is parsed on its own, and the parser's cap of 100 syntax errors a file was never met."""
    text = "".join(f"rule r{i} {{\n  expect trace.spans.count() > > 1\n}}\n" for i in range(150))
    uri = open_doc(client, tmp_path / "many.fluo", text)
    pushed = await diagnostics(client, uri)
    got = sorted((str(d.code), d.range.start.line, d.range.start.character, d.message) for d in pushed)
    expected = api.analyze([("many.fluo", text)]).diagnostics
    assert got == sorted((d.code, d.span.line, d.span.col, d.message) for d in expected)
    assert [code for code, *_ in got].count("FLUO100") == 100
    assert got[-1][0] == "FLUO403"


async def test_the_errors_the_parser_caps_count_toward_fluo403(client: LanguageClient, tmp_path: Path) -> None:
    """A duration written with a space (`5 s`), read before parsing, counts toward the cap as the recovery's errors
    do (it once did not, and then a FLUO403 could stand before syntax errors still reported): beside 100 others,
    the editor reports what `fluo check` does, the first 100 by position and FLUO403 at the last rule's."""
    text = "rule d {\n  expect trace.spans.where(duration > 5 s).count() > 0\n}\n"
    text += "".join(f"rule r{i} {{\n  expect trace.spans.count() > > 1\n}}\n" for i in range(100))
    uri = open_doc(client, tmp_path / "spaced.fluo", text)
    pushed = await diagnostics(client, uri)
    got = sorted((str(d.code), d.range.start.line, d.range.start.character, d.message) for d in pushed)
    expected = api.analyze([("spaced.fluo", text)]).diagnostics
    assert got == sorted((d.code, d.span.line, d.span.col, d.message) for d in expected)
    assert [code for code, *_ in got] == ["FLUO100"] * 100 + ["FLUO403"]
    assert got[-1][1] == 1 + 3 * 100  # the last rule's `> >`


async def test_a_text_over_the_size_limit_is_fluo402_alone(client: LanguageClient, tmp_path: Path) -> None:
    """QA 7: the editor's text was checked whatever its size (seconds of work); `fluo check` reports FLUO402."""
    text = "rule a { expect 1 }\n" + "// " + "x" * api.MAX_FILE_BYTES + "\n"
    uri = open_doc(client, tmp_path / "big.fluo", text)
    [d] = await diagnostics(client, uri)
    too_large = f"file is larger than {api.MAX_FILE_BYTES} bytes"
    assert (d.code, d.range, d.message) == ("FLUO402", rng(0, 0, 0, 0), too_large)
    doc = lsp.TextDocumentIdentifier(uri=uri)
    assert await client.text_document_semantic_tokens_full_async(lsp.SemanticTokensParams(text_document=doc)) is None
    hover = await client.text_document_hover_async(
        lsp.HoverParams(text_document=doc, position=lsp.Position(line=0, character=10))
    )
    assert hover is None


async def test_a_byte_order_mark_is_dropped_and_columns_still_count_it(client: LanguageClient, tmp_path: Path) -> None:
    """QA 10: a client that keeps the BOM got FLUO101 at 1:1 and no formatting. The BOM is dropped as
    `fluo check` drops it; the client's columns on line 1 count it (one UTF-16 unit)."""
    text = "\ufeffrule a { expect trace.spans.cuont() > 1 }\n"
    uri = open_doc(client, tmp_path / "bom.fluo", text)
    [d] = await diagnostics(client, uri)
    col = text.index("cuont")  # the BOM is one UTF-16 unit of the client's line
    assert (d.code, d.range) == ("FLUO201", rng(0, col, 0, col + 5))
    doc = lsp.TextDocumentIdentifier(uri=uri)
    hover = await client.text_document_hover_async(
        lsp.HoverParams(text_document=doc, position=lsp.Position(line=0, character=6))
    )
    assert hover is not None and hover.range == rng(0, 6, 0, 7)  # the rule id, `a`
    options = lsp.FormattingOptions(tab_size=2, insert_spaces=True)
    params = lsp.DocumentFormattingParams(text_document=doc, options=options)
    edits = await client.text_document_formatting_async(params)
    assert edits is not None and [e.range for e in edits] == [rng(0, 1, 1, 0)]  # all but the BOM
    assert edits[0].new_text == "rule a {\n  expect trace.spans.cuont() > 1\n}\n"


async def test_before_a_byte_order_mark_every_answer_holds_the_cursor(client: LanguageClient, tmp_path: Path) -> None:
    """Editor tour: completion at (0,0) of a text starting with a BOM the client keeps answered edits at (0,1),
    which do not hold the cursor. There, each edit starts at the cursor and writes the BOM again (text put before
    it would leave it mid-file); after it, nothing changes. Hover finds no character of the rule in the BOM;
    semantic tokens and code actions count it as the diagnostics do."""
    text = "\ufeffrul a {\n  expect true\n}\n"
    uri = open_doc(client, tmp_path / "bom_start.fluo", text)
    await diagnostics(client, uri)
    doc = lsp.TextDocumentIdentifier(uri=uri)
    for col in (0, 1, 2, 4):
        cursor = lsp.Position(line=0, character=col)
        result = await client.text_document_completion_async(lsp.CompletionParams(text_document=doc, position=cursor))
        assert isinstance(result, lsp.CompletionList) and result.items
        edits = [item.text_edit for item in result.items if item.label == "rule"]
        assert edits and isinstance(edits[0], lsp.TextEdit), col
        edit = edits[0]
        assert edit.range == rng(0, min(col, 1), 0, 4), col  # the word `rul`, from the cursor if it is before it
        applied = text[: edit.range.start.character] + edit.new_text + text[edit.range.end.character :]
        assert applied == "\ufeffrule a {\n  expect true\n}\n", col
    hovers = [
        await client.text_document_hover_async(
            lsp.HoverParams(text_document=doc, position=lsp.Position(line=0, character=col))
        )
        for col in (0, 1)
    ]
    assert hovers[0] is None and hovers[1] is not None and hovers[1].range == rng(0, 1, 0, 4)
    tokens = await client.text_document_semantic_tokens_full_async(lsp.SemanticTokensParams(text_document=doc))
    assert tokens is not None and list(tokens.data[:3]) == [0, 1, 3]  # `rul`, one unit past the BOM
    [d] = [d for d in await diagnostics(client, uri) if d.code == "FLUO107"]
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(text_document=doc, range=rng(0, 0, 0, 0), context=lsp.CodeActionContext(diagnostics=[d]))
    )
    fixes = [a for a in actions or [] if isinstance(a, lsp.CodeAction) and a.title == "Change to `rule`"]
    assert fixes and fixes[0].edit is not None and fixes[0].edit.changes is not None
    assert [e.range for e in fixes[0].edit.changes[uri]] == [rng(0, 1, 0, 4)] == [d.range]


async def test_strict_setting_reports_warnings_as_errors(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "typo.fluo", "rule t {\n  expect trace.spans.where(servce == 'a').exists()\n}\n")
    [d] = await diagnostics(client, uri)
    assert (d.code, d.severity) == ("FLUO205", lsp.DiagnosticSeverity.Warning)
    client.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(settings={"fluo": {"strictness": "strict"}})
    )
    await diagnostics(client, uri, lambda ds: ds[0].severity == lsp.DiagnosticSeverity.Error)
    client.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(settings={"fluo": {"strictness": "default"}})
    )
    await diagnostics(client, uri, lambda ds: ds[0].severity == lsp.DiagnosticSeverity.Warning)
    # A client that sends no settings is asked for them (workspace/configuration).
    client.set_configuration({"strictness": "strict"}, section="fluo")
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=None))
    await diagnostics(client, uri, lambda ds: ds[0].severity == lsp.DiagnosticSeverity.Error)
    client.set_configuration({"strictness": "default"}, section="fluo")
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=None))
    await diagnostics(client, uri, lambda ds: ds[0].severity == lsp.DiagnosticSeverity.Warning)


async def test_settings_the_client_no_longer_sends_go_back(client: LanguageClient, tmp_path: Path) -> None:
    """Each didChangeConfiguration is the whole section: a removed setting returns to its value at `initialize`
    (here attributeKeys ["from.settings"]) or its default (QA L8: it stayed as last set)."""
    uri = open_doc(client, tmp_path / "reset.fluo", "rule t {\n  expect trace.spans.where(servce == 'a').exists()\n}\n")
    await diagnostics(client, uri)
    where = lsp.Position(line=1, character=27)
    client.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(settings={"fluo": {"strictness": "strict", "attributeKeys": ["old.key"]}})
    )
    await diagnostics(client, uri, lambda ds: ds[0].severity == lsp.DiagnosticSeverity.Error)
    items = await client.text_document_completion_async(lsp.CompletionParams(lsp.TextDocumentIdentifier(uri), where))
    assert isinstance(items, lsp.CompletionList) and "old.key" in {i.label for i in items.items}
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings={"fluo": {}}))
    await diagnostics(client, uri, lambda ds: ds[0].severity == lsp.DiagnosticSeverity.Warning)
    items = await client.text_document_completion_async(lsp.CompletionParams(lsp.TextDocumentIdentifier(uri), where))
    assert isinstance(items, lsp.CompletionList)
    labels = {i.label for i in items.items}
    assert "old.key" not in labels and "from.settings" in labels


# -- completion ----------------------------------------------------------------------


async def test_completion_at_the_top_level_offers_rules(client: LanguageClient, tmp_path: Path) -> None:
    labels = await complete(client, tmp_path / "top.fluo", "rule a {\n  expect true\n}\n\n|")
    assert "rule" in labels
    assert "rule (expect)" in labels and "rule (when / always / never)" in labels
    assert "severity" not in labels


async def test_completion_leaves_skeletons_to_a_client_with_its_own(client: LanguageClient, tmp_path: Path) -> None:
    """VS Code showed every template twice: the extension's snippets and the server's skeletons."""
    client.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(settings={"fluo": {"completion": {"ruleSkeletons": False}}})
    )
    labels = await complete(client, tmp_path / "top.fluo", "rule a {\n  expect true\n}\n\n|")
    assert "rule" in labels
    assert not any(label.startswith("rule (") for label in labels)
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings={"fluo": {}}))
    labels = await complete(client, tmp_path / "top.fluo", "rule a {\n  expect true\n}\n\n|")
    assert "rule (expect)" in labels


async def test_completion_inside_a_rule_offers_metadata_and_clauses(client: LanguageClient, tmp_path: Path) -> None:
    labels = await complete(client, tmp_path / "meta.fluo", "rule a {\n  sev|\n}\n")
    assert {"severity", "description", "tags", "expect", "detect", "when", "window"} <= set(labels)
    given = await complete(client, tmp_path / "given.fluo", "rule a {\n  severity: error\n  |\n}\n")
    assert "severity" not in given and "description" in given
    labels = await complete(client, tmp_path / "sev.fluo", "rule a {\n  severity: |\n}\n")
    assert labels == ["info", "warning", "error", "critical"]


@pytest.mark.parametrize(
    ("key", "values"),
    [
        ("sev\u00e9rity", ["info", "warning", "error", "critical"]),  # a letter past ASCII: the parser's FLUO100
        ("severty", ["info", "warning", "error", "critical"]),  # FLUO210's "did you mean `severity`?"
        ("enabl\u00e9d", ["true", "false"]),
        ("own\u00e9r", []),  # a key meant that takes free text: nothing to offer
        ("colour", []),  # no key close: still a value, never an expression
    ],
)
@pytest.mark.parametrize("trigger", [None, " "])
async def test_a_slipped_metadata_key_completes_the_values_of_the_key_meant(
    client: LanguageClient, tmp_path: Path, key: str, values: list[str], trigger: str | None
) -> None:
    """`sevérity: |` offered `trace` (an expression, which a metadata value never is) where `severity: |` offers
    the severities: the key the error names is the one completed for."""
    labels = await complete(client, tmp_path / "slip.fluo", f"rule a {{\n  {key}: |\n}}\n", trigger=trigger)
    assert labels == values


async def test_completion_offers_only_what_can_come(client: LanguageClient, tmp_path: Path) -> None:
    """QA L10: a key typed in full is still offered; nothing where a new id or a tag goes; one mode per rule."""
    typed = await complete(client, tmp_path / "n1.fluo", "rule a {\n  severity|")
    assert "severity" in typed
    assert await complete(client, tmp_path / "n2.fluo", "rule |") == []
    assert await complete(client, tmp_path / "n3.fluo", "rule a {\n  tags: [|") == []
    assert await complete(client, tmp_path / "n4.fluo", "rule a {\n  tags: [x, |]\n}\n") == []
    after_when = await complete(client, tmp_path / "n5.fluo", 'rule a {\n  when { trace.has(name == "a") }\n  |')
    assert {"always", "never", "severity"} <= set(after_when)
    assert not {"expect", "detect", "when"} & set(after_when)
    after_expect = await complete(client, tmp_path / "n6.fluo", "rule a {\n  window 1m\n  expect true\n  |\n}\n")
    assert "description" in after_expect
    assert not {"expect", "detect", "when", "always", "never", "window"} & set(after_expect)


async def test_completion_after_a_dot_knows_the_receiver(client: LanguageClient, tmp_path: Path) -> None:
    trace = await complete(client, tmp_path / "d1.fluo", "rule a {\n  expect trace.|\n}\n")
    assert {"spans", "root", "has", "count", "services"} <= set(trace) and "where" not in trace
    spans = await complete(client, tmp_path / "d2.fluo", "rule a {\n  expect trace.spans.|\n}\n")
    assert {"where", "count", "all", "before", "sum"} <= set(spans) and "root" not in spans
    span = await complete(client, tmp_path / "d3.fluo", "rule a {\n  expect trace.root.|\n}\n")
    assert {"name", "duration", "children", "parent"} <= set(span) and "where" not in span


async def test_completion_items_carry_signatures_and_replace_the_whole_word(
    client: LanguageClient, tmp_path: Path
) -> None:
    text, pos = at("rule a {\n  expect trace.spans.wh|ere(status == error).count() > 0\n}\n")
    uri = open_doc(client, tmp_path / "mid.fluo", text)
    result = await client.text_document_completion_async(
        lsp.CompletionParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=pos)
    )
    assert isinstance(result, lsp.CompletionList)
    where = next(i for i in result.items if i.label == "where")
    assert where.detail == "spans.where(predicate: P) -> spans"
    assert isinstance(where.text_edit, lsp.TextEdit)
    assert where.text_edit.range == rng(1, 21, 1, 26)
    assert where.text_edit.new_text == "where"  # the `(` is already there


async def test_completion_in_a_predicate_offers_intrinsics_and_workspace_keys(
    client: LanguageClient, tmp_path: Path
) -> None:
    labels = await complete(client, tmp_path / "p.fluo", "rule a {\n  expect trace.spans.where(|\n")
    assert {"name", "service", "duration", "status", "it"} <= set(labels)
    assert {"http.response.status_code", "payment.amount", "from.settings", "odd key"} <= set(labels)
    nested = await complete(client, tmp_path / "p2.fluo", "rule a {\n  expect trace.spans.where(http.|) }")
    assert nested == ["response.status_code", *ATTRIBUTE_METHODS]  # `http` may be a whole key too
    res = await complete(client, tmp_path / "p3.fluo", "rule a {\n  expect trace.spans.where(resource.|) }")
    assert "host.name" in res
    quoted = await complete(client, tmp_path / "p4.fluo", 'rule a {\n  expect trace.has(attributes["od|"] == 1) }')
    assert "odd key" in quoted and "service" not in quoted
    plain_string = await complete(client, tmp_path / "p5.fluo", 'rule a {\n  expect trace.has(name == "od|") }')
    assert plain_string == []


ATTRIBUTE_METHODS = ["starts_with", "ends_with", "lower", "upper", "length", "count"]


@pytest.mark.parametrize(
    "expr",
    ["cart.items.|", "http.response.status_code.|", "payment.amount.|", "resource.service.name.|", 'attributes["x"].|'],
)
async def test_completion_after_an_attribute_name_and_a_dot_offers_the_methods_of_its_value(
    client: LanguageClient, tmp_path: Path, expr: str
) -> None:
    """Editor tour (QA r02): after `cart.items.` completion offered nothing, though the language reference writes
    `cart.items.length()` and `attributes["cart.items"].` offered the methods."""
    text = f"rule a {{\n  expect trace.spans.where({expr}).count() == 0\n}}\n"
    assert await complete(client, tmp_path / "attr_dot.fluo", text) == ATTRIBUTE_METHODS


@pytest.mark.parametrize(
    ("line", "key", "after"),
    [
        ('where(attributes["|).count() == 0', "odd key", 'where(attributes["odd key"]).count() == 0'),
        ('where(attributes["pay|).count() == 0', "payment.amount", 'where(attributes["payment.amount"]).count() == 0'),
        ('where(attributes["pay|ment.am]) == 0', "payment.amount", 'where(attributes["payment.amount"]) == 0'),
        ("has(attributes['|", "odd key", "has(attributes['odd key']"),
        ('has(attributes["od|"] == 1)', "odd key", 'has(attributes["odd key"] == 1)'),
    ],
    ids=["empty", "typed", "bracket-after", "end-of-line", "closed"],
)
async def test_a_key_completed_in_an_unclosed_string_replaces_only_the_word(
    client: LanguageClient, tmp_path: Path, line: str, key: str, after: str
) -> None:
    """Editor tour (QA r06): in `where(attributes["|).count() == 0` (no auto-closed quote, as in Neovim) the item's
    edit ran to the end of the line, deleting `).count() == 0`; it replaces the word and closes the string."""
    text, pos = at(f"rule a {{\n  expect trace.spans.{line}\n}}\n")
    uri = open_doc(client, tmp_path / "unclosed.fluo", text)
    result = await client.text_document_completion_async(lsp.CompletionParams(lsp.TextDocumentIdentifier(uri), pos))
    assert isinstance(result, lsp.CompletionList)
    edit = next(item.text_edit for item in result.items if item.label == key)
    assert isinstance(edit, lsp.TextEdit) and edit.range.start.line == edit.range.end.line == 1
    written = text.split("\n")[1]
    written = written[: edit.range.start.character] + edit.new_text + written[edit.range.end.character :]
    assert written == f"  expect trace.spans.{after}"


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("rule a {\n  expect trace.spans.where(duration > 5|", True),
        ("rule a {\n  window 5|", True),
        ("rule a {\n  expect trace.spans.count() > 5|\n}\n", False),
        ("rule a {\n  expect trace.spans.where(name == 'x').count() >= 12|", False),
        # editor tour: a unit replaced the exponent (`1e3` + `s` gave `1s`); a duration takes no exponent
        ("rule a {\n  expect trace.duration > 1e3|\n}\n", False),
        ("rule a {\n  window 1E3|", False),
        ("rule a {\n  expect trace.duration > 1.5e|\n}\n", False),
    ],
    ids=["duration", "window", "count", "count-unclosed", "exponent", "window-exponent", "exponent-typed"],
)
async def test_duration_units_come_only_where_a_duration_can_stand(
    client: LanguageClient, tmp_path: Path, text: str, units: bool
) -> None:
    """QA 4b: after `count() > 5` every unit was offered, and each gave FLUO300."""
    labels = await complete(client, tmp_path / "units.fluo", text)
    assert labels == (list(DURATION_UNITS) if units else [])


@pytest.mark.parametrize(
    ("text", "booleans"),
    [
        ("rule a {\n  expect trace.duration >= |\n}\n", False),
        ("rule a {\n  expect trace.spans.count() > |\n}\n", False),
        ("rule a {\n  expect trace.spans.all(duration > |)\n}\n", False),
        ("rule a {\n  expect trace.spans.all(name == |)\n}\n", False),
        ("rule a {\n  expect trace.spans.all(http.flag == |)\n}\n", True),  # an attribute: any type
        ("rule a {\n  expect trace.spans.all(|)\n}\n", True),
        ("rule a {\n  expect trace.spans.exists() == |\n}\n", True),
    ],
    ids=["duration", "count", "duration-in-predicate", "string", "attribute", "predicate", "bool"],
)
async def test_true_and_false_come_only_where_a_bool_fits(
    client: LanguageClient, tmp_path: Path, text: str, booleans: bool
) -> None:
    """Editor tour: after `trace.duration >= ` completion offered `true` and `false`, each a FLUO300 once taken.
    Roots and fields stay: `trace` leads on to `trace.duration`."""
    labels = await complete(client, tmp_path / "bools.fluo", text)
    assert ("true" in labels, "false" in labels) == (booleans, booleans), labels
    assert "trace" in labels or "it" in labels


async def test_a_metadata_key_before_its_colon_completes_without_another(
    client: LanguageClient, tmp_path: Path
) -> None:
    """QA 4a: `sev|: info` completed as `severity: : info`."""
    for text, new_text in (("  sev|: info\n", "severity"), ("  sev| : info\n", "severity"), ("  sev|\n", "severity: ")):
        body, pos = at("rule a {\n" + text + "  expect trace.spans.count() > 1\n}\n")
        uri = open_doc(client, tmp_path / "colon.fluo", body)
        result = await client.text_document_completion_async(
            lsp.CompletionParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=pos)
        )
        assert isinstance(result, lsp.CompletionList)
        [item] = [i for i in result.items if i.label == "severity"]
        assert isinstance(item.text_edit, lsp.TextEdit) and item.text_edit.new_text == new_text, text


async def test_attribute_keys_complete_as_code_that_parses(client: LanguageClient, tmp_path: Path) -> None:
    """Escaped inside `attributes["..."]` (line breaks and control characters too: QA 3), never a keyword after
    `http.`, and a key named like an intrinsic or a keyword gets an item of its own (QA L4)."""
    keys = ['say "hi"', "back\\slash", "http.when", "http.response.rule", "http.method", "status", "true"]
    keys += ["line\nbreak", "cr\rkey", "tab\tbell\x07"]
    client.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(settings={"fluo": {"attributeKeys": keys}})
    )
    try:
        head = "rule a {\n  expect trace.spans.where("
        for i, text in enumerate([head, head + "http.", head + 'attributes["']):
            body, pos = at(text + "|")
            uri = open_doc(client, tmp_path / f"keys{i}.fluo", body)
            result = await client.text_document_completion_async(
                lsp.CompletionParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=pos)
            )
            assert isinstance(result, lsp.CompletionList)
            inserted = {
                item.label: item.text_edit.new_text
                for item in result.items
                if item.detail == "attribute key" and isinstance(item.text_edit, lsp.TextEdit)
            }
            for label, new_text in inserted.items():
                rule = body + new_text + " == 1).count() > 0\n}\n"  # in an unclosed string, the item closes it
                assert not api.analyze([("k.fluo", rule)]).has_errors, (label, new_text)
            if i == 0:
                assert inserted['say "hi"'] == 'attributes["say \\"hi\\""]'
                assert inserted["back\\slash"] == 'attributes["back\\\\slash"]'
                assert inserted["line\nbreak"] == 'attributes["line\\nbreak"]'
                assert inserted["tab\tbell\x07"] == 'attributes["tab\\tbell\\u0007"]'
                assert inserted['attributes["status"]'] == 'attributes["status"]'
                assert inserted['attributes["true"]'] == 'attributes["true"]'
            elif i == 2:
                assert inserted["cr\rkey"] == 'cr\\rkey"]'
            else:
                assert inserted["method"] == "method" and not {"when", "response.rule"} & set(inserted)
    finally:
        client.workspace_did_change_configuration(
            lsp.DidChangeConfigurationParams(settings={"fluo": {"attributeKeys": ["from.settings"]}})
        )


async def test_a_typed_space_offers_only_the_values_the_place_calls_for(client: LanguageClient, tmp_path: Path) -> None:
    quiet = [
        "rule a {\n  severity: warning |\n}\n",  # after a metadata value
        "rule |",  # a rule's name
        "rule a {\n  expect trace.spans.count() > |",  # any expression could come
        "rule a {\n  expect trace.spans.where(name == 'x' and |",
    ]
    for i, text in enumerate(quiet):
        assert await complete(client, tmp_path / f"s{i}.fluo", text, trigger=" ") == [], text
    status = await complete(client, tmp_path / "v1.fluo", "rule a {\n  expect trace.has(status == |", trigger=" ")
    assert status == ["ok", "error", "unset"]
    severity = await complete(client, tmp_path / "v2.fluo", "rule a {\n  severity: |\n}\n", trigger=" ")
    assert severity == ["info", "warning", "error", "critical"]
    # Asked for (Ctrl+Space), the same places offer everything that fits.
    assert "trace" in await complete(client, tmp_path / "s2x.fluo", "rule a {\n  expect trace.spans.count() > |")


async def test_completion_offers_enum_values(client: LanguageClient, tmp_path: Path) -> None:
    status = await complete(client, tmp_path / "e1.fluo", "rule a {\n  expect trace.spans.where(status == |")
    assert status == ["ok", "error", "unset"]
    kind = await complete(client, tmp_path / "e2.fluo", "rule a {\n  expect trace.has(kind in [server, c|]) }")
    assert {"client", "consumer"} <= set(kind) and "ok" not in kind
    # QA lang r02: a list compared with a list pairs its items, as the typechecker reads them
    paired = await complete(
        client, tmp_path / "e3.fluo", "rule a {\n  expect trace.has([status, kind] == [error, c|]) }"
    )
    assert {"client", "consumer"} <= set(paired) and "ok" not in paired
    first = await complete(client, tmp_path / "e4.fluo", "rule a {\n  expect [trace.root.status] != [|] }")
    assert first == ["ok", "error", "unset"]


async def test_completion_works_after_a_syntax_error_elsewhere(client: LanguageClient, tmp_path: Path) -> None:
    text = "rule broken {\n  expect trace.spans.where(( ==\n}\n\nrule b {\n  expect trace.spans.|\n}\n"
    labels = await complete(client, tmp_path / "after_error.fluo", text)
    assert "where" in labels
    same_rule = "rule c {\n  severity: critical\n  description: oops oops\n  expect trace.spans.where(serv|"
    labels = await complete(client, tmp_path / "same_rule.fluo", same_rule)
    assert "service" in labels


RULES = ["rule (expect)", "rule (detect)", "rule (when / always / never)", "rule (window)", "rule"]


@pytest.mark.parametrize(
    "broken",
    ["  expect trace.spans.\n", '  expect trace.spans.where(name == "x"\n', "  expect trace.spans.count() > 0 and\n"],
    ids=["dot", "paren", "and"],
)
@pytest.mark.parametrize("line", ["|", "ru|"], ids=["empty", "word"])
async def test_a_new_rule_completes_below_a_rule_with_a_syntax_error(
    client: LanguageClient, tmp_path: Path, broken: str, line: str
) -> None:
    """Past the rule's `}` only a rule can come, however broken its body (QA M2: only `trace` was offered)."""
    assert await complete(client, tmp_path / "below.fluo", f"rule a {{\n{broken}}}\n\n{line}") == RULES


async def test_metadata_values_complete_after_a_dangling_operator(client: LanguageClient, tmp_path: Path) -> None:
    """The line before reads on into `severity` (`> severity`): the cursor's line alone says what comes (QA M2)."""
    text = "rule a {\n  detect trace.spans.count() >\n  severity: |"
    assert await complete(client, tmp_path / "dangling.fluo", text) == ["info", "warning", "error", "critical"]
    assert await complete(client, tmp_path / "dangling2.fluo", text, trigger=" ") == [
        "info",
        "warning",
        "error",
        "critical",
    ]


# -- hover, signature help, symbols, folding, tokens ---------------------------------


async def hover_text(client: LanguageClient, uri: str, pos: lsp.Position) -> str:
    result = await client.text_document_hover_async(
        lsp.HoverParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=pos)
    )
    assert result is not None and isinstance(result.contents, lsp.MarkupContent)
    return result.contents.value


async def test_hover_shows_types_and_registry_docs(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "hover.fluo", AUTH)
    where = await hover_text(client, uri, lsp.Position(line=4, character=22))
    assert "spans.where(predicate: P) -> spans" in where and "The spans for which the predicate holds." in where
    service = await hover_text(client, uri, lsp.Position(line=4, character=28))
    assert "span.service: string" in service and "service.name" in service
    comparison = await hover_text(client, uri, lsp.Position(line=4, character=37))
    assert "`==`" in comparison and "type `bool`" in comparison
    root = await hover_text(client, uri, lsp.Position(line=4, character=10))
    assert "trace: trace" in root
    rule = await hover_text(client, uri, lsp.Position(line=1, character=8))
    assert "rule `auth_retry_storm` (detect, severity critical)" in rule
    meta = await hover_text(client, uri, lsp.Position(line=2, character=4))
    assert "one of info, warning, error, critical" in meta


@pytest.mark.parametrize(
    ("line", "cursor", "said", "documented"),
    [
        ("expect trace.spans.cuont() > 1", 21, "unknown method `cuont` on spans; did you mean `count`?", "count("),
        ("expect trace.rot.name == 'x'", 15, "trace has no field `rot`; did you mean `root`?", "trace.root: span"),
        ("expect trace.spans.cnt() > 1", 21, "unknown method `cnt` on spans (it has: where, count, exists,", None),
        ("expect duraton > 1s", 10, "unknown name `duraton`; did you mean `trace.duration`?", None),
    ],
    ids=["method", "field", "no-guess", "name"],
)
async def test_hover_on_an_unknown_name_says_its_did_you_mean(
    client: LanguageClient, tmp_path: Path, line: str, cursor: int, said: str, documented: str | None
) -> None:
    """Hover on an unknown method or field showed nothing: it says the checker's error, with its did-you-mean or
    what the receiver has, and the documentation of the member meant, as the hover on a syntax slip does."""
    uri = open_doc(client, tmp_path / "unknown.fluo", f"rule a {{\n  {line}\n}}\n")
    result = await client.text_document_hover_async(
        lsp.HoverParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(1, cursor))
    )
    assert result is not None and isinstance(result.contents, lsp.MarkupContent)
    assert result.contents.value.startswith(said)
    if documented is not None:
        assert documented in result.contents.value
    assert isinstance(result.range, lsp.Range) and result.range.start.line == 1
    word = line[result.range.start.character - 2 : result.range.end.character - 2]
    assert word in said and word.isidentifier()


@pytest.mark.parametrize(
    "first_line", ["rule 9bad {", "rule my-rule {", "rule {", "rule my rule {"], ids=["digit", "dash", "none", "two"]
)
async def test_hover_and_tokens_after_a_bad_rule_id(client: LanguageClient, tmp_path: Path, first_line: str) -> None:
    """The `{` after a rule id that does not parse is no rule id: no hover there (it said "rule ``") and no
    `function` token; an id the parser read as another (`my-rule` as `my_rule`) says so (editor QA)."""
    text = first_line + "\n  expect trace.spans.count() > 0\n}\n"
    uri = open_doc(client, tmp_path / "bad_id.fluo", text)
    ident = lsp.TextDocumentIdentifier(uri=uri)
    shown: dict[int, str | None] = {}
    for col in range(len(first_line) + 1):
        result = await client.text_document_hover_async(
            lsp.HoverParams(text_document=ident, position=lsp.Position(line=0, character=col))
        )
        assert result is None or isinstance(result.contents, lsp.MarkupContent)
        shown[col] = result.contents.value if result is not None else None
    brace = first_line.index("{")
    assert shown[brace] is None and shown[brace + 1] is None
    assert not any(v is not None and "rule ``" in v for v in shown.values())
    if first_line == "rule my-rule {":
        assert shown[5] is not None and "`my-rule`" in shown[5] and "`my_rule`" in shown[5]
    tokens = await client.text_document_semantic_tokens_full_async(lsp.SemanticTokensParams(text_document=ident))
    assert tokens is not None
    col = 0
    for i in range(0, len(tokens.data), 5):
        if tokens.data[i]:
            break
        col += tokens.data[i + 1]
        assert col != brace, f"`{{` is a {TOKEN_TYPES[tokens.data[i + 3]]} token"


async def signature_help(client: LanguageClient, path: Path, text_with_cursor: str) -> lsp.SignatureHelp | None:
    text, pos = at(text_with_cursor)
    uri = open_doc(client, path, text)
    return await client.text_document_signature_help_async(
        lsp.SignatureHelpParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=pos)
    )


async def test_signature_help_inside_a_call(client: LanguageClient, tmp_path: Path) -> None:
    help_ = await signature_help(
        client, tmp_path / "sig.fluo", "rule a {\n  expect trace.spans.where(x == 1).before(trace.has(name == 'b')|"
    )
    assert help_ is not None
    assert help_.signatures[0].label == "spans.before(other: spans) -> bool"
    # given on the signature too: left unset, lsprotocol sends `null`, which a 3.18 client reads as "none"
    assert help_.active_parameter == help_.signatures[0].active_parameter == 0
    text, pos = at("rule a {\n  expect trace.count(|")
    uri = open_doc(client, tmp_path / "sig2.fluo", text)
    help_ = await client.text_document_signature_help_async(
        lsp.SignatureHelpParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=pos)
    )
    assert help_ is not None and help_.signatures[0].label == "trace.count(predicate: P) -> int"


@pytest.mark.parametrize(
    ("text", "label", "active"),
    [
        ("rule a {\n  expect trace.spans.where(name in ['a', |]).count() > 0\n}\n", "spans.where", 0),
        ("rule a {\n  expect trace.spans.where(name in ['a', |", "spans.where", 0),
        ("rule a {\n  expect trace.spans.before(trace.spans.where(name in ['a', 'b', |])", "spans.where", 0),
        ("rule a {\n  expect trace.spans.where(x == 1).before(trace.spans[|", "spans.before", 0),
        ("rule a {\n  tags: [a, |]\n  expect trace.spans.count() > 0\n}", None, 0),
    ],
    ids=["list", "unclosed-list", "nested-call", "index", "metadata-list"],
)
async def test_signature_help_inside_a_list_in_a_call(
    client: LanguageClient, tmp_path: Path, text: str, label: str | None, active: int
) -> None:
    """A list (or index) inside an argument is that argument: the call's signature, its commas not counted
    (editor QA: nothing was shown inside `where(name in ['a', |])`)."""
    text, pos = at(text)
    uri = open_doc(client, tmp_path / "sig_list.fluo", text)
    help_ = await client.text_document_signature_help_async(
        lsp.SignatureHelpParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=pos)
    )
    if label is None:
        assert help_ is None
        return
    assert help_ is not None and help_.signatures[0].label.startswith(label + "(")
    assert help_.active_parameter == help_.signatures[0].active_parameter == active


@pytest_lsp.fixture(
    scope="module",
    config=ClientServerConfig(server_command=[sys.executable, "-m", "fluo_run.cli", "lsp"]),
)
async def none_client(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[None]:
    """A client that takes `activeParameter: null` for "no parameter is active" (LSP 3.18's
    `noActiveParameterSupport`)."""
    capabilities = client_capabilities("visual-studio-code")
    assert capabilities.text_document is not None and capabilities.text_document.signature_help is not None
    info = capabilities.text_document.signature_help.signature_information
    assert info is not None and info.no_active_parameter_support is None
    info.no_active_parameter_support = True
    root = tmp_path_factory.mktemp("wsnone")
    await lsp_client.initialize_session(lsp.InitializeParams(capabilities=capabilities, root_uri=root.as_uri()))
    yield
    await lsp_client.shutdown_session()


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("rule a {\n  expect trace.spans.where(name.starts_with('a', |", "string.starts_with"),
        ("rule a {\n  expect trace.spans.where(name.starts_with('a', |)).count() > 0\n}\n", "string.starts_with"),
        ("rule a {\n  expect trace.spans.where(x == 1).before(trace.has(name == 'b'), |", "spans.before"),
        ("rule a {\n  expect trace.spans.where(x == 1).before(trace.spans, [1, |]) > 0\n}", "spans.before"),
        ("rule a {\n  expect trace.spans.before(trace.spans.where(name.starts_with('a', |", "string.starts_with"),
        ("rule a {\n  expect trace.spans.where(name.length(1, |", "string.length"),
    ],
    ids=["one-parameter", "one-parameter-closed", "after-a-call", "list-past-the-end", "nested-call", "none"],
)
async def test_signature_help_past_the_last_parameter_marks_none(
    client: LanguageClient, none_client: LanguageClient, tmp_path: Path, text: str, label: str
) -> None:
    """After a comma past a method's last parameter no parameter is the cursor's (editor tour: `starts_with('a', |)`
    had activeParameter 1 of one, which LSP 3.17 clients read as 0, marking `prefix`). A client that takes `null`
    gets the signature with none active; any other gets no signature help rather than a wrong parameter."""
    assert await signature_help(client, tmp_path / "past.fluo", text) is None
    help_ = await signature_help(none_client, tmp_path / "past.fluo", text)
    assert help_ is not None and [s.label.split("(")[0] for s in help_.signatures] == [label]
    assert help_.active_parameter is None and help_.signatures[0].active_parameter is None


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("rule a {\n  expect trace.spans.where(name.starts_with(|", "string.starts_with"),
        ("rule a {\n  expect trace.spans.where(name.starts_with('a'|", "string.starts_with"),
        ("rule a {\n  expect trace.spans.before(trace.spans.where(|", "spans.where"),
        ("rule a {\n  expect trace.spans.before(trace.spans.where(name == 'a')|", "spans.before"),
        ("rule a {\n  expect trace.spans.where(name.length(|", "string.length"),
    ],
    ids=["one-parameter", "in-the-argument", "nested-call", "around-a-nested-call", "none"],
)
async def test_signature_help_within_the_parameters_marks_the_one_at_the_cursor(
    client: LanguageClient, none_client: LanguageClient, tmp_path: Path, text: str, label: str
) -> None:
    for each in (client, none_client):
        help_ = await signature_help(each, tmp_path / "within.fluo", text)
        assert help_ is not None and [s.label.split("(")[0] for s in help_.signatures] == [label]
        assert help_.active_parameter == help_.signatures[0].active_parameter == 0


async def test_document_symbols_and_folding(client: LanguageClient, tmp_path: Path) -> None:
    text = "// one\n// two\n" + AUTH + "rule w {\n  window 1m\n  expect window.traces.count() > 0\n}\n"
    uri = open_doc(client, tmp_path / "sym.fluo", text)
    ident = lsp.TextDocumentIdentifier(uri=uri)
    symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=ident))
    assert symbols is not None
    shown = [(s.name, s.detail) for s in symbols if isinstance(s, lsp.DocumentSymbol)]
    assert shown == [
        ("auth_retry_storm", "detect · critical"),
        ("auth_slow_login", "expect · warning"),
        ("w", "expect · warning · window 1m"),
    ]
    folds = await client.text_document_folding_range_async(lsp.FoldingRangeParams(text_document=ident))
    assert folds is not None
    regions = {(f.start_line, f.end_line, f.kind) for f in folds}
    assert (3, 7, lsp.FoldingRangeKind.Region) in regions  # rule auth_retry_storm
    assert (0, 2, lsp.FoldingRangeKind.Comment) in regions  # three comment lines


async def test_semantic_tokens_classify_names_from_the_typechecker(client: LanguageClient, tmp_path: Path) -> None:
    text = "rule a { // c\n  detect trace.spans.where(status == error and amount > 1).count() > 0\n}\n"
    uri = open_doc(client, tmp_path / "tokens.fluo", text)
    result = await client.text_document_semantic_tokens_full_async(
        lsp.SemanticTokensParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
    )
    assert result is not None
    legend = TOKEN_TYPES  # the legend the server declares
    lines = text.split("\n")
    decoded = []
    line = col = 0
    data = result.data
    for i in range(0, len(data), 5):
        line += data[i]
        col = data[i + 1] if data[i] else col + data[i + 1]
        decoded.append((lines[line][col : col + data[i + 2]], legend[data[i + 3]]))
    assert decoded[:4] == [("rule", "keyword"), ("a", "function"), ("// c", "comment"), ("detect", "keyword")]
    kinds = dict(decoded)
    assert kinds["where"] == "method" and kinds["status"] == "property" and kinds["error"] == "enumMember"
    assert kinds["amount"] == "variable" and kinds["1"] == "number" and kinds["=="] == "operator"
    window = "rule w {\n  window 1m\n  expect window.spans.count() > 0\n}\n"
    uri = open_doc(client, tmp_path / "window.fluo", window)
    result = await client.text_document_semantic_tokens_full_async(
        lsp.SemanticTokensParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
    )
    assert result is not None
    at: dict[tuple[int, int], tuple[str, int]] = {}
    line = col = 0
    for i in range(0, len(result.data), 5):
        line += result.data[i]
        col = result.data[i + 1] if result.data[i] else col + result.data[i + 1]
        at[(line, col)] = (legend[result.data[i + 3]], result.data[i + 4])
    # `window 1m` is a keyword; `window` in `window.spans` a root, a defaultLibrary variable as `trace` is (QA)
    assert (at[(1, 2)], at[(2, 9)]) == (("keyword", 0), ("variable", 2))


async def semantic_tokens(client: LanguageClient, path: Path, text: str) -> list[tuple[str, str, int]]:
    """(text, type, modifiers) of each semantic token, its columns counted in UTF-16 code units."""
    uri = open_doc(client, path, text)
    result = await client.text_document_semantic_tokens_full_async(
        lsp.SemanticTokensParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
    )
    assert result is not None
    lines = [line.encode("utf-16-le") for line in text.split("\n")]
    out = []
    line = col = 0
    for i in range(0, len(result.data), 5):
        line += result.data[i]
        col = result.data[i + 1] if result.data[i] else col + result.data[i + 1]
        units = lines[line][2 * col : 2 * (col + result.data[i + 2])]
        out.append((units.decode("utf-16-le"), TOKEN_TYPES[result.data[i + 3]], result.data[i + 4]))
    return out


FULL_WIDTH_AB, BOLD_X = "\uff41\uff42", "\U0001d431"  # full-width `ab`; a bold `x`, two UTF-16 code units
PAST_ASCII = (
    "rule sérvice {\n  sévérity: critical\n"
    f"  expect trace.spans.where(usuário.id == '😀' and {FULL_WIDTH_AB} > 1 and {BOLD_X}y > 2"
    f' and http.usua\u0301rio == "é{BOLD_X}").count() > 0 // 😀 {BOLD_X}\n}}\n'
)
"""Names the lexer splits at each letter past ASCII: accented (one decomposed), full-width, astral; and
such letters in a string and a comment."""

PLAIN = (
    "rule service {\n  severity: critical\n"
    "  expect trace.spans.where(usuario.id == 'xy' and ab > 1 and xyz > 2"
    ' and http.usuario == "abc").count() > 0 // x y\n}\n'
)
"""`PAST_ASCII` in ASCII: a rule id, a metadata key and attribute keys."""


async def test_semantic_tokens_never_split_a_name_past_ascii(client: LanguageClient, tmp_path: Path) -> None:
    """Each such name is one token, of the type its ASCII spelling gets (editor tour: `usuário.id` came out as
    `usu` and `rio`), at UTF-16 columns."""
    tokens = await semantic_tokens(client, tmp_path / "past_ascii.fluo", PAST_ASCII)
    plain = await semantic_tokens(client, tmp_path / "plain.fluo", PLAIN)
    assert [(kind, mods) for _, kind, mods in tokens] == [(kind, mods) for _, kind, mods in plain]
    words = {text for text, kind, _ in tokens if kind in ("function", "property", "variable", "string", "comment")}
    names = {"sérvice", "sévérity", "usuário", FULL_WIDTH_AB, BOLD_X + "y", "usua\u0301rio"}
    assert names | {"'😀'", f'"é{BOLD_X}"', f"// 😀 {BOLD_X}"} <= words
    assert ("id", "variable", 0) in tokens


# -- formatting and code actions -----------------------------------------------------


async def test_formatting_uses_the_canonical_formatter(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "fmt.fluo", "rule a {severity:error expect trace.spans.count()<9} // done\n")
    params = lsp.DocumentFormattingParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), options=lsp.FormattingOptions(tab_size=2, insert_spaces=True)
    )
    edits = await client.text_document_formatting_async(params)
    assert edits is not None and len(edits) == 1
    assert edits[0].new_text == "rule a {\n  severity: error\n  expect trace.spans.count() < 9\n} // done\n"
    assert edits[0].range == rng(0, 0, 1, 0)
    broken = open_doc(client, tmp_path / "fmt_broken.fluo", "rule a {expect trace.spans.count(<9}\n")
    params.text_document = lsp.TextDocumentIdentifier(uri=broken)
    assert await client.text_document_formatting_async(params) is None


async def test_code_actions_apply_did_you_mean_and_add_severity(client: LanguageClient, tmp_path: Path) -> None:
    text = "rule a {\n  expect trace.spans.whree(status == error).count() == 0\n}\n"
    uri = open_doc(client, tmp_path / "fix.fluo", text)
    await diagnostics(client, uri, lambda d: len(d) == 1)
    result = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=rng(1, 23, 1, 23),
            context=lsp.CodeActionContext(diagnostics=list(client.diagnostics[uri])),
        )
    )
    assert result is not None
    actions = {a.title: a for a in result if isinstance(a, lsp.CodeAction)}
    assert set(actions) == {"Change to `where`", "Add `severity: warning` to rule `a`"}
    fix = actions["Change to `where`"]
    assert fix.edit is not None and fix.edit.changes is not None
    assert list(fix.edit.changes[uri]) == [lsp.TextEdit(range=rng(1, 21, 1, 26), new_text="where")]
    add = actions["Add `severity: warning` to rule `a`"].edit
    assert add is not None and add.changes is not None
    assert list(add.changes[uri]) == [lsp.TextEdit(range=rng(0, 8, 0, 8), new_text="\n  severity: warning")]


@pytest.mark.parametrize(
    ("line", "preferred", "title"),
    [
        ("expect trace.spans.where(servce == 'a').exists()", True, "Change to `service`"),
        (  # `servce > 5` is quiet: no string is `> 5`, so `servce` reads as meant (an attribute)
            "expect trace.spans.where(stauts == 'server').exists()",
            False,
            "Change to `status` (then FLUO304: `server` is not a status (one of ok, error, unset))",
        ),
        ("severty: warning", False, "Change to `severity` (then FLUO211: duplicate metadata key `severity`)"),
        ("enabled: ture", True, "Change to `true`"),
        (  # QA (editor tour r04): named in the message ("did you mean `where`?"), but no action was offered
            "expect trace.spans.whree(duration > 1s).cuont() > 0",
            False,
            "Change to `where` (then FLUO201: unknown method `cuont` on spans; did you mean `count`?)",
        ),
        (
            "expect trace.spans.cont()",
            False,
            "Change to `count` (then FLUO301: the `expect` expression must be a boolean, found int)",
        ),
    ],
    ids=["checks", "type-error", "duplicate-key", "enabled-value", "unfit-method", "unfit-in-a-clause"],
)
async def test_a_did_you_mean_that_gives_an_error_is_not_preferred(
    client: LanguageClient, tmp_path: Path, line: str, preferred: bool, title: str
) -> None:
    """QA 2: the preferred fix (applied by auto-fix) turned a file with a warning into one with an error.
    Such a fix is still offered (the name may be right, the comparison the bug), not preferred, and says why."""
    clause = "" if line.startswith("expect") else "  expect trace.spans.count() > 1\n"
    text = f"rule a {{\n  severity: info\n  {line}\n{clause}}}\n"
    uri = open_doc(client, tmp_path / "prefer.fluo", text)
    await diagnostics(client, uri, lambda d: len(d) > 0)
    result = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=rng(2, 0, 2, 40),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    assert result is not None
    [fix] = [a for a in result if isinstance(a, lsp.CodeAction) and a.title.startswith("Change to")]
    assert (fix.title, fix.is_preferred) == (title, preferred)


async def test_rename_refuses_an_id_a_sibling_folder_uses_and_edits_the_tests_of_every_folder(
    client: LanguageClient, workspace: Path, tmp_path: Path
) -> None:
    """A rename to an id a rule in a sibling folder defines was accepted (only the rule's own folder and its tests
    were looked at), and `fluo check .` from the workspace folder, which searches it whole, then failed CI with
    FLUO213: such a rename is refused, naming the rule it would clash with. An accepted one edits the test files
    of every folder that load the rule (`*_test.yaml` and `*.fluotest.yaml`)."""
    base = workspace / "renaming_across"
    for folder in ("team_a", "team_b/deep", "tests"):
        (base / folder).mkdir(parents=True)
    (base / "team_a" / "orders.fluo").write_text(ORDERS)
    (base / "team_b" / "deep" / "payments.fluo").write_text("// payments\nrule pay_late {\n  expect true\n}\n")
    (base / "tests" / "orders.fluotest.yaml").write_text(f"rules: [../team_a/orders.fluo]\n{ORDERS_TEST}")
    (base / "tests" / "all_test.yaml").write_text(f"rules: [../team_a]\n{ORDERS_TEST}")
    rules = lsp.TextDocumentIdentifier(uri=(base / "team_a" / "orders.fluo").as_uri())
    with pytest.raises(JsonRpcException) as refused:
        await client.text_document_rename_async(lsp.RenameParams(rules, lsp.Position(0, 8), "pay_late"))
    assert refused.value.code == -32803
    assert str(refused.value) == (
        "rule id `pay_late` is already defined at renaming_across/team_b/deep/payments.fluo:2:6, which "
        "`fluo check .` run in the workspace folder loads with `slow_order`: it would be a duplicate rule id (FLUO213)"
    )
    renamed = tmp_path / "renamed"  # what CI would have said had the rename been made
    shutil.copytree(base, renamed)
    (renamed / "team_a" / "orders.fluo").write_text(ORDERS.replace("slow_order", "pay_late"))
    checked = subprocess.run(
        [sys.executable, "-m", "fluo_run.cli", "check", "."], cwd=renamed, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 1 and "FLUO213" in checked.stdout, checked.stdout + checked.stderr

    edit = await client.text_document_rename_async(lsp.RenameParams(rules, lsp.Position(0, 8), "late_order"))
    assert edit is not None and edit.changes is not None
    in_test = [(5, 14), (6, 16), (7, 11)]
    assert {uri: sorted((e.range.start.line, e.range.start.character) for e in edits if e.new_text == "late_order")
            for uri, edits in edit.changes.items()} == {
        rules.uri: [(0, 5)],
        (base / "tests" / "orders.fluotest.yaml").as_uri(): in_test,
        (base / "tests" / "all_test.yaml").as_uri(): in_test,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("line", "word", "fix", "then"),
    [
        ("severty: critcal", "severty", "severity", "FLUO212: severity must be one of"),
        ("expect trace.spans.whree(duration > 1s).cuont() > 0", "whree", "where", "FLUO201: unknown method `cuont`"),
        ("expect trace.spans.where(stauts == 'server').exists()", "stauts", "status", None),
        ("expect trace.spans.cuont() > 'a'", "cuont", "count", None),
    ],
    ids=["metadata-value", "method-after", "fix-changes-meaning", "masked-type-error"],
)
async def test_a_did_you_mean_asked_at_its_slip_is_preferred_beside_another_slip(
    client: LanguageClient, tmp_path: Path, line: str, word: str, fix: str, then: str | None
) -> None:
    """A did-you-mean was not preferred when another slip was on its line: the fix lets the checker reach that
    slip (`critcal` once the key is `severity`), whose error counted as the fix's. Asked with the cursor on the
    slip (as auto-fix asks), its one fix is preferred when the only new errors are other slips, away from the
    edit, with fixes of their own (`then`); a new error without one (`then` None) still holds it back. Asked
    over the whole line, it is as before: not preferred, its title naming the error it leads to."""
    clause = "" if line.startswith("expect") else "  expect trace.spans.count() > 1\n"
    text = f"rule a {{\n  severity: info\n  {line}\n{clause}}}\n"
    if line.startswith("severty"):
        text = text.replace("  severity: info\n", "")
    uri = open_doc(client, tmp_path / "slips.fluo", text)
    await diagnostics(client, uri, lambda d: len(d) > 0)
    row = text.splitlines().index(f"  {line}")
    cursor = text.splitlines()[row].index(word) + 2

    async def fix_at(start: int, end: int) -> lsp.CodeAction:
        result = await client.text_document_code_action_async(
            lsp.CodeActionParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                range=rng(row, start, row, end),
                context=lsp.CodeActionContext(diagnostics=[]),
            )
        )
        assert result is not None
        [found] = [a for a in result if isinstance(a, lsp.CodeAction) and a.title.startswith("Change to")]
        return found

    at_slip = await fix_at(cursor, cursor)
    if then is None:
        assert at_slip.title.startswith(f"Change to `{fix}` (then FLUO") and not at_slip.is_preferred
    else:
        assert (at_slip.title, at_slip.is_preferred) == (f"Change to `{fix}`", True)
    whole_line = await fix_at(0, len(line) + 2)
    assert whole_line.title.startswith(f"Change to `{fix}` (then {then or 'FLUO'}") and not whole_line.is_preferred


# -- rule test files -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rule a { expect true }\n", "rule a { severity: warning expect true }\n"),
        ("rule a {\r\n  expect true\r\n}\r\n", "rule a {\r\n  severity: warning\r\n  expect true\r\n}\r\n"),
        ("rule a { // c\n    expect true\n}\n", "rule a { // c\n    severity: warning\n    expect true\n}\n"),
    ],
    ids=["one-line", "crlf", "comment-and-indent"],
)
async def test_adding_severity_keeps_the_rules_layout(
    client: LanguageClient, tmp_path: Path, text: str, expected: str
) -> None:
    """On a line of its own as the file's lines end, or inside a one-line rule (QA L5)."""
    uri = open_doc(client, tmp_path / "layout.fluo", text)
    result = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=rng(0, 0, 0, 0),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    assert result is not None
    [add] = [a for a in result if isinstance(a, lsp.CodeAction) and a.title.startswith("Add `severity")]
    assert add.edit is not None and add.edit.changes is not None
    [edit] = add.edit.changes[uri]
    assert edit.range.start == edit.range.end
    lines = text.splitlines(keepends=True)
    offset = sum(len(x) for x in lines[: edit.range.start.line]) + edit.range.start.character
    assert text[:offset] + edit.new_text + text[offset:] == expected


async def test_test_files_get_diagnostics_for_unknown_rules_and_missing_fixtures(
    client: LanguageClient, workspace: Path
) -> None:
    path = workspace / "rules" / "auth_test.yaml"
    uri = open_doc(client, path, TEST_FILE, language="yaml")
    diags = await diagnostics(client, uri)
    got = sorted((d.code, d.range.start.line, d.range.start.character, d.message) for d in diags)
    assert got == [
        ("missing-fixture", 8, 12, "trace file `fixtures/missing.json` not found"),
        ("unknown-rule", 6, 15, "no rule `auth_retry_strom` in auth.fluo; did you mean `auth_retry_storm`?"),
    ]


async def test_an_unknown_rule_in_a_test_file_has_its_did_you_mean_as_a_quick_fix(
    client: LanguageClient, workspace: Path
) -> None:
    """Editor tour: `unknown-rule` said "did you mean `auth_retry_storm`?" but offered no fix."""
    uri = open_doc(client, workspace / "rules" / "fix_test.yaml", TEST_FILE, language="yaml")
    diags = await diagnostics(client, uri, lambda d: any(x.code == "unknown-rule" for x in d))
    [unknown] = [d for d in diags if d.code == "unknown-rule"]
    result = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            lsp.TextDocumentIdentifier(uri), unknown.range, lsp.CodeActionContext(diagnostics=[unknown])
        )
    )
    assert result is not None
    [fix] = [a for a in result if isinstance(a, lsp.CodeAction)]
    assert fix.title == "Change to `auth_retry_storm`" and fix.is_preferred
    assert fix.edit is not None and list(fix.edit.changes[uri]) == [lsp.TextEdit(unknown.range, "auth_retry_storm")]
    elsewhere = await client.text_document_code_action_async(
        lsp.CodeActionParams(lsp.TextDocumentIdentifier(uri), rng(0, 0, 0, 1), lsp.CodeActionContext(diagnostics=[]))
    )
    assert not elsewhere


SLIPS_TEST = """\
rules: [auth.fluo]
cases:
  - name: one
    spans: [{name: x, servce: auth}]
    expect: []
  - name: two
    spans:
      - name: y
        status: "eror"
    expect: []
  - name: three
    spans: [{name: z, kind: servr}]
    exepct: []
"""


async def test_a_test_file_did_you_mean_has_its_quick_fix_on_the_slip(client: LanguageClient, workspace: Path) -> None:
    """QA editor (item 5): only `unknown-rule` had a quick fix; `fluo test`'s did-you-means (`servce` -> `service`,
    `status: eror` -> `error`) had none. Each gets the fix its message names, on the slip alone (inside its
    quotes if it has some), preferred when `fluo test`'s reader then finds no new problem."""
    uri = open_doc(client, workspace / "rules" / "slips_test.yaml", SLIPS_TEST, language="yaml")
    diags = await diagnostics(client, uri, lambda d: len(d) == 4)
    fixes = {}
    for d in diags:
        result = await client.text_document_code_action_async(
            lsp.CodeActionParams(lsp.TextDocumentIdentifier(uri), d.range, lsp.CodeActionContext(diagnostics=[d]))
        )
        for a in result or []:
            assert isinstance(a, lsp.CodeAction) and a.edit is not None and a.edit.changes is not None
            [edit] = a.edit.changes[uri]
            fixes[d.range.start.line] = (a.title, edit.range, edit.new_text, a.is_preferred)
    assert fixes == {
        3: ("Change to `service`", rng(3, 22, 3, 28), "service", True),
        8: ("Change to `error`", rng(8, 17, 8, 21), "error", True),
        11: ("Change to `server`", rng(11, 28, 11, 33), "server", True),
        12: ("Change to `expect`", rng(12, 4, 12, 10), "expect", True),
    }


@pytest.mark.parametrize(
    "line",
    [
        "      - rule: |",
        "      - rule: auth_|",
        "      - rule: 'a|'",
        "      - {rule: |}",
        "      - {rule: au|th_x, count: 1}",
    ],
)
async def test_rule_ids_complete_after_rule_in_a_test_file(client: LanguageClient, workspace: Path, line: str) -> None:
    """Editor tour: no completion of rule ids after `rule:` in a test file; it offers those of its rule files."""
    text = f"rules: [auth.fluo]\ncases:\n  - name: c\n    spans: [{{name: a}}]\n    expect:\n{line}\n"
    body, pos = at(text)
    uri = open_doc(client, workspace / "rules" / "ids_test.yaml", body, language="yaml")
    result = await client.text_document_completion_async(lsp.CompletionParams(lsp.TextDocumentIdentifier(uri), pos))
    assert isinstance(result, lsp.CompletionList)
    assert [i.label for i in result.items] == ["auth_retry_storm", "auth_slow_login"]
    edit = result.items[0].text_edit
    assert isinstance(edit, lsp.TextEdit)
    written = body.split("\n")[5]
    written = written[: edit.range.start.character] + "auth_retry_storm" + written[edit.range.end.character :]
    assert "rule: auth_retry_storm" in written or "rule: 'auth_retry_storm'" in written, written
    body, pos = at("rules: [auth.fluo]\nca|")
    uri = open_doc(client, workspace / "rules" / "ids2_test.yaml", body, language="yaml")
    result = await client.text_document_completion_async(lsp.CompletionParams(lsp.TextDocumentIdentifier(uri), pos))
    assert isinstance(result, lsp.CompletionList) and not result.items  # no `rule:` before the cursor


async def test_test_files_get_what_fluo_test_would_reject(client: LanguageClient, workspace: Path) -> None:
    """`fluo test`'s own reader checks the buffer: each problem covers its line, with the runner's words."""
    text = """\
rules: [auth.fluo]
cases:
  - name: typo
    traces: ../traces/storm.json
    expcet: []
  - name: nothing to run on
    expect:
      - {rule: auth_retry_storm, count: -1}
  - name: inline
    spans: [{name: login, duration: soon}]
"""
    uri = open_doc(client, workspace / "rules" / "shape_test.yaml", text, language="yaml")
    diags = await diagnostics(client, uri)
    got = [(d.code, d.range, d.message) for d in sorted(diags, key=lambda d: d.range.start.line)]
    assert got == [
        ("test-file", rng(4, 4, 4, 14), "unknown key `expcet` in case 'typo'; did you mean `expect`?"),
        ("test-file", rng(5, 2, 5, 27), "case 'nothing to run on' has no `traces:` or `spans:` to run the rules on"),
        ("test-file", rng(7, 6, 7, 43), "`count:` must be a whole number 0 or more, got -1"),
        (
            "test-file",
            rng(9, 4, 9, 42),
            "case 'inline': span 1 ('login'), `duration`: "
            "expected a duration with a unit, like 20ms or 1.5s, got 'soon'",
        ),
    ]


async def test_another_tools_test_yaml_gets_no_diagnostics(client: LanguageClient, workspace: Path) -> None:
    helm = "suite: deployment\ntemplates: [deployment.yaml]\ntests:\n  - it: sets the image\n"
    uri = open_doc(client, workspace / "rules" / "deployment_test.yaml", helm, language="yaml")
    assert list(await diagnostics(client, uri)) == []
    fluo_file = "# a FLUO test once it has a top-level cases: or rules: key\ncases: []\n"
    uri = open_doc(client, workspace / "rules" / "new_test.yaml", fluo_file, language="yaml")
    assert [d.message for d in await diagnostics(client, uri)] != []


async def test_test_files_see_open_rule_files_as_edited(client: LanguageClient, workspace: Path) -> None:
    """A rule file open with a type error: the test file says its rules do not check, as `fluo test` would."""
    test_uri = open_doc(client, workspace / "rules" / "auth_test.yaml", TEST_FILE, language="yaml")
    await diagnostics(client, test_uri, lambda d: len(d) == 2)
    rules_uri = open_doc(client, workspace / "rules" / "auth.fluo", AUTH.replace("count() > 50", "count() > 'x'"))
    await diagnostics(client, rules_uri, lambda d: len(d) > 0)
    diags = await diagnostics(client, test_uri, lambda d: any(x.code == "test-file" for x in d))
    [broken] = [d for d in diags if d.code == "test-file"]
    assert broken.range == rng(0, 0, 0, 18)
    assert broken.message.startswith("the rules do not check (1 error: FLUO")
    client.text_document_did_close(
        lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=rules_uri))
    )
    await diagnostics(client, test_uri, lambda d: len(d) == 2 and all(x.code != "test-file" for x in d))


async def test_a_rule_file_on_disk_that_is_not_utf8_is_read_as_fluo_check_reads_it(
    client: LanguageClient, workspace: Path
) -> None:
    """QA (editor tour r05): no rule of it is loaded (no FLUO213 on an open file beside it), and a test file
    naming it says what `fluo test` says, not the checker's errors over the replaced bytes."""
    folder = workspace / "latin1"
    folder.mkdir()
    (folder / "0bad.fluo").write_bytes(b"rule x { expect true } // caf\xe9\n")
    (folder / "bad2.fluo").write_bytes(b"rule y { expect true } // caf\xe9\n")
    a = open_doc(client, folder / "a.fluo", "rule x { expect true }\n")
    text = "rules: [bad2.fluo]\ncases:\n  - name: one\n    spans: [{name: a}]\n    expect: [y]\n"
    t = open_doc(client, folder / "t_test.yaml", text, language="yaml")
    diags = await diagnostics(client, t, lambda d: len(d) > 0)
    unreadable = "not UTF-8: byte 0xe9 at line 1, column 30; save it as UTF-8"
    assert [(d.code, d.message) for d in diags] == [("test-file", f"cannot read latin1/bad2.fluo: {unreadable}")]
    assert list(await diagnostics(client, a)) == []


async def test_definition_and_references_link_rule_ids_and_tests(client: LanguageClient, workspace: Path) -> None:
    test_uri = open_doc(client, workspace / "rules" / "auth_test.yaml", TEST_FILE, language="yaml")
    rules_uri = (workspace / "rules" / "auth.fluo").as_uri()
    found = await client.text_document_definition_async(
        lsp.DefinitionParams(
            text_document=lsp.TextDocumentIdentifier(uri=test_uri), position=lsp.Position(line=5, character=16)
        )
    )
    assert isinstance(found, list)
    assert [(loc.uri, loc.range) for loc in found] == [(rules_uri, rng(1, 5, 1, 21))]
    refs = await client.text_document_references_async(
        lsp.ReferenceParams(
            text_document=lsp.TextDocumentIdentifier(uri=rules_uri),
            position=lsp.Position(line=1, character=10),
            context=lsp.ReferenceContext(include_declaration=True),
        )
    )
    assert refs is not None
    assert [(loc.uri, loc.range) for loc in refs] == [(rules_uri, rng(1, 5, 1, 21)), (test_uri, rng(5, 14, 5, 30))]


GOOD_TEST = "rules: [auth.fluo]\ncases:\n  - name: storm\n    spans: [{name: x}]\n    expect: [auth_retry_storm]\n"


@pytest.mark.parametrize(
    ("text", "message", "where"),
    [
        (GOOD_TEST.replace("storm\n", "storm\x07\n", 1), "unacceptable character #x0007", rng(2, 15, 2, 16)),
        (GOOD_TEST + "\x00", "unacceptable character #x0000", rng(5, 0, 5, 1)),
        # read by libyaml, as `fluo test` reads it: PyYAML 6.0.4 bounds the nesting itself ("exceeded maximum nesting
        # depth"), older ones read it whole and `fluo test`'s own depth refuses it; either way on the `cases:` line
        ("rules: [auth.fluo]\ncases: " + "[" * 3000 + "]" * 3000 + "\n", "nest", None),
        # readable, but deeper than `fluo test` takes (MAX_DEPTH 200, the file's mapping the first level)
        ("rules: [auth.fluo]\ncases: " + "[" * 300 + "]" * 300 + "\n", "more than 200 levels", rng(1, 206, 1, 207)),
    ],
    ids=["control-character", "nul", "deep", "deeper-than-fluo-test-takes"],
)
async def test_yaml_a_test_file_cannot_hold_is_one_diagnostic_not_a_crash(
    client: LanguageClient, workspace: Path, text: str, message: str, where: lsp.Range | None
) -> None:
    """As `fluo test` reports such a file (QA M1: diagnostics answered -32603, references failed workspace-wide)."""
    folder = workspace / "broken"
    folder.mkdir(exist_ok=True)
    path = folder / "bad_test.yaml"
    path.write_text(text)
    try:
        uri = open_doc(client, path, text, language="yaml")
        [pushed] = await diagnostics(client, uri)
        if where is None:  # as the installed PyYAML reads it (above)
            assert pushed.code == "yaml" and pushed.range.start.line == 1 and message in pushed.message
        else:
            assert (pushed.code, pushed.range) == ("yaml", where) and message in pushed.message
        await client.text_document_definition_async(
            lsp.DefinitionParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(0, 10))
        )
        client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(uri=uri)))
        rules_uri = (workspace / "rules" / "auth.fluo").as_uri()
        refs = await client.text_document_references_async(  # the broken file, on disk only, is passed over
            lsp.ReferenceParams(
                text_document=lsp.TextDocumentIdentifier(uri=rules_uri),
                position=lsp.Position(line=1, character=10),
                context=lsp.ReferenceContext(include_declaration=False),
            )
        )
        assert refs is not None and [loc.uri for loc in refs] == [(workspace / "rules" / "auth_test.yaml").as_uri()]
    finally:
        path.unlink()


async def test_unsaved_documents_in_the_fluo_language_are_checked(client: LanguageClient) -> None:
    uri = "untitled:Untitled-1"
    item = lsp.TextDocumentItem(uri=uri, language_id="fluo", version=1, text="trace.spans.cuont() > 1\n")
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=item))
    [d] = await diagnostics(client, uri)
    assert (d.code, d.range) == ("FLUO201", rng(0, 12, 0, 17))


async def test_rapid_changes_are_checked_once_after_the_debounce(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "typing.fluo", "rule a {\n  expect true\n}\n")
    await diagnostics(client, uri)
    published: list[int | None] = []
    for version, text in enumerate(["rule a {\n  expect t\n}\n", "rule a {\n  expect tr\n}\n"], start=2):
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=4),
            content_changes=[lsp.TextDocumentContentChangeWholeDocument(text="rule a {\n  expect trace.spans\n}\n")],
        )
    )
    for _ in range(100):
        params = await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        if params.uri == uri:
            published.append(params.version)
            break
    assert published == [4]  # the intermediate versions were never checked
    assert list(client.diagnostics[uri]) == []


async def test_test_file_diagnostics_follow_edits_to_the_rule_file(client: LanguageClient, workspace: Path) -> None:
    test_uri = open_doc(client, workspace / "rules" / "auth_test.yaml", TEST_FILE, language="yaml")
    await diagnostics(client, test_uri, lambda d: any(x.code == "unknown-rule" for x in d))
    rules = AUTH + "\nrule auth_retry_strom {\n  detect trace.spans.count() > 1\n}\n"
    rules_uri = open_doc(client, workspace / "rules" / "auth.fluo", rules)
    await diagnostics(client, rules_uri)
    await diagnostics(client, test_uri, lambda d: [x.code for x in d] == ["missing-fixture"])
    client.text_document_did_close(
        lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=rules_uri))
    )
    await diagnostics(client, test_uri, lambda d: len(d) == 2)  # back to the file on disk


async def test_a_rule_id_defined_in_another_file_of_the_folder_is_fluo213(
    client: LanguageClient, tmp_path: Path
) -> None:
    """As `fluo check FOLDER` says it: on the later file in name order; fixing either file clears it."""
    folder = tmp_path / "dups"
    folder.mkdir()
    rule = "rule a {\n  expect true\n}\n"
    one = open_doc(client, folder / "one.fluo", rule)
    await diagnostics(client, one)
    two = open_doc(client, folder / "two.fluo", rule)
    [d] = await diagnostics(client, two, lambda d: len(d) == 1)
    assert (d.code, d.range, d.message) == (
        "FLUO213",
        rng(0, 5, 0, 6),
        f"rule id `a` is already defined at {folder / 'one.fluo'}:1:6",
    )
    assert d.related_information is not None and d.related_information[0].location.uri == one
    assert list(client.diagnostics[one]) == []
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=one, version=2),
            content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=rule.replace("rule a", "rule b"))],
        )
    )
    await diagnostics(client, two, lambda d: len(d) == 0)  # the other file's edit refreshed this one


async def test_closing_a_rule_file_unsaved_refreshes_the_rule_files_beside_it(
    client: LanguageClient, tmp_path: Path
) -> None:
    """Closed without saving, a file counts as it is on disk again, for its siblings too (QA L1)."""
    folder = tmp_path / "closing"
    folder.mkdir()
    (folder / "a.fluo").write_text("rule y {\n  expect true\n}\n")
    b = open_doc(client, folder / "b.fluo", "rule x {\n  expect true\n}\n")
    a = open_doc(client, folder / "a.fluo", "rule y {\n  expect true\n}\nrule x {\n  expect true\n}\n")
    await diagnostics(client, b, lambda d: [x.code for x in d] == ["FLUO213"])
    client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(uri=a)))
    await diagnostics(client, b, lambda d: len(d) == 0)


def _lsp_glob(pattern: str) -> re.Pattern[str]:
    """An LSP glob pattern (`**`, `*`, `?`, `{a,b}`, `[a-z]`) as a regular expression over `/`-separated paths."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]", end + 1
        elif pattern[i] == "{":
            end = pattern.index("}", i)
            out, i = out + "(?:" + "|".join(map(re.escape, pattern[i + 1 : end].split(","))) + ")", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


async def test_changes_on_disk_refresh_the_open_documents(client: LanguageClient, tmp_path: Path) -> None:
    """The server asks to watch rule, test and trace files; a fixture created on disk clears `missing-fixture`
    without an edit to the test file (QA L2)."""
    for _ in range(500):  # asked for after `initialized`, which the client does not wait on
        if REGISTERED:
            break
        await asyncio.sleep(0.02)
    [watch] = [r for r in REGISTERED if r.method == lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES]
    assert isinstance(watch.register_options, dict)
    patterns = [w["globPattern"] for w in watch.register_options["watchers"]]
    assert {"**/*.fluo", "**/*_test.yaml", "**/*.fluotest.yaml"} <= set(patterns)
    # every name `is_trace_file_name` takes, in any case (`T.JSON` was left to the 5 s rescan), and no other
    for name in [
        "t.json",
        "T.JSON",
        "t.Jsonl",
        "x.NDJSON",
        "x.pb",
        "x.BinPb",
        "x.PROTOBUF",
        "t.json.GZ",
        "t.txt",
        "x.jso",
    ]:
        watched = any(_lsp_glob(p).fullmatch(f"fx/{name}") for p in patterns)
        assert watched == is_trace_file_name(name), name
    (tmp_path / "auth.fluo").write_text("rule storm {\n  detect trace.spans.count() > 50\n}\n")
    text = "rules: [auth.fluo]\ncases:\n  - name: s\n    traces: fx/t.json\n    expect: []\n"
    uri = open_doc(client, tmp_path / "auth_test.yaml", text, language="yaml")
    await diagnostics(client, uri, lambda d: [x.code for x in d] == ["missing-fixture"])
    (tmp_path / "fx").mkdir()
    (tmp_path / "fx" / "t.json").write_text(json.dumps(otlp_trace()))
    changes = [lsp.FileEvent(uri=(tmp_path / "fx" / "t.json").as_uri(), type=lsp.FileChangeType.Created)]
    client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(changes=changes))
    await diagnostics(client, uri, lambda d: len(d) == 0)


async def test_a_rule_file_rewritten_with_its_modification_time_kept_is_read_again(
    client: LanguageClient, tmp_path: Path
) -> None:
    """QA (editor tour r02): `rsync -t`, `cp -p` or `tar x` rewrote a rule file, same size, same modification time;
    the open test file kept its `unknown-rule` even after the watcher's event."""
    import os

    rules = tmp_path / "auth.fluo"
    rules.write_text("rule gale {\n  detect trace.spans.count() > 5\n}\n")
    text = "cases:\n  - name: one\n    spans: [{name: a}]\n    expect: [{rule: storm}]\n"
    uri = open_doc(client, tmp_path / "auth_test.yaml", text, language="yaml")
    await diagnostics(client, uri, lambda d: [x.code for x in d] == ["unknown-rule"])
    before = rules.stat()
    rules.write_text("rule storm {\n  detect trace.spans.count() > 5\n}\n")
    os.utime(rules, ns=(before.st_atime_ns, before.st_mtime_ns))
    changes = [lsp.FileEvent(uri=rules.as_uri(), type=lsp.FileChangeType.Changed)]
    client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(changes=changes))
    await diagnostics(client, uri, lambda d: len(d) == 0)


async def test_disk_changes_to_open_files_and_skipped_folders_refresh_nothing(
    client: LanguageClient, workspace: Path
) -> None:
    """QA: a save was checked twice (the save, then the watcher's event for the same file), and every
    `package.json` change in `node_modules` checked every open file again."""
    folder = workspace / "watch"
    (folder / "node_modules" / "x").mkdir(parents=True)
    uri = open_doc(client, folder / "a.fluo", "rule watched_a {\n  expect 1\n}\n")  # a diagnostic: a new list each time
    await diagnostics(client, uri, lambda d: len(d) == 1)

    async def republished_after(*paths: Path) -> bool:
        before = client.diagnostics[uri]
        changes = [lsp.FileEvent(uri=p.as_uri(), type=lsp.FileChangeType.Changed) for p in paths]
        client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(changes=changes))
        await client.text_document_document_symbol_async(  # answered after what the notification published
            lsp.DocumentSymbolParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
        )
        return client.diagnostics[uri] is not before

    assert not await republished_after(folder / "a.fluo", folder / "node_modules" / "x" / "package.json")
    assert not await republished_after(folder / ".cache" / "t.json")
    assert await republished_after(folder / "b.fluo")  # a rule file not open: its ids may clash with a.fluo's


async def test_definition_on_a_folder_gives_its_files(client: LanguageClient, workspace: Path) -> None:
    """An editor opens files, not folders: `rules: [.]` and `traces: ../traces` go to the files in them."""
    text = "rules: [.]\ncases:\n  - name: all\n    traces: ../traces\n    expect: []\n"
    uri = open_doc(client, workspace / "rules" / "folders_test.yaml", text, language="yaml")
    found = {}
    for line, col in ((0, 8), (3, 14)):
        got = await client.text_document_definition_async(
            lsp.DefinitionParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(line=line, character=col)
            )
        )
        assert isinstance(got, list)
        found[line] = sorted(Path(loc.uri.removeprefix("file://")).name for loc in got)
    assert found[0] == sorted(p.name for p in (workspace / "rules").glob("*.fluo"))
    assert found[3] == ["storm.json"]


ORDERS = "rule slow_order {\n  expect true\n}\n\nrule other {\n  expect true\n}\n"
ORDERS_TEST = """\
cases:
  - name: one
    spans: [{name: x}]
    expect:
      - rule: slow_order
      - {rule: 'slow_order'}
    only: [slow_order, other]
"""


async def test_rename_a_rule_id_in_its_file_and_in_the_tests_that_load_it(
    client: LanguageClient, workspace: Path
) -> None:
    """A rule id is renamed where it is defined and where each test file loading its rule file expects it (by
    name or through a folder), as references finds them; a test file loading another file with that id is left
    alone, and so is the other rule's `only:` entry."""
    folder = workspace / "renaming"
    (folder / "sub").mkdir(parents=True)
    (folder / "orders.fluo").write_text(ORDERS)
    (folder / "beside.fluo").write_text("rule beside_id {\n  expect true\n}\n")
    (folder / "orders_test.yaml").write_text(ORDERS_TEST)  # loads orders.fluo, its default
    (folder / "sub" / "folder_test.yaml").write_text(f"rules: [..]\n{ORDERS_TEST}")
    (workspace / "elsewhere").mkdir()
    (workspace / "elsewhere" / "orders.fluo").write_text(ORDERS)
    (workspace / "elsewhere" / "orders_test.yaml").write_text(ORDERS_TEST)
    rules = lsp.TextDocumentIdentifier(uri=(folder / "orders.fluo").as_uri())
    on_id = lsp.Position(line=0, character=8)

    prepared = await client.text_document_prepare_rename_async(lsp.PrepareRenameParams(rules, on_id))
    assert prepared == lsp.PrepareRenamePlaceholder(range=rng(0, 5, 0, 15), placeholder="slow_order")
    edit = await client.text_document_rename_async(lsp.RenameParams(rules, on_id, "late_order"))
    assert edit is not None and edit.changes is not None
    got = {uri: sorted((e.range.start.line, e.range.start.character, e.new_text) for e in edits)
           for uri, edits in edit.changes.items()}  # fmt: skip
    in_test = [(4, 14, "late_order"), (5, 16, "late_order"), (6, 11, "late_order")]
    assert got == {
        rules.uri: [(0, 5, "late_order")],
        (folder / "orders_test.yaml").as_uri(): in_test,
        (folder / "sub" / "folder_test.yaml").as_uri(): [(line + 1, col, new) for line, col, new in in_test],
    }

    # from a test file: the same rename; a name YAML reads as no string is written quoted
    test = lsp.TextDocumentIdentifier(uri=(folder / "orders_test.yaml").as_uri())
    prepared = await client.text_document_prepare_rename_async(lsp.PrepareRenameParams(test, lsp.Position(6, 13)))
    assert prepared == lsp.PrepareRenamePlaceholder(range=rng(6, 11, 6, 21), placeholder="slow_order")
    edit = await client.text_document_rename_async(lsp.RenameParams(test, lsp.Position(4, 14), "yes"))
    assert edit is not None and edit.changes is not None
    assert sorted(e.new_text for e in edit.changes[test.uri]) == ["'yes'", "'yes'", "yes"]  # one was quoted
    assert edit.changes[rules.uri][0].new_text == "yes"


@pytest.mark.parametrize(
    ("new_name", "message"),
    [
        ("my-order", "`my-order` cannot be a rule id: a rule id holds no `-`: write `my_order`"),
        ("expect", "`expect` cannot be a rule id: it is a keyword"),
        ("other", "rule id `other` is already defined at renaming_refused/orders.fluo:5:6, in the same file"),
        (  # its folder's
            "beside_id",
            "rule id `beside_id` is already defined at renaming_refused/beside.fluo:1:6, which "
            "`fluo check renaming_refused` loads with `slow_order`: it would be a duplicate rule id (FLUO213)",
        ),
    ],
)
async def test_rename_refuses_a_name_that_is_no_rule_id_or_one_already_used(
    client: LanguageClient, workspace: Path, new_name: str, message: str
) -> None:
    folder = workspace / "renaming_refused"
    folder.mkdir(exist_ok=True)
    (folder / "orders.fluo").write_text(ORDERS)
    (folder / "beside.fluo").write_text("rule beside_id {\n  expect true\n}\n")
    rules = lsp.TextDocumentIdentifier(uri=(folder / "orders.fluo").as_uri())
    with pytest.raises(JsonRpcException, match=re.escape(message)) as refused:
        await client.text_document_rename_async(lsp.RenameParams(rules, lsp.Position(0, 8), new_name))
    assert refused.value.code == -32803  # RequestFailed, no "Error in server"
    with pytest.raises(JsonRpcException, match="only a rule id can be renamed"):
        await client.text_document_prepare_rename_async(lsp.PrepareRenameParams(rules, lsp.Position(1, 4)))


NOBODY_SERVER = r"""
import os, sys
import fluo_lsp.server, fluo_run.cli
from fluo_lsp import document, rename, workspace
# what the server reads on first use (modules, the grammar), read while the checkout and Python may still be read
document.RuleDocument("w.fluo", "rule w {\n  expect trace.spans.count() > 1\n}\n", "w.fluo").ids()
rename.unfit_id("w")
workspace.MAX_WALK_ENTRIES = int(sys.argv[1])
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
sys.argv = ["fluo", "lsp"]
fluo_run.cli.main()
"""
"""`fluo lsp` with a walk budget of `argv[1]` files, run as `nobody` when the tests run as root (who may read any
folder, whatever its mode), as `reader_support` runs code that meets folders it may not read."""
SMALL_WALK = 60
NOBODY_FOLDERS: list[str] = []
"""The URIs of the workspace folders `nobody_client`'s server has."""


@pytest.fixture(scope="module")
def readable_root() -> Iterator[Path]:
    """A folder `nobody` may read: pytest's temporary folders are their user's alone."""
    root = Path(tempfile.mkdtemp(prefix="fluo-lsp-ws-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest_lsp.fixture(
    scope="module",
    config=ClientServerConfig(server_command=[sys.executable, "-c", NOBODY_SERVER, str(SMALL_WALK)]),
)
async def nobody_client(lsp_client: LanguageClient, readable_root: Path) -> AsyncIterator[None]:
    """A server run as `nobody` (as root) whose walks stop after `SMALL_WALK` files; each test gives it a
    workspace folder of its own (`only_folder`)."""
    folder = lsp.WorkspaceFolder(uri=readable_root.as_uri(), name="root")
    NOBODY_FOLDERS[:] = [folder.uri]
    await initialized(lsp_client, folder)
    yield
    await lsp_client.shutdown_session()


def only_folder(client: LanguageClient, folder: Path) -> None:
    """Make `folder` the workspace's one folder (what the server had before is removed)."""
    before = [lsp.WorkspaceFolder(uri=f, name=f) for f in NOBODY_FOLDERS]
    NOBODY_FOLDERS[:] = [folder.as_uri()]
    event = lsp.WorkspaceFoldersChangeEvent(added=[lsp.WorkspaceFolder(uri=folder.as_uri(), name="ws")], removed=before)
    client.workspace_did_change_workspace_folders(lsp.DidChangeWorkspaceFoldersParams(event=event))


async def warned(client: LanguageClient, count: int) -> list[str]:
    """The warnings shown once there are `count` of them (bounded wait)."""
    for _ in range(500):
        shown = [m.message for m in client.messages if m.type == lsp.MessageType.Warning]
        if len(shown) >= count:
            return shown
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} warnings shown: {client.messages}")


async def test_rename_searches_the_workspace_folder_past_one_it_cannot_read_and_says_so(
    nobody_client: LanguageClient, readable_root: Path
) -> None:
    """QA (review1 r06): a subfolder the server may not read, or a `.fluo` link to a file of another name, made
    the workspace folder's search raise, and the rename then went ahead with the folder not searched at all,
    silently. The rest is searched (a rename to an id a sibling folder uses is still refused), and a rename found
    to clash with nothing looked at is made with a warning naming what was not. As root, the server is `nobody`."""
    base = readable_root / "locked_case"
    for folder in ("team_a", "team_b", "team_c", "z_locked"):
        (base / folder).mkdir(parents=True)
    (base / "team_a" / "orders.fluo").write_text(ORDERS)
    (base / "team_b" / "payments.fluo").write_text("rule pay_late {\n  expect true\n}\n")
    (base / "z_locked" / "hidden.fluo").write_text("rule hidden_id {\n  expect true\n}\n")
    (base / "secret.txt").write_text("token\n")
    (base / "team_c" / "token.fluo").symlink_to(base / "secret.txt")
    only_folder(nobody_client, base)
    rules = lsp.TextDocumentIdentifier(uri=(base / "team_a" / "orders.fluo").as_uri())
    warnings = len([m for m in nobody_client.messages if m.type == lsp.MessageType.Warning])
    (base / "z_locked").chmod(0)
    try:
        with pytest.raises(JsonRpcException) as refused:
            await nobody_client.text_document_rename_async(lsp.RenameParams(rules, lsp.Position(0, 8), "pay_late"))
        assert str(refused.value) == (
            "rule id `pay_late` is already defined at team_b/payments.fluo:1:6, which `fluo check .` run in the "
            "workspace folder loads with `slow_order`: it would be a duplicate rule id (FLUO213)"
        )
        edit = await nobody_client.text_document_rename_async(lsp.RenameParams(rules, lsp.Position(0, 8), "hidden_id"))
        assert edit is not None and edit.changes is not None and list(edit.changes) == [rules.uri]
        shown = (await warned(nobody_client, warnings + 1))[warnings:]
    finally:
        (base / "z_locked").chmod(0o755)
    assert shown == [
        "fluo: renamed to `hidden_id` without searching all of the workspace folder for a rule `hidden_id` "
        "(`fluo check .` reports a duplicate as FLUO213); not searched: team_c/token.fluo: a link to a file not "
        "named .fluo, which `fluo check` refuses to read; z_locked: Permission denied"
    ]


async def test_rename_searches_the_workspace_folder_within_the_walk_budget_and_says_where_it_stopped(
    nobody_client: LanguageClient, readable_root: Path
) -> None:
    """QA (review1 r06): the workspace folder's search walked it whole, past the walk budget every other walk of
    the server keeps, and parsed every rule file on the server's thread (1,500 rule files and 120,000 others: 12 s
    with every request waiting). It stops at the budget (`SMALL_WALK` files here): an id used before that is
    still refused, one past it is not found, and the rename is made with a warning saying where the search
    stopped."""
    base = readable_root / "budget_case"
    for folder in ("a_first", "b_many", "c_rules", "d_far"):
        (base / folder).mkdir(parents=True)
    (base / "a_first" / "early.fluo").write_text("rule early_id {\n  expect true\n}\n")
    for n in range(SMALL_WALK + 10):
        (base / "b_many" / f"f{n:03}.txt").touch()
    (base / "c_rules" / "orders.fluo").write_text(ORDERS)
    (base / "d_far" / "far.fluo").write_text("rule far_id {\n  expect true\n}\n")
    only_folder(nobody_client, base)
    rules = lsp.TextDocumentIdentifier(uri=(base / "c_rules" / "orders.fluo").as_uri())
    warnings = len([m for m in nobody_client.messages if m.type == lsp.MessageType.Warning])
    with pytest.raises(JsonRpcException, match=re.escape("already defined at a_first/early.fluo:1:6, which `fluo")):
        await nobody_client.text_document_rename_async(lsp.RenameParams(rules, lsp.Position(0, 8), "early_id"))
    edit = await nobody_client.text_document_rename_async(lsp.RenameParams(rules, lsp.Position(0, 8), "far_id"))
    assert edit is not None and edit.changes is not None and list(edit.changes) == [rules.uri]
    assert (await warned(nobody_client, warnings + 1))[warnings:] == [
        "fluo: renamed to `far_id` without searching all of the workspace folder for a rule `far_id` "
        "(`fluo check .` reports a duplicate as FLUO213); not searched: "
        f"b_many/f{SMALL_WALK - 1:03}.txt and the files after it (more than {SMALL_WALK} files)"
    ]


GATED_SERVER = r"""
import sys, time
import fluo_run.cli
from fluo_lsp import workspace
read = workspace.read_rule_source

def gated(path, limit):
    # a file named `gated.fluo` is read once a file `open` is beside it (a slow disk, a network share), or 15 s on
    for _ in range(150 if path.name == "gated.fluo" else 0):
        if (path.parent / "open").exists():
            break
        time.sleep(0.1)
    return read(path, limit)

workspace.read_rule_source = gated
sys.argv = ["fluo", "lsp"]
fluo_run.cli.main()
"""
"""`fluo lsp` whose reads of a rule file named `gated.fluo` from disk wait for a file `open` beside it."""


@pytest.fixture(scope="module")
def gated_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gated")
    for folder in ("gate", "tests", "other"):
        (root / folder).mkdir()
    (root / "gate" / "gated.fluo").write_text("rule gated_id {\n  expect true\n}\n")
    (root / "tests" / "gated_test.yaml").write_text(
        "rules: [../gate]\ncases:\n  - name: one\n    spans: [{name: x}]\n    expect:\n      - rule: gated_id\n"
    )
    return root


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=[sys.executable, "-c", GATED_SERVER]))
async def gated_client(lsp_client: LanguageClient, gated_root: Path) -> AsyncIterator[None]:
    await initialized(lsp_client, lsp.WorkspaceFolder(uri=gated_root.as_uri(), name="gated"))
    yield
    await lsp_client.shutdown_session()


async def test_prepare_rename_reads_rule_files_off_the_servers_thread(
    gated_client: LanguageClient, gated_root: Path
) -> None:
    """prepareRename on a rule id in a test file read the rule files the test loads (and, with the rule not there,
    every rule file of the workspace) on the server's thread: a slow or large workspace held hover, completion
    and diagnostics up until it was done. They are read in a thread of their own, as rename's search is: a hover
    sent after it is answered while the read waits, and prepareRename answers once the read is done."""
    uri = open_doc(gated_client, gated_root / "other" / "a.fluo", "rule a_id {\n  expect true\n}\n")
    await diagnostics(gated_client, uri)
    test = lsp.TextDocumentIdentifier(uri=(gated_root / "tests" / "gated_test.yaml").as_uri())
    # sent now, before the hover (the `_async` form would send it when first awaited)
    prepared = asyncio.wrap_future(
        gated_client.text_document_prepare_rename(lsp.PrepareRenameParams(test, lsp.Position(5, 15)))
    )
    hover = await gated_client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(uri=uri), lsp.Position(0, 7))
    )
    assert hover is not None and "a_id" in str(hover.contents)
    assert not prepared.done(), "prepareRename answered before its read of gated.fluo was let go"
    (gated_root / "gate" / "open").touch()
    assert await prepared == lsp.PrepareRenamePlaceholder(range=rng(5, 14, 5, 22), placeholder="gated_id")


COUNTING_SERVER = r"""
import sys
from pathlib import Path
import fluo_run.cli
from fluo_lsp import workspace
Document = workspace.RuleDocument

def counted(path, *args, **kwargs):
    # each rule file the workspace analyses is written down in the `analysed.log` of a folder above it
    for folder in Path(path).parents:
        if (folder / "analysed.log").exists():
            with open(folder / "analysed.log", "a") as log:
                log.write(path + "\n")
            break
    return Document(path, *args, **kwargs)

workspace.RuleDocument = counted
sys.argv = ["fluo", "lsp"]
fluo_run.cli.main()
"""
"""`fluo lsp` that writes down each rule file its workspace analyses (`analysed.log`)."""

MANY_RULE_FILES = 200


@pytest.fixture(scope="module")
def many_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 rule files in `rules/`; `early_id` is in the first (and the 151st), `late_id` in the 151st alone, and
    a test file in `tests/` expects both of a rule file of its own that defines neither."""
    root = tmp_path_factory.mktemp("many")
    for folder in ("rules", "tests"):
        (root / folder).mkdir()
    for i in range(MANY_RULE_FILES):
        text = f"rule f{i:03}_id {{\n  expect true\n}}\n"
        if i in (0, 150):
            text += "// early_id, once more\nrule early_id {\n  expect true\n}\n"
        if i == 150:
            text += "rule late_id {\n  expect true\n}\n"
        (root / "rules" / f"f{i:03}.fluo").write_text(text)
    (root / "tests" / "other.fluo").write_text("rule other_id {\n  expect true\n}\n")
    (root / "tests" / "other_test.yaml").write_text(
        "rules: [other.fluo]\ncases:\n  - name: one\n    spans: [{name: x}]\n    expect:\n"
        "      - rule: early_id\n      - rule: late_id\n"
    )
    (root / "analysed.log").touch()
    return root


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=[sys.executable, "-c", COUNTING_SERVER]))
async def many_client(lsp_client: LanguageClient, many_root: Path) -> AsyncIterator[None]:
    await initialized(lsp_client, lsp.WorkspaceFolder(uri=many_root.as_uri(), name="many"))
    yield
    await lsp_client.shutdown_session()


async def test_a_rule_found_in_the_workspace_is_found_without_analysing_every_rule_file(
    many_client: LanguageClient, many_root: Path
) -> None:
    """QA lsp213 r04: prepareRename, go to definition and find references on a rule id in a test file whose rule
    files lack it analysed every rule file of the workspace, and kept them all (1,500 files: 50 s, +480 MiB),
    though the rule was in the first. The workspace's files are looked at in path order until one defines it,
    and only those whose text may define it are analysed: the same definition is found, the first."""
    analysed = many_root / "analysed.log"
    test_path = many_root / "tests" / "other_test.yaml"
    test = lsp.TextDocumentIdentifier(uri=open_doc(many_client, test_path, test_path.read_text(), "yaml"))
    await diagnostics(many_client, test.uri)
    early, late = lsp.Position(5, 16), lsp.Position(6, 16)
    first = (many_root / "rules" / "f000.fluo").as_uri()
    later = (many_root / "rules" / "f150.fluo").as_uri()

    def rules_analysed() -> list[str]:
        return sorted({Path(p).name for p in analysed.read_text().split()} - {"other.fluo"})

    prepared = await many_client.text_document_prepare_rename_async(lsp.PrepareRenameParams(test, early))
    assert prepared == lsp.PrepareRenamePlaceholder(range=rng(5, 14, 5, 22), placeholder="early_id")
    assert rules_analysed() == ["f000.fluo"]
    found = await many_client.text_document_definition_async(lsp.DefinitionParams(test, early))
    assert found == [lsp.Location(uri=first, range=rng(4, 5, 4, 13))]
    assert rules_analysed() == ["f000.fluo"]  # kept: it defines the id

    found = await many_client.text_document_definition_async(lsp.DefinitionParams(test, late))
    assert found == [lsp.Location(uri=later, range=rng(7, 5, 7, 12))]
    assert rules_analysed() == ["f000.fluo", "f150.fluo"]  # the only files whose text holds `late_id`
    refs = await many_client.text_document_references_async(
        lsp.ReferenceParams(context=lsp.ReferenceContext(include_declaration=True), text_document=test, position=late)
    )
    assert refs is not None and refs[0] == lsp.Location(uri=later, range=rng(7, 5, 7, 12))
    assert rules_analysed() == ["f000.fluo", "f150.fluo"]
