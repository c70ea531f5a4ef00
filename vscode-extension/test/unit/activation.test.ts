import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { afterEach, beforeEach, describe as group, test } from 'node:test';

import { COMMANDS, type FluoExtension, activate, deactivate } from '../../src/extension';
import { CLIENT_ID } from '../../src/server';
import { CloseAction, ErrorAction, LanguageClient, State, TransportKind, behaviour } from '../fakes/languageclient';
import { Uri, editor, extensionContext } from '../fakes/vscode';
import { readJson } from '../support/paths';

interface Manifest {
  main: string;
  contributes: { commands: { command: string; title: string; category: string }[] };
}

/** A program that exists on every machine running these tests. */
const NODE = process.execPath;

let context: ReturnType<typeof extensionContext>;
let ext: FluoExtension;

function start(settings: Record<string, unknown> = { 'fluo.server.command': [NODE, 'server.js', 'lsp'] }): FluoExtension {
  for (const [k, v] of Object.entries(settings)) {
    editor.settings.set(k, v);
  }
  context = extensionContext();
  ext = activate(context as never);
  return ext;
}

/** Let queued promise callbacks (message answers) run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

beforeEach(() => {
  editor.reset();
  LanguageClient.reset();
});

afterEach(async () => {
  await deactivate();
  context?.dispose();
});

group('activation', () => {
  test('registers exactly the commands package.json contributes, titled "FLUO: ..."', async () => {
    start();
    await ext.started;
    const manifest = readJson<Manifest>('package.json');
    const declared = manifest.contributes.commands.map((c) => c.command).sort();
    assert.deepEqual([...editor.commands.keys()].sort(), declared);
    assert.deepEqual(Object.values(COMMANDS).sort(), declared);
    const titles = manifest.contributes.commands.map((c) => `${c.category}: ${c.title}`).sort();
    assert.deepEqual(titles, [
      'FLUO: Restart Language Server',
      'FLUO: Run Rule Tests for Current File',
      'FLUO: Show Server Output',
    ]);
    assert.equal(manifest.main, './dist/extension.js');
  });

  test('starts the configured server over stdio for .fluo files, with the settings as initialization options', async () => {
    start({
      'fluo.server.command': [NODE, 'server.js', 'lsp'],
      'fluo.attributeKeys': ['amount'],
      'fluo.strictness': 'strict',
      'fluo.diagnostics.debounceMs': 40,
    });
    assert.equal(await ext.started, true);
    assert.equal(ext.server.status, 'running');
    const client = LanguageClient.last;
    assert.equal(client.id, CLIENT_ID);
    assert.deepEqual(
      { command: client.serverOptions.command, args: client.serverOptions.args, transport: client.serverOptions.transport },
      { command: NODE, args: ['server.js', 'lsp'], transport: TransportKind.stdio },
    );
    const options = client.clientOptions;
    assert.ok(options.documentSelector.some((s) => s.language === 'fluo' && s.scheme === 'file'));
    assert.ok(options.documentSelector.some((s) => s.pattern === '**/*_test.yaml'));
    assert.equal(options.synchronize.configurationSection, 'fluo');
    assert.deepEqual(client.initializations, [
      { attributeKeys: ['amount'], strictness: 'strict', diagnostics: { debounceMs: 40 }, completion: { ruleSkeletons: false } },
    ]);
    assert.equal(options.outputChannel, editor.channel('FLUO Language Server'));
    let pulled = false;
    const report = options.middleware.provideDiagnostics({}, undefined, {}, () => (pulled = true));
    assert.deepEqual(report, { kind: 'full', items: [] }, 'diagnostics come pushed, never pulled twice');
    assert.equal(pulled, false);
    assert.equal(editor.channel('FLUO Language Server').log, true);
  });

  test('a server setting change reaches the server without a restart', async () => {
    start();
    await ext.started;
    await editor.configure({ 'fluo.attributeKeys': ['http.route'], 'fluo.strictness': 'strict' });
    assert.equal(LanguageClient.instances.length, 1);
    assert.equal(LanguageClient.last.starts, 1);
    assert.deepEqual(LanguageClient.last.clientOptions.initializationOptions(), {
      attributeKeys: ['http.route'],
      strictness: 'strict',
      diagnostics: { debounceMs: 150 },
      completion: { ruleSkeletons: false },
    });
  });

  test('a change of Python path restarts the server with `python -m fluo_run.cli lsp`', async () => {
    start();
    await ext.started;
    const first = LanguageClient.last;
    await editor.configure({ 'fluo.server.pythonPath': NODE });
    assert.equal(LanguageClient.instances.length, 2);
    assert.equal(first.disposed, true);
    assert.equal(first.stops, 1);
    const second = LanguageClient.last;
    assert.deepEqual([second.serverOptions.command, ...second.serverOptions.args], [NODE, '-m', 'fluo_run.cli', 'lsp']);
    assert.equal(second.state, State.Running);
    assert.match(editor.channel('FLUO Language Server').text, /restarting the language server/);
  });

  test('${workspaceFolder} in the server command is the workspace folder, and follows it', async () => {
    editor.workspaceFolders.push({ uri: Uri.file(path.join(path.dirname(NODE), 'elsewhere')), name: 'a', index: 0 });
    editor.workspaceFolders.push({ uri: Uri.file(path.dirname(NODE)), name: 'bin', index: 1 });
    start({ 'fluo.server.command': [`\${workspaceFolder:bin}/${path.basename(NODE)}`, 'server.js', 'lsp'] });
    assert.equal(await ext.started, true);
    assert.equal(LanguageClient.last.serverOptions.command, NODE);
    editor.workspaceFolders.length = 0;
    editor.workspaceFolders.push({ uri: Uri.file(path.dirname(NODE)), name: 'bin', index: 0 });
    await editor.workspaceFoldersChanged.fire({ added: [], removed: [] });
    assert.equal(LanguageClient.instances.length, 1, 'the same command: no restart');
    editor.workspaceFolders.length = 0;
    await editor.workspaceFoldersChanged.fire({ added: [], removed: [] });
    assert.equal(LanguageClient.instances.length, 1, 'an unresolvable command cannot start');
    assert.match(editor.messages.map((m) => m.text).join('\n'), /no open workspace folder is named "bin"/);
  });

  test('an unusable setting is reported in one line and the default is used', async () => {
    start({ 'fluo.server.command': [NODE, 'lsp'], 'fluo.strictness': 'pedantic' });
    await ext.started;
    assert.equal(ext.settings().strictness, 'default');
    assert.deepEqual(
      editor.messages.map((m) => [m.level, m.text]),
      [['warning', 'FLUO: fluo.strictness must be "default" or "strict", not "pedantic"; using "default".']],
    );
    await editor.configure({ 'fluo.attributeKeys': ['amount'] });
    assert.equal(editor.messages.length, 1, 'a problem already reported is not reported again');
    await editor.configure({ 'fluo.strictness': 'strict', 'fluo.diagnostics.debounceMs': 'soon' });
    assert.equal(ext.settings().strictness, 'strict');
    assert.equal(editor.messages.length, 2);
    assert.match(editor.messages[1].text, /^FLUO: fluo\.diagnostics\.debounceMs must be a number/);
  });
});

