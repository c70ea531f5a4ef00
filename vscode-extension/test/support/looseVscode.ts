/**
 * The fake `vscode` module made permissive, so the real vscode-languageclient
 * (bundled in `dist/extension.js`) can run on it: whatever the fake does not
 * define is a stub that can be called, constructed, extended and subscribed to,
 * and does nothing. What the fake does define still records what happened.
 */

import Module = require('node:module');

import * as fake from '../fakes/vscode';

function stub(): unknown {
  const target = function () {};
  return new Proxy(target, {
    get(t, p) {
      if (p === 'then') {
        return undefined; // not a promise
      }
      if (p === Symbol.iterator) {
        return function* () {};
      }
      if (p === Symbol.toPrimitive) {
        return () => '';
      }
      if (p in t) {
        return (t as unknown as Record<string | symbol, unknown>)[p];
      }
      return stub();
    },
    construct: () => stub() as object,
    apply: () => stub(),
  });
}

function loose<T extends object>(obj: T): T {
  return new Proxy(obj, {
    get(t, p) {
      if (p in t) {
        const value = (t as Record<string | symbol, unknown>)[p];
        return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof fake.EventEmitter)
          ? loose(value)
          : value;
      }
      return typeof p === 'symbol' || p === 'then' ? undefined : stub();
    },
  });
}

/** From now on `require('vscode')` in this process returns the permissive fake; the fake's handle is returned. */
export function installLooseVscode(): typeof fake {
  const permissive = loose(fake);
  const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
  const load = loader._load;
  loader._load = function (this: unknown, request: string, ...rest: unknown[]): unknown {
    return request === 'vscode' ? permissive : load.call(this, request, ...rest);
  };
  return fake;
}
