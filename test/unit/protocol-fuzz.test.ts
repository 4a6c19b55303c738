/**
 * Property tests of protocol v1's frame parser: whatever the text, it
 * returns a checked frame of a known type or throws a FrameError with a
 * documented code, and never anything else.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FrameError, isPlainPong, parseClientFrame } from '../../src/protocol/v1/parse.js';
import { frameText } from '../fuzz.js';

const CODES = new Set(['invalid_json', 'invalid_request', 'unknown_frame']);

function outcome(text: string): string {
  try {
    const f = parseClientFrame(text);
    assert.ok(['subscribe', 'unsubscribe', 'ack', 'inbox', 'ping', 'pong'].includes(f.type), `a frame of type ${f.type}`);
    return f.type;
  } catch (err) {
    assert.ok(err instanceof FrameError, `threw ${String(err)} for ${JSON.stringify(text).slice(0, 120)}`);
    assert.ok(CODES.has(err.code), `code ${err.code}`);
    if (err.requestId !== undefined) assert.ok(Number.isSafeInteger(err.requestId) && err.requestId >= 0);
    return err.code;
  }
}

test('parse - any text is a checked frame or a FrameError with a documented code', () => {
  const seen = new Map<string, number>();
  fc.assert(
    fc.property(frameText, (text) => {
      const o = outcome(text);
      seen.set(o, (seen.get(o) ?? 0) + 1);
    }),
    { numRuns: 20_000 },
  );
  // The generator reaches every branch: valid frames and each kind of refusal.
  for (const k of ['invalid_json', 'invalid_request', 'unknown_frame']) assert.ok((seen.get(k) ?? 0) > 0, `no ${k} in ${JSON.stringify([...seen])}`);
  assert.ok([...seen.keys()].some((k) => !CODES.has(k)), 'some frames were valid');
});

test('parse - a checked frame carries only checked values', () => {
  fc.assert(
    fc.property(frameText, (text) => {
      let f;
      try {
        f = parseClientFrame(text);
      } catch {
        return;
      }
      if (f.type === 'subscribe' || f.type === 'unsubscribe' || f.type === 'ack' || f.type === 'inbox') assert.ok(Number.isSafeInteger(f.id) && f.id >= 0);
      if (f.type === 'subscribe' && f.since !== undefined) assert.match(f.since, /^(0|[1-9][0-9]{0,18})$/);
      if (f.type === 'inbox' && f.limit !== undefined) assert.ok(Number.isInteger(f.limit) && f.limit >= 1 && f.limit <= 1000);
      if (f.type === 'ack' && 'ids' in f.which) assert.ok(f.which.ids.length >= 1 && f.which.ids.length <= 1000);
    }),
    { numRuns: 20_000 },
  );
});

test('isPlainPong - true for the exact bytes only, never throws', () => {
  assert.equal(isPlainPong(Buffer.from('{"type":"pong"}')), true);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (b) => {
      const buf = Buffer.from(b);
      assert.equal(isPlainPong(buf), buf.toString('latin1') === '{"type":"pong"}');
    }),
    { numRuns: 5_000 },
  );
});
