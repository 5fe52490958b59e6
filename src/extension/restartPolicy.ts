// When the engine process dies, restart it with a growing delay, and give up after too many
// crashes in a short window (a crash loop helps nobody; the user gets a message instead).
export interface RestartDecision {
  restart: boolean;
  delayMs: number;
  reason: string;
}

export class RestartPolicy {
  private crashes: number[] = [];

  constructor(
    private readonly maxCrashes = 5,
    private readonly windowMs = 3 * 60_000,
    private readonly baseDelayMs = 500,
    private readonly maxDelayMs = 10_000,
  ) {}

  // Call when the engine exits unexpectedly, with the current time.
  onCrash(nowMs: number): RestartDecision {
    this.crashes = this.crashes.filter((t) => nowMs - t < this.windowMs);
    this.crashes.push(nowMs);
    const count = this.crashes.length;
    if (count > this.maxCrashes) {
      return {
        restart: false,
        delayMs: 0,
        reason: `the engine crashed ${count} times in ${Math.round(this.windowMs / 60_000)} minutes; not restarting automatically`,
      };
    }
    const delayMs = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (count - 1));
    return { restart: true, delayMs, reason: `restart ${count} of ${this.maxCrashes} in this window` };
  }

  // A manual restart (command) clears the history.
  reset(): void {
    this.crashes = [];
  }
}
