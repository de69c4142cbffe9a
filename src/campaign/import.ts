/**
 * Import contacts and do-not-call numbers from CSV text, a CSV byte stream (an upload) or JSON arrays.
 *
 *  - numbers normalised to E.164 by libphonenumber-js with the campaign's default country;
 *  - every bad row reported with its line number (CSV) or item number (JSON) and the reason; good rows kept;
 *  - duplicates merged: within the file (later non-empty values win) and with rows already stored
 *    (name / fields / time zone updated, status and attempts untouched);
 *  - bounded memory whatever the file's size: rows are prepared in batches of `chunkSize` and each batch
 *    is written to a staging table of this import (src/store/import-staging.ts), where duplicates of the
 *    file are merged; no transaction is open while the input is read;
 *  - atomic per file: the staged rows are applied to contacts / dnc in one transaction (set-based
 *    statements of `chunkSize` rows), or none is; the staging table is dropped after, on failure too;
 *  - contacts.timezone: the row's own column when it is a valid IANA zone ('contact'), else derived
 *    from the number ('number'), else null (the campaign's zone applies at claim time);
 *  - gentle: the input is read in 64 KB batches and the work goes in slices of ~5 ms with the event loop
 *    running between them (live calls keep their timing); on PGlite every statement runs in its own thread
 *    (src/store/pglite-worker.ts);
 *  - a row with a NUL byte is a bad row like any other (reported, skipped).
 */
import type { Db, Queryable } from '../store/db';
import { setDncActor } from '../store/dnc';
import { ImportStaging, type StagedRow } from '../store/import-staging';
import { DialerError } from '../util/errors';
import { CsvRecordTooLong, readCsvRecords, type CsvRecord } from './import-csv';
import {
  allowsPremium,
  isCountryCode,
  isValidTimeZone,
  normalizePhone,
  refusedNumberType,
  zoneForNumber,
} from './phone';

export interface ImportIssue {
  /** CSV: the line the row starts on (1 = header). JSON: the item's position (1-based). */
  line: number;
  reason: string;
}

export interface ImportResult {
  kind: 'contacts' | 'dnc';
  campaignId: number | null;
  /** Data rows read (header and blank lines excluded). */
  rows: number;
  /** New rows stored. */
  inserted: number;
  /** Rows that were already stored and were merged (updated). */
  updated: number;
  /** Rows merged into an earlier row of the same file (same E.164 number). */
  duplicates: number;
  /** Rows rejected (see errors). */
  invalid: number;
  errors: ImportIssue[];
  /** True when there were more errors than `maxErrors` (the counts stay exact). */
  errorsTruncated: boolean;
  /** Kept rows with a note (e.g. an unknown time zone that was replaced by one derived from the number). */
  warnings: ImportIssue[];
}

export interface ImportOptions {
  /** Country for national-format numbers; contacts default to the campaign's default_country. */
  defaultCountry?: string;
  /** Errors/warnings listed in the result (default 1000); counts stay exact. */
  maxErrors?: number;
  /**
   * Rows per batch held in memory and per staging statement (default 1000; 250 on PGlite, one connection
   * that live calls' writes share between those statements), and per applying statement (default 5000).
   */
  chunkSize?: number;
  /** CSV delimiter (default: detected). */
  delimiter?: string;
  /** DNC only: `source` column value (default 'import'). */
  source?: string;
  /** DNC only: who imports, for the audit trail (src/store/dnc.ts; default: the source). */
  actor?: string;
  /** Called once the import ended (or failed) with its counters (tests and diagnostics). */
  onDone?: (stats: ImportStats) => void;
}

/** One contact as JSON: `phone` required; `name`, `timezone`; `fields` and any other keys become custom fields. */
export interface ContactInput {
  phone?: unknown;
  name?: unknown;
  timezone?: unknown;
  fields?: unknown;
  [key: string]: unknown;
}

export interface DncInput {
  phone?: unknown;
  reason?: unknown;
}

