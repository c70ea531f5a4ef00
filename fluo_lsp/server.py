"""`fluo lsp`: the language server, over stdio, a thin shell around the core's analysis.

Rule files (`*.fluo`) get diagnostics (pushed after a debounce, never pulled: see
`FluoServer.publish`), completion, hover, signature help, symbols, folding, semantic tokens,
formatting and code actions. Rule test files (`*_test.yaml`, `*.fluotest.yaml`)
get checks of the rule ids and fixtures they name, and link to the rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Generator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import unquote

import click
from cattrs import transform_error
from cattrs.errors import ClassValidationError
from cattrs.v import format_exception
from lsprotocol import types as lsp
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcMethodNotFound,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.protocol.json_rpc import JsonRPCNotification, JsonRPCRequestMessage, RPCRequest
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import TextDocument
from pygls.workspace import Workspace as DocumentStore

from fluo_lang.api import RuleSourceError, rule_files
from fluo_lang.files import StdinClosed, standard_input
from fluo_lang.format import format_source
from fluo_lang.otlp import JSON_SUFFIXES, PROTOBUF_SUFFIXES, TraceInputError, is_trace_file_name, trace_files_in
from fluo_run.testing.spec import is_rule_test

from . import actions, completion, hover, outline, rename
from .document import RuleDocument, path_uri, read_rule_text
from .positions import LineIndex, lsp_lines, span_range
from .reporting import document_diagnostics, lsp_diagnostic, test_diagnostics
from .settings import SECTION, Settings
from .testfiles import TestFile, is_test_file, read_test_file
from .workspace import RuleSite, TestProblem, Workspace

NAME = "fluo"
log = logging.getLogger("fluo.lsp")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fluo")
    except PackageNotFoundError:
        return "0"


class _LspLinesDocument(TextDocument):
    """pygls's document, applying ranged changes to lines as LSP counts them (see `lsp_lines`)."""

    @property
    def lines(self) -> Sequence[str]:
        return lsp_lines(self.source)


class _DocumentStore(DocumentStore):
    def _create_text_document(
        self,
        doc_uri: str,
        source: str | None = None,
        version: int | None = None,
        language_id: str | None = None,
    ) -> TextDocument:
        return _LspLinesDocument(
            doc_uri,
            source=source,
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self.position_codec,
        )


@dataclass(frozen=True, slots=True)
class _Refused:
    """A request whose params did not deserialise: it still gets an answer, this error (unless it came before
    `initialize` or after `shutdown`, which the protocol answers first)."""

    id: int | str
    method: str
    error: JsonRpcException
    why: str  # the reason as stderr says it, logged only when this error is the answer


@dataclass(frozen=True, slots=True)
class _Dropped:
    """A notification whose params did not deserialise: nothing answers a notification, so it is dropped."""

    method: str


_NOT_JSON = (json.JSONDecodeError, UnicodeDecodeError)
"""What reading a message body that is not JSON (or not UTF-8) raises, in pygls's reading loop."""


class _NotJson(logging.Filter):
    """pygls logs a message body that is not JSON with a traceback: one line says it instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, _NOT_JSON):
            record.msg, record.args = "fluo lsp: dropped a message that is not JSON: %s", (error,)
            record.exc_info, record.exc_text = None, None
        return True


MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""The largest message body the server reads (docs/editor.md): far above a rule file at its limit (4 MiB, FLUO402)
sent as JSON with every character escaped. A larger one is read past in pieces and dropped, so that a
`Content-Length` past the memory costs none; pygls read the whole body at once (a MemoryError and a traceback)."""

MAX_HEADER_BYTES = 1024
"""The longest header line the server reads (`Content-Length: 123`, `Content-Type: ...` are a few dozen bytes): a
longer one is no LSP, and the server stops, as at the end of its input, where pygls read on to a newline."""

_SKIPPED = b'{"jsonrpc": "2.0", "method": "$/fluo/skipped"}'
"""What `_BoundedInput` hands pygls for a body it dropped: a `$/` notification, which `_Protocol` drops silently."""


class _BoundedInput:
    """Standard input as pygls reads it (`readline()` for a header, `read(n)` for a body of `Content-Length` n), in
    bounded pieces: a body over `MAX_MESSAGE_BYTES` is dropped with one line on stderr, and the messages after it
    are read as ever (a request among those dropped is not answered: its id is unread); a header line over
    `MAX_HEADER_BYTES` ends the input."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def readline(self) -> bytes:
        line = self.stream.readline(MAX_HEADER_BYTES + 1)
        if len(line) > MAX_HEADER_BYTES:
            log.warning(
                "fluo lsp: stopped: a header line is longer than %d bytes, which no LSP message has", MAX_HEADER_BYTES
            )
            return b""  # pygls stops at the end of its input
        return line

    def read(self, size: int) -> bytes:
        if size <= MAX_MESSAGE_BYTES:
            return self.stream.read(size)
        log.warning(
            "fluo lsp: dropped a message of %d bytes: more than the %d (64 MiB) a message may have",
            size,
            MAX_MESSAGE_BYTES,
        )
        left = size
        while left:
            piece = self.stream.read(min(left, 1024 * 1024))
            if not piece:
                return b""  # the input ended inside it: pygls stops
            left -= len(piece)
        return _SKIPPED


class _EndsOnWake(io.RawIOBase):
    """A descriptor read as it comes, which ends (reads nothing) once `wake` can be read: standard input that
    Ctrl-C can end while pygls's reader thread waits in it."""

    def __init__(self, fd: int, wake: int) -> None:
        super().__init__()
        self.fd = fd
        self.poll = select.poll()
        self.poll.register(fd, select.POLLIN)
        self.poll.register(wake, select.POLLIN)
        self.wake = wake

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        ready = {fd for fd, _ in self.poll.poll()}
        if self.wake in ready:
            return 0
        data = os.read(self.fd, len(buffer))
        buffer[: len(data)] = data
        return len(data)


