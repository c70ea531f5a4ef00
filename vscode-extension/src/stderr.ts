/**
 * What a server process last said on stderr, so a failure message can quote it.
 */

import * as readline from 'node:readline';
import type { Readable } from 'node:stream';

/** Where the lines go as they arrive: the server's output channel. */
export interface LineSink {
  appendLine(line: string): void;
}

/** The last lines a process wrote on stderr (forwarded to `sink` as they come), and when the stream ended. */
export class StderrTail {
  private lines: string[] = [];
  private ended: Promise<void> = Promise.resolve();

  constructor(readonly keep = 20) {}

  /** Follow a new process's stderr; what an earlier process said is forgotten. */
  follow(input: Readable, sink: LineSink): void {
    const lines: string[] = [];
    this.lines = lines;
    this.ended = new Promise((resolve) => {
      const reader = readline.createInterface({ input, crlfDelay: Infinity, terminal: false });
      reader.on('line', (line) => {
        sink.appendLine(line);
        lines.push(line);
        if (lines.length > this.keep) {
          lines.shift();
        }
      });
      reader.on('close', () => resolve());
    });
  }

  /** The last non-blank line, once the stream has ended or `waitMs` has passed. */
  async lastLine(waitMs: number): Promise<string | undefined> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.ended, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
    return [...this.lines].reverse().find((l) => l.trim() !== '')?.trim();
  }
}
