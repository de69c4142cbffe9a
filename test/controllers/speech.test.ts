/**
 * stt-transcribe, tts-speak and llm-turn controllers driven directly: the simulated STT/TTS
 * engines and the scripted LLM (no network), the runtime's settings as the engines' environment.
 */
import { SttTranscribeController, recordingOf } from '../../src/controllers/stt-transcribe';
import { TtsSpeakController } from '../../src/controllers/tts-speak';
import { LlmTurnController } from '../../src/controllers/llm-turn';
import type { CallRecords } from '../../src/calls/records';
import { encodeWav } from '../../src/audio/wav';
import { SIM_RATE, syntheticSpeech } from '../../src/audio/synthetic-speech';
import { settingsEnv } from '../../src/types/settings';
import type { DialerMsg, MsgTurn } from '../../src/types/msg';
import { StageError } from '../../src/util/errors';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { keys, recordingView } from './view';
import { callCampaign, rememberCallContext } from '../../src/llm/context';

const ac = () => new AbortController().signal;
const wav = (text: string) => encodeWav({ sampleRate: SIM_RATE, channels: 1, samples: syntheticSpeech(text) }, text);

describe('stt-transcribe', () => {
  test('reads back a simulated recording: msg.transcript, payload and turn, marked simulated', async () => {
    const view = recordingView();
    const ctl = new SttTranscribeController({ engine: 'sim' }, view, keys, {});
    expect(view.last()).toMatchObject({ fill: 'grey', text: 'status.sim' });
    const msg = await ctl.handle({ payload: wav('yes I can'), turn: { seq: 1, timing: { recordMs: 5 } } }, ac());
    expect(msg.payload).toBe('yes I can');
    expect(msg.transcript).toMatchObject({ text: 'yes I can', simulated: true, engine: 'sim' });
    expect(msg.turn).toMatchObject({
      seq: 1,
      userText: 'yes I can',
      simulated: true,
      engines: { stt: 'sim (simulated)' },
    });
    expect(msg.turn?.timing).toMatchObject({ recordMs: 5, sttMs: expect.any(Number) });
    expect(view.last()).toMatchObject({ fill: 'green', text: 'status.simulated "yes I can"' });
  });

  test('no recording is invalid input; a real Asterisk without an engine is a configuration error reported on every msg', async () => {
    const ctl = new SttTranscribeController({ engine: 'sim' }, recordingView(), keys, {});
    await expect(ctl.handle({ payload: 42 }, ac())).rejects.toMatchObject({ stage: 'stt', kind: 'invalid_input' });
    expect(recordingOf({ recording: { path: '/x.wav' } })).toBe('/x.wav');
    expect(recordingOf({ payload: 'note.txt' })).toBeUndefined();

    const view = recordingView();
    const real = new SttTranscribeController({}, view, keys, { ARI_URL: 'http://asterisk:8088' });
    expect(view.last()).toMatchObject({ fill: 'red', text: 'status.config' });
    expect(view.errors[0].text).toMatch(/no STT engine set/);
    for (let i = 0; i < 2; i++)
      await expect(real.handle({ payload: wav('x') }, ac())).rejects.toMatchObject({ kind: 'not_configured' });
    // the runtime's simulated Asterisk (settings.aiDialer) means the simulated engine
    const sim = new SttTranscribeController(
      {},
      recordingView(),
      keys,
      settingsEnv({ ari: { url: 'http://127.0.0.1:1', username: 'u', password: 'p' }, simulated: true }, {}),
    );
    await expect(sim.handle({ payload: wav('hello') }, ac())).resolves.toMatchObject({ payload: 'hello' });
  });
});

describe('tts-speak', () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-ctl-tts-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('a turn gets its TTS timing and engine, is written through the call-record service and marked conversation_turn', async () => {
    const written: { id: unknown; turn: MsgTurn }[] = [];
    const records = {
      spokenTurn: async (call: { id?: unknown }, _turn: MsgTurn, row: MsgTurn) => {
        written.push({ id: call?.id, turn: row });
        return { stored: true, played: () => undefined };
      },
    } as unknown as CallRecords;
    const view = recordingView();
    const ctl = new TtsSpeakController({ engine: 'sim', play: false, audioDir: dir }, view, keys, records, {});
    const msg = await ctl.handle(
      { call: { id: 7 }, reply: { text: 'Hello Ana', done: false }, turn: { seq: 2, userText: 'hi' } },
      ac(),
    );
    expect(msg.event).toBe('conversation_turn');
    expect(msg.tts).toMatchObject({ engine: 'sim', cached: false });
    expect(msg.turn).toMatchObject({ seq: 2, botText: 'Hello Ana', engines: { tts: 'sim:synthetic' } });
    expect(written).toEqual([
      { id: 7, turn: expect.objectContaining({ seq: 2, botText: 'Hello Ana', userText: 'hi' }) },
    ]);
    expect(view.last()?.text).toMatch(/^status.synthesized \d+\.\d s$/);
    // the same text again comes from the cache; a msg without a turn is not a turn
    const again = await ctl.handle({ payload: 'Hello Ana' }, ac());
    expect(again.event).toBeUndefined();
    expect(again.tts).toMatchObject({ cached: true });
    expect(written.length).toBe(1);
  });

  test('the node template wins over the msg; a session that ended is an ending, no session id a playback not_found failure', async () => {
    const ctl = new TtsSpeakController(
      { engine: 'sim', audioDir: dir, text: 'Hi {{contact.name}}' },
      recordingView(),
      keys,
      undefined,
      {},
    );
    expect(ctl.textOf({ payload: 'ignored', call: { contact: { name: 'Bo' } } })).toBe('Hi Bo');
    // the caller hung up (the session is gone): an ending, not a failure (issue 15)
    const gone = await ctl.handle({ payload: 'x', call: { sessionId: 'nope' } }, ac());
    expect(gone.playback).toMatchObject({ hungUp: true, failed: false });
    expect(gone.call).toMatchObject({ hungUp: true, hungUpBy: 'caller' });
    const err = await ctl.handle({ payload: 'x', call: {} }, ac()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StageError);
    expect(err).toMatchObject({ stage: 'playback', kind: 'not_found' });
    const bad = new TtsSpeakController({ engine: 'espeak', speed: 'fast' }, recordingView(), keys, undefined, {});
    await expect(bad.handle({ payload: 'x' }, ac())).rejects.toMatchObject({ stage: 'tts', kind: 'not_configured' });
  });
});

