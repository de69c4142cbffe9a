/**
 * The session's command clock is read once per stamp period for all sessions (not twice per command):
 * a dispatch or a reply is stamped by a process-wide timer at most STAMP_MS (20) after it happened. These
 * pin the bounds that follow: a shared-timer timeout is never early and at most a stamp period (plus the
 * event loop's lag) late, also when the timeout is shorter than the stamp period; the idle time is never
 * longer than the real silence since the last reply, and grows once stamped. Real sockets.
 */
import { connectFarAgi } from '../helpers/far-agi';
import { waitFor } from '../helpers/wait';

const SLACK_MS = 250; // the stamp period (20 ms) plus a loaded machine's event loop lag

test.each([5, 120])('a command with no reply times out no earlier than %i ms, and soon after', async (timeoutMs) => {
  const far = await connectFarAgi({ commandTimeoutMs: timeoutMs });
  try {
    const t0 = performance.now();
    const p = far.session.getVariable('B');
    const err = await p.catch((e: unknown) => e);
    const took = performance.now() - t0;
    expect(err).toMatchObject({ kind: 'timeout' });
    expect(took).toBeGreaterThanOrEqual(timeoutMs - 1); // timer granularity: Node rounds to whole ms
    expect(took).toBeLessThan(timeoutMs + SLACK_MS);
  } finally {
    await far.close();
  }
});

test('idle time: never longer than the silence since the last reply, and it grows once stamped', async () => {
  const far = await connectFarAgi();
  try {
    const s = far.session;
    const p = s.getVariable('A');
    expect(s.idleMs).toBe(0); // a command in flight
    await waitFor(() => far.lines.length === 1, 5000, 'GET VARIABLE written');
    far.send('200 result=1 (a)\n');
    await expect(p).resolves.toBe('a');
    const answered = performance.now();
    expect(s.idleMs).toBeLessThanOrEqual(performance.now() - answered + 1);
    await new Promise((r) => setTimeout(r, 150));
    const idle = s.idleMs;
    expect(idle).toBeLessThanOrEqual(performance.now() - answered + 1);
    expect(idle).toBeGreaterThanOrEqual(150 - SLACK_MS > 0 ? 150 - SLACK_MS : 1);
  } finally {
    await far.close();
  }
});

test('the stamp list is reused from one period to the next: a session is stamped for its own activity only', async () => {
  // three sessions answered in one stamp period, then only the first one in a later period: the other two
  // (still in the list's slots from the first period) must keep their first stamp
  const fars = [await connectFarAgi(), await connectFarAgi(), await connectFarAgi()];
  try {
    const answer = async (i: number, n: number) => {
      const p = fars[i].session.getVariable('A');
      await waitFor(() => fars[i].lines.length === n, 5000, 'GET VARIABLE written');
      fars[i].send('200 result=1 (a)\n');
      await expect(p).resolves.toBe('a');
    };
    await Promise.all([answer(0, 1), answer(1, 1), answer(2, 1)]);
    await new Promise((r) => setTimeout(r, 150));
    await answer(0, 2);
    await new Promise((r) => setTimeout(r, 150));
    const [a, b, c] = fars.map((f) => f.session.idleMs);
    expect(a).toBeGreaterThan(0); // stamped
    expect(b).toBeGreaterThanOrEqual(a + 100);
    expect(c).toBeGreaterThanOrEqual(a + 100);
  } finally {
    for (const f of fars) await f.close();
  }
});
