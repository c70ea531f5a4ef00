"""The canonical layout of rule files: what `fluo fmt` writes and the language server returns.

The formatter reads the lexer's tokens, comments included, and rewrites only the
whitespace between them (and drops it at the end of a comment, which is not code), so the
token sequence and therefore the meaning stay the same. The layout it keeps:

- `rule ID {` opens a rule, and `when {` (`always {`, `never {`) its clause, the `{` on the keyword's line; each
  metadata entry and clause goes on its own line, indented two spaces; `}` closes a rule alone on its line; rules
  are one blank line apart (where the author left none, it goes after the first rule's line with `}`, so comment
  lines right before a rule stay with it);
- inside an expression the author's line breaks are kept, and a continued line is
  indented two spaces per open bracket (at least one step);
- one space around binary operators and keywords and after `,` and `:`; none inside
  `( )` and `[ ]`, around `.`, before a call's `(` or an index's `[`, or after a unary `-`;
- a comment stays where it was: at the end of its line (one space before `//`) or on a
  line of its own, indented like the code that follows; at most one blank line is kept, between clauses
  and inside an expression or a list alike (`tags: [a,` a blank line `b]` keeps it);
- lines end as most of the file's lines do: `\n`, `\r\n` or `\r`.

A file with syntax errors is left alone: `format_text` raises `FormatError` with them.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from .diagnostics import Diagnostic
from .parser import Lexeme, lex, parse

INDENT = "  "
_ITEM_KEYWORDS = frozenset({"EXPECT", "DETECT", "WHEN", "ALWAYS", "NEVER", "WINDOW"})
_BRACED = frozenset({"WHEN", "ALWAYS", "NEVER"})  # the clauses written `KEYWORD { expr }`
_OPENERS = frozenset({"LPAR", "LSQB", "LBRACE"})
_CLOSERS = frozenset({"RPAR", "RSQB", "RBRACE"})
_NO_SPACE_BEFORE = frozenset({"DOT", "COMMA", "RPAR", "RSQB", "COLON"})
_NO_SPACE_AFTER = frozenset({"DOT", "LPAR", "LSQB"})
# Tokens that end an operand: after one, `-` is binary and `[` indexes.
_OPERAND_END = frozenset({"IDENT", "NUMBER", "STRING", "DURATION", "TRUE", "FALSE", "WINDOW", "RPAR", "RSQB"})


class FormatError(Exception):
    """The text has syntax errors; `diagnostics` holds them. Nothing was reformatted."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__(diagnostics[0].format() if diagnostics else "syntax error")
        self.diagnostics = diagnostics


@dataclass(frozen=True, slots=True)
class FormatResult:
    """`text` is the formatted file, or None when `diagnostics` holds syntax errors."""

    text: str | None
    diagnostics: list[Diagnostic]


def format_source(text: str, path: str = "<input>") -> FormatResult:
    """Format a rule file, or report why it cannot be: the parse errors it has.

    Lines end as most of the file's lines do (`\n`, `\r\n` or `\r`), so a CRLF checkout stays CRLF.
    """
    errors = [d for d in parse(text, path).diagnostics if d.is_error]
    if errors:
        return FormatResult(None, errors)
    formatted = layout(lex(text))
    eol = line_ending(text)
    return FormatResult(formatted if eol == "\n" else formatted.replace("\n", eol), [])


def line_ending(text: str) -> str:
    """The line break most of the text's lines end with; `\n` for a text without any (or on a tie)."""
    crlf = text.count("\r\n")
    counts = {"\n": text.count("\n") - crlf, "\r\n": crlf, "\r": text.count("\r") - crlf}
    return max(counts, key=lambda eol: (counts[eol], eol == "\n"))


def format_text(text: str, path: str = "<input>") -> str:
    """The canonical form of a rule file. Pure; raises `FormatError` on syntax errors."""
    result = format_source(text, path)
    if result.text is None:
        raise FormatError(result.diagnostics)
    return result.text


