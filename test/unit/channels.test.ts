import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { allows, isValidChannel } from '../../src/core/channels.js';
import { MAX_CHANNEL_LENGTH } from '../../src/core/limits.js';

describe('channels', () => {
  test('isValidChannel - accepts 1–200 characters of A-Z a-z 0-9 _ . : @ / = -', () => {
    for (const name of ['a', 'news', 'match:17', 'user@example.com', 'a/b/c', 'k=v', 'snake_case', 'dash-ed', 'v1.2', 'Z9', 'c'.repeat(200)]) {
      assert.equal(isValidChannel(name), true, name);
    }
    assert.equal(MAX_CHANNEL_LENGTH, 200);
  });

  test('isValidChannel - rejects empty, too long, other characters and non-strings', () => {
    const bad: unknown[] = [
      '',
      'c'.repeat(201),
      'with space',
      ' lead',
      'trail ',
      'tab\t',
      'new\nline',
      'star*',
      'q?',
      'hash#',
      'comma,sep',
      'ünïcode',
      'emoji😀',
      'semi;colon',
      null,
      undefined,
      17,
      ['news'],
      { name: 'news' },
    ];
    for (const name of bad) assert.equal(isValidChannel(name), false, JSON.stringify(name));
  });

  test('allows - an exact pattern matches only itself', () => {
    assert.equal(allows(['news'], 'news'), true);
    assert.equal(allows(['news'], 'newsroom'), false);
    assert.equal(allows(['news'], 'new'), false);
    assert.equal(allows(['news'], 'NEWS'), false);
    assert.equal(allows(['news', 'sport'], 'sport'), true);
  });

  test('allows - a trailing * matches the prefix', () => {
    assert.equal(allows(['match:*'], 'match:17'), true);
    assert.equal(allows(['match:*'], 'match:17:goals'), true);
    assert.equal(allows(['match:*'], 'match'), false);
    assert.equal(allows(['match:*'], 'matc'), false);
    assert.equal(allows(['match:*'], 'xmatch:17'), false);
    assert.equal(allows(['news', 'match:*'], 'match:3'), true);
    assert.equal(allows(['news', 'match:*'], 'sport'), false);
  });

  test('allows - * alone matches every channel', () => {
    for (const ch of ['a', 'news', 'match:17', 'c'.repeat(200)]) assert.equal(allows(['*'], ch), true, ch);
  });

  test('allows - a * that is not trailing is literal', () => {
    assert.equal(allows(['a*b'], 'axxb'), false);
    assert.equal(allows(['a*b'], 'a*b'), true);
  });

  test('allows - null or no patterns allow nothing', () => {
    for (const ch of ['a', 'news', 'match:17']) {
      assert.equal(allows(null, ch), false, ch);
      assert.equal(allows([], ch), false, ch);
    }
  });
});
