"""`fluo check` and `fluo eval` as INTERFACES.md describes them: output, formats, exit codes."""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner, Result
from interrupt_support import sigint_default
from lsprotocol import types as lsp
from reader_support import as_reader
from syrupy.assertion import SnapshotAssertion
from tests_paths import EXAMPLE_RULES, ROOT

from fluo_lsp.document import RuleDocument
from fluo_lsp.reporting import document_diagnostics
from fluo_run.cli import _WholeWrites, main, sarif_uri

TRACES = ROOT / "examples" / "traces"
BAD = "rule r { expect trace.spans.whree(service == 'auth').count() <= 5 }\nrule s { detect trace.duration > \"x\" }\n"


def run(*args: str, stdin: str | bytes | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin)


@pytest.fixture
def bad_rules(tmp_path: Path) -> Path:
    f = tmp_path / "bad.fluo"
    f.write_text(BAD, encoding="utf-8")
    return f


def test_check_clean_examples() -> None:
    r = run("check", str(EXAMPLE_RULES))
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    assert "0 errors" in r.stderr


def test_check_reports_every_error_with_positions(bad_rules: Path) -> None:
    r = run("check", str(bad_rules))
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert lines == [
        f"{bad_rules}:1:29: error[FLUO201] unknown method `whree` on spans; did you mean `where`?",
        f"{bad_rules}:2:32: error[FLUO300] cannot compare duration with string using `>`",
        f"  {bad_rules}:2:17: note: this is a duration",
        f"  {bad_rules}:2:34: note: this is a string",
    ]


def test_check_json(bad_rules: Path, snapshot: SnapshotAssertion) -> None:
    r = run("check", str(bad_rules), "--format", "json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    for d in out["diagnostics"]:
        d["path"] = Path(d["path"]).name
        for r in d.get("related", ()):
            r["path"] = Path(r["path"]).name
    assert out == snapshot


def test_check_sarif(bad_rules: Path) -> None:
    r = run("check", str(bad_rules), "--format", "sarif")
    assert r.exit_code == 1
    sarif = json.loads(r.stdout)
    assert sarif["version"] == "2.1.0"
    results = sarif["runs"][0]["results"]
    assert [x["ruleId"] for x in results] == ["FLUO201", "FLUO300"]
    region = results[0]["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (1, 29)
    driver = sarif["runs"][0]["tool"]["driver"]
    assert [x["id"] for x in driver["rules"]] == ["FLUO201", "FLUO300"]
    from importlib.metadata import version

    assert (driver["name"], driver["version"]) == ("fluo", version("fluo"))
    assert "informationUri" not in driver  # QA cli: it named a repository that does not exist


def test_check_emit_ir() -> None:
    r = run("check", str(EXAMPLE_RULES / "auth.fluo"), "--emit-ir")
    assert r.exit_code == 0
    assert "rule auth_retry_storm [detect] severity=critical" in r.stdout
    assert "(lookup service 'auth' :spans (root trace :trace))" in r.stdout
    unoptimised = run("check", str(EXAMPLE_RULES / "auth.fluo"), "--emit-ir", "--no-optimise").stdout
    assert "lookup" not in unoptimised and "(call where :spans" in unoptimised


def test_check_emit_ir_as_json() -> None:
    r = run("check", str(EXAMPLE_RULES / "auth.fluo"), "--emit-ir", "--format", "json")
    assert r.exit_code == 0
    out = json.loads(r.stdout)
    assert out["diagnostics"] == []
    assert [(x["rule"], Path(x["path"]).name) for x in out["ir"]] == [
        ("auth_retry_storm", "auth.fluo"),
        ("auth_login_rate", "auth.fluo"),
    ]
    text = run("check", str(EXAMPLE_RULES / "auth.fluo"), "--emit-ir").stdout
    assert "".join(x["text"] + "\n" for x in out["ir"]) == text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "/nonexistent/rules"], "/nonexistent/rules: no such file or folder"),
        (["check"], "missing argument 'PATHS...'"),
        (["check", str(EXAMPLE_RULES), "--emit-ir", "--format", "sarif"], "--emit-ir does not go with --format sarif"),
        (["check", str(EXAMPLE_RULES), "--no-optimise"], "give --emit-ir too"),
        (["eval", "--traces", "x.json"], "no rules"),
        (["eval", "--expect", "true", "--detect", "true", "--traces", "x.json"], "not both"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    r = run(*args)
    assert r.exit_code == 2
    assert message in r.output


SLIPPED = "rule t {\n  expect trace.spans.where(servce == 'a').exists()\n}\nrule u {\n  expect true\n}\n"


def test_check_strict_reports_warnings_as_errors_as_the_editor_strict_mode_does(tmp_path: Path) -> None:
    """QA editor (item 6): `fluo.strictness: strict` made warnings errors in the editor, and `fluo check` had no
    twin, so CI passed what the editor showed as an error. `--strict` reports them as errors, exits 1, and maps
    them as the editor does (`strictly`): the same codes with the same severities."""
    path = tmp_path / "typo.fluo"
    path.write_text(SLIPPED)
    plain, strict = run("check", str(path)), run("check", "--strict", str(path))
    assert plain.exit_code == 0 and "warning[FLUO205]" in plain.stdout
    assert strict.exit_code == 1, strict.output
    assert strict.stdout.startswith(f"{path}:2:28: error[FLUO205] `servce` reads as a span attribute")
    assert strict.stderr.strip() == "1 error, 0 warnings in 1 file"
    as_json = json.loads(run("check", "--strict", "--format", "json", str(path)).stdout)["diagnostics"]
    sarif = json.loads(run("check", "--strict", "--format", "sarif", str(path)).stdout)
    assert [r["level"] for r in sarif["runs"][0]["results"]] == ["error"]
    doc = RuleDocument(str(path), SLIPPED)
    editor = document_diagnostics(doc, path.as_uri(), strict=True)
    assert [(d["code"], d["severity"]) for d in as_json] == [(d.code, "error") for d in editor]
    assert [d.severity for d in editor] == [lsp.DiagnosticSeverity.Error]
    assert run("check", "--strict", str(EXAMPLE_RULES)).exit_code == 0  # no warnings: strict passes too


def test_check_empty_folder_is_an_error(tmp_path: Path) -> None:
    r = run("check", str(tmp_path))
    assert r.exit_code == 2
    assert r.stderr.strip() == f"fluo: {tmp_path}: no .fluo files in this folder"


def test_check_reports_a_file_that_is_not_utf8_and_checks_the_others(tmp_path: Path) -> None:
    latin = tmp_path / "latin.fluo"
    latin.write_bytes(b"rule r {\n  expect trace.root.name == '\xe9'\n}\n")
    ok = tmp_path / "ok.fluo"
    ok.write_text(BAD, encoding="utf-8")
    r = run("check", str(latin), str(ok), "--format", "json")
    assert r.exit_code == 1
    diags = json.loads(r.stdout)["diagnostics"]
    assert [(Path(d["path"]).name, d["code"]) for d in diags] == [
        ("latin.fluo", "FLUO106"),
        ("ok.fluo", "FLUO201"),
        ("ok.fluo", "FLUO300"),
    ]
    assert (diags[0]["line"], diags[0]["column"]) == (2, 30)
    assert diags[0]["message"] == "not UTF-8: byte 0xe9 at line 2, column 30; save it as UTF-8"
    r = run("check", str(latin))
    assert r.exit_code == 1
    assert r.stdout == f"{latin}:2:30: error[FLUO106] not UTF-8: byte 0xe9 at line 2, column 30; save it as UTF-8\n"
    assert "1 error, 0 warnings in 1 file" in r.stderr


def test_check_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    f = tmp_path / "bom.fluo"
    f.write_bytes("\ufeffrule bom { expect trace.spans.count() < 5 }\n".encode())
    r = run("check", str(f))
    assert (r.exit_code, r.stdout) == (0, "")


def test_check_reads_a_file_named_twice_once(tmp_path: Path) -> None:
    auth = EXAMPLE_RULES / "auth.fluo"
    r = run("check", str(EXAMPLE_RULES), str(auth))
    assert (r.exit_code, r.stdout) == (0, ""), r.stdout
    r = run("check", str(auth), str(auth.parent / "." / auth.name))
    assert (r.exit_code, r.stdout) == (0, ""), r.stdout
    assert "in 1 file" in r.stderr


def test_check_reads_two_hard_links_to_one_file_once(tmp_path: Path) -> None:
    """QA fmt (minor): two names of one file (a hard link, as `cp -al` makes) were read twice: a spurious FLUO213
    for each rule. One file is one file whatever its names, as a file named twice is."""
    (tmp_path / "a.fluo").write_text("rule r { expect true }\n")
    os.link(tmp_path / "a.fluo", tmp_path / "b.fluo")
    for args in ([str(tmp_path)], [str(tmp_path / "b.fluo"), str(tmp_path / "a.fluo")]):
        r = run("check", *args)
        assert (r.exit_code, r.stdout) == (0, ""), r.stdout
        assert "in 1 file" in r.stderr


def test_duplicate_rule_ids_say_where_the_first_is(tmp_path: Path) -> None:
    first, second = tmp_path / "a.fluo", tmp_path / "b.fluo"
    first.write_text("// a\nrule same { expect true }\n")
    second.write_text("rule same { expect true }\n")
    r = run("check", str(first), str(second))
    assert r.exit_code == 1
    assert r.stdout == (
        f"{second}:1:6: error[FLUO213] rule id `same` is already defined at {first}:2:6\n"
        f"  {first}:2:6: note: first defined here\n"  # the related location, as compilers print it
    )


def test_check_skips_hidden_and_dependency_folders(tmp_path: Path) -> None:
    for folder in (".hidden", "node_modules/pkg", "__pycache__", "rules/.cache"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "bad.fluo").write_text(BAD)
    (tmp_path / "rules" / "ok.fluo").write_text("rule ok { expect true }\n")
    r = run("check", str(tmp_path))
    assert (r.exit_code, r.stdout) == (0, ""), r.stdout
    assert "in 1 file" in r.stderr
    r = run("check", str(tmp_path / ".hidden"))  # named, so searched
    assert r.exit_code == 1
    assert "error[FLUO201]" in r.stdout


def test_check_and_test_pass_over_a_virtualenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA newuser r04: after `python -m venv venv; pip install .`, `fluo check .` (the pre-commit hook) read
    the bundled examples in site-packages (FLUO213 for a copied payments.fluo) and `fluo test` ran their cases."""
    rule = "rule r { expect trace.spans.count() < 3 }\n"
    test = "cases:\n  - name: one span\n    spans: [{name: a}]\n    expect: []\n"
    for venv in ("venv", "env"):
        (tmp_path / venv / "pyvenv.cfg").parent.mkdir()
        (tmp_path / venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
        examples = tmp_path / venv / "lib" / "python3.11" / "site-packages" / "fluo_run" / "examples"
        examples.mkdir(parents=True)
        (examples / "r.fluo").write_text(rule)
        (examples / "r_test.yaml").write_text(test)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.fluo").write_text(rule)
    (tmp_path / "rules" / "r_test.yaml").write_text(test)
    monkeypatch.chdir(tmp_path)
    r = run("check", ".")
    assert (r.exit_code, r.stdout) == (0, ""), r.stdout
    assert "in 1 file" in r.stderr
    r = run("test")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "venv" not in r.stdout + r.stderr
    assert "1 passed" in r.stdout + r.stderr


def test_check_passes_over_hidden_rule_files_as_test_and_trace_searches_do(tmp_path: Path) -> None:
    """macOS's AppleDouble `._ok.fluo` beside `ok.fluo` (a copy from a Mac's drive) was read as rules: FLUO106,
    exit 1, though `fluo test` and `fluo eval --traces` pass hidden files over. Named, it is still read."""
    (tmp_path / "ok.fluo").write_text("rule ok { expect true }\n")
    (tmp_path / "._ok.fluo").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \xff")
    (tmp_path / ".#ok.fluo").symlink_to("user@host.1234:1700000000")
    r = run("check", str(tmp_path))
    assert (r.exit_code, r.stdout) == (0, ""), r.stdout
    assert "in 1 file" in r.stderr
    r = run("check", str(tmp_path / "._ok.fluo"))
    assert r.exit_code == 1
    assert "error[FLUO106]" in r.stdout


@pytest.mark.parametrize("command", [["check"], ["eval", "--traces", str(TRACES / "checkout_error.json")]])
def test_a_yaml_file_named_is_refused_and_an_oddly_named_one_read_as_rules(tmp_path: Path, command: list[str]) -> None:
    """QA docs r06: `fluo check auth_test.yaml` parsed the YAML as rules and printed three FLUO1xx errors."""
    test = tmp_path / "auth_test.yml"
    test.write_text("rules: auth.fluo\ncases:\n  - name: a\n    expect: []\n")
    r = run(command[0], str(test), *command[1:])
    assert (r.exit_code, r.stdout) == (2, "")
    assert r.stderr == (
        f"fluo: {test} is YAML, not a .fluo file: name rule files, or folders to search "
        f"(a rule test runs with `fluo test {test}`)\n"
    )
    odd = tmp_path / "auth.rules"
    odd.write_text("rule a { expect trace.spans.count() < 1000 }\n")
    assert run(command[0], str(odd), *command[1:]).exit_code == 0
    odd.rename(tmp_path / "auth.fluo")
    assert run(command[0], str(tmp_path), *command[1:]).exit_code == 0  # a folder's YAML is not looked at


def test_type_errors_use_the_right_article(tmp_path: Path) -> None:
    f = tmp_path / "a.fluo"
    f.write_text("rule a { expect ['x'] contains 1 }\nrule b { expect 1 in [2s] }\n")
    r = run("check", str(f))
    assert r.stdout.splitlines() == [
        f"{f}:1:23: error[FLUO300] `contains`: a list<string> cannot contain an int",
        f"  {f}:1:17: note: this is a list<string>",
        f"  {f}:1:32: note: this is an int",
        f"{f}:2:17: error[FLUO300] `in`: cannot look for an int in a list<duration>; a duration takes a unit: "
        "`1ms` if it counts milliseconds, `1s` if seconds",
    ]


def test_eval_prints_one_signal_per_line() -> None:
    r = run("eval", str(EXAMPLE_RULES), "--traces", str(TRACES / "auth_retry_storm.json"))
    assert r.exit_code == 0, r.stderr
    signals = [json.loads(line) for line in r.stdout.splitlines()]
    assert [s["rule"] for s in signals] == ["auth_retry_storm", "auth_span_budget"]
    storm = signals[0]
    assert storm["severity"] == "critical"
    assert storm["observed"] == {"count": 60, "bound": 50}
    assert storm["trace_id"] == "e6da075228a4b9d515f246469b1b1141"
    assert len(storm["span_ids"]) == 20
    assert storm["time"].endswith("Z")
    assert storm["source"]["path"].endswith("auth.fluo")


def test_eval_text_format() -> None:
    r = run("eval", str(EXAMPLE_RULES), "--traces", str(TRACES / "payment_bypass.json"), "--format", "text")
    assert r.exit_code == 0
    assert r.stdout.startswith("[error] charge_needs_fraud_check 0f3c7af1386df9aca33e540cdd8d60cf: ")
    assert 'never { trace.has(name == "payment.bypass_validation") } held' in r.stdout


def test_eval_quiet_traces_print_nothing() -> None:
    r = run("eval", str(EXAMPLE_RULES), "--traces", str(TRACES / "healthy_login.json"), "--traces",
            str(TRACES / "payment_ok.json"))  # fmt: skip
    assert (r.exit_code, r.stdout) == (0, "")


def test_eval_traces_takes_every_file_up_to_the_next_option() -> None:
    storm, error = str(TRACES / "auth_retry_storm.json"), str(TRACES / "checkout_error.json")
    r = run("eval", str(EXAMPLE_RULES), "--traces", storm, error, "--format", "text")
    assert r.exit_code == 0, r.stderr
    rules = [line.split()[1] for line in r.stdout.splitlines()]
    assert rules == ["auth_retry_storm", "auth_span_budget", "checkout_has_no_failed_descendants",
                     "upstream_5xx_under_checkout"]  # fmt: skip
    r = run("eval", "--expect", "trace.spans.count() < 3", "--traces", storm, error)
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2
    r = run("eval", str(EXAMPLE_RULES), "-t", "-", error, "--format", "text", stdin=Path(storm).read_bytes())
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.splitlines()) == 4
    r = run("eval", "--traces", storm, str(EXAMPLE_RULES))
    assert r.exit_code == 2 and "before --traces" in r.stderr


def test_eval_text_is_one_line_per_signal(tmp_path: Path) -> None:
    f = tmp_path / "m.fluo"
    description = "multi\\nline\\tdesc\\u001b \\u202eevil"
    f.write_text(f'rule m {{\n  description: "{description}"\n  expect trace.spans.count() == 0\n}}\n')
    r = run("eval", str(f), "--traces", str(TRACES / "checkout_error.json"), "--format", "text")
    assert r.exit_code == 0, r.stderr
    trace_id = "7d82ed461982de1245298cfcb1746ec1"
    # a bidirectional override would make the rest of the line read backwards in a terminal (security QA)
    assert r.stdout == f"[warning] m {trace_id}: multi\\nline\\tdesc\\u001b \\u202eevil (count = 4, bound = 0)\n"


def test_check_text_is_one_line_per_diagnostic(tmp_path: Path) -> None:
    """A rule's string may hold a newline; the diagnostic quoting it stays on one line."""
    f = tmp_path / "nl.fluo"
    f.write_text("rule r { expect trace.spans.none(status == 'er\\nror') }\n")
    r = run("check", str(f))
    assert r.exit_code == 1
    assert (
        r.stdout
        == f"{f}:1:44: error[FLUO304] `er\\nror` is not a status (one of ok, error, unset); did you mean `error`?\n"
    )


