/**
 * Grouped bar charts of benchmark results, as PNG: each chart is drawn as an
 * SVG string here (no chart library), then all of them are rasterised by one
 * headless Chromium through playwright-core. Without Chromium the charts are
 * skipped with one line on stderr; the benchmark itself never fails for it.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { si } from './stats.js';

/** A grouped bar chart: one group per x position, one coloured bar per series in each. */
export interface BarChart {
  title: string;
  /** A second line under the title, such as the machine the figures come from. */
  subtitle?: string;
  /** What the y axis measures, such as `deliveries/s`. */
  unit: string;
  /** Labels under the x axis, such as `1,000 subs`. */
  groups: string[];
  /**
   * One entry per system: `values[i]` is its bar in `groups[i]` (undefined:
   * no bar, "n/a"); `min`/`max`, when both are given, draw a whisker.
   */
  series: { name: string; values: (number | undefined)[]; min?: (number | undefined)[]; max?: (number | undefined)[] }[];
  /** Logarithmic y axis (for series that differ by orders of magnitude). */
  log?: boolean;
}

/** The size of every chart, CSS pixels (and PNG pixels: device scale 1). */
export const CHART_WIDTH = 900;
export const CHART_HEIGHT = 480;

/** Series colours, in order; the first (Silk, by convention) stands out. */
const PALETTE = ['#4f46e5', '#f59e0b', '#10b981', '#ef4444', '#0ea5e9', '#a855f7', '#64748b', '#84cc16'];
const FONT = "'DejaVu Sans', 'Liberation Sans', Arial, Helvetica, sans-serif";
/** Rough average glyph width of FONT, in ems, for laying out text without measuring it. */
const EM = 0.62;

const esc = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Round for SVG coordinates. */
const r1 = (n: number): string => (Math.round(n * 10) / 10).toString();

/** A tick label: si() without trailing zeros ("1.00k" → "1k", "2.50M" → "2.5M"). */
function tickLabel(n: number): string {
  const s = si(n);
  // Only zeros after a decimal point go ("100" stays "100").
  return s.includes('.') ? s.replace(/0+(?=[kM]?$)/, '').replace(/\.(?=[kM]?$)/, '') : s;
}

function text(x: number, y: number, s: string, attrs: string): string {
  return `<text x="${r1(x)}" y="${r1(y)}" ${attrs}>${esc(s)}</text>`;
}

/** Break `s` into lines of at most `max` characters, at spaces. */
function wrap(s: string, max: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of s.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > max) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** The y scale: value → pixel, and where the gridlines go. */
interface Scale {
  y(v: number): number;
  ticks: number[];
  /** Faint lines between ticks (log scale: 2–9 × each decade). */
  minor: number[];
  /** The value at the bottom of the plot (where bars start). */
  floor: number;
}

