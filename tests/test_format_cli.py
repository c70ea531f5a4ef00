"""`fluo fmt`: rewrites in place, `--check` for CI, and leaves broken files alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fluo_run.cli import main

MESSY = "rule a {expect trace.spans.count()<9}\n"
TIDY = "rule a {\n  expect trace.spans.count() < 9\n}\n"


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["fmt", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_formats_in_place_and_then_checks_clean(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    messy = tmp_path / "sub" / "a.fluo"
    messy.write_text(MESSY)
    tidy = tmp_path / "b.fluo"
    tidy.write_text(TIDY.replace("rule a", "rule b"))
    code, out, err = run("--check", str(tmp_path))
    assert (code, out) == (1, f"would reformat {messy}\n")
    assert messy.read_text() == MESSY
    assert "1 of 2 files would be reformatted" in err
    code, _, err = run(str(tmp_path))
    assert code == 0
    assert f"reformatted {messy}" in err
    assert messy.read_text() == TIDY
    assert run("--check", str(tmp_path))[0] == 0


def test_crlf_files_stay_crlf(tmp_path: Path) -> None:
    """A Windows checkout (core.autocrlf) passes `--check` when formatted, and is rewritten CRLF (QA L6)."""
    tidy = tmp_path / "tidy.fluo"
    tidy.write_bytes(TIDY.replace("\n", "\r\n").encode())
    assert run("--check", str(tidy))[0] == 0
    messy = tmp_path / "messy.fluo"
    messy.write_bytes(b"rule a {expect trace.spans.count()<9}\r\n// c\r\n")
    assert run(str(messy))[0] == 0
    assert messy.read_bytes() == (TIDY + "// c\n").replace("\n", "\r\n").encode()


def test_syntax_errors_leave_the_file_and_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.fluo"
    broken.write_text("rule a {expect trace.spans.count(<9}\n")
    code, _, err = run(str(broken))
    assert code == 2
    assert f"{broken}:1:" in err and "error[FLUO100]" in err
    assert broken.read_text() == "rule a {expect trace.spans.count(<9}\n"


def test_metadata_nested_too_deeply_leaves_the_file_and_exits_2(tmp_path: Path) -> None:
    deep = tmp_path / "deep.fluo"
    text = "rule a {tags: " + "[" * 5_000 + "]" * 5_000 + " expect trace.spans.count() < 9}\n"
    deep.write_text(text)
    code, _, err = run(str(deep))
    assert code == 2
    assert f"{deep}:1:15: error[FLUO400] metadata list nested 5000 levels deep" in err
    assert deep.read_text() == text


def test_stdin_to_stdout() -> None:
    assert run("-", stdin=MESSY) == (0, TIDY, "")
    assert run("--check", "-", stdin=MESSY)[0] == 1
    assert run("--check", "-", stdin=TIDY)[0] == 0


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "missing.fluo"))
    assert code == 2
    assert err.strip() == f"fluo: {tmp_path / 'missing.fluo'}: no such file or folder"
    assert run()[0] == 2


def test_a_byte_order_mark_is_read_and_kept(tmp_path: Path) -> None:
    """As Format Document in the server keeps it, and `--check` passes a formatted file that has one (editor
    tour: a rewrite, and `fluo fmt -`, dropped it, so the CLI and the editor disagreed on the same file)."""
    tidy, messy = tmp_path / "tidy.fluo", tmp_path / "messy.fluo"
    tidy.write_bytes(b"\xef\xbb\xbf" + TIDY.encode())
    messy.write_bytes(b"\xef\xbb\xbf" + MESSY.replace("rule a", "rule b").encode())
    code, out, _ = run("--check", str(tidy), str(messy))
    assert (code, out) == (1, f"would reformat {messy}\n")
    assert run(str(tmp_path))[0] == 0
    assert tidy.read_bytes() == b"\xef\xbb\xbf" + TIDY.encode()  # already formatted: not rewritten
    assert messy.read_bytes() == b"\xef\xbb\xbf" + TIDY.replace("rule a", "rule b").encode()
    result = CliRunner().invoke(main, ["fmt", "-"], input=b"\xef\xbb\xbf" + MESSY.encode())
    assert (result.exit_code, result.stdout_bytes) == (0, b"\xef\xbb\xbf" + TIDY.encode())
    result = CliRunner().invoke(main, ["fmt", "--check", "-"], input=b"\xef\xbb\xbf" + TIDY.encode())
    assert result.exit_code == 0


def test_text_that_is_not_utf8_is_one_diagnostic(tmp_path: Path) -> None:
    latin = tmp_path / "latin.fluo"
    latin.write_bytes(b"rule a {expect name == '\xe9'}\n")
    code, _, err = run(str(latin))
    assert code == 2
    assert err.startswith(f"{latin}:1:25: error[FLUO106] not UTF-8: byte 0xe9 at line 1, column 25;")
    result = CliRunner().invoke(main, ["fmt", "-"], input=b"\xff" + MESSY.encode())
    assert result.exit_code == 2
    assert result.stderr == "<stdin>:1:1: error[FLUO106] not UTF-8: byte 0xff at line 1, column 1; save it as UTF-8\n"


def test_a_file_that_is_not_a_rule_file_is_refused_before_anything_is_done(tmp_path: Path) -> None:
    """`fluo fmt --check auth_test.yaml` parsed the YAML as rules and printed FLUO100 syntax errors."""
    test = tmp_path / "auth_test.yaml"
    test.write_text("cases:\n  - name: a\n    expect: []\n")
    messy = tmp_path / "a.fluo"
    messy.write_text(MESSY)
    for args in (["--check", str(test)], [str(messy), str(test)]):
        code, out, err = run(*args)
        assert code == 2 and out == ""
        assert err == (
            f"fluo: {test} is YAML, not a .fluo file: name rule files, or folders to search "
            f"(a rule test runs with `fluo test {test}`)\n"
        )
    odd = tmp_path / "a.rules"  # `fluo check` reads it; fmt, which rewrites what it is given, does not
    odd.write_text(MESSY)
    assert run(str(odd)) == (2, "", f"fluo: {odd} is not a .fluo file: name rule files, or folders to search\n")
    assert odd.read_text() == MESSY
    assert messy.read_text() == MESSY
    assert run(str(tmp_path))[0] == 0  # in a folder, only .fluo files are looked at
    assert messy.read_text() == TIDY


def test_an_empty_path_rewrites_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: `fluo fmt "$RULES"` with the variable unset reformatted every rule file under the current folder."""
    messy = tmp_path / "a.fluo"
    messy.write_text(MESSY)
    monkeypatch.chdir(tmp_path)
    code, _, err = run("")
    assert code == 2
    assert err == "fluo: an empty path names no file or folder to rewrite; give `.` for the current folder\n"
    assert messy.read_text() == MESSY
    assert run("--check", "")[0] == 1  # only reads: '' is the current folder, as `.`
    assert run(".")[0] == 0 and messy.read_text() == TIDY
