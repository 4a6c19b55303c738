/**
 * The publisher process: POSTs messages stamped with their send time over
 * keep-alive HTTP connections, for a bounded time.
 *
 * - `saturate`: `inflight` requests always outstanding, as fast as the
 *   server answers, but never more than `window` messages published and not
 *   yet seen by the probe (0: no such bound). The probe is one more lean
 *   WebSocket subscriber, opened after all load clients so that it is the
 *   last in every fan-out loop: when it has a message, (nearly) everyone has.
 *   Without the window, a server that answers 202 before delivering (Silk)
 *   lets the publisher run ahead of delivery without bound.
 * - `paced`: a fixed message rate (latency at moderate load).
 */
import { Agent, request } from 'node:http';
import { signToken } from '../../src/auth/tokens.js';
import { LeanConn, now, socketioConnect } from '../lib/lean-ws.js';
import { serveParent } from '../lib/proc.js';
import { Histogram, type HistogramData } from '../lib/stats.js';
import type { SystemMode } from './clients.js';

/** How long the probe waits for each step of its handshake. */
const PROBE_TIMEOUT_MS = 60_000;

export interface ProbeArgs {
  readonly host: string;
  readonly port: number;
  readonly mode: SystemMode;
  readonly app: string;
  readonly secret: string;
  readonly channel: string;
  readonly localAddress?: string;
}

export interface RunArgs {
  readonly kind: 'saturate' | 'paced';
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly channel: string;
  /** Unicast: send each message to one random user of u0…u(users-1) instead of the channel. */
  readonly users?: number;
  /** Messages per request (Silk's batch endpoint when > 1). */
  readonly batch?: number;
  /** Publish with `"durable": true` (Silk). */
  readonly durable?: boolean;
  readonly inflight: number;
  /** saturate: most messages outstanding end to end (0: unbounded). */
  readonly window: number;
  /** paced: messages per second. */
  readonly rate: number;
  /** Absolute times ({@link now}): start publishing, measure window, stop publishing. */
  readonly startAt: number;
  readonly t0: number;
  readonly t1: number;
  readonly stopAt: number;
}

export interface RunResult {
  readonly sent: number;
  readonly accepted: number;
  /** Accepted messages sent inside [t0, t1). */
  readonly acceptedInWindow: number;
  readonly failed: number;
  readonly statuses: Record<string, number>;
  readonly errors: string[];
  /** Times the window bound waited over 2 s for the probe and went on anyway. */
  readonly stalls: number;
  /** paced: scheduled sends that left more than 5 ms late. */
  readonly late: number;
  /** Request latency (sent to answered) of requests sent inside [t0, t1). */
  readonly apiLatency: HistogramData;
}

let probe: LeanConn | undefined;
/** Messages accepted (202) over all runs, to compare with what the probe got. */
let acceptedTotal = 0;
/** Messages sent and not failed (so possibly on their way). */
let issued = 0;
let waiters: (() => void)[] = [];
/** Set by `stop`: end the current run early (the runner's memory guard). */
let stopped = false;

function wake(): void {
  if (waiters.length === 0) return;
  const w = waiters;
  waiters = [];
  for (const f of w) f();
}

async function openProbe(a: ProbeArgs): Promise<boolean> {
  let path = '/bench';
  if (a.mode === 'socketio') path = '/socket.io/?EIO=4&transport=websocket';
  if (a.mode === 'silk') {
    const token = await signToken({ app: a.app, user: 'probe', secret: a.secret, ttlSeconds: 3600, channels: [a.channel] });
    path = `/v1/connect?token=${token}`;
  }
  probe = await LeanConn.open(
    { host: a.host, port: a.port, path, ...(a.localAddress !== undefined ? { localAddress: a.localAddress } : {}) },
    { message: () => wake() },
  );
  // A server still busy with thousands of fresh connections (Socket.IO at 10,000) can take a while to answer.
  if (a.mode === 'socketio') await socketioConnect(probe, PROBE_TIMEOUT_MS);
  if (a.mode === 'silk') {
    const welcome = await probe.nextControl(PROBE_TIMEOUT_MS);
    if (!welcome.startsWith('{"type":"welcome"')) throw new Error(`probe: expected welcome, got ${welcome}`);
    probe.sendText(JSON.stringify({ type: 'subscribe', id: 1, channel: a.channel }));
    const reply = await probe.nextControl(PROBE_TIMEOUT_MS);
    if (!reply.startsWith('{"type":"reply"')) throw new Error(`probe: subscribe failed: ${reply}`);
  }
  return true;
}

const probeCount = (): number => probe?.messages ?? 0;

