/**
 * Import contacts and do-not-call numbers from CSV text, a CSV byte stream (an upload) or JSON arrays.
 *
 *  - numbers normalised to E.164 by libphonenumber-js with the campaign's default country;
 *  - every bad row reported with its line number (CSV) or item number (JSON) and the reason; good rows kept;
 *  - duplicates merged: within the file (later non-empty values win) and with rows already stored
 *    (name / fields / time zone updated, status and attempts untouched);
 *  - atomic per file: every row of one file is written in one transaction, or none is;
 *  - contacts.timezone: the row's own column when it is a valid IANA zone ('contact'), else derived
 *    from the number ('number'), else null (the campaign's zone applies at claim time);
 *  - efficient and gentle: the input is read in 64 KB batches, rows written in multi-row `unnest`
 *    upserts (1000 rows, 250 on PGlite, whose statements run in its own thread: src/store/pglite-worker.ts),
 *    and the work goes in slices of ~5 ms with the event loop running between them (live calls keep their timing);
 *  - a row with a NUL byte is a bad row like any other (reported, skipped).
 */
import type { Db, Queryable } from '../store/db';
import { setDncActor } from '../store/dnc';
import { DialerError } from '../util/errors';
import { readCsvRecords, type CsvRecord } from './import-csv';
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
  /** Rows per upsert statement (default 1000; 250 on PGlite, one connection that live calls' writes share). */
  chunkSize?: number;
  /** CSV delimiter (default: detected). */
  delimiter?: string;
  /** DNC only: `source` column value (default 'import'). */
  source?: string;
  /** DNC only: who imports, for the audit trail (src/store/dnc.ts; default: the source). */
  actor?: string;
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

interface Prepared {
  phone: string;
  line: number;
  name: string | null;
  timezone: string | null;
  tzSource: 'contact' | 'number' | null;
  /** Zone given by the row but not recognised (replaced later). */
  badZone?: string;
  country?: string;
  reason: string | null;
  fields: Record<string, string>;
}

/**
 * A prepared row packed into one flat string while the rest of the file is read: ~150 bytes a row
 * instead of ~800 for the objects (and no slice of the upload's text kept alive), so a 100 MB file
 * holds a few hundred MB at most, not gigabytes.
 */
function pack(p: Prepared): string {
  return JSON.stringify([
    p.line,
    p.name,
    p.timezone,
    p.tzSource,
    p.badZone ?? null,
    p.country ?? null,
    p.reason,
    p.fields,
  ]);
}

function unpack(phone: string, packed: string): Prepared {
  const a = JSON.parse(packed) as [
    number,
    string | null,
    string | null,
    Prepared['tzSource'],
    string | null,
    string | null,
    string | null,
    Record<string, string>,
  ];
  return {
    phone,
    line: a[0],
    name: a[1],
    timezone: a[2],
    tzSource: a[3],
    badZone: a[4] ?? undefined,
    country: a[5] ?? undefined,
    reason: a[6],
    fields: a[7],
  };
}

/** The prepared rows in file order, `size` at a time (unpacked only for the statement that writes them). */
function* chunksOf(byPhone: Map<string, string>, size: number): Generator<Prepared[]> {
  let part: Prepared[] = [];
  for (const [phone, packed] of byPhone) {
    part.push(unpack(phone, packed));
    if (part.length >= size) {
      yield part;
      part = [];
    }
  }
  if (part.length) yield part;
}

