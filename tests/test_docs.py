"""The reference docs are generated from the registries; stale docs fail here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from tests_paths import ROOT

from fluo_lang import builtins as b
from fluo_lang.api import analyze, compile_program
from fluo_lang.docs import diagnostics_markdown, main, render_language
from fluo_lang.otlp import load_trace_file, spans_from_json
from fluo_lang.trace import assemble
from fluo_run.cli import main as cli


def test_language_reference_is_current() -> None:
    current = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    assert current == render_language(current), "docs/language.md is stale: run `python -m fluo_lang.docs`"


def test_reference_lists_every_registry_entry() -> None:
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    for m in b.MEMBERS:
        shown = m.signature.split(".", 1)[1].replace("|", "\\|")  # table cells escape pipes
        assert f"`{shown}`" in text, m.signature
    for op in b.OPERATORS:
        assert f"`{op.symbol}`" in text


def test_diagnostic_codes_are_current() -> None:
    current = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    assert current == diagnostics_markdown(), "docs/diagnostics.md is stale: run `python -m fluo_lang.docs`"


def test_the_test_file_shown_in_testing_md_is_part_of_the_example() -> None:
    """docs/testing.md shows cases of examples/rules/auth_test.yaml: each must be one of that file's, as written."""
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    found = re.search(r"```yaml\n(# (\w+) of the (\w+) cases of (examples/[\w/.]+\.yaml)[^\n]*\n.*?)```", text, re.S)
    assert found, "the first test file shown no longer says which example it comes from"
    shown = yaml.safe_load(found.group(1))
    real = yaml.safe_load((ROOT / found.group(4)).read_text(encoding="utf-8"))
    assert shown["rules"] == real["rules"]
    assert all(case in real["cases"] for case in shown["cases"])
    words = ["one", "two", "three", "four", "five", "six"]
    assert (found.group(2), found.group(3)) == (words[len(shown["cases"]) - 1], words[len(real["cases"]) - 1])


def test_the_generator_checks_writes_and_explains_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    language = tmp_path / "language.md"
    language.write_text((ROOT / "docs" / "language.md").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "diagnostics.md").write_text("old\n", encoding="utf-8")
    with pytest.raises(SystemExit) as help_exit:
        main(["--help"], docs=tmp_path)
    assert help_exit.value.code == 0 and "--check" in capsys.readouterr().out
    assert (tmp_path / "diagnostics.md").read_text(encoding="utf-8") == "old\n"  # --help writes nothing
    assert main(["--check"], docs=tmp_path) == 1
    assert capsys.readouterr().out == f"stale: {tmp_path / 'diagnostics.md'} (run `python -m fluo_lang.docs`)\n"
    assert (tmp_path / "diagnostics.md").read_text(encoding="utf-8") == "old\n"
    assert main([], docs=tmp_path) == 0
    assert (tmp_path / "diagnostics.md").read_text(encoding="utf-8") == diagnostics_markdown()
    assert main(["--check"], docs=tmp_path) == 0
    language.write_text("no markers\n", encoding="utf-8")
    assert main(["--check"], docs=tmp_path) == 2
    assert "lacks the generated-section markers" in capsys.readouterr().err


def _readme_exit_clauses() -> dict[str, str]:
    """README's exit-status paragraph, by command: the clause of each (`fmt` 0 ... / 2 ...)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^Exit status: (.*?)\n\n", readme, re.S | re.M)
    assert found, "README.md lost its `Exit status:` paragraph"
    clauses = {}
    for clause in " ".join(found.group(1).split()).split("; "):
        named = re.match(r"`(\w+)", clause)
        if named:
            clauses.setdefault(named.group(1), clause)
    return clauses


@pytest.mark.parametrize("command", ["check", "eval", "test", "fmt", "serve"])
def test_readme_gives_every_exit_status_a_commands_help_gives(command: str) -> None:
    """QA docs 07: README's clause for `fmt` said only `--check`'s 1, where `fluo fmt --help` (and fmt) give 2
    for a syntax error. Ctrl-C's 130 is said once for every command."""
    help_text = CliRunner().invoke(cli, [command, "--help"], terminal_width=100).output
    said = re.search(r"Exit status:? (.*?)(?:\n\s*\n|\Z)", help_text, re.S)
    assert said, f"`fluo {command} --help` gives no exit status"
    codes = set(re.findall(r"(?<![\w.-])(\d{1,3})(?![\w.])", said.group(1)))
    clause = _readme_exit_clauses()[command]
    readme_codes = set(re.findall(r"(?<![\w.-])(\d{1,3})(?![\w.])", clause))
    assert codes - {"130"} <= readme_codes, (command, clause)


