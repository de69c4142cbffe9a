/** Test fixtures for the campaign queue: campaigns, caller-ID numbers, contacts, DNC rows. */
import type { Queryable } from '../../src/store/db';
import { waitFor as pollUntil } from '../helpers/wait';

export interface CampaignInput {
  name?: string;
  status?: string;
  timezone?: string;
  windowStart?: string;
  windowEnd?: string;
  maxConcurrent?: number;
  callsPerSecond?: number;
  maxAttempts?: number;
  retryPolicy?: Record<string, number>;
  strategy?: 'round_robin' | 'least_recently_used' | 'local_presence';
  numbers?: string[];
  inactiveNumbers?: string[];
  settings?: Record<string, unknown>;
}

export async function makeCampaign(q: Queryable, c: CampaignInput = {}): Promise<number> {
  const r = await q.query<{ id: number }>(
    `insert into campaigns (name, status, timezone, window_start, window_end, max_concurrent, calls_per_second, max_attempts, caller_id_strategy, retry_policy, settings)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, coalesce($10::jsonb, '{"busy":600,"no_answer":3600,"failed":1800,"congestion":600,"cancelled":0}'::jsonb), $11::jsonb) returning id`,
    [
      c.name ?? 'test',
      c.status ?? 'running',
      c.timezone ?? 'America/New_York',
      c.windowStart ?? '00:00',
      c.windowEnd ?? '23:59:59.999999',
      c.maxConcurrent ?? 100000,
      c.callsPerSecond ?? 100,
      c.maxAttempts ?? 3,
      c.strategy ?? 'round_robin',
      c.retryPolicy ? JSON.stringify(c.retryPolicy) : null,
      JSON.stringify(c.settings ?? {}),
    ],
  );
  const id = r.rows[0].id;
  for (const n of c.numbers ?? ['+12125550100']) {
    await q.query('insert into phone_numbers (campaign_id, number) values ($1, $2)', [id, n]);
  }
  for (const n of c.inactiveNumbers ?? []) {
    await q.query('insert into phone_numbers (campaign_id, number, active) values ($1, $2, false)', [id, n]);
  }
  return id;
}

/** n contacts with phones +1555<7 digits from start>, zone `tz` (null: campaign's). */
export async function makeContacts(
  q: Queryable,
  campaignId: number,
  n: number,
  opts: { tz?: string | null; start?: number; prefix?: string } = {},
): Promise<void> {
  await q.query(
    `insert into contacts (campaign_id, phone, name, timezone, fields)
     select $1, $4 || lpad((g + $3)::text, 7, '0'), 'Contact ' || g, $2, jsonb_build_object('n', g)
     from generate_series(1, $5::int) g`,
    [campaignId, opts.tz ?? null, opts.start ?? 0, opts.prefix ?? '+1555', n],
  );
}

export async function addDnc(q: Queryable, phone: string, campaignId: number | null = null): Promise<void> {
  await q.query(`insert into dnc (phone, campaign_id) values ($1, $2) on conflict do nothing`, [phone, campaignId]);
}

/** Poll `cond` until it is truthy or the deadline passes (test/helpers/wait.ts, with this suite's defaults). */
export function waitFor<T>(cond: () => T | Promise<T>, timeoutMs = 15000, what = 'condition'): Promise<T> {
  return pollUntil(async () => (await cond()) || undefined, timeoutMs, what, 10) as Promise<T>;
}
