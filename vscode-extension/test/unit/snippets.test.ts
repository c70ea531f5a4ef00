/**
 * Every snippet, expanded as VS Code expands it with the language's default indentation (`configurationDefaults`:
 * two spaces) and each placeholder left at its default, is what `fluo fmt` writes and passes `fluo check`.
 */

import * as assert from 'node:assert/strict';
import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { PYTHON, readJson, tempFolder } from '../support/paths';

interface Snippet {
  prefix: string | string[];
  body: string | string[];
  description: string;
}

const snippets = readJson<Record<string, Snippet>>('snippets/fluo.code-snippets');

/** A snippet body with every tab stop, placeholder and choice replaced by its default. */
export function expand(body: string): string {
  let text = body;
  let before: string;
  do {
    before = text;
    text = text
      .replace(/\$\{\d+\|([^,|]*)[^|]*\|\}/g, '$1') // ${1|a,b|} -> a
      .replace(/\$\{\d+:([^${}]*)\}/g, '$1') // ${1:x} -> x, innermost first
      .replace(/\$\{\d+\}|\$\d+/g, ''); // ${1}, $0
  } while (text !== before);
  return text;
}

/** VS Code turns each leading tab of a snippet line into the editor's indentation. */
function indent(text: string, unit: string): string {
  return text.replace(/^\t+/gm, (tabs) => unit.repeat(tabs.length));
}

function fluo(...args: string[]): cp.SpawnSyncReturns<string> {
  return cp.spawnSync(PYTHON, ['-m', 'fluo_run.cli', ...args], { encoding: 'utf8' });
}

test('the language defaults to the indentation fluo fmt writes: two spaces', () => {
  const defaults = readJson<{ contributes: { configurationDefaults: Record<string, Record<string, unknown>> } }>('package.json')
    .contributes.configurationDefaults['[fluo]'];
  assert.deepEqual(defaults, { 'editor.tabSize': 2, 'editor.insertSpaces': true });
});

test('placeholders expand to their defaults', () => {
  assert.equal(expand('a ${1:x ${2:y}} ${3|p,q|} $0'), 'a x y p ');
});

test('every snippet, expanded, is in fluo fmt layout and passes fluo check', () => {
  const work = tempFolder('fluo-snippets-');
  try {
    const names = Object.keys(snippets);
    assert.ok(names.length >= 5);
    for (const [i, name] of names.entries()) {
      const body = snippets[name].body;
      const text = indent(expand(Array.isArray(body) ? body.join('\n') : body), '  ');
      const file = path.join(work.dir, `snippet_${i}.fluo`);
      fs.writeFileSync(file, text.endsWith('\n') ? text : `${text}\n`);
      const fmt = fluo('fmt', '--check', file);
      assert.equal(fmt.status, 0, `${name} is not in fluo fmt layout:\n${text}\n${fmt.stdout}${fmt.stderr}`);
      const check = fluo('check', file);
      assert.equal(check.status, 0, `${name} does not check:\n${text}\n${check.stdout}${check.stderr}`);
    }
  } finally {
    work.remove();
  }
});

test('snippet prefixes do not shadow keywords or methods: whole rules are rule-*', () => {
  const grammar = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'syntaxes', 'fluo.tmLanguage.json'), 'utf8');
  const words = new Set(grammar.match(/[a-z_]+/g));
  for (const [name, snippet] of Object.entries(snippets)) {
    const prefixes = Array.isArray(snippet.prefix) ? snippet.prefix : [snippet.prefix];
    for (const prefix of prefixes) {
      // `rule` starts a rule whichever way it is typed; it stays the way into the first snippet.
      if (prefix !== 'rule') {
        assert.ok(!words.has(prefix), `${name}: prefix ${prefix} is a word of the language`);
      }
    }
    if (name.startsWith('Rule (')) {
      assert.ok(prefixes.some((p) => /^rule-[a-z]+$/.test(p)), `${name}: ${prefixes.join(', ')}`);
    }
  }
});
