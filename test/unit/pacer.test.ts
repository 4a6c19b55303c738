import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Pacer } from '../../src/gateway/pacer.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

test('pacer - at most perTurn setups run in one turn; the rest run in later turns, in arrival order', async () => {
  const p = new Pacer(2);
  const ran: number[] = [];
  for (let i = 0; i < 5; i++) p.pace(() => ran.push(i));
  assert.deepEqual(ran, [0, 1], 'two now');
  assert.equal(p.waiting, 3);
  await turn();
  assert.deepEqual(ran, [0, 1, 2, 3], 'two in the next turn');
  // A setup arriving now waits behind the one still in line, though this turn has room.
  p.pace(() => ran.push(5));
  assert.deepEqual(ran, [0, 1, 2, 3]);
  await turn();
  assert.deepEqual(ran, [0, 1, 2, 3, 4, 5]);
  assert.equal(p.waiting, 0);
});

test('pacer - a quiet turn gives the whole budget back', async () => {
  const p = new Pacer(1);
  const ran: string[] = [];
  p.pace(() => ran.push('a'));
  p.pace(() => ran.push('b'));
  await turn();
  await turn();
  p.pace(() => ran.push('c'));
  assert.deepEqual(ran, ['a', 'b', 'c'], 'c runs at once');
});
