/**
 * A number added to a do-not-call list is never dialed afterwards, with the list addition racing the
 * claim, a contact insert, the importer and a retry (migration 30; the claim reads no do-not-call table).
 * PostgreSQL only: each race holds one transaction open on its own connection and checks that the
 * other side waits (pg_stat_activity) before letting it go, so the interleaving is forced, not hoped for.
 * The last test runs claimers, list additions, inserts and retries at once and checks the invariant.
 */
import { Client } from 'pg';
import type { Db } from '../../src/store/db';
import { claimContacts } from '../../src/store/claim';
import { importContacts } from '../../src/campaign/import';
import { dbTargets } from '../helpers/db';
import { describeWith } from '../helpers/tools';
import { makeCampaign, makeContacts, waitFor } from '../campaign/fixtures';

const servers = dbTargets().slice(1);

describeWith(
  'PostgreSQL',
  servers.length > 0,
  'set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test',
)('do-not-call races on postgres', () => {
  const target = servers[0]?.();
  let db: Db;
  const clients: Client[] = [];
  beforeAll(async () => {
    db = await target.open({ poolSize: 8 });
  });
  afterAll(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
    await db?.close();
    await target.cleanup();
  });

  async function conn(): Promise<Client & { pid: number }> {
    const c = new Client({ connectionString: target.options().url });
    await c.connect();
    clients.push(c);
    const pid = (await c.query<{ p: number }>('select pg_backend_pid() as p')).rows[0].p;
    return Object.assign(c, { pid });
  }

  /** Resolves once `pid` waits on a lock (`what`: the wait event, e.g. advisory, transactionid). */
  async function waiting(pid: number, what?: string): Promise<void> {
    await waitFor(
      async () => {
        const r = await db.query<{ t: string | null; e: string | null }>(
          'select wait_event_type as t, wait_event as e from pg_stat_activity where pid = $1',
          [pid],
        );
        return r.rows[0]?.t === 'Lock' && (!what || r.rows[0]?.e === what);
      },
      10_000,
      `backend ${pid} waiting on ${what ?? 'a lock'}`,
    );
  }

  async function statusOf(cid: number, phone: string): Promise<string> {
    const r = await db.query<{ status: string }>('select status from contacts where campaign_id = $1 and phone = $2', [
      cid,
      phone,
    ]);
    return r.rows[0].status;
  }

  test('a list addition waits for a claim holding the contact; the claimed call is not dialed again', async () => {
    const cid = await makeCampaign(db);
    await makeContacts(db, cid, 1, { prefix: '+1771' });
    const a = await conn();
    const b = await conn();
    await a.query('begin');
    const got = await claimContacts(a, { campaignId: cid, limit: 1, worker: 'a' });
    expect(got.claimed.map((c) => c.phone)).toEqual(['+17710000001']);
    const adding = b.query(`insert into dnc (phone) values ('+17710000001')`);
    await waiting(b.pid, 'transactionid');
    await a.query('commit');
    await adding;
    expect(await statusOf(cid, '+17710000001')).toBe('in_call'); // dialed before the number was listed
    // its call ends busy: the retry finds the number listed and closes it
    await db.query(`update contacts set status = 'pending', next_attempt_at = now() where campaign_id = $1`, [cid]);
    expect(await statusOf(cid, '+17710000001')).toBe('dnc');
    expect((await claimContacts(db, { campaignId: cid, limit: 5 })).claimed).toHaveLength(0);
  });

  test('a claim skips a contact whose listing is not committed yet, and never gets it after', async () => {
    const cid = await makeCampaign(db);
    await makeContacts(db, cid, 3, { prefix: '+1772' });
    const a = await conn();
    await a.query('begin');
    await a.query(`insert into dnc (phone, campaign_id) values ('+17720000001', $1)`, [cid]);
    const first = await claimContacts(db, { campaignId: cid, limit: 5 });
    expect(first.claimed.map((c) => c.phone).sort()).toEqual(['+17720000002', '+17720000003']);
    await a.query('commit');
    expect(await statusOf(cid, '+17720000001')).toBe('dnc');
    expect((await claimContacts(db, { campaignId: cid, limit: 5 })).claimed).toHaveLength(0);
  });

  test.each(['contact first', 'listing first'])(
    'a contact insert and a listing of its number, concurrent (%s): the contact ends dnc',
    async (order) => {
      const cid = await makeCampaign(db);
      const a = await conn();
      const b = await conn();
      const phone = order === 'contact first' ? '+17730000001' : '+17730000002';
      const insertContact = (c: Client) =>
        c.query('insert into contacts (campaign_id, phone) values ($1, $2)', [cid, phone]);
      const list = (c: Client) => c.query('insert into dnc (phone) values ($1)', [phone]);
      await a.query('begin');
      if (order === 'contact first') {
        await insertContact(a);
        const p = list(b);
        await waiting(b.pid, 'advisory');
        await a.query('commit');
        await p;
      } else {
        await list(a);
        const p = insertContact(b);
        await waiting(b.pid, 'advisory');
        await a.query('commit');
        await p;
      }
      expect(await statusOf(cid, phone)).toBe('dnc');
      expect((await claimContacts(db, { campaignId: cid, limit: 5 })).claimed).toHaveLength(0);
    },
  );

  test('the importer settles its numbers at the end: a listing during the import or after its settle', async () => {
    const cid = await makeCampaign(db);
    const a = await conn();
    const b = await conn();
    // listed while the import's inserts are in flight (check deferred): its settle sees the listing
    await a.query('begin');
    await a.query(`select set_config('ai_dialer.dnc_settle', 'deferred', true)`);
    await a.query(`insert into contacts (campaign_id, phone) values ($1, '+17740000001'), ($1, '+17740000002')`, [cid]);
    await b.query(`insert into dnc (phone) values ('+17740000001')`); // does not wait: nothing to order yet
    await a.query('select contacts_dnc_settle($1, $2::text[])', [cid, ['+17740000001', '+17740000002']]);
    // listed after the settle, before the import commits: the listing waits, then sweeps
    const p = b.query(`insert into dnc (phone) values ('+17740000002')`);
    await waiting(b.pid, 'advisory');
    await a.query('commit');
    await p;
    expect(await statusOf(cid, '+17740000001')).toBe('dnc');
    expect(await statusOf(cid, '+17740000002')).toBe('dnc');
    // and the importer itself: listed numbers arrive closed
    await db.query(`insert into dnc (phone) values ('+16175550101')`);
    const r = await importContacts(db, cid, 'phone\n+16175550101\n+16175550102\n');
    expect(r.inserted).toBe(2);
    expect(await statusOf(cid, '+16175550101')).toBe('dnc');
    expect((await claimContacts(db, { campaignId: cid, limit: 5 })).claimed.map((c) => c.phone)).toEqual([
      '+16175550102',
    ]);
  });

  test('claims, listings, inserts and retries at once: no claim after a listing committed, none pending while listed', async () => {
    const cid = await makeCampaign(db, { maxAttempts: 1000 });
    const N = 300;
    const phone = (i: number) => `+1775${String(i).padStart(7, '0')}`;
    await makeContacts(db, cid, N / 2, { prefix: '+1775' }); // 1..150 now, 151..300 inserted during the run
    const listedAt = new Map<string, number>(); // phone -> when its listing was committed (client clock)
    const claims: Array<{ phone: string; startedAt: number }> = [];
    let stop = false;
    const rand = (n: number) => Math.floor(Math.random() * n);
    // claimers go on after the listings and inserts until they made more than N claims (a count, not a
    // time: how many fit in the run depends on the machine's load)
    const claimer = async (w: number) => {
      while (!stop || claims.length <= N) {
        const startedAt = Date.now();
        const r = await claimContacts(db, { campaignId: cid, limit: 1 + rand(3), worker: `w${w}` });
        for (const c of r.claimed) claims.push({ phone: c.phone, startedAt });
        // end each call at once as busy: back to pending (a retry), unless its number is listed
        if (r.claimed.length)
          await db.tx(async (q) => {
            await q.query(`update calls set status = 'busy', ended_at = now() where id = any($1::int[])`, [
              r.claimed.map((c) => c.callId),
            ]);
            await q.query(
              `update contacts set status = 'pending', next_attempt_at = now() where id = any($1::int[]) and status = 'in_call'`,
              [r.claimed.map((c) => c.contactId)],
            );
          });
      }
    };
    const lister = async () => {
      for (let k = 0; k < 60 && !stop; k++) {
        const p = phone(1 + rand(N));
        await db.query('insert into dnc (phone, campaign_id) values ($1, $2) on conflict do nothing', [
          p,
          rand(2) ? null : cid,
        ]);
        if (!listedAt.has(p)) listedAt.set(p, Date.now());
        await new Promise((res) => setTimeout(res, rand(15)));
      }
    };
    const inserter = async () => {
      for (let i = N / 2 + 1; i <= N && !stop; i += 5) {
        await db.query(
          `insert into contacts (campaign_id, phone) select $1, '+1775' || lpad(g::text, 7, '0') from generate_series($2::int, $3::int) g`,
          [cid, i, Math.min(N, i + 4)],
        );
        await new Promise((res) => setTimeout(res, rand(10)));
      }
    };
    const run = Promise.all([claimer(0), claimer(1), claimer(2), claimer(3)]);
    await Promise.all([lister(), inserter()]);
    stop = true;
    await run;
    const late = claims.filter((c) => listedAt.has(c.phone) && c.startedAt > listedAt.get(c.phone)!);
    expect(late).toEqual([]);
    const bad = await db.query<{ n: number }>(
      `select count(*)::int as n from contacts c where c.campaign_id = $1 and c.status = 'pending'
         and exists (select 1 from dnc d where d.phone = c.phone and (d.campaign_id is null or d.campaign_id = c.campaign_id))`,
      [cid],
    );
    expect(bad.rows[0].n).toBe(0);
    expect(claims.length).toBeGreaterThan(N);
    expect(listedAt.size).toBeGreaterThan(20);
  });
});
