"""Text to typed AST: a thin wrapper over lark's LALR parser and `grammar/fluo.lark`.

Syntax errors do not stop the parse. At an unexpected token the parser tries to
insert the few tokens that make it acceptable (a missing `)`, `}` or name);
failing that it drops the token. Errors within a few tokens of the previous
one are not reported, so one mistake gives one diagnostic and a second, later
mistake still gives its own. lark types never leave this module.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import PurePath
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import LexerThread

from . import ast
from .diagnostics import Diagnostic, error

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 100
MAX_RULE_NODES = 20_000
MAX_ERRORS = 100

# Duration units to nanoseconds.
DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}

_MISSING = "\x00"  # value of tokens the recovery inserted
_FRIENDLY = {
    "IDENT": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "DURATION": "a duration",
    "$END": "end of file",
}
# Insertion candidates, most plausible first; the second level only tries closers and names.
_INSERT_FIRST = ("RPAR", "RSQB", "RBRACE", "IDENT", "NUMBER", "STRING", "COLON", "COMMA", "LBRACE")
_INSERT_DEEP = ("RPAR", "RSQB", "RBRACE", "IDENT")


@cache
def grammar_text() -> str:
    return resources.files("fluo_lang").joinpath("fluo.lark").read_text(encoding="utf-8")


@cache
def _lark() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="basic",
        propagate_positions=True,
        maybe_placeholders=True,
        cache=False,
    )


@cache
def keywords() -> frozenset[str]:
    """Every reserved word of the grammar (string terminals that look like names)."""
    return frozenset(
        t.pattern.value
        for t in _lark().terminals
        if t.pattern.type == "str" and re.fullmatch(r"[a-z]+", t.pattern.value)
    )


def terminal_display(name: str) -> str:
    """How a terminal is named in messages: `)` for RPAR, 'a name' for IDENT."""
    if name in _FRIENDLY:
        return _FRIENDLY[name]
    try:
        term = _lark().get_terminal(name)
    except KeyError:
        return name
    if term.pattern.type == "str":
        return f"`{term.pattern.value}`"
    return name.lower()


def terminal_text(name: str) -> str | None:
    """The literal text of a string terminal (`)` for RPAR), or None for a pattern."""
    try:
        term = _lark().get_terminal(name)
    except KeyError:
        return None
    return str(term.pattern.value) if term.pattern.type == "str" else None


@dataclass
class ParseResult:
    file: ast.RuleFile
    diagnostics: list[Diagnostic] = field(default_factory=list)


class _LineIndex:
    """Offset to 0-based (line, column)."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def pos(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self.starts, offset) - 1
        return line, offset - self.starts[line]

    def span(self, start: int, end: int) -> ast.Span:
        line, col = self.pos(start)
        end_line, end_col = self.pos(end)
        return ast.Span(start, end, line, col, end_line, end_col)


