"""`fluo serve` against `fluo eval`: the same SDK-made spans, sent to a server process in many exports over gRPC and
OTLP/HTTP, each trace split and reordered, must give the signals `fluo eval` gives on one file of them.

Seeded: the traces, their split into exports and the order of those are drawn from `SEED`, so a failure names the
seed and a rerun sends the same spans in the same requests (`FLUO_DIFF_SEED=N` draws others, to explore). No timing
decides which spans a trace or a window holds: a trace split over exports is evaluated at the server's shutdown
(`--trace-idle` is far longer than the test); one evaluated once idle is sent whole, in one request with every other
trace of its windows, so they are evaluated together and their windows close once, holding them all.

Windowed rules are compared on the windows a trace completes in, each signal field for field but the partial
fields serve adds to a window it did not see whole (checked apart); the empty windows, where the docs let the two
differ, are left out (see `comparable`).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from serve_support import MS, Sender, ServeProcess, wait_for

from fluo_lang.values import format_timestamp
from fluo_run.cli import main

SEED = 20261207
TRACES = 48
BASE = 1_798_761_600_000_000_000  # 2027-01-01T00:00:00Z, in ns: span times are drawn, never read from the clock
FUTURE = 4_102_444_800_000_000_000  # 2100-01-01T00:00:00Z: windows that have not ended
PAST = 978_307_200_000_000_000  # 2001-01-01T00:00:00Z: windows that ended long ago

RULES = """\
rule auth_heavy {
  severity: critical
  description: "Many auth spans in one trace"
  tags: [auth, reliability]
  detect trace.spans.where(service == 'auth').count() > 3
}
rule auth_budget { expect trace.count(service == 'auth') <= 12 }
rule client_time { detect trace.spans.where(kind == client).sum(duration) > 60ms }
rule amount_total { detect trace.spans.sum(amount) > 2500 }
rule amount_avg { severity: info detect trace.spans.where(amount > 0).avg(amount) >= 700.5 }
rule db_avg { detect trace.spans.where(name == 'db.query').avg(duration) > 20ms }
rule slowest_child { detect trace.spans.where(parent_id != "").max(duration) > 60ms }
rule cheapest { detect trace.spans.min(amount) < 10 }
rule retries_max { severity: error detect trace.spans.max(retries) >= 3 }
rule any_error { severity: error detect trace.spans.any(status == error) }
rule servers_ok { expect trace.spans.where(kind == server).all(status != error and duration < 150ms) }
rule no_bypass { expect trace.spans.none(name == 'payment.bypass_validation') }
rule gold_big { detect trace.spans.where(amount > 1000 and user.tier == 'gold').exists() }
rule cache_misses { detect trace.spans.where(cache.hit == false).count() >= 2 }
rule beta { detect trace.spans.where(flags contains 'beta').exists() }
rule canary_first { detect trace.spans.where(flags[0] == 'canary').count() > 1 }
rule many_flags { detect trace.spans.where(flags.length() >= 3).exists() }
rule upstream_5xx {
  severity: warning
  detect trace.spans.where(http.response.status_code in [500, 503] and ancestors.where(name == 'checkout').exists())
}
rule not_2xx { detect trace.spans.where(http.response.status_code not in [200, 201]).count() >= 2 }
rule orders_route { detect trace.spans.where(http.route matches '^/api/v[0-9]+/orders').exists() }
rule admin_route { detect trace.has(http.route.starts_with('/admin') and status != ok) }
rule login_elsewhere { detect trace.has(name.upper() == 'LOGIN' and service != 'auth') }
rule checkout_clean {
  severity: error
  expect trace.spans.where(name == 'checkout').all(descendants.where(status == error).count() == 0)
}
rule payment_children { detect trace.spans.where(parent.service == 'payment' and kind == client).exists() }
rule fan_out { detect trace.spans.where(children.count() >= 4).exists() }
rule deep { detect trace.spans.where(ancestors.count() >= 3).exists() }
rule root_slow { severity: info detect trace.root.duration > 120ms }
rule has_root { severity: critical expect trace.root.name != "" }
rule root_server { expect trace.root.kind == server }
rule long_trace { detect trace.duration > 180ms }
rule many_services { detect trace.services.count() >= 5 }
rule first_service { expect trace.services[0] == 'frontend' }
rule fraud_first {
  severity: error
  description: "A charge over 1000 must follow a fraud check and never bypass validation"
  when { trace.has(name == "payment.charge_card").where(amount > 1000) }
  always { trace.has(name == "payment.fraud_check").before(trace.has(name == "payment.charge_card")) }
  never { trace.has(name == "payment.bypass_validation") }
}
rule login_after_query { detect trace.has(name == 'login').after(trace.has(name == 'db.query')) }
rule arithmetic { detect trace.spans.where(amount * 2 + 1 > 3001 or duration / 2 > 40ms).count() > 1 }
rule prod_errors {
  detect trace.spans.where(resource.deployment.environment == 'prod' and status == error).count() >= 2
}
rule odd_key { detect trace.spans.where(attributes["weird key"] == 1).exists() }
rule unset_status { expect trace.spans.where(status == unset).count() < 15 }
rule many_spans { detect trace.spans.count() > 25 }
rule timeouts { detect trace.spans.where(status_message.lower() contains 'timeout').count() >= 2 }
rule ok_internal { detect trace.spans.where(status == ok and kind == internal).exists() }
rule end_minus_start { detect trace.spans.where(end - start > 90ms and kind != server).exists() }
rule client_share { detect trace.spans.where(kind == client).count() / trace.spans.count() > 0.5 }
"""

SERVICES: dict[str, tuple[str, list[str]]] = {  # service: (deployment.environment, operation names)
    "frontend": ("prod", ["render", "Login", "checkout"]),
    "auth": ("staging", ["login", "token.refresh"]),
    "payment": ("prod", ["payment.charge_card", "payment.refund", "payment.bypass_validation"]),
    "fraud": ("prod", ["payment.fraud_check"]),
    "db": ("prod", ["db.query"]),
    "cache": ("staging", ["cache.get"]),
}
KINDS = [SpanKind.CLIENT, SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER]


class SeededIds(IdGenerator):
    """Trace and span ids drawn from the test's random generator, so a seed gives the same ids."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd

    def generate_span_id(self) -> int:
        return self.rnd.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self.rnd.getrandbits(128) or 1


