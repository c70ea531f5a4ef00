"""`fluo serve` as a process: ports logged, SIGTERM flushes, SIGHUP and file changes reload, config sources."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from serve_support import EXAMPLE_TRACES, LoopbackServer, Sender, ServeProcess, self_signed, wait_for

LOOPBACK = ["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"]


def send(url: str, trace_file: str) -> None:
    body = (EXAMPLE_TRACES / trace_file).read_bytes()
    request = urllib.request.Request(f"{url}/v1/traces", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def health(proc: ServeProcess) -> dict[str, object]:
    with urllib.request.urlopen(f"{proc.http_url}/healthz", timeout=5) as answer:
        return dict(json.loads(answer.read()))


def rules_in(tmp_path: Path, text: str) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "main.fluo").write_text(text)
    return rules


def test_sigterm_evaluates_what_is_buffered_and_flushes_sinks(tmp_path: Path) -> None:
    jsonl = tmp_path / "out.jsonl"
    proc = ServeProcess([*LOOPBACK, "--trace-idle", "60s", "--jsonl", str(jsonl), "--db", "s.db"], cwd=tmp_path)
    with proc:
        proc.started()
        send(proc.http_url, "auth_retry_storm.json")
        send(proc.http_url, "payment_no_fraud_check.json")
        time.sleep(0.3)
        assert not jsonl.exists() or jsonl.read_text() == ""  # still buffered: idle is 60s
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    assert any("SIGTERM: shutting down" in line for line in proc.log)
    assert any("2 trace(s) evaluated at shutdown" in line for line in proc.log)
    rules = sorted(json.loads(line)["rule"] for line in jsonl.read_text().splitlines())
    assert rules == ["auth_retry_storm", "auth_span_budget", "charge_needs_fraud_check"]
    stored = sorted(r[0] for r in sqlite3.connect(tmp_path / "s.db").execute("SELECT rule FROM signals"))
    assert stored == rules


def test_reload_rejects_a_bad_rule_set_and_takes_a_good_one(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, "rule storm { detect trace.spans.count() > 50 }\n")
    jsonl = tmp_path / "out.jsonl"
    args = [*LOOPBACK, "--rules", str(rules), "--trace-idle", "200ms", "--jsonl", str(jsonl), "--no-db"]
    proc = ServeProcess([*args, "--reload-interval", "200ms"], cwd=tmp_path)

    def fired() -> list[str]:
        return [json.loads(x)["rule"] for x in jsonl.read_text().splitlines()] if jsonl.exists() else []

    with proc:
        proc.started()
        (rules / "main.fluo").write_text("rule storm { detect trace.spans.whree(service == 'auth').count() > 50 }\n")
        proc.signal(signal.SIGHUP)
        proc.expect(r"SIGHUP; reloading the rules")  # QA receiver: a file change said so first, a SIGHUP did not
        proc.expect(r"error\[FLUO\d+\].*whree")
        proc.expect(r"rule reload rejected: 1 error in the rules; still running the previous 1 rule")
        send(proc.http_url, "auth_retry_storm.json")
        wait_for(lambda: fired() == ["storm"], what="the old rule to keep firing")
        assert health(proc)["rule_files"] == "rejected"  # QA: /healthz said nothing of the files on disk
        assert (
            "fluo_rule_files_rejected 1.0"
            in urllib.request.urlopen(f"{proc.http_url}/metrics", timeout=5).read().decode()
        )

        (rules / "main.fluo").write_text("rule four { detect trace.spans.count() == 4 }\n")
        proc.expect(r"rule files changed; reloading")
        proc.expect(r"rules reloaded: 1 per-trace rule and 0 windowed from 1 file")
        send(proc.http_url, "healthy_login.json")
        send(proc.http_url, "payment_no_fraud_check.json")
        wait_for(lambda: fired() == ["storm", "four"], what="the new rule to fire")
        metrics = urllib.request.urlopen(f"{proc.http_url}/metrics", timeout=5).read().decode()
        assert 'fluo_rule_reloads_total{result="rejected"} 1.0' in metrics
        assert 'fluo_rule_reloads_total{result="loaded"} 2.0' in metrics
        assert "fluo_rule_files_rejected 0.0" in metrics and health(proc)["rule_files"] == "loaded"
        proc.signal(signal.SIGINT)
        assert proc.wait() == 0


def test_sighup_reopens_a_rotated_jsonl_file(tmp_path: Path) -> None:
    """QA L6: `postrotate kill -HUP` after logrotate renamed the file: the signals go to the new file."""
    rules = rules_in(tmp_path, "rule any { detect trace.spans.count() > 0 }\n")
    jsonl, rotated = tmp_path / "out.jsonl", tmp_path / "out.jsonl.1"
    args = [*LOOPBACK, "--rules", str(rules), "--trace-idle", "200ms", "--jsonl", str(jsonl), "--no-db"]
    with ServeProcess(args, cwd=tmp_path) as proc:
        proc.started()
        send(proc.http_url, "auth_retry_storm.json")
        wait_for(lambda: jsonl.exists() and jsonl.read_text().count("\n") == 1, what="the first signal")
        jsonl.rename(rotated)
        jsonl.write_text("")  # logrotate's `create`
        proc.signal(signal.SIGHUP)
        proc.expect(r"rules reloaded")
        send(proc.http_url, "payment_no_fraud_check.json")
        wait_for(lambda: jsonl.read_text().count("\n") == 1, what="the second signal in the new file")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    assert rotated.read_text().count("\n") == 1


def test_ipv6_addresses_are_logged_as_urls_that_work(tmp_path: Path) -> None:
    """QA L7: `http://::1:PORT` was logged; curl and OTEL_EXPORTER_OTLP_ENDPOINT need `http://[::1]:PORT`."""
    rules = rules_in(tmp_path, "rule any { detect trace.spans.count() > 0 }\n")
    jsonl = tmp_path / "out.jsonl"
    args = ["--http", "[::1]:0", "--grpc", "[::1]:0", "--metrics", "[::1]:0", "--rules", str(rules)]
    with ServeProcess([*args, "--trace-idle", "200ms", "--jsonl", str(jsonl), "--no-db"], cwd=tmp_path) as proc:
        http = proc.expect(r"OTLP/HTTP listening on (http://\S+) ").group(1)
        grpc = proc.expect(r"OTLP/gRPC listening on (\S+)").group(1)
        metrics = proc.expect(r"metrics on (\S+)").group(1)
        proc.started()
        assert http.startswith("http://[::1]:") and grpc.startswith("[::1]:") and metrics.startswith("http://[::1]:")
        send(http, "auth_retry_storm.json")
        assert "fluo_rules_loaded" in urllib.request.urlopen(metrics, timeout=5).read().decode()
        sender = Sender("grpc", grpc)
        sender.healthy()
        sender.flush()
        sender.close()
        wait_for(lambda: jsonl.exists() and jsonl.read_text().count("\n") == 2, what="both traces' signals")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0


def test_bad_rules_at_start_exit_1_with_diagnostics(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, "rule r { expect trace.spans.count() > 'x' }\n")
    proc = ServeProcess([*LOOPBACK, "--rules", str(rules)], cwd=tmp_path)
    assert proc.wait() == 1
    text = "\n".join(proc.log)
    assert "main.fluo:1:" in text and "error[FLUO" in text
    assert "fluo: cannot start: 1 error in the rules" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--db", "missing/x.db"], "fluo: cannot open sink sqlite: missing/x.db: the folder missing does not exist"),
        (["--db", "."], "fluo: cannot open sink sqlite: . is a folder, not a file"),
        (
            ["--no-db", "--jsonl", "missing/x.jsonl"],
            "fluo: cannot open sink jsonl: missing/x.jsonl: the folder missing does not exist",
        ),
        (["--no-db", "--jsonl", "."], "fluo: cannot open sink jsonl: . is a folder, not a file"),
        (
            ["--no-db", "--jsonl", "rules/main.fluo/x.jsonl"],
            "fluo: cannot open sink jsonl: rules/main.fluo/x.jsonl: rules/main.fluo is not a folder",
        ),
    ],
    ids=["db in a missing folder", "db a folder", "jsonl in a missing folder", "jsonl a folder", "jsonl under a file"],
)
def test_a_sink_that_cannot_open_is_one_line_exit_1_as_the_help_says(
    tmp_path: Path, args: list[str], says: str
) -> None:
    """QA: exit 1 for a sink path that cannot be used was in no list of exit statuses (runtime.md, README,
    `serve --help`); it stays 1, as a port that cannot be bound, and they say so."""
    from click.testing import CliRunner

    from fluo_run.cli import main

    proc = ServeProcess(
        [*LOOPBACK, "--rules", str(rules_in(tmp_path, "rule r { detect false }\n")), *args], cwd=tmp_path
    )
    assert proc.wait() == 1
    errors = [line for line in proc.log if " INFO " not in line]
    assert errors == [says], proc.log
    help_text = " ".join(CliRunner().invoke(main, ["serve", "--help"]).output.split())
    assert "1 when the rules have errors, a port cannot be bound or a sink cannot open" in help_text


def test_jsonl_to_stdout_whose_reader_goes_away_is_a_failing_sink_and_exit_3(tmp_path: Path) -> None:
    """QA newuser r01 (`fluo serve --jsonl - | head -1`): a server keeps running when its stdout's reader goes away,
    and the signals it could not write are a sink failing, logged, so its stop said "exit 3"; but the exit's last
    flush of stdout failed again, and it exited 141. Now 3, as it says."""
    rules = str(rules_in(tmp_path, "rule r { detect true }\n"))
    args = [*LOOPBACK, "--rules", rules, "--no-db", "--jsonl", "-", "--trace-idle", "100ms"]
    proc = ServeProcess(args, cwd=tmp_path)
    try:
        proc.started()
        assert proc.proc.stdout is not None
        proc.proc.stdout.close()  # the reader goes away before the first signal
        send(proc.http_url, "checkout_error.json")
        proc.expect(r"sink jsonl dropped 1 signal\(s\): cannot write to stdout: Broken pipe")
        send(proc.http_url, "healthy_login.json")  # fails at once: no reader comes back
        proc.expect(r"sink jsonl dropped 1 signal\(s\): cannot write to stdout: Broken pipe")
        proc.signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=30) == 3
        proc.expect(r"2 signal\(s\) not delivered \(jsonl failed\); exit 3")
    finally:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(timeout=10)
        assert proc.proc.stderr is not None
        proc.proc.stderr.close()


def test_a_second_serve_on_a_store_in_use_is_one_line_exit_1_and_kill_9_frees_it(tmp_path: Path) -> None:
    """QA: two `fluo serve --db s.db` both wrote; whichever stopped last overwrote s.db.trace-ids. The second is
    refused at start naming the first; the lock goes with the process, however it ends (kill -9 too)."""
    rules = str(rules_in(tmp_path, "rule r { detect false }\n"))
    with ServeProcess([*LOOPBACK, "--rules", rules, "--db", "s.db"], cwd=tmp_path) as first:
        first.started()
        with ServeProcess([*LOOPBACK, "--rules", rules, "--db", "s.db"], cwd=tmp_path) as second:
            assert second.wait() == 1
        errors = [line for line in second.log if " INFO " not in line]
        assert errors == [
            f"fluo: cannot open sink sqlite: s.db is in use by another fluo serve (process {first.proc.pid} holds "
            "s.db.lock locked); give each instance its own --db"
        ]
        first.proc.kill()
        first.wait()
    with ServeProcess([*LOOPBACK, "--rules", rules, "--db", "s.db"], cwd=tmp_path) as third:
        third.started()
        third.signal(signal.SIGTERM)
        assert third.wait() == 0


def test_usage_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    proc = ServeProcess([*LOOPBACK, "--trace-idle", "5 parsecs"], cwd=tmp_path)
    assert proc.wait() == 2
    assert proc.log == [
        "fluo: --trace-idle: '5 parsecs' is not a duration; give a number and a unit (ns, us, µs, ms, s, m, h, d), e.g. 5s"  # noqa: E501
    ]


def test_a_window_grace_shorter_than_trace_idle_is_a_warning_at_start(tmp_path: Path) -> None:
    """QA: `--window-grace 0s` beside `--trace-idle 5s` started silently; traces then missed their windows."""
    with ServeProcess([*LOOPBACK, "--no-db", "--window-grace", "0s"], cwd=tmp_path) as proc:
        proc.expect(r"WARNING --window-grace 0s is shorter than --trace-idle 5s: a trace is evaluated 5s after")
        proc.started()
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0


def test_the_window_grace_warning_names_the_settings_where_they_were_given(tmp_path: Path) -> None:
    """Last session's note: the warning named `--window-grace` and `--trace-idle` though both came from the
    --config file (or a FLUO_* variable), where a user looking for the flags finds neither."""
    (tmp_path / "fluo.yaml").write_text("no-db: true\nwindow-grace: 1s\ntrace-idle: 5s\n")
    with ServeProcess([*LOOPBACK, "--config", "fluo.yaml"], cwd=tmp_path) as proc:
        proc.expect(
            r"WARNING `window-grace: 1s` \(--config fluo.yaml:2\) is shorter than `trace-idle: 5s` \(--config"
            r" fluo.yaml:3\): a trace is evaluated 5s after"
        )
        proc.started()
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    env = {"FLUO_WINDOW_GRACE": "2s"}
    with ServeProcess([*LOOPBACK, "--config", "fluo.yaml", "--trace-idle", "4s"], cwd=tmp_path, env=env) as proc:
        proc.expect(r"WARNING FLUO_WINDOW_GRACE=2s is shorter than --trace-idle 4s: a trace is evaluated 4s after")
        proc.started()
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0


def test_config_file_and_env_vars_with_flags_winning(tmp_path: Path) -> None:
    (tmp_path / "fluo.yaml").write_text("trace-idle: 60s\nhttp: 127.0.0.1:1\ngrpc: off\njsonl: from-file.jsonl\n")
    env = {"FLUO_HTTP": "127.0.0.1:0", "FLUO_DB": "env.db"}
    proc = ServeProcess(["--config", "fluo.yaml", "--jsonl", "from-flag.jsonl"], cwd=tmp_path, env=env)
    with proc:
        proc.started()
        assert "gRPC" not in proc.ports  # grpc: off from the file
        assert any(
            line.endswith(" INFO    OTLP/gRPC off (--grpc off): exports over gRPC are not received")
            for line in proc.log
        )
        send(proc.http_url, "auth_retry_storm.json")  # the env var's HTTP port won over the file's
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    assert (tmp_path / "from-flag.jsonl").read_text().count("\n") == 2
    assert not (tmp_path / "from-file.jsonl").exists()
    assert (tmp_path / "env.db").exists()


def test_default_rules_are_the_bundled_examples(tmp_path: Path) -> None:
    proc = ServeProcess([*LOOPBACK, "--no-db"], cwd=tmp_path)
    with proc:
        # a warning: a wrong mount path on a production host would run the demo rules (QA)
        proc.expect(
            r"WARNING rules: no --rules and no \./rules folder, so running the bundled examples in .*examples/rules"
        )
        proc.expect(r"rules: 5 per-trace rules and 1 windowed from 4 files")
        proc.started()
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0


def test_every_setting_works_as_an_environment_variable(tmp_path: Path) -> None:
    """QA M2: FLUO_WEBHOOK_HEADER and FLUO_RULES were split on spaces, FLUO_NO_DB was ignored, typos were silent."""
    spaced, other = tmp_path / "my rules", tmp_path / "more"
    spaced.mkdir()
    other.mkdir()
    (spaced / "a.fluo").write_text("rule a { detect trace.spans.count() > 0 }\n")
    (other / "b.fluo").write_text("rule b { detect trace.spans.count() > 1 }\n")
    with LoopbackServer() as hook:
        env = {
            "FLUO_RULES": f"{spaced}{os.pathsep}{other}",
            "FLUO_WEBHOOK": hook.url,
            "FLUO_WEBHOOK_HEADER": "Authorization: Bearer abc def\nX-Team: on call",
            "FLUO_NO_DB": "1",
            "FLUO_TRACE_IDLE": "200ms",
            "FLUO_TRACE_IDEL": "9s",
        }
        with ServeProcess(LOOPBACK, cwd=tmp_path, env=env) as proc:
            proc.expect(r"FLUO_TRACE_IDEL is not a setting of fluo serve; ignored; did you mean FLUO_TRACE_IDLE\?")
            proc.started()
            send(proc.http_url, "auth_retry_storm.json")
            wait_for(lambda: hook.requests, what="the webhook")
            proc.signal(signal.SIGTERM)
            assert proc.wait() == 0
        (request,) = hook.requests
        assert request.headers["Authorization"] == "Bearer abc def" and request.headers["X-Team"] == "on call"
        assert sorted(s["rule"] for s in json.loads(request.body)["signals"]) == ["a", "b"]
    assert not (tmp_path / "fluo-signals.db").exists()


def test_a_misspelt_config_key_is_a_usage_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fluo_run.cli import main

    (tmp_path / "fluo.yaml").write_text("trace-idel: 2s\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(tmp_path / "fluo.yaml")])
    assert result.exit_code == 2
    assert "unknown setting `trace-idel`; did you mean `trace-idle`?" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: {a: 1}\n", "--config fluo.yaml:1: `rules` takes a value or a list of values"),
        ("grpc: [a, b]\n", "--config fluo.yaml:1: `grpc` takes one value, not a list or mapping"),
    ],
)
def test_a_config_value_of_the_wrong_shape_names_the_file_not_an_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    from click.testing import CliRunner

    from fluo_run.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "fluo.yaml").write_text(text)
    result = CliRunner().invoke(main, ["serve", "--config", "fluo.yaml"], prog_name="fluo")
    assert result.exit_code == 2
    assert result.output == f"fluo: {message} (see `fluo serve --help`)\n"


HELP = " (see `fluo serve --help`)"


@pytest.mark.usefixtures("fluo_logging")
@pytest.mark.parametrize(
    ("text", "output"),
    [
        (
            "max-spans-per-trace: abc\n",
            "fluo: --config fluo.yaml:1: `max-spans-per-trace`: 'abc' is not a valid integer" + HELP,
        ),
        ("no-db: maybe\n", "fluo: --config fluo.yaml:1: `no-db`: 'maybe' is not a valid boolean."),
        (
            "log-level: verbose\n",
            "fluo: --config fluo.yaml:1: `log-level`: 'verbose' is not one of 'debug', 'info', 'warning', 'error'"
            + HELP,
        ),
        (
            "trace-idle: 5\n",
            "fluo: --config fluo.yaml:1: `trace-idle`: '5' is not a duration; give a number and a unit "
            "(ns, us, µs, ms, s, m, h, d), e.g. 5s",
        ),
        (
            "http: nowhere\n",
            "fluo: --config fluo.yaml:1: `http`: 'nowhere' is not HOST:PORT; give e.g. 127.0.0.1:4318 "
            "(port 0 picks a free one)",
        ),
        ("no-db: 2\n", "fluo: --config fluo.yaml:1: `no-db`: 2 is not true or false" + HELP),
        ("no-db: 2.5\n", "fluo: --config fluo.yaml:1: `no-db`: 2.5 is not true or false" + HELP),
        ("sink-queue: 10.9\n", "fluo: --config fluo.yaml:1: `sink-queue`: 10.9 is not a whole number" + HELP),
        (
            "max-spans-per-trace: true\n",
            "fluo: --config fluo.yaml:1: `max-spans-per-trace`: true is not a whole number" + HELP,
        ),
        (
            "trace-idle: 2s\ntrace_idle: 3s\nhttp: nowhere\n",  # said first (and no serve left running without it)
            "fluo: --config fluo.yaml:2: `trace-idle` (line 1) and `trace_idle` are one setting; keep one of them"
            + HELP,
        ),
        (
            "webhook: http://127.0.0.1:9/a\nhttp: nowhere\nwebhook: http://127.0.0.1:9/b\n",
            "fluo: --config fluo.yaml:3: `webhook` is given twice (line 1 too); keep one" + HELP,
        ),
        (
            "webhook: ''\n",
            "fluo: --config fluo.yaml:1: `webhook`: empty; give a URL, or leave --webhook out to post to no webhook",
        ),
        (
            "grpc: ''\n",
            "fluo: --config fluo.yaml:1: `grpc`: empty; give HOST:PORT or `off`, or leave --grpc out for"
            " 127.0.0.1:4317",
        ),
        (
            "grpc: 0\n",
            "fluo: --config fluo.yaml:1: `grpc`: '0' is not HOST:PORT; give e.g. 127.0.0.1:0 for a free port, or `off`"
            " for none",
        ),
        (
            "db: ''\n",
            "fluo: --config fluo.yaml:1: `db`: empty; give a file, or leave --db out for ./fluo-signals.db (--no-db for"
            " no store)",
        ),
        (
            "window-grace: off\n",
            "fluo: --config fluo.yaml:1: `window-grace`: 'off' is not a duration; give a number and a unit "
            "(ns, us, µs, ms, s, m, h, d), e.g. 5s",
        ),
        ("cost-limit: False\n", "fluo: --config fluo.yaml:1: `cost-limit`: False is not a whole number" + HELP),
    ],
    ids=[
        "int",
        "bool",
        "choice",
        "duration",
        "address",
        "bool-2",
        "bool-float",
        "int-float",
        "int-bool",
        "twice",
        "twice-one-spelling",
        "empty-sink",
        "empty-grpc",
        "grpc-0",
        "empty-db",
        "duration-off",
        "int-bool-as-written",
    ],
)
def test_a_bad_config_value_names_the_file_and_key_not_an_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, output: str
) -> None:
    """QA: `max-spans-per-trace: abc` in the file was "invalid value for '--max-spans-per-trace' (env var:
    'FLUO_MAX_SPANS_PER_TRACE')", a variable nobody set, and the file was not named; `trace-idle` and
    `trace_idle` in one file silently took one of them; QA ops r08: so did `webhook` given twice; r03: `db: ''`
    turned the store off; `window-grace: off` was "'False' is not a duration"."""
    from click.testing import CliRunner

    from fluo_run.cli import main

    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("FLUO_")]:
        monkeypatch.delenv(name)
    (tmp_path / "fluo.yaml").write_text(text)
    result = CliRunner().invoke(main, ["serve", "--config", "fluo.yaml", "--no-db"], prog_name="fluo")
    assert result.exit_code == 2
    assert result.output.startswith(output) and result.output.count("\n") == 1, result.output
    assert "FLUO_" not in result.output


def serve_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, *args: str) -> tuple[int, str, Any]:
    """`fluo serve --config fluo.yaml ARGS` with `text` in the file, up to the ServeConfig it would serve with
    (None if it stopped before): its exit status, its output and that config."""
    from click.testing import CliRunner

    import fluo_run.serve.runtime
    from fluo_run.cli import main

    served: list[Any] = []

    async def serve(config: Any, **_: Any) -> int:
        served.append(config)
        return 0

    monkeypatch.setattr(fluo_run.serve.runtime, "serve", serve)
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("FLUO_")]:
        monkeypatch.delenv(name)
    (tmp_path / "fluo.yaml").write_text(text)
    result = CliRunner().invoke(main, ["serve", "--config", "fluo.yaml", *args], prog_name="fluo")
    return result.exit_code, result.output, served[0] if served else None


def serve_settings_keys() -> list[str]:
    from fluo_run.serve.cli import command

    return [p.name.replace("_", "-") for p in command.params if p.name and p.name != "config_file"]


@pytest.mark.usefixtures("fluo_logging")
@pytest.mark.parametrize("key", serve_settings_keys())
def test_a_config_key_without_a_value_is_a_usage_error_naming_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """QA ops r02: `auth-token:` (YAML null: a templated value that came out empty) started serve with no
    authentication, `webhook:`, `jsonl:`, `otlp-logs:` and `db:` with no such sink; r01: `max-spans-per-trace:`,
    `log-level:` and the other numbers were a traceback. No setting takes null for a meaning."""
    code, output, served = serve_settings(tmp_path, monkeypatch, f"# templated\n{key}:\n")
    assert (code, served) == (2, None), output
    assert output.startswith(f"fluo: --config fluo.yaml:2: `{key}` has no value; give ") and output.count("\n") == 1
    assert "Traceback" not in output


@pytest.mark.usefixtures("fluo_logging")
def test_a_config_value_is_taken_as_written_and_switches_take_1_and_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA ops r04: `no-db: 1` was refused ("1 is not true or false") though FLUO_NO_DB=1 is documented; a text
    setting took YAML's reading of it (`auth-token: 0123` the number 83, `db: off` False)."""
    code, output, served = serve_settings(tmp_path, monkeypatch, "no-db: 1\nauth-token: 0123\n")
    assert code == 0, output
    assert (served.db, served.store_off, served.auth_token) == (None, "--no-db", "0123")
    code, output, served = serve_settings(tmp_path, monkeypatch, "no-db: 0\ndb: yes\n")
    assert code == 0, output
    assert served.db == Path("yes")
    code, output, served = serve_settings(tmp_path, monkeypatch, "db: off\n")
    assert code == 0, output
    assert (served.db, served.store_off) == (None, "--db off")
    # review: as written, `db: no` (YAML 1.1's false, which read as off before) made a store named ./no
    code, output, served = serve_settings(tmp_path, monkeypatch, "db: no\ngrpc: No\nreload-interval: NO\n")
    assert code == 0, output
    assert (served.db, served.store_off, served.grpc, served.reload_interval) == (None, "--db no", None, 0.0)


