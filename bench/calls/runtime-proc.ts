/**
 * bench/calls: one dialer runtime (startRuntime: Node-RED with the shipped default flow, the store, the
 * embedded broker) in its own process, driven by bench/calls/index.ts over IPC:
 *   -> {type:'ready'}
 *   <- {type:'seed', n, cps}     -> {type:'seeded', cid}          (runtime 0 only)
 *   <- {type:'arm', cid}         -> {type:'armed'}                (the flow answers the API for the campaign)
 *   <- {type:'start', cid}       -> {type:'started'}              (baselines taken, POST .../start)
 *   <- {type:'wait', cid}        -> {type:'done', s}              (runtime 0: every contact done)
 *   <- {type:'finish', cid, check} -> {type:'result', ...}        (sessions drained, CPU, memory, correctness)
 *   <- {type:'exit'}
 * The environment comes from the parent (ports, DATABASE_URL or DATA_DIR, ARI_*, AGI_ADVERTISE, WORKER_NAME).
 */
import { monitorEventLoopDelay } from 'perf_hooks';
import type { Db } from '../../src/store/db';

type Msg = { type: string; n?: number; cps?: number; cid?: number; check?: boolean };

function send(m: Record<string, unknown>): void {
  process.send!(m);
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string, everyMs = 200): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`bench: timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Queries sent to PostgreSQL (every `pg` Client query: pool queries are callback style, transactions
 * promise style), counted from the 'start' message: count and time from send to reply (the server's
 * time plus the wire, no pool wait). Always counted (a few µs a query); BENCH_CALLS_SQLSTAT=1 also prints
 * them by statement to stderr at finish.
 */
const sqlStats = new Map<string, { n: number; ms: number }>();
const sqlTotal = { n: 0, ms: 0 };
function countQueries(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const proto = (require('pg') as typeof import('pg')).Client.prototype as unknown as {
    query: (...a: unknown[]) => unknown;
  };
  const q0 = proto.query;
  proto.query = function (this: unknown, ...a: unknown[]) {
    const text = typeof a[0] === 'string' ? a[0] : String((a[0] as { text?: string })?.text ?? '?');
    const t = performance.now();
    const add = () => {
      const ms = performance.now() - t;
      sqlTotal.n++;
      sqlTotal.ms += ms;
      if (!process.env.BENCH_CALLS_SQLSTAT) return;
      const k = text.replace(/\s+/g, ' ').slice(0, 110);
      const e = sqlStats.get(k) ?? { n: 0, ms: 0 };
      e.n++;
      e.ms += ms;
      sqlStats.set(k, e);
    };
    const cb = a.length && typeof a[a.length - 1] === 'function' ? a.length - 1 : -1;
    if (cb >= 0) {
      const f = a[cb] as (...r: unknown[]) => unknown;
      a[cb] = (...r: unknown[]) => (add(), f(...r));
    }
    const r = q0.apply(this, a);
    if (cb < 0 && r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(add, add);
    return r;
  };
}

/**
 * The turn writes, timed in this process (BENCH_CALLS_VERBOSE=1 prints them at finish; `turnWrite*` always
 * go to the result row): `ahead` = a spoken turn's write-ahead as the flow waits for it (Outbox.writeWithin,
 * from the call to `stored`), `batched` = every plain turn write from TurnBatcher.write to its row (the
 * playback-timing rewrites included).
 */
const turnTimes = { ahead: [] as number[], batched: [] as number[], pool: [] as number[] };
/** The last write-ahead of each call: when it was asked for and when it was stored (performance.now()). */
const lastAhead = new Map<string, { at: number; stored: number }>();
async function timeTurnWrites(): Promise<{ counts: () => { statements: number; turns: number } }> {
  const { Outbox, TurnBatcher } = await import('../../src/store/outbox');
  const ww = Outbox.prototype.writeWithin;
  Outbox.prototype.writeWithin = function (this: InstanceType<typeof Outbox>, ...a: Parameters<typeof ww>) {
    const t = performance.now();
    const p = ww.apply(this, a);
    if (a[0].kind === 'turn') {
      const key = String(a[0].callId);
      void p.then(() => {
        const now = performance.now();
        turnTimes.ahead.push(now - t);
        lastAhead.set(key, { at: t, stored: now });
      });
    }
    return p;
  } as typeof ww;
  const bw = TurnBatcher.prototype.write;
  const batchers = new Set<InstanceType<typeof TurnBatcher>>();
  TurnBatcher.prototype.write = function (this: InstanceType<typeof TurnBatcher>, ...a: Parameters<typeof bw>) {
    batchers.add(this);
    const t = performance.now();
    const p = bw.apply(this, a);
    void p.then(
      () => turnTimes.batched.push(performance.now() - t),
      () => undefined,
    );
    return p;
  } as typeof bw;
  return {
    counts: () =>
      [...batchers].reduce(
        (a, b) => ({ statements: a.statements + b.counts.statements, turns: a.turns + b.counts.turns }),
        {
          statements: 0,
          turns: 0,
        },
      ),
  };
}

/**
 * Where a turn's time goes inside this runtime (BENCH_CALLS_VERBOSE=1): from the RECORD FILE reply (its promise
 * settled) to the answer's STREAM FILE, split at the turn's write-ahead: before it (the flow's hops, STT, LLM,
 * TTS), the write-ahead itself, and after it (the hops to the playback). One entry per turn with a write-ahead.
 */
const stages: Array<{ before: number; ahead: number; after: number; total: number }> = [];
async function timeTurnStages(): Promise<void> {
  const { FastAgiSession } = await import('../../src/agi/session');
  const P = FastAgiSession.prototype;
  const replied = new WeakMap<object, number>();
  const rf = P.recordFile;
  P.recordFile = function (this: InstanceType<typeof FastAgiSession>, ...a: Parameters<typeof rf>) {
    const p = rf.apply(this, a);
    void p.then(
      () => replied.set(this, performance.now()),
      () => undefined,
    );
    return p;
  } as typeof rf;
  const sf = P.streamFile;
  P.streamFile = function (this: InstanceType<typeof FastAgiSession>, ...a: Parameters<typeof sf>) {
    const t = replied.get(this);
    const w = this.callId !== undefined ? lastAhead.get(String(this.callId)) : undefined;
    if (t !== undefined && w !== undefined && w.at >= t) {
      const now = performance.now();
      stages.push({ before: w.at - t, ahead: w.stored - w.at, after: now - w.stored, total: now - t });
    }
    replied.delete(this);
    return sf.apply(this, a);
  } as typeof sf;
}

function stageReport(): string[] {
  const out = [
    `  turn inside the runtime ms, reply -> STREAM FILE: ${pcts(stages.map((x) => x.total))}`,
    `    reply -> write-ahead asked:  ${pcts(stages.map((x) => x.before))}`,
    `    write-ahead:                 ${pcts(stages.map((x) => x.ahead))}`,
    `    stored -> STREAM FILE:       ${pcts(stages.map((x) => x.after))}`,
  ];
  const slow = stages
    .slice()
    .sort((x, y) => y.total - x.total)
    .slice(0, Math.max(1, Math.ceil(stages.length / 100)));
  const mean = (f: (x: (typeof stages)[number]) => number) =>
    (slow.reduce((a, x) => a + f(x), 0) / slow.length).toFixed(1);
  out.push(
    `    the slowest 1% (${slow.length}), mean: total ${mean((x) => x.total)} = before ${mean((x) => x.before)} + write-ahead ${mean((x) => x.ahead)} + after ${mean((x) => x.after)}`,
  );
  return out;
}

function pcts(v: number[]): string {
  const s = v.slice().sort((a, b) => a - b);
  const at = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(1) : '-');
  return `n ${s.length} p50 ${at(0.5)} p90 ${at(0.9)} p99 ${at(0.99)} max ${s.length ? s[s.length - 1].toFixed(1) : '-'}`;
}

async function main(): Promise<void> {
  const env = process.env;
  countQueries();
  const turnWrites = await timeTurnWrites();
  if (process.env.BENCH_CALLS_VERBOSE) await timeTurnStages();
  const { startRuntime } = await import('../../src/runtime/main');
  const { acquireDb, releaseDb } = await import('../../src/store/db');
  const { storeOptionsFromEnv } = await import('../../src/runtime/env');
  const { activeSessionCount } = await import('../../src/agi/registry');
  const rt = await startRuntime({ env, logLevel: 'warn' });
  const storeOpts = storeOptionsFromEnv(env);
  const db: Db = await acquireDb(storeOpts);
  const base = `http://127.0.0.1:${env.PORT}`;
  /** The PostgreSQL pool (pg-pool) behind the shared store: how many queries wait for a connection. */
  const pool = (db as unknown as { pool?: { waitingCount: number; options: { max: number } } }).pool;
  // every query on the shared pool, from the call to its rows (its wait for a connection included)
  const dbq = db.query.bind(db);
  (db as { query: typeof db.query }).query = ((sql: string, params?: unknown[]) => {
    const t = performance.now();
    const p = dbq(sql, params);
    void p.then(
      () => turnTimes.pool.push(performance.now() - t),
      () => undefined,
    );
    return p;
  }) as typeof db.query;
  if (pool && env.BENCH_CALLS_POOL) pool.options.max = Number(env.BENCH_CALLS_POOL);

  let cpu0 = process.cpuUsage();
  let mem0 = process.memoryUsage();
  let t0 = Date.now();
  let peak = 0;
  let peakRss = 0;
  let peakHeap = 0;
  let peakDbWaiting = 0;
  let batch0 = { statements: 0, turns: 0 };
  let sampler: NodeJS.Timeout | undefined;
  const lag = monitorEventLoopDelay({ resolution: 10 });

  const handle = async (m: Msg): Promise<void> => {
    switch (m.type) {
      case 'seed': {
        const c = await db.query<{ id: number }>(
          `insert into campaigns (name, timezone, window_start, window_end, max_concurrent, calls_per_second, max_attempts, settings)
           values ('bench calls', 'America/New_York', '00:00', '23:59:59', $1, $2, 1, '{}') returning id`,
          [m.n, m.cps],
        );
        const cid = c.rows[0].id;
        await db.query(
          `insert into phone_numbers (campaign_id, number, label) values ($1, '+12125559000', 'bench line')`,
          [cid],
        );
        await db.query(
          `insert into contacts (campaign_id, phone, name, timezone, timezone_source)
           select $1, '+1212' || (2000000 + g)::text, 'Contact ' || g, 'America/New_York', 'number' from generate_series(1, $2::int) g`,
          [cid, m.n],
        );
        return send({ type: 'seeded', cid });
      }
      case 'arm':
        await until(
          async () => {
            const r = await fetch(`${base}/api/v1/calls/automated/status?campaignId=${m.cid}`).catch(() => undefined);
            if (!r) return false;
            const j = (await r.json().catch(() => ({}))) as { engineAvailable?: boolean };
            return r.ok && j.engineAvailable === true;
          },
          30_000,
          'the flow to be deployed',
        );
        return send({ type: 'armed' });
      case 'start': {
        (global as { gc?: () => void }).gc?.();
        mem0 = process.memoryUsage();
        peakRss = mem0.rss;
        peakHeap = mem0.heapUsed;
        cpu0 = process.cpuUsage();
        t0 = Date.now();
        sqlStats.clear();
        sqlTotal.n = 0;
        sqlTotal.ms = 0;
        turnTimes.ahead.length = 0;
        turnTimes.batched.length = 0;
        turnTimes.pool.length = 0;
        stages.length = 0;
        batch0 = turnWrites.counts();
        lag.enable();
        let ticks = 0;
        sampler = setInterval(() => {
          const live = activeSessionCount();
          const rss = process.memoryUsage.rss();
          if (live > peak) peak = live;
          if (rss > peakRss) peakRss = rss;
          // the full memoryUsage() walks the heap spaces: once a second
          if (++ticks % 10 === 0) peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
          if (pool && pool.waitingCount > peakDbWaiting) peakDbWaiting = pool.waitingCount;
        }, 100);
        const r = await fetch(`${base}/api/v1/calls/automated/start`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ campaignId: m.cid }),
        });
        if (!r.ok) throw new Error(`bench: start failed: ${r.status} ${await r.text()}`);
        return send({ type: 'started' });
      }
      case 'wait':
        await until(
          async () => {
            // a busy pool may time a query out: ask again at the next poll
            const r = await db
              .query<{ open: number }>(
                `select count(*)::int as open from contacts where campaign_id = $1 and status in ('pending','in_call')`,
                [m.cid],
              )
              .catch(() => undefined);
            return r?.rows[0].open === 0;
          },
          600_000,
          'every contact to be done',
          500,
        );
        return send({ type: 'done', s: (Date.now() - t0) / 1000 });
      case 'finish': {
        await until(() => activeSessionCount() === 0, 20_000, 'sessions to be released', 100).catch(() => undefined);
        if (sampler) clearInterval(sampler);
        lag.disable();
        const cpu = process.cpuUsage(cpu0);
        const row: Record<string, unknown> = {
          type: 'result',
          wallS: (Date.now() - t0) / 1000,
          peak,
          cpuMs: (cpu.user + cpu.system) / 1000,
          rssPeakMb: peakRss / 1048576,
          rssGrowth: peakRss - mem0.rss,
          heapGrowth: peakHeap - mem0.heapUsed,
          dbWaitingPeak: pool ? peakDbWaiting : -1,
          poolMax: pool?.options.max ?? 0,
          lagP99Ms: lag.percentile(99) / 1e6,
          leftSessions: activeSessionCount(),
          sqlN: sqlTotal.n,
          sqlMs: sqlTotal.ms,
        };
        const b = turnWrites.counts();
        const ahead = turnTimes.ahead.slice().sort((x, y) => x - y);
        row.turnWriteP50Ms = ahead.length ? ahead[Math.floor(ahead.length / 2)] : 0;
        row.turnWriteP99Ms = ahead.length ? ahead[Math.min(ahead.length - 1, Math.floor(ahead.length * 0.99))] : 0;
        row.turnStatements = b.statements - batch0.statements;
        row.turnRows = b.turns - batch0.turns;
        if (env.BENCH_CALLS_VERBOSE) {
          console.error(`  turn write-ahead ms (flow waits): ${pcts(turnTimes.ahead)}`);
          console.error(`  turn write, batcher ms (all):    ${pcts(turnTimes.batched)}`);
          console.error(`  pool query ms (queue included):  ${pcts(turnTimes.pool)}`);
          for (const l of stageReport()) console.error(l);
          console.error(
            `  turn statements ${row.turnStatements} for ${row.turnRows} turn writes; loop lag p50 ${(lag.percentile(50) / 1e6).toFixed(1)} p99 ${(lag.percentile(99) / 1e6).toFixed(1)} max ${(lag.max / 1e6).toFixed(1)} ms`,
          );
        }
        if (m.check) Object.assign(row, await check(db, m.cid as number));
        if (sqlStats.size) console.error('  count  mean ms  total ms  statement (from the start of the campaign)');
        for (const [k, e] of [...sqlStats].sort((a, b) => b[1].n - a[1].n).slice(0, 40))
          console.error(String(e.n).padStart(7), (e.ms / e.n).toFixed(1).padStart(8), e.ms.toFixed(0).padStart(9), k);
        return send(row);
      }
      case 'exit':
        await releaseDb(storeOpts).catch(() => undefined);
        await rt.stop().catch(() => undefined);
        process.exit(0);
    }
  };
  process.on('message', (m: Msg) => {
    handle(m).catch((err: unknown) => {
      console.error(err);
      send({ type: 'error', message: (err as Error).message });
    });
  });
  send({ type: 'ready' });
}