@dataclass
class Made:
    """SDK spans made from a seed: every span sent, and each trace's spans cut into parts to send apart."""

    spans: list[ReadableSpan] = field(default_factory=list)
    parts: list[list[ReadableSpan]] = field(default_factory=list)


def attributes(rnd: random.Random, name: str) -> dict[str, Any]:
    """Attributes of differing types, each left out on many spans (a missing value)."""
    out: dict[str, Any] = {}
    if rnd.random() < (0.7 if name == "payment.charge_card" else 0.4):
        out["amount"] = rnd.choice([5, 250, 999, 1500, 2000.5, 0.5, "1500"])
    if rnd.random() < 0.3:
        out["user.tier"] = rnd.choice(["gold", "silver"])
    if rnd.random() < 0.2:
        out["retries"] = rnd.choice([0, 1, 3, 4, 2.5])
    if name == "cache.get":
        out["cache.hit"] = rnd.random() < 0.5
    if rnd.random() < 0.2:
        out["flags"] = rnd.sample(["canary", "beta", "dark", "eu"], rnd.randint(1, 3))
    if rnd.random() < 0.3:
        out["http.response.status_code"] = rnd.choice([200, 201, 404, 500, 503])
    if rnd.random() < 0.2:
        out["http.route"] = rnd.choice(["/api/v1/orders/7", "/api/v2/orders", "/admin/users", "/api/vx/orders/ü"])
    if rnd.random() < 0.05:
        out["weird key"] = rnd.choice([1, "1"])
    return out


