/**
 * Import staging (issue 11 item 6): an upload's validated rows go to a table of their own in the
 * database as they are read, so the process holds one batch of rows whatever the file's size.
 *
 *  - `import_staging.rows_<id>` (unlogged; one per import, dropped after it) keeps one row per E.164
 *    number: a batch is upserted into it with the importer's merge rules (the first occurrence keeps its
 *    line, later non-empty values win, fields merged, a zone from the row's own column beats one derived
 *    from the number), so duplicates of the file are merged there;
 *  - the staged rows are then applied to contacts / dnc by set-based statements of `chunk` rows in line
 *    order (the first occurrence's place in the file), all inside the caller's one transaction;
 *  - `import_runs` (migration 065) records each live import with its owner (this process) and when it
 *    last wrote; `sweepImportStaging` drops the tables of imports whose process died: on PGlite (one
 *    process per database) every run of another owner, on PostgreSQL runs untouched for 15 minutes.
 *    A swept run is never applied: `lock` fails for it.
 */
import { randomBytes } from 'crypto';
import os from 'os';
import { DialerError } from '../util/errors';
import type { Db, Queryable } from './db';

/** One prepared row of an import (what the importer validated and normalised). */
export interface StagedRow {
  line: number;
  phone: string;
  name: string | null;
  timezone: string | null;
  tzSource: 'contact' | 'number' | null;
  country: string | null;
  reason: string | null;
  fields: Record<string, string>;
}

/** A run not written for this long belongs to a process that died (PostgreSQL: several runtimes share it). */
export const STALE_IMPORT_MS = 15 * 60 * 1000;
const TOUCH_MS = 30 * 1000;
/** This process, as the owner of its import runs (a restart is another owner). */
const OWNER = `${os.hostname()}:${process.pid}:${randomBytes(6).toString('hex')}`;

const tableOf = (id: number): string => `import_staging.rows_${id}`;
/** Runs of this process whose removal failed (the database was away): the next sweep removes them. */
const abandonedBy = new WeakMap<Db, Set<number>>();
const abandonedIn = (db: Db): Set<number> => {
  let s = abandonedBy.get(db);
  if (!s) abandonedBy.set(db, (s = new Set()));
  return s;
};

/** Drop the staging tables and runs of imports that died; returns how many were removed. */
export async function sweepImportStaging(db: Db, staleMs = STALE_IMPORT_MS): Promise<number> {
  // PGlite: one process per database, so a run of another owner is a leftover of a crash or a stop
  const olderMs = db.kind === 'pglite' ? 0 : staleMs;
  const abandoned = abandonedIn(db);
  return db.tx(async (q) => {
    const runs = await q.query<{ id: number }>(
      `select id from import_runs
        where owner <> $1 and touched_at <= now() - $2::integer * interval '1 millisecond'
          for update skip locked`,
      [OWNER, olderMs],
    );
    const ids = [...new Set([...runs.rows.map((r) => Number(r.id)), ...abandoned])];
    for (const id of ids) await q.query(`drop table if exists ${tableOf(id)}`);
    if (ids.length) await q.query('delete from import_runs where id = any($1::integer[])', [ids]);
    for (const id of ids) abandoned.delete(id);
    // a table without its run (a run is written before its table and deleted after it: not expected)
    const orphans = await q.query<{ id: number }>(
      `select substr(tablename, 6)::integer as id from pg_tables
        where schemaname = 'import_staging' and tablename ~ '^rows_[0-9]{1,9}$'
          and not exists (select 1 from import_runs r where r.id = substr(tablename, 6)::integer)`,
    );
    for (const o of orphans.rows) await q.query(`drop table if exists ${tableOf(Number(o.id))}`);
    return ids.length + orphans.rows.length;
  });
}

/** Counters of one staging (tests and diagnostics). */
export interface StagingStats {
  /** Upserts into the staging table. */
  batches: number;
  /** Rows sent to it (after the batch's own duplicates were merged). */
  staged: number;
}

const CONTACT_MERGE_TZ = `case when excluded.tz_source = 'contact'
                     or (s.tz_source is distinct from 'contact' and excluded.timezone is not null)`;

export class ImportStaging {
  private id: number | undefined;
  private touchedAt = 0;
  readonly stats: StagingStats = { batches: 0, staged: 0 };

  constructor(
    private readonly db: Db,
    readonly kind: 'contacts' | 'dnc',
    private readonly campaignId: number | null,
  ) {}

  /** True once a row was staged (the table exists). */
  get started(): boolean {
    return this.id !== undefined;
  }

  /** The staging table's name (`import_staging.rows_<id>`), once started. */
  get table(): string {
    if (this.id === undefined) throw new Error('the import staging has not started');
    return tableOf(this.id);
  }

