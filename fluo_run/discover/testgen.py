"""`fluo discover --tests`: a rule test for the discovered rules, built from the corpus.

The test file (`<stem>_test.yaml`, in the format `fluo test` reads) has one
passing case, a real corpus trace on which no rule fires (if some trace breaks
no rule), and for each rule a violating case: a real counterexample when the
rule has exceptions, otherwise a real trace changed as little as the rule
allows (one span dropped, duplicated, moved, re-parented, stretched, failed, or
one attribute changed). Cases start from the spans of a trace in an order of
their own, not the files' (`_canonical`). Every case is
run through the compiled rules before it is written, and expects exactly the
signals it produced, so each test passes the day it is written.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fluo_lang.api import analyze, compile_program
from fluo_lang.diagnostics import plural
from fluo_lang.evaluate import Program
from fluo_lang.files import NewFile, real_path
from fluo_lang.otlp import spans_to_json
from fluo_lang.trace import Span, Trace
from fluo_lang.values import HexBytes

from ..testing.update import review_yaml
from .corpus import MAX_VALUE_LENGTH, Corpus, Op
from .facts import Fact
from .render import Rule
from .syntax import SURROGATE, article

BASE_TRACES = 4
"""Corpus traces tried per rule as the base of a mutation."""
MAX_PASSING_TRIES = 500
"""Corpus traces evaluated in search of the passing case, among those no rule lists as an exception (all
others pass but for the cut of long attribute values, so the first one tried nearly always does)."""
MAX_COPY_CHOICES = 10
"""Operations of the base trace tried as the span to copy when breaking a service or trace count bound."""

Mutation = Callable[[list[Span]], tuple[list[Span], str] | None]


def _spans_of(service: str, n: int) -> str:
    """A service's spans in a case name: `"auth" span(s)`, `span(s) without service.name` for service ''."""
    noun = "span" if n == 1 else "spans"
    return f"{_q(service)} {noun}" if service else f"{noun} without service.name"


def _q(text: str) -> str:
    """A name as the case names show it: in double quotes, which YAML leaves alone inside its own.

    Half a surrogate pair is shown as its escape: YAML can neither write nor read it as a character.
    """
    return SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", json.dumps(text, ensure_ascii=False))


def _clone(s: Span, **changes: Any) -> Span:
    fields: dict[str, Any] = {
        "trace_id": s.trace_id,
        "span_id": s.span_id,
        "parent_id": s.parent_id,
        "name": s.name,
        "service": s.service,
        "start": s.start,
        "end": s.end,
        "status": s.status,
        "status_message": s.status_message,
        "kind": s.kind,
        "attributes": {k: _cut(v) for k, v in sorted(s.attributes.items())},
        "resource": s.resource,
    }
    fields.update(changes)
    return Span(**fields)


def _cut(value: Any) -> Any:
    """An attribute value as fixtures carry it: a string past `MAX_VALUE_LENGTH` cut there (no rule names such
    a value, and a fixture is read by people; every case is evaluated on what is written)."""
    if not isinstance(value, str) or len(value) <= MAX_VALUE_LENGTH:
        return value
    if isinstance(value, HexBytes):  # bytes stay bytes: whole ones, two hex digits each
        return HexBytes(value[: MAX_VALUE_LENGTH - MAX_VALUE_LENGTH % 2])
    return value[:MAX_VALUE_LENGTH]


def _copy(spans: list[Span]) -> list[Span]:
    return [_clone(s) for s in spans]


def _canonical(spans: list[Span]) -> list[Span]:
    """Copies of a trace's spans as every case starts from them: ordered by start, then span id, with attribute
    and resource keys sorted, so no case or fixture depends on the order or encoding of the files read."""
    resources: dict[int, Mapping[str, Any]] = {}
    out = []
    for s in sorted(spans, key=lambda s: (s.start, s.span_id)):
        resource = resources.get(id(s.resource))
        if resource is None:
            resource = resources[id(s.resource)] = dict(sorted(s.resource.items()))
        out.append(_clone(s, resource=resource))
    return out


