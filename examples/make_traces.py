"""Write the example OTLP/JSON traces in examples/traces/.

Deterministic: ids are derived from fixed names, times are offsets from
2026-01-01T00:00:00Z. Run `python examples/make_traces.py` after changing it
and commit the output.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from fluo_lang.otlp import spans_to_json
from fluo_lang.trace import Span

BASE_NS = 1_767_225_600 * 10**9
"""2026-01-01T00:00:00Z in nanoseconds since the Unix epoch."""
MS = 10**6
OUT = Path(__file__).resolve().parent / "traces"


def _resource(service: str, version: str) -> dict[str, Any]:
    return {
        "service.name": service,
        "service.version": version,
        "deployment.environment.name": "prod",
        "telemetry.sdk.language": "python",
    }


RESOURCES = {
    "frontend": _resource("frontend", "3.12.0"),
    "auth": _resource("auth", "2.4.1"),
    "checkout": _resource("checkout", "1.9.3"),
    "payment": _resource("payment", "5.0.2"),
    "fraud": _resource("fraud", "0.8.7"),
    "inventory": _resource("inventory", "4.2.0"),
}


def _digest(text: str, size: int) -> bytes:
    return hashlib.sha256(text.encode()).digest()[:size]


class TraceBuilder:
    """Spans of one trace, with ids derived from `key` and times in ms from `offset_ms`."""

    def __init__(self, key: str, offset_ms: float = 0) -> None:
        self.key = key
        self.trace_id = _digest(f"fluo-example-trace:{key}", 16)
        self.offset_ns = BASE_NS + round(offset_ms * MS)
        self.spans: list[Span] = []

    def span(
        self,
        service: str,
        name: str,
        start_ms: float,
        duration_ms: float,
        *,
        parent: Span | None = None,
        kind: str = "internal",
        status: str = "ok",
        message: str = "",
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        start = self.offset_ns + round(start_ms * MS)
        span = Span(
            trace_id=self.trace_id,
            span_id=_digest(f"fluo-example-span:{self.key}:{len(self.spans)}", 8),
            parent_id=parent.span_id if parent is not None else b"",
            name=name,
            service=service,
            start=start,
            end=start + round(duration_ms * MS),
            status=status,
            status_message=message,
            kind=kind,
            attributes=attributes or {},
            resource=RESOURCES[service],
        )
        self.spans.append(span)
        return span


def _http(method: str, route: str, status: int) -> dict[str, Any]:
    return {
        "http.request.method": method,
        "http.route": route,
        "http.response.status_code": status,
    }


def healthy_login() -> list[Span]:
    t = TraceBuilder("healthy_login")
    root = t.span("frontend", "GET /login", 0, 48.2, kind="server", attributes=_http("GET", "/login", 200))
    login = t.span("auth", "login", 3.1, 40.5, parent=root, kind="server")
    t.span("auth", "check_password", 5.0, 22.4, parent=login, attributes={"user.id": 42})
    t.span("auth", "issue_token", 29.3, 9.8, parent=login, attributes={"user.id": 42})
    return t.spans


def auth_retry_storm() -> list[Span]:
    t = TraceBuilder("auth_retry_storm", offset_ms=60_000)
    root = t.span("frontend", "POST /login", 0, 6_050, kind="server", attributes=_http("POST", "/login", 200))
    for attempt in range(60):
        failed = attempt % 6 == 5
        t.span(
            "auth",
            "login",
            2 + attempt * 100,
            60 + (attempt * 7) % 35,
            parent=root,
            kind="server",
            status="error" if failed else "ok",
            message="upstream timeout" if failed else "",
            attributes={"retry.attempt": attempt + 1, "user.id": 7},
        )
    return t.spans


def _payment(
    key: str,
    offset_ms: float,
    amount: int,
    *,
    fraud_check: bool = True,
    bypass: bool = False,
) -> list[Span]:
    t = TraceBuilder(key, offset_ms=offset_ms)
    root = t.span(
        "frontend",
        "POST /checkout",
        0,
        420.0,
        kind="server",
        attributes=_http("POST", "/checkout", 200),
    )
    checkout = t.span("checkout", "checkout", 5.2, 402.1, parent=root, kind="server", attributes={"cart.items": 3})
    if fraud_check:
        t.span(
            "fraud",
            "payment.fraud_check",
            20.0,
            118.5,
            parent=checkout,
            kind="server",
            attributes={"fraud.score": 0.07},
        )
    if bypass:
        t.span(
            "payment",
            "payment.bypass_validation",
            141.0,
            2.3,
            parent=checkout,
            attributes={"payment.reason": "manual override"},
        )
    t.span(
        "payment",
        "payment.charge_card",
        150.4,
        231.7,
        parent=checkout,
        kind="server",
        attributes={"amount": amount, "currency": "EUR", "payment.method": "card"},
    )
    return t.spans


def payment_ok() -> list[Span]:
    return _payment("payment_ok", 120_000, 2500)


def payment_no_fraud_check() -> list[Span]:
    return _payment("payment_no_fraud_check", 180_000, 5000, fraud_check=False)


def payment_bypass() -> list[Span]:
    return _payment("payment_bypass", 240_000, 1500, bypass=True)


def checkout_error() -> list[Span]:
    t = TraceBuilder("checkout_error", offset_ms=300_000)
    root = t.span(
        "frontend",
        "POST /checkout",
        0,
        96.0,
        kind="server",
        status="unset",
        attributes=_http("POST", "/checkout", 200),
    )
    checkout = t.span("checkout", "checkout", 4.0, 88.5, parent=root, kind="server", status="unset")
    reserve = t.span("checkout", "reserve_items", 10.2, 61.0, parent=checkout, kind="client", status="unset")
    t.span(
        "inventory",
        "inventory.reserve",
        12.6,
        55.3,
        parent=reserve,
        kind="server",
        status="error",
        message="out of stock",
        attributes={"http.response.status_code": 503, "inventory.sku": "SKU-1042"},
    )
    return t.spans


def login_burst() -> list[list[Span]]:
    """400 one-span login traces ending within [00:00:00, 00:01:00), 50 per JSON line."""
    spans: list[Span] = []
    for i in range(400):
        t = TraceBuilder(f"login_burst:{i}")
        t.span("auth", "login", 5 + i * 140, 20 + (i * 37) % 60, kind="server")
        spans.extend(t.spans)
    return [spans[i : i + 50] for i in range(0, len(spans), 50)]


_EXPANDED_KEYS = ("resourceSpans", "scopeSpans", "spans")


def _pretty(value: Any, indent: str = "") -> str:
    """JSON with the resourceSpans/scopeSpans/spans structure laid out, one span per line."""
    if isinstance(value, dict) and any(k in value for k in _EXPANDED_KEYS):
        inner = indent + "  "
        items = [f"{inner}{json.dumps(k)}: {_pretty(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and value and isinstance(value[0], dict):
        inner = indent + "  "
        items = [inner + _pretty(v, inner) for v in value]
        return "[\n" + ",\n".join(items) + f"\n{indent}]"
    return json.dumps(value, separators=(", ", ": "))


def _write_json(name: str, spans: list[Span]) -> None:
    text = _pretty(spans_to_json(spans)) + "\n"
    (OUT / name).write_text(text, encoding="utf-8")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    _write_json("healthy_login.json", healthy_login())
    _write_json("auth_retry_storm.json", auth_retry_storm())
    _write_json("payment_ok.json", payment_ok())
    _write_json("payment_no_fraud_check.json", payment_no_fraud_check())
    _write_json("payment_bypass.json", payment_bypass())
    _write_json("checkout_error.json", checkout_error())
    lines = [json.dumps(spans_to_json(batch), separators=(",", ":")) for batch in login_burst()]
    (OUT / "login_burst.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
