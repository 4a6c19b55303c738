/**
 * The node's local hub: which connections are open, which user each belongs
 * to, and what each is subscribed to, per app. It resolves an envelope to
 * the local connections that should receive it and hands each the shared
 * delivery, in no protocol's words; encoding and writing are the session's
 * and the transport's business.
 *
 * Channel and `all` deliveries are not handed out one by one: they wait in
 * a FIFO of batches, and consecutive messages for the same subscribers join
 * one batch, which {@link Hub.distribute} hands to each subscriber once
 * (the flusher calls it just before it writes). Everything that hands
 * deliveries to connections directly (user messages, unread counts) or changes
 * who receives what (connect, subscribe, unsubscribe) distributes the FIFO
 * first, so every connection still gets its messages in the order the node
 * accepted them.
 */
import { Batch, MessageDelivery, UnreadDelivery, type Delivery } from './delivery.js';
import type { Envelope } from './message.js';

/** A connection as the hub sees it; transports implement it. */
export interface Peer {
  readonly id: string;
  readonly app: string;
  readonly user: string;
  /** Connect time, ms since the epoch. */
  readonly since: number;
  /** Transport name, such as `websocket`. */
  readonly transport: string;
  /**
   * Channels this peer is subscribed to, owned by the hub: `null` for none,
   * the name for one (most connections: no set to pay for), a set for more.
   */
  channels: string | Set<string> | null;
  /** Queue a delivery for this peer. Must not throw. */
  push(d: Delivery): void;
  /** Queue a batch of deliveries for this peer, in order. Must not throw. */
  pushBatch(batch: Batch): void;
}

/** Counters of one app on this node. */
export interface AppCounters {
  connections: number;
  users: number;
  channels: number;
  subscriptions: number;
  /** Messages accepted for delivery. */
  messagesIn: number;
  /** Frames delivered to connections. */
  messagesOut: number;
}

class AppHub {
  readonly peers = new Set<Peer>();
  /** Each user's connections: the one connection itself, or a set when there are several. */
  readonly users = new Map<string, Peer | Set<Peer>>();
  readonly channels = new Map<string, Set<Peer>>();
  subscriptions = 0;
  messagesIn = 0;
  messagesOut = 0;
}

/**
 * What the hub tells others about local changes: the cluster engines keep
 * the route table and their pub/sub subscriptions current with it, metrics
 * count with it (and statistics and webhooks can). A listener implements
 * the events it wants.
 */
export interface HubListener {
  /** The first connection of `app` on this node opened (true) or its last closed (false). */
  app?(app: string, active: boolean): void;
  /** A connection opened (true) or closed (false). */
  peer?(peer: Peer, added: boolean): void;
  /** The number of local subscribers of `channel` changed to `count`. */
  channel?(app: string, channel: string, count: number): void;
}

/** Deliveries waiting for one set of connections (a channel's subscribers, or an app's connections). */
interface Pending {
  readonly app: AppHub;
  readonly to: Set<Peer>;
  readonly batch: Batch;
}

export class Hub {
  readonly #apps = new Map<string, AppHub>();
  readonly #onApp: ((app: string, active: boolean) => void)[] = [];
  readonly #onPeer: ((peer: Peer, added: boolean) => void)[] = [];
  readonly #onChannel: ((app: string, channel: string, count: number) => void)[] = [];
  /** Channel and `all` deliveries not yet handed to connections, in the order they were accepted. */
  #fifo: Pending[] = [];
  #wake: () => void = () => setImmediate(() => this.distribute());

  /**
   * Call `wake` when deliveries start waiting; the caller then runs
   * {@link distribute} soon (a transport, before it writes). By default the
   * hub distributes on the next turn of the event loop itself.
   */
  onPending(wake: () => void): void {
    this.#wake = wake;
  }

  /** Hand every waiting batch to its connections. Cheap when nothing waits. */
  distribute(): void {
    while (this.#fifo.length > 0) {
      const fifo = this.#fifo;
      this.#fifo = [];
      for (const { app, to, batch } of fifo) {
        app.messagesOut += batch.deliveries.length * to.size;
        if (batch.deliveries.length === 1) {
          const d = batch.deliveries[0]!;
          for (const p of to) p.push(d);
        } else {
          for (const p of to) p.pushBatch(batch);
        }
      }
    }
  }