/** Normalise, validate and merge duplicates (first occurrence keeps its place; later non-empty values win). */
class Preparer {
  /** E.164 number -> the packed row (`pack`). */
  readonly byPhone = new Map<string, string>();
  duplicates = 0;
  /** Rows handed to add() (mapped), and rows rejected before that (malformed records). */
  rows = 0;
  rejectedEarly = 0;
  constructor(
    private readonly kind: 'contacts' | 'dnc',
    private readonly country: string,
    private readonly c: Collector,
    private readonly allowPremium = false,
  ) {}
  add(rows: Row[]): void {
    this.rows += rows.length;
    const { kind, country, c, byPhone } = this;
    for (const r of rows) this.addOne(r, kind, country, c, byPhone);
  }
  private addOne(r: Row, kind: 'contacts' | 'dnc', country: string, c: Collector, byPhone: Map<string, string>): void {
    {
      const p = normalizePhone(r.phone, country);
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
      }
      const packed = byPhone.get(p.e164);
      if (packed === undefined) {
        byPhone.set(
          p.e164,
          pack({
            phone: p.e164,
            line: r.line,
            name: r.name ?? null,
            timezone,
            tzSource,
            badZone,
            country: p.country,
            reason: r.reason ?? null,
            fields: r.fields,
          }),
        );
        if (badZone)
          c.warn(
            r.line,
            `unknown time zone "${badZone.slice(0, 64)}": ${timezone ? `using ${timezone} (from the number)` : "the campaign's zone applies"}`,
          );
        return;
      }
      this.duplicates++;
      const prev = unpack(p.e164, packed);
      if (r.name) prev.name = r.name;
      if (r.reason) prev.reason = r.reason;
      if (tzSource === 'contact' || (prev.tzSource !== 'contact' && timezone)) {
        prev.timezone = timezone;
        prev.tzSource = tzSource;
      }
      Object.assign(prev.fields, r.fields);
      byPhone.set(p.e164, pack(prev));
    }
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

/** Read the input in batches (yielding to the event loop between them) into prepared, merged rows. */
async function collect(
  input: ImportInput,
  kind: 'contacts' | 'dnc',
  country: string,
  c: Collector,
  delimiter?: string,
  allowPremium = false,
): Promise<Preparer> {
  const prep = new Preparer(kind, country, c, allowPremium);
  const slices = new Slices();
  if (Array.isArray(input)) {
    for (let i = 0; i < input.length; i += PREPARE_BATCH) {
      const before = c.invalid;
      const rows = jsonRows(input.slice(i, i + PREPARE_BATCH), kind, c, i);
      prep.rejectedEarly += c.invalid - before;
      prep.add(rows);
      if (slices.due) await slices.next();
    }
    return prep;
  }
  let source: AsyncIterable<string | Buffer | Uint8Array> | Iterable<string | Uint8Array>;
  if (typeof input === 'string' || input instanceof Uint8Array) source = pieces(input);
  else if (isAsyncIterable(input)) source = input;
  else throw new ImportError('import_invalid', 'import input must be CSV text or a JSON array');
  let mapper: CsvMapper | undefined;
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
      prep.rejectedEarly += c.invalid - before;
      prep.add(rows);
      if (slices.due) await slices.next();
    }
    await yieldToLoop(); // the parse of the next piece (64 KB) is a slice of its own
  }
  return prep;
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

/** Import contacts into a campaign. Throws ImportError for input that cannot be imported at all. */
export async function importContacts(
  db: Db,
  campaignId: number,
  input: ImportInput,
  opts: ImportOptions = {},
): Promise<ImportResult> {
  checkId(campaignId, 'campaign id');
  const chunk = Math.max(1, opts.chunkSize ?? (db.kind === 'pglite' ? 250 : 1000));
  const c = new Collector(opts.maxErrors ?? 1000);
  const result = emptyResult('contacts', campaignId);
  // Read the campaign's default country first (outside the write transaction: parsing can take a while).
  const camp = await db.query<{ default_country: string; settings: unknown }>(
    'select default_country, settings from campaigns where id = $1',
    [campaignId],
  );
  if (!camp.rows.length) throw new ImportError('campaign_not_found', `campaign ${campaignId} does not exist`);
  const country = (opts.defaultCountry ?? camp.rows[0].default_country ?? 'US').toUpperCase();
  if (!isCountryCode(country)) throw new ImportError('import_invalid', `unknown default country "${country}"`);
  const prep = await collect(input, 'contacts', country, c, opts.delimiter, allowsPremium(camp.rows[0].settings));
  result.rows = prep.rows + prep.rejectedEarly;
  result.duplicates = prep.duplicates;

  await db.tx(async (q) => {
    await lockCampaign(q, campaignId);
    // Do-not-call: the per-statement check of the inserted contacts is deferred to one settle at the end
    // (migration 30), so this import holds the lock that orders it against list additions only then.
    await q.query(`select set_config('ai_dialer.dnc_settle', 'deferred', true)`);
    // Zones must also be known to the database (its tz data may be older than the JS runtime's):
    // looked up once per zone name (lower case -> the database's spelling, or null: unknown to it).
    const checked = new Map<string, string | null>();
    const spelling = async (zones: string[]): Promise<void> => {
      const wanted = [...new Set(zones.map((z) => z.toLowerCase()))].filter((z) => !checked.has(z));
      if (!wanted.length) return;
      const known = await zonesKnownToDb(db, q, wanted);
      for (const z of wanted) checked.set(z, known.get(z) ?? null);
    };
    for (const part of chunksOf(prep.byPhone, chunk)) {
      await spelling(part.map((p) => p.timezone).filter((z): z is string => !!z));
      for (const p of part) {
        if (!p.timezone) continue;
        const spelled = checked.get(p.timezone.toLowerCase());
        if (spelled) {
          p.timezone = spelled;
          continue;
        }
        if (p.tzSource === 'contact') {
          const z = zoneForNumber(p.phone, p.country);
          if (z) await spelling([z]);
          const zs = z ? (checked.get(z.toLowerCase()) ?? undefined) : undefined;
          c.warn(
            p.line,
            `time zone "${p.timezone}" is unknown to the database: ${zs ? `using ${zs} (from the number)` : "the campaign's zone applies"}`,
          );
          p.timezone = zs ?? null;
          p.tzSource = zs ? 'number' : null;
        } else {
          p.timezone = null;
          p.tzSource = null;
        }
      }
      const r = await q.query<{ inserted: boolean }>(
        `insert into contacts (campaign_id, phone, name, timezone, timezone_source, fields)
         select $1, t.phone, t.name, t.tz, t.tzs, t.f::jsonb
           from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) as t(phone, name, tz, tzs, f)
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
         returning (xmax = 0) as inserted`,
        [
          campaignId,
          part.map((p) => p.phone),
          part.map((p) => p.name),
          part.map((p) => p.timezone),
          part.map((p) => p.tzSource),
          part.map((p) => JSON.stringify(p.fields)),
        ],
      );
      for (const row of r.rows) {
        if (row.inserted) result.inserted++;
        else result.updated++;
      }
      await yieldToLoop();
    }
    // every listed number among them becomes `dnc`, never `pending`
    const phones = [...prep.byPhone.keys()];
    for (let i = 0; i < phones.length; i += 5000)
      await q.query('select contacts_dnc_settle($1::int, $2::text[])', [campaignId, phones.slice(i, i + 5000)]);
  });
  return finish(result, c);
}

