/**
 * The cluster store on Redis: inboxes, channel histories, idempotency keys
 * and the id counter, shared by every node. Each inbox and each history is
 * changed by one Lua script on its own hash slot, so it is atomic on a
 * single server and on a Redis Cluster alike. A durable channel message's
 * append returns its place in the history (a counter per channel), which
 * travels with it on the bus, so every node delivers a channel's durable
 * messages in history order (src/cluster/bus.ts) and live delivery and
 * recovery see one order.
 *
 * Durability (docs/storage.md): a write resolves once Redis has executed it.
 * It survives a Redis restart only with the append-only file and
 * `appendfsync always` (or `everysec`, accepting up to a second of loss).
 *
 * Times come from the store's clock (passed to the scripts), so expiry
 * follows one clock across nodes and tests can move it; Redis key expiry
 * only collects what is already logically gone, with a day of slack.
 */
import type { AckResult, HistoryPage, InboxPage, InboxSelector, Store, StoredMessage, StoreLimits, StoreOptions, WriteRequest, WriteResult } from '../../core/store.js';
import { SilkError } from '../../core/errors.js';
import { Script, type RedisClient } from './client.js';
import { decodeStored, encodeStored } from './codec.js';
import { keys, member, unmember } from './keys.js';

/** Extra lifetime of Redis keys past their logical end, so clocks a little apart never lose data early. */
const SLACK_MS = 86_400_000;
/**
 * How long a claimed idempotency key counts as in progress: a publish with
 * the same key meanwhile is refused with `idempotency_key_in_use`. A publish
 * that fails marks its claim failed at once, so this only matters when its
 * node died, or lost Redis, in the middle. Its three stages (claim, writes,
 * done) each give up after COMMAND_TIMEOUT_MS (3 s), or about twice that
 * behind a pipelined batch (docs/cluster.md): 18 s at most, and room.
 */
export const IN_PROGRESS_MS = 30_000;

/** Drop the expired messages of an inbox; leaves `bytes` current. KEYS: inbox, msgs, exp, meta. */
const PURGE = `
local now = tonumber(ARGV[1])
local bytes = tonumber(redis.call('HGET', KEYS[4], 'bytes') or '0')
local function drop(m)
  local v = redis.call('HGET', KEYS[2], m)
  if v then bytes = bytes - tonumber(string.match(v, '^(%d+)')) end
  redis.call('ZREM', KEYS[1], m)
  redis.call('HDEL', KEYS[2], m)
  redis.call('ZREM', KEYS[3], m)
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do drop(m) end
local function finish()
  local count = redis.call('ZCARD', KEYS[1])
  if count == 0 then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
    return 0
  end
  redis.call('HSET', KEYS[4], 'bytes', bytes)
  -- Keys live for ever while a message without ttl is inside, else until the last expiry.
  local slack = tonumber(ARGV[2])
  if redis.call('ZCARD', KEYS[3]) == count then
    local last = tonumber(redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')[2])
    for i = 1, 4 do redis.call('PEXPIREAT', KEYS[i], last + slack) end
  else
    for i = 1, 4 do redis.call('PERSIST', KEYS[i]) end
  end
  return count
end
`;

/** ARGV: now, slack, member, body, bytes, expires|'', maxCount, maxBytes. Returns {count, evicted}. */
const INBOX_PUT = new Script(
  4,
  PURGE +
    `
if redis.call('ZADD', KEYS[1], 'NX', 0, ARGV[3]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  bytes = bytes + tonumber(ARGV[5])
  if ARGV[6] ~= '' then redis.call('ZADD', KEYS[3], tonumber(ARGV[6]), ARGV[3]) end
end
local maxc, maxb = tonumber(ARGV[7]), tonumber(ARGV[8])
local count = redis.call('ZCARD', KEYS[1])
local evicted = 0
while count > 0 and (count > maxc or bytes > maxb) do
  drop(redis.call('ZRANGE', KEYS[1], 0, 0)[1])
  count = count - 1
  evicted = evicted + 1
end
return {finish(), evicted}
`,
);

