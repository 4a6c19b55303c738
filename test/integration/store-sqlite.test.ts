import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { SCHEMA_VERSION } from '../../src/engines/sqlite/schema.js';
import { DB_FILE, SqliteStore } from '../../src/engines/sqlite/store.js';
import { CONTRACT_LIMITS, storeContract } from '../contract/store.js';
import { tempDir } from '../helpers.js';

const dirs: string[] = [];
let last = '';
storeContract('sqlite', {
  async open(options) {
    last = tempDir('silk-sqlite-');
    dirs.push(last);
    return new SqliteStore({ ...options, dir: last });
  },
  async reopen(options) {
    return new SqliteStore({ ...options, dir: last });
  },
  async cleanup() {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  },
});

describe('sqlite store', () => {
  const opened: SqliteStore[] = [];
  after(async () => {
    for (const s of opened) await s.close().catch(() => undefined);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  function open(dir: string, now = { t: 1_800_000_000_000 }): SqliteStore {
    const s = new SqliteStore({ dir, limits: CONTRACT_LIMITS, clock: () => now.t });
    opened.push(s);
    return s;
  }
  const message = (id: bigint, extra: object = {}) => ({ id: id.toString(), data: '{"n":1}', at: 1_800_000_000_000, ...extra });

  test('an operation that throws fails alone; the rest of its group commit is stored', async () => {
    const dir = tempDir('silk-sqlite-');
    dirs.push(dir);
    const store = open(dir);
    // Queued in one tick, so they share one transaction.
    const results = await Promise.allSettled([
      store.write({ app: 'a', message: message(101n), users: ['u'] }),
      store.write({ app: 'a', message: { id: 'not-a-number', data: '1', at: 1 }, users: ['u'] }),
      store.write({ app: 'a', message: message(102n), users: ['u'] }),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    await store.close();
    const again = open(dir);
    const page = await again.inbox('a', 'u', undefined, 10);
    assert.deepEqual(
      page.messages.map((m) => m.id),
      ['101', '102'],
    );
    assert.equal(page.unread, 2);
  });

  test('reads run at once when no write waits, and after the writes issued before them', async () => {
    const store = open(tempDir('silk-sqlite-'));
    const m = message(7_000_000_000_000_001n);
    const written = store.write({ app: 'a', message: m, users: ['u'], channels: ['c'] });
    const page = store.inbox('a', 'u', undefined, 10);
    await written;
    assert.deepEqual((await page).messages.map((x) => x.id), [m.id]);
    const later = message(7_000_000_000_000_002n);
    const second = store.write({ app: 'a', message: later, channels: ['c'] });
    const history = store.history('a', 'c', m.id, 10);
    await second;
    assert.deepEqual((await history).messages.map((x) => x.id), [later.id]);
    // A device's acknowledgement and the inbox request after it, handled in one tick.
    const acked = store.ack('a', 'u', { all: true });
    const after = store.inbox('a', 'u', undefined, 10);
    assert.equal((await acked).removed, 1);
    assert.deepEqual(await after, { messages: [], unread: 0, more: false });
    // Nothing queued: the read is answered without waiting for a group commit (its promise settles in microtasks, before the event loop turns).
    let settled = false;
    const now = store.inbox('a', 'u', undefined, 10).then(() => (settled = true));
    await Promise.resolve();
    await Promise.resolve();
    assert.equal(settled, true);
    await now;
  });

  test('a version 1 database is upgraded in place and its ttls still apply', async () => {
    const dir = tempDir('silk-sqlite-');
    dirs.push(dir);
    const now = { t: 1_800_000_000_000 };
    const store = open(dir, now);
    await store.write({ app: 'a', message: message(201n, { expires: now.t + 10_000 }), users: ['u'] });
    await store.write({ app: 'a', message: message(202n), users: ['u'] });
    await store.close();
    // Take the file back to schema version 1, as an older silk left it.
    const db = new Database(join(dir, DB_FILE));
    db.exec('ALTER TABLE inbox_totals DROP COLUMN next_expiry');
    db.pragma('user_version = 1');
    db.close();
    const upgraded = open(dir, now);
    assert.equal(await upgraded.unread('a', 'u'), 2);
    now.t += 11_000;
    const page = await upgraded.inbox('a', 'u', undefined, 10);
    assert.deepEqual(
      page.messages.map((m) => m.id),
      ['202'],
    );
    assert.equal(page.unread, 1);
    const check = new Database(join(dir, DB_FILE), { readonly: true });
    assert.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    check.close();
  });
});