def test_eval_one_liners_and_stdin() -> None:
    data = (TRACES / "checkout_error.json").read_bytes()
    r = run("eval", "--detect", "trace.count(status == error) > 0", "--traces", "-", stdin=data)
    assert r.exit_code == 0, r.stderr
    (signal,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert signal["rule"] == "cli" and signal["observed"] == {"count": 1, "bound": 0}
    assert signal["source"] == {"path": "<detect>", "line": 1, "column": 1}
    r = run("eval", "--expect", "trace.count(status == error) == 0", "--traces", "-", stdin=data)
    assert json.loads(r.stdout)["observed"] == {"count": 1, "bound": 0}
    assert json.loads(r.stdout)["rule"] == "cli" and json.loads(r.stdout)["source"]["path"] == "<expect>"


def test_eval_fail_on_signal_exits_3() -> None:
    storm = str(TRACES / "auth_retry_storm.json")
    assert run("eval", str(EXAMPLE_RULES), "--traces", storm, "--fail-on-signal").exit_code == 3
    healthy = str(TRACES / "healthy_login.json")
    assert run("eval", str(EXAMPLE_RULES), "--traces", healthy, "--fail-on-signal").exit_code == 0


def test_eval_rule_errors_exit_1(bad_rules: Path) -> None:
    r = run("eval", str(bad_rules), "--traces", str(TRACES / "healthy_login.json"))
    assert r.exit_code == 1
    assert "error[FLUO201]" in r.stderr and r.stdout == ""


def test_eval_bad_expression_exit_1() -> None:
    r = run("eval", "--expect", "trace.spans.count( > 1", "--traces", str(TRACES / "healthy_login.json"))
    assert r.exit_code == 1
    assert "<expect>:1:20: error[FLUO100]" in r.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"resourceSpans": [', "bad.json:1:"),
        # a span with a bad id is skipped with a warning, as `fluo serve` rejects it (test_conformance_runtime)
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "%s", "spanId": "%s", "startTimeUnixNano": '
            b'"soon"}]}]}]}' % (b"a" * 32, b"b" * 16),
            "startTimeUnixNano",
        ),
        (b"\x00\x01\x02garbage", "bad.json"),
    ],
)
def test_eval_unreadable_traces_exit_2(tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "bad.json"
    f.write_bytes(content)
    r = run("eval", str(EXAMPLE_RULES), "--traces", str(f))
    assert r.exit_code == 2
    assert r.stderr.startswith("fluo: ") and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_every_option_says_what_it_does() -> None:
    """`--help` explains each option; a choice (`--format text|json`) may speak for itself."""
    ctx = click.Context(main)
    silent = {
        (name, opt.opts[0])
        for name in main.list_commands(ctx)
        for opt in getattr(main.get_command(ctx, name), "params", [])
        if isinstance(opt, click.Option) and not opt.hidden and not opt.help and not isinstance(opt.type, click.Choice)
    }
    assert silent == set()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["test", "--junit-xml", ""], "'--junit-xml': an empty path names no file"),
        (["discover", "-o", "", "t.json"], "'-o' / '--output': an empty path names no file"),
        (["discover", "--tests", "", "t.json"], "'--tests': an empty path names no folder"),
        (["signals", "--db", ""], "'--db' (env var: 'FLUO_DB'): an empty path names no file"),
    ],
)
def test_an_empty_path_to_write_is_refused_before_the_run(
    args: list[str], option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--junit-xml ''` failed only after the run ("cannot write --junit-xml : Is a directory"), and `--tests ''`
    wrote the tests and rules into the current folder: an empty name is most likely an unset shell variable."""
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, args, prog_name="fluo", catch_exceptions=False)
    assert r.exit_code == 2
    assert (
        r.stderr
        == f"fluo: invalid value for {option}; give a {option.rsplit(' ', 1)[1]} name (see `fluo {args[0]} --help`)\n"
    )


def test_no_number_option_takes_nan_or_infinity() -> None:
    """`nan` passes every range check (each comparison with it is false), and `inf` any one-sided one: every float
    option of every command refuses them, in one line naming the option, as any value out of its range."""
    ctx = click.Context(main)
    floats = sorted(
        (name, opt.opts[0])
        for name in main.list_commands(ctx)
        for opt in getattr(main.get_command(ctx, name), "params", [])
        if isinstance(opt, click.Option) and isinstance(opt.type, click.types.FloatParamType)
    )
    assert {("discover", "--min-confidence"), ("test", "--watch-interval"), ("demo", "--timeout")} <= set(floats)
    for name, flag in floats:
        for value in ("nan", "NaN", "inf", "-inf", "1e999"):
            r = run(name, flag, value)
            assert r.exit_code == 2, (name, flag, value, r.output)
            assert r.stderr.startswith(f"fluo: invalid value for '{flag}': {value} is not ")
            assert r.stderr.count("\n") == 1 and "Traceback" not in r.output


def test_help_has_examples() -> None:
    for cmd in ("check", "eval"):
        r = run(cmd, "--help")
        assert r.exit_code == 0 and "Example" in r.output


def test_console_script_runs_as_a_new_user_would() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "fluo_run.cli", "eval", str(EXAMPLE_RULES), "--traces", str(TRACES), "--format", "text"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    rules = {line.split()[1] for line in r.stdout.splitlines()}
    assert rules == {
        "auth_retry_storm",
        "auth_span_budget",
        "checkout_has_no_failed_descendants",
        "upstream_5xx_under_checkout",
        "charge_needs_fraud_check",
        "auth_login_rate",
    }


def test_a_reader_that_goes_away_stops_fluo_quietly_with_the_sigpipe_status(tmp_path: Path) -> None:
    one = json.loads((TRACES / "checkout_error.json").read_text())
    trace_id = one["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
    text = json.dumps(one)
    many = tmp_path / "many.jsonl"
    many.write_text("".join(text.replace(trace_id, f"{i:032x}") + "\n" for i in range(1, 3001)))
    p = subprocess.Popen(
        [sys.executable, "-m", "fluo_run.cli", "eval", str(EXAMPLE_RULES), "--traces", str(many)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stderr is not None
    first = json.loads(p.stdout.readline())  # as `| head -1` reads, then goes away
    p.stdout.close()
    err = p.stderr.read().decode()
    p.stderr.close()
    assert p.wait(timeout=60) == 141, err
    assert first["trace_id"] == f"{1:032x}"
    assert err == ""  # no traceback, no "Exception ignored"


def test_cost_limit(tmp_path: Path) -> None:
    f = tmp_path / "cubic.fluo"
    f.write_text("rule cubic { expect trace.spans.all(trace.spans.all(trace.spans.all(duration > 0s))) }\n")
    r = run("check", str(f))
    assert r.exit_code == 1
    assert "error[FLUO404]" in r.stdout
    assert run("check", str(f), "--cost-limit", "0").exit_code == 0
    healthy = str(TRACES / "healthy_login.json")
    assert run("eval", str(f), "--traces", healthy).exit_code == 1
    assert run("eval", str(f), "--traces", healthy, "--cost-limit", "0").exit_code == 0


def test_check_reports_deep_metadata_as_a_limit(tmp_path: Path) -> None:
    f = tmp_path / "deep.fluo"
    f.write_text("rule r {\n  tags: " + "[" * 5_000 + "]" * 5_000 + "\n  expect trace.spans.count() > 0\n}\n")
    r = run("check", str(f))
    assert r.exit_code == 1
    assert r.stdout == f"{f}:2:9: error[FLUO400] metadata list nested 5000 levels deep; the limit is 100\n"


def test_eval_says_when_there_is_nothing_to_evaluate(tmp_path: Path) -> None:
    """No rules, or no spans: it ran (exit 0), and says why nothing came of it."""
    empty = tmp_path / "empty.fluo"
    empty.write_text("// nothing yet\n")
    r = run("eval", str(empty), "--traces", str(TRACES / "healthy_login.json"))
    assert (r.exit_code, r.stdout) == (0, "")
    assert r.stderr == f"fluo: no rules to evaluate in {empty} (none defined, or all disabled)\n"
    nothing = tmp_path / "nothing.json"
    nothing.write_text('{"resourceSpans": []}')
    r = run("eval", "--detect", "true", "--traces", str(nothing))
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", f"fluo: no spans in {nothing}\n")


def test_blank_standard_input_reads_as_a_blank_file_does(tmp_path: Path) -> None:
    """QA discover r14: a blank line on stdin was "not an OTLP protobuf trace message ... Wire format was corrupt",
    in `eval` and `discover`, while the same bytes in a file read as no spans."""
    blank = tmp_path / "blank.json"
    blank.write_text("\n \r\n\t")
    for command in (["eval", "--detect", "true", "--traces"], ["discover"]):
        from_file = run(*command, str(blank))
        from_stdin = run(*command, "-", stdin="\n \r\n\t")
        assert from_file.stderr == f"fluo: no spans in {blank}\n"
        assert (from_stdin.exit_code, from_stdin.stderr) == (from_file.exit_code, "fluo: no spans in -\n")


def test_require_spans_fails_a_gate_on_input_with_no_spans(tmp_path: Path) -> None:
    """QA (cli r10): `--fail-on-signal` as a CI gate passed (exit 0) on a zero-byte file, `{"resourceSpans": []}`
    or empty stdin from a failed upstream step: nothing was checked. `--require-spans` makes that exit 2; without
    it, no spans is still a run (0), as INTERFACES.md has it."""
    zero = tmp_path / "zero.json"
    zero.write_text("")
    none = tmp_path / "none.json"
    none.write_text('{"resourceSpans": []}')
    gate = ["eval", "--detect", "trace.count(status == error) > 0", "--fail-on-signal"]
    for source, stdin in ((str(zero), None), (str(none), None), ("-", "")):
        r = run(*gate, "--require-spans", "--traces", source, stdin=stdin)
        assert (r.exit_code, r.stdout) == (2, ""), r.stderr
        assert r.stderr == f"fluo: no spans in {source}, and --require-spans was given\n"
        assert run(*gate, "--traces", source, stdin=stdin).exit_code == 0
    ok = run(*gate, "--require-spans", "--traces", str(TRACES / "healthy_login.json"))
    assert (ok.exit_code, ok.stdout) == (0, "")
    fired = run(*gate, "--require-spans", "--traces", str(TRACES / "checkout_error.json"))
    assert fired.exit_code == 3


def test_input_whose_every_span_has_invalid_ids_is_said_so(tmp_path: Path) -> None:
    """Review 2: a file whose spans were all skipped for their ids was "no spans in FILE", as an empty one is,
    beside the warning that they were skipped; `--require-spans` says which it was."""
    bad = tmp_path / "bad.json"
    span = '{"traceId": "' + "0" * 32 + '", "spanId": "' + "1" * 16 + '", "name": "s", "startTimeUnixNano": "1"}'
    bad.write_text('{"resourceSpans": [{"scopeSpans": [{"spans": [' + span + "]}]}]}")
    gate = ["eval", "--detect", "trace.count(status == error) > 0", "--traces", str(bad)]
    ran, refused = run(*gate), run(*gate, "--require-spans")
    assert ran.exit_code == 0 and ran.stderr.endswith(f"fluo: no spans with valid ids in {bad}\n")
    assert "skipped 1 span with an invalid id" in ran.stderr
    assert refused.exit_code == 2
    assert refused.stderr.endswith(f"fluo: no spans with valid ids in {bad}, and --require-spans was given\n")


def chain_file(tmp_path: Path, n: int) -> Path:
    """A trace of `n` nested spans, where `ancestors` inside a predicate costs n²/2 span visits."""
    from fluo_lang.otlp import spans_to_json
    from fluo_lang.trace import Span

    spans, parent = [], b""
    for i in range(n):
        sid = (i + 1).to_bytes(8, "big")
        spans.append(Span(trace_id=b"c" * 16, span_id=sid, parent_id=parent, name="c", start=i, end=2 * n - i))
        parent = sid
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(spans_to_json(spans)), encoding="utf-8")
    return path


DEEP = "trace.spans.where(name == 'c').max(ancestors.count()) > 0"


def test_eval_has_the_per_trace_evaluation_budget_serve_has(tmp_path: Path) -> None:
    """QA M3: SECURITY.md promises a run-time budget per trace; `fluo eval` ran a 20,000-span chain for minutes."""
    chain = str(chain_file(tmp_path, 400))
    r = run("eval", "--detect", DEEP, "--traces", chain, "--eval-budget", "5000")
    assert r.exit_code == 0, r.stderr
    [signal] = [json.loads(line) for line in r.stdout.splitlines()]
    assert signal["rule"] == "fluo.evaluation_truncated" and signal["trace_id"] == "63" * 16
    assert signal["observed"] == {"spans": 400, "budget": 5000, "rules_skipped": ["cli"]}
    for unbounded in (["--eval-budget", "0"], []):  # the default, 2,000,000 as in serve, is far from 400²/2
        r = run("eval", "--detect", DEEP, "--traces", chain, *unbounded)
        assert [json.loads(line)["rule"] for line in r.stdout.splitlines()] == ["cli"]
    r = run("eval", "--detect", DEEP, "--traces", chain, "--eval-budget", "-1")
    assert r.exit_code == 2 and "--eval-budget" in r.stderr
    help_text = run("eval", "--help").stdout
    assert "--eval-budget" in help_text and "2000000" in help_text


def test_fluo_test_has_the_per_trace_evaluation_budget(tmp_path: Path) -> None:
    chain_file(tmp_path, 400)
    (tmp_path / "deep.fluo").write_text(f"rule deep {{ detect {DEEP} }}\n", encoding="utf-8")
    (tmp_path / "deep_test.yaml").write_text(
        "cases:\n  - name: chain\n    traces: chain.json\n    expect: [{rule: deep}]\n", encoding="utf-8"
    )
    assert run("test", str(tmp_path)).exit_code == 0
    r = run("test", str(tmp_path), "--eval-budget", "5000", "--format", "json")
    assert r.exit_code == 1
    [case] = json.loads(r.stdout)["files"][0]["cases"]
    assert [s["rule"] for s in case["unexpected"]] == ["fluo.evaluation_truncated"]
    assert "--eval-budget" in run("test", "--help").stdout


def test_eval_says_when_a_span_ends_before_it_starts() -> None:
    """QA L1: such a span is read as ending when it starts (as OpenTelemetry's SDKs do), and said so on stderr."""
    backwards = str(ROOT / "tests" / "conformance" / "traces" / "end_before_start.json")
    r = run("eval", "--detect", "trace.spans.max(duration) < 0s or trace.duration < 0s", "--traces", backwards)
    assert (r.exit_code, r.stdout) == (0, "")
    assert r.stderr == (
        "<detect>:1:35: warning[FLUO307] this comparison never holds: a duration is never negative\n"
        f"fluo: warning: {backwards}: 1 span ends before it starts (first: span 0000000000000002 of trace "
        "000000000000000000000000000000c3); each is read as ending when it starts, with duration 0\n"
    )


@pytest.mark.parametrize("command", [["eval", str(EXAMPLE_RULES), "--traces"], ["discover"]])
def test_an_input_larger_than_memory_is_one_line_naming_it(command: list[str]) -> None:
    """QA r09: `/dev/zero` under a memory limit ended in a MemoryError traceback (exit 1)."""
    limited = f'ulimit -v {700 * 1024} && exec "$0" -m fluo_run.cli "$@"'  # KiB: room to start, not for /dev/zero
    r = subprocess.run(
        ["sh", "-c", limited, sys.executable, *command, "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr == "fluo: /dev/zero: out of memory reading it: too large for the memory fluo may use\n"


def _lossy_trace_file(folder: Path) -> Path:
    """Five traces: in two a span ends before it starts, in one a span reuses the span id of another."""
    spans = []
    for t in range(1, 6):
        tid = f"{t:032x}"
        spans.append({"traceId": tid, "spanId": f"{t:014x}01", "name": "root", "startTimeUnixNano": "1000",
                      "endTimeUnixNano": "9000"})  # fmt: skip
        end = "1000" if t in (2, 4) else "5000"
        spans.append({"traceId": tid, "spanId": f"{t:014x}02", "parentSpanId": f"{t:014x}01", "name": "child",
                      "startTimeUnixNano": "2000", "endTimeUnixNano": end})  # fmt: skip
    spans.append({"traceId": f"{3:032x}", "spanId": f"{3:014x}02", "parentSpanId": f"{3:014x}01", "name": "other",
                  "startTimeUnixNano": "3000", "endTimeUnixNano": "4000"})  # fmt: skip
    res = {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]}
    path = folder / "lossy.json"
    path.write_text(json.dumps({"resourceSpans": [{"resource": res, "scopeSpans": [{"spans": spans}]}]}), "utf-8")
    return path


def test_every_command_that_reads_traces_says_what_reading_them_changed_or_lost(tmp_path: Path) -> None:
    """QA r07/r08: spans clamped for ending before they start were said by `fluo eval` only (`fluo discover` built
    duration bounds from them silently), spans dropped for another's span id by `fluo discover` only; each command
    now says both, in the same words. QA ci (minor): the first named no file, as the unknown-key warning does,
    and a file named twice counted its spans twice; each command names the file it is given twice here.
    Conformance tour: the duplicate-span warning named no file or span, and `fluo test` said it once for two
    cases with no case name; it names the first span dropped and its file, and `fluo test` the cases."""
    traces = _lossy_trace_file(tmp_path)
    (tmp_path / "r.fluo").write_text("rule r { expect trace.spans.count() < 100 }\n", encoding="utf-8")
    case = "  - name: {}\n    traces: [lossy.json, lossy.json]\n    expect: []\n"
    (tmp_path / "r_test.yaml").write_text("cases:\n" + case.format("c") + case.format("d"), "utf-8")
    said = [
        f"fluo: warning: {traces}: 2 spans end before they start (first: span 0000000000000202 of trace "
        "00000000000000000000000000000002); each is read as ending when it starts, with duration 0",
        "fluo: warning: dropped 1 duplicate span (first: span 0000000000000302 of trace "
        f"00000000000000000000000000000003, in {traces}): each had the span id of a different span of the same "
        "trace (the last one read was kept); fix the id generator that sent them",
    ]
    for args in (
        ["eval", str(tmp_path / "r.fluo"), "--traces", str(traces), str(traces)],
        ["discover", str(traces), str(traces), "--min-support", "1"],
        ["test", str(tmp_path)],
    ):
        r = run(*args)
        assert r.exit_code == 0, (args, r.output)
        cases = f" (cases 'c', 'd' of {tmp_path / 'r_test.yaml'})" if args[0] == "test" else ""
        assert [line for line in r.stderr.splitlines() if "warning" in line] == [said[0], said[1] + cases], args


def test_copies_that_differ_in_resource_attributes_alone_do_not_blame_the_id_generator(tmp_path: Path) -> None:
    """One trace exported through two pipelines that each add their own `service.instance.id` was said to hold
    "duplicate spans ... of a different span"; fix the id generator": the copies are the same spans, and each
    command now says what differs. A different span with the same span id is still the id generator's bug."""
    spans = [
        {"traceId": f"{t:032x}", "spanId": f"{t:014x}{s:02x}", "name": "root" if s == 1 else "child",
         "startTimeUnixNano": "1000", "endTimeUnixNano": "9000"}
        for t in (1, 2) for s in (1, 2)
    ]  # fmt: skip

    def resource(instance: str) -> dict[str, Any]:
        keys = {"service.name": "api", "service.instance.id": instance}
        return {"attributes": [{"key": k, "value": {"stringValue": v}} for k, v in keys.items()]}

    pipelines = [{"resource": resource(i), "scopeSpans": [{"spans": spans}]} for i in ("collector-a", "collector-b")]
    traces = tmp_path / "twice.json"
    traces.write_text(json.dumps({"resourceSpans": pipelines}), "utf-8")
    (tmp_path / "r.fluo").write_text("rule r { expect trace.spans.count() < 100 }\n", encoding="utf-8")
    case = "cases:\n  - name: c\n    traces: [twice.json]\n    expect: []\n"
    (tmp_path / "r_test.yaml").write_text(case, "utf-8")
    said = [
        "fluo: warning: dropped 4 copies of spans (first: span 0000000000000101 of trace "
        f"00000000000000000000000000000001, in {traces}) that differ from the copy kept (the last one read) in "
        "their resource attributes alone: is a trace exported through two pipelines or collectors that add "
        "different resource attributes?"
    ]
    for args in (
        ["eval", str(tmp_path / "r.fluo"), "--traces", str(traces)],
        ["discover", str(traces), "--min-support", "1"],
        ["test", str(tmp_path)],
    ):
        r = run(*args)
        assert r.exit_code == 0, (args, r.output)
        case = f" (case 'c' of {tmp_path / 'r_test.yaml'})" if args[0] == "test" else ""
        assert [line for line in r.stderr.splitlines() if "warning" in line] == [said[0] + case], args


@pytest.mark.parametrize(
    ("flag", "expr", "stderr"),
    [
        (
            "--expect",
            "trace.spans.count() > ",
            "<expect>:1:22: error[FLUO104] expected an expression before end of file",
        ),
        (
            "--detect",
            "trace.spans.where(name == ).exists()",
            "<detect>:1:27: error[FLUO100] expected an expression before `)`",
        ),
        ("--detect", "(", "<detect>:1:2: error[FLUO104] unexpected end of file; expected an expression"),
        ("--detect", "trace.spans.", "<detect>:1:13: error[FLUO104] expected a name before end of file"),
        ("--detect", "1 s > 0s", "<detect>:1:1: error[FLUO100] a duration has no space before its unit: write `1s`"),
        ("--detect", "trace.spans.count() s > 0", "<detect>:1:21: error[FLUO100] unexpected `s`; expected end of file"),
    ],
)
def test_a_missing_operand_is_an_expected_expression_and_a_cut_clause_adds_no_type_error(
    flag: str, expr: str, stderr: str
) -> None:
    """QA L8: a missing operand read "expected a name" (a number, `(` or `-` would do too), and `1 s > 0s`
    added FLUO301 "must be a boolean, found int" for the `1` the recovery kept."""
    r = run("eval", flag, expr, "--traces", str(TRACES / "healthy_login.json"))
    assert (r.exit_code, r.stderr.splitlines()) == (1, [stderr])


def test_a_stray_token_after_a_whole_clause_leaves_its_type_errors(tmp_path: Path) -> None:
    """QA N8: a syntax error right after a clause hid the clause's own type errors, which are not the parser's guess."""
    f = tmp_path / "stray.fluo"
    f.write_text("rule a {\n  expect trace.spans.where(name == 1).count() > '5' )\n}\n")
    r = run("check", str(f))
    assert [line.split(": error[")[1][:7] for line in r.stdout.splitlines() if ": error[" in line] == [
        "FLUO300",
        "FLUO300",
        "FLUO100",
    ]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["signals", "--db", "."],
            "fluo: invalid value for '--db' (env var: 'FLUO_DB'): File '.' is a directory (see `fluo signals --help`)",
        ),
        (["eval", "--bogus"], "fluo: no such option '--bogus' (see `fluo eval --help`)"),
        (["nosuch"], "fluo: no such command 'nosuch' (see `fluo --help`)"),
        # QA new-user tour: a typo of a command got no "did you mean", and `fluo serve rules/` no word of --rules
        (["sigals"], "fluo: no such command 'sigals'; did you mean 'signals'? (see `fluo --help`)"),
        (
            ["serve", "rules/"],
            "fluo: got unexpected extra argument (rules/): rule paths go after --rules (fluo serve --rules rules/) "
            "(see `fluo serve --help`)",
        ),
        (
            ["serve", "a", "my rules"],
            "fluo: got unexpected extra arguments (a my rules): rule paths go after --rules "
            "(fluo serve --rules a --rules 'my rules') (see `fluo serve --help`)",
        ),
        (["--bogus"], "fluo: no such option '--bogus' (see `fluo --help`)"),  # the group's own, before a command
        (["--bogus", "eval"], "fluo: no such option '--bogus' (see `fluo --help`)"),
        (["eval", "--expect", "true", "--detect", "true", "-t", "t.json"], "fluo: give --expect or --detect, not both"),
    ],
)
def test_a_usage_error_is_one_line(args: list[str], line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """INTERFACES.md: errors about user input are one clear line (click's usage block took four), each after
    `fluo: `, whether click or fluo found it (QA docs r07: click's began `fluo eval: `, fluo's own `fluo: `)."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args, prog_name="fluo")
    assert result.exit_code == 2
    assert result.stderr.startswith(line) and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--http"],
        ["test", "--run"],
        ["signals", "--db"],
        ["check", "--format"],
        ["eval", "x", "--traces"],
        ["discover", "--tests"],
        ["demo", "--rules"],
        ["fmt", "--stdin-filename"],
    ],
)
def test_an_option_without_its_value_points_at_its_commands_help(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA newuser r05: click's parser says "requires an argument" with no context, and the hint was
    "(see `fluo --help`)", which does not describe the option, where every other usage error names the
    command's own help."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args, prog_name="fluo")
    assert result.exit_code == 2
    assert result.stderr == f"fluo: option '{args[-1]}' requires an argument (see `fluo {args[0]} --help`)\n"


def test_bare_fluo_shows_its_help_whole() -> None:
    """No command at all is not a usage error said in one line: click shows the help, as before."""
    result = CliRunner().invoke(main, [], prog_name="fluo")
    assert result.stderr.startswith("Usage: fluo [OPTIONS] COMMAND [ARGS]...\n") and "Commands:" in result.stderr


def test_ctrl_c_exits_130_quietly(tmp_path: Path) -> None:
    """Click said "Aborted!" and exited 1, which `fluo eval` gives rule errors. The run is held reading a
    trace file that is a FIFO, so the signal lands mid-run however slow the machine."""
    import os

    from interrupt_support import interrupt_while_reading

    fifo = tmp_path / "t.json"
    os.mkfifo(fifo)
    code, out, err = interrupt_while_reading(
        [sys.executable, "-m", "fluo_run.cli", "eval", "--detect", "true", "--traces", str(fifo)], fifo
    )
    assert (code, out, err) == (130, b"", b"")


TYPO_TRACE = {
    "resourceSpans": [
        {
            "scopespans": [{"spans": []}],
            "scopeSpans": [
                {
                    "spans": [
                        {
                            "traceId": "0af7651916cd43dd8448eb211c80319c",
                            "spanId": "4444444444444444",
                            "name": "charge",
                            "atributes": [{"key": "amount", "value": {"doubleValue": 5000.0}}],
                        }
                    ]
                }
            ],
        }
    ]
}


def test_eval_and_discover_warn_of_a_misspelt_key_in_a_trace_file(tmp_path: Path) -> None:
    """QA docs repro 05: `atributes` lost the span's attributes with no word on stderr. The file is still read
    (unknown fields are ignored), and each unknown key is named on stderr, with the field it is close to."""
    trace = tmp_path / "t.json"
    trace.write_text(json.dumps(TYPO_TRACE), encoding="utf-8")
    warnings = (
        f"fluo: warning: {trace}: resourceSpans[0]: unknown key `scopespans` (no field of an OTLP ResourceSpans),"
        " ignored; did you mean `scopeSpans`?\n"
        f"fluo: warning: {trace}: resourceSpans[0].scopeSpans[0].spans[0]: unknown key `atributes` (no field of an"
        " OTLP Span), ignored; did you mean `attributes`?\n"
    )
    r = run("eval", "--detect", "trace.spans.where(amount > 1000).exists()", "--traces", str(trace))
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", warnings)
    r = run("discover", str(trace))
    assert r.exit_code == 0, r.output
    assert r.stderr.startswith(warnings)
    r = run("eval", "--detect", "trace.spans.count() > 0", "--traces", str(ROOT / "examples" / "traces"))
    assert r.exit_code == 0 and r.stderr == ""


def test_eval_lists_the_same_span_ids_whatever_order_the_files_come_in(tmp_path: Path) -> None:
    """QA: the same 25 spans in two files gave other `span_ids` (and other ones of 24 culprits) with the files
    named in the other order: they followed the order spans were read in."""
    rules = tmp_path / "r.fluo"
    rules.write_text("rule errs { detect trace.spans.where(status == error).count() > 3 }\n", encoding="utf-8")
    files = [str(ROOT / "tests/conformance/traces" / f"arrival_order_{n}.json") for n in ("late", "early")]
    outs = []
    for order in (files, files[::-1]):
        result = run("eval", str(rules), *(a for f in order for a in ("--traces", f)))
        assert result.exit_code == 0, result.output
        outs.append([json.loads(line) for line in result.stdout.splitlines()])
    assert outs[0] == outs[1] and len(outs[0][0]["span_ids"]) == 20


def test_a_folder_below_that_cannot_be_read_stops_check_fmt_and_eval(tmp_path: Path) -> None:
    """QA (cli r01): a subfolder its user may not read was passed over silently, so `fluo check rules/`,
    `fluo fmt --check rules/` and `fluo eval --traces traces/` exited 0 on files they never read. Now exit 2
    naming the folder, as for an unreadable file. As root, the commands run as `nobody`."""
    folder = Path(tempfile.mkdtemp(prefix="fluo-locked-"))
    rules, traces = folder / "rules", folder / "traces"
    (rules / "sub").mkdir(parents=True)
    (traces / "sub").mkdir(parents=True)
    (rules / "ok.fluo").write_text("rule ok {\n  expect trace.spans.count() < 5\n}\n")
    (rules / "sub" / "broken.fluo").write_text("rule broken {\n  expect trace.spans.count( \n}\n")
    (traces / "a.json").write_text('{"resourceSpans": []}\n')
    (traces / "sub" / "b.json").write_text('{"resourceSpans": []}\n')
    # what the commands import on first use, imported while the files can be read
    assert run("eval", str(rules / "ok.fluo"), "--traces", str(traces / "a.json")).exit_code == 0
    try:
        for f in (folder, rules, traces):
            f.chmod(0o755)
        for f in (rules / "sub", traces / "sub"):
            f.chmod(0)

        def outcomes() -> str:
            runs = [
                ["check", str(rules)],
                ["fmt", "--check", str(rules)],
                ["eval", str(rules / "ok.fluo"), "--traces", str(traces)],
            ]
            return json.dumps([[r.exit_code, r.stderr] for r in (run(*args) for args in runs)])

        assert json.loads(as_reader(outcomes)) == [
            [2, f"fluo: cannot read {rules / 'sub'}: Permission denied\n"],
            [2, f"fluo: cannot read {rules / 'sub'}: Permission denied\n"],
            [2, f"fluo: cannot read {traces / 'sub'}: Permission denied\n"],
        ]
    finally:
        for f in (rules / "sub", traces / "sub"):
            f.chmod(0o755)
        shutil.rmtree(folder)


def test_check_text_escapes_file_names_as_it_escapes_messages(tmp_path: Path) -> None:
    """QA (cli r03): file names were printed raw, so a newline in one forged a whole `file:1:1: error[...]`
    line for CI problem matchers, and an ESC sequence vanished (click strips it off a terminal)."""
    folder = tmp_path / "r"
    folder.mkdir()
    forged = "a\nforged.fluo:9:9: error[FLUO999] x.fluo"
    for name in (forged, "b\x1b[31m.fluo"):
        (folder / name).write_text("rule r_NAME {\n  expect foo\n}\n".replace("NAME", str(len(name))))
    r = run("check", str(folder))
    assert r.exit_code == 1
    unknown = "error[FLUO200] unknown name `foo`; a rule starts from `trace` (or `window`)"
    assert r.stdout.splitlines() == [
        f"{folder}/a\\nforged.fluo:9:9: error[FLUO999] x.fluo:2:10: {unknown}",
        f"{folder}/b\\u001b[31m.fluo:2:10: {unknown}",
    ]
    missing = run("check", str(folder / "c\nforged.fluo:1:1: error[FLUO999] y"))
    assert missing.stderr == f"fluo: {folder}/c\\nforged.fluo:1:1: error[FLUO999] y: no such file or folder\n"


def test_check_sarif_locations_are_uri_references_with_utf16_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA (cli r06, r07): `artifactLocation.uri` was the raw path (a space, `#` or `%` is no URI reference;
    `#` starts a fragment) and columns counted code points with no `columnKind`, so readers took SARIF's
    default, UTF-16 code units, one off per emoji before the error. FLUO213's first definition was lost."""
    folder = tmp_path / "sp ace#1"
    folder.mkdir()
    (folder / "50%.fluo").write_text('rule e {\n  expect trace.has(name == "\U0001f600\U0001f600") and foo\n}\n')
    (tmp_path / "twice.fluo").write_text("rule e {\n  expect trace.spans.count() < 5\n}\n")
    monkeypatch.chdir(tmp_path)
    r = run("check", "--format", "sarif", "sp ace#1", str(tmp_path / "twice.fluo"))
    assert r.exit_code == 1, r.output
    sarif = json.loads(r.stdout)
    run_ = sarif["runs"][0]
    assert run_["columnKind"] == "utf16CodeUnits"
    assert run_["originalUriBaseIds"] == {"%SRCROOT%": {"uri": tmp_path.as_uri() + "/"}}
    located = [(x["ruleId"], x["locations"][0]["physicalLocation"], x.get("relatedLocations")) for x in run_["results"]]
    first = {"uri": "sp%20ace%231/50%25.fluo", "uriBaseId": "%SRCROOT%"}
    assert located == [
        (
            "FLUO213",
            {
                "artifactLocation": {"uri": (tmp_path / "twice.fluo").as_uri()},
                "region": {"startLine": 1, "startColumn": 6, "endLine": 1, "endColumn": 7},
            },
            [
                {
                    "id": 1,
                    "physicalLocation": {
                        "artifactLocation": first,
                        "region": {"startLine": 1, "startColumn": 6, "endLine": 1, "endColumn": 7},
                    },
                    "message": {"text": "first defined here"},
                }
            ],
        ),
        (
            "FLUO200",
            {"artifactLocation": first, "region": {"startLine": 2, "startColumn": 40, "endLine": 2, "endColumn": 43}},
            None,
        ),
    ]