@pytest.mark.usefixtures("fluo_logging")
@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--db", ""], "--db: empty; give a file, or leave --db out for ./fluo-signals.db (--no-db for no store)"),
        (["--no-db", "--rules", ""], "--rules: empty; give a rule file or folder (`.` for the current folder)"),
        (
            ["--no-db", "--config", "."],
            # QA receiver: it said so in click's words ("invalid value for '--config': File '.' is a directory")
            "--config cannot read .: it is a folder, not a file (see `fluo serve --help`)",
        ),
        (["--no-db", "--grpc", ""], "--grpc: empty; give HOST:PORT or `off`, or leave --grpc out for 127.0.0.1:4317"),
        (
            ["--no-db", "--grpc", " 0 "],
            "--grpc: '0' is not HOST:PORT; give e.g. 127.0.0.1:0 for a free port, or `off` for none",
        ),
        (  # review rev1: as --http's; --grpc's value was stripped, and its example was the OTLP/HTTP port (rules
            # that are not there: a server started rather than the error would end at them)
            ["--no-db", "--grpc", " 127.0.0.1:0", "--rules", "missing"],
            "--grpc: ' 127.0.0.1:0' has a space; give HOST:PORT without one, e.g. 127.0.0.1:4317",
        ),
        (
            ["--no-db", "--http", " 127.0.0.1:0", "--rules", "missing"],
            "--http: ' 127.0.0.1:0' has a space; give HOST:PORT without one, e.g. 127.0.0.1:4318",
        ),
    ],
    ids=["db", "rules", "config-folder", "grpc", "grpc-0", "grpc-space", "http-space"],
)
def test_an_empty_db_or_rules_flag_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], line: str
) -> None:
    """QA ops r03: `--db ""` (`--db "$STORE"`, STORE unset) turned the store off, logging "--no-db" though it was
    not given; `--rules ""` said "--rules: .: no .fluo files"; `--config FOLDER` named FLUO_CONFIG, not set.
    QA errors r02: `--grpc ""` and `--grpc 0` turned the gRPC receiver off without a word."""
    from click.testing import CliRunner

    from fluo_run.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLUO_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["serve", *args], prog_name="fluo")
    assert (result.exit_code, result.output) == (2, f"fluo: {line}\n")