/** A "nice" step for about `target` intervals over [0, max]: 1, 2, 2.5 or 5 × 10^k. */
function niceStep(max: number, target: number): number {
  const raw = max / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

function scale(values: number[], log: boolean, top: number, bottom: number): Scale {
  const max = values.length > 0 ? Math.max(...values) : 1;
  if (log) {
    const positive = values.filter((v) => v > 0);
    const lo = 10 ** Math.floor(Math.log10(positive.length > 0 ? Math.min(...positive) : 1));
    // Head room above the tallest bar for its label.
    let hi = 10 ** Math.ceil(Math.log10(Math.max(max, lo) * 1.4));
    if (hi <= lo) hi = lo * 10;
    const a = Math.log10(lo);
    const b = Math.log10(hi);
    const ticks: number[] = [];
    const minor: number[] = [];
    for (let e = a; e <= b + 1e-9; e++) {
      ticks.push(10 ** e);
      if (e < b && b - a <= 6) for (let m = 2; m <= 9; m++) minor.push(m * 10 ** e);
    }
    return { y: (v) => bottom - ((Math.log10(Math.max(v, lo)) - a) / (b - a)) * (bottom - top), ticks, minor, floor: lo };
  }
  const step = niceStep(max > 0 ? max * 1.12 : 1, 5);
  const hi = Math.ceil((max > 0 ? max * 1.12 : 1) / step) * step;
  const ticks: number[] = [];
  for (let v = 0; v <= hi + step / 2; v += step) ticks.push(v);
  return { y: (v) => bottom - (Math.max(0, v) / hi) * (bottom - top), ticks, minor: [], floor: 0 };
}

/** Draw `chart` as an SVG document of CHART_WIDTH × CHART_HEIGHT. */
export function barChartSvg(chart: BarChart): string {
  const W = CHART_WIDTH;
  const H = CHART_HEIGHT;
  const out: string[] = [];
  const left = 84;
  const right = W - 24;

  // Title, subtitle (wrapped), legend: each pushes the plot down.
  out.push(text(left, 30, chart.title, `font-size="19" font-weight="bold" fill="#111827"`));
  let y = 30;
  for (const line of chart.subtitle === undefined ? [] : wrap(chart.subtitle, Math.floor((right - left) / (12 * EM)))) {
    y += 18;
    out.push(text(left, y, line, `font-size="12" fill="#4b5563"`));
  }
  y += 26;
  let lx = left;
  chart.series.forEach((s, j) => {
    const w = 14 + 6 + s.name.length * 13 * EM + 22;
    if (lx + w > right && lx > left) {
      lx = left;
      y += 20;
    }
    out.push(`<rect x="${r1(lx)}" y="${r1(y - 11)}" width="14" height="14" rx="2" fill="${PALETTE[j % PALETTE.length]}"/>`);
    out.push(text(lx + 20, y + 1, s.name, `font-size="13" fill="#111827"`));
    lx += w;
  });
  const top = y + 24;
  const bottom = H - 46;

  // Everything that sets the y range: bars and whisker ends.
  const all: number[] = [];
  for (const s of chart.series) {
    for (const arr of [s.values, s.min, s.max]) for (const v of arr ?? []) if (v !== undefined && Number.isFinite(v)) all.push(v);
  }
  const log = chart.log === true;
  const sc = scale(all, log, top, bottom);

  // Gridlines and y tick labels.
  for (const v of sc.minor) out.push(`<line x1="${left}" x2="${right}" y1="${r1(sc.y(v))}" y2="${r1(sc.y(v))}" stroke="#f3f4f6"/>`);
  for (const v of sc.ticks) {
    const ty = sc.y(v);
    out.push(`<line x1="${left}" x2="${right}" y1="${r1(ty)}" y2="${r1(ty)}" stroke="#e5e7eb"/>`);
    out.push(text(left - 8, ty + 4, tickLabel(v), `font-size="12" fill="#4b5563" text-anchor="end"`));
  }
  const unit = chart.unit + (log ? ' (log scale)' : '');
  out.push(
    `<text transform="translate(20 ${r1((top + bottom) / 2)}) rotate(-90)" font-size="13" fill="#374151" text-anchor="middle">${esc(unit)}</text>`,
  );

  // The bars, group by group.
  const groupW = (right - left) / Math.max(1, chart.groups.length);
  const inner = groupW * 0.78;
  const barW = inner / Math.max(1, chart.series.length);
  const labelSize = Math.max(9, Math.min(12, barW / 3.6));
  chart.groups.forEach((g, i) => {
    const gx = left + i * groupW + (groupW - inner) / 2;
    chart.series.forEach((s, j) => {
      const x = gx + j * barW + 1.5;
      const w = Math.max(1, barW - 3);
      const cx = x + w / 2;
      const v = s.values[i];
      if (v === undefined || !Number.isFinite(v)) {
        out.push(text(cx, bottom - 5, 'n/a', `font-size="${labelSize}" fill="#9ca3af" text-anchor="middle"`));
        return;
      }
      const vy = sc.y(v);
      out.push(`<rect x="${r1(x)}" y="${r1(vy)}" width="${r1(w)}" height="${r1(Math.max(0, bottom - vy))}" fill="${PALETTE[j % PALETTE.length]}"/>`);
      let labelY = vy;
      const lo = s.min?.[i];
      const hi = s.max?.[i];
      if (lo !== undefined && hi !== undefined && Number.isFinite(lo) && Number.isFinite(hi)) {
        const y0 = sc.y(lo);
        const y1 = sc.y(hi);
        const cap = Math.min(w * 0.3, 7);
        out.push(
          `<path d="M${r1(cx)} ${r1(y0)}V${r1(y1)}M${r1(cx - cap)} ${r1(y0)}H${r1(cx + cap)}M${r1(cx - cap)} ${r1(y1)}H${r1(cx + cap)}" stroke="#1f2937" stroke-width="1.3" fill="none"/>`,
        );
        labelY = Math.min(labelY, y1);
      }
      // Value label above the bar (and whisker); upright when it fits, else turned.
      const label = si(v);
      if (label.length * labelSize * EM <= barW + 2) {
        out.push(text(cx, labelY - 5, label, `font-size="${labelSize}" fill="#111827" text-anchor="middle"`));
      } else {
        out.push(
          `<text transform="translate(${r1(cx + labelSize * 0.35)} ${r1(labelY - 5)}) rotate(-90)" font-size="${labelSize}" fill="#111827">${esc(label)}</text>`,
        );
      }
    });
    out.push(text(left + i * groupW + groupW / 2, bottom + 22, g, `font-size="13" fill="#111827" text-anchor="middle"`));
  });
  out.push(`<line x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}" stroke="#374151" stroke-width="1.2"/>`);

  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${FONT}">` +
    `<rect width="${W}" height="${H}" fill="#ffffff"/>` +
    out.join('') +
    '</svg>'
  );
}