def test_sarif_rules_have_the_descriptions_and_help_code_scanning_requires(tmp_path: Path) -> None:
    """QA fmt r03: each rule had only `id` and `shortDescription`; GitHub code scanning requires `fullDescription`
    and `help` (without them an alert's page shows no help). They come from `CODES`, as docs/diagnostics.md does.
    Each result has a `partialFingerprints` that does not change when lines are added above it."""
    from fluo_lang.diagnostics import CODES

    rules = (
        'rule a { expect trace.spans.where(servce == "x").count() > "x" }\n'
        "rule a { expect trace.duration > 5 and trace.duration < 9 }\n"
    )
    (tmp_path / "a.fluo").write_text(rules)
    first = json.loads(run("check", "--format", "sarif", str(tmp_path / "a.fluo")).stdout)["runs"][0]
    assert [r["id"] for r in first["tool"]["driver"]["rules"]] == ["FLUO205", "FLUO213", "FLUO300"]
    for rule in first["tool"]["driver"]["rules"]:
        text = CODES[rule["id"]]
        assert rule["shortDescription"] == rule["fullDescription"] == {"text": text}
        assert rule["help"]["text"].startswith(f"{rule['id']}: {text}\n\n")
        assert "docs/diagnostics.md" in rule["help"]["text"] and text in rule["help"]["markdown"]
    (tmp_path / "a.fluo").write_text("// a comment\n\n" + rules)
    moved = json.loads(run("check", "--format", "sarif", str(tmp_path / "a.fluo")).stdout)["runs"][0]
    prints = [r["partialFingerprints"]["fluo/v1"] for r in first["results"]]
    assert [r["ruleId"] for r in first["results"]] == ["FLUO205", "FLUO300", "FLUO213", "FLUO300", "FLUO300"]
    assert len(set(prints)) == 5  # the two FLUO300 of one line told apart
    assert [r["partialFingerprints"]["fluo/v1"] for r in moved["results"]] == prints
    assert [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in moved["results"]] == [3, 3, 4, 4, 4]


