"""Hypothesis strategies for fuzzing FLUO, and the checks every fuzzed input must pass.

Rule texts come three ways: straight from the grammar (`fluo_lang/fluo.lark`
through `hypothesis.extra.lark`, mostly syntax errors), typed from the registry
(`fluo_lang.builtins`: expressions built member by member so most of them
check and reach the evaluator), and as token-level mutations of valid rules
(delete, duplicate, swap, insert a keyword or punctuation). Trace bodies are
OTLP/JSON and OTLP protobuf requests, valid ones mutated at the structure and
the byte level, and random ones.

`check_rule_text` and `check_trace_body` state what must hold: no exception
escapes; problems come back as diagnostics (rules) or `TraceInputError`
(traces). The tests in `tests/test_fuzz_*.py` run these with a few examples
each; `fuzz/fuzz_language.py` runs them for longer and counts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark import Lark

from fluo_lang import builtins as b
from fluo_lang import types as t
from fluo_lang.api import analyze, lower
from fluo_lang.cost import check_cost
from fluo_lang.diagnostics import CODES
from fluo_lang.evaluate import Program
from fluo_lang.ir import format_rule
from fluo_lang.otlp import TraceInputError, load_trace_files, parse_json, parse_protobuf, spans_to_request
from fluo_lang.parser import grammar_text, keywords
from fluo_lang.trace import Trace, assemble

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_RULES = ROOT / "examples" / "rules"
EXAMPLE_TRACES = ROOT / "examples" / "traces"

NAMES = ["checkout", "login", "payment.charge_card", "payment.fraud_check", "db.query", "GET /"]
SERVICES = ["auth", "shop", "db"]
ATTRIBUTES = ["amount", "http.response.status_code", "user.id", "retry"]
DURATIONS = ["0ns", "250us", "15ms", "1s", "1.5m", "1h", "2d"]
PUNCTUATION = ["(", ")", "{", "}", "[", "]", ",", ".", ":", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/"]

# -- rule texts ----------------------------------------------------------------


@cache
def _grammar() -> Lark:
    return Lark(grammar_text(), parser="lalr", lexer="basic")


def grammar_texts() -> st.SearchStrategy[str]:
    """Any sentence of the grammar, tokens often run together (`ruleA{}`): mostly syntax errors."""
    return from_lark(
        _grammar(),
        explicit={
            "DURATION": st.sampled_from([*DURATIONS, "10min", "1.5"]),
            "COMMENT": st.just("// note\n"),
            "STRING": st.sampled_from(['"a"', "'auth'", '"\\n"', "''", '"\\q"']),
        },
    )


def _literal(ty: t.Type) -> st.SearchStrategy[str]:
    if ty == t.INT:
        return st.integers(-3, 2000).map(str)
    if ty == t.FLOAT:
        return st.sampled_from(["0.5", "1.0", "3.25", "1e3"])
    if ty == t.DURATION:
        return st.sampled_from(DURATIONS)
    if ty == t.BOOL:
        return st.sampled_from(["true", "false"])
    if ty == t.STATUS:
        return st.sampled_from(["'error'", "'ok'", "'unset'"])
    if ty == t.KIND:
        return st.sampled_from(["'server'", "'client'", "'internal'"])
    return st.sampled_from([repr(x) for x in NAMES + SERVICES] + ['"x\\ty"', "'^GET'"])


_LITERAL_TYPES = (t.INT, t.FLOAT, t.DURATION, t.BOOL, t.STRING, t.STATUS, t.KIND)
_COMPARABLE = (t.INT, t.DURATION, t.STRING, t.STATUS, t.KIND, t.ANY)


def _producers(ty: t.Type) -> list[b.Member]:
    """Registry members whose result (with typical arguments) is `ty`."""
    out = []
    for m in b.MEMBERS:
        sample = [t.DURATION] if m.params and m.params[0].kind == "per_span" else []
        if m.result_type(sample) == ty:
            out.append(m)
    return out


@st.composite
def expressions(draw: st.DrawFn, ty: t.Type, in_predicate: bool, depth: int, root: str = "trace") -> str:
    """An expression of type `ty`, mostly well-typed, built from the registry."""
    options: list[Callable[[], str]] = []
    if ty in _LITERAL_TYPES:
        options.append(lambda: draw(_literal(ty)))
    if ty == t.ANY and in_predicate:
        options.append(lambda: draw(st.sampled_from(ATTRIBUTES)))
        options.append(lambda: f"attributes[{draw(st.sampled_from(ATTRIBUTES))!r}]")
    if ty == t.SPAN:
        options.append(lambda: "it" if in_predicate else f"{root}.root")
    if ty in (t.TRACE, t.WINDOW):
        options.append(lambda: root)
    if ty == t.SPANS:
        options.append(
            lambda: (
                draw(st.sampled_from(["children", "descendants", f"{root}.spans"])) if in_predicate else f"{root}.spans"
            )
        )
    if in_predicate:
        fields = [m for m in b.SPAN_FIELDS if m.result == ty]
        if fields:
            options.append(lambda: draw(st.sampled_from(fields)).name)
    if depth > 0:
        producers = [m for m in _producers(ty) if in_predicate or m.receiver != t.SPAN or root == "trace"]
        if producers:
            options.append(lambda: _member_use(draw, draw(st.sampled_from(producers)), in_predicate, depth, root))
        if ty == t.BOOL:
            options.append(lambda: _comparison(draw, in_predicate, depth, root))
            options.append(lambda: _connective(draw, in_predicate, depth, root))
            options.append(lambda: draw(expressions(t.SPANS, in_predicate, depth - 1, root)))
            if in_predicate:
                options.append(lambda: f"{draw(st.sampled_from(['name', 'service']))} matches {draw(_regex())}")
                options.append(lambda: f"{draw(st.sampled_from(ATTRIBUTES))} in [200, 500, 'x']")
                options.append(lambda: f"trace.services contains {draw(_literal(t.STRING))}")
        if ty in (t.INT, t.DURATION, t.FLOAT):
            op = draw(st.sampled_from(["+", "-", "*", "/"]))
            right_ty = t.INT if op in ("*", "/") else ty
            options.append(
                lambda: (
                    f"({draw(expressions(ty, in_predicate, depth - 1, root))} {op} "
                    f"{draw(expressions(right_ty, in_predicate, depth - 1, root))})"
                )
            )
    if ty.is_list:
        options.append(lambda: "trace.services" if root == "trace" else "[1, 'a', 2.5]")
    if not options:  # a type nothing produces here: fall back to something that checks as bool
        return draw(_literal(t.BOOL))
    return draw(st.sampled_from(options))()


def _regex() -> st.SearchStrategy[str]:
    return st.sampled_from(['"^GET"', "'a|b'", '"(x+)+y"', '"[0-9]{3}"', '"\\\\d"', '"("', '"(?i)login"'])


def _member_use(draw: st.DrawFn, m: b.Member, in_predicate: bool, depth: int, root: str) -> str:
    if m.receiver == t.SPAN and in_predicate and draw(st.booleans()):
        receiver = "" if m.kind == "field" else "it"
    elif m.receiver == t.SPAN and not in_predicate:
        receiver = f"{root}.root"
    else:
        receiver = draw(expressions(m.receiver, in_predicate, depth - 1, root))
    head = f"{receiver}.{m.name}" if receiver else m.name
    if m.kind == "field":
        return head
    args = []
    for p in m.params:
        if p.optional and draw(st.booleans()):
            continue
        if p.kind == "pred":
            args.append(draw(expressions(t.BOOL, True, depth - 1, root)))
        elif p.kind == "per_span":
            args.append(draw(expressions(draw(st.sampled_from([t.DURATION, t.INT, t.ANY])), True, depth - 1, root)))
        else:
            args.append(draw(expressions(p.types[0] if p.types else t.ANY, in_predicate, depth - 1, root)))
    return f"{head}({', '.join(args)})"


def _comparison(draw: st.DrawFn, in_predicate: bool, depth: int, root: str) -> str:
    ty = draw(st.sampled_from(_COMPARABLE))
    if ty in (t.STATUS, t.KIND) and not in_predicate and root != "trace":
        ty = t.INT
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="] if ty not in (t.STATUS, t.KIND) else ["==", "!="]))
    if ty in (t.STATUS, t.KIND):  # bare enum values are constants only next to the field
        field_ = "status" if ty == t.STATUS else "kind"
        left = field_ if in_predicate else f"trace.root.{field_}"
        values = t.ENUMS[ty]
        return f"{left} {op} {draw(st.sampled_from(values))}"
    left = draw(expressions(ty, in_predicate, depth - 1, root))
    right = draw(expressions(t.INT if ty == t.ANY else ty, in_predicate, depth - 1, root))
    return f"{left} {op} {right}"


def _connective(draw: st.DrawFn, in_predicate: bool, depth: int, root: str) -> str:
    a = draw(expressions(t.BOOL, in_predicate, depth - 1, root))
    kind = draw(st.sampled_from(["and", "or", "not"]))
    if kind == "not":
        return f"not ({a})"
    return f"({a}) {kind} ({draw(expressions(t.BOOL, in_predicate, depth - 1, root))})"


@st.composite
def typed_rules(draw: st.DrawFn, max_depth: int = 4) -> str:
    """A file of one to three rules built from the registry; most of them check."""
    parts = []
    for i in range(draw(st.integers(1, 3))):
        windowed = draw(st.integers(0, 5)) == 0
        root = "window" if windowed else "trace"
        depth = draw(st.integers(1, max_depth))

        def expr(root: str = root, depth: int = depth) -> str:
            return draw(expressions(t.BOOL, False, depth, root))

        meta = draw(st.sampled_from(["", "severity: error\n", 'description: "d"\n  tags: [a, b]\n']))
        window = f"window {draw(st.sampled_from(['1m', '5s']))}\n  " if windowed else ""
        mode = draw(st.sampled_from(["expect", "detect", "when"]))
        if mode == "when":
            body = f"when {{ {expr()} }}\n  always {{ {expr()} }}"
            if draw(st.booleans()):
                body += f"\n  never {{ {expr()} }}"
        else:
            body = f"{mode} {expr()}"
        parts.append(f"rule r{i} {{\n  {meta}{window}{body}\n}}\n")
    return "".join(parts)


def example_rule_texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(EXAMPLE_RULES.glob("*.fluo"))]


_TOKEN = re.compile(r"\s+|//[^\n]*|\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|[A-Za-z_][\w.]*|[0-9][\w.]*|[=!<>]=|\S")


def tokens(text: str) -> list[str]:
    """Rough tokens for mutation (whitespace kept): not a parser, only where to cut."""
    return _TOKEN.findall(text)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """A text with one to four token-level edits: delete, duplicate, swap, insert, or cut short."""
    toks = tokens(draw(base))
    vocabulary = sorted(keywords()) + PUNCTUATION + [m.name for m in b.MEMBERS] + ["'", '"', "\\", "µ", "\x00", "//"]
    for _ in range(draw(st.integers(1, 4))):
        if not toks:
            toks = [draw(st.sampled_from(vocabulary))]
            continue
        i = draw(st.integers(0, len(toks) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "replace", "truncate"]))
        if op == "delete":
            del toks[i]
        elif op == "duplicate":
            toks.insert(i, toks[i])
        elif op == "swap" and i + 1 < len(toks):
            toks[i], toks[i + 1] = toks[i + 1], toks[i]
        elif op == "insert":
            toks.insert(i, draw(st.sampled_from(vocabulary)))
        elif op == "replace":
            toks[i] = draw(st.sampled_from(vocabulary))
        elif op == "truncate":
            toks = toks[:i]
    return "".join(toks)


def rule_texts() -> st.SearchStrategy[str]:
    """Every kind of rule text the fuzzer tries."""
    valid = st.one_of(typed_rules(), st.sampled_from(example_rule_texts()))
    return st.one_of(grammar_texts(), typed_rules(), mutated(valid), st.text(max_size=200))


# -- what every rule text must survive ------------------------------------------


@dataclass
class RuleOutcome:
    """How far a text got: checked clean, compiled, evaluated; and any broken promise."""

    checked: bool = False
    evaluated: int = 0
    problems: list[str] = field(default_factory=list)


@cache
def sample_traces() -> tuple[Trace, ...]:
    return tuple(assemble(load_trace_files(sorted(EXAMPLE_TRACES.iterdir()))))


def check_rule_text(text: str, path: str = "fuzz.fluo") -> RuleOutcome:
    """Parse, check, lower, cost, compile and evaluate `text`; no stage may raise."""
    out = RuleOutcome()
    analysis = analyze([(path, text)])
    for d in analysis.diagnostics:
        if d.code not in CODES:
            out.problems.append(f"unregistered code {d.code}: {d.format()}")
        if not (0 <= d.span.start <= d.span.end <= len(text)):
            out.problems.append(f"range {d.span.start}..{d.span.end} outside the text: {d.format()}")
        if "\n" in d.format():
            out.problems.append(f"message of more than one line: {d.format()!r}")
    if analysis.has_errors:
        return out
    out.checked = True
    rules = lower(analysis)
    for rule in rules:
        format_rule(rule)
    check_cost(rules)
    traces = list(sample_traces())
    unbudgeted = Program(rules)
    for program in (unbudgeted, Program(rules, budget=2_000)):
        for signal in program.evaluate(traces):
            json.dumps(signal.to_json())
        out.evaluated += len(program.rules)
        out.problems.extend(f"evaluation error in {e.rule}: {e.message}" for e in program.errors)
    out.problems.extend(disagreements(unbudgeted, traces))
    return out


def disagreements(program: Program, traces: Iterable[Trace]) -> list[str]:
    """Traces on which the rule set's one function and each rule's own function disagree on what fired."""
    together = program.program(program.trace_rules)
    out: list[str] = []
    for trace in traces:
        try:
            fired = {program.trace_rules[i].id for i in together(trace)}
            alone = {r.id for r in program.trace_rules if r.fires(trace)}
        except Exception:  # reported as an evaluation error above
            continue
        if fired != alone:
            out.append(f"trace {trace.id_hex}: the rule set fired {sorted(fired)}, the rules alone {sorted(alone)}")
            if len(out) == 3:  # enough to see the pattern
                break
    return out


# -- OTLP bodies ----------------------------------------------------------------


@cache
def example_bodies() -> tuple[tuple[str, bytes], ...]:
    """The example traces as (content type, body): each JSON file and its protobuf form."""
    out: list[tuple[str, bytes]] = []
    for p in sorted(EXAMPLE_TRACES.iterdir()):
        out.append(("json", p.read_bytes()))
        out.append(("protobuf", spans_to_request(load_trace_files([p])).SerializeToString()))
    return tuple(out)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_JSON_KEYS = [
    "resourceSpans",
    "scopeSpans",
    "spans",
    "resource",
    "attributes",
    "traceId",
    "spanId",
    "parentSpanId",
    "name",
    "kind",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "status",
    "code",
    "key",
    "value",
    "stringValue",
    "intValue",
    "arrayValue",
    "kvlistValue",
    "values",
    "bytesValue",
    "doubleValue",
]


@st.composite
def _mutated_json_document(draw: st.DrawFn) -> bytes:
    """An example OTLP/JSON document with values replaced or removed at random places."""
    bodies = [body for kind, body in example_bodies() if kind == "json"]
    text = draw(st.sampled_from(bodies)).decode("utf-8")
    first = text.strip().splitlines()[0] if text.lstrip().startswith("{") and "\n{" in text.strip() else text
    doc = json.loads(first)
    for _ in range(draw(st.integers(1, 5))):
        containers: list[Any] = []
        stack = [doc]
        while stack:
            node = stack.pop()
            if isinstance(node, dict | list) and node:
                containers.append(node)
                stack.extend(node.values() if isinstance(node, dict) else node)
        if not containers:
            break
        target = draw(st.sampled_from(containers))
        keys = list(target) if isinstance(target, dict) else list(range(len(target)))
        key = draw(st.sampled_from(keys))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            target[key] = draw(_json_values)
        elif action == "delete":
            del target[key]
        elif isinstance(target, dict):
            target[draw(st.sampled_from(_JSON_KEYS))] = draw(_json_values)
        else:
            target.append(draw(_json_values))
    return json.dumps(doc).encode("utf-8")


@st.composite
def _mutated_bytes(draw: st.DrawFn, kind: str) -> bytes:
    """An example body with bytes flipped, inserted, deleted or cut off."""
    body = bytearray(draw(st.sampled_from([b for k, b in example_bodies() if k == kind])))
    for _ in range(draw(st.integers(1, 8))):
        if not body:
            break
        i = draw(st.integers(0, len(body) - 1))
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if op == "flip":
            body[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            body[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del body[i : i + draw(st.integers(1, 16))]
        else:
            del body[i:]
    return bytes(body)


def json_bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        _mutated_json_document(),
        _mutated_bytes("json"),
        _json_values.map(lambda v: json.dumps(v).encode("utf-8")),
        st.dictionaries(st.sampled_from(_JSON_KEYS), _json_values, max_size=3).map(
            lambda v: json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [v]}]}]}).encode("utf-8")
        ),
        st.binary(max_size=64),
    )


def protobuf_bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(_mutated_bytes("protobuf"), st.binary(max_size=256))


def trace_bodies() -> st.SearchStrategy[tuple[str, bytes]]:
    """(content type, body): "json" or "protobuf"."""
    return st.one_of(json_bodies().map(lambda x: ("json", x)), protobuf_bodies().map(lambda x: ("protobuf", x)))


def check_trace_body(kind: str, body: bytes) -> int:
    """Parse a body as the receivers would; only `TraceInputError` may come out. Returns spans read (-1: refused)."""
    try:
        spans = parse_json(body, source="<fuzz>") if kind == "json" else parse_protobuf(body, source="<fuzz>")
    except TraceInputError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"TraceInputError message must be one line: {message!r}"
        return -1
    traces = assemble(spans)
    program = _example_program()
    program.evaluate(traces)
    assert program.errors == [], program.errors
    return len(spans)


@cache
def _example_program() -> Program:
    return Program(
        lower(analyze([(str(p), p.read_text(encoding="utf-8")) for p in sorted(EXAMPLE_RULES.glob("*.fluo"))]))
    )
