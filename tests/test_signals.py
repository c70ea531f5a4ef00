"""`fluo signals`: listing and filtering what `fluo serve` stored."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from reader_support import as_reader
from tests_paths import EXAMPLE_TRACES

from fluo_run.cli import main
from fluo_run.demo import _signal_line as demo_line
from fluo_run.serve import cli as serve_cli
from fluo_run.serve.store import APPLICATION_ID, SCHEMA_VERSION, SignalFilter, SignalStore, parse_time


def signal(rule: str, severity: str, time: str, trace: str | None, message: str) -> dict[str, Any]:
    s: dict[str, Any] = {"rule": rule, "severity": severity, "message": message}
    if trace:
        s["trace_id"] = trace
    else:
        s["window_start"], s["window_end"] = "2026-01-01T00:00:00.000000Z", "2026-01-01T00:01:00.000000Z"
    s.update(span_ids=["00f067aa0ba902b7"], observed={"count": 7, "bound": 5}, time=time)
    return s


SIGNALS = [
    signal("auth_span_budget", "warning", "2026-01-01T00:00:10.000000Z", "a" * 32, "count = 7, bound = 5"),
    signal("auth_retry_storm", "critical", "2026-01-01T00:00:20.000000Z", "a" * 32, "count = 61, bound = 50"),
    signal("charge_needs_fraud_check", "error", "2026-01-01T00:00:30.000000Z", "b" * 32, "no fraud check"),
    signal("auth_login_rate", "warning", "2026-01-01T00:01:00.000000Z", None, "count = 301, bound = 300"),
]


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "fluo-signals.db"
    store = SignalStore(path)
    store.add(SIGNALS)
    store.close()
    return str(path)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["signals", *args])
    return result.exit_code, result.output


def rules_of(output: str) -> list[str]:
    return [json.loads(line)["rule"] for line in output.splitlines()]


def test_table(db: str, snapshot: Any) -> None:
    code, out = run("--db", db)
    assert code == 0
    assert out == snapshot


def test_the_table_marks_the_signals_of_a_window_seen_in_part(tmp_path: Path) -> None:
    """QA: a restart inside a window gave two rows for it that read alike but for their count; the table did
    not show `partial`, which says each is the signal of the part of the window serve was running."""
    before, after = (signal("auth_login_rate", "warning", "2026-01-01T00:01:00.000000Z", None, m) for m in "ab")
    overnight = signal("auth_login_rate", "warning", "2026-01-01T00:00:00.000000Z", None, "c")
    before.update(partial=True, partial_reasons=["closed_early"])
    before.update(observed_start="2026-01-01T00:00:00.000000000Z", observed_end="2026-01-01T00:00:20.500000000Z")
    after.update(partial=True, partial_reasons=["started_before_serve"])
    after.update(observed_start="2026-01-01T00:00:31.000000000Z", observed_end="2026-01-01T00:01:00.000000000Z")
    overnight.update(window_start="2025-12-31T23:59:00.000000Z", window_end="2026-01-01T00:00:00.000000Z")
    overnight.update(partial=True, partial_reasons=["started_before_serve"])
    overnight.update(observed_start="2025-12-31T23:59:30.000000000Z", observed_end="2026-01-01T00:00:00.000000000Z")
    db = str(tmp_path / "s.db")
    store = SignalStore(Path(db))
    store.add([before, after, overnight])
    store.close()
    code, out = run("--db", db)
    assert code == 0
    assert [line.split("  ")[-1] for line in out.splitlines()[1:]] == [
        "(partial: seen 23:59:30..2026-01-01 00:00:00) c",  # the window's day, then the next
        "(partial: seen 00:00:00..00:00:20) a",
        "(partial: seen 00:00:31..00:01:00) b",
    ]


def test_no_match_says_traces_are_evaluated_trace_idle_after_their_last_span(db: str) -> None:
    """QA new-user tour: `fluo signals` right after the app exited said only "no signals match", while the
    trace was still waiting out --trace-idle."""
    code, out = run("--db", db, "--rule", "no_such_rule")
    assert code == 0
    assert out.splitlines()[0] == (
        "no signals match (fluo serve evaluates a trace --trace-idle, 5s by default, after its last span: "
        "one that just ended may not be stored yet)"
    )


def test_no_match_says_what_the_store_holds_that_the_options_left_out(db: str, tmp_path: Path) -> None:
    """QA soak tour: `fluo signals --severity error --since 1h` on a store of millions of info signals said only
    that traces are evaluated --trace-idle after their last span; `--rule` with a typo said the same."""
    assert run("--db", db, "--rule", "auth_retry_strom")[1].splitlines()[1:] == [
        "fluo: the store holds 4 signals, none of rule `auth_retry_strom` (did you mean `auth_retry_storm`?)"
    ]
    _, out = run("--db", db, "--rule", "auth_span_budget", "--rule", "nope", "--since", "2027-01-01T00:00:00Z")
    assert out.splitlines()[1:] == ["fluo: the store holds 4 signals, none of rule `nope`"]
    _, out = run("--db", db, "--severity", "critical", "--since", "2026-01-01T00:00:30Z")
    assert out.splitlines()[1:] == [
        "fluo: the store holds 4 signals, none matching --severity critical --since 2026-01-01T00:00:30Z"
    ]
    empty = tmp_path / "empty.db"
    SignalStore(empty).close()
    assert run("--db", str(empty), "--severity", "critical")[1].count("\n") == 1  # an empty store: nothing to add


def test_jsonl_round_trips_the_signal(db: str) -> None:
    code, out = run("--db", db, "--format", "jsonl")
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == SIGNALS


def test_jsonl_lines_are_the_signals_as_fluo_eval_prints_them(tmp_path: Path) -> None:
    # Written straight from the store's text: it must be the same line `json.dumps` gives, non-ASCII kept.
    many = [signal("r", "info", f"2026-01-01T00:00:{i % 60:02d}.{i:06d}Z", "c" * 32, f"é {i}") for i in range(25_000)]
    store = SignalStore(tmp_path / "s.db")
    store.add(many)
    store.close()
    code, out = run("--db", str(tmp_path / "s.db"), "--format", "jsonl", "--limit", "100000")
    assert code == 0
    expected = sorted(many, key=lambda s: s["time"])
    assert out == "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in expected)


def test_the_table_escapes_control_characters_as_fluo_eval_text_does(tmp_path: Path) -> None:
    """QA docs 08: a description's `\\n` broke the row onto a new line at column 0 and an ESC sequence reached the
    terminal; `fluo eval --format text` escapes them. The demo's lines too."""
    (tmp_path / "r.fluo").write_text(
        'rule nl {\n  description: "one\\ntwo \\u001b[31mred \\u202eevil\\t."\n  detect trace.spans.count() > 0\n}\n'
    )
    evaluated = CliRunner().invoke(main, ["eval", str(tmp_path / "r.fluo"), "-t", str(EXAMPLE_TRACES[0])])
    fired = json.loads(evaluated.output.splitlines()[0])
    text = CliRunner().invoke(
        main, ["eval", str(tmp_path / "r.fluo"), "-t", str(EXAMPLE_TRACES[0]), "--format", "text"]
    )
    escaped = text.output.splitlines()[0].split(": ", 1)[1]
    assert escaped.startswith("one\\ntwo \\u001b[31mred \\u202eevil\\t.")
    store = SignalStore(tmp_path / "s.db")
    store.add([fired])
    store.close()
    code, out = run("--db", str(tmp_path / "s.db"))
    assert code == 0
    head, row = out.splitlines()
    assert row.endswith("  " + escaped) and head.startswith("TIME (UTC)")
    assert demo_line(fired).splitlines()[1].strip() == escaped


