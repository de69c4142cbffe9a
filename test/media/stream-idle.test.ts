/**
 * The idle watchdog (AGI_IDLE_TIMEOUT) in stream mode: the call sits in EXEC AudioSocket the whole
 * conversation, so AGI is never idle; the watchdog reads the media session's clock instead (the flow's
 * last listen, playback or read). A flow that drops the call's msg (Node-RED at a Deploy) gets the call
 * ended politely: media ended, AGI hangs up. A flow that is listening or playing is never idle. Real
 * sockets: fastagi-in's controller, the simulator's AGI and AudioSocket callee.
 */
import { FastAgiInController } from '../../src/controllers/fastagi-in';
import { AgiRecordController } from '../../src/controllers/agi-record';
import { getMedia } from '../../src/media/registry';
import { runAgiCall } from '../../src/sim/agi-client';
import type { DialerMsg } from '../../src/types/msg';
import { TestEndpointer } from '../helpers/test-endpointer';
import { waitFor } from '../helpers/wait';
import { keys, recordingView } from '../controllers/view';

async function server(idle: string) {
  const view = recordingView();
  const out: { port: 0 | 1; msg: DialerMsg; at: number }[] = [];
  let port = 0;
  const ctl = new FastAgiInController(
    { host: '127.0.0.1', port: '0', media: 'stream' },
    view,
    keys,
    {
      send: (p, msg) => out.push({ port: p, msg, at: Date.now() }),
      listening: (a) => (port = a.port),
      endpointer: () => new TestEndpointer(),
    },
    undefined,
    { AGI_IDLE_TIMEOUT: idle },
  );
  await ctl.listen();
  return { ctl, view, out, port: () => port };
}

const call = (port: number) =>
  runAgiCall({
    host: '127.0.0.1',
    port,
    channel: 'PJSIP/trunk-00000002',
    uniqueid: `${Date.now() / 1000}`,
    callerId: '+12125550101',
    variables: {},
    persona: { utterances: [{ silent: true }] },
    lingerMs: 2000,
  });

test('a stream-mode call whose flow dropped its msg is ended by the watchdog: media ended, then AGI hangs up', async () => {
  const { ctl, view, out, port } = await server('0.5');
  try {
    const t0 = Date.now();
    const ended = call(port()); // the flow never answers the session msg
    const started = await waitFor(() => out.find((o) => o.port === 0), 5000, 'the session msg');
    expect(started.msg.call?.media).toBe('stream');
    const r = await ended;
    expect(r.audioSocket).toHaveLength(1);
    expect(r.audioSocket[0].endedBy).toBe('server_hangup'); // the media was ended by us, AudioSocket() returned 0
    expect(r.hungUpBy).toBe('agi'); // then AGI had control again and hung up
    expect(Date.now() - t0).toBeGreaterThanOrEqual(500);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(view.warnings.join('\n')).toMatch(/the flow sent no command for 1 s; ending it politely/);
    await waitFor(() => out.find((o) => o.port === 1), 5000, 'the ended msg');
  } finally {
    await ctl.close();
  }
}, 20000);

test('a stream-mode flow that is listening is not idle; idle starts when the listen returns and nothing follows', async () => {
  const { ctl, view, out, port } = await server('0.5');
  try {
    const ended = call(port());
    const started = await waitFor(() => out.find((o) => o.port === 0), 5000, 'the session msg');
    const media = getMedia(started.msg.call?.sessionId as string);
    expect(media).toBeDefined();
    // the flow listens for 1.5 s (longer than the idle timeout): the caller says nothing
    const rec = new AgiRecordController({ noInput: '1.5' }, '/tmp', recordingView(), keys);
    const t0 = Date.now();
    const heard = await rec.handle({ ...started.msg });
    const listenedMs = Date.now() - t0;
    expect(listenedMs).toBeGreaterThanOrEqual(1400);
    expect(heard.recording).toMatchObject({ media: 'stream', durationMs: 0, hungUp: false });
    expect(view.warnings).toEqual([]); // not ended during the listen
    const doneAt = Date.now();
    // then nothing: the flow dropped the msg
    const r = await ended;
    expect(r.hungUpBy).toBe('agi');
    expect(Date.now() - doneAt).toBeGreaterThanOrEqual(450);
    expect(view.warnings.join('\n')).toMatch(/ending it politely/);
  } finally {
    await ctl.close();
  }
}, 20000);