def test_sarif_uri_encodes_what_a_uri_reference_reserves() -> None:
    assert sarif_uri("c:d/x y.fluo") == {"uri": "c%3Ad/x%20y.fluo", "uriBaseId": "%SRCROOT%"}  # not scheme `c:`
    assert sarif_uri("r/../caf\xe9?.fluo") == {"uri": "r/../caf%C3%A9%3F.fluo", "uriBaseId": "%SRCROOT%"}
    assert sarif_uri("/srv/a b#1.fluo") == {"uri": "file:///srv/a%20b%231.fluo"}


def test_sarif_names_a_file_outside_the_folder_it_ran_in_by_a_file_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA: `fluo check ../x.fluo` gave `../x.fluo` based on `%SRCROOT%`, a file outside the root (invalid), and
    run from `/` the root was `file:////`."""
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    outside = {"uri": (tmp_path / "caf\xe9?.fluo").as_uri()}
    assert outside["uri"].endswith("/caf%C3%A9%3F.fluo")
    assert sarif_uri("../caf\xe9?.fluo") == sarif_uri("x/../../caf\xe9?.fluo") == outside
    assert sarif_uri("..x/a.fluo") == {"uri": "..x/a.fluo", "uriBaseId": "%SRCROOT%"}
    (tmp_path / "x.fluo").write_text("rule e { expect foo }\n")
    run_ = json.loads(run("check", "--format", "sarif", "../x.fluo").stdout)["runs"][0]
    assert run_["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": (tmp_path / "x.fluo").as_uri()
    }
    monkeypatch.chdir("/")
    run_ = json.loads(run("check", "--format", "sarif", str(tmp_path / "x.fluo")).stdout)["runs"][0]
    assert run_["originalUriBaseIds"] == {"%SRCROOT%": {"uri": "file:///"}}


def _fluo(*args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "fluo_run.cli", *args], stderr=subprocess.PIPE, **kwargs)


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_a_reader_that_goes_away_stops_check_json_and_sarif_with_the_sigpipe_status(fmt: str, tmp_path: Path) -> None:
    """QA (cli r09): `fluo check --format json | head -c 10` exited 0 (1 with errors), where text gives 141: the
    document was one write, which the pipe cut short when its reader left, without an error."""
    f = tmp_path / "w.fluo"
    f.write_text("".join(f"rule r{i} {{ expect trace.spans.count() >= 0 }}\n" for i in range(3000)))  # FLUO307s
    p = _fluo("check", "--format", fmt, str(f), stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    assert p.stdout.read(10).startswith(b"{")  # as `| head -c 10` reads, then goes away
    p.stdout.close()
    err = p.stderr.read().decode()
    p.stderr.close()
    assert p.wait(timeout=60) == 141, err
    assert err == ""


def test_a_full_non_blocking_stdout_is_waited_on_not_spun_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """QA rev r05: on a non-blocking stdout (one shared with a process that set it so) that was full, every write
    was retried at once, and a command with a slow reader burnt a CPU until it read."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    waited = threading.Event()
    real = select.select

    def waiting(*args: Any) -> Any:
        waited.set()
        return real(*args)

    monkeypatch.setattr(select, "select", waiting)
    got: list[bytes] = []

    def slow_reader() -> None:  # reads once the writer waits (or, when it never does, after a while)
        waited.wait(timeout=30)
        with os.fdopen(r, "rb") as f:
            got.append(f.read())

    reader = threading.Thread(target=slow_reader)
    reader.start()
    data = b"x" * (1 << 20)  # more than a pipe holds
    with _WholeWrites(w, "w") as out:
        assert out.write(data) == len(data)
    reader.join(timeout=60)
    assert waited.is_set() and got == [data]


