/**
 * The shipped default flow (flows/ai-dialer.json), end to end, in the runtime a user starts with
 * `npm start` and the built-in Asterisk simulator: a campaign of 22 contacts created through the HTTP
 * API covers talkers (3 turns), busy, no answer, a hang-up in the middle of a turn, a caller asking not
 * to be called again, a number already on the do-not-call list, contacts outside calling hours, an
 * answering machine (the voicemail branch, outcome machine), and an
 * LLM that fails once (the failure group plays the fallback and the call goes on).
 *
 * Asserted: the MQTT event sequence of every call (real mqtt.js client, subscribed before the start),
 * the retained campaign_progress, every call record with its turns, timings and transcript, the
 * contacts' retries and the do-not-call list (read from the database after the runtime stopped), that
 * nobody ineligible was dialled, that no AGI session, campaign slot or simulated channel is left, and
 * that SIGTERM exits 0.
 *
 * Runs on the embedded stack (PGlite + embedded broker) always, and on PostgreSQL + Mosquitto when
 * DATABASE_URL is set (CI).
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import mqtt from 'mqtt';
import { Client } from 'pg';
import { ANY_PORTS } from '../helpers/start';
import { openDb, type Db } from '../../src/store/db';
import { waitFor } from '../helpers/wait';
import { startFakeLlm, type FakeLlm } from './fake-llm';
import { startDialer, stopDialer, StartFailed, type Dialer } from './runtime';
import {
  buildContacts,
  callingWindow,
  contactsCsv,
  personaFor,
  DNC_WORDS,
  FLAKY_NAME,
  FLAKY_WORDS,
  HANGUP_WORDS,
  TALKER_WORDS,
  VOICEMAIL_MESSAGE,
  type Contact,
  type Kind,
} from './scenario';
import { testWith } from '../helpers/tools';

jest.setTimeout(150000);

type N = Record<string, any>;

const OPEN = ['initiated', 'ringing', 'in_progress'];
const DIALLED: Kind[] = ['talker', 'flaky', 'busy', 'no_answer', 'hangup_mid_turn', 'asks_dnc', 'machine'];
const SPEED = '10';
const PROGRESS_BUCKETS = [
  'queued',
  'retrying',
  'dialing',
  'active',
  'completed',
  'failed',
  'no_answer',
  'busy',
  'machine',
  'dnc_skipped',
];

interface Target {
  label: string;
  /** Phone prefix (unique per target, so runs on a shared broker never mix). */
  prefix: string;
  databaseUrl?: string;
  mqttUrl?: string;
  /** Ids start here (PostgreSQL run), so topics on the shared broker are this run's own. */
  idBase?: number;
}

interface Received {
  topic: string;
  retain: boolean;
  payload: N;
}

