/**
 * Calls benchmark: simulated concurrent calls end to end through the shipped default flow
 * (flows/ai-dialer.json) in the embedded runtime (startRuntime: Node-RED + store + embedded broker),
 * with instant engines (STT `sim`, scripted LLM, TTS `sim`) and the Asterisk simulator as the far end.
 *
 * For each N (50, 250, 500, 1,000, 2,000; BENCH_QUICK=1: 50 and 250; BENCH_CALLS_N=a,b,c), in a fresh child process so CPU
 * and memory are this N's alone:
 *   - one campaign of N contacts, max_concurrent N, 400 calls/s, calling window all day;
 *   - every callee answers after 50 ms and talks for 3 turns (a miss, a yes, a no-thanks) with
 *     HOLD_PAUSE_MS of silence before each answer, so all N calls are up at the same time;
 *   - started with POST /api/v1/calls/automated/start, run until every contact is done.
 * Reported:
 *   - peak concurrent calls: live AGI sessions (src/agi/registry activeSessionCount), sampled every 100 ms;
 *   - orchestration overhead per turn, p50/p99: on the simulator's side, the time from its RECORD FILE
 *     reply (the caller stopped talking) to the next STREAM FILE command (the answer starts playing),
 *     i.e. record node -> stt -> llm -> tts -> playback start, everything but the simulated waits;
 *     and stt+llm+tts ms from the call_turns rows (the engine steps as the flow timed them);
 *     and the reply -> next command gap over every AGI command (all hops, including greeting/hangup);
 *   - CPU seconds (user+system) of the process per call, peak RSS and heap per concurrent call;
 *   - correctness: each contact exactly one call row, each call `completed` with 3+ turns, no leftover
 *     sessions or channels ("lost" = contacts without a completed call, "dup" = extra call rows).
 * Every N runs (the p99_under_20ms column says which hold the 20 ms target) unless one loses calls
 * or its p99 is over 10 s (the machine is out). PostgreSQL when DATABASE_URL is
 * set (a throwaway database is created and dropped), else PGlite. Loopback only.
 *
 * Run alone: `node dist/bench/calls/index.js` (or `... --scenario 500` for one N, JSON out).
 */
import { fork } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { monitorEventLoopDelay } from 'perf_hooks';
import { Client } from 'pg';

type Row = Record<string, string | number>;

