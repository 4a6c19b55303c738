/**
 * The Silk client: one connection to a Silk node that reconnects by itself,
 * resubscribes with recovery, keeps the inbox and its unread count, and
 * drops repeated deliveries, so the application sees each message once.
 */
import { Emitter } from './emitter.js';
import { CloseCode, policyOf, type ServerFrame } from './protocol.js';
import {
  SilkClientError,
  type ConnectedInfo,
  type ConnectionState,
  type DisconnectedInfo,
  type Message,
  type SocketFactory,
  type SocketLike,
} from './types.js';

export interface ReconnectOptions {
  /** First backoff ceiling (ms). @default 500 */
  readonly minDelayMs?: number;
  /** Largest backoff ceiling (ms). @default 30000 */
  readonly maxDelayMs?: number;
}

export interface ClientOptions {
  /**
   * The node: `ws(s)://host:port` or `http(s)://host:port`; `/v1/connect` is
   * added unless the path ends with it. With several, the client moves to the
   * next one after each lost connection (client-side balancing over a cluster).
   */
  readonly url: string | readonly string[];
  /** A connection token, if there is no `getToken`. */
  readonly token?: string;
  /** Fetch a fresh token: called before every connection attempt and after the token expires. */
  readonly getToken?: () => string | Promise<string>;
  /** The WebSocket class. @default globalThis.WebSocket (the Node entry passes the `ws` package) */
  readonly WebSocket?: SocketFactory;
  /** Backoff settings, or false to never reconnect. */
  readonly reconnect?: ReconnectOptions | false;
  /** How long acknowledgements are gathered into one `ack` frame (ms). @default 50 */
  readonly ackDelayMs?: number;
  /** Give up on a request without a reply after this long (ms). @default 10000 */
  readonly requestTimeoutMs?: number;
}

/** Events of the client. */
export type ClientEvents = {
  /** The state changed. */
  state: (state: ConnectionState) => void;
  connecting: () => void;
  connected: (info: ConnectedInfo) => void;
  disconnected: (info: DisconnectedInfo) => void;
  /** Every message, from any channel or to this user. */
  message: (m: Message) => void;
  /** An error frame the server sent without a request to blame, or a failed subscription. */
  error: (err: SilkClientError) => void;
} & { [K in `event:${string}`]: (m: Message) => void };

/** Events of one subscription. */
export type SubscriptionEvents<T> = {
  message: (m: Message<T>) => void;
  /** After a resubscribe: whether every missed message was replayed. `false`: reload the state this channel feeds. */
  recovered: (recovered: boolean) => void;
  /** The server refused the subscription (for example `forbidden_channel`); it is dropped. */
  error: (err: SilkClientError) => void;
} & { [K in `event:${string}`]: (m: Message<T>) => void };

/** Events of the inbox. */
export type InboxEvents = {
  /** A durable message to this user, once per id. */
  message: (m: Message) => void;
  /** The unread count changed. */
  unread: (count: number) => void;
};

/** Remember this many recent ids per stream to drop repeats. */
const SEEN = 2048;
/** A watchdog tick this much later than its period means this client did not run meanwhile (ms). */
const WATCHDOG_LATE_MS = 100;
/** The longest wait a draining server may ask for (its `drainSpreadSeconds` is at most an hour). */
const MAX_COME_BACK_MS = 3_600_000;

