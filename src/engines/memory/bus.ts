/**
 * The single-node bus: what is published here is handed to this node
 * synchronously, in publish order.
 */
import type { BusMessage } from '../../core/message.js';
import type { Bus } from '../../core/ports.js';

export class LocalBus implements Bus {
  #handler: ((m: BusMessage) => void) | undefined;

  publish(m: BusMessage): void {
    this.#handler?.(m);
  }

  onMessage(handler: (m: BusMessage) => void): void {
    this.#handler = handler;
  }

  async close(): Promise<void> {
    this.#handler = undefined;
  }
}
