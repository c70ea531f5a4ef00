/**
 * Running the `fluo` program: finding it on PATH and collecting what it prints.
 */

import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The absolute path `command` resolves to, as the OS would find it, or undefined. */
export function findExecutable(command: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const extensions = process.platform === 'win32' ? ['', ...(env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';')] : [''];
  const candidates = isPath(command)
    ? [path.resolve(command)]
    : (env.PATH ?? '').split(path.delimiter).filter((dir) => dir !== '').map((dir) => path.join(dir, command));
  for (const candidate of candidates) {
    for (const ext of extensions) {
      const file = candidate + ext;
      try {
        fs.accessSync(file, fs.constants.X_OK);
        if (fs.statSync(file).isFile()) {
          return file;
        }
      } catch {
        // not there, or not executable: keep looking
      }
    }
  }
  return undefined;
}

/** Whether `command` names a file by its path (it has a separator) rather than a program to look up on PATH. */
export function isPath(command: string): boolean {
  return command.includes('/') || command.includes(path.sep);
}

/** Why `findExecutable` found no program at the path `file`: it does not exist, is not a file, or is not executable. */
export function whyNotExecutable(file: string): string {
  try {
    return fs.statSync(file).isFile() ? 'is not executable' : 'is not a file';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be read (${code ?? String(error)})`;
  }
}

export interface ProcessResult {
  /** Exit status, or undefined when the program did not run or was killed. */
  readonly code: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
  /** Why the program did not run to the end: not started, timed out or cancelled. */
  readonly failure?: string;
}

export interface RunOptions {
  readonly cwd: string;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  readonly env?: NodeJS.ProcessEnv;
}

export type ProcessRunner = (command: string, args: readonly string[], options: RunOptions) => Promise<ProcessResult>;

/** Run a program to its end (or its timeout, or cancellation) and collect its output. */
export const runProcess: ProcessRunner = (command, args, options) =>
  new Promise((resolve) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let failure: string | undefined;
    let child: cp.ChildProcess;
    try {
      child = cp.spawn(command, [...args], {
        cwd: options.cwd,
        env: { ...(options.env ?? process.env), PYTHONUNBUFFERED: '1', NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
        windowsHide: true,
      });
    } catch (error) {
      resolve({ code: undefined, stdout: '', stderr: '', failure: `could not start ${command}: ${String(error)}` });
      return;
    }
    const stop = (why: string): void => {
      failure ??= why;
      child.kill();
    };
    const timer = setTimeout(() => stop(`did not finish within ${options.timeoutMs / 1000} s`), options.timeoutMs);
    const onAbort = (): void => stop('cancelled');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error: NodeJS.ErrnoException) => {
      failure ??= error.code === 'ENOENT' ? `${command} was not found` : `could not start ${command}: ${error.message}`;
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve({
        code: failure === undefined && code !== null ? code : undefined,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        ...(failure !== undefined ? { failure } : {}),
      });
    });
  });

/** How much of a server's stdout is kept: a usage message fits, the LSP traffic after it is not kept. */
const STDOUT_HEAD_BYTES = 4096;

/** How a server process ended, and the start of what it printed on stdout. */
export interface ServerExit {
  /** Exit status, or undefined when a signal ended it. */
  readonly code: number | undefined;
  readonly signal: string | undefined;
  readonly stdout: string;
}

/**
 * A language server process seen from beside the language client: how it exited and how its stdout began. The
 * client reads stdout as LSP, so what a wrong program prints there (a usage message) is otherwise lost.
 */
export class ServerProcess {
  private readonly head: Buffer[] = [];
  private size = 0;
  private readonly closed: Promise<void>;
  readonly record = (chunk: Buffer | string): void => {
    if (this.size < STDOUT_HEAD_BYTES) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      this.head.push(bytes.subarray(0, STDOUT_HEAD_BYTES - this.size));
      this.size += bytes.length;
    }
  };

  constructor(private readonly child: cp.ChildProcess) {
    this.closed = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        resolve();
      }
      child.once('close', () => resolve());
    });
  }

  /** Stop keeping stdout: the server answered, so stdout is LSP traffic. */
  stopRecording(): void {
    this.child.stdout?.off('data', this.record);
  }

  /** How the process exited, once it has (and its output is in) or `waitMs` has passed; undefined if it runs on. */
  async exit(waitMs: number): Promise<ServerExit | undefined> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
    const { exitCode, signalCode } = this.child;
    if (exitCode === null && signalCode === null) {
      return undefined;
    }
    const head = Buffer.concat(this.head);
    return {
      code: exitCode ?? undefined,
      signal: signalCode ?? undefined,
      stdout: this.size > STDOUT_HEAD_BYTES ? textOfHead(head) : head.toString('utf8'),
    };
  }
}

/**
 * The text of `head`, the first bytes of a longer output, cut between characters: a character its last bytes only
 * begin is left out, where decoding them as they are would end the text with U+FFFD (bytes that are no UTF-8 still
 * read as U+FFFD). `stream` holds an unfinished last character back for the bytes that would follow.
 */
export function textOfHead(head: Buffer): string {
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(head, { stream: true });
}

/** The first lines of `text` as one line for a message, cut to `max` characters; undefined if it has none. */
export function firstWords(text: string, max = 200): string | undefined {
  const line = text
    .split(/\r?\n/)
    .map((l) => l.replace(/[\u0000-\u001f\u007f]/g, ' ').trim())
    .filter((l) => l !== '')
    .join(' / ');
  if (line === '') {
    return undefined;
  }
  const chars = Array.from(line); // by code point: a cut by UTF-16 unit could halve a surrogate pair (an emoji)
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : line;
}

/**
 * Why a server did not answer `initialize`, for the message that says it did not start: how it exited, with the
 * last line it wrote on stderr (`said`) or else the start of what it printed on stdout; while it still runs, what
 * it said or the client's error.
 */
export function whyNoAnswer(exit: ServerExit | undefined, said: string | undefined, error: string): string {
  if (exit === undefined) {
    return said !== undefined ? `it said "${said}"` : error;
  }
  const how =
    exit.code !== undefined
      ? `it exited with status ${exit.code} before answering`
      : `it was ended by ${exit.signal ?? 'a signal'} before answering`;
  if (said !== undefined) {
    return `${how}; it said "${said}"`;
  }
  if (spokeLsp(exit.stdout)) {
    return how;
  }
  const printed = firstWords(exit.stdout);
  return printed !== undefined ? `${how}; it printed "${printed}"` : `${how}, printing nothing`;
}

/** Whether `stdout` starts as an LSP message, not words for a person. */
export function spokeLsp(stdout: string): boolean {
  return /^Content-(Length|Type):/i.test(stdout);
}