/** Input that cannot be imported at all (no phone column, unknown campaign, not a list...). */
export class ImportError extends DialerError {
  constructor(code: 'import_invalid' | 'campaign_not_found', message: string) {
    super(code, message);
    this.name = 'ImportError';
  }
}

const PHONE_KEYS = [
  'phone',
  'phonenumber',
  'phoneno',
  'number',
  'telephone',
  'tel',
  'mobile',
  'cell',
  'msisdn',
  'e164',
];
const NAME_KEYS = ['name', 'fullname', 'contactname'];
const TZ_KEYS = ['timezone', 'tz', 'zone', 'ianatimezone'];
const REASON_KEYS = ['reason', 'note', 'comment'];
const MAX_FIELDS = 200;
const MAX_KEY = 100;
const MAX_VALUE = 10000;
const MAX_NAME = 200;
const MAX_REASON = 500;

const keyOf = (h: string): string =>
  h
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '');

interface Row {
  line: number;
  phone: unknown;
  name?: string;
  timezone?: string;
  reason?: string;
  fields: Record<string, string>;
}

class Collector {
  readonly errors: ImportIssue[] = [];
  readonly warnings: ImportIssue[] = [];
  invalid = 0;
  truncated = false;
  constructor(private readonly max: number) {}
  error(line: number, reason: string): void {
    this.invalid++;
    if (this.errors.length < this.max) this.errors.push({ line, reason });
    else this.truncated = true;
  }
  warn(line: number, reason: string): void {
    if (this.warnings.length < this.max) this.warnings.push({ line, reason });
    else this.truncated = true;
  }
}

const NUL = '\u0000';

/** Maps CSV records to rows: the header (or, for a header-less list, the first column as the number). */
class CsvMapper {
  private readonly columns: string[];
  private readonly headerless: boolean;
  private readonly phoneIdx: number;
  private readonly nameIdx: number;
  private readonly tzIdx: number;
  private readonly reasonIdx: number;
  private readonly firstIdx: number;
  private readonly lastIdx: number;

  /** `header` is the first record; `headerless` tells the caller to map it as data too. */
  constructor(
    header: CsvRecord,
    private readonly kind: 'contacts' | 'dnc',
    defaultCountry: string,
  ) {
    const keys = header.fields.map(keyOf);
    let phoneIdx = keys.findIndex((k) => PHONE_KEYS.includes(k));
    this.headerless = false;
    if (phoneIdx < 0) {
      // No header we recognise: a header-less list whose first column is the number?
      if (
        !header.error &&
        !header.fields.some((f) => f.includes(NUL)) &&
        normalizePhone(header.fields[0], defaultCountry).ok
      ) {
        phoneIdx = 0;
        this.headerless = true;
        this.columns = [];
      } else {
        throw new ImportError(
          'import_invalid',
          `line ${header.line}: no phone column in the header (expected one of: phone, phone_number, number, telephone, mobile, msisdn); found: ${
            header.fields
              .slice(0, 10)
              .map((h) => JSON.stringify(h.slice(0, 60)))
              .join(', ') || '(nothing)'
          }`,
        );
      }
    } else {
      if (header.error)
        throw new ImportError('import_invalid', `line ${header.line}: malformed header: ${header.error}`);
      if (header.fields.some((f) => f.includes(NUL)))
        throw new ImportError('import_invalid', `line ${header.line}: the header contains a NUL byte`);
      this.columns = header.fields.map((h, i) => h.trim() || `column${i + 1}`);
      if (this.columns.length > MAX_FIELDS)
        throw new ImportError(
          'import_invalid',
          `line ${header.line}: too many columns (${this.columns.length}, at most ${MAX_FIELDS})`,
        );
    }
    this.phoneIdx = phoneIdx;
    const ckeys = this.columns.map(keyOf);
    this.nameIdx = this.headerless ? (kind === 'contacts' ? 1 : -1) : ckeys.findIndex((k) => NAME_KEYS.includes(k));
    this.tzIdx = this.headerless ? -1 : ckeys.findIndex((k) => TZ_KEYS.includes(k));
    this.reasonIdx = this.headerless ? (kind === 'dnc' ? 1 : -1) : ckeys.findIndex((k) => REASON_KEYS.includes(k));
    this.firstIdx = ckeys.indexOf('firstname');
    this.lastIdx = ckeys.indexOf('lastname');
  }