def test_jsonl_escapes_what_a_terminal_would_obey_as_fluo_eval_does(tmp_path: Path) -> None:
    """Smalls: a C1 CSI (U+009B) or a bidi override (U+202E) was printed raw by `fluo eval`'s JSON lines and
    `fluo signals --format jsonl`: valid JSON that a `tail -f` obeys. A store written before keeps them raw."""
    (tmp_path / "r.fluo").write_text(
        'rule c1 {\n  description: "a \\u009b31mred \\u202eevil \\u2028."\n  detect trace.spans.count() > 0\n}\n'
    )
    evaluated = CliRunner().invoke(main, ["eval", str(tmp_path / "r.fluo"), "-t", str(EXAMPLE_TRACES[0])])
    line = evaluated.output.splitlines()[0]
    fired = json.loads(line)
    assert fired["description"] == "a \x9b31mred \u202eevil \u2028."
    assert "\\u009b31mred \\u202eevil \\u2028." in line and not {"\x9b", "\u202e", "\u2028"} & set(line)
    path = tmp_path / "s.db"
    store = SignalStore(path)
    store.add([fired])
    store.close()
    assert run("--db", str(path), "--format", "jsonl") == (0, line + "\n")
    with contextlib.closing(sqlite3.connect(path)) as old, old:  # as a store written before holds it
        old.execute("UPDATE signals SET json = ?", (json.dumps(fired, ensure_ascii=False),))
    assert run("--db", str(path), "--format", "jsonl") == (0, line + "\n")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--rule", "auth_retry_storm"], ["auth_retry_storm"]),
        (["--rule", "auth_retry_storm", "--rule", "auth_login_rate"], ["auth_retry_storm", "auth_login_rate"]),
        (["--severity", "error"], ["auth_retry_storm", "charge_needs_fraud_check"]),
        (["--trace", "B" * 32], ["charge_needs_fraud_check"]),
        (["--since", "2026-01-01T00:00:20Z"], ["auth_retry_storm", "charge_needs_fraud_check", "auth_login_rate"]),
        (["--until", "2026-01-01T00:00:20Z"], ["auth_span_budget"]),
        (["--limit", "2"], ["charge_needs_fraud_check", "auth_login_rate"]),
        (["--since", "1h"], []),
    ],
)
def test_filters(db: str, args: list[str], expected: list[str]) -> None:
    result = CliRunner().invoke(main, ["signals", "--db", db, "--format", "jsonl", *args])
    assert result.exit_code == 0
    assert rules_of(result.stdout) == expected


