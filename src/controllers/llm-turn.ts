/**
 * llm-turn: decides the next thing to say (msg.reply, msg.payload, msg.turn.botText/action) from
 * the caller's text, keeping the conversation history per call. Fills msg.call.contact and
 * msg.campaign from the store when the msg carries only their ids.
 */
import { parseVoicemailSettings, settingOr } from '../campaign/call-settings';
import {
  createLlmEngine,
  dropConversation,
  runTurn,
  TURN_DEFAULTS,
  type ActionMode,
  type LlmEngine,
  type LlmServerSettings,
  type ScriptIntent,
  type TurnSettings,
} from '../llm';
import { loadCallContext, takeCallContext } from '../llm/context';
import { TextQueue } from '../llm/stream';
import { getMedia } from '../media/registry';
import type { MediaSession } from '../media/session';
import type { Db } from '../store/db';
import type { CallRecords } from '../calls/records';
import { StageError, errorMessage, toStageError } from '../util/errors';
import { parseDurationMs, parseOptionalNumber } from '../util/config';
import { renderTemplate, reportUnknown, templateContext, unknownPlaceholderText } from '../util/template';
import { noteGoodbyeLine } from '../calls/goodbye';
import type { Translate } from '../util/i18n';
import type { DialerMsg } from '../types/msg';
import { failureStatus, status, type NodeView } from './view';

export interface LlmTurnConfig {
  engine?: string;
  baseUrl?: string;
  model?: string;
  temperature?: string;
  maxTokens?: string;
  systemPrompt?: string;
  mode?: string;
  transferTargets?: string;
  defaultTransfer?: string;
  greeting?: string;
  fallback?: string;
  noInput?: string;
  goodbye?: string;
  dncReply?: string;
  maxFallbacks?: string;
  maxSilences?: string;
  dncDetection?: boolean;
  historyChars?: string;
  timeout?: string;
  intents?: ScriptIntent[];
  apiKey?: string;
}

export interface LlmTurnDeps {
  /** The ai-dialer-llm config node's settings, when one is chosen (null: chosen but missing). */
  server?: LlmServerSettings | null;
  /** The store, for the contact and campaign of calls that carry only their ids. */
  getDb?: () => Promise<Db>;
  /** The call-record service: a do-not-call request is stored with its turn before the goodbye. */
  records?: CallRecords;
  env?: NodeJS.ProcessEnv;
}

type CallContext = { contact?: Record<string, unknown>; campaign?: Record<string, unknown> };

/** How many calls' contact/campaign are kept (the oldest go first). */
const MAX_CONTEXTS = 10000;

export class LlmTurnController {
  private engine?: LlmEngine;
  private configError?: StageError;
  private readonly settings: TurnSettings;
  private readonly contexts = new Map<string, Promise<CallContext>>();
  private readonly reported = new Set<string>();
  /** A placeholder naming nothing (greeting, replies, prompt): one warning per placeholder and node. */
  private readonly unknownPlaceholder = (path: string): void => {
    if (this.reported.has(path) || this.reported.size > 50) return;
    this.reported.add(path);
    this.view.warn(unknownPlaceholderText(path));
  };

  constructor(
    cfg: LlmTurnConfig,
    private readonly view: NodeView,
    private readonly t: Translate,
    private readonly deps: LlmTurnDeps = {},
  ) {
    this.settings = {
      greeting: cfg.greeting || undefined,
      noInput: cfg.noInput || undefined,
      goodbye: cfg.goodbye || undefined,
      dncReply: cfg.dncReply || undefined,
      maxSilences: parseOptionalNumber(cfg.maxSilences),
      dncDetection: cfg.dncDetection !== false,
      historyChars: parseOptionalNumber(cfg.historyChars),
      timeoutMs: parseDurationMs(cfg.timeout, 0) || undefined,
    };
    try {
      this.engine = createEngine(cfg, deps.server, deps.env);
      view.status(status.idle(this.engine.label));
    } catch (err) {
      this.configError = toStageError(err, 'llm');
      view.status(status.error(t('status.config')));
      view.error(this.configError.message);
    }
  }

  failed(err: Error): void {
    this.view.status(failureStatus(err));
  }