def test_a_config_file_may_name_one_rules_folder_without_a_list(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, "rule r { expect trace.spans.count() < 100 }\n")
    (tmp_path / "fluo.yaml").write_text(f"rules: {rules}\nhttp: 127.0.0.1:0\ngrpc: 127.0.0.1:0\nno-db: true\n")
    with ServeProcess(["--config", str(tmp_path / "fluo.yaml")], cwd=tmp_path) as proc:
        proc.expect(r"rules: 1 per-trace rule and 0 windowed from 1 file")
        proc.started()
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0


def test_a_rule_over_the_cost_limit_is_refused(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, "rule cubic { expect trace.spans.all(descendants.all(ancestors.count() < 3)) }\n")
    proc = ServeProcess([*LOOPBACK, "--rules", str(rules), "--no-db"], cwd=tmp_path)
    assert proc.wait() == 1
    assert any("error[FLUO404]" in line for line in proc.log)
    proc = ServeProcess([*LOOPBACK, "--rules", str(rules), "--no-db", "--cost-limit", "0"], cwd=tmp_path)
    with proc:
        proc.started()
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0


@pytest.fixture
def fluo_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """`fluo serve` sets up the `fluo` logger (its own handler, no propagation): leave it as it was."""
    import logging

    log = logging.getLogger("fluo")
    monkeypatch.setattr(log, "handlers", list(log.handlers))
    monkeypatch.setattr(log, "propagate", log.propagate)
    monkeypatch.setattr(log, "level", log.level)