def layout(lexemes: list[Lexeme]) -> str:
    """Lay out a syntactically valid token stream (see the module docstring for the rules)."""
    return _Printer([x for x in lexemes if x.kind != "WS"]).run(lexemes)


class _Printer:
    def __init__(self, tokens: list[Lexeme]) -> None:
        self.tokens = tokens
        self.out: list[str] = []
        self.in_rule = False  # between a rule's `{` and its `}`
        self.header = False  # between `rule` and the `{` that opens its body
        self.body_opened = False  # the last significant token opened a rule body
        self.item_started = False  # inside an item (or a bare expression) some token was written
        self.depth: list[str] = []  # brackets open inside the current item
        self.prev: Lexeme | None = None  # the last token written, comments included
        self.prev_code: Lexeme | None = None  # the last significant token written
        self.unary = False  # the last significant token is a unary `-`
        self.rule_closed = False  # a rule's `}` was written and no line break since

    def run(self, lexemes: list[Lexeme]) -> str:
        gaps = _newlines_before(lexemes)
        code = [i for i, t in enumerate(self.tokens) if t.kind != "COMMENT"]
        following: list[int | None] = [None] * len(self.tokens)  # index of the next significant token
        # blank_ahead[i]: a blank line comes between token i and the next significant token
        blank_ahead = [False] * len(self.tokens)
        for i in range(len(self.tokens) - 2, -1, -1):
            nxt_tok = self.tokens[i + 1]
            blank_ahead[i] = gaps.get(nxt_tok.start, 0) > 1 or (nxt_tok.kind == "COMMENT" and blank_ahead[i + 1])
        for k, i in enumerate(code):
            start = code[k - 1] + 1 if k else 0
            for j in range(start, i):
                following[j] = i
        for i, tok in enumerate(self.tokens):
            nxt_i = following[i] if tok.kind == "COMMENT" else next_code(code, i)
            nxt = self.tokens[nxt_i] if nxt_i is not None else None
            if tok.kind == "COMMENT":
                after = self.tokens[n] if nxt_i is not None and (n := next_code(code, nxt_i)) is not None else None
                self.comment(tok, gaps.get(tok.start, 0), nxt, after, blank_ahead[i])
            else:
                self.code(tok, gaps.get(tok.start, 0), nxt)
            self.prev = tok
        text = "".join(self.out).rstrip()
        return text + "\n" if text else ""

    def is_item_start(self, tok: Lexeme, nxt: Lexeme | None) -> bool:
        if not self.in_rule or self.depth:
            return False
        if tok.kind == "WINDOW":  # `window 1m` is a clause; `window.spans` an expression
            return nxt is not None and nxt.kind == "DURATION"
        return tok.kind in _ITEM_KEYWORDS or (tok.kind == "IDENT" and nxt is not None and nxt.kind == "COLON")

    def closes_rule(self, tok: Lexeme) -> bool:
        return self.in_rule and not self.depth and tok.kind == "RBRACE"

    def opens_clause(self, tok: Lexeme) -> bool:
        """Whether `tok` is the `{` of a `when`, `always` or `never` clause, which goes on the line of its keyword,
        as a rule's goes on the line of `rule ID`."""
        return self.in_rule and not self.depth and tok.kind == "LBRACE" and _kind(self.prev_code) in _BRACED

    def continuation(self, tok: Lexeme) -> str:
        base = 1 if self.in_rule else 0
        if not self.item_started:
            return INDENT * base
        steps = len(self.depth) - 1 if tok.kind in _CLOSERS else max(len(self.depth), 1)
        return INDENT * (base + max(steps, 0))

    def newline(self, indent: str, blank: bool) -> None:
        if self.prev is None:
            return
        self.rule_closed = False
        self.out.append("\n\n" if blank else "\n")
        self.out.append(indent)

    def comment(self, tok: Lexeme, gap: int, nxt: Lexeme | None, after: Lexeme | None, blank_ahead: bool) -> None:
        text = tok.text.rstrip()
        if self.prev is not None and gap == 0:
            self.out.append(" " + text)
            return
        blank = gap > 1 and not self.body_opened
        if nxt is not None and (self.is_item_start(nxt, after) or self.closes_rule(nxt) or self.opens_clause(nxt)):
            indent = INDENT
        elif nxt is not None and nxt.kind == "RULE" and not self.in_rule:
            indent = ""
            blank = blank or (self.rule_closed and not blank_ahead)  # the rules' blank line, before its comments
        else:
            indent = self.continuation(nxt) if nxt is not None else ""
        self.newline(indent, blank)
        self.out.append(text)

    def code(self, tok: Lexeme, gap: int, nxt: Lexeme | None) -> None:
        after_comment = self.prev is not None and self.prev.kind == "COMMENT"
        if tok.kind == "RULE" and not self.in_rule:
            self.newline("", not after_comment or gap > 1 or self.rule_closed)
            self.header = True
        elif self.header:
            self.out.append("\n" if after_comment else " ")
        elif self.opens_clause(tok) and not after_comment:
            self.out.append(" ")
        elif self.opens_clause(tok):  # on a line of its own after a comment, indented as its keyword and `}`
            self.newline(INDENT, False)
        elif self.is_item_start(tok, nxt):
            self.newline(INDENT, gap > 1 and not self.body_opened)
            self.item_started = False
        elif self.closes_rule(tok):
            self.newline("", False)
        elif gap or after_comment:
            self.newline(self.continuation(tok), gap > 1)
        elif self.prev_code is not None:
            self.out.append(_space(self.prev_code, tok, self.unary))
        self.out.append(tok.text)
        self.track(tok)

    def track(self, tok: Lexeme) -> None:
        self.body_opened = False
        self.unary = tok.kind == "MINUS" and (self.prev_code is None or self.prev_code.kind not in _OPERAND_END)
        if self.header and tok.kind == "LBRACE":
            self.header = False
            self.in_rule = True
            self.body_opened = True
            self.item_started = False
        elif self.closes_rule(tok):
            self.in_rule = False
            self.item_started = False
            self.rule_closed = True
        elif tok.kind in _OPENERS:
            self.depth.append(tok.kind)
            self.item_started = True
        elif tok.kind in _CLOSERS:
            if self.depth:
                self.depth.pop()
        else:
            self.item_started = True
        self.prev_code = tok


