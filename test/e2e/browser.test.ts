/**
 * End to end in real headless Chromium (Debian's `chromium`, driven by
 * playwright-core): the demo page served by a node, using the SDK bundle
 * from /sdk/silk.js.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startTestNode, type TestNode } from '../helpers.js';

const CHROMIUM = '/usr/bin/chromium';
/** test/artifacts/ in the source tree (not committed). */
const ARTIFACTS = fileURLToPath(new URL('../../../test/artifacts/', import.meta.url));
const present = existsSync(CHROMIUM);
if (!present && process.env['SILK_REQUIRE_BROWSER'] === '1') throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);

describe('browser', { skip: present ? false : `${CHROMIUM} is not installed`, timeout: 60_000 }, () => {
  let t: TestNode;
  let browser: Browser;
  before(async () => {
    // dev: true turns on the demo token endpoint for the configured apps (the first, acme, by default).
    t = await startTestNode({ dev: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  after(async () => {
    await browser?.close();
    await t?.close();
  });

  /** Failed requests and console errors of the demo pages. */
  const problems: string[] = [];

  /** Open the demo page and connect as `user`, subscribed to `channels`. */
  async function demo(user: string, channels: string[]): Promise<Page> {
    const page = await browser.newPage();
    page.on('pageerror', (err) => assert.fail(`page error: ${err.message}`));
    // What a user would see in the console: failed requests (a missing icon) and logged errors.
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
    });
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    await page.goto(t.url + '/');
    await page.fill('#user', user);
    await page.click('#connect');
    await page.waitForSelector('#state[data-state="connected"]');
    for (const ch of channels) {
      await page.fill('#channel', ch);
      await page.click('#subscribe');
    }
    return page;
  }

  /** Wait until the node counts `n` subscribers on `channel` (the subscribe frame went out after welcome). */
  async function subscribers(channel: string, n: number): Promise<void> {
    for (let i = 0; i < 250; i++) {
      if ((await t.api('GET', `/v1/apps/acme/channels/${channel}`)).body.subscribers === n) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.fail(`${channel} never had ${n} subscribers`);
  }

  test('browser - two pages as two users: a channel message and a user message reach the right page', async () => {
    const ann = await demo('ann', ['news']);
    const ben = await demo('ben', []);
    await subscribers('news', 1);
    const channel = await t.publish({ to: { channels: ['news'] }, data: { headline: 'rain' } });
    const direct = await t.publish({ to: { users: ['ben'] }, data: { note: 'for ben' }, event: 'dm' });
    await ann.waitForSelector(`#log li[data-id="${channel.body.id}"]`);
    await ben.waitForSelector(`#log li[data-id="${direct.body.id}"]`);
    assert.match((await ann.textContent(`#log li[data-id="${channel.body.id}"]`)) ?? '', /#news.*rain/);
    assert.match((await ben.textContent(`#log li[data-id="${direct.body.id}"]`)) ?? '', /to me.*dm.*for ben/);
    assert.equal(await ann.locator(`#log li[data-id="${direct.body.id}"]`).count(), 0);
    assert.equal(await ben.locator(`#log li[data-id="${channel.body.id}"]`).count(), 0);
    // The page's own publish form goes through the server API.
    await ben.selectOption('#kind', 'channels');
    await ben.fill('#names', 'news');
    await ben.fill('#data', '{"from":"ben"}');
    await ben.click('#publish');
    await ben.waitForSelector('#published:has-text("202")');
    await ann.waitForSelector('#log li:has-text("ben")');
    assert.deepEqual(problems, [], 'no failed request and no console error');
    await ann.close();
    await ben.close();
  });

  test('browser - the demo page shows the unread count and it falls after an ack', async () => {
    const ids: string[] = [];
    for (const text of ['first', 'second']) {
      ids.push((await t.publish({ to: { users: ['cleo'] }, data: { text }, durable: true })).body.id);
    }
    const page = await demo('cleo', []);
    await page.waitForSelector(`#log li[data-id="${ids[1]}"] button.ack`);
    assert.equal(await page.textContent('#unread'), '2');
    await page.click(`#log li[data-id="${ids[0]}"] button.ack`);
    await page.waitForSelector('#unread:text-is("1")');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: ARTIFACTS + 'demo-page.png', fullPage: true });
    // The acknowledgement is stored: the inbox now holds only the second message.
    const inbox = await t.api('GET', '/v1/apps/acme/users/cleo/inbox');
    assert.deepEqual(inbox.body.messages.map((m: { id: string }) => m.id), [ids[1]]);
    await page.close();
  });
});
