import * as assert from 'node:assert/strict';
import { describe as group, test } from 'node:test';

import {
  DEFAULTS,
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

  test('fluo test runs the server command without its trailing lsp', () => {
    assert.deepEqual(fluoProgram(settings({ serverCommand: ['uvx', 'fluo', 'lsp'] })), { command: 'uvx', args: ['fluo'] });
    assert.deepEqual(fluoProgram(settings({ serverCommand: ['my-wrapper'] })), { command: 'fluo', args: [] });
    assert.deepEqual(testCommand(DEFAULTS, ['rules/auth_test.yaml'], '^a$'), {
      command: 'fluo',
      args: ['test', 'rules/auth_test.yaml', '--format', 'json', '--run', '^a$'],
    });
  });

  test('commands are shown as a person would type them', () => {
    assert.equal(describe({ command: '/a b/python', args: ['-m', 'fluo_run.cli', "it's"] }), `'/a b/python' -m fluo_run.cli 'it'\\''s'`);
  });
});

group('what the server receives', () => {
  test('the section is shaped as fluo_lsp.settings reads it', () => {
    const s = settings({ attributeKeys: ['amount'], strictness: 'strict', debounceMs: 10 });
    assert.deepEqual(serverSettings(s), { attributeKeys: ['amount'], strictness: 'strict', diagnostics: { debounceMs: 10 } });
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