WARNED = "rule r {\n  expect trace.spans.count() >= 0\n}\n"  # check writes a warning
FIRES = "rule d {\n  detect trace.spans.count() > 0\n}\n"  # eval writes a signal


@pytest.mark.parametrize(
    ("rule", "args"),
    [
        (WARNED, ["check", "--format", "text"]),
        (WARNED, ["check", "--format", "json"]),
        (WARNED, ["check", "--format", "sarif"]),
        (FIRES, ["eval", "--traces", str(TRACES / "checkout_error.json")]),
    ],
)
def test_output_that_cannot_be_written_is_one_line_and_exit_2(rule: str, args: list[str], tmp_path: Path) -> None:
    """QA (cli r08): `fluo check ... > /dev/full` (a full disk) ended in a traceback and 1, the status of rule
    errors: a CI job read a lint failure."""
    f = tmp_path / "r.fluo"
    f.write_text(rule)
    command, *rest = args
    with open("/dev/full", "wb") as full:
        p = _fluo(command, str(f), *rest, stdout=full)
        _, err = p.communicate(timeout=60)
    assert (p.returncode, err.decode()) == (2, "fluo: cannot write the output: No space left on device\n")


def test_check_dash_reads_rules_from_stdin_as_fmt_does() -> None:
    """QA (cli, minor): `fluo check -` said "-: no such file or folder" while `fluo fmt -` and `--traces -` read
    standard input."""
    r = run("check", "-", stdin="rule a {\n  expect foo\n}\n")
    assert (r.exit_code, r.stdout) == (
        1,
        "<stdin>:2:10: error[FLUO200] unknown name `foo`; a rule starts from `trace` (or `window`)\n",
    )
    assert r.stderr == "1 error, 0 warnings in 1 file\n"
    bad = run("check", "-", "--format", "json", stdin=b"rule a { expect true } // caf\xe9\n")
    assert [(d["path"], d["code"]) for d in json.loads(bad.stdout)["diagnostics"]] == [("<stdin>", "FLUO106")]
    assert run("check", "-", "--emit-ir", stdin="rule a {\n  expect trace.spans.count() < 5\n}\n").exit_code == 0
    mixed = run("check", "-", str(EXAMPLE_RULES))
    assert (mixed.exit_code, mixed.stderr) == (2, "fluo: give - alone, or files and folders\n")


