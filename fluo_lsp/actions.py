"""Code actions: apply a diagnostic's did-you-mean, add the `severity` a rule leaves to its default."""

from __future__ import annotations

import re
from ast import literal_eval
from collections import Counter
from collections.abc import Callable

from lsprotocol import types as lsp

from fluo_lang.ast import Span
from fluo_lang.diagnostics import Diagnostic, nearest, strictly
from fluo_run.testing.update import flow_yaml

from .document import RuleDocument, analyze_chunk
from .positions import LineIndex, span_range
from .reporting import lsp_diagnostic, test_diagnostics
from .workspace import TestProblem


def test_file_actions(
    problems: list[TestProblem],
    text: str,
    uri: str,
    start: int,
    end: int,
    recheck: Callable[[str], list[TestProblem]] | None = None,
) -> list[lsp.CodeAction]:
    """Quick fixes of a rule test file's problems that meet [start, end]: an unknown rule id's did-you-mean, which
    names a rule the test's rule files define, so it is preferred; and the did-you-mean `fluo test`'s reader
    names (`unknown key `servce`; did you mean `service`?`, `got 'eror'; did you mean `error`?`), on the slip
    itself in the problem's line, preferred if `recheck` (the reader's problems of the edited text) finds the
    problem gone and none new, as a rule file's fix is preferred if it adds no error."""
    out: list[lsp.CodeAction] = []
    index = LineIndex(text)
    for p, diagnostic in zip(problems, test_diagnostics(problems, text), strict=True):
        if not _meets(p.start, p.end, start, end):
            continue
        if p.suggestion is not None:
            fix, preferred = (p.start, p.end, flow_yaml(p.suggestion), p.suggestion), True  # `yes` as `'yes'`
        else:
            found = _named_fix(p, text)
            if found is None:
                continue
            fix, preferred = found, False
            if recheck is not None:
                edited = text[: found[0]] + found[2] + text[found[1] :]
                before = Counter(x.message for x in problems if x.code == "test-file" and x is not p)
                after = Counter(x.message for x in recheck(edited) if x.code == "test-file")
                preferred = not after - before
        edit = lsp.TextEdit(range=index.range(fix[0], fix[1]), new_text=fix[2])
        out.append(
            lsp.CodeAction(
                title=f"Change to `{fix[3]}`",
                kind=lsp.CodeActionKind.QuickFix,
                diagnostics=[diagnostic],
                edit=lsp.WorkspaceEdit(changes={uri: [edit]}),
                is_preferred=preferred,
            )
        )
    return out


_MEANT_IN = re.compile(r"did you mean `([^`]+)`\?$")
_SLIP = re.compile(
    r"unknown key `(?P<key>[^`]+)`"
    r"|(?:got|no span with id or name) (?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
)


def _named_fix(p: TestProblem, text: str) -> tuple[int, int, str, str] | None:
    """Where the slip a `test-file` problem's did-you-mean names is in its line, what takes its place as written
    there, and the name meant; None
    if the message names none, or the line does not hold it as written (escaped, spread over lines)."""
    meant = _MEANT_IN.search(p.message) if p.code == "test-file" else None
    slips = list(_SLIP.finditer(p.message[: meant.start()])) if meant is not None else []
    if meant is None or not slips:
        return None
    slip = slips[-1]
    key = slip["key"]
    value = key if key is not None else literal_eval(slip["value"])
    if not isinstance(value, str) or not value:
        return None
    word = re.escape(value)
    found = re.compile(
        rf"(?:^|(?<=[\s{{,]))(?P<q>['\"]?)(?P<w>{word})(?P=q)(?=\s*:)"
        if key is not None
        else rf"(?<=:)\s*(?P<q>['\"]?)(?P<w>{word})(?P=q)(?=\s*(?:[,}}\]#]|$))"
    ).search(text, p.start, p.end)
    if found is None:
        return None
    quoted = bool(found["q"])
    if quoted and found["q"] in meant[1]:
        return None
    return found.start("w"), found.end("w"), meant[1] if quoted else flow_yaml(meant[1]), meant[1]


def code_actions(doc: RuleDocument, uri: str, start: int, end: int, *, strict: bool) -> list[lsp.CodeAction]:
    """Actions for the diagnostics and rules that meet the document range [start, end].

    A did-you-mean is preferred (applied by "fix all" and auto-fix) only if the rule it edits checks
    with no new error; one that gives an error (`where(servce)` -> `where(service)`: a string predicate;
    a `guess` the checker found no fit for: `whree(...).cuont()` -> `where`) is still offered, not
    preferred, its title naming the error it leads to: the name may be right and the rest the bug,
    which only the user knows. Asked at the diagnostic itself (the cursor or selection inside it, as
    auto-fix asks), its one fix does not count another slip that the fix only lets the checker see: a
    new error away from the edit with a did-you-mean of its own (`severty: critcal` -> `severity`, then
    `critcal`; `whree(...).cuont()` -> `where`, then `cuont`), which its own fix mends.
    """
    out: list[lsp.CodeAction] = []
    fixes = [
        (d, base, text)
        for d, base in doc.diagnostics()
        # a guess: named, but the checker saw no fit
        if (text := d.suggestion if d.suggestion is not None else d.guess) is not None
        and _meets(base + d.span.start, base + d.span.end, start, end)
    ]
    places = Counter((base + d.span.start, base + d.span.end) for d, base, _ in fixes)
    for d, base, text in fixes:
        edit = lsp.TextEdit(range=span_range(doc.index, d.span, base), new_text=text)
        place = (base + d.span.start, base + d.span.end)
        asked = place[0] <= start and end <= place[1] and places[place] == 1  # the cursor is on it: its one fix
        new = _new_errors(doc, d, base, strict=strict, other_slips=not asked)
        then = f" (then {new[0].code}: {new[0].message})" if new else ""
        out.append(
            lsp.CodeAction(
                title=f"Change to `{text}`{then}",
                kind=lsp.CodeActionKind.QuickFix,
                diagnostics=[lsp_diagnostic(d, base, doc, uri, strict=strict)],
                edit=lsp.WorkspaceEdit(changes={uri: [edit]}),
                is_preferred=not new,
            )
        )
    for rule, base in doc.rules():
        # A key that is `severity` or a typo of it (`severty:`, fixed by the action above) already says one; so
        # may a key the parser could not read (`sevérity:`, kept as no key): adding one would make it twice.
        if rule.bare or not rule.id or any(not m.key or nearest(m.key, ["severity"]) for m in rule.meta):
            continue
        if not _meets(base + rule.span.start, base + rule.span.end, start, end):
            continue
        after_id = base + rule.id_span.end
        brace = doc.text.find("{", after_id, base + rule.span.end)
        if brace < 0 or doc.text[after_id:brace].strip():  # the rule's own `{`, right after its id, or none
            continue
        offset, new_text = _severity_insertion(doc.text, brace)
        at = doc.index.position(offset)
        edit = lsp.TextEdit(range=lsp.Range(start=at, end=at), new_text=new_text)
        out.append(
            lsp.CodeAction(
                title=f"Add `severity: warning` to rule `{rule.id}`",
                kind=lsp.CodeActionKind.QuickFix,
                edit=lsp.WorkspaceEdit(changes={uri: [edit]}),
            )
        )
    return out


