"""`folders.walk`, the one search below a folder that rule, test and trace files and the editor's workspace share."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pytest
from reader_support import as_reader

from fluo_lang import folders
from fluo_lang.api import stamp
from fluo_lang.folders import Listings, walk


def names(found: Iterable[Path], top: Path) -> list[str]:
    return [p.relative_to(top).as_posix() for p in found]


def every(name: str) -> bool:
    return True


def test_files_come_in_path_order_whatever_order_they_were_made_in(tmp_path: Path) -> None:
    """A folder's contents in its place among the names beside it (`a/b` before `a-c`, as `sorted` orders paths;
    `fluo test` listed a folder's own files before its subfolders' until it took this walk)."""
    made = ["z.fluo", "a-c.fluo", "B.fluo", "a/z.fluo", "a/b/c.fluo", "a/a.fluo", "ab.fluo", "b/a.fluo"]
    for name in reversed(made):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    found = list(walk(tmp_path, every))
    assert found == sorted(tmp_path / n for n in made)
    assert names(found, tmp_path) == [
        "B.fluo",
        "a/a.fluo",
        "a/b/c.fluo",
        "a/z.fluo",
        "a-c.fluo",
        "ab.fluo",
        "b/a.fluo",
        "z.fluo",
    ]


def test_hidden_names_and_skipped_folders_are_passed_over(tmp_path: Path) -> None:
    for name in (".git/x.fluo", "._x.fluo", ".#lock.fluo", "node_modules/m.fluo", "__pycache__/p.fluo", "src/.h.fluo"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "src" / "r.fluo").write_text("")
    (tmp_path / "notes.txt").write_text("")
    assert names(walk(tmp_path, lambda n: n.endswith(".fluo")), tmp_path) == ["src/r.fluo"]
    entered = walk(tmp_path, every, enter=lambda n: n != "src")
    assert names(entered, tmp_path) == ["__pycache__/p.fluo", "node_modules/m.fluo", "notes.txt"]


def test_virtualenvs_and_site_packages_are_passed_over_below_the_folder_named(tmp_path: Path) -> None:
    """QA newuser r04: `python -m venv venv; pip install .` puts FLUO's example rules and tests in
    `venv/lib/.../site-packages` as real files, and `fluo check .` said FLUO213 for a copied `payments.fluo`.
    A folder holding `pyvenv.cfg` is a virtualenv whatever its name; named itself, it is searched."""
    for name in ("venv/pyvenv.cfg", "venv/lib/site-packages/p.fluo", "env/pyvenv.cfg", "env/e.fluo"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    for name in ("vendor/site-packages/s.fluo", "rules/r.fluo", "rules/pyvenv.cfg/x.fluo"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    fluo = walk(tmp_path, lambda n: n.endswith(".fluo"))
    assert names(fluo, tmp_path) == ["rules/pyvenv.cfg/x.fluo", "rules/r.fluo"]  # a folder named so marks nothing
    assert names(walk(tmp_path / "env", every), tmp_path) == ["env/e.fluo", "env/pyvenv.cfg"]


def test_folders_come_before_what_they_hold_when_asked_for(tmp_path: Path) -> None:
    for name in ("a/b/c.fluo", "a/d.fluo", ".h/e.fluo"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert list(walk(tmp_path, every, folders=True)) == [
        tmp_path,
        tmp_path / "a",
        tmp_path / "a" / "b",
        tmp_path / "a" / "b" / "c.fluo",
        tmp_path / "a" / "d.fluo",
    ]


def test_links_to_folders_are_not_entered_so_link_loops_end(tmp_path: Path) -> None:
    """A link to its own folder, to a folder above, to itself (ELOOP when followed) and to nothing: the walk ends,
    a link to a folder is neither entered nor a name, and the others are names for the caller's `is_file`."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "r.fluo").write_text("")
    (tmp_path / "a" / "here").symlink_to(".")
    (tmp_path / "a" / "up").symlink_to("..")
    (tmp_path / "self.fluo").symlink_to("self.fluo")
    (tmp_path / "gone.fluo").symlink_to("missing.fluo")
    (tmp_path / "to_r.fluo").symlink_to("a/r.fluo")
    found = list(walk(tmp_path, every))
    assert names(found, tmp_path) == ["a/r.fluo", "gone.fluo", "self.fluo", "to_r.fluo"]
    assert [p.name for p in found if p.is_file()] == ["r.fluo", "to_r.fluo"]


def test_a_linked_folder_named_is_searched_under_its_own_name(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "r.fluo").write_text("")
    (tmp_path / "link").symlink_to("real")
    assert list(walk(tmp_path / "link", every)) == [tmp_path / "link" / "r.fluo"]