@pytest.mark.parametrize(
    "args",
    [
        ["check", "-", "-"],
        ["eval", str(EXAMPLE_RULES), "--traces", "-", "-"],
        ["eval", str(EXAMPLE_RULES), "--traces", "-", str(TRACES), "--traces", "-"],
        ["discover", "-", "-"],
    ],
)
def test_standard_input_named_twice_is_a_usage_error(args: list[str]) -> None:
    """Smalls: `fluo discover - -` and `fluo eval --traces - -` read stdin once and the second `-` as empty,
    exit 0 without a word, where `fluo check - -` refused it: each is the same usage error now."""
    r = run(*args, stdin=(TRACES / "healthy_login.json").read_bytes())
    assert (r.exit_code, r.stdout) == (2, "")
    assert r.stderr == "fluo: - (standard input) is given more than once: it can be read once\n"


def test_check_dash_in_sarif_is_standard_input_not_a_file_under_the_root() -> None:
    """Smalls: `fluo check - --format sarif` named the artifact `%3Cstdin%3E` under `%SRCROOT%`, a file of the
    repository that does not exist."""
    rules = "rule a {\n  expect foo\n}\nrule a { expect true }\n"
    r = run("check", "-", "--format", "sarif", stdin=rules)
    assert r.exit_code == 1, r.output
    results = json.loads(r.stdout)["runs"][0]["results"]
    stdin = {"uri": "stdin", "description": {"text": "standard input"}}
    artifacts = [loc["physicalLocation"]["artifactLocation"] for x in results for loc in x["locations"]]
    related = [loc["physicalLocation"]["artifactLocation"] for x in results for loc in x.get("relatedLocations", [])]
    assert artifacts == [stdin, stdin] and related == [stdin]


