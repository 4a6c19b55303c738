/**
 * One error vocabulary for the wire, the HTTP API and the logs. How a
 * connection ends (close code, reason, whether to come back) is the
 * protocol's: `src/protocol/codes.ts`, whose reasons are these codes.
 *
 * Every code is stable: it keeps its meaning forever and a retired code is
 * never reused. `docs/errors.md` lists the same table and a test keeps the two
 * in step.
 */

interface CodeSpec {
  /** HTTP status when the code is answered by the HTTP API or the upgrade. */
  readonly status: number;
  /** What it means, for people. */
  readonly description: string;
}

/** Every error code Silk emits. Keys are the codes. */
export const ErrorCodes = {
  invalid_json: { status: 400, description: 'The body or frame is not valid JSON.' },
  invalid_request: {
    status: 400,
    description: 'A field is missing, has the wrong type or value, or is not known.',
  },
  invalid_target: {
    status: 400,
    description: 'The message target is not exactly one of users, channels or all, or names too many recipients.',
  },
  invalid_channel: {
    status: 400,
    description: 'The channel name is empty, too long, or has characters outside [A-Za-z0-9_.:@/=-].',
  },
  unknown_frame: { status: 400, description: 'The frame has a `type` this server does not know.' },
  unauthorized: { status: 401, description: 'The API key is missing or is not the key of the app in the path.' },
  token_missing: { status: 401, description: 'The connect request carries no `token`.' },
  token_invalid: {
    status: 401,
    description: 'The token is malformed, unsigned, signed with another key or algorithm, or lacks `sub` or `exp`.',
  },
  token_expired: {
    status: 401,
    description: 'The token expired (at connect, or while connected: the server closes the connection).',
  },
  forbidden_channel: { status: 403, description: "The token's `channels` claim does not allow this channel." },
  app_not_found: { status: 404, description: 'No app with this id is configured.' },
  not_found: { status: 404, description: 'No such route.' },
  method_not_allowed: { status: 405, description: 'The route exists but not for this HTTP method.' },
  payload_too_large: {
    status: 413,
    description: 'A request body, a message or a WebSocket frame is over its size limit.',
  },
  idempotency_key_in_use: {
    status: 409,
    description: 'Another publish with this `idempotencyKey` is still in progress (cluster mode); retry shortly.',
  },
  rate_limited: { status: 429, description: 'The app is over its API request rate.' },
  too_many_subscriptions: {
    status: 429,
    description: 'The connection already holds `limits.maxSubscriptionsPerConnection` subscriptions.',
  },
  flood: {
    status: 429,
    description: 'The connection sent more than `limits.maxFramesPerSecond` frames in one second.',
  },
  request_overflow: {
    status: 429,
    description: 'The connection sent more than `limits.maxDeferredBytes` of frames while the server was catching it up.',
  },
  slow_consumer: {
    status: 503,
    description: 'The connection read too slowly: its outbound queue passed `limits.maxOutboundBytes`.',
  },
  heartbeat_timeout: {
    status: 408,
    description: 'No frame from the client for more than 1.5 heartbeat intervals (found within 2.5).',
  },
  disconnected: {
    status: 200,
    description: 'The app backend disconnected the user through the server API.',
  },
  storage_full: {
    status: 507,
    description: "The store's disk is full: nothing of the request was stored. Retry once the operator has freed space; the node accepts again by itself.",
  },
  too_many_connections: { status: 503, description: 'The app holds `limits.maxConnectionsPerApp` connections.' },
  address_limit: {
    status: 429,
    description:
      'The client address holds `limits.maxConnectionsPerAddress` connections on this node, or opened `limits.connectsPerAddressPerSecond` in the last second.',
  },
  draining: {
    status: 503,
    description: 'The node is shutting down: it refuses new connections and closes open ones.',
  },
  internal: { status: 500, description: 'An unexpected failure inside the server.' },
  store_unavailable: {
    status: 503,
    description: 'The message store could not take or answer the request (disk, database or Redis failure); nothing was stored: retry.',
  },
} as const satisfies Record<string, CodeSpec>;

export type ErrorCode = keyof typeof ErrorCodes;

/** The one error type that crosses module boundaries. */
export class SilkError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'SilkError';
    this.code = code;
    this.status = ErrorCodes[code].status;
  }

  /** The JSON body the HTTP API answers with. */
  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}
