import type { NodeAPI, Node, NodeDef, NodeMessageInFlow } from 'node-red';
import { performance } from 'perf_hooks';
import { getSession } from '../../src/agi/registry';
import { storeSpokenTurn, turnInputOf, type SpokenTurn } from '../../src/store/turns';
import type { Db } from '../../src/store/db';
import { StageError, errorMessage } from '../../src/util/errors';
import { renderTemplate, templateContext } from '../../src/util/template';
import { TtsService, createTtsEngine, sharedCache, type TtsResult } from '../../src/speech/tts';
import { asStageError, failureInfo, outputWired } from '../../src/speech/failure';
import { memoTranslate } from '../../src/util/i18n';

interface TtsSpeakDef extends NodeDef {
  engine: string;
  voice: string;
  speed: string;
  piperBin: string;
  piperModel: string;
  piperSpeaker: string;
  wyomingHost?: string;
  wyomingPort?: string;
  wyomingSpeaker?: string;
  baseUrl: string;
  model: string;
  text: string;
  escapeDigits: string;
  audioDir: string;
  cacheMb: string;
  timeout: string;
  play: boolean;
  store: string;
}
interface Creds {
  apiKey?: string;
}

type Msg = NodeMessageInFlow & {
  call?: { id?: number | string; sessionId?: string; contact?: Record<string, unknown> } & Record<string, unknown>;
  campaign?: Record<string, unknown>;
  reply?: { text?: string };
  turn?: {
    seq?: number;
    userText?: string;
    confidence?: number;
    botText?: string;
    action?: string;
    timing?: Record<string, number>;
    engines?: Record<string, unknown>;
  };
  tts?: unknown;
  playback?: unknown;
  event?: string;
  error?: unknown;
};

