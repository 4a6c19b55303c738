/**
 * The baseline: a minimal broadcast server on the raw `ws` library, what
 * one would write in an afternoon. It accepts WebSocket connections on any
 * path (no auth, no subscribe; `?user=uN` names the connection's user) and
 * takes `POST /publish` with the same body as Silk's publish API: to
 * `{"channels":[…]}` it sends `{"type":"message","channel":…,"data":…}` to
 * every connected client, to `{"users":[…]}` only to those users'
 * connections. `POST /publish/batch` takes `{"messages":[…]}` as Silk's
 * batch endpoint does.
 *
 * Two variants:
 * - naive (default): one `ws.send()` per client per message, in the request
 *   handler, as in the `ws` README's broadcast example;
 * - `--coalesce`: the frame is built once, queued per client, and each
 *   client's queue is flushed with one socket write per `setImmediate`
 *   (what Silk does, minus time slicing, limits and protocol).
 *
 * Prints `{"system":…,"port":N}` on stdout once it listens.
 *
 *   node dist/bench/baseline/ws-broadcast.js [--port N] [--coalesce]
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { parseArgs } from 'node:util';
import { WebSocket, WebSocketServer } from 'ws';
import { announce, instrumentServer } from '../lib/server-probe.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    coalesce: { type: 'boolean', default: false },
  },
  strict: true,
});
const coalesce = values.coalesce;

/** One unmasked final text frame (RFC 6455 §5.2). */
function textFrame(json: string): Buffer {
  const len = Buffer.byteLength(json);
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const buf = Buffer.allocUnsafe(head + len);
  buf[0] = 0x81;
  if (head === 2) buf[1] = len;
  else if (head === 4) {
    buf[1] = 126;
    buf.writeUInt16BE(len, 2);
  } else {
    buf[1] = 127;
    buf.writeUInt32BE(0, 2);
    buf.writeUInt32BE(len, 6);
  }
  buf.write(json, head, 'utf8');
  return buf;
}

/** A client in the coalescing variant: its raw socket and what waits to be written. */
class Queued {
  readonly sock: Duplex;
  readonly ws: WebSocket;
  queue: Buffer[] = [];
  bytes = 0;
  dirty = false;

  constructor(sock: Duplex, ws: WebSocket) {
    this.sock = sock;
    this.ws = ws;
  }
}

/** Connections by user, for user messages. */
const byUser = new Map<string, Set<Queued>>();

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: true });
const queued = new Set<Queued>();
let dirty: Queued[] = [];
let scheduled = false;

function flush(): void {
  scheduled = false;
  const list = dirty;
  dirty = [];
  for (const q of list) {
    q.dirty = false;
    if (q.queue.length === 0 || q.sock.destroyed) continue;
    q.sock.write(q.queue.length === 1 ? q.queue[0]! : Buffer.concat(q.queue, q.bytes));
    q.queue = [];
    q.bytes = 0;
  }
}

let seq = 0;
let delivered = 0;

function broadcast(json: string, to: Iterable<Queued> = queued): void {
  if (!coalesce) {
    for (const q of to) {
      if (q.ws.readyState === WebSocket.OPEN) {
        q.ws.send(json);
        delivered++;
      }
    }
    return;
  }
  const frame = textFrame(json);
  for (const q of to) {
    q.queue.push(frame);
    q.bytes += frame.length;
    delivered++;
    if (!q.dirty) {
      q.dirty = true;
      dirty.push(q);
    }
  }
  if (!scheduled && dirty.length > 0) {
    scheduled = true;
    setImmediate(flush);
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

interface Publish {
  to?: { channels?: unknown; users?: unknown };
  data?: unknown;
}

function send(p: Publish): string {
  const id = String(++seq);
  const users = p.to?.users;
  if (Array.isArray(users)) {
    const json = JSON.stringify({ type: 'message', id, data: p.data });
    for (const u of users) {
      const set = byUser.get(String(u));
      if (set !== undefined) broadcast(json, set);
    }
    return id;
  }
  const channels = p.to?.channels;
  const channel = Array.isArray(channels) && typeof channels[0] === 'string' ? channels[0] : 'bench';
  broadcast(JSON.stringify({ type: 'message', id, channel, data: p.data }));
  return id;
}

async function publish(req: IncomingMessage, res: ServerResponse, batch: boolean): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  let body: Publish & { messages?: Publish[] };
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
  } catch {
    return reply(res, 400, { error: 'invalid_json' });
  }
  if (batch) return reply(res, 202, { ids: (body.messages ?? []).map(send) });
  reply(res, 202, { id: send(body) });
}

const server = createServer((req, res) => {
  if (req.method === 'POST' && (req.url === '/publish' || req.url === '/publish/batch')) {
    publish(req, res, req.url === '/publish/batch').catch(() => res.destroy());
    return;
  }
  reply(res, 404, { error: 'not_found' });
});

server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => undefined);
  const user = new URL(req.url ?? '/', 'http://x').searchParams.get('user');
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('error', () => undefined);
    const q = new Queued(socket, ws);
    queued.add(q);
    if (user !== null) byUser.set(user, (byUser.get(user) ?? new Set()).add(q));
    ws.on('close', () => {
      queued.delete(q);
      const set = user === null ? undefined : byUser.get(user);
      set?.delete(q);
      if (set?.size === 0) byUser.delete(user!);
    });
  });
});

server.listen(0 + Number(values.port), '127.0.0.1', () => {
  instrumentServer(() => ({ connections: queued.size, delivered, published: seq }));
  announce({ system: coalesce ? 'ws-coalesce' : 'ws', port: (server.address() as AddressInfo).port, pid: process.pid });
});
