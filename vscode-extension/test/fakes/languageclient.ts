/**
 * A stand-in for `vscode-languageclient/node` in unit tests: it starts no
 * process, records how the extension built the client, and lets a test make
 * the server crash, after which it follows the error handler's answer the way
 * the real client does. The real client and server meet in `test/smoke/`.
 */

export enum CloseAction {
  DoNotRestart = 1,
  Restart = 2,
}

export enum ErrorAction {
  Continue = 1,
  Shutdown = 2,
}

export enum State {
  Stopped = 1,
  Running = 2,
  Starting = 3,
  StartFailed = 4,
}

export enum TransportKind {
  stdio = 0,
  ipc = 1,
  pipe = 2,
  socket = 3,
}

export enum RevealOutputChannelOn {
  Debug = 0,
  Info = 1,
  Warn = 2,
  Error = 3,
  Never = 4,
}

interface CloseHandlerResult {
  action: CloseAction;
  message?: string;
  handled?: boolean;
}

interface ClientOptions {
  documentSelector: { scheme: string; language?: string; pattern?: string }[];
  synchronize: { configurationSection: string };
  initializationOptions: () => unknown;
  middleware: { provideDiagnostics(document: unknown, previous: unknown, token: unknown, next: () => unknown): unknown };
  outputChannel: unknown;
  initializationFailedHandler?: (error: unknown) => boolean;
  errorHandler: {
    error(e: Error, m: unknown, count: number | undefined): { action: ErrorAction; handled?: boolean };
    closed(): CloseHandlerResult | Promise<CloseHandlerResult>;
  };
}

interface ServerOptions {
  command: string;
  args: string[];
  transport: TransportKind;
}

import { window } from './vscode';

/** What the next `start()` does: succeed, or fail with this error. */
export const behaviour: { startError: Error | undefined } = { startError: undefined };

export class LanguageClient {
  static readonly instances: LanguageClient[] = [];
  state = State.Stopped;
  starts = 0;
  stops = 0;
  disposed = false;
  /** Initialization options as the server received them, one entry per (re)start. */
  readonly initializations: unknown[] = [];
  private readonly listeners: ((e: { oldState: State; newState: State }) => void)[] = [];

  constructor(
    readonly id: string,
    readonly name: string,
    readonly serverOptions: ServerOptions,
    readonly clientOptions: ClientOptions,
  ) {
    LanguageClient.instances.push(this);
  }

  static get last(): LanguageClient {
    const c = LanguageClient.instances[LanguageClient.instances.length - 1];
    if (c === undefined) {
      throw new Error('no LanguageClient was created');
    }
    return c;
  }

  static reset(): void {
    LanguageClient.instances.length = 0;
    behaviour.startError = undefined;
  }

  onDidChangeState(listener: (e: { oldState: State; newState: State }) => void): { dispose(): void } {
    this.listeners.push(listener);
    return { dispose: () => undefined };
  }

  private setState(state: State): void {
    const old = this.state;
    this.state = state;
    for (const l of this.listeners) {
      l({ oldState: old, newState: state });
    }
  }

  async start(): Promise<void> {
    if (this.disposed) {
      throw new Error("Client got disposed and can't be restarted.");
    }
    this.starts++;
    this.setState(State.Starting);
    await Promise.resolve();
    if (behaviour.startError !== undefined) {
      this.setState(State.StartFailed);
      // As the real client does, whatever its options say.
      this.error(`${this.name} client: couldn't create connection to server.`, behaviour.startError, 'force');
      throw behaviour.startError;
    }
    this.initializations.push(this.clientOptions.initializationOptions());
    this.setState(State.Running);
  }

  /** Logged; shown when forced, as the real client does (`showNotificationMessage`). */
  error(message: string, data?: unknown, showNotification: boolean | 'force' = true): void {
    if (showNotification === 'force') {
      void window.showErrorMessage(data instanceof Error ? `${message}\n${data.message}` : message, 'Go to output');
    }
  }

  async stop(_timeout?: number): Promise<void> {
    this.stops++;
    this.setState(State.Stopped);
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.setState(State.Stopped);
  }

  /** Writing to the server fails `times` times in a row; on the handler's Shutdown the client stops. */
  connectionErrors(times: number): ErrorAction[] {
    const actions: ErrorAction[] = [];
    for (let count = 1; count <= times && this.state === State.Running; count++) {
      const { action } = this.clientOptions.errorHandler.error(new Error('write EPIPE'), undefined, count);
      actions.push(action);
      if (action === ErrorAction.Shutdown) {
        this.stops++;
        this.setState(State.Stopped);
      }
    }
    return actions;
  }

  /** The server process exits unexpectedly: ask the error handler, then restart or stay down. */
  async crash(): Promise<CloseHandlerResult> {
    const result = await this.clientOptions.errorHandler.closed();
    this.setState(State.Stopped);
    if (result.action === CloseAction.Restart && behaviour.startError !== undefined) {
      // The restart fails: the real client reports the connection, then the restart, both forced.
      this.setState(State.Starting);
      this.starts++;
      this.error(`${this.name} client: couldn't create connection to server.`, behaviour.startError, 'force');
      this.setState(State.StartFailed);
      this.error('Restarting server failed', behaviour.startError, 'force');
      await new Promise((resolve) => setImmediate(resolve));
    } else if (result.action === CloseAction.Restart) {
      this.setState(State.Starting);
      this.starts++;
      this.initializations.push(this.clientOptions.initializationOptions());
      this.setState(State.Running);
    }
    return result;
  }
}