async function runScenario(t: Target): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-e2e-'));
  const win = callingWindow();
  const contacts = buildContacts(t.prefix, win);
  const byPhone = new Map(contacts.map((c) => [c.phone, c]));
  const personasFile = path.join(dir, 'personas.json');
  fs.writeFileSync(
    personasFile,
    JSON.stringify(Object.fromEntries(contacts.map((c) => [c.phone, personaFor(c.kind)]))),
  );
  const llm: FakeLlm = await startFakeLlm({ names: contacts.map((c) => c.name), failOnceFor: FLAKY_NAME });
  const env: Record<string, string> = {
    ...ANY_PORTS, // bound as 0, read back from the banner (dialer.ports)
    DATA_DIR: path.join(dir, 'data'),
    SIM_PERSONAS: personasFile,
    SIM_SPEED: SPEED,
    LLM_ENGINE: 'openai',
    LLM_BASE_URL: llm.url,
    LLM_MODEL: 'e2e-model',
    // this scenario is record mode's (RECORD FILE / STREAM FILE at SIM_SPEED); stream mode: test/e2e/stream.test.ts
    MEDIA_MODE: 'record',
  };
  if (t.databaseUrl) env.DATABASE_URL = t.databaseUrl;
  if (t.mqttUrl) env.MQTT_URL = t.mqttUrl;

  let dialer: Dialer | undefined;
  let campaignId: number | undefined;
  let client: mqtt.MqttClient | undefined;
  const t0 = Date.now();
  const marks: Record<string, number> = {};
  const mark = (k: string) => (marks[k] = Date.now() - t0);
  try {
    if (t.databaseUrl && t.idBase) {
      // Migrate first, then start the ids of this run where no other run's are.
      const db = await openDb({ url: t.databaseUrl });
      for (const table of ['campaigns', 'calls', 'contacts'])
        await db.query(`alter table ${table} alter column id restart with ${t.idBase}`);
      await db.close();
    }
    dialer = await startDialer(env);
    mark('started');
    const brokerUrl = t.mqttUrl ?? `mqtt://127.0.0.1:${dialer.ports.mqtt}`;
    const received: Received[] = [];
    client = mqtt.connect(brokerUrl, { clientId: `aid-e2e-${process.pid}-${Date.now()}`, reconnectPeriod: 0 });
    client.on('message', (topic, buf, packet) => {
      try {
        received.push({ topic, retain: packet.retain, payload: JSON.parse(buf.toString()) });
      } catch {
        received.push({ topic, retain: packet.retain, payload: { unparsable: buf.toString() } });
      }
    });
    await new Promise<void>((resolve, reject) => {
      client!.once('connect', () => resolve());
      client!.once('error', reject);
    });
    await client.subscribeAsync('ai-dialer/v1/#', { qos: 1 });

    // --- the campaign, through the HTTP API ---
    const created = await dialer.post('/api/v1/campaigns', {
      name: `E2E ${t.label} ${Date.now()}`,
      timezone: win.inside,
      window_start: win.windowStart,
      window_end: win.windowEnd,
      max_concurrent: 6,
      calls_per_second: 20,
      max_attempts: 3,
      retry_policy: { busy: 3600, no_answer: 3600, failed: 3600 },
      // answering machines: AMD on every call, the voicemail drop after the beep (outcome machine)
      amd_enabled: true,
      settings: { voicemail: { message: VOICEMAIL_MESSAGE } },
    });
    expect(created.status).toBe(201);
    campaignId = created.body.id as number;
    if (t.idBase) expect(campaignId).toBeGreaterThanOrEqual(t.idBase);
    expect(
      (
        await dialer.post(`/api/v1/campaigns/${campaignId}/phone-numbers`, {
          number: '+12125559000',
          label: 'e2e line',
        })
      ).status,
    ).toBe(201);
    const imported = await dialer.post(`/api/v1/campaigns/${campaignId}/contacts`, contactsCsv(contacts), 'text/csv');
    expect(imported.status).toBe(200);
    expect(imported.body).toMatchObject({ inserted: contacts.length, invalid: 0 });
    const onDnc = contacts.filter((c) => c.kind === 'on_dnc_list');
    const dncImport = await dialer.post(
      '/api/v1/dnc',
      ['phone,reason', ...onDnc.map((c) => `${c.phone},asked by letter`)].join('\n') + '\n',
      'text/csv',
    );
    expect(dncImport.status).toBe(200);
    expect(dncImport.body).toMatchObject({ kind: 'dnc', inserted: onDnc.length });

    const started = await dialer.post('/api/v1/calls/automated/start', { campaignId });
    expect(started.status).toBe(200);
    expect(started.body).toMatchObject({ ok: true, status: 'running' });
    mark('campaign started');

    // While it runs, the health route sees the live sessions, slots and channels (so its zeros later mean something).
    const peak = { agiSessions: 0, inFlight: 0, simulatedChannels: 0 };
    // And the campaign's figures: the API's and the retained MQTT status's come from the same count of
    // the database, add up to the contacts at every moment, and agree (also while calls are talking).
    const progressTopicLive = `ai-dialer/v1/campaigns/${campaignId}/status`;
    const sums: string[] = [];
    const agreedWhileTalking: N[] = [];
    const sumOf = (p: N) => PROGRESS_BUCKETS.reduce((a, k) => a + Number(p[k] ?? NaN), 0);
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const h = await dialer!.get<N>('/api/v1/health').catch(() => undefined);
        if (h)
          for (const k of Object.keys(peak) as Array<keyof typeof peak>) peak[k] = Math.max(peak[k], Number(h[k]) || 0);
        const st = await dialer!.get<N>(`/api/v1/campaigns/${campaignId}/status`).catch(() => undefined);
        const live = received.filter((m) => m.topic === progressTopicLive).pop()?.payload;
        for (const [src, p] of [
          ['api', st?.progress],
          ['mqtt', live],
        ] as const)
          if (p && sumOf(p) !== p.total) sums.push(`${src}: ${JSON.stringify(p)}`);
        const sp = st?.progress;
        if (sp?.active > 0 && live && PROGRESS_BUCKETS.every((k) => live[k] === sp[k])) agreedWhileTalking.push(live);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    // --- wait for every eligible contact's call to end, and its call_ended event ---
    const dialled = contacts.filter((c) => DIALLED.includes(c.kind));
    const calls = await waitFor(
      async () => {
        const r = await dialer!.get<{ calls: N[] }>(`/api/v1/calls?campaignId=${campaignId}&limit=100`);
        if (r.calls.length < dialled.length || r.calls.some((c) => OPEN.includes(c.status))) return undefined;
        const ended = new Set(received.filter((m) => m.payload.type === 'call_ended').map((m) => m.payload.callId));
        return r.calls.every((c) => ended.has(c.id)) ? r.calls : undefined;
      },
      100000,
      'every call of the campaign to end',
      250,
    );
    mark('calls ended');
    watching = false;
    await watcher;
    expect(peak.agiSessions).toBeGreaterThan(0);
    expect(peak.inFlight).toBeGreaterThan(0);
    expect(peak.inFlight).toBeLessThanOrEqual(6); // max_concurrent
    expect(peak.simulatedChannels).toBeGreaterThan(0);
    expect(sums).toEqual([]);
    // an answered call moved from dialing to active in the retained status, as in the API
    expect(agreedWhileTalking.length).toBeGreaterThan(0);

    // --- nothing left behind ---
    const health = await waitFor(
      async () => {
        const h = await dialer!.get<N>('/api/v1/health');
        return h.agiSessions === 0 && h.inFlight === 0 && h.simulatedChannels === 0 ? h : undefined;
      },
      15000,
      'no AGI session, campaign slot or simulated channel left',
    );
    expect(health).toMatchObject({ ok: true, agiSessions: 0, inFlight: 0, simulatedChannels: 0 });

    // --- calls: one per eligible contact, none for the ineligible ---
    expect(calls).toHaveLength(dialled.length);
    expect(calls.map((c) => c.phone).sort()).toEqual(dialled.map((c) => c.phone).sort());
    for (const c of calls) expect(c.attempt).toBe(1);

    const details = new Map<string, N>();
    for (const c of calls) details.set(c.phone, await dialer.get<N>(`/api/v1/calls/${c.id}`));
    const kindOf = (phone: string) => byPhone.get(phone)!.kind;
    const expectedStatus: Record<string, string> = { busy: 'busy', no_answer: 'no_answer', machine: 'machine' };
    for (const [phone, d] of details) {
      const kind = kindOf(phone);
      const want = expectedStatus[kind] ?? 'completed';
      expect({ phone, kind, status: d.call.status, outcome: d.call.outcome }).toEqual({
        phone,
        kind,
        status: want,
        outcome: want,
      });
      expect(d.call.ended_at).toBeTruthy();
      if (kind === 'machine') {
        // the voicemail branch: AMD said MACHINE, the message was left (one turn, nothing heard), no conversation
        const name = byPhone.get(phone)!.name;
        expect(d.call.answered_at).toBeTruthy();
        expect(d.call.amd_status).toBe('MACHINE');
        expect(d.turns).toHaveLength(1);
        expect(d.turns[0]).toMatchObject({
          seq: 0,
          bot_text: VOICEMAIL_MESSAGE.replace('{{contact.name}}', name),
          user_text: null,
        });
        expect(d.turns[0].playback_ms).toEqual(expect.any(Number));
        continue;
      }
      if (want !== 'completed') {
        expect({ phone, turns: d.turns.length, answered: d.call.answered_at }).toEqual({
          phone,
          turns: 0,
          answered: null,
        });
        continue;
      }
      expect(d.call.answered_at).toBeTruthy();
      const turns: N[] = d.turns;
      // The greeting first, with the contact's name, synthesized and played.
      expect(turns[0]).toMatchObject({ seq: 0 });
      expect(turns[0].bot_text).toContain(byPhone.get(phone)!.name);
      expect(turns[0].tts_ms).toEqual(expect.any(Number));
      expect(turns[0].playback_ms).toEqual(expect.any(Number));
      const said = turns.filter((x) => x.user_text).map((x) => x.user_text);
      if (kind === 'talker') {
        expect(said).toEqual(TALKER_WORDS);
        expect(turns).toHaveLength(4);
        expect(turns[3].action).toBe('end_call');
        for (const turn of turns.slice(1)) {
          for (const k of ['record_ms', 'stt_ms', 'llm_ms', 'tts_ms', 'playback_ms'])
            expect({ seq: turn.seq, [k]: typeof turn[k] }).toEqual({ seq: turn.seq, [k]: 'number' });
          expect(turn.bot_text).toBeTruthy();
        }
        for (const w of TALKER_WORDS) expect(d.transcript).toContain(w);
      } else if (kind === 'flaky') {
        // The first answer failed (HTTP 500): the fallback was played, the caller repeated, the call went on.
        expect(said).toEqual(FLAKY_WORDS.slice(1));
        expect(turns[turns.length - 1].action).toBe('end_call');
        expect(d.transcript).toContain(FLAKY_WORDS[2]);
      } else if (kind === 'hangup_mid_turn') {
        expect(said).toEqual([HANGUP_WORDS[0]]);
        expect(d.transcript).toContain(HANGUP_WORDS[0]);
      } else if (kind === 'asks_dnc') {
        expect(said).toEqual(DNC_WORDS);
        expect(turns[turns.length - 1].action).toBe('add_to_dnc');
      }
    }
    // The LLM: one failure, for the flaky caller's first words only; nothing asked for callers that never spoke to it.
    const failures = llm.requests.filter((r) => r.status !== 200);
    expect(failures).toEqual([{ name: FLAKY_NAME, userText: FLAKY_WORDS[0], status: 500 }]);
    expect(llm.requests.filter((r) => r.name === FLAKY_NAME).map((r) => r.userText)).toEqual(FLAKY_WORDS);
    expect(dialer.out()).toMatch(/fallback 1\/2/);

    // --- MQTT: the event sequence of every call ---
    const callIds = new Set(calls.map((c) => c.id));
    for (const c of calls) {
      const evs = received.filter((m) => m.topic === `ai-dialer/v1/calls/${c.id}/events`).map((m) => m.payload);
      const types = evs.map((e) => e.type);
      const kind = kindOf(c.phone);
      const where = `call ${c.id} (${kind}): ${types.join(' ')}`;
      for (const e of evs)
        expect({ where, campaignId: e.campaignId, callId: e.callId, v: e.v }).toEqual({
          where,
          campaignId,
          callId: c.id,
          v: 1,
        });
      expect({ where, first: types[0], last: types[types.length - 1] }).toEqual({
        where,
        first: 'call_started',
        last: 'call_ended',
      });
      expect({
        where,
        started: types.filter((x) => x === 'call_started').length,
        ended: types.filter((x) => x === 'call_ended').length,
      }).toEqual({ where, started: 1, ended: 1 });
      const ended = evs[evs.length - 1];
      if (kind === 'busy' || kind === 'no_answer') {
        expect({ where, types }).toEqual({ where, types: ['call_started', 'call_ended'] });
        expect(ended.outcome).toBe(kind);
        continue;
      }
      expect(ended.outcome).toBe(kind === 'machine' ? 'machine' : 'completed');
      // call_ended carries the whole transcript: every stored turn, in order
      expect({ where, transcript: ended.transcript }).toEqual({
        where,
        transcript: details.get(c.phone)!.turns.map((x: N) => ({
          seq: x.seq,
          ...(x.user_text ? { userText: x.user_text } : {}),
          ...(x.bot_text ? { botText: x.bot_text } : {}),
        })),
      });
      const answered = types.indexOf('call_answered');
      const firstTurn = types.indexOf('conversation_turn');
      expect({ where, answered: answered > 0, turnAfterAnswer: firstTurn > answered }).toEqual({
        where,
        answered: true,
        turnAfterAnswer: true,
      });
      expect(evs.some((e) => e.type === 'status' && e.status === 'in_progress')).toBe(true);
      const seqs = evs.filter((e) => e.type === 'conversation_turn').map((e) => e.seq);
      expect({ where, seqs }).toEqual({ where, seqs: [...seqs].sort((a, b) => a - b) });
      expect(seqs[0]).toBe(0);
      const stored = details.get(c.phone)!.turns.map((x: N) => x.seq);
      expect({ where, seqs }).toEqual({ where, seqs: stored });
      if (kind === 'talker') {
        const last = evs.filter((e) => e.type === 'conversation_turn').pop();
        expect(last).toMatchObject({ userText: TALKER_WORDS[2], action: 'end_call' });
        expect(Object.keys(last!.timing)).toEqual(
          expect.arrayContaining(['recordMs', 'sttMs', 'llmMs', 'ttsMs', 'playbackMs']),
        );
      }
    }
    // No events for calls other than this campaign's (the ineligible contacts were never called).
    const ourCallTopics = received.filter(
      (m) => /^ai-dialer\/v1\/calls\/[^/]+\/events$/.test(m.topic) && m.payload.campaignId === campaignId,
    );
    expect(ourCallTopics.every((m) => callIds.has(m.payload.callId))).toBe(true);

    // Retained progress with the final counts.
    const busyN = contacts.filter((c) => c.kind === 'busy').length;
    const noAnswerN = contacts.filter((c) => c.kind === 'no_answer').length;
    const machineN = contacts.filter((c) => c.kind === 'machine').length;
    const completedN = dialled.length - busyN - noAnswerN - machineN;
    const progressTopic = `ai-dialer/v1/campaigns/${campaignId}/status`;
    // Contacts, each in one bucket: done (talked), dnc (asked, or already listed), retrying (busy, no answer), queued (out of window).
    const count = (...kinds: Kind[]) => contacts.filter((c) => kinds.includes(c.kind)).length;
    const wantProgress = {
      campaignId,
      total: contacts.length,
      active: 0,
      dialing: 0,
      completed: count('talker', 'flaky', 'hangup_mid_turn'),
      dnc_skipped: count('asks_dnc', 'on_dnc_list'),
      // busy and no answer wait for their retry (an hour), the machine for its own (4 hours): shown as
      // such, not as queued; the machine bucket counts contacts closed as machine (none: attempts are left)
      queued: count('out_of_window'),
      retrying: busyN + noAnswerN + machineN,
      failed: 0,
      busy: 0,
      no_answer: 0,
      machine: 0,
      percent:
        Math.round((count('talker', 'flaky', 'hangup_mid_turn', 'asks_dnc', 'on_dnc_list') / contacts.length) * 1000) /
        10,
    };
    await waitFor(
      () => {
        const p = received.filter((m) => m.topic === progressTopic).pop()?.payload;
        return p && Object.entries(wantProgress).every(([k, v]) => p[k] === v) ? p : undefined;
      },
      10000,
      'campaign_progress with the final counts',
    ).catch((err: Error) => {
      const last = received.filter((m) => m.topic === progressTopic).pop()?.payload;
      throw new Error(`${err.message}: want ${JSON.stringify(wantProgress)}, last ${JSON.stringify(last)}`);
    });
    const retained = await retainedMessage(brokerUrl, progressTopic);
    expect(retained.retain).toBe(true);
    expect(retained.payload).toMatchObject({ type: 'campaign_progress', ...wantProgress });
    expect(sumOf(retained.payload)).toBe(contacts.length);
    const nextRetry = Date.parse(retained.payload.nextRetryAt);
    expect(nextRetry).toBeGreaterThan(Date.now() + 50 * 60_000);

    // Campaign status through the API.
    const status = await dialer.get<N>(`/api/v1/campaigns/${campaignId}/status`);
    expect(status.calls.total).toBe(dialled.length);
    expect(status.calls.byOutcome).toEqual({
      completed: completedN,
      busy: busyN,
      no_answer: noAnswerN,
      machine: machineN,
    });
    expect(status.activeCalls).toBe(0);
    expect(status.progress).toMatchObject({ ...wantProgress, nextRetryAt: retained.payload.nextRetryAt });

    // --- SIGTERM: exits 0 ---
    await client.endAsync();
    client = undefined;
    const code = await stopDialer(dialer);
    mark('stopped');
    expect({ code, out: code === 0 ? '' : dialer.out() }).toEqual({ code: 0, out: '' });
    expect(dialer.out()).toContain('stopped');
    // No errors; the only warnings are Node-RED's "Projects disabled" note and the flaky caller's fallback (a
    // first start writes an empty encrypted credentials file: no false "Encrypted credentials not found").
    const logLines = dialer
      .out()
      .split('\n')
      .filter((l) => /\[(warn|error)\]/.test(l));
    expect(logLines.filter((l) => !/\[warn\] Projects disabled|fallback 1\/2/.test(l))).toEqual([]);
    expect(logLines.filter((l) => /fallback 1\/2/.test(l))).toHaveLength(1);

    // --- the database, after the runtime released it ---
    const db = await openDb(t.databaseUrl ? { url: t.databaseUrl } : { dataDir: path.join(env.DATA_DIR, 'db') });
    try {
      await checkDatabase(db, campaignId, contacts);
    } finally {
      await db.close();
    }
    mark('database checked');

    console.log(
      `e2e ${t.label}: ${JSON.stringify(marks)} ms since start; ${calls.length} calls, ${received.length} MQTT messages`,
    );
  } finally {
    if (client) await client.endAsync(true).catch(() => undefined);
    if (t.mqttUrl && campaignId !== undefined)
      await clearRetained(t.mqttUrl, `ai-dialer/v1/campaigns/${campaignId}/status`).catch(() => undefined);
    if (dialer && dialer.child.exitCode === null) await stopDialer(dialer, 5000);
    await llm.close();
    // a runtime still writing its data directory must not hide the test's own failure
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    } catch (err) {
      console.warn(`e2e: could not remove ${dir}: ${(err as Error).message}`);
    }
  }
}

