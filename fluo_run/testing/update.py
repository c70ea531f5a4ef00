"""`--update`: write the observed signals back as a case's `expect:`, keeping the rest of the file as it was.

The file goes through ruamel.yaml's round-trip mode, so comments, key order,
quoting and the other cases are kept; only the `expect:` of each updated case
is replaced, one flow mapping per expected signal.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

from .runner import FAILED, PASSED, CaseResult


def needs_update(c: CaseResult) -> bool:
    """Failed cases, and cases written without `expect:` that ran cleanly."""
    return c.status == FAILED or (c.status == PASSED and c.case.expect is None)


def expectations_of(c: CaseResult) -> list[dict[str, Any]]:
    """The signals of a case as the `expect:` entries that state them."""
    return expectations_from(c.signals, c.case.labels, pin_traces=c.traces > 1)


def expectations_from(
    signals: Sequence[dict[str, Any]], labels: Mapping[str, str] | None = None, *, pin_traces: bool = True
) -> list[dict[str, Any]]:
    """Signals (as `Signal.to_json()` gives them) as `expect:` entries, for `--update` and tools that write tests.

    Identical signals are grouped with a `count`, in order of first appearance. With `pin_traces`
    each entry names its trace: by its inline label (`labels` maps label to trace id) or its `trace_id`.
    """
    names = {v: k for k, v in (labels or {}).items()}
    groups: dict[str, dict[str, Any]] = {}
    for s in signals:
        entry: dict[str, Any] = {"rule": s["rule"]}
        trace_id = s.get("trace_id")
        if trace_id and pin_traces:
            label = names.get(trace_id)
            if label:
                entry["trace"] = label
            else:
                entry["trace_id"] = trace_id
        if s.get("observed"):
            entry["observed"] = s["observed"]
        key = json.dumps(entry, sort_keys=True)
        if key in groups:
            groups[key]["count"] = groups[key].get("count", 1) + 1
        else:
            groups[key] = entry
    order = ("rule", "trace", "trace_id", "count", "observed")
    return [{k: entry[k] for k in order if k in entry} for entry in groups.values()]


def _flow(value: Any) -> Any:
    if isinstance(value, dict):
        m = CommentedMap((k, _flow(v)) for k, v in value.items())
        m.fa.set_flow_style()
        return m
    if isinstance(value, list):
        seq = CommentedSeq(_flow(v) for v in value)
        seq.fa.set_flow_style()
        return seq
    return value


def _trailing_lines(old: Any) -> str:
    """Blank lines and comments after an old block-style `expect:`, which ruamel keeps with that value."""
    if not isinstance(old, CommentedSeq):
        return ""
    text = ""
    last = old.ca.items.get(len(old) - 1)
    if last and last[0] is not None:
        text += str(last[0].value).partition("\n")[2]
    for token in getattr(old.ca, "end", None) or []:
        value = str(token.value)
        text += " " * token.column + value if value.startswith("#") else value
    return text


def update_file(path: Path, cases: Sequence[CaseResult]) -> int:
    """Rewrite the `expect:` of the given cases (all of `path`); returns how many were written."""
    text = path.read_text(encoding="utf-8")
    _, indent, block_seq_indent = load_yaml_guess_indent(text)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 120
    yaml.indent(mapping=2, sequence=indent or 2, offset=block_seq_indent or 0)
    doc = yaml.load(text)
    written = 0
    for c in cases:
        node = doc["cases"][c.case.index]
        trailing = _trailing_lines(node.get("expect"))
        expect = CommentedSeq(_flow(e) for e in expectations_of(c))
        if not expect:
            expect.fa.set_flow_style()
        node["expect"] = expect
        if trailing:
            token = CommentToken("\n" + trailing, CommentMark(0), None)
            if expect:
                expect.ca.items[len(expect) - 1] = [token, None]
            else:
                node.ca.items["expect"] = [None, None, token, None]
        written += 1
    out = io.StringIO()
    yaml.dump(doc, out)
    text = out.getvalue()
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return written
