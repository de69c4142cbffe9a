/** Contact and do-not-call uploads: route, campaign and size are checked before the body is read. */
import type { Router } from 'express';
import { importContacts, importDnc, type ImportResult } from '../../campaign/import';
import { isCountryCode } from '../../campaign/phone';
import { ApiError } from '../errors';
import { requestActor } from '../auth';
import { h, parseId } from '../http';
import type { ApiContext } from '../context';
import { checkUpload, readUpload } from './body';

function country(v: unknown): string | undefined {
  if (v === undefined || v === '' || v === null) return undefined;
  if (!isCountryCode(v))
    throw new ApiError(
      400,
      `country must be a two-letter ISO code such as "US", got ${JSON.stringify(v).slice(0, 20)}`,
    );
  return v.toUpperCase();
}

/** 200 with the counts, or 422 when rows were sent and none could be stored. */
function answer(r: ImportResult): { status: number; body: Record<string, unknown> } {
  const none = r.rows > 0 && r.inserted + r.updated === 0;
  return none
    ? { status: 422, body: { error: `no valid rows (${r.invalid} rejected)`, ...r } }
    : { status: 200, body: { ...r } };
}

export function uploadRoutes(router: Router, ctx: ApiContext): void {
  router.post(
    '/api/v1/campaigns/:id/contacts',
    h(async (req, res) => {
      const id = parseId(req.params.id, 'campaign id');
      const d = await ctx.db();
      await ctx.mustCampaign(d, id); // 404 before a byte of the body is read
      const cq = country(req.query.country);
      checkUpload(req, ctx); // 415 / 413 from the headers
      const u = await readUpload(req, ctx);
      try {
        const r = await importContacts(d, id, u.data, { defaultCountry: cq ?? country(u.fields.country) });
        const a = answer(r);
        res.status(a.status).json(a.body);
      } finally {
        u.done();
      }
    }),
  );

  router.post(
    '/api/v1/dnc',
    h(async (req, res) => {
      const q = req.query.campaignId;
      const qid = q === undefined || q === '' ? null : parseId(q, 'campaignId');
      const d = await ctx.db();
      if (qid !== null) await ctx.mustCampaign(d, qid);
      const cq = country(req.query.country);
      checkUpload(req, ctx);
      const u = await readUpload(req, ctx);
      try {
        const raw = u.fields.campaignId ?? u.fields.campaign_id;
        const campaignId = qid ?? (raw === undefined || raw === '' || raw === null ? null : parseId(raw, 'campaignId'));
        if (campaignId !== null && qid === null) await ctx.mustCampaign(d, campaignId);
        const reason = u.fields.reason;
        const data =
          Array.isArray(u.data) && typeof reason === 'string'
            ? u.data.map((x) => (typeof x === 'string' || typeof x === 'number' ? { phone: x, reason } : x))
            : u.data;
        const r = await importDnc(d, data, {
          campaignId,
          defaultCountry: cq ?? country(u.fields.country),
          source: 'api',
          actor: requestActor(req, res),
        });
        const a = answer(r);
        res.status(a.status).json(a.body);
      } finally {
        u.done();
      }
    }),
  );
}
