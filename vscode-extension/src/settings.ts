/**
 * The extension's settings, read once into plain data.
 *
 * `fluo.attributeKeys`, `fluo.strictness` and `fluo.diagnostics.debounceMs`
 * belong to the language server: they reach it under the section `fluo`, as
 * initialization options and on every `workspace/didChangeConfiguration`.
 * `fluo.server.*` only say how to start the server (and `fluo test`).
 */

import * as path from 'node:path';

/** The part of `vscode.WorkspaceConfiguration` this module reads (so tests need no editor). */
export interface ConfigurationSource {
  get<T>(section: string): T | undefined;
}

/** What paths in `fluo.server.*` are resolved against: the workspace folders (the first is the default) and home. */
export interface PathContext {
  readonly folders: readonly { readonly name: string; readonly path: string }[];
  readonly home: string;
  /**
   * Whether the workspace is trusted (`vscode.workspace.isTrusted`). Unless it is `true`, nothing in
   * `fluo.server.*` is resolved into a workspace folder: see `readSettings`.
   */
  readonly trusted?: boolean;
}

export type Strictness = 'default' | 'strict';

export interface Settings {
  /** Program and arguments that start the server, e.g. `["fluo", "lsp"]`. */
  readonly serverCommand: readonly string[];
  /** A Python interpreter with `fluo` installed; when set it replaces `serverCommand`. */
  readonly pythonPath: string;
  readonly attributeKeys: readonly string[];
  readonly strictness: Strictness;
  readonly debounceMs: number;
  /**
   * Set when the workspace is untrusted and the program that would start the server (and `fluo test`) is named
   * with `${workspaceFolder}` or a relative path, or the command passes `${workspaceFolder}` to it: says which setting
   * and how, e.g. `fluo.server.pythonPath ("${workspaceFolder}/.venv/bin/python") names a program inside the
   * workspace`. Such a command is never run (see `trust.ts`); it is kept as written, unresolved.
   */
  readonly restricted?: string;
}

/** The settings the server reads, exactly as it reads them under the section `fluo`. */
export interface ServerSettings {
  attributeKeys: string[];
  strictness: Strictness;
  diagnostics: { debounceMs: number };
  /** Off: the extension's snippets (snippets/fluo.code-snippets) are the rule templates; the server's would show twice. */
  completion: { ruleSkeletons: boolean };
}

/** A program to run and its arguments. */
export interface Command {
  readonly command: string;
  readonly args: readonly string[];
}

export const SECTION = 'fluo';
export const DEFAULT_SERVER_COMMAND: readonly string[] = ['fluo', 'lsp'];
/** The most `fluo.diagnostics.debounceMs` may be: the server ignores more, and package.json says so too. */
export const MAX_DEBOUNCE_MS = 10_000;

export const DEFAULTS: Settings = {
  serverCommand: DEFAULT_SERVER_COMMAND,
  pythonPath: '',
  attributeKeys: [],
  strictness: 'default',
  debounceMs: 150,
};

/** Settings that change how the server is started: a change to one of them restarts it. */
/** The setting that names the program to start: `fluo.server.pythonPath` replaces `fluo.server.command` when set. */
export function launchSetting(settings: Settings): string {
  return settings.pythonPath !== '' ? 'fluo.server.pythonPath' : 'fluo.server.command';
}

export const LAUNCH_SETTINGS: readonly string[] = ['fluo.server.command', 'fluo.server.pythonPath'];

/**
 * Settings read from `source` (the `fluo` section), and one line per value that was unusable and replaced by its
 * default. Paths in `fluo.server.command` and `fluo.server.pythonPath` are resolved against `context` (see
 * `resolveProgram`); without a context they are taken as written.
 *
 * Unless `context.trusted` is `true`, a value that would resolve into the workspace (`${workspaceFolder}` anywhere
 * in it, or a relative program path such as `.venv/bin/python`) is not resolved: it is kept as written, and when it
 * is the one that starts the server, `restricted` says so (the extension then runs nothing).
 */
