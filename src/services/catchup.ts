/**
 * Catching a session up from the store: inbox pages (after `welcome`, and
 * on request) and a channel's history on a resubscribe with `since`. A
 * catch-up runs while the session holds live deliveries back and keeps
 * client frames for later (see session.ts); it sends what the store returns
 * in bounded pages, pausing whenever half of the session's outbound limit
 * is pending so a long backlog never trips the slow-consumer limit, and
 * then hands the session back to its protocol.
 *
 * The protocol decides what a catch-up consists of and which of its own
 * frames go with it (protocol/v1/handler.ts); this service does the store
 * reads and the paced sending, in no protocol's words.
 */
import type { Logger } from 'pino';
import { MessageDelivery } from '../core/delivery.js';
import { SilkError } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import { RECOVERY_PAGE } from '../core/limits.js';
import type { InboxPage, Store, StoredMessage } from '../core/store.js';
import type { Session } from '../session/session.js';
import type { Inbox } from './inbox.js';

export interface CatchupOptions {
  readonly store: Store;
  readonly inbox: Inbox;
  readonly hub: Hub;
  readonly logger: Logger;
  /** A store call failed. */
  readonly storeError: () => void;
}

export class Catchup {
  readonly #o: CatchupOptions;

  constructor(options: CatchupOptions) {
    this.#o = options;
  }

  /**
   * Run `work` as a catch-up of `s`, then `done(s)` (unless the session
   * closed meanwhile), which handles the client frames that waited. Live
   * deliveries still in the hub's fan-out batches reach the session while it
   * holds back, so the ones the catch-up already sent are dropped rather
   * than sent twice.
   */
  run(s: Session, work: () => Promise<void>, done: (s: Session) => void): void {
    s.beginCatchup();
    work()
      .catch((err: unknown) => {
        this.#o.logger.error({ err, app: s.app, user: s.user, connection: s.id }, 'catch-up failed');
      })
      .finally(() => {
        this.#o.hub.distribute();
        if (s.live) done(s);
      });
  }

  /** A page of the session user's inbox after `after`; undefined when the store failed (logged). */
  async inboxPage(s: Session, after: string | undefined, limit: number): Promise<InboxPage | undefined> {
    try {
      return await this.#o.inbox.page(s.app, s.user, after, limit);
    } catch {
      return undefined;
    }
  }

  /**
   * Send what was published to `channel` after `since`, in pages; true when
   * the history reached back to `since` and every page was read.
   */
  async recover(s: Session, channel: string, since: string): Promise<boolean> {
    let cursor = since;
    for (;;) {
      let page;
      try {
        page = await this.#o.store.history(s.app, channel, cursor, RECOVERY_PAGE);
      } catch (err) {
        this.#o.storeError();
        this.#o.logger.warn(
          { err: err instanceof SilkError ? err.message : err, app: s.app, user: s.user, connection: s.id },
          'store unavailable during catch-up',
        );
        return false;
      }
      // Not found later on means the history was trimmed under us: a gap.
      if (!page.found) return false;
      await this.send(s, page.messages, channel);
      if (!page.more || page.messages.length === 0 || !s.live) return true;
      cursor = page.messages[page.messages.length - 1]!.id;
    }
  }

  /** Queue stored messages on `s`, waiting for its transport to drain whenever half the outbound limit is pending. */
  async send(s: Session, messages: readonly StoredMessage[], channel: string | undefined): Promise<void> {
    const half = s.ctx.limits.maxOutboundBytes / 2;
    for (const m of messages) {
      if (!s.live) return;
      if (s.pending > half) await this.#room(s, half);
      s.direct(MessageDelivery.stored(m, channel));
    }
  }

  async #room(s: Session, half: number): Promise<void> {
    while (s.live && s.pending > half) {
      if (s.needsDrain) await s.drained();
      // Queued but not yet handed to the transport: let the flusher run.
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
}
