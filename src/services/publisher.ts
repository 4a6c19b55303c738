/**
 * The publish pipeline, for every caller that sends messages (the HTTP
 * API today; push tasks and other protocols later): check a request, give
 * it an id, store it when it is durable or carries an idempotency key (the
 * answer waits for the store), and put it on the bus.
 */
import type { Logger } from 'pino';
import { SilkError } from '../core/errors.js';
import type { Envelope } from '../core/message.js';
import type { Bus, Ids } from '../core/ports.js';
import { validatePublish, type PublishLimits, type PublishRequest } from '../core/publish.js';
import type { Store, StoredMessage, WriteResult } from '../core/store.js';

export interface PublisherLimits extends PublishLimits {
  readonly maxBatchMessages: number;
}

/** What the publisher reports, for metrics and the hub's counters. */
export interface PublisherEvents {
  /** A message of `app` was accepted for delivery (not a repeat). */
  accepted(app: string): void;
  /** A durable message was stored, dropping `evicted` older ones from full inboxes. */
  stored(evicted: number): void;
  storeError(): void;
}

export interface PublisherOptions {
  readonly ids: Ids;
  readonly store: Store;
  readonly bus: Bus;
  readonly limits: PublisherLimits;
  readonly logger: Logger;
  readonly events: PublisherEvents;
}

/** The outcome of one publish. */
export interface Sent {
  readonly id: string;
  /** A repeated idempotency key: nothing new was stored or sent, `id` is the first publish's. */
  readonly duplicate: boolean;
}

/** The bus envelope of a checked message, with what its store write said (unread counts, history places). */
function envelope(app: string, id: string, p: PublishRequest, written?: WriteResult): Envelope {
  return {
    app,
    id,
    target: p.target,
    data: p.data,
    ...(p.event !== undefined ? { event: p.event } : {}),
    ...(p.durable ? { durable: true } : {}),
    ...(written !== undefined && written.unread.size > 0 ? { unread: Object.fromEntries(written.unread) } : {}),
    ...(written !== undefined && written.positions.size > 0 ? { positions: Object.fromEntries(written.positions) } : {}),
  };
}

export class Publisher {
  readonly #o: PublisherOptions;

  constructor(options: PublisherOptions) {
    this.#o = options;
  }

  /**
   * Check one publish body (the shape of `POST /v1/apps/{app}/messages`).
   * @throws SilkError `invalid_request`, `invalid_target`, `invalid_channel` or `payload_too_large`
   */
  validate(body: unknown): PublishRequest {
    return validatePublish(body, this.#o.limits);
  }

  /**
   * Check a list of publish bodies: one bad message fails them all, its
   * error naming its index.
   * @throws SilkError as {@link validate}, and `invalid_request` for a list that is empty or over `maxBatchMessages`
   */
  validateBatch(list: unknown): PublishRequest[] {
    const max = this.#o.limits.maxBatchMessages;
    if (!Array.isArray(list) || list.length === 0 || list.length > max) {
      throw new SilkError('invalid_request', `\`messages\` must be an array of 1–${max} messages`);
    }
    return list.map((m, i) => {
      try {
        return this.validate(m);
      } catch (err) {
        if (err instanceof SilkError) throw new SilkError(err.code, `messages[${i}]: ${err.message}`);
        throw err;
      }
    });
  }

  /**
   * Send one checked message.
   * @throws SilkError `store_unavailable` (nothing stored: retry), `storage_full` (nothing stored: the disk is full), `idempotency_key_in_use`
   */
  async send(app: string, p: PublishRequest): Promise<Sent> {
    await this.#o.ids.ensure(1);
    if (!p.durable && p.idempotencyKey === undefined) return { id: this.#sendNow(app, p), duplicate: false };
    return this.#store(app, p);
  }

  /**
   * Send checked messages in order. Ids are taken in order as each send
   * starts; the sends run together (durable ones share group commits).
   */
  async sendBatch(app: string, list: readonly PublishRequest[]): Promise<{ ids: string[]; duplicates: number }> {
    await this.#o.ids.ensure(list.length);
    if (list.every((p) => !p.durable && p.idempotencyKey === undefined)) {
      // Nothing to store: every message goes on the bus now, in order, without a promise each.
      return { ids: list.map((p) => this.#sendNow(app, p)), duplicates: 0 };
    }
    // A key the batch already used is a repeat of that message, whatever the store (not a publish racing it).
    const byKey = new Map<string, Promise<Sent>>();
    const results = await Promise.all(
      list.map((p) => {
        const key = p.idempotencyKey;
        if (key === undefined) return this.send(app, p);
        const first = byKey.get(key);
        if (first !== undefined) return first.then((r) => ({ id: r.id, duplicate: true }));
        const sent = this.send(app, p);
        byKey.set(key, sent);
        return sent;
      }),
    );
    return { ids: results.map((r) => r.id), duplicates: results.filter((r) => r.duplicate).length };
  }

  /** An ephemeral message without an idempotency key: an id from those in hand, then the bus. */
  #sendNow(app: string, p: PublishRequest): string {
    const id = this.#o.ids.next().toString();
    this.#o.events.accepted(app);
    this.#o.bus.publish(envelope(app, id, p));
    return id;
  }

  /** A durable message, or one with an idempotency key: stored before it goes on the bus. */
  async #store(app: string, p: PublishRequest): Promise<Sent> {
    const id = this.#o.ids.next().toString();
    const at = Date.now();
    const message: StoredMessage = {
      id,
      data: p.data,
      at,
      ...(p.event !== undefined ? { event: p.event } : {}),
      ...(p.ttl !== undefined ? { expires: at + p.ttl * 1000 } : {}),
    };
    const t = p.target;
    let w;
    try {
      w = await this.#o.store.write({
        app,
        message,
        ...(p.durable && 'users' in t ? { users: t.users } : {}),
        ...(p.durable && 'channels' in t ? { channels: t.channels } : {}),
        ...(p.idempotencyKey !== undefined ? { idempotencyKey: p.idempotencyKey } : {}),
      });
    } catch (err) {
      if (err instanceof SilkError && err.code === 'idempotency_key_in_use') throw err;
      this.#o.events.storeError();
      if (err instanceof SilkError && err.code === 'storage_full') {
        this.#o.logger.warn({ code: err.code, app, id }, 'store write failed: disk full');
        throw new SilkError('storage_full', 'the message was not stored: the store is full; retry later');
      }
      this.#o.logger.warn({ err, app, id }, 'store write failed');
      throw new SilkError('store_unavailable', 'the message was not stored; retry');
    }
    if (w.duplicate) return { id: w.id, duplicate: true };
    if (p.durable) this.#o.events.stored(w.evicted);
    this.#o.events.accepted(app);
    this.#o.bus.publish(envelope(app, w.id, p, w));
    return { id: w.id, duplicate: false };
  }
}