export function readSettings(source: ConfigurationSource, context?: PathContext): { settings: Settings; problems: string[] } {
  const problems: string[] = [];
  const trusted = context?.trusted === true;
  let commandRestricted: string | undefined;
  let pythonRestricted: string | undefined;

  const given = source.get<unknown>('server.command');
  let serverCommand = DEFAULTS.serverCommand;
  if (given !== undefined && given !== null) {
    // The program is trimmed as fluo.server.pythonPath is (a space pasted around a path); arguments are kept.
    const command = isStringArray(given) && given.length > 0 ? [given[0].trim(), ...given.slice(1)] : given;
    if (isStringArray(command) && command.length > 0 && command[0] !== '') {
      if (context === undefined) {
        serverCommand = command;
      } else if (!trusted && namesWorkspace(command[0], command.slice(1), context)) {
        serverCommand = command;
        commandRestricted = `fluo.server.command (${JSON.stringify(command)}) names a program or path inside the workspace`;
      } else {
        serverCommand = [
          resolveProgram(command[0], context, 'fluo.server.command', problems),
          ...command.slice(1).map((arg) => expandVariables(arg, context, 'fluo.server.command', problems)),
        ];
      }
    } else {
      problems.push(
        `fluo.server.command must be a list of strings such as ["fluo", "lsp"]; using ${JSON.stringify(DEFAULTS.serverCommand)}`,
      );
    }
  }

  const python = source.get<unknown>('server.pythonPath');
  let pythonPath = DEFAULTS.pythonPath;
  if (typeof python === 'string') {
    pythonPath = python.trim();
    if (pythonPath !== '' && context !== undefined) {
      if (!trusted && namesWorkspace(pythonPath, [], context)) {
        pythonRestricted = `fluo.server.pythonPath (${JSON.stringify(pythonPath)}) names a program inside the workspace`;
      } else {
        pythonPath = resolveProgram(pythonPath, context, 'fluo.server.pythonPath', problems);
      }
    }
  } else if (python !== undefined && python !== null) {
    problems.push('fluo.server.pythonPath must be a path to a Python interpreter (a string); ignoring it');
  }

  const keys = source.get<unknown>('attributeKeys');
  let attributeKeys = DEFAULTS.attributeKeys;
  if (isStringArray(keys)) {
    attributeKeys = keys;
  } else if (keys !== undefined && keys !== null) {
    problems.push('fluo.attributeKeys must be a list of strings such as ["http.response.status_code"]; ignoring it');
  }

  const strict = source.get<unknown>('strictness');
  let strictness = DEFAULTS.strictness;
  if (strict === 'default' || strict === 'strict') {
    strictness = strict;
  } else if (strict !== undefined && strict !== null) {
    problems.push(`fluo.strictness must be "default" or "strict", not ${JSON.stringify(strict)}; using "default"`);
  }

  const debounce = source.get<unknown>('diagnostics.debounceMs');
  let debounceMs = DEFAULTS.debounceMs;
  if (typeof debounce === 'number' && Number.isFinite(debounce) && debounce >= 0 && debounce <= MAX_DEBOUNCE_MS) {
    debounceMs = Math.round(debounce);
  } else if (debounce !== undefined && debounce !== null) {
    problems.push(
      `fluo.diagnostics.debounceMs must be a number of milliseconds from 0 to ${MAX_DEBOUNCE_MS}; using ${DEFAULTS.debounceMs}`,
    );
  }

  // pythonPath, when set, replaces the command: only the one that runs matters.
  const restricted = pythonPath !== '' ? pythonRestricted : commandRestricted;
  return {
    settings: { serverCommand, pythonPath, attributeKeys, strictness, debounceMs, ...(restricted !== undefined ? { restricted } : {}) },
    problems,
  };
}

const WORKSPACE_VARIABLE = /\$\{workspaceFolder(?::[^}]*)?\}/;

/**
 * Whether a program (and its arguments) would be resolved into the workspace: `${workspaceFolder}` in any of them,
 * or a relative program path (after `~` and `${userHome}`), which is resolved against the first workspace folder.
 */
function namesWorkspace(program: string, args: readonly string[], context: PathContext): boolean {
  if ([program, ...args].some((value) => WORKSPACE_VARIABLE.test(value))) {
    return true;
  }
  const expanded = program.replace(/\$\{userHome\}/g, context.home);
  if (expanded === '~' || expanded.startsWith('~/') || expanded.startsWith('~\\')) {
    return false;
  }
  const isPath = expanded.includes('/') || expanded.includes(path.sep);
  return isPath && !path.isAbsolute(expanded);
}

/**
 * Replace `${workspaceFolder}`, `${workspaceFolder:name}` and `${userHome}` in `value`. A variable that cannot be
 * resolved (no folder open, no folder of that name) is left as written, with a line in `problems`.
 */