def test_check_stdin_filename_names_the_rules_read_from_stdin_in_every_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Smalls: as ruff's and eslint's `--stdin-filename`, for an editor or a hook that pipes a file in."""
    monkeypatch.chdir(tmp_path)
    rules = "rule a {\n  expect foo\n}\n"
    text = run("check", "-", "--stdin-filename", "rules/a b.fluo", stdin=rules)
    assert (text.exit_code, text.stdout.split(": ")[0]) == (1, "rules/a b.fluo:2:10")
    as_json = run("check", "-", "--format", "json", "--stdin-filename", "rules/a b.fluo", stdin=rules)
    assert [d["path"] for d in json.loads(as_json.stdout)["diagnostics"]] == ["rules/a b.fluo"]
    sarif = run("check", "--stdin-filename", "rules/a b.fluo", "--format", "sarif", "-", stdin=rules)
    (result,) = json.loads(sarif.stdout)["runs"][0]["results"]
    located = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert located == {"uri": "rules/a%20b.fluo", "uriBaseId": "%SRCROOT%"}
    alone = run("check", str(EXAMPLE_RULES), "--stdin-filename", "a.fluo")
    assert (alone.exit_code, alone.stderr) == (
        2,
        "fluo: --stdin-filename names the rules - reads from stdin; give - too\n",
    )
    empty = run("check", "-", "--stdin-filename", "", stdin=rules)
    assert (empty.exit_code, empty.stderr) == (2, "fluo: --stdin-filename: give a path, e.g. rules/auth.fluo\n")
    yaml = run("check", "-", "--stdin-filename", "r/a.yaml", stdin=rules)  # QA fmt (minor): it was checked as rules
    assert (yaml.exit_code, yaml.stdout) == (2, "")
    assert yaml.stderr.startswith("fluo: --stdin-filename r/a.yaml is YAML, not a .fluo file")


def test_a_symbolic_link_loop_is_said_alike_by_check_fmt_and_eval(tmp_path: Path) -> None:
    """QA (cli, minor): check and fmt said "loop: no such file or folder", eval "cannot read loop: Too many levels
    of symbolic links"."""
    loop = tmp_path / "loop.fluo"
    loop.symlink_to(loop)
    traces = str(TRACES / "checkout_error.json")
    said = f"fluo: cannot read {loop}: Too many levels of symbolic links\n"
    for args in (["check", str(loop)], ["fmt", "--check", str(loop)], ["eval", str(loop), "--traces", traces]):
        r = run(*args)
        assert (r.exit_code, r.stderr) == (2, said), args
    r = run("eval", str(EXAMPLE_RULES), "--traces", str(loop))
    assert (r.exit_code, r.stderr) == (2, said)
    assert (
        run("check", str(tmp_path / "gone.fluo")).stderr == f"fluo: {tmp_path / 'gone.fluo'}: no such file or folder\n"
    )


def _many_traces(tmp_path: Path, n: int = 3000) -> Path:
    """A trace file of `n` one-span traces: reports on it run to hundreds of kilobytes."""
    spans = [
        {"traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}", "name": f"n{i}", "startTimeUnixNano": "1",
         "endTimeUnixNano": "2"}
        for i in range(n)
    ]  # fmt: skip
    path = tmp_path / "many.json"
    path.write_text(json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": spans}]}]}))
    return path


def _large_outputs(tmp_path: Path) -> dict[str, list[str]]:
    """Commands whose output is far larger than a pipe holds, each as arguments to `fluo`."""
    many = _many_traces(tmp_path)
    (tmp_path / "r.fluo").write_text("rule root_name { detect trace.root.name != '' }\n")
    (tmp_path / "r_test.yaml").write_text(
        "rules: [r.fluo]\ncases:\n  - name: many\n    traces: many.json\n    expect: [{rule: root_name, count: 3000}]\n"
    )
    rules = tmp_path / "long.fluo"
    rules.write_text("// " + "x" * 200_000 + "\nrule a { expect true }\n")
    return {
        "test": ["test", str(tmp_path / "r_test.yaml"), "--format", "json"],
        "discover": ["discover", str(many), "--format", "json", "--min-support", "1"],
        "eval": ["eval", str(tmp_path / "r.fluo"), "--traces", str(many)],
        "fmt": ["fmt", "-"],
    }


@pytest.mark.parametrize("command", ["test", "eval", "fmt"])  # one mechanism for all, discover's report included
def test_a_reader_that_goes_away_mid_write_stops_every_command_with_the_sigpipe_status(
    command: str, tmp_path: Path
) -> None:
    """QA (citest r07): `fluo test --format json | head -c 10` (and discover's, and `fmt -`'s) exited with the
    run's status, the report cut at 64 KiB without a word: when a pipe's reader leaves in the middle of one
    large write, the kernel takes part of it and Python's buffered writer dropped the rest. Every command
    writes stdout whole now, so the rest fails and fluo stops with 141."""
    args = _large_outputs(tmp_path)[command]
    with open(tmp_path / "long.fluo", "rb") as source:
        p = _fluo(*args, stdout=subprocess.PIPE, stdin=source, cwd=tmp_path)
        assert p.stdout is not None and p.stderr is not None
        assert p.stdout.read(10)
        p.stdout.close()
        err = p.stderr.read().decode()
        p.stderr.close()
        assert p.wait(timeout=120) == 141, err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["test", "discover", "eval", "fmt"])
@pytest.mark.parametrize("stdout", ["/dev/full", "closed"])
def test_every_command_says_in_one_line_that_its_output_cannot_be_written(
    command: str, stdout: str, tmp_path: Path
) -> None:
    """QA (citest r01): `fluo test` and `fluo discover` > /dev/full, and any command started with stdout closed
    (`>&-`: Python leaves `sys.stdout` None), ended in a traceback and 1 ("a case failed" on a passing run).
    Now one line and 2, as for check and eval."""
    args = _large_outputs(tmp_path)[command]
    closed = stdout == "closed"
    with open(tmp_path / "long.fluo", "rb") as source, open("/dev/full", "wb") as full:
        p = subprocess.Popen(
            [sys.executable, "-m", "fluo_run.cli", *args],
            stdin=source, stdout=None if closed else full, stderr=subprocess.PIPE, cwd=tmp_path,
            preexec_fn=(lambda: os.close(1)) if closed else None,
        )  # fmt: skip
        _, err = p.communicate(timeout=120)
    why = "standard output is closed" if closed else "No space left on device"
    assert p.returncode == 2, err.decode()
    assert err.decode().splitlines()[-1] == f"fluo: cannot write the output: {why}"
    assert b"Traceback" not in err


@pytest.mark.parametrize("option", ["--help", "-h", "--version"])
@pytest.mark.parametrize("stdout", ["/dev/full", "closed"])
def test_the_groups_own_help_and_version_say_in_one_line_that_they_cannot_be_written(option: str, stdout: str) -> None:
    """QA (errors r03): `fluo --help`, `-h` and `--version` print while the command line is read, before the
    group runs a command, where fluo's stdout was not yet taken over: > /dev/full ended in a traceback and 1,
    `>&-` in 0 and nothing. Now one line and 2, as every subcommand's --help."""
    closed = stdout == "closed"
    with open("/dev/full", "wb") as full:
        p = _fluo(option, stdout=None if closed else full, preexec_fn=(lambda: os.close(1)) if closed else None)
        _, err = p.communicate(timeout=60)
    why = "standard output is closed" if closed else "No space left on device"
    assert (p.returncode, err.decode()) == (2, f"fluo: cannot write the output: {why}\n")


@pytest.mark.parametrize("stderr", ["/dev/full", "closed"])
def test_a_stderr_that_cannot_be_written_leaves_the_exit_status_as_documented(stderr: str, tmp_path: Path) -> None:
    """QA (errors r04): with `2> /dev/full`, writing a usage or unreadable-input error failed (an unhandled OSError,
    "lost sys.stderr") and fluo ended with 1, which for check and eval means rule errors, for test a failed case.
    What stderr cannot take is dropped now: the status is the documented one, and stdout is written as ever."""
    (tmp_path / "r.fluo").write_text("rule r {\n  severity: error\n  detect trace.spans.count() > 100\n}\n")
    (tmp_path / "cut.json").write_text('{"resourceSpans": [')
    runs = {
        ("check", "missing.fluo"): 2,
        ("check", "--format", "json", "missing.fluo"): 2,
        ("eval", "r.fluo", "-t", "cut.json"): 2,
        ("eval", "r.fluo", "-t", "cut.json", "--bogus"): 2,
        ("--bogus",): 2,
        ("check", "r.fluo"): 0,  # the summary line goes to stderr
        ("eval", "r.fluo", "-t", str(TRACES / "checkout_error.json")): 0,
    }
    closed = stderr == "closed"
    outcomes = {}
    for args, _ in runs.items():
        with open("/dev/full", "wb") as full:
            p = subprocess.run(
                [sys.executable, "-m", "fluo_run.cli", *args], stdout=subprocess.PIPE, cwd=tmp_path, timeout=60,
                stderr=None if closed else full, preexec_fn=(lambda: os.close(2)) if closed else None,
            )  # fmt: skip
        outcomes[args] = p.returncode
        if "--format" in args:
            assert json.loads(p.stdout)["error"] == "missing.fluo: no such file or folder"
    assert outcomes == runs


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_input_that_check_cannot_read_still_gets_a_document_saying_why(fmt: str, tmp_path: Path) -> None:
    """QA (cli, minor): on an exit-2 path (a missing file, YAML named, an unreadable folder) `--format json|sarif`
    wrote nothing, so a CI step's `> fluo.sarif` left an empty file, which the SARIF upload then refused with an
    error of its own. Now a document with no diagnostics and the reason; stderr says it as before."""
    missing = tmp_path / "gone.fluo"
    r = run("check", str(missing), "--format", fmt)
    why = f"{missing}: no such file or folder"
    assert (r.exit_code, r.stderr) == (2, f"fluo: {why}\n")
    document = json.loads(r.stdout)
    if fmt == "json":
        assert document == {"diagnostics": [], "error": why}
    else:
        (only,) = document["runs"]
        assert only["results"] == [] and only["tool"]["driver"]["name"] == "fluo"
        assert only["invocations"] == [
            {
                "executionSuccessful": False,
                "exitCode": 2,
                "toolExecutionNotifications": [{"level": "error", "message": {"text": why}}],
            }
        ]


