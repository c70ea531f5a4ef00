"""A deterministic shop corpus with known invariants, for tests, benchmarks and demos.

Every trace is a checkout: `frontend` serves `GET /checkout`, `auth` runs 1-3
`login` attempts (each with one `check_password`), then `checkout` reserves
stock in `inventory` and either charges (`payment.fraud_check` ending before
`payment.charge_card`) or refunds (`payment.refund`), never both. Charges
carry `amount` (1..5000) and `currency` (EUR or USD). Frontend never calls
payment directly. Nothing fails, and every span stays under its budget.

`exceptions` traces break the fraud-check ordering (the check runs after the
charge); `noise` traces carry a one-off `debug.dump` operation.
"""

from __future__ import annotations

import hashlib
import random

from fluo_lang.trace import Span

BASE_NS = 1_767_225_600 * 10**9
MS = 10**6


def _id(text: str, size: int) -> bytes:
    return hashlib.sha256(text.encode()).digest()[:size]


def shop_trace(i: int, rng: random.Random, *, late_fraud_check: bool = False, noise: bool = False) -> list[Span]:
    """The spans of trace number `i`."""
    trace_id = _id(f"shop:{i}", 16)
    t0 = BASE_NS + i * 1000 * MS
    spans: list[Span] = []

    def span(
        service: str,
        name: str,
        start_ms: float,
        dur_ms: float,
        parent: Span | None,
        kind: str = "internal",
        attributes: dict[str, object] | None = None,
    ) -> Span:
        start = t0 + round(start_ms * MS)
        s = Span(
            trace_id=trace_id,
            span_id=_id(f"shop:{i}:{len(spans)}", 8),
            parent_id=parent.span_id if parent else b"",
            name=name,
            service=service,
            start=start,
            end=start + round(dur_ms * MS),
            status="ok",
            kind=kind,
            attributes=attributes or {},
            resource={"service.name": service},
        )
        spans.append(s)
        return s

    root = span("frontend", "GET /checkout", 0, 400, None, "server", {"http.request.method": "GET"})
    at = 5.0
    for _ in range(rng.randint(1, 3)):
        login = span("auth", "login", at, 30, root, "server", {"user.id": rng.randint(1, 10_000)})
        span("auth", "check_password", at + 5, rng.uniform(2, 20), login)
        at += 35
    co = span("checkout", "checkout", at, 300, root, "server")
    span("inventory", "reserve", at + 5, rng.uniform(5, 40), co, "server", {"sku.count": rng.randint(1, 9)})
    if rng.random() < 0.7:
        amount = rng.randint(1, 5000)
        currency = rng.choice(["EUR", "USD"])
        fraud_at, charge_at = (at + 60, at + 110) if not late_fraud_check else (at + 160, at + 60)
        span("payment", "payment.fraud_check", fraud_at, rng.uniform(10, 40), co, "server")
        span("payment", "payment.charge_card", charge_at, rng.uniform(20, 80), co, "server",
             {"amount": amount, "currency": currency})  # fmt: skip
    else:
        span("payment", "payment.refund", at + 60, rng.uniform(10, 60), co, "server", {"currency": "EUR"})
    if noise:
        span("frontend", "debug.dump", 390, 1, root)
    return spans


def shop_corpus(traces: int, *, exceptions: int = 0, noise: int = 0, seed: int = 7) -> list[Span]:
    """`traces` shop traces; the first `exceptions` charge before the fraud check, `noise` carry debug.dump."""
    rng = random.Random(seed)
    out: list[Span] = []
    charged = 0
    for i in range(traces):
        state = rng.getstate()
        spans = shop_trace(i, rng, noise=i < noise)
        has_charge = any(s.name == "payment.charge_card" for s in spans)
        if has_charge and charged < exceptions:
            rng.setstate(state)
            spans = shop_trace(i, rng, late_fraud_check=True, noise=i < noise)
        charged += has_charge
        out.extend(spans)
    return out
