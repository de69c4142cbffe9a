/**
 * Campaign leases: every runtime (campaign manager) that runs a campaign holds one row
 * (campaign, owner) with a heartbeat. A campaign whose status is `running` and that has no live lease
 * is stalled: any runtime with a campaign queue takes it over (its previous owners' open calls are
 * then reconciled against Asterisk). Several owners may share a campaign (scaling out); the claim
 * keeps them from dialing the same contact.
 *
 * `owner` is the worker name (stored on every call it places); `instance` is one manager object, so
 * a runtime restarted under the same worker name recognises the lease of its previous process.
 */
import os from 'os';
import type { Db, Queryable } from './db';

/** Advisory lock key (with the campaign id) serialising take-overs of one campaign. */
const TAKEOVER_LOCK = 7421003;

export interface LeaseRow {
  campaignId: number;
  owner: string;
  instance: string;
  host: string | null;
  pid: number | null;
  acquiredAt: Date;
  heartbeatAt: Date;
  /** Milliseconds since the last heartbeat (database clock). */
  ageMs: number;
  live: boolean;
}

interface RawLease {
  campaign_id: number;
  owner: string;
  instance: string;
  host: string | null;
  pid: number | null;
  acquired_at: Date;
  heartbeat_at: Date;
  age_ms: number;
}

function toLease(r: RawLease, ttlMs: number): LeaseRow {
  const ageMs = Math.max(0, Math.round(Number(r.age_ms)));
  return {
    campaignId: r.campaign_id,
    owner: r.owner,
    instance: r.instance,
    host: r.host,
    pid: r.pid === null ? null : Number(r.pid),
    acquiredAt: r.acquired_at,
    heartbeatAt: r.heartbeat_at,
    ageMs,
    live: ageMs < ttlMs,
  };
}

const SELECT = `select campaign_id, owner, instance, host, pid, acquired_at, heartbeat_at,
  extract(epoch from (now() - heartbeat_at)) * 1000 as age_ms from campaign_leases`;

/** Every lease of a campaign (live or expired), newest heartbeat first. */
export async function campaignLeases(q: Queryable, campaignId: number, ttlMs: number): Promise<LeaseRow[]> {
  const r = await q.query<RawLease>(`${SELECT} where campaign_id = $1 order by heartbeat_at desc`, [campaignId]);
  return r.rows.map((x) => toLease(x, ttlMs));
}

export interface AcquireResult {
  /** This instance holds the lease now. */
  acquired: boolean;
  /** Owners whose leases were expired (or were a previous process of this owner) and were removed: their open calls are orphans. */
  deadOwners: string[];
  /** Live leases of other owners (for a take-over that was declined). */
  liveOthers: string[];
}

/**
 * Take (or keep) the lease of a campaign for `owner`/`instance`. `mode`:
 * - 'join': always take it (an explicit Start: several runtimes may run one campaign);
 * - 'takeover': take it only when no other owner holds a live lease (the campaign is stalled).
 * Expired leases (and an older instance of this very owner) are removed in the same transaction
 * and reported as dead owners.
 */
export async function acquireLease(
  db: Db,
  o: { campaignId: number; owner: string; instance: string; ttlMs: number; mode: 'join' | 'takeover' },
): Promise<AcquireResult> {
  return db.tx(async (q) => {
    await q.query('select pg_advisory_xact_lock($1, $2)', [TAKEOVER_LOCK, o.campaignId]);
    const rows = (await q.query<RawLease>(`${SELECT} where campaign_id = $1 for update`, [o.campaignId])).rows.map(
      (x) => toLease(x, o.ttlMs),
    );
    const dead = rows.filter((l) => (l.owner === o.owner ? l.instance !== o.instance : !l.live));
    const liveOthers = rows.filter((l) => l.owner !== o.owner && l.live).map((l) => l.owner);
    const mine = rows.find((l) => l.owner === o.owner && l.instance === o.instance);
    if (!mine && o.mode === 'takeover' && liveOthers.length) return { acquired: false, deadOwners: [], liveOthers };
    if (dead.length)
      await q.query(
        `delete from campaign_leases where campaign_id = $1 and (owner, instance) in (select * from unnest($2::text[], $3::text[]))`,
        [o.campaignId, dead.map((l) => l.owner), dead.map((l) => l.instance)],
      );
    await q.query(
      `insert into campaign_leases (campaign_id, owner, instance, host, pid) values ($1, $2, $3, $4, $5)
       on conflict (campaign_id, owner) do update set instance = excluded.instance, host = excluded.host,
         pid = excluded.pid, heartbeat_at = now(),
         acquired_at = case when campaign_leases.instance = excluded.instance then campaign_leases.acquired_at else now() end`,
      [o.campaignId, o.owner, o.instance, os.hostname(), process.pid],
    );
    return { acquired: true, deadOwners: [...new Set(dead.map((l) => l.owner))], liveOthers };
  });
}

