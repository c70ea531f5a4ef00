import * as assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';

import { StderrTail } from '../../src/stderr';

function sink(): { lines: string[]; appendLine(line: string): void } {
  const lines: string[] = [];
  return { lines, appendLine: (line) => lines.push(line) };
}

test('forwards every line and quotes the last non-blank one once the stream ends', async () => {
  const tail = new StderrTail(3);
  const input = new PassThrough();
  const out = sink();
  tail.follow(input, out);
  input.end('Traceback (most recent call last):\n  File "x.py", line 1\nModuleNotFoundError: No module named \'fluo_run\'\n\n');
  assert.equal(await tail.lastLine(5000), "ModuleNotFoundError: No module named 'fluo_run'");
  assert.deepEqual(out.lines, ['Traceback (most recent call last):', '  File "x.py", line 1', "ModuleNotFoundError: No module named 'fluo_run'", '']);
});

test('a stream that stays open is read for at most the wait given', async () => {
  const tail = new StderrTail();
  const input = new PassThrough();
  tail.follow(input, sink());
  input.write('still running\n');
  const started = Date.now();
  assert.equal(await tail.lastLine(50), 'still running');
  assert.ok(Date.now() - started < 2000);
  input.end();
});

test('a new process starts a new tail; nothing followed yet means nothing to quote', async () => {
  const tail = new StderrTail();
  assert.equal(await tail.lastLine(10), undefined);
  const first = new PassThrough();
  tail.follow(first, sink());
  first.end('old words\n');
  await tail.lastLine(1000);
  const second = new PassThrough();
  tail.follow(second, sink());
  second.end('');
  assert.equal(await tail.lastLine(1000), undefined);
});
