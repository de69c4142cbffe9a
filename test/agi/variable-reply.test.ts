/**
 * GET VARIABLE replies are answered straight from the read buffer (issue #17: no string per reply line).
 * These pin what that fast path must keep: the value up to the last ')', CRLF, a reply split over two
 * reads, a late reply to a timed-out command never answering the next one, and a HANGUP right behind a
 * reply failing the queue. Real sockets; the test plays Asterisk and decides how the bytes are chunked.
 */
import { StageError } from '../../src/util/errors';
import { waitFor } from '../helpers/wait';
import { connectFarAgi } from '../helpers/far-agi';

const connect = connectFarAgi;

test('values: up to the last parenthesis, empty, unset, CRLF', async () => {
  const far = await connect();
  try {
    const s = far.session;
    const cases: Array<[string, string | undefined]> = [
      ['200 result=1 (a (b) c)\n', 'a (b) c'],
      ['200 result=1 ()\n', ''],
      ['200 result=0\n', undefined],
      ['200 result=1 (x)\r\n', 'x'],
      ['200 result=1 (  spaced  )\n', '  spaced  '],
    ];
    for (const [i, [raw, want]] of cases.entries()) {
      const p = s.getVariable('V');
      await waitFor(() => far.lines.length === i + 1, 5000, 'GET VARIABLE written');
      expect(far.lines[i]).toBe('GET VARIABLE "V"');
      far.send(raw);
      await expect(p).resolves.toBe(want);
    }
  } finally {
    await far.close();
  }
});

test('a reply split over two reads', async () => {
  const far = await connect();
  try {
    const p = far.session.getVariable('CALL_ID');
    await waitFor(() => far.lines.length === 1, 5000, 'GET VARIABLE written');
    far.send('200 result=1 (he');
    // the first half is read (and kept) before the rest arrives
    await waitFor(() => (far.session as unknown as { buf: string }).buf.length > 0, 5000, 'first half read');
    far.send('llo)\n');
    await expect(p).resolves.toBe('hello');
  } finally {
    await far.close();
  }
});

test("a late reply to a timed-out GET VARIABLE is dropped, not taken as the next one's", async () => {
  const far = await connect({ commandTimeoutMs: 150 });
  try {
    const s = far.session;
    const late: string[] = [];
    s.on('lateReply', (raw: string) => late.push(raw));
    const first = s.getVariable('A');
    await expect(first).rejects.toMatchObject({ kind: 'timeout' });
    const second = s.getVariable('B');
    await waitFor(() => far.lines.length === 2, 5000, 'second GET VARIABLE written');
    far.send('200 result=1 (for A)\n200 result=1 (for B)\n'); // both in one read
    await expect(second).resolves.toBe('for B');
    expect(late).toEqual(['200 result=1 (for A)']);
  } finally {
    await far.close();
  }
});

test('a HANGUP right behind a reply: the reply answers, the queued command fails and is never written', async () => {
  const far = await connect();
  try {
    const s = far.session;
    const a = s.getVariable('A');
    const b = s.getVariable('B'); // queued behind A
    await waitFor(() => far.lines.length === 1, 5000, 'first GET VARIABLE written');
    far.send('200 result=1 (a)\nHANGUP\n');
    await expect(a).resolves.toBe('a');
    const err = await b.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StageError);
    expect((err as StageError).kind).toBe('hangup');
    expect(s.callerHungUp).toBe(true);
    expect(far.lines).toEqual(['GET VARIABLE "A"']);
  } finally {
    await far.close();
  }
});