const QUICK = process.env.BENCH_QUICK === '1';
const SIZES = (process.env.BENCH_CALLS_N || (QUICK ? '50,250' : '50,250,500,1000,2000')).split(',').map(Number);
/** Silence before each of the callee's 3 answers (simulated ms at speed 1): keeps calls up together. */
const HOLD_PAUSE_MS = Number(process.env.BENCH_CALLS_PAUSE_MS || (QUICK ? 500 : 2000));
const CPS = Number(process.env.BENCH_CALLS_CPS || 400);
const P99_LIMIT_MS = 20;
/** A p99 this far over the limit means the machine is out: larger N only takes longer. */
const GIVE_UP_P99_MS = 10_000;
const MARK = '@@calls-bench ';

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string, everyMs = 200): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`bench: timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function freePort(): Promise<number> {
  const { freePort: fp } = await import('../../src/runtime/ports');
  return fp();
}

interface AgiEntry {
  dir: 'cmd' | 'reply' | 'event';
  line: string;
  atMs: number;
}

/**
 * Gaps in one AGI transcript: RECORD FILE reply -> next STREAM FILE command (a turn), any reply -> next
 * command (every hop), and connect -> first STREAM FILE (call set-up: session, call row, greeting).
 */
function gaps(transcript: AgiEntry[], turnGaps: number[], hopGaps: number[], setup: number[]): void {
  const firstPlay = transcript.find((e) => e.dir === 'cmd' && /^STREAM FILE/i.test(e.line));
  if (firstPlay) setup.push(firstPlay.atMs);
  let lastCmd = '';
  let replyAt = -1;
  let afterRecord = -1;
  for (const e of transcript) {
    if (e.dir === 'cmd') {
      if (replyAt >= 0) hopGaps.push(e.atMs - replyAt);
      if (afterRecord >= 0 && /^STREAM FILE/i.test(e.line)) {
        turnGaps.push(e.atMs - afterRecord);
        afterRecord = -1;
      }
      lastCmd = e.line;
      replyAt = -1;
    } else if (e.dir === 'reply') {
      replyAt = e.atMs;
      if (/^RECORD FILE/i.test(lastCmd) && !/\(hangup\)/.test(e.line)) afterRecord = e.atMs;
    }
  }
}

/** One N in this process: start everything, run the campaign, measure, check, stop. */
async function scenario(n: number, dbUrl: string | undefined): Promise<Row> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-bench-calls-'));
  const [port, agiPort, mqttPort] = [await freePort(), await freePort(), await freePort()];
  const env = process.env;
  Object.assign(env, {
    DATA_DIR: dir,
    PORT: String(port),
    AGI_PORT: String(agiPort),
    MQTT_PORT: String(mqttPort),
    TTS_ENGINE: 'sim',
    STT_ENGINE: 'sim',
    LLM_ENGINE: 'scripted',
    LOG_LEVEL: 'warn',
    AI_DIALER_SIMULATED: '1',
  });
  delete env.MQTT_URL;
  // BENCH_CALLS_FLOW: another flow file to measure (a copy is used; default: the shipped flow).
  if (process.env.BENCH_CALLS_FLOW) {
    env.FLOW_FILE = path.join(dir, 'flows.json');
    fs.copyFileSync(process.env.BENCH_CALLS_FLOW, env.FLOW_FILE);
  } else delete env.FLOW_FILE;
  delete env.API_TOKEN;
  if (dbUrl) env.DATABASE_URL = dbUrl;
  else delete env.DATABASE_URL;

  // The far end: our own simulator (so the bench sets the personas and sees every AGI transcript).
  const agiClient = await import('../../src/sim/agi-client');
  const turnGaps: number[] = [];
  const hopGaps: number[] = [];
  const setupMs: number[] = [];
  const origRun = agiClient.runAgiCall;
  agiClient.runAgiCall = (o) =>
    origRun(o).then((r) => {
      gaps(r.transcript, turnGaps, hopGaps, setupMs);
      if (process.env.BENCH_CALLS_DEBUG && turnGaps.length <= 3)
        console.error(r.transcript.map((e) => `${e.atMs} ${e.dir} ${e.line}`).join('\n'));
      return r;
    });
  const { startSimulator } = await import('../../src/sim/index');
  const pause = HOLD_PAUSE_MS;
  const sim = await startSimulator({
    host: '127.0.0.1',
    port: 0,
    agiHost: '127.0.0.1',
    agiPort,
    app: 'ai-dialer',
    recordingsRoot: path.join(dir, 'recordings'),
    defaultPersona: () => ({
      name: 'bench talker',
      dial: { behaviour: 'answer', ringMs: 50 },
      utterances: [
        { text: 'Let me check my calendar first.', pauseMs: pause },
        { text: 'Yes, that works for me.', pauseMs: pause },
        { text: 'No, thank you.', pauseMs: pause },
      ],
    }),
  });
  Object.assign(env, { ARI_URL: sim.url, ARI_USERNAME: sim.username, ARI_PASSWORD: sim.password, ARI_APP: sim.app });

  const sqlStats = new Map<string, { n: number; ms: number }>();
  if (process.env.BENCH_CALLS_SQLSTAT) {
    const proto = Client.prototype as unknown as { query: (...a: unknown[]) => unknown };
    const q0 = proto.query;
    proto.query = function (this: unknown, ...a: unknown[]) {
      const text = typeof a[0] === 'string' ? a[0] : String((a[0] as { text?: string })?.text ?? '?');
      const k = text.replace(/\s+/g, ' ').slice(0, 90);
      const t = performance.now();
      const add = () => {
        const e = sqlStats.get(k) ?? { n: 0, ms: 0 };
        e.n++;
        e.ms += performance.now() - t;
        sqlStats.set(k, e);
      };
      const cb = a[a.length - 1];
      if (typeof cb === 'function') {
        a[a.length - 1] = (...x: unknown[]) => {
          add();
          return (cb as (...y: unknown[]) => unknown)(...x);
        };
      }
      const r = q0.apply(this, a);
      if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(add, add);
      return r;
    };
  }
  const { startRuntime } = await import('../../src/runtime/main');
  const { acquireDb, releaseDb } = await import('../../src/store/db');
  const { storeOptionsFromEnv } = await import('../../src/runtime/env');
  const { activeSessionCount } = await import('../../src/agi/registry');
  const rt = await startRuntime({ env, logLevel: 'warn' });
  // BENCH_CALLS_HOPS=1: where a message's time goes inside the flow (Node-RED message hooks).
  const hops = new Map<string, number[]>();
  if (process.env.BENCH_CALLS_HOPS) {
    type NodeRef = { node?: { name?: string; type?: string } };
    type HookEvent = { msg?: { _msgid?: string }; destination?: NodeRef; node?: NodeRef };
    const RED = (await import('node-red')).default as unknown as {
      hooks: { add(name: string, fn: (e: HookEvent) => void): void };
    };
    const last = new Map<string, { at: number; what: string }>();
    const note = (id: string, what: string) => {
      const now = performance.now();
      const prev = last.get(id);
      if (prev) {
        const k = `${prev.what} -> ${what}`;
        const a = hops.get(k) ?? [];
        a.push(now - prev.at);
        hops.set(k, a);
      }
      last.set(id, { at: now, what });
    };
    RED.hooks.add('onReceive.bench', (e) =>
      note(String(e.msg?._msgid), `in:${e.destination?.node?.name || e.destination?.node?.type}`),
    );
    RED.hooks.add('onComplete.bench', (e) =>
      note(String(e.msg?._msgid), `done:${e.node?.node?.name || e.node?.node?.type}`),
    );
  }
  const storeOpts = storeOptionsFromEnv(env);
  const db = await acquireDb(storeOpts);
  const base = `http://127.0.0.1:${port}`;
  /** The PostgreSQL pool (pg-pool) behind the shared store, to sample how many queries wait for a connection. */
  const pool = (db as unknown as { pool?: { waitingCount: number; options: { max: number } } }).pool;
  // BENCH_CALLS_POOL: try another pool size (pg-pool reads options.max on every checkout).
  if (pool && process.env.BENCH_CALLS_POOL) pool.options.max = Number(process.env.BENCH_CALLS_POOL);
  try {
    const c = await db.query<{ id: number }>(
      `insert into campaigns (name, timezone, window_start, window_end, max_concurrent, calls_per_second, max_attempts, settings)
       values ('bench calls', 'America/New_York', '00:00', '23:59:59', $1, $2, 1, '{}') returning id`,
      [n, CPS],
    );
    const cid = c.rows[0].id;
    await db.query(`insert into phone_numbers (campaign_id, number, label) values ($1, '+12125559000', 'bench line')`, [
      cid,
    ]);
    await db.query(
      `insert into contacts (campaign_id, phone, name, timezone, timezone_source)
       select $1, '+1212' || (2000000 + g)::text, 'Contact ' || g, 'America/New_York', 'number' from generate_series(1, $2::int) g`,
      [cid, n],
    );

    // Wait until the flow's queue answers the API (deployed), then start the campaign.
    await until(
      async () => {
        const r = await fetch(`${base}/api/v1/calls/automated/status?campaignId=${cid}`).catch(() => undefined);
        if (!r) return false;
        const j = (await r.json().catch(() => ({}))) as { engineAvailable?: boolean };
        return r.ok && j.engineAvailable === true;
      },
      30_000,
      'the flow to be deployed',
    );

    (global as { gc?: () => void }).gc?.();
    const mem0 = process.memoryUsage();
    const cpu0 = process.cpuUsage();
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const t0 = Date.now();
    let peak = 0;
    let peakRss = mem0.rss;
    let peakHeap = mem0.heapUsed;
    let peakAt = 0;
    let peakDbWaiting = 0;
    const sampler = setInterval(() => {
      const live = activeSessionCount();
      const m = process.memoryUsage();
      if (live > peak) {
        peak = live;
        peakAt = Date.now() - t0;
      }
      if (m.rss > peakRss) peakRss = m.rss;
      if (pool && pool.waitingCount > peakDbWaiting) peakDbWaiting = pool.waitingCount;
      if (m.heapUsed > peakHeap) peakHeap = m.heapUsed;
    }, 100);
    const started = await fetch(`${base}/api/v1/calls/automated/start`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ campaignId: cid }),
    });
    if (!started.ok) throw new Error(`bench: start failed: ${started.status} ${await started.text()}`);

    const holdS = (4 * HOLD_PAUSE_MS) / 1000;
    await until(
      async () => {
        const r = await db.query<{ open: number }>(
          `select count(*)::int as open from contacts where campaign_id = $1 and status in ('pending','in_call')`,
          [cid],
        );
        return r.rows[0].open === 0;
      },
      Math.max(120_000, (n / CPS + holdS * 4) * 1000),
      'every contact to be done',
      500,
    );
    const doneS = (Date.now() - t0) / 1000;
    // Everything after the last call: sessions and channels released.
    await until(
      () => activeSessionCount() === 0 && sim.channels().length === 0,
      20_000,
      'sessions and channels to be released',
      100,
    ).catch(() => undefined);
    clearInterval(sampler);
    const cpu = process.cpuUsage(cpu0);
    lag.disable();

    const calls = await db.query<{ contact_id: number; n: number; completed: number; turns_ok: number }>(
      `select k.id as contact_id, count(c.id)::int as n,
              count(c.id) filter (where c.status = 'completed')::int as completed,
              count(c.id) filter (where (select count(*) from call_turns t where t.call_id = c.id and t.user_text is not null) >= 3)::int as turns_ok
         from contacts k left join calls c on c.contact_id = k.id
        where k.campaign_id = $1 group by k.id`,
      [cid],
    );
    let lost = 0;
    let dup = 0;
    let notCompleted = 0;
    let shortCalls = 0;
    for (const r of calls.rows) {
      if (r.n === 0) lost++;
      if (r.n > 1) dup += r.n - 1;
      if (r.n > 0 && r.completed !== r.n) notCompleted++;
      if (r.n > 0 && r.turns_ok !== r.n) shortCalls++;
    }
    if (shortCalls + notCompleted > 0) {
      // Say why: each odd call's status, outcome, reason and what was said.
      const odd = await db.query(
        `select c.id, c.status, c.outcome, c.reason, (select string_agg(coalesce(t.user_text, '-') || ' / ' || coalesce(t.bot_text, '-') || coalesce(' !' || t.error, ''), ' | ' order by t.seq)
            from call_turns t where t.call_id = c.id) as turns
           from calls c where c.campaign_id = $1 and (c.status <> 'completed'
             or (select count(*) from call_turns t where t.call_id = c.id and t.user_text is not null) < 3) order by c.id limit 5`,
        [cid],
      );
      for (const r of odd.rows) console.error('bench calls: odd call', JSON.stringify(r));
    }
    const turns = await db.query<{ eng: number }>(
      `select coalesce(t.stt_ms, 0) + coalesce(t.llm_ms, 0) + coalesce(t.tts_ms, 0) as eng
         from call_turns t join calls c on c.id = t.call_id where c.campaign_id = $1 and t.user_text is not null`,
      [cid],
    );
    const eng = turns.rows.map((r) => Number(r.eng)).sort((a, b) => a - b);
    turnGaps.sort((a, b) => a - b);
    hopGaps.sort((a, b) => a - b);
    setupMs.sort((a, b) => a - b);
    if (hops.size) {
      for (const [k, a] of [...hops]
        .sort((x, y) => y[1].reduce((p, q) => p + q, 0) - x[1].reduce((p, q) => p + q, 0))
        .slice(0, 25)) {
        a.sort((x, y) => x - y);
        console.error(
          String(a.length).padStart(6),
          `p50 ${pct(a, 50).toFixed(1)}`.padStart(10),
          `p99 ${pct(a, 99).toFixed(1)}`.padStart(11),
          k,
        );
      }
    }
    if (sqlStats.size)
      for (const [k, e] of [...sqlStats].sort((a, b) => b[1].n - a[1].n).slice(0, 30))
        console.error(String(e.n).padStart(7), (e.ms / e.n).toFixed(1).padStart(7), k);
    const leftSessions = activeSessionCount();
    const leftChannels = sim.channels().length;
    const cpuS = (cpu.user + cpu.system) / 1e6;
    return {
      calls: n,
      db: dbUrl ? `postgres, pool ${pool?.options.max ?? '?'}` : 'pglite',
      peak_concurrent: peak,
      peak_at_s: Math.round(peakAt / 100) / 10,
      all_done_s: Math.round(doneS * 10) / 10,
      turns: turnGaps.length,
      turn_p50_ms: pct(turnGaps, 50),
      turn_p99_ms: pct(turnGaps, 99),
      turn_max_ms: turnGaps.length ? turnGaps[turnGaps.length - 1] : 0,
      p99_under_20ms: pct(turnGaps, 99) < P99_LIMIT_MS ? 'yes' : 'no',
      engines_p99_ms: pct(eng, 99),
      hop_p99_ms: pct(hopGaps, 99),
      loop_lag_p99_ms: Math.round(lag.percentile(99) / 1e6),
      greeting_p50_ms: pct(setupMs, 50),
      greeting_p99_ms: pct(setupMs, 99),
      db_waiting_peak: pool ? peakDbWaiting : '-',
      cpu_ms_per_call: Math.round((cpuS * 1000) / n),
      cpu_util: Math.round((cpuS / doneS) * 100) / 100,
      rss_peak_mb: Math.round(peakRss / 1048576),
      kb_per_call: Math.round((peakRss - mem0.rss) / Math.max(1, peak) / 1024),
      heap_kb_per_call: Math.round((peakHeap - mem0.heapUsed) / Math.max(1, peak) / 1024),
      lost,
      dup,
      not_completed: notCompleted,
      under_3_turns: shortCalls,
      leftover: leftSessions + leftChannels,
      load_1m: Math.round(os.loadavg()[0] * 10) / 10,
    };
  } finally {
    await releaseDb(storeOpts).catch(() => undefined);
    await rt.stop().catch(() => undefined);
    await sim.close().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A throwaway PostgreSQL database on DATABASE_URL's server, dropped afterwards. */
async function withDatabase<T>(fn: (url: string | undefined) => Promise<T>): Promise<T> {
  const url = process.env.DATABASE_URL;
  if (!url) return fn(undefined);
  const name = `aid_bench_calls_${process.pid}_${Date.now() % 1e6}`;
  const admin = new Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
    const u = new URL(url);
    u.pathname = `/${name}`;
    return await fn(u.toString());
  } finally {
    await admin.query(`drop database if exists ${name} with (force)`).catch(() => undefined);
    await admin.end();
  }
}

