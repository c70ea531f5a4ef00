"""Text to typed AST: a thin wrapper over lark's LALR parser and `grammar/fluo.lark`.

Syntax errors do not stop the parse. At an unexpected token the parser tries to
insert the few tokens that make it acceptable (a missing `)`, `}` or name);
failing that it drops the token. Errors within a few tokens of the previous
one are not reported, so one mistake gives one diagnostic and a second, later
mistake still gives its own (after a word read whole, as `ownér` is, the next one
does however near). lark types never leave this module.

Text with no mistake at all, the usual case, takes a fast path over the same LALR
table that builds the AST directly (see the end of the module); the rest goes the
full way described above.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterator
from copy import copy
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cache
from importlib import resources
from itertools import chain, islice
from pathlib import PurePath
from typing import Any, Literal

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import LexerThread
from lark.parsers.lalr_analysis import Shift

from . import ast
from .diagnostics import Diagnostic, Related, error, nearest, sort_key, warning
from .values import INVISIBLE, lone_crs_as_lf, string_literal

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 100
MAX_RULE_NODES = 20_000
MAX_ERRORS = 100
TOO_MANY_ERRORS = f"more than {MAX_ERRORS} syntax errors; the rest are not reported"
"""FLUO403's message past `MAX_ERRORS` (the language server caps a document in the same words). The errors
counted, and this FLUO403, are marked `Diagnostic.capped`."""
MAX_RECOVERIES = 1_000  # syntax errors met, reported or not, before the rest of the file is skipped


def stop_message(rest: str = "the rest of the file") -> str:
    """FLUO403's message where the parser stops reading (past `MAX_RECOVERIES`), at the place it stops. What it
    counts is every place it had to recover, so a run reported as one error (1,001 stray `$`) reaches it too;
    `rest` is what goes unread (the language server reads a file rule by rule: there, the rest of the rule)."""
    return (
        f"more than {MAX_RECOVERIES} syntax errors (each counted, even where a run of them is reported as one): "
        f"from here, {rest} is not read"
    )


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
_UNITS = ", ".join(DURATION_UNITS)

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
_VALUES = frozenset({"NUMBER", "DURATION", "STRING"})  # a value of one kind may stand where another is expected
_EXPRESSION_START = frozenset(
    {"IDENT", "NUMBER", "STRING", "DURATION", "LPAR", "LSQB", "MINUS", "TRUE", "FALSE"}
)  # where all of these may come, an expression may: said as "an expression", not as a list of tokens


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
        self.last_whole = False  # the last error was read whole (see `report`)
        self.skip_rest = False  # set by FLUO105: what follows a whole bare expression is dropped unreported
        self.recoveries = 0  # syntax errors met so far, cascades included
        self.scan_budget = 16 * _CLOSING_SCAN  # characters `closing` may look at, over the whole text
        self.stray, self.stray_until = "", -1  # a run of a stray character reported, up to here
        self.unbraced_until = -1  # a `when`/`always`/`never` without braces was reported: up to here (the next
        # `rule`), the braces its clauses lack are inserted silently
        self.key_guesses: dict[int, str] = {}  # where a metadata key past ASCII (`ownér`) starts: FLUO's key named

    def report(self, diag: Diagnostic, whole: bool = False) -> None:
        """Record an error unless it is a cascade: fewer than 3 tokens after the previous one.

        An error after one `whole` (a word past ASCII read as one token of its place, the parser left as valid
        text leaves it: `ownér: 'x'` then `sevérity: error`) is no cascade of it, and is recorded however near.
        Past `MAX_ERRORS`, one FLUO403 says the rest are not reported.
        """
        if self.skip_rest:
            return
        if self.recoveries > MAX_RECOVERIES:
            return
        last = self.last_error_end
        after_whole, self.last_whole = self.last_whole, whole
        self.last_error_end = max(diag.span.end, last or 0)
        if last is not None and not after_whole and _tokens_between(self.text, last, diag.span.start) < 3:
            return
        if len(self.diagnostics) < MAX_ERRORS:
            self.diagnostics.append(replace(diag, capped=True))
        elif len(self.diagnostics) == MAX_ERRORS:
            self.diagnostics.append(error("FLUO403", TOO_MANY_ERRORS, diag.span, path=self.path, capped=True))

    def __call__(self, e: UnexpectedInput) -> bool:
        self.recoveries += 1
        if self.recoveries > MAX_RECOVERIES:
            return self._give_up(e)
        if isinstance(e, UnexpectedToken):
            return self._token(e)
        if isinstance(e, UnexpectedCharacters):
            return self._chars(e)
        return False

    def _give_up(self, e: UnexpectedInput) -> bool:
        """Past `MAX_RECOVERIES` errors (text that is mostly not FLUO): one FLUO403, and the rest is skipped.

        Recovery costs some work per error, so a file of garbage would otherwise take time in proportion
        to its size for diagnostics nobody reads. The lexer jumps to the end of the text; there the file
        ends if a few closing tokens end it, else the parse fails (no rules, only the diagnostics).
        """
        ip: Any = e.interactive_parser
        if self.recoveries == MAX_RECOVERIES + 1:
            pos = e.token.start_pos if isinstance(e, UnexpectedToken) else e.pos_in_stream
            start = len(self.text) if pos is None else pos
            if len(self.diagnostics) <= MAX_ERRORS:
                self.diagnostics.append(error("FLUO403", stop_message(), self.index.span(start, start), path=self.path))
            line_ctr = ip.lexer_thread.state.line_ctr
            line_ctr.feed(self.text[line_ctr.char_pos :])
        if isinstance(e, UnexpectedToken) and e.token.type == "$END":
            inserted = self._insertion(ip, e.token)
            if inserted is None:
                return False
            for name in inserted:
                ip.feed_token(self.synthetic(name, len(self.text)))
        return True

    def _token(self, e: UnexpectedToken) -> bool:
        tok: Token = e.token
        ip = e.interactive_parser
        if self.skip_rest:
            return tok.type != "$END"
        if self._sliding_window(ip, tok) or self._keyword_in_key(ip, tok) or self._keyword_as_name(ip, tok):
            return True
        if self._misspelled_keyword(ip, tok) or self._habit(ip, tok) or self._rule_keyword(ip, tok):
            return True
        if self._digit_id(ip, tok) or self._clause_outside_a_rule(ip, tok):
            return True
        expected = sorted(_accepts(ip), key=_order)  # not `e.expected`: the state's lookaheads, some impossible
        is_end = tok.type == "$END"
        if tok.type == "RULE" and "$END" in _accepts(ip):
            # `rule` after a whole bare expression: the file is one expression, so it can hold no rules
            start = tok.start_pos or 0
            if self.path.startswith("<"):  # `--expect`/`--detect` text, not a file
                message = "`rule` after the expression: give one expression here, or the rules in a file"
            else:
                message = (
                    "`rule` after a bare expression: a file holding a bare expression may hold nothing else; "
                    "put the expression in a rule's `expect` clause, or the rules in a file of their own"
                )
            self.report(error("FLUO105", message, self.index.span(start, tok.end_pos or start), path=self.path))
            self.skip_rest = True
            return True
        if is_end:
            start = end = len(self.text.rstrip())
            found = "end of file"
        else:
            start = tok.start_pos or 0
            end = tok.end_pos or start
            found = f"`{tok.value}`"
        span = self.index.span(start, end)
        inserted = self._insertion(ip, tok)
        if inserted is not None and start <= self.unbraced_until and set(inserted) <= {"LBRACE", "RBRACE"}:
            # a clause written without braces (`when E always F`): its braces were reported once, at the first
            for name in inserted:
                ip.feed_token(self.synthetic(name, start))
            if not is_end:
                ip.feed_token(tok)
            return True
        if inserted == ("LBRACE",) and _top_type(ip) in ("WHEN", "ALWAYS", "NEVER"):
            keyword = terminal_text(_top_type(ip) or "")
            message = f"`{keyword}` takes its expression in braces: `{keyword} {{ E }}`"
            self.report(error("FLUO100", message, span, path=self.path))
            following = _RULE_WORD.search(self.text, start)
            self.unbraced_until = len(self.text) if following is None else following.start()
            ip.feed_token(self.synthetic("LBRACE", start))
            ip.feed_token(tok)
            return True
        stack = ip.parser_state.value_stack
        if inserted == ("RBRACE",) and tok.type == "RULE" and stack and _end_of(stack[-1]) >= 0:
            # a rule left open: said where its last token ends, not at the next rule's `rule`
            end = _end_of(stack[-1])
            message = "expected `}` here, to close the rule before the next `rule`"
            related = (Related("the next rule starts here", span, self.path),)
            self.report(error("FLUO100", message, self.index.span(end, end), path=self.path, related=related))
            ip.feed_token(self.synthetic("RBRACE", start))
            ip.feed_token(tok)
            return True
        if inserted is not None:
            if len(inserted) == 1 and not (inserted[0] in _EXPRESSION_START and set(expected) >= _EXPRESSION_START):
                msg = f"expected {terminal_display(inserted[0])} before {found}"
            elif len(inserted) == 1:
                msg = f"expected {_expected_text(expected)} before {found}"
            else:
                msg = f"unexpected {found}; expected {_expected_text(expected)}{self._dashes(start)}"
            code = "FLUO104" if is_end else "FLUO100"
            self.report(error(code, msg, span, path=self.path))
            for name in inserted:
                ip.feed_token(self.synthetic(name, start))
            if not is_end:
                ip.feed_token(tok)
            return True
        code = "FLUO104" if is_end else "FLUO100"
        if tok.type in _VALUES:  # a value of the wrong kind (`window 5`): read as one of the kind expected
            wanted = [name for name in expected if name in _VALUES]
            if wanted == ["DURATION"] and self._as_duration(ip, tok):
                return True
            self.report(error(code, f"unexpected {found}; expected {_expected_text(expected)}", span, path=self.path))
            if len(wanted) == 1:
                ip.feed_token(self.synthetic(wanted[0], start))
                return True
            return True
        message = f"unexpected {found}; expected {_expected_text(expected)}{self._dashes(start)}"
        self.report(error(code, message, span, path=self.path))
        if expected == ["DURATION"]:
            # `window` without its duration (`window .x`): a missing one stands in and the token is read after it,
            # where dropping tokens until some value came read the rest of the rule, and the rules after it, away
            ip.feed_token(self.synthetic("DURATION", start))
            if is_end or not _feedable(ip, [tok.type]):
                return self._token(e)
            ip.feed_token(tok)
        return not is_end  # drop the token and go on

    def _dashes(self, start: int) -> str:
        """A hint for an error after `-- words` on the line of the token before it (`count() > 1 -- at most
        one`): a comment as SQL and Lua write one."""
        before = self.text[max(0, start - _NEAR) : start].rstrip()
        return "; `--` starts no comment: FLUO's comments start with `//`" if _SQL_COMMENT.search(before) else ""

    def _sliding_window(self, ip: Any, tok: Token) -> bool:
        """`window 1m every 10s`, `window sliding 1m`: other tools' sliding and hopping windows, where FLUO's
        are tumbling. One error says so, and the clause is read as `window D`; only `window tumbling D` gets that as a
        fix (a sliding rule cut to tumbling would change what it checks without the author choosing it)."""
        start = tok.start_pos or 0
        keyword = self.text.rfind("window", max(0, start - _NEAR), start + 1)
        clause = None if keyword < 0 else _SLIDING_WINDOW.match(self.text, keyword)
        if clause is None or not clause.start() <= start < clause.end() or not (clause["kind"] or clause["slide"]):
            return False
        if keyword and _WORD_CHAR.match(self.text, keyword - 1):
            return False
        length = clause["length"]
        if clause["slide"]:
            step = clause["slide"].strip(" \t,")
            message = (
                f"FLUO's windows do not slide (`{step}` is a sliding window's step): `window {length}` is tumbling, "
                f"each {length} of traces checked once and no two windows overlapping"
            )
        elif clause["kind"].lower() == "tumbling":
            message = f"FLUO's windows are tumbling without saying so: write `window {length}`"
        else:
            message = (
                f"FLUO has no {clause['kind'].lower()} windows: `window {length}` is tumbling, each {length} of "
                "traces checked once and no two windows overlapping"
            )
        stack = ip.parser_state.value_stack
        take_back = 0
        while take_back < len(stack) and _start_of(stack[-1 - take_back]) >= clause.start():
            take_back += 1
        # Only `tumbling` keeps its meaning without the word; a sliding rule cut to tumbling checks each
        # stretch once where every step was meant: the message says what FLUO has, no fix applies it unasked.
        meant = f"window {length}" if not clause["slide"] and clause["kind"].lower() == "tumbling" else None
        self._read_as(ip, clause.start(), clause.end(), message, meant, take_back)
        stack = ip.parser_state.value_stack
        if not stack or _end_of(stack[-1]) < clause.end("length"):  # the clause is not on the stack: read it
            ip.feed_token(self.token("WINDOW", "window", clause.start(), clause.start() + len("window")))
            ip.feed_token(self.token("DURATION", length, clause.start("length"), clause.end("length")))
        return True

    def _keyword_in_key(self, ip: Any, tok: Token) -> bool:
        """`messaging.rule.name`, `x.when.y`: an attribute key with a keyword for one of its parts."""
        top = _top(ip)
        if top is None or top.type != "DOT" or top.end_pos != tok.start_pos or str(tok.value) not in keywords():
            return False
        return self._bracketed_key(ip, tok.start_pos or 0, f"`{tok.value}` is a keyword")

    def _keyword_as_name(self, ip: Any, tok: Token) -> bool:
        """`trace.has(rule == 1)`, `where(when.x > 1)`: an attribute named after a keyword, where an expression
        starts and the keyword cannot, with an operator (or the end of the operand) after it."""
        word = str(tok.value)
        if word not in keywords() or not _KEYWORD_OPERAND.match(self.text, tok.end_pos or 0):
            return False
        accepts = _accepts(ip)
        if tok.type in accepts or not accepts >= _EXPRESSION_START:
            return False
        return self._bracketed_key(ip, tok.start_pos or 0, f"`{word}` is a keyword")

    def _bracketed_key(self, ip: Any, at: int, why: str) -> bool:
        """A dotted name that is no name for `why`, at `at` (a keyword, a letter past ASCII): one error
        that says how to write it, `attributes["k"]`, and the whole name read as one that cannot be checked.
        A rule id past ASCII (`rule latência`) is read as its ASCII form, a tag (`tags: [usuário]`) as a string."""
        start, end = _key_around(self.text, at)
        path = self.text[start:end]
        stack = ip.parser_state.value_stack
        take_back = 0
        while take_back < len(stack) and _start_of(stack[-1 - take_back]) >= start:
            take_back += 1
        base = ip.parser_state.state_stack
        if take_back >= len(base):
            return False
        accepts = _Table.of(ip).accepts(_Stack(base, len(base) - take_back))
        folded = unicodedata.normalize("NFKC", path)
        if not accepts >= _EXPRESSION_START:
            return self._folded_value(ip, start, end, folded, accepts, take_back, why) or self._ascii_name(
                ip, start, end, accepts, take_back, why
            )
        plain = without_accents(path)
        if folded != path and folded.isascii() and (_DOTTED.fullmatch(folded) or _NUMBERISH.fullmatch(folded)):
            # `\uff4eame` (a full-width n, an input method's slip) is `name`, not an attribute key that never matches
            fix: str | None = folded
            message = f"`{path}` is `{folded}` in full-width or compatibility letters ({why}): write `{fix}`"
        elif plain != path and _DOTTED.fullmatch(plain) and _names_fluo_knows(path, plain):
            # `tráce.spans`: FLUO's own name with an accent, not an attribute key (nor one outside a predicate)
            fix = plain
            message = f"`{path}` is `{plain}` with an accent ({why}): write `{fix}`"
        elif _ASCII_DIGIT.match(folded):
            # `1²ü`, `1\uff10μs`: no name starts with a digit, so a number or a duration, never an attribute key
            if self._folded_value(ip, start, end, folded, accepts, take_back, why):
                return True
            fix = None
            message = f"`{path}` is no number or duration ({why}): a duration is a number and one of {_UNITS}"
        elif self.text[end:].lstrip(" \t").startswith("("):
            # `whereé(...)`: called, so a method's name mistyped, never an attribute key
            method = path.rpartition(".")[2]
            message = f"`{method}` is no method name ({why})"
            close = self.closing(self.text.index("(", end))
            if close is None:
                # `whereé(x` with no `)`: the receiver stays and the name is read as a method's, so the `(` opens
                # its arguments and the `)` missing is its own error, not the rest read as metadata keys
                named = end - len(method)
                at_name = 0
                while at_name < len(stack) and _start_of(stack[-1 - at_name]) >= named:
                    at_name += 1
                if named > start and at_name < len(stack) and _is_token(stack[-1 - at_name], ("DOT",)):
                    self._read_as(ip, start, end, message, None, at_name)
                    ip.feed_token(self.token("IDENT", _MISSING, named, end))
                    return True
                self._read_as(ip, start, end, message, None, take_back)
                ip.feed_token(self.token("IDENT", _MISSING, start, end))
                return True
            # `name.contains('x')`: an operator written as a method, with one operand: the operator as FLUO writes it
            receiver, arg = path.rpartition(".")[0], self.text[self.text.index("(", end) + 1 : close].strip()
            infix = method in _INFIX_WORDS and receiver and arg and _is_postfix(arg, literal=True)
            fix = f"{receiver} {method} {arg}" if infix else None
            if fix is not None:
                fix = fix if _alone(self.text[:start], self.text[close + 1 :]) else f"({fix})"
                message += f": it is an operator, write `{fix}`"
            # the call, its arguments too, is one value that cannot be checked: `.exists()` after it reads on
            fix_end = close + 1 if fix is not None else end
            self._read_as(ip, start, close + 1, message, fix, take_back, fix_end=fix_end, whole=True)
            ip.feed_token(self.token("IDENT", _MISSING, start, close + 1))
            return True
        else:
            fix = _bracketed(path)
            how = f"write `{fix}`" if fix is not None else 'write an attribute key as `attributes["key"]`'
            if fix is not None and "." in path:
                # a bare dotted name would also look through nested maps; `attributes["k"]` reads the key as is
                how += " (the key as OpenTelemetry writes it, flat; a map nested in an attribute is not searched)"
            message = f"`{path}` cannot be written bare ({why}): {how}"
        self._read_as(ip, start, end, message, fix, take_back)
        ip.feed_token(self.token("IDENT", _MISSING, start, end))
        return True

    def _folded_value(
        self, ip: Any, start: int, end: int, folded: str, accepts: set[str], take_back: int, why: str
    ) -> bool:
        """`window 500ms` or `window 500μs` in full-width digits: a number or duration in full-width or
        compatibility characters where one goes outside an expression, read as the ASCII one (as an expression's
        full-width `5ms` is fixed)."""
        path = self.text[start:end]
        parts = _duration_parts(folded)
        if folded == path or parts is None:
            return False
        number, unit = parts
        meant_unit = _unit_meant(unit) if unit else ""
        kind = "DURATION" if unit else "NUMBER"
        if meant_unit is None or kind not in accepts:
            return False
        fix = number + meant_unit
        message = f"`{path}` is `{folded}` in full-width or compatibility letters ({why}): write `{fix}`"
        self._read_as(ip, start, end, message, fix, take_back)
        ip.feed_token(self.token(kind, fix, start, end))
        return True

    def _ascii_name(self, ip: Any, start: int, end: int, accepts: set[str], take_back: int, why: str) -> bool:
        """`rule latência {`, `usuário: 1`, `tags: [usuário]`: a word past ASCII for a rule id, a metadata key
        or value."""
        word = self.text[start:end]
        stack = ip.parser_state.value_stack
        below = stack[-1 - take_back] if take_back < len(stack) else None
        if "." in word or "IDENT" not in accepts:
            return False
        if _is_token(below, ("RULE",)):
            term, ident = "IDENT", _ascii_id(word)
            # `rule 日本`: no letter survives, and `__` would be every such rule's id: no fix
            fix = ident if any(c.isalpha() for c in ident) else None
            how = f"write `{fix}`" if fix else "write it in ASCII letters, digits and `_`"
            message = f"`{word}` is no rule id ({why}): {how}"
            self._read_as(ip, start, end, message, fix, take_back, whole=True)
            # read as an id of its code points (`_u65e5_u672c`): two such rules are told apart, as written
            read = ident if fix else "_" + "_".join(f"u{ord(c):04x}" for c in word)
            ip.feed_token(self.token(term, read, start, end))
            return True
        if "STRING" not in accepts and self.text[end:].lstrip(" \t").startswith(":"):
            # `usuário: 'x'`: a metadata key none of FLUO's is; which was meant, only a close one says
            key = meta_key_meant(word)
            hint = f"did you mean `{key}`?" if key else f"the keys are {', '.join(ast.META_KEYS)}"
            # the key named is the fix only if it takes the value, read later: `_key_fixes` decides
            self._read_as(ip, start, end, f"`{word}` is no metadata key ({why}); {hint}", None, take_back, whole=True)
            if key:
                self.key_guesses[start] = key
            ip.feed_token(self.token("IDENT", _MISSING, start, end))  # read as no key: checks stay quiet
            return True
        owner = stack[-2 - take_back] if _is_token(below, ("COLON",)) and take_back + 2 <= len(stack) else None
        name = str(owner.value) if isinstance(owner, Token) and owner.type == "IDENT" else ""
        if name == _MISSING and isinstance(owner, Token):  # `sevérity: crítical`: the key its error names
            name = self.key_guesses.get(owner.start_pos or 0, "")
        words = _META_WORDS.get(name)
        if words is not None:
            # `severity: crítical`: a word of the key's own, not a string (quoted, FLUO212 would follow)
            from . import builtins as b  # as in `_names_fluo_knows`: the registry is needed only here

            plain = without_accents(word).lower()  # `CRÍTICAL`, `fatál`: as the typechecker reads an ASCII one
            meant = plain if plain in words else b.foreign_name(name, plain) or nearest(plain, words)
            how = f"write `{meant}`" if meant else f"{name} takes {ast.META_KEYS[name]}"
            self._read_as(ip, start, end, f"`{word}` is no {name} value ({why}): {how}", meant, take_back, whole=True)
            term = _terminal_of(meant) if meant in keywords() else "IDENT"
            ip.feed_token(self.token(term, meant or _MISSING, start, end))  # no word meant: read as missing
            return True
        if "STRING" not in accepts or "'" in word:
            return False
        fix = f"'{word}'"
        self._read_as(ip, start, end, f"`{word}` is no name ({why}): quote it, `{fix}`", fix, take_back, whole=True)
        ip.feed_token(self.token("STRING", fix, start, end))
        return True

    def _misspelled_keyword(self, ip: Any, tok: Token) -> bool:
        """`exepct trace...`: a name just read as a metadata key is a clause keyword misspelled.

        The name was shifted alone (a metadata key is a name and `:`; no reduction
        happens before the `:` is missing), so it is taken back off the parser's
        stacks and fed again as the keyword, which spares the cascade of errors a
        metadata key without `:` would start. One FLUO107 says so, with the fix.
        """
        state = ip.parser_state
        last = _top(ip)
        if last is None or last.type != "IDENT" or tok.type == "COLON":
            return False
        keyword = _keyword_meant(str(last.value))
        if keyword is None:
            return False
        before = _probe(ip)
        before.parser_state.state_stack.pop()
        before.parser_state.value_stack.pop()
        retyped = Token(_KEYWORD_TERMINALS[keyword], keyword, last.start_pos, last.line, last.column)
        try:
            if tok.type not in _accepts(_fed(before, retyped)):
                return False
        except UnexpectedInput:
            return False
        state.state_stack.pop()
        state.value_stack.pop()
        ip.feed_token(retyped)
        ip.feed_token(tok)
        span = self.index.span(last.start_pos or 0, last.end_pos or 0)
        message = f"unknown keyword `{last.value}`; did you mean `{keyword}`?"
        self.report(error("FLUO107", message, span, path=self.path, suggestion=keyword))
        return True

    def _rule_keyword(self, ip: Any, tok: Token) -> bool:
        """`Rule b {` or `rlue b {` after a rule, where only `rule` goes: FLUO107, read as `rule`."""
        if tok.type != "IDENT" or "RULE" not in _accepts(ip) or _keyword_meant(str(tok.value)) != "rule":
            return False
        start, end = tok.start_pos or 0, tok.end_pos or 0
        message = f"unknown keyword `{tok.value}`; did you mean `rule`?"
        self.report(error("FLUO107", message, self.index.span(start, end), path=self.path, suggestion="rule"))
        ip.feed_token(self.token("RULE", "rule", start, end))
        return True

    def _clause_outside_a_rule(self, ip: Any, tok: Token) -> bool:
        """`expect trace.x > 1` as a whole file, or `window 1m ...` as `--expect` text: a rule's clause where no
        rule is. One error saying where a clause goes (or that the expression goes alone); the keyword is
        dropped, so what follows is read as the bare expression it would be without it."""
        start = tok.start_pos or 0
        before = self.text[:start] if start <= _FIRST_TOKENS_WITHIN else None  # what precedes, if it can be little
        if tok.type in _CLAUSE_KEYWORDS and (
            (before is not None and not _COMMENT.sub("", before).strip()) or "RULE" in _accepts(ip)
        ):
            keyword = str(tok.value)
            span = self.index.span(start, tok.end_pos or start)
        elif tok.type == "DURATION" and before is not None and re.fullmatch(r"\s*window\s*", _COMMENT.sub("", before)):
            keyword = "window"
            span = self.index.span(self.text.index("window"), tok.end_pos or start)
        else:
            return False
        if self.path.startswith("<"):  # `--expect`/`--detect` text, not a file
            message = f"`{keyword}` is a rule's clause: give the expression alone here, or a rule in a file"
            if keyword == "window":
                message += " (`rule NAME { window 1m expect ... }`: a windowed rule needs one)"
        else:
            message = (
                f"`{keyword}` outside a rule: a clause goes in `rule NAME {{ {keyword} ... }}`; a file may also hold "
                "one expression alone, a rule named after the file"
            )
        self.report(error("FLUO100", message, span, path=self.path))
        return True  # the keyword (or the window's length) dropped

    def _digit_id(self, ip: Any, tok: Token) -> bool:
        """`rule 9bad {`, `rule 5xx-errors {`: a rule id that starts with a digit (the lexer reads a number or a
        duration). One error, fixed as the id a file named so gets (`_9bad`), and the rule read with that id, so
        its body is checked (it was read with none, and went unchecked)."""
        if tok.type not in ("NUMBER", "DURATION") or not _is_token(_top(ip), ("RULE",)):
            return False
        text, start = self.text, tok.start_pos or 0
        end = start
        while end < len(text) and (name_char(text[end]) or text[end] in "-."):
            end += 1
        word = text[start:end]
        ident = _ascii_id(word)
        # `rule 9日本`: no letters left to name it by (each would be `_`)
        fix = ident if _ID_SPELLING.fullmatch(without_accents(word)) else None
        how = f"write `{fix}`" if fix else "write it with ASCII letters, digits and `_`"
        rule = "an id starts with a letter or `_`, and holds letters, digits and `_`"
        message = f"`{word}` is no rule id ({rule}): {how}"
        self._read_as(ip, start, end, message, fix, whole=True)  # one id for the word: no cascade follows
        read = fix or "_" + "_".join(f"u{ord(c):04x}" for c in word)  # no fix: an id of its code points, as written
        ip.feed_token(self.token("IDENT", read, start, end))
        return True

    def _habit(self, ip: Any, tok: Token) -> bool:
        """A habit from another language (`AND`, `<>`, `size(x)`, `5 sec`, `expect:`): one error saying how
        FLUO writes it, and the text read as meant, so nothing cascades."""
        if tok.type == "$END":
            return False
        text = self.text
        kind = tok.type
        start, end = tok.start_pos or 0, tok.end_pos or 0
        top = _top(ip)
        adjacent = top is not None and top.end_pos == start
        if kind == "IDENT" and self._foreign_word(ip, tok):
            return True
        if top is not None and top.type == "IDENT" and kind != "COLON" and self._foreign_word_before(ip, top, tok):
            return True
        if top is not None and top.type == "IDENT" and kind != "COLON" and self._word_after_clause(ip, top, tok):
            return True
        if top is not None and top.type == "NUMBER" and kind == "IDENT":  # `5 sec`
            unit = _unit_meant(str(tok.value))
            number = str(top.value)
            if unit is not None and _PLAIN_NUMBER.fullmatch(number) and _feedable(ip, ["DURATION"], drop=1):
                meant = number + unit
                self._read_as(ip, top.start_pos or 0, end, f"unknown unit `{tok.value}`: write `{meant}`", meant, 1)
                ip.feed_token(self.token("DURATION", meant, top.start_pos or 0, end))
                return True
        eq = _terminal_of("==")
        if kind == eq and top is not None and top.type == "IDENT" and _feedable(ip, ["COLON"]):  # `severity == error`
            message = f"a metadata key takes `:`: `{top.value}: ...`"
            span = self.index.span(top.end_pos or start, end)  # `severity == error` -> `severity: error`
            self.report(error("FLUO100", message, span, path=self.path, suggestion=":"))
            ip.feed_token(self.token("COLON", ":", start, end))
            return True
        ne = _terminal_of("!=")
        if kind == "MORETHAN" and adjacent and top is not None and top.type == "LESSTHAN" and _feedable(ip, [ne], 1):
            self._read_as(ip, top.start_pos or 0, end, "unexpected `<>`; did you mean `!=`?", "!=", 1)  # `<>`
            ip.feed_token(self.token(ne, "!=", top.start_pos or 0, end))
            return True
        if kind in _STRUCTURAL and adjacent and top is not None and top.type == kind and _feedable(ip, ["AND"], 1):
            structural, relatives = _STRUCTURAL[kind]  # TraceQL's `A >> B`: read as `A and B`, no cascade
            message = (
                f"FLUO has no `{top.value}{tok.value}` (TraceQL's {structural} operator): a span's `{relatives}` "
                f"are spans, e.g. `trace.has(P).any({relatives}.any(Q))`"
            )
            self._read_as(ip, top.start_pos or 0, end, message, None, 1)
            ip.feed_token(self.token("AND", "and", top.start_pos or 0, end))
            return True
        # `1s < duration < 2s`, `a == b == c`, `x in l in m`, `a == b not in c`: read as `1s < duration and ? < 2s`
        stack = ip.parser_state.value_stack
        at = next(
            (i for i in range(len(stack) - 1, len(stack) - 4, -1) if i >= 0 and _is_token(stack[i], _comparisons())),
            None,
        )
        not_in = _NOT_IN.match(text, start) if kind == "NOT" else None
        if (
            at is not None
            and (kind in _comparisons() or not_in is not None)
            and not self._unclosed_before(ip, kind)
            and self._operand(ip, ["AND", "IDENT", kind])
        ):
            first = str(stack[at].value)
            first = "not in" if first == "in" and at > 0 and _is_token(stack[at - 1], ("NOT",)) else first
            second = "not in" if not_in is not None else str(tok.value)
            end = end if not_in is None else not_in.end()
            message = f"comparisons do not chain: write `a {first} b and b {second} c`"
            if {first, second} & {"==", "!="}:  # `a == b <= c` may lack a `)`: `a == (b <= c)`
                message += ", or put one in parentheses"
            self.report(error("FLUO100", message, self.index.span(start, end), path=self.path))
            ip.feed_token(self.synthetic("AND", start))
            ip.feed_token(self.synthetic("IDENT", start))
            ip.feed_token(tok)
            return True
        if kind == "SLASH" and text.startswith("/*", start):  # a C comment
            return self._block_comment(ip, start, 0)
        if kind == "STAR" and adjacent and top is not None and top.type == "SLASH" and text.startswith("/*", end - 2):
            return self._block_comment(ip, end - 2, 1)  # `/` was read as division
        if kind == "COMMA" and self._parenthesized_list(ip):
            return True
        if kind == "DURATION" and adjacent and top is not None and top.type == "DURATION":  # `1h30m`
            run = _DURATION_RUN.match(text, top.start_pos or 0)
            total = run and _run_ns(run.group())
            if run is not None and total is not None and _feedable(ip, ["DURATION"], drop=1):
                meant = _in_one_unit(total)
                self._read_as(ip, run.start(), run.end(), f"a duration has one unit: write `{meant}`", meant, 1)
                ip.feed_token(self.token("DURATION", meant, run.start(), run.end()))
                return True
        accepts = _accepts(ip)
        if kind == "DOT" and accepts >= _EXPRESSION_START:
            after = _AFTER_DOT.match(text, end)
            if after is not None and after.group(1):  # `.5s`
                meant = "0." + after.group()
                term = "DURATION" if after.group(2) else "NUMBER"
                if term in accepts:
                    self._read_as(ip, start, after.end(), f"write `{meant}`, with a digit before the point", meant)
                    ip.feed_token(self.token(term, meant, start, after.end()))
                    return True
            if after is not None and after.group(3):  # `.service`
                name = after.group(3)
                message = f"a field of the current span is its bare name: `{name}`"
                self.report(
                    error("FLUO100", message, self.index.span(start, after.end()), path=self.path, suggestion=name)
                )
                return True
        if kind == "LPAR" and adjacent and top is not None and top.type == "IDENT" and self._function(ip, top, tok):
            return True
        if kind == "MINUS" and adjacent and top is not None and top.type == "IDENT" and self._dashed(ip, top):
            return True
        if kind == "COLON" and top is not None and top.type in _CLAUSE_TERMINALS:  # `expect: E`
            keyword = top.value
            message = f"no `:` after `{keyword}`: write `{keyword} E`"
            self.report(error("FLUO100", message, self.index.span(start, end), path=self.path, suggestion=""))
            return True
        if kind == "COLON" and top is not None and top.type == "RULE":  # `rule: r` and YAML keys after it
            message = "a rule is written `rule ID { ... }` (`rule r { severity: error expect E }`), not as YAML keys"
            self.report(error("FLUO100", message, self.index.span(start, end), path=self.path))
            self.skip_rest = True
            return True
        if kind == "LBRACE" and accepts >= _EXPRESSION_START:  # TraceQL's `{ span.x = 1 }`
            close = self.closing(start)
            if close is not None and "IDENT" in accepts:
                message = "FLUO has no `{ ... }` span selector: write `trace.spans.where(...)`"
                if top is not None and top.type in ("EXPECT", "DETECT"):
                    message = f"`{top.value}` takes an expression without braces: `{top.value} E`"
                self._read_as(ip, start, close + 1, message, None)
                ip.feed_token(self.token("IDENT", _MISSING, start, close + 1))
                return True
        return False

    def _block_comment(self, ip: Any, start: int, take_back: int) -> bool:
        """`/* ... */`: FLUO's comments are `//` to the end of the line; this one is read as a comment."""
        close = self.text.find("*/", start + 2)
        end = len(self.text) if close < 0 else close + 2
        message = "FLUO has no `/* */` comments: a comment starts with `//` and runs to the end of the line"
        self._read_as(ip, start, end, message, None, take_back)
        return True

    def _parenthesized_list(self, ip: Any) -> bool:
        """`x in (500, 503)`: a list is written in brackets."""
        stack = ip.parser_state.value_stack
        if len(stack) < 3 or not _is_token(stack[-2], ("LPAR",)) or not _is_token(stack[-3], ("IN",)):
            return False
        lpar: Token = stack[-2]
        start = lpar.start_pos or 0
        close = self.closing(start)
        if close is None or not _feedable(ip, ["LSQB", "RSQB"], drop=2):
            return False
        meant = f"[{self.text[start + 1 : close]}]"
        self._read_as(ip, start, close + 1, f"a list is written in brackets: `{meant}`", meant, 2)
        ip.feed_token(self.token("LSQB", "[", start, start + 1))  # read as `[]`: the error stands for its items
        ip.feed_token(self.token("RSQB", "]", close, close + 1))
        return True

    def _foreign_word(self, ip: Any, tok: Token) -> bool:
        """`AND`, `LIKE`, `matchs`, `IS NULL`, `BETWEEN` where an operator goes: FLUO's own word suggested."""
        word = str(tok.value)
        low = word.lower()
        text = self.text
        start, end = tok.start_pos or 0, tok.end_pos or 0
        eq = _terminal_of("==")
        suggestion: str | None
        if low in ("is", "between"):
            phrase = (_NULL_TEST if low == "is" else _BETWEEN).match(text, start)
            if phrase is not None and self._operand(ip, [eq, "IDENT"]):
                fix_from = start
                if low == "between":
                    message = "FLUO has no `BETWEEN`: write `x >= low and x <= high`"
                    suggestion = None
                elif phrase.group(1):
                    message = "FLUO has no null: `x not in []` holds when the attribute `x` is present"
                    suggestion = "not in []"
                else:
                    message = "FLUO has no null: a missing attribute `x` is `not (x not in [])`"
                    suggestion = None
                    left = _whole_comparison(text, start, phrase.end())
                    if left is not None:  # the whole `x IS NULL` is replaced
                        suggestion = f"not ({text[left:start].rstrip()} not in [])"
                        message = f"FLUO has no null: a missing attribute is `{suggestion}`"
                        fix_from = left
                self._read_as(ip, start, phrase.end(), message, suggestion, fix_from=fix_from)
                ip.feed_token(self.token(eq, "==", start, phrase.end()))  # `x == ?`: no meaning, no cascade
                ip.feed_token(self.token("IDENT", _MISSING, phrase.end(), phrase.end()))
                return True
            is_not = _IS_NOT.match(text, start) if low == "is" else None
            ne = _terminal_of("!=")
            if is_not is not None and self._operand(ip, [ne]):  # `status is not error`
                written = text[start : is_not.end()]
                self._read_as(ip, start, is_not.end(), f"unexpected `{written}`; did you mean `!=`?", "!=")
                ip.feed_token(self.token(ne, "!=", start, is_not.end()))
                return True
        meant = _operator_meant(word)
        if meant is None or meant == word:
            return False
        fix_end = None
        if meant == "not" and (following := _IN_WORD.match(text, end)) is not None:  # `NOT IN`
            meant, end = "not in", following.end()
        terminals = [_terminal_of(w) for w in meant.split()]
        if low not in _FOREIGN_WORDS:  # a guess (`andd`, `notes`): only where the fixed text reads on
            terminals_on = [*terminals, _next_terminal(text, end) or "$END"]
            if not self._operand(ip, terminals_on):
                return False
        elif not self._operand(ip, terminals):
            return False
        message = f"unexpected `{text[start:end]}`; did you mean `{meant}`?"
        suggestion = meant
        operand = _STRING_AT.match(text, _after_space(text, end))
        if meant.endswith("in") and text.startswith("(", _after_space(text, end)):  # `IN (500, 503)`
            lpar = _after_space(text, end)
            close = self.closing(lpar)
            if close is not None:
                suggestion = f"{meant} [{text[lpar + 1 : close]}]"
                message += f" A list is written in brackets: `{suggestion}`"
                fix_end = close + 1
        elif low in ("like", "ilike"):  # a LIKE pattern is no regular expression: `%` is `.*`
            regex = None if operand is None else _like_regex(operand.group(), ignore_case=low == "ilike")
            if regex is None:
                message += " It takes a regular expression (`.*` for `%`, `.` for `_`), not a LIKE pattern"
                suggestion = None
            else:
                suggestion = f"matches {regex}"
                message += f" With a regular expression: `{suggestion}`"
                fix_end = operand.end() if operand is not None else None
        self._read_as(ip, start, end, message, suggestion, fix_end=fix_end)
        for name, value in zip(terminals, meant.split(), strict=True):
            ip.feed_token(self.token(name, value, start, end))
        return True

    def _foreign_word_before(self, ip: Any, top: Token, tok: Token) -> bool:
        """`where(NOT x)`, `expect a AND b`: the word was read as a name (after a clause's whole expression, as a
        metadata key), and only the token after it shows it was not one."""
        word = str(top.value)
        meant = _operator_meant(word)
        if meant is None or meant == word:
            return False
        if meant in ("not", "and", "or") and _feedable(ip, [_terminal_of(meant), tok.type], drop=1):
            start, end = top.start_pos or 0, top.end_pos or 0
            self._read_as(ip, start, end, f"unexpected `{word}`; did you mean `{meant}`?", meant, 1)
            ip.feed_token(self.token(_terminal_of(meant), meant, start, end))
            ip.feed_token(tok)
            return True
        return self._operator_after_clause(ip, top, tok, meant)

    def _operator_after_clause(self, ip: Any, word: Token, tok: Token, meant: str) -> bool:
        """`expect a AND b`, `expect a NOT IN l`, `expect a LIKE 'x%'`: the word after the clause's whole
        expression was shifted as a metadata key. The clause is reopened and the word read as `_foreign_word`
        reads it inside an expression; the stacks stay as they were if that cannot be."""
        text, low = self.text, str(word.value).lower()
        if meant not in _OPERATOR_WORDS and meant != "not in":
            return False
        if tok.type == "IDENT" and text.startswith(":", _after_space(text, tok.end_pos or 0)):
            return False  # `expect a AND` then `severity: error`: the operand is missing, the key is one
        if low not in _FOREIGN_WORDS and meant in ("and", "or", "not") and tok.type in _META_LITERALS:
            return False  # `bands 'x'`: a guessed `and` before a value is more likely a key without its `:`
        phrase = _IN_WORD.match(text, word.end_pos or 0) if meant == "not" else None
        read_in = phrase is not None and (tok.end_pos or 0) <= phrase.end()  # `NOT IN`: `IN` is part of the word
        names = [_terminal_of(w) for w in ("not in" if read_in else meant).split()]
        state = ip.parser_state
        states, values = list(state.state_stack), list(state.value_stack)
        if not self._reopen_clause(ip, names if read_in else [*names, tok.type]):
            return False
        if not self._foreign_word(ip, word):
            state.state_stack[:], state.value_stack[:] = states, values
            return False
        if not read_in:
            ip.feed_token(tok)
        return True

    def _word_after_clause(self, ip: Any, word: Token, tok: Token) -> bool:
        """`expect a bands trace.x`, `expect a bands 'x'`: after the clause's whole expression a word that is no
        operator nor metadata key (shifted as a key) before an operand. One error at the word: the clause's
        expression ends there, where an operator goes. The clause is reopened and the word read as a missing
        operator, so what follows is its right operand, not a key and its value.

        A word that starts a line, before what may be a metadata value (`bands 'x'`, `bands trace`), is read as
        a key without its `:`, as likely there; on the expression's line it is not."""
        name = str(word.value)
        if name == _MISSING or name in ast.META_KEYS or meta_key_meant(name) is not None:
            return False
        after = _next_terminal(self.text, tok.end_pos or 0)
        if after is None:
            return False
        line = _before_space(self.text, word.start_pos or 0)
        if (line == 0 or self.text[line - 1] in "\r\n") and _feedable(ip, ["COLON", tok.type, after]):
            return False
        values = ip.parser_state.value_stack
        clause = values[-2].children[-1] if len(values) >= 2 and isinstance(values[-2], Tree) else None
        if not isinstance(clause, Tree) or not self._reopen_clause(ip, ["AND", tok.type, after]):
            return False
        start, end = word.start_pos or 0, word.end_pos or 0
        message = f"unexpected `{name}`; expected an operator (the `{clause.data}` expression ends before it)"
        self.report(error("FLUO100", message, self.index.span(start, end), path=self.path))
        ip.feed_token(self.token("AND", _MISSING, start, end))
        ip.feed_token(tok)
        return True

    def _reopen_clause(self, ip: Any, names: list[str]) -> bool:
        """`expect a AND b`: at the word after the clause's expression (shifted as a metadata key), the clause was
        already whole, reduced into the rule's items. Its expression is put back on the parser's stacks as an
        operand that `names` may follow (as `_operand` does), after its keyword; the word comes off.

        False, and the stacks as they were, if the rule's last item is no `expect`/`detect` or `names` cannot
        follow its expression.
        """
        values, states = ip.parser_state.value_stack, ip.parser_state.state_stack
        if len(values) < 3 or not _is_token(values[-3], ("LBRACE",)) or not isinstance(values[-2], Tree):
            return False
        items, table = values[-2], _Table.of(ip)
        clause = items.children[-1] if items.children else None
        if not isinstance(clause, Tree) or clause.data not in ("expect", "detect") or len(clause.children) != 1:
            return False
        kept_states, kept_values = states[:-2], values[:-2]
        if len(items.children) > 1:  # the items before the clause, as the parser had them
            goto = table.states[kept_states[-1]].get(items.data)
            if goto is None or goto[0] is not Shift:
                return False
            kept_states.append(goto[1])
            kept_values.append(Tree(items.data, items.children[:-1]))
        keyword = clause.data.upper()
        shift = table.states[kept_states[-1]].get(keyword)
        if shift is None or shift[0] is not Shift:
            return False
        start = _start_of(clause)
        kept_states.append(shift[1])
        kept_values.append(self.token(keyword, str(clause.data), start, start + len(clause.data)))
        was = list(states), list(values)
        states[:], values[:] = kept_states, kept_values
        if self._place(ip, clause.children[0], names):
            return True
        states[:], values[:] = was
        return False

    def _operand(self, ip: Any, names: list[str]) -> bool:
        """Whether `names` can follow the expression just read, making the parser take it as an operand if need be.

        lark's table reduces on any token that may follow an expression somewhere, so at `where(a AND b)` the `a`
        is already a whole argument, where `and` cannot come: it is put back on the stacks as the operand the
        operator takes (`_place`), as if the parser had seen the operator coming. Nothing changes if it cannot be.
        """
        if _feedable(ip, names):
            return True
        states, values = ip.parser_state.state_stack, ip.parser_state.value_stack
        if len(states) < 2 or not isinstance(values[-1], Tree | Token):
            return False
        top_state, top = states.pop(), values.pop()
        if self._place(ip, top, names):
            return True
        states.append(top_state)
        values.append(top)
        return False

    def _place(self, ip: Any, expr: Any, names: list[str]) -> bool:
        """Push `expr`, an expression reduced whole, on the parser's stacks as the operand the operator `names[0]`
        takes, such that `names` follow; False, and the stacks unchanged, if it cannot be.

        The operator binds as the grammar says: in `a or b AND c` it takes `b`, so `a or b` is pushed as the parser
        had it before it read `b` whole (`_spine`), and the tree built on is the one `a or b and c` gives. An
        expression read some other way (`a == b IN c`, comparisons that do not chain) is pushed whole, as the
        first of `_OPERAND_LEVELS` that `names` may follow.
        """
        state, table = ip.parser_state, _Table.of(ip)
        binding = _BINDING.get(names[0], len(_BINDING))
        for symbols in (self._spine(expr, binding), *([(level, expr)] for level in _OPERAND_LEVELS)):
            trial = _Stack(state.state_stack)
            if not all(_shift_symbol(table, trial, symbol) for symbol, _ in symbols):
                continue
            if not all(table.feed(trial, name) for name in names):
                continue
            for symbol, value in symbols:
                if symbol.isupper():  # lark reduces what it takes, with its tree builder, as when parsing
                    ip.feed_token(value)
                else:
                    state.state_stack.append(table.states[state.state_stack[-1]][symbol][1])
                    state.value_stack.append(value)
            return True
        return False

    def _spine(self, expr: Any, binding: int) -> list[tuple[str, Any]]:
        """`expr` as the symbols the parser had before its last operand was reduced into it, as far as an
        operator of `binding` (`_BINDING`) takes that operand: for `and`, `a or b` is `a`@and_expr `or` `b`;
        `a and b` stays whole, at `and_expr`. For `or`, `a or b` is `a` `or` `b` (one `or` of three operands
        follows, as parsed). An expression in parentheses stays whole: the operator does not reach into it."""
        kind = expr.data if isinstance(expr, Tree) else None
        reach = _LOGIC_LEVELS.get(kind or "")
        end = _end_of(expr)
        if end >= 0 and _next_terminal(self.text, end) == "RPAR":  # `(a or b)`: an atom
            return [("postfix", expr)]
        if reach is None or binding < reach or end < 0:
            return [(_EXPR_LEVELS.get(kind or "", "postfix"), expr)]
        if kind == "not_":
            start = _start_of(expr)
            return [("NOT", self.token("NOT", "not", start, start + 3)), *self._spine(expr.children[0], binding)]
        operand, joiner = ("and_expr", "OR") if kind == "or_" else ("not_expr", "AND")
        *init, last = expr.children
        symbols: list[tuple[str, Any]] = []
        for child in init:
            symbols += [(operand, child), (joiner, self.synthetic(joiner, _end_of(child)))]
        return symbols + (self._spine(last, binding) if binding > reach else [(operand, last)])

    def _function(self, ip: Any, name: Token, tok: Token) -> bool:
        """`size(x)`, `len(x)`, `count(x)`, `has(x)`, `lower(x)`: FLUO calls methods on a value, and has no null;
        `now()`, `string(x)`, `abs(x)`: it has no wall clock, no conversions and no `abs`."""
        fn = str(name.value).lower()
        if fn not in _FOREIGN_FUNCTIONS or not _feedable(ip, ["IDENT"], drop=1):
            return False
        start = tok.start_pos or 0
        close = self.closing(start)
        if close is None:
            return False
        inner = self.text[start + 1 : close].strip()
        if not inner and fn not in _CLOCKS:
            return False
        operand = inner if _is_postfix(inner) else f"({inner})"
        suggestion: str | None = None
        called = f"`{name.value}(...)`" if inner else f"`{name.value}()`"
        if fn == "has":
            suggestion = f"{inner} not in []"
            message = f"FLUO has no `has(...)`: an attribute is present when `x not in []` holds: `{suggestion}`"
        elif fn in _CLOCKS:
            message = (
                f"FLUO has no wall clock ({called}): a rule gives the same answer whenever it runs; compare with "
                "the trace's own times, `trace.start` and `trace.end` (a span's `start` and `end`)"
            )
        elif fn in _CONVERSIONS:
            message = (
                f"FLUO has no conversions ({called}): a value compares as the kind it is, an attribute as the kind "
                "the trace gives it (`status_code == 200` for a number, `== '200'` for a string)"
            )
        elif fn == "abs":
            message = "FLUO has no function `abs`: compare with both bounds, e.g. `x > -5 and x < 5`"
        elif fn in _STRING_METHODS:
            suggestion = f"{operand}.{fn}()"
            message = f"FLUO has no function `{name.value}`: use the method `x.{fn}()`, here `{suggestion}`"
        else:
            suggestion = f"{operand}.count()"
            message = f"FLUO has no function `{name.value}`: use `x.count()`, here `{suggestion}`"
        begin = name.start_pos or 0
        self._read_as(ip, begin, close + 1, message, suggestion, 1)
        ip.feed_token(self.token("IDENT", _MISSING, begin, close + 1))
        return True

    def _dashed(self, ip: Any, top: Token) -> bool:
        """`rule auth-budget`, `tags: [auth-service]`: a name holds no `-`."""
        dashed = _DASHED.match(self.text, top.start_pos or 0)
        stack = ip.parser_state.value_stack
        if dashed is None:
            return False
        written = dashed.group()
        start, end = dashed.span()
        whole = len(stack) >= 2 and _is_token(stack[-2], ("RULE",))  # an id read whole: what follows is no cascade
        if whole:
            meant, term = written.replace("-", "_"), "IDENT"
            message = f"a rule id holds no `-`: write `{meant}`"
        elif _feedable(ip, ["STRING"], drop=1) and "IDENT" not in _accepts(ip):
            meant, term = f"'{written}'", "STRING"
            message = f"a name holds no `-`: quote it, `{meant}`"
        else:
            return False
        self._read_as(ip, start, end, message, meant, 1, whole=whole)
        ip.feed_token(self.token(term, meant, start, end))
        return True

    def _as_duration(self, ip: Any, tok: Token) -> bool:
        """`window 60`, `window "1m"`: a value where only a duration goes, read as the duration meant."""
        if tok.type == "NUMBER" and self._greek_micro(ip, tok, 0):  # `window 500μs`: the number before the `μ`
            return True
        value = str(tok.value)
        suggestion: str | None = None
        start, end = tok.start_pos or 0, tok.end_pos or 0
        glued = end
        while glued < len(self.text) and name_char(self.text[glued]):
            glued += 1
        if tok.type == "NUMBER" and self._glued_unit(ip, tok, 0):  # `window 1e3μs`, `window 500μ`
            return True
        if tok.type == "NUMBER" and glued > end:  # `window 1m`, a full-width m: letters the lexer stopped at
            written = self.text[start:glued]
            folded = unicodedata.normalize("NFKC", written)
            parts = _duration_parts(folded)
            unit = None if parts is None else _unit_meant(parts[1])
            # read so if no unit is understood: the error stands for the length (`1e3s` would be a second error)
            meant = f"{value}s" if _PLAIN_NUMBER.fullmatch(value) else _MISSING
            if parts is not None and unit is not None and _PLAIN_NUMBER.fullmatch(parts[0]):
                meant = suggestion = parts[0] + unit
                ch = next(c for c in written if not c.isascii())
                why = f"`{ch}`, {_code_point(ch)}, is not an ASCII letter"
                message = f"`{written}` is `{folded}` in full-width or compatibility letters ({why}): write `{meant}`"
            else:
                message = f"expected a duration, found `{written}`: write a number and one of the units {_UNITS}"
            self._read_as(ip, start, glued, message, suggestion)
            ip.feed_token(self.token("DURATION", meant, start, glued))
            return True
        if tok.type == "NUMBER" and _PLAIN_NUMBER.fullmatch(value):
            meant = suggestion = value + "s"
            message = f"expected a duration, found the number `{value}`: give it a unit, e.g. `{meant}`"
            if float(value) >= 1000:  # `window 60000` is likely milliseconds: no guess
                suggestion = None
                message = (
                    f"expected a duration, found the number `{value}`: give it a unit, "
                    f"`{value}ms` if it counts milliseconds, `{meant}` if seconds"
                )
        elif tok.type == "STRING" and (parts := _duration_parts(value[1:-1])) and parts[1] in DURATION_UNITS:
            meant = suggestion = value[1:-1]
            message = f"a duration takes no quotes: write `{meant}`"
        else:
            return False
        self._read_as(ip, start, end, message, suggestion)
        ip.feed_token(self.token("DURATION", meant, start, end))
        return True

    def _greek_micro(self, ip: Any, number: Token, take_back: int) -> bool:
        """`500μs` with Greek `μ` (U+03BC), which the lexer stops at, for the micro sign's `µs`: one error with
        the fix `us`, and the number and its unit read as that duration. `number` was the last token read
        (`take_back` 1: in an expression) or is the one the parser did not expect (0: `window 500μs`)."""
        text, pos = self.text, number.end_pos or 0
        if not (
            text.startswith("\u03bcs", pos)
            and not name_char(text[pos + 2 : pos + 3])  # `500μsx`: the unit is `μsx`, unknown (`_glued_unit`)
            and _PLAIN_NUMBER.fullmatch(str(number.value))
            and _feedable(ip, ["DURATION"], drop=take_back)
        ):
            return False
        start, meant = number.start_pos or 0, f"{number.value}us"
        message = f"unexpected character `μ` ({_code_point(text[pos])}): write `{meant}` (or the micro sign `µ`)"
        self.report(error("FLUO101", message, self.index.span(pos, pos + 2), path=self.path, suggestion="us"))
        for _ in range(take_back):
            ip.parser_state.state_stack.pop()
            ip.parser_state.value_stack.pop()
        self.skip_to(ip, pos + 2)
        ip.feed_token(self.token("DURATION", meant, start, pos + 2))
        return True

    def _glued_unit(self, ip: Any, number: Token, take_back: int) -> bool:
        """A number and letters the lexer stopped at, one of them past ASCII: `1e3μs`, `1e3ms` in full-width
        letters, `500μ` (the `s` left off), `5ü`. Read as one duration, whose one error the builder gives as for
        `1e3µs` or `500µ`: a duration takes no exponent (the fix keeps the unit, `1000us`, never reads it as
        `s`), a unit is unknown or incomplete. Never an attribute key: a name does not start with a digit.
        A plain number with a unit some folding reads (`5ms` in full-width letters), or with more digits in
        compatibility letters (`10` or `500ms` with full-width zeros, `2²`), is `_bracketed_key`'s and
        `_as_duration`'s.
        `number` was the last token read (`take_back` 1: in an expression) or the one not expected (0)."""
        text, start, end = self.text, number.start_pos or 0, number.end_pos or 0
        glued = end
        while glued < len(text) and name_char(text[glued]):
            glued += 1
        unit = text[end:glued]
        if glued == end or unit.isascii() or _ASCII_DIGIT.match(unicodedata.normalize("NFKC", unit)):
            return False
        if _EXPONENT_DURATION.fullmatch(text, start, glued) is None and _folded_unit(unit) is not None:
            return False
        if not _feedable(ip, ["DURATION"], drop=take_back):
            return False
        for _ in range(take_back):
            ip.parser_state.state_stack.pop()
            ip.parser_state.value_stack.pop()
        self.skip_to(ip, glued)
        ip.feed_token(self.token("DURATION", text[start:glued], start, glued))
        return True

    def _read_as(
        self,
        ip: Any,
        start: int,
        end: int,
        message: str,
        suggestion: str | None,
        take_back: int = 0,
        fix_from: int | None = None,
        fix_end: int | None = None,
        whole: bool = False,
    ) -> None:
        """Report text[start:end] (FLUO100) and make the parser go on after it: the `take_back` tokens last
        shifted come off its stacks, and the lexer skips to `end`; the caller feeds what was meant.

        The error's range (what `suggestion` replaces) is `fix_from`..`fix_end` where given: the whole
        comparison `x IS NULL`, or `IN (1, 2)` with its list, of which the parser reads only a part here.
        `whole`: the caller feeds one token that stands for all of text[start:end], as valid text would give
        (see `report`).
        """
        span = self.index.span(start if fix_from is None else fix_from, end if fix_end is None else fix_end)
        self.report(error("FLUO100", message, span, path=self.path, suggestion=suggestion), whole=whole)
        state = ip.parser_state
        for _ in range(take_back):
            state.state_stack.pop()
            state.value_stack.pop()
        self.skip_to(ip, end)

    def _unclosed_before(self, ip: Any, kind: str) -> bool:
        """Whether the `(` open innermost is closed nowhere, and `kind` would follow its `)`: then
        `where(a == 'x'.count() > 0` lacks that `)` rather than chains comparisons."""
        lpar = next((v for v in reversed(ip.parser_state.value_stack) if _is_token(v, ("LPAR",))), None)
        return lpar is not None and _feedable(ip, ["RPAR", kind]) and self.closing(lpar.start_pos or 0) is None

    def closing(self, start: int) -> int | None:
        """`_closing`, within a budget for the whole text: garbage of brackets costs no more than its length."""
        if self.scan_budget <= 0:
            return None
        close = _closing(self.text, start)
        self.scan_budget -= _CLOSING_SCAN if close is None else close - start
        return close

    def skip_to(self, ip: Any, end: int) -> None:
        """Move the lexer on to `end` (the text before it is read, by the recovery)."""
        line_ctr = ip.lexer_thread.state.line_ctr
        if end > line_ctr.char_pos:
            line_ctr.feed(self.text[line_ctr.char_pos : end])

    def token(self, name: str, value: str, start: int, end: int) -> Token:
        """A token the recovery reads in place of text[start:end]."""
        line, col = self.index.pos(start)
        end_line, end_col = self.index.pos(end)
        return Token(name, value, start, line + 1, col + 1, end_line + 1, end_col + 1, end)

    def synthetic(self, name: str, pos: int, value: str = _MISSING) -> Token:
        """A zero-width token the recovery inserts at `pos`."""
        line, col = self.index.pos(pos)
        return Token(name, value, pos, line + 1, col + 1, line + 1, col + 1, pos)

    def _insertion(self, ip: Any, tok: Token) -> tuple[str, ...] | None:
        """The shortest run of tokens (at most 3) after which `tok` is accepted."""
        table = _Table.of(ip)
        frontier: list[tuple[tuple[str, ...], _Stack]] = [((), _Stack(ip.parser_state.state_stack))]
        for depth in range(3):
            nxt: list[tuple[tuple[str, ...], _Stack]] = []
            for seq, stack in frontier:
                for name in _INSERT_FIRST if depth == 0 else _INSERT_DEEP:
                    trial = stack.copy()
                    if not table.feed(trial, name):
                        continue
                    if table.feed(trial.copy(), tok.type):
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
        if self._operator(e.interactive_parser, pos) or self._look_alike(e.interactive_parser, pos):
            return True
        if pos < self.stray_until and ch == self.stray:  # reported with the first of its run
            return True
        if (
            not ch.isascii()
            and name_char(ch)
            and self._bracketed_key(e.interactive_parser, pos, f"`{ch}`, {_code_point(ch)}, is not an ASCII letter")
        ):
            return True
        message, suggestion = _character_message(self.text, pos)
        end = pos + 1
        if suggestion is not None and suggestion in ("", " "):  # `\0\0\0`, `count()\xa0>\xa05`: all of them at once
            end = _stray_run(self.text, pos)
            suggestion = self.text[pos:end].replace(ch, suggestion)
            self.stray, self.stray_until = ch, end
        self.report(error("FLUO101", message, self.index.span(pos, end), path=self.path, suggestion=suggestion))
        if ch == "#":  # a comment in another language: the line is read as one
            line_end = _LINE_END.search(self.text, pos)
            self.skip_to(e.interactive_parser, len(self.text) if line_end is None else line_end.start())
        elif suggestion is None:
            self._stray_operand(e.interactive_parser, pos, end)
        return True

    def _stray_operand(self, ip: Any, pos: int, end: int) -> None:
        """`all(🙂 == 'x' and ...)`: a character that starts no token, where an operand goes and an operator
        follows, stands for that operand (a name that cannot be checked). The parser reads on as if a name were
        written there, so the character is the one error and the `)` after it closes `all(`."""
        after = _next_terminal(self.text, end)
        if after is not None and not _feedable(ip, [after]) and _feedable(ip, ["IDENT", after]):
            self.skip_to(ip, end)
            ip.feed_token(self.token("IDENT", _MISSING, pos, end))

    def _operator(self, parser: Any, pos: int) -> bool:
        """`&&`, `=~`, `=>`, `!`, `=`, `===`: an operator of another language, read as FLUO's."""
        text = self.text
        if text.startswith("=", pos) and text[max(pos - 2, 0) : pos] in ("==", "!="):  # `===`, `!==`: one `=` too many
            end = pos + 1
            while text.startswith("=", end):
                end += 1
            meant = text[pos - 2 : pos]
            message = f"unexpected `{text[pos - 2 : end]}`; did you mean `{meant}`?"
            self.report(error("FLUO101", message, self.index.span(pos - 2, end), path=self.path, suggestion=meant))
            self.skip_to(parser, end)
            return True
        if text.startswith("!", pos):
            return self._bang(parser, pos)
        if text.startswith("|", pos) and not text.startswith("||", pos) and self._pipeline(parser, pos):
            return True
        accepts = _accepts(parser)
        eq = _terminal_of("==")
        if text.startswith("=", pos) and (spaced := _SPACED_EQ.match(text, pos)) is not None and eq in accepts:
            message = f"unexpected `{spaced.group()}`; did you mean `==`?"  # `count() = = 5`
            self.report(error("FLUO101", message, self.index.span(pos, spaced.end()), path=self.path, suggestion="=="))
            self.skip_to(parser, spaced.end())
            parser.feed_token(self.token(eq, "==", pos, spaced.end()))
            return True
        before = pos
        while before > 0 and text[before - 1] in " \t":
            before -= 1
        if text.startswith("=", pos) and before < pos and text[max(before - 2, 0) : before] in ("==", "!=", "<=", ">="):
            message = f"one `=` too many after `{text[before - 2 : before]}`: delete it"  # `== = 5`
            self.report(error("FLUO101", message, self.index.span(before, pos + 1), path=self.path, suggestion=""))
            self.skip_to(parser, pos + 1)
            return True
        if text.startswith("=", pos) and eq not in accepts and "COLON" not in accepts and "DURATION" in accepts:
            end = pos + 1  # `window = 1m`: the `=` is deleted, with the space after it if one is before it
            if before < pos:
                end = _after_space(text, end)
            message = "no `=` after `window`: write `window 1m`"
            gap = "" if before < pos or end > pos + 1 or not _WORD_CHAR.match(text, end) else " "
            self.report(error("FLUO101", message, self.index.span(pos, end), path=self.path, suggestion=gap))
            self.skip_to(parser, end)
            return True
        for written, meant in _OTHER_LANGUAGES.items():
            if not text.startswith(written, pos) or text[pos + len(written) : pos + len(written) + 1] == "=":
                continue
            end = pos + len(written)
            if written == "=" and eq not in accepts and "COLON" in accepts:
                meant = ":"  # `severity = error`: a metadata key
            if written == "=>" and _LAMBDA.search(text, max(pos - _NEAR, 0), pos):
                message = "FLUO has no `=>` lambdas: inside a predicate the span's fields are bare names"
                self.report(error("FLUO101", message, self.index.span(pos, end), path=self.path))
                self.skip_to(parser, end)
                return True
            suggestion = meant
            if meant[0].isalpha():  # a word: spaced from the names around it (`!service` -> `not service`)
                suggestion = (" " if pos and _WORD_CHAR.match(text, pos - 1) else "") + meant
                suggestion += " " if _WORD_CHAR.match(text, end) else ""
            message = f"unexpected `{written}`; did you mean `{meant}`?"
            self.report(error("FLUO101", message, self.index.span(pos, end), path=self.path, suggestion=suggestion))
            self.skip_to(parser, end)  # read as what was meant, so the rest parses
            terminal = _terminal_of(meant)
            if terminal in accepts:
                parser.feed_token(self.token(terminal, meant, pos, end))
            return True
        return False

    def _pipeline(self, parser: Any, pos: int) -> bool:
        """TraceQL's `A | count() > 2`: an aggregate is a method of the spans, `A.count() > 2`; read so. The fix
        is given where `A` is the whole operand (`x == A | count()` would count `A` alone)."""
        text = self.text
        piped = _PIPELINE.match(text, pos)
        method = piped.group(1) if piped is not None else None
        if piped is None or not _feedable(parser, ["DOT"]):
            return False
        start = _before_space(text, pos)
        if method in _AGGREGATES and self._piped_comparison(parser, start, piped):
            return True
        if not piped.group(2) and method in _AGGREGATES:  # `| count > 2`: parentheses left off, or not typed yet
            call = "count()" if method == "count" else f"{method}(...)"  # the others take what to aggregate
            message = f"FLUO has no `|` pipeline (TraceQL's): an aggregate is a method of the spans, `.{call}`"
            whole = method == "count" and _whole_postfix(parser.parser_state.value_stack)
            fix = ".count()" if whole else None
            self.report(error("FLUO101", message, self.index.span(start, piped.end()), path=self.path, suggestion=fix))
            self.skip_to(parser, piped.end())
            parser.feed_token(self.token("DOT", ".", start, piped.start(1)))
            parser.feed_token(self.token("IDENT", method, piped.start(1), piped.end()))
            parser.feed_token(self.synthetic("LPAR", piped.end()))
            parser.feed_token(self.synthetic("RPAR", piped.end()))
            return True
        if not piped.group(2):
            return False
        close = self.closing(piped.end() - 1)
        if method not in _AGGREGATES:  # `| by(name)`, `| select(...)`: a stage FLUO has no form of, dropped
            if close is None:
                return False
            message = (
                f"FLUO has no `|` pipeline (TraceQL's `{method}()` stage): a rule reads a trace's spans with methods,"
                " e.g. `trace.spans.where(P).count() > 2`"
            )
            if method == "by":
                message = (
                    "FLUO has no `|` pipeline nor TraceQL's `by()` grouping: each trace is checked alone, its spans"
                    " read with methods, e.g. `trace.spans.where(P).count() > 2`"
                )
            self.report(error("FLUO101", message, self.index.span(start, close + 1), path=self.path))
            self.skip_to(parser, close + 1)
            return True
        call = text[piped.start(1) : piped.end()] + ("..." if close is None else text[piped.end() : close + 1])
        end = piped.start(1)
        whole = close is not None and _whole_postfix(parser.parser_state.value_stack)
        message = f"FLUO has no `|` pipeline (TraceQL's): an aggregate is a method of the spans, `.{call}`"
        self.report(
            error("FLUO101", message, self.index.span(start, end), path=self.path, suggestion="." if whole else None)
        )
        self.skip_to(parser, end)
        parser.feed_token(self.token("DOT", ".", start, end))
        return True

    def _piped_comparison(self, parser: Any, start: int, piped: re.Match[str]) -> bool:
        """`x == 1 | count() > 2` (TraceQL's `{ .x = 1 } | count() > 2`): the aggregate and its comparison after
        the right operand of another comparison, where `1.count() > 2` would chain two comparisons and cascade.
        One error that names the method, and the stage dropped: `x == 1` is read on, checked as written."""
        text = self.text
        end = piped.end()
        if piped.group(2):
            close = self.closing(end - 1)
            if close is None:
                return False
            end = close + 1
        compared = _COMPARED.match(text, end)
        if compared is None or _AFTER_OPERAND.match(text, compared.end()) is None:
            return False
        operator = _terminal_of(compared.group(1))
        if _feedable(parser, ["DOT", "IDENT", "LPAR", "RPAR", operator]):  # `-d | count() > 1`: read as `.count()`
            return False
        call = text[piped.start(1) : end] + ("" if piped.group(2) else "()")
        message = (
            "FLUO has no `|` pipeline (TraceQL's): an aggregate is a method of the spans it reads, "
            f"e.g. `trace.spans.where(P).{call} {compared.group(1)} {compared.group(2)}`"
        )
        self.report(error("FLUO101", message, self.index.span(start, compared.end()), path=self.path))
        self.skip_to(parser, compared.end())
        return True

    def _bang(self, parser: Any, pos: int) -> bool:
        """`!x`, `!!x`, `a ! = b`, `name !~ 'x'`: the `!` of other languages, with what follows it."""
        text = self.text
        if text.startswith("!~", pos):  # TraceQL's "does not match"
            end = pos + 2
            string = _STRING_AT.match(text, _after_space(text, end))
            left = None if string is None else _whole_comparison(text, pos, string.end())
            if string is not None and left is not None:
                suggestion: str | None = f"not ({text[left:pos].rstrip()} matches {string.group()})"
                message = f"FLUO has no `!~`: write `{suggestion}`"
                span = self.index.span(left, string.end())
            else:
                suggestion = None
                message = "FLUO has no `!~`: write `not (x matches '...')`, in parentheses"
                span = self.index.span(pos, end)
            self.report(error("FLUO101", message, span, path=self.path, suggestion=suggestion))
            self.skip_to(parser, end)
            matches = _terminal_of("matches")
            if self._operand(parser, [matches]):  # read as `name matches 'x'`: no cascade
                parser.feed_token(self.token(matches, "matches", pos, end))
            return True
        spaced = _SPACED_NE.match(text, pos)
        if spaced is not None:  # `a ! = b`
            ne = _terminal_of("!=")
            message = f"unexpected `{spaced.group()}`; did you mean `!=`?"
            self.report(error("FLUO101", message, self.index.span(pos, spaced.end()), path=self.path, suggestion="!="))
            self.skip_to(parser, spaced.end())
            if self._operand(parser, [ne]):
                parser.feed_token(self.token(ne, "!=", pos, spaced.end()))
            return True
        called = _HAS_CALL.match(text, pos + 1)
        close = inner = None
        if called is not None and (close := self.closing(called.end() - 1)) is not None:
            inner = text[called.end() : close].strip()
        if close is not None and inner is not None and _DOTTED.fullmatch(inner):  # `!has(x)`: `x` is missing
            meant = f"not ({inner} not in [])"
            message = f"unexpected `!`; did you mean `not`? FLUO has no `has(...)`: a missing attribute is `{meant}`"
            self.report(error("FLUO101", message, self.index.span(pos, close + 1), path=self.path, suggestion=meant))
            self.skip_to(parser, pos + 1)  # `has(x)` is read next, and its error hides in this one
            if _terminal_of("not") in _accepts(parser):
                parser.feed_token(self.token(_terminal_of("not"), "not", pos, pos + 1))
            return True
        end = pos
        while text.startswith("!", end) and not text.startswith("!=", end):
            end += 1
        written, meant = text[pos:end], "not not" if (end - pos) % 2 == 0 else "not"  # `!!x` is `not not x`
        suggestion = (" " if pos and _WORD_CHAR.match(text, pos - 1) else "") + meant
        suggestion += " " if _WORD_CHAR.match(text, end) else ""
        message = f"unexpected `{written}`; did you mean `{meant}`?"
        self.report(error("FLUO101", message, self.index.span(pos, end), path=self.path, suggestion=suggestion))
        self.skip_to(parser, end)
        terminal = _terminal_of("not")
        for _ in meant.split():
            if terminal in _accepts(parser):
                parser.feed_token(self.token(terminal, "not", pos, end))
        return True

    def _look_alike(self, parser: Any, pos: int) -> bool:
        """Greek `μs` for the micro sign's `µs`, typographic quotes, backquoted names: read as meant."""
        text = self.text
        ch = text[pos]
        top = _top(parser)
        if (
            top is not None
            and top.type == "NUMBER"
            and (self._greek_micro(parser, top, 1) or self._glued_unit(parser, top, 1))
        ):
            return True
        closer = _QUOTES.get(ch)
        if closer is None:
            return False
        eol = _LINE_END.search(text, pos, pos + _NEAR)
        limit = min(len(text), pos + _NEAR) if eol is None else eol.start()
        close = text.find(closer, pos + 1, limit)
        # a closer before a letter is an apostrophe (U+2018 it U+2019 s U+2019): the string closes after it
        while ch != "`" and close >= 0 and _WORD_CHAR.match(text, close + 1):
            close = text.find(closer, close + 1, limit)
        if close < 0:
            return False
        inner = text[pos + 1 : close]
        operator_end = _before_space(text, pos)
        right_side = _RIGHT_OPERAND.search(text[max(0, operator_end - 9) : operator_end])
        if ch == "`" and right_side is not None and _feedable(parser, ["STRING"]):
            # `name == \`GET /x\``: a JavaScript template literal, a string
            quote = "'" if "'" not in inner else '"'
            if "${" in inner or quote in inner or "\\" in inner:
                message = "FLUO has no template strings: write the string in quotes, its parts joined by hand"
                self.report(error("FLUO101", message, self.index.span(pos, close + 1), path=self.path))
            else:
                meant = f"{quote}{inner}{quote}"
                message = f"a string is written in quotes: `{meant}`"
                self.report(
                    error("FLUO101", message, self.index.span(pos, close + 1), path=self.path, suggestion=meant)
                )
            self.skip_to(parser, close + 1)
            parser.feed_token(self.token("STRING", '"' + _MISSING + '"', pos, close + 1))
            return True
        if ch == "`":
            meant = inner if _DOTTED.fullmatch(inner) else f'attributes["{inner}"]'
            message = f"FLUO names take no backquotes: write `{meant}`"
            if '"' in inner or "\\" in inner or not _feedable(parser, ["IDENT"]):
                return False
            self.report(error("FLUO101", message, self.index.span(pos, close + 1), path=self.path, suggestion=meant))
            self.skip_to(parser, close + 1)
            parser.feed_token(self.token("IDENT", _MISSING, pos, close + 1))  # stands for the name: no cascade
            return True
        inner = inner.replace("\u2019", "'")  # the apostrophe, a straight one
        quote = "'" if "'" not in inner else '"'
        meant = f"{quote}{inner}{quote}"
        if quote in inner or "\\" in inner or not _feedable(parser, ["STRING"]):
            return False
        message = f"unexpected character `{ch}` ({_code_point(ch)}): strings take straight quotes, `{meant}`"
        self.report(error("FLUO101", message, self.index.span(pos, close + 1), path=self.path, suggestion=meant))
        self.skip_to(parser, close + 1)
        parser.feed_token(self.token("STRING", meant, pos, close + 1))
        return True


