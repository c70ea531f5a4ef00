/**
 * The shipped bundle, `dist/extension.js`, activated in Node: its real
 * vscode-languageclient starts the real `fluo lsp`, our error handler decides
 * what happens when the server dies, and deactivation stops the process.
 * The editor is the fake `vscode` module, made permissive for the client.
 */

import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, beforeEach, test } from 'node:test';

import type * as Extension from '../../src/extension';
import { EXTENSION, PYTHON, REPO, tempFolder } from '../support/paths';
import { installLooseVscode } from '../support/looseVscode';

const fake = installLooseVscode();
const bundle = require(path.join(EXTENSION, 'dist', 'extension.js')) as typeof Extension;

const WAIT_MS = 30_000;

async function until(what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!done()) {
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within ${WAIT_MS} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

let context: ReturnType<typeof fake.extensionContext>;

function activate(settings: Record<string, unknown>): Extension.FluoExtension {
  for (const [k, v] of Object.entries(settings)) {
    fake.editor.settings.set(k, v);
  }
  fake.editor.workspaceFolders.push({ uri: fake.Uri.file(path.join(REPO, 'examples')), name: 'examples', index: 0 });
  context = fake.extensionContext();
  return bundle.activate(context as never);
}

beforeEach(() => fake.editor.reset());

afterEach(async () => {
  await bundle.deactivate();
  context?.dispose();
});

after(() => fake.editor.reset());

test('the bundle exports activate and deactivate', () => {
  assert.equal(typeof bundle.activate, 'function');
  assert.equal(typeof bundle.deactivate, 'function');
});

test('the real server: started on activation, restarted after a kill (with a message) and on command, stopped on deactivation', async () => {
  const ext = activate({ 'fluo.server.pythonPath': PYTHON });
  assert.equal(await ext.started, true, fake.editor.channels.map((c) => c.text).join('\n'));
  assert.equal(ext.server.status, 'running');
  assert.equal(fake.editor.messages.length, 0);

  const first = ext.server.languageClient?.serverProcess?.pid;
  assert.ok(first !== undefined && alive(first));
  process.kill(first, 'SIGKILL');
  await until('a new server process', () => {
    const pid = ext.server.languageClient?.serverProcess?.pid;
    return ext.server.status === 'running' && pid !== undefined && pid !== first;
  });
  assert.equal(fake.editor.messages.length, 1);
  assert.equal(fake.editor.messages[0].level, 'warning');
  assert.match(fake.editor.messages[0].text, /^FLUO: the language server stopped unexpectedly; restarting it \(restart 1 of 4 allowed in 3 minutes\)\./);

  const second = ext.server.languageClient?.serverProcess?.pid;
  assert.ok(second !== undefined);
  assert.equal(await fake.editor.commands.get('fluo.restartServer')?.(), true);
  const third = ext.server.languageClient?.serverProcess?.pid;
  assert.ok(third !== undefined && third !== second);
  await until('the restarted-away server process to exit', () => !alive(second));

  await bundle.deactivate();
  await until('the server process to exit', () => !alive(third));
  assert.equal(fake.editor.messages.length, 1, 'a restart asked for is not a crash');
});

const BROKEN = `rule storm {
  severity: critical
  detect trace.spans.whree(service == 'auth').count() > 50
}

rule budget {
  expect trace.spans.where(servce == 'auth').count() <= 5
}
`;

test('diagnostics reach the editor once, follow edits, and follow a strictness change', async () => {
  const work = tempFolder('fluo-bundle-');
  try {
    const file = path.join(work.dir, 'rules.fluo');
    const ext = activate({ 'fluo.server.pythonPath': PYTHON });
    assert.equal(await ext.started, true);
    const doc = await fake.editor.open(file, 'fluo', BROKEN);
    const shown = () => fake.editor.diagnosticsOf(file);
    await until('diagnostics for the open file', () => shown().length >= 2);
    const typo = shown().filter((d) => /whree/.test(d.message));
    assert.equal(typo.length, 1, `shown once: ${JSON.stringify(shown().map((d) => d.message))}`);
    assert.equal(typo[0].severity, fake.DiagnosticSeverity.Error);
    assert.deepEqual([typo[0].range.start.line, typo[0].range.start.character], [2, BROKEN.split('\n')[2].indexOf('whree')]);
    const near = () => shown().find((d) => /servce/.test(d.message));
    assert.equal(near()?.severity, fake.DiagnosticSeverity.Warning);

    await fake.editor.edit(doc, BROKEN.replace('whree', 'where'));
    await until('the fixed typo to disappear', () => !shown().some((d) => /whree/.test(d.message)));
    assert.equal(near()?.severity, fake.DiagnosticSeverity.Warning);

    await fake.editor.configure({ 'fluo.strictness': 'strict' });
    await until('the warning to become an error under fluo.strictness = strict', () => near()?.severity === fake.DiagnosticSeverity.Error);
    assert.equal(fake.editor.messages.length, 0);
  } finally {
    work.remove();
  }
});

test('fluo.trace.server logs the LSP traffic in the server output, at the channel\'s default level, and follows changes', async () => {
  const work = tempFolder('fluo-trace-');
  try {
    const file = path.join(work.dir, 'rules.fluo');
    const ext = activate({ 'fluo.server.pythonPath': PYTHON });
    assert.equal(await ext.started, true);
    const output = () => fake.editor.channel('FLUO Language Server').text;
    const doc = await fake.editor.open(file, 'fluo', BROKEN);
    await until('diagnostics for the open file', () => fake.editor.diagnosticsOf(file).length >= 2);
    assert.doesNotMatch(output(), /Sending notification 'textDocument\/didOpen'/, 'off by default');

    await fake.editor.configure({ 'fluo.trace.server': 'verbose' });
    await fake.editor.edit(doc, BROKEN.replace('whree', 'where'));
    await until('the didChange notification in the trace', () => /Sending notification 'textDocument\/didChange'/.test(output()));
    assert.match(output(), /Params: \{/, 'verbose shows the parameters');
  } finally {
    work.remove();
  }
});

test('a server that exits at once is reported once, with its own words in the output', async () => {
  // `node -m ...` is not a Python: it exits at once with "bad option: -m".
  const ext = activate({ 'fluo.server.pythonPath': process.execPath });
  assert.equal(await ext.started, false);
  assert.equal(ext.server.status, 'failed');
  // Only our message: vscode-languageclient shows none of its own ("Pending response rejected ...",
  // "couldn't create connection to server").
  await new Promise((resolve) => setTimeout(resolve, 200));
  const shown = fake.editor.messages;
  assert.equal(shown.length, 1, shown.map((m) => m.text).join('\n---\n'));
  assert.match(
    shown[0].text,
    /^FLUO: the language server did not start \(.* -m fluo_run\.cli lsp --stdio\): it exited with status \d+ before answering; it said ".*bad option: -m"/,
  );
  assert.match(fake.editor.channel('FLUO Language Server').text, /bad option: -m/);
});

test('a wrong program that exits at once, printing only on stdout: its status and its words, not "write EPIPE"', async () => {
  const work = tempFolder('fluo-other-');
  try {
    // Like the unrelated `fluo` on PyPI: a usage message on stdout, where the client expects LSP.
    const other = path.join(work.dir, 'fluo');
    fs.writeFileSync(other, '#!/bin/sh\necho "usage: fluo [-h] {run,build} ..."\necho "fluo: error: invalid choice: \'lsp\'"\nexit 2\n', { mode: 0o755 });
    const ext = activate({ 'fluo.server.command': [other, 'lsp'] });
    assert.equal(await ext.started, false);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const shown = fake.editor.messages;
    assert.equal(shown.length, 1, shown.map((m) => m.text).join('\n---\n'));
    assert.match(
      shown[0].text,
      /did not start \(.*fluo lsp --stdio\): it exited with status 2 before answering; it printed "usage: fluo \[-h\] \{run,build\} \.\.\. \/ fluo: error: invalid choice: 'lsp'"\./,
    );
    const output = fake.editor.channel('FLUO Language Server').text;
    assert.match(output, /usage: fluo \[-h\] \{run,build\} \.\.\.\nfluo: error: invalid choice: 'lsp'/);
    assert.doesNotMatch(output, /Stopping server failed|can't be stopped/);
  } finally {
    work.remove();
  }
});

test('a pythonPath without FLUO installed: the message says to install it there, and how', async () => {
  const work = tempFolder('fluo-nofluo-');
  try {
    const made = spawnSync(PYTHON, ['-m', 'venv', '--without-pip', work.dir], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(made.status, 0, made.stderr);
    const python = path.join(work.dir, process.platform === 'win32' ? 'Scripts' : 'bin', process.platform === 'win32' ? 'python.exe' : 'python');
    const ext = activate({ 'fluo.server.pythonPath': python });
    assert.equal(await ext.started, false);
    const [shown] = fake.editor.messages;
    assert.match(shown.text, /it said ".*No module named 'fluo_run'\)". FLUO is not installed/);
    assert.ok(shown.text.includes(`FLUO is not installed in ${python} (fluo.server.pythonPath): install it there (`), shown.text);
    assert.match(shown.text, /pip install -e <path to the fluo repository>/);
  } finally {
    work.remove();
  }
});

test('untrusted workspace: the real server runs from the extension\'s folder, so a planted fluo_run is not imported; a workspace program is not run until trusted', async () => {
  const work = tempFolder('fluo-untrusted-');
  try {
    const marker = path.join(work.dir, 'planted-ran');
    fs.mkdirSync(path.join(work.dir, 'fluo_run'));
    fs.writeFileSync(path.join(work.dir, 'fluo_run', '__init__.py'), '');
    fs.writeFileSync(path.join(work.dir, 'fluo_run', 'cli.py'), `open(${JSON.stringify(marker)}, "w").close()\n`);
    fake.editor.trusted = false;
    fake.editor.settings.set('fluo.server.pythonPath', PYTHON);
    fake.editor.workspaceFolders.push({ uri: fake.Uri.file(work.dir), name: 'untrusted', index: 0 });
    context = fake.extensionContext();
    const ext = bundle.activate(context as never);
    assert.equal(await ext.started, true, fake.editor.channels.map((c) => c.text).join('\n'));
    const pid = ext.server.languageClient?.serverProcess?.pid;
    assert.ok(pid !== undefined);
    if (process.platform === 'linux') {
      assert.equal(fs.readlinkSync(`/proc/${pid}/cwd`), fs.realpathSync(path.join(EXTENSION, 'dist')));
    }
    const file = path.join(work.dir, 'rules.fluo');
    await fake.editor.open(file, 'fluo', BROKEN);
    await until('diagnostics for the open file', () => fake.editor.diagnosticsOf(file).length >= 2);
    assert.equal(fs.existsSync(marker), false, 'the workspace\'s fluo_run was imported');

    // The documented example names a program inside the workspace: not run in Restricted Mode.
    await fake.editor.configure({ 'fluo.server.pythonPath': '${workspaceFolder}/.venv/bin/python' });
    assert.equal(ext.server.status, 'restricted');
    assert.equal(ext.server.languageClient, undefined);
    assert.match(fake.editor.messages.map((m) => m.text).join('\n'), /not started: this workspace is not trusted \(Restricted Mode\)/);
    // Trusted: resolved into the workspace, as configured (here there is no such program).
    await fake.editor.grantTrust();
    assert.equal(ext.server.status, 'failed');
    assert.ok(fake.editor.messages.some((m) => m.text.includes(`${path.join(work.dir, '.venv', 'bin', 'python')} (fluo.server.pythonPath) does not exist`)));
  } finally {
    work.remove();
  }
});