/** Wait until fewer than `w` messages are outstanding, at most `maxMs`; false on timeout. */
function underWindow(w: number, maxMs: number): Promise<boolean> {
  if (issued - probeCount() < w) return Promise.resolve(true);
  return new Promise((resolve) => {
    const deadline = now() + maxMs;
    const timer = setTimeout(() => resolve(false), maxMs);
    const check = (): void => {
      if (issued - probeCount() < w) {
        clearTimeout(timer);
        resolve(true);
      } else if (now() < deadline) waiters.push(check);
    };
    waiters.push(check);
  });
}

const sleepUntil = (t: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, t - now())));

async function run(a: RunArgs): Promise<RunResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: a.inflight });
  const statuses: Record<string, number> = {};
  const errors: string[] = [];
  let sent = 0;
  let accepted = 0;
  let acceptedInWindow = 0;
  let failed = 0;
  let stalls = 0;
  let late = 0;
  let seq = 0;
  let slot = 0;
  const apiLatency = new Histogram();
  const durable = a.durable === true ? ',"durable":true' : '';

  const post = (body: string, batch: boolean): Promise<number> =>
    new Promise((resolve) => {
      const req = request(
        {
          agent,
          host: a.host,
          port: a.port,
          path: batch ? a.path + '/batch' : a.path,
          method: 'POST',
          headers: { ...a.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', () => resolve(0));
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
      req.on('error', (err) => {
        if (errors.length < 5) errors.push(err.message);
        resolve(0);
      });
      req.end(body);
    });

  const worker = async (): Promise<void> => {
    for (;;) {
      if (a.kind === 'paced') {
        const at = a.startAt + (slot++ * 1000) / a.rate;
        // A server slower than the pace leaves the schedule behind: stop at stopAt all the same.
        if (at >= a.stopAt || now() >= a.stopAt || stopped) return;
        await sleepUntil(at);
        if (now() - at > 5) late++;
      } else {
        if (now() >= a.stopAt || stopped) return;
        if (a.window > 0 && !(await underWindow(a.window, 2000))) stalls++;
        if (now() >= a.stopAt || stopped) return;
      }
      const t = now();
      const n = Math.max(1, a.batch ?? 1);
      const one = (): string => {
        const s = ++seq;
        const to = a.users !== undefined ? `{"users":["u${Math.floor(Math.random() * a.users)}"]}` : `{"channels":["${a.channel}"]}`;
        return `{"to":${to}${durable},"data":{"t":${t.toFixed(3)},"s":${s}}}`;
      };
      let body: string;
      if (n === 1) body = one();
      else {
        const parts: string[] = [];
        for (let i = 0; i < n; i++) parts.push(one());
        body = `{"messages":[${parts.join(',')}]}`;
      }
      sent += n;
      issued += n;
      const status = await post(body, n > 1);
      if (t >= a.t0 && t < a.t1) apiLatency.record(now() - t);
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status === 202) {
        accepted += n;
        acceptedTotal += n;
        if (t >= a.t0 && t < a.t1) acceptedInWindow += n;
      } else {
        failed += n;
        issued -= n;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };

  stopped = false;
  await sleepUntil(a.startAt);
  await Promise.all(Array.from({ length: Math.max(1, a.inflight) }, worker));
  agent.destroy();
  return { sent, accepted, acceptedInWindow, failed, statuses, errors, stalls, late, apiLatency: apiLatency.toData() };
}

/** Wait (bounded) until the probe has every accepted message. */
async function drain(timeoutMs: number): Promise<{ probeReceived: number; accepted: number; waitedMs: number }> {
  const start = now();
  while (probeCount() < acceptedTotal && now() - start < timeoutMs) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return { probeReceived: probeCount(), accepted: acceptedTotal, waitedMs: now() - start };
}

/** Post one message and resolve with the time it was sent ({@link now}) and the status. */
async function once(m: Record<string, unknown>): Promise<{ at: number; status: number }> {
  const a = m as unknown as { host: string; port: number; path: string; headers: Record<string, string>; body: string };
  const at = now();
  const status = await new Promise<number>((resolve) => {
    const req = request(
      { host: a.host, port: a.port, path: a.path, method: 'POST', headers: { ...a.headers, 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.end(a.body);
  });
  return { at, status };
}

serveParent({
  once,
  probe: (m) => openProbe(m as unknown as ProbeArgs),
  run: (m) => run(m as unknown as RunArgs),
  stop: () => {
    stopped = true;
    wake();
    return true;
  },
  drain: (m) => drain((m['timeoutMs'] as number | undefined) ?? 10_000),
  close: () => {
    probe?.destroy();
    return true;
  },
});
