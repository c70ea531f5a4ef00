"""The rule watcher of `fluo serve`: a change is reloaded once the files have settled."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
from serve_support import config, wait_for

from fluo_run.serve import runtime
from fluo_run.serve.rules import RuleWatcher


def _touch(f: Path, text: str, mtime_ns: int) -> None:
    f.write_text(text, encoding="utf-8")
    os.utime(f, ns=(mtime_ns, mtime_ns))


def test_a_change_counts_once_the_files_stay_the_same_for_a_poll(tmp_path: Path) -> None:
    f = tmp_path / "main.fluo"
    _touch(f, "rule a { expect trace.spans.count() < 5 }\n", 1_000_000_000)
    watcher = RuleWatcher([tmp_path])
    assert not watcher.changed()

    _touch(f, "", 2_000_000_000)  # an editor truncated the file; its write is not done yet
    assert not watcher.changed()
    _touch(f, "rule b { expect trace.spans.count() < 9 }\n", 3_000_000_000)
    assert not watcher.changed()  # still moving
    assert watcher.changed()  # the same as at the last poll: settled, reload once
    assert not watcher.changed()


def test_a_new_file_and_a_removed_file_are_changes(tmp_path: Path) -> None:
    (tmp_path / "a.fluo").write_text("rule a { expect trace.spans.count() < 5 }\n")
    watcher = RuleWatcher([tmp_path])
    extra = tmp_path / "b.fluo"
    extra.write_text("rule b { expect trace.spans.count() < 5 }\n")
    assert [watcher.changed(), watcher.changed()] == [False, True]
    extra.unlink()
    assert [watcher.changed(), watcher.changed()] == [False, True]


def test_a_file_replaced_with_its_mtime_and_size_kept_is_a_change(tmp_path: Path) -> None:
    """The watcher compared mtime and size alone: a rule file replaced by one with both the same (`rsync -t`,
    `cp -p`, a save through rename) was never reloaded."""
    f = tmp_path / "main.fluo"
    _touch(f, "rule a { expect trace.spans.count() < 5 }\n", 1_000_000_000)
    watcher = RuleWatcher([tmp_path])
    new = tmp_path / "new.tmp"
    _touch(new, "rule a { expect trace.spans.count() < 6 }\n", 1_000_000_000)
    os.replace(new, f)
    assert [watcher.changed(), watcher.changed()] == [False, True]


def test_accept_current_takes_the_files_as_loaded(tmp_path: Path) -> None:
    f = tmp_path / "main.fluo"
    _touch(f, "rule a { expect trace.spans.count() < 5 }\n", 1_000_000_000)
    watcher = RuleWatcher([tmp_path])
    _touch(f, "rule a { expect trace.spans.count() < 6 }\n", 2_000_000_000)
    watcher.accept_current()  # a SIGHUP reload just read them
    assert [watcher.changed(), watcher.changed()] == [False, False]


def test_an_edit_while_serve_starts_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: the watcher took the files' state only after the rules were read, the remembered trace ids
    restored and the sinks opened: an edit in between counted as loaded, and the old rules ran (no log
    line, /healthz `rules` unchanged) until the next edit. The edit is made here in that gap."""
    rules = tmp_path / "rules"
    rules.mkdir()
    f = rules / "main.fluo"
    f.write_text("rule a { expect trace.spans.count() < 5 }\n")
    restore = runtime.Runtime._restore_remembered

    def edit_then_restore(self: runtime.Runtime) -> None:
        f.write_text("rule a { expect trace.spans.count() < 5 }\nrule b { expect trace.spans.count() < 9 }\n")
        restore(self)

    monkeypatch.setattr(runtime.Runtime, "_restore_remembered", edit_then_restore)
    with runtime.RuntimeThread(config(tmp_path, rules=[rules], reload_interval=0.05)) as rt:
        assert len(rt.runtime.evaluator.program.rules) == 1  # read before the edit
        wait_for(lambda: len(rt.runtime.evaluator.program.rules) == 2, timeout=5, what="the edit to be loaded")


def test_a_rule_file_that_defines_no_rule_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """QA: a rule file left empty past two reload intervals was loaded with 0 rules, and only an info line
    ("rules reloaded: 0 per-trace rules") said so."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.fluo").write_text("rule a { expect trace.spans.count() < 5 }\n")
    (rules / "b.fluo").write_text("// nothing yet\n")
    caplog.set_level(logging.INFO, logger="fluo.serve")
    with runtime.RuntimeThread(config(tmp_path, rules=[rules])) as rt:
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warned == [f"rules: {rules / 'b.fluo'} defines no rule (it is empty or only comments); loaded so"]
        (rules / "a.fluo").write_text("")
        assert asyncio.run_coroutine_threadsafe(rt.runtime.reload(), rt.loop).result(10)
        assert len(rt.runtime.rule_set.program.rules) == 0  # the evaluator takes it up from its next trace on
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"rules: {rules / 'a.fluo'} defines no rule (it is empty or only comments); loaded so" in warned[1:]
