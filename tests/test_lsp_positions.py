"""`fluo lsp` on the edges of documents: escaped URIs, position encodings, line breaks, missing files, exit codes.

End to end over stdio like tests/test_lsp.py (whose helpers it borrows), plus unit
tables for `LineIndex` and `lsp_lines`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from itertools import accumulate
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from hypothesis import given
from hypothesis import strategies as st
from interrupt_support import sigint_default
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcInvalidRequest, JsonRpcMethodNotFound
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from test_lsp import AUTH, TEST_FILE, diagnostics, rng

from fluo_lsp.positions import LineIndex, lsp_lines
from fluo_lsp.server import MAX_MESSAGE_BYTES

SERVER = [sys.executable, "-m", "fluo_run.cli", "lsp"]
asyncio_module = pytest.mark.asyncio(loop_scope="module")
INITIALIZED: dict[str, lsp.InitializeResult] = {}


def session(capabilities: lsp.ClientCapabilities, root: Path) -> lsp.InitializeParams:
    return lsp.InitializeParams(
        capabilities=capabilities,
        root_uri=root.as_uri(),
        workspace_folders=[lsp.WorkspaceFolder(uri=root.as_uri(), name="ws")],
        initialization_options={"fluo": {"diagnostics": {"debounceMs": 0}}},
    )


def accept_registrations(client: LanguageClient) -> None:
    """Answer `client/registerCapability`, as a client that offers dynamic registration does (the server asks
    to watch files)."""

    @client.feature(lsp.CLIENT_REGISTER_CAPABILITY)
    def register(params: lsp.RegistrationParams) -> None:
        return None


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[None]:
    accept_registrations(lsp_client)
    await lsp_client.initialize_session(
        session(client_capabilities("visual-studio-code"), tmp_path_factory.mktemp("ws"))
    )
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER))
async def utf8_client(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[None]:
    """A client that would rather count columns in UTF-8 bytes, and can count them in UTF-16."""
    capabilities = client_capabilities("visual-studio-code")
    capabilities.general = lsp.GeneralClientCapabilities(
        position_encodings=[lsp.PositionEncodingKind.Utf8, lsp.PositionEncodingKind.Utf16]
    )
    accept_registrations(lsp_client)
    INITIALIZED["utf8"] = await lsp_client.initialize_session(session(capabilities, tmp_path_factory.mktemp("ws8")))
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER))
async def plain_client(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[None]:
    """A client that cannot expand snippets (it would insert `${1:rule_id}` as it is)."""
    capabilities = client_capabilities("visual-studio-code")
    assert capabilities.text_document is not None and capabilities.text_document.completion is not None
    assert capabilities.text_document.completion.completion_item is not None
    capabilities.text_document.completion.completion_item.snippet_support = False
    accept_registrations(lsp_client)
    await lsp_client.initialize_session(session(capabilities, tmp_path_factory.mktemp("wsplain")))
    yield
    await lsp_client.shutdown_session()


def open_at(client: LanguageClient, uri: str, text: str, language: str = "fluo") -> str:
    client.diagnostics.pop(uri, None)
    item = lsp.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=item))
    return uri


def change(client: LanguageClient, uri: str, version: int, where: lsp.Range, text: str) -> None:
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[lsp.TextDocumentContentChangePartial(range=where, text=text)],
        )
    )


TYPO = "rule a {\n  expect trace.spans.cuont() > 1\n}\n"


# -- URIs with percent-escapes ----------------------------------------------------------


@asyncio_module
@pytest.mark.parametrize(
    "folder",
    ["my rules", "règles", "100% (ok)"],
    ids=["space", "non-ascii", "percent-and-parentheses"],
)
async def test_escaped_uris_get_pushed_diagnostics(client: LanguageClient, tmp_path: Path, folder: str) -> None:
    uri = (tmp_path / folder / "a.fluo").as_uri()
    assert "%" in uri
    open_at(client, uri, TYPO)
    [d] = await diagnostics(client, uri)  # published under the URI the client sent
    assert (d.code, d.range) == ("FLUO201", rng(1, 21, 1, 26))


@asyncio_module
async def test_windows_drive_uris_get_pushed_diagnostics(client: LanguageClient) -> None:
    uri = "file:///c%3A/Users/me/rules/a.fluo"  # how VS Code on Windows names files
    open_at(client, uri, TYPO)
    [d] = await diagnostics(client, uri)
    assert (d.code, d.range) == ("FLUO201", rng(1, 21, 1, 26))
    change(client, uri, 2, rng(1, 21, 1, 26), "count")
    await diagnostics(client, uri, lambda d: len(d) == 0)


@asyncio_module
async def test_test_files_see_open_rule_files_under_escaped_paths(client: LanguageClient, tmp_path: Path) -> None:
    folder = tmp_path / "my règles"
    folder.mkdir()
    (folder / "auth.fluo").write_text(AUTH)
    (folder / "auth_test.yaml").write_text(TEST_FILE)
    test_uri = open_at(client, (folder / "auth_test.yaml").as_uri(), TEST_FILE, language="yaml")
    await diagnostics(client, test_uri, lambda d: "unknown-rule" in {x.code for x in d})
    rules = AUTH + "\nrule auth_retry_strom {\n  detect trace.spans.count() > 1\n}\n"
    rules_uri = open_at(client, (folder / "auth.fluo").as_uri(), rules)
    await diagnostics(client, rules_uri)
    await diagnostics(client, test_uri, lambda d: len(d) > 0 and "unknown-rule" not in {x.code for x in d})
    client.text_document_did_close(
        lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=rules_uri))
    )
    await diagnostics(client, test_uri, lambda d: "unknown-rule" in {x.code for x in d})  # back to the disk


@asyncio_module
async def test_a_lone_surrogate_is_reported_and_every_feature_answers(client: LanguageClient, tmp_path: Path) -> None:
    """Editor tour: a lone `\\ud800` made every request on the file fail with -32603 (UnicodeEncodeError)."""
    text = "rule a {\n  expect trace.spans.where(name == '\ud800').count() < 3 \ud800\n}\n"
    uri = open_at(client, (tmp_path / "surrogate.fluo").as_uri(), text)
    [d] = await diagnostics(client, uri)
    column = text.splitlines()[1].rindex("\ud800")
    assert (d.code, d.range) == ("FLUO101", rng(1, column, 1, column + 1))
    doc = lsp.TextDocumentIdentifier(uri=uri)
    tokens = await client.text_document_semantic_tokens_full_async(lsp.SemanticTokensParams(text_document=doc))
    assert tokens is not None and tokens.data
    [symbol] = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc)) or []
    assert isinstance(symbol, lsp.DocumentSymbol) and symbol.range.end == rng(2, 0, 2, 1).end


# -- a workspace opened through a symlink --------------------------------------------------

LINKED_RULES = "rule x_rule {\n  detect trace.spans.count() > 9\n}\n"
LINKED_TEST = "rules: [a.fluo]\ncases:\n  - name: one\n    traces: t.json\n    expect: [{rule: x_rule}]\n"


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace folder the client names through a symlink to the real folder."""
    real = tmp_path_factory.mktemp("real")
    (real / "a.fluo").write_text(LINKED_RULES)
    (real / "t.json").write_text('{"resourceSpans": []}')
    (real / "a_test.yaml").write_text(LINKED_TEST)
    link = tmp_path_factory.mktemp("link") / "ws"
    link.symlink_to(real)
    return link


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER))
async def linked_client(lsp_client: LanguageClient, linked: Path) -> AsyncIterator[None]:
    accept_registrations(lsp_client)
    await lsp_client.initialize_session(session(client_capabilities("visual-studio-code"), linked))
    yield
    await lsp_client.shutdown_session()


