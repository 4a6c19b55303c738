/**
 * The cluster bus: how messages and user signals reach the nodes that hold
 * their targets, whatever carries the bytes between nodes. This base class
 * owns the routing and the inter-node protocol (as socket.io's cluster
 * adapter does); a subclass only publishes a payload on a topic and
 * listens to topics: `RedisBus` on Redis sharded pub/sub, `MemoryClusterBus`
 * between nodes in one process (tests).
 *
 * Traffic goes only where it is needed:
 *
 * - a channel message is published on that channel's topic, which only
 *   nodes with local subscribers listen to;
 * - a user message or signal is routed through the route table to the
 *   nodes holding that user's connections, on each node's own topic (this
 *   node's share is handed over directly);
 * - a broadcast goes on the app's topic, which nodes with at least one
 *   connection of the app listen to.
 *
 * The bus listens to the hub to know which topics this node needs.
 *
 * Order: a channel's durable messages carry their place in the channel's
 * history (the store counts up by one per append). Publishers on different
 * nodes may put two of them on the bus in the other order than the store
 * appended them; a receiving node holds a durable message back until the one
 * before it has come, at most {@link ORDER_WAIT_MS}, so its subscribers see
 * the history's order live too, and a client that resumes from the last id
 * it saw misses nothing.
 */
import type { Logger } from 'pino';
import type { HubListener } from '../core/hub.js';
import { isSignal, type BusMessage, type Envelope } from '../core/message.js';
import type { Bus } from '../core/ports.js';
import { decodeBus, encodeBus } from './codec.js';

/**
 * Longest a durable channel message waits on a node for the one before it
 * in its channel's history (a publisher that died between the append and
 * the publish, or a publish the bus lost, leaves a hole that never fills).
 */
export const ORDER_WAIT_MS = 100;

/** Where users are connected: the route table. */
export interface RouteTable {
  /** The nodes that hold connections of each of `users` (this node's included): node id → its users. */
  nodesOf(app: string, users: readonly string[]): Promise<Map<string, string[]>>;
}

/** Topic names; the Redis bus gives its shard channels' names (with their hash tags). */
export interface Topics {
  channel(app: string, channel: string): string;
  app(app: string): string;
  node(node: string): string;
}

export interface ClusterBusOptions {
  /** This node's id. */
  readonly node: string;
  readonly routes: RouteTable;
  readonly topics: Topics;
  readonly logger: Logger;
}

/** One channel's place in its history, as delivered on this node. */
interface Order {
  /** The place expected next. */
  next: number;
  /** Messages that came early, by place. */
  held: Map<number, Envelope> | null;
  /** When the earliest held message stops waiting. */
  deadline: number;
}

export abstract class ClusterBus implements Bus, HubListener {
  readonly #o: ClusterBusOptions;
  #handler: ((m: BusMessage) => void) | undefined;
  /** Channels with local subscribers that have had durable messages, by app and channel. */
  readonly #order = new Map<string, Order>();
  #orderTimer: NodeJS.Timeout | undefined;
  /** Publishes on their way out: a stopping node sends them before it lets go of its connections. */
  readonly #sending = new Set<Promise<void>>();

  constructor(options: ClusterBusOptions) {
    this.#o = options;
  }

  /** Publish `payload` on `topic`, to every node listening to it. */
  protected abstract send(topic: string, payload: string): Promise<unknown>;
  /** Start (true) or stop listening to `topic`; what arrives comes to {@link received}. */
  protected abstract listen(topic: string, on: boolean): Promise<unknown>;

