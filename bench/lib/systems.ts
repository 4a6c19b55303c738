/**
 * The servers a scenario can run, side by side: Silk, and the raw `ws`
 * baselines. Each is started as a child process pinned to the server CPU
 * and announces its port over IPC.
 */
import { join } from 'node:path';
import { BENCH_APP } from './bench-app.js';
import { startChild, type Child } from './proc.js';
import { script } from './scenario.js';
import type { SystemMode } from '../fanout/clients.js';

export type SystemName = 'silk' | 'silk-base' | 'ws-coalesce' | 'ws' | 'socketio';

export interface SystemSpec {
  readonly name: SystemName;
  /** One line for the tables. */
  readonly label: string;
  /** How clients connect: `silk` (token + subscribe) or `plain`. */
  readonly mode: SystemMode;
  /** Publish endpoint path and headers. */
  readonly publishPath: string;
  readonly publishHeaders: Record<string, string>;
  start(cpu: number | undefined, execArgv?: readonly string[]): Child;
}

export const SYSTEMS: Record<SystemName, SystemSpec> = {
  silk: {
    name: 'silk',
    label: 'Silk',
    mode: 'silk',
    publishPath: `/v1/apps/${BENCH_APP.id}/messages`,
    publishHeaders: { authorization: `Bearer ${BENCH_APP.apiKey}` },
    start: (cpu, execArgv) =>
      startChild(script('silk-server.js'), process.env['BENCH_SILK_CONFIG'] ? ['--config', process.env['BENCH_SILK_CONFIG']] : [], { name: 'silk', ...(cpu !== undefined ? { cpu } : {}), ...(execArgv ? { execArgv } : {}) }),
  },
  'silk-base': {
    name: 'silk-base',
    label: 'Silk, baseline build',
    mode: 'silk',
    publishPath: `/v1/apps/${BENCH_APP.id}/messages`,
    publishHeaders: { authorization: `Bearer ${BENCH_APP.apiKey}` },
    // Another build of Silk beside this one, to measure a change side by side in one run:
    // BENCH_SILK_BASE names a checkout whose `npm run build` is done (its dist/bench/silk-server.js).
    start: (cpu, execArgv) => {
      const base = process.env['BENCH_SILK_BASE'];
      if (base === undefined || base === '') throw new Error('silk-base needs BENCH_SILK_BASE=<a built checkout of Silk>');
      return startChild(join(base, 'dist/bench/silk-server.js'), process.env['BENCH_SILK_CONFIG'] ? ['--config', process.env['BENCH_SILK_CONFIG']] : [], {
        name: 'silk-base',
        ...(cpu !== undefined ? { cpu } : {}),
        ...(execArgv ? { execArgv } : {}),
      });
    },
  },
  'ws-coalesce': {
    name: 'ws-coalesce',
    label: 'raw ws, coalesced',
    mode: 'plain',
    publishPath: '/publish',
    publishHeaders: {},
    start: (cpu, execArgv) =>
      startChild(script('baseline/ws-broadcast.js'), ['--coalesce'], {
        name: 'ws-coalesce',
        ...(cpu !== undefined ? { cpu } : {}),
        ...(execArgv ? { execArgv } : {}),
      }),
  },
  ws: {
    name: 'ws',
    label: 'raw ws, naive',
    mode: 'plain',
    publishPath: '/publish',
    publishHeaders: {},
    start: (cpu, execArgv) =>
      startChild(script('baseline/ws-broadcast.js'), [], { name: 'ws', ...(cpu !== undefined ? { cpu } : {}), ...(execArgv ? { execArgv } : {}) }),
  },
  socketio: {
    name: 'socketio',
    label: 'Socket.IO 4',
    mode: 'socketio',
    publishPath: '/publish',
    publishHeaders: {},
    start: (cpu, execArgv) =>
      startChild(script('baseline/socketio-server.js'), [], {
        name: 'socketio',
        ...(cpu !== undefined ? { cpu } : {}),
        ...(execArgv ? { execArgv } : {}),
      }),
  },
};

/** Start a system and wait for its port. */
export async function startSystem(spec: SystemSpec, cpu: number | undefined): Promise<{ child: Child; port: number }> {
  const child = spec.start(cpu, serverNodeArgs());
  const ready = await child.waitFor<{ port: number }>((m) => (m as { ready?: boolean }).ready === true, 20_000);
  return { child, port: ready.port };
}

/** Parse `--systems a,b` against the known names. */
export function parseSystems(text: string): SystemSpec[] {
  return text.split(',').map((s) => {
    const spec = SYSTEMS[s.trim() as SystemName];
    if (spec === undefined) throw new Error(`unknown system ${s}; known: ${Object.keys(SYSTEMS).join(', ')}`);
    return spec;
  });
}

/**
 * Node options for the servers under test from `BENCH_SERVER_NODE_ARGS`
 * (space-separated), e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile.
 */
export function serverNodeArgs(): string[] | undefined {
  const text = process.env['BENCH_SERVER_NODE_ARGS']?.trim();
  return text ? text.split(/\s+/) : undefined;
}
