"""Discovered facts as a FLUO rule file, or as JSON for scripts.

Each fact becomes one rule with a readable, unique id, `tags: [discovered,
<kind>]`, and a description that carries its support and confidence. When
exceptions were allowed, the traces that break a rule are listed in a comment
above it (and in full in the JSON).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from fluo_lang.diagnostics import plural

from .corpus import Corpus
from .facts import Fact, Options
from .syntax import digest, quote

DQ = '"'
MAX_EXCEPTIONS_SHOWN = 10
MAX_EXCEPTIONS_JSON = 1000
_SEVERITY = {"duration": "info", "attribute": "info", "exclusion": "info"}


@dataclass(frozen=True)
class Rule:
    """One output rule: its id, its fact and its source text."""

    id: str
    fact: Fact
    text: str


def confidence_text(c: float, exceptions: bool | None = None) -> str:
    """`c` as a percentage to four significant digits (`99.5%`), more where a share with exceptions (`c` below
    1, or `exceptions`) would read 100% (`99.996%`), and `>99.9999%` past six: one trace in 25,000 that broke
    a rule is not rounded away."""
    text = f"{c * 100:.4g}"
    if c < 1 if exceptions is None else exceptions:
        digits = 5
        while float(text) >= 100:
            if digits > 6:
                return ">99.9999%"
            text, digits = f"{c * 100:.{digits}g}", digits + 1
    return f"{text}%"


def description(fact: Fact) -> str:
    return (
        f"{fact.summary} (discovered: held on {fact.support - len(fact.exceptions)} "
        f"of {plural(fact.support, 'trace')}, "
        f"support {fact.support}, confidence {confidence_text(fact.confidence)})"
    )


def severity(fact: Fact) -> str:
    return _SEVERITY.get(fact.kind, "warning")


def rule_text(rule_id: str, fact: Fact, corpus: Corpus) -> str:
    lines = []
    if fact.exceptions:
        shown = [corpus.traces[i].trace_id for i in fact.exceptions[:MAX_EXCEPTIONS_SHOWN]]
        more = len(fact.exceptions) - len(shown)
        lines.append(
            f"// exceptions ({len(fact.exceptions)}): {', '.join(shown)}" + (f" and {more} more" if more else "")
        )
    lines += [
        f"rule {rule_id} {{",
        f"  severity: {severity(fact)}",
        f"  description: {quote(description(fact), DQ)}",
        f"  tags: [discovered, {fact.kind}]",
    ]
    for kind, expr in fact.clauses:
        lines.append(f"  {kind} {expr}" if kind in ("expect", "detect") else f"  {kind} {{ {expr} }}")
    lines.append("}")
    return "\n".join(lines)


def rules_of(facts: list[Fact], corpus: Corpus, prefix: str = "") -> list[Rule]:
    """One rule per fact, ids made unique by a short hash of their subjects where two would be alike (a
    numeric suffix past that, should two hashes meet): every one of them, so that an id never passes from one
    subject to another when the file is discovered again from a corpus where one of them came or went (ids
    stay readable otherwise; `pay_ments` and `pay-ments` slug alike, and were numbered in the order found).

    With `prefix` (the output file's stem, as a slug), every id starts with it (`shop_no_errors`),
    so that rule files discovered from several corpora can be loaded together: ids are unique
    across all files loaded at once (FLUO213).
    """
    bases = [_base(f, prefix) for f in facts]
    shared = {b for b, n in Counter(bases).items() if n > 1}
    taken: set[str] = set()
    out = []
    for f, base in zip(facts, bases, strict=True):
        if base in shared:  # names that slug or join alike (`pay_ments`, `pay-ments`; `a` + `b`, `a_b`): each a hash
            base = f"{base}_{_subject_digest(f, corpus)}"
        rule_id, n = base, 2
        while rule_id in taken:
            rule_id, n = f"{base}_{n}", n + 1
        taken.add(rule_id)
        out.append(Rule(rule_id, f, rule_text(rule_id, f, corpus)))
    return out


def _base(fact: Fact, prefix: str) -> str:
    key = fact.key if not prefix or fact.key == prefix or fact.key.startswith(prefix + "_") else f"{prefix}_{fact.key}"
    return key if key[:1].isalpha() or key[:1] == "_" else f"op_{key}"


def _subject_digest(fact: Fact, corpus: Corpus) -> str:
    """A short hash of what a fact is about (its kind, operations, services and attribute key; not its bounds),
    so that ids that would be alike differ by their subjects alone, not by which came first."""
    ops = [(corpus.ops[op].service, corpus.ops[op].name) for op in fact.ops]
    subject = repr((fact.kind, fact.key, ops, fact.services, fact.detail.get("key")))
    return digest(subject)


def header(corpus: Corpus, options: Options) -> str:
    return (
        f"// Discovered by `fluo discover` from {plural(len(corpus.traces), 'trace')} "
        f"({plural(corpus.spans, 'span')}),\n"
        f"// min support {plural(options.min_support, 'trace')}, "
        f"min confidence {confidence_text(options.min_confidence)}.\n"
        + (
            "// Each rule held on the corpus; review before relying on it.\n"
            if options.min_confidence >= 1.0
            else "// Each rule held on the corpus but for the exceptions its description counts; review before\n"
            "// relying on it.\n"
        )
    )


def fluo_text(rules: list[Rule], corpus: Corpus, options: Options) -> str:
    body = "\n\n".join(r.text for r in rules)
    return header(corpus, options) + ("\n" + body + "\n" if body else "")


def json_report(rules: list[Rule], corpus: Corpus, options: Options, left_out: int = 0) -> dict[str, Any]:
    """The `--format json` report; `left_out`: the rules found past `--max-rules`, not in it."""
    out_rules = []
    for r in rules:
        f = r.fact
        item: dict[str, Any] = {
            "id": r.id,
            "kind": f.kind,
            "severity": severity(f),
            "description": description(f),
            "support": f.support,
            "confidence": round(f.confidence, 6),
            "text": r.text.split("\n", 1)[1] if r.text.startswith("//") else r.text,
        }
        if options.min_confidence < 1.0:
            item["exceptions"] = [corpus.traces[i].trace_id for i in f.exceptions[:MAX_EXCEPTIONS_JSON]]
            if len(f.exceptions) > MAX_EXCEPTIONS_JSON:
                item["exceptions_total"] = len(f.exceptions)
        out_rules.append(item)
    return {
        "traces": len(corpus.traces),
        "spans": corpus.spans,
        "min_support": options.min_support,
        "min_confidence": options.min_confidence,
        "spans_merged": corpus.resent,
        "spans_dropped": corpus.clashing,
        "rules_left_out": left_out,
        "rules": out_rules,
    }
