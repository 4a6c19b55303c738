import assert from 'node:assert/strict';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { WebSocket as WsSocket, WebSocketServer } from 'ws';
import { signToken } from '../../src/auth/tokens.js';
import { CloseCode as ServerCloseCode } from '../../src/protocol/codes.js';
import { CloseCode, SilkClient, type ConnectionState, type Message } from '../../sdk/src/node.js';
import { APP_A, eventually, startTestNode, tempDir, type TestNode } from '../helpers.js';
import { kill, serve, type Served } from '../process.js';

const cleanup: (() => unknown)[] = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

/** A port that was free a moment ago (for a server that must come back on the same one). */
async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  s.close();
  await once(s, 'close');
  return port;
}

const token = (user: string, ttlSeconds = 3600): Promise<string> =>
  signToken({ app: APP_A.id, user, secret: APP_A.secret, ttlSeconds, channels: ['*'] });

function client(url: string, user: string, extra: Partial<ConstructorParameters<typeof SilkClient>[0]> = {}): SilkClient {
  const c = new SilkClient({ url, getToken: () => token(user), reconnect: { minDelayMs: 50, maxDelayMs: 400 }, ...extra });
  cleanup.push(() => c.close());
  return c;
}

describe('sdk - against a node', { timeout: 30_000 }, () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ heartbeatSeconds: 1 });
    cleanup.push(() => t.close());
  });

  test('sdk - connects, moves through typed states, and delivers channel messages by channel and event', async () => {
    const c = client(t.url, 'alice');
    const states: ConnectionState[] = [];
    c.on('state', (s) => states.push(s));
    const sub = c.subscribe<{ n: number }>('scores');
    const byEvent: Message<{ n: number }>[] = [];
    sub.on('event:goal', (m) => byEvent.push(m));
    const connected = c.wait('connected');
    c.connect();
    const info = await connected;
    assert.equal(info.user, 'alice');
    assert.equal(info.unread, 0);
    assert.deepEqual(states, ['connecting', 'connected']);
    // The subscription is answered after welcome: wait until the node counts it.
    await eventually(async () => assert.ok((await t.api('GET', '/v1/apps/acme/channels/scores')).body.subscribers === 1));
    const got = sub.wait('message');
    const r = await t.publish({ to: { channels: ['scores'] }, data: { n: 1 }, event: 'goal' });
    const m = await got;
    assert.deepEqual(m, { id: r.body.id, channel: 'scores', event: 'goal', data: { n: 1 }, durable: false });
    assert.deepEqual(byEvent, [m]);
  });

  test('sdk - the watchdog does not blame the server for the client\'s own stall', async () => {
    const c = client(t.url, 'sleeper');
    const disconnects: number[] = [];
    c.on('disconnected', (d) => disconnects.push(d.code));
    const connected = c.wait('connected');
    c.connect();
    await connected;
    // This process (client and node alike) does not run for 2.8 s: past the watchdog's 2.5 intervals.
    const end = Date.now() + 2800;
    while (Date.now() < end);
    // Two checks of the watchdog and a ping of the node later, the connection is still the same.
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(disconnects, []);
    assert.equal(c.state, 'connected');
  });

  test('sdk - subscriptions go out as soon as the socket opens, before welcome, on connect and on every reconnect', async () => {
    // A WebSocket that records what the SDK sends and receives, in order.
    const sockets: Recording[] = [];
    class Recording extends WsSocket {
      readonly events: string[] = [];
      constructor(url: string) {
        super(url);
        sockets.push(this);
        this.on('message', (d) => this.events.push('recv ' + (JSON.parse(String(d)) as { type: string }).type));
      }
      override send(data: unknown, ...rest: unknown[]): void {
        this.events.push('send ' + (JSON.parse(String(data)) as { type: string }).type);
        (super.send as (...a: unknown[]) => void)(data, ...rest);
      }
    }
    const c = client(t.url, 'early', { WebSocket: Recording as unknown as ConstructorParameters<typeof SilkClient>[0]['WebSocket'] });
    const sub = c.subscribe('early-news');
    c.connect();
    await c.wait('connected');
    await eventually(() => assert.ok(sockets[0]!.events.includes('recv reply')));
    const first = sockets[0]!.events;
    assert.ok(first.indexOf('send subscribe') < first.indexOf('recv welcome'), `subscribe sent before welcome arrived: ${first.join(', ')}`);
    assert.ok(first.indexOf('recv welcome') < first.indexOf('recv reply'), 'answered after welcome');
    // Drop the connection: the SDK reconnects and subscribes again, again before welcome.
    const back = c.wait('connected');
    sockets[0]!.terminate();
    await back;
    await eventually(() => assert.ok(sockets[1]?.events.includes('recv reply')));
    const second = sockets[1]!.events;
    assert.ok(second.indexOf('send subscribe') < second.indexOf('recv welcome'), `again before welcome: ${second.join(', ')}`);
    assert.equal(second.filter((e) => e === 'send subscribe').length, 1, 'subscribed once on the new socket');
    const got = sub.wait('message');
    const r = await t.publish({ to: { channels: ['early-news'] }, data: 'hello' });
    assert.equal((await got).id, r.body.id);
  });

  test('sdk - inbox: unread count and acks across two devices; acked messages never come back', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await t.publish({ to: { users: ['bob'] }, data: i, durable: true })).body.id);
    const phone = client(t.url, 'bob', { ackDelayMs: 10 });
    const laptop = client(t.url, 'bob');
    const phoneGot: string[] = [];
    phone.inbox.on('message', (m) => phoneGot.push(m.id));
    const phoneDone = phone.inbox.wait('message', (m) => m.id === ids[2]);
    phone.connect();
    laptop.connect();
    await phoneDone;
    await laptop.wait('connected');
    assert.equal(phone.inbox.unread, 3);
    assert.equal(laptop.inbox.unread, 3);
    const laptopSeesOne = laptop.inbox.wait('unread', (n) => n === 1);
    // Two calls within the batch window go out as one ack frame; both resolve once it is stored.
    await Promise.all([phone.inbox.ack(ids[0]!), phone.inbox.ack([ids[1]!])]);
    await laptopSeesOne;
    assert.equal(phone.inbox.unread, 1);
    assert.deepEqual(phoneGot, ids);
    // A new device gets only what is left.
    const tablet = client(t.url, 'bob');
    const left: string[] = [];
    tablet.inbox.on('message', (m) => left.push(m.id));
    const tabletGot = tablet.inbox.wait('message');
    tablet.connect();
    await tabletGot;
    assert.equal(tablet.inbox.unread, 1);
    assert.deepEqual(left, [ids[2]]);
  });

  test('sdk - a durable message delivered again after a reconnect is passed on once', async () => {
    const c = client(t.url, 'carol');
    const seen: string[] = [];
    c.inbox.on('message', (m) => seen.push(m.id));
    const first = c.inbox.wait('message');
    c.connect();
    await c.wait('connected');
    const r = await t.publish({ to: { users: ['carol'] }, data: 'once', durable: true });
    await first;
    // Not acknowledged: the server sends it again on the next connection; the client drops the repeat.
    c.close();
    const back = c.wait('connected');
    c.connect();
    assert.equal((await back).unread, 1);
    const marker = await t.publish({ to: { users: ['carol'] }, data: 'marker', durable: true });
    await c.inbox.wait('message', (m) => m.id === marker.body.id);
    assert.deepEqual(seen, [r.body.id, marker.body.id]);
  });

  test('sdk - a backend disconnect (4003) is final: no reconnect', async () => {
    const c = client(t.url, 'dave');
    c.connect();
    await c.wait('connected');
    const gone = c.wait('disconnected');
    await t.api('POST', '/v1/apps/acme/users/dave/disconnect');
    const info = await gone;
    assert.deepEqual(info, { code: CloseCode.DISCONNECTED, reason: 'disconnected', willRetry: false });
    assert.equal(c.state, 'closed');
  });

  test('sdk - a refused subscription reports its error code and is dropped', async () => {
    const c = new SilkClient({
      url: t.url,
      getToken: () => signToken({ app: APP_A.id, user: 'erin', secret: APP_A.secret, ttlSeconds: 60, channels: ['news'] }),
    });
    cleanup.push(() => c.close());
    const sub = c.subscribe('secret');
    const err = sub.wait('error');
    c.connect();
    assert.equal((await err).code, 'forbidden_channel');
  });

  test('sdk - the close codes of the SDK match the server', () => {
    for (const [name, code] of Object.entries(ServerCloseCode)) {
      assert.equal((CloseCode as Record<string, number>)[name], code, name);
    }
  });
});

