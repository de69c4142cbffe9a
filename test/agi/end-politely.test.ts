/**
 * Issue 12 item 5: a call the dialer ends (drain on SIGTERM or Deploy) hears its goodbye wherever the
 * conversation is: the command in flight (here a RECORD) ends, the flow's next commands are refused as a
 * hangup, the session plays the goodbye itself and hangs up. Real sockets; the test plays Asterisk.
 */
import { registerSession, unregisterSession } from '../../src/agi/registry';
import { endCallPolitely, forgetCall, noteGoodbyeLine, noteVoice } from '../../src/calls/goodbye';
import { StageError } from '../../src/util/errors';
import { waitFor } from '../helpers/wait';
import { drainAll } from '../../src/campaign/control';
import { connectFarAgi, type FarAgi } from '../helpers/far-agi';

const connect = connectFarAgi;

/** A far end whose session belongs to call `id` (registered as fastagi-in does); everything undone after `fn`. */
async function withCall(id: number, fn: (far: FarAgi) => Promise<void>): Promise<void> {
  const far = await connect();
  far.session.callId = String(id);
  registerSession(far.session);
  try {
    await fn(far);
  } finally {
    unregisterSession(far.session.id);
    forgetCall(id);
    await far.close();
  }
}

test('mid-RECORD: the recording ends, the flow is refused, the goodbye plays, then HANGUP', async () => {
  const far = await connect();
  try {
    const s = far.session;
    const rec = s.recordFile({ path: '/tmp/aid-rec-1', maxMs: 20000, silenceSeconds: 2 });
    const queued = s.streamFile('/tmp/aid-next', { durationMs: 1000 }); // the flow's next command
    await waitFor(() => far.lines.length === 1, 5000, 'RECORD FILE written');
    expect(far.lines[0]).toMatch(/^RECORD FILE "\/tmp\/aid-rec-1"/);

    const goodbye = jest.fn(async () => ({ path: '/tmp/aid-bye', durationMs: 500 }));
    const ended = s.endPolitely('the dialer is shutting down', goodbye);
    expect(s.ending).toBe(true);
    await expect(queued).rejects.toMatchObject({ kind: 'hangup' });

    far.reply('200 result=0 (timeout) endpos=16000'); // the caller stopped talking
    await expect(rec).resolves.toMatchObject({ durationMs: 2000 });
    // the flow goes on with the recording: refused, as a hangup, and nothing is written
    const late = s.streamFile('/tmp/aid-late', { durationMs: 1000 });
    await expect(late).rejects.toBeInstanceOf(StageError);
    await expect(late).rejects.toMatchObject({ kind: 'hangup' });

    await waitFor(() => far.lines.length === 2, 5000, 'the goodbye written');
    expect(far.lines[1]).toBe('STREAM FILE "/tmp/aid-bye" ""');
    far.reply('200 result=0 endpos=4000');
    await waitFor(() => far.lines.length === 3, 5000, 'HANGUP written');
    expect(far.lines[2]).toBe('HANGUP');
    far.reply('200 result=1');
    await expect(ended).resolves.toBe(true);
    expect(goodbye).toHaveBeenCalledTimes(1);
    expect(s.hangupRequested).toBe(true);
    expect(far.lines).toHaveLength(3);
  } finally {
    await far.close();
  }
});

test('the caller hangs up during the RECORD: no goodbye is written, no HANGUP either', async () => {
  const far = await connect();
  try {
    const s = far.session;
    const rec = s.recordFile({ path: '/tmp/aid-rec-2', maxMs: 20000 });
    await waitFor(() => far.lines.length === 1, 5000, 'RECORD FILE written');
    const ended = s.endPolitely('shutdown', async () => ({ path: '/tmp/aid-bye', durationMs: 500 }));
    far.reply('HANGUP');
    far.reply('200 result=-1 (hangup) endpos=800');
    await rec;
    await expect(ended).resolves.toBe(false);
    expect(far.lines).toHaveLength(1);
  } finally {
    await far.close();
  }
});

test('endCallPolitely: the call gets the line llm-turn noted, in the voice tts-speak noted, as the next turn', () =>
  withCall(4711, async (far) => {
    const s = far.session;
    const said: Array<[string, number]> = [];
    noteGoodbyeLine(4711, 'Thank you, Ada. Goodbye!');
    noteVoice(
      4711,
      async (text, seq) => {
        said.push([text, seq]);
        return { path: '/tmp/aid-bye-4711', durationMs: 400 };
      },
      3,
    );
    expect(endCallPolitely(4711, 'the dialer is shutting down')).toBe(1);
    expect(endCallPolitely(4711, 'again')).toBe(0); // already ending
    await waitFor(() => far.lines.length === 1, 5000, 'the goodbye written');
    expect(said).toEqual([['Thank you, Ada. Goodbye!', 4]]);
    expect(far.lines[0]).toBe('STREAM FILE "/tmp/aid-bye-4711" ""');
    far.reply('200 result=0 endpos=3200');
    await waitFor(() => far.lines.length === 2, 5000, 'HANGUP written');
    far.reply('200 result=1');
    await waitFor(() => s.closed || s.hangupRequested, 5000, 'hung up');
    expect(endCallPolitely(999999, 'no such call')).toBe(0);
  }));

