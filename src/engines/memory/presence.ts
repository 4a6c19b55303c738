/**
 * Single-node presence: the local hub is the whole truth.
 */
import type { Hub } from '../../core/hub.js';
import type { AppStats, Device, Presence } from '../../core/ports.js';

export class LocalPresence implements Presence {
  readonly #hub: Hub;
  readonly #node: string;

  constructor(hub: Hub, node: string) {
    this.#hub = hub;
    this.#node = node;
  }

  async devices(app: string, user: string): Promise<readonly Device[]> {
    return this.#hub.devices(app, user).map((p) => ({
      connection: p.id,
      since: new Date(p.since).toISOString(),
      transport: p.transport,
      node: this.#node,
    }));
  }

  async subscribers(app: string, channel: string): Promise<number> {
    return this.#hub.subscriberCount(app, channel);
  }

  async stats(app: string): Promise<AppStats> {
    return this.#hub.counters(app);
  }
}
