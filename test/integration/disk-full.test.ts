/**
 * The embedded store's disk running full: a small tmpfs as the data
 * directory (mounting needs root; skipped where it is not allowed). Durable
 * publishes are answered 507 storage_full while it is full, accepted again
 * by themselves once space is freed, and every message answered 202 is
 * still there, across a restart too.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { APP_A, startTestNode } from '../helpers.js';

function mountTmpfs(): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'silk-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

const mounted = mountTmpfs();

test('disk full - durable publishes get 507 storage_full, come back by themselves once space is freed, and nothing answered 202 is lost', { skip: mounted === undefined ? 'cannot mount a tmpfs here (needs root)' : false, timeout: 60_000 }, async () => {
  const dir = mounted!;
  const dataDir = join(dir, 'data');
  const filler = join(dir, 'filler');
  try {
    let t = await startTestNode({ dataDir, limits: { apiRequestsPerSecond: 0, inboxMaxMessages: 100_000 } });
    writeFileSync(filler, Buffer.alloc(1024 * 1024));
    const accepted: string[] = [];
    const statuses: Record<number, number> = {};
    let body: any;
    for (let i = 0; i < 2000 && (statuses[507] ?? 0) < 20; i++) {
      const r = await t.publish({ to: { users: ['filled'] }, data: { i, pad: 'x'.repeat(2000) }, durable: true });
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status === 202) accepted.push(r.body.id);
      else body = r.body;
    }
    assert.ok(accepted.length > 0, 'some fit');
    assert.equal(statuses[507], 20, `the full disk is answered 507: ${JSON.stringify(statuses)}`);
    assert.equal(body.error.code, 'storage_full');
    assert.equal(Object.keys(statuses).length, 2, 'nothing but 202 and 507');
    rmSync(filler);
    const again = await t.publish({ to: { users: ['filled'] }, data: 'after', durable: true });
    assert.equal(again.status, 202, 'accepted again once space is freed');
    accepted.push(again.body.id);
    await t.close();
    t = await startTestNode({ dataDir, limits: { inboxMaxMessages: 100_000 } });
    const stored = new Set<string>();
    let after: string | undefined;
    for (;;) {
      const page = await t.api('GET', `/v1/apps/${APP_A.id}/users/filled/inbox?limit=1000${after ? `&after=${after}` : ''}`);
      for (const m of page.body.messages) stored.add(m.id);
      if (!page.body.more) break;
      after = page.body.messages.at(-1).id;
    }
    assert.deepEqual(accepted.filter((id) => !stored.has(id)), [], 'every message answered 202 is stored');
    await t.close();
  } finally {
    try {
      execFileSync('umount', [dir], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
    rmSync(dir, { recursive: true, force: true });
  }
});