@contextlib.contextmanager
def _ended_by_ctrl_c(stdin: BinaryIO) -> Generator[tuple[BinaryIO, threading.Event]]:
    """`stdin` as the server reads it, and an event set by Ctrl-C (SIGINT), which also ends that input, so the
    server stops as at the end of its input, and the command then with 130. Before, pygls caught the
    KeyboardInterrupt and waited for its reader thread, blocked in `read`: the server went on, and a second
    Ctrl-C aborted the interpreter ("Fatal Python error: _enter_buffered_busy"). As it was where SIGINT is
    ignored (a background job) or handled otherwise, or where the input has no descriptor to poll."""
    interrupted = threading.Event()
    try:
        fd = stdin.fileno()
        plain = (
            not hasattr(select, "poll")
            or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        )
    except (OSError, ValueError):  # io.UnsupportedOperation: no descriptor
        plain = True
    if plain:
        yield stdin, interrupted
        return
    wake, woken = os.pipe()
    os.set_blocking(woken, False)

    def on_sigint(signum: int, frame: object) -> None:
        interrupted.set()
        with contextlib.suppress(OSError):  # already written (a second Ctrl-C): the pipe may be full
            os.write(woken, b"\0")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield cast(BinaryIO, io.BufferedReader(_EndsOnWake(fd, wake))), interrupted
    finally:
        signal.signal(signal.SIGINT, previous)
        os.close(wake)
        os.close(woken)


_JSON_TYPES = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    list: "an array",
    dict: "an object",
}
"""How JSON names the type of a value as Python reads it (a method's, when it is no string)."""


def _invalid(exc: BaseException, type_: Any) -> str:
    """cattrs' words for a value that does not fit, with the validator's own for a bad one (`Position.line
    should be in range [0:2147483647], but was -1.`)."""
    return f"invalid value ({exc})" if type(exc) is ValueError else format_exception(exc, type_)


