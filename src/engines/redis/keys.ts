/**
 * Key and channel names in Redis. Everything of one user (inbox, route) shares
 * one hash tag, as does everything of one channel (history, subscriber
 * counts, the channel's shard channel), so each Lua script touches one slot
 * of a Redis Cluster and a channel's history append and its publish are one
 * atomic step. User ids and channel names are escaped so a `{` or `}` in them
 * cannot move the hash tag.
 */

/** Escape `%`, `{` and `}` so a name cannot end or start a hash tag. */
function esc(s: string): string {
  return s.replace(/[%{}]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

function user(app: string, u: string): string {
  return `silk:{${app}:u:${esc(u)}}`;
}

function channel(app: string, ch: string): string {
  return `silk:{${app}:c:${esc(ch)}}`;
}

export const keys = {
  /** The id counter (the next free id). */
  ids: 'silk:{ids}',
  /** A user's inbox: members are 19-digit ids (lexicographic = numeric order). */
  inbox: (app: string, u: string) => user(app, u) + ':inbox',
  /** Inbox message bodies by id. */
  inboxBodies: (app: string, u: string) => user(app, u) + ':msgs',
  /** Expiry time by id, for messages with a ttl. */
  inboxExpiry: (app: string, u: string) => user(app, u) + ':exp',
  /** Inbox totals (bytes). */
  inboxMeta: (app: string, u: string) => user(app, u) + ':meta',
  /** The user's devices: connection id → node, since, transport. */
  route: (app: string, u: string) => user(app, u) + ':route',
  /** A channel's history: ids scored by their place in publish order. */
  history: (app: string, ch: string) => channel(app, ch) + ':hist',
  historyBodies: (app: string, ch: string) => channel(app, ch) + ':hmsgs',
  historySeq: (app: string, ch: string) => channel(app, ch) + ':seq',
  /** Local subscriber count of a channel per node. */
  subscribers: (app: string, ch: string) => channel(app, ch) + ':subs',
  /** The shard channel a channel's messages travel on. */
  channelBus: (app: string, ch: string) => channel(app, ch) + ':bus',
  /** The shard channel of broadcasts to all of an app. */
  appBus: (app: string) => `silk:{${app}:all}:bus`,
  /** The shard channel of one node (user messages and signals routed to it). */
  nodeBus: (node: string) => `silk:{node:${node}}:bus`,
  /** An idempotency key of an app. */
  idempotency: (app: string, key: string) => `silk:{${app}:k:${esc(key)}}:idem`,
  /** Live nodes: id → JSON description. */
  nodes: 'silk:{nodes}:info',
  /** Last heartbeat of each node (ms). */
  beats: 'silk:{nodes}:beat',
  /** Per-app counters of each node: id → JSON. */
  nodeStats: 'silk:{nodes}:stats',
  /** Migration progress, by source. */
  migration: (source: string) => `silk:{migrate}:${esc(source)}`,
} as const;

/** A message id as an inbox member: 19 digits, so byte order is numeric order. */
export function member(id: string): string {
  return id.padStart(19, '0');
}

/** The id of an inbox member. */
export function unmember(m: string): string {
  const s = m.replace(/^0+/, '');
  return s === '' ? '0' : s;
}