@pytest.mark.parametrize(
    ("limit", "more", "newest"),
    [
        (1, True, "1 matching signal"),
        (3, True, "3 matching signals"),
        (4, False, ""),
        (5, False, ""),
        (
            2**63 - 1,
            False,
            "",
        ),  # QA errors r09: "all of them" overflowed SQLite's integers (the query asks for one more)
        (10**23, False, ""),
    ],
)
def test_a_limit_that_leaves_signals_out_says_so(db: str, limit: int, more: bool, newest: str) -> None:
    """docs QA: a plain `fluo signals` showed the newest 100 of more without a word; QA docs r07: and
    `--limit 1` said "the newest 1 matching signals"."""
    result = CliRunner().invoke(main, ["signals", "--db", db, "--format", "jsonl", "--limit", str(limit)])
    assert result.exit_code == 0
    assert rules_of(result.stdout) == [s["rule"] for s in SIGNALS][-limit:]
    note = f"fluo: the newest {newest}; there are more (--limit N shows N)\n"
    assert result.stderr == (note if more else "")


def test_missing_store_and_bad_time_are_one_line(tmp_path: Path, db: str) -> None:
    code, out = run("--db", str(tmp_path / "nope.db"))
    assert code == 2 and out.count("\n") == 1 and "run `fluo serve`" in out
    code, out = run("--db", db, "--since", "yesterday")
    assert code == 2 and out.count("\n") == 1 and "--since" in out
    code, out = run("--db", db, "--since", "2016-12-31T23:59:61Z")  # no second 61, leap or not
    assert code == 2 and out.count("\n") == 1 and "--since" in out
    assert run("--db", db, "--since", "2016-12-31T23:59:60Z")[0] == 0
    code, out = run("--db", db, "--trace", "xyz")  # docs/runtime.md: a bad --trace is a usage error too
    assert code == 2 and out.count("\n") == 1 and "--trace" in out
    (tmp_path / "junk.db").write_text("not sqlite at all, just text" * 100)
    code, out = run("--db", str(tmp_path / "junk.db"))
    assert code == 2 and "not a FLUO signal store" in out