/** Every contact exactly one call, each `completed` with 3 caller turns; engine ms; calls per worker. */
async function check(db: Db, cid: number): Promise<Record<string, unknown>> {
  const calls = await db.query<{ n: number; completed: number; turns_ok: number }>(
    `select count(c.id)::int as n,
            count(c.id) filter (where c.status = 'completed')::int as completed,
            count(c.id) filter (where (select count(*) from call_turns t where t.call_id = c.id and t.user_text <> '') >= 3)::int as turns_ok
       from contacts k left join calls c on c.contact_id = k.id
      where k.campaign_id = $1 group by k.id`,
    [cid],
  );
  let lost = 0;
  let dup = 0;
  let notCompleted = 0;
  let short = 0;
  for (const r of calls.rows) {
    if (r.n === 0) lost++;
    if (r.n > 1) dup += r.n - 1;
    if (r.n > 0 && r.completed !== r.n) notCompleted++;
    if (r.n > 0 && r.turns_ok !== r.n) short++;
  }
  if (short + notCompleted > 0) {
    const odd = await db.query(
      `select c.id, c.status, c.outcome, c.reason from calls c where c.campaign_id = $1 and c.status <> 'completed' order by c.id limit 5`,
      [cid],
    );
    for (const r of odd.rows) console.error('bench calls: odd call', JSON.stringify(r));
  }
  const eng = (
    await db.query<{ eng: number }>(
      `select coalesce(t.stt_ms, 0) + coalesce(t.llm_ms, 0) + coalesce(t.tts_ms, 0) as eng
         from call_turns t join calls c on c.id = t.call_id where c.campaign_id = $1 and t.user_text <> ''`,
      [cid],
    )
  ).rows.map((r) => Number(r.eng));
  const workers = (
    await db.query<{ worker: string; n: number }>(
      `select coalesce(worker, '-') as worker, count(*)::int as n from calls where campaign_id = $1 group by 1 order by 1`,
      [cid],
    )
  ).rows.map((r) => r.n);
  return { lost, dup, notCompleted, short, eng, workers };
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
