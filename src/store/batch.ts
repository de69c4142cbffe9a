/**
 * One statement for many calls' requests of the same kind (group commit): what is asked while a statement
 * of this kind is in flight waits and goes together in the next one: one round trip, one commit, one
 * connection taken from the pool, for all of them. No timer: a request made while nothing is in flight goes
 * at the end of the current synchronous run (what that run asks goes with it), so a lone request waits for
 * nothing but its own statement.
 *
 * TurnBatcher (outbox.ts) is the same idea for turn writes, with urgent / background order and a retry of
 * a refused batch row by row; this is the plain form for statements that cannot fail for one row alone.
 * No Node-RED import.
 */
interface Waiter<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
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
  constructor(
    private readonly run: (items: I[]) => Promise<O[]>,
    private readonly maxInFlight = 1,
    private readonly maxBatch = 500,
  ) {}

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
    } catch (err) {
      for (const w of batch) w.reject(err);
      return;
    }
    batch.forEach((w, i) => w.resolve(results[i]));
  }
}
