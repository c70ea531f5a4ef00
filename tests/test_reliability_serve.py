"""Hardening of `fluo serve`, one check each against a real process: malformed gRPC requests get
INVALID_ARGUMENT, error messages are one line, `--cost-limit` rejects FLUO404 rule sets at load,
and `--eval-budget` stops one huge trace with a `fluo.evaluation_truncated` signal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))

from scenarios import EXAMPLE_RULES, JSON, PROTOBUF, Serve, trace_request, wait_for

from fluo_lang.evaluate import TRUNCATED_RULE


def test_grpc_answers_invalid_argument_to_an_undecodable_request(tmp_path: Path) -> None:
    with Serve(["--rules", str(EXAMPLE_RULES), "--no-db"], tmp_path) as serve, serve.channel() as channel:
        assert serve.export(channel, b"\xff\xff\xff") == grpc.StatusCode.INVALID_ARGUMENT


def test_a_body_that_is_not_gzip_gets_a_one_line_400(tmp_path: Path) -> None:
    with Serve(["--rules", str(EXAMPLE_RULES), "--no-db"], tmp_path) as serve:
        answer = serve.post(b'{"resourceSpans": []}', JSON, {"Content-Encoding": "gzip"})
    assert answer.status == 400
    message = json.loads(answer.body)["message"]
    assert "\n" not in message


def test_serve_refuses_a_rule_over_the_cost_limit(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "cubic.fluo").write_text("rule cubic { expect trace.spans.all(descendants.all(ancestors.count() < 3)) }\n")
    serve = Serve(["--rules", str(rules), "--no-db"], tmp_path)
    with pytest.raises(RuntimeError, match="FLUO404"):
        serve.start()
    with Serve(["--rules", str(rules), "--no-db", "--cost-limit", "0"], tmp_path) as unlimited:
        assert unlimited.alive()


def test_serve_bounds_the_evaluation_of_one_huge_trace(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "deep.fluo").write_text("rule deep { expect trace.spans.all(descendants.count() < 100000) }\n")
    out = tmp_path / "signals.jsonl"
    args = ["--rules", str(rules), "--no-db", "--jsonl", str(out), "--trace-idle", "100ms", "--eval-budget", "20000"]
    with Serve(args, tmp_path) as serve:
        chain = trace_request(1, 1, salt=0xDEE9)
        spans = chain.resource_spans[0].scope_spans[0].spans
        for i in range(1, 1500):  # a chain: each span the parent of the next
            sp = spans.add()
            sp.CopyFrom(spans[0])
            sp.span_id = (i + 1).to_bytes(8, "big")
            sp.parent_span_id = i.to_bytes(8, "big")
        assert serve.post(chain.SerializeToString(), PROTOBUF).status == 200
        wait_for(lambda: out.exists() and TRUNCATED_RULE in out.read_text(), 30, "the truncation signal")