  /** The header record is data as well (a header-less list). */
  get firstIsData(): boolean {
    return this.headerless;
  }

  private column(i: number): string {
    if (!this.headerless) return this.columns[i];
    return i === 0 ? 'phone' : i === 1 ? (this.kind === 'dnc' ? 'reason' : 'name') : `column${i + 1}`;
  }

  /** One record to a row, or undefined after reporting why it was rejected. */
  map(rec: CsvRecord, c: Collector): Row | undefined {
    if (rec.error) {
      c.error(rec.line, rec.error);
      return undefined;
    }
    const width = this.headerless ? MAX_FIELDS + 1 : this.columns.length;
    if (rec.fields.length > width) {
      c.error(rec.line, `${rec.fields.length} fields but the header has ${width}`);
      return undefined;
    }
    const f = rec.fields;
    const nul = f.findIndex((v) => v.includes(NUL));
    if (nul >= 0) {
      c.error(rec.line, `column "${this.column(nul).slice(0, 60)}" contains a NUL byte`);
      return undefined;
    }
    const row: Row = { line: rec.line, phone: f[this.phoneIdx] ?? '', fields: {} };
    if (this.kind === 'contacts') {
      for (let i = 0; i < f.length; i++) {
        if (i === this.phoneIdx || i === this.nameIdx || i === this.tzIdx) continue;
        const v = f[i].trim();
        if (!v) continue;
        if (v.length > MAX_VALUE) {
          c.error(rec.line, `column "${this.column(i).slice(0, 60)}" is longer than ${MAX_VALUE} characters`);
          return undefined;
        }
        row.fields[this.column(i).slice(0, MAX_KEY)] = v;
      }
      let name = this.nameIdx >= 0 ? (f[this.nameIdx] ?? '').trim() : '';
      if (!name && (this.firstIdx >= 0 || this.lastIdx >= 0))
        name = [f[this.firstIdx] ?? '', f[this.lastIdx] ?? '']
          .map((s) => s.trim())
          .filter(Boolean)
          .join(' ');
      if (name) row.name = name;
      const tz = this.tzIdx >= 0 ? (f[this.tzIdx] ?? '').trim() : '';
      if (tz) row.timezone = tz;
    } else {
      const reason = this.reasonIdx >= 0 ? (f[this.reasonIdx] ?? '').trim() : '';
      if (reason) row.reason = reason;
    }
    return row;
  }
}

/** Staged rows applied per statement inside the import's transaction (each statement also runs the contacts triggers once). */
const APPLY_CHUNK = 5000;

/** Rows normalised between two looks at the clock (normalising a number costs ~50 µs, more on a busy machine). */
const PREPARE_BATCH = 25;

/** Let timers and sockets (live calls) run between batches of import work. */
const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Import work in slices of at most ~5 ms of the event loop: `due` says when to yield. */
class Slices {
  private start = performance.now();
  get due(): boolean {
    return performance.now() - this.start >= 5;
  }
  async next(): Promise<void> {
    await yieldToLoop();
    this.start = performance.now();
  }
}

/** Text or bytes in pieces of at most 64 KB, so no single parse step holds the event loop long. */
function* pieces(input: string | Uint8Array): Generator<string | Uint8Array> {
  const size = 65536;
  for (let i = 0; i < input.length; i += size)
    yield typeof input === 'string' ? input.slice(i, i + size) : input.subarray(i, i + size);
}

function str(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'string') return v.trim() || undefined;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/** Where a NUL byte is in a JSON item (a key path, '' for the item itself), if anywhere (depth-bounded). */
function findNul(v: unknown, path: string, depth = 0): string | undefined {
  if (typeof v === 'string') return v.includes(NUL) ? path : undefined;
  if (!v || typeof v !== 'object' || depth > 8) return undefined;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const p = path ? `${path}.${k.slice(0, 40)}` : `"${k.slice(0, 40)}"`;
    if (k.includes(NUL)) return p;
    const at = findNul(x, p, depth + 1);
    if (at !== undefined) return at;
  }
  return undefined;
}

