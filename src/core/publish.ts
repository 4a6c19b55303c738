/**
 * Validating a publish request: the shape of the server API's
 * `POST /v1/apps/{app}/messages` body, independent of HTTP.
 */
import { isValidChannel } from './channels.js';
import { SilkError } from './errors.js';
import { MAX_EVENT_LENGTH, MAX_IDEMPOTENCY_KEY_LENGTH } from './limits.js';
import type { Target } from './message.js';
import { isValidUser } from './users.js';

/** A checked publish request; `data` is serialised JSON. */
export interface PublishRequest {
  readonly target: Target;
  readonly data: string;
  readonly event?: string;
  /** Stored until acknowledged (users) or kept in channel history (channels). */
  readonly durable: boolean;
  /** Seconds a durable message is kept at most. */
  readonly ttl?: number;
  readonly idempotencyKey?: string;
}

export interface PublishLimits {
  readonly maxMessageBytes: number;
  readonly maxRecipients: number;
  readonly maxTtlSeconds: number;
}

const BODY_KEYS = new Set(['to', 'data', 'event', 'durable', 'ttl', 'idempotencyKey']);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function names(
  kind: 'users' | 'channels',
  v: unknown,
  valid: (s: unknown) => boolean,
  max: number,
): string[] {
  if (!Array.isArray(v) || v.length === 0) {
    throw new SilkError('invalid_target', `to.${kind} must be a non-empty array of strings`);
  }
  if (v.length > max) {
    throw new SilkError('invalid_target', `to.${kind} names ${v.length} recipients; the limit is ${max}`);
  }
  for (const s of v) {
    if (!valid(s)) {
      throw new SilkError(
        kind === 'channels' ? 'invalid_channel' : 'invalid_target',
        `to.${kind} has an invalid name: ${JSON.stringify(s)}`,
      );
    }
  }
  // One recipient (most unicast) needs no de-duplication.
  return v.length === 1 ? [v[0] as string] : [...new Set(v as string[])];
}

function target(to: unknown, max: number): Target {
  if (!isObject(to)) throw new SilkError('invalid_target', '`to` must be an object: {users}, {channels} or {all: true}');
  const keys = Object.keys(to);
  if (keys.length !== 1) {
    throw new SilkError('invalid_target', '`to` must have exactly one of `users`, `channels`, `all`');
  }
  switch (keys[0]) {
    case 'users':
      return { users: names('users', to['users'], isValidUser, max) };
    case 'channels':
      return { channels: names('channels', to['channels'], isValidChannel, max) };
    case 'all':
      if (to['all'] !== true) throw new SilkError('invalid_target', '`to.all` must be true');
      return { all: true };
    default:
      throw new SilkError('invalid_target', `\`to.${keys[0]}\` is not a target: use users, channels or all`);
  }
}

/**
 * Check a parsed publish body.
 * @throws SilkError `invalid_request`, `invalid_target`, `invalid_channel` or `payload_too_large`
 */
export function validatePublish(body: unknown, limits: PublishLimits): PublishRequest {
  if (!isObject(body)) throw new SilkError('invalid_request', 'the body must be a JSON object');
  for (const k of Object.keys(body)) {
    if (!BODY_KEYS.has(k)) throw new SilkError('invalid_request', `unknown field \`${k}\``);
  }
  if (body['to'] === undefined) throw new SilkError('invalid_target', '`to` is required');
  const t = target(body['to'], limits.maxRecipients);
  if (!('data' in body)) throw new SilkError('invalid_request', '`data` is required (any JSON value)');
  const data = JSON.stringify(body['data']);
  // A UTF-16 code unit is at most 3 bytes of UTF-8: count the bytes only when that bound is over the limit.
  if (data.length * 3 > limits.maxMessageBytes && Buffer.byteLength(data) > limits.maxMessageBytes) {
    throw new SilkError('payload_too_large', `\`data\` is over limits.maxMessageBytes (${limits.maxMessageBytes} bytes)`);
  }
  const req: { -readonly [K in keyof PublishRequest]: PublishRequest[K] } = { target: t, data, durable: false };
  const event = body['event'];
  if (event !== undefined) {
    if (typeof event !== 'string' || event.length === 0 || event.length > MAX_EVENT_LENGTH) {
      throw new SilkError('invalid_request', `\`event\` must be a string of 1–${MAX_EVENT_LENGTH} characters`);
    }
    req.event = event;
  }
  const durable = body['durable'];
  if (durable !== undefined) {
    if (typeof durable !== 'boolean') throw new SilkError('invalid_request', '`durable` must be true or false');
    req.durable = durable;
  }
  if (req.durable && 'all' in t) {
    throw new SilkError('invalid_target', 'durable messages go to users or channels, not to all');
  }
  const ttl = body['ttl'];
  if (ttl !== undefined) {
    if (!req.durable) throw new SilkError('invalid_request', '`ttl` applies to durable messages only');
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > limits.maxTtlSeconds) {
      throw new SilkError('invalid_request', `\`ttl\` must be an integer number of seconds from 1 to ${limits.maxTtlSeconds}`);
    }
    req.ttl = ttl;
  }
  const key = body['idempotencyKey'];
  if (key !== undefined) {
    if (
      typeof key !== 'string' ||
      key.length === 0 ||
      key.length > MAX_IDEMPOTENCY_KEY_LENGTH ||
      // eslint-disable-next-line no-control-regex
      /[\u0000-\u001f\u007f]/.test(key)
    ) {
      throw new SilkError(
        'invalid_request',
        `\`idempotencyKey\` must be a string of 1–${MAX_IDEMPOTENCY_KEY_LENGTH} characters without control characters`,
      );
    }
    req.idempotencyKey = key;
  }
  return req;
}
