/**
 * Against your own Asterisk (REAL_ASTERISK=external, see docs/contributing/testing.md): the shipped
 * contexts only, no test dialplan. An originate of Local/<n>@from-trunk puts its ;2 half through the
 * inbound route (ai-dialer-inbound -> AGI) and its ;1 half, once answered, through ai-dialer-agi -> AGI:
 * both reach our FastAGI server on AGI_PORT (your Asterisk's AGI_TARGET_HOST must point at this machine).
 */
import { AriConnection, type AriChannel } from '../../src/ari/client';
import { CallTracker, type CallOutcome } from '../../src/ari/calls';
import { AgiServer } from '../../src/agi/server';
import type { FastAgiSession } from '../../src/agi/session';
import { waitFor } from '../helpers/wait';
import { EXTERNAL, realAsteriskMode } from './asterisk';

const d = EXTERNAL && realAsteriskMode().run ? describe : describe.skip;

d('your own Asterisk with the shipped asterisk-config (REAL_ASTERISK=external)', () => {
  test('originate through the shipped contexts reaches our FastAGI with the call variables; GET /channels; outcome completed', async () => {
    const env = process.env;
    const agi = new AgiServer({
      host: env.REAL_ASTERISK_AGI_BIND || '0.0.0.0',
      port: Number(env.AGI_PORT || 4573),
      secret: env.AGI_SECRET || undefined,
      register: false,
    });
    await agi.listen();
    const conn = new AriConnection({
      url: env.ARI_URL as string,
      username: env.ARI_USERNAME as string,
      password: env.ARI_PASSWORD as string,
      app: env.ARI_APP || 'ai-dialer',
    });
    const tracker = new CallTracker(conn, { endpointTemplate: 'Local/{phone}@from-trunk', sweepMs: 0 });
    const outcomes: CallOutcome[] = [];
    tracker.on('outcome', (o: CallOutcome) => o.outcome !== 'answered' && outcomes.push(o));
    const seen: Array<Record<string, string | undefined>> = [];
    let channels: AriChannel[] = [];
    agi.on('session', (s: FastAgiSession) => {
      void (async () => {
        let inbound = false;
        try {
          const v: Record<string, string | undefined> = { direction: await s.getVariable('CALL_DIRECTION') };
          for (const k of ['CALL_ID', 'CONTACT_PHONE', 'CAMPAIGN_ID', 'CALL_TOKEN']) v[k] = await s.getVariable(k);
          inbound = v.direction === 'inbound';
          seen.push(v);
          if (inbound) return; // the "callee": stays until the dialled side hangs up
          channels = await conn.listChannels();
          await s.hangup();
        } finally {
          if (inbound && !s.hungUp) s.once('hangup', () => s.close());
          else s.close();
        }
      })();
    });
    try {
      await conn.start();
      await tracker.originate({ id: `ext-${Date.now()}`, phone: '+15550100', campaignId: 3 });
      const o = await waitFor(() => outcomes[0], 30_000, 'outcome');
      expect(o.outcome).toBe('completed');
      const dialed = seen.find((v) => v.direction !== 'inbound');
      expect(dialed).toMatchObject({ CALL_ID: String(o.callId), CONTACT_PHONE: '+15550100', CAMPAIGN_ID: '3' });
      expect(dialed?.CALL_TOKEN).toMatch(/^[A-Za-z0-9_-]{16,128}$/);
      const ours = channels.find((c) => c.id === o.channelId) as AriChannel & { channelvars?: Record<string, string> };
      expect(ours?.channelvars).toMatchObject({ CALL_ID: String(o.callId), CAMPAIGN_ID: '3' });
    } finally {
      await tracker.close();
      await conn.close();
      await agi.close();
    }
  }, 60_000);
});
