import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe as group, test } from 'node:test';

import { COMMANDS, type FluoExtension, activate, deactivate } from '../../src/extension';
import { CLIENT_ID } from '../../src/server';
import { MANAGE_TRUST, MANAGE_TRUST_COMMAND, UNTRUSTED_CWD } from '../../src/trust';
import { CloseAction, ErrorAction, LanguageClient, State, TransportKind, behaviour } from '../fakes/languageclient';
import { Uri, editor, extensionContext } from '../fakes/vscode';
import { readJson, tempFolder } from '../support/paths';

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
    assert.deepEqual(report, { kind: 'full', items: [] }, 'diagnostics come pushed, never pulled twice (an older fluo still offers pull)');
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

  test('a program given by its path is said not to exist, or not to be executable, not to be missing from PATH', async () => {
    const work = tempFolder('fluo-notfound-');
    try {
      const plain = path.join(work.dir, 'fluo');
      fs.writeFileSync(plain, '#!/bin/sh\n', { mode: 0o644 });
      const cases: [string, RegExp][] = [
        [path.join(work.dir, 'missing', 'bin', 'fluo'), /`[^`]*missing\/bin\/fluo` \(fluo\.server\.command\) does not exist, so/],
        [plain, /`[^`]*\/fluo` \(fluo\.server\.command\) is not executable, so/],
        [work.dir, /\(fluo\.server\.command\) is not a file, so/],
      ];
      for (const [i, [program, expected]] of cases.entries()) {
        if (i > 0) {
          await deactivate();
          context.dispose();
          editor.reset();
        }
        start({ 'fluo.server.command': [program, 'lsp'] });
        assert.equal(await ext.started, false);
        assert.match(editor.messages[0].text, expected);
        assert.doesNotMatch(editor.messages[0].text, /PATH/);
        assert.match(editor.messages[0].text, /pip install -e <path to the fluo repository>/);
      }
    } finally {
      work.remove();
    }
  });

  test('a missing Python interpreter names the pythonPath setting', async () => {
    start({ 'fluo.server.pythonPath': '/nonexistent/bin/python3' });
    assert.equal(await ext.started, false);
    assert.match(editor.messages[0].text, /Python interpreter \/nonexistent\/bin\/python3 \(fluo\.server\.pythonPath\) does not exist\./);
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
      // Four restarts in all: the fifth crash is not restarted.
      assert.match(editor.messages[i - 1].text, new RegExp(`stopped unexpectedly; restarting it \\(restart ${i} of 4 allowed in 3 minutes\\)`));
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
    assert.match(editor.messages[0].text, /stopped unexpectedly; restarting it \(restart 1 of 4 /);
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

group('in an untrusted workspace (Restricted Mode)', () => {
  const unix = process.platform !== 'win32';
  let work: ReturnType<typeof tempFolder>;
  let repo: string;
  let planted: string;
  let marker: string;

  /** An untrusted folder whose `.venv/bin/python` would leave a marker if it ever ran. */
  beforeEach(() => {
    work = tempFolder('fluo-untrusted-');
    repo = path.join(work.dir, 'evil-repo');
    planted = path.join(repo, '.venv', 'bin', 'python');
    marker = path.join(work.dir, 'ran');
    fs.mkdirSync(path.dirname(planted), { recursive: true });
    fs.writeFileSync(planted, `#!/bin/sh\ntouch '${marker}'\n`, { mode: 0o755 });
    editor.workspaceFolders.push({ uri: Uri.file(repo), name: 'evil-repo', index: 0 });
    editor.trusted = false;
  });

  afterEach(() => work.remove());

  function restrictedMessage(): (typeof editor.messages)[number] {
    assert.equal(editor.messages.length, 1, editor.messages.map((m) => m.text).join('\n'));
    return editor.messages[0];
  }

  for (const value of ['${workspaceFolder}/.venv/bin/python', '.venv/bin/python']) {
    test(`the documented user setting ${value} does not run the workspace's program; one message says why`, async () => {
      start({ 'fluo.server.pythonPath': value });
      assert.equal(await ext.started, false);
      assert.equal(LanguageClient.instances.length, 0, 'no client, so no process');
      assert.equal(ext.server.status, 'restricted');
      const message = restrictedMessage();
      assert.equal(message.level, 'warning');
      assert.match(message.text, /^FLUO: the language server was not started: this workspace is not trusted \(Restricted Mode\)/);
      assert.ok(message.text.includes(`fluo.server.pythonPath (${JSON.stringify(value)}) names a program inside the workspace`));
      assert.deepEqual(message.actions, [MANAGE_TRUST, 'Open Settings']);
      assert.equal(fs.existsSync(marker), false);
      // Nor do the rule tests run it.
      const testFile = path.join(repo, 'a_test.yaml');
      fs.writeFileSync(testFile, 'cases: []\n');
      const outcome = (await editor.commands.get(COMMANDS.runTestsForFile)?.(Uri.file(testFile))) as { failure?: string; restricted?: boolean };
      assert.equal(outcome.restricted, true);
      assert.match(outcome.failure ?? '', /^the rule tests were not run: this workspace is not trusted/);
      assert.equal(editor.messages[1].text, `FLUO: ${outcome.failure}`);
      assert.deepEqual(editor.messages[1].actions, [MANAGE_TRUST]);
      await settle();
      assert.equal(fs.existsSync(marker), false);
    });
  }

  test('"Manage Workspace Trust" opens the trust editor; granting trust starts the server as configured', async () => {
    editor.answers.push(MANAGE_TRUST);
    start({ 'fluo.server.pythonPath': '${workspaceFolder}/.venv/bin/python' });
    assert.equal(await ext.started, false);
    await settle();
    assert.deepEqual(editor.executed, [{ command: MANAGE_TRUST_COMMAND, args: [] }]);
    await editor.grantTrust();
    assert.equal(ext.server.status, 'running');
    assert.equal(LanguageClient.instances.length, 1);
    const client = LanguageClient.last;
    assert.deepEqual([client.serverOptions.command, ...client.serverOptions.args], [planted, '-m', 'fluo_run.cli', 'lsp']);
    assert.equal(options(client).cwd, undefined, 'trusted: as before, from the workspace');
    assert.match(editor.channel('FLUO Language Server').text, /The workspace is trusted now: starting the language server/);
  });

  test('a program named by an absolute path inside a workspace folder is not run either', async () => {
    start({ 'fluo.server.command': [planted, 'lsp'] });
    assert.equal(await ext.started, false);
    assert.equal(LanguageClient.instances.length, 0);
    assert.ok(restrictedMessage().text.includes(`fluo.server.command resolves to ${planted}, inside the workspace folder ${repo}`));
  });

  test('nor one outside that links into the workspace', { skip: !unix && 'symlinks need privileges on Windows' }, async () => {
    const link = path.join(work.dir, 'python-link');
    fs.symlinkSync(planted, link);
    start({ 'fluo.server.pythonPath': link });
    assert.equal(await ext.started, false);
    assert.equal(LanguageClient.instances.length, 0);
    assert.match(restrictedMessage().text, /fluo\.server\.pythonPath resolves to .*python-link, inside the workspace folder/);
  });

  test('a program outside the workspace runs by its absolute path, away from the workspace, with PYTHONSAFEPATH', async () => {
    start({ 'fluo.server.command': [path.basename(NODE), 'server.js', 'lsp'] });
    assert.equal(await ext.started, true);
    assert.deepEqual(editor.messages, []);
    const client = LanguageClient.last;
    assert.equal(path.isAbsolute(client.serverOptions.command), true);
    assert.deepEqual(client.serverOptions.args, ['server.js', 'lsp']);
    assert.equal(options(client).cwd, UNTRUSTED_CWD);
    assert.equal(options(client).env?.PYTHONSAFEPATH, '1');
    // Trust granted: restarted as in a trusted workspace.
    await editor.grantTrust();
    assert.equal(LanguageClient.instances.length, 2);
    assert.equal(LanguageClient.last.serverOptions.command, path.basename(NODE));
    assert.equal(options(LanguageClient.last).cwd, undefined);
    assert.equal(options(LanguageClient.last).env?.PYTHONSAFEPATH, process.env.PYTHONSAFEPATH);
  });

  test('a folder added to the untrusted workspace is checked again: the running program is inside it now', async () => {
    start({ 'fluo.server.command': [NODE, 'server.js', 'lsp'] });
    assert.equal(await ext.started, true);
    editor.workspaceFolders.push({ uri: Uri.file(path.dirname(NODE)), name: 'bin', index: 1 });
    await editor.workspaceFoldersChanged.fire({ added: [], removed: [] });
    assert.equal(ext.server.status, 'restricted');
    assert.equal(LanguageClient.last.disposed, true);
  });
});

/** The process options the client was given (cwd, env). */
function options(client: LanguageClient): { cwd?: string; env?: Record<string, string | undefined> } {
  return (client.serverOptions as unknown as { options: { cwd?: string; env?: Record<string, string | undefined> } }).options;
}
