/**
 * Protocol v1's server frames (docs/protocol.md): the JSON text of every
 * delivery, the frames that are not messages, and the encoding of v1 in a
 * framing.
 */
import { newSlot, ProtocolFrame, type AnyDelivery, type Delivery, type Encoding } from '../../core/delivery.js';
import type { ErrorCode } from '../../core/errors.js';
import type { Framing } from '../../session/transport.js';

export const PROTOCOL_VERSION = 1;

/** The slot of a delivery's v1 text, shared by every framing of v1. */
const TEXT = newSlot();

function json(any: Delivery): string {
  const d = any as AnyDelivery;
  switch (d.kind) {
    case 'frame':
      return d.text;
    case 'unread':
      return '{"type":"unread","count":' + d.count + '}';
    case 'message': {
      let s = '{"type":"message","id":"' + d.id + '"';
      if (d.channel !== undefined) s += ',"channel":' + JSON.stringify(d.channel);
      if (d.event !== undefined) s += ',"event":' + JSON.stringify(d.event);
      if (d.durable) s += ',"durable":true';
      return s + ',"data":' + d.data + '}';
    }
  }
}

/** The v1 JSON text of a delivery, made once per delivery. */
export function text(d: Delivery): string {
  return d.kind === 'frame' ? (d as ProtocolFrame).text : d.memo(TEXT, json);
}

const encodings = new Map<string, Encoding>();

/** Protocol v1 in `framing`: one encoding (one cache slot) per framing, shared by all its connections. */
export function encodingFor(framing: Framing): Encoding {
  let e = encodings.get(framing.name);
  if (e === undefined) {
    e = { slot: newSlot(), encode: (d) => framing.frame(text(d), d) };
    encodings.set(framing.name, e);
  }
  return e;
}

/** What `welcome` says of the inbox: absent when the store could not be read. */
export interface InboxSummary {
  /** Unread messages. */
  readonly unread: number;
  /** Inbox messages that follow `welcome` at once (the oldest). */
  readonly page: number;
  /** Whether more remain after them. */
  readonly more: boolean;
}

/** `welcome`, the first frame on every connection. */
export function welcomeFrame(connection: string, user: string, heartbeatSeconds: number, inbox: InboxSummary | undefined): ProtocolFrame {
  return new ProtocolFrame(
    JSON.stringify({ type: 'welcome', version: PROTOCOL_VERSION, connection, user, heartbeat: heartbeatSeconds, ...inbox }),
  );
}

/** `reply` to request `id`, with the fields of `extra` after `type` and `id`. */
export function replyFrame(id: number, extra?: Record<string, unknown>): ProtocolFrame {
  if (extra === undefined) return new ProtocolFrame('{"type":"reply","id":' + id + '}');
  return new ProtocolFrame(JSON.stringify({ type: 'reply', id, ...extra }));
}

/** `error`, for request `id` when known. */
export function errorFrame(code: ErrorCode, message: string, id?: number): ProtocolFrame {
  return new ProtocolFrame(JSON.stringify(id === undefined ? { type: 'error', code, message } : { type: 'error', id, code, message }));
}

/** The server's heartbeat ping, shared by every connection. */
export const PING = new ProtocolFrame('{"type":"ping"}');

/** Sent by a draining node before its 1001 close: come back after `afterMs`. */
export function reconnectFrame(afterMs: number): ProtocolFrame {
  return new ProtocolFrame(JSON.stringify({ type: 'reconnect', after: afterMs }));
}

/** Answer to a client's `ping` without an id. */
export const PONG = new ProtocolFrame('{"type":"pong"}');
