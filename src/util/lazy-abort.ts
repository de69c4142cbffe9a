/**
 * An abort handle whose AbortController is made only when someone reads its signal. Every msg a node
 * handles may be aborted (the node closes), but most handlers never read the signal: creating an
 * AbortController and its signal costs ~10 us and several objects per msg, so it is made on first read
 * (already aborted when the handle was aborted before). No Node-RED import.
 */
export class LazyAbort {
  private ctl?: AbortController;
  private done = false;
  private why: unknown;

  /** The signal (made now on the first read). */
  get signal(): AbortSignal {
    if (!this.ctl) {
      this.ctl = new AbortController();
      if (this.done) this.ctl.abort(this.why);
    }
    return this.ctl.signal;
  }

  /** Whether abort() was called. */
  get aborted(): boolean {
    return this.done;
  }

  /** Abort: the signal (now or when first read) is aborted with `reason`. */
  abort(reason?: unknown): void {
    if (this.done) return;
    this.done = true;
    this.why = reason;
    this.ctl?.abort(reason);
  }
}
