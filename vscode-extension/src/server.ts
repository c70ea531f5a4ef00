/**
 * The FLUO language server as the editor sees it: started from the settings,
 * restarted when it crashes, and given up on (with a message saying what to
 * check) when it keeps crashing.
 */

import type { ChildProcess } from 'node:child_process';
import * as readline from 'node:readline';
import * as vscode from 'vscode';
import {
  CloseAction,
  type CloseHandlerResult,
  ErrorAction,
  type ErrorHandler,
  type ErrorHandlerResult,
  type Executable,
  LanguageClient,
  type LanguageClientOptions,
  type MessageTransports,
  RevealOutputChannelOn,
  State,
  TransportKind,
  type vsdiag,
} from 'vscode-languageclient/node';

import { ServerProcess, findExecutable, isPath, spokeLsp, whyNoAnswer, whyNotExecutable } from './process';
import { RestartPolicy } from './restarts';
import { StderrTail } from './stderr';
import {
  type Command,
  INSTALL,
  SECTION,
  type Settings,
  describe,
  launchSetting,
  notInstalled,
  serverCommand,
  serverSettings,
} from './settings';
import {
  MANAGE_TRUST,
  MANAGE_TRUST_COMMAND,
  UNTRUSTED_CWD,
  UNTRUSTED_ENV,
  restrictedMessage,
  untrustedProgram,
  workspaceTrust,
} from './trust';

export const CLIENT_ID = 'fluo';
export const CLIENT_NAME = 'FLUO Language Server';

/** Rule files, and rule test files (the server checks their rule ids and fixtures). */
export const DOCUMENT_SELECTOR = [
  { scheme: 'file', language: 'fluo' },
  { scheme: 'untitled', language: 'fluo' },
  { scheme: 'file', pattern: '**/*_test.yaml' },
  { scheme: 'file', pattern: '**/*.fluotest.yaml' },
];

/** Connection errors in a row before the client gives up on a server that still runs. */
const MAX_CONNECTION_ERRORS = 3;
/** How long a server may take to answer `initialize` before the user hears of it. */
export const SLOW_START_MS = 30_000;
/** How long to wait for a dead server's last words on stderr. */
const LAST_WORDS_MS = 2_000;

/**
 * The command line the server really runs with: vscode-languageclient appends `--stdio` to the arguments of a
 * stdio server, so messages show it too (a user who pastes it into a terminal runs what the editor ran).
 */
export function launchCommand(settings: Settings): Command {
  const { command, args } = serverCommand(settings);
  return { command, args: [...args, '--stdio'] };
}

/**
 * How the client starts the server. `untrusted` is the absolute path of the program while the workspace is
 * untrusted: it then runs from the extension's folder, not the workspace, with `PYTHONSAFEPATH=1` (see `trust.ts`).
 */
export function executable(settings: Settings, untrusted?: { program: string }): Executable {
  const { command, args } = serverCommand(settings);
  if (untrusted !== undefined) {
    return {
      command: untrusted.program,
      args: [...args],
      transport: TransportKind.stdio,
      options: { cwd: UNTRUSTED_CWD, env: { ...process.env, PYTHONUNBUFFERED: '1', ...UNTRUSTED_ENV } },
    };
  }
  return {
    command,
    args: [...args],
    transport: TransportKind.stdio,
    options: { env: { ...process.env, PYTHONUNBUFFERED: '1' } },
  };
}

/**
 * The channel the client writes the LSP traffic to, so that `fluo.trace.server` works as it says.
 *
 * vscode-languageclient 11 traces only while its trace channel's log level is Trace (and then `trace.server`
 * "off" still means "messages"), and writes the trace at that level, so the setting alone did nothing at the
 * default Info level. This channel is the server's output channel, except that it reports the Trace level while
 * `fluo.trace.server` is "messages" or "verbose" (and tells the client when that changes), and writes the trace as
 * plain lines, shown at the channel's default level. Setting the output channel's own level to Trace still traces
 * as before.
 */
