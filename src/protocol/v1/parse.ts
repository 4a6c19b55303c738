/**
 * Protocol v1 (docs/protocol.md): the frames a client may send, checked.
 */
import { SilkError, type ErrorCode } from '../../core/errors.js';
import { MAX_ACK_IDS, MAX_INBOX_PAGE } from '../../core/limits.js';
import { isMessageId, type InboxSelector } from '../../core/store.js';

/** A checked client frame. */
export type ClientFrame =
  | { readonly type: 'subscribe'; readonly id: number; readonly channel: unknown; readonly since: string | undefined }
  | { readonly type: 'unsubscribe'; readonly id: number; readonly channel: unknown }
  | { readonly type: 'ack'; readonly id: number; readonly which: InboxSelector }
  | { readonly type: 'inbox'; readonly id: number; readonly after: string | undefined; readonly limit: number | undefined }
  | { readonly type: 'ping'; readonly id: number | undefined }
  | { readonly type: 'pong' };

/** Fields each client frame type may carry. */
const FIELDS: Record<ClientFrame['type'], readonly string[]> = {
  subscribe: ['type', 'id', 'channel', 'since'],
  unsubscribe: ['type', 'id', 'channel'],
  ack: ['type', 'id', 'ids', 'upTo'],
  inbox: ['type', 'id', 'after', 'limit'],
  ping: ['type', 'id'],
  pong: ['type'],
};

function messageId(v: unknown, field: string, id: number): string {
  if (!isMessageId(v)) throw new FrameError('invalid_request', `\`${field}\` must be a message id (a decimal string)`, id);
  return v;
}

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

const PONG_BYTES = Buffer.from('{"type":"pong"}');

/**
 * Whether a client frame is exactly `{"type":"pong"}`, the answer to every
 * heartbeat ping (other spellings of it go through {@link parseClientFrame}).
 * Checked on the bytes: no string, object or key list is made for the most
 * common client frame. On idle connections heartbeats are all the traffic,
 * and what they allocate decides how soon V8's memory reducer gives back the
 * memory a connection storm grew.
 */
export function isPlainPong(data: Buffer): boolean {
  return data.length === PONG_BYTES.length && data.equals(PONG_BYTES);
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
  if (type !== 'ping' && type !== 'pong' && id === undefined) {
    throw new FrameError('invalid_request', `${type} needs a numeric \`id\``);
  }
  switch (type) {
    case 'subscribe':
      return { type, id: id!, channel: o['channel'], since: o['since'] === undefined ? undefined : messageId(o['since'], 'since', id!) };
    case 'unsubscribe':
      return { type, id: id!, channel: o['channel'] };
    case 'ack': {
      const ids = o['ids'];
      const upTo = o['upTo'];
      if ((ids === undefined) === (upTo === undefined)) {
        throw new FrameError('invalid_request', 'ack needs exactly one of `ids` and `upTo`', id);
      }
      if (upTo !== undefined) return { type, id: id!, which: { upTo: messageId(upTo, 'upTo', id!) } };
      if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_ACK_IDS) {
        throw new FrameError('invalid_request', `\`ids\` must be an array of 1–${MAX_ACK_IDS} message ids`, id);
      }
      return { type, id: id!, which: { ids: ids.map((v) => messageId(v, 'ids', id!)) } };
    }
    case 'inbox': {
      const limit = o['limit'];
      if (limit !== undefined && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_INBOX_PAGE)) {
        throw new FrameError('invalid_request', `\`limit\` must be an integer from 1 to ${MAX_INBOX_PAGE}`, id);
      }
      return {
        type,
        id: id!,
        after: o['after'] === undefined ? undefined : messageId(o['after'], 'after', id!),
        limit: limit as number | undefined,
      };
    }
    case 'ping':
      if (o['id'] !== undefined && id === undefined) throw new FrameError('invalid_request', '`id` must be a number');
      return { type, id };
    default:
      return { type: 'pong' };
  }
}
