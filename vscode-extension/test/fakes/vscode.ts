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
  /** Subscribe as VS Code's events do: `this` for the listener, and a list to add the subscription to. */
  readonly event = (listener: Listener<T>, thisArgs?: unknown, disposables?: Disposable[]): Disposable => {
    const bound: Listener<T> = thisArgs === undefined ? listener : listener.bind(thisArgs);
    this.listeners.push(bound);
    const subscription = new Disposable(() => {
      this.listeners = this.listeners.filter((l) => l !== bound);
    });
    disposables?.push(subscription);
    return subscription;
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
  constructor(start: Position, end: Position);
  constructor(startLine: number, startChar: number, endLine: number, endChar: number);
  constructor(a: Position | number, b: Position | number, c?: number, d?: number) {
    this.start = typeof a === 'number' ? new Position(a, b as number) : a;
    this.end = typeof a === 'number' ? new Position(c as number, d as number) : (b as Position);
  }
}

export enum DiagnosticSeverity {
  Error = 0,
  Warning = 1,
  Information = 2,
  Hint = 3,
}

export class Diagnostic {
  code?: unknown;
  source?: string;
  relatedInformation?: DiagnosticRelatedInformation[];
  tags?: number[];
  constructor(
    readonly range: Range,
    readonly message: string,
    readonly severity: DiagnosticSeverity = DiagnosticSeverity.Error,
  ) {}
}

export class DiagnosticRelatedInformation {
  constructor(
    readonly location: Location,
    readonly message: string,
  ) {}
}

/** A diagnostic collection; the test reads what was set per document. */
export class FakeDiagnosticCollection {
  readonly entries = new Map<string, Diagnostic[]>();
  readonly changed = new EventEmitter<string>();
  constructor(readonly name: string) {}
  set(uri: Uri, diagnostics: readonly Diagnostic[] | undefined): void {
    this.entries.set(uri.toString(), [...(diagnostics ?? [])]);
    void this.changed.fire(uri.toString());
  }
  get(uri: Uri): Diagnostic[] | undefined {
    return this.entries.get(uri.toString());
  }
  delete(uri: Uri): void {
    this.entries.delete(uri.toString());
  }
  clear(): void {
    this.entries.clear();
  }
  forEach(fn: (uri: Uri, diagnostics: Diagnostic[]) => void): void {
    for (const [uri, diagnostics] of this.entries) {
      fn(Uri.parse(uri), diagnostics);
    }
  }
  has(uri: Uri): boolean {
    return this.entries.has(uri.toString());
  }
  dispose(): void {
    this.entries.clear();
  }
}

/** An open text document, as much of one as the language client reads. */
export class FakeTextDocument {
  version = 1;
  isDirty = false;
  /** How many times the extension saved it. */
  saved = 0;
  readonly isUntitled = false;
  isClosed = false;
  readonly eol = 1;
  constructor(
    readonly uri: Uri,
    readonly languageId: string,
    private text: string,
  ) {}
  get fileName(): string {
    return this.uri.fsPath;
  }
  get lineCount(): number {
    return this.text.split('\n').length;
  }
  getText(): string {
    return this.text;
  }
  async save(): Promise<boolean> {
    this.saved++;
    this.isDirty = false;
    return true;
  }
  /** The whole text as a range, for a change that replaces it. */
  fullRange(): Range {
    const lines = this.text.split('\n');
    return new Range(0, 0, lines.length - 1, lines[lines.length - 1].length);
  }
  replace(text: string): { range: Range; rangeOffset: number; rangeLength: number; text: string } {
    const change = { range: this.fullRange(), rangeOffset: 0, rangeLength: this.text.length, text };
    this.text = text;
    this.version++;
    return change;
  }
}

/** What an editor tab shows; the language client pulls diagnostics only for documents in tabs. */
export class TabInputText {
  constructor(readonly uri: Uri) {}
}
export class TabInputTextDiff {}
export class TabInputCustom {}
export class TabInputNotebook {}

