/**
 * The shipped asterisk-config/ on a real Asterisk 22.10.1 (see ./asterisk.ts for how it starts and
 * when the suite runs): it loads with no ERROR and no WARNING; the AGI secret stays out of the
 * dialplan; an ARI originate through the shipped contexts reaches our FastAGI server with the call's
 * variables; STREAM FILE and RECORD FILE work; hangups map to outcomes through the call tracker; and
 * GET /channels lists a live call the way the simulator does.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { AriConnection, type AriChannel } from '../../src/ari/client';
import { CallTracker } from '../../src/ari/calls';
import type { FastAgiSession } from '../../src/agi/session';
import { recordTurn } from '../../src/agi/recording';
import { readCallAndToken } from '../../src/agi/call';
import { parseWav } from '../../src/audio/wav';
import { startSimulator, type SimulatorHandle } from '../../src/sim';
import { waitFor } from '../helpers/wait';
import {
  describeReal,
  startShipped,
  startDialerSide,
  stopAll,
  problems,
  tone,
  type DialerSide,
  type Instance,
} from './asterisk';

const d = describeReal();

d('the shipped asterisk-config on a real Asterisk 22', () => {
  let ast: Instance;
  let side: DialerSide;
  let audio: string;

  beforeAll(async () => {
    const workAudio = fs.mkdtempSync(path.join(os.tmpdir(), 'ra-audio-'));
    audio = workAudio;
    fs.writeFileSync(path.join(audio, 'prompt.wav'), tone(1000));
    fs.writeFileSync(path.join(audio, 'long.wav'), tone(6000, 350));
    fs.writeFileSync(path.join(audio, 'hello.wav'), tone(800, 600));
    fs.writeFileSync(path.join(audio, 'greeting.wav'), tone(4000, 500));
    // Callees behind Local channels (a test-only file; the shipped contexts do the rest).
    ast = await startShipped({
      testModules: ['app_playtones.so'],
      testDialplan: [
        '[ra-callees]',
        '; talks: waits for our prompt, says "hello", then sends silence frames (like a phone line)',
        'exten => +15550100,1,Answer()',
        ` same => n,Wait(1.2)`,
        ` same => n,Playback(${audio}/hello)`,
        ' same => n,Playtones(0)',
        ' same => n,Wait(30)',
        ' same => n,Hangup()',
        '; an answering machine: a long greeting, then silence',
        'exten => +15550600,1,Answer()',
        ` same => n,Playback(${audio}/greeting)`,
        ' same => n,Playtones(0)',
        ' same => n,Wait(20)',
        '; a person: "hello", then waits in silence',
        'exten => +15550700,1,Answer()',
        ` same => n,Playback(${audio}/hello)`,
        ' same => n,Playtones(0)',
        ' same => n,Wait(20)',
        '; hangs up while our prompt plays',
        'exten => +15550200,1,Answer()',
        ' same => n,Playtones(0)',
        ' same => n,Wait(1)',
        ' same => n,Hangup()',
        '; hangs up while we record',
        'exten => +15550300,1,Answer()',
        ' same => n,Playtones(0)',
        ' same => n,Wait(1.5)',
        ' same => n,Hangup()',
        '',
      ].join('\n'),
    });
    side = await startDialerSide(ast, 'Local/{phone}@ra-callees');
  }, 150_000);

  afterAll(() => stopAll({ side, asterisks: [ast], dirs: [audio] }), 60_000);

  test('it starts with no ERROR and no WARNING, and without the sample AEL or unused modules', () => {
    const out = ast.output();
    expect(out).toContain('Asterisk Ready');
    expect(problems(out)).toEqual([]);
    const modules =
      ast.cli('module show like pbx_ael') + ast.cli('module show like phoneprov') + ast.cli('module show like cel_');
    expect(modules).not.toMatch(/pbx_ael\.so|phoneprov|cel_sqlite3_custom\.so/);
    expect(ast.cli('module show like res_agi')).toMatch(/res_agi\.so.*Running/);
    expect(ast.cli('module show like app_amd')).toMatch(/app_amd\.so.*Running/);
  });

  test('the AGI secret is read at run time: never in `dialplan show` or the console', () => {
    const plan = ast.cli('dialplan show ai-dialer-agi') + ast.cli('dialplan show ai-dialer-inbound');
    expect(plan).toContain('AGI(agi://${ENV(AGI_TARGET_HOST)}:${ENV(AGI_PORT)}/ai-dialer?secret=${ENV(AGI_SECRET)})');
    expect(plan).not.toContain(ast.agiSecret);
    expect(ast.cli('dialplan show globals')).not.toContain(ast.agiSecret);
    for (const f of fs.readdirSync(ast.confDir))
      expect([f, fs.readFileSync(path.join(ast.confDir, f), 'utf8').includes(ast.agiSecret)]).toEqual([f, false]);
  });

  test('originate -> ai-dialer-agi -> our FastAGI: variables, STREAM FILE, RECORD FILE, GET /channels, outcome completed', async () => {
    const seen: Record<string, unknown> = {};
    let channels: AriChannel[] = [];
    side.onSession = async (s: FastAgiSession) => {
      try {
        seen.script = s.env.network_script;
        for (const v of ['CALL_ID', 'CONTACT_PHONE', 'CAMPAIGN_ID', 'CONTACT_FIRST_NAME', 'CALL_TOKEN'])
          seen[v] = await s.getVariable(v);
        // fastagi-in's one round trip (GET FULL VARIABLE "${A}|${B}|...", unset ones empty) reads the same
        seen.identity = await readCallAndToken(s);
        seen.joined = await s.getFullVariable('${CALL_ID}|${AMDSTATUS}|${CONTACT_PHONE}');
        channels = await side.conn.listChannels();
        seen.play = await s.streamFile(`${audio}/prompt`);
        seen.rec = await s.recordFile({ path: `${audio}/rec-1`, maxMs: 8000, silenceSeconds: 1 });
        await s.hangup();
      } catch (err) {
        seen.error = err;
      } finally {
        s.close(); // FastAGI: Asterisk keeps the AGI (and the channel) until we close the socket
      }
    };
    await side.tracker.originate({ id: 'c1', phone: '+15550100', campaignId: 7, fields: { first_name: 'Ann' } });
    const o = await side.outcome('c1');
    expect(seen.error).toBeUndefined();
    expect(seen).toMatchObject({
      CALL_ID: 'c1',
      CONTACT_PHONE: '+15550100',
      CAMPAIGN_ID: '7',
      CONTACT_FIRST_NAME: 'Ann',
      play: { failed: false, hungUp: false },
      rec: { endedBy: 'silence_or_max', hungUp: false },
    });
    expect(seen.identity).toEqual({
      call: expect.objectContaining({ id: 'c1', phone: '+15550100', campaignId: 7, direction: 'outbound' }),
      token: seen.CALL_TOKEN,
    });
    expect((seen.identity as { call: object }).call).not.toHaveProperty('amd'); // AMDSTATUS unset: empty
    expect(seen.joined).toBe('c1||+15550100'); // one reply, an unset variable empty between the others
    // the per-call token reaches the session, and never Asterisk's console or ARI's channelvars
    expect(String(seen.CALL_TOKEN)).toMatch(/^[A-Za-z0-9_-]{16,128}$/);
    expect(ast.output()).not.toContain(String(seen.CALL_TOKEN));
    // the secret was checked by our server and redacted from what the session shows
    expect(String(seen.script)).toBe('ai-dialer?secret=***');
    expect((seen.play as { endpos: number }).endpos).toBeGreaterThanOrEqual(7000);
    const rec = parseWav(fs.readFileSync(`${audio}/rec-1.wav`));
    expect(rec.sampleRate).toBe(8000);
    // it heard the callee's "hello" (0.8 s) and stopped on the silence after it, well before 8 s
    expect(rec.durationMs).toBeGreaterThan(300);
    expect((seen.rec as { durationMs: number }).durationMs).toBeLessThan(7000);
    // our AGI HANGUP on a Local channel ends it with cause 0 (seen on 22.10.1), the callee's with 16
    expect(o.outcome).toBe('completed');
    expect([0, 16]).toContain(o.hangupCause);

    // GET /channels while the call was up: our channel with what reconcile needs
    const ours = channels.find((c) => c.id === o.channelId) as AriChannel & Record<string, any>;
    expect(ours).toBeDefined();
    expect(ours.name).toMatch(/^Local\/\+15550100@ra-callees-[0-9a-f]+;1$/);
    expect(ours.state).toBe('Up');
    // every listed variable, an unset one (CONTACT_ID) as ''
    expect(ours.channelvars).toEqual({ CALL_ID: 'c1', CAMPAIGN_ID: '7', CONTACT_ID: '', CONTACT_PHONE: '+15550100' });
    realChannel = ours;
  }, 60_000);

  test('a callee who hangs up during STREAM FILE or RECORD FILE ends the call (hungUp, not an error): outcome completed', async () => {
    const ends: Record<string, unknown> = {};
    side.onSession = async (s: FastAgiSession) => {
      const id = await s.getVariable('CALL_ID');
      try {
        if (id === 'c2') {
          ends.c2 = await s.streamFile(`${audio}/long`);
          // what agi-record does next on the dead channel: an ending, not an error
          ends.c2next = await recordTurn(s, { dir: audio, callId: id, seq: 1, maxMs: 3000, silenceSeconds: 1 });
        } else ends.c3 = await recordTurn(s, { dir: audio, callId: id, seq: 1, maxMs: 8000, silenceSeconds: 0 });
      } catch (err) {
        ends[`${id}-error`] = err;
      } finally {
        s.close();
      }
    };
    await side.tracker.originate({ id: 'c2', phone: '+15550200' });
    await side.tracker.originate({ id: 'c3', phone: '+15550300' });
    const o2 = await side.outcome('c2');
    const o3 = await side.outcome('c3');
    await waitFor(
      () => ('c2' in ends || 'c2-error' in ends) && ('c3' in ends || 'c3-error' in ends),
      10_000,
      'sessions ended',
    );
    expect(ends).toMatchObject({
      c2: { hungUp: true, failed: false },
      c2next: { recording: { hungUp: true, durationMs: 0 } },
      c3: { recording: { hungUp: true }, result: { endedBy: 'hangup' } },
    });
    // where the playback was, or the file's whole length: res_agi reports the length when the hangup had already
    // closed the channel's stream (handle_streamfile: `ast_channel_stream(chan) ? ast_tellstream(fs) : max_length`)
    expect((ends.c2 as { endpos: number }).endpos).toBeGreaterThan(0);
    expect((ends.c2 as { endpos: number }).endpos).toBeLessThanOrEqual(6 * 8000);
    expect(o2).toMatchObject({ outcome: 'completed', hangupCause: 16 });
    expect(o3).toMatchObject({ outcome: 'completed', hangupCause: 16 });
  }, 60_000);

  test('AMD in ai-dialer-agi with the shipped parameters: a long greeting is MACHINE, a short hello is HUMAN', async () => {
    const amd: Record<string, Record<string, string | undefined>> = {};
    side.onSession = async (s: FastAgiSession) => {
      try {
        const id = (await s.getVariable('CALL_ID')) as string;
        amd[id] = {
          status: await s.getVariable('AMDSTATUS'),
          cause: await s.getVariable('AMDCAUSE'),
          path: await s.getVariable('AMD_PATH'),
        };
        await s.hangup();
      } finally {
        s.close();
      }
    };
    await side.tracker.originate({ id: 'm1', phone: '+15550600', amd: true });
    await side.tracker.originate({ id: 'h1', phone: '+15550700', amd: true });
    await waitFor(
      () => side.outcomes.some((x) => x.callId === 'm1') && side.outcomes.some((x) => x.callId === 'h1'),
      40_000,
      'AMD calls',
    );
    expect(amd.m1).toMatchObject({ status: 'MACHINE', path: 'machine' });
    expect(amd.m1.cause).toMatch(/^LONGGREETING/);
    expect(amd.h1).toMatchObject({ status: 'HUMAN', path: 'human' });
  }, 60_000);

  test("the simulator's GET /channels has the same fields as the real one", async () => {
    expect(realChannel).toBeDefined();
    const real = realChannel as AriChannel & Record<string, any>;
    const sim: SimulatorHandle = await startSimulator({ agiHost: '127.0.0.1', agiPort: ast.agiPort, app: 'ai-dialer' });
    try {
      const sconn = new AriConnection({
        url: sim.url,
        username: sim.username,
        password: sim.password,
        app: 'ai-dialer',
      });
      await sconn.start();
      const st = new CallTracker(sconn, { endpointTemplate: 'Local/{phone}@from-internal', sweepMs: 0 });
      sim.setPersona('+15550100', { dial: { behaviour: 'answer', ringMs: 5000 } });
      const { channelId } = await st.originate({
        id: 'c1',
        phone: '+15550100',
        campaignId: 7,
        fields: { first_name: 'Ann' },
      });
      const simCh = (await waitFor(
        async () => (await sconn.listChannels()).find((c) => c.id === channelId),
        10_000,
        'simulated channel',
      )) as AriChannel & Record<string, any>;
      const shape = (c: Record<string, any>): Record<string, string> =>
        Object.fromEntries(
          Object.entries(c).map(([k, v]) => [
            k,
            v !== null && typeof v === 'object' ? Object.keys(v).sort().join(',') : typeof v,
          ]),
        );
      const realShape = shape(real);
      const simShape = shape(simCh);
      // channelvars holds the configured variables only
      realShape.channelvars = Object.keys(real.channelvars).sort().join(',');
      expect(simShape).toEqual(realShape);
      expect(simCh.channelvars).toEqual({
        CALL_ID: 'c1',
        CAMPAIGN_ID: '7',
        CONTACT_ID: '',
        CONTACT_PHONE: '+15550100',
      });
      // values: the same formats as the real channel
      expect(simCh.creationtime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$/);
      expect(real.creationtime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$/);
      expect(simCh.connected).toEqual(real.connected);
      expect(simCh.name).toMatch(/^Local\/\+15550100@from-internal-[0-9a-f]+;1$/);
      st.cancel();
      await st.close();
      await sconn.close();
    } finally {
      await sim.close();
    }
  }, 30_000);
});

let realChannel: (AriChannel & Record<string, any>) | undefined;
