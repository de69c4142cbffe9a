/**
 * bench/calls: the far end in its own process (the Asterisk simulator), so its CPU is not counted as the
 * dialer's. Started by bench/calls/index.ts with fork(); talks over IPC:
 *   -> parent {type:'ready', url, username, password}
 *   <- {type:'report'}  -> {type:'report', turns, turnsDueAt, greetedAt, fromSpeech, afterReply, hops, setup, cpuMs,
 *                            misrouted, agiCalls, channels}
 *   <- {type:'exit'}
 * Environment: SIMB_AGI (default `host:port` for calls without AGI_TARGET), SIMB_PAUSE_MS (silence before
 * each of the callee's answers), SIMB_CALLERS (`lockstep`: every callee answers after 50 ms and pauses exactly
 * SIMB_PAUSE_MS; `varied`: each callee rings 2-10 s and pauses 60-125 % of it, from a fixed seed), SIMB_APPS (runtime i's Stasis app = SIMB_APPS[i], its FastAGI = SIMB_AGIS[i],
 * comma lists: a call driven by another runtime than the one whose app originated it is counted misrouted).
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import * as agiClient from '../../src/sim/agi-client';
import type { AgiCallResult } from '../../src/sim/agi-client';
import { startSimulator } from '../../src/sim/index';
import { seededRandom } from '../../src/util/random';

const turns: number[] = [];
/** When each turn's recording was due to end (epoch ms, same order as `turns`). */
const turnsDueAt: number[] = [];
/** When each call's greeting started playing (epoch ms). */
const greetedAt: number[] = [];
const fromSpeech: number[] = [];
const afterReply: number[] = [];
const hops: number[] = [];
const setup: number[] = [];
let misrouted = 0;
let agiCalls = 0;
const appOfCall = new Map<string, string>();

/**
 * One AGI transcript, per turn (a RECORD FILE that ran to its end, then the next STREAM FILE):
 *   - turns: from the moment the recording was due to end (end of the caller's speech + the endpoint
 *     silence Asterisk waits for) to the STREAM FILE command: everything the dialer adds;
 *   - fromSpeech: from the end of the caller's speech (silence included);
 *   - afterReply: from the RECORD FILE reply line (what this bench measured before; excludes the far end's lateness);
 * and every reply -> next command gap (hops), connect -> first STREAM FILE (setup).
 */
function measure(r: AgiCallResult, t0: number): void {
  const t = r.transcript;
  const firstPlay = t.find((e) => e.dir === 'cmd' && /^STREAM FILE/i.test(e.line));
  if (firstPlay) {
    setup.push(firstPlay.atMs);
    greetedAt.push(t0 + firstPlay.atMs);
  }
  let rec = 0;
  let lastCmd = '';
  let replyAt = -1;
  let pending: { due: number; speech: number; reply: number } | undefined;
  for (const e of t) {
    if (e.dir === 'cmd') {
      if (replyAt >= 0) hops.push(e.atMs - replyAt);
      if (pending && /^STREAM FILE/i.test(e.line)) {
        turns.push(e.atMs - pending.due);
        turnsDueAt.push(t0 + pending.due);
        fromSpeech.push(e.atMs - pending.speech);
        afterReply.push(e.atMs - pending.reply);
        pending = undefined;
      }
      lastCmd = e.line;
      replyAt = -1;
    } else if (e.dir === 'reply') {
      replyAt = e.atMs;
      if (/^RECORD FILE/i.test(lastCmd)) {
        const timing = r.records[rec++];
        pending =
          timing && !/\(hangup\)/.test(e.line)
            ? { due: timing.dueAtMs, speech: timing.speechEndAtMs, reply: e.atMs }
            : undefined;
      }
    }
  }
}

async function main(): Promise<void> {
  const env = process.env;
  const [agiHost, agiPort] = String(env.SIMB_AGI).split(':');
  const apps = String(env.SIMB_APPS || '').split(',');
  const agis = String(env.SIMB_AGIS || '').split(',');
  const pause = Number(env.SIMB_PAUSE_MS || 2000);
  const varied = env.SIMB_CALLERS === 'varied';
  const rand = seededRandom(0x5eed); // a fixed seed: every run (and every build) faces the same callers
  const pauseMs = () => (varied ? Math.round(pause * (0.6 + 0.65 * rand())) : pause);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-bench-sim-'));
  // the bench's own view of every AGI session (the simulator calls runAgiCall through the module's exports)
  const run = agiClient.runAgiCall;
  (agiClient as { runAgiCall: typeof run }).runAgiCall = (o) => {
    agiCalls++;
    const origin = apps.indexOf(appOfCall.get(String(o.variables.CALL_ID)) ?? '');
    appOfCall.delete(String(o.variables.CALL_ID));
    const driver = agis.indexOf(`${o.host}:${o.port}`);
    if (origin >= 0 && driver !== origin) misrouted++;
    const t0 = Date.now(); // the transcript counts from the call object made synchronously in runAgiCall
    return run(o).then((r) => {
      measure(r, t0);
      return r;
    });
  };
  const sim = await startSimulator({
    host: '127.0.0.1',
    port: 0,
    agiHost,
    agiPort: Number(agiPort),
    app: 'ai-dialer',
    recordingsRoot: path.join(dir, 'recordings'),
    defaultPersona: () => ({
      name: 'bench talker',
      dial: { behaviour: 'answer', ringMs: varied ? Math.round(2000 + 8000 * rand()) : 50 },
      utterances: [
        { text: 'Let me check my calendar first.', pauseMs: pauseMs() },
        { text: 'Yes, that works for me.', pauseMs: pauseMs() },
        { text: 'No, thank you.', pauseMs: pauseMs() },
      ],
    }),
  });
  // which runtime (Stasis app) originated each call
  sim.sim.on('channel-created', (c: { app?: string; variables: Record<string, string> }) => {
    if (c.app && c.variables.CALL_ID) appOfCall.set(c.variables.CALL_ID, c.app);
  });
  const cpu0 = process.cpuUsage();
  process.on('message', (m: { type: string }) => {
    if (m.type === 'report') {
      const cpu = process.cpuUsage(cpu0);
      process.send!({
        type: 'report',
        turns,
        turnsDueAt,
        greetedAt,
        fromSpeech,
        afterReply,
        hops,
        setup,
        cpuMs: (cpu.user + cpu.system) / 1000,
        misrouted,
        agiCalls,
        channels: sim.channels().length,
      });
    } else if (m.type === 'exit') {
      void sim.close().finally(() => {
        fs.rmSync(dir, { recursive: true, force: true });
        process.exit(0);
      });
    }
  });
  process.send!({ type: 'ready', url: sim.url, username: sim.username, password: sim.password });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
