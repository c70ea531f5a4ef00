"""`--update`: write the observed signals back as a case's `expect:`, keeping the rest of the file as it was.

The file's text is edited, not re-emitted: the `expect:` of each updated case is
replaced (one flow mapping per expected signal, indented as the case's own lists
are), or added after the case's last line when it had none. Everything else is
the original text: comments, blank lines, quoting, flow lists, line endings.
Positions come from libyaml's events, the parser `fluo test` reads files with, and
the result is read back to check that only those expectations changed. libyaml
drops comments, so those inside a replaced list are found in its text, between
its entries' positions, and written beside the new entries their entries stay as
(`_comments_in`, `_placed`).
"""

from __future__ import annotations

import bisect
import errno
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fluo_lang.files import write_replacing
from fluo_lang.values import escape_json_text

from .document import LINE_BREAK, YAML_LINE_BREAK, Lines, YamlError, load, read_exponent_floats, yaml_problem
from .runner import FAILED, PASSED, CaseResult
from .spec import Expectation, source_digest

_MERGE = "tag:yaml.org,2002:merge"
_Slot = tuple[int, str, int]


def needs_update(c: CaseResult) -> bool:
    """Failed cases, and cases written without `expect:` that ran cleanly."""
    return c.status == FAILED or (c.status == PASSED and c.case.expect is None)


def expectations_of(c: CaseResult) -> list[dict[str, Any]]:
    """The signals of a case as the `expect:` entries that state them, after its `count: 0` entries that held
    (`held_guards`): no signal is like them, so they still hold next to the new entries."""
    return _written_for(c)[0]


def _written_for(c: CaseResult) -> tuple[list[dict[str, Any]], list[int | None] | None]:
    """`expectations_of(c)`, and for each entry of the case's old `expect:` list, the new entry it stays as: a
    held guard as itself, an entry that matched signals as the first new entry stating one of them; None for
    an entry that is gone (it matched nothing, or it is a guard a signal broke). None for the whole when the
    old entries are not known one by one."""
    new, group_of = _grouped(c.signals, c.case.labels, pin_traces=c.traces > 1)
    guards = held_guards(c)
    rows = c.match.rows if c.match is not None else []
    at = {id(s): len(guards) + g for s, g in zip(c.signals, group_of, strict=True)}
    kept = iter(range(len(guards)))
    stays: list[int | None] = []
    for r in rows:
        if r.expectation.count == 0 and not r.forbidden:
            stays.append(next(kept))
        else:
            stays.append(min((at[id(s)] for s in r.signals if id(s) in at), default=None))
    entries = [*(e.to_json() for e in guards), *new]
    return entries, stays if c.case.expect is not None and len(rows) == len(c.case.expect) else None


def held_guards(c: CaseResult) -> list[Expectation]:
    """The case's `count: 0` entries that no signal broke, which `--update` keeps."""
    rows = c.match.rows if c.match is not None else []
    return [r.expectation for r in rows if r.expectation.count == 0 and not r.forbidden]


def broken_guards(c: CaseResult) -> list[Expectation]:
    """The case's `count: 0` entries a signal broke, which `--update` drops (and says so)."""
    rows = c.match.rows if c.match is not None else []
    return [r.expectation for r in rows if r.expectation.count == 0 and r.forbidden]


def expectations_from(
    signals: Sequence[dict[str, Any]], labels: Mapping[str, str] | None = None, *, pin_traces: bool = True
) -> list[dict[str, Any]]:
    """Signals (as `Signal.to_json()` gives them) as `expect:` entries, for `--update` and tools that write tests.

    Identical signals are grouped with a `count`, in order of first appearance. With `pin_traces`
    each entry names its trace: by its inline label (`labels` maps label to trace id) or its `trace_id`.
    """
    return _grouped(signals, labels, pin_traces=pin_traces)[0]


def _grouped(
    signals: Sequence[dict[str, Any]], labels: Mapping[str, str] | None, *, pin_traces: bool
) -> tuple[list[dict[str, Any]], list[int]]:
    """`expectations_from`, and the entry that states each signal (its index), signal by signal."""
    names = {v: k for k, v in (labels or {}).items()}
    groups: dict[str, dict[str, Any]] = {}
    index: dict[str, int] = {}
    group_of: list[int] = []
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
            groups[key], index[key] = entry, len(groups)
        group_of.append(index[key])
    order = ("rule", "trace", "trace_id", "count", "observed")
    return [{k: entry[k] for k in order if k in entry} for entry in groups.values()], group_of