def make_traces(rnd: random.Random, starts: Sequence[int] | None = None) -> Made:
    """A trace starting at each of `starts` (by default `TRACES` traces a second apart from `BASE`): a tree of spans
    each under a root, times on a 1 ms grid (so many spans start together), some with a storm of 25-35 mostly auth
    spans (more culprits than a signal lists), some whose root is never sent; a few spans end before they start,
    some carry events and links."""
    memory = InMemorySpanExporter()
    ids = SeededIds(rnd)
    providers = [
        TracerProvider(
            resource=Resource.create({"service.name": service, "deployment.environment": env}),
            id_generator=ids,
            shutdown_on_exit=False,
        )
        for service, (env, _) in SERVICES.items()
    ]
    for p in providers:
        p.add_span_processor(SimpleSpanProcessor(memory))
    tracers = {service: p.get_tracer("fluo.tests") for service, p in zip(SERVICES, providers, strict=True)}
    made = Made()
    for start in [BASE + n * 1000 * MS for n in range(TRACES)] if starts is None else starts:
        length = rnd.randint(20, 220) * MS
        name = rnd.choice(["checkout", "GET /", "POST /login"])
        root = tracers["frontend"].start_span(name, kind=SpanKind.SERVER, start_time=start)
        tree: list[tuple[Any, int, int, int]] = [(root, start, start + length, 0)]  # span, start, end, depth
        storm = rnd.random() < 0.15
        for _ in range(rnd.randint(25, 35) if storm else rnd.randint(0, 14)):
            parent, p_start, p_end, depth = rnd.choice([x for x in tree if x[3] < 4])
            service = "auth" if storm and rnd.random() < 0.8 else rnd.choice(list(SERVICES))
            name = rnd.choice(SERVICES[service][1][:2] if rnd.random() < 0.75 else SERVICES[service][1])
            s = p_start + rnd.randint(0, (p_end - p_start) // MS // 2) * MS
            e = s + rnd.randint(0, (p_end - s) // MS) * MS
            span = tracers[service].start_span(
                name,
                context=trace_api.set_span_in_context(parent),
                kind=rnd.choice(KINDS[:2] if rnd.random() < 0.8 else KINDS),
                attributes=attributes(rnd, name),
                start_time=s,
            )
            if rnd.random() < 0.1:  # events and links, which no rule reads
                span.add_event("retry", {"attempt": 1}, timestamp=s)
                span.add_link(root.get_span_context(), {"why": "follows"})
            tree.append((span, s, e, depth + 1))
        for span, began, end, _ in reversed(tree):
            if span is not root and rnd.random() < 0.03:  # a skewed clock: it ends before it starts
                end = began - MS
            roll = rnd.random()
            if roll < 0.15:
                span.set_status(Status(StatusCode.ERROR, rnd.choice(["failed", "Timeout after 30s"])))
            elif roll < 0.3:
                span.set_status(Status(StatusCode.OK))
            span.end(end_time=end)
        spans = memory.get_finished_spans()
        memory.clear()
        if len(spans) > 1 and rnd.random() < 0.15:  # its root never arrives: the trace has no root
            spans = tuple(s for s in spans if s.parent is not None)
        made.spans.extend(spans)
        shuffled = rnd.sample(spans, len(spans))
        cuts = sorted(rnd.sample(range(1, len(shuffled)), min(rnd.randint(1, 3), len(shuffled) - 1)))
        made.parts.extend(shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True))
    for p in providers:
        p.shutdown()
    return made


@dataclass
class Export:
    protocol: str
    spans: list[ReadableSpan]


def exports_of(rnd: random.Random, made: Made) -> list[Export]:
    """The parts of every trace in a drawn order, one to three parts to an export request (so one request carries
    several traces' spans), each request over gRPC or OTLP/HTTP, and some parts sent again (an exporter retrying
    a batch whose answer it lost: one span, whichever copy counts)."""
    parts = list(made.parts)
    parts.extend(rnd.sample(made.parts, len(made.parts) // 10))
    rnd.shuffle(parts)
    out = []
    while parts:
        take = rnd.randint(1, 3)
        spans = [s for part in parts[:take] for s in part]
        del parts[:take]
        out.append(Export(rnd.choice(["grpc", "http"]), rnd.sample(spans, len(spans))))
    return out


Key = tuple[str, str]
Signals = dict[Key, list[dict[str, Any]]]


def subject(signal_: dict[str, Any]) -> str:
    """What a signal is about: its trace id, or for a windowed rule its window as `START/END`."""
    return signal_["trace_id"] if "trace_id" in signal_ else f"{signal_['window_start']}/{signal_['window_end']}"


def by_subject_and_rule(lines: str) -> Signals:
    out: Signals = defaultdict(list)
    for line in lines.splitlines():
        s = json.loads(line)
        out[(subject(s), s["rule"])].append(s)
    return out


def first_difference(serve: Signals, evaluated: Signals) -> tuple[Key, str] | None:
    """The first (subject, rule) whose signals differ, with how: the fields that differ, then both signals in full."""
    differing = [k for k in sorted(serve.keys() | evaluated.keys()) if serve.get(k) != evaluated.get(k)]
    if not differing:
        return None
    key = differing[0]
    a, b = serve.get(key, []), evaluated.get(key, [])
    on = f"window {key[0]}" if "/" in key[0] else f"trace {key[0]}"
    text = f"{len(differing)} (subject, rule) pair(s) differ; the first: rule {key[1]!r} on {on}\n"
    if len(a) == len(b) == 1:
        for k in sorted(a[0].keys() | b[0].keys()):
            if k not in a[0] or k not in b[0] or a[0][k] != b[0][k]:
                mine, theirs = (json.dumps(s[k], sort_keys=True) if k in s else "<absent>" for s in (a[0], b[0]))
                text += f"  {k}:\n    serve: {mine}\n    eval:  {theirs}\n"
    text += "".join(f"  fluo serve signal: {json.dumps(s, sort_keys=True)}\n" for s in a) or "  no fluo serve signal\n"
    text += "".join(f"  fluo eval signal:  {json.dumps(s, sort_keys=True)}\n" for s in b) or "  no fluo eval signal\n"
    return key, text


def sent_as(exports: list[Export], trace_id: str) -> str:
    """How the spans of one trace were sent: export number, protocol and how many of its spans."""
    parts = []
    for i, export in enumerate(exports):
        mine = sum(f"{s.context.trace_id:032x}" == trace_id for s in export.spans)
        if mine:
            parts.append(f"#{i} {export.protocol} {mine} span(s)")
    return ", ".join(parts)


def assert_same(where: str, serve: Signals, evaluated: Signals, exports: list[Export]) -> None:
    if found := first_difference(serve, evaluated):
        (about, _), how = found
        sent = "" if "/" in about else f"  trace {about} was sent in exports {sent_as(exports, about)}\n"
        raise AssertionError(f"{where}\n{how}{sent}")


def run_eval(rules: Path, traces: Path) -> str:
    result = CliRunner().invoke(main, ["eval", str(rules), "--traces", str(traces)])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def serve_args(rules: Path, jsonl: Path, *settings: str) -> list[str]:
    """`fluo serve` on loopback ports with `rules`, its signals to `jsonl` alone, every trace and window whole
    (no evaluation budget), no reloads; `settings` (flag, value, ...) in place of these (a flag is given once)."""
    args = ["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--rules", str(rules), "--no-db", "--jsonl", str(jsonl)]
    defaults = {"--trace-idle": "10m", "--max-trace-age": "10m", "--eval-budget": "0", "--reload-interval": "off"}
    chosen = defaults | dict(zip(settings[::2], settings[1::2], strict=True))
    return [*args, *(part for flag, value in chosen.items() for part in (flag, value))]


def send(proc: ServeProcess, exports: list[Export]) -> None:
    """Each export as one request, in order, over the protocol it names."""
    senders = {"grpc": Sender("grpc", f"127.0.0.1:{proc.ports['gRPC']}"), "http": Sender("http", proc.http_url)}
    try:
        for export in exports:
            senders[export.protocol].export(export.spans)
    finally:
        for sender in senders.values():
            sender.close()


def stopped(proc: ServeProcess, seed: int, at_shutdown: int) -> None:
    """Stop the server cleanly; it must say it evaluated `at_shutdown` traces then."""
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0, f"seed {seed}:\n" + "\n".join(proc.log)
    evaluated_at_stop = f" {at_shutdown} trace(s) evaluated at shutdown"
    assert any(evaluated_at_stop in line for line in proc.log), f"seed {seed}:\n" + "\n".join(proc.log)


def test_serve_over_both_protocols_in_split_exports_signals_as_fluo_eval_does(tmp_path: Path) -> None:
    seed = int(os.environ.get("FLUO_DIFF_SEED", SEED))
    rnd = random.Random(seed)
    made = make_traces(rnd)
    exports = exports_of(rnd, made)
    rules = tmp_path / "rules.fluo"
    rules.write_text(RULES, encoding="utf-8")
    jsonl = tmp_path / "serve.jsonl"
    with ServeProcess(serve_args(rules, jsonl), cwd=tmp_path) as proc:
        proc.started()
        send(proc, exports)
        stopped(proc, seed, TRACES)

    pb = tmp_path / "spans.pb"
    pb.write_bytes(encode_spans(made.spans).SerializeToString())
    serve = by_subject_and_rule(jsonl.read_text(encoding="utf-8"))
    evaluated = by_subject_and_rule(run_eval(rules, pb))
    where = (
        f"seed {seed}: {TRACES} traces, {len(made.spans)} spans in {len(exports)} exports "
        f"({sum(e.protocol == 'grpc' for e in exports)} over gRPC); "
        f"fluo serve gave {sum(map(len, serve.values()))} signals, fluo eval {sum(map(len, evaluated.values()))}"
    )
    assert_same(where, serve, evaluated, exports)
    if seed == SEED:  # the comparison is worth something only if every rule fired, and none on every trace
        fired = Counter(rule for _, rule in evaluated)
        rule_ids = re.findall(r"^rule (\w+)", RULES, re.MULTILINE)
        assert {r: fired[r] for r in rule_ids if not 0 < fired[r] < TRACES} == {}, where


# ---------------------------------------------------------------------------
# windowed rules, and traces evaluated when idle

WINDOW_TRACES = 40
WINDOW_LENGTHS = (2_000 * MS, 10_000 * MS)  # the rules' `window 2s` and `window 10s`: each 2 s window in one 10 s
WINDOW_RULES = """\
rule win_busy { window 2s detect window.traces.count() >= 3 }
rule win_auth {
  severity: warning
  window 10s
  expect window.spans.where(service == 'auth').count() <= 25
}
rule win_amount { window 10s detect window.spans.sum(amount) > 6000 }
rule win_client_avg { window 2s detect window.spans.where(kind == client).avg(duration) > 40ms }
rule win_slowest { window 2s detect window.spans.where(parent_id != "").max(duration) > 150ms }
rule win_errors { severity: error window 10s detect window.count(status == error) >= 6 }
rule win_gold { window 2s detect window.has(user.tier == 'gold' and amount > 1000).exists() }
rule win_silence { window 2s expect window.traces.count() > 0 }
"""
SILENT = "win_silence"  # fires only on a window without traces: where serve and eval may differ (see `comparable`)
PARTIAL = ("partial", "partial_reasons", "observed_start", "observed_end")


def spaced(rnd: random.Random, base: int) -> list[int]:
    """`WINDOW_TRACES` start times after `base`, 0.1 s to 4.5 s apart: some 2 s windows hold several traces, some
    none (so `fluo eval` evaluates empty windows between two with traces)."""
    out = [base]
    while len(out) <= WINDOW_TRACES:
        out.append(out[-1] + rnd.choice([100, 300, 700, 1500, 2500, 4500]) * MS)
    return out[1:]


def completions(made: Made) -> dict[str, int]:
    """Each trace's completion time as FLUO reads it: its latest span end, a span ending before it starts read as
    ending when it starts."""
    out: dict[str, int] = {}
    for s in made.spans:
        assert s.start_time is not None and s.end_time is not None
        tid = f"{s.context.trace_id:032x}"
        out[tid] = max(out.get(tid, 0), s.start_time, s.end_time)
    return out


def held_windows(made: Made) -> dict[str, int]:
    """The windows (`START/END`) that a trace completes in, of every length, each with its length."""
    return {
        f"{format_timestamp(end // n * n)}/{format_timestamp(end // n * n + n)}": n
        for end in completions(made).values()
        for n in WINDOW_LENGTHS
    }


def comparable(
    serve: Signals, evaluated: Signals, held: Container[str], partial: Callable[[str, str], dict[str, Any]], since: str
) -> tuple[Signals, Signals, int]:
    """The signals of both on the traces and on the windows a trace completes in, serve's without its partial fields
    (each checked against `partial(start, end)`), and how many of eval's were left out.

    What docs/runtime.md promises alike: a window serve did not see whole (its traffic replayed from the past, or
    not ended yet at shutdown) is evaluated as `fluo eval` evaluates it, with partial fields added. It does not
    promise the empty windows: `fluo eval` evaluates those between two with traces, serve none of them on such
    traffic ("Windows before that (replayed old traffic) are only those traces fall in"; "an empty window not
    ended yet is not evaluated"), only those that start after it started (`since`) and end before it stops.
    So eval's signals on windows without traces are left out, and serve must have none there but on those.
    """
    mine: Signals = {}
    for (about, rule), found in serve.items():
        if "/" not in about:
            mine[(about, rule)] = found
        elif about in held:
            start, end = about.split("/")
            for s in found:
                extra = {k: s.pop(k) for k in PARTIAL if k in s}
                assert extra == partial(start, end), f"{rule} on window {about}: {extra}"
            mine[(about, rule)] = found
        else:
            assert rule == SILENT and about >= since, f"serve evaluated an empty window {about} ({rule}): {found}"
    theirs = {k: v for k, v in evaluated.items() if "/" not in k[0] or k[0] in held}
    return mine, theirs, sum(map(len, evaluated.values())) - sum(map(len, theirs.values()))


def windowed_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules.fluo"
    rules.write_text(RULES + WINDOW_RULES, encoding="utf-8")
    return rules


def assert_windowed_as_eval(
    seed: int,
    made: Made,
    exports: list[Export],
    rules: Path,
    jsonl: Path,
    partial: Callable[[str, str], dict[str, Any]],
    since: str,
) -> None:
    """Serve's signals in `jsonl` are `fluo eval`'s on the same spans (see `comparable`); on the seed `SEED`, each
    windowed rule fired on some windows with traces and not on all (but `SILENT`, left to the empty windows)."""
    pb = jsonl.with_name("spans.pb")
    pb.write_bytes(encode_spans(made.spans).SerializeToString())
    held = held_windows(made)
    evaluated = by_subject_and_rule(run_eval(rules, pb))
    serve, compared, left_out = comparable(
        by_subject_and_rule(jsonl.read_text("utf-8")), evaluated, held, partial, since
    )
    where = (
        f"seed {seed}: {len(completions(made))} traces completing in {len(held)} windows, {len(made.spans)} spans "
        f"in {len(exports)} exports; on them fluo serve gave {sum(map(len, serve.values()))} signals, "
        f"fluo eval {sum(map(len, compared.values()))} (and {left_out} on windows without traces, not compared)"
    )
    assert_same(where, serve, compared, exports)
    if seed == SEED:
        lengths = dict(re.findall(r"^rule (\w+) \{[^}]*?window (\d+)s", WINDOW_RULES, re.MULTILINE))
        windows = Counter(held.values())
        fired = Counter(rule for about, rule in compared if "/" in about)
        quiet = {r: fired[r] for r, s in lengths.items() if not 0 < fired[r] < windows[int(s) * 1000 * MS]}
        assert quiet == {SILENT: 0} and left_out > 0, where


def not_ended(start: str, end: str) -> dict[str, Any]:
    """The partial fields of a window that had not begun when serve closed it: it observed none of it."""
    return {"partial": True, "partial_reasons": ["closed_early"], "observed_start": start, "observed_end": start}


def replayed(start: str, end: str) -> dict[str, Any]:
    """The partial fields of a window that had ended before serve started: it observed none of it."""
    return {"partial": True, "partial_reasons": ["started_before_serve"], "observed_start": end, "observed_end": end}


@pytest.mark.parametrize(("base", "partial"), [(FUTURE, not_ended), (PAST, replayed)], ids=["2100", "2001"])
def test_windowed_rules_closed_at_shutdown_signal_as_fluo_eval_does(
    tmp_path: Path, base: int, partial: Callable[[str, str], dict[str, Any]]
) -> None:
    """Windowed rules, every trace split over exports as in the test above and evaluated at shutdown, where every
    window closes: on spans of 2100 no window has ended, so each closes early; on spans of 2001 each is long past
    its grace."""
    seed = int(os.environ.get("FLUO_DIFF_SEED", SEED))
    rnd = random.Random(seed)
    made = make_traces(rnd, spaced(rnd, base))
    exports = exports_of(rnd, made)
    rules, jsonl = windowed_rules(tmp_path), tmp_path / "serve.jsonl"
    since = format_timestamp(time.time_ns())
    with ServeProcess(serve_args(rules, jsonl), cwd=tmp_path) as proc:
        proc.started()
        send(proc, exports)
        stopped(proc, seed, WINDOW_TRACES)
    assert_windowed_as_eval(seed, made, exports, rules, jsonl, partial, since)


def by_window(rnd: random.Random, made: Made) -> list[Export]:
    """One export per 10 s window (the longest) with every span of the traces completing in it, in a drawn order,
    each over gRPC or OTLP/HTTP, some sent again right after (a retried batch).

    So no trace and no window can be split by an idle boundary: a request's spans arrive together, the traces it
    starts go idle together and are evaluated together, and they are all the traces of their windows (a 2 s window
    lies in one 10 s window), which thus close once, holding them all, however slow the machine is."""
    longest = max(WINDOW_LENGTHS)
    ends = completions(made)
    windows: dict[int, list[ReadableSpan]] = defaultdict(list)
    for s in made.spans:
        windows[ends[f"{s.context.trace_id:032x}"] // longest].append(s)
    out = []
    for spans in rnd.sample(list(windows.values()), len(windows)):
        out.append(Export(rnd.choice(["grpc", "http"]), rnd.sample(spans, len(spans))))
        if rnd.random() < 0.2:
            out.append(out[-1])
    return out


def test_traces_evaluated_when_idle_and_windows_closed_past_their_grace_signal_as_fluo_eval_does(
    tmp_path: Path,
) -> None:
    """Spans of the year 2001, each trace sent whole (see `by_window`), evaluated once idle for `--trace-idle`
    (300 ms), and their windows, ended long ago, closed once no trace has joined them for as long: the test waits,
    polling `/metrics`, until serve says every trace was evaluated and every window closed, then stops it (no trace
    left for the shutdown). A window grace of 10 minutes keeps the windows of the present open until the
    shutdown, so that every window closed before it is one of the traffic's."""
    seed = int(os.environ.get("FLUO_DIFF_SEED", SEED))
    rnd = random.Random(seed)
    made = make_traces(rnd, spaced(rnd, PAST))
    exports = by_window(rnd, made)
    rules, jsonl = windowed_rules(tmp_path), tmp_path / "serve.jsonl"
    windows = len(held_windows(made))
    since = format_timestamp(time.time_ns())
    with ServeProcess(serve_args(rules, jsonl, "--trace-idle", "300ms", "--window-grace", "10m"), cwd=tmp_path) as proc:
        proc.started()
        send(proc, exports)

        def evaluated() -> bool:
            idle = proc.metric('fluo_traces_assembled_total{reason="idle"}')
            return idle == WINDOW_TRACES and proc.metric("fluo_windows_closed_total") == windows

        wait_for(evaluated, timeout=60, what=f"{WINDOW_TRACES} traces evaluated when idle and {windows} windows closed")
        assert proc.metric("fluo_window_late_traces_total") == 0
        stopped(proc, seed, 0)
    assert_windowed_as_eval(seed, made, exports, rules, jsonl, replayed, since)
