/**
 * A stand-in for the `vscode` module: the part of the editor API the extension
 * uses, recording what the extension asks of the editor so tests can check it.
 * `test/support/register.ts` makes `require('vscode')` return this module.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';

type Listener<T> = (value: T) => unknown;

/** The editor version: the lowest the extension declares (`engines.vscode`). */
export const version = '1.91.0';

export const env = { appName: 'Fake Code', language: 'en', machineId: 'test', sessionId: 'test', uriScheme: 'vscode' };

export class Disposable {
  constructor(private readonly onDispose: () => void = () => undefined) {}
  static from(...disposables: { dispose(): unknown }[]): Disposable {
    return new Disposable(() => disposables.forEach((d) => d.dispose()));
  }
  dispose(): void {
    this.onDispose();
  }
}

export class EventEmitter<T> {
  private listeners: Listener<T>[] = [];
  readonly event = (listener: Listener<T>): Disposable => {
    this.listeners.push(listener);
    return new Disposable(() => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    });
  };
  async fire(value: T): Promise<void> {
    for (const l of [...this.listeners]) {
      await l(value);
    }
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly fsPath: string,
  ) {}
  static file(p: string): Uri {
    return new Uri('file', path.resolve(p));
  }
  static parse(text: string): Uri {
    const m = /^([a-z]+):(.*)$/.exec(text);
    return m === null ? Uri.file(text) : new Uri(m[1], m[2].replace(/^\/\//, ''));
  }
  get path(): string {
    return this.fsPath;
  }
  toString(): string {
    return `${this.scheme}://${this.fsPath}`;
  }
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(startLine: number, startChar: number, endLine: number, endChar: number) {
    this.start = new Position(startLine, startChar);
    this.end = new Position(endLine, endChar);
  }
}

export class Location {
  constructor(
    readonly uri: Uri,
    readonly range: Position | Range,
  ) {}
}

export class TestMessage {
  location?: Location;
  expectedOutput?: string;
  actualOutput?: string;
  constructor(readonly message: string) {}
  static diff(message: string, expected: string, actual: string): TestMessage {
    const m = new TestMessage(message);
    m.expectedOutput = expected;
    m.actualOutput = actual;
    return m;
  }
}

export enum TestRunProfileKind {
  Run = 1,
  Debug = 2,
  Coverage = 3,
}

export enum ProgressLocation {
  SourceControl = 1,
  Window = 10,
  Notification = 15,
}

export enum ConfigurationTarget {
  Global = 1,
  Workspace = 2,
  WorkspaceFolder = 3,
}

export class TestRunRequest {
  constructor(
    readonly include?: readonly FakeTestItem[],
    readonly exclude?: readonly FakeTestItem[],
    readonly profile?: unknown,
  ) {}
}

export class CancellationTokenSource {
  private readonly emitter = new EventEmitter<void>();
  readonly token = {
    isCancellationRequested: false,
    onCancellationRequested: this.emitter.event,
  };
  cancel(): void {
    this.token.isCancellationRequested = true;
    void this.emitter.fire();
  }
  dispose(): void {
    this.emitter.dispose();
  }
}

export class FakeOutputChannel {
  readonly lines: string[] = [];
  shown = 0;
  disposed = false;
  /** A LogOutputChannel's level: 2 is Info. */
  readonly logLevel = 2;
  readonly onDidChangeLogLevel = new EventEmitter<number>().event;
  constructor(
    readonly name: string,
    readonly log: boolean,
  ) {}
  get text(): string {
    return this.lines.join('');
  }
  append(value: string): void {
    this.lines.push(value);
  }
  appendLine(value: string): void {
    this.lines.push(value + '\n');
  }
  info(message: string): void {
    this.appendLine(`[info] ${message}`);
  }
  warn(message: string): void {
    this.appendLine(`[warning] ${message}`);
  }
  error(message: string): void {
    this.appendLine(`[error] ${message}`);
  }
  debug(message: string): void {
    this.appendLine(`[debug] ${message}`);
  }
  trace(message: string): void {
    this.appendLine(`[trace] ${message}`);
  }
  show(): void {
    this.shown++;
  }
  hide(): void {}
  clear(): void {
    this.lines.length = 0;
  }
  replace(value: string): void {
    this.lines.length = 0;
    this.lines.push(value);
  }
  dispose(): void {
    this.disposed = true;
  }
}

export class FakeTestItemCollection {
  private readonly map = new Map<string, FakeTestItem>();
  constructor(private readonly owner?: FakeTestItem) {}
  get size(): number {
    return this.map.size;
  }
  add(item: FakeTestItem): void {
    item.parent = this.owner;
    this.map.set(item.id, item);
  }
  delete(id: string): void {
    this.map.delete(id);
  }
  get(id: string): FakeTestItem | undefined {
    return this.map.get(id);
  }
  replace(items: readonly FakeTestItem[]): void {
    this.map.clear();
    for (const i of items) {
      this.add(i);
    }
  }
  forEach(fn: (item: FakeTestItem) => unknown): void {
    for (const i of [...this.map.values()]) {
      fn(i);
    }
  }
  [Symbol.iterator](): Iterator<[string, FakeTestItem]> {
    return this.map.entries();
  }
  all(): FakeTestItem[] {
    return [...this.map.values()];
  }
}

export class FakeTestItem {
  parent: FakeTestItem | undefined;
  range: Range | undefined;
  readonly children: FakeTestItemCollection = new FakeTestItemCollection(this);
  constructor(
    readonly id: string,
    readonly label: string,
    readonly uri: Uri | undefined,
  ) {}
}

export type Outcome = 'enqueued' | 'started' | 'passed' | 'failed' | 'errored' | 'skipped';

export class FakeTestRun {
  readonly events: { outcome: Outcome; item: FakeTestItem; messages: TestMessage[] }[] = [];
  readonly output: string[] = [];
  ended = false;
  constructor(
    readonly request: TestRunRequest,
    readonly name: string | undefined,
  ) {}
  private record(outcome: Outcome, item: FakeTestItem, messages: TestMessage | TestMessage[] = []): void {
    if (this.ended) {
      throw new Error(`test run already ended: ${outcome} ${item.id}`);
    }
    this.events.push({ outcome, item, messages: Array.isArray(messages) ? messages : [messages] });
  }
  enqueued(item: FakeTestItem): void {
    this.record('enqueued', item);
  }
  started(item: FakeTestItem): void {
    this.record('started', item);
  }
  passed(item: FakeTestItem): void {
    this.record('passed', item);
  }
  failed(item: FakeTestItem, messages: TestMessage | TestMessage[]): void {
    this.record('failed', item, messages);
  }
  errored(item: FakeTestItem, messages: TestMessage | TestMessage[]): void {
    this.record('errored', item, messages);
  }
  skipped(item: FakeTestItem): void {
    this.record('skipped', item);
  }
  appendOutput(text: string): void {
    this.output.push(text);
  }
  end(): void {
    this.ended = true;
  }
  /** The last outcome other than enqueued/started reported for each item id. */
  results(): Map<string, { outcome: Outcome; messages: TestMessage[] }> {
    const out = new Map<string, { outcome: Outcome; messages: TestMessage[] }>();
    for (const e of this.events) {
      if (e.outcome !== 'enqueued' && e.outcome !== 'started') {
        out.set(e.item.id, { outcome: e.outcome, messages: e.messages });
      }
    }
    return out;
  }
}

export class FakeTestController {
  readonly items = new FakeTestItemCollection();
  readonly runs: FakeTestRun[] = [];
  readonly profiles: { label: string; kind: TestRunProfileKind; handler: (r: TestRunRequest, t: unknown) => unknown }[] = [];
  resolveHandler: ((item: FakeTestItem | undefined) => unknown) | undefined;
  refreshHandler: (() => unknown) | undefined;
  disposed = false;
  constructor(
    readonly id: string,
    readonly label: string,
  ) {}
  createTestItem(id: string, label: string, uri?: Uri): FakeTestItem {
    return new FakeTestItem(id, label, uri);
  }
  createRunProfile(
    label: string,
    kind: TestRunProfileKind,
    handler: (r: TestRunRequest, t: unknown) => unknown,
    _isDefault?: boolean,
  ): Disposable {
    this.profiles.push({ label, kind, handler });
    return new Disposable();
  }
  createTestRun(request: TestRunRequest, name?: string): FakeTestRun {
    const run = new FakeTestRun(request, name);
    this.runs.push(run);
    return run;
  }
  dispose(): void {
    this.disposed = true;
  }
}

/** A file watcher whose events the test fires. */
export class FakeWatcher {
  readonly created = new EventEmitter<Uri>();
  readonly changed = new EventEmitter<Uri>();
  readonly deleted = new EventEmitter<Uri>();
  readonly onDidCreate = this.created.event;
  readonly onDidChange = this.changed.event;
  readonly onDidDelete = this.deleted.event;
  disposed = false;
  constructor(readonly pattern: string) {}
  dispose(): void {
    this.disposed = true;
  }
}

export interface ShownMessage {
  level: 'info' | 'warning' | 'error';
  text: string;
  actions: string[];
}

/** What the editor did and what the user will answer: the tests' handle on this fake. */
export const editor = {
  settings: new Map<string, unknown>(),
  messages: [] as ShownMessage[],
  /** The button the user clicks on the next message, if any. */
  answers: [] as (string | undefined)[],
  commands: new Map<string, (...args: unknown[]) => unknown>(),
  executed: [] as { command: string; args: unknown[] }[],
  channels: [] as FakeOutputChannel[],
  controllers: [] as FakeTestController[],
  watchers: [] as FakeWatcher[],
  statusMessages: [] as string[],
  workspaceFolders: [] as { uri: Uri; name: string; index: number }[],
  activeDocument: undefined as { uri: Uri; isDirty: boolean; saved: number } | undefined,
  testsAvailable: true,
  configurationChanged: new EventEmitter<{ affectsConfiguration(section: string): boolean }>(),

  reset(): void {
    this.settings.clear();
    this.messages.length = 0;
    this.answers.length = 0;
    this.commands.clear();
    this.executed.length = 0;
    this.channels.length = 0;
    this.controllers.length = 0;
    this.watchers.length = 0;
    this.statusMessages.length = 0;
    this.workspaceFolders.length = 0;
    this.activeDocument = undefined;
    this.testsAvailable = true;
    this.configurationChanged.dispose();
  },

  channel(name: string): FakeOutputChannel {
    const c = this.channels.find((ch) => ch.name === name);
    if (c === undefined) {
      throw new Error(`no output channel ${name}`);
    }
    return c;
  },

  /** Change settings as the user would, and tell the extension. */
  async configure(values: Record<string, unknown>): Promise<void> {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) {
        this.settings.delete(k);
      } else {
        this.settings.set(k, v);
      }
    }
    const changed = Object.keys(values);
    await this.configurationChanged.fire({
      affectsConfiguration: (section: string) => changed.some((k) => k === section || k.startsWith(section + '.')),
    });
  },
};

