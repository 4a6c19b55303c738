/**
 * Single-node presence: the local hub is the whole truth.
 */
import type { Hub } from '../../core/hub.js';
import type { AppStats, Device, NodeInfo, Presence } from '../../core/ports.js';

export class LocalPresence implements Presence {
  readonly #hub: Hub;
  readonly #node: string;
  readonly #info: () => NodeInfo;

  /** @param info this node's registry entry */
  constructor(hub: Hub, info: () => NodeInfo) {
    this.#hub = hub;
    this.#info = info;
    this.#node = info().id;
  }

  async nodes(): Promise<readonly NodeInfo[]> {
    return [this.#info()];
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