_STRUCTURAL = {"MORETHAN": ("descendant", "descendants"), "LESSTHAN": ("ancestor", "ancestors")}
"""TraceQL's structural operators `>>` and `<<` (a token doubled), and the span field FLUO writes for each."""
_PIPELINE = re.compile(r"\|[ \t]*([A-Za-z_][A-Za-z0-9_]*)\b(?:[ \t]*(\())?")
"""TraceQL's pipeline into an aggregate or another stage: `{ ... } | count() > 2`, `| by(name)`; group 2 the `(`."""
_COMPARED = re.compile(
    r"""[ \t]*(==|!=|<=|>=|<|>)[ \t]*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[^\W\d_]*|"[^"\\\r\n]*"|'[^'\\\r\n]*'"""
    r"|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
)
"""A comparison after a piped aggregate, with a plain operand: `> 2`, `>= 1s`, `== 'x'`, `< limit`. A number is
as the lexer reads one (`1.5e3`), in any digits, and its unit any letters (`1μs`, `1ms` in full-width letters): the
stage is dropped whole, its slips with it."""
_AGGREGATES = ("count", "avg", "min", "max", "sum")
"""TraceQL's aggregates, each a method of FLUO's `spans`."""
_POSTFIX_PARTS = frozenset({"DOT", "IDENT", "STRING", "NUMBER", "DURATION", "TRUE", "FALSE", "WINDOW"})
_OPERAND_START = frozenset({"EXPECT", "DETECT", "LBRACE", "COMMA"})
_OTHER_LANGUAGES = {
    "&&": "and", "||": "or", "=~": "matches", "~": "matches", "=>": ">=", "=<": "<=", "=": "==",
    "≠": "!=", "≤": "<=", "≥": ">=",  # mathematics' (and a word processor's autocorrect)
}  # fmt: skip
"""Operators of other languages and what they are here: suggested, then read as it."""
_RIGHT_OPERAND = re.compile(r"(?:[=!<>]=|[<>]|\b(?:in|contains|matches))\Z")
_HAS_CALL = re.compile(r"has[ \t]*\(")
_SPACED_EQ = re.compile(r"=[ \t]+=(?!=)")
_SPACED_NE = re.compile(r"![ \t]+=(?!=)")
_LAMBDA = re.compile(r"[(,]\s*[A-Za-z_][A-Za-z0-9_]*\s*\Z")
_WORD_CHAR = re.compile(r"[A-Za-z0-9_]")
_QUOTES = {"\u2018": "\u2019", "\u201c": "\u201d", "\u2019": "\u2019", "\u201d": "\u201d", "`": "`"}
"""Quotes of typesetting (and Markdown's backquote) and what closes them."""