def guard_notes(display: str, cases: Sequence[CaseResult]) -> list[str]:
    """What `--update` did with the `count: 0` entries of the cases it rewrote: kept those that held,
    dropped those a signal broke (that signal is expected now)."""
    out = []
    for c in cases:
        where = f"{display}::{c.case.name}"
        kept = held_guards(c)
        if kept:
            entries = "entry" if len(kept) == 1 else "entries"
            out.append(f"kept {len(kept)} `count: 0` {entries} that held in {where}")
        for e in broken_guards(c):
            entry = flow_yaml(e.to_json())
            out.append(f"dropped {entry} (line {e.line}) in {where}: a signal like it fired, and is expected now")
    return out


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A test file's new text, made (and its file found writable) before any file is written."""

    path: Path
    data: bytes
    cases: Sequence[CaseResult]
    gone: Mapping[int, Sequence[tuple[int, Sequence[int]]]] = field(default_factory=dict)
    """By case index: for each old `expect:` entry that is gone and had comments, its line and theirs (kept)."""


def comment_notes(display: str, plan: Rewrite) -> list[str]:
    """Where `--update` put the comments of the entries it dropped: where those entries stood."""
    out = []
    for c in plan.cases:
        for line, lines in plan.gone.get(c.case.index, ()):
            which = (
                f"comment on line {lines[0]}" if len(lines) == 1 else f"comments on lines {', '.join(map(str, lines))}"
            )
            out.append(
                f"kept the {which} of an entry that is gone (line {line}) where it stood in {display}::{c.case.name}"
            )
    return out


class ChangedSinceRun(ValueError):
    """The test file no longer holds the text the run read: its cases, rewritten by their place in the file,
    could be others now (one inserted above), so nothing is written to it."""

    def __init__(self) -> None:
        super().__init__("changed since the run read it; run again")


def plan_update(path: Path, cases: Sequence[CaseResult], read: bytes | None = None) -> Rewrite:
    """The text of `path` with the `expect:` of the given cases (all of `path`) rewritten; nothing is written.

    `read`: the `source_digest` of the text the run read, which the file must still hold.
    Raises OSError when the file cannot be read or written (it, or its folder for the new copy),
    ChangedSinceRun when it holds another text than `read`, YamlError when it no longer parses.
    """
    target = path.resolve()  # through a symlink: the file it names is rewritten, the link stays
    data = target.read_bytes()
    if read is not None and source_digest(data) != read:
        raise ChangedSinceRun
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"not UTF-8 text: {exc.reason}", 1) from exc
    written = {c.case.index: _written_for(c) for c in cases}
    writes = {i: entries for i, (entries, _) in written.items()}
    stays = {i: kept for i, (_, kept) in written.items() if kept is not None}
    try:
        text, gone = _rewrite(text, writes, stays)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = yaml_problem(exc, text, context=False)
        raise YamlError(f"invalid YAML: {problem}", Lines(text).line(mark) if mark else 1) from exc
    with target.open("r+b"):  # writable? (read-only, immutable): opening it so changes nothing
        pass
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"{os.strerror(errno.EACCES)} (folder {target.parent})")
    return Rewrite(target, text.encode("utf-8"), cases, gone)


def update_file(path: Path, cases: Sequence[CaseResult]) -> int:
    """Rewrite the `expect:` of the given cases (all of `path`); returns how many were written."""
    plan = plan_update(path, cases)
    write_replacing(plan.path, plan.data)
    return len(cases)


def rewrite(text: str, writes: Mapping[int, Any], stays: Mapping[int, Sequence[int | None]] | None = None) -> str:
    """`text` with the `expect:` of case `i` set to `writes[i]` for each `i`, and no other change to what it means.

    A case that took its `expect:` from an updated case through a merge key (`<<: *base`)
    gets its own `expect:` with the value it had, so that it does not change with the update.
    `stays[i]` says, for each entry of case `i`'s old `expect:` list, which new entry it stays as (None: it is
    gone), so that its comments go with it (`_placed`); without it they are all kept at the top of the list.
    """
    return _rewrite(text, writes, stays or {})[0]