export class TraceChannel implements vscode.Disposable {
  readonly channel: vscode.LogOutputChannel;
  private readonly changed = new vscode.EventEmitter<vscode.LogLevel>();
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(
    output: vscode.LogOutputChannel,
    private readonly setting: () => string = () => vscode.workspace.getConfiguration(SECTION).get<string>('trace.server') ?? 'off',
  ) {
    const level = (): vscode.LogLevel => (this.tracing() ? vscode.LogLevel.Trace : output.logLevel);
    const write = (message: string): void => {
      if (output.logLevel === vscode.LogLevel.Trace) {
        output.trace(message);
      } else {
        output.appendLine(message);
      }
    };
    this.channel = {
      get name() {
        return output.name;
      },
      get logLevel() {
        return level();
      },
      onDidChangeLogLevel: this.changed.event,
      trace: write,
      debug: (message: string, ...args: unknown[]) => output.debug(message, ...args),
      info: (message: string, ...args: unknown[]) => output.info(message, ...args),
      warn: (message: string, ...args: unknown[]) => output.warn(message, ...args),
      error: (error: string | Error, ...args: unknown[]) => output.error(error, ...args),
      append: (value: string) => output.append(value),
      appendLine: (value: string) => output.appendLine(value),
      replace: (value: string) => output.replace(value),
      clear: () => output.clear(),
      show: (preserveFocus?: boolean) => output.show(preserveFocus),
      hide: () => output.hide(),
      dispose: () => undefined, // the output channel belongs to the extension
    } as vscode.LogOutputChannel;
    this.subscriptions.push(
      this.changed,
      output.onDidChangeLogLevel(() => this.changed.fire(level())),
      vscode.workspace.onDidChangeConfiguration((event) => {
        if (event.affectsConfiguration(`${SECTION}.trace.server`)) {
          this.changed.fire(level());
        }
      }),
    );
  }

  /** `fluo.trace.server` asks for the traffic. */
  tracing(): boolean {
    const value = this.setting();
    return value === 'messages' || value === 'verbose';
  }

  dispose(): void {
    for (const s of this.subscriptions.splice(0)) {
      s.dispose();
    }
  }
}

export function clientOptions(
  settings: () => Settings,
  output: vscode.LogOutputChannel,
  errorHandler: ErrorHandler,
  stderr: StderrTail,
  trace?: vscode.LogOutputChannel,
): LanguageClientOptions {
  return {
    stdioOptions: {
      // Used only by transports other than stdio, where stdout is free for logs.
      stdout: (input) => readline.createInterface({ input, crlfDelay: Infinity }).on('line', (line) => output.info(line)),
      stderr: (input) => stderr.follow(input, output),
    },
    documentSelector: DOCUMENT_SELECTOR,
    synchronize: { configurationSection: SECTION },
    initializationOptions: () => serverSettings(settings()),
    middleware: {
      // The server pushes diagnostics (after the debounce, and again when settings or other files change). Today's
      // `fluo` offers no pull, but an older installed one still advertises it: its pulled diagnostics would land in
      // a second collection, show every problem twice and, since the client pulls only on open, go stale. Any pull
      // is answered empty here, so the editor keeps the pushed ones whatever `fluo` the extension runs.
      provideDiagnostics: () => NO_PULLED_DIAGNOSTICS,
    },
    outputChannel: output,
    traceOutputChannel: trace,
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    errorHandler,
    // A failed `initialize` is reported once, by `LanguageServer.start()`; without this the client also shows
    // the bare error ("Pending response rejected since connection got disposed") in a pop-up of its own.
    initializationFailedHandler: () => false,
  };
}

/** The answer to every diagnostic pull (only an older `fluo` offers one): diagnostics arrive pushed. */
export const NO_PULLED_DIAGNOSTICS: vsdiag.FullDocumentDiagnosticReport = {
  kind: 'full' as vsdiag.DocumentDiagnosticReportKind.full,
  items: [],
};

/**
 * The language client, except that it never shows a notification itself: what it logs still goes to the output
 * channel, and the errors it would force on the user (such as "couldn't create connection to server", shown on
 * every failed start however the client is configured) go to `onForcedError`, so the extension says it once.
 */
/** How vscode-languageclient's error begins when asked to stop a client that never ran. */
const NOT_RUNNING = "Client is not running and can't be stopped";

export class FluoLanguageClient extends LanguageClient {
  onForcedError: ((message: string, data: unknown) => void) | undefined;
  /** Told of each server process the client starts, and given its stdout alongside the client's LSP reader. */
  onServerProcess: ((child: ChildProcess) => ServerProcess) | undefined;

