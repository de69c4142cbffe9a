/**
 * The embedded runtime (`npm start`, simulator, PGlite) through deploys, SIGTERM and a restart
 * (issue 12 items 1 and 5): a partial deploy of an unrelated node does not touch live calls; a full
 * deploy of unchanged flows resumes dialing and leaves no call open; SIGTERM to the npm pid mid-campaign
 * drains (exit 0, no call open, no contact in_call, nothing left on the ports); started again without
 * touching anything, the running campaign is picked up without Start.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { openDb } from '../../src/store/db';
import { checkPortFree } from '../../src/runtime/ports';
import { ANY_PORTS, portEnv, spawnStart, waitForBanner, type Started } from '../helpers/start';
import { waitFor } from '../helpers/wait';

jest.setTimeout(240000);

interface CallRow {
  id: number;
  status: string;
  reason: string | null;
  created_at: string;
}

describe('runtime resilience (npm start, simulator, PGlite)', () => {
  let dataDir: string;
  let env: Record<string, string>;
  let rt: Started | undefined;
  let base: string;

  const api = async <T = Record<string, unknown>>(
    method: string,
    p: string,
    body?: unknown,
    type = 'application/json',
  ): Promise<T> => {
    const r = await fetch(base + p, {
      method,
      headers: body === undefined ? {} : { 'content-type': type },
      body: body === undefined ? undefined : type === 'application/json' ? JSON.stringify(body) : String(body),
    });
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`);
    return (await r.json()) as T;
  };
  const calls = async (): Promise<CallRow[]> =>
    (await api<{ calls: CallRow[] }>('GET', '/api/v1/calls?campaignId=1&limit=500')).calls;
  const active = async (): Promise<CallRow[]> =>
    (await api<{ calls: CallRow[] }>('GET', '/api/v1/calls?status=active&limit=500')).calls;
  const adminToken = async (): Promise<string> => {
    const r = await fetch(base + '/auth/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        client_id: 'node-red-admin',
        grant_type: 'password',
        scope: '*',
        username: 'admin',
        password: env.EDITOR_PASSWORD,
      }),
    });
    expect(r.status).toBe(200);
    return ((await r.json()) as { access_token: string }).access_token;
  };
  const deploy = async (type: 'full' | 'nodes', change?: (flows: Array<Record<string, unknown>>) => void) => {
    const auth = `Bearer ${await adminToken()}`;
    const cur = await fetch(base + '/flows', { headers: { 'Node-RED-API-Version': 'v2', Authorization: auth } }).then(
      (r) => r.json() as Promise<{ rev: string; flows: Array<Record<string, unknown>> }>,
    );
    change?.(cur.flows);
    const r = await fetch(base + '/flows', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'Node-RED-API-Version': 'v2',
        'Node-RED-Deployment-Type': type,
        Authorization: auth,
      },
      body: JSON.stringify({ rev: cur.rev, flows: cur.flows }),
    });
    expect(r.status).toBe(200);
  };
  const start = async (): Promise<void> => {
    rt = spawnStart(env, { npm: true });
    const bound = await waitForBanner(rt, 180000);
    // the first start binds port 0 and prints the ports bound; a restart reuses them, as a real restart does
    Object.assign(env, portEnv(bound));
    base = `http://127.0.0.1:${bound.http}`;
  };
  const sigterm = async (): Promise<number | null> => {
    const s = rt!;
    process.kill(s.child.pid!, 'SIGTERM'); // the npm pid, as a supervisor does
    const code = await Promise.race([s.exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 90000))]);
    if (code === 'timeout') {
      s.child.kill('SIGKILL');
      throw new Error(`npm start did not exit after SIGTERM:\n${s.out().slice(-3000)}`);
    }
    return code as number | null;
  };

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-resilience-'));
    env = {
      ...ANY_PORTS,
      DATA_DIR: dataDir,
      SIM_SPEED: '2',
      DRAIN_TIMEOUT: '3',
      LEASE_TTL: '4',
      EDITOR_PASSWORD: 'resilience-test-pw', // the admin API (deploys) needs the editor login
    };
    await start();
    // 40 more talkers (numbers ending in 5-9 talk in the demo) so the campaign outlasts the test
    const csv = [
      'phone,name',
      ...Array.from({ length: 40 }, (_, i) => `+1212555${String(1005 + i * 10 + (i % 5)).padStart(4, '0')},T${i}`),
    ];
    await api('POST', '/api/v1/campaigns/1/contacts', csv.join('\n') + '\n', 'text/csv');
  });

  afterAll(async () => {
    if (rt && rt.child.exitCode === null && rt.child.signalCode === null) {
      rt.child.kill('SIGTERM');
      await Promise.race([rt.exited, new Promise((r) => setTimeout(r, 60000))]);
      if (rt.child.exitCode === null) rt.child.kill('SIGKILL');
    }
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('a partial deploy of an unrelated node leaves live calls alone; a full deploy of unchanged flows resumes dialing and leaves no call open', async () => {
    await api('POST', '/api/v1/calls/automated/start', { campaignId: 1 });
    const live = await waitFor(
      async () => {
        const a = await active();
        return a.length >= 2 ? a : undefined;
      },
      60000,
      'two live calls',
    );
    await deploy('nodes', (flows) => {
      const tab = flows.find((n) => n.type === 'tab');
      flows.push({
        id: 'resilience.note',
        type: 'comment',
        z: tab?.id,
        name: 'added by a partial deploy',
        x: 100,
        y: 40,
        wires: [],
      });
    });
    // those calls end by themselves, with their own outcomes (nothing reconciled or cut)
    await waitFor(
      async () => {
        const open = new Set((await active()).map((c) => c.id));
        return live.every((c) => !open.has(c.id)) || undefined;
      },
      90000,
      'the calls live at the partial deploy to end',
    );
    const after = new Map((await calls()).map((c) => [c.id, c]));
    for (const c of live) expect(after.get(c.id)?.reason ?? '').not.toMatch(/reconciled|shutdown|agi_refused/);

    const before = await waitFor(
      async () => {
        const a = await active();
        return a.length >= 1 ? a : undefined;
      },
      60000,
      'a live call before the full deploy',
    );
    const deployedAt = Date.now();
    const lastId = Math.max(...(await calls()).map((c) => c.id));
    await deploy('full');
    // dialing resumes (the lease is taken again by the new queue) and nothing from before stays open
    await waitFor(
      async () => (await calls()).some((c) => c.id > lastId) || undefined,
      60000,
      'a call after the deploy',
    );
    await waitFor(
      async () => {
        const open = new Set((await active()).map((c) => c.id));
        return before.every((c) => !open.has(c.id)) || undefined;
      },
      60000,
      'no call from before the deploy left open',
    );
    const st = await api<{ state: string; owner: string | null }>('GET', '/api/v1/campaigns/1/status');
    expect(st.state).toBe('running');
    expect(st.owner).toBeTruthy();
    expect(Date.now() - deployedAt).toBeLessThan(120000);
  });

  test('SIGTERM to the npm pid mid-campaign: exit 0, no call open, no contact in_call, nothing left on the ports', async () => {
    await waitFor(async () => ((await active()).length >= 1 ? true : undefined), 60000, 'a live call');
    const code = await sigterm();
    expect(code).toBe(0);
    expect(rt!.out()).toMatch(/SIGTERM: stopping: no new calls/);
    await checkPortFree(Number(env.PORT), '127.0.0.1');
    await checkPortFree(Number(env.AGI_PORT), '127.0.0.1');
    // the database is free again (its lock released) and clean
    const db = await openDb({ dataDir: path.join(dataDir, 'db') });
    try {
      const r = await db.query<{ open: number; in_call: number; status: string }>(
        `select (select count(*)::int from calls where status in ('initiated','ringing','in_progress')) as open,
                (select count(*)::int from contacts where status = 'in_call') as in_call,
                (select status from campaigns where id = 1) as status`,
      );
      expect(r.rows[0]).toEqual({ open: 0, in_call: 0, status: 'running' });
    } finally {
      await db.close();
    }
  });

  test('started again without touching anything: the running campaign is picked up without Start', async () => {
    const lastId = await (async () => {
      const db = await openDb({ dataDir: path.join(dataDir, 'db'), migrate: false });
      try {
        return (await db.query<{ m: number }>('select coalesce(max(id), 0)::int as m from calls')).rows[0].m;
      } finally {
        await db.close();
      }
    })();
    await start();
    await waitFor(async () => (await calls()).some((c) => c.id > lastId) || undefined, 60000, 'a call without Start');
    const st = await api<{ state: string; owner: string | null; heartbeatAgeMs: number | null }>(
      'GET',
      '/api/v1/campaigns/1/status',
    );
    expect(st).toMatchObject({ state: 'running' });
    expect(st.owner).toBeTruthy();
    expect(st.heartbeatAgeMs).toBeLessThan(4000);
    expect(await sigterm()).toBe(0);
  });
});