class _Protocol(LanguageServerProtocol):
    """pygls's protocol, but columns are always UTF-16, documents split lines the LSP way, and every
    request is answered: anything before `initialize` with ServerNotInitialized, anything after `shutdown`
    with InvalidRequest, whatever its params, and else ill-formed params with InvalidParams (pygls drops
    these silently).

    `initialize` and `initialized` come once in a session: a second `initialize` is InvalidRequest and
    changes nothing (pygls would start afresh, dropping the open documents with their unsaved edits), a
    second `initialized` is dropped (it would register the file watchers again)."""

    initialized = False
    """`initialize` has come."""
    started = False
    """`initialized` has come."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        """A request or notification as its method's type; one whose params do not deserialise is one line on
        stderr (pygls logs cattrs' whole traceback, and again for a notification), then refused or dropped.

        A request whose method is no string is refused with InvalidRequest, and one whose method is a
        notification's (`$/cancelRequest`, `textDocument/didSave` with an `id`) or unknown with MethodNotFound;
        a notification of an unknown method or of one that is no string is dropped, as is an error response with
        no id, and a response with neither result nor error has a null
        result. pygls answered none of these requests, and popped "Error in server" up in the editor for some,
        with a traceback on stderr."""
        a_message = "jsonrpc" in data and "error" not in data  # else a response's error, or an object inside a message
        method = data.get("method") if a_message else None
        if not isinstance(method, str):
            what = _JSON_TYPES.get(type(method), "not a string")
            if a_message and "method" in data and "id" in data:
                error: JsonRpcException = JsonRpcInvalidRequest(f"invalid request: its method is {what}")
                return _Refused(data["id"], "", error, f"its method is {what}")
            if a_message and "method" in data:
                log.warning("fluo lsp: dropped a notification: its method is %s", what)
                return _Dropped("")
            if "jsonrpc" in data and "error" in data and data.get("id") is None:
                error = data["error"]
                said = error.get("message") if isinstance(error, dict) else None
                log.warning("fluo lsp: dropped an error response with no id: %s", json.dumps(said or error))
                return _Dropped("")
            if "jsonrpc" in data and "id" in data and "result" not in data and "error" not in data:
                data = {**data, "result": None}  # a response to a request of ours, its null result left out
            return super().structure_message(data)  # a response, or an object inside a message
        types = lsp.METHOD_TO_TYPES.get(method)
        if types is None and method not in self.fm.features:
            if "id" in data:
                return _Refused(data["id"], method, JsonRpcMethodNotFound(f"unknown method {method}"), "unknown method")
            if not method.startswith("$/"):  # LSP: those may be ignored
                log.warning("fluo lsp: dropped a %s notification: unknown method", method)
            return _Dropped(method)
        if "id" in data and types is not None and types[1] is None:  # no result: a notification's method
            error = JsonRpcMethodNotFound(f"{method} is a notification, not a request: send it without an id")
            return _Refused(data["id"], method, error, "it is a notification")
        fallback = JsonRPCRequestMessage if "id" in data else JsonRPCNotification
        try:
            structured = self._converter.structure(data, self.get_message_type(method) or fallback)
        except ClassValidationError as exc:
            why = "; ".join(transform_error(exc, format_exception=_invalid))
            if "id" not in data:
                log.warning("fluo lsp: dropped a %s notification: invalid params: %s", method, why)
                return _Dropped(method)
            error = JsonRpcInvalidParams(f"invalid params for {method}: {why}")
            return _Refused(data["id"], method, error, f"invalid params: {why}")
        return structured

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _Dropped):
            return
        if not isinstance(message, _Refused) and not hasattr(message, "jsonrpc"):
            self._not_a_message(message)
            return
        method = getattr(message, "method", None)
        request = isinstance(message, RPCRequest | _Refused)
        if not self.initialized and method not in (lsp.INITIALIZE, lsp.EXIT):
            if request:  # notifications before `initialize` are dropped, as the protocol says
                why = "the server is not initialized yet"
                self._refuse(message, JsonRpcServerNotInitialized(f"{why}: send `initialize` first"), why)
            return
        if method == lsp.INITIALIZE and self.initialized:
            if request:
                why = "the server is already initialized"
                self._refuse(message, JsonRpcInvalidRequest(f"{why}: `initialize` is sent once"), why)
            return
        if method == lsp.INITIALIZED:
            if self.started:
                return
            self.started = True
        if self._shutdown and request and method != lsp.EXIT:
            why = "the server is shut down"
            self._refuse(message, JsonRpcInvalidRequest(f"{why}: {method} is not handled"), why)
            return
        if isinstance(message, _Refused):
            self._refuse(message, message.error, message.why)
            return
        if method == lsp.WORKSPACE_EXECUTE_COMMAND and message.params.command not in self.fm.commands:
            command = message.params.command  # pygls answers the same, with a traceback on stderr
            unknown = JsonRpcInvalidParams(f"unknown command {command!r}: the server has no commands")
            self._refuse(message, unknown, f"unknown command {command!r}")
            return
        super().handle_message(message)

    def _refuse(self, message: Any, error: JsonRpcException, why: str) -> None:
        """Answer the request `message` with `error`, and say so in one line on stderr, with the reason the
        answer gives (a request refused before `initialize` is not also said to have invalid params)."""
        method = getattr(message, "method", "")
        name = f"{method} request" if method else "request"
        log.warning("fluo lsp: refused %s %s: %s", name, json.dumps(message.id), why)
        self._send_response(message.id, None, error.to_response_error())

    def _send_handler_result(self, future: Future[Any], *, msg_id: Any) -> None:
        """A handler's result; a `_Refusal` is the error it names, which pygls would also log with a traceback
        and pop up in the editor as "Error in server"."""
        refusal = None if future.cancelled() else future.exception()
        if isinstance(refusal, _Refusal):
            self._request_futures.pop(msg_id, None)
            self._send_response(msg_id, None, refusal.to_response_error())
            return
        super()._send_handler_result(future, msg_id=msg_id)

    def _not_a_message(self, message: Any) -> None:
        """A JSON value that is no JSON-RPC message (an object without `"jsonrpc"`, an array, a number): one
        that has an id and a method is refused with InvalidRequest, any other dropped; one line on stderr
        either way (pygls popped "Error in server" up in the editor, with a traceback on stderr)."""
        if isinstance(message, dict) and "id" in message and "method" in message:
            log.warning('fluo lsp: refused request %s: no "jsonrpc": "2.0"', json.dumps(message["id"]))
            error = JsonRpcInvalidRequest('invalid request: a JSON-RPC 2.0 message has "jsonrpc": "2.0"')
            self._send_response(message["id"], None, error.to_response_error())
            return
        log.warning("fluo lsp: dropped a message that is no JSON-RPC 2.0 request, notification or response")

    @lsp_method(lsp.INITIALIZE)
    def lsp_initialize(self, params: lsp.InitializeParams) -> Generator[Any, Any, lsp.InitializeResult]:
        self.initialized = True
        # pygls would pick the client's first choice (e.g. UTF-8); every client must accept
        # UTF-16, which is what `LineIndex` counts in.
        if params.capabilities.general is not None:
            params.capabilities.general.position_encodings = None
        result = yield from super().lsp_initialize(params)
        # pygls offers `workspace/executeCommand` with no command; the server has none, so offers none
        result.capabilities.execute_command_provider = None
        # No document is open before `initialize` returns, so the store can be swapped here.
        store = self.workspace
        self._workspace = _DocumentStore(
            store.root_uri, self._server._text_document_sync_kind, list(store.folders.values()), store.position_encoding
        )
        return result


class FluoServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            NAME, _version(), text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental, protocol_cls=_Protocol
        )
        self.settings = Settings()
        self.initial_settings = Settings()
        """The settings of `initializationOptions`: what a setting the client no longer sends goes back to."""
        self.index = Workspace(self.open_text)
        self.index.open_paths = lambda: [Path(d.path) for d in self.open_documents() if d.uri.startswith("file:")]
        self.documents: dict[str, RuleDocument] = {}
        self.pending: dict[str, asyncio.TimerHandle] = {}
        self.shut_down = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.index.on_read = self.rule_files_read

    def rule_files_read(self, paths: list[Path]) -> None:
        """The rule files beside these open ones, which their last checks went on without, have been read (in the
        workspace's reading thread): check them again, on the server's loop."""
        if self.loop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the server is stopping
                self.loop.call_soon_threadsafe(self.publish_read, set(paths))

    def publish_read(self, paths: set[Path]) -> None:
        for doc in self.open_documents():
            path = to_fs_path(doc.uri) if doc.uri.startswith("file:") else None
            if path is not None and Path(path) in paths and self.is_rule_file(doc.uri):
                self.publish(doc.uri, others=False)

    def report_server_error(self, error: Exception, source: Any) -> None:
        """A message that is not JSON is answered as JSON-RPC says, with ParseError and no id (none could be read),
        not with "Error in server" shown in the editor; other errors as pygls reports them."""
        if isinstance(error, _NOT_JSON):
            parse = {"code": JsonRpcParseError.CODE, "message": f"parse error: the message is not JSON ({error})"}
            self.protocol._send_data({"jsonrpc": "2.0", "id": None, "error": parse})
            return
        super().report_server_error(error, source)

    def shutdown(self) -> None:
        """The server stops (after `exit`, or its stdin closed): the rule files still to be read are dropped."""
        self.index.close()
        super().shutdown()  # type: ignore[no-untyped-call]

    # -- documents ------------------------------------------------------------------

    def open_document(self, uri: str) -> TextDocument | None:
        """The document the client has open at `uri`, or None.

        Every lookup goes through here: pygls keys open documents by their URI with
        percent-escapes decoded (`file:///my%20rules/a.fluo` as `file:///my rules/a.fluo`),
        so the URI the client sent, or one built from a path, is decoded the same way.
        """
        documents: dict[str, TextDocument] = self.workspace.text_documents
        return documents.get(unquote(uri))

    def open_documents(self) -> list[TextDocument]:
        return list(self.workspace.text_documents.values())

    def open_text(self, path: Path) -> str | None:
        uri = from_fs_path(str(path))
        doc = self.open_document(uri) if uri is not None else None
        return doc.source if doc is not None else None

    def text(self, uri: str) -> str | None:
        """The text at `uri`: the open document's, else the file's on disk; None if there is neither."""
        doc = self.open_document(uri)
        if doc is not None:
            return doc.source
        path = to_fs_path(uri)
        return read_rule_text(Path(path)) if path is not None else None

    def is_rule_file(self, uri: str) -> bool:
        """A `.fluo` file, or any document the client says is in the FLUO language (e.g. unsaved)."""
        if uri.endswith(".fluo"):
            return True
        doc = self.open_document(uri)
        return doc is not None and doc.language_id == "fluo"

    def rule_document(self, uri: str) -> RuleDocument | None:
        text = self.text(uri)
        if text is None:
            return None
        path = to_fs_path(uri) if uri.startswith("file:") else None
        if path is not None and self.open_document(uri) is not None:
            return self.index.open_document(Path(path), text)  # one analysis, shared with its test files
        doc = self.documents.get(uri)
        name = self.index.shown(Path(path)) if path is not None else None
        if doc is None or doc.source != text or (name is not None and doc.name != name):
            doc = RuleDocument(path or uri, text, name, previous=doc)
            self.documents[uri] = doc
        return doc

    def diagnostics_of(self, uri: str) -> list[lsp.Diagnostic] | None:
        """The diagnostics of a rule file or a rule test file (none if it is gone); None for any other file."""
        path = to_fs_path(uri) or uri
        if self.is_rule_file(uri):
            doc = self.rule_document(uri)
            if doc is None:
                return []
            diags = document_diagnostics(doc, uri, strict=self.settings.strict)
            if uri.startswith("file:"):  # ids another file of its folder defines first, as `fluo check FOLDER` says
                beside = self.index.sibling_duplicates(Path(path), doc)
                diags += [lsp_diagnostic(d, base, doc, uri, strict=self.settings.strict) for d, base in beside]
            return diags
        if is_test_file(path):
            text = self.text(uri)
            if text is None or not is_rule_test(path, text):  # another tool's `*_test.yaml`: left alone
                return []
            test = read_test_file(Path(path), text)
            problems = self.index.test_problems(test)
            if test.error is None:
                problems += self.index.runner_problems(Path(path), text)
            return test_diagnostics(problems, text)
        return None

    def publish(self, uri: str, *, others: bool = True) -> None:
        """Push the diagnostics of the open document at `uri`, under `uri` as the client sent it.

        Diagnostics are only pushed: the server offers no `textDocument/diagnostic`. A client that
        can pull does so from any server that offers it and keeps the pulled list apart from the
        pushed one (Neovim 0.10+ shows each problem twice, and a pulled one goes stale when another
        file fixes it); push alone reaches every client, and is refreshed here on every change.

        With `others`, a rule file's edit also refreshes the open documents it may
        change: test files, and rule files in its folder (rule ids are unique there).
        """
        # checked now (a save, a setting): not again when the timer fires; but a check for a change elsewhere
        # (`others` off) leaves it, to refresh what the pending edit may change
        handle = self.pending.pop(uri, None) if others else None
        if handle is not None:
            handle.cancel()
        doc = self.open_document(uri)
        if doc is None:
            return
        diags = self.diagnostics_of(uri)
        if diags is None:
            return
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diags, version=doc.version)
        )
        if others and self.is_rule_file(uri):
            self.publish_dependents(uri)

    def publish_dependents(self, uri: str) -> None:
        """Refresh the open documents a change to the rule file at `uri` may change: the test files
        that load it, and the other rule files of its folder (rule ids are unique there)."""
        changed = Path(to_fs_path(uri) or uri)
        for doc in self.open_documents():
            if is_test_file(doc.path) and self.index.loads(read_test_file(Path(doc.path), doc.source), changed):
                self.publish(doc.uri)
        folder = changed.parent
        for other in self.open_documents():
            if other.uri != uri and other.uri.endswith(".fluo") and Path(other.path).parent == folder:
                self.publish(other.uri, others=False)

    def schedule(self, uri: str) -> None:
        handle = self.pending.pop(uri, None)
        if handle is not None:
            handle.cancel()
        delay = self.settings.debounce_ms / 1000
        if delay <= 0:
            self.publish(uri)
            return
        self.pending[uri] = asyncio.get_running_loop().call_later(delay, self.publish, uri)

    def apply_settings(self, raw: Any) -> None:
        """The client's whole section, as `workspace/didChangeConfiguration` brings it: it replaces the last one."""
        self.settings = self.initial_settings.merged(raw)
        self.index.extra_keys = self.settings.attribute_keys
        for doc in self.open_documents():
            self.publish(doc.uri)


server = FluoServer()


@server.feature(lsp.SHUTDOWN)
def shutdown(ls: FluoServer, params: None) -> None:
    ls.shut_down = True


CLIENT_POLL = 3.0
"""Seconds between two looks at whether the client's process (`initialize`'s `processId`) is still there."""


def client_alive(pid: int) -> bool:
    """Whether the process `pid` is there (another user's too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: there, but not ours to signal
        return True
    return True


def watch_client(pid: int) -> bool:
    """Exit (status 1, as without `shutdown`) once the process `pid` is gone, as LSP asks of a server whose
    client names its process: a client killed while something else holds the server's stdin (a wrapper
    shell, a process that inherited the pipe) would otherwise leave it running for good.

    POSIX only (on Windows `os.kill` would signal the client); a pid that names no single process (0 or
    less, or past what a pid can be) is not watched, nor one already absent: an editor outside the
    server's pid namespace (a container, ssh) names a process the server cannot see, and the server must
    not exit for that. Whether it watches.
    """
    if os.name != "posix" or not 0 < pid < 2**31:
        return False
    if not client_alive(pid):
        log.warning("fluo lsp: the client (process %d) is not visible here: not watching it", pid)
        return False

    def watch() -> None:
        while client_alive(pid):
            time.sleep(CLIENT_POLL)
        log.warning("fluo lsp: the client (process %d) is gone: exiting", pid)
        os._exit(1)  # the thread reading stdin may be blocked for good: nothing else would end the process

    threading.Thread(target=watch, name="fluo-lsp-client-watch", daemon=True).start()
    return True


@server.feature(lsp.INITIALIZE)
def initialize(ls: FluoServer, params: lsp.InitializeParams) -> None:
    ls.loop = asyncio.get_running_loop()
    if params.process_id is not None:
        watch_client(params.process_id)
    ls.settings = ls.initial_settings = Settings().merged(params.initialization_options)
    ls.index.extra_keys = ls.settings.attribute_keys
    folders = [to_fs_path(f.uri) for f in params.workspace_folders or []]
    if not folders and params.root_uri:
        folders = [to_fs_path(params.root_uri)]
    ls.index.set_folders([Path(f) for f in folders if f])


def _any_case(suffix: str) -> str:
    """A glob of the suffix in any case (`.[jJ][sS][oO][nN]`): a glob's case is the client's, mostly exact."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in suffix)


WATCHED = (
    "**/*.fluo",
    "**/*_test.yaml",
    "**/*.fluotest.yaml",
    *(f"**/*{_any_case(s)}" for s in sorted(PROTOBUF_SUFFIXES | JSON_SUFFIXES | {".gz"})),
)
"""What the server asks the client to watch: rule files, test files and trace fixtures in any case, as
`is_trace_file_name` takes them (which tells which of the `.gz` files are). One glob per suffix: LSP globs
have character classes, and no client needs to read them nested in a `{...}` group."""


@server.feature(lsp.INITIALIZED)
def initialized(ls: FluoServer, params: lsp.InitializedParams) -> None:
    """Ask to be told of changes on disk (a checkout, `fluo test --update`), if the client can register that."""
    workspace = ls.client_capabilities.workspace
    watched = workspace.did_change_watched_files if workspace is not None else None
    if watched is None or not watched.dynamic_registration:
        return
    options = lsp.DidChangeWatchedFilesRegistrationOptions(
        watchers=[lsp.FileSystemWatcher(glob_pattern=pattern) for pattern in WATCHED]
    )
    registration = lsp.Registration(
        id="fluo-watched-files", method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES, register_options=options
    )
    ls.client_register_capability(lsp.RegistrationParams(registrations=[registration]))  # a refusal changes nothing


@server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched_files(ls: FluoServer, params: lsp.DidChangeWatchedFilesParams) -> None:
    """Files changed on disk: open documents may now see other rules, fixtures or duplicates.

    A file open in the editor is left out (the server reads its text, and saving it already
    refreshed what depends on it), and so is a JSON or protobuf file where the workspace scan
    never goes (`node_modules`, hidden folders: `package.json` there is no fixture). Rule and
    test files refresh every open document; trace files (fixtures) only the open test files,
    which check that their fixtures exist, and the attribute keys completion offers.
    """
    open_docs = ls.open_documents()
    open_paths = {Path(doc.path) for doc in open_docs}
    rules_or_tests = traces = False
    changed = [Path(to_fs_path(change.uri) or unquote(change.uri)) for change in params.changes]
    ls.index.changed_on_disk(changed)
    for path in changed:
        if path in open_paths:
            continue
        if is_trace_file_name(path.name):
            traces = traces or not ls.index.passes_over(path)
        elif path.suffix.lower() != ".gz":  # a `.gz` that is no trace file (watched for those that are): nothing
            rules_or_tests = True  # a rule or test file, or a folder removed with some
    if traces:
        ls.index.rescan_traces()
    for doc in open_docs:
        if rules_or_tests or (traces and is_test_file(doc.path)):
            ls.publish(doc.uri, others=False)


@server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(ls: FluoServer, params: lsp.DidChangeConfigurationParams) -> None:
    """Settings pushed with the notification, or else pulled with `workspace/configuration`."""
    raw = params.settings
    workspace = ls.client_capabilities.workspace
    if not raw and workspace is not None and workspace.configuration:
        items = [lsp.ConfigurationItem(section=SECTION)]
        pulled = await ls.workspace_configuration_async(lsp.ConfigurationParams(items=items))
        raw = pulled[0] if pulled else None
    ls.apply_settings(raw)


@server.feature(lsp.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
def did_change_folders(ls: FluoServer, params: lsp.DidChangeWorkspaceFoldersParams) -> None:
    folders = {Path(p) for f in ls.workspace.folders.values() if (p := to_fs_path(f.uri))}
    ls.index.set_folders(sorted(folders))


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: FluoServer, params: lsp.DidOpenTextDocumentParams) -> None:
    ls.publish(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: FluoServer, params: lsp.DidChangeTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: FluoServer, params: lsp.DidSaveTextDocumentParams) -> None:
    ls.index.forget_disk()  # a client may watch no files: a save is when what is on disk is seen again
    ls.publish(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: FluoServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    handle = ls.pending.pop(uri, None)
    if handle is not None:
        handle.cancel()
    rule_file = ls.is_rule_file(uri)
    ls.documents.pop(uri, None)
    path = to_fs_path(uri) if uri.startswith("file:") else None
    if path is not None:
        ls.index.closed(Path(path))
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
    if rule_file:  # the documents that read this rule file now read it from disk
        ls.publish_dependents(uri)


def _rule_doc(ls: FluoServer, uri: str) -> RuleDocument | None:
    """The rule document at `uri` for a request about its content; None for a file too large to check (FLUO402)."""
    doc = ls.rule_document(uri) if ls.is_rule_file(uri) else None
    return doc if doc is not None and doc.unreadable is None else None


@server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=[".", "(", " ", ":", "["]))
def complete(ls: FluoServer, params: lsp.CompletionParams) -> lsp.CompletionList | None:
    doc = _rule_doc(ls, params.text_document.uri)
    if doc is None:
        found = _rule_test(ls, params.text_document.uri)
        if found is None:
            return None
        test, text = found
        ids = sorted(ls.index.ids_in([p for p, _ in test.rule_paths()]))
        items = completion.test_file_rule_ids(text, LineIndex(text).offset(params.position), ids)
        return lsp.CompletionList(is_incomplete=False, items=items)
    span_keys, resource_keys = ls.index.attribute_keys()
    offset = doc.index.offset(params.position)
    context = params.context
    after_space = (
        context is not None
        and context.trigger_kind == lsp.CompletionTriggerKind.TriggerCharacter
        and context.trigger_character == " "
    )
    document = ls.client_capabilities.text_document
    item = document.completion.completion_item if document is not None and document.completion else None
    snippets = bool(item is not None and item.snippet_support)
    items = completion.complete(
        doc,
        offset,
        span_keys,
        resource_keys,
        after_space=after_space,
        snippets=snippets,
        skeletons=ls.settings.rule_skeletons,
    )
    if doc.index.in_lead(params.position):
        items = completion.before_lead(items, params.position, doc.source[: len(doc.source) - len(doc.text)])
    return lsp.CompletionList(is_incomplete=False, items=items)


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
def on_hover(ls: FluoServer, params: lsp.HoverParams) -> lsp.Hover | None:
    doc = _rule_doc(ls, params.text_document.uri)
    if doc is None:
        return None
    found = hover.hover_at(doc, doc.index.offset(params.position)) if not doc.index.in_lead(params.position) else None
    if found is None:
        return None
    text, span, base = found
    return lsp.Hover(
        contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text), range=span_range(doc.index, span, base)
    )


