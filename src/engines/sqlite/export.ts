/**
 * Reading an embedded store in order, for `silk migrate`: inbox rows by
 * (app, user, id), history rows in publish order, idempotency keys, and the
 * id counter, each in batches after a cursor so a migration can stop and
 * resume anywhere.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database, { type Database as Db } from 'better-sqlite3';
import { SilkError } from '../../core/errors.js';
import type { StoredMessage } from '../../core/store.js';
import { SCHEMA_VERSION } from './schema.js';
import { DB_FILE } from './store.js';

export interface InboxRow {
  readonly app: string;
  readonly user: string;
  readonly message: StoredMessage;
}

export interface HistoryRow {
  readonly seq: number;
  readonly app: string;
  readonly channel: string;
  readonly message: StoredMessage;
}

export interface KeyRow {
  readonly app: string;
  readonly key: string;
  readonly id: string;
  readonly until: number;
}

interface MessageCols {
  id: string;
  event: string | null;
  data: string;
  at: number;
  expires: number | null;
}

function message(r: MessageCols): StoredMessage {
  return {
    id: r.id,
    data: r.data,
    at: r.at,
    ...(r.event !== null ? { event: r.event } : {}),
    ...(r.expires !== null ? { expires: r.expires } : {}),
  };
}

/** A read-only view of a data dir's store. */
export class SqliteExport {
  readonly file: string;
  readonly #db: Db;

  constructor(dir: string) {
    this.file = join(dir, DB_FILE);
    if (!existsSync(this.file)) throw new SilkError('store_unavailable', `no embedded store at ${this.file}`);
    this.#db = new Database(this.file, { readonly: true, fileMustExist: true });
    const v = this.#db.pragma('user_version', { simple: true }) as number;
    if (v < 1 || v > SCHEMA_VERSION) throw new SilkError('store_unavailable', `${this.file} has schema version ${v}; this silk reads 1 to ${SCHEMA_VERSION}`);
  }

  /** The first id no block has been leased from. */
  nextId(): bigint {
    const row = this.#db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'ids.next'").get();
    return row === undefined ? 0n : BigInt(row.value);
  }

  counts(): { inbox: number; history: number; keys: number } {
    const n = (sql: string): number => (this.#db.prepare<[], { n: number }>(sql).get()?.n ?? 0);
    return {
      inbox: n('SELECT COUNT(*) AS n FROM inbox'),
      history: n('SELECT COUNT(*) AS n FROM history'),
      keys: n('SELECT COUNT(*) AS n FROM idempotency'),
    };
  }

  /** Unexpired inbox messages and their bytes per (app, user), as of `now`. */
  inboxTotals(now: number): { app: string; user: string; count: number; bytes: number }[] {
    return this.#db
      .prepare<[number], { app: string; user: string; count: number; bytes: number }>(
        'SELECT app, user, COUNT(*) AS count, SUM(bytes) AS bytes FROM inbox WHERE expires IS NULL OR expires > ? GROUP BY app, user',
      )
      .all(now);
  }

  /** History messages published at `oldest` or later, per (app, channel). */
  historyTotals(oldest: number): { app: string; channel: string; count: number }[] {
    return this.#db
      .prepare<[number], { app: string; channel: string; count: number }>(
        'SELECT app, channel, COUNT(*) AS count FROM history WHERE at >= ? GROUP BY app, channel',
      )
      .all(oldest);
  }

  /** Up to `limit` inbox rows after the cursor `[app, user, id]` (all when undefined), in that order. */
  inbox(after: readonly [string, string, string] | undefined, limit: number): InboxRow[] {
    const [app, user, id] = after ?? ['', '', '-1'];
    const rows = this.#db
      .prepare<[string, string, bigint, number], MessageCols & { app: string; user: string }>(
        `SELECT i.app, i.user, CAST(m.id AS TEXT) AS id, m.event, m.data, m.at, m.expires
         FROM inbox i JOIN messages m ON m.id = i.id
         WHERE (i.app, i.user, i.id) > (?, ?, ?) ORDER BY i.app, i.user, i.id LIMIT ?`,
      )
      .all(app, user, BigInt(id), limit);
    return rows.map((r) => ({ app: r.app, user: r.user, message: message(r) }));
  }

  /** Up to `limit` history rows with seq above `after`, in publish order. */
  history(after: number, limit: number): HistoryRow[] {
    return this.#db
      .prepare<[number, number], MessageCols & { seq: number; app: string; channel: string }>(
        `SELECT h.seq, h.app, h.channel, CAST(m.id AS TEXT) AS id, m.event, m.data, m.at, m.expires
         FROM history h JOIN messages m ON m.id = h.id WHERE h.seq > ? ORDER BY h.seq LIMIT ?`,
      )
      .all(after, limit)
      .map((r) => ({ seq: r.seq, app: r.app, channel: r.channel, message: message(r) }));
  }

  /** Up to `limit` idempotency keys after `[app, key]`. */
  keys(after: readonly [string, string] | undefined, limit: number): KeyRow[] {
    const [app, key] = after ?? ['', ''];
    return this.#db
      .prepare<[string, string, number], KeyRow>(
        `SELECT app, key, CAST(id AS TEXT) AS id, until FROM idempotency WHERE (app, key) > (?, ?) ORDER BY app, key LIMIT ?`,
      )
      .all(app, key, limit);
  }

  close(): void {
    this.#db.close();
  }
}