test('the shutdown drain waits for a goodbye still being said (its flow already ended), within the grace', () =>
  withCall(4712, async (far) => {
    noteVoice(4712, async () => ({ path: '/tmp/aid-bye-4712', durationMs: 400 }));
    expect(endCallPolitely(4712, 'the dialer is shutting down')).toBe(1);
    // no queue has the call any more (its flow ended as the session refused its next command)
    let drained = false;
    const report = drainAll({ timeoutMs: 0, graceMs: 10_000 }).then((r) => {
      drained = true;
      return r;
    });
    await waitFor(() => far.lines.length === 1, 5000, 'the goodbye written');
    far.reply('200 result=0 endpos=3200');
    await waitFor(() => far.lines.length === 2, 5000, 'HANGUP written');
    expect(far.lines[1]).toBe('HANGUP');
    expect(drained).toBe(false); // the goodbye was still being said: stopping the flows now would cut it
    far.reply('200 result=1');
    far.reply('HANGUP');
    await expect(report).resolves.toMatchObject({ live: 0 });
    expect(far.session.hungUp).toBe(true);
  }));

test('the shutdown drain waits for a goodbye no longer than the grace', () =>
  withCall(4713, async (far) => {
    noteVoice(4713, async () => ({ path: '/tmp/aid-bye-4713', durationMs: 400 }));
    expect(endCallPolitely(4713, 'the dialer is shutting down')).toBe(1);
    await waitFor(() => far.lines.length === 1, 5000, 'the goodbye written');
    // the far end never answers the goodbye's STREAM FILE: the drain ends at its grace all the same
    await expect(drainAll({ timeoutMs: 0, graceMs: 200 })).resolves.toMatchObject({ live: 0 });
    expect(far.session.ending).toBe(true);
    expect(far.session.hungUp).toBe(false);
  }));

test('the caller hangs up while the goodbye is being made: the session ends at once, not after goodbyeWaitMs', async () => {
  const far = await connectFarAgi({ goodbyeWaitMs: 60_000 });
  try {
    const s = far.session;
    const listening = () => s.listenerCount('hangup') + s.listenerCount('close');
    const listeners = listening();
    let released = 0;
    let late: (v: { path: string; durationMs: number; release(): void }) => void = () => undefined;
    const ended = s.endPolitely(
      'the dialer is shutting down',
      () => new Promise<{ path: string; durationMs: number; release(): void }>((r) => (late = r)), // synthesis under way
    );
    far.reply('HANGUP'); // the caller hangs up (Asterisk's asynchronous HANGUP line)
    await expect(ended).resolves.toBe(false);
    expect(far.lines).toEqual([]); // no goodbye, no HANGUP of ours: the caller is gone
    await waitFor(() => s.closed || undefined, 5000, 'the session closed');
    late({ path: '/tmp/aid-bye-late', durationMs: 500, release: () => released++ });
    await waitFor(() => released === 1, 2000, 'the goodbye made too late released');
    expect(listening()).toBe(listeners); // none of endPolitely's left
  } finally {
    await far.close();
  }
});

test("a goodbye that never comes is waited for goodbyeWaitMs, then HANGUP; the flow's hangup() and close() meanwhile wait for that end", async () => {
  const far = await connectFarAgi({ goodbyeWaitMs: 300 });
  try {
    const s = far.session;
    let releasedLate = 0;
    let late: (v: { path: string; durationMs: number; release(): void }) => void = () => undefined;
    const goodbye = () => new Promise<{ path: string; durationMs: number; release(): void }>((r) => (late = r)); // synthesis hangs
    const t0 = Date.now();
    const ended = s.endPolitely('the dialer is shutting down', goodbye);
    // the flow's hangup node: its HANGUP is not refused, nor is the socket closed under the goodbye
    s.close();
    let flowHungUp = false;
    const flowHangup = s.hangup().then(() => (flowHungUp = true));
    await waitFor(() => far.lines.length === 1, 5000, 'HANGUP written');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(far.lines).toEqual(['HANGUP']); // no goodbye to play
    expect(flowHungUp).toBe(false);
    far.reply('200 result=1');
    await expect(ended).resolves.toBe(false);
    await flowHangup;
    expect(s.closed || s.hungUp).toBe(true);
    // the audio arriving after all is released, not kept
    late({ path: '/tmp/aid-bye-late', durationMs: 500, release: () => releasedLate++ });
    await waitFor(() => releasedLate === 1, 2000, 'the late goodbye released');
    expect(far.lines).toEqual(['HANGUP']);
  } finally {
    await far.close();
  }
});
