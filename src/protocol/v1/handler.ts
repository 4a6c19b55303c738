/**
 * Protocol v1 on a session (docs/protocol.md): the welcome catch-up, what
 * each client frame does, and the heartbeat's decisions. It speaks through
 * the session and the services; it knows no transport.
 */
import type { Logger } from 'pino';
import { allows, isValidChannel } from '../../core/channels.js';
import type { ErrorCode, SilkError } from '../../core/errors.js';
import type { Hub } from '../../core/hub.js';
import type { InboxSelector } from '../../core/store.js';
import type { Catchup } from '../../services/catchup.js';
import type { Inbox } from '../../services/inbox.js';
import type { Protocol, Session } from '../../session/session.js';
import type { Transport } from '../../session/transport.js';
import { encodingFor, errorFrame, PING, PONG, reconnectFrame, replyFrame, welcomeFrame } from './frames.js';
import { FrameError, isPlainPong, parseClientFrame, type ClientFrame } from './parse.js';

export interface ProtocolV1Options {
  readonly hub: Hub;
  readonly inbox: Inbox;
  readonly catchup: Catchup;
  readonly heartbeatSeconds: number;
  /** Inbox messages sent after `welcome`, and the page of an `inbox` request without `limit`. */
  readonly inboxPageSize: number;
  readonly logger: Logger;
  /** A client frame was answered with an error. */
  readonly frameError: (code: ErrorCode) => void;
}

export class ProtocolV1 implements Protocol {
  readonly #o: ProtocolV1Options;
  readonly #heartbeatMs: number;
  readonly #resume = (s: Session): void => this.#caughtUp(s);

  constructor(options: ProtocolV1Options) {
    this.#o = options;
    this.#heartbeatMs = options.heartbeatSeconds * 1000;
  }

  encoding(transport: Transport) {
    return encodingFor(transport.framing);
  }

  /** Send `welcome` with the unread count, then the oldest page of the inbox. */
  open(s: Session): void {
    const { catchup, heartbeatSeconds, inboxPageSize } = this.#o;
    catchup.run(
      s,
      async () => {
        const page = await catchup.inboxPage(s, undefined, inboxPageSize);
        if (page === undefined) {
          s.greet(welcomeFrame(s.id, s.user, heartbeatSeconds, undefined));
          s.direct(errorFrame('store_unavailable', 'the inbox could not be read; ask again with an inbox request'));
          return;
        }
        s.greet(welcomeFrame(s.id, s.user, heartbeatSeconds, { unread: page.unread, page: page.messages.length, more: page.more }));
        await catchup.send(s, page.messages, undefined);
      },
      this.#resume,
    );
  }

  receive(s: Session, data: Buffer, binary: boolean): void {
    if (binary) return this.#reject(s, new FrameError('invalid_request', 'binary frames are not part of protocol v1'));
    // A pong has nothing to do but `lastSeen`, even while catching up.
    if (isPlainPong(data)) return;
    const text = data.toString();
    // While catching up from the store, requests wait their turn (up to maxDeferredBytes of them).
    if (s.defer(text, data.length)) return;
    this.#handle(s, text);
  }

  beat(s: Session, now: number, resumedAt: number): void {
    if (!s.live) return;
    // Before `welcome` the client has had nothing to answer: the wait is the store's inbox read,
    // which its own timeout bounds (a Redis command gives up after 3 s).
    if (s.state === 'opening') return;
    if (now >= s.expires) return s.end('token_expired');
    // A live client answers each ping at once; 1.5 intervals of silence leaves room for slow links.
    // Silence while this process was stalled is not the client's: it counts from the resume.
    if (now - Math.max(s.lastSeen, resumedAt) > this.#heartbeatMs * 1.5) return s.end('heartbeat_timeout');
    // Not held back by a catch-up as messages are: a ping the client never saw could not be answered.
    s.direct(PING);
  }

  goingAway(s: Session, afterMs: number): void {
    s.direct(reconnectFrame(afterMs));
  }

  /** A catch-up ended: handle the client frames that waited, until one starts another catch-up. */
  #caughtUp(s: Session): void {
    const waiting = s.endCatchup();
    for (let i = 0; i < waiting.length; i++) {
      if (!s.live) return;
      if (s.catchingUp) {
        for (; i < waiting.length; i++) s.defer(waiting[i]!, Buffer.byteLength(waiting[i]!));
        return;
      }
      this.#handle(s, waiting[i]!);
    }
  }

  #handle(s: Session, text: string): void {
    let frame: ClientFrame;
    try {
      frame = parseClientFrame(text);
    } catch (err) {
      return this.#reject(s, err as FrameError);
    }
    switch (frame.type) {
      case 'subscribe':
        return this.#subscribe(s, frame.id, frame.channel, frame.since);
      case 'unsubscribe':
        if (!isValidChannel(frame.channel)) {
          return this.#reject(s, new FrameError('invalid_channel', 'invalid channel name', frame.id));
        }
        this.#o.hub.unsubscribe(s, frame.channel);
        return s.direct(replyFrame(frame.id));
      case 'ack':
        return this.#ack(s, frame.id, frame.which);
      case 'inbox':
        return this.#inbox(s, frame.id, frame.after, frame.limit);
      case 'ping':
        return s.direct(frame.id === undefined ? PONG : replyFrame(frame.id));
      case 'pong':
        return;
    }
  }

  #ack(s: Session, id: number, which: InboxSelector): void {
    // Every device of the user learns the new count (this one too, after the reply, in order with its messages).
    this.#o.inbox
      .ack(s.app, s.user, which, (r) => s.direct(replyFrame(id, { removed: r.removed, unread: r.unread })))
      .catch((err: SilkError) => s.direct(errorFrame(err.code, err.message, id)));
  }

  /** Answer an `inbox` request: a page after `after`, then the reply with `unread` and `more`. */
  #inbox(s: Session, id: number, after: string | undefined, limit: number | undefined): void {
    const { catchup, inboxPageSize } = this.#o;
    catchup.run(
      s,
      async () => {
        const page = await catchup.inboxPage(s, after, limit ?? inboxPageSize);
        if (page === undefined) return s.direct(errorFrame('store_unavailable', 'the inbox could not be read', id));
        await catchup.send(s, page.messages, undefined);
        s.direct(replyFrame(id, { count: page.messages.length, unread: page.unread, more: page.more }));
      },
      this.#resume,
    );
  }

  #subscribe(s: Session, id: number, channel: unknown, since: string | undefined): void {
    if (!isValidChannel(channel)) return this.#reject(s, new FrameError('invalid_channel', 'invalid channel name', id));
    if (!allows(s.patterns, channel)) {
      return this.#reject(s, new FrameError('forbidden_channel', `the token does not allow channel ${channel}`, id));
    }
    if (s.subscribe(channel) === 'too_many') {
      const max = s.ctx.limits.maxSubscriptionsPerConnection;
      return this.#reject(s, new FrameError('too_many_subscriptions', `at most ${max} subscriptions`, id));
    }
    if (since === undefined) return s.direct(replyFrame(id));
    // After the hub subscribed the session: what was published after `since`, then the reply.
    const { catchup } = this.#o;
    catchup.run(
      s,
      async () => {
        const recovered = await catchup.recover(s, channel, since);
        s.direct(replyFrame(id, { recovered }));
      },
      this.#resume,
    );
  }

  #reject(s: Session, err: FrameError): void {
    this.#o.frameError(err.code);
    s.direct(errorFrame(err.code, err.message, err.requestId));
  }
}