def test_every_endpoint_example_for_the_http_port_gives_the_http_protocol() -> None:
    """QA newuser r03: `fluo serve --help` showed `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python app.py`;
    the SDK's configuration defaults to gRPC and sent it to the HTTP port (UNAVAILABLE, no signal). Wherever an
    example sets the endpoint to port 4318, the protocol is set to http/protobuf on that line or the next."""
    texts = {f"fluo {c} --help": CliRunner().invoke(cli, [c, "--help"]).output for c in ("serve", "demo", "test")}
    texts |= {
        str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *ROOT.glob("docs/*.md")]
    }
    bare = []
    for where, text in texts.items():
        lines = text.splitlines()
        for i, line in enumerate(lines):
            near = " ".join(lines[i : i + 2])
            if re.search(r"OTEL_EXPORTER_OTLP_ENDPOINT=\S*:4318", line) and "PROTOCOL=http/protobuf" not in near:
                bare.append(f"{where}: {line.strip()}")
    assert bare == []


def test_readme_names_every_commands_exit_status() -> None:
    assert {"check", "eval", "test", "fmt", "serve", "signals", "discover", "demo"} <= set(_readme_exit_clauses())


def test_the_span_language_md_shows_as_its_id_is_what_a_signal_holds() -> None:
    """QA lang r04: the example was `trace.root == parent`, where `parent` outside a predicate is FLUO204."""
    text = " ".join((ROOT / "docs" / "language.md").read_text(encoding="utf-8").split())
    shown = re.search(r"A span shows as its span id, as `span_ids` names it: `(expect [^`]+)` shows `([^`]+)`", text)
    assert shown, "docs/language.md no longer shows how a span reads in a signal"
    clause, observed = shown.groups()
    analysis = analyze([("r.fluo", f"rule r {{ {clause} }}")])
    assert analysis.diagnostics == [], [d.format() for d in analysis.diagnostics]
    span = {"traceId": "c" * 32, "spanId": "a000000000000001", "name": "s", "startTimeUnixNano": "1"}
    (read,) = spans_from_json(
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "endTimeUnixNano": "2"}]}]}]}, source="t"
    )
    (signal,) = compile_program(analysis).evaluate_trace(assemble([read])[0])
    assert signal.observed == json.loads(observed)