  /** The reply for `msg`, or null when `msg` says the call is over (its history is dropped). */
  async handle(msg: DialerMsg, signal: AbortSignal): Promise<DialerMsg | null> {
    const callKey = String(msg.call?.id ?? msg.call?.sessionId ?? msg._msgid);
    // The call is over (fastagi-in's second output, or a call_ended event): forget its history.
    if (msg.topic === 'agi_ended' || msg.event === 'call_ended') {
      dropConversation(callKey);
      this.contexts.delete(callKey);
      return null;
    }
    const eng = this.engine;
    if (this.configError || !eng) throw this.configError ?? new StageError('llm', 'not_configured', 'not configured');
    const payloadText = typeof msg.payload === 'string' ? msg.payload : undefined;
    const greeting =
      msg.transcript === undefined &&
      (msg.turn === undefined || msg.turn.seq === 0) &&
      !(payloadText && payloadText.trim());
    const userText = typeof msg.transcript?.text === 'string' ? msg.transcript.text : (payloadText ?? '');
    this.view.status(status.busy(this.t('status.thinking')));
    const media = getMedia(msg.call?.sessionId);
    if (media) return this.streamed(msg, media, eng, callKey, userText, greeting, signal);
    let r;
    try {
      await this.withContext(msg, callKey);
      const context = reportUnknown(templateContext(msg), this.unknownPlaceholder);
      const settings = withCampaignSettings(this.settings, msg);
      // the line a drain ends this call with, wherever the conversation is (src/calls/goodbye.ts)
      noteGoodbyeLine(callKey, renderTemplate(settings.goodbye || TURN_DEFAULTS.goodbye, context));
      const machine = msg.call?.amd?.path === 'machine';
      r = await runTurn(eng, { callId: callKey, userText, greeting, machine, context, signal }, settings);
    } catch (err) {
      throw toStageError(err, 'llm', eng.name);
    }
    return this.finish(msg, callKey, r);
  }

  /** The decided reply on msg (and a do-not-call request stored with its turn). */
  private async finish(msg: DialerMsg, callKey: string, r: Awaited<ReturnType<typeof runTurn>>): Promise<DialerMsg> {
    if (r.done) this.contexts.delete(callKey);
    // an answering machine: the call ends with outcome machine (after the message, if any)
    if (r.action?.type === 'voicemail' && msg.call) msg.call.outcome = 'machine';
    msg.reply = r.action
      ? { text: r.text, done: r.done, action: r.action, source: r.source }
      : { text: r.text, done: r.done, source: r.source };
    msg.payload = r.text;
    const turn = msg.turn && typeof msg.turn === 'object' ? msg.turn : (msg.turn = { seq: 0, timing: {} });
    turn.botText = r.text;
    if (r.action) turn.action = r.action.type;
    else delete turn.action;
    turn.timing = { ...(turn.timing ?? {}), llmMs: Math.round(r.elapsedMs) };
    if (r.firstTokenMs !== undefined) turn.timing.llmFirstTokenMs = Math.round(r.firstTokenMs);
    turn.engines = { ...(turn.engines ?? {}), llm: r.engine };
    // a do-not-call request is stored with its turn now, before the goodbye is spoken
    if (r.action?.type === 'add_to_dnc') await this.deps.records?.dncTurn(msg.call, turn);
    this.view.status(status.ok(r.action ? r.action.type : `"${r.text}"`));
    return msg;
  }

  /**
   * Stream mode: the reply goes on as soon as its first words exist. The msg leaves with
   * `msg.reply.streamId` (its text still coming, parked in the call's media session) and tts-speak
   * speaks it sentence by sentence as the LLM writes, then completes msg.reply from the whole
   * decision. A reply decided at once (greeting, do-not-call line, an engine that does not stream) is
   * handled as in record mode.
   */
  private async streamed(
    msg: DialerMsg,
    media: MediaSession,
    eng: LlmEngine,
    callKey: string,
    userText: string,
    greeting: boolean,
    signal: AbortSignal,
  ): Promise<DialerMsg> {
    const text = new TextQueue();
    let first!: () => void;
    const firstPiece = new Promise<void>((r) => (first = r));
    let run: Promise<Awaited<ReturnType<typeof runTurn>>>;
    try {
      await this.withContext(msg, callKey);
      run = runTurn(
        eng,
        {
          callId: callKey,
          userText,
          greeting,
          context: reportUnknown(templateContext(msg), this.unknownPlaceholder),
          signal,
          onText: (d) => {
            text.push(d);
            first();
          },
        },
        withCampaignSettings(this.settings, msg),
      );
      run.then(
        () => text.end(),
        (err) => text.fail(err),
      );
      const decided = await Promise.race([run.then(() => true), firstPiece.then(() => false)]);
      if (decided) return this.finish(msg, callKey, await run);
    } catch (err) {
      throw toStageError(err, 'llm', eng.name);
    }
    const turn = msg.turn && typeof msg.turn === 'object' ? msg.turn : (msg.turn = { seq: 0, timing: {} });
    const final = run.then(
      async (r) => {
        if (r.done) this.contexts.delete(callKey);
        // a do-not-call request is stored the moment it is understood
        if (r.action?.type === 'add_to_dnc')
          await this.deps.records?.dncTurn(msg.call, { ...turn, botText: r.text, action: r.action.type });
        this.view.status(status.ok(r.action ? r.action.type : `"${r.text}"`));
        return {
          text: r.text,
          done: r.done,
          action: r.action,
          source: r.source,
          engine: r.engine,
          llmMs: Math.round(r.elapsedMs),
          llmFirstTokenMs: r.firstTokenMs === undefined ? undefined : Math.round(r.firstTokenMs),
        };
      },
      (err) => {
        throw toStageError(err, 'llm', eng.name);
      },
    );
    final.catch(() => undefined); // tts-speak reports it
    const streamId = media.offerReply({ text, final });
    msg.reply = { text: '', done: false, streamId };
    msg.payload = '';
    turn.engines = { ...(turn.engines ?? {}), llm: eng.label };
    return msg;
  }