@pytest.mark.usefixtures("fluo_logging")
@pytest.mark.parametrize(
    ("header", "shown"),
    [
        ("Authorization Bearer HDRSECRET123", " 'Authorization' ..."),
        ("X-Api-Key=HDRSECRET123", " 'X-Api-Key' ..."),
        ("HDRSECRET123", ""),  # the value alone: nothing of it is shown
        (": HDRSECRET123", ""),
    ],
)
def test_a_header_without_a_colon_is_refused_without_showing_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, header: str, shown: str
) -> None:
    """Security r07: `--webhook-header 'Authorization Bearer X'` (the colon forgotten) was echoed whole in the
    usage error, the credential with it, into stderr, the journal, CI logs. The header name it starts with is
    shown, nothing after it."""
    from click.testing import CliRunner

    from fluo_run.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["--webhook", "http://127.0.0.1:9/hook", "--webhook-header", header]
    result = CliRunner().invoke(main, ["serve", *LOOPBACK, "--no-db", *args], prog_name="fluo")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"fluo: --webhook-header{shown}: not `Name: value` (the rest is not shown: it may be a key)"
    )
    assert "HDRSECRET123" not in result.output


@pytest.mark.usefixtures("fluo_logging")
@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--auth-token", ""],
            {},
            "fluo: --auth-token: empty; give a token, or leave --auth-token out to accept exports unauthenticated",
        ),
        (
            [],
            {"FLUO_AUTH_TOKEN": ""},
            "fluo: FLUO_AUTH_TOKEN: empty; give a token, or unset it to accept exports unauthenticated",
        ),
        (
            [],
            {"FLUO_AUTH_TOKEN": "  "},
            "fluo: --auth-token: empty; give a token, or leave --auth-token out to accept exports unauthenticated",
        ),
        (["--jsonl", ""], {}, "fluo: --jsonl: empty; give a file or -, or leave --jsonl out to write no JSON lines"),
        (["--webhook", " "], {}, "fluo: --webhook: empty; give a URL, or leave --webhook out to post to no webhook"),
        (
            ["--otlp-logs", ""],
            {},
            "fluo: --otlp-logs: empty; give an endpoint, or leave --otlp-logs out to export no OTLP logs",
        ),
        ([], {"FLUO_WEBHOOK": ""}, "fluo: FLUO_WEBHOOK: empty; give a URL, or unset it to post to no webhook"),
        ([], {"FLUO_JSONL": ""}, "fluo: FLUO_JSONL: empty; give a file or -, or unset it to write no JSON lines"),
        (
            ["--webhook", "http://127.0.0.1:9/hook", "--webhook-header", "X-Team: a\r\nX-Evil: 1"],
            {},
            "fluo: --webhook-header 'X-Team': a header cannot hold a line break (CR or LF)",
        ),
        (
            ["--webhook", "http://127.0.0.1:9/hook"],
            {"FLUO_WEBHOOK_HEADER": "X-Team: on call\nX-Other: a\rb"},
            "fluo: --webhook-header 'X-Other': a header cannot hold a line break (CR or LF)",
        ),
    ],
)
def test_an_empty_token_or_sink_or_a_header_with_a_line_break_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], message: str
) -> None:
    """Security QA: an empty FLUO_AUTH_TOKEN turned authentication off without a word; a header with CR/LF
    was refused only at each webhook POST, once signals were waiting for it. An empty --jsonl, --webhook or
    --otlp-logs (`--webhook "$URL"` with URL unset) meant no such sink, and its signals went nowhere."""
    from click.testing import CliRunner

    from fluo_run.cli import main

    monkeypatch.chdir(tmp_path)
    for name in ("FLUO_AUTH_TOKEN", "FLUO_JSONL", "FLUO_WEBHOOK", "FLUO_OTLP_LOGS"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["serve", *LOOPBACK, "--no-db", *args], prog_name="fluo", env=env)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == message
    assert "listening" not in result.output