@asyncio_module
async def test_locations_in_a_workspace_opened_through_a_symlink_stay_under_the_link(
    linked_client: LanguageClient, linked: Path
) -> None:
    """Editor tour: `rules:` and `traces:` definitions and references named the resolved path, so the editor
    opened a second buffer of a file it had open under the link."""
    test_doc = lsp.TextDocumentIdentifier(uri=open_at(linked_client, (linked / "a_test.yaml").as_uri(), LINKED_TEST))
    rules_doc = lsp.TextDocumentIdentifier(uri=open_at(linked_client, (linked / "a.fluo").as_uri(), LINKED_RULES))
    found = []
    for doc, line, character in ((test_doc, 4, 22), (test_doc, 0, 10), (test_doc, 3, 14)):
        where = lsp.Position(line=line, character=character)
        got = await linked_client.text_document_definition_async(
            lsp.DefinitionParams(text_document=doc, position=where)
        )
        assert isinstance(got, list)
        found.append([x.uri for x in got if isinstance(x, lsp.Location)])
    refs = await linked_client.text_document_references_async(
        lsp.ReferenceParams(
            text_document=rules_doc,
            position=lsp.Position(line=0, character=6),
            context=lsp.ReferenceContext(include_declaration=True),
        )
    )
    found.append([x.uri for x in refs or []])
    a, t, test = ((linked / name).as_uri() for name in ("a.fluo", "t.json", "a_test.yaml"))
    assert found == [[a], [a], [t], [a, test]]


# -- diagnostics are pushed, never pulled -----------------------------------------------


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER))
async def neovim_client(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[None]:
    """A client that can pull diagnostics (`textDocument.diagnostic`), as Neovim 0.10+ declares."""
    capabilities = client_capabilities("neovim")
    assert capabilities.text_document is not None and capabilities.text_document.diagnostic is not None
    accept_registrations(lsp_client)
    INITIALIZED["neovim"] = await lsp_client.initialize_session(session(capabilities, tmp_path_factory.mktemp("wsnv")))
    yield
    await lsp_client.shutdown_session()


@asyncio_module
async def test_a_client_that_can_pull_is_offered_no_pull_and_gets_each_diagnostic_once(
    neovim_client: LanguageClient, tmp_path: Path
) -> None:
    """Neovim 0.10+ pulls from any server offering `diagnosticProvider` and keeps pulled and pushed diagnostics
    apart: each showed twice, and a pulled FLUO213 stayed after the other file's rule was renamed (editor tour)."""
    assert INITIALIZED["neovim"].capabilities.diagnostic_provider is None
    with pytest.raises(JsonRpcMethodNotFound):
        await neovim_client.text_document_diagnostic_async(
            lsp.DocumentDiagnosticParams(text_document=lsp.TextDocumentIdentifier(uri=(tmp_path / "x.fluo").as_uri()))
        )
    a, b = "rule dup { expect trace.spans.count() < 3 }\n", "rule dup { detect trace.spans.count() > 3 }\n"
    (tmp_path / "a.fluo").write_text(a)
    (tmp_path / "b.fluo").write_text(b)
    a_uri = open_at(neovim_client, (tmp_path / "a.fluo").as_uri(), a)
    b_uri = open_at(neovim_client, (tmp_path / "b.fluo").as_uri(), b)
    assert [d.code for d in await diagnostics(neovim_client, b_uri, lambda d: len(d) > 0)] == ["FLUO213"]
    change(neovim_client, a_uri, 2, rng(0, 5, 0, 8), "one")
    assert list(await diagnostics(neovim_client, b_uri, lambda d: not d)) == []  # pushed again, now clean


# -- position encoding ------------------------------------------------------------------


@asyncio_module
async def test_columns_are_utf16_even_when_the_client_prefers_utf8(utf8_client: LanguageClient, tmp_path: Path) -> None:
    assert INITIALIZED["utf8"].capabilities.position_encoding == lsp.PositionEncodingKind.Utf16
    text = 'rule u {\n  expect trace.has(name == "😀é") and trace.spans.cuont() > 1\n}\n'
    col = text.splitlines()[1].index("cuont") + 1  # the emoji is two UTF-16 code units
    uri = open_at(utf8_client, (tmp_path / "emoji.fluo").as_uri(), text)
    [d] = await diagnostics(utf8_client, uri)
    assert (d.code, d.range) == ("FLUO201", rng(1, col, 1, col + 5))
    change(utf8_client, uri, 2, rng(1, col, 1, col + 5), "count")
    await diagnostics(utf8_client, uri, lambda d: len(d) == 0)
    hover = await utf8_client.text_document_hover_async(
        lsp.HoverParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(line=1, character=col))
    )
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    assert "count" in hover.contents.value


