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
