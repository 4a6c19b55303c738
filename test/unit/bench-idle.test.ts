import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settledAfter } from '../../bench/idle/scenario.js';

test('settledAfter: the first second from which RSS stays within 3% of its last reading', () => {
  // Flat at the storm's level, V8's memory reducer gives memory back at second 4, then a small creep.
  assert.equal(settledAfter([195, 195, 195, 162, 140, 141, 143, 144, 144]), 5);
  // A reading back out of the band after it first entered it does not count as settled.
  assert.equal(settledAfter([150, 144, 160, 144, 144]), 4);
  assert.equal(settledAfter([130, 130, 130]), 1);
  assert.equal(settledAfter([]), undefined);
  // A missing reading (NaN) is skipped; a missing last reading leaves nothing to settle on.
  assert.equal(settledAfter([195, 140, NaN, 141]), 2);
  assert.equal(settledAfter([195, 140, NaN]), undefined);
});
