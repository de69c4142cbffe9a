import type { NodeAPI, Node, NodeDef, NodeMessageInFlow } from 'node-red';
import { getSession } from '../../src/agi/registry';
import { recordTurn, recordingsDir } from '../../src/agi/recording';
import { StageError, errorMessage } from '../../src/util/errors';
import { memoTranslate } from '../../src/util/i18n';

interface AgiRecordDef extends NodeDef {
  silence: string;
  maxSeconds: string;
  beep: boolean;
  escapeDigits: string;
  dir: string;
}

interface RecordMsg extends NodeMessageInFlow {
  call?: { id?: number | string; sessionId?: string };
  turn?: { seq?: number; [k: string]: unknown };
  record?: { maxSeconds?: number; silenceSeconds?: number; escapeDigits?: string; beep?: boolean };
  recording?: unknown;
}

function numberOr(v: unknown, fallback: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

export = function (RED: NodeAPI): void {
  const _ = memoTranslate((key, vars) => RED._(key, vars as Record<string, string> | undefined));
  function AgiRecord(this: Node, config: AgiRecordDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const dir = recordingsDir(config.dir);
    let active = 0;
    node.on('input', (raw, send, done) => {
      const msg = raw as RecordMsg;
      const sessionId = msg.call?.sessionId;
      const session = sessionId ? getSession(sessionId) : undefined;
      if (!session) {
        node.status({ fill: 'red', shape: 'ring', text: _('agi-record.status.noSession') });
        done(
          new StageError(
            'record',
            'not_found',
            sessionId
              ? `AGI session ${sessionId} has ended`
              : 'msg.call.sessionId is missing (wire this node after fastagi-in)',
          ),
        );
        return;
      }
      const o = msg.record ?? {};
      const maxSeconds = numberOr(o.maxSeconds, numberOr(config.maxSeconds, 30));
      const silenceSeconds = numberOr(o.silenceSeconds, numberOr(config.silence, 2));
      const escapeDigits = typeof o.escapeDigits === 'string' ? o.escapeDigits : (config.escapeDigits ?? '#');
      const beep = typeof o.beep === 'boolean' ? o.beep : !!config.beep;
      const seq = (typeof msg.turn?.seq === 'number' && Number.isInteger(msg.turn.seq) ? msg.turn.seq : 0) + 1;
      active++;
      node.status({ fill: 'blue', shape: 'dot', text: _('agi-record.status.recording', { active }) });
      recordTurn(session, {
        dir,
        callId: msg.call?.id ?? session.callId ?? session.id.slice(0, 8),
        seq,
        maxMs: maxSeconds > 0 ? Math.round(maxSeconds * 1000) : -1,
        silenceSeconds,
        escapeDigits,
        beep,
      })
        .then((r) => {
          active--;
          msg.recording = r.recording;
          msg.turn = { seq, timing: { recordMs: r.elapsedMs } };
          node.status(
            r.recording.hungUp
              ? { fill: 'yellow', shape: 'ring', text: _('agi-record.status.hungUp') }
              : {
                  fill: 'green',
                  shape: 'dot',
                  text: _('agi-record.status.done', {
                    seconds: (r.recording.durationMs / 1000).toFixed(1),
                    digit: r.recording.digit ?? '',
                  }),
                },
          );
          send(msg);
          done();
        })
        .catch((err: unknown) => {
          active--;
          node.status({ fill: 'red', shape: 'ring', text: errorMessage(err).slice(0, 60) });
          done(err as Error);
        });
    });
    node.on('close', (_removed: boolean, done: () => void) => {
      node.status({});
      done();
    });
  }
  RED.nodes.registerType('agi-record', AgiRecord as unknown as Parameters<NodeAPI['nodes']['registerType']>[1]);
};
