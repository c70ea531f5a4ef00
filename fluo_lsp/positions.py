"""Source offsets to LSP positions and back.

The core counts 0-based offsets and columns in code points; LSP counts lines
from 0 and columns in UTF-16 code units (the server always negotiates UTF-16).
A line ends at `\n`, `\r\n` or `\r`, and nowhere else: not at the other breaks
`str.splitlines` knows (U+2028, U+0085, form feed...). `span_range` is the one
function that turns a core span into an LSP range; everything that reports a
location calls it. A document whose text starts with a byte order mark is checked
without it (as `fluo check` reads it), while the client counts it: `lead` is the
UTF-16 units before the text on its first line.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from itertools import accumulate

from lsprotocol import types as lsp

from fluo_lang.ast import Span
from fluo_lang.diagnostics import utf16_units

_LINE_BREAK = re.compile(r"\r\n?|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+\Z")
_NOT_LSP_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")  # str.splitlines' others


def lsp_lines(text: str) -> list[str]:
    """The lines of `text` as LSP counts them, each with its line break; like `str.splitlines(keepends=True)`."""
    if not any(c in text for c in _NOT_LSP_BREAKS):
        return text.splitlines(keepends=True)  # five times faster than the regex
    return _LINE.findall(text)


class LineIndex:
    """Line starts of one text, for converting between offsets and (line, UTF-16 column)."""

    def __init__(self, text: str, lead: int = 0) -> None:
        self.text = text
        self.lead = lead
        self.cr = "\r" in text
        if self.cr and text.count("\r") != text.count("\r\n"):  # some line ends with \r alone
            self.starts = [0, *(m.end() for m in _LINE_BREAK.finditer(text))]
        else:
            self.starts = [0, *accumulate(len(line) + 1 for line in text.split("\n"))][:-1]

    def line_of(self, offset: int) -> int:
        return bisect_right(self.starts, offset) - 1

    def position(self, offset: int) -> lsp.Position:
        """The LSP position of a code-point offset (clamped to the text)."""
        offset = max(0, min(offset, len(self.text)))
        line = self.line_of(offset)
        start = self.starts[line]
        segment = self.text[start:offset]
        col = utf16_units(segment)
        return lsp.Position(line=line, character=col + (self.lead if line == 0 else 0))

    def positions(self, offsets: Iterable[int]) -> Iterator[tuple[int, int]]:
        """(line, UTF-16 column) of each of `offsets`, as `position`; they must not decrease: each counts
        on from the one before, so a long line is encoded once, not once per offset."""
        ascii_ = self.text.isascii()
        line, at, col = 0, 0, 0
        for offset in offsets:
            offset = max(0, min(offset, len(self.text)))
            if offset < at:
                raise ValueError("offsets must not decrease")
            if line + 1 < len(self.starts) and offset >= self.starts[line + 1]:
                line = self.line_of(offset)
                at, col = self.starts[line], 0
            if ascii_:
                col += offset - at
            else:
                segment = self.text[at:offset]
                col += utf16_units(segment)
            at = offset
            yield line, col + (self.lead if line == 0 else 0)

    def in_lead(self, position: lsp.Position) -> bool:
        """Whether `position` is before the text's first character, inside the byte order mark the client
        counts: it points at no character of the text (`offset` reads it as 0)."""
        return position.line == 0 and position.character < self.lead

    def offset(self, position: lsp.Position) -> int:
        """The code-point offset of an LSP position; past the end of a line means its end."""
        if position.line >= len(self.starts):
            return len(self.text)
        if position.line == 0 and self.lead:
            position = lsp.Position(line=0, character=max(0, position.character - self.lead))
        start = self.starts[position.line]
        if position.line + 1 < len(self.starts):
            end = self.starts[position.line + 1] - 1
            if self.cr and end > start and self.text[end - 1] == "\r":  # the line ends with \r\n
                end -= 1
        else:
            end = len(self.text)
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
