/**
 * WsConnection.keepFragments works around ws's receiver starting a new
 * fragments array after every message (see its doc comment: on idle
 * connections that promoted every heartbeat answer to V8's old generation).
 * These tests read ws's receiver, a private part of ws, on purpose: they
 * are what tells a ws upgrade whether the workaround still applies.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { WsConnection } from '../../src/transports/websocket/connection.js';
import { startTestNode } from '../helpers.js';

interface Receiver {
  _fragments: Buffer[];
}

let wss: WebSocketServer;
let url: string;

before(async () => {
  wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false, WebSocket: WsConnection });
  await once(wss, 'listening');
  url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
});
after(async () => {
  // A test that failed midway leaves its connection open, and close() waits for every one.
  for (const c of wss.clients) c.terminate();
  await new Promise<void>((resolve) => wss.close(() => resolve()));
});

/** A client and the server's end of it; the server end collects the text messages it gets. */
async function pair(keep: boolean): Promise<{ client: WebSocket; server: WsConnection; got: string[]; next: () => Promise<string> }> {
  const accepted = once(wss, 'connection');
  const client = new WebSocket(url);
  await once(client, 'open');
  const [server] = (await accepted) as [WsConnection];
  if (keep) server.keepFragments();
  const got: string[] = [];
  let waiter: ((s: string) => void) | undefined;
  server.on('message', (data) => {
    if (keep) server.releaseFragments();
    const s = String(data);
    got.push(s);
    waiter?.(s);
  });
  const next = (): Promise<string> => new Promise((resolve) => (waiter = resolve));
  return { client, server, got, next };
}

async function close(client: WebSocket): Promise<void> {
  const closed = once(client, 'close');
  client.close();
  await closed;
}

test('the receiver keeps one fragments array, empty after each message, and messages arrive whole', { timeout: 10_000 }, async () => {
  const { client, server, got, next } = await pair(true);
  try {
    const receiver = (server as unknown as { _receiver: Receiver })._receiver;
    const first = receiver._fragments;
    assert.ok(Array.isArray(first), 'ws still has a fragments array on its receiver');
    for (let i = 0; i < 3; i++) {
      const arrived = next();
      client.send(`{"type":"pong","i":${i}}`);
      await arrived;
      assert.equal(receiver._fragments, first, `the same array after message ${i}`);
      assert.equal(first.length, 0, `nothing left in it after message ${i}`);
    }
    // A message in three frames: joined from the array, which is emptied afterwards.
    const arrived = next();
    client.send('{"type":', { fin: false });
    client.send('"pong",', { fin: false });
    client.send('"i":3}', { fin: true });
    await arrived;
    assert.equal(receiver._fragments, first);
    assert.equal(first.length, 0);
    assert.deepEqual(got, [0, 1, 2, 3].map((i) => `{"type":"pong","i":${i}}`));
  } finally {
    await close(client);
  }
});

test('ws on its own still drops the array with the last payload in it (when this fails, ws is fixed: remove keepFragments)', { timeout: 10_000 }, async () => {
  const { client, server, next } = await pair(false);
  try {
    const receiver = (server as unknown as { _receiver: Receiver })._receiver;
    const held = receiver._fragments;
    const arrived = next();
    client.send('{"type":"pong"}');
    await arrived;
    assert.notEqual(receiver._fragments, held, 'ws started a new array');
    assert.equal(held.length, 1, 'and the one it dropped still holds the payload');
    assert.equal(String(held[0]), '{"type":"pong"}');
  } finally {
    await close(client);
  }
});

test("a Silk node's connections keep their receiver's first array, empty after each client frame", { timeout: 20_000 }, async () => {
  // A spy on the prototype hands the test the server's end of the connection; the node is otherwise untouched.
  const opened: WsConnection[] = [];
  const keep = WsConnection.prototype.keepFragments;
  WsConnection.prototype.keepFragments = function (this: WsConnection) {
    opened.push(this);
    keep.call(this);
  };
  const t = await startTestNode();
  try {
    const c = await t.connect('fragments');
    assert.equal(opened.length, 1, 'the gateway keeps the fragments of the connection it opens');
    const receiver = (opened[0] as unknown as { _receiver: Receiver })._receiver;
    const first = receiver._fragments;
    for (let i = 0; i < 3; i++) {
      c.send('{"type":"pong"}');
      c.send('{"type":"ping","id":' + (100 + i) + '}');
      // The reply comes after both frames were handled.
      await c.next((f) => f.type === 'reply' && f.id === 100 + i);
      assert.equal(receiver._fragments, first, `the same array after round ${i}`);
      assert.equal(first.length, 0, `nothing left in it after round ${i}`);
    }
    await c.close();
  } finally {
    WsConnection.prototype.keepFragments = keep;
    await t.close();
  }
});
