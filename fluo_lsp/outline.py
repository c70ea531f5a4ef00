"""The shape of a rule file for the editor: document symbols, folding ranges and semantic tokens."""

from __future__ import annotations

import re

from lsprotocol import types as lsp

from fluo_lang import api, ast
from fluo_lang.builtins import OPERATOR_BY_SYMBOL
from fluo_lang.parser import Lexeme, keywords, name_char
from fluo_lang.typecheck import AttrRef, CheckedRule, EnumRef, ItRef, MemberRef, RootRef
from fluo_lang.values import format_duration

from .document import ChunkAnalysis, RuleDocument
from .positions import LineIndex, span_range
from .syntax import expressions

# ---------------------------------------------------------------------------
# Symbols


def symbols(doc: RuleDocument) -> list[lsp.DocumentSymbol]:
    """One symbol per rule: its id, with its kind (expect / detect / when, windowed) and severity, after
    "disabled" for a rule with `enabled: false`."""
    checked = {id(c.rule): c for c, _ in doc.checked_rules()}
    out = []
    for rule, base in doc.rules():
        if not rule.id:
            continue
        c = checked.get(id(rule))
        detail = f"{'' if c.enabled else 'disabled · '}{c.mode} · {c.severity}" if c is not None else "not checked"
        if c is not None and c.window_ns is not None:
            detail += f" · window {format_duration(c.window_ns)}"
        children = [
            lsp.DocumentSymbol(
                name=clause.kind,
                kind=lsp.SymbolKind.Event,
                range=span_range(doc.index, clause.span, base),
                selection_range=span_range(doc.index, clause.span, base),
            )
            for clause in rule.clauses
        ]
        out.append(
            lsp.DocumentSymbol(
                name=rule.id,
                detail=detail,
                kind=lsp.SymbolKind.Function,
                range=span_range(doc.index, rule.span, base),
                selection_range=span_range(doc.index, rule.id_span, base),
                children=children,
            )
        )
    return out


# ---------------------------------------------------------------------------
# Folding


def folding_ranges(doc: RuleDocument) -> list[lsp.FoldingRange]:
    """Every rule and clause that spans lines, and every run of two or more comment lines."""
    out: list[lsp.FoldingRange] = []
    for rule, base in doc.rules():
        spans = [rule.span, *(c.span for c in rule.clauses)]
        for span in spans:
            first, last = doc.index.line_of(base + span.start), doc.index.line_of(base + span.end)
            if last > first:
                out.append(lsp.FoldingRange(start_line=first, end_line=last, kind=lsp.FoldingRangeKind.Region))
    run: list[int] = []
    for chunk in doc.chunks:
        for x in chunk.analysis.lexemes:
            if x.kind != "COMMENT":
                continue
            line = doc.index.line_of(chunk.start + x.start)
            if run and line != run[-1] + 1:
                _close_comment_run(run, out)
                run = []
            run.append(line)
    _close_comment_run(run, out)
    return out


def _close_comment_run(run: list[int], out: list[lsp.FoldingRange]) -> None:
    if len(run) >= 2:
        out.append(lsp.FoldingRange(start_line=run[0], end_line=run[-1], kind=lsp.FoldingRangeKind.Comment))


# ---------------------------------------------------------------------------
# Semantic tokens

TOKEN_TYPES = (
    "keyword", "comment", "string", "number", "operator", "function", "property", "method", "variable",
    "enumMember", "parameter",
)  # fmt: skip
TOKEN_MODIFIERS = ("declaration", "defaultLibrary")
LEGEND = lsp.SemanticTokensLegend(token_types=list(TOKEN_TYPES), token_modifiers=list(TOKEN_MODIFIERS))
_TYPE = {name: i for i, name in enumerate(TOKEN_TYPES)}
_DECLARATION, _LIBRARY = 1, 2


def _classify(rule: ast.Rule, checked: CheckedRule | None) -> dict[int, tuple[str, int]]:
    """Token type and modifiers of the names in a rule, by their start offset."""
    out: dict[int, tuple[str, int]] = {rule.id_span.start: ("function", _DECLARATION)} if rule.id else {}
    for m in rule.meta:
        out[m.key_span.start] = ("property", 0)
        if m.value.kind == "ident":
            out[m.value.span.start] = ("enumMember", 0)
    if checked is None:
        return out
    for e, _ in expressions(rule):
        ref = checked.refs.get(id(e))
        if isinstance(e, ast.Call):
            out[e.method_span.start] = ("method", _LIBRARY)
        elif isinstance(e, ast.Field):
            kind = ("property", _LIBRARY) if isinstance(ref, MemberRef) else ("variable", 0)
            out[e.name_span.start] = kind
        elif isinstance(e, ast.Name):
            if isinstance(ref, RootRef):
                out[e.span.start] = ("variable", _LIBRARY)
            elif isinstance(ref, ItRef):
                out[e.span.start] = ("parameter", _LIBRARY)
            elif isinstance(ref, MemberRef):
                out[e.span.start] = ("property", _LIBRARY)
            elif isinstance(ref, EnumRef):
                out[e.span.start] = ("enumMember", 0)
            elif isinstance(ref, AttrRef):
                out[e.span.start] = ("variable", 0)
    return out


