"""`fluo_lang.files`: the files a command writes hold their old text or their new one, whole."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from limits_support import file_size_limit

from fluo_lang import files
from fluo_lang.files import NewFile, PartlyWritten, SameFile, make_folder, one_of, write_all


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_new_file_gets_the_umask_mode_and_a_replaced_one_keeps_its_own(tmp_path: Path) -> None:
    old = tmp_path / "old.txt"
    old.write_text("old", encoding="utf-8")
    old.chmod(0o640)
    umask = os.umask(0o027)
    try:
        write_all([NewFile(old, b"new old"), NewFile(tmp_path / "new.txt", b"new")])
    finally:
        os.umask(umask)
    assert old.read_bytes() == b"new old" and stat.S_IMODE(old.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640  # 0o666 less the umask
    assert names(tmp_path) == ["new.txt", "old.txt"]


def test_a_write_that_fails_changes_no_file_and_leaves_no_new_file_behind(tmp_path: Path) -> None:
    """`ulimit -f` (or a full disk) cut the second file short: the first, whole, must not take its place either."""
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    small.write_text("small", encoding="utf-8")
    big.write_text("big", encoding="utf-8")
    with file_size_limit(10_000), pytest.raises(OSError) as caught:
        write_all([NewFile(small, b"new small"), NewFile(big, b"x" * 20_000)])
    assert caught.value.errno == errno.EFBIG and caught.value.filename == str(big)
    assert small.read_text(encoding="utf-8") == "small" and big.read_text(encoding="utf-8") == "big"
    assert names(tmp_path) == ["big.txt", "small.txt"]


def test_a_link_is_written_through_unless_it_is_to_be_replaced(tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_text("old", encoding="utf-8")
    through, replaced = tmp_path / "through", tmp_path / "replaced"
    through.symlink_to(target.name)
    replaced.symlink_to(target.name)
    write_all([NewFile(through, b"through")])
    assert through.is_symlink() and target.read_text(encoding="utf-8") == "through"
    write_all([NewFile(replaced, b"replaced", replace_link=True)])
    assert not replaced.is_symlink() and replaced.read_text(encoding="utf-8") == "replaced"
    assert target.read_text(encoding="utf-8") == "through"


def test_a_folder_in_the_place_of_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError) as caught:
        write_all([NewFile(tmp_path / "out", b"text")])
    assert caught.value.filename == str(tmp_path / "out")
    assert names(tmp_path) == ["out"] and names(tmp_path / "out") == []


def test_a_rename_that_fails_after_others_says_which_were_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [tmp_path / f"{n}.txt" for n in "abc"]
    real = os.replace

    def replace(src: str, dst: str) -> None:
        if dst.endswith("b.txt"):
            raise OSError(errno.EBUSY, "Device or resource busy")
        real(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(PartlyWritten) as caught:
        write_all([NewFile(p, p.name.encode()) for p in paths])
    assert caught.value.written == [paths[0]] and caught.value.filename == str(paths[1])
    assert names(tmp_path) == ["a.txt"]  # b and c as they were (not there), and no new file left


def test_make_folder_says_what_is_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("", encoding="utf-8")
    with pytest.raises(NotADirectoryError) as caught:
        make_folder(tmp_path / "afile" / "sub")
    assert caught.value.strerror == f"{tmp_path / 'afile'} is not a folder"
    make_folder(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()


def test_one_of_finds_a_file_by_name_link_or_hard_link(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("a", encoding="utf-8")
    b.write_text("b", encoding="utf-8")
    (tmp_path / "link").symlink_to(b)
    (tmp_path / "hard").hardlink_to(b)
    for name in ("b", "link", "hard"):
        assert one_of(tmp_path / name, [a, b]) == b
    assert one_of(tmp_path / "missing", [a, b]) is None
    assert one_of(a, [b, tmp_path / "missing"]) is None


def test_a_pipe_is_written_as_it_is_not_replaced(tmp_path: Path) -> None:
    """QA rev r01, r02: a device or a pipe (`--junit-xml /dev/null`, `-o /dev/stdout`) was replaced by a new file
    (as root, the system's /dev/null), or, through /dev/fd, could not be written at all."""
    fifo, link = tmp_path / "fifo", tmp_path / "link"
    os.mkfifo(fifo)
    link.symlink_to(fifo.name)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    r, w = os.pipe()
    try:
        write_all([NewFile(fifo, b"fifo "), NewFile(Path(f"/dev/fd/{w}"), b"pipe")])
        write_all([NewFile(link, b"through a link")])
        assert os.read(reader, 100) == b"fifo through a link" and os.read(r, 100) == b"pipe"
    finally:
        for fd in (reader, r, w):
            os.close(fd)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and link.is_symlink()
    assert names(tmp_path) == ["fifo", "link"]


def test_two_names_of_one_file_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    """QA rev r03: `discover --tests T -o T/fixtures/x/x.json` wrote a fixture, then the rules over it."""
    (tmp_path / "real").mkdir()
    (tmp_path / "folder").symlink_to("real")
    (tmp_path / "a").write_text("a", encoding="utf-8")
    (tmp_path / "hard").hardlink_to(tmp_path / "a")
    pairs = [
        (tmp_path / "real" / "new", tmp_path / "folder" / "new"),  # not there yet, named through a linked folder
        (tmp_path / "a", tmp_path / "a"),
    ]
    for first, second in pairs:
        with pytest.raises(SameFile) as caught:
            write_all([NewFile(tmp_path / "other", b"other"), NewFile(first, b"1"), NewFile(second, b"2")])
        assert caught.value.paths == (first, second)
        assert names(tmp_path) == ["a", "folder", "hard", "real"] and names(tmp_path / "real") == []
        assert (tmp_path / "a").read_text(encoding="utf-8") == "a"


@pytest.mark.parametrize("name", ["/dev/fd/{fd}", "/proc/self/fd/{fd}", "link"])
def test_a_descriptor_redirected_to_a_file_is_written_through_not_replaced(tmp_path: Path, name: str) -> None:
    """QA rev2 r11: `--junit-xml /dev/stdout >> log` replaced the log (the path resolves to it): its old text was
    lost and fluo's own report went to a file no longer named."""
    log = tmp_path / "log"
    log.write_bytes(b"before\n")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    (tmp_path / "link").symlink_to(f"/dev/fd/{fd}")
    inode = log.stat().st_ino
    try:
        path = tmp_path / name if name == "link" else Path(name.format(fd=fd))
        write_all([NewFile(path, b"written\n")])
        os.write(fd, b"after\n")
    finally:
        os.close(fd)
    assert log.stat().st_ino == inode and log.read_bytes() == b"before\nwritten\nafter\n"
    assert names(tmp_path) == ["link", "log"]


def test_a_staged_file_has_its_mode_while_its_text_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA rev2 r12: the staged copy of a 0600 file was 0644 until its whole text was written, readable by others."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"old")
    secret.chmod(0o600)
    modes: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        modes.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    umask = os.umask(0o022)
    try:
        write_all([NewFile(secret, b"new")])
        files.write_replacing(secret, b"newer")
    finally:
        os.umask(umask)
    assert modes == [0o600, 0o600]
    assert secret.read_bytes() == b"newer" and stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_hard_links_of_one_file_are_each_replaced_and_same_file_can_tell_them(tmp_path: Path) -> None:
    """QA rev2 r13: fixtures that are hard links of one file (`cp -al`) stopped a `discover --tests` re-run."""
    a, hard = tmp_path / "a", tmp_path / "hard"
    a.write_text("a", encoding="utf-8")
    hard.hardlink_to(a)
    pair = [NewFile(a, b"1"), NewFile(hard, b"2")]
    assert files.same_file(pair) == (a, hard)
    assert files.same_file(pair, hard_links=False) is None
    write_all(pair)
    assert a.read_bytes() == b"1" and hard.read_bytes() == b"2"
