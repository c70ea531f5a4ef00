/**
 * Rule tests in the editor: `fluo test --format json` run on the tests of the
 * current file, with results in the Testing view (a TestController) and, as a
 * fallback and a record, in the "FLUO Tests" output panel.
 */

import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { LineCounter, isMap, isScalar, isSeq, parseDocument } from 'yaml';

import { type ProcessRunner, findExecutable, runProcess } from './process';
import { type Command, NoTestCommand, type Settings, describe, launchSetting, notInstalled, quoteArg, testCommand } from './settings';
import {
  MANAGE_TRUST,
  MANAGE_TRUST_COMMAND,
  UNTRUSTED_CWD,
  UNTRUSTED_ENV,
  restrictedMessage,
  untrustedProgram,
  workspaceTrust,
} from './trust';
import {
  type CaseReport,
  type FileReport,
  type TestReport,
  ReportError,
  comparable,
  explainCase,
  parseReport,
  summaryText,
} from './testReport';

export const TEST_SUFFIXES = ['_test.yaml', '.fluotest.yaml'] as const;
/** Files that may be rule tests; a `*_test.yaml` one is only if its text says so (`isRuleTest`). */
export const TEST_GLOB = '**/{*_test.yaml,*.fluotest.yaml}';
/** How long one `fluo test` run may take before it is stopped. */
export const TEST_TIMEOUT_MS = 5 * 60_000;
/** How far below the folder searched to look for the tests of a rule file. */
const SEARCH_DEPTH = 8;
const SEARCH_LIMIT = 5000;
/**
 * Folders no search goes into, as `fluo test` and `fluo check` (fluo_lang/folders.py `SKIPPED_DIRS`; both are
 * tested on tests/testing_fixtures/skipped_folders.json), besides hidden ones and virtualenvs (`VIRTUALENV_MARK`).
 */
export const SKIPPED_DIRS: readonly string[] = ['node_modules', '__pycache__', 'site-packages'];
/** The file that makes a folder a virtualenv, whatever its name: `pip install` puts FLUO's example tests there. */
export const VIRTUALENV_MARK = 'pyvenv.cfg';
/**
 * The Testing view's `findFiles` exclude: the skipped folders, hidden folders and hidden files. A virtualenv is
 * known by the file it holds, which no glob tells, so its files are also passed over one by one (`skippedBelow`);
 * its `site-packages`, where installed packages are, is excluded here already.
 */
export const EXCLUDE_GLOB = `{${[...SKIPPED_DIRS.map((d) => `**/${d}/**`), '**/.*/**', '**/.*'].join(',')}}`;
/** Context keys for the menus: the active editor holds a rule test; the rule test files known (as paths). */
export const ACTIVE_RULE_TEST_KEY = 'fluo.activeEditorIsRuleTest';
export const RULE_TEST_FILES_KEY = 'fluo.ruleTestFiles';

/** Named as a rule test may be: `*_test.yaml` or `*.fluotest.yaml` (`isRuleTest` decides from the text). */
export function isTestFile(file: string): boolean {
  return TEST_SUFFIXES.some((s) => file.endsWith(s));
}

/**
 * A top-level `cases:` or `rules:` key, quoted or not, at the start of a line (after `\n` only, as Python's `^` in
 * MULTILINE); and a document that opens with a flow mapping after blank lines and comments. The same rules as
 * `fluo_run.testing.spec.is_rule_test`: tests/testing_fixtures/is_rule_test.json holds samples both are tested on.
 */