def semantic_tokens(doc: RuleDocument) -> list[int]:
    """The LSP's relative encoding: (line delta, start delta, length, type, modifiers) per token.

    Each chunk's tokens are worked out once, relative to its first line, and kept
    with its cached analysis: after an edit only the edited rule's are new.
    """
    data: list[int] = []
    prev_line = prev_col = 0
    for chunk in doc.chunks:
        first = doc.index.line_of(chunk.start)  # a chunk starts a line: its columns are the document's
        for rel_line, col, length, kind, modifiers in _chunk_tokens(chunk.analysis):
            line = first + rel_line
            col += doc.index.lead if line == 0 else 0
            data += [line - prev_line, col - prev_col if line == prev_line else col, length, kind, modifiers]
            prev_line, prev_col = line, col
    return data


def _chunk_tokens(analysis: ChunkAnalysis) -> list[tuple[int, int, int, int, int]]:
    """(line within the chunk, UTF-16 column, length, type, modifiers) of each token of a chunk."""
    if analysis.tokens is not None:
        return analysis.tokens
    words = keywords()
    names: dict[int, tuple[str, int]] = {}
    checked = {id(c.rule): c for c in analysis.checked}
    for rule in analysis.rules:
        names.update(_classify(rule, checked.get(id(rule))))
    joined = _names_joined(analysis.lexemes)
    names.update(_ascii_spellings(analysis, joined, names))
    found: list[tuple[Lexeme, tuple[str, int]]] = []
    for x in joined:
        if x.kind == "IDENT":
            kind = names.get(x.start, ("variable", 0))
        elif x.start in names:  # `window` in `window.spans` is the root, like `trace`; in `window 1m` a keyword
            kind = names[x.start]
        elif x.kind == "COMMENT":
            kind = ("comment", 0)
        elif x.kind == "STRING":
            kind = ("string", 0)
        elif x.kind in ("NUMBER", "DURATION"):
            kind = ("number", 0)
        elif x.text in words:
            kind = ("keyword", 0)
        elif x.text in OPERATOR_BY_SYMBOL:
            kind = ("operator", 0)
        else:
            continue
        found.append((x, kind))
    positions = LineIndex(analysis.text).positions(offset for x, _ in found for offset in (x.start, x.end))
    out: list[tuple[int, int, int, int, int]] = []
    for _, kind in found:
        (line, start), (end_line, end) = next(positions), next(positions)
        if end_line == line:
            out.append((line, start, end - start, _TYPE[kind[0]], kind[1]))
    analysis.tokens = out
    return out


def _ascii_spellings(
    analysis: ChunkAnalysis, words: list[Lexeme], names: dict[int, tuple[str, int]]
) -> dict[int, tuple[str, int]]:
    """Token types of the words past ASCII the parser fixes as FLUO's own names (a full-width `name`, `tráce` as
    `trace`), as their ASCII spelling gets them: the chunk checked again with each such fix made, where it keeps
    every offset (a fix of the same length)."""
    fixes = [d for d in analysis.diagnostics if d.suggestion and len(d.suggestion) == d.span.end - d.span.start]
    text = analysis.text
    for x in words:
        if x.kind != "IDENT" or x.start in names or x.text.isascii():
            continue
        fix = next((d for d in fixes if d.span.start <= x.start and x.end <= d.span.end), None)
        if fix is not None and fix.suggestion is not None and _NAME_PATH.fullmatch(fix.suggestion):
            text = text[: fix.span.start] + fix.suggestion + text[fix.span.end :]
    if text == analysis.text:
        return {}
    spelled = api.analyze([("spelled.fluo", text)])
    checked = {id(c.rule): c for c in spelled.rules}
    out: dict[int, tuple[str, int]] = {}
    for f in spelled.files:
        for rule in f.rules:
            out.update(_classify(rule, checked.get(id(rule))))
    return out


_NAME_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def _names_joined(lexemes: list[Lexeme]) -> list[Lexeme]:
    """The lexemes, with a name the lexer splits at each character past ASCII (`usu` `á` `rio`; a full-width
    letter alone) as one `IDENT`, as the parser reads it (one name, or one error with its fix): a semantic
    token never splits a word."""
    if all(x.text.isascii() for x in lexemes):  # nothing to join (most files): a tenth of the loop below
        return lexemes
    out: list[Lexeme] = []
    run: list[Lexeme] = []  # adjacent lexemes made of what a name is made of

    def flush() -> None:
        if not all(x.text.isascii() for x in run):  # `ñ` alone too: one letter is a name
            out.append(Lexeme("IDENT", "".join(x.text for x in run), run[0].start, run[-1].end))
        else:
            out.extend(run)
        run.clear()

    for x in lexemes:
        if run and run[-1].end != x.start:
            flush()
        if x.text and all(name_char(c) for c in x.text):
            run.append(x)
        else:
            flush()
            out.append(x)
    flush()
    return out
