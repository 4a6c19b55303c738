/** The types an application sees. */

/** Connection states: `idle` → `connecting` → `connected` → `disconnected` → `connecting` … or `closed`. */
export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'closed';

/** A message delivered to this client. */
export interface Message<T = unknown> {
  /** Decimal int64, increasing per publishing node. */
  readonly id: string;
  /** Set when the message came through a channel. */
  readonly channel?: string;
  /** The publisher's event name, if it gave one. */
  readonly event?: string;
  readonly data: T;
  /** Stored until acknowledged (inbox) or kept in channel history. */
  readonly durable: boolean;
}

/** What `connected` reports. */
export interface ConnectedInfo {
  readonly connection: string;
  readonly user: string;
  /** Seconds between server pings. */
  readonly heartbeat: number;
  /** Unread inbox messages, or undefined when the server could not read the store. */
  readonly unread: number | undefined;
}

/** What `disconnected` reports. */
export interface DisconnectedInfo {
  /** The WebSocket close code (1006 when the connection dropped without one). */
  readonly code: number;
  /** The close reason: a Silk error code such as `token_expired`, or empty. */
  readonly reason: string;
  /** Whether the client will reconnect by itself. */
  readonly willRetry: boolean;
  /** When it will, after how long. */
  readonly delayMs?: number;
}

/** An error the server reported, with its stable code (docs/errors.md). */
export class SilkClientError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'SilkClientError';
    this.code = code;
  }
}

/** The part of a WebSocket the client uses: the browser's and the `ws` package's both fit. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** A WebSocket class: `globalThis.WebSocket` in browsers, the `ws` package in Node. */
export type SocketFactory = new (url: string) => SocketLike;