const RULE_TEST_KEY = /(?:^|\n)["']?(?:cases|rules)["']?[ \t]*:/;
const FLOW_MAPPING = /^(?:[ \t\r\n]|#[^\n]*)*\{/;

/**
 * Whether a test-named file is a FLUO rule test: a `*.fluotest.yaml` file always; a `*_test.yaml` file only when
 * it has a top-level `cases:` or `rules:` key, since other tools name their tests so too (helm-unittest's
 * `tests/*_test.yaml`). Flow style (JSON is YAML too) counts, and one byte order mark before the first key is no
 * part of it; flow style that is not valid YAML counts too, so that running it reports why. The language server
 * and `fluo test FOLDER` decide the same way.
 */
export function isRuleTest(file: string, text: string): boolean {
  if (file.endsWith('.fluotest.yaml')) {
    return true;
  }
  if (!file.endsWith('_test.yaml')) {
    return false;
  }
  const body = text.startsWith('\ufeff') ? text.slice(1) : text;
  if (RULE_TEST_KEY.test(body)) {
    return true;
  }
  if (!FLOW_MAPPING.test(body)) {
    return false;
  }
  const doc = parseDocument(body, { version: '1.1', uniqueKeys: false, prettyErrors: false });
  if (doc.errors.length > 0) {
    return true;
  }
  return isMap(doc.contents) && doc.contents.items.some((pair) => isScalar(pair.key) && (pair.key.value === 'cases' || pair.key.value === 'rules'));
}

/** `isRuleTest` for a file on disk; one that cannot be read is not offered. */
async function isRuleTestOnDisk(file: string): Promise<{ ruleTest: boolean; text: string }> {
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  return { ruleTest: text !== undefined && isRuleTest(file, text), text: text ?? '' };
}

export function isRuleFile(file: string): boolean {
  return file.endsWith('.fluo');
}

/** The stem a test file is named after: `auth` for `auth_test.yaml` and `auth.fluotest.yaml`. */
export function testStem(file: string): string {
  const base = path.basename(file);
  const suffix = TEST_SUFFIXES.find((s) => base.endsWith(s)) ?? path.extname(base);
  return base.slice(0, base.length - suffix.length);
}

/**
 * The rule files and folders a test file tests, as `fluo test` reads them: the entries of its top-level `rules:`
 * (a path or a list of paths, relative to the test file's folder), or without `rules:` the rule file it is named
 * after (`auth.fluo` for `auth_test.yaml`). Undefined when the text is not a YAML mapping.
 */
export function rulesOfTest(testFile: string, text: string): string[] | undefined {
  const doc = parseDocument(text, { version: '1.1', uniqueKeys: false, prettyErrors: false });
  if (doc.errors.length > 0 || !isMap(doc.contents)) {
    return undefined;
  }
  const base = path.dirname(testFile);
  const raw: unknown = (doc.toJS({ maxAliasCount: 100 }) as Record<string, unknown>).rules;
  if (raw === undefined || raw === null) {
    return [path.join(base, `${testStem(testFile)}.fluo`)];
  }
  const items = Array.isArray(raw) ? raw : [raw];
  return items.filter((x): x is string => typeof x === 'string' && x !== '').map((x) => path.resolve(base, x));
}

/** Whether `ruleFile` is one of `entries` or lies in a folder among them. */
export function covers(entries: readonly string[], ruleFile: string): boolean {
  return entries.some((entry) => entry === ruleFile || ruleFile.startsWith(entry.endsWith(path.sep) ? entry : entry + path.sep));
}

async function realPath(p: string): Promise<string> {
  return fs.realpath(p).catch(() => path.resolve(p));
}

/**
 * The test files that exercise `file`: the file itself if it is a rule test; for a rule file, the rule tests below
 * `root` (its workspace folder; by default its own folder) whose `rules:` name it or a folder that holds it
 * (`rulesOfTest`). A `*_test.yaml` file that is not a FLUO rule test (`isRuleTest`) is never one.
 */
export async function testFilesFor(file: string, root: string = path.dirname(file)): Promise<string[]> {
  if (isTestFile(file)) {
    return (await isRuleTestOnDisk(file)).ruleTest ? [file] : [];
  }
  if (!isRuleFile(file)) {
    return [];
  }
  const target = await realPath(file);
  const found: string[] = [];
  for (const candidate of await findTestFiles(root)) {
    const { ruleTest, text } = await isRuleTestOnDisk(candidate);
    if (!ruleTest) {
      continue;
    }
    const entries = rulesOfTest(candidate, text);
    if (entries !== undefined && covers(await Promise.all(entries.map(realPath)), target)) {
      found.push(candidate);
    }
  }
  return found.sort();
}

/**
 * The files named as tests below `dir`, passing over hidden names, `SKIPPED_DIRS` and virtualenvs (a folder holding
 * `VIRTUALENV_MARK`) below it, as `fluo test` does.
 */
export async function findTestFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  let seen = 0;
  const walk = async (d: string, depth: number): Promise<void> => {
    const entries = await fs.readdir(d, { withFileTypes: true }).catch(() => []);
    if (depth > 0 && entries.some((e) => e.name === VIRTUALENV_MARK) && (await holdsMark(d))) {
      return;
    }
    for (const e of entries) {
      if (++seen > SEARCH_LIMIT) {
        return;
      }
      if (e.name.startsWith('.')) {
        continue;
      }
      const full = path.join(d, e.name);
      if (e.isDirectory() && depth < SEARCH_DEPTH && !SKIPPED_DIRS.includes(e.name)) {
        await walk(full, depth + 1);
      } else if (e.isFile() && isTestFile(e.name)) {
        out.push(full);
      }
    }
  };
  await walk(dir, 0);
  return out;
}

/** Whether `folder` holds a `VIRTUALENV_MARK` that is no folder (a file, or a link to one or to nothing), as Python's walk. */
async function holdsMark(folder: string): Promise<boolean> {
  const mark = path.join(folder, VIRTUALENV_MARK);
  const stat = await fs.stat(mark).catch(() => undefined);
  if (stat !== undefined) {
    return !stat.isDirectory();
  }
  return (await fs.lstat(mark).catch(() => undefined)) !== undefined;
}

/**
 * Whether `file`, below the folder `root`, is somewhere no search goes: a hidden name, a `SKIPPED_DIRS` folder or a
 * virtualenv between `root` and it (`root` itself is searched, whatever it is, as a folder named to `fluo test`).
 * `marks` remembers the folders already asked about.
 */
export async function skippedBelow(root: string, file: string, marks: Map<string, Promise<boolean>> = new Map()): Promise<boolean> {
  const rel = path.relative(root, file);
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    return false;
  }
  const parts = rel.split(path.sep);
  if (parts.some((p) => p.startsWith('.')) || parts.slice(0, -1).some((p) => SKIPPED_DIRS.includes(p))) {
    return true;
  }
  let folder = root;
  for (const part of parts.slice(0, -1)) {
    folder = path.join(folder, part);
    let marked = marks.get(folder);
    if (marked === undefined) {
      marked = holdsMark(folder);
      marks.set(folder, marked);
    }
    if (await marked) {
      return true;
    }
  }
  return false;
}

