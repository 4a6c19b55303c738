/**
 * The baseline: a minimal broadcast server on the raw `ws` library, what
 * one would write in an afternoon. It accepts WebSocket connections on any
 * path (no auth, no subscribe) and takes `POST /publish` with the same body
 * as Silk's publish API (`{"to":{"channels":[…]},"data":…}`), sending
 * `{"type":"message","channel":…,"data":…}` to every connected client.
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
  queue: Buffer[] = [];
  bytes = 0;
  dirty = false;

  constructor(sock: Duplex) {
    this.sock = sock;
  }
}

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

function broadcast(json: string): void {
  if (!coalesce) {
    for (const ws of wss.clients) {
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(json);
        delivered++;
      }
    }
    return;
  }
  const frame = textFrame(json);
  for (const q of queued) {
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

async function publish(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  let body: { to?: { channels?: unknown }; data?: unknown };
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
  } catch {
    return reply(res, 400, { error: 'invalid_json' });
  }
  const channels = body.to?.channels;
  const channel = Array.isArray(channels) && typeof channels[0] === 'string' ? channels[0] : 'bench';
  broadcast(JSON.stringify({ type: 'message', channel, data: body.data }));
  reply(res, 202, { id: String(++seq) });
}

const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/publish') {
    publish(req, res).catch(() => res.destroy());
    return;
  }
  reply(res, 404, { error: 'not_found' });
});

server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => undefined);
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('error', () => undefined);
    if (coalesce) {
      const q = new Queued(socket);
      queued.add(q);
      ws.on('close', () => queued.delete(q));
    }
  });
});

server.listen(0 + Number(values.port), '127.0.0.1', () => {
  instrumentServer(() => ({ connections: coalesce ? queued.size : wss.clients.size, delivered, published: seq }));
  announce({ system: coalesce ? 'ws-coalesce' : 'ws', port: (server.address() as AddressInfo).port, pid: process.pid });
});
