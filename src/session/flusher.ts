/**
 * Coalesced writes: connections that received frames during a tick are
 * flushed together on the next turn of the event loop, each with one write.
 *
 * One write per socket per tick instead of one per message is the main
 * lever on throughput: the write syscall is the wall (about 100k/s per
 * core). Flushing runs in time slices so that a fan-out to tens of thousands
 * of sockets does not starve timers, heartbeats and API requests; frames
 * that arrive meanwhile join the queues, so coalescing grows with load.
 *
 * The flusher also times the wait it adds: one mark in
 * {@link DELAY_SAMPLE_EVERY} is stamped, and its flush reports how long it
 * sat in the list (from the frame that marked the connection to its write).
 * That wait is the delivery delay under load: the API has answered, and the
 * message is still in this process.
 */

/** Something with a queue to write out. */
export interface Flushable {
  /** True while the flushable sits in the flusher's list. */
  dirty: boolean;
  flush(): void;
}

/** Longest a flush slice runs before yielding to the event loop (ms). */
export const FLUSH_SLICE_MS = 4;
/** How many flushes between clock reads. */
const CLOCK_EVERY = 32;
/** One mark in this many is timed to its flush (a power of two). */
export const DELAY_SAMPLE_EVERY = 16;

export interface FlusherOptions {
  /** Runs at the start of every flush slice (to queue waiting frames: the hub's fan-out batches). */
  readonly before?: () => void;
  /** Gets the sampled waits, ms from a mark to its flush. */
  readonly delay?: (ms: number) => void;
}

export class Flusher {
  #list: Flushable[] = [];
  #head = 0;
  #scheduled = false;
  readonly #before: () => void;
  readonly #delay: ((ms: number) => void) | undefined;
  readonly #run = (): void => this.#flush();
  /** Marks made since the start; the entry at `#list[j]` is mark number `#base + j`. */
  #marks = 0;
  #base = 0;
  /** Stamped marks not yet flushed, in order: a mark's number, then `performance.now()` when it was made. */
  #stamps: number[] = [];
  #stampHead = 0;

  constructor(options: FlusherOptions = {}) {
    this.#before = options.before ?? (() => {});
    this.#delay = options.delay;
  }

  /** Queue `f` for the next flush; call when its queue goes from empty to non-empty. */
  mark(f: Flushable): void {
    f.dirty = true;
    this.#list.push(f);
    if ((this.#marks & (DELAY_SAMPLE_EVERY - 1)) === 0 && this.#delay !== undefined) this.#stamps.push(this.#marks, performance.now());
    this.#marks++;
    this.wake();
  }

  /** Make sure a flush slice runs soon. */
  wake(): void {
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#run);
    }
  }

  #flush(): void {
    // `#scheduled` stays true while the slice runs: what `before` marks joins this slice.
    this.#before();
    const list = this.#list;
    const start = performance.now();
    let i = this.#head;
    let n = 0;
    while (i < list.length) {
      list[i++]!.flush();
      if (++n % CLOCK_EVERY === 0) {
        const now = performance.now();
        this.#timeStamps(this.#base + i, now);
        if (now - start >= FLUSH_SLICE_MS) break;
      }
    }
    if (this.#stampHead < this.#stamps.length) this.#timeStamps(this.#base + i, performance.now());
    if (i >= list.length) {
      this.#reset();
      this.#scheduled = false;
      return;
    }
    // Out of time: drop what is done and continue after pending I/O and timers.
    if (i > 4096 && i * 2 > list.length) {
      list.splice(0, i);
      this.#base += i;
      i = 0;
    }
    this.#head = i;
    setImmediate(this.#run);
  }

  /** Everything listed is flushed: empty the list. */
  #reset(): void {
    this.#base += this.#list.length;
    this.#list.length = 0;
    this.#head = 0;
  }

  /** Report the wait of every stamped mark numbered below `flushed` (written by `now`). */
  #timeStamps(flushed: number, now: number): void {
    const stamps = this.#stamps;
    let h = this.#stampHead;
    if (h >= stamps.length || stamps[h]! >= flushed) return;
    for (; h < stamps.length && stamps[h]! < flushed; h += 2) this.#delay!(now - stamps[h + 1]!);
    if (h >= stamps.length) {
      stamps.length = 0;
      h = 0;
    } else if (h > 1024 && h * 2 > stamps.length) {
      stamps.splice(0, h);
      h = 0;
    }
    this.#stampHead = h;
  }
}