/** The retained message on `topic`, as a new subscriber gets it. */
async function retainedMessage(url: string, topic: string): Promise<Received> {
  const c = mqtt.connect(url, { clientId: `aid-e2e-r-${process.pid}-${Date.now()}`, reconnectPeriod: 0 });
  try {
    const got = new Promise<Received>((resolve) =>
      c.on('message', (tp, buf, packet) =>
        resolve({ topic: tp, retain: packet.retain, payload: JSON.parse(buf.toString()) }),
      ),
    );
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve());
      c.once('error', reject);
    });
    await c.subscribeAsync(topic, { qos: 1 });
    return await waitFor(
      () => Promise.race([got, new Promise<undefined>((r) => setTimeout(() => r(undefined), 200))]),
      5000,
      `the retained message on ${topic}`,
    );
  } finally {
    await c.endAsync(true);
  }
}

/** Leave nothing retained on a shared broker. */
async function clearRetained(url: string, topic: string): Promise<void> {
  const c = mqtt.connect(url, { clientId: `aid-e2e-c-${process.pid}-${Date.now()}`, reconnectPeriod: 0 });
  try {
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve());
      c.once('error', reject);
    });
    await c.publishAsync(topic, '', { qos: 1, retain: true });
  } finally {
    await c.endAsync(true);
  }
}

