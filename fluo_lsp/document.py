"""An open rule file, analysed one rule at a time so an edit re-checks only the rule it touched.

A file is cut into chunks at every line that starts with the keyword `rule` (the
first chunk also holds whatever comes before its rule). Strings and comments end
at the end of their line and `rule` is reserved, so such a line always starts a
rule. Each chunk goes through `fluo_lang.api.analyze` on its own, followed by an
empty rule when another chunk follows (so a missing `}` reads "before `rule`", as
in the whole file), and the results are cached by chunk text: a document keeps its
chunks' analyses, which its next text reuses, and a bounded cache keeps others.

What `fluo check` decides for the whole file is decided over all chunks: rule ids
must be unique (`typecheck.duplicate_ids` runs over every rule, so FLUO213 says the
document's lines), the patterns of `matches` share one `RegexBudget` (a cached
chunk is charged again by what it asked, `RegexBudget.replay`, and checked again
only when the budget left changes its FLUO405), at most `MAX_ERRORS` syntax errors are reported (then FLUO403),
and a text over `MAX_FILE_BYTES` is FLUO402 alone (a file on disk that is not UTF-8,
FLUO106 alone). A leading byte order mark is dropped, as `fluo check` drops it;
`LineIndex` still counts it in LSP columns.

Spans inside a chunk's results count from the chunk's start (`Chunk.start`).
"""

from __future__ import annotations

import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pygls.uris import from_fs_path

from fluo_lang import api, ast
from fluo_lang.diagnostics import Diagnostic, error
from fluo_lang.parser import MAX_ERRORS, MAX_FILE_BYTES, RULE_LINE, TOO_MANY_ERRORS, Lexeme, lex, stop_message
from fluo_lang.regex import Consult, RegexBudget
from fluo_lang.typecheck import CheckedRule, duplicate_ids

from .positions import LineIndex

_SENTINEL = "rule __fluo_next_rule__ {}"
_CACHE_SIZE = 5_000
"""Chunks (rules) kept besides those of the documents alive (about 15 MB per 1,000): the rule files read beside an
open one, the texts a code action tried, the documents closed."""


@dataclass
class ChunkAnalysis:
    """What `api.analyze` says of one chunk, cut back to the chunk's own text."""

    rules: list[ast.Rule]
    checked: list[CheckedRule]
    diagnostics: list[Diagnostic]
    text: str
    hidden: list[Diagnostic] = field(default_factory=list)
    """The checker's diagnostics dropped beside a syntax error (`api.Analysis.hidden`)."""
    regexes: tuple[Consult, ...] = ()
    """The patterns the chunk's check asked its document's `RegexBudget` about, in order (`RegexBudget.replay`)."""
    _lexemes: list[Lexeme] | None = field(default=None, repr=False)
    tokens: list[tuple[int, int, int, int, int]] | None = field(default=None, repr=False)
    """Semantic tokens relative to the chunk (see `outline.semantic_tokens`), once asked for."""

    @property
    def lexemes(self) -> list[Lexeme]:
        if self._lexemes is None:
            self._lexemes = lex(self.text)
        return self._lexemes


@dataclass(frozen=True, slots=True)
class Chunk:
    start: int
    analysis: ChunkAnalysis

    @property
    def end(self) -> int:
        return self.start + len(self.analysis.text)


_cache: OrderedDict[tuple[str, str, bool], ChunkAnalysis] = OrderedDict()
_cache_lock = threading.Lock()  # rule files beside an open one are analysed in a thread of their own


def path_uri(path: Path) -> str:
    """The `file:` URI of `path` as the client names it: `..` folded away, but symlinks kept (a workspace
    opened through a link stays under the link; a resolved URI would open a second buffer of the same file)."""
    absolute = os.path.abspath(path)
    return from_fs_path(absolute) or Path(absolute).as_uri()


