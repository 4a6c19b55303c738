/**
 * The embedded store's schema, versioned with `PRAGMA user_version`. Each
 * migration moves the database from version i to i + 1 inside one
 * transaction; a database newer than this code is refused rather than
 * guessed at.
 */
import type { Database } from 'better-sqlite3';
import { SilkError } from '../../core/errors.js';

/** Migrations in order; index i upgrades version i to i + 1. Never edit one that has shipped: add another. */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) WITHOUT ROWID;

  -- Message bodies, stored once however many inboxes and histories hold them.
  CREATE TABLE messages (
    id      INTEGER PRIMARY KEY,
    app     TEXT NOT NULL,
    event   TEXT,
    data    TEXT NOT NULL,
    at      INTEGER NOT NULL,
    expires INTEGER
  );

  CREATE TABLE inbox (
    app     TEXT NOT NULL,
    user    TEXT NOT NULL,
    id      INTEGER NOT NULL,
    bytes   INTEGER NOT NULL,
    expires INTEGER,
    PRIMARY KEY (app, user, id)
  ) WITHOUT ROWID;
  CREATE INDEX inbox_by_message ON inbox (id);
  CREATE INDEX inbox_by_expiry ON inbox (expires) WHERE expires IS NOT NULL;

  -- Running totals per inbox, for the caps.
  CREATE TABLE inbox_totals (
    app   TEXT NOT NULL,
    user  TEXT NOT NULL,
    count INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (app, user)
  ) WITHOUT ROWID;

  -- Channel histories; seq is the publish order.
  CREATE TABLE history (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    app     TEXT NOT NULL,
    channel TEXT NOT NULL,
    id      INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    expires INTEGER
  );
  CREATE INDEX history_by_channel ON history (app, channel, seq);
  CREATE INDEX history_by_message ON history (app, channel, id);
  CREATE INDEX history_by_id ON history (id);
  CREATE INDEX history_by_time ON history (at);
  CREATE INDEX history_by_expiry ON history (expires) WHERE expires IS NOT NULL;

  -- Messages per channel history, for the size bound.
  CREATE TABLE history_totals (
    app     TEXT NOT NULL,
    channel TEXT NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (app, channel)
  ) WITHOUT ROWID;

  CREATE TABLE idempotency (
    app   TEXT NOT NULL,
    key   TEXT NOT NULL,
    id    INTEGER NOT NULL,
    until INTEGER NOT NULL,
    PRIMARY KEY (app, key)
  ) WITHOUT ROWID;
  CREATE INDEX idempotency_by_time ON idempotency (until);
  `,
  `
  -- A lower bound on the earliest expiry in each inbox (NULL: nothing in it
  -- expires), so a write looks for expired messages only when one may be due.
  ALTER TABLE inbox_totals ADD COLUMN next_expiry INTEGER;
  UPDATE inbox_totals SET next_expiry =
    (SELECT MIN(expires) FROM inbox WHERE inbox.app = inbox_totals.app AND inbox.user = inbox_totals.user);
  `,
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Bring `db` to {@link SCHEMA_VERSION}.
 * @throws SilkError `store_unavailable` when the database was written by a newer version
 */
export function migrate(db: Database, file: string): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new SilkError('store_unavailable', `${file} has schema version ${current}; this silk knows up to ${SCHEMA_VERSION}: upgrade silk`);
  }
  for (let v = current; v < SCHEMA_VERSION; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}
