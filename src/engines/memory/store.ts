/**
 * The in-memory store (`"store": "memory"`): the same behaviour as the
 * durable stores, kept in this process only. Everything is lost when the
 * process ends; use it for tests and for deployments that want no disk.
 */
import {
  compareIds,
  type AckResult,
  type HistoryPage,
  type InboxPage,
  type InboxSelector,
  type Store,
  type StoredMessage,
  type StoreLimits,
  type StoreOptions,
  type WriteRequest,
  type WriteResult,
} from '../../core/store.js';

interface Inbox {
  /** Sorted by id. */
  readonly entries: StoredMessage[];
  bytes: number;
}

interface AppData {
  readonly inboxes: Map<string, Inbox>;
  /** Channel histories in append order. */
  readonly histories: Map<string, StoredMessage[]>;
  /** The place of the last append to each channel's history. */
  readonly positions: Map<string, number>;
  readonly keys: Map<string, { id: string; until: number }>;
}

function bytesOf(m: StoredMessage): number {
  return Buffer.byteLength(m.data);
}

function live(m: StoredMessage, now: number): boolean {
  return m.expires === undefined || m.expires > now;
}

/** Index of the first entry with id >= `id` in a sorted list. */
function lowerBound(entries: readonly StoredMessage[], id: string): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareIds(entries[mid]!.id, id) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class MemoryStore implements Store {
  readonly #limits: StoreLimits;
  readonly #clock: () => number;
  readonly #apps = new Map<string, AppData>();
  #nextId = 0n;

  constructor(options: StoreOptions) {
    this.#limits = options.limits;
    this.#clock = options.clock ?? Date.now;
  }

  #app(app: string): AppData {
    let a = this.#apps.get(app);
    if (a === undefined) {
      a = { inboxes: new Map(), histories: new Map(), keys: new Map(), positions: new Map() };
      this.#apps.set(app, a);
    }
    return a;
  }

  /** The user's inbox with expired entries dropped, or undefined. */
  #inbox(app: string, user: string, now: number): Inbox | undefined {
    const box = this.#apps.get(app)?.inboxes.get(user);
    if (box === undefined) return undefined;
    let kept = 0;
    const e = box.entries;
    for (let i = 0; i < e.length; i++) {
      const m = e[i]!;
      if (live(m, now)) e[kept++] = m;
      else box.bytes -= bytesOf(m);
    }
    e.length = kept;
    return box;
  }

  async leaseIds(size: number, floor: bigint): Promise<bigint> {
    const start = this.#nextId > floor ? this.#nextId : floor;
    this.#nextId = start + BigInt(size);
    return start;
  }

  async write(req: WriteRequest): Promise<WriteResult> {
    const now = this.#clock();
    const a = this.#app(req.app);
    if (req.idempotencyKey !== undefined) {
      const seen = a.keys.get(req.idempotencyKey);
      if (seen !== undefined && seen.until > now) return { id: seen.id, duplicate: true, unread: new Map(), evicted: 0, positions: new Map() };
      a.keys.set(req.idempotencyKey, { id: req.message.id, until: now + this.#limits.idempotencySeconds * 1000 });
    }
    const m = req.message;
    const unread = new Map<string, number>();
    let evicted = 0;
    for (const user of req.users ?? []) {
      let box = this.#inbox(req.app, user, now);
      if (box === undefined) {
        box = { entries: [], bytes: 0 };
        a.inboxes.set(user, box);
      }
      const e = box.entries;
      const at = lowerBound(e, m.id);
      if (e[at]?.id !== m.id) {
        e.splice(at, 0, m);
        box.bytes += bytesOf(m);
      }
      while (e.length > this.#limits.inboxMaxMessages || (box.bytes > this.#limits.inboxMaxBytes && e.length > 0)) {
        box.bytes -= bytesOf(e.shift()!);
        evicted++;
      }
      unread.set(user, e.length);
    }
    const positions = new Map<string, number>();
    for (const channel of req.channels ?? []) {
      let h = a.histories.get(channel);
      if (h === undefined) {
        h = [];
        a.histories.set(channel, h);
      }
      const at = (a.positions.get(channel) ?? 0) + 1;
      a.positions.set(channel, at);
      h.push(m);
      this.#trim(h, now);
      positions.set(channel, at);
    }
    return { id: m.id, duplicate: false, unread, evicted, positions };
  }

  #trim(h: StoredMessage[], now: number): void {
    const oldest = now - this.#limits.historyMaxAgeSeconds * 1000;
    let drop = Math.max(0, h.length - this.#limits.historyMaxMessages);
    while (drop < h.length && h[drop]!.at < oldest) drop++;
    if (drop > 0) h.splice(0, drop);
  }

  async inbox(app: string, user: string, after: string | undefined, limit: number): Promise<InboxPage> {
    const box = this.#inbox(app, user, this.#clock());
    if (box === undefined) return { messages: [], unread: 0, more: false };
    const e = box.entries;
    let from = 0;
    if (after !== undefined) {
      from = lowerBound(e, after);
      if (e[from]?.id === after) from++;
    }
    const messages = e.slice(from, from + limit);
    return { messages, unread: e.length, more: from + messages.length < e.length };
  }

  async unread(app: string, user: string): Promise<number> {
    return this.#inbox(app, user, this.#clock())?.entries.length ?? 0;
  }

  async ack(app: string, user: string, which: InboxSelector): Promise<AckResult> {
    const box = this.#inbox(app, user, this.#clock());
    if (box === undefined) return { removed: 0, unread: 0 };
    const e = box.entries;
    let removed = 0;
    if ('all' in which) {
      removed = e.length;
      e.length = 0;
      box.bytes = 0;
    } else if ('upTo' in which) {
      let n = lowerBound(e, which.upTo);
      if (e[n]?.id === which.upTo) n++;
      for (let i = 0; i < n; i++) box.bytes -= bytesOf(e[i]!);
      e.splice(0, n);
      removed = n;
    } else {
      for (const id of which.ids) {
        const i = lowerBound(e, id);
        if (e[i]?.id !== id) continue;
        box.bytes -= bytesOf(e[i]!);
        e.splice(i, 1);
        removed++;
      }
    }
    if (e.length === 0) this.#apps.get(app)?.inboxes.delete(user);
    return { removed, unread: e.length };
  }

  async history(app: string, channel: string, since: string, limit: number): Promise<HistoryPage> {
    const h = this.#apps.get(app)?.histories.get(channel);
    if (h === undefined) return { found: false, messages: [], more: false };
    const now = this.#clock();
    this.#trim(h, now);
    const at = h.findLastIndex((m) => m.id === since);
    if (at === -1) return { found: false, messages: [], more: false };
    const messages: StoredMessage[] = [];
    let i = at + 1;
    for (; i < h.length && messages.length < limit; i++) if (live(h[i]!, now)) messages.push(h[i]!);
    // Places are dense and the history is trimmed from its head: the last entry holds the last place.
    const position = (this.#apps.get(app)?.positions.get(channel) ?? 0) - (h.length - i);
    return { found: true, messages, more: i < h.length, position };
  }

  async sweep(): Promise<number> {
    const now = this.#clock();
    let n = 0;
    for (const a of this.#apps.values()) {
      for (const [user, box] of a.inboxes) {
        const before = box.entries.length;
        let kept = 0;
        for (const m of box.entries) {
          if (live(m, now)) box.entries[kept++] = m;
          else box.bytes -= bytesOf(m);
        }
        box.entries.length = kept;
        n += before - kept;
        if (kept === 0) a.inboxes.delete(user);
      }
      for (const [channel, h] of a.histories) {
        const before = h.length;
        this.#trim(h, now);
        const kept = h.filter((m) => live(m, now));
        h.splice(0, h.length, ...kept);
        n += before - h.length;
        if (h.length === 0) {
          a.histories.delete(channel);
          a.positions.delete(channel);
        }
      }
      for (const [key, k] of a.keys) {
        if (k.until <= now) {
          a.keys.delete(key);
          n++;
        }
      }
    }
    return n;
  }

  async close(): Promise<void> {
    this.#apps.clear();
  }
}
