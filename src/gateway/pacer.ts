/**
 * Spreads connection setups over turns of the event loop: at most
 * `perTurn` run in one turn, the others in later turns, in arrival order.
 * When thousands of clients come back at once the node accepts all their
 * sockets in one poll of I/O; setting every one up there (handshake,
 * session, welcome) would be one long turn that stalls every other
 * connection, their heartbeats included.
 */
export class Pacer {
  readonly #perTurn: number;
  /** Setups run in this turn. */
  #ran = 0;
  readonly #waiting: (() => void)[] = [];
  #armed = false;

  constructor(perTurn: number) {
    this.#perTurn = perTurn;
  }

  /** Setups waiting for a later turn. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Run `setup` now if this turn has room and nobody waits, else in a later turn. */
  pace(setup: () => void): void {
    this.#arm();
    if (this.#ran < this.#perTurn && this.#waiting.length === 0) {
      this.#ran++;
      return setup();
    }
    this.#waiting.push(setup);
  }

  /** The turn ends after the loop has polled I/O: the count starts again and the next in line run. */
  #arm(): void {
    if (this.#armed) return;
    this.#armed = true;
    setImmediate(() => {
      this.#armed = false;
      const batch = this.#waiting.splice(0, this.#perTurn);
      this.#ran = batch.length;
      if (this.#ran > 0) this.#arm();
      for (const setup of batch) setup();
    });
  }
}
