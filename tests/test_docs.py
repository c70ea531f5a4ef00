"""The reference docs are generated from the registries; stale docs fail here."""

from __future__ import annotations

from tests_paths import ROOT

from fluo_lang import builtins as b
from fluo_lang.docs import diagnostics_markdown, render_language


def test_language_reference_is_current() -> None:
    current = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    assert current == render_language(current), "docs/language.md is stale: run `python -m fluo_lang.docs`"


def test_reference_lists_every_registry_entry() -> None:
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    for m in b.MEMBERS:
        shown = m.signature.split(".", 1)[1].replace("|", "\\|")  # table cells escape pipes
        assert f"`{shown}`" in text, m.signature
    for op in b.OPERATORS:
        assert f"`{op.symbol}`" in text


def test_diagnostic_codes_are_current() -> None:
    current = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    assert current == diagnostics_markdown(), "docs/diagnostics.md is stale: run `python -m fluo_lang.docs`"
