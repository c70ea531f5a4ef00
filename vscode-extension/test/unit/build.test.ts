/** scripts/build.mjs works from a folder whose path has a space (fileURLToPath, not URL.pathname). */

import * as assert from 'node:assert/strict';
import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { EXTENSION, tempFolder } from '../support/paths';

test('the build script builds the bundle in a folder whose path has a space', () => {
  const work = tempFolder('fluo build-');
  try {
    const root = path.join(work.dir, 'with space');
    fs.mkdirSync(root);
    for (const part of ['src', 'scripts']) {
      fs.cpSync(path.join(EXTENSION, part), path.join(root, part), { recursive: true });
    }
    fs.copyFileSync(path.join(EXTENSION, 'package.json'), path.join(root, 'package.json'));
    fs.symlinkSync(path.join(EXTENSION, 'node_modules'), path.join(root, 'node_modules'), 'junction');
    const result = cp.spawnSync(process.execPath, [path.join(root, 'scripts', 'build.mjs'), '--bundle-only'], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.ok(fs.statSync(path.join(root, 'dist', 'extension.js')).size > 1000);
  } finally {
    work.remove();
  }
});
