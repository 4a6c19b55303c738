/**
 * The benchmark runner: `npm run bench [-- <scenario> [options]]`.
 * With no scenario it runs every scenario in turn with its defaults
 * (`--quick` applies to all).
 */
import { readFileSync } from 'node:fs';
import { cluster } from './cluster/scenario.js';
import { durable, durableCharts } from './durable/scenario.js';
import { fanout, fanoutCharts } from './fanout/scenario.js';
import { idle, idleCharts } from './idle/scenario.js';
import { micro } from './micro/scenario.js';
import { scale } from './scale/scenario.js';
import { fuzzScenario } from './fuzz/scenario.js';
import { slowScenario } from './slow/scenario.js';
import { soakCharts, soakScenario } from './soak/scenario.js';
import { stormCharts, stormScenario } from './storm/scenario.js';
import { unicast, unicastCharts } from './unicast/scenario.js';
import { renderCharts, type BarChart } from './lib/charts.js';
import { stopAll } from './lib/proc.js';
import type { Scenario } from './lib/scenario.js';

const SCENARIOS: readonly Scenario[] = [fanout, unicast, idle, durable, cluster, scale, stormScenario, slowScenario, fuzzScenario, soakScenario, micro];

/** Draw the charts of saved results files again (after a change to the charts, without running anything). */
async function redraw(files: string[]): Promise<void> {
  if (files.length === 0) throw new Error('usage: npm run bench -- charts bench/results/<file>.json …');
  const draw: Record<string, (d: never) => { file: string; chart: BarChart }[]> = {
    fanout: fanoutCharts,
    unicast: unicastCharts,
    idle: idleCharts,
    storm: stormCharts,
    soak: soakCharts,
    durable: durableCharts,
  };
  const charts: { file: string; chart: BarChart }[] = [];
  for (const f of files) {
    const d = JSON.parse(readFileSync(f, 'utf8')) as { scenario: string; date?: string };
    // Files written before results carried their date: take it from the name.
    d.date ??= /(\d{4}-\d{2}-\d{2})T/.exec(f)?.[1] ?? new Date().toISOString();
    const fn = draw[d.scenario];
    if (fn === undefined) throw new Error(`${f}: no charts for scenario ${d.scenario}`);
    charts.push(...fn(d as never));
  }
  for (const written of await renderCharts(charts)) process.stdout.write(`${written}\n`);
}

function help(): string {
  return (
    'usage: npm run bench -- [scenario] [options]   (no scenario: all of them)\n' +
    '       npm run bench -- charts RESULTS.json …    (draw the charts of saved results again)\n\n' +
    SCENARIOS.map((s) => `  ${s.name.padEnd(10)} ${s.summary}${s.heavy === true ? ' (not in a whole-suite --quick run)' : ''}\n    ${s.usage}`).join('\n\n') +
    '\n'
  );
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(help());
    return;
  }
  if (argv[0] === 'charts') return redraw(argv.slice(1));
  const named = argv[0] !== undefined && !argv[0].startsWith('-') ? SCENARIOS.find((s) => s.name === argv[0]) : undefined;
  if (argv[0] !== undefined && !argv[0].startsWith('-') && named === undefined) {
    throw new Error(`unknown scenario ${argv[0]}\n${help()}`);
  }
  if (named !== undefined) return named.run(argv.slice(1));
  const quick = argv.includes('--quick');
  const failed: string[] = [];
  for (const s of SCENARIOS) {
    if (quick && s.heavy === true) {
      process.stderr.write(`bench: --quick leaves out ${s.name} (run it by name)\n`);
      continue;
    }
    // One scenario failing does not lose the others.
    try {
      await s.run(quick ? ['--quick'] : []);
    } catch (err) {
      failed.push(s.name);
      process.stderr.write(`bench: ${s.name} failed: ${err instanceof Error ? err.message : String(err)}\n`);
      await stopAll();
    }
  }
  if (failed.length > 0) throw new Error(`failed: ${failed.join(', ')}`);
}

const stop = (): void => {
  void stopAll().finally(() => process.exit(130));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

main(process.argv.slice(2)).then(
  async () => {
    await stopAll();
  },
  async (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    await stopAll();
    process.exitCode = 1;
  },
);
