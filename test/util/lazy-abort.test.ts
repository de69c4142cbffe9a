import { LazyAbort } from '../../src/util/lazy-abort';

describe('LazyAbort', () => {
  test('a signal read before the abort fires abort once, with the reason', () => {
    const a = new LazyAbort();
    const s = a.signal;
    expect(a.signal).toBe(s); // one controller
    const seen: unknown[] = [];
    s.addEventListener('abort', () => seen.push(s.reason));
    expect(s.aborted).toBe(false);
    a.abort('closing');
    a.abort('again');
    expect(seen).toEqual(['closing']);
    expect(a.aborted).toBe(true);
  });

  test('a signal first read after the abort is already aborted, with the reason', () => {
    const a = new LazyAbort();
    expect(a.aborted).toBe(false);
    a.abort(new Error('node removed'));
    const s = a.signal;
    expect(s.aborted).toBe(true);
    expect((s.reason as Error).message).toBe('node removed');
  });

  test('abort without a reason gives the standard AbortError, read before or after', () => {
    const before = new LazyAbort();
    const s = before.signal;
    before.abort();
    const after = new LazyAbort();
    after.abort();
    for (const sig of [s, after.signal]) {
      expect(sig.aborted).toBe(true);
      expect((sig.reason as Error).name).toBe('AbortError');
    }
  });
});