def test_an_empty_file_or_database_is_not_a_store(tmp_path: Path) -> None:
    """QA (cli, minor): a 0-byte --db said "cannot read it (no such table: signals)", SQL for a reader."""
    empty = tmp_path / "empty.db"
    empty.touch()
    assert run("--db", str(empty)) == (2, f"fluo: {empty}: not a FLUO signal store: it is an empty file\n")
    blank = tmp_path / "blank.db"
    with contextlib.closing(sqlite3.connect(blank)) as c:
        c.execute("PRAGMA user_version = 1")  # a database with a header and no tables
    assert run("--db", str(blank)) == (2, f"fluo: {blank}: not a FLUO signal store: it has no `signals` table\n")
    assert empty.stat().st_size == 0  # read, not made into a store


def damage_index_root(path: Path, index: str = "signals_time") -> None:
    """Overwrite the root page of one of the store's indexes (its cells), as a bad disk block would."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        root = db.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (index,)).fetchone()[0]
        page = db.execute("PRAGMA page_size").fetchone()[0]
    with open(path, "r+b") as f:
        f.seek((root - 1) * page + 8)
        f.write(b"\xfe" * 2000)


def test_a_corrupt_store_is_called_corrupt_with_what_to_do(db: str) -> None:
    """QA: it said "not a FLUO signal store (database disk image is malformed)"."""
    damage_index_root(Path(db))
    code, out = run("--db", db)
    assert code == 2 and out.count("\n") == 1
    assert "the store is corrupt (database disk image is malformed)" in out
    assert f"mv {db} {db}.corrupt" in out and ".recover" in out and "not a FLUO signal store" not in out


def test_stores_of_another_program_or_a_newer_fluo_are_told_apart(tmp_path: Path, db: str) -> None:
    with contextlib.closing(sqlite3.connect(db)) as c:
        assert c.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID  # stamped when made
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    code, out = run("--db", db)
    assert code == 2 and f"a newer FLUO wrote it (store version {SCHEMA_VERSION + 1}" in out
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as c:
        c.execute("PRAGMA application_id = 1234")
        c.execute("CREATE TABLE t (x)")
    code, out = run("--db", str(other))
    assert code == 2 and "not a FLUO signal store: it belongs to another program (application_id 0x4d2)" in out


def test_a_database_of_another_program_without_a_stamp_is_not_a_store(tmp_path: Path) -> None:
    """Most programs leave application_id 0, as FLUO did before it set its own: their tables tell them apart."""
    other = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(other)) as c:
        for table in ("users", "orders", "items", "carts"):
            c.execute(f"CREATE TABLE {table} (x)")
    code, out = run("--db", str(other))
    assert code == 2
    assert out == (
        f"fluo: {other}: not a FLUO signal store: it is another program's database "
        "(it holds carts, items, orders and 1 more)\n"
    )


def test_a_store_from_before_the_stamp_is_read_and_stamped_when_written(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SignalStore(path).close()
    with contextlib.closing(sqlite3.connect(path)) as c:  # as stores made before application_id was set
        c.execute("PRAGMA application_id = 0")
        c.execute("PRAGMA user_version = 0")
    store = SignalStore(path, create=False)
    store.close()
    assert run("--db", str(path))[0] == 0
    with contextlib.closing(sqlite3.connect(path)) as c:
        assert c.execute("PRAGMA application_id").fetchone()[0] == 0  # reading leaves it as it was
    SignalStore(path).close()
    with contextlib.closing(sqlite3.connect(path)) as c:
        assert c.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_window_signals_with_and_without_trace_ids_share_a_store(db: str) -> None:
    """Window signals name each span's trace (`trace_ids`) since after stores were made: the table is unchanged
    (the signal is kept whole as JSON), so an older store takes new signals and lists old and new alike."""
    new = signal("auth_login_rate", "warning", "2026-01-01T00:02:00.000000Z", None, "count = 302, bound = 300")
    new.update(span_ids=["00f067aa0ba902b7", "00f067aa0ba902b7"], trace_ids=["a" * 32, "b" * 32])
    store = SignalStore(Path(db))  # as `fluo serve` opens it
    store.add([new])
    store.close()
    code, out = run("--db", db, "--format", "jsonl", "--rule", "auth_login_rate")
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [SIGNALS[-1], new]
    code, out = run("--db", db)
    assert code == 0 and out.count("auth_login_rate") == 2


def test_a_locked_store_is_called_locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve_cli, "LOCK_WAIT", 0.2)
    path = tmp_path / "s.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as c:
        c.execute("PRAGMA journal_mode=DELETE")  # a store copied out of WAL mode: a writer locks readers out
        c.execute("CREATE TABLE signals (x)")
        c.execute("BEGIN EXCLUSIVE")
        code, out = run("--db", str(path))
        c.execute("COMMIT")
    assert code == 2 and "locked by another program" in out and "try again" in out


def read_as_reader(folder: Path, *args: str) -> tuple[int, str, str]:
    """`fluo signals ARGS` (exit code, stdout, stderr) run by a user who may not write to `folder`."""

    def run() -> str:
        result = CliRunner().invoke(main, ["signals", *args])
        return json.dumps([result.exit_code, result.stdout, result.stderr])

    code, out, err = json.loads(as_reader(run, folders=[folder]))
    return code, out, err


def test_a_user_who_may_only_read_the_store_lists_it_while_serve_writes_and_after() -> None:
    """QA: once serve stopped (its -wal and -shm removed), a reader who cannot write to the folder got
    "not a FLUO signal store (attempt to write a readonly database)". As root, the reader is `nobody`."""
    folder = Path(tempfile.mkdtemp(prefix="fluo-ro-"))
    try:
        folder.chmod(0o755)  # others may read and list it, not write to it
        path = folder / "s.db"
        path.touch(0o644)  # serve makes a store 0600; one made beforehand for others to read keeps its mode
        path.chmod(0o644)
        writer = SignalStore(path)  # as serve holds it: WAL mode, -wal and -shm beside it (with its mode)
        writer.add(SIGNALS)
        during = read_as_reader(folder, "--db", str(path), "--format", "jsonl")
        writer.add(SIGNALS[:1])
        writer.close()
        assert not Path(f"{path}-wal").exists()
        after = read_as_reader(folder, "--db", str(path), "--format", "jsonl")
        assert (during[0], during[2]) == (0, "")
        assert rules_of(during[1]) == [s["rule"] for s in SIGNALS]
        assert (after[0], after[2]) == (0, "")
        assert len(after[1].splitlines()) == len(SIGNALS) + 1
        # Left as after a crash: a -wal file but no -shm, which the reader cannot make in that folder.
        writer = SignalStore(path)
        writer.db.execute("PRAGMA wal_autocheckpoint = 0")
        writer.add(SIGNALS[:1])
        Path(f"{path}-wal").rename(folder / "kept-wal")
        writer.close()
        Path(f"{path}-shm").unlink(missing_ok=True)
        (folder / "kept-wal").rename(f"{path}-wal")
        code, _, err = read_as_reader(folder, "--db", str(path))
        assert code == 2 and err.count("\n") == 1
        assert f"SQLite needs s.db-shm in {folder}" in err
        assert "not a FLUO signal store" not in err
        path.chmod(0o000)
        code, _, err = read_as_reader(folder, "--db", str(path))
        assert code == 2 and "is not readable" in err  # click says so first
    finally:
        shutil.rmtree(folder)


def test_reading_a_stopped_store_leaves_nothing_beside_it(db: str) -> None:
    """QA: run by a user who could write the folder, `fluo signals` left s.db-wal and s.db-shm beside a store
    serve had stopped cleanly (a read-only connection cannot remove them): the docs say it is read as immutable."""
    code, out = run("--db", db, "--format", "jsonl")
    assert code == 0 and rules_of(out) == [s["rule"] for s in SIGNALS]
    assert sorted(p.name for p in Path(db).parent.iterdir()) == ["fluo-signals.db"]


def test_a_store_read_as_immutable_is_read_again_if_serve_takes_it_meanwhile(db: str) -> None:
    """Read as immutable, the store's pages must not change under the read: a serve that started meanwhile
    (its -wal now beside the store) sends the read through the -wal, as while serve runs."""
    with contextlib.closing(SignalStore(db, create=False)) as reader, contextlib.closing(SignalStore(db)) as writer:
        writer.add(SIGNALS[:1])
        got = reader.query(SignalFilter())
    assert len(got) == len(SIGNALS) + 1


def test_times_are_read_to_the_nanosecond(tmp_path: Path) -> None:
    """Signal times are nanosecond-exact (`...06.050000001Z`), but `--since`/`--until` and the table's window
    length read them to the microsecond: a `window 3ns` rule's window showed as `+0ns` or `+1us`, and a
    signal 1ns before `--since` was listed."""
    early = signal("r", "warning", "2026-01-01T00:00:06.050000000Z", "a" * 32, "early")
    late = signal("r", "warning", "2026-01-01T00:00:06.050000001Z", "b" * 32, "late")
    windowed = signal("w", "warning", "2026-01-01T00:00:06.050000004Z", None, "tiny window")
    windowed.update(window_start="2026-01-01T00:00:06.050000001Z", window_end="2026-01-01T00:00:06.050000004Z")
    db = str(tmp_path / "s.db")
    store = SignalStore(Path(db))
    store.add([early, late, windowed])
    store.close()
    code, out = run("--db", db, "--format", "jsonl", "--since", "2026-01-01T00:00:06.050000001Z")
    assert (code, [json.loads(line)["message"] for line in out.splitlines()]) == (0, ["late", "tiny window"])
    code, out = run("--db", db, "--format", "jsonl", "--until", "2026-01-01T00:00:06.050000001Z")
    assert (code, [json.loads(line)["message"] for line in out.splitlines()]) == (0, ["early"])
    code, out = run("--db", db, "--rule", "w")
    assert code == 0 and "window 2026-01-01 00:00:06 +3ns  tiny window" in out


def test_a_negative_since_is_called_negative(db: str) -> None:
    """QA: `--since -1h` was "neither a duration ago nor an RFC 3339 time"."""
    code, out = run("--db", db, "--since", "-1h")
    assert (code, out) == (2, "fluo: --since: '-1h' is negative; a duration ago is written without a sign: 1h\n")


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2026-01-01T00:00:06.050000001Z", 1_767_225_606_050_000_001),
        ("2026-01-01T00:00:06.0500000019z", 1_767_225_606_050_000_001),  # past the nanosecond: cut off
        ("2026-01-01t02:00:06,5+02:00", 1_767_225_606_500_000_000),
        ("1960-01-01T00:00:00.5Z", -315_619_199_500_000_000),  # was a second late: timestamp() truncated
        ("9999-12-31T23:59:59.999999999Z", 253_402_300_799_999_999_999),  # past a float's 53 bits
        ("2026-01-01", 1_767_225_600_000_000_000),
        # a leap second (QA: `--since 2016-12-31T23:59:60Z` was "neither a duration ago nor an RFC 3339 time"):
        # the last nanosecond before the next minute
        ("2016-12-31T23:59:60Z", 1_483_228_799_999_999_999),
        ("2016-12-31T23:59:60.5Z", 1_483_228_799_999_999_999),
        ("2017-01-01T08:59:60+09:00", 1_483_228_799_999_999_999),
    ],
)
def test_parse_time_is_exact(text: str, ns: int) -> None:
    assert parse_time(text) == ns


def test_trace_finds_the_windowed_signals_that_list_the_trace(db: str) -> None:
    """`--trace X` read only the `trace_id` column, which a windowed signal has not: one whose spans include
    trace X (its `trace_ids`) was not found. It is now, beside X's own signals, and in the table too."""
    windowed = signal("auth_login_rate", "warning", "2026-01-01T00:02:00.000000Z", None, "count = 302, bound = 300")
    windowed.update(span_ids=["00f067aa0ba902b7", "00f067aa0ba902b8"], trace_ids=["a" * 32, "c" * 32])
    store = SignalStore(Path(db))
    store.add([windowed])
    store.close()
    for trace, expected in [
        ("A" * 32, ["auth_span_budget", "auth_retry_storm", "auth_login_rate"]),
        ("c" * 32, ["auth_login_rate"]),
        ("b" * 32, ["charge_needs_fraud_check"]),  # not the window, whose spans are of other traces
        ("d" * 32, []),
    ]:
        result = CliRunner().invoke(main, ["signals", "--db", db, "--format", "jsonl", "--trace", trace])
        assert (result.exit_code, rules_of(result.stdout)) == (0, expected), trace
    code, out = run("--db", db, "--trace", "c" * 32)
    assert code == 0 and "window 2026-01-01 00:00:00 +1m  count = 302, bound = 300" in out


