/**
 * The node-wide catch-up scheduler. Every catch-up (a welcome's inbox page,
 * an `inbox` request, a channel's recovery) asks it for a turn before each
 * store read and takes frames from it before it sends them, so that however
 * many clients come back at once:
 *
 * - at most `catchupFramesPerTurn` stored messages (a store read counts as
 *   one) are sent per turn of the event loop, and the budget comes back only
 *   after the loop has polled its sockets (a `setImmediate`), so reads of
 *   client frames, pongs and API requests go on between slices, whatever the
 *   store (on SQLite a read resolves without yielding to I/O);
 * - at most `catchupConcurrency` catch-ups hold a turn at once, which bounds
 *   the store reads in flight (on Redis each is a round trip);
 * - turns go round robin: a catch-up that has sent one page, or was cut
 *   short by the budget, goes to the back of the line.
 *
 * A catch-up that waits for its turn holds its session's live deliveries
 * back, as any catch-up does (session.ts), and its deferred client frames
 * stay capped by `maxDeferredBytes`.
 */

export interface SchedulerLimits {
  readonly catchupFramesPerTurn: number;
  readonly catchupConcurrency: number;
}

const GRANTED: Promise<void> = Promise.resolve();

export class CatchupScheduler {
  readonly #limits: SchedulerLimits;
  /** Frames left in this turn. */
  #left: number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];
  /** Index of the first waiter not yet served (the line is compacted as it is served). */
  #head = 0;
  #armed = false;
  /** Stored messages sent so far, and turns granted (for metrics). */
  frames = 0;
  turns = 0;

  constructor(limits: SchedulerLimits) {
    this.#limits = limits;
    this.#left = limits.catchupFramesPerTurn;
  }

  /** Catch-ups that hold a turn now. */
  get running(): number {
    return this.#running;
  }

  /** Catch-ups waiting in line for a turn. */
  get waiting(): number {
    return this.#waiting.length - this.#head;
  }

  /**
   * Wait for a turn: a place among the running catch-ups and budget left in
   * this turn of the loop, of which a turn takes one frame's worth for the
   * store read it makes. Granted at once when nobody waits and both are
   * free; otherwise at the back of the line.
   */
  enter(): Promise<void> {
    if (this.waiting === 0 && this.#running < this.#limits.catchupConcurrency && this.#left > 0) {
      this.#grant();
      return GRANTED;
    }
    return new Promise<void>((resolve) => {
      this.#waiting.push(resolve);
      this.#arm();
    });
  }

  /** Give the turn back (the catch-up is done, or waits for something else: its client to read). */
  leave(): void {
    this.#running--;
    if (this.waiting > 0) this.#arm();
  }

  /** Give the turn back and wait in line for the next one. */
  next(): Promise<void> {
    this.leave();
    return this.enter();
  }

  /** Take up to `wanted` frames to send from this turn's budget; fewer (even 0) when it runs out. */
  take(wanted: number): number {
    const n = Math.max(0, Math.min(wanted, this.#left));
    this.frames += n;
    this.#spend(n);
    return n;
  }

  #grant(): void {
    this.#running++;
    this.turns++;
    this.#spend(1);
  }

  #spend(n: number): void {
    this.#left -= n;
    this.#arm();
  }

  /** The budget comes back after the loop has polled I/O. */
  #arm(): void {
    if (this.#armed) return;
    this.#armed = true;
    setImmediate(() => this.#turn());
  }

  #turn(): void {
    this.#armed = false;
    this.#left = this.#limits.catchupFramesPerTurn;
    const max = this.#limits.catchupConcurrency;
    const line = this.#waiting;
    while (this.#head < line.length && this.#running < max && this.#left > 0) {
      this.#grant();
      line[this.#head++]!();
    }
    if (this.#head > 1024 && this.#head * 2 > line.length) {
      line.splice(0, this.#head);
      this.#head = 0;
    } else if (this.#head === line.length) {
      line.length = 0;
      this.#head = 0;
    }
  }
}