def test_a_folder_that_cannot_be_read_is_its_error_or_passed_over() -> None:
    """By default the PermissionError naming the folder (a check must not pass on files it never read); with
    `unreadable=None` (the editor, `--watch`) the rest is still found. As root, the walks run as `nobody`."""
    folder = Path(tempfile.mkdtemp(prefix="fluo-walk-"))
    try:
        for name in ("a.fluo", "locked/b.fluo", "z/c.fluo"):
            (folder / name).parent.mkdir(exist_ok=True)
            (folder / name).write_text("")
        folder.chmod(0o755)
        (folder / "locked").chmod(0)

        def outcome() -> str:
            passed_over = names(walk(folder, every, unreadable=None), folder)
            try:
                list(walk(folder, every))
            except PermissionError as exc:
                return json.dumps([passed_over, exc.filename])
            return json.dumps([passed_over, None])

        assert json.loads(as_reader(outcome)) == [["a.fluo", "z/c.fluo"], str(folder / "locked")]
    finally:
        (folder / "locked").chmod(0o755)
        shutil.rmtree(folder)


def test_a_folder_named_that_cannot_be_listed_is_its_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(walk(tmp_path / "missing", every))
    assert list(walk(tmp_path / "missing", every, unreadable=None, folders=True)) == []


def test_the_walk_is_lazy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The editor stops at its budget: folders past the files it took are never listed."""
    for name in ("a/r.fluo", "b/s.fluo"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    listed: list[str] = []
    scandir = os.scandir

    def counting(path: Path) -> object:
        listed.append(Path(path).name)
        return scandir(path)

    monkeypatch.setattr("fluo_lang.folders.os.scandir", counting)
    assert next(walk(tmp_path, every)) == tmp_path / "a" / "r.fluo"
    assert listed == [tmp_path.name, "a"]


def _counting_listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folders listed from now on (`os.scandir`'s), in order."""
    listed: list[str] = []
    real = folders._list

    def counted(folder: str) -> folders.Listing:
        listed.append(folder)
        return real(folder)

    monkeypatch.setattr(folders, "_list", counted)
    return listed


def test_kept_listings_list_again_only_the_folders_that_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA watch r04: each `--watch` poll listed every folder below the paths (15% of a core, idle, with 3,000
    folders). With `Listings`, a poll lists again only a folder whose stamp changed (a name added, removed or
    renamed in it), and finds what a search from scratch finds."""
    monkeypatch.setattr(folders, "RACY_NS", -1)  # the folders made just now are kept too
    for sub in ("a/x", "a/y", "b"):
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / "r_test.yaml").write_text("")
        (tmp_path / sub / "other.py").write_text("")
    (tmp_path / "a" / "y" / "venv").mkdir()
    (tmp_path / "a" / "y" / "venv" / "pyvenv.cfg").write_text("")
    listings = Listings(stamp)
    listed = _counting_listings(monkeypatch)

    def search() -> list[Path]:
        """The search with `listings` (`listed`: the folders it listed), checked against one from scratch."""
        fresh = list(walk(tmp_path, lambda n: n.endswith("_test.yaml"), folders=True))
        listed.clear()
        found = list(walk(tmp_path, lambda n: n.endswith("_test.yaml"), folders=True, listings=listings))
        listings.searched()
        assert found == fresh
        return found

    first = search()
    assert len(first) == 8  # the top and 4 folders below (not the virtualenv), 3 test files
    assert search() == first
    assert listed == []  # nothing changed: nothing listed again
    (tmp_path / "a" / "x" / "new_test.yaml").write_text("")
    (tmp_path / "b" / "r_test.yaml").write_text("edited in place")  # its folder does not change
    shutil.rmtree(tmp_path / "a" / "y")
    found = search()
    assert tmp_path / "a" / "x" / "new_test.yaml" in found and tmp_path / "a" / "y" not in found
    assert sorted(listed) == sorted([str(tmp_path / "a"), str(tmp_path / "a" / "x")])
    assert set(listings.kept) == {str(tmp_path), str(tmp_path / "a"), str(tmp_path / "a" / "x"), str(tmp_path / "b")}


def test_a_folder_changed_within_a_clock_tick_is_listed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a file system with a coarse clock a folder changed twice within one tick keeps one stamp: a listing
    taken less than `RACY_NS` after the folder's last change is not kept, so the second change is not missed."""
    (tmp_path / "r_test.yaml").write_text("")
    listings = Listings(stamp)
    listed = _counting_listings(monkeypatch)
    for _ in range(2):
        assert list(walk(tmp_path, every, listings=listings)) == [tmp_path / "r_test.yaml"]
        listings.searched()
    assert listed == [str(tmp_path)] * 2
    assert listings.kept == {}
