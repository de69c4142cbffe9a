/**
 * The FastAGI server and session over real sockets, against a hand-driven fake Asterisk so every
 * byte on the wire is under the test's control.
 */
import net from 'net';
import { AgiServer, type Refusal } from '../../src/agi/server';
import type { FastAgiSession } from '../../src/agi/session';
import { getSession, activeSessionCount, sessionsByCallId } from '../../src/agi/registry';
import { formatEnv } from '../../src/agi/protocol';
import { StageError } from '../../src/util/errors';
import { waitFor } from '../helpers/wait';
import { ASTERISK_ENV_SAMPLE } from '../helpers/agi-env';

const ENV = formatEnv([
  ['network', 'yes'],
  ['network_script', 'dialer'],
  ['request', 'agi://127.0.0.1/dialer'],
  ['channel', 'PJSIP/trunk-00000001'],
  ['uniqueid', '1732486000.1'],
  ['callerid', '+12125550101'],
  ['context', 'ai-dialer'],
  ['extension', 's'],
  ['priority', '1'],
  ['enhanced', '0.0'],
]);

/** A raw client that collects every line the server sends. */
class FakeAsterisk {
  readonly socket: net.Socket;
  readonly lines: string[] = [];
  closed = false;
  private buf = '';
  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port });
    this.socket.setEncoding('utf8');
    this.socket.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 1);
      }
    });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => (this.closed = true));
  }
  send(s: string): void {
    this.socket.write(s);
  }
  line(n: number): Promise<string> {
    return waitFor(() => (this.lines.length > n ? this.lines[n] : undefined), 5000, `line ${n} from the server`, 5);
  }
  whenClosed(): Promise<true> {
    return waitFor(() => this.closed || undefined, 5000, 'the server to close the connection', 5);
  }
}

async function start(opts: ConstructorParameters<typeof AgiServer>[0] = {}) {
  const refusals: Refusal[] = [];
  const warnings: string[] = [];
  const server = new AgiServer({ port: 0, log: { info: () => undefined, warn: (m) => warnings.push(m) }, ...opts });
  const sessions: FastAgiSession[] = [];
  server.on('session', (s: FastAgiSession) => sessions.push(s));
  server.on('refused', (r: Refusal) => refusals.push(r));
  const { port } = await server.listen();
  return { server, port, sessions, refusals, warnings };
}

async function connected(port: number, env = ENV) {
  const a = new FakeAsterisk(port);
  a.send(env);
  return a;
}

