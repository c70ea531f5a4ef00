"""What `fluo serve` keeps across a clean restart: the ids of evaluated traces, for late spans."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fluo_run.serve.assembly import RememberedIds
from fluo_run.serve.state import MAGIC, StateError, load_remembered, remembered_path, save_remembered


def ids(first: int, n: int) -> list[bytes]:
    return [i.to_bytes(16, "big") for i in range(first, first + n)]


def remembered(now: float) -> RememberedIds:
    """Ids 0-9 completed 100 s before `now`, 10-19 10 s before, 20-24 not stamped yet."""
    done = RememberedIds()
    for stamp, batch in ((now - 100, ids(0, 10)), (now - 10, ids(10, 10))):
        for i in batch:
            done.add(i)
        done.forget(stamp, stamp - 1000, 1000)
    for i in ids(20, 5):
        done.add(i)
    return done


def test_ids_within_the_memory_come_back_oldest_first_with_their_age(tmp_path: Path) -> None:
    path = remembered_path(tmp_path / "fluo-signals.db")
    assert path == tmp_path / "fluo-signals.db.trace-ids"
    now = time.monotonic()
    assert save_remembered(path, remembered(now), now) == 25
    later = now + 1000.0  # another process's monotonic clock
    batches = load_remembered(path, later, memory=300.0, limit=1000)
    assert [b for _, b in batches] == [ids(0, 10), ids(10, 10), ids(20, 5)]
    ages = [later - stamp for stamp, _ in batches]
    assert ages == pytest.approx([100.0, 10.0, 0.0], abs=0.5)
    assert [b for _, b in load_remembered(path, later, memory=50.0, limit=1000)] == [ids(10, 10), ids(20, 5)]
    assert [b for _, b in load_remembered(path, later, memory=300.0, limit=7)] == [ids(18, 2), ids(20, 5)]
    done = RememberedIds()
    done.add(ids(99, 1)[0])
    done.restore(load_remembered(path, later, memory=300.0, limit=1000))
    assert len(done) == 26
    done.forget(later, later - 50.0, 1000)  # the restored ones are older: forgotten first
    assert done.ids == set(ids(10, 15)) | set(ids(99, 1))


def test_no_file_is_nothing_and_a_foreign_one_is_said(tmp_path: Path) -> None:
    assert load_remembered(tmp_path / "none", 0.0, 300.0, 10) == []
    (tmp_path / "junk").write_bytes(b"hello")
    with pytest.raises(StateError, match="is not a file of remembered trace ids"):
        load_remembered(tmp_path / "junk", 0.0, 300.0, 10)
    (tmp_path / "cut").write_bytes(MAGIC + (3).to_bytes(8, "little") + b"\0" * 30)
    with pytest.raises(StateError, match="cut short or too long for its 3 trace ids"):
        load_remembered(tmp_path / "cut", 0.0, 300.0, 10)


def test_a_link_planted_at_the_part_file_is_replaced_not_written_through(tmp_path: Path) -> None:
    """Security (with r06): the ids were written to `s.db.trace-ids.part` opened following a symlink (and
    truncating a hard link's file): a link planted there had serve overwrite the file it names. The part file is
    made anew, readable by its owner only, and the file the link named is left alone."""
    path = remembered_path(tmp_path / "s.db")
    victim = tmp_path / "victim"
    victim.write_text("important contents\n")
    part = path.with_name(path.name + ".part")
    part.symlink_to(victim)
    now = time.monotonic()
    assert save_remembered(path, remembered(now), now) == 25
    assert victim.read_text() == "important contents\n"
    assert not part.exists() and not path.is_symlink()
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(load_remembered(path, now, memory=300.0, limit=1000)) == 3
