/**
 * The storm's publisher: durable messages at a steady rate, one per channel
 * per tick in one batch request, each numbered in its channel (`{"n":…}`)
 * and carrying an idempotency key, so a batch that failed is sent again as
 * it was and a message is never stored twice. Batches go one after another,
 * so each channel's numbers are stored in order.
 */
import { Agent, request } from 'node:http';
import { serveParent } from '../lib/proc.js';

export interface PublishArgs {
  readonly port: number;
  /** Nodes to fall back on, in turn, while `port` fails (a restart). */
  readonly fallbacks?: readonly number[];
  readonly app: string;
  readonly apiKey: string;
  readonly channels: number;
  /** Batches per second (each holds one message per channel). */
  readonly ticksPerSecond: number;
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });
let running = false;
let last: PublishArgs | undefined;
let loop: Promise<void> | undefined;
/** Last sequence number acknowledged per channel. */
let acked: number[] = [];
let sent = 0;
let failures = 0;
const statuses: Record<string, number> = {};

function post(port: number, path: string, headers: Record<string, string>, body: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

async function run(a: PublishArgs): Promise<void> {
  const path = `/v1/apps/${a.app}/messages/batch`;
  const headers = { authorization: `Bearer ${a.apiKey}`, 'content-type': 'application/json' };
  const every = 1000 / a.ticksPerSecond;
  let seq = acked.length === 0 ? 0 : acked[0]! + 1;
  let due = performance.now();
  const ports = [a.port, ...(a.fallbacks ?? [])];
  let at = 0;
  while (running) {
    const messages = [];
    for (let k = 0; k < a.channels; k++) {
      messages.push({ to: { channels: [`storm-${k}`] }, data: { n: seq }, durable: true, idempotencyKey: `storm-${k}-${seq}` });
    }
    const body = JSON.stringify({ messages });
    for (;;) {
      const status = await post(ports[at % ports.length]!, path, headers, body);
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status === 202) break;
      failures++;
      at++;
      if (!running) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    acked = Array.from({ length: a.channels }, () => seq);
    sent += a.channels;
    seq++;
    due += every;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    else if (wait < -1000) due = performance.now(); // Fell behind by a second: do not burst to catch up.
  }
}

serveParent({
  start(msg) {
    running = true;
    last = msg as unknown as PublishArgs;
    loop = run(last);
    return true;
  },
  async stop() {
    running = false;
    await loop;
    return { acked, sent, failures, statuses };
  },
  progress: () => ({ sent, failures }),
  /** Stop sending for a while (the numbering goes on at `resume`). */
  async pause() {
    running = false;
    await loop;
    return true;
  },
  resume(msg) {
    running = true;
    loop = run({ ...(last as PublishArgs), ...(msg as Partial<PublishArgs>) });
    return true;
  },
});