group('when the server cannot start', () => {
  test('a program missing from PATH is named, with what to set instead', async () => {
    start({ 'fluo.server.command': ['fluo-not-installed-here', 'lsp'] });
    assert.equal(await ext.started, false);
    assert.equal(LanguageClient.instances.length, 0);
    assert.equal(ext.server.status, 'failed');
    const [message] = editor.messages;
    assert.equal(message.level, 'error');
    assert.match(message.text, /`fluo-not-installed-here` was not found on PATH/);
    assert.match(message.text, /fluo\.server\.pythonPath/);
    // The PyPI package called fluo is another project: the message says how to install this one.
    assert.match(message.text, /pip install -e <path to the fluo repository>/);
    assert.match(message.text, /the PyPI package named "fluo" is a different project/);
    assert.doesNotMatch(message.text, /pip install fluo/);
    assert.deepEqual(message.actions, ['Show Output', 'Open Settings']);
  });

  test('a missing Python interpreter names the pythonPath setting', async () => {
    start({ 'fluo.server.pythonPath': '/nonexistent/bin/python3' });
    assert.equal(await ext.started, false);
    assert.match(editor.messages[0].text, /Python interpreter \/nonexistent\/bin\/python3 \(fluo\.server\.pythonPath\) was not found/);
    assert.match(editor.messages[0].text, /pip install -e <path to the fluo repository>/);
    assert.doesNotMatch(editor.messages[0].text, /pip install fluo/);
  });

  test('a server that exits during start is reported once, and "Show Output" opens its output', async () => {
    behaviour.startError = new Error('Server process exited before the connection could be established (code: 1, signal: null).');
    editor.answers.push('Show Output');
    start();
    assert.equal(await ext.started, false);
    await settle();
    assert.equal(editor.messages.length, 1, 'the client shows nothing of its own');
    // The command line as it ran: the client appends --stdio.
    assert.match(editor.messages[0].text, /did not start \(.* server\.js lsp --stdio\): Server process exited before the connection/);
    assert.equal(LanguageClient.last.clientOptions.initializationFailedHandler?.(new Error('x')), false);
    assert.equal(editor.channel('FLUO Language Server').shown, 1);
    assert.equal(LanguageClient.last.disposed, true);
  });

  test('"Open Settings" opens the server settings', async () => {
    editor.answers.push('Open Settings');
    start({ 'fluo.server.command': ['fluo-not-installed-here'] });
    await ext.started;
    await settle();
    assert.deepEqual(editor.executed, [{ command: 'workbench.action.openSettings', args: ['fluo.server'] }]);
  });
});

