/**
 * The static half of the extension: what package.json contributes points at
 * files that exist and mean what VS Code expects.
 */

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { DOCUMENT_SELECTOR } from '../../src/server';
import { EXTENSION, REPO, readJson } from '../support/paths';

interface Manifest {
  engines: { vscode: string };
  activationEvents: string[];
  devDependencies: Record<string, string>;
  capabilities: { virtualWorkspaces?: boolean | { supported: boolean | string } };
  contributes: {
    languages: { id: string; extensions: string[]; configuration: string }[];
    grammars: { language: string; scopeName: string; path: string }[];
    snippets: { language: string; path: string }[];
  };
}

interface LanguageConfiguration {
  comments: { lineComment: string };
  brackets: [string, string][];
  autoClosingPairs: { open: string; close: string }[];
  indentationRules: { increaseIndentPattern: string; decreaseIndentPattern: string };
  onEnterRules: { beforeText: string; afterText?: string }[];
  wordPattern: string;
}

const manifest = readJson<Manifest>('package.json');

test('the fluo language is .fluo files with a grammar, a configuration and snippets that exist', () => {
  const [language] = manifest.contributes.languages;
  assert.equal(language.id, 'fluo');
  assert.deepEqual(language.extensions, ['.fluo']);
  const [grammar] = manifest.contributes.grammars;
  assert.equal(grammar.language, 'fluo');
  assert.equal(readJson<{ scopeName: string }>(grammar.path).scopeName, grammar.scopeName);
  const [snippets] = manifest.contributes.snippets;
  assert.equal(snippets.language, 'fluo');
  assert.ok(Object.keys(readJson(snippets.path)).length >= 4);
  assert.ok(fs.existsSync(path.join(EXTENSION, language.configuration)));
  assert.ok(DOCUMENT_SELECTOR.some((s) => s.language === language.id));
});

test('@types/vscode is the API version the engine declares', () => {
  const engine = manifest.engines.vscode.replace(/^\^/, '');
  assert.equal(manifest.devDependencies['@types/vscode'], engine);
});

test('the language configuration comments with // and pairs every bracket', () => {
  const config = readJson<LanguageConfiguration>('language-configuration.json');
  assert.equal(config.comments.lineComment, '//');
  for (const [open, close] of config.brackets) {
    assert.ok(config.autoClosingPairs.some((p) => p.open === open && p.close === close), open);
  }
  assert.ok(config.autoClosingPairs.some((p) => p.open === "'"));
  assert.ok(config.autoClosingPairs.some((p) => p.open === '"'));
});

test('indentation grows after an open brace or bracket and shrinks on a closing one', () => {
  const rules = readJson<LanguageConfiguration>('language-configuration.json').indentationRules;
  const increase = new RegExp(rules.increaseIndentPattern);
  const decrease = new RegExp(rules.decreaseIndentPattern);
  for (const line of ['rule auth_retry_storm {', '  when   {', '  tags: [', '  expect trace.spans.where(']) {
    assert.ok(increase.test(line), line);
  }
  for (const line of ['  when   { trace.has(name == "x") }', '  severity: error', '// rule x {', '  description: "a { b"']) {
    assert.ok(!increase.test(line), line);
  }
  for (const line of ['}', '  ]', ')']) {
    assert.ok(decrease.test(line), line);
  }
  assert.ok(!decrease.test('  expect x > 1'));
});

test('the word pattern keeps durations and names whole', () => {
  const word = new RegExp(readJson<LanguageConfiguration>('language-configuration.json').wordPattern, 'g');
  assert.deepEqual('window 1.5m'.match(word), ['window', '1.5m']);
  assert.deepEqual('status_code >= 500'.match(word), ['status_code', '500']);
  // A number with an exponent is one word, as the language reads it; so is a duration in any unit, even a wrong one.
  assert.deepEqual('x < 1e3 and y < 1.5e-3 or z > 2E+10'.match(word), ['x', '1e3', 'and', 'y', '1.5e-3', 'or', 'z', '2E+10']);
  assert.deepEqual('window 1e3ms, 500μs'.match(word), ['window', '1e3ms', '500μs']);
  // A dotted attribute name is one word (double-click, Ctrl+D select all of it); a member chain from a root is
  // not (trace.spans.where: each part is what one edits), nor a method called on an attribute.
  assert.deepEqual('where(http.response.status_code >= 500)'.match(word), ['where', 'http.response.status_code', '500']);
  assert.deepEqual('trace.spans.where(db.name == "x")'.match(word), ['trace', 'spans', 'where', 'db.name', 'x']);
  assert.deepEqual('window.spans.count()'.match(word), ['window', 'spans', 'count']);
  assert.deepEqual('user.id.starts_with("u")'.match(word), ['user.id', 'starts_with', 'u']);
});

