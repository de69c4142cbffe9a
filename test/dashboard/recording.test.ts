/**
 * The dashboard's "Play recording" (issue 15 item 4) in headless Chromium: a call with a whole-call
 * recording shows the button; pressing it loads the file through the API with the token (an <audio src>
 * could not send it) and the audio element plays it (its length read by the browser); a call without a
 * recording shows no button. The recording route itself refuses a request without the token.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import type { Browser, Request } from 'playwright-core';
import { chromiumAvailable, launchChromium, screenshot, startDashboardHarness, type DashboardHarness } from './harness';
import { describeWith } from '../helpers/tools';
import { encodeWav } from '../../src/audio/wav';
import { recordingPathFor } from '../../src/calls/call-recordings';

const run = describeWith('Chromium', chromiumAvailable(), 'apt-get install chromium, or set CHROMIUM_PATH');
const TOKEN = 'tok-recording-7';

run('dashboard: the whole-call recording of a call', () => {
  let hx: DashboardHarness;
  let browser: Browser;
  let dir: string;
  let withRec: number;
  let without: number;
  let campaignId: number;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-dash-rec-'));
    hx = await startDashboardHarness({ token: TOKEN, recordingsDir: dir });
    const c = await hx.db.query<{ id: number }>(
      "insert into campaigns (name, timezone) values ('Recorded', 'UTC') returning id",
    );
    campaignId = c.rows[0].id;
    const ins = (phone: string) =>
      hx.db.query<{ id: number }>(
        `insert into calls (campaign_id, phone, status, outcome, answered_at, ended_at, recording_path)
         values ($1, $2, 'completed', 'completed', now(), now(), $3) returning id`,
        [campaignId, phone, null],
      );
    withRec = (await ins('+12125550001')).rows[0].id;
    // where MixMonitor writes it (src/calls/call-recordings.ts): calls/call-<id>.wav under RECORDINGS_DIR
    await hx.db.query('update calls set recording_path = $2 where id = $1', [withRec, recordingPathFor(withRec)]);
    without = (await ins('+12125550002')).rows[0].id;
    // 2.5 s of a 440 Hz tone at 8 kHz: what MixMonitor writes
    const n = 8000 * 2.5;
    const samples = new Int16Array(n);
    for (let i = 0; i < n; i++) samples[i] = Math.round(6000 * Math.sin((2 * Math.PI * 440 * i) / 8000));
    fs.mkdirSync(path.join(dir, 'calls'));
    fs.writeFileSync(path.join(dir, recordingPathFor(withRec)), encodeWav({ sampleRate: 8000, channels: 1, samples }));
    browser = await launchChromium();
  }, 180_000); // a loaded shared machine: PGlite, the broker and Chromium take their time
  afterAll(async () => {
    await browser?.close();
    await hx?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the button loads the recording with the token into an <audio>; a call without one has no button', async () => {
    // the route needs the API's credential
    const bare = await fetch(`${hx.url}/api/v1/calls/${withRec}/recording`);
    expect(bare.status).toBe(401);

    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    const recordingRequests: Request[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/recording')) recordingRequests.push(r);
    });
    await page.goto(hx.pageUrl);
    await page.waitForSelector('#token-dialog[open]');
    await page.fill('#token-form input[name=token]', TOKEN);
    await page.click('#token-form button');
    await page.waitForSelector('#conn[data-state="connected"]');
    for (const [id, phone] of [
      [withRec, '+12125550001'],
      [without, '+12125550002'],
    ] as const)
      await hx.publish('call_started', { call: { id, campaignId, phone } });

    // the call with a recording: the button, and nothing fetched until it is pressed
    await page.locator(`tr[data-call-id="${withRec}"]`).click();
    const button = page.locator('#convo .convo-recording button');
    await button.waitFor();
    expect(await button.textContent()).toBe('Play recording');
    expect(recordingRequests).toHaveLength(0);
    const answered = page.waitForResponse((r) => r.url().endsWith(`/calls/${withRec}/recording`));
    await button.click();
    const res = await answered;
    expect(res.status()).toBe(200);
    expect(res.headers()['content-type']).toMatch(/audio\/(wav|x-wav|wave)/);
    expect(recordingRequests).toHaveLength(1);
    expect(recordingRequests[0].headers().authorization).toBe(`Bearer ${TOKEN}`);
    // the audio element has the file (an object URL) and the browser decoded its length
    const audio = page.locator('#convo .convo-recording audio');
    await audio.waitFor();
    expect(await audio.getAttribute('src')).toMatch(/^blob:/);
    const duration = await page.waitForFunction(() => {
      const a = document.querySelector<HTMLAudioElement>('#convo .convo-recording audio');
      return a && a.readyState >= 1 && Number.isFinite(a.duration) ? a.duration : false;
    });
    expect(await duration.jsonValue()).toBeCloseTo(2.5, 1);
    // it plays (headless Chromium allows it after the click)
    await page.evaluate(() => document.querySelector<HTMLAudioElement>('#convo .convo-recording audio')!.play());
    await page.waitForFunction(() => {
      const a = document.querySelector<HTMLAudioElement>('#convo .convo-recording audio');
      return !!a && a.currentTime > 0.2;
    });
    await screenshot(page, 'dashboard-recording');

    // the call without a recording: its record is read, and no button appears
    const read = page.waitForResponse((r) => r.url().endsWith(`/api/v1/calls/${without}`));
    await page.locator(`tr[data-call-id="${without}"]`).click();
    expect((await read).status()).toBe(200);
    await page.waitForSelector(`tr[data-call-id="${without}"].selected`);
    expect(await page.locator('#convo .convo-recording').count()).toBe(0);
    expect(await page.locator('#convo button', { hasText: 'Play recording' }).count()).toBe(0);
    expect(recordingRequests).toHaveLength(1);
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