/** ARGV: now, slack, after ('-' or '(' .. member), limit. Returns {count, member, body, …} (limit + 1 at most). */
const INBOX_READ = new Script(
  4,
  PURGE +
    `
local count = finish()
local out = {count}
if count == 0 or tonumber(ARGV[4]) == 0 then return out end
local ms = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[3], '+', 'LIMIT', 0, tonumber(ARGV[4]) + 1)
for _, m in ipairs(ms) do
  out[#out + 1] = m
  out[#out + 1] = redis.call('HGET', KEYS[2], m)
end
return out
`,
);

/** ARGV: now, slack, mode ('ids' | 'upto' | 'all'), members…. Returns {removed, count}. */
const INBOX_ACK = new Script(
  4,
  PURGE +
    `
local removed = 0
local targets
if ARGV[3] == 'all' then
  targets = redis.call('ZRANGE', KEYS[1], 0, -1)
elseif ARGV[3] == 'upto' then
  targets = redis.call('ZRANGEBYLEX', KEYS[1], '-', '[' .. ARGV[4])
else
  targets = {}
  for i = 4, #ARGV do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then targets[#targets + 1] = ARGV[i] end
  end
end
for _, m in ipairs(targets) do
  drop(m)
  removed = removed + 1
end
return {removed, finish()}
`,
);

/**
 * KEYS: hist, bodies, seq. ARGV: id, body, maxCount, minAt, ttlMs. Returns
 * the message's place in the history: one more than the last append's, or,
 * for an id already appended (a retried write), the place it has.
 */
const HISTORY_PUT = new Script(
  3,
  `
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0') end
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local maxc = tonumber(ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
if n > maxc then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[1], 0, n - maxc - 1)) do redis.call('HDEL', KEYS[2], old) end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - maxc - 1)
end
local minAt = tonumber(ARGV[4])
for i = 1, 100 do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if not head then break end
  local at = tonumber(string.match(redis.call('HGET', KEYS[2], head) or '', '^%d+\\n{"a":(%d+)') or '0')
  if at >= minAt then break end
  redis.call('ZREM', KEYS[1], head)
  redis.call('HDEL', KEYS[2], head)
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
return seq
`,
);

/**
 * KEYS: hist, bodies. ARGV: since, minAt, limit, afterSeq|''. Finds `since`
 * (or starts after `afterSeq`) and returns {found, seq, id, body, …}.
 */
const HISTORY_READ = new Script(
  2,
  `
local from = ARGV[4]
if from == '' then
  local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not s then return {0} end
  local at = tonumber(string.match(redis.call('HGET', KEYS[2], ARGV[1]) or '', '^%d+\\n{"a":(%d+)') or '0')
  if at < tonumber(ARGV[2]) then return {0} end
  from = s
end
local out = {1, from}
local rows = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. from, '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]) + 1)
for i = 1, #rows, 2 do
  out[#out + 1] = rows[i + 1]
  out[#out + 1] = rows[i]
  out[#out + 1] = redis.call('HGET', KEYS[2], rows[i])
end
return out
`,
);

/**
 * KEYS: key. ARGV: id, now, until, pxMs, inProgressMs. The key's value is
 * `p:<id>:<until>:<claimed>` while a publish holds it, `f:<id>:<until>:<claimed>`
 * once that publish failed, `d:<id>:<until>` when done. Returns {state, id,
 * value, until}: 'n' new (claimed under `id`), 'd' done, 'b' busy (another publish
 * claimed it less than inProgressMs ago), 't' taken over (a failed publish,
 * or one that stopped without saying: complete it under `id`). `value` is
 * what the key now holds, for {@link IDEMPOTENCY_FAILED}; `until` the end of
 * the key's window, which starts at the first publish.
 */
const IDEMPOTENCY = new Script(
  1,
  `
local now = tonumber(ARGV[2])
local v = redis.call('GET', KEYS[1])
if v then
  local state, id, untl, claimed = string.match(v, '^(%a):(%d+):(%d+):?(%d*)$')
  if state and tonumber(untl) > now then
    if state == 'd' then return {'d', id, v} end
    if state == 'p' and claimed ~= '' and now - tonumber(claimed) < tonumber(ARGV[5]) then return {'b', id, v} end
    local mine = 'p:' .. id .. ':' .. untl .. ':' .. ARGV[2]
    redis.call('SET', KEYS[1], mine, 'KEEPTTL')
    return {'t', id, mine, untl}
  end
end
local mine = 'p:' .. ARGV[1] .. ':' .. ARGV[3] .. ':' .. ARGV[2]
redis.call('SET', KEYS[1], mine, 'PX', ARGV[4])
return {'n', ARGV[1], mine, ARGV[3]}
`,
);

