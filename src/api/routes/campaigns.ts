/** /api/v1/campaigns: list, create, read (with caller IDs and contact count), patch, status. */
import type { Router } from 'express';
import type { Queryable } from '../../store/db';
import {
  campaignStatus,
  countContacts,
  createCampaign,
  listCampaigns,
  timezoneKnownToDb,
  updateCampaign,
} from '../../store/campaign-admin';
import { listPhoneNumbers } from '../../store/phone-numbers';
import { leaseInfo } from '../../store/leases';
import { validateCampaignInput } from '../campaigns';
import { ApiError } from '../errors';
import { h, parseId } from '../http';
import type { ApiContext } from '../context';
import { jsonBody } from './body';

async function checkZone(q: Queryable, tz: string | undefined): Promise<void> {
  if (tz && !(await timezoneKnownToDb(q, tz))) throw new ApiError(400, `timezone "${tz}" is not known to the database`);
}

export function campaignRoutes(router: Router, ctx: ApiContext): void {
  router.get(
    '/api/v1/campaigns',
    h(async (_req, res) => {
      res.json({ campaigns: await listCampaigns(await ctx.db()) });
    }),
  );

  router.post(
    '/api/v1/campaigns',
    h(async (req, res) => {
      const body = await jsonBody(req, ctx);
      const v = validateCampaignInput(body, { partial: false });
      const d = await ctx.db();
      await checkZone(d, v.timezone);
      const c = await createCampaign(d, v);
      res.status(201).location(`campaigns/${c.id}`).json(c);
    }),
  );

  router.get(
    '/api/v1/campaigns/:id',
    h(async (req, res) => {
      const id = parseId(req.params.id, 'campaign id');
      const d = await ctx.db();
      const c = await ctx.mustCampaign(d, id);
      const lease = await leaseInfo(d, id, c.status);
      res.json({
        ...c,
        phone_numbers: await listPhoneNumbers(d, id),
        contacts_total: await countContacts(d, id),
        state: lease.state,
        owner: lease.owner,
        heartbeatAgeMs: lease.heartbeatAgeMs,
      });
    }),
  );

  router.patch(
    '/api/v1/campaigns/:id',
    h(async (req, res) => {
      const id = parseId(req.params.id, 'campaign id');
      const d = await ctx.db();
      const current = await ctx.mustCampaign(d, id);
      const v = validateCampaignInput(await jsonBody(req, ctx), { partial: true, current });
      await checkZone(d, v.timezone);
      const c = await updateCampaign(d, id, v);
      if (!c) throw new ApiError(404, `campaign ${id} not found`);
      res.json(c);
    }),
  );

  router.get(
    '/api/v1/campaigns/:id/status',
    h(async (req, res) => {
      const id = parseId(req.params.id, 'campaign id');
      const d = await ctx.db();
      res.json(await campaignStatus(d, await ctx.mustCampaign(d, id)));
    }),
  );
}
