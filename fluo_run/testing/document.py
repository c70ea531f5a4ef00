"""YAML read into plain values that remember their 1-based line numbers.

Mappings become `LineDict` and sequences `LineList`: ordinary dicts and lists
(so code that takes `list[dict]` takes them) that also know the line of
themselves, of each key and of each item. Parsing uses libyaml's composer when
it is there, so a thousand cases load in milliseconds.
"""

from __future__ import annotations

import bisect
import re
import sys
from typing import Any

import yaml

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_BINARY = "tag:yaml.org,2002:binary"
_MAX_CACHED_TAGS = 100_000
MAX_DEPTH = 200
"""How deeply a test file may nest lists and mappings; deeper is `invalid YAML: nested too deeply`.

Far past what a test needs, and well within what Python code walking the values
(and PyYAML's pure-Python composer, as the editor reads test files) can recurse through.
"""
_TOO_DEEP = f"invalid YAML: nested too deeply (more than {MAX_DEPTH} levels)"
MAX_ALIASED = 300_000
"""How many values aliases (`*name`) may bring into a test file, counting each list item, mapping value
and scalar once per time it appears once expanded.

A file's own values are bounded by its size; an alias repeats a value without text, so nested aliases
(`&b [*a, *a, ...]`, `&c [*b, *b, ...]`) can make a kilobyte stand for billions of values, which anything
walking the values (comparisons, reports) would visit. Far past what sharing spans or expectations needs.
"""
_TOO_MANY = f"invalid test file: aliases expand to more than {MAX_ALIASED:,} values"
_ENDLESS = "invalid YAML: an alias inside the value it names, which makes it endless"
MAX_NODES = 1_000_000
"""How many values (scalars, lists and mappings, keys included) a test file may write out; more is refused,
counted before the file is composed, at the line of the first value past the limit.

Composing costs some 300 bytes per value, so the byte limit alone let a 16 MiB flow list of 8 million `a`s
take 2.7 GB; a million values is some 100,000 inline spans. Aliases are counted by `MAX_ALIASED` instead.
"""
_NODES_PER_CHARACTER = 4
"""More values than a text of n characters can write (`{[?],}` writes 5 in 6): a text of at most
`MAX_NODES / 4` characters is not counted, so files of a usual size are composed without the extra pass."""


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """libyaml's safe loader, resolving the implicit tag of each distinct plain scalar once.

    Test files repeat the same names, services and durations thousands of times;
    resolution (a regex per scalar, in Python) was most of the time spent loading them.
    """

    _tags: dict[tuple[str, Any], str] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is not yaml.ScalarNode:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = self._tags.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(self._tags) < _MAX_CACHED_TAGS:
                self._tags[key] = tag
        return tag


def read_exponent_floats(cls: type[yaml.resolver.BaseResolver]) -> None:
    """Make `cls` read a number with an exponent (`4e-07`, `1.5E3`) as a float, as YAML 1.2 and JSON do.

    YAML 1.1, which PyYAML follows, reads such a number as text (a signal's `observed` writes
    one). The loader and `--update`'s writer both take it, so that the writer quotes text
    the loader would read as a number.
    """
    cls.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
        list("-+0123456789."),
    )


read_exponent_floats(_Loader)


class YamlError(Exception):
    """A YAML text that does not parse, or repeats a key; `line` is 1-based.

    `code` is `yaml`, or `test-file` for YAML that parses but is too large once its aliases are
    expanded (the language server finds `yaml` problems itself, the others through `fluo test`'s reader).
    """

    def __init__(self, message: str, line: int, code: str = "yaml") -> None:
        super().__init__(message)
        self.line = line
        self.code = code


class LineDict(dict[str, Any]):
    """A mapping that knows the line it starts on, the line of each key, and the text of each plain
    value YAML read as something else (`0000000000000010` is the octal 8, `00000000000001e5` a float)."""

    line: int
    key_lines: dict[str, int]
    written: dict[str, str]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    def text_of(self, key: str) -> str | None:
        """The value of `key` as written, when it is a plain scalar YAML did not read as text."""
        return self.written.get(key)