/** Turn a JSON array into rows; items are numbered from 1. */
function jsonRows(items: unknown[], kind: 'contacts' | 'dnc', c: Collector, offset = 0): Row[] {
  const rows: Row[] = [];
  items.forEach((item, idx) => {
    const line = offset + idx + 1;
    const nulAt = findNul(item, '');
    if (nulAt !== undefined) {
      c.error(line, `${nulAt || 'the item'} contains a NUL byte`);
      return;
    }
    if (typeof item === 'string' || typeof item === 'number') {
      rows.push({ line, phone: item, fields: {} });
      return;
    }
    if (!item || typeof item !== 'object' || Array.isArray(item)) {
      c.error(line, 'item must be an object with a "phone" (or a phone number string)');
      return;
    }
    const o = item as Record<string, unknown>;
    const row: Row = { line, phone: o.phone ?? o.number ?? o.phoneNumber ?? o.phone_number, fields: {} };
    if (kind === 'dnc') {
      const reason = str(o.reason);
      if (reason) row.reason = reason;
      rows.push(row);
      return;
    }
    const name = o.name === undefined || o.name === null ? undefined : str(o.name);
    if (o.name !== undefined && o.name !== null && name === undefined && o.name !== '') {
      c.error(line, '"name" must be text');
      return;
    }
    if (name) row.name = name;
    if (o.timezone !== undefined && o.timezone !== null) {
      if (typeof o.timezone !== 'string') {
        c.error(line, '"timezone" must be text');
        return;
      }
      if (o.timezone.trim()) row.timezone = o.timezone.trim();
    }
    const extra: Record<string, unknown> = {};
    if (o.fields !== undefined && o.fields !== null) {
      if (typeof o.fields !== 'object' || Array.isArray(o.fields)) {
        c.error(line, '"fields" must be an object');
        return;
      }
      Object.assign(extra, o.fields);
    }
    for (const [k, v] of Object.entries(o)) {
      if (['phone', 'number', 'phoneNumber', 'phone_number', 'name', 'timezone', 'fields'].includes(k)) continue;
      extra[k] = v;
    }
    let bad: string | undefined;
    for (const [k, v] of Object.entries(extra)) {
      if (v === null || v === undefined || v === '') continue;
      const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
      if (s.length > MAX_VALUE || k.length > MAX_KEY) {
        bad = k;
        break;
      }
      row.fields[k] = typeof v === 'object' ? s : String(v).trim();
    }
    if (bad !== undefined) {
      c.error(line, `field "${bad.slice(0, 50)}" is too long`);
      return;
    }
    if (Object.keys(row.fields).length > MAX_FIELDS) {
      c.error(line, `too many fields (at most ${MAX_FIELDS})`);
      return;
    }
    rows.push(row);
  });
  return rows;
}

type Prepared = StagedRow & {
  /** Zone given by the row but not recognised (replaced by the number's, or none). */
  badZone?: string;
};

/**
 * Normalise, validate and merge duplicates within the current batch (first occurrence keeps its place;
 * later non-empty values win). The batch is bounded (`take` empties it into the staging table, which
 * merges it with the earlier batches by the same rules), so memory does not grow with the file.
 */
