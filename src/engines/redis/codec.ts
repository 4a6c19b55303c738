/**
 * How messages and signals travel between nodes and how stored messages are
 * kept: a JSON header line, then the message's `data` JSON text as it is,
 * so `data` is never parsed and re-serialised on the way. (JSON text never
 * holds a raw newline, so the first newline ends the header.)
 */
import type { BusMessage, Envelope, Target } from '../../core/message.js';
import type { StoredMessage } from '../../core/store.js';

interface MessageHead {
  readonly k: 'm';
  readonly a: string;
  readonly i: string;
  readonly t: Target;
  readonly e?: string;
  readonly du?: 1;
  readonly u?: Record<string, number>;
}

type SignalHead = { readonly k: 'u'; readonly a: string; readonly s: string; readonly c: number } | { readonly k: 'd'; readonly a: string; readonly s: string };

/** Encode for the bus; `target` replaces the envelope's own (a message split per channel or per node). */
export function encodeBus(m: BusMessage, target?: Target): string {
  if ('kind' in m) {
    const head: SignalHead = m.kind === 'unread' ? { k: 'u', a: m.app, s: m.user, c: m.count } : { k: 'd', a: m.app, s: m.user };
    return JSON.stringify(head) + '\n';
  }
  const head: MessageHead = {
    k: 'm',
    a: m.app,
    i: m.id,
    t: target ?? m.target,
    ...(m.event !== undefined ? { e: m.event } : {}),
    ...(m.durable ? { du: 1 as const } : {}),
    ...(m.unread !== undefined ? { u: m.unread as Record<string, number> } : {}),
  };
  return JSON.stringify(head) + '\n' + m.data;
}

/** Decode a bus payload; undefined for anything malformed. */
export function decodeBus(payload: string): BusMessage | undefined {
  const nl = payload.indexOf('\n');
  if (nl < 0) return undefined;
  let head: MessageHead | SignalHead;
  try {
    head = JSON.parse(payload.slice(0, nl)) as MessageHead | SignalHead;
  } catch {
    return undefined;
  }
  switch (head.k) {
    case 'm': {
      const env: { -readonly [K in keyof Envelope]: Envelope[K] } = { app: head.a, id: head.i, target: head.t, data: payload.slice(nl + 1) };
      if (head.e !== undefined) env.event = head.e;
      if (head.du === 1) env.durable = true;
      if (head.u !== undefined) env.unread = head.u;
      return env;
    }
    case 'u':
      return { kind: 'unread', app: head.a, user: head.s, count: head.c };
    case 'd':
      return { kind: 'disconnect', app: head.a, user: head.s };
    default:
      return undefined;
  }
}

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
