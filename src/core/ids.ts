/**
 * Message ids: int64, carried as decimal strings on the wire.
 *
 * Layout: a plain 63-bit counter shared by every node of a deployment and
 * kept in the store. A node leases a block of ids at a time (the seeds'
 * idgenerator): the store moves the counter past the block before the lease
 * returns, so the block is checkpointed, and a node that crashes and comes
 * back leases a fresh block above everything it may have handed out. Each
 * lease also lifts the counter to at least the wall clock in microseconds,
 * and a block is used for at most `maxBlockAgeMs`, so ids from different
 * nodes are ordered by publish time to within about that age, while ids
 * from one node are strictly increasing. (Microseconds since 1970 stay below
 * 2^53 until the year 2255, so ids are exact as JavaScript numbers too.)
 */
import { SilkError } from './errors.js';

/** Source of strictly increasing message ids. */
export interface Ids {
  /** Resolve once `n` ids can be taken with {@link next} without waiting. @throws SilkError `store_unavailable` */
  ensure(n: number): Promise<void>;
  /** The next id, greater than every id this instance returned before. @throws SilkError `store_unavailable` when none is in hand */
  next(): bigint;
}

/** Where blocks come from: the store. */
export interface IdLeaser {
  leaseIds(size: number, floor: bigint): Promise<bigint>;
}

export interface BlockIdsOptions {
  /** Ids per lease. @default 10000 */
  readonly blockSize?: number;
  /** Longest a block is used before a fresh one is leased (ms). @default 1000 */
  readonly maxBlockAgeMs?: number;
  /** Wall clock, ms since the epoch. @default Date.now */
  readonly clock?: () => number;
}

interface Block {
  next: bigint;
  readonly end: bigint;
  readonly at: number;
}

const READY: Promise<void> = Promise.resolve();

/** Ids handed out from leased blocks, with the next block fetched ahead of need. */
export class BlockIds implements Ids {
  readonly #leaser: IdLeaser;
  readonly #size: number;
  readonly #maxAge: number;
  readonly #clock: () => number;
  #cur: Block | null = null;
  #spare: Block | null = null;
  #fetching: Promise<void> | null = null;

  constructor(leaser: IdLeaser, options: BlockIdsOptions = {}) {
    this.#leaser = leaser;
    this.#size = options.blockSize ?? 10_000;
    this.#maxAge = options.maxBlockAgeMs ?? 1000;
    this.#clock = options.clock ?? Date.now;
  }

  #available(): bigint {
    let n = 0n;
    if (this.#cur !== null) n += this.#cur.end - this.#cur.next;
    if (this.#spare !== null) n += this.#spare.end - this.#spare.next;
    return n;
  }

  ensure(n: number): Promise<void> {
    const cur = this.#cur;
    if (cur !== null && this.#available() >= BigInt(n) && this.#clock() - cur.at < this.#maxAge) return READY;
    return this.#waitFor(n);
  }

  async #waitFor(n: number): Promise<void> {
    // After a quiet spell the block in hand is stale: lease a fresh one so ids stay near the clock.
    const cur = this.#cur;
    if (cur !== null && this.#clock() - cur.at >= this.#maxAge) {
      if (this.#spare === null || this.#clock() - this.#spare.at >= this.#maxAge) {
        await this.#fetch(Math.max(this.#size, n)).catch(() => undefined);
      }
      this.#rotate();
    }
    for (let attempt = 0; this.#available() < BigInt(n) || this.#cur === null; attempt++) {
      if (attempt >= 2) throw new SilkError('store_unavailable', 'no message ids available: the store does not answer');
      await this.#fetch(Math.max(this.#size, n));
      if (this.#cur === null || this.#cur.next >= this.#cur.end) this.#rotate();
    }
  }

  next(): bigint {
    let b = this.#cur;
    const now = this.#clock();
    if (b === null || b.next >= b.end || (now - b.at >= this.#maxAge && this.#spare !== null)) {
      this.#rotate();
      b = this.#cur;
      if (b === null || b.next >= b.end) {
        void this.#fetch(this.#size).catch(() => undefined);
        throw new SilkError('store_unavailable', 'no message ids available: the store does not answer');
      }
    }
    const id = b.next++;
    // Fetch ahead: half the block used, or half its lifetime gone.
    if (this.#spare === null && this.#fetching === null && ((b.end - b.next) * 2n < BigInt(this.#size) || now - b.at >= this.#maxAge / 2)) {
      void this.#fetch(this.#size).catch(() => undefined);
    }
    return id;
  }

  #rotate(): void {
    if (this.#spare === null) return;
    this.#cur = this.#spare;
    this.#spare = null;
  }

  #fetch(size: number): Promise<void> {
    if (this.#fetching !== null) return this.#fetching;
    const at = this.#clock();
    this.#fetching = this.#leaser
      .leaseIds(size, BigInt(at) * 1000n)
      .then(
        (start) => {
          const block = { next: start, end: start + BigInt(size), at };
          // A spare that is already waiting is older: use it up first.
          if (this.#cur === null) this.#cur = block;
          else if (this.#spare === null) this.#spare = block;
          else {
            this.#cur = this.#spare;
            this.#spare = block;
          }
        },
        () => {
          throw new SilkError('store_unavailable', 'no message ids available: the store does not answer');
        },
      )
      .finally(() => {
        this.#fetching = null;
      });
    return this.#fetching;
  }
}