export function expandVariables(value: string, context: PathContext, setting: string, problems: string[]): string {
  return value.replace(/\$\{(workspaceFolder|userHome)(?::([^}]*))?\}/g, (whole, name: string, folder?: string) => {
    if (name === 'userHome') {
      return context.home;
    }
    const found = folder === undefined ? context.folders[0] : context.folders.find((f) => f.name === folder);
    if (found === undefined) {
      problems.push(
        folder === undefined
          ? `${setting} uses ${whole}, but no folder is open; it is used as written`
          : `${setting} uses ${whole}, but no open workspace folder is named "${folder}"; it is used as written`,
      );
      return whole;
    }
    return found.path;
  });
}

/**
 * A program named in a setting, as a path the OS can start: variables expanded (`expandVariables`), a leading `~`
 * replaced by the home folder, and a relative path (one with a slash, such as `.venv/bin/python`) resolved against
 * the first workspace folder. A bare name (`fluo`, `python3`) stays a name, looked up on PATH.
 */
export function resolveProgram(value: string, context: PathContext, setting: string, problems: string[]): string {
  let program = expandVariables(value, context, setting, problems);
  if (program === '~' || program.startsWith('~/') || program.startsWith('~\\')) {
    program = path.join(context.home, program.slice(1));
  }
  const isPath = program.includes('/') || program.includes(path.sep);
  if (isPath && !path.isAbsolute(program) && !program.includes('${')) {
    const first = context.folders[0];
    if (first !== undefined) {
      program = path.resolve(first.path, program);
    }
  }
  return program;
}

/** `fluo test` cannot be derived from the settings. */
export class NoTestCommand extends Error {}

/**
 * The `fluo` program: `<pythonPath> -m fluo_run.cli`, or the server command up to its `lsp` argument (the
 * arguments after it are the server's own). A command without `lsp` cannot be turned into `fluo test`.
 */
export function fluoProgram(settings: Settings): Command {
  if (settings.pythonPath !== '') {
    return { command: settings.pythonPath, args: ['-m', 'fluo_run.cli'] };
  }
  const [command, ...args] = settings.serverCommand;
  const lsp = args.indexOf('lsp');
  if (lsp >= 0) {
    return { command, args: args.slice(0, lsp) };
  }
  throw new NoTestCommand(
    `cannot tell how to run fluo test from fluo.server.command ${JSON.stringify(settings.serverCommand)}: it has no "lsp" ` +
      'argument to replace with "test". Set fluo.server.pythonPath to a Python that has FLUO installed, or make ' +
      'fluo.server.command the fluo program followed by lsp',
  );
}

/** How to start the language server over stdio. */
export function serverCommand(settings: Settings): Command {
  if (settings.pythonPath !== '') {
    return { command: settings.pythonPath, args: ['-m', 'fluo_run.cli', 'lsp'] };
  }
  const [command, ...args] = settings.serverCommand;
  return { command, args };
}

/** How to run `fluo test` on `paths`, reporting as JSON; `select` narrows to matching cases (`--run`). */
export function testCommand(settings: Settings, paths: readonly string[], select?: string): Command {
  const fluo = fluoProgram(settings);
  const args = [...fluo.args, 'test', ...paths, '--format', 'json'];
  if (select !== undefined) {
    args.push('--run', select);
  }
  return { command: fluo.command, args };
}

export function serverSettings(settings: Settings): ServerSettings {
  return {
    attributeKeys: [...settings.attributeKeys],
    strictness: settings.strictness,
    diagnostics: { debounceMs: settings.debounceMs },
    completion: { ruleSkeletons: false },
  };
}

/** How to install FLUO, for messages. */
export const INSTALL =
  'from a checkout of the FLUO repository: pip install -e <path to the fluo repository>; ' +
  'the PyPI package named "fluo" is a different project';

/** What Python says when the interpreter it runs has no FLUO installed. */
const NO_FLUO = /No module named '?fluo_(?:run|lsp|lang)\b/;

/** What to do when the Python of `fluo.server.pythonPath` said (`said`) that it has no FLUO; undefined otherwise. */
export function notInstalled(said: string, settings: Settings): string | undefined {
  if (settings.pythonPath === '' || !NO_FLUO.test(said)) {
    return undefined;
  }
  return (
    `FLUO is not installed in ${settings.pythonPath} (fluo.server.pythonPath): install it there (${INSTALL}), ` +
    'or set the setting to the Python of an environment that has it.'
  );
}

/** The command as a person would type it, for messages. */
export function describe(command: Command): string {
  return [command.command, ...command.args].map(quoteArg).join(' ');
}

/** `arg` as a POSIX shell reads it back: as it is when it is plain, else in single quotes. */
export function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}
