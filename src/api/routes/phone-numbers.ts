/** POST /api/v1/campaigns/:id/phone-numbers: add or update caller-ID numbers (all or nothing). */
import type { Router } from 'express';
import { allowsPremium, normalizePhone, refusedNumberType } from '../../campaign/phone';
import type { CampaignRow } from '../../store/campaigns';
import { upsertPhoneNumbers, type PhoneNumberInput } from '../../store/phone-numbers';
import { ApiError } from '../errors';
import { h, parseId } from '../http';
import type { ApiContext } from '../context';
import { jsonBody } from './body';

function items(body: unknown): unknown[] {
  if (Array.isArray(body)) return body;
  const o = (body ?? {}) as { numbers?: unknown; number?: unknown };
  if (Array.isArray(o.numbers)) return o.numbers;
  if (o.number !== undefined) return [body];
  throw new ApiError(400, 'send {"number": "+1...", "label"?: "...", "active"?: true}, {"numbers": [...]} or an array');
}

/** Validate every item; the first bad ones are reported and nothing is saved. */
function validate(list: unknown[], camp: CampaignRow): PhoneNumberInput[] {
  const errors: Array<{ item: number; reason: string }> = [];
  const good: PhoneNumberInput[] = [];
  list.forEach((it, i) => {
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
  if (errors.length)
    throw new ApiError(400, `${errors.length} number(s) rejected; nothing was saved`, {
      errors: errors.slice(0, 1000),
    });
  // the same number twice in one request: the last one wins
  return [...new Map(good.map((g) => [g.number, g])).values()];
}

export function phoneNumberRoutes(router: Router, ctx: ApiContext): void {
  router.post(
    '/api/v1/campaigns/:id/phone-numbers',
    h(async (req, res) => {
      const id = parseId(req.params.id, 'campaign id');
      const d = await ctx.db();
      const camp = await ctx.mustCampaign(d, id);
      const list = items(await jsonBody(req, ctx));
      if (!list.length) throw new ApiError(400, 'no numbers given');
      if (list.length > 10000) throw new ApiError(400, 'at most 10000 numbers per request');
      const out = await upsertPhoneNumbers(d, id, validate(list, camp));
      res.status(out.added ? 201 : 200).json(out);
    }),
  );
}