@asyncio_module
async def test_a_client_without_snippets_gets_plain_text(plain_client: LanguageClient, tmp_path: Path) -> None:
    """Skeletons with their defaults filled in, methods by name (QA L3: `$1` reached such clients)."""
    got: dict[str, str] = {}
    for i, text in enumerate(["", "rule a {\n  expect trace.spans."]):
        uri = open_at(plain_client, (tmp_path / f"plain{i}.fluo").as_uri(), text)
        end = lsp.Position(line=text.count("\n"), character=len(text.rsplit("\n", 1)[-1]))
        result = await plain_client.text_document_completion_async(
            lsp.CompletionParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=end)
        )
        assert isinstance(result, lsp.CompletionList)
        assert all(item.insert_text_format != lsp.InsertTextFormat.Snippet for item in result.items)
        got.update((item.label, item.text_edit.new_text) for item in result.items if item.text_edit is not None)
    assert "$" not in "".join(got.values())
    assert (got["where"], got["count"]) == ("where", "count()")
    assert got["rule (detect)"] == (
        "rule rule_id {\n  severity: warning\n  detect trace.spans.where(status == error).count() > 0\n}"
    )


# -- line breaks ------------------------------------------------------------------------


@asyncio_module
@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"])
async def test_ranged_edits_below_characters_python_calls_line_breaks(
    client: LanguageClient, tmp_path: Path, sep: str
) -> None:
    """Only \\n, \\r\\n and \\r end a line in LSP; str.splitlines also splits on these."""
    text = f"rule a {{\n  // note{sep} more\n  expect trace.spans.cuont() > 1\n}}\n"
    uri = open_at(client, (tmp_path / f"sep{ord(sep):x}.fluo").as_uri(), text)
    [d] = await diagnostics(client, uri)
    assert (d.code, d.range) == ("FLUO201", rng(2, 21, 2, 26))
    change(client, uri, 2, rng(2, 21, 2, 26), "count")
    await diagnostics(client, uri, lambda d: len(d) == 0)
    change(client, uri, 3, rng(3, 0, 3, 1), "}\nrule b {\n  expect trace.spans.cuont() > 0\n}")
    [d] = await diagnostics(client, uri, lambda d: len(d) == 1)
    assert (d.code, d.range) == ("FLUO201", rng(5, 21, 5, 26))


@asyncio_module
@pytest.mark.parametrize("newline", ["\r", "\r\n"], ids=["cr", "crlf"])
async def test_cr_and_crlf_files_get_diagnostics_on_their_lines(
    client: LanguageClient, tmp_path: Path, newline: str
) -> None:
    text = ("// a comment ends at the line break (QA L7)\n" + TYPO).replace("\n", newline)
    uri = open_at(client, (tmp_path / "cr.fluo").as_uri(), text)
    [d] = await diagnostics(client, uri)
    assert (d.code, d.range) == ("FLUO201", rng(2, 21, 2, 26))
    change(client, uri, 2, rng(2, 21, 2, 99), "count() > 1")  # past the end of the line: up to its break
    await diagnostics(client, uri, lambda d: len(d) == 0)
    formatting = lsp.DocumentFormattingParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri),
        options=lsp.FormattingOptions(tab_size=2, insert_spaces=True),
    )
    edits = await client.text_document_formatting_async(formatting)
    assert edits is not None and list(edits) == []  # formatted already, in its own line endings (QA L6)
    change(client, uri, 3, rng(3, 0, 3, 1), "  }")
    [edit] = await client.text_document_formatting_async(formatting) or []
    assert edit.range.end == rng(4, 0, 4, 0).end
    assert edit.new_text == text.replace("cuont", "count")


# -- documents that are gone ------------------------------------------------------------


@asyncio_module
async def test_requests_on_a_closed_and_deleted_document_answer_empty(client: LanguageClient, tmp_path: Path) -> None:
    path = tmp_path / "gone.fluo"
    path.write_text(TYPO)
    uri = open_at(client, path.as_uri(), TYPO)
    await diagnostics(client, uri)
    client.text_document_did_close(lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri)))
    path.unlink()
    doc = lsp.TextDocumentIdentifier(uri=uri)
    test_doc = lsp.TextDocumentIdentifier(uri=(tmp_path / "gone_test.yaml").as_uri())
    here = lsp.Position(line=1, character=22)
    assert list(await diagnostics(client, uri, lambda d: not d)) == []  # cleared on close
    assert await client.text_document_hover_async(lsp.HoverParams(text_document=doc, position=here)) is None
    assert await client.text_document_completion_async(lsp.CompletionParams(text_document=doc, position=here)) is None
    assert await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc)) is None
    for target in (doc, test_doc):
        found = await client.text_document_definition_async(lsp.DefinitionParams(text_document=target, position=here))
        assert found is None
        refs = await client.text_document_references_async(
            lsp.ReferenceParams(
                text_document=target, position=here, context=lsp.ReferenceContext(include_declaration=True)
            )
        )
        assert refs is None