Gone = dict[int, list[tuple[int, list[int]]]]


def _rewrite(text: str, writes: Mapping[int, Any], stays: Mapping[int, Sequence[int | None]]) -> tuple[str, Gone]:
    """`rewrite`, and for each case, the old entries that are gone whose comments were kept: their lines."""
    bom = "\ufeff" if text.startswith("\ufeff") else ""  # libyaml's positions do not count it
    text = text.removeprefix(bom)
    before = load(text)
    edits, gone = _plan(_Source(text), writes, stays)
    out = _apply(text, edits)
    after = load(out)
    inherited = {
        i: case["expect"]
        for i, (case, now) in enumerate(zip(before["cases"], after["cases"], strict=True))
        if i not in writes
        and isinstance(case, dict)
        and "expect" in case
        and not _same(now.get("expect"), case["expect"])
    }
    if inherited:
        writes = {**inherited, **writes}
        edits, gone = _plan(_Source(text), writes, stays)
        out = _apply(text, edits)
        after = load(out)
    _check(before, after, writes)
    return bom + out, gone


@dataclass(frozen=True, slots=True, order=True)
class _Edit:
    """Replace `text[start:end]` by `new`."""

    start: int
    end: int
    new: str


@dataclass(slots=True)
class _Mark:
    """Where an anchor is set (`&name`, on `node`) or an alias written (`*name`, standing for `node`)."""

    anchor: str
    alias: bool
    start: int
    end: int
    node: yaml.Node


def _slot(parent: yaml.Node, index: Any) -> _Slot:
    """A place in a collection: a sequence's item number or a mapping's key node."""
    if isinstance(index, int):
        return (id(parent), "item", index)
    return (id(parent), "value", id(index))