class LineList(list[Any]):
    """A sequence that knows the line it starts on, the line of each item, and the text of each plain item
    YAML read as something else (`[on, off]` holds True and False)."""

    line: int
    item_lines: list[int]
    written: dict[int, str]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line

    def text_of(self, index: int) -> str | None:
        """The item at `index` as written, when it is a plain scalar YAML did not read as text."""
        return self.written.get(index)


def not_text(value: Any, written: str | None, key: str | None = None) -> str | None:
    """Why a value that should be text is not: YAML 1.1 read the plain scalar `written` (`on`, `yes`, `404`,
    `~`) as a boolean, a number or null, and quotes keep it text; None for a value that is no such scalar.
    `key` is the mapping key it is the value of (`name: yes`), None for a list item."""
    if isinstance(value, bool):
        what = "a boolean"
    elif isinstance(value, int | float):
        what = "a number"
    elif value is None and written:  # `rule: ~`; not `rule:` with nothing after it
        what = "null"
    else:
        return None
    shown = written or str(value).lower()
    said, quoted = (f"{key}: {shown}", f"{key}: '{shown}'") if key else (shown, f"'{shown}'")
    return f"`{said}` is read by YAML as {what} ({value!r}), not text: quote it, like `{quoted}`"


def line_of(value: Any, default: int = 1) -> int:
    """The line a loaded value starts on, when it is a mapping or a sequence."""
    return value.line if isinstance(value, LineDict | LineList) else default


YAML_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
"""What YAML counts as a line break (its marks' `line` counts these: more than editors, git and LSP do, fewer
than `str.splitlines`)."""
LINE_BREAK = re.compile("\r\n|[\r\n]")
"""What editors, git, CI annotations and LSP count as a line break, and so `fluo test`'s line numbers."""


class Lines:
    """Where YAML marks on a text are in the lines `LINE_BREAK` counts: a mark's own `line` also counts U+0085,
    U+2028 and U+2029 as breaks, which no editor does. Marks of libyaml (the loaders here), whose `index`
    counts characters after a byte order mark."""

    def __init__(self, text: str) -> None:
        text = text.removeprefix("\ufeff")
        self.starts: list[int] | None = None  # None when the marks' own lines are right
        if re.search("[\x85\u2028\u2029]", text):
            self.starts = [0, *(m.end() for m in LINE_BREAK.finditer(text))]

    def line(self, mark: Any) -> int:
        """The 1-based line of a mark."""
        if self.starts is None:
            return int(mark.line) + 1
        return bisect.bisect_right(self.starts, mark.index)

    def column(self, mark: Any) -> int:
        """The 0-based column of a mark, in characters."""
        if self.starts is None:
            return int(mark.column)
        return int(mark.index) - self.starts[self.line(mark) - 1]


def _character_at(text: str, line: int, column: int) -> str | None:
    """The character at a YAML mark (0-based line and column), if the text has one there."""
    lines = YAML_LINE_BREAK.split(text.removeprefix("\ufeff"))  # YAML's columns do not count a byte order mark
    return lines[line][column] if line < len(lines) and column < len(lines[line]) else None


def yaml_problem(exc: yaml.MarkedYAMLError, text: str, *, context: bool = True) -> str:
    """What is wrong, from a YAML error on `text`: a tab where YAML wants a token is named as one (the commonest
    slip: YAML indents with spaces only), and the character libyaml leaves out of "found character that cannot
    start any token" is put in; `context`: with what YAML was doing, in parentheses."""
    mark = exc.problem_mark or exc.context_mark
    problem = str(exc.problem or exc.context or "cannot parse")
    found = _character_at(text, mark.line, mark.column) if mark else None
    if mark and found == "\t" and "cannot start any token" in problem:
        return f"a tab at column {Lines(text).column(mark) + 1}: YAML indents with spaces only"
    if found and "found character that" in problem:
        problem = problem.replace("found character", f"found character {found!r}", 1)
    if context and exc.problem and exc.context:
        problem += f" ({exc.context})"
    return problem


