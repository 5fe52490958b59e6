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

export interface WatchdogTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface WatchdogOptions {
  /** A cheap request to the engine: resolves when it answers. A rejection (a connection that is
   *  gone, a broken answer) is no answer, and the deadline runs on. */
  ping(): Promise<unknown>;
  /** Called once, when a ping went unanswered for timeoutMs; the watchdog is stopped by then. */
  onUnresponsive(waitedMs: number): void;
  intervalMs?: number; // from one answer to the next ping
  timeoutMs?: number; // how long a ping may go unanswered
  timers?: WatchdogTimers;
}

const nodeTimers: WatchdogTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * A process that has not exited is not necessarily listening: stuck in a loop, or past a framing
 * error it cannot recover from, it would leave every request waiting and never trigger a
 * restart. The watchdog pings it every intervalMs; one that leaves a ping unanswered for
 * timeoutMs counts as crashed.
 */
export class ResponseWatchdog {
  private timer: unknown;
  private stopped = true;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly timers: WatchdogTimers;

  constructor(private readonly options: WatchdogOptions) {
    this.intervalMs = options.intervalMs ?? 15_000;
    // Generous: the host's thread may be busy for seconds (tokenizing a large repository, a
    // chat template at its limit) without being stuck.
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.timers = options.timers ?? nodeTimers;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.timers.setTimeout(() => this.ping(), this.intervalMs);
  }

  private ping(): void {
    if (this.stopped) return;
    let answered = false;
    const deadline = this.timers.setTimeout(() => {
      if (answered || this.stopped) return;
      this.stop();
      this.options.onUnresponsive(this.timeoutMs);
    }, this.timeoutMs);
    this.timer = deadline;
    const onAnswer = () => {
      if (answered || this.stopped || this.timer !== deadline) return;
      answered = true;
      this.timers.clearTimeout(deadline);
      this.schedule();
    };
    let pinged: Promise<unknown>;
    try {
      pinged = this.options.ping();
    } catch (error) {
      pinged = Promise.reject(error);
    }
    pinged.then(onAnswer, () => undefined);
  }
}
