/**
 * Token buckets in the database (`rate_limits`), shared by every worker on it: one per campaign
 * (calls per second of the campaign) and one global (`global`: the trunk's calls per second).
 * Taking tokens from several buckets is one statement that locks the rows in key order (no deadlock)
 * and grants the same whole number from each, so no bucket is ever overdrawn.
 */
import type { Queryable } from './db';

export interface BucketSpec {
  key: string;
  /** Tokens per second. */
  rate: number;
  /** Most tokens that can pile up while idle (default: one second's worth, at least 1). */
  burst?: number;
}

export const GLOBAL_BUCKET = 'global';
export const campaignBucket = (id: number): string => `campaign:${id}`;

/** Create or re-rate buckets (tokens kept, clipped to the new burst). */
export async function ensureBuckets(q: Queryable, specs: BucketSpec[]): Promise<void> {
  for (const s of specs) {
    if (!(s.rate > 0) || !Number.isFinite(s.rate)) throw new Error(`bucket ${s.key}: rate must be a positive number`);
    const burst = s.burst ?? Math.max(1, s.rate);
    await q.query(
      `insert into rate_limits (key, rate, burst, tokens, updated_at) values ($1, $2, $3, least($3::float8, 1), clock_timestamp())
       on conflict (key) do update set rate = excluded.rate, burst = excluded.burst, tokens = least(rate_limits.tokens, excluded.burst)`,
      [s.key, s.rate, burst],
    );
  }
}

export interface TakeResult {
  granted: number;
  /** Seconds until the scarcest bucket holds one more whole token (0 when tokens were granted in full). */
  waitSeconds: number;
}

/** Take up to `want` whole tokens from every bucket in `keys` at once (missing buckets do not limit). */
export async function takeTokens(q: Queryable, keys: string[], want: number): Promise<TakeResult> {
  if (want <= 0 || !keys.length) return { granted: Math.max(0, want), waitSeconds: 0 };
  const r = await q.query<{ granted: number; wait: number }>(
    `with cur as (
       select key, rate, least(burst, tokens + rate * greatest(0, extract(epoch from (clock_timestamp() - updated_at))::float8)) as avail
         from rate_limits where key = any($1::text[]) order by key for update
     ), g as (
       select greatest(0, least($2::float8, floor(min(avail))))::int as n from cur
     ), upd as (
       update rate_limits r set tokens = cur.avail - g.n, updated_at = clock_timestamp() from cur, g where r.key = cur.key
       returning r.key, r.tokens, r.rate
     )
     select (select n from g) as granted, coalesce((select max(greatest(0, (1 - tokens) / rate)) from upd), 0)::float8 as wait`,
    [keys, want],
  );
  const row = r.rows[0];
  if (!row || row.granted === null || row.granted === undefined) return { granted: want, waitSeconds: 0 };
  return { granted: Number(row.granted), waitSeconds: Number(row.wait) };
}

/** Give back tokens taken but not used (no eligible contact). */
export async function refundTokens(q: Queryable, keys: string[], n: number): Promise<void> {
  if (n <= 0 || !keys.length) return;
  await q.query(
    `with l as (select key from rate_limits where key = any($1::text[]) order by key for update)
     update rate_limits r set tokens = least(r.burst, r.tokens + $2) from l where r.key = l.key`,
    [keys, n],
  );
}
