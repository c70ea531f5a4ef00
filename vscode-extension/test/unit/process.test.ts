import * as assert from 'node:assert/strict';
import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { ServerProcess, findExecutable, firstWords, runProcess, textOfHead, whyNoAnswer } from '../../src/process';
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

test('a server that exits before answering: its status, and what it said on stderr or else printed on stdout', () => {
  const exit = { code: 2, signal: undefined, stdout: "usage: fluo [-h] {run,build} ...\nfluo: error: invalid choice: 'lsp'\n" };
  assert.equal(
    whyNoAnswer(exit, undefined, 'write EPIPE'),
    `it exited with status 2 before answering; it printed "usage: fluo [-h] {run,build} ... / fluo: error: invalid choice: 'lsp'"`,
  );
  assert.equal(whyNoAnswer(exit, 'No module named fluo_run', 'write EPIPE'), 'it exited with status 2 before answering; it said "No module named fluo_run"');
  assert.equal(whyNoAnswer({ code: 0, signal: undefined, stdout: '' }, undefined, 'write EPIPE'), 'it exited with status 0 before answering, printing nothing');
  assert.equal(whyNoAnswer({ code: undefined, signal: 'SIGKILL', stdout: '' }, undefined, 'x'), 'it was ended by SIGKILL before answering, printing nothing');
  assert.equal(
    whyNoAnswer({ code: 1, signal: undefined, stdout: 'Content-Length: 40\r\n\r\n{"jsonrpc":"2.0"}' }, undefined, 'x'),
    'it exited with status 1 before answering',
    'LSP traffic is not quoted',
  );
  assert.equal(whyNoAnswer(undefined, undefined, 'write EPIPE'), 'write EPIPE', 'still running: the client error');
  assert.equal(whyNoAnswer(undefined, 'oops', 'write EPIPE'), 'it said "oops"');
});

test('the start of what was printed, on one line and cut short', () => {
  assert.equal(firstWords('\n  a\tb \n\n c\r\n'), 'a b / c');
  assert.equal(firstWords(' \n'), undefined);
  assert.equal(firstWords('x'.repeat(300), 10), `${'x'.repeat(9)}…`);
});

test('a server process: its exit status and the start of its stdout, once it has exited', async () => {
  const child = cp.spawn(NODE, ['-e', 'process.stdout.write("x".repeat(10000)); process.exitCode = 4'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const watch = new ServerProcess(child);
  child.stdout.on('data', watch.record);
  const exit = await watch.exit(30_000);
  assert.equal(exit?.code, 4);
  assert.equal(exit?.signal, undefined);
  assert.equal(exit?.stdout, 'x'.repeat(4096), 'only the start is kept');
});

test('the start of a server\'s stdout is cut between characters, never inside one', async () => {
  // 3 * 2000 bytes: the 4096th byte is inside a `€` (three bytes in UTF-8), which a cut there turned into U+FFFD
  const child = cp.spawn(NODE, ['-e', 'process.stdout.write("€".repeat(2000)); process.exitCode = 1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const watch = new ServerProcess(child);
  child.stdout.on('data', watch.record);
  const exit = await watch.exit(30_000);
  assert.equal(exit?.code, 1);
  assert.equal(exit?.stdout, '€'.repeat(1365), 'the whole characters of the first 4096 bytes');
  assert.ok(!exit?.stdout.includes('\ufffd'));
  assert.equal(textOfHead(Buffer.from('a🙂').subarray(0, 4)), 'a', 'an emoji cut after its third byte');
  assert.equal(textOfHead(Buffer.from('a🙂')), 'a🙂');
});

test('what was printed is cut between characters, never inside a surrogate pair', () => {
  assert.equal(firstWords('🙂'.repeat(300), 10), `${'🙂'.repeat(9)}…`);
  assert.equal(firstWords(`a${'🙂'.repeat(4)}`, 5), 'a🙂🙂🙂🙂', 'five characters fit in five');
});

test('a server process that runs on has no exit to report', async () => {
  const child = cp.spawn(NODE, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    assert.equal(await new ServerProcess(child).exit(50), undefined);
  } finally {
    child.kill();
  }
});
