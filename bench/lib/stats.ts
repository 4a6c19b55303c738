/**
 * Small statistics: a fixed-resolution latency histogram that merges across
 * processes, and median/min/max over repeated runs.
 */

/** Histogram bucket width, ms. */
export const BUCKET_MS = 0.05;
/** Latencies at or above this land in the last bucket, ms. */
export const MAX_MS = 30_000;
const BUCKETS = Math.ceil(MAX_MS / BUCKET_MS) + 1;

/** Sparse form for IPC: [bucket, count] pairs plus counters. */
export interface HistogramData {
  readonly pairs: [number, number][];
  readonly count: number;
  readonly negative: number;
  readonly maxMs: number;
}

export class Histogram {
  readonly #counts = new Uint32Array(BUCKETS);
  count = 0;
  /** Samples below zero (clock trouble); recorded as zero. */
  negative = 0;
  maxMs = 0;

  record(ms: number): void {
    if (ms < 0) {
      this.negative++;
      ms = 0;
    }
    if (ms > this.maxMs) this.maxMs = ms;
    const b = Math.floor(ms / BUCKET_MS);
    this.#counts[b < BUCKETS ? b : BUCKETS - 1]!++;
    this.count++;
  }

  reset(): void {
    this.#counts.fill(0);
    this.count = 0;
    this.negative = 0;
    this.maxMs = 0;
  }

  toData(): HistogramData {
    const pairs: [number, number][] = [];
    const c = this.#counts;
    for (let i = 0; i < c.length; i++) if (c[i] !== 0) pairs.push([i, c[i]!]);
    return { pairs, count: this.count, negative: this.negative, maxMs: this.maxMs };
  }

  add(d: HistogramData): void {
    for (const [b, n] of d.pairs) this.#counts[b]! += n;
    this.count += d.count;
    this.negative += d.negative;
    if (d.maxMs > this.maxMs) this.maxMs = d.maxMs;
  }

  /** The `q` quantile (0–1) in ms: the upper edge of the bucket that holds it; NaN when empty. */
  quantile(q: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    const c = this.#counts;
    for (let i = 0; i < c.length; i++) {
      seen += c[i]!;
      if (seen >= rank) return Math.min((i + 1) * BUCKET_MS, this.maxMs);
    }
    return this.maxMs;
  }
}

/** Median, min and max of repeated measurements (NaN values ignored). */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

export function spread(values: readonly number[]): Spread {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = v.length >> 1;
  const median = v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

/** Format a number compactly: 1234567 → "1.23M", 12345 → "12.3k". */
export function si(n: number): string {
  if (!Number.isFinite(n)) return '–';
  const a = Math.abs(n);
  if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 1 : 2) + 'M';
  if (a >= 1e3) return (n / 1e3).toFixed(a >= 1e4 ? 1 : 2) + 'k';
  return a >= 100 ? n.toFixed(0) : a >= 10 ? n.toFixed(1) : n.toFixed(2);
}

/** "median (min–max)" with a formatter. */
export function fmtSpread(s: Spread, f: (n: number) => string = si): string {
  if (s.n === 0) return '–';
  if (s.n === 1) return f(s.median);
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

/** Render rows as a Markdown table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  return [line(header), '| ' + widths.map((w) => '-'.repeat(w)).join(' | ') + ' |', ...rows.map(line)].join('\n');
}
