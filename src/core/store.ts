/**
 * The store port: where durable messages live until their recipients
 * confirm them (per-user inboxes), channel histories for recovery,
 * idempotency keys, and the id blocks nodes lease.
 *
 * Implementations: `engines/memory` (ephemeral mode), `engines/sqlite`
 * (the embedded default), `engines/redis` (cluster). One contract suite
 * (`test/contract/store.ts`) runs against each of them. No library type
 * appears here.
 */
/** A message as the store keeps it. */
export interface StoredMessage {
  /** Decimal int64. */
  readonly id: string;
  readonly event?: string;
  /** The message's `data`, as JSON text. */
  readonly data: string;
  /** Publish time, ms since the epoch. */
  readonly at: number;
  /** Expiry, ms since the epoch; absent: kept until acknowledged (inbox) or trimmed (history). */
  readonly expires?: number;
}

/** One publish that needs the store: a durable message, or any message with an idempotency key. */
export interface WriteRequest {
  readonly app: string;
  readonly message: StoredMessage;
  /** Inboxes the message goes into. */
  readonly users?: readonly string[];
  /** Channel histories the message is appended to. */
  readonly channels?: readonly string[];
  readonly idempotencyKey?: string;
}

export interface WriteResult {
  /** The id to answer with: the request's own, or, for a repeated idempotency key, the first request's. */
  readonly id: string;
  /** True when the idempotency key was seen within the window: nothing was stored. */
  readonly duplicate: boolean;
  /** Unread count of every inbox written, after the write. */
  readonly unread: ReadonlyMap<string, number>;
  /** Messages dropped from full inboxes to make room (the oldest first). */
  readonly evicted: number;
  /**
   * The message's place in each channel's history it was appended to (a
   * retried write that finds it there already gets that place): greater
   * than the place of every other message in that history. The stores that
   * nodes share (Redis, and the memory store of an in-process cluster) count
   * up by one per append, which the cluster bus relies on to deliver a
   * channel's durable messages in history order (src/cluster/bus.ts).
   */
  readonly positions: ReadonlyMap<string, number>;
}

/** Which inbox messages an acknowledgement (or a delete) removes. */
export type InboxSelector =
  | { readonly ids: readonly string[] }
  | { readonly upTo: string }
  | { readonly all: true };

export interface InboxPage {
  /** Oldest first. */
  readonly messages: readonly StoredMessage[];
  /** Unexpired messages in the inbox. */
  readonly unread: number;
  /** Whether messages remain after the last one returned. */
  readonly more: boolean;
}

export interface AckResult {
  /** Messages removed by this call. */
  readonly removed: number;
  readonly unread: number;
}

export interface HistoryPage {
  /** Whether `since` was found in the history (false: the history no longer reaches back to it). */
  readonly found: boolean;
  /** Messages after `since`, in publish order. Empty when not found. */
  readonly messages: readonly StoredMessage[];
  readonly more: boolean;
  /**
   * When found: the history place (as {@link WriteResult.positions} counts)
   * of the last message read, or of `since` when none came after it. A live
   * copy of a message at or before it was in this read.
   */
  readonly position?: number;
}

/** Bounds the store enforces. */
export interface StoreLimits {
  /** Messages one inbox keeps; beyond it the oldest are dropped. */
  readonly inboxMaxMessages: number;
  /** Bytes of `data` one inbox keeps; beyond it the oldest are dropped. */
  readonly inboxMaxBytes: number;
  /** Messages one channel's history keeps. */
  readonly historyMaxMessages: number;
  /** Seconds a message stays in a channel's history. */
  readonly historyMaxAgeSeconds: number;
  /** Seconds an idempotency key is remembered. */
  readonly idempotencySeconds: number;
}

/** What every store implementation is built from. */
export interface StoreOptions {
  readonly limits: StoreLimits;
  /** The time, ms since the epoch; tests pass their own. @default Date.now */
  readonly clock?: () => number;
}

export interface Store {
  /**
   * Lease a block of `size` ids: returns `start`, and the block is
   * `[start, start + size)`. Blocks never overlap, each starts above every
   * block leased before (by any node, across restarts), and at `floor` or
   * above. The lease is durable before the promise resolves.
   */
  leaseIds(size: number, floor: bigint): Promise<bigint>;
  /** Store a message durably; resolves once it would survive a crash of this process. */
  write(req: WriteRequest): Promise<WriteResult>;
  /** A page of `user`'s inbox, oldest first, after the message `after` (by id) when given. */
  inbox(app: string, user: string, after: string | undefined, limit: number): Promise<InboxPage>;
  /** Unexpired messages in `user`'s inbox. */
  unread(app: string, user: string): Promise<number>;
  /** Remove messages from `user`'s inbox (acknowledged or deleted). */
  ack(app: string, user: string, which: InboxSelector): Promise<AckResult>;
  /** Up to `limit` messages published to `channel` after the message `since`, in publish order. */
  history(app: string, channel: string, since: string, limit: number): Promise<HistoryPage>;
  /** Drop expired messages, aged history and old idempotency keys; returns how many rows went. */
  sweep(): Promise<number>;
  /** Finish pending writes and release resources. */
  close(): Promise<void>;
}

/** Compare two decimal id strings numerically. */
export function compareIds(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether `s` is a message id: a decimal int64 without leading zeros. */
export function isMessageId(s: unknown): s is string {
  return typeof s === 'string' && /^(0|[1-9]\d{0,18})$/.test(s) && (s.length < 19 || s <= '9223372036854775807');
}
