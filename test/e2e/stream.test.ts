/**
 * The shipped default flow in STREAM mode, end to end, as `npm start` runs it (MEDIA_MODE=auto, the
 * default: the built-in simulator speaks AudioSocket, so calls stream): a small campaign of simulated
 * callees who talk (one of them over the greeting: barge-in), ask not to be called, or hang up. The
 * same flow and nodes as record mode (test/e2e/lifecycle.test.ts) run it.
 *
 * Asserted, from the HTTP API and the MQTT events: every call completes; no RECORD FILE is used; turns
 * are `media: stream` with endpoint, first-audio and reply-latency timings, the barged-in greeting is
 * stored `interrupted` with what the callee heard; the do-not-call request is stored; nothing is left.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import mqtt from 'mqtt';
import { ANY_PORTS } from '../helpers/start';
import { waitFor } from '../helpers/wait';
import { startFakeLlm, type FakeLlm } from './fake-llm';
import { startDialer, stopDialer, type Dialer } from './runtime';
import { callingWindow, contactsCsv, DNC_WORDS, TALKER_WORDS, type Contact } from './scenario';

jest.setTimeout(400000);

type N = Record<string, any>;

test('the default flow streams: barge-in, sentence-streamed replies, per-turn waits, DNC, outcomes', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-e2e-stream-'));
  const win = callingWindow();
  const contacts: Contact[] = [
    { phone: '+12125557011', name: 'Tess Talker', kind: 'talker', timezone: win.inside },
    { phone: '+12125557012', name: 'Bart Bargein', kind: 'talker', timezone: win.inside },
    { phone: '+12125557013', name: 'Dana Dnc', kind: 'asks_dnc', timezone: win.inside },
  ];
  const personas = {
    '+12125557011': { name: 'talker', dial: { behaviour: 'answer', ringMs: 300 }, utterances: TALKER_WORDS },
    '+12125557012': {
      name: 'barges in',
      dial: { behaviour: 'answer', ringMs: 300 },
      utterances: [{ text: TALKER_WORDS[0], bargeInAfterMs: 1000 }, ...TALKER_WORDS.slice(1)],
    },
    '+12125557013': { name: 'asks dnc', dial: { behaviour: 'answer', ringMs: 300 }, utterances: DNC_WORDS },
  };
  fs.writeFileSync(path.join(dir, 'personas.json'), JSON.stringify(personas));
  const llm: FakeLlm = await startFakeLlm({ names: contacts.map((c) => c.name), failOnceFor: 'nobody' });
  const ports = ANY_PORTS; // bound as 0, read back from the banner (dialer.ports)
  let dialer: Dialer | undefined;
  let client: mqtt.MqttClient | undefined;
  try {
    dialer = await startDialer(
      {
        ...ports,
        DATA_DIR: path.join(dir, 'data'),
        SIM_PERSONAS: path.join(dir, 'personas.json'),
        LLM_ENGINE: 'openai',
        LLM_BASE_URL: llm.url,
        LLM_MODEL: 'e2e-model',
        MEDIA_MODE: 'auto',
      },
      240000,
    );
    const turns: N[] = [];
    client = mqtt.connect(`mqtt://127.0.0.1:${dialer.ports.mqtt}`, { reconnectPeriod: 0 });
    client.on('message', (_t, buf) => {
      const e = JSON.parse(buf.toString()) as N;
      if (e.type === 'conversation_turn') turns.push(e);
    });
    await new Promise<void>((resolve, reject) => {
      client!.once('connect', () => resolve());
      client!.once('error', reject);
    });
    await client.subscribeAsync('ai-dialer/v1/#', { qos: 1 });

    const created = await dialer.post('/api/v1/campaigns', {
      name: `E2E stream ${Date.now()}`,
      timezone: win.inside,
      window_start: win.windowStart,
      window_end: win.windowEnd,
      max_concurrent: 3,
      calls_per_second: 10,
      max_attempts: 1,
    });
    expect(created.status).toBe(201);
    const campaignId = created.body.id as number;
    await dialer.post(`/api/v1/campaigns/${campaignId}/phone-numbers`, { number: '+12125559000', label: 'line' });
    const imported = await dialer.post(`/api/v1/campaigns/${campaignId}/contacts`, contactsCsv(contacts), 'text/csv');
    expect(imported.body).toMatchObject({ inserted: 3 });
    expect((await dialer.post('/api/v1/calls/automated/start', { campaignId })).status).toBe(200);

    const calls = await waitFor(
      async () => {
        const r = await dialer!.get<{ calls: N[] }>(`/api/v1/calls?campaignId=${campaignId}&limit=10`);
        return r.calls.length === 3 && r.calls.every((c) => !['initiated', 'ringing', 'in_progress'].includes(c.status))
          ? r.calls
          : undefined;
      },
      100000,
      'the three calls to end',
      250,
    );
    expect(calls.map((c) => c.status).sort()).toEqual(['completed', 'completed', 'completed']);
    const byPhone = new Map(calls.map((c) => [c.phone, c]));
    const detail = async (phone: string) => dialer!.get<N>(`/api/v1/calls/${byPhone.get(phone)!.id}`);

    // the talker: greeting + 3 turns, all streamed, each with what the caller waited
    const talker = await detail('+12125557011');
    expect(talker.turns.length).toBeGreaterThanOrEqual(4);
    for (const t of talker.turns) expect(t.media).toBe('stream');
    for (const t of talker.turns.slice(1)) {
      expect(t.endpoint_ms).toBeGreaterThanOrEqual(500);
      expect(t.reply_latency_ms).toBeGreaterThanOrEqual(t.endpoint_ms);
      expect(typeof t.tts_first_audio_ms).toBe('number');
    }
    expect(talker.turns[1].user_text).toBe(TALKER_WORDS[0]);

    // the barge-in: the greeting is interrupted and stored with what the callee heard
    const barger = await detail('+12125557012');
    expect(barger.turns[0]).toMatchObject({ seq: 0, media: 'stream', interrupted: true });
    expect(barger.turns[0].bot_text.startsWith(barger.turns[0].played_text)).toBe(true);
    expect(barger.turns[1].user_text).toBe(TALKER_WORDS[0]);

    // the do-not-call request is stored
    const dnc = await dialer.get<N>(`/api/v1/dnc?limit=50`).catch(() => undefined);
    if (dnc) expect(JSON.stringify(dnc)).toContain('+12125557013');

    // the same turns were broadcast with the stream timings
    const streamed = turns.filter((e) => e.media === 'stream' && e.seq > 0);
    expect(streamed.length).toBeGreaterThanOrEqual(5);
    for (const e of streamed) expect(typeof e.timing.replyLatencyMs).toBe('number');
    expect(turns.some((e) => e.interrupted === true && typeof e.playedText === 'string')).toBe(true);

    const health = await waitFor(
      async () => {
        const h = await dialer!.get<N>('/api/v1/health');
        return h.agiSessions === 0 ? h : undefined;
      },
      10000,
      'no AGI session left',
    );
    expect(health.agiSessions).toBe(0);
    const lat = streamed.map((e) => e.timing.replyLatencyMs - (e.timing.endpointMs ?? 0)).sort((a, b) => a - b);
    console.log(`stream e2e: reply latency minus endpoint silence, per turn (ms): ${lat.join(', ')}`);
  } finally {
    client?.end(true);
    if (dialer) await stopDialer(dialer);
    await llm.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