@pytest.mark.usefixtures("fluo_logging")
@pytest.mark.parametrize(
    ("cert", "key", "message"),
    [
        ("junk.pem", "key.pem", "--tls-cert junk.pem: no PEM certificate in it (a -----BEGIN CERTIFICATE----- block)"),
        ("cert.pem", "junk.pem", "--tls-key junk.pem: no PEM private key in it (a -----BEGIN PRIVATE KEY----- block)"),
        ("key.pem", "cert.pem", "--tls-cert key.pem: no PEM certificate in it (a -----BEGIN CERTIFICATE----- block)"),
        ("cert.pem", "other/key.pem", "--tls-key other/key.pem: not the key of the certificate in --tls-cert cert.pem"),
        (
            "cert.pem",
            "locked.pem",
            "--tls-key locked.pem: is encrypted (it has a passphrase); give a key without one: "
            "openssl pkey -in KEY -out KEY2",
        ),
    ],
)
def test_a_tls_file_that_is_not_a_certificate_and_its_key_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cert: str, key: str, message: str
) -> None:
    """QA: a file that is not PEM, or a key of another certificate, gave a traceback (ssl.SSLError: PEM lib,
    KEY_VALUES_MISMATCH) and exit 1, once the rules were loaded and the sinks open."""
    import subprocess

    from click.testing import CliRunner

    from fluo_run.cli import main

    monkeypatch.chdir(tmp_path)
    self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    self_signed(tmp_path / "other")
    (tmp_path / "junk.pem").write_text("junk\n")
    subprocess.run(
        ["openssl", "pkey", "-in", "key.pem", "-aes256", "-passout", "pass:secret", "-out", "locked.pem"],
        check=True,
        capture_output=True,
    )
    args = ["serve", *LOOPBACK, "--no-db", "--tls-cert", cert, "--tls-key", key]
    result = CliRunner().invoke(main, args, prog_name="fluo")
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [f"fluo: {message}"]


