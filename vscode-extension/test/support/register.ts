/**
 * Loaded with `node --require` before the unit tests: `require('vscode')` and
 * `require('vscode-languageclient/node')` then return the fakes in `test/fakes/`.
 */

import Module = require('node:module');
import path = require('node:path');

const fakes: Record<string, string> = {
  vscode: path.join(__dirname, '..', 'fakes', 'vscode.js'),
  'vscode-languageclient/node': path.join(__dirname, '..', 'fakes', 'languageclient.js'),
};

type Resolve = (request: string, ...rest: unknown[]) => string;
const loader = Module as unknown as { _resolveFilename: Resolve };
const resolve = loader._resolveFilename;
loader._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
  return fakes[request] ?? resolve.call(this, request, ...rest);
};