/**
 * Case names and their 1-based lines, read from a test file's text before it has run: the items of the top-level
 * `cases:` list, parsed as YAML 1.1 as `fluo test` (PyYAML) reads them, block or flow style. A case is at the line
 * of its list item, and one without a usable `name:` is `case N`, as the runner calls it. Text that is not YAML, or
 * has no `cases:` list, has no cases (the run reports why).
 */
export function casesInText(text: string): { name: string; line: number }[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { version: '1.1', lineCounter: lines, uniqueKeys: false, prettyErrors: false });
  if (doc.errors.length > 0 || !isMap(doc.contents)) {
    return [];
  }
  const cases = doc.contents.get('cases', true);
  if (!isSeq(cases)) {
    return [];
  }
  const out: { name: string; line: number }[] = [];
  const seen = new Set<string>();
  cases.items.forEach((item, i) => {
    let name = `case ${i + 1}`;
    if (isMap(item)) {
      const value = item.get('name', true);
      if (isScalar(value) && typeof value.value === 'string' && value.value.trim() !== '') {
        name = value.value;
      }
    }
    // A second case of the same name is an error the run reports; the view has one item per name.
    if (seen.has(name)) {
      return;
    }
    seen.add(name);
    const node = item as { range?: [number, number, number] } | null;
    const offset = node?.range?.[0] ?? cases.range?.[0] ?? 0;
    out.push({ name, line: lines.linePos(offset).line });
  });
  return out;
}

/**
 * A Python regular expression that matches exactly one of the case names (`--run`). It ends with `\Z`, not `$`,
 * which in Python also matches before a final newline: a case named "a\n" (a block scalar) is another case.
 */
