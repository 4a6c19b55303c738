/**
 * How stored messages are kept in Redis: their byte count and a JSON
 * header line, then the message's `data` JSON text as it is, so `data` is
 * never parsed and re-serialised. (How messages travel between nodes is
 * src/cluster/codec.ts.)
 */
import type { StoredMessage } from '../../core/store.js';

/** A stored message as kept in Redis: `bytes \n {"a":at,…} \n data`. The Lua scripts read `bytes` and `at`. */
export function encodeStored(m: StoredMessage, bytes: number): string {
  let head = '{"a":' + m.at;
  if (m.expires !== undefined) head += ',"x":' + m.expires;
  if (m.event !== undefined) head += ',"e":' + JSON.stringify(m.event);
  return bytes + '\n' + head + '}\n' + m.data;
}

export function decodeStored(id: string, v: string): StoredMessage {
  const a = v.indexOf('\n');
  const b = v.indexOf('\n', a + 1);
  const head = JSON.parse(v.slice(a + 1, b)) as { a: number; x?: number; e?: string };
  const m: { -readonly [K in keyof StoredMessage]: StoredMessage[K] } = { id, data: v.slice(b + 1), at: head.a };
  if (head.e !== undefined) m.event = head.e;
  if (head.x !== undefined) m.expires = head.x;
  return m;
}