/** A glob as VS Code's document filters use them (`**` and `*` only). */
function globMatches(glob: string, file: string): boolean {
  const source = glob
    .split(/(\*\*\/|\*)/)
    .map((part) => (part === '**/' ? '(?:.*/)?' : part === '*' ? '[^/]*' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^(?:.*/)?${source}$`).test(file);
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

export enum LogLevel {
  Off = 0,
  Trace = 1,
  Debug = 2,
  Info = 3,
  Warning = 4,
  Error = 5,
}

export class FakeOutputChannel {
  readonly lines: string[] = [];
  shown = 0;
  disposed = false;
  /** A LogOutputChannel's level, Info as VS Code's default; `setLogLevel` changes it as the user would. */
  logLevel = LogLevel.Info;
  private readonly levelChanged = new EventEmitter<LogLevel>();
  readonly onDidChangeLogLevel = this.levelChanged.event;
  async setLogLevel(level: LogLevel): Promise<void> {
    this.logLevel = level;
    await this.levelChanged.fire(level);
  }
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
  documents: [] as FakeTextDocument[],
  diagnosticCollections: [] as FakeDiagnosticCollection[],
  /** Defaults of the contributed settings, as VS Code reads them from package.json. */
  defaults: new Map<string, unknown>(),
  opened: new EventEmitter<FakeTextDocument>(),
  tabsChanged: new EventEmitter<{ opened: unknown[]; closed: unknown[]; changed: unknown[] }>(),
  changedDocument: new EventEmitter<{ document: FakeTextDocument; contentChanges: unknown[]; reason: undefined }>(),
  closed: new EventEmitter<FakeTextDocument>(),
  statusMessages: [] as string[],
  workspaceFolders: [] as { uri: Uri; name: string; index: number }[],
  activeDocument: undefined as { uri: Uri; isDirty: boolean; saved: number; getText?(): string } | undefined,
  testsAvailable: true,
  configurationChanged: new EventEmitter<{ affectsConfiguration(section: string): boolean }>(),
  workspaceFoldersChanged: new EventEmitter<{ added: unknown[]; removed: unknown[] }>(),
  activeEditorChanged: new EventEmitter<unknown>(),
  /** Context keys the extension set with `setContext`. */
  contextKeys: new Map<string, unknown>(),
  /** `workspace.isTrusted`: false is Restricted Mode. Trusted unless a test says otherwise. */
  trusted: true,
  trustGranted: new EventEmitter<void>(),

  reset(): void {
    this.settings.clear();
    this.messages.length = 0;
    this.answers.length = 0;
    this.commands.clear();
    this.executed.length = 0;
    this.channels.length = 0;
    this.controllers.length = 0;
    this.watchers.length = 0;
    this.documents.length = 0;
    this.diagnosticCollections.length = 0;
    this.opened.dispose();
    this.tabsChanged.dispose();
    this.changedDocument.dispose();
    this.closed.dispose();
    this.statusMessages.length = 0;
    this.workspaceFolders.length = 0;
    this.activeDocument = undefined;
    this.testsAvailable = true;
    this.configurationChanged.dispose();
    this.workspaceFoldersChanged.dispose();
    this.activeEditorChanged.dispose();
    this.contextKeys.clear();
    this.trusted = true;
    this.trustGranted.dispose();
  },

  /** Trust the workspace as the user would ("Trust" in the Restricted Mode banner), and tell the extension. */
  async grantTrust(): Promise<void> {
    this.trusted = true;
    await this.trustGranted.fire();
  },

  /** Make `doc` the active editor's document, as the user would by switching tabs. */
  async activate(doc: FakeTextDocument | undefined): Promise<void> {
    this.activeDocument = doc;
    await this.activeEditorChanged.fire(window.activeTextEditor);
  },

  channel(name: string): FakeOutputChannel {
    const c = this.channels.find((ch) => ch.name === name);
    if (c === undefined) {
      throw new Error(`no output channel ${name}`);
    }
    return c;
  },

  /** Open a document as the user would. */
  async open(file: string, languageId: string, text: string): Promise<FakeTextDocument> {
    const doc = new FakeTextDocument(Uri.file(file), languageId, text);
    this.documents.push(doc);
    await this.opened.fire(doc);
    await this.tabsChanged.fire({ opened: [{ input: new TabInputText(doc.uri) }], closed: [], changed: [] });
    return doc;
  },

  /** Replace a document's text as the user would by typing. */
  async edit(doc: FakeTextDocument, text: string): Promise<void> {
    const change = doc.replace(text);
    await this.changedDocument.fire({ document: doc, contentChanges: [change], reason: undefined });
  },

  /** The diagnostics the editor shows for `file`, over every collection. */
  diagnosticsOf(file: string): Diagnostic[] {
    const uri = Uri.file(file).toString();
    return this.diagnosticCollections.flatMap((c) => c.entries.get(uri) ?? []);
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
  /** One tab per open document. */
  tabGroups: {
    get all(): { tabs: { input: TabInputText }[] }[] {
      return [{ tabs: editor.documents.map((d) => ({ input: new TabInputText(d.uri) })) }];
    },
    onDidChangeTabs(listener: Listener<{ opened: unknown[]; closed: unknown[]; changed: unknown[] }>, thisArgs?: unknown, disposables?: Disposable[]) {
      return editor.tabsChanged.event(listener, thisArgs, disposables);
    },
  },
  visibleTextEditors: [] as unknown[],
  get activeTextEditor(): { document: { uri: Uri; isDirty: boolean; getText(): string; save(): Promise<boolean> } } | undefined {
    const doc = editor.activeDocument;
    if (doc === undefined) {
      return undefined;
    }
    if (doc instanceof FakeTextDocument) {
      return { document: doc };
    }
    return {
      document: {
        uri: doc.uri,
        isDirty: doc.isDirty,
        getText: () => doc.getText?.() ?? fs.readFileSync(doc.uri.fsPath, 'utf8'),
        save: async () => {
          doc.saved++;
          doc.isDirty = false;
          return true;
        },
      },
    };
  },
  onDidChangeActiveTextEditor(listener: Listener<unknown>, thisArgs?: unknown, disposables?: Disposable[]): Disposable {
    return editor.activeEditorChanged.event(listener, thisArgs, disposables);
  },
};

export const workspace = {
  /** Settings as VS Code gives them: user values over package.json defaults; a section prefix gives a nested object. */
  getConfiguration(section?: string) {
    const value = (full: string): unknown => {
      if (editor.settings.has(full)) {
        return editor.settings.get(full);
      }
      if (editor.defaults.has(full)) {
        return editor.defaults.get(full);
      }
      let nested: Record<string, unknown> | undefined;
      for (const key of new Set([...editor.defaults.keys(), ...editor.settings.keys()])) {
        if (key.startsWith(full + '.')) {
          const path = key.slice(full.length + 1).split('.');
          nested ??= {};
          let at = nested;
          for (const part of path.slice(0, -1)) {
            at = (at[part] ??= {}) as Record<string, unknown>;
          }
          at[path[path.length - 1]] = value(key);
        }
      }
      return nested;
    };
    return {
      get<T>(key: string, fallback?: T): T | undefined {
        const found = value(section ? `${section}.${key}` : key);
        return found === undefined ? fallback : (found as T);
      },
      has(key: string): boolean {
        return value(section ? `${section}.${key}` : key) !== undefined;
      },
    };
  },
  get textDocuments(): FakeTextDocument[] {
    return editor.documents;
  },
  onDidOpenTextDocument(listener: Listener<FakeTextDocument>, thisArgs?: unknown, disposables?: Disposable[]): Disposable {
    return editor.opened.event(listener, thisArgs, disposables);
  },
  onDidChangeTextDocument(
    listener: Listener<{ document: FakeTextDocument; contentChanges: unknown[] }>,
    thisArgs?: unknown,
    disposables?: Disposable[],
  ): Disposable {
    return editor.changedDocument.event(listener, thisArgs, disposables);
  },
  onDidCloseTextDocument(listener: Listener<FakeTextDocument>, thisArgs?: unknown, disposables?: Disposable[]): Disposable {
    return editor.closed.event(listener, thisArgs, disposables);
  },
  onDidChangeConfiguration(
    listener: Listener<{ affectsConfiguration(section: string): boolean }>,
    thisArgs?: unknown,
    disposables?: Disposable[],
  ): Disposable {
    return editor.configurationChanged.event(listener, thisArgs, disposables);
  },
  onDidChangeWorkspaceFolders(
    listener: Listener<{ added: unknown[]; removed: unknown[] }>,
    thisArgs?: unknown,
    disposables?: Disposable[],
  ): Disposable {
    return editor.workspaceFoldersChanged.event(listener, thisArgs, disposables);
  },
  get isTrusted(): boolean {
    return editor.trusted;
  },
  onDidGrantWorkspaceTrust(listener: Listener<void>, thisArgs?: unknown, disposables?: Disposable[]): Disposable {
    return editor.trustGranted.event(listener, thisArgs, disposables);
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
  /** As VS Code: relative to the folder holding it, with the folder's name first when asked to and there are several. */
  asRelativePath(uri: Uri, includeWorkspaceFolder?: boolean): string {
    const folder = workspace.getWorkspaceFolder(uri);
    if (folder === undefined) {
      return uri.fsPath;
    }
    const rel = path.relative(folder.uri.fsPath, uri.fsPath);
    const withName = includeWorkspaceFolder ?? editor.workspaceFolders.length > 1;
    return withName && editor.workspaceFolders.length > 1 ? `${folder.name}/${rel}` : rel;
  },
  /**
   * As VS Code: the files below the workspace folders whose path relative to their folder matches `include` and not
   * `exclude` (globs with `**`, `*`, `?` and `{a,b}`), at most `maxResults` of them.
   */
  async findFiles(include: string, exclude?: string | null, maxResults?: number): Promise<Uri[]> {
    const wanted = globRegExp(include);
    const unwanted = typeof exclude === 'string' ? globRegExp(exclude) : undefined;
    const out: Uri[] = [];
    for (const f of editor.workspaceFolders) {
      for (const e of fs.readdirSync(f.uri.fsPath, { recursive: true, withFileTypes: true })) {
        const full = path.join(e.parentPath, e.name);
        const rel = path.relative(f.uri.fsPath, full).split(path.sep).join('/');
        if (e.isFile() && wanted.test(rel) && !unwanted?.test(rel) && out.length < (maxResults ?? Infinity)) {
          out.push(Uri.file(full));
        }
      }
    }
    return out;
  },
};

/** A glob as VS Code reads one, for a path relative to a workspace folder with `/` between its names. */
export function globRegExp(glob: string): RegExp {
  let source = '';
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (glob.startsWith('**/', i)) {
      source += '(?:.*/)?';
      i += 2;
    } else if (glob.startsWith('/**', i) && (i + 3 === glob.length || ',}'.includes(glob[i + 3]))) {
      source += '(?:/.*)?';
      i += 2;
    } else if (glob.startsWith('**', i)) {
      source += '.*';
      i += 1;
    } else if (c === '*') {
      source += '[^/]*';
    } else if (c === '?') {
      source += '[^/]';
    } else if (c === '{') {
      braces++;
      source += '(?:';
    } else if (c === '}' && braces > 0) {
      braces--;
      source += ')';
    } else if (c === ',' && braces > 0) {
      source += '|';
    } else {
      source += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${source}$`);
}

export const languages = {
  /** How well a document selector matches a document: 10 when one filter does, else 0. */
  match(selector: unknown, document: FakeTextDocument): number {
    const filters = Array.isArray(selector) ? selector : [selector];
    for (const f of filters) {
      if (typeof f === 'string' ? f === document.languageId : matchesFilter(f as DocumentFilter, document)) {
        return 10;
      }
    }
    return 0;
  },
  createDiagnosticCollection(name = ''): FakeDiagnosticCollection {
    const collection = new FakeDiagnosticCollection(name);
    editor.diagnosticCollections.push(collection);
    return collection;
  },
};

interface DocumentFilter {
  language?: string;
  scheme?: string;
  pattern?: string;
}

function matchesFilter(f: DocumentFilter, d: FakeTextDocument): boolean {
  return (
    (f.language === undefined || f.language === d.languageId) &&
    (f.scheme === undefined || f.scheme === d.uri.scheme) &&
    (f.pattern === undefined || globMatches(f.pattern, d.uri.fsPath))
  );
}

export const commands = {
  registerCommand(id: string, fn: (...args: unknown[]) => unknown): Disposable {
    if (editor.commands.has(id)) {
      throw new Error(`command ${id} registered twice`);
    }
    editor.commands.set(id, fn);
    return new Disposable(() => editor.commands.delete(id));
  },
  async executeCommand(id: string, ...args: unknown[]): Promise<unknown> {
    if (id === 'setContext') {
      editor.contextKeys.set(args[0] as string, args[1]);
      return undefined;
    }
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

/** Read the contributed settings' defaults from package.json, as VS Code does on install. */
function loadDefaults(): void {
  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as {
    contributes: { configuration: { properties: Record<string, { default: unknown }> } };
  };
  for (const [key, declared] of Object.entries(manifest.contributes.configuration.properties)) {
    editor.defaults.set(key, declared.default);
  }
}

loadDefaults();
