/**
 * "FLUO: Run Rule Tests for Current File" and the Testing view, against the
 * real `fluo test` (run as `$FLUO_PYTHON -m fluo_run.cli test`).
 */

import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, beforeEach, describe as group, test } from 'node:test';

import { COMMANDS, activate, deactivate } from '../../src/extension';
import { DEFAULTS, type Settings } from '../../src/settings';
import {
  ACTIVE_RULE_TEST_KEY,
  EXCLUDE_GLOB,
  RULE_TEST_FILES_KEY,
  RuleTests,
  SKIPPED_DIRS,
  VIRTUALENV_MARK,
  caseId,
  caseSelector,
  casesInText,
  findTestFiles,
  isRuleTest,
  rulesOfTest,
  testFilesFor,
  testStem,
} from '../../src/testing';
import type { ProcessRunner } from '../../src/process';
import { ReportError, parseReport } from '../../src/testReport';
import { UNTRUSTED_CWD } from '../../src/trust';
import { LanguageClient } from '../fakes/languageclient';
import {
  CancellationTokenSource,
  type FakeTestController,
  FakeTextDocument,
  type FakeTestItem,
  TestRunRequest,
  Uri,
  editor,
  extensionContext,
  globRegExp,
  window,
} from '../fakes/vscode';
import { PYTHON, REPO, tempFolder } from '../support/paths';

const AUTH_TESTS = `rules: [auth.fluo]
cases:
  - name: a quiet login
    spans:
      - {name: login, service: auth, duration: 20ms}
    expect: []

  - name: "storm: expected but quiet"
    spans:
      - {name: login, service: auth, duration: 20ms}
    expect:
      - {rule: auth_retry_storm, observed: {count: 60}}

  - name: a missing fixture
    traces: fixtures/missing.json
    expect: []
`;

const SUITE_TESTS = `# names auth.fluo in its rules list, so it tests it too
rules: [auth.fluo, other.fluo]
cases:
  - name: nothing fires on an empty login
    spans:
      - {name: login, service: auth}
    expect: []
`;

const OTHER_TESTS = `rules: [other.fluo]
cases:
  - name: other is quiet
    spans:
      - {name: x, service: y}
    expect: []
`;

/** helm-unittest's test files are named `tests/<name>_test.yaml` too. */
const HELM_TESTS = `suite: deployment
templates:
  - deployment.yaml
tests:
  - it: sets the image
    asserts:
      - equal: {path: spec.template.spec.containers[0].image, value: nginx}
`;

let work: ReturnType<typeof tempFolder>;
let rules: string;

/** The folders `fluo test` passes over, and a tree with what it finds there: fluo_lang/folders.py is tested on it too. */
const SKIPPED_FOLDERS = JSON.parse(fs.readFileSync(path.join(REPO, 'tests', 'testing_fixtures', 'skipped_folders.json'), 'utf8')) as {
  skipped_dirs: string[];
  virtualenv_mark: string;
  tree: string[];
  found: string[];
};

/** `SKIPPED_FOLDERS.tree` in a fresh folder: every test file a rule test. */
function skippedFoldersTree(): ReturnType<typeof tempFolder> {
  const tree = tempFolder('fluo-skipped-');
  for (const name of SKIPPED_FOLDERS.tree) {
    const full = path.join(tree.dir, ...name.split('/'));
    fs.mkdirSync(path.dirname(full), { recursive: true });
    fs.writeFileSync(full, name.endsWith(VIRTUALENV_MARK) ? '' : 'cases: []\n');
  }
  return tree;
}

function file(name: string): string {
  return path.join(rules, name);
}

before(() => {
  work = tempFolder('fluo-tests-');
  rules = path.join(work.dir, 'rules');
  fs.mkdirSync(path.join(rules, 'nested'), { recursive: true });
  fs.copyFileSync(path.join(REPO, 'examples', 'rules', 'auth.fluo'), file('auth.fluo'));
  fs.writeFileSync(file('other.fluo'), 'rule other_rule { detect trace.spans.count() > 100 }\n');
  fs.writeFileSync(file('lonely.fluo'), 'rule lonely { detect trace.spans.count() > 100 }\n');
  fs.writeFileSync(file('auth_test.yaml'), AUTH_TESTS);
  fs.writeFileSync(path.join(rules, 'nested', 'suite.fluotest.yaml'), SUITE_TESTS.replace(/\[auth\.fluo, other\.fluo\]/, '[../auth.fluo, ../other.fluo]'));
  fs.writeFileSync(file('other_test.yaml'), OTHER_TESTS);
  fs.writeFileSync(file('broken_test.yaml'), 'rules: [broken.fluo\ncases: []\n');
  fs.mkdirSync(path.join(work.dir, 'tests'));
  fs.writeFileSync(path.join(work.dir, 'tests', 'deployment_test.yaml'), HELM_TESTS);
});