@server.feature(lsp.TEXT_DOCUMENT_SIGNATURE_HELP, lsp.SignatureHelpOptions(trigger_characters=["(", ","]))
def signature_help(ls: FluoServer, params: lsp.SignatureHelpParams) -> lsp.SignatureHelp | None:
    doc = _rule_doc(ls, params.text_document.uri)
    if doc is None:
        return None
    document = ls.client_capabilities.text_document
    help_ = document.signature_help if document is not None else None
    info = help_.signature_information if help_ is not None else None
    none_active = bool(info is not None and info.no_active_parameter_support)
    return completion.signature_help(doc, doc.index.offset(params.position), none_active=none_active)


@server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def document_symbols(ls: FluoServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol] | None:
    doc = _rule_doc(ls, params.text_document.uri)
    return outline.symbols(doc) if doc is not None else None


@server.feature(lsp.TEXT_DOCUMENT_FOLDING_RANGE)
def folding_ranges(ls: FluoServer, params: lsp.FoldingRangeParams) -> list[lsp.FoldingRange] | None:
    doc = _rule_doc(ls, params.text_document.uri)
    return outline.folding_ranges(doc) if doc is not None else None


@server.feature(lsp.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, outline.LEGEND)
def semantic_tokens(ls: FluoServer, params: lsp.SemanticTokensParams) -> lsp.SemanticTokens | None:
    doc = _rule_doc(ls, params.text_document.uri)
    return lsp.SemanticTokens(data=outline.semantic_tokens(doc)) if doc is not None else None


