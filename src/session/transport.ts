/**
 * The Transport port: what a session needs of the connection it runs on,
 * in Silk's words. A transport only moves bytes a session has already
 * encoded, and ends the connection with a {@link Disconnect}; it knows no
 * protocol frame (as centrifuge's `Transport` writes encoded frames and
 * closes with a `Disconnect`). The WebSocket transport is
 * `src/transports/websocket/`.
 */
import type { Delivery } from '../core/delivery.js';
import type { Disconnect } from '../protocol/codes.js';

/** How one kind of transport frames a protocol's text: a WebSocket text frame, an SSE event. */
export interface Framing {
  /** Its name, unique per framing (an encoding is made once per protocol and framing). */
  readonly name: string;
  /** The bytes of `text`, the protocol's form of `d`. */
  frame(text: string, d: Delivery): Buffer;
}

export interface Transport {
  /** Transport name for presence (`GET …/users/{user}` lists it per device), such as `websocket`. */
  readonly name: string;
  readonly framing: Framing;
  /** Write bytes in the framing, all at once. Called at most once per flush. */
  write(bytes: Buffer): void;
  /** Bytes written and not yet handed to the operating system. */
  readonly buffered: number;
  /** Whether the transport asks writers to wait for it to drain. */
  readonly needsDrain: boolean;
  /** Resolves once what is buffered drained, or the connection closed. */
  drained(): Promise<void>;
  /** After the session's first flush (the WebSocket transport sends the `101` it held back with it). */
  opened(): void;
  /** End the connection: what was written goes first, then the transport's form of `d` (a close frame). */
  disconnect(d: Disconnect): void;
  /** Cut the connection at once. */
  terminate(): void;
}
