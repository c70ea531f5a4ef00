/**
 * Workspace trust: what the extension will run while the workspace is untrusted (Restricted Mode).
 *
 * In Restricted Mode VS Code lets only the user settings set `fluo.server.command` and `fluo.server.pythonPath`
 * (package.json, `capabilities.untrustedWorkspaces`). That is not enough on its own: a user setting such as
 * `${workspaceFolder}/.venv/bin/python` names whatever program the untrusted workspace holds. So while the
 * workspace is untrusted:
 *
 * - a program named with `${workspaceFolder}` or a relative path, or a command with `${workspaceFolder}` in an
 *   argument, is not run at all (`readSettings` sets `Settings.restricted`);
 * - a program that is found inside a workspace folder (as named, or after following symlinks) is not run either;
 * - the program that does run is started by its absolute path, from the extension's own folder rather than the
 *   workspace, with `PYTHONSAFEPATH=1`, so that `python -m fluo_run.cli` cannot import a `fluo_run` package (or any
 *   other module) from the workspace.
 *
 * The server is started (again) when the user grants trust, with the settings resolved as in a trusted workspace.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';

export const MANAGE_TRUST = 'Manage Workspace Trust';
export const MANAGE_TRUST_COMMAND = 'workbench.trust.manage';

/** The workspace as trust sees it: trusted or not, and its folders' paths. */
export interface WorkspaceTrust {
  readonly trusted: boolean;
  readonly folders: readonly string[];
}

/** The editor's current trust state. Anything but an explicit `isTrusted === true` counts as untrusted. */
export function workspaceTrust(): WorkspaceTrust {
  return {
    trusted: vscode.workspace.isTrusted === true,
    folders: (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath),
  };
}

/**
 * Where an untrusted workspace's programs run from: the extension's own folder (`dist/` once bundled), which holds
 * no Python module and is not part of any workspace. Not the workspace folder (`python -m` imports from there), nor
 * the home folder (a clone named `fluo_run` there would be imported).
 */
export const UNTRUSTED_CWD = __dirname;

/** The environment additions for a program run while the workspace is untrusted. */
export const UNTRUSTED_ENV: Readonly<Record<string, string>> = {
  // Python 3.11+: do not put the working folder (`-m`) or the script's folder first on sys.path.
  PYTHONSAFEPATH: '1',
};

/**
 * The workspace folder that holds `file`, comparing both as written and with symlinks followed (a program outside
 * that links into the workspace, or a workspace folder reached through a link, counts), or undefined.
 */
export function folderHolding(file: string, folders: readonly string[]): string | undefined {
  const files = variants(file);
  for (const folder of folders) {
    for (const f of variants(folder)) {
      if (files.some((candidate) => isWithin(candidate, f))) {
        return folder;
      }
    }
  }
  return undefined;
}

/** A program that may run in an untrusted workspace: the absolute path it was found at, or why it may not. */
export function checkUntrustedProgram(found: string, folders: readonly string[]): { program: string } | { inside: string } {
  const inside = folderHolding(found, folders);
  return inside === undefined ? { program: path.resolve(found) } : { inside };
}

/**
 * The one message (without the `FLUO: ` prefix) for a program that will not run in an untrusted workspace. `what` says which setting named it
 * and how, e.g. `fluo.server.pythonPath ("${workspaceFolder}/.venv/bin/python") names a program inside the
 * workspace`.
 */
export function restrictedMessage(action: string, what: string): string {
  return (
    `${action}: this workspace is not trusted (Restricted Mode), and ${what}. ` +
    'A program from an untrusted workspace could do anything, so it is not run. Trust the workspace to run it, or ' +
    'set fluo.server.pythonPath or fluo.server.command in your user settings to a program outside the workspace.'
  );
}

/**
 * What an untrusted workspace allows of `found`, the program `setting` names: to run as the absolute `program`,
 * or not at all, `blocked` saying why (for `restrictedMessage`).
 */
export function untrustedProgram(found: string, folders: readonly string[], setting: string): { program: string } | { blocked: string } {
  const checked = checkUntrustedProgram(found, folders);
  return 'inside' in checked ? { blocked: `${setting} resolves to ${found}, inside the workspace folder ${checked.inside}` } : checked;
}

function variants(p: string): string[] {
  const absolute = path.resolve(p);
  let real = absolute;
  try {
    real = fs.realpathSync.native(absolute);
  } catch {
    // missing, or unreadable: compare it as written
  }
  return real === absolute ? [absolute] : [absolute, real];
}

function isWithin(file: string, folder: string): boolean {
  const fold = (p: string): string => (process.platform === 'win32' || process.platform === 'darwin' ? p.toLowerCase() : p);
  const rel = path.relative(fold(folder), fold(file));
  return rel === '' || (rel !== '..' && !rel.startsWith('..' + path.sep) && !path.isAbsolute(rel));
}
