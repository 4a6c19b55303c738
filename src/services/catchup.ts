/**
 * Catching a session up from the store: inbox pages (after `welcome`, and
 * on request) and a channel's history on a resubscribe with `since`. A
 * catch-up runs while the session holds live deliveries back and keeps
 * client frames for later (see session.ts); it sends what the store returns
 * in bounded pages, pausing whenever half of the session's outbound limit
 * is pending so a long backlog never trips the slow-consumer limit, and
 * then hands the session back to its protocol.
 *
 * Every catch-up of the node takes its turns from one
 * {@link CatchupScheduler}: a turn before each store read, frames from the
 * turn's budget before it sends them, the turn given back while it waits for
 * its client to read. So a reconnect storm is served in slices, round robin,
 * with the loop polling I/O between them.
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
import type { CatchupScheduler } from './scheduler.js';

export interface CatchupOptions {
  readonly store: Store;
  readonly inbox: Inbox;
  readonly hub: Hub;
  readonly scheduler: CatchupScheduler;
  readonly logger: Logger;
  /** A store call failed. */
  readonly storeError: () => void;
  /** A channel recovery reached the end of the history, `seconds` after its `subscribe` arrived. */
  readonly recovered?: (seconds: number) => void;
}

export class Catchup {
  readonly #o: CatchupOptions;
  readonly #sched: CatchupScheduler;
  /** When each running catch-up was asked for (performance.now()). */
  readonly #started = new Map<Session, number>();

  constructor(options: CatchupOptions) {
    this.#o = options;
    this.#sched = options.scheduler;
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
    this.#started.set(s, performance.now());
    this.#run(s, work).finally(() => {
      this.#started.delete(s);
      this.#o.hub.distribute();
      if (s.live) done(s);
    });
  }

  async #run(s: Session, work: () => Promise<void>): Promise<void> {
    await this.#sched.enter();
    try {
      // A session that closed while it waited for its turn has nothing to catch up.
      if (s.live) await work();
    } catch (err) {
      this.#o.logger.error({ err, app: s.app, user: s.user, connection: s.id }, 'catch-up failed');
    } finally {
      this.#sched.leave();
    }
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
      if (!page.more || page.messages.length === 0 || !s.live) {
        if (page.position !== undefined) s.recoveredTo(channel, page.position);
        const started = this.#started.get(s);
        if (started !== undefined && s.live) this.#o.recovered?.((performance.now() - started) / 1000);
        return true;
      }
      cursor = page.messages[page.messages.length - 1]!.id;
      // One page per turn: the next read waits at the back of the line.
      await this.#sched.next();
      if (!s.live) return true;
    }
  }

  /**
   * Queue stored messages on `s` as the scheduler's budget allows (waiting
   * for the next turn when it runs out), and waiting for its transport to
   * drain whenever half the outbound limit is pending.
   */
  async send(s: Session, messages: readonly StoredMessage[], channel: string | undefined): Promise<void> {
    const half = s.ctx.limits.maxOutboundBytes / 2;
    let i = 0;
    while (i < messages.length) {
      if (!s.live) return;
      const n = this.#sched.take(Math.min(messages.length - i, RECOVERY_PAGE));
      for (const end = i + n; i < end; i++) {
        if (s.pending > half) {
          await this.#room(s, half);
          if (!s.live) return;
        }
        s.direct(MessageDelivery.stored(messages[i]!, channel));
      }
      if (i < messages.length) await this.#sched.next();
    }
  }

  /** Wait for `s` to read, without holding a turn meanwhile. */
  async #room(s: Session, half: number): Promise<void> {
    this.#sched.leave();
    try {
      while (s.live && s.pending > half) {
        if (s.needsDrain) await s.drained();
        // Queued but not yet handed to the transport: let the flusher run.
        else await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      await this.#sched.enter();
    }
  }
}
