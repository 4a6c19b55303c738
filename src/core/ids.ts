/**
 * Message ids: int64, carried as decimal strings on the wire.
 *
 * Layout (shared with the durable store, which leases blocks from disk or
 * Redis): a plain 63-bit counter. In-process ids start from the wall clock in
 * microseconds, so a node that restarts normally continues above the ids it
 * handed out before as long as it averaged fewer than a million ids per
 * second of uptime. The durable engines replace the seed with a leased,
 * checkpointed block, which holds through crashes and across nodes.
 */

/** Source of strictly increasing message ids. */
export interface Ids {
  /** The next id, greater than every id this instance returned before. */
  next(): bigint;
}

/** Ids counted in memory from a start value. */
export class CounterIds implements Ids {
  #last: bigint;

  /** @param start the first id is `start + 1`; defaults to the clock in microseconds */
  constructor(start: bigint = BigInt(Date.now()) * 1000n) {
    this.#last = start;
  }

  next(): bigint {
    return ++this.#last;
  }
}