test('every example rule file has a grammar test that holds exactly its text', () => {
  const examples = fs.readdirSync(path.join(REPO, 'examples', 'rules')).filter((f) => f.endsWith('.fluo'));
  assert.ok(examples.length > 0);
  for (const name of examples) {
    const annotated = path.join(EXTENSION, 'test', 'grammar', 'examples', name);
    assert.ok(fs.existsSync(annotated), `add test/grammar/examples/${name}: a copy of examples/rules/${name} with scope assertions`);
    const lines = fs.readFileSync(annotated, 'utf8').split('\n');
    assert.match(lines[0], /^\/\/ SYNTAX TEST "source\.fluo"/);
    const source = lines.slice(1).filter((l) => !/^\/\/\s*(\^|<-)/.test(l));
    assert.equal(source.join('\n'), fs.readFileSync(path.join(REPO, 'examples', 'rules', name), 'utf8'), name);
    assert.ok(lines.length > source.length + 2, `${name} has no scope assertions`);
  }
});

test('another tool\'s *_test.yaml neither activates the extension nor shows its menus', () => {
  const full = readJson<{
    activationEvents: string[];
    contributes: { menus: Record<string, { command: string; when: string }[]> };
  }>('package.json');
  assert.deepEqual(full.activationEvents, ['workspaceContains:**/*.fluo', 'workspaceContains:**/*.fluotest.yaml']);
  const whens = Object.values(full.contributes.menus).flat().map((m) => m.when);
  assert.equal(whens.length, 3);
  for (const when of whens) {
    assert.doesNotMatch(when, /_test/, when);
  }
  // A rule test is known by its content: from the active editor, or from the files the extension has read.
  assert.ok(whens.filter((w) => w.includes('fluo.activeEditorIsRuleTest')).length === 2);
  assert.ok(whens.some((w) => w.includes('resourcePath in fluo.ruleTestFiles')));
});

test('npm test builds first (the tests run from out/), then runs every test script', () => {
  const { scripts } = readJson<{ scripts: Record<string, string> }>('package.json');
  assert.match(scripts.test, /^node scripts\/build\.mjs && /);
  for (const name of Object.keys(scripts).filter((n) => n.startsWith('test:'))) {
    assert.ok(scripts.test.includes(`npm run --silent ${name}`), name);
  }
});

test('the manifest names no project address it cannot vouch for, and has a 128x128 PNG icon', () => {
  // FLUO has no public home yet: a made-up repository URL would send users to someone else's project.
  // `npm run package` passes --allow-missing-repository instead; add the fields once the address is real.
  const full = readJson<{ icon: string; repository?: unknown; bugs?: unknown; homepage?: unknown; scripts: Record<string, string> }>(
    'package.json',
  );
  assert.equal(full.repository, undefined);
  assert.equal(full.bugs, undefined);
  assert.equal(full.homepage, undefined);
  assert.match(full.scripts.package, /--allow-missing-repository/);
  const png = fs.readFileSync(path.join(EXTENSION, full.icon));
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [128, 128]);
  assert.ok(fs.readFileSync(path.join(EXTENSION, '.vscodeignore'), 'utf8').includes(`!${full.icon}`));
});

test('a virtual workspace is not supported: the server and the tests are local programs reading files on disk', () => {
  const virtual = manifest.capabilities.virtualWorkspaces;
  assert.equal(typeof virtual === 'object' ? virtual.supported : virtual, false);
});
