/**
 * A load-client process: holds up to a few thousand lean WebSocket
 * connections, counts the message frames they receive inside the measure
 * window and samples their end-to-end latency from the `"t":` stamp.
 * Driven by the runner over IPC; exits when the runner goes away.
 */
import { signToken } from '../../src/auth/tokens.js';
import { serveParent } from '../lib/proc.js';
import { KEY_T, LeanConn, readNumberField, socketioConnect, type LeanHandlers } from '../lib/lean-ws.js';
import { Histogram, type HistogramData } from '../lib/stats.js';

export type SystemMode = 'silk' | 'plain' | 'socketio';

export interface ConnectArgs {
  readonly host: string;
  readonly port: number;
  /** `silk`: token + subscribe; `plain`: any path, no subscribe; `socketio`: Engine.IO open + namespace connect. */
  readonly mode: SystemMode;
  readonly count: number;
  /** Index of this process's first user (users are `u<index>`). */
  readonly firstIndex: number;
  readonly localAddress?: string;
  readonly concurrency: number;
  readonly app: string;
  readonly secret: string;
  /** Channel to subscribe to; empty: none (unicast and broadcast runs). */
  readonly channel: string;
  /** Sample the latency of one message in this many, per connection. */
  readonly sampleEvery: number;
  /** Source addresses to spread connections over (127.0.0.x), for more than ~28k per destination. */
  readonly localAddresses?: readonly string[];
}

/** `ms` is the time to open every connection, after the tokens are signed. */

export interface ConnectResult {
  readonly opened: number;
  readonly failed: number;
  readonly retries: number;
  readonly errors: string[];
  readonly ms: number;
}

export interface ClientResults {
  readonly inWindow: number;
  readonly latency: HistogramData;
  readonly open: number;
  readonly closed: number;
  readonly closeCodes: Record<string, number>;
  /** Fewest and most message frames any connection received since it opened. */
  readonly minTotal: number;
  readonly maxTotal: number;
  readonly oddities: number;
  /** Latest arrival time of any message frame ({@link now}), for broadcast timing. */
  readonly lastArrival: number;
}

const conns: LeanConn[] = [];
const hist = new Histogram();
let t0 = Infinity;
let t1 = -Infinity;
let inWindow = 0;
let sampleEvery = 8;
let closed = 0;
let lastArrival = 0;
const closeCodes: Record<string, number> = {};

const handlers: LeanHandlers = {
  message(c, buf, start, end, at) {
    if (at > lastArrival) lastArrival = at;
    if (at < t0 || at >= t1) return;
    inWindow++;
    if (++c.tick >= sampleEvery) {
      c.tick = 0;
      const t = readNumberField(buf, start, end, KEY_T);
      if (t === t) hist.record(at - t);
    }
  },
  closed(_c, code) {
    closed++;
    const k = String(code ?? 'none');
    closeCodes[k] = (closeCodes[k] ?? 0) + 1;
  },
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Tokens signed ahead of the timed connect, by user index. */
const tokens = new Map<number, string>();

async function openOne(a: ConnectArgs, index: number): Promise<LeanConn> {
  let path = `/bench?user=u${index}`;
  if (a.mode === 'socketio') path = `/socket.io/?EIO=4&transport=websocket&user=u${index}`;
  if (a.mode === 'silk') {
    const token =
      tokens.get(index) ??
      (await signToken({ app: a.app, user: `u${index}`, secret: a.secret, ttlSeconds: 3600, channels: a.channel === '' ? [] : [a.channel] }));
    path = `/v1/connect?token=${token}`;
  }
  const local = a.localAddresses !== undefined && a.localAddresses.length > 0 ? a.localAddresses[index % a.localAddresses.length] : a.localAddress;
  const c = await LeanConn.open({ host: a.host, port: a.port, path, ...(local !== undefined ? { localAddress: local } : {}) }, handlers);
  if (a.mode === 'socketio') await socketioConnect(c);
  else if (a.mode === 'silk' && a.channel === '') {
    try {
      const welcome = await c.nextControl();
      if (!welcome.startsWith('{"type":"welcome"')) throw new Error(`expected welcome, got ${welcome.slice(0, 120)}`);
    } catch (err) {
      c.destroy();
      throw err;
    }
  } else if (a.mode === 'silk') {
    try {
      // As the SDK does: subscribe as soon as the socket is open; the reply comes after welcome.
      c.sendText(JSON.stringify({ type: 'subscribe', id: 1, channel: a.channel }));
      const welcome = await c.nextControl();
      if (!welcome.startsWith('{"type":"welcome"')) throw new Error(`expected welcome, got ${welcome.slice(0, 120)}`);
      const reply = await c.nextControl();
      if (!reply.startsWith('{"type":"reply","id":1')) throw new Error(`subscribe failed: ${reply.slice(0, 200)}`);
    } catch (err) {
      c.destroy();
      throw err;
    }
  }
  return c;
}

async function connectAll(a: ConnectArgs): Promise<ConnectResult> {
  if (a.mode === 'silk') {
    // Sign first, so that the connect time is the server's and not the signing.
    const channels = a.channel === '' ? [] : [a.channel];
    for (let i = 0; i < a.count; i++) {
      const index = a.firstIndex + i;
      tokens.set(index, await signToken({ app: a.app, user: `u${index}`, secret: a.secret, ttlSeconds: 3600, channels }));
    }
  }
  const start = performance.now();
  sampleEvery = Math.max(1, a.sampleEvery);
  let next = 0;
  let failed = 0;
  let retries = 0;
  const errors: string[] = [];
  const worker = async (): Promise<void> => {
    while (next < a.count) {
      const i = next++;
      for (let attempt = 0; ; attempt++) {
        try {
          const c = await openOne(a, a.firstIndex + i);
          c.tick = i % sampleEvery; // spread the sampled messages over the connections
          conns.push(c);
          break;
        } catch (err) {
          if (attempt >= 3) {
            failed++;
            if (errors.length < 5) errors.push((err as Error).message);
            break;
          }
          retries++;
          await sleep(100 * (attempt + 1));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(a.concurrency, a.count)) }, worker));
  return { opened: conns.length, failed, retries, errors, ms: performance.now() - start };
}

serveParent({
  connect: (m) => connectAll(m as unknown as ConnectArgs),
  window: (m) => {
    t0 = m['t0'] as number;
    t1 = m['t1'] as number;
    inWindow = 0;
    hist.reset();
    return true;
  },
  /** Forget message counts (before a broadcast is timed). */
  zero: () => {
    for (const c of conns) c.messages = 0;
    lastArrival = 0;
    return true;
  },
  results: (): ClientResults => {
    let minTotal = Infinity;
    let maxTotal = 0;
    let open = 0;
    let oddities = 0;
    for (const c of conns) {
      if (c.open) open++;
      oddities += c.oddities;
      if (c.messages < minTotal) minTotal = c.messages;
      if (c.messages > maxTotal) maxTotal = c.messages;
    }
    return {
      inWindow,
      latency: hist.toData(),
      open,
      closed,
      closeCodes,
      minTotal: conns.length === 0 ? 0 : minTotal,
      maxTotal,
      oddities,
      lastArrival,
    };
  },
  close: () => {
    for (const c of conns) c.destroy();
    conns.length = 0;
    return true;
  },
});
