import type { NodeAPI, Node, NodeDef, NodeMessageInFlow } from 'node-red';
import { StageError, errorMessage } from '../../src/util/errors';
import { templateContext } from '../../src/util/template';
import {
  createLlmEngine,
  dropConversation,
  runTurn,
  type ActionMode,
  type LlmEngine,
  type ScriptIntent,
  type TurnSettings,
  type LlmServerSettings,
} from '../../src/llm';
import { asStageError, failureInfo, outputWired } from '../../src/speech/failure';
import { loadCallContext } from '../../src/llm/context';
import type { Db } from '../../src/store/db';
import { memoTranslate } from '../../src/util/i18n';
import { storeUnderstoodDnc } from '../../src/campaign/dnc';
import { turnInputOf } from '../../src/store/turns';

interface LlmTurnDef extends NodeDef {
  engine: string;
  server: string;
  baseUrl: string;
  model: string;
  temperature: string;
  maxTokens: string;
  systemPrompt: string;
  mode: string;
  transferTargets: string;
  defaultTransfer: string;
  greeting: string;
  fallback: string;
  noInput: string;
  goodbye: string;
  dncReply: string;
  maxFallbacks: string;
  maxSilences: string;
  dncDetection: boolean;
  historyChars: string;
  timeout: string;
  intents: ScriptIntent[];
  store: string;
}
interface Creds {
  apiKey?: string;
}
type Msg = NodeMessageInFlow & {
  topic?: string;
  event?: string;
  call?: {
    id?: number | string;
    sessionId?: string;
    contact?: Record<string, unknown>;
    contactId?: number | null;
    campaignId?: number | null;
  } & Record<string, unknown>;
  campaign?: Record<string, unknown>;
  transcript?: { text?: string };
  turn?: {
    seq?: number;
    botText?: string;
    action?: string;
    timing?: Record<string, number>;
    engines?: Record<string, unknown>;
  };
  reply?: unknown;
  error?: unknown;
};

