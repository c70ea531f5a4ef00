"""Source offsets to LSP positions and back.

The core counts 0-based offsets and columns in code points; LSP counts lines
from 0 and columns in UTF-16 code units. `span_range` is the one function that
turns a core span into an LSP range; everything that reports a location calls it.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

from lsprotocol import types as lsp

from fluo_lang.ast import Span


class LineIndex:
    """Line starts of one text, for converting between offsets and (line, UTF-16 column)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0, *accumulate(len(line) + 1 for line in text.split("\n"))][:-1]

    def line_of(self, offset: int) -> int:
        return bisect_right(self.starts, offset) - 1

    def position(self, offset: int) -> lsp.Position:
        """The LSP position of a code-point offset (clamped to the text)."""
        offset = max(0, min(offset, len(self.text)))
        line = self.line_of(offset)
        start = self.starts[line]
        segment = self.text[start:offset]
        col = len(segment) if segment.isascii() else len(segment.encode("utf-16-le")) // 2
        return lsp.Position(line=line, character=col)

    def offset(self, position: lsp.Position) -> int:
        """The code-point offset of an LSP position; past the end of a line means its end."""
        if position.line >= len(self.starts):
            return len(self.text)
        start = self.starts[position.line]
        end = self.starts[position.line + 1] - 1 if position.line + 1 < len(self.starts) else len(self.text)
        line = self.text[start:end]
        if line.isascii():
            return start + min(position.character, len(line))
        units = 0
        for i, ch in enumerate(line):
            if units >= position.character:
                return start + i
            units += 2 if ord(ch) > 0xFFFF else 1
        return end

    def range(self, start: int, end: int) -> lsp.Range:
        return lsp.Range(start=self.position(start), end=self.position(end))


def span_range(index: LineIndex, span: Span, base: int = 0) -> lsp.Range:
    """The LSP range of a core span; `base` is the offset its text starts at in the document."""
    return index.range(base + span.start, base + span.end)
