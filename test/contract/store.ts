/**
 * The store contract: one behaviour suite that every `Store` implementation
 * must pass (memory, SQLite, Redis). Each test gets a fresh store on a
 * clock the test moves by hand.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { HistoryPage, Store, StoredMessage, StoreLimits, StoreOptions } from '../../src/core/store.js';

export const CONTRACT_LIMITS: StoreLimits = {
  inboxMaxMessages: 1000,
  inboxMaxBytes: 1 << 20,
  historyMaxMessages: 1000,
  historyMaxAgeSeconds: 3600,
  idempotencySeconds: 600,
};

/** Makes stores for the suite. `reopen` (optional) opens a second store on the same data, after the first is closed. */
export interface StoreFactory {
  open(options: StoreOptions): Promise<Store>;
  reopen?(options: StoreOptions): Promise<Store>;
  /** Remove everything the factory made. */
  cleanup?(): Promise<void>;
  /** The store counts each channel's places up by one per append (the stores nodes share). */
  densePositions?: boolean;
}

class Clock {
  now = 1_800_000_000_000;
  readonly fn = (): number => this.now;
  advance(seconds: number): void {
    this.now += seconds * 1000;
  }
}

let seq = 5_000_000_000_000_000n;
/** A message with a fresh, increasing id. */
function msg(clock: Clock, data: unknown = { n: Number(seq % 1000n) }, extra: Partial<StoredMessage> = {}): StoredMessage {
  return { id: (++seq).toString(), data: JSON.stringify(data), at: clock.now, ...extra };
}

/** A page without its place, to compare pages whose places the engine chooses. */
function view(p: HistoryPage): Omit<HistoryPage, 'position'> {
  return { found: p.found, messages: p.messages, more: p.more };
}