def _new_id(s: Span, n: int) -> bytes:
    return hashlib.sha256(s.span_id + b"fluo-discover-copy" + bytes([n % 256])).digest()[:8]


def _op_key(op: Op) -> tuple[str, str]:
    return op.service, op.name


def _is(op: Op) -> Callable[[Span], bool]:
    return lambda s: s.service == op.service and s.name == op.name


def _drop(spans: list[Span], match: Callable[[Span], bool]) -> list[Span]:
    """The spans without those matching; their children move up to the dropped span's parent."""
    gone = {s.span_id: s.parent_id for s in spans if match(s)}
    out = []
    for s in spans:
        if s.span_id in gone:
            continue
        parent = s.parent_id
        while parent in gone:
            parent = gone[parent]
        out.append(_clone(s, parent_id=parent) if parent != s.parent_id else s)
    return out


class Mutations:
    """The minimal changes that can break one rule of each fact kind."""

    def __init__(self, corpus: Corpus, spans_of: Callable[[str], list[Span]]) -> None:
        self.corpus = corpus
        self.spans_of = spans_of

    def of(self, rule: Rule, base: list[Span]) -> list[Mutation]:
        """The mutations to try on `base` (a count bound is broken by copying spans of the base's own
        operations: the first few by service and name)."""
        f = rule.fact
        ops = [self.corpus.ops[o] for o in f.ops]
        d = f.detail
        kind = f.kind
        if kind == "count":
            bound = int(d["bound"])
            if d["scope"] == "trace":
                every = sorted({Op(s.service, s.name) for s in base}, key=_op_key)[:MAX_COPY_CHOICES]
                return [self.duplicate(lambda s: True, _is(op), bound, "spans") for op in every]
            if d["scope"] == "service":
                service = f.services[0]
                mine = sorted({Op(s.service, s.name) for s in base if s.service == service}, key=_op_key)
                mine = mine[:MAX_COPY_CHOICES]
                spans = _spans_of(service, bound + 1)
                return [self.duplicate(lambda s: s.service == service, _is(op), bound, spans) for op in mine]
            return [self.duplicate(_is(ops[0]), _is(ops[0]), bound, f"{_q(ops[0].name)} spans")]
        if kind in ("presence", "together"):
            return [self.dropping(op) for op in ops]
        if kind == "cooccurrence":
            return [self.dropping(ops[1])]
        if kind == "order":
            first, then = self.corpus.ops[d["first"]], self.corpus.ops[d["then"]]
            return [self.move_after(first, then), self.dropping(first)]
        if kind == "parent":
            return [self.reparent_to_root(ops[0])]
        if kind == "no_call":
            return [self.call(d["caller"], d["callee"])]
        if kind == "error_free":
            if ops:
                return [self.fail(_is(ops[0]), f"one {_q(ops[0].name)} span")]
            if f.services:
                service = f.services[0]
                return [self.fail(lambda s: s.service == service, f"one {_spans_of(service, 1)}")]
            return [self.fail(lambda s: True, "one span")]
        if kind == "exclusion":
            return [self.graft(ops[0], ops[1]), self.graft(ops[1], ops[0])]
        if kind == "duration":
            return [self.stretch(self.scope(f), int(d["bound_ns"]))]
        if kind == "attribute":
            return [self.set_attribute(self.scope(f), d)]
        return []

    def scope(self, fact: Fact) -> Callable[[Span], bool]:
        """The spans a duration or attribute fact speaks about: one operation's, one service's, or all."""
        if fact.ops:
            return _is(self.corpus.ops[fact.ops[0]])
        if fact.services:
            service = fact.services[0]
            return lambda s: s.service == service
        return lambda s: True

    def duplicate(self, scope: Callable[[Span], bool], copy: Callable[[Span], bool], bound: int, what: str) -> Mutation:
        """Copies of one span matching `copy` (a leaf if there is one) until `scope` has `bound + 1` spans
        (`what` names those spans in the case name: `"auth" spans`, or `spans` for the whole trace)."""

        def mutate(spans: list[Span]) -> tuple[list[Span], str] | None:
            have = [s for s in spans if scope(s)]
            candidates = [s for s in have if copy(s)]
            if not candidates or len(have) > bound:
                return None
            parents = {s.parent_id for s in spans}
            leaf = next((s for s in candidates if s.span_id not in parents), candidates[0])
            extra = [_clone(leaf, span_id=_new_id(leaf, i)) for i in range(bound + 1 - len(have))]
            copies = plural(len(extra), "copy", "copies")
            counted = f"{bound + 1} {what}"
            return [*_copy(spans), *extra], f"with {copies} of {article(leaf.name)} {_q(leaf.name)} span ({counted})"

        return mutate

    def dropping(self, op: Op) -> Mutation:
        """The operation's spans removed; renamed instead when they are all the trace has (no trace is empty)."""

        def mutate(spans: list[Span]) -> tuple[list[Span], str] | None:
            if not any(_is(op)(s) for s in spans):
                return None
            kept = _drop(spans, _is(op))
            if kept:
                return _copy(kept), f"with its {_q(op.name)} spans removed"
            other = f"{op.name} (renamed)"
            return [_clone(s, name=other) for s in spans], f"with its {_q(op.name)} spans renamed to {_q(other)}"

        return mutate

    def move_after(self, first: Op, then: Op) -> Mutation:
        def mutate(spans: list[Span]) -> tuple[list[Span], str] | None:
            later = [s.start for s in spans if _is(then)(s)]
            if not later or not any(_is(first)(s) for s in spans):
                return None
            at = max(later) + 1
            out = [_clone(s, start=at, end=at + s.duration) if _is(first)(s) else _clone(s) for s in spans]
            return out, f"with {_q(first.name)} moved after {_q(then.name)} starts"

        return mutate

    def reparent_to_root(self, op: Op) -> Mutation:
        def mutate(spans: list[Span]) -> tuple[list[Span], str] | None:
            target = next((s for s in spans if _is(op)(s)), None)
            if target is None:
                return None
            out = [_clone(s, parent_id=b"") if s is target else _clone(s) for s in spans]
            return out, f"with one {_q(op.name)} span detached from its parent"

        return mutate

    def call(self, caller: str, callee: str) -> Mutation:
        def mutate(spans: list[Span]) -> tuple[list[Span], str] | None:
            source = next((s for s in spans if s.service == caller), None)
            target = next((s for s in spans if s.service == callee), None)
            if source is None or target is None:
                return None
            out = [_clone(s, parent_id=source.span_id) if s is target else _clone(s) for s in spans]
            by = _q(caller) if caller else "a span without service.name"
            return out, f"with one {_spans_of(callee, 1)} called directly from {by}"

        return mutate

    def fail(self, match: Callable[[Span], bool], what: str) -> Mutation:
        def mutate(spans: list[Span]) -> tuple[list[Span], str] | None:
            target = next((s for s in spans if match(s)), None)
            if target is None:
                return None
            out = [_clone(s, status="error") if s is target else _clone(s) for s in spans]
            return out, f"with {what} failed (status error)"

        return mutate

    def graft(self, present: Op, absent: Op) -> Mutation:
        donor = self._donor(absent)

        def mutate(spans: list[Span]) -> tuple[list[Span], str] | None:
            anchor = next((s for s in spans if _is(present)(s)), None)
            if anchor is None or donor is None:
                return None
            extra = _clone(
                donor,
                trace_id=anchor.trace_id,
                span_id=_new_id(anchor, 255),
                parent_id=anchor.parent_id,
                start=anchor.start,
                end=anchor.start + donor.duration,
            )
            added = f"with {article(absent.name)} {_q(absent.name)} span added beside {_q(present.name)}"
            return [*_copy(spans), extra], added

        return mutate

    def _donor(self, op: Op) -> Span | None:
        index = self.corpus.op_index.get((op.service, op.name))
        for t in self.corpus.traces:
            if index in t.ops:
                return next((s for s in self.spans_of(t.trace_id) if _is(op)(s)), None)
        return None

    def stretch(self, match: Callable[[Span], bool], bound: int) -> Mutation:
        def mutate(spans: list[Span]) -> tuple[list[Span], str] | None:
            target = next((s for s in spans if match(s)), None)
            if target is None:
                return None
            out = [_clone(s, end=s.start + bound + 1) if s is target else _clone(s) for s in spans]
            return out, f"with one {_q(target.name)} span stretched just past the bound"

        return mutate

    def set_attribute(self, match: Callable[[Span], bool], detail: dict[str, Any]) -> Mutation:
        key = str(detail["key"])
        if "values" in detail:
            values = detail["values"]
            strings = [v for v in values if isinstance(v, str)]
            odd: Any = ("unexpected-" + "-".join(strings))[:40] if strings else "unexpected"
            what = f"{_q(key)} set to a value outside the set"
        elif "high" in detail:
            odd = detail["high"] + 1
            what = f"{_q(key)} set just above its range"
        else:
            odd = None
            what = f"{_q(key)} removed"

        def mutate(spans: list[Span]) -> tuple[list[Span], str] | None:
            target = next((s for s in spans if match(s)), None)
            if target is None:
                return None
            attrs = {k: _cut(v) for k, v in target.attributes.items()}
            if odd is None:
                attrs.pop(key, None)
            elif isinstance(attrs.get(key), HexBytes) and isinstance(odd, str):  # bytes outside the set, as bytes
                attrs[key] = HexBytes(odd.encode().hex())
            else:
                attrs[key] = odd
            out = [_clone(s, attributes=attrs) if s is target else _clone(s) for s in spans]
            return out, f"with one {_q(target.name)} span's {what}"

        return mutate


