/**
 * ARI benchmark: our client + call tracker against the simulator, loopback only.
 *
 *  For N concurrent calls (1,000 and 2,000; BENCH_QUICK=1: 500 and 1,000): originate all of them
 *  (at most 200 requests in flight), every callee answers after 200-700 ms, the tracker continues
 *  each one into a dialplan context that holds the call, the calls stay up together, then the
 *  callees hang up. Reported: originate requests/s and p50/p99 latency, time until every call is
 *  answered, peak live channels, events received/s, heap per live call (simulator + client +
 *  tracker in one process), and that every call got exactly one final outcome.
 */
import { startSimulator } from '../../src/sim/index';
import { AriConnection } from '../../src/ari/client';
import { CallTracker, type CallOutcome } from '../../src/ari/calls';

type Row = Record<string, string | number>;
const QUICK = process.env.BENCH_QUICK === '1';

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function scenario(n: number): Promise<Row> {
  const sim = await startSimulator({});
  const conn = new AriConnection({
    url: sim.url,
    username: sim.username,
    password: sim.password,
    app: 'bench',
    requestTimeoutMs: 30_000,
  });
  await conn.start();
  const tracker = new CallTracker(conn, { endpointTemplate: 'PJSIP/{phone}@trunk', agiContext: 'hold', sweepMs: 0 });
  let events = 0;
  conn.on('event', () => events++);
  const answered = new Set<string>();
  const finals = new Map<string, number>();
  tracker.on('outcome', (o: CallOutcome) => {
    if (o.outcome === 'answered') answered.add(String(o.callId));
    else finals.set(String(o.callId), (finals.get(String(o.callId)) ?? 0) + 1);
  });
  for (let i = 0; i < n; i++)
    sim.setPersona(`+1888${String(i).padStart(7, '0')}`, {
      dial: { behaviour: 'answer', ringMs: 200 + (i % 50) * 10 },
    });
  (global as { gc?: () => void }).gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const lat: number[] = [];
  const t0 = Date.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const s = performance.now();
      await tracker.originate({ id: `b${i}`, phone: `+1888${String(i).padStart(7, '0')}`, campaignId: 1 });
      lat.push(performance.now() - s);
    }
  };
  await Promise.all(Array.from({ length: 200 }, worker));
  const originateS = (Date.now() - t0) / 1000;
  const e0 = events;
  await until(() => answered.size === n, 60_000, 'all answered');
  const allAnsweredS = (Date.now() - t0) / 1000;
  const peak = sim.channels().length;
  (global as { gc?: () => void }).gc?.();
  const heapPerCall = (process.memoryUsage().heapUsed - heap0) / peak / 1024;
  const tEnd = Date.now();
  for (const c of sim.channels()) sim.sim.hangupFromCallee(String(c.id));
  await until(() => finals.size === n, 60_000, 'all outcomes');
  const eventsPerS = (events - e0) / ((Date.now() - t0) / 1000 - originateS || 1);
  const once = [...finals.values()].every((v) => v === 1);
  lat.sort((a, b) => a - b);
  await tracker.close({ hangup: false });
  await conn.close();
  await sim.close();
  return {
    calls: n,
    originate_per_s: Math.round(n / originateS),
    originate_p50_ms: pct(lat, 50),
    originate_p99_ms: pct(lat, 99),
    all_answered_s: allAnsweredS,
    peak_live_channels: peak,
    events_per_s: Math.round(eventsPerS),
    heap_per_call_kb: heapPerCall,
    hangup_to_all_outcomes_ms: Date.now() - tEnd,
    one_outcome_each: once && finals.size === n ? 'yes' : 'NO',
  };
}

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const n of QUICK ? [500, 1000] : [1000, 2000]) rows.push(await scenario(n));
  return rows;
}

if (require.main === module) {
  run().then(
    (rows) => {
      console.table(rows);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
