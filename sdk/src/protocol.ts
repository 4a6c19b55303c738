/**
 * What the SDK knows of Silk's wire protocol v1 (docs/protocol.md): close
 * codes and what to do about each, and the frames it reads.
 */

/** Close codes a Silk server (or the network) ends a connection with. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  /** No close frame at all: the network or the server went away. */
  ABNORMAL: 1006,
  INVALID_DATA: 1007,
  FRAME_TOO_LARGE: 1009,
  INTERNAL: 1011,
  TOKEN_EXPIRED: 4001,
  DISCONNECTED: 4003,
  FLOOD: 4008,
  SLOW_CONSUMER: 4009,
  HEARTBEAT_TIMEOUT: 4010,
} as const;

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

/** The policy for a close code (unknown codes are retried with backoff). */
export function policyOf(code: number): RetryPolicy {
  switch (code) {
    case CloseCode.NORMAL:
    case CloseCode.DISCONNECTED:
      return 'never';
    case CloseCode.GOING_AWAY:
      return 'retry-now';
    case CloseCode.FLOOD:
      return 'retry-later';
    case CloseCode.TOKEN_EXPIRED:
      return 'refresh-token';
    default:
      return 'retry';
  }
}

/** A frame from the server, as parsed JSON. */
export interface ServerFrame {
  readonly type: string;
  readonly [field: string]: unknown;
}
