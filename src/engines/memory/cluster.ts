/**
 * A cluster of nodes in one process: a {@link MemoryNetwork} stands where
 * Redis stands in cluster mode (topics, the route table, subscriber counts,
 * the node registry, the shared store), and each node runs the same
 * cluster bus as on Redis over it. It exists so that cluster behaviour
 * (routing, presence across nodes, ordering) can be tested in one process
 * beside the real-Redis tests; what only Redis can show (failover,
 * reconnects, TTLs) stays with those.
 *
 * Start nodes on it with `startNode(config, { network })`.
 */
import { ClusterBus, type RouteTable } from '../../cluster/bus.js';
import type { HubListener, Peer } from '../../core/hub.js';
import type { Hub } from '../../core/hub.js';
import type { AppStats, Device, NodeInfo, Presence } from '../../core/ports.js';
import type { StoreLimits } from '../../core/store.js';
import type { Logger } from 'pino';
import { MemoryStore } from './store.js';

type Listener = (topic: string, payload: string) => void;

interface Member {
  readonly info: () => NodeInfo;
  readonly hub: Hub;
}

const ZERO: AppStats = { connections: 0, users: 0, channels: 0, subscriptions: 0, messagesIn: 0, messagesOut: 0 };

/** What the nodes of an in-process cluster share. */
export class MemoryNetwork {
  /** The cluster's store (the nodes do not close it). */
  readonly store: MemoryStore;
  readonly #topics = new Map<string, Set<Listener>>();
  /** Published and not yet delivered, in publish order (one queue, as one Redis connection keeps one order). */
  #queue: [string, string][] = [];
  /** Connections by app and user: connection id → device. */
  readonly routes = new Map<string, Map<string, Device>>();
  /** Local subscriber counts by app and channel: node → count. */
  readonly subscribers = new Map<string, Map<string, number>>();
  readonly members = new Map<string, Member>();

  constructor(options: { readonly limits: StoreLimits }) {
    this.store = new MemoryStore({ limits: options.limits });
  }

  #lagging = false;