class _Recovery:
    def __init__(self, text: str, index: _LineIndex, path: str) -> None:
        self.text = text
        self.index = index
        self.path = path
        self.diagnostics: list[Diagnostic] = []
        self.last_error_end: int | None = None

    def report(self, diag: Diagnostic) -> None:
        """Record an error unless it is a cascade: fewer than 3 tokens after the previous one.

        Past `MAX_ERRORS`, one FLUO403 says the rest are not reported.
        """
        last = self.last_error_end
        self.last_error_end = max(diag.span.end, last or 0)
        if last is not None and _tokens_between(self.text, last, diag.span.start) < 3:
            return
        if len(self.diagnostics) < MAX_ERRORS:
            self.diagnostics.append(diag)
        elif len(self.diagnostics) == MAX_ERRORS:
            more = f"more than {MAX_ERRORS} syntax errors; the rest are not reported"
            self.diagnostics.append(error("FLUO403", more, diag.span, path=self.path))

    def __call__(self, e: UnexpectedInput) -> bool:
        if isinstance(e, UnexpectedToken):
            return self._token(e)
        if isinstance(e, UnexpectedCharacters):
            return self._chars(e)
        return False

    def _token(self, e: UnexpectedToken) -> bool:
        tok: Token = e.token
        ip = e.interactive_parser
        expected = sorted(e.expected or _accepts(ip), key=_order)
        is_end = tok.type == "$END"
        if is_end:
            start = end = len(self.text.rstrip())
            found = "end of file"
        else:
            start = tok.start_pos or 0
            end = tok.end_pos or start
            found = f"`{tok.value}`"
        span = self.index.span(start, end)
        inserted = self._insertion(ip, tok)
        if inserted is not None:
            if len(inserted) == 1:
                msg = f"expected {terminal_display(inserted[0])} before {found}"
            else:
                msg = f"unexpected {found}; expected {_one_of(expected)}"
            code = "FLUO104" if is_end else "FLUO100"
            self.report(error(code, msg, span, path=self.path))
            for name in inserted:
                ip.feed_token(self.synthetic(name, start))
            if not is_end:
                ip.feed_token(tok)
            return True
        code = "FLUO104" if is_end else "FLUO100"
        self.report(error(code, f"unexpected {found}; expected {_one_of(expected)}", span, path=self.path))
        return not is_end  # drop the token and go on

    def synthetic(self, name: str, pos: int, value: str = _MISSING) -> Token:
        """A zero-width token the recovery inserts at `pos`."""
        line, col = self.index.pos(pos)
        return Token(name, value, pos, line + 1, col + 1, line + 1, col + 1, pos)

    def _insertion(self, ip: Any, tok: Token) -> tuple[str, ...] | None:
        """The shortest run of tokens (at most 3) after which `tok` is accepted."""
        frontier: list[tuple[tuple[str, ...], Any]] = [((), ip)]
        for depth in range(3):
            nxt: list[tuple[tuple[str, ...], Any]] = []
            for seq, state in frontier:
                acceptable = _accepts(state)
                for name in _INSERT_FIRST if depth == 0 else _INSERT_DEEP:
                    if name not in acceptable:
                        continue
                    trial = state.copy()
                    try:
                        trial.feed_token(Token(name, _MISSING))
                    except UnexpectedInput:
                        continue
                    if tok.type in _accepts(trial):
                        return (*seq, name)
                    nxt.append(((*seq, name), trial))
            frontier = nxt[:12]
        return None

    def _chars(self, e: UnexpectedCharacters) -> bool:
        state: Any = e.interactive_parser.lexer_thread.state
        pos = state.line_ctr.char_pos
        ch = self.text[pos : pos + 1]
        if ch in "\"'":
            eol = self.text.find("\n", pos)
            eol = len(self.text) if eol < 0 else eol
            self.report(error("FLUO102", "unterminated string", self.index.span(pos, eol), path=self.path))
            state.line_ctr.feed(self.text[pos:eol])
            if "STRING" in _accepts(e.interactive_parser):
                e.interactive_parser.feed_token(self.synthetic("STRING", pos, '"' + _MISSING + '"'))
            return True
        self.report(
            error(
                "FLUO101",
                f"unexpected character `{ch}`",
                self.index.span(pos, pos + 1),
                path=self.path,
            )
        )
        return True


def _accepts(ip: Any) -> set[str]:
    return set(ip.accepts())


def _tokens_between(text: str, start: int, end: int) -> int:
    """How many tokens lie in text[start:end]; unlexable text counts as many."""
    if end <= start:
        return 0
    try:
        return sum(1 for _ in _lark().lex(text[start:end]))
    except UnexpectedInput:
        return 3


def _order(name: str) -> tuple[int, str]:
    return (0 if name in _FRIENDLY else 1, terminal_display(name))


def _one_of(names: list[str]) -> str:
    shown = [terminal_display(n) for n in names if not n.startswith("__IGNORE")]
    if not shown:
        return "nothing more"
    if len(shown) == 1:
        return shown[0]
    if len(shown) > 8:
        shown = [*shown[:8], "..."]
    return "one of " + ", ".join(shown)


def parse(text: str, path: str = "<input>") -> ParseResult:
    """Parse a rule file; never raises on bad input, only returns diagnostics."""
    index = _LineIndex(text)
    rule_file = ast.RuleFile(path=path, text=text)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        d = error("FLUO402", f"file is larger than {MAX_FILE_BYTES} bytes", index.span(0, 0), path=path)
        return ParseResult(rule_file, [d])
    recovery = _Recovery(text, index, path)
    try:
        tree = _lark().parse(text, on_error=recovery)
    except UnexpectedInput:
        tree = None
    builder = _Builder(text, index, path)
    diags = recovery.diagnostics
    if tree is not None:
        rules = builder.file(tree)
        rule_file = ast.RuleFile(path=path, text=text, rules=tuple(rules))
    diags.extend(builder.diagnostics)
    return ParseResult(rule_file, diags)


