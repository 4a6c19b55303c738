import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Hub, type Peer } from '../../src/core/hub.js';
import type { Batch, Delivery, MessageDelivery } from '../../src/core/delivery.js';
import type { Envelope, Target } from '../../src/core/message.js';

/** A peer that records what it is handed: deliveries one by one, and batches as the deliveries they carry. */
class Recorder implements Peer {
  readonly id: string;
  readonly app = 'app';
  readonly since = 0;
  readonly transport = 'test';
  channels: string | Set<string> | null = null;
  readonly got: string[] = [];
  batches = 0;
  constructor(readonly user: string) {
    this.id = user;
  }
  push(d: Delivery): void {
    this.got.push(d.kind === 'message' ? JSON.parse((d as MessageDelivery).data) : undefined);
  }
  pushBatch(batch: Batch): void {
    this.batches++;
    for (const d of batch.deliveries) this.push(d);
  }
}

let seq = 0;
function env(target: Target, data: string): Envelope {
  return { app: 'app', id: String(++seq), target, data: JSON.stringify(data) };
}

describe('hub', () => {
  test('consecutive channel messages join one batch, handed to each subscriber once', () => {
    const hub = new Hub();
    hub.onPending(() => {});
    const peers = [new Recorder('a'), new Recorder('b')];
    for (const p of peers) {
      hub.add(p);
      hub.subscribe(p, 'room');
    }
    for (let i = 0; i < 5; i++) hub.deliver(env({ channels: ['room'] }, `m${i}`));
    assert.deepEqual(peers[0]!.got, [], 'nothing is handed out before distribute()');
    hub.distribute();
    for (const p of peers) {
      assert.deepEqual(p.got, ['m0', 'm1', 'm2', 'm3', 'm4']);
      assert.equal(p.batches, 1);
    }
    assert.equal(hub.counters('app').messagesOut, 10);
  });

  test('user, channel and all messages keep their accepted order on every connection', () => {
    const hub = new Hub();
    let wakes = 0;
    hub.onPending(() => wakes++);
    const a = new Recorder('a');
    const b = new Recorder('b');
    hub.add(a);
    hub.add(b);
    hub.subscribe(a, 'x');
    hub.subscribe(a, 'y');
    hub.subscribe(b, 'x');
    hub.deliver(env({ channels: ['x'] }, '1'));
    hub.deliver(env({ channels: ['y'] }, '2'));
    hub.deliver(env({ channels: ['x'] }, '3'));
    hub.deliver(env({ users: ['a'] }, '4'));
    hub.deliver(env({ all: true }, '5'));
    hub.deliver(env({ channels: ['x'] }, '6'));
    hub.unread('app', 'b', 7);
    hub.deliver(env({ channels: ['x', 'y'] }, '8'));
    hub.distribute();
    assert.deepEqual(a.got, ['1', '2', '3', '4', '5', '6', '8', '8']);
    assert.deepEqual(b.got, ['1', '3', '5', '6', undefined, '8']);
    assert.ok(wakes >= 2, 'the transport is woken when deliveries start waiting');
  });

  test('a subscribe or connect takes effect after the messages accepted before it, an unsubscribe too', () => {
    const hub = new Hub();
    hub.onPending(() => {});
    const early = new Recorder('early');
    hub.add(early);
    hub.subscribe(early, 'x');
    hub.deliver(env({ channels: ['x'] }, 'before'));
    hub.deliver(env({ all: true }, 'all-before'));
    const late = new Recorder('late');
    hub.add(late);
    hub.subscribe(late, 'x');
    hub.deliver(env({ channels: ['x'] }, 'after'));
    hub.unsubscribe(early, 'x');
    hub.deliver(env({ channels: ['x'] }, 'after-unsubscribe'));
    hub.distribute();
    assert.deepEqual(early.got, ['before', 'all-before', 'after']);
    assert.deepEqual(late.got, ['after', 'after-unsubscribe']);
  });

  test('without a transport the hub distributes on its own on the next turn', async () => {
    const hub = new Hub();
    const p = new Recorder('p');
    hub.add(p);
    hub.subscribe(p, 'x');
    hub.deliver(env({ channels: ['x'] }, 'soon'));
    assert.deepEqual(p.got, []);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(p.got, ['soon']);
  });

  test('subscriptions and devices: one, several, and back to none', () => {
    const hub = new Hub();
    hub.onPending(() => {});
    const phone = new Recorder('u');
    const laptop = new Recorder('u');
    hub.add(phone);
    hub.add(laptop);
    for (const ch of ['a', 'b', 'c']) assert.equal(hub.subscribe(phone, ch), true);
    assert.equal(hub.subscribe(phone, 'b'), false, 'already subscribed');
    assert.equal(hub.subscriptionsOf(phone), 3);
    assert.equal(hub.unsubscribe(phone, 'a'), true);
    assert.equal(hub.unsubscribe(phone, 'a'), false);
    assert.equal(hub.unsubscribe(phone, 'c'), true);
    assert.equal(hub.subscribed(phone, 'b'), true);
    assert.equal(hub.subscribed(phone, 'c'), false);
    assert.equal(hub.subscriptionsOf(phone), 1);
    hub.subscribe(laptop, 'b');
    assert.deepEqual(hub.counters('app'), { connections: 2, users: 1, channels: 1, subscriptions: 2, messagesIn: 0, messagesOut: 0 });
    assert.equal(hub.devices('app', 'u').length, 2);
    hub.deliver(env({ users: ['u'] }, 'to-both'));
    hub.remove(phone);
    assert.deepEqual(hub.devices('app', 'u'), [laptop]);
    hub.deliver(env({ users: ['u'] }, 'to-laptop'));
    hub.deliver(env({ channels: ['b'] }, 'on-b'));
    hub.distribute();
    assert.deepEqual(phone.got, ['to-both']);
    assert.deepEqual(laptop.got, ['to-both', 'to-laptop', 'on-b']);
    hub.remove(laptop);
    assert.deepEqual(hub.devices('app', 'u'), []);
    assert.deepEqual(hub.counters('app'), { connections: 0, users: 0, channels: 0, subscriptions: 0, messagesIn: 0, messagesOut: 4 });
  });
});
