/**
 * The HTTP API (JSON, /api/v1/...) as an express Router, for Node-RED's httpNode (express 4) or any
 * express app. Every bad input gets a 4xx with `{error: "<one clear line>"}`; a 500 means a bug.
 *
 *   const router = createApiRouter({ getDb: () => acquireDb(opts), token: process.env.API_TOKEN });
 *   RED.httpNode.use(router);
 *
 * Write routes (POST/PATCH/PUT/DELETE) need the token when one is set (`Authorization: Bearer <t>` or
 * `X-API-Token: <t>`); reads are open. See docs/reference/http-api.md for every route.
 */
import { leaseInfo } from '../store/leases';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import Busboy from 'busboy';
import { createHash, timingSafeEqual } from 'crypto';
import type { Db, Queryable } from '../store/db';
import { buildTranscript, getCall, OPEN_STATUSES } from '../store/calls';
import { DialerError, errorMessage } from '../util/errors';
import { campaignControl, registeredCampaignManagers } from '../campaign/control';
import { importContacts, importDnc, ImportError, type ImportResult } from '../campaign/import';
import { allowsPremium, isCountryCode, normalizePhone, refusedNumberType } from '../campaign/phone';
import { activeSessionCount } from '../agi/registry';
import { readHealthProbes } from '../health/probes';
import { isStoreUnavailable, writeStats } from '../store/outbox';
import {
  ApiError,
  campaignStatus,
  createCampaign,
  getCampaign,
  listCampaigns,
  updateCampaign,
  validateCampaignInput,
  type CampaignRow,
} from './campaigns';

export { ApiError } from './campaigns';

/** What the API needs from the campaign engine (src/campaign/control.ts `campaignControl`). */
export interface CampaignControlApi {
  start(id: number): Promise<unknown>;
  stop(id: number): Promise<unknown>;
  pause(id: number): Promise<unknown>;
  resume(id: number): Promise<unknown>;
  status?(id: number): Promise<unknown>;
}

export interface ApiRouterOptions {
  getDb: () => Promise<Db>;
  /** Campaign engine controls; default: `campaignControl` from src/campaign/control (loaded when first needed). */
  control?: CampaignControlApi | (() => CampaignControlApi | undefined);
  /** Token for write routes; default process.env.API_TOKEN; empty: no token needed. */
  token?: string;
  /** Largest CSV / multipart upload in bytes (default 50 MB). */
  maxUploadBytes?: number;
  /** Largest JSON body in bytes (default 10 MB; JSON contact arrays can be big). */
  maxJsonBytes?: number;
  /** One-line logger for unexpected (500) errors. */
  log?: (line: string) => void;
}

const CSV_TYPES = [
  'text/csv',
  'text/plain',
  'application/csv',
  'text/comma-separated-values',
  'application/vnd.ms-excel',
  'text/tab-separated-values',
];
const CALL_STATUS_FILTERS = [
  'initiated',
  'ringing',
  'in_progress',
  'completed',
  'failed',
  'no_answer',
  'busy',
  'congestion',
  'cancelled',
];

