/**
 * Compliance of the claim: a randomized model check (no ineligible contact is ever claimed, every
 * eligible one is) and the calling-window edges across zones and DST changes, with a controlled clock.
 */
import type { Db } from '../../src/store/db';
import { claimContacts } from '../../src/store/claim';
import { dbTargets } from '../helpers/db';
import { makeCampaign } from '../campaign/fixtures';
import { seededRandom } from '../../src/util/random';

const ZONES = [
  null,
  'America/New_York',
  'America/Chicago',
  'America/Denver',
  'America/Phoenix',
  'America/Los_Angeles',
  'Pacific/Honolulu',
  'Europe/London',
  'Asia/Kolkata',
  'Asia/Tokyo',
  'Australia/Lord_Howe',
];

function localTime(at: Date, tz: string): string {
  return new Intl.DateTimeFormat('en-GB', {
    timeZone: tz,
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  }).format(at);
}

async function claimAll(db: Db, campaignId: number, now: Date): Promise<{ ids: Set<number>; dnc: number }> {
  const ids = new Set<number>();
  let dnc = 0;
  for (;;) {
    const r = await claimContacts(db, { campaignId, limit: 137, now, worker: 't' });
    dnc += r.dncSkipped;
    for (const c of r.claimed) {
      expect(ids.has(c.contactId)).toBe(false);
      ids.add(c.contactId);
    }
    if (!r.claimed.length && !r.dncSkipped) return { ids, dnc };
  }
}