class Preparer {
  /** This batch: E.164 number -> row. */
  private batch = new Map<string, Prepared>();
  /** Lines (of this batch's first occurrences) with a zone warning, given once the staging says it is the file's first. */
  private zoneWarnings = new Map<number, string>();
  /** Lower-case names of the zones kept (names the runtime knows: a bounded set). */
  readonly zones = new Set<string>();
  duplicates = 0;
  /** Rows handed to add() (mapped), and rows rejected before that (malformed records). */
  rows = 0;
  rejectedEarly = 0;
  /** The most rows held at once (the current batch). */
  peakHeld = 0;
  constructor(
    private readonly kind: 'contacts' | 'dnc',
    private readonly country: string,
    private readonly c: Collector,
    private readonly allowPremium = false,
  ) {}
  get size(): number {
    return this.batch.size;
  }
  add(rows: Row[]): void {
    this.rows += rows.length;
    for (const r of rows) this.addOne(r);
    this.peakHeld = Math.max(this.peakHeld, this.batch.size);
  }
  /** The batch in file order and its pending zone warnings; the next batch starts empty. */
  take(): { rows: Prepared[]; warnings: Map<number, string> } {
    const out = { rows: [...this.batch.values()], warnings: this.zoneWarnings };
    this.batch = new Map();
    this.zoneWarnings = new Map();
    return out;
  }
  private addOne(r: Row): void {
    const { kind, c } = this;
    const p = normalizePhone(r.phone, this.country);
    if (!p.ok) {
      c.error(r.line, p.reason);
      return;
    }
    // Toll fraud: premium-rate and other non-dialable types are never contacts (a do-not-call entry may be anything).
    const refused = kind === 'contacts' ? refusedNumberType(p, this.allowPremium) : undefined;
    if (refused) {
      c.error(r.line, refused);
      return;
    }
    if (r.name && r.name.length > MAX_NAME) {
      c.error(r.line, `name is longer than ${MAX_NAME} characters`);
      return;
    }
    if (r.reason && r.reason.length > MAX_REASON) {
      c.error(r.line, `reason is longer than ${MAX_REASON} characters`);
      return;
    }
    let timezone: string | null = null;
    let tzSource: Prepared['tzSource'] = null;
    let badZone: string | undefined;
    if (kind === 'contacts') {
      if (r.timezone && isValidTimeZone(r.timezone)) {
        timezone = r.timezone;
        tzSource = 'contact';
      } else {
        if (r.timezone) badZone = r.timezone;
        const z = zoneForNumber(p.e164, p.country);
        if (z) {
          timezone = z;
          tzSource = 'number';
        }
      }
      if (timezone) this.zones.add(timezone.toLowerCase());
    }
    const prev = this.batch.get(p.e164);
    if (prev === undefined) {
      this.batch.set(p.e164, {
        phone: p.e164,
        line: r.line,
        name: r.name ?? null,
        timezone,
        tzSource,
        badZone,
        country: p.country ?? null,
        reason: r.reason ?? null,
        fields: r.fields,
      });
      if (badZone)
        this.zoneWarnings.set(
          r.line,
          `unknown time zone "${badZone.slice(0, 64)}": ${timezone ? `using ${timezone} (from the number)` : "the campaign's zone applies"}`,
        );
      return;
    }
    this.duplicates++;
    if (r.name) prev.name = r.name;
    if (r.reason) prev.reason = r.reason;
    if (tzSource === 'contact' || (prev.tzSource !== 'contact' && timezone)) {
      prev.timezone = timezone;
      prev.tzSource = tzSource;
    }
    Object.assign(prev.fields, r.fields);
  }
}

/** Counters of one import, for tests and diagnostics (`ImportOptions.onDone`). */
export interface ImportStats {
  /** The most prepared rows held in memory at once (one batch: `chunkSize` at most). */
  peakHeld: number;
  /** Batches written to the staging table, and rows in them. */
  stagedBatches: number;
  stagedRows: number;
}

/** Staging writes one batch at a time, in file order, while the next batch is being read and prepared. */
class Stager {
  private inflight: Promise<void> | undefined;
  private failed: { err: unknown } | undefined;
  duplicates = 0;
  constructor(
    private readonly staging: ImportStaging,
    private readonly c: Collector,
  ) {}
  /** Send the prepared batch (after the previous one is stored). */
  async send(prep: Preparer): Promise<void> {
    await this.drain();
    const { rows, warnings } = prep.take();
    if (!rows.length) return;
    this.inflight = this.staging.add(rows, [...warnings.keys()]).then(
      (r) => {
        this.duplicates += r.merged;
        for (const line of r.first) this.c.warn(line, warnings.get(line)!);
      },
      (err: unknown) => {
        this.failed = { err };
      },
    );
  }
  /** Wait for the batch in flight; rethrow its failure. */
  async drain(): Promise<void> {
    if (this.inflight) await this.inflight;
    this.inflight = undefined;
    if (this.failed) throw this.failed.err;
  }
}