/** The campaign engine's control object of this process. */
function loadDefaultControl(): CampaignControlApi | undefined {
  return campaignControl;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** HTTP status for a campaign-engine refusal, by DialerError code. */
function engineErrorStatus(code: string): number {
  if (code === 'campaign_no_queue') return 503; // no campaign-queue node deployed: the control is unavailable
  if (code === 'campaign_not_found') return 404;
  if (code === 'campaign_bad_id') return 400;
  return 409;
}

export function parseId(v: unknown, name: string): number {
  const s = typeof v === 'number' ? String(v) : v;
  if (typeof s !== 'string' || !/^\d{1,10}$/.test(s) || Number(s) < 1 || Number(s) > 2147483647) {
    throw new ApiError(
      400,
      `${name} must be a positive integer${v === undefined || v === '' ? ' (missing)' : `, got ${JSON.stringify(v).slice(0, 40)}`}`,
    );
  }
  return Number(s);
}

function mediaType(req: Request): string {
  return String(req.headers['content-type'] ?? '')
    .split(';')[0]
    .trim()
    .toLowerCase();
}

interface Upload {
  /** CSV text or a JSON array. */
  data: string | Buffer | unknown[];
  /** Other form fields / JSON keys (campaignId, country, reason...). */
  fields: Record<string, unknown>;
}

/** Read a multipart/form-data body: the first file part (or a `csv` text field) and the other fields. */
function readMultipart(req: Request, limit: number): Promise<Upload> {
  return new Promise((resolve, reject) => {
    let bb: Busboy.Busboy;
    try {
      bb = Busboy({
        headers: req.headers,
        limits: { fileSize: limit, files: 1, fields: 50, fieldSize: Math.min(limit, 50 * 1024 * 1024) },
      });
    } catch (err) {
      reject(new ApiError(400, `bad multipart body: ${errorMessage(err)}`));
      return;
    }
    const fields: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    let gotFile = false;
    let failed = false;
    const fail = (e: ApiError) => {
      if (failed) return;
      failed = true;
      req.unpipe(bb);
      req.resume();
      reject(e);
    };
    bb.on('file', (_name, stream, info) => {
      gotFile = true;
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () =>
        fail(new ApiError(413, `file ${JSON.stringify(info.filename ?? '')} is larger than ${limit} bytes`)),
      );
    });
    bb.on('field', (name, value, info) => {
      if (info.valueTruncated) return fail(new ApiError(413, `form field ${name} is too large`));
      fields[name] = value;
    });
    bb.on('error', (err) => fail(new ApiError(400, `bad multipart body: ${errorMessage(err)}`)));
    bb.on('close', () => {
      if (failed) return;
      if (gotFile) resolve({ data: Buffer.concat(chunks), fields });
      else if (typeof fields.csv === 'string') resolve({ data: fields.csv, fields });
      else
        reject(
          new ApiError(400, 'the multipart body has no file (send the CSV as a file part, e.g. -F file=@contacts.csv)'),
        );
    });
    req.on('aborted', () => fail(new ApiError(400, 'upload aborted')));
    req.pipe(bb);
  });
}

