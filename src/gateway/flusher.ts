/**
 * Coalesced writes: connections that received frames during a tick are
 * flushed together on the next turn of the event loop, each with one write.
 *
 * One write per socket per tick instead of one per message is the main
 * lever on throughput: the write syscall is the wall (about 100k/s per
 * core). Flushing runs in time slices so that a fan-out to tens of thousands
 * of sockets does not starve timers, heartbeats and API requests; frames
 * that arrive meanwhile join the queues, so coalescing grows with load.
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

export class Flusher {
  #list: Flushable[] = [];
  #head = 0;
  #scheduled = false;
  readonly #before: () => void;
  readonly #run = (): void => this.#flush();

  /** @param before runs at the start of every flush slice (to queue waiting frames: the hub's fan-out batches) */
  constructor(before: () => void = () => {}) {
    this.#before = before;
  }

  /** Queue `f` for the next flush; call when its queue goes from empty to non-empty. */
  mark(f: Flushable): void {
    f.dirty = true;
    this.#list.push(f);
    this.wake();
  }

  /** Make sure a flush slice runs soon. */
  wake(): void {
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#run);
    }
  }

  /** Flush everything now, in one go (used on shutdown). */
  flushAll(): void {
    this.#before();
    while (this.#head < this.#list.length) this.#list[this.#head++]!.flush();
    this.#list.length = 0;
    this.#head = 0;
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
      if (++n % CLOCK_EVERY === 0 && performance.now() - start >= FLUSH_SLICE_MS) break;
    }
    if (i >= list.length) {
      list.length = 0;
      this.#head = 0;
      this.#scheduled = false;
      return;
    }
    // Out of time: drop what is done and continue after pending I/O and timers.
    if (i > 4096 && i * 2 > list.length) {
      list.splice(0, i);
      i = 0;
    }
    this.#head = i;
    setImmediate(this.#run);
  }
}