def node_past_limit(text: str) -> tuple[int, int] | None:
    """Where `text` writes a value past the first `MAX_NODES` (0-based line, as `Lines` counts, and offset),
    else None.

    Read as a stream of events, each let go once counted: a file past the limit costs no more memory than a
    small one. YAML that does not parse is counted up to its error, which composing it then reports.
    """
    if len(text) * _NODES_PER_CHARACTER <= MAX_NODES:
        return None
    loader = _Loader(text)
    n = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
                n += 1
                mark = event.start_mark
                if n > MAX_NODES and mark is not None:
                    return Lines(text).line(mark) - 1, mark.index
    except yaml.YAMLError:
        pass
    finally:
        loader.dispose()
    return None


TOO_MANY_NODES = (
    f"invalid test file: more than {MAX_NODES:,} values (scalars, lists and mappings); split it into smaller files"
)
"""The message of a test file past `MAX_NODES`, in `fluo test` and the editor."""


def load(text: str) -> Any:
    """The first document of `text` (None when empty), with line numbers attached."""
    past = node_past_limit(text)
    if past is not None:
        raise YamlError(TOO_MANY_NODES, past[0] + 1, code="test-file")
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(f"invalid YAML: {yaml_problem(exc, text)}", Lines(text).line(mark) if mark else 1) from exc
    except yaml.reader.ReaderError as exc:  # a character YAML forbids (a control character, NUL)
        raise YamlError(_unacceptable(exc), _line_at(text, exc.position)) from exc
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}", 1) from exc
    except RecursionError:
        raise YamlError("invalid YAML: nested too deeply", 1) from None
    if node is None:
        return None
    return _Builder(Lines(text)).value(node, 1)  # it refuses nesting past MAX_DEPTH before Python's recursion limit


def _unacceptable(exc: yaml.reader.ReaderError) -> str:
    """A character YAML forbids, in one line (PyYAML's own message goes on to `in "<unicode string>", ...`)."""
    code = exc.character if isinstance(exc.character, int) else ord(exc.character)
    escape = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return f"invalid YAML: unacceptable character #x{code:04x}: {exc.reason}; in double quotes, write `{escape}`"


def _line_at(text: str, position: int) -> int:
    """The 1-based line of a reader error's position: libyaml's counts UTF-8 bytes (a byte order mark's too),
    PyYAML's own reader characters."""
    if _Base is not yaml.SafeLoader:
        position = len(text.encode("utf-8", "surrogatepass")[:position].decode("utf-8", "ignore"))
    return sum(1 for _ in LINE_BREAK.finditer(text, 0, position)) + 1


