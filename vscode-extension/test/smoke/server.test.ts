/**
 * Node drives the real Python language server over stdio, started the way the
 * extension starts it (same command, same initialization options, settings
 * changes in the shape vscode-languageclient sends for the section `fluo`):
 * initialize, diagnostics for a broken rule file, completion, a settings
 * change, shutdown and exit. Every wait is bounded.
 */

import * as assert from 'node:assert/strict';
import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe as group, test } from 'node:test';

import { type MessageConnection, StreamMessageReader, StreamMessageWriter, createMessageConnection } from 'vscode-jsonrpc/node';

import { findExecutable } from '../../src/process';
import { type Command, DEFAULTS, type Settings, serverCommand, serverSettings } from '../../src/settings';
import { PYTHON, envWithFluoOnPath, tempFolder } from '../support/paths';

const START_MS = 30_000;
const REPLY_MS = 15_000;

interface Diagnostic {
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  severity: number;
  code?: string | number;
  message: string;
}

interface CompletionItem {
  label: string;
}

function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A server process and a JSON-RPC connection to it, as the editor has. */
class Session {
  readonly connection: MessageConnection;
  readonly stderr: string[] = [];
  private readonly diagnostics = new Map<string, Diagnostic[][]>();
  private readonly waiting: { uri: string; accept: (d: Diagnostic[]) => boolean; resolve: (d: Diagnostic[]) => void }[] = [];
  readonly exited: Promise<number | null>;

  constructor(
    readonly command: Command,
    cwd: string,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    const child = cp.spawn(command.command, [...command.args], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    child.on('error', (error) => this.stderr.push(`could not start ${command.command}: ${error.message}`));
    child.stderr.on('data', (chunk: Buffer) => this.stderr.push(chunk.toString('utf8')));
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    this.kill = () => child.kill();
    this.connection = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
    this.connection.onNotification('textDocument/publishDiagnostics', (p: { uri: string; diagnostics: Diagnostic[] }) => {
      this.diagnostics.set(p.uri, [...(this.diagnostics.get(p.uri) ?? []), p.diagnostics]);
      for (const w of this.waiting.filter((w) => w.uri === p.uri && w.accept(p.diagnostics))) {
        this.waiting.splice(this.waiting.indexOf(w), 1);
        w.resolve(p.diagnostics);
      }
    });
    this.connection.onRequest('client/registerCapability', () => null);
    this.connection.onRequest('window/workDoneProgress/create', () => null);
    this.connection.onRequest('workspace/configuration', (p: { items: { section?: string }[] }) => p.items.map(() => null));
    this.connection.listen();
  }

  readonly kill: () => void;

  /** The next diagnostics published for `uri` that `accept` likes. */
  diagnosticsFor(uri: string, accept: (d: Diagnostic[]) => boolean = () => true): Promise<Diagnostic[]> {
    return within(
      REPLY_MS,
      `diagnostics for ${path.basename(uri)}`,
      new Promise((resolve) => this.waiting.push({ uri, accept, resolve })),
    );
  }

  async initialize(settings: Settings, folder: string): Promise<{ capabilities: Record<string, unknown>; serverInfo?: { name: string } }> {
    const uri = pathToFileURL(folder).href;
    const result = await within(
      START_MS,
      `initialize reply from ${this.command.command} (stderr: ${this.stderr.join('')})`,
      this.connection.sendRequest<{ capabilities: Record<string, unknown>; serverInfo?: { name: string } }>('initialize', {
        processId: process.pid,
        clientInfo: { name: 'fluo-vscode-smoke-test' },
        rootUri: uri,
        workspaceFolders: [{ uri, name: path.basename(folder) }],
        capabilities: {
          textDocument: {
            synchronization: { didSave: true },
            publishDiagnostics: { relatedInformation: true },
            completion: { completionItem: { snippetSupport: true } },
          },
          workspace: { configuration: true, didChangeConfiguration: { dynamicRegistration: true } },
        },
        initializationOptions: serverSettings(settings),
      }),
    );
    await this.connection.sendNotification('initialized', {});
    return result;
  }

  async open(uri: string, text: string): Promise<void> {
    await this.connection.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'fluo', version: 1, text } });
  }

  async complete(uri: string, line: number, character: number): Promise<string[]> {
    const result = await within(
      REPLY_MS,
      'completion reply',
      this.connection.sendRequest<{ items: CompletionItem[] } | CompletionItem[] | null>('textDocument/completion', {
        textDocument: { uri },
        position: { line, character },
      }),
    );
    const items = result === null ? [] : Array.isArray(result) ? result : result.items;
    return items.map((i) => i.label);
  }

  /** What vscode-languageclient sends when a setting in the section `fluo` changes. */
  async configure(settings: Settings): Promise<void> {
    await this.connection.sendNotification('workspace/didChangeConfiguration', {
      settings: { fluo: { ...serverSettings(settings), server: { command: settings.serverCommand, pythonPath: settings.pythonPath } } },
    });
  }

  async shutdown(): Promise<number | null> {
    const reply = await within(REPLY_MS, 'shutdown reply', this.connection.sendRequest('shutdown'));
    assert.equal(reply, null);
    await this.connection.sendNotification('exit');
    const code = await within(REPLY_MS, 'server exit after `exit`', this.exited);
    this.connection.dispose();
    return code;
  }
}

/** Line and character of the `n`th occurrence of `needle` in `text`. */
function positionOf(text: string, needle: string, after = 0): { line: number; character: number } {
  const offset = text.indexOf(needle) + after;
  assert.ok(offset >= after, `${needle} not in text`);
  const before = text.slice(0, offset).split('\n');
  return { line: before.length - 1, character: before[before.length - 1].length };
}

