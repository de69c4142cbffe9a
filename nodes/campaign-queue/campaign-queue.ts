import os from 'os';
import type { NodeAPI, Node, NodeDef, NodeMessageInFlow, NodeMessage } from 'node-red';
import type { Db } from '../../src/store/db';
import { CampaignManager, type CampaignEvent, type PlaceCall, type RunnerStatus } from '../../src/campaign/manager';
import { registerCampaignManager, unregisterCampaignManager } from '../../src/campaign/control';
import { controlBus, type CampaignControl } from '../../src/events/control-bus';
import { errorMessage } from '../../src/util/errors';
import { ariView } from '../../src/campaign/reconcile';
import type { AriConnection } from '../../src/ari/client';
import { requestCallback } from '../../src/store/campaigns';
import { mountWeb, unmountWeb, webOwner } from '../../src/api/mount';

interface QueueDef extends NodeDef {
  store: string;
  asterisk: string;
  worker: string;
  tickMs: string;
  globalCps: string;
  staleAfter: string;
  dncScope: 'global' | 'campaign';
  autoStart: string;
  api?: boolean;
}

interface StoreConfig extends Node {
  getDb(): Promise<Db>;
}

interface AsteriskConfig extends Node {
  connect(): Promise<AriConnection>;
}

type Msg = NodeMessageInFlow & {
  campaignId?: unknown;
  call?: Record<string, unknown> & { id?: unknown; outcome?: unknown; phone?: unknown; campaignId?: unknown };
  reply?: { action?: { type?: string } | string };
};

const ACTIONS = new Set(['start', 'stop', 'pause', 'resume', 'status']);

// English messages, used when the runtime has no catalogue for this node (e.g. loaded directly in tests).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const EN = (
  require('./locales/en-US/campaign-queue.json') as { 'campaign-queue': Record<string, Record<string, string>> }
)['campaign-queue'];