def _fired(program: Program, spans: list[Span]) -> list[str]:
    """The rules a trace of these spans (never empty: a fixture holds at least one span) makes fire."""
    trace = Trace(spans[0].trace_id, spans)
    return sorted({s.rule for s in program.evaluate_trace(trace)})


def _bases(rule: Rule, corpus: Corpus, exceptions: set[int]) -> Iterator[int]:
    """Corpus traces where the rule's subject occurs, those without exceptions first."""
    f = rule.fact
    need = set(f.ops[:1] if f.kind == "exclusion" else f.ops)
    services = set(f.services)
    order = sorted(corpus.traces, key=lambda t: t.index in exceptions)
    n = 0
    for t in order:
        if need <= t.ops.keys() and all(any(corpus.ops[o].service == s for o in t.ops) for s in services):
            yield t.index
            n += 1
            if n >= BASE_TRACES:
                return


PASSING_FIXTURE = "no-rule-fires"
"""The passing case's fixture name; a rule id cannot hold `-`, so it meets no violating case's."""


def test_outputs(tests_dir: Path, stem: str) -> tuple[Path, Path]:
    """The test file and the fixture folder `--tests` writes for rules in `<stem>.fluo`.

    Fixtures go in a folder of the stem's own, so two rule files' tests in one folder keep apart.
    """
    return tests_dir / f"{stem}_test.yaml", tests_dir / "fixtures" / stem


