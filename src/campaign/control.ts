/**
 * Process-wide registry of campaign queues, so the HTTP API and the MQTT supervisor controls reach
 * the running queue without knowing about Node-RED. Every campaign-queue node registers its manager
 * while deployed.
 *
 *   campaignControl.start(id) / stop(id) / pause(id) / resume(id) / status(id)
 *
 * A command for a campaign goes to the queue that already runs it, else to the first deployed queue.
 * With no campaign-queue deployed they throw DialerError `campaign_no_queue`.
 */
import type { CampaignManager, RunnerStatus } from './manager';
import { DialerError } from '../util/errors';
import { parseCampaignId } from '../store/campaigns';
import { endCallPolitely } from '../calls/goodbye';
import { anySessionEnding } from '../agi/registry';

const managers: CampaignManager[] = [];

export function registerCampaignManager(m: CampaignManager): void {
  if (!managers.includes(m)) managers.push(m);
}

export function unregisterCampaignManager(m: CampaignManager): void {
  const i = managers.indexOf(m);
  if (i >= 0) managers.splice(i, 1);
}

export function registeredCampaignManagers(): readonly CampaignManager[] {
  return managers;
}

function pick(idIn: unknown): { m: CampaignManager; id: number } {
  const id = parseCampaignId(idIn);
  if (!managers.length) throw new DialerError('campaign_no_queue', 'no campaign-queue node is deployed');
  const owner = managers.find((m) => m.runnerOf(id));
  return { m: owner ?? managers[0], id };
}

export const campaignControl = {
  async start(id: unknown): Promise<RunnerStatus> {
    const p = pick(id);
    return p.m.start(p.id);
  },
  async stop(id: unknown): Promise<RunnerStatus> {
    const p = pick(id);
    return p.m.stop(p.id);
  },
  async pause(id: unknown): Promise<RunnerStatus> {
    const p = pick(id);
    return p.m.pause(p.id);
  },
  async resume(id: unknown): Promise<RunnerStatus> {
    const p = pick(id);
    return p.m.resume(p.id);
  },
  async status(id: unknown): Promise<RunnerStatus> {
    const p = pick(id);
    return p.m.status(p.id);
  },
  /** Dispatch by action name (MQTT control, msg.topic). */
  run(action: string, id: unknown): Promise<RunnerStatus> {
    switch (action) {
      case 'start':
        return campaignControl.start(id);
      case 'stop':
        return campaignControl.stop(id);
      case 'pause':
        return campaignControl.pause(id);
      case 'resume':
        return campaignControl.resume(id);
      case 'status':
        return campaignControl.status(id);
      default:
        return Promise.reject(
          new DialerError(
            'campaign_bad_action',
            `unknown campaign action ${JSON.stringify(action).slice(0, 40)} (start, stop, pause, resume, status)`,
          ),
        );
    }
  },
};

export interface DrainReport {
  /** Calls live when the drain began. */
  live: number;
  /** Ended by themselves within the drain timeout. */
  finished: number;
  /** Ended politely (goodbye at their next turn, then hangup). */
  ended: number;
  /** Hung up through Asterisk and recorded after the grace period. */
  forced: number;
}

/** How long a call asked to end politely gets (the command in flight, e.g. a 20 s RECORD, then the goodbye). */
export const DRAIN_GRACE_MS = 25_000;

/**
 * Shutdown drain of every deployed campaign queue (SIGTERM, Ctrl-C): stop claiming at once, let live
 * calls finish for up to `timeoutMs`, then end each remaining call politely wherever its conversation
 * is (its AGI session lets the command in flight end, plays the goodbye and hangs up:
 * src/calls/goodbye.ts), and after `graceMs` hang up through Asterisk and record whatever is still
 * open. Resolves when every call is recorded and every goodbye being said was heard (within the grace).
 */
export async function drainAll(o: { timeoutMs: number; graceMs?: number }): Promise<DrainReport> {
  const graceMs = o.graceMs ?? DRAIN_GRACE_MS;
  const list = [...managers];
  const live = list.reduce((n, m) => n + m.inFlight, 0);
  for (const m of list) m.draining = true; // every queue stops claiming now, not one after the other
  const endCall = (id: number): void => {
    endCallPolitely(id, 'the dialer is shutting down');
  };
  const deadline = Date.now() + o.timeoutMs + graceMs;
  const rs = await Promise.all(list.map((m) => m.drain({ timeoutMs: o.timeoutMs, graceMs, endCall })));
  // a queue counts a call ended once its flow ends, and the flow ends when the session refuses its next
  // command: before the goodbye is heard. Stopping the flows next hangs up the calls they follow through
  // ARI, so the goodbyes still being said are waited for first (within the same grace)
  while (anySessionEnding() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return rs.reduce<DrainReport>(
    (a, r) => ({ live, finished: a.finished + r.finished, ended: a.ended + r.ended, forced: a.forced + r.forced }),
    { live, finished: 0, ended: 0, forced: 0 },
  );
}
