/**
 * The extension's entry point: reads the settings, starts the language server,
 * registers the commands and the rule tests, and follows settings changes.
 */

import * as os from 'node:os';
import * as vscode from 'vscode';

import { LanguageServer } from './server';
import { LAUNCH_SETTINGS, type PathContext, SECTION, type Settings, readSettings, serverCommand } from './settings';
import { RuleTests } from './testing';

export const COMMANDS = {
  restartServer: 'fluo.restartServer',
  showServerOutput: 'fluo.showServerOutput',
  runTestsForFile: 'fluo.runTestsForFile',
} as const;

/** What `activate` hands back: the parts a test (or another extension) can reach. */
export interface FluoExtension {
  readonly server: LanguageServer;
  readonly tests: RuleTests;
  settings(): Settings;
  /** Resolves when the first start of the server has succeeded or failed. */
  readonly started: Promise<boolean>;
}

let active: FluoExtension | undefined;

export function activate(context: vscode.ExtensionContext): FluoExtension {
  const serverOutput = vscode.window.createOutputChannel('FLUO Language Server', { log: true });
  const testOutput = vscode.window.createOutputChannel('FLUO Tests');
  let reported = new Set<string>();
  let current = load();

  const server = new LanguageServer(() => current, serverOutput);
  const tests = new RuleTests(() => current, testOutput);

  context.subscriptions.push(
    serverOutput,
    testOutput,
    server,
    tests,
    vscode.commands.registerCommand(COMMANDS.restartServer, () => server.restart()),
    vscode.commands.registerCommand(COMMANDS.showServerOutput, () => serverOutput.show(true)),
    vscode.commands.registerCommand(COMMANDS.runTestsForFile, (uri?: vscode.Uri) => tests.runForFile(uri)),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (!event.affectsConfiguration(SECTION)) {
        return;
      }
      current = load();
      // Server settings reach the running server through didChangeConfiguration;
      // only a change in how it is started needs a new process.
      if (LAUNCH_SETTINGS.some((s) => event.affectsConfiguration(s))) {
        serverOutput.info('The server command changed: restarting the language server.');
        await server.restart();
      }
    }),
  );
  // `${workspaceFolder}` and relative paths in fluo.server.* follow the workspace folders.
  if (typeof vscode.workspace.onDidChangeWorkspaceFolders === 'function') {
    context.subscriptions.push(
      vscode.workspace.onDidChangeWorkspaceFolders(async () => {
        const before = JSON.stringify(serverCommand(current));
        current = load();
        if (JSON.stringify(serverCommand(current)) !== before) {
          serverOutput.info('The workspace folders changed the server command: restarting the language server.');
          await server.restart();
        } else if (!vscode.workspace.isTrusted && server.status !== 'stopped') {
          // In an untrusted workspace the program must stay outside every folder: check again with the new ones.
          serverOutput.info('The folders of the untrusted workspace changed: restarting the language server.');
          await server.restart();
        }
      }),
    );
  }
  // In Restricted Mode the server may not have started, or runs with the settings resolved without the workspace:
  // once the user trusts the workspace, start it as a trusted workspace does.
  if (typeof vscode.workspace.onDidGrantWorkspaceTrust === 'function') {
    context.subscriptions.push(
      vscode.workspace.onDidGrantWorkspaceTrust(async () => {
        current = load();
        serverOutput.info('The workspace is trusted now: starting the language server with the workspace settings.');
        await server.restart();
      }),
    );
  }

  // The menus and the beaker show for rule tests only, not for every `*_test.yaml` (context keys set here).
  tests.trackActiveEditor();
  void tests.discover().catch((error: unknown) => serverOutput.warn(`Looking for rule tests: ${String(error)}`));

  active = { server, tests, settings: () => current, started: server.start() };
  return active;

  /** The current settings; each unusable value is reported once, until it is fixed. */
  function load(): Settings {
    const { settings, problems } = readSettings(vscode.workspace.getConfiguration(SECTION), pathContext());
    for (const problem of problems.filter((p) => !reported.has(p))) {
      serverOutput.warn(problem);
      void vscode.window.showWarningMessage(`FLUO: ${problem}.`);
    }
    reported = new Set(problems);
    return settings;
  }
}

/** The workspace folders and home folder that paths in `fluo.server.*` are resolved against, and whether they may be. */
function pathContext(): PathContext {
  const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => ({ name: f.name, path: f.uri.fsPath }));
  return { folders, home: os.homedir(), trusted: vscode.workspace.isTrusted === true };
}

export async function deactivate(): Promise<void> {
  const ext = active;
  active = undefined;
  await ext?.server.stop();
}