class _Composer:
    """Nodes from libyaml's events, noting where each anchor is set and each alias written.

    PyYAML's composer makes an alias the anchor's node, whose marks are those of the
    anchor; `alias_slots` keeps where each alias stands, by its place in its parent.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.events: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
        self.anchors: dict[str, yaml.Node] = {}
        self.marks: list[_Mark] = []
        self.alias_slots: dict[_Slot, _Mark] = {}
        self.tags: dict[tuple[Any, ...], str] = {}

    def document(self) -> yaml.Node | None:
        events = self.events
        try:
            events.get_event()
            if events.check_event(yaml.StreamEndEvent):
                return None
            events.get_event()
            root = self.node(None, None)
            events.get_event()
            if not events.check_event(yaml.StreamEndEvent):
                raise YamlError("expected a single document", 1)
            return root
        finally:
            events.dispose()

    def node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.events.get_event()
        kind = type(event)  # by type, so `event` stays Any: libyaml's marks are not the class the stubs name
        if kind is yaml.AliasEvent:
            target = self.anchors.get(event.anchor)
            if target is None:
                raise YamlError(f"found undefined alias {event.anchor!r}", Lines(self.text).line(event.start_mark))
            mark = _Mark(event.anchor, True, event.start_mark.index, event.end_mark.index, target)
            self.marks.append(mark)
            if parent is not None:
                self.alias_slots[_slot(parent, index)] = mark
            return target
        node: yaml.Node
        if kind is yaml.ScalarEvent:
            tag = self.tag(event, yaml.ScalarNode)
            node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        elif kind is yaml.SequenceStartEvent:
            node = yaml.SequenceNode(self.tag(event, yaml.SequenceNode), [], event.start_mark, None, event.flow_style)
        else:
            node = yaml.MappingNode(self.tag(event, yaml.MappingNode), [], event.start_mark, None, event.flow_style)
        if event.anchor is not None:
            self.anchors[event.anchor] = node
            self.marks.append(_Mark(event.anchor, False, event.start_mark.index, event.end_mark.index, node))
        if isinstance(node, yaml.SequenceNode):
            while not self.events.check_event(yaml.SequenceEndEvent):
                node.value.append(self.node(node, len(node.value)))
            node.end_mark = self.events.get_event().end_mark
        elif isinstance(node, yaml.MappingNode):
            while not self.events.check_event(yaml.MappingEndEvent):
                key = self.node(None, None)
                node.value.append((key, self.node(node, key)))
            node.end_mark = self.events.get_event().end_mark
        return node

    def tag(self, event: Any, kind: type[yaml.Node]) -> str:
        if event.tag not in (None, "!"):
            return str(event.tag)
        key = (kind, event.value if kind is yaml.ScalarNode else None, event.implicit)
        tag = self.tags.get(key)
        if tag is None:
            tag = self.tags[key] = str(self.events.resolve(*key))
        return tag


class _Source:
    """A test file's text, composed, with where each value is written."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.breaks: list[int] | None = None
        composer = _Composer(text)
        root = composer.document()
        self.marks = sorted(composer.marks, key=lambda m: m.start)
        self.aliases = composer.alias_slots
        if not isinstance(root, yaml.MappingNode):
            raise YamlError("a test file is a mapping with `cases:`", 1)
        self.root = root
        cases = next(((k, v) for k, v in root.value if k.value == "cases"), None)
        if cases is None or not isinstance(cases[1], yaml.SequenceNode):
            raise YamlError("a test file has a list of `cases:`", 1)
        self.cases_key, self.cases = cases

    def span(self, parent: yaml.Node, index: Any, node: yaml.Node) -> tuple[int, int]:
        """Where a value is written: its alias, or the node from its anchor or tag to its last character."""
        alias = self.aliases.get(_slot(parent, index))
        if alias is not None:
            return alias.start, alias.end
        return node.start_mark.index, self.end(node)

    def end(self, node: yaml.Node) -> int:
        if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
            key, value = node.value[-1]
            return self.span(node, key, value)[1]
        if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
            return self.span(node, len(node.value) - 1, node.value[-1])[1]
        end = node.end_mark.index  # a block scalar's end is past its trailing blank lines
        while end > node.start_mark.index and self.text[end - 1] in " \t\r\n":
            end -= 1
        return end

    def is_block(self, parent: yaml.Node, index: Any, node: yaml.Node) -> bool:
        """A block list or mapping, written on the lines below its key."""
        return (
            isinstance(node, yaml.CollectionNode) and not node.flow_style and _slot(parent, index) not in self.aliases
        )

    def is_block_scalar(self, parent: yaml.Node, index: Any, node: yaml.Node) -> bool:
        """A `|` or `>` text, which takes the lines after it up to the next key (blank ones too, with `|+`)."""
        return (
            isinstance(node, yaml.ScalarNode) and node.style in ("|", ">") and _slot(parent, index) not in self.aliases
        )

    def line_start(self, i: int) -> int:
        return self.text.rfind("\n", 0, i) + 1

    def line_number(self, i: int) -> int:
        """The 1-based line holding `i`."""
        if self.breaks is None:
            self.breaks = [m.end() - 1 for m in LINE_BREAK.finditer(self.text)]
        return bisect.bisect_left(self.breaks, i) + 1

    def line_end(self, i: int) -> int:
        """Where the line holding `i` ends, before its line break."""
        end = self.text.find("\n", i)
        if end < 0:
            return len(self.text)
        return end - 1 if end > i and self.text[end - 1] == "\r" else end

    def indented_comment(self, i: int, indent: int) -> bool:
        """Whether the line starting at `i` is a comment indented at least `indent` columns."""
        line = self.text[i : self.line_end(i)]
        return line.lstrip(" ").startswith("#") and len(line) - len(line.lstrip(" ")) >= indent

    def next_line(self, i: int) -> int:
        """Where the line after the one holding `i` starts (the end of the text on the last line)."""
        end = self.text.find("\n", i)
        return len(self.text) if end < 0 else end + 1


def _plan(
    src: _Source, writes: Mapping[int, Any], stays: Mapping[int, Sequence[int | None]]
) -> tuple[list[_Edit], Gone]:
    edits, gone = [], {}
    for i, value in writes.items():
        edit, dropped = _expect_edit(src, src.cases.value[i], value, stays.get(i))
        edits.append(edit)
        if dropped:
            gone[i] = dropped
    return sorted(edits + _moved_anchors(src, edits)), gone


