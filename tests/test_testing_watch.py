"""Long-run niceties of `fluo test`: the terminal progress line and --watch."""

from __future__ import annotations

import io
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from interrupt_support import interrupt_while_reading, sigint_default
from reader_support import as_reader
from test_otlp import _too_deep_test
from tests_paths import ROOT

from fluo_lang import folders
from fluo_run.cli import main
from fluo_run.testing.cli import UsageProblem, run_once
from fluo_run.testing.progress import Progress
from fluo_run.testing.runner import Runner
from fluo_run.testing.spec import Case, TestFile
from fluo_run.testing.watch import Ran, changed, stamps, watch

FIXTURES = ROOT / "tests" / "testing_fixtures"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _result(name: str) -> object:
    file = TestFile(Path("t_test.yaml"), "t_test.yaml")
    return Runner().run_case(file, Case(name=name, line=1, index=0, problems=[]))


def test_progress_draws_only_on_a_terminal_once_the_run_is_long() -> None:
    clock = Clock()
    term = Terminal()
    progress = Progress(term, 3, delay=0.5, every=0.1, clock=clock)
    progress(_result("quick"))  # type: ignore[arg-type]
    assert term.getvalue() == ""  # not long yet
    clock.now = 1.0
    progress(_result("slow one"))  # type: ignore[arg-type]
    assert term.getvalue() == "\r[2/3] t_test.yaml::slow one"
    clock.now = 1.01
    progress(_result("last"))  # type: ignore[arg-type]  # drawn although soon: it is the last one
    progress.close()
    assert term.getvalue() == (
        "\r[2/3] t_test.yaml::slow one"
        "\r[3/3] t_test.yaml::last    "  # padded over the longer line before it
        "\r" + " " * len("[3/3] t_test.yaml::last") + "\r"
    )


def test_progress_is_silent_when_not_a_terminal() -> None:
    clock = Clock()
    plain = io.StringIO()
    progress = Progress(plain, 2, clock=clock)
    clock.now = 60.0
    progress(_result("a"))  # type: ignore[arg-type]
    progress.close()
    assert plain.getvalue() == "" and progress.done == 1


def test_progress_escapes_control_characters_as_the_report_does() -> None:
    """The progress line printed a case name's ESC sequences and NULs raw, which the report escapes."""
    term = Terminal()
    progress = Progress(term, 1, delay=0.0, every=0.0)
    progress.loading(0, 1, "a\x1b[2Jb_test.yaml")
    progress(_result("red \x1b[31mALERT\x00"))  # type: ignore[arg-type]
    assert term.getvalue().split("\r")[1:] == [
        "[loading 1/1] a\\u001b[2Jb_test.yaml",
        "[1/1] t_test.yaml::red \\u001b[31mALERT\\u0000",
    ]


def test_changed_files() -> None:
    assert changed({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 1}) == ["b", "c"]
    assert changed({"a": 1}, {}) == ["a"]


def test_watch_runs_again_after_a_change_and_stops_after_max_runs(tmp_path: Path) -> None:
    watched = tmp_path / "w_test.yaml"
    watched.write_text("x", encoding="utf-8")
    outside = tmp_path.parent / f"{tmp_path.name}-rules.fluo"
    outside.write_text("r", encoding="utf-8")
    runs: list[int] = []
    sleeps: list[float] = []
    seen: list[list[str]] = []

    def run() -> Ran:
        runs.append(len(runs))
        return Ran([outside])

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:  # a quiet poll, a change inside the root and the poll it holds still for, then
            os.utime(watched, ns=(1, 1))  # one outside it
        if len(sleeps) == 4:
            os.utime(outside, ns=(1, 1))

    try:
        n = watch(run, [tmp_path], interval=0.0, max_runs=3, sleep=sleep, on_change=seen.append)
    finally:
        outside.unlink()
    assert n == 3 and runs == [0, 1, 2]
    assert sleeps == [0.05] * 5  # the interval is bounded below
    assert seen == [[str(watched)], [str(outside)]]


def test_watch_stops_on_ctrl_c(tmp_path: Path) -> None:
    def sleep(seconds: float) -> None:
        raise KeyboardInterrupt

    assert watch(Ran, [tmp_path], sleep=sleep) == 1


