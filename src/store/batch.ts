/**
 * One statement for many calls' requests of the same kind (group commit): what is asked while a statement
 * of this kind is in flight waits and goes together in the next one: one round trip, one commit, one
 * connection taken from the pool, for all of them. No timer: a request made while nothing is in flight goes
 * at the end of the current synchronous run (what that run asks goes with it), so a lone request waits for
 * nothing but its own statement.
 *
 * A statement the database refuses for anything but being unreachable is sent again request by request
 * (`alone`), so one bad request (a value the database will not take) fails alone, as it would have without
 * the batching. TurnBatcher (outbox.ts) is the same idea for turn writes, with urgent / background order.
 * No Node-RED import.
 */
interface Waiter<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

export interface StatementBatcherOptions<I, O> {
  /** Statements in flight at once (default 1): only what arrives while all are busy waits, and goes together. */
  maxInFlight?: number;
  maxBatch?: number;
  /** One request alone: after a refused statement, each of its requests is sent this way. */
  alone?: (item: I) => Promise<O>;
  /** Errors that fail the whole statement's requests without a retry one by one (the database unreachable). */
  failsAll?: (err: unknown) => boolean;
}

export class StatementBatcher<I, O> {
  private waiting: Array<Waiter<I, O>> = [];
  private inFlight = 0;
  private scheduled = false;
  /** Statements sent and requests answered through them (for tests and the bench). */
  readonly counts = { statements: 0, items: 0 };

  /**
   * `run` sends one statement for `items` and answers each, in order (`results[i]` for `items[i]`); a
   * rejection fails every request of that statement.
   */
  private readonly maxInFlight: number;
  private readonly maxBatch: number;

  constructor(
    private readonly run: (items: I[]) => Promise<O[]>,
    private readonly opts: StatementBatcherOptions<I, O> = {},
  ) {
    this.maxInFlight = opts.maxInFlight ?? 1;
    this.maxBatch = opts.maxBatch ?? 500;
  }

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.waiting.length) {
      const batch = this.waiting.splice(0, this.maxBatch);
      this.inFlight++;
      void this.send(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async send(batch: Array<Waiter<I, O>>): Promise<void> {
    this.counts.statements++;
    this.counts.items += batch.length;
    let results: O[];
    try {
      results = await this.run(batch.map((w) => w.item));
      if (!Array.isArray(results) || results.length !== batch.length)
        throw new Error(`a statement for ${batch.length} requests answered ${describe(results)}`);
    } catch (err) {
      const alone = this.opts.alone;
      if (!alone || batch.length === 1 || this.opts.failsAll?.(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
      await Promise.all(batch.map((w) => alone(w.item).then(w.resolve, w.reject)));
      return;
    }
    batch.forEach((w, i) => w.resolve(results[i]));
  }
}

function describe(results: unknown): string {
  return Array.isArray(results) ? `${results.length} results` : typeof results;
}