def linked_output(tests_dir: Path, stem: str) -> str | None:
    """Why `--tests` must not write into `tests_dir` for `<stem>.fluo`, if it must not: the test file or a
    fixture folder is a symbolic link. Writing, and removing old fixtures, through it would reach
    wherever it points (a repository can ship such a link); so `--tests` refuses instead of following it."""
    test_path, folder = test_outputs(tests_dir, stem)
    for path in (test_path, folder.parent, folder):
        if path.is_symlink():
            return (
                f"{path} is a symbolic link (to {os.readlink(path)}); `--tests` writes and removes files there, "
                "so it does not follow links: remove the link, or give another --tests folder"
            )
    return None


def _fixture(tests_dir: Path, folder: Path, name: str, spans: list[Span], out: list[NewFile]) -> str:
    """A fixture's name in the test file, its text added to `out`. A link in its place is replaced, not written
    through: a fixture of ours is a file."""
    path = folder / f"{name}.json"
    data = (json.dumps(spans_to_json(spans), indent=1) + "\n").encode("utf-8")
    out.append(NewFile(path, data, replace_link=True))
    return path.relative_to(tests_dir).as_posix()


def _passing(
    rules: list[Rule], program: Program, corpus: Corpus, spans_of: Callable[[str], list[Span]]
) -> tuple[str, list[Span]] | str:
    """The passing case's trace (id, spans): among the traces that no rule lists as an exception, one with the
    most operations (the first in trace id order of those) on which no rule fires; else why there is none."""
    exceptions = {i for r in rules for i in r.fact.exceptions}
    quiet = sorted((t for t in corpus.traces if t.index not in exceptions), key=lambda t: -len(t.ops))
    if not quiet:
        return (
            f"no passing case: each of the {plural(len(corpus.traces), 'trace')} breaks a rule (is among its "
            "exceptions, which --min-confidence below 1 allows)"
        )
    for t in quiet[:MAX_PASSING_TRIES]:
        spans = _copy(spans_of(t.trace_id))
        if not _fired(program, spans):
            return t.trace_id, spans
    return f"no passing case: a rule fired on each of the {plural(len(quiet[:MAX_PASSING_TRIES]), 'trace')} tried"