  override error(message: string, data?: unknown, showNotification: boolean | 'force' = true): void {
    if (message === 'Stopping server failed' && data instanceof Error && data.message.startsWith(NOT_RUNNING)) {
      // After a failed `initialize` the client stops itself while still starting, which cannot succeed, and logs
      // that with a stack trace; `LanguageServer.start()` reports the failure itself.
      return;
    }
    super.error(message, data, false);
    if (showNotification === 'force') {
      this.onForcedError?.(message, data);
    }
  }

  protected override async createMessageTransports(encoding: string): Promise<MessageTransports> {
    const transports = await super.createMessageTransports(encoding);
    const child = this.serverProcess;
    const watch = child !== undefined ? this.onServerProcess?.(child) : undefined;
    if (child?.stdout != null && watch !== undefined) {
      // Read stdout from the moment the client does, not before: a listener added earlier would start the stream
      // flowing while the LSP reader is not yet listening, and the reader would miss what it sent.
      const reader = transports.reader;
      const listen = reader.listen.bind(reader);
      reader.listen = (callback) => {
        const listening = listen(callback);
        child.stdout?.on('data', watch.record);
        return listening;
      };
    }
    return transports;
  }
}

/** `restricted`: not started because the workspace is untrusted and the settings name a program inside it. */
export type ServerState = 'stopped' | 'starting' | 'running' | 'failed' | 'restricted';

/** One client and its server processes, as its handlers see them. */
interface Session {
  /** The first `initialize` was answered; until then `start()` reports failures. */
  initialized: boolean;
  /** `stop()` was asked for: a close is expected, not a crash. */
  retired: boolean;
  /** A restart after a crash failed and the user was told (the client reports such a failure twice). */
  restartFailed: boolean;
}

