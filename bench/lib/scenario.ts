/**
 * What every benchmark scenario provides to the runner, and what they share:
 * the machine description, where results go, and path resolution for the
 * child-process scripts.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Scenario {
  readonly name: string;
  /** One line for `run.js --help`. */
  readonly summary: string;
  /** The options, for `run.js <name> --help`. */
  readonly usage: string;
  /** Left out of a whole-suite `--quick` run (it cannot be quick); still runs when named. */
  readonly heavy?: boolean;
  run(argv: string[]): Promise<void>;
}

/** dist/bench/ (where the compiled scripts are). */
export const DIST_BENCH = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The repository root. */
export const ROOT = resolve(DIST_BENCH, '..', '..');
/** bench/results/ in the source tree. */
export const RESULTS_DIR = join(ROOT, 'bench', 'results');

/** A compiled script under dist/bench/. */
export function script(rel: string): string {
  return join(DIST_BENCH, rel);
}

export interface Machine {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly node: string;
  readonly kernel: string;
  readonly memoryGiB: number;
  readonly pinned: boolean;
  readonly git?: string;
  /** The bench's own environment settings, when set (they change what the servers under test run). */
  readonly env?: Record<string, string>;
}

export function machine(pinned: boolean): Machine {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^Model name:\s*(.+)$/m.exec(execFileSync('lscpu', { encoding: 'utf8' }));
    if (m !== null) cpuModel = m[1]!.trim();
  } catch {
    /* lscpu missing: keep os.cpus() */
  }
  let git: string | undefined;
  try {
    git = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    git = undefined;
  }
  const env: Record<string, string> = {};
  for (const k of ['BENCH_SERVER_NODE_ARGS', 'BENCH_SILK_CONFIG']) {
    const v = process.env[k];
    if (v) env[k] = v;
  }
  return {
    nproc: cpus().length,
    cpuModel,
    node: process.version,
    kernel: release(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    pinned,
    ...(git !== undefined ? { git } : {}),
    ...(Object.keys(env).length > 0 ? { env } : {}),
  };
}

/** Write a result file as bench/results/<name>-<date>.json (or `out`); returns its path. */
export function writeResult(name: string, data: Record<string, unknown>, out?: string): string {
  const date = new Date().toISOString();
  const stamp = date.replace(/[:]/g, '-').replace(/\..+$/, '');
  data = { date, ...data };
  const file = out ?? join(RESULTS_DIR, `${name}-${stamp}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  return file;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
