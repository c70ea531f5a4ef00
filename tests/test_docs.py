"""The reference docs are generated from the registries; stale docs fail here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from tests_paths import ROOT

from fluo_lang import builtins as b
from fluo_lang.docs import diagnostics_markdown, main, render_language


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


def test_the_generator_checks_writes_and_explains_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    language = tmp_path / "language.md"
    language.write_text((ROOT / "docs" / "language.md").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "diagnostics.md").write_text("old\n", encoding="utf-8")
    with pytest.raises(SystemExit) as help_exit:
        main(["--help"], docs=tmp_path)
    assert help_exit.value.code == 0 and "--check" in capsys.readouterr().out
    assert (tmp_path / "diagnostics.md").read_text(encoding="utf-8") == "old\n"  # --help writes nothing
    assert main(["--check"], docs=tmp_path) == 1
    assert capsys.readouterr().out == f"stale: {tmp_path / 'diagnostics.md'} (run `python -m fluo_lang.docs`)\n"
    assert (tmp_path / "diagnostics.md").read_text(encoding="utf-8") == "old\n"
    assert main([], docs=tmp_path) == 0
    assert (tmp_path / "diagnostics.md").read_text(encoding="utf-8") == diagnostics_markdown()
    assert main(["--check"], docs=tmp_path) == 0
    language.write_text("no markers\n", encoding="utf-8")
    assert main(["--check"], docs=tmp_path) == 2
    assert "lacks the generated-section markers" in capsys.readouterr().err
