/**
 * The ports the core talks through. Each has an in-process implementation
 * (`src/engines/memory`) and, in cluster mode, a Redis one. No library type
 * appears here.
 */
import type { BusMessage } from './message.js';

export type { Ids } from './ids.js';
export type { Store } from './store.js';

/** Carries messages and user signals from the API of any node to the hubs of the nodes that hold their targets. */
export interface Bus {
  /** Send towards every node that may hold one of the targets. */
  publish(m: BusMessage): void;
  /** Receive what is addressed to this node. One handler per bus. */
  onMessage(handler: (m: BusMessage) => void): void;
  close(): Promise<void>;
}

/** One connected device of a user. */
export interface Device {
  readonly connection: string;
  /** Connect time, ISO 8601. */
  readonly since: string;
  readonly transport: string;
  /** Node holding the connection. */
  readonly node: string;
}

/** Live counts of one app, over every node. */
export interface AppStats {
  readonly connections: number;
  readonly users: number;
  readonly channels: number;
  readonly subscriptions: number;
  readonly messagesIn: number;
  readonly messagesOut: number;
}

/** A running node, as the registry lists it. */
export interface NodeInfo {
  readonly id: string;
  /** Where the node is reached (its HTTP and WebSocket base URL). */
  readonly url: string;
  readonly roles: readonly string[];
  /** Start time, ISO 8601. */
  readonly started: string;
  /** Open connections on the node. */
  readonly load: number;
}

/** Who is connected where, and which nodes run. */
export interface Presence {
  devices(app: string, user: string): Promise<readonly Device[]>;
  subscribers(app: string, channel: string): Promise<number>;
  stats(app: string): Promise<AppStats>;
  nodes(): Promise<readonly NodeInfo[]>;
}