def build_cases(
    tests_dir: Path,
    stem: str,
    rules: list[Rule],
    program: Program,
    traces: list[Trace],
    corpus: Corpus,
    fixtures_out: list[NewFile],
) -> tuple[list[dict[str, Any]], list[str], str | None]:
    """The cases (their fixtures added to `fixtures_out`), the ids of rules no violating case was found for,
    and why there is no passing case when there is none."""
    by_id = {t.id_hex: t for t in traces}
    canonical: dict[str, list[Span]] = {}

    def spans_of(trace_id: str) -> list[Span]:
        spans = canonical.get(trace_id)
        if spans is None:
            spans = canonical[trace_id] = _canonical(by_id[trace_id].spans)
        return spans

    fixtures = test_outputs(tests_dir, stem)[1]
    cases: list[dict[str, Any]] = []
    passing = _passing(rules, program, corpus, spans_of)
    if not isinstance(passing, str):
        trace_id, spans = passing
        path = _fixture(tests_dir, fixtures, PASSING_FIXTURE, spans, fixtures_out)
        cases.append({"name": f"a real trace ({trace_id}) breaks no rule", "traces": path, "expect": []})
    mutations = Mutations(corpus, spans_of)
    uncovered = []
    for rule in rules:
        best: tuple[list[str], list[Span], str] | None = None
        for i in rule.fact.exceptions[:BASE_TRACES]:
            spans = _copy(spans_of(corpus.traces[i].trace_id))
            fired = _fired(program, spans)
            if rule.id in fired and (best is None or len(fired) < len(best[0])):
                best = (fired, spans, f"a real counterexample ({corpus.traces[i].trace_id})")
        if best is None:
            for i in _bases(rule, corpus, set(rule.fact.exceptions)):
                base = spans_of(corpus.traces[i].trace_id)
                for mutate in mutations.of(rule, base):
                    changed = mutate(base)
                    if changed is None:
                        continue
                    spans, how = changed
                    fired = _fired(program, spans)
                    if rule.id in fired and (best is None or len(fired) < len(best[0])):
                        best = (fired, spans, f"trace {corpus.traces[i].trace_id} {how}")
                if best is not None and len(best[0]) == 1:
                    break
        if best is None:
            uncovered.append(rule.id)
            continue
        fired, spans, how = best
        path = _fixture(tests_dir, fixtures, rule.id, spans, fixtures_out)
        cases.append({"name": f"{rule.id} fires: {how}", "traces": path, "expect": [{"rule": r} for r in fired]})
    return cases, uncovered, passing if isinstance(passing, str) else None


