import type { NodeAPI, Node, NodeDef, NodeMessageInFlow } from 'node-red';
import { StageError } from '../../src/util/errors';
import { createSttEngine, transcribe, type SttEngine } from '../../src/speech/stt';
import { asStageError, failureInfo, outputWired } from '../../src/speech/failure';
import { memoTranslate } from '../../src/util/i18n';

interface SttDef extends NodeDef {
  engine: string;
  voskUrl: string;
  baseUrl: string;
  model: string;
  language: string;
  wyomingHost?: string;
  wyomingPort?: string;
  wyomingModel?: string;
  responseFormat: string;
  timeout: string;
}
interface Creds {
  apiKey?: string;
}
type Msg = NodeMessageInFlow & {
  recording?: { path?: string };
  transcript?: unknown;
  turn?: {
    seq?: number;
    userText?: string;
    confidence?: number;
    simulated?: boolean;
    timing?: Record<string, number>;
    engines?: Record<string, unknown>;
  };
  error?: unknown;
};

export = function (RED: NodeAPI): void {
  const _ = memoTranslate((key, vars) => RED._(key, vars as Record<string, string> | undefined));
  function SttTranscribe(this: Node<Creds>, config: SttDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    let engine: SttEngine | undefined;
    let configError: StageError | undefined;
    const timeoutS = Number(config.timeout);
    const timeoutMs = Number.isFinite(timeoutS) && timeoutS > 0 ? timeoutS * 1000 : 15000;
    try {
      engine = createSttEngine({
        engine: config.engine || '',
        vosk: { url: config.voskUrl || undefined },
        openai: {
          baseUrl: config.baseUrl || undefined,
          model: config.model || undefined,
          apiKey: node.credentials?.apiKey || undefined,
          language: config.language || undefined,
          responseFormat: (config.responseFormat as 'json' | 'verbose_json') || undefined,
        },
        wyoming: {
          host: config.wyomingHost || undefined,
          port: config.wyomingPort || undefined,
          model: config.wyomingModel || undefined,
          language: config.language || undefined,
        },
      });
      node.status({
        fill: 'grey',
        shape: 'ring',
        text: engine.name === 'sim' ? _('stt-transcribe.status.sim') : engine.name,
      });
    } catch (err) {
      configError = asStageError(err, 'stt');
      node.status({ fill: 'red', shape: 'ring', text: _('stt-transcribe.status.config') });
      node.error(configError.message);
    }
    const aborts = new Set<AbortController>();

    node.on('input', (raw, send, done) => {
      const msg = raw as Msg;
      const fail = (err: StageError) => {
        node.status({ fill: 'red', shape: 'ring', text: `${err.stage} ${err.kind}` });
        msg.error = failureInfo(err);
        if (outputWired(node, 1)) {
          send([null, msg]);
          done();
        } else done(err);
      };
      if (configError || !engine) return fail(configError ?? new StageError('stt', 'not_configured', 'not configured'));
      const eng = engine;
      const input: string | Buffer | undefined =
        typeof msg.recording?.path === 'string'
          ? msg.recording.path
          : Buffer.isBuffer(msg.payload)
            ? msg.payload
            : typeof msg.payload === 'string' && msg.payload.endsWith('.wav')
              ? msg.payload
              : undefined;
      if (input === undefined)
        return fail(
          new StageError(
            'stt',
            'invalid_input',
            'no recording: set msg.recording.path (agi-record does) or msg.payload to WAV bytes',
            { engine: eng.name },
          ),
        );
      const ac = new AbortController();
      aborts.add(ac);
      node.status({ fill: 'blue', shape: 'dot', text: _('stt-transcribe.status.listening') });
      transcribe(eng, input, { timeoutMs, signal: ac.signal })
        .then((t) => {
          const rounded = { ...t, elapsedMs: Math.round(t.elapsedMs) };
          msg.transcript = rounded;
          msg.payload = t.text;
          const turn = msg.turn && typeof msg.turn === 'object' ? msg.turn : (msg.turn = { timing: {} });
          turn.userText = t.text;
          if (t.confidence !== undefined) turn.confidence = t.confidence;
          else delete turn.confidence;
          if (t.simulated)
            turn.simulated = true; // shown as simulated wherever the text appears
          else delete turn.simulated;
          turn.timing = { ...(turn.timing ?? {}), sttMs: rounded.elapsedMs };
          turn.engines = { ...(turn.engines ?? {}), stt: t.simulated ? 'sim (simulated)' : t.engine };
          const shown = t.text ? `"${t.text.slice(0, 40)}"` : _('stt-transcribe.status.silence');
          node.status({
            fill: 'green',
            shape: 'dot',
            text: t.simulated ? `${_('stt-transcribe.status.simulated')} ${shown}` : shown,
          });
          send([msg, null]);
          done();
        })
        .catch((err: unknown) => fail(asStageError(err, 'stt', eng.name)))
        .finally(() => aborts.delete(ac));
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      for (const ac of aborts) ac.abort();
      aborts.clear();
      node.status({});
      done();
    });
  }
  RED.nodes.registerType(
    'stt-transcribe',
    SttTranscribe as unknown as Parameters<NodeAPI['nodes']['registerType']>[1],
    {
      credentials: { apiKey: { type: 'password' } },
    },
  );
};
