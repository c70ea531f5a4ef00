"""A real editor: headless Neovim's built-in LSP client talks to `fluo lsp`.

Neovim, set up as docs/editor.md says (its Lua blocks, run as written), opens a rule
file with errors, waits (bounded) for the diagnostics, asks for completion after
`trace.spans.`, opens a second rule file and a test file (one server for all three),
and writes what it got to a JSON file. Once in a plain folder and once in one whose
URI has percent-escapes (a space, a non-ASCII letter).
Needs Debian's `neovim` (0.7 or later); `scripts/test` installs it where missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests_paths import ROOT

EDITOR_DOC = (ROOT / "docs" / "editor.md").read_text(encoding="utf-8")

RULES = """\
rule storm {
  severity: critical
  detect trace.spans.cuont() > 50
}

rule draft {
  expect trace.spans.
}

rule keyed {
  expect trace.spans.where(http.)
}
"""

NEOVIM_SECTION = EDITOR_DOC[EDITOR_DOC.index("**Neovim**") : EDITOR_DOC.index("**Any other client**")]
SETUPS = re.findall(r"```lua\n(.*?)```", NEOVIM_SECTION, re.DOTALL)
"""docs/editor.md's Neovim setups (0.8 or later, then 0.7), which the test runs as written, but for the command."""

TEST_FILE = "rules: [storm.fluo]\ncases:\n  - name: one\n    spans: [{name: a}]\n    expect: [strom]\n"

SCRIPT = """\
local out = {}
local function codes(bufnr)
  local found = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    table.insert(found, d.code or (d.user_data and d.user_data.lsp and d.user_data.lsp.code) or '')
  end
  return found
end
local ok, err = pcall(function()
  vim.cmd('edit ' .. vim.fn.fnameescape(%(rule)s))
  local bufnr = vim.api.nvim_get_current_buf()
  vim.wait(30000, function() return #vim.diagnostic.get(bufnr) > 0 end, 50)
  out.diagnostics = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    local code = d.code or (d.user_data and d.user_data.lsp and d.user_data.lsp.code) or ''
    table.insert(out.diagnostics, { line = d.lnum, col = d.col, code = code, message = d.message })
  end
  local params = { textDocument = { uri = vim.uri_from_bufnr(bufnr) }, position = { line = 6, character = 21 } }
  local responses = vim.lsp.buf_request_sync(bufnr, 'textDocument/completion', params, 20000)
  out.completion = {}
  for _, response in pairs(responses or {}) do
    local result = response.result or {}
    for _, item in ipairs(result.items or result) do table.insert(out.completion, item.label) end
  end
  params.position = { line = 10, character = 32 }
  responses = vim.lsp.buf_request_sync(bufnr, 'textDocument/completion', params, 20000)
  out.keys = {}
  for _, response in pairs(responses or {}) do
    local result = response.result or {}
    for _, item in ipairs(result.items or result) do table.insert(out.keys, item.label) end
  end
  -- a second rule file and a test file: attached to the same server, which sees the first file's unsaved edits
  vim.cmd('edit ' .. vim.fn.fnameescape(%(second)s))
  local second = vim.api.nvim_get_current_buf()
  vim.wait(30000, function() return #vim.diagnostic.get(second) > 0 end, 50)
  out.second = codes(second)
  vim.cmd('edit ' .. vim.fn.fnameescape(%(test)s))
  local test = vim.api.nvim_get_current_buf()
  vim.wait(30000, function() return #vim.diagnostic.get(test) > 0 end, 50)
  out.test = codes(test)
  out.clients = #vim.lsp.get_active_clients()
  out.attached = {}
  for _, b in ipairs({ bufnr, second, test }) do
    local ids = {}
    for id, _ in pairs(vim.lsp.buf_get_clients(b)) do table.insert(ids, id) end
    table.insert(out.attached, ids)
  end
  vim.api.nvim_buf_set_text(bufnr, 0, 5, 0, 10, { 'gale' })  -- `rule storm` renamed, unsaved
  vim.wait(30000, function() return #vim.diagnostic.get(second) == 0 end, 50)
  out.second_after = codes(second)
end)
if not ok then out.error = tostring(err) end
vim.fn.writefile({ vim.fn.json_encode(out) }, %(out)s)
vim.cmd('qa!')
"""


TOGETHER_SCRIPT = """\
local bufs = vim.api.nvim_list_bufs()
vim.wait(30000, function()
  for _, b in ipairs(bufs) do
    if #vim.diagnostic.get(b) == 0 then return false end
  end
  return true
end, 50)
local diagnosed = 0
for _, b in ipairs(bufs) do
  if #vim.diagnostic.get(b) > 0 then diagnosed = diagnosed + 1 end
end
local out = { buffers = #bufs, diagnosed = diagnosed, clients = #vim.lsp.get_active_clients() }
vim.fn.writefile({ vim.fn.json_encode(out) }, %(out)s)
vim.cmd('qa!')
"""
"""Files opened together (`nvim -o a b c`): each buffer's FileType comes before any server has answered
`initialize`. Waits (bounded) until every buffer has its diagnostics, then counts the servers."""