@dataclass
class TestsPlan:
    """What `--tests` writes (fixtures, then the test file), what it then removes, and lines for the user."""

    writes: list[NewFile] = field(default_factory=list)
    removes: list[Path] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    """Folders removed after `removes` if that left them empty (the fixture folder when no test is written)."""


def plan_tests(
    tests_dir: Path, rules_path: Path, rules_text: str, rules: list[Rule], traces: list[Trace], corpus: Corpus
) -> TestsPlan:
    """`<stem>_test.yaml` and its fixtures for the rules `rules_text` (to be written at `rules_path`), and the
    fixtures of an earlier run no case uses now; nothing is written, so that every file can be written whole
    before any takes its place.

    With no rule there is no test (`fluo test` loads none of no rules): the test file and fixtures of the
    last run are removed, as a regeneration removes those of rules gone.
    """
    analysis = analyze([(str(rules_path), rules_text)])
    if analysis.has_errors:  # a bug in discover: what it writes must check
        first = next(d for d in analysis.diagnostics if d.is_error)
        raise ValueError(f"the discovered rules do not check: {first.format()}")
    program = compile_program(analysis)
    stem = rules_path.stem
    test_path, folder = test_outputs(tests_dir, stem)
    problem = linked_output(tests_dir, stem)
    if problem is not None:
        raise OSError(errno.ELOOP, problem)
    plan = TestsPlan()
    before = _fixtures_used(test_path, tests_dir, folder)
    if not rules:  # `fluo test` cannot load a test of no rules: write none, and remove the last run's
        removed = test_path.is_file()
        plan.removes = [*sorted(before), test_path]
        plan.folders = [folder, folder.parent]
        gone = f" and {plural(len(before), 'fixture')}" if before else ""
        why = f"no test written into {tests_dir}: the output holds no rule, and a test needs rules"
        plan.lines.append(why + (f"; removed the last run's {test_path}{gone}" if removed else ""))
        return plan
    cases, uncovered, no_pass = build_cases(tests_dir, stem, rules, program, traces, corpus, plan.writes)
    doc: dict[str, Any] = {
        "description": f"Generated by `fluo discover --tests` for {rules_path.name}: each rule quiet on a real trace, "
        "and firing on a real counterexample or a minimally changed real trace.",
        "rules": [os.path.relpath(rules_path, tests_dir).replace(os.sep, "/")],
        "cases": cases,
    }
    text = review_yaml(doc, sort_keys=False, width=10_000)
    plan.writes.append(NewFile(test_path, text.encode("utf-8"), replace_link=True))
    note = f" ({len(uncovered)} rules without a violating case: {', '.join(uncovered)})" if uncovered else ""
    plan.removes = sorted(before - {real_path(tests_dir / c["traces"]) for c in cases})
    if plan.removes:
        note += f"; removed {plural(len(plan.removes), 'fixture')} of the last run no case uses now"
    plan.lines = [f"wrote {test_path} with {plural(len(cases), 'case')}{note}", *([no_pass] if no_pass else [])]
    return plan


def _fixtures_used(test_path: Path, tests_dir: Path, folder: Path) -> set[Path]:
    """The fixtures, in `folder`, that the test file an earlier run wrote names: the ones a new run may remove.
    Nothing else there is touched; nor is anything when that file is missing or unreadable."""
    try:
        doc = yaml.safe_load(test_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return set()
    cases = doc.get("cases") if isinstance(doc, dict) else None
    used: set[Path] = set()
    for case in cases if isinstance(cases, list) else ():
        traces = case.get("traces") if isinstance(case, dict) else None
        for name in [traces] if isinstance(traces, str) else traces if isinstance(traces, list) else ():
            if isinstance(name, str):
                path = tests_dir / name
                # a file of ours: right in the folder as named (no `..`), not a link
                if path.parent == folder and path.suffix == ".json" and path.is_file() and not path.is_symlink():
                    used.add(real_path(path))
    return used
