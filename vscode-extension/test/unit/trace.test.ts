/** fluo.trace.server: the trace channel the client writes the LSP traffic to. */

import * as assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { TraceChannel } from '../../src/server';
import { LogLevel, editor, window } from '../fakes/vscode';

beforeEach(() => editor.reset());

test('the trace channel is at Trace level exactly while fluo.trace.server asks for the traffic, and says when that changes', async () => {
  const output = window.createOutputChannel('FLUO Language Server', { log: true });
  const trace = new TraceChannel(output as never);
  const levels: LogLevel[] = [];
  trace.channel.onDidChangeLogLevel((level) => levels.push(level as number));
  assert.equal(trace.channel.logLevel, LogLevel.Info, 'off by default');

  await editor.configure({ 'fluo.trace.server': 'messages' });
  assert.equal(trace.channel.logLevel, LogLevel.Trace);
  await editor.configure({ 'fluo.trace.server': 'verbose' });
  assert.equal(trace.channel.logLevel, LogLevel.Trace);
  await editor.configure({ 'fluo.strictness': 'strict' });
  await editor.configure({ 'fluo.trace.server': 'off' });
  assert.equal(trace.channel.logLevel, LogLevel.Info);
  assert.deepEqual(levels, [LogLevel.Trace, LogLevel.Trace, LogLevel.Info], 'one event per change of the setting');

  // The output channel's own level still counts, as it did before.
  await output.setLogLevel(LogLevel.Trace);
  assert.equal(trace.channel.logLevel, LogLevel.Trace);
  assert.equal(levels.at(-1), LogLevel.Trace);
  trace.dispose();
});

test('the traffic is written where the channel shows it at its level', async () => {
  const output = window.createOutputChannel('FLUO Language Server', { log: true });
  const trace = new TraceChannel(output as never, () => 'messages');
  trace.channel.trace("[Trace] Sending notification 'textDocument/didOpen'.");
  assert.equal(output.text, "[Trace] Sending notification 'textDocument/didOpen'.\n", 'a plain line, shown at Info');
  await output.setLogLevel(LogLevel.Trace);
  trace.channel.trace('at Trace');
  assert.match(output.text, /\[trace\] at Trace\n$/);
  trace.dispose();
});