_INVISIBLE = re.compile(f"[{INVISIBLE}]")


def _joining(text: str, i: int) -> bool:
    """Whether `text[i]` is a zero-width joiner or non-joiner between two characters past ASCII, where it does
    its work: an emoji sequence (`👩‍💻`), Persian or Indic text; not a character hidden in `ad<U+200B>min`."""
    return (
        text[i] in "\u200c\u200d" and 0 < i < len(text) - 1 and not text[i - 1].isascii() and not text[i + 1].isascii()
    )


def _code_point(ch: str) -> str:
    """`U+00A0 NO-BREAK SPACE`: how a character is named where its look says nothing."""
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" {name}" if name else "")


def name_char(ch: str) -> bool:
    """Whether `ch` may be part of a name as the parser reads one (an attribute key's dotted parts, a rule id,
    a metadata key, letters past ASCII included): a letter, a digit, `_`, or a combining mark (the accent of a
    decomposed `á`). The language server's semantic tokens join a name's pieces by it."""
    return ch == "_" or ch.isalnum() or (len(ch) == 1 and unicodedata.category(ch).startswith("M"))


_ASCII_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _name_char(ch: str) -> bool:
    """`name_char`, sooner for ASCII (a dotted name of 4 MiB before a keyword is read back whole)."""
    return ch in _ASCII_NAME_CHARS or (not ch.isascii() and name_char(ch))


