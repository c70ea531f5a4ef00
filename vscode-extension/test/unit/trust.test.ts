import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe as group, test } from 'node:test';

import { UNTRUSTED_CWD, checkUntrustedProgram, folderHolding } from '../../src/trust';
import { tempFolder } from '../support/paths';

let work: ReturnType<typeof tempFolder>;
let repo: string;
let outside: string;

before(() => {
  work = tempFolder('fluo-trust-');
  repo = path.join(work.dir, 'evil-repo');
  outside = path.join(work.dir, 'tools');
  fs.mkdirSync(path.join(repo, '.venv', 'bin'), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(repo, '.venv', 'bin', 'python'), '#!/bin/sh\n', { mode: 0o755 });
  fs.writeFileSync(path.join(outside, 'python'), '#!/bin/sh\n', { mode: 0o755 });
});

after(() => work.remove());

group('folderHolding', () => {
  test('a program inside a folder, or the folder itself, is held by it; one beside it is not', () => {
    assert.equal(folderHolding(path.join(repo, '.venv', 'bin', 'python'), [outside, repo]), repo);
    assert.equal(folderHolding(repo, [repo]), repo);
    assert.equal(folderHolding(path.join(outside, 'python'), [repo]), undefined);
    // A sibling whose name starts with the folder's is not inside it.
    assert.equal(folderHolding(`${repo}-other/python`, [repo]), undefined);
    assert.equal(folderHolding(path.join(repo, '..x', 'python'), [repo]), repo);
  });

  test('symlinks are followed both ways', { skip: process.platform === 'win32' && 'symlinks need privileges on Windows' }, () => {
    // A program outside the workspace that links into it.
    const link = path.join(outside, 'linked-python');
    fs.symlinkSync(path.join(repo, '.venv', 'bin', 'python'), link);
    assert.equal(folderHolding(link, [repo]), repo);
    // A workspace folder opened through a link, and a program named by its real path.
    const viaLink = path.join(work.dir, 'repo-link');
    fs.symlinkSync(repo, viaLink);
    assert.equal(folderHolding(path.join(repo, '.venv', 'bin', 'python'), [viaLink]), viaLink);
    // A venv's python that links out of the workspace still runs the workspace's venv: it counts as inside.
    const venvPython = path.join(repo, '.venv', 'bin', 'python3');
    fs.symlinkSync(path.join(outside, 'python'), venvPython);
    assert.equal(folderHolding(venvPython, [repo]), repo);
  });
});

test('checkUntrustedProgram gives the absolute path of a program outside the folders, or the folder holding it', () => {
  assert.deepEqual(checkUntrustedProgram(path.join(outside, 'python'), [repo]), { program: path.join(outside, 'python') });
  assert.deepEqual(checkUntrustedProgram(path.join(repo, '.venv', 'bin', 'python'), [repo]), { inside: repo });
});

test('untrusted programs run from a folder outside the workspace that holds no Python module', () => {
  assert.equal(folderHolding(UNTRUSTED_CWD, [repo, outside]), undefined);
  assert.deepEqual(
    fs.readdirSync(UNTRUSTED_CWD).filter((f) => f.endsWith('.py') || f === '__pycache__' || f.startsWith('fluo_')),
    [],
  );
});