/** Cache of zone names the database knows, per database object (lower-case name -> spelling). */
const dbZones = new WeakMap<object, Map<string, string>>();

async function zonesKnownToDb(db: object, q: Queryable, wanted: string[]): Promise<Map<string, string>> {
  let known = dbZones.get(db);
  if (!known) {
    known = new Map();
    dbZones.set(db, known);
  }
  const missing = wanted.filter((z) => !known!.has(z.toLowerCase()));
  if (missing.length) {
    const r = await q.query<{ name: string }>(
      'select name from pg_timezone_names where lower(name) = any($1::text[])',
      [missing.map((z) => z.toLowerCase())],
    );
    for (const row of r.rows) known.set(row.name.toLowerCase(), row.name);
  }
  return known;
}

/**
 * Zones must also be known to the database (its tz data may be older than the JS runtime's). Returns the
 * database's spelling of every zone kept (lower case -> spelling); staged rows with a zone the database
 * does not know lose it: one derived from the number loses it silently, one from the row's own column
 * falls back to the number's zone (or none) with a warning.
 */
async function spellZones(
  db: Db,
  staging: ImportStaging,
  zones: Set<string>,
  c: Collector,
  chunk: number,
): Promise<Map<string, string>> {
  const spelled = new Map<string, string>();
  if (!zones.size) return spelled;
  const known = await zonesKnownToDb(db, db, [...zones]);
  const unknown: string[] = [];
  for (const z of zones) {
    const s = known.get(z);
    if (s) spelled.set(z, s);
    else unknown.push(z);
  }
  if (!unknown.length) return spelled;
  await staging.clearNumberZones(unknown);
  for (let after = 0; ;) {
    const rows = await staging.contactZoneRows(unknown, after, chunk);
    if (!rows.length) break;
    const fallback = rows.map((r) => zoneForNumber(r.phone, r.country ?? undefined));
    const k = await zonesKnownToDb(
      db,
      db,
      fallback.filter((z): z is string => !!z),
    );
    const fixes = rows.map((r, i) => {
      const zs = fallback[i] ? (k.get(fallback[i]!.toLowerCase()) ?? null) : null;
      c.warn(
        r.line,
        `time zone "${r.timezone}" is unknown to the database: ${zs ? `using ${zs} (from the number)` : "the campaign's zone applies"}`,
      );
      if (zs) spelled.set(zs.toLowerCase(), zs);
      return { line: r.line, timezone: zs, tzSource: zs ? ('number' as const) : null };
    });
    await staging.setZones(fixes);
    after = rows[rows.length - 1].line;
    await yieldToLoop();
  }
  return spelled;
}

function emptyResult(kind: 'contacts' | 'dnc', campaignId: number | null): ImportResult {
  return {
    kind,
    campaignId,
    rows: 0,
    inserted: 0,
    updated: 0,
    duplicates: 0,
    invalid: 0,
    errors: [],
    errorsTruncated: false,
    warnings: [],
  };
}

/** What can be imported: CSV text or bytes, a stream of CSV bytes (an upload), or a JSON array. */
export type ImportInput = string | Buffer | Uint8Array | unknown[] | AsyncIterable<string | Buffer | Uint8Array>;

