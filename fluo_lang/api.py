"""The calls every shell uses: `analyze` rule text, `compile_program` what checked.

The language server, the test runner, the runtime and the CLI all go through
these two functions, so they see the same diagnostics and run the same IR.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import ast
from .compile import lower_rule, optimise
from .cost import DEFAULT_COST_LIMIT, DEFAULT_TRACE_SPANS, check_cost
from .diagnostics import Diagnostic, error, sort_key
from .evaluate import Program
from .ir import RuleIR
from .parser import parse, parse_expression
from .typecheck import CheckedRule, check_files

RULE_SUFFIX = ".fluo"


@dataclass
class Analysis:
    files: list[ast.RuleFile] = field(default_factory=list)
    rules: list[CheckedRule] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    def text_of(self, path: str) -> str:
        return next((f.text for f in self.files if f.path == path), "")


class RuleSourceError(Exception):
    """A rule path that cannot be read; its message is one line for the user."""


def analyze(sources: Iterable[tuple[str, str]]) -> Analysis:
    """Parse and check (path, text) pairs together, so rule ids are unique across them."""
    files: list[ast.RuleFile] = []
    diags: list[Diagnostic] = []
    for path, text in sources:
        result = parse(text, path)
        files.append(result.file)
        diags.extend(result.diagnostics)
    return _check(files, diags)


def analyze_expression(text: str, mode: str = "expect", rule_id: str = "cli") -> Analysis:
    """One expression from the command line, as an `expect` or `detect` rule."""
    result = parse_expression(text, f"<{mode}>")
    rules = [
        ast.Rule(r.span, rule_id, r.id_span, r.meta, (ast.Clause(c.span, mode, c.expr),), r.windows, True)  # type: ignore[arg-type]
        for r in result.file.rules
        for c in r.clauses[:1]
    ]
    if not rules and not result.diagnostics:
        result.diagnostics.append(error("FLUO104", "empty expression", ast.NO_SPAN, path=f"<{mode}>"))
    file = ast.RuleFile(result.file.path, text, tuple(rules))
    return _check([file], list(result.diagnostics))


def _check(files: list[ast.RuleFile], diags: list[Diagnostic]) -> Analysis:
    checked, check_diags = check_files(files)
    diags.extend(_without_cascades(files, diags, check_diags))
    diags.sort(key=sort_key)
    return Analysis(files, checked, diags)


def _without_cascades(
    files: list[ast.RuleFile], syntax: list[Diagnostic], checks: list[Diagnostic]
) -> list[Diagnostic]:
    """Drop type errors inside a clause that already has a syntax error: the parser's
    recovery guessed there, and what the checker says of the guess is noise."""
    broken: dict[str | None, list[ast.Span]] = {}
    for f in files:
        bad = [d.span.start for d in syntax if d.path == f.path and d.is_error]
        if not bad:
            continue
        for rule in f.rules:
            for clause in rule.clauses:
                if any(clause.span.start <= pos <= clause.span.end for pos in bad):
                    broken.setdefault(f.path, []).append(clause.span)
    if not broken:
        return checks
    return [d for d in checks if not any(sp.start <= d.span.start <= sp.end for sp in broken.get(d.path, []))]


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """The `.fluo` files named, with folders searched recursively, in a stable order."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(x for x in path.rglob(f"*{RULE_SUFFIX}") if x.is_file())
            if not found:
                raise RuleSourceError(f"{p}: no {RULE_SUFFIX} files in this folder")
            out.extend(found)
        elif path.exists():
            out.append(path)
        else:
            raise RuleSourceError(f"{p}: no such file or folder")
    return out


def read_sources(paths: Iterable[str | Path]) -> list[tuple[str, str]]:
    sources = []
    for f in rule_files(paths):
        try:
            sources.append((str(f), f.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise RuleSourceError(f"cannot read {f}: {reason}") from exc
    return sources


def analyze_paths(paths: Iterable[str | Path]) -> Analysis:
    return analyze(read_sources(paths))


def lower(analysis: Analysis, *, optimised: bool = True) -> list[RuleIR]:
    """IR for every rule that checked without errors and is enabled."""
    out = []
    for rule in analysis.rules:
        if not rule.ok or not rule.enabled:
            continue
        ir = lower_rule(rule, analysis.text_of(rule.path))
        out.append(optimise(ir) if optimised else ir)
    return out


def compile_program(analysis: Analysis) -> Program:
    return Program(lower(analysis))


def cost_diagnostics(
    analysis: Analysis,
    limit: int = DEFAULT_COST_LIMIT,
    trace_spans: int = DEFAULT_TRACE_SPANS,
) -> list[Diagnostic]:
    """FLUO404 for every rule whose estimated span visits on a trace of `trace_spans` spans pass `limit`.

    Estimated on the optimised IR, the form that runs. `fluo check` adds these to the analysis'.
    """
    return check_cost(lower(analysis), limit, trace_spans)
