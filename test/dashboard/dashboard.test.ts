/**
 * The dashboard in a real browser (Debian chromium through playwright-core): live calls, turns,
 * call end and campaign progress over the live monitor WebSocket (/api/v1/live; MQTT over WebSocket
 * when configured); what the page says when the live feed cannot connect; campaign management over
 * the HTTP API.
 */
import type { Browser, Page } from 'playwright-core';
import { chromiumAvailable, launchChromium, screenshot, startDashboardHarness, type DashboardHarness } from './harness';
import type { CampaignControlApi } from '../../src/api/router';
import { describeWith } from '../helpers/tools';
import { waitFor } from '../helpers/wait';

const run = describeWith('Chromium', chromiumAvailable(), 'apt-get install chromium, or set CHROMIUM_PATH');

run('dashboard in headless Chromium', () => {
  let hx: DashboardHarness;
  let browser: Browser;
  let page: Page;
  let campaignId: number;
  const controlCalls: string[] = [];
  const control: CampaignControlApi = {
    start: async (id) => {
      controlCalls.push(`start ${id}`);
      await hx.db.query("update campaigns set status = 'running' where id = $1", [id]);
      return { state: 'running' };
    },
    stop: async (id) => {
      controlCalls.push(`stop ${id}`);
      await hx.db.query("update campaigns set status = 'stopped' where id = $1", [id]);
      return { state: 'stopped' };
    },
    pause: async (id) => {
      controlCalls.push(`pause ${id}`);
      await hx.db.query("update campaigns set status = 'paused' where id = $1", [id]);
      return { state: 'paused' };
    },
    resume: async (id) => {
      controlCalls.push(`resume ${id}`);
      return { state: 'running' };
    },
  };
  const pageErrors: string[] = [];

  beforeAll(async () => {
    hx = await startDashboardHarness({ control });
    const c = await hx.db.query<{ id: number }>(
      "insert into campaigns (name, timezone, settings) values ('Spring renewals', 'America/Chicago', '{\"greeting\":\"Hi, this is Alex from Acme.\"}') returning id",
    );
    campaignId = c.rows[0].id;
    await hx.db.query(
      "insert into contacts (campaign_id, phone, name) select $1, '+1212555' || lpad(g::text, 4, '0'), 'Contact ' || g from generate_series(1, 40) g",
      [campaignId],
    );
    await hx.db.query(
      "insert into phone_numbers (campaign_id, number, label) values ($1, '+12125550100', 'NYC main')",
      [campaignId],
    );
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    // expected 4xx answers are logged by the browser as 'Failed to load resource'; anything else is a bug
    page.on('console', (m) => {
      if (
        m.type() === 'error' &&
        !/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())
      )
        pageErrors.push(m.text());
    });
  });
  afterAll(async () => {
    await browser?.close();
    await hx?.close();
  });

  test('live monitor: a call appears, a turn appears, the call ends, progress moves', async () => {
    await page.goto(hx.url + '/dialer'); // redirected to /dialer/
    expect(page.url()).toBe(hx.pageUrl);
    await page.waitForSelector('#conn[data-state="connected"]');
    // progress snapshot from the API before any live message
    await page.waitForSelector(`.progress-card[data-campaign-id="${campaignId}"]`);
    expect(await page.textContent(`.progress-card[data-campaign-id="${campaignId}"] [data-counter="queued"] b`)).toBe(
      '40',
    );

    const call = { id: 9001, campaignId, contactId: 1, phone: '+12125550001', contact: { name: 'Contact 1' } };
    await hx.publish('call_started', { call });
    const row = page.locator('tr[data-call-id="9001"]');
    await row.waitFor();
    expect(await row.textContent()).toContain('Spring renewals');
    expect(await row.textContent()).toContain('+12•••••••01'); // masked by default
    expect(await row.textContent()).not.toContain('+12125550001');
    await page.check('#show-numbers');
    expect(await row.textContent()).toContain('+12125550001');
    await page.uncheck('#show-numbers');
    expect(await page.textContent('#active-count')).toBe('1');

    await hx.publish('call_answered', { call });
    await page.waitForSelector('tr[data-call-id="9001"][data-status="in_progress"]');
    await row.click();
    await hx.publish('conversation_turn', {
      call,
      turn: { seq: 0, botText: 'Hi, this is Alex from Acme.', timing: { ttsMs: 140 } },
    });
    await hx.publish('conversation_turn', {
      call,
      turn: {
        seq: 1,
        userText: 'Yes, I can talk now.',
        botText: 'Great! Your renewal is due next week.',
        confidence: 0.93,
        timing: { recordMs: 2100, sttMs: 310, llmMs: 420, ttsMs: 150, totalMs: 2980 },
      },
    });
    await page.waitForSelector('#convo .turn[data-seq="1"]');
    const convo = await page.textContent('#convo');
    expect(convo).toContain('Yes, I can talk now.');
    expect(convo).toContain('Great! Your renewal is due next week.');
    expect(convo).toContain('stt 310 ms');
    expect(convo).toContain('turn 3.0 s');

    // a second call to make the table look real
    await hx.publish('call_started', { call: { id: 9002, campaignId, phone: '+13125550002' } });
    await page.locator('tr[data-call-id="9002"]').waitFor();
    await hx.publish('campaign_progress', {
      progress: {
        campaignId,
        state: 'running',
        total: 40,
        queued: 30,
        dialing: 1,
        active: 1,
        completed: 5,
        failed: 1,
        no_answer: 1,
        busy: 1,
        dnc_skipped: 0,
      },
    });
    await page.waitForFunction(
      (id) =>
        document.querySelector(`.progress-card[data-campaign-id="${id}"] [data-counter="completed"] b`)?.textContent ===
        '5',
      campaignId,
    );
    expect(await page.textContent(`.progress-card[data-campaign-id="${campaignId}"] .pct`)).toBe('20%');
    expect(await page.textContent(`.progress-card[data-campaign-id="${campaignId}"] .badge`)).toBe('running');
    await page.emulateMedia({ colorScheme: 'dark' });
    await screenshot(page, 'dashboard-monitor-dark');
    await page.emulateMedia({ colorScheme: 'light' });

    await hx.publish('call_ended', { call: { ...call, outcome: 'completed', durationMs: 65000, transcript: [] } });
    await page.waitForSelector('tr[data-call-id="9001"].ended');
    expect(await page.textContent('#convo')).toContain('Call ended · completed · 1:05');
    await hx.publish('campaign_progress', {
      progress: {
        campaignId,
        state: 'running',
        total: 40,
        queued: 30,
        dialing: 1,
        active: 0,
        completed: 6,
        failed: 1,
        no_answer: 1,
        busy: 1,
        dnc_skipped: 0,
      },
    });
    await page.waitForFunction(
      (id) => document.querySelector(`.progress-card[data-campaign-id="${id}"] .pct`)?.textContent === '22.5%',
      campaignId,
    );
    // calls leave when they end
    await page.locator('tr[data-call-id="9001"]').waitFor({ state: 'detached' });
    expect(await page.textContent('#active-count')).toBe('1');

    await page.evaluate(() => {
      document.documentElement.dataset.theme = 'light';
    });
    await screenshot(page, 'dashboard-monitor-light');
    await page.evaluate(() => {
      delete document.documentElement.dataset.theme;
    });
  });

  test('reconnects by itself after the WebSocket drops, saying why meanwhile', async () => {
    // the server's live monitor stops (1001 to every page) and comes back
    const hint = page.waitForFunction(() =>
      /stopping or restarting/.test(document.querySelector('#conn-hint')?.textContent ?? ''),
    );
    await hx.restartLive();
    await hint;
    await page.waitForSelector('#conn[data-state="connected"]', { timeout: 20000 });
    expect(await page.isHidden('#conn-hint')).toBe(true);
    await hx.publish('call_started', { call: { id: 9003, campaignId, phone: '+13125550003' } });
    await page.locator('tr[data-call-id="9003"]').waitFor();
  });

  test('campaign management: upload a CSV with a bad row and see the error; caller IDs; controls; create', async () => {
    await page.click('a[data-tab="campaigns"]');
    await page.click(`#campaign-list li[data-campaign-id="${campaignId}"]`);
    await page.waitForSelector('#campaign-detail:not([hidden])');
    expect(await page.textContent('#cd-name')).toBe('Spring renewals');

    const csv = 'phone,name,plan\n(212) 555-0199,Ann Lee,gold\nnot-a-phone,Bad Row,\n415 555 0100,Bo,silver\n';
    await page.setInputFiles('#contacts-form input[type=file]', {
      name: 'contacts.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(csv),
    });
    await page.click('#contacts-form button[type=submit]');
    await page.waitForSelector('#contacts-result .row-errors');
    expect(await page.textContent('#contacts-result .summary')).toContain('2 added');
    expect(await page.textContent('#contacts-result .summary')).toContain('1 rejected');
    const errRow = await page.textContent('#contacts-result .row-errors tbody tr');
    expect(errRow).toContain('3');
    expect(errRow).toContain('"not-a-phone" is not a phone number');

    await page.setInputFiles('#dnc-form input[type=file]', {
      name: 'dnc.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from('2125550199\nxx\n'),
    });
    await page.click('#dnc-form button[type=submit]');
    await page.waitForSelector('#dnc-result .row-errors');
    expect(await page.textContent('#dnc-result .summary')).toContain('1 added');
    const dnc = await hx.db.query<{ campaign_id: number }>("select campaign_id from dnc where phone = '+12125550199'");
    expect(dnc.rows).toEqual([{ campaign_id: campaignId }]);

    await page.fill('#cid-form input[name=number]', '12');
    await page.click('#cid-form button[type=submit]');
    await page.waitForSelector('#cid-error:not([hidden])');
    await page.fill('#cid-form input[name=number]', '(312) 555-0111');
    await page.fill('#cid-form input[name=label]', 'Chicago');
    await page.click('#cid-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#cid-list')?.textContent?.includes('+13125550111'));

    await page.click('.controls button[data-action="pause"]');
    await page.waitForFunction(
      () =>
        document.querySelector('#cd-status')?.textContent === 'paused' ||
        document.querySelector('#cd-status')?.textContent === 'running',
    );
    await page.waitForFunction(() =>
      Array.from(document.querySelectorAll('.toast')).some((t) => t.textContent?.includes('pause ✓')),
    );
    expect(controlCalls).toContain(`pause ${campaignId}`);
    // the details and the list are refreshed from the API after the control's answer: wait for them
    await page.waitForFunction(() => document.querySelector('#cd-status')?.textContent === 'paused', null, {
      timeout: 15000,
    });
    await page.waitForFunction(
      (id) => document.querySelector(`#campaign-list li[data-campaign-id="${id}"] .badge`)?.textContent === 'paused',
      campaignId,
      { timeout: 15000 },
    );
    await screenshot(page, 'dashboard-campaign');
    await page.emulateMedia({ colorScheme: 'dark' });
    await screenshot(page, 'dashboard-campaign-dark');
    await page.emulateMedia({ colorScheme: 'light' });

    // create: a bad time zone is refused with the API's message, then a good one is created
    await page.click('#new-campaign-btn');
    await page.fill('#create-form input[name=name]', 'Autumn check-ins');
    await page.fill('#create-form input[name=timezone]', 'Mars/Olympus');
    await page.click('#create-form button[type=submit]');
    await page.waitForSelector('#create-error:not([hidden])');
    expect(await page.textContent('#create-error')).toContain('timezone must be an IANA time zone');
    await screenshot(page, 'dashboard-create');
    await page.fill('#create-form input[name=timezone]', 'Europe/London');
    await page.fill('#create-form input[name=default_country]', 'GB');
    await page.fill('#create-form textarea[name=greeting]', 'Hello {{name}}!');
    await page.click('#create-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#cd-name')?.textContent === 'Autumn check-ins');
    const made = await hx.db.query<any>(
      "select timezone, default_country, settings, retry_policy from campaigns where name = 'Autumn check-ins'",
    );
    expect(made.rows[0]).toMatchObject({
      timezone: 'Europe/London',
      default_country: 'GB',
      settings: { greeting: 'Hello {{name}}!' },
      retry_policy: { busy: 600, no_answer: 3600, failed: 1800 },
    });
    // narrow window: panels stack
    await page.setViewportSize({ width: 420, height: 900 });
    await page.click('a[data-tab="monitor"]');
    await page.waitForSelector('#tab-monitor:not([hidden])');
    await screenshot(page, 'dashboard-narrow');
    expect(pageErrors).toEqual([]);
  });

  test('a first-time user starts a campaign from its card on the live monitor; its name shows whole', async () => {
    await page.setViewportSize({ width: 1400, height: 900 });
    const c = await hx.db.query<{ id: number }>(
      "insert into campaigns (name, timezone) values ('Demo campaign (simulated callees)', 'America/New_York') returning id",
    );
    const id = c.rows[0].id;
    await page.goto(hx.pageUrl); // the campaign list as a fresh visit loads it
    await page.click('a[data-tab="monitor"]');
    const card = `.progress-card[data-campaign-id="${id}"]`;
    await page.waitForSelector(`${card} .pc-name`);
    const name = page.locator(`${card} .pc-name`);
    expect(await name.textContent()).toBe('Demo campaign (simulated callees)');
    // not cut: the text fits its box (no ellipsis, no hidden overflow)
    expect(
      await name.evaluate((el) => el.scrollWidth <= el.clientWidth && getComputedStyle(el).textOverflow !== 'ellipsis'),
    ).toBe(true);
    const before = controlCalls.length;
    await page.click(`${card} button[data-card-action="start"]`);
    await waitFor(() => controlCalls.length > before || undefined, 10000, 'start through the API');
    expect(controlCalls.slice(before)).toEqual([`start ${id}`]);
    // the engine's progress says running: the card offers Pause in its place (then Resume when paused). A running
    // engine repeats its progress; so does this test, until the card shows it: the page's own status snapshot of
    // the campaign (no engine runs it here: "stalled") may land after the first one on a busy machine.
    const progressUntil = async (state: string, action: string): Promise<void> => {
      const button = page.locator(`${card} button[data-card-action="${action}"]`);
      await waitFor(
        async () => {
          await hx.publish('campaign_progress', { progress: { campaignId: id, state, total: 0, queued: 0 } });
          return (await button.isVisible()) || undefined;
        },
        20000,
        `the card's ${action} button`,
        300,
      );
    };
    await progressUntil('running', 'pause');
    await progressUntil('paused', 'resume');
    await screenshot(page, 'dashboard-card-start');
    expect(pageErrors).toEqual([]);
  });
});