def _expect_edit(
    src: _Source, case: yaml.Node, value: Any, stays: Sequence[int | None] | None
) -> tuple[_Edit, list[tuple[int, list[int]]]]:
    """The edit that sets the `expect:` of `case`, a mapping, to `value`; and the old entries that are gone
    whose comments it keeps, with their lines (`_placed`)."""
    if not isinstance(case, yaml.MappingNode) or not case.value:
        raise YamlError("a case is a mapping", src.line_number(case.start_mark.index))
    text, nl = src.text, src.newline
    own = next(((k, v) for k, v in case.value if k.tag != _MERGE and k.value == "expect"), None)
    if case.flow_style:
        flow = flow_yaml(value)
        if own is not None:
            return _Edit(*src.span(case, *own), flow), []
        last = src.span(case, *case.value[-1])[1]
        return _Edit(last, last, f", expect: {flow}"), []
    indent = case.value[0][0].start_mark.column
    dash = " " * (indent + _sequence_offset(src, case, own))
    new = value if isinstance(value, list) else []
    comments, trailing = _comments_in(src, case, *own) if own is not None else ([], [])
    place = _placed(comments, len(new), stays)
    place.tail += trailing
    items = "".join(
        "".join(f"{dash}{c}{nl}" for c in place.above.get(k, ()))
        + f"{dash}- {flow_yaml(item)}{'  ' + place.after[k] if k in place.after else ''}{nl}"
        for k, item in enumerate(new)
    )
    inline = "" if items else f" {flow_yaml(value)}"
    if own is None:
        key, last = case.value[-1]
        at = src.line_start(key.start_mark.index)
        if not (src.is_block_scalar(case, key, last) and not text[at : key.start_mark.index].strip()):
            at = src.next_line(src.span(case, key, last)[1])
            while src.indented_comment(at, indent):  # a commented-out line of the case's last value
                at = src.next_line(at)
        lead = nl if at == len(text) and not text.endswith("\n") else ""
        return _Edit(at, at, f"{lead}{' ' * indent}expect:{inline}{nl}{items}"), []
    key, old = own
    colon = text.index(":", key.end_mark.index) + 1
    _, end = src.span(case, key, old)
    if src.is_block(case, key, old):
        rest = text[colon : src.line_end(colon)]  # an anchor or tag, and a comment
        found = re.search(r"\s+#", rest)
        comment = rest[found.start() :] if found else ""
    else:
        comment = text[end : src.line_end(end)]
        comment = comment if comment.strip() else ""
    start = src.line_start(key.start_mark.index)
    top, tail = ("".join(f"{dash}{c}{nl}" for c in lines) for lines in (place.top, place.tail))
    new_text = f"{text[start:colon]}{inline}{comment}{nl}{top}{items}{tail}"
    return _Edit(start, src.next_line(end), new_text), place.gone


def _scalars(node: yaml.Node, seen: set[int] | None = None) -> list[yaml.ScalarNode]:
    seen = set() if seen is None else seen
    if id(node) in seen:
        return []
    seen.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        return [node]
    children = node.value if isinstance(node, yaml.SequenceNode) else [x for kv in node.value for x in kv]
    return [s for child in children for s in _scalars(child, seen)]


@dataclass(slots=True)
class _Comments:
    """The comments of one entry of an old `expect:` list: those on the lines above it (below the entry
    before it) and inside it, in order, and the one after it on its last line; `line`: the entry's, `lines`:
    theirs."""

    line: int
    above: list[str] = field(default_factory=list)
    after: str | None = None
    lines: list[int] = field(default_factory=list)


_COMMENT = re.compile(r"(?<![^ \t\n])#[^\r\n]*")
"""A `#` at a line's start or after a space or tab, to the line's end: a comment unless it is inside a scalar."""


def _comments_in(src: _Source, case: yaml.Node, key: yaml.Node, old: yaml.Node) -> tuple[list[_Comments], list[str]]:
    """The comments of an `expect:` list, entry by entry, and those after its last entry's line that the edit
    replaces (of a flow list written on several lines: those above its `]`). Not the one on the `expect:` line,
    after a flow list's `]`, nor those after a block list's last entry's line: they stay as written."""
    block = src.is_block(case, key, old)
    if not (isinstance(old, yaml.SequenceNode) and (block or _slot(case, key) not in src.aliases) and old.value):
        return [], []
    inside = [(n.start_mark.index, n.end_mark.index) for n in _scalars(old)]  # `"a #b"` is text
    spans = [src.span(old, i, item) for i, item in enumerate(old.value)]
    starts = [a for a, _ in spans]
    out = [_Comments(src.line_number(a)) for a in starts]
    trailing: list[str] = []
    if block:
        first, last = src.next_line(key.end_mark.index), src.line_end(src.end(old))
    else:
        first, last = old.start_mark.index, old.end_mark.index
    for c in _COMMENT.finditer(src.text, first, last):
        at = c.start()
        if any(a <= at < b for a, b in inside):
            continue
        k = bisect.bisect_right(starts, at)  # the entries before it
        text = c.group().rstrip()
        if k and at <= src.line_end(spans[k - 1][1]):  # inside the entry before it, or after it on its last line
            entry = out[k - 1]
            if at >= spans[k - 1][1] and entry.after is None:
                entry.after = text
            else:
                entry.above.append(text)
        elif k == len(out):  # below the last entry's line, above a flow list's `]`
            trailing.append(text)
            continue
        else:  # on a line of its own above an entry
            entry = out[k]
            entry.above.append(text)
        entry.lines.append(src.line_number(at))
    return out, trailing