after(() => work.remove());

beforeEach(() => {
  editor.reset();
  LanguageClient.reset();
  editor.workspaceFolders.push({ uri: Uri.file(work.dir), name: 'work', index: 0 });
});

function settings(overrides: Partial<Settings> = {}): () => Settings {
  return () => ({ ...DEFAULTS, pythonPath: PYTHON, ...overrides });
}

function ruleTests(overrides: Partial<Settings> = {}): { tests: RuleTests; controller: FakeTestController } {
  const tests = new RuleTests(settings(overrides), window.createOutputChannel('FLUO Tests') as never);
  return { tests, controller: editor.controllers[0] };
}

/** A fake Uri where the extension's code expects the editor's own. */
function vscodeUri(p: string): never {
  return Uri.file(p) as never;
}

function item(controller: FakeTestController, testFile: string): FakeTestItem {
  const found = controller.items.get(testFile);
  assert.ok(found, `no test item for ${testFile}; have ${controller.items.all().map((i) => i.id).join(', ')}`);
  return found;
}

group('which tests belong to a file', () => {
  test('a rule file has the tests named after it and those that name it, below its folder', async () => {
    assert.deepEqual(await testFilesFor(file('auth.fluo')), [file('auth_test.yaml'), path.join(rules, 'nested', 'suite.fluotest.yaml')]);
    assert.deepEqual(await testFilesFor(file('other.fluo')), [path.join(rules, 'nested', 'suite.fluotest.yaml'), file('other_test.yaml')]);
    assert.deepEqual(await testFilesFor(file('lonely.fluo')), []);
  });

  test('a test file is its own test; other files have none, nor has another tool\'s *_test.yaml', async () => {
    assert.deepEqual(await testFilesFor(file('other_test.yaml')), [file('other_test.yaml')]);
    assert.deepEqual(await testFilesFor(path.join(work.dir, 'tests', 'deployment_test.yaml')), []);
    assert.deepEqual(await testFilesFor(path.join(work.dir, 'README.md')), []);
    assert.equal(testStem('a/auth_test.yaml'), 'auth');
    assert.equal(testStem('a/auth.fluotest.yaml'), 'auth');
  });

  test('a *_test.yaml file is a rule test only with a top-level cases: or rules: key; a *.fluotest.yaml always', () => {
    assert.equal(isRuleTest('a/auth_test.yaml', AUTH_TESTS), true);
    assert.equal(isRuleTest('a/auth_test.yaml', 'cases:\n  - name: x\n'), true);
    assert.equal(isRuleTest('a/auth_test.yaml', '"cases": []\n'), true);
    assert.equal(isRuleTest('tests/deployment_test.yaml', HELM_TESTS), false);
    assert.equal(isRuleTest('tests/deployment_test.yaml', 'suite: x\n  cases:\n    - a\n'), false, 'not at column 0');
    assert.equal(isRuleTest('a/x.fluotest.yaml', ''), true);
    assert.equal(isRuleTest('a/x.yaml', 'cases: []\n'), false);
  });

  test('isRuleTest agrees with fluo_run.testing.spec.is_rule_test on the samples both are tested on', () => {
    const file = path.join(REPO, 'tests', 'testing_fixtures', 'is_rule_test.json');
    const samples = JSON.parse(fs.readFileSync(file, 'utf8')) as { file: string; text: string; rule_test: boolean; why: string }[];
    assert.ok(samples.length > 10);
    for (const s of samples) {
      assert.equal(isRuleTest(s.file, s.text), s.rule_test, `${s.why}: ${JSON.stringify(s.text)}`);
    }
  });

  test('test files are searched for as fluo test searches: not in virtualenvs, site-packages or the other skipped folders', async () => {
    assert.deepEqual([...SKIPPED_DIRS].sort(), [...SKIPPED_FOLDERS.skipped_dirs].sort());
    assert.equal(VIRTUALENV_MARK, SKIPPED_FOLDERS.virtualenv_mark);
    const tree = skippedFoldersTree();
    try {
      const found = (await findTestFiles(tree.dir)).map((f) => path.relative(tree.dir, f).split(path.sep).join('/'));
      assert.deepEqual(found.sort(), SKIPPED_FOLDERS.found);
    } finally {
      tree.remove();
    }
  });

  test('the Testing view\'s findFiles exclude leaves out site-packages, the skipped folders and hidden names', () => {
    const excluded = globRegExp(EXCLUDE_GLOB);
    for (const rel of [
      'venv/lib/python3.11/site-packages/fluo_run/examples/rules/payments_test.yaml',
      'site-packages/a_test.yaml',
      'web/node_modules/pkg/a_test.yaml',
      '__pycache__/a_test.yaml',
      '.venv/lib/a_test.yaml',
      'rules/.#a_test.yaml',
    ]) {
      assert.equal(excluded.test(rel), true, rel);
    }
    for (const rel of ['auth_test.yaml', 'rules/auth_test.yaml', 'envs/b_test.yaml', 'my-site-packages/a_test.yaml', 'a.b/c_test.yaml']) {
      assert.equal(excluded.test(rel), false, rel);
    }
  });

  test('a rule file is matched against the rules: a test names, resolved from the test file, not by its text', async () => {
    const tree = tempFolder('fluo-match-');
    try {
      const at = (...p: string[]) => path.join(tree.dir, ...p);
      fs.mkdirSync(at('rules', 'deep'), { recursive: true });
      fs.mkdirSync(at('tests'));
      for (const f of ['rules/auth.fluo', 'rules/oauth.fluo', 'rules/deep/inner.fluo']) {
        fs.writeFileSync(at(f), 'rule x { detect trace.spans.count() > 1 }\n');
      }
      // Names oauth.fluo, whose name ends with auth.fluo: not a test of auth.fluo.
      fs.writeFileSync(at('rules', 'oauth_test.yaml'), 'rules: [oauth.fluo]\ncases: [{name: a, spans: [{name: x}]}]\n');
      // Without rules:, the rule file it is named after.
      fs.writeFileSync(at('rules', 'auth_test.yaml'), 'cases: [{name: a, spans: [{name: x}]}]\n');
      // Named after auth, but tests another rule file.
      fs.writeFileSync(at('tests', 'auth_test.yaml'), 'rules: ../rules/oauth.fluo\ncases: [{name: a, spans: [{name: x}]}]\n');
      // A folder holds every rule file below it.
      fs.writeFileSync(at('tests', 'all.fluotest.yaml'), 'rules: [../rules]\ncases: [{name: a, spans: [{name: x}]}]\n');
      fs.writeFileSync(at('tests', 'deep.fluotest.yaml'), 'rules: [../rules/deep/]\ncases: [{name: a, spans: [{name: x}]}]\n');
      // Mentions auth.fluo only in a comment and a description.
      fs.writeFileSync(at('tests', 'mention.fluotest.yaml'), '# auth.fluo\nrules: [../rules/deep/inner.fluo]\ndescription: auth.fluo\ncases: []\n');

      assert.deepEqual(await testFilesFor(at('rules', 'auth.fluo'), tree.dir), [at('rules', 'auth_test.yaml'), at('tests', 'all.fluotest.yaml')]);
      assert.deepEqual(await testFilesFor(at('rules', 'oauth.fluo'), tree.dir), [
        at('rules', 'oauth_test.yaml'),
        at('tests', 'all.fluotest.yaml'),
        at('tests', 'auth_test.yaml'),
      ]);
      assert.deepEqual(await testFilesFor(at('rules', 'deep', 'inner.fluo'), tree.dir), [
        at('tests', 'all.fluotest.yaml'),
        at('tests', 'deep.fluotest.yaml'),
        at('tests', 'mention.fluotest.yaml'),
      ]);
      assert.deepEqual(rulesOfTest(at('tests', 'x_test.yaml'), 'rules: [a.fluo, ../b]\n'), [at('tests', 'a.fluo'), at('b')]);
      assert.deepEqual(rulesOfTest(at('tests', 'x_test.yaml'), 'cases: []\n'), [at('tests', 'x.fluo')]);
    } finally {
      tree.remove();
    }
  });

  test('case names and lines are read from a test file before it runs', () => {
    assert.deepEqual(casesInText(AUTH_TESTS), [
      { name: 'a quiet login', line: 3 },
      { name: 'storm: expected but quiet', line: 8 },
      { name: 'a missing fixture', line: 14 },
    ]);
  });

  test('only the items of the top-level cases: list are cases, in block or flow style', () => {
    const text = [
      'rules: [auth.fluo]',
      'description: "- name: not a case"',
      'cases:',
      '  - name: >-',
      '      a folded',
      '      name',
      '    spans:',
      '      - name: login        # a span, not a case',
      '        service: auth',
      '      - {name: logout, service: auth}',
      '    expect: []',
      '  - {name: flow case, spans: [{name: x}], expect: []}',
      '  -',
      '    name: "quoted # not a comment"',
      '    spans: [{name: y}]',
      '  - spans: [{name: nameless}]',
      '  - name: 42',
      '  - name: flow case',
      'other:',
      '  - name: not a case either',
      '',
    ].join('\n');
    assert.deepEqual(casesInText(text), [
      { name: 'a folded name', line: 4 },
      { name: 'flow case', line: 12 },
      { name: 'quoted # not a comment', line: 14 },
      { name: 'case 4', line: 16 },
      { name: 'case 5', line: 17 },
    ]);
    assert.deepEqual(casesInText('cases: [{name: a}, {name: b}]\n'), [
      { name: 'a', line: 1 },
      { name: 'b', line: 1 },
    ]);
    assert.deepEqual(casesInText('cases:\n  - name: a\n  bad: [\n'), [], 'not YAML: the run says why');
    assert.deepEqual(casesInText('- name: a list, not a test file\n'), []);
  });

  test('a case selector escapes the regex characters of names', () => {
    assert.equal(caseSelector(['a (b)', 'x.y']), '^(?:a \\(b\\)|x\\.y)\\Z');
  });

  test('a case selector matches, in Python as fluo test --run reads it, its names and nothing else', () => {
    const selector = caseSelector(['a', 'a (b)', 'x.y']);
    const names = ['a', 'a (b)', 'x.y', 'a\n', 'x.y\n', 'ab', 'xa', 'xzy', 'a (b)\n'];
    const script = 'import re, sys, json; r = re.compile(sys.argv[1]); print(json.dumps([n for n in json.loads(sys.argv[2]) if r.search(n)]))';
    const run = spawnSync(PYTHON, ['-c', script, selector, JSON.stringify(names)], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), ['a', 'a (b)', 'x.y']);
  });
});