describe.each(dbTargets().map((t) => [t().name, t] as const))('claim eligibility on %s', (_name, make) => {
  const target = make();
  let db: Db;
  beforeAll(async () => {
    db = await target.open();
  });
  afterAll(async () => {
    await db?.close();
    await target.cleanup();
  });

  test.each([1, 2, 3])('randomized: exactly the eligible contacts are claimed (seed %i)', async (seed) => {
    const rand = seededRandom(seed * 7919);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)];
    // a random instant in 2026 (whole seconds), and a campaign zone/window around it
    const now = new Date(Date.UTC(2026, 0, 1) + Math.floor(rand() * 365 * 86400) * 1000);
    const campTz = pick(ZONES.filter((z): z is string => !!z));
    const windows: Array<[string, string]> = [
      ['09:00:00', '20:00:00'],
      ['08:00:00', '21:00:00'],
      ['22:00:00', '06:00:00'],
      ['00:00:00', '12:00:00'],
    ];
    const [ws, we] = pick(windows);
    const maxAttempts = 1 + Math.floor(rand() * 4);
    const cid = await makeCampaign(db, {
      timezone: campTz,
      windowStart: ws,
      windowEnd: we,
      maxAttempts,
      numbers: ['+12125550100', '+13125550100'],
    });
    const other = await makeCampaign(db);

    const N = 3000;
    const rows = [];
    for (let i = 0; i < N; i++) {
      const phone = `+1${200 + Math.floor(rand() * 700)}${String(1000000 + i).slice(1)}${Math.floor(rand() * 10)}`;
      rows.push({
        phone,
        timezone: pick(ZONES),
        status: rand() < 0.85 ? 'pending' : pick(['in_call', 'done', 'failed', 'dnc']),
        attempts: Math.floor(rand() * (maxAttempts + 2)),
        next_attempt_at: new Date(now.getTime() + Math.round((rand() - 0.6) * 4 * 3600_000)).toISOString(),
        dnc: rand() < 0.1 ? 'global' : rand() < 0.1 ? 'campaign' : rand() < 0.1 ? 'other' : null,
      });
    }
    // a few at exactly now (due) and one second after (not due)
    rows[0].next_attempt_at = now.toISOString();
    rows[1].next_attempt_at = new Date(now.getTime() + 1000).toISOString();
    // half the do-not-call entries exist before the contacts are inserted, half are added after
    // (migration 30: both ways a listed contact is never pending)
    const dncRows = rows
      .filter((r) => r.dnc)
      .map((r) => ({ phone: r.phone, campaign_id: r.dnc === 'global' ? null : r.dnc === 'campaign' ? cid : other }));
    const addDncRows = (list: typeof dncRows) =>
      db.query(
        `insert into dnc (phone, campaign_id) select x.phone, x.campaign_id from json_to_recordset($1::json) as x(phone text, campaign_id int)`,
        [JSON.stringify(list)],
      );
    await addDncRows(dncRows.filter((_, i) => i % 2 === 0));
    const ins = await db.query<{ id: number; phone: string }>(
      `insert into contacts (campaign_id, phone, timezone, status, attempts, next_attempt_at)
       select $1, x.phone, x.timezone, x.status, x.attempts, x.next_attempt_at
         from json_to_recordset($2::json) as x(phone text, timezone text, status text, attempts int, next_attempt_at timestamptz)
       returning id, phone`,
      [cid, JSON.stringify(rows)],
    );
    const idOf = new Map(ins.rows.map((r) => [r.phone, r.id]));
    await addDncRows(dncRows.filter((_, i) => i % 2 === 1));

    const inWindow = (tz: string) => {
      const t = localTime(now, tz);
      return ws <= we ? t >= ws && t < we : t >= ws || t < we;
    };
    const expected = new Set<number>();
    const expectedDnc = new Set<number>();
    for (const r of rows) {
      const listed = r.dnc === 'global' || r.dnc === 'campaign';
      // every pending contact on a list in its scope is closed as dnc, due or not, in its window or not
      if (r.status === 'pending' && listed) {
        expectedDnc.add(idOf.get(r.phone)!);
        continue;
      }
      const candidate =
        r.status === 'pending' &&
        r.attempts < maxAttempts &&
        Date.parse(r.next_attempt_at) <= now.getTime() &&
        inWindow(r.timezone ?? campTz);
      if (candidate) expected.add(idOf.get(r.phone)!);
    }
    const got = await claimAll(db, cid, now);
    const unexpected = [...got.ids].filter((id) => !expected.has(id));
    const missed = [...expected].filter((id) => !got.ids.has(id));
    expect({ unexpected, missed }).toEqual({ unexpected: [], missed: [] });
    expect(got.dnc).toBe(0);
    const marked = await db.query<{ id: number }>(
      `select id from contacts where campaign_id = $1 and status = 'dnc' and last_outcome = 'dnc'`,
      [cid],
    );
    expect(new Set(marked.rows.map((r) => r.id))).toEqual(expectedDnc);
    // and none is pending while listed
    const listedPending = await db.query<{ n: number }>(
      `select count(*)::int as n from contacts c where c.status = 'pending'
         and exists (select 1 from dnc d where d.phone = c.phone and (d.campaign_id is null or d.campaign_id = c.campaign_id))`,
    );
    expect(listedPending.rows[0].n).toBe(0);
    // sanity: the draw produced both kinds
    expect(expected.size).toBeGreaterThan(0);
    expect(rows.length - expected.size).toBeGreaterThan(0);
  });

  /** One contact per zone; which are claimed at `at`. */
  async function claimedAt(
    at: string,
    zones: Array<string | null>,
    c: { timezone?: string; windowStart?: string; windowEnd?: string } = {},
  ): Promise<Array<string | null>> {
    const cid = await makeCampaign(db, {
      timezone: c.timezone ?? 'America/New_York',
      windowStart: c.windowStart ?? '09:00',
      windowEnd: c.windowEnd ?? '20:00',
    });
    await db.query(
      `insert into contacts (campaign_id, phone, timezone, next_attempt_at)
       select $1, '+1555000' || lpad(i::text, 4, '0'), z, '2000-01-01' from unnest($2::text[]) with ordinality as u(z, i)`,
      [cid, zones],
    );
    const r = await claimContacts(db, { campaignId: cid, limit: 100, now: new Date(at) });
    return r.claimed.map((x) => x.timezone).sort((a, b) => String(a).localeCompare(String(b)));
  }

  test('window edges across zones: start inclusive, end exclusive, each in its own zone', async () => {
    const zones = ['America/New_York', 'America/Chicago', 'America/Los_Angeles', 'Asia/Tokyo'];
    // 2026-06-15 13:00Z = 09:00 New York (EDT), 08:00 Chicago, 06:00 Los Angeles, 22:00 Tokyo
    expect(await claimedAt('2026-06-15T12:59:59Z', zones)).toEqual([]);
    expect(await claimedAt('2026-06-15T13:00:00Z', zones)).toEqual(['America/New_York']);
    expect(await claimedAt('2026-06-15T14:00:00Z', zones)).toEqual(['America/Chicago', 'America/New_York']);
    // 2026-06-16 02:59:59Z = 19:59:59 Los Angeles (11:59:59 Tokyo); 03:00Z = 20:00 there (closed)
    expect(await claimedAt('2026-06-16T02:59:59Z', zones)).toEqual(['America/Los_Angeles', 'Asia/Tokyo']);
    expect(await claimedAt('2026-06-16T03:00:00Z', zones)).toEqual(['Asia/Tokyo']);
    // 2026-06-15 00:00Z = 09:00 Tokyo (and 17:00 Los Angeles, 19:00 Chicago, 20:00 New York: closed)
    expect(await claimedAt('2026-06-14T23:59:59Z', ['Asia/Tokyo'])).toEqual([]);
    expect(await claimedAt('2026-06-15T00:00:00Z', zones)).toEqual([
      'America/Chicago',
      'America/Los_Angeles',
      'Asia/Tokyo',
    ]);
    // no zone on the contact: the campaign's zone applies
    expect(await claimedAt('2026-06-15T13:00:00Z', [null], { timezone: 'America/New_York' })).toEqual([null]);
    expect(await claimedAt('2026-06-15T13:00:00Z', [null], { timezone: 'America/Los_Angeles' })).toEqual([]);
    // a window that wraps midnight (22:00-02:00 local)
    expect(
      await claimedAt('2026-06-15T05:30:00Z', ['America/New_York'], { windowStart: '22:00', windowEnd: '02:00' }),
    ).toEqual(['America/New_York']);
    expect(
      await claimedAt('2026-06-15T06:00:00Z', ['America/New_York'], { windowStart: '22:00', windowEnd: '02:00' }),
    ).toEqual([]);
  });

  test('DST: America/New_York springs forward on 2026-03-08 and falls back on 2026-11-01', async () => {
    const ny = ['America/New_York'];
    // Saturday 2026-03-07 (EST, UTC-5): 09:00 local = 14:00Z
    expect(await claimedAt('2026-03-07T13:59:59Z', ny)).toEqual([]);
    expect(await claimedAt('2026-03-07T14:00:00Z', ny)).toEqual(ny);
    // Sunday 2026-03-08 (EDT, UTC-4 from 02:00 local): 09:00 local = 13:00Z; a fixed -5 offset would say 08:00
    expect(await claimedAt('2026-03-08T12:59:59Z', ny)).toEqual([]);
    expect(await claimedAt('2026-03-08T13:00:00Z', ny)).toEqual(ny);
    // 20:00 EDT on 03-08 = 2026-03-09 00:00Z
    expect(await claimedAt('2026-03-08T23:59:59Z', ny)).toEqual(ny);
    expect(await claimedAt('2026-03-09T00:00:00Z', ny)).toEqual([]);
    // Sunday 2026-11-01 (EST again from 02:00 local): 09:00 local = 14:00Z; 13:30Z is 08:30
    expect(await claimedAt('2026-11-01T13:30:00Z', ny)).toEqual([]);
    expect(await claimedAt('2026-11-01T14:00:00Z', ny)).toEqual(ny);
    // 20:00 EST on 11-01 = 2026-11-02 01:00Z
    expect(await claimedAt('2026-11-02T00:59:59Z', ny)).toEqual(ny);
    expect(await claimedAt('2026-11-02T01:00:00Z', ny)).toEqual([]);
    // Arizona keeps MST all year: 09:00 = 16:00Z on both sides of the change
    expect(await claimedAt('2026-03-08T15:59:59Z', ['America/Phoenix'])).toEqual([]);
    expect(await claimedAt('2026-03-08T16:00:00Z', ['America/Phoenix'])).toEqual(['America/Phoenix']);
  });
});