/** KEYS: key. ARGV: id, until. */
const IDEMPOTENCY_DONE = new Script(1, `redis.call('SET', KEYS[1], 'd:' .. ARGV[1] .. ':' .. ARGV[2], 'XX', 'KEEPTTL') return 1`);

/** KEYS: key. ARGV: the value this publish's claim wrote. Marks it failed if it still holds it. */
const IDEMPOTENCY_FAILED = new Script(
  1,
  `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], 'f' .. string.sub(ARGV[1], 2), 'KEEPTTL') end
return 1
`,
);

/**
 * KEYS: counter. ARGV: size, floor. Returns the block start as a string.
 * Lua numbers are doubles: exact for ids below 2^53 (the clock layout stays
 * there until the year 2255; docs/storage.md).
 */
const LEASE = new Script(
  1,
  `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(cur, tonumber(ARGV[2]))
redis.call('SET', KEYS[1], string.format('%.0f', start + tonumber(ARGV[1])))
return string.format('%.0f', start)
`,
);

export interface RedisStoreOptions extends StoreOptions {
  readonly client: RedisClient;
}

function inboxKeys(app: string, user: string): string[] {
  return [keys.inbox(app, user), keys.inboxBodies(app, user), keys.inboxExpiry(app, user), keys.inboxMeta(app, user)];
}

export class RedisStore implements Store {
  readonly #c: RedisClient;
  readonly #limits: StoreLimits;
  readonly #clock: () => number;

  constructor(options: RedisStoreOptions) {
    this.#c = options.client;
    this.#limits = options.limits;
    this.#clock = options.clock ?? Date.now;
  }

