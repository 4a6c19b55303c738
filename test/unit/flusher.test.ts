import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DELAY_SAMPLE_EVERY, Flusher, type Flushable } from '../../src/session/flusher.js';

/** A flushable that counts its flushes. */
function item(): Flushable & { flushed: number } {
  return {
    dirty: false,
    flushed: 0,
    flush() {
      this.dirty = false;
      this.flushed++;
    },
  };
}

/** Hold the event loop for `ms`. */
function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/** Resolves after the flusher's setImmediate slices have run (it re-arms with setImmediate while work is left). */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

test('one mark in 16 is timed to its write, and every marked flushable is flushed once', async () => {
  const delays: number[] = [];
  const f = new Flusher({ delay: (ms) => delays.push(ms) });
  const items = Array.from({ length: 3 * DELAY_SAMPLE_EVERY + 1 }, item);
  for (const it of items) f.mark(it);
  await settle();
  assert.ok(items.every((it) => it.flushed === 1 && !it.dirty), 'each flushed once');
  assert.equal(delays.length, 4, 'marks 0, 16, 32 and 48 are sampled');
  assert.ok(delays.every((d) => d >= 0 && d < 1000), `plausible waits: ${delays.join(', ')}`);
});

test('the wait reported is the time the mark sat before its write', async () => {
  const delays: number[] = [];
  const f = new Flusher({ delay: (ms) => delays.push(ms) });
  f.mark(item());
  // The flush runs on the next turn of the loop: hold the loop, as a long request would.
  block(30);
  await settle();
  assert.equal(delays.length, 1);
  assert.ok(delays[0]! >= 29, `waited about 30 ms, reported ${delays[0]}`);
  assert.ok(delays[0]! < 1000, `reported ${delays[0]}`);
});

test('marks flushed in later slices are timed when their slice writes them', async () => {
  const delays: number[] = [];
  let slowFlushes = 0;
  // Each flush takes 1 ms, so a slice (4 ms, the clock read every 32 flushes) stops after 32 of them.
  const slow = (): Flushable => ({
    dirty: false,
    flush() {
      this.dirty = false;
      slowFlushes++;
      block(1);
    },
  });
  const f = new Flusher({ delay: (ms) => delays.push(ms) });
  for (let i = 0; i < 64; i++) f.mark(slow());
  await settle();
  assert.equal(slowFlushes, 64);
  assert.equal(delays.length, 4);
  // Marks 32 and 48 waited for the whole first slice (32 flushes of 1 ms).
  assert.ok(delays[2]! >= 31 && delays[3]! >= 31, `later marks waited for the first slice: ${delays.join(', ')}`);
  assert.ok(delays[3]! >= delays[0]!, 'a later mark never reports less than an earlier one here');
});

test('without a delay callback nothing is stamped', async () => {
  const f = new Flusher();
  const items = Array.from({ length: 40 }, item);
  for (const it of items) f.mark(it);
  await settle();
  assert.ok(items.every((it) => it.flushed === 1));
});
