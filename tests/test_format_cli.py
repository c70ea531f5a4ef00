"""`fluo fmt`: rewrites in place, `--check` for CI, and leaves broken files alone."""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from reader_support import as_reader

from fluo_lang import files
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
    assert run("--check", "-", stdin=MESSY) == (1, "would reformat <stdin>\n", "")  # QA: it said nothing
    assert run("--check", "-", stdin=TIDY) == (0, "", "")


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


def test_file_names_are_printed_on_one_line_as_fluo_check_prints_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA fmt r01: `reformatted X`, `would reformat X`, `X has syntax errors` and `cannot read/rewrite X` printed
    the name raw (an ESC sequence, a newline splitting the line); a name that is not UTF-8 was a raw byte on
    stdout (`would reformat`) and `\\udcff` on stderr (`reformatted`). All are `one_line`, as `fluo check`'s."""
    monkeypatch.chdir(tmp_path)
    ugly, bad, odd = "ugly\x1b[2J\n.fluo", "bad\x1b]0;t\x07\n.fluo", os.fsdecode(b"n\xff.fluo")
    for name in (ugly, odd):
        Path(name).write_text(MESSY.replace("rule a", f"rule r{len(name)}"))
    Path(bad).write_text("rule b { expect trace.duration > ( }\n")
    shown = {n: n.replace("\x1b", "\\u001b").replace("\x07", "\\u0007").replace("\n", "\\n") for n in (ugly, bad)}
    shown[odd] = "n\\udcff.fluo"
    result = CliRunner().invoke(main, ["fmt", "--check", "."])
    assert result.exit_code == 2
    assert result.stdout_bytes.decode("utf-8").splitlines() == [f"would reformat {shown[n]}" for n in (odd, ugly)]
    assert f"fluo: {shown[bad]} has syntax errors; left unchanged\n" in result.stderr
    result = CliRunner().invoke(main, ["fmt", "."])
    assert result.exit_code == 2
    assert [line for line in result.stderr.splitlines() if line.startswith("reformatted")] == [
        f"reformatted {shown[n]}" for n in (odd, ugly)
    ]
    for output in (result.stdout_bytes, result.stderr_bytes):
        assert not set(output.decode("utf-8")) & {"\x1b", "\x07", "\udcff"}
    assert CliRunner().invoke(main, ["check", odd]).stdout == ""  # clean; broken, it names it as fmt does:
    Path(odd).write_text("rule x { expect ( }\n")
    assert CliRunner().invoke(main, ["check", odd]).stdout.startswith("n\\udcff.fluo:1:")


