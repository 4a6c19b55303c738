/**
 * Messages: who they go to and how they travel between nodes. What a
 * connection receives is a delivery (delivery.ts).
 */

/** Recipients of one message: exactly one of the three forms. */
export type Target =
  | { readonly users: readonly string[] }
  | { readonly channels: readonly string[] }
  | { readonly all: true };

/**
 * A message on its way from the API to the gateways (the bus payload).
 * `data` is already serialised JSON, so it is encoded once per message.
 */
export interface Envelope {
  readonly app: string;
  readonly id: string;
  readonly target: Target;
  readonly event?: string;
  /** The message's `data`, as JSON text. */
  readonly data: string;
  /** Stored until acknowledged (users) or kept in history (channels). */
  readonly durable?: boolean;
  /** For a durable message to users: each recipient's unread count after it, sent to their devices after the message. */
  readonly unread?: Readonly<Record<string, number>>;
  /** For a durable message to channels: its place in each channel's history (see the store's `WriteResult.positions`). */
  readonly positions?: Readonly<Record<string, number>>;
}

/** Something for every device of one user that is not a message. */
export type UserSignal =
  | { readonly kind: 'unread'; readonly app: string; readonly user: string; readonly count: number }
  | { readonly kind: 'disconnect'; readonly app: string; readonly user: string };

/** What the bus carries. */
export type BusMessage = Envelope | UserSignal;

/** Whether a bus message is a {@link UserSignal}. */
export function isSignal(m: BusMessage): m is UserSignal {
  return (m as UserSignal).kind !== undefined;
}