const BROKEN = `// two mistakes in one rule, one in another
rule auth_retry_storm {
  severity: critical
  detect trace.spans.whree(service == 'auth').count() > 50
}

rule typo_in_name {
  severity: warning
  expect trace.spans.where(servce == 'auth').count() <= 5
}
`;

const COMPLETE = `rule r {
  expect trace.spans.where(http.route == "/x").count() < 3
}
`;

group('the language server over stdio, started as the extension starts it', () => {
  const settings: Settings = { ...DEFAULTS, pythonPath: PYTHON, attributeKeys: ['checkout.cart_id'] };
  let work: ReturnType<typeof tempFolder>;
  let session: Session;
  let brokenUri: string;

  before(async () => {
    work = tempFolder('fluo-smoke-');
    brokenUri = pathToFileURL(path.join(work.dir, 'broken.fluo')).href;
    fs.writeFileSync(path.join(work.dir, 'broken.fluo'), BROKEN);
    session = new Session(serverCommand(settings), work.dir);
  });

  after(() => {
    session.kill();
    work.remove();
  });

  test('initialize: the server says who it is and what it offers', async () => {
    const result = await session.initialize(settings, work.dir);
    assert.equal(result.serverInfo?.name, 'fluo');
    for (const capability of ['textDocumentSync', 'completionProvider', 'hoverProvider', 'documentFormattingProvider']) {
      assert.ok(result.capabilities[capability], `no ${capability}`);
    }
  });

  test('opening a broken rule file publishes every diagnostic with its range and code', async () => {
    const published = session.diagnosticsFor(brokenUri, (d) => d.length > 0);
    await session.open(brokenUri, BROKEN);
    const diagnostics = await published;
    const typo = diagnostics.find((d) => /whree/.test(d.message));
    assert.ok(typo, JSON.stringify(diagnostics));
    assert.equal(typo.severity, 1);
    assert.match(typo.message, /did you mean `where`/);
    assert.match(String(typo.code), /^FLUO\d+$/);
    assert.deepEqual(typo.range.start, positionOf(BROKEN, 'whree'));
    const servce = diagnostics.find((d) => /servce/.test(d.message));
    assert.ok(servce, 'the second rule is checked too');
    assert.equal(servce.severity, 2);
    assert.deepEqual(servce.range.start, positionOf(BROKEN, 'servce'));
  });

  test('completion after a dot offers the registry methods; in a predicate the configured attribute keys', async () => {
    const uri = pathToFileURL(path.join(work.dir, 'complete.fluo')).href;
    await session.open(uri, COMPLETE);
    const methods = await session.complete(uri, 1, '  expect trace.spans.'.length);
    for (const m of ['where', 'count', 'exists', 'all']) {
      assert.ok(methods.includes(m), `${m} not in ${methods.join(', ')}`);
    }
    const inPredicate = positionOf(COMPLETE, 'http.route');
    const names = await session.complete(uri, inPredicate.line, inPredicate.character);
    assert.ok(names.includes('checkout.cart_id'), `configured key not in ${names.join(', ')}`);
    assert.ok(names.includes('service'), 'intrinsics are offered in a predicate');
  });

  test('where a rule may start: the keyword, and no server skeleton beside the extension snippets', async () => {
    const uri = pathToFileURL(path.join(work.dir, 'top.fluo')).href;
    await session.open(uri, 'rule a {\n  expect true\n}\n\n');
    const labels = await session.complete(uri, 4, 0);
    assert.ok(labels.includes('rule'), labels.join(', '));
    assert.deepEqual(
      labels.filter((l) => l.startsWith('rule (')),
      [],
      'the templates come from snippets/fluo.code-snippets only',
    );
  });

  test('a settings change in the shape the client sends takes effect: new keys, strictness', async () => {
    const strict: Settings = { ...settings, attributeKeys: ['payment.amount_cents'], strictness: 'strict' };
    const republished = session.diagnosticsFor(brokenUri, (d) => d.some((x) => /servce/.test(x.message) && x.severity === 1));
    await session.configure(strict);
    await republished;
    const uri = pathToFileURL(path.join(work.dir, 'complete.fluo')).href;
    const at = positionOf(COMPLETE, 'http.route');
    const names = await session.complete(uri, at.line, at.character);
    assert.ok(names.includes('payment.amount_cents'), names.join(', '));
    assert.ok(!names.includes('checkout.cart_id'), 'the old configured key is gone');
  });

  test('shutdown, then exit: the server process ends with status 0', async () => {
    assert.equal(await session.shutdown(), 0);
  });
});

test('the default command, `fluo lsp` found on PATH, starts and stops cleanly', async () => {
  // The `fluo` of $FLUO_PYTHON's environment, as a user who activated it has on PATH.
  const env = envWithFluoOnPath();
  const fluo = findExecutable('fluo', env);
  assert.ok(fluo, `${PYTHON} has no \`fluo\` script: install the project there (pip install -e .) before these tests`);
  assert.equal(path.dirname(fluo), env.PATH?.split(path.delimiter)[0], 'the fluo of $FLUO_PYTHON, not another on PATH');
  const work = tempFolder('fluo-smoke-');
  const session = new Session(serverCommand(DEFAULTS), work.dir, env);
  try {
    const result = await session.initialize(DEFAULTS, work.dir);
    assert.equal(result.serverInfo?.name, 'fluo');
    assert.equal(await session.shutdown(), 0);
  } finally {
    session.kill();
    work.remove();
  }
});