@server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: FluoServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
    doc = _rule_doc(ls, params.text_document.uri)
    if doc is None:
        return None
    result = format_source(doc.text, doc.path)
    if result.text is None:
        ls.window_show_message(
            lsp.ShowMessageParams(type=lsp.MessageType.Warning, message="fluo: not formatted; fix the syntax errors")
        )
        return None
    if result.text == doc.text:
        return []
    return [lsp.TextEdit(range=doc.index.range(0, len(doc.text)), new_text=result.text)]


@server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
def code_actions(ls: FluoServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction] | None:
    uri = params.text_document.uri
    doc = _rule_doc(ls, uri)
    if doc is None:
        found = _rule_test(ls, uri)
        if found is None:
            return None
        test, text = found
        index = LineIndex(text)
        start, end = index.offset(params.range.start), index.offset(params.range.end)
        problems = ls.index.test_problems(test)
        if test.error is None:
            problems += ls.index.runner_problems(test.path, text)

        def recheck(edited: str) -> list[TestProblem]:
            return ls.index.runner_problems(test.path, edited)

        return actions.test_file_actions(problems, text, uri, start, end, recheck)
    start, end = doc.index.offset(params.range.start), doc.index.offset(params.range.end)
    return actions.code_actions(doc, uri, start, end, strict=ls.settings.strict)


