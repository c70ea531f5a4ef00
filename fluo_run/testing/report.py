"""Reports of a run: text for people (pytest-like failures), JSON for scripts, JUnit XML for CI."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from fluo_lang.diagnostics import plural
from fluo_lang.ir import RuleIR
from fluo_lang.values import dump_json, escape_json_text, escape_surrogates, one_line, printable, quoted

from .coverage import Coverage
from .matching import Match, Row
from .runner import ERROR, FAILED, PASSED, UPDATED, CaseResult, FileResult, RunResult, observed_text
from .spec import Expectation

WIDTH = 80
MAX_RULE_LINES = 12
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _banner(title: str, fill: str) -> str:
    title = f" {title} "
    n = max(WIDTH - len(title), 6)
    return fill * (n // 2) + title + fill * (n - n // 2)


def counts_text(result: RunResult) -> str:
    parts = []
    for status in (FAILED, PASSED, UPDATED, ERROR):
        n = result.count(status)
        if n:
            parts.append(f"{n} {status}" if status != ERROR else plural(n, "error"))
    broken = len(result.broken_files)
    if broken:
        parts.append(f"{broken} broken {'file' if broken == 1 else 'files'}")
    return ", ".join(parts) or "no cases"


# -- text ---------------------------------------------------------------------


def _observed(signal: dict[str, Any]) -> str:
    return observed_text(signal.get("observed") or {})


def _where(signal: dict[str, Any], names: dict[str, str]) -> str:
    if signal.get("window_start") is not None:
        return f"window {signal['window_start']}..{signal['window_end']}"
    trace_id = str(signal.get("trace_id"))
    label = names.get(trace_id)
    return f"trace {label!r}" if label else f"trace {trace_id}"


def signal_text(signal: dict[str, Any], names: dict[str, str]) -> str:
    obs = _observed(signal)
    return f"{signal.get('rule')} {_where(signal, names)}" + (f": {obs}" if obs else "")


def expectation_text(e: Expectation) -> str:
    """An `expect:` entry as the report's table reads it: `err trace 'a' x2`, and `no err trace 'a'` for `count: 0`."""
    parts = [e.rule] if e.count else ["no", e.rule]
    if e.trace is not None:
        parts.append(f"trace {e.trace!r}")
    if e.trace_id is not None:
        parts.append(f"trace {e.trace_id}")
    if e.count > 1:
        parts.append(f"x{e.count}")
    if e.observed:
        parts.append("with " + observed_text(e.observed))
    return " ".join(parts)


def _table(match: Match, names: dict[str, str]) -> list[str]:
    rows: list[tuple[str, str, str]] = []
    for row in match.rows:
        rows.extend(_row_lines(row, names))
    forbidden = match.forbidden_signals()
    for s in match.unexpected:
        if id(s) not in forbidden:  # shown once, as FORBIDDEN
            rows.append(("UNEXPECTED", "", signal_text(s, names)))
    if not rows:
        rows.append(("", "(no signal)", "(no signal)"))
    left = min(max([len("expected")] + [len(r[1]) for r in rows]), 48)
    mark = max(len(r[0]) for r in rows)
    lines = [f"    {'':{mark}}  {'expected':{left}}  | observed"]
    for status, exp, obs in rows:
        lines.append(f"    {status:{mark}}  {exp:{left}}  | {obs}".rstrip())
    return lines


def _row_lines(row: Row, names: dict[str, str]) -> list[tuple[str, str, str]]:
    exp = expectation_text(row.expectation)
    out: list[tuple[str, str, str]] = []
    for s in row.signals:
        out.append(("ok", exp, signal_text(s, names)))
        exp = ""
    for s in row.forbidden:  # `count: 0`, and one like it fired
        out.append(("FORBIDDEN", exp, signal_text(s, names)))
        exp = ""
    if row.ok:
        if row.expectation.count == 0:
            out.append(("ok", exp, "(no signal)"))
        return out
    if row.forbidden:
        return out
    label = "MISSING" if row.missing == 1 else f"MISSING {row.missing}"
    if row.near:
        closest = "; ".join(sorted(set(row.reasons)))
        out.append((label, exp, f"(no match: {closest})"))
    else:
        out.append((label, exp, f"(no {row.expectation.rule} signal)"))
    return out


def _rule_block(ir: RuleIR) -> list[str]:
    lines = [f"  rule {ir.id}  ({ir.path}:{ir.span.line + 1})"]
    first = ir.span.line + 1
    text = ir.source.rstrip("\n").splitlines() or [""]
    width = len(str(first + len(text) - 1))
    for i, line in enumerate(text[:MAX_RULE_LINES]):
        lines.append(f"    {first + i:>{width}} | {line.expandtabs(4)}".rstrip())  # shown as indented, not `\t`
    if len(text) > MAX_RULE_LINES:
        lines.append(f"    {'':>{width}} | ... {len(text) - MAX_RULE_LINES} more lines")
    return lines


