"""The conformance table through the runtime: rules loaded by `fluo serve`, traces sent over OTLP/HTTP.

The runtime must agree with the table and with `fluo eval` on the same files,
signal for signal (per-trace and windowed).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conformance_cases import RULE_FILE_NAME, Case, compare_signals, load_cases
from serve_support import config, metric, settled, wait_for

from fluo_lang.otlp import load_trace_files, spans_to_request
from fluo_run.cli import main
from fluo_run.serve.rules import RuleSetError, load_rule_set
from fluo_run.serve.runtime import RuntimeThread
from fluo_run.serve.sinks import CallbackSink

CASES = load_cases()


PARTIAL_FIELDS = ("partial", "partial_reasons", "observed_start", "observed_end")
"""What the runtime adds to a signal of a window it did not see whole; `fluo eval` sees every window whole."""


def normalised(signals: list[dict[str, Any]]) -> list[str]:
    """Signals as sorted JSON texts, without the runtime's partial-window fields; culprit spans (span id, and
    trace id in a window) as a set, since span arrival order is the sender's."""
    out = []
    for s in signals:
        ids = {"span_ids": sorted(s["span_ids"])}
        if "trace_ids" in s:
            pairs = sorted(zip(s["span_ids"], s["trace_ids"], strict=True))
            ids = {"span_ids": [sid for sid, _ in pairs], "trace_ids": [tid for _, tid in pairs]}
        out.append(json.dumps({k: v for k, v in s.items() if k not in PARTIAL_FIELDS} | ids, sort_keys=True))
    return sorted(out)


def through_runtime(case: Case, rules: Path, tmp_path: Path) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    # no evaluation budget, as `fluo eval` has none
    cfg = config(tmp_path, grpc=None, rules=[rules], eval_budget=0)
    with RuntimeThread(cfg, [CallbackSink(got.extend)]) as rt:
        # one request, so every trace (and window) is complete when it goes idle, however slow the machine
        spans = load_trace_files(case.trace_files())
        sent = len(spans)
        request = urllib.request.Request(
            f"{rt.http_url}/v1/traces",
            data=spans_to_request(spans).SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        wait_for(lambda: metric(rt, "fluo_spans_received_total", transport="http") == sent)
        wait_for(lambda: settled(rt) and (not rt.runtime.evaluator.window_spans))
        assert metric(rt, "fluo_spans_late_total") == 0
        assert metric(rt, "fluo_window_late_traces_total") == 0
    return got


def through_eval(case: Case, rules: Path) -> list[dict[str, Any]]:
    args = ["eval", str(rules)]
    for t in case.trace_files():
        args += ["--traces", str(t)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_runtime(case: Case, tmp_path: Path) -> None:
    rules = tmp_path / RULE_FILE_NAME
    rules.write_text(case.rules_text, encoding="utf-8")
    if case.error_code:
        with pytest.raises(RuleSetError) as refused:
            load_rule_set([rules])
        assert case.error_code in {d.code for d in refused.value.diagnostics if d.is_error}
        return
    signals = through_runtime(case, rules, tmp_path)
    assert compare_signals(case.expected_signals, signals) == []
    assert normalised(signals) == normalised(through_eval(case, rules))
    for s in signals:  # the fixtures are past traffic: every window began before this runtime started
        if "window_start" in s and s["rule"] != "fluo.evaluation_truncated":
            assert s["partial"] is True and s["partial_reasons"] == ["started_before_serve"], s
        elif "window_start" not in s:
            assert not any(k in s for k in PARTIAL_FIELDS), s