  /** Listen on this node's own topic. */
  async start(): Promise<void> {
    await this.listen(this.#o.topics.node(this.#o.node), true);
  }

  onMessage(handler: (m: BusMessage) => void): void {
    this.#handler = handler;
  }

  async close(): Promise<void> {
    // What this node accepted (answered 202, stored) still reaches the other nodes' clients.
    await Promise.allSettled([...this.#sending]);
    this.#handler = undefined;
    clearTimeout(this.#orderTimer);
    this.#order.clear();
  }

  // HubListener: listen to the topics this node's connections need.
  app(app: string, active: boolean): void {
    this.#listen(this.#o.topics.app(app), active);
  }

  channel(app: string, channel: string, count: number): void {
    if (count !== 0 && count !== 1) return;
    this.#listen(this.#o.topics.channel(app, channel), count === 1);
    if (count === 0) this.#order.delete(app + '\n' + channel);
  }

  #listen(topic: string, on: boolean): void {
    this.listen(topic, on).catch((err: unknown) =>
      this.#o.logger.warn({ err: (err as Error).message, topic, on }, 'bus subscription change failed'),
    );
  }

  /** A payload arrived on a topic this node listens to. */
  protected received(topic: string, payload: string): void {
    const m = decodeBus(payload);
    if (m === undefined) {
      this.#o.logger.warn({ topic }, 'dropped a malformed bus message');
      return;
    }
    if (isSignal(m) || m.positions === undefined || !('channels' in m.target) || m.target.channels.length !== 1) return this.#deliver(m);
    const ch = m.target.channels[0]!;
    const at = m.positions[ch];
    if (at === undefined) return this.#deliver(m);
    this.#inOrder(m, m.app + '\n' + ch, at);
  }

  #deliver(m: BusMessage): void {
    this.#handler?.(m);
  }

  /** Deliver `m`, the message at place `at` of a channel's history, after the ones before it. */
  #inOrder(m: Envelope, key: string, at: number): void {
    const o = this.#order.get(key);
    if (o === undefined) {
      this.#order.set(key, { next: at + 1, held: null, deadline: 0 });
      return this.#deliver(m);
    }
    // Late (its wait ran out), or a repeat: deliver it (clients drop repeats by id).
    if (at < o.next) return this.#deliver(m);
    if (at === o.next) {
      o.next++;
      this.#deliver(m);
      return this.#release(o);
    }
    if (o.held === null) {
      o.held = new Map();
      o.deadline = Date.now() + ORDER_WAIT_MS;
      this.#arm();
    }
    o.held.set(at, m);
  }

  /** Deliver the held messages that are next in line. */
  #release(o: Order): void {
    const held = o.held;
    if (held === null) return;
    for (let m = held.get(o.next); m !== undefined; m = held.get(o.next)) {
      held.delete(o.next);
      o.next++;
      this.#deliver(m);
    }
    if (held.size === 0) {
      o.held = null;
      return;
    }
    o.deadline = Date.now() + ORDER_WAIT_MS;
    this.#arm();
  }

  /** One timer for every channel that holds messages: stop waiting for holes whose wait ran out. */
  #arm(): void {
    if (this.#orderTimer !== undefined) return;
    this.#orderTimer = setTimeout(() => {
      this.#orderTimer = undefined;
      const now = Date.now();
      let waiting = false;
      for (const o of this.#order.values()) {
        if (o.held === null) continue;
        if (o.deadline <= now) {
          o.next = Math.min(...o.held.keys());
          this.#release(o);
        }
        if (o.held !== null) waiting = true;
      }
      if (waiting) this.#arm();
    }, ORDER_WAIT_MS);
    this.#orderTimer.unref();
  }

  publish(m: BusMessage): void {
    const p = this.#publish(m).catch((err: unknown) =>
      this.#o.logger.warn({ err: (err as Error).message, app: m.app }, 'bus publish failed: online devices miss it (durable messages stay stored)'),
    );
    this.#sending.add(p);
    void p.finally(() => this.#sending.delete(p));
  }

  async #publish(m: BusMessage): Promise<void> {
    const topics = this.#o.topics;
    if (isSignal(m)) return this.#toNodes(m.app, [m.user], () => m, (node) => this.send(topics.node(node), encodeBus(m)));
    const t = m.target;
    if ('channels' in t) {
      await Promise.all(t.channels.map((ch) => this.send(topics.channel(m.app, ch), encodeBus(m, { channels: [ch] }))));
    } else if ('users' in t) {
      await this.#toNodes(
        m.app,
        t.users,
        (users) => ({ ...m, target: { users } }),
        (node, users) => this.send(topics.node(node), encodeBus(m, { users })),
      );
    } else {
      await this.send(topics.app(m.app), encodeBus(m));
    }
  }

  /** Route to the nodes that hold `users`; this node's share is delivered here, without the network. */
  async #toNodes(
    app: string,
    users: readonly string[],
    local: (users: string[]) => BusMessage,
    remote: (node: string, users: string[]) => Promise<unknown>,
  ): Promise<void> {
    let byNode: Map<string, string[]>;
    try {
      byNode = await this.#o.routes.nodesOf(app, users);
    } catch (err) {
      // The route table cannot be read, but this node's own devices still get it.
      this.#deliver(local([...users]));
      throw err;
    }
    const sends: Promise<unknown>[] = [];
    for (const [node, us] of byNode) {
      if (node === this.#o.node) this.#deliver(local(us));
      else sends.push(remote(node, us));
    }
    await Promise.all(sends);
  }
}