  async leaseIds(size: number, floor: bigint): Promise<bigint> {
    return BigInt((await LEASE.run(this.#c, [keys.ids], [size, floor.toString()])) as string);
  }

  async write(req: WriteRequest): Promise<WriteResult> {
    const now = this.#clock();
    let m = req.message;
    const until = now + this.#limits.idempotencySeconds * 1000;
    if (req.idempotencyKey === undefined) return this.#write(req, m, now);
    const idem = keys.idempotency(req.app, req.idempotencyKey);
    const [state, id, claim, end] = (await IDEMPOTENCY.run(this.#c, [idem], [m.id, now, until, until - now + SLACK_MS, IN_PROGRESS_MS])) as [
      string,
      string,
      string,
      string,
    ];
    if (state === 'd') return { id, duplicate: true, unread: new Map(), evicted: 0, positions: new Map() };
    if (state === 'b') {
      throw new SilkError('idempotency_key_in_use', 'another publish with this idempotencyKey is in progress; retry shortly');
    }
    // 't': an earlier attempt with this key failed or stopped; complete it under its id (the writes it made repeat harmlessly).
    if (id !== m.id) m = { ...m, id };
    try {
      const w = await this.#write(req, m, now);
      await IDEMPOTENCY_DONE.run(this.#c, [idem], [m.id, end]);
      return w;
    } catch (err) {
      // So that a retry completes it at once rather than waiting out IN_PROGRESS_MS (best effort: Redis may be why it failed).
      IDEMPOTENCY_FAILED.run(this.#c, [idem], [claim]).catch(() => undefined);
      throw err;
    }
  }

  /** The writes of a durable publish (and of a claimed idempotency key). */
  async #write(req: WriteRequest, m: StoredMessage, now: number): Promise<WriteResult> {
    const users = req.users ?? [];
    const channels = req.channels ?? [];
    const bytes = Buffer.byteLength(m.data);
    const body = encodeStored(m, bytes);
    const unread = new Map<string, number>();
    let evicted = 0;
    await Promise.all(
      users.map(async (user) => {
        const [count, ev] = (await INBOX_PUT.run(this.#c, inboxKeys(req.app, user), [
          now,
          SLACK_MS,
          member(m.id),
          body,
          bytes,
          m.expires ?? '',
          this.#limits.inboxMaxMessages,
          this.#limits.inboxMaxBytes,
        ])) as [number, number];
        unread.set(user, count);
        evicted += ev;
      }),
    );
    const positions = new Map<string, number>();
    await Promise.all(
      channels.map(async (ch) => {
        const at = (await HISTORY_PUT.run(this.#c, [keys.history(req.app, ch), keys.historyBodies(req.app, ch), keys.historySeq(req.app, ch)], [
          m.id,
          body,
          this.#limits.historyMaxMessages,
          now - this.#limits.historyMaxAgeSeconds * 1000,
          this.#limits.historyMaxAgeSeconds * 1000 + SLACK_MS,
        ])) as number;
        positions.set(ch, at);
      }),
    );
    return { id: m.id, duplicate: false, unread, evicted, positions };
  }

  async inbox(app: string, user: string, after: string | undefined, limit: number): Promise<InboxPage> {
    const out = (await INBOX_READ.run(this.#c, inboxKeys(app, user), [
      this.#clock(),
      SLACK_MS,
      after === undefined ? '-' : '(' + member(after),
      limit,
    ])) as (number | string)[];
    const unread = out[0] as number;
    const messages: StoredMessage[] = [];
    for (let i = 1; i < out.length; i += 2) messages.push(decodeStored(unmember(out[i] as string), out[i + 1] as string));
    const more = messages.length > limit;
    if (more) messages.pop();
    return { messages, unread, more };
  }

  async unread(app: string, user: string): Promise<number> {
    return (await this.inbox(app, user, undefined, 0)).unread;
  }

  async ack(app: string, user: string, which: InboxSelector): Promise<AckResult> {
    const args: (string | number)[] = [this.#clock(), SLACK_MS];
    if ('all' in which) args.push('all');
    else if ('upTo' in which) args.push('upto', member(which.upTo));
    else args.push('ids', ...which.ids.map(member));
    const [removed, unread] = (await INBOX_ACK.run(this.#c, inboxKeys(app, user), args)) as [number, number];
    return { removed, unread };
  }

  async history(app: string, channel: string, since: string, limit: number): Promise<HistoryPage> {
    const now = this.#clock();
    const minAt = now - this.#limits.historyMaxAgeSeconds * 1000;
    const k = [keys.history(app, channel), keys.historyBodies(app, channel)];
    const messages: StoredMessage[] = [];
    let from = '';
    // Messages past their ttl are skipped: read on until the page is full or the history ends.
    for (;;) {
      const out = (await HISTORY_READ.run(this.#c, k, [since, minAt, limit, from])) as (number | string)[];
      if (out[0] === 0) return { found: false, messages: [], more: false };
      // The place read up to: `since`'s, then each row's as it is taken.
      let position = Number(out[1]);
      const rows = (out.length - 2) / 3;
      for (let i = 2; i < out.length; i += 3) {
        const body = out[i + 2] as string | null;
        if (body === null) {
          from = out[i] as string;
          continue;
        }
        const m = decodeStored(out[i + 1] as string, body);
        if (m.expires !== undefined && m.expires <= now) {
          from = out[i] as string;
          position = Number(from);
          continue;
        }
        if (messages.length === limit) return { found: true, messages, more: true, position };
        from = out[i] as string;
        position = Number(from);
        messages.push(m);
      }
      if (rows <= limit) return { found: true, messages, more: false, position };
    }
  }

  /** For migrations: lift the id counter to at least `next`. */
  async raiseIds(next: bigint): Promise<void> {
    await LEASE.run(this.#c, [keys.ids], [0, next.toString()]);
  }

  /** For migrations: remember an idempotency key as done until `until` (ms). */
  async importKey(app: string, key: string, id: string, until: number): Promise<void> {
    const left = until - this.#clock();
    if (left <= 0) return;
    await this.#c.set(keys.idempotency(app, key), `d:${id}:${until}`, 'PX', left + SLACK_MS);
  }

  /** Redis expires inboxes, histories and keys by itself (see the scripts): nothing to sweep. */
  async sweep(): Promise<number> {
    return 0;
  }

  /** The connection belongs to the node, which closes it. */
  async close(): Promise<void> {}
}
