/**
 * Prometheus metrics (`GET /metrics`), all prefixed `silk_`.
 *
 * Hot-path counts live in plain integers (the hub's per-app counters and the
 * maps below) and are read when Prometheus scrapes, so delivering a message
 * never touches a metric object. The one histogram, the flush delay, gets
 * one wait in 16 (the flusher samples them).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ErrorCode } from './core/errors.js';
import type { Hub } from './core/hub.js';
import type { GatewayEvents } from './gateway/gateway.js';
import type { CatchupScheduler } from './services/scheduler.js';

/** Default collectors whose cost grows with the connections (see the constructor). */
const O_N_DEFAULTS = [
  'silk_process_open_fds',
  'silk_nodejs_active_handles',
  'silk_nodejs_active_handles_total',
  'silk_nodejs_active_resources',
  'silk_nodejs_active_resources_total',
];

/** What the metrics read off the gateway at scrape time. */
export interface GatewayGauges {
  readonly written: { writes: number; frames: number };
  readonly pacing: number;
  readonly outboundBytes: number;
  readonly shed: number;
}

export class Metrics implements GatewayEvents {
  readonly registry = new Registry();
  readonly #frameErrors = new Map<string, number>();
  readonly #disconnects = new Map<string, number>();
  #opened = 0;
  #stored = 0;
  #evicted = 0;
  #storeErrors = 0;
  #busReceived = 0;
  readonly #flushDelay: Histogram;
  readonly #recovery: Histogram;
  #scheduler: CatchupScheduler | null = null;
  #gateway: GatewayGauges | null = null;