/** One N in a child process (fresh heap, its own CPU and RSS), result as JSON on stdout. */
function runChild(n: number): Promise<Row> {
  return new Promise((resolve, reject) => {
    const args = ['--scenario', String(n)];
    const execArgv = [
      '--expose-gc',
      '--max-old-space-size=4096',
      ...(process.env.BENCH_CALLS_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CALLS_PROF}`] : []),
    ];
    const child = fork(__filename, args, { execArgv, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith(MARK));
      if (line) resolve(JSON.parse(line.slice(MARK.length)) as Row);
      else reject(new Error(`bench calls: N=${n} child exited ${code} without a result\n${out.slice(-2000)}`));
    });
  });
}

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const n of SIZES) {
    let row: Row;
    try {
      row = await runChild(n);
    } catch (err) {
      rows.push({
        calls: n,
        error: (err as Error).message.split('\n')[0].slice(0, 160),
        load_1m: Math.round(os.loadavg()[0] * 10) / 10,
      });
      break;
    }
    rows.push(row);
    const bad = Number(row.lost) + Number(row.dup) + Number(row.not_completed) + Number(row.under_3_turns) > 0;
    if (Number(row.turn_p99_ms) > GIVE_UP_P99_MS || bad) break;
  }
  return rows;
}

if (require.main === module) {
  const i = process.argv.indexOf('--scenario');
  if (i >= 0) {
    const n = Number(process.argv[i + 1]);
    withDatabase((url) => scenario(n, url)).then(
      (row) => {
        process.stdout.write(MARK + JSON.stringify(row) + '\n', () => process.exit(0));
      },
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  } else {
    run().then(
      (rows) => console.table(rows),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  }
}