def lua_string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # Lua has no \u escapes; UTF-8 in the string is fine


def run_headless(nvim: str, cwd: Path, script: Path, out: Path, *files: str) -> Any:
    """Run headless Neovim in `cwd` with its `init.lua`, `files` opened, then the Lua `script`; what the script
    wrote to `out` as JSON."""
    command = [nvim, "--headless", "--clean", "-u", "init.lua", *files, "-c", f"luafile {script}"]
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.exists(), f"Neovim wrote no result (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(out.read_text())


def nvim_version(nvim: str) -> tuple[int, int]:
    found = re.search(r"NVIM v(\d+)\.(\d+)", subprocess.run([nvim, "--version"], capture_output=True, text=True).stdout)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


@pytest.mark.parametrize("folder", ["rules", "my règles"])
def test_neovim_gets_diagnostics_and_completions(tmp_path: Path, folder: str) -> None:
    """With each documented setup the installed Neovim runs (the 0.7 one always): every buffer of the project,
    rule files and test file, shares one server (QA editor tour r06: the 0.7 line started one per buffer),
    opened one after the other or together on the command line (editor tour r01: on 0.7 each file opened
    together started a server, `client_is_stopped` being true until `initialize` is answered)."""
    nvim = shutil.which("nvim")
    if nvim is None:
        pytest.fail("nvim not found: install Debian's neovim (apt-get install -y neovim); scripts/test does it")
    assert len(SETUPS) == 2 and all('{ "fluo", "lsp" }' in setup for setup in SETUPS), SETUPS
    (tmp_path / folder).mkdir()
    rule = tmp_path / folder / "storm.fluo"
    rule.write_text(RULES)
    second = tmp_path / folder / "zz.fluo"
    second.write_text("rule storm {\n  expect true\n}\n")  # defined first in storm.fluo: FLUO213
    test = tmp_path / folder / "storm_test.yaml"
    test.write_text(TEST_FILE)
    shutil.copy(ROOT / "examples" / "traces" / "payment_ok.json", tmp_path)  # a fixture with the key `http.route`
    cmd = "{ " + ", ".join(lua_string(x) for x in (sys.executable, "-m", "fluo_run.cli", "lsp")) + " }"
    setups = SETUPS if nvim_version(nvim) >= (0, 8) else SETUPS[1:]
    for setup in setups:
        out = tmp_path / "result.json"
        out.unlink(missing_ok=True)
        (tmp_path / "init.lua").write_text(setup.replace('{ "fluo", "lsp" }', cmd), encoding="utf-8")
        script = tmp_path / "client.lua"
        paths = {"rule": rule, "second": second, "test": test, "out": out}
        script.write_text(SCRIPT % {k: lua_string(str(v)) for k, v in paths.items()}, encoding="utf-8")
        result = run_headless(nvim, tmp_path, script, out)
        assert "error" not in result, result["error"]
        diags = sorted((d["line"], d["col"], d["code"]) for d in result["diagnostics"])
        assert diags == [(2, 21, "FLUO201"), (7, 0, "FLUO100"), (10, 32, "FLUO100")]  # `.cuont(`, names missing
        assert any("did you mean `count`?" in d["message"] for d in result["diagnostics"])
        assert {"where", "count", "all", "exists"} <= set(result["completion"])
        assert "spans" not in result["completion"]
        assert "route" in result["keys"]  # the workspace's keys: the documented setup gives the server a root
        assert result["second"] == ["FLUO213"] and "unknown-rule" in result["test"]
        assert result["clients"] == 1 and [len(ids) for ids in result["attached"]] == [1, 1, 1]
        assert result["second_after"] == []  # storm.fluo's unsaved rename reached zz.fluo's check

        out.unlink()
        script.write_text(TOGETHER_SCRIPT % {"out": lua_string(str(out))}, encoding="utf-8")
        together = run_headless(nvim, tmp_path, script, out, "-o", *map(str, (rule, second, test)))
        assert together == {"buffers": 3, "diagnosed": 3, "clients": 1}


def test_readme_starts_neovim_as_the_editor_guide_does() -> None:
    """README's one line for Neovim 0.8 is the guide's `vim.lsp.start` call, `root_dir` included (it had none,
    though the guide says to keep it: without it the server has no workspace folder)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [start] = re.findall(r"vim\.lsp\.start\(\{.*?\}\)", SETUPS[0])
    assert f"`{start}`" in readme
