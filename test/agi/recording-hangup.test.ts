/** Issue 15 item 7: a caller who hangs up around RECORD FILE ends the call; recordTurn does not fail. */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { EventEmitter } from 'events';
import { recordTurn } from '../../src/agi/recording';
import { hangupError } from '../../src/agi/session';
import { StageError } from '../../src/util/errors';
import type { AgiSession, RecordResult } from '../../src/agi/types';

function fakeSession(hungUp: boolean, record: () => Promise<RecordResult>): AgiSession {
  const s = new EventEmitter() as unknown as AgiSession & { recordFile: unknown; calls: number };
  Object.assign(s, { id: 'x', env: {}, hungUp, calls: 0 });
  s.recordFile = () => {
    s.calls++;
    return record();
  };
  return s;
}

describe('recordTurn and a caller hangup', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rec-hup-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const opts = { dir, callId: 5, seq: 1, maxMs: 3000, silenceSeconds: 1 };

  test('already hung up: no RECORD FILE is sent, the turn says hungUp', async () => {
    const s = fakeSession(true, () => Promise.reject(new Error('must not be called')));
    const r = await recordTurn(s, opts);
    expect(r.recording).toEqual({ path: '', durationMs: 0, hungUp: true });
    expect((s as unknown as { calls: number }).calls).toBe(0);
  });

  test('511 on a dead channel (hangup error): hungUp, not a failure', async () => {
    const r = await recordTurn(
      fakeSession(false, () => Promise.reject(hangupError('RECORD FILE'))),
      opts,
    );
    expect(r.recording.hungUp).toBe(true);
    expect(r.result.endedBy).toBe('hangup');
  });

  test('hangup during the recording keeps what was recorded', async () => {
    const r = await recordTurn(
      fakeSession(false, () =>
        Promise.resolve({ file: '/x.wav', endpos: 8000, durationMs: 1000, endedBy: 'hangup', hungUp: true }),
      ),
      opts,
    );
    expect(r.recording).toEqual({ path: '/x.wav', durationMs: 1000, hungUp: true });
  });

  test('other errors still fail', async () => {
    await expect(
      recordTurn(
        fakeSession(false, () => Promise.reject(new StageError('record', 'internal', 'disk full'))),
        opts,
      ),
    ).rejects.toThrow('disk full');
  });
});

describe("the default flow's 'fallback or give up' on a caller hangup", () => {
  const flow = JSON.parse(
    fs.readFileSync(path.join(__dirname, '..', '..', 'flows', 'ai-dialer.json'), 'utf8'),
  ) as Array<{ id: string; func?: string }>;
  const func = flow.find((n) => n.id === 'aid.fail.fn')?.func as string;
  const run = (msg: Record<string, unknown>) => {
    const warnings: string[] = [];
    const out = new Function('msg', 'node', func)(msg, { warn: (w: string) => warnings.push(w) }) as unknown[];
    return { out, warnings };
  };
  const call = { id: 9, sessionId: 's1' };

  test.each([
    [
      'Catch of a thrown StageError (code agi_hangup)',
      { error: { message: 'agi: RECORD FILE: the caller hung up', code: 'agi_hangup' } },
    ],
    ['Catch of tts-speak (code playback_hangup)', { error: { message: 'x', code: 'playback_hangup' } }],
    ['a kit failure moved to msg._error', { error: { message: 'x' }, _error: { stage: 'agi', kind: 'hangup' } }],
    ['a hung-up recording', { recording: { hungUp: true } }],
  ])('%s: the ending output, no fallback, no warning', (_name, extra) => {
    const { out, warnings } = run({ call, ...extra });
    expect(out[0]).toBeNull();
    expect(out[2]).toBeTruthy();
    expect(warnings).toEqual([]);
  });

  test('a real engine failure still gets the fallback line', () => {
    const { out, warnings } = run({ call, error: { message: 'stt: timeout', code: 'stt_timeout' } });
    expect(out[0]).toBeTruthy();
    expect(warnings[0]).toMatch(/fallback 1\/2/);
  });
});
