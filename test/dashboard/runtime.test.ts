/**
 * The dashboard against the whole product, as a user runs it: `node scripts/start.js` in a child process
 * (Node-RED with the shipped flow, PGlite, the embedded broker, the live monitor WebSocket at /api/v1/live, the
 * built-in Asterisk simulator and the demo campaign), driven from headless Chromium by clicks only.
 *
 *   - create a campaign and upload a contacts CSV with a bad row: the row's line number and reason show;
 *   - start the demo campaign from the dashboard: a live call appears, its conversation turns appear with
 *     their timing, the call ends (outcome as stored) and leaves the table, the progress counters move;
 *   - stop it from the dashboard.
 *
 * Screenshots go to test-artifacts/runtime-*.png. With DOCS_SCREENSHOT=1 the live-monitor screenshot is
 * also written to docs/images/dashboard.png (the README's picture).
 */
import type { ChildProcess } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import type { Browser, Page } from 'playwright-core';
import { chromiumAvailable, launchChromium, screenshot } from './harness';
import { freePort } from '../../src/runtime/ports';
import { DEMO_CAMPAIGN_NAME } from '../../src/runtime/demo';
import { waitFor } from '../helpers/wait';
import { spawnStart, waitForBanner } from '../helpers/start';
import { describeWith } from '../helpers/tools';

const root = path.resolve(__dirname, '..', '..');
const run = describeWith('Chromium', chromiumAvailable(), 'apt-get install chromium, or set CHROMIUM_PATH');

interface Runtime {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
  base: string;
}

async function startRuntime(dataDir: string): Promise<Runtime> {
  const PORT = String(await freePort());
  // the user's defaults: embedded database, broker and simulator; no API token, no broker accounts
  const started = spawnStart({
    PORT,
    MQTT_PORT: String(await freePort()),
    AGI_PORT: String(await freePort()),
    DATA_DIR: dataDir,
  });
  const rt = { ...started, base: `http://127.0.0.1:${PORT}` };
  // a build (when the sources changed) runs first: allow for it on a loaded machine
  await waitForBanner(started, 150000);
  return rt;
}

/** The text of the element, or null. */
const text = (page: Page, sel: string) => page.textContent(sel, { timeout: 1000 }).catch(() => null);

