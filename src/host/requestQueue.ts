// One engine request at a time, highest priority first (inline completions before chat),
// first come first served within a priority. A request that has waited rises one priority per
// agingMs it waits, up to the top, so a stream of completions cannot starve a chat request: once
// it has waited 2 s it runs next. Queued and running requests can be cancelled; a request may
// supersede the earlier ones of its group (a newer completion replaces the older, now stale one).
import type { CancelToken } from '../native/addon';
import { TidalError } from '../native/errors';

export const PRIORITY_COMPLETION = 2;
export const PRIORITY_CHAT = 1;
export const PRIORITY_BACKGROUND = 0;
const PRIORITY_TOP = PRIORITY_COMPLETION;

export interface QueueOptions {
  now?: () => number; // milliseconds; performance.now by default (tests move their own clock)
  // A waiting request rises one priority per agingMs waited, up to PRIORITY_TOP. Background jobs
  // do not rise: nobody waits for them, and they run whenever no request waits.
  agingMs?: number;
}

/** How a request that never ran is rejected: ERR_TIDAL_CANCELLED, the reason in the message. */
function cancelledBeforeStart(requestId: string, reason: 'cancelled' | 'superseded'): TidalError {
  return new TidalError('ERR_TIDAL_CANCELLED', `Request ${requestId} was ${reason} before it started.`);
}

export interface QueuedJob<T> {
  id: string;
  priority: number;
  group?: string; // jobs of one group can supersede each other
  supersede?: boolean; // cancel the queued and running jobs of the same group
  // While it runs, a job of higher priority arriving cancels it (a background save that would
  // hold the engine for seconds); the job sees its cancel token and gives up.
  preemptible?: boolean;
  run(cancel: CancelToken): Promise<T>;
}

interface Entry {
  job: QueuedJob<unknown>;
  sequence: number;
  enqueuedAt: number;
  cancel: CancelToken;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

export interface QueueStats {
  queued: number;
  running: string | undefined;
  completed: number;
  cancelled: number;
}

export class RequestQueue {
  private readonly waiting: Entry[] = [];
  private running: Entry | undefined;
  private nextSequence = 0;
  private completed = 0;
  private cancelledCount = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly now: () => number;
  private readonly agingMs: number;

  constructor(
    private readonly createCancelToken: () => CancelToken,
    options: QueueOptions = {},
  ) {
    this.now = options.now ?? (() => performance.now());
    this.agingMs = options.agingMs ?? 2_000;
  }

  enqueue<T>(job: QueuedJob<T>): Promise<T> {
    if (job.supersede && job.group !== undefined) this.cancelGroup(job.group, 'superseded');
    const running = this.running;
    if (running?.job.preemptible && job.priority > running.job.priority && !running.cancel.cancelled) {
      running.cancel.cancel();
      this.cancelledCount++;
    }
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({
        job: job as QueuedJob<unknown>,
        sequence: this.nextSequence++,
        enqueuedAt: this.now(),
        cancel: this.createCancelToken(),
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      this.pump();
    });
  }

  // Cancels a queued request (its promise rejects with RequestCancelledError) or signals a
  // running one (its job sees the cancel token). Returns false when the id is unknown.
  cancel(id: string): boolean {
    return this.cancelWhere((entry) => entry.job.id === id, 'cancelled') > 0;
  }

  cancelGroup(group: string, reason: 'cancelled' | 'superseded' = 'cancelled'): number {
    return this.cancelWhere((entry) => entry.job.group === group, reason);
  }

  cancelAll(): number {
    return this.cancelWhere(() => true, 'cancelled');
  }

  // Resolves once nothing runs and nothing waits (e.g. after cancelAll, before unloading).
  whenIdle(): Promise<void> {
    if (this.running === undefined && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stats(): QueueStats {
    return { queued: this.waiting.length, running: this.running?.job.id, completed: this.completed, cancelled: this.cancelledCount };
  }

  private cancelWhere(match: (entry: Entry) => boolean, reason: 'cancelled' | 'superseded'): number {
    let count = 0;
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const entry = this.waiting[i];
      if (!match(entry)) continue;
      this.waiting.splice(i, 1);
      entry.cancel.cancel();
      this.cancelledCount++;
      entry.reject(cancelledBeforeStart(entry.job.id, reason));
      count++;
    }
    if (this.running !== undefined && match(this.running) && !this.running.cancel.cancelled) {
      this.running.cancel.cancel();
      this.cancelledCount++;
      count++;
    }
    return count;
  }

  private effectivePriority(entry: Entry, now: number): number {
    const priority = entry.job.priority;
    if (priority <= PRIORITY_BACKGROUND || priority >= PRIORITY_TOP) return priority;
    return Math.min(PRIORITY_TOP, priority + Math.floor((now - entry.enqueuedAt) / this.agingMs));
  }

  private pump(): void {
    if (this.running !== undefined) return;
    if (this.waiting.length === 0) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
      return;
    }
    const now = this.now();
    const priorities = this.waiting.map((entry) => this.effectivePriority(entry, now));
    let best = 0;
    for (let i = 1; i < this.waiting.length; i++) {
      if (priorities[i] > priorities[best] || (priorities[i] === priorities[best] && this.waiting[i].sequence < this.waiting[best].sequence)) {
        best = i;
      }
    }
    const [entry] = this.waiting.splice(best, 1);
    this.running = entry;
    let result: Promise<unknown>;
    try {
      result = entry.job.run(entry.cancel);
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(entry.resolve, entry.reject).finally(() => {
      this.completed++;
      this.running = undefined;
      this.pump();
    });
  }
}