# -- exit codes -------------------------------------------------------------------------


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", **message}).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


@asyncio_module
@pytest.mark.parametrize(("shutdown", "code"), [(True, 0), (False, 1)], ids=["after-shutdown", "without-shutdown"])
async def test_exit_code_says_whether_shutdown_came_first(shutdown: bool, code: int) -> None:
    messages = [
        {"id": 1, "method": "initialize", "params": {"capabilities": {}}},
        {"method": "initialized", "params": {}},
    ]
    if shutdown:
        messages.append({"id": 2, "method": "shutdown"})
    messages.append({"method": "exit"})
    proc = await asyncio.create_subprocess_exec(
        *SERVER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(proc.communicate(b"".join(frame(m) for m in messages)), timeout=30)
    assert proc.returncode == code, stderr.decode()


def test_no_command_is_offered() -> None:
    """QA docs: `executeCommandProvider` was offered (by pygls) with no command: the server has none."""
    messages = [{"id": 1, "method": "initialize", "params": {"capabilities": {}}}, {"method": "exit"}]
    done = subprocess.run(SERVER, input=b"".join(frame(m) for m in messages), capture_output=True, timeout=60)
    body = json.loads(done.stdout.split(b"\r\n\r\n", 1)[1])
    assert body["id"] == 1 and "completionProvider" in body["result"]["capabilities"]
    assert "executeCommandProvider" not in body["result"]["capabilities"]


@pytest.mark.parametrize("answered_first", [False, True], ids=["nothing-read", "after-a-request"])
def test_one_ctrl_c_stops_an_idle_server_with_130(answered_first: bool) -> None:
    """QA docs r03: with the server waiting for its first message, Ctrl-C left it running (pygls waited for its
    reader thread, blocked in `read`), and a second one aborted the interpreter (SIGABRT, "Fatal Python error:
    _enter_buffered_busy"); after a request, it ended with 1. One ends it, quietly, with 130 as every command."""
    proc = subprocess.Popen(
        SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_default
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        if answered_first:
            proc.stdin.write(frame({"id": 1, "method": "initialize", "params": {"capabilities": {}}}))
            proc.stdin.flush()
            header = proc.stdout.readline()  # the answer: the server is up, and reads its input again
            assert header.startswith(b"Content-Length: "), header
        else:
            deadline = time.monotonic() + 30
            while len(os.listdir(f"/proc/{proc.pid}/task")) < 2:  # pygls's reader thread: reading standard input
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr.decode()
    assert b"Traceback" not in stderr and b"Fatal" not in stderr, stderr.decode()


@asyncio_module
async def test_every_request_gets_an_answer(tmp_path: Path) -> None:
    """Before `initialize`, with params that do not deserialise, and after `shutdown` (QA L9: no answer, or -32603
    with a traceback): a client awaiting one would hang."""
    uri = (tmp_path / "a.fluo").as_uri()
    hover = {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 6}}
    item = {"uri": uri, "languageId": "fluo", "version": 1, "text": "rule a {\n  expect true\n}\n"}
    messages: list[dict[str, Any]] = [
        {"id": 1, "method": "textDocument/hover", "params": hover},
        {"id": 9, "method": "textDocument/hover", "params": {"textDocument": {"uri": uri}}},  # not initialized first
        {"id": 2, "method": "initialize", "params": {"capabilities": {}}},
        {"method": "initialized", "params": {}},
        {"method": "textDocument/didOpen", "params": {"textDocument": item}},
        {"id": 3, "method": "textDocument/hover", "params": {**hover, "position": {"line": 0, "character": -1}}},
        {"id": 4, "method": "textDocument/hover", "params": {"textDocument": {"uri": uri}}},
        {"id": 5, "method": "textDocument/hover", "params": hover},
        {"id": 6, "method": "shutdown"},
        {"id": 7, "method": "textDocument/hover", "params": hover},
        {"id": 10, "method": "textDocument/hover", "params": {"textDocument": {"uri": uri}}},  # shut down first
        {"id": 8, "method": "shutdown"},
        {"method": "exit"},
    ]
    proc = await asyncio.create_subprocess_exec(
        *SERVER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(b"".join(frame(m) for m in messages)), timeout=30)
    assert proc.returncode == 0, stderr.decode()
    answers = {}
    for chunk in stdout.split(b"Content-Length: ")[1:]:
        body = json.loads(chunk.split(b"\r\n\r\n", 1)[1])
        if "id" in body:
            answers[body["id"]] = body
    codes = {i: answers[i]["error"]["code"] if "error" in answers[i] else "ok" for i in sorted(answers)}
    assert codes == {
        1: -32002,
        2: "ok",
        3: -32602,
        4: -32602,
        5: "ok",
        6: "ok",
        7: -32600,
        8: -32600,
        9: -32002,
        10: -32600,
    }
    assert "Traceback" not in json.dumps(answers[1])
    # QA editor r10: 9 and 10 were logged as "invalid params", a reason their answers do not give
    lines = stderr.decode().splitlines()
    assert [line for line in lines if "request 9:" in line or "request 10:" in line] == [
        "fluo lsp: refused textDocument/hover request 9: the server is not initialized yet",
        "fluo lsp: refused textDocument/hover request 10: the server is shut down",
    ]


@asyncio_module
async def test_params_that_do_not_deserialise_are_one_line_on_stderr_each(tmp_path: Path) -> None:
    """Editor tour: a negative line or a missing field logged cattrs' whole traceback (200 lines for three
    messages, a bad notification twice over). Each is one line naming the message and what is wrong; the
    requests are still refused with InvalidParams, and the bad notification changes nothing."""
    uri = (tmp_path / "a.fluo").as_uri()
    hover = {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 6}}
    item = {"uri": uri, "languageId": "fluo", "version": 1, "text": "rule a {\n  expect true\n}\n"}
    messages: list[dict[str, Any]] = [
        {"id": 1, "method": "initialize", "params": {"capabilities": {}}},
        {"method": "initialized", "params": {}},
        {"method": "textDocument/didOpen", "params": {"textDocument": item}},
        {"id": 2, "method": "textDocument/hover", "params": {**hover, "position": {"line": -1, "character": 0}}},
        {"id": "x", "method": "textDocument/hover", "params": {"textDocument": {"uri": uri}}},
        {"method": "textDocument/didChange", "params": {"textDocument": {"uri": uri}}},
        {"id": 3, "method": "textDocument/hover", "params": hover},
        {"id": 4, "method": "shutdown"},
        {"method": "exit"},
    ]
    proc = await asyncio.create_subprocess_exec(
        *SERVER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(b"".join(frame(m) for m in messages)), timeout=30)
    assert proc.returncode == 0, stderr.decode()
    assert stderr.decode().splitlines() == [
        "fluo lsp: refused textDocument/hover request 2: invalid params: invalid value (Position.line should be in"
        " range [0:2147483647], but was -1.) @ $.params.position",
        'fluo lsp: refused textDocument/hover request "x": invalid params: required field missing @ $.params.position',
        "fluo lsp: dropped a textDocument/didChange notification: invalid params: required field missing"
        " @ $.params.text_document.version; required field missing @ $.params.content_changes",
    ]
    bodies = [json.loads(chunk.split(b"\r\n\r\n", 1)[1]) for chunk in stdout.split(b"Content-Length: ")[1:]]
    answers = {body["id"]: body for body in bodies if "id" in body}
    assert [answers[i]["error"]["code"] for i in (2, "x")] == [-32602, -32602]
    assert answers[3]["result"]["contents"]["value"].startswith("rule `a`")
    assert "window/showMessage" not in [body.get("method") for body in bodies]  # pygls's "Error in server"