def test_stamps_take_test_and_rule_files_outside_hidden_folders(tmp_path: Path) -> None:
    """A report the run writes (JUnit, redirected output) must not start the next run: only inputs count."""
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x_test.yaml").write_text("")
    for name in ("a_test.yaml", "b.fluotest.yaml", "r.fluo", "reports/j.xml", "out.json", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    fixture = tmp_path / "fixture.json"
    fixture.write_text("{}")
    assert sorted(stamps([tmp_path])) == [str(tmp_path / n) for n in ("a_test.yaml", "b.fluotest.yaml", "r.fluo")]
    assert str(fixture) in stamps([tmp_path], [fixture])  # a fixture a run names is watched


def test_stamps_pass_over_hidden_files_as_the_run_does(tmp_path: Path) -> None:
    """`fluo test` never reads a hidden test or rule file (macOS's `._r.fluo`), so its changes start no run."""
    for name in ("._a_test.yaml", ".r.fluo", "sub/._b.fluotest.yaml", "sub/r.fluo"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    assert list(stamps([tmp_path])) == [str(tmp_path / "sub" / "r.fluo")]


def _read_until(stream: io.BufferedReader, marker: bytes, deadline: float) -> bytes:
    out = b""
    while marker not in out:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            raise AssertionError(f"timed out waiting for {marker!r}; got {out!r}")
        chunk = stream.read1(4096)
        if not chunk:
            raise AssertionError(f"stream closed before {marker!r}; got {out!r}")
        out += chunk
    return out


@pytest.mark.slow
def test_watch_end_to_end(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "rules.fluo", tmp_path / "rules.fluo")
    test = tmp_path / "w_test.yaml"
    test.write_text("rules: rules.fluo\ncases:\n  - {name: a, spans: [{name: login}], expect: []}\n", encoding="utf-8")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "fluo_run.cli", "test", ".", "--watch", "--watch-interval", "0.05"),
            *("--junit-xml", "reports/j.xml"),  # written by every run: must not start the next
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        first = _read_until(proc.stdout, b"watching for changes", deadline)
        assert b"w_test.yaml: 1 passed" in first
        (tmp_path / "notes.txt").write_text("not an input")
        test.write_text(
            "rules: rules.fluo\ncases:\n  - {name: a, spans: [{name: login, duration: 1s}], expect: []}\n",
            encoding="utf-8",
        )
        second = _read_until(proc.stdout, b"watching for changes", deadline)
        assert b"changed: w_test.yaml; running again" in second  # neither the report nor the notes
        assert b"w_test.yaml: 1 failed" in second
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_progress_counts_from_before_the_files_are_read() -> None:
    clock = Clock()
    term = Terminal()
    progress = Progress(term, clock=clock, delay=0.5, every=0.1)
    progress.loading(0, 2, "a_test.yaml")
    clock.now = 0.7  # reading the files took long: the counter shows up while they are read
    progress.loading(1, 2, "b_test.yaml")
    progress.total = 1
    progress(_result("only"))  # type: ignore[arg-type]
    progress.close()
    assert term.getvalue() == (
        "\r[loading 2/2] b_test.yaml\r[1/1] t_test.yaml::only  \r" + " " * len("[1/1] t_test.yaml::only") + "\r"
    )


def test_a_file_reached_by_an_absolute_folder_and_a_relative_rules_path_is_one_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA L7: `fluo test /abs/w --watch` said `changed: w/r.fluo, w/r.fluo` for one edit."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w").mkdir()
    rule = tmp_path / "w" / "r.fluo"
    rule.write_text("rule r { expect true }\n")
    before = stamps([tmp_path / "w"], [Path("w/r.fluo")])
    assert list(before) == [str(rule)]
    os.utime(rule, ns=(1, 1))
    assert changed(before, stamps([tmp_path / "w"], [Path("w/r.fluo")])) == [str(rule)]


ERROR_RULE = "rule has_error {\n  severity: error\n  detect trace.spans.where(status == error).exists()\n}\n"
ERROR_TRACE = (
    '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},'
    '"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",'
    '"name":"a","startTimeUnixNano":"1767225600000000000","endTimeUnixNano":"1767225600001000000",'
    '"status":{"code":2}}]}]}]}\n'
)