describe('FastAGI session over a real socket', () => {
  let ctx: Awaited<ReturnType<typeof start>>;
  beforeEach(async () => {
    ctx = await start({ commandTimeoutMs: 300 });
  });
  afterEach(async () => {
    await ctx.server.close();
  });

  test('environment parsed, session registered, one command in flight at a time in FIFO order', async () => {
    const a = await connected(ctx.port);
    const s = await waitFor(() => ctx.sessions[0], 5000, 'session');
    expect(s.env.network).toBe('yes');
    expect(s.env.channel).toBe('PJSIP/trunk-00000001');
    expect(getSession(s.id)).toBe(s);
    const p1 = s.getVariable('A');
    const p2 = s.getVariable('B');
    const p3 = s.setVariable('C', 'x y "z"');
    expect(await a.line(0)).toBe('GET VARIABLE "A"');
    // Nothing else is written until the first reply arrives.
    await new Promise((r) => setImmediate(r));
    expect(a.lines.length).toBe(1);
    expect(s.pendingCount).toBe(3);
    a.send('200 result=1 (alpha)\n');
    expect(await a.line(1)).toBe('GET VARIABLE "B"');
    a.send('200 result=0\n');
    expect(await a.line(2)).toBe('SET VARIABLE "C" "x y \\"z\\""');
    a.send('200 result=1\n');
    await expect(p1).resolves.toBe('alpha');
    await expect(p2).resolves.toBeUndefined();
    await expect(p3).resolves.toMatchObject({ code: 200, result: 1 });
    s.callId = '77';
    const { registerSession } = await import('../../src/agi/registry');
    registerSession(s);
    expect(sessionsByCallId('77')).toEqual([s]);
    a.socket.end();
    await waitFor(() => getSession(s.id) === undefined || undefined, 5000, 'unregister on close');
    expect(sessionsByCallId('77')).toEqual([]);
  });

  test("environment block: in Asterisk's own order or not, the same keys, order and values, nothing inherited", async () => {
    const asteriskOrder: Array<[string, string]> = [...ASTERISK_ENV_SAMPLE];
    const blocks: Array<Array<[string, string]>> = [
      asteriskOrder,
      [...asteriskOrder, ['arg_1', 'a: b'], ['constructor', 'x'], ['__proto__', 'y']],
      // out of order, a key twice (the last wins), hostile names: an ordinary dictionary
      [asteriskOrder[1], asteriskOrder[0], ['channel', 'one'], ['toString', 'z'], ['channel', 'two']],
      // the order broken half-way
      [...asteriskOrder.slice(0, 5), ['arg_1', '1'], ...asteriskOrder.slice(5)],
    ];
    for (const pairs of blocks) {
      const a = await connected(ctx.port, formatEnv(pairs));
      const s = await waitFor(() => ctx.sessions.find((x) => !x.closed), 5000, 'session');
      const want = new Map(pairs);
      expect(Object.keys(s.env)).toEqual([...want.keys()]);
      expect({ ...s.env }).toEqual(Object.fromEntries(want));
      for (const k of ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf'])
        expect(k in s.env ? s.env[k] : undefined).toBe(want.get(k));
      expect(JSON.parse(JSON.stringify(s.env))).toEqual(Object.fromEntries(want));
      s.destroy();
      a.socket.destroy();
    }
  });

  test('injection attempts never reach the wire', async () => {
    const a = await connected(ctx.port);
    const s = await waitFor(() => ctx.sessions[0], 5000, 'session');
    await expect(s.verbose('hi\nHANGUP')).rejects.toMatchObject({ stage: 'agi', kind: 'invalid_input' });
    await expect(s.streamFile('/tmp/x\r\nEXEC System "reboot"')).rejects.toMatchObject({ kind: 'invalid_input' });
    await expect(s.recordFile({ path: '/tmp/rec\nHANGUP', maxMs: 1000 })).rejects.toMatchObject({
      kind: 'invalid_input',
    });
    await expect(s.recordFile({ path: '/tmp/rec.wav', maxMs: 1000 })).rejects.toMatchObject({ kind: 'invalid_input' });
    await expect(s.streamFile('/tmp/x', { escapeDigits: '1" HANGUP "' })).rejects.toMatchObject({
      kind: 'invalid_input',
    });
    await expect(s.command('NOOP\nHANGUP')).rejects.toMatchObject({ kind: 'invalid_input' });
    // A hostile but line-free text goes out as one quoted argument.
    const p = s.verbose('" ; HANGUP ; "', 1);
    expect(await a.line(0)).toBe('VERBOSE "\\" ; HANGUP ; \\"" "1"');
    a.send('200 result=1\n');
    await p;
    expect(a.lines).toHaveLength(1);
  });

  test('HANGUP during STREAM FILE: the playback reports where it stopped, later commands fail fast', async () => {
    const a = await connected(ctx.port);
    const s = await waitFor(() => ctx.sessions[0], 5000, 'session');
    let hangupEvents = 0;
    s.on('hangup', () => hangupEvents++);
    const play = s.streamFile('/var/lib/sounds/hello', { durationMs: 2000 });
    const queued = s.getVariable('AFTER');
    expect(await a.line(0)).toBe('STREAM FILE "/var/lib/sounds/hello" ""');
    a.send('200 result=-1 endpos=8160\nHANGUP\n');
    await expect(play).resolves.toEqual({ endpos: 8160, failed: false, hungUp: true });
    await expect(queued).rejects.toMatchObject({ stage: 'agi', kind: 'hangup' });
    expect(s.hungUp).toBe(true);
    expect(s.callerHungUp).toBe(true);
    expect(hangupEvents).toBe(1);
    await expect(s.answer()).rejects.toMatchObject({ kind: 'hangup' });
    await expect(s.hangup()).resolves.toBeUndefined(); // tolerant
    expect(a.lines).toHaveLength(1); // nothing written after the hangup
  });

  test('511 on a dead channel is a hangup error', async () => {
    const a = await connected(ctx.port);
    const s = await waitFor(() => ctx.sessions[0], 5000, 'session');
    const p = s.answer();
    await a.line(0);
    a.send('511 Command Not Permitted on a dead channel or intercept routine\n');
    await expect(p).rejects.toMatchObject({ kind: 'hangup' });
    expect(s.hungUp).toBe(true);
  });

  test('socket dropped mid RECORD FILE rejects the command and the queue with a network error', async () => {
    const a = await connected(ctx.port);
    const s = await waitFor(() => ctx.sessions[0], 5000, 'session');
    const rec = s.recordFile({ path: '/tmp/rec-1', maxMs: 10000, silenceSeconds: 2 });
    const next = s.getVariable('X');
    expect(await a.line(0)).toBe('RECORD FILE "/tmp/rec-1" "wav" "#" "10000" "0" "s=2"');
    a.socket.destroy();
    await expect(rec).rejects.toMatchObject({ stage: 'agi', kind: 'network' });
    await expect(next).rejects.toMatchObject({ kind: 'network' });
    await expect(s.getVariable('Y')).rejects.toMatchObject({ kind: 'network' });
  });

  test('RECORD FILE endings: silence (nonzero result), max, dtmf, hangup, writefile', async () => {
    const a = await connected(ctx.port);
    const s = await waitFor(() => ctx.sessions[0], 5000, 'session');
    const cases: Array<[string, object]> = [
      ['200 result=4711 (timeout) endpos=16000', { endedBy: 'silence_or_max', durationMs: 2000, hungUp: false }],
      ['200 result=0 (timeout) endpos=80000', { endedBy: 'silence_or_max', durationMs: 10000 }],
      ['200 result=35 (dtmf) endpos=800', { endedBy: 'dtmf', digit: '#', durationMs: 100 }],
      ['200 result=-1 (hangup) endpos=4000', { endedBy: 'hangup', hungUp: true, durationMs: 500 }],
    ];
    let n = 0;
    for (const [reply, want] of cases) {
      const p = s.recordFile({ path: '/tmp/r', maxMs: 10000, silenceSeconds: 2 });
      await a.line(n++);
      a.send(reply + '\n');
      await expect(p).resolves.toMatchObject({ file: '/tmp/r.wav', ...want });
    }
    const p = s.recordFile({ path: '/nope/r', maxMs: 1000 });
    await a.line(n++);
    a.send('200 result=-1 (writefile)\n');
    await expect(p).rejects.toMatchObject({ stage: 'record', kind: 'internal' });
  });

  test('a command that times out fails with a timeout error; its late reply is dropped, not shifted', async () => {
    const a = await connected(ctx.port);
    const s = await waitFor(() => ctx.sessions[0], 5000, 'session');
    const slow = s.getVariable('SLOW');
    const after = s.getVariable('NEXT');
    expect(await a.line(0)).toBe('GET VARIABLE "SLOW"');
    await expect(slow).rejects.toMatchObject({ stage: 'agi', kind: 'timeout' });
    // The next command went out after the timeout; the late reply to SLOW comes first.
    expect(await a.line(1)).toBe('GET VARIABLE "NEXT"');
    a.send('200 result=1 (late-slow)\n');
    a.send('200 result=1 (next-value)\n');
    await expect(after).resolves.toBe('next-value');
  });

  test('510 and the multi-line 520 usage reply are typed errors; the session goes on', async () => {
    const a = await connected(ctx.port);
    const s = await waitFor(() => ctx.sessions[0], 5000, 'session');
    const p1 = s.command('FROB');
    await a.line(0);
    a.send('510 Invalid or unknown command\n');
    await expect(p1).rejects.toMatchObject({ kind: 'bad_response', message: expect.stringContaining('510') });
    const p2 = s.command('GET VARIABLE');
    await a.line(1);
    a.send(
      '520-Invalid command syntax.  Proper usage follows:\nUsage: GET VARIABLE <variablename>\n  Returns 0 if variablename is not set.\n520 End of proper usage.\n',
    );
    await expect(p2).rejects.toMatchObject({ kind: 'bad_response', message: expect.stringContaining('520') });
    const p3 = s.getVariable('OK');
    await a.line(2);
    a.send('200 result=1 (fine)\n');
    await expect(p3).resolves.toBe('fine');
  });

  test('an unparseable reply fails that command only', async () => {
    const a = await connected(ctx.port);
    const s = await waitFor(() => ctx.sessions[0], 5000, 'session');
    const p = s.getVariable('X');
    await a.line(0);
    a.send('garbage from a confused peer\n');
    await expect(p).rejects.toMatchObject({ kind: 'bad_response' });
    const q = s.getVariable('Y');
    await a.line(1);
    a.send('200 result=1 (y)\r\n'); // CRLF tolerated
    await expect(q).resolves.toBe('y');
  });

  test('oversized reply line closes the session with a protocol error', async () => {
    const a = await connected(ctx.port);
    const s = await waitFor(() => ctx.sessions[0], 5000, 'session');
    const p = s.getVariable('BIG');
    await a.line(0);
    a.send('200 result=1 (' + 'x'.repeat(20000));
    await expect(p).rejects.toMatchObject({ kind: 'bad_response', message: expect.stringContaining('line longer') });
    await a.whenClosed();
  });
});

describe('FastAGI server hardening', () => {
  const servers: AgiServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });
  async function srv(opts: ConstructorParameters<typeof AgiServer>[0] = {}) {
    const c = await start(opts);
    servers.push(c.server);
    return c;
  }

  test('garbage on the port is refused, logged with the reason, and closed', async () => {
    const c = await srv();
    const a = new FakeAsterisk(c.port);
    a.send('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await a.whenClosed();
    expect(c.refusals[0]).toMatchObject({ reason: 'bad_env' });
    expect(c.warnings[0]).toMatch(/FastAGI refused 127\.0\.0\.1: bad_env/);
    expect(c.sessions).toHaveLength(0);
  });

  test('an oversized environment line is refused', async () => {
    const c = await srv({ maxLineLength: 1024 });
    const a = new FakeAsterisk(c.port);
    a.send('agi_network: yes\nagi_channel: ' + 'A'.repeat(5000));
    await a.whenClosed();
    expect(c.refusals[0]).toMatchObject({ reason: 'protocol' });
  });

  test('a client that never finishes the environment block is cut off at the deadline', async () => {
    const c = await srv({ envTimeoutMs: 200 });
    const a = new FakeAsterisk(c.port);
    a.send('agi_network: yes\nagi_channel: PJSIP/x-1\n'); // no blank line
    await a.whenClosed();
    expect(c.refusals).toEqual([expect.objectContaining({ reason: 'env_timeout' })]);
    expect(c.sessions).toHaveLength(0);
  });

  test('a connection closed during the handshake is logged once', async () => {
    const c = await srv();
    const a = new FakeAsterisk(c.port);
    a.send('agi_network: yes\n');
    await waitFor(() => c.server.sessionCount === 1 || undefined, 5000, 'connection accepted');
    a.socket.end();
    await waitFor(() => c.refusals.length > 0 || undefined, 5000, 'refusal');
    expect(c.refusals).toEqual([expect.objectContaining({ reason: 'closed' })]);
  });

  test('allow-list refuses other addresses', async () => {
    const c = await srv({ allow: '10.0.0.0/8' });
    const a = await connected(c.port);
    await a.whenClosed();
    expect(c.refusals[0]).toMatchObject({ reason: 'not_allowed', remoteAddress: '127.0.0.1' });
    const ok = await srv({ allow: '127.0.0.0/8, ::1' });
    await connected(ok.port);
    await waitFor(() => ok.sessions[0], 5000, 'allowed session');
  });

  test('shared secret: missing or wrong refused; URL query or argument accepted and redacted', async () => {
    const secret = 'S3cr3t-' + Math.random().toString(36).slice(2);
    const c = await srv({ secret });
    const envWith = (script: string, args: string[] = []) =>
      formatEnv([
        ['network', 'yes'],
        ['network_script', script],
        ['request', `agi://127.0.0.1/${script}`],
        ['channel', 'PJSIP/t-1'],
        ...args.map((v, i) => [`arg_${i + 1}`, v] as [string, string]),
      ]);
    const none = await connected(c.port, envWith('dialer'));
    await none.whenClosed();
    const wrong = await connected(c.port, envWith('dialer?secret=nope'));
    await wrong.whenClosed();
    expect(c.refusals.map((r) => r.reason)).toEqual(['bad_secret', 'bad_secret']);
    await connected(c.port, envWith(`dialer?secret=${secret}`));
    await connected(c.port, envWith('dialer', ['42', `secret=${secret}`]));
    await waitFor(() => c.sessions.length === 2 || undefined, 5000, 'two accepted sessions');
    for (const s of c.sessions) expect(JSON.stringify(s.env)).not.toContain(secret);
    expect(c.warnings.join('\n')).not.toContain(secret);
  });

  test('session cap refuses connections beyond it', async () => {
    const c = await srv({ maxSessions: 2 });
    await connected(c.port);
    await connected(c.port);
    await waitFor(() => c.sessions.length === 2 || undefined, 5000, 'two sessions');
    const third = await connected(c.port);
    await third.whenClosed();
    expect(c.refusals[0]).toMatchObject({ reason: 'too_many_sessions' });
  });

  test('port in use is one clear error line', async () => {
    const c = await srv();
    const other = new AgiServer({ host: '127.0.0.1', port: c.port });
    const err = await other.listen().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).toMatchObject({ code: 'agi_port_in_use' });
    expect((err as Error).message).toBe(
      `FastAGI cannot listen on 127.0.0.1:${c.port}: the port is already in use (stop the other server or set AGI_PORT)`,
    );
    expect((err as Error).message).not.toContain('\n');
  });

  test('close() ends every session and empties the registry of them', async () => {
    const c = await srv();
    const before = activeSessionCount();
    const a = await connected(c.port);
    const s = await waitFor(() => c.sessions[0], 5000, 'session');
    expect(activeSessionCount()).toBe(before + 1);
    const p = s.getVariable('X');
    servers.splice(0);
    await c.server.close();
    await expect(p).rejects.toBeInstanceOf(StageError);
    await a.whenClosed();
    expect(activeSessionCount()).toBe(before);
  });
});
