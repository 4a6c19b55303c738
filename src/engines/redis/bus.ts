/**
 * The cluster bus on Redis sharded pub/sub (Redis 7). Traffic goes only
 * where it is needed:
 *
 * - a channel message is published on that channel's shard channel, which
 *   only nodes with local subscribers listen to;
 * - a user message or signal is routed through the route table to the
 *   nodes holding that user's connections, on each node's own shard
 *   channel (this node's share is handed over directly);
 * - a broadcast goes on the app's shard channel, which nodes with at least
 *   one connection of the app listen to.
 *
 * Order: everything one node publishes to one shard channel leaves on one
 * connection in publish order, and Redis delivers each shard channel in
 * order, so one publisher's messages to one channel arrive in order.
 */
import type { Logger } from 'pino';
import { isSignal, type BusMessage, type Envelope } from '../../core/message.js';
import type { Bus } from '../../core/ports.js';
import type { RedisClient } from './client.js';
import { decodeBus, encodeBus } from './codec.js';
import { keys } from './keys.js';
import type { RedisPresence } from './presence.js';

export interface RedisBusOptions {
  /** Commands (SPUBLISH). */
  readonly client: RedisClient;
  /** Sharded subscriptions. */
  readonly subscriber: RedisClient;
  readonly node: string;
  readonly presence: RedisPresence;
  readonly logger: Logger;
}

export class RedisBus implements Bus {
  readonly #o: RedisBusOptions;
  #handler: ((m: BusMessage) => void) | undefined;
  readonly #onMessage = (channel: string, payload: string): void => {
    const m = decodeBus(payload);
    if (m === undefined) {
      this.#o.logger.warn({ channel }, 'dropped a malformed bus message');
      return;
    }
    this.#handler?.(m);
  };

  constructor(options: RedisBusOptions) {
    this.#o = options;
    options.subscriber.on('smessage', this.#onMessage);
    options.presence.onChannel = (app, channel, active) => this.#listen(keys.channelBus(app, channel), active);
    options.presence.onApp = (app, active) => this.#listen(keys.appBus(app), active);
  }

  /** Listen on this node's own shard channel. */
  async start(): Promise<void> {
    await this.#o.subscriber.ssubscribe(keys.nodeBus(this.#o.node));
  }

  #listen(channel: string, on: boolean): void {
    const s = this.#o.subscriber;
    (on ? s.ssubscribe(channel) : s.sunsubscribe(channel)).catch((err: unknown) =>
      this.#o.logger.warn({ err: (err as Error).message, channel, on }, 'shard subscription change failed'),
    );
  }

  onMessage(handler: (m: BusMessage) => void): void {
    this.#handler = handler;
  }

  publish(m: BusMessage): void {
    this.#publish(m).catch((err: unknown) =>
      this.#o.logger.warn({ err: (err as Error).message, app: m.app }, 'bus publish failed: online devices miss it (durable messages stay stored)'),
    );
  }

  async #publish(m: BusMessage): Promise<void> {
    const c = this.#o.client;
    if (isSignal(m)) return this.#toNodes(m.app, [m.user], () => m, (node) => c.spublish(keys.nodeBus(node), encodeBus(m)).then(() => undefined));
    const t = m.target;
    if ('channels' in t) {
      await Promise.all(t.channels.map((ch) => c.spublish(keys.channelBus(m.app, ch), encodeBus(m, { channels: [ch] }))));
    } else if ('users' in t) {
      await this.#toNodes(
        m.app,
        t.users,
        (users) => withUsers(m, users),
        (node, users) => c.spublish(keys.nodeBus(node), encodeBus(m, { users })).then(() => undefined),
      );
    } else {
      await c.spublish(keys.appBus(m.app), encodeBus(m));
    }
  }

  /** Route to the nodes that hold `users`; this node's share is delivered here, without Redis. */
  async #toNodes(
    app: string,
    users: readonly string[],
    local: (users: string[]) => BusMessage,
    remote: (node: string, users: string[]) => Promise<void>,
  ): Promise<void> {
    let byNode: Map<string, string[]>;
    try {
      byNode = await this.#o.presence.nodesOf(app, users);
    } catch (err) {
      // Redis is unreachable: the route table cannot be read, but this node's own devices still get it.
      this.#handler?.(local([...users]));
      throw err;
    }
    const sends: Promise<void>[] = [];
    for (const [node, us] of byNode) {
      if (node === this.#o.node) this.#handler?.(local(us));
      else sends.push(remote(node, us));
    }
    await Promise.all(sends);
  }

  async close(): Promise<void> {
    this.#handler = undefined;
    this.#o.subscriber.off('smessage', this.#onMessage);
  }
}

function withUsers(env: Envelope, users: string[]): Envelope {
  return { ...env, target: { users } };
}
