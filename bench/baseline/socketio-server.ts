/**
 * The Socket.IO 4 baseline: a `socket.io` server as its documentation
 * writes one, WebSocket transport only (no long-polling upgrade dance), no
 * per-message compression. Every socket joins the room `bench` and the room
 * of its user (`?user=uN` in the handshake query). `POST /publish` takes the
 * same body as Silk's publish API (`{"to":{"channels"|"users":[…]},"data":…}`)
 * and emits `message` to the room(s); `POST /publish/batch` takes
 * `{"messages":[…]}` as Silk's batch endpoint does.
 *
 * Prints `{"system":"socketio","port":N}` on stdout once it listens.
 *
 *   node dist/bench/baseline/socketio-server.js [--port N]
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';
import { announce, instrumentServer } from '../lib/server-probe.js';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } }, strict: true });

interface Publish {
  to?: { channels?: unknown; users?: unknown };
  data?: unknown;
}

let seq = 0;

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function send(io: Server, p: Publish): void {
  const users = p.to?.users;
  if (Array.isArray(users)) {
    io.to(users.map((u) => `u:${String(u)}`)).emit('message', p.data);
  } else {
    const channels = p.to?.channels;
    io.to(Array.isArray(channels) ? channels.map(String) : 'bench').emit('message', p.data);
  }
  seq++;
}

async function publish(io: Server, req: IncomingMessage, res: ServerResponse, batch: boolean): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  let body: Publish & { messages?: Publish[] };
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
  } catch {
    return reply(res, 400, { error: 'invalid_json' });
  }
  if (batch) {
    for (const m of body.messages ?? []) send(io, m);
    return reply(res, 202, { count: body.messages?.length ?? 0 });
  }
  send(io, body);
  reply(res, 202, { id: String(seq) });
}

const http = createServer();
const io = new Server(http, { transports: ['websocket'], perMessageDeflate: false, serveClient: false });
io.on('connection', (socket) => {
  const user = socket.handshake.query['user'];
  void socket.join(['bench', ...(typeof user === 'string' ? [`u:${user}`] : [])]);
});
// Socket.IO answers its own path; everything else is ours.
http.on('request', (req, res) => {
  if (req.url?.startsWith('/socket.io/')) return;
  if (req.method === 'POST' && (req.url === '/publish' || req.url === '/publish/batch')) {
    publish(io, req, res, req.url === '/publish/batch').catch(() => res.destroy());
    return;
  }
  reply(res, 404, { error: 'not_found' });
});

http.listen(Number(values.port), '127.0.0.1', () => {
  instrumentServer(() => ({ connections: io.engine.clientsCount, published: seq }));
  announce({ system: 'socketio', port: (http.address() as AddressInfo).port, pid: process.pid });
});