def expected_at(text: str) -> set[str] | None:
    """Terminal names the grammar accepts after `text` (a prefix), or None if it is not valid.

    Used by completion: the language server passes the text up to the cursor.
    """
    lark = _lark()
    ip = lark.parse_interactive(text)
    try:
        ip.exhaust_lexer()
    except UnexpectedInput:
        return None
    return _accepts(ip)


@dataclass(frozen=True, slots=True)
class Lexeme:
    """One token of the source as the grammar's lexer reads it, comments and whitespace included.

    `kind` is the terminal name (`IDENT`, `RULE`, `LPAR`, `COMMENT`, `WS`, ...), or `ERROR` for
    text that starts no token (an unterminated string runs to the end of its line).
    Offsets are 0-based; `end` is exclusive.
    """

    kind: str
    text: str
    start: int
    end: int


@cache
def _keeping_lexer() -> Any:
    """The grammar's lexer without its `%ignore`s (what `Lark.lex(dont_ignore=True)` builds on every call)."""
    return _lark()._build_lexer(dont_ignore=True)


def lex(text: str) -> list[Lexeme]:
    """Every lexeme of `text`, in order, covering it completely; never raises.

    For tools that keep what the parser ignores: the formatter and semantic highlighting.
    """
    out: list[Lexeme] = []
    pos = 0
    while pos < len(text):
        try:
            thread: Any = LexerThread.from_text(_keeping_lexer(), text[pos:])
            for tok in thread.lex(None):
                start = pos + (tok.start_pos or 0)
                out.append(Lexeme(tok.type, str(tok.value), start, start + len(tok.value)))
            return out
        except UnexpectedCharacters as exc:
            bad = pos + (exc.pos_in_stream or 0)
            end = bad + 1
            if text[bad] in "\"'":
                eol = text.find("\n", bad)
                end = len(text) if eol < 0 else eol
            out.append(Lexeme("ERROR", text[bad:end], bad, end))
            pos = end
    return out


def parse_expression(text: str, path: str = "<expr>") -> ParseResult:
    """Parse one bare expression, as `--expect EXPR` takes it."""
    result = parse(text, path)
    rules = [r for r in result.file.rules if r.bare]
    if result.file.rules and not rules:
        span = result.file.rules[0].span
        result.diagnostics.append(error("FLUO105", "expected one expression, not rules", span, path=path))
    return result


# ---------------------------------------------------------------------------
# lark tree -> AST

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}
_BIN = {
    "or_": "or", "and_": "and", "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">",
    "ge": ">=", "in_": "in", "not_in": "not in", "contains": "contains", "matches": "matches",
    "add": "+", "sub": "-", "mul": "*", "div": "/",
}  # fmt: skip
_CLAUSES = ("expect", "detect", "when", "always", "never")


