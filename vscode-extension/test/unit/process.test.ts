import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { findExecutable, runProcess } from '../../src/process';
import { tempFolder } from '../support/paths';

const NODE = process.execPath;

test('a program is found on PATH, by path, and not when missing or not executable', () => {
  const work = tempFolder('fluo-path-');
  try {
    const tool = path.join(work.dir, 'fluo-tool');
    fs.writeFileSync(tool, '#!/bin/sh\n', { mode: 0o755 });
    const plain = path.join(work.dir, 'fluo-plain');
    fs.writeFileSync(plain, '', { mode: 0o644 });
    const env = { PATH: ['/nonexistent', work.dir].join(path.delimiter) };
    assert.equal(findExecutable('fluo-tool', env), tool);
    assert.equal(findExecutable(tool, {}), tool);
    assert.equal(findExecutable('fluo-plain', env), undefined);
    assert.equal(findExecutable('fluo-missing', env), undefined);
    assert.equal(findExecutable(work.dir, env), undefined, 'a folder is not a program');
  } finally {
    work.remove();
  }
});

test('output and exit status are collected', async () => {
  const result = await runProcess(NODE, ['-e', 'console.log("out"); console.error("err"); process.exit(3)'], {
    cwd: process.cwd(),
    timeoutMs: 30_000,
  });
  assert.deepEqual(result, { code: 3, stdout: 'out\n', stderr: 'err\n' });
});

test('a missing program is a failure that names it', async () => {
  const result = await runProcess('fluo-not-installed-here', ['test'], { cwd: process.cwd(), timeoutMs: 30_000 });
  assert.equal(result.code, undefined);
  assert.equal(result.failure, 'fluo-not-installed-here was not found');
});

test('a run that outlives its timeout is stopped', async () => {
  const started = Date.now();
  const result = await runProcess(NODE, ['-e', 'setTimeout(() => {}, 60000)'], { cwd: process.cwd(), timeoutMs: 300 });
  assert.equal(result.failure, 'did not finish within 0.3 s');
  assert.ok(Date.now() - started < 20_000);
});

test('cancelling stops the program', async () => {
  const abort = new AbortController();
  const pending = runProcess(NODE, ['-e', 'setTimeout(() => {}, 60000)'], { cwd: process.cwd(), timeoutMs: 60_000, signal: abort.signal });
  setTimeout(() => abort.abort(), 200);
  const result = await pending;
  assert.equal(result.failure, 'cancelled');
  assert.equal(result.code, undefined);
});