def _key_around(text: str, at: int) -> tuple[int, int]:
    """The dotted name around `at`, as far as its parts are letters, digits and `_` (keywords and letters past
    ASCII too); a part right before `(` is a method, not the key's."""
    start = at
    while start > 0 and (
        _name_char(text[start - 1]) or (text[start - 1] == "." and _name_char(text[start - 2 : start - 1]))
    ):
        start -= 1
    end = at
    while end < len(text):
        part = end
        while part < len(text) and name_char(text[part]):
            part += 1
        if text.startswith("(", part) and end > at:
            end -= 1  # the `.` before a method
            break
        end = part
        if not (text.startswith(".", end) and end + 1 < len(text) and name_char(text[end + 1])):
            break
        end += 1
    return start, end


_SPAN_PATHS = ("trace.root", "it", "parent")
"""Where a dotted key's span may be named, before the key: `parent.x.in.y` is `parent.attributes["x.in.y"]`."""


def _bracketed(path: str) -> str | None:
    """`attributes["a.in.b"]` for the dotted name `a.in.b` (`resource["k"]`, `parent.attributes["k"]`), or None
    when it does not start where an attribute may (`trace.x.in`)."""
    base = ""
    for span in _SPAN_PATHS:
        if path.startswith(span + "."):
            base, path = path[: len(span)] + ".", path[len(span) + 1 :]
            break
    first, _, rest = path.partition(".")
    if first in ("trace", "window", *_SPAN_PATHS) or not first:
        return None
    if first == "resource":
        return f"{base}resource[{string_literal(rest)}]" if rest else None
    return f"{base}attributes[{string_literal(path)}]"


def _character_message(text: str, pos: int) -> tuple[str, str | None]:
    """FLUO101 for a character that starts no token, and its fix: invisible ones are named by code point."""
    ch = text[pos]
    category = unicodedata.category(ch)
    if category == "Zs" or ch in "\u0085":
        return f"unexpected character {_code_point(ch)}: write a plain space", " "
    if category in ("Cf", "Cc", "Zl", "Zp", "Co", "Cn", "Cs"):
        return f"unexpected invisible character {_code_point(ch)}: delete it", ""
    if ch == "#":
        return "unexpected character `#`: comments start with `//`", "//"
    if ch == "%":
        return "unexpected character `%`: FLUO has no remainder operator (`+ - * /` are its arithmetic)", None
    if ch.isascii():
        return f"unexpected character `{ch}`", None
    return f"unexpected character `{ch}` ({_code_point(ch)})", None


_OPERATOR_WORDS = ("and", "or", "not", "in", "contains", "matches")
_FOREIGN_WORDS = {
    **{w: w for w in _OPERATOR_WORDS},  # FLUO's own, in capitals
    "like": "matches",
    "ilike": "matches",
    "rlike": "matches",
    "regexp": "matches",
    "match": "matches",
    "is": "==",
    "eq": "==",
    "ne": "!=",
    "gt": ">",
    "lt": "<",
    "ge": ">=",
    "le": "<=",
    "gte": ">=",
    "lte": "<=",
    "adn": "and",
    "nad": "and",
    "ro": "or",
    "isnt": "!=",
    "not_in": "not in",
    "notin": "not in",
    "nin": "not in",
    "contain": "contains",
    "includes": "contains",
    "has": "contains",
}
"""Words of other languages (SQL, TraceQL, CEL, Python) where an operator goes, and FLUO's."""
_META_WORDS = {"severity": ast.SEVERITIES, "enabled": ("true", "false")}
"""The metadata keys that take one of a few words, not a string: a value past ASCII is one of those or none."""
_CLAUSE_SYNONYMS = {"assert": "expect", "require": "expect", "ensure": "expect", "check": "expect", "then": "always"}
_KEYWORD_TERMINALS = {
    **{k: k.upper() for k in ("expect", "detect", "when", "always", "never", "window")},
    "rule": "RULE",
}
_CLAUSE_TERMINALS = frozenset({"EXPECT", "DETECT", "WHEN", "ALWAYS", "NEVER", "WINDOW"})
_CLAUSE_KEYWORDS = _CLAUSE_TERMINALS - {"WINDOW"}
"""The clauses that cannot start an expression (`window` can: `window.spans`)."""
_COMMENT = re.compile(r"//[^\r\n]*")
_SQL_COMMENT = re.compile(r"(?<![-\w])--[ \t]*[A-Za-z][^'\"\r\n]*$")
"""`-- words` at the end of a line's text before an error, no quote after it: a comment as SQL and Lua write one."""
_FIRST_TOKENS_WITHIN = 4096
"""How far into a text a token is looked at as its first (past comments and spaces) by `_clause_outside_a_rule`."""


_NOT_IN = re.compile(r"not\s+in(?![A-Za-z0-9_])")
_KEYWORD_OPERAND = re.compile(
    r"\.[A-Za-z_]|[ \t]*(?:[=!<>]=?|[),\]]|(?:in|not[ \t]+in|contains|matches|and|or)(?![A-Za-z0-9_]))"
)
"""What follows a keyword read as an attribute's name (`rule == 1`, `when.x`, `rule)`): an operator, or the end
of its operand; not a name (`expect rule r`: a clause without its expression, then the next rule)."""


@cache
@functools.cache
def _comparisons() -> frozenset[str]:
    """The terminals of the comparison operators, which take two sums: `a == b == c` is no expression."""
    return frozenset(_terminal_of(op) for op in ("==", "!=", "<", "<=", ">", ">=", "in", "contains", "matches"))


def _ranges(kind: str) -> frozenset[str]:
    """The comparisons that make a range (`a < b < c`) with the comparison `kind`; none if it is not one."""
    for side in (("<", "<="), (">", ">=")):
        terminals = frozenset(_terminal_of(op) for op in side)
        if kind in terminals:
            return terminals
    return frozenset()


_FUNCTIONS = frozenset({"size", "len", "length", "count", "has"})
_CLOCKS = frozenset({"now", "time", "today", "current_time", "current_timestamp", "sysdate"})
_CONVERSIONS = frozenset({"string", "str", "tostring", "int", "float", "double", "bool", "number"})
_STRING_METHODS = frozenset({"lower", "upper"})
_FOREIGN_FUNCTIONS = _FUNCTIONS | _CLOCKS | _CONVERSIONS | _STRING_METHODS | {"abs"}
"""Other languages' functions called by a bare name (`len(x)`, `now()`): one error says what FLUO has instead."""
_UNIT_ALIASES = {
    **dict.fromkeys(("sec", "secs", "second", "seconds"), "s"),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), "m"),
    **dict.fromkeys(("hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("day", "days"), "d"),
    **dict.fromkeys(("msec", "msecs", "millis", "millisecond", "milliseconds"), "ms"),
    **dict.fromkeys(("usec", "usecs", "micros", "microsecond", "microseconds", "\u03bcs"), "us"),
    **dict.fromkeys(("nsec", "nsecs", "nanos", "nanosecond", "nanoseconds"), "ns"),
}
"""Units written as other languages write them (`sec`, `min`, Greek `μs`), and FLUO's."""
_NULL_TEST = re.compile(r"(?i)is\s+(not\s+)?(?:null|none|nil)\b")
_IS_NOT = re.compile(r"(?i)is\s+not\b")
_IN_WORD = re.compile(r"(?i)\s+in\b")
_OPERAND_AFTER_WORD = re.compile(r"(?:\A|\W)(?:and|or|not|expect|detect)\Z")
_AFTER_OPERAND = re.compile(r"[ \t]*(?:[),\]}\r\n]|\Z|(?:and|or)\b)")
_REGEX_SPECIAL = frozenset(".^$*+?()[]{}|\\")
_BETWEEN = re.compile(r"(?i)between\s+[^\s()]+\s+and\s+[^\s()]+|between\b")
_AFTER_DOT = re.compile(r"([0-9]+)([A-Za-zµ]+)?(?![0-9.])|([A-Za-z_][A-Za-z0-9_]*)")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_DASHED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)+")
_RULE_WORD = re.compile(r"\brule\b")
_ID_SPELLING = re.compile(r"[A-Za-z0-9_.-]+")  # what a rule id's ASCII form keeps a trace of (`-` and `.` as `_`)
_DURATION_RUN = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?[A-Za-zµ]+)+")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)([A-Za-zµ]+)")
_LENGTH = r"[0-9]+(?:\.[0-9]+)?[A-Za-zµ]+"
_SLIDING_WINDOW = re.compile(
    rf"window[ \t]+(?:(?P<kind>sliding|hopping|tumbling|rolling|moving)[ \t]+)?(?P<length>{_LENGTH})"
    r"(?P<slide>[ \t]*(?:,|(?:every|slide|sliding|step|hop|hopping|advance|stride|by)(?:[ \t]+by)?\b)"
    rf"[ \t]*{_LENGTH})?",
    re.IGNORECASE,
)
"""A window clause as other tools write sliding or hopping ones: `window 1m every 10s`, `window sliding 1m`."""
_NEAR = 256  # how far around an error the recovery reads (a closing quote, a lambda's parameter)
_CLOSING_SCAN = 4096  # how far `_closing` looks for the bracket that closes one


def _after_space(text: str, pos: int) -> int:
    """Where the text after `pos` stops being spaces and tabs."""
    while text.startswith((" ", "\t"), pos):
        pos += 1
    return pos


def _stray_run(text: str, pos: int) -> int:
    """The end of the run of text[pos] (a character to delete or make a space) on its line, the text between
    holding no string, comment or other character of its kind: `count()`, U+00A0, `>`, U+00A0, `5` has one
    error, and one fix."""
    ch, end = text[pos], pos + 1
    limit = min(len(text), pos + _NEAR)
    while end < limit:
        nxt = text.find(ch, end, limit)
        if nxt < 0 or any(c in "'\"`/#\r\n" or (not c.isascii() and c != ch) for c in text[end:nxt]):
            break
        end = nxt + 1
    return end


def _whole_comparison(text: str, start: int, end: int) -> int | None:
    """Where the name before text[start:end] starts, if the name and text[start:end] are a whole operand of
    `and`/`or` (`where(x IS NULL)`, `a and x !~ 'b'`): then a fix may replace them with `not (...)`."""
    name_end = _before_space(text, start)
    left = name_end
    while left > max(0, start - _NEAR) and (text[left - 1] == "." or _WORD_CHAR.match(text, left - 1)):
        left -= 1
    name = text[left:name_end]
    if not _DOTTED.fullmatch(name) or name in _OPERATOR_WORDS or _AFTER_OPERAND.match(text, end) is None:
        return None
    before = _before_space(text, left)
    if before == 0 or text[before - 1] in "({[," or _OPERAND_AFTER_WORD.search(text[max(0, before - 7) : before]):
        return left
    return None


def _before_space(text: str, pos: int) -> int:
    """Where the spaces and tabs before `pos` start."""
    while pos > 0 and text[pos - 1] in " \t":
        pos -= 1
    return pos


def _like_regex(literal: str, ignore_case: bool) -> str | None:
    """SQL's `'GET%'` as FLUO's regular expression literal `'^GET'`; None if it holds a quote or an escape."""
    quote, pattern = literal[0], literal[1:-1]
    if "\\" in pattern or "'" in pattern or '"' in pattern:
        return None
    parts = ["(?i)" if ignore_case else "", "" if pattern.startswith("%") else "^"]
    body = pattern.strip("%")
    for ch in body:
        if ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        elif ch in _REGEX_SPECIAL:
            parts.append("\\\\" + ch)  # `\\.` in the string is the regex's `\.`
        else:
            parts.append(ch)
    parts.append("" if pattern.endswith("%") else "$")
    return quote + "".join(parts) + quote


_REPEATS = re.compile(r"(.)\1+")
_LONG_OPERATORS = ("contains", "matches")


def _operator_meant(word: str) -> str | None:
    """The operator a word of another language or a slip (`AND`, `LIKE`, `andd`, `matchs`) stands for, where one
    goes.

    A word of four letters or more is `and` or `not` only as the operator with letters doubled (`andd`, `nnott`):
    one or two edits from them is also a name people write (`band`, `note`, `bands`, `notes`, `sandy`). Only the
    long operators, `contains` and `matches`, are guessed by edit distance (`contians`, `matchs`), and only from a
    word with their first letter: a slip keeps it, while another first letter makes a word of its own (`catches`,
    `batches`, `watches`, one edit from `matches`).
    """
    low = word.lower()
    if low in _FOREIGN_WORDS:
        return _FOREIGN_WORDS[low]
    if len(low) < 4:
        return None
    squeezed = _REPEATS.sub(r"\1", low)
    if squeezed in ("and", "not"):
        return squeezed
    meant = nearest(low, _LONG_OPERATORS) if len(low) >= 5 else None
    return meant if meant is not None and meant[0] == low[0] else None


def _keyword_meant(word: str) -> str | None:
    """The keyword meant by a name where a keyword goes: `exepct`, `EXPECT`, `assert` -> `expect`, `Rule` -> `rule`."""
    low = word.lower()
    if low in _CLAUSE_SYNONYMS:
        return _CLAUSE_SYNONYMS[low]
    if low in _KEYWORD_TERMINALS:
        return low
    return nearest(low, list(_KEYWORD_TERMINALS))


def _unit_meant(unit: str) -> str | None:
    """The duration unit `unit` means (`sec` -> `s`, `MS` -> `ms`), or None if it is no unit of any language."""
    for written in (unit, unit.lower()):
        if written in DURATION_UNITS:
            return written
        if written in _UNIT_ALIASES:
            return _UNIT_ALIASES[written]
    return None


def _folded_unit(unit: str) -> str | None:
    """`_unit_meant` of a unit in Greek or full-width letters too (`μs`, a full-width `ms`)."""
    return _unit_meant(unicodedata.normalize("NFKC", unit))


def _run_ns(run: str) -> int | None:
    """Nanoseconds in `1h30m` (durations written one after the other), if every unit is known: for the fix
    that writes it in one unit, so rounded to whole nanoseconds where a part is not whole (`1h0.5ns`)."""
    total = 0
    for number, unit in _DURATION_PART.findall(run):
        if unit not in DURATION_UNITS:
            return None
        ns = number_ns(number, DURATION_UNITS[unit], nearest=True)
        if ns is None:
            return None
        total += ns
    return total if _in_range(total) else None


def _in_one_unit(ns: int) -> str:
    """`90m` for 90 minutes: the largest unit that counts `ns` whole."""
    for unit in ("d", "h", "m", "s", "ms", "us"):
        if ns % DURATION_UNITS[unit] == 0:
            return f"{ns // DURATION_UNITS[unit]}{unit}"
    return f"{ns}ns"


def _closing(text: str, start: int) -> int | None:
    """Where the bracket that opens at `start` closes, strings skipped; None if not within `_CLOSING_SCAN`."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[text[start]]]
    i = start + 1
    limit = min(len(text), start + _CLOSING_SCAN)
    while i < limit:
        c = text[i]
        if c in "\"'":
            m = _STRING_AT.match(text, i)
            i = m.end() if m else i + 1
            continue
        if c in pairs:
            stack.append(pairs[c])
        elif c in ")]}":
            if c != stack.pop():
                return None
            if not stack:
                return i
        i += 1
    return None


_STRING_AT = re.compile(r""""(?:[^"\\\r\n]|\\.)*+"|'(?:[^'\\\r\n]|\\.)*+'""")  # `*+`: see STRING in the grammar


_INFIX_WORDS = frozenset({"contains", "matches", "in"})
"""The operators that are words, which a rule from another language may call as methods (`name.contains('x')`)."""

_BEFORE_ALONE = re.compile(r"(?:^|[({,]|\b(?:and|or|not|expect|detect|always|never))\s*$")
_AFTER_ALONE = re.compile(r"\s*(?:$|[)},]|(?:and|or)\b)")


def _alone(before: str, after: str) -> bool:
    """Whether a comparison between `before` and `after` needs no parentheses: no operator binds it tighter."""
    return _BEFORE_ALONE.search(before) is not None and _AFTER_ALONE.match(after) is not None


def _is_postfix(text: str, literal: bool = False) -> bool:
    """Whether `text` is one expression that `.count()` may follow as it is (`trace.spans.where(x)`);
    `literal`: or a literal (`'x'`, `[1, 2]`), which an operator may take as its operand as it is."""
    result = parse(text)
    rules = result.file.rules
    if result.diagnostics or len(rules) != 1 or not rules[0].bare:
        return False
    kinds = (ast.Field, ast.Call, ast.Name, ast.Index) + ((ast.Literal, ast.ListLit) if literal else ())
    return isinstance(rules[0].clauses[0].expr, kinds)


def _top(ip: Any) -> Token | None:
    """The token last read, if the parser's stack ends with it alone: shifted, or reduced to a one-token
    atom (`name`, `number`); lark's LALR table reduces on any token that may follow somewhere."""
    stack = ip.parser_state.value_stack
    top = stack[-1] if stack else None
    if isinstance(top, Tree) and len(top.children) == 1 and top.data in _ATOMS:
        top = top.children[0]
    return top if isinstance(top, Token) else None


_META_LITERALS = frozenset(
    {"STRING", "NUMBER", "DURATION", "TRUE", "FALSE", "LSQB"}
)  # what a metadata value starts with
_ATOMS = frozenset({"name", "number", "string", "duration", "meta_ident", "meta_number", "meta_string"})
_OPERAND_LEVELS = ("sum", "not_expr", "and_expr")
_BINDING = {"OR": 0, "AND": 1}
"""How tightly an operator the recovery reads in binds, loosest first; any other (`in`, `==`, `not in`) is
tighter than both (`len(_BINDING)`)."""
_LOGIC_LEVELS = {"or_": 0, "and_": 1, "not_": 2}
"""The trees an operator of that `_BINDING` or tighter reaches into, to take their last operand."""
_EXPR_LEVELS = {
    "or_": "or_expr",
    "and_": "and_expr",
    "not_": "not_expr",
    **dict.fromkeys(("eq", "ne", "lt", "le", "gt", "ge", "in_", "not_in", "contains", "matches"), "comparison"),
    **dict.fromkeys(("add", "sub"), "sum"),
    **dict.fromkeys(("mul", "div"), "product"),
    "neg": "unary",
}
"""The grammar's level of each expression tree (any other is a `postfix`): where it goes back on the stacks."""


def _shift_symbol(table: _Table, stack: _Stack, symbol: str) -> bool:
    """Step `stack` over one symbol as the parser would: a terminal fed (reducing first), a rule's goto."""
    if symbol.isupper():
        return table.feed(stack, symbol)
    goto = table.states[stack.top()].get(symbol)
    if goto is None or goto[0] is not Shift:
        return False
    stack.extra.append(goto[1])
    return True


def _start_of(value: Any) -> int:
    """Where a parser stack entry (a token or a tree) starts in the text; -1 if it says nothing."""
    if isinstance(value, Token):
        return value.start_pos if value.start_pos is not None else -1
    meta = getattr(value, "meta", None)
    return -1 if meta is None or getattr(meta, "empty", True) else int(meta.start_pos)


def _end_of(value: Any) -> int:
    """Where a parser stack entry ends in the text; -1 if it says nothing."""
    if isinstance(value, Token):
        return value.end_pos if value.end_pos is not None else -1
    meta = getattr(value, "meta", None)
    return -1 if meta is None or getattr(meta, "empty", True) else int(meta.end_pos)


def _whole_postfix(stack: list[Any]) -> bool:
    """Whether the parser's stack ends with an operand that is one postfix chain (`trace.spans.where(P)`), from
    where an operand starts (a clause, `(`, `,`): `.count()` after it counts the whole operand."""
    depth = 0
    for value in reversed(stack):
        kind = value.type if isinstance(value, Token) else None
        if kind in ("RPAR", "RSQB"):
            depth += 1
        elif kind in ("LPAR", "LSQB"):
            if depth == 0:
                return True
            depth -= 1
        elif depth == 0 and kind in _OPERAND_START:
            return True
        elif depth == 0 and not (kind in _POSTFIX_PARTS or (kind is None and _postfix_tree(value))):
            return False
    return True