def test_the_bytes_reading_language_md_shows_is_what_a_rule_reads() -> None:
    """QA docs 02: a `bytesValue` attribute reads as its hex text, which docs/language.md never said."""
    text = " ".join((ROOT / "docs" / "language.md").read_text(encoding="utf-8").split())
    shown = re.search(r'`"bytesValue": "([^"]+)"`, `(\w+) == \'(\w+)\'` holds \(and `== \'([^\']+)\'` does not\)', text)
    assert shown, "docs/language.md no longer shows how a bytes attribute value reads"
    b64, key, hex_text, other = shown.groups()
    assert other == b64
    span = {"traceId": "a" * 32, "spanId": "b" * 16, "name": "s", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
    span["attributes"] = [{"key": key, "value": {"bytesValue": b64}}]
    (read,) = spans_from_json({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}, source="t")
    program = compile_program(analyze([("r.fluo", f"rule r {{ detect trace.spans.where({key} == '{hex_text}') }}")]))
    assert [s.rule for s in program.evaluate_trace(assemble([read])[0])] == ["r"]
    assert read.attributes[key] != b64


def test_the_fix_editor_md_shows_leading_to_an_error_is_offered_so() -> None:
    """docs/editor.md and `code_actions` gave `servce > 5` as a fix that leads to an error, but the checker
    says nothing there (no string is `> 5`, so `servce` reads as an attribute): no such fix existed."""
    from fluo_lsp.actions import code_actions
    from fluo_lsp.document import RuleDocument

    docs = (ROOT / "docs" / "editor.md").read_text()
    found = re.search(r"its title names the error it leads to \(`([^`]+)` → `([^`]+)`", docs)
    assert found is not None
    before, after = found.groups()
    text = f"rule a {{\n  severity: error\n  expect trace.spans.{before}.exists()\n}}\n"
    actions = code_actions(RuleDocument("a.fluo", text, None), "file:///a.fluo", 0, len(text), strict=False)
    [fix] = [a for a in actions if a.title.startswith("Change to")]
    assert fix.edit is not None and fix.edit.changes is not None and not fix.is_preferred
    [edit] = fix.edit.changes["file:///a.fluo"]
    column = text.splitlines()[2].index(before)  # where `before` starts on its line
    cut = slice(edit.range.start.character - column, edit.range.end.character - column)
    fixed = before[: cut.start] + edit.new_text + before[cut.stop :]
    assert (fixed, "(then FLUO" in fix.title) == (after, True)
    assert f"`{before}` -> `{after}`" in (code_actions.__doc__ or "")


def test_the_fixture_warnings_testing_md_shows_start_as_fluo_prints_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA docs r03: docs/testing.md showed the unknown-key and too-deep warnings without the `fluo: warning: `
    that `fluo eval` and `fluo test` print before them on stderr."""
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```\w*\n(.*?)^```", text, re.S | re.M)
    shown = [line for block in blocks for line in block.splitlines() if "traces/t.json: " in line]
    assert len(shown) == 3, shown
    deep: dict[str, object] = {"stringValue": "x"}
    for _ in range(40):
        deep = {"arrayValue": {"values": [deep]}}
    span = {"traceId": "a" * 32, "spanId": "b" * 16, "name": "s", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
    spans = [
        {**span, "atributes": [], "events": [{"nmae": "e"}]},
        {**span, "spanId": "c" * 16, "attributes": [{"key": "deep", "value": deep}]},
    ]
    (tmp_path / "traces").mkdir()
    fixture = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    (tmp_path / "traces" / "t.json").write_text(json.dumps(fixture), encoding="utf-8")
    (tmp_path / "r.fluo").write_text("rule r { expect trace.spans.count() < 100 }\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    printed = CliRunner().invoke(cli, ["eval", "r.fluo", "--traces", "traces/t.json"]).stderr.splitlines()
    assert len(printed) == 3, printed
    for doc_line, tool_line in zip(shown, printed, strict=True):
        assert doc_line.split("traces/t.json: ")[0] == tool_line.split("traces/t.json: ")[0], (doc_line, tool_line)


def test_the_python_fixture_recipe_in_testing_md_writes_a_file_fluo_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/testing.md's "Fixtures from your own traffic" runs as shown, and fluo reads the .pb it writes."""
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    section = text.split("## Fixtures from your own traffic\n", 1)[1].split("\n## ", 1)[0]
    (recipe,) = re.findall(r"```python\n(.*?)```", section, re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(recipe, "docs/testing.md", "exec"), {})
    spans = load_trace_file(tmp_path / "checkout.pb")
    assert sorted((s.service, s.name) for s in spans) == [("checkout", "charge"), ("checkout", "checkout")]
    (charge,) = (s for s in spans if s.name == "charge")
    assert charge.attributes["http.response.status_code"] == 502
    detect = "trace.spans.where(http.response.status_code >= 500).exists()"
    result = CliRunner().invoke(cli, ["eval", "--detect", detect, "-t", str(tmp_path / "checkout.pb")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["span_ids"] == [charge.span_id.hex()]
