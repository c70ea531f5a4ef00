"""Diagnostics are data: a stable code, a severity, a message and a source range.

Codes are never renamed or reused. `CODES` is the registry of every code with
its meaning; `docs/diagnostics.md` is generated from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from .ast import Span
from .values import one_line


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


CODES: dict[str, str] = {
    # 1xx: syntax
    "FLUO100": "Unexpected token: the parser expected something else here.",
    "FLUO101": "Unexpected character that starts no token.",
    "FLUO102": "Unterminated or invalid string literal.",
    "FLUO103": (
        "Unknown duration unit (use ns, us, µs, ms, s, m, h, d); with a value no duration is too (`1.5nsec`: no "
        "whole number of nanoseconds), this one error says both."
    ),
    "FLUO104": "Unexpected end of file.",
    "FLUO105": (
        "A bare expression with rules: `rule` after a file's bare expression (such a file holds nothing else),"
        " or rules given to `--expect`/`--detect`, which take one expression."
    ),
    "FLUO106": "A rule file that is not UTF-8 text.",
    "FLUO107": "A keyword misspelled or in another language's word (`exepct`, `Rule`, `assert`): FLUO's is suggested.",
    "FLUO108": "A number or duration literal past 64 bits (durations count nanoseconds: about 292 years).",
    "FLUO109": "A duration literal that is no whole number of nanoseconds (`1.5ns`): its fix is the nearest one.",
    "FLUO110": (
        "A string literal holding a character that shows as nothing (U+200B zero width space, U+00AD soft hyphen, "
        "U+FEFF): `'ad<U+200B>min'` reads as `'admin'`; its fix writes it as `\\uXXXX`."
    ),
    # 2xx: names and rule structure
    "FLUO200": "Unknown name.",
    "FLUO201": "Unknown method for the receiver's type.",
    "FLUO202": "Unknown field for the receiver's type.",
    "FLUO203": "Wrong number of arguments.",
    "FLUO204": "A span field used outside a predicate.",
    "FLUO205": (
        "A name one typo from an intrinsic, or another tool's spelling of one (`service_name`, `status_code`), "
        "reads as an attribute."
    ),
    "FLUO206": "Not callable / not indexable.",
    "FLUO207": (
        "A name that reads as an attribute nobody meant: a key with dashes (`x-request-id` is `x - request - id`),"
        " `null` or `True` (FLUO has neither), TraceQL's `span.` scope, OTTL's `resource.attributes[...]`."
    ),
    "FLUO210": "Unknown metadata key.",
    "FLUO211": "Duplicate metadata key.",
    "FLUO212": "Metadata value of the wrong type or out of range.",
    "FLUO213": "Duplicate rule id.",
    "FLUO214": "A rule needs exactly one of `expect`, `detect` or `when`.",
    "FLUO215": "`when` needs `always` or `never`; `always`/`never` need `when`.",
    "FLUO216": "A clause appears twice.",
    "FLUO217": "Invalid window length.",
    "FLUO220": "`trace` used in a windowed rule.",
    "FLUO221": (
        "`window` used in a rule without a `window` clause, or bare in a predicate (a span attribute named "
        '`window` is `attributes["window"]`).'
    ),
    # 3xx: types
    "FLUO300": "Incompatible types in a comparison.",
    "FLUO301": "Expected a boolean.",
    "FLUO302": "Invalid operand types for an arithmetic operator.",
    "FLUO303": "Invalid regular expression.",
    "FLUO304": "Unknown enum value for `status` or `kind`.",
    "FLUO305": "Argument of the wrong type.",
    "FLUO306": "The pattern of `matches` must be a string literal.",
    "FLUO307": (
        "A comparison that no trace can change: `count() >= 0` and `count() > -1` always hold, "
        "`duration < 0s` and `count() == -1` never do; list literals of different lengths are never equal "
        "(`[status, kind] == [error]`)."
    ),
    # 4xx: limits
    "FLUO400": "Expression or metadata list nested too deeply.",
    "FLUO401": "Rule too large.",
    "FLUO402": "File too large.",
    "FLUO403": "More than 100 syntax errors in one file: the rest are not reported (other errors are not capped); "
    "past 1,000 met, each of a run reported as one error counted, the rest of the file is not read, from where this "
    "FLUO403 stands.",
    "FLUO404": "Rule too expensive: its estimated span visits on a large trace exceed the cost limit.",
    "FLUO405": "Regular expressions of one file too large in all: the patterns before this one compile to more "
    "than RE2 may spend on one file, so it is not checked.",
}


def one_based(span: Span) -> tuple[int, int]:
    """The 1-based (line, column) a person reads of a span's start; the one place that converts."""
    return span.line + 1, span.col + 1


def _where(path: str | None, span: Span) -> str:
    """`file:line:col` of a diagnostic's line, the file's name on one line (`one_line`)."""
    line, col = one_based(span)
    return f"{one_line(path or '<input>')}:{line}:{col}"