@pytest.mark.parametrize(
    ("jsonl", "what"),
    [
        ("same.db", "the same file"),
        ("sub/../same.db", "the same file"),
        ("symlink.jsonl", "the same file"),
        ("hardlink.jsonl", "the same file"),
        ("same.db-wal", "same.db-wal, a file of the store"),
    ],
)
def test_the_store_and_the_jsonl_file_in_one_file_is_a_usage_error(tmp_path: Path, jsonl: str, what: str) -> None:
    """QA: `--db same.db --jsonl same.db` was taken: SQLite's pages overwrote the JSON lines, and the last
    line said every signal delivered."""
    (tmp_path / "sub").mkdir()
    sqlite3.connect(tmp_path / "same.db").close()
    (tmp_path / "symlink.jsonl").symlink_to(tmp_path / "same.db")
    os.link(tmp_path / "same.db", tmp_path / "hardlink.jsonl")
    with ServeProcess([*LOOPBACK, "--db", "same.db", "--jsonl", jsonl], cwd=tmp_path) as proc:
        assert proc.wait(timeout=15) == 2
    assert proc.log == [f"fluo: --db same.db and --jsonl {jsonl}: {what}; give --jsonl a file of its own"]


def test_a_jsonl_symlink_loop_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """QA: the check that --jsonl is not the store's file resolved the path, which raises on a symlink loop.
    QA errors: the line says it is a loop, as it does of a --db loop (SQLite: "the folder . is not writable")."""
    (tmp_path / "loop").symlink_to("loop")
    with ServeProcess([*LOOPBACK, "--db", "a.db", "--jsonl", "loop"], cwd=tmp_path) as proc:
        assert proc.wait(timeout=15) == 1
    assert proc.log[-1] == "fluo: cannot open sink jsonl: loop is a symbolic link loop"
    assert not any("Traceback" in line for line in proc.log)


