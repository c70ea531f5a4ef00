/** Where things are, for tests that read the extension's files or run the real `fluo`. */

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The extension folder (tests run from `out/test/...`). */
export const EXTENSION = path.resolve(__dirname, '..', '..', '..');
export const REPO = path.resolve(EXTENSION, '..');

export function readJson<T = Record<string, unknown>>(relative: string): T {
  return JSON.parse(fs.readFileSync(path.join(EXTENSION, relative), 'utf8')) as T;
}

/** The Python that has `fluo` installed: `$FLUO_PYTHON`, else `python3`. */
export const PYTHON = process.env.FLUO_PYTHON ?? 'python3';

/**
 * The environment with `PYTHON`'s scripts folder (where pip put its `fluo`) first on PATH, so that a bare `fluo`
 * is the one installed for `PYTHON`, not another on PATH (or none, when `$FLUO_PYTHON`'s venv is not activated).
 */
export function envWithFluoOnPath(): NodeJS.ProcessEnv {
  const asked = spawnSync(PYTHON, ['-c', 'import sysconfig; print(sysconfig.get_path("scripts"))'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  const scripts = asked.stdout?.trim() ?? '';
  if (asked.status !== 0 || scripts === '') {
    throw new Error(`${PYTHON} did not name its scripts folder: ${asked.stderr ?? asked.error?.message ?? ''}`);
  }
  return { ...process.env, PATH: [scripts, process.env.PATH ?? ''].filter((p) => p !== '').join(path.delimiter) };
}

/** A fresh folder under the OS temp dir, removed by the returned function. */
export function tempFolder(prefix: string): { dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