class _Builder:
    """Plain values from composed nodes, refusing values deeper than `MAX_DEPTH`, holding themselves, or
    bringing in more than `MAX_ALIASED` values through aliases.

    An alias adds the depth of the value it repeats, so `&a` values nested in aliases
    of each other are measured as deep as they are once built; and it adds the number of
    values it repeats, so they are counted as many as they are once expanded. Only the
    references are built: an alias's value is shared, never copied.
    """

    def __init__(self, lines: Lines) -> None:
        self.lines = lines
        self.constructor = yaml.SafeLoader("")
        self.done: dict[int, Any] = {}
        self.height: dict[int, int] = {}  # levels of each finished collection, itself included
        self.size: dict[int, int] = {}  # values of each finished collection once expanded, itself included
        self.depth = 0
        self.deepest = 0
        self.values = 0  # values built so far, counting what aliases repeat
        self.aliased = 0  # of those, the ones aliases brought in

    def value(self, node: yaml.Node, line: int) -> Any:
        """The value of `node`, which the text names on `line` (an alias's own place, for errors)."""
        seen = self.done.get(id(node))
        if seen is not None:
            height = self.height.get(id(node))
            if height is None:
                raise YamlError(_ENDLESS, self.lines.line(node.start_mark))
            if self.depth + height > MAX_DEPTH:
                raise YamlError(_TOO_DEEP, self.lines.line(node.start_mark))
            self.deepest = max(self.deepest, self.depth + height)
            self.values += self.size[id(node)]
            self.aliased += self.size[id(node)]
            if self.aliased > MAX_ALIASED:
                raise YamlError(_TOO_MANY, line, code="test-file")
            return seen
        self.values += 1
        if not isinstance(node, yaml.CollectionNode):
            return self.scalar(node)
        if self.depth == MAX_DEPTH:
            raise YamlError(_TOO_DEEP, self.lines.line(node.start_mark))
        self.depth += 1
        outer, self.deepest = self.deepest, self.depth
        before = self.values
        out = self.mapping(node) if isinstance(node, yaml.MappingNode) else self.sequence(node)
        self.height[id(node)] = self.deepest - self.depth + 1
        self.size[id(node)] = self.values - before + 1
        self.deepest = max(outer, self.deepest)
        self.depth -= 1
        return out

    def sequence(self, node: yaml.CollectionNode) -> LineList:
        out = LineList()
        self.done[id(node)] = out
        out.line = self.lines.line(node.start_mark)
        out.item_lines = []
        out.written = {}
        line = out.line
        for item in node.value:
            at = self.lines.line(item.start_mark)
            # an alias's node is the value it names, marked where that is: the last item seen is nearer
            if id(item) not in self.done:
                line = at
            out.append(self.value(item, line))
            out.item_lines.append(at)
            if isinstance(item, yaml.ScalarNode) and not isinstance(out[-1], str) and not item.style:
                out.written[len(out) - 1] = item.value
        return out

    def scalar(self, node: yaml.Node) -> Any:
        if node.tag in (_STR, _TIMESTAMP):  # a date is text here: no span attribute or signal value holds one
            return node.value
        if node.tag == _BINARY:
            raise YamlError(
                "invalid YAML value: !!binary (bytes) is not a value a test file can hold",
                self.lines.line(node.start_mark),
            )
        limit = sys.get_int_max_str_digits()
        if node.tag == _INT and 0 < limit < len(node.value) and (digits := sum(map(str.isdigit, node.value))) > limit:
            raise YamlError(
                f"invalid YAML value: an integer of {digits:,} digits, more than the {limit:,} Python reads",
                self.lines.line(node.start_mark),
            )
        if node.tag == _INT and node.value.isdigit() and (node.value == "0" or node.value[0] != "0"):
            return int(node.value)
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            raise YamlError(f"invalid YAML value: {exc.problem}", self.lines.line(node.start_mark)) from exc
        except (ValueError, TypeError, OverflowError) as exc:  # a tagged scalar its constructor rejects
            raise YamlError(f"invalid YAML value: {exc}", self.lines.line(node.start_mark)) from exc

    def mapping(self, node: yaml.MappingNode) -> LineDict:
        out = LineDict()
        self.done[id(node)] = out
        out.line = self.lines.line(node.start_mark)
        out.key_lines = {}
        out.written = {}
        explicit: set[str] = set()
        for key_node, value_node in node.value:
            line = self.lines.line(key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError("a mapping key must be plain text", line)
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged = self.value(value_node, line)
                parts = merged if isinstance(merged, list) else [merged]
                if not all(isinstance(part, LineDict) for part in parts):
                    # at the value, or at the `<<:` when the value is an alias (its node is the anchor's, above)
                    raise YamlError(
                        "`<<:` (a merge key) takes a mapping or a list of mappings, like `<<: *base`",
                        max(line, self.lines.line(value_node.start_mark)),
                    )
                for part in parts:
                    for k, v in part.items():
                        out.setdefault(k, v)
                        out.key_lines.setdefault(k, part.line_of(k))
                continue
            key = str(key_node.value)
            if key in explicit:
                raise YamlError(f"duplicate key `{key}` (first on line {out.key_lines[key]})", line)
            explicit.add(key)
            out[key] = self.value(value_node, line)
            out.key_lines[key] = line
            if isinstance(value_node, yaml.ScalarNode) and not isinstance(out[key], str) and not value_node.style:
                out.written[key] = value_node.value
        return out