def test_a_named_file_check_may_not_read_still_gets_a_document_saying_why() -> None:
    """QA (errors r05): a rule file named that may not be read (its mode) was click's usage error ("Path ... is
    not readable"), which ran before the command, so `--format json|sarif` wrote nothing. Now it is input that
    cannot be read, as a missing file is: the document, and stderr's line as for an unreadable folder below.
    `fluo eval` and `fluo fmt` say it in the same words. As root, the commands run as `nobody`."""
    folder = Path(tempfile.mkdtemp(prefix="fluo-locked-"))
    secret = folder / "secret.fluo"
    secret.write_text("rule r {\n  expect trace.spans.count() < 5\n}\n")
    traces = str(TRACES / "checkout_error.json")
    assert run("eval", str(secret), "--traces", traces).exit_code == 0  # imported while it can be read
    assert run("fmt", "--check", str(secret)).exit_code == 0
    try:
        folder.chmod(0o755)
        secret.chmod(0)

        def outcomes() -> str:
            runs = [
                ["check", "--format", "json", str(secret)],
                ["check", "--format", "sarif", str(secret)],
                ["eval", str(secret), "--traces", traces],
                ["fmt", "--check", str(secret)],
            ]
            return json.dumps([[r.exit_code, r.stdout, r.stderr] for r in (run(*args) for args in runs)])

        (as_json, as_sarif, evaluated, formatted) = json.loads(as_reader(outcomes))
    finally:
        secret.chmod(0o644)
        shutil.rmtree(folder)
    why = f"cannot read {secret}: Permission denied"
    assert as_json == [2, json.dumps({"diagnostics": [], "error": why}, indent=2) + "\n", f"fluo: {why}\n"]
    code, out, err = as_sarif
    (only,) = json.loads(out)["runs"]
    assert (code, err, only["results"]) == (2, f"fluo: {why}\n", [])
    assert only["invocations"][0]["toolExecutionNotifications"] == [{"level": "error", "message": {"text": why}}]
    assert evaluated == [2, "", f"fluo: {why}\n"]
    assert formatted[0] == 2 and formatted[2].startswith(f"fluo: {why}\n")


def test_eval_prints_a_type_errors_operands_as_notes(tmp_path: Path) -> None:
    """`fluo eval` prints its rule errors as `fluo check` does: the related locations follow as `note:` lines."""
    f = tmp_path / "a.fluo"
    f.write_text("rule a { expect 1s > 'x' }\n")
    r = run("eval", str(f), "--traces", str(TRACES / "checkout_error.json"))
    assert r.exit_code == 1
    assert r.stderr.splitlines()[:3] == [
        f"{f}:1:20: error[FLUO300] cannot compare duration with string using `>`",
        f"  {f}:1:17: note: this is a duration",
        f"  {f}:1:22: note: this is a string",
    ]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["eval", "--expect", "count() < 1", "--expect", "count() < 100", "-t", "T"], "--expect"),
        (["eval", "--detect", "true", "--detect", "false", "-t", "T", "--fail-on-signal"], "--detect"),
        (["test", "--run", "a", "--run", "b", "R"], "--run"),
        (["test", "--junit-xml", "a.xml", "--junit-xml", "b.xml", "R"], "--junit-xml"),
        (["check", "--format", "json", "--format", "text", "R"], "--format"),
        (["discover", "T", "--min-support", "1", "--min-support", "2"], "--min-support"),
        (["signals", "--limit", "1", "--limit", "2"], "--limit"),
    ],
)
def test_an_option_taking_one_value_given_twice_is_a_usage_error(
    args: list[str], flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA ci r03: click keeps the last of a repeated option without a word, so `--expect A --expect B
    --fail-on-signal` gated on B alone (exit 0 with A violated), `--run A --run B` ran B's cases and a second
    `--junit-xml` took the report from the first. Each is a usage error naming the option, before anything runs."""
    monkeypatch.chdir(tmp_path)  # where a report would be written
    paths = {"T": str(TRACES / "healthy_login.json"), "R": str(EXAMPLE_RULES)}
    r = CliRunner().invoke(main, [paths.get(a, a) for a in args], prog_name="fluo")
    assert (r.exit_code, r.stdout) == (2, "")
    assert r.stderr == f"fluo: {flag} is given twice: it takes one value (see `fluo {args[0]} --help`)\n"


def test_a_repeated_option_is_said_after_help() -> None:
    """`--help` is answered first, whatever else the line holds."""
    r = run("test", "--help", "--run", "a", "--run", "b")
    assert r.exit_code == 0 and r.stdout.startswith("Usage: "), r.output


def test_every_command_refuses_a_repeated_option_taking_one_value() -> None:
    """Each command with an option that takes one value checks for repetition (OneValueCommand), so a command
    added later does not go back to the last one kept."""
    from fluo_lang.one_value import OneValueCommand, takes_one_value
    from fluo_run.cli import LAZY_COMMANDS

    ctx = click.Context(main)
    for name in sorted(set(main.list_commands(ctx)) | set(LAZY_COMMANDS)):
        command = main.get_command(ctx, name)
        assert command is not None
        if any(takes_one_value(p) for p in command.params):
            assert isinstance(command, OneValueCommand), name


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["eval", str(EXAMPLE_RULES), "--traces", "-"], "- has nothing to read"),
        (["check", "-"], "- has nothing to read"),
        (["fmt", "-"], "- has nothing to read"),
        (["discover", "-"], "- has nothing to read"),
        (["lsp"], "the language server reads its requests there"),
    ],
)
def test_standard_input_closed_is_one_line_and_exit_2(args: list[str], why: str, tmp_path: Path) -> None:
    """QA ci r06: `-` with stdin closed (`<&-`: Python leaves `sys.stdin` None) ended in a traceback
    (AttributeError) and 1, which `fluo eval` gives rule errors. Now one line and 2, as unreadable input is."""
    command = [sys.executable, "-m", "fluo_run.cli", *args]
    p = subprocess.run(command, capture_output=True, cwd=tmp_path, timeout=120, preexec_fn=lambda: os.close(0))
    assert (p.returncode, p.stdout) == (2, b""), p.stderr.decode()
    assert p.stderr.decode() == f"fluo: standard input is closed: {why}\n"


def test_the_pre_commit_hooks_run_real_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA fmt (minor): `.pre-commit-hooks.yaml` at the top, as pre-commit reads it: each hook's entry is the
    installed `fluo` command, its `files` takes rule files and not rule tests, and run as pre-commit runs it
    (entry, args, then the staged files unless `pass_filenames: false`) it formats, or checks all rules."""
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    by_id = {h["id"]: h for h in hooks}
    assert set(by_id) == {"fluo-fmt", "fluo-check"}
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    for hook in hooks:
        assert {"id", "name", "entry", "language"} <= hook.keys() and hook["language"] == "python"
        assert shlex.split(hook["entry"])[0] in scripts
        assert re.search(hook["files"], "rules/auth.fluo") and not re.search(hook["files"], "rules/auth_test.yaml")

    def run_hook(hook: dict[str, Any], staged: list[str]) -> Result:
        files = staged if hook.get("pass_filenames", True) else []
        return run(*shlex.split(hook["entry"])[1:], *hook.get("args", []), *files)

    monkeypatch.chdir(tmp_path)
    Path("a.fluo").write_text("rule a {expect true}\n")
    Path("b.fluo").write_text("rule a {\n  expect true\n}\n")
    assert run_hook(by_id["fluo-fmt"], ["a.fluo"]).exit_code == 0
    assert Path("a.fluo").read_text() == "rule a {\n  expect true\n}\n"
    assert run_hook(by_id["fluo-fmt"], ["a.fluo", "b.fluo"]).exit_code == 0  # formatted: nothing changes
    checked = run_hook(by_id["fluo-check"], ["b.fluo"])  # with a.fluo, unstaged: the same rule id twice
    assert checked.exit_code == 1 and "error[FLUO213]" in checked.stdout


@pytest.mark.parametrize(
    ("command", "option"),
    [("check", "--stdin-filename PATH"), ("fmt", "--stdin-filename PATH"), ("discover", "--tests DIR")],
)
def test_help_names_an_options_value_as_the_readme_and_its_own_help_do(command: str, option: str) -> None:
    """QA new-user tour: `fluo check --help` said `--stdin-filename NAME` where the README said PATH, and
    `discover --tests DIRECTORY` wrote the test "into DIR"."""
    shown = CliRunner().invoke(main, [command, "--help"], prog_name="fluo").stdout
    assert re.search(rf"^  {re.escape(option)} ", shown, re.M), shown
    assert f"`{option}`" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_json_names_a_file_name_that_is_not_utf8_in_unicode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA docs r05: `n\\xff.fluo` came out as the escape of a lone surrogate, `"n\\udcff.fluo"`, which is no Unicode
    (a strict reader refuses it, others make it U+FFFD), from `check --format json` (and its IR), `eval`'s
    `source.path` and `discover --compare --format json`. Each writes the text `\\udcff`, as `fluo test` does."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "n\udcff.fluo").write_text("rule r { detect trace.spans.count() > 0 }\n", encoding="utf-8")
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "n\udcff.fluo").write_text("rule w { expect trace.duration > 500 }\n", encoding="utf-8")
    trace = str(TRACES / "payment_ok.json")
    outputs = {
        "check": run("check", "--format", "json", "w"),
        "ir": run("check", "--format", "json", "--emit-ir", "r"),
        "sarif": run("check", "--format", "sarif", "w"),
        "eval": run("eval", "r", "-t", trace),
        "compare": run("discover", trace, "--compare", "r", "--format", "json"),
    }
    for what, r in outputs.items():
        assert r.exit_code in (0, 1), (what, r.output)
        for line in r.stdout_bytes.decode("utf-8").splitlines() if what == "eval" else [r.stdout_bytes.decode()]:
            value = json.loads(line)
            json.dumps(value, ensure_ascii=False).encode("utf-8")  # would raise on a lone surrogate
    assert {d["path"] for d in json.loads(outputs["check"].stdout)["diagnostics"]} == {"w/n\\udcff.fluo"}
    assert json.loads(outputs["ir"].stdout)["ir"][0]["path"] == "r/n\\udcff.fluo"
    assert json.loads(outputs["eval"].stdout)["source"]["path"] == "r/n\\udcff.fluo"
    assert "r/n\\\\udcff.fluo" in outputs["compare"].stdout


IMPORT_HELD = """
import sys, time
class Held:
    def find_spec(self, name, path=None, target=None):
        if name == "fluo_lang.api":  # the CLI's first heavy import: Ctrl-C lands while it loads
            sys.stdout.write("importing\\n")
            sys.stdout.flush()
            time.sleep(120)
        return None
sys.meta_path.insert(0, Held())
sys.argv[1:] = ["check", "-"]
from fluo_run.console import main
main()
"""


def test_ctrl_c_while_the_command_line_loads_stops_it_quietly_with_130() -> None:
    """QA docs r06: Ctrl-C in the first second of any command, while FLUO's modules were imported, printed a
    KeyboardInterrupt traceback and the process died by the signal. The import is held here (an import hook
    that waits) until the Ctrl-C, so it lands there however fast the machine."""
    proc = subprocess.Popen(
        [sys.executable, "-c", IMPORT_HELD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=sigint_default,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"importing\n"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (proc.returncode, stderr) == (130, b"")


def test_the_fluo_command_starts_where_ctrl_c_is_handled_while_loading() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["fluo"] == "fluo_run.console:main"