def _postfix_tree(value: Any) -> bool:
    return isinstance(value, Tree) and str(value.data) in _POSTFIX_TREES


_POSTFIX_TREES = frozenset({*_ATOMS, "field", "call", "index", "true", "false", "window_root", "list"})


def _top_type(ip: Any) -> str | None:
    top = _top(ip)
    return None if top is None else str(top.type)


def _is_token(value: Any, types: frozenset[str] | tuple[str, ...]) -> bool:
    return isinstance(value, Token) and value.type in types


def _feedable(ip: Any, names: list[str], drop: int = 0) -> bool:
    """Whether the parser, its last `drop` shifts taken back, would accept `names` in turn."""
    base = ip.parser_state.state_stack
    if drop >= len(base):
        return False
    table, stack = _Table.of(ip), _Stack(base, len(base) - drop)
    return all(table.feed(stack, name) for name in names)


@cache
def _terminal_of(text: str) -> str:
    """The grammar's terminal for a fixed piece of text (`==` is an anonymous one)."""
    return next(t.name for t in _lark().terminals if t.pattern.type == "str" and t.pattern.value == text)


def _accepts(ip: Any) -> set[str]:
    """What lark's `ip.accepts()` returns, from the parse table alone (it copies the parser for each terminal)."""
    return _Table.of(ip).accepts(_Stack(ip.parser_state.state_stack))


_NO_ACTION = (None, None)


class _Stack:
    """A parser's state stack to try tokens on without copying it: its first `keep` states, then `extra`."""

    __slots__ = ("base", "extra", "keep")

    def __init__(self, base: list[Any], keep: int | None = None, extra: list[Any] | None = None) -> None:
        self.base = base
        self.keep = len(base) if keep is None else keep
        self.extra = [] if extra is None else extra

    def copy(self) -> _Stack:
        return _Stack(self.base, self.keep, list(self.extra))

    def top(self) -> Any:
        return self.extra[-1] if self.extra else self.base[self.keep - 1]

    def pop(self, n: int) -> None:
        if n <= len(self.extra):
            del self.extra[len(self.extra) - n :]
        else:
            self.keep -= n - len(self.extra)
            self.extra.clear()


@dataclass(frozen=True, slots=True)
class _Table:
    """lark's LALR table, stepped as its `ParserState.feed_token` steps it, on states only (no values)."""

    states: Any
    end_state: Any

    @staticmethod
    def of(ip: Any) -> _Table:
        conf = ip.parser_state.parse_conf
        return _Table(conf.states, conf.end_state)

    def feed(self, stack: _Stack, terminal: str) -> bool:
        """Reduce as lark would, then shift `terminal`; False if the parser would raise UnexpectedToken."""
        states = self.states
        is_end = terminal == "$END"
        extra = stack.extra
        while True:
            action, arg = states[stack.top()].get(terminal, _NO_ACTION)
            if action is Shift:
                extra.append(arg)
                return True
            if action is None:
                return False
            stack.pop(len(arg.expansion))
            goto = states[stack.top()][arg.origin.name][1]
            extra.append(goto)
            if is_end and goto == self.end_state:  # the whole input reduced: lark stops here
                return True

    def accepts(self, stack: _Stack) -> set[str]:
        return {t for t in self.states[stack.top()] if t.isupper() and self.feed(stack.copy(), t)}


def _fed(ip: Any, tok: Token) -> Any:
    ip.feed_token(tok)
    return ip


def _probe(ip: Any) -> Any:
    """A copy of the interactive parser `ip` to try tokens on, as lark's own `accepts` makes them: it builds
    no trees, so it shares the value stack's trees instead of deep-copying them (a deep copy recurses, and
    text nested a few thousand levels deep would raise RecursionError)."""
    trial = ip.copy(deepcopy_values=False)
    conf = copy(trial.parser_state.parse_conf)
    conf.callbacks = {}
    trial.parser_state.parse_conf = conf
    return trial


def _tokens_between(text: str, start: int, end: int) -> int:
    """How many tokens lie in text[start:end]; unlexable text counts as many."""
    if end <= start:
        return 0
    try:
        thread: Any = LexerThread.from_text(_ignoring_lexer(), text[start:end])
        return sum(1 for _ in islice(thread.lex(None), 3))
    except UnexpectedInput:
        return 3


def _next_terminal(text: str, pos: int) -> str | None:
    """The terminal of the token after `pos` (`$END` past the last); None where the text there starts none."""
    try:
        thread: Any = LexerThread.from_text(_ignoring_lexer(), text[pos : pos + _NEAR])
        return next((tok.type for tok in thread.lex(None)), "$END")
    except UnexpectedInput:
        return None


@cache
def _ignoring_lexer() -> Any:
    """The grammar's lexer, built once (`Lark.lex` builds one on every call)."""
    return _lark()._build_lexer()


def _order(name: str) -> tuple[int, str]:
    return (0 if name in _FRIENDLY else 1, terminal_display(name))


def _expected_text(names: list[str]) -> str:
    """What the parser expected, in words: `an expression` where any expression may start (a missing
    operand, `count() > `), else the tokens (`one of ...`)."""
    if not set(names) >= _EXPRESSION_START:
        return _one_of(names)
    others = [n for n in names if n not in _EXPRESSION_START and n not in ("NOT", "WINDOW")]
    return "an expression" + (f" or {_one_of(others)}" if others else "")


