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
