#!/usr/bin/env bash
# Every check of the VS Code extension. Needs Node 20 + npm, and a Python with
# `fluo` installed (`$FLUO_PYTHON`, else python or python3). After `npm ci` (run here when
# node_modules is missing or was installed from another package-lock.json) nothing is fetched.
# Stops at the first failing check with a non-zero status.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$SECONDS
bin=node_modules/.bin
# The Python with fluo installed: $FLUO_PYTHON, else the first of python, python3 that has it.
if [ -z "${FLUO_PYTHON:-}" ]; then
  for candidate in python python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import fluo_lsp.server' 2>/dev/null; then
      FLUO_PYTHON=$(command -v "$candidate")
      break
    fi
  done
fi
export FLUO_PYTHON="${FLUO_PYTHON:-}"

if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
  echo "vscode-extension/scripts/ci.sh: needs Node 20 or later on PATH (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
if [ -z "$FLUO_PYTHON" ] || ! "$FLUO_PYTHON" -c 'import fluo_lang, fluo_lsp.server' 2>/dev/null; then
  echo "vscode-extension/scripts/ci.sh: needs a Python with fluo installed (pip install -e .); set FLUO_PYTHON to it" >&2
  exit 1
fi

step() { printf '\n== vscode-extension: %s\n' "$*"; }

lock_hash=$(node -e "process.stdout.write(require('crypto').createHash('sha256').update(require('fs').readFileSync('package-lock.json')).digest('hex'))")
if [ ! -f node_modules/.ci-lock-hash ] || [ "$(cat node_modules/.ci-lock-hash)" != "$lock_hash" ]; then
  step "npm ci"
  npm ci --prefer-offline --no-audit --no-fund
  echo "$lock_hash" > node_modules/.ci-lock-hash
fi

step "TextMate grammar in step with grammar/fluo.lark and the builtin registry"
"$FLUO_PYTHON" scripts/sync_grammar.py --check

step "tsc --noEmit"
"$bin/tsc" --noEmit -p .

step "esbuild: dist/extension.js and out/"
node scripts/build.mjs

step "unit tests (node --test, fake vscode module)"
node --require ./out/test/support/register.js --test --test-reporter=spec --test-timeout=120000 out/test/unit/

step "grammar tests (vscode-tmgrammar-test)"
"$bin/vscode-tmgrammar-test" "test/grammar/**/*.fluo"

step "smoke tests: the real fluo lsp over stdio, and the bundle's real client"
node --test --test-reporter=spec --test-timeout=120000 out/test/smoke/

step "npm run package (vsce package --no-dependencies --allow-missing-repository)"
version=$(node -p "require('./package.json').version")
vsix="fluo-$version.vsix"
rm -f "$vsix"
# As README.md says to run it, with no terminal to answer a prompt: it must not ask anything.
npm run --silent package -- --out "$vsix" </dev/null
node -e '
  const zip = require("fs").readFileSync(process.argv[1]).toString("latin1");
  const need = ["extension/package.json", "extension/dist/extension.js", "extension/syntaxes/fluo.tmLanguage.json",
    "extension/snippets/fluo.code-snippets", "extension/language-configuration.json", "extension/readme.md",
    "extension/images/icon.png"];
  const missing = need.filter((n) => !zip.includes(n));
  const leaked = ["extension/src/", "extension/test/", "extension/node_modules/", "extension/out/"].filter((n) => zip.includes(n));
  if (missing.length || leaked.length) {
    console.error(`${process.argv[1]}: missing ${missing.join(", ") || "nothing"}; should not ship ${leaked.join(", ") || "anything else"}`);
    process.exit(1);
  }
  console.log(`${process.argv[1]}: ${need.length} expected files, nothing extra`);
' "$vsix"

step "all checks passed in $((SECONDS - started)) s"