@asyncio_module
async def test_a_malformed_message_is_answered_with_one_line_on_stderr(tmp_path: Path) -> None:
    """Editor tour (QA r07): a notification's method sent with an id, a method that is no string, a method or
    a command the server does not know, a message without `"jsonrpc"` or not JSON got no answer, or one with
    "Error in server" popped up in the editor and a traceback on stderr. Each request is answered (as JSON-RPC
    says: a body that is not JSON with id null), each gets one line on stderr, and the server goes on."""
    uri = (tmp_path / "a.fluo").as_uri()
    hover = {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 0}}

    def raw(body: bytes) -> bytes:
        return b"Content-Length: %d\r\n\r\n" % len(body) + body

    messages = [
        frame({"id": 1, "method": "initialize", "params": {"capabilities": {}}}),
        frame({"method": "initialized", "params": {}}),
        frame({"id": 2, "method": "$/cancelRequest", "params": {"id": 99}}),
        frame({"id": 3, "method": "textDocument/didSave", "params": {"textDocument": {"uri": uri}}}),
        frame({"id": 4, "method": 5}),
        frame({"method": 5}),  # review r01: a notification, dropped
        frame({"error": {"code": 1, "message": "x"}}),  # an error response with no id, dropped
        frame({"id": 5, "method": "workspace/executeCommand", "params": {"command": "nope"}}),
        frame({"id": 6, "method": "fluo/unknown"}),
        frame({"method": "fluo/unknown"}),
        frame({"method": "$/unknown"}),  # LSP: may be ignored, and is, silently
        raw(b'{"id": 7, "method": "shutdown"}'),
        raw(b"{not json"),
        raw(b"[1, 2]"),
        frame({"id": 8, "method": "textDocument/hover", "params": hover}),
        frame({"id": 9, "method": "shutdown"}),
        frame({"method": "exit"}),
    ]
    proc = await asyncio.create_subprocess_exec(
        *SERVER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(b"".join(messages)), timeout=30)
    assert proc.returncode == 0, stderr.decode()
    bodies = [json.loads(chunk.split(b"\r\n\r\n", 1)[1]) for chunk in stdout.split(b"Content-Length: ")[1:]]
    answers = {body["id"]: body for body in bodies if "id" in body}
    codes = {i: answers[i]["error"]["code"] if "error" in answers[i] else "ok" for i in answers}
    assert codes == {
        1: "ok",
        2: -32601,  # MethodNotFound: a notification's method
        3: -32601,
        4: -32600,  # InvalidRequest
        5: -32602,  # InvalidParams, as pygls answers an unknown command
        6: -32601,
        7: -32600,
        None: -32700,  # ParseError
        8: "ok",
        9: "ok",
    }
    assert "window/showMessage" not in [body.get("method") for body in bodies]  # pygls's "Error in server"
    assert stderr.decode().splitlines() == [
        "fluo lsp: refused $/cancelRequest request 2: it is a notification",
        "fluo lsp: refused textDocument/didSave request 3: it is a notification",
        "fluo lsp: refused request 4: its method is a number",
        "fluo lsp: dropped a notification: its method is a number",
        'fluo lsp: dropped an error response with no id: "x"',
        "fluo lsp: refused workspace/executeCommand request 5: unknown command 'nope'",
        "fluo lsp: refused fluo/unknown request 6: unknown method",
        "fluo lsp: dropped a fluo/unknown notification: unknown method",
        'fluo lsp: refused request 7: no "jsonrpc": "2.0"',
        "fluo lsp: dropped a message that is not JSON: Expecting property name enclosed in double quotes:"
        " line 1 column 2 (char 1)",
        "fluo lsp: dropped a message that is no JSON-RPC 2.0 request, notification or response",
    ]


