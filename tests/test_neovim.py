"""A real editor: headless Neovim's built-in LSP client talks to `fluo lsp`.

Neovim opens a rule file with errors, waits (bounded) for the diagnostics, asks
for completion after `trace.spans.`, and writes what it got to a JSON file. Once
in a plain folder and once in one whose URI has percent-escapes (a space, a non-ASCII letter).
Needs Debian's `neovim` (0.7 or later); `scripts/test` installs it where missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RULES = """\
rule storm {
  severity: critical
  detect trace.spans.cuont() > 50
}

rule draft {
  expect trace.spans.
}
"""

SCRIPT = """\
local out = {}
local ok, err = pcall(function()
  vim.cmd('edit ' .. vim.fn.fnameescape(%(rule)s))
  vim.bo.filetype = 'fluo'
  local bufnr = vim.api.nvim_get_current_buf()
  local id = vim.lsp.start_client({ name = 'fluo', cmd = %(cmd)s, root_dir = %(root)s })
  vim.lsp.buf_attach_client(bufnr, id)
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
    out = tmp_path / "result.json"
    script = tmp_path / "client.lua"
    cmd = "{ " + ", ".join(lua_string(x) for x in (sys.executable, "-m", "fluo_run.cli", "lsp")) + " }"
    script.write_text(
        SCRIPT
        % {"rule": lua_string(str(rule)), "cmd": cmd, "root": lua_string(str(tmp_path)), "out": lua_string(str(out))},
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
    assert diags == [(2, 21, "FLUO201"), (7, 0, "FLUO100")]  # `.cuont(`, and the name missing before `}`
    assert any("did you mean `count`?" in d["message"] for d in result["diagnostics"])
    assert {"where", "count", "all", "exists"} <= set(result["completion"])
    assert "spans" not in result["completion"]