export = function (RED: NodeAPI): void {
  const t = (key: string, vars: Record<string, string | number> = {}): string => {
    const full = `campaign-queue.${key}`;
    const s = RED._(full, vars);
    if (s && s !== full) return s;
    const [group, name] = key.split('.');
    return (EN[group]?.[name] ?? key).replace(/__(\w+)__/g, (_m, v: string) => String(vars[v] ?? ''));
  };

  function CampaignQueue(this: Node, config: QueueDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const store = RED.nodes.getNode(config.store) as StoreConfig | null;
    if (!store || typeof store.getDb !== 'function') {
      node.status({ fill: 'red', shape: 'ring', text: t('status.noStore') });
      node.on('input', (_m, _s, done) => done(new Error(t('status.noStore'))));
      return;
    }
    const num = (v: string | undefined): number | undefined => {
      const n = Number(v);
      return v !== undefined && v !== '' && Number.isFinite(n) && n > 0 ? n : undefined;
    };
    // optional: reconcile open calls against Asterisk's live channels after a crash
    const asterisk = config.asterisk ? (RED.nodes.getNode(config.asterisk) as AsteriskConfig | null) : null;
    let closing = false;
    // open calls are reconciled against Asterisk: on take-over, on every (re)connection, periodically
    const view =
      asterisk && typeof asterisk.connect === 'function'
        ? ariView(
            () => asterisk.connect(),
            () => manager?.onAsteriskReconnect(),
          )
        : undefined;
    let manager: CampaignManager | undefined;
    let lastProgress: (RunnerStatus['progress'] & { state?: string }) | undefined;

    const showStatus = (): void => {
      if (closing || !manager) return;
      const runs = manager
        .campaigns()
        .map((id) => manager!.runnerOf(id)!)
        .filter(Boolean);
      const running = runs.filter((r) => r.state === 'running');
      const inFlight = runs.reduce((a, r) => a + r.inFlight.size, 0);
      const p = lastProgress;
      if (!runs.length) return node.status({ fill: 'grey', shape: 'ring', text: t('status.idle') });
      const err = runs.find((r) => r.lastError)?.lastError;
      if (err) return node.status({ fill: 'red', shape: 'dot', text: err.slice(0, 60) });
      const text = p
        ? t('status.progress', {
            state: p.state ?? '',
            percent: p.percent,
            active: inFlight,
            queued: p.queued,
            done: p.completed,
            failed: p.failed,
          })
        : t('status.running', { n: running.length, active: inFlight });
      node.status({ fill: running.length ? 'green' : 'yellow', shape: running.length ? 'dot' : 'ring', text });
    };

    const ready: Promise<CampaignManager> = store.getDb().then((db) => {
      const m = new CampaignManager({
        db,
        worker: (config.worker || '').trim() || `${os.hostname()}:${node.id}`,
        tickMs: num(config.tickMs),
        globalCps: num(config.globalCps),
        dncScope: config.dncScope === 'campaign' ? 'campaign' : 'global',
        reconcile: { staleAfterMs: (num(config.staleAfter) ?? 900) * 1000 },
        asterisk: view,
        // running campaigns nobody holds are picked up on start, on deploy and periodically
        autoPickup: true,
      });
      m.on('pickup', (id: number) => node.log(`campaign ${id}: picked up (running, nobody held it)`));
      m.on('reconciled', (r: { campaignId: number | null; why: string; closed: unknown[]; hungUp: unknown[] }) =>
        node.log(
          `reconciled open calls (${r.why}): ${r.closed.length} closed, ${r.hungUp.length} orphan channel(s) hung up`,
        ),
      );
      m.on('call', (call: PlaceCall) => {
        if (closing) return;
        node.send([{ topic: 'call', call, payload: call.phone } as NodeMessage, null]);
      });
      m.on('event', (e: CampaignEvent) => {
        if (closing) return;
        const msg: Record<string, unknown> = { topic: e.type, event: e.type, campaignId: e.campaignId };
        if (e.call) msg.call = e.call;
        if (e.progress) {
          msg.progress = e.progress;
          msg.payload = e.progress;
          lastProgress = e.progress;
        }
        node.send([null, msg as NodeMessage]);
        showStatus();
      });
      m.on('warn', (err: Error) => {
        node.warn(err.message);
        showStatus();
      });
      m.on('completed', (id: number) => {
        node.log(t('log.completed', { id }));
        showStatus();
      });
      if (closing) {
        void m.close();
        throw new Error('closed');
      }
      manager = m;
      registerCampaignManager(m);
      showStatus();
      return m;
    });
    ready.catch((err: Error) => {
      if (closing) return;
      node.status({ fill: 'red', shape: 'ring', text: t('status.storeError') });
      node.error(t('error.store', { message: errorMessage(err) }));
    });

    const control = async (action: string, id: unknown): Promise<RunnerStatus> => {
      const m = await ready;
      switch (action) {
        case 'start':
          return m.start(id);
        case 'stop':
          return m.stop(id);
        case 'pause':
          return m.pause(id);
        case 'resume':
          return m.resume(id);
        default:
          return m.status(id);
      }
    };

    // supervisor commands over MQTT (validated by the bus node) reach every deployed queue
    const onBus = (c: CampaignControl): void => {
      control(c.action, c.campaignId)
        .then(showStatus)
        .catch((err) =>
          node.warn(t('error.control', { action: c.action, id: String(c.campaignId), message: errorMessage(err) })),
        );
    };
    controlBus.on('campaign', onBus);

    // the HTTP API (/api/v1) and the dashboard (/dialer), served once per runtime
    const serveApi = config.api !== false && !!RED.httpNode;
    if (serveApi && !mountWeb(RED.httpNode, node.id, { getDb: () => store.getDb(), log: (l) => node.error(l) })) {
      node.log(t('log.apiElsewhere', { owner: webOwner(RED.httpNode) ?? '?' }));
    }

    if (config.autoStart && String(config.autoStart).trim()) {
      for (const id of String(config.autoStart)
        .split(/[\s,]+/)
        .filter(Boolean)) {
        control('start', id)
          .then(showStatus)
          .catch(
            (err) => !closing && node.warn(t('error.control', { action: 'start', id, message: errorMessage(err) })),
          );
      }
    }

    node.on('input', (msgIn, send, done) => {
      const msg = msgIn as Msg;
      const topic = typeof msg.topic === 'string' ? msg.topic.trim().toLowerCase() : '';
      const run = async (): Promise<void> => {
        if (ACTIONS.has(topic)) {
          const p = msg.payload as Record<string, unknown> | number | string | undefined;
          const id = msg.campaignId ?? (p && typeof p === 'object' ? p.campaignId : p);
          if (id === undefined || id === null || id === '') throw new Error(t('error.noCampaign', { topic }));
          const st = await control(topic, id);
          showStatus();
          if (topic === 'status') {
            const out = {
              topic: 'campaign_progress',
              event: 'campaign_progress',
              campaignId: st.campaignId,
              progress: { ...st.progress, state: st.state },
              payload: st,
            } as unknown as NodeMessage;
            send([null, out]);
          }
          return;
        }
        const m = await ready;
        const action = msg.reply?.action;
        const actionType = typeof action === 'string' ? action : action?.type;
        if (actionType === 'schedule_callback') {
          const id = Number(msg.call?.id);
          if (!Number.isSafeInteger(id) || id <= 0) throw new Error(t('error.callbackNoCall'));
          const a = action as { at?: string; time?: string };
          const when = await requestCallback(m.db, id, a.at ?? null, a.time ?? null);
          (msg.call as Record<string, unknown>).callbackAt = when.toISOString();
          if (!msg.call?.outcome) return; // the contact is rescheduled when the call completes
        }
        if (actionType === 'add_to_dnc') {
          const phone = msg.call?.phone;
          if (typeof phone !== 'string' || !phone) throw new Error(t('error.dncNoPhone'));
          const cid = Number(msg.call?.campaignId);
          await m.addToDnc(phone, { campaignId: Number.isSafeInteger(cid) && cid > 0 ? cid : null });
          if (!msg.call?.outcome) return; // the call's own outcome follows later
        }
        if (msg.call && msg.call.id !== undefined && msg.call.outcome !== undefined) {
          await m.handleOutcome({
            id: msg.call.id,
            outcome: msg.call.outcome,
            reason: msg.call.reason,
            hangupCause: msg.call.hangupCause,
            dialStatus: msg.call.dialStatus,
          });
          return;
        }
        throw new Error(t('error.unknownInput'));
      };
      run().then(
        () => done(),
        (err) => {
          showStatus();
          done(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      closing = true;
      controlBus.off('campaign', onBus);
      if (serveApi) unmountWeb(RED.httpNode, node.id);
      view?.close();
      const m = manager;
      if (!m) return done();
      unregisterCampaignManager(m);
      m.close()
        .catch((err) => node.warn(errorMessage(err)))
        .finally(() => done());
    });
  }

  RED.nodes.registerType('campaign-queue', CampaignQueue as unknown as Parameters<NodeAPI['nodes']['registerType']>[1]);
};