/** Import do-not-call numbers: the global list (campaignId null) or one campaign's list. */
export async function importDnc(
  db: Db,
  input: ImportInput,
  opts: ImportOptions & { campaignId?: number | null } = {},
): Promise<ImportResult> {
  const campaignId = opts.campaignId ?? null;
  if (campaignId !== null) checkId(campaignId, 'campaign id');
  const chunk = Math.max(1, opts.chunkSize ?? (db.kind === 'pglite' ? 250 : 1000));
  const c = new Collector(opts.maxErrors ?? 1000);
  const result = emptyResult('dnc', campaignId);
  let country = opts.defaultCountry?.toUpperCase();
  if (!country && campaignId !== null) {
    const camp = await db.query<{ default_country: string }>('select default_country from campaigns where id = $1', [
      campaignId,
    ]);
    if (!camp.rows.length) throw new ImportError('campaign_not_found', `campaign ${campaignId} does not exist`);
    country = camp.rows[0].default_country;
  }
  country = (country ?? 'US').toUpperCase();
  if (!isCountryCode(country)) throw new ImportError('import_invalid', `unknown default country "${country}"`);
  const prep = await collect(input, 'dnc', country, c, opts.delimiter);
  result.rows = prep.rows + prep.rejectedEarly;
  result.duplicates = prep.duplicates;
  await db.tx(async (q) => {
    if (opts.actor) await setDncActor(q, opts.actor);
    if (campaignId !== null) await lockCampaign(q, campaignId);
    for (const part of chunksOf(prep.byPhone, chunk)) {
      const r = await q.query<{ inserted: boolean }>(
        `insert into dnc (phone, campaign_id, reason, source)
         select t.phone, $1::integer, t.reason, $2 from unnest($3::text[], $4::text[]) as t(phone, reason)
         on conflict (phone, (coalesce(campaign_id, 0))) do update set reason = coalesce(excluded.reason, dnc.reason)
         returning (xmax = 0) as inserted`,
        [campaignId, opts.source ?? 'import', part.map((p) => p.phone), part.map((p) => p.reason)],
      );
      for (const row of r.rows) {
        if (row.inserted) result.inserted++;
        else result.updated++;
      }
      await yieldToLoop();
    }
  });
  return finish(result, c);
}

function finish(result: ImportResult, c: Collector): ImportResult {
  result.invalid = c.invalid;
  result.errors = c.errors.sort((a, b) => a.line - b.line);
  result.warnings = c.warnings.sort((a, b) => a.line - b.line);
  result.errorsTruncated = c.truncated;
  return result;
}