run('dashboard with broker accounts and an API token', () => {
  let hx: DashboardHarness;
  let browser: Browser;
  beforeAll(async () => {
    hx = await startDashboardHarness({
      token: 'tok-123',
      accounts: [
        { username: 'viewer', password: 'view-pass', role: 'reader' },
        { username: 'ops', password: 'writer-secret', role: 'writer' },
      ],
      dashboard: { mqttUsername: 'viewer', live: 'mqtt' },
    });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await hx?.close();
  });

  test('asks for the API token once (reads need it too) and the read-only login; config never carries a password', async () => {
    const cfg = await (await fetch(hx.pageUrl + 'config.json')).json();
    expect(cfg).toEqual({
      title: 'AI Dialer',
      apiBase: '../api/v1',
      apiTokenRequired: true,
      hostLogin: false,
      live: 'mqtt',
      livePath: '../api/v1/live',
      mqtt: { path: '/mqtt', url: null, topicRoot: 'ai-dialer/v1', auth: true, username: 'viewer' },
    });
    expect(JSON.stringify(cfg)).not.toContain('pass');
    const page = await browser.newPage();
    await page.goto(hx.pageUrl);
    // call records are personal data: the first read is refused and the page asks for the token, once
    await page.waitForSelector('#token-dialog[open]');
    await page.fill('#token-form input[name=token]', 'tok-123');
    await page.click('#token-form button');
    await page.waitForSelector('#login-dialog[open]');
    expect(await page.isVisible('#token-dialog')).toBe(false);
    expect(await page.inputValue('#login-form input[name=username]')).toBe('viewer');
    await page.fill('#login-form input[name=password]', 'wrong');
    await page.click('#login-form button');
    // refused -> asked again
    await page.waitForSelector('#login-dialog[open]');
    await page.fill('#login-form input[name=password]', 'view-pass');
    await page.click('#login-form button');
    await page.waitForSelector('#conn[data-state="connected"]');
    await hx.publish('call_started', { call: { id: 77, campaignId: null, phone: '+12125550177' } });
    await page.locator('tr[data-call-id="77"]').waitFor();
    // the token button is shown; a write goes through with the token given once
    expect(await page.isVisible('#token-btn')).toBe(true);
    await page.click('a[data-tab="campaigns"]');
    await page.click('#new-campaign-btn');
    await page.fill('#create-form input[name=name]', 'Needs token');
    await page.click('#create-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#cd-name')?.textContent === 'Needs token');
    await page.close();
  });
});

