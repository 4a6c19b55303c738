/**
 * Catching a connection up from the store: its inbox after `welcome`, more
 * inbox pages on request, and a channel's history on a resubscribe with
 * `since`. Each runs while the connection holds live frames back (see
 * connection.ts), sends what the store returns in bounded pages, waiting
 * for the socket to drain between pages so a long backlog never trips the
 * slow-consumer limit, and hands the connection back to the gateway.
 */
import { once } from 'node:events';
import type { Logger } from 'pino';
import { SilkError } from '../core/errors.js';
import { storedFrame } from '../core/message.js';
import type { Store, StoredMessage } from '../core/store.js';
import type { WsConnection } from './connection.js';
import { errorFrame, replyFrame, welcomeFrame } from './protocol.js';

/** Messages read from the store per page of a recovery. */
const RECOVERY_PAGE = 100;

export interface CatchupOptions {
  readonly store: Store;
  readonly heartbeatSeconds: number;
  readonly inboxPageSize: number;
  readonly maxOutboundBytes: number;
  readonly logger: Logger;
  /** The catch-up of `c` is over: handle the requests that waited. */
  readonly done: (c: WsConnection) => void;
  /** A store call failed. */
  readonly storeError: () => void;
}

export class Catchups {
  readonly #o: CatchupOptions;

  constructor(options: CatchupOptions) {
    this.#o = options;
  }

  /** Send `welcome` with the unread count, then the oldest page of the inbox. */
  welcome(c: WsConnection): void {
    c.beginCatchup(true);
    this.#run(c, async () => {
      let page;
      try {
        page = await this.#o.store.inbox(c.app, c.user, undefined, this.#o.inboxPageSize);
      } catch (err) {
        this.#failed(c, err);
        c.greet(welcomeFrame(c.id, c.user, this.#o.heartbeatSeconds, undefined));
        c.direct(errorFrame('store_unavailable', 'the inbox could not be read; ask again with an inbox request'));
        return;
      }
      c.greet(welcomeFrame(c.id, c.user, this.#o.heartbeatSeconds, { unread: page.unread, page: page.messages.length, more: page.more }));
      await this.#send(c, page.messages, undefined);
    });
  }

  /** Answer an `inbox` request: a page after `after`, then the reply with `unread` and `more`. */
  inbox(c: WsConnection, id: number, after: string | undefined, limit: number | undefined): void {
    c.beginCatchup();
    this.#run(c, async () => {
      let page;
      try {
        page = await this.#o.store.inbox(c.app, c.user, after, limit ?? this.#o.inboxPageSize);
      } catch (err) {
        this.#failed(c, err);
        c.direct(errorFrame('store_unavailable', 'the inbox could not be read', id));
        return;
      }
      await this.#send(c, page.messages, undefined);
      c.direct(replyFrame(id, { count: page.messages.length, unread: page.unread, more: page.more }));
    });
  }

  /**
   * After the hub subscribed `c` to `channel`: send what was published
   * after `since`, then the reply with `recovered`.
   */
  recover(c: WsConnection, id: number, channel: string, since: string): void {
    c.beginCatchup();
    this.#run(c, async () => {
      let cursor = since;
      let recovered = true;
      for (;;) {
        let page;
        try {
          page = await this.#o.store.history(c.app, channel, cursor, RECOVERY_PAGE);
        } catch (err) {
          this.#failed(c, err);
          recovered = false;
          break;
        }
        // Not found later on means the history was trimmed under us: a gap.
        if (!page.found) {
          recovered = false;
          break;
        }
        await this.#send(c, page.messages, channel);
        if (!page.more || page.messages.length === 0 || !c.live) break;
        cursor = page.messages[page.messages.length - 1]!.id;
      }
      c.direct(replyFrame(id, { recovered }));
    });
  }

  #run(c: WsConnection, work: () => Promise<void>): void {
    work()
      .catch((err: unknown) => {
        this.#o.logger.error({ err, app: c.app, user: c.user, connection: c.id }, 'catch-up failed');
      })
      .finally(() => {
        if (c.live) this.#o.done(c);
      });
  }

  #failed(c: WsConnection, err: unknown): void {
    this.#o.storeError();
    this.#o.logger.warn(
      { err: err instanceof SilkError ? err.message : err, app: c.app, user: c.user, connection: c.id },
      'store unavailable during catch-up',
    );
  }

  /** Queue `messages`, waiting for the socket to drain whenever half the outbound limit is pending. */
  async #send(c: WsConnection, messages: readonly StoredMessage[], channel: string | undefined): Promise<void> {
    for (const m of messages) {
      if (!c.live) return;
      if (c.pending > this.#o.maxOutboundBytes / 2) await this.#room(c);
      c.direct(storedFrame(m, channel));
    }
  }

  async #room(c: WsConnection): Promise<void> {
    while (c.live && c.pending > this.#o.maxOutboundBytes / 2) {
      const sock = c.sock;
      if (sock === null) return;
      if (sock.writableNeedDrain) {
        await Promise.race([once(sock, 'drain'), once(sock, 'close')]).catch(() => undefined);
      } else {
        // Queued but not yet handed to the socket: let the flusher run.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  }
}
