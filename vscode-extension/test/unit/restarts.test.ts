import * as assert from 'node:assert/strict';
import { test } from 'node:test';

import { RestartPolicy } from '../../src/restarts';

function clock(): { now: () => number; advance(ms: number): void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

test('restarts until the fifth crash within three minutes, then gives up', () => {
  const c = clock();
  const policy = new RestartPolicy(5, 180_000, c.now);
  const decisions = [];
  for (let i = 0; i < 5; i++) {
    decisions.push(policy.crashed());
    c.advance(10_000);
  }
  assert.deepEqual(
    decisions.map((d) => [d.restart, d.crashes]),
    [
      [true, 1],
      [true, 2],
      [true, 3],
      [true, 4],
      [false, 5],
    ],
  );
  assert.equal(policy.windowMinutes, 3);
});

test('crashes older than the window are forgotten', () => {
  const c = clock();
  const policy = new RestartPolicy(3, 60_000, c.now);
  assert.equal(policy.crashed().restart, true);
  assert.equal(policy.crashed().restart, true);
  c.advance(60_000);
  const third = policy.crashed();
  assert.deepEqual(third, { restart: true, crashes: 1 });
});

test('reset forgets every crash', () => {
  const c = clock();
  const policy = new RestartPolicy(2, 60_000, c.now);
  policy.crashed();
  assert.equal(policy.crashed().restart, false);
  policy.reset();
  assert.deepEqual(policy.crashed(), { restart: true, crashes: 1 });
});
