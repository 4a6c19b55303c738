/**
 * Presence and discovery on Redis: the route table (user → connections →
 * node), per-channel subscriber counts, and the node registry with
 * heartbeats.
 *
 * A node beats every third of `nodeTtlSeconds`; a node whose last beat is
 * older than `nodeTtlSeconds` is gone: its routes are ignored from the next
 * refresh of the live set (at most a third of the TTL later) and removed
 * when a lookup meets them. After Redis comes back (even empty), each node
 * writes its routes and counts again: they are facts about its own sockets.
 */
import type { Logger } from 'pino';
import type { Hub, HubWatcher, Peer } from '../../core/hub.js';
import type { AppStats, Device, NodeInfo, Presence } from '../../core/ports.js';
import type { RedisClient } from './client.js';
import { keys } from './keys.js';

export interface RedisPresenceOptions {
  readonly client: RedisClient;
  readonly hub: Hub;
  /** This node's registry entry (its load changes). */
  readonly node: () => NodeInfo;
  readonly apps: () => readonly string[];
  readonly nodeTtlMs: number;
  readonly logger: Logger;
}

const SEP = '\t';

/** Sum counters field by field. */
function add(a: AppStats, b: Partial<AppStats>): AppStats {
  return {
    connections: a.connections + (b.connections ?? 0),
    users: a.users + (b.users ?? 0),
    channels: a.channels + (b.channels ?? 0),
    subscriptions: a.subscriptions + (b.subscriptions ?? 0),
    messagesIn: a.messagesIn + (b.messagesIn ?? 0),
    messagesOut: a.messagesOut + (b.messagesOut ?? 0),
  };
}

const ZERO: AppStats = { connections: 0, users: 0, channels: 0, subscriptions: 0, messagesIn: 0, messagesOut: 0 };

export class RedisPresence implements Presence, HubWatcher {
  readonly #o: RedisPresenceOptions;
  readonly #c: RedisClient;
  readonly #id: string;
  #live = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #started = false;
  /** Called when a channel gains its first or loses its last local subscriber, or an app its first or last connection. */
  onChannel: (app: string, channel: string, active: boolean) => void = () => undefined;
  onApp: (app: string, active: boolean) => void = () => undefined;

  constructor(options: RedisPresenceOptions) {
    this.#o = options;
    this.#c = options.client;
    this.#id = options.node().id;
    this.#live.add(this.#id);
  }

  /** Register the node, start beating, and write the local state again whenever Redis comes back. */
  async start(): Promise<void> {
    this.#started = true;
    await this.#beat();
    this.#timer = setInterval(() => void this.#beat(), Math.max(100, Math.floor(this.#o.nodeTtlMs / 3)));
    this.#timer.unref();
    this.#c.on('ready', this.#resync);
  }

  /** Leave the registry at once (a clean shutdown), so no one routes here meanwhile. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#c.off('ready', this.#resync);
    if (!this.#started || this.#c.status !== 'ready') return;
    await Promise.all([this.#c.zrem(keys.beats, this.#id), this.#c.hdel(keys.nodes, this.#id), this.#c.hdel(keys.nodeStats, this.#id)]).catch(
      () => undefined,
    );
  }

  readonly #resync = (): void => {
    void this.#writeAll().then(
      () => this.#o.logger.info({ node: this.#id }, 'routes and counts written again after Redis came back'),
      (err: unknown) => this.#o.logger.warn({ err }, 'could not write routes after reconnect'),
    );
  };

  async #writeAll(): Promise<void> {
    const ops: Promise<unknown>[] = [];
    for (const { app, peers, channels } of this.#o.hub.snapshot()) {
      for (const p of peers) ops.push(this.#c.hset(keys.route(app, p.user), p.id, this.#route(p)));
      for (const [ch, n] of channels) ops.push(this.#c.hset(keys.subscribers(app, ch), this.#id, n));
    }
    await Promise.all(ops);
    await this.#beat();
  }

  async #beat(): Promise<void> {
    const now = Date.now();
    const stats: Record<string, AppStats> = {};
    for (const app of this.#o.apps()) stats[app] = this.#o.hub.counters(app);
    const info = this.#o.node();
    try {
      await Promise.all([
        this.#c.hset(keys.nodes, this.#id, JSON.stringify(info)),
        this.#c.zadd(keys.beats, now, this.#id),
        this.#c.hset(keys.nodeStats, this.#id, JSON.stringify(stats)),
      ]);
      const live = await this.#c.zrangebyscore(keys.beats, now - this.#o.nodeTtlMs, '+inf');
      this.#live = new Set([...live, this.#id]);
      // Forget nodes long gone (ten TTLs), so the registry does not grow.
      const dead = await this.#c.zrangebyscore(keys.beats, '-inf', now - 10 * this.#o.nodeTtlMs);
      if (dead.length > 0) {
        await Promise.all([this.#c.zrem(keys.beats, ...dead), this.#c.hdel(keys.nodes, ...dead), this.#c.hdel(keys.nodeStats, ...dead)]);
      }
    } catch (err) {
      this.#o.logger.warn({ err: (err as Error).message }, 'node heartbeat failed');
    }
  }

  /** Whether `node` beat within the TTL (as of the last refresh). */
  isLive(node: string): boolean {
    return this.#live.has(node);
  }