@asyncio_module
async def test_a_message_past_the_bound_is_dropped_and_the_server_goes_on(tmp_path: Path) -> None:
    """QA (errors r01): `Content-Length: 99999999999` was a MemoryError (pygls read the body at once) and a
    traceback. A body over `MAX_MESSAGE_BYTES` is read past in pieces and dropped, with one line on stderr, and
    the messages after it are answered; a request among those dropped is not (its id is unread)."""
    uri = (tmp_path / "a.fluo").as_uri()
    hover = {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 6}}
    item = {"uri": uri, "languageId": "fluo", "version": 1, "text": "rule a {\n  expect true\n}\n"}
    large = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "textDocument/hover", "params": hover}).encode()
    large += b" " * (MAX_MESSAGE_BYTES + 1 - len(large))  # whitespace after a JSON value is JSON
    messages = [
        frame({"id": 1, "method": "initialize", "params": {"capabilities": {}}}),
        frame({"method": "initialized", "params": {}}),
        frame({"method": "textDocument/didOpen", "params": {"textDocument": item}}),
        b"Content-Length: %d\r\n\r\n" % len(large) + large,
        frame({"id": 4, "method": "textDocument/hover", "params": hover}),
        frame({"id": 5, "method": "shutdown"}),
        frame({"method": "exit"}),
    ]
    proc = await asyncio.create_subprocess_exec(
        *SERVER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(b"".join(messages)), timeout=60)
    assert proc.returncode == 0, stderr.decode()
    bodies = [json.loads(chunk.split(b"\r\n\r\n", 1)[1]) for chunk in stdout.split(b"Content-Length: ")[1:]]
    answers = {body["id"]: body for body in bodies if "id" in body}
    assert sorted(answers) == [1, 4, 5]
    assert answers[4]["result"]["contents"]["value"].startswith("rule `a`")
    assert stderr.decode().splitlines() == [
        f"fluo lsp: dropped a message of {MAX_MESSAGE_BYTES + 1} bytes: more than the {MAX_MESSAGE_BYTES} (64 MiB)"
        " a message may have"
    ]