  /** Queue `d` for every peer in `to`, joining the last batch if it is for the same peers. */
  #queue(a: AppHub, to: Set<Peer>, d: MessageDelivery): void {
    const fifo = this.#fifo;
    const last = fifo[fifo.length - 1];
    if (last !== undefined && last.to === to) {
      last.batch.deliveries.push(d);
      return;
    }
    fifo.push({ app: a, to, batch: new Batch(d) });
    if (fifo.length === 1) this.#wake();
  }

  /** Report local changes to `l` too, from now on. */
  listen(l: HubListener): void {
    if (l.app !== undefined) this.#onApp.push(l.app.bind(l));
    if (l.peer !== undefined) this.#onPeer.push(l.peer.bind(l));
    if (l.channel !== undefined) this.#onChannel.push(l.channel.bind(l));
  }

  #emitApp(app: string, active: boolean): void {
    for (const f of this.#onApp) f(app, active);
  }

  #emitPeer(peer: Peer, added: boolean): void {
    for (const f of this.#onPeer) f(peer, added);
  }

  #emitChannel(app: string, channel: string, count: number): void {
    for (const f of this.#onChannel) f(app, channel, count);
  }

  #appHub(app: string): AppHub {
    let a = this.#apps.get(app);
    if (a === undefined) {
      a = new AppHub();
      this.#apps.set(app, a);
    }
    return a;
  }

  /** Register an open connection. */
  add(peer: Peer): void {
    this.distribute();
    const a = this.#appHub(peer.app);
    a.peers.add(peer);
    if (a.peers.size === 1) this.#emitApp(peer.app, true);
    this.#emitPeer(peer, true);
    const devices = a.users.get(peer.user);
    if (devices === undefined) a.users.set(peer.user, peer);
    else if (devices instanceof Set) devices.add(peer);
    else a.users.set(peer.user, new Set([devices, peer]));
  }

  /** Forget a closed connection and its subscriptions. */
  remove(peer: Peer): void {
    const a = this.#apps.get(peer.app);
    if (a === undefined || !a.peers.delete(peer)) return;
    const devices = a.users.get(peer.user);
    if (devices === peer) a.users.delete(peer.user);
    else if (devices instanceof Set && devices.delete(peer) && devices.size === 1) {
      a.users.set(peer.user, devices.values().next().value as Peer);
    }
    const chs = peer.channels;
    if (typeof chs === 'string') this.#unlink(a, peer, chs);
    else if (chs !== null) for (const ch of chs) this.#unlink(a, peer, ch);
    peer.channels = null;
    this.#emitPeer(peer, false);
    if (a.peers.size === 0) this.#emitApp(peer.app, false);
  }

  /** Whether `peer` is subscribed to `channel`. */
  subscribed(peer: Peer, channel: string): boolean {
    const chs = peer.channels;
    return chs === channel || (chs instanceof Set && chs.has(channel));
  }

  /** How many channels `peer` is subscribed to. */
  subscriptionsOf(peer: Peer): number {
    const chs = peer.channels;
    return chs === null ? 0 : typeof chs === 'string' ? 1 : chs.size;
  }

  /** Subscribe; false if already subscribed. */
  subscribe(peer: Peer, channel: string): boolean {
    if (this.subscribed(peer, channel)) return false;
    this.distribute();
    const a = this.#appHub(peer.app);
    const chs = peer.channels;
    if (chs === null) peer.channels = channel;
    else if (typeof chs === 'string') peer.channels = new Set([chs, channel]);
    else chs.add(channel);
    let subs = a.channels.get(channel);
    if (subs === undefined) {
      subs = new Set();
      a.channels.set(channel, subs);
    }
    subs.add(peer);
    a.subscriptions++;
    this.#emitChannel(peer.app, channel, subs.size);
    return true;
  }

  /** Unsubscribe; false if not subscribed. */
  unsubscribe(peer: Peer, channel: string): boolean {
    if (!this.subscribed(peer, channel)) return false;
    this.distribute();
    const chs = peer.channels!;
    if (typeof chs === 'string') peer.channels = null;
    else if (chs.delete(channel) && chs.size === 1) peer.channels = chs.values().next().value as string;
    this.#unlink(this.#appHub(peer.app), peer, channel);
    return true;
  }

  #unlink(a: AppHub, peer: Peer, channel: string): void {
    const subs = a.channels.get(channel);
    if (subs === undefined) return;
    if (!subs.delete(peer)) return;
    a.subscriptions--;
    if (subs.size === 0) a.channels.delete(channel);
    this.#emitChannel(peer.app, channel, subs.size);
  }

  /** Count a message accepted for delivery by this node's API. */
  countIn(app: string): void {
    this.#appHub(app).messagesIn++;
  }

  /**
   * Hand an envelope to every local connection it targets, now (users) or
   * at the next {@link distribute} (channels, all). Each delivery is built
   * once and shared.
   */
  deliver(env: Envelope): void {
    const a = this.#apps.get(env.app);
    if (a === undefined) return;
    const t = env.target;
    if ('channels' in t) {
      for (const ch of t.channels) {
        const subs = a.channels.get(ch);
        if (subs !== undefined) this.#queue(a, subs, MessageDelivery.of(env, ch));
      }
    } else if ('users' in t) {
      this.distribute();
      let n = 0;
      let frame: MessageDelivery | undefined;
      for (const u of t.users) {
        const devices = a.users.get(u);
        if (devices === undefined) continue;
        frame ??= MessageDelivery.of(env);
        const count = env.unread?.[u];
        const unread = count === undefined ? undefined : new UnreadDelivery(count);
        if (devices instanceof Set) {
          for (const p of devices) {
            p.push(frame);
            if (unread !== undefined) p.push(unread);
          }
          n += devices.size;
        } else {
          devices.push(frame);
          if (unread !== undefined) devices.push(unread);
          n++;
        }
      }
      a.messagesOut += n;
    } else if (a.peers.size > 0) {
      this.#queue(a, a.peers, MessageDelivery.of(env));
    }
  }

  /** Tell every device of `user` on this node its unread count. */
  unread(app: string, user: string, count: number): void {
    this.distribute();
    const devices = this.#apps.get(app)?.users.get(user);
    if (devices === undefined) return;
    const d = new UnreadDelivery(count);
    if (devices instanceof Set) for (const p of devices) p.push(d);
    else devices.push(d);
  }

  /** Every connection of `user`, on this node. */
  devices(app: string, user: string): readonly Peer[] {
    const d = this.#apps.get(app)?.users.get(user);
    return d === undefined ? [] : d instanceof Set ? [...d] : [d];
  }

  /** Subscribers of `channel` on this node. */
  subscriberCount(app: string, channel: string): number {
    return this.#apps.get(app)?.channels.get(channel)?.size ?? 0;
  }

  /** Counters for `app` on this node. */
  counters(app: string): AppCounters {
    const a = this.#apps.get(app);
    if (a === undefined) {
      return { connections: 0, users: 0, channels: 0, subscriptions: 0, messagesIn: 0, messagesOut: 0 };
    }
    return {
      connections: a.peers.size,
      users: a.users.size,
      channels: a.channels.size,
      subscriptions: a.subscriptions,
      messagesIn: a.messagesIn,
      messagesOut: a.messagesOut,
    };
  }

  /** Every app with connections on this node, with its channels and their local subscriber counts. */
  *snapshot(): Iterable<{ app: string; peers: Iterable<Peer>; channels: Iterable<[string, number]> }> {
    for (const [app, a] of this.#apps) {
      if (a.peers.size === 0) continue;
      yield { app, peers: a.peers, channels: [...a.channels].map(([ch, subs]) => [ch, subs.size] as [string, number]) };
    }
  }

  /** Connections of `app` on this node (cheap). */
  connectionCount(app: string): number {
    return this.#apps.get(app)?.peers.size ?? 0;
  }
}
