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
}

/** Turns a JSON text into the bytes one transport writes (for example a WebSocket frame). */
export type Encoder = (json: string) => Buffer;

/**
 * One server-to-client frame, serialised once and framed once per transport,
 * then shared by every connection that receives it.
 */
export class Outbound {
  readonly json: string;
  #encoder: Encoder | undefined;
  #bytes: Buffer | undefined;

  constructor(json: string) {
    this.json = json;
  }

  /** The frame as `encoder` writes it, computed on first use. */
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

/** The `message` frame for an envelope, delivered on `channel` if given. */
export function messageFrame(env: Envelope, channel?: string): Outbound {
  let json = '{"type":"message","id":"' + env.id + '"';
  if (channel !== undefined) json += ',"channel":' + JSON.stringify(channel);
  if (env.event !== undefined) json += ',"event":' + JSON.stringify(env.event);
  json += ',"data":' + env.data + '}';
  return new Outbound(json);
}