@dataclass(slots=True)
class _Placed:
    """Where an updated `expect:` list's comments go: `above` and `after` a new entry (by index), at the `top`
    or at the end (`tail`) of the list; `gone`: the old entries dropped whose comments were kept, with their
    lines."""

    above: dict[int, list[str]] = field(default_factory=dict)
    after: dict[int, str] = field(default_factory=dict)
    top: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)
    gone: list[tuple[int, list[int]]] = field(default_factory=list)


def _placed(comments: Sequence[_Comments], new: int, stays: Sequence[int | None] | None) -> _Placed:
    """The comments of an old list's entries, each with the new entry it stays as (`stays`, of `new`): above it
    and after it as they were (when several stay as one, the first's comment after it is after it, the others'
    above it). Those of an entry that is gone stay where it stood: above the new entry of the next old entry
    that stays, or at the end of the list. Without `stays` (the old entries not known one by one) every
    comment is kept, in order, at the top."""
    out = _Placed()
    if stays is None or len(stays) != len(comments):
        out.top = [c for entry in comments for c in (*entry.above, *([entry.after] if entry.after else []))]
        return out
    pending: list[str] = []
    for entry, k in zip(comments, stays, strict=True):
        if k is not None and 0 <= k < new:
            out.above.setdefault(k, []).extend([*pending, *entry.above])
            pending = []
            if entry.after is not None and k in out.after:
                out.above[k].append(entry.after)
            elif entry.after is not None:
                out.after[k] = entry.after
        elif entry.lines:
            pending += [*entry.above, *([entry.after] if entry.after else [])]
            out.gone.append((entry.line, entry.lines))
    out.tail = pending
    return out


def _sequence_offset(src: _Source, case: yaml.MappingNode, own: tuple[yaml.Node, yaml.Node] | None) -> int:
    """How far this file puts a list's `-` past its key: as the old `expect:`, the case's lists, or `cases:` do."""
    pairs = [own] if own is not None else []
    pairs += [*case.value, (src.cases_key, src.cases)]
    for key, value in pairs:
        parent = src.root if value is src.cases else case
        if (
            isinstance(value, yaml.SequenceNode)
            and src.is_block(parent, key, value)
            and value.start_mark.line > key.start_mark.line
        ):
            return max(0, value.start_mark.column - key.start_mark.column)
    return 2


def _moved_anchors(src: _Source, edits: Sequence[_Edit]) -> list[_Edit]:
    """An anchor set in replaced text moves, with its old value, to its first alias left standing.

    So a case that shares another's `expect:` through an alias keeps what it had.
    """

    def replaced(i: int) -> bool:
        return any(e.start <= i < e.end for e in edits)

    moves: list[tuple[_Mark, _Mark]] = []
    for n, mark in enumerate(src.marks):
        if mark.alias or not replaced(mark.start):
            continue
        for later in src.marks[n + 1 :]:
            if later.anchor != mark.anchor or (later.alias and replaced(later.start)):
                continue
            if later.alias:
                moves.append((mark, later))
            break
    # values are built only after every position is read: building a mapping with `<<` rewrites its node
    written = [_written(src, mark) for mark, _ in moves]
    return [
        _Edit(alias.start, alias.end, f"&{mark.anchor} {w}") for (mark, alias), w in zip(moves, written, strict=True)
    ]