def _rule_test(ls: FluoServer, uri: str) -> tuple[TestFile, str] | None:
    """The rule test file at `uri` (FLUO's, not another tool's `*_test.yaml`), as read, and its text."""
    path = Path(to_fs_path(uri) or uri)
    text = ls.text(uri) if is_test_file(str(path)) else None
    if text is None or not is_rule_test(path, text):
        return None
    return read_test_file(path, text), text


# -- rule ids between rule files and test files -------------------------------------


def _site_location(site: RuleSite) -> lsp.Location:
    return lsp.Location(
        uri=path_uri(site.path),
        range=span_range(site.document.index, site.rule.id_span, site.base),
    )


def _rule_under_cursor(ls: FluoServer, uri: str, position: lsp.Position) -> tuple[str, Path, list[Path]] | None:
    """The rule id at the cursor, the file the cursor is in, and the rule files to look for it in."""
    path = Path(to_fs_path(uri) or uri)
    if path.suffix == ".fluo":
        doc = ls.rule_document(uri)
        offset = doc.index.offset(position) if doc is not None else 0
        for rule, base in doc.rules() if doc is not None else []:
            if rule.id and not rule.bare and rule.id_span.start + base <= offset <= rule.id_span.end + base:
                return rule.id, path, [path]
        return None
    text = ls.text(uri)
    if text is None:
        return None
    if is_test_file(str(path)) and is_rule_test(path, text):
        offset = LineIndex(text).offset(position)
        test = read_test_file(path, text)
        for name in test.rule_ids:
            if name.contains(offset):
                return name.value, path, [p for p, _ in test.rule_paths()]
    return None