def _watch_fluo_test(
    roots: list[str], between: dict[int, Callable[[], None]], **options: Any
) -> tuple[list[int], list[list[str]]]:
    """`fluo test ROOTS --watch` as the command runs it, with `between[n]` done at the n-th poll (1-based).

    Polls are not timed: the watch stops at the first poll after the last step, so a change
    it fails to notice shows as a run missing, never as a hang.
    """
    runner = Runner(recording=options.get("update", False))
    codes: list[int] = []
    seen: list[list[str]] = []
    polls = 0

    def run() -> Ran:
        settings = {"fmt": "text", "junit_xml": None, "update": False, "coverage": False, "select_text": None}
        try:
            code, ran = run_once(roots, runner, **{**settings, **options})
        except UsageProblem as exc:  # as the command says it, and goes on watching
            code, ran = 2, exc.ran
        codes.append(code)
        return ran

    def sleep(seconds: float) -> None:
        nonlocal polls
        polls += 1
        if polls > max(between) + 1:
            raise KeyboardInterrupt
        if polls in between:
            between[polls]()

    watch(run, [Path(r) for r in roots], sleep=sleep, on_change=seen.append)
    return codes, seen


def _touch(path: Path) -> None:
    """A new mtime however coarse the file system's clock: what a save does, made certain."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def test_watch_sees_an_in_place_edit_in_a_rules_folder_outside_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA 7: with `rules: ../rules`, only the folder's mtime was watched, which an in-place save leaves alone."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules" / "more").mkdir(parents=True)
    rule = tmp_path / "rules" / "more" / "r.fluo"
    rule.write_text(ERROR_RULE)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "r_test.yaml").write_text(
        "rules: ../rules\ncases:\n  - {name: fires, spans: [{name: a, status: error}], expect: [has_error]}\n"
    )

    def edit() -> None:
        with rule.open("r+") as f:  # in place: the folder's mtime does not change
            f.write(ERROR_RULE.replace("has_error", "has_err  "))
        _touch(rule)

    codes, seen = _watch_fluo_test(["tests"], {2: edit})
    assert codes == [0, 2]  # the renamed rule: `has_error` in the test no longer names a rule
    assert seen == [[str(rule)]]


@pytest.mark.parametrize("bom", ["", "\ufeff"])
def test_watch_runs_again_when_a_missing_fixture_appears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bom: str
) -> None:
    """QA 9: a fixture that did not exist was never watched, so creating it started no run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.fluo").write_text(ERROR_RULE)
    (tmp_path / "r_test.yaml").write_text(
        bom + "cases:\n  - name: fires\n    traces: fixtures/new/err.json\n    expect: [has_error]\n",
        encoding="utf-8",
    )
    fixture = tmp_path / "fixtures" / "new" / "err.json"

    def create() -> None:
        fixture.parent.mkdir(parents=True)
        fixture.write_text(ERROR_TRACE)

    codes, seen = _watch_fluo_test(["r_test.yaml"], {2: create})
    assert codes == [2, 0]
    assert seen == [[str(fixture)]]


def test_watch_runs_again_when_a_missing_rules_file_outside_the_root_appears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "r_test.yaml").write_text(
        "rules: ../rules/r.fluo\ncases:\n  - {name: fires, spans: [{name: a, status: error}], expect: [has_error]}\n"
    )
    rule = tmp_path / "rules" / "r.fluo"

    def create() -> None:
        rule.parent.mkdir()
        rule.write_text(ERROR_RULE)

    codes, seen = _watch_fluo_test(["tests"], {1: create})
    assert codes == [2, 0]
    assert seen == [[str(rule)]]


