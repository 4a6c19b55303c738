/**
 * The cluster bus's receive side: durable channel messages in their
 * history's order whatever order the network brings them in, and a hole
 * that never fills waited out for at most ORDER_WAIT_MS. The bus is driven
 * directly: the test plays the network.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { ClusterBus, ORDER_WAIT_MS } from '../../src/cluster/bus.js';
import { encodeBus } from '../../src/cluster/codec.js';
import type { BusMessage, Envelope } from '../../src/core/message.js';

class Wire extends ClusterBus {
  readonly sent: [string, string][] = [];
  readonly topics = new Set<string>();
  readonly got: BusMessage[] = [];

  constructor(routes: Map<string, string[]> = new Map()) {
    super({
      node: 'me',
      routes: {
        nodesOf: async (_app, users) => {
          const out = new Map<string, string[]>();
          for (const [node, us] of routes) {
            const mine = us.filter((u) => users.includes(u));
            if (mine.length > 0) out.set(node, mine);
          }
          return out;
        },
      },
      logger: pino({ level: 'silent' }),
      topics: { channel: (a, c) => `c:${a}:${c}`, app: (a) => `a:${a}`, node: (n) => `n:${n}` },
    });
    this.onMessage((m) => this.got.push(m));
  }

  protected async send(topic: string, payload: string): Promise<void> {
    this.sent.push([topic, payload]);
  }

  protected async listen(topic: string, on: boolean): Promise<void> {
    if (on) this.topics.add(topic);
    else this.topics.delete(topic);
  }

  arrive(m: Envelope): void {
    this.received('c:acme:news', encodeBus(m));
  }
}

const at = (place: number, channel = 'news'): Envelope => ({
  app: 'acme',
  id: String(100 + place),
  target: { channels: [channel] },
  data: String(place),
  durable: true,
  positions: { [channel]: place },
});
const ids = (w: Wire): string[] => w.got.map((m) => (m as Envelope).id);

test('order - messages that overtake the one before them wait for it', () => {
  const w = new Wire();
  w.arrive(at(1));
  w.arrive(at(3));
  w.arrive(at(4));
  assert.deepEqual(ids(w), ['101']);
  w.arrive(at(2));
  assert.deepEqual(ids(w), ['101', '102', '103', '104']);
});

test('order - a hole that never fills is waited out once, and what follows flows again', async () => {
  const w = new Wire();
  w.arrive(at(1));
  w.arrive(at(3));
  const start = Date.now();
  while (w.got.length < 2) await new Promise((r) => setTimeout(r, 5));
  assert.ok(Date.now() - start >= ORDER_WAIT_MS - 5, 'held for the wait');
  assert.deepEqual(ids(w), ['101', '103']);
  w.arrive(at(4));
  assert.deepEqual(ids(w), ['101', '103', '104'], 'the next one is not held');
  // The missing one arriving late is still delivered (clients drop repeats by id).
  w.arrive(at(2));
  assert.deepEqual(ids(w), ['101', '103', '104', '102']);
  await w.close();
});

test('order - channels are ordered apart; messages without a place pass at once', () => {
  const w = new Wire();
  w.arrive(at(1, 'a'));
  w.arrive(at(1, 'b'));
  w.arrive(at(3, 'a'));
  w.arrive({ app: 'acme', id: 'live', target: { channels: ['a'] }, data: '0' });
  w.arrive(at(2, 'b'));
  assert.deepEqual(ids(w), ['101', '101', 'live', '102']);
  w.arrive(at(2, 'a'));
  assert.deepEqual(ids(w), ['101', '101', 'live', '102', '102', '103']);
});

test('order - the last subscriber leaving forgets the channel: a later first message is not held', () => {
  const w = new Wire();
  w.channel('acme', 'news', 1);
  w.arrive(at(1));
  w.channel('acme', 'news', 0);
  w.channel('acme', 'news', 1);
  w.arrive(at(7));
  assert.deepEqual(ids(w), ['101', '107']);
});

test('routing - channel messages go on each channel topic with only that place; users to their nodes, this node without the network', async () => {
  const w = new Wire(new Map([['me', ['u1']], ['other', ['u2', 'u3']]]));
  w.publish({ app: 'acme', id: '1', target: { channels: ['x', 'y'] }, data: '{}', durable: true, positions: { x: 5, y: 9 } });
  w.publish({ app: 'acme', id: '2', target: { users: ['u1', 'u2', 'u3'] }, data: '"hi"' });
  w.publish({ app: 'acme', id: '3', target: { all: true }, data: '0' });
  w.publish({ kind: 'disconnect', app: 'acme', user: 'u2' });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    w.sent.map(([t, p]) => [t, JSON.parse(p.slice(0, p.indexOf('\n')))]),
    [
      ['c:acme:x', { k: 'm', a: 'acme', i: '1', t: { channels: ['x'] }, du: 1, p: { x: 5 } }],
      ['c:acme:y', { k: 'm', a: 'acme', i: '1', t: { channels: ['y'] }, du: 1, p: { y: 9 } }],
      ['a:acme', { k: 'm', a: 'acme', i: '3', t: { all: true } }],
      ['n:other', { k: 'm', a: 'acme', i: '2', t: { users: ['u2', 'u3'] } }],
      ['n:other', { k: 'd', a: 'acme', s: 'u2' }],
    ],
  );
  assert.deepEqual(w.got, [{ app: 'acme', id: '2', target: { users: ['u1'] }, data: '"hi"' }]);
});

test('topics - the hub tells the bus which topics to listen to: an app with connections, a channel with subscribers', async () => {
  const w = new Wire();
  await w.start();
  w.app('acme', true);
  w.channel('acme', 'news', 1);
  w.channel('acme', 'news', 2);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual([...w.topics].sort(), ['a:acme', 'c:acme:news', 'n:me']);
  w.channel('acme', 'news', 0);
  w.app('acme', false);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual([...w.topics], ['n:me']);
});

test('malformed - a payload that is not a bus message is dropped', () => {
  const w = new Wire();
  w.arrive(at(1));
  (w as unknown as { received(t: string, p: string): void }).received('c:acme:news', 'not json\n');
  assert.deepEqual(ids(w), ['101']);
});
