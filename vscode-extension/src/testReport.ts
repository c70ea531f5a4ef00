/**
 * The report `fluo test --format json` prints, read into typed data, and the
 * words that explain a failed case to a person.
 */

export type Status = 'passed' | 'failed' | 'error';

/** A problem that stopped a test file or case from running, at a line of a file. */
export interface Problem {
  readonly path: string;
  readonly line: number;
  readonly message: string;
}

export interface ExpectedSignal {
  readonly rule: string;
  readonly line?: number;
  readonly trace?: string;
  readonly trace_id?: string;
  readonly count?: number;
  readonly observed?: Record<string, unknown>;
  /** How many of the expected signals did not come (in `missing` rows only). */
  readonly missing?: number;
}

export interface Signal {
  readonly rule: string;
  readonly message?: string;
  readonly trace_id?: string;
  readonly observed?: Record<string, unknown>;
  readonly [key: string]: unknown;
}

export interface CaseReport {
  readonly name: string;
  /** 1-based line of the case in its test file. */
  readonly line: number;
  readonly status: Status;
  readonly errors: readonly Problem[];
  readonly expected: readonly ExpectedSignal[];
  readonly signals: readonly Signal[];
  readonly missing: readonly ExpectedSignal[];
  readonly unexpected: readonly Signal[];
}

export interface FileReport {
  /** As `fluo test` printed it: relative to the folder it ran in, when below it. */
  readonly path: string;
  readonly status: Status;
  readonly errors: readonly Problem[];
  readonly cases: readonly CaseReport[];
}

export interface TestReport {
  readonly summary: { passed: number; failed: number; errors: number; cases: number; exitCode: number };
  readonly files: readonly FileReport[];
}

export class ReportError extends Error {}

/** Read `fluo test --format json` output; throws `ReportError` when it is not such a report. */
export function parseReport(text: string): TestReport {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new ReportError('fluo test did not print a JSON report');
  }
  if (!isObject(data) || !Array.isArray(data.files) || !isObject(data.summary)) {
    throw new ReportError('fluo test printed JSON that is not a test report (no "summary" and "files")');
  }
  const files = data.files.filter(isObject).map(fileReport);
  const s = data.summary;
  return {
    summary: {
      passed: num(s.passed),
      failed: num(s.failed),
      errors: num(s.errors),
      cases: num(s.cases),
      exitCode: num(s.exit_code),
    },
    files,
  };
}

function fileReport(f: Record<string, unknown>): FileReport {
  return {
    path: str(f.path),
    status: status(f.status),
    errors: list(f.errors).map(problem),
    cases: list(f.cases).map(caseReport),
  };
}

function caseReport(c: Record<string, unknown>): CaseReport {
  return {
    name: str(c.name),
    line: num(c.line) || 1,
    status: status(c.status),
    errors: list(c.errors).map(problem),
    expected: list(c.expected).map(expected),
    signals: list(c.signals).map(signal),
    missing: list(c.missing).map(expected),
    unexpected: list(c.unexpected).map(signal),
  };
}

function problem(p: Record<string, unknown>): Problem {
  return { path: str(p.path), line: num(p.line) || 1, message: str(p.message) };
}

function expected(e: Record<string, unknown>): ExpectedSignal {
  return { ...e, rule: str(e.rule) } as ExpectedSignal;
}

function signal(s: Record<string, unknown>): Signal {
  return { ...s, rule: str(s.rule) };
}

/** One line per way the case went wrong, the way the text report says it. */
export function explainCase(c: CaseReport): string[] {
  const lines: string[] = [];
  for (const p of c.errors) {
    lines.push(`${p.path}:${p.line}: ${p.message}`);
  }
  for (const m of c.missing) {
    const n = m.missing ?? 1;
    const what = `${n === 1 ? 'a signal' : `${n} signals`} of ${m.rule}${scope(m)}${observedText(m.observed, ' with ')}`;
    lines.push(`expected ${what}${m.line !== undefined ? ` (line ${m.line})` : ''}, but it did not fire`);
  }
  for (const u of c.unexpected) {
    lines.push(`unexpected signal of ${u.rule}${u.trace_id ? ` on trace ${u.trace_id}` : ''}${observedText(u.observed, ': ')}`);
  }
  if (lines.length === 0 && c.status !== 'passed') {
    lines.push(`${c.status}`);
  }
  return lines;
}

/** Expected and actual signals in one comparable shape, for a side-by-side diff. */
export function comparable(c: CaseReport): { expected: string; actual: string } {
  const pick = (s: Record<string, unknown>): Record<string, unknown> => {
    const out: Record<string, unknown> = { rule: s.rule };
    for (const key of ['trace', 'trace_id', 'count', 'observed'] as const) {
      if (s[key] !== undefined) {
        out[key] = s[key];
      }
    }
    return out;
  };
  const actual = c.signals.map((s) => ({ rule: s.rule, trace_id: s.trace_id, observed: s.observed }));
  return {
    expected: JSON.stringify(c.expected.map((e) => pick({ ...e })), null, 2),
    actual: JSON.stringify(actual.map((s) => pick(s)), null, 2),
  };
}

/** The report as plain text, for the output panel. */
export function summaryText(report: TestReport): string {
  const out: string[] = [];
  for (const f of report.files) {
    out.push(`${f.path}: ${f.status}`);
    for (const p of f.errors) {
      out.push(`  ${p.path}:${p.line}: ${p.message}`);
    }
    for (const c of f.cases) {
      out.push(`  ${mark(c.status)} ${c.name} (line ${c.line})`);
      if (c.status !== 'passed') {
        out.push(...explainCase(c).map((l) => `      ${l}`));
      }
    }
  }
  const s = report.summary;
  out.push(`${s.passed} passed, ${s.failed} failed` + (s.errors > 0 ? `, ${s.errors} errors` : ''));
  return out.join('\n') + '\n';
}

function mark(s: Status): string {
  return s === 'passed' ? 'PASS ' : s === 'failed' ? 'FAIL ' : 'ERROR';
}

function scope(e: ExpectedSignal): string {
  if (e.trace_id !== undefined) {
    return ` on trace ${e.trace_id}`;
  }
  return e.trace !== undefined ? ` on trace "${e.trace}"` : '';
}

function observedText(observed: Record<string, unknown> | undefined, lead: string): string {
  if (observed === undefined || Object.keys(observed).length === 0) {
    return '';
  }
  return lead + Object.entries(observed).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(', ');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function list(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v) ? v.filter(isObject) : [];
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v);
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

function status(v: unknown): Status {
  return v === 'passed' || v === 'failed' ? v : 'error';
}