const num = (v: unknown): number | undefined => {
  if (v === undefined || v === null || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : NaN;
};

export = function (RED: NodeAPI): void {
  const _ = memoTranslate((key, vars) => RED._(key, vars as Record<string, string> | undefined));
  function TtsSpeak(this: Node<Creds>, config: TtsSpeakDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    let service: TtsService | undefined;
    let configError: StageError | undefined;
    try {
      const engineName = config.engine || '';
      const engine = createTtsEngine({
        engine: engineName,
        espeak: { voice: config.voice || undefined, speed: num(config.speed) },
        piper: {
          bin: config.piperBin || undefined,
          model: config.piperModel || undefined,
          speaker: num(config.piperSpeaker),
        },
        openai: {
          baseUrl: config.baseUrl || undefined,
          model: config.model || undefined,
          voice: config.voice || undefined,
          apiKey: node.credentials?.apiKey || undefined,
          speed: num(config.speed),
        },
        wyoming: {
          host: config.wyomingHost || undefined,
          port: config.wyomingPort || undefined,
          voice: config.voice || undefined,
          speaker: config.wyomingSpeaker || undefined,
        },
      });
      const cacheMb = num(config.cacheMb);
      const timeoutS = num(config.timeout);
      service = new TtsService(
        engine,
        sharedCache(config.audioDir || undefined, cacheMb && cacheMb > 0 ? cacheMb * 1024 * 1024 : undefined),
        timeoutS && timeoutS > 0 ? timeoutS * 1000 : 15000,
      );
      node.status({ fill: 'grey', shape: 'ring', text: `${engine.name}${engine.voice ? ` (${engine.voice})` : ''}` });
    } catch (err) {
      configError = asStageError(err, 'tts');
      node.status({ fill: 'red', shape: 'ring', text: _('tts-speak.status.config') });
      node.error(configError.message);
    }
    const store = config.store ? (RED.nodes.getNode(config.store) as unknown as { getDb(): Promise<Db> } | null) : null;
    const play = config.play !== false;
    const aborts = new Set<AbortController>();
    let active = 0;

    const fail = (
      msg: Msg,
      err: StageError,
      send: (m: NodeMessageInFlow | Array<NodeMessageInFlow | null>) => void,
      done: (e?: Error) => void,
    ) => {
      node.status({ fill: 'red', shape: 'ring', text: `${err.stage} ${err.kind}` });
      msg.error = failureInfo(err);
      if (outputWired(node, 1)) {
        send([null, msg]);
        done();
      } else done(err);
    };

    /** Store msg.turn as about to be spoken; undefined without a store or call id (logged when it fails). */
    const spokenTurn = async (msg: Msg, text: string, tts: TtsResult): Promise<SpokenTurn | undefined> => {
      const callId = Number(msg.call?.id);
      const turn = msg.turn!;
      if (!store || !Number.isInteger(callId) || callId <= 0) return undefined;
      const row = turnInputOf({
        ...turn,
        botText: turn.botText ?? text,
        timing: { ...(turn.timing ?? {}), ttsMs: Math.round(tts.elapsedMs) },
        engines: { ...(turn.engines ?? {}), tts: `${tts.engine}${tts.voice ? `:${tts.voice}` : ''}` },
      });
      try {
        const db = await store.getDb();
        const w = await storeSpokenTurn(db, { id: callId, campaignId: Number(msg.call?.campaignId) || null }, row);
        // pending: stored once the database is back (and everything of this call before it, in order)
        if (w.stored) delete (turn as Record<string, unknown>).writePending;
        else (turn as Record<string, unknown>).writePending = true;
        return w;
      } catch (err) {
        node.warn(_('tts-speak.warn.store', { error: errorMessage(err) }));
        return undefined;
      }
    };

    node.on('input', (raw, send, done) => {
      const msg = raw as Msg;
      if (configError || !service)
        return fail(msg, configError ?? new StageError('tts', 'not_configured', 'not configured'), send, done);
      const svc = service;
      const text =
        config.text && config.text.trim()
          ? renderTemplate(config.text, templateContext(msg))
          : typeof msg.payload === 'string'
            ? msg.payload
            : typeof msg.reply?.text === 'string'
              ? msg.reply.text
              : '';
      const ac = new AbortController();
      aborts.add(ac);
      active++;
      node.status({ fill: 'blue', shape: 'dot', text: _('tts-speak.status.speaking', { active }) });
      let tts: TtsResult | undefined;
      (async () => {
        tts = await svc.speak(text, { signal: ac.signal });
        msg.tts = {
          file: tts.file,
          durationMs: tts.durationMs,
          cached: tts.cached,
          engine: tts.engine,
          voice: tts.voice,
          elapsedMs: Math.round(tts.elapsedMs),
        };
        let playbackMs: number | undefined;
        // the turn is stored before the callee hears it (a crash during playback loses nothing said)
        const spoken = store && msg.turn && typeof msg.turn === 'object' ? await spokenTurn(msg, text, tts) : undefined;
        if (play) {
          const sessionId = msg.call?.sessionId;
          const session = sessionId ? getSession(sessionId) : undefined;
          if (!session) {
            throw new StageError(
              'playback',
              'not_found',
              sessionId
                ? `AGI session ${sessionId} has ended`
                : 'msg.call.sessionId is missing (wire this node after fastagi-in, or untick "play")',
              { engine: 'agi' },
            );
          }
          const t0 = performance.now();
          const r = await session.streamFile(tts.playPath, {
            durationMs: tts.durationMs,
            escapeDigits: config.escapeDigits || undefined,
          });
          playbackMs = performance.now() - t0;
          msg.playback = { ...r, durationMs: Math.round(playbackMs) };
          if (r.failed && !r.hungUp) {
            // endpos=0: nothing was played. Either Asterisk cannot read the file, or the caller hung up
            // at that very moment (its HANGUP line not here yet); session.hungUp tells once it is.
            throw new StageError(
              'playback',
              session.hungUp ? 'hangup' : 'not_found',
              session.hungUp
                ? 'the caller hung up before playback started'
                : `Asterisk could not play ${tts.file} (is the audio directory shared with Asterisk and readable by it? or the caller just hung up)`,
              { engine: 'agi' },
            );
          }
        }
        if (msg.turn && typeof msg.turn === 'object') {
          const turn = msg.turn;
          turn.timing = { ...(turn.timing ?? {}), ttsMs: Math.round(tts.elapsedMs) };
          if (playbackMs !== undefined) turn.timing.playbackMs = Math.round(playbackMs);
          if (turn.botText === undefined) turn.botText = text;
          turn.engines = { ...(turn.engines ?? {}), tts: `${tts.engine}${tts.voice ? `:${tts.voice}` : ''}` };
          msg.event = 'conversation_turn';
          spoken?.played(turnInputOf(turn)); // the playback timing, in order behind it (not awaited)
        }
      })()
        .then(() => {
          node.status({
            fill: 'green',
            shape: 'dot',
            text: `${tts?.cached ? _('tts-speak.status.cached') : _('tts-speak.status.synthesized')} ${((tts?.durationMs ?? 0) / 1000).toFixed(1)} s`,
          });
          send([msg, null]);
          done();
        })
        .catch((err: unknown) => fail(msg, asStageError(err, 'tts', service?.engine.name), send, done))
        .finally(() => {
          tts?.release();
          aborts.delete(ac);
          active--;
        });
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      for (const ac of aborts) ac.abort();
      aborts.clear();
      node.status({});
      done();
    });
  }
  RED.nodes.registerType('tts-speak', TtsSpeak as unknown as Parameters<NodeAPI['nodes']['registerType']>[1], {
    credentials: { apiKey: { type: 'password' } },
  });
};