const num = (v: unknown): number | undefined => {
  if (v === undefined || v === null || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : NaN;
};

/** A campaign's own greeting (campaigns.settings.greeting, set in the dashboard or API) wins over the node's. */
function withCampaignSettings(settings: TurnSettings, msg: Msg): TurnSettings {
  const cs = (msg as { campaign?: { settings?: Record<string, unknown> } }).campaign?.settings;
  const greeting = cs && typeof cs.greeting === 'string' && cs.greeting.trim() ? cs.greeting : undefined;
  return greeting ? { ...settings, greeting } : settings;
}

export = function (RED: NodeAPI): void {
  const _ = memoTranslate((key, vars) => RED._(key, vars as Record<string, string> | undefined));
  function LlmTurn(this: Node<Creds>, config: LlmTurnDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    let engine: LlmEngine | undefined;
    let configError: StageError | undefined;
    const timeoutS = num(config.timeout);
    const settings: TurnSettings = {
      greeting: config.greeting || undefined,
      noInput: config.noInput || undefined,
      goodbye: config.goodbye || undefined,
      dncReply: config.dncReply || undefined,
      maxSilences: num(config.maxSilences),
      dncDetection: config.dncDetection !== false,
      historyChars: num(config.historyChars),
      timeoutMs: timeoutS && timeoutS > 0 ? timeoutS * 1000 : undefined,
    };
    // An ai-dialer-llm config node, when chosen, supplies the endpoint (and implies the openai engine).
    const server = config.server
      ? (RED.nodes.getNode(config.server) as unknown as { settings?: () => LlmServerSettings } | null)
      : null;
    const shared = server && typeof server.settings === 'function' ? server.settings() : undefined;
    try {
      if (config.server && !shared)
        throw new StageError('llm', 'not_configured', 'the LLM server config node is missing', { engine: 'openai' });
      engine = createLlmEngine({
        engine: config.engine || (shared ? 'openai' : ''),
        openai: {
          baseUrl: shared ? shared.baseUrl : config.baseUrl || undefined,
          model: shared ? shared.model : config.model || undefined,
          apiKey: shared ? shared.apiKey : node.credentials?.apiKey || undefined,
          temperature: shared ? shared.temperature : num(config.temperature),
          maxTokens: shared ? shared.maxTokens : num(config.maxTokens),
          systemPrompt: config.systemPrompt || undefined,
          mode: shared ? shared.mode : (config.mode as ActionMode) || undefined,
          transferTargets: config.transferTargets
            ? config.transferTargets
                .split(',')
                .map((s) => s.trim())
                .filter((s) => s)
            : undefined,
          defaultTransfer: config.defaultTransfer || undefined,
        },
        script: {
          greeting: config.greeting || undefined,
          fallback: config.fallback || undefined,
          goodbye: config.goodbye || undefined,
          maxFallbacks: num(config.maxFallbacks),
          intents: Array.isArray(config.intents) && config.intents.length ? config.intents : undefined,
        },
      });
      node.status({ fill: 'grey', shape: 'ring', text: engine.label });
    } catch (err) {
      configError = asStageError(err, 'llm');
      node.status({ fill: 'red', shape: 'ring', text: _('llm-turn.status.config') });
      node.error(configError.message);
    }
    const aborts = new Set<AbortController>();
    const store = config.store ? (RED.nodes.getNode(config.store) as unknown as { getDb(): Promise<Db> } | null) : null;
    /** Contact and campaign per call, loaded once (bounded: the oldest entries go first). */
    const contexts = new Map<
      string,
      Promise<{ contact?: Record<string, unknown>; campaign?: Record<string, unknown> }>
    >();

    /** Fill msg.call.contact and msg.campaign from the store when the msg carries only their ids. */
    const withContext = async (msg: Msg, callKey: string): Promise<void> => {
      if (!store || !msg.call) return;
      const needContact = !msg.call.contact && msg.call.contactId;
      const needCampaign = !msg.campaign && msg.call.campaignId;
      if (!needContact && !needCampaign) return;
      let p = contexts.get(callKey);
      if (!p) {
        const ids = { contactId: msg.call.contactId, campaignId: msg.call.campaignId };
        p = store.getDb().then(
          (db) =>
            loadCallContext(db, ids) as Promise<{
              contact?: Record<string, unknown>;
              campaign?: Record<string, unknown>;
            }>,
        );
        contexts.set(callKey, p);
        if (contexts.size > 10000) contexts.delete(contexts.keys().next().value as string);
        p.catch(() => contexts.delete(callKey));
      }
      try {
        const c = await p;
        if (needContact && c.contact) msg.call.contact = c.contact;
        if (needCampaign && c.campaign) msg.campaign = c.campaign;
      } catch (err) {
        node.warn(_('llm-turn.warn.context', { error: errorMessage(err) }));
      }
    };

    node.on('input', (raw, send, done) => {
      const msg = raw as Msg;
      const callKey = String(msg.call?.id ?? msg.call?.sessionId ?? msg._msgid);
      // The call is over (fastagi-in's second output, or a call_ended event): forget its history.
      if (msg.topic === 'agi_ended' || msg.event === 'call_ended') {
        dropConversation(callKey);
        contexts.delete(callKey);
        done();
        return;
      }
      const fail = (err: StageError) => {
        node.status({ fill: 'red', shape: 'ring', text: `${err.stage} ${err.kind}` });
        msg.error = failureInfo(err);
        if (outputWired(node, 1)) {
          send([null, msg]);
          done();
        } else done(err);
      };
      if (configError || !engine) return fail(configError ?? new StageError('llm', 'not_configured', 'not configured'));
      const eng = engine;
      const payloadText = typeof msg.payload === 'string' ? msg.payload : undefined;
      const greeting =
        msg.transcript === undefined &&
        (msg.turn === undefined || msg.turn.seq === 0) &&
        !(payloadText && payloadText.trim());
      const userText = typeof msg.transcript?.text === 'string' ? msg.transcript.text : (payloadText ?? '');
      const ac = new AbortController();
      aborts.add(ac);
      node.status({ fill: 'blue', shape: 'dot', text: _('llm-turn.status.thinking') });
      withContext(msg, callKey)
        .then(() =>
          runTurn(
            eng,
            { callId: callKey, userText, greeting, context: templateContext(msg), signal: ac.signal },
            withCampaignSettings(settings, msg),
          ),
        )
        .then(async (r) => {
          if (r.done) contexts.delete(callKey);
          msg.reply = r.action
            ? { text: r.text, done: r.done, action: r.action, source: r.source }
            : { text: r.text, done: r.done, source: r.source };
          msg.payload = r.text;
          const turn = msg.turn && typeof msg.turn === 'object' ? msg.turn : (msg.turn = { seq: 0, timing: {} });
          turn.botText = r.text;
          if (r.action) turn.action = r.action.type;
          else delete turn.action;
          turn.timing = { ...(turn.timing ?? {}), llmMs: Math.round(r.elapsedMs) };
          turn.engines = { ...(turn.engines ?? {}), llm: r.engine };
          // a do-not-call request is stored with its turn now, before the goodbye is spoken
          if (r.action?.type === 'add_to_dnc' && store)
            await store
              .getDb()
              .then((db) => storeUnderstoodDnc(db, msg.call ?? { id: undefined }, turnInputOf(turn)))
              .then(
                (w) => (w.stored ? undefined : Object.assign(turn, { writePending: true })),
                (err: unknown) => node.warn(_('llm-turn.warn.dnc', { error: errorMessage(err) })),
              );
          node.status({ fill: 'green', shape: 'dot', text: r.action ? r.action.type : `"${r.text.slice(0, 40)}"` });
          send([msg, null]);
          done();
        })
        .catch((err: unknown) => fail(asStageError(err, 'llm', eng.name)))
        .finally(() => aborts.delete(ac));
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      for (const ac of aborts) ac.abort();
      aborts.clear();
      node.status({});
      done();
    });
  }
  RED.nodes.registerType('llm-turn', LlmTurn as unknown as Parameters<NodeAPI['nodes']['registerType']>[1], {
    credentials: { apiKey: { type: 'password' } },
  });
};