class _Builder:
    def __init__(self, text: str, index: _LineIndex, path: str) -> None:
        self.text = text
        self.index = index
        self.path = path
        self.diagnostics: list[Diagnostic] = []

    def span_of(self, node: Tree[Any] | Token) -> ast.Span:
        if isinstance(node, Token):
            start = node.start_pos or 0
            if _MISSING in node.value:
                return self.index.span(start, start)
            end, line, col = node.end_pos, node.line, node.column
            end_line, end_col = node.end_line, node.end_column
            if end is None or line is None or col is None or end_line is None or end_col is None:
                return self.index.span(start, end if end is not None else start)
            # lark counts lines and columns from 1; ours count from 0.
            return ast.Span(start, end, line - 1, col - 1, end_line - 1, end_col - 1)
        meta = node.meta
        if getattr(meta, "empty", True) or meta.start_pos is None:
            return self.index.span(0, 0)
        if meta.end_pos is None:
            return self.index.span(meta.start_pos, meta.start_pos)
        return ast.Span(
            meta.start_pos, meta.end_pos, meta.line - 1, meta.column - 1, meta.end_line - 1, meta.end_column - 1
        )

    def file(self, tree: Tree[Any]) -> list[ast.Rule]:
        if tree.data == "empty":
            return []
        if tree.data == "bare_expr":
            body = tree.children[0]
            span = self.span_of(body)
            expr = self.guarded(body)
            stem = PurePath(self.path).stem or "expr"
            rule_id = re.sub(r"\W", "_", stem.split(".")[0]) or "expr"
            clause = ast.Clause(span, "expect", expr)
            return [ast.Rule(span, rule_id, span, (), (clause,), (), bare=True)]
        return [self.rule(r) for r in tree.children if isinstance(r, Tree)]

    def rule(self, tree: Tree[Any]) -> ast.Rule:
        ident = tree.children[0]
        metas: list[ast.Meta] = []
        clauses: list[ast.Clause] = []
        windows: list[ast.WindowClause] = []
        for item in tree.children[1:]:
            if not isinstance(item, Tree):
                continue
            if item.data == "meta":
                key = item.children[0]
                metas.append(
                    ast.Meta(
                        self.span_of(item),
                        str(key),
                        self.span_of(key),
                        self.meta_value(item.children[1]),
                    )
                )
            elif item.data in _CLAUSES:
                clauses.append(ast.Clause(self.span_of(item), item.data, self.guarded(item.children[0])))  # type: ignore[arg-type]
            elif item.data == "window_clause":
                tok = item.children[0]
                ns = self.duration_ns(tok if isinstance(tok, Token) else None)
                windows.append(ast.WindowClause(self.span_of(item), ns if ns is not None else 0))
        rid = str(ident)
        return ast.Rule(
            self.span_of(tree), "" if rid == _MISSING else rid, self.span_of(ident),
            tuple(metas), tuple(clauses), tuple(windows),
        )  # fmt: skip

    def meta_value(self, node: Tree[Any] | Token) -> ast.MetaItem:
        span = self.span_of(node)
        if isinstance(node, Token) or not isinstance(node, Tree):
            return ast.MetaItem(span, str(node), "ident")
        kind = node.data
        tok = node.children[0] if node.children else None
        if kind == "meta_string":
            return ast.MetaItem(span, self.string_value(tok), "string")  # type: ignore[arg-type]
        if kind == "meta_ident":
            return ast.MetaItem(span, str(tok), "ident")
        if kind == "meta_number":
            value = _number(str(tok))
            return ast.MetaItem(span, value, "int" if isinstance(value, int) else "float")
        if kind == "meta_duration":
            return ast.MetaItem(span, self.duration_ns(tok) or 0, "duration")  # type: ignore[arg-type]
        if kind in ("meta_true", "meta_false"):
            return ast.MetaItem(span, kind == "meta_true", "bool")
        items = [self.meta_value(c) for c in node.children if c is not None]
        return ast.MetaItem(span, items, "list")

    def guarded(self, tree: Tree[Any] | Token) -> ast.Expr:
        """Convert an expression, refusing trees too deep or too large to handle safely."""
        depth, nodes = _measure(tree)
        span = self.span_of(tree)
        if depth > MAX_DEPTH:
            self.diagnostics.append(
                error(
                    "FLUO400",
                    f"expression nested {depth} levels deep; the limit is {MAX_DEPTH}",
                    span,
                    path=self.path,
                )
            )
            return ast.Missing(span)
        if nodes > MAX_RULE_NODES:
            self.diagnostics.append(
                error(
                    "FLUO401",
                    f"expression has {nodes} nodes; the limit is {MAX_RULE_NODES}",
                    span,
                    path=self.path,
                )
            )
            return ast.Missing(span)
        return self.expr(tree)

    def expr(self, node: Tree[Any] | Token) -> ast.Expr:
        span = self.span_of(node)
        if isinstance(node, Token):
            return ast.Missing(span)
        kind = node.data
        ch = node.children
        if kind in _BIN:
            return ast.Binary(span, _BIN[kind], self.expr(ch[0]), self.expr(ch[1]))  # type: ignore[arg-type]
        if kind == "not_":
            return ast.Unary(span, "not", self.expr(ch[0]))
        if kind == "neg":
            return ast.Unary(span, "-", self.expr(ch[0]))
        handler: Callable[[ast.Span, list[Any]], ast.Expr] | None = getattr(self, "x_" + kind, None)
        if handler is None:
            return ast.Missing(span)
        return handler(span, ch)

    def x_string(self, span: ast.Span, ch: list[Any]) -> ast.Expr:
        if _MISSING in str(ch[0]):
            return ast.Missing(span)
        return ast.Literal(span, self.string_value(ch[0]), "string")

    def x_number(self, span: ast.Span, ch: list[Any]) -> ast.Expr:
        if ch[0] == _MISSING:
            return ast.Missing(span)
        value = _number(str(ch[0]))
        return ast.Literal(span, value, "int" if isinstance(value, int) else "float")

    def x_duration(self, span: ast.Span, ch: list[Any]) -> ast.Expr:
        ns = self.duration_ns(ch[0])
        return ast.Missing(span) if ns is None else ast.Literal(span, ns, "duration")

    def x_true(self, span: ast.Span, ch: list[Any]) -> ast.Expr:
        return ast.Literal(span, True, "bool")

    def x_false(self, span: ast.Span, ch: list[Any]) -> ast.Expr:
        return ast.Literal(span, False, "bool")

    def x_name(self, span: ast.Span, ch: list[Any]) -> ast.Expr:
        return ast.Missing(span) if ch[0] == _MISSING else ast.Name(span, str(ch[0]))

    def x_window_root(self, span: ast.Span, ch: list[Any]) -> ast.Expr:
        return ast.Name(span, "window")

    def x_list(self, span: ast.Span, ch: list[Any]) -> ast.Expr:
        return ast.ListLit(span, tuple(self.args(ch[0])))

    def x_field(self, span: ast.Span, ch: list[Any]) -> ast.Expr:
        target = self.expr(ch[0])
        if ch[1] == _MISSING:
            return ast.Missing(span)
        return ast.Field(span, target, str(ch[1]), self.span_of(ch[1]))

    def x_call(self, span: ast.Span, ch: list[Any]) -> ast.Expr:
        target = self.expr(ch[0])
        if ch[1] == _MISSING:
            return ast.Missing(span)
        return ast.Call(span, target, str(ch[1]), self.span_of(ch[1]), tuple(self.args(ch[2])))

    def x_index(self, span: ast.Span, ch: list[Any]) -> ast.Expr:
        return ast.Index(span, self.expr(ch[0]), self.expr(ch[1]))

    def args(self, node: Tree[Any] | None) -> list[ast.Expr]:
        if node is None:
            return []
        return [self.expr(c) for c in node.children if c is not None]

    def string_value(self, tok: Token) -> str:
        raw = str(tok)[1:-1]
        if "\\" not in raw:
            return raw
        out: list[str] = []
        i = 0
        while i < len(raw):
            c = raw[i]
            if c != "\\":
                out.append(c)
                i += 1
                continue
            nxt = raw[i + 1 : i + 2]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
            elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", raw[i + 2 : i + 6]):
                out.append(chr(int(raw[i + 2 : i + 6], 16)))
                i += 6
            else:
                start = (tok.start_pos or 0) + 1 + i
                self.diagnostics.append(
                    error(
                        "FLUO102",
                        f"invalid escape `\\{nxt}` in string (use \\n \\t \\r \\\\ \\' \\\" \\0 or \\uXXXX)",
                        self.index.span(start, start + 2),
                        path=self.path,
                    )
                )
                out.append(nxt)
                i += 2
        return "".join(out)

    def duration_ns(self, tok: Token | None) -> int | None:
        text = str(tok) if tok is not None else ""
        m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(.*)", text)
        if tok is None or m is None:
            return None
        number, unit = m.groups()
        if unit not in DURATION_UNITS:
            close = [u for u in DURATION_UNITS if u != "µs"]
            self.diagnostics.append(
                error(
                    "FLUO103",
                    f"unknown duration unit `{unit}` in `{text}`; use one of {', '.join(close)}",
                    self.span_of(tok),
                    path=self.path,
                )
            )
            return None
        if "." in number:
            return round(float(number) * DURATION_UNITS[unit])
        return int(number) * DURATION_UNITS[unit]


def _number(text: str) -> int | float:
    if re.fullmatch(r"[0-9]+", text):
        return int(text)
    return float(text)


def _measure(root: Tree[Any] | Token) -> tuple[int, int]:
    """Depth and node count of a tree, without recursion."""
    max_depth = 0
    nodes = 0
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > max_depth:
            max_depth = depth
        if isinstance(node, Tree):
            for c in node.children:
                if isinstance(c, Tree):
                    stack.append((c, depth + 1))
    return max_depth, nodes