  /** Fill msg.call.contact and msg.campaign from the store when the msg carries only their ids. */
  private async withContext(msg: DialerMsg, callKey: string): Promise<void> {
    const getDb = this.deps.getDb;
    const call = msg.call;
    if (!getDb || !call) return;
    const needContact = !call.contact && call.contactId;
    const needCampaign = !msg.campaign && call.campaignId;
    if (!needContact && !needCampaign) return;
    let p = this.contexts.get(callKey);
    const known = p ? undefined : takeCallContext(call.id);
    if (known && (!needContact || known.contact) && (!needCampaign || known.campaign)) {
      // a call this process placed: its claim gave both (src/llm/context.ts)
      p = Promise.resolve(known as CallContext);
      this.contexts.set(callKey, p);
      if (this.contexts.size > MAX_CONTEXTS) this.contexts.delete(this.contexts.keys().next().value as string);
    }
    if (!p) {
      const ids = { contactId: call.contactId as number | null, campaignId: call.campaignId as number | null };
      // on the greeting's path: a read on connections of its own, not queued behind the pool's writes
      p = getDb().then((db) => loadCallContext(db.lane?.('context', 2) ?? db, ids) as Promise<CallContext>);
      this.contexts.set(callKey, p);
      if (this.contexts.size > MAX_CONTEXTS) this.contexts.delete(this.contexts.keys().next().value as string);
      p.catch(() => this.contexts.delete(callKey));
    }
    try {
      const c = await p;
      if (needContact && c.contact) call.contact = c.contact;
      if (needCampaign && c.campaign) msg.campaign = c.campaign;
    } catch (err) {
      this.view.warn(this.t('warn.context', { error: errorMessage(err) }));
    }
  }
}

/** The engine from the node's settings, or the endpoint of an ai-dialer-llm config node (implies openai). */
function createEngine(
  cfg: LlmTurnConfig,
  server: LlmServerSettings | null | undefined,
  env: NodeJS.ProcessEnv = process.env,
): LlmEngine {
  if (server === null)
    throw new StageError('llm', 'not_configured', 'the LLM server config node is missing', { engine: 'openai' });
  const shared = server ?? undefined;
  return createLlmEngine(
    {
      engine: cfg.engine || (shared ? 'openai' : ''),
      openai: {
        baseUrl: shared ? shared.baseUrl : cfg.baseUrl || undefined,
        model: shared ? shared.model : cfg.model || undefined,
        apiKey: shared ? shared.apiKey : cfg.apiKey || undefined,
        temperature: shared ? shared.temperature : parseOptionalNumber(cfg.temperature),
        maxTokens: shared ? shared.maxTokens : parseOptionalNumber(cfg.maxTokens),
        systemPrompt: cfg.systemPrompt || undefined,
        mode: shared ? shared.mode : (cfg.mode as ActionMode) || undefined,
        transferTargets: cfg.transferTargets
          ? cfg.transferTargets
              .split(',')
              .map((s) => s.trim())
              .filter((s) => s)
          : undefined,
        defaultTransfer: cfg.defaultTransfer || undefined,
      },
      script: {
        greeting: cfg.greeting || undefined,
        fallback: cfg.fallback || undefined,
        goodbye: cfg.goodbye || undefined,
        maxFallbacks: parseOptionalNumber(cfg.maxFallbacks),
        intents: Array.isArray(cfg.intents) && cfg.intents.length ? cfg.intents : undefined,
      },
    },
    env,
  );
}

/**
 * A campaign's own greeting (campaigns.settings.greeting, set in the dashboard or API) wins over the
 * node's; its voicemail message (settings.voicemail.message) is what an answering machine gets.
 */
function withCampaignSettings(settings: TurnSettings, msg: DialerMsg): TurnSettings {
  const cs = (msg.campaign as { settings?: Record<string, unknown> } | undefined)?.settings;
  if (!cs) return settings;
  const greeting = typeof cs.greeting === 'string' && cs.greeting.trim() ? cs.greeting : undefined;
  const voicemailMessage = settingOr(parseVoicemailSettings, cs.voicemail).message || undefined;
  if (!greeting && !voicemailMessage) return settings;
  return { ...settings, ...(greeting ? { greeting } : {}), ...(voicemailMessage ? { voicemailMessage } : {}) };
}