function show(level: ShownMessage['level']) {
  return (text: string, ...actions: unknown[]): Promise<string | undefined> => {
    const names = actions.filter((a): a is string => typeof a === 'string');
    editor.messages.push({ level, text, actions: names });
    return Promise.resolve(editor.answers.shift());
  };
}

export const window = {
  createOutputChannel(name: string, options?: { log: true } | string): FakeOutputChannel {
    const channel = new FakeOutputChannel(name, typeof options === 'object' && options.log);
    editor.channels.push(channel);
    return channel;
  },
  showInformationMessage: show('info'),
  showWarningMessage: show('warning'),
  showErrorMessage: show('error'),
  setStatusBarMessage(text: string): Disposable {
    editor.statusMessages.push(text);
    return new Disposable();
  },
  async withProgress<R>(
    _options: unknown,
    task: (progress: { report(v: unknown): void }, token: CancellationTokenSource['token']) => Promise<R>,
  ): Promise<R> {
    const source = new CancellationTokenSource();
    return task({ report: () => undefined }, source.token);
  },
  get activeTextEditor(): { document: { uri: Uri; isDirty: boolean; save(): Promise<boolean> } } | undefined {
    const doc = editor.activeDocument;
    if (doc === undefined) {
      return undefined;
    }
    return {
      document: {
        uri: doc.uri,
        isDirty: doc.isDirty,
        save: async () => {
          doc.saved++;
          doc.isDirty = false;
          return true;
        },
      },
    };
  },
};

