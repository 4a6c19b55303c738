/**
 * The cluster bus on Redis sharded pub/sub (Redis 7): each topic of
 * src/cluster/bus.ts is a shard channel (src/engines/redis/keys.ts), so a
 * channel's messages, its history and its subscriber counts share a hash
 * slot. Everything one node publishes to one shard channel leaves on one
 * connection in publish order, and Redis delivers each shard channel in
 * order.
 */
import type { Logger } from 'pino';
import { ClusterBus, type RouteTable } from '../../cluster/bus.js';
import type { RedisClient } from './client.js';
import { keys } from './keys.js';

export interface RedisBusOptions {
  /** Commands (SPUBLISH). */
  readonly client: RedisClient;
  /** Sharded subscriptions. */
  readonly subscriber: RedisClient;
  readonly node: string;
  readonly routes: RouteTable;
  readonly logger: Logger;
}

export class RedisBus extends ClusterBus {
  readonly #client: RedisClient;
  readonly #subscriber: RedisClient;
  readonly #onMessage = (channel: string, payload: string): void => this.received(channel, payload);

  constructor(options: RedisBusOptions) {
    super({
      node: options.node,
      routes: options.routes,
      logger: options.logger,
      topics: { channel: keys.channelBus, app: keys.appBus, node: keys.nodeBus },
    });
    this.#client = options.client;
    this.#subscriber = options.subscriber;
    options.subscriber.on('smessage', this.#onMessage);
  }

  protected send(topic: string, payload: string): Promise<unknown> {
    return this.#client.spublish(topic, payload);
  }

  protected listen(topic: string, on: boolean): Promise<unknown> {
    return on ? this.#subscriber.ssubscribe(topic) : this.#subscriber.sunsubscribe(topic);
  }

  override async close(): Promise<void> {
    await super.close();
    this.#subscriber.off('smessage', this.#onMessage);
  }
}