@cache
def _operators() -> frozenset[str]:
    words = ("==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "and", "or", "in", "contains", "matches")
    return frozenset(_terminal_of(op) for op in words)


def _one_of(names: list[str]) -> str:
    shown = [terminal_display(n) for n in names if not n.startswith("__IGNORE") and n not in _operators()]
    if len([n for n in names if n in _operators()]) >= 3:  # after an operand: "an operator", not fifteen of them
        shown.insert(0, "an operator")
    else:
        shown = [terminal_display(n) for n in names if not n.startswith("__IGNORE")]
    if not shown:
        return "nothing more"
    if len(shown) == 1:
        return shown[0]
    if len(shown) > 8:
        shown = [*shown[:8], "..."]
    return "one of " + ", ".join(shown)


_LINE_END = re.compile(r"[\r\n]")


def parse(text: str, path: str = "<input>") -> ParseResult:
    """Parse a rule file; never raises on bad input, only returns diagnostics."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        d = error("FLUO402", f"file is larger than {MAX_FILE_BYTES} bytes", _LineIndex(text).span(0, 0), path=path)
        return ParseResult(ast.RuleFile(path=path, text=text), [d])
    read = lone_crs_as_lf(text)
    if read != text:  # a lone CR ends a line too (old Mac files, LSP); the file keeps its own text
        result = parse(read, path)
        return ParseResult(replace(result.file, text=text), result.diagnostics)
    parts: list[_Part] = []
    strict: list[_Part] = []
    refusals = _refusals(text, _SHAPE_FIRST, parts, strict)
    if refusals or parts or strict:  # measured, not built, and read as stand-ins (`_full_parse`, `_StandIns`)
        stand_ins = _StandIns(text, parts, strict)
        stood = _read(_stand_in(text, refusals, parts + strict), path, stand_ins)
        measured = _with_refusals(stood, text, refusals, path, stand_ins)
        if measured is not None:
            return measured
    return _read(text, path)


def _read(text: str, path: str, stand_ins: _StandIns | None = None) -> ParseResult:
    """The fast path, or where it gives up, the full path."""
    fast = _fast_parse(text, path)
    if fast is not None:
        if stand_ins is not None:  # a stand-in read as it is (none is: each is in a rule with a syntax error)
            stand_ins.seen.update(stand_ins.shapes)
        rules, diags = fast
        return ParseResult(ast.RuleFile(path=path, text=text, rules=tuple(rules)), diags)
    return _full_parse(text, path, stand_ins)


_GAP = "[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+"  # spaces within a line, a no-break one too
_SPACED_UNIT = re.compile(rf"[0-9](?:(?:{_GAP})?[µ\u03bc])?{_GAP}[A-Za-zµ\u03bc]+(?![A-Za-z0-9_µ])")
_UNIT = re.compile(rf"{_GAP}([A-Za-zµ\u03bc]+)(?![A-Za-z0-9_µ])")
_SPLIT_MICRO = re.compile(rf"(?:{_GAP})?([µ\u03bc]){_GAP}([A-Za-zµ\u03bc]+)(?![A-Za-z0-9_µ])")
"""`µ s`, `μ s`: microseconds with a space inside the unit (read after the number); `µ sx`, `μ ms`: no unit."""
_PLAIN_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_ASCII_DIGIT = re.compile(r"[0-9]")
_SPACED_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


_ODD_NUMBER = re.compile(
    r"0[xXbBoO][0-9A-Za-z_µ]*|([0-9]+(?:_+[0-9]+)*_*(?:\.[0-9]+(?:_+[0-9]+)*)?)([A-Za-zµ]*)(?![A-Za-z0-9_µ])"
)
_MAY_BE_ODD = re.compile(r"(?<![A-Za-z0-9_])(?:0[xXbBoO]|[0-9]+(?:\.[0-9]+)?_)")
_BASES = {"x": ("hexadecimal", 16), "b": ("binary", 2), "o": ("octal", 8)}


def _odd_numbers(text: str) -> list[tuple[int, int, str | None, str, str]]:
    """Numbers of other languages, which FLUO's lexer reads in pieces: `0x10`, `0b101`, `0o17` and digits
    grouped with `_` (`1_000`, `1_000ms`, `1__0`, `10_`). Each one error: its start, end, the number as FLUO
    writes it (None where none is meant: `0xZZ`, `0b102`, or one past 64 bits), the message and the code."""
    if not _MAY_BE_ODD.search(text):
        return []
    out: list[tuple[int, int, str | None, str, str]] = []
    for lexeme in lex(text):
        m = _ODD_NUMBER.match(text, lexeme.start) if lexeme.kind in ("NUMBER", "DURATION") else None
        if m is None or (out and lexeme.start < out[-1][1]):
            continue
        if m.group(1) is None:
            out.append((m.start(), m.end(), *_based_number(m.group(), text[: m.start()].rstrip().endswith("-"))))
        elif "_" in m.group(1):
            number, unit = m.group(1).replace("_", ""), m.group(2)
            negated = text[: m.start()].rstrip().endswith("-")
            no_grouping = "no number has `_` between its digits"
            if not unit and not _in_range(_number(number), negated):
                message = f"{_quoted(m.group())} is past what a 64-bit number holds ({no_grouping} either)"
                out.append((m.start(), m.end(), None, message, "FLUO108"))
            elif unit in DURATION_UNITS and not _in_range(number_ns(number, DURATION_UNITS[unit], True) or 0, negated):
                message = (
                    f"{_quoted(m.group())} is past what a duration holds (64 bits of nanoseconds, about 292 years)"
                )
                out.append((m.start(), m.end(), None, f"{message}, and {no_grouping}", "FLUO108"))
            else:
                message = f"a number has no `_` between its digits: write `{number + unit}`"
                out.append((m.start(), m.end(), number + unit, message, "FLUO100"))
    return out


def _based_number(word: str, negated: bool) -> tuple[str | None, str, str]:
    """`0x10`, `0x10ms`, `0b102`: the number or duration meant in decimal (None when none is), the message
    saying what the word is, and its code."""
    base, radix = _BASES[word[1].lower()]
    valid = "0123456789abcdef"[:radix] + "_"
    digits = word[2:]
    unit = digits.lstrip(valid + valid.upper())
    digits = digits[: len(digits) - len(unit)].strip("_")
    no_base = f"FLUO has no {base} numbers"
    if not digits or (unit and unit not in DURATION_UNITS):
        if not digits and not unit:
            why = "and no digits follow its prefix"
        elif digits and unit[0].isalpha():
            why = f"and `{unit}` is no duration unit (use one of {_UNITS})"
        else:
            why = f"and `{unit[0]}` is no {base} digit"
        return None, f"{_quoted(word)} is no number: {no_base}, {why}", "FLUO100"
    value = int(digits.replace("_", ""), radix)
    if not unit:
        if not _in_range(value, negated):
            return None, f"{_quoted(word)} is past what a 64-bit number holds ({no_base} either)", "FLUO108"
        return str(value), f"{no_base}: write `{value}`", "FLUO100"
    if not _in_range(value * DURATION_UNITS[unit], negated):
        message = f"{_quoted(word)} is past what a duration holds (64 bits of nanoseconds, about 292 years)"
        return None, f"{message}, and {no_base}", "FLUO108"
    return f"{value}{unit}", f"{no_base}: write `{value}{unit}`", "FLUO100"


def _spaced_durations(text: str) -> list[tuple[int, int, int, str]]:
    """Where a number and a duration unit stand apart (`1 s`, `5 sec`, a no-break space between), or the unit
    itself is split (`500µ s`, `500 μ s`): the number's start and end, the unit's end, and the unit as written
    without its spaces.

    Never valid text (no name may follow a number), so always a duration written with a space.
    """
    if not _SPACED_UNIT.search(text):
        return []
    out = []
    for lexeme in lex(text):
        number_end = lexeme.end - 1 if lexeme.kind == "DURATION" and lexeme.text.endswith("µ") else lexeme.end
        number = text[lexeme.start : number_end]
        if lexeme.kind not in ("NUMBER", "DURATION") or not _SPACED_NUMBER.fullmatch(number):
            continue
        split = _SPLIT_MICRO.match(text, number_end)
        unit = None if split is not None or lexeme.kind != "NUMBER" else _UNIT.match(text, number_end)
        if split is not None and split.group(2) not in keywords() and not text[split.end() :].lstrip().startswith(":"):
            out.append((lexeme.start, number_end, split.end(), split.group(1) + split.group(2)))
        elif unit is not None and _unit_meant(unit.group(1)) is not None:
            out.append((lexeme.start, number_end, unit.end(), unit.group(1)))
    return out


RULE_LINE = re.compile(r"(?:^|(?<=\r))[ \t]*rule\b", re.MULTILINE)  # `^` alone misses lines after a lone `\r`
"""Where a rule starts, as the file is cut into rules: a line that starts with `rule` (no string or comment runs
past its line). The language server cuts a document at the same places (`fluo_lsp.document.split`)."""
_SHAPE_FIRST = MAX_RULE_NODES  # tokens in a rule from which `parse` measures it before building it
_LINE_TEXT = re.compile(r"[^\r\n]+")
_Refusal = tuple[ast.Span, str, str]  # what `_Builder` refuses: its span, the code and message saying so
_Part = tuple[ast.Span, int, int, str]
"""Text before a rule's syntax error, or in its clauses, that `parse` reads as a stand-in (`_StandIns`): its span,
the depth and node count of the lark tree it stands for, and that tree's kind (`_stand_in_ends`); "": a run of `(`
or `[` that no parse reaches, read as spaces."""


def _full_parse(text: str, path: str, stand_ins: _StandIns | None = None) -> ParseResult:
    """`_recovering_parse`, with what it would refuse for its size in each rule that is valid but for that
    (`_refusals`) read as a stand-in: lark took 148 s and 2.3 GB to build the tree of a 4 MiB expression only to
    refuse it. The rest of the file is read and reported as before."""
    refusals = _refusals(text, MAX_DEPTH)
    if refusals:
        read = _with_refusals(_recovering_parse(_stand_in(text, refusals), path, stand_ins), text, refusals, path)
        if read is not None:
            return read
        if stand_ins is not None:
            stand_ins.seen.clear()
            stand_ins.used.clear()
    return _recovering_parse(text, path, stand_ins)


def _refusals(
    text: str, least: int, parts: list[_Part] | None = None, strict: list[_Part] | None = None
) -> list[_Refusal]:
    """What `_Builder` would refuse for its size in the rules of `text` of at least `least` tokens that are valid
    but for that, in order. Rules are cut where a line starts with `rule` (no string or comment runs past its
    line, so such a line starts one) and measured one by one (`_shape_refusals`). In a rule with a syntax error,
    what comes before the error and can be read as a stand-in is added to `parts`, if given, and what comes after
    it to `strict` (`_resumed`), if given too."""
    tables = _fast_tables()
    if tables is None:
        return []
    cuts = [0, *(m.start() for m in RULE_LINE.finditer(text) if m.start())]
    out: list[_Refusal] = []
    line = 0
    for start, end in zip(cuts, [*cuts[1:], len(text)], strict=True):
        if _tokens_at_least(text, tables, start, end, least):
            try:
                out += _shape_refusals(text, tables, start, end, line)
            except _Broken as broken:  # lark reads the rule, with stand-ins if `parts` is given
                if parts is not None:
                    parts += broken.parts
                if strict is not None:
                    strict += _resumed(text, tables, start, end, line, broken.error)
        line += text.count("\n", start, end)
    return out


def _stand_in(text: str, refusals: list[_Refusal], parts: list[_Part] | None = None) -> str:
    """`text` with each part refused a name, `x`, and spaces, and each `_Part` the smallest tree of its kind spread
    over its text (`x       .x`, `x       + x`; a run of openers: spaces): every offset and line stays. A part
    refused right after a name's character (`expect[1, ...]`) is a space then `x`, which would make one name with
    it (`expectx`)."""
    cuts = [(span, None) for span, _, _ in refusals] + [(span, kind) for span, _, _, kind in parts or ()]
    cuts.sort(key=lambda cut: cut[0].start)
    out: list[str] = []
    at = 0
    for span, kind in cuts:
        x = _stand_in_at(text, span) if kind is None else span.start
        if kind is None:
            head, tail = "x", ""
        else:
            head, tail = _stand_in_ends(kind) if kind and kind not in _PREFIX_RUNS else ("", "")
        blank = _LINE_TEXT.sub(_spaces, text[x + len(head) : span.end - len(tail)])
        out += (text[at : span.start], " " * (x - span.start), head, blank, tail)
        at = span.end
    out.append(text[at:])
    return "".join(out)


def _spaces(m: re.Match[str]) -> str:
    return " " * (m.end() - m.start())


def _stand_in_key(span: ast.Span, kind: str) -> int:
    """Where the tree `_Builder` meets for a stand-in of `kind` over `span` starts: the `x` of items (`,    x`)."""
    return span.end - 1 if kind.startswith(_ITEMS) else span.start


def _stand_in_at(text: str, span: ast.Span) -> int:
    """Where the stand-in's `x` goes in the part `span` refused: its start, or one further when a name's character
    comes right before it and the part has room (a space then keeps the two apart)."""
    glued = span.start > 0 and name_char(text[span.start - 1]) and span.end - span.start > 1
    return span.start + 1 if glued else span.start


class _StandIns:
    """The parts (`_Part`) of rules with a syntax error that `parse` reads as stand-ins: each the smallest tree of
    the kind of the tree it stands for, over the same text, so that lark's parser reaches the state it had and the
    recovery finds the same kind of tree where it looks (it reads `text`, the text itself). `_Builder` counts, for
    each stand-in in an expression it measures, the depth and nodes of the tree it stands for: a field chain of
    4 MiB ending in `. }` is measured once and never built. `seen`: the stand-ins whose tokens are in lark's tree,
    `used`: those found whole in expressions refused; `parse` reads the text itself unless every one seen was used
    (the recovery took one apart, or it is where the builder does not measure). One not seen was dropped with what
    was around it (a rule left open to the end), its shape unread, unless an error was read inside it (`_within`).
    `strict`: those after a syntax error in their rule (`_resumed`), where lark's parser may be in another state
    than the one they were measured in: each must be used."""

    def __init__(self, text: str, parts: list[_Part], strict: list[_Part] | None = None) -> None:
        self.text = text
        strict = strict or []
        self.strict = {span.end if k in _PREFIX_RUNS else _stand_in_key(span, k) for span, _, _, k in strict}
        parts = parts + strict
        self.shapes = {
            _stand_in_key(span, k): (d, n, span.end, "name" if k.startswith(_ITEMS) else _STAND_IN_TREES.get(k, k))
            for span, d, n, k in parts
            if k and k not in _PREFIX_RUNS
        }
        self.prefixes = {span.end: (d, span, _PREFIX_RUNS[k][1]) for span, d, _, k in parts if k in _PREFIX_RUNS}
        self.spans = {_stand_in_key(span, k): span for span, _, _, k in parts if k and k not in _PREFIX_RUNS}
        self.spans.update((span.end, span) for span, _, _, k in parts if k in _PREFIX_RUNS)
        self.owners = {at: start for start, (_, _, end, _) in self.shapes.items() for at in (start, end - 1)}
        self.owners.update((at, at) for at in self.prefixes)
        self.seen: set[int] = set()
        self.used: set[int] = set()

    def read(self, tree: Tree[Any]) -> None:
        """Note the stand-ins whose first or last token is in `tree` (walked without recursion: trees run deep)."""
        stack: list[Any] = [tree]
        while stack:
            node = stack.pop()
            if isinstance(node, Tree):
                stack += node.children
            elif isinstance(node, Token) and node.start_pos in self.owners and node.value in ("x", "-", "not"):
                self.seen.add(self.owners[node.start_pos])  # (not a token the recovery read in place of text)

    def prefix(self, node: Tree[Any]) -> int | None:
        """Where `node` starts, if it is the outermost `-` (or `not`) kept of a run read as spaces before it
        (`_run_parts`)."""
        at = _start_of(node)
        return at if at in self.prefixes and node.data == self.prefixes[at][2] else None

    def of(self, node: Tree[Any]) -> int | None:
        """The stand-in `node` is the tree of, whole, if it is one."""
        at = _start_of(node)
        shape = self.shapes.get(at)
        return at if shape is not None and shape[3] == node.data and _end_of(node) == shape[2] else None


def _with_refusals(
    result: ParseResult, text: str, refusals: list[_Refusal], path: str, stand_ins: _StandIns | None = None
) -> ParseResult | None:
    """`result`, read from `_stand_in(text, refusals)`, as `_Builder` reads `text`: each stand-in is `Missing` over
    the part it stands for, and its diagnostic is reported. None if a stand-in was not read where it stands (lark
    read that rule as something else: past the end of a bare expression, as errors it counts), so what lark makes
    of the text itself is not known; the same if one of `stand_ins` lark read (or one read after a syntax error in
    its rule, `_StandIns.strict`) was not measured in an expression refused, or one not measured has an error read
    in it (`_within`: lark read the rule from elsewhere, inside one left open)."""
    if stand_ins is not None and (stand_ins.seen | stand_ins.strict) - stand_ins.used:
        return None
    if stand_ins is not None and stand_ins.spans.keys() - stand_ins.used:  # not measured: no error read in it
        unused = [span for at, span in stand_ins.spans.items() if at not in stand_ins.used]
        if any(_within(d.span, s) for d in result.diagnostics for s in unused):
            return None
    spans = {_stand_in_at(text, span): span for span, _, _ in refusals}
    used: set[int] = set()
    rules = [_restored(rule, spans, used) for rule in result.file.rules]
    if len(used) < len(spans):
        return None
    diags = [error(code, message, span, path=path) for span, code, message in refusals]
    file = replace(result.file, text=text, rules=tuple(rules))
    return ParseResult(file, sorted([*result.diagnostics, *diags], key=sort_key))


def _within(found: ast.Span, stand_in: ast.Span) -> bool:
    """Whether a diagnostic over `found` was read in the stand-in over `stand_in`, not over the text it stands for:
    it starts inside, short of covering it from its start (as one the recovery made of the text itself does)."""
    if found.start == stand_in.start:
        return found.end < stand_in.end
    return stand_in.start < found.start < stand_in.end


def _tokens_at_least(text: str, tables: _FastTables, start: int, end: int, n: int) -> bool:
    """Whether `text[start:end]` holds at least `n` tokens, comments and spaces not counted (or text that starts
    none), reading no further than the `n`th."""
    if end - start < n:
        return False
    ignore = tables.ignore
    for m in tables.scanner.finditer(text, start, end):
        if m.lastgroup not in ignore:
            n -= 1
            if n <= 0:
                return True
    return False


def _restored(rule: ast.Rule, spans: dict[int, ast.Span], used: set[int]) -> ast.Rule:
    """A rule read from stand-in text with each stand-in (`spans`, by start) made `Missing` over what it stands
    for, and the clause, metadata entry or bare rule around it widened to its end. `used` gathers the stand-ins
    found."""
    clauses = []
    for c in rule.clauses:
        if isinstance(c.expr, ast.Name) and (span := spans.get(c.expr.span.start)) is not None:
            used.add(span.start)
            if rule.bare:  # the rule is its expression
                return replace(rule, span=span, id_span=span, clauses=(ast.Clause(span, c.kind, ast.Missing(span)),))
            c = ast.Clause(_widened(c.span, span), c.kind, ast.Missing(span))
        clauses.append(c)
    meta = []
    for m in rule.meta:
        if m.value.kind == "ident" and (span := spans.get(m.value.span.start)) is not None:
            used.add(span.start)
            m = ast.Meta(_widened(m.span, span), m.key, m.key_span, ast.MetaItem(span, "", "missing"))
        meta.append(m)
    return replace(rule, meta=tuple(meta), clauses=tuple(clauses))


def _widened(span: ast.Span, inner: ast.Span) -> ast.Span:
    """`span`, running on to the end of `inner` if that ends later (a stand-in is shorter than what it stands for)."""
    if inner.end <= span.end:
        return span
    return ast.Span(span.start, inner.end, span.line, span.col, inner.end_line, inner.end_col)


def _recovering_parse(text: str, path: str, stand_ins: _StandIns | None = None, read: str | None = None) -> ParseResult:
    """lark's parser with error recovery, then `_Builder` over its tree: any text, every diagnostic. The recovery
    reads `read` around an error (by default `text`, or where `text` holds `stand_ins`, the text they stand in).

    A duration written with a space (`1 s`, `500µ s`) is one error, and read as the duration meant; with an
    exponent too (`1e3 ms`), the one error is the exponent's, over the number and its unit; where the duration
    meant is no whole number of nanoseconds or past 64 bits (`1.5 ns`), the one error says that too.
    """
    if read is None and stand_ins is not None:
        read = stand_ins.text
    odd = _odd_numbers(text)
    if odd:  # read as the number meant, or `0` where that is longer than what was written: offsets stay
        odd_text, index, said = list(text), _LineIndex(text), []
        odd_read = list(read) if read is not None else None
        for start, end, meant, message, code in odd:
            stand = (meant if meant is not None and len(meant) <= end - start else "0").ljust(end - start)
            odd_text[start:end] = stand
            if odd_read is not None:
                odd_read[start:end] = stand
            said.append(error(code, message, index.span(start, end), path=path, suggestion=meant))
        result = _recovering_parse("".join(odd_text), path, stand_ins, None if odd_read is None else "".join(odd_read))
        by_start = {d.span.start: i for i, d in enumerate(said)}
        rest = []
        for d in result.diagnostics:
            if d.span.start in by_start and d.code in ("FLUO108", "FLUO109"):  # `1_0.5ns`: one error for the literal
                was = said[by_start[d.span.start]]
                message = f"{was.message.partition(': write')[0]}, and {d.message}"
                said[by_start[d.span.start]] = replace(was, message=message, suggestion=d.suggestion)
            else:
                rest.append(d)
        return ParseResult(replace(result.file, text=text), _capped([*said, *rest]))
    spaced = _spaced_durations(text)
    if spaced:
        joined, found, index = list(text), {}, _LineIndex(text)
        joined_read = list(read) if read is not None else None
        # a spaced duration with an exponent: its end, as read, and its slips (a space inside the unit, Greek mu)
        exponents: dict[int, tuple[int, str, bool, bool]] = {}
        unclear: dict[int, int] = {}  # a unit written apart that is none (`500µ sx`): its start, and its end
        for start, end, unit_end, written in spaced:
            number, unit = text[start:end], _unit_meant(written) or written
            if unit not in DURATION_UNITS:  # `500μ ms`: `500ms` or `500us`? one error, no guess
                message = (
                    f"unknown duration unit `{text[end:unit_end].strip()}` in `{text[start:unit_end]}` "
                    f"(a unit has no space inside it): use one of {_UNITS}"
                )
                found[start] = error("FLUO103", message, index.span(start, unit_end), path=path)
                unclear[start], unit = unit_end, "s"  # read as a duration, whose value nothing uses
            # the unit moves next to its number and the space after it, so every offset stays
            joined[start:unit_end] = number + unit + " " * (unit_end - start - len(number) - len(unit))
            if joined_read is not None:
                joined_read[start:unit_end] = joined[start:unit_end]
            if start in unclear:
                continue
            inside, greek = len(text[end:unit_end].split()) > 1, written == "\u03bcs"  # `500µ s`, `500 μs`
            if not _PLAIN_NUMBER.fullmatch(number):
                exponents[start] = unit_end, number + unit, inside, greek
                continue
            what = "a duration unit has no space inside it" if inside else "a duration has no space before its unit"
            also = ""
            if greek:
                what += _GREEK_MU
                also = _micro_sign_too(number)
            elif unit != written:  # `5 sec`
                what = f"unknown unit `{written}`"
            message = f"{what}: write `{number}{unit}`{also}"
            found[start] = error("FLUO100", message, index.span(start, unit_end), path=path, suggestion=number + unit)
        read = None if joined_read is None else "".join(joined_read)
        result = _recovering_parse("".join(joined), path, stand_ins, read)
        diagnostics = []
        for d in result.diagnostics:
            if d.span.start in unclear and d.span.end <= unclear[d.span.start]:
                continue  # the literal's own (`1e3µ sx`: its exponent): its one error says it has no meaning
            if d.span.start in exponents and d.message.startswith(_NO_EXPONENT):
                diagnostics.append(_spaced_exponent(d, text, index, *exponents[d.span.start]))
            elif d.span.start in found and d.code in ("FLUO108", "FLUO109"):  # `1.5 ns`: one error for the literal
                was = found[d.span.start]
                message = f"{was.message.partition(': write')[0]}, and {d.message}"
                found[d.span.start] = replace(was, message=message, suggestion=d.suggestion)
            else:
                diagnostics.append(d)
        return ParseResult(replace(result.file, text=text), _capped([*found.values(), *diagnostics]))
    index = _LineIndex(text)
    rule_file = ast.RuleFile(path=path, text=text)
    recovery = _Recovery(text if read is None else read, index, path)
    try:
        tree = _lark().parse(text, on_error=recovery)
    except UnexpectedInput:
        tree = None
    builder = _Builder(text, index, path, stand_ins)
    diags = recovery.diagnostics
    if tree is not None and stand_ins is not None and stand_ins.shapes:
        stand_ins.read(tree)
    if tree is not None:
        rules = builder.file(tree)
        rule_file = ast.RuleFile(path=path, text=text, rules=tuple(rules))
        if recovery.key_guesses:
            diags = _key_fixes(diags, rules, recovery.key_guesses)
    diags.extend(builder.diagnostics)
    return ParseResult(rule_file, _capped(diags))


def _capped(diags: list[Diagnostic]) -> list[Diagnostic]:
    """The file's diagnostics with its syntax errors capped as one count: the recovery's, the literals' the tree's
    builder finds (`1.5ns`, `1e3ms`) and the spaced durations read before parsing (`1 m`), all FLUO1xx. At most
    `MAX_ERRORS` by position, then one FLUO403 (and no stop FLUO403 after it, as the recovery does); none from
    where the recovery stopped reading (`stop_message`), which that FLUO403 says is not read. The language server,
    which parses a file rule by rule, caps the sum of the parts' marked errors the same way (`fluo_lsp.document`).
    """
    stop = next((d.span.start for d in diags if d.code == "FLUO403" and not d.capped), None)
    out: list[Diagnostic] = []
    for d in diags:
        if d.code.startswith("FLUO1"):
            if stop is not None and d.span.start >= stop:
                continue
            if not d.capped:
                d = replace(d, capped=True)
        out.append(d)
    # the recovery's own FLUO403 stands where its first error not reported was: the cut is there at the latest
    syntax = sorted((d for d in out if d.capped), key=sort_key)
    cut = next((i for i, d in enumerate(syntax) if i == MAX_ERRORS or d.code == "FLUO403"), None)
    if cut is None or (syntax[cut].code == "FLUO403" and cut == len(syntax) - 1):
        return out
    dropped = {id(d) for d in syntax[cut:]}
    out = [d for d in out if id(d) not in dropped and d.code != "FLUO403"]
    at = syntax[cut]
    out.append(error("FLUO403", TOO_MANY_ERRORS, at.span, path=at.path, capped=True))
    return sorted(out, key=sort_key)


def _spaced_exponent(
    d: Diagnostic, text: str, index: _LineIndex, end: int, read: str, inside: bool, greek: bool
) -> Diagnostic:
    """The exponent's error on `1e3 ms` (read as `1e3ms`): over the number and its unit, saying every slip: the
    space (before the unit, or `inside` it: `1e3µ s`) and, as `500 μ s` does, a `greek` mu (`1e3 μ s`)."""
    written = text[d.span.start : end]
    slips = f"{_NO_EXPONENT} nor a space {'inside' if inside else 'before'} its unit{_GREEK_MU if greek else ''}"
    message = d.message.replace(_NO_EXPONENT, slips, 1).replace(f"`{read}`", f"`{written}`")
    if greek and d.suggestion is not None:
        message += _micro_sign_too(d.suggestion.removesuffix("us"))
    return replace(d, span=index.span(d.span.start, end), message=message)


def _micro_sign_too(number: str) -> str:
    """After the fix `{number}us` for a Greek mu: the other way to write it."""
    return f" (or `{number}µs` with the micro sign)"


def _key_fixes(diags: list[Diagnostic], rules: list[ast.Rule], guesses: dict[int, str]) -> list[Diagnostic]:
    """A metadata key past ASCII (`ownér: 'x'`) gets the key its error names as its fix only if that key takes
    the value written (as the typechecker's FLUO210 does for `ownr`): `ownér: error` is told of `owner`, but
    `owner: error` would be FLUO212 (`owner` takes a string), so it gets no fix. `guesses` is by where the key
    starts (the key was read as missing, so its span there is empty)."""
    fits = {
        m.key_span.start: guess
        for rule in rules
        for m in rule.meta
        if not m.key and (guess := guesses.get(m.key_span.start)) is not None and ast.meta_fits(guess, m.value)
    }
    return [
        replace(d, suggestion=fits[d.span.start])
        if d.code == "FLUO100" and d.suggestion is None and d.span.start in fits and "metadata key" in d.message
        else d
        for d in diags
    ]


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


@cache
def _lexeme_pattern() -> tuple[re.Pattern[str], dict[str, Any]]:
    """That lexer's terminals as the one regular expression its scanner tries at each position (same order,
    same flags), and its callbacks by terminal (an `IDENT` that spells a keyword is that keyword's terminal).

    `lex` runs the expression itself: lark's lexer also makes a `Token` and counts lines for every token,
    which took more than half the time (115 ms against 50 on a 98 KB line of 40,000 lexemes)."""
    lexer = _keeping_lexer()
    scanner = lexer.scanner  # built on first use, with the callbacks
    pattern = "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in scanner.terminals)
    return re.compile(pattern, lexer.g_regex_flags), dict(lexer.callback)


def lex(text: str) -> list[Lexeme]:
    """Every lexeme of `text`, in order, covering it completely; never raises.

    For tools that keep what the parser ignores: the formatter and semantic highlighting.
    """
    pattern, callbacks = _lexeme_pattern()
    renamed: dict[tuple[str, str], str] = {}  # (terminal, text) -> the terminal lark's callback makes it
    out: list[Lexeme] = []
    pos = 0
    while pos < len(text):
        m = pattern.match(text, pos)
        if m is None:  # text that starts no token
            end = pos + 1
            if text[pos] in "\"'":
                eol = _LINE_END.search(text, pos)
                end = len(text) if eol is None else eol.start()
            out.append(Lexeme("ERROR", text[pos:end], pos, end))
            pos = end
            continue
        kind, value = m.lastgroup or "", m.group()
        if kind in callbacks:
            if (kind, value) not in renamed:
                renamed[kind, value] = callbacks[kind](Token(kind, value)).type
            kind = renamed[kind, value]
        out.append(Lexeme(kind, value, pos, m.end()))
        pos = m.end()
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
_LOGIC: dict[str, Literal["and", "or"]] = {"or_": "or", "and_": "and"}
_BIN = {
    "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">",
    "ge": ">=", "in_": "in", "not_in": "not in", "contains": "contains", "matches": "matches",
    "add": "+", "sub": "-", "mul": "*", "div": "/",
}  # fmt: skip
_CLAUSES = ("expect", "detect", "when", "always", "never")
_OPERATOR_GAP = re.compile(r"[\s()]*(?P<op>.*?)[\s()]*", re.DOTALL)
"""What is between a binary operator's operands: the operator, parentheses, spaces (and comments, blanked)."""


class _Builder:
    def __init__(self, text: str, index: _LineIndex, path: str, stand_ins: _StandIns | None = None) -> None:
        self.text = text
        self.index = index
        self.path = path
        self.stand_ins = stand_ins
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

    def operator_span(self, start: int, end: int) -> ast.Span | None:
        """Where the operator is between two operands (`start`..`end`: parentheses, spaces and comments around
        it; a word the recovery read as an operator, `IN`, is it too); None if there is none (one inserted)."""
        if not 0 <= start <= end:
            return None
        found = _OPERATOR_GAP.fullmatch(_COMMENT.sub(_spaces, self.text[start:end]))
        if found is None or not found["op"]:
            return None
        return self.index.span(start + found.start("op"), start + found.end("op"))

    def file(self, tree: Tree[Any]) -> list[ast.Rule]:
        if tree.data == "empty":
            return []
        if tree.data == "bare_expr":
            body = tree.children[0]
            expr = self.guarded(body)
            span = expr.span if type(expr) is ast.Missing else self.span_of(body)  # from a run read as spaces too
            clause = ast.Clause(span, "expect", expr)
            return [ast.Rule(span, _bare_rule_id(self.path), span, (), (clause,), (), bare=True)]
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
                        _meta_key(str(key)),
                        self.span_of(key),
                        self.meta_guarded(item.children[1]),
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

    def meta_guarded(self, node: Tree[Any] | Token) -> ast.MetaItem:
        """Convert a metadata value, refusing lists nested deeper than `MAX_DEPTH` (like `guarded`)."""
        depth = _meta_nesting(node)
        if depth > MAX_DEPTH:
            span = self.span_of(node)
            self.diagnostics.append(error(*_meta_too_deep(depth), span, path=self.path))
            return ast.MetaItem(span, "", "missing")
        return self.meta_value(node)

    def meta_value(self, node: Tree[Any] | Token) -> ast.MetaItem:
        span = self.span_of(node)
        if isinstance(node, Token) or not isinstance(node, Tree):
            return ast.MetaItem(span, str(node), "missing" if _MISSING in str(node) else "ident")
        kind = node.data
        tok = node.children[0] if node.children else None
        if isinstance(tok, Token) and _MISSING in str(tok):  # recovery inserted it: the syntax error says so
            return ast.MetaItem(span, "", "missing")
        if kind == "meta_string":
            return ast.MetaItem(span, self.string_value(tok), "string")  # type: ignore[arg-type]
        if kind == "meta_ident":
            return ast.MetaItem(span, str(tok), "ident")
        if kind == "meta_number":
            value = _number(str(tok))
            return ast.MetaItem(span, value, "int" if isinstance(value, int) else "float")
        if kind == "meta_duration":  # read for its errors (`1.5ns`); no key takes one, so it is kept as written
            self.duration_ns(tok)  # type: ignore[arg-type]
            return ast.MetaItem(span, str(tok), "duration")
        if kind in ("meta_true", "meta_false"):
            return ast.MetaItem(span, kind == "meta_true", "bool")
        items = [self.meta_value(c) for c in node.children if c is not None]  # `meta_guarded` bounds the depth
        return ast.MetaItem(span, items, "list")

    def guarded(self, tree: Tree[Any] | Token) -> ast.Expr:
        """Convert an expression, refusing trees too deep or too large to handle safely."""
        span = self.span_of(tree)
        found: list[int] = []
        past = _past_limits(*_measure(tree, self.stand_ins, found))
        if past is None and found and self.stand_ins is not None:  # in a tree that is built: lark reads the text
            self.stand_ins.seen.update(found)
        if past is not None:
            if self.stand_ins is not None:
                self.stand_ins.used.update(found)
                run = self.stand_ins.prefixes.get(span.start, (0, span))[1]  # the `-` read as spaces before it
                span = ast.Span(run.start, span.end, run.line, run.col, span.end_line, span.end_col)
            self.diagnostics.append(error(*past, span, path=self.path))
            return ast.Missing(span)
        return self.expr(tree)

    def expr(self, node: Tree[Any] | Token) -> ast.Expr:
        span = self.span_of(node)
        if isinstance(node, Token):
            return ast.Missing(span)
        kind = node.data
        ch = node.children
        if kind in _BIN:
            left, right = self.expr(ch[0]), self.expr(ch[1])
            op_span = self.operator_span(left.span.end, right.span.start) or span
            return ast.Binary(span, _BIN[kind], left, right, op_span)  # type: ignore[arg-type]
        if kind in _LOGIC:
            return ast.Logic(span, _LOGIC[kind], tuple(self.expr(c) for c in ch))
        if kind == "not_":
            return ast.Unary(span, "not", self.expr(ch[0]))
        if kind == "neg":
            operand = ch[0]
            if isinstance(operand, Tree) and operand.data in ("number", "duration"):
                # `-9223372036854775808`: the smallest 64-bit value, whose digits alone are one past the largest
                literal = self.x_number if operand.data == "number" else self.x_duration
                return ast.Unary(span, "-", literal(self.span_of(operand), operand.children, negated=True))
            return ast.Unary(span, "-", self.expr(operand))
        handler: Callable[[ast.Span, list[Any]], ast.Expr] | None = getattr(self, "x_" + kind, None)
        if handler is None:
            return ast.Missing(span)
        return handler(span, ch)

    def x_string(self, span: ast.Span, ch: list[Any]) -> ast.Expr:
        if _MISSING in str(ch[0]):
            return ast.Missing(span)
        return ast.Literal(span, self.string_value(ch[0]), "string")

    def x_number(self, span: ast.Span, ch: list[Any], negated: bool = False) -> ast.Expr:
        if ch[0] == _MISSING:
            return ast.Missing(span)
        value = _number(str(ch[0]))
        if not _in_range(value, negated):
            message = f"{_quoted(str(ch[0]))} is past what a 64-bit number holds"
            self.diagnostics.append(error("FLUO108", message, span, path=self.path))
            return ast.Missing(span)
        return ast.Literal(span, value, "int" if isinstance(value, int) else "float")

    def x_duration(self, span: ast.Span, ch: list[Any], negated: bool = False) -> ast.Expr:
        ns = self.duration_ns(ch[0], negated)
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
        """The value of a string literal. Its escapes FLUO does not know (`"\\d+"`, a regular expression's)
        are one FLUO102, whose fix doubles their backslashes: each was meant as a backslash itself. With a
        `\\n \\t \\r \\0` in the same string (`"C:\\temp\\x"`: a path, or a tab meant?) there is no fix."""
        raw = str(tok)[1:-1]
        value, bad = _unescape(raw)
        loose = [(i, n) for i, n, _ in bad if n == 2 and raw[i + 1] != "u" and raw[i + 1].isprintable()]
        base = (tok.start_pos or 0) + 1
        for i, length, message in bad:
            if (i, length) not in loose:
                span = self.index.span(base + i, base + i + length)
                self.diagnostics.append(error("FLUO102", message, span, path=self.path))
        if loose:
            first, last = loose[0][0], loose[-1][0] + 2
            written = ", ".join(dict.fromkeys(f"`{raw[i : i + 2]}`" for i, _ in loose))
            letters = [f"`{raw[i : i + 2]}`" for i, c in _escapes(raw) if c in _LETTER_ESCAPES]
            plural = "s" if len(loose) > 1 else ""
            message = f"invalid escape{plural} {written} in string (use \\n \\t \\r \\\\ \\' \\\" \\0 or \\uXXXX); "
            if letters:
                # `"C:\\temp\\x"` a path, or `"a\\tb\\q"` a tab meant: only the writer knows, so no fix
                fix = None
                message += (
                    f"a backslash itself is `\\\\`; this string's {', '.join(dict.fromkeys(letters))} "
                    "is read as an escape, so double it too if each backslash is meant as itself"
                )
            elif any(raw[i + 1] in "xU" for i, _ in loose):
                # `"\\x41"`, `"\\U0001F600"`: another language's character escape, meant as the character
                fix = None
                message += "FLUO writes a character as itself or as `\\uXXXX` (a pair of them past U+FFFF)"
            else:
                fix = "".join("\\" + raw[i] if (i - 1, 2) in loose else raw[i] for i in range(first, last))
                message += f"a backslash itself is `\\\\`: write `{fix}`"
            span = self.index.span(base + first, base + last)
            self.diagnostics.append(error("FLUO102", message, span, path=self.path, suggestion=fix))
        if _INVISIBLE.search(raw):
            self.invisible(raw, base)
        return value

    def invisible(self, raw: str, base: int) -> None:
        """FLUO110 for a string literal holding characters that show as nothing (`'ad<U+200B>min'` reads as
        `'admin'`); its fix writes them as `\\uXXXX` escapes, as `fluo discover` does."""
        found = [m for m in _INVISIBLE.finditer(raw) if not _joining(raw, m.start())]
        if not found:
            return
        first, last = found[0].start(), found[-1].end()
        names = ", ".join(dict.fromkeys(_code_point(m[0]) for m in found))
        fix = _INVISIBLE.sub(lambda m: f"\\u{ord(m[0]):04x}", raw[first:last])
        message = f"the string holds {names}, which shows as nothing: write it as an escape, `{fix}`"
        span = self.index.span(base + first, base + last)
        self.diagnostics.append(warning("FLUO110", message, span, path=self.path, suggestion=fix))

    def duration_ns(self, tok: Token | None, negated: bool = False) -> int | None:
        """The nanoseconds of a duration literal (`negated`: the operand of a `-`, see `_in_range`), or None
        after its error. One that is no whole number of nanoseconds (`1.5ns`) is FLUO109, read as the whole
        number nearest it, which its fix writes."""
        text = str(tok) if tok is not None else ""
        if tok is not None and (exponent := _EXPONENT_DURATION.fullmatch(text)):
            return self.exponent_ns(tok, exponent[1], exponent[2], negated)
        parts = _duration_parts(text)
        if tok is None or parts is None:
            return None
        number, unit = parts
        span = self.span_of(tok)
        # A unit not as FLUO writes it is FLUO103, and read as meant. A problem of the value too (`1.5nsec`, no
        # whole number of nanoseconds) is said in that same error, whose fix mends both: one error per literal.
        slip: tuple[str, str, str | None] | None = None  # FLUO103 alone: its message, how it ends, and its fix
        if unit in _MICRO_ALONE:
            fix = self.micro_fix(tok, number + _MICRO_ALONE[unit])
            message = (
                f"incomplete duration unit `{unit}` in `{text}`: microseconds are `us`, or `µs` with the micro sign"
            )
            slip = message, f"; write `{fix}`" if fix else f"; use one of {_UNITS}", fix
            unit = _MICRO_ALONE[unit]
        elif unit not in DURATION_UNITS:
            meant = _unit_meant(unit)
            if meant is None:
                message = f"unknown duration unit `{unit}` in `{text}`; use one of {_UNITS}"
                self.diagnostics.append(error("FLUO103", message, span, path=self.path))
                return None
            message = f"unknown duration unit `{unit}` in `{text}` (did you mean `{meant}`?)"
            slip = message, f"; use one of {_UNITS}", number + meant
            unit = meant
        written = text if slip is None else number + unit  # the value's problem is said of the literal as meant
        exact = number_ns(number, DURATION_UNITS[unit])
        ns = exact if exact is not None else number_ns(number, DURATION_UNITS[unit], nearest=True)
        problem: tuple[str, str, str | None] | None = None  # the value's error: code, message, fix
        if ns is not None and not _in_range(ns, negated):
            message = f"{_quoted(written)} is past what a duration holds (64 bits of nanoseconds, about 292 years)"
            problem, ns = ("FLUO108", message, None), None
        elif exact is None:
            nearest = None if ns is None or (slip is not None and slip[2] is None) else _in_unit(ns, unit)
            message = f"`{written}` is no whole number of nanoseconds, which durations count"
            problem = "FLUO109", message + (f": write `{nearest}`" if nearest else ""), nearest
        if slip is not None and problem is None:
            self.diagnostics.append(error("FLUO103", slip[0] + slip[1], span, path=self.path, suggestion=slip[2]))
        elif slip is not None and problem is not None:
            message = f"{slip[0]}, and {problem[1]}"
            self.diagnostics.append(error("FLUO103", message, span, path=self.path, suggestion=problem[2]))
        elif problem is not None:
            self.diagnostics.append(error(problem[0], problem[1], span, path=self.path, suggestion=problem[2]))
        return ns

    def exponent_ns(self, tok: Token, number: str, unit: str, negated: bool = False) -> int | None:
        """`1e3s`: a duration with an exponent, which FLUO's do not take (a number may: `1e3`). One error that
        says what to write (`exponent_duration`), and read as the value it fixes to, if any."""
        unit_may_follow = unit in _MICRO_ALONE and self.micro_fix(tok, unit) is None
        message, fix, ns = exponent_duration(number, unit, negated, unit_may_follow=unit_may_follow)
        self.diagnostics.append(error("FLUO100", message, self.span_of(tok), path=self.path, suggestion=fix))
        return ns

    def micro_fix(self, tok: Token, meant: str) -> str | None:
        """`meant` as the fix of `500μ`, a micro sign with its `s` left off; none where a unit may go on after a
        space (`500μ s`, `500μ ms`): that the whole of it was meant as `500us`, only the writer knows."""
        after = _UNIT.match(self.text, tok.end_pos or 0)
        return None if after is not None and _folded_unit(after.group(1)) is not None else meant


def exponent_duration(
    number: str, unit: str, negated: bool = False, *, unit_may_follow: bool = False
) -> tuple[str, str | None, int | None]:
    """What is wrong with a duration written with an exponent, `number` then `unit` (`1e3` and `ms`), which FLUO's
    do not take (a number may: `1e3`): the message, the fix (`1000ms`) and its nanoseconds, the fix and value only
    where the value is exact in whole nanoseconds (`1000s`, `0.0015s`). As the rule language says it (FLUO100)
    and `fluo test` says it of a span's duration. `negated`: the operand of a `-` (see `_in_range`);
    `unit_may_follow`: a unit may go on after a space (`500μ s`), so a micro sign with no `s` gets no fix."""
    text = number + unit
    meant_unit = unit if unit in DURATION_UNITS else _MICRO_ALONE.get(unit) or _folded_unit(unit)
    message = _NO_EXPONENT
    fix = ns = None
    greek = unit == "\u03bcs"  # as `500μs` and `1e3 μs` say: the fix is `us`, the micro sign's `µs` too
    if greek:
        message += _GREEK_MU
    if unit in _MICRO_ALONE:
        message += f", and `{unit}` is an incomplete unit (microseconds are `us`, or `µs` with the micro sign)"
    if meant_unit is None:
        message += f", and `{unit}` is no unit: write a plain number and one of {_UNITS}"
    else:
        exact = number_ns(number, DURATION_UNITS[meant_unit])
        if exact is None:
            message += f", and `{text}` is no whole number of nanoseconds: write a plain number"
        elif not _in_range(exact, negated):
            message += f", and {_quoted(text)} is past what a duration holds (64 bits of nanoseconds, about 292 years)"
        else:
            ns = exact
            fix = None if unit_may_follow else _plain_decimal(number) + meant_unit
            message += f": write `{fix}`" if fix else f": write a plain number and one of {_UNITS}"
            if greek and fix:
                message += _micro_sign_too(_plain_decimal(number))
    return message, fix, ns


def _mantissa_and_exponent(number: str) -> tuple[str, int]:
    """`1.5e-3` as ("15", -4), `1.20e3` as ("12", 2): the significant digits (no zero first or last; "" for
    zero) and the power of ten that scales them, exactly. An exponent of more than 7 digits is read as
    ±10**7, past anything a duration holds either way; Python's `int` refuses strings of 4,300 digits."""
    mantissa, _, exponent = number.lower().partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    significant = digits.rstrip("0")
    negative = exponent.startswith("-")
    magnitude = exponent.lstrip("+-").lstrip("0") or "0"
    power = int(magnitude) if len(magnitude) <= 7 else 10**7
    return significant, (-power if negative else power) + len(digits) - len(significant) - len(fraction)


def number_ns(number: str, unit_ns: int, nearest: bool = False) -> int | None:
    """The nanoseconds of `1.5e-3` (or `1.5`) units of `unit_ns`, exactly, as duration literals and `fluo test`'s
    inline spans read them; past 64 bits (`_PAST_64_BITS`) where it is larger. Where that is no whole number:
    None, or with `nearest` the whole number nearest it (a half up; still None past 40 significant digits).

    Integer arithmetic only, and a size first: a power or a mantissa far past any duration (`1e999999s`,
    a thousand digits) is answered without building a number that large."""
    digits, power = _mantissa_and_exponent(number)
    if not digits:
        return 0
    # The largest unit, a day, is 2**16 * 3**3 * 5**11 ns; `digits` ends in no 0, so it lacks a factor 2 or 5,
    # and a whole number of ns needs power >= -16. With more than 40 digits that is >= 10**24 ns.
    if len(digits) > 40:
        return None if power < -16 else _PAST_64_BITS
    if power > 40:  # at least 10**40 ns: past 64 bits, whatever the digits
        return _PAST_64_BITS
    if power < 0:
        if -power > len(digits) + 15:  # digits * unit_ns < 10**(len + 14): under a hundredth of a nanosecond
            return 0 if nearest else None
        ns = Fraction(int(digits) * unit_ns, 10**-power)
        if ns.denominator == 1:
            return ns.numerator
        return math.floor(ns + Fraction(1, 2)) if nearest else None
    return int(digits) * int(10**power) * unit_ns


def _plain_decimal(number: str) -> str:
    """`1000` for `1e3`, `0.0015` for `1.5e-3`: a number as FLUO writes it, without an exponent (exact, for a
    number whose value `number_ns` found in range)."""
    digits, power = _mantissa_and_exponent(number)
    if not digits:
        return "0"
    if power >= 0:
        return digits + "0" * power
    text = digits.rjust(-power + 1, "0")
    return text[:power] + "." + text[power:]


_NO_EXPONENT = "a duration takes no exponent"
_GREEK_MU = ", and `μ` is Greek mu"
_MICRO_ALONE = {"µ": "µs", "\u03bc": "us"}  # the micro sign or Greek mu with no `s`: microseconds, as FLUO writes them
_EXPONENT_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?[eE][+-]?[0-9]+)(.*)")


def _bare_rule_id(path: str) -> str:
    """A bare expression's rule is named after its file: its stem (the name without its last suffix),
    made a valid id.

    Accents are dropped (`latência` gives `latencia`); any other character an id cannot hold (`-`, `.`,
    a space, a letter with no ASCII base) becomes `_`, and a leading digit gets a `_` before it, so
    `2fast-path.fluo` holds rule `_2fast_path` and `auth.v2.fluo` holds `auth_v2`, ids a `rule` could be
    written with. A file whose stem is empty (`.fluo`) holds `expr`.
    """
    name = PurePath(path)
    stem = "" if name.name.startswith(".") and not name.suffix else name.stem  # `.fluo` has no stem
    return _ascii_id(stem) or "expr"


_NUMBERISH = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+|[a-z]*)")
"""A number or a duration (`5ms`), as a full-width one (`\uff15ms`) folds to; a number with an exponent too
(`1e3` and a full-width zero is `1e30`), a duration never (it takes no exponent)."""


