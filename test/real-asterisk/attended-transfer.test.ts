/**
 * Attended transfer on a real Asterisk 22 with the shipped dialplan (issue 15 item 5): the AGI session
 * dials the agent (src/agi/transfer.ts: EXEC Dial with U(ai-dialer-whisper)); the agent, a Local channel
 * that answers and records what it hears, must hear the whisper BEFORE the caller's audio (the bridge),
 * and the caller must never hear the whisper. An agent who does not answer, one who is busy (also
 * through the shipped ai-dialer-transfer context) and a caller who hangs up while the agent's phone
 * rings leave the call with the dialer, with DIALSTATUS saying why.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import type { CallOutcome } from '../../src/ari/calls';
import type { FastAgiSession } from '../../src/agi/session';
import { attendedTransfer, parseTransferTarget, type AttendedResult } from '../../src/agi/transfer';
import { parseWav } from '../../src/audio/wav';
import {
  describeReal,
  startShipped,
  startDialerSide,
  stopAll,
  frameLevels,
  speech,
  tone,
  type DialerSide,
  type Instance,
} from './asterisk';

const d = describeReal({ espeak: true });

/** Power at `hz` (Goertzel) relative to the frame's whole power: near 1 for a pure tone. */
function toneShare(frame: Int16Array, rate: number, hz: number): number {
  const k = (2 * Math.PI * hz) / rate;
  const c = 2 * Math.cos(k);
  let s1 = 0;
  let s2 = 0;
  let total = 0;
  for (const x of frame) {
    const s0 = x + c * s1 - s2;
    s2 = s1;
    s1 = s0;
    total += x * x;
  }
  const p = s1 * s1 + s2 * s2 - c * s1 * s2;
  return total > 0 ? (2 * p) / (frame.length * total) : 0;
}

type Kind = 'silence' | 'tone' | 'other';
/** 20 ms frames of a recording: silence, the tone at one of `tones` Hz, or other sound (speech). */
function frames(file: string, tones: number[]): Array<{ t: number; kind: Kind; hz?: number }> {
  const w = parseWav(fs.readFileSync(file));
  const n = Math.round(w.sampleRate / 50);
  return frameLevels(w.samples, 'rms', w.sampleRate).map((level, k) => {
    const t = k * 20;
    if (level < 200) return { t, kind: 'silence' };
    const f = w.samples.subarray(k * n, k * n + n);
    const hz = tones.find((h) => toneShare(f, w.sampleRate, h) > 0.6);
    return hz ? { t, kind: 'tone', hz } : { t, kind: 'other' };
  });
}