def failure_text(c: CaseResult) -> list[str]:
    """The pytest-like block for a failed case: where, what, side by side, and the rules involved."""
    assert c.match is not None
    names = {v: k for k, v in c.case.labels.items() if k}
    where = f"{c.file.display}:{c.case.line}: case {quoted(c.case.name)}: {c.match.summary()}"
    lines = [_banner(printable(c.id), "_"), "", where, ""]
    if c.warnings:  # a misspelt key in a fixture is the likeliest reason for a missing signal: said first
        lines.extend(f"warning: {w}" for w in c.warnings)
        lines.append("")
    lines.extend(_table(c.match, names))
    involved: dict[str, None] = {}
    for row in c.match.rows:
        if not row.ok:
            involved.setdefault(row.expectation.rule, None)
    for s in c.match.unexpected:
        involved.setdefault(str(s.get("rule")), None)
    for rule in involved:
        ir = c.rules.get(rule)
        if ir is None:
            continue
        lines.append("")
        lines.extend(_rule_block(ir))
        fired = [s for s in c.signals if s.get("rule") == rule]
        for s in fired:
            lines.append(f"    fired on {_where(s, names)}: {_observed(s) or 'no observed values'}")
        lines.extend(f"    {why}" for why in c.why_not.get(rule, []))
        if not fired and rule not in c.why_not:
            lines.append("    did not fire")
    lines.append("")
    return lines


def _file_line(fr: FileResult) -> str:
    if not fr.file.loaded:
        return f"{fr.file.display}: error"
    parts = []
    for status in (FAILED, PASSED, UPDATED, ERROR):
        n = sum(1 for c in fr.cases if c.status == status)
        if n:
            parts.append(plural(n, "error") if status == ERROR else f"{n} {status}")
    return f"{fr.file.display}: {', '.join(parts) or 'no cases'}"


def text_report(result: RunResult, coverage: Coverage | None = None, *, seconds: bool = True) -> str:
    lines: list[str] = []
    for fr in result.files:
        lines.append(_file_line(fr))
        for p in fr.file.problems:
            lines.append(f"  {p.format()}")
        for c in fr.cases:
            if c.status == FAILED:
                lines.append(f"  FAILED {printable(c.case.name)} (line {c.case.line})")
            elif c.status == ERROR:
                lines.append(f"  ERROR {printable(c.case.name)} (line {c.case.line})")
                lines.extend(f"    {p.format()}" for p in c.problems)
    failed = [c for c in result.cases if c.status == FAILED]
    if failed:
        lines.append("")
        lines.append(_banner("FAILURES", "="))
        for c in failed:
            lines.extend(failure_text(c))
    if coverage is not None:
        lines.append("")
        lines.extend(coverage_text(coverage))
    summary = counts_text(result)
    if seconds:
        summary += f" in {result.seconds:.2f}s"
    lines.append(_banner(summary, "="))
    # Each line as `fluo eval --format text` prints a signal: rule source, observed values and file names come from
    # files under review, and an ESC, a C1 CSI (U+009B) or a bidi override (U+202E) would reach the terminal.
    text = "\n".join(one_line(line) for line in lines) + "\n"
    return escape_surrogates(text)  # a file name's byte that is not UTF-8, as the banners show it


def coverage_text(cov: Coverage) -> list[str]:
    fired = sum(1 for r in cov.rules if r.key in cov.fired)
    head = f"coverage: {plural(len(cov.rules), 'rule')}, {fired} fired in some case"
    does = "does" if len(cov.invalid) == 1 else "do"
    lines = [f"{head}; {len(cov.invalid)} more that {does} not typecheck" if cov.invalid else head]
    width = max((len(r.id) for r in [*cov.rules, *cov.invalid]), default=0)
    for title, refs in (("never fired", cov.never_fired), ("never ran", cov.never_ran)):
        for r in refs:
            lines.append(f"  {title + ':':12} {r.id:{width}}  {r.path}:{r.line}")
    for r in cov.invalid:  # in no count above, as the rules of a file not read
        lines.append(f"  {'invalid:':12} {r.id:{width}}  {r.path}:{r.line}  (does not typecheck: run `fluo check`)")
    lines.extend(f"  not read:    {_clean(why)}" for why in cov.unread)  # its rules are in no count above
    return lines


# -- JSON ---------------------------------------------------------------------