def _written(src: _Source, mark: _Mark) -> str:
    """An anchored value as one line: as written when it is one line with no anchor or alias inside."""
    end = src.end(mark.node)
    text = src.text[mark.start : end]
    own = re.match(rf"&{re.escape(mark.anchor)}\s+", text)
    inside = any(mark.start < m.start < end for m in src.marks)
    block = isinstance(mark.node, yaml.CollectionNode) and not mark.node.flow_style
    if own and not inside and not block and "\n" not in text:
        return text[own.end() :]
    return flow_yaml(yaml.SafeLoader("").construct_object(mark.node, deep=True))


def _apply(text: str, edits: Sequence[_Edit]) -> str:
    parts, at = [], 0
    for e in edits:
        parts += [text[at : e.start], e.new]
        at = e.end
    return "".join([*parts, text[at:]])


class ReviewDumper(yaml.SafeDumper):
    """YAML FLUO writes into a file read for review (`--update`, `fluo discover --tests`): text holding a line
    break, a bidirectional control or a C1 control double-quoted, which `review_yaml` then escapes."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # in another style PyYAML writes a line break as it is: a quoted scalar folds it (U+0085 to a space), and
    # editors count U+0085, U+2028 and U+2029 as no line; double quotes escape them (`\\N`, `\\L`, `\\P`)
    style = '"' if YAML_LINE_BREAK.search(data) or escape_json_text(data) != data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def review_yaml(value: Any, **options: Any) -> str:
    """`value` dumped by `ReviewDumper` with `options`, every character `escape_json_text` escapes written as its
    `\\uXXXX` escape: PyYAML (allow_unicode) writes a U+202E raw even in double quotes, and in a test file under
    review it would turn the rest of the line around ("Trojan Source"). Such a character is only in a
    double-quoted scalar, where the escape means it."""
    dumper = options.pop("Dumper", ReviewDumper)
    return escape_json_text(yaml.dump(value, Dumper=dumper, allow_unicode=True, **options))


class _Dumper(ReviewDumper):
    """One-line flow YAML: a value used twice written twice."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_float(dumper: yaml.SafeDumper, data: float) -> yaml.ScalarNode:
    """As a signal writes it, the shortest text that reads back as the same float (`4e-07`, where PyYAML writes
    `4.0e-07`): the loader reads an exponent without a dot as a float (`read_exponent_floats`)."""
    if not math.isfinite(data):
        return dumper.represent_float(data)  # `.inf`, `-.inf`, `.nan`
    return dumper.represent_scalar("tag:yaml.org,2002:float", repr(data))


read_exponent_floats(_Dumper)  # so text the loader reads as a number (`1e5`) is quoted
ReviewDumper.add_representer(str, _represent_str)
# and text of a class of its own: a bytes attribute reads as its hex text, a `HexBytes`, which PyYAML's safe
# dumper, matching classes exactly, refused ("cannot represent an object")
ReviewDumper.add_multi_representer(str, _represent_str)
_Dumper.add_representer(float, _represent_float)
_Dumper.add_multi_representer(dict, yaml.SafeDumper.represent_dict)  # LineDict and LineList, as `load` reads them
_Dumper.add_multi_representer(list, yaml.SafeDumper.represent_list)


def flow_yaml(value: Any) -> str:
    """A value as one line of flow YAML, read back as it was by PyYAML."""
    text = review_yaml([value], Dumper=_Dumper, default_flow_style=True, sort_keys=False, width=math.inf)
    return text.strip()[1:-1]


def _same(a: Any, b: Any) -> bool:
    """Equal values, counting `.nan` equal to itself."""
    if a == b:
        return True
    if isinstance(a, float) and isinstance(b, float):
        return math.isnan(a) and math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    return False


def _check(before: Any, after: Any, writes: Mapping[int, Any]) -> None:
    """The rewritten file means the old one with the new expectations, or `--update` has a bug."""
    old, new = list(before["cases"]), list(after["cases"])
    for i, value in writes.items():
        old[i] = {**old[i], "expect": value}
    for i, case in enumerate(new):
        if (
            i not in writes and isinstance(case, dict) and "expect" in case and "expect" not in old[i]
        ):  # merged from an updated case
            new[i] = {k: v for k, v in case.items() if k != "expect"}
    if not _same({**before, "cases": old}, {**after, "cases": new}):
        raise RuntimeError("--update would change more than the expectations of the cases it updates")