NO_TOKEN_METRICS = "metrics on 0.0.0.0:9464: not loopback and no --auth-token: anyone who can reach it may read"


@pytest.mark.parametrize(
    ("http", "grpc", "metrics", "token", "tls", "warnings"),
    [
        ("127.0.0.1:4318", "[::1]:4317", "127.0.0.1:9464", None, False, []),
        ("localhost:4318", None, None, None, False, []),
        ("0.0.0.0:4318", "127.0.0.1:4317", None, None, False, ["OTLP/HTTP on 0.0.0.0:4318: not loopback"]),
        ("127.0.0.1:4318", "[::]:4317", None, "t", False, ["OTLP/gRPC on [::]:4317: not loopback and no --tls-cert"]),
        ("10.0.0.5:4318", "0.0.0.0:4317", "0.0.0.0:9464", "t", True, []),
        # security r06 (minor): --metrics beyond loopback was not warned about
        ("127.0.0.1:4318", None, "0.0.0.0:9464", None, False, [NO_TOKEN_METRICS]),
        ("0.0.0.0:4318", None, "0.0.0.0:9464", None, False, ["OTLP/HTTP on 0.0.0.0:4318: not", NO_TOKEN_METRICS]),
        ("127.0.0.1:4318", None, "0.0.0.0:9464", "t", False, ["metrics on 0.0.0.0:9464: not loopback and no --tls"]),
    ],
)
def test_a_receiver_or_metrics_beyond_loopback_without_a_token_or_tls_is_warned_about(
    caplog: pytest.LogCaptureFixture,
    http: str,
    grpc: str | None,
    metrics: str | None,
    token: str | None,
    tls: bool,
    warnings: list[str],
) -> None:
    from fluo_run.serve.config import ServeConfig, parse_address
    from fluo_run.serve.runtime import warn_exposed

    config = ServeConfig(
        http=parse_address(http, "--http"),
        grpc=parse_address(grpc, "--grpc") if grpc else None,
        metrics=parse_address(metrics, "--metrics") if metrics else None,
        auth_token=token,
        tls_cert=Path("cert.pem") if tls else None,
        tls_key=Path("key.pem") if tls else None,
    )
    with caplog.at_level("WARNING", logger="fluo.serve"):
        warn_exposed(config)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == len(warnings)
    assert all(line.startswith(w) for line, w in zip(lines, warnings, strict=True)), lines