def utf16_units(text: str) -> int:
    """How many UTF-16 code units `text` is; a lone surrogate (a client's JSON can hold one) is one."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le", "surrogatepass")) // 2


def utf16_columns(span: Span, text: str) -> tuple[int, int]:
    """The 1-based start and end columns of a span of `text` counted in UTF-16 code units, as SARIF counts
    them by default (`one_based` counts code points): an astral character such as an emoji is two."""
    if not (span.col <= span.start and span.end_col <= span.end <= len(text)):
        return span.col + 1, span.end_col + 1  # not a span of this text (a file that was not read)
    start = utf16_units(text[span.start - span.col : span.start])
    end = utf16_units(text[span.end - span.end_col : span.end])
    return start + 1, end + 1


@dataclass(frozen=True, slots=True)
class Related:
    """A secondary location that explains a diagnostic (e.g. the first definition)."""

    message: str
    span: Span
    path: str | None = None


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    span: Span
    path: str | None = None
    related: tuple[Related, ...] = field(default=())
    suggestion: str | None = None  # replacement text for `span`, for a quick fix
    capped: bool = False
    """One of the syntax errors of which the parser reports at most `MAX_ERRORS` per file (then one FLUO403, itself
    marked): whoever parses a file in parts (the language server, rule by rule) caps their sum the same way."""
    guess: str | None = None
    """Replacement text for `span` that the message names (a did-you-mean) but that does not check where it goes
    (`trace.spans.cont()` in a clause: `count`, an int): no `suggestion`, since the name may be right and the rest
    the mistake; the editor offers it all the same, not preferred, naming the error it leads to."""

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def human_position(self) -> tuple[int, int]:
        return one_based(self.span)

    def format(self) -> str:
        """`file:line:col: error[CODE] message`, as `fluo check` prints it: one line, whatever the file's name
        or the message hold (a newline in either would forge a line that CI problem matchers read)."""
        return f"{_where(self.path, self.span)}: {self.severity.value}[{self.code}] {one_line(self.message)}"

    def format_with_notes(self) -> str:
        """`format()`'s line, then one indented `file:line:col: note: message` line per related location (the
        operands of a comparison with their types, a duplicate's first definition), as compilers print them: the
        first line stays what CI problem matchers read, and each note is one line too."""
        lines = [self.format()]
        lines += (f"  {_where(r.path or self.path, r.span)}: note: {one_line(r.message)}" for r in self.related)
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        line, col = self.human_position()
        out: dict[str, object] = {
            "path": self.path,
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "line": line,
            "column": col,
            "end_line": self.span.end_line + 1,
            "end_column": self.span.end_col + 1,
        }
        if self.suggestion is not None:
            out["suggestion"] = self.suggestion
        if self.related:
            out["related"] = [
                {
                    "message": r.message,
                    "path": r.path or self.path,
                    "line": one_based(r.span)[0],
                    "column": one_based(r.span)[1],
                }
                for r in self.related
            ]
        return out


def error(code: str, message: str, span: Span, **kw: object) -> Diagnostic:
    return Diagnostic(code, Severity.ERROR, message, span, **kw)  # type: ignore[arg-type]


def warning(code: str, message: str, span: Span, **kw: object) -> Diagnostic:
    return Diagnostic(code, Severity.WARNING, message, span, **kw)  # type: ignore[arg-type]


def strictly(d: Diagnostic) -> Diagnostic:
    """`d` as strict mode reports it, a warning as an error: `fluo check --strict` and the editor's
    `fluo.strictness: strict` both map diagnostics through this, so that they agree."""
    return replace(d, severity=Severity.ERROR) if d.severity is Severity.WARNING else d


def sort_key(d: Diagnostic) -> tuple[str, int, int, str]:
    return (d.path or "", d.span.start, d.span.end, d.code)


def plural(n: int, noun: str, nouns: str = "") -> str:
    """`n` and the noun that agrees with it: `1 rule`, `2 rules`, `2 identical copies` (`nouns`: the irregular
    plural)."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"


def article(noun: object) -> str:
    """`noun` after "a" or "an", by its first letter: `a list<string>`, `an int`."""
    text = str(noun)
    return f"{'an' if text[:1].lower() in ('a', 'e', 'i', 'o', 'u') else 'a'} {text}"


def nearest(word: str, candidates: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """The candidate closest to `word` by edit distance, if it is close enough to be a typo."""
    best: tuple[int, str] | None = None
    limit = 1 if len(word) <= 4 else 2
    for c in sorted(candidates):
        d = edit_distance(word, c, limit)
        if d <= limit and (best is None or d < best[0]):
            best = (d, c)
    return best[1] if best else None


def edit_distance(a: str, b: str, limit: int = 1 << 30) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance, stopping early past `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]
