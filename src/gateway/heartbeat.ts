/**
 * One shared timing structure for every connection's heartbeat: a wheel of
 * slots that turns once per interval. Each tick visits one slot, so the
 * per-interval work (pings, liveness and token-expiry checks) is spread
 * evenly instead of bursting, and there is no timer per connection.
 */

/** A member of the wheel. */
export interface Beating {
  /** The slot index, assigned by the wheel. */
  slot: number;
}

const SLOTS = 16;

export class HeartbeatWheel<T extends Beating> {
  readonly #slots: Set<T>[] = Array.from({ length: SLOTS }, () => new Set<T>());
  readonly #visit: (member: T, now: number) => void;
  readonly #timer: NodeJS.Timeout;
  #cursor = 0;
  #next = 0;

  /**
   * @param intervalMs how often each member is visited
   * @param visit called once per interval per member
   */
  constructor(intervalMs: number, visit: (member: T, now: number) => void) {
    this.#visit = visit;
    this.#timer = setInterval(() => this.#tick(), Math.max(1, intervalMs / SLOTS));
    this.#timer.unref();
  }

  add(member: T): void {
    member.slot = this.#next++ % SLOTS;
    this.#slots[member.slot]!.add(member);
  }

  delete(member: T): void {
    this.#slots[member.slot]?.delete(member);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #tick(): void {
    const slot = this.#slots[this.#cursor]!;
    this.#cursor = (this.#cursor + 1) % SLOTS;
    const now = Date.now();
    for (const m of slot) this.#visit(m, now);
  }
}