def test_the_warning_about_a_receiver_beyond_loopback_names_the_port_it_was_bound_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """QA serve r2: `--http 0.0.0.0:0` was warned about as `0.0.0.0:0`, the port asked for, before it was bound.
    (Loopback is taken for beyond it here, so that the test listens on loopback alone.)"""
    from serve_support import config

    from fluo_run.serve import runtime

    monkeypatch.setattr(runtime, "_loopback", lambda host: False)
    with caplog.at_level("WARNING", logger="fluo.serve"), runtime.RuntimeThread(config(tmp_path)) as rt:
        http, grpc = rt.runtime.http_port, rt.runtime.grpc_port
    assert http and grpc
    lines = [r.getMessage() for r in caplog.records if "not loopback" in r.getMessage()]
    assert lines == [
        f"OTLP/HTTP on 127.0.0.1:{http} and OTLP/gRPC on 127.0.0.1:{grpc}: not loopback and no --auth-token: "
        "anyone who can reach it may send spans"
    ]


def signal_mask(pid: int, field: str) -> int:
    """A process's SigIgn or SigCgt mask from /proc: bit n-1 for signal n."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    return 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal masks from /proc")
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT], ids=["SIGHUP", "SIGTERM", "SIGINT"])
@pytest.mark.parametrize("entry", ["module", "script"])
def test_sighup_sigterm_and_sigint_while_starting_are_handled_from_the_first_moment(
    tmp_path: Path, entry: str, sig: signal.Signals
) -> None:
    """QA: SIGHUP in the first second killed serve silently (-1), SIGTERM gave -15: the runtime installs its
    handlers after the imports and the rules. Now the package's import ignores SIGHUP and catches SIGTERM. QA
    receiver r02: SIGINT (Ctrl-C) during the imports printed a KeyboardInterrupt traceback and died by the
    signal; now it is caught with SIGTERM, and said as SIGTERM is."""
    import subprocess
    import sys

    bin_folder = Path(sys.executable).parent
    command = [sys.executable, "-m", "fluo_run.cli"] if entry == "module" else [str(bin_folder / "fluo")]
    args = [*command, "serve", *LOOPBACK, "--no-db"]
    # A run under `nohup`, or started with `&` by a script, passes SIGHUP or SIGINT on ignored: the mask below would
    # be set before the early handlers are, and SIGINT never arrive. The child starts with them as a terminal's.
    from_a_terminal = (
        "import os, signal, sys\n"
        "for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM): signal.signal(s, signal.SIG_DFL)\n"
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    bit = 1 << (sig - 1)
    with subprocess.Popen(
        [sys.executable, "-c", from_a_terminal, *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            # SIGHUP ignored is the early handlers' last step (SIGINT is caught from the interpreter's start: its
            # mask cannot tell them apart); SIGTERM caught tells them from the wrapper's start, which may have
            # SIGHUP ignored for a moment, and catches nothing (a caught signal is not passed on by exec)
            hup, term = 1 << (signal.SIGHUP - 1), 1 << (signal.SIGTERM - 1)
            wait_for(
                lambda: signal_mask(proc.pid, "SigIgn") & hup and signal_mask(proc.pid, "SigCgt") & term,
                what="the early handlers",
                timeout=10,
            )
            proc.send_signal(sig)
            if sig == signal.SIGHUP:  # ignored: serve goes on to start, and stops cleanly
                wait_for(lambda: signal_mask(proc.pid, "SigCgt") & bit, what="serve's own handlers", timeout=30)
                time.sleep(0.2)
                assert proc.poll() is None
                proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    if sig != signal.SIGHUP:
        assert err == f"fluo: {sig.name} while starting: stopped before serving (nothing was received)\n"


@pytest.mark.usefixtures("fluo_logging")
def test_log_lines_are_stamped_in_utc_whatever_the_local_zone(capsys: pytest.CaptureFixture[str]) -> None:
    """QA serve: under TZ=America/New_York the log said 21:52 at 02:52 UTC, with no offset, while `fluo signals`
    shows UTC: the two could not be lined up."""
    import logging
    import time
    from datetime import UTC, datetime

    from fluo_run.serve.cli import setup_logging

    zone = os.environ.get("TZ")
    os.environ["TZ"] = "EST+5"  # a POSIX zone: no tz database needed
    time.tzset()
    try:
        assert time.localtime().tm_gmtoff == -5 * 3600
        setup_logging("info")
        before = datetime.now(UTC)
        logging.getLogger("fluo.serve").info("hello")
        after = datetime.now(UTC)
    finally:
        if zone is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = zone
        time.tzset()
    line = capsys.readouterr().err.strip()
    stamp, level, message = line.split(None, 2)
    assert (level, message) == ("INFO", "hello")
    at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= at <= after, (stamp, before, after)


def test_a_listener_whose_port_another_of_serves_takes_says_so(tmp_path: Path) -> None:
    """QA serve r2: listeners on one port whose addresses overlap without being equal (`--http 0.0.0.0:4318
    --metrics 127.0.0.1:4318`) pass the settings' check, and the second failed to bind with 'Address already in
    use' alone, as if another program held the port. It now names the listener of serve's own that has it.
    (`localhost` for `127.0.0.1` here, so that the test listens on loopback alone.)"""
    from serve_support import config

    from fluo_run.serve.runtime import RuntimeThread, StartError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = config(tmp_path, grpc=None, http=("127.0.0.1", port), metrics=("localhost", port))
    with pytest.raises(StartError) as refused:
        RuntimeThread(settings).start()
    assert str(refused.value) == (
        f"cannot listen on localhost:{port} (--metrics): Address already in use; --http 127.0.0.1:{port} is given "
        "that port too (0.0.0.0 or :: takes it on every address): give each its own port"
    )