export const workspace = {
  getConfiguration(section: string) {
    return {
      get<T>(key: string, fallback?: T): T | undefined {
        const full = `${section}.${key}`;
        return editor.settings.has(full) ? (editor.settings.get(full) as T) : fallback;
      },
    };
  },
  onDidChangeConfiguration(listener: Listener<{ affectsConfiguration(section: string): boolean }>): Disposable {
    return editor.configurationChanged.event(listener);
  },
  createFileSystemWatcher(pattern: string): FakeWatcher {
    const watcher = new FakeWatcher(pattern);
    editor.watchers.push(watcher);
    return watcher;
  },
  get workspaceFolders() {
    return editor.workspaceFolders.length > 0 ? editor.workspaceFolders : undefined;
  },
  getWorkspaceFolder(uri: Uri) {
    return editor.workspaceFolders.find((f) => uri.fsPath === f.uri.fsPath || uri.fsPath.startsWith(f.uri.fsPath + path.sep));
  },
  asRelativePath(uri: Uri): string {
    const folder = workspace.getWorkspaceFolder(uri);
    return folder === undefined ? uri.fsPath : path.relative(folder.uri.fsPath, uri.fsPath);
  },
  /** Supports the one glob the extension uses: test files by suffix. */
  async findFiles(glob: string): Promise<Uri[]> {
    if (glob !== '**/{*_test.yaml,*.fluotest.yaml}') {
      throw new Error(`fake findFiles does not know ${glob}`);
    }
    const out: Uri[] = [];
    for (const f of editor.workspaceFolders) {
      for (const e of fs.readdirSync(f.uri.fsPath, { recursive: true, withFileTypes: true })) {
        if (e.isFile() && (e.name.endsWith('_test.yaml') || e.name.endsWith('.fluotest.yaml'))) {
          out.push(Uri.file(path.join(e.parentPath, e.name)));
        }
      }
    }
    return out;
  },
};

export const commands = {
  registerCommand(id: string, fn: (...args: unknown[]) => unknown): Disposable {
    if (editor.commands.has(id)) {
      throw new Error(`command ${id} registered twice`);
    }
    editor.commands.set(id, fn);
    return new Disposable(() => editor.commands.delete(id));
  },
  async executeCommand(id: string, ...args: unknown[]): Promise<unknown> {
    editor.executed.push({ command: id, args });
    const fn = editor.commands.get(id);
    return fn === undefined ? undefined : fn(...args);
  },
};

export const tests = {
  get createTestController(): ((id: string, label: string) => FakeTestController) | undefined {
    if (!editor.testsAvailable) {
      return undefined;
    }
    return (id: string, label: string) => {
      const c = new FakeTestController(id, label);
      editor.controllers.push(c);
      return c;
    };
  },
};

/** An extension context whose subscriptions the test disposes, as VS Code does on deactivation. */
export function extensionContext(): { subscriptions: { dispose(): unknown }[]; dispose(): void } {
  const subscriptions: { dispose(): unknown }[] = [];
  return {
    subscriptions,
    dispose(): void {
      for (const s of subscriptions.splice(0)) {
        s.dispose();
      }
    },
  };
}
