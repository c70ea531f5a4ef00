"""Rule test files (`*_test.yaml`, `*.fluotest.yaml`) as the editor sees them.

What the server needs of a test file is where it names things: the rule files
(`rules:`, files or folders, by default the `.fluo` file with the test file's stem),
the trace fixtures of each case (`traces:`), and the rule ids it names (`expect: - rule:`
and `only:`),
each with its source range. The file's meaning is `fluo test`'s business; this
module only finds those names, so the editor can check them and link them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fluo_run.testing.document import MAX_DEPTH, TOO_MANY_NODES, node_past_limit, yaml_problem
from fluo_run.testing.spec import TEST_SUFFIXES


def is_test_file(path: str) -> bool:
    """Whether the file is named as a rule test; whether it is FLUO's, not another tool's, is `is_rule_test`."""
    return path.endswith(TEST_SUFFIXES)


def default_rules_file(path: Path) -> str:
    """`auth_test.yaml` and `auth.fluotest.yaml` test `auth.fluo`."""
    name = path.name
    for suffix in TEST_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)] + ".fluo"
    return path.stem + ".fluo"


@dataclass(frozen=True, slots=True)
class Name:
    """A value the test file names, with its 0-based [start, end) offsets in the file."""

    value: str
    start: int
    end: int

    def contains(self, offset: int) -> bool:
        return self.start <= offset <= self.end


@dataclass
class TestFile:
    path: Path
    rules: list[Name] = field(default_factory=list)  # rule files or folders; empty: the default file
    traces: list[Name] = field(default_factory=list)
    rule_ids: list[Name] = field(default_factory=list)
    error: tuple[str, int, int] | None = None  # a YAML problem: message, start, end

    @property
    def folder(self) -> Path:
        return self.path.parent

    def rule_paths(self) -> list[tuple[Path, Name | None]]:
        """The rule files and folders this test file loads, with where it names each (None for the default)."""
        if not self.rules:
            return [(self.folder / default_rules_file(self.path), None)]
        return [(self.folder / n.value, n) for n in self.rules]


def _deeper_than(root: yaml.Node | None, limit: int) -> yaml.Node | None:
    """The first list or mapping nested more than `limit` levels deep, walked without recursion."""
    stack: list[tuple[yaml.Node, int]] = [(root, 1)] if root is not None else []
    seen: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, yaml.CollectionNode) or id(node) in seen:
            continue
        if depth > limit:
            return node
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
        else:
            stack.extend((child, depth + 1) for child in node.value)
    return None


_FAST: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)
_CACHE_SIZE = 64
_cache: OrderedDict[tuple[Path, str], TestFile] = OrderedDict()


def _compose(text: str) -> yaml.Node | None:
    """`yaml.compose` with libyaml (as `fluo test` reads test files), and with PyYAML's own composer where libyaml
    fails (its error messages and positions are the ones the editor reports) or counts offsets differently
    (libyaml's marks skip a byte order mark)."""
    if _FAST is not None and "\ufeff" not in text:
        try:
            return yaml.compose(text, Loader=_FAST)
        except yaml.MarkedYAMLError as exc:
            if "nesting depth" in str(exc.problem):  # PyYAML 6.0.4's bound, which `fluo test` reports: PyYAML's
                raise  # own composer would recurse past Python's limit instead
        except Exception:  # read again below, which raises (or not) what the editor reports
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def read_test_file(path: Path, text: str) -> TestFile:
    """The names a test file's text holds; YAML it cannot read gives `error` instead, never an exception.

    Cached by path and text: a test file is read again whenever a rule file it loads changes.
    The result is shared, so callers must not change it.
    """
    key = (path, text)
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit
    out = _read(path, text)
    _cache[key] = out
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return out


def _read(path: Path, text: str) -> TestFile:
    out = TestFile(path)
    past = node_past_limit(text)
    if past is not None:  # as `fluo test` refuses it, before composing what would take gigabytes
        at = min(past[1], len(text))
        out.error = (TOO_MANY_NODES, at, at + 1)
        return out
    try:
        root = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = mark.index if mark is not None else 0
        out.error = (f"not valid YAML: {yaml_problem(exc, text, context=False)}", at, at + 1)
        return out
    except yaml.reader.ReaderError as exc:  # a character YAML forbids (a control character, NUL)
        at = min(max(exc.position, 0), len(text))
        out.error = (f"not valid YAML: unacceptable character #x{exc.character:04x}: {exc.reason}", at, at + 1)
        return out
    except (yaml.YAMLError, RecursionError) as exc:
        problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
        out.error = (f"not valid YAML: {problem}", 0, len(text.split("\n", 1)[0]))
        return out
    deep = _deeper_than(root, MAX_DEPTH)
    if deep is not None:  # as `fluo test` refuses it (PyYAML's composer reads far deeper)
        at = deep.start_mark.index
        out.error = (f"not valid YAML: nested too deeply (more than {MAX_DEPTH} levels)", at, at + 1)
        return out
    if not isinstance(root, yaml.MappingNode):
        return out
    top = _mapping(root)
    out.rules = _strings(top.get("rules"))
    cases = top.get("cases")
    for case in cases.value if isinstance(cases, yaml.SequenceNode) else []:
        if not isinstance(case, yaml.MappingNode):
            continue
        fields = _mapping(case)
        out.traces.extend(_strings(fields.get("traces")))
        out.rule_ids.extend(_strings(fields.get("only")))
        expect = fields.get("expect")
        for item in expect.value if isinstance(expect, yaml.SequenceNode) else []:
            if isinstance(item, yaml.MappingNode):
                out.rule_ids.extend(_strings(_mapping(item).get("rule")))
            else:  # a bare id is short for {rule: ID}
                out.rule_ids.extend(_strings(item))
    return out


def _mapping(node: yaml.MappingNode) -> dict[str, Any]:
    return {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _strings(node: Any) -> list[Name]:
    """A scalar, or each scalar of a sequence, with its range (quotes excluded)."""
    nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out = []
    for n in nodes:
        if isinstance(n, yaml.ScalarNode) and isinstance(n.value, str) and n.value:
            start, end = n.start_mark.index, n.end_mark.index
            if n.style in ("'", '"'):
                start, end = start + 1, end - 1
            out.append(Name(n.value, start, end))
    return out