async function checkDatabase(db: Db, campaignId: number, contacts: Contact[]): Promise<void> {
  const rows = (
    await db.query<N>(
      `select phone, status, attempts, next_attempt_at > now() + interval '30 minutes' as later, last_outcome, last_call_id from contacts where campaign_id = $1`,
      [campaignId],
    )
  ).rows;
  const byPhone = new Map(rows.map((r) => [r.phone, r]));
  expect(rows).toHaveLength(contacts.length);
  const dncRows = (await db.query<N>('select phone, campaign_id, reason, source from dnc')).rows;
  for (const c of contacts) {
    const r = byPhone.get(c.phone)!;
    const got = { phone: c.phone, kind: c.kind, status: r.status, attempts: Number(r.attempts) };
    switch (c.kind) {
      case 'busy':
      case 'no_answer':
      case 'machine':
        // A retry is scheduled (an hour later, the campaign's retry policy; a machine: 4 hours, the default).
        expect({ ...got, later: r.later, last: r.last_outcome }).toEqual({
          ...got,
          status: 'pending',
          attempts: 1,
          later: true,
          last: c.kind,
        });
        break;
      case 'asks_dnc':
        expect(got).toEqual({ ...got, status: 'dnc', attempts: 1 });
        expect(dncRows.filter((d) => d.phone === c.phone)).toHaveLength(1);
        break;
      case 'on_dnc_list':
      case 'out_of_window':
        // Never dialled: the listed ones closed as dnc by the claim, the others wait for their window.
        expect({ ...got, lastCall: r.last_call_id }).toEqual({
          ...got,
          status: c.kind === 'on_dnc_list' ? 'dnc' : 'pending',
          attempts: 0,
          lastCall: null,
        });
        break;
      default:
        expect(got).toEqual({ ...got, status: 'done', attempts: 1 });
    }
  }
  // Only the numbers imported and the ones who asked are on the list.
  const expectedDnc = contacts
    .filter((c) => c.kind === 'on_dnc_list' || c.kind === 'asks_dnc')
    .map((c) => c.phone)
    .sort();
  expect(
    dncRows
      .map((d) => d.phone)
      .filter((p) => contacts.some((c) => c.phone === p))
      .sort(),
  ).toEqual(expectedDnc);
  const never = contacts.filter((c) => c.kind === 'on_dnc_list' || c.kind === 'out_of_window').map((c) => c.phone);
  const theirCalls = await db.query<N>('select id from calls where phone = any($1::text[])', [never]);
  expect(theirCalls.rows).toEqual([]);
  // Every call closed.
  const open = await db.query<N>(
    `select id from calls where campaign_id = $1 and status in ('initiated','ringing','in_progress')`,
    [campaignId],
  );
  expect(open.rows).toEqual([]);
}

