/** The per-connection limits a {@link Session} enforces; each is a setting under `limits` (src/config.ts). */
export interface SessionLimits {
  /** Inbound frames per second before the connection is closed with `flood`. */
  readonly maxFramesPerSecond: number;
  /** Bytes queued for one connection (with its transport's buffer) before it is closed as `slow_consumer`. */
  readonly maxOutboundBytes: number;
  /** Bytes queued for all connections of the node together before the largest are cut (see `SessionContext.shed`). */
  readonly maxOutboundBytesTotal: number;
  /** Bytes of client frames that may wait out a catch-up before it is closed with `request_overflow`. */
  readonly maxDeferredBytes: number;
  /** Channels one connection may be subscribed to. */
  readonly maxSubscriptionsPerConnection: number;
}
