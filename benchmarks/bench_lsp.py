"""Language server speed on a 1,000-rule file: diagnostics after an edit, and completion latency.

Prints each figure in milliseconds and as a ratio to a bare parse of the same file
(`fluo_lang.parser.parse`), measured in the same run:
  - diagnostics after an edit (target < 100 ms): the server's work on one edit (cut the
    file into rules, re-check the rule that changed, convert every diagnostic), and the
    same seen by a client over stdio: didChange -> publishDiagnostics, debounce set to 0;
  - completion p95 (target < 20 ms): in process, and a client's request -> response over stdio;
  - semantic tokens of one rule on a single ~98 KB line (5,000 `or` terms, 40,000 lexemes): the
    first request on a text (the lexing is done then, once per rule text) and a repeat, in process
    (CPU time) and over stdio.

Run: python benchmarks/bench_lsp.py [--rules N] [--edits N] [--completions N] [--tokens-only]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fluo_lang.parser import parse
from fluo_lsp.completion import complete
from fluo_lsp.document import RuleDocument
from fluo_lsp.outline import semantic_tokens
from fluo_lsp.positions import LineIndex
from fluo_lsp.reporting import document_diagnostics

TEMPLATES = (
    "// Retries must not turn into a storm.\n"
    "rule storm_{i} {{\n  severity: critical\n  description: \"more than {n} auth spans\"\n"
    "  tags: [auth, reliability]\n"
    "  detect trace.spans.where(service == 'auth' and duration > {n}ms).count() > {n}\n}}\n",
    "rule checkout_{i} {{\n  severity: error\n"
    "  expect trace.spans.where(name == \"checkout\").all(descendants.where(status == error).count() == 0)\n}}\n",
    "rule charge_{i} {{\n  severity: error\n  when {{ trace.has(name == \"charge\").where(amount > {n}) }}\n"
    "  always {{ trace.has(name == \"fraud_check\").before(trace.has(name == \"charge\")) }}\n}}\n",
    "rule rate_{i} {{\n  window 1m\n  expect window.spans.where(http.response.status_code >= 500).count() <= {n}\n}}\n",
)  # fmt: skip
EDIT_MARK = "count() > "


def rule_file(n: int) -> str:
    return "\n".join(TEMPLATES[i % len(TEMPLATES)].format(i=i, n=10 + i % 90) for i in range(n))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def edited(text: str, rng: random.Random) -> str:
    """The text with one number in one rule changed, as a user's keystroke would."""
    at = text.find(EDIT_MARK, rng.randrange(len(text) - 100))
    at = text.find(EDIT_MARK) if at < 0 else at
    at += len(EDIT_MARK)
    return text[:at] + str(rng.randrange(1, 9)) + text[at + 1 :]


