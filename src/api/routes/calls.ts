/** /api/v1/calls: the call list and one call with its turns and transcript. */
import type { Router } from 'express';
import { buildTranscript, getCall, type CallStatus } from '../../store/calls';
import { listCalls } from '../../store/call-list';
import { ApiError } from '../errors';
import { h, parseId } from '../http';
import type { ApiContext } from '../context';

const CALL_STATUS_FILTERS: readonly CallStatus[] = [
  'initiated',
  'ringing',
  'in_progress',
  'completed',
  'failed',
  'no_answer',
  'busy',
  'congestion',
  'cancelled',
  'machine',
];

export function callRoutes(router: Router, ctx: ApiContext): void {
  router.get(
    '/api/v1/calls',
    h(async (req, res) => {
      const campaignId = req.query.campaignId !== undefined ? parseId(req.query.campaignId, 'campaignId') : undefined;
      const st = req.query.status;
      let status: CallStatus | 'active' | undefined;
      if (st !== undefined) {
        if (st === 'active' || (typeof st === 'string' && (CALL_STATUS_FILTERS as string[]).includes(st)))
          status = st as CallStatus | 'active';
        else throw new ApiError(400, `status must be "active" or one of ${CALL_STATUS_FILTERS.join(', ')}`);
      }
      let limit = 50;
      if (req.query.limit !== undefined) {
        const l = String(req.query.limit);
        if (!/^\d{1,4}$/.test(l) || Number(l) < 1 || Number(l) > 1000)
          throw new ApiError(400, 'limit must be an integer from 1 to 1000');
        limit = Number(l);
      }
      res.json({ calls: await listCalls(await ctx.db(), { campaignId, status, limit }) });
    }),
  );

  router.get(
    '/api/v1/calls/:id',
    h(async (req, res) => {
      const id = parseId(req.params.id, 'call id');
      const d = await ctx.db();
      const c = await getCall(d, id);
      if (!c) throw new ApiError(404, `call ${id} not found`);
      const { turns, ...call } = c;
      const transcript = call.transcript ?? (await buildTranscript(d, id));
      res.json({ call, turns, transcript });
    }),
  );
}