run('dashboard: why the live feed cannot connect, and what to do', () => {
  let hx: DashboardHarness;
  let browser: Browser;
  beforeAll(async () => {
    hx = await startDashboardHarness({ token: 'tok-live-1' });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await hx?.close();
  });

  const hintOf = (page: Page) => page.textContent('#conn-hint');

  test('no token: "login needed" and the token dialog; with the token the feed is live over /api/v1/live', async () => {
    const page = await browser.newPage();
    const sockets: string[] = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await page.goto(hx.pageUrl);
    await page.waitForSelector('#conn[data-state="error"]');
    expect(await page.textContent('#conn-text')).toBe('login needed');
    expect(await hintOf(page)).toMatch(/needs the API token .*API token button/);
    await page.waitForSelector('#token-dialog[open]');
    await page.fill('#token-form input[name=token]', 'tok-live-1');
    await page.click('#token-form button');
    await page.waitForSelector('#conn[data-state="connected"]');
    expect(await page.isHidden('#conn-hint')).toBe(true);
    expect(sockets.every((u) => u === hx.url.replace('http', 'ws') + '/api/v1/live')).toBe(true);
    expect(sockets.length).toBeGreaterThan(0);
    await hx.publish('call_started', { call: { id: 501, campaignId: null, phone: '+12125550501' } });
    await page.locator('tr[data-call-id="501"]').waitFor();
    await page.close();
  });

  test('a wrong saved token: "token refused"', async () => {
    const page = await browser.newPage();
    await page.goto(hx.pageUrl);
    await page.evaluate(() => localStorage.setItem('aiDialerToken', 'not-the-token'));
    await page.reload();
    await page.waitForFunction(() => document.querySelector('#conn-text')?.textContent === 'token refused');
    expect(await hintOf(page)).toMatch(/refused the API token saved in this browser/);
    await page.close();
  });

  test('a proxy that does not pass WebSocket upgrades: "live feed blocked" naming what to forward', async () => {
    const cut = (_req: unknown, sock: import('net').Socket) => sock.destroy();
    hx.server.prependListener('upgrade', cut);
    const page = await browser.newPage();
    try {
      await page.goto(hx.pageUrl);
      await page.evaluate(() => localStorage.setItem('aiDialerToken', 'tok-live-1'));
      await page.reload();
      await page.waitForFunction(() => document.querySelector('#conn-text')?.textContent === 'live feed blocked');
      expect(await hintOf(page)).toMatch(/login is fine .*forward WebSocket upgrades/);
      // the proxy is fixed: the page retries by itself
      hx.server.off('upgrade', cut);
      await page.waitForSelector('#conn[data-state="connected"]', { timeout: 30000 });
    } finally {
      hx.server.off('upgrade', cut);
      await page.close();
    }
  });

  test('the server goes away: "server unreachable", retrying', async () => {
    const page = await browser.newPage();
    await page.goto(hx.pageUrl);
    await page.evaluate(() => localStorage.setItem('aiDialerToken', 'tok-live-1'));
    await page.reload();
    await page.waitForSelector('#conn[data-state="connected"]');
    hx.server.close();
    hx.server.closeAllConnections();
    await hx.live.close();
    await page.waitForFunction(() => document.querySelector('#conn-text')?.textContent === 'server unreachable', null, {
      timeout: 20000,
    });
    expect(await hintOf(page)).toMatch(/Cannot reach the server .*running/);
    await page.close();
  });
});
