/**
 * `silk migrate`: copy a single node's embedded store (its data dir) into
 * Redis, for a node that outgrows one machine. In order (inboxes by user
 * and id, histories in publish order, idempotency keys, then the id
 * counter), in batches, with the position kept in Redis after every batch:
 * an interrupted migration resumes where it stopped (the seeds' 数据迁移:
 * 排序, 中断继续). Every write is idempotent, so a batch cut off halfway is
 * simply written again. At the end it compares counts.
 *
 * The source is only read. Run it with the source node stopped.
 */
import { realpathSync } from 'node:fs';
import type { RedisConfig } from './config.js';
import type { StoreLimits } from './core/store.js';
import { connect, ready, type RedisClient } from './engines/redis/client.js';
import { keys } from './engines/redis/keys.js';
import { RedisStore } from './engines/redis/store.js';
import { SqliteExport } from './engines/sqlite/export.js';

export interface MigrateOptions {
  readonly dataDir: string;
  readonly redis: RedisConfig;
  /** The target's limits (caps and history bounds apply as they would on a node). */
  readonly limits: StoreLimits;
  /** Rows per batch. @default 500 */
  readonly batch?: number;
  /** Forget any earlier progress and start over. */
  readonly restart?: boolean;
  /** Progress lines. */
  readonly log: (line: string) => void;
}

type Phase = 'inbox' | 'history' | 'keys' | 'ids' | 'done';

export interface MigrateReport {
  readonly source: string;
  readonly resumed: boolean;
  readonly copied: { inbox: number; history: number; keys: number };
  /** Per-inbox and per-history counts that differ between source and target, with why when known. */
  readonly mismatches: string[];
}

/** Run (or resume) a migration; resolves with the verification report. */
export async function migrate(o: MigrateOptions): Promise<MigrateReport> {
  const source = new SqliteExport(o.dataDir);
  const client = connect(o.redis, 'command');
  client.on('error', () => undefined);
  try {
    await ready(client, 10_000);
    return await run(o, source, client);
  } finally {
    source.close();
    client.disconnect();
  }
}

async function run(o: MigrateOptions, source: SqliteExport, client: RedisClient): Promise<MigrateReport> {
  const batch = o.batch ?? 500;
  const store = new RedisStore({ client, limits: o.limits });
  const id = realpathSync(source.file);
  const progressKey = keys.migration(id);
  if (o.restart === true) await client.del(progressKey);
  const saved = await client.hgetall(progressKey);
  let phase = (saved['phase'] as Phase | undefined) ?? 'inbox';
  let cursor: unknown = saved['cursor'] === undefined ? undefined : JSON.parse(saved['cursor']);
  const copied = { inbox: Number(saved['inbox'] ?? 0), history: Number(saved['history'] ?? 0), keys: Number(saved['keys'] ?? 0) };
  const resumed = saved['phase'] !== undefined && phase !== 'done';
  const total = source.counts();
  if (resumed) o.log(`migrate: resuming ${id} at ${phase} (${copied.inbox} inbox, ${copied.history} history, ${copied.keys} keys copied)`);
  else if (phase === 'done') o.log(`migrate: ${id} was migrated before; verifying`);
  else o.log(`migrate: ${id} → Redis: ${total.inbox} inbox messages, ${total.history} history messages, ${total.keys} idempotency keys`);

  const save = async (next: Phase, c: unknown): Promise<void> => {
    phase = next;
    cursor = c;
    await client.hset(progressKey, {
      phase,
      cursor: JSON.stringify(c ?? null),
      inbox: copied.inbox,
      history: copied.history,
      keys: copied.keys,
    });
  };

  while (phase === 'inbox') {
    const rows = source.inbox(cursor as [string, string, string] | undefined, batch);
    await Promise.all(rows.map((r) => store.write({ app: r.app, message: r.message, users: [r.user] })));
    copied.inbox += rows.length;
    if (rows.length < batch) {
      await save('history', 0);
      break;
    }
    const last = rows[rows.length - 1]!;
    await save('inbox', [last.app, last.user, last.message.id]);
    o.log(`migrate: inbox ${copied.inbox}/${total.inbox}`);
  }
  while (phase === 'history') {
    const rows = source.history((cursor as number | null) ?? 0, batch);
    // One channel's messages must go in order; a batch is written in order, one after another.
    for (const r of rows) await store.write({ app: r.app, message: r.message, channels: [r.channel] });
    copied.history += rows.length;
    if (rows.length < batch) {
      await save('keys', null);
      break;
    }
    await save('history', rows[rows.length - 1]!.seq);
    o.log(`migrate: history ${copied.history}/${total.history}`);
  }
  while (phase === 'keys') {
    const rows = source.keys((cursor as [string, string] | null) ?? undefined, batch);
    await Promise.all(rows.map((r) => store.importKey(r.app, r.key, r.id, r.until)));
    copied.keys += rows.length;
    if (rows.length < batch) {
      await save('ids', null);
      break;
    }
    const last = rows[rows.length - 1]!;
    await save('keys', [last.app, last.key]);
    o.log(`migrate: keys ${copied.keys}/${total.keys}`);
  }
  if (phase === 'ids') {
    // Ids continue above everything the single node handed out.
    await store.raiseIds(source.nextId());
    await save('done', null);
  }
  o.log(`migrate: copied ${copied.inbox} inbox, ${copied.history} history messages and ${copied.keys} keys; verifying`);
  return { source: id, resumed, copied, mismatches: await verify(o, source, client) };
}

/**
 * Compare what each inbox and each channel history holds on both sides,
 * counting only what the target keeps by its bounds (unexpired, within
 * the caps, young enough for history).
 */
async function verify(o: MigrateOptions, source: SqliteExport, client: RedisClient): Promise<string[]> {
  const out: string[] = [];
  const now = Date.now();
  const l = o.limits;
  for (const t of source.inboxTotals(now)) {
    const have = await client.zcard(keys.inbox(t.app, t.user));
    const exact = t.count <= l.inboxMaxMessages && t.bytes <= l.inboxMaxBytes;
    // Over a cap the target keeps the newest that fit: fewer, never more, never none.
    const ok = exact ? have === t.count : have > 0 && have <= Math.min(t.count, l.inboxMaxMessages);
    if (!ok) out.push(`inbox ${t.app}/${t.user}: ${t.count} unexpired in the source, ${have} in Redis`);
  }
  for (const t of source.historyTotals(now - l.historyMaxAgeSeconds * 1000)) {
    const have = await client.zcard(keys.history(t.app, t.channel));
    const want = Math.min(t.count, l.historyMaxMessages);
    if (have !== want) out.push(`history ${t.app}/${t.channel}: ${want} expected in Redis, ${have} there`);
  }
  return out;
}