describe('llm-turn', () => {
  test('greeting, an intent reply with its action, history per call, forgotten when the call ends', async () => {
    const view = recordingView();
    const ctl = new LlmTurnController({ engine: 'scripted', greeting: 'Hi {{contact.name|there}}' }, view, keys);
    const g = (await ctl.handle({ call: { id: 1, contact: { name: 'Ana' } } }, ac())) as DialerMsg;
    expect(g.reply).toMatchObject({ text: 'Hi Ana', done: false });
    expect(g.turn).toMatchObject({ seq: 0, botText: 'Hi Ana', engines: { llm: expect.any(String) } });
    const y = (await ctl.handle(
      { call: { id: 1 }, transcript: { text: 'yes sure' }, turn: { seq: 1 } },
      ac(),
    )) as DialerMsg;
    expect(y.reply).toMatchObject({ done: true, action: { type: 'end_call' } });
    expect(y.turn?.action).toBe('end_call');
    expect(view.last()).toMatchObject({ fill: 'green', text: 'end_call' });
    expect(await ctl.handle({ topic: 'agi_ended', call: { id: 1 } }, ac())).toBeNull();
  });

  test('a campaign greeting wins; a store that cannot load the contact is a warning, the turn goes on', async () => {
    let loads = 0;
    const view = recordingView();
    const ctl = new LlmTurnController({ engine: 'scripted' }, view, keys, {
      getDb: () => {
        loads++;
        return Promise.reject(new Error('db down'));
      },
    });
    const m = (await ctl.handle(
      { call: { id: 9, contactId: 3 }, campaign: { settings: { greeting: 'Campaign says hi' } } },
      ac(),
    )) as DialerMsg;
    expect(m.reply?.text).toBe('Campaign says hi');
    expect(view.warnings).toEqual(['warn.context {"error":"db down"}']);
    expect(loads).toBe(1);
  });

  test('a call this process placed: the greeting takes its contact and campaign from the claim, no store read', async () => {
    let loads = 0;
    const ctl = new LlmTurnController(
      { engine: 'scripted', greeting: 'Hi {{contact.name}} from {{campaign.company}}' },
      recordingView(),
      keys,
      {
        getDb: () => {
          loads++;
          return Promise.reject(new Error('must not be read'));
        },
      },
    );
    rememberCallContext(77, {
      contact: { id: 3, name: 'Ana', phone: '+15550003', timezone: null, fields: {} },
      campaign: callCampaign({ id: 5, name: 'Spring', timezone: 'UTC', settings: { company: 'Acme' } }),
    });
    const m = (await ctl.handle({ call: { id: 77, contactId: 3, campaignId: 5 } }, ac())) as DialerMsg;
    expect(m.reply?.text).toBe('Hi Ana from Acme');
    expect(m.call).toMatchObject({ contact: { id: 3, name: 'Ana' } });
    expect(m.campaign).toMatchObject({ id: 5, name: 'Spring', company: 'Acme' });
    expect(loads).toBe(0);
    // taken once: another call with the same ids but not placed here reads the store
    const n = (await ctl.handle({ call: { id: 78, contactId: 3, campaignId: 5 } }, ac())) as DialerMsg;
    expect(n.call?.contact).toBeUndefined();
    expect(loads).toBe(1);
  });

  test('a chosen but missing LLM server node, or a bad setting, is not_configured on every msg', async () => {
    const view = recordingView();
    const ctl = new LlmTurnController({}, view, keys, { server: null });
    expect(view.last()).toMatchObject({ fill: 'red', text: 'status.config' });
    await expect(ctl.handle({ payload: 'hi' }, ac())).rejects.toMatchObject({ stage: 'llm', kind: 'not_configured' });
    const bad = new LlmTurnController({ engine: 'scripted', maxFallbacks: 'many' }, recordingView(), keys);
    await expect(bad.handle({ payload: 'hi' }, ac())).rejects.toMatchObject({ kind: 'not_configured' });
  });
});