export function createApiRouter(opts: ApiRouterOptions): Router {
  const router = express.Router();
  const maxUpload = opts.maxUploadBytes ?? 50 * 1024 * 1024;
  const maxJson = opts.maxJsonBytes ?? 10 * 1024 * 1024;
  const token = opts.token ?? process.env.API_TOKEN ?? '';
  const tokenHash = token ? digest(token) : undefined;
  const log = opts.log ?? ((line: string) => console.error(line));
  const jsonParser = express.json({ limit: maxJson, strict: true, type: ['application/json', 'application/*+json'] });
  const textParser = express.text({ limit: maxUpload, type: CSV_TYPES });

  const control = (): CampaignControlApi => {
    let c: CampaignControlApi | undefined;
    try {
      c = typeof opts.control === 'function' ? opts.control() : (opts.control ?? loadDefaultControl());
    } catch (err) {
      throw new ApiError(503, `the campaign engine failed to load: ${errorMessage(err)}`);
    }
    if (!c)
      throw new ApiError(
        503,
        'the campaign engine is not available in this runtime (no campaign control loaded); start/stop/pause/resume cannot run',
      );
    return c;
  };

  const db = async (): Promise<Db> => {
    try {
      return await opts.getDb();
    } catch (err) {
      throw new ApiError(503, `the database is unavailable: ${errorMessage(err)}`);
    }
  };

  const mustCampaign = async (q: Queryable, id: number): Promise<CampaignRow> => {
    const c = await getCampaign(q, id);
    if (!c) throw new ApiError(404, `campaign ${id} not found`);
    return c;
  };

  const checkZoneKnownToDb = async (q: Queryable, tz: string | undefined) => {
    if (!tz) return;
    const r = await q.query('select 1 from pg_timezone_names where name = $1', [tz]);
    if (!r.rows.length) throw new ApiError(400, `timezone "${tz}" is not known to the database`);
  };

  type H = (req: Request, res: Response) => Promise<unknown>;
  const h = (fn: H) => (req: Request, res: Response, next: NextFunction) => {
    fn(req, res).catch(next);
  };

  // --- token for write routes ---
  router.use('/api/v1', (req, _res, next) => {
    if (!tokenHash || req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return next();
    const auth = String(req.headers.authorization ?? '');
    const given =
      /^Bearer\s+(.+)$/i.exec(auth)?.[1]?.trim() ??
      (typeof req.headers['x-api-token'] === 'string' ? req.headers['x-api-token'] : '');
    if (!given)
      return next(
        new ApiError(401, 'this route needs the API token (Authorization: Bearer <token> or X-API-Token: <token>)'),
      );
    if (!timingSafeEqual(digest(given), tokenHash)) return next(new ApiError(403, 'the API token is wrong'));
    next();
  });

  /** JSON bodies only (write routes other than uploads). */
  const jsonOnly = (req: Request, res: Response, next: NextFunction) => {
    const t = mediaType(req);
    if (!t) {
      // No content type: accept an empty body, or JSON sent without a header.
      req.headers['content-type'] = 'application/json';
    } else if (t !== 'application/json' && !t.endsWith('+json')) {
      return next(new ApiError(415, `send JSON (Content-Type: application/json), got ${t}`));
    }
    jsonParser(req, res, next);
  };

  /** Uploads: CSV text, multipart file, or JSON. Puts an Upload on res.locals.upload. */
  const upload = (req: Request, res: Response, next: NextFunction) => {
    const t = mediaType(req);
    if (t === 'multipart/form-data') {
      readMultipart(req, maxUpload).then((u) => {
        res.locals.upload = u;
        next();
      }, next);
      return;
    }
    if (t === 'application/json' || t.endsWith('+json')) {
      jsonParser(req, res, (err?: unknown) => {
        if (err) return next(err);
        const body = req.body as unknown;
        if (Array.isArray(body)) res.locals.upload = { data: body, fields: {} } as Upload;
        else if (body && typeof body === 'object') {
          const o = body as Record<string, unknown>;
          const list = o.contacts ?? o.numbers ?? o.items;
          if (Array.isArray(list)) res.locals.upload = { data: list, fields: o } as Upload;
          else if (typeof o.csv === 'string') res.locals.upload = { data: o.csv, fields: o } as Upload;
          else if (o.phone !== undefined) res.locals.upload = { data: [o], fields: o } as Upload;
          else
            return next(
              new ApiError(
                400,
                'JSON body must be an array, or an object with "contacts"/"numbers" (array), "csv" (text) or "phone"',
              ),
            );
        } else return next(new ApiError(400, 'JSON body must be an array or an object'));
        next();
      });
      return;
    }
    if (CSV_TYPES.includes(t)) {
      textParser(req, res, (err?: unknown) => {
        if (err) return next(err);
        res.locals.upload = { data: typeof req.body === 'string' ? req.body : '', fields: {} } as Upload;
        next();
      });
      return;
    }
    next(
      new ApiError(
        415,
        `send the list as text/csv, multipart/form-data (a file part) or application/json${t ? `, not ${t}` : ' (no Content-Type given)'}`,
      ),
    );
  };

  const country = (v: unknown): string | undefined => {
    if (v === undefined || v === '' || v === null) return undefined;
    if (!isCountryCode(v))
      throw new ApiError(
        400,
        `country must be a two-letter ISO code such as "US", got ${JSON.stringify(v).slice(0, 20)}`,
      );
    return v.toUpperCase();
  };

  const importStatus = (r: ImportResult): number => (r.rows > 0 && r.inserted + r.updated === 0 ? 422 : 200);

  // --- campaigns ---
  router.get(
    '/api/v1/campaigns',
    h(async (_req, res) => {
      const d = await db();
      res.json({ campaigns: await listCampaigns(d) });
    }),
  );

  router.post(
    '/api/v1/campaigns',
    jsonOnly,
    h(async (req, res) => {
      const v = validateCampaignInput(req.body, { partial: false });
      const d = await db();
      await checkZoneKnownToDb(d, v.timezone);
      const c = await createCampaign(d, v);
      res.status(201).location(`campaigns/${c.id}`).json(c);
    }),
  );

  router.get(
    '/api/v1/campaigns/:id',
    h(async (req, res) => {
      const id = parseId(req.params.id, 'campaign id');
      const d = await db();
      const c = await mustCampaign(d, id);
      const nums = await d.query(
        'select id, number, label, active, last_used_at, use_count from phone_numbers where campaign_id = $1 order by id',
        [id],
      );
      const counts = await d.query<{ n: number }>('select count(*)::int as n from contacts where campaign_id = $1', [
        id,
      ]);
      const lease = await leaseInfo(d, id, c.status);
      res.json({
        ...c,
        phone_numbers: nums.rows,
        contacts_total: Number(counts.rows[0]?.n ?? 0),
        state: lease.state,
        owner: lease.owner,
        heartbeatAgeMs: lease.heartbeatAgeMs,
      });
    }),
  );

  router.patch(
    '/api/v1/campaigns/:id',
    jsonOnly,
    h(async (req, res) => {
      const id = parseId(req.params.id, 'campaign id');
      const d = await db();
      const current = await mustCampaign(d, id);
      const v = validateCampaignInput(req.body, { partial: true, current });
      await checkZoneKnownToDb(d, v.timezone);
      const c = await updateCampaign(d, id, v);
      if (!c) throw new ApiError(404, `campaign ${id} not found`);
      res.json(c);
    }),
  );

  router.get(
    '/api/v1/campaigns/:id/status',
    h(async (req, res) => {
      const id = parseId(req.params.id, 'campaign id');
      const d = await db();
      res.json(await campaignStatus(d, await mustCampaign(d, id)));
    }),
  );

  router.post(
    '/api/v1/campaigns/:id/contacts',
    upload,
    h(async (req, res) => {
      const id = parseId(req.params.id, 'campaign id');
      const u = res.locals.upload as Upload;
      const d = await db();
      await mustCampaign(d, id);
      const c = country(req.query.country ?? u.fields.country);
      const r = await importContacts(d, id, u.data as string | Buffer | unknown[], { defaultCountry: c });
      res
        .status(importStatus(r))
        .json(importStatus(r) === 422 ? { error: `no valid rows (${r.invalid} rejected)`, ...r } : r);
    }),
  );

  router.post(
    '/api/v1/campaigns/:id/phone-numbers',
    jsonOnly,
    h(async (req, res) => {
      const id = parseId(req.params.id, 'campaign id');
      const body = req.body as unknown;
      let items: unknown[];
      if (Array.isArray(body)) items = body;
      else if (body && typeof body === 'object' && Array.isArray((body as { numbers?: unknown }).numbers))
        items = (body as { numbers: unknown[] }).numbers;
      else if (body && typeof body === 'object' && (body as { number?: unknown }).number !== undefined) items = [body];
      else
        throw new ApiError(
          400,
          'send {"number": "+1...", "label"?: "...", "active"?: true}, {"numbers": [...]} or an array',
        );
      if (!items.length) throw new ApiError(400, 'no numbers given');
      if (items.length > 10000) throw new ApiError(400, 'at most 10000 numbers per request');
      const d = await db();
      const camp = await mustCampaign(d, id);
      const errors: Array<{ item: number; reason: string }> = [];
      const good: Array<{ number: string; label: string | null; active: boolean }> = [];
      items.forEach((it, i) => {
        const o = typeof it === 'string' ? { number: it } : (it as Record<string, unknown>);
        if (!o || typeof o !== 'object')
          return errors.push({ item: i + 1, reason: 'must be a number string or {"number": ...}' });
        const p = normalizePhone(o.number, camp.default_country);
        if (!p.ok) return errors.push({ item: i + 1, reason: p.reason });
        const refused = refusedNumberType(p, allowsPremium(camp.settings)); // toll fraud (campaign/phone.ts)
        if (refused) return errors.push({ item: i + 1, reason: refused });
        if (o.label !== undefined && o.label !== null && (typeof o.label !== 'string' || o.label.length > 100))
          return errors.push({ item: i + 1, reason: 'label must be text of at most 100 characters' });
        if (o.active !== undefined && typeof o.active !== 'boolean')
          return errors.push({ item: i + 1, reason: 'active must be true or false' });
        good.push({ number: p.e164, label: (o.label as string | undefined) ?? null, active: o.active !== false });
      });
      if (errors.length) throw new ApiError(400, `${errors.length} number(s) rejected; nothing was saved`, { errors });
      const out = await d.tx(async (q) => {
        let added = 0;
        for (const g of good) {
          const r = await q.query<{ inserted: boolean }>(
            `insert into phone_numbers (campaign_id, number, label, active) values ($1, $2, $3, $4)
           on conflict (coalesce(campaign_id, 0), number) do update set label = coalesce(excluded.label, phone_numbers.label), active = excluded.active
           returning (xmax = 0) as inserted`,
            [id, g.number, g.label, g.active],
          );
          if (r.rows[0]?.inserted) added++;
        }
        const all = await q.query(
          'select id, number, label, active, last_used_at, use_count from phone_numbers where campaign_id = $1 order by id',
          [id],
        );
        return { added, updated: good.length - added, phone_numbers: all.rows };
      });
      res.status(out.added ? 201 : 200).json(out);
    }),
  );

  // --- do-not-call ---
  router.post(
    '/api/v1/dnc',
    upload,
    h(async (req, res) => {
      const u = res.locals.upload as Upload;
      const raw = req.query.campaignId ?? u.fields.campaignId ?? u.fields.campaign_id;
      const campaignId = raw === undefined || raw === '' || raw === null ? null : parseId(raw, 'campaignId');
      const d = await db();
      if (campaignId !== null) await mustCampaign(d, campaignId);
      const data =
        Array.isArray(u.data) && typeof u.fields.reason === 'string'
          ? u.data.map((x) =>
              typeof x === 'string' || typeof x === 'number' ? { phone: x, reason: u.fields.reason } : x,
            )
          : u.data;
      const r = await importDnc(d, data as string | Buffer | unknown[], {
        campaignId,
        defaultCountry: country(req.query.country ?? u.fields.country),
        source: 'api',
      });
      res
        .status(importStatus(r))
        .json(importStatus(r) === 422 ? { error: `no valid rows (${r.invalid} rejected)`, ...r } : r);
    }),
  );

  // --- campaign engine controls ---
  for (const action of ['start', 'stop', 'pause', 'resume'] as const) {
    router.post(
      `/api/v1/calls/automated/${action}`,
      jsonOnly,
      h(async (req, res) => {
        const body = (req.body ?? {}) as Record<string, unknown>;
        const id = parseId(body.campaignId ?? req.query.campaignId, 'campaignId');
        const d = await db();
        await mustCampaign(d, id);
        const c = control();
        let result: unknown;
        try {
          result = await c[action](id);
        } catch (err) {
          if (err instanceof ApiError) throw err;
          if (err instanceof DialerError)
            throw new ApiError(engineErrorStatus(err.code), err.message, { code: err.code });
          throw err;
        }
        const after = await getCampaign(d, id);
        res.json({ ok: true, action, campaignId: id, status: after?.status, result: result ?? null });
      }),
    );
  }

  router.get(
    '/api/v1/calls/automated/status',
    h(async (req, res) => {
      const id = parseId(req.query.campaignId, 'campaignId');
      const d = await db();
      const summary = await campaignStatus(d, await mustCampaign(d, id));
      let engine: unknown = null;
      let engineAvailable = true;
      let engineError: string | undefined;
      try {
        const c = control();
        engine = c.status ? await c.status(id) : null;
      } catch (err) {
        if (err instanceof ApiError && err.status === 503) {
          engineAvailable = false;
          engineError = err.message;
        } else if (err instanceof DialerError) {
          engineAvailable = engineErrorStatus(err.code) !== 503;
          engineError = err.message;
        } else throw err;
      }
      res.json({ ...summary, engineAvailable, engine: engine ?? null, ...(engineError ? { engineError } : {}) });
    }),
  );

  // --- calls ---
  router.get(
    '/api/v1/calls',
    h(async (req, res) => {
      const where: string[] = [];
      const params: unknown[] = [];
      if (req.query.campaignId !== undefined) {
        params.push(parseId(req.query.campaignId, 'campaignId'));
        where.push(`c.campaign_id = $${params.length}`);
      }
      const st = req.query.status;
      if (st !== undefined) {
        if (st === 'active') where.push(`c.status in (${OPEN_STATUSES.map((s) => `'${s}'`).join(',')})`);
        else if (typeof st === 'string' && CALL_STATUS_FILTERS.includes(st)) {
          params.push(st);
          where.push(`c.status = $${params.length}`);
        } else throw new ApiError(400, `status must be "active" or one of ${CALL_STATUS_FILTERS.join(', ')}`);
      }
      let limit = 50;
      if (req.query.limit !== undefined) {
        const l = String(req.query.limit);
        if (!/^\d{1,4}$/.test(l) || Number(l) < 1 || Number(l) > 1000)
          throw new ApiError(400, 'limit must be an integer from 1 to 1000');
        limit = Number(l);
      }
      params.push(limit);
      const d = await db();
      const r = await d.query(
        `select c.id, c.campaign_id, c.contact_id, c.direction, c.phone, c.caller_id, c.status, c.outcome, c.reason, c.attempt,
              c.hangup_cause, c.created_at, c.answered_at, c.ended_at, c.duration_ms, c.talk_ms, k.name as contact_name
         from calls c left join contacts k on k.id = c.contact_id
        ${where.length ? 'where ' + where.join(' and ') : ''}
        order by c.id desc limit $${params.length}`,
        params,
      );
      res.json({ calls: r.rows });
    }),
  );

  router.get(
    '/api/v1/calls/:id',
    h(async (req, res) => {
      const id = parseId(req.params.id, 'call id');
      const d = await db();
      const c = await getCall(d, id);
      if (!c) throw new ApiError(404, `call ${id} not found`);
      const { turns, ...call } = c;
      const transcript = call.transcript ?? (await buildTranscript(d, id));
      res.json({ call, turns, transcript });
    }),
  );

  // --- health: live resources of this process (sessions, slots, simulated channels) ---
  router.get(
    '/api/v1/health',
    h(async (_req, res) => {
      let campaigns: Array<{ campaignId: number; state: string; inFlight: number }> = [];
      try {
        campaigns = registeredCampaignManagers().flatMap((m) =>
          m.campaigns().map((id) => {
            const st = m.runnerOf(id)!.status();
            return { campaignId: id, state: st.state, inFlight: st.inFlight };
          }),
        );
      } catch {
        /* no campaign engine in this runtime */
      }
      res.set('Cache-Control', 'no-store').json({
        ok: true,
        agiSessions: activeSessionCount(),
        inFlight: campaigns.reduce((n, c) => n + c.inFlight, 0),
        campaigns,
        writes: writeStats(), // the durable write path (src/store/outbox.ts)
        ...readHealthProbes(),
      });
    }),
  );

  // --- unknown routes under the API, and errors ---
  router.use('/api/v1', (req, _res, next) =>
    next(new ApiError(404, `no such route: ${req.method} ${req.baseUrl}${req.path}`)),
  );

  router.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (!req.originalUrl.includes('/api/v1')) return next(err);
    if (res.headersSent) return next(err);
    const e = err as { type?: string; status?: number; statusCode?: number; message?: string; limit?: number };
    let status = 500;
    let body: Record<string, unknown>;
    if (err instanceof ApiError) {
      status = err.status;
      body = { error: err.message, ...(err.details ?? {}) };
    } else if (err instanceof ImportError) {
      status = err.code === 'campaign_not_found' ? 404 : 400;
      body = { error: err.message };
    } else if (isStoreUnavailable(err)) {
      // the database is down for a moment: say so, and when to try again (writes wait in the outbox)
      status = 503;
      res.set('Retry-After', '5');
      body = { error: 'the database is unreachable right now; try again shortly', code: 'store_unavailable' };
    } else if (e.type === 'entity.too.large') {
      status = 413;
      body = { error: `the request body is larger than the limit (${e.limit ?? '?'} bytes)` };
    } else if (e.type === 'entity.parse.failed') {
      status = 400;
      body = { error: `the body is not valid JSON: ${e.message}` };
    } else if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') {
      status = 415;
      body = { error: e.message ?? 'unsupported encoding' };
    } else if (e.type === 'request.aborted' || e.type === 'request.size.invalid') {
      status = 400;
      body = { error: e.message ?? 'request aborted' };
    } else if (
      typeof (e.status ?? e.statusCode) === 'number' &&
      (e.status ?? e.statusCode)! >= 400 &&
      (e.status ?? e.statusCode)! < 500
    ) {
      status = (e.status ?? e.statusCode)!;
      body = { error: e.message ?? 'bad request' };
    } else {
      log(`ai-dialer API: ${req.method} ${req.originalUrl} failed: ${errorMessage(err)}`);
      body = { error: `internal error: ${errorMessage(err)}` };
    }
    res.status(status).json(body);
  });

  return router;
}