MAX_FOLDER_TARGETS = 50


def _rule_files_in(folder: Path) -> list[Path]:
    try:
        return rule_files([folder])
    except RuleSourceError:
        return []


def _trace_files_in(folder: Path) -> list[Path]:
    try:
        return trace_files_in(folder)
    except TraceInputError:
        return []


@server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
def definition(ls: FluoServer, params: lsp.DefinitionParams) -> list[lsp.Location] | None:
    uri = params.text_document.uri
    path = Path(to_fs_path(uri) or uri)
    text = ls.text(uri) if is_test_file(str(path)) else None
    if text is not None and is_rule_test(path, text):
        offset = LineIndex(text).offset(params.position)
        test = read_test_file(path, text)
        start = lsp.Position(line=0, character=0)
        for names, in_folder in ((test.rules, _rule_files_in), (test.traces, _trace_files_in)):
            for name in names:
                target = test.folder / name.value
                if not name.contains(offset) or not os.path.exists(target):
                    continue
                # a folder is its files (an editor opens files, not folders), the first few of them
                files = in_folder(target)[:MAX_FOLDER_TARGETS] if target.is_dir() else [target]
                return [lsp.Location(uri=path_uri(f), range=lsp.Range(start=start, end=start)) for f in files]
    found = _rule_under_cursor(ls, uri, params.position)
    if found is None:
        return None
    rule_id, _, near = found
    return [_site_location(s) for s in ls.index.definitions(rule_id, near)] or None


@server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
def references(ls: FluoServer, params: lsp.ReferenceParams) -> list[lsp.Location] | None:
    found = _rule_under_cursor(ls, params.text_document.uri, params.position)
    if found is None:
        return None
    rule_id, _, near = found
    sites = ls.index.definitions(rule_id, near)
    if not sites:
        return None
    out = [_site_location(sites[0])] if params.context.include_declaration else []
    texts: dict[Path, LineIndex] = {}
    for test_path, start, end in ls.index.references(rule_id, sites[0].path):
        if test_path not in texts:
            text = ls.open_text(test_path)
            texts[test_path] = LineIndex(text if text is not None else read_rule_text(test_path) or "")
        out.append(lsp.Location(uri=path_uri(test_path), range=texts[test_path].range(start, end)))
    return out


class _Refusal(JsonRpcException):
    """A request the server cannot do, answered with this error and its reason (LSP's RequestFailed), nothing
    more: no "Error in server" in the editor, no traceback on stderr."""

    CODE = rename.REQUEST_FAILED


async def _renamed(ls: FluoServer, uri: str, position: lsp.Position) -> tuple[RuleSite, str, lsp.Range]:
    """The rule whose id is at the cursor (on its definition or in a test file), its id, and the id's range;
    a `_Refusal` if that rule cannot be renamed, or None at the cursor.

    The rule is looked for in a thread of its own (`Workspace.definition_search`): the rule files a test loads,
    and the workspace's when it is not there, are read from disk, while the server answers other requests."""
    found = _rule_under_cursor(ls, uri, position)
    if found is None:
        raise _Refusal("only a rule id can be renamed: put the cursor on one (`rule ID {`, or `rule:` in a test)")
    rule_id, path, near = found
    at: lsp.Range | None = None
    if path.suffix != ".fluo":
        text = ls.text(uri) or ""
        index = LineIndex(text)
        offset = index.offset(position)
        test = read_test_file(path, text)
        name = next(n for n in test.rule_ids if n.value == rule_id and n.contains(offset))
        at = index.range(name.start, name.end)
    sites = await asyncio.to_thread(ls.index.definition_search(rule_id, near))
    if not sites:
        raise _Refusal(f"no rule `{rule_id}` is defined in the rule files this test loads")
    if sites[0].rule.bare:
        raise _Refusal(f"`{rule_id}` is the rule of a bare expression, named after its file: rename the file")
    return sites[0], rule_id, at if at is not None else _site_location(sites[0]).range


