"""A real editor: headless Neovim's built-in LSP client talks to `fluo lsp`.

Neovim opens a rule file with errors, waits (bounded) for the diagnostics, asks
for completion after `trace.spans.`, and writes what it got to a JSON file. Once
in a plain folder and once in one whose URI has percent-escapes (a space, a non-ASCII letter).
Needs Debian's `neovim` (0.7 or later); `scripts/test` installs it where missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

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

START = re.search(r"`(vim\.lsp\.buf_attach_client\(0, vim\.lsp\.start_client\(.*?\)\))`", EDITOR_DOC)
"""The Neovim 0.7 line of docs/editor.md, which the test runs as written, but for the command."""

SCRIPT = """\
local out = {}
local ok, err = pcall(function()
  vim.cmd('edit ' .. vim.fn.fnameescape(%(rule)s))
  vim.bo.filetype = 'fluo'
  local bufnr = vim.api.nvim_get_current_buf()
  %(start)s
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
end)
if not ok then out.error = tostring(err) end
vim.fn.writefile({ vim.fn.json_encode(out) }, %(out)s)
vim.cmd('qa!')
"""


def lua_string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # Lua has no \u escapes; UTF-8 in the string is fine


@pytest.mark.parametrize("folder", ["rules", "my règles"])
def test_neovim_gets_diagnostics_and_completions(tmp_path: Path, folder: str) -> None:
    nvim = shutil.which("nvim")
    if nvim is None:
        pytest.fail("nvim not found: install Debian's neovim (apt-get install -y neovim); scripts/test does it")
    (tmp_path / folder).mkdir()
    rule = tmp_path / folder / "storm.fluo"
    rule.write_text(RULES)
    shutil.copy(ROOT / "examples" / "traces" / "payment_ok.json", tmp_path)  # a fixture with the key `http.route`
    out = tmp_path / "result.json"
    script = tmp_path / "client.lua"
    cmd = "{ " + ", ".join(lua_string(x) for x in (sys.executable, "-m", "fluo_run.cli", "lsp")) + " }"
    assert START is not None and '{ "fluo", "lsp" }' in START.group(1)
    start = START.group(1).replace('{ "fluo", "lsp" }', cmd)
    script.write_text(
        SCRIPT % {"rule": lua_string(str(rule)), "start": start, "out": lua_string(str(out))},
        encoding="utf-8",
    )
    proc = subprocess.run(
        [nvim, "--headless", "--clean", "-c", f"luafile {script}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert out.exists(), f"Neovim wrote no result (exit {proc.returncode}): {proc.stderr[-2000:]}"
    result = json.loads(out.read_text())
    assert "error" not in result, result["error"]
    diags = sorted((d["line"], d["col"], d["code"]) for d in result["diagnostics"])
    assert diags == [(2, 21, "FLUO201"), (7, 0, "FLUO100"), (10, 32, "FLUO100")]  # `.cuont(`, names missing
    assert any("did you mean `count`?" in d["message"] for d in result["diagnostics"])
    assert {"where", "count", "all", "exists"} <= set(result["completion"])
    assert "spans" not in result["completion"]
    assert "route" in result["keys"]  # the workspace's keys: the documented line gives the server a root (QA 12)