d('attended transfer on a real Asterisk 22', () => {
  let ast: Instance;
  let side: DialerSide;
  let audio: string;
  let whisperMs = 0;

  beforeAll(async () => {
    audio = fs.mkdtempSync(path.join(os.tmpdir(), 'ra-xfer-'));
    const whisper = speech('AI dialer transfer. Ann Smith is calling about her renewal. She wants the premium plan.');
    whisperMs = parseWav(whisper).durationMs;
    fs.writeFileSync(path.join(audio, 'whisper.wav'), whisper);
    fs.writeFileSync(path.join(audio, 'sorry.wav'), tone(1200, 800));
    ast = await startShipped({
      testModules: ['app_playtones.so', 'app_record.so'],
      testDialplan: [
        '[ra-callees]',
        '; the caller: sends a steady 1000 Hz tone and records everything it hears',
        'exten => _+1555100X,1,Answer()',
        ' same => n,Playtones(1000)',
        ` same => n,Record(${audio}/caller-\${EXTEN:-1}.wav,0,40,qk)`,
        ' same => n,Hangup()',
        '; a caller who hangs up 3 s after answering (while the agent still rings)',
        'exten => +15551009,1,Answer()',
        ' same => n,Playtones(1000)',
        ' same => n,Wait(3)',
        ' same => n,Hangup()',
        '; a caller who hangs up 14 s after answering (while talking to the agent)',
        'exten => +15551008,1,Answer()',
        ' same => n,Playtones(1000)',
        ' same => n,Wait(14)',
        ' same => n,Hangup()',
        '[ra-agents]',
        '; an agent who answers after 1 s, sends a 600 Hz tone and records what they hear for 12 s',
        'exten => agent,1,Ringing()',
        ' same => n,Wait(1)',
        ' same => n,Answer()',
        ' same => n,Playtones(600)',
        ` same => n,Record(${audio}/agent-heard.wav,0,12,qk)`,
        ' same => n,Hangup()',
        '; the same agent on a second line (its own recording)',
        'exten => agent2,1,Answer()',
        ' same => n,Playtones(600)',
        ` same => n,Record(${audio}/agent2-heard.wav,0,30,qk)`,
        ' same => n,Hangup()',
        '; an agent who never answers',
        'exten => sleepy,1,Ringing()',
        ' same => n,Wait(120)',
        '; an agent who is busy (rejects)',
        'exten => busy,1,Busy(5)',
        '; extension 7002 behind the shipped ai-dialer-transfer -> from-internal route: busy',
        '[from-internal]',
        'exten => 7002,1,Busy(5)',
        '',
      ].join('\n'),
    });
    side = await startDialerSide(ast, 'Local/{phone}@ra-callees');
  }, 300_000); // the shared 2-core machine can take minutes to boot Asterisk

  afterAll(() => stopAll({ side, asterisks: [ast], dirs: [audio] }), 60_000);

  /** Originate a caller, run `transfer` on its AGI session, return what happened. */
  async function call(
    id: string,
    phone: string,
    transfer: (s: FastAgiSession) => Promise<AttendedResult>,
    after?: (s: FastAgiSession, r: AttendedResult) => Promise<unknown>,
  ): Promise<{ result?: AttendedResult; after?: unknown; error?: unknown; outcome: CallOutcome }> {
    const seen: { result?: AttendedResult; after?: unknown; error?: unknown } = {};
    side.onSession = async (s) => {
      try {
        seen.result = await transfer(s);
        if (after) seen.after = await after(s, seen.result);
        await s.hangup();
      } catch (err) {
        seen.error = err;
      } finally {
        s.close();
      }
    };
    await side.tracker.originate({ id, phone });
    const outcome = await side.outcome(id, 90_000);
    return { ...seen, outcome };
  }

  test('the agent answers: hears the whisper first, then the caller (bridged); the caller never hears the whisper', async () => {
    const r = await call('1', '+15551001', (s) =>
      attendedTransfer(s, parseTransferTarget('agent@ra-agents'), {
        timeoutSeconds: 15,
        whisperPath: path.join(audio, 'whisper'),
      }),
    );
    expect(r.error).toBeUndefined();
    expect(r.result).toMatchObject({ status: 'answered', dialStatus: 'ANSWER', callerHungUp: false });
    // the agent hung up after 12 s of recording: Dial (option g) returned, the call was still ours
    expect(r.result!.elapsedMs).toBeGreaterThan(12_000);
    expect(r.outcome.outcome).toBe('completed');

    const agent = frames(path.join(audio, 'agent-heard.wav'), [1000]);
    const speechFrames = agent.filter((f) => f.kind === 'other');
    const callerTone = agent.filter((f) => f.kind === 'tone' && f.hz === 1000);
    // the whole whisper was heard by the agent ...
    const heardMs = speechFrames[speechFrames.length - 1].t - speechFrames[0].t;
    expect(heardMs).toBeGreaterThan(whisperMs * 0.8);
    // ... and then the caller's tone: the bridge came after the whisper, and lasted
    expect(callerTone.length * 20).toBeGreaterThan(3000);
    expect(callerTone[0].t).toBeGreaterThanOrEqual(speechFrames[speechFrames.length - 1].t);
    expect(speechFrames.filter((f) => f.t > callerTone[0].t).length).toBeLessThan(5);

    // the caller heard ringing, then the agent's 600 Hz tone, never the whisper's speech
    const caller = frames(path.join(audio, 'caller-1.wav'), [600, 440, 480]);
    const agentTone = caller.filter((f) => f.kind === 'tone' && f.hz === 600);
    expect(agentTone.length * 20).toBeGreaterThan(3000);
    expect(caller.filter((f) => f.kind === 'other').length * 20).toBeLessThan(whisperMs * 0.2);
  }, 120_000);

  test('no answer within the timeout, busy (direct and through ai-dialer-transfer): the call stays with the dialer', async () => {
    const noAnswer = await call(
      '2',
      '+15551002',
      (s) => attendedTransfer(s, parseTransferTarget('sleepy@ra-agents'), { timeoutSeconds: 3 }),
      (s) => s.streamFile(path.join(audio, 'sorry')), // the fallback: the conversation goes on
    );
    expect(noAnswer.error).toBeUndefined();
    expect(noAnswer.result).toMatchObject({ status: 'no_answer', dialStatus: 'NOANSWER', callerHungUp: false });
    expect(noAnswer.result!.elapsedMs).toBeGreaterThanOrEqual(2900);
    expect(noAnswer.after).toMatchObject({ failed: false, hungUp: false });
    // what the caller heard after the ringing: our message (800 Hz), played on the same AGI session
    const heard = frames(path.join(audio, 'caller-2.wav'), [800, 440, 480]);
    expect(heard.filter((f) => f.kind === 'tone' && f.hz === 800).length * 20).toBeGreaterThan(1000);

    const busy = await call('3', '+15551003', (s) =>
      attendedTransfer(s, parseTransferTarget('busy@ra-agents'), { timeoutSeconds: 10 }),
    );
    expect(busy.result).toMatchObject({ status: 'busy', dialStatus: 'BUSY', callerHungUp: false });
    expect(busy.result!.elapsedMs).toBeLessThan(5000);

    // the shipped route: 7002 -> ai-dialer-transfer -> Local/7002@from-internal, busy handed back by Busy()
    const shipped = await call('4', '+15551004', (s) =>
      attendedTransfer(s, parseTransferTarget('7002'), { timeoutSeconds: 10 }),
    );
    expect(shipped.result).toMatchObject({ status: 'busy', dialStatus: 'BUSY', callerHungUp: false });
  }, 180_000);

  test('the caller hangs up while the agent rings: DIALSTATUS CANCEL is still readable', async () => {
    const r = await call('5', '+15551009', (s) =>
      attendedTransfer(s, parseTransferTarget('sleepy@ra-agents'), { timeoutSeconds: 20 }),
    );
    expect(r.error).toBeUndefined();
    expect(r.result).toMatchObject({ status: 'caller_hung_up', dialStatus: 'CANCEL', callerHungUp: true });
    expect(r.result!.elapsedMs).toBeLessThan(10_000);
    expect(r.outcome.outcome).toBe('completed');
  }, 60_000);

  test('the caller hangs up while talking to the agent: Dial answers -1, DIALSTATUS stays ANSWER', async () => {
    const r = await call('6', '+15551008', (s) =>
      attendedTransfer(s, parseTransferTarget('agent2@ra-agents'), {
        timeoutSeconds: 15,
        whisperPath: path.join(audio, 'whisper'),
      }),
    );
    expect(r.error).toBeUndefined();
    expect(r.result).toMatchObject({ status: 'answered', dialStatus: 'ANSWER', callerHungUp: true });
    // the agent heard the caller's tone after the whisper, until the caller left
    const agent = frames(path.join(audio, 'agent2-heard.wav'), [1000]);
    expect(agent.filter((f) => f.kind === 'tone' && f.hz === 1000).length * 20).toBeGreaterThan(1000);
  }, 60_000);
});
