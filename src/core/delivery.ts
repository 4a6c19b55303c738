/**
 * What the hub hands to connections: deliveries, in no protocol's words.
 * A delivery is encoded once per encoding in use (a protocol's frames in one
 * framing: protocol v1 as WebSocket text frames, say) and the bytes are
 * shared by every connection of that encoding, as centrifuge's prepared
 * cache does per protocol; a second framing keeps the encode-once property.
 *
 * Each encoding, and each protocol's text form, takes a slot of the cache
 * ({@link newSlot}); the first two slots are fields, so the common case of
 * one protocol and one framing costs no array per delivery.
 */
import type { Envelope } from './message.js';

/** Turns a delivery into the bytes connections of one kind write. */
export interface Encoding {
  /** This encoding's slot in every delivery's cache ({@link newSlot}). */
  readonly slot: number;
  /** The bytes of `d`. Called once per delivery (the result is kept in its slot). */
  encode(d: Delivery): Buffer;
}

let slots = 0;

/** A cache slot of its own, for an encoding or a protocol's text form. Take it once, at module load. */
export function newSlot(): number {
  return slots++;
}

/** One thing for a connection: a message, an unread count, or a frame of the protocol's own. */
export abstract class Delivery {
  abstract readonly kind: 'message' | 'unread' | 'frame';
  #c0: unknown;
  #c1: unknown;
  #more: unknown[] | undefined;

  /** What `make` returns for this delivery, made on the first call for `slot` and kept. */
  memo<T>(slot: number, make: (d: this) => T): T {
    if (slot === 0) return (this.#c0 ??= make(this)) as T;
    if (slot === 1) return (this.#c1 ??= make(this)) as T;
    const more = (this.#more ??= []);
    return (more[slot - 2] ??= make(this)) as T;
  }

  /** This delivery in `enc`, encoded on first use and shared. */
  bytes(enc: Encoding): Buffer {
    const s = enc.slot;
    if (s === 0) return (this.#c0 ??= enc.encode(this)) as Buffer;
    if (s === 1) return (this.#c1 ??= enc.encode(this)) as Buffer;
    const more = (this.#more ??= []);
    return (more[s - 2] ??= enc.encode(this)) as Buffer;
  }
}

/** A message, from the bus or from the store. */
export class MessageDelivery extends Delivery {
  readonly kind = 'message' as const;
  readonly id: string;
  /** The channel it came through; absent for a message to the user. */
  readonly channel: string | undefined;
  readonly event: string | undefined;
  readonly durable: boolean;
  /** The message's `data`, as JSON text. */
  readonly data: string;
  /** What identifies the delivery (channel and id), to drop a repeat of it. */
  readonly key: string;
  /** A live durable channel message's place in the channel's history (see the store's `WriteResult.positions`). */
  readonly position: number | undefined;

  constructor(id: string, channel: string | undefined, event: string | undefined, durable: boolean, data: string, position?: number) {
    super();
    this.id = id;
    this.channel = channel;
    this.event = event;
    this.durable = durable;
    this.data = data;
    this.key = channel === undefined ? id : channel + '\n' + id;
    this.position = position;
  }

  /** The delivery of an envelope, on `channel` if given. */
  static of(env: Envelope, channel?: string): MessageDelivery {
    return new MessageDelivery(env.id, channel, env.event, env.durable === true, env.data, channel === undefined ? undefined : env.positions?.[channel]);
  }

  /** The delivery of a stored (durable) message: from an inbox, or from `channel`'s history. */
  static stored(m: { readonly id: string; readonly event?: string; readonly data: string }, channel?: string): MessageDelivery {
    return new MessageDelivery(m.id, channel, m.event, true, m.data);
  }
}

/** The user's unread count changed. */
export class UnreadDelivery extends Delivery {
  readonly kind = 'unread' as const;

  constructor(readonly count: number) {
    super();
  }
}

/**
 * A frame a protocol made itself (a reply, a welcome, a heartbeat ping),
 * as its text; only connections of that protocol get it.
 */
export class ProtocolFrame extends Delivery {
  readonly kind = 'frame' as const;

  constructor(readonly text: string) {
    super();
  }
}

/**
 * Consecutive message deliveries for the same connections (one channel's
 * subscribers), joined once per encoding into one buffer that every
 * connection writes as is: a fan-out round costs one array push per
 * connection, not one per message, and no copy per connection.
 */
export class Batch {
  readonly deliveries: MessageDelivery[];
  #c0: Buffer | undefined;
  #c1: Buffer | undefined;
  #more: Buffer[] | undefined;

  constructor(first: MessageDelivery) {
    this.deliveries = [first];
  }

  /** The deliveries in `enc`, back to back; joined once per batch and encoding. */
  bytes(enc: Encoding): Buffer {
    const s = enc.slot;
    if (s === 0) return (this.#c0 ??= this.#join(enc));
    if (s === 1) return (this.#c1 ??= this.#join(enc));
    const more = (this.#more ??= []);
    return (more[s - 2] ??= this.#join(enc));
  }

  #join(enc: Encoding): Buffer {
    const d = this.deliveries;
    if (d.length === 1) return d[0]!.bytes(enc);
    return Buffer.concat(d.map((x) => x.bytes(enc)));
  }
}

/** Every kind of delivery, for code that switches on `kind`. */
export type AnyDelivery = MessageDelivery | UnreadDelivery | ProtocolFrame;