def test_a_store_from_before_the_stamp_with_a_view_added_says_how_to_mark_it(tmp_path: Path) -> None:
    """QA serve: an unstamped FLUO store a user added a view to was "another program's database (it holds v)",
    with no word of the documented way out. Marked as the message says, it is read."""
    path = tmp_path / "old.db"
    SignalStore(path).close()
    with contextlib.closing(sqlite3.connect(path)) as c:
        c.execute("PRAGMA application_id = 0")
        c.execute("CREATE VIEW errors AS SELECT * FROM signals")
    code, out = run("--db", str(path))
    assert (code, out) == (
        2,
        f"fluo: {path}: not a FLUO signal store: it is another program's database (it holds errors); if it is a "
        f"FLUO store you added them to, `PRAGMA application_id = {APPLICATION_ID}` marks it as FLUO's\n",
    )
    with contextlib.closing(sqlite3.connect(path)) as c:
        c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    assert run("--db", str(path))[0] == 0


def test_the_store_named_by_serves_config_file_is_read(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA serve r2: `fluo serve` took its store from FLUO_CONFIG's `db`, `fluo signals` did not: beside such a
    serve, it said there was no store (./fluo-signals.db). Now it reads the file's `db` (its other settings are
    serve's); --db and FLUO_DB still win over it, as for serve."""
    settings = tmp_path / "serve.yaml"
    settings.write_text(f"db: {db}\ntrace-idle: 2s\nwebhook: http://127.0.0.1:9/hook\n")
    elsewhere = tmp_path / "elsewhere"  # no ./fluo-signals.db here
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("FLUO_DB", raising=False)
    monkeypatch.setenv("FLUO_CONFIG", str(settings))
    code, out = run("--format", "jsonl")
    assert code == 0 and rules_of(out) == [s["rule"] for s in SIGNALS]
    code, out = run("--config", str(settings), "--format", "jsonl", "--rule", "auth_login_rate")
    assert code == 0 and rules_of(out) == ["auth_login_rate"]
    other = tmp_path / "other.db"
    SignalStore(other).close()
    assert run("--db", str(other), "--format", "jsonl") == (0, "")
    monkeypatch.setenv("FLUO_DB", str(other))
    assert run("--format", "jsonl") == (0, "")
    monkeypatch.delenv("FLUO_DB")
    settings.write_text("db: missing.db\n")
    code, out = run()
    assert (code, out) == (
        2,
        f"fluo: missing.db (the `db` of --config {settings}): no signal store here; run `fluo serve` (or `fluo demo`)"
        " first, or give --db FILE\n",
    )
    settings.write_text("no-db: true\n")
    code, out = run()
    assert (code, out) == (
        2,
        f"fluo: --config {settings}: `fluo serve` writes no signal store with these settings (no-db); give --db\n",
    )
    settings.write_text("no-db: 1\n")  # as serve takes it (QA ops r04)
    code, out = run()
    assert (code, out) == (
        2,
        f"fluo: --config {settings}: `fluo serve` writes no signal store with these settings (no-db); give --db\n",
    )
    settings.write_text("trace-idle: 2s\ndb:\n")  # serve refuses it: it is not "no store" (QA ops r02)
    code, out = run()
    assert code == 2 and f"--config {settings}:2: `db` has no value; give a file, or leave it out" in out
    settings.write_text("db: [a.db, b.db]\n")
    code, out = run()
    assert code == 2 and f"--config {settings}: `db` takes one file name" in out


def test_a_store_given_by_flag_or_variable_does_not_read_serves_config_file(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review (r02): with FLUO_CONFIG set for `fluo serve` to a file not readable here, `fluo signals --db FILE`
    failed on the file, though --db (or FLUO_DB) wins over its `db`: the file is not read then."""
    monkeypatch.setenv("FLUO_CONFIG", str(tmp_path / "serve.yaml"))  # no such file
    monkeypatch.delenv("FLUO_DB", raising=False)
    code, out = run("--db", db, "--format", "jsonl")
    assert code == 0 and rules_of(out) == [s["rule"] for s in SIGNALS]
    monkeypatch.setenv("FLUO_DB", db)
    code, out = run("--format", "jsonl")
    assert code == 0 and rules_of(out) == [s["rule"] for s in SIGNALS]
    monkeypatch.delenv("FLUO_DB")
    code, out = run()
    assert code == 2 and "--config" in out and "serve.yaml" in out  # the store is the file's: it is read


@pytest.mark.parametrize("command", ["signals", "serve"])
def test_a_config_file_that_is_not_utf8_or_not_a_file_is_a_usage_error(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA errors r10: a --config file that is not UTF-8 crashed serve and signals (UnicodeDecodeError), and
    --config /dev/zero was read without end (serve killed, signals a MemoryError): refused before reading, as
    rule and test files are, and a file past any settings' size is not read whole."""
    monkeypatch.delenv("FLUO_DB", raising=False)
    latin1 = tmp_path / "fluo.yaml"
    latin1.write_bytes(b"trace-idle: 2s\ndb: caf\xe9.db\n")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (2 << 20))
    said = {
        str(latin1): f"{latin1}: not UTF-8: byte 0xe9 at line 2, column 8; save it as UTF-8",
        "/dev/zero": "cannot read /dev/zero: not a regular file",
        str(big): f"{big}: larger than 1 MiB",
    }
    for path, why in said.items():
        result = CliRunner().invoke(main, [command, "--config", path], prog_name="fluo")
        assert (result.exit_code, result.output) == (2, f"fluo: --config {why} (see `fluo {command} --help`)\n")


def test_a_config_file_from_a_pipe_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: `--config <(envsubst < fluo.yaml)` and `--config /dev/stdin` (a pipe) were refused as "not a regular
    file" once --config was read as rule files are; a pipe is read, to the same 1 MiB bound, as it was before."""
    monkeypatch.delenv("FLUO_DB", raising=False)
    store = tmp_path / "from-pipe.db"
    SignalStore(store).close()
    for text, said in (
        (f"db: {store}\n".encode(), "no signals match"),  # the pipe's `db` was the store read
        (b"#" * (2 << 20), "larger than 1 MiB"),
    ):
        read, write = os.pipe()
        writer = threading.Thread(target=lambda w=write, t=text: (_write_all(w, t), os.close(w)))
        writer.start()
        try:
            result = CliRunner().invoke(main, ["signals", "--config", f"/dev/fd/{read}"], prog_name="fluo")
        finally:
            os.close(read)  # a writer still blocked past the bound gets EPIPE
            writer.join(10)
        assert said in result.output, result.output


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError):
        while data:
            data = data[os.write(fd, data) :]


def test_a_config_named_pipe_whose_writer_comes_later_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review rev2: a named pipe given to --config was opened without waiting for a writer, so one that came after
    fluo read as an empty file: serve ran on defaults (the file's auth-token dropped), signals read ./fluo-signals.db.
    It is opened as `cat` opens it, waiting for its writer."""
    monkeypatch.delenv("FLUO_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "late.db"
    SignalStore(store).close()
    fifo = tmp_path / "fluo.yaml"
    os.mkfifo(fifo)

    def write_later() -> None:
        time.sleep(0.3)  # fluo has opened the pipe, or is about to
        deadline = time.monotonic() + 10
        while True:  # without a reader, opening to write would block: try until fluo reads
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
        _write_all(fd, f"db: {store}\n".encode())
        os.close(fd)

    writer = threading.Thread(target=write_later)
    writer.start()
    try:
        result = CliRunner().invoke(main, ["signals", "--config", str(fifo)], prog_name="fluo")
    finally:
        writer.join(15)
    assert result.exit_code == 0 and "no signals match" in result.output, result.output