export class LanguageServer implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private session: Session | undefined;
  private state: ServerState = 'stopped';
  private readonly stderr = new StderrTail();
  /** The latest server process the client started. */
  private process: ServerProcess | undefined;
  private trace: TraceChannel | undefined;

  constructor(
    private readonly settings: () => Settings,
    readonly output: vscode.LogOutputChannel,
    readonly policy = new RestartPolicy(),
  ) {}

  get status(): ServerState {
    return this.state;
  }

  get languageClient(): LanguageClient | undefined {
    return this.client;
  }

  /** Start the server; on failure tell the user why and what to change (never throws). */
  async start(): Promise<boolean> {
    if (this.client !== undefined) {
      return this.state === 'running';
    }
    const settings = this.settings();
    const command = launchCommand(settings);
    const trust = workspaceTrust();
    if (!trust.trusted && settings.restricted !== undefined) {
      this.restricted(settings.restricted);
      return false;
    }
    const found = findExecutable(command.command);
    if (found === undefined) {
      this.state = 'failed';
      this.report(notFound(command, settings), 'error');
      return false;
    }
    let untrusted: { program: string } | undefined;
    if (!trust.trusted) {
      const checked = untrustedProgram(found, trust.folders, launchSetting(settings));
      if ('blocked' in checked) {
        this.restricted(checked.blocked);
        return false;
      }
      untrusted = checked;
      this.output.info(
        `The workspace is not trusted: the server runs as ${checked.program}, from ${UNTRUSTED_CWD} rather than the workspace.`,
      );
    }
    this.output.info(`Starting ${describe(command)}`);
    const session: Session = { initialized: false, retired: false, restartFailed: false };
    let client: FluoLanguageClient;
    try {
      client = new FluoLanguageClient(
        CLIENT_ID,
        CLIENT_NAME,
        executable(settings, untrusted),
        clientOptions(this.settings, this.output, this.errorHandler(session), this.stderr, this.traceChannel()),
      );
    } catch (error) {
      this.state = 'failed';
      this.report(`FLUO: the language client could not be created: ${reason(error)}.`, 'error');
      return false;
    }
    this.client = client;
    this.session = session;
    this.state = 'starting';
    client.onForcedError = (message, data) => void this.forcedError(client, session, message, data);
    client.onServerProcess = (child) => (this.process = new ServerProcess(child));
    client.onDidChangeState((event) => {
      if (this.client !== client) {
        return;
      }
      if (event.newState === State.Running) {
        this.state = 'running';
      } else if (event.newState === State.Stopped && this.state === 'running' && !session.retired) {
        // Stopped by the client itself after repeated connection errors (a crash goes through `closed()`).
        this.state = 'failed';
        this.report(
          'FLUO: the connection to the language server kept failing, so it was stopped. ' +
            'The server output has the errors; run "FLUO: Restart Language Server" to start it again.',
          'error',
        );
      }
    });
    const slow = setTimeout(() => {
      if (this.client === client && this.state === 'starting') {
        this.report(
          `FLUO: the language server (${describe(command)}) has not answered for ${SLOW_START_MS / 1000} s; ` +
            'its output may say why.',
          'warning',
        );
      }
    }, SLOW_START_MS);
    try {
      await client.start();
      session.initialized = true;
      this.process?.stopRecording();
    } catch (error) {
      if (this.client === client) {
        this.state = 'failed';
        this.client = undefined;
        const [said, exit] = await Promise.all([this.stderr.lastLine(LAST_WORDS_MS), this.process?.exit(LAST_WORDS_MS)]);
        if (exit !== undefined && exit.stdout.trim() !== '' && !spokeLsp(exit.stdout)) {
          this.output.error(`It printed on stdout before it exited:\n${exit.stdout.replace(/\s+$/, '')}`);
        }
        this.report(
          `FLUO: the language server did not start (${describe(command)}): ` +
            whyNoAnswer(exit, said, reason(error)) +
            '. ' +
            (notInstalled(said ?? '', settings) ?? 'Check fluo.server.command or fluo.server.pythonPath; the server output has the details.'),
          'error',
        );
        await client.dispose().catch(() => undefined);
      }
      return false;
    } finally {
      clearTimeout(slow);
    }
    if (this.client === client) {
      this.state = 'running';
      this.output.info('The language server is running.');
    }
    return this.state === 'running';
  }

  async stop(): Promise<void> {
    const client = this.client;
    if (this.session !== undefined) {
      this.session.retired = true;
    }
    this.client = undefined;
    this.session = undefined;
    this.state = 'stopped';
    if (client === undefined) {
      return;
    }
    try {
      await client.stop(2000);
    } catch (error) {
      this.output.warn(`Stopping the language server: ${reason(error)}`);
    } finally {
      await client.dispose().catch(() => undefined);
    }
  }

  /** Stop and start again with the current settings, forgetting earlier crashes. */
  async restart(): Promise<boolean> {
    this.policy.reset();
    await this.stop();
    return this.start();
  }

  dispose(): void {
    void this.stop();
    this.trace?.dispose();
  }

  private traceChannel(): vscode.LogOutputChannel {
    this.trace ??= new TraceChannel(this.output);
    return this.trace.channel;
  }

  /** An error the client would have shown itself: reported here once, unless `start()` or `closed()` reports it. */
  private async forcedError(client: LanguageClient, session: Session, message: string, data: unknown): Promise<void> {
    if (this.client !== client || session.retired || !session.initialized || session.restartFailed) {
      // A first start that failed is reported by `start()`.
      return;
    }
    const command = describe(launchCommand(this.settings()));
    if (this.state === 'starting') {
      // `closed()` asked for a restart after a crash, and it failed (the client says so twice: once for the
      // connection, once for the restart).
      session.restartFailed = true;
      this.state = 'failed';
      const [said, exit] = await Promise.all([this.stderr.lastLine(LAST_WORDS_MS), this.process?.exit(LAST_WORDS_MS)]);
      this.report(
        `FLUO: the language server could not be started again after it stopped (${command}): ` +
          whyNoAnswer(exit, said, reason(data ?? message)) +
          '. The server output has the details; run "FLUO: Restart Language Server" once it is fixed.',
        'error',
      );
      return;
    }
    this.report(`FLUO: ${message.replace(/\.$/, '')}: ${reason(data ?? message)}. The server output has the details.`, 'error');
  }

  private errorHandler(session: Session): ErrorHandler {
    return {
      error: (_error, _message, count): ErrorHandlerResult => ({
        action: (count ?? 1) <= MAX_CONNECTION_ERRORS ? ErrorAction.Continue : ErrorAction.Shutdown,
        handled: true,
      }),
      closed: (): Promise<CloseHandlerResult> => this.closed(session),
    };
  }

  /** The server's connection closed: asked for, a failed start, or a crash. */
  private async closed(session: Session): Promise<CloseHandlerResult> {
    if (session.retired || !session.initialized) {
      // Asked for, or exited before it answered `initialize` (`start()` reports that once).
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    const decision = this.policy.crashed();
    const command = describe(launchCommand(this.settings()));
    const said = await this.stderr.lastLine(LAST_WORDS_MS);
    const lastWords = said !== undefined ? ` Its last words: "${said}".` : '';
    if (decision.restart) {
      this.state = 'starting';
      this.report(
        `FLUO: the language server stopped unexpectedly; restarting it (restart ${decision.crashes} of ` +
          `${this.policy.maxCrashes - 1} allowed in ${this.policy.windowMinutes} minutes).${lastWords}`,
        'warning',
      );
      return { action: CloseAction.Restart, handled: true };
    }
    this.state = 'failed';
    this.report(
      `FLUO: the language server crashed ${decision.crashes} times in ${this.policy.windowMinutes} minutes, so it will ` +
        `not be restarted.${lastWords} Check that \`${command}\` runs in a terminal, read the server output, then run ` +
        '"FLUO: Restart Language Server".',
      'error',
    );
    return { action: CloseAction.DoNotRestart, handled: true };
  }

  /** Not started in an untrusted workspace: say why once, with a way to trust it. */
  private restricted(what: string): void {
    this.state = 'restricted';
    const message = `FLUO: ${restrictedMessage('the language server was not started', what)}`;
    this.output.warn(message);
    void Promise.resolve(vscode.window.showWarningMessage(message, MANAGE_TRUST, OPEN_SETTINGS)).then((choice) => {
      if (choice === MANAGE_TRUST) {
        void vscode.commands.executeCommand(MANAGE_TRUST_COMMAND);
      } else if (choice === OPEN_SETTINGS) {
        void vscode.commands.executeCommand('workbench.action.openSettings', 'fluo.server');
      }
    });
  }

  /** Log `message` and show it; a failure also offers the settings, a restart only the output. */
  private report(message: string, level: 'warning' | 'error'): void {
    if (level === 'error') {
      this.output.error(message);
    } else {
      this.output.warn(message);
    }
    const shown =
      level === 'error'
        ? vscode.window.showErrorMessage(message, SHOW_OUTPUT, OPEN_SETTINGS)
        : vscode.window.showWarningMessage(message, SHOW_OUTPUT);
    void Promise.resolve(shown).then((choice) => {
      if (choice === SHOW_OUTPUT) {
        this.output.show(true);
      } else if (choice === OPEN_SETTINGS) {
        void vscode.commands.executeCommand('workbench.action.openSettings', 'fluo.server');
      }
    });
  }
}