describe('sdk - token expiry', { timeout: 30_000 }, () => {
  test('sdk - an expired token (4001) is replaced through getToken and the subscription recovers', async () => {
    const t = await startTestNode({ heartbeatSeconds: 0.2 });
    cleanup.push(() => t.close());
    let calls = 0;
    const c = new SilkClient({
      url: t.url,
      reconnect: { minDelayMs: 20, maxDelayMs: 100 },
      getToken: () => {
        calls++;
        // The first token lives one second; later ones an hour.
        return token('frank', calls === 1 ? 1 : 3600);
      },
    });
    cleanup.push(() => c.close());
    const got: string[] = [];
    const sub = c.subscribe('ticker', (m) => got.push(m.id));
    c.connect();
    await c.wait('connected');
    await eventually(async () => assert.ok((await t.api('GET', '/v1/apps/acme/channels/ticker')).body.subscribers === 1));
    const first = await t.publish({ to: { channels: ['ticker'] }, data: 1, durable: true });
    await sub.wait('message', (m) => m.id === first.body.id);
    const expired = await c.wait('disconnected', undefined, 5000);
    assert.equal(expired.code, CloseCode.TOKEN_EXPIRED);
    assert.equal(expired.willRetry, true);
    // Published while the client is away: recovered on the resubscribe.
    const missed = await t.publish({ to: { channels: ['ticker'] }, data: 2, durable: true });
    const recovered = sub.wait('recovered');
    await c.wait('connected');
    assert.equal(await recovered, true);
    // Recovered messages come before the reply that says so.
    assert.deepEqual(got, [first.body.id, missed.body.id]);
    assert.equal(calls, 2);
  });
});