group('crashes', () => {
  test('a crashed server is restarted with a message, four times, and then left down with what to check', async () => {
    start();
    await ext.started;
    const client = LanguageClient.last;
    for (let i = 1; i <= 4; i++) {
      const result = await client.crash();
      assert.equal(result.action, CloseAction.Restart);
      assert.equal(result.handled, true);
      assert.equal(ext.server.status, 'running');
      assert.match(editor.messages[i - 1].text, new RegExp(`stopped unexpectedly \\(crash ${i} of 5 allowed in 3 minutes\\); restarting it`));
      assert.deepEqual(editor.messages[i - 1].actions, ['Show Output']);
    }
    const last = await client.crash();
    assert.equal(last.action, CloseAction.DoNotRestart);
    assert.equal(ext.server.status, 'failed');
    const final = editor.messages[4];
    assert.equal(final.level, 'error');
    assert.match(final.text, /crashed 5 times in 3 minutes, so it will not be restarted/);
    assert.match(final.text, /server\.js lsp --stdio`/);
    assert.match(final.text, /"FLUO: Restart Language Server"/);
    assert.equal(client.starts, 5);
  });

  test('"FLUO: Restart Language Server" starts a new server and forgets earlier crashes', async () => {
    start();
    await ext.started;
    const first = LanguageClient.last;
    for (let i = 0; i < 5; i++) {
      await first.crash();
    }
    assert.equal(ext.server.status, 'failed');
    assert.equal(await editor.commands.get(COMMANDS.restartServer)?.(), true);
    assert.equal(first.disposed, true);
    const second = LanguageClient.last;
    assert.notEqual(second, first);
    assert.equal(ext.server.status, 'running');
    assert.equal((await second.crash()).action, CloseAction.Restart);
  });

  test('a restart after a crash that fails is reported once, not also by the client', async () => {
    start();
    await ext.started;
    behaviour.startError = new Error('Server process exited before the connection could be established (code: 1, signal: null).');
    await LanguageClient.last.crash();
    assert.equal(ext.server.status, 'failed');
    assert.deepEqual(
      editor.messages.map((m) => m.level),
      ['warning', 'error'],
      editor.messages.map((m) => m.text).join('\n'),
    );
    assert.match(editor.messages[0].text, /stopped unexpectedly \(crash 1 of 5/);
    assert.match(
      editor.messages[1].text,
      /^FLUO: the language server could not be started again after it stopped \(.*server\.js lsp --stdio\): Server process exited/,
    );
  });

  test('connection errors are tolerated three times in a row; then the server is stopped and the user told', async () => {
    start();
    await ext.started;
    assert.deepEqual(LanguageClient.last.connectionErrors(5), [ErrorAction.Continue, ErrorAction.Continue, ErrorAction.Continue, ErrorAction.Shutdown]);
    assert.equal(ext.server.status, 'failed');
    assert.equal(editor.messages.length, 1);
    assert.match(editor.messages[0].text, /connection to the language server kept failing, so it was stopped/);
  });
});

test('"FLUO: Show Server Output" shows the server\'s output channel', async () => {
  start();
  await ext.started;
  await editor.commands.get(COMMANDS.showServerOutput)?.();
  assert.equal(editor.channel('FLUO Language Server').shown, 1);
  assert.match(editor.channel('FLUO Language Server').text, /Starting .*server\.js lsp/);
});