group('running the tests of the current file', () => {
  test('results land in the Testing view: passed, failed with a diff, errored at the line', async () => {
    const { tests, controller } = ruleTests();
    // Every rule file and rule test being edited is saved first, not only the active one; nothing else is.
    const dirty = (name: string, language: string, text: string) => {
      const doc = new FakeTextDocument(Uri.file(name), language, text);
      doc.isDirty = true;
      editor.documents.push(doc);
      return doc;
    };
    const active = dirty(file('auth.fluo'), 'fluo', fs.readFileSync(file('auth.fluo'), 'utf8'));
    const otherRules = dirty(file('other.fluo'), 'fluo', 'rule other_rule { detect trace.spans.count() > 100 }\n');
    const otherTests = dirty(file('other_test.yaml'), 'yaml', OTHER_TESTS);
    const helm = dirty(path.join(work.dir, 'tests', 'deployment_test.yaml'), 'yaml', HELM_TESTS);
    const notes = dirty(path.join(work.dir, 'notes.md'), 'markdown', '# notes');
    editor.activeDocument = active;
    const outcome = await tests.runForFile();
    assert.ok(outcome?.report, outcome?.failure);
    assert.deepEqual([active, otherRules, otherTests, helm, notes].map((d) => d.saved), [1, 1, 1, 0, 0]);

    const authFile = file('auth_test.yaml');
    const authItem = item(controller, authFile);
    assert.deepEqual(
      authItem.children.all().map((c) => [c.label, c.range?.start.line]),
      [
        ['a quiet login', 2],
        ['storm: expected but quiet', 7],
        ['a missing fixture', 13],
      ],
    );
    const [run] = controller.runs;
    assert.equal(run.ended, true);
    const results = run.results();
    assert.equal(results.get(caseId(authFile, 'a quiet login'))?.outcome, 'passed');

    const failed = results.get(caseId(authFile, 'storm: expected but quiet'));
    assert.equal(failed?.outcome, 'failed');
    const [diff] = failed.messages;
    assert.match(diff.message, /expected a signal of auth_retry_storm with count = 60 \(line 12\), but it did not fire/);
    assert.deepEqual(JSON.parse(diff.expectedOutput ?? ''), [{ rule: 'auth_retry_storm', observed: { count: 60 } }]);
    assert.deepEqual(JSON.parse(diff.actualOutput ?? ''), []);
    assert.equal((diff.location?.range as { line: number }).line, 7);

    const errored = results.get(caseId(authFile, 'a missing fixture'));
    assert.equal(errored?.outcome, 'errored');
    assert.match(errored.messages[0].message, /trace file .*missing\.json does not exist/);
    assert.equal((errored.messages[0].location?.range as { line: number }).line, 14);
    assert.equal(errored.messages[0].location?.uri.fsPath, authFile);

    const suite = item(controller, path.join(rules, 'nested', 'suite.fluotest.yaml'));
    assert.equal(results.get(caseId(suite.id, 'nothing fires on an empty login'))?.outcome, 'passed');

    assert.match(run.output.join(''), /FAIL  storm: expected but quiet \(line 8\)\r\n/);
    const [message] = editor.messages;
    assert.equal(message.level, 'warning');
    assert.equal(message.text, 'FLUO: rule tests in auth_test.yaml, suite.fluotest.yaml: 2 passed, 1 failed, 1 could not run.');
    assert.deepEqual(message.actions, ['Show Test Results', 'Show Output']);
    assert.match(editor.channel('FLUO Tests').text, /^\$ cd .* && .* -m fluo_run\.cli test rules\/auth_test\.yaml rules\/nested\/suite\.fluotest\.yaml --format json$/m);
  });

  test('in an untrusted workspace the tests run from outside it, so a planted fluo_run package is not imported', async () => {
    const untrusted = tempFolder('fluo-untrusted-tests-');
    try {
      // A workspace that ships its own fluo_run: `python -m fluo_run.cli` from the workspace would import it.
      const marker = path.join(untrusted.dir, 'planted-ran');
      fs.mkdirSync(path.join(untrusted.dir, 'fluo_run'));
      fs.writeFileSync(path.join(untrusted.dir, 'fluo_run', '__init__.py'), '');
      fs.writeFileSync(path.join(untrusted.dir, 'fluo_run', 'cli.py'), `open(${JSON.stringify(marker)}, "w").close()\n`);
      fs.writeFileSync(path.join(untrusted.dir, 'other.fluo'), 'rule other_rule { detect trace.spans.count() > 100 }\n');
      fs.writeFileSync(path.join(untrusted.dir, 'other_test.yaml'), OTHER_TESTS);
      editor.workspaceFolders.length = 0;
      editor.workspaceFolders.push({ uri: Uri.file(untrusted.dir), name: 'untrusted', index: 0 });
      editor.trusted = false;
      const { tests } = ruleTests();
      const outcome = await tests.runForFile(vscodeUri(path.join(untrusted.dir, 'other_test.yaml')));
      assert.equal(outcome?.failure, undefined);
      assert.equal(outcome?.report?.summary.passed, 1);
      assert.equal(fs.existsSync(marker), false, 'the planted fluo_run was imported');
      assert.match(
        editor.channel('FLUO Tests').text,
        new RegExp(`^\\$ cd ${UNTRUSTED_CWD.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')} && .* -m fluo_run\\.cli test .*other_test\\.yaml --format json$`, 'm'),
      );
    } finally {
      untrusted.remove();
    }
  });

  test('a test file that cannot be loaded is an error on the file, at its line', async () => {
    const { tests, controller } = ruleTests();
    const outcome = await tests.runForFile(vscodeUri(file('broken_test.yaml')));
    assert.ok(outcome?.report);
    const broken = item(controller, file('broken_test.yaml'));
    const result = controller.runs[0].results().get(broken.id);
    assert.equal(result?.outcome, 'errored');
    assert.match(result.messages[0].message, /invalid YAML/);
    assert.equal((result.messages[0].location?.range as { line: number }).line, 1);
  });

  test('all passing is a status bar note, not a notification', async () => {
    const { tests } = ruleTests();
    await tests.runForFile(vscodeUri(file('other_test.yaml')));
    assert.deepEqual(editor.messages, []);
    assert.deepEqual(editor.statusMessages, ['$(pass) FLUO: 1 rule test passed in other_test.yaml']);
  });

  test('without a Testing API the results go to the output panel, which is shown', async () => {
    editor.testsAvailable = false;
    const { tests } = ruleTests();
    assert.equal(tests.controller, undefined);
    const outcome = await tests.runForFile(vscodeUri(file('auth_test.yaml')));
    assert.ok(outcome?.report);
    const output = editor.channel('FLUO Tests');
    assert.ok(output.shown >= 1);
    assert.match(output.text, /PASS  a quiet login \(line 3\)/);
    assert.match(output.text, /FAIL  storm: expected but quiet \(line 8\)\n {6}expected a signal of auth_retry_storm/);
    assert.match(output.text, /ERROR a missing fixture \(line 14\)\n {6}.*auth_test\.yaml:15: case 'a missing fixture': trace file/);
    assert.match(output.text, /^1 passed, 1 failed, 1 errors$/m);
    assert.deepEqual(editor.messages[0].actions, ['Show Output']);
  });

  test('a rule file without tests says how to add them', async () => {
    const { tests } = ruleTests();
    assert.equal(await tests.runForFile(vscodeUri(file('lonely.fluo'))), undefined);
    assert.match(editor.messages[0].text, /no rule tests for lonely\.fluo: add lonely_test\.yaml next to it/);
  });

  test('with no rule file open, the command says what to open', async () => {
    const { tests } = ruleTests();
    assert.equal(await tests.runForFile(), undefined);
    assert.match(editor.messages[0].text, /open a \.fluo rule file or a rule test file \(\*\.fluotest\.yaml, or \*_test\.yaml with a top-level cases:\)/);
  });

  test('another tool\'s *_test.yaml is not run, and the command says why', async () => {
    const { tests, controller } = ruleTests();
    assert.equal(await tests.runForFile(vscodeUri(path.join(work.dir, 'tests', 'deployment_test.yaml'))), undefined);
    assert.equal(controller.runs.length, 0);
    assert.match(editor.messages[0].text, /^FLUO: deployment_test\.yaml is not a FLUO rule test: a \*_test\.yaml file is one when it has a top-level cases:/);
  });

  test('a pythonPath without FLUO installed: the message says to install it there', async () => {
    const venv = tempFolder('fluo-nofluo-');
    try {
      const made = spawnSync(PYTHON, ['-m', 'venv', '--without-pip', venv.dir], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(made.status, 0, made.stderr);
      const python = path.join(venv.dir, 'bin', 'python');
      const { tests } = ruleTests({ pythonPath: python });
      const outcome = await tests.runForFile(vscodeUri(file('other_test.yaml')));
      assert.equal(outcome?.report, undefined);
      assert.match(outcome?.failure ?? '', /No module named 'fluo_run'\)\. FLUO is not installed in .* \(fluo\.server\.pythonPath\): install it there \(from a checkout/);
    } finally {
      venv.remove();
    }
  });

  test('the output shows the folder it ran in as a shell would read it', async () => {
    const odd = tempFolder("fluo cd it's-");
    try {
      fs.writeFileSync(path.join(odd.dir, 'other.fluo'), 'rule other_rule { detect trace.spans.count() > 100 }\n');
      fs.writeFileSync(path.join(odd.dir, 'other_test.yaml'), OTHER_TESTS);
      editor.workspaceFolders.length = 0;
      editor.workspaceFolders.push({ uri: Uri.file(odd.dir), name: 'odd', index: 0 });
      const { tests } = ruleTests();
      const outcome = await tests.runForFile(vscodeUri(path.join(odd.dir, 'other_test.yaml')));
      assert.equal(outcome?.report?.summary.passed, 1);
      const quoted = `'${odd.dir.replace(/'/g, `'\\''`)}'`;
      assert.ok(editor.channel('FLUO Tests').text.includes(`$ cd ${quoted} && `), editor.channel('FLUO Tests').text);
    } finally {
      odd.remove();
    }
  });

  test('a missing fluo program is reported in one line with the command', async () => {
    const { tests, controller } = ruleTests({ pythonPath: '', serverCommand: ['fluo-not-installed-here', 'lsp'] });
    const outcome = await tests.runForFile(vscodeUri(file('other_test.yaml')));
    assert.equal(outcome?.report, undefined);
    assert.equal(editor.messages[0].level, 'error');
    assert.equal(
      editor.messages[0].text,
      'FLUO: rule tests did not run: fluo-not-installed-here test rules/other_test.yaml --format json: fluo-not-installed-here was not found',
    );
    const result = controller.runs[0].results().get(file('other_test.yaml'));
    assert.equal(result?.outcome, 'errored');
  });

  test('a server command without lsp is reported, not replaced by whatever fluo is on PATH', async () => {
    const { tests, controller } = ruleTests({ pythonPath: '', serverCommand: ['/opt/x/bin/fluo-wrapper'] });
    const outcome = await tests.runForFile(vscodeUri(file('other_test.yaml')));
    assert.equal(outcome?.report, undefined);
    assert.match(editor.messages[0].text, /^FLUO: rule tests did not run: cannot tell how to run fluo test from fluo\.server\.command/);
    assert.equal(controller.runs[0].results().get(file('other_test.yaml'))?.outcome, 'errored');
    assert.doesNotMatch(editor.channel('FLUO Tests').text, /^\$ /m, 'nothing was run');
  });

  test('the command registered on activation runs the tests of the file it is given', async () => {
    editor.settings.set('fluo.server.pythonPath', PYTHON);
    const context = extensionContext();
    const ext = activate(context as never);
    try {
      await ext.started;
      const outcome = (await editor.commands.get(COMMANDS.runTestsForFile)?.(Uri.file(file('other.fluo')))) as { report?: unknown };
      assert.ok(outcome.report);
      assert.ok(editor.controllers[0].items.get(file('other_test.yaml')));
    } finally {
      await deactivate();
      context.dispose();
    }
  });
});

group('the Testing view', () => {
  test('discovers test files and their cases in the workspace', async () => {
    const { controller } = ruleTests();
    await controller.resolveHandler?.(undefined);
    const ids = controller.items.all().map((i) => path.relative(work.dir, i.id)).sort();
    // Not tests/deployment_test.yaml: helm-unittest's.
    assert.deepEqual(ids, ['rules/auth_test.yaml', 'rules/broken_test.yaml', 'rules/nested/suite.fluotest.yaml', 'rules/other_test.yaml']);
    assert.deepEqual(item(controller, file('other_test.yaml')).children.all().map((c) => c.label), ['other is quiet']);
    assert.equal(item(controller, file('other_test.yaml')).label, path.join('rules', 'other_test.yaml'));
    // The Explorer's menu offers the command for exactly these files.
    const known = editor.contextKeys.get(RULE_TEST_FILES_KEY) as string[];
    assert.deepEqual([...known].sort(), controller.items.all().map((i) => i.id).sort());
  });

  test('lists no test file from a virtualenv, site-packages or another folder fluo test skips, found or created', async () => {
    const tree = skippedFoldersTree();
    try {
      editor.workspaceFolders.length = 0;
      editor.workspaceFolders.push({ uri: Uri.file(tree.dir), name: 'tree', index: 0 });
      const { tests, controller } = ruleTests();
      await controller.resolveHandler?.(undefined);
      const ids = controller.items.all().map((i) => path.relative(tree.dir, i.id).split(path.sep).join('/'));
      assert.deepEqual(ids.sort(), SKIPPED_FOLDERS.found);
      // `pip install` while the workspace is open: the watcher tells of the files it writes.
      const [watcher] = editor.watchers;
      const installed = path.join(tree.dir, 'env', 'lib', 'python3.11', 'site-packages', 'fluo_run', 'k_test.yaml');
      const inVenv = path.join(tree.dir, 'env', 'bin', 'l_test.yaml');
      const own = path.join(tree.dir, 'rules', 'm_test.yaml');
      for (const f of [installed, inVenv, own]) {
        fs.mkdirSync(path.dirname(f), { recursive: true });
        fs.writeFileSync(f, 'cases: []\n');
        await watcher.created.fire(Uri.file(f));
      }
      assert.equal(controller.items.get(installed), undefined);
      assert.equal(controller.items.get(inVenv), undefined);
      assert.ok(controller.items.get(own));
      tests.dispose();
    } finally {
      tree.remove();
    }
  });

  test('with several workspace folders, a test file\'s label starts with its folder\'s name', async () => {
    const elsewhere = tempFolder('fluo-elsewhere-');
    try {
      editor.workspaceFolders.push({ uri: Uri.file(elsewhere.dir), name: 'elsewhere', index: 1 });
      const { controller } = ruleTests();
      await controller.resolveHandler?.(undefined);
      assert.equal(item(controller, file('other_test.yaml')).label, 'work/rules/other_test.yaml');
    } finally {
      elsewhere.remove();
    }
  });

  test('the beaker and the menus follow the active editor: a rule file or rule test, not another *_test.yaml', async () => {
    const { tests } = ruleTests();
    tests.trackActiveEditor();
    assert.equal(editor.contextKeys.get(ACTIVE_RULE_TEST_KEY), false);
    const helm = new FakeTextDocument(Uri.file(path.join(work.dir, 'tests', 'deployment_test.yaml')), 'yaml', HELM_TESTS);
    await editor.activate(helm);
    assert.equal(editor.contextKeys.get(ACTIVE_RULE_TEST_KEY), false);
    await editor.edit(helm, HELM_TESTS + 'cases:\n  - name: now a rule test\n');
    assert.equal(editor.contextKeys.get(ACTIVE_RULE_TEST_KEY), true);
    await editor.activate(new FakeTextDocument(Uri.file(file('x.fluotest.yaml')), 'yaml', ''));
    assert.equal(editor.contextKeys.get(ACTIVE_RULE_TEST_KEY), true);
    await editor.activate(undefined);
    assert.equal(editor.contextKeys.get(ACTIVE_RULE_TEST_KEY), false);
    tests.dispose();
  });

  test('follows test files as they are created, edited and deleted', async () => {
    const { tests, controller } = ruleTests();
    await controller.resolveHandler?.(undefined);
    const [watcher] = editor.watchers;
    assert.equal(watcher.pattern, '**/{*_test.yaml,*.fluotest.yaml}');
    const added = file('added_test.yaml');
    try {
      fs.writeFileSync(added, OTHER_TESTS);
      await watcher.created.fire(Uri.file(added));
      assert.deepEqual(item(controller, added).children.all().map((c) => [c.label, c.range?.start.line]), [['other is quiet', 2]]);
      fs.writeFileSync(added, OTHER_TESTS.replace('other is quiet', 'renamed case'));
      await watcher.changed.fire(Uri.file(added));
      assert.deepEqual(item(controller, added).children.all().map((c) => c.label), ['renamed case']);
    } finally {
      fs.rmSync(added, { force: true });
    }
    await watcher.deleted.fire(Uri.file(added));
    assert.equal(controller.items.get(added), undefined);
    tests.dispose();
    assert.equal(watcher.disposed, true);
  });

  test('running one case runs only that case', async () => {
    const { controller } = ruleTests();
    await controller.resolveHandler?.(undefined);
    const target = item(controller, file('auth_test.yaml')).children.get(caseId(file('auth_test.yaml'), 'storm: expected but quiet'));
    assert.ok(target);
    const token = new CancellationTokenSource().token;
    await controller.profiles[0].handler(new TestRunRequest([target]), token);
    const [run] = controller.runs;
    assert.equal(run.ended, true);
    assert.deepEqual(
      [...run.results()].map(([id, r]) => [path.basename(id), r.outcome]),
      [['auth_test.yaml::storm: expected but quiet', 'failed']],
    );
  });

  test('a cancelled run ends quietly: no error, no result, nothing marked errored', async () => {
    // A fluo test that runs until it is cancelled, as runProcess reports it.
    const slow: ProcessRunner = (_command, _args, options) =>
      new Promise((resolve) => {
        options.signal?.addEventListener('abort', () => resolve({ code: undefined, stdout: '', stderr: '', failure: 'cancelled' }));
      });
    const tests = new RuleTests(settings(), window.createOutputChannel('FLUO Tests') as never, slow);
    const controller = editor.controllers[0];
    await controller.resolveHandler?.(undefined);
    const source = new CancellationTokenSource();
    const running = controller.profiles[0].handler(new TestRunRequest([item(controller, file('auth_test.yaml'))]), source.token);
    await new Promise((resolve) => setImmediate(resolve));
    source.cancel();
    await running;
    const [run] = controller.runs;
    assert.equal(run.ended, true);
    assert.deepEqual([...run.results()], [], 'no case passed, failed or errored');
    assert.deepEqual(editor.messages, []);
    assert.match(editor.channel('FLUO Tests').text, /^cancelled$/m);
    tests.dispose();
  });

  test('running everything runs every test file once', async () => {
    const { controller } = ruleTests();
    await controller.profiles[0].handler(new TestRunRequest(), new CancellationTokenSource().token);
    const outcomes = [...controller.runs[0].results().values()].map((r) => r.outcome).sort();
    assert.deepEqual(outcomes, ['errored', 'errored', 'failed', 'passed', 'passed', 'passed']);
  });
});

group('reading the report', () => {
  test('output that is not a report is refused with a reason', () => {
    assert.throws(() => parseReport('Traceback (most recent call last):'), ReportError);
    assert.throws(() => parseReport('{"files": 3}'), /not a test report/);
  });
});