export function storeContract(name: string, factory: StoreFactory): void {
  describe(`store contract - ${name}`, () => {
    const opened: Store[] = [];
    async function fresh(limits: Partial<StoreLimits> = {}): Promise<{ store: Store; clock: Clock }> {
      const clock = new Clock();
      const store = await factory.open({ limits: { ...CONTRACT_LIMITS, ...limits }, clock: clock.fn });
      opened.push(store);
      return { store, clock };
    }
    after(async () => {
      for (const s of opened) await s.close().catch(() => undefined);
      await factory.cleanup?.();
    });

    test('ids - leases never overlap, increase, and honour the floor', async () => {
      const { store } = await fresh();
      const a = await store.leaseIds(100, 0n);
      const b = await store.leaseIds(100, 0n);
      assert.ok(b >= a + 100n, `second block ${b} starts after the first ${a}+100`);
      const floor = b + 1_000_000n;
      const c = await store.leaseIds(10, floor);
      assert.ok(c >= floor);
      const d = await store.leaseIds(10, 0n);
      assert.ok(d >= c + 10n, 'a lower floor never goes back');
    });

    test('inbox - a message to users lands in each inbox, oldest first, with unread counts', async () => {
      const { store, clock } = await fresh();
      const m1 = msg(clock, { text: 'one' }, { event: 'greet' });
      const m2 = msg(clock, { text: 'two' });
      const w1 = await store.write({ app: 'a', message: m1, users: ['alice', 'bob'] });
      assert.equal(w1.duplicate, false);
      assert.equal(w1.id, m1.id);
      assert.deepEqual([...w1.unread].sort(), [['alice', 1], ['bob', 1]]);
      const w2 = await store.write({ app: 'a', message: m2, users: ['alice'] });
      assert.equal(w2.unread.get('alice'), 2);
      const page = await store.inbox('a', 'alice', undefined, 10);
      assert.deepEqual(page.messages, [m1, m2]);
      assert.equal(page.unread, 2);
      assert.equal(page.more, false);
      assert.equal(await store.unread('a', 'bob'), 1);
      assert.equal(await store.unread('a', 'carol'), 0);
      assert.deepEqual(await store.inbox('a', 'carol', undefined, 10), { messages: [], unread: 0, more: false });
    });

    test('inbox - pages with after and limit', async () => {
      const { store, clock } = await fresh();
      const ms = Array.from({ length: 25 }, (_, i) => msg(clock, { i }));
      for (const m of ms) await store.write({ app: 'a', message: m, users: ['u'] });
      const seen: StoredMessage[] = [];
      let after: string | undefined;
      for (let pages = 0; ; pages++) {
        const p = await store.inbox('a', 'u', after, 10);
        assert.equal(p.unread, 25);
        seen.push(...p.messages);
        if (!p.more) {
          assert.equal(pages, 2);
          break;
        }
        after = p.messages.at(-1)!.id;
      }
      assert.deepEqual(seen, ms);
    });

    test('ack - by ids, by upTo, all; unknown ids are ignored', async () => {
      const { store, clock } = await fresh();
      const ms = Array.from({ length: 6 }, (_, i) => msg(clock, { i }));
      for (const m of ms) await store.write({ app: 'a', message: m, users: ['u'] });
      assert.deepEqual(await store.ack('a', 'u', { ids: [ms[1]!.id, ms[3]!.id, '42'] }), { removed: 2, unread: 4 });
      assert.deepEqual(await store.ack('a', 'u', { ids: [ms[1]!.id] }), { removed: 0, unread: 4 });
      assert.deepEqual(await store.ack('a', 'u', { upTo: ms[2]!.id }), { removed: 2, unread: 2 });
      assert.deepEqual((await store.inbox('a', 'u', undefined, 10)).messages, [ms[4], ms[5]]);
      assert.deepEqual(await store.ack('a', 'u', { all: true }), { removed: 2, unread: 0 });
      assert.deepEqual(await store.ack('a', 'nobody', { all: true }), { removed: 0, unread: 0 });
    });

    test('ack - one user acknowledging leaves the other recipients alone', async () => {
      const { store, clock } = await fresh();
      const m = msg(clock);
      await store.write({ app: 'a', message: m, users: ['u1', 'u2'] });
      await store.ack('a', 'u1', { ids: [m.id] });
      assert.deepEqual((await store.inbox('a', 'u2', undefined, 10)).messages, [m]);
    });

    test('ttl - a shorter ttl written after longer ones, and expiry after acks', async () => {
      const { store, clock } = await fresh();
      const long = msg(clock, 'long', { expires: clock.now + 60_000 });
      const forever = msg(clock, 'forever');
      const short = msg(clock, 'short', { expires: clock.now + 10_000 });
      const mid = msg(clock, 'mid', { expires: clock.now + 30_000 });
      for (const m of [long, forever, short, mid]) await store.write({ app: 'a', message: m, users: ['u'] });
      clock.advance(11);
      assert.deepEqual((await store.inbox('a', 'u', undefined, 10)).messages, [long, forever, mid]);
      await store.ack('a', 'u', { ids: [mid.id] });
      clock.advance(50);
      const w = await store.write({ app: 'a', message: msg(clock), users: ['u'] });
      assert.equal(w.unread.get('u'), 2, 'long has expired: forever and the new one remain');
      assert.equal(await store.unread('a', 'u'), 2);
    });

    test('ttl - expired messages leave the inbox and the unread count', async () => {
      const { store, clock } = await fresh();
      const short = msg(clock, 'short', { expires: clock.now + 10_000 });
      const long = msg(clock, 'long', { expires: clock.now + 60_000 });
      const forever = msg(clock, 'forever');
      for (const m of [short, long, forever]) await store.write({ app: 'a', message: m, users: ['u'] });
      assert.equal(await store.unread('a', 'u'), 3);
      clock.advance(11);
      assert.equal(await store.unread('a', 'u'), 2);
      assert.deepEqual((await store.inbox('a', 'u', undefined, 10)).messages, [long, forever]);
      clock.advance(60);
      const p = await store.inbox('a', 'u', undefined, 10);
      assert.deepEqual(p.messages, [forever]);
      assert.equal(p.unread, 1);
      const w = await store.write({ app: 'a', message: msg(clock), users: ['u'] });
      assert.equal(w.unread.get('u'), 2);
    });

    test('caps - over inboxMaxMessages the oldest are dropped', async () => {
      const { store, clock } = await fresh({ inboxMaxMessages: 3 });
      const ms = Array.from({ length: 5 }, (_, i) => msg(clock, { i }));
      let evicted = 0;
      for (const m of ms) evicted += (await store.write({ app: 'a', message: m, users: ['u'] })).evicted;
      assert.equal(evicted, 2);
      const p = await store.inbox('a', 'u', undefined, 10);
      assert.deepEqual(p.messages, ms.slice(2));
      assert.equal(p.unread, 3);
    });

    test('caps - over inboxMaxBytes the oldest are dropped', async () => {
      const { store, clock } = await fresh({ inboxMaxBytes: 1024 });
      const big = 'x'.repeat(400);
      const ms = Array.from({ length: 4 }, () => msg(clock, big));
      for (const m of ms) await store.write({ app: 'a', message: m, users: ['u'] });
      // 402 bytes each (the JSON string's quotes): two fit in 1024.
      assert.deepEqual((await store.inbox('a', 'u', undefined, 10)).messages, ms.slice(2));
      // Acknowledging frees room: the next two both fit.
      await store.ack('a', 'u', { all: true });
      const more = [msg(clock, big), msg(clock, big)];
      for (const m of more) assert.equal((await store.write({ app: 'a', message: m, users: ['u'] })).evicted, 0);
    });

    test('idempotency - a repeated key answers with the first id and stores nothing', async () => {
      const { store, clock } = await fresh();
      const first = msg(clock, 'first');
      const again = msg(clock, 'again');
      assert.equal((await store.write({ app: 'a', message: first, users: ['u'], idempotencyKey: 'k1' })).duplicate, false);
      const dup = await store.write({ app: 'a', message: again, users: ['u'], idempotencyKey: 'k1' });
      assert.deepEqual({ id: dup.id, duplicate: dup.duplicate }, { id: first.id, duplicate: true });
      assert.deepEqual((await store.inbox('a', 'u', undefined, 10)).messages, [first]);
      // Keys are per app.
      const other = msg(clock, 'other app');
      assert.equal((await store.write({ app: 'b', message: other, users: ['u'], idempotencyKey: 'k1' })).duplicate, false);
      // A key without a durable target is remembered too.
      const eph = msg(clock);
      assert.equal((await store.write({ app: 'a', message: eph, idempotencyKey: 'k2' })).duplicate, false);
      assert.equal((await store.write({ app: 'a', message: msg(clock), idempotencyKey: 'k2' })).id, eph.id);
      // After the window the key is forgotten.
      clock.advance(601);
      const later = msg(clock, 'later');
      const w = await store.write({ app: 'a', message: later, users: ['u'], idempotencyKey: 'k1' });
      assert.deepEqual({ id: w.id, duplicate: w.duplicate }, { id: later.id, duplicate: false });
    });

    test('idempotency - publishes with one key issued together: one is stored, the others repeat it or are refused as in progress', async () => {
      const { store, clock } = await fresh();
      const ms = Array.from({ length: 5 }, (_, i) => msg(clock, { i }));
      const settled = await Promise.allSettled(ms.map((m) => store.write({ app: 'a', message: m, users: ['u'], idempotencyKey: 'same' })));
      const stored = settled.flatMap((r) => (r.status === 'fulfilled' && !r.value.duplicate ? [r.value.id] : []));
      assert.equal(stored.length, 1, JSON.stringify(settled));
      for (const r of settled) {
        if (r.status === 'fulfilled') assert.equal(r.value.id, stored[0]);
        else assert.equal((r.reason as { code?: string }).code, 'idempotency_key_in_use', String(r.reason));
      }
      assert.deepEqual((await store.inbox('a', 'u', undefined, 10)).messages.map((m) => m.id), stored);
      const again = await store.write({ app: 'a', message: msg(clock), users: ['u'], idempotencyKey: 'same' });
      assert.deepEqual([again.id, again.duplicate], [stored[0], true]);
    });

    test('history - messages after since, in publish order, paged', async () => {
      const { store, clock } = await fresh();
      const ms = Array.from({ length: 7 }, (_, i) => msg(clock, { i }));
      for (const m of ms) await store.write({ app: 'a', message: m, channels: ['news'] });
      const p = await store.history('a', 'news', ms[1]!.id, 3);
      assert.deepEqual(view(p), { found: true, messages: ms.slice(2, 5), more: true });
      const q = await store.history('a', 'news', ms[4]!.id, 3);
      assert.deepEqual(view(q), { found: true, messages: ms.slice(5), more: false });
      assert.deepEqual(view(await store.history('a', 'news', ms[6]!.id, 3)), { found: true, messages: [], more: false });
      assert.equal((await store.history('a', 'news', '12345', 3)).found, false);
      assert.equal((await store.history('a', 'sport', ms[1]!.id, 3)).found, false);
    });

    test('history - each append gets a place after every other in its channel; a repeated key gets none', async () => {
      const { store, clock } = await fresh();
      const place = async (channels: string[], key?: string): Promise<Map<string, number>> =>
        new Map((await store.write({ app: 'a', message: msg(clock), channels, ...(key !== undefined ? { idempotencyKey: key } : {}) })).positions);
      const seen: Record<string, number[]> = { x: [], y: [] };
      for (const chs of [['x'], ['x', 'y'], ['y'], ['x'], ['y', 'x']]) {
        const p = await place(chs);
        assert.deepEqual([...p.keys()].sort(), [...chs].sort());
        for (const [ch, at] of p) seen[ch]!.push(at);
      }
      for (const list of Object.values(seen)) {
        assert.ok(list.every((at, i) => i === 0 || at > list[i - 1]!), JSON.stringify(seen));
        if (factory.densePositions) assert.ok(list.every((at, i) => i === 0 || at === list[i - 1]! + 1), `dense: ${JSON.stringify(seen)}`);
      }
      assert.equal((await place(['x'], 'k')).size, 1);
      assert.equal((await place(['x'], 'k')).size, 0, 'a repeat stores nothing and has no place');
      assert.equal((await store.write({ app: 'a', message: msg(clock), users: ['u'] })).positions.size, 0, 'an inbox write has no place');
    });

    test('history - a page says the place it read up to: its last message\'s, or since\'s when none came after', async () => {
      const { store, clock } = await fresh();
      const ms = Array.from({ length: 5 }, (_, i) => msg(clock, { i }));
      const at: number[] = [];
      for (const m of ms) at.push((await store.write({ app: 'a', message: m, channels: ['p'] })).positions.get('p')!);
      await store.write({ app: 'a', message: msg(clock), channels: ['other'] });
      assert.equal((await store.history('a', 'p', ms[0]!.id, 2)).position, at[2], 'a full page: its last message');
      assert.equal((await store.history('a', 'p', ms[2]!.id, 10)).position, at[4], 'the last page');
      assert.equal((await store.history('a', 'p', ms[4]!.id, 10)).position, at[4], 'nothing after since: since');
      const brief = msg(clock, 'brief', { expires: clock.now + 5000 });
      const b = (await store.write({ app: 'a', message: brief, channels: ['p'] })).positions.get('p')!;
      clock.advance(6);
      const skipped = await store.history('a', 'p', ms[4]!.id, 10);
      assert.deepEqual(skipped.messages, []);
      assert.ok(skipped.position! >= at[4]! && skipped.position! <= b, 'an expired message skipped: at most its place');
    });

    test('history - one message to two channels is in both histories', async () => {
      const { store, clock } = await fresh();
      const m0 = msg(clock);
      await store.write({ app: 'a', message: m0, channels: ['x', 'y'] });
      const m1 = msg(clock);
      await store.write({ app: 'a', message: m1, channels: ['x', 'y'] });
      for (const ch of ['x', 'y']) assert.deepEqual((await store.history('a', ch, m0.id, 10)).messages, [m1]);
    });

    test('history - bounded by historyMaxMessages: what fell out is not found', async () => {
      const { store, clock } = await fresh({ historyMaxMessages: 3 });
      const ms = Array.from({ length: 5 }, (_, i) => msg(clock, { i }));
      for (const m of ms) await store.write({ app: 'a', message: m, channels: ['c'] });
      assert.equal((await store.history('a', 'c', ms[1]!.id, 10)).found, false);
      assert.deepEqual(view(await store.history('a', 'c', ms[2]!.id, 10)), { found: true, messages: ms.slice(3), more: false });
    });

    test('history - bounded by historyMaxAgeSeconds', async () => {
      const { store, clock } = await fresh({ historyMaxAgeSeconds: 60 });
      const old = msg(clock, 'old');
      await store.write({ app: 'a', message: old, channels: ['c'] });
      clock.advance(30);
      const mid = msg(clock, 'mid');
      await store.write({ app: 'a', message: mid, channels: ['c'] });
      clock.advance(31);
      const fresh2 = msg(clock, 'new');
      await store.write({ app: 'a', message: fresh2, channels: ['c'] });
      assert.equal((await store.history('a', 'c', old.id, 10)).found, false);
      assert.deepEqual((await store.history('a', 'c', mid.id, 10)).messages, [fresh2]);
    });

    test('history - messages past their ttl are skipped', async () => {
      const { store, clock } = await fresh();
      const start = msg(clock);
      const brief = msg(clock, 'brief', { expires: clock.now + 5000 });
      const last = msg(clock);
      for (const m of [start, brief, last]) await store.write({ app: 'a', message: m, channels: ['c'] });
      clock.advance(6);
      assert.deepEqual((await store.history('a', 'c', start.id, 10)).messages, [last]);
    });

    test('history - a since message past its own ttl still marks the place', async () => {
      const { store, clock } = await fresh();
      const brief = msg(clock, 'brief', { expires: clock.now + 5000 });
      const next = msg(clock);
      for (const m of [brief, next]) await store.write({ app: 'a', message: m, channels: ['c'] });
      clock.advance(6);
      assert.deepEqual(view(await store.history('a', 'c', brief.id, 10)), { found: true, messages: [next], more: false });
    });

    test('apps - inboxes, histories and keys of two apps never mix', async () => {
      const { store, clock } = await fresh();
      const a = msg(clock, 'a');
      const b = msg(clock, 'b');
      await store.write({ app: 'a', message: a, users: ['u'], channels: [] });
      await store.write({ app: 'b', message: b, users: ['u'] });
      assert.deepEqual((await store.inbox('a', 'u', undefined, 10)).messages, [a]);
      assert.deepEqual((await store.inbox('b', 'u', undefined, 10)).messages, [b]);
      await store.ack('a', 'u', { all: true });
      assert.equal(await store.unread('b', 'u'), 1);
      const h = msg(clock);
      await store.write({ app: 'a', message: h, channels: ['c'] });
      await store.write({ app: 'a', message: msg(clock), channels: ['c'] });
      assert.equal((await store.history('b', 'c', h.id, 10)).found, false);
    });

    test('sweep - removes expired messages, aged history and old keys', async () => {
      const { store, clock } = await fresh({ historyMaxAgeSeconds: 60, idempotencySeconds: 60 });
      await store.write({ app: 'a', message: msg(clock, 'x', { expires: clock.now + 1000 }), users: ['u'] });
      const kept = msg(clock);
      await store.write({ app: 'a', message: kept, users: ['u'] });
      await store.write({ app: 'a', message: msg(clock), channels: ['c'] });
      await store.write({ app: 'a', message: msg(clock), idempotencyKey: 'k' });
      clock.advance(61);
      // Engines that expire data by themselves (Redis) may report 0 removed rows.
      assert.ok((await store.sweep()) >= 0);
      await store.sweep();
      assert.deepEqual((await store.inbox('a', 'u', undefined, 10)).messages, [kept]);
      assert.equal(await store.unread('a', 'u'), 1);
      assert.equal((await store.write({ app: 'a', message: msg(clock), idempotencyKey: 'k' })).duplicate, false);
    });

    test('concurrency - writes issued together all land, each with its own result', async () => {
      const { store, clock } = await fresh();
      const ms = Array.from({ length: 200 }, (_, i) => msg(clock, { i }));
      const results = await Promise.all(ms.map((m, i) => store.write({ app: 'a', message: m, users: [`u${i % 10}`] })));
      assert.ok(results.every((r, i) => r.id === ms[i]!.id && !r.duplicate));
      let total = 0;
      for (let u = 0; u < 10; u++) total += await store.unread('a', `u${u}`);
      assert.equal(total, 200);
    });

    if (factory.reopen !== undefined) {
      const reopen = factory.reopen.bind(factory);
      test('durability - what was written and leased is there after reopening', async () => {
        const { store, clock } = await fresh();
        const m = msg(clock);
        await store.write({ app: 'a', message: m, users: ['u'], channels: [] });
        const h0 = msg(clock);
        const h1 = msg(clock);
        await store.write({ app: 'a', message: h0, channels: ['c'] });
        await store.write({ app: 'a', message: h1, channels: ['c'] });
        await store.write({ app: 'a', message: msg(clock), idempotencyKey: 'kk' });
        const lease = await store.leaseIds(1000, 0n);
        await store.close();
        const again = await reopen({ limits: CONTRACT_LIMITS, clock: clock.fn });
        opened.push(again);
        assert.deepEqual((await again.inbox('a', 'u', undefined, 10)).messages, [m]);
        assert.deepEqual((await again.history('a', 'c', h0.id, 10)).messages, [h1]);
        assert.equal((await again.write({ app: 'a', message: msg(clock), idempotencyKey: 'kk' })).duplicate, true);
        assert.ok((await again.leaseIds(10, 0n)) >= lease + 1000n);
      });
    }
  });
}
