/**
 * Wire protocol v1 (docs/protocol.md): the frames a client may send, checked,
 * and the frames the server writes that are not messages.
 */
import { SilkError, type ErrorCode } from '../core/errors.js';
import { Outbound } from '../core/message.js';

export const PROTOCOL_VERSION = 1;

/** A checked client frame. */
export type ClientFrame =
  | { readonly type: 'subscribe'; readonly id: number; readonly channel: unknown }
  | { readonly type: 'unsubscribe'; readonly id: number; readonly channel: unknown }
  | { readonly type: 'ping'; readonly id: number | undefined }
  | { readonly type: 'pong' };

/** Fields each client frame type may carry. */
const FIELDS: Record<ClientFrame['type'], readonly string[]> = {
  subscribe: ['type', 'id', 'channel'],
  unsubscribe: ['type', 'id', 'channel'],
  ping: ['type', 'id'],
  pong: ['type'],
};

/** A frame that could not be read, with the request id when one was found. */
export class FrameError extends SilkError {
  readonly requestId: number | undefined;

  constructor(code: ErrorCode, message: string, requestId?: number) {
    super(code, message);
    this.requestId = requestId;
  }
}

function isRequestId(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parse one text frame.
 * @throws FrameError `invalid_json`, `invalid_request` or `unknown_frame`
 */
export function parseClientFrame(text: string): ClientFrame {
  let f: unknown;
  try {
    f = JSON.parse(text);
  } catch {
    throw new FrameError('invalid_json', 'the frame is not valid JSON');
  }
  if (typeof f !== 'object' || f === null || Array.isArray(f)) {
    throw new FrameError('invalid_request', 'a frame must be a JSON object');
  }
  const o = f as Record<string, unknown>;
  const id = isRequestId(o['id']) ? o['id'] : undefined;
  const type = o['type'];
  if (typeof type !== 'string') throw new FrameError('invalid_request', 'the frame has no string `type`', id);
  if (!Object.hasOwn(FIELDS, type)) throw new FrameError('unknown_frame', `unknown frame type ${JSON.stringify(type)}`, id);
  const allowed = FIELDS[type as ClientFrame['type']];
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new FrameError('invalid_request', `unknown field \`${k}\` in ${type}`, id);
  }
  switch (type) {
    case 'subscribe':
    case 'unsubscribe':
      if (id === undefined) throw new FrameError('invalid_request', `${type} needs a numeric \`id\``);
      return { type, id, channel: o['channel'] };
    case 'ping':
      if (o['id'] !== undefined && id === undefined) throw new FrameError('invalid_request', '`id` must be a number');
      return { type, id };
    default:
      return { type: 'pong' };
  }
}

/** `welcome`, the first frame on every connection. */
export function welcomeFrame(connection: string, user: string, heartbeatSeconds: number): Outbound {
  return new Outbound(
    JSON.stringify({ type: 'welcome', version: PROTOCOL_VERSION, connection, user, heartbeat: heartbeatSeconds }),
  );
}

/** `reply` to request `id`, with optional extra fields. */
export function replyFrame(id: number): Outbound {
  return new Outbound('{"type":"reply","id":' + id + '}');
}

/** `error`, for request `id` when known. */
export function errorFrame(code: ErrorCode, message: string, id?: number): Outbound {
  return new Outbound(JSON.stringify(id === undefined ? { type: 'error', code, message } : { type: 'error', id, code, message }));
}

/** The server's heartbeat ping, shared by every connection. */
export const PING = new Outbound('{"type":"ping"}');

/** Answer to a client's `ping` without an id. */
export const PONG = new Outbound('{"type":"pong"}');