export function caseSelector(names: readonly string[]): string {
  return `^(?:${names.map((n) => n.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')).join('|')})\\Z`;
}

/** What one `fluo test` run produced: a report, or why there is none. */
export interface TestOutcome {
  readonly report?: TestReport;
  readonly failure?: string;
  /** The user cancelled the run: nothing to report, and no case counts as run. */
  readonly cancelled?: boolean;
  /** Not run: the workspace is untrusted and the settings name a program inside it (`failure` says so). */
  readonly restricted?: boolean;
  readonly command: string;
  readonly stderr: string;
}

export class RuleTests implements vscode.Disposable {
  readonly controller: vscode.TestController | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private watcher: vscode.FileSystemWatcher | undefined;
  /** Rule test files found so far (`RULE_TEST_FILES_KEY`). */
  private readonly known = new Set<string>();
  private activeIsRuleTest: boolean | undefined;

  constructor(
    private readonly settings: () => Settings,
    readonly output: vscode.OutputChannel,
    private readonly run: ProcessRunner = runProcess,
  ) {
    this.controller = typeof vscode.tests?.createTestController === 'function'
      ? vscode.tests.createTestController('fluo', 'FLUO rule tests')
      : undefined;
    if (this.controller !== undefined) {
      const controller = this.controller;
      this.disposables.push(controller);
      controller.resolveHandler = async (item) => {
        if (item === undefined) {
          await this.discover();
        }
      };
      controller.refreshHandler = async () => this.discover();
      this.disposables.push(
        controller.createRunProfile('Run', vscode.TestRunProfileKind.Run, (request, token) => this.runRequest(request, token), true),
      );
    }
  }

  dispose(): void {
    for (const d of this.disposables.splice(0)) {
      d.dispose();
    }
  }

  /**
   * Keep `ACTIVE_RULE_TEST_KEY` in step with the active editor, so that the beaker and the menus show for a rule
   * test and not for another tool's `*_test.yaml`.
   */
  trackActiveEditor(): void {
    const update = (): void => {
      const document = vscode.window.activeTextEditor?.document;
      const value = document !== undefined && isRuleTest(document.uri.fsPath, document.getText());
      if (value !== this.activeIsRuleTest) {
        this.activeIsRuleTest = value;
        void vscode.commands.executeCommand('setContext', ACTIVE_RULE_TEST_KEY, value);
      }
    };
    this.disposables.push(
      vscode.window.onDidChangeActiveTextEditor(update),
      vscode.workspace.onDidChangeTextDocument((event) => {
        if (event.document === vscode.window.activeTextEditor?.document && isTestFile(event.document.uri.fsPath)) {
          update();
        }
      }),
    );
    update();
  }

  /** Record whether `file` is a rule test, for the Explorer's menu (`RULE_TEST_FILES_KEY`). */
  private remember(file: string, ruleTest: boolean): void {
    if (ruleTest === this.known.has(file)) {
      return;
    }
    if (ruleTest) {
      this.known.add(file);
    } else {
      this.known.delete(file);
    }
    // Both spellings of each path, so `resourcePath in fluo.ruleTestFiles` holds whichever the editor compares.
    const paths = [...this.known].flatMap((f) => {
      const uri = vscode.Uri.file(f);
      return uri.path === f ? [f] : [f, uri.path];
    });
    void vscode.commands.executeCommand('setContext', RULE_TEST_FILES_KEY, paths);
  }

