/**
 * `p`'s value, or undefined once `ms` have passed without it (the timer is cleared either way, so a
 * bounded wait never holds the process open). `p` is not cancelled: a value it gives late is the caller's.
 */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(r, ms, undefined)))]);
  } finally {
    clearTimeout(timer);
  }
}