def _case_json(c: CaseResult) -> dict[str, Any]:
    out: dict[str, Any] = {"name": c.case.name, "line": c.case.line, "status": c.status}
    if c.problems:
        out["errors"] = [p.to_json() for p in c.problems]
    if c.warnings:
        out["warnings"] = c.warnings
    if c.written_expect is not None:  # the entries it could not read too, not as if it expected less
        out["expected"] = c.written_expect
    elif c.case.expect is not None:
        out["expected"] = [e.to_json() for e in c.case.expect]
    if c.status != ERROR:
        out["signals"] = c.signals
    if c.match is not None and not c.match.ok:
        short = [r for r in c.match.rows if not r.ok]
        out["missing"] = [
            {**r.expectation.to_json(), "missing": r.missing, "line": r.expectation.line} for r in short if r.missing
        ]
        out["unexpected"] = c.match.unexpected
        out["forbidden"] = [
            {**r.expectation.to_json(), "signals": r.forbidden, "line": r.expectation.line}
            for r in short
            if r.forbidden
        ]
    return out


def json_report(result: RunResult, coverage: Coverage | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "summary": {
            "files": len(result.files),
            "cases": len(result.cases),
            "passed": result.count(PASSED),
            "failed": result.count(FAILED),
            "updated": result.count(UPDATED),
            "errors": result.count(ERROR),
            "broken_files": len(result.broken_files),
            "exit_code": result.exit_code,
        },
        **({"warnings": result.warnings} if result.warnings else {}),
        "files": [
            {
                "path": fr.file.display,
                "status": fr.status,
                **({"errors": [p.to_json() for p in fr.file.problems]} if fr.file.problems else {}),
                "cases": [_case_json(c) for c in fr.cases],
            }
            for fr in result.files
        ],
    }
    if coverage is not None:
        out["coverage"] = coverage.to_json()
    return out


def json_text(report: dict[str, Any]) -> str:
    """The JSON report as printed: indented, as `dump_json` writes JSON (half a surrogate pair as the text of its
    escape, `\\udce9`, as the text report shows it)."""
    return dump_json(report, indent=2)


# -- JUnit XML ----------------------------------------------------------------


def _clean(text: str) -> str:
    """Text as XML can hold it, and as CI shows it safely: a C0 control character as `?`; DEL, a C1 control
    (U+009B starts an escape sequence), a line separator, a bidirectional control (U+202E) and half a surrogate
    pair as their `\\uXXXX` escapes (`escape_json_text`), as the text and JSON reports write them."""
    return _XML_BAD.sub("?", escape_json_text(text))


def _seconds(s: float) -> str:
    return f"{s:.3f}"


def junit_classname(display: str) -> str:
    """A test file's path as a JUnit `classname`: without its extension, `/` turned into `.`, and no empty
    segment (`../rules/a_test.yaml` is `rules.a_test`, `/abs/a_test.yaml` `abs.a_test`), which Jenkins would
    show as a package with no name."""
    stem = re.sub(r"\.(fluotest\.)?ya?ml$", "", display)
    return ".".join(part for part in re.split(r"[/\\.]", stem) if part) or "fluo"


def junit_report(result: RunResult) -> bytes:
    """JUnit XML as Jenkins, GitLab and GitHub test reporters read it: one suite per test file."""
    root = ET.Element("testsuites", name="fluo test")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for fr in result.files:
        display = _clean(fr.file.display)
        suite = ET.SubElement(root, "testsuite", name=display, file=display)
        counts = {"tests": 0, "failures": 0, "errors": 0}
        classname = _clean(junit_classname(fr.file.display))
        if not fr.file.loaded:
            case = ET.SubElement(suite, "testcase", classname=classname, name="(load)", file=display)
            case.set("line", str(fr.file.problems[0].line))
            case.set("time", _seconds(0))
            message = fr.file.problems[0].message
            error = ET.SubElement(case, "error", message=_clean(message), type="LoadError")
            error.text = _clean("\n".join(p.format() for p in fr.file.problems))
            counts["tests"] += 1
            counts["errors"] += 1
        for c in fr.cases:
            case = ET.SubElement(suite, "testcase", classname=classname, name=_clean(c.case.name))
            case.set("file", display)
            case.set("line", str(c.case.line))
            case.set("time", _seconds(c.seconds))
            counts["tests"] += 1
            if c.status == FAILED and c.match is not None:
                failure = ET.SubElement(case, "failure", message=_clean(c.match.summary()), type="SignalMismatch")
                failure.text = _clean("\n".join(failure_text(c)[2:]))
                counts["failures"] += 1
            elif c.status == ERROR:
                error = ET.SubElement(case, "error", message=_clean(c.problems[0].message), type="LoadError")
                error.text = _clean("\n".join(p.format() for p in c.problems))
                counts["errors"] += 1
        for key, n in counts.items():
            suite.set(key, str(n))
            totals[key] += n
        suite.set("skipped", "0")
        suite.set("time", _seconds(fr.seconds))
    for key, n in totals.items():
        root.set(key, str(n))
    root.set("skipped", "0")  # as on every suite: a case is never skipped, and some readers want the key
    root.set("time", _seconds(result.seconds))
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"
