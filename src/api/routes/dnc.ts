/**
 * /api/v1/dnc read back and edited: the paged, searchable list (global, one campaign's, or all), one
 * number with its audit trail ("when was it added, by whom, why"), and a removal with a reason.
 * Additions are the upload route (routes/uploads.ts). SQL in src/store/dnc.ts.
 */
import type { Request, Router } from 'express';
import { isCountryCode, normalizePhone } from '../../campaign/phone';
import { dncHistory, listDnc, removeDnc } from '../../store/dnc';
import { ApiError } from '../errors';
import { h, parseId } from '../http';
import { requestActor } from '../auth';
import type { ApiContext } from '../context';
import { jsonBody } from './body';

const MAX_LIMIT = 1000;
const MAX_OFFSET = 10_000_000;
const MAX_SEARCH = 100;
const MAX_REASON = 500;

function intParam(v: unknown, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined || v === '') return dflt;
  const s = String(v);
  if (typeof v !== 'string' || !/^\d{1,9}$/.test(s) || Number(s) < min || Number(s) > max)
    throw new ApiError(400, `${name} must be an integer from ${min} to ${max}`);
  return Number(s);
}

/** `campaignId`: absent = every list, `global` = the global list, a number = that campaign's list. */
function scopeParam(v: unknown): number | null | undefined {
  if (v === undefined || v === '' || v === 'all') return undefined;
  if (v === 'global') return null;
  return parseId(v, 'campaignId (a campaign id, "global" or "all")');
}

/** The number in the path, as stored (E.164); `country` for national formats (default US). */
function phoneParam(req: Request): string {
  const c = req.query.country;
  if (c !== undefined && !isCountryCode(c))
    throw new ApiError(400, 'country must be a two-letter ISO code such as "US"');
  const p = normalizePhone(req.params.phone, typeof c === 'string' ? c.toUpperCase() : 'US');
  if (!p.ok) throw new ApiError(400, `bad phone number: ${p.reason.slice(0, 120)}`);
  return p.e164;
}

function text(v: unknown, name: string, max: number): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new ApiError(400, `${name} must be text`);
  const t = v.trim();
  if (t.length > max) throw new ApiError(400, `${name} is longer than ${max} characters`);
  if (/[\0-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(t)) throw new ApiError(400, `${name} contains control characters`);
  return t || undefined;
}

export function dncRoutes(router: Router, ctx: ApiContext): void {
  router.get(
    '/api/v1/dnc',
    h(async (req, res) => {
      const campaignId = scopeParam(req.query.campaignId);
      const search = text(req.query.q, 'q', MAX_SEARCH);
      const limit = intParam(req.query.limit, 'limit', 1, MAX_LIMIT, 50);
      const offset = intParam(req.query.offset, 'offset', 0, MAX_OFFSET, 0);
      const d = await ctx.db();
      if (typeof campaignId === 'number') await ctx.mustCampaign(d, campaignId);
      const r = await listDnc(d, { campaignId, search, limit, offset });
      res.json({ total: r.total, limit, offset, entries: r.entries });
    }),
  );

  router.get(
    '/api/v1/dnc/:phone',
    h(async (req, res) => {
      const phone = phoneParam(req);
      const r = await dncHistory(await ctx.db(), phone);
      if (!r.entries.length && !r.history.length)
        throw new ApiError(404, `${phone} has never been on a do-not-call list`);
      res.json({ phone, listed: r.entries.length > 0, entries: r.entries, history: r.history });
    }),
  );

  router.delete(
    '/api/v1/dnc/:phone',
    h(async (req, res) => {
      const phone = phoneParam(req);
      const campaignId = scopeParam(req.query.campaignId ?? 'global');
      if (campaignId === undefined) throw new ApiError(400, 'campaignId must be a campaign id or "global"');
      const body = (await jsonBody(req, ctx)) as Record<string, unknown>;
      if (Array.isArray(body)) throw new ApiError(400, 'send {"reason": "..."}');
      const reason = text(body.reason ?? req.query.reason, 'reason', MAX_REASON);
      if (!reason) throw new ApiError(400, 'a reason is required (kept in the audit trail): {"reason": "..."}');
      const by = text(body.by ?? req.query.by, 'by', 100);
      const d = await ctx.db();
      if (campaignId !== null) await ctx.mustCampaign(d, campaignId);
      const actor = requestActor(req, res) + (by ? ` (${by})` : '');
      const r = await removeDnc(d, { phone, campaignId, reason, actor });
      if (!r)
        throw new ApiError(
          404,
          `${phone} is not on ${campaignId === null ? 'the global list' : `campaign ${campaignId}'s list`}`,
        );
      res.json({ phone, campaignId, removed: true, reason, actor, contactsReopened: r.contactsReopened });
    }),
  );
}
