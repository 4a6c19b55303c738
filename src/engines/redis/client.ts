/**
 * Connections to Redis from a {@link RedisConfig}: a command connection that
 * fails fast while Redis is unreachable (no offline queue: a durable publish
 * must answer 503 at once, not hang) and gives up on a command Redis does
 * not answer in {@link COMMAND_TIMEOUT_MS}, and a subscriber for sharded
 * pub/sub that queues and resubscribes by itself across reconnects.
 */
import { createHash } from 'node:crypto';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '../../config.js';

export type RedisClient = Redis | Cluster;

const RETRY = (times: number): number => Math.min(50 * 2 ** Math.min(times, 6), 2000);

/**
 * Longest a command waits for its reply. Redis that stops answering without
 * closing the connection (stalled, or a partition that drops packets) would
 * otherwise hold every request until the connection is declared dead.
 */
export const COMMAND_TIMEOUT_MS = 3000;

function nodesOf(urls: readonly string[]): { host: string; port: number }[] {
  return urls.map((u) => {
    const url = new URL(u);
    return { host: url.hostname, port: Number(url.port || 6379) };
  });
}

/** A new connection of `kind` to the Redis deployment in `config`. */
export function connect(config: RedisConfig, kind: 'command' | 'subscriber'): RedisClient {
  const common: RedisOptions = {
    retryStrategy: RETRY,
    // Commands fail at once while disconnected; the subscriber waits for the connection.
    enableOfflineQueue: kind === 'subscriber',
    maxRetriesPerRequest: kind === 'command' ? 1 : null,
    enableAutoPipelining: kind === 'command',
    connectTimeout: 2000,
    // The subscriber's commands (SSUBSCRIBE) wait for the connection instead.
    ...(kind === 'command' ? { commandTimeout: COMMAND_TIMEOUT_MS } : {}),
  };
  const client = open(config, common, kind);
  // ioredis emits 'ready' on the tick after it starts taking commands, before timers and I/O
  // callbacks run again: the scripts are loaded ahead of the commands that follow a (re)connect.
  if (kind === 'command') {
    if (client instanceof Cluster) client.on('+node', (node: Redis) => node.on('ready', () => Script.loadAll(node)));
    else client.on('ready', () => Script.loadAll(client));
  }
  return client;
}

function open(config: RedisConfig, common: RedisOptions, kind: 'command' | 'subscriber'): RedisClient {
  if ('cluster' in config) {
    // The configuration checked that every seed has the same scheme and credentials.
    const seed = new URL(config.cluster[0]!);
    const opts: ClusterOptions = {
      redisOptions: {
        ...common,
        ...(seed.username !== '' ? { username: decodeURIComponent(seed.username) } : {}),
        ...(seed.password !== '' ? { password: decodeURIComponent(seed.password) } : {}),
        ...(seed.protocol === 'rediss:' ? { tls: {} } : {}),
      },
      clusterRetryStrategy: RETRY,
      enableOfflineQueue: kind === 'subscriber',
      enableAutoPipelining: kind === 'command',
      ...(kind === 'subscriber' ? { shardedSubscribers: true } : {}),
    };
    return new Cluster(nodesOf(config.cluster), opts);
  }
  if ('sentinel' in config) {
    const s = config.sentinel;
    return new Redis({
      ...common,
      sentinels: s.sentinels.map((x) => ({ host: x.host, port: x.port })),
      name: s.name,
      ...(s.username !== undefined ? { username: s.username } : {}),
      ...(s.password !== undefined ? { password: s.password } : {}),
      ...(s.sentinelUsername !== undefined ? { sentinelUsername: s.sentinelUsername } : {}),
      ...(s.sentinelPassword !== undefined ? { sentinelPassword: s.sentinelPassword } : {}),
      // Certificates are checked against the host each server is reached at: for the master and
      // replicas, the address the Sentinels announce. A private CA is trusted through NODE_EXTRA_CA_CERTS.
      ...(s.tls === true ? { tls: {}, enableTLSForSentinelMode: true } : {}),
      ...(s.sentinelTls === true ? { sentinelTLS: {} } : {}),
    });
  }
  return new Redis(config.url, common);
}

/** Resolve once `client` is ready, or reject after `ms`. */
export function ready(client: RedisClient, ms: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error(`Redis did not become ready within ${ms} ms (status ${client.status})`));
    }, ms);
    const onReady = (): void => {
      clearTimeout(timer);
      resolve();
    };
    client.once('ready', onReady);
  });
}

/**
 * A Lua script run by its SHA. Every script is loaded on a command
 * connection each time it becomes ready (see {@link connect}); a script
 * Redis does not know anyway (its cache flushed by hand) is sent whole.
 */
export class Script {
  static readonly #all: Script[] = [];
  readonly #lua: string;
  readonly #sha: string;
  readonly #keys: number;

  constructor(keys: number, lua: string) {
    this.#lua = lua;
    this.#keys = keys;
    this.#sha = createHash('sha1').update(lua).digest('hex');
    Script.#all.push(this);
  }

  /** How many scripts there are. */
  static get count(): number {
    return Script.#all.length;
  }

  /**
   * Load every script on one Redis server. A restarted Redis has forgotten
   * them: without this, a script's first use gets NOSCRIPT and goes out
   * again as EVAL a round trip later, behind commands issued after it (an
   * inbox read overtaking the acknowledgement before it).
   */
  static loadAll(redis: Redis): void {
    for (const s of Script.#all) redis.script('LOAD', s.#lua).catch(() => undefined);
  }

  async run(client: RedisClient, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    if (keys.length !== this.#keys) throw new Error(`script takes ${this.#keys} keys, got ${keys.length}`);
    try {
      return await client.evalsha(this.#sha, this.#keys, ...keys, ...args);
    } catch (err) {
      if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
      return client.eval(this.#lua, this.#keys, ...keys, ...args);
    }
  }
}
