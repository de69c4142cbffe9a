/**
 * GET VARIABLE replies are answered straight from the read buffer (issue #17: no string per reply line).
 * These pin what that fast path must keep: the value up to the last ')', CRLF, a reply split over two
 * reads, a late reply to a timed-out command never answering the next one, and a HANGUP right behind a
 * reply failing the queue. Real sockets; the test plays Asterisk and decides how the bytes are chunked.
 */
import net from 'net';
import { StageError } from '../../src/util/errors';
import { FastAgiSession } from '../../src/agi/session';
import { waitFor } from '../helpers/wait';
import { connectFarAgi } from '../helpers/far-agi';

const connect = connectFarAgi;

/** Bytes of an unfinished line the session holds (it reads bytes, and keeps a line's start until its end comes). */
function unfinished(s: FastAgiSession): number {
  return (s as unknown as { rest?: Buffer }).rest?.length ?? 0;
}

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
      ['200 result=1 (né)\n', 'né'],
      ['200 result=1 (12345678)\n', '12345678'],
      ['200 result=1 (123456789)\n', '123456789'],
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
    await waitFor(() => unfinished(far.session) > 0, 5000, 'first half read');
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

test('a read that starts like a GET VARIABLE reply and ends in ")\\n" but holds two lines', async () => {
  // the reply is the first line only; the second is a line of its own (here one nobody asked for)
  const far = await connect();
  try {
    const s = far.session;
    const unexpected: string[] = [];
    s.on('unexpected', (raw: string) => unexpected.push(raw));
    const a = s.getVariable('A');
    await waitFor(() => far.lines.length === 1, 5000, 'GET VARIABLE written');
    far.send('200 result=1 (a (x)\r\n200 result=1 (b)\n');
    await expect(a).resolves.toBe('a (x');
    await waitFor(() => unexpected.length === 1, 5000, 'the second line');
    expect(unexpected).toEqual(['200 result=1 (b)']);
    const b = s.getVariable('B'); // the session goes on
    await waitFor(() => far.lines.length === 2, 5000, 'second GET VARIABLE written');
    far.send('200 result=1 (b)\n');
    await expect(b).resolves.toBe('b');
  } finally {
    await far.close();
  }
});

test('a GET VARIABLE reply longer than maxLineLength in one read is a protocol error', async () => {
  const far = await connect({ maxLineLength: 40 });
  try {
    const s = far.session;
    const errors: Error[] = [];
    s.on('protocolError', (e: Error) => errors.push(e));
    const ok = s.getVariable('A');
    await waitFor(() => far.lines.length === 1, 5000, 'GET VARIABLE written');
    far.send(`200 result=1 (${'v'.repeat(25)})\r\n`); // 40 bytes without its CRLF: the longest line allowed
    await expect(ok).resolves.toBe('v'.repeat(25));
    const p = s.getVariable('B');
    await waitFor(() => far.lines.length === 2, 5000, 'second GET VARIABLE written');
    far.send(`200 result=1 (${'v'.repeat(26)})\n`); // 41 bytes
    await expect(p).rejects.toMatchObject({ kind: 'bad_response' });
    expect(errors.map((e) => e.message)).toEqual(['agi: line longer than 40 bytes']);
    expect(s.closed).toBe(true);
  } finally {
    await far.close();
  }
});

test('UTF-8: a character split between two reads, in a GET VARIABLE value and in another reply', async () => {
  const far = await connect();
  try {
    const s = far.session;
    const p = s.getVariable('NAME');
    await waitFor(() => far.lines.length === 1, 5000, 'GET VARIABLE written');
    const reply = Buffer.from('200 result=1 (José Müller)\n', 'utf8');
    const cut = reply.indexOf(0xa9); // the second byte of é
    far.send(reply.subarray(0, cut));
    await waitFor(() => unfinished(s) > 0, 5000, 'first part read');
    far.send(reply.subarray(cut));
    await expect(p).resolves.toBe('José Müller');

    const q = s.run('VERBOSE', ['x', 1]);
    await waitFor(() => far.lines.length === 2, 5000, 'VERBOSE written');
    const other = Buffer.from('200 result=1 (日本)\n', 'utf8');
    far.send(other.subarray(0, 15)); // inside 日 (bytes 14-16)
    await waitFor(() => unfinished(s) > 0, 5000, 'first part read');
    far.send(other.subarray(15));
    await expect(q).resolves.toMatchObject({ code: 200, result: 1, data: '日本' });
  } finally {
    await far.close();
  }
});

test('UTF-8: an environment value whose character is split between two reads', async () => {
  let session: FastAgiSession | undefined;
  const server = net.createServer((sock) => {
    session = new FastAgiSession(sock);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  try {
    await new Promise<void>((r) => client.once('connect', () => r()));
    const env = Buffer.from('agi_network: yes\nagi_calleridname: José\nagi_uniqueid: 1.1\n\n', 'utf8');
    const cut = env.indexOf(0xa9);
    client.write(env.subarray(0, cut));
    await waitFor(() => session !== undefined && unfinished(session) > 0, 5000, 'first part read');
    client.write(env.subarray(cut));
    await waitFor(() => session?.ready ?? false, 5000, 'the environment block');
    expect(session!.env.calleridname).toBe('José');
    expect(session!.env.uniqueid).toBe('1.1');
  } finally {
    client.destroy();
    session?.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
