import * as assert from 'node:assert/strict';
import { describe as group, test } from 'node:test';

import * as path from 'node:path';

import {
  DEFAULTS,
  NoTestCommand,
  LAUNCH_SETTINGS,
  type Settings,
  describe,
  fluoProgram,
  readSettings,
  serverCommand,
  serverSettings,
  testCommand,
} from '../../src/settings';
import { readJson } from '../support/paths';

function source(values: Record<string, unknown>) {
  return { get: <T>(key: string): T | undefined => values[key] as T | undefined };
}

function settings(overrides: Partial<Settings>): Settings {
  return { ...DEFAULTS, ...overrides };
}

interface Manifest {
  contributes: { configuration: { properties: Record<string, { default: unknown; type: string; enum?: string[] }> } };
}

group('readSettings', () => {
  test('an empty configuration gives the defaults and no problems', () => {
    const { settings: s, problems } = readSettings(source({}));
    assert.deepEqual(s, DEFAULTS);
    assert.deepEqual(problems, []);
  });

  test('valid values are taken as they are', () => {
    const { settings: s, problems } = readSettings(
      source({
        'server.command': ['/opt/fluo/bin/fluo', 'lsp'],
        'server.pythonPath': ' /usr/bin/python3 ',
        attributeKeys: ['http.route', 'amount'],
        strictness: 'strict',
        'diagnostics.debounceMs': 42.4,
      }),
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(s, {
      serverCommand: ['/opt/fluo/bin/fluo', 'lsp'],
      pythonPath: '/usr/bin/python3',
      attributeKeys: ['http.route', 'amount'],
      strictness: 'strict',
      debounceMs: 42,
    });
  });

  test("the server command's program is trimmed, as fluo.server.pythonPath is; its arguments are kept as written", () => {
    const command = [' /opt/fluo/bin/fluo ', 'lsp', ' --x '];
    assert.deepEqual(readSettings(source({ 'server.command': command })).settings.serverCommand, ['/opt/fluo/bin/fluo', 'lsp', ' --x ']);
    const context = { folders: [{ name: 'app', path: path.resolve('/work/app') }], home: path.resolve('/home/me'), trusted: true };
    assert.deepEqual(readSettings(source({ 'server.command': [' fluo\t', 'lsp'] }), context).settings.serverCommand, ['fluo', 'lsp']);
  });

  test('each unusable value falls back to its default with one line that names the setting', () => {
    const { settings: s, problems } = readSettings(
      source({
        'server.command': 'fluo lsp',
        'server.pythonPath': 3,
        attributeKeys: 'http.route',
        strictness: 'pedantic',
        'diagnostics.debounceMs': -5,
      }),
    );
    assert.deepEqual(s, DEFAULTS);
    assert.equal(problems.length, 5);
    for (const [i, name] of ['server.command', 'server.pythonPath', 'attributeKeys', 'strictness', 'diagnostics.debounceMs'].entries()) {
      assert.ok(problems[i].startsWith(`fluo.${name} `), problems[i]);
      assert.ok(!problems[i].includes('\n'));
    }
  });

  test('a debounce over what the server takes is said, not silently ignored by the server', () => {
    const { settings: s, problems } = readSettings(source({ 'diagnostics.debounceMs': 20000 }));
    assert.equal(s.debounceMs, DEFAULTS.debounceMs);
    assert.deepEqual(problems, [
      `fluo.diagnostics.debounceMs must be a number of milliseconds from 0 to 10000; using ${DEFAULTS.debounceMs}`,
    ]);
  });

  group('paths in fluo.server.*', () => {
    const home = path.resolve('/home/me');
    const app = path.resolve('/work/app');
    const lib = path.resolve('/work/lib');
    const context = { folders: [{ name: 'app', path: app }, { name: 'lib', path: lib }], home, trusted: true };
    const read = (values: Record<string, unknown>, ctx = context) => readSettings(source(values), ctx);

    test('${workspaceFolder} is the first folder, ${workspaceFolder:name} the folder of that name', () => {
      const { settings: s, problems } = read({
        'server.pythonPath': '${workspaceFolder}/.venv/bin/python',
        'server.command': ['${workspaceFolder:lib}/bin/fluo', 'lsp', '--root', '${workspaceFolder:lib}'],
      });
      assert.deepEqual(problems, []);
      assert.equal(s.pythonPath, path.join(app, '.venv', 'bin', 'python'));
      assert.deepEqual(s.serverCommand, [path.join(lib, 'bin', 'fluo'), 'lsp', '--root', lib]);
    });

    test('~ and ${userHome} are the home folder', () => {
      assert.equal(read({ 'server.pythonPath': '~/venvs/fluo/bin/python' }).settings.pythonPath, path.join(home, 'venvs', 'fluo', 'bin', 'python'));
      assert.deepEqual(read({ 'server.command': ['${userHome}/bin/fluo', 'lsp'] }).settings.serverCommand, [path.join(home, 'bin', 'fluo'), 'lsp']);
    });

    test('a relative path is resolved against the first folder; a bare name stays a name found on PATH', () => {
      assert.equal(read({ 'server.pythonPath': '.venv/bin/python' }).settings.pythonPath, path.join(app, '.venv', 'bin', 'python'));
      assert.deepEqual(read({ 'server.command': ['./tools/fluo', 'lsp'] }).settings.serverCommand, [path.join(app, 'tools', 'fluo'), 'lsp']);
      assert.equal(read({ 'server.pythonPath': 'python3' }).settings.pythonPath, 'python3');
      assert.deepEqual(read({ 'server.command': ['fluo', 'lsp'] }).settings.serverCommand, ['fluo', 'lsp']);
      assert.equal(read({ 'server.pythonPath': '/opt/py/bin/python' }).settings.pythonPath, path.resolve('/opt/py/bin/python'));
    });

    group('in an untrusted workspace', () => {
      const untrusted = { ...context, trusted: false };
      const readUntrusted = (values: Record<string, unknown>) => readSettings(source(values), untrusted);

      test('${workspaceFolder} and relative programs are not resolved into the workspace, and restrict the command', () => {
        for (const value of ['${workspaceFolder}/.venv/bin/python', '${workspaceFolder:lib}/.venv/bin/python', '.venv/bin/python', './py']) {
          const { settings: s, problems } = readUntrusted({ 'server.pythonPath': value });
          assert.equal(s.pythonPath, value, 'kept as written');
          assert.ok(!serverCommand(s).command.startsWith(app) && !serverCommand(s).command.startsWith(lib));
          assert.equal(s.restricted, `fluo.server.pythonPath (${JSON.stringify(value)}) names a program inside the workspace`);
          assert.deepEqual(problems, []);
        }
        const { settings: s } = readUntrusted({ 'server.command': ['tools/fluo', 'lsp'] });
        assert.deepEqual(s.serverCommand, ['tools/fluo', 'lsp']);
        assert.match(s.restricted ?? '', /^fluo\.server\.command \(\["tools\/fluo","lsp"\]\) names a program or path inside the workspace$/);
      });

      test('${workspaceFolder} in an argument restricts the command too (it may name a script)', () => {
        const { settings: s } = readUntrusted({ 'server.command': ['node', '${workspaceFolder}/server.js', 'lsp'] });
        assert.deepEqual(s.serverCommand, ['node', '${workspaceFolder}/server.js', 'lsp']);
        assert.ok(s.restricted);
      });

      test('a context that does not say it is trusted counts as untrusted', () => {
        const { settings: s } = readSettings(source({ 'server.pythonPath': '.venv/bin/python' }), { folders: context.folders, home });
        assert.equal(s.pythonPath, '.venv/bin/python');
        assert.ok(s.restricted);
      });

      test('bare names, absolute paths, ~ and ${userHome} resolve as in a trusted workspace, unrestricted', () => {
        assert.deepEqual(readUntrusted({}).settings, DEFAULTS);
        assert.deepEqual(readUntrusted({ 'server.command': ['fluo', 'lsp'] }).settings.serverCommand, ['fluo', 'lsp']);
        assert.equal(readUntrusted({ 'server.pythonPath': 'python3' }).settings.restricted, undefined);
        assert.equal(readUntrusted({ 'server.pythonPath': '/opt/py/bin/python' }).settings.pythonPath, path.resolve('/opt/py/bin/python'));
        const tilde = readUntrusted({ 'server.pythonPath': '~/venvs/fluo/bin/python' }).settings;
        assert.equal(tilde.pythonPath, path.join(home, 'venvs', 'fluo', 'bin', 'python'));
        assert.equal(tilde.restricted, undefined);
        const userHome = readUntrusted({ 'server.command': ['${userHome}/bin/fluo', 'lsp'] }).settings;
        assert.deepEqual(userHome.serverCommand, [path.join(home, 'bin', 'fluo'), 'lsp']);
        assert.equal(userHome.restricted, undefined);
      });

      test('only the setting that starts the server counts: pythonPath replaces the command', () => {
        const ignoredCommand = readUntrusted({ 'server.command': ['./fluo', 'lsp'], 'server.pythonPath': '/usr/bin/python3' }).settings;
        assert.equal(ignoredCommand.restricted, undefined);
        const ignoredPython = readUntrusted({ 'server.pythonPath': '' }).settings;
        assert.equal(ignoredPython.restricted, undefined);
      });
    });

    test('a folder variable that cannot be resolved is kept as written, with one line that says why', () => {
      const none = read({ 'server.pythonPath': '${workspaceFolder}/.venv/bin/python' }, { folders: [], home, trusted: true });
      assert.equal(none.settings.pythonPath, '${workspaceFolder}/.venv/bin/python');
      assert.deepEqual(none.problems, ['fluo.server.pythonPath uses ${workspaceFolder}, but no folder is open; it is used as written']);
      const named = read({ 'server.command': ['${workspaceFolder:nope}/fluo', 'lsp'] });
      assert.match(named.problems[0], /^fluo\.server\.command uses \$\{workspaceFolder:nope\}, but no open workspace folder is named "nope"/);
    });
  });

  test('an empty command list or an empty program name is refused', () => {
    assert.equal(readSettings(source({ 'server.command': [] })).problems.length, 1);
    assert.equal(readSettings(source({ 'server.command': [' ', 'lsp'] })).problems.length, 1);
  });
});

group('commands', () => {
  test('the server starts with the configured command', () => {
    assert.deepEqual(serverCommand(DEFAULTS), { command: 'fluo', args: ['lsp'] });
    assert.deepEqual(serverCommand(settings({ serverCommand: ['uvx', 'fluo', 'lsp', '--log', 'x'] })), {
      command: 'uvx',
      args: ['fluo', 'lsp', '--log', 'x'],
    });
  });

  test('a Python path replaces the command with the module entry point', () => {
    const s = settings({ pythonPath: '/venv/bin/python', serverCommand: ['ignored', 'lsp'] });
    assert.deepEqual(serverCommand(s), { command: '/venv/bin/python', args: ['-m', 'fluo_run.cli', 'lsp'] });
    assert.deepEqual(fluoProgram(s), { command: '/venv/bin/python', args: ['-m', 'fluo_run.cli'] });
  });

  test('fluo test runs the server command up to its lsp argument', () => {
    assert.deepEqual(fluoProgram(settings({ serverCommand: ['uvx', 'fluo', 'lsp'] })), { command: 'uvx', args: ['fluo'] });
    // Arguments after lsp are the server's own, not fluo's.
    assert.deepEqual(fluoProgram(settings({ serverCommand: ['/opt/x/bin/fluo', 'lsp', '--stdio'] })), { command: '/opt/x/bin/fluo', args: [] });
    assert.deepEqual(fluoProgram(settings({ serverCommand: ['fluo', '--quiet', 'lsp', '--log', 'x'] })), { command: 'fluo', args: ['--quiet'] });
    assert.deepEqual(testCommand(DEFAULTS, ['rules/auth_test.yaml'], '^a$'), {
      command: 'fluo',
      args: ['test', 'rules/auth_test.yaml', '--format', 'json', '--run', '^a$'],
    });
  });

  test('a server command without lsp gives no test command, and says so instead of running some other fluo', () => {
    assert.throws(() => fluoProgram(settings({ serverCommand: ['my-wrapper'] })), NoTestCommand);
    assert.throws(
      () => testCommand(settings({ serverCommand: ['my-wrapper', '--serve'] }), ['a_test.yaml']),
      /cannot tell how to run fluo test from fluo\.server\.command \["my-wrapper","--serve"\]: it has no "lsp" argument/,
    );
  });

  test('commands are shown as a person would type them', () => {
    assert.equal(describe({ command: '/a b/python', args: ['-m', 'fluo_run.cli', "it's"] }), `'/a b/python' -m fluo_run.cli 'it'\\''s'`);
  });
});

group('what the server receives', () => {
  test('the section is shaped as fluo_lsp.settings reads it', () => {
    const s = settings({ attributeKeys: ['amount'], strictness: 'strict', debounceMs: 10 });
    assert.deepEqual(serverSettings(s), {
      attributeKeys: ['amount'],
      strictness: 'strict',
      diagnostics: { debounceMs: 10 },
      completion: { ruleSkeletons: false },
    });
  });
});

group('package.json', () => {
  const properties = readJson<Manifest>('package.json').contributes.configuration.properties;

  test('declares every setting with the default the code uses', () => {
    assert.deepEqual(properties['fluo.server.command'].default, DEFAULTS.serverCommand);
    assert.equal(properties['fluo.server.pythonPath'].default, DEFAULTS.pythonPath);
    assert.deepEqual(properties['fluo.attributeKeys'].default, DEFAULTS.attributeKeys);
    assert.equal(properties['fluo.strictness'].default, DEFAULTS.strictness);
    assert.deepEqual(properties['fluo.strictness'].enum, ['default', 'strict']);
    assert.equal(properties['fluo.diagnostics.debounceMs'].default, DEFAULTS.debounceMs);
  });

  test('no setting claims a per-folder scope: the server has one set of settings for the whole window', () => {
    // The settings are read without a resource and sent as one section, so a folder's value would be ignored.
    const all = readJson<{ contributes: { configuration: { properties: Record<string, { scope?: string }> } } }>('package.json');
    for (const [name, declared] of Object.entries(all.contributes.configuration.properties)) {
      assert.ok(['window', 'machine-overridable'].includes(declared.scope ?? ''), `${name}: ${declared.scope}`);
    }
  });

  test('declares no setting the code does not read', () => {
    const read = new Set([
      'fluo.server.command',
      'fluo.server.pythonPath',
      'fluo.attributeKeys',
      'fluo.strictness',
      'fluo.diagnostics.debounceMs',
      'fluo.trace.server', // read by vscode-languageclient for the client id "fluo"
    ]);
    assert.deepEqual(new Set(Object.keys(properties)), read);
    for (const s of LAUNCH_SETTINGS) {
      assert.ok(s in properties, s);
    }
  });
});
