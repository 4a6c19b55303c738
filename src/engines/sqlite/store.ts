/**
 * The embedded store: SQLite in WAL mode (better-sqlite3) in the data dir.
 *
 * Group commit: every operation joins a queue, and the queue runs as one
 * transaction on the next turn of the event loop, so a burst of publishes
 * costs one commit, not one per message. Should an operation throw, the
 * transaction is rolled back and the batch runs again with each operation
 * in its own savepoint, so one failing operation fails alone (savepoints on
 * every operation would cost a third of the store's time). Reads go through
 * the same queue, so they see every write queued before them.
 *
 * Durability (docs/storage.md): with `synchronous = NORMAL` (the default), a
 * committed transaction is in the WAL file before its promise resolves, so
 * it survives any crash of the process (kill -9, out of memory, a bug); an
 * operating-system crash or power loss may lose the last commits. With
 * `synchronous = FULL` the WAL is fsynced at each commit and survives those
 * too, at the cost of one fsync per group commit.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database, { type Database as Db } from 'better-sqlite3';
import type {
  AckResult,
  HistoryPage,
  InboxPage,
  InboxSelector,
  Store,
  StoredMessage,
  StoreLimits,
  StoreOptions,
  WriteRequest,
  WriteResult,
} from '../../core/store.js';
import { SilkError } from '../../core/errors.js';
import { migrate } from './schema.js';

export const DB_FILE = 'silk.db';

/** Inboxes whose totals are kept in memory at most. */
const TOTALS_CACHED = 100_000;
/**
 * SQLite's page cache, KiB (its default is 2,000). Inbox writes land on
 * random pages (one user's inbox, one user's totals); with the default the
 * pages of 10,000 inboxes keep falling out and are read back on every write.
 */
const PAGE_CACHE_KIB = 65_536;
/**
 * WAL pages after which a commit checkpoints (SQLite's default is 1,000).
 * A checkpoint copies each page once however often it was rewritten since
 * the last, so a longer WAL copies far less: durable batch publish went from
 * 30.5k to 39.2k messages/s with this and the page cache (bench/README.md).
 */
const WAL_CHECKPOINT_PAGES = 10_000;

export interface SqliteStoreOptions extends StoreOptions {
  /** Directory of the database file. */
  readonly dir: string;
  /** `normal`: survives process crashes; `full`: also OS crashes and power loss. @default "normal" */
  readonly synchronous?: 'normal' | 'full';
}

interface Op {
  readonly run: () => unknown;
  readonly resolve: (v: never) => void;
  readonly reject: (e: unknown) => void;
}

interface MessageRow {
  /** Read as text: ids are int64 and may exceed 2^53. */
  id: string;
  event: string | null;
  data: string;
  at: number;
  expires: number | null;
}

function toMessage(r: MessageRow): StoredMessage {
  const m: { -readonly [K in keyof StoredMessage]: StoredMessage[K] } = { id: r.id, data: r.data, at: r.at };
  if (r.event !== null) m.event = r.event;
  if (r.expires !== null) m.expires = r.expires;
  return m;
}

/** SQLite's "database or disk is full" as Silk's `storage_full`; any other error as it is. */
function asFull(err: unknown): unknown {
  return (err as { code?: unknown } | null)?.code === 'SQLITE_FULL' ? new SilkError('storage_full', "the store's disk is full") : err;
}

/** An inbox's running totals; `next` is a lower bound on its earliest expiry (null: none expires). */
interface Totals {
  count: number;
  bytes: number;
  next: number | null;
}

/** Rows that many statements return: a message id and its size. */
interface Removed {
  id: string;
  bytes: number;
}

