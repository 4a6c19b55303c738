import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BlockIds, type IdLeaser } from '../../src/core/ids.js';
import { CONTRACT_LIMITS } from '../contract/store.js';
import { MemoryStore } from '../../src/engines/memory/store.js';

test('ids - strictly increasing across many blocks, starting at the clock in microseconds', async () => {
  const store = new MemoryStore({ limits: CONTRACT_LIMITS });
  const now = Date.now();
  const ids = new BlockIds(store, { blockSize: 16 });
  await ids.ensure(1);
  let last = 0n;
  for (let i = 0; i < 1000; i++) {
    if (i % 5 === 0) await ids.ensure(8);
    const id = ids.next();
    assert.ok(id > last, `${id} > ${last}`);
    last = id;
  }
  assert.ok(last >= BigInt(now) * 1000n);
});

test('ids - ensure(n) waits for a block large enough for a batch', async () => {
  const store = new MemoryStore({ limits: CONTRACT_LIMITS });
  const ids = new BlockIds(store, { blockSize: 10 });
  await ids.ensure(500);
  const got = Array.from({ length: 500 }, () => ids.next());
  assert.equal(new Set(got).size, 500);
});

test('ids - a block older than maxBlockAgeMs is replaced by a fresh one', async () => {
  let now = 1_000_000;
  const store = new MemoryStore({ limits: CONTRACT_LIMITS });
  const ids = new BlockIds(store, { blockSize: 1_000_000, maxBlockAgeMs: 1000, clock: () => now });
  await ids.ensure(1);
  const a = ids.next();
  now += 600; // past half the age: the next block is fetched ahead
  ids.next();
  await ids.ensure(1);
  now += 600;
  const b = ids.next();
  assert.ok(b >= BigInt(now - 600) * 1000n, 'the new block starts at the later clock');
  assert.ok(b > a);
});

/**
 * A leaser that fails on purpose: the only way to make the store refuse a
 * lease on cue.
 */
class FailingLeaser implements IdLeaser {
  fail = false;
  #next = 0n;
  async leaseIds(size: number, floor: bigint): Promise<bigint> {
    if (this.fail) throw new Error('store down');
    const start = this.#next > floor ? this.#next : floor;
    this.#next = start + BigInt(size);
    return start;
  }
}

test('ids - with the store down, ids run out into store_unavailable and come back with it', async () => {
  const leaser = new FailingLeaser();
  const ids = new BlockIds(leaser, { blockSize: 4 });
  await ids.ensure(1);
  leaser.fail = true;
  let handed = 0;
  assert.throws(
    () => {
      for (;;) {
        ids.next();
        handed++;
      }
    },
    (err: { code?: string }) => err.code === 'store_unavailable',
  );
  assert.ok(handed >= 4 && handed <= 8, `the ids in hand were used first (${handed})`);
  await assert.rejects(ids.ensure(1), (err: { code?: string }) => err.code === 'store_unavailable');
  leaser.fail = false;
  await ids.ensure(1);
  assert.equal(typeof ids.next(), 'bigint');
});

test('ids - a wall clock that jumps back an hour (and forward again) never makes an id go back', async () => {
  let now = Date.now();
  const store = new MemoryStore({ limits: CONTRACT_LIMITS });
  const ids = new BlockIds(store, { blockSize: 100, maxBlockAgeMs: 1000, clock: () => now });
  let last = 0n;
  const take = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      await ids.ensure(1);
      const id = ids.next();
      assert.ok(id > last, `${id} after ${last}`);
      last = id;
    }
  };
  await take(250);
  now -= 3_600_000; // NTP steps the clock back an hour
  await take(250);
  now += 5000; // time goes on, still behind the ids handed out
  await take(250);
  now += 7_200_000; // and past them again: ids follow the clock once more
  await take(10);
  assert.ok(last >= BigInt(now) * 1000n, 'back on the clock');
});
