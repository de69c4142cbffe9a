/**
 * One 20 ms clock for every playback of the process: each tick hands every active source one frame's
 * turn. Ticks are scheduled against absolute times (start + n x 20 ms), so timer lateness does not
 * accumulate; a tick that comes more than a frame late gives sources the turns they missed (at most
 * a few), so a loaded event loop delays audio without stretching it. One timer for all calls costs
 * far less than a timer per call.
 */
import { performance } from 'perf_hooks';

export interface PacedSource {
  /** Send one frame; false when the source is done (it is then dropped). */
  tick(now: number): boolean;
}

const FRAME_MS = 20;
/** Most frames a late tick catches up per source. */
const MAX_CATCH_UP = 3;

export class Pacer {
  private readonly sources = new Set<PacedSource>();
  private timer?: NodeJS.Timeout;
  private t0 = 0;
  private n = 0;
  /** Lateness of each tick against its due time, ms (the last `jitterWindow`, for benches). */
  readonly lateness: number[] = [];
  jitterWindow = 0;

  get size(): number {
    return this.sources.size;
  }

  add(s: PacedSource): void {
    this.sources.add(s);
    if (!this.timer) {
      this.t0 = performance.now();
      this.n = 0;
      // the first frame goes out at once: a reply starts the moment its audio exists
      this.timer = setTimeout(this.onTick, 0);
    }
  }

  remove(s: PacedSource): void {
    this.sources.delete(s);
  }

  private readonly onTick = (): void => {
    const now = performance.now();
    const due = this.t0 + this.n * FRAME_MS;
    if (this.jitterWindow > 0) {
      this.lateness.push(now - due);
      if (this.lateness.length > this.jitterWindow) this.lateness.shift();
    }
    // how many frame slots have passed since the last tick (1 normally)
    let slots = 1;
    const late = now - due;
    if (late > FRAME_MS) slots = Math.min(MAX_CATCH_UP, 1 + Math.floor(late / FRAME_MS));
    for (const s of this.sources) {
      for (let i = 0; i < slots; i++) {
        if (!s.tick(now)) {
          this.sources.delete(s);
          break;
        }
      }
    }
    this.n += slots;
    // far behind (more than the catch-up allows): re-anchor instead of bursting
    if (now - (this.t0 + this.n * FRAME_MS) > FRAME_MS * MAX_CATCH_UP) {
      this.t0 = now;
      this.n = 1;
    }
    if (this.sources.size === 0) {
      this.timer = undefined;
      return;
    }
    this.timer = setTimeout(this.onTick, Math.max(0, this.t0 + this.n * FRAME_MS - performance.now()));
  };
}

/** The process's pacer. */
export const pacer = new Pacer();