def analyze_chunk(
    path: str,
    text: str,
    *,
    last: bool,
    regexes: RegexBudget | None = None,
    kept: Mapping[tuple[str, bool], ChunkAnalysis] | None = None,
) -> ChunkAnalysis:
    """One chunk's analysis, its patterns charged to `regexes`, the budget of the document's chunks before it.

    `kept` holds the analyses of the document's last text by (chunk text, `last`), looked at before the cache.
    """
    regexes = regexes if regexes is not None else RegexBudget()
    key = (path, text, last)
    hit = kept.get((text, last)) if kept is not None else None
    if hit is None:
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
    if hit is not None and regexes.replay(hit.regexes):
        return hit
    source = text if last else text + _SENTINEL
    asked = len(regexes.consulted)
    analysis = api.analyze([(path, source)], {path: regexes})
    mine = len(text)
    diags = [
        d
        for d in analysis.diagnostics
        if (d.span.start <= mine or last)  # `<=`: "before `rule`" is ours
        and d.code != "FLUO213"  # the document's duplicates are found over all its chunks
    ]
    if not last:  # the parser stopped reading in this rule; the next one is read all the same
        rest = stop_message("the rest of this rule (up to the next line that starts with `rule`)")
        diags = [replace(d, message=rest) if d.code == "FLUO403" and d.message == stop_message() else d for d in diags]
    diags += api.cost_diagnostics(analysis)  # as `fluo check`: rules that checked clean, never the sentinel
    result = ChunkAnalysis(
        rules=[r for f in analysis.files for r in f.rules if r.span.start < mine or last],
        checked=[c for c in analysis.rules if c.rule.span.start < mine or last],
        diagnostics=diags,
        text=text,
        hidden=[d for d in analysis.hidden if d.span.start <= mine or last],
        regexes=tuple(regexes.consulted[asked:]),
    )
    with _cache_lock:
        _cache[key] = result
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def read_rule_source(path: Path, limit: int = MAX_FILE_BYTES) -> tuple[str, Diagnostic | None] | None:
    """A rule file's text as `fluo check` reads it (a BOM dropped, bad UTF-8 replaced) with FLUO106 if it is
    not UTF-8 (`api.decode_source`), or None if unreadable, not a regular file or longer than `limit` bytes."""
    try:
        data = api.read_file(path, limit)
    except OSError:
        return None
    return None if len(data) > limit else api.decode_source(data, str(path))


def read_rule_text(path: Path, limit: int = MAX_FILE_BYTES) -> str | None:
    """`read_rule_source`'s text alone, for what only needs positions in it."""
    read = read_rule_source(path, limit)
    return read[0] if read is not None else None


def split(text: str) -> list[int]:
    """Start offsets of the chunks of a rule file (always at least one, at 0)."""
    starts = [m.start() for m in RULE_LINE.finditer(text)]
    return [0, *starts[1:]] if starts else [0]


def _capped(diags: list[tuple[Diagnostic, int]]) -> list[tuple[Diagnostic, int]]:
    """The diagnostics with at most `MAX_ERRORS` syntax errors, then one FLUO403, as the parser caps a whole file.

    Counted are the ones the parser marks `capped` (what it counts toward its own, `fluo_lang.parser._capped`), a
    chunk's own FLUO403 among them.
    """
    out: list[tuple[Diagnostic, int]] = []
    count = 0
    for d, base in diags:
        if d.capped:
            count += 1
            if count == MAX_ERRORS + 1:
                out.append((error("FLUO403", TOO_MANY_ERRORS, d.span, path=d.path, capped=True), base))
            if count > MAX_ERRORS:
                continue
        out.append((d, base))
    return out


def too_large(text: str) -> bool:
    """Whether `text` is over `MAX_FILE_BYTES` in UTF-8: `fluo check` reads no further than FLUO402 then."""
    return len(text) > MAX_FILE_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES


class RuleDocument:
    """A `.fluo` document and its analysis, rebuilt from cached chunks on every change.

    `source` is the text as given; `text` is what is checked, without a leading byte order mark.
    `name` is how messages name the file (FLUO213's "already defined at NAME:1:6"): the path
    `fluo check` prints for it.

    `unreadable` is why `fluo check` reads none of its rules: FLUO402 (too large) or, for a file
    on disk, the FLUO106 of `read_rule_source` (not UTF-8). The document then has no rules and
    that diagnostic alone, as `fluo check` reports it.

    `previous` is the document's last analysis: its rules are not checked again, however many rules
    the cache (`_CACHE_SIZE`) holds, so an edit re-checks one rule however large the file is.
    """

    def __init__(
        self,
        path: str,
        source: str,
        name: str | None = None,
        unreadable: Diagnostic | None = None,
        previous: RuleDocument | None = None,
    ) -> None:
        self.path = path
        self.name = name if name is not None else path
        self.source = source
        bom = source.startswith("\ufeff")
        self.text = text = source[1:] if bom else source
        self.index = LineIndex(text, lead=1 if bom else 0)
        if unreadable is None and too_large(text):
            at = ast.Span(0, 0, 0, 0, 0, 0)
            unreadable = error("FLUO402", f"file is larger than {MAX_FILE_BYTES} bytes", at, path=path)
        self.unreadable = unreadable
        self._rules: tuple[tuple[ast.Rule, int], ...] | None = None
        self._checked: tuple[tuple[CheckedRule, int], ...] | None = None
        self._ids: frozenset[str] | None = None
        if unreadable is not None:
            self.chunks = [Chunk(0, ChunkAnalysis(rules=[], checked=[], diagnostics=[unreadable], text=""))]
            self._diagnostics: list[tuple[Diagnostic, int]] | None = [(unreadable, 0)]
            return
        starts = split(text)
        ends = [*starts[1:], len(text)]
        regexes = RegexBudget()  # the document's, as `fluo check` gives a file one
        kept = previous.analyses() if previous is not None and previous.path == path else None
        self.chunks = [
            Chunk(s, analyze_chunk(path, text[s:e], last=i == len(starts) - 1, regexes=regexes, kept=kept))
            for i, (s, e) in enumerate(zip(starts, ends, strict=True))
        ]
        self._diagnostics = None

    def analyses(self) -> dict[tuple[str, bool], ChunkAnalysis]:
        """Its chunks' analyses by (chunk text, whether the chunk is the last), as `analyze_chunk` takes them."""
        if self.unreadable is not None:
            return {}
        last = len(self.chunks) - 1
        return {(ch.analysis.text, i == last): ch.analysis for i, ch in enumerate(self.chunks)}

    def chunk_at(self, offset: int) -> Chunk:
        lo, hi = 0, len(self.chunks) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.chunks[mid].start <= offset:
                lo = mid
            else:
                hi = mid - 1
        return self.chunks[lo]

    def checked_rules(self) -> Sequence[tuple[CheckedRule, int]]:
        """Every rule that checked (first definitions only), with its chunk's start offset."""
        if self._checked is None:
            self._checked = tuple((c, ch.start) for ch in self.chunks for c in ch.analysis.checked)
        return self._checked

    def rules(self) -> Sequence[tuple[ast.Rule, int]]:
        """Every rule as parsed, with its chunk's start offset."""
        if self._rules is None:
            self._rules = tuple((r, ch.start) for ch in self.chunks for r in ch.analysis.rules)
        return self._rules

    def ids(self) -> frozenset[str]:
        """The ids of its rules (`rules()`)."""
        if self._ids is None:
            self._ids = frozenset(r.id for r, _ in self.rules() if r.id)
        return self._ids

    def diagnostics(self) -> list[tuple[Diagnostic, int]]:
        """Every diagnostic, with the offset its spans count from."""
        if self._diagnostics is None:
            out = _capped([(d, ch.start) for ch in self.chunks for d in ch.analysis.diagnostics])
            self._diagnostics = out + self._duplicates()
        return self._diagnostics

    def _duplicates(self) -> list[tuple[Diagnostic, int]]:
        """FLUO213 for every rule whose id one before it in the document has, at document lines and columns."""
        rules = self.rules()
        counts = Counter(r.id for r, _ in rules)
        shifted = [
            (replace(r, id_span=shift_span(r.id_span, base, self.index)), self.name)
            for r, base in rules
            if r.id and counts[r.id] > 1
        ]
        return [(d, 0) for _, d in duplicate_ids(shifted)]


def shift_span(span: ast.Span, base: int, index: LineIndex) -> ast.Span:
    """A chunk-relative span moved to document offsets, lines and columns."""
    start, end = span.start + base, span.end + base
    line, end_line = index.line_of(start), index.line_of(end)
    return ast.Span(start, end, line, start - index.starts[line], end_line, end - index.starts[end_line])