  /** The command "FLUO: Run Rule Tests for Current File". */
  async runForFile(uri?: vscode.Uri): Promise<TestOutcome | undefined> {
    const editor = vscode.window.activeTextEditor;
    const target = uri ?? editor?.document.uri;
    if (target === undefined || target.scheme !== 'file' || !(isRuleFile(target.fsPath) || isTestFile(target.fsPath))) {
      void vscode.window.showWarningMessage('FLUO: open a .fluo rule file or a rule test file (*.fluotest.yaml, or *_test.yaml with a top-level cases:), then run its tests.');
      return undefined;
    }
    // fluo test reads the files from disk: every rule and rule test being edited, not only this one, counts.
    await saveRuleDocuments();
    const root = vscode.workspace.getWorkspaceFolder(target)?.uri.fsPath ?? path.dirname(target.fsPath);
    const files = await testFilesFor(target.fsPath, root);
    if (files.length === 0 && isTestFile(target.fsPath)) {
      void vscode.window.showWarningMessage(
        `FLUO: ${path.basename(target.fsPath)} is not a FLUO rule test: a *_test.yaml file is one when it has a ` +
          'top-level cases: (or rules:) key; name it *.fluotest.yaml to make it one whatever it holds.',
      );
      return undefined;
    }
    if (files.length === 0) {
      const stem = path.basename(target.fsPath, '.fluo');
      void vscode.window.showInformationMessage(
        `FLUO: no rule tests for ${path.basename(target.fsPath)}: add ${stem}_test.yaml next to it ` +
          `(it names the rule file with "rules: [${path.basename(target.fsPath)}]" and lists cases).`,
      );
      return undefined;
    }
    const items = this.controller !== undefined ? files.map((f) => this.fileItem(f)) : [];
    const request = this.controller !== undefined ? new vscode.TestRunRequest(items) : undefined;
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'FLUO: running rule tests', cancellable: true },
      async (_progress, token) => {
        const outcome = await this.execute(files, [], token, request);
        this.announce(outcome, files);
        return outcome;
      },
    );
  }

  /** A run started from the Testing view. */
  private async runRequest(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
    if (this.controller === undefined) {
      return;
    }
    let chosen = request.include ?? [];
    if (chosen.length === 0) {
      if (this.controller.items.size === 0) {
        await this.discover();
      }
      this.controller.items.forEach((item) => {
        chosen = [...chosen, item];
      });
    }
    const excluded = new Set((request.exclude ?? []).map((i) => i.id));
    // Whole files run together; cases run per file with `--run`.
    const whole = new Set<string>();
    const cases = new Map<string, string[]>();
    for (const item of chosen) {
      if (excluded.has(item.id) || item.uri === undefined) {
        continue;
      }
      const file = item.uri.fsPath;
      if (item.parent === undefined) {
        whole.add(file);
      } else if (!whole.has(file)) {
        cases.set(file, [...(cases.get(file) ?? []), item.label]);
      }
    }
    const run = this.controller.createTestRun(request, 'FLUO rule tests', true);
    try {
      const wholeFiles = [...whole];
      if (wholeFiles.length > 0) {
        await this.execute(wholeFiles, [], token, undefined, run);
      }
      for (const [file, names] of cases) {
        if (token.isCancellationRequested) {
          break;
        }
        if (!whole.has(file)) {
          await this.execute([file], names, token, undefined, run);
        }
      }
    } finally {
      run.end();
    }
  }

  /** Run `fluo test` on `files` (only the cases named `names`, if any) and publish what it reports. */
  async execute(
    files: readonly string[],
    names: readonly string[],
    token?: vscode.CancellationToken,
    request?: vscode.TestRunRequest,
    existingRun?: vscode.TestRun,
  ): Promise<TestOutcome> {
    const settings = this.settings();
    const trust = workspaceTrust();
    // Untrusted: run from the extension's folder (not the workspace), on absolute paths (see trust.ts).
    const cwd = trust.trusted ? workingFolder(files[0]) : UNTRUSTED_CWD;
    const args = files.map((f) => (trust.trusted ? relativeTo(cwd, f) : path.resolve(f)));
    let cmd: Command;
    let env: NodeJS.ProcessEnv | undefined;
    try {
      cmd = testCommand(settings, args, names.length > 0 ? caseSelector(names) : undefined);
    } catch (error) {
      if (!(error instanceof NoTestCommand)) {
        throw error;
      }
      return this.notRun(files, error.message, request, existingRun);
    }
    if (!trust.trusted) {
      let what = settings.restricted;
      const found = what === undefined ? findExecutable(cmd.command) : undefined;
      if (found !== undefined) {
        const checked = untrustedProgram(found, trust.folders, launchSetting(settings));
        if ('blocked' in checked) {
          what = checked.blocked;
        } else {
          cmd = { command: checked.program, args: cmd.args };
        }
      }
      if (what !== undefined) {
        return { ...this.notRun(files, restrictedMessage('the rule tests were not run', what), request, existingRun), restricted: true };
      }
      // Not found: runProcess says so, as in a trusted workspace.
      env = { ...process.env, ...UNTRUSTED_ENV };
    }
    const shown = describe(cmd);
    const run = existingRun ?? (request !== undefined ? this.controller?.createTestRun(request, 'FLUO rule tests', true) : undefined);
    if (run !== undefined) {
      for (const file of files) {
        const item = this.fileItem(file);
        item.children.forEach((c) => {
          if (names.length === 0 || names.includes(c.label)) {
            run.started(c);
          }
        });
      }
    }
    const abort = new AbortController();
    const cancelled = token?.onCancellationRequested(() => abort.abort());
    this.output.appendLine(`$ cd ${quoteArg(cwd)} && ${shown}`);
    const result = token?.isCancellationRequested
      ? { code: undefined, stdout: '', stderr: '', failure: 'cancelled' }
      : await this.run(cmd.command, cmd.args, { cwd, timeoutMs: TEST_TIMEOUT_MS, signal: abort.signal, ...(env !== undefined ? { env } : {}) });
    cancelled?.dispose();
    if (abort.signal.aborted || token?.isCancellationRequested) {
      // Cancelled: the run ends quietly, its cases left as not run (the editor unsets what was started).
      this.output.appendLine('cancelled');
      if (run !== undefined && existingRun === undefined) {
        run.end();
      }
      return { cancelled: true, command: shown, stderr: result.stderr };
    }
    let outcome: TestOutcome;
    if (result.failure !== undefined) {
      outcome = { failure: `${shown}: ${result.failure}`, command: shown, stderr: result.stderr };
    } else {
      try {
        outcome = { report: parseReport(result.stdout), command: shown, stderr: result.stderr };
      } catch (error) {
        if (!(error instanceof ReportError)) {
          throw error;
        }
        const said = firstLine(result.stderr) ?? firstLine(result.stdout) ?? error.message;
        const hint = notInstalled(said, settings);
        outcome = {
          failure: `${shown} (exit status ${result.code}): ${said}${hint !== undefined ? `. ${hint}` : ''}`,
          command: shown,
          stderr: result.stderr,
        };
      }
    }
    if (outcome.report !== undefined) {
      this.output.append(summaryText(outcome.report));
      if (run !== undefined) {
        this.publish(outcome.report, cwd, run, names.length === 0);
      }
    } else {
      this.output.appendLine(`fluo test did not run: ${outcome.failure}`);
      if (result.stderr.trim() !== '') {
        this.output.appendLine(result.stderr.trimEnd());
      }
      if (run !== undefined) {
        for (const file of files) {
          run.errored(this.fileItem(file), new vscode.TestMessage(outcome.failure ?? 'fluo test did not run'));
        }
      }
    }
    if (run !== undefined && existingRun === undefined) {
      run.end();
    }
    return outcome;
  }

  /** `fluo test` cannot run: every file errors with `why`. */
  private notRun(
    files: readonly string[],
    why: string,
    request: vscode.TestRunRequest | undefined,
    existingRun: vscode.TestRun | undefined,
  ): TestOutcome {
    const run = existingRun ?? (request !== undefined ? this.controller?.createTestRun(request, 'FLUO rule tests', true) : undefined);
    this.output.appendLine(`fluo test did not run: ${why}`);
    for (const file of files) {
      run?.errored(this.fileItem(file), new vscode.TestMessage(why));
    }
    if (run !== undefined && existingRun === undefined) {
      run.end();
    }
    return { failure: why, command: '', stderr: '' };
  }

  /** Put a report's results into the Testing view. */
  private publish(report: TestReport, cwd: string, run: vscode.TestRun, wholeFiles: boolean): void {
    run.appendOutput(summaryText(report).replace(/\n/g, '\r\n'));
    for (const f of report.files) {
      const file = path.resolve(cwd, f.path);
      const item = this.fileItem(file);
      this.updateCases(item, f, wholeFiles);
      if (f.errors.length > 0) {
        run.errored(item, f.errors.map((p) => this.message(`${p.message}`, path.resolve(cwd, p.path), p.line)));
      }
      for (const c of f.cases) {
        const caseItem = item.children.get(caseId(file, c.name));
        if (caseItem === undefined) {
          continue;
        }
        if (c.status === 'passed') {
          run.passed(caseItem);
        } else if (c.status === 'failed') {
          run.failed(caseItem, this.failure(c, file));
        } else {
          run.errored(caseItem, c.errors.map((p) => this.message(p.message, path.resolve(cwd, p.path), p.line)));
        }
      }
    }
  }

  private failure(c: CaseReport, file: string): vscode.TestMessage[] {
    const lines = explainCase(c);
    const { expected, actual } = comparable(c);
    const first = vscode.TestMessage.diff(lines.join('\n'), expected, actual);
    first.location = new vscode.Location(vscode.Uri.file(file), new vscode.Position(c.line - 1, 0));
    const rest = c.missing
      .filter((m) => m.line !== undefined)
      .map((m) => this.message(`expected ${m.rule} did not fire`, file, m.line ?? c.line));
    return [first, ...rest];
  }

  private message(text: string, file: string, line: number): vscode.TestMessage {
    const m = new vscode.TestMessage(text);
    m.location = new vscode.Location(vscode.Uri.file(file), new vscode.Position(Math.max(0, line - 1), 0));
    return m;
  }

  /** The Testing view's item for a test file, created on first use. */
  fileItem(file: string): vscode.TestItem {
    const controller = this.controller;
    if (controller === undefined) {
      throw new Error('no test controller');
    }
    const existing = controller.items.get(file);
    if (existing !== undefined) {
      return existing;
    }
    const uri = vscode.Uri.file(file);
    // With several workspace folders, the label starts with the folder's name: `api/rules/auth_test.yaml`.
    const several = (vscode.workspace.workspaceFolders?.length ?? 0) > 1;
    const item = controller.createTestItem(file, vscode.workspace.asRelativePath(uri, several), uri);
    controller.items.add(item);
    return item;
  }

  private updateCases(item: vscode.TestItem, f: FileReport, replace: boolean): void {
    const controller = this.controller;
    if (controller === undefined || item.uri === undefined) {
      return;
    }
    const file = item.uri.fsPath;
    const fresh = f.cases.map((c) => {
      const child = item.children.get(caseId(file, c.name)) ?? controller.createTestItem(caseId(file, c.name), c.name, item.uri);
      child.range = new vscode.Range(c.line - 1, 0, c.line - 1, 0);
      return child;
    });
    if (replace) {
      item.children.replace(fresh);
    } else {
      for (const child of fresh) {
        item.children.add(child);
      }
    }
  }

  /** Fill the Testing view with the workspace's test files, and keep it in step as they change. */
  async discover(): Promise<void> {
    if (this.controller === undefined) {
      return;
    }
    if (this.watcher === undefined) {
      const watcher = vscode.workspace.createFileSystemWatcher(TEST_GLOB);
      this.watcher = watcher;
      this.disposables.push(
        watcher,
        watcher.onDidCreate((uri) => this.readCases(uri)),
        watcher.onDidChange((uri) => this.readCases(uri)),
        watcher.onDidDelete((uri) => {
          this.controller?.items.delete(uri.fsPath);
          this.remember(uri.fsPath, false);
        }),
      );
    }
    const uris = await vscode.workspace.findFiles(TEST_GLOB, EXCLUDE_GLOB, SEARCH_LIMIT);
    const marks = new Map<string, Promise<boolean>>();
    await Promise.all(uris.map((uri) => this.readCases(uri, marks)));
  }

  /** A test file's item with the cases its text lists (before any run says more); none for one in a skipped folder. */
  private async readCases(uri: vscode.Uri, marks?: Map<string, Promise<boolean>>): Promise<void> {
    const controller = this.controller;
    if (controller === undefined) {
      return;
    }
    const folder = vscode.workspace.getWorkspaceFolder(uri);
    if (folder !== undefined && (await skippedBelow(folder.uri.fsPath, uri.fsPath, marks))) {
      // In a virtualenv, site-packages, node_modules or a hidden folder: not the workspace's own.
      return;
    }
    const { ruleTest, text } = await isRuleTestOnDisk(uri.fsPath);
    this.remember(uri.fsPath, ruleTest);
    if (!ruleTest) {
      // Another tool's `*_test.yaml` (or one that stopped being a rule test).
      controller.items.delete(uri.fsPath);
      return;
    }
    const item = this.fileItem(uri.fsPath);
    item.children.replace(
      casesInText(text).map(({ name, line }) => {
        const child = item.children.get(caseId(uri.fsPath, name)) ?? controller.createTestItem(caseId(uri.fsPath, name), name, uri);
        child.range = new vscode.Range(line - 1, 0, line - 1, 0);
        return child;
      }),
    );
  }

  /** Tell the user how the run went, briefly, with a way to the details. */
  private announce(outcome: TestOutcome, files: readonly string[]): void {
    const names = files.map((f) => path.basename(f)).join(', ');
    if (outcome.cancelled === true) {
      vscode.window.setStatusBarMessage(`FLUO: rule tests in ${names} cancelled`, 5000);
      return;
    }
    if (outcome.restricted === true) {
      void Promise.resolve(vscode.window.showWarningMessage(`FLUO: ${outcome.failure}`, MANAGE_TRUST)).then(
        (choice) => choice === MANAGE_TRUST && vscode.commands.executeCommand(MANAGE_TRUST_COMMAND),
      );
      return;
    }
    if (outcome.report === undefined) {
      void Promise.resolve(vscode.window.showErrorMessage(`FLUO: rule tests did not run: ${outcome.failure}`, 'Show Output')).then(
        (choice) => choice === 'Show Output' && this.output.show(true),
      );
      return;
    }
    const s = outcome.report.summary;
    const broken = outcome.report.files.filter((f) => f.errors.length > 0).length;
    if (s.failed === 0 && s.errors === 0 && broken === 0) {
      vscode.window.setStatusBarMessage(`$(pass) FLUO: ${s.passed} rule test${s.passed === 1 ? '' : 's'} passed in ${names}`, 5000);
      if (this.controller === undefined) {
        this.output.show(true);
      }
      return;
    }
    const parts = [`${s.failed} failed`];
    if (s.errors > 0 || broken > 0) {
      parts.push(`${s.errors + broken} could not run`);
    }
    const text = `FLUO: rule tests in ${names}: ${s.passed} passed, ${parts.join(', ')}.`;
    const actions = this.controller !== undefined ? ['Show Test Results', 'Show Output'] : ['Show Output'];
    if (this.controller === undefined) {
      this.output.show(true);
    }
    void Promise.resolve(vscode.window.showWarningMessage(text, ...actions)).then((choice) => {
      if (choice === 'Show Output') {
        this.output.show(true);
      } else if (choice === 'Show Test Results') {
        void vscode.commands.executeCommand('workbench.view.testing.focus');
      }
    });
  }
}

/** Save the rule files and rule test files being edited, so that `fluo test` reads what the user sees. */
async function saveRuleDocuments(): Promise<void> {
  const dirty = vscode.workspace.textDocuments.filter(
    (d) => d.isDirty && d.uri.scheme === 'file' && (d.languageId === 'fluo' || isRuleFile(d.uri.fsPath) || isRuleTest(d.uri.fsPath, d.getText())),
  );
  await Promise.all(dirty.map((d) => d.save()));
}

export function caseId(file: string, name: string): string {
  return `${file}::${name}`;
}

/** The workspace folder that holds `file`, else the file's own folder: where `fluo test` runs. */
function workingFolder(file: string): string {
  const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(file));
  return folder?.uri.fsPath ?? path.dirname(file);
}

function relativeTo(cwd: string, file: string): string {
  const rel = path.relative(cwd, file);
  return rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
}

function firstLine(text: string): string | undefined {
  const line = text.split(/\r?\n/).find((l) => l.trim() !== '');
  return line?.trim();
}