/**
 * Draw each chart and write it as a PNG at `file` (folders made as needed),
 * with one headless Chromium (`CHROMIUM_PATH`, default /usr/bin/chromium).
 * Returns the files written; [] with one line on stderr when Chromium is
 * missing or does not start.
 */
export async function renderCharts(charts: { file: string; chart: BarChart }[]): Promise<string[]> {
  if (charts.length === 0) return [];
  const executablePath = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
  const skip = (why: string): string[] => {
    process.stderr.write(`charts: skipped (${why}); set CHROMIUM_PATH to a Chromium to draw them\n`);
    return [];
  };
  if (!existsSync(executablePath)) return skip(`no Chromium at ${executablePath}`);
  let browser: import('playwright-core').Browser;
  try {
    // Loaded here so that a missing playwright-core, like a missing Chromium, only skips the charts.
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  } catch (err) {
    return skip(`Chromium did not start: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
  }
  try {
    const page = await browser.newPage({ viewport: { width: CHART_WIDTH, height: CHART_HEIGHT }, deviceScaleFactor: 1 });
    const written: string[] = [];
    for (const { file, chart } of charts) {
      await page.setContent(`<!doctype html><html><body style="margin:0;background:#fff">${barChartSvg(chart)}</body></html>`);
      mkdirSync(dirname(file), { recursive: true });
      await page.screenshot({ path: file, clip: { x: 0, y: 0, width: CHART_WIDTH, height: CHART_HEIGHT }, omitBackground: false });
      written.push(file);
    }
    return written;
  } finally {
    await browser.close();
  }
}

/** Where the charts of the latest run of each scenario go (fixed names, shown by bench/README.md). */
export const CHARTS_DIR = 'bench/charts';

/**
 * One bar per system and group from repeated runs: the median, with a
 * min–max whisker. `value` reads a run's figure; runs whose group or system
 * does not match are left out.
 */
export function seriesOf<R>(
  runs: readonly R[],
  systems: readonly string[],
  groups: readonly { label: string; match: (r: R) => boolean }[],
  systemOf: (r: R) => string,
  value: (r: R) => number,
): BarChart['series'] {
  return systems.map((name) => {
    const cells = groups.map((g) => {
      const v = runs
        .filter((r) => g.match(r) && systemOf(r) === name)
        .map(value)
        .filter((x) => Number.isFinite(x))
        .sort((a, b) => a - b);
      if (v.length === 0) return undefined;
      const mid = v.length >> 1;
      return { median: v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2, min: v[0]!, max: v[v.length - 1]! };
    });
    return { name, values: cells.map((c) => c?.median), min: cells.map((c) => c?.min), max: cells.map((c) => c?.max) };
  });
}
