"""Scale-out: instances behind a trace-id-keyed load balancer give the signals one instance gives.

The Collector's `loadbalancing` exporter with `routing_key: traceID` sends every
span of a trace to the same instance; this splits a corpus the same way (by a
hash of the trace id) across three runtimes and compares per-trace signals.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path
from typing import Any

from serve_support import EXAMPLE_TRACES, config, metric, settled, wait_for

from fluo_lang.otlp import load_trace_files, spans_to_request
from fluo_lang.trace import Span
from fluo_run.serve.runtime import RuntimeThread
from fluo_run.serve.sinks import CallbackSink

INSTANCES = 3


def corpus() -> list[Span]:
    files = [*sorted(EXAMPLE_TRACES.glob("*.json")), EXAMPLE_TRACES / "login_burst.jsonl"]
    return load_trace_files(files)


def shard(trace_id: bytes) -> int:
    return int.from_bytes(hashlib.sha256(trace_id).digest()[:8], "big") % INSTANCES


def run(spans: list[Span], tmp_path: Path) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    # a trace's spans are spread over several requests: an idle time well above their spacing keeps it whole
    with RuntimeThread(config(tmp_path, grpc=None, trace_idle=1.0), [CallbackSink(got.extend)]) as rt:
        if spans:
            # several requests, interleaving traces, as an exporter's batches would
            for i in range(0, len(spans), 97):
                body = spans_to_request(spans[i : i + 97]).SerializeToString()
                request = urllib.request.Request(
                    f"{rt.http_url}/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"}
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.status == 200
            wait_for(lambda: metric(rt, "fluo_spans_received_total", transport="http") == len(spans))
            wait_for(lambda: settled(rt))
    return got


def per_trace(signals: list[dict[str, Any]]) -> list[str]:
    keep = ("rule", "trace_id", "observed", "message", "severity")
    return sorted(
        json.dumps({**{k: s[k] for k in keep}, "span_ids": sorted(s["span_ids"])}, sort_keys=True)
        for s in signals
        if s.get("trace_id")
    )


def test_split_by_trace_id_hash_gives_the_same_per_trace_signals(tmp_path: Path) -> None:
    spans = corpus()
    single = run(spans, tmp_path)
    parts: list[dict[str, Any]] = []
    used = set()
    for i in range(INSTANCES):
        mine = [s for s in spans if shard(s.trace_id) == i]
        used.add(bool(mine))
        parts.extend(run(mine, tmp_path))
    assert used == {True}, "every instance got some traces"
    assert per_trace(single)  # the corpus makes rules fire
    assert per_trace(parts) == per_trace(single)
