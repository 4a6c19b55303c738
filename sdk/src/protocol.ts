/**
 * What the SDK knows of Silk's wire protocol v1 (docs/protocol.md): the
 * close codes and what to do about each come from the server's own table
 * (src/protocol/codes.ts, shared, imports nothing); this file adds the
 * frames it reads.
 */
import { CloseCode as ServerCloseCode, NO_CLOSE_FRAME } from '../../src/protocol/codes.js';

export { policyOf, type RetryPolicy } from '../../src/protocol/codes.js';

/** Close codes a Silk server (or the network) ends a connection with. */
export const CloseCode = {
  ...ServerCloseCode,
  /** No close frame at all: the network or the server went away. */
  ABNORMAL: NO_CLOSE_FRAME,
} as const;

/** A frame from the server, as parsed JSON. */
export interface ServerFrame {
  readonly type: string;
  readonly [field: string]: unknown;
}
