/**
 * The single-node bus: an envelope published here is delivered to this
 * node's hub synchronously, in publish order.
 */
import type { Envelope } from '../../core/message.js';
import type { Bus } from '../../core/ports.js';

export class LocalBus implements Bus {
  #handler: ((env: Envelope) => void) | undefined;

  publish(env: Envelope): void {
    this.#handler?.(env);
  }

  onEnvelope(handler: (env: Envelope) => void): void {
    this.#handler = handler;
  }

  async close(): Promise<void> {
    this.#handler = undefined;
  }
}