def test_watch_does_not_run_again_for_what_update_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--watch --update` ran a second time after each update, for the test file it had just written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.fluo").write_text(ERROR_RULE)
    test = tmp_path / "r_test.yaml"
    test.write_text("cases:\n  - {name: fires, spans: [{name: a, status: error}], expect: []}\n")

    def edit() -> None:
        test.write_text(test.read_text().replace("{name: a,", "{name: b,"))
        _touch(test)

    codes, seen = _watch_fluo_test(["."], {3: edit}, update=True)
    assert "has_error" in test.read_text()
    assert codes == [0, 0]  # the first run, and the edit's; none for the update itself
    assert seen == [[str(test)]]


@pytest.mark.slow
def test_sigint_mid_run_exits_130_without_aborted(tmp_path: Path) -> None:
    """QA 14, as a shell sends it, mid-run however slow the machine: fluo test is held, as it loads the test
    file, reading a FIFO (fluo itself reads no FIFO any more: a wrapper makes it wait there)."""
    (tmp_path / "r.fluo").write_text("rule r { detect trace.spans.count() > 100 }\n")
    (tmp_path / "r_test.yaml").write_text("cases:\n  - {name: a, spans: [{name: x}], expect: []}\n")
    fifo = tmp_path / "hold"
    os.mkfifo(fifo)
    held = (
        "import sys\n"
        "import fluo_run.testing.runner as runner\n"
        "from fluo_run.cli import main\n"
        "real = runner.load_test_file\n"
        "def load_test_file(*args, **kwargs):\n"
        f"    open({str(fifo)!r}).read()\n"
        "    return real(*args, **kwargs)\n"
        "runner.load_test_file = load_test_file\n"
        "main(['test', 'r_test.yaml'], prog_name='fluo')\n"
    )
    code, out, err = interrupt_while_reading([sys.executable, "-c", held], fifo, cwd=tmp_path)
    assert code == 130, (out, err)
    assert out == b"" and b"Aborted" not in err and b"Traceback" not in err


@pytest.mark.slow
def test_sigint_ends_a_watch_with_the_last_runs_status(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "rules.fluo", tmp_path / "rules.fluo")
    (tmp_path / "w_test.yaml").write_text(
        "rules: rules.fluo\ncases:\n  - {name: a, spans: [{name: login, duration: 1s}], expect: []}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "fluo_run.cli", "test", ".", "--watch", "--watch-interval", "0.05"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=sigint_default,
    )
    try:
        assert proc.stdout is not None
        first = _read_until(proc.stdout, b"watching for changes", time.monotonic() + 30)
        assert b"w_test.yaml: 1 failed" in first
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, rest
    assert b"Aborted" not in rest and b"Traceback" not in rest


def test_a_file_no_longer_read_is_no_longer_watched_not_a_change(tmp_path: Path) -> None:
    """QA r04: once the only test file naming a fixture outside the watched folders was removed, the next poll
    said "changed: <fixture>" (it had left the watch, nobody touched it) and ran once more for nothing."""
    root = tmp_path / "w"
    root.mkdir()
    test_file = root / "r_test.yaml"
    test_file.write_text("x", encoding="utf-8")
    fixture = tmp_path / "fx.json"
    fixture.write_text("{}", encoding="utf-8")
    seen: list[list[str]] = []
    sleeps: list[float] = []

    def run() -> Ran:
        return Ran([fixture] if test_file.exists() else [])

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            test_file.unlink()
        if len(sleeps) == 6:
            raise KeyboardInterrupt

    n = watch(run, [root], interval=0.0, sleep=sleep, on_change=seen.append)
    assert seen == [[str(test_file)]]
    assert n == 2


def test_a_file_still_read_that_goes_during_a_run_is_a_change(tmp_path: Path) -> None:
    """The other side: a fixture still named, removed while the run reads it, is seen gone at the next poll."""
    root = tmp_path / "w"
    root.mkdir()
    fixture = tmp_path / "fx.json"
    fixture.write_text("{}", encoding="utf-8")
    seen: list[list[str]] = []
    runs: list[int] = []

    def run() -> Ran:
        runs.append(1)
        if len(runs) == 2:
            fixture.unlink()
        return Ran([fixture])

    touched: list[int] = []

    def sleep(seconds: float) -> None:
        if len(runs) == 1 and not touched:
            touched.append(1)
            os.utime(fixture, ns=(1, 1))

    n = watch(run, [root], interval=0.0, max_runs=3, sleep=sleep, on_change=seen.append)
    assert n == 3
    assert seen == [[str(fixture)], [str(fixture)]]


def test_watch_runs_again_when_a_fixture_is_replaced_with_its_mtime_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watch stamped files by mtime alone: a fixture replaced by a file with the same mtime and size
    (`cp -p`, `rsync -t`, a save through rename) started no run, and the run would have read the old spans."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.fluo").write_text(ERROR_RULE)
    (tmp_path / "r_test.yaml").write_text("cases:\n  - name: fires\n    traces: t.json\n    expect: [has_error]\n")
    fixture = tmp_path / "t.json"
    fixture.write_text(ERROR_TRACE)

    def replace() -> None:
        st = os.stat(fixture)
        new = tmp_path / "new.json"
        new.write_text(ERROR_TRACE.replace('"code":2', '"code":1'))  # the same size: error became ok
        os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(new, fixture)

    codes, seen = _watch_fluo_test(["r_test.yaml"], {2: replace})
    assert codes == [0, 1]
    assert seen == [[str(fixture)]]


def test_every_watch_round_tells_of_protobuf_values_nested_too_deep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The warning was counted as values were decoded: in later rounds the fixture's spans came from the cache,
    already decoded, and the warning was gone although the rule still read the value as missing. Each round
    tells it, counted once (not once more per round)."""
    monkeypatch.chdir(tmp_path)
    _too_deep_test(tmp_path)
    test = tmp_path / "r_test.yaml"
    codes, _ = _watch_fluo_test(["r_test.yaml"], {1: lambda: test.write_text(test.read_text() + "\n")})
    assert codes == [0, 0]
    told = "fluo: warning: 1 read of an attribute value from protobuf found lists and maps nested more than 31 deep"
    assert [line for line in capsys.readouterr().err.splitlines() if "nested" in line] == [
        f"{told}, read as missing"
    ] * 2


def test_a_fixture_in_a_folder_that_cannot_be_searched_leaves_the_watch_going() -> None:
    """QA watch r02: `--watch` died of the PermissionError pathlib's `is_dir()` raised for a `traces:` fixture in
    a folder its user may not search (`chmod 000`). Now each run says so at the case's line, exit 2, and the
    watch runs again after an edit. As root, the watch is `nobody`'s."""
    folder = Path(tempfile.mkdtemp(prefix="fluo-locked-"))
    (folder / "fx").mkdir()
    (folder / "fx" / "err.json").write_text(ERROR_TRACE)
    (folder / "r.fluo").write_text(ERROR_RULE)
    test = folder / "r_test.yaml"
    test.write_text("cases:\n  - name: fires\n    traces: fx/err.json\n    expect: [has_error]\n")
    assert _watch_fluo_test([str(test)], {1: lambda: None})[0] == [0]  # imports what the runs need
    "".encode("utf-8-sig")  # the codec a case that could not run reads its file again with
    try:
        folder.chmod(0o777)  # `nobody` edits the test file
        test.chmod(0o666)
        (folder / "fx").chmod(0)

        def edit() -> None:
            test.write_text(test.read_text().replace("name: fires", "name: fires again"))  # its size changes

        def outcome() -> str:
            return json.dumps(_watch_fluo_test([str(test)], {1: edit}))

        codes, seen = json.loads(as_reader(outcome))
        assert codes == [2, 2]
        assert seen == [[str(test)]]
    finally:
        (folder / "fx").chmod(0o755)
        shutil.rmtree(folder)


def _edited_during_the_first_run(monkeypatch: pytest.MonkeyPatch, test: Path, text: str) -> None:
    """The user saves `text` in `test` while the first run runs (after it read the file, before `--update`)."""
    real = Runner.run
    calls = 0

    def run(self: Runner, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        result = real(self, *args, **kwargs)
        if calls == 1:
            test.write_text(text)
            _touch(test)
        return result

    monkeypatch.setattr(Runner, "run", run)


INSERTED = (
    "cases:\n  - {name: mine, spans: [{name: b}], expect: []}\n  - {name: fires, spans: [{name: a, status: error}]}\n"
)


def test_update_writes_nothing_to_a_test_file_changed_since_the_run_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA watch r03: `--update` rewrote cases by their place in the file as it was at the end of the run: a case
    inserted above while the run ran got the signals of another (its `expect: []` replaced), silently."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.fluo").write_text(ERROR_RULE)
    test = tmp_path / "r_test.yaml"
    test.write_text("cases:\n  - {name: fires, spans: [{name: a, status: error}]}\n")
    _edited_during_the_first_run(monkeypatch, test, INSERTED)
    result = CliRunner().invoke(main, ["test", "--update", "r_test.yaml"])
    assert test.read_text() == INSERTED
    assert result.exit_code == 2
    assert "fluo: cannot update r_test.yaml: changed since the run read it; run again\n" in result.stderr


def test_watch_update_runs_again_for_a_test_file_changed_during_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA watch r03: under `--watch --update`, the file written (over the user's edit) was taken for the run's own
    write: its new stamp hid the edit, and no run followed. Now nothing is written, and the edit starts a run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.fluo").write_text(ERROR_RULE)
    test = tmp_path / "r_test.yaml"
    test.write_text("cases:\n  - {name: fires, spans: [{name: a, status: error}]}\n")
    _edited_during_the_first_run(monkeypatch, test, INSERTED)
    codes, seen = _watch_fluo_test(["."], {1: lambda: None}, update=True)
    assert codes == [2, 0]  # refused; then the edited file's run, which updates `fires`
    assert seen == [[str(test)]]
    assert test.read_text().startswith("cases:\n  - {name: mine, spans: [{name: b}], expect: []}\n")
    assert "has_error" in test.read_text()


def test_watching_a_rule_file_runs_a_test_file_made_later_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA watch r06: `fluo test RULE.fluo --watch` watched the rule file and the test files the first run found:
    one made later for it (`new_test.yaml`, or another with `rules: [new.fluo]`) started no run, where a fresh
    `fluo test new.fluo` runs it. Now the test files below the rule file's folder are watched, as it searches."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "new.fluo").write_text(ERROR_RULE)
    (tmp_path / "more").mkdir()
    own, more = tmp_path / "new_test.yaml", tmp_path / "more" / "more_test.yaml"

    def create_own() -> None:
        own.write_text("cases:\n  - {name: fires, spans: [{name: a, status: error}], expect: [has_error]}\n")

    def create_more() -> None:
        more.write_text(
            "rules: [../new.fluo]\ncases:\n  - {name: quiet, spans: [{name: a, status: error}], expect: []}\n"
        )

    codes, seen = _watch_fluo_test(["new.fluo"], {1: create_own, 3: create_more})  # 2: the poll it held still
    assert codes == [2, 0, 1]  # no test files yet; its own; and the other, which fails
    assert seen == [[str(own)], [str(more)]]


def test_a_watch_round_lets_go_of_the_fixtures_and_rules_it_no_longer_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA watch r01: the runner kept every fixture it had read, by path, for the whole watch: a fixture renamed
    stayed in memory (40 MB more per rename of a 100k-span one); and an analysis and a program per rule save."""
    monkeypatch.chdir(tmp_path)
    rule = tmp_path / "r.fluo"
    rule.write_text(ERROR_RULE)
    (tmp_path / "f0.json").write_text(ERROR_TRACE)
    test = tmp_path / "r_test.yaml"
    runner = Runner()
    settings: dict[str, Any] = {"fmt": "text", "junit_xml": None, "update": False, "coverage": False}
    for i in range(3):
        if i:
            os.rename(tmp_path / f"f{i - 1}.json", tmp_path / f"f{i}.json")
            _touch(rule)  # a save: another analysis, another program
        test.write_text(f"cases:\n  - {{name: fires, traces: f{i}.json, expect: [has_error]}}\n")
        assert run_once(["."], runner, select_text=None, **settings)[0] == 0
    assert list(runner.traces.cache) == [Path("f2.json")]
    assert len(runner.rules.cache) == 1
    assert len(runner.programs.cache) == 1
    assert len(runner.programs.rules) <= 1


def test_a_save_slower_than_one_interval_is_one_run_on_the_whole_file(tmp_path: Path) -> None:
    """QA watch r05: a run started at the first poll that saw a change, so a save taking longer than one interval
    (written in parts, a large file, a checkout of many files) got a run on the half-written file, then another.
    Now the watch waits until the stamps hold still for one interval."""
    test = tmp_path / "w_test.yaml"
    test.write_text("old", encoding="utf-8")
    read: list[str] = []
    seen: list[list[str]] = []
    polls = 0

    def run() -> Ran:
        read.append(test.read_text(encoding="utf-8"))
        return Ran()

    def sleep(seconds: float) -> None:
        nonlocal polls
        polls += 1
        if polls == 1:
            test.write_text("new, first part", encoding="utf-8")
        elif polls == 2:
            with test.open("a", encoding="utf-8") as f:
                f.write(", second part")
        elif polls == 5:
            raise KeyboardInterrupt

    assert watch(run, [tmp_path], sleep=sleep, on_change=seen.append) == 2
    assert read == ["old", "new, first part, second part"]
    assert seen == [[str(test)]]


def test_a_poll_sees_an_in_place_edit_in_a_folder_it_did_not_list_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA watch r04's fix keeps the folders' listings between polls: a file edited in place leaves its folder's
    stamp alone, and is still seen, by its own."""
    monkeypatch.setattr(folders, "RACY_NS", -1)  # the folders made just now are kept too
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.fluo").write_text(ERROR_RULE)
    test = tmp_path / "rules" / "r_test.yaml"
    test.write_text("cases:\n  - {name: fires, spans: [{name: a, status: error}], expect: [has_error]}\n")

    def edit() -> None:
        with test.open("r+") as f:  # in place: the folder's stamp does not change
            f.write(test.read_text().replace("expect: [has_error]", "expect: []         "))

    codes, seen = _watch_fluo_test(["."], {2: edit})
    assert codes == [0, 1]
    assert seen == [[str(test)]]