@server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
async def prepare_rename(ls: FluoServer, params: lsp.PrepareRenameParams) -> lsp.PrepareRenamePlaceholder:
    """The id at the cursor and its range, if it is a rule's that can be renamed (`_renamed`)."""
    _, rule_id, at = await _renamed(ls, params.text_document.uri, params.position)
    return lsp.PrepareRenamePlaceholder(range=at, placeholder=rule_id)


@server.feature(lsp.TEXT_DOCUMENT_RENAME, lsp.RenameOptions(prepare_provider=True))
async def rename_rule(ls: FluoServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit:
    """A rule id, where it is defined and where the test files that load its rule file expect it (`rule:`,
    `only:`): those `references` finds. A new name that is no rule id, or one the rules loaded with it use
    (its file's, its folder's, its tests', its workspace folder's as `fluo check .` searches it), is refused
    with where that rule is (`Workspace.clash`, `Workspace.folder_search`).

    The workspace folder is searched in a thread of its own, while the server answers other requests; what
    that search could not look at (a folder it cannot read, past its budget) is said in a warning."""
    site, rule_id, _ = await _renamed(ls, params.text_document.uri, params.position)
    new_id = params.new_name
    if new_id == rule_id:
        return lsp.WorkspaceEdit(changes={})
    why = rename.unfit_id(new_id)
    if why is not None:
        raise _Refusal(why)
    clash = ls.index.clash(site.path, new_id)
    search = ls.index.folder_search(site.path, new_id) if clash is None else None
    if search is not None:
        found = await asyncio.to_thread(search)
        if found.site is not None:
            clash = found.site, "`fluo check .` run in the workspace folder"
        elif found.unchecked:
            _not_searched(ls, new_id, found.unchecked)
    if clash is not None:
        other, how = clash
        said = f"rule id `{new_id}` is already defined at {ls.index.located(other)}"
        if how == "the same file":
            raise _Refusal(f"{said}, in the same file as `{rule_id}`")
        raise _Refusal(f"{said}, which {how} loads with `{rule_id}`: it would be a duplicate rule id (FLUO213)")
    changes = {path_uri(site.path): [lsp.TextEdit(range=_site_location(site).range, new_text=new_id)]}
    texts: dict[Path, str] = {}
    for test in ls.index.test_files():
        if not ls.index.loads(test, site.path):
            continue
        text = texts.setdefault(test.path, ls.open_text(test.path) or read_rule_text(test.path) or "")
        index = LineIndex(text)
        edits = [
            lsp.TextEdit(range=index.range(n.start, n.end), new_text=rename.yaml_edit(text, n, new_id))
            for n in read_test_file(test.path, text).rule_ids
            if n.value == rule_id
        ]
        if edits:
            changes[path_uri(test.path)] = edits
    return lsp.WorkspaceEdit(changes=changes)


MAX_NAMED = 5
"""The things a rename's search could not look at that its warning names; it counts the others."""


def _not_searched(ls: FluoServer, new_id: str, unchecked: Sequence[str]) -> None:
    """Warn (shown, and on stderr) that a rename to `new_id` goes ahead without the workspace folder searched whole
    for a rule of that id: `fluo check .` may still find two (FLUO213)."""
    more = len(unchecked) - MAX_NAMED
    named = "; ".join(unchecked[:MAX_NAMED]) + (f"; and {more} more" if more > 0 else "")
    message = (
        f"fluo: renamed to `{new_id}` without searching all of the workspace folder for a rule `{new_id}` "
        f"(`fluo check .` reports a duplicate as FLUO213); not searched: {named}"
    )
    log.warning("%s", message)
    ls.window_show_message(lsp.ShowMessageParams(type=lsp.MessageType.Warning, message=message))


@click.command(name="lsp")
@click.option("--stdio", is_flag=True, help="Talk over stdin/stdout (the default and only transport).")
def command(stdio: bool) -> None:
    """Run the FLUO language server over stdio, for editors.

    Settings (section `fluo`): attributeKeys, strictness ("default" | "strict"),
    diagnostics.debounceMs, completion.ruleSkeletons. See docs/editor.md.

    \b
    Example (Neovim):
      vim.lsp.start({ name = "fluo", cmd = { "fluo", "lsp" }, root_dir = vim.fn.getcwd() })
    """
    # pygls closes the stream it wrote to when it stops: give it its own descriptor, so that
    # `sys.stdout` stays open for whatever flushes it on the way out (the CLI does).
    try:
        stdin = standard_input()
    except StdinClosed:
        click.echo("fluo: standard input is closed: the language server reads its requests there", err=True)
        sys.exit(2)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    logging.getLogger("pygls.server").addFilter(_NotJson())
    with _ended_by_ctrl_c(stdin) as (stdin, interrupted):
        server.start_io(cast(BinaryIO, _BoundedInput(stdin)), out)  # pygls calls readline() and read(n) only
    if interrupted.is_set():
        raise KeyboardInterrupt  # the CLI's Ctrl-C: 130, quietly
    if not server.shut_down:  # pygls ends `start_io` quietly, whatever `exit` asked for
        sys.exit(1)


__all__ = ["FluoServer", "command", "server"]
