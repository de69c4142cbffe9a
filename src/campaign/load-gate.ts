/**
 * Live calls first: the runtime's own load, read by each dial pass (src/campaign/manager.ts). While the
 * runtime is busy, new calls wait so the conversations already up keep their pace:
 *  - its event loop was late by more than `maxLagMs` in the last window (`windowMs`; a timer due every 10 ms,
 *    how late it fired: everything the runtime does, turns and call set-up alike, waits that long), or
 *  - more queries wait for a database connection than the pool has connections.
 * A busy pass dials at most one call (a campaign always moves on, however loaded the machine) and the next
 * pass comes `holdMs` later; the campaign's calls per second stay its ceiling, never a floor.
 * No Node-RED import: the campaign-queue node builds one from its settings (DIAL_HOLD_LAG_MS).
 */
import { performance } from 'perf_hooks';
import { parseNumber } from '../util/config';

export interface LoadGateOptions {
  /** Event-loop delay (ms, the window's largest) above which new calls wait; 0: never for the loop. */
  maxLagMs: number;
  /** How long one reading of the event loop covers (default 100 ms). */
  windowMs?: number;
  /** The database pool's size and the queries waiting for a connection (PostgreSQL; absent on PGlite). */
  pool?: () => { size: number; waiting: number } | undefined;
  /** The event-loop delay of the window just ended (ms); default: a 10 ms timer's lateness. For tests. */
  lag?: () => number;
}

export interface LoadReading {
  busy: boolean;
  /** Why new calls wait (for the campaign's status), when busy. */
  reason?: string;
  /** The last window's largest event-loop delay, ms. */
  lagMs: number;
}

/** How often the event loop's lateness is sampled, ms. */
const TICK_MS = 10;
/** The sampling stops after this long without a reading, ms. */
const IDLE_MS = 1000;

/** Ms between two passes while the runtime is busy. */
export const HOLD_MS = 50;

/** DIAL_HOLD_LAG_MS: the event-loop delay (ms) above which new calls wait; default 20, 0 turns the gate off. */
export function holdLagMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = parseNumber(env.DIAL_HOLD_LAG_MS, { fallback: 20 });
  return v >= 0 ? v : 20; // a negative limit is nonsense, not "off"
}

export class LoadGate {
  private readonly windowMs: number;
  private readonly lag: () => number;
  private timer?: NodeJS.Timeout;
  private windowAt = Date.now();
  private lastLag = 0;
  /** Passes that found the runtime busy (for progress and tests). */
  held = 0;

  constructor(private readonly o: LoadGateOptions) {
    this.windowMs = o.windowMs ?? 100;
    if (o.lag) this.lag = o.lag;
    else {
      // a timer due every TICK_MS: how late it fires is how long everything else waited. It runs only while
      // someone reads (campaigns dialling): IDLE_MS without a reading and it stops; the next reading starts it
      // (that window reads 0 late). Unref'd: it keeps no process alive.
      let worst = 0;
      let due = 0;
      let readAt = 0;
      const tick = (): void => {
        const now = performance.now();
        worst = Math.max(worst, now - due);
        if (now - readAt > IDLE_MS) return void (this.timer = undefined);
        due = now + TICK_MS;
        this.timer = setTimeout(tick, TICK_MS);
        this.timer.unref();
      };
      this.lag = () => {
        const now = performance.now();
        readAt = now;
        if (!this.timer) {
          worst = 0;
          due = now + TICK_MS;
          this.timer = setTimeout(tick, TICK_MS);
          this.timer.unref();
          return 0;
        }
        // a timer still waiting counts too: the loop may be blocked right now
        const ms = Math.max(worst, now - due);
        worst = 0;
        return ms;
      };
      this.lag(); // sampling from the start
    }
  }

  /** The runtime's load now: a new reading of the event loop once per window. */
  read(now = Date.now()): LoadReading {
    if (now - this.windowAt >= this.windowMs) {
      this.lastLag = this.lag();
      this.windowAt = now;
    }
    const lagMs = Math.round(this.lastLag * 10) / 10;
    let reason: string | undefined;
    if (this.o.maxLagMs > 0 && this.lastLag > this.o.maxLagMs)
      reason = `the runtime is busy (event loop ${lagMs} ms late, limit ${this.o.maxLagMs} ms)`;
    else {
      const p = this.o.pool?.();
      if (p && p.waiting > p.size)
        reason = `the database is busy (${p.waiting} queries waiting for ${p.size} connections)`;
    }
    if (reason) this.held++;
    return reason ? { busy: true, reason, lagMs } : { busy: false, lagMs };
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** The gate a runtime's campaigns use: DIAL_HOLD_LAG_MS (default 20 ms), with the store's pool; 0: none. */
export function loadGateFor(
  db: { poolLoad?(): { size: number; waiting: number } },
  env: NodeJS.ProcessEnv = process.env,
): LoadGate | undefined {
  const maxLagMs = holdLagMs(env);
  if (maxLagMs <= 0) return undefined;
  return new LoadGate({ maxLagMs, pool: () => db.poolLoad?.() });
}