function isAsyncIterable(v: unknown): v is AsyncIterable<string | Buffer | Uint8Array> {
  return !!v && typeof (v as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';
}

/**
 * Read the input in batches (yielding to the event loop between them), preparing rows and writing each
 * batch of `chunk` distinct numbers to the staging table. No transaction is open while the input is read.
 */
async function collect(
  input: ImportInput,
  prep: Preparer,
  stager: Stager,
  chunk: number,
  c: Collector,
  kind: 'contacts' | 'dnc',
  country: string,
  delimiter?: string,
): Promise<void> {
  const slices = new Slices();
  const step = async (rows: Row[], before: number): Promise<void> => {
    prep.rejectedEarly += c.invalid - before;
    prep.add(rows);
    if (prep.size >= chunk) await stager.send(prep);
    if (slices.due) await slices.next();
  };
  if (Array.isArray(input)) {
    for (let i = 0; i < input.length; i += PREPARE_BATCH) {
      const before = c.invalid;
      await step(jsonRows(input.slice(i, i + PREPARE_BATCH), kind, c, i), before);
    }
  } else {
    let source: AsyncIterable<string | Buffer | Uint8Array> | Iterable<string | Uint8Array>;
    if (typeof input === 'string' || input instanceof Uint8Array) source = pieces(input);
    else if (isAsyncIterable(input)) source = input;
    else throw new ImportError('import_invalid', 'import input must be CSV text or a JSON array');
    let mapper: CsvMapper | undefined;
    try {
      for await (const records of readCsvRecords(source, { delimiter })) {
        let from = 0;
        if (!mapper) {
          mapper = new CsvMapper(records[0], kind, country);
          if (!mapper.firstIsData) from = 1;
        }
        for (let i = from; i < records.length; i += PREPARE_BATCH) {
          const rows: Row[] = [];
          const before = c.invalid;
          for (let j = i; j < Math.min(records.length, i + PREPARE_BATCH); j++) {
            const row = mapper.map(records[j], c);
            if (row) rows.push(row);
          }
          await step(rows, before);
        }
        await yieldToLoop(); // the parse of the next piece (64 KB) is a slice of its own
      }
    } catch (err) {
      // the end of the open record cannot be found, so the file cannot be read on: nothing is applied
      if (err instanceof CsvRecordTooLong)
        throw new ImportError('import_invalid', `${err.message}; nothing was imported`);
      throw err;
    }
  }
  await stager.send(prep);
  await stager.drain();
}

async function lockCampaign(q: Queryable, campaignId: number): Promise<{ id: number; default_country: string }> {
  const r = await q.query<{ id: number; default_country: string }>(
    'select id, default_country from campaigns where id = $1 for share',
    [campaignId],
  );
  if (!r.rows.length) throw new ImportError('campaign_not_found', `campaign ${campaignId} does not exist`);
  return r.rows[0];
}

function checkId(id: unknown, what: string): number {
  if (typeof id !== 'number' || !Number.isInteger(id) || id <= 0 || id > 2147483647)
    throw new ImportError('import_invalid', `${what} must be a positive integer`);
  return id;
}

function statsOf(prep: Preparer, staging: ImportStaging): ImportStats {
  return { peakHeld: prep.peakHeld, stagedBatches: staging.stats.batches, stagedRows: staging.stats.staged };
}

/**
 * What every import shares: read the input in batches into its staging table (rows checked and merged
 * there), then `afterRead` (e.g. spell the time zones), then `apply` in one short transaction; the
 * staging table is removed whatever happens, and `opts.onDone` gets the figures.
 */
async function stagedImport<T>(
  db: Db,
  kind: 'contacts' | 'dnc',
  campaignId: number | null,
  input: ImportInput,
  opts: ImportOptions,
  country: string,
  makePreparer: (c: Collector) => Preparer,
  steps: {
    afterRead?(staging: ImportStaging, prep: Preparer, c: Collector, chunk: number): Promise<T>;
    apply(q: Queryable, staging: ImportStaging, read: T | undefined): Promise<{ inserted: number; updated: number }>;
  },
): Promise<ImportResult> {
  const chunk = Math.max(1, opts.chunkSize ?? (db.kind === 'pglite' ? 250 : 1000));
  const c = new Collector(opts.maxErrors ?? 1000);
  const result = emptyResult(kind, campaignId);
  const prep = makePreparer(c);
  const staging = new ImportStaging(db, kind, campaignId);
  const stager = new Stager(staging, c);
  try {
    await collect(input, prep, stager, chunk, c, kind, country, opts.delimiter);
    result.rows = prep.rows + prep.rejectedEarly;
    result.duplicates = prep.duplicates + stager.duplicates;
    const read = await steps.afterRead?.(staging, prep, c, chunk);
    await staging.touch(true);
    const applied = await db.tx((q) => steps.apply(q, staging, read));
    result.inserted = applied.inserted;
    result.updated = applied.updated;
  } finally {
    await stager.drain().catch(() => undefined); // a batch still in flight when reading failed
    opts.onDone?.(statsOf(prep, staging));
    await staging.remove();
  }
  return finish(result, c);
}

/** Import contacts into a campaign. Throws ImportError for input that cannot be imported at all. */
export async function importContacts(
  db: Db,
  campaignId: number,
  input: ImportInput,
  opts: ImportOptions = {},
): Promise<ImportResult> {
  checkId(campaignId, 'campaign id');
  // Read the campaign's default country first (outside the write transaction: parsing can take a while).
  const camp = await db.query<{ default_country: string; settings: unknown }>(
    'select default_country, settings from campaigns where id = $1',
    [campaignId],
  );
  if (!camp.rows.length) throw new ImportError('campaign_not_found', `campaign ${campaignId} does not exist`);
  const country = (opts.defaultCountry ?? camp.rows[0].default_country ?? 'US').toUpperCase();
  if (!isCountryCode(country)) throw new ImportError('import_invalid', `unknown default country "${country}"`);
  const premium = allowsPremium(camp.rows[0].settings);
  return stagedImport(
    db,
    'contacts',
    campaignId,
    input,
    opts,
    country,
    (c) => new Preparer('contacts', country, c, premium),
    {
      afterRead: (staging, prep, c, chunk) => spellZones(db, staging, prep.zones, c, chunk),
      apply: async (q, staging, zones) => {
        await lockCampaign(q, campaignId);
        await staging.lock(q);
        // do-not-call: the check of each inserted contact is deferred to one settle at the end (migration 030)
        await q.query(`select set_config('ai_dialer.dnc_settle', 'deferred', true)`);
        const done = await staging.applyContacts(q, campaignId, zones!, opts.chunkSize ?? APPLY_CHUNK, yieldToLoop);
        await staging.settleDnc(q, campaignId, APPLY_CHUNK, yieldToLoop);
        return done;
      },
    },
  );
}

/** Import do-not-call numbers: the global list (campaignId null) or one campaign's list. */
export async function importDnc(
  db: Db,
  input: ImportInput,
  opts: ImportOptions & { campaignId?: number | null } = {},
): Promise<ImportResult> {
  const campaignId = opts.campaignId ?? null;
  if (campaignId !== null) checkId(campaignId, 'campaign id');
  let country = opts.defaultCountry?.toUpperCase();
  if (!country && campaignId !== null) {
    const camp = await db.query<{ default_country: string }>('select default_country from campaigns where id = $1', [
      campaignId,
    ]);
    if (!camp.rows.length) throw new ImportError('campaign_not_found', `campaign ${campaignId} does not exist`);
    country = camp.rows[0].default_country;
  }
  const dncCountry = (country ?? 'US').toUpperCase();
  if (!isCountryCode(dncCountry)) throw new ImportError('import_invalid', `unknown default country "${dncCountry}"`);
  return stagedImport(db, 'dnc', campaignId, input, opts, dncCountry, (c) => new Preparer('dnc', dncCountry, c), {
    apply: async (q, staging) => {
      if (opts.actor) await setDncActor(q, opts.actor);
      if (campaignId !== null) await lockCampaign(q, campaignId);
      await staging.lock(q);
      return staging.applyDnc(q, campaignId, opts.source ?? 'import', opts.chunkSize ?? APPLY_CHUNK, yieldToLoop);
    },
  });
}

function finish(result: ImportResult, c: Collector): ImportResult {
  result.invalid = c.invalid;
  result.errors = c.errors.sort((a, b) => a.line - b.line);
  result.warnings = c.warnings.sort((a, b) => a.line - b.line);
  result.errorsTruncated = c.truncated;
  return result;
}
