/**
 * In a benchmarked server process: event-loop delay and GC pauses, reset and
 * read by the runner over IPC, so every system reports the same figures the
 * same way. Without an IPC channel (started by hand) it does nothing.
 */
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { GCProfiler, getHeapStatistics } from 'node:v8';
import { serveParent, type Handler } from './proc.js';

/** What a server reports for a measure window. */
export interface ServerStats {
  /** Event-loop delay over the window, ms: how late the probe's timer fired. */
  readonly loopDelay: { readonly p50: number; readonly p99: number; readonly max: number };
  /** GC pauses over the window. */
  readonly gc: { readonly count: number; readonly totalMs: number; readonly maxMs: number };
  /**
   * Bytes allocated on the JS heap over the window: the heap's growth between
   * collections, from V8's GC records. V8 shrinks its young generation only
   * while this runs under 1,000 bytes per ms.
   */
  readonly allocatedBytes: number;
  readonly memory: NodeJS.MemoryUsage;
  /** Anything system-specific (connection counts and so on). */
  readonly extra: Record<string, number>;
}

/**
 * Start the probes and answer `reset` and `stats` from the runner.
 * @param extra system-specific counters for `stats`
 * @param more more commands the server answers
 */
/** The event-loop probe's timer period, ms. */
export const LOOP_RESOLUTION_MS = 10;

/**
 * Node's histogram records the time between the probe timer's runs, so an
 * idle loop reads its period (10.1 ms p50, 10.5 ms p99 here); the delay is
 * what is over the period.
 */
export function lateness(ns: number): number {
  return Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS);
}

export function instrumentServer(extra: () => Record<string, number>, more: Record<string, Handler> = {}): void {
  if (process.send === undefined) return;
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  let base: Record<string, number> = {};
  loop.enable();
  let gcCount = 0;
  let gcTotal = 0;
  let gcMax = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcCount++;
      gcTotal += e.duration;
      if (e.duration > gcMax) gcMax = e.duration;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  // Heap use at the window's start and after each collection in it: what it grew by between them was allocated.
  let gcs = new GCProfiler();
  let usedAtReset = getHeapStatistics().used_heap_size;
  gcs.start();
  const allocated = (): number => {
    const records = gcs.stop()?.statistics ?? [];
    gcs = new GCProfiler();
    gcs.start();
    let used = usedAtReset;
    let sum = 0;
    for (const r of records) {
      sum += r.beforeGC.heapStatistics.usedHeapSize - used;
      used = r.afterGC.heapStatistics.usedHeapSize;
    }
    const now = getHeapStatistics().used_heap_size;
    usedAtReset = now;
    return sum + now - used;
  };
  // Allocated since `reset`, summed over the `stats` calls in between (each restarts the profiler).
  let allocatedSum = 0;
  serveParent({
    ...more,
    reset: () => {
      base = extra();
      loop.reset();
      gcCount = 0;
      gcTotal = 0;
      gcMax = 0;
      allocated();
      allocatedSum = 0;
      return true;
    },
    stats: (): ServerStats => ({
      // No sample: the loop never ran the probe's timer in the window (blocked throughout), not 0.
      loopDelay:
        loop.count === 0
          ? { p50: NaN, p99: NaN, max: NaN }
          : { p50: lateness(loop.percentile(50)), p99: lateness(loop.percentile(99)), max: lateness(loop.max) },
      gc: { count: gcCount, totalMs: gcTotal, maxMs: gcMax },
      allocatedBytes: (allocatedSum += allocated()),
      memory: process.memoryUsage(),
      // Counters as differences since `reset`.
      extra: Object.fromEntries(Object.entries(extra()).map(([k, v]) => [k, k === 'connections' ? v : v - (base[k] ?? 0)])),
    }),
  });
}

/** Announce the port: as a JSON line on stdout (for people) and over IPC (for the runner). */
export function announce(info: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(info) + '\n');
  if (process.send !== undefined && process.connected) process.send({ ready: true, ...info });
}

/** The cumulative buckets of Silk's `silk_flush_delay_seconds` in a metrics text: [bound in seconds, count]. */
export function flushDelayBuckets(metrics: string): [number, number][] {
  const out: [number, number][] = [];
  for (const m of metrics.matchAll(/^silk_flush_delay_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)) {
    out.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
  }
  return out;
}

/**
 * The bucket bound (ms) under which a share `q` of the samples fell between
 * two readings of cumulative buckets; undefined without samples.
 */
export function bucketQuantile(before: readonly [number, number][], after: readonly [number, number][], q: number): number | undefined {
  const diff = after.map(([le, n], i) => [le, n - (before[i]?.[1] ?? 0)] as const);
  const total = diff.at(-1)?.[1] ?? 0;
  if (total <= 0) return undefined;
  const found = diff.find(([, n]) => n >= q * total);
  return found === undefined ? undefined : found[0] * 1000;
}
