"""The generated parts of the reference docs, written from the registries.

`python -m fluo_lang.docs` rewrites the marked sections of `docs/language.md` and the
whole of `docs/diagnostics.md`; `--check` only says whether they are stale (exit 1).
A test fails when the committed files are stale.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import builtins as b
from . import types as t
from .diagnostics import CODES
from .parser import DURATION_UNITS, keywords
from .typecheck import META_KEYS

BEGIN = "<!-- BEGIN GENERATED: registry (python -m fluo_lang.docs) -->"
END = "<!-- END GENERATED: registry -->"
DOCS = Path(__file__).resolve().parent.parent / "docs"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _members(receiver: t.Type, title: str) -> list[str]:
    members = [m for m in b.MEMBERS if m.receiver == receiver]
    if not members:
        return []
    lines = [f"### {title}", "", "| member | type | meaning | example |", "|---|---|---|---|"]
    for m in members:
        sig = m.signature.split(".", 1)[1] if "." in m.signature else m.signature
        example = f"`{m.example}`" if m.example else ""
        lines.append(f"| `{_cell(sig)}` | {m.kind} | {_cell(m.doc)} | {_cell(example)} |")
    return [*lines, ""]


def registry_markdown() -> str:
    """The reference tables: roots, fields and methods by type, operators, keywords, metadata."""
    out = ["## Reference (generated from the builtin registry)", ""]
    out += ["### Roots", "", "| name | type | meaning |", "|---|---|---|"]
    out += [f"| `{r.name}` | {r.type} | {_cell(r.doc)} |" for r in b.ROOTS.values()]
    out.append("")
    sections = [
        (t.SPAN, "Span fields (bare names inside a predicate)"),
        (t.SPANS, "Methods of `spans`"),
        (t.TRACE, "Members of `trace`"),
        (t.WINDOW, "Members of `window` (rules with `window D`)"),
        (t.TRACES, "Methods of `window.traces`"),
        (t.list_of(t.ANY), "Methods of lists"),
        (t.STRING, "Methods of strings (and of attribute values)"),
        (t.ANY, "Methods of attribute values only"),
    ]
    for receiver, title in sections:
        out += _members(receiver, title)
    out += ["### Operators", "", "| operator | meaning |", "|---|---|"]
    out += [f"| `{_cell(o.symbol)}` | {_cell(o.doc)} |" for o in b.OPERATORS]
    out += ["", "### Keywords", "", ", ".join(f"`{k}`" for k in sorted(keywords())), ""]
    out += ["### Metadata keys", "", "| key | value |", "|---|---|"]
    out += [f"| `{k}` | {_cell(v)} |" for k, v in META_KEYS.items()]
    units = ", ".join(f"`{u}`" for u in DURATION_UNITS)
    out += ["", "### Duration units", "", units, ""]
    out += [
        "### Names from other languages",
        "",
        "Written on the left, they are errors whose fix (where it checks) is FLUO's name on the right; "
        "on `span`, bare names, which read as attributes with a FLUO205 warning.",
        "",
        "| on | written | FLUO writes |",
        "|---|---|---|",
    ]
    for where, names in b.FOREIGN_NAMES.items():
        out += [f"| {where} | `{_cell(k)}` | `{_cell(v)}` |" for k, v in names.items()]
    out.append("")
    return "\n".join(out)


def diagnostics_markdown() -> str:
    lines = [
        "# Diagnostic codes",
        "",
        "Generated from `fluo_lang/diagnostics.py` (`python -m fluo_lang.docs`). Codes are stable:",
        "never renamed, never reused.",
        "",
        "| code | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{code}` | {_cell(text)} |" for code, text in CODES.items()]
    return "\n".join(lines) + "\n"


def render_language(current: str) -> str:
    """`docs/language.md` with its generated section replaced."""
    if BEGIN not in current or END not in current:
        raise ValueError("docs/language.md lacks the generated-section markers")
    head, rest = current.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{registry_markdown()}\n{END}{tail}"


def generated(docs: Path = DOCS) -> dict[Path, str]:
    """Each generated file under `docs` and the text it should hold."""
    language = docs / "language.md"
    return {
        language: render_language(language.read_text(encoding="utf-8")),
        docs / "diagnostics.md": diagnostics_markdown(),
    }


def main(argv: Sequence[str] | None = None, docs: Path = DOCS) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fluo_lang.docs",
        description=(
            "Write the generated parts of the reference docs from the registries: the marked "
            "reference section of docs/language.md and the whole of docs/diagnostics.md."
        ),
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; list the stale files and exit 1 if any is stale, 0 if all are current",
    )
    args = parser.parse_args(argv)
    try:
        wanted = generated(docs)
    except (OSError, ValueError) as exc:
        print(f"python -m fluo_lang.docs: {exc}", file=sys.stderr)
        return 2
    stale = [path for path, text in wanted.items() if _read(path) != text]
    if args.check:
        for path in stale:
            print(f"stale: {path} (run `python -m fluo_lang.docs`)")
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path], encoding="utf-8")
    print(f"wrote {', '.join(str(p) for p in stale)}" if stale else "the generated docs are current")
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
