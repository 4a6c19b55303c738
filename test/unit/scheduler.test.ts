/**
 * The catch-up scheduler on its own: the line is served round robin, the
 * running catch-ups are bounded, and the budget comes back only on a later
 * turn of the loop.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CatchupScheduler } from '../../src/services/scheduler.js';

/** A catch-up that sends `frames` in slices as the budget allows, logging each slice. */
async function catchup(s: CatchupScheduler, name: string, frames: number, log: [string, number][]): Promise<void> {
  await s.enter();
  let left = frames;
  while (left > 0) {
    const n = s.take(left);
    if (n > 0) log.push([name, n]);
    left -= n;
    if (left > 0) await s.next();
  }
  s.leave();
}

test('round robin - with one turn at a time, each catch-up goes to the back of the line after its slice', async () => {
  const s = new CatchupScheduler({ catchupFramesPerTurn: 5, catchupConcurrency: 1 });
  const log: [string, number][] = [];
  await Promise.all(['a', 'b', 'c'].map((n) => catchup(s, n, 12, log)));
  const names = log.map(([n]) => n).join('');
  assert.match(names, /^(abc)+a?b?c?$/, names);
  for (const n of ['a', 'b', 'c']) assert.equal(log.filter(([m]) => m === n).reduce((t, [, k]) => t + k, 0), 12);
  assert.equal(s.frames, 36);
  assert.deepEqual([s.running, s.waiting], [0, 0]);
});

test('budget - no more frames per turn than catchupFramesPerTurn, a store read counting as one; the rest waits for a later turn', async () => {
  const s = new CatchupScheduler({ catchupFramesPerTurn: 10, catchupConcurrency: 100 });
  await s.enter();
  // The turn's read took one of the ten.
  assert.equal(s.take(50), 9);
  assert.equal(s.take(1), 0, 'nothing left in this turn');
  let granted = false;
  const next = s.next().then(() => (granted = true));
  await Promise.resolve();
  assert.equal(granted, false, 'the next turn does not come within this one');
  await next;
  assert.equal(s.take(50), 9);
  s.leave();
});

test('concurrency - at most catchupConcurrency catch-ups hold a turn; one leaving lets the next in', async () => {
  const s = new CatchupScheduler({ catchupFramesPerTurn: 1000, catchupConcurrency: 2 });
  const entered: number[] = [];
  const all = [0, 1, 2, 3, 4].map((i) => s.enter().then(() => entered.push(i)));
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(entered, [0, 1]);
  assert.deepEqual([s.running, s.waiting], [2, 3]);
  s.leave();
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(entered, [0, 1, 2]);
  assert.deepEqual([s.running, s.waiting], [2, 2]);
  for (let i = 0; i < 4; i++) s.leave();
  await Promise.all(all);
  assert.deepEqual(entered, [0, 1, 2, 3, 4]);
});