describe('sdk - heartbeat watchdog', { timeout: 30_000 }, () => {
  /**
   * A fake server that says welcome and then nothing at all: the one way to
   * show the client notices a silent link (a real node always pings).
   */
  test('sdk - a server silent past 2.5 heartbeats is left and dialled again', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(wss, 'listening');
    cleanup.push(() => new Promise((r) => wss.close(r)));
    let connections = 0;
    wss.on('connection', (ws) => {
      connections++;
      ws.send(JSON.stringify({ type: 'welcome', version: 1, connection: `x${connections}`, user: 'u', heartbeat: 0.1, unread: 0 }));
    });
    const { port } = wss.address() as AddressInfo;
    const c = new SilkClient({ url: `ws://127.0.0.1:${port}`, token: 't', reconnect: { minDelayMs: 10, maxDelayMs: 50 } });
    cleanup.push(() => c.close());
    c.connect();
    const info = await c.wait('disconnected');
    assert.equal(info.code, CloseCode.HEARTBEAT_TIMEOUT);
    assert.equal(info.willRetry, true);
    await c.wait('connected', (i) => i.connection === 'x2');
  });
});

describe('sdk - server restart', { timeout: 30_000 }, () => {
  test('sdk - reconnects after the server restarts on the same data dir; no message lost or repeated', async () => {
    const dir = tempDir('silk-sdk-restart-');
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const config = { apps: [APP_A], port, heartbeatSeconds: 1, drainSeconds: 1, drainSpreadSeconds: 0.5 };
    let server: Served = await serveOn(dir, config);
    cleanup.push(() => kill(server.child));

    const c = client(`ws://127.0.0.1:${port}`, 'gina');
    const received: number[] = [];
    const sub = c.subscribe<{ n: number }>('stream', (m) => received.push(m.data.n));
    const recoveries: boolean[] = [];
    sub.on('recovered', (r) => recoveries.push(r));
    c.connect();
    await c.wait('connected');
    await eventually(async () => {
      const r = await fetch(`http://127.0.0.1:${port}/v1/apps/acme/channels/stream`, { headers: { authorization: `Bearer ${APP_A.apiKey}` } });
      assert.ok(((await r.json()) as { subscribers: number }).subscribers === 1);
    });

    // Publish without pause, through the restart: what the server acknowledged must arrive, once, in order.
    let n = 0;
    let running = true;
    const accepted: number[] = [];
    const publisher = (async () => {
      while (running) {
        const i = n++;
        try {
          const res = await fetch(`http://127.0.0.1:${port}/v1/apps/acme/messages`, {
            method: 'POST',
            headers: { authorization: `Bearer ${APP_A.apiKey}`, 'content-type': 'application/json' },
            body: JSON.stringify({ to: { channels: ['stream'] }, data: { n: i }, durable: true }),
          });
          if (res.status === 202) accepted.push(i);
        } catch {
          await new Promise((r) => setTimeout(r, 10)); // down: try the next one shortly
        }
      }
    })();
    await eventually(() => assert.ok(accepted.length >= 50), 15_000);
    const down = c.wait('disconnected');
    const exited = once(server.child, 'exit');
    server.child.kill('SIGTERM');
    assert.equal((await down).code, CloseCode.GOING_AWAY);
    await exited;
    server = await serveOn(dir, config);
    await c.wait('connected');
    const before = accepted.length;
    await eventually(() => assert.ok(accepted.length >= before + 50), 15_000);
    running = false;
    await publisher;
    const last = accepted.at(-1)!;
    await eventually(() => assert.ok(received.includes(last)), 15_000);
    assert.deepEqual(recoveries, [true]);
    assert.equal(new Set(received).size, received.length, 'no message twice');
    assert.deepEqual(received, [...received].sort((a, b) => a - b), 'in publish order');
    const got = new Set(received);
    assert.deepEqual(accepted.filter((i) => !got.has(i)), [], 'every acknowledged message arrived');
  });
});

/** `silk serve` on a given port (the restart test needs the same one twice). */
async function serveOn(dir: string, config: { port: number } & Record<string, unknown>): Promise<Served> {
  const { port, ...rest } = config;
  const s = await serve(dir, rest, ['--port', String(port)]);
  return s;
}
