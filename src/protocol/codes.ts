/**
 * Close codes and disconnects of Silk's wire protocol, shared by the server
 * and the SDK (sdk/src/protocol.ts imports this file): the one place a close
 * code, its reason text and what a client should do about it are written.
 *
 * It imports nothing, so the SDK can take it into a browser bundle, and
 * `test/unit/protocol-codes.test.ts` checks the server's disconnects against
 * the client's policies.
 */

/** Close codes a Silk server ends a connection with (RFC 6455 §7.4; 4000–4999 are Silk's). */
export const CloseCode = {
  /** The client or server ended the session normally. */
  NORMAL: 1000,
  /** The node is draining (restart, upgrade): reconnect, ideally elsewhere. */
  GOING_AWAY: 1001,
  /** The client broke the WebSocket protocol (an unmasked frame, a bad opcode); sent by `ws`. */
  PROTOCOL_ERROR: 1002,
  /** A text frame was not valid UTF-8; sent by `ws`. */
  INVALID_DATA: 1007,
  /** A frame was larger than `limits.maxFrameBytes`. */
  FRAME_TOO_LARGE: 1009,
  /** Unexpected server failure: reconnect with backoff. */
  INTERNAL: 1011,
  /** The connection token expired: fetch a fresh token, then reconnect. */
  TOKEN_EXPIRED: 4001,
  /** The app backend disconnected this user: do not reconnect on your own. */
  DISCONNECTED: 4003,
  /** Too many inbound frames per second: reconnect later. */
  FLOOD: 4008,
  /** The client read too slowly and its outbound queue overflowed: reconnect. */
  SLOW_CONSUMER: 4009,
  /** No frame from the client for 1.5 heartbeat intervals, seen at its once-per-interval visit. */
  HEARTBEAT_TIMEOUT: 4010,
  /** The client sent more than `limits.maxDeferredBytes` of frames while the server caught it up: reconnect later. */
  REQUEST_OVERFLOW: 4011,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** The code a client sees when a connection ends without a close frame (RFC 6455 §7.1.5); never sent. */
export const NO_CLOSE_FRAME = 1006;

/** What a client does after a close. */
export type RetryPolicy =
  /** Reconnect with backoff. */
  | 'retry'
  /** Reconnect soon: the node is draining, another will take us. */
  | 'retry-now'
  /** Reconnect, but wait longer first (we were too fast). */
  | 'retry-later'
  /** Fetch a fresh token, then reconnect. */
  | 'refresh-token'
  /** Stay closed. */
  | 'never';

/** The policy for a close code (codes not listed, 1006 included, are retried with backoff). */
export function policyOf(code: number): RetryPolicy {
  switch (code) {
    case CloseCode.NORMAL:
    case CloseCode.DISCONNECTED:
      return 'never';
    case CloseCode.GOING_AWAY:
      return 'retry-now';
    case CloseCode.FLOOD:
    case CloseCode.REQUEST_OVERFLOW:
      return 'retry-later';
    case CloseCode.TOKEN_EXPIRED:
      return 'refresh-token';
    default:
      return 'retry';
  }
}

/**
 * How the server ends a connection, whatever carries it: the close code,
 * the reason text (an error code of docs/errors.md, or empty where the
 * WebSocket library closes by itself), and whether the client should come
 * back. Each transport maps it to its own ending (a WebSocket close frame).
 */
export interface Disconnect {
  readonly code: CloseCode;
  readonly reason: string;
  readonly reconnect: boolean;
}

/** Every disconnect the server starts, by reason. */
export const Disconnects = {
  draining: { code: CloseCode.GOING_AWAY, reason: 'draining', reconnect: true },
  payload_too_large: { code: CloseCode.FRAME_TOO_LARGE, reason: '', reconnect: true },
  internal: { code: CloseCode.INTERNAL, reason: 'internal', reconnect: true },
  token_expired: { code: CloseCode.TOKEN_EXPIRED, reason: 'token_expired', reconnect: true },
  disconnected: { code: CloseCode.DISCONNECTED, reason: 'disconnected', reconnect: false },
  flood: { code: CloseCode.FLOOD, reason: 'flood', reconnect: true },
  slow_consumer: { code: CloseCode.SLOW_CONSUMER, reason: 'slow_consumer', reconnect: true },
  heartbeat_timeout: { code: CloseCode.HEARTBEAT_TIMEOUT, reason: 'heartbeat_timeout', reconnect: true },
  request_overflow: { code: CloseCode.REQUEST_OVERFLOW, reason: 'request_overflow', reconnect: true },
} as const satisfies Record<string, Disconnect>;
export type DisconnectReason = keyof typeof Disconnects;
