/**
 * Users' inboxes, for every caller that reads or acknowledges them (the
 * HTTP API and the protocol's `ack`, `inbox` and `welcome`): one place maps
 * a store failure to `store_unavailable`, and one place tells every device
 * of the user its new unread count after an acknowledgement.
 */
import type { Logger } from 'pino';
import { SilkError } from '../core/errors.js';
import type { Bus } from '../core/ports.js';
import type { AckResult, InboxPage, InboxSelector, Store } from '../core/store.js';

export interface InboxOptions {
  readonly store: Store;
  readonly bus: Bus;
  readonly logger: Logger;
  readonly events: { storeError(): void };
}

export class Inbox {
  readonly #o: InboxOptions;

  constructor(options: InboxOptions) {
    this.#o = options;
  }

  /**
   * A page of `user`'s inbox, oldest first, after the message `after`.
   * @throws SilkError `store_unavailable`
   */
  async page(app: string, user: string, after: string | undefined, limit: number): Promise<InboxPage> {
    try {
      return await this.#o.store.inbox(app, user, after, limit);
    } catch (err) {
      throw this.#failed(err, app, user, 'inbox read failed', 'the inbox could not be read; retry');
    }
  }

  /**
   * Remove messages from `user`'s inbox (acknowledged or deleted); when any
   * went, every device of the user gets the new unread count (through the
   * bus, so on every node, in order with its messages). `answer`, when
   * given, runs first: a connection that acknowledged gets its reply before
   * the `unread` frame.
   * @throws SilkError `store_unavailable`: nothing was removed
   */
  async ack(app: string, user: string, which: InboxSelector, answer?: (r: AckResult) => void): Promise<AckResult> {
    let r: AckResult;
    try {
      r = await this.#o.store.ack(app, user, which);
    } catch (err) {
      throw this.#failed(err, app, user, 'inbox ack failed', 'the acknowledgement was not stored; retry');
    }
    answer?.(r);
    if (r.removed > 0) this.#o.bus.publish({ kind: 'unread', app, user, count: r.unread });
    return r;
  }

  #failed(err: unknown, app: string, user: string, log: string, message: string): SilkError {
    this.#o.events.storeError();
    this.#o.logger.warn({ err: err instanceof SilkError ? err.message : err, app, user }, log);
    if (err instanceof SilkError && err.code === 'storage_full') return new SilkError('storage_full', `${message} (the store is full)`);
    return new SilkError('store_unavailable', message);
  }
}
