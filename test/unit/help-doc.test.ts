/**
 * README.md must show `silk --help` exactly as the command prints it, so the
 * documented usage cannot drift from the code.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

// The compiled test lives in dist/test/unit/: the CLI is dist/src/cli.js, the README at the repository root.
const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const README = fileURLToPath(new URL('../../../README.md', import.meta.url));

/** What `silk --help` prints, run as a user would run it (no SILK_ variables). */
async function help(): Promise<string> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SILK_')));
  const { stdout, stderr } = await run(process.execPath, [CLI, '--help'], { env });
  assert.equal(stderr, '', 'nothing on stderr');
  return stdout;
}

/** The fenced block right after the line in README.md that introduces `silk --help`. */
function readmeBlock(readme: string): string {
  const lines = readme.split('\n');
  const intro = lines.findIndex((l) => l.includes('`silk --help` prints:'));
  assert.notEqual(intro, -1, 'README.md has a line with "`silk --help` prints:"');
  const open = lines.findIndex((l, i) => i > intro && l.startsWith('```'));
  assert.notEqual(open, -1, 'a fenced block follows it');
  const close = lines.findIndex((l, i) => i > open && l.startsWith('```'));
  assert.notEqual(close, -1, 'the fenced block is closed');
  return lines.slice(open + 1, close).join('\n');
}

test('help doc - README.md contains the output of silk --help verbatim', async () => {
  const out = (await help()).trim();
  assert.ok(out.startsWith('silk — realtime message push'), 'the help output is what the test expects to compare');
  assert.ok(readFileSync(README, 'utf8').includes(out), 'README.md contains `silk --help` verbatim: copy it from `node dist/src/cli.js --help`');
});

test('help doc - the block under "silk --help prints:" is exactly the help, no more and no less', async () => {
  const out = (await help()).trim();
  assert.equal(readmeBlock(readFileSync(README, 'utf8')).trim(), out);
});