  /** Deliver `payload` to every listener of `topic`, after the current turn (as a network would). */
  publish(topic: string, payload: string): void {
    this.#queue.push([topic, payload]);
    if (this.#queue.length === 1 && !this.#lagging) setImmediate(() => this.#deliver());
  }

  /**
   * Hold every payload published from now on until {@link catchUp}, as a
   * network that lags would (the store answers meanwhile): for tests of
   * what arrives late.
   */
  lag(): void {
    this.#lagging = true;
  }

  /** Deliver what {@link lag} held, and go on at once again. */
  catchUp(): void {
    this.#lagging = false;
    if (this.#queue.length > 0) setImmediate(() => this.#deliver());
  }

  #deliver(): void {
    if (this.#lagging) return;
    const queue = this.#queue;
    this.#queue = [];
    for (const [topic, payload] of queue) {
      for (const l of this.#topics.get(topic) ?? []) l(topic, payload);
    }
  }

  listen(topic: string, l: Listener, on: boolean): void {
    let set = this.#topics.get(topic);
    if (on) {
      if (set === undefined) this.#topics.set(topic, (set = new Set()));
      set.add(l);
    } else if (set !== undefined) {
      set.delete(l);
      if (set.size === 0) this.#topics.delete(topic);
    }
  }
}

/** The cluster bus over a {@link MemoryNetwork}. */
export class MemoryClusterBus extends ClusterBus {
  readonly #network: MemoryNetwork;
  readonly #listener: Listener = (topic, payload) => this.received(topic, payload);

  constructor(options: { network: MemoryNetwork; node: string; routes: RouteTable; logger: Logger }) {
    super({
      node: options.node,
      routes: options.routes,
      logger: options.logger,
      topics: { channel: (app, ch) => `c\n${app}\n${ch}`, app: (app) => `a\n${app}`, node: (node) => `n\n${node}` },
    });
    this.#network = options.network;
  }

  protected async send(topic: string, payload: string): Promise<void> {
    this.#network.publish(topic, payload);
  }

  protected async listen(topic: string, on: boolean): Promise<void> {
    this.#network.listen(topic, this.#listener, on);
  }
}

/** Presence over a {@link MemoryNetwork}: the route table and counts every node of it writes. */
export class MemoryClusterPresence implements Presence, RouteTable, HubListener {
  readonly #network: MemoryNetwork;
  readonly #hub: Hub;
  readonly #info: () => NodeInfo;
  readonly #id: string;

  constructor(options: { network: MemoryNetwork; hub: Hub; node: () => NodeInfo }) {
    this.#network = options.network;
    this.#hub = options.hub;
    this.#info = options.node;
    this.#id = options.node().id;
  }

  /** Join the registry. */
  start(): void {
    this.#network.members.set(this.#id, { info: this.#info, hub: this.#hub });
  }

  /** Leave the registry, with this node's routes and counts. */
  stop(): void {
    const n = this.#network;
    n.members.delete(this.#id);
    for (const [key, devices] of n.routes) {
      for (const [conn, d] of devices) if (d.node === this.#id) devices.delete(conn);
      if (devices.size === 0) n.routes.delete(key);
    }
    for (const [key, counts] of n.subscribers) {
      counts.delete(this.#id);
      if (counts.size === 0) n.subscribers.delete(key);
    }
  }

  peer(p: Peer, added: boolean): void {
    const routes = this.#network.routes;
    const key = p.app + '\n' + p.user;
    let devices = routes.get(key);
    if (added) {
      if (devices === undefined) routes.set(key, (devices = new Map()));
      devices.set(p.id, { connection: p.id, since: new Date(p.since).toISOString(), transport: p.transport, node: this.#id });
    } else if (devices !== undefined) {
      devices.delete(p.id);
      if (devices.size === 0) routes.delete(key);
    }
  }

  channel(app: string, channel: string, count: number): void {
    const subs = this.#network.subscribers;
    const key = app + '\n' + channel;
    let counts = subs.get(key);
    if (count > 0) {
      if (counts === undefined) subs.set(key, (counts = new Map()));
      counts.set(this.#id, count);
    } else if (counts !== undefined) {
      counts.delete(this.#id);
      if (counts.size === 0) subs.delete(key);
    }
  }

  async nodesOf(app: string, users: readonly string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const u of users) {
      const seen = new Set<string>();
      for (const d of this.#network.routes.get(app + '\n' + u)?.values() ?? []) {
        if (seen.has(d.node) || !this.#network.members.has(d.node)) continue;
        seen.add(d.node);
        let list = out.get(d.node);
        if (list === undefined) out.set(d.node, (list = []));
        list.push(u);
      }
    }
    return out;
  }

  async devices(app: string, user: string): Promise<readonly Device[]> {
    const all = [...(this.#network.routes.get(app + '\n' + user)?.values() ?? [])];
    return all.filter((d) => this.#network.members.has(d.node)).sort((a, b) => (a.since < b.since ? -1 : 1));
  }

  async subscribers(app: string, channel: string): Promise<number> {
    let n = 0;
    for (const [node, c] of this.#network.subscribers.get(app + '\n' + channel) ?? []) if (this.#network.members.has(node)) n += c;
    return n;
  }

  async stats(app: string): Promise<AppStats> {
    let total = ZERO;
    for (const m of this.#network.members.values()) {
      const c = m.hub.counters(app);
      total = {
        connections: total.connections + c.connections,
        users: total.users + c.users,
        channels: total.channels + c.channels,
        subscriptions: total.subscriptions + c.subscriptions,
        messagesIn: total.messagesIn + c.messagesIn,
        messagesOut: total.messagesOut + c.messagesOut,
      };
    }
    return total;
  }

  async nodes(): Promise<readonly NodeInfo[]> {
    return [...this.#network.members.values()].map((m) => m.info()).sort((a, b) => (a.id < b.id ? -1 : 1));
  }
}