run('dashboard against the embedded runtime (npm start)', () => {
  let dataDir: string;
  let rt: Runtime;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  const api = async <T = any>(p: string): Promise<T> => {
    const r = await fetch(rt.base + '/api/v1' + p);
    if (!r.ok) throw new Error(`GET ${p}: ${r.status} ${await r.text()}`);
    return (await r.json()) as T;
  };

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-dash-rt-'));
    rt = await startRuntime(dataDir);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.setDefaultTimeout(30000);
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    // expected 4xx answers are logged by the browser as 'Failed to load resource'; anything else is a bug
    page.on('console', (m) => {
      if (
        m.type() === 'error' &&
        !/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())
      )
        pageErrors.push(m.text());
    });
  }, 180000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    if (rt && rt.child.exitCode === null) {
      rt.child.kill('SIGTERM');
      const code = await Promise.race([
        rt.exited,
        new Promise<string>((r) => setTimeout(() => r('timeout'), 20000).unref()),
      ]);
      if (code === 'timeout') {
        rt.child.kill('SIGKILL');
        await rt.exited; // the database files are closed before they are removed
      }
    }
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  }, 40000);

  test('the dashboard is served at /dialer and goes live over the /api/v1/live WebSocket', async () => {
    await page.goto(rt.base + '/dialer');
    expect(page.url()).toBe(rt.base + '/dialer/');
    await page.waitForSelector('#conn[data-state="connected"]');
    // the demo campaign's snapshot from the HTTP API: 10 simulated callees, nothing dialed yet
    const card = '.progress-card[data-campaign-id="1"]';
    await page.waitForSelector(card);
    expect(await text(page, `${card} .pc-name`)).toBe(DEMO_CAMPAIGN_NAME);
    // (the card is drawn with the campaign list, its counters when the status snapshot arrives)
    await page.waitForFunction(
      (sel) => document.querySelector(`${sel} [data-counter="queued"] b`)?.textContent === '10',
      card,
    );
    expect(await text(page, `${card} .pct`)).toBe('0%');
    expect(await text(page, `${card} .badge`)).toBe('draft');
  });

  test('create a campaign in the UI, upload contacts with a bad row: the row is refused with its line number', async () => {
    await page.click('a[data-tab="campaigns"]');
    await page.waitForSelector('#campaign-list li[data-campaign-id="1"]');
    await page.click('#new-campaign-btn');
    await page.fill('#create-form input[name=name]', 'Spring renewals');
    await page.fill('#create-form input[name=timezone]', 'America/Chicago');
    await page.fill('#create-form textarea[name=greeting]', 'Hi {{name}}, this is Alex from Acme about your renewal.');
    await page.click('#create-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#cd-name')?.textContent === 'Spring renewals');
    const listed = await api<{ campaigns: Array<{ id: number; name: string; timezone: string; status: string }> }>(
      '/campaigns',
    );
    const made = listed.campaigns.find((c) => c.name === 'Spring renewals');
    expect(made).toMatchObject({ timezone: 'America/Chicago', status: 'draft' });
    await page.waitForSelector(`#campaign-list li[data-campaign-id="${made!.id}"].selected`);

    const csv =
      'phone,name,plan\n(212) 555-0199,Ann Lee,gold\nnot-a-phone,Bad Row,silver\n415 555 0100,Bo Chen,silver\n';
    await page.setInputFiles('#contacts-form input[type=file]', {
      name: 'renewals.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(csv),
    });
    await page.click('#contacts-form button[type=submit]');
    await page.waitForSelector('#contacts-result .row-errors');
    const summary = await text(page, '#contacts-result .summary');
    expect(summary).toContain('2 added');
    expect(summary).toContain('1 rejected');
    const rows = await page.$$eval('#contacts-result .row-errors tbody tr', (trs) =>
      trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent)),
    );
    expect(rows).toHaveLength(1);
    expect(rows[0][0]).toBe('3'); // line 3 of the file (the header is line 1)
    expect(rows[0][1]).toContain('"not-a-phone" is not a phone number');
    // stored: the two good rows, nothing from the bad one
    const detail = await api<{ contacts_total: number }>(`/campaigns/${made!.id}`);
    expect(detail.contacts_total).toBe(2);
    await page.waitForFunction(() => /2 contacts/.test(document.querySelector('#cd-sub')?.textContent ?? ''));
    await screenshot(page, 'runtime-csv-error');
  });

  test('start the demo campaign from the dashboard: a call appears, a turn appears, the call ends and leaves, progress moves', async () => {
    // start it with a click, as a supervisor would
    await page.click('#campaign-list li[data-campaign-id="1"]');
    await page.waitForFunction((name) => document.querySelector('#cd-name')?.textContent === name, DEMO_CAMPAIGN_NAME);
    expect(await text(page, '#cd-status')).toBe('draft');
    // the other campaign's upload result is not shown under this one
    expect(await page.locator('#contacts-result').textContent()).toBe('');
    await page.click('.controls button[data-action="start"]');
    await page.waitForFunction(() =>
      Array.from(document.querySelectorAll('.toast')).some((t) => t.textContent?.includes('start ✓')),
    );
    await page.waitForFunction(() => document.querySelector('#cd-status')?.textContent === 'running');
    expect((await api<{ status: string }>('/campaigns/1')).status).toBe('running');

    await page.click('a[data-tab="monitor"]');
    await page.waitForSelector('#tab-monitor:not([hidden])');

    // a live call appears, masked, with its campaign and contact
    const first = page.locator('#calls-body tr[data-call-id]').first();
    await first.waitFor({ timeout: 30000 });
    const firstText = (await first.textContent()) ?? '';
    expect(firstText).toContain(DEMO_CAMPAIGN_NAME);
    expect(firstText).toMatch(/\+12•••••••0\d/);
    expect(firstText).not.toMatch(/\+1212555010\d/);

    // follow the first answered call's conversation
    const talking = page.locator('#calls-body tr[data-status="in_progress"]').first();
    await talking.waitFor({ timeout: 45000 });
    const callId = (await talking.getAttribute('data-call-id'))!;
    // click that call's row: `talking` is re-resolved on every use and points at another call once this one ends
    await page.locator(`#calls-body tr[data-call-id="${callId}"]`).click();
    await page.waitForSelector(`#calls-body tr[data-call-id="${callId}"].selected`);
    expect(await text(page, '#convo-title')).toContain(`Call #${callId}`);
    const listedCalls = await api<{ calls: Array<{ id: number; campaign_id: number; contact_name: string }> }>(
      '/calls?campaignId=1&limit=100',
    );
    const call = listedCalls.calls.find((c) => String(c.id) === callId)!;
    expect(call.campaign_id).toBe(1);
    const contact = call.contact_name;
    expect(await text(page, '#convo-title')).toBe(`Call #${callId} · ${contact}`);

    // the greeting turn, then the callee's answer and the agent's reply, each with its timing
    const greeting = page.locator('#convo .turn[data-seq="0"]');
    await greeting.waitFor({ timeout: 45000 });
    expect(await greeting.locator('.bubble.bot').textContent()).toContain(`Hello ${contact}`);
    expect(await greeting.locator('.timing').textContent()).toMatch(/tts \d+(\.\d)? (ms|s)/);
    const reply = page.locator('#convo .turn[data-seq="1"]');
    await reply.waitFor({ timeout: 45000 });
    expect(
      ((await reply.locator('.bubble.user').textContent()) ?? '').replace(/^Caller( · \d+%)?/, '').trim(),
    ).not.toBe('');
    expect(await reply.locator('.timing').textContent()).toMatch(/record \d+(\.\d)? (ms|s).*stt \d+(\.\d)? (ms|s)/);
    expect(await text(page, `#calls-body tr[data-call-id="${callId}"] td:last-child`)).not.toBe('0'); // turns column

    // progress moved live: the campaign status topic, not the API snapshot
    const card = '.progress-card[data-campaign-id="1"]';
    await page.waitForFunction((sel) => {
      const c = document.querySelector(sel);
      const n = (k: string) => Number(c?.querySelector(`[data-counter="${k}"] b`)?.textContent ?? 'NaN');
      return (
        !!c &&
        !/snapshot/.test(c.textContent ?? '') &&
        c.querySelector('.badge')?.textContent === 'running' &&
        n('queued') < 10 &&
        n('active') + n('dialing') + n('completed') + n('busy') + n('no_answer') + n('dnc_skipped') + n('failed') > 0
      );
    }, card);

    // The README's picture: a live campaign with calls in progress, a conversation open, progress bars.
    await page.locator('#convo .turn').last().scrollIntoViewIfNeeded();
    await screenshot(page, 'runtime-live');
    if (process.env.DOCS_SCREENSHOT) await docsScreenshot(page);

    // the call ends: the end line with the stored outcome, then the row leaves the table
    const end = page.locator('#convo .convo-end');
    await end.waitFor({ timeout: 60000 });
    const ended = await waitFor(
      async () => {
        const c = (
          await api<{ call: { status: string; outcome: string | null; ended_at: string | null } }>(`/calls/${callId}`)
        ).call;
        return c.ended_at ? c : false;
      },
      15000,
      'the call record to be closed',
    );
    // the end line names the stored result (the call's final status or its outcome), in the page's words
    const said = (await end.textContent())!.match(/^Call ended · (.+) · \d+:\d\d$/)?.[1];
    expect([ended.status, ended.outcome].filter(Boolean).map((o) => o!.replace(/_/g, ' '))).toContain(said);
    await page.locator(`#calls-body tr[data-call-id="${callId}"]`).waitFor({ state: 'detached', timeout: 20000 });
    expect(await text(page, '#convo-title')).toBe(`Call #${callId} · ${contact}`); // the conversation stays readable

    // the finished call is counted: done counters and the percentage moved, the bar has segments
    await page.waitForFunction((sel) => {
      const c = document.querySelector(sel);
      const n = (k: string) => Number(c?.querySelector(`[data-counter="${k}"] b`)?.textContent ?? 'NaN');
      return (
        n('completed') + n('busy') + n('no_answer') + n('dnc_skipped') + n('failed') >= 1 &&
        c?.querySelector('.pct')?.textContent !== '0%'
      );
    }, card);
    expect(await page.locator(`${card} .bar span`).count()).toBeGreaterThan(0);
    await screenshot(page, 'runtime-after-end');
  }, 150000);

  test('stop the demo campaign from the dashboard', async () => {
    await page.click('a[data-tab="campaigns"]');
    await page.click('#campaign-list li[data-campaign-id="1"]');
    await page.waitForFunction((name) => document.querySelector('#cd-name')?.textContent === name, DEMO_CAMPAIGN_NAME);
    await page.click('.controls button[data-action="stop"]');
    await page.waitForFunction(() =>
      Array.from(document.querySelectorAll('.toast')).some((t) => t.textContent?.includes('stop ✓')),
    );
    await page.waitForFunction(() => document.querySelector('#cd-status')?.textContent === 'stopped');
    expect((await api<{ status: string }>('/campaigns/1')).status).toBe('stopped');
    await page.waitForFunction(
      () => document.querySelector('#campaign-list li[data-campaign-id="1"] .badge')?.textContent === 'stopped',
    );
    await screenshot(page, 'runtime-stopped');
    expect(pageErrors).toEqual([]);
  });
});

/**
 * docs/images/dashboard.png: the live monitor once the followed call has a few turns (or has ended),
 * cropped to the content, animations settled.
 */
async function docsScreenshot(page: Page): Promise<void> {
  await page.waitForSelector('#convo .turn[data-seq="2"], #convo .convo-end', { timeout: 60000 });
  await page.locator('#convo .turn').last().scrollIntoViewIfNeeded();
  const bottom = await page.evaluate(() =>
    Math.ceil(document.querySelector('.monitor-grid')!.getBoundingClientRect().bottom + window.scrollY),
  );
  const width = page.viewportSize()!.width;
  fs.mkdirSync(path.join(root, 'docs', 'images'), { recursive: true });
  await page.screenshot({
    path: path.join(root, 'docs', 'images', 'dashboard.png'),
    clip: { x: 0, y: 0, width, height: bottom + 24 },
    animations: 'disabled',
  });
}