/** A bounded set of recent keys. */
class Recent {
  readonly #set = new Set<string>();
  /** True if `key` was new. */
  add(key: string): boolean {
    if (this.#set.has(key)) return false;
    this.#set.add(key);
    if (this.#set.size > SEEN) this.#set.delete(this.#set.values().next().value as string);
    return true;
  }
}

/** One channel subscription; it lasts across reconnects until `unsubscribe()`. */
export class Subscription<T = unknown> extends Emitter<SubscriptionEvents<T>> {
  readonly channel: string;
  /** The id of the last durable message seen here: where recovery resumes. */
  lastId: string | undefined;
  readonly #client: SilkClient;
  readonly #seen = new Recent();

  constructor(client: SilkClient, channel: string) {
    super();
    this.#client = client;
    this.channel = channel;
  }

  /** Stop receiving this channel. */
  unsubscribe(): void {
    this.#client.unsubscribeChannel(this);
  }

  /** @internal */
  deliver(m: Message<T>): boolean {
    if (!this.#seen.add(m.id)) return false;
    if (m.durable) this.lastId = m.id;
    this.emit('message', m);
    if (m.event !== undefined) this.emit(`event:${m.event}`, m);
    return true;
  }

  /** @internal */
  report<K extends 'recovered' | 'error'>(event: K, ...args: Parameters<SubscriptionEvents<T>[K]>): void {
    this.emit(event, ...args);
  }
}

/** The user's inbox: durable messages kept until acknowledged, and the unread count. */
export class Inbox extends Emitter<InboxEvents> {
  /** Unread messages, as the server last said. */
  unread = 0;
  /** Whether the server holds more inbox messages than it has sent. */
  more = false;
  readonly #client: SilkClient;
  readonly #seen = new Recent();
  /** The last message of the last page: where `loadMore` continues. */
  cursor: string | undefined;

  constructor(client: SilkClient) {
    super();
    this.#client = client;
  }

  /** Acknowledge messages: they are never delivered again to any device of this user. Batched. */
  ack(ids: string | readonly string[]): Promise<void> {
    return this.#client.queueAck(typeof ids === 'string' ? [ids] : ids);
  }

  /** Ask for the next page of the inbox (after the last one received); resolves with whether more remain. */
  async loadMore(limit?: number): Promise<boolean> {
    return this.#client.requestInbox(limit);
  }

  /** @internal */
  deliver(m: Message, page: boolean): boolean {
    if (page) this.cursor = m.id;
    if (!this.#seen.add(m.id)) return false;
    this.emit('message', m);
    return true;
  }

  /** @internal */
  setUnread(n: number): void {
    if (n === this.unread) return;
    this.unread = n;
    this.emit('unread', n);
  }
}

interface Pending {
  readonly resolve: (f: ServerFrame) => void;
  readonly reject: (e: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

interface AckWaiter {
  readonly remaining: Set<string>;
  readonly resolve: () => void;
}

/** Full jitter: a random delay up to the exponential ceiling (AWS architecture blog, "Exponential Backoff And Jitter"). */
function backoff(attempt: number, min: number, max: number): number {
  return Math.floor(Math.random() * Math.min(max, min * 2 ** attempt));
}

function connectUrl(base: string, token: string): string {
  let u = base.replace(/^http(s?):/, 'ws$1:').replace(/\/+$/, '');
  if (!u.endsWith('/v1/connect')) u += '/v1/connect';
  return u + (u.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
}

export class SilkClient extends Emitter<ClientEvents> {
  /** The inbox of the connected user. */
  readonly inbox: Inbox;
  readonly #o: ClientOptions;
  readonly #Socket: SocketFactory;
  #state: ConnectionState = 'idle';
  #ws: SocketLike | null = null;
  #attempt = 0;
  /** When to come back, as a draining server announced it (`reconnect` frame), ms; undefined if not. */
  #comeBack: number | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  #heartbeatMs = 0;
  #lastFrame = 0;
  #seq = 0;
  #pending = new Map<number, Pending>();
  #subs = new Map<string, Subscription<unknown>>();
  /**
   * The current socket is open (its 101 arrived), maybe before `welcome`. Subscriptions
   * are sent from then on: the server answers them after `welcome` and its inbox page,
   * so a reconnect costs one round trip, not two.
   */
  #socketOpen = false;
  /** Subscriptions already sent on the current socket before `welcome`. */
  #sentEarly = new Set<Subscription<unknown>>();
  /** Inbox messages still to come in the page after `welcome`. */
  #pageLeft = 0;
  /** True between an `inbox` request and its reply. */
  #paging = false;
  #acks = new Set<string>();
  #ackWaiters: AckWaiter[] = [];
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #token: string | undefined;
  readonly #urls: readonly string[];
  #urlIndex = 0;

  constructor(options: ClientOptions) {
    super();
    const Socket = options.WebSocket ?? (globalThis as { WebSocket?: SocketFactory }).WebSocket;
    if (Socket === undefined) throw new Error('no WebSocket class: pass options.WebSocket (in Node, import from "silk-client" gets ws)');
    if (options.token === undefined && options.getToken === undefined) throw new Error('give options.token or options.getToken');
    this.#o = options;
    this.#Socket = Socket;
    this.#token = options.token;
    this.#urls = typeof options.url === 'string' ? [options.url] : options.url;
    if (this.#urls.length === 0) throw new Error('options.url names no node');
    // Spread clients over the nodes from the first attempt on.
    this.#urlIndex = Math.floor(Math.random() * this.#urls.length);
    this.inbox = new Inbox(this);
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** Open the connection (and keep it open, reconnecting as needed, until `close()`). */
  connect(): void {
    if (this.#state === 'connecting' || this.#state === 'connected') return;
    clearTimeout(this.#retryTimer);
    void this.#open();
  }

  /** Close for good: no reconnect. */
  close(): void {
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#ackTimer);
    this.#stopWatchdog();
    const ws = this.#ws;
    this.#ws = null;
    this.#socketOpen = false;
    this.#sentEarly.clear();
    if (ws !== null) {
      ws.onclose = null;
      ws.onmessage = null;
      ws.onerror = () => undefined;
      try {
        ws.close(CloseCode.NORMAL);
      } catch {
        /* already closed */
      }
    }
    this.#failPending(new SilkClientError('closed', 'the client was closed'));
    if (this.#state !== 'closed') this.#setState('closed');
  }

  /** Subscribe to `channel`; the subscription survives reconnects and recovers what was missed. */
  subscribe<T = unknown>(channel: string, handler?: (m: Message<T>) => void): Subscription<T> {
    let sub = this.#subs.get(channel) as Subscription<T> | undefined;
    if (sub === undefined) {
      sub = new Subscription<T>(this, channel);
      this.#subs.set(channel, sub as unknown as Subscription<unknown>);
      if (this.#state === 'connected') this.#sendSubscribe(sub as unknown as Subscription<unknown>);
      else if (this.#socketOpen) this.#sendEarly(sub as unknown as Subscription<unknown>);
    }
    if (handler !== undefined) sub.on('message', handler);
    return sub;
  }

  /** @internal */
  unsubscribeChannel(sub: { readonly channel: string }): void {
    if (this.#subs.get(sub.channel) !== sub) return;
    this.#subs.delete(sub.channel);
    const early = this.#sentEarly.delete(sub as Subscription<unknown>);
    if (this.#state === 'connected' || early) this.#request({ type: 'unsubscribe', channel: sub.channel }, early).catch(() => undefined);
  }

  /** Send a request frame; resolves with the reply, rejects with the server's error. */
  request(frame: Record<string, unknown>): Promise<ServerFrame> {
    return this.#request(frame, false);
  }

  /** {@link request}; `early`: also on an open socket before `welcome`. */
  #request(frame: Record<string, unknown>, early: boolean): Promise<ServerFrame> {
    const ws = this.#ws;
    if (ws === null || (this.#state !== 'connected' && !(early && this.#socketOpen))) {
      return Promise.reject(new SilkClientError('not_connected', 'not connected'));
    }
    const id = ++this.#seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new SilkClientError('timeout', `no reply to ${String(frame['type'])} in time`));
      }, this.#o.requestTimeoutMs ?? 10_000);
      this.#pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  /** @internal */
  queueAck(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    for (const id of ids) this.#acks.add(id);
    const p = new Promise<void>((resolve) => this.#ackWaiters.push({ remaining: new Set(ids), resolve }));
    this.#scheduleAcks();
    return p;
  }

  /** @internal */
  async requestInbox(limit?: number): Promise<boolean> {
    this.#paging = true;
    try {
      const reply = await this.request({
        type: 'inbox',
        ...(this.inbox.cursor !== undefined ? { after: this.inbox.cursor } : {}),
        ...(limit !== undefined ? { limit } : {}),
      });
      this.inbox.more = reply['more'] === true;
      this.inbox.setUnread(reply['unread'] as number);
      return this.inbox.more;
    } finally {
      this.#paging = false;
    }
  }

  #setState(s: ConnectionState): void {
    this.#state = s;
    this.emit('state', s);
  }

  async #open(): Promise<void> {
    this.#setState('connecting');
    this.emit('connecting');
    let token = this.#token;
    // A fresh token for every attempt: the last one may have expired while we were away.
    if (this.#o.getToken !== undefined) {
      try {
        token = await this.#o.getToken();
      } catch (err) {
        return this.#lost(CloseCode.ABNORMAL, `getToken failed: ${(err as Error).message}`);
      }
      if ((this.#state as ConnectionState) !== 'connecting') return; // closed meanwhile
    }
    this.#token = token;
    let ws: SocketLike;
    try {
      ws = new this.#Socket(connectUrl(this.#urls[this.#urlIndex % this.#urls.length]!, token!));
    } catch (err) {
      return this.#lost(CloseCode.ABNORMAL, (err as Error).message);
    }
    this.#ws = ws;
    this.#socketOpen = false;
    this.#sentEarly.clear();
    ws.onopen = () => {
      if (this.#ws !== ws) return;
      this.#socketOpen = true;
      for (const sub of this.#subs.values()) this.#sendEarly(sub);
    };
    ws.onmessage = (ev) => {
      if (this.#ws === ws) this.#frame(String(ev.data));
    };
    ws.onclose = (ev) => {
      if (this.#ws === ws) this.#lost(ev.code, ev.reason);
    };
    ws.onerror = () => undefined; // a close event follows
  }

  #frame(text: string): void {
    this.#lastFrame = Date.now();
    let f: ServerFrame;
    try {
      f = JSON.parse(text) as ServerFrame;
    } catch {
      return;
    }
    switch (f.type) {
      case 'message':
        return this.#message(f);
      case 'ping':
        this.#ws?.send('{"type":"pong"}');
        return;
      case 'reconnect':
        // A draining server spreads its clients' returns: its 1001 close follows.
        if (typeof f['after'] === 'number' && f['after'] >= 0) this.#comeBack = f['after'] as number;
        return;
      case 'reply':
      case 'error': {
        const id = f['id'];
        if (typeof id === 'number') {
          const p = this.#pending.get(id);
          if (p === undefined) return;
          this.#pending.delete(id);
          clearTimeout(p.timer);
          if (f.type === 'reply') p.resolve(f);
          else p.reject(new SilkClientError(String(f['code']), String(f['message'])));
        } else if (f.type === 'error') {
          this.emit('error', new SilkClientError(String(f['code']), String(f['message'])));
        }
        return;
      }
      case 'unread':
        this.inbox.setUnread(f['count'] as number);
        return;
      case 'welcome':
        return this.#welcome(f);
    }
  }

  #welcome(f: ServerFrame): void {
    this.#attempt = 0;
    this.#heartbeatMs = (f['heartbeat'] as number) * 1000;
    this.#startWatchdog();
    const unread = f['unread'] as number | undefined;
    this.#pageLeft = (f['page'] as number | undefined) ?? 0;
    this.inbox.more = f['more'] === true;
    this.inbox.cursor = undefined;
    this.#setState('connected');
    if (unread !== undefined) this.inbox.setUnread(unread);
    this.emit('connected', { connection: f['connection'] as string, user: f['user'] as string, heartbeat: f['heartbeat'] as number, unread });
    for (const sub of this.#subs.values()) if (!this.#sentEarly.has(sub)) this.#sendSubscribe(sub);
    this.#sentEarly.clear();
    if (this.#acks.size > 0) this.#scheduleAcks();
  }

  #message(f: ServerFrame): void {
    const m: Message = {
      id: f['id'] as string,
      data: f['data'],
      durable: f['durable'] === true,
      ...(typeof f['channel'] === 'string' ? { channel: f['channel'] } : {}),
      ...(typeof f['event'] === 'string' ? { event: f['event'] } : {}),
    };
    let fresh: boolean;
    if (m.channel !== undefined) {
      const sub = this.#subs.get(m.channel);
      // A frame for a channel we just left: drop it.
      if (sub === undefined) return;
      fresh = sub.deliver(m);
    } else if (m.durable) {
      const page = this.#pageLeft > 0 || this.#paging;
      if (this.#pageLeft > 0) this.#pageLeft--;
      fresh = this.inbox.deliver(m, page);
    } else {
      fresh = true;
    }
    if (!fresh) return;
    this.emit('message', m);
    if (m.event !== undefined) this.emit(`event:${m.event}`, m);
  }

  /** Subscribe on the open socket before `welcome`. */
  #sendEarly(sub: Subscription<unknown>): void {
    this.#sentEarly.add(sub);
    this.#sendSubscribe(sub, true);
  }

  #sendSubscribe(sub: Subscription<unknown>, early = false): void {
    const since = sub.lastId;
    this.#request({ type: 'subscribe', channel: sub.channel, ...(since !== undefined ? { since } : {}) }, early).then(
      (reply) => {
        if (since !== undefined) sub.report('recovered', reply['recovered'] === true);
      },
      (err: unknown) => {
        if (!(err instanceof SilkClientError) || err.code === 'not_connected' || err.code === 'disconnected' || err.code === 'closed') return;
        if (err.code === 'timeout') return;
        this.#subs.delete(sub.channel);
        sub.report('error', err);
        this.emit('error', err);
      },
    );
  }

  #scheduleAcks(): void {
    if (this.#ackTimer !== undefined) return;
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      this.#flushAcks();
    }, this.#o.ackDelayMs ?? 50);
  }

  #flushAcks(): void {
    if (this.#state !== 'connected' || this.#acks.size === 0) return;
    const batch = [...this.#acks].slice(0, 1000);
    for (const id of batch) this.#acks.delete(id);
    this.request({ type: 'ack', ids: batch }).then(
      (reply) => {
        if (typeof reply['unread'] === 'number') this.inbox.setUnread(reply['unread']);
        this.#acked(batch);
      },
      () => {
        // Not stored: send these again (after the next welcome, if the connection went).
        for (const id of batch) this.#acks.add(id);
        if (this.#state === 'connected') this.#scheduleAcks();
      },
    );
    if (this.#acks.size > 0) this.#scheduleAcks();
  }

  #acked(batch: readonly string[]): void {
    this.#ackWaiters = this.#ackWaiters.filter((w) => {
      for (const id of batch) w.remaining.delete(id);
      if (w.remaining.size > 0) return true;
      w.resolve();
      return false;
    });
  }

  #startWatchdog(): void {
    this.#stopWatchdog();
    this.#lastFrame = Date.now();
    const period = Math.max(100, this.#heartbeatMs / 2);
    let lastTick = Date.now();
    let resumed = 0;
    // The server pings every interval: silence for 2.5 intervals means the link is dead. But silence
    // while this client itself did not run (a busy main thread, a suspended tab or laptop) is not the
    // link's: a tick more than 100 ms late counts the silence from the resume, so it closes nothing, and
    // the judgement waits for the frames that arrived meanwhile to be read (a timer after them).
    this.#watchdog = setInterval(() => {
      const now = Date.now();
      if (now - lastTick > period + WATCHDOG_LATE_MS) resumed = now;
      lastTick = now;
      setTimeout(() => {
        if (this.#ws === null || Date.now() - Math.max(this.#lastFrame, resumed) <= this.#heartbeatMs * 2.5) return;
        const ws = this.#ws;
        this.#ws = null;
        try {
          ws.close(CloseCode.NORMAL);
        } catch {
          /* ignore */
        }
        this.#lost(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat_timeout');
      }, 0);
    }, period);
    (this.#watchdog as { unref?: () => void }).unref?.();
  }

  #stopWatchdog(): void {
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog);
    this.#watchdog = undefined;
  }

  #failPending(err: Error): void {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.#pending.clear();
  }

  /** The connection is gone: decide whether and when to come back. */
  #lost(code: number, reason: string): void {
    if (this.#state === 'closed') return;
    this.#ws = null;
    this.#socketOpen = false;
    this.#sentEarly.clear();
    this.#stopWatchdog();
    this.#failPending(new SilkClientError('disconnected', 'the connection closed'));
    this.#paging = false;
    this.#pageLeft = 0;
    const policy = policyOf(code);
    const comeBack = this.#comeBack;
    this.#comeBack = undefined;
    const opts = this.#o.reconnect;
    let willRetry = opts !== false && policy !== 'never';
    // Without getToken there is no fresh token to come back with.
    if (policy === 'refresh-token' && this.#o.getToken === undefined) willRetry = false;
    if (!willRetry) {
      this.#setState('disconnected');
      this.emit('disconnected', { code, reason, willRetry: false });
      this.#setState('closed');
      return;
    }
    const min = (opts === false ? undefined : opts?.minDelayMs) ?? 500;
    const max = (opts === false ? undefined : opts?.maxDelayMs) ?? 30_000;
    let delayMs: number;
    if (policy === 'refresh-token') delayMs = 0;
    else if (policy === 'retry-now') delayMs = comeBack !== undefined && code === CloseCode.GOING_AWAY ? Math.min(comeBack, MAX_COME_BACK_MS) : backoff(0, min, max);
    else if (policy === 'retry-later') delayMs = Math.max(5000, backoff(this.#attempt, min, max));
    else delayMs = backoff(this.#attempt, min, max);
    this.#attempt++;
    this.#urlIndex++;
    this.#setState('disconnected');
    this.emit('disconnected', { code, reason, willRetry: true, delayMs });
    this.#retryTimer = setTimeout(() => {
      if (this.#state === 'disconnected') void this.#open();
    }, delayMs);
  }
}