  constructor(hub: Hub, apps: () => readonly string[]) {
    hub.listen({
      peer: (_p, added) => {
        if (added) this.#opened++;
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'silk_', eventLoopMonitoringPrecision: 10 });
    // These walk every handle or file descriptor of the process on each scrape, in one turn of the
    // loop: 27 ms a scrape at 10,000 connections, growing with them. Connections are counted by
    // silk_connections; a process's descriptors are better read from outside (docs/http-api.md).
    for (const name of O_N_DEFAULTS) this.registry.removeSingleMetric(name);
    const perApp = (name: string, help: string, read: (app: string) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['app'],
        registers: [this.registry],
        collect() {
          for (const app of apps()) this.set({ app }, read(app));
        },
      });
    };
    perApp('silk_connections', 'Open client connections on this node.', (a) => hub.counters(a).connections);
    perApp('silk_users', 'Distinct users connected to this node.', (a) => hub.counters(a).users);
    perApp('silk_channels', 'Channels with at least one subscriber on this node.', (a) => hub.counters(a).channels);
    perApp('silk_subscriptions', 'Channel subscriptions on this node.', (a) => hub.counters(a).subscriptions);
    const counterFrom = (name: string, help: string, read: (app: string) => number): void => {
      const seen = new Map<string, number>();
      new Counter({
        name,
        help,
        labelNames: ['app'],
        registers: [this.registry],
        collect() {
          for (const app of apps()) {
            const now = read(app);
            this.inc({ app }, now - (seen.get(app) ?? 0));
            seen.set(app, now);
          }
        },
      });
    };
    counterFrom('silk_messages_published_total', 'Messages accepted by this node’s API.', (a) => hub.counters(a).messagesIn);
    counterFrom('silk_messages_delivered_total', 'Message frames queued to connections on this node.', (a) => hub.counters(a).messagesOut);
    const byLabel = (name: string, help: string, label: string, map: Map<string, number>): void => {
      const seen = new Map<string, number>();
      new Counter({
        name,
        help,
        labelNames: [label],
        registers: [this.registry],
        collect() {
          for (const [k, v] of map) {
            this.inc({ [label]: k }, v - (seen.get(k) ?? 0));
            seen.set(k, v);
          }
        },
      });
    };
    byLabel('silk_frame_errors_total', 'Client frames answered with an error, by code.', 'code', this.#frameErrors);
    byLabel('silk_disconnects_total', 'Closed connections by reason (client, slow_consumer, flood, …).', 'reason', this.#disconnects);
    const total = (name: string, help: string, read: () => number): void => {
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    };
    total('silk_connections_opened_total', 'Connections accepted since start.', () => this.#opened);
    total('silk_durable_messages_total', 'Durable messages stored by this node’s API.', () => this.#stored);
    total('silk_inbox_evicted_total', 'Inbox messages dropped because an inbox was over its caps.', () => this.#evicted);
    total('silk_store_errors_total', 'Store operations that failed (the request got store_unavailable).', () => this.#storeErrors);
    total('silk_bus_received_total', 'Messages and signals this node received from the bus (its own share included).', () => this.#busReceived);
    total('silk_socket_writes_total', 'Writes to client sockets (each carries one or more frames).', () => this.#gateway?.written.writes ?? 0);
    this.#flushDelay = new Histogram({
      name: 'silk_flush_delay_seconds',
      help: 'Time frames wait in this process for their socket write, from the first frame queued for a connection to the write (one wait in 16 is sampled).',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers: [this.registry],
    });
    const sched = (): CatchupScheduler | null => this.#scheduler;
    new Gauge({
      name: 'silk_catchups_running',
      help: 'Catch-ups (welcome inbox pages, inbox requests, channel recoveries) holding a turn of the catch-up scheduler now.',
      registers: [this.registry],
      collect() {
        this.set(sched()?.running ?? 0);
      },
    });
    new Gauge({
      name: 'silk_catchups_waiting',
      help: 'Catch-ups waiting in line for a turn of the catch-up scheduler.',
      registers: [this.registry],
      collect() {
        this.set(sched()?.waiting ?? 0);
      },
    });
    total('silk_catchup_frames_total', 'Stored messages sent by catch-ups (inbox pages and channel recoveries).', () => sched()?.frames ?? 0);
    this.#recovery = new Histogram({
      name: 'silk_recovery_seconds',
      help: 'Time from a subscribe with `since` arriving to the end of its recovery (the `recovered` reply), waiting for turns included.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
    const gw = (): GatewayGauges | null => this.#gateway;
    const gauge = (name: string, help: string, read: (g: GatewayGauges) => number): void => {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          const g = gw();
          this.set(g === null ? 0 : read(g));
        },
      });
    };
    gauge('silk_connects_waiting', 'Connections accepted and waiting for a turn to be set up (limits.connectsPerTurn).', (g) => g.pacing);
    gauge('silk_outbound_bytes', 'Bytes queued for all connections of the node, in Silk and in their sockets (limits.maxOutboundBytesTotal).', (g) => g.outboundBytes);
    total('silk_outbound_shed_total', 'Connections cut because the node went over limits.maxOutboundBytesTotal, the largest queues first.', () => gw()?.shed ?? 0);
    total('silk_frames_written_total', 'Frames written to client sockets; divided by silk_socket_writes_total, the coalescing.', () => this.#gateway?.written.frames ?? 0);
  }

  /** Where the socket writes, the connections waiting for setup and the outbound bytes come from (the gateway, on nodes with one). */
  watchGateway(g: GatewayGauges): void {
    this.#gateway = g;
  }

  /** The node's catch-up scheduler, read at scrape time; returned for chaining. */
  catchups(s: CatchupScheduler): CatchupScheduler {
    this.#scheduler = s;
    return s;
  }

  /** A channel recovery finished `seconds` after its subscribe arrived. */
  recovered(seconds: number): void {
    this.#recovery.observe(seconds);
  }

  /** A durable message was stored, dropping `evicted` older ones from full inboxes. */
  stored(evicted: number): void {
    this.#stored++;
    this.#evicted += evicted;
  }

  /** Something arrived from the bus. */
  busReceived(): void {
    this.#busReceived++;
  }

  storeError(): void {
    this.#storeErrors++;
  }

  frameError(code: ErrorCode): void {
    this.#frameErrors.set(code, (this.#frameErrors.get(code) ?? 0) + 1);
  }

  closed(reason: ErrorCode | 'client'): void {
    this.#disconnects.set(reason, (this.#disconnects.get(reason) ?? 0) + 1);
  }

  flushDelay(ms: number): void {
    this.#flushDelay.observe(ms / 1000);
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