@asyncio_module
@pytest.mark.parametrize(
    ("header", "said"),
    [
        (b"Content-Length: 99999999999", "dropped a message of 99999999999 bytes: more than the 67108864 (64 MiB)"),
        (b"Content-Length: " + b"9" * 5000, "stopped: a header line is longer than 1024 bytes"),
        (b"X-" + b"x" * 100_000, "stopped: a header line is longer than 1024 bytes"),
    ],
    ids=["past-the-memory", "past-int-digits", "a-long-line"],
)
async def test_a_header_past_any_message_is_one_line_and_no_traceback(header: bytes, said: str) -> None:
    """QA (errors r01): a length past the memory was a MemoryError, one of 5,000 digits a ValueError (Python's
    bound on int digits), each with a traceback; a header line that never ends was read whole. Now one line on
    stderr; the input ends there (inside the body, or at a line no LSP message has), so the status is 1."""
    proc = await asyncio.create_subprocess_exec(
        *SERVER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(proc.communicate(header + b"\r\n\r\n{}"), timeout=30)
    assert proc.returncode == 1
    (line,) = stderr.decode().splitlines()
    assert line.startswith(f"fluo lsp: {said}")


# -- a server process driven message by message ------------------------------------------


async def server_process(*messages: dict[str, Any]) -> asyncio.subprocess.Process:
    """A `fluo lsp` process sent `messages`, its stdin left open."""
    proc = await asyncio.create_subprocess_exec(
        *SERVER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdin is not None
    proc.stdin.write(b"".join(frame(m) for m in messages))
    await proc.stdin.drain()
    return proc


async def next_message(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    """The next message the server sends (a bounded wait)."""
    assert proc.stdout is not None
    length = 0
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        assert line, "the server closed its stdout"
        if not line.strip():
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body: dict[str, Any] = json.loads(await asyncio.wait_for(proc.stdout.readexactly(length), timeout=60))
    return body


async def stopped(proc: asyncio.subprocess.Process) -> int:
    """The exit status of `proc` once it ends (a bounded wait), with whatever it still sends read and dropped."""
    assert proc.stdout is not None
    await asyncio.wait_for(proc.stdout.read(), timeout=60)
    return await asyncio.wait_for(proc.wait(), timeout=60)


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 400 rule files of 10 rules each (1.5 MB: within the budget of files read beside an open one)."""
    root = tmp_path_factory.mktemp("crowded")
    (root / "rules").mkdir()
    for i in range(400):
        rules = (
            f"rule r{i}_{j} {{\n  severity: info\n  expect trace.spans.where(service == 's{j}').count() < {j}\n}}\n\n"
            for j in range(10)
        )
        (root / "rules" / f"f{i:03d}.fluo").write_text("".join(rules))
    return root


def opening(root: Path, text: str) -> list[dict[str, Any]]:
    """`initialize` on `root` (diagnostics not debounced), then a new `rules/new.fluo` opened with `text`."""
    item = {"uri": (root / "rules" / "new.fluo").as_uri(), "languageId": "fluo", "version": 1, "text": text}
    options = {"fluo": {"diagnostics": {"debounceMs": 0}}}
    return [
        {
            "id": 1,
            "method": "initialize",
            "params": {"capabilities": {}, "rootUri": root.as_uri(), "initializationOptions": options},
        },
        {"method": "initialized", "params": {}},
        {"method": "textDocument/didOpen", "params": {"textDocument": item}},
    ]


@asyncio_module
async def test_a_folder_of_many_rule_files_holds_no_request_up(crowded: Path) -> None:
    """Editor tour (QA r04): a file opened beside 400 others left a hover unanswered for minutes and its
    diagnostics were published thousands of times: each check waited for the files beside it being read, and
    each read checked the file again once for every check made meanwhile. Requests are answered while the
    files are read, and the file is published twice: at once, then with the ids they define first (FLUO213)."""
    text = "rule r399_9 {\n  expect trace.spans.count() == 0\n}\n"
    uri = (crowded / "rules" / "new.fluo").as_uri()
    hover = {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 15}}
    proc = await server_process(*opening(crowded, text), {"id": 2, "method": "textDocument/hover", "params": hover})
    published: list[list[str]] = []
    answered = None  # how many times the file was published before the hover was answered
    while not published or published[-1] != ["FLUO213"]:
        message = await next_message(proc)
        if message.get("id") == 2:
            answered = len(published)
        if message.get("method") == "textDocument/publishDiagnostics" and message["params"]["uri"] == uri:
            published.append([d["code"] for d in message["params"]["diagnostics"]])
    assert answered == 1  # before the files beside it were read
    assert published == [[], ["FLUO213"]]
    assert proc.stdin is not None
    proc.stdin.write(frame({"id": 3, "method": "shutdown"}) + frame({"method": "exit"}))
    assert await stopped(proc) == 0


@asyncio_module
async def test_a_server_whose_stdin_closes_stops_with_files_left_to_read(crowded: Path) -> None:
    """Editor tour (QA r04): a server whose client was gone (stdin closed) ran on for more than ten minutes,
    checking a file again for every file read beside it. It stops, and the files not read yet are not read."""
    proc = await server_process(*opening(crowded, "rule a {\n  expect true\n}\n"))
    while (await next_message(proc)).get("method") != "textDocument/publishDiagnostics":
        pass
    assert proc.stdin is not None
    proc.stdin.close()
    assert await stopped(proc) == 1  # no `shutdown` came


@asyncio_module
async def test_the_server_exits_once_its_client_process_is_gone(tmp_path: Path) -> None:
    """Editor tour (QA r03): LSP asks a server to exit when the process `initialize` names (`processId`) is
    gone; the server never looked, so one whose editor was killed while something else held its stdin ran on
    for good. It answers while the editor runs, and exits (status 1, no `shutdown` came) once it is gone."""
    editor = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; sys.stdin.read()", stdin=asyncio.subprocess.PIPE
    )
    assert editor.stdin is not None
    hover = {"textDocument": {"uri": (tmp_path / "a.fluo").as_uri()}, "position": {"line": 0, "character": 0}}
    proc = await server_process(
        {"id": 1, "method": "initialize", "params": {"processId": editor.pid, "capabilities": {}}},
        {"method": "initialized", "params": {}},
        {"id": 2, "method": "textDocument/hover", "params": hover},
    )
    while (await next_message(proc)).get("id") != 2:
        pass
    editor.stdin.close()
    await asyncio.wait_for(editor.wait(), timeout=60)
    assert await stopped(proc) == 1  # its stdin still open
    assert proc.stderr is not None
    assert (await proc.stderr.read()).decode().splitlines() == [
        f"fluo lsp: the client (process {editor.pid}) is gone: exiting"
    ]


@asyncio_module
async def test_the_server_does_not_watch_a_client_process_it_cannot_see(tmp_path: Path) -> None:
    """Review: an editor outside the server's pid namespace (a container, ssh) names a process the server
    cannot see; watching it made the server exit right after `initialize`. It says so and serves on."""
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await asyncio.wait_for(gone.wait(), timeout=60)  # reaped: its pid names no process here
    hover = {"textDocument": {"uri": (tmp_path / "a.fluo").as_uri()}, "position": {"line": 0, "character": 0}}
    proc = await server_process(
        {"id": 1, "method": "initialize", "params": {"processId": gone.pid, "capabilities": {}}},
        {"method": "initialized", "params": {}},
        {"id": 2, "method": "textDocument/hover", "params": hover},
        {"id": 3, "method": "shutdown"},
        {"method": "exit"},
    )
    assert await stopped(proc) == 0
    assert proc.stderr is not None
    assert (await proc.stderr.read()).decode().splitlines() == [
        f"fluo lsp: the client (process {gone.pid}) is not visible here: not watching it"
    ]


# -- lifecycle messages sent twice ----------------------------------------------------------


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER))
async def twice_client(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[None]:
    """A session the tests below send `initialize` and `initialized` again (its own server: the state they check
    is the server's)."""

    @lsp_client.feature(lsp.CLIENT_REGISTER_CAPABILITY)
    def register(params: lsp.RegistrationParams) -> None:
        REGISTERED.extend(params.registrations)

    root = tmp_path_factory.mktemp("wstwice")
    await lsp_client.initialize_session(session(client_capabilities("visual-studio-code"), root))
    yield
    await lsp_client.shutdown_session()


REGISTERED: list[lsp.Registration] = []

UNSAVED = "rule t {\n  expect trace.spans.where(servce == 'a').exists() and trace.spans.cuont() > 1\n}\n"


@asyncio_module
async def test_a_second_initialize_is_refused_and_changes_nothing(twice_client: LanguageClient, tmp_path: Path) -> None:
    """LSP sends `initialize` once: a second one is InvalidRequest, and the open documents (with their unsaved
    edits), their diagnostics and the settings stay as they were (editor tour: the unsaved buffers were dropped,
    and the server went on with the file on disk)."""
    path = tmp_path / "unsaved.fluo"
    path.write_text("rule t {\n  expect trace.spans.count() > 1\n}\n")
    uri = open_at(twice_client, path.as_uri(), "rule t {\n  expect true\n}\n")
    change(twice_client, uri, 2, rng(1, 9, 1, 13), UNSAVED.splitlines()[1][9:])
    before = await diagnostics(twice_client, uri, lambda d: len(d) == 2)
    assert [(d.code, d.severity) for d in before] == [
        ("FLUO205", lsp.DiagnosticSeverity.Warning),
        ("FLUO201", lsp.DiagnosticSeverity.Error),
    ]
    again = session(client_capabilities("neovim"), tmp_path)
    again.initialization_options = {"fluo": {"strictness": "strict"}}
    with pytest.raises(JsonRpcInvalidRequest, match="already initialized"):
        await twice_client.initialize_async(again)
    doc = lsp.TextDocumentIdentifier(uri=uri)
    twice_client.diagnostics.pop(uri, None)
    twice_client.text_document_did_save(lsp.DidSaveTextDocumentParams(text_document=doc))  # checks it again
    again_diags = await diagnostics(twice_client, uri)
    assert again_diags == before  # the unsaved text, checked with the settings of the first `initialize`
    line = UNSAVED.splitlines()[1]
    hover = await twice_client.text_document_hover_async(
        lsp.HoverParams(text_document=doc, position=lsp.Position(line=1, character=line.index("exists")))
    )
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    assert "exists" in hover.contents.value  # a method only the unsaved text calls (the line on disk is shorter)
    cuont = line.index("cuont")
    change(twice_client, uri, 3, rng(1, cuont, 1, cuont + 5), "count")  # edits still apply to the unsaved text
    [d] = await diagnostics(twice_client, uri, lambda d: len(d) == 1)
    assert (d.code, d.severity) == ("FLUO205", lsp.DiagnosticSeverity.Warning)


@asyncio_module
async def test_a_second_initialized_registers_nothing_again(twice_client: LanguageClient) -> None:
    """`initialized` is sent once: again, it must not ask the client to watch the same files a second time
    (the registration id would clash)."""
    for _ in range(500):
        if REGISTERED:
            break
        await asyncio.sleep(0.01)
    assert [r.id for r in REGISTERED] == ["fluo-watched-files"]
    twice_client.initialized(lsp.InitializedParams())
    nowhere = lsp.TextDocumentIdentifier(uri="file:///none.fluo")
    hover = await twice_client.text_document_hover_async(  # answered after `initialized` was handled
        lsp.HoverParams(text_document=nowhere, position=lsp.Position(line=0, character=0))
    )
    assert hover is None
    assert [r.id for r in REGISTERED] == ["fluo-watched-files"]


# -- unit tables ------------------------------------------------------------------------

MIXED = "a\r\nbc\rd\n\r\ne😀f"


@pytest.mark.parametrize(
    ("offset", "line", "character"),
    [
        (0, 0, 0),
        (1, 0, 1),  # end of the first line, before its \r\n
        (3, 1, 0),
        (5, 1, 2),  # before \r
        (6, 2, 0),
        (7, 2, 1),  # before \n
        (8, 3, 0),  # the empty line between \n and \r\n
        (10, 4, 0),
        (12, 4, 3),  # after the emoji: two UTF-16 code units
        (13, 4, 4),
    ],
)
def test_line_index_breaks_lines_at_cr_lf_and_crlf(offset: int, line: int, character: int) -> None:
    index = LineIndex(MIXED)
    assert index.position(offset) == lsp.Position(line=line, character=character)
    assert index.offset(lsp.Position(line=line, character=character)) == offset


def test_line_index_positions_past_a_line_end_stop_before_its_break() -> None:
    index = LineIndex(MIXED)
    assert [index.offset(lsp.Position(line=n, character=99)) for n in range(6)] == [1, 5, 7, 8, 13, 13]


def test_line_index_does_not_break_lines_where_lsp_does_not() -> None:
    text = "a\u2028b\x0cc\x85d\ne"
    index = LineIndex(text)
    assert index.position(7) == lsp.Position(line=0, character=7)
    assert index.position(8) == lsp.Position(line=1, character=0)


def test_line_index_counts_a_lone_surrogate_as_one_unit() -> None:
    """A client's JSON can hold a lone surrogate (`\\ud800`); it is one UTF-16 unit, not an encoding error."""
    index = LineIndex("a\ud800b\n\ud800")
    assert index.position(2) == lsp.Position(line=0, character=2)
    assert list(index.positions([1, 2, 5])) == [(0, 1), (0, 2), (1, 1)]
    assert index.offset(lsp.Position(line=0, character=2)) == 2


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("", []),
        ("a", ["a"]),
        ("a\n", ["a\n"]),
        ("a\r\nb\rc\n\nd", ["a\r\n", "b\r", "c\n", "\n", "d"]),
        ("a\u2028b\x85c\x0b\x0c\x1c\x1d\x1e\u2029\n", ["a\u2028b\x85c\x0b\x0c\x1c\x1d\x1e\u2029\n"]),
        ("\r\r\n\n", ["\r", "\r\n", "\n"]),
    ],
)
def test_lsp_lines_keep_their_breaks(text: str, lines: list[str]) -> None:
    assert lsp_lines(text) == lines
    assert "".join(lsp_lines(text)) == text


@given(st.text(alphabet="ab\r\n\u2028\x0c😀é", max_size=30))
def test_line_index_agrees_with_lsp_lines_and_round_trips(text: str) -> None:
    lines = lsp_lines(text)
    ends = accumulate(len(line) for line in lines)
    index = LineIndex(text)
    assert index.starts == [0, *(end for end, line in zip(ends, lines, strict=True) if line.endswith(("\r", "\n")))]
    for offset in range(len(text) + 1):
        if text[offset - 1 : offset + 1] != "\r\n":  # inside a line break: no position of its own
            assert index.offset(index.position(offset)) == offset
