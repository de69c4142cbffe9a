/**
 * Scaling out (docs/operations/scaling.md): two runtimes (`npm start`, each its own process, WORKER_NAME,
 * ARI_APP, FastAGI port and AGI_ADVERTISE) on one PostgreSQL database and one Asterisk simulator (its own
 * process, journalling every call). Both work the same campaign; every answered call's AGI goes back to the
 * runtime that originated it (channel variable AGI_TARGET, as the shipped dialplan uses it), nobody is
 * dialed twice, every call ends completed with its conversation. Needs `npm run build` (dist/).
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { ANY_PORTS } from '../helpers/start';
import { postgresTarget, type DbTarget } from '../helpers/db';
import { testWith } from '../helpers/tools';
import { waitFor } from '../helpers/wait';
import { startDialer, stopDialer, type Dialer } from '../e2e/runtime';
import { readJournal, startSimProcess, type SimProcess } from '../chaos/harness';

jest.setTimeout(300_000);

const url = process.env.DATABASE_URL;
const t = testWith('PostgreSQL (DATABASE_URL)', !!url, 'set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test');

t(
  'two runtimes share a campaign: each answered call is driven by its originator, no contact dialed twice',
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-scale-'));
    const n = 24;
    const phones = Array.from({ length: n }, (_x, i) => `+1303555${String(1000 + i)}`);
    const personas = path.join(dir, 'personas.json');
    const said = (text: string) => ({ text, pauseMs: 500 });
    fs.writeFileSync(
      personas,
      JSON.stringify(
        Object.fromEntries(
          phones.map((p) => [
            p,
            {
              name: 'talker',
              dial: { behaviour: 'answer', ringMs: 300 },
              utterances: [said('Who is this?'), said('Yes, that works.'), said('No, that is all, thank you.')],
            },
          ]),
        ),
      ),
    );
    const pg: DbTarget = postgresTarget(url!);
    const db = await pg.open();
    const rts = ['a', 'b'].map((name) => ({ name: `scale-${name}` }));
    let sim: SimProcess | undefined;
    const dialers: Dialer[] = [];
    try {
      // every call carries AGI_TARGET (AGI_ADVERTISE): the simulator's own AGI port is never used
      sim = await startSimProcess({ dir, personas, speed: 5 });
      for (const r of rts) {
        dialers.push(
          await startDialer({
            ...ANY_PORTS, // bound as 0; the banner says which (dialer.ports)
            DATA_DIR: path.join(dir, r.name),
            DATABASE_URL: pg.options().url!,
            ARI_URL: sim.url,
            ARI_USERNAME: sim.username,
            ARI_PASSWORD: sim.password,
            ARI_APP: r.name,
            AGI_ADVERTISE: '127.0.0.1', // the host: the runtime adds the FastAGI port it bound
            WORKER_NAME: r.name,
            AI_DIALER_SIMULATED: '1',
            TTS_ENGINE: 'sim',
            STT_ENGINE: 'sim',
            LLM_ENGINE: 'scripted',
          }),
        );
      }
      const [a, b] = dialers;
      const created = await a.post('/api/v1/campaigns', {
        name: 'Two runtimes',
        timezone: 'UTC',
        window_start: '00:00',
        window_end: '23:59',
        max_concurrent: 12,
        calls_per_second: 20,
        max_attempts: 1,
      });
      expect(created.status).toBe(201);
      const campaignId = created.body.id as number;
      await a.post(`/api/v1/campaigns/${campaignId}/phone-numbers`, { number: '+12125559000' });
      const csv = ['phone,name', ...phones.map((p, i) => `${p},Callee ${i}`)].join('\n') + '\n';
      expect((await a.post(`/api/v1/campaigns/${campaignId}/contacts`, csv, 'text/csv')).status).toBe(200);
      const started = await Promise.all([a, b].map((d) => d.post('/api/v1/calls/automated/start', { campaignId })));
      expect(started.map((s) => s.status)).toEqual([200, 200]);

      await waitFor(
        async () =>
          (
            await db.query<{ open: number }>(
              `select count(*)::int as open from contacts where campaign_id = $1 and status in ('pending','in_call')`,
              [campaignId],
            )
          ).rows[0].open === 0,
        180_000,
        'every contact done',
        500,
      );
      await waitFor(
        async () =>
          (
            await db.query<{ n: number }>(
              `select count(*)::int as n from calls where campaign_id = $1 and status not in ('completed','failed','no_answer','busy')`,
              [campaignId],
            )
          ).rows[0].n === 0,
        30_000,
        'every call closed',
        200,
      );
      const calls = (
        await db.query<{ id: number; contact_id: number; worker: string; status: string; turns: number }>(
          `select c.id, c.contact_id, c.worker, c.status,
                (select count(*)::int from call_turns t where t.call_id = c.id and t.user_text <> '') as turns
           from calls c where c.campaign_id = $1 order by c.id`,
          [campaignId],
        )
      ).rows;
      // nobody dialed twice: one call per contact, and one channel per phone at the far end
      expect(calls).toHaveLength(n);
      expect(new Set(calls.map((c) => c.contact_id)).size).toBe(n);
      const journal = readJournal(sim.journal) as Array<{ ev: string; phone?: string; callId?: string; agi?: string }>;
      const ups = journal.filter((l) => l.ev === 'up');
      expect(ups).toHaveLength(n);
      expect(new Set(ups.map((l) => l.phone)).size).toBe(n);
      // both runtimes placed calls, and every call was completed with its three caller turns
      const byWorker = new Map<string, number>();
      // the worker name is `<WORKER_NAME>:<campaign-queue node id>`
      const runtimeOf = (worker: string | undefined) => (worker ?? '').split(':')[0];
      for (const c of calls) byWorker.set(runtimeOf(c.worker), (byWorker.get(runtimeOf(c.worker)) ?? 0) + 1);
      expect([...byWorker.keys()].sort()).toEqual(['scale-a', 'scale-b']);
      expect(calls.filter((c) => c.status !== 'completed' || c.turns < 3)).toEqual([]);
      // each AGI session went to the FastAGI of the runtime that placed the call
      const agiOf = new Map(rts.map((r, i) => [r.name, `127.0.0.1:${dialers[i].ports.agi}`]));
      const sessions = journal.filter((l) => l.ev === 'agi');
      expect(sessions).toHaveLength(n);
      const workerOf = new Map(calls.map((c) => [String(c.id), runtimeOf(c.worker)]));
      const misrouted = sessions.filter((s) => agiOf.get(workerOf.get(String(s.callId)) ?? '') !== s.agi);
      expect(misrouted).toEqual([]);
    } finally {
      for (const d of dialers) await stopDialer(d).catch(() => undefined);
      await sim?.stop();
      await db.close();
      await pg.cleanup().catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