export class SqliteStore implements Store {
  readonly file: string;
  readonly #db: Db;
  readonly #limits: StoreLimits;
  readonly #clock: () => number;
  #queue: Op[] = [];
  #scheduled = false;
  #closed = false;
  readonly #flush = (): void => this.#commit();
  /**
   * Inbox totals as last written, so a write to an inbox does not read them
   * back first (this process is the database's only writer). Cleared when it
   * outgrows {@link TOTALS_CACHED} and whenever a transaction rolls back.
   */
  readonly #totals = new Map<string, Totals>();
  /** Runs a batch of operations in one immediate transaction, without savepoints. */
  readonly #runAll: (ops: readonly Op[]) => unknown[];
  /** The same with a savepoint per operation: the path after one has thrown. */
  readonly #runEach: (ops: readonly Op[]) => { ok: boolean; value: unknown }[];
  readonly #s: ReturnType<SqliteStore['prepare']>;

  constructor(options: SqliteStoreOptions) {
    mkdirSync(options.dir, { recursive: true });
    this.file = join(options.dir, DB_FILE);
    this.#limits = options.limits;
    this.#clock = options.clock ?? Date.now;
    this.#db = new Database(this.file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    this.#db.pragma('busy_timeout = 5000');
    this.#db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
    this.#db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
    migrate(this.#db, this.file);
    this.#s = this.prepare();
    const all = this.#db.transaction((ops: readonly Op[]) => ops.map((op) => op.run()));
    this.#runAll = (ops) => all.immediate(ops);
    const each = this.#db.transaction((ops: readonly Op[]) =>
      ops.map((op) => {
        try {
          // A nested transaction is a savepoint: a failing operation rolls back alone.
          return { ok: true, value: this.#db.transaction(op.run)() };
        } catch (err) {
          return { ok: false, value: err };
        }
      }),
    );
    this.#runEach = (ops) => each.immediate(ops);
  }

  /** Every statement, prepared once. */
  private prepare() {
    const db = this.#db;
    return {
      metaGet: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      metaSet: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      keyGet: db.prepare<[string, string], { id: string; until: number }>('SELECT CAST(id AS TEXT) AS id, until FROM idempotency WHERE app = ? AND key = ?'),
      keySet: db.prepare('INSERT OR REPLACE INTO idempotency (app, key, id, until) VALUES (?, ?, ?, ?)'),
      messagePut: db.prepare('INSERT OR IGNORE INTO messages (id, app, event, data, at, expires) VALUES (?, ?, ?, ?, ?, ?)'),
      messageGc: db.prepare(
        'DELETE FROM messages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM inbox WHERE id = ?) AND NOT EXISTS (SELECT 1 FROM history WHERE id = ?)',
      ),
      inboxPut: db.prepare('INSERT OR IGNORE INTO inbox (app, user, id, bytes, expires) VALUES (?, ?, ?, ?, ?)'),
      inboxExpire: db.prepare<[string, string, number], Removed>('DELETE FROM inbox WHERE app = ? AND user = ? AND expires <= ? RETURNING CAST(id AS TEXT) AS id, bytes'),
      inboxOldest: db.prepare<[string, string, number], Removed>('SELECT CAST(id AS TEXT) AS id, bytes FROM inbox WHERE app = ? AND user = ? ORDER BY id LIMIT ?'),
      inboxDeleteOne: db.prepare<[string, string, bigint], Removed>('DELETE FROM inbox WHERE app = ? AND user = ? AND id = ? RETURNING CAST(id AS TEXT) AS id, bytes'),
      inboxDeleteUpTo: db.prepare<[string, string, bigint], Removed>('DELETE FROM inbox WHERE app = ? AND user = ? AND id <= ? RETURNING CAST(id AS TEXT) AS id, bytes'),
      inboxDeleteAll: db.prepare<[string, string], Removed>('DELETE FROM inbox WHERE app = ? AND user = ? RETURNING CAST(id AS TEXT) AS id, bytes'),
      inboxPage: db.prepare<[string, string, bigint, number], MessageRow>(
          `SELECT CAST(m.id AS TEXT) AS id, m.event, m.data, m.at, m.expires FROM inbox i JOIN messages m ON m.id = i.id
           WHERE i.app = ? AND i.user = ? AND i.id > ? ORDER BY i.id LIMIT ?`,
        ),
      inboxCount: db.prepare<[string, string], { count: number; bytes: number | null; next: number | null }>(
        'SELECT COUNT(*) AS count, SUM(bytes) AS bytes, MIN(expires) AS next FROM inbox WHERE app = ? AND user = ?',
      ),
      inboxNextExpiry: db.prepare<[string, string], { next: number | null }>('SELECT MIN(expires) AS next FROM inbox WHERE app = ? AND user = ?'),
      totalsGet: db.prepare<[string, string], Totals>('SELECT count, bytes, next_expiry AS next FROM inbox_totals WHERE app = ? AND user = ?'),
      totalsSet: db.prepare(
        `INSERT INTO inbox_totals (app, user, count, bytes, next_expiry) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (app, user) DO UPDATE SET count = excluded.count, bytes = excluded.bytes, next_expiry = excluded.next_expiry`,
      ),
      totalsDelete: db.prepare('DELETE FROM inbox_totals WHERE app = ? AND user = ?'),
      historyPut: db.prepare('INSERT INTO history (app, channel, id, at, expires) VALUES (?, ?, ?, ?, ?)'),
      historyCount: db.prepare<[string, string], { count: number }>('SELECT count FROM history_totals WHERE app = ? AND channel = ?'),
      historyCountSet: db.prepare(
        `INSERT INTO history_totals (app, channel, count) VALUES (?, ?, ?)
         ON CONFLICT (app, channel) DO UPDATE SET count = excluded.count`,
      ),
      historyCountAdd: db.prepare('UPDATE history_totals SET count = count - ? WHERE app = ? AND channel = ?'),
      historyTrim: db.prepare<[string, string, number], { id: string }>(
          'DELETE FROM history WHERE seq IN (SELECT seq FROM history WHERE app = ? AND channel = ? ORDER BY seq LIMIT ?) RETURNING CAST(id AS TEXT) AS id',
        ),
      historyFind: db.prepare<[string, string, bigint], { seq: number; at: number }>(
          'SELECT seq, at FROM history WHERE app = ? AND channel = ? AND id = ? ORDER BY seq DESC LIMIT 1',
        ),
      historyAfter: db.prepare<[string, string, number, number], MessageRow & { seq: number }>(
          `SELECT h.seq, CAST(m.id AS TEXT) AS id, m.event, m.data, m.at, m.expires FROM history h JOIN messages m ON m.id = h.id
           WHERE h.app = ? AND h.channel = ? AND h.seq > ? ORDER BY h.seq LIMIT ?`,
        ),
      sweepInbox: db.prepare<[number], { app: string; user: string; id: string; bytes: number }>(
          `DELETE FROM inbox WHERE (app, user, id) IN (SELECT app, user, id FROM inbox WHERE expires <= ? LIMIT 10000)
           RETURNING app, user, CAST(id AS TEXT) AS id, bytes`,
        ),
      sweepHistory: db.prepare<[number, number], { app: string; channel: string; id: string }>(
          `DELETE FROM history WHERE seq IN (
             SELECT seq FROM history WHERE at < ? UNION SELECT seq FROM history WHERE expires <= ? LIMIT 10000)
           RETURNING app, channel, CAST(id AS TEXT) AS id`,
        ),
      sweepKeys: db.prepare('DELETE FROM idempotency WHERE until <= ?'),
      historyTotalsClean: db.prepare('DELETE FROM history_totals WHERE count <= 0'),
    };
  }

  /** Queue `run` for the next group commit. */
  #enqueue<T>(run: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('the store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ run, resolve: resolve as (v: never) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(this.#flush);
      }
    });
  }

  #commit(): void {
    this.#scheduled = false;
    const ops = this.#queue;
    if (ops.length === 0) return;
    this.#queue = [];
    let results: { ok: boolean; value: unknown }[];
    try {
      results = this.#runAll(ops).map((value) => ({ ok: true, value }));
    } catch {
      // Rolled back whole: run again, each operation alone in a savepoint.
      this.#totals.clear();
      try {
        results = this.#runEach(ops);
        if (results.some((r) => !r.ok)) this.#totals.clear();
      } catch (err) {
        this.#totals.clear();
        // The commit itself failed (disk full, I/O error): nothing in the batch is stored.
        const e = asFull(err);
        for (const op of ops) op.reject(e);
        return;
      }
    }
    for (let i = 0; i < ops.length; i++) {
      const r = results[i]!;
      if (r.ok) ops[i]!.resolve(r.value as never);
      else ops[i]!.reject(asFull(r.value));
    }
  }

  async leaseIds(size: number, floor: bigint): Promise<bigint> {
    // Its own immediate transaction: the lease is committed before any id of it is used.
    return this.#db
      .transaction(() => {
        const row = this.#s.metaGet.get('ids.next');
        const next = row === undefined ? 0n : BigInt(row.value);
        const start = next > floor ? next : floor;
        this.#s.metaSet.run('ids.next', (start + BigInt(size)).toString());
        return start;
      })
      .immediate();
  }

  write(req: WriteRequest): Promise<WriteResult> {
    return this.#enqueue(() => this.#write(req));
  }

  #write(req: WriteRequest): WriteResult {
    const now = this.#clock();
    const s = this.#s;
    const m = req.message;
    const id = BigInt(m.id);
    if (req.idempotencyKey !== undefined) {
      const seen = s.keyGet.get(req.app, req.idempotencyKey);
      if (seen !== undefined && seen.until > now) {
        return { id: seen.id, duplicate: true, unread: new Map(), evicted: 0, positions: new Map() };
      }
      s.keySet.run(req.app, req.idempotencyKey, id, now + this.#limits.idempotencySeconds * 1000);
    }
    const users = req.users ?? [];
    const channels = req.channels ?? [];
    const unread = new Map<string, number>();
    let evicted = 0;
    const positions = new Map<string, number>();
    if (users.length === 0 && channels.length === 0) return { id: m.id, duplicate: false, unread, evicted, positions };
    s.messagePut.run(id, req.app, m.event ?? null, m.data, m.at, m.expires ?? null);
    const bytes = Buffer.byteLength(m.data);
    const gone: string[] = [];
    for (const user of users) {
      const t = this.#expireInbox(req.app, user, now, gone);
      let { count, bytes: used } = t;
      if (s.inboxPut.run(req.app, user, id, bytes, m.expires ?? null).changes === 1) {
        count++;
        used += bytes;
        if (m.expires !== undefined && (t.next === null || m.expires < t.next)) t.next = m.expires;
      }
      const over = count - this.#limits.inboxMaxMessages;
      if (over > 0 || used > this.#limits.inboxMaxBytes) {
        // Drop the oldest until both caps hold (docs/storage.md: the inbox keeps the newest).
        for (const old of s.inboxOldest.all(req.app, user, Math.max(over, 1) + (used > this.#limits.inboxMaxBytes ? count : 0))) {
          if (count <= this.#limits.inboxMaxMessages && used <= this.#limits.inboxMaxBytes) break;
          s.inboxDeleteOne.get(req.app, user, BigInt(old.id));
          count--;
          used -= old.bytes;
          evicted++;
          gone.push(old.id);
        }
      }
      this.#setTotals(req.app, user, { count, bytes: used, next: t.next });
      unread.set(user, count);
    }
    for (const channel of channels) {
      // The history's `seq`, the publish order of every channel together: increasing per channel too.
      positions.set(channel, Number(s.historyPut.run(req.app, channel, id, m.at, m.expires ?? null).lastInsertRowid));
      const count = (s.historyCount.get(req.app, channel)?.count ?? 0) + 1;
      const over = count - this.#limits.historyMaxMessages;
      if (over > 0) for (const r of s.historyTrim.all(req.app, channel, over)) gone.push(r.id);
      s.historyCountSet.run(req.app, channel, Math.min(count, this.#limits.historyMaxMessages));
    }
    this.#gc(gone);
    return { id: m.id, duplicate: false, unread, evicted, positions };
  }

  /** An inbox's totals, from memory or the database: a copy the caller may change. */
  #totalsOf(app: string, user: string): Totals {
    const key = app + '\u0000' + user;
    const t = this.#totals.get(key);
    if (t !== undefined) return { count: t.count, bytes: t.bytes, next: t.next };
    const row = this.#s.totalsGet.get(app, user);
    // An empty inbox read on connect is not remembered: most users have one, and each would cost memory.
    if (row === undefined) return { count: 0, bytes: 0, next: null };
    this.#cacheTotals(key, row);
    return { count: row.count, bytes: row.bytes, next: row.next };
  }

  /** Drop `user`'s expired messages (looking only when one may be due); returns the inbox totals after. */
  #expireInbox(app: string, user: string, now: number, gone: string[]): Totals {
    const s = this.#s;
    const t = this.#totalsOf(app, user);
    if (t.next === null || t.next > now) return t;
    for (const r of s.inboxExpire.all(app, user, now)) {
      t.count--;
      t.bytes -= r.bytes;
      gone.push(r.id);
    }
    t.next = s.inboxNextExpiry.get(app, user)?.next ?? null;
    this.#setTotals(app, user, t);
    return t;
  }

  #setTotals(app: string, user: string, t: Totals): void {
    if (t.count <= 0) {
      this.#s.totalsDelete.run(app, user);
      this.#cacheTotals(app + '\u0000' + user, { count: 0, bytes: 0, next: null });
    } else {
      this.#s.totalsSet.run(app, user, t.count, t.bytes, t.next);
      this.#cacheTotals(app + '\u0000' + user, { count: t.count, bytes: t.bytes, next: t.next });
    }
  }

  #cacheTotals(key: string, t: Totals): void {
    if (this.#totals.size >= TOTALS_CACHED && !this.#totals.has(key)) this.#totals.clear();
    this.#totals.set(key, t);
  }

  #gc(ids: readonly string[]): void {
    for (const id of ids) {
      const n = BigInt(id);
      this.#s.messageGc.run(n, n, n);
    }
  }

  inbox(app: string, user: string, after: string | undefined, limit: number): Promise<InboxPage> {
    const page = (t: Totals): InboxPage => {
      if (t.count === 0) return { messages: [], unread: 0, more: false };
      const rows = this.#s.inboxPage.all(app, user, after === undefined ? -1n : BigInt(after), limit + 1);
      const more = rows.length > limit;
      if (more) rows.pop();
      return { messages: rows.map(toMessage), unread: t.count, more };
    };
    return this.#readInbox(app, user, page);
  }

  unread(app: string, user: string): Promise<number> {
    return this.#readInbox(app, user, (t) => t.count);
  }

  /**
   * Read an inbox. A read needs no transaction of its own when no write
   * waits ahead of it and nothing in the inbox is due to expire (expiring is
   * a write): then it runs at once, on what is committed, and a device's
   * `welcome` does not wait for the next group commit. Otherwise it runs in
   * the queue, after the writes before it.
   */
  #readInbox<T>(app: string, user: string, read: (t: Totals) => T): Promise<T> {
    if (this.#queue.length === 0 && !this.#closed) {
      try {
        const t = this.#totalsOf(app, user);
        if (t.next === null || t.next > this.#clock()) return Promise.resolve(read(t));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return this.#enqueue(() => {
      const gone: string[] = [];
      const t = this.#expireInbox(app, user, this.#clock(), gone);
      this.#gc(gone);
      return read(t);
    });
  }

  ack(app: string, user: string, which: InboxSelector): Promise<AckResult> {
    return this.#enqueue(() => {
      const s = this.#s;
      const gone: string[] = [];
      const t = this.#expireInbox(app, user, this.#clock(), gone);
      let { count, bytes } = t;
      let removed: Removed[];
      if ('all' in which) removed = s.inboxDeleteAll.all(app, user);
      else if ('upTo' in which) removed = s.inboxDeleteUpTo.all(app, user, BigInt(which.upTo));
      else {
        removed = [];
        for (const id of which.ids) {
          const r = s.inboxDeleteOne.get(app, user, BigInt(id));
          if (r !== undefined) removed.push(r);
        }
      }
      for (const r of removed) {
        count--;
        bytes -= r.bytes;
        gone.push(r.id);
      }
      // `next` stays a lower bound: removing messages can only raise the earliest expiry.
      if (removed.length > 0) this.#setTotals(app, user, { count, bytes, next: t.next });
      this.#gc(gone);
      return { removed: removed.length, unread: Math.max(0, count) };
    });
  }

  history(app: string, channel: string, since: string, limit: number): Promise<HistoryPage> {
    // Only reads: at once when no write waits ahead of it, as an inbox read.
    if (this.#queue.length > 0 || this.#closed) return this.#enqueue(() => this.#history(app, channel, since, limit));
    try {
      return Promise.resolve(this.#history(app, channel, since, limit));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #history(app: string, channel: string, since: string, limit: number): HistoryPage {
    const now = this.#clock();
    const oldest = now - this.#limits.historyMaxAgeSeconds * 1000;
    const at = this.#s.historyFind.get(app, channel, BigInt(since));
    if (at === undefined || at.at < oldest) return { found: false, messages: [], more: false };
    // Expired messages are skipped, so read on until the page is full or the history ends.
    const messages: StoredMessage[] = [];
    let seq = at.seq;
    let more = false;
    read: for (;;) {
      const rows = this.#s.historyAfter.all(app, channel, seq, limit + 1);
      for (const r of rows) {
        if (r.expires !== null && r.expires <= now) {
          seq = r.seq;
          continue;
        }
        if (messages.length === limit) {
          more = true;
          break read;
        }
        messages.push(toMessage(r));
        seq = r.seq;
      }
      if (rows.length <= limit) break;
    }
    return { found: true, messages, more, position: seq };
  }

  sweep(): Promise<number> {
    return this.#enqueue(() => {
      const s = this.#s;
      const now = this.#clock();
      let n = 0;
      const gone: string[] = [];
      const totals = new Map<string, { app: string; user: string }>();
      for (const r of s.sweepInbox.all(now)) {
        totals.set(r.app + '\u0000' + r.user, r);
        gone.push(r.id);
        n++;
      }
      for (const { app, user } of totals.values()) {
        // Recount from the rows: the sweep removed them without the running totals.
        const t = s.inboxCount.get(app, user)!;
        this.#setTotals(app, user, { count: t.count, bytes: t.bytes ?? 0, next: t.next });
      }
      const trimmed = new Map<string, { app: string; channel: string; n: number }>();
      for (const r of s.sweepHistory.all(now - this.#limits.historyMaxAgeSeconds * 1000, now)) {
        const k = r.app + '\u0000' + r.channel;
        const t = trimmed.get(k) ?? { app: r.app, channel: r.channel, n: 0 };
        t.n++;
        trimmed.set(k, t);
        gone.push(r.id);
        n++;
      }
      for (const t of trimmed.values()) s.historyCountAdd.run(t.n, t.app, t.channel);
      if (trimmed.size > 0) s.historyTotalsClean.run();
      n += s.sweepKeys.run(now).changes;
      this.#gc(gone);
      return n;
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#commit();
    this.#closed = true;
    this.#db.close();
  }
}
