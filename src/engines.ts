/**
 * Choosing the engines behind the ports: the embedded ones (SQLite or
 * memory store, in-process bus and presence) or, with `redis` configured,
 * the cluster engines on Redis. Part of the composition root: only node.ts
 * calls it.
 */
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { SilkError } from './core/errors.js';
import type { Hub } from './core/hub.js';
import type { Bus, NodeInfo, Presence, Store } from './core/ports.js';
import { LocalBus } from './engines/memory/bus.js';
import { MemoryClusterBus, MemoryClusterPresence, type MemoryNetwork } from './engines/memory/cluster.js';
import { LocalPresence } from './engines/memory/presence.js';
import { MemoryStore } from './engines/memory/store.js';
import { RedisBus } from './engines/redis/bus.js';
import { connect, ready } from './engines/redis/client.js';
import { RedisPresence } from './engines/redis/presence.js';
import { RedisStore } from './engines/redis/store.js';
import { SqliteStore } from './engines/sqlite/store.js';

/** How long a starting node waits for Redis. */
const REDIS_START_MS = 10_000;

export interface Engines {
  readonly store: Store;
  readonly bus: Bus;
  readonly presence: Presence;
  /** Cluster duties that need the node listening: the registry, its own shard channel. */
  start(): Promise<void>;
  /** Why the node cannot take traffic now (Redis unreachable), or null. */
  unready(): SilkError | null;
  /** Leave the cluster and close the connections. */
  close(): Promise<void>;
}

export interface EngineOptions {
  readonly config: Config;
  readonly hub: Hub;
  readonly node: () => NodeInfo;
  readonly apps: () => readonly string[];
  readonly logger: Logger;
  /** A store to use instead of the configured one. */
  readonly store?: Store;
  /** Join an in-process cluster instead (tests): its store, bus and presence. */
  readonly network?: MemoryNetwork;
}

export async function openEngines(o: EngineOptions): Promise<Engines> {
  const { config, hub, logger } = o;
  const limits = config.limits;
  if (o.network !== undefined) return memoryCluster(o, o.network);
  if (config.redis === null) {
    const store =
      o.store ??
      (config.store === 'memory'
        ? new MemoryStore({ limits })
        : new SqliteStore({ dir: config.dataDir, limits, synchronous: config.sqliteSynchronous }));
    const bus = new LocalBus();
    return {
      store,
      bus,
      presence: new LocalPresence(hub, o.node),
      start: async () => undefined,
      unready: () => null,
      close: async () => {
        await bus.close();
        await store.close();
      },
    };
  }

  const client = connect(config.redis, 'command');
  const subscriber = connect(config.redis, 'subscriber');
  // Connection trouble is reported by readiness and by failing requests; these only keep ioredis quiet.
  let lastError = '';
  const onError = (err: Error): void => {
    if (err.message !== lastError) logger.warn({ err: err.message }, 'redis connection error');
    lastError = err.message;
  };
  client.on('error', onError);
  subscriber.on('error', onError);
  const closeAll = (): void => {
    client.disconnect();
    subscriber.disconnect();
  };
  try {
    await ready(client, REDIS_START_MS);
  } catch (err) {
    closeAll();
    throw new SilkError('store_unavailable', `cannot reach Redis: ${(err as Error).message}`);
  }
  const store = o.store ?? new RedisStore({ client, limits });
  const presence = new RedisPresence({
    client,
    hub,
    node: o.node,
    apps: o.apps,
    nodeTtlMs: config.nodeTtlSeconds * 1000,
    logger,
  });
  const bus = new RedisBus({ client, subscriber, node: o.node().id, routes: presence, logger });
  hub.listen(presence);
  hub.listen(bus);
  return {
    store,
    bus,
    presence,
    async start() {
      await bus.start();
      await presence.start();
    },
    unready: () => (client.status === 'ready' ? null : new SilkError('store_unavailable', `Redis is unreachable (${client.status})`)),
    async close() {
      await presence.stop();
      await bus.close();
      await store.close();
      closeAll();
    },
  };
}

/** A node of an in-process cluster: the network's store (not closed here), bus and presence. */
function memoryCluster(o: EngineOptions, network: MemoryNetwork): Engines {
  const presence = new MemoryClusterPresence({ network, hub: o.hub, node: o.node });
  const bus = new MemoryClusterBus({ network, node: o.node().id, routes: presence, logger: o.logger });
  o.hub.listen(presence);
  o.hub.listen(bus);
  return {
    store: network.store,
    bus,
    presence,
    async start() {
      await bus.start();
      presence.start();
    },
    unready: () => null,
    async close() {
      presence.stop();
      await bus.close();
    },
  };
}
