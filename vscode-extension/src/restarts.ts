/**
 * When a crashed language server is started again, and when the extension gives up.
 */

export interface RestartDecision {
  /** Start the server again. */
  readonly restart: boolean;
  /** Crashes inside the current window, this one included. */
  readonly crashes: number;
}

/**
 * Restarts a crashed server until it has crashed `maxCrashes` times within
 * `windowMs`; then it stops, so a server that dies on start does not loop.
 */
export class RestartPolicy {
  private crashTimes: number[] = [];

  constructor(
    readonly maxCrashes = 5,
    readonly windowMs = 3 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Record one crash and decide whether to restart. */
  crashed(): RestartDecision {
    const t = this.now();
    this.crashTimes = this.crashTimes.filter((c) => t - c < this.windowMs);
    this.crashTimes.push(t);
    return { restart: this.crashTimes.length < this.maxCrashes, crashes: this.crashTimes.length };
  }

  /** Forget past crashes: the user restarted the server or changed how it starts. */
  reset(): void {
    this.crashTimes = [];
  }

  get windowMinutes(): number {
    return Math.round(this.windowMs / 60_000);
  }
}
