/**
 * Messages: who they go to, how they travel between nodes, and the bytes a
 * connection receives.
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

/** Turns a JSON text into the bytes one transport writes (for example a WebSocket frame). */
export type Encoder = (json: string) => Buffer;

/**
 * One server-to-client frame, serialised once and framed once per transport,
 * then shared by every connection that receives it.
 */
export class Outbound {
  readonly json: string;
  /** For message frames: what identifies the delivery (channel and id), to drop a repeat of it. */
  readonly key: string | undefined;
  #encoder: Encoder | undefined;
  #bytes: Buffer | undefined;

  constructor(json: string, key?: string) {
    this.json = json;
    this.key = key;
  }

  /** The frame as `encoder` writes it; the first encoder's bytes are kept and shared. */
  bytes(encoder: Encoder): Buffer {
    if (this.#encoder === encoder) return this.#bytes as Buffer;
    const b = encoder(this.json);
    if (this.#encoder === undefined) {
      this.#encoder = encoder;
      this.#bytes = b;
    }
    return b;
  }
}

/**
 * Consecutive frames for the same connections (one channel's subscribers),
 * joined once per transport into one buffer that every connection writes
 * as is: a fan-out round costs one array push per connection, not one per
 * frame, and no copy per connection.
 */
export class FrameBatch {
  readonly frames: Outbound[];
  #encoder: Encoder | undefined;
  #bytes: Buffer | undefined;

  constructor(first: Outbound) {
    this.frames = [first];
  }

  /** The frames as `encoder` writes them, back to back; joined once per batch for the first encoder. */
  bytes(encoder: Encoder): Buffer {
    if (this.#encoder === encoder) return this.#bytes as Buffer;
    const parts = this.frames.map((f) => f.bytes(encoder));
    const b = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    if (this.#encoder === undefined) {
      this.#encoder = encoder;
      this.#bytes = b;
    }
    return b;
  }
}

function frame(id: string, channel: string | undefined, event: string | undefined, durable: boolean, data: string): Outbound {
  let json = '{"type":"message","id":"' + id + '"';
  if (channel !== undefined) json += ',"channel":' + JSON.stringify(channel);
  if (event !== undefined) json += ',"event":' + JSON.stringify(event);
  if (durable) json += ',"durable":true';
  json += ',"data":' + data + '}';
  return new Outbound(json, channel === undefined ? id : channel + '\n' + id);
}

/** The `message` frame for an envelope, delivered on `channel` if given. */
export function messageFrame(env: Envelope, channel?: string): Outbound {
  return frame(env.id, channel, env.event, env.durable === true, env.data);
}

/** The `message` frame for a stored (durable) message: from an inbox, or from `channel`'s history. */
export function storedFrame(m: { id: string; event?: string; data: string }, channel?: string): Outbound {
  return frame(m.id, channel, m.event, true, m.data);
}

/** `{"type":"unread","count":n}`: the user's unread count changed. */
export function unreadFrame(count: number): Outbound {
  return new Outbound('{"type":"unread","count":' + count + '}');
}