def completion_points(text: str, rng: random.Random, count: int) -> list[int]:
    """Cursor offsets after `spans.` and inside `where(`, spread over the file."""
    points = []
    for marker in ("spans.", "where("):
        start = 0
        found = []
        while (i := text.find(marker, start)) >= 0:
            found.append(i + len(marker))
            start = i + 1
        points += rng.sample(found, min(count // 2, len(found)))
    return points


class StdioClient:
    """Just enough of an LSP client to time `fluo lsp` from outside."""

    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fluo_run.cli", "lsp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        init = {
            "capabilities": {},
            "rootUri": root.as_uri(),
            "initializationOptions": {"diagnostics": {"debounceMs": 0}},
        }
        self.request("initialize", init)
        self.notify("initialized", {})

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = 0
            while (line := out.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not line:
                return
            self.messages.put(json.loads(out.read(length)))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        return self.wait(lambda m: m.get("id") == self.next_id and "method" not in m).get("result")

    def wait(self, match: Any, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if match(message):
                return message

    def close(self) -> None:
        self.request("shutdown", None)
        self.notify("exit", None)
        self.proc.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--completions", type=int, default=200)
    ap.add_argument("--tokens-only", action="store_true", help="only the semantic tokens figures")
    args = ap.parse_args()
    tokens_on_a_long_line()
    if args.tokens_only:
        return
    rng = random.Random(3)
    text = rule_file(args.rules)
    path = os.path.join(tempfile.mkdtemp(), "rules.fluo")
    Path(path).write_text(text)
    uri = Path(path).as_uri()

    parse(text, path)  # load the grammar
    bare = statistics.median(_time(lambda: parse(text, path)) for _ in range(3))
    print(f"{args.rules} rules, {len(text):,} characters; bare parse {ms(bare)}")

    doc = RuleDocument(path, text)
    document_diagnostics(doc, uri, strict=False)
    inproc = []
    current = text
    for _ in range(args.edits):
        current = edited(current, rng)
        inproc.append(_time(lambda t=current: document_diagnostics(RuleDocument(path, t), uri, strict=False)))
    diag = statistics.median(inproc)
    ratio = diag / bare
    print(f"diagnostics after an edit, in process (median): {ms(diag)} = {ratio:.4f} x bare parse  (target < 100 ms)")

    doc = RuleDocument(path, current)
    points = completion_points(current, rng, args.completions)
    lat = [_time(lambda o=o: complete(doc, o, ["http.response.status_code"], [])) for o in points]
    print(f"completion p95, in process: {ms(p95(lat))} = {p95(lat) / bare:.4f} x bare parse  (target < 20 ms)")

    client = StdioClient(Path(path).parent)
    try:
        item = {"uri": uri, "languageId": "fluo", "version": 1, "text": current}
        client.notify("textDocument/didOpen", {"textDocument": item})
        client.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics")
        index = LineIndex(current)
        wire = []
        for version in range(2, 2 + args.edits):
            at = current.find(EDIT_MARK, rng.randrange(len(current) - 100))
            at = (current.find(EDIT_MARK) if at < 0 else at) + len(EDIT_MARK)
            new_digit = str(rng.randrange(1, 9))
            start, end = index.position(at), index.position(at + 1)
            change = {"range": {"start": _pos(start), "end": _pos(end)}, "text": new_digit}
            current = current[:at] + new_digit + current[at + 1 :]
            began = time.perf_counter()
            client.notify(
                "textDocument/didChange",
                {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]},
            )
            client.wait(
                lambda m, v=version: (
                    m.get("method") == "textDocument/publishDiagnostics" and m["params"].get("version") == v
                )
            )
            wire.append(time.perf_counter() - began)
        diag_wire = statistics.median(wire)
        print(f"diagnostics after an edit, over stdio (median): {ms(diag_wire)} = {diag_wire / bare:.4f} x bare parse")
        wire = []
        for offset in points[:100]:
            pos = _pos(index.position(offset))
            began = time.perf_counter()
            client.request("textDocument/completion", {"textDocument": {"uri": uri}, "position": pos})
            wire.append(time.perf_counter() - began)
        print(f"completion p95, over stdio: {ms(p95(wire))} = {p95(wire) / bare:.4f} x bare parse")
        current = with_a_test_file_open(client, Path(path), current, rng, args.edits, bare)
    finally:
        client.close()


def with_a_test_file_open(
    client: StdioClient, path: Path, current: str, rng: random.Random, edits: int, bare: float
) -> str:
    """A 100-case test file loading the rule file is open: every check of the rule file checks it too (on the
    server's only thread). Times an edit to the rule file until the test file's diagnostics are in, and a
    completion asked just after such an edit, each also as a ratio to the same figure without the test file."""
    uri = path.as_uri()
    test = path.with_name("rules_test.yaml")
    ids = [line.split()[1] for line in current.splitlines() if line.startswith("rule ")]
    cases = "".join(
        f"  - name: c{i}\n    spans: [{{name: a, service: auth}}]\n    expect: [{{rule: {ids[i * len(ids) // 100]}}}]\n"
        for i in range(100)
    )
    text = f"rules: [{path.name}]\ncases:\n{cases}"
    test.write_text(text)
    index = LineIndex(current)
    version = 1000

    def edit_then(wait_for_test: bool) -> tuple[float, float]:
        nonlocal current, version, index
        version += 1
        at = current.find(EDIT_MARK, rng.randrange(len(current) - 100))
        at = (current.find(EDIT_MARK) if at < 0 else at) + len(EDIT_MARK)
        digit = str(rng.randrange(1, 9))
        change = {"range": {"start": _pos(index.position(at)), "end": _pos(index.position(at + 1))}, "text": digit}
        current = current[:at] + digit + current[at + 1 :]
        began = time.perf_counter()
        client.notify(
            "textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]}
        )
        if wait_for_test:
            client.wait(
                lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == test.as_uri()
            )
        else:
            client.wait(
                lambda m, v=version: (
                    m.get("method") == "textDocument/publishDiagnostics" and m["params"].get("version") == v
                )
            )
        checked = time.perf_counter() - began
        began = time.perf_counter()
        client.request("textDocument/completion", {"textDocument": {"uri": uri}, "position": _pos(index.position(at))})
        return checked, time.perf_counter() - began

    alone = [edit_then(False) for _ in range(edits)]
    item = {"uri": test.as_uri(), "languageId": "yaml", "version": 1, "text": text}
    client.notify("textDocument/didOpen", {"textDocument": item})
    client.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == test.as_uri())
    beside = [edit_then(True) for _ in range(edits)]
    for i, what in ((0, "diagnostics after an edit"), (1, "completion just after an edit")):
        without = statistics.median(t[i] for t in alone)
        with_test = statistics.median(t[i] for t in beside)
        print(
            f"{what}, over stdio, a 100-case test file open (median): {ms(with_test)} = {with_test / bare:.4f} x bare"
            f" parse, {with_test / without:.2f} x without it"
        )
    return current


def long_line(terms: int, salt: int) -> str:
    ors = " or ".join(f"name == 'op{i}'" for i in range(terms))
    return f"rule big_{salt} {{ expect trace.spans.where({ors}).count() > 0 }}\n"


def tokens_on_a_long_line(runs: int = 7) -> None:
    """Semantic tokens on one rule written on a single line, each run on a text not seen before: in process
    (CPU time, so other load on the machine counts less), and a client's request -> response over stdio
    once the document's diagnostics are in."""
    semantic_tokens(RuleDocument("warm.fluo", long_line(10, 0)))  # load the grammar
    first, again = [], []
    for salt in range(1, runs + 1):
        doc = RuleDocument("long.fluo", long_line(5000, salt))
        first.append(_cpu(lambda d=doc: semantic_tokens(d)))
        again.append(_cpu(lambda d=doc: semantic_tokens(d)))
    print(f"semantic tokens, one rule on a {len(long_line(5000, 1)):,}-character line (median of {runs}, min):")
    print(f"  in process, CPU: first request {_figures(first)}; again {_figures(again)}")
    folder = Path(tempfile.mkdtemp())
    client = StdioClient(folder)
    try:
        first, again = [], []
        for salt in range(runs + 1):
            uri = (folder / f"long{salt}.fluo").as_uri()
            item = {"uri": uri, "languageId": "fluo", "version": 1, "text": long_line(5000 if salt else 10, salt)}
            client.notify("textDocument/didOpen", {"textDocument": item})
            client.wait(
                lambda m, u=uri: m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == u
            )
            for times in (first, again):
                began = time.perf_counter()
                client.request("textDocument/semanticTokens/full", {"textDocument": {"uri": uri}})
                if salt:  # the first document only loads the grammar
                    times.append(time.perf_counter() - began)
            client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        print(f"  over stdio: first request {_figures(first)}; again {_figures(again)}")
    finally:
        client.close()


def _figures(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1000:.1f} ms ({min(seconds) * 1000:.1f})"


def _cpu(fn: Any) -> float:
    began = time.process_time()
    fn()
    return time.process_time() - began


def _pos(p: Any) -> dict[str, int]:
    return {"line": p.line, "character": p.character}


def _time(fn: Any) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
