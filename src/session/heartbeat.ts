/**
 * One shared timing structure for every connection's heartbeat: a wheel of
 * slots that turns once per interval. Each tick visits one slot, so the
 * per-interval work (pings, liveness and token-expiry checks) is spread
 * evenly instead of bursting, and there is no timer per connection.
 *
 * A tick every {@link TICK_MS} keeps each burst small: with 16 slots, 10,000
 * connections meant 625 pings (and then 625 pongs) at once every 1.6 s, and
 * messages queued behind them waited 10–20 ms for their write.
 *
 * The node must not blame its clients for its own stalls, so a tick visits
 * its slot only after the loop has polled I/O (a `setImmediate` after the
 * timer): what the clients sent meanwhile has been read before they are
 * judged. A tick that comes more than {@link LATE_MS} late marks a resume
 * ({@link HeartbeatWheel.resumedAt}): silence is counted from there, so
 * that round closes nobody.
 */

/** A member of the wheel. */
export interface Beating {
  /** The slot index, assigned by the wheel. */
  slot: number;
}

/** Aimed time between ticks, ms. */
const TICK_MS = 100;
const MIN_SLOTS = 16;
const MAX_SLOTS = 600;
/**
 * A tick this much later than it was due means the process itself did not
 * run (a stall: a long synchronous task, a GC pause, the process stopped).
 */
export const LATE_MS = 100;

/** Slots of a wheel that turns once per `intervalMs`: one per {@link TICK_MS}, within 16–600. */
export function slotsFor(intervalMs: number): number {
  return Math.min(MAX_SLOTS, Math.max(MIN_SLOTS, Math.round(intervalMs / TICK_MS)));
}

export class HeartbeatWheel<T extends Beating> {
  readonly #slots: Set<T>[];
  readonly #visit: (member: T, now: number) => void;
  readonly #timer: NodeJS.Timeout;
  readonly #tickMs: number;
  #cursor = 0;
  #next = 0;
  /** When the wheel last ticked (from its start: a stall before the first tick counts too). */
  #lastTick = Date.now();
  #resumed = 0;

  /**
   * @param intervalMs how often each member is visited
   * @param visit called once per interval per member
   */
  constructor(intervalMs: number, visit: (member: T, now: number) => void) {
    this.#visit = visit;
    const slots = slotsFor(intervalMs);
    this.#slots = Array.from({ length: slots }, () => new Set<T>());
    this.#tickMs = Math.max(1, intervalMs / slots);
    this.#timer = setInterval(() => this.#tick(), this.#tickMs);
    this.#timer.unref();
  }

  add(member: T): void {
    member.slot = this.#next++ % this.#slots.length;
    this.#slots[member.slot]!.add(member);
  }

  delete(member: T): void {
    this.#slots[member.slot]?.delete(member);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /**
   * When the wheel last ticked again after the process had stalled (its tick
   * more than {@link LATE_MS} late), in ms since the epoch; 0 if never.
   * Silence from clients during a stall is the server's own: count it from
   * here.
   */
  get resumedAt(): number {
    return this.#resumed;
  }

  #tick(): void {
    const slot = this.#slots[this.#cursor]!;
    this.#cursor = (this.#cursor + 1) % this.#slots.length;
    const now = Date.now();
    if (now - this.#lastTick > this.#tickMs + LATE_MS) this.#resumed = now;
    this.#lastTick = now;
    // Judge after the poll phase, on what the clients sent up to now.
    setImmediate(this.#visitSlot, slot);
  }

  readonly #visitSlot = (slot: Set<T>): void => {
    const now = Date.now();
    for (const m of slot) this.#visit(m, now);
  };
}
