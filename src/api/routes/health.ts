/**
 * GET /api/v1/health: live resources of this process (AGI sessions, campaign slots, probes) and how
 * the API is protected. Open without a credential (container health checks): it carries counts and
 * campaign ids, never personal data.
 */
import type { Router } from 'express';
import { activeSessionCount } from '../../agi/registry';
import { readHealthProbes } from '../../health/probes';
import { writeStats } from '../../store/outbox';
import { registeredCampaignManagers } from '../../campaign/control';
import { h } from '../http';
import type { ApiContext } from '../context';

function engineCampaigns(): Array<{ campaignId: number; state: string; inFlight: number; heldBack: number }> {
  return registeredCampaignManagers().flatMap((m) =>
    m.campaigns().map((id) => {
      const st = m.runnerOf(id)!.status();
      // heldBack: dial passes that waited because this runtime was busy (live calls first)
      return { campaignId: id, state: st.state, inFlight: st.inFlight, heldBack: st.heldBack ?? 0 };
    }),
  );
}

export function healthRoutes(router: Router, ctx: ApiContext): void {
  router.get(
    '/api/v1/health',
    h(async (_req, res) => {
      const campaigns = engineCampaigns();
      res.set('Cache-Control', 'no-store').json({
        ok: true,
        auth: ctx.authMode,
        ...(ctx.authMode === 'open'
          ? { warning: 'the API and dashboard are open: no API_TOKEN and no Node-RED adminAuth (loopback only)' }
          : {}),
        agiSessions: activeSessionCount(),
        inFlight: campaigns.reduce((n, c) => n + c.inFlight, 0),
        campaigns,
        writes: writeStats(), // the durable write path (src/store/outbox.ts)
        ...readHealthProbes(),
      });
    }),
  );
}