def _kind(tok: Lexeme | None) -> str | None:
    return tok.kind if tok is not None else None


def next_code(code: list[int], i: int) -> int | None:
    """The index of the significant token after significant token `i` (`code` lists them in order)."""
    k = bisect_right(code, i)
    return code[k] if k < len(code) else None


def _space(prev: Lexeme, cur: Lexeme, unary: bool) -> str:
    """The space between two tokens on one line."""
    if cur.kind in _NO_SPACE_BEFORE or prev.kind in _NO_SPACE_AFTER:
        return ""
    if cur.kind == "LPAR" and prev.kind == "IDENT":
        return ""  # a method call: bare names are never called
    if cur.kind == "LSQB" and prev.kind in _OPERAND_END:
        return ""  # an index
    if unary:
        return " " if cur.kind == "MINUS" else ""  # `- -1`, not `--1`: that reads as a comment typed in SQL's way
    return " "


def _newlines_before(lexemes: list[Lexeme]) -> dict[int, int]:
    """For each token's start offset: how many line breaks (`\n`, `\r\n`, `\r`) the whitespace before it holds."""
    out: dict[int, int] = {}
    pending = 0
    for x in lexemes:
        if x.kind == "WS":
            pending += x.text.count("\n") + x.text.count("\r") - x.text.count("\r\n")
            continue
        out[x.start] = pending
        pending = 0
    return out
