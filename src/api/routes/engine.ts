/** /api/v1/calls/automated/*: start, stop, pause, resume a campaign in the engine, and its status. */
import type { Router } from 'express';
import { getCampaign } from '../../store/campaigns';
import { campaignStatus } from '../../store/campaign-admin';
import { DialerError } from '../../util/errors';
import { ApiError } from '../errors';
import { h, parseId } from '../http';
import type { ApiContext } from '../context';
import { jsonBody } from './body';

/** HTTP status for a campaign-engine refusal, by DialerError code. */
function engineErrorStatus(code: string): number {
  if (code === 'campaign_no_queue') return 503; // no campaign-queue node deployed: the control is unavailable
  if (code === 'campaign_not_found') return 404;
  if (code === 'campaign_bad_id') return 400;
  return 409;
}

export function engineRoutes(router: Router, ctx: ApiContext): void {
  for (const action of ['start', 'stop', 'pause', 'resume'] as const) {
    router.post(
      `/api/v1/calls/automated/${action}`,
      h(async (req, res) => {
        const body = (await jsonBody(req, ctx)) as Record<string, unknown>;
        const id = parseId(Array.isArray(body) ? undefined : (body.campaignId ?? req.query.campaignId), 'campaignId');
        const d = await ctx.db();
        await ctx.mustCampaign(d, id);
        const c = ctx.control();
        let result: unknown;
        try {
          result = await c[action](id);
        } catch (err) {
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
      const d = await ctx.db();
      const summary = await campaignStatus(d, await ctx.mustCampaign(d, id));
      let engine: unknown = null;
      let engineAvailable = true;
      let engineError: string | undefined;
      try {
        const c = ctx.control();
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
}
