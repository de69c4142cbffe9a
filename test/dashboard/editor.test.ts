/**
 * The Node-RED editor of `npm start`, as a first-time user sees it (headless Chromium): the palette
 * in the order of a call's life, every config node's edit dialog titled by its label (not the type
 * name), and a first start without Node-RED's false "Encrypted credentials not found" warning. Every
 * port is bound as 0 and read back from the banner.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import type { Browser, Page } from 'playwright-core';
import { chromiumAvailable, launchChromium, screenshot } from './harness';
import { spawnStart, waitForBanner, type Started } from '../helpers/start';
import { describeWith } from '../helpers/tools';

const run = describeWith('Chromium', chromiumAvailable(), 'apt-get install chromium, or set CHROMIUM_PATH');
const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as {
  'node-red': { nodes: Record<string, string> };
};
const CONFIG_TYPES = ['ai-dialer-store', 'ai-dialer-asterisk', 'ai-dialer-llm', 'ai-dialer-bus'];
/** A call's life: queued, dialed, answered into FastAGI, spoken to, heard, understood, answered, ended, told. */
const LIFECYCLE = [
  'campaign-queue',
  'ari-originate',
  'fastagi-in',
  'tts-speak',
  'agi-record',
  'stt-transcribe',
  'llm-turn',
  'agi-hangup',
  'call-broadcast',
];
const PASSWORD = 'editor-test-password';

run('the Node-RED editor of npm start', () => {
  let dataDir: string;
  let rt: Started;
  let base: string;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-editor-'));
    rt = spawnStart({ PORT: '0', MQTT_PORT: '0', AGI_PORT: '0', DATA_DIR: dataDir, EDITOR_PASSWORD: PASSWORD });
    const ports = await waitForBanner(rt, 150000);
    base = `http://127.0.0.1:${ports.http}`;
    const tok = await fetch(`${base}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_id: 'node-red-editor',
        grant_type: 'password',
        scope: '*',
        username: 'admin',
        password: PASSWORD,
      }),
    });
    expect(tok.status).toBe(200);
    const tokens = (await tok.json()) as object;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.setDefaultTimeout(60000);
    // the editor keeps its login in localStorage: set it before the editor loads
    await page.goto(`${base}/favicon.ico`).catch(() => undefined);
    await page.evaluate((t) => localStorage.setItem('auth-tokens', JSON.stringify(t)), tokens);
    await page.goto(`${base}/`);
    await page.waitForSelector('.red-ui-palette-node[data-palette-type="campaign-queue"]');
    await page.waitForFunction(() => (window as any).RED?.nodes?.version?.() !== undefined);
  }, 240000);

  afterAll(async () => {
    if (page) await screenshot(page, 'editor').catch(() => undefined);
    await browser?.close().catch(() => undefined);
    if (rt && rt.child.exitCode === null) {
      rt.child.kill('SIGTERM');
      await Promise.race([rt.exited, new Promise((r) => setTimeout(r, 20000).unref())]);
      if (rt.child.exitCode === null) rt.child.kill('SIGKILL');
    }
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  }, 40000);

  test('a first start logs no "Encrypted credentials not found"', () => {
    expect(rt.out()).toContain('AI dialer is running');
    expect(rt.out()).not.toMatch(/Encrypted credentials not found/);
  });

  test('the palette shows the nodes in the order of a call, as package.json lists them', async () => {
    const shown = await page.$$eval('.red-ui-palette-node[data-palette-type]', (els) =>
      els.map((e) => e.getAttribute('data-palette-type')!),
    );
    const ours = shown.filter((t) => LIFECYCLE.includes(t));
    expect(ours).toEqual(LIFECYCLE);
    expect(Object.keys(pkg['node-red'].nodes)).toEqual([...LIFECYCLE, ...CONFIG_TYPES]);
  });

  test.each(CONFIG_TYPES)('the %s dialog is titled by its label, not its type', async (type) => {
    const existing = await page.evaluate((t) => {
      let id: string | undefined;
      (window as any).RED.nodes.eachConfig((n: { type: string; id: string }) => {
        if (n.type === t && !id) id = n.id;
      });
      return id;
    }, type);
    // an existing one ("Edit ... node"), else a new one ("Add new ... config node")
    const open = () =>
      page.evaluate(([t, id]) => (window as any).RED.editor.editConfig('', t, id ?? '_ADD_'), [type, existing]);
    await open();
    const title = page.locator('.red-ui-tray-titlebar').last();
    // on a loaded machine the editor's first dialog has been seen not to open (a CI run timed out here): ask once more
    await title.waitFor({ timeout: 20000 }).catch(async () => {
      await open();
      await title.waitFor({ timeout: 30000 });
    });
    const text = ((await title.textContent()) ?? '').trim();
    await page.click('#node-config-dialog-cancel');
    await page.waitForSelector('.red-ui-tray', { state: 'detached' });
    expect(text).toMatch(existing ? /^Edit AI dialer .+ node$/ : /^Add new AI dialer .+ config node$/);
    expect(text).not.toContain(type);
  });
});
