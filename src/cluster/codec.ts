/**
 * How messages and signals travel between nodes: a JSON header line, then
 * the message's `data` JSON text as it is, so `data` is never parsed and
 * re-serialised on the way. (JSON text never holds a raw newline, so the
 * first newline ends the header.)
 */
import type { BusMessage, Envelope, Target } from '../core/message.js';

interface MessageHead {
  readonly k: 'm';
  readonly a: string;
  readonly i: string;
  readonly t: Target;
  readonly e?: string;
  readonly du?: 1;
  readonly u?: Record<string, number>;
  /** History places, by channel. */
  readonly p?: Record<string, number>;
}

type SignalHead = { readonly k: 'u'; readonly a: string; readonly s: string; readonly c: number } | { readonly k: 'd'; readonly a: string; readonly s: string };

/**
 * Encode for the bus; `target` replaces the envelope's own (a message split
 * per channel or per node), and a split per channel keeps only that
 * channel's history place.
 */
export function encodeBus(m: BusMessage, target?: Target): string {
  if ('kind' in m) {
    const head: SignalHead = m.kind === 'unread' ? { k: 'u', a: m.app, s: m.user, c: m.count } : { k: 'd', a: m.app, s: m.user };
    return JSON.stringify(head) + '\n';
  }
  const t = target ?? m.target;
  let p = m.positions;
  if (p !== undefined && t !== m.target && 'channels' in t) {
    const kept: Record<string, number> = {};
    for (const ch of t.channels) if (p[ch] !== undefined) kept[ch] = p[ch];
    p = kept;
  }
  const head: MessageHead = {
    k: 'm',
    a: m.app,
    i: m.id,
    t,
    ...(m.event !== undefined ? { e: m.event } : {}),
    ...(m.durable ? { du: 1 as const } : {}),
    ...(m.unread !== undefined ? { u: m.unread as Record<string, number> } : {}),
    ...(p !== undefined && Object.keys(p).length > 0 ? { p: p as Record<string, number> } : {}),
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
      if (head.p !== undefined) env.positions = head.p;
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
