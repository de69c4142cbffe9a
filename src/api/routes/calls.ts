/** /api/v1/calls: the call list and one call with its turns and transcript. */
import fs from 'fs';
import type { Router } from 'express';
import { resolveRecording } from '../../calls/call-recordings';
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
      const recording = call.recording_path
        ? {
            path: call.recording_path,
            url: `/api/v1/calls/${id}/recording`,
            available: !call.recording_deleted_at,
            deletedAt: call.recording_deleted_at ?? null,
          }
        : null;
      res.json({ call, turns, transcript, recording });
    }),
  );

  // the whole-call recording (audio/wav), with the API's credentials like every read
  router.get(
    '/api/v1/calls/:id/recording',
    h(async (req, res) => {
      const id = parseId(req.params.id, 'call id');
      const r = await (
        await ctx.db()
      ).query<{ recording_path: string | null; recording_deleted_at: Date | null }>(
        'select recording_path, recording_deleted_at from calls where id = $1',
        [id],
      );
      const row = r.rows[0];
      if (!row) throw new ApiError(404, `call ${id} not found`);
      if (!row.recording_path) throw new ApiError(404, `call ${id} was not recorded`);
      if (row.recording_deleted_at) throw new ApiError(410, `the recording of call ${id} was deleted (retention)`);
      const file = resolveRecording(ctx.recordingsDir, row.recording_path);
      const st = file ? await fs.promises.stat(file).catch(() => undefined) : undefined;
      if (!file || !st?.isFile()) throw new ApiError(404, `the recording of call ${id} is not on disk (yet)`);
      res.set('Content-Type', 'audio/wav');
      res.set('Content-Length', String(st.size));
      res.set('Cache-Control', 'private, no-store');
      res.set('Content-Disposition', `inline; filename="call-${id}.wav"`);
      await new Promise<void>((resolve, reject) => {
        const s = fs.createReadStream(file);
        s.on('error', reject);
        res.on('close', () => {
          s.destroy();
          resolve();
        });
        s.pipe(res);
      });
    }),
  );
}