/**
 * Renew this instance's leases; returns the campaigns it still holds (a lost lease is not renewed), each with how
 * many owners hold a live lease on it now, this one included (the share of its slots each may keep: see
 * CampaignRunner.stored).
 */
export async function heartbeatLeases(
  q: Queryable,
  owner: string,
  instance: string,
  ttlMs: number,
): Promise<Map<number, number>> {
  const r = await q.query<{ campaign_id: number; owners: number }>(
    `update campaign_leases l set heartbeat_at = now() where l.owner = $1 and l.instance = $2
     returning l.campaign_id,
       (select count(*)::int from campaign_leases o where o.campaign_id = l.campaign_id
          and (o.owner = $1 or o.heartbeat_at > now() - $3::int * interval '1 millisecond')) as owners`,
    [owner, instance, Math.round(ttlMs)],
  );
  return new Map(r.rows.map((x) => [Number(x.campaign_id), Math.max(1, Number(x.owners))]));
}

export async function releaseLease(q: Queryable, campaignId: number, owner: string, instance: string): Promise<void> {
  await q.query('delete from campaign_leases where campaign_id = $1 and owner = $2 and instance = $3', [
    campaignId,
    owner,
    instance,
  ]);
}

/** Running campaigns nobody holds a live lease on (or whose only leases are a previous process of `owner`). */
export async function stalledCampaigns(
  q: Queryable,
  o: { owner: string; instance: string; ttlMs: number },
): Promise<number[]> {
  const r = await q.query<{ id: number }>(
    `select k.id from campaigns k
      where k.status = 'running'
        and not exists (select 1 from campaign_leases l where l.campaign_id = k.id
                          and l.heartbeat_at > now() - make_interval(secs => $1::double precision / 1000)
                          and not (l.owner = $2 and l.instance <> $3))
      order by k.id`,
    [o.ttlMs, o.owner, o.instance],
  );
  return r.rows.map((x) => Number(x.id));
}

/** The campaign's live state as the API and dashboard report it. */
export interface LeaseInfo {
  /** `stalled` when the campaign is `running` in the database but nobody holds a live lease. */
  state: string;
  owners: Array<{ owner: string; host: string | null; pid: number | null; heartbeatAgeMs: number; live: boolean }>;
  /** The live owner with the freshest heartbeat, if any. */
  owner: string | null;
  heartbeatAgeMs: number | null;
}

/** Lease TTL from LEASE_TTL (seconds, default 20). */
export function leaseTtlMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.LEASE_TTL);
  return Number.isFinite(v) && v > 0 ? Math.round(v * 1000) : 20_000;
}

export async function leaseInfo(
  q: Queryable,
  campaignId: number,
  status: string,
  ttlMs = leaseTtlMs(),
): Promise<LeaseInfo> {
  const leases = await campaignLeases(q, campaignId, ttlMs);
  const live = leases.filter((l) => l.live);
  return {
    state: status === 'running' && !live.length ? 'stalled' : status,
    owners: leases.map((l) => ({ owner: l.owner, host: l.host, pid: l.pid, heartbeatAgeMs: l.ageMs, live: l.live })),
    owner: live[0]?.owner ?? null,
    heartbeatAgeMs: live[0]?.ageMs ?? null,
  };
}
