"""`fluo demo`: the runtime on the bundled rules, fed live traffic through the OpenTelemetry SDK.

A new user's first command: it starts `fluo serve` in-process on a free port,
sends healthy logins, a login stuck in an auth retry loop, a large payment
without its fraud check and one with it, prints each signal as it arrives,
and exits by itself.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from fluo_lang.diagnostics import plural
from fluo_lang.one_value import OneValueCommand
from fluo_lang.values import format_duration, one_line
from fluo_run.cli import FiniteFloatRange

SEVERITY_COLORS = {"info": "blue", "warning": "yellow", "error": "red", "critical": "magenta"}
MS = 1_000_000


class Traffic:
    """Several services, each an SDK TracerProvider exporting over OTLP/HTTP to the runtime."""

    def __init__(self, endpoint: str) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.providers: dict[str, Any] = {}
        for service in ("frontend", "auth", "checkout", "fraud", "payment"):
            provider = TracerProvider(
                resource=Resource.create({"service.name": service, "deployment.environment.name": "demo"}),
                shutdown_on_exit=False,
            )
            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"), schedule_delay_millis=100)
            )
            self.providers[service] = provider
        self.traces = 0
        self.spans = 0
        self.trace_id = ""
        self.healthy: set[str] = set()  # traces no bundled rule should fire on

    @contextmanager
    def span(
        self,
        service: str,
        name: str,
        start: int,
        duration_ms: float,
        attributes: dict[str, Any] | None = None,
        *,
        kind: str = "server",
        error: bool = False,
    ) -> Iterator[Any]:
        from opentelemetry.trace import SpanKind, Status, StatusCode, use_span

        tracer = self.providers[service].get_tracer("fluo.demo")
        span = tracer.start_span(name, kind=SpanKind[kind.upper()], start_time=start, attributes=attributes)
        self.spans += 1
        self.trace_id = f"{span.get_span_context().trace_id:032x}"
        with use_span(span, end_on_exit=False):
            yield span
        span.set_status(Status(StatusCode.ERROR, "failed") if error else Status(StatusCode.OK))
        span.end(end_time=start + int(duration_ms * MS))

    def healthy_login(self, t0: int, user: int) -> None:
        self.traces += 1
        http = {"http.request.method": "GET", "http.route": "/login", "http.response.status_code": 200}
        with self.span("frontend", "GET /login", t0, 48, http), self.span("auth", "login", t0 + 2 * MS, 40):
            with self.span("auth", "check_password", t0 + 4 * MS, 18, {"user.id": user}, kind="internal"):
                pass
            with self.span("auth", "issue_token", t0 + 24 * MS, 12, {"user.id": user}, kind="internal"):
                pass
        self.healthy.add(self.trace_id)

    def retry_storm(self, t0: int, attempts: int = 60) -> None:
        self.traces += 1
        http = {"http.request.method": "POST", "http.route": "/login", "http.response.status_code": 503}
        with self.span("frontend", "POST /login", t0, 3200, http, error=True):
            for i in range(attempts):
                with self.span("auth", "login", t0 + (2 + 50 * i) * MS, 45, {"retry.attempt": i}, error=True):
                    pass

    def payment(self, t0: int, amount: int, *, fraud_check: bool) -> None:
        self.traces += 1
        http = {"http.request.method": "POST", "http.route": "/checkout", "http.response.status_code": 200}
        with (
            self.span("frontend", "POST /checkout", t0, 420, http),
            self.span("checkout", "checkout", t0 + 5 * MS, 400, {"cart.items": 3}),
        ):
            at = t0 + 20 * MS
            if fraud_check:
                with self.span("fraud", "payment.fraud_check", at, 80, {"fraud.score": 0.07}):
                    pass
                at += 100 * MS
            charge = {"amount": amount, "currency": "EUR", "payment.method": "card"}
            with self.span("payment", "payment.charge_card", at, 150, charge):
                pass
        if fraud_check:
            self.healthy.add(self.trace_id)

    def flush(self) -> None:
        for p in self.providers.values():
            p.force_flush()

    def shutdown(self) -> None:
        for p in self.providers.values():
            p.shutdown()


def _say(text: str = "", **style: Any) -> None:
    click.echo(click.style(text, **style) if style else text)


def _signal_line(s: dict[str, Any]) -> str:
    sev = s["severity"]
    badge = click.style(f"{sev.upper():<8}", fg=SEVERITY_COLORS.get(sev, "white"), bold=True)
    where = f"trace {s['trace_id']}" if s.get("trace_id") else f"window ending {s.get('window_end')}"
    return f"  {badge} {click.style(one_line(s['rule']), bold=True)}  ({where})\n           {one_line(s['message'])}"


class Printer:
    """The demo's sink: each signal printed as it arrives. When the reader of stdout goes away (`fluo demo |
    head`), it prints no more and does not fail (a failing sink would be logged and make the runtime's stop
    say exit 3): the demo stops quietly with 141 after the runtime, as any command whose reader is gone."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[dict[str, Any]] = []
        self.reader_gone = False

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        with self.lock:
            for s in batch:
                self.seen.append(s)
                if not self.reader_gone:
                    try:
                        _say(_signal_line(s))
                    except BrokenPipeError:
                        self.reader_gone = True


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@click.command(name="demo", cls=OneValueCommand)
@click.option("--rules", "rules_path", type=click.Path(), help="Rules to run [bundled examples].")
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    help="Keep the signals in this SQLite file [fluo-signals.db in a new fluo-demo-* folder under the temporary "
    "folder, left for `fluo signals --db`].",
)
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=FiniteFloatRange(min=1),
    help="Give up waiting for evaluation after this many seconds.",
)
def command(rules_path: str | None, db: str | None, timeout: float) -> None:
    """See FLUO catch problems in live OpenTelemetry traffic, in a few seconds.

    Starts the runtime (`fluo serve`) on a free local port with the bundled
    rules, sends traces through the OpenTelemetry SDK over OTLP/HTTP, prints
    the signals as they arrive and exits. Nothing is left running.

    \b
    Example:
      fluo demo
    """
    from fluo_run.serve.config import ConfigError, ServeConfig, bundled_rules
    from fluo_run.serve.rules import RulePathError, RuleSetError
    from fluo_run.serve.runtime import RuntimeThread, StartError, log_rule_problems
    from fluo_run.serve.sinks import CallbackSink

    rules = Path(rules_path) if rules_path else bundled_rules()
    if rules is None:
        click.echo("fluo: no bundled example rules found; give --rules PATH", err=True)
        sys.exit(2)
    if rules.exists():  # missing (or a symbolic link loop): said as `fluo serve --rules` says it
        rules = rules.resolve()  # one path, said the same in the header and in `Next:`, that works from any folder
    store = Path(db) if db else Path(tempfile.mkdtemp(prefix="fluo-demo-")) / "fluo-signals.db"
    config = ServeConfig(grpc=None, http=("127.0.0.1", 0), rules=[rules], trace_idle=0.5, reload_interval=0, db=store)
    printer = Printer()
    started = time.monotonic()
    try:
        runtime = RuntimeThread(config, [CallbackSink(printer, name="demo")]).start()
    except RulePathError as exc:  # a usage error, as for `fluo serve --rules`: the message names the path
        click.echo(f"fluo: --rules: {exc}", err=True)
        sys.exit(2)
    except RuleSetError as exc:
        log_rule_problems(exc)
        click.echo(f"fluo: cannot start the demo: {exc} in {rules}", err=True)
        sys.exit(1)
    except (StartError, ConfigError) as exc:
        click.echo(f"fluo: cannot start the demo: {exc}", err=True)
        sys.exit(1)
    rt = runtime.runtime
    program = rt.rule_set.program
    _say()
    _say("FLUO demo", bold=True)
    _say(f"  runtime   fluo serve on {runtime.http_url} (OTLP/HTTP), {plural(len(program.rules), 'rule')} from {rules}")
    for r in program.rules:
        _say(f"            - {r.id} [{r.ir.severity}]", dim=True)
    _say()
    _say("Sending traffic through the OpenTelemetry SDK:", bold=True)
    traffic = Traffic(runtime.http_url)
    try:
        now = time.time_ns()
        for user in range(5):
            traffic.healthy_login(now + user * 200 * MS, user=1000 + user)
        _say("  5 healthy logins                       frontend -> auth, 4 spans each")
        traffic.retry_storm(now + 1100 * MS)
        _say("  1 login stuck in a retry loop          60 failed auth attempts in one trace")
        traffic.payment(now + 1500 * MS, 2500, fraud_check=False)
        _say("  1 payment of 2500 EUR                  charged without a fraud check")
        traffic.payment(now + 2000 * MS, 1800, fraud_check=True)
        _say("  1 payment of 1800 EUR                  fraud check first, as it should be")
        traffic.flush()
        _say()
        _say(f"Signals ({format_duration(config.trace_idle * 1e9)} after each trace's last span):", bold=True)
        sample = rt.metrics.registry.get_sample_value
        _wait(lambda: (sample("fluo_spans_received_total", {"transport": "http"}) or 0) >= traffic.spans, timeout)
        done = _wait(lambda: runtime.call(lambda: len(rt.buffer)) == 0 and rt.evaluator.idle(), timeout)
    finally:
        traffic.shutdown()
        runtime.stop()
    if printer.reader_gone:
        raise BrokenPipeError  # now the runtime has stopped: `fluo` exits 141, quietly
    elapsed = time.monotonic() - started
    fired = printer.seen
    _say()
    if not done:
        _say(f"Gave up waiting after {timeout:.0f}s; some traces may not have been evaluated.", fg="yellow")
    traces = {s.get("trace_id") for s in fired if s.get("trace_id")}
    summary = (
        f"{plural(len(fired), 'signal')} on {len(traces)} of {traffic.traces} traces "
        f"({traffic.spans} spans) in {elapsed:.1f}s"
    )
    noisy = traces & traffic.healthy
    if not fired:
        summary += "."
    elif noisy:
        summary += f"; {len(noisy)} of them should have been quiet with the bundled rules."
    else:
        summary += "; the healthy traffic stayed quiet."
    _say(summary, bold=True)
    _say()
    _say("Next:", bold=True)
    _say("  See the stored signals, filter them by rule, severity, time or trace:")
    _say(f"    fluo signals --db {shlex.quote(str(store.resolve()))}")
    _say("  Run the runtime for real (OTLP on 127.0.0.1:4317 gRPC and 127.0.0.1:4318 HTTP):")
    _say(f"    fluo serve --rules {shlex.quote(str(rules))}")
    _say("  Point any OpenTelemetry SDK at it:")
    _say("    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf <your app>")
    _say("  More: fluo serve --help; docs/runtime.md in FLUO's source (Collector config, sinks, metrics, scale-out).")
    sys.exit(0)