describe('the default flow end to end (npm start, simulator)', () => {
  test('bad simulator settings are one clear line and exit code 1', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-e2e-bad-'));
    try {
      const ports = ANY_PORTS;
      const missing = path.join(dir, 'nope.json');
      const bad = path.join(dir, 'list.json');
      fs.writeFileSync(bad, '[1, 2]');
      for (const [env, line] of [
        [{ SIM_SPEED: 'fast' }, 'SIM_SPEED must be a number above 0 and at most 1000 (got "fast")'],
        [{ SIM_PERSONAS: missing }, `SIM_PERSONAS: cannot read ${missing} (no such file)`],
        [{ SIM_PERSONAS: bad }, `SIM_PERSONAS: ${bad} must hold a JSON object of phone number -> persona`],
      ] as Array<[Record<string, string>, string]>) {
        const err = await startDialer({ ...ports, DATA_DIR: path.join(dir, 'data'), ...env }).then(
          (d) => stopDialer(d).then(() => Promise.reject(new Error('started with a bad setting'))),
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(StartFailed);
        expect((err as StartFailed).code).toBe(1);
        // The last line (a first start may print "building..." before it).
        expect((err as StartFailed).output.trim().split('\n').pop()).toBe(`ai-dialer: ${line}`);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('PGlite + embedded MQTT broker: a 22-contact campaign covering every path', async () => {
    await runScenario({ label: 'pglite', prefix: '+121255501' });
  });

  const baseUrl = process.env.DATABASE_URL;
  const pgTest = testWith(
    'PostgreSQL (DATABASE_URL)',
    !!baseUrl,
    'DATABASE_URL=postgres://postgres@127.0.0.1:5432/test',
  );
  pgTest('PostgreSQL (DATABASE_URL) + Mosquitto (MQTT_URL): the same campaign', async () => {
    const name = `aid_e2e_${process.pid}_${Date.now().toString(36)}`;
    const admin = new Client({ connectionString: baseUrl });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    const url = new URL(baseUrl!);
    url.pathname = `/${name}`;
    try {
      await runScenario({
        label: 'postgres',
        prefix: '+121255502',
        databaseUrl: url.toString(),
        mqttUrl: process.env.E2E_MQTT_URL || 'mqtt://127.0.0.1:1883',
        idBase: 100000 + (Date.now() % 800000),
      });
    } finally {
      const c = new Client({ connectionString: baseUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    }
  });
});
