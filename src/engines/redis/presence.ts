/**
 * Presence and discovery on Redis: the route table (user → connections →
 * node), per-channel subscriber counts, and the node registry with
 * heartbeats.
 *
 * A node beats every third of `nodeTtlSeconds`; a node whose last beat is
 * older than `nodeTtlSeconds` is not live: from the next refresh of the live
 * set (at most a third of the TTL later) its connections are not listed and
 * its counts not summed. It may only be stalled (a long pause, Redis itself
 * frozen), so messages to its users are still routed to it until it has not
 * beaten for ten TTLs; then it is gone, and a lookup that meets its routes
 * removes them. After Redis comes back (even empty), or after a beat that
 * comes more than a TTL after the last one, a node writes its routes and
 * counts again: they are facts about its own sockets.
 */
import type { Logger } from 'pino';
import type { RouteTable } from '../../cluster/bus.js';
import type { Hub, HubListener, Peer } from '../../core/hub.js';
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

export class RedisPresence implements Presence, RouteTable, HubListener {
  readonly #o: RedisPresenceOptions;
  readonly #c: RedisClient;
  readonly #id: string;
  #live = new Set<string>();
  /** Nodes that beat within ten TTLs (live or stalled); null until this node's first beat read them. */
  #known: Set<string> | null = null;
  /** When this node's last beat was written (0 before the first). */
  #beaten = 0;
  #timer: NodeJS.Timeout | undefined;
  #started = false;

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
      () => this.#o.logger.info({ node: this.#id }, 'routes and counts written again'),
      (err: unknown) => this.#o.logger.warn({ err }, 'could not write routes and counts again'),
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
    const ttl = this.#o.nodeTtlMs;
    const stats: Record<string, AppStats> = {};
    for (const app of this.#o.apps()) stats[app] = this.#o.hub.counters(app);
    const info = this.#o.node();
    try {
      await Promise.all([
        this.#c.hset(keys.nodes, this.#id, JSON.stringify(info)),
        this.#c.zadd(keys.beats, now, this.#id),
        this.#c.hset(keys.nodeStats, this.#id, JSON.stringify(stats)),
      ]);
      const written = Date.now();
      // Longer than a TTL since the last beat: others may have taken this node for dead
      // (and, after ten TTLs, removed its routes): write everything again.
      const gap = this.#beaten > 0 ? written - this.#beaten : 0;
      this.#beaten = written;
      if (gap > ttl) {
        this.#o.logger.warn({ node: this.#id, sinceLastBeatMs: gap }, 'heartbeat came late; writing routes and counts again');
        this.#resync();
      }
      const beats = await this.#c.zrangebyscore(keys.beats, '-inf', '+inf', 'WITHSCORES');
      const live = new Set([this.#id]);
      const known = new Set([this.#id]);
      const dead: string[] = [];
      for (let i = 0; i + 1 < beats.length; i += 2) {
        const node = beats[i]!;
        const at = Number(beats[i + 1]);
        if (at >= now - ttl) live.add(node);
        // Forget nodes long gone (ten TTLs), so the registry does not grow.
        if (at >= now - 10 * ttl) known.add(node);
        else if (node !== this.#id) dead.push(node);
      }
      this.#live = live;
      this.#known = known;
      if (dead.length > 0) {
        await Promise.all([this.#c.zrem(keys.beats, ...dead), this.#c.hdel(keys.nodes, ...dead), this.#c.hdel(keys.nodeStats, ...dead)]);
      }
    } catch (err) {
      this.#o.logger.warn({ err: (err as Error).message }, 'node heartbeat failed');
    }
  }

  #route(p: Peer): string {
    return this.#id + SEP + p.since + SEP + p.transport;
  }

  // HubListener: keep Redis in step with local changes. Failures are logged; #resync repairs them.
  peer(p: Peer, added: boolean): void {
    const k = keys.route(p.app, p.user);
    (added ? this.#c.hset(k, p.id, this.#route(p)) : this.#c.hdel(k, p.id)).catch((err: unknown) =>
      this.#o.logger.debug({ err: (err as Error).message, app: p.app, user: p.user }, 'route update failed'),
    );
  }

  channel(app: string, channel: string, count: number): void {
    const k = keys.subscribers(app, channel);
    (count > 0 ? this.#c.hset(k, this.#id, count) : this.#c.hdel(k, this.#id)).catch(() => undefined);
  }

  /**
   * The nodes that hold connections of each user in `users`: live ones, ones
   * whose beat is late but not ten TTLs old (a stalled node gets its messages
   * when it wakes; a dead one's shard channel has no listener), and ones not
   * seen yet whose route is younger than that: a node that started after
   * this one's last beat. Routes of nodes gone longer are removed.
   */
  async nodesOf(app: string, users: readonly string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    const routes = await Promise.all(users.map((u) => this.#c.hgetall(keys.route(app, u))));
    const now = Date.now();
    users.forEach((u, i) => {
      const seen = new Set<string>();
      const gone: string[] = [];
      for (const [conn, v] of Object.entries(routes[i]!)) {
        const a = v.indexOf(SEP);
        const node = v.slice(0, a);
        if (!this.#routable(node, Number(v.slice(a + 1, v.indexOf(SEP, a + 1))), now)) {
          // Before this node's first beat nothing is known yet: skip, but remove nothing.
          if (this.#known !== null) gone.push(conn);
          continue;
        }
        if (seen.has(node)) continue;
        seen.add(node);
        let list = out.get(node);
        if (list === undefined) out.set(node, (list = []));
        list.push(u);
      }
      if (gone.length > 0) this.#c.hdel(keys.route(app, u), ...gone).catch(() => undefined);
    });
    return out;
  }

  /**
   * Whether a route of `node`, written when its connection opened at
   * `since`, still leads somewhere: its node beat within ten TTLs, or has
   * not been seen and the route is younger than that (a node that started
   * after this one's last beat: it is learnt at the next).
   */
  #routable(node: string, since: number, now: number): boolean {
    return this.#live.has(node) || !this.#unseen(node) || since >= now - 10 * this.#o.nodeTtlMs;
  }

  /** Whether `node` was missing from the registry at the last beat (or there was none yet). */
  #unseen(node: string): boolean {
    return this.#known === null || !this.#known.has(node);
  }

  async devices(app: string, user: string): Promise<readonly Device[]> {
    const routes = await this.#c.hgetall(keys.route(app, user));
    const out: Device[] = [];
    const recent = Date.now() - this.#o.nodeTtlMs;
    for (const [connection, v] of Object.entries(routes)) {
      const [node, since, transport] = v.split(SEP) as [string, string, string];
      // Live nodes, and a node not seen yet that opened the connection within a TTL (it started after this node's last beat).
      const listed = this.#live.has(node) || (this.#unseen(node) && Number(since) >= recent);
      if (!listed) continue;
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
