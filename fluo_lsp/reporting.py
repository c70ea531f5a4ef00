"""Core diagnostics and test-file problems as LSP diagnostics."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp

from fluo_lang.ast import Span
from fluo_lang.diagnostics import Diagnostic, Severity, strictly

from .document import RuleDocument, path_uri, read_rule_text
from .positions import LineIndex, span_range
from .workspace import TestProblem

SOURCE = "fluo"
_SEVERITY = {
    Severity.ERROR: lsp.DiagnosticSeverity.Error,
    Severity.WARNING: lsp.DiagnosticSeverity.Warning,
    Severity.INFO: lsp.DiagnosticSeverity.Information,
}


def lsp_diagnostic(d: Diagnostic, base: int, doc: RuleDocument, uri: str, *, strict: bool) -> lsp.Diagnostic:
    """One diagnostic of `doc` (its spans counting from `base`); `strict` reports warnings as errors, as
    `fluo check --strict` does (`strictly`)."""
    severity = _SEVERITY[(strictly(d) if strict else d).severity]
    related = []
    for r in d.related:
        if r.path in (None, d.path, doc.path):
            where = lsp.Location(uri=uri, range=span_range(doc.index, r.span, base))
        else:
            where = lsp.Location(uri=path_uri(Path(r.path)), range=_range_in_file(Path(r.path), r.span))
        related.append(lsp.DiagnosticRelatedInformation(location=where, message=r.message))
    return lsp.Diagnostic(
        range=span_range(doc.index, d.span, base),
        message=d.message,
        severity=severity,
        code=d.code,
        source=SOURCE,
        related_information=related or None,
        data={"suggestion": d.suggestion} if d.suggestion is not None else None,
    )


def document_diagnostics(doc: RuleDocument, uri: str, *, strict: bool) -> list[lsp.Diagnostic]:
    return [lsp_diagnostic(d, base, doc, uri, strict=strict) for d, base in doc.diagnostics()]


def test_diagnostics(problems: list[TestProblem], text: str) -> list[lsp.Diagnostic]:
    index = LineIndex(text)
    return [
        lsp.Diagnostic(
            range=index.range(p.start, p.end),
            message=p.message,
            severity=lsp.DiagnosticSeverity.Error,
            code=p.code,
            source=f"{SOURCE} test",
        )
        for p in problems
    ]


def _range_in_file(path: Path, span: Span) -> lsp.Range:
    """A span of another file as an LSP range: its columns counted in UTF-16, as LSP counts them."""
    text = read_rule_text(path)
    if text is None:  # gone since: the checker's own line and column are the best there is
        return lsp.Range(
            start=lsp.Position(line=span.line, character=span.col),
            end=lsp.Position(line=span.end_line, character=span.end_col),
        )
    return LineIndex(text).range(span.start, span.end)
