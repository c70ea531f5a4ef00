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


def _bad_ids_export() -> dict[str, Any]:
    """OTLP/JSON of one trace of two spans, beside a span with an all-zero span id and one with an all-zero
    trace id (as a Collector's file exporter would have written what it received)."""
    t0 = 1_767_225_600_000_000_000

    def span(trace_id: str, span_id: str, parent: str = "") -> dict[str, Any]:
        out = {"traceId": trace_id, "spanId": span_id, "name": "op", "kind": 2}
        out |= {"startTimeUnixNano": str(t0), "endTimeUnixNano": str(t0 + 5_000_000)}
        return out | ({"parentSpanId": parent} if parent else {})

    tid = "0abc00000000000000000000000000aa"
    spans = [span(tid, "00000000000000a1"), span(tid, "0" * 16, "00000000000000a1"), span(tid, "00000000000000a2")]
    spans.append(span("0" * 32, "00000000000000a3"))
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "s"}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {}, "spans": spans}]}]}


def test_a_span_with_bad_ids_is_dropped_by_every_path_and_the_rest_evaluated(tmp_path: Path) -> None:
    """Conformance tour r02: `fluo serve` drops a span with an all-zero id (a partial success) and evaluates
    the rest, while `fluo eval` and `fluo test` refused the whole file, so an export `serve` evaluated could
    not be replayed. All three now drop the span; the commands say so once per file, naming where."""
    rules = tmp_path / RULE_FILE_NAME
    rules.write_text("rule few { expect trace.spans.count() < 1 }\n", encoding="utf-8")
    traces = tmp_path / "export.json"
    traces.write_text(json.dumps(_bad_ids_export()), encoding="utf-8")
    warning = (
        f"fluo: warning: {traces}: skipped 2 spans with invalid ids (first: resourceSpans[0].scopeSpans[0]"
        ".spans[1].spanId: all zero, which OTLP says is not a valid span id); `fluo serve` rejects such spans too"
    )
    result = CliRunner().invoke(main, ["eval", str(rules), "--traces", str(traces)])
    assert result.exit_code == 0, result.stderr
    assert warning in result.stderr.splitlines()
    by_eval = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(s["rule"], s["observed"]) for s in by_eval] == [("few", {"count": 2, "bound": 1})]
    test = tmp_path / "case_test.yaml"
    test.write_text(
        f"rules: [{RULE_FILE_NAME}]\ncases:\n  - name: export\n    traces: export.json\n"
        "    expect: [{rule: few, observed: {count: 2}}]\n",
        encoding="utf-8",
    )
    tested = CliRunner().invoke(main, ["test", str(test)])
    assert tested.exit_code == 0, tested.output
    assert "skipped 2 spans with invalid ids" in tested.output
    got: list[dict[str, Any]] = []
    with RuntimeThread(config(tmp_path, grpc=None, rules=[rules], eval_budget=0), [CallbackSink(got.extend)]) as rt:
        request = urllib.request.Request(
            f"{rt.http_url}/v1/traces", data=traces.read_bytes(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["partialSuccess"]["rejectedSpans"] == "2"
        wait_for(lambda: settled(rt) and got, what="the trace's signal")
    assert normalised(got) == normalised(by_eval)
