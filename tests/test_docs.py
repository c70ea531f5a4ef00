"""The reference docs are generated from the registries; stale docs fail here."""

from __future__ import annotations

import re

import yaml
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


def test_the_test_file_shown_in_testing_md_is_part_of_the_example() -> None:
    """docs/testing.md shows cases of examples/rules/auth_test.yaml: each must be one of that file's, as written."""
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    found = re.search(r"```yaml\n(# (\w+) of the (\w+) cases of (examples/[\w/.]+\.yaml)[^\n]*\n.*?)```", text, re.S)
    assert found, "the first test file shown no longer says which example it comes from"
    shown = yaml.safe_load(found.group(1))
    real = yaml.safe_load((ROOT / found.group(4)).read_text(encoding="utf-8"))
    assert shown["rules"] == real["rules"]
    assert all(case in real["cases"] for case in shown["cases"])
    words = ["one", "two", "three", "four", "five", "six"]
    assert (found.group(2), found.group(3)) == (words[len(shown["cases"]) - 1], words[len(real["cases"]) - 1])
