/**
 * Channel names and the permission patterns of a connection token.
 */
import { MAX_CHANNEL_LENGTH } from './limits.js';

const CHANNEL = /^[A-Za-z0-9_.:@/=-]+$/;

/** Whether `name` is a valid channel name: 1–200 of `A-Z a-z 0-9 _ . : @ / = -`. */
export function isValidChannel(name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && name.length <= MAX_CHANNEL_LENGTH && CHANNEL.test(name);
}

/**
 * Whether a token's `channels` claim allows `channel`.
 *
 * A pattern matches itself exactly; a trailing `*` matches any name with that
 * prefix, so `"*"` allows every channel and `"match:*"` allows `match:17`.
 * No patterns allow nothing.
 *
 * @example allows(['news', 'match:*'], 'match:17') // true
 */
export function allows(patterns: readonly string[] | null, channel: string): boolean {
  if (patterns === null) return false;
  for (const p of patterns) {
    if (p.endsWith('*') ? channel.startsWith(p.slice(0, -1)) : p === channel) return true;
  }
  return false;
}