export const SHOW_OUTPUT = 'Show Output';
export const OPEN_SETTINGS = 'Open Settings';

/**
 * How to install FLUO, for messages. Not `pip install fluo`: that name on PyPI belongs to another project.
 */
function notFound(command: Command, settings: Settings): string {
  if (settings.pythonPath !== '') {
    const python = settings.pythonPath;
    const why = isPath(python) ? whyNotExecutable(python) : 'was not found on PATH';
    return (
      `FLUO: the Python interpreter ${python} (fluo.server.pythonPath) ${why}. ` +
      `Set it to a Python that has FLUO installed (${INSTALL}), or clear it to use fluo.server.command.`
    );
  }
  if (isPath(command.command)) {
    return (
      `FLUO: \`${command.command}\` (fluo.server.command) ${whyNotExecutable(command.command)}, so the language server ` +
      `cannot start. Set fluo.server.command to the path of an installed fluo (${INSTALL}), ` +
      'or fluo.server.pythonPath to the Python of that environment.'
    );
  }
  return (
    `FLUO: \`${command.command}\` was not found on PATH, so the language server cannot start. ` +
    `Install FLUO (${INSTALL}), then set fluo.server.pythonPath to the Python of that environment ` +
    'or fluo.server.command to the full path of its fluo.'
  );
}

function reason(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s+$/, '').replace(/\.$/, '');
}