  #route(p: Peer): string {
    return this.#id + SEP + p.since + SEP + p.transport;
  }

  // HubWatcher: keep Redis in step with local changes. Failures are logged; #resync repairs them.
  peer(p: Peer, added: boolean): void {
    const k = keys.route(p.app, p.user);
    (added ? this.#c.hset(k, p.id, this.#route(p)) : this.#c.hdel(k, p.id)).catch((err: unknown) =>
      this.#o.logger.debug({ err: (err as Error).message, app: p.app, user: p.user }, 'route update failed'),
    );
  }

  channel(app: string, channel: string, count: number): void {
    const k = keys.subscribers(app, channel);
    (count > 0 ? this.#c.hset(k, this.#id, count) : this.#c.hdel(k, this.#id)).catch(() => undefined);
    if (count === 1 || count === 0) this.onChannel(app, channel, count === 1);
  }

  app(app: string, active: boolean): void {
    this.onApp(app, active);
  }

  /** The live nodes that hold connections of each user in `users`. */
  async nodesOf(app: string, users: readonly string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    const routes = await Promise.all(users.map((u) => this.#c.hgetall(keys.route(app, u))));
    users.forEach((u, i) => {
      const seen = new Set<string>();
      const stale: string[] = [];
      for (const [conn, v] of Object.entries(routes[i]!)) {
        const node = v.slice(0, v.indexOf(SEP));
        if (!this.#live.has(node)) {
          stale.push(conn);
          continue;
        }
        if (seen.has(node)) continue;
        seen.add(node);
        let list = out.get(node);
        if (list === undefined) out.set(node, (list = []));
        list.push(u);
      }
      if (stale.length > 0) this.#c.hdel(keys.route(app, u), ...stale).catch(() => undefined);
    });
    return out;
  }

  async devices(app: string, user: string): Promise<readonly Device[]> {
    const routes = await this.#c.hgetall(keys.route(app, user));
    const out: Device[] = [];
    for (const [connection, v] of Object.entries(routes)) {
      const [node, since, transport] = v.split(SEP) as [string, string, string];
      if (!this.#live.has(node)) continue;
      out.push({ connection, node, since: new Date(Number(since)).toISOString(), transport });
    }
    return out.sort((a, b) => (a.since < b.since ? -1 : 1));
  }

  async subscribers(app: string, channel: string): Promise<number> {
    const counts = await this.#c.hgetall(keys.subscribers(app, channel));
    let n = 0;
    for (const [node, c] of Object.entries(counts)) if (this.#live.has(node)) n += Number(c);
    return n;
  }

  async stats(app: string): Promise<AppStats> {
    const all = await this.#c.hgetall(keys.nodeStats);
    let total = this.#o.hub.counters(app);
    for (const [node, text] of Object.entries(all)) {
      if (node === this.#id || !this.#live.has(node)) continue;
      try {
        total = add(total, (JSON.parse(text) as Record<string, AppStats>)[app] ?? ZERO);
      } catch {
        /* a malformed entry counts as nothing */
      }
    }
    return total;
  }

  async nodes(): Promise<readonly NodeInfo[]> {
    const all = await this.#c.hgetall(keys.nodes);
    const out: NodeInfo[] = [];
    for (const [node, text] of Object.entries(all)) {
      if (!this.#live.has(node)) continue;
      try {
        out.push(JSON.parse(text) as NodeInfo);
      } catch {
        /* skip */
      }
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : 1));
  }
}