def test_a_fifo_or_a_file_past_the_size_limit_is_refused_as_fluo_check_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA fmt r02: fmt read with `read_bytes()` and `stdin.read()`: a FIFO blocked for ever, a 1 GiB file (or
    stdin) was a MemoryError traceback and exit 1 (`--check`'s "would reformat"). Now read as `fluo check` reads
    (`api.read_file`): not a regular file in one line, FLUO402 past the limit, exit 2 (the limit is made small)."""
    from fluo_lang import api

    fifo = tmp_path / "pipe\x1b[1m.fluo"  # its name escaped too
    os.mkfifo(fifo)
    for args in (["--check"], []):
        done = subprocess.run(
            [sys.executable, "-c", "from fluo_run.cli import main; main()", "fmt", *args, str(fifo)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr == (
            f"fluo: cannot read {tmp_path}/pipe\\u001b[1m.fluo: not a regular file\n0 of 1 file"
            f" {'would be reformatted' if args else 'reformatted'}; 1 could not be read\n"
        )
    monkeypatch.setattr(api, "_MAX_SOURCE_BYTES", 20)
    big = tmp_path / "big.fluo"
    big.write_text(MESSY)
    code, out, err = run("--check", str(big))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"{big}:1:1: error[FLUO402] file is larger than 4194304 bytes",
        f"fluo: {big} is too large to format; left unchanged",
        "0 of 1 file would be reformatted",
    ]
    assert run(str(big))[0] == 2 and big.read_text() == MESSY
    for args in (["-"], ["--check", "-"]):
        assert run(*args, stdin=MESSY) == (2, "", "<stdin>:1:1: error[FLUO402] file is larger than 4194304 bytes\n")


def test_the_line_saying_a_file_is_left_unchanged_says_why(tmp_path: Path) -> None:
    """It said "has syntax errors" for a file nested too deeply (FLUO400), and nothing for one not UTF-8."""
    deep, latin = tmp_path / "deep.fluo", tmp_path / "latin.fluo"
    deep.write_text("rule a {tags: " + "[" * 5_000 + "]" * 5_000 + " expect trace.spans.count() < 9}\n")
    latin.write_bytes(b"rule a {expect name == '\xe9'}\n")
    code, _, err = run(str(tmp_path))
    assert code == 2
    assert f"fluo: {deep} is nested too deeply to format; left unchanged\n" in err
    assert f"fluo: {latin} is not UTF-8; left unchanged\n" in err


def test_stdin_filename_names_the_rules_read_from_stdin(tmp_path: Path) -> None:
    """QA fmt (minor): `fluo check` has `--stdin-filename`, fmt did not (an editor pipes a buffer in); as the path
    itself would be, a name fmt does not format is refused."""
    assert run("--check", "-", "--stdin-filename", "r/a b.fluo", stdin=MESSY) == (1, "would reformat r/a b.fluo\n", "")
    assert run("-", "--stdin-filename", "r/a.fluo", stdin=MESSY) == (0, TIDY, "")
    code, out, err = run("-", "--stdin-filename", "r/a\x1b.fluo", stdin="rule a {expect (}\n")
    assert (code, out) == (2, "") and err.startswith("r/a\\u001b.fluo:1:17: error[FLUO100]")
    for name, why in [
        ("r/a.yaml", "r/a.yaml is YAML, not a .fluo file: name rule files, or folders to search (a rule test runs "
         "with `fluo test r/a.yaml`)"),
        ("a.txt", "a.txt is not a .fluo file: name rule files, or folders to search"),
    ]:  # fmt: skip
        assert run("-", "--stdin-filename", name, stdin=MESSY) == (2, "", f"fluo: --stdin-filename {why}\n")
    assert (
        run("-", "--stdin-filename", "", stdin=MESSY)[2]
        == "fluo: --stdin-filename: give a path, e.g. rules/auth.fluo\n"
    )
    (tmp_path / "a.fluo").write_text(MESSY)
    assert run(str(tmp_path), "--stdin-filename", "a.fluo") == (
        2, "", "fluo: --stdin-filename names the rules - reads from stdin; give - too\n"
    )  # fmt: skip
    assert (tmp_path / "a.fluo").read_text() == MESSY


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


def test_stdout_gets_the_formatted_bytes_themselves() -> None:
    """QA r02: `fluo fmt -` went through click.echo, which drops escape sequences when stdout is not a
    terminal (a string literal then matched something else), and encoded in stdout's encoding: a traceback
    on any character outside it (PYTHONIOENCODING=latin-1, a Windows cp1252 console)."""
    escaped = 'rule esc {\n  // colour \x1b[31mred\x1b[0m\n  detect trace.has(name == "\x1b[1mbold \U0001f600")\n}\n'
    for charset in ("utf-8", "latin-1", "ascii"):
        for text in (escaped, escaped.replace("\n", "\r\n"), "\ufeff" + escaped):
            result = CliRunner(charset=charset).invoke(main, ["fmt", "-"], input=text.encode("utf-8"), color=False)
            assert (result.exit_code, result.stdout_bytes) == (0, text.encode("utf-8")), charset


def test_a_file_that_cannot_be_written_is_one_line_and_the_others_are_formatted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA r04: a read-only file was a PermissionError traceback and exit 1, `--check`'s "would change".
    (Opening it for writing is refused here by hand: the tests may run as root, who may write anything.)"""
    locked, other = tmp_path / "a.fluo", tmp_path / "b.fluo"
    locked.write_text(MESSY)
    other.write_text(MESSY)
    real_open = os.open

    def refuse(path: Any, flags: int, *args: Any) -> int:
        if str(path) == str(locked) and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(files.os, "open", refuse)
    code, out, err = run(str(tmp_path))
    assert (code, out) == (2, "")
    assert err == (
        f"fluo: cannot rewrite {locked}: Permission denied; left unchanged (make it writable to format it, "
        f"or see what would change with --check)\nreformatted {other}\n1 of 2 files reformatted\n"
    )
    assert (locked.read_text(), other.read_text()) == (MESSY, TIDY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.fluo", "b.fluo"]


def test_a_write_that_fails_part_way_leaves_the_old_text_whole(tmp_path: Path) -> None:
    """QA r05: the file was truncated, then written: disk full (here a file size limit) left it cut short."""
    big = tmp_path / "big.fluo"
    text = "".join(f"rule r{i}{{expect trace.spans.count()<5}} // comment {i}\n" for i in range(60))
    big.write_text(text)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    done = subprocess.run(
        [sys.executable, "-c", "from fluo_run.cli import main; main()", "fmt", str(big)],
        capture_output=True, text=True, timeout=60, preexec_fn=limit, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == f"fluo: cannot rewrite {big}: File too large; left unchanged\n0 of 1 file reformatted\n"
    assert big.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["big.fluo"]


def test_a_rewrite_keeps_the_mode_a_symlink_and_hard_links(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "a.fluo"
    real.write_text(MESSY)
    real.chmod(0o640)
    link = tmp_path / "link.fluo"
    link.symlink_to(real)
    assert run(str(link))[0] == 0
    assert link.is_symlink() and real.read_text() == TIDY
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    linked = tmp_path / "linked.fluo"
    linked.write_text(MESSY)
    other_name = tmp_path / "other-name"
    os.link(linked, other_name)
    assert run(str(linked))[0] == 0
    assert linked.stat().st_nlink == 2 and other_name.read_text() == TIDY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.fluo", "linked.fluo", "other-name", "real"]


def test_a_hard_linked_file_whose_rewrite_fails_part_way_names_its_new_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file with other names is rewritten in place (so the names stay one file), only once its new text
    is whole in a file beside it; that file is kept, and named, if the rewrite then fails."""
    linked = tmp_path / "linked.fluo"
    linked.write_text(MESSY)
    os.link(linked, tmp_path / "other-name")

    def full(path: str, mode: str) -> Any:
        f = open(path, mode)  # noqa: SIM115
        f.write(b"rule a {")
        f.close()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "open", full, raising=False)
    code, _, err = run(str(linked))
    assert code == 2
    kept = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(kept) == 1 and kept[0].read_text() == TIDY
    assert err == (
        f"fluo: cannot rewrite {linked}: No space left on device; its new text is whole in {kept[0]}\n"
        "0 of 1 file reformatted\n"
    )


def test_a_file_in_a_folder_that_cannot_be_written_is_rewritten_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No new file can be made beside it: the new text goes to the temporary folder first, then into the file."""
    messy = tmp_path / "a.fluo"
    messy.write_text(MESSY)
    real_open = os.open
    made: list[str] = []

    def no_folder(path: str, flags: int, *args: Any) -> int:
        if flags & os.O_CREAT:  # a new file
            if os.path.dirname(path) == str(tmp_path):
                raise PermissionError(errno.EACCES, "Permission denied", path)
            made.append(path)
        return real_open(path, flags, *args)

    real_unlink = os.unlink
    modes: list[int] = []

    def unlink(path: str) -> None:
        modes.append(stat.S_IMODE(os.stat(path).st_mode))
        real_unlink(path)

    monkeypatch.setattr(files.os, "open", no_folder)
    monkeypatch.setattr(files.os, "unlink", unlink)
    assert run(str(messy))[0] == 0
    assert messy.read_text() == TIDY
    assert len(made) == 1 and not os.path.exists(made[0])
    assert modes == [0o600]  # the user's text, in a folder all share: readable by its owner only


def test_a_syntax_errors_related_location_is_a_note_under_it(tmp_path: Path) -> None:
    """As `fluo check` prints it: the rule left open is said where it ends, then where the next rule starts."""
    f = tmp_path / "open.fluo"
    f.write_text("rule a {\n  expect true\nrule b {\n  expect true\n}\n")
    code, _, err = run(str(f))
    assert code == 2
    assert err.splitlines()[:2] == [
        f"{f}:2:14: error[FLUO100] expected `}}` here, to close the rule before the next `rule`",
        f"  {f}:3:1: note: the next rule starts here",
    ]


def test_the_summary_says_how_many_files_could_not_be_read() -> None:
    """QA (errors, minor): `fmt --check` on a folder holding a file it may not read said "0 of 2 files would be
    reformatted", as if it had read both and found them formatted. The summary says the unread one apart now.
    As root, the command runs as `nobody`."""
    folder = Path(tempfile.mkdtemp(prefix="fluo-locked-"))
    secret, tidy = folder / "secret.fluo", folder / "tidy.fluo"
    secret.write_text(MESSY)
    tidy.write_text(TIDY)
    assert run("--check", str(tidy))[0] == 0  # what the command imports, imported while it can be read
    try:
        folder.chmod(0o755)
        secret.chmod(0)
        code, out, err = json.loads(as_reader(lambda: json.dumps(run("--check", str(folder)))))
    finally:
        secret.chmod(0o644)
        shutil.rmtree(folder)
    assert (code, out) == (2, "")
    assert (
        err
        == f"fluo: cannot read {secret}: Permission denied\n0 of 2 files would be reformatted; 1 could not be read\n"
    )