  private async start(): Promise<void> {
    await sweepImportStaging(this.db);
    const r = await this.db.query<{ id: number }>(
      'insert into import_runs (kind, campaign_id, owner) values ($1, $2, $3) returning id',
      [this.kind, this.campaignId, OWNER],
    );
    this.id = Number(r.rows[0].id);
    this.touchedAt = Date.now();
    await this.db.query(
      `create unlogged table ${this.table} (
         line integer primary key,
         phone text not null unique,
         name text,
         timezone text,
         tz_source text,
         country text,
         reason text,
         fields jsonb not null default '{}'
       )`,
    );
  }

  /** Tell sweepers of other runtimes this import is alive (at most every 30 s). */
  async touch(force = false): Promise<void> {
    if (this.id === undefined || (!force && Date.now() - this.touchedAt < TOUCH_MS)) return;
    this.touchedAt = Date.now();
    await this.db.query('update import_runs set touched_at = now() where id = $1', [this.id]);
  }

  /**
   * Upsert one batch (distinct numbers, in file order, after every earlier batch). Returns how many rows
   * merged into a number staged by an earlier batch, and which of `firstLines` were the file's first
   * row with their number.
   */
  async add(rows: StagedRow[], firstLines: number[] = []): Promise<{ merged: number; first: number[] }> {
    if (!rows.length) return { merged: 0, first: [] };
    if (this.id === undefined) await this.start();
    else await this.touch();
    this.stats.batches++;
    this.stats.staged += rows.length;
    const set =
      this.kind === 'contacts'
        ? `name = coalesce(excluded.name, s.name),
           timezone = ${CONTACT_MERGE_TZ} then excluded.timezone else s.timezone end,
           tz_source = ${CONTACT_MERGE_TZ} then excluded.tz_source else s.tz_source end,
           fields = s.fields || excluded.fields`
        : 'reason = coalesce(excluded.reason, s.reason)';
    const r = await this.db.query<{ merged: number; first: number[] | null }>(
      `with up as (
         insert into ${this.table} as s (line, phone, name, timezone, tz_source, country, reason, fields)
         select t.line, t.phone, t.name, t.tz, t.tzs, t.country, t.reason, t.f::jsonb
           from unnest($1::integer[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
                as t(line, phone, name, tz, tzs, country, reason, f)
          order by t.line
         on conflict (phone) do update set ${set}
         returning s.line, (s.xmax = 0) as fresh
       )
       select count(*) filter (where not fresh)::integer as merged,
              array_agg(line order by line) filter (where fresh and line = any($9::integer[])) as first
         from up`,
      [
        rows.map((p) => p.line),
        rows.map((p) => p.phone),
        rows.map((p) => p.name),
        rows.map((p) => p.timezone),
        rows.map((p) => p.tzSource),
        rows.map((p) => p.country),
        rows.map((p) => p.reason),
        rows.map((p) => JSON.stringify(p.fields)),
        firstLines,
      ],
    );
    return { merged: Number(r.rows[0]?.merged ?? 0), first: (r.rows[0]?.first ?? []).map(Number) };
  }

  /** Numbers whose zone came from the number and is one of `lowerZones` lose it (the campaign's zone applies). */
  async clearNumberZones(lowerZones: string[]): Promise<void> {
    if (this.id === undefined || !lowerZones.length) return;
    await this.db.query(
      `update ${this.table} set timezone = null, tz_source = null
        where tz_source = 'number' and lower(timezone) = any($1::text[])`,
      [lowerZones],
    );
  }

  /** Rows (in line order after `afterLine`) whose own zone column is one of `lowerZones`. */
  async contactZoneRows(
    lowerZones: string[],
    afterLine: number,
    limit: number,
  ): Promise<Array<{ line: number; phone: string; country: string | null; timezone: string }>> {
    if (this.id === undefined || !lowerZones.length) return [];
    const r = await this.db.query<{ line: number; phone: string; country: string | null; timezone: string }>(
      `select line, phone, country, timezone from ${this.table}
        where line > $2 and tz_source = 'contact' and lower(timezone) = any($1::text[])
        order by line limit $3`,
      [lowerZones, afterLine, limit],
    );
    return r.rows;
  }

  /** Set the zone of staged rows by line. */
  async setZones(
    rows: Array<{ line: number; timezone: string | null; tzSource: StagedRow['tzSource'] }>,
  ): Promise<void> {
    if (this.id === undefined || !rows.length) return;
    await this.db.query(
      `update ${this.table} s set timezone = u.tz, tz_source = u.tzs
         from unnest($1::integer[], $2::text[], $3::text[]) as u(line, tz, tzs) where s.line = u.line`,
      [rows.map((r) => r.line), rows.map((r) => r.timezone), rows.map((r) => r.tzSource)],
    );
  }

  /** Inside the applying transaction: hold the run, so no sweeper takes it; fails when it was swept. */
  async lock(q: Queryable): Promise<void> {
    if (this.id === undefined) return;
    const r = await q.query('select id from import_runs where id = $1 for update', [this.id]);
    if (!r.rows.length)
      throw new DialerError(
        'import_expired',
        'the import was abandoned (its staging was removed); send the file again',
      );
  }