def without_accents(text: str) -> str:
    """`text` with its letters' accents taken off (`latência` gives `latencia`)."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _names_fluo_knows(path: str, plain: str) -> bool:
    """Whether each part of `path` that had an accent is, without it, a name of FLUO's own (a root, a field, a
    method, an intrinsic): `tráce` is `trace` mistyped, `usuário` an attribute key."""
    from . import builtins as b  # the registry imports the trace model, which the parser does not need otherwise

    known = set(b.ROOTS) | {m.name for m in b.MEMBERS}
    changed = [q for p, q in zip(path.split("."), plain.split("."), strict=True) if p != q]
    return bool(changed) and all(q in known for q in changed)


def meta_key_meant(written: str) -> str | None:
    """The metadata key of FLUO's that a key none of them is stands for, if one is close: `sevérity` and
    `severty` are `severity`. The parser's error names it; completion offers that key's values after it."""
    return nearest(_ascii_id(written), list(ast.META_KEYS))


def _ascii_id(text: str) -> str:
    """`text` made a valid id (`latência` gives `latencia`, `2fast-path` gives `_2fast_path`); "" for ""."""
    ascii_text = without_accents(text)
    ident = re.sub(r"[^A-Za-z0-9_]", "_", ascii_text)
    return f"_{ident}" if ident[:1].isdigit() else ident


_INT64 = 1 << 63


def _in_range(value: int | float, negated: bool = False) -> bool:
    """Whether a literal fits what OTLP's values do: a 64-bit integer, a finite double. A `negated` one (the
    operand of a `-`) may be 2**63 too: negated, it is the smallest 64-bit integer."""
    if isinstance(value, int):
        return -_INT64 <= value <= _INT64 if negated else -_INT64 <= value < _INT64
    return math.isfinite(value)


_PAST_64_BITS = 1 << 64  # a literal whose digits alone show it is past 64 bits: what `_in_range` refuses


QUOTED_CHARS = 40
"""The most characters of a literal a message quotes whole; a longer one is quoted in part (`_quoted`)."""


def _quoted(text: str) -> str:
    """`text` in backticks, as a message quotes a literal; past `QUOTED_CHARS`, its start and end with its length,
    so a 3 MB number does not make a 3 MB message (in `fluo check`'s output and the editor's)."""
    if len(text) <= QUOTED_CHARS:
        return f"`{text}`"
    return f"`{text[:24]}…{text[-8:]}` ({len(text):,} characters)"


def _number(text: str) -> int | float:
    if re.fullmatch(r"[0-9]+", text):
        digits = text.lstrip("0")
        return int(digits or "0") if len(digits) <= 20 else _PAST_64_BITS  # `int` refuses 4,300 digits
    return float(text)


_META_SCALARS = frozenset({"meta_string", "meta_ident", "meta_number", "meta_duration", "meta_true", "meta_false"})


def _past_limits(depth: int, nodes: int) -> tuple[str, str] | None:
    """The code and message refusing an expression of this shape (its lark tree's), or None within the limits."""
    if depth > MAX_DEPTH:
        return "FLUO400", f"expression nested {depth} levels deep; the limit is {MAX_DEPTH}"
    if nodes > MAX_RULE_NODES:
        return "FLUO401", f"expression has {nodes} nodes; the limit is {MAX_RULE_NODES}"
    return None


def _meta_too_deep(depth: int) -> tuple[str, str]:
    return "FLUO400", f"metadata list nested {depth} levels deep; the limit is {MAX_DEPTH}"


def _meta_nesting(root: Tree[Any] | Token) -> int:
    """How deep lists nest in a metadata value's tree (a list of plain values: 1), without recursion.

    Counts every tree `_Builder.meta_value` would recurse into, so it bounds that recursion.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Tree) and node.data not in _META_SCALARS:
            deepest = max(deepest, depth)
            stack.extend((c, depth + 1) for c in node.children if c is not None)
    return deepest


def _measure(
    root: Tree[Any] | Token, stand_ins: _StandIns | None = None, found: list[int] | None = None
) -> tuple[int, int]:
    """Depth and node count of a tree, without recursion; each of `stand_ins` in it counted as the tree it stands
    for, and its offset added to `found`."""
    max_depth = 0
    nodes = 0
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if stand_ins is not None and isinstance(node, Tree) and (at := stand_ins.of(node)) is not None:
            d, n, _, _ = stand_ins.shapes[at]
            max_depth = max(max_depth, depth + d - 1)
            nodes += n - 1
            if found is not None:
                found.append(at)
            continue
        if stand_ins is not None and isinstance(node, Tree) and (at := stand_ins.prefix(node)) is not None:
            depth += stand_ins.prefixes[at][0]
            nodes += stand_ins.prefixes[at][0]
            if found is not None:
                found.append(at)
        if depth > max_depth:
            max_depth = depth
        if isinstance(node, Tree):
            for c in node.children:
                if isinstance(c, Tree):
                    stack.append((c, depth + 1))
    return max_depth, nodes


# ---------------------------------------------------------------------------
# The fast path: text without a mistake straight to the AST.
#
# Most text `parse` sees has no syntax error and nothing the builder reports. For it,
# a loop over lark's own LALR table, fed by lark's own token regex, builds the AST in
# the reductions: no lark tokens, trees, position propagation or second walk. It gives
# up (`_Bail`) at the first thing it does not handle, and `parse` starts over on the full
# path (`_full_parse`), which recovers and reports. So the full path is the reference: on
# any text the fast path finishes, both give the same AST (tests/test_parser.py compares).
#
# A node's span runs from the first to the last token of what its rule matched, filtered
# tokens (`rule`, `)`, `}`) included, as lark's `propagate_positions` has it; the stack
# keeps each entry's first and last token beside its value. Parentheses widen their
# content's extent without changing its span.

# (kind, text, start, end, line, column, end column, index): 0-based; tokens hold no newline.
_Tok = tuple[str, str, int, int, int, int, int, int]
_Handler = Callable[[list[Any], _Tok, _Tok], Any]


class _Bail(Exception):
    """The fast path met something it leaves to the full path: an error or a diagnostic."""


@dataclass(frozen=True, slots=True)
class _Refused(ast.Missing):
    """An expression past the limits, as the fast path reads it (`_Builder.guarded`'s `Missing`), with the code and
    message of its diagnostic; `_accepted` makes it a plain `Missing` and the diagnostic."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class _RefusedMeta(ast.MetaItem):
    """A metadata value whose lists nest past the limit (`_Builder.meta_guarded`), with its diagnostic's message."""

    message: str


@dataclass(frozen=True)
class _FastTables:
    scanner: re.Pattern[str]
    keywords: dict[str, str]  # IDENT text -> keyword terminal
    ignore: frozenset[str]
    actions: list[dict[str, int]]  # per state: shift to state n (n >= 0) or reduce rule ~n; gotos
    rules: list[tuple[int, str, _Handler | None]]  # size, origin, handler (None: pass the child through)
    shapes: list[tuple[int, str, int, int, int, bool, str]]  # size, origin, and `_shape`'s
    start: int
    end: int


def _sp(first: _Tok, last: _Tok) -> ast.Span:
    return ast.Span(first[2], last[3], first[4], first[5], last[4], last[6])


def _tok_span(tok: _Tok) -> ast.Span:
    return ast.Span(tok[2], tok[3], tok[4], tok[5], tok[4], tok[6])


def _unescape(raw: str) -> tuple[str, list[tuple[int, int, str]]]:
    """A string literal's text between the quotes, decoded; and (offset, length, message) of each bad escape.

    `\\uXXXX` is a UTF-16 code unit, as in JSON: a surrogate pair (`\\uD83D\\uDE00`) is one
    character; half of one alone is no character at all, and an error.
    """
    if "\\" not in raw:
        return raw, []
    out: list[str] = []
    bad: list[tuple[int, int, str]] = []
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
        elif nxt == "u" and _HEX4.fullmatch(raw[i + 2 : i + 6]):
            code = int(raw[i + 2 : i + 6], 16)
            low = raw[i + 8 : i + 12] if raw[i + 6 : i + 8] == "\\u" and _HEX4.fullmatch(raw[i + 8 : i + 12]) else ""
            if 0xD800 <= code <= 0xDBFF and low and 0xDC00 <= int(low, 16) <= 0xDFFF:
                out.append(chr(0x10000 + ((code - 0xD800) << 10) + (int(low, 16) - 0xDC00)))
                i += 12
                continue
            if 0xD800 <= code <= 0xDFFF:
                what = raw[i : i + 6]
                bad.append((i, 6, f"`{what}` is half of a surrogate pair, not a character: write the character"))
                out.append("\ufffd")
            else:
                out.append(chr(code))
            i += 6
        else:
            bad.append((i, 2, f"invalid escape `\\{nxt}` in string (use \\n \\t \\r \\\\ \\' \\\" \\0 or \\uXXXX)"))
            out.append(nxt)
            i += 2
    return "".join(out), bad


_LETTER_ESCAPES = frozenset("ntr0")
"""The escapes a backslash meant as itself also reads as (`\\t` in `C:\\temp`): beside loose ones, no fix."""


def _escapes(raw: str) -> Iterator[tuple[int, str]]:
    """Each escape of a string literal's text: its backslash's index and the character after it."""
    i = raw.find("\\")
    while 0 <= i < len(raw) - 1:
        yield i, raw[i + 1]
        i = raw.find("\\", i + 2)


_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_DURATION_PARTS = re.compile(r"([0-9]+(?:\.[0-9]+)?)(.*)")


def _duration_parts(text: str) -> tuple[str, str] | None:
    m = _DURATION_PARTS.fullmatch(text)
    return None if m is None else (m.group(1), m.group(2))


def _in_unit(ns: int, unit: str) -> str:
    """`ns` written in `unit` where a decimal in it is exact (`0.000000002s`), else `_in_one_unit(ns)`."""
    size = DURATION_UNITS[unit]
    places = len(str(size)) - 1
    if size == 10**places:  # ns, us, ms, s
        return _plain_decimal(f"{ns}e-{places}") + unit
    return f"{ns // size}{unit}" if ns % size == 0 else _in_one_unit(ns)


def _f_string(text: str) -> str:
    if _MISSING in text:
        raise _Bail
    value, bad = _unescape(text[1:-1])
    if bad or _INVISIBLE.search(text):  # FLUO102, FLUO110: the full parse reports them
        raise _Bail
    return value


def _f_duration(text: str) -> int:
    parts = _duration_parts(text)
    if parts is None or parts[1] not in DURATION_UNITS:
        raise _Bail
    ns = number_ns(parts[0], DURATION_UNITS[parts[1]])
    if ns is None or not _in_range(ns):
        raise _Bail
    return ns


def _f_meta_duration(ch: list[Any], first: _Tok, last: _Tok) -> ast.MetaItem:
    _f_duration(ch[0][1])  # one with an error (`1.5ns`) bails to the builder, which reports it
    return ast.MetaItem(_sp(first, last), ch[0][1], "duration")


def _f_number(text: str) -> tuple[int | float, Literal["int", "float"]]:
    value = _number(text)
    if not _in_range(value):
        raise _Bail
    return value, "int" if isinstance(value, int) else "float"


def _lark_shape(root: ast.Expr) -> tuple[int, int]:
    """`_measure` of the lark tree `root` was built from (fast path: no `Missing` in it).

    Each node is one lark tree; a call's or list's arguments are one more, below it.
    """
    max_depth = 0
    nodes = 0
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > max_depth:
            max_depth = depth
        kids: tuple[Any, ...] = ()
        if isinstance(node, tuple):  # the arguments
            kids = node
        elif isinstance(node, ast.Binary):
            kids = (node.left, node.right)
        elif isinstance(node, ast.Logic):
            kids = node.operands
        elif isinstance(node, ast.Unary):
            kids = (node.operand,)
        elif isinstance(node, ast.Field):
            kids = (node.target,)
        elif isinstance(node, ast.Index):
            kids = (node.target, node.key)
        elif isinstance(node, ast.Call):
            kids = (node.target, node.args) if node.args else (node.target,)
        elif isinstance(node, ast.ListLit):
            kids = (node.items,) if node.items else ()
        for k in kids:
            stack.append((k, depth + 1))
    return max_depth, nodes


def _f_guard(expr: ast.Expr, first: _Tok, last: _Tok) -> ast.Expr:
    """`_Builder.guarded`'s limits: a lark tree has at most one node per token, so short ones pass."""
    if last[7] - first[7] < MAX_DEPTH:
        return expr
    past = _past_limits(*_lark_shape(expr))
    return expr if past is None else _Refused(expr.span, *past)


def _f_meta(ch: list[Any], first: _Tok, last: _Tok) -> ast.Meta:
    """`key: value`, with `_Builder.meta_guarded`'s limit on the whole value (so its lists are walked once)."""
    value: ast.MetaItem = ch[2]
    if last[7] - first[7] > MAX_DEPTH and (depth := _nesting(value)) > MAX_DEPTH:
        value = _RefusedMeta(value.span, "", "missing", _meta_too_deep(depth)[1])
    return ast.Meta(_sp(first, last), _meta_key(ch[0][1]), _tok_span(ch[0]), value)


def _f_rule(ch: list[Any], first: _Tok, last: _Tok) -> ast.Rule:
    ident: _Tok = ch[1]
    items: list[Any] = ch[3] if len(ch) == 5 else []
    metas = tuple(i for i in items if type(i) is ast.Meta)
    clauses = tuple(i for i in items if type(i) is ast.Clause)
    windows = tuple(i for i in items if type(i) is ast.WindowClause)
    return ast.Rule(_sp(first, last), ident[1], _tok_span(ident), metas, clauses, windows)


def _f_meta_list(ch: list[Any], first: _Tok, last: _Tok) -> ast.MetaItem:
    items: list[ast.MetaItem] = []
    for c in ch:
        if type(c) is list:
            items.extend(c)
        elif type(c) is ast.MetaItem:
            items.append(c)
    return ast.MetaItem(_sp(first, last), items, "list")


def _nesting(item: ast.MetaItem) -> int:
    """How deep lists nest in a metadata value (a list of plain values: 1); `_meta_nesting` of its tree."""
    deepest = 0
    stack = [(item, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node.value, list):
            deepest = max(deepest, depth)
            stack.extend((i, depth + 1) for i in node.value)
    return deepest


def _f_meta_number(ch: list[Any], first: _Tok, last: _Tok) -> ast.MetaItem:
    value, kind = _f_number(ch[0][1])
    return ast.MetaItem(_sp(first, last), value, kind)


def _f_number_atom(ch: list[Any], first: _Tok, last: _Tok) -> ast.Expr:
    value, kind = _f_number(ch[0][1])
    return ast.Literal(_sp(first, last), value, kind)


def _f_call(ch: list[Any], first: _Tok, last: _Tok) -> ast.Expr:
    name: _Tok = ch[2]
    args = tuple(ch[4]) if len(ch) == 6 else ()
    return ast.Call(_sp(first, last), ch[0], name[1], _tok_span(name), args)


def _f_list_start(ch: list[Any], first: _Tok, last: _Tok) -> list[Any]:
    """The first item of an `x*` or `x+` (lark makes rules of them): it starts a list."""
    return [ch[-1]]


def _f_list_more(ch: list[Any], first: _Tok, last: _Tok) -> list[Any]:
    """A later item: appended to the list so far (the rule's first child)."""
    items: list[Any] = ch[0]
    items.append(ch[-1])
    return items


def _f_args(ch: list[Any], first: _Tok, last: _Tok) -> list[Any]:
    return [ch[0], *ch[1]] if len(ch) > 1 and type(ch[1]) is list else [ch[0]]


def _binary(op: str) -> _Handler:
    return lambda ch, first, last: ast.Binary(_sp(first, last), op, ch[0], ch[-1], _sp(ch[1], ch[-2]))  # type: ignore[arg-type]


def _logic(op: Literal["and", "or"]) -> _Handler:
    """`a or b or c`: the first operand, then the list lark makes of `("or" x)+`."""
    return lambda ch, first, last: ast.Logic(_sp(first, last), op, (ch[0], *ch[1]))


def _meta_key(key: str) -> str:
    """A metadata key as written; "" where the recovery inserted one (its syntax error says what is missing)."""
    return "" if _MISSING in key else key


def _clause(kind: ast.ClauseKind, at: int) -> _Handler:
    return lambda ch, first, last: ast.Clause(_sp(first, last), kind, _f_guard(ch[at], first, last))


# (rule origin, alias) -> handler. Besides these, the binary operators take `_binary` (see
# `_BIN`), the rules lark makes of `x*` and `x+` take `_f_list_start` and `_f_list_more`,
# and rules without a name (`?expr: or_expr`, parentheses) pass their one child through.
_HANDLERS: dict[tuple[str, str | None], _Handler] = {
    ("start", "rules"): lambda ch, first, last: ("rules", ch[0]),
    ("start", "bare_expr"): lambda ch, first, last: ("bare", _f_guard(ch[0], first, last)),
    ("start", "empty"): lambda ch, first, last: ("rules", []),
    ("rule", None): _f_rule,
    ("rule_item", "expect"): _clause("expect", 1),
    ("rule_item", "detect"): _clause("detect", 1),
    ("rule_item", "when"): _clause("when", 2),
    ("rule_item", "always"): _clause("always", 2),
    ("rule_item", "never"): _clause("never", 2),
    ("rule_item", "window_clause"): lambda ch, first, last: ast.WindowClause(_sp(first, last), _f_duration(ch[1][1])),
    ("meta", None): _f_meta,
    ("meta_value", "meta_string"): lambda ch, first, last: ast.MetaItem(
        _sp(first, last), _f_string(ch[0][1]), "string"
    ),
    ("meta_value", "meta_ident"): lambda ch, first, last: ast.MetaItem(_sp(first, last), ch[0][1], "ident"),
    ("meta_value", "meta_number"): _f_meta_number,
    ("meta_value", "meta_duration"): _f_meta_duration,
    ("meta_value", "meta_true"): lambda ch, first, last: ast.MetaItem(_sp(first, last), True, "bool"),
    ("meta_value", "meta_false"): lambda ch, first, last: ast.MetaItem(_sp(first, last), False, "bool"),
    ("meta_value", "meta_list"): _f_meta_list,
    ("or_expr", "or_"): _logic("or"),
    ("and_expr", "and_"): _logic("and"),
    ("not_expr", "not_"): lambda ch, first, last: ast.Unary(_sp(first, last), "not", ch[1]),
    ("unary", "neg"): lambda ch, first, last: ast.Unary(_sp(first, last), "-", ch[1]),
    ("postfix", "field"): lambda ch, first, last: ast.Field(_sp(first, last), ch[0], ch[2][1], _tok_span(ch[2])),
    ("postfix", "call"): _f_call,
    ("postfix", "index"): lambda ch, first, last: ast.Index(_sp(first, last), ch[0], ch[2]),
    ("args", None): _f_args,
    ("atom", "string"): lambda ch, first, last: ast.Literal(_sp(first, last), _f_string(ch[0][1]), "string"),
    ("atom", "number"): _f_number_atom,
    ("atom", "duration"): lambda ch, first, last: ast.Literal(_sp(first, last), _f_duration(ch[0][1]), "duration"),
    ("atom", "true"): lambda ch, first, last: ast.Literal(_sp(first, last), True, "bool"),
    ("atom", "false"): lambda ch, first, last: ast.Literal(_sp(first, last), False, "bool"),
    ("atom", "name"): lambda ch, first, last: ast.Name(_sp(first, last), ch[0][1]),
    ("atom", "window_root"): lambda ch, first, last: ast.Name(_sp(first, last), "window"),
    ("atom", "list"): lambda ch, first, last: ast.ListLit(_sp(first, last), tuple(ch[1]) if len(ch) == 3 else ()),
}


def _pass_through(at: int) -> _Handler:
    return lambda ch, first, last: ch[at]


def _handler(rule: Any) -> _Handler | None:
    """What the fast path does on reducing a lark rule; None: only the state changes (one child kept)."""
    origin: str = rule.origin.name
    kept = [i for i, sym in enumerate(rule.expansion) if not (sym.is_term and sym.filter_out)]
    if origin.startswith("__"):  # `x*`, `x+`: `__r -> x` and `__r -> __r x` (tokens filtered around x)
        if kept == [len(rule.expansion) - 1]:
            return _f_list_start
        if kept == [0, len(rule.expansion) - 1] and rule.expansion[0] == rule.origin:
            return _f_list_more
        raise LookupError(f"unexpected list rule {rule}")
    if (origin, rule.alias) in _HANDLERS:
        return _HANDLERS[origin, rule.alias]
    if rule.alias in _BIN and len(kept) == 2:
        return _binary(_BIN[rule.alias])
    if rule.alias is None and rule.options.expand1 and len(kept) == 1:
        return None if len(rule.expansion) == 1 else _pass_through(kept[0])
    raise LookupError(f"no fast-path handler for {rule}")


# a tree of its own; `x*` or `x+` items, spliced into the tree above; inlined; inlined as it is (its one child)
_TREE, _SPLICED, _PASSED, _RENAMED = 0, 1, 2, 3
# (origin, alias): the child `_Builder` checks against the limits, and how (0: an expression, 1: a metadata value)
_CHECKED: dict[tuple[str, str | None], tuple[int, int]] = {
    **{("rule_item", kind): (1 if kind in ("expect", "detect") else 2, 0) for kind in _CLAUSES},
    ("start", "bare_expr"): (0, 0),
    ("meta", None): (2, 1),
}


def _shape(rule: Any) -> tuple[int, int, int, bool, str]:
    """How lark makes a tree of what `rule` matched (`_shape_refusals`): a tree of its own, items spliced into the
    tree above, or its one child passed on (`_RENAMED`: its only symbol, kept on the stack as it is); which child
    `_Builder` checks against the limits and how (-1: none, then 0 or 1 as in `_CHECKED`); whether it is a
    metadata list; the kind of stand-in its tree may be read as (`_stand_in_ends`), "" if none."""
    kept = [i for i, sym in enumerate(rule.expansion) if not (sym.is_term and sym.filter_out)]
    checked, how = _CHECKED.get((rule.origin.name, rule.alias), (-1, 0))
    if rule.origin.name.startswith("__"):
        kind, child = _SPLICED, -1
    elif rule.alias is None and rule.options.expand1 and len(kept) == 1:
        kind, child = _RENAMED if len(rule.expansion) == 1 and checked < 0 else _PASSED, kept[0]
    else:
        kind, child = _TREE, -1
    stand_in = ""
    if kind == _TREE and rule.origin.name in ("postfix", "atom"):
        stand_in = "postfix"
    elif kind == _TREE and rule.origin.name == "args":
        stand_in = "args"
    elif kind == _SPLICED and len(rule.expansion) >= 2 and rule.expansion[-2].is_term:
        joiner, item = rule.expansion[-2:]
        stand_in = _ITEMS + (terminal_text(joiner.name) or "") if item.name in _ITEM_LEVELS else ""
    elif kind == _TREE and (rule.alias in _BIN or rule.alias in ("neg", "not_", "or_", "and_")):
        stand_in = str(rule.alias)
    return kind, child, checked * 2 + how if checked >= 0 else -1, rule.alias == "meta_list", stand_in


def _shape_refusals(
    text: str, tables: _FastTables, start: int, end: int, line: int, resume: int | None = None
) -> list[_Refusal]:
    """What `_Builder` refuses in `text[start:end]` (a line's start, numbered `line`, to where a rule ends): span,
    code and message; `_Broken` where it does not parse. From `resume`, if given, a clause after a syntax error in the
    rule (`_resumed`): the rule is read from there as if its body started there, and `_Broken` always comes, with
    what the rest holds that may be read as stand-ins. lark's table, as `_fast_drive` runs it, but each value is
    only the shape of the lark tree it stands for (depth, nodes, depth of metadata lists, where it starts and ends,
    where its place on the stack starts and ends, and its kind of stand-in), and a token only an int (its
    start and length, `_TOKEN_BITS`), so that an expression of 4 MiB is measured in a few seconds and megabytes,
    and nothing is built. Its loop is `_fast_drive`'s, written out again (a callback per reduction would slow the
    fast path): change both together."""
    actions = tables.actions
    shapes = tables.shapes
    end_state = tables.end
    states = [tables.start]
    values: list[Any] = []
    out: list[_Refusal] = []
    checked: list[Any] = []  # the shape of each expression refused (None: a metadata value)
    error = end
    tokens: Iterator[tuple[str, int]] = _shape_tokens(text, tables, start, end)
    if resume is not None:  # `rule x {` as three empty tokens where the clause starts
        tokens = chain(
            ((kind, resume << _TOKEN_BITS) for kind in ("RULE", "IDENT", "LBRACE")),
            _shape_tokens(text, tables, resume, end),
        )
    try:
        for kind, tok in tokens:
            while True:
                code = actions[states[-1]].get(kind)
                if code is None or (code >= 0 and kind == "$END"):
                    error = tok >> _TOKEN_BITS
                    raise _Bail
                if code >= 0:
                    states.append(code)
                    values.append(tok)
                    break
                size, origin, shape, child, check, meta_list, stand_in = shapes[~code]
                if shape == _RENAMED:
                    states[-1] = actions[states[-2]][origin]
                else:
                    if size:
                        children = values[-size:]
                        del values[-size:], states[-size:]
                        f, b = children[0], children[-1]
                        first = f[5] if type(f) is tuple else f >> _TOKEN_BITS
                        last = b[6] if type(b) is tuple else (b >> _TOKEN_BITS) + (b & _TOKEN_LENGTH)
                    else:
                        children, first, last = [], None, None
                    if check >= 0:
                        d, n, nested, at, to = children[check >> 1][:5]
                        if check & 1:
                            past = _meta_too_deep(nested) if nested > MAX_DEPTH else None
                        else:
                            past = _past_limits(d, n)
                        if past is not None:
                            out.append((_offsets_span(text, start, line, at, to), *past))
                            checked.append(None if check & 1 else children[check >> 1])
                    if shape == _PASSED:
                        c = children[child]
                        if type(c) is not tuple:  # a token: only where it stands on the stack is kept
                            value = (0, 0, 0, None, None, first, last, "")
                        else:
                            value = c if c[5] == first and c[6] == last else (*c[:5], first, last, c[7])
                    else:
                        d = n = nested = 0
                        for c in children:
                            if type(c) is tuple:
                                if c[0] > d:
                                    d = c[0]
                                n += c[1]
                                if c[2] > nested:
                                    nested = c[2]
                        if shape == _TREE:
                            value = (d + 1, n + 1, nested + 1 if meta_list else 0, first, last, first, last, stand_in)
                        elif stand_in:  # items of an expression list (`, x`, `or x`), spliced into its tree
                            value = (d, n, nested, first, last, first, last, stand_in)
                        else:
                            value = (d, n, nested, None, None, first, last, "")
                    values.append(value)
                    states.append(actions[states[-1]][origin])
                if states[-1] == end_state:
                    if resume is None:
                        return out
                    raise _Broken([p for c in checked if c and (p := _tree_part(text, start, line, c))], None)
    except _Bail:
        if values and error == end:  # the lexer failed: past the last token read
            top = values[-1]
            error = top[6] if type(top) is tuple else (top >> _TOKEN_BITS) + (top & _TOKEN_LENGTH)
        trees = [c for c in checked if c is not None] + [v for v in values if type(v) is tuple]
        parts = [p for c in trees if (p := _tree_part(text, start, line, c)) is not None]
        parts += _run_parts(text, tables, start, line, states, values, error)
        if resume is not None:  # only what `_Builder` can be seen to measure (`_StandIns.strict`): not spaces
            parts = [p for p in parts if p[3]]
        raise _Broken(parts, error) from None
    raise _Broken([], None)


def _resumed(text: str, tables: _FastTables, start: int, end: int, line: int, error: int | None) -> list[_Part]:
    """What may be read as stand-ins after a syntax error at `error` in the rule `text[start:end]`: each clause
    after it (`expect`, `detect`, `when`, ...) read by `_shape_refusals` as if the rule's body started there, to
    its own syntax error, then the next clause after that. lark's recovery may leave its parser elsewhere, so each
    must be found measured where it stands (`_StandIns.strict`), or lark reads the text itself."""
    parts: list[_Part] = []
    at = start
    while error is not None and (clause := _next_clause(text, tables, max(error, at + 1), end)) is not None:
        at = clause
        try:
            _shape_refusals(text, tables, start, end, line, at)
        except _Broken as broken:
            parts += broken.parts
            error = broken.error
    return parts


def _next_clause(text: str, tables: _FastTables, pos: int, end: int) -> int | None:
    """Where the first clause keyword from `pos` (a token's start) to `end` starts: tokens read as lark's lexer
    reads them, and text that starts none skipped a character at a time (a quote to its line's end, as `lex`)."""
    scanner, keywords = tables.scanner, tables.keywords
    while pos < end:
        m = scanner.match(text, pos, end)
        if m is None or m.end() == pos:
            eol = _LINE_END.search(text, pos, end) if text[pos] in "\"'" else None
            pos = pos + 1 if text[pos] not in "\"'" else end if eol is None else eol.start()
            continue
        if m.lastgroup == "IDENT" and keywords.get(m.group()) in _CLAUSE_KEYWORDS:
            return pos
        pos = m.end()
    return None


_TOKEN_BITS = 23
"""A token on `_shape_refusals`'s stack is one int: its start shifted left by this, or'ed with its length (a file
is at most 4 MiB, so a token is shorter than 2**23). A stack of 4 million `(` holds some 200 MB so."""
_TOKEN_LENGTH = (1 << _TOKEN_BITS) - 1
_KEPT_OPENERS = 3 * (MAX_RECOVERIES + 2) + 3
"""Of a run of `(` and `[` before a syntax error, more than the recovery may close (it inserts at most 3 tokens at
each error it meets, `MAX_RECOVERIES` and the end of the file) however many `)` and `]` follow: the rest is read
as spaces (`_broken_parts`)."""


class _Broken(_Bail):
    """`_shape_refusals` met a syntax error (at `error`; None: read from a clause after one, to the end): what
    before it `parse` may read as stand-ins."""

    def __init__(self, parts: list[_Part], error: int | None) -> None:
        super().__init__()
        self.parts = parts
        self.error = error


def _shape_tokens(text: str, tables: _FastTables, start: int, end: int) -> Iterator[tuple[str, int]]:
    """`_fast_tokens` for `_shape_refusals`: each token's kind and its start and length in one int, then `$END`."""
    ignore = tables.ignore
    keywords = tables.keywords
    pos = start
    for m in tables.scanner.finditer(text, start, end):
        at = m.start()
        if at != pos:
            raise _Bail
        kind = m.lastgroup
        pos = m.end()
        if kind in ignore:
            continue
        if kind == "IDENT":
            kind = keywords.get(m.group(), kind)
        elif kind is None:
            raise _Bail
        yield kind, at << _TOKEN_BITS | (pos - at)
    if pos != end:
        raise _Bail
    yield "$END", end << _TOKEN_BITS


def _tree_part(text: str, start: int, line: int, shape: Any) -> _Part | None:
    """The stand-in for a tree `_shape_refusals` measured in a rule with a syntax error (whole, so lark's parser
    reduces its stand-in as it reduced the tree), if it is past the limits and its kind has one that fits its
    text: no line break under the stand-in's own tokens, and no name's character either side to join them."""
    depth, nodes, _, at, to, _, _, kind = shape
    if not kind or (depth <= MAX_DEPTH and nodes <= MAX_RULE_NODES):
        return None
    head, tail = _stand_in_ends(kind)
    if to - at < len(head) + len(tail) + 1 or "\n" in text[at : at + len(head)] or "\n" in text[to - len(tail) : to]:
        return None
    if (at > start and name_char(text[at - 1]) and name_char(head[0])) or (to < len(text) and name_char(text[to])):
        return None
    spaced = _SPACED_UNIT.search(text, max(at, to - 4), to + _NEAR)
    if spaced is not None and spaced.start() < to and _spaced_durations(text[spaced.start() : spaced.end()]):
        return None  # `... > 5 s`: read as `5s` before lark reads the text
    return _offsets_span(text, start, line, at, to), depth, nodes, kind


_STAND_IN_TREES = {"postfix": "field"}  # the tree a stand-in makes, where its kind is not its name
_ITEMS = "*"
"""The kind of a `_Part` that is the items after the first of a list, call's arguments, `or` or `and` not yet made
a tree at a syntax error (`, 1, 1`, `or a or b`), then the text that joins them: its stand-in is the smallest such
run (`,    x`), and `_Builder` counts the items stood for on its `x` (a name among the tree's children, as each
item is)."""
_ITEM_LEVELS = frozenset({"expr", "and_expr", "not_expr"})


def _stand_in_ends(kind: str) -> tuple[str, str]:
    """The text a stand-in of `kind` starts and ends with, spaces between: the smallest tree of that kind (a field
    for any `postfix` tree: a field, call, index or list, which the recovery tells apart from none; of arguments
    `x    ,x`; of items not yet a tree (`_ITEMS`), the joiner then `x`)."""
    if kind == "postfix":
        return "x", ".x"
    if kind.startswith(_ITEMS):
        return kind.removeprefix(_ITEMS), "x"
    if kind == "args":
        return "x", ",x"
    if kind == "neg":
        return "-", "x"
    if kind == "not_":
        return "not ", "x"
    operator = {"or_": "or", "and_": "and"}.get(kind) or _BIN[kind]
    return "x ", f" {operator} x"


_MINUS_RUN = "-"  # the kind of a `_Part` that is a run of unary `-`
_NOT_RUN = "not"  # the kind of a `_Part` that is a run of `not`
_PREFIX_RUNS = {_MINUS_RUN: ("MINUS", "neg"), _NOT_RUN: ("NOT", "not_")}  # its terminal, the tree it makes
_KEPT_MINUS = 64  # of a run of unary `-` or of `not` before a syntax error, kept as written (`_run_parts`)


def _run_parts(
    text: str, tables: _FastTables, start: int, line: int, states: list[int], values: list[Any], error: int
) -> list[_Part]:
    """Of each run of `(`, `[`, unary `-` and `not` on `_shape_refusals`'s stack at a syntax error at `error`, the
    parts read as spaces, where the state after the rest is the one it had (checked on the table):

    - all before the last `_KEPT_OPENERS` openers (`(`, `[`) and as many more as closers follow the error, `-` and
      `not` among them (`-(-(-(`): no reduction reaches that part, since what comes after it is never closed
      (kind "");
    - of a run of unary `-` (or of `not`) left, deeper than `MAX_DEPTH`, all but the last `_KEPT_MINUS`: it is
      reduced, if ever, with the `-` kept, all on one token, into a tree that is refused, so `_Builder` counts it
      on the outermost `-` kept (kind `_MINUS_RUN` or `_NOT_RUN`, with its length; the span runs to there).
    """
    parts: list[_Part] = []
    closers = -1
    i = 0
    while i < len(values):
        if not _run_token(text, values[i]):
            i += 1
            continue
        j = i  # the run is values[i : j + 1]
        while j + 1 < len(values) and _run_token(text, values[j + 1]):
            j += 1
        rest = i
        if any(_run_token(text, values[k]) in _OPENERS for k in range(i, j + 1)):
            if closers < 0:
                closers = text.count(")", error) + text.count("]", error)
            need, k = _KEPT_OPENERS + closers, j + 1
            while need > 0 and k > i:  # the first opener kept
                k -= 1
                need -= _run_token(text, values[k]) in _OPENERS
            if need <= 0 and k > i and (part := _run_part(text, tables, start, line, states, values, i, k, "")):
                parts.append(part)
                rest = k
        while rest <= j:  # runs of one prefix left
            ch, end = _run_token(text, values[rest]), rest
            while end < j and _run_token(text, values[end + 1]) == ch:
                end += 1
            cut = end + 1 - _KEPT_MINUS
            part = None
            if ch in _PREFIX_RUNS and cut > rest and end - rest >= MAX_DEPTH:  # if reduced, surely refused
                part = _run_part(text, tables, start, line, states, values, rest, cut, ch)
            if part is not None:
                parts.append(part)
            rest = end + 1
        i = j + 1
    return parts


_OPENERS = ("(", "[")


def _run_part(
    text: str, tables: _FastTables, start: int, line: int, states: list[int], values: list[Any], run: int, cut: int,
    ch: str,
) -> _Part | None:  # fmt: skip
    """`values[run:cut]` (or from one further: an opener's state is its own, but a call's `(` is not) as a `_Part`
    of kind `ch` (a prefix) or "" (a run with openers), if the state after `values[cut]` is the same without it."""
    kind = {"(": "LPAR", "[": "LSQB"}.get(_run_token(text, values[cut])) or _PREFIX_RUNS[ch][0]
    for first in (run, run + 1):
        if first < cut and tables.actions[states[first]].get(kind) == states[cut + 1]:
            last = values[cut - 1]
            end = (values[cut] >> _TOKEN_BITS) if ch else (last >> _TOKEN_BITS) + (last & _TOKEN_LENGTH)
            span = _offsets_span(text, start, line, values[first] >> _TOKEN_BITS, end)
            return (span, cut - first, cut - first, ch) if ch else (span, 0, 0, "")
    return None


def _run_token(text: str, value: Any) -> str:
    """What `value`, on `_shape_refusals`'s stack, is of a run `_run_parts` reads: `(`, `[`, `-` or `not`; or ""."""
    if type(value) is not int:
        return ""
    at, length = value >> _TOKEN_BITS, value & _TOKEN_LENGTH
    if length == 1:
        return text[at] if text[at] in "([-" else ""
    return _NOT_RUN if length == 3 and text.startswith(_NOT_RUN, at) else ""


def _offsets_span(text: str, base: int, line: int, start: int, end: int) -> ast.Span:
    """`_LineIndex(text).span(start, end)`, for offsets past `base`, a line's start numbered `line`."""

    def pos(at: int) -> tuple[int, int]:
        return line + text.count("\n", base, at), at - (text.rfind("\n", base, at) + 1 or base)

    (start_line, start_col), (end_line, end_col) = pos(start), pos(end)
    return ast.Span(start, end, start_line, start_col, end_line, end_col)


@cache
def _fast_tables() -> _FastTables | None:
    """The fast path's lexer and parser, from lark's; None (full path only) if they are not as expected."""
    try:
        lark = _lark()
        lexer: Any = lark.parser.lexer
        scanners = lexer.scanner._mres
        table: Any = lark.parser.parser.parser.parse_table
        unless = lexer.callback
        if len(scanners) != 1 or set(unless) != {"IDENT"}:
            return None
        keyword_terms = unless["IDENT"].scanner.terminals
        if any(t.pattern.type != "str" or t.pattern.flags for t in keyword_terms):
            return None
        rule_index: dict[Any, int] = {}
        rules: list[tuple[int, str, _Handler | None]] = []
        shapes: list[tuple[int, str, int, int, int, bool, str]] = []
        for rule in lark.rules:
            rule_index[rule] = len(rules)
            rules.append((len(rule.expansion), str(rule.origin.name), _handler(rule)))
            shapes.append((len(rule.expansion), str(rule.origin.name), *_shape(rule)))
        actions: list[dict[str, int]] = [{} for _ in range(max(table.states) + 1)]
        for state, row in table.states.items():
            for name, (action, arg) in row.items():
                actions[state][str(name)] = ~rule_index[arg] if action.name == "Reduce" else arg
        return _FastTables(
            scanner=scanners[0],
            keywords={str(t.pattern.value): str(t.name) for t in keyword_terms},
            ignore=frozenset(lexer.ignore_types),
            actions=actions,
            rules=rules,
            shapes=shapes,
            start=table.start_states["start"],
            end=table.end_states["start"],
        )
    except (AttributeError, KeyError, LookupError, TypeError):
        return None


def _fast_tokens(
    text: str, tables: _FastTables, start: int = 0, end: int | None = None, line: int = 0
) -> Iterator[_Tok]:
    """The tokens lark's lexer makes of `text[start:end]` (keywords resolved, ignored ones dropped), then `$END`;
    `_Bail` where it fails. `start` is a line's start, `line` its number. A stream, so that the tokens of a long
    expression are not all held at once (~250 bytes each)."""
    end = len(text) if end is None else end
    ignore = tables.ignore
    keywords = tables.keywords
    pos = line_start = start
    count = 0
    for m in tables.scanner.finditer(text, start, end):
        at = m.start()
        if at != pos:
            raise _Bail
        kind = m.lastgroup
        value = m.group()
        pos = m.end()
        if kind in ignore:
            newlines = value.count("\n")
            if newlines:
                line += newlines
                line_start = at + value.rindex("\n") + 1
            continue
        if kind == "IDENT":
            kind = keywords.get(value, kind)
        elif kind is None or "\n" in value:
            raise _Bail
        yield (kind, value, at, pos, line, at - line_start, pos - line_start, count)
        count += 1
    if pos != end:
        raise _Bail
    yield ("$END", "", end, end, line, end - line_start, end - line_start, count)


def _fast_drive(tokens: Iterator[_Tok], tables: _FastTables) -> Any:
    """Run lark's LALR table over `tokens`; the value of the start rule, or `_Bail`. `_shape_refusals` runs the
    same loop over shapes: change both together."""
    actions = tables.actions
    rules = tables.rules
    end = tables.end
    states = [tables.start]
    values: list[Any] = []
    firsts: list[Any] = []
    lasts: list[Any] = []
    for tok in tokens:
        kind = tok[0]
        while True:
            code = actions[states[-1]].get(kind)
            if code is None:
                raise _Bail
            if code >= 0:
                if kind == "$END":
                    raise _Bail
                states.append(code)
                values.append(tok)
                firsts.append(tok)
                lasts.append(tok)
                break
            size, origin, handler = rules[~code]
            if handler is None:
                states[-1] = actions[states[-2]][origin]
            else:
                if size:
                    children = values[-size:]
                    first = firsts[-size]
                    last = lasts[-1]
                    del values[-size:], firsts[-size:], lasts[-size:], states[-size:]
                else:
                    children = []
                    first = last = None
                values.append(handler(children, first, last))
                firsts.append(first)
                lasts.append(last)
                states.append(actions[states[-1]][origin])
            if states[-1] == end:
                return values[-1]
    raise _Bail


def _fast_parse(text: str, path: str) -> tuple[list[ast.Rule], list[Diagnostic]] | None:
    """The rules of `text` if it parses without a diagnostic but those of the size limits (FLUO400, FLUO401),
    and those; None sends it to the full path."""
    tables = _fast_tables()
    if tables is None:
        return None
    try:
        kind, value = _fast_drive(_fast_tokens(text, tables), tables)
    except _Bail:
        return None
    if kind == "rules":
        return _accepted(value, path)
    expr, diags = _accepted_expr(value, path)
    span = value.span
    clause = ast.Clause(span, "expect", expr)
    return [ast.Rule(span, _bare_rule_id(path), span, (), (clause,), (), bare=True)], diags


def _accepted_expr(expr: ast.Expr, path: str) -> tuple[ast.Expr, list[Diagnostic]]:
    if type(expr) is not _Refused:
        return expr, []
    return ast.Missing(expr.span), [error(expr.code, expr.message, expr.span, path=path)]


def _accepted(rules: list[ast.Rule], path: str) -> tuple[list[ast.Rule], list[Diagnostic]]:
    """The fast path's rules with what it refused (`_Refused`, `_RefusedMeta`) made `Missing`, and its diagnostics,
    in the order `_Builder` reports them."""
    diags: list[Diagnostic] = []
    out = []
    for rule in rules:
        refused = any(type(m.value) is _RefusedMeta for m in rule.meta)
        refused = refused or any(type(c.expr) is _Refused for c in rule.clauses)
        if not refused:
            out.append(rule)
            continue
        meta = []
        for m in rule.meta:
            if isinstance(m.value, _RefusedMeta):
                diags.append(error("FLUO400", m.value.message, m.value.span, path=path))
                m = replace(m, value=ast.MetaItem(m.value.span, "", "missing"))
            meta.append(m)
        clauses = []
        for c in rule.clauses:
            expr, refusals = _accepted_expr(c.expr, path)
            diags += refusals
            clauses.append(replace(c, expr=expr) if refusals else c)
        out.append(replace(rule, meta=tuple(meta), clauses=tuple(clauses)))
    return out, sorted(diags, key=sort_key)  # a rule's items in their order, as `_Builder` reads them
