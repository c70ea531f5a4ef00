"""An open rule file, analysed one rule at a time so an edit re-checks only the rule it touched.

A file is cut into chunks at every line that starts with the keyword `rule` (the
first chunk also holds whatever comes before its rule). Strings and comments end
at the end of their line and `rule` is reserved, so such a line always starts a
rule. Each chunk goes through `fluo_lang.api.analyze` on its own, followed by an
empty rule when another chunk follows (so a missing `}` reads "before `rule`", as
in the whole file), and the results are cached by chunk text. Rule ids must still
be unique across chunks: `typecheck.duplicate_ids` runs over all of them.

Spans inside a chunk's results count from the chunk's start (`Chunk.start`).
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

from fluo_lang import api, ast
from fluo_lang.diagnostics import Diagnostic
from fluo_lang.parser import MAX_FILE_BYTES, Lexeme, lex
from fluo_lang.typecheck import CheckedRule, duplicate_ids

from .positions import LineIndex

_RULE_LINE = re.compile(r"(?:^|(?<=\r))[ \t]*rule\b", re.MULTILINE)  # `^` alone misses lines after a lone `\r`
_SENTINEL = "rule __fluo_next_rule__ {}"
_CACHE_SIZE = 5_000  # chunks (rules); about 15 MB per 1,000


@dataclass
class ChunkAnalysis:
    """What `api.analyze` says of one chunk, cut back to the chunk's own text."""

    rules: list[ast.Rule]
    checked: list[CheckedRule]
    diagnostics: list[Diagnostic]
    text: str
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


def analyze_chunk(path: str, text: str, *, last: bool) -> ChunkAnalysis:
    key = (path, text, last)
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit
    source = text if last else text + _SENTINEL
    analysis = api.analyze([(path, source)])
    mine = len(text)
    diags = [d for d in analysis.diagnostics if d.span.start <= mine or last]  # `<=`: "before `rule`" is ours
    if not any(d.is_error for d in diags):  # the sentinel's own FLUO214 does not count
        diags += api.cost_diagnostics(analysis)  # lowers only rules that checked: never the sentinel
    result = ChunkAnalysis(
        rules=[r for f in analysis.files for r in f.rules if r.span.start < mine or last],
        checked=[c for c in analysis.rules if c.rule.span.start < mine or last],
        diagnostics=diags,
        text=text,
    )
    _cache[key] = result
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return result


def read_rule_text(path: Path, limit: int = MAX_FILE_BYTES) -> str | None:
    """A rule file's text as `fluo check` reads it (a BOM dropped, bad UTF-8 replaced), or None if unreadable,
    not a regular file or longer than `limit` bytes."""
    try:
        data = api.read_file(path, limit)
    except OSError:
        return None
    return None if len(data) > limit else api.decode_source(data, str(path))[0]


def split(text: str) -> list[int]:
    """Start offsets of the chunks of a rule file (always at least one, at 0)."""
    starts = [m.start() for m in _RULE_LINE.finditer(text)]
    return [0, *starts[1:]] if starts else [0]


class RuleDocument:
    """A `.fluo` document and its analysis, rebuilt from cached chunks on every change."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.index = LineIndex(text)
        starts = split(text)
        ends = [*starts[1:], len(text)]
        self.chunks = [
            Chunk(s, analyze_chunk(path, text[s:e], last=i == len(starts) - 1))
            for i, (s, e) in enumerate(zip(starts, ends, strict=True))
        ]
        self._diagnostics: list[tuple[Diagnostic, int]] | None = None

    def chunk_at(self, offset: int) -> Chunk:
        lo, hi = 0, len(self.chunks) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.chunks[mid].start <= offset:
                lo = mid
            else:
                hi = mid - 1
        return self.chunks[lo]

    def checked_rules(self) -> list[tuple[CheckedRule, int]]:
        """Every rule that checked (first definitions only), with its chunk's start offset."""
        return [(c, ch.start) for ch in self.chunks for c in ch.analysis.checked]

    def rules(self) -> list[tuple[ast.Rule, int]]:
        """Every rule as parsed, with its chunk's start offset."""
        return [(r, ch.start) for ch in self.chunks for r in ch.analysis.rules]

    def diagnostics(self) -> list[tuple[Diagnostic, int]]:
        """Every diagnostic, with the offset its spans count from."""
        if self._diagnostics is None:
            out = [(d, ch.start) for ch in self.chunks for d in ch.analysis.diagnostics]
            if len(self.chunks) > 1:
                out.extend(self._duplicates(out))
            self._diagnostics = out
        return self._diagnostics

    def _duplicates(self, known: list[tuple[Diagnostic, int]]) -> list[tuple[Diagnostic, int]]:
        """FLUO213 between chunks; a chunk already reports its own duplicates.

        The message names the file by its name, as FLUO213 between the files of a folder does.
        """
        seen = {(d.span.start + base, d.message) for d, base in known if d.code == "FLUO213"}
        rules = self.rules()
        counts = Counter(r.id for r, _ in rules)
        name = Path(self.path).name
        shifted = [
            (replace(r, id_span=shift_span(r.id_span, base, self.index)), name)
            for r, base in rules
            if r.id and counts[r.id] > 1
        ]
        return [(d, 0) for _, d in duplicate_ids(shifted) if (d.span.start, d.message) not in seen]


def shift_span(span: ast.Span, base: int, index: LineIndex) -> ast.Span:
    """A chunk-relative span moved to document offsets, lines and columns."""
    start, end = span.start + base, span.end + base
    line, end_line = index.line_of(start), index.line_of(end)
    return ast.Span(start, end, line, start - index.starts[line], end_line, end - index.starts[end_line])