  /**
   * Apply the staged contacts to a campaign, `chunk` rows a statement in line order; `zones` maps
   * lower-case zone names to the database's spelling.
   */
  async applyContacts(
    q: Queryable,
    campaignId: number,
    zones: Map<string, string>,
    chunk: number,
    between: () => Promise<void>,
  ): Promise<{ inserted: number; updated: number }> {
    const lower = [...zones.keys()];
    const spelled = lower.map((z) => zones.get(z)!);
    return this.apply(
      (after) =>
        q.query<{ last: number | null; inserted: number; updated: number }>(
          `with src as (
             select r.line, r.phone, r.name, coalesce(z.spelled, r.timezone) as tz, r.tz_source, r.fields
               from (select * from ${this.table} where line > $4 order by line limit $5) r
               left join unnest($2::text[], $3::text[]) as z(lower, spelled) on z.lower = lower(r.timezone)
           ), up as (
             insert into contacts (campaign_id, phone, name, timezone, timezone_source, fields)
             select $1, s.phone, s.name, s.tz, s.tz_source, s.fields from src s order by s.line
             on conflict (campaign_id, phone) do update set
               name = coalesce(excluded.name, contacts.name),
               timezone = case when excluded.timezone_source = 'contact' then excluded.timezone
                               when contacts.timezone_source = 'contact' then contacts.timezone
                               else coalesce(excluded.timezone, contacts.timezone) end,
               timezone_source = case when excluded.timezone_source = 'contact' then excluded.timezone_source
                               when contacts.timezone_source = 'contact' then contacts.timezone_source
                               when excluded.timezone is not null then excluded.timezone_source
                               else contacts.timezone_source end,
               fields = contacts.fields || excluded.fields,
               updated_at = now()
             returning (xmax = 0) as inserted
           )
           select (select max(line) from src) as last,
                  count(*) filter (where inserted)::integer as inserted,
                  count(*) filter (where not inserted)::integer as updated
             from up`,
          [campaignId, lower, spelled, after, chunk],
        ),
      between,
    );
  }

  /**
   * The applied contacts whose numbers are on a do-not-call list in the campaign's scope become `dnc`,
   * never `pending` (migration 030: the importer defers that check to this one step, so it holds the
   * lock that orders it against list additions only at the end), `chunk` numbers a statement.
   */
  async settleDnc(q: Queryable, campaignId: number, chunk: number, between: () => Promise<void>): Promise<void> {
    if (this.id === undefined) return; // nothing staged, nothing applied
    for (let after = 0; ;) {
      const r = await q.query<{ last: number | null }>(
        `with part as (select line, phone from ${this.table} where line > $2 order by line limit $3)
         select contacts_dnc_settle($1::int, array(select phone from part)) as n, (select max(line) from part) as last`,
        [campaignId, after, chunk],
      );
      const last = r.rows[0]?.last;
      if (last === null || last === undefined) return;
      after = Number(last);
      await between();
    }
  }

  /** Apply the staged numbers to a do-not-call list (campaign null: the global list). */
  async applyDnc(
    q: Queryable,
    campaignId: number | null,
    source: string,
    chunk: number,
    between: () => Promise<void>,
  ): Promise<{ inserted: number; updated: number }> {
    return this.apply(
      (after) =>
        q.query<{ last: number | null; inserted: number; updated: number }>(
          `with src as (
             select line, phone, reason from ${this.table} where line > $3 order by line limit $4
           ), up as (
             insert into dnc (phone, campaign_id, reason, source)
             select s.phone, $1::integer, s.reason, $2 from src s order by s.line
             on conflict (phone, (coalesce(campaign_id, 0))) do update set reason = coalesce(excluded.reason, dnc.reason)
             returning (xmax = 0) as inserted
           )
           select (select max(line) from src) as last,
                  count(*) filter (where inserted)::integer as inserted,
                  count(*) filter (where not inserted)::integer as updated
             from up`,
          [campaignId, source, after, chunk],
        ),
      between,
    );
  }

  private async apply(
    step: (after: number) => Promise<{ rows: Array<{ last: number | null; inserted: number; updated: number }> }>,
    between: () => Promise<void>,
  ): Promise<{ inserted: number; updated: number }> {
    const out = { inserted: 0, updated: 0 };
    if (this.id === undefined) return out;
    for (let after = 0; ;) {
      const r = (await step(after)).rows[0];
      if (!r || r.last === null || r.last === undefined) return out;
      out.inserted += Number(r.inserted);
      out.updated += Number(r.updated);
      after = Number(r.last);
      await between();
    }
  }

  /** Drop the staging table and its run (after the import, or its failure). Never throws: the sweep is the fallback. */
  async remove(): Promise<void> {
    const id = this.id;
    if (id === undefined) return;
    this.id = undefined;
    try {
      await this.db.query(`drop table if exists ${tableOf(id)}`);
      await this.db.query('delete from import_runs where id = $1', [id]);
    } catch {
      abandonedIn(this.db).add(id); // the database is away: the next sweep (next import or start) removes it
    }
  }
}
