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
    """Signals as sorted JSON texts, without the runtime's partial-window fields. Culprit spans (`span_ids`, and
    `trace_ids` of a window) are kept in their order, which must not depend on the order spans arrived in."""
    return sorted(json.dumps({k: v for k, v in s.items() if k not in PARTIAL_FIELDS}, sort_keys=True) for s in signals)


def through_runtime(case: Case, rules: Path, tmp_path: Path, exports: int = 1) -> list[dict[str, Any]]:
    """The signals of `case` from a runtime sent its spans in one request, or with `exports` > 1, in that many
    requests, last spans first and each reversed: another arrival order than the files'."""
    got: list[dict[str, Any]] = []
    # no evaluation budget, as `fluo eval` has none; with several exports, time for them all before a trace is idle
    cfg = config(tmp_path, grpc=None, rules=[rules], eval_budget=0, trace_idle=0.2 if exports == 1 else 3.0)
    with RuntimeThread(cfg, [CallbackSink(got.extend)]) as rt:
        # one request (or several well inside `trace_idle`), so every trace (and window) is complete when it
        # goes idle, however slow the machine
        spans = load_trace_files(case.trace_files())
        sent = len(spans)
        parts = [spans] if exports == 1 else [spans[i::exports][::-1] for i in reversed(range(exports))]
        for part in parts:
            request = urllib.request.Request(
                f"{rt.http_url}/v1/traces",
                data=spans_to_request(part).SerializeToString(),
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


ARRIVAL = next(c for c in CASES if c.name.startswith("span ids are listed by start"))


def test_spans_in_other_exports_and_order_give_the_same_signals(tmp_path: Path) -> None:
    """QA: the runtime listed a signal's spans in arrival order, cut to the first 20 of it, so a trace sent in two
    exports named other spans (of 24 culprits) than `fluo eval` on one file; it must not matter how spans come."""
    rules = tmp_path / RULE_FILE_NAME
    rules.write_text(ARRIVAL.rules_text, encoding="utf-8")
    signals = through_runtime(ARRIVAL, rules, tmp_path, exports=2)
    assert compare_signals(ARRIVAL.expected_signals, signals) == []
    assert normalised(signals) == normalised(through_eval(ARRIVAL, rules))
