/** Where things are, for tests that read the extension's files or run the real `fluo`. */

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

/** A fresh folder under the OS temp dir, removed by the returned function. */
export function tempFolder(prefix: string): { dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