def _new_errors(
    doc: RuleDocument, fixed: Diagnostic, base: int, *, strict: bool, other_slips: bool = True
) -> list[Diagnostic]:
    """The errors (warnings too, if `strict`) that applying `fixed`'s suggestion (or guess) adds to the chunk it is in.

    Told apart by code, message and place (after the edit, places past it shift by what it adds), not by
    code alone: a fix that swaps one FLUO100 for another (`status is not error` -> `== not error`) adds
    an error, and so does one after which the same diagnostic comes back (a fix that does not fix).

    An error the text has whatever the fix is not the fix's: one the checker found, away from the edit, in a
    clause whose syntax error held it back (`1e3s and trace.spans.cnt() > 1`: FLUO201 is there, only not
    shown until the `1e3s` is fixed).

    Without `other_slips`, a new error away from the edit that has a did-you-mean of its own is left out: another
    slip the fix lets the checker reach (`severty: critcal`: `critcal` is checked once the key is `severity`).
    """
    span = fixed.span
    text = fixed.suggestion if fixed.suggestion is not None else fixed.guess or ""
    chunk = doc.chunk_at(base + span.start)
    rel_start, rel_end = base + span.start - chunk.start, base + span.end - chunk.start
    source = chunk.analysis.text
    edited = source[:rel_start] + text + source[rel_end:]
    last = chunk is doc.chunks[-1]
    shift = len(text) - (rel_end - rel_start)

    def counted(d: Diagnostic) -> bool:
        return (strictly(d) if strict else d).is_error

    def moved(d: Diagnostic) -> tuple[str, str, int]:
        start = d.span.start
        return d.code, d.message, start if start < rel_start else start + shift

    was_fixed = (fixed.code, fixed.message, base + span.start - chunk.start)
    before = Counter(
        moved(d) for d in chunk.analysis.diagnostics if counted(d) and (d.code, d.message, d.span.start) != was_fixed
    )
    before.update(
        moved(d)
        for d in chunk.analysis.hidden
        if counted(d) and not any(_meets(at.start, at.end, rel_start, rel_end) for at in _places(d))
    )
    out: list[Diagnostic] = []
    for d in analyze_chunk(doc.path, edited, last=last).diagnostics:
        if not counted(d):
            continue
        slip = d.suggestion is not None or d.guess is not None
        if (
            not other_slips
            and slip
            and not any(_meets(p.start, p.end, rel_start, rel_start + len(text)) for p in _places(d))
        ):
            continue
        key = d.code, d.message, d.span.start
        if before[key] > 0:
            before[key] -= 1
        else:
            out.append(d)
    return out


_BREAK = re.compile(r"\r\n|\r|\n")


def _severity_insertion(text: str, brace: int) -> tuple[int, str]:
    """Where and what to insert for `severity: warning` in the rule opened at `brace`, in the rule's layout:
    on a line of its own, indented as the next item and ending as the file's lines do; or, when the rule goes
    on after its `{` on the same line, before what follows."""
    found = _BREAK.search(text, brace + 1)
    line_end = found.start() if found else len(text)
    after = text[brace + 1 : line_end]
    if after.strip() and not after.strip().startswith("//"):
        return brace + 1 + len(after) - len(after.lstrip()), "severity: warning "
    first_break = found or _BREAK.search(text)
    eol = first_break.group(0) if first_break else "\n"
    rule_line = text[max(text.rfind("\n", 0, brace), text.rfind("\r", 0, brace)) + 1 : brace]
    indent = _indent(rule_line) + "  "
    if found:
        following = _BREAK.search(text, found.end())
        next_line = text[found.end() : following.start() if following else len(text)]
        if next_line.strip() and not next_line.strip().startswith("}"):
            indent = _indent(next_line)
    return line_end, f"{eol}{indent}severity: warning"


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _places(d: Diagnostic) -> list[Span]:
    """Where `d` is, and the places of its text it relates (a type error at an operator: its operands)."""
    return [d.span, *(r.span for r in d.related if r.path in (None, d.path))]


def _meets(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start <= b_end and b_start <= a_end
